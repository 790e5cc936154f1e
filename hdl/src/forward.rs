//! The forward path of [`crate::pipeline::FastPath`] (`Pipeline::forward` of the model, for
//! every algorithm): the backend table (shadow and active banks), the Maglev rings
//! (shadow bank here, active bank in [`BackendSelect`]), the flow table ([`FlowTable`]),
//! backend selection and the active-flow count of every backend.
//!
//! ## Tables and commit
//! The register block's table port writes backend entries (table 2) into the shadow
//! backend RAM and ring entries (table 4, offsets below [`RING_STRIDE`]) into the shadow
//! ring RAM; service entries (table 1) are the controller's. A `commit` strobe starts the
//! copy of the shadow bank into the active one, as `Pipeline::commit_banks`:
//!
//! - every backend entry (4 cycles each, 1,024 in all; both banks are one RAM with one
//!   read port): the active bank gets the shadow word,
//!   the selection unit's eligibility bit is rewritten, and the backend's active-flow count
//!   is zeroed when its generation changes or the new state is `Free` (any code but 1–4);
//! - then the ring of every service written since the last commit (1 cycle per entry,
//!   [`RING_STRIDE`] per service) into the selection unit's ring RAM;
//! - at the same time the selection unit copies its member lists (table 3 writes go to
//!   its shadow bank) and resets the round-robin cursors of changed services
//!   and weighted `current`s of changed services (`svc_changed` from the controller, and
//!   changed lists): 19 cycles when no list was written, at most 2,563.
//!
//! `busy` is high while copying; the controller holds its commit (and `STATUS.0`) until it
//! falls, so the writer must not write tables while `STATUS.0` is set (the data path never
//! sees a half-copied bank). After reset, the unit first writes `EMPTY` into all
//! `16 × RING_STRIDE` ring entries of both banks (8,192 cycles, `busy` high): block RAM
//! has no reset, and the model's rings start empty.
//!
//! ## A request (one flow decision)
//! In the model's order: look the key up; a hit whose backend keeps flows (state Up or
//! Drain) with the flow's generation is refreshed (`last_seen`, TCP state) and used; a hit
//! on any other backend is removed (its backend loses an active flow if the generation
//! still matches) and counted as moved; an expired match (freed by the table) is counted as
//! expired and released the same way. On a miss: a TCP segment that is not a bare SYN is
//! `tcp_no_flow` unless the algorithm is stateless (`req_stateless`); otherwise
//! [`BackendSelect`] gives the backend (`req_algo`: Maglev the ring at the flow hash, IP
//! hash the ring at `req_src_hash`, (weighted) round robin and the least algorithms the
//! member list, reading each member's weight, response time and active-flow count here
//! (the backend RAM, `rt` and the count RAM); `NO_BACKEND` →
//! `no_backend`); a backend without a
//! MAC gives a punt (`neighbor_unresolved`) and no flow; else the flow is inserted (a
//! displaced entry is released and counted as evicted or expired) and the backend's active
//! count goes up (saturating, as the model's `u32`).
//!
//! The client MAC of every flow is kept per flow-table slot (one RAM of `4·2^A × 48`
//! addressed by the slot: 6 DP16KD for `A = 9`, where a RAM per way took 8): written when a forward request inserts or refreshes the flow (the model's
//! `client_mac = src_mac`).
//!
//! ## Persistence (`req_sticky`, `Pipeline::choose`)
//! On a miss of a sticky service's request (after the `tcp_no_flow` check), before the
//! algorithm: the persistence table is one way of [`STICKY_SETS`] entries (128 × 85 bits
//! of distributed RAM: the model's `SetAssociative` with `ways = 1`), addressed by
//! `(src_hash ^ service) % STICKY_SETS` (the model's `sticky_hash`). An entry holds valid (bit 84),
//! service (83:80), client address (79:48), backend (47:40), generation (39:32) and
//! `last_seen` (31:0). The client's entry (valid, same service and address) past
//! `req_sticky_timeout` (`now - last_seen > timeout`) is freed. A live one is used if its
//! backend is Up, of weight > 0, of the entry's generation (the backend word) and still
//! in the service's active member list (`members(svc)`: its first `min(count, 32)`
//! entries, scanned one a cycle through the selection unit's external read port);
//! otherwise it is freed. Used, the flow goes to that backend as if the algorithm had
//! chosen it and the entry is refreshed; else the algorithm chooses and its choice (not
//! `NO_BACKEND`) with its generation replaces whatever the set held. The entry is written
//! at `NewUse`, before the neighbour check, as the model inserts before it; a freed entry
//! with no choice is written empty. It adds 3 cycles to a new flow whose client has no
//! live entry, and 12 + the member count for a live one (in place of the algorithm).
//!
//! ## A return request (NAT reply, `req_return`)
//! The key and hash are the rebuilt client flow's; `req_backend` is the member that sent
//! the reply. A hit whose backend is not `req_backend` is `NO_BACKEND` (the controller's
//! `return_no_flow`), untouched; otherwise it is refreshed (`last_seen`, TCP state, not the
//! client MAC) and the result carries the flow's service (`entry.service % 16`) and client
//! MAC (`res_mac`). An expired match is freed, released and counted as expired, a miss and
//! an expired match are `NO_BACKEND` too. About 25 cycles.
//!
//! ## A slot read (full-NAT reply, `req_read`)
//! `req_slot` is the flow-table slot the reply's destination port names (`snat_slot`),
//! `req_key` the reply's own key (protocol, source = the backend). As the model's
//! `fullnat_return`: a slot beyond the table, a free slot, or a flow whose service is not
//! full NAT (`fullnat_mask`, the active services of mode full NAT), whose protocol is
//! not the reply's, or whose backend (`backends[backend % 256]`) has another generation,
//! address or port than the reply's source is `NO_BACKEND` (`return_no_flow`),
//! untouched. A matching flow past its idle timeout is freed, released and counted as
//! expired (`NO_BACKEND` too); otherwise it is refreshed as a NAT reply's flow and the
//! result carries its service, backend, client MAC (`res_mac`) and client endpoint
//! (`res_address`, `res_port`: the flow key's source). About 30 cycles.
//!
//! A forward request's result carries the flow's slot (`res_slot`): a full-NAT service's
//! source endpoint is the pool address and port of the slot (`snat_endpoint`).
//!
//! Latency: a hit takes about 27 cycles, a new flow about 50 (flow-table operations take
//! 9 each, a ring selection 10, a backend read 4, an active-count update 5: for timing,
//! the count RAM has a registered read and the saturating ±1 its own cycle, and the
//! decisions on a backend word are registered before the state machine uses them); round
//! robin adds 4 + 6 per member looked at instead of the ring's 10 (at most 196 with 32
//! members), weighted round robin 2 + 7 per member of the list (at most 226), least
//! connections and least response time up to 25 and 46 per eligible member
//! (see [`BackendSelect`]).

use rust_hdl::prelude::*;

use crate::flow_table::FlowTable;
use crate::ram::{BankedRam9, DualPortRam, SinglePortRam};
use crate::select::BackendSelect;

/// Ring entries per service in hardware: the largest Maglev ring (`RING_SIZE`) the fast
/// path can run is this (the ring RAMs here and in [`BackendSelect`] are `16 × 512`
/// entries of 9 bits). 512, not 1024: with 1024 the two ring banks alone take 16 of the
/// LFE5U-25F's 56 block RAMs and the fast path does not fit (see docs/PERFORMANCE.md).
pub const RING_STRIDE: usize = 512;

/// Entries of the persistence table (one way each, addressed by `(src_hash ^ service) %
/// STICKY_SETS`): the model's `Storage` for the fast path has `sticky` of this length and
/// `sticky_ways = 1`. In distributed RAM (128 × 85 bits): the board image has no block
/// RAM left for it (its four port FIFOs take the four `DP16KD` `FastPath` leaves).
pub const STICKY_SETS: usize = 128;

/// Result kinds on `res_kind`.
pub mod result {
    /// Towards `res_backend` (`Action::ToBackend`).
    pub const TO_BACKEND: u64 = 0;
    /// Dropped: `no_backend`.
    pub const NO_BACKEND: u64 = 1;
    /// Punted: `neighbor_unresolved` (no flow created).
    pub const UNRESOLVED: u64 = 2;
    /// Dropped: `tcp_no_flow`.
    pub const TCP_NO_FLOW: u64 = 3;
}

/// Flow-table events on `res_lookup_event` / `res_insert_event`.
pub mod event {
    /// Nothing to count.
    pub const NONE: u64 = 0;
    /// Lookup: a flow moved off its backend. Insert: a live flow was evicted.
    pub const MOVED_OR_EVICTED: u64 = 1;
    /// An expired flow was freed.
    pub const EXPIRED: u64 = 2;
}

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum Cp {
    Clear,
    Idle,
    Backend,
    Ring,
}

