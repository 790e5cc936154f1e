//! The whole fast path: [`FastPath`], the top the board wraps (`fulcrum_model::pipeline`).
//!
//! ```text
//! net_rx ─┐                                                             ┌─► net_tx
//!         ├─► arbiter ─► HeaderParser ─► frame FIFO ─► Rewrite ─► slice ─┤
//! mcu_rx ─┘                  │ m_hdr                   ▲ s_cmd          └─► mcu_tx
//!                            ▼                         │
//!                      controller (hash, classify) ────┘──► verdict_*, counters (block RAM)
//!     bus_* ─► RegisterBlock (shadow settings) ─► commit ─► active settings, hash key
//! ```
//!
//! ## Ports (agreed with the board top)
//! - `clock`, `now_ms` (the time in ms, wrapping; the board derives it from a counter);
//! - `net_rx` / `net_tx`: port 1, the network; `mcu_rx` / `mcu_tx`: port 2, the MCU
//!   (8-bit AXI streams, [`crate::stream`]); both outputs come from one register slice
//!   with a skid register (every output a flip-flop, `tready` reaches only the slice), one
//!   beat per cycle, one cycle of latency;
//! - `bus_addr`, `bus_wdata`, `bus_we`, `bus_re`, `bus_rdata`: the register map of
//!   `regmap.rs` on the parallel bus of [`RegisterBlock`]: one access per cycle, a read's
//!   value is on `bus_rdata` from the second cycle after `bus_re`
//!   ([`crate::regs::BUS_READ_LATENCY`]) until the next read; writes act two cycles on;
//! - `verdict_*`: one strobe per frame with the model's verdict (for tests and `fulcrum
//!   pcap --engine hdl`; the board leaves it unconnected).
//!
//! ## Ingress
//! Both receive ports share the pipeline: an arbiter takes whole frames, alternating when
//! both have one waiting, so frames are processed one at a time in the order the
//! arbiter took them, exactly as the model's sequence of `process` calls. A frame from the
//! MCU leaves on `net_tx` unchanged (`Action::FromMcu`). The parser's headers wait for
//! the controller in a 16-entry header queue (distributed RAM), so the parser takes the
//! next frames into the frame FIFO while the controller decides, or waits for the output
//! of a long frame. The frame FIFO ([`FrameFifo`], block RAM read through its output register) holds
//! [`FIFO_BYTES`] bytes: the verdict needs the whole frame (the parser checks lengths at
//! `tlast`), so **a frame longer than `FIFO_BYTES` stalls the input for ever**; the MAC in
//! front must cut frames at the Ethernet maximum (1522 bytes with a tag).
//!
//! ## What the controller decides (checked against `Pipeline::process`)
//! In the model's order: from the MCU → network; parse errors → drop with the parser's
//! reason; ARP, IPv6 → punt; other EtherTypes → drop (`unsupported_ethertype`); IPv4:
//! the flow hash (Toeplitz), then
//! 1. to the appliance's own address → punt; to a broadcast or multicast address → punt;
//! 2. to a VIP (any valid service entry's address, found by scanning the 16 active
//!    entries): fragment → punt; the service of (VIP, protocol, port) in L7 mode → punt
//!    (`l7_service`); no such service: ICMP → punt, else drop (`no_service`);
//! 3. to a full-NAT pool address (the first `SNAT_CFG` count of `SNAT_POOL`, at most 8):
//!    ICMP and fragments → punt, other protocols → drop (`not_for_us`), TCP/UDP → the
//!    **full-NAT return path**: the destination port names the flow-table slot
//!    (`snat_slot`: port − base + pool index × (65536 − base), by repeated addition; a port
//!    below the base or a slot beyond the table is `return_no_flow`), which the forward
//!    path reads directly ([`crate::forward`], a slot read): the flow must be valid, of a
//!    full-NAT service, of the reply's protocol, and its backend (generation, address,
//!    port) the reply's source, else `return_no_flow`; past its timeout it is freed,
//!    released and counted as expired (`return_no_flow`); else it is refreshed and the
//!    frame rewritten to the client: the flow's client MAC (kept per slot), our MAC, the
//!    source set to the service's VIP and port, the destination to the client's address
//!    and port (the flow key's source) (`Action::ToClient`, the service's return
//!    counters);
//! 4. TCP/UDP from a NAT service's member (address and port) → the **NAT return path**
//!    ([`crate::nat_return`] finds the model's first (service, member) of the frame's
//!    source, from a table rebuilt at every commit): the client flow (client, VIP, client
//!    port, service port) is hashed (Toeplitz, a second pass of the hash unit) and looked
//!    up; it must exist and point at that member (else `return_no_flow`; an expired one is
//!    freed and counted), it is refreshed, and the frame is rewritten to the client: the
//!    flow's client MAC (kept per flow-table slot), our MAC, the source set to the flow's
//!    service's VIP and port (`Action::ToClient`, the service's return counters);
//! 5. anything else → drop (`not_for_us`).
//!
//! 6. the service of (VIP, protocol, port) in mode NAT, DSR, IP-in-IP or GUE with any
//!    algorithm, sticky or not → the **forward path** ([`crate::forward`]): flow
//!    lookup, refresh or insert, the generation check, moved / expired / evicted flows,
//!    for a new flow of a sticky service its client's persistence entry, the choice (Maglev: the ring at the flow hash; IP hash: the ring at the source
//!    hash, which the hash unit computes in the same pass; round robin: the service's
//!    member list from its cursor; weighted: nginx's smooth WRR over the list; least
//!    connections / least response time: the list's eligible member with the smallest
//!    `active / weight` or `rtt × (active + 1) / weight`, by exact cross products),
//!    `no_backend`, `neighbor_unresolved`, `tcp_no_flow` for the stateful algorithms,
//!    then the rewrite towards the
//!    backend (NAT: MACs and destination; full NAT: MACs, destination and the source =
//!    the pool endpoint of the flow's slot, `snat_endpoint` by repeated subtraction of the
//!    ports per address, `no_backend` when the slot has no pool address; DSR: MACs;
//!    IP-in-IP / GUE: encapsulation, `tunnel_mtu` above 1500 bytes) and the service and
//!    backend counters.
//!
//! Persistence (source-IP stickiness, `Pipeline::choose`) is the forward path's: a new
//! flow of a sticky service first looks up its client's entry in a direct-mapped table of
//! [`crate::forward::STICKY_SETS`] entries (the model's `Storage` for this fast path has
//! `sticky_ways = 1`), see [`crate::forward`]. Every service the model serves is in
//! hardware: [`action::REFUSED`] (dropped, counted at counter RAM word 0x3FF, outside the
//! model's index map) is the classification's placeholder for a service frame until the
//! forward path's decision replaces it, and no frame of the model-equivalence runs ever
//! leaves with it. Member lists are
//! kept twice: by the NAT return path (its own shadow copy) and by the selection unit
//! (shadow and active banks, for the list algorithms). A `SNAT_CFG` count above 8 counts
//! as 8.
//!
//! ## Commit
//! A write of 1 to `CONTROL` marks a commit pending (`STATUS.0`). The controller applies it
//! between two frames, before it takes the next frame's header: the shadow settings
//! become active, the hash key is loaded into the Toeplitz unit and the 16 service
//! entries are copied from the shadow to the active table (19 cycles), each compared with
//! the active entry it replaces (a service whose entry changed gets its round-robin
//! cursor and weighted state reset, the model's `SelectState::reset_service`); then the
//! forward path copies
//! its backend table (1,024 cycles) and the rings written since the last commit (512
//! cycles each) while the selection unit copies the member lists written since the last
//! commit (128 cycles per service; resets for changed lists too), and `STATUS.0` stays set until that is done (after reset it
//! first clears the rings: about 8,200 cycles). **Unlike the
//! model** (which commits at the `CONTROL` write), register writes made after the
//! `CONTROL` write but before the commit is applied go into that commit: the writer must
//! wait for `STATUS.0` to clear before writing the next batch (the commit waits for the
//! decision in progress, tens of cycles, unless the output it waits for is
//! back-pressured; headers already queued are decided after the commit, as the model
//! commits between two frames). An SPI transaction takes at least 7 × 8 × 8 clocks, so in practice the
//! MCU's next write comes after the commit; the firmware does not poll `STATUS.0` today.
//! `verdict_commit` strobes when that happens, so a test knows after which frame the
//! model must commit.
//!
//! ## Counters
//! In one block RAM of 64-bit words (1024 × 64: backend fields 0–2 at field × 256 +
//! slot, the other addresses at 0x300 + their low 8 bits), updated by read-modify-write (4 cycles
//! per counter: the RAM's two-cycle read) after each verdict: `rx_frames`, the frame's class (`from_mcu`, the
//! drop or punt reason), flow-table events, new-flow, service and backend counts. The
//! counter jobs do not hold the controller: at the issue, the frame's verdict, events,
//! service, backend and length go into a descriptor (a queue of one frame) that the
//! counter engine walks while the next frame is classified and decided (at most 9 jobs,
//! about 40 cycles; a frame is issued only when the descriptor is free, which every
//! decision of at least that long leaves it). `COUNTER_SELECT` / `COUNTER_HI` / `COUNTER_LO` read them with
//! the model's counter indexes ([`fulcrum_model::regmap::counter`]): a write to
//! `COUNTER_SELECT` latches the counter at most [`COUNTER_LATCH_CYCLES`] cycles later:
//! the latch waits for the descriptor's jobs, and no frame is issued meanwhile, so the
//! latched value counts every frame whose verdict strobed before the write (and the one
//! strobing in the write's own cycle, issued before it). Reads of `COUNTER_HI`/`LO`
//! before then see the previous latch. Over SPI (at least 8 clocks per bit) a read always
//! sees the new latch; the board's control-frame bridge waits after a `COUNTER_SELECT`
//! write.

use rust_hdl::prelude::*;

use crate::forward::Forward;
use crate::frame_fifo::FrameFifo;
use crate::nat_return::NatReply;
use crate::parser::HeaderParser;
use crate::ram::SinglePortRam;
use crate::regs::RegisterBlock;
use crate::rewrite::Rewrite;
use crate::stream::{ByteStreamMaster, ByteStreamSlave};
use crate::toeplitz::ToeplitzHash;

/// Bytes of the frame FIFO (the longest frame the fast path takes).
pub const FIFO_BYTES: usize = 2048;

/// Most cycles from a `COUNTER_SELECT` write to the latch of the counter: the bus's
/// decode stage (1 cycle), the counter queue drains first (the jobs of one frame, at most 9
/// read-modify-writes of 4 cycles, the job register's cycle and the end of one more), then
/// the latch's own read (4 cycles); 52 leaves a few cycles of margin.
pub const COUNTER_LATCH_CYCLES: usize = 52;

/// The actions on `verdict_action` (`fulcrum_model::pipeline::Action`).
pub mod action {
    /// `Action::ToBackend`.
    pub const TO_BACKEND: u64 = 0;
    /// `Action::ToClient`.
    pub const TO_CLIENT: u64 = 1;
    /// `Action::FromMcu`.
    pub const FROM_MCU: u64 = 2;
    /// `Action::Punt` (reason on `verdict_reason`).
    pub const PUNT: u64 = 3;
    /// `Action::Drop` (reason on `verdict_reason`).
    pub const DROP: u64 = 4;
    /// Not a model verdict: the placeholder of a service frame before the forward path
    /// decides (dropped and counted outside the model's counters if it ever left; no
    /// configuration the model serves produces it).
    pub const REFUSED: u64 = 5;
}

// rust-hdl's Verilog generator cannot name constants through module paths, so the
// controller below writes numbers: register addresses (`regmap::addr`: CONTROL 0x002,
// COUNTER_SELECT 0x050, COUNTER_HI 0x051, COUNTER_LO 0x052), counter-RAM addresses (the
// model's counter index, see `csel_addr`), `DropReason::index` (runt 0 ..
// unsupported_ethertype 6, not_for_us 12), `PuntReason::index` (arp 0, ipv6 1,
// own_address 2, multicast 3), `action` codes, and the codes of `rewrite::op`,
// `parser::status` and `parser::l4_kind`.

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum Engine {
    Idle,
    Wait1,
    Wait2,
    Wait3,
}

/// The fast path with `2^A` flow-table sets (4 ways).
#[derive(LogicBlock)]
pub struct FastPath<const A: usize> {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// The time in ms (wrapping), the model's `now_ms`.
    pub now_ms: Signal<In, Bits<32>>,
    /// Port 1 (the network), receive.
    pub net_rx: ByteStreamSlave,
    /// Port 1 (the network), transmit.
    pub net_tx: ByteStreamMaster,
    /// Port 2 (the MCU), receive: frames to send to the network.
    pub mcu_rx: ByteStreamSlave,
    /// Port 2 (the MCU), transmit: punted frames.
    pub mcu_tx: ByteStreamMaster,
    /// Register bus: word address of this cycle's access.
    pub bus_addr: Signal<In, Bits<16>>,
    /// Register bus: value to write.
    pub bus_wdata: Signal<In, Bits<32>>,
    /// Register bus: write this cycle.
    pub bus_we: Signal<In, Bit>,
    /// Register bus: read this cycle.
    pub bus_re: Signal<In, Bit>,
    /// Register bus: the value of the last read, from the cycle after it.
    pub bus_rdata: Signal<Out, Bits<32>>,
    /// One-cycle strobe: a frame's verdict is on the `verdict_*` outputs.
    pub verdict_valid: Signal<Out, Bit>,
    /// What happened ([`action`]).
    pub verdict_action: Signal<Out, Bits<3>>,
    /// `DropReason::index` or `PuntReason::index` for a drop or punt.
    pub verdict_reason: Signal<Out, Bits<4>>,
    /// Service-table index (forwarded frames).
    pub verdict_service: Signal<Out, Bits<8>>,
    /// Backend-table index (forwarded frames).
    pub verdict_backend: Signal<Out, Bits<16>>,
    /// The frame created its flow.
    pub verdict_new_flow: Signal<Out, Bit>,
    /// The flow hash (0 without an IPv4 header).
    pub verdict_hash: Signal<Out, Bits<32>>,
    /// Length of the output frame (0 when dropped).
    pub verdict_len: Signal<Out, Bits<16>>,
    /// One-cycle strobe: a commit took effect (before the next verdict's frame).
    pub verdict_commit: Signal<Out, Bit>,

