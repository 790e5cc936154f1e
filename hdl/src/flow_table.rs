//! Stage 3, look up: the set-associative flow table in block RAM (`fulcrum_model::flow`).
//!
//! Four ways, `2^A` sets, one block RAM per way addressed by the set (the low `A` bits of
//! the flow hash), so a set's four entries are read in one cycle and compared in
//! parallel. Slot numbering is the model's: slot = set × 4 + way.
//!
//! Operations (one at a time, `cmd_*` in, `res_*` out, valid/ready on both):
//!
//! - **lookup** (`op = 0`): the lowest way whose valid entry has the key is a hit; if that
//!   entry is past its idle timeout it is freed and the result is *expired* (with its
//!   last content), exactly as `SetAssociative::lookup`.
//! - **insert** (`op = 1`): the entry goes to the lowest free way, else the lowest expired
//!   way, else the way with the oldest `last_seen` (lowest on a tie), as
//!   `SetAssociative::insert`; the displaced entry comes back.
//! - **write** (`op = 2`): writes way `cmd_way` of the set (refresh `last_seen` and state
//!   after a hit, or `cmd_entry_valid = 0` to remove), returning the previous content.
//! - **read** (`op = 3`): reads way `cmd_way` of the set (a full-NAT reply names its
//!   slot), writes nothing; the result kind says whether the entry is past its idle
//!   timeout (`is_expired`, whether or not it is valid).
//!
//! Timeouts: an entry's idle timeout is chosen by its stored TCP state from the four
//! `timeout_*` inputs (ms), time is 32-bit wrapping ms (`now - last_seen > timeout`).
//!
//! Each way stores `valid | key (104) | state (2) | last_seen (32) | payload (32)` = 171
//! bits; the payload carries service (8), backend (16) and generation (8). The client MAC
//! of a flow is only needed on the return path and belongs in a separate slot-indexed
//! RAM, not here.
//!
//! Timing: each way is a [`SinglePortRam`] (the block RAM's own output register: the
//! RAM's 5.8 ns clock-to-out without it was the core's critical path), whose output is
//! registered again next to the logic; ages and 26-bit key-chunk matches are registered,
//! then the key matches, the expiry
//! flags and the six pairwise age comparisons (the oldest way is picked from those, not
//! from a chain of compares: that chain limited the core to 42 MHz), then the decision
//! is made and registered, then it picks the way's entry and write enable (the
//! decision's fan-out into 171 multiplexers was the fast path's critical path), and the
//! write back lands at the end of the first Result cycle: an operation takes 8 cycles
//! plus the result hand-off. The next read is at
//! least two edges after the write, so there is no read-during-write hazard.

use rust_hdl::prelude::*;

use crate::ram::SinglePortRam;

/// Ways per set (fixed: four parallel block RAMs).
pub const WAYS: usize = 4;
/// Width of a stored entry.
pub const ENTRY_BITS: usize = 171;

/// Bit positions inside a stored entry.
pub mod entry {
    /// The valid bit.
    pub const VALID: usize = 170;
    /// Lowest bit of the 104-bit key (protocol, src, dst, src port, dst port).
    pub const KEY: usize = 66;
    /// Lowest bit of the 2-bit state (`FlowState::code`).
    pub const STATE: usize = 64;
    /// Lowest bit of `last_seen`.
    pub const LAST_SEEN: usize = 32;
    /// Lowest bit of the payload (service << 24 | backend << 8 | generation).
    pub const PAYLOAD: usize = 0;
}

/// Operation codes of `cmd_op`.
pub mod op {
    /// Look a key up.
    pub const LOOKUP: u64 = 0;
    /// Insert an entry.
    pub const INSERT: u64 = 1;
    /// Write one way of a set.
    pub const WRITE: u64 = 2;
    /// Read one way of a set.
    pub const READ: u64 = 3;
}

/// Result kinds of `res_kind`.
pub mod kind {
    /// Lookup: no entry matches. Insert: a free way was used. Write: done. Read: the
    /// entry is within its idle timeout.
    pub const MISS_OR_FREE: u64 = 0;
    /// Lookup: a live entry matches. Insert: an expired entry was reclaimed. Read: the
    /// entry is past its idle timeout (not freed).
    pub const HIT_OR_RECLAIMED: u64 = 1;
    /// Lookup: a matching entry had expired and was freed. Insert: a live entry was
    /// evicted.
    pub const EXPIRED_OR_EVICTED: u64 = 2;
}

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum Phase {
    Idle,
    Read,
    Capture,
    Settle,
    Compare,
    Rank,
    Decide,
    Pick,
    Result,
}

