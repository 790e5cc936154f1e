// Behavioural models of the ECP5 DDR I/O registers, shared by the iverilog models
// (ecp5_models.v) and the Verilator ones (ecp5_models_vl.v).
//
// IDDRX1F: D sampled on the rising edge (Q0) and the following falling edge (Q1); both
//          presented together on the next rising edge, as the ECP5 sysIO guide describes.
// ODDRX1F: D0/D1 registered on the rising edge; Q is D0 while SCLK is high, D1 while low.
module IDDRX1F (input D, input SCLK, input RST, output reg Q0, output reg Q1);
    reg pos, neg;
    always @(posedge SCLK) begin
        Q0 <= pos;
        Q1 <= neg;
        pos <= D;
    end
    always @(negedge SCLK) neg <= D;
endmodule

module ODDRX1F (input D0, input D1, input SCLK, input RST, output Q);
    reg q0 = 1'b0, q1 = 1'b0;
    always @(posedge SCLK) begin
        q0 <= D0;
        q1 <= D1;
    end
    assign Q = SCLK ? q0 : q1;
endmodule
