// Fulcrum board top for the Colorlight 5A-75B (LFE5U-25F-6BG256C).
//
//   clk25 -> board_pll -> clk125 (core clock)
//   port 1 (network): eth1 RGMII <-> eth_port <-> core net_rx / net_tx
//   port 2 (MCU):     eth2 RGMII <-> eth_port <-> ctrl_bridge <-> core mcu_rx / mcu_tx
//                     (EtherType 0x88B5 frames from the MCU drive the core's register
//                     bus; their replies are merged into port 2's transmit side)
//   LED: heartbeat (about 1 Hz), blinks faster while frames flow.
//
// PHY_RESET: 1 pulses the shared PHY reset for ~42 ms after configuration (v7.0, whose
// 25 MHz clock is its own oscillator); 0 never resets the PHYs (v8.0: the FPGA's 25 MHz
// clock comes from PHY U13, and resetting it would stop our own clock; chubby75
// hardware_V8.0.md). MDIO (mdio_ctrl): 200 ms after configuration both PHYs are found
// by scanning, set to advertise 1000BASE-T full duplex only (this MAC supports 1000 Mb/s
// only) with auto-negotiation restarted, and their links polled every 100 ms.
//   LED: slow blink (~1 Hz) = running, links up (or no PHY answered on MDIO);
//        fast blink = frames flowing; short flashes (~4 per second) = a PHY has no link.
`default_nettype none
module fulcrum_board #(
    parameter PHY_RESET = 0,
    parameter RX_DELAY = 80
) (
    input  wire       clk25,
    output wire       user_led_n,
    output wire       eth_rst_n,
    output wire       eth_mdc,
    inout  wire       eth_mdio,

    input  wire       eth1_rxc,
    input  wire [3:0] eth1_rxd,
    input  wire       eth1_rx_ctl,
    output wire       eth1_txc,
    output wire [3:0] eth1_txd,
    output wire       eth1_tx_ctl,

    input  wire       eth2_rxc,
    input  wire [3:0] eth2_rxd,
    input  wire       eth2_rx_ctl,
    output wire       eth2_txc,
    output wire [3:0] eth2_txd,
    output wire       eth2_tx_ctl
);
    // ---- clocks and resets ---------------------------------------------------------
    wire clk125, pll_locked;
    board_pll pll (.clk25(clk25), .clk125(clk125), .locked(pll_locked));

    reg [20:0] por = 0;  // clk25 cycles since configuration, saturating
    always @(posedge clk25) if (!por[20]) por <= por + 1'b1;
    assign eth_rst_n = PHY_RESET ? por[20] : 1'b1;

    (* async_reg = "true" *) reg [3:0] rst_sync = 4'b1111;
    always @(posedge clk125 or negedge pll_locked)
        if (!pll_locked) rst_sync <= 4'b1111;
        else rst_sync <= {rst_sync[2:0], 1'b0};
    wire rst = rst_sync[3];
    // The reset, one register per block (kept apart: yosys would merge equal flip-flops).
    // One net from rst_sync to ~450 flip-flops all over the chip was the image's critical
    // path (a 6.1 ns route into the port-2 transmit MAC); each copy now drives one block
    // from near it. Release is one cycle later; the reset is static after it.
    (* keep *) reg rst_p1 = 1'b1, rst_p2 = 1'b1, rst_bridge = 1'b1, rst_arb = 1'b1,
        rst_mdio = 1'b1, rst_ms = 1'b1;
    always @(posedge clk125) begin
        rst_p1 <= rst;
        rst_p2 <= rst;
        rst_bridge <= rst;
        rst_arb <= rst;
        rst_mdio <= rst;
        rst_ms <= rst;
    end

    // ---- time: now_ms from the 125 MHz clock -------------------------------------
    // `ms_tick` is registered from the count one below the wrap: the 17-bit compare
    // drove the counter's synchronous reset and now_ms's enable directly before (a
    // critical path of 9.9 ns on one placement).
    reg [16:0] ms_div;
    reg        ms_tick;
    reg [31:0] now_ms;
    always @(posedge clk125)
        if (rst_ms) begin
            ms_div <= 0;
            ms_tick <= 1'b0;
            now_ms <= 0;
        end else begin
            ms_tick <= (ms_div == 17'd124998);
            if (ms_tick) begin
                ms_div <= 0;
                now_ms <= now_ms + 1'b1;
            end else ms_div <= ms_div + 1'b1;
        end

    // ---- ports ----------------------------------------------------------------------
    wire [7:0] net_rx_tdata, net_tx_tdata, mcu_rx_tdata, mcu_tx_tdata;
    wire net_rx_tvalid, net_rx_tlast, net_rx_tready;
    wire net_tx_tvalid, net_tx_tlast, net_tx_tready;
    wire mcu_rx_tvalid, mcu_rx_tlast, mcu_rx_tready;
    wire mcu_tx_tvalid, mcu_tx_tlast, mcu_tx_tready;
    wire [15:0] p1_tx_frames, p2_tx_frames;

    eth_port #(.RX_DELAY(RX_DELAY)) port1 (
        .clk(clk125), .rst(rst_p1),
        .rgmii_rxc(eth1_rxc), .rgmii_rxd(eth1_rxd), .rgmii_rx_ctl(eth1_rx_ctl),
        .rgmii_txc(eth1_txc), .rgmii_txd(eth1_txd), .rgmii_tx_ctl(eth1_tx_ctl),
        .m_tdata(net_rx_tdata), .m_tvalid(net_rx_tvalid), .m_tlast(net_rx_tlast),
        .m_tready(net_rx_tready),
        .s_tdata(net_tx_tdata), .s_tvalid(net_tx_tvalid), .s_tlast(net_tx_tlast),
        .s_tready(net_tx_tready),
        .rx_frames(), .rx_drop_overflow(), .rx_drop_error(), .tx_frames(p1_tx_frames)
    );

    // Port 2's receive side goes through the control-frame bridge; its replies share
    // port 2's transmit side with the core's MCU stream.
    wire [7:0] p2_rx_tdata, p2_tx_tdata, reply_tdata, core_mcu_tx_tdata;
    wire p2_rx_tvalid, p2_rx_tlast, p2_rx_tready;
    wire p2_tx_tvalid, p2_tx_tlast, p2_tx_tready;
    wire reply_tvalid, reply_tlast, reply_tready;
    wire [15:0] bus_addr;
    wire [31:0] bus_wdata, bus_rdata;
    wire bus_we, bus_re;
    // One register stage on the bus from the bridge to the core (the bridge waits a
    // cycle more for read data): the core's address decoders sat a long route away from
    // the bridge's bus registers (the counter engine's start condition and the register
    // block's read mux were critical paths).
    reg [15:0] core_bus_addr;
    reg [31:0] core_bus_wdata;
    reg core_bus_we = 1'b0, core_bus_re = 1'b0;
    always @(posedge clk125) begin
        core_bus_addr <= bus_addr;
        core_bus_wdata <= bus_wdata;
        core_bus_we <= bus_we;
        core_bus_re <= bus_re;
    end

    eth_port #(.RX_DELAY(RX_DELAY)) port2 (
        .clk(clk125), .rst(rst_p2),
        .rgmii_rxc(eth2_rxc), .rgmii_rxd(eth2_rxd), .rgmii_rx_ctl(eth2_rx_ctl),
        .rgmii_txc(eth2_txc), .rgmii_txd(eth2_txd), .rgmii_tx_ctl(eth2_tx_ctl),
        .m_tdata(p2_rx_tdata), .m_tvalid(p2_rx_tvalid), .m_tlast(p2_rx_tlast),
        .m_tready(p2_rx_tready),
        .s_tdata(p2_tx_tdata), .s_tvalid(p2_tx_tvalid), .s_tlast(p2_tx_tlast),
        .s_tready(p2_tx_tready),
        .rx_frames(), .rx_drop_overflow(), .rx_drop_error(), .tx_frames(p2_tx_frames)
    );

    // A register slice between the bridge and the core (which has its own at its edge):
    // the core slice's ready sat a 4.6 ns route away from the bridge, whose pass-through
    // ready reaches port 2's receive FIFO (a critical path).
    wire [7:0] br_tdata;
    wire br_tvalid, br_tlast, br_tready;
    axis_skid bridge_core_slice (
        .clk(clk125), .rst(rst_bridge),
        .s_tdata(br_tdata), .s_tvalid(br_tvalid), .s_tlast(br_tlast), .s_tready(br_tready),
        .m_tdata(mcu_rx_tdata), .m_tvalid(mcu_rx_tvalid), .m_tlast(mcu_rx_tlast),
        .m_tready(mcu_rx_tready)
    );

    ctrl_bridge bridge (
        .clk(clk125), .rst(rst_bridge),
        .s_tdata(p2_rx_tdata), .s_tvalid(p2_rx_tvalid), .s_tlast(p2_rx_tlast),
        .s_tready(p2_rx_tready),
        .core_tdata(br_tdata), .core_tvalid(br_tvalid), .core_tlast(br_tlast),
        .core_tready(br_tready),
        .reply_tdata(reply_tdata), .reply_tvalid(reply_tvalid), .reply_tlast(reply_tlast),
        .reply_tready(reply_tready),
        .bus_addr(bus_addr), .bus_wdata(bus_wdata), .bus_we(bus_we), .bus_re(bus_re),
        .bus_rdata(bus_rdata),
        .ctrl_done(), .ctrl_rejected()
    );

    frame_arbiter p2_tx_arbiter (
        .clk(clk125), .rst(rst_arb),
        .a_tdata(reply_tdata), .a_tvalid(reply_tvalid), .a_tlast(reply_tlast),
        .a_tready(reply_tready),
        .b_tdata(mcu_tx_tdata), .b_tvalid(mcu_tx_tvalid), .b_tlast(mcu_tx_tlast),
        .b_tready(mcu_tx_tready),
        .m_tdata(p2_tx_tdata), .m_tvalid(p2_tx_tvalid), .m_tlast(p2_tx_tlast),
        .m_tready(p2_tx_tready)
    );

    // ---- core -----------------------------------------------------------------------
    `ifndef FULCRUM_CORE
    `define FULCRUM_CORE core_loopthrough
    `endif
    `FULCRUM_CORE core (
        .clock(clk125), .now_ms(now_ms),
        .net_rx_tdata(net_rx_tdata), .net_rx_tvalid(net_rx_tvalid),
        .net_rx_tlast(net_rx_tlast), .net_rx_tready(net_rx_tready),
        .net_tx_tdata(net_tx_tdata), .net_tx_tvalid(net_tx_tvalid),
        .net_tx_tlast(net_tx_tlast), .net_tx_tready(net_tx_tready),
        .mcu_rx_tdata(mcu_rx_tdata), .mcu_rx_tvalid(mcu_rx_tvalid),
        .mcu_rx_tlast(mcu_rx_tlast), .mcu_rx_tready(mcu_rx_tready),
        .mcu_tx_tdata(mcu_tx_tdata), .mcu_tx_tvalid(mcu_tx_tvalid),
        .mcu_tx_tlast(mcu_tx_tlast), .mcu_tx_tready(mcu_tx_tready),
        .bus_addr(core_bus_addr), .bus_wdata(core_bus_wdata), .bus_we(core_bus_we),
        .bus_re(core_bus_re), .bus_rdata(bus_rdata)
    );

    // ---- PHY management (MDIO) --------------------------------------------------------
    wire mdio_o, mdio_oe, mdio_ready;
    wire [1:0] mdio_phys, mdio_link;
    mdio_ctrl #(.WAIT_CYCLES(32'd25000000), .POLL_CYCLES(32'd12500000), .MDC_HALF(32)) mdio (
        .clk(clk125), .rst(rst_mdio),
        .mdc(eth_mdc), .mdio_o(mdio_o), .mdio_oe(mdio_oe), .mdio_i(eth_mdio),
        .phys(mdio_phys), .phy_addr0(), .phy_addr1(), .link(mdio_link), .ready(mdio_ready)
    );
    assign eth_mdio = mdio_oe ? mdio_o : 1'bz;
    // Links are fine unless a PHY was set up and reports none.
    wire links_ok = !mdio_ready
        || (mdio_link == ((mdio_phys == 2'd2) ? 2'b11 : 2'b01));

    // ---- LED ------------------------------------------------------------------------
    reg [26:0] beat;
    reg [15:0] last_tx1, last_tx2;
    reg        sent;  // a frame went out on either port (registered compare)
    reg [22:0] activity;  // ~67 ms after the last frame sent on either port
    always @(posedge clk125) begin
        beat <= beat + 1'b1;
        last_tx1 <= p1_tx_frames;
        last_tx2 <= p2_tx_frames;
        sent <= last_tx1 != p1_tx_frames || last_tx2 != p2_tx_frames;
        if (sent) activity <= ~23'd0;
        else if (activity != 0) activity <= activity - 1'b1;
    end
    // Active low; open drain on v8.0 (the .lpf sets it).
    assign user_led_n = !links_ok ? ~(beat[24:22] == 3'b000)
        : (activity != 0) ? ~beat[23] : ~beat[26];
endmodule
`default_nettype wire
