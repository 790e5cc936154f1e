//! Stage 4, select (`fulcrum_model::select`): the backend of a new flow for every
//! algorithm: the ring algorithms (Maglev: the flow hash; IP hash: the source hash), round
//! robin, weighted round robin, least connections and least response time.
//!
//! - **Ring**: index = `(hash × M) >> 32` (`maglev::lookup`), computed exactly by
//!   Horner's rule over the bits of `M`, two per cycle (8 cycles: a 42-bit addition per
//!   cycle, where the ECP5 multiplier without its internal registers took more than 8 ns);
//!   then the ring RAM at `service << 9 | index`.
//!   `M = 0` (empty ring), an entry of `EMPTY` (`0xFFFF`) or any entry ≥ 256 gives
//!   `NO_BACKEND` (`0xFFFF`), and so does an entry whose backend is not eligible.
//! - **Round robin**: the member list of the service (`n = min(member_count, 32)`), from
//!   `cursor % n`, one member at a time: the first eligible member wins and the cursor
//!   moves past it; no eligible member gives `NO_BACKEND` and keeps the cursor.
//! - **Weighted round robin** (nginx's smooth WRR, `SelectState::smooth_weighted`): every
//!   member of the list from position 0: an eligible one gets `current += weight` (32-bit
//!   two's complement, the model's `i32`) and the first with the largest `current` (signed
//!   compare) wins; an ineligible one (or an index ≥ 256) gets `current = 0`; the winner's
//!   `current` then drops by the sum of the eligible weights. `current` lives in a
//!   512 × 32 RAM (`service << 5 | position`), read with the member list; the weight
//!   comes from the owner's backend table through `weight_index` / `weight_data` (read
//!   beside the eligibility bit), so the unit keeps no weight copy.
//!
//! - **Least connections / least response time** (`least_by`): every member of the list
//!   from position 0; an eligible one's cost is its active-flow count (least
//!   connections) or `rtt × load` with `rtt` clamped to `1..=2^24 - 1` (by the owner, as
//!   it stores the word) and `load = min(active + 1, 2^20)` (least response time; the
//!   product by shift and add over the load's 21 bits, one per cycle, at most 44 bits);
//!   the first eligible member is the best so far, any later one replaces it when
//!   `cost × best_weight < best_cost × weight`, both products exact (60 bits, by shift
//!   and add over the weights' 16 bits, one per cycle, registered, then compared). The
//!   weight, response time and active count come from the owner through `weight_index`
//!   (`weight_data`, `rtt_data`, `active_data`, two edges later): the unit keeps no copy.
//!
//! *Eligible* = backend index < 256, state `Up` and weight > 0, kept as one bit per
//! backend in a RAM written from the backend table's word 0.
//!
//! The ring and eligibility RAMs are written through a table write port in the register
//! block's encoding (`regs`): ring entries (table 4, index `s << 20 | offset`, offsets
//! below 512 kept, so `M ≤ 512`), backend word 0 (table 2). The RAMs have one address
//! each, so table writes must not overlap a selection (`s_ready` is low while
//! `table_write` is high; the shadow-bank commit gives that ordering in the full design).
//!
//! Member lists are banked as the model's: `mem_*` writes the shadow lists (512 × 16,
//! `service << 5 | position`, both banks starting `NO_BACKEND`); a `commit` strobe copies
//! the lists of the services written since the last commit into the active bank (4 cycles
//! per entry, 128 per service; an unwritten service is equal in both banks and takes 1
//! cycle), comparing every entry, and then resets the round-robin cursor and the weighted
//! `current`s of every service whose 32-entry list changed or whose bit is set in
//! `changed` (the controller's service-entry compare): the model's
//! `SelectState::reset_service` in `Pipeline::commit_banks` (one cycle to take the set of
//! services to reset, then 32 cycles per reset service and 1 per other up to the last
//! reset one, and 1 to end). From 19 cycles (nothing written) to 2,563 (every list
//! written and changed) with `busy` high, no request taken. A member write during a
//! commit goes into the next one. Block RAM: ring 4 `DP16KD`, both member
//! banks 1 (one 1,024 × 16 RAM), `current` 1; eligibility (256 × 1) and cursors (16 × 5) are distributed RAM.
//!
//! Latency, from the cycle a request is taken to the cycle `m_valid` rises: a ring
//! selection 17 cycles (11 for an empty ring); round robin 4 plus 6 per member looked at
//! (10 when the member at the cursor is eligible, at most 196); weighted round robin
//! 2 + 8 per member of the list, 3 for an entry that is not a backend (every member is
//! looked at: 10 to 258 cycles, 3 for an empty list; `current + weight` and its comparison are registered
//! before they are used); least connections 3 + 3 per entry that is not a backend, 7 per
//! ineligible member, 8 for the first eligible one and 25 for every later one; least
//! response time 21 more per eligible member (at most 592 and 1,054 cycles measured over
//! lists of up to 32 in `selections_match_the_model`). A new flow of a round-robin service with many ineligible members, or of
//! any weighted service with a long list, takes longer than a minimum-size frame at line
//! rate (about 84 cycles). One selection at a time.

use rust_hdl::prelude::*;

use crate::ram::{BankedRam9, DualPortRam, SinglePortRam};

/// States of the commit machine (member-list bank copy, then cursor resets).
#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum Cp {
    Idle,
    Copy,
    Snap,
    Reset,
}

/// Backend selection for the ring algorithms and round robin.
#[derive(LogicBlock, Default)]
pub struct BackendSelect {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// Table write strobe (from `regs::RegisterBlock`).
    pub table_write: Signal<In, Bit>,
    /// Table code: 2 backend, 4 ring (others ignored; members come through `mem_*`).
    pub table_kind: Signal<In, Bits<4>>,
    /// Entry index (regmap encoding).
    pub table_index: Signal<In, Bits<28>>,
    /// Entry word 0.
    pub table_data0: Signal<In, Bits<32>>,
    /// Write `mem_data` into the shadow member list at `mem_index` (`service << 5 |
    /// position`).
    pub mem_write: Signal<In, Bit>,
    /// See `mem_write`.
    pub mem_index: Signal<In, Bits<9>>,
    /// See `mem_write`.
    pub mem_data: Signal<In, Bits<16>>,
    /// Strobe: copy the shadow member lists into the active ones, then reset the cursor of
    /// every service whose list changed or whose bit is set in `changed`.
    pub commit: Signal<In, Bit>,
    /// Services whose service entry changed at this commit (read when the copy ends, so
    /// it must be stable until `busy` falls).
    pub changed: Signal<In, Bits<16>>,
    /// The commit is in progress (no request is taken).
    pub busy: Signal<Out, Bit>,
    /// A request is on the inputs below.
    pub s_valid: Signal<In, Bit>,
    /// The unit takes it this cycle.
    pub s_ready: Signal<Out, Bit>,
    /// Round robin (else a ring lookup, or weighted round robin).
    pub round_robin: Signal<In, Bit>,
    /// Weighted round robin (when `round_robin` is low).
    pub weighted: Signal<In, Bit>,
    /// Least connections or least response time (when `round_robin` and `weighted` are
    /// low).
    pub least: Signal<In, Bit>,
    /// With `least`: least response time (else least connections).
    pub response_time: Signal<In, Bit>,
    /// Service slot, 0–15.
    pub service: Signal<In, Bits<4>>,
    /// The service's member count (values above 32 count as 32).
    pub member_count: Signal<In, Bits<8>>,
    /// Ring path: the flow hash (Maglev) or the source hash (IP hash).
    pub hash: Signal<In, Bits<32>>,
    /// Ring size `M`, at most 512 (`forward::RING_STRIDE`).
    pub ring_size: Signal<In, Bits<16>>,
    /// Backend whose weight to read (weighted round robin): the owner's active backend
    /// table, read as a `SinglePortRam` (the word on `weight_data` two edges later).
    pub weight_index: Signal<Out, Bits<8>>,
    /// The weight of backend `weight_index` two edges ago.
    pub weight_data: Signal<In, Bits<16>>,
    /// Its response time (µs, clamped to `1..=2^24 - 1`), read beside the weight.
    pub rtt_data: Signal<In, Bits<24>>,
    /// Its active-flow count, read beside the weight.
    pub active_data: Signal<In, Bits<32>>,
    /// The owner's NAT return unit reads the active member lists (no selection or commit
    /// is in progress then): the read port takes `ext_mem_addr`.
    pub ext_read: Signal<In, Bit>,
    /// Entry to read (`service << 5 | position`) while `ext_read`.
    pub ext_mem_addr: Signal<In, Bits<9>>,
    /// The entry at `ext_mem_addr` two edges ago.
    pub ext_mem_data: Signal<Out, Bits<16>>,
    /// The result is valid.
    pub m_valid: Signal<Out, Bit>,
    /// The receiver takes it.
    pub m_ready: Signal<In, Bit>,
    /// Backend-table index, or `0xFFFF` (`NO_BACKEND`).
    pub backend: Signal<Out, Bits<16>>,
    /// The answer is `NO_BACKEND` (`backend == 0xFFFF`), from a flip-flop.
    pub m_none: Signal<Out, Bit>,

