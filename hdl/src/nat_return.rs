//! Which NAT service and backend sent a frame (`Pipeline::nat_backend` of the model), for
//! the NAT return path of [`crate::pipeline::FastPath`].
//!
//! The model scans the services in table order and, in each valid NAT-mode service of the
//! frame's protocol, its members in list order (`min(member_count, 32)` of them); the
//! first member whose backend (`backends[m % 256]`) is not `Free` and has the frame's
//! source address and port names `(service, member)`. The answer depends only on the
//! active tables, which change only at a commit, so the scan is done **once per commit**
//! here, and a frame only probes its result:
//!
//! - the unit keeps its own copy of the service fields the scan reads, written from the
//!   register block's table port: per service (table 1) valid & NAT, UDP, member count
//!   (16 × 8, distributed RAM). The member lists and the backends (not `Free`, address,
//!   port) it reads from the owner's active banks ([`crate::forward::Forward`]'s `ext_*`
//!   ports) after the owner has copied them at the commit (`tables_busy` low), so they
//!   hold what the model's new active bank holds;
//! - at a `commit` strobe the reply table (1,024 entries, open addressing with linear
//!   probing, keyed by (UDP, address, port), 70 bits: valid, key, service, member) is
//!   cleared (1,024 cycles), then, once the owner's copy is done, the services and members are visited in the model's
//!   order and each match is inserted unless its key is already there (the first in
//!   scan order wins, as in the model). At most 16 × 32 = 512 keys go into 1,024 entries,
//!   so a probe always ends at an empty entry. About 1,024 + 20 per member cycles;
//! - a request (`req_*`: the frame's source address, source port, UDP or TCP) probes
//!   from the key's hash: 5 cycles per entry looked at, the first empty entry is a miss.
//!
//! `busy` is high while clearing and building; the controller holds the commit
//! (`STATUS.0`) until it falls, like the forward path's table copy.
//!
//! Block RAM: reply table 1,024 × 70 (4 DP16KD); the member lists and backend table are
//! the owner's (before session 8 the unit kept copies of them: 3 `DP16KD` more).

use rust_hdl::prelude::*;

use crate::ram::SinglePortRam;

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum St {
    Idle,
    Clear,
    Wait,
    Svc,
    SvcUse,
    MemRd,
    MemUse,
    BeRd,
    BeUse,
    Hash,
    ProbeRd,
    ProbeCmp,
    ProbeUse,
    NextMember,
    NextSvc,
    Done,
}

/// The NAT backend of a reply, one request at a time.
#[derive(LogicBlock)]
pub struct NatReply {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// Table write strobe (from `regs::RegisterBlock`).
    pub table_write: Signal<In, Bit>,
    /// Table code: 1 service, 2 backend, 3 member (others ignored here).
    pub table_kind: Signal<In, Bits<4>>,
    /// Entry index (regmap encoding).
    pub table_index: Signal<In, Bits<28>>,
    /// Entry word 0.
    pub table_data0: Signal<In, Bits<32>>,
    /// Entry word 1.
    pub table_data1: Signal<In, Bits<32>>,
    /// Entry word 2.
    pub table_data2: Signal<In, Bits<32>>,
    /// Strobe: rebuild the reply table from the (new active) bank.
    pub commit: Signal<In, Bit>,
    /// Clearing or building (no request is taken).
    pub busy: Signal<Out, Bit>,
    /// A request is on the `req_*` inputs.
    pub req_valid: Signal<In, Bit>,
    /// The unit takes it this cycle.
    pub req_ready: Signal<Out, Bit>,
    /// The frame's source address.
    pub req_addr: Signal<In, Bits<32>>,
    /// The frame's source port.
    pub req_port: Signal<In, Bits<16>>,
    /// The frame is UDP (else TCP).
    pub req_udp: Signal<In, Bit>,
    /// A result is on the `res_*` outputs.
    pub res_valid: Signal<Out, Bit>,
    /// The receiver takes it.
    pub res_ready: Signal<In, Bit>,
    /// A NAT service's member sent it.
    pub res_found: Signal<Out, Bit>,
    /// That service's slot.
    pub res_service: Signal<Out, Bits<4>>,
    /// That member (the backend index as the member list holds it).
    pub res_backend: Signal<Out, Bits<16>>,
    /// The owner's table copy at the commit is in progress (the build waits for it).
    pub tables_busy: Signal<In, Bit>,
    /// The build reads the owner's active member lists and backend table (see
    /// [`crate::forward::Forward`]'s `ext_*` ports): the address below is on their read
    /// ports.
    pub ext_read: Signal<Out, Bit>,
    /// Member-list entry to read (`service << 5 | position`).
    pub ext_mem_addr: Signal<Out, Bits<9>>,
    /// The entry at `ext_mem_addr` two edges ago.
    pub ext_mem_data: Signal<In, Bits<16>>,
    /// Backend to read (`member % 256`).
    pub ext_be_addr: Signal<Out, Bits<8>>,
    /// Its word two edges ago (122:120 state, 95:64 address, 63:48 port).
    pub ext_be_data: Signal<In, Bits<128>>,

