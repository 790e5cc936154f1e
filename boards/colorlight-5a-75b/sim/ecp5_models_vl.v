// Models of the ECP5 primitives the board top uses, for Verilator (no delays, no
// `--timing`): `sim/board_main.cpp` drives the pins with explicit times instead.
//
// IDDRX1F, ODDRX1F: ecp5_ddr.v (shared with the iverilog models).
// DELAYG:  passes its input through. The C++ main changes RXD/RX_CTL at the PHY's clock
//          edge and the FPGA's receive clock 3 ns later (its insertion delay), so each
//          IDDR samples data that settled 3 ns before the edge and stays until the next
//          PHY edge (4 ns) — the window the 2 ns DELAYG places the data in on hardware.
// EHXPLLL: CLKOP is CLKI (the main drives clk25 at 125 MHz, the PLL's output rate, so
//          the core runs on its real period); LOCK rises after 125 CLKI cycles (1 us).
module DELAYG #(parameter DEL_MODE = "USER_DEFINED", parameter DEL_VALUE = 0) (input A, output Z);
    assign Z = A;
endmodule

module EHXPLLL #(
    parameter PLLRST_ENA = "", INTFB_WAKE = "", STDBY_ENABLE = "", DPHASE_SOURCE = "",
    parameter OUTDIVIDER_MUXA = "", OUTDIVIDER_MUXB = "", OUTDIVIDER_MUXC = "",
    parameter OUTDIVIDER_MUXD = "", CLKOP_ENABLE = "", FEEDBK_PATH = "",
    parameter CLKI_DIV = 1, CLKOP_DIV = 1, CLKOP_CPHASE = 0, CLKOP_FPHASE = 0, CLKFB_DIV = 1
) (
    input RST, input STDBY, input CLKI, output CLKOP, input CLKFB, output CLKINTFB,
    input PHASESEL0, input PHASESEL1, input PHASEDIR, input PHASESTEP, input PHASELOADREG,
    input PLLWAKESYNC, input ENCLKOP, output LOCK
);
    reg [7:0] cycles = 8'd0;
    always @(posedge CLKI) if (cycles != 8'd125) cycles <= cycles + 8'd1;
    assign LOCK = cycles == 8'd125;
    assign CLKOP = CLKI;
    assign CLKINTFB = 1'b0;
endmodule