/// The flow table: 4 ways × `2^A` sets in block RAM.
#[derive(LogicBlock)]
pub struct FlowTable<const A: usize> {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// Idle timeout of `SynSeen` entries, ms.
    pub timeout_syn: Signal<In, Bits<32>>,
    /// Idle timeout of `Established` entries, ms.
    pub timeout_established: Signal<In, Bits<32>>,
    /// Idle timeout of `Closing` entries, ms.
    pub timeout_closing: Signal<In, Bits<32>>,
    /// Idle timeout of UDP entries, ms.
    pub timeout_udp: Signal<In, Bits<32>>,
    /// A command is on the `cmd_*` inputs.
    pub cmd_valid: Signal<In, Bit>,
    /// The table takes the command this cycle (if `cmd_valid`).
    pub cmd_ready: Signal<Out, Bit>,
    /// [`op`] code.
    pub cmd_op: Signal<In, Bits<2>>,
    /// The flow hash (its low `A` bits pick the set).
    pub cmd_hash: Signal<In, Bits<32>>,
    /// The way of a write.
    pub cmd_way: Signal<In, Bits<2>>,
    /// Key: protocol << 96 | src << 64 | dst << 32 | src port << 16 | dst port.
    pub cmd_key: Signal<In, Bits<104>>,
    /// State code of the entry to insert or write.
    pub cmd_state: Signal<In, Bits<2>>,
    /// Payload of the entry to insert or write.
    pub cmd_payload: Signal<In, Bits<32>>,
    /// Whether a write makes a valid entry (0 removes).
    pub cmd_entry_valid: Signal<In, Bits<1>>,
    /// The time now, ms (wrapping); also the `last_seen` written.
    pub cmd_now: Signal<In, Bits<32>>,
    /// A result is on the `res_*` outputs.
    pub res_valid: Signal<Out, Bit>,
    /// The receiver takes the result this cycle.
    pub res_ready: Signal<In, Bit>,
    /// [`kind`] code.
    pub res_kind: Signal<Out, Bits<2>>,
    /// The slot concerned (set × 4 + way): hit, expired, inserted or written.
    pub res_slot: Signal<Out, Bits<32>>,
    /// The slot's content before the operation (see [`entry`]); its valid bit says
    /// whether an insert displaced an entry.
    pub res_entry: Signal<Out, Bits<171>>,

    way0: SinglePortRam<Bits<171>, A>,
    way1: SinglePortRam<Bits<171>, A>,
    way2: SinglePortRam<Bits<171>, A>,
    way3: SinglePortRam<Bits<171>, A>,
    phase: DFF<Phase>,
    // A command is in progress (`phase != Idle`), as a register: while it is low the
    // command registers follow the inputs, so their loads hang off one flip-flop rather
    // than off `cmd_valid`.
    fbusy: DFF<Bit>,
    op: DFF<Bits<2>>,
    set: DFF<Bits<A>>,
    way: DFF<Bits<2>>,
    key: DFF<Bits<104>>,
    state: DFF<Bits<2>>,
    payload: DFF<Bits<32>>,
    entry_valid: DFF<Bits<1>>,
    now: DFF<Bits<32>>,
    data0: DFF<Bits<171>>,
    data1: DFF<Bits<171>>,
    data2: DFF<Bits<171>>,
    data3: DFF<Bits<171>>,
    age0: DFF<Bits<32>>,
    age1: DFF<Bits<32>>,
    age2: DFF<Bits<32>>,
    age3: DFF<Bits<32>>,
    // Each way's idle timeout (by its state), registered beside its age.
    limit0: DFF<Bits<32>>,
    limit1: DFF<Bits<32>>,
    limit2: DFF<Bits<32>>,
    limit3: DFF<Bits<32>>,
    expired0: DFF<Bit>,
    expired1: DFF<Bit>,
    expired2: DFF<Bit>,
    expired3: DFF<Bit>,
    matched0: DFF<Bit>,
    matched1: DFF<Bit>,
    matched2: DFF<Bit>,
    matched3: DFF<Bit>,
    used0: DFF<Bit>,
    used1: DFF<Bit>,
    used2: DFF<Bit>,
    used3: DFF<Bit>,
    // Way w's key equals the command's in 26-bit chunk c (a 104-bit compare in one
    // cycle, fanned out to four ways, was the critical path).
    same00: DFF<Bit>,
    same01: DFF<Bit>,
    same02: DFF<Bit>,
    same03: DFF<Bit>,
    same10: DFF<Bit>,
    same11: DFF<Bit>,
    same12: DFF<Bit>,
    same13: DFF<Bit>,
    same20: DFF<Bit>,
    same21: DFF<Bit>,
    same22: DFF<Bit>,
    same23: DFF<Bit>,
    same30: DFF<Bit>,
    same31: DFF<Bit>,
    same32: DFF<Bit>,
    same33: DFF<Bit>,
    // Pairwise "way i is older than way j" (age_i > age_j) for the oldest-way choice.
    older10: DFF<Bit>,
    older20: DFF<Bit>,
    older21: DFF<Bit>,
    older30: DFF<Bit>,
    older31: DFF<Bit>,
    older32: DFF<Bit>,
    // The write back, registered: it lands at the end of the first Result cycle (the
    // decision driving the RAM enables directly was the critical path).
    wen0: DFF<Bit>,
    wen1: DFF<Bit>,
    wen2: DFF<Bit>,
    wen3: DFF<Bit>,
    wdata: DFF<Bits<171>>,
    res_kind_q: DFF<Bits<2>>,
    res_way_q: DFF<Bits<2>>,
    res_entry_q: DFF<Bits<171>>,
    // The decision: write the chosen way.
    pick_write: DFF<Bit>,

    // Combinational helpers.
    new_entry: Signal<Local, Bits<171>>,
    age_now0: Signal<Local, Bits<32>>,
    age_now1: Signal<Local, Bits<32>>,
    age_now2: Signal<Local, Bits<32>>,
    age_now3: Signal<Local, Bits<32>>,
    timeout0: Signal<Local, Bits<32>>,
    timeout1: Signal<Local, Bits<32>>,
    timeout2: Signal<Local, Bits<32>>,
    timeout3: Signal<Local, Bits<32>>,
    state0: Signal<Local, Bits<2>>,
    state1: Signal<Local, Bits<2>>,
    state2: Signal<Local, Bits<2>>,
    state3: Signal<Local, Bits<2>>,
    key0: Signal<Local, Bits<104>>,
    key1: Signal<Local, Bits<104>>,
    key2: Signal<Local, Bits<104>>,
    key3: Signal<Local, Bits<104>>,
    last0: Signal<Local, Bits<32>>,
    last1: Signal<Local, Bits<32>>,
    last2: Signal<Local, Bits<32>>,
    last3: Signal<Local, Bits<32>>,
    chosen: Signal<Local, Bits<2>>,
    chosen_kind: Signal<Local, Bits<2>>,
    write: Signal<Local, Bit>,
    write_data: Signal<Local, Bits<171>>,
    oldest: Signal<Local, Bits<2>>,
    slot_base: Signal<Local, Bits<32>>,
}