    /// `16 × RING_STRIDE` 9-bit words (`forward::RING_STRIDE` = 512): bit 8 marks an entry
    /// that is not a backend (`EMPTY` or ≥ 256), bits 0–7 the backend index. 9 bits fit
    /// the block RAM's 2048 × 9 shape (4 `DP16KD` per bank instead of 8 for 16 bits).
    // (Four block RAMs, their bank chosen after the read registers: `BankedRam9`.)
    ring: BankedRam9,
    /// Member lists, both banks in one RAM (`bank << 9 | service << 5 | position`, bank
    /// 0 shadow, 1 active: 1,024 × 16 is one `DP16KD`, where a bank alone took one): the
    /// write port takes the shadow writes (`mem_*`) and the copy into the active bank,
    /// the read port serves selection, the copy and `ext_*`.
    members: DualPortRam<Bits<16>, 10>,
    /// The shadow entry being copied.
    cp_sh: DFF<Bits<16>>,
    eligible: DualPortRam<Bit, 8>,
    /// Smooth weighted round robin's `current` per (service, position), two's complement
    /// (the model's `i32`).
    current: SinglePortRam<Bits<32>, 9>,
    cursor: SinglePortRam<Bits<5>, 4>,

    // The selection machine's states, one flip-flop each (`Idle` is `sbusy` low).
    s_cur_rd0: DFF<Bit>,
    s_cur_rd1: DFF<Bit>,
    s_cur_use: DFF<Bit>,
    s_cur_mod: DFF<Bit>,
    s_mem_rd0: DFF<Bit>,
    s_mul: DFF<Bit>,
    s_mul_step: DFF<Bit>,
    s_idx: DFF<Bit>,
    s_ring_rd0: DFF<Bit>,
    s_ring_rd1: DFF<Bit>,
    s_ring_use: DFF<Bit>,
    s_el_rd0: DFF<Bit>,
    s_el_rd1: DFF<Bit>,
    s_el_use: DFF<Bit>,
    s_mem_rd1: DFF<Bit>,
    s_mem_use: DFF<Bit>,
    s_el2_rd0: DFF<Bit>,
    s_el2_rd1: DFF<Bit>,
    s_el2_sum: DFF<Bit>,
    s_el2_cmp: DFF<Bit>,
    s_el2_use: DFF<Bit>,
    s_wrr_end: DFF<Bit>,
    s_lc_load: DFF<Bit>,
    s_lc_mul: DFF<Bit>,
    s_lc_pre: DFF<Bit>,
    s_lc_prod: DFF<Bit>,
    s_lc_cmp: DFF<Bit>,
    s_lc_next: DFF<Bit>,
    s_done: DFF<Bit>,
    // From a take until the result is taken.
    sbusy: DFF<Bit>,
    rr: DFF<Bit>,
    svc: DFF<Bits<4>>,
    count: DFF<Bits<6>>,
    hash_q: DFF<Bits<32>>,
    size_q: DFF<Bits<16>>,
    // Ring index: `hash × M` (mod 2^42, enough for bits 32..41) by Horner's rule, two
    // bits of `M` per cycle from the top (`msh`), with `3 × hash` (`h3`) precomputed.
    acc: DFF<Bits<42>>,
    h3: DFF<Bits<42>>,
    msh: DFF<Bits<16>>,
    mstep: DFF<Bits<3>>,
    index: DFF<Bits<10>>,
    cand: DFF<Bits<16>>,
    pos: DFF<Bits<6>>,
    steps: DFF<Bits<6>>,
    result: DFF<Bits<16>>,
    cp: DFF<Cp>,
    cp_idx: DFF<Bits<9>>,
    cp_phase: DFF<Bits<2>>,
    // `cp_idx` is the service's last entry (registered: the index holds for the entry's
    // four cycles, and the compare sat in front of `dsh`'s clock enable).
    cp_last: DFF<Bit>,
    chg: DFF<Bits<16>>,
    rs_idx: DFF<Bits<9>>,
    // Services with a member write since the last commit.
    mdirty: DFF<Bits<16>>,
    // The copy's services still to walk (bit 0: the one at hand), from `mdirty`.
    dsh: DFF<Bits<16>>,
    // The service at hand differs between the banks so far.
    cp_diff: DFF<Bit>,
    // The reset's services still to walk (bit 0: the one at hand).
    rsh: DFF<Bits<16>>,
    wrr: DFF<Bit>,
    total: DFF<Bits<32>>,
    have_best: DFF<Bit>,
    best_cur: DFF<Bits<32>>,
    best_pos: DFF<Bits<6>>,
    // Weighted: this member's `current + weight`.
    cur_q: DFF<Bits<32>>,
    // The cycle is a weighted `El2Use`.
    use_w: DFF<Bit>,
    // `steps + 1 == count`, a cycle late (`steps` changes at least two cycles before a
    // `MemUse` or `El2Use` reads it).
    last: DFF<Bit>,
    // `result` holds the choice (else the answer is `NO_BACKEND`).
    chosen: DFF<Bit>,
    // Weighted: this member beats the best so far (registered in `El2Cmp`).
    better_q: DFF<Bit>,
    // Least connections / least response time: the member's cost (`active`, or
    // `rtt × load`, at most 44 bits) and weight, the best's, the cross products
    // `cost × best_w` (`pa`) and `best_cost × w` (`pb`) by shift and add over the weights'
    // bits (`sa`, `sb`, top first), the response time and the load (`lsh`, top first)
    // for `rtt × load`, and a step count.
    lc: DFF<Bit>,
    lrt: DFF<Bit>,
    cost: DFF<Bits<44>>,
    cw: DFF<Bits<16>>,
    best_cost: DFF<Bits<44>>,
    best_w: DFF<Bits<16>>,
    pa: DFF<Bits<60>>,
    pb: DFF<Bits<60>>,
    sa: DFF<Bits<16>>,
    sb: DFF<Bits<16>>,
    rtq: DFF<Bits<24>>,
    lsh: DFF<Bits<21>>,
    k: DFF<Bits<5>>,
    load: Signal<Local, Bits<21>>,
    rt_add: Signal<Local, Bits<44>>,
    pa_add: Signal<Local, Bits<60>>,
    pb_add: Signal<Local, Bits<60>>,
    // `LcNext` takes the member as the best so far (set in `LcPre` or `LcCmp`).
    lc_take: DFF<Bit>,

