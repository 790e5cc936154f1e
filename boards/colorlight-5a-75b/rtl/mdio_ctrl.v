// PHY management on the shared MDC/MDIO pins (IEEE 802.3 clause 22), for both PHYs.
//
// After WAIT_CYCLES (the PHYs' power-up time), the controller scans PHY addresses 0..31
// for PHYs: a PHY answers a read of PHYSID1 (register 2) with neither 0x0000 nor 0xFFFF
// (the line is pulled up when nobody drives it). It keeps the first two it finds and
// sets each up with the standard registers every clause 22 PHY has (RTL8211FD on v8.0,
// B50612D on v7.0 alike):
//   register 9 (1000BASE-T control)       = 0x0200: advertise 1000BASE-T full duplex only
//   register 4 (auto-negotiation advert.) = 0x0001: no 10/100 abilities (selector 802.3)
//   register 0 (basic control)            = 0x1340: auto-negotiation on and restarted
// The MACs run 1000 Mb/s only: a partner that cannot do 1000BASE-T then gets no link at
// all (its own LED says so) rather than a 100 Mb/s link on which every frame is garbled.
// Then, every POLL_CYCLES, it reads basic status (register 1) of each PHY twice (its link
// bit latches low, so the second read is the present state) into `link`.
//
// MDC is clk / (2 * MDC_HALF) (125 MHz / 64 = 1.95 MHz, under the 2.5 MHz maximum). The
// controller changes MDIO after MDC's falling edge and samples it at MDC's rising edge;
// a read releases the line from the turnaround on. The pin goes through a two-flip-flop
// synchroniser, so a PHY has 2 * MDC_HALF - 2 cycles after a rising edge to present its
// next bit (496 ns at 125 MHz; clause 22 asks for at most 300 ns).
//
// Outputs: `phys` (PHYs found, 0..2), `phy_addr0/1`, `link` (bit i: PHY i has link),
// `ready` (set-up done, polling).
`default_nettype none
module mdio_ctrl #(
    parameter WAIT_CYCLES = 32'd12500000,  // 100 ms at 125 MHz
    parameter POLL_CYCLES = 32'd12500000,  // 100 ms at 125 MHz
    parameter MDC_HALF = 32
) (
    input  wire       clk,
    input  wire       rst,
    output reg        mdc,
    output reg        mdio_o,
    output reg        mdio_oe,
    input  wire       mdio_i,
    output reg  [1:0] phys,
    output reg  [4:0] phy_addr0,
    output reg  [4:0] phy_addr1,
    output reg  [1:0] link,
    output reg        ready
);
    // ---- one transaction: 32 preamble ones, ST 01, OP, PHYAD, REGAD, TA, 16 data bits ----
    reg        go;          // start a transaction (one cycle)
    reg        rd;          // it is a read
    reg  [4:0] t_phy, t_reg;
    reg [15:0] t_data;
    reg [15:0] rdata;       // a read's result
    reg        busy;

    reg [63:0] shift;
    reg  [6:0] bit_n;       // bits sent so far
    reg [31:0] div;
    (* async_reg = "true" *) reg [1:0] mdio_sync;  // the pin, into this clock domain
    always @(posedge clk) mdio_sync <= {mdio_sync[0], mdio_i};

    always @(posedge clk) begin
        if (rst) begin
            mdc <= 1'b0;
            mdio_o <= 1'b1;
            mdio_oe <= 1'b0;
            busy <= 1'b0;
            div <= 0;
            bit_n <= 0;
        end else if (!busy) begin
            mdc <= 1'b0;
            mdio_oe <= 1'b0;
            div <= 0;
            if (go) begin
                busy <= 1'b1;
                shift <= {32'hFFFF_FFFF, 2'b01, rd ? 2'b10 : 2'b01, t_phy, t_reg,
                          rd ? 2'b11 : 2'b10, rd ? 16'hFFFF : t_data};
                bit_n <= 0;
            end
        end else begin
            div <= (div == 2 * MDC_HALF - 1) ? 0 : div + 1;
            if (div == 0) begin
                // MDC low: present the next bit (released from a read's turnaround on).
                mdc <= 1'b0;
                if (bit_n == 64) begin
                    busy <= 1'b0;
                    mdio_oe <= 1'b0;
                end else begin
                    mdio_o <= shift[63];
                    mdio_oe <= !(rd && bit_n >= 46);
                    shift <= {shift[62:0], 1'b0};
                end
            end else if (div == MDC_HALF) begin
                // MDC high: the PHY samples; a read's data bits are sampled here.
                mdc <= 1'b1;
                if (rd && bit_n >= 48) rdata <= {rdata[14:0], mdio_sync[1]};
                bit_n <= bit_n + 1'b1;
            end
        end
    end

    // ---- the sequence ----------------------------------------------------------------
    localparam S_WAIT = 4'd0, S_SCAN = 4'd1, S_SCAN_W = 4'd2, S_CFG = 4'd3, S_CFG_W = 4'd4,
        S_POLL_WAIT = 4'd5, S_POLL = 4'd6, S_POLL_W = 4'd7, S_IDLE = 4'd8;
    reg  [3:0] state;
    reg [31:0] timer;
    reg  [5:0] scan;        // next address to scan (32 = done)
    reg        which;       // set-up: the PHY being written (0, 1)
    reg  [1:0] idx;         // set-up: its next write (0..2; 3 = done)
    reg  [1:0] poll;        // polling: PHY (bit 1), first/second read (bit 0)
    reg        started;     // the transaction issued has begun (busy seen)
    wire       t_done = started && !busy && !go;

    always @(posedge clk) begin
        go <= 1'b0;
        if (rst) begin
            state <= S_WAIT;
            timer <= 0;
            scan <= 0;
            which <= 1'b0;
            idx <= 2'd0;
            poll <= 0;
            phys <= 0;
            phy_addr0 <= 0;
            phy_addr1 <= 0;
            link <= 2'b00;
            ready <= 1'b0;
            started <= 1'b0;
            rd <= 1'b0;
            t_phy <= 0;
            t_reg <= 0;
            t_data <= 0;
        end else begin
            if (busy) started <= 1'b1;
            case (state)
                S_WAIT: begin
                    timer <= timer + 1;
                    if (timer == WAIT_CYCLES) state <= S_SCAN;
                end
                S_SCAN: begin
                    if (scan == 32 || phys == 2) begin
                        state <= (phys == 0) ? S_IDLE : S_CFG;
                    end else begin
                        rd <= 1'b1;
                        t_phy <= scan[4:0];
                        t_reg <= 5'd2;
                        go <= 1'b1;
                        started <= 1'b0;
                        state <= S_SCAN_W;
                    end
                end
                S_SCAN_W: if (t_done) begin
                    if (rdata != 16'h0000 && rdata != 16'hFFFF) begin
                        if (phys == 0) phy_addr0 <= scan[4:0];
                        else phy_addr1 <= scan[4:0];
                        phys <= phys + 1'b1;
                    end
                    scan <= scan + 1'b1;
                    state <= S_SCAN;
                end
                S_CFG: begin
                    if (idx == 2'd3 && (which || phys == 2'd1)) begin
                        ready <= 1'b1;
                        timer <= 0;
                        state <= S_POLL_WAIT;
                    end else if (idx == 2'd3) begin
                        which <= 1'b1;
                        idx <= 2'd0;
                    end else begin
                        rd <= 1'b0;
                        t_phy <= which ? phy_addr1 : phy_addr0;
                        case (idx)
                            2'd0: begin t_reg <= 5'd9; t_data <= 16'h0200; end
                            2'd1: begin t_reg <= 5'd4; t_data <= 16'h0001; end
                            default: begin t_reg <= 5'd0; t_data <= 16'h1340; end
                        endcase
                        go <= 1'b1;
                        started <= 1'b0;
                        state <= S_CFG_W;
                    end
                end
                S_CFG_W: if (t_done) begin
                    idx <= idx + 1'b1;
                    state <= S_CFG;
                end
                S_POLL_WAIT: begin
                    timer <= timer + 1;
                    if (timer == POLL_CYCLES) begin
                        poll <= 0;
                        state <= S_POLL;
                    end
                end
                S_POLL: begin
                    rd <= 1'b1;
                    t_phy <= poll[1] ? phy_addr1 : phy_addr0;
                    t_reg <= 5'd1;
                    go <= 1'b1;
                    started <= 1'b0;
                    state <= S_POLL_W;
                end
                S_POLL_W: if (t_done) begin
                    if (poll[0]) link[poll[1]] <= rdata[2];
                    if (poll == 2'd3 || (poll == 2'd1 && phys == 1)) begin
                        timer <= 0;
                        state <= S_POLL_WAIT;
                    end else begin
                        poll <= poll + 1'b1;
                        state <= S_POLL;
                    end
                end
                default: ;  // S_IDLE: no PHY answered; nothing to manage
            endcase
        end
    end
endmodule
`default_nettype wire