impl<const A: usize> FlowTable<A> {
    /// An empty table (every entry invalid).
    pub fn new() -> Self {
        assert!(
            (1..=14).contains(&A),
            "2^{A} sets: use 1 to 14 address bits"
        );
        let zeros = SinglePortRam::<Bits<171>, A>::zeroed;
        FlowTable {
            clock: Default::default(),
            timeout_syn: Default::default(),
            timeout_established: Default::default(),
            timeout_closing: Default::default(),
            timeout_udp: Default::default(),
            cmd_valid: Default::default(),
            cmd_ready: Default::default(),
            cmd_op: Default::default(),
            cmd_hash: Default::default(),
            cmd_way: Default::default(),
            cmd_key: Default::default(),
            cmd_state: Default::default(),
            cmd_payload: Default::default(),
            cmd_entry_valid: Default::default(),
            cmd_now: Default::default(),
            res_valid: Default::default(),
            res_ready: Default::default(),
            res_kind: Default::default(),
            res_slot: Default::default(),
            res_entry: Default::default(),
            way0: zeros(),
            way1: zeros(),
            way2: zeros(),
            way3: zeros(),
            phase: Default::default(),
            fbusy: Default::default(),
            op: Default::default(),
            set: Default::default(),
            way: Default::default(),
            key: Default::default(),
            state: Default::default(),
            payload: Default::default(),
            entry_valid: Default::default(),
            now: Default::default(),
            data0: Default::default(),
            data1: Default::default(),
            data2: Default::default(),
            data3: Default::default(),
            age0: Default::default(),
            age1: Default::default(),
            age2: Default::default(),
            age3: Default::default(),
            limit0: Default::default(),
            limit1: Default::default(),
            limit2: Default::default(),
            limit3: Default::default(),
            expired0: Default::default(),
            expired1: Default::default(),
            expired2: Default::default(),
            expired3: Default::default(),
            matched0: Default::default(),
            matched1: Default::default(),
            matched2: Default::default(),
            matched3: Default::default(),
            used0: Default::default(),
            used1: Default::default(),
            used2: Default::default(),
            used3: Default::default(),
            same00: Default::default(),
            same01: Default::default(),
            same02: Default::default(),
            same03: Default::default(),
            same10: Default::default(),
            same11: Default::default(),
            same12: Default::default(),
            same13: Default::default(),
            same20: Default::default(),
            same21: Default::default(),
            same22: Default::default(),
            same23: Default::default(),
            same30: Default::default(),
            same31: Default::default(),
            same32: Default::default(),
            same33: Default::default(),
            older10: Default::default(),
            older20: Default::default(),
            older21: Default::default(),
            older30: Default::default(),
            older31: Default::default(),
            older32: Default::default(),
            wen0: Default::default(),
            wen1: Default::default(),
            wen2: Default::default(),
            wen3: Default::default(),
            wdata: Default::default(),
            res_kind_q: Default::default(),
            res_way_q: Default::default(),
            res_entry_q: Default::default(),
            pick_write: Default::default(),
            new_entry: Default::default(),
            age_now0: Default::default(),
            age_now1: Default::default(),
            age_now2: Default::default(),
            age_now3: Default::default(),
            timeout0: Default::default(),
            timeout1: Default::default(),
            timeout2: Default::default(),
            timeout3: Default::default(),
            state0: Default::default(),
            state1: Default::default(),
            state2: Default::default(),
            state3: Default::default(),
            key0: Default::default(),
            key1: Default::default(),
            key2: Default::default(),
            key3: Default::default(),
            last0: Default::default(),
            last1: Default::default(),
            last2: Default::default(),
            last3: Default::default(),
            chosen: Default::default(),
            chosen_kind: Default::default(),
            write: Default::default(),
            write_data: Default::default(),
            oldest: Default::default(),
            slot_base: Default::default(),
        }
    }
}

