// Gigabit receive MAC (GMII, receive clock domain) -> 8-bit AXI stream without
// backpressure, into a frame_fifo.
//
// Skips the preamble up to the SFD, checks the FCS and strips it (the last four bytes of
// every frame are held in a delay line and never leave), and flags on the last beat
// (`m_tuser`) a frame that is bad: FCS mismatch, RX_ER during the frame, shorter than
// 64 bytes or longer than MAX_LEN bytes with its FCS. frame_fifo drops flagged frames.
// A frame of four bytes or fewer leaves nothing (nothing was emitted to terminate).
`default_nettype none
module eth_mac_rx #(
    parameter MAX_LEN = 1522  // bytes including FCS (1518 + one 802.1Q tag)
) (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] gmii_rxd,
    input  wire       gmii_rx_dv,
    input  wire       gmii_rx_er,
    output reg  [7:0] m_tdata,
    output reg        m_tvalid,
    output reg        m_tlast,
    output reg        m_tuser,
    output reg [15:0] crc_errors
);
`include "eth_crc32.vh"

    localparam S_IDLE = 2'd0, S_DATA = 2'd1, S_SKIP = 2'd2;
    reg [1:0] state;
    reg [7:0] sr[0:4];  // sr[0] newest ... sr[4] oldest
    reg [2:0] fill;
    reg [10:0] count;
    reg        long_frame;
    reg        bad;
    reg [31:0] crc;
    integer k;

    always @(posedge clk) begin
        m_tvalid <= 1'b0;
        m_tlast  <= 1'b0;
        m_tuser  <= 1'b0;
        if (rst) begin
            state <= S_IDLE;
            crc_errors <= 0;
        end else begin
            case (state)
                S_IDLE:
                if (gmii_rx_dv) begin
                    if (gmii_rxd == 8'hD5 && !gmii_rx_er) begin
                        state <= S_DATA;
                        fill <= 0;
                        count <= 0;
                        long_frame <= 1'b0;
                        bad <= 1'b0;
                        crc <= 32'hFFFFFFFF;
                    end else if (gmii_rxd != 8'h55 || gmii_rx_er) begin
                        state <= S_SKIP;
                    end
                end
                S_DATA:
                if (gmii_rx_dv) begin
                    for (k = 4; k > 0; k = k - 1) sr[k] <= sr[k-1];
                    sr[0] <= gmii_rxd;
                    crc <= crc32_byte(crc, gmii_rxd);
                    if (fill != 3'd5) fill <= fill + 1'b1;
                    if (count == MAX_LEN[10:0]) long_frame <= 1'b1;
                    else count <= count + 1'b1;
                    if (gmii_rx_er) bad <= 1'b1;
                    if (fill == 3'd5) begin
                        m_tdata  <= sr[4];
                        m_tvalid <= 1'b1;
                    end
                end else begin
                    state <= S_IDLE;
                    if (fill == 3'd5) begin
                        m_tdata  <= sr[4];
                        m_tvalid <= 1'b1;
                        m_tlast  <= 1'b1;
                        m_tuser  <= bad || long_frame || count < 11'd64 || crc != 32'hDEBB20E3;
                    end
                    if (crc != 32'hDEBB20E3) crc_errors <= crc_errors + 1'b1;
                end
                default:  // S_SKIP: a frame that did not start with preamble/SFD
                if (!gmii_rx_dv) state <= S_IDLE;
            endcase
        end
    end
endmodule
`default_nettype wire
