// Frame FIFO: an asynchronous (or, with one clock on both sides, synchronous) byte FIFO
// that only ever shows the reader whole, good frames.
//
// The writer pushes an 8-bit AXI stream without backpressure (an Ethernet MAC cannot
// pause the wire). Bytes go into block RAM at a speculative write pointer; the pointer
// the reader sees (the committed pointer, crossed in Gray code) only moves on the last
// beat of a frame whose `s_tuser` (error) is 0. A frame with an error, or one that would
// overflow the FIFO, is dropped by rewinding the speculative pointer: the reader never
// sees a torn frame. Frames longer than the FIFO are always dropped, so DEPTH must hold
// the longest frame the port accepts (2048 > 1522).
//
// The read side is a first-word-fall-through AXI stream: block-RAM read register, then
// a fabric register (two stages, for timing), one byte per cycle while `m_tready` is held.
//
// Counters (write clock domain): `drop_overflow` and `drop_error` count dropped frames;
// they wrap, and are brought out for the LED and for simulation.
`default_nettype none
module frame_fifo #(
    parameter ADDR_BITS = 12,  // DEPTH = 2**ADDR_BITS bytes
    // 0: the writer cannot wait (a receive MAC): a frame that does not fit is dropped.
    // 1: `s_tready` backpressures the writer (a core feeding a transmit MAC); nothing is
    //    dropped for space, and a frame never exceeds DEPTH on that path.
    parameter BACKPRESSURE = 0
) (
    input  wire       s_clk,
    input  wire       s_rst,
    input  wire [7:0] s_tdata,
    input  wire       s_tvalid,
    input  wire       s_tlast,
    input  wire       s_tuser,
    output wire       s_tready,
    output reg [15:0] drop_overflow,
    output reg [15:0] drop_error,
    output reg [15:0] frames_in,

    input  wire       m_clk,
    input  wire       m_rst,
    output wire [7:0] m_tdata,
    output reg        m_tvalid,
    output wire       m_tlast,
    input  wire       m_tready
);
    localparam DEPTH = 1 << ADDR_BITS;

    reg [8:0] mem[0:DEPTH-1];

    // ---- write side (s_clk) -------------------------------------------------------
    reg [ADDR_BITS:0] wr_ptr;  // speculative
    reg [ADDR_BITS:0] wr_commit;  // binary, last committed frame end
    reg [ADDR_BITS:0] wr_commit_gray;
    reg [ADDR_BITS:0] rd_gray_s1, rd_gray_s2;  // read pointer synchronised into s_clk
    reg               in_overflow;  // the current frame has lost a byte: drop it at tlast

    function [ADDR_BITS:0] gray2bin(input [ADDR_BITS:0] g);
        integer i;
        begin
            gray2bin[ADDR_BITS] = g[ADDR_BITS];
            for (i = ADDR_BITS - 1; i >= 0; i = i - 1) gray2bin[i] = gray2bin[i+1] ^ g[i];
        end
    endfunction

    // The reader's pointer in binary, one cycle behind the synchroniser, and "full"
    // registered from it: both are late by a cycle, so "full" keeps two bytes of margin
    // (the writer advances at most one byte per cycle, the reader only frees space).
    reg [ADDR_BITS:0] rd_ptr_s;
    reg               full;
    // Modulo 2**(ADDR_BITS+1): sized here so the subtraction wraps (in the comparison
    // below it would be widened to 32 bits).
    wire [ADDR_BITS:0] level = wr_ptr - rd_ptr_s;
    // A beat is taken when valid (and, with backpressure, not full).
    wire beat = s_tvalid && (BACKPRESSURE == 0 || !full);
    wire do_write = beat && !full && !in_overflow;
    assign s_tready = BACKPRESSURE == 0 || !full;
    wire [ADDR_BITS:0] wr_next = wr_ptr + 1'b1;

    always @(posedge s_clk) begin
        if (do_write) mem[wr_ptr[ADDR_BITS-1:0]] <= {s_tlast, s_tdata};
    end

    always @(posedge s_clk) begin
        rd_gray_s1 <= rd_gray;
        rd_gray_s2 <= rd_gray_s1;
        rd_ptr_s <= gray2bin(rd_gray_s2);
        full <= level >= DEPTH - 2;
        if (s_rst) begin
            wr_ptr <= 0;
            wr_commit <= 0;
            wr_commit_gray <= 0;
            in_overflow <= 1'b0;
            drop_overflow <= 0;
            drop_error <= 0;
            frames_in <= 0;
        end else if (beat) begin
            if (s_tlast) begin
                in_overflow <= 1'b0;
                if (in_overflow || full) begin
                    wr_ptr <= wr_commit;
                    drop_overflow <= drop_overflow + 1'b1;
                end else if (s_tuser) begin
                    wr_ptr <= wr_commit;
                    drop_error <= drop_error + 1'b1;
                end else begin
                    wr_ptr <= wr_next;
                    wr_commit <= wr_next;
                    wr_commit_gray <= wr_next ^ (wr_next >> 1);
                    frames_in <= frames_in + 1'b1;
                end
            end else if (full) begin
                in_overflow <= 1'b1;
            end else if (do_write) begin
                wr_ptr <= wr_next;
            end
        end
    end

    // ---- read side (m_clk) --------------------------------------------------------
    reg [ADDR_BITS:0] rd_ptr;
    reg [ADDR_BITS:0] rd_ptr1;  // rd_ptr + 1, kept as a register
    reg [ADDR_BITS:0] rd_gray;
    reg [ADDR_BITS:0] wr_gray_s1, wr_gray_s2;
    reg [ADDR_BITS:0] wr_ptr_m;  // the committed write pointer in binary, after the synchroniser
    reg       nonempty;  // registered: rd_ptr != wr_ptr_m (of the cycle before)
    reg [8:0] ram_word;  // the block RAM's read register
    reg       ram_valid;
    reg [8:0] out_word;  // a fabric register after it: the RAM's clock-to-out is slow

    // `pop` reads the RAM (its clock enable) and advances the pointer. It depends on
    // flip-flops and `m_tready` only: the 13-bit Gray comparison that decided "empty"
    // here before (rd_gray == wr_gray_s2) was a critical path into the RAM's CEB. The
    // flag is computed for the pointer after this edge (rd_ptr1 when popping) against
    // wr_ptr_m, which only ever advances: a new frame shows a cycle later than before,
    // and the flag never claims a byte that is not there.
    wire move = ram_valid && (!m_tvalid || m_tready);
    wire pop = nonempty && (!ram_valid || move);

    assign m_tdata = out_word[7:0];
    assign m_tlast = out_word[8];

    always @(posedge m_clk) begin
        if (pop) ram_word <= mem[rd_ptr[ADDR_BITS-1:0]];
    end

    always @(posedge m_clk) begin
        wr_gray_s1 <= wr_commit_gray;
        wr_gray_s2 <= wr_gray_s1;
        wr_ptr_m <= gray2bin(wr_gray_s2);
        if (move) out_word <= ram_word;
        if (m_rst) begin
            rd_ptr <= 0;
            rd_ptr1 <= 1;
            rd_gray <= 0;
            nonempty <= 1'b0;
            ram_valid <= 1'b0;
            m_tvalid <= 1'b0;
        end else begin
            nonempty <= pop ? (wr_ptr_m != rd_ptr1) : (wr_ptr_m != rd_ptr);
            if (pop) begin
                rd_ptr <= rd_ptr1;
                rd_ptr1 <= rd_ptr1 + 1'b1;
                rd_gray <= rd_ptr1 ^ (rd_ptr1 >> 1);
            end
            if (pop) ram_valid <= 1'b1;
            else if (move) ram_valid <= 1'b0;
            if (move) m_tvalid <= 1'b1;
            else if (m_tready) m_tvalid <= 1'b0;
        end
    end
endmodule
`default_nettype wire
