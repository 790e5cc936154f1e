// Control-frame bridge on the MCU port (port 2): register reads and writes carried in
// Ethernet frames of EtherType 0x88B5, in the format of shared/model/src/ctrl_frame.rs
// (fulcrum_model::ctrl_frame), performed on the core's parallel register bus.
//
//   port 2 RX ─► ctrl_bridge ─┬─► core mcu_rx           (every other frame, unchanged)
//                             └─► reply ─► arbiter ─► port 2 TX (with core mcu_tx)
//
// A frame is held in the first 14 bytes until its EtherType is known: other frames are
// replayed to the core and passed through. A control frame is stored whole (its reply is
// built in place while it arrives: MACs swapped, kind = response) and checked as the
// model's CtrlFrame::parse does: version 1, kind request, 1..32 ops, long enough for its
// ops, every op code 0x57 (write) or 0x52 (read). Only a frame that passes is executed,
// op by op in order (a read's value goes into its op's value bytes), and answered; any
// other control frame is dropped without touching a register, as ctrl_frame::respond.
//
// Retransmissions (ctrl_frame::Responder): the MCU sends one request at a time and, when
// no response comes back in time, sends it again with the same sequence number. A request
// whose sequence number equals the last executed request's is such a retransmission: its
// writes were performed already and are skipped (TABLE_WRITE and CHANGE_POP are not
// idempotent), its reads are performed and answered. Any other accepted request executes
// whole and becomes the last one. After reset no request is a retransmission.
//
// The bus is the one of hdl/src/regs.rs RegisterBlock (bus_we or bus_re for one cycle,
// read data on bus_rdata two cycles after bus_re: BUS_READ_LATENCY) behind one register
// stage in the board top (fulcrum_board.v): here the read data is valid three cycles
// after bus_re. A write to COUNTER_SELECT (0x050) is
// followed by LATCH_WAIT idle cycles before the next op: FastPath latches the counter up to
// COUNTER_LATCH_CYCLES (hdl/src/pipeline.rs, 52) cycles after the write reaches it (its
// counter queue drains first), and the next op's fetch alone takes 11 (the board top's
// bus register delays the write and the next read alike).
`default_nettype none
module ctrl_bridge (
    input  wire        clk,
    input  wire        rst,

    input  wire [7:0]  s_tdata,
    input  wire        s_tvalid,
    input  wire        s_tlast,
    output wire        s_tready,

    output reg  [7:0]  core_tdata,
    output reg         core_tvalid,
    output reg         core_tlast,
    input  wire        core_tready,

    output reg  [7:0]  reply_tdata,
    output reg         reply_tvalid,
    output reg         reply_tlast,
    input  wire        reply_tready,

    output reg  [15:0] bus_addr,
    output reg  [31:0] bus_wdata,
    output reg         bus_we,
    output reg         bus_re,
    input  wire [31:0] bus_rdata,

    output reg  [15:0] ctrl_done,     // control frames answered
    output reg  [15:0] ctrl_rejected  // control frames dropped as malformed
);
    localparam ETHERTYPE = 16'h88B5;
    localparam MAX_OPS = 32;

    localparam S_HEAD = 4'd0, S_REPLAY = 4'd1, S_PASS = 4'd2, S_FLUSH = 4'd3, S_CTRL = 4'd4,
        S_EXEC_LOAD = 4'd5, S_EXEC_FETCH = 4'd6, S_EXEC_DO = 4'd7, S_EXEC_PUT = 4'd8,
        S_SEND = 4'd9, S_SEND_RD = 4'd10, S_SEND_OUT = 4'd11, S_SEND_HOLD = 4'd12,
        S_SEND_RD2 = 4'd13, S_EXEC_WAIT = 4'd14;
    localparam LATCH_WAIT = 6'd44;
    reg [3:0] state;

    // The first 14 bytes of the frame.
    reg [7:0] hdr[0:13];
    reg [3:0] hdr_len;
    reg       hdr_short;  // the frame ended inside the header
    reg [3:0] replay_i;

    // The frame / reply buffer (the longest valid control frame is 20 + 8 * 32 = 276).
    reg [7:0] buf_mem[0:511];
    reg [8:0] wr_addr;
    reg [7:0] wr_data;
    reg       wr_en;
    reg [8:0] rd_addr;
    reg [7:0] rd_data;  // buf_mem[rd_addr of the previous cycle]
    reg [7:0] rd_q;  // rd_data one cycle later: the block RAM's clock-to-out is slow
    always @(posedge clk) begin
        if (wr_en) buf_mem[wr_addr] <= wr_data;
        rd_data <= buf_mem[rd_addr];
        rd_q <= rd_data;
    end

    reg [15:0] seq_in;    // this request's sequence number
    reg [15:0] last_seq;  // the last executed request's
    reg        last_valid;
    reg        dup;       // this request is a retransmission of the last: skip its writes

    reg [10:0] len;  // bytes received of this frame (saturating)
    reg [5:0]  n_ops;
    // Registered from n_ops's byte: 19 + 8 * n_ops, so a frame of `len + 1` bytes holds
    // all of its ops when len >= need_m1 (no adder in front of the comparison).
    reg [10:0] need_m1;
    // The byte now arriving is the code byte of one of the declared ops (registered at
    // the byte before: a subtract-and-compare into `bad` was a critical path).
    reg        is_code;
    reg        bad;
    reg [5:0]  op_i;
    reg [3:0]  byte_i;
    reg [5:0]  wait_n;
    reg [8:0]  op_base;
    reg [63:0] op;
    reg [31:0] rvalue;
    reg [8:0]  reply_len;
    reg [8:0]  send_i;

    wire [8:0] byte_pos = len[8:0];
    // Where a header byte goes in the reply: destination and source MAC swapped.
    wire [8:0] swap_pos = (len < 11'd6) ? byte_pos + 9'd6 :
                          (len < 11'd12) ? byte_pos - 9'd6 : byte_pos;
    wire [8:0] frame_need = 9'd20 + {n_ops, 3'b000};
    wire [10:0] len_with_this = len + 1'b1;

    assign s_tready = (state == S_HEAD) || (state == S_CTRL) ||
                      (state == S_PASS && (!core_tvalid || core_tready));

    always @(posedge clk) begin
        wr_en <= 1'b0;
        bus_we <= 1'b0;
        bus_re <= 1'b0;
        if (rst) begin
            state <= S_HEAD;
            core_tvalid <= 1'b0;
            core_tlast <= 1'b0;
            reply_tvalid <= 1'b0;
            reply_tlast <= 1'b0;
            hdr_len <= 0;
            len <= 0;
            ctrl_done <= 0;
            ctrl_rejected <= 0;
            last_valid <= 1'b0;
            dup <= 1'b0;
        end else begin
            case (state)
                S_HEAD:
                if (s_tvalid) begin
                    hdr[hdr_len] <= s_tdata;
                    wr_en <= 1'b1;
                    wr_addr <= swap_pos;
                    wr_data <= s_tdata;
                    len <= len_with_this;
                    hdr_len <= hdr_len + 1'b1;
                    replay_i <= 0;
                    hdr_short <= s_tlast;
                    bad <= 1'b0;
                    n_ops <= 0;
                    need_m1 <= 11'd19;
                    is_code <= 1'b0;
                    if (s_tlast) state <= S_REPLAY;
                    else if (hdr_len == 4'd13)
                        state <= ({hdr[12], s_tdata} == ETHERTYPE) ? S_CTRL : S_REPLAY;
                end
                S_REPLAY:
                if (!core_tvalid || core_tready) begin
                    if (replay_i == hdr_len) begin
                        core_tvalid <= 1'b0;
                        if (hdr_short) begin
                            state <= S_HEAD;
                            hdr_len <= 0;
                            len <= 0;
                        end else state <= S_PASS;
                    end else begin
                        core_tdata <= hdr[replay_i];
                        core_tvalid <= 1'b1;
                        core_tlast <= hdr_short && (replay_i + 1'b1 == hdr_len);
                        replay_i <= replay_i + 1'b1;
                    end
                end
                S_PASS:
                if (!core_tvalid || core_tready) begin
                    core_tvalid <= s_tvalid;
                    core_tdata <= s_tdata;
                    core_tlast <= s_tlast;
                    if (s_tvalid && s_tlast) state <= S_FLUSH;
                end
                S_FLUSH:
                if (core_tready) begin
                    core_tvalid <= 1'b0;
                    state <= S_HEAD;
                    hdr_len <= 0;
                    len <= 0;
                end
                S_CTRL:
                if (s_tvalid) begin
                    if (len != 11'h7FF) len <= len_with_this;
                    if (len < 11'd512) begin
                        wr_en <= 1'b1;
                        wr_addr <= byte_pos;
                        wr_data <= (len == 11'd15) ? 8'd2 : s_tdata;  // kind: response
                    end
                    case (len)
                        11'd14: if (s_tdata != 8'd1) bad <= 1'b1;  // version
                        11'd15: if (s_tdata != 8'd1) bad <= 1'b1;  // kind: request
                        11'd16: seq_in[15:8] <= s_tdata;
                        11'd17: seq_in[7:0] <= s_tdata;
                        11'd18:
                        if (s_tdata == 8'd0 || s_tdata > MAX_OPS) bad <= 1'b1;
                        else begin
                            n_ops <= s_tdata[5:0];
                            need_m1 <= 11'd19 + {2'b0, s_tdata[5:0], 3'b000};
                        end
                        default: ;
                    endcase
                    // the code byte of one of the declared ops (20 + 8i)
                    if (is_code && s_tdata != 8'h57 && s_tdata != 8'h52) bad <= 1'b1;
                    // whether the next byte (len + 1) is one: 20 + 8i < 20 + 8 * n_ops
                    // (need_m1 is stale at len 18, but byte 19 is no code byte)
                    is_code <= len[2:0] == 3'd3 && len >= 11'd19 && len < need_m1;
                    if (s_tlast) begin
                        op_i <= 0;
                        op_base <= 9'd20;
                        reply_len <= frame_need;
                        // the frame must hold its header and all of its ops
                        if (bad || n_ops == 0 || len < need_m1) begin
                            ctrl_rejected <= ctrl_rejected + 1'b1;
                            state <= S_HEAD;
                            hdr_len <= 0;
                            len <= 0;
                        end else begin
                            dup <= last_valid && (seq_in == last_seq);
                            last_seq <= seq_in;
                            last_valid <= 1'b1;
                            state <= S_EXEC_LOAD;
                        end
                    end
                end
                // Op op_i: fetch its 8 bytes from the buffer into `op`.
                S_EXEC_LOAD:
                if (op_i == n_ops) begin
                    state <= S_SEND;
                    send_i <= 0;
                end else begin
                    rd_addr <= op_base;
                    byte_i <= 0;
                    state <= S_EXEC_FETCH;
                end
                S_EXEC_FETCH: begin
                    // rd_q holds byte (byte_i - 2) of the op
                    rd_addr <= rd_addr + 1'b1;
                    byte_i <= byte_i + 1'b1;
                    if (byte_i >= 4'd2) op <= {op[55:0], rd_q};
                    if (byte_i == 4'd9) state <= S_EXEC_DO;
                end
                S_EXEC_DO: begin
                    bus_addr <= op[47:32];
                    bus_wdata <= op[31:0];
                    byte_i <= 0;
                    if (op[63:56] == 8'h57) begin
                        bus_we <= !dup;
                        op_i <= op_i + 1'b1;
                        op_base <= op_base + 9'd8;
                        state <= S_EXEC_LOAD;
                        if (op[47:32] == 16'h0050) begin
                            wait_n <= LATCH_WAIT;
                            state <= S_EXEC_WAIT;
                        end
                    end else begin
                        bus_re <= 1'b1;
                        state <= S_EXEC_PUT;
                    end
                end
                S_EXEC_PUT: begin
                    // byte_i 0: bus_re is out; 1: it is at the core (the board top's bus
                    // register); 3: bus_rdata is valid (the core's two stages); 4..7:
                    // value bytes
                    byte_i <= byte_i + 1'b1;
                    if (byte_i == 4'd3) rvalue <= bus_rdata;
                    if (byte_i >= 4'd4) begin
                        wr_en <= 1'b1;
                        wr_addr <= op_base + byte_i;
                        wr_data <= rvalue[31:24];
                        rvalue <= {rvalue[23:0], 8'd0};
                    end
                    if (byte_i == 4'd7) begin
                        op_i <= op_i + 1'b1;
                        op_base <= op_base + 9'd8;
                        state <= S_EXEC_LOAD;
                    end
                end
                // After a COUNTER_SELECT write: the counter is latched meanwhile.
                S_EXEC_WAIT: begin
                    wait_n <= wait_n - 1'b1;
                    if (wait_n == 6'd0) state <= S_EXEC_LOAD;
                end
                // The reply: reply_len bytes of the buffer, one per five cycles.
                S_SEND: begin
                    rd_addr <= send_i;
                    state <= S_SEND_RD;
                end
                S_SEND_RD: state <= S_SEND_RD2;
                S_SEND_RD2: state <= S_SEND_OUT;
                S_SEND_OUT: begin
                    reply_tdata <= rd_q;
                    reply_tvalid <= 1'b1;
                    reply_tlast <= (send_i + 1'b1 == reply_len);
                    state <= S_SEND_HOLD;
                end
                default:  // S_SEND_HOLD
                if (reply_tready) begin
                    reply_tvalid <= 1'b0;
                    if (reply_tlast) begin
                        reply_tlast <= 1'b0;
                        ctrl_done <= ctrl_done + 1'b1;
                        state <= S_HEAD;
                        hdr_len <= 0;
                        len <= 0;
                    end else begin
                        send_i <= send_i + 1'b1;
                        state <= S_SEND;
                    end
                end
            endcase
        end
    end
endmodule
`default_nettype wire