/// The forward path with `2^A` flow-table sets.
#[derive(LogicBlock)]
pub struct Forward<const A: usize> {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// Table write strobe (from `regs::RegisterBlock`).
    pub table_write: Signal<In, Bit>,
    /// Table code: 2 backend, 3 member, 4 ring (others ignored here).
    pub table_kind: Signal<In, Bits<4>>,
    /// Entry index (regmap encoding).
    pub table_index: Signal<In, Bits<28>>,
    /// Entry word 0.
    pub table_data0: Signal<In, Bits<32>>,
    /// Entry word 1.
    pub table_data1: Signal<In, Bits<32>>,
    /// Entry word 2.
    pub table_data2: Signal<In, Bits<32>>,
    /// Entry word 3.
    pub table_data3: Signal<In, Bits<32>>,
    /// Entry word 4 (a backend's response time, µs).
    pub table_data4: Signal<In, Bits<32>>,
    /// Strobe: copy the shadow bank to the active bank.
    pub commit: Signal<In, Bit>,
    /// Clearing or copying tables (no request is taken).
    pub busy: Signal<Out, Bit>,
    /// Active `RING_SIZE` setting.
    pub ring_size: Signal<In, Bits<32>>,
    /// Active timeouts, ms.
    pub timeout_syn: Signal<In, Bits<32>>,
    /// See `timeout_syn`.
    pub timeout_established: Signal<In, Bits<32>>,
    /// See `timeout_syn`.
    pub timeout_closing: Signal<In, Bits<32>>,
    /// See `timeout_syn`.
    pub timeout_udp: Signal<In, Bits<32>>,
    /// The time now, ms.
    pub now: Signal<In, Bits<32>>,
    /// A request is on the `req_*` inputs.
    pub req_valid: Signal<In, Bit>,
    /// The unit takes it this cycle.
    pub req_ready: Signal<Out, Bit>,
    /// Service slot.
    pub req_service: Signal<In, Bits<4>>,
    /// Flow key (`flow_table` encoding).
    pub req_key: Signal<In, Bits<104>>,
    /// Flow hash.
    pub req_hash: Signal<In, Bits<32>>,
    /// The frame is TCP (else UDP).
    pub req_tcp: Signal<In, Bit>,
    /// TCP flags byte.
    pub req_flags: Signal<In, Bits<8>>,
    /// The service's algorithm is stateless (Maglev, IP hash).
    pub req_stateless: Signal<In, Bit>,
    /// The service's algorithm (`regmap` code, 6 and 7 given as 3): 0 round robin, 1
    /// weighted round robin, 2 IP hash, 3 Maglev (the controller refuses the others).
    pub req_algo: Signal<In, Bits<3>>,
    /// The source-address hash (IP hash).
    pub req_src_hash: Signal<In, Bits<32>>,
    /// The service's member count (round robin).
    pub req_members: Signal<In, Bits<8>>,
    /// Services whose active entry changed at the commit in progress (round-robin cursors
    /// reset, see [`BackendSelect`]); stable from `commit` until `busy` falls.
    pub svc_changed: Signal<In, Bits<16>>,
    /// The service is sticky (source-IP persistence: see the module docs).
    pub req_sticky: Signal<In, Bit>,
    /// The service's persistence timeout, ms.
    pub req_sticky_timeout: Signal<In, Bits<32>>,
    /// A NAT reply (`Pipeline::nat_return`): `req_key` / `req_hash` are the rebuilt client
    /// flow's, which must exist and point at `req_backend`.
    pub req_return: Signal<In, Bit>,
    /// The backend a reply came from (return requests).
    pub req_backend: Signal<In, Bits<16>>,
    /// The frame's source MAC (a forward request stores it as the flow's client MAC).
    pub req_mac: Signal<In, Bits<48>>,
    /// A full-NAT reply (`Pipeline::fullnat_return`): read slot `req_slot` directly;
    /// `req_key` is the reply's key.
    pub req_read: Signal<In, Bit>,
    /// The flow-table slot of a slot read (set × 4 + way; beyond the table: no flow).
    pub req_slot: Signal<In, Bits<20>>,
    /// Bit k: active service k is valid and of mode full NAT (checked by a slot read).
    pub fullnat_mask: Signal<In, Bits<16>>,
    /// A result is on the `res_*` outputs.
    pub res_valid: Signal<Out, Bit>,
    /// The receiver takes it.
    pub res_ready: Signal<In, Bit>,
    /// [`result`] code.
    pub res_kind: Signal<Out, Bits<2>>,
    /// Backend-table index.
    pub res_backend: Signal<Out, Bits<16>>,
    /// The request created its flow.
    pub res_new_flow: Signal<Out, Bit>,
    /// [`event`] of the lookup.
    pub res_lookup_event: Signal<Out, Bits<2>>,
    /// [`event`] of the insert.
    pub res_insert_event: Signal<Out, Bits<2>>,
    /// The backend's address.
    pub res_address: Signal<Out, Bits<32>>,
    /// The backend's port.
    pub res_port: Signal<Out, Bits<16>>,
    /// The backend's MAC; for a return request, the flow's client MAC.
    pub res_mac: Signal<Out, Bits<48>>,
    /// The flow's service slot (return requests: `entry.service % 16`).
    pub res_service: Signal<Out, Bits<4>>,
    /// The flow's slot (forward requests: the hit or inserted slot).
    pub res_slot: Signal<Out, Bits<16>>,
    /// Backend whose active-flow count to show on `af_value` (three cycles after).
    pub af_index: Signal<In, Bits<8>>,
    /// Active flows of backend `af_index`.
    pub af_value: Signal<Out, Bits<32>>,
    /// The NAT return unit reads the active backend table and member lists (while it
    /// rebuilds its reply table after a commit, when no request is in flight): the read
    /// ports take `ext_be_addr` / `ext_mem_addr` instead of the request machine's.
    pub ext_read: Signal<In, Bit>,
    /// Backend to read (active bank) while `ext_read`.
    pub ext_be_addr: Signal<In, Bits<8>>,
    /// Its word (layout of the backend RAM, see `be`), two edges after the address.
    pub ext_be_data: Signal<Out, Bits<128>>,
    /// Member-list entry to read (active bank, `service << 5 | position`) while
    /// `ext_read`.
    pub ext_mem_addr: Signal<In, Bits<9>>,
    /// Its entry, two edges after the address.
    pub ext_mem_data: Signal<Out, Bits<16>>,

    flows: FlowTable<A>,
    select: BackendSelect,
    // Backend words, both banks in one RAM (address bit 8: 0 shadow, 1 active; a bank of
    // 256 words alone would fill half of its 4 `DP16KD`): 122:120 state, 119:112
    // generation, 111:96 weight, 95:64 address, 63:48 port, 47:0 MAC. The table port
    // writes the shadow bank, the copy at a commit the active one; the read port serves
    // the request machine, the copy and, while `ext_read`, the NAT return unit.
    be: DualPortRam<Bits<128>, 9>,
    // The shadow word of the entry being copied.
    cp_sh: DFF<Bits<128>>,
    // Response time of every backend (µs, clamped to 1..=2^24 - 1 on write as the model's
    // least-response-time comparison clamps it), both banks as `be` (same addresses and
    // write strobe; a 512 × 24 RAM is one `DP16KD` beside `be`'s four, which have no
    // 24 spare bits): read with the weight for least response time.
    rt: DualPortRam<Bits<24>, 9>,
    // Its registered write data (the table port's clamped word, or the copy's).
    rw_data: DFF<Bits<24>>,
    // The shadow response time of the entry being copied.
    cp_rt: DFF<Bits<24>>,
    // The read address of `be` and `rt`.
    be_rd: Signal<Local, Bits<9>>,
    rtt_clamped: Signal<Local, Bits<24>>,
    /// 9-bit entries as in [`BackendSelect`]: bit 8 = not a backend (`EMPTY` or ≥ 256).
    // (Four block RAMs, their bank chosen after the read registers: `BankedRam9`.)
    ring_shadow: BankedRam9,
    rs_addr: Signal<Local, Bits<13>>,
    rs_wdata: Signal<Local, Bits<9>>,
    rs_we: Signal<Local, Bit>,
    rs_rd: Signal<Local, Bits<9>>,
    // A ring entry written on the table port, registered: it reaches the shadow RAM (and
    // the service's dirty bit) a cycle later. The decode of the table port went straight
    // into the block RAMs' write enables (an image seed's longest path, 3 ns of it the
    // route to the RAMs).
    tr_we: DFF<Bit>,
    tr_addr: DFF<Bits<13>>,
    tr_word: DFF<Bits<9>>,
    // Active flows per backend, twice: one copy for the request machine, one for the
    // counter reads (written together; that one in distributed RAM: the LFE5U-25F has no
    // block RAM to spare). Registered reads (two cycles): the update is read, wait, add
    // into the registered write port (`aw_*`), write.
    af: DualPortRam<Bits<32>, 8>,
    afq: DualPortRam<Bits<32>, 8>,
    // `af_index` registered next to `afq` (the counter latch samples `af_value` three
    // edges after its index settles; the route from the controller was a critical path).
    afq_idx: DFF<Bits<8>>,
    // Registered write ports (see the defaults in `update`).
    bw_we: DFF<Bit>,
    bw_addr: DFF<Bits<9>>,
    bw_data: DFF<Bits<128>>,
    aw_we: DFF<Bit>,
    aw_addr: DFF<Bits<8>>,
    aw_data: DFF<Bits<32>>,
    // Decisions on the backend word, registered a cycle after the RAM's output (the
    // `*Read` states wait three cycles): the flow keeps its backend (Up or Drain, same
    // generation); its backend is in the table with the same generation (release); the
    // backend has no MAC; the flow's backend is not `backend` (a reply's).
    g_keep: DFF<Bit>,
    g_same: DFF<Bit>,
    g_nomac: DFF<Bit>,
    g_other: DFF<Bit>,
    // Client MAC of every flow-table slot (slot = set × 4 + way; `4 << A` words behind a
    // 12-bit address, so A ≤ 10), written when a forward request inserts or refreshes
    // the flow, read by a reply.
    cmac: SinglePortRam<Bits<48>, 12>,
    // The persistence table (`Pipeline::choose`): `STICKY_SETS` entries of one way,
    // addressed by `(src_hash ^ service) % STICKY_SETS` (layout in the module docs), in
    // distributed RAM.
    sticky: SinglePortRam<Bits<85>, 7>,
    // Its entry of the request's set, registered next to the logic.
    kq: DFF<Bits<85>>,
    // The request is for a sticky service; its persistence timeout.
    stk: DFF<Bit>,
    stk_to: DFF<Bits<32>>,
    // The entry is the client's (valid, same service and address); past its timeout.
    k_match: DFF<Bit>,
    k_exp: DFF<Bit>,
    // Their first stage: valid and same service; same client address; `now - last_seen`.
    k_svc: DFF<Bit>,
    k_cli: DFF<Bit>,
    k_age: DFF<Bits<32>>,
    // The entry was the client's but may not be used: cleared unless a new one replaces it.
    k_clear: DFF<Bit>,
    // The membership scan of the entry's backend: the next position to read, reads in
    // flight (one and two edges ago), found.
    kpos: DFF<Bits<5>>,
    kv1: DFF<Bit>,
    kv2: DFF<Bit>,
    k_found: DFF<Bit>,
    // The entry may be used (member, Up, weight > 0, its generation).
    k_ok: DFF<Bit>,
    // The registered write port of `sticky`.
    kw_we: DFF<Bit>,
    kw_data: DFF<Bits<85>>,
    // Persistence states: read, compare, use, backend read, membership scan, check,
    // decide.
    s_kread: DFF<Bit>,
    s_kcmp: DFF<Bit>,
    s_kuse: DFF<Bit>,
    s_kbe: DFF<Bit>,
    s_kscan: DFF<Bit>,
    s_kchk: DFF<Bit>,
    s_kdec: DFF<Bit>,
    k_hash: Signal<Local, Bits<32>>,
    k_valid: Signal<Local, Bits<1>>,
    // The set, registered (stable from the cycle after the take).
    kset: DFF<Bits<7>>,
    // The members to scan (`min(count, 32)`, loaded while idle) and those left to read.
    kn: DFF<Bits<6>>,
    krem: DFF<Bits<6>>,
    ret: DFF<Bit>,
    // A slot read; its entry past its timeout.
    rd: DFF<Bit>,
    stale: DFF<Bit>,
    smac: DFF<Bits<48>>,
    cm_we: DFF<Bit>,

