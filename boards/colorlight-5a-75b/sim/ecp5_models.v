// Behavioural models of the ECP5 primitives the board top uses, for iverilog only
// (Yosys ships only black boxes for these in ecp5/cells_bb.v). Timescale 1 ps.
//
// IDDRX1F: D sampled on the rising edge (Q0) and the following falling edge (Q1); both
//          presented together on the next rising edge, as the ECP5 sysIO guide describes.
// ODDRX1F: D0/D1 registered on the rising edge; Q is D0 while SCLK is high, D1 while low.
// DELAYG:  a fixed delay of DEL_VALUE taps of 25 ps.
// EHXPLLL: CLKOP is an ideal 125 MHz clock (the board's 25 MHz x 5); LOCK after 1 us.
`timescale 1ps / 1ps
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

module DELAYG #(parameter DEL_MODE = "USER_DEFINED", parameter DEL_VALUE = 0) (input A, output Z);
    assign #(DEL_VALUE * 25) Z = A;
endmodule

module EHXPLLL #(
    parameter PLLRST_ENA = "", INTFB_WAKE = "", STDBY_ENABLE = "", DPHASE_SOURCE = "",
    parameter OUTDIVIDER_MUXA = "", OUTDIVIDER_MUXB = "", OUTDIVIDER_MUXC = "",
    parameter OUTDIVIDER_MUXD = "", CLKOP_ENABLE = "", FEEDBK_PATH = "",
    parameter CLKI_DIV = 1, CLKOP_DIV = 1, CLKOP_CPHASE = 0, CLKOP_FPHASE = 0, CLKFB_DIV = 1
) (
    input RST, input STDBY, input CLKI, output reg CLKOP, input CLKFB, output CLKINTFB,
    input PHASESEL0, input PHASESEL1, input PHASEDIR, input PHASESTEP, input PHASELOADREG,
    input PLLWAKESYNC, input ENCLKOP, output reg LOCK
);
    initial begin
        CLKOP = 1'b0;
        LOCK = 1'b0;
        #1000000 LOCK = 1'b1;
    end
    always #4000 CLKOP = ~CLKOP;
    assign CLKINTFB = 1'b0;
endmodule
