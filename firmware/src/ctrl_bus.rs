//! The register bus over control frames: the MCU's [`RegisterBus`] when the FPGA is reached
//! through its MCU port (port 2) instead of SPI, as on the Colorlight 5A-75B, whose free
//! pins sit behind output-only buffers.
//!
//! Frames are [`fulcrum_model::ctrl_frame`]'s (the one definition the FPGA bridge and its
//! reference, [`ctrl_frame::Responder`], use). The protocol on top of them is stop-and-wait:
//!
//! - **Batching.** Register writes collect in a batch of up to [`MAX_OPS`] ops; the batch
//!   goes out as one request when it is full, when a read needs an answer (the read joins
//!   the batch, so ordering is kept), when `CONTROL` is written (a commit ends a table
//!   update), and otherwise at the network stack's next poll ([`CtrlDevice`] flushes it).
//! - **Sequence numbers.** Every request has the next sequence number; only a response
//!   with that number, the same ops (code and address) and each write's value echoed is
//!   accepted. Anything else, a late response, a duplicate or a corrupted one, is counted
//!   and ignored.
//! - **Timeouts and retries.** A request without a valid response within
//!   [`Timing::timeout_us`] is sent again with the same sequence number, up to
//!   [`Timing::attempts`] times in all; then the exchange fails with
//!   [`CtrlBusError::NoResponse`] (logged and counted, see [`CtrlStats`]; the failed
//!   reads read as `0xFFFF_FFFF`, as a floating bus). The bridge skips the writes of a
//!   retransmitted request ([`ctrl_frame::Responder`]), so a lost response does not
//!   repeat a `TABLE_WRITE`.
//! - **The first request** after boot is read-only: `ID` and `VERSION`, checked against the
//!   register map (the bridge's last sequence number is unknown to a freshly booted MCU,
//!   and a read-only request is harmless either way).
//!
//! [`CtrlCore`] is the sans-IO core (unit-tested below: lost request, lost response,
//! duplicate, reordered and corrupt responses, timeouts). With the `net` feature,
//! [`CtrlPort`] ties it to an embassy-net [`Driver`](embassy_net_driver::Driver): the
//! register bus ([`CtrlRegisterBus`]) and the network stack's device ([`CtrlDevice`]) share
//! the one Ethernet MAC; control frames go to the bus, every other frame to embassy-net.
//! The bus is blocking, as the SPI bus is: the appliance writes its tables from
//! synchronous code, and the FPGA answers within microseconds.
//!
//! Panic contract: nothing here panics on any received bytes.

use fulcrum_model::ctrl_frame::{
    self, CtrlFrame, ETHERTYPE, KIND_REQUEST, KIND_RESPONSE, MAX_OPS, Op,
};
use fulcrum_model::regmap::{self, addr};

/// The longest control frame (header and [`MAX_OPS`] ops), FCS and padding excluded.
pub const FRAME_MAX: usize = ctrl_frame::frame_len(MAX_OPS);

/// The MAC the MCU sends control frames to. The bridge answers any destination (it only
/// checks the EtherType and the port); a fixed locally administered unicast address lets
/// a switch between the boards learn where the FPGA's port 2 is from the responses'
/// source address.
pub const FPGA_MAC: [u8; 6] = [0x02, 0x46, 0x4c, 0x43, 0x46, 0x50];

/// What a failed read reads as.
pub const FAILED_READ: u32 = 0xFFFF_FFFF;

/// Retransmission timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Wait for a response this long before sending the request again (µs).
    pub timeout_us: u64,
    /// Transmissions of one request in all (≥ 1) before the exchange fails.
    pub attempts: u8,
}

