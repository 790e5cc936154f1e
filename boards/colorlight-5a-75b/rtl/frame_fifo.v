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
// The read side is a first-word-fall-through AXI stream, one byte per cycle while
// `m_tready` is held. The block RAM reads every cycle through both of its registers (the
// read register and the output register: its clock-to-out without the output register is
// 5.8 ns, which left 2 ns to route to the next flip-flop); the read side issues a read
// when the FIFO holds a committed byte and a 4-byte output buffer has room for it and
// the two reads in flight, as the core's `FrameFifo` (hdl/src/frame_fifo.rs). No enable
// reaches the block RAM's read port: its clock enables are tied high.
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
    output wire       m_tvalid,
    output wire       m_tlast,
    input  wire       m_tready
);
    localparam DEPTH = 1 << ADDR_BITS;

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
    reg       v1 = 1'b0, v2 = 1'b0;  // a read issued one / two edges ago
    reg [8:0] buffer0, buffer1, buffer2, buffer3;
    reg [1:0] head, tail;
    reg [2:0] occupied;
    wire [8:0] rdata;  // the word at rd_ptr two edges ago (the block RAM's output register)

    // `issue` reads the byte at rd_ptr and advances the pointer: a committed byte is
    // there and the buffer has room for it after the reads in flight. It depends on
    // read-side flip-flops only, not on `m_tready`. `nonempty` is computed for the
    // pointer after this edge (rd_ptr1 when issuing) against wr_ptr_m, which only ever
    // advances: it never claims a byte that is not there.
    wire [2:0] pending = occupied + {2'b0, v1} + {2'b0, v2};
    wire issue = nonempty && !pending[2];
    wire take = m_tvalid && m_tready;

    assign m_tvalid = occupied != 3'd0;
    reg [8:0] out_word;
    always @(*) begin
        case (head)
            2'd0: out_word = buffer0;
            2'd1: out_word = buffer1;
            2'd2: out_word = buffer2;
            default: out_word = buffer3;
        endcase
    end
    assign m_tdata = out_word[7:0];
    assign m_tlast = out_word[8];

    always @(posedge m_clk) begin
        wr_gray_s1 <= wr_commit_gray;
        wr_gray_s2 <= wr_gray_s1;
        wr_ptr_m <= gray2bin(wr_gray_s2);
        if (v2) begin
            case (tail)
                2'd0: buffer0 <= rdata;
                2'd1: buffer1 <= rdata;
                2'd2: buffer2 <= rdata;
                default: buffer3 <= rdata;
            endcase
        end
        if (m_rst) begin
            rd_ptr <= 0;
            rd_ptr1 <= 1;
            rd_gray <= 0;
            nonempty <= 1'b0;
            v1 <= 1'b0;
            v2 <= 1'b0;
            head <= 2'd0;
            tail <= 2'd0;
            occupied <= 3'd0;
        end else begin
            nonempty <= issue ? (wr_ptr_m != rd_ptr1) : (wr_ptr_m != rd_ptr);
            if (issue) begin
                rd_ptr <= rd_ptr1;
                rd_ptr1 <= rd_ptr1 + 1'b1;
                rd_gray <= rd_ptr1 ^ (rd_ptr1 >> 1);
            end
            v1 <= issue;
            v2 <= v1;
            if (v2) tail <= tail + 1'b1;
            if (take) head <= head + 1'b1;
            occupied <= occupied + {2'b0, v2} - {2'b0, take};
        end
    end

    // ---- the memory -----------------------------------------------------------------
    // Written at wr_ptr (s_clk), read at rd_ptr every m_clk edge through two registers.
    // With FULCRUM_ECP5_BRAM (build.sh defines it) and 2048 words, one DP16KD in 2048 x 9
    // mode with the output register, the pins as the core's FrameFifo (frame_fifo.rs)
    // and as yosys itself maps the behavioural memory; otherwise (simulation) the
    // behavioural memory with the same two read registers. no_rw_check: the reader only
    // reads committed bytes, at most DEPTH - 2 behind the writer, so a read never meets a
    // write to the same address (without it, yosys adds read-during-write bypass logic
    // after the block RAM where both sides share a clock: the transmit FIFOs).
`ifdef FULCRUM_ECP5_BRAM
    localparam EBR = ADDR_BITS == 11;
`else
    localparam EBR = 0;
