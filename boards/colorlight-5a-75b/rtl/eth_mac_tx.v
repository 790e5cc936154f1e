// Gigabit transmit MAC (core clock) from a frame_fifo's read side -> GMII.
//
// frame_fifo only shows whole frames, so once a frame starts its bytes arrive one per
// cycle and the MAC never underruns. Each frame goes out as 7 x 0x55 preamble, 0xD5
// SFD, the bytes, zero padding to 60 bytes, the FCS (least significant byte first), then
// at least 12 idle byte times (the inter-frame gap): 84 byte times for a minimum frame,
// which is gigabit line rate.
//
// Two stages, for timing: stage 1 (the state machine) picks each byte time's byte and
// kind into registers (the FIFO's block-RAM output goes straight into a flip-flop);
// stage 2 updates the CRC from those registers and drives GMII. Stage 2 sees bytes in
// order, so when the first FCS byte time reaches it, the CRC already covers every data
// and pad byte.
`default_nettype none
module eth_mac_tx (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] s_tdata,
    input  wire       s_tvalid,
    input  wire       s_tlast,
    output wire       s_tready,
    output reg  [7:0] gmii_txd,
    output reg        gmii_tx_en,
    output wire       gmii_tx_er,
    output reg [15:0] frames_out
);
`include "eth_crc32.vh"

    localparam K_IDLE = 2'd0, K_PRE = 2'd1, K_DATA = 2'd2, K_FCS = 2'd3;
    // Stage 1's state, one-hot, and its counters. Every decision below is one flag
    // register and the inputs: the counters' end values are compared a cycle early into
    // registers (`pre_end`, `fcs_end`, `ifg_end`, `pad_end`, `short`), so no counter
    // compare sits between a counter and the state (with the MAC's logic spread between
    // its FIFO and its pins, such a path crossed the chip twice).
    reg s_idle = 1'b1, s_pre = 1'b0, s_data = 1'b0, s_pad = 1'b0, s_fcs = 1'b0, s_ifg = 1'b0;
    reg [3:0] n;  // byte counter within preamble / FCS / gap
    reg [10:0] count;  // data and pad bytes sent
    reg pre_end, fcs_end, ifg_end, pad_end, short;

    // stage 1 -> stage 2
    reg [1:0] s1_kind;
    reg [7:0] s1_byte;
    reg [1:0] s1_fcs_index;

    reg [31:0] crc;
    wire [31:0] fcs = ~crc;

    assign s_tready   = s_data;
    assign gmii_tx_er = 1'b0;

    // stage 1
    always @(posedge clk) begin
        // The flags for the next cycle: n is 7 / 3 / 10 in PRE / FCS / IFG, count 59 in
        // PAD, count below 59 at a frame's last data byte (count counts from 0 in DATA).
        pre_end <= s_pre && n == 4'd6;
        fcs_end <= s_fcs && n == 4'd2;
        ifg_end <= s_ifg && n == 4'd9;
        pad_end <= (s_data || s_pad) && count == 11'd58;
        short <= s_pre || ((s_data || s_pad) && count < 11'd58);
        if (rst) begin
            {s_idle, s_pre, s_data, s_pad, s_fcs, s_ifg} <= 6'b100000;
            s1_kind <= K_IDLE;
            frames_out <= 0;
        end else begin
            if (s_idle) begin
                s1_kind <= K_IDLE;
                if (s_tvalid) begin
                    s_idle <= 1'b0;
                    s_pre <= 1'b1;
                    n <= 0;
                end
            end
            if (s_pre) begin
                s1_kind <= K_PRE;
                s1_byte <= pre_end ? 8'hD5 : 8'h55;
                n <= n + 1'b1;
                if (pre_end) begin
                    s_pre <= 1'b0;
                    s_data <= 1'b1;
                    count <= 0;
                end
            end
            if (s_data) begin
                // s_tvalid is 1 here: the frame is whole in the FIFO.
                s1_kind <= K_DATA;
                s1_byte <= s_tdata;
                count <= count + 1'b1;
                n <= 0;
                if (s_tlast) begin
                    s_data <= 1'b0;
                    if (short) s_pad <= 1'b1;
                    else s_fcs <= 1'b1;
                end
            end
            if (s_pad) begin
                s1_kind <= K_DATA;
                s1_byte <= 8'h00;
                count <= count + 1'b1;
                if (pad_end) begin
                    s_pad <= 1'b0;
                    s_fcs <= 1'b1;
                end
            end
            if (s_fcs) begin
                s1_kind <= K_FCS;
                s1_fcs_index <= n[1:0];
                n <= n + 1'b1;
                if (fcs_end) begin
                    s_fcs <= 1'b0;
                    s_ifg <= 1'b1;
                    n <= 0;
                    frames_out <= frames_out + 1'b1;
                end
            end
            if (s_ifg) begin  // 11 cycles here + 1 in idle = 12 byte times
                s1_kind <= K_IDLE;
                n <= n + 1'b1;
                if (ifg_end) begin
                    s_ifg <= 1'b0;
                    s_idle <= 1'b1;
                end
            end
        end
    end

    // stage 2
    always @(posedge clk) begin
        if (rst) begin
            gmii_tx_en <= 1'b0;
            gmii_txd <= 8'd0;
        end else begin
            gmii_tx_en <= (s1_kind != K_IDLE);
            case (s1_kind)
                K_PRE: begin
                    gmii_txd <= s1_byte;
                    crc <= 32'hFFFFFFFF;
                end
                K_DATA: begin
                    gmii_txd <= s1_byte;
                    crc <= crc32_byte(crc, s1_byte);
                end
                K_FCS: gmii_txd <= fcs[8*s1_fcs_index+:8];
                default: gmii_txd <= 8'd0;
            endcase
        end
    end
endmodule
`default_nettype wire