    regs: RegisterBlock,
    parser: HeaderParser,
    fifo: FrameFifo<Bits<10>, 11>,
    hash: ToeplitzHash,
    rewrite: Rewrite,
    counters: SinglePortRam<Bits<64>, 10>,
    fwd: Forward<A>,
    nat: NatReply,

    // Ingress arbiter: 0 none, 1 network, 2 MCU.
    in_sel: DFF<Bits<2>>,
    // Timing: `in_sel == 1` and `in_sel == 2` as registers (the select of the data mux
    // in front of the parser's checksum adders).
    sel_net: DFF<Bit>,
    sel_mcu: DFF<Bit>,
    last_mcu: DFF<Bit>,
    // The register stage between the arbiter and the parser.
    pv: DFF<Bit>,
    pdata: DFF<Bits<8>>,
    pkeep: DFF<Bits<1>>,
    plast: DFF<Bit>,
    puser: DFF<Bit>,
    pm: DFF<Bit>,
    hdr_mcu: DFF<Bit>,
    // Egress of the frame in the rewrite stage's output: 1 network, 2 MCU; busy until its
    // last byte leaves.
    out_port: DFF<Bits<2>>,
    out_busy: DFF<Bit>,
    // The output register slice after the rewrite stage (verilog-ethernet's axis_register
    // with a skid register): beats of {port 11:10, tuser 9, tlast 8, tdata 7:0}. The
    // rewrite's ready is `!o_skid_v`, a local flip-flop, so the ports' tready reaches only
    // these registers (through the board's skid, the output's tready into the rewrite's
    // take was the board image's critical path). One cycle of latency, full throughput.
    o_main: DFF<Bits<12>>,
    o_main_v: DFF<Bit>,
    o_skid: DFF<Bits<12>>,
    o_skid_v: DFF<Bit>,

    // The header queue: the parser's headers (and whether the frame came from the MCU)
    // wait here for the controller, so the parser goes on with the next frames (into the
    // frame FIFO) while a frame waits for its output (behind a long one): 16 entries
    // (distributed RAM), read one cycle after the address (`hq_valid`: the head is on
    // `read_data`).
    hq: RAM<Bits<248>, 4>,
    hq_wr: DFF<Bits<5>>,
    hq_room: DFF<Bit>,
    // `is_multicast`, registered.
    mc_q: DFF<Bit>,
    hq_rd: DFF<Bits<5>>,
    hq_valid: DFF<Bit>,
    hq_push: Signal<Local, Bit>,
    hq_pop: Signal<Local, Bit>,
    hq_used: Signal<Local, Bits<5>>,
    h: Signal<Local, Bits<248>>,
    h_status: Signal<Local, Bits<4>>,
    h_frame_len: Signal<Local, Bits<16>>,
    h_from_mcu: Signal<Local, Bit>,

    // The controller.
    // The controller's steps, one-hot (see `update`).
    t_tw: DFF<Bit>,
    t_scan: DFF<Bit>,
    t_rules: DFF<Bit>,
    t_cls: DFF<Bit>,
    t_fnmul: DFF<Bit>,
    t_fnwait: DFF<Bit>,
    t_sdiv: DFF<Bit>,
    t_sdec: DFF<Bit>,
    t_natsend: DFF<Bit>,
    t_natwait: DFF<Bit>,
    t_rsvc: DFF<Bit>,
    t_rsvcuse: DFF<Bit>,
    t_rhsend: DFF<Bit>,
    t_rhwait: DFF<Bit>,
    t_rfwait: DFF<Bit>,
    t_rvip: DFF<Bit>,
    t_rvipuse: DFF<Bit>,
    t_fwait: DFF<Bit>,
    t_issue: DFF<Bit>,
    // The controller is not idle (`step != Idle`), as a register.
    p_busy: DFF<Bit>,
    // The tables' commit strobe (see `fwd.commit`).
    commit_q: DFF<Bit>,
    commit_pending: DFFWithInit<Bit>,
    // The commit was taken last cycle: the shadow settings load now (a register, so the
    // ~600 loads do not hang off the idle decision).
    load_cfg: DFF<Bit>,
    // `step == KeyLoad`, as a register.
    kl: DFF<Bit>,
    // The forward path's / NAT return unit's result shows (see `fwd.res_ready`).
    fr_seen: DFF<Bit>,
    // `step` is `FwdSend`, `RFwdSend`, `FnSend`.
    s_fwd: DFF<Bit>,
    s_rfwd: DFF<Bit>,
    s_fn: DFF<Bit>,
    // The scanned entry's compare (see the scan).
    sc_hit: DFF<Bit>,
    sc_match: DFF<Bit>,
    sc_mode: DFF<Bits<3>>,
    sc_algo: DFF<Bits<3>>,
    sc_sticky: DFF<Bit>,
    sc_stk_to: DFF<Bits<32>>,
    sc_gue: DFF<Bits<16>>,
    sc_members: DFF<Bits<8>>,
    nr_seen: DFF<Bit>,
    over_mtu_q: DFF<Bit>,
    sd_over: DFF<Bit>,
    sd_lt: DFF<Bit>,
    kw_lo: DFF<Bits<32>>,
    kw_hi: DFF<Bits<32>>,
    kw_wr: DFF<Bit>,
    kw_idx: DFF<Bits<4>>,
    key_wr_q: DFF<Bit>,
    key_widx_q: DFF<Bits<4>>,
    key_word_q: DFF<Bits<32>>,
    // Shadow and active service entry differ (the entry read two cycles ago).
    svc_diff: DFF<Bit>,
    key_idx: DFF<Bits<5>>,
    // Bit k set when `key_idx` is k (k < 10): shifted with it.
    ksel: DFF<Bits<10>>,
    scan_idx: DFF<Bits<5>>,
    vip_any: DFF<Bit>,
    found: DFF<Bit>,
    found_idx: DFF<Bits<4>>,
    found_mode: DFF<Bits<3>>,
    found_algo: DFF<Bits<3>>,
    found_sticky: DFF<Bit>,
    found_stk_to: DFF<Bits<32>>,
    found_gue: DFF<Bits<16>>,
    found_members: DFF<Bits<8>>,
    src_hash: DFF<Bits<32>>,
    // Services whose active entry changed at the last commit (round-robin resets).
    svc_changed: DFF<Bits<16>>,
    l3_offset: DFF<Bits<8>>,
    l4_offset: DFF<Bits<8>>,
    ip_total_len: DFF<Bits<16>>,
    ip_checksum: DFF<Bits<16>>,
    l4_checksum: DFF<Bits<16>>,
    tcp_flags: DFF<Bits<8>>,
    fwd_backend: DFF<Bits<16>>,
    fwd_new: DFF<Bit>,
    ev_lookup: DFF<Bits<2>>,
    ev_insert: DFF<Bits<2>>,
    fwd_addr: DFF<Bits<32>>,
    fwd_port: DFF<Bits<16>>,
    fwd_mac: DFF<Bits<48>>,
    cmd_set_dst: DFF<Bit>,
    // The NAT return path: the rewrite sets the source (the VIP endpoint); the service's
    // VIP and port, the rebuilt client flow's hash, the replying member.
    cmd_set_src: DFF<Bit>,
    ret_vip: DFF<Bits<32>>,
    ret_vport: DFF<Bits<16>>,
    ret_hash: DFF<Bits<32>>,
    ret_backend: DFF<Bits<16>>,
    src_mac: DFF<Bits<48>>,
    mac: DFF<Bits<48>>,
    tunnel_src: DFF<Bits<32>>,
    ring_size: DFF<Bits<32>>,
    t_syn: DFF<Bits<32>>,
    t_est: DFF<Bits<32>>,
    t_close: DFF<Bits<32>>,
    t_udp: DFF<Bits<32>>,
    eng_af: DFF<Bit>,
    pool_hit: DFF<Bit>,
    // Timing: the full-NAT pool and own-address comparisons, registered (the frame's
    // dst_ip is stable from the cycle after Idle, the settings from the commit on).
    pool_match_q: DFF<Bit>,
    own_match_q: DFF<Bit>,
    // The first pool address the frame's destination matches (registered like
    // `pool_match_q`).
    pool_idx_q: DFF<Bits<3>>,
    // Bit k: the frame's destination is SNAT pool address k (k < count).
    pool_eq: DFF<Bits<8>>,
    /// The pool address at `snat_idx`, registered (`snat_idx` settles a cycle before
    /// `t_sdec` reads it: at `t_sdiv`).
    snat_addr_q: DFF<Bits<32>>,
    // Full NAT: ports per pool address and the reply's port - base, registered.
    snat_per_q: DFF<Bits<20>>,
    snat_off_q: DFF<Bits<16>>,
    // Bit k: active service k is valid and of mode full NAT (set at a commit).
    fullnat_mask: DFF<Bits<16>>,
    // Full NAT: slot ↔ (pool index, port) by repeated subtraction / addition of the ports
    // per address (`snat_endpoint`, `snat_slot`).
    snat_acc: DFF<Bits<20>>,
    snat_idx: DFF<Bits<4>>,
    // `snat_idx` is 0 (registered beside it: `FnMul`'s end test is one flip-flop).
    fn_zero: DFF<Bit>,
    protocol: DFF<Bits<8>>,
    from_mcu: DFF<Bit>,
    status: DFF<Bits<4>>,
    l4_kind: DFF<Bits<3>>,
    src_ip: DFF<Bits<32>>,
    dst_ip: DFF<Bits<32>>,
    src_port: DFF<Bits<16>>,
    dst_port: DFF<Bits<16>>,
    frame_len: DFF<Bits<16>>,
    flow_hash: DFF<Bits<32>>,
    v_action: DFF<Bits<3>>,
    // The classification rules' outcome, registered every cycle from the frame's flags
    // (final in `Rules`) and applied in `Classify`.
    cls_action: DFF<Bits<3>>,
    cls_reason: DFF<Bits<4>>,
    cls_op: DFF<Bits<2>>,
    cls_port: DFF<Bits<2>>,
    cls_len: DFF<Bit>,
    cls_fwd: DFF<Bit>,
    cls_ret: DFF<Bit>,
    cls_fn: DFF<Bit>,
    v_reason: DFF<Bits<4>>,
    // The verdict's length: 0 (none), 1 (the frame's) or 2 (the frame's with the tunnel
    // header), a selector rather than the value (fewer, constant sources).
    v_len: DFF<Bits<2>>,
    v_valid: DFF<Bit>,
    v_commit: DFF<Bit>,
    cmd_op: DFF<Bits<2>>,
    cmd_port: DFF<Bits<2>>,
    // Timing of the flow hash, computed while the service table is scanned: request
    // taken, result captured.
    hash_sent: DFF<Bit>,
    hash_done: DFF<Bit>,
    // The counter queue: the counter jobs of the last frame issued (its verdict, flow
    // events, service, backend and length), walked by `count_idx` through the counter
    // engine while the controller decides the next frame.
    count_idx: DFF<Bits<4>>,
    c_busy: DFF<Bit>,
    // The job at the queue's head, registered (the 12-way job choice in front of the
    // engine's take was a critical path): valid, counter address and amount.
    jq_valid: DFF<Bit>,
    jq_addr: DFF<Bits<11>>,
    jq_amount: DFF<Bits<16>>,
    c_action: DFF<Bits<3>>,
    c_reason: DFF<Bits<4>>,
    c_ev_lookup: DFF<Bits<2>>,
    c_ev_insert: DFF<Bits<2>>,
    c_new: DFF<Bit>,
    c_svc: DFF<Bits<4>>,
    c_backend: DFF<Bits<8>>,
    c_len: DFF<Bits<16>>,

    // Active settings (the shadow ones are in the register block).
    own_address: DFF<Bits<32>>,
    snat_count: DFF<Bits<4>>,
    snat_base: DFF<Bits<16>>,
    snat0: DFF<Bits<32>>,
    snat1: DFF<Bits<32>>,
    snat2: DFF<Bits<32>>,
    snat3: DFF<Bits<32>>,
    snat4: DFF<Bits<32>>,
    snat5: DFF<Bits<32>>,
    snat6: DFF<Bits<32>>,
    snat7: DFF<Bits<32>>,
    // Service tables, shadow (written by the table port) and active (copied at a commit):
    // bits 119:112 member count, 111:80 sticky timeout, 79:64 GUE port, 63 valid, 62:60
    // mode, 59 UDP, 58:56 algorithm, 55 sticky, 47:16 VIP, 15:0 port: every field of the
    // decoded `ServiceEntry` (mode and algorithm codes as decoded: 6 and 7 are stored as
    // NAT 0 and Maglev 3), so two words are equal when the model's entries are.
    services_shadow: RAM<Bits<120>, 4>,
    services_active: RAM<Bits<120>, 4>,

    // Counter engine.
    eng: DFF<Engine>,
    eng_addr: DFF<Bits<11>>,
    eng_amount: DFF<Bits<16>>,
    eng_bus: DFF<Bit>,
    eng_zero: DFF<Bit>,
    csel_pending: DFF<Bit>,
    csel: DFF<Bits<32>>,
    latched: DFF<Bits<64>>,
    rd_mine: DFF<Bit>,
    rd_value: DFF<Bits<32>>,
    /// The bus's stage 1 for the addresses `FastPath` decodes itself (as the register
    /// block's: registered decode, acted on a cycle later): a `COUNTER_SELECT` write, a
    /// `CONTROL` write with bit 0, a read and whether it is of `COUNTER_HI` / `COUNTER_LO`,
    /// the write data.
    b_csel: DFF<Bit>,
    b_ctl: DFF<Bit>,
    b_rd: DFF<Bit>,
    b_hi: DFF<Bit>,
    b_lo: DFF<Bit>,
    b_wdata: DFF<Bits<32>>,

