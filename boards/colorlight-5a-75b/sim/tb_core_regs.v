// Test-only core for the board testbench (compiled with -DFULCRUM_CORE=tb_core_regs):
// the loop-through streams of core_loopthrough plus 256 plain 32-bit registers on the
// register bus (word address bits 7:0; 0x000 reads the register map's ID "FULC"), with
// the RegisterBlock timing: two stages (the access registered, then performed), read
// data two cycles after bus_re (BUS_READ_LATENCY in hdl/src/regs.rs). It lets the control-frame
// test compare every read with fulcrum_model::ctrl_frame::respond on the same words.
`default_nettype none
module tb_core_regs (
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
    output reg  [31:0] bus_rdata
);
    core_loopthrough streams (
        .clock(clock), .now_ms(now_ms),
        .net_rx_tdata(net_rx_tdata), .net_rx_tvalid(net_rx_tvalid),
        .net_rx_tlast(net_rx_tlast), .net_rx_tready(net_rx_tready),
        .net_tx_tdata(net_tx_tdata), .net_tx_tvalid(net_tx_tvalid),
        .net_tx_tlast(net_tx_tlast), .net_tx_tready(net_tx_tready),
        .mcu_rx_tdata(mcu_rx_tdata), .mcu_rx_tvalid(mcu_rx_tvalid),
        .mcu_rx_tlast(mcu_rx_tlast), .mcu_rx_tready(mcu_rx_tready),
        .mcu_tx_tdata(mcu_tx_tdata), .mcu_tx_tvalid(mcu_tx_tvalid),
        .mcu_tx_tlast(mcu_tx_tlast), .mcu_tx_tready(mcu_tx_tready),
        .bus_addr(16'd0), .bus_wdata(32'd0), .bus_we(1'b0), .bus_re(1'b0), .bus_rdata()
    );
    reg [31:0] words[0:255];
    integer i;
    initial for (i = 0; i < 256; i = i + 1) words[i] = 32'd0;
    reg [15:0] a_q;
    reg [31:0] wd_q;
    reg we_q = 1'b0, re_q = 1'b0;
    always @(posedge clock) begin
        a_q <= bus_addr;
        wd_q <= bus_wdata;
        we_q <= bus_we;
        re_q <= bus_re;
        if (we_q) words[a_q[7:0]] <= wd_q;
        if (re_q) bus_rdata <= (a_q == 16'd0) ? 32'h46554C43 : words[a_q[7:0]];
    end
endmodule
`default_nettype wire