    // Per service: 7 valid & NAT, 6 UDP, 5:0 min(member_count, 32).
    svc: RAM<Bits<8>, 4>,
    // 69 valid, 68 UDP, 67:36 address, 35:20 port, 19:16 service, 15:0 member.
    replies: SinglePortRam<Bits<70>, 10>,

    st: DFF<St>,
    lookup: DFF<Bit>,
    idx: DFF<Bits<10>>,
    s: DFF<Bits<4>>,
    j: DFF<Bits<6>>,
    n: DFF<Bits<6>>,
    // n - 1 (registered: `j + 1 == n`'s carry chain sat in front of the state register).
    n_last: DFF<Bits<6>>,
    udp: DFF<Bit>,
    k_addr: DFF<Bits<32>>,
    k_port: DFF<Bits<16>>,
    member: DFF<Bits<16>>,
    rd_wait: DFF<Bit>,
    /// `tables_busy` registered: it only gates the start of the rebuild, which waits
    /// over a thousand cycles (`Clear`) after the commit that raises it.
    tables_busy_q: DFF<Bit>,
    found: DFF<Bit>,
    // The entry's key equals the key (registered: the 49-bit compare and the decision
    // in one cycle were a critical path).
    key_eq: DFF<Bit>,
    // The state is `SvcUse`, `BeUse`, `ProbeUse` (flags set with the transition into it:
    // the wide loads there hang off one flip-flop, not the state decode).
    at_svc_use: DFF<Bit>,
    at_be_use: DFF<Bit>,
    at_probe_use: DFF<Bit>,
    // Not idle (`st != Idle`), as a register.
    nbusy: DFF<Bit>,
    f_service: DFF<Bits<4>>,
    f_backend: DFF<Bits<16>>,
    building: DFF<Bit>,

    // The service write, registered.
    sw_we: DFF<Bit>,
    sw_addr: DFF<Bits<4>>,
    sw_data: DFF<Bits<8>>,
    wr_count: Signal<Local, Bits<6>>,
    wr_nat: Signal<Local, Bit>,
    be_state: Signal<Local, Bits<3>>,
    wr_udp: Signal<Local, Bit>,
    key_hash: Signal<Local, Bits<10>>,
    key_now: Signal<Local, Bits<49>>,
    entry_key: Signal<Local, Bits<49>>,
    mode: Signal<Local, Bits<3>>,
}

impl Default for NatReply {
    fn default() -> Self {
        Self::new()
    }
}

