// One gigabit port of the board: RGMII pins <-> two 8-bit AXI streams in the core clock.
//
//   RGMII RX -> rgmii_phy_if -> eth_mac_rx (RX clock) -> frame_fifo (async) -> m_axis
//   s_axis -> frame_fifo (core clock, backpressure) -> eth_mac_tx -> rgmii_phy_if -> RGMII TX
//
// The receive FIFO is the clock-domain crossing from the PHY's RXC into the core clock
// and drops a frame (whole) when it does not fit or fails its FCS; the transmit FIFO is
// store-and-forward so the MAC never underruns in the middle of a frame.
`default_nettype none
module eth_port #(
    parameter RX_DELAY = 80,
    // 2048 bytes (one DP16KD of 2048 x 9): holds the longest frame (1522); a deeper FIFO
    // spans two block RAMs with a mux after their slow (5.8 ns) clock-to-out, which
    // missed 125 MHz.
    parameter FIFO_ADDR_BITS = 11
) (
    input  wire        clk,  // core clock, 125 MHz
    input  wire        rst,  // core reset (synchronous to clk)

    input  wire        rgmii_rxc,
    input  wire [3:0]  rgmii_rxd,
    input  wire        rgmii_rx_ctl,
    output wire        rgmii_txc,
    output wire [3:0]  rgmii_txd,
    output wire        rgmii_tx_ctl,

    output wire [7:0]  m_tdata,
    output wire        m_tvalid,
    output wire        m_tlast,
    input  wire        m_tready,

    input  wire [7:0]  s_tdata,
    input  wire        s_tvalid,
    input  wire        s_tlast,
    output wire        s_tready,

    // status, in the clock named after the counter's domain
    output wire [15:0] rx_frames,         // rx clock: good frames into the FIFO
    output wire [15:0] rx_drop_overflow,  // rx clock
    output wire [15:0] rx_drop_error,     // rx clock: FCS / RX_ER / runt / giant
    output wire [15:0] tx_frames          // core clock
);
    wire       rx_clk;
    wire [7:0] gmii_rxd;
    wire       gmii_rx_dv, gmii_rx_er;
    wire [7:0] gmii_txd;
    wire       gmii_tx_en, gmii_tx_er;

    rgmii_phy_if #(.RX_DELAY(RX_DELAY)) phy (
        .rgmii_rxc(rgmii_rxc), .rgmii_rxd(rgmii_rxd), .rgmii_rx_ctl(rgmii_rx_ctl),
        .rgmii_txc(rgmii_txc), .rgmii_txd(rgmii_txd), .rgmii_tx_ctl(rgmii_tx_ctl),
        .rx_clk(rx_clk), .gmii_rxd(gmii_rxd), .gmii_rx_dv(gmii_rx_dv), .gmii_rx_er(gmii_rx_er),
        .tx_clk(clk), .tx_rst(rst), .gmii_txd(gmii_txd), .gmii_tx_en(gmii_tx_en),
        .gmii_tx_er(gmii_tx_er)
    );

    // The core reset, synchronised into the receive clock.
    (* async_reg = "true" *) reg [2:0] rx_rst_sync = 3'b111;
    always @(posedge rx_clk or posedge rst)
        if (rst) rx_rst_sync <= 3'b111;
        else rx_rst_sync <= {rx_rst_sync[1:0], 1'b0};
    wire rx_rst = rx_rst_sync[2];

    wire [7:0] rx_tdata;
    wire       rx_tvalid, rx_tlast, rx_tuser;
    wire [15:0] crc_errors;
    eth_mac_rx mac_rx (
        .clk(rx_clk), .rst(rx_rst),
        .gmii_rxd(gmii_rxd), .gmii_rx_dv(gmii_rx_dv), .gmii_rx_er(gmii_rx_er),
        .m_tdata(rx_tdata), .m_tvalid(rx_tvalid), .m_tlast(rx_tlast), .m_tuser(rx_tuser),
        .crc_errors(crc_errors)
    );

    frame_fifo #(.ADDR_BITS(FIFO_ADDR_BITS), .BACKPRESSURE(0)) rx_fifo (
        .s_clk(rx_clk), .s_rst(rx_rst),
        .s_tdata(rx_tdata), .s_tvalid(rx_tvalid), .s_tlast(rx_tlast), .s_tuser(rx_tuser),
        .s_tready(),
        .drop_overflow(rx_drop_overflow), .drop_error(rx_drop_error), .frames_in(rx_frames),
        .m_clk(clk), .m_rst(rst),
        .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tlast(m_tlast), .m_tready(m_tready)
    );

    wire [7:0] tx_tdata;
    wire       tx_tvalid, tx_tlast, tx_tready;
    wire [7:0] f_tdata;
    wire       f_tvalid, f_tlast, f_tready;
    frame_fifo #(.ADDR_BITS(FIFO_ADDR_BITS), .BACKPRESSURE(1)) tx_fifo (
        .s_clk(clk), .s_rst(rst),
        .s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tlast(s_tlast), .s_tuser(1'b0),
        .s_tready(s_tready),
        .drop_overflow(), .drop_error(), .frames_in(),
        .m_clk(clk), .m_rst(rst),
        .m_tdata(f_tdata), .m_tvalid(f_tvalid), .m_tlast(f_tlast), .m_tready(f_tready)
    );

    // The transmit MAC's own reset register (its state machine's reset from the shared
    // net was a long route).
    (* keep *) reg rst_tx = 1'b1;
    always @(posedge clk) rst_tx <= rst;

    // A register slice between the FIFO (at its block RAM) and the MAC (at the pins): the
    // MAC's ready (its state) no longer reaches the FIFO's read logic, nor the FIFO's
    // outputs the MAC's next-state logic, across the chip. Full throughput, so a frame the
    // FIFO shows whole still arrives one byte per cycle; one cycle of latency.
    axis_skid tx_slice (
        .clk(clk), .rst(rst_tx),
        .s_tdata(f_tdata), .s_tvalid(f_tvalid), .s_tlast(f_tlast), .s_tready(f_tready),
        .m_tdata(tx_tdata), .m_tvalid(tx_tvalid), .m_tlast(tx_tlast), .m_tready(tx_tready)
    );

    eth_mac_tx mac_tx (
        .clk(clk), .rst(rst_tx),
        .s_tdata(tx_tdata), .s_tvalid(tx_tvalid), .s_tlast(tx_tlast), .s_tready(tx_tready),
        .gmii_txd(gmii_txd), .gmii_tx_en(gmii_tx_en), .gmii_tx_er(gmii_tx_er),
        .frames_out(tx_frames)
    );
endmodule
`default_nettype wire