    h42: Signal<Local, Bits<42>>,
    ring_addr: Signal<Local, Bits<13>>,
    ring_we: Signal<Local, Bit>,
    ring_rd: Signal<Local, Bits<9>>,
    addend: Signal<Local, Bits<42>>,
    pos_inc: Signal<Local, Bits<6>>,
    pos_next: Signal<Local, Bits<6>>,
    // `pos_next` a cycle later (`pos` holds for at least two cycles before every move, so
    // the moves take this register instead of the increment and its wrap compare).
    pos_nx: DFF<Bits<6>>,
    elig_word: Signal<Local, Bit>,
    ring_word: Signal<Local, Bits<9>>,
    one16: Signal<Local, Bits<16>>,
    svc_end: Signal<Local, Bit>,
    weight: Signal<Local, Bits<32>>,
    cur_new: Signal<Local, Bits<32>>,
    better: Signal<Local, Bit>,
    slot: Signal<Local, Bits<9>>,
    none_mask: Signal<Local, Bits<16>>,
    bank1: Signal<Local, Bits<10>>,
}

impl BackendSelect {
    /// A unit with empty tables: nothing eligible, cursors 0, member lists `NO_BACKEND`
    /// (as the model's); rings read zero in simulation and must be written before use.
    pub fn new() -> Self {
        let no_backend = (0..1024u64)
            .map(|a| (Bits::from(a), Bits::<16>::from(0xFFFFu64)))
            .collect();
        BackendSelect {
            // The ring starts empty (zero in simulation; a zero init of 8k words would
            // make the Verilog slow to elaborate): the forward path clears it.
            ring: BankedRam9::default(),
            members: DualPortRam::new(no_backend),
            eligible: DualPortRam::zeroed_distributed(),
            cursor: SinglePortRam::zeroed(),
            current: SinglePortRam::zeroed(),
            ..Default::default()
        }
    }
}

