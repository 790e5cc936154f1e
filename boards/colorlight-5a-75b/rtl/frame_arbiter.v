// Two frame streams into one, a whole frame at a time: when idle, input A (the control
// replies) goes first if it has a frame, else input B (the core). The choice holds until
// the chosen frame's last beat has been taken, so frames never interleave.
`default_nettype none
module frame_arbiter (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] a_tdata,
    input  wire       a_tvalid,
    input  wire       a_tlast,
    output wire       a_tready,
    input  wire [7:0] b_tdata,
    input  wire       b_tvalid,
    input  wire       b_tlast,
    output wire       b_tready,
    output wire [7:0] m_tdata,
    output wire       m_tvalid,
    output wire       m_tlast,
    input  wire       m_tready
);
    reg busy, sel_a;
    wire pick_a = busy ? sel_a : a_tvalid;
    assign m_tdata  = pick_a ? a_tdata : b_tdata;
    assign m_tvalid = pick_a ? a_tvalid : b_tvalid;
    assign m_tlast  = pick_a ? a_tlast : b_tlast;
    assign a_tready = pick_a && m_tready;
    assign b_tready = !pick_a && m_tready;
    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            sel_a <= 1'b0;
        end else if (m_tvalid && m_tready) begin
            busy <= !m_tlast;
            sel_a <= pick_a;
        end
    end
endmodule
`default_nettype wire