impl NatReply {
    /// A unit with empty tables (member lists `NO_BACKEND`, as the model's).
    pub fn new() -> Self {
        NatReply {
            clock: Default::default(),
            table_write: Default::default(),
            table_kind: Default::default(),
            table_index: Default::default(),
            table_data0: Default::default(),
            table_data1: Default::default(),
            table_data2: Default::default(),
            commit: Default::default(),
            busy: Default::default(),
            req_valid: Default::default(),
            req_ready: Default::default(),
            req_addr: Default::default(),
            req_port: Default::default(),
            req_udp: Default::default(),
            res_valid: Default::default(),
            res_ready: Default::default(),
            res_found: Default::default(),
            res_service: Default::default(),
            res_backend: Default::default(),
            tables_busy: Default::default(),
            ext_read: Default::default(),
            ext_mem_addr: Default::default(),
            ext_mem_data: Default::default(),
            ext_be_addr: Default::default(),
            ext_be_data: Default::default(),
            building: Default::default(),
            be_state: Default::default(),
            svc: Default::default(),
            replies: Default::default(),
            st: Default::default(),
            lookup: Default::default(),
            idx: Default::default(),
            s: Default::default(),
            j: Default::default(),
            n: Default::default(),
            n_last: Default::default(),
            udp: Default::default(),
            k_addr: Default::default(),
            k_port: Default::default(),
            member: Default::default(),
            rd_wait: Default::default(),
            tables_busy_q: Default::default(),
            at_svc_use: Default::default(),
            at_be_use: Default::default(),
            at_probe_use: Default::default(),
            found: Default::default(),
            key_eq: Default::default(),
            nbusy: Default::default(),
            f_service: Default::default(),
            f_backend: Default::default(),
            sw_we: Default::default(),
            sw_addr: Default::default(),
            sw_data: Default::default(),
            wr_count: Default::default(),
            wr_nat: Default::default(),
            wr_udp: Default::default(),
            key_hash: Default::default(),
            key_now: Default::default(),
            entry_key: Default::default(),
            mode: Default::default(),
        }
    }
}

