//! What the `FastPath` equivalence tests share: the model beside the hardware (replaying
//! the hardware's log against `Pipeline::process` behind the model's `RegisterFile`), the
//! seeded frame and configuration generators, and the traffic loops, written once over
//! [`Dut`] so the rust-hdl simulation (`FastPathSim`, checked as it runs) and the
//! Verilated Verilog (`VerilatedFastPath`, a script run at the end) take the same
//! frames, register writes and checks.
//!
//! A workload is a [`Workload`]: the L7-only settings, or a [`FwdConfig`] (the modes and
//! algorithms whose services the configuration writes). New modes are new entries there.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use fulcrum_hdl::fast_path_sim::{Event, FastPathSim};
use fulcrum_hdl::forward::STICKY_SETS;
use fulcrum_hdl::sim::{Rng, Traffic};
use fulcrum_hdl::vectors::{fix_ip_checksum, random_frame, valid_frame};
use fulcrum_hdl::verilator::{LogItem, VerilatedFastPath};
use fulcrum_model::config::{Algorithm, Mode, Protocol};
use fulcrum_model::counters::{DropReason, PuntReason};
use fulcrum_model::flow::{FlowEntry, StickyEntry};
use fulcrum_model::pipeline::{Action, OUT_HEADROOM, Pipeline, Port, Storage, snat_endpoint};
use fulcrum_model::regmap::{
    CounterSource, RegisterBus, RegisterFile, RegisterWriter, addr, counter,
};
use fulcrum_model::tables::{
    BACKEND_SLOTS, BackendEntry, BackendState, SERVICE_SLOTS, ServiceEntry, TableWriter,
};

/// The model beside the hardware, fed the hardware's event log.
pub struct Reference<'a> {
    pub regs: RegisterFile<Pipeline<'a>>,
    queued: [VecDeque<Vec<u8>>; 2],
    order: VecDeque<(Port, Vec<u8>)>,
    expected: [VecDeque<Vec<u8>>; 2],
    pub now_ms: u64,
    pub verdicts: usize,
    pub forwarded: usize,
    pub new_flows: usize,
    /// New flows by the algorithm of their service (`Algorithm` debug name).
    pub new_by_algorithm: BTreeMap<String, usize>,
    /// Replies from backends rewritten back to the client (NAT return path).
    pub returned: usize,
    /// New flows of sticky services, and those whose client's persistence entry was
    /// used (kept its backend and generation, refreshed).
    pub sticky_new: usize,
    pub sticky_kept: usize,
    pub frames_checked: usize,
    pub counters_checked: usize,
    pub classes: BTreeMap<String, usize>,
    /// Frames the hardware took (`Ingress`).
    pub taken: usize,
}

pub fn port_index(p: Port) -> usize {
    match p {
        Port::Network => 0,
        Port::Mcu => 1,
    }
}

impl<'a> Reference<'a> {
    pub fn new(pipeline: Pipeline<'a>) -> Self {
        Reference {
            regs: RegisterFile::new(pipeline),
            queued: Default::default(),
            order: VecDeque::new(),
            expected: Default::default(),
            now_ms: 0,
            verdicts: 0,
            forwarded: 0,
            new_flows: 0,
            new_by_algorithm: Default::default(),
            returned: 0,
            sticky_new: 0,
            sticky_kept: 0,
            frames_checked: 0,
            counters_checked: 0,
            classes: Default::default(),
            taken: 0,
        }
    }

    pub fn push(&mut self, port: Port, frame: &[u8]) {
        if !frame.is_empty() {
            self.queued[port_index(port)].push_back(frame.to_vec());
        }
    }

    pub fn replay(&mut self, events: Vec<Event>) {
        for e in events {
            self.event(e);
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Write(a, v) if a == addr::CONTROL => {
                // Takes effect at the hardware's `Commit`, between two frames.
                let _ = v;
            }
            Event::Write(a, v) => self.regs.write32(a, v),
            Event::Commit => self.regs.write32(addr::CONTROL, 1),
            Event::Ingress(p) => {
                let f = self.queued[port_index(p)]
                    .pop_front()
                    .expect("the hardware took a frame nobody sent");
                self.order.push_back((p, f));
                self.taken += 1;
            }
            Event::Verdict(got) => {
                let (port, frame) = self.order.pop_front().expect("a verdict without a frame");
                let mut out = vec![0u8; frame.len() + OUT_HEADROOM];
                let before: Vec<StickyEntry> = self.regs.target().sticky_table().slots().to_vec();
                let want = self
                    .regs
                    .target()
                    .process(self.now_ms, &frame, port, &mut out);
                assert_eq!(
                    got, want,
                    "verdict {} differs; frame from {port:?}: {frame:02x?}",
                    self.verdicts
                );
                // Forwarded and returned frames by their service's mode.
                let model: &Pipeline<'_> = self.regs.target();
                let mode = |s: u8| model.service(usize::from(s)).map_or("?", |e| e.mode.name());
                let class = match want.action {
                    Action::ToBackend { service, .. } => format!("to_backend {}", mode(service)),
                    Action::ToClient { service, .. } => format!("to_client {}", mode(service)),
                    Action::Punt(r) => format!("punt {}", r.name()),
                    Action::Drop(r) => format!("drop {}", r.name()),
                    other => format!("{other:?}"),
                };
                *self.classes.entry(class).or_default() += 1;
                if let Action::ToClient { .. } = want.action {
                    self.returned += 1;
                }
                if let Action::ToBackend {
                    new_flow,
                    service,
                    backend,
                } = want.action
                {
                    self.forwarded += 1;
                    self.new_flows += usize::from(new_flow);
                    if new_flow {
                        let algorithm = self
                            .regs
                            .target()
                            .service(usize::from(service))
                            .map(|s| format!("{:?}", s.algorithm))
                            .unwrap_or_default();
                        *self.new_by_algorithm.entry(algorithm).or_default() += 1;
                        let model: &Pipeline<'_> = self.regs.target();
                        let client = fulcrum_model::wire::parse(&frame)
                            .ok()
                            .and_then(|h| h.ipv4().map(|ip| ip.src.octets()));
                        if let Some(client) = client
                            && model
                                .service(usize::from(service))
                                .is_some_and(|s| s.sticky)
                        {
                            // Kept: the client's entry was there before with this backend.
                            self.sticky_new += 1;
                            let kept = before.iter().any(|e| {
                                e.valid
                                    && (e.service, e.client, e.backend)
                                        == (service, client, backend)
                            });
                            self.sticky_kept += usize::from(kept);
                        }
                    }
                }
                if let Some(egress) = want.egress {
                    out.truncate(want.len);
                    self.expected[port_index(egress)].push_back(out);
                }
                self.verdicts += 1;
            }
            Event::Frame(p, bytes) => {
                let want = self.expected[port_index(p)]
                    .pop_front()
                    .unwrap_or_else(|| panic!("an unexpected frame on {p:?}: {bytes:02x?}"));
                assert_eq!(bytes, want, "output frame on {p:?} differs");
                self.frames_checked += 1;
            }
        }
    }