    in_take: Signal<Local, Bit>,
    stage_free: Signal<Local, Bit>,
    a_valid: Signal<Local, Bit>,
    a_last: Signal<Local, Bit>,
    out_take: Signal<Local, Bit>,
    o_beat: Signal<Local, Bits<12>>,
    o_ready: Signal<Local, Bit>,
    job_valid: Signal<Local, Bit>,
    job_addr: Signal<Local, Bits<11>>,
    job_accept: Signal<Local, Bit>,
    csel_addr: Signal<Local, Bits<11>>,
    csel_valid: Signal<Local, Bit>,
    csel_low: Signal<Local, Bits<11>>,
    class_addr: Signal<Local, Bits<11>>,
    reason_wide: Signal<Local, Bits<11>>,
    key_word: Signal<Local, Bits<32>>,
    key_word_hi: Signal<Local, Bits<32>>,
    is_multicast: Signal<Local, Bit>,
    has_ports: Signal<Local, Bit>,
    latched_hi: Signal<Local, Bits<32>>,
    svc_entry: Signal<Local, Bits<120>>,
    wr_mode: Signal<Local, Bits<3>>,
    wr_algo: Signal<Local, Bits<3>>,
    job_en: Signal<Local, Bit>,
    shadow_mode: Signal<Local, Bits<3>>,
    job_amount: Signal<Local, Bits<16>>,
    fwd_ok: Signal<Local, Bit>,
    fwd_go: Signal<Local, Bit>,
    ret_go: Signal<Local, Bit>,
    ret_key: Signal<Local, Bits<104>>,
    encap: Signal<Local, Bit>,
    overhead: Signal<Local, Bits<16>>,
    encap_len: Signal<Local, Bits<16>>,
    csel_af: Signal<Local, Bit>,
    svc_base: Signal<Local, Bits<11>>,
    be_base: Signal<Local, Bits<11>>,
    flow_key: Signal<Local, Bits<104>>,
    svc_vip_hit: Signal<Local, Bit>,
    svc_proto: Signal<Local, Bits<8>>,
    pool_match: Signal<Local, Bit>,
    key_prev: Signal<Local, Bits<5>>,
    key_prev2: Signal<Local, Bits<5>>,
    one16: Signal<Local, Bits<16>>,
    scan_prev2: Signal<Local, Bits<5>>,
    wr_valid: Signal<Local, Bit>,
    wr_udp: Signal<Local, Bit>,
    latched_lo: Signal<Local, Bits<32>>,
    pool_first: Signal<Local, Bits<3>>,
    snat_per: Signal<Local, Bits<20>>,
    snat_inv: Signal<Local, Bits<16>>,
    snat_off: Signal<Local, Bits<16>>,
    snat_eff: Signal<Local, Bits<4>>,
    snat_addr: Signal<Local, Bits<32>>,
    fn_go: Signal<Local, Bit>,
}

impl<const A: usize> Default for FastPath<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const A: usize> FastPath<A> {
    /// A fast path with empty tables, zero settings and zero counters.
    pub fn new() -> Self {
        FastPath {
            clock: Default::default(),
            now_ms: Default::default(),
            net_rx: Default::default(),
            net_tx: Default::default(),
            mcu_rx: Default::default(),
            mcu_tx: Default::default(),
            bus_addr: Default::default(),
            bus_wdata: Default::default(),
            bus_we: Default::default(),
            bus_re: Default::default(),
            bus_rdata: Default::default(),
            verdict_valid: Default::default(),
            verdict_action: Default::default(),
            verdict_reason: Default::default(),
            verdict_service: Default::default(),
            verdict_backend: Default::default(),
            verdict_new_flow: Default::default(),
            verdict_hash: Default::default(),
            verdict_len: Default::default(),
            verdict_commit: Default::default(),
            regs: RegisterBlock::new(),
            parser: HeaderParser::new(),
            fifo: Default::default(),
            hash: ToeplitzHash::new(),
            rewrite: Rewrite::new(),
            counters: SinglePortRam::zeroed(),
            fwd: Forward::new(),
            nat: NatReply::new(),
            cmd_set_src: Default::default(),
            ret_vip: Default::default(),
            ret_vport: Default::default(),
            ret_hash: Default::default(),
            ret_backend: Default::default(),
            src_mac: Default::default(),
            ret_go: Default::default(),
            ret_key: Default::default(),
            found_algo: Default::default(),
            found_sticky: Default::default(),
            found_stk_to: Default::default(),
            found_gue: Default::default(),
            found_members: Default::default(),
            src_hash: Default::default(),
            svc_changed: Default::default(),
            l3_offset: Default::default(),
            l4_offset: Default::default(),
            ip_total_len: Default::default(),
            ip_checksum: Default::default(),
            l4_checksum: Default::default(),
            tcp_flags: Default::default(),
            fwd_backend: Default::default(),
            fwd_new: Default::default(),
            ev_lookup: Default::default(),
            ev_insert: Default::default(),
            fwd_addr: Default::default(),
            fwd_port: Default::default(),
            fwd_mac: Default::default(),
            cmd_set_dst: Default::default(),
            mac: Default::default(),
            tunnel_src: Default::default(),
            ring_size: Default::default(),
            t_syn: Default::default(),
            t_est: Default::default(),
            t_close: Default::default(),
            t_udp: Default::default(),
            eng_af: Default::default(),
            job_en: Default::default(),
            shadow_mode: Default::default(),
            job_amount: Default::default(),
            fwd_ok: Default::default(),
            wr_mode: Default::default(),
            wr_algo: Default::default(),
            fwd_go: Default::default(),
            encap: Default::default(),
            overhead: Default::default(),
            encap_len: Default::default(),
            csel_af: Default::default(),
            svc_base: Default::default(),
            be_base: Default::default(),
            flow_key: Default::default(),
            in_sel: Default::default(),
            sel_net: Default::default(),
            sel_mcu: Default::default(),
            last_mcu: Default::default(),
            pv: Default::default(),
            pdata: Default::default(),
            pkeep: Default::default(),
            plast: Default::default(),
            puser: Default::default(),
            pm: Default::default(),
            hdr_mcu: Default::default(),
            out_port: Default::default(),
            out_busy: Default::default(),
            o_main: Default::default(),
            o_main_v: Default::default(),
            o_skid: Default::default(),
            o_skid_v: Default::default(),
            hq: Default::default(),
            hq_wr: Default::default(),
            hq_room: Default::default(),
            mc_q: Default::default(),
            hq_rd: Default::default(),
            hq_valid: Default::default(),
            hq_push: Default::default(),
            hq_pop: Default::default(),
            hq_used: Default::default(),
            h: Default::default(),
            h_status: Default::default(),
            h_frame_len: Default::default(),
            h_from_mcu: Default::default(),
            t_tw: Default::default(),
            t_scan: Default::default(),
            t_rules: Default::default(),
            t_cls: Default::default(),
            t_fnmul: Default::default(),
            t_fnwait: Default::default(),
            t_sdiv: Default::default(),
            t_sdec: Default::default(),
            t_natsend: Default::default(),
            t_natwait: Default::default(),
            t_rsvc: Default::default(),
            t_rsvcuse: Default::default(),
            t_rhsend: Default::default(),
            t_rhwait: Default::default(),
            t_rfwait: Default::default(),
            t_rvip: Default::default(),
            t_rvipuse: Default::default(),
            t_fwait: Default::default(),
            t_issue: Default::default(),
            p_busy: Default::default(),
            commit_q: Default::default(),
            commit_pending: DFFWithInit::new(true),
            load_cfg: Default::default(),
            kl: Default::default(),
            fr_seen: Default::default(),
            s_fwd: Default::default(),
            s_rfwd: Default::default(),
            s_fn: Default::default(),
            sc_hit: Default::default(),
            sc_match: Default::default(),
            sc_mode: Default::default(),
            sc_algo: Default::default(),
            sc_sticky: Default::default(),
            sc_stk_to: Default::default(),
            sc_gue: Default::default(),
            sc_members: Default::default(),
            nr_seen: Default::default(),
            over_mtu_q: Default::default(),
            sd_over: Default::default(),
            sd_lt: Default::default(),
            kw_lo: Default::default(),
            kw_hi: Default::default(),
            kw_wr: Default::default(),
            kw_idx: Default::default(),
            key_wr_q: Default::default(),
            key_widx_q: Default::default(),
            key_word_q: Default::default(),
            svc_diff: Default::default(),
            key_idx: Default::default(),
            ksel: Default::default(),
            scan_idx: Default::default(),
            vip_any: Default::default(),
            found: Default::default(),
            found_idx: Default::default(),
            found_mode: Default::default(),
            pool_hit: Default::default(),
            pool_match_q: Default::default(),
            own_match_q: Default::default(),
            pool_idx_q: Default::default(),
            pool_eq: Default::default(),
            snat_addr_q: Default::default(),
            snat_per_q: Default::default(),
            snat_off_q: Default::default(),
            fullnat_mask: Default::default(),
            snat_acc: Default::default(),
            snat_idx: Default::default(),
            fn_zero: Default::default(),
            snat_base: Default::default(),
            pool_first: Default::default(),
            snat_per: Default::default(),
            snat_inv: Default::default(),
            snat_off: Default::default(),
            snat_eff: Default::default(),
            snat_addr: Default::default(),
            one16: Default::default(),
            fn_go: Default::default(),
            protocol: Default::default(),
            // Both banks start as the model's `ServiceEntry::EMPTY` (GUE port 6080,
            // Maglev) so that the commit's compare agrees with the model's.
            services_shadow: RAM::new(empty_services()),
            services_active: RAM::new(empty_services()),
            snat_count: Default::default(),
            snat0: Default::default(),
            snat1: Default::default(),
            snat2: Default::default(),
            snat3: Default::default(),
            snat4: Default::default(),
            snat5: Default::default(),
            snat6: Default::default(),
            snat7: Default::default(),
            svc_entry: Default::default(),
            svc_vip_hit: Default::default(),
            svc_proto: Default::default(),
            pool_match: Default::default(),
            key_prev: Default::default(),
            key_prev2: Default::default(),
            scan_prev2: Default::default(),
            wr_valid: Default::default(),
            wr_udp: Default::default(),
            from_mcu: Default::default(),
            status: Default::default(),
            l4_kind: Default::default(),
            src_ip: Default::default(),
            dst_ip: Default::default(),
            src_port: Default::default(),
            dst_port: Default::default(),
            frame_len: Default::default(),
            flow_hash: Default::default(),
            v_action: Default::default(),
            cls_action: Default::default(),
            cls_reason: Default::default(),
            cls_op: Default::default(),
            cls_port: Default::default(),
            cls_len: Default::default(),
            cls_fwd: Default::default(),
            cls_ret: Default::default(),
            cls_fn: Default::default(),
            v_reason: Default::default(),
            v_len: Default::default(),
            v_valid: Default::default(),
            v_commit: Default::default(),
            cmd_op: Default::default(),
            cmd_port: Default::default(),
            count_idx: Default::default(),
            jq_valid: Default::default(),
            jq_addr: Default::default(),
            jq_amount: Default::default(),
            hash_sent: Default::default(),
            hash_done: Default::default(),
            c_busy: Default::default(),
            c_action: Default::default(),
            c_reason: Default::default(),
            c_ev_lookup: Default::default(),
            c_ev_insert: Default::default(),
            c_new: Default::default(),
            c_svc: Default::default(),
            c_backend: Default::default(),
            c_len: Default::default(),
            own_address: Default::default(),
            eng: Default::default(),
            eng_addr: Default::default(),
            eng_amount: Default::default(),
            eng_bus: Default::default(),
            eng_zero: Default::default(),
            csel_pending: Default::default(),
            csel: Default::default(),
            latched: Default::default(),
            rd_mine: Default::default(),
            rd_value: Default::default(),
            b_csel: Default::default(),
            b_ctl: Default::default(),
            b_rd: Default::default(),
            b_hi: Default::default(),
            b_lo: Default::default(),
            b_wdata: Default::default(),
            in_take: Default::default(),
            stage_free: Default::default(),
            a_valid: Default::default(),
            a_last: Default::default(),
            out_take: Default::default(),
            o_beat: Default::default(),
            o_ready: Default::default(),
            job_valid: Default::default(),
            job_addr: Default::default(),
            job_accept: Default::default(),
            csel_addr: Default::default(),
            csel_valid: Default::default(),
            csel_low: Default::default(),
            class_addr: Default::default(),
            reason_wide: Default::default(),
            key_word: Default::default(),
            key_word_hi: Default::default(),
            is_multicast: Default::default(),
            has_ports: Default::default(),
            latched_hi: Default::default(),
            latched_lo: Default::default(),
        }
    }

    /// Whether the counter selected by the last `COUNTER_SELECT` write is latched (for
    /// testbenches: checks [`COUNTER_LATCH_CYCLES`]).
    pub fn counter_latched(&self) -> bool {
        let latching = self.eng.q.val() != Engine::Idle && self.eng_bus.q.val();
        !(self.b_csel.q.val() || self.csel_pending.q.val() || latching)
    }

    /// Marks every top-level input as driven (needed before `generate_verilog`).
    pub fn connect_inputs(&mut self) {
        self.clock.connect();
        self.now_ms.connect();
        for rx in [&mut self.net_rx, &mut self.mcu_rx] {
            rx.tdata.connect();
            rx.tkeep.connect();
            rx.tvalid.connect();
            rx.tlast.connect();
            rx.tuser.connect();
        }
        self.net_tx.tready.connect();
        self.mcu_tx.tready.connect();
        self.bus_addr.connect();
        self.bus_wdata.connect();
        self.bus_we.connect();
        self.bus_re.connect();
    }
}

/// The Verilog of a [`FastPath`] with `2^A` flow-table sets, top module `top`.
/// The 16 entries of a service table bank after reset: `ServiceEntry::EMPTY` in the
/// layout of `services_shadow` (GUE port 6080 at 79:64, algorithm Maglev 3 at 58:56).
fn empty_services() -> std::collections::BTreeMap<Bits<4>, Bits<120>> {
    let empty = (Bits::<120>::from(6080u64) << 64u64) | (Bits::<120>::from(3u64) << 56u64);
    (0..16u64).map(|a| (Bits::from(a), empty)).collect()
}

pub fn fast_path_verilog<const A: usize>() -> String {
    let mut uut = FastPath::<A>::new();
    uut.connect_inputs();
    uut.connect_all();
    generate_verilog(&uut)
}