impl<const A: usize> Default for FlowTable<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const A: usize> Logic for FlowTable<A> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            phase,
            fbusy,
            op,
            set,
            way,
            key,
            state,
            payload,
            entry_valid,
            now,
            data0,
            data1,
            data2,
            data3,
            age0,
            age1,
            age2,
            age3,
            limit0,
            limit1,
            limit2,
            limit3,
            expired0,
            expired1,
            expired2,
            expired3,
            matched0,
            matched1,
            matched2,
            matched3,
            used0,
            used1,
            used2,
            used3,
            same00,
            same01,
            same02,
            same03,
            same10,
            same11,
            same12,
            same13,
            same20,
            same21,
            same22,
            same23,
            same30,
            same31,
            same32,
            same33,
            older10,
            older20,
            older21,
            older30,
            older31,
            older32,
            wen0,
            wen1,
            wen2,
            wen3,
            wdata,
            res_kind_q,
            res_way_q,
            res_entry_q,
            pick_write
        );
        self.way0.clock.next = self.clock.val();
        self.way1.clock.next = self.clock.val();
        self.way2.clock.next = self.clock.val();
        self.way3.clock.next = self.clock.val();
        self.way0.address.next = self.set.q.val();
        self.way1.address.next = self.set.q.val();
        self.way2.address.next = self.set.q.val();
        self.way3.address.next = self.set.q.val();

        // The RAM outputs are registered every cycle, without an enable (no logic between
        // the RAM and the flip-flop). The set only changes in Idle, the RAM reads it at
        // the edge ending Read and shows it from Settle on, and a write lands after
        // Decide has used the words, so they are stable from Compare to Decide.
        self.data0.d.next = self.way0.read_data.val();
        self.data1.d.next = self.way1.read_data.val();
        self.data2.d.next = self.way2.read_data.val();
        self.data3.d.next = self.way3.read_data.val();
        self.cmd_ready.next = self.phase.q.val() == Phase::Idle;
        self.res_valid.next = self.phase.q.val() == Phase::Result;
        self.res_kind.next = self.res_kind_q.q.val();
        self.slot_base.next = bit_cast::<32, A>(self.set.q.val()) << 2;
        self.res_slot.next = self.slot_base.val() | bit_cast::<32, 2>(self.res_way_q.q.val());
        self.res_entry.next = self.res_entry_q.q.val();

        // Fields of the four registered RAM words.
        self.key0.next = self.data0.q.val().get_bits::<104>(66);
        self.key1.next = self.data1.q.val().get_bits::<104>(66);
        self.key2.next = self.data2.q.val().get_bits::<104>(66);
        self.key3.next = self.data3.q.val().get_bits::<104>(66);
        self.state0.next = self.data0.q.val().get_bits::<2>(64);
        self.state1.next = self.data1.q.val().get_bits::<2>(64);
        self.state2.next = self.data2.q.val().get_bits::<2>(64);
        self.state3.next = self.data3.q.val().get_bits::<2>(64);
        self.last0.next = self.data0.q.val().get_bits::<32>(32);
        self.last1.next = self.data1.q.val().get_bits::<32>(32);
        self.last2.next = self.data2.q.val().get_bits::<32>(32);
        self.last3.next = self.data3.q.val().get_bits::<32>(32);
        self.age_now0.next = self.now.q.val() - self.last0.val();
        self.age_now1.next = self.now.q.val() - self.last1.val();
        self.age_now2.next = self.now.q.val() - self.last2.val();
        self.age_now3.next = self.now.q.val() - self.last3.val();
        // Timeout by state code: 0 SynSeen, 1 Established, 2 Closing, 3 Udp.
        self.timeout0.next = self.timeout_udp.val();
        if self.state0.val() == 0 {
            self.timeout0.next = self.timeout_syn.val();
        }
        if self.state0.val() == 1 {
            self.timeout0.next = self.timeout_established.val();
        }
        if self.state0.val() == 2 {
            self.timeout0.next = self.timeout_closing.val();
        }
        self.timeout1.next = self.timeout_udp.val();
        if self.state1.val() == 0 {
            self.timeout1.next = self.timeout_syn.val();
        }
        if self.state1.val() == 1 {
            self.timeout1.next = self.timeout_established.val();
        }
        if self.state1.val() == 2 {
            self.timeout1.next = self.timeout_closing.val();
        }
        self.timeout2.next = self.timeout_udp.val();
        if self.state2.val() == 0 {
            self.timeout2.next = self.timeout_syn.val();
        }
        if self.state2.val() == 1 {
            self.timeout2.next = self.timeout_established.val();
        }
        if self.state2.val() == 2 {
            self.timeout2.next = self.timeout_closing.val();
        }
        self.timeout3.next = self.timeout_udp.val();
        if self.state3.val() == 0 {
            self.timeout3.next = self.timeout_syn.val();
        }
        if self.state3.val() == 1 {
            self.timeout3.next = self.timeout_established.val();
        }
        if self.state3.val() == 2 {
            self.timeout3.next = self.timeout_closing.val();
        }

        // The entry an insert or write stores.
        self.new_entry.next = (bit_cast::<171, 1>(self.entry_valid.q.val()) << 170)
            | (bit_cast::<171, 104>(self.key.q.val()) << 66)
            | (bit_cast::<171, 2>(self.state.q.val()) << 64)
            | (bit_cast::<171, 32>(self.now.q.val()) << 32)
            | bit_cast::<171, 32>(self.payload.q.val());

        // The decision (phase Decide), from the registered flags.
        // The oldest way, lowest on a tie (the model's scan keeps the first maximum):
        // way w wins if it is older than every lower way and no higher way is older.
        self.oldest.next = 0.into();
        if self.older10.q.val() & !self.older21.q.val() & !self.older31.q.val() {
            self.oldest.next = 1.into();
        }
        if self.older20.q.val() & self.older21.q.val() & !self.older32.q.val() {
            self.oldest.next = 2.into();
        }
        if self.older30.q.val() & self.older31.q.val() & self.older32.q.val() {
            self.oldest.next = 3.into();
        }
        self.chosen.next = self.way.q.val();
        self.chosen_kind.next = 0.into();
        self.write.next = false;
        self.write_data.next = self.new_entry.val();
        if self.op.q.val() == 0 {
            // Lookup: the first matching way; free it if expired.
            self.write_data.next = 0.into();
            if self.matched0.q.val() {
                self.chosen.next = 0.into();
                self.chosen_kind.next = 1.into();
                if self.expired0.q.val() {
                    self.chosen_kind.next = 2.into();
                    self.write.next = true;
                }
            } else if self.matched1.q.val() {
                self.chosen.next = 1.into();
                self.chosen_kind.next = 1.into();
                if self.expired1.q.val() {
                    self.chosen_kind.next = 2.into();
                    self.write.next = true;
                }
            } else if self.matched2.q.val() {
                self.chosen.next = 2.into();
                self.chosen_kind.next = 1.into();
                if self.expired2.q.val() {
                    self.chosen_kind.next = 2.into();
                    self.write.next = true;
                }
            } else if self.matched3.q.val() {
                self.chosen.next = 3.into();
                self.chosen_kind.next = 1.into();
                if self.expired3.q.val() {
                    self.chosen_kind.next = 2.into();
                    self.write.next = true;
                }
            }
        } else if self.op.q.val() == 1 {
            // Insert: lowest free, else lowest expired, else oldest.
            self.write.next = true;
            if !self.used0.q.val() {
                self.chosen.next = 0.into();
            } else if !self.used1.q.val() {
                self.chosen.next = 1.into();
            } else if !self.used2.q.val() {
                self.chosen.next = 2.into();
            } else if !self.used3.q.val() {
                self.chosen.next = 3.into();
            } else if self.expired0.q.val() {
                self.chosen.next = 0.into();
                self.chosen_kind.next = 1.into();
            } else if self.expired1.q.val() {
                self.chosen.next = 1.into();
                self.chosen_kind.next = 1.into();
            } else if self.expired2.q.val() {
                self.chosen.next = 2.into();
                self.chosen_kind.next = 1.into();
            } else if self.expired3.q.val() {
                self.chosen.next = 3.into();
                self.chosen_kind.next = 1.into();
            } else {
                self.chosen.next = self.oldest.val();
                self.chosen_kind.next = 2.into();
            }
        } else if self.op.q.val() == 2 {
            self.write.next = true;
        } else {
            // Read: way `cmd_way` as it is, and whether it is past its timeout.
            if ((self.way.q.val() == 0) & self.expired0.q.val())
                | ((self.way.q.val() == 1) & self.expired1.q.val())
                | ((self.way.q.val() == 2) & self.expired2.q.val())
                | ((self.way.q.val() == 3) & self.expired3.q.val())
            {
                self.chosen_kind.next = 1.into();
            }
        }

        self.way0.write_enable.next = self.wen0.q.val();
        self.wen0.d.next = false;
        self.way1.write_enable.next = self.wen1.q.val();
        self.wen1.d.next = false;
        self.way2.write_enable.next = self.wen2.q.val();
        self.wen2.d.next = false;
        self.way3.write_enable.next = self.wen3.q.val();
        self.wen3.d.next = false;
        self.way0.write_data.next = self.wdata.q.val();
        self.way1.write_data.next = self.wdata.q.val();
        self.way2.write_data.next = self.wdata.q.val();
        self.way3.write_data.next = self.wdata.q.val();

        if !self.fbusy.q.val() {
            self.op.d.next = self.cmd_op.val();
            self.set.d.next = self.cmd_hash.val().get_bits::<A>(0);
            self.way.d.next = self.cmd_way.val();
            self.key.d.next = self.cmd_key.val();
            self.state.d.next = self.cmd_state.val();
            self.payload.d.next = self.cmd_payload.val();
            self.entry_valid.d.next = self.cmd_entry_valid.val();
            self.now.d.next = self.cmd_now.val();
        }
        match self.phase.q.val() {
            Phase::Idle => {
                // (The command registers load every idle cycle, above.)
                if self.cmd_valid.val() {
                    self.fbusy.d.next = true;
                    self.phase.d.next = Phase::Read;
                }
            }
            Phase::Read => {
                // The RAMs read the set at this edge.
                self.phase.d.next = Phase::Capture;
            }
            Phase::Capture => {
                self.phase.d.next = Phase::Settle;
            }
            Phase::Settle => {
                self.phase.d.next = Phase::Compare;
            }
            Phase::Compare => {
                self.age0.d.next = self.age_now0.val();
                self.age1.d.next = self.age_now1.val();
                self.age2.d.next = self.age_now2.val();
                self.age3.d.next = self.age_now3.val();
                self.limit0.d.next = self.timeout0.val();
                self.limit1.d.next = self.timeout1.val();
                self.limit2.d.next = self.timeout2.val();
                self.limit3.d.next = self.timeout3.val();
                self.used0.d.next = self.data0.q.val().get_bit(170);
                self.used1.d.next = self.data1.q.val().get_bit(170);
                self.used2.d.next = self.data2.q.val().get_bit(170);
                self.used3.d.next = self.data3.q.val().get_bit(170);
                self.same00.d.next =
                    self.key0.val().get_bits::<26>(0) == self.key.q.val().get_bits::<26>(0);
                self.same01.d.next =
                    self.key0.val().get_bits::<26>(26) == self.key.q.val().get_bits::<26>(26);
                self.same02.d.next =
                    self.key0.val().get_bits::<26>(52) == self.key.q.val().get_bits::<26>(52);
                self.same03.d.next =
                    self.key0.val().get_bits::<26>(78) == self.key.q.val().get_bits::<26>(78);
                self.same10.d.next =
                    self.key1.val().get_bits::<26>(0) == self.key.q.val().get_bits::<26>(0);
                self.same11.d.next =
                    self.key1.val().get_bits::<26>(26) == self.key.q.val().get_bits::<26>(26);
                self.same12.d.next =
                    self.key1.val().get_bits::<26>(52) == self.key.q.val().get_bits::<26>(52);
                self.same13.d.next =
                    self.key1.val().get_bits::<26>(78) == self.key.q.val().get_bits::<26>(78);
                self.same20.d.next =
                    self.key2.val().get_bits::<26>(0) == self.key.q.val().get_bits::<26>(0);
                self.same21.d.next =
                    self.key2.val().get_bits::<26>(26) == self.key.q.val().get_bits::<26>(26);
                self.same22.d.next =
                    self.key2.val().get_bits::<26>(52) == self.key.q.val().get_bits::<26>(52);
                self.same23.d.next =
                    self.key2.val().get_bits::<26>(78) == self.key.q.val().get_bits::<26>(78);
                self.same30.d.next =
                    self.key3.val().get_bits::<26>(0) == self.key.q.val().get_bits::<26>(0);
                self.same31.d.next =
                    self.key3.val().get_bits::<26>(26) == self.key.q.val().get_bits::<26>(26);
                self.same32.d.next =
                    self.key3.val().get_bits::<26>(52) == self.key.q.val().get_bits::<26>(52);
                self.same33.d.next =
                    self.key3.val().get_bits::<26>(78) == self.key.q.val().get_bits::<26>(78);
                self.phase.d.next = Phase::Rank;
            }
            Phase::Rank => {
                self.matched0.d.next = self.used0.q.val()
                    & self.same00.q.val()
                    & self.same01.q.val()
                    & self.same02.q.val()
                    & self.same03.q.val();
                self.matched1.d.next = self.used1.q.val()
                    & self.same10.q.val()
                    & self.same11.q.val()
                    & self.same12.q.val()
                    & self.same13.q.val();
                self.matched2.d.next = self.used2.q.val()
                    & self.same20.q.val()
                    & self.same21.q.val()
                    & self.same22.q.val()
                    & self.same23.q.val();
                self.matched3.d.next = self.used3.q.val()
                    & self.same30.q.val()
                    & self.same31.q.val()
                    & self.same32.q.val()
                    & self.same33.q.val();
                self.expired0.d.next = self.age0.q.val() > self.limit0.q.val();
                self.expired1.d.next = self.age1.q.val() > self.limit1.q.val();
                self.expired2.d.next = self.age2.q.val() > self.limit2.q.val();
                self.expired3.d.next = self.age3.q.val() > self.limit3.q.val();
                self.older10.d.next = self.age1.q.val() > self.age0.q.val();
                self.older20.d.next = self.age2.q.val() > self.age0.q.val();
                self.older21.d.next = self.age2.q.val() > self.age1.q.val();
                self.older30.d.next = self.age3.q.val() > self.age0.q.val();
                self.older31.d.next = self.age3.q.val() > self.age1.q.val();
                self.older32.d.next = self.age3.q.val() > self.age2.q.val();
                self.phase.d.next = Phase::Decide;
            }
            Phase::Decide => {
                // The decision is registered before it steers the 171-bit result
                // multiplexer and the write enables (its fan-out was the critical path).
                self.wdata.d.next = self.write_data.val();
                self.pick_write.d.next = self.write.val();
                self.res_kind_q.d.next = self.chosen_kind.val();
                self.res_way_q.d.next = self.chosen.val();
                self.phase.d.next = Phase::Pick;
            }
            Phase::Pick => {
                if self.pick_write.q.val() {
                    if self.res_way_q.q.val() == 0 {
                        self.wen0.d.next = true;
                    }
                    if self.res_way_q.q.val() == 1 {
                        self.wen1.d.next = true;
                    }
                    if self.res_way_q.q.val() == 2 {
                        self.wen2.d.next = true;
                    }
                    if self.res_way_q.q.val() == 3 {
                        self.wen3.d.next = true;
                    }
                }
                self.res_entry_q.d.next = self.data0.q.val();
                if self.res_way_q.q.val() == 1 {
                    self.res_entry_q.d.next = self.data1.q.val();
                }
                if self.res_way_q.q.val() == 2 {
                    self.res_entry_q.d.next = self.data2.q.val();
                }
                if self.res_way_q.q.val() == 3 {
                    self.res_entry_q.d.next = self.data3.q.val();
                }
                self.phase.d.next = Phase::Result;
            }
            Phase::Result => {
                if self.res_ready.val() {
                    self.fbusy.d.next = false;
                    self.phase.d.next = Phase::Idle;
                }
            }
            _ => {
                self.fbusy.d.next = false;
                self.phase.d.next = Phase::Idle;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Rng, Traffic, settle, tick};
    use fulcrum_model::flow::{FlowEntry, FlowKey, FlowState, Lookup, SetAssociative};
    use fulcrum_model::tables::Settings;

    #[test]
    fn flow_table_is_synthesizable() {
        let mut uut = FlowTable::<9>::new();
        uut.clock.connect();
        uut.timeout_syn.connect();
        uut.timeout_established.connect();
        uut.timeout_closing.connect();
        uut.timeout_udp.connect();
        uut.cmd_valid.connect();
        uut.cmd_op.connect();
        uut.cmd_hash.connect();
        uut.cmd_way.connect();
        uut.cmd_key.connect();
        uut.cmd_state.connect();
        uut.cmd_payload.connect();
        uut.cmd_entry_valid.connect();
        uut.cmd_now.connect();
        uut.res_ready.connect();
        uut.connect_all();
        crate::verilog::validate("flow_table", &generate_verilog(&uut));
    }

    fn key_bits(k: &FlowKey) -> Bits<104> {
        let mut b = Bits::<104>::default();
        b.set_bits::<8>(96, u64::from(k.protocol).into());
        b.set_bits::<32>(64, u64::from(u32::from_be_bytes(k.src)).into());
        b.set_bits::<32>(32, u64::from(u32::from_be_bytes(k.dst)).into());
        b.set_bits::<16>(16, u64::from(k.src_port).into());
        b.set_bits::<16>(0, u64::from(k.dst_port).into());
        b
    }

    fn payload(e: &FlowEntry) -> u64 {
        u64::from(e.service) << 24 | u64::from(e.backend) << 8 | u64::from(e.generation)
    }

    /// Reads a stored entry back in the model's terms (client MAC is not stored).
    fn decode(b: Bits<171>) -> FlowEntry {
        let key = b.get_bits::<104>(entry::KEY).to_u128();
        let payload = b.get_bits::<32>(entry::PAYLOAD).to_u64();
        FlowEntry {
            valid: b.get_bit(entry::VALID),
            key: FlowKey {
                protocol: (key >> 96) as u8,
                src: ((key >> 64) as u32).to_be_bytes(),
                dst: ((key >> 32) as u32).to_be_bytes(),
                src_port: (key >> 16) as u16,
                dst_port: key as u16,
            },
            service: (payload >> 24) as u8,
            backend: (payload >> 8) as u16,
            generation: payload as u8,
            state: FlowState::from_code(b.get_bits::<2>(entry::STATE).to_u64() as u8),
            last_seen: b.get_bits::<32>(entry::LAST_SEEN).to_u64() as u32,
            client_mac: [0; 6],
        }
    }

    /// Drives one command through the table with random idle and stall cycles; returns
    /// (kind, slot, previous entry) and the cycles from offering to taking the result.
    struct Bench<const A: usize> {
        uut: Box<FlowTable<A>>,
        rng: Rng,
        traffic: Traffic,
    }

    struct Cmd {
        op: u64,
        hash: u32,
        way: u64,
        entry: FlowEntry,
        now: u32,
    }

    impl<const A: usize> Bench<A> {
        fn new(settings: &Settings, traffic: Traffic, seed: u64) -> Self {
            let mut uut = Box::new(FlowTable::<A>::new());
            uut.connect_all();
            uut.timeout_syn.next = u64::from(settings.tcp_syn_timeout).into();
            uut.timeout_established.next = u64::from(settings.tcp_established_timeout).into();
            uut.timeout_closing.next = u64::from(settings.tcp_closing_timeout).into();
            uut.timeout_udp.next = u64::from(settings.udp_timeout).into();
            Bench {
                uut,
                rng: Rng::new(seed),
                traffic,
            }
        }

        fn run(&mut self, cmd: &Cmd) -> (u64, u64, Bits<171>, u64) {
            let uut = &mut self.uut;
            while self.rng.chance(self.traffic.idle_permille) {
                uut.cmd_valid.next = false;
                settle(uut.as_mut());
                tick(uut.as_mut(), |u| &mut u.clock);
            }
            uut.cmd_valid.next = true;
            uut.cmd_op.next = cmd.op.into();
            uut.cmd_hash.next = u64::from(cmd.hash).into();
            uut.cmd_way.next = cmd.way.into();
            uut.cmd_key.next = key_bits(&cmd.entry.key);
            uut.cmd_state.next = u64::from(cmd.entry.state.code()).into();
            uut.cmd_payload.next = payload(&cmd.entry).into();
            uut.cmd_entry_valid.next = u64::from(cmd.entry.valid).into();
            uut.cmd_now.next = u64::from(cmd.now).into();
            let mut cycles = 0;
            loop {
                uut.res_ready.next = self.traffic.ready(&mut self.rng);
                settle(uut.as_mut());
                let taken = uut.cmd_valid.val() & uut.cmd_ready.val();
                let result = (uut.res_valid.val() & uut.res_ready.val()).then(|| {
                    (
                        uut.res_kind.val().to_u64(),
                        uut.res_slot.val().to_u64(),
                        uut.res_entry.val(),
                    )
                });
                tick(uut.as_mut(), |u| &mut u.clock);
                cycles += 1;
                if taken {
                    uut.cmd_valid.next = false;
                }
                if let Some((kind, slot, entry)) = result {
                    return (kind, slot, entry, cycles);
                }
                assert!(cycles < 1000, "flow table stuck");
            }
        }
    }

    fn settings() -> Settings {
        Settings {
            tcp_syn_timeout: 60,
            tcp_established_timeout: 400,
            tcp_closing_timeout: 30,
            udp_timeout: 150,
            ..Settings::default()
        }
    }

    /// Random lookups, inserts, refreshes and removals on a small table (8 sets × 4 ways,
    /// 48 keys, short timeouts), compared with `SetAssociative` after every operation.
    fn random_operations(ops: usize, traffic: Traffic, seed: u64) -> u64 {
        const A: usize = 3;
        let settings = settings();
        let timeout = |e: &FlowEntry| e.state.timeout(&settings);
        let mut storage = vec![FlowEntry::default(); WAYS << A];
        let mut model = SetAssociative::new(&mut storage, WAYS);
        let mut bench = Bench::<A>::new(&settings, traffic, seed);
        let mut rng = Rng::new(seed ^ 0xf10e);
        let keys: Vec<(FlowKey, u32)> = (0..48)
            .map(|_| {
                let key = FlowKey {
                    protocol: [6, 17][rng.below(2) as usize],
                    src: (rng.next_u64() as u32).to_be_bytes(),
                    dst: (rng.next_u64() as u32).to_be_bytes(),
                    src_port: rng.next_u64() as u16,
                    dst_port: rng.next_u64() as u16,
                };
                (key, rng.next_u64() as u32)
            })
            .collect();
        // Start just before the 32-bit wrap so ages are computed across it.
        let mut now = u32::MAX - 3_000;
        let mut op_cycles = 0;
        // How often each (operation, result kind) happened: every case must be reached.
        let mut seen = [[0u32; 3]; 2];
        let mut reads = 0;
        for n in 0..ops {
            let step = if rng.chance(20) { 700 } else { 6 };
            now = now.wrapping_add(rng.below(step) as u32);
            let (key, hash) = keys[rng.below(keys.len() as u64) as usize];
            let entry = FlowEntry {
                valid: true,
                key,
                service: rng.byte(),
                backend: rng.next_u64() as u16,
                generation: rng.byte(),
                state: FlowState::from_code(rng.byte()),
                last_seen: now,
                client_mac: [0; 6],
            };
            let roll = rng.below(10);
            if roll < 4 {
                let (kind, slot, got, cycles) = bench.run(&Cmd {
                    op: op::LOOKUP,
                    hash,
                    way: 0,
                    entry,
                    now,
                });
                op_cycles += cycles;
                seen[0][kind as usize] += 1;
                match model.lookup(key, hash, now, timeout) {
                    Lookup::Miss => assert_eq!(kind, kind::MISS_OR_FREE, "op {n}: lookup miss"),
                    Lookup::Hit(s) => {
                        assert_eq!(
                            (kind, slot),
                            (kind::HIT_OR_RECLAIMED, s as u64),
                            "op {n}: hit"
                        );
                        assert_eq!(decode(got), *model.get(s).unwrap(), "op {n}: hit entry");
                    }
                    Lookup::Expired(e) => {
                        assert_eq!(kind, kind::EXPIRED_OR_EVICTED, "op {n}: expired");
                        assert_eq!(decode(got), e, "op {n}: expired entry");
                    }
                }
            } else if roll < 7 {
                let (kind, slot, got, cycles) = bench.run(&Cmd {
                    op: op::INSERT,
                    hash,
                    way: 0,
                    entry,
                    now,
                });
                op_cycles += cycles;
                seen[1][kind as usize] += 1;
                let ins = model.insert(entry, hash, now, timeout).unwrap();
                let want_kind = match (ins.displaced, ins.evicted_live) {
                    (None, _) => kind::MISS_OR_FREE,
                    (Some(_), false) => kind::HIT_OR_RECLAIMED,
                    (Some(_), true) => kind::EXPIRED_OR_EVICTED,
                };
                assert_eq!((kind, slot), (want_kind, ins.slot as u64), "op {n}: insert");
                if let Some(d) = ins.displaced {
                    assert_eq!(decode(got), d, "op {n}: displaced entry");
                }
            } else if roll == 7 && rng.chance(400) {
                // Read one slot (a full-NAT reply): nothing changes.
                let way = rng.below(WAYS as u64);
                let slot = model.set_base(hash) + way as usize;
                let before = *model.get(slot).unwrap();
                let (kind, got_slot, got, cycles) = bench.run(&Cmd {
                    op: op::READ,
                    hash,
                    way,
                    entry,
                    now,
                });
                op_cycles += cycles;
                reads += 1;
                let stale =
                    fulcrum_model::flow::is_expired(now, before.last_seen, timeout(&before));
                assert_eq!(got_slot, slot as u64, "op {n}: read slot");
                let got = decode(got);
                assert_eq!(got.valid, before.valid, "op {n}: read valid");
                if before.valid {
                    // (A freed way keeps old content in hardware: only a valid one is
                    // compared.)
                    assert_eq!(kind, u64::from(stale), "op {n}: read expiry");
                    assert_eq!(got, before, "op {n}: read entry");
                }
            } else {
                // Refresh (as the pipeline does after a hit) or remove one slot.
                let way = rng.below(WAYS as u64);
                let slot = model.set_base(hash) + way as usize;
                let before = *model.get(slot).unwrap();
                let remove = rng.chance(300) || !before.valid;
                let written = if remove {
                    model.remove(slot);
                    FlowEntry {
                        valid: false,
                        ..entry
                    }
                } else {
                    let refreshed = FlowEntry {
                        last_seen: now,
                        state: entry.state,
                        ..before
                    };
                    *model.get_mut(slot).unwrap() = refreshed;
                    refreshed
                };
                let (kind, got_slot, got, cycles) = bench.run(&Cmd {
                    op: op::WRITE,
                    hash,
                    way,
                    entry: written,
                    now,
                });
                op_cycles += cycles;
                assert_eq!(
                    (kind, got_slot),
                    (kind::MISS_OR_FREE, slot as u64),
                    "op {n}: write"
                );
                if before.valid {
                    assert_eq!(decode(got), before, "op {n}: previous entry");
                }
            }
        }
        for (op, kinds) in seen.iter().enumerate() {
            for (kind, &n) in kinds.iter().enumerate() {
                assert!(
                    n >= 100,
                    "operation {op} gave result kind {kind} only {n} times"
                );
            }
        }
        assert!(reads >= 100, "only {reads} slot reads");
        op_cycles
    }

    #[test]
    fn matches_set_associative_on_random_operations() {
        let cycles = random_operations(12_000, Traffic::SMOOTH, 11);
        // Eight cycles per operation plus the result hand-off.
        assert_eq!(cycles, 9 * 12_000);
    }

    #[test]
    fn matches_set_associative_with_idle_and_backpressure() {
        random_operations(6_000, Traffic::BUMPY, 12);
    }
}
