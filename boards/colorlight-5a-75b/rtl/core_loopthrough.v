// Bring-up core with the agreed FastPath port list (see boards/colorlight-5a-75b/README.md):
// every frame from the network port leaves on the MCU port and every frame from the MCU
// port leaves on the network port, unchanged. It is what the board image carries until
// fulcrum_hdl::pipeline::FastPath meets 125 MHz (build.sh --core fastpath builds with it);
// it has no registers (reads return 0).
// It is NOT the load balancer: it proves the PHYs, MACs, FIFOs and clocking on a board.
`default_nettype none
module core_loopthrough (
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
    assign mcu_tx_tdata  = net_rx_tdata;
    assign mcu_tx_tvalid = net_rx_tvalid;
    assign mcu_tx_tlast  = net_rx_tlast;
    assign net_rx_tready = mcu_tx_tready;
    assign net_tx_tdata  = mcu_rx_tdata;
    assign net_tx_tvalid = mcu_rx_tvalid;
    assign net_tx_tlast  = mcu_rx_tlast;
    assign mcu_rx_tready = net_tx_tready;
    assign bus_rdata     = 32'd0;
endmodule
`default_nettype wire