impl<const A: usize> Logic for FastPath<A> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            in_sel,
            sel_net,
            sel_mcu,
            last_mcu,
            pv,
            pdata,
            pkeep,
            plast,
            puser,
            pm,
            hdr_mcu,
            out_port,
            out_busy,
            o_main,
            o_main_v,
            o_skid,
            o_skid_v,
            hq_wr,
            hq_room,
            mc_q,
            hq_rd,
            hq_valid,
            t_tw,
            t_scan,
            t_rules,
            t_cls,
            t_fnmul,
            t_fnwait,
            t_sdiv,
            t_sdec,
            t_natsend,
            t_natwait,
            t_rsvc,
            t_rsvcuse,
            t_rhsend,
            t_rhwait,
            t_rfwait,
            t_rvip,
            t_rvipuse,
            t_fwait,
            t_issue,
            p_busy,
            commit_q,
            commit_pending,
            load_cfg,
            kl,
            fr_seen,
            s_fwd,
            s_rfwd,
            s_fn,
            sc_hit,
            sc_match,
            sc_mode,
            sc_algo,
            sc_sticky,
            sc_stk_to,
            sc_gue,
            sc_members,
            nr_seen,
            over_mtu_q,
            sd_over,
            sd_lt,
            kw_lo,
            kw_hi,
            kw_wr,
            kw_idx,
            key_wr_q,
            key_widx_q,
            key_word_q,
            svc_diff,
            key_idx,
            ksel,
            scan_idx,
            vip_any,
            found,
            found_idx,
            found_mode,
            found_algo,
            found_sticky,
            found_stk_to,
            found_gue,
            found_members,
            src_hash,
            svc_changed,
            l3_offset,
            l4_offset,
            ip_total_len,
            ip_checksum,
            l4_checksum,
            tcp_flags,
            fwd_backend,
            fwd_new,
            ev_lookup,
            ev_insert,
            fwd_addr,
            fwd_port,
            fwd_mac,
            cmd_set_dst,
            cmd_set_src,
            ret_vip,
            ret_vport,
            ret_hash,
            ret_backend,
            src_mac,
            mac,
            tunnel_src,
            ring_size,
            t_syn,
            t_est,
            t_close,
            t_udp,
            eng_af,
            pool_hit,
            pool_match_q,
            own_match_q,
            pool_idx_q,
            pool_eq,
            snat_addr_q,
            snat_per_q,
            snat_off_q,
            fullnat_mask,
            snat_acc,
            snat_idx,
            fn_zero,
            protocol,
            snat_count,
            snat_base,
            snat0,
            snat1,
            snat2,
            snat3,
            snat4,
            snat5,
            snat6,
            snat7,
            from_mcu,
            status,
            l4_kind,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            frame_len,
            flow_hash,
            v_action,
            cls_action,
            cls_reason,
            cls_op,
            cls_port,
            cls_len,
            cls_fwd,
            cls_ret,
            cls_fn,
            v_reason,
            v_len,
            v_valid,
            v_commit,
            cmd_op,
            cmd_port,
            count_idx,
            jq_valid,
            jq_addr,
            jq_amount,
            hash_sent,
            hash_done,
            c_busy,
            c_action,
            c_reason,
            c_ev_lookup,
            c_ev_insert,
            c_new,
            c_svc,
            c_backend,
            c_len,
            own_address,
            eng,
            eng_addr,
            eng_amount,
            eng_bus,
            eng_zero,
            csel_pending,
            csel,
            latched,
            rd_mine,
            rd_value,
            b_csel,
            b_ctl,
            b_rd,
            b_hi,
            b_lo,
            b_wdata
        );
        // The mode of the service entry the shadow table reads (combinational, every
        // cycle: a local assigned on one path only would be a latch).
        self.shadow_mode.next = self.services_shadow.read_data.val().get_bits::<3>(60);
        self.regs.clock.next = self.clock.val();
        self.parser.clock.next = self.clock.val();
        self.fifo.clock.next = self.clock.val();
        self.hash.clock.next = self.clock.val();
        self.rewrite.clock.next = self.clock.val();
        self.counters.clock.next = self.clock.val();
        self.fwd.clock.next = self.clock.val();
        self.nat.clock.next = self.clock.val();
        self.hq.read_clock.next = self.clock.val();
        self.hq.write_clock.next = self.clock.val();
        self.services_shadow.read_clock.next = self.clock.val();
        self.services_shadow.write_clock.next = self.clock.val();
        self.services_active.read_clock.next = self.clock.val();
        self.services_active.write_clock.next = self.clock.val();

        // ---- Service table: the table port writes the shadow (index as the model's u8).
        self.services_shadow.write_enable.next = self.regs.table_write.val()
            & (self.regs.table_kind.val() == 1)
            & (self.regs.table_index.val().get_bits::<24>(4) == 0);
        self.services_shadow.write_address.next = self.regs.table_index.val().get_bits::<4>(0);
        self.wr_valid.next = self.regs.table_data0.val().get_bit(31);
        self.wr_udp.next = self.regs.table_data0.val().get_bits::<8>(16) == 17;
        // `regmap::mode_from` / `algorithm_from`: codes 6 and 7 are NAT and Maglev.
        self.wr_mode.next = self.regs.table_data0.val().get_bits::<3>(27);
        if self.wr_mode.val() > 5 {
            self.wr_mode.next = 0.into();
        }
        self.wr_algo.next = self.regs.table_data0.val().get_bits::<3>(24);
        if self.wr_algo.val() > 5 {
            self.wr_algo.next = 3.into();
        }
        self.services_shadow.write_data.next =
            (bit_cast::<120, 8>(self.regs.table_data0.val().get_bits::<8>(0)) << 112)
                | (bit_cast::<120, 32>(self.regs.table_data3.val()) << 80)
                | (bit_cast::<120, 16>(self.regs.table_data2.val().get_bits::<16>(0)) << 64)
                | (bit_cast::<120, 1>(self.wr_valid.val().into()) << 63)
                | (bit_cast::<120, 3>(self.wr_mode.val()) << 60)
                | (bit_cast::<120, 1>(self.wr_udp.val().into()) << 59)
                | (bit_cast::<120, 3>(self.wr_algo.val()) << 56)
                | (bit_cast::<120, 1>(self.regs.table_data0.val().get_bit(30).into()) << 55)
                | (bit_cast::<120, 32>(self.regs.table_data1.val()) << 16)
                | bit_cast::<120, 16>(self.regs.table_data2.val().get_bits::<16>(16));
        // The commit copies shadow entry k (read at key_idx k) into active entry k one
        // cycle later; the scan reads active entry k at scan_idx k.
        self.services_shadow.read_address.next = self.key_idx.q.val().get_bits::<4>(0);
        self.key_prev.next = self.key_idx.q.val() - 1;
        self.one16.next = 1.into();
        self.scan_prev2.next = self.scan_idx.q.val() - 2;
        self.services_active.write_address.next = self.key_prev.val().get_bits::<4>(0);
        self.services_active.write_data.next = self.services_shadow.read_data.val();
        self.services_active.write_enable.next =
            self.kl.q.val() & (self.key_idx.q.val() >= 1) & (self.key_idx.q.val() <= 16);
        self.services_active.read_address.next = self.scan_idx.q.val().get_bits::<4>(0);
        if self.scan_idx.q.val().get_bit(4) {
            // The scan's end (16, 17) stays at entry 15.
            self.services_active.read_address.next = 15.into();
        }
        if self.kl.q.val() {
            // The commit compares shadow and active entry k (both read at key_idx k).
            self.services_active.read_address.next = self.key_idx.q.val().get_bits::<4>(0);
        }
        self.svc_entry.next = self.services_active.read_data.val();
        self.svc_proto.next = 6.into();
        if self.svc_entry.val().get_bit(59) {
            self.svc_proto.next = 17.into();
        }
        self.svc_vip_hit.next = self.svc_entry.val().get_bit(63)
            & (self.svc_entry.val().get_bits::<32>(16) == self.dst_ip.q.val());
        // The scan's compare of the entry on read_data, registered (the compares and the
        // `found` decision in one cycle were a critical path).
        self.sc_hit.d.next = self.svc_vip_hit.val();
        self.sc_match.d.next = self.svc_vip_hit.val()
            & ((self.l4_kind.q.val() == 0) | (self.l4_kind.q.val() == 1))
            & (self.svc_proto.val() == self.protocol.q.val())
            & (self.svc_entry.val().get_bits::<16>(0) == self.dst_port.q.val());
        self.sc_mode.d.next = self.svc_entry.val().get_bits::<3>(60);
        self.sc_algo.d.next = self.svc_entry.val().get_bits::<3>(56);
        self.sc_sticky.d.next = self.svc_entry.val().get_bit(55);
        self.sc_stk_to.d.next = self.svc_entry.val().get_bits::<32>(80);
        self.sc_gue.d.next = self.svc_entry.val().get_bits::<16>(64);
        self.sc_members.d.next = self.svc_entry.val().get_bits::<8>(112);
        // SNAT pool hits, registered per address, combined a cycle later (the scan takes
        // 18 cycles; the frame's `dst_ip` holds from the pop on).
        self.pool_eq.d.next = (bit_cast::<8, 1>(
            ((self.dst_ip.q.val() == self.snat0.q.val()) & (self.snat_count.q.val() > 0)).into(),
        )) | (bit_cast::<8, 1>(
            ((self.dst_ip.q.val() == self.snat1.q.val()) & (self.snat_count.q.val() > 1)).into(),
        ) << 1)
            | (bit_cast::<8, 1>(
                ((self.dst_ip.q.val() == self.snat2.q.val()) & (self.snat_count.q.val() > 2))
                    .into(),
            ) << 2)
            | (bit_cast::<8, 1>(
                ((self.dst_ip.q.val() == self.snat3.q.val()) & (self.snat_count.q.val() > 3))
                    .into(),
            ) << 3)
            | (bit_cast::<8, 1>(
                ((self.dst_ip.q.val() == self.snat4.q.val()) & (self.snat_count.q.val() > 4))
                    .into(),
            ) << 4)
            | (bit_cast::<8, 1>(
                ((self.dst_ip.q.val() == self.snat5.q.val()) & (self.snat_count.q.val() > 5))
                    .into(),
            ) << 5)
            | (bit_cast::<8, 1>(
                ((self.dst_ip.q.val() == self.snat6.q.val()) & (self.snat_count.q.val() > 6))
                    .into(),
            ) << 6)
            | (bit_cast::<8, 1>(
                ((self.dst_ip.q.val() == self.snat7.q.val()) & (self.snat_count.q.val() > 7))
                    .into(),
            ) << 7);
        self.pool_match.next = self.pool_eq.q.val() != 0;
        self.pool_match_q.d.next = self.pool_match.val();
        // The model's `position`: the first pool address that matches.
        self.pool_first.next = 7.into();
        if self.pool_eq.q.val().get_bit(6) {
            self.pool_first.next = 6.into();
        }
        if self.pool_eq.q.val().get_bit(5) {
            self.pool_first.next = 5.into();
        }
        if self.pool_eq.q.val().get_bit(4) {
            self.pool_first.next = 4.into();
        }
        if self.pool_eq.q.val().get_bit(3) {
            self.pool_first.next = 3.into();
        }
        if self.pool_eq.q.val().get_bit(2) {
            self.pool_first.next = 2.into();
        }
        if self.pool_eq.q.val().get_bit(1) {
            self.pool_first.next = 1.into();
        }
        if self.pool_eq.q.val().get_bit(0) {
            self.pool_first.next = 0.into();
        }
        self.pool_idx_q.d.next = self.pool_first.val();
        // Full NAT: ports per pool address (65536 - base), the addresses that count
        // (`snat_pool` has 8), the address of pool index `snat_idx`.
        // (Locals, not expressions inside `bit_cast`: the Verilog widens an expression
        // before it is evaluated.)
        self.snat_inv.next = !self.snat_base.q.val();
        self.snat_per.next = bit_cast::<20, 16>(self.snat_inv.val()) + 1;
        self.snat_off.next = self.dst_port.q.val() - self.snat_base.q.val();
        // Registered for the slot arithmetic (two additions in a row were a critical
        // path): the base changes at a commit, the port at a pop, both many cycles before
        // a full-NAT reply gets to `FnMul`.
        self.snat_per_q.d.next = self.snat_per.val();
        self.snat_off_q.d.next = self.snat_off.val();
        self.snat_eff.next = self.snat_count.q.val();
        if self.snat_count.q.val() > 8 {
            self.snat_eff.next = 8.into();
        }
        self.snat_addr.next = self.snat0.q.val();
        match self.snat_idx.q.val().index() {
            1 => self.snat_addr.next = self.snat1.q.val(),
            2 => self.snat_addr.next = self.snat2.q.val(),
            3 => self.snat_addr.next = self.snat3.q.val(),
            4 => self.snat_addr.next = self.snat4.q.val(),
            5 => self.snat_addr.next = self.snat5.q.val(),
            6 => self.snat_addr.next = self.snat6.q.val(),
            7 => self.snat_addr.next = self.snat7.q.val(),
            _ => {}
        }
        self.snat_addr_q.d.next = self.snat_addr.val();
        self.own_match_q.d.next = self.dst_ip.q.val() == self.own_address.q.val();

        // ---- Registers.
        self.regs.bus_addr.next = self.bus_addr.val();
        self.regs.bus_wdata.next = self.bus_wdata.val();
        self.regs.bus_we.next = self.bus_we.val();
        self.regs.bus_re.next = self.bus_re.val();
        // STATUS.0 stays set until the forward path's tables are copied.
        self.regs.commit_pending.next =
            self.commit_pending.q.val() | self.kl.q.val() | self.t_tw.q.val();
        self.regs.counter_hi.next = 0.into();
        self.regs.counter_lo.next = 0.into();
        self.latched_hi.next = self.latched.q.val().get_bits::<32>(32);
        self.latched_lo.next = self.latched.q.val().get_bits::<32>(0);
        // The bus in two stages, as the register block's (`BUS_READ_LATENCY`): the
        // decode of the addresses answered or acted on here is registered (stage 1), the
        // read or write happens a cycle later (stage 2).
        self.b_csel.d.next = self.bus_we.val() & (self.bus_addr.val() == 0x050);
        self.b_ctl.d.next =
            self.bus_we.val() & (self.bus_addr.val() == 0x002) & self.bus_wdata.val().get_bit(0);
        self.b_rd.d.next = self.bus_re.val();
        self.b_hi.d.next = self.bus_addr.val() == 0x051;
        self.b_lo.d.next = self.bus_addr.val() == 0x052;
        self.b_wdata.d.next = self.bus_wdata.val();
        // COUNTER_HI / COUNTER_LO are answered here from the counter RAM's latch.
        if self.b_rd.q.val() {
            self.rd_mine.d.next = false;
            if self.b_hi.q.val() {
                self.rd_mine.d.next = true;
                self.rd_value.d.next = self.latched_hi.val();
            }
            if self.b_lo.q.val() {
                self.rd_mine.d.next = true;
                self.rd_value.d.next = self.latched_lo.val();
            }
        }
        self.bus_rdata.next = self.regs.bus_rdata.val();
        if self.rd_mine.q.val() {
            self.bus_rdata.next = self.rd_value.q.val();
        }
        if self.b_ctl.q.val() {
            self.commit_pending.d.next = true;
        }

        // ---- Ingress arbiter: whole frames, alternating when both wait; the chosen beat
        // goes through a register stage to the parser (the data multiplexer in front of
        // the parser's checksum adders was a critical path). The stage takes a beat when
        // it is empty or the parser takes its beat; `pm` marks a beat from the MCU.
        self.net_rx.tready.next = false;
        self.mcu_rx.tready.next = false;
        self.stage_free.next = !self.pv.q.val() | self.parser.s_axis.tready.val();
        self.a_valid.next = false;
        self.a_last.next = self.net_rx.tlast.val();
        if self.sel_net.q.val() {
            self.a_valid.next = self.net_rx.tvalid.val();
            self.net_rx.tready.next = self.stage_free.val();
        }
        if self.sel_mcu.q.val() {
            self.a_valid.next = self.mcu_rx.tvalid.val();
            self.a_last.next = self.mcu_rx.tlast.val();
            self.mcu_rx.tready.next = self.stage_free.val();
        }
        if self.stage_free.val() {
            self.pv.d.next = self.a_valid.val();
            self.pdata.d.next = self.net_rx.tdata.val();
            self.pkeep.d.next = self.net_rx.tkeep.val();
            self.plast.d.next = self.net_rx.tlast.val();
            self.puser.d.next = self.net_rx.tuser.val();
            self.pm.d.next = self.sel_mcu.q.val();
            if self.sel_mcu.q.val() {
                self.pdata.d.next = self.mcu_rx.tdata.val();
                self.pkeep.d.next = self.mcu_rx.tkeep.val();
                self.plast.d.next = self.mcu_rx.tlast.val();
                self.puser.d.next = self.mcu_rx.tuser.val();
            }
        }
        self.parser.s_axis.tvalid.next = self.pv.q.val();
        self.parser.s_axis.tdata.next = self.pdata.q.val();
        self.parser.s_axis.tkeep.next = self.pkeep.q.val();
        self.parser.s_axis.tlast.next = self.plast.q.val();
        self.parser.s_axis.tuser.next = self.puser.q.val();
        self.in_take.next = self.a_valid.val() & self.stage_free.val();
        if self.in_sel.q.val() == 0 {
            if self.mcu_rx.tvalid.val() & (!self.net_rx.tvalid.val() | !self.last_mcu.q.val()) {
                self.in_sel.d.next = 2.into();
                self.sel_mcu.d.next = true;
            } else if self.net_rx.tvalid.val() {
                self.in_sel.d.next = 1.into();
                self.sel_net.d.next = true;
            }
        }
        if self.in_take.val() & self.a_last.val() {
            self.in_sel.d.next = 0.into();
            self.sel_net.d.next = false;
            self.sel_mcu.d.next = false;
            self.last_mcu.d.next = self.sel_mcu.q.val();
        }
        // Whether the frame the parser finished came from the MCU (its header records it).
        if self.pv.q.val() & self.parser.s_axis.tready.val() & self.plast.q.val() {
            self.hdr_mcu.d.next = self.pm.q.val();
        }

        // ---- Parser → frame FIFO ({tuser, tlast, tdata}).
        self.parser.m_axis.tready.next = !self.fifo.full.val();
        // The FIFO ignores a write while full and a read while empty.
        self.fifo.write.next = self.parser.m_axis.tvalid.val();
        self.fifo.data_in.next = bit_cast::<10, 8>(self.parser.m_axis.tdata.val())
            | (bit_cast::<10, 1>(self.parser.m_axis.tlast.val().into()) << 8)
            | (bit_cast::<10, 1>(self.parser.m_axis.tuser.val().into()) << 9);

        // ---- Frame FIFO → rewrite.
        self.rewrite.s_axis.tvalid.next = self.fifo.valid.val();
        self.rewrite.s_axis.tdata.next = self.fifo.data_out.val().get_bits::<8>(0);
        self.rewrite.s_axis.tlast.next = self.fifo.data_out.val().get_bit(8);
        self.rewrite.s_axis.tuser.next = self.fifo.data_out.val().get_bit(9);
        self.rewrite.s_axis.tkeep.next = 1.into();
        self.fifo.read.next = self.rewrite.s_axis.tready.val();

        // ---- Rewrite → output slice → the egress port of the frame (the port travels
        // with each beat: the next frame's command may set `out_port` while this frame's
        // last bytes are still in the slice).
        self.o_beat.next = bit_cast::<12, 8>(self.rewrite.m_axis.tdata.val())
            | (bit_cast::<12, 1>(self.rewrite.m_axis.tlast.val().into()) << 8)
            | (bit_cast::<12, 1>(self.rewrite.m_axis.tuser.val().into()) << 9)
            | (bit_cast::<12, 2>(self.out_port.q.val()) << 10);
        self.rewrite.m_axis.tready.next = !self.o_skid_v.q.val();
        self.out_take.next = self.rewrite.m_axis.tvalid.val() & !self.o_skid_v.q.val();
        self.o_ready.next = (self.net_tx.tready.val()
            & (self.o_main.q.val().get_bits::<2>(10) == 1))
            | (self.mcu_tx.tready.val() & (self.o_main.q.val().get_bits::<2>(10) == 2));
        if self.o_ready.val() | !self.o_main_v.q.val() {
            if self.o_skid_v.q.val() {
                self.o_main.d.next = self.o_skid.q.val();
                self.o_main_v.d.next = true;
                self.o_skid_v.d.next = false;
            } else {
                self.o_main.d.next = self.o_beat.val();
                self.o_main_v.d.next = self.rewrite.m_axis.tvalid.val();
            }
        } else if self.rewrite.m_axis.tvalid.val() & !self.o_skid_v.q.val() {
            self.o_skid.d.next = self.o_beat.val();
            self.o_skid_v.d.next = true;
        }
        self.net_tx.tdata.next = self.o_main.q.val().get_bits::<8>(0);
        self.net_tx.tkeep.next = 1.into();
        self.net_tx.tlast.next = self.o_main.q.val().get_bit(8);
        self.net_tx.tuser.next = self.o_main.q.val().get_bit(9);
        self.mcu_tx.tdata.next = self.o_main.q.val().get_bits::<8>(0);
        self.mcu_tx.tkeep.next = 1.into();
        self.mcu_tx.tlast.next = self.o_main.q.val().get_bit(8);
        self.mcu_tx.tuser.next = self.o_main.q.val().get_bit(9);
        self.net_tx.tvalid.next =
            self.o_main_v.q.val() & (self.o_main.q.val().get_bits::<2>(10) == 1);
        self.mcu_tx.tvalid.next =
            self.o_main_v.q.val() & (self.o_main.q.val().get_bits::<2>(10) == 2);
        if self.out_take.val() & self.rewrite.m_axis.tlast.val() {
            self.out_busy.d.next = false;
        }

        // ---- Rewrite command: pass, drop, or towards the backend (forward path).
        // A frame is issued when the counter queue can take its jobs, and not while a
        // counter latch waits for the queue to drain (the latch then counts every frame
        // whose verdict came before it).
        self.rewrite.s_cmd.tvalid.next = self.t_issue.q.val()
            & (!self.out_busy.q.val() | (self.cmd_op.q.val() == 1))
            & !self.c_busy.q.val()
            & !self.csel_pending.q.val()
            & !self.b_csel.q.val();
        self.rewrite.s_cmd.op.next = self.cmd_op.q.val();
        self.rewrite.s_cmd.dst_mac.next = self.fwd_mac.q.val();
        self.rewrite.s_cmd.src_mac.next = self.mac.q.val();
        self.rewrite.s_cmd.l3_offset.next = self.l3_offset.q.val();
        self.rewrite.s_cmd.l4_offset.next = self.l4_offset.q.val();
        self.rewrite.s_cmd.l4_kind.next = self.l4_kind.q.val();
        self.rewrite.s_cmd.ip_total_len.next = self.ip_total_len.q.val();
        self.rewrite.s_cmd.ip_checksum.next = self.ip_checksum.q.val();
        self.rewrite.s_cmd.l4_checksum.next = self.l4_checksum.q.val();
        self.rewrite.s_cmd.old_src_ip.next = self.src_ip.q.val();
        self.rewrite.s_cmd.old_dst_ip.next = self.dst_ip.q.val();
        self.rewrite.s_cmd.old_src_port.next = self.src_port.q.val();
        self.rewrite.s_cmd.old_dst_port.next = self.dst_port.q.val();
        self.rewrite.s_cmd.set_src.next = self.cmd_set_src.q.val();
        self.rewrite.s_cmd.src_ip.next = self.tunnel_src.q.val();
        self.rewrite.s_cmd.src_port.next = 0.into();
        if self.cmd_set_src.q.val() {
            self.rewrite.s_cmd.src_ip.next = self.ret_vip.q.val();
            self.rewrite.s_cmd.src_port.next = self.ret_vport.q.val();
        }
        self.rewrite.s_cmd.set_dst.next = self.cmd_set_dst.q.val();
        self.rewrite.s_cmd.dst_ip.next = self.fwd_addr.q.val();
        self.rewrite.s_cmd.dst_port.next = self.fwd_port.q.val();
        self.rewrite.s_cmd.gue.next = self.found_mode.q.val() == 4;
        self.rewrite.s_cmd.gue_port.next = self.found_gue.q.val();
        self.rewrite.s_cmd.flow_hash.next = self.flow_hash.q.val();

        // ---- The forward path: an L4 service of mode NAT (codes 0, 6, 7), full NAT, DSR,
        // IP-in-IP or GUE with any algorithm (round robin 0, weighted round robin 1, IP
        // hash 2, Maglev 3, 6, 7, least connections 4, least response time 5), sticky or
        // not.
        self.fwd_ok.next = self.found_mode.q.val() != 5;
        self.encap.next = (self.found_mode.q.val() == 3) | (self.found_mode.q.val() == 4);
        self.overhead.next = 20.into();
        if self.found_mode.q.val() == 4 {
            self.overhead.next = 28.into();
        }
        self.encap_len.next = bit_cast::<16, 8>(self.l3_offset.q.val())
            + self.ip_total_len.q.val()
            + self.overhead.val();
        self.flow_key.next = (bit_cast::<104, 8>(self.protocol.q.val()) << 96)
            | (bit_cast::<104, 32>(self.src_ip.q.val()) << 64)
            | (bit_cast::<104, 32>(self.dst_ip.q.val()) << 32)
            | (bit_cast::<104, 16>(self.src_port.q.val()) << 16)
            | bit_cast::<104, 16>(self.dst_port.q.val());
        self.fwd.table_write.next = self.regs.table_write.val();
        self.fwd.table_kind.next = self.regs.table_kind.val();
        self.fwd.table_index.next = self.regs.table_index.val();
        self.fwd.table_data0.next = self.regs.table_data0.val();
        self.fwd.table_data1.next = self.regs.table_data1.val();
        self.fwd.table_data2.next = self.regs.table_data2.val();
        self.fwd.table_data3.next = self.regs.table_data3.val();
        self.fwd.table_data4.next = self.regs.table_data4.val();
        // The commit strobe is a register, high in the KeyLoad cycle of key 16 (set at key
        // 15: KeyLoad counts one key per cycle).
        self.fwd.commit.next = self.commit_q.q.val();
        self.commit_q.d.next = self.kl.q.val() & (self.key_idx.q.val() == 15);
        self.fwd.ring_size.next = self.ring_size.q.val();
        self.fwd.timeout_syn.next = self.t_syn.q.val();
        self.fwd.timeout_established.next = self.t_est.q.val();
        self.fwd.timeout_closing.next = self.t_close.q.val();
        self.fwd.timeout_udp.next = self.t_udp.q.val();
        self.fwd.now.next = self.now_ms.val();
        // (`s_*`: the send states as registers, so the forward path's request
        // registers load on flip-flops, not on the state decode.)
        self.fwd.req_valid.next = self.s_fwd.q.val() | self.s_rfwd.q.val() | self.s_fn.q.val();
        self.fwd.req_return.next = self.s_rfwd.q.val();
        self.fwd.req_read.next = self.s_fn.q.val();
        self.fwd.req_slot.next = self.snat_acc.q.val();
        self.fwd.fullnat_mask.next = self.fullnat_mask.q.val();
        self.fwd.req_backend.next = self.ret_backend.q.val();
        self.fwd.req_mac.next = self.src_mac.q.val();
        self.fwd.req_service.next = self.found_idx.q.val();
        self.ret_key.next = (bit_cast::<104, 8>(self.protocol.q.val()) << 96)
            | (bit_cast::<104, 32>(self.dst_ip.q.val()) << 64)
            | (bit_cast::<104, 32>(self.ret_vip.q.val()) << 32)
            | (bit_cast::<104, 16>(self.dst_port.q.val()) << 16)
            | bit_cast::<104, 16>(self.ret_vport.q.val());
        self.fwd.req_key.next = self.flow_key.val();
        self.fwd.req_hash.next = self.flow_hash.q.val();
        if self.s_rfwd.q.val() {
            self.fwd.req_key.next = self.ret_key.val();
            self.fwd.req_hash.next = self.ret_hash.q.val();
        }
        self.fwd.req_tcp.next = self.l4_kind.q.val() == 0;
        self.fwd.req_flags.next = self.tcp_flags.q.val();
        // `Algorithm::is_stateless`: IP hash and Maglev.
        self.fwd.req_stateless.next =
            (self.found_algo.q.val() == 2) | (self.found_algo.q.val() == 3);
        self.fwd.req_algo.next = self.found_algo.q.val();
        self.fwd.req_src_hash.next = self.src_hash.q.val();
        self.fwd.req_members.next = self.found_members.q.val();
        self.fwd.req_sticky.next = self.found_sticky.q.val();
        self.fwd.req_sticky_timeout.next = self.found_stk_to.q.val();
        self.fwd.svc_changed.next = self.svc_changed.q.val();
        // A result is acted on the cycle after it shows (`fr_seen`, a register, so the
        // wide loads of the wait states hang off a flip-flop): the unit holds it until
        // then, and `res_ready` takes it in that cycle.
        self.fr_seen.d.next = self.fwd.res_valid.val()
            & !self.fr_seen.q.val()
            & (self.t_fwait.q.val() | self.t_rfwait.q.val() | self.t_fnwait.q.val());
        self.fwd.res_ready.next = self.fr_seen.q.val();

        // ---- The NAT reply table: shadow copies from the table port, rebuilt at a commit
        // (with the forward path's copy), probed by a frame that reaches rule 5.
        self.nat.table_write.next = self.regs.table_write.val();
        self.nat.table_kind.next = self.regs.table_kind.val();
        self.nat.table_index.next = self.regs.table_index.val();
        self.nat.table_data0.next = self.regs.table_data0.val();
        self.nat.table_data1.next = self.regs.table_data1.val();
        self.nat.table_data2.next = self.regs.table_data2.val();
        self.nat.commit.next = self.fwd.commit.val();
        self.nat.req_valid.next = self.t_natsend.q.val();
        self.nat.req_addr.next = self.src_ip.q.val();
        self.nat.req_port.next = self.src_port.q.val();
        self.nat.req_udp.next = self.l4_kind.q.val() == 1;
        self.nr_seen.d.next =
            self.nat.res_valid.val() & !self.nr_seen.q.val() & self.t_natwait.q.val();
        self.nat.res_ready.next = self.nr_seen.q.val();
        // A tunnelled frame over the tunnel MTU (registered: the service's mode and the
        // frame's length hold from the scan on).
        self.over_mtu_q.d.next = (self.ip_total_len.q.val() + self.overhead.val()) > 1500;
        // Full NAT's `snat_endpoint` division, one subtraction per two cycles: the
        // compares of the current step, registered.
        self.sd_over.d.next = self.snat_idx.q.val() >= self.snat_eff.val();
        self.sd_lt.d.next = self.snat_acc.q.val() < self.snat_per_q.q.val();
        // The NAT return unit's build reads the forward path's active member lists and
        // backend table, after its copy at the commit.
        self.nat.tables_busy.next = self.fwd.busy.val();
        self.fwd.ext_read.next = self.nat.ext_read.val();
        self.fwd.ext_mem_addr.next = self.nat.ext_mem_addr.val();
        self.fwd.ext_be_addr.next = self.nat.ext_be_addr.val();
        self.nat.ext_mem_data.next = self.fwd.ext_mem_data.val();
        self.nat.ext_be_data.next = self.fwd.ext_be_data.val();

        // ---- Hash unit: key words loaded at a commit; one flow per IPv4 frame.
        // Two registered stages on the way to the hash unit (one 10-way word selection
        // in a cycle was a critical path): the index's word among 0..4 and among 5..9,
        // then the choice between them; word k is written at key index k + 2.
        // The selections by `ksel`, the key index one-hot in flip-flops of its own (a
        // decode of `key_idx` in front of the 64 multiplexers was a critical path).
        self.key_word.next = self.regs.hash_key0.val();
        if self.ksel.q.val().get_bit(1) {
            self.key_word.next = self.regs.hash_key1.val();
        }
        if self.ksel.q.val().get_bit(2) {
            self.key_word.next = self.regs.hash_key2.val();
        }
        if self.ksel.q.val().get_bit(3) {
            self.key_word.next = self.regs.hash_key3.val();
        }
        if self.ksel.q.val().get_bit(4) {
            self.key_word.next = self.regs.hash_key4.val();
        }
        self.key_word_hi.next = self.regs.hash_key5.val();
        if self.ksel.q.val().get_bit(6) {
            self.key_word_hi.next = self.regs.hash_key6.val();
        }
        if self.ksel.q.val().get_bit(7) {
            self.key_word_hi.next = self.regs.hash_key7.val();
        }
        if self.ksel.q.val().get_bit(8) {
            self.key_word_hi.next = self.regs.hash_key8.val();
        }
        if self.ksel.q.val().get_bit(9) {
            self.key_word_hi.next = self.regs.hash_key9.val();
        }
        self.kw_lo.d.next = self.key_word.val();
        self.kw_hi.d.next = self.key_word_hi.val();
        self.kw_wr.d.next = self.kl.q.val() & (self.key_idx.q.val() < 10);
        self.kw_idx.d.next = self.key_idx.q.val().get_bits::<4>(0);
        self.key_wr_q.d.next = self.kw_wr.q.val();
        self.key_widx_q.d.next = self.kw_idx.q.val();
        self.key_word_q.d.next = self.kw_lo.q.val();
        if self.kw_idx.q.val() >= 5 {
            self.key_word_q.d.next = self.kw_hi.q.val();
        }
        self.hash.key_write.next = self.key_wr_q.q.val();
        self.hash.key_word.next = self.key_widx_q.q.val();
        self.hash.key_data.next = self.key_word_q.q.val();
        self.has_ports.next = (self.l4_kind.q.val() == 0) | (self.l4_kind.q.val() == 1);
        self.hash.s_valid.next =
            (self.t_scan.q.val() & !self.hash_sent.q.val()) | self.t_rhsend.q.val();
        self.hash.src_ip.next = self.src_ip.q.val();
        self.hash.dst_ip.next = self.dst_ip.q.val();
        self.hash.src_port.next = self.src_port.q.val();
        self.hash.dst_port.next = self.dst_port.q.val();
        self.hash.has_ports.next = self.has_ports.val();
        if self.t_rhsend.q.val() {
            // The NAT return path's client flow (client, VIP, client port, port).
            self.hash.src_ip.next = self.dst_ip.q.val();
            self.hash.dst_ip.next = self.ret_vip.q.val();
            self.hash.src_port.next = self.dst_port.q.val();
            self.hash.dst_port.next = self.ret_vport.q.val();
        }
        self.hash.m_ready.next = true;

        // ---- Counter engine: one read-modify-write or bus latch at a time.
        self.reason_wide.next = bit_cast::<11, 4>(self.c_reason.q.val());
        self.class_addr.next = 1.into();
        if self.c_action.q.val() == 4 {
            self.class_addr.next = self.reason_wide.val() + 0x20;
        }
        if self.c_action.q.val() == 3 {
            self.class_addr.next = self.reason_wide.val() + 0x40;
        }
        // Jobs of a frame, in count_idx order: rx_frames; its class (from the MCU, a drop
        // or punt reason); the flow-table events (moved or expired at the lookup, evicted or
        // expired at the insert); a new flow's service and backend counts; a forwarded
        // frame's service and backend packets and bytes. Jobs that do not apply are skipped.
        self.svc_base.next = (bit_cast::<11, 4>(self.c_svc.q.val()) << 3) | 0x80;
        self.be_base.next = (bit_cast::<11, 8>(self.c_backend.q.val()) << 2) | 0x400;
        self.job_en.next = false;
        self.job_addr.next = 0.into();
        self.job_amount.next = 1.into();
        match self.count_idx.q.val().index() {
            0 => {
                self.job_en.next = true;
            }
            1 => {
                self.job_en.next = self.c_action.q.val() >= 2;
                self.job_addr.next = self.class_addr.val();
                // A refused frame (action 5) is counted at 0x3FF, outside the model's
                // index map.
                if self.c_action.q.val() == 5 {
                    self.job_addr.next = 0x3FF.into();
                }
            }
            2 => {
                self.job_en.next = self.c_ev_lookup.q.val() != 0;
                self.job_addr.next = 4.into();
                if self.c_ev_lookup.q.val() == 2 {
                    self.job_addr.next = 3.into();
                }
            }
            3 => {
                self.job_en.next = self.c_ev_insert.q.val() != 0;
                self.job_addr.next = 2.into();
                if self.c_ev_insert.q.val() == 2 {
                    self.job_addr.next = 3.into();
                }
            }
            4 => {
                self.job_en.next = self.c_new.q.val();
                self.job_addr.next = self.svc_base.val() | 4;
            }
            5 => {
                self.job_en.next = self.c_new.q.val();
                self.job_addr.next = self.be_base.val() | 2;
            }
            6 => {
                self.job_en.next = self.c_action.q.val() == 0;
                self.job_addr.next = self.svc_base.val();
            }
            7 => {
                self.job_en.next = self.c_action.q.val() == 0;
                self.job_addr.next = self.svc_base.val() | 1;
                self.job_amount.next = self.c_len.q.val();
            }
            8 => {
                self.job_en.next = self.c_action.q.val() == 0;
                self.job_addr.next = self.be_base.val();
            }
            9 => {
                self.job_en.next = self.c_action.q.val() == 0;
                self.job_addr.next = self.be_base.val() | 1;
                self.job_amount.next = self.c_len.q.val();
            }
            10 => {
                self.job_en.next = self.c_action.q.val() == 1;
                self.job_addr.next = self.svc_base.val() | 2;
            }
            11 => {
                self.job_en.next = self.c_action.q.val() == 1;
                self.job_addr.next = self.svc_base.val() | 3;
                self.job_amount.next = self.c_len.q.val();
            }
            _ => {}
        }
        self.job_valid.next = self.jq_valid.q.val();
        // Model counter index → RAM address: 0..0x7F as is, services 0x100..0x17F at
        // 0x80, backends 0x1000..0x13FF at 0x400; anything else reads 0.
        self.csel_low.next = self.csel.q.val().get_bits::<11>(0);
        self.csel_valid.next = false;
        self.csel_addr.next = self.csel_low.val();
        if self.csel.q.val() < 0x80 {
            self.csel_valid.next = true;
        }
        if (self.csel.q.val() >= 0x100) & (self.csel.q.val() < 0x180) {
            // Service fields 5..7 name nothing (their RAM words hold the refused count).
            self.csel_valid.next = self.csel_low.val().get_bits::<3>(0) < 5;
            self.csel_addr.next = (self.csel_low.val() & 0x7F) | 0x80;
        }
        self.csel_af.next = false;
        if (self.csel.q.val() >= 0x1000) & (self.csel.q.val() < 0x1400) {
            self.csel_valid.next = true;
            self.csel_addr.next = (self.csel_low.val() & 0x3FF) | 0x400;
            // Active flows live in the forward path.
            self.csel_af.next = self.csel_low.val().get_bits::<2>(0) == 3;
        }
        self.fwd.af_index.next = self.csel.q.val().get_bits::<8>(2);
        self.job_accept.next = false;
        // RAM word (1,024, 4 DP16KD): a backend's packets / bytes / flows at field × 256 +
        // slot (its active flows are the forward path's), any other address at 0x300 +
        // its low 8 bits.
        self.counters.address.next =
            bit_cast::<10, 8>(bit_cast::<8, 11>(self.eng_addr.q.val())) | 0x300;
        if self.eng_addr.q.val().get_bit(10) {
            self.counters.address.next =
                (bit_cast::<10, 2>(self.eng_addr.q.val().get_bits::<2>(0)) << 8)
                    | bit_cast::<10, 8>(self.eng_addr.q.val().get_bits::<8>(2));
        }
        self.counters.write_enable.next = false;
        self.counters.write_data.next =
            self.counters.read_data.val() + bit_cast::<64, 16>(self.eng_amount.q.val());
        match self.eng.q.val() {
            Engine::Idle => {
                if self.csel_pending.q.val() & !self.c_busy.q.val() & !self.jq_valid.q.val() {
                    self.csel_pending.d.next = false;
                    self.eng_addr.d.next = self.csel_addr.val();
                    self.eng_bus.d.next = true;
                    self.eng_zero.d.next = !self.csel_valid.val();
                    self.eng_af.d.next = self.csel_af.val();
                    self.eng.d.next = Engine::Wait1;
                } else if self.job_valid.val() {
                    self.job_accept.next = true;
                    self.eng_addr.d.next = self.jq_addr.q.val();
                    self.eng_amount.d.next = self.jq_amount.q.val();
                    self.eng_bus.d.next = false;
                    self.eng.d.next = Engine::Wait1;
                }
            }
            Engine::Wait1 => {
                self.eng.d.next = Engine::Wait2;
            }
            Engine::Wait2 => {
                self.eng.d.next = Engine::Wait3;
            }
            Engine::Wait3 => {
                // The RAM shows the word addressed two edges ago (Wait1's address); the
                // forward path's active-flow copy, the index registered at the edge into
                // Wait1 (`csel` settled the cycle before).
                self.eng.d.next = Engine::Idle;
                if self.eng_bus.q.val() {
                    self.latched.d.next = self.counters.read_data.val();
                    if self.eng_af.q.val() {
                        self.latched.d.next = bit_cast::<64, 32>(self.fwd.af_value.val());
                    }
                    if self.eng_zero.q.val() {
                        self.latched.d.next = 0.into();
                    }
                } else {
                    self.counters.write_enable.next = true;
                }
            }
            _ => {
                self.eng.d.next = Engine::Idle;
            }
        }
        // A `COUNTER_SELECT` write (stage 2), after the engine: in the cycle the engine
        // starts a latch of the previous selection it leaves `csel_pending` set, and the
        // new selection is latched after that one (4 cycles more; only back-to-back
        // selections meet this). The engine's start no longer waits on the bus decode
        // (that was a critical path in the board image).
        if self.b_csel.q.val() {
            self.csel_pending.d.next = true;
            self.csel.d.next = self.b_wdata.q.val();
        }
        // The walk: each job moves into the job register when that is free (empty, or
        // its job taken by the engine this cycle), a job that does not apply as an empty
        // one; the descriptor is free once job 11 has moved.
        if !self.jq_valid.q.val() | self.job_accept.val() {
            self.jq_valid.d.next = false;
            if self.c_busy.q.val() {
                self.jq_valid.d.next = self.job_en.val();
                self.jq_addr.d.next = self.job_addr.val();
                self.jq_amount.d.next = self.job_amount.val();
                self.count_idx.d.next = self.count_idx.q.val() + 1;
                if self.count_idx.q.val() == 11 {
                    self.c_busy.d.next = false;
                }
            }
        }

        // ---- The controller.
        self.is_multicast.next = (self.dst_ip.q.val() == 0xFFFF_FFFF_u64)
            | (self.dst_ip.q.val().get_bits::<4>(28) == 0xE);
        // Registered (the 32-bit compare in front of the rules was a critical path): the
        // rules are read at least the scan's 17 cycles after `dst_ip` loads.
        self.mc_q.d.next = self.is_multicast.val();
        // Rule 5 (a NAT backend's reply) for TCP/UDP to no VIP, pool or own address.
        self.ret_go.next = !self.vip_any.q.val()
            & !self.pool_hit.q.val()
            & self.has_ports.val()
            & !self.mc_q.q.val()
            & !self.own_match_q.q.val();
        // Rule 4, the full-NAT return path, for TCP/UDP to a pool address at a port from
        // the base on (below it: `return_no_flow`, set by Classify).
        self.fn_go.next = self.pool_hit.q.val()
            & !self.vip_any.q.val()
            & self.has_ports.val()
            & !self.mc_q.q.val()
            & !self.own_match_q.q.val()
            & (self.dst_port.q.val() >= self.snat_base.q.val());
        self.fwd_go.next = self.vip_any.q.val()
            & self.found.q.val()
            & self.fwd_ok.val()
            & !self.mc_q.q.val()
            & !self.own_match_q.q.val();
        // ---- Header queue: parser → controller, in frame order.
        self.hq_used.next = self.hq_wr.q.val() - self.hq_rd.q.val();
        // Room for a header, registered (the count's subtraction in front of the
        // parser's 248 header flip-flops and the queue's write enable was a critical
        // path): fewer than 15 entries at the last edge leaves room now, whatever the
        // last cycle pushed. (The queue holds at most 15 headers then, not 16.)
        self.hq_room.d.next = self.hq_used.val() < 15;
        self.parser.m_hdr.tready.next = self.hq_room.q.val();
        self.hq_push.next = self.parser.m_hdr.tvalid.val() & self.hq_room.q.val();
        self.hq.write_enable.next = self.hq_push.val();
        self.hq.write_address.next = self.hq_wr.q.val().get_bits::<4>(0);
        self.hq.write_data.next = bit_cast::<248, 48>(self.parser.m_hdr.src_mac.val())
            | (bit_cast::<248, 32>(self.parser.m_hdr.src_ip.val()) << 48)
            | (bit_cast::<248, 32>(self.parser.m_hdr.dst_ip.val()) << 80)
            | (bit_cast::<248, 16>(self.parser.m_hdr.src_port.val()) << 112)
            | (bit_cast::<248, 16>(self.parser.m_hdr.dst_port.val()) << 128)
            | (bit_cast::<248, 16>(self.parser.m_hdr.frame_len.val()) << 144)
            | (bit_cast::<248, 16>(self.parser.m_hdr.ip_total_len.val()) << 160)
            | (bit_cast::<248, 16>(self.parser.m_hdr.ip_checksum.val()) << 176)
            | (bit_cast::<248, 16>(self.parser.m_hdr.l4_checksum.val()) << 192)
            | (bit_cast::<248, 8>(self.parser.m_hdr.l3_offset.val()) << 208)
            | (bit_cast::<248, 8>(self.parser.m_hdr.l4_offset.val()) << 216)
            | (bit_cast::<248, 8>(self.parser.m_hdr.protocol.val()) << 224)
            | (bit_cast::<248, 8>(self.parser.m_hdr.tcp_flags.val()) << 232)
            | (bit_cast::<248, 4>(self.parser.m_hdr.status.val()) << 240)
            | (bit_cast::<248, 3>(self.parser.m_hdr.l4_kind.val()) << 244)
            | (bit_cast::<248, 1>(self.hdr_mcu.q.val().into()) << 247);
        if self.hq_push.val() {
            self.hq_wr.d.next = self.hq_wr.q.val() + 1;
        }
        self.hq.read_address.next = self.hq_rd.q.val().get_bits::<4>(0);
        self.h.next = self.hq.read_data.val();
        self.h_status.next = self.h.val().get_bits::<4>(240);
        self.h_frame_len.next = self.h.val().get_bits::<16>(144);
        self.h_from_mcu.next = self.h.val().get_bit(247);
        self.hq_pop.next =
            !self.p_busy.q.val() & !self.commit_pending.q.val() & self.hq_valid.q.val();
        if self.hq_pop.val() {
            self.hq_rd.d.next = self.hq_rd.q.val() + 1;
        }
        // The head is on read_data the cycle after it was addressed and written (not right
        // after a pop: the next entry's address is new then).
        self.hq_valid.d.next = (self.hq_wr.q.val() != self.hq_rd.q.val()) & !self.hq_pop.val();
        self.v_valid.d.next = false;
        self.v_commit.d.next = false;
        // While idle (`p_busy` low, a register) the frame registers follow the head of the
        // header queue, so their loads hang off one flip-flop rather than off the pop
        // decision; they hold from the pop on.
        if !self.p_busy.q.val() {
            self.from_mcu.d.next = self.h_from_mcu.val();
            self.status.d.next = self.h_status.val();
            self.l4_kind.d.next = self.h.val().get_bits::<3>(244);
            self.src_ip.d.next = self.h.val().get_bits::<32>(48);
            self.protocol.d.next = self.h.val().get_bits::<8>(224);
            self.dst_ip.d.next = self.h.val().get_bits::<32>(80);
            self.src_port.d.next = self.h.val().get_bits::<16>(112);
            self.dst_port.d.next = self.h.val().get_bits::<16>(128);
            self.frame_len.d.next = self.h_frame_len.val();
            self.l3_offset.d.next = self.h.val().get_bits::<8>(208);
            self.l4_offset.d.next = self.h.val().get_bits::<8>(216);
            self.ip_total_len.d.next = self.h.val().get_bits::<16>(160);
            self.ip_checksum.d.next = self.h.val().get_bits::<16>(176);
            self.l4_checksum.d.next = self.h.val().get_bits::<16>(192);
            self.tcp_flags.d.next = self.h.val().get_bits::<8>(232);
            self.fwd_new.d.next = false;
            self.ev_lookup.d.next = 0.into();
            self.ev_insert.d.next = 0.into();
            self.cmd_set_dst.d.next = false;
            self.cmd_set_src.d.next = false;
            self.src_mac.d.next = self.h.val().get_bits::<48>(0);
            self.flow_hash.d.next = 0.into();
            // A commit's starting state (`svc_changed` is read by the selection unit
            // during the commit only).
            self.key_idx.d.next = 0.into();
            self.ksel.d.next = 1.into();
            self.svc_changed.d.next = 0.into();
            // The scan's starting state.
            self.scan_idx.d.next = 0.into();
            self.vip_any.d.next = false;
            self.found.d.next = false;
            self.hash_sent.d.next = false;
            self.hash_done.d.next = false;
            // The verdict of a frame decided at the head: from the MCU → forwarded to
            // port 1; a parse error → dropped (status 8.. map to drop reasons 0.. in
            // order, 3 → reason 6) or punted (status 1, 2). A frame that is scanned
            // overwrites these.
            self.v_action.d.next = 4.into();
            self.v_reason.d.next = self.h_status.val() - 8;
            self.cmd_op.d.next = 1.into();
            self.cmd_port.d.next = 0.into();
            self.v_len.d.next = 0.into();
            if self.h_status.val() == 3 {
                self.v_reason.d.next = 6.into();
            }
            if (self.h_status.val() == 1) | (self.h_status.val() == 2) {
                self.v_action.d.next = 3.into();
                self.cmd_op.d.next = 0.into();
                self.cmd_port.d.next = 2.into();
                self.v_len.d.next = 1.into();
                self.v_reason.d.next = 0.into();
                if self.h_status.val() == 2 {
                    self.v_reason.d.next = 1.into();
                }
            }
            if self.h_from_mcu.val() {
                self.v_action.d.next = 2.into();
                self.v_reason.d.next = 0.into();
                self.cmd_op.d.next = 0.into();
                self.cmd_port.d.next = 1.into();
                self.v_len.d.next = 1.into();
            }
        }
        self.load_cfg.d.next = false;
        if self.load_cfg.q.val() {
            // (Rebuilt from the shadow entries while `kl`, from key index 1 on.)
            self.fullnat_mask.d.next = 0.into();
            self.own_address.d.next = self.regs.own_address.val();
            self.snat_count.d.next = self.regs.snat_count.val();
            self.snat_base.d.next = self.regs.snat_port.val();
            self.snat0.d.next = self.regs.snat_pool0.val();
            self.snat1.d.next = self.regs.snat_pool1.val();
            self.snat2.d.next = self.regs.snat_pool2.val();
            self.snat3.d.next = self.regs.snat_pool3.val();
            self.snat4.d.next = self.regs.snat_pool4.val();
            self.snat5.d.next = self.regs.snat_pool5.val();
            self.snat6.d.next = self.regs.snat_pool6.val();
            self.snat7.d.next = self.regs.snat_pool7.val();
            self.mac.d.next = (bit_cast::<48, 16>(self.regs.mac_hi.val()) << 32)
                | bit_cast::<48, 32>(self.regs.mac_lo.val());
            self.tunnel_src.d.next = self.regs.tunnel_src.val();
            self.ring_size.d.next = self.regs.ring_size.val();
            self.t_syn.d.next = self.regs.t_syn.val();
            self.t_est.d.next = self.regs.t_est.val();
            self.t_close.d.next = self.regs.t_close.val();
            self.t_udp.d.next = self.regs.t_udp.val();
        }
        // The controller, one-hot: `p_busy` low is `Idle`, `kl` is `KeyLoad`, `s_fwd`,
        // `s_fn`, `s_rfwd` are the three forward-path sends, every other step is a
        // flip-flop of its own (`t_*`): each step's decode is one flip-flop, and each
        // flag's next value depends only on the steps that lead into it. A transition
        // clears its own flag and sets the next.
        if !self.p_busy.q.val() {
            if self.commit_pending.q.val() {
                // The shadow settings become active between two frames (loaded on
                // `load_cfg`, next cycle).
                self.commit_pending.d.next = false;
                self.load_cfg.d.next = true;
                self.kl.d.next = true;
                self.v_commit.d.next = true;
                self.p_busy.d.next = true;
            } else if self.hq_valid.q.val() {
                // The next frame's header, from the head of the queue (its verdict
                // registers were loaded while idle, above).
                self.p_busy.d.next = true;
                if !self.h_from_mcu.val() & (self.h_status.val() == 0) {
                    // The service scan, with the flow hash beside it.
                    self.t_scan.d.next = true;
                } else {
                    self.t_issue.d.next = true;
                }
            }
        }
        // `KeyLoad` is on `kl`, below.
        if self.t_tw.q.val() & !self.fwd.busy.val() & !self.nat.busy.val() {
            self.p_busy.d.next = false;
            self.t_tw.d.next = false;
        }
        if self.t_scan.q.val() {
            // The flow hash (3 cycles), computed while the 16 entries are scanned.
            if self.hash.s_ready.val() {
                self.hash_sent.d.next = true;
            }
            if self.hash.m_valid.val() {
                self.flow_hash.d.next = self.hash.flow_hash.val();
                self.src_hash.d.next = self.hash.src_hash.val();
                self.hash_done.d.next = true;
            }
            // Active entry k is on read_data at scan_idx k + 1 and its compare in the
            // `sc_*` registers at k + 2 (the index stops at 17, reading entry 15).
            if self.scan_idx.q.val() != 17 {
                self.scan_idx.d.next = self.scan_idx.q.val() + 1;
            }
            if self.scan_idx.q.val() >= 2 {
                if self.sc_hit.q.val() {
                    self.vip_any.d.next = true;
                }
                if self.sc_match.q.val() & !self.found.q.val() {
                    self.found.d.next = true;
                    self.found_idx.d.next = self.scan_prev2.val().get_bits::<4>(0);
                    self.found_mode.d.next = self.sc_mode.q.val();
                    self.found_algo.d.next = self.sc_algo.q.val();
                    self.found_sticky.d.next = self.sc_sticky.q.val();
                    self.found_stk_to.d.next = self.sc_stk_to.q.val();
                    self.found_gue.d.next = self.sc_gue.q.val();
                    self.found_members.d.next = self.sc_members.q.val();
                }
            }
            if (self.scan_idx.q.val() == 17) & self.hash_done.q.val() {
                self.pool_hit.d.next = self.pool_match_q.q.val();
                self.t_scan.d.next = false;
                self.t_rules.d.next = true;
            }
        }
        // `Rules`: the flags are final, the rules' outcome registers at this edge.
        self.t_cls.d.next = self.t_rules.q.val();
        if self.t_rules.q.val() {
            self.t_rules.d.next = false;
        }
        if self.t_cls.q.val() {
            self.v_action.d.next = self.cls_action.q.val();
            self.v_reason.d.next = self.cls_reason.q.val();
            self.cmd_op.d.next = self.cls_op.q.val();
            self.cmd_port.d.next = self.cls_port.q.val();
            self.v_len.d.next = 0.into();
            if self.cls_len.q.val() {
                self.v_len.d.next = 1.into();
            }
            // `snat_slot` (full-NAT return path): (port - base) + pool index × ports
            // per address.
            self.snat_acc.d.next = bit_cast::<20, 16>(self.snat_off_q.q.val());
            self.snat_idx.d.next = bit_cast::<4, 3>(self.pool_idx_q.q.val());
            self.fn_zero.d.next = self.pool_idx_q.q.val() == 0;
            // (The three classes exclude each other.)
            if self.cls_fn.q.val() {
                self.t_fnmul.d.next = true;
            } else if self.cls_ret.q.val() {
                self.t_natsend.d.next = true;
            } else if self.cls_fwd.q.val() {
                self.s_fwd.d.next = true;
            } else {
                self.t_issue.d.next = true;
            }
        }
        if self.t_fnmul.q.val() {
            if self.fn_zero.q.val() {
                self.t_fnmul.d.next = false;
                self.s_fn.d.next = true;
            } else {
                self.snat_acc.d.next = self.snat_acc.q.val() + self.snat_per_q.q.val();
                self.snat_idx.d.next = self.snat_idx.q.val() - 1;
                self.fn_zero.d.next = self.snat_idx.q.val() == 1;
            }
        }
        if self.s_fn.q.val() & self.fwd.req_ready.val() {
            self.s_fn.d.next = false;
            self.t_fnwait.d.next = true;
        }
        if self.t_fnwait.q.val() & self.fr_seen.q.val() {
            // `fullnat_return`: the slot's flow (return_no_flow unless it matches),
            // rewritten to its client: MACs, source = VIP, destination = client.
            self.ev_lookup.d.next = self.fwd.res_lookup_event.val();
            self.fwd_backend.d.next = self.fwd.res_backend.val();
            self.t_fnwait.d.next = false;
            if self.fwd.res_kind.val() == 0 {
                self.found_idx.d.next = self.fwd.res_service.val();
                self.fwd_mac.d.next = self.fwd.res_mac.val();
                self.fwd_addr.d.next = self.fwd.res_address.val();
                self.fwd_port.d.next = self.fwd.res_port.val();
                self.cmd_set_dst.d.next = true;
                self.scan_idx.d.next = bit_cast::<5, 4>(self.fwd.res_service.val());
                self.t_rvip.d.next = true;
            } else {
                self.t_issue.d.next = true;
            }
        }
        // `SnatDiv`: `sd_over`, `sd_lt` register the compares of this step's values.
        self.t_sdec.d.next = self.t_sdiv.q.val();
        if self.t_sdiv.q.val() {
            self.t_sdiv.d.next = false;
        }
        if self.t_sdec.q.val() {
            // `snat_endpoint`: pool index = slot / ports per address (the first
            // `snat_count` of the 8 addresses, else no_backend), port = base + rest.
            if self.sd_over.q.val() {
                self.v_action.d.next = 4.into();
                self.v_reason.d.next = 8.into();
                self.cmd_port.d.next = 0.into();
                self.cmd_op.d.next = 1.into();
                self.v_len.d.next = 0.into();
                self.t_issue.d.next = true;
            } else if self.sd_lt.q.val() {
                self.ret_vip.d.next = self.snat_addr_q.q.val();
                self.ret_vport.d.next =
                    self.snat_base.q.val() + self.snat_acc.q.val().get_bits::<16>(0);
                self.cmd_set_src.d.next = true;
                self.t_issue.d.next = true;
            } else {
                self.snat_acc.d.next = self.snat_acc.q.val() - self.snat_per_q.q.val();
                self.snat_idx.d.next = self.snat_idx.q.val() + 1;
                self.t_sdiv.d.next = true;
            }
        }
        if self.t_natsend.q.val() & self.nat.req_ready.val() {
            self.t_natsend.d.next = false;
            self.t_natwait.d.next = true;
        }
        if self.t_natwait.q.val() & self.nr_seen.q.val() {
            // No NAT member sent it: not_for_us (set by Classify).
            self.t_natwait.d.next = false;
            if self.nat.res_found.val() {
                self.ret_backend.d.next = self.nat.res_backend.val();
                self.scan_idx.d.next = bit_cast::<5, 4>(self.nat.res_service.val());
                self.t_rsvc.d.next = true;
            } else {
                self.t_issue.d.next = true;
            }
        }
        // `RSvc`: the service's active entry is on read_data next cycle.
        self.t_rsvcuse.d.next = self.t_rsvc.q.val();
        if self.t_rsvc.q.val() {
            self.t_rsvc.d.next = false;
        }
        if self.t_rsvcuse.q.val() {
            // model `nat_return`: the client flow is (client, VIP, client port, port).
            self.ret_vip.d.next = self.svc_entry.val().get_bits::<32>(16);
            self.ret_vport.d.next = self.svc_entry.val().get_bits::<16>(0);
            self.t_rhsend.d.next = true;
        }
        if self.t_rhsend.q.val() & self.hash.s_ready.val() {
            self.t_rhsend.d.next = false;
            self.t_rhwait.d.next = true;
        }
        if self.t_rhwait.q.val() & self.hash.m_valid.val() {
            self.ret_hash.d.next = self.hash.flow_hash.val();
            self.t_rhwait.d.next = false;
            self.s_rfwd.d.next = true;
        }
        if self.s_rfwd.q.val() & self.fwd.req_ready.val() {
            self.s_rfwd.d.next = false;
            self.t_rfwait.d.next = true;
        }
        if self.t_rfwait.q.val() & self.fr_seen.q.val() {
            self.ev_lookup.d.next = self.fwd.res_lookup_event.val();
            self.fwd_backend.d.next = self.fwd.res_backend.val();
            self.v_action.d.next = 4.into();
            self.v_reason.d.next = 10.into();
            self.t_rfwait.d.next = false;
            if self.fwd.res_kind.val() == 0 {
                // The flow's service gives the VIP endpoint of the rewrite.
                self.found_idx.d.next = self.fwd.res_service.val();
                self.fwd_mac.d.next = self.fwd.res_mac.val();
                self.scan_idx.d.next = bit_cast::<5, 4>(self.fwd.res_service.val());
                self.t_rvip.d.next = true;
            } else {
                self.t_issue.d.next = true;
            }
        }
        // `RVip` → `RVipUse`.
        self.t_rvipuse.d.next = self.t_rvip.q.val();
        if self.t_rvip.q.val() {
            self.t_rvip.d.next = false;
        }
        if self.t_rvipuse.q.val() {
            // `return_to_client`: MACs (client's, ours) and the source = the VIP.
            self.ret_vip.d.next = self.svc_entry.val().get_bits::<32>(16);
            self.ret_vport.d.next = self.svc_entry.val().get_bits::<16>(0);
            self.v_action.d.next = 1.into();
            self.v_reason.d.next = 0.into();
            self.cmd_op.d.next = 2.into();
            self.cmd_port.d.next = 1.into();
            self.cmd_set_src.d.next = true;
            self.v_len.d.next = 1.into();
            self.t_issue.d.next = true;
        }
        if self.s_fwd.q.val() & self.fwd.req_ready.val() {
            self.s_fwd.d.next = false;
            self.t_fwait.d.next = true;
        }
        if self.t_fwait.q.val() & self.fr_seen.q.val() {
            self.fwd_backend.d.next = self.fwd.res_backend.val();
            self.fwd_new.d.next = self.fwd.res_new_flow.val();
            self.ev_lookup.d.next = self.fwd.res_lookup_event.val();
            self.ev_insert.d.next = self.fwd.res_insert_event.val();
            self.fwd_addr.d.next = self.fwd.res_address.val();
            self.fwd_port.d.next = self.fwd.res_port.val();
            self.fwd_mac.d.next = self.fwd.res_mac.val();
            self.t_fwait.d.next = false;
            self.t_issue.d.next = true;
            self.v_reason.d.next = 0.into();
            self.cmd_port.d.next = 0.into();
            self.cmd_op.d.next = 1.into();
            self.v_len.d.next = 0.into();
            self.v_action.d.next = 4.into();
            match self.fwd.res_kind.val().index() {
                0 => {
                    // `rewrite_forward`: NAT (MACs, destination), DSR (MACs),
                    // IP-in-IP / GUE (refused over the tunnel MTU).
                    self.v_action.d.next = 0.into();
                    self.cmd_port.d.next = 1.into();
                    self.cmd_op.d.next = 2.into();
                    self.v_len.d.next = 1.into();
                    self.cmd_set_dst.d.next = self.found_mode.q.val() != 2;
                    if self.encap.val() {
                        self.cmd_op.d.next = 3.into();
                        self.cmd_set_dst.d.next = false;
                        self.v_len.d.next = 2.into();
                        if self.over_mtu_q.q.val() {
                            self.v_action.d.next = 4.into();
                            self.v_reason.d.next = 11.into();
                            self.cmd_port.d.next = 0.into();
                            self.cmd_op.d.next = 1.into();
                            self.v_len.d.next = 0.into();
                        }
                    }
                    if self.found_mode.q.val() == 1 {
                        // Full NAT: the source is the slot's pool endpoint.
                        self.snat_acc.d.next = bit_cast::<20, 16>(self.fwd.res_slot.val());
                        self.snat_idx.d.next = 0.into();
                        self.t_issue.d.next = false;
                        self.t_sdiv.d.next = true;
                    }
                }
                1 => {
                    self.v_reason.d.next = 8.into();
                }
                2 => {
                    self.v_action.d.next = 3.into();
                    self.v_reason.d.next = 7.into();
                    self.cmd_port.d.next = 2.into();
                    self.cmd_op.d.next = 0.into();
                    self.v_len.d.next = 1.into();
                }
                _ => {
                    self.v_reason.d.next = 9.into();
                }
            }
        }
        if self.t_issue.q.val() & self.rewrite.s_cmd.tvalid.val() & self.rewrite.s_cmd.tready.val()
        {
            self.v_valid.d.next = true;
            if self.cmd_op.q.val() != 1 {
                self.out_busy.d.next = true;
                self.out_port.d.next = self.cmd_port.q.val();
            }
            // The frame's counter jobs go to the queue; the next frame's header
            // is taken at once.
            self.c_busy.d.next = true;
            self.count_idx.d.next = 0.into();
            self.c_action.d.next = self.v_action.q.val();
            self.c_reason.d.next = self.v_reason.q.val();
            self.c_ev_lookup.d.next = self.ev_lookup.q.val();
            self.c_ev_insert.d.next = self.ev_insert.q.val();
            self.c_new.d.next = self.fwd_new.q.val();
            self.c_svc.d.next = self.found_idx.q.val();
            self.c_backend.d.next = self.fwd_backend.q.val().get_bits::<8>(0);
            self.c_len.d.next = self.frame_len.q.val();
            self.p_busy.d.next = false;
            self.t_issue.d.next = false;
        }

        // The classification rules, every cycle (used in `Classify`, the cycle after
        // `Rules`, when the flags have been final for a cycle).
        self.cls_action.d.next = 4.into();
        self.cls_reason.d.next = 12.into();
        self.cls_op.d.next = 1.into();
        self.cls_port.d.next = 0.into();
        self.cls_len.d.next = false;
        // Rules 4-6 (last to first, so the earlier rule wins): a NAT backend's reply
        // (`ret_go` below: the NAT return path; not_for_us unless it matches), the
        // full-NAT pool, a VIP.
        if self.pool_hit.q.val() {
            // TCP/UDP: the full-NAT return path (`fn_go`); `return_no_flow` unless
            // it finds the flow.
            self.cls_reason.d.next = 10.into();
            if !self.has_ports.val() {
                self.cls_action.d.next = 4.into();
                self.cls_reason.d.next = 12.into();
            }
            if (self.l4_kind.q.val() == 2) | (self.l4_kind.q.val() == 3) {
                self.cls_action.d.next = 3.into();
                self.cls_op.d.next = 0.into();
                self.cls_port.d.next = 2.into();
                self.cls_len.d.next = true;
                // ICMP 6, fragment 5.
                self.cls_reason.d.next = 6.into();
                if self.l4_kind.q.val() == 3 {
                    self.cls_reason.d.next = 5.into();
                }
            }
        }
        if self.vip_any.q.val() {
            self.cls_action.d.next = 4.into();
            self.cls_reason.d.next = 7.into();
            if self.l4_kind.q.val() == 2 {
                self.cls_action.d.next = 3.into();
                self.cls_op.d.next = 0.into();
                self.cls_port.d.next = 2.into();
                self.cls_len.d.next = true;
                self.cls_reason.d.next = 6.into();
            }
            if self.found.q.val() {
                // Refused unless the forward path below takes it (`fwd_ok`).
                self.cls_action.d.next = 5.into();
                self.cls_reason.d.next = 0.into();
                self.cls_op.d.next = 1.into();
                self.cls_port.d.next = 0.into();
                self.cls_len.d.next = false;
                if self.found_mode.q.val() == 5 {
                    self.cls_action.d.next = 3.into();
                    self.cls_op.d.next = 0.into();
                    self.cls_port.d.next = 2.into();
                    self.cls_len.d.next = true;
                    self.cls_reason.d.next = 4.into();
                }
            }
            if self.l4_kind.q.val() == 3 {
                self.cls_action.d.next = 3.into();
                self.cls_op.d.next = 0.into();
                self.cls_port.d.next = 2.into();
                self.cls_len.d.next = true;
                self.cls_reason.d.next = 5.into();
            }
        }
        if self.mc_q.q.val() {
            self.cls_action.d.next = 3.into();
            self.cls_reason.d.next = 3.into();
            self.cls_op.d.next = 0.into();
            self.cls_port.d.next = 2.into();
            self.cls_len.d.next = true;
        }
        if self.own_match_q.q.val() {
            self.cls_action.d.next = 3.into();
            self.cls_reason.d.next = 2.into();
            self.cls_op.d.next = 0.into();
            self.cls_port.d.next = 2.into();
            self.cls_len.d.next = true;
        }
        self.cls_fwd.d.next = self.fwd_go.val();
        self.cls_ret.d.next = self.ret_go.val();
        self.cls_fn.d.next = self.fn_go.val();

        // `step == KeyLoad` (`kl`, a register): key words 0-9 and service entries 0-15
        // (copied one cycle behind the key index, compared two behind).
        self.svc_diff.d.next =
            self.services_shadow.read_data.val() != self.services_active.read_data.val();
        self.key_prev2.next = self.key_idx.q.val() - 2;
        if self.kl.q.val() {
            self.key_idx.d.next = self.key_idx.q.val() + 1;
            self.ksel.d.next = self.ksel.q.val() << 1;
            if (self.key_idx.q.val() >= 1)
                & self.services_shadow.read_data.val().get_bit(63)
                & (self.shadow_mode.val() == 1)
            {
                self.fullnat_mask.d.next = self.fullnat_mask.q.val()
                    | (self.one16.val() << self.key_prev.val().get_bits::<4>(0));
            }
            if (self.key_idx.q.val() >= 2) & self.svc_diff.q.val() {
                // Model `commit_banks`: the entry changed, its selection state resets.
                self.svc_changed.d.next = self.svc_changed.q.val()
                    | (self.one16.val() << self.key_prev2.val().get_bits::<4>(0));
            }
            if self.key_idx.q.val() == 17 {
                // The forward path copies its tables (fwd.commit strobed at 16).
                self.kl.d.next = false;
                self.t_tw.d.next = true;
            }
        }

        // ---- The verdict side channel.
        self.verdict_valid.next = self.v_valid.q.val();
        self.verdict_action.next = self.v_action.q.val();
        self.verdict_reason.next = self.v_reason.q.val();
        self.verdict_service.next = bit_cast::<8, 4>(self.found_idx.q.val());
        self.verdict_backend.next = self.fwd_backend.q.val();
        self.verdict_new_flow.next = self.fwd_new.q.val();
        self.verdict_hash.next = self.flow_hash.q.val();
        self.verdict_len.next = 0.into();
        if self.v_len.q.val() == 1 {
            self.verdict_len.next = self.frame_len.q.val();
        }
        if self.v_len.q.val() == 2 {
            self.verdict_len.next = self.encap_len.val();
        }
        self.verdict_commit.next = self.v_commit.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_is_synthesizable() {
        crate::verilog::validate("fast_path", &fast_path_verilog::<9>());
    }
}
