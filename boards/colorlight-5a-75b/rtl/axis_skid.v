// A register slice with a skid register on an 8-bit AXI stream (tdata, tlast): every
// output, s_tready included, comes from a flip-flop, so a ready path through it stops
// here (verilog-ethernet's axis_register, REG_TYPE 2). Full throughput: one beat per
// cycle; one cycle of latency; holds two beats when the output stalls. The valid flags
// start low from the configuration (as the rust-hdl core's registers do); `rst`
// (synchronous) empties the slice, so a beat left from before a reset cannot start a
// frame (tie it low where nothing is reset).
`default_nettype none
module axis_skid (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] s_tdata,
    input  wire       s_tvalid,
    input  wire       s_tlast,
    output wire       s_tready,
    output wire [7:0] m_tdata,
    output wire       m_tvalid,
    output wire       m_tlast,
    input  wire       m_tready
);
    reg [8:0] main_d, skid_d;
    reg main_v = 1'b0, skid_v = 1'b0;
    assign s_tready = !skid_v;
    assign m_tdata = main_d[7:0];
    assign m_tlast = main_d[8];
    assign m_tvalid = main_v;
    always @(posedge clk) begin
        if (rst) begin
            main_v <= 1'b0;
            skid_v <= 1'b0;
        end else if (m_tready || !main_v) begin
            // The output register is free this cycle: the skid beat first, else the input
            // (taken: s_tready is high when the skid register is empty).
            if (skid_v) begin
                main_d <= skid_d;
                main_v <= 1'b1;
                skid_v <= 1'b0;
            end else begin
                main_d <= {s_tlast, s_tdata};
                main_v <= s_tvalid;
            end
        end else if (s_tvalid && !skid_v) begin
            // The output stalls with a beat in it: the input's beat waits in the skid.
            skid_d <= {s_tlast, s_tdata};
            skid_v <= 1'b1;
        end
    end
endmodule
`default_nettype wire
