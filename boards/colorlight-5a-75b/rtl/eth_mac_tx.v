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

    localparam S_IDLE = 3'd0, S_PRE = 3'd1, S_DATA = 3'd2, S_PAD = 3'd3, S_FCS = 3'd4,
        S_IFG = 3'd5;
    localparam K_IDLE = 2'd0, K_PRE = 2'd1, K_DATA = 2'd2, K_FCS = 2'd3;
    reg [2:0] state;
    reg [3:0] n;  // byte counter within preamble / FCS / gap
    reg [10:0] count;  // data and pad bytes sent

    // stage 1 -> stage 2
    reg [1:0] s1_kind;
    reg [7:0] s1_byte;
    reg [1:0] s1_fcs_index;

    reg [31:0] crc;
    wire [31:0] fcs = ~crc;

    assign s_tready   = (state == S_DATA);
    assign gmii_tx_er = 1'b0;

    // stage 1
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            s1_kind <= K_IDLE;
            frames_out <= 0;
        end else begin
            case (state)
                S_IDLE: begin
                    s1_kind <= K_IDLE;
                    if (s_tvalid) begin
                        state <= S_PRE;
                        n <= 0;
                    end
                end
                S_PRE: begin
                    s1_kind <= K_PRE;
                    s1_byte <= (n == 4'd7) ? 8'hD5 : 8'h55;
                    n <= n + 1'b1;
                    if (n == 4'd7) begin
                        state <= S_DATA;
                        count <= 0;
                    end
                end
                S_DATA: begin
                    // s_tvalid is 1 here: the frame is whole in the FIFO.
                    s1_kind <= K_DATA;
                    s1_byte <= s_tdata;
                    count <= count + 1'b1;
                    n <= 0;
                    if (s_tlast) state <= (count < 11'd59) ? S_PAD : S_FCS;
                end
                S_PAD: begin
                    s1_kind <= K_DATA;
                    s1_byte <= 8'h00;
                    count <= count + 1'b1;
                    if (count == 11'd59) state <= S_FCS;
                end
                S_FCS: begin
                    s1_kind <= K_FCS;
                    s1_fcs_index <= n[1:0];
                    n <= n + 1'b1;
                    if (n == 4'd3) begin
                        state <= S_IFG;
                        n <= 0;
                        frames_out <= frames_out + 1'b1;
                    end
                end
                default: begin  // S_IFG: 11 cycles here + 1 in S_IDLE = 12 byte times
                    s1_kind <= K_IDLE;
                    n <= n + 1'b1;
                    if (n == 4'd10) state <= S_IDLE;
                end
            endcase
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
