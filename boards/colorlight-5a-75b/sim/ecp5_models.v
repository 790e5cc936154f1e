// Behavioural models of the ECP5 primitives the board top uses, for iverilog only
// (Yosys ships only black boxes for these in ecp5/cells_bb.v). Timescale 1 ps.
//
// IDDRX1F, ODDRX1F: ecp5_ddr.v.
// DELAYG:  a fixed delay of DEL_VALUE taps of 25 ps.
// EHXPLLL: CLKOP is an ideal 125 MHz clock (the board's 25 MHz x 5); LOCK after 1 us.
`timescale 1ps / 1ps
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