impl Logic for NatReply {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            st,
            lookup,
            idx,
            s,
            j,
            n,
            n_last,
            udp,
            k_addr,
            k_port,
            member,
            rd_wait,
            tables_busy_q,
            found,
            f_service,
            f_backend,
            building,
            key_eq,
            nbusy,
            at_svc_use,
            at_be_use,
            at_probe_use,
            sw_we,
            sw_addr,
            sw_data
        );
        clock!(self, clock, replies);
        self.svc.read_clock.next = self.clock.val();
        self.svc.write_clock.next = self.clock.val();

        // ---- Shadow writes (indexes as `FastPath` and `Forward` decode them).
        self.mode.next = self.table_data0.val().get_bits::<3>(27);
        self.wr_nat.next =
            self.table_data0.val().get_bit(31) & ((self.mode.val() == 0) | (self.mode.val() >= 6));
        self.wr_count.next = self.table_data0.val().get_bits::<6>(0);
        if self.table_data0.val().get_bits::<8>(0) > 32 {
            self.wr_count.next = 32.into();
        }
        self.wr_udp.next = self.table_data0.val().get_bits::<8>(16) == 17;
        // Registered on the way in (the index decode in front of the LUT RAM's write
        // enable was a critical path); a commit comes bus cycles after its writes.
        self.sw_addr.d.next = self.table_index.val().get_bits::<4>(0);
        self.sw_we.d.next = self.table_write.val()
            & (self.table_kind.val() == 1)
            & (self.table_index.val().get_bits::<24>(4) == 0);
        self.sw_data.d.next = (bit_cast::<8, 1>(self.wr_nat.val().into()) << 7)
            | (bit_cast::<8, 1>(self.wr_udp.val().into()) << 6)
            | bit_cast::<8, 6>(self.wr_count.val());
        self.svc.write_address.next = self.sw_addr.q.val();
        self.svc.write_enable.next = self.sw_we.q.val();
        self.svc.write_data.next = self.sw_data.q.val();
        self.svc.read_address.next = self.s.q.val();
        // The member lists and backends: the owner's active banks, read while building
        // (equal to the shadow banks then: the owner has copied them).
        self.ext_read.next = self.building.q.val();
        self.n_last.d.next = self.n.q.val() - 1;
        self.ext_mem_addr.next = (bit_cast::<9, 4>(self.s.q.val()) << 5)
            | bit_cast::<9, 5>(self.j.q.val().get_bits::<5>(0));
        self.ext_be_addr.next = self.member.q.val().get_bits::<8>(0);
        self.be_state.next = self.ext_be_data.val().get_bits::<3>(120);

        // ---- The key, its hash (a fold of its 49 bits to 10) and the table entry's key.
        self.key_now.next = (bit_cast::<49, 1>(self.udp.q.val().into()) << 48)
            | (bit_cast::<49, 32>(self.k_addr.q.val()) << 16)
            | bit_cast::<49, 16>(self.k_port.q.val());
        self.key_hash.next = self.k_addr.q.val().get_bits::<10>(0)
            ^ self.k_addr.q.val().get_bits::<10>(10)
            ^ self.k_addr.q.val().get_bits::<10>(20)
            ^ bit_cast::<10, 2>(self.k_addr.q.val().get_bits::<2>(30))
            ^ self.k_port.q.val().get_bits::<10>(0)
            ^ (bit_cast::<10, 6>(self.k_port.q.val().get_bits::<6>(10)) << 4)
            ^ (bit_cast::<10, 1>(self.udp.q.val().into()) << 9);
        self.entry_key.next = self.replies.read_data.val().get_bits::<49>(20);
        self.key_eq.d.next = self.entry_key.val() == self.key_now.val();
        self.replies.address.next = self.idx.q.val();
        self.replies.write_enable.next = false;
        self.replies.write_data.next = (bit_cast::<70, 1>(true.into()) << 69)
            | (bit_cast::<70, 49>(self.key_now.val()) << 20)
            | (bit_cast::<70, 4>(self.s.q.val()) << 16)
            | bit_cast::<70, 16>(self.member.q.val());

        self.busy.next = (self.st.q.val() != St::Idle) & !self.lookup.q.val();
        self.tables_busy_q.d.next = self.tables_busy.val();
        self.req_ready.next = self.st.q.val() == St::Idle;
        self.res_valid.next = self.st.q.val() == St::Done;
        self.res_found.next = self.found.q.val();
        self.res_service.next = self.f_service.q.val();
        self.res_backend.next = self.f_backend.q.val();

        // Idle (`nbusy` low, a register): the request registers follow the inputs, so
        // their loads hang off one flip-flop; a request or a commit only moves the state.
        if !self.nbusy.q.val() {
            self.lookup.d.next = false;
            self.idx.d.next = 0.into();
            self.udp.d.next = self.req_udp.val();
            self.k_addr.d.next = self.req_addr.val();
            self.k_port.d.next = self.req_port.val();
            self.found.d.next = false;
        }
        self.at_svc_use.d.next = false;
        self.at_be_use.d.next = false;
        self.at_probe_use.d.next = false;
        if self.at_svc_use.q.val() {
            self.udp.d.next = self.svc.read_data.val().get_bit(6);
            self.n.d.next = self.svc.read_data.val().get_bits::<6>(0);
            self.j.d.next = 0.into();
        }
        if self.at_be_use.q.val() {
            // The model's `backends[m % 256]` (used unless `Free`, below).
            self.k_addr.d.next = self.ext_be_data.val().get_bits::<32>(64);
            self.k_port.d.next = self.ext_be_data.val().get_bits::<16>(48);
        }
        if self.at_probe_use.q.val()
            & self.replies.read_data.val().get_bit(69)
            & self.key_eq.q.val()
        {
            // The key's first match in scan order (build: keep it).
            self.found.d.next = true;
            self.f_service.d.next = self.replies.read_data.val().get_bits::<4>(16);
            self.f_backend.d.next = self.replies.read_data.val().get_bits::<16>(0);
        }
        match self.st.q.val() {
            St::Idle => {
                // (The request registers load every idle cycle, above.)
                if self.commit.val() {
                    self.nbusy.d.next = true;
                    self.st.d.next = St::Clear;
                } else if self.req_valid.val() {
                    self.lookup.d.next = true;
                    self.nbusy.d.next = true;
                    self.st.d.next = St::Hash;
                }
            }
            St::Clear => {
                self.replies.write_data.next = 0.into();
                self.replies.write_enable.next = true;
                self.idx.d.next = self.idx.q.val() + 1;
                if self.idx.q.val() == 1023 {
                    self.s.d.next = 0.into();
                    self.st.d.next = St::Wait;
                }
            }
            St::Wait => {
                // The owner copies its backend table and member lists first.
                if !self.tables_busy_q.q.val() {
                    self.building.d.next = true;
                    self.st.d.next = St::Svc;
                }
            }
            St::Svc => {
                // svc.read_address is s: its entry is on read_data next cycle.
                self.st.d.next = St::SvcUse;
                self.at_svc_use.d.next = true;
            }
            St::SvcUse => {
                // (udp, n and j load on `at_svc_use`, above.)
                self.st.d.next = St::NextSvc;
                self.rd_wait.d.next = false;
                if self.svc.read_data.val().get_bit(7)
                    & (self.svc.read_data.val().get_bits::<6>(0) != 0)
                {
                    self.st.d.next = St::MemRd;
                }
            }
            St::MemRd => {
                self.rd_wait.d.next = true;
                if self.rd_wait.q.val() {
                    self.st.d.next = St::MemUse;
                }
            }
            St::MemUse => {
                self.member.d.next = self.ext_mem_data.val();
                self.rd_wait.d.next = false;
                self.st.d.next = St::BeRd;
            }
            St::BeRd => {
                self.rd_wait.d.next = true;
                if self.rd_wait.q.val() {
                    self.st.d.next = St::BeUse;
                    self.at_be_use.d.next = true;
                }
            }
            St::BeUse => {
                // The model's `backends[m % 256]` (loaded on `at_be_use`), unless `Free`
                // (state 0 or above 4).
                self.st.d.next = St::NextMember;
                if (self.be_state.val() != 0) & (self.be_state.val() <= 4) {
                    self.st.d.next = St::Hash;
                }
            }
            St::Hash => {
                self.idx.d.next = self.key_hash.val();
                self.rd_wait.d.next = false;
                self.st.d.next = St::ProbeRd;
            }
            St::ProbeRd => {
                self.rd_wait.d.next = true;
                if self.rd_wait.q.val() {
                    self.st.d.next = St::ProbeCmp;
                }
            }
            St::ProbeCmp => {
                // The entry is on read_data: `key_eq` registers its compare.
                self.st.d.next = St::ProbeUse;
                self.at_probe_use.d.next = true;
            }
            St::ProbeUse => {
                self.rd_wait.d.next = false;
                if !self.replies.read_data.val().get_bit(69) {
                    // Empty: a miss (request), or the place of a new key (build).
                    if self.lookup.q.val() {
                        self.st.d.next = St::Done;
                    } else {
                        self.replies.write_enable.next = true;
                        self.st.d.next = St::NextMember;
                    }
                } else if self.key_eq.q.val() {
                    // The key's first match in scan order (build: keep it; `found` and
                    // the result load on `at_probe_use`, above).
                    self.st.d.next = St::NextMember;
                    if self.lookup.q.val() {
                        self.st.d.next = St::Done;
                    }
                } else {
                    self.idx.d.next = self.idx.q.val() + 1;
                    self.st.d.next = St::ProbeRd;
                }
            }
            St::NextMember => {
                self.j.d.next = self.j.q.val() + 1;
                self.rd_wait.d.next = false;
                self.st.d.next = St::MemRd;
                // j + 1 == n (mod 64): `n_last` follows `n`, loaded cycles before.
                if self.j.q.val() == self.n_last.q.val() {
                    self.st.d.next = St::NextSvc;
                }
            }
            St::NextSvc => {
                self.s.d.next = self.s.q.val() + 1;
                self.st.d.next = St::Svc;
                if self.s.q.val() == 15 {
                    self.building.d.next = false;
                    self.nbusy.d.next = false;
                    self.st.d.next = St::Idle;
                }
            }
            St::Done => {
                if self.res_ready.val() {
                    self.nbusy.d.next = false;
                    self.st.d.next = St::Idle;
                }
            }
            _ => {
                self.nbusy.d.next = false;
                self.st.d.next = St::Idle;
            }
        }
    }
}