impl Logic for BackendSelect {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, s_cur_rd0, s_cur_rd1, s_cur_use, s_cur_mod, s_mem_rd0, s_mul, s_mul_step,
            s_idx, s_ring_rd0, s_ring_rd1, s_ring_use, s_el_rd0, s_el_rd1, s_el_use, s_mem_rd1,
            s_mem_use, s_el2_rd0, s_el2_rd1, s_el2_sum, s_el2_cmp, s_el2_use, s_wrr_end, s_lc_load,
            s_lc_mul, s_lc_pre, s_lc_prod, s_lc_cmp, s_lc_next, s_done, rr, svc, count, hash_q,
            size_q, acc, h3, msh, mstep, index, cand, pos, steps, result, cp, cp_idx, cp_phase,
            cp_last, chg, rs_idx, wrr, total, have_best, best_cur, best_pos, mdirty, cp_sh, sbusy,
            cur_q, use_w, dsh, cp_diff, rsh, last, chosen, better_q, pos_nx, lc_take, lc, lrt,
            cost, cw, best_cost, best_w, pa, pb, sa, sb, rtq, lsh, k
        );
        clock!(self, clock, ring, members, eligible, cursor, current);

        // Table writes.
        self.ring_we.next = false;
        self.eligible.write_enable.next = false;
        self.cursor.write_enable.next = false;
        self.current.write_enable.next = false;
        // A ring entry ≥ 256 (`EMPTY` included) is stored as 0x1FF: not a backend.
        self.ring_word.next = bit_cast::<9, 8>(self.table_data0.val().get_bits::<8>(0));
        if self.table_data0.val().get_bits::<8>(8) != 0 {
            self.ring_word.next = 0x1FF.into();
        }
        self.members.write_address.next = bit_cast::<10, 9>(self.mem_index.val());
        self.members.write_data.next = self.mem_data.val();
        self.members.write_enable.next = self.mem_write.val();
        self.bank1.next = bit_cast::<10, 1>(true.into()) << 9;
        self.eligible.write_data.next = (self.table_data0.val().get_bits::<3>(29) == 1)
            & (self.table_data0.val().get_bits::<16>(0) != 0);
        self.ring_addr.next = (bit_cast::<13, 4>(self.svc.q.val()) << 9)
            | bit_cast::<13, 9>(self.index.q.val().get_bits::<9>(0));
        self.slot.next =
            (bit_cast::<9, 4>(self.svc.q.val()) << 5) | bit_cast::<9, 6>(self.pos.q.val());
        self.members.read_address.next = self.bank1.val() | bit_cast::<10, 9>(self.slot.val());
        if self.ext_read.val() {
            self.members.read_address.next =
                self.bank1.val() | bit_cast::<10, 9>(self.ext_mem_addr.val());
        }
        self.ext_mem_data.next = self.members.read_data.val();
        self.current.address.next = self.slot.val();
        self.current.write_data.next = 0.into();
        // Separate read and write addresses (distributed RAM has both): the read address
        // is `cand`'s flip-flops, with no table-write multiplexer in front of the LUT RAM
        // and its 16-way output selection (a critical path in the board image).
        self.eligible.read_address.next = self.cand.q.val().get_bits::<8>(0);
        self.eligible.write_address.next = self.table_index.val().get_bits::<8>(0);
        self.cursor.address.next = self.svc.q.val();
        if self.table_write.val() {
            self.ring_addr.next = (bit_cast::<13, 4>(self.table_index.val().get_bits::<4>(20))
                << 9)
                | bit_cast::<13, 9>(self.table_index.val().get_bits::<9>(0));
            self.ring_we.next = (self.table_kind.val() == 4)
                & (self.table_index.val().get_bits::<4>(24) == 0)
                & (self.table_index.val().get_bits::<11>(9) == 0);
            self.eligible.write_enable.next =
                (self.table_kind.val() == 2) & (self.table_index.val().get_bits::<20>(8) == 0);
        }

        // Ring index: (hash × M) >> 32.
        // (The address holds while a ring entry is read.)
        self.ring.address.next = self.ring_addr.val();
        self.ring.read_bank.next = self.ring_addr.val().get_bits::<2>(11);
        self.ring.write_data.next = self.ring_word.val();
        self.ring.write_enable.next = self.ring_we.val();
        self.ring_rd.next = self.ring.read_data.val();
        self.h42.next = bit_cast::<42, 32>(self.hash_q.q.val());
        self.addend.next = 0.into();
        if self.msh.q.val().get_bits::<2>(14) == 1 {
            self.addend.next = self.h42.val();
        }
        if self.msh.q.val().get_bits::<2>(14) == 2 {
            self.addend.next = self.h42.val() << 1;
        }
        if self.msh.q.val().get_bits::<2>(14) == 3 {
            self.addend.next = self.h3.q.val();
        }
        // Round robin: pos + 1 wrapping at n, and cursor % n (restoring remainder, cursor < 32).
        self.pos_inc.next = self.pos.q.val() + 1;
        self.pos_next.next = self.pos_inc.val();
        self.last.d.next = self.steps.q.val() + 1 == self.count.q.val();
        if self.pos_inc.val() == self.count.q.val() {
            self.pos_next.next = 0.into();
        }
        self.pos_nx.d.next = self.pos_next.val();
        self.cursor.write_data.next = self.pos_nx.q.val().get_bits::<5>(0);
        self.elig_word.next = self.eligible.read_data.val();
        self.weight_index.next = self.cand.q.val().get_bits::<8>(0);
        // Weighted round robin: the member's `current + weight`, compared signed with the
        // best so far (sign bits flipped, then unsigned).
        self.weight.next = bit_cast::<32, 16>(self.weight_data.val());
        self.cur_new.next = self.current.read_data.val() + self.weight.val();
        self.better.next = !self.have_best.q.val()
            | ((self.cur_q.q.val() ^ 0x8000_0000_u64) > (self.best_cur.q.val() ^ 0x8000_0000_u64));

        // ---- Commit: active member lists from the shadow ones (entry cp_idx addressed for
        // three cycles, compared and copied in the third), then the model's
        // `reset_service` of every service whose list or entry changed.
        // The per-service bits walk through shift registers (bit 0 is the service at
        // hand) rather than a 16-to-1 selection by the entry index (that selection sat in
        // front of every copy decision).
        self.one16.next = 1.into();
        self.svc_end.next = false;
        if self.mem_write.val() {
            self.mdirty.d.next =
                self.mdirty.q.val() | (self.one16.val() << self.mem_index.val().get_bits::<4>(5));
        }
        self.busy.next = self.cp.q.val() != Cp::Idle;
        self.cp_last.d.next = self.cp_idx.q.val().get_bits::<5>(0) == 31;
        match self.cp.q.val() {
            Cp::Idle => {
                if self.commit.val() {
                    self.cp.d.next = Cp::Copy;
                    self.cp_idx.d.next = 0.into();
                    self.cp_phase.d.next = 0.into();
                    self.cp_diff.d.next = false;
                    // The services written so far are copied now; a member write from
                    // here on marks its service for the next commit.
                    self.dsh.d.next = self.mdirty.q.val();
                    self.mdirty.d.next = 0.into();
                    if self.mem_write.val() {
                        self.dsh.d.next = self.mdirty.q.val()
                            | (self.one16.val() << self.mem_index.val().get_bits::<4>(5));
                    }
                }
            }
            Cp::Copy => {
                // A written service's entry in four cycles: read the shadow entry (phase
                // 0), then the active one (1); keep the shadow entry (2); compare and write
                // it into the active bank (3).
                self.members.read_address.next =
                    self.bank1.val() | bit_cast::<10, 9>(self.cp_idx.q.val());
                if self.cp_phase.q.val() == 0 {
                    self.members.read_address.next = bit_cast::<10, 9>(self.cp_idx.q.val());
                }
                if self.cp_phase.q.val() == 2 {
                    self.cp_sh.d.next = self.members.read_data.val();
                }
                self.cp_phase.d.next = self.cp_phase.q.val() + 1;
                if !self.dsh.q.val().get_bit(0) {
                    // No member write to this service since the last commit: its banks are
                    // equal already (1 cycle).
                    self.cp_phase.d.next = 0.into();
                    self.cp_idx.d.next = self.cp_idx.q.val() + 32;
                    self.svc_end.next = true;
                } else if self.cp_phase.q.val() == 3 {
                    self.members.write_address.next =
                        self.bank1.val() | bit_cast::<10, 9>(self.cp_idx.q.val());
                    self.members.write_data.next = self.cp_sh.q.val();
                    self.members.write_enable.next = true;
                    if self.members.read_data.val() != self.cp_sh.q.val() {
                        self.cp_diff.d.next = true;
                    }
                    self.cp_idx.d.next = self.cp_idx.q.val() + 1;
                    if self.cp_last.q.val() {
                        self.svc_end.next = true;
                    }
                }
                if self.svc_end.val() {
                    // The service's bit shifts into `chg` from the top (16 shifts put
                    // service k at bit k).
                    self.dsh.d.next = self.dsh.q.val() >> 1;
                    self.cp_diff.d.next = false;
                    self.chg.d.next = self.chg.q.val() >> 1;
                    if self.cp_diff.q.val()
                        | (self.dsh.q.val().get_bit(0)
                            & (self.members.read_data.val() != self.cp_sh.q.val()))
                    {
                        self.chg.d.next = (self.chg.q.val() >> 1) | (self.one16.val() << 15);
                    }
                    if self.cp_idx.q.val().get_bits::<4>(5) == 15 {
                        self.cp.d.next = Cp::Snap;
                    }
                }
            }
            Cp::Snap => {
                // The services to reset: changed lists, and changed entries (`changed`).
                self.rsh.d.next = self.chg.q.val() | self.changed.val();
                self.rs_idx.d.next = 0.into();
                self.cp.d.next = Cp::Reset;
            }
            Cp::Reset => {
                // Entry rs_idx = service << 5 | position: `current` zeroed, and the
                // cursor at position 0.
                self.current.address.next = self.rs_idx.q.val();
                self.current.write_data.next = 0.into();
                self.current.write_enable.next = self.rsh.q.val().get_bit(0);
                self.cursor.address.next = self.rs_idx.q.val().get_bits::<4>(5);
                self.cursor.write_data.next = 0.into();
                self.cursor.write_enable.next =
                    self.rsh.q.val().get_bit(0) & (self.rs_idx.q.val().get_bits::<5>(0) == 0);
                self.rs_idx.d.next = self.rs_idx.q.val() + 1;
                if self.rs_idx.q.val().get_bits::<5>(0) == 31 {
                    self.rsh.d.next = self.rsh.q.val() >> 1;
                }
                if !self.rsh.q.val().get_bit(0) {
                    // Unchanged service: skipped (1 cycle).
                    self.rs_idx.d.next = self.rs_idx.q.val() + 32;
                    self.rsh.d.next = self.rsh.q.val() >> 1;
                }
                if self.rsh.q.val() == 0 {
                    // No service left to reset.
                    self.cp.d.next = Cp::Idle;
                }
            }
        }

        // Least connections / least response time: defaults and the shift-and-add steps.
        self.lc_take.d.next = false;
        // Least response time's load: the model's `min(active + 1 saturating, 2^20)`.
        self.load.next = bit_cast::<21, 20>(self.active_data.val().get_bits::<20>(0)) + 1;
        if self.active_data.val() >= 0xF_FFFF {
            self.load.next = 0x10_0000.into();
        }
        self.rt_add.next = 0.into();
        if self.lsh.q.val().get_bit(20) {
            self.rt_add.next = bit_cast::<44, 24>(self.rtq.q.val());
        }
        self.pa_add.next = 0.into();
        if self.sa.q.val().get_bit(15) {
            self.pa_add.next = bit_cast::<60, 44>(self.cost.q.val());
        }
        self.pb_add.next = 0.into();
        if self.sb.q.val().get_bit(15) {
            self.pb_add.next = bit_cast::<60, 44>(self.best_cost.q.val());
        }
        // The step count and the cross products run every cycle (their values matter only
        // from their start state to the compare): no state decode on their enables.
        self.k.d.next = self.k.q.val() + 1;
        self.pa.d.next = (self.pa.q.val() << 1) + self.pa_add.val();
        self.pb.d.next = (self.pb.q.val() << 1) + self.pb_add.val();
        self.sa.d.next = self.sa.q.val() << 1;
        self.sb.d.next = self.sb.q.val() << 1;

        // Idle (`sbusy` low, a register): the request registers follow the inputs, so
        // their loads hang off one flip-flop; a take only moves the state.
        self.use_w.d.next = false;
        self.s_ready.next =
            !self.sbusy.q.val() & !self.table_write.val() & (self.cp.q.val() == Cp::Idle);
        self.m_valid.next = self.s_done.q.val();
        // `result` holds a choice only if `chosen` (set with it; low from the take on):
        // every "no backend" outcome leaves it low instead of writing `NO_BACKEND`, so
        // the result register has one source.
        self.none_mask.next = 0.into();
        if !self.chosen.q.val() {
            self.none_mask.next = 0xFFFF.into();
        }
        self.backend.next = self.result.q.val() | self.none_mask.val();
        self.m_none.next = !self.chosen.q.val();
        if !self.sbusy.q.val() {
            self.rr.d.next = self.round_robin.val();
            self.wrr.d.next = !self.round_robin.val() & self.weighted.val();
            self.lc.d.next = !self.round_robin.val() & !self.weighted.val() & self.least.val();
            self.lrt.d.next = self.response_time.val();
            self.svc.d.next = self.service.val();
            self.count.d.next = self.member_count.val().get_bits::<6>(0);
            if self.member_count.val() > 32 {
                self.count.d.next = 32.into();
            }
            self.hash_q.d.next = self.hash.val();
            self.size_q.d.next = self.ring_size.val();
            // Weighted round robin: every member from position 0.
            self.pos.d.next = 0.into();
            self.steps.d.next = 0.into();
            self.total.d.next = 0.into();
            self.have_best.d.next = false;
            self.chosen.d.next = false;
        }

        // The selection machine, one-hot: `sbusy` low is `Idle`, every other state is a
        // flip-flop of its own (`s_mem_rd0` is `MemRd0`, and so on), so each state's
        // decode is one flip-flop and each flag's next value depends only on the states
        // that lead into it. A transition clears its own flag and sets the next.
        if !self.sbusy.q.val() & self.s_valid.val() & self.s_ready.val() {
            self.sbusy.d.next = true;
            if self.round_robin.val() {
                self.s_cur_rd0.d.next = true;
            } else if self.weighted.val() | self.least.val() {
                // (An empty list ends in `MemRd0`.)
                self.s_mem_rd0.d.next = true;
            } else {
                self.s_mul.d.next = true;
            }
        }
        if self.s_mul.q.val() {
            self.h3.d.next = self.h42.val() + (self.h42.val() << 1);
            self.acc.d.next = 0.into();
            self.msh.d.next = self.size_q.q.val();
            self.mstep.d.next = 0.into();
            self.s_mul.d.next = false;
            self.s_mul_step.d.next = true;
        }
        if self.s_mul_step.q.val() {
            // acc = 4 × acc + (two bits of M) × hash, 8 cycles.
            self.acc.d.next = (self.acc.q.val() << 2) + self.addend.val();
            self.msh.d.next = self.msh.q.val() << 2;
            self.mstep.d.next = self.mstep.q.val() + 1;
            if self.mstep.q.val() == 7 {
                self.s_mul_step.d.next = false;
                self.s_idx.d.next = true;
            }
        }
        if self.s_idx.q.val() {
            self.index.d.next = self.acc.q.val().get_bits::<10>(32);
            self.s_idx.d.next = false;
            if self.size_q.q.val() == 0 {
                self.s_done.d.next = true;
            } else {
                self.s_ring_rd0.d.next = true;
            }
        }
        if self.s_ring_rd0.q.val() {
            self.s_ring_rd0.d.next = false;
            self.s_ring_rd1.d.next = true;
        }
        if self.s_ring_rd1.q.val() {
            self.s_ring_rd1.d.next = false;
            self.s_ring_use.d.next = true;
        }
        if self.s_ring_use.q.val() {
            self.cand.d.next = bit_cast::<16, 8>(self.ring_rd.val().get_bits::<8>(0));
            self.s_ring_use.d.next = false;
            if self.ring_rd.val().get_bit(8) {
                self.s_done.d.next = true;
            } else {
                self.s_el_rd0.d.next = true;
            }
        }
        if self.s_el_rd0.q.val() {
            self.s_el_rd0.d.next = false;
            self.s_el_rd1.d.next = true;
        }
        if self.s_el_rd1.q.val() {
            self.s_el_rd1.d.next = false;
            self.s_el_use.d.next = true;
        }
        if self.s_el_use.q.val() {
            if self.elig_word.val() {
                self.result.d.next = self.cand.q.val();
                self.chosen.d.next = true;
            }
            self.s_el_use.d.next = false;
            self.s_done.d.next = true;
        }
        if self.s_cur_rd0.q.val() {
            self.s_cur_rd0.d.next = false;
            self.s_cur_rd1.d.next = true;
        }
        if self.s_cur_rd1.q.val() {
            self.s_cur_rd1.d.next = false;
            self.s_cur_use.d.next = true;
        }
        if self.s_cur_use.q.val() {
            // The start is `cursor % n`. The cursor is below `n` unless the list
            // shrank without a reset, which the model's resets never leave; that
            // case takes one subtraction per cycle in `CurMod` (a combinational
            // remainder was the design's critical path).
            self.pos.d.next = bit_cast::<6, 5>(self.cursor.read_data.val());
            self.steps.d.next = 0.into();
            self.s_cur_use.d.next = false;
            if self.count.q.val() == 0 {
                self.s_done.d.next = true;
            } else if bit_cast::<6, 5>(self.cursor.read_data.val()) >= self.count.q.val() {
                self.s_cur_mod.d.next = true;
            } else {
                self.s_mem_rd0.d.next = true;
            }
        }
        if self.s_cur_mod.q.val() {
            if self.pos.q.val() >= self.count.q.val() {
                self.pos.d.next = self.pos.q.val() - self.count.q.val();
            } else {
                self.s_cur_mod.d.next = false;
                self.s_mem_rd0.d.next = true;
            }
        }
        if self.s_mem_rd0.q.val() {
            self.s_mem_rd0.d.next = false;
            if self.count.q.val() == 0 {
                // Weighted round robin with an empty list (round robin checks in
                // `CurUse`): no winner (`have_best` is low).
                self.s_wrr_end.d.next = true;
            } else {
                self.s_mem_rd1.d.next = true;
            }
        }
        if self.s_mem_rd1.q.val() {
            self.s_mem_rd1.d.next = false;
            self.s_mem_use.d.next = true;
        }
        if self.s_mem_use.q.val() {
            self.cand.d.next = self.members.read_data.val();
            self.s_mem_use.d.next = false;
            if self.members.read_data.val().get_bits::<8>(8) != 0 {
                // Not a backend: next member (weighted: its `current` is reset).
                self.current.write_enable.next = self.wrr.q.val();
                self.steps.d.next = self.steps.q.val() + 1;
                self.pos.d.next = self.pos_nx.q.val();
                if !self.last.q.val() {
                    self.s_mem_rd0.d.next = true;
                } else if self.wrr.q.val() {
                    self.s_wrr_end.d.next = true;
                } else {
                    self.s_done.d.next = true;
                }
            } else {
                self.s_el2_rd0.d.next = true;
            }
        }
        if self.s_el2_rd0.q.val() {
            self.s_el2_rd0.d.next = false;
            self.s_el2_rd1.d.next = true;
        }
        if self.s_el2_rd1.q.val() {
            self.s_el2_rd1.d.next = false;
            if self.wrr.q.val() {
                self.s_el2_sum.d.next = true;
            } else if self.lc.q.val() {
                self.s_lc_load.d.next = true;
            } else {
                self.s_el2_use.d.next = true;
            }
        }
        if self.s_el2_sum.q.val() {
            // Weighted: `current + weight` registered before it is compared (the
            // addition and the comparison in one cycle were a critical path).
            self.cur_q.d.next = self.cur_new.val();
            self.s_el2_sum.d.next = false;
            self.s_el2_cmp.d.next = true;
        }
        if self.s_el2_cmp.q.val() {
            // ... and its comparison with the best registered before it is used.
            self.better_q.d.next = self.better.val();
            self.use_w.d.next = true;
            self.s_el2_cmp.d.next = false;
            self.s_el2_use.d.next = true;
        }
        if self.s_el2_use.q.val() {
            self.s_el2_use.d.next = false;
            if self.wrr.q.val() {
                // (The member's update is below, on `use_w`.)
                self.steps.d.next = self.steps.q.val() + 1;
                self.pos.d.next = self.pos_nx.q.val();
                if self.last.q.val() {
                    self.s_wrr_end.d.next = true;
                } else {
                    self.s_mem_rd0.d.next = true;
                }
            } else if self.elig_word.val() {
                self.result.d.next = self.cand.q.val();
                self.chosen.d.next = true;
                self.cursor.write_enable.next = true;
                self.s_done.d.next = true;
            } else {
                self.steps.d.next = self.steps.q.val() + 1;
                self.pos.d.next = self.pos_nx.q.val();
                if self.last.q.val() {
                    self.s_done.d.next = true;
                } else {
                    self.s_mem_rd0.d.next = true;
                }
            }
        }
        if self.s_wrr_end.q.val() {
            // The winner pays back the total.
            self.current.address.next =
                (bit_cast::<9, 4>(self.svc.q.val()) << 5) | bit_cast::<9, 6>(self.best_pos.q.val());
            self.current.write_data.next = self.best_cur.q.val() - self.total.q.val();
            self.current.write_enable.next = self.have_best.q.val();
            self.s_wrr_end.d.next = false;
            self.s_done.d.next = true;
        }
        if self.s_lc_load.q.val() {
            // Least: the member's weight, active flows and response time are on
            // the read ports. An ineligible member is skipped; least connections'
            // cost is `active`, least response time's `rtt × load` (next state).
            self.cw.d.next = self.weight_data.val();
            self.cost.d.next = bit_cast::<44, 32>(self.active_data.val());
            self.rtq.d.next = self.rtt_data.val();
            self.lsh.d.next = self.load.val();
            self.k.d.next = 0.into();
            self.s_lc_load.d.next = false;
            if !self.elig_word.val() {
                self.s_lc_next.d.next = true;
            } else if self.lrt.q.val() {
                self.cost.d.next = 0.into();
                self.s_lc_mul.d.next = true;
            } else {
                self.s_lc_pre.d.next = true;
            }
        }
        if self.s_lc_mul.q.val() {
            // cost = rtt × load, one bit of the load per cycle from the top (21).
            self.cost.d.next = (self.cost.q.val() << 1) + self.rt_add.val();
            self.lsh.d.next = self.lsh.q.val() << 1;
            if self.k.q.val() == 20 {
                self.s_lc_mul.d.next = false;
                self.s_lc_pre.d.next = true;
            }
        }
        if self.s_lc_pre.q.val() {
            // The first eligible member is the best so far; any other is compared.
            self.pa.d.next = 0.into();
            self.pb.d.next = 0.into();
            self.sa.d.next = self.best_w.q.val();
            self.sb.d.next = self.cw.q.val();
            self.k.d.next = 0.into();
            self.s_lc_pre.d.next = false;
            if self.have_best.q.val() {
                self.s_lc_prod.d.next = true;
            } else {
                self.lc_take.d.next = true;
                self.s_lc_next.d.next = true;
            }
        }
        if self.s_lc_prod.q.val() {
            // pa = cost × best_w, pb = best_cost × w, one bit per cycle (16; the
            // shifts and sums are above).
            if self.k.q.val() == 15 {
                self.s_lc_prod.d.next = false;
                self.s_lc_cmp.d.next = true;
            }
        }
        if self.s_lc_cmp.q.val() {
            // The model's `cost × best_weight < best_cost × weight`: strictly
            // better, so ties stay with the earlier member.
            self.lc_take.d.next = self.pa.q.val() < self.pb.q.val();
            self.s_lc_cmp.d.next = false;
            self.s_lc_next.d.next = true;
        }
        if self.s_lc_next.q.val() {
            // (The take is below, on `lc_take`.)
            self.steps.d.next = self.steps.q.val() + 1;
            self.pos.d.next = self.pos_nx.q.val();
            self.s_lc_next.d.next = false;
            if self.last.q.val() {
                self.s_done.d.next = true;
            } else {
                self.s_mem_rd0.d.next = true;
            }
        }
        if self.s_done.q.val() & self.m_ready.val() {
            self.sbusy.d.next = false;
            self.s_done.d.next = false;
        }
        // Least, state `LcNext` (`lc_take`: a register): take the member as the best so
        // far.
        if self.lc_take.q.val() {
            self.have_best.d.next = true;
            self.best_cost.d.next = self.cost.q.val();
            self.best_w.d.next = self.cw.q.val();
            self.result.d.next = self.cand.q.val();
            self.chosen.d.next = true;
        }
        // Weighted, state `El2Use` (`use_w`: a register, so the wide updates below do not
        // wait for the state decode): model `smooth_weighted`, an eligible member's
        // `current += weight`, the first largest wins; an ineligible one's is reset.
        if self.use_w.q.val() {
            self.current.write_enable.next = true;
            if self.elig_word.val() {
                self.current.write_data.next = self.cur_q.q.val();
                self.total.d.next = self.total.q.val() + self.weight.val();
                if self.better_q.q.val() {
                    self.have_best.d.next = true;
                    self.best_cur.d.next = self.cur_q.q.val();
                    self.best_pos.d.next = self.pos.q.val();
                    self.result.d.next = self.cand.q.val();
                    self.chosen.d.next = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fulcrum_model::config::Algorithm;
    use fulcrum_model::maglev::{self, MaglevBackend};
    use fulcrum_model::regmap::{Table, encode_backend};
    use fulcrum_model::select::{Candidates, SelectState};
    use fulcrum_model::tables::{BackendEntry, BackendState, NO_BACKEND};

    use super::*;
    use crate::sim::{Rng, Traffic, settle, tick};

    const SERVICES: usize = 16;

    /// The tables both sides read.
    struct Tables {
        backends: Vec<BackendEntry>,
        members: [[u16; 32]; SERVICES],
        counts: [u8; SERVICES],
        rings: Vec<Vec<u16>>,
        active: [u32; 256],
    }

    fn random_backend(rng: &mut Rng) -> BackendEntry {
        BackendEntry {
            state: BackendState::from_code(if rng.chance(600) {
                1
            } else {
                rng.below(5) as u8
            }),
            weight: if rng.chance(150) {
                0
            } else {
                rng.below(100) as u16
            },
            generation: rng.byte(),
            address: [10, 0, rng.byte(), rng.byte()],
            // Both clamps of least response time: 0 (→ 1) and above 2^24 - 1.
            rtt_us: match rng.below(8) {
                0 => 0,
                1 => u32::MAX - rng.below(2) as u32,
                2 => (1 << 24) - 1 + rng.below(3) as u32,
                3 => rng.next_u64() as u32,
                _ => 1 + rng.below(5_000) as u32,
            },
            ..Default::default()
        }
    }

    /// Active flows per backend: mostly small (ties), some at and past least response
    /// time's saturation of `active + 1` at 2^20, some at `u32::MAX`.
    fn random_active(rng: &mut Rng) -> [u32; 256] {
        core::array::from_fn(|_| match rng.below(10) {
            0 => 0,
            1 => (1 << 20) - 2 + rng.below(4) as u32,
            2 => u32::MAX - rng.below(2) as u32,
            3 => rng.next_u64() as u32,
            _ => rng.below(8) as u32,
        })
    }

    fn random_member(rng: &mut Rng) -> u16 {
        match rng.below(20) {
            0 => NO_BACKEND,
            1 => 256 + rng.below(1000) as u16,
            _ => rng.below(256) as u16,
        }
    }

    fn random_ring(rng: &mut Rng) -> Vec<u16> {
        let m = [0usize, 2, 13, 251, 257, 509, 512][rng.below(7) as usize];
        let mut ring = vec![maglev::EMPTY; m];
        if m == 0 {
            return ring;
        }
        if rng.chance(700) {
            let n = 1 + rng.below(m.min(20) as u64) as usize;
            let backends: Vec<MaglevBackend> = (0..n)
                .map(|_| MaglevBackend {
                    id: rng.next_u64(),
                    weight: rng.below(4) as u32,
                })
                .collect();
            let _ = maglev::build(&backends, &mut ring);
            // build gives positions in `backends`: map them onto backend-table indexes.
            let map: Vec<u16> = (0..n).map(|_| random_member(rng)).collect();
            for e in ring.iter_mut() {
                if *e != maglev::EMPTY {
                    *e = map[usize::from(*e)];
                }
            }
        } else {
            ring.iter_mut().for_each(|e| *e = random_member(rng));
        }
        ring
    }

    /// Drives one table write on the port for a cycle.
    fn write(uut: &mut BackendSelect, table: Table, index: u32, data: u32) {
        uut.table_write.next = true;
        uut.table_kind.next = u64::from(table as u8).into();
        uut.table_index.next = u64::from(index).into();
        uut.table_data0.next = u64::from(data).into();
        uut.s_valid.next = false;
        uut.m_ready.next = false;
        settle(uut);
        tick(uut, |u| &mut u.clock);
        uut.table_write.next = false;
    }

    /// Writes a shadow member-list entry for a cycle.
    fn write_member(uut: &mut BackendSelect, index: usize, backend: u16) {
        uut.mem_write.next = true;
        uut.mem_index.next = (index as u64).into();
        uut.mem_data.next = u64::from(backend).into();
        uut.s_valid.next = false;
        uut.m_ready.next = false;
        settle(uut);
        tick(uut, |u| &mut u.clock);
        uut.mem_write.next = false;
    }

    /// Commits the member lists with `changed` services and waits for the unit; returns
    /// the cycles it was busy.
    fn commit(uut: &mut BackendSelect, changed: u16) -> u64 {
        uut.commit.next = true;
        uut.changed.next = u64::from(changed).into();
        settle(uut);
        tick(uut, |u| &mut u.clock);
        uut.commit.next = false;
        let mut cycles = 1;
        loop {
            settle(uut);
            if !uut.busy.val() {
                return cycles;
            }
            assert!(!uut.s_ready.val(), "a request taken during a commit");
            tick(uut, |u| &mut u.clock);
            cycles += 1;
        }
    }

    /// Writes the tables (member lists into the shadow bank: `commit` makes them active).
    fn load(uut: &mut BackendSelect, t: &Tables, backends: bool) {
        if backends {
            for (i, b) in t.backends.iter().enumerate() {
                write(uut, Table::Backend, i as u32, encode_backend(b)[0]);
            }
        }
        for s in 0..SERVICES {
            for (p, &m) in t.members[s].iter().enumerate() {
                write_member(uut, s << 5 | p, m);
            }
            for (o, &e) in t.rings[s].iter().enumerate() {
                write(uut, Table::Ring, (s as u32) << 20 | o as u32, u32::from(e));
            }
        }
    }

    #[derive(Clone, Copy)]
    struct Request {
        algorithm: Algorithm,
        service: usize,
        flow_hash: u32,
        src_hash: u32,
    }

    /// Runs `requests` through the unit and the model; returns (choices that named a
    /// backend, cycles).
    fn run(
        uut: &mut BackendSelect,
        model: &mut SelectState,
        t: &Tables,
        requests: &[Request],
        traffic: Traffic,
        rng: &mut Rng,
        stats: &mut Stats,
    ) -> (usize, u64) {
        let mut next = 0;
        let mut done = 0;
        let mut cycles = 0u64;
        let mut chosen = 0;
        let mut expected = std::collections::VecDeque::new();
        // The owner's RAMs read at `weight_index`: weight, clamped response time, active
        // flows (output, stage).
        let mut out = (0u16, 0u32, 0u32);
        let mut stage = out;
        while done < requests.len() {
            let offer = next < requests.len() && !rng.chance(traffic.idle_permille);
            uut.s_valid.next = offer;
            uut.table_write.next = false;
            let r = requests[next.min(requests.len() - 1)];
            uut.round_robin.next = r.algorithm == Algorithm::RoundRobin;
            uut.weighted.next = r.algorithm == Algorithm::WeightedRoundRobin;
            uut.least.next = matches!(
                r.algorithm,
                Algorithm::LeastConnections | Algorithm::LeastResponseTime
            );
            uut.response_time.next = r.algorithm == Algorithm::LeastResponseTime;
            uut.service.next = (r.service as u64).into();
            uut.member_count.next = u64::from(t.counts[r.service]).into();
            let hash = if r.algorithm == Algorithm::IpHash {
                r.src_hash
            } else {
                r.flow_hash
            };
            uut.hash.next = u64::from(hash).into();
            uut.ring_size.next = (t.rings[r.service].len() as u64).into();
            uut.m_ready.next = traffic.ready(rng);
            uut.weight_data.next = u64::from(out.0).into();
            uut.rtt_data.next = u64::from(out.1).into();
            uut.active_data.next = u64::from(out.2).into();
            settle(uut);
            // The owner's backend table as a `SinglePortRam`: the weight addressed at this
            // edge is on `weight_data` after the next one (the response time, clamped as
            // the owner stores it, and the active count alike).
            let addr = uut.weight_index.val().to_u64() as usize;
            let b = &t.backends[addr];
            (out, stage) = (
                stage,
                (
                    b.weight,
                    b.rtt_us.clamp(1, fulcrum_model::select::RTT_SATURATION),
                    t.active[addr],
                ),
            );
            if offer && uut.s_ready.val() {
                let n = usize::from(t.counts[r.service]).min(32);
                let c = Candidates {
                    members: &t.members[r.service][..n],
                    backends: &t.backends,
                    active: &t.active,
                    ring: &t.rings[r.service],
                };
                expected.push_back((
                    model.select(r.algorithm, r.service, &c, r.flow_hash, r.src_hash),
                    cycles,
                    match r.algorithm {
                        Algorithm::RoundRobin => 1,
                        Algorithm::WeightedRoundRobin => 2,
                        Algorithm::LeastConnections => 3,
                        Algorithm::LeastResponseTime => 4,
                        _ => 0,
                    },
                ));
                next += 1;
            }
            if uut.m_valid.val() && uut.m_ready.val() {
                let (want, start, path) = expected.pop_front().expect("a result without a request");
                let latency = cycles - start;
                let s = &mut stats.0[path];
                s.0 += 1;
                s.1 += usize::from(want != NO_BACKEND);
                s.2 = s.2.min(latency);
                s.3 = s.3.max(latency);
                let got = uut.backend.val().to_u64() as u16;
                assert_eq!(got, want, "request {done}");
                chosen += usize::from(want != NO_BACKEND);
                done += 1;
            }
            tick(uut, |u| &mut u.clock);
            cycles += 1;
            assert!(cycles < 2_000 * requests.len() as u64 + 1000, "stuck");
        }
        (chosen, cycles)
    }

    /// Per path (ring, round robin, weighted round robin, least connections, least
    /// response time): requests, backends named, min and max latency.
    #[derive(Debug)]
    struct Stats([(usize, usize, u64, u64); 5]);

    fn random_tables(rng: &mut Rng) -> Tables {
        let backends = (0..256).map(|_| random_backend(rng)).collect();
        // 15 % of the lists hold no backend at all (`NO_BACKEND` or indexes ≥ 256): no
        // eligible member whatever the backends' states.
        let members = core::array::from_fn(|_| {
            let none = rng.chance(150);
            core::array::from_fn(|_| {
                if none {
                    [NO_BACKEND, 256 + rng.below(1000) as u16][rng.below(2) as usize]
                } else {
                    random_member(rng)
                }
            })
        });
        let counts = core::array::from_fn(|_| match rng.below(10) {
            0 => 0,
            1 => 33 + rng.below(20) as u8,
            _ => 1 + rng.below(32) as u8,
        });
        let rings = (0..SERVICES).map(|_| random_ring(rng)).collect();
        Tables {
            backends,
            members,
            counts,
            rings,
            active: random_active(rng),
        }
    }

    fn random_requests(rng: &mut Rng, n: usize) -> Vec<Request> {
        (0..n)
            .map(|_| Request {
                algorithm: [
                    Algorithm::RoundRobin,
                    Algorithm::Maglev,
                    Algorithm::IpHash,
                    Algorithm::WeightedRoundRobin,
                    Algorithm::LeastConnections,
                    Algorithm::LeastResponseTime,
                ][rng.below(6) as usize],
                // Few services, so round robin comes back to one often.
                service: {
                    let span = if rng.chance(500) { 3 } else { 16 };
                    rng.below(span) as usize
                },
                flow_hash: rng.next_u64() as u32,
                src_hash: rng.next_u64() as u32,
            })
            .collect()
    }

    #[test]
    fn backend_select_is_synthesizable() {
        let mut uut = BackendSelect::new();
        uut.connect_all();
        crate::verilog::validate("backend_select", &generate_verilog(&uut));
    }

    #[test]
    fn selections_match_the_model() {
        // (Seed moved from 0x5e1e_c700 when the rings shrank to 512 entries: that stream's
        // round robin drew 94 requests without an eligible member, under the coverage floor.)
        let mut rng = Rng::new(0x5e1e_c702);
        for (round, traffic) in [Traffic::SMOOTH, Traffic::BUMPY].into_iter().enumerate() {
            let mut uut = BackendSelect::new();
            uut.connect_all();
            let mut model = SelectState::default();
            let mut t = random_tables(&mut rng);
            load(&mut uut, &t, true);
            // Before the first commit the active lists are the reset ones (`NO_BACKEND`),
            // as the model's: a member write alone changes nothing.
            assert_eq!(
                commit(&mut uut, 0),
                512 * 4 + 1 + 512 + 2,
                "every list written, changed"
            );
            // A commit without member writes skips every service: 16 copy cycles, the
            // snapshot, one reset cycle that finds nothing to reset, the strobe.
            assert_eq!(commit(&mut uut, 0), 16 + 1 + 1 + 1);
            let mut total = (0, 0, 0);
            let mut stats = Stats([(0, 0, u64::MAX, 0); 5]);
            let (mut resets, mut kept) = (0, 0);
            let (mut old_members, mut old_counts) = (t.members, t.counts);
            for epoch in 0..3 {
                if epoch > 0 {
                    // New member lists (counts) for some services and rings, and some
                    // backends change state or weight; at the commit the model's
                    // `reset_service` (`Pipeline::commit_banks`) for every service whose
                    // list changed or whose entry changed (the count, or a random bit
                    // standing for another field), the other cursors kept.
                    let fresh = random_tables(&mut rng);
                    for _ in 0..40 {
                        let i = rng.below(256) as usize;
                        t.backends[i] = fresh.backends[i];
                        write(
                            &mut uut,
                            Table::Backend,
                            i as u32,
                            encode_backend(&t.backends[i])[0],
                        );
                    }
                    let mut changed = 0u16;
                    for s in 0..SERVICES {
                        if rng.chance(300) {
                            t.members[s] = fresh.members[s];
                        }
                        if rng.chance(200) {
                            t.members[s][rng.below(32) as usize] = random_member(&mut rng);
                        }
                        if rng.chance(200) {
                            t.counts[s] = fresh.counts[s];
                        }
                        let entry_changed = t.counts[s] != old_counts[s] || rng.chance(100);
                        changed |= u16::from(entry_changed) << s;
                        if entry_changed || t.members[s] != old_members[s] {
                            model.reset_service(s);
                            resets += 1;
                        } else {
                            kept += 1;
                        }
                    }
                    t.rings = fresh.rings;
                    // The active counts move with traffic (the owner's, not committed).
                    t.active = fresh.active;
                    load(&mut uut, &t, false);
                    commit(&mut uut, changed);
                }
                (old_members, old_counts) = (t.members, t.counts);
                let requests = random_requests(&mut rng, 3_000);
                let (chosen, cycles) = run(
                    &mut uut, &mut model, &t, &requests, traffic, &mut rng, &mut stats,
                );
                total = (total.0 + requests.len(), total.1 + chosen, total.2 + cycles);
            }
            eprintln!(
                "select round {round}: {} requests, {} named a backend, {} cycles",
                total.0, total.1, total.2
            );
            eprintln!(
                "select round {round}: (requests, named, min latency, max latency) ring / round robin / weighted / least connections / least response time {stats:?}"
            );
            eprintln!("select round {round}: {resets} services reset at commits, {kept} kept");
            assert!(resets >= 8 && kept >= 5, "reset coverage");
            assert!(total.1 > total.0 / 3, "too few choices named a backend");
            for s in stats.0 {
                assert!(s.0 > 1_000 && s.1 > 500 && s.0 - s.1 > 50, "coverage {s:?}");
            }
        }
    }
}