impl Timing {
    /// 2 ms, 4 transmissions: a response takes tens of microseconds over a cable or one
    /// switch at 100 Mb/s (two frames of at most 276 bytes and the bridge's ~2k cycles), so
    /// a lost frame costs 2 ms and a dead link 8 ms per exchange.
    pub const DEFAULT: Timing = Timing {
        timeout_us: 2_000,
        attempts: 4,
    };
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CtrlBusError {
    /// No valid response to request `seq` after `attempts` transmissions: the FPGA is not
    /// running the bridge, the link is down, or frames are lost.
    NoResponse {
        /// The request's sequence number.
        seq: u16,
        /// Transmissions made.
        attempts: u8,
    },
    /// The MAC took no frame for a whole timeout (no free transmit descriptor).
    TransmitBlocked,
    /// The bridge answered, but `ID` and `VERSION` are not this register map's: another
    /// image is loaded in the FPGA. Nothing is written to it; every exchange probes again.
    WrongFpga {
        /// `ID` as read.
        id: u32,
        /// `VERSION` as read.
        version: u32,
    },
}

impl core::fmt::Display for CtrlBusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoResponse { seq, attempts } => write!(
                f,
                "FPGA control frames: no valid response to request {seq} after {attempts} transmissions"
            ),
            Self::TransmitBlocked => {
                write!(f, "FPGA control frames: the Ethernet MAC takes no frame")
            }
            Self::WrongFpga { id, version } => write!(
                f,
                "FPGA control frames: ID {id:#010x} version {version} is not Fulcrum's register map {:#010x} version {}",
                regmap::ID,
                regmap::VERSION
            ),
        }
    }
}

/// What a received frame was to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Not a control frame (another EtherType): not the bus's.
    NotControl,
    /// The response to the request in flight: the exchange is done.
    Done,
    /// A response to an older request, or a second copy of one already accepted.
    Stale(u16),
    /// A control frame that does not parse, is not a response, or does not match the
    /// request in flight (ops, addresses or echoed write values differ).
    Corrupt,
}

/// What the core wants after [`CtrlCore::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No request in flight.
    Idle,
    /// Wait for the response.
    Wait,
    /// Send [`CtrlCore::frame`] again (the timeout passed).
    Resend,
    /// The exchange failed; the request is dropped.
    Failed(CtrlBusError),
}

/// Counters of the bus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtrlStats {
    /// Requests sent (first transmissions).
    pub requests: u64,
    /// Retransmissions.
    pub retransmissions: u64,
    /// Responses accepted.
    pub responses: u64,
    /// Stale or duplicate responses ignored.
    pub stale: u64,
    /// Corrupt or mismatching control frames ignored.
    pub corrupt: u64,
    /// Exchanges that failed.
    pub failures: u64,
    /// Register writes carried.
    pub writes: u64,
    /// Register reads carried.
    pub reads: u64,
}

struct InFlight {
    frame: [u8; FRAME_MAX],
    len: usize,
    seq: u16,
    sent_at: u64,
    attempts: u8,
    /// The boot probe (`ID`, `VERSION`), not the batch.
    probe: bool,
}

/// The sans-IO core: batch, sequence, retransmission and response checking.
pub struct CtrlCore {
    fpga: [u8; 6],
    mcu: [u8; 6],
    timing: Timing,
    next_seq: u16,
    probed: bool,
    batch: heapless::Vec<Op, MAX_OPS>,
    flight: Option<InFlight>,
    results: heapless::Vec<Op, MAX_OPS>,
    /// Counters.
    pub stats: CtrlStats,
    last_error: Option<CtrlBusError>,
}

impl CtrlCore {
    /// A core sending from `mcu` to `fpga`, starting at sequence number `first_seq` (any;
    /// a random one makes a stale response from before a reboot unlikely to match).
    pub const fn new(fpga: [u8; 6], mcu: [u8; 6], first_seq: u16, timing: Timing) -> Self {
        CtrlCore {
            fpga,
            mcu,
            timing,
            next_seq: first_seq,
            probed: false,
            batch: heapless::Vec::new(),
            flight: None,
            results: heapless::Vec::new(),
            stats: CtrlStats {
                requests: 0,
                retransmissions: 0,
                responses: 0,
                stale: 0,
                corrupt: 0,
                failures: 0,
                writes: 0,
                reads: 0,
            },
            last_error: None,
        }
    }