    /// One line of the Verilated model's log; `pushed` = the frames pushed before each
    /// checkpoint, in order (the reference holds every frame of the run from the start).
    pub fn apply(&mut self, item: LogItem, pushed: &mut impl Iterator<Item = usize>) {
        match item {
            LogItem::Event(e) => self.event(e),
            LogItem::Now(t) => self.now_ms = t,
            LogItem::Checkpoint => {
                let pushed = pushed.next().expect("a checkpoint nobody asked for");
                assert_eq!(self.taken, pushed, "frames not taken (Verilog)");
                assert!(self.order.is_empty(), "frames without a verdict (Verilog)");
                assert!(
                    self.expected.iter().all(|q| q.is_empty()),
                    "frames the hardware did not send (Verilog)"
                );
            }
            LogItem::Counter(i, v) => {
                assert_eq!(
                    v,
                    self.regs.target().counter(i),
                    "counter {i:#x} differs (Verilog)"
                );
                self.counters_checked += 1;
            }
            LogItem::Hang => panic!("the fast path hangs (Verilog)"),
            LogItem::NoCommit => panic!("a commit never completes (Verilog)"),
        }
    }

    pub fn assert_drained(&self) {
        assert!(self.order.is_empty(), "frames without a verdict");
        assert!(self.queued.iter().all(|q| q.is_empty()), "frames not taken");
        assert!(
            self.expected.iter().all(|q| q.is_empty()),
            "frames the hardware did not send"
        );
    }
}

