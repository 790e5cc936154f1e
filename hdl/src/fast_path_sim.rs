//! A direct-stepping driver of [`FastPath`]: frames in on both ports, register accesses
//! on the parallel bus, and everything that comes out (frames per port, verdicts,
//! commits) as one log of [`Event`]s in cycle order.
//!
//! The equivalence tests and `fulcrum pcap --engine hdl` use it: they program the fast
//! path through [`FastPathSim`]'s [`RegisterBus`] (the same writes `ControlPlane` makes
//! to the model's `RegisterFile`) and replay the log against `Pipeline::process`.

use std::collections::VecDeque;

use fulcrum_model::counters::{DropReason, PuntReason};
use fulcrum_model::pipeline::{Action, Port, Verdict};
use fulcrum_model::regmap::{RegisterBus, addr};
use rust_hdl::prelude::*;

use crate::pipeline::{COUNTER_LATCH_CYCLES, FastPath, action};
use crate::regs::BUS_READ_LATENCY;
use crate::sim::{Rng, Traffic, settle};
use crate::stream::{ByteStreamMaster, ByteStreamSlave};

/// Something that happened at the fast path's outputs, or a bus write, in cycle order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A frame started on a receive port (the arbiter took its first byte): frames are
    /// processed in this order.
    Ingress(Port),
    /// A register write (the model must see it at the same point).
    Write(u16, u32),
    /// A commit took effect.
    Commit,
    /// A verdict (its output frame follows on the egress port).
    Verdict(Verdict),
    /// A whole frame left on a transmit port.
    Frame(Port, Vec<u8>),
}

/// Decodes the verdict side channel into the model's [`Verdict`]; `None` for a code the
/// model has no name for (a hardware bug the tests catch).
pub fn decode_verdict<const A: usize>(uut: &FastPath<A>) -> Option<Verdict> {
    verdict_from_codes(
        uut.verdict_action.val().index() as u64,
        uut.verdict_reason.val().index(),
        uut.verdict_service.val().index() as u8,
        uut.verdict_backend.val().index() as u16,
        uut.verdict_new_flow.val(),
        uut.verdict_hash.val().index() as u32,
        uut.verdict_len.val().index(),
    )
}

/// The model's [`Verdict`] of the `verdict_*` outputs' values (also read from the
/// Verilog co-simulation); `None` for a code the model has no name for.
pub fn verdict_from_codes(
    code: u64,
    reason: usize,
    service: u8,
    backend: u16,
    new_flow: bool,
    hash: u32,
    len: usize,
) -> Option<Verdict> {
    let (action, egress) = match code {
        action::TO_BACKEND => (
            Action::ToBackend {
                service,
                backend,
                new_flow,
            },
            Some(Port::Network),
        ),
        action::TO_CLIENT => (Action::ToClient { service, backend }, Some(Port::Network)),
        action::FROM_MCU => (Action::FromMcu, Some(Port::Network)),
        action::PUNT => (Action::Punt(*PuntReason::ALL.get(reason)?), Some(Port::Mcu)),
        action::DROP => (Action::Drop(*DropReason::ALL.get(reason)?), None),
        _ => return None,
    };
    Some(Verdict {
        action,
        egress,
        len,
        hash,
    })
}

/// Frames waiting on one receive port.
#[derive(Debug, Default)]
struct Source {
    frames: VecDeque<Vec<u8>>,
    byte: usize,
    offered: bool,
}

impl Source {
    fn drive(&mut self, port: &mut ByteStreamSlave, traffic: Traffic, rng: &mut Rng) {
        self.offered = !self.frames.is_empty() && !rng.chance(traffic.idle_permille);
        port.tvalid.next = self.offered;
        port.tkeep.next = 1.into();
        port.tuser.next = false;
        if let (true, Some(frame)) = (self.offered, self.frames.front()) {
            port.tdata.next = u64::from(frame[self.byte]).into();
            port.tlast.next = self.byte + 1 == frame.len();
        } else {
            port.tdata.next = u64::from(rng.byte()).into();
            port.tlast.next = rng.chance(500);
        }
    }

    /// Whether the beat taken started a frame.
    fn advance(&mut self) -> bool {
        let first = self.byte == 0;
        self.byte += 1;
        if self.frames.front().is_some_and(|f| self.byte == f.len()) {
            self.frames.pop_front();
            self.byte = 0;
        }
        first
    }
}

