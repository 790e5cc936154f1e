// Testbench of rtl/mdio_ctrl.v: two clause 22 PHY models on one MDC/MDIO pair (pulled
// up), at addresses PHY_A and PHY_B. Each model checks the frames it sees (32 preamble
// ones, ST 01, a known OP, the turnaround of a write) and answers reads of its address:
// register 2 = its ID, register 1 = basic status with the link bit latching low (IEEE
// 802.3 22.2.4.2.13). Output, one line each (stdout):
//   T <phy> <R|W> <reg> <data hex>     a transaction a PHY answered or took
//   S <time_ns> <phys> <a0> <a1> <link> <ready>   the controller's outputs when they change
//   E <phy> <what>                     a malformed frame
//   END
// PHY_B's link comes up at LINK_B_UP_NS and goes down at LINK_B_DOWN_NS; PHY_A has link.
// With PRESENT = 0 neither model answers. The line also reports every MDC rising edge
// count at the end: "END <edges>".
`timescale 1ns / 1ps
module mdio_phy_model #(
    parameter [4:0] ADDR = 5'd1,
    parameter [15:0] ID1 = 16'h001C,
    parameter PRESENT = 1
) (input mdc, inout mdio, input link_in);
    reg [15:0] regs [0:31];
    reg drive = 1'b0, dout = 1'b1;
    assign mdio = drive ? dout : 1'bz;
    reg latched = 1'b0;  // BMSR link status, latching low
    integer i, ones;
    reg [1:0] op;
    reg [4:0] phy, rg;
    reg [15:0] data;
    reg st1, ta0, ta1;
    initial for (i = 0; i < 32; i = i + 1) regs[i] = 16'h0000;
    always @(negedge link_in) latched = 1'b0;
    always @(posedge link_in) if (latched === 1'bx) latched = 1'b0;
    always begin
        ones = 0;
        while (ones < 32) begin
            @(posedge mdc);
            if (mdio === 1'b1) ones = ones + 1; else ones = 0;
        end
        @(posedge mdc);
        while (mdio === 1'b1) @(posedge mdc);   // ST's first bit, 0
        @(posedge mdc); st1 = mdio;
        @(posedge mdc); op[1] = mdio;
        @(posedge mdc); op[0] = mdio;
        for (i = 4; i >= 0; i = i - 1) begin @(posedge mdc); phy[i] = mdio; end
        for (i = 4; i >= 0; i = i - 1) begin @(posedge mdc); rg[i] = mdio; end
        if (st1 !== 1'b1 || (op !== 2'b10 && op !== 2'b01)) begin
            if (phy == ADDR) $display("E %0d bad start or op %b %b", ADDR, st1, op);
        end else if (op == 2'b10) begin
            @(posedge mdc);                      // turnaround, first bit: released
            if (phy == ADDR && mdio !== 1'b1) $display("E %0d read turnaround driven", ADDR);
            if (phy == ADDR && PRESENT) begin
                case (rg)
                    5'd1: data = {13'b0, latched, 2'b0};
                    5'd2: data = ID1;
                    default: data = regs[rg];
                endcase
                if (rg == 5'd1) latched = link_in;
                #50 drive = 1'b1; dout = 1'b0;   // turnaround, second bit: 0
                for (i = 15; i >= 0; i = i - 1) begin
                    @(posedge mdc); #50 dout = data[i];
                end
                @(posedge mdc); #50 drive = 1'b0;
                $display("T %0d R %0d %04x", ADDR, rg, data);
            end else begin
                for (i = 0; i < 17; i = i + 1) @(posedge mdc);
            end
        end else begin
            @(posedge mdc); ta0 = mdio;
            @(posedge mdc); ta1 = mdio;
            for (i = 15; i >= 0; i = i - 1) begin @(posedge mdc); data[i] = mdio; end
            if (phy == ADDR && PRESENT) begin
                if (ta0 !== 1'b1 || ta1 !== 1'b0) $display("E %0d write turnaround %b%b", ADDR, ta0, ta1);
                else begin
                    regs[rg] = data;
                    $display("T %0d W %0d %04x", ADDR, rg, data);
                end
            end
        end
    end
endmodule

module tb_mdio;
    parameter [4:0] PHY_A = 5'd3;
    parameter [4:0] PHY_B = 5'd17;
    parameter LINK_B_UP_NS = 600000;
    parameter LINK_B_DOWN_NS = 900000;
    parameter END_NS = 1100000;
    parameter PRESENT = 1;  // 0: nobody answers (the line stays pulled up)
    reg clk = 0;
    always #4 clk = ~clk;
    reg rst = 1;
    wire mdc, mdio_o, mdio_oe;
    wire mdio;
    pullup (mdio);
    assign mdio = mdio_oe ? mdio_o : 1'bz;
    wire [1:0] phys, link;
    wire [4:0] a0, a1;
    wire ready;
    mdio_ctrl #(.WAIT_CYCLES(100), .POLL_CYCLES(5000), .MDC_HALF(8)) dut (
        .clk(clk), .rst(rst), .mdc(mdc), .mdio_o(mdio_o), .mdio_oe(mdio_oe), .mdio_i(mdio),
        .phys(phys), .phy_addr0(a0), .phy_addr1(a1), .link(link), .ready(ready)
    );
    reg link_a = 1, link_b = 0;
    integer edges = 0;
    always @(posedge mdc) edges = edges + 1;
    mdio_phy_model #(.ADDR(PHY_A), .ID1(16'h001C), .PRESENT(PRESENT)) pa (.mdc(mdc), .mdio(mdio), .link_in(link_a));
    mdio_phy_model #(.ADDR(PHY_B), .ID1(16'h0362), .PRESENT(PRESENT)) pb (.mdc(mdc), .mdio(mdio), .link_in(link_b));
    initial begin
        #100 rst = 0;
        #(LINK_B_UP_NS - 100) link_b = 1;
        #(LINK_B_DOWN_NS - LINK_B_UP_NS) link_b = 0;
        #(END_NS - LINK_B_DOWN_NS) $display("END %0d", edges);
        $finish;
    end
    always @(phys or a0 or a1 or link or ready)
        if (!rst) $display("S %0d %0d %0d %0d %b %b", $time, phys, a0, a1, link, ready);
endmodule