/// The design under test, as the traffic loops drive it: the rust-hdl simulation is
/// checked as it runs; the Verilated model records a script and is checked in
/// [`Dut::finish`]. Hangs and lost commits fail the test either way.
pub trait Dut: RegisterBus {
    fn push(&mut self, port: Port, frame: &[u8]);
    fn run(&mut self, n: usize);
    fn run_until_idle(&mut self, limit: u64);
    fn wait_commit(&mut self, limit: u64);
    /// Sets `now_ms` on both sides (at this point of the log).
    fn set_now(&mut self, now_ms: u64, reference: &mut Reference<'_>);
    /// Replays what the hardware logged so far (if it has run yet).
    fn sync(&mut self, reference: &mut Reference<'_>);
    /// Every frame so far has its verdict and output: checked here or at replay.
    fn drained(&mut self, reference: &mut Reference<'_>);
    /// The counters (the first 64 indexes, or `all`) read over the bus and compared.
    fn check_counters(&mut self, reference: &mut Reference<'_>, all: bool);
    /// Runs what is left and replays it; the cycles run.
    fn finish(&mut self, reference: &mut Reference<'_>) -> u64;
    /// A model that follows the generator (see [`Guide`]) when the reference does not
    /// follow the hardware as the generator runs.
    fn guide(&mut self) -> Option<&mut Pipeline<'static>> {
        None
    }
}

/// The model fed the frames, writes and times in the order the generator makes them,
/// not in the hardware's interleaving of ports and commits: its flow table is close
/// enough to the one the hardware builds that replies drawn from it mostly find their
/// flow. It only steers the generator of a script run (Verilator); the checks replay the
/// hardware's log against the [`Reference`].
pub struct Guide {
    regs: RegisterFile<Pipeline<'static>>,
    now_ms: u64,
    /// Replies the guide returned to their client.
    returned: usize,
}

impl Default for Guide {
    fn default() -> Self {
        Self::new()
    }
}

impl Guide {
    pub fn new() -> Self {
        Guide {
            regs: RegisterFile::new(model_pipeline()),
            now_ms: 0,
            returned: 0,
        }
    }

    fn push(&mut self, port: Port, frame: &[u8]) {
        let mut out = vec![0u8; frame.len() + OUT_HEADROOM];
        let v = self
            .regs
            .target()
            .process(self.now_ms, frame, port, &mut out);
        if let Action::ToClient { .. } = v.action {
            self.returned += 1;
        }
    }
}

impl Dut for FastPathSim<A> {
    fn push(&mut self, port: Port, frame: &[u8]) {
        FastPathSim::push(self, port, frame.to_vec());
    }
    fn run(&mut self, n: usize) {
        FastPathSim::run(self, n);
    }
    fn run_until_idle(&mut self, limit: u64) {
        assert!(
            FastPathSim::run_until_idle(self, limit),
            "the fast path hangs"
        );
    }
    fn wait_commit(&mut self, limit: u64) {
        assert!(
            FastPathSim::wait_commit(self, limit),
            "a commit never completes"
        );
    }
    fn set_now(&mut self, now_ms: u64, reference: &mut Reference<'_>) {
        FastPathSim::set_now(self, now_ms);
        reference.now_ms = now_ms;
    }
    fn sync(&mut self, reference: &mut Reference<'_>) {
        reference.replay(self.take_events());
    }
    fn drained(&mut self, reference: &mut Reference<'_>) {
        self.sync(reference);
        reference.assert_drained();
    }
    fn check_counters(&mut self, reference: &mut Reference<'_>, all: bool) {
        for (n, i) in counter_indexes().into_iter().enumerate() {
            if !all && n >= 64 {
                break;
            }
            // The full read comes at the end of a run: no traffic after it to shift.
            let value = if all {
                self.counter_when_latched(i)
            } else {
                self.counter(i)
            };
            assert_eq!(
                value,
                reference.regs.target().counter(i),
                "counter {i:#x} differs"
            );
            reference.counters_checked += 1;
        }
        // The COUNTER_SELECT writes are not the model's business.
        self.take_events();
    }
    fn finish(&mut self, reference: &mut Reference<'_>) -> u64 {
        self.sync(reference);
        self.cycles()
    }
}

/// `FastPath<A>` in Verilator: a script, run in a directory of its own at the end.
pub struct Verilated {
    vl: VerilatedFastPath<A>,
    guide: Guide,
    work: PathBuf,
    /// Frames pushed before each checkpoint.
    checkpoints: Vec<usize>,
}

impl Verilated {
    pub fn new(traffic: Traffic, seed: u64) -> Self {
        Verilated {
            vl: VerilatedFastPath::new(traffic, seed),
            guide: Guide::new(),
            work: std::env::temp_dir()
                .join(format!("fulcrum-verilator-{}-{seed:x}", std::process::id())),
            checkpoints: Vec::new(),
        }
    }
}

impl RegisterBus for Verilated {
    fn write32(&mut self, addr: u16, value: u32) {
        self.vl.write32(addr, value);
        self.guide.regs.write32(addr, value);
    }
    fn read32(&mut self, addr: u16) -> u32 {
        self.vl.read32(addr)
    }
}

impl Dut for Verilated {
    fn push(&mut self, port: Port, frame: &[u8]) {
        self.vl.push(port, frame);
        self.guide.push(port, frame);
    }
    fn run(&mut self, n: usize) {
        self.vl.run(n);
    }
    fn run_until_idle(&mut self, limit: u64) {
        self.vl.run_until_idle(limit);
    }
    fn wait_commit(&mut self, limit: u64) {
        self.vl.wait_commit(limit);
    }
    fn set_now(&mut self, now_ms: u64, _: &mut Reference<'_>) {
        self.vl.set_now(now_ms);
        self.guide.now_ms = now_ms;
    }
    fn sync(&mut self, _: &mut Reference<'_>) {}
    fn drained(&mut self, _: &mut Reference<'_>) {
        self.checkpoints.push(self.vl.frames());
        self.vl.checkpoint();
    }
    fn check_counters(&mut self, _: &mut Reference<'_>, all: bool) {
        for (n, i) in counter_indexes().into_iter().enumerate() {
            if !all && n >= 64 {
                break;
            }
            self.vl.read_counter(i);
        }
    }
    fn finish(&mut self, reference: &mut Reference<'_>) -> u64 {
        let log = self
            .vl
            .execute(&self.work)
            .unwrap_or_else(|e| panic!("{e}"));
        let items = log.items.len();
        eprintln!("guide: {} replies returned", self.guide.returned);
        let mut pushed = self.checkpoints.iter().copied();
        for item in log.items {
            reference.apply(item, &mut pushed);
        }
        assert!(pushed.next().is_none(), "checkpoints missing from the log");
        eprintln!(
            "verilator: {} frames, {} cycles, {items} log lines; model {}; run {:.1} s wall ({:.0} cycles/s)",
            self.vl.frames(),
            log.cycles,
            if log.compiled {
                format!("compiled in {:.1} CPU-s", log.compile_seconds)
            } else {
                "cached".to_string()
            },
            log.run_seconds,
            log.cycles as f64 / log.run_seconds.max(1e-6),
        );
        // FULCRUM_VL_KEEP keeps the script and log (to rerun or time the model alone).
        if std::env::var_os("FULCRUM_VL_KEEP").is_none() {
            std::fs::remove_dir_all(&self.work).ok();
        }
        log.cycles
    }
    fn guide(&mut self) -> Option<&mut Pipeline<'static>> {
        Some(self.guide.regs.target())
    }
}

/// What a run checked.
#[derive(Debug)]
pub struct Summary {
    pub frames: usize,
    pub cycles: u64,
    pub forwarded: usize,
    pub new_flows: usize,
    pub frames_checked: usize,
    pub counters_checked: usize,
    pub moved: u64,
    pub expired: u64,
    pub evicted: u64,
    /// New flows of sticky services; of them, those that kept their client's backend.
    pub sticky_new: usize,
    pub sticky_kept: usize,
    pub classes: BTreeMap<String, usize>,
}

/// A run's traffic and configuration.
#[derive(Clone, Copy)]
pub enum Workload {
    /// L7 services only, the full-NAT pool, the appliance's address and hash key
    /// written and committed in the middle of traffic.
    L7,
    /// Forward-path services (see [`FwdConfig`]), time passing between bursts.
    Forward(FwdConfig),
    /// Directed: one round-robin DSR service over three backends, one new flow per commit;
    /// between frames the service entry is rewritten, every other time changed (only its
    /// persistence timeout, unused without persistence), so the model's `commit_banks`
    /// resets the cursor (or keeps it when the entry is equal) although the member list
    /// never changes.
    EntryReset,
}

/// The model pipeline with the hardware's flow-table geometry (`2^A` sets × `WAYS`), its
/// persistence table (`STICKY_SETS` × 1) and ring stride, on storage leaked for the test's lifetime.
pub fn model_pipeline() -> Pipeline<'static> {
    fn leak<T: Clone>(value: T, n: usize) -> &'static mut [T] {
        Box::leak(vec![value; n].into_boxed_slice())
    }
    Pipeline::new(Storage {
        flows: leak(FlowEntry::default(), (1 << A) * WAYS),
        flow_ways: WAYS,
        sticky: leak(StickyEntry::default(), STICKY_SETS),
        sticky_ways: 1,
        ring_active: leak(0u16, SERVICE_SLOTS * RING),
        ring_shadow: leak(0u16, SERVICE_SLOTS * RING),
    })
}

/// Runs `frames` seeded frames of `workload` through `dut` and checks every verdict,
/// output frame and counter against the model.
pub fn run_workload<D: Dut>(dut: &mut D, workload: Workload, seed: u64, frames: usize) -> Summary {
    let mut reference = Reference::new(model_pipeline());
    let guided = dut.guide().is_some();
    match workload {
        Workload::L7 => drive_l7(dut, &mut reference, seed, frames),
        Workload::Forward(config) => drive_forward(dut, &mut reference, seed, frames, config),
        Workload::EntryReset => drive_entry_reset(dut, &mut reference, seed, frames),
    }
    let cycles = dut.finish(&mut reference);
    reference.assert_drained();
    assert_eq!(reference.verdicts, frames, "every frame has a verdict");
    let model = reference.regs.target();
    let summary = Summary {
        frames,
        cycles,
        forwarded: reference.forwarded,
        new_flows: reference.new_flows,
        frames_checked: reference.frames_checked,
        counters_checked: reference.counters_checked,
        moved: model.counters().moved_flows,
        expired: model.counters().expirations,
        evicted: model.counters().evictions,
        sticky_new: reference.sticky_new,
        sticky_kept: reference.sticky_kept,
        classes: reference.classes,
    };
    let returned = reference.returned;
    let by_algorithm = reference.new_by_algorithm;
    eprintln!(
        "{frames} frames ({} to a backend, {} new flows, {} moved, {} expired, {} evicted; {} output frames and {} counter reads compared) in {cycles} cycles",
        summary.forwarded,
        summary.new_flows,
        summary.moved,
        summary.expired,
        summary.evicted,
        summary.frames_checked,
        summary.counters_checked,
    );
    eprintln!("verdicts: {:?}", summary.classes);
    eprintln!("new flows by algorithm: {by_algorithm:?}");
    if summary.sticky_new > 0 {
        eprintln!(
            "persistence: {} new flows of sticky services, {} kept their client's backend",
            summary.sticky_new, summary.sticky_kept
        );
    }
    if let Workload::Forward(config) = workload {
        // The run must exercise the forward path, not only its refusals, with every
        // algorithm it configures.
        assert!(summary.forwarded > frames / 10, "too few frames forwarded");
        assert!(summary.new_flows > 20, "too few flows created");
        for a in config.algorithms {
            let n = by_algorithm.get(&format!("{a:?}")).copied().unwrap_or(0);
            assert!(
                n * config.algorithms.len() * 10 >= summary.new_flows,
                "too few new flows with {a:?} ({n})"
            );
        }
    }
    if let Workload::Forward(FwdConfig { sticky: true, .. }) = workload {
        // Persistence must be exercised both ways: entries made and entries used.
        assert!(
            summary.sticky_new > 20,
            "too few new flows of sticky services"
        );
        assert!(summary.sticky_kept > 5, "too few persistence entries used");
    }
    if let Workload::EntryReset = workload {
        assert_eq!(summary.new_flows, frames, "every frame a new flow");
    }
    if let Workload::Forward(FwdConfig { returns: true, .. }) = workload {
        // Replies drawn from a guide's table find their flow less often: the guide
        // commits at the CONTROL write, the hardware after the frames queued before it,
        // so flows created around commits differ (1 in 150 frames at 5,000 frames, where
        // the guide itself returned 1 in 70; 1 in 12 in the 400-frame rust-hdl runs).
        let least = if guided { frames / 400 } else { frames / 40 };
        assert!(
            returned > least,
            "too few replies returned to clients ({returned})"
        );
    }
    summary
}

fn drive_entry_reset<D: Dut>(dut: &mut D, reference: &mut Reference<'_>, seed: u64, frames: usize) {
    let mut rng = Rng::new(seed);
    dut.sync(reference);
    dut.wait_commit(200_000);
    dut.write32(addr::ADDRESS, u32::from_be_bytes(OWN[0]));
    let service = |timeout: u32| ServiceEntry {
        valid: true,
        vip: Ipv4Addr::from(VIPS[0]),
        protocol: Protocol::Udp,
        port: 53,
        mode: Mode::Dsr,
        algorithm: Algorithm::RoundRobin,
        sticky: false,
        sticky_timeout: timeout,
        gue_port: 6080,
        member_count: 3,
    };
    let mut writer = RegisterWriter::new(&mut *dut);
    for b in 0..3u8 {
        let entry = BackendEntry {
            state: BackendState::Up,
            generation: 0,
            address: [10, 9, 0, b + 1],
            port: 8000,
            mac: [0x02, 0xbe, 0, 0, 1, b],
            weight: 1,
            rtt_us: 0,
        };
        writer.write_backend(u16::from(b), &entry);
        writer.write_member(0, b, u16::from(b));
    }
    writer.write_service(0, &service(0));
    dut.write32(addr::CONTROL, 1);
    for n in 0..frames {
        dut.wait_commit(200_000);
        let flow = Flow {
            protocol: 17,
            src: [172, 16, 1, n as u8],
            src_port: 2000 + n as u16,
            dst: VIPS[0],
            dst_port: 53,
            mac: [0x02, 0, 0, 0, 7, 1],
            tagged: false,
        };
        let f = flow_frame(&mut rng, &flow);
        reference.push(Port::Network, &f);
        dut.push(Port::Network, &f);
        dut.run_until_idle(2_000_000);
        dut.drained(reference);
        // After frames 0 and 1 the same entry (cursor kept), then a new timeout every
        // other frame (cursor reset).
        let mut writer = RegisterWriter::new(&mut *dut);
        writer.write_service(0, &service((n / 2) as u32));
        dut.write32(addr::CONTROL, 1);
    }
    dut.run_until_idle(2_000_000);
    dut.drained(reference);
    dut.check_counters(reference, true);
}

fn drive_l7<D: Dut>(dut: &mut D, reference: &mut Reference<'_>, seed: u64, frames: usize) {
    let mut rng = Rng::new(seed);
    dut.sync(reference);
    write_settings(dut, &mut rng);
    let mut sent = 0;
    while sent < frames {
        let batch = (1 + rng.below(40) as usize).min(frames - sent);
        for _ in 0..batch {
            let port = if rng.chance(150) {
                Port::Mcu
            } else {
                Port::Network
            };
            let f = traffic_frame(&mut rng);
            reference.push(port, &f);
            dut.push(port, &f);
        }
        sent += batch;
        // Settings written and committed while those frames are in flight.
        if rng.chance(200) {
            dut.run(rng.below(300) as usize);
            dut.wait_commit(200_000);
            write_settings(dut, &mut rng);
        }
        if rng.chance(100) {
            dut.run_until_idle(2_000_000);
            dut.drained(reference);
            dut.check_counters(reference, false);
        } else {
            dut.run(rng.below(2000) as usize);
            dut.sync(reference);
        }
    }
    dut.run_until_idle(2_000_000);
    dut.drained(reference);
    dut.check_counters(reference, true);
}

fn drive_forward<D: Dut>(
    dut: &mut D,
    reference: &mut Reference<'_>,
    seed: u64,
    frames: usize,
    config: FwdConfig,
) {
    let mut rng = Rng::new(seed);
    dut.sync(reference);
    // Enough writes that backends, services and rings exist from the start.
    dut.write32(addr::RING_SIZE, 251);
    let mut pool = Pool::default();
    for n in 0..3 {
        dut.wait_commit(200_000);
        write_forward_config(dut, &mut rng, config, n == 0, &mut pool);
    }
    let mut flows: Vec<Flow> = (0..300).map(|_| random_flow(&mut rng)).collect();
    if config.sticky {
        // 12 clients, so that each opens many flows (persistence is per client and
        // service); no draw, the sequence stays.
        for (i, f) in flows.iter_mut().enumerate() {
            f.src = [172, 16, 0, 1 + (i % 12) as u8];
        }
    }
    let mut now = 0u64;
    let mut sent = 0;
    let mut changes = 0;
    while sent < frames {
        let replies = if config.returns {
            match dut.guide() {
                Some(guide) => reply_flows(&mut rng, guide),
                None => reply_flows(&mut rng, reference.regs.target()),
            }
        } else {
            Vec::new()
        };
        let batch = (1 + rng.below(30) as usize).min(frames - sent);
        for _ in 0..batch {
            let port = if rng.chance(50) {
                Port::Mcu
            } else {
                Port::Network
            };
            let f = forward_frame(&mut rng, &flows, &replies, config, &pool);
            reference.push(port, &f);
            dut.push(port, &f);
        }
        sent += batch;
        if rng.chance(150) {
            dut.run(rng.below(300) as usize);
            dut.wait_commit(200_000);
            // Every 20th time the whole initial configuration again (backends up, every
            // service valid): a long run would otherwise drift to few services. (No draw
            // from `rng` for it: short runs keep the sequence they had before.)
            changes += 1;
            write_forward_config(dut, &mut rng, config, changes % 20 == 0, &mut pool);
        }
        if rng.chance(150) {
            dut.run_until_idle(2_000_000);
            dut.drained(reference);
            // Time passes between bursts: flows expire, idle ways are reclaimed.
            now += rng.below(300);
            dut.set_now(now, reference);
        } else {
            dut.run(rng.below(1500) as usize);
            dut.sync(reference);
        }
    }
    dut.run_until_idle(2_000_000);
    dut.drained(reference);
    dut.check_counters(reference, true);
}

/// Flow-table sets of the design under test (log2).
pub const A: usize = 6;
pub const WAYS: usize = 4;
/// The hardware's ring stride (`forward::RING_STRIDE`): the model's ring storage must
/// match it, since the model runs `min(RING_SIZE, stride)` entries.
pub const RING: usize = fulcrum_hdl::forward::RING_STRIDE;

//GENS1
pub const OWN: [[u8; 4]; 2] = [[10, 0, 0, 1], [192, 168, 7, 9]];
pub const VIPS: [[u8; 4]; 3] = [[10, 1, 0, 1], [10, 1, 0, 2], [10, 0, 0, 1]];
pub const POOL: [[u8; 4]; 10] = [
    [10, 2, 0, 1],
    [10, 2, 0, 2],
    [10, 2, 0, 3],
    [10, 2, 0, 4],
    [10, 2, 0, 5],
    [10, 2, 0, 6],
    [10, 2, 0, 7],
    [10, 2, 0, 8],
    [10, 2, 0, 9],
    [10, 1, 0, 1],
];
pub const PORTS: [u16; 3] = [80, 443, 53];

/// Points a TCP/UDP frame's destination port at `port` (no checksum covers it in the
/// parser's view; the model does not check transport checksums).
pub fn aim_port(frame: &mut [u8], port: u16) {
    let l3 = if frame.len() >= 14 && frame[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    };
    if frame.len() < l3 + 20 || frame[l3 - 2..l3] != [0x08, 0x00] {
        return;
    }
    let l4 = l3 + usize::from(frame[l3] & 0x0f) * 4;
    if matches!(frame[l3 + 9], 6 | 17) && frame.len() >= l4 + 4 {
        frame[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
    }
}

/// Points an IPv4 frame at `dst` (checksum fixed); other frames are left alone.
pub fn aim(frame: &mut [u8], dst: [u8; 4]) {
    let l3 = if frame.len() >= 14 && frame[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    };
    if frame.len() >= l3 + 20 && frame[l3 - 2..l3] == [0x08, 0x00] && frame[l3] >> 4 == 4 {
        frame[l3 + 16..l3 + 20].copy_from_slice(&dst);
        fix_ip_checksum(&mut frame[l3..]);
    }
}

pub fn traffic_frame(rng: &mut Rng) -> Vec<u8> {
    let mut f = if rng.chance(300) {
        valid_frame(rng)
    } else {
        random_frame(rng)
    };
    match rng.below(12) {
        0 => aim(&mut f, OWN[rng.below(2) as usize]),
        1 => {
            let group = [
                224 + rng.below(16) as u8,
                rng.byte(),
                rng.byte(),
                rng.byte(),
            ];
            aim(&mut f, group)
        }
        2 => aim(&mut f, [255; 4]),
        3..=6 => {
            aim(&mut f, VIPS[rng.below(3) as usize]);
            if rng.chance(700) {
                aim_port(&mut f, PORTS[rng.below(3) as usize]);
            }
        }
        7 | 8 => aim(&mut f, POOL[rng.below(10) as usize]),
        _ => {}
    }
    f
}

/// Table and settings changes: the appliance address, the hash key, the full-NAT pool,
/// A full-NAT pool of 0-10 addresses (ports from 1024) drawn from `POOL`; with
/// `fullnat` (a run with full-NAT services), 1-8 addresses and a port base that leaves
/// 40-65,535 ports per address, so the flow table's slots span up to 7 addresses (the
/// forward path divides, the return path multiplies) and some slots have none (4-8
/// addresses of 40, 61 or 100 ports: 160-800 slots of the table's 256). The
/// pool written is kept in `pool` (blind full-NAT replies aim at it).
fn write_pool(sim: &mut impl RegisterBus, rng: &mut Rng, fullnat: bool, pool: &mut Pool) {
    let (count, base) = if fullnat {
        // Mostly enough addresses for the table's 256 slots (4-8 when an address has
        // 40-100 ports), not always.
        let bases = [1024u16, 1, 65_436, 65_496, 65_475, 60_000];
        let base = bases[rng.below(6) as usize];
        let count = if base > 65_000 {
            4 + rng.below(5)
        } else {
            1 + rng.below(8)
        };
        (count as u32, base)
    } else {
        (rng.below(11) as u32, 1024)
    };
    sim.write32(addr::SNAT_CFG, (count << 16) | u32::from(base));
    pool.count = count as usize;
    pool.base = base;
    for i in 0..8 {
        let a = POOL[rng.below(10) as usize];
        pool.addrs[usize::from(i)] = a;
        sim.write32(addr::SNAT_POOL + i, u32::from_be_bytes(a));
    }
}

/// The full-NAT pool and backends a generator last wrote (what its blind replies use).
#[derive(Clone, Default)]
pub struct Pool {
    pub count: usize,
    pub base: u16,
    pub addrs: [[u8; 4]; 8],
    /// (address, port) of the backends written, by table index.
    pub backends: BTreeMap<u16, ([u8; 4], u16)>,
}

impl Pool {
    /// The pool endpoint of flow-table slot `slot` as the model's `snat_endpoint`, or a
    /// pool address beyond the count when the slot has none.
    fn endpoint(&self, slot: u16) -> ([u8; 4], u16) {
        let per = 65_536 - u32::from(self.base);
        let index = (u32::from(slot) / per) as usize;
        let port = (u32::from(self.base) + u32::from(slot) % per) as u16;
        (self.addrs[index.min(7)], port)
    }
}

/// L7 services (the only kind the hardware serves so far).
pub fn write_settings(sim: &mut impl RegisterBus, rng: &mut Rng) {
    let own = OWN[rng.below(2) as usize];
    sim.write32(addr::ADDRESS, u32::from_be_bytes(own));
    if rng.chance(500) {
        for i in 0..10 {
            sim.write32(addr::HASH_KEY + i, rng.next_u64() as u32);
        }
    }
    if rng.chance(500) {
        write_pool(sim, rng, false, &mut Pool::default());
    }
    let mut writer = RegisterWriter::new(&mut *sim);
    for _ in 0..rng.below(6) {
        let entry = ServiceEntry {
            valid: rng.chance(800),
            vip: Ipv4Addr::from(VIPS[rng.below(3) as usize]),
            protocol: if rng.chance(500) {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            port: PORTS[rng.below(3) as usize],
            mode: Mode::L7,
            algorithm: Algorithm::RoundRobin,
            sticky: false,
            sticky_timeout: 0,
            gue_port: 0,
            member_count: 0,
        };
        writer.write_service(rng.below(20) as u8, &entry);
    }
    sim.write32(addr::CONTROL, 1);
}

/// The modes one run configures, and whether every IPv4 frame is aimed at a known address
/// (kept from when the NAT return path was not in hardware: the runs that aim every
/// frame keep their sequences).
#[derive(Clone, Copy)]
pub struct FwdConfig {
    /// Modes of the services written (L7 is mixed in at 15 %).
    pub modes: &'static [Mode],
    /// Algorithms of the services written.
    pub algorithms: &'static [Algorithm],
    pub aim_all: bool,
    /// Whether backends reply (NAT and full-NAT return paths): frames from backends'
    /// addresses and ports to the clients of the model's live flows (full NAT: to the
    /// pool endpoint of the flow's slot), and to others. Each service then gets member
    /// lists and a few backends of its own. The replies are drawn from the flow table of
    /// the reference (the rust-hdl simulation, which the model follows as it runs) or of
    /// the design's [`Guide`] (Verilator). Without it, a run with full-NAT services sends
    /// blind replies (see `forward_frame`).
    pub returns: bool,
    /// Whether services are sticky (half of them, with persistence timeouts of 50 ms to
    /// 1.5 s while time moves up to 300 ms between bursts).
    pub sticky: bool,
}

/// Backend-table slots the runs use (the last ones test the index encoding).
pub const BACKENDS: [u16; 8] = [0, 1, 2, 3, 5, 8, 200, 255];

/// A client flow towards a VIP.
#[derive(Clone, Copy)]
pub struct Flow {
    protocol: u8,
    src: [u8; 4],
    src_port: u16,
    dst: [u8; 4],
    dst_port: u16,
    mac: [u8; 6],
    tagged: bool,
}

pub fn random_flow(rng: &mut Rng) -> Flow {
    let mut mac = [0u8; 6];
    mac.iter_mut().for_each(|b| *b = rng.byte());
    mac[0] &= 0xfe;
    Flow {
        protocol: if rng.chance(600) { 6 } else { 17 },
        src: [172, 16, rng.below(4) as u8, rng.byte()],
        src_port: 1024 + rng.below(64) as u16,
        dst: VIPS[rng.below(2) as usize],
        dst_port: PORTS[rng.below(3) as usize],
        mac,
        tagged: rng.chance(200),
    }
}

/// A well-formed frame of `flow` (IPv4 header checksum right; the transport checksum is
/// random: nothing checks it, the rewrite updates it incrementally).
pub fn flow_frame(rng: &mut Rng, flow: &Flow) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x11]);
    f.extend_from_slice(&flow.mac);
    if flow.tagged {
        f.extend_from_slice(&[0x81, 0x00, 0x20, 0x07]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let l3 = f.len();
    let options = if rng.chance(100) { 4 } else { 0 };
    let payload = match rng.below(10) {
        0 => 1400 + rng.below(120) as usize,
        1 => rng.below(600) as usize,
        _ => rng.below(40) as usize,
    };
    let l4_len = if flow.protocol == 6 { 20 } else { 8 };
    let total = 20 + options + l4_len + payload;
    let ihl = 5 + options / 4;
    f.push(0x40 | ihl as u8);
    f.push(0);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[rng.byte(), rng.byte()]);
    f.extend_from_slice(if rng.chance(500) { &[0x40, 0] } else { &[0, 0] });
    f.push(64);
    f.push(flow.protocol);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&flow.src);
    f.extend_from_slice(&flow.dst);
    // NOP options.
    f.extend(std::iter::repeat_n(1, options));
    f.extend_from_slice(&flow.src_port.to_be_bytes());
    f.extend_from_slice(&flow.dst_port.to_be_bytes());
    if flow.protocol == 6 {
        f.extend_from_slice(&rng.next_u64().to_be_bytes());
        f.push(0x50);
        let flags = match rng.below(20) {
            0..=7 => 0x02,
            8..=12 => 0x10,
            13 => 0x11,
            14 => 0x04,
            15 | 16 => 0x12,
            17 => 0x18,
            18 => 0x03,
            _ => rng.byte(),
        };
        f.push(flags);
        f.extend_from_slice(&[0x20, 0x00, rng.byte(), rng.byte(), 0, 0]);
    } else {
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[rng.byte(), rng.byte()]);
    }
    for _ in 0..payload {
        f.push(rng.byte());
    }
    fix_ip_checksum(&mut f[l3..]);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

/// Settings, backends, services and rings of a forward-path run (then a commit).
pub fn write_forward_config(
    sim: &mut impl RegisterBus,
    rng: &mut Rng,
    config: FwdConfig,
    initial: bool,
    pool: &mut Pool,
) {
    let fullnat = config.modes.contains(&Mode::Fullnat);
    let own = OWN[rng.below(2) as usize];
    sim.write32(addr::ADDRESS, u32::from_be_bytes(own));
    if rng.chance(300) {
        sim.write32(addr::MAC_HI, rng.next_u64() as u32 & 0xffff);
        sim.write32(addr::MAC_LO, rng.next_u64() as u32);
        sim.write32(addr::TUNNEL_SRC, u32::from_be_bytes([10, 0, 0, rng.byte()]));
    }
    // Mostly a ring the writes below fill (251 entries), sometimes an empty ring, one
    // the writes fill in part, or one beyond the hardware's stride (cut to `RING`).
    let sizes = [0, 1, 7, 61, 1021, 2000, 65537];
    if rng.chance(100) {
        sim.write32(addr::RING_SIZE, sizes[rng.below(7) as usize]);
    } else if rng.chance(200) {
        sim.write32(addr::RING_SIZE, 251);
    }
    if rng.chance(300) {
        for a in addr::T_SYN..=addr::T_UDP {
            sim.write32(a, 20 + rng.below(400) as u32);
        }
    }
    if rng.chance(100) {
        for i in 0..10 {
            sim.write32(addr::HASH_KEY + i, rng.next_u64() as u32);
        }
    }
    // (A full-NAT run has a pool from the start.)
    if rng.chance(200) || (fullnat && initial) {
        write_pool(sim, rng, fullnat, pool);
    }
    let mut writer = RegisterWriter::new(&mut *sim);
    for n in 0..if initial { 8 } else { rng.below(5) } {
        let states = [
            BackendState::Up,
            BackendState::Up,
            BackendState::Up,
            BackendState::Down,
            BackendState::Drain,
            BackendState::Disabled,
            BackendState::Free,
        ];
        let mut mac = [0x02, 0xbe, 0, 0, 0, rng.byte()];
        if rng.chance(100) {
            mac = [0; 6];
        }
        if initial {
            mac = [0x02, 0xbe, 0, 0, 1, n as u8];
        }
        let entry = BackendEntry {
            state: if initial {
                BackendState::Up
            } else {
                states[rng.below(7) as usize]
            },
            generation: rng.below(3) as u8,
            address: [10, 9, rng.below(4) as u8, rng.byte()],
            port: 8000 + rng.below(3) as u16,
            mac,
            weight: if !initial && rng.chance(100) {
                0
            } else {
                1 + rng.below(9) as u16
            },
            // One draw (the sequence stays as it was): mostly below least response
            // time's saturation at 2^24 - 1, some 0 (counts as 1) and some above.
            rtt_us: {
                let r = rng.next_u64();
                match r >> 61 {
                    0 => 0,
                    1 => r as u32,
                    _ => 1 + (r as u32) % 4_000,
                }
            },
        };
        let index = if initial {
            BACKENDS[n as usize]
        } else if rng.chance(20) {
            0x100 | rng.below(8) as u16
        } else {
            BACKENDS[rng.below(8) as usize]
        };
        writer.write_backend(index, &entry);
        if usize::from(index) < BACKEND_SLOTS {
            pool.backends.insert(index, (entry.address, entry.port));
        }
    }
    // At first every (VIP, port, protocol) the flows use gets a service; later a few
    // entries change at a time (slots 16 and 17 do not exist: ignored). With `aim_all`,
    // slots 0-11 are kept, so both VIPs stay VIPs (see `FwdConfig`).
    let count = if initial { 12 } else { rng.below(4) };
    for n in 0..count {
        let slot = if initial {
            n as u8
        } else if config.aim_all {
            12 + rng.below(6) as u8
        } else {
            rng.below(18) as u8
        };
        let mode = if rng.chance(150) {
            Mode::L7
        } else {
            config.modes[rng.below(config.modes.len() as u64) as usize]
        };
        let entry = ServiceEntry {
            valid: initial || rng.chance(850),
            vip: Ipv4Addr::from(if initial {
                VIPS[n as usize % 2]
            } else {
                VIPS[rng.below(3) as usize]
            }),
            protocol: if (initial && n < 6) || (!initial && rng.chance(500)) {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            port: if initial {
                PORTS[(n as usize / 2) % 3]
            } else {
                PORTS[rng.below(3) as usize]
            },
            mode,
            algorithm: match config.algorithms {
                // One algorithm: no draw (the sequence stays what it was before the list).
                [only] => *only,
                list => list[rng.below(list.len() as u64) as usize],
            },
            // (No draw without `sticky`: those runs keep their sequences.)
            sticky: config.sticky && rng.chance(500),
            sticky_timeout: if config.sticky {
                50 + rng.below(1_450) as u32
            } else {
                0
            },
            gue_port: 6080 + rng.below(3) as u16,
            member_count: if !config.returns {
                rng.below(8) as u8
            } else if rng.chance(100) {
                rng.below(40) as u8
            } else {
                1 + rng.below(6) as u8
            },
        };
        writer.write_service(slot, &entry);
        // With replies, each service has a few backends of its own (its ring and member
        // list), so that a backend is a member of few NAT services and replies often find
        // their flow; otherwise any of the table's.
        let own: Vec<u16> = if config.returns {
            (0..1 + rng.below(3))
                .map(|_| BACKENDS[rng.below(8) as usize])
                .collect()
        } else {
            Vec::new()
        };
        let pick = |rng: &mut Rng| {
            if config.returns {
                own[rng.below(own.len() as u64) as usize]
            } else {
                BACKENDS[rng.below(8) as usize]
            }
        };
        // Round robin's member lists are rewritten with 70 % of the later service writes:
        // the others change only the service entry, after which the model still resets the
        // service's selection state (`commit_banks` compares the entries too).
        let lists = config.algorithms.iter().any(|a| !a.is_stateless());
        if config.returns || (lists && (initial || rng.chance(700))) {
            // The member list (the NAT return path and round robin scan it): mostly
            // backends, sometimes NO_BACKEND or an index beyond the table, sometimes past
            // the count.
            let members = u8::min(entry.member_count + rng.below(3) as u8, 32);
            for position in 0..members {
                let member = match rng.below(20) {
                    0 => 0xFFFF,
                    1 => 0x100 | rng.below(8) as u16,
                    _ => pick(rng),
                };
                writer.write_member(slot, position, member);
            }
        }
        if initial || rng.chance(800) {
            // A ring: backends (sometimes none, or an index beyond the table).
            let len = if rng.chance(900) {
                251
            } else {
                1 + rng.below(60) as usize
            };
            let entries: Vec<u16> = (0..len)
                .map(|_| match rng.below(30) {
                    0 => 0xFFFF,
                    1 => 300,
                    _ => pick(rng),
                })
                .collect();
            let offset = if rng.chance(100) {
                1000 + rng.below(40) as u32
            } else {
                0
            };
            writer.write_ring(slot, offset, &entries);
        }
    }
    sim.write32(addr::CONTROL, 1);
}

/// Replies from backends as the model sees its tables now: to the client of a live flow
/// from the flow's backend (address and port), with variations (another backend, another
/// client port, the other protocol, another client).
pub fn reply_flows(rng: &mut Rng, model: &Pipeline<'_>) -> Vec<Flow> {
    let table = model.flow_table();
    let mut replies = Vec::new();
    let backend_of = |b: u16| model.backend(usize::from(b) % BACKEND_SLOTS).copied();
    for slot in 0..table.capacity() {
        let Some(e) = table.get(slot).filter(|e| e.valid) else {
            continue;
        };
        let Some(b) = backend_of(e.backend) else {
            continue;
        };
        let mut mac = [0x02, 0xbe, 0, 0, 9, rng.byte()];
        mac[5] |= 1;
        let mut flow = Flow {
            protocol: e.key.protocol,
            src: b.address,
            src_port: b.port,
            dst: e.key.src,
            dst_port: e.key.src_port,
            mac,
            tagged: rng.chance(100),
        };
        // A full-NAT flow's reply goes to its slot's pool address and port.
        let fullnat = model
            .service(usize::from(e.service) % SERVICE_SLOTS)
            .is_some_and(|s| s.valid && s.mode == Mode::Fullnat);
        if fullnat && let Some(to) = snat_endpoint(model.settings(), slot) {
            flow.dst = to.addr;
            flow.dst_port = to.port;
            if rng.chance(100) {
                // Below the port base, or another pool address.
                flow.dst_port = model.settings().snat_port_base.wrapping_sub(1);
                flow.dst = POOL[rng.below(10) as usize];
            }
        }
        match rng.below(12) {
            0 => flow.dst_port ^= 1,
            1 => flow.protocol ^= 6 ^ 17,
            2 => {
                if let Some(other) = backend_of(BACKENDS[rng.below(8) as usize]) {
                    flow.src = other.address;
                    flow.src_port = other.port;
                }
            }
            3 => flow.dst = [172, 16, rng.below(4) as u8, rng.byte()],
            _ => {}
        }
        replies.push(flow);
    }
    replies
}

pub fn forward_frame(
    rng: &mut Rng,
    flows: &[Flow],
    replies: &[Flow],
    config: FwdConfig,
    pool: &Pool,
) -> Vec<u8> {
    if config.returns && !replies.is_empty() && rng.chance(250) {
        let reply = replies[rng.below(replies.len() as u64) as usize];
        return flow_frame(rng, &reply);
    }
    if !config.returns
        && config.modes.contains(&Mode::Fullnat)
        && !pool.backends.is_empty()
        && rng.chance(150)
    {
        // A blind full-NAT reply (the generator does not see the flow table): from a
        // backend of the table, to the pool endpoint of slot 0-279 (the table has 256),
        // sometimes to another pool address or below the base; it finds its flow when
        // the slot holds a full-NAT flow of that backend and protocol.
        let backends: Vec<_> = pool.backends.values().copied().collect();
        let (src, src_port) = backends[rng.below(backends.len() as u64) as usize];
        let slot = rng.below(280) as u16;
        let (mut dst, mut dst_port) = pool.endpoint(slot);
        if rng.chance(100) {
            dst = pool.addrs[rng.below(8) as usize];
        }
        if rng.chance(50) {
            dst_port = pool.base.wrapping_sub(1 + slot);
        }
        let reply = Flow {
            protocol: if rng.chance(500) { 6 } else { 17 },
            src,
            src_port,
            dst,
            dst_port,
            mac: [0x02, 0xbe, 0, 0, 9, 1 | rng.byte()],
            tagged: rng.chance(100),
        };
        return flow_frame(rng, &reply);
    }
    if rng.chance(650) {
        let flow = flows[rng.below(flows.len() as u64) as usize];
        return flow_frame(rng, &flow);
    }
    let mut f = traffic_frame(rng);
    if config.aim_all && rng.chance(900) {
        // Anywhere but an unknown address: broadcast or a VIP (not the appliance's or a
        // pool address: the settings change them).
        match rng.below(3) {
            0 => aim(&mut f, [255; 4]),
            _ => aim(&mut f, VIPS[rng.below(2) as usize]),
        }
    } else if config.aim_all {
        aim(&mut f, [239, 1, 2, 3]);
    }
    f
}

/// Every counter index the model defines.
pub fn counter_indexes() -> Vec<u32> {
    let mut v = vec![
        counter::RX_FRAMES,
        counter::FROM_MCU,
        counter::EVICTIONS,
        counter::EXPIRATIONS,
        counter::MOVED_FLOWS,
    ];
    v.extend((0..DropReason::COUNT as u32).map(|r| counter::DROPS + r));
    v.extend((0..PuntReason::COUNT as u32).map(|r| counter::PUNTS + r));
    for s in 0..SERVICE_SLOTS as u32 {
        v.extend((0..5).map(|f| counter::SERVICE + s * 8 + f));
    }
    for b in 0..BACKEND_SLOTS as u32 {
        v.extend((0..4).map(|f| counter::BACKEND + b * 4 + f));
    }
    // Indexes that name nothing read 0.
    v.extend([5, 0x1f, 0x3f, 0x7f, 0x105, 0x1400, 0xffff_ffff]);
    v
}