    /// The MCU's MAC (the source of requests); a new config may change it.
    pub fn set_mcu_mac(&mut self, mac: [u8; 6]) {
        self.mcu = mac;
    }

    /// Adds `op` to the batch; gives it back when the batch is full (send it first).
    pub fn push(&mut self, op: Op) -> Result<(), Op> {
        self.batch.push(op)
    }

    /// Ops waiting in the batch.
    pub fn batched(&self) -> usize {
        self.batch.len()
    }

    /// Whether a request is waiting for its response.
    pub fn in_flight(&self) -> bool {
        self.flight.is_some()
    }

    /// Whether there is anything to send (the boot probe counts once the batch has ops).
    pub fn has_work(&self) -> bool {
        !self.batch.is_empty()
    }

    /// Starts the next request (the boot probe first, then the batch) at time `now_us`
    /// and returns its bytes; `None` with a request already in flight or nothing to send.
    pub fn start(&mut self, now_us: u64) -> Option<&[u8]> {
        if self.flight.is_some() || self.batch.is_empty() {
            return None;
        }
        let probe = !self.probed;
        let probe_ops = [
            Op::Read {
                addr: addr::ID,
                value: 0,
            },
            Op::Read {
                addr: addr::VERSION,
                value: 0,
            },
        ];
        let ops: &[Op] = if probe { &probe_ops } else { &self.batch };
        let seq = self.next_seq;
        let mut frame = [0u8; FRAME_MAX];
        // Cannot fail: 1..=MAX_OPS ops, a request, a buffer of the longest frame.
        let len = ctrl_frame::encode(self.fpga, self.mcu, KIND_REQUEST, seq, ops, &mut frame)
            .unwrap_or(0);
        for op in ops {
            match op {
                Op::Write { .. } => self.stats.writes += 1,
                Op::Read { .. } => self.stats.reads += 1,
            }
        }
        if !probe {
            self.batch.clear();
        }
        self.next_seq = seq.wrapping_add(1);
        self.stats.requests += 1;
        let f = self.flight.insert(InFlight {
            frame,
            len,
            seq,
            sent_at: now_us,
            attempts: 1,
            probe,
        });
        Some(&f.frame[..f.len])
    }

    /// The request in flight (to send it again).
    pub fn frame(&self) -> Option<&[u8]> {
        self.flight.as_ref().map(|f| &f.frame[..f.len])
    }

    /// Takes a received frame (Ethernet header onwards, padding allowed).
    pub fn on_frame(&mut self, frame: &[u8]) -> Reply {
        if frame.len() < 14 || frame[12..14] != ETHERTYPE.to_be_bytes() {
            return Reply::NotControl;
        }
        let resp = match CtrlFrame::parse(frame) {
            Ok(r) if r.kind == KIND_RESPONSE => r,
            _ => {
                self.stats.corrupt += 1;
                return Reply::Corrupt;
            }
        };
        let Some(flight) = &self.flight else {
            self.stats.stale += 1;
            return Reply::Stale(resp.seq);
        };
        if resp.seq != flight.seq {
            self.stats.stale += 1;
            return Reply::Stale(resp.seq);
        }
        // Cannot fail: our own encoding.
        let Ok(req) = CtrlFrame::parse(&flight.frame[..flight.len]) else {
            self.stats.corrupt += 1;
            return Reply::Corrupt;
        };
        let matches = resp.dst == self.mcu
            && resp.src == self.fpga
            && resp.op_count() == req.op_count()
            && req.ops().zip(resp.ops()).all(|(q, r)| match (q, r) {
                (Op::Write { addr: a, value: v }, Op::Write { addr: b, value: w }) => {
                    a == b && v == w
                }
                (Op::Read { addr: a, .. }, Op::Read { addr: b, .. }) => a == b,
                _ => false,
            });
        if !matches {
            self.stats.corrupt += 1;
            return Reply::Corrupt;
        }
        self.results.clear();
        for op in resp.ops() {
            let _ = self.results.push(op);
        }
        let probe = flight.probe;
        self.flight = None;
        self.stats.responses += 1;
        if probe {
            let read = |i: usize| match self.results.get(i) {
                Some(Op::Read { value, .. }) => *value,
                _ => FAILED_READ,
            };
            let (id, version) = (read(0), read(1));
            if id == regmap::ID && version == regmap::VERSION {
                self.probed = true;
            } else {
                // Not our register map: nothing may be written to it. The batch fails,
                // and the next exchange probes again.
                self.batch.clear();
                self.results.clear();
                self.stats.failures += 1;
                self.fail(CtrlBusError::WrongFpga { id, version });
            }
        }
        Reply::Done
    }