    cp: DFF<Cp>,
    cp_idx: DFF<Bits<14>>,
    cp_phase: DFF<Bits<2>>,
    dirty: DFF<Bits<16>>,
    // Ring copy pipeline: the entry read two edges ago.
    rv1: DFF<Bit>,
    rv2: DFF<Bit>,
    ri1: DFF<Bits<14>>,
    ri2: DFF<Bits<14>>,

    // The selection unit's table port (registered).
    st_write: DFF<Bit>,
    st_kind: DFF<Bits<4>>,
    st_index: DFF<Bits<28>>,
    st_data: DFF<Bits<32>>,
    // High from a take until the result is taken (the request machine is not idle).
    req_busy: DFF<Bit>,
    // The request machine's other states, one-hot (see `update`).
    s_lsend: DFF<Bit>,
    s_lwait: DFF<Bit>,
    s_hread: DFF<Bit>,
    s_rsend: DFF<Bit>,
    s_rwait: DFF<Bit>,
    s_rbe: DFF<Bit>,
    s_ruse: DFF<Bit>,
    s_wsend: DFF<Bit>,
    s_wwait: DFF<Bit>,
    s_gread: DFF<Bit>,
    s_guse: DFF<Bit>,
    s_cmrd: DFF<Bit>,
    s_cmuse: DFF<Bit>,
    s_miss: DFF<Bit>,
    s_ssend: DFF<Bit>,
    s_swait: DFF<Bit>,
    s_nread: DFF<Bit>,
    s_isend: DFF<Bit>,
    s_iwait: DFF<Bit>,
    s_dread: DFF<Bit>,
    s_duse: DFF<Bit>,
    s_afread: DFF<Bit>,
    s_afwait: DFF<Bit>,
    s_afadd: DFF<Bit>,
    s_afwrite: DFF<Bit>,
    s_done: DFF<Bit>,
    // The backend RAM's output, registered next to the request machine.
    bq: DFF<Bits<128>>,
    // `HitUse` of a lookup (not a reply): the flow's backend loads.
    ld_hit: DFF<Bit>,
    // Registered `fn_match` (a slot read waits a cycle more for it).
    fn_match_q: DFF<Bit>,
    svc: DFF<Bits<4>>,
    key: DFF<Bits<104>>,
    hash: DFF<Bits<32>>,
    tcp: DFF<Bit>,
    flags: DFF<Bits<8>>,
    stateless: DFF<Bit>,
    algo: DFF<Bits<3>>,
    src_hash: DFF<Bits<32>>,
    members: DFF<Bits<8>>,
    rd_wait: DFF<Bits<2>>,
    // The request machine is in `HitUse` (a register set on the way in, so the wide
    // loads there hang off a flip-flop, not off the state decode).
    at_hit: DFF<Bit>,
    // No table copy runs (see `tables_idle`).
    tidle: DFF<Bit>,
    sel_commit: DFF<Bit>,
    // ... in `NewUse`.
    at_new: DFF<Bit>,
    entry: DFF<Bits<171>>,
    slot: DFF<Bits<32>>,
    remove: DFF<Bit>,
    kind: DFF<Bits<2>>,
    backend: DFF<Bits<16>>,
    new_flow: DFF<Bit>,
    ev_lookup: DFF<Bits<2>>,
    ev_insert: DFF<Bits<2>>,
    be_word: DFF<Bits<128>>,
    be_addr: DFF<Bits<8>>,
    // The backend whose count an update reads and writes: the new flow's (`backend`) when
    // it goes up, the released flow's (`entry`'s) when it goes down. Every update sets
    // `af_inc` and holds both registers until it is written.
    af_idx: Signal<Local, Bits<8>>,
    af_inc: DFF<Bit>,
    // Where an active-count update goes when written: `Miss` (`af_miss`, after a release
    // on lookup), the new flow's increment (`af_more`, after a displaced flow's release),
    // else `Done` (two flags rather than a state register loaded with three values).
    af_miss: DFF<Bit>,
    af_more: DFF<Bit>,
    // A lookup, slot read or insert is in flight: its result's entry loads `entry` and
    // `be_addr` (on this flag and `res_valid`, not on the state decode).
    take_res: DFF<Bit>,
    // The selection unit's `m_valid`, registered: its decode of the unit's state no
    // longer reaches the request machine (the unit's result registers hold through the
    // idle cycle after `Done`, when this flag is read).
    sel_done: DFF<Bit>,

    table_be: Signal<Local, Bit>,
    table_ring: Signal<Local, Bit>,
    ring_addr: Signal<Local, Bits<13>>,
    ring_word: Signal<Local, Bits<9>>,
    wr_word: Signal<Local, Bits<128>>,
    sh_state: Signal<Local, Bits<3>>,
    bank1: Signal<Local, Bits<9>>,
    sh_free: Signal<Local, Bit>,
    flow_backend: Signal<Local, Bits<16>>,
    flow_gen: Signal<Local, Bits<8>>,
    flow_state: Signal<Local, Bits<2>>,
    be_state: Signal<Local, Bits<3>>,
    be_gen: Signal<Local, Bits<8>>,
    next_state: Signal<Local, Bits<2>>,
    new_state: Signal<Local, Bits<2>>,
    syn_only: Signal<Local, Bit>,
    fin_rst: Signal<Local, Bit>,
    af_cur: Signal<Local, Bits<32>>,
    // `af_cur` + 1 and - 1 in 33 bits: bit 32 is the carry out of all ones and the
    // borrow from zero, where the model's saturating arithmetic keeps the count.
    af_up: Signal<Local, Bits<33>>,
    af_down: Signal<Local, Bits<33>>,
    af_new: Signal<Local, Bits<32>>,
    one16: Signal<Local, Bits<16>>,
    dirty_now: Signal<Local, Bits<16>>,
    ring_m: Signal<Local, Bits<16>>,
    ring_svc: Signal<Local, Bits<4>>,
    slot_set: Signal<Local, Bits<A>>,
    slot_in: Signal<Local, Bit>,
    fn_mask: Signal<Local, Bits<16>>,
    fn_match: Signal<Local, Bit>,
    ld_flow: Signal<Local, Bit>,
    rd_last: Signal<Local, Bit>,
    tables_idle: Signal<Local, Bit>,
    take: Signal<Local, Bit>,
}