/// Bytes collected on one transmit port.
#[derive(Debug, Default)]
struct Sink {
    frame: Vec<u8>,
    ready: bool,
}

impl Sink {
    fn drive(&mut self, port: &mut ByteStreamMaster, traffic: Traffic, rng: &mut Rng) {
        self.ready = traffic.ready(rng);
        port.tready.next = self.ready;
    }

    fn sample(&mut self, port: &ByteStreamMaster) -> Option<Vec<u8>> {
        if !(self.ready && port.tvalid.val()) {
            return None;
        }
        self.frame.push(port.tdata.val().index() as u8);
        port.tlast.val().then(|| std::mem::take(&mut self.frame))
    }
}

/// A [`FastPath`] with `2^A` flow-table sets under a direct-stepping testbench.
pub struct FastPathSim<const A: usize> {
    uut: Box<FastPath<A>>,
    rng: Rng,
    traffic: Traffic,
    net: Source,
    mcu: Source,
    net_out: Sink,
    mcu_out: Sink,
    events: Vec<Event>,
    in_flight: usize,
    cycles: u64,
    now_ms: u32,
}

impl<const A: usize> std::fmt::Debug for FastPathSim<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPathSim")
            .field("cycles", &self.cycles)
            .field("in_flight", &self.in_flight)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl<const A: usize> FastPathSim<A> {
    /// A freshly reset fast path; `traffic` sets idle cycles on the inputs and
    /// back-pressure on the outputs, drawn from `seed`.
    pub fn new(traffic: Traffic, seed: u64) -> Self {
        let mut uut = Box::new(FastPath::<A>::new());
        uut.connect_all();
        let mut sim = FastPathSim {
            uut,
            rng: Rng::new(seed),
            traffic,
            net: Source::default(),
            mcu: Source::default(),
            net_out: Sink::default(),
            mcu_out: Sink::default(),
            events: Vec::new(),
            in_flight: 0,
            cycles: 0,
            now_ms: 0,
        };
        sim.uut.clock.next = Clock::from(false);
        settle(&mut *sim.uut);
        // The reset commit (the register block's reset settings become active), after the
        // forward path has cleared its rings.
        sim.run_until_idle(1000);
        assert!(sim.wait_commit(100_000), "the reset commit never completes");
        sim
    }

    /// Runs until `STATUS.0` (a commit pending or being applied) reads 0, at most
    /// `limit` cycles; false if it never does. Table writes must wait for this.
    pub fn wait_commit(&mut self, limit: u64) -> bool {
        let start = self.cycles;
        while self.cycles - start < limit {
            if self.read32(addr::STATUS) & 1 == 0 {
                return true;
            }
            self.run(15);
        }
        false
    }

    /// Clock cycles run so far.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Sets `now_ms` (the model's clock, truncated to 32 bits as the model does).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms as u32;
    }

    /// Queues a frame on `port`'s receive side (empty frames are ignored: a stream has
    /// no empty frames).
    pub fn push(&mut self, port: Port, frame: Vec<u8>) {
        if frame.is_empty() {
            return;
        }
        self.in_flight += 1;
        match port {
            Port::Network => self.net.frames.push_back(frame),
            Port::Mcu => self.mcu.frames.push_back(frame),
        }
    }

    /// Takes the log collected so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// One clock cycle with the bus doing `write` and/or `read` (address, data).
    fn cycle(&mut self, write: Option<(u16, u32)>, read: Option<u16>) {
        let uut = &mut *self.uut;
        // The falling edge goes with this cycle's inputs (one settle fewer per cycle).
        uut.clock.next = Clock::from(false);
        uut.now_ms.next = u64::from(self.now_ms).into();
        uut.bus_we.next = write.is_some();
        uut.bus_re.next = read.is_some();
        let a = write.map(|w| w.0).or(read).unwrap_or(0);
        uut.bus_addr.next = u64::from(a).into();
        uut.bus_wdata.next = u64::from(write.map_or(0, |w| w.1)).into();
        self.net.drive(&mut uut.net_rx, self.traffic, &mut self.rng);
        self.mcu.drive(&mut uut.mcu_rx, self.traffic, &mut self.rng);
        self.net_out
            .drive(&mut uut.net_tx, self.traffic, &mut self.rng);
        self.mcu_out
            .drive(&mut uut.mcu_tx, self.traffic, &mut self.rng);
        settle(uut);
        if let Some((a, v)) = write {
            self.events.push(Event::Write(a, v));
        }
        let net_taken = self.net.offered && uut.net_rx.tready.val();
        let mcu_taken = self.mcu.offered && uut.mcu_rx.tready.val();
        if uut.verdict_commit.val() {
            self.events.push(Event::Commit);
        }
        if uut.verdict_valid.val() {
            match decode_verdict(uut) {
                Some(v) => self.events.push(Event::Verdict(v)),
                None => panic!(
                    "verdict code {} reason {} names no model action",
                    uut.verdict_action.val().index(),
                    uut.verdict_reason.val().index()
                ),
            }
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if let Some(f) = self.net_out.sample(&uut.net_tx) {
            self.events.push(Event::Frame(Port::Network, f));
        }
        if let Some(f) = self.mcu_out.sample(&uut.mcu_tx) {
            self.events.push(Event::Frame(Port::Mcu, f));
        }
        uut.clock.next = Clock::from(true);
        settle(uut);
        self.cycles += 1;
        if net_taken && self.net.advance() {
            self.events.push(Event::Ingress(Port::Network));
        }
        if mcu_taken && self.mcu.advance() {
            self.events.push(Event::Ingress(Port::Mcu));
        }
    }

    /// Runs `n` cycles with an idle bus.
    pub fn run(&mut self, n: usize) {
        for _ in 0..n {
            self.cycle(None, None);
        }
    }

    /// Whether every queued frame has its verdict and every output frame has left.
    fn idle(&self) -> bool {
        self.in_flight == 0
            && self.net.frames.is_empty()
            && self.mcu.frames.is_empty()
            && !self.uut.net_tx.tvalid.val()
            && !self.uut.mcu_tx.tvalid.val()
    }

    /// Runs until every queued frame is through (plus a few cycles for the last
    /// counter updates and output bytes). Returns false after `limit` cycles.
    pub fn run_until_idle(&mut self, limit: u64) -> bool {
        let start = self.cycles;
        while self.cycles - start < limit {
            self.cycle(None, None);
            if self.idle() {
                // The counter updates of the last frame, and bytes still in registers.
                self.run(64);
                if self.idle() {
                    return true;
                }
            }
        }
        false
    }

    /// The counter at `index` (`regmap::counter`), through `COUNTER_SELECT`/`HI`/`LO`.
    pub fn counter(&mut self, index: u32) -> u64 {
        self.write32(addr::COUNTER_SELECT, index);
        self.run(COUNTER_LATCH_CYCLES);
        self.read_latched(index)
    }

    /// [`counter`](Self::counter), reading as soon as the latch is done instead of after
    /// the worst case (still failing past `COUNTER_LATCH_CYCLES`): for the full read of
    /// every counter at the end of a run, where the cycles saved shift nothing after it
    /// (about 45 of 51 per counter when idle).
    pub fn counter_when_latched(&mut self, index: u32) -> u64 {
        self.write32(addr::COUNTER_SELECT, index);
        let mut waited = 0;
        while !self.uut.counter_latched() && waited < COUNTER_LATCH_CYCLES {
            self.run(1);
            waited += 1;
        }
        self.read_latched(index)
    }

    /// The latched counter through `COUNTER_HI`/`LO`, once the latch must be done.
    fn read_latched(&mut self, index: u32) -> u64 {
        assert!(
            self.uut.counter_latched(),
            "counter {index:#x} not latched {COUNTER_LATCH_CYCLES} cycles after COUNTER_SELECT"
        );
        let hi = self.read32(addr::COUNTER_HI);
        let lo = self.read32(addr::COUNTER_LO);
        (u64::from(hi) << 32) | u64::from(lo)
    }
}

impl<const A: usize> RegisterBus for FastPathSim<A> {
    fn write32(&mut self, addr: u16, value: u32) {
        self.cycle(Some((addr, value)), None);
    }

    fn read32(&mut self, addr: u16) -> u32 {
        self.cycle(None, Some(addr));
        // `bus_rdata` holds the value from the second cycle after the read
        // (`BUS_READ_LATENCY`).
        for _ in 1..BUS_READ_LATENCY {
            self.cycle(None, None);
        }
        settle(&mut *self.uut);
        self.uut.bus_rdata.val().index() as u32
    }
}