    /// Advances time: whether to wait, send again or give up.
    pub fn poll(&mut self, now_us: u64) -> Action {
        let timing = self.timing;
        let Some(flight) = &mut self.flight else {
            return Action::Idle;
        };
        if now_us.saturating_sub(flight.sent_at) < timing.timeout_us {
            return Action::Wait;
        }
        if flight.attempts < timing.attempts {
            flight.attempts += 1;
            flight.sent_at = now_us;
            self.stats.retransmissions += 1;
            return Action::Resend;
        }
        let e = CtrlBusError::NoResponse {
            seq: flight.seq,
            attempts: flight.attempts,
        };
        if flight.probe {
            // The batch waited for the probe: it fails with it (else a dead link would be
            // probed forever).
            self.batch.clear();
        }
        self.flight = None;
        self.results.clear();
        self.stats.failures += 1;
        self.fail(e);
        Action::Failed(e)
    }

    /// Restarts the clock of the request in flight (its transmission was delayed).
    pub fn sent(&mut self, now_us: u64) {
        if let Some(f) = &mut self.flight {
            f.sent_at = now_us;
        }
    }

    /// Fails the request in flight with `error` (the MAC would not send it).
    pub fn abort(&mut self, error: CtrlBusError) {
        if let Some(f) = self.flight.take() {
            if f.probe {
                self.batch.clear();
            }
            self.results.clear();
            self.stats.failures += 1;
            self.fail(error);
        }
    }

    fn fail(&mut self, e: CtrlBusError) {
        warn!("{}", e);
        self.last_error = Some(e);
    }

    /// The ops of the last accepted response (reads carry their values); empty after a
    /// failure.
    pub fn results(&self) -> &[Op] {
        &self.results
    }

    /// The value the last response carries for its last op, a read
    /// ([`FAILED_READ`] if the exchange failed).
    pub fn last_read(&self) -> u32 {
        match self.results.last() {
            Some(Op::Read { value, .. }) => *value,
            _ => FAILED_READ,
        }
    }

    /// The last error (cleared by [`CtrlCore::take_error`]).
    pub fn last_error(&self) -> Option<CtrlBusError> {
        self.last_error
    }

    /// Takes the last error.
    pub fn take_error(&mut self) -> Option<CtrlBusError> {
        self.last_error.take()
    }

    /// Whether the boot probe has been answered.
    pub fn probed(&self) -> bool {
        self.probed
    }

    /// Timing in use.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Whether `frame` is a control frame (by EtherType).
    pub fn is_control(frame: &[u8]) -> bool {
        frame.len() >= 14 && frame[12..14] == ETHERTYPE.to_be_bytes()
    }
}