impl<const A: usize> Default for Forward<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const A: usize> Forward<A> {
    /// A forward path with empty tables (it clears the rings first, see the module doc).
    pub fn new() -> Self {
        Forward {
            clock: Default::default(),
            table_write: Default::default(),
            table_kind: Default::default(),
            table_index: Default::default(),
            table_data0: Default::default(),
            table_data1: Default::default(),
            table_data2: Default::default(),
            table_data3: Default::default(),
            table_data4: Default::default(),
            commit: Default::default(),
            busy: Default::default(),
            ring_size: Default::default(),
            timeout_syn: Default::default(),
            timeout_established: Default::default(),
            timeout_closing: Default::default(),
            timeout_udp: Default::default(),
            now: Default::default(),
            req_valid: Default::default(),
            req_ready: Default::default(),
            req_service: Default::default(),
            req_key: Default::default(),
            req_hash: Default::default(),
            req_tcp: Default::default(),
            req_flags: Default::default(),
            req_stateless: Default::default(),
            req_algo: Default::default(),
            req_src_hash: Default::default(),
            req_members: Default::default(),
            svc_changed: Default::default(),
            req_return: Default::default(),
            req_sticky: Default::default(),
            req_sticky_timeout: Default::default(),
            req_backend: Default::default(),
            req_mac: Default::default(),
            res_service: Default::default(),
            req_read: Default::default(),
            req_slot: Default::default(),
            fullnat_mask: Default::default(),
            res_slot: Default::default(),
            rd: Default::default(),
            stale: Default::default(),
            slot_set: Default::default(),
            slot_in: Default::default(),
            fn_mask: Default::default(),
            fn_match: Default::default(),
            bq: Default::default(),
            ld_hit: Default::default(),
            ld_flow: Default::default(),
            rd_last: Default::default(),
            cmac: SinglePortRam::with_depth(4 << A),
            sticky: SinglePortRam::distributed(),
            kq: Default::default(),
            stk: Default::default(),
            stk_to: Default::default(),
            k_match: Default::default(),
            k_svc: Default::default(),
            k_cli: Default::default(),
            k_age: Default::default(),
            k_exp: Default::default(),
            k_clear: Default::default(),
            kpos: Default::default(),
            kv1: Default::default(),
            kv2: Default::default(),
            k_found: Default::default(),
            k_ok: Default::default(),
            kw_we: Default::default(),
            kw_data: Default::default(),
            s_kread: Default::default(),
            s_kcmp: Default::default(),
            s_kuse: Default::default(),
            s_kbe: Default::default(),
            s_kscan: Default::default(),
            s_kchk: Default::default(),
            s_kdec: Default::default(),
            k_hash: Default::default(),
            kset: Default::default(),
            kn: Default::default(),
            krem: Default::default(),
            k_valid: Default::default(),
            ret: Default::default(),
            smac: Default::default(),
            cm_we: Default::default(),
            res_valid: Default::default(),
            res_ready: Default::default(),
            res_kind: Default::default(),
            res_backend: Default::default(),
            res_new_flow: Default::default(),
            res_lookup_event: Default::default(),
            res_insert_event: Default::default(),
            res_address: Default::default(),
            res_port: Default::default(),
            res_mac: Default::default(),
            af_index: Default::default(),
            af_value: Default::default(),
            flows: FlowTable::new(),
            select: BackendSelect::new(),
            be: DualPortRam::zeroed(),
            cp_sh: Default::default(),
            rt: DualPortRam::zeroed(),
            rw_data: Default::default(),
            cp_rt: Default::default(),
            be_rd: Default::default(),
            rtt_clamped: Default::default(),
            bank1: Default::default(),
            ext_read: Default::default(),
            ext_be_addr: Default::default(),
            ext_be_data: Default::default(),
            ext_mem_addr: Default::default(),
            ext_mem_data: Default::default(),
            ring_shadow: BankedRam9::default(),
            rs_addr: Default::default(),
            rs_wdata: Default::default(),
            rs_we: Default::default(),
            rs_rd: Default::default(),
            tr_we: Default::default(),
            tr_addr: Default::default(),
            tr_word: Default::default(),
            af: DualPortRam::zeroed(),
            afq: DualPortRam::zeroed_distributed(),
            afq_idx: Default::default(),
            bw_we: Default::default(),
            bw_addr: Default::default(),
            bw_data: Default::default(),
            aw_we: Default::default(),
            aw_addr: Default::default(),
            aw_data: Default::default(),
            g_keep: Default::default(),
            g_same: Default::default(),
            g_nomac: Default::default(),
            g_other: Default::default(),
            cp: Default::default(),
            cp_idx: Default::default(),
            cp_phase: Default::default(),
            dirty: Default::default(),
            rv1: Default::default(),
            rv2: Default::default(),
            ri1: Default::default(),
            ri2: Default::default(),
            s_lsend: Default::default(),
            s_lwait: Default::default(),
            s_hread: Default::default(),
            s_rsend: Default::default(),
            s_rwait: Default::default(),
            s_rbe: Default::default(),
            s_ruse: Default::default(),
            s_wsend: Default::default(),
            s_wwait: Default::default(),
            s_gread: Default::default(),
            s_guse: Default::default(),
            s_cmrd: Default::default(),
            s_cmuse: Default::default(),
            s_miss: Default::default(),
            s_ssend: Default::default(),
            s_swait: Default::default(),
            s_nread: Default::default(),
            s_isend: Default::default(),
            s_iwait: Default::default(),
            s_dread: Default::default(),
            s_duse: Default::default(),
            s_afread: Default::default(),
            s_afwait: Default::default(),
            s_afadd: Default::default(),
            s_afwrite: Default::default(),
            s_done: Default::default(),
            st_write: Default::default(),
            st_kind: Default::default(),
            st_index: Default::default(),
            st_data: Default::default(),
            req_busy: Default::default(),
            fn_match_q: Default::default(),
            tables_idle: Default::default(),
            take: Default::default(),
            svc: Default::default(),
            key: Default::default(),
            hash: Default::default(),
            tcp: Default::default(),
            flags: Default::default(),
            stateless: Default::default(),
            algo: Default::default(),
            src_hash: Default::default(),
            members: Default::default(),
            rd_wait: Default::default(),
            at_hit: Default::default(),
            tidle: Default::default(),
            sel_commit: Default::default(),
            at_new: Default::default(),
            entry: Default::default(),
            slot: Default::default(),
            remove: Default::default(),
            kind: Default::default(),
            backend: Default::default(),
            new_flow: Default::default(),
            ev_lookup: Default::default(),
            ev_insert: Default::default(),
            be_word: Default::default(),
            be_addr: Default::default(),
            af_idx: Default::default(),
            af_inc: Default::default(),
            af_miss: Default::default(),
            af_more: Default::default(),
            take_res: Default::default(),
            sel_done: Default::default(),
            table_be: Default::default(),
            table_ring: Default::default(),
            ring_addr: Default::default(),
            ring_word: Default::default(),
            wr_word: Default::default(),
            sh_state: Default::default(),
            sh_free: Default::default(),
            flow_backend: Default::default(),
            flow_gen: Default::default(),
            flow_state: Default::default(),
            be_state: Default::default(),
            be_gen: Default::default(),
            next_state: Default::default(),
            new_state: Default::default(),
            syn_only: Default::default(),
            fin_rst: Default::default(),
            af_cur: Default::default(),
            af_up: Default::default(),
            af_down: Default::default(),
            af_new: Default::default(),
            one16: Default::default(),
            dirty_now: Default::default(),
            ring_m: Default::default(),
            ring_svc: Default::default(),
        }
    }
}

