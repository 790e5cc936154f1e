// The board's core: fulcrum_hdl::pipeline::FastPath (module fulcrum_fast_path, generated
// from rust-hdl by `fulcrum-board-core`), with its interface-named ports ($-separated, as
// rust-hdl writes them) mapped to the board top's core port list. tkeep is 1 (8-bit
// datapath), tuser 0 (the board's MACs drop bad frames before the core), and the verdict
// side channel is left unconnected on the board. Every stream goes through a register
// slice (`axis_skid`): no combinational path between the core and the board's FIFOs and
// arbiter (the port-2 arbiter's busy flag through the transmit FIFO's full flag into the
// rewrite stage's ready was the image's critical path at 95 MHz).
`default_nettype none
module core_fast_path (
    input  wire        clock,
    input  wire [31:0] now_ms,
    input  wire [7:0]  net_rx_tdata,
    input  wire        net_rx_tvalid,
    input  wire        net_rx_tlast,
    output wire        net_rx_tready,
    output wire [7:0]  net_tx_tdata,
    output wire        net_tx_tvalid,
    output wire        net_tx_tlast,
    input  wire        net_tx_tready,
    input  wire [7:0]  mcu_rx_tdata,
    input  wire        mcu_rx_tvalid,
    input  wire        mcu_rx_tlast,
    output wire        mcu_rx_tready,
    output wire [7:0]  mcu_tx_tdata,
    output wire        mcu_tx_tvalid,
    output wire        mcu_tx_tlast,
    input  wire        mcu_tx_tready,
    input  wire [15:0] bus_addr,
    input  wire [31:0] bus_wdata,
    input  wire        bus_we,
    input  wire        bus_re,
    output wire [31:0] bus_rdata
);
    wire [7:0] c_net_rx_tdata, c_net_tx_tdata, c_mcu_rx_tdata, c_mcu_tx_tdata;
    wire c_net_rx_tvalid, c_net_rx_tlast, c_net_rx_tready;
    wire c_net_tx_tvalid, c_net_tx_tlast, c_net_tx_tready;
    wire c_mcu_rx_tvalid, c_mcu_rx_tlast, c_mcu_rx_tready;
    wire c_mcu_tx_tvalid, c_mcu_tx_tlast, c_mcu_tx_tready;
    axis_skid net_rx_slice (
        .clk(clock), .rst(1'b0),
        .s_tdata(net_rx_tdata), .s_tvalid(net_rx_tvalid), .s_tlast(net_rx_tlast),
        .s_tready(net_rx_tready),
        .m_tdata(c_net_rx_tdata), .m_tvalid(c_net_rx_tvalid), .m_tlast(c_net_rx_tlast),
        .m_tready(c_net_rx_tready)
    );
    axis_skid mcu_rx_slice (
        .clk(clock), .rst(1'b0),
        .s_tdata(mcu_rx_tdata), .s_tvalid(mcu_rx_tvalid), .s_tlast(mcu_rx_tlast),
        .s_tready(mcu_rx_tready),
        .m_tdata(c_mcu_rx_tdata), .m_tvalid(c_mcu_rx_tvalid), .m_tlast(c_mcu_rx_tlast),
        .m_tready(c_mcu_rx_tready)
    );
    axis_skid net_tx_slice (
        .clk(clock), .rst(1'b0),
        .s_tdata(c_net_tx_tdata), .s_tvalid(c_net_tx_tvalid), .s_tlast(c_net_tx_tlast),
        .s_tready(c_net_tx_tready),
        .m_tdata(net_tx_tdata), .m_tvalid(net_tx_tvalid), .m_tlast(net_tx_tlast),
        .m_tready(net_tx_tready)
    );
    axis_skid mcu_tx_slice (
        .clk(clock), .rst(1'b0),
        .s_tdata(c_mcu_tx_tdata), .s_tvalid(c_mcu_tx_tvalid), .s_tlast(c_mcu_tx_tlast),
        .s_tready(c_mcu_tx_tready),
        .m_tdata(mcu_tx_tdata), .m_tvalid(mcu_tx_tvalid), .m_tlast(mcu_tx_tlast),
        .m_tready(mcu_tx_tready)
    );
    fulcrum_fast_path fast_path (
        .clock(clock),
        .now_ms(now_ms),
        .\net_rx$tdata (c_net_rx_tdata),
        .\net_rx$tkeep (1'b1),
        .\net_rx$tvalid (c_net_rx_tvalid),
        .\net_rx$tready (c_net_rx_tready),
        .\net_rx$tlast (c_net_rx_tlast),
        .\net_rx$tuser (1'b0),
        .\net_tx$tdata (c_net_tx_tdata),
        .\net_tx$tkeep (),
        .\net_tx$tvalid (c_net_tx_tvalid),
        .\net_tx$tready (c_net_tx_tready),
        .\net_tx$tlast (c_net_tx_tlast),
        .\net_tx$tuser (),
        .\mcu_rx$tdata (c_mcu_rx_tdata),
        .\mcu_rx$tkeep (1'b1),
        .\mcu_rx$tvalid (c_mcu_rx_tvalid),
        .\mcu_rx$tready (c_mcu_rx_tready),
        .\mcu_rx$tlast (c_mcu_rx_tlast),
        .\mcu_rx$tuser (1'b0),
        .\mcu_tx$tdata (c_mcu_tx_tdata),
        .\mcu_tx$tkeep (),
        .\mcu_tx$tvalid (c_mcu_tx_tvalid),
        .\mcu_tx$tready (c_mcu_tx_tready),
        .\mcu_tx$tlast (c_mcu_tx_tlast),
        .\mcu_tx$tuser (),
        .bus_addr(bus_addr),
        .bus_wdata(bus_wdata),
        .bus_we(bus_we),
        .bus_re(bus_re),
        .bus_rdata(bus_rdata),
        .verdict_valid(),
        .verdict_action(),
        .verdict_reason(),
        .verdict_service(),
        .verdict_backend(),
        .verdict_new_flow(),
        .verdict_hash(),
        .verdict_len(),
        .verdict_commit()
    );
endmodule
`default_nettype wire