#[cfg(feature = "net")]
mod port;
#[cfg(feature = "net")]
pub use port::{CtrlBuffers, CtrlDevice, CtrlPort, CtrlRegisterBus, FRAME_BUF, PortStats};

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use fulcrum_model::ctrl_frame::Responder;
    use fulcrum_model::regmap::RegisterBus;

    const MCU: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const T: Timing = Timing {
        timeout_us: 1000,
        attempts: 3,
    };

    /// The FPGA's register file as the bridge sees it: plain words, `ID`/`VERSION` as the
    /// map, and a strobe at `TABLE_WRITE` that counts (not idempotent).
    struct Regs {
        words: [u32; 0x80],
        strobes: u32,
    }
    impl RegisterBus for Regs {
        fn write32(&mut self, a: u16, v: u32) {
            if a == addr::TABLE_WRITE {
                self.strobes += 1;
            }
            self.words[usize::from(a) & 0x7F] = v;
        }
        fn read32(&mut self, a: u16) -> u32 {
            match a {
                addr::ID => regmap::ID,
                addr::VERSION => regmap::VERSION,
                addr::TABLE_WRITE => self.strobes,
                _ => self.words[usize::from(a) & 0x7F],
            }
        }
    }

    struct Fpga {
        regs: Regs,
        bridge: Responder,
    }
    impl Fpga {
        fn new() -> Self {
            Fpga {
                regs: Regs {
                    words: [0; 0x80],
                    strobes: 0,
                },
                bridge: Responder::new(),
            }
        }
        fn answer(&mut self, req: &[u8]) -> heapless::Vec<u8, FRAME_MAX> {
            let mut out = [0u8; FRAME_MAX];
            let n = self.bridge.respond(req, &mut self.regs, &mut out).unwrap();
            heapless::Vec::from_slice(&out[..n]).unwrap()
        }
    }

    fn core() -> CtrlCore {
        CtrlCore::new(FPGA_MAC, MCU, 100, T)
    }

    fn w(a: u16, v: u32) -> Op {
        Op::Write { addr: a, value: v }
    }
    fn r(a: u16) -> Op {
        Op::Read { addr: a, value: 0 }
    }

    /// Runs the boot probe to completion.
    fn probed(c: &mut CtrlCore, fpga: &mut Fpga) {
        c.push(w(0x10, 1)).unwrap();
        let req: heapless::Vec<u8, FRAME_MAX> =
            heapless::Vec::from_slice(c.start(0).unwrap()).unwrap();
        let f = CtrlFrame::parse(&req).unwrap();
        assert_eq!(f.ops().collect::<heapless::Vec<Op, 4>>(), [r(0), r(1)]);
        assert_eq!(c.batched(), 1, "the batch waits for the probe");
        let resp = fpga.answer(&req);
        assert_eq!(c.on_frame(&resp), Reply::Done);
        assert!(c.probed() && c.last_error().is_none());
    }

    #[test]
    fn the_first_request_is_a_read_only_probe_then_writes_go_out_batched() {
        let mut c = core();
        let mut fpga = Fpga::new();
        probed(&mut c, &mut fpga);
        for i in 1..MAX_OPS as u32 {
            c.push(w(0x10 + (i as u16 % 8), i)).unwrap();
        }
        assert_eq!(c.push(w(0x11, 0)), Err(w(0x11, 0)), "a batch holds 32 ops");
        let req: heapless::Vec<u8, FRAME_MAX> =
            heapless::Vec::from_slice(c.start(10).unwrap()).unwrap();
        assert_eq!(req.len(), FRAME_MAX);
        assert_eq!(CtrlFrame::parse(&req).unwrap().seq, 101);
        assert_eq!(c.on_frame(&fpga.answer(&req)), Reply::Done);
        assert_eq!(fpga.regs.words[0x17], 31);
        assert_eq!(
            (c.stats.requests, c.stats.writes, c.stats.reads),
            (2, 32, 2)
        );
    }

    #[test]
    fn a_wrong_fpga_is_a_clear_error() {
        let mut c = core();
        c.push(w(0x10, 1)).unwrap();
        let req: heapless::Vec<u8, FRAME_MAX> =
            heapless::Vec::from_slice(c.start(0).unwrap()).unwrap();
        let mut regs = Regs {
            words: [7; 0x80],
            strobes: 0,
        };
        struct Other<'a>(&'a mut Regs);
        impl RegisterBus for Other<'_> {
            fn write32(&mut self, a: u16, v: u32) {
                self.0.write32(a, v)
            }
            fn read32(&mut self, a: u16) -> u32 {
                if a == addr::ID { 0x1234_5678 } else { 2 }
            }
        }
        let mut out = [0u8; FRAME_MAX];
        let n = ctrl_frame::respond(&req, &mut Other(&mut regs), &mut out).unwrap();
        assert_eq!(c.on_frame(&out[..n]), Reply::Done);
        let e = c.last_error().unwrap();
        assert_eq!(
            e,
            CtrlBusError::WrongFpga {
                id: 0x1234_5678,
                version: 2
            }
        );
        assert!(std::format!("{e}").contains("0x12345678 version 2 is not Fulcrum's register map"));
        // nothing is written to a foreign register map: the batch failed, and the next
        // exchange starts with the probe again
        assert_eq!(regs.words[0x10], 7);
        assert!(!c.has_work() && !c.probed());
        assert_eq!(c.last_read(), FAILED_READ);
        c.push(w(0x10, 1)).unwrap();
        let again = CtrlFrame::parse(c.start(1).unwrap()).unwrap();
        assert_eq!(again.ops().next(), Some(r(addr::ID)));
    }

    #[test]
    fn a_lost_request_is_sent_again_and_a_lost_response_does_not_repeat_writes() {
        let mut c = core();
        let mut fpga = Fpga::new();
        probed(&mut c, &mut fpga);
        c.push(w(addr::TABLE_WRITE, 0)).unwrap();
        c.push(r(addr::TABLE_WRITE)).unwrap();
        let req: heapless::Vec<u8, FRAME_MAX> =
            heapless::Vec::from_slice(c.start(1000).unwrap()).unwrap();
        // lost on the way to the FPGA
        assert_eq!(c.poll(1999), Action::Wait);
        assert_eq!(c.poll(2000), Action::Resend);
        assert_eq!(c.frame().unwrap(), &req[..], "the same request, same seq");
        // executed, but the response is lost
        let _lost = fpga.answer(c.frame().unwrap());
        assert_eq!(fpga.regs.strobes, 1);
        assert_eq!(c.poll(3000), Action::Resend);
        let resp = fpga.answer(c.frame().unwrap());
        assert_eq!(
            fpga.regs.strobes, 1,
            "the retransmission's write is skipped"
        );
        assert_eq!(c.on_frame(&resp), Reply::Done);
        assert_eq!(c.last_read(), 1);
        assert_eq!(c.poll(5000), Action::Idle);
        assert_eq!(c.stats.retransmissions, 2);
        assert_eq!(fpga.bridge.retransmissions, 1);
    }

    #[test]
    fn duplicate_and_reordered_responses_are_ignored() {
        let mut c = core();
        let mut fpga = Fpga::new();
        probed(&mut c, &mut fpga);
        c.push(w(0x12, 0xAA)).unwrap();
        c.push(r(0x12)).unwrap();
        let first = fpga.answer(c.start(0).unwrap());
        assert_eq!(c.on_frame(&first), Reply::Done);
        assert_eq!(c.last_read(), 0xAA);
        // the same response again (a duplicate): stale, nothing in flight
        assert_eq!(c.on_frame(&first), Reply::Stale(101));
        c.push(w(0x12, 0xBB)).unwrap();
        c.push(r(0x12)).unwrap();
        let second_req: heapless::Vec<u8, FRAME_MAX> =
            heapless::Vec::from_slice(c.start(10).unwrap()).unwrap();
        // the old response arrives late, after the new request went out
        assert_eq!(c.on_frame(&first), Reply::Stale(101));
        assert!(c.in_flight());
        assert_eq!(c.on_frame(&fpga.answer(&second_req)), Reply::Done);
        assert_eq!(c.last_read(), 0xBB);
        assert_eq!(c.stats.stale, 2);
    }

    #[test]
    fn corrupt_responses_are_ignored_and_the_request_is_retried() {
        let mut c = core();
        let mut fpga = Fpga::new();
        probed(&mut c, &mut fpga);
        c.push(w(0x13, 0x0102_0304)).unwrap();
        c.push(r(0x13)).unwrap();
        let req: heapless::Vec<u8, FRAME_MAX> =
            heapless::Vec::from_slice(c.start(0).unwrap()).unwrap();
        let good = fpga.answer(&req);
        // every single-bit corruption of the good response: never accepted with a
        // different meaning (a flipped read value is indistinguishable without a checksum,
        // which the Ethernet FCS provides on the wire; so only positions outside the read
        // value are checked strictly)
        // (the batch: the write queued behind the probe, the write, the read)
        let read_value = 20 + 16 + 4..20 + 16 + 8;
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                let mut probe = core();
                probe.probed = true;
                probe.next_seq = CtrlFrame::parse(&req).unwrap().seq;
                probe.push(w(0x10, 1)).unwrap();
                probe.push(w(0x13, 0x0102_0304)).unwrap();
                probe.push(r(0x13)).unwrap();
                probe.start(0).unwrap();
                let got = probe.on_frame(&bad);
                // reserved bytes (header byte 5, byte 1 of each op) carry no meaning
                let reserved = at == 19 || (at > 20 && (at - 20) % 8 == 1);
                if read_value.contains(&at) || reserved {
                    assert_eq!(got, Reply::Done, "byte {at} bit {bit}");
                } else if at == 12 || at == 13 {
                    assert_eq!(got, Reply::NotControl, "byte {at}");
                } else {
                    assert_ne!(got, Reply::Done, "byte {at} bit {bit} accepted");
                    assert!(probe.in_flight());
                }
            }
        }
        // truncated and garbage frames
        for cut in 0..good.len() {
            let _ = c.on_frame(&good[..cut]);
        }
        assert!(c.in_flight(), "still waiting for a good response");
        assert_eq!(c.poll(1000), Action::Resend);
        assert_eq!(c.on_frame(&fpga.answer(c.frame().unwrap())), Reply::Done);
        assert_eq!(c.last_read(), 0x0102_0304);
        assert_eq!(fpga.regs.words[0x13], 0x0102_0304);
        assert!(c.stats.corrupt > 0);
    }

    #[test]
    fn no_response_fails_with_a_clear_error_after_all_attempts() {
        let mut c = core();
        let mut fpga = Fpga::new();
        probed(&mut c, &mut fpga);
        c.push(r(0x12)).unwrap();
        c.start(0).unwrap();
        assert_eq!(c.poll(1000), Action::Resend);
        assert_eq!(c.poll(2000), Action::Resend);
        let e = CtrlBusError::NoResponse {
            seq: 101,
            attempts: 3,
        };
        assert_eq!(c.poll(3000), Action::Failed(e));
        assert_eq!(c.last_read(), FAILED_READ);
        assert!(!c.in_flight());
        assert_eq!(c.stats.failures, 1);
        assert_eq!(c.take_error(), Some(e));
        assert_eq!(
            std::format!("{e}"),
            "FPGA control frames: no valid response to request 101 after 3 transmissions"
        );
        // the next exchange works (a new sequence number: the bridge executes it)
        c.push(w(0x12, 5)).unwrap();
        c.push(r(0x12)).unwrap();
        let resp = fpga.answer(c.start(4000).unwrap());
        assert_eq!(c.on_frame(&resp), Reply::Done);
        assert_eq!(c.last_read(), 5);
    }

    #[test]
    fn frames_of_other_ethertypes_are_not_the_bus_s() {
        let mut c = core();
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(c.on_frame(&frame), Reply::NotControl);
        assert_eq!(c.on_frame(&[]), Reply::NotControl);
        assert!(!CtrlCore::is_control(&frame));
    }
}