impl<const A: usize> Logic for Forward<A> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, cp, cp_idx, cp_phase, dirty, rv1, rv2, ri1, ri2, tr_we, tr_addr, tr_word,
            svc, key, hash, tcp, flags, stateless, algo, src_hash, members, rd_wait, entry, slot,
            remove, kind, backend, new_flow, ev_lookup, ev_insert, be_word, be_addr, af_inc,
            af_miss, af_more, take_res, sel_done, ret, smac, cm_we, rd, stale, bw_we, bw_addr,
            bw_data, aw_we, aw_addr, aw_data, g_keep, g_same, g_nomac, g_other, cp_sh, req_busy,
            fn_match_q, st_write, st_kind, st_index, st_data, at_hit, at_new, tidle, sel_commit,
            rw_data, cp_rt, s_lsend, s_lwait, s_hread, s_rsend, s_rwait, s_rbe, s_ruse, s_wsend,
            s_wwait, s_gread, s_guse, s_cmrd, s_cmuse, s_miss, s_ssend, s_swait, s_nread, s_isend,
            s_iwait, s_dread, s_duse, s_afread, s_afwait, s_afadd, s_afwrite, s_done, bq, ld_hit,
            afq_idx, kq, stk, stk_to, k_match, k_exp, k_clear, kpos, kv1, kv2, k_found, k_ok,
            kw_we, kw_data, s_kread, s_kcmp, s_kuse, s_kbe, s_kscan, s_kchk, s_kdec, kset, kn,
            krem, k_svc, k_cli, k_age
        );
        clock!(
            self,
            clock,
            flows,
            select,
            be,
            rt,
            ring_shadow,
            cmac,
            af,
            afq,
            sticky
        );

        // ---- Shadow writes from the table port (model: backend `index as u16` < 256;
        // ring `index >> 20` < 16 and offset < RING_STRIDE).
        self.table_be.next = self.table_write.val()
            & (self.table_kind.val() == 2)
            & (self.table_index.val().get_bits::<8>(8) == 0);
        self.table_ring.next = self.table_write.val()
            & (self.table_kind.val() == 4)
            & (self.table_index.val().get_bits::<4>(24) == 0)
            & (self.table_index.val().get_bits::<11>(9) == 0);
        self.ring_addr.next = (bit_cast::<13, 4>(self.table_index.val().get_bits::<4>(20)) << 9)
            | bit_cast::<13, 9>(self.table_index.val().get_bits::<9>(0));
        self.ring_word.next = bit_cast::<9, 8>(self.table_data0.val().get_bits::<8>(0));
        if self.table_data0.val().get_bits::<8>(8) != 0 {
            self.ring_word.next = 0x1FF.into();
        }
        self.wr_word.next = (bit_cast::<128, 3>(self.table_data0.val().get_bits::<3>(29)) << 120)
            | (bit_cast::<128, 8>(self.table_data0.val().get_bits::<8>(16)) << 112)
            | (bit_cast::<128, 16>(self.table_data0.val().get_bits::<16>(0)) << 96)
            | (bit_cast::<128, 32>(self.table_data1.val()) << 64)
            | (bit_cast::<128, 32>(self.table_data2.val()) << 32)
            | bit_cast::<128, 32>(self.table_data3.val());
        self.bank1.next = bit_cast::<9, 1>(true.into()) << 8;
        // The write ports of the backend RAM and of both active-flow counts are driven
        // by registers (the table port's and the copy's writes land a cycle later; the
        // decode of the copy machine fanned out to every address and data bit).
        self.be.write_address.next = self.bw_addr.q.val();
        self.be.write_data.next = self.bw_data.q.val();
        self.be.write_enable.next = self.bw_we.q.val();
        self.bw_addr.d.next = bit_cast::<9, 8>(self.table_index.val().get_bits::<8>(0));
        self.bw_data.d.next = self.wr_word.val();
        self.bw_we.d.next = self.table_be.val();
        // The model's `rtt_us.clamp(1, RTT_SATURATION)`.
        self.rtt_clamped.next = self.table_data4.val().get_bits::<24>(0);
        if self.table_data4.val() == 0 {
            self.rtt_clamped.next = 1.into();
        }
        if self.table_data4.val().get_bits::<8>(24) != 0 {
            self.rtt_clamped.next = 0xFF_FFFF.into();
        }
        self.rt.write_address.next = self.bw_addr.q.val();
        self.rt.write_data.next = self.rw_data.q.val();
        self.rt.write_enable.next = self.bw_we.q.val();
        self.rw_data.d.next = self.rtt_clamped.val();
        self.tr_we.d.next = self.table_ring.val();
        self.tr_addr.d.next = self.ring_addr.val();
        self.tr_word.d.next = self.ring_word.val();
        self.rs_addr.next = self.tr_addr.q.val();
        self.rs_wdata.next = self.tr_word.q.val();
        self.rs_we.next = self.tr_we.q.val();
        // A read's bank is its index two edges ago (`ri2`, the copy's read pipeline).
        self.ring_shadow.read_bank.next = self.ri2.q.val().get_bits::<2>(11);
        self.rs_rd.next = self.ring_shadow.read_data.val();
        self.one16.next = 1.into();
        if self.tr_we.q.val() {
            self.dirty.d.next =
                self.dirty.q.val() | (self.one16.val() << self.tr_addr.q.val().get_bits::<4>(9));
        }

        // ---- Defaults of the request side.
        // The request machine reads the active bank at `be_rd` (`be_addr`, or the
        // weight of a member for weighted round robin); the NAT return unit, while it
        // rebuilds its table after a commit (no request is in flight then), at its own
        // address.
        self.be_rd.next = self.bank1.val() | bit_cast::<9, 8>(self.be_addr.q.val());
        if self.ext_read.val() {
            self.be_rd.next = self.bank1.val() | bit_cast::<9, 8>(self.ext_be_addr.val());
        }
        self.ext_be_data.next = self.be.read_data.val();
        self.select.ext_read.next = self.ext_read.val();
        self.select.ext_mem_addr.next = self.ext_mem_addr.val();
        self.ext_mem_data.next = self.select.ext_mem_data.val();
        self.flow_backend.next = self.entry.q.val().get_bits::<16>(8);
        self.af_idx.next = self.flow_backend.val().get_bits::<8>(0);
        if self.af_inc.q.val() {
            self.af_idx.next = self.backend.q.val().get_bits::<8>(0);
        }
        self.af.read_address.next = self.af_idx.val();
        self.af.write_address.next = self.aw_addr.q.val();
        self.af.write_enable.next = self.aw_we.q.val();
        self.af.write_data.next = self.aw_data.q.val();
        self.aw_we.d.next = false;
        self.aw_addr.d.next = self.af_idx.val();
        self.aw_data.d.next = 0.into();
        self.afq_idx.d.next = self.af_index.val();
        self.afq.read_address.next = self.afq_idx.q.val();
        self.afq.write_address.next = self.aw_addr.q.val();
        self.afq.write_enable.next = self.aw_we.q.val();
        self.afq.write_data.next = self.aw_data.q.val();
        self.af_value.next = self.afq.read_data.val();
        // The selection unit's table port is registered here (the copy machine's decode
        // fanned out to every RAM and state register of the unit within one cycle).
        self.select.table_write.next = self.st_write.q.val();
        self.select.table_kind.next = self.st_kind.q.val();
        self.select.table_index.next = self.st_index.q.val();
        self.select.table_data0.next = self.st_data.q.val();
        self.st_write.d.next = false;
        self.st_kind.d.next = 4.into();
        self.st_index.d.next = 0.into();
        self.st_data.d.next = 0.into();
        // Member lists: the selection unit's shadow bank (model: `(index >> 5) as u8 < 16`),
        // copied at the commit with the cursor resets.
        self.select.mem_write.next = self.table_write.val()
            & (self.table_kind.val() == 3)
            & (self.table_index.val().get_bits::<4>(9) == 0);
        self.select.mem_index.next = self.table_index.val().get_bits::<9>(0);
        self.select.mem_data.next = self.table_data0.val().get_bits::<16>(0);
        // (Registered: the unit starts its copy a cycle after ours; `tidle` stays low
        // from the strobe on, and our copy outlasts that cycle.)
        self.sel_commit.d.next = self.commit.val() & (self.cp.q.val() == Cp::Idle);
        self.select.commit.next = self.sel_commit.q.val();
        self.select.changed.next = self.svc_changed.val();

        // ---- Clear after reset, copy at a commit.
        self.sh_state.next = self.cp_sh.q.val().get_bits::<3>(120);
        self.sh_free.next = (self.sh_state.val() == 0) | (self.sh_state.val() > 4);
        self.ring_svc.next = self.cp_idx.q.val().get_bits::<4>(9);
        // (A local: rust-hdl's Verilog cannot slice an expression.)
        self.dirty_now.next = self.dirty.q.val() >> self.ring_svc.val();
        self.rv1.d.next = false;
        self.rv2.d.next = self.rv1.q.val();
        self.ri2.d.next = self.ri1.q.val();
        self.busy.next =
            (self.cp.q.val() != Cp::Idle) | self.st_write.q.val() | self.select.busy.val();
        match self.cp.q.val() {
            Cp::Clear => {
                self.rs_addr.next = self.cp_idx.q.val().get_bits::<13>(0);
                self.rs_wdata.next = 0x1FF.into();
                self.rs_we.next = true;
                self.st_write.d.next = true;
                self.st_kind.d.next = 4.into();
                self.st_index.d.next = (bit_cast::<28, 4>(self.cp_idx.q.val().get_bits::<4>(9))
                    << 20)
                    | bit_cast::<28, 9>(self.cp_idx.q.val().get_bits::<9>(0));
                self.st_data.d.next = 0xFFFF.into();
                self.cp_idx.d.next = self.cp_idx.q.val() + 1;
                if self.cp_idx.q.val() == 0x1FFF {
                    self.cp.d.next = Cp::Idle;
                }
            }
            Cp::Idle => {
                if self.commit.val() {
                    self.cp.d.next = Cp::Backend;
                    self.cp_idx.d.next = 0.into();
                    self.cp_phase.d.next = 0.into();
                }
            }
            Cp::Backend => {
                // Entry cp_idx in four cycles: read the shadow word (phase 0), then the
                // active one (phase 1); keep the shadow word (phase 2); write it into the
                // active bank (phase 3). Table writes wait (the writer waits for
                // `STATUS.0` anyway).
                self.bw_we.d.next = false;
                self.be_rd.next =
                    self.bank1.val() | bit_cast::<9, 8>(self.cp_idx.q.val().get_bits::<8>(0));
                if self.cp_phase.q.val() == 0 {
                    self.be_rd.next = bit_cast::<9, 8>(self.cp_idx.q.val().get_bits::<8>(0));
                }
                if self.cp_phase.q.val() == 2 {
                    self.cp_sh.d.next = self.be.read_data.val();
                    self.cp_rt.d.next = self.rt.read_data.val();
                }
                self.cp_phase.d.next = self.cp_phase.q.val() + 1;
                if self.cp_phase.q.val() == 3 {
                    self.bw_addr.d.next =
                        self.bank1.val() | bit_cast::<9, 8>(self.cp_idx.q.val().get_bits::<8>(0));
                    self.bw_data.d.next = self.cp_sh.q.val();
                    self.rw_data.d.next = self.cp_rt.q.val();
                    self.bw_we.d.next = true;
                    self.st_write.d.next = true;
                    self.st_kind.d.next = 2.into();
                    self.st_index.d.next = bit_cast::<28, 8>(self.cp_idx.q.val().get_bits::<8>(0));
                    self.st_data.d.next = (bit_cast::<32, 3>(self.sh_state.val()) << 29)
                        | bit_cast::<32, 16>(self.cp_sh.q.val().get_bits::<16>(96));
                    self.aw_addr.d.next = self.cp_idx.q.val().get_bits::<8>(0);
                    if self.sh_free.val()
                        | (self.cp_sh.q.val().get_bits::<8>(112)
                            != self.be.read_data.val().get_bits::<8>(112))
                    {
                        self.aw_we.d.next = true;
                    }
                    self.cp_idx.d.next = self.cp_idx.q.val() + 1;
                    if self.cp_idx.q.val() == 255 {
                        self.cp_idx.d.next = 0.into();
                        self.cp.d.next = Cp::Ring;
                    }
                }
            }
            Cp::Ring => {
                // Services not written since the last commit are skipped; the others are
                // streamed one entry per cycle (read two edges before the write).
                self.rs_addr.next = self.cp_idx.q.val().get_bits::<13>(0);
                self.rs_we.next = false;
                if self.rv2.q.val() {
                    self.st_write.d.next = true;
                    self.st_kind.d.next = 4.into();
                    self.st_index.d.next = (bit_cast::<28, 4>(self.ri2.q.val().get_bits::<4>(9))
                        << 20)
                        | bit_cast::<28, 9>(self.ri2.q.val().get_bits::<9>(0));
                    self.st_data.d.next = bit_cast::<32, 9>(self.rs_rd.val());
                }
                if self.cp_phase.q.val() == 0 {
                    if self.dirty_now.val().get_bit(0) {
                        self.rv1.d.next = true;
                        self.ri1.d.next = self.cp_idx.q.val();
                        self.cp_idx.d.next = self.cp_idx.q.val() + 1;
                        if self.cp_idx.q.val() == 0x1FFF {
                            self.cp_phase.d.next = 1.into();
                        }
                    } else {
                        self.cp_idx.d.next = self.cp_idx.q.val() + 512;
                        if self.ring_svc.val() == 15 {
                            self.cp_phase.d.next = 1.into();
                        }
                    }
                } else if !self.rv1.q.val() & !self.rv2.q.val() {
                    self.dirty.d.next = 0.into();
                    self.cp.d.next = Cp::Idle;
                }
            }
            _ => {
                self.cp.d.next = Cp::Idle;
            }
        }

        // ---- The request machine.
        self.flow_gen.next = self.entry.q.val().get_bits::<8>(0);
        self.flow_state.next = self.entry.q.val().get_bits::<2>(64);
        // The backend word, registered again next to the request machine's logic (the
        // block RAM's outputs fan out across the chip: routes of 3 ns and more).
        self.bq.d.next = self.be.read_data.val();
        self.be_state.next = self.bq.q.val().get_bits::<3>(120);
        self.be_gen.next = self.bq.q.val().get_bits::<8>(112);
        self.syn_only.next = (self.flags.q.val() & 0x17) == 0x02;
        self.fin_rst.next = (self.flags.q.val() & 0x05) != 0;
        // model `next_state(state, flags)` of the stored state.
        self.next_state.next = self.flow_state.val();
        if !self.tcp.q.val() {
            self.next_state.next = 3.into();
        } else if self.fin_rst.val() {
            self.next_state.next = 2.into();
        } else if (self.flow_state.val() == 0) & !self.flags.q.val().get_bit(1) {
            self.next_state.next = 1.into();
        }
        // The state of a new flow.
        self.new_state.next = 1.into();
        if !self.tcp.q.val() {
            self.new_state.next = 3.into();
        } else if self.syn_only.val() {
            self.new_state.next = 0.into();
        } else if self.fin_rst.val() {
            self.new_state.next = 2.into();
        }
        self.g_keep.d.next = ((self.be_state.val() == 1) | (self.be_state.val() == 3))
            & (self.be_gen.val() == self.flow_gen.val());
        self.g_same.d.next = (self.flow_backend.val().get_bits::<8>(8) == 0)
            & (self.be_gen.val() == self.flow_gen.val());
        self.g_nomac.d.next = self.bq.q.val().get_bits::<48>(0) == 0;
        self.g_other.d.next = self.flow_backend.val() != self.backend.q.val();
        self.af_cur.next = self.af.read_data.val();
        // The model's `saturating_add(1)` / `saturating_sub(1)`.
        // (The saturation from the adders' own carry and borrow: comparing the count with
        // all ones and with zero put a 32-bit compare in front of the carry chain, once
        // yosys had shared the two adders, the longest path of an image seed.)
        self.af_up.next = bit_cast::<33, 32>(self.af_cur.val()) + 1;
        self.af_down.next = bit_cast::<33, 32>(self.af_cur.val()) - 1;
        self.af_new.next = self.af_cur.val();
        if self.af_inc.q.val() {
            if !self.af_up.val().get_bit(32) {
                self.af_new.next = self.af_up.val().get_bits::<32>(0);
            }
        } else if !self.af_down.val().get_bit(32) {
            self.af_new.next = self.af_down.val().get_bits::<32>(0);
        }
        self.ring_m.next = 512.into();
        if self.ring_size.val() < 512 {
            self.ring_m.next = self.ring_size.val().get_bits::<16>(0);
        }

        self.flows.timeout_syn.next = self.timeout_syn.val();
        self.flows.timeout_established.next = self.timeout_established.val();
        self.flows.timeout_closing.next = self.timeout_closing.val();
        self.flows.timeout_udp.next = self.timeout_udp.val();
        self.flows.cmd_valid.next = false;
        self.flows.cmd_op.next = 0.into();
        self.flows.cmd_hash.next = self.hash.q.val();
        self.flows.cmd_way.next = self.slot.q.val().get_bits::<2>(0);
        self.flows.cmd_key.next = self.key.q.val();
        self.flows.cmd_state.next = self.next_state.val();
        self.flows.cmd_payload.next = self.entry.q.val().get_bits::<32>(0);
        self.flows.cmd_entry_valid.next = (!self.remove.q.val()).into();
        self.flows.cmd_now.next = self.now.val();
        self.flows.res_ready.next = true;
        self.select.s_valid.next = false;
        self.select.round_robin.next = self.algo.q.val() == 0;
        self.select.weighted.next = self.algo.q.val() == 1;
        self.select.least.next = (self.algo.q.val() == 4) | (self.algo.q.val() == 5);
        self.select.response_time.next = self.algo.q.val() == 5;
        self.select.weight_data.next = self.be.read_data.val().get_bits::<16>(96);
        self.select.rtt_data.next = self.rt.read_data.val();
        self.select.active_data.next = self.af.read_data.val();
        self.select.service.next = self.svc.q.val();
        self.select.member_count.next = self.members.q.val();
        self.select.hash.next = self.hash.q.val();
        if self.algo.q.val() == 2 {
            self.select.hash.next = self.src_hash.q.val();
        }
        self.select.ring_size.next = self.ring_m.val();
        self.select.m_ready.next = true;
        self.sel_done.d.next = self.select.m_valid.val();

        self.res_valid.next = self.s_done.q.val();
        self.res_kind.next = self.kind.q.val();
        self.res_backend.next = self.backend.q.val();
        self.res_new_flow.next = self.new_flow.q.val();
        self.res_lookup_event.next = self.ev_lookup.q.val();
        self.res_insert_event.next = self.ev_insert.q.val();
        self.res_address.next = self.be_word.q.val().get_bits::<32>(64);
        self.res_port.next = self.be_word.q.val().get_bits::<16>(48);
        self.res_mac.next = self.be_word.q.val().get_bits::<48>(0);
        self.res_service.next = self.entry.q.val().get_bits::<4>(24);
        self.res_slot.next = self.slot.q.val().get_bits::<16>(0);
        // A slot read: the slot is in the table if it survives the round trip through
        // (set, way); the flow matches the reply (model `fullnat_return`) if its service
        // is full NAT, its protocol the reply's, and its backend the reply's source with
        // the flow's generation (the backend word read at the entry's backend).
        self.slot_set.next = self.req_slot.val().get_bits::<A>(2);
        self.slot_in.next = ((bit_cast::<20, A>(self.slot_set.val()) << 2)
            | bit_cast::<20, 2>(self.req_slot.val().get_bits::<2>(0)))
            == self.req_slot.val();
        self.fn_mask.next = self.fullnat_mask.val() >> self.entry.q.val().get_bits::<4>(24);
        self.fn_match.next = self.fn_mask.val().get_bit(0)
            & (self.entry.q.val().get_bits::<8>(162) == self.key.q.val().get_bits::<8>(96))
            & (self.be_gen.val() == self.flow_gen.val())
            & (self.bq.q.val().get_bits::<32>(64) == self.key.q.val().get_bits::<32>(64))
            & (self.bq.q.val().get_bits::<16>(48) == self.key.q.val().get_bits::<16>(16));
        self.fn_match_q.d.next = self.fn_match.val();
        // Client MACs: slot = set × 4 + way.
        self.cmac.address.next = self.slot.q.val().get_bits::<12>(0);
        self.cmac.write_data.next = self.smac.q.val();
        self.cmac.write_enable.next = self.cm_we.q.val();
        self.cm_we.d.next = false;
        self.kw_we.d.next = false;
        // The persistence RAM: read at the request's set (held from the take), written
        // through the registered port (a write lands at the edge that ends the cycle
        // after it is decided, still inside the request).
        self.k_hash.next = self.src_hash.q.val() ^ bit_cast::<32, 4>(self.svc.q.val());
        self.kset.d.next = self.k_hash.val().get_bits::<7>(0);
        self.sticky.address.next = self.kset.q.val();
        self.k_valid.next = 1.into();
        self.sticky.write_enable.next = self.kw_we.q.val();
        self.sticky.write_data.next = self.kw_data.q.val();
        self.kq.d.next = self.sticky.read_data.val();
        // Two registered stages from `kq` (the entry is stable long before it is used:
        // the set holds from the take, the lookup comes first): the compares and the age,
        // then the match and the expiry.
        self.k_svc.d.next =
            self.kq.q.val().get_bit(84) & (self.kq.q.val().get_bits::<4>(80) == self.svc.q.val());
        self.k_cli.d.next =
            self.kq.q.val().get_bits::<32>(48) == self.key.q.val().get_bits::<32>(64);
        self.k_age.d.next = self.now.val() - self.kq.q.val().get_bits::<32>(0);
        self.k_match.d.next = self.k_svc.q.val() & self.k_cli.q.val();
        self.k_exp.d.next = self.k_age.q.val() > self.stk_to.q.val();

        // A request is taken when the machine is idle (`req_busy` low: a register, so the
        // wide loads below hang off one flip-flop, not off the take decision) and no
        // table copy runs. While idle, the request registers follow the inputs; they hold
        // from the take on.
        // `tables_idle` is a register (the copy machine's state decode in front of the
        // take was a critical path): low from the cycle after a commit strobe (the only
        // way out of `Cp::Idle`; `st_write` and the selection unit's `busy` rise only
        // after one), high one cycle after the copies are done.
        self.tidle.d.next = (self.cp.q.val() == Cp::Idle)
            & !self.commit.val()
            & !self.st_write.q.val()
            & !self.select.busy.val();
        self.tables_idle.next = self.tidle.q.val();
        self.take.next = self.req_valid.val() & !self.req_busy.q.val() & self.tables_idle.val();
        self.req_ready.next = !self.req_busy.q.val() & self.tables_idle.val();
        if !self.req_busy.q.val() {
            self.svc.d.next = self.req_service.val();
            self.key.d.next = self.req_key.val();
            self.hash.d.next = self.req_hash.val();
            self.tcp.d.next = self.req_tcp.val();
            self.flags.d.next = self.req_flags.val();
            self.stateless.d.next = self.req_stateless.val();
            self.algo.d.next = self.req_algo.val();
            self.src_hash.d.next = self.req_src_hash.val();
            self.members.d.next = self.req_members.val();
            self.stk.d.next = self.req_sticky.val();
            self.stk_to.d.next = self.req_sticky_timeout.val();
            self.kn.d.next = self.req_members.val().get_bits::<6>(0);
            if self.req_members.val() > 32 {
                self.kn.d.next = 32.into();
            }
            self.k_clear.d.next = false;
            self.ret.d.next = self.req_return.val() | self.req_read.val();
            self.rd.d.next = self.req_read.val();
            self.smac.d.next = self.req_mac.val();
            self.backend.d.next = self.req_backend.val();
            self.new_flow.d.next = false;
            self.ev_lookup.d.next = 0.into();
            self.ev_insert.d.next = 0.into();
            self.kind.d.next = 0.into();
            if self.req_read.val() {
                // The set is the slot's (the table takes it from the hash).
                self.hash.d.next = bit_cast::<32, A>(self.slot_set.val());
                self.slot.d.next = bit_cast::<32, 20>(self.req_slot.val());
                if !self.slot_in.val() {
                    self.kind.d.next = 1.into();
                }
            }
        }
        self.at_hit.d.next = false;
        self.at_new.d.next = false;
        self.ld_hit.d.next = false;
        // The reads of the backend word (`HitRead`, `ReadBe`, `GoneRead`, `NewRead`,
        // `DispRead`) wait three edges: two for the RAM, one for `bq`.
        self.rd_last.next = self.rd_wait.q.val() == 3;
        if self.s_hread.q.val()
            | self.s_rbe.q.val()
            | self.s_gread.q.val()
            | self.s_nread.q.val()
            | self.s_dread.q.val()
            | self.s_kbe.q.val()
        {
            self.rd_wait.d.next = self.rd_wait.q.val() + 1;
        }
        // The request machine, one-hot: `req_busy` low is `Idle`, every other state is
        // a flip-flop of its own (`at_hit` is `HitUse`, `at_new` is `NewUse`), so each
        // state's decode is one flip-flop and each flag's next value depends only on the
        // states that lead into it. A transition clears its own flag and sets the next.
        if !self.req_busy.q.val() & self.take.val() {
            // The request registers load every idle cycle (above); only the state
            // depends on the take.
            self.req_busy.d.next = true;
            if self.req_read.val() {
                if self.slot_in.val() {
                    self.s_rsend.d.next = true;
                } else {
                    self.s_done.d.next = true;
                }
            } else {
                self.s_lsend.d.next = true;
            }
        }
        if self.s_lsend.q.val() {
            self.flows.cmd_valid.next = true;
            self.flows.cmd_op.next = 0.into();
            if self.flows.cmd_ready.val() {
                self.take_res.d.next = true;
                self.s_lsend.d.next = false;
                self.s_lwait.d.next = true;
            }
        }
        if self.s_lwait.q.val() & self.flows.res_valid.val() {
            // (`entry`, `be_addr` load on `take_res`, below.)
            self.slot.d.next = self.flows.res_slot.val();
            self.rd_wait.d.next = 0.into();
            self.s_lwait.d.next = false;
            if self.flows.res_kind.val() == 2 {
                self.ev_lookup.d.next = 2.into();
                self.s_gread.d.next = true;
            } else if self.flows.res_kind.val() == 1 {
                self.s_hread.d.next = true;
            } else {
                self.s_miss.d.next = true;
            }
        }
        if self.s_hread.q.val() & self.rd_last.val() {
            self.s_hread.d.next = false;
            self.at_hit.d.next = true;
            self.ld_hit.d.next = !self.ret.q.val();
        }
        if self.at_hit.q.val() {
            // `HitUse` (its loads are on `at_hit`, below).
            if self.ret.q.val() & self.g_other.q.val() {
                self.s_done.d.next = true;
            } else {
                self.s_wsend.d.next = true;
            }
        }
        if self.s_rsend.q.val() {
            self.flows.cmd_valid.next = true;
            self.flows.cmd_op.next = 3.into();
            if self.flows.cmd_ready.val() {
                self.take_res.d.next = true;
                self.s_rsend.d.next = false;
                self.s_rwait.d.next = true;
            }
        }
        if self.s_rwait.q.val() & self.flows.res_valid.val() {
            // (`entry`, `be_addr`, `stale` load on `take_res`, below.)
            self.rd_wait.d.next = 0.into();
            self.s_rwait.d.next = false;
            if self.flows.res_entry.val().get_bit(170) {
                self.s_rbe.d.next = true;
            } else {
                self.kind.d.next = 1.into();
                self.s_done.d.next = true;
            }
        }
        if self.s_rbe.q.val() & self.rd_last.val() {
            self.s_rbe.d.next = false;
            self.s_ruse.d.next = true;
        }
        if self.s_ruse.q.val() {
            // No match: untouched. A match past its timeout is freed and released
            // (expired); else refreshed and its client MAC read (as a NAT reply's).
            self.s_ruse.d.next = false;
            if self.fn_match_q.q.val() {
                // (`backend` loads on `ld_flow`, below.)
                self.kind.d.next = 0.into();
                self.key.d.next = self.entry.q.val().get_bits::<104>(66);
                self.remove.d.next = self.stale.q.val();
                if self.stale.q.val() {
                    self.ev_lookup.d.next = 2.into();
                }
                self.s_wsend.d.next = true;
            } else {
                self.kind.d.next = 1.into();
                self.s_done.d.next = true;
            }
        }
        if self.s_wsend.q.val() {
            self.flows.cmd_valid.next = true;
            self.flows.cmd_op.next = 2.into();
            if self.flows.cmd_ready.val() {
                self.s_wsend.d.next = false;
                self.s_wwait.d.next = true;
            }
        }
        if self.s_wwait.q.val() & self.flows.res_valid.val() {
            self.s_wwait.d.next = false;
            if self.remove.q.val() {
                // Moved (or an expired full-NAT flow): release the old backend
                // (generation still the same).
                if !self.rd.q.val() {
                    self.ev_lookup.d.next = 1.into();
                }
                if self.g_same.q.val() {
                    self.af_inc.d.next = false;
                    self.af_miss.d.next = true;
                    self.af_more.d.next = false;
                    self.s_afread.d.next = true;
                } else {
                    self.s_miss.d.next = true;
                }
            } else {
                self.kind.d.next = 0.into();
                if self.ret.q.val() {
                    self.rd_wait.d.next = 0.into();
                    self.s_cmrd.d.next = true;
                } else {
                    self.cm_we.d.next = true;
                    self.s_done.d.next = true;
                }
            }
        }
        if self.s_gread.q.val() & self.rd_last.val() {
            self.s_gread.d.next = false;
            self.s_guse.d.next = true;
        }
        if self.s_guse.q.val() {
            self.s_guse.d.next = false;
            if self.g_same.q.val() {
                self.af_inc.d.next = false;
                self.af_miss.d.next = true;
                self.af_more.d.next = false;
                self.s_afread.d.next = true;
            } else {
                self.s_miss.d.next = true;
            }
        }
        if self.s_cmrd.q.val() {
            self.rd_wait.d.next = self.rd_wait.q.val() + 1;
            if self.rd_wait.q.val() == 1 {
                self.s_cmrd.d.next = false;
                self.s_cmuse.d.next = true;
            }
        }
        if self.s_cmuse.q.val() {
            // The client MAC, and the client endpoint (the flow key's source).
            self.be_word.d.next = (bit_cast::<128, 32>(self.key.q.val().get_bits::<32>(64)) << 64)
                | (bit_cast::<128, 16>(self.key.q.val().get_bits::<16>(16)) << 48)
                | bit_cast::<128, 48>(self.cmac.read_data.val());
            self.kind.d.next = 0.into();
            self.s_cmuse.d.next = false;
            self.s_done.d.next = true;
        }
        if self.s_miss.q.val() {
            self.s_miss.d.next = false;
            if self.ret.q.val() {
                // A reply without its flow: `return_no_flow`.
                self.kind.d.next = 1.into();
                self.s_done.d.next = true;
            } else if self.tcp.q.val() & !self.syn_only.val() & !self.stateless.q.val() {
                self.kind.d.next = 3.into();
                self.s_done.d.next = true;
            } else if self.stk.q.val() {
                self.s_kread.d.next = true;
            } else {
                self.s_ssend.d.next = true;
            }
        }
        // ---- Persistence (`Pipeline::choose`), one way per set: the client's entry of
        // the service, within its timeout, is used if its backend is still a member of
        // the service, Up, of weight > 0 and of the entry's generation; then it is
        // refreshed (written back at `NewUse`). A matching entry past its timeout or not
        // usable is freed, and the algorithm chooses; its choice (not `NO_BACKEND`)
        // replaces whatever the set held (`NewUse`).
        if self.s_kread.q.val() {
            self.s_kread.d.next = false;
            self.s_kcmp.d.next = true;
        }
        if self.s_kcmp.q.val() {
            self.backend.d.next = bit_cast::<16, 8>(self.kq.q.val().get_bits::<8>(40));
            self.be_addr.d.next = self.kq.q.val().get_bits::<8>(40);
            self.s_kcmp.d.next = false;
            self.s_kuse.d.next = true;
        }
        if self.s_kuse.q.val() {
            self.s_kuse.d.next = false;
            self.rd_wait.d.next = 0.into();
            if !self.k_match.q.val() {
                self.s_ssend.d.next = true;
            } else if self.k_exp.q.val() {
                self.k_clear.d.next = true;
                self.s_ssend.d.next = true;
            } else {
                self.s_kbe.d.next = true;
            }
        }
        if self.s_kbe.q.val() & self.rd_last.val() {
            self.kpos.d.next = 0.into();
            self.krem.d.next = self.kn.q.val();
            self.k_found.d.next = false;
            self.s_kbe.d.next = false;
            self.s_kscan.d.next = true;
        }
        if self.s_kscan.q.val() {
            // One member-list read per cycle through the selection unit's external port
            // (idle now), compared two edges later.
            self.select.ext_read.next = true;
            self.select.ext_mem_addr.next =
                (bit_cast::<9, 4>(self.svc.q.val()) << 5) | bit_cast::<9, 5>(self.kpos.q.val());
            self.kv1.d.next = false;
            if self.krem.q.val() != 0 {
                self.kv1.d.next = true;
                self.kpos.d.next = self.kpos.q.val() + 1;
                self.krem.d.next = self.krem.q.val() - 1;
            }
            if self.kv2.q.val() & (self.select.ext_mem_data.val() == self.backend.q.val()) {
                self.k_found.d.next = true;
            }
            if (self.krem.q.val() == 0) & !self.kv1.q.val() & !self.kv2.q.val() {
                self.s_kscan.d.next = false;
                self.s_kchk.d.next = true;
            }
        }
        self.kv2.d.next = self.kv1.q.val() & self.s_kscan.q.val();
        if self.s_kchk.q.val() {
            self.k_ok.d.next = self.k_found.q.val()
                & (self.be_state.val() == 1)
                & (self.bq.q.val().get_bits::<16>(96) != 0)
                & (self.be_gen.val() == self.kq.q.val().get_bits::<8>(32));
            self.s_kchk.d.next = false;
            self.s_kdec.d.next = true;
        }
        if self.s_kdec.q.val() {
            self.s_kdec.d.next = false;
            self.rd_wait.d.next = 0.into();
            if self.k_ok.q.val() {
                self.s_nread.d.next = true;
            } else {
                self.k_clear.d.next = true;
                self.s_ssend.d.next = true;
            }
        }
        if self.s_ssend.q.val() {
            self.select.s_valid.next = true;
            if self.select.s_ready.val() {
                self.s_ssend.d.next = false;
                self.s_swait.d.next = true;
            }
        }
        if self.s_swait.q.val() {
            // Weighted round robin reads the weights of the active backend table; the
            // least algorithms the weight, response time and active-flow count.
            self.be_rd.next = self.bank1.val() | bit_cast::<9, 8>(self.select.weight_index.val());
            self.af.read_address.next = self.select.weight_index.val();
            if self.sel_done.q.val() {
                self.backend.d.next = self.select.backend.val();
                self.be_addr.d.next = self.select.backend.val().get_bits::<8>(0);
                self.rd_wait.d.next = 0.into();
                self.s_swait.d.next = false;
                if self.select.m_none.val() {
                    self.kind.d.next = 1.into();
                    self.s_done.d.next = true;
                    // No choice: a client's entry found unusable stays freed.
                    self.kw_we.d.next = self.k_clear.q.val();
                    self.kw_data.d.next = 0.into();
                } else {
                    self.s_nread.d.next = true;
                }
            }
        }
        if self.s_nread.q.val() & self.rd_last.val() {
            self.s_nread.d.next = false;
            self.at_new.d.next = true;
        }
        if self.at_new.q.val() {
            // `NewUse` (its loads are on `at_new`, below).
            if self.g_nomac.q.val() {
                self.s_done.d.next = true;
            } else {
                self.s_isend.d.next = true;
            }
        }
        if self.s_isend.q.val() {
            self.flows.cmd_valid.next = true;
            self.flows.cmd_op.next = 1.into();
            self.flows.cmd_state.next = self.flow_state.val();
            if self.flows.cmd_ready.val() {
                self.new_flow.d.next = true;
                self.take_res.d.next = true;
                self.s_isend.d.next = false;
                self.s_iwait.d.next = true;
            }
        }
        if self.s_iwait.q.val() & self.flows.res_valid.val() {
            // The displaced entry (its valid bit), its backend read next; the new
            // flow's slot gets the client MAC.
            self.slot.d.next = self.flows.res_slot.val();
            self.cm_we.d.next = true;
            self.rd_wait.d.next = 0.into();
            self.af_inc.d.next = true;
            self.af_miss.d.next = false;
            self.af_more.d.next = false;
            self.s_iwait.d.next = false;
            if self.flows.res_entry.val().get_bit(170) {
                self.ev_insert.d.next = 2.into();
                if self.flows.res_kind.val() == 2 {
                    self.ev_insert.d.next = 1.into();
                }
                self.s_dread.d.next = true;
            } else {
                self.s_afread.d.next = true;
            }
        }
        if self.s_dread.q.val() & self.rd_last.val() {
            self.s_dread.d.next = false;
            self.s_duse.d.next = true;
        }
        if self.s_duse.q.val() {
            // Release the displaced flow's backend, then count the new flow.
            if self.g_same.q.val() {
                self.af_inc.d.next = false;
                self.af_more.d.next = true;
            }
            self.s_duse.d.next = false;
            self.s_afread.d.next = true;
        }
        // `AfRead` → `AfWait` → `AfAdd` → `AfWrite`, one cycle each.
        self.s_afwait.d.next = self.s_afread.q.val();
        self.s_afadd.d.next = self.s_afwait.q.val();
        self.s_afwrite.d.next = self.s_afadd.q.val();
        if self.s_afread.q.val() {
            self.s_afread.d.next = false;
        }
        if self.s_afadd.q.val() {
            // Written at the edge that ends `AfWrite`.
            self.aw_we.d.next = true;
            self.aw_data.d.next = self.af_new.val();
        }
        if self.s_afwrite.q.val() {
            if self.af_more.q.val() {
                // The release of a displaced flow is done: now the new flow's count.
                self.af_inc.d.next = true;
                self.af_more.d.next = false;
                self.s_afread.d.next = true;
            } else if self.af_miss.q.val() {
                self.s_miss.d.next = true;
            } else {
                self.s_done.d.next = true;
            }
        }
        if self.s_done.q.val() & self.res_ready.val() {
            self.req_busy.d.next = false;
            self.s_done.d.next = false;
        }
        self.ring_shadow.address.next = self.rs_addr.val();
        self.ring_shadow.write_data.next = self.rs_wdata.val();
        self.ring_shadow.write_enable.next = self.rs_we.val();
        // The result of a lookup, slot read or insert (`take_res`): its entry (a slot
        // read's staleness beside it; the other results ignore `stale`).
        if self.take_res.q.val() & self.flows.res_valid.val() {
            self.take_res.d.next = false;
            self.entry.d.next = self.flows.res_entry.val();
            self.be_addr.d.next = self.flows.res_entry.val().get_bits::<8>(8);
            self.stale.d.next = self.flows.res_kind.val() == 1;
        }
        // `NewUse` (`at_new`).
        if self.at_new.q.val() {
            self.be_word.d.next = self.bq.q.val();
            // The new entry: state, payload (service, backend, generation).
            self.entry.d.next = (bit_cast::<171, 2>(self.new_state.val()) << 64)
                | (bit_cast::<171, 4>(self.svc.q.val()) << 24)
                | (bit_cast::<171, 16>(self.backend.q.val()) << 8)
                | bit_cast::<171, 8>(self.be_gen.val());
            self.remove.d.next = false;
            if self.g_nomac.q.val() {
                self.kind.d.next = 2.into();
            }
            // The persistence entry: made, or refreshed (the model's insert comes before
            // the neighbour check).
            self.kw_we.d.next = self.stk.q.val();
            self.kw_data.d.next = (bit_cast::<85, 1>(self.k_valid.val()) << 84)
                | (bit_cast::<85, 4>(self.svc.q.val()) << 80)
                | (bit_cast::<85, 32>(self.key.q.val().get_bits::<32>(64)) << 48)
                | (bit_cast::<85, 8>(self.backend.q.val().get_bits::<8>(0)) << 40)
                | (bit_cast::<85, 8>(self.be_gen.val()) << 32)
                | bit_cast::<85, 32>(self.now.val());
        }
        // `HitUse` (`at_hit`): model `backends[backend % 256]` keeps flows with the same
        // generation.
        if self.at_hit.q.val() {
            self.be_word.d.next = self.bq.q.val();
            self.remove.d.next = true;
            if self.g_keep.q.val() {
                self.remove.d.next = false;
            }
            if self.ret.q.val() {
                // model `return_to_client`: the flow must point at the reply's backend
                // (no state check, `backend` kept: no `ld_hit`); it is refreshed, its
                // client MAC read.
                self.remove.d.next = false;
                if self.g_other.q.val() {
                    self.kind.d.next = 1.into();
                }
            }
        }
        // The flow's backend: at a hit (`ld_hit`, registered on the way into `HitUse`,
        // not for a reply) or a matching slot read (one source, one enable: the loads in
        // both states behind the state decode were a critical path).
        self.ld_flow.next = self.ld_hit.q.val() | (self.s_ruse.q.val() & self.fn_match_q.q.val());
        if self.ld_flow.val() {
            self.backend.d.next = self.flow_backend.val();
        }
        self.be.read_address.next = self.be_rd.val();
        self.rt.read_address.next = self.be_rd.val();
    }
}