`endif
    generate
        if (EBR) begin : bram
            wire [17:0] dob;
            assign rdata = dob[8:0];
            DP16KD #(
                .DATA_WIDTH_A(9), .DATA_WIDTH_B(9), .REGMODE_A("NOREG"), .REGMODE_B("OUTREG"),
                .RESETMODE("ASYNC"), .ASYNC_RESET_RELEASE("ASYNC"),
                .CSDECODE_A("0b000"), .CSDECODE_B("0b000"),
                .WRITEMODE_A("READBEFOREWRITE"), .WRITEMODE_B("READBEFOREWRITE"),
                .CLKAMUX("CLKA"), .CLKBMUX("CLKB"), .GSR("DISABLED")
            ) block (
                .CLKA(s_clk), .WEA(do_write), .CEA(1'b1), .OCEA(1'b1), .RSTA(1'b0),
                .CSA0(1'b0), .CSA1(1'b0), .CSA2(1'b0),
                .ADA0(1'b0), .ADA1(1'b0), .ADA2(1'b0),
                .ADA3(wr_ptr[0]), .ADA4(wr_ptr[1]), .ADA5(wr_ptr[2]), .ADA6(wr_ptr[3]),
                .ADA7(wr_ptr[4]), .ADA8(wr_ptr[5]), .ADA9(wr_ptr[6]), .ADA10(wr_ptr[7]),
                .ADA11(wr_ptr[8]), .ADA12(wr_ptr[9]), .ADA13(wr_ptr[10]),
                .DIA0(s_tdata[0]), .DIA1(s_tdata[1]), .DIA2(s_tdata[2]), .DIA3(s_tdata[3]),
                .DIA4(s_tdata[4]), .DIA5(s_tdata[5]), .DIA6(s_tdata[6]), .DIA7(s_tdata[7]),
                .DIA8(s_tlast), .DIA9(1'b0), .DIA10(1'b0), .DIA11(1'b0), .DIA12(1'b0),
                .DIA13(1'b0), .DIA14(1'b0), .DIA15(1'b0), .DIA16(1'b0), .DIA17(1'b0),
                .CLKB(m_clk), .WEB(1'b0), .CEB(1'b1), .OCEB(1'b1), .RSTB(1'b0),
                .CSB0(1'b0), .CSB1(1'b0), .CSB2(1'b0),
                .ADB0(1'b0), .ADB1(1'b0), .ADB2(1'b0),
                .ADB3(rd_ptr[0]), .ADB4(rd_ptr[1]), .ADB5(rd_ptr[2]), .ADB6(rd_ptr[3]),
                .ADB7(rd_ptr[4]), .ADB8(rd_ptr[5]), .ADB9(rd_ptr[6]), .ADB10(rd_ptr[7]),
                .ADB11(rd_ptr[8]), .ADB12(rd_ptr[9]), .ADB13(rd_ptr[10]),
                .DIB0(1'b0), .DIB1(1'b0), .DIB2(1'b0), .DIB3(1'b0), .DIB4(1'b0), .DIB5(1'b0),
                .DIB6(1'b0), .DIB7(1'b0), .DIB8(1'b0), .DIB9(1'b0), .DIB10(1'b0),
                .DIB11(1'b0), .DIB12(1'b0), .DIB13(1'b0), .DIB14(1'b0), .DIB15(1'b0),
                .DIB16(1'b0), .DIB17(1'b0),
                .DOA0(), .DOA1(), .DOA2(), .DOA3(), .DOA4(), .DOA5(), .DOA6(), .DOA7(),
                .DOA8(), .DOA9(), .DOA10(), .DOA11(), .DOA12(), .DOA13(), .DOA14(),
                .DOA15(), .DOA16(), .DOA17(),
                .DOB0(dob[0]), .DOB1(dob[1]), .DOB2(dob[2]), .DOB3(dob[3]), .DOB4(dob[4]),
                .DOB5(dob[5]), .DOB6(dob[6]), .DOB7(dob[7]), .DOB8(dob[8]), .DOB9(dob[9]),
                .DOB10(dob[10]), .DOB11(dob[11]), .DOB12(dob[12]), .DOB13(dob[13]),
                .DOB14(dob[14]), .DOB15(dob[15]), .DOB16(dob[16]), .DOB17(dob[17])
            );
        end else begin : behavioural
            (* no_rw_check *)
            reg [8:0] mem[0:DEPTH-1];
            reg [8:0] stage, rdata_q;
            assign rdata = rdata_q;
            always @(posedge s_clk) if (do_write) mem[wr_ptr[ADDR_BITS-1:0]] <= {s_tlast, s_tdata};
            always @(posedge m_clk) begin
                stage <= mem[rd_ptr[ADDR_BITS-1:0]];
                rdata_q <= stage;
            end
        end
    endgenerate
endmodule
`default_nettype wire
