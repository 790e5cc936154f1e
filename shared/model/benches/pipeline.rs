//! Throughput of the reference model on realistic traffic, in packets per second per core.
//!
//! The model is the specification of the FPGA fast path, not the fast path itself, but it
//! is also what the Linux simulator and the host's "which backend?" queries run, so its
//! cost matters. Every group reports criterion `Throughput::Elements` = packets, so
//! criterion prints packets per second on one core. Groups:
//!
//! * `established`: flow-table hits, NAT, TCP ACKs of 64, 512 and 1500 bytes, 10,000 flows
//!   in a 16384 × 4 table;
//! * `new_flows`: SYNs that miss, select a backend with Maglev and insert, with the table
//!   at steady state (every set full of live or expired flows, evictions and expiry);
//! * `mix`: 90 % established / 10 % new over NAT, full-NAT and DSR services, established
//!   frames sized 7:4:1 of 64/576/1500 bytes (simple IMIX);
//! * `return`: the full-NAT (slot-indexed) and NAT (rebuilt-key) return paths;
//! * `stages`: the Toeplitz hash, the Maglev lookup and the parser alone, over the flows
//!   of the established-flow workload.
//!
//! Frame sizes are Ethernet frame bytes without the FCS. Frames are built before
//! measuring and cycled; the output buffer is allocated once. Virtual time advances per
//! frame so flows expire exactly as they would at that packet rate.
//!
//! `examples/pipeline_instructions.rs` reuses [`workload`] to count instructions per packet
//! under callgrind (see `docs/PERFORMANCE.md`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The traffic the benchmark groups and the instruction counter replay.
pub mod workload {
    use std::net::Ipv4Addr;

    use fulcrum_model::compile::ControlPlane;
    use fulcrum_model::counters::Counters;
    use fulcrum_model::pipeline::{Action, OUT_HEADROOM, Pipeline, Port};

    use super::common::{ACK, Flags, Owned, SYN, config, endpoints, frame, program};

    const APPLIANCE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const CLIENT_MAC: [u8; 6] = [2, 0xc0, 0, 0, 0, 1];
    /// Backends per service.
    pub const BACKENDS: usize = 16;
    /// Flows open before measuring in the established-flow, mix and return workloads.
    pub const FLOWS: usize = 10_000;
    /// Smallest frame: Ethernet + IPv4 + TCP headers (54 bytes) and 10 bytes of payload.
    pub const MIN_FRAME: usize = 64;

    /// A service of the benchmark config.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Service {
        /// 10.0.0.100:80, NAT.
        Nat,
        /// 10.0.0.101:80, full NAT.
        Fullnat,
        /// 10.0.0.102:80, DSR.
        Dsr,
    }

    impl Service {
        const ALL: [Service; 3] = [Service::Nat, Service::Fullnat, Service::Dsr];

        fn vip(self) -> (Ipv4Addr, u16) {
            let last = match self {
                Service::Nat => 100,
                Service::Fullnat => 101,
                Service::Dsr => 102,
            };
            (Ipv4Addr::new(10, 0, 0, last), 80)
        }
    }

    /// The appliance of the issue: a 16384 × 4 flow table, a 65537-entry Maglev ring per
    /// service, two full-NAT addresses (enough ports for every slot), default timeouts
    /// (SYN 10 s, established 300 s), and three Maglev services of 16 backends each.
    pub fn config_text() -> String {
        let mut s = String::from(
            r#"
[appliance]
name = "bench"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
snat_pool = ["10.0.0.250", "10.0.0.251"]
snat_port_base = 1024
maglev_ring_size = 65537
flow_table = { sets = 16384, ways = 4 }
"#,
        );
        for (i, (name, mode)) in [("nat", "nat"), ("fullnat", "fullnat"), ("dsr", "dsr")]
            .into_iter()
            .enumerate()
        {
            s.push_str(&format!(
                "\n[[service]]\nname = \"{name}\"\nvip = \"10.0.0.{}\"\nprotocol = \"tcp\"\nport = 80\nmode = \"{mode}\"\nalgorithm = \"maglev\"\n[service.health]\nkind = \"none\"\n",
                100 + i
            ));
            let port = if mode == "dsr" { "" } else { "port = 8080\n" };
            for b in 0..BACKENDS {
                s.push_str(&format!(
                    "[[service.backend]]\nname = \"b{b}\"\naddress = \"10.0.{}.{}\"\n{port}mac = \"02:00:00:00:{:02x}:{:02x}\"\n",
                    i + 1,
                    b + 10,
                    i + 1,
                    b + 10
                ));
            }
        }
        s
    }

    /// Storage and compiled tables for one pipeline of the benchmark config.
    pub fn setup() -> (Owned, ControlPlane) {
        let c = config(&config_text());
        let mut cp = ControlPlane::new();
        cp.apply(&c).expect("bench config compiles");
        (Owned::for_config(&c), cp)
    }

    /// SplitMix64: a seeded, dependency-free generator so every run replays the same
    /// traffic.
    pub struct Rng(u64);

    impl Rng {
        /// A generator from `seed`.
        pub fn new(seed: u64) -> Self {
            Rng(seed)
        }

        /// The next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n`.
        pub fn below(&mut self, n: usize) -> usize {
            ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
        }
    }

    /// A pseudo-random unicast client endpoint: Internet clients' addresses and ports
    /// look random, and the Toeplitz hash's cost depends on their bits (one data-dependent
    /// branch per input bit), so sequential test addresses would flatter it.
    fn random_client(stream: u64, i: usize) -> (Ipv4Addr, u16) {
        let r = Rng::new(stream ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)).next_u64();
        // 1.0.0.0 to 223.255.255.255, outside 10.0.0.0/8 (the appliance's own network).
        let mut addr = 0x0100_0000 + (r as u32) % 0xDF00_0000;
        if addr >> 24 == 10 {
            addr ^= 0x0100_0000;
        }
        (Ipv4Addr::from(addr), 1024 + ((r >> 32) % 64_512) as u16)
    }

    /// Client endpoint of established flow `i`.
    fn established_client(i: usize) -> (Ipv4Addr, u16) {
        random_client(0xC11E_0001, i)
    }

    /// Client endpoint of new flow `i` (a different stream from the established ones).
    fn new_client(i: usize) -> (Ipv4Addr, u16) {
        random_client(0xC11E_0002, i)
    }

    fn tcp_frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: Flags, len: usize) -> Vec<u8> {
        let payload = vec![0x5a; len.saturating_sub(54)];
        frame(CLIENT_MAC, APPLIANCE_MAC, 6, src, dst, flags, &payload)
    }

    /// A replayable stream of frames.
    pub struct Scenario {
        /// What the stream is, for the report.
        pub name: String,
        /// Frames sent once, before anything else, at time 0 (open established flows).
        pub warmup: Vec<Vec<u8>>,
        /// The distinct frames of the stream.
        pub frames: Vec<Vec<u8>>,
        /// The order the stream sends `frames` in; it wraps around.
        pub order: Vec<u32>,
        /// Virtual time between two frames, microseconds.
        pub tick_us: u64,
        /// Whether to replay the whole stream once before measuring (steady state).
        pub prime: bool,
    }

    impl Scenario {
        /// Mean size of a frame of the stream, bytes.
        pub fn mean_frame_len(&self) -> f64 {
            let total: usize = self
                .order
                .iter()
                .map(|&i| self.frames[i as usize].len())
                .sum();
            total as f64 / self.order.len() as f64
        }
    }

    /// SYN then ACK (64 bytes) of established flow `i`, to `service`.
    fn open(i: usize, service: Service) -> [Vec<u8>; 2] {
        let c = established_client(i);
        [
            tcp_frame(c, service.vip(), SYN, MIN_FRAME),
            tcp_frame(c, service.vip(), ACK, MIN_FRAME),
        ]
    }

    /// (a) ACKs of `len` bytes on [`FLOWS`] open flows of `service`, in a shuffled order.
    pub fn established(service: Service, len: usize) -> Scenario {
        let mut rng = Rng::new(0xE57A_B115);
        let warmup = (0..FLOWS).flat_map(|i| open(i, service)).collect();
        let frames = (0..FLOWS)
            .map(|i| tcp_frame(established_client(i), service.vip(), ACK, len))
            .collect();
        let mut order: Vec<u32> = (0..FLOWS as u32).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        Scenario {
            name: format!("established {service:?} {len} B"),
            warmup,
            frames,
            order,
            tick_us: 1,
            prime: false,
        }
    }

    /// New flows in one stream before a key comes round again: at 200 µs of virtual time
    /// per frame the stream lasts 20 s, twice the SYN timeout, so every SYN misses (its
    /// previous entry expired or was evicted), and about 50,000 SYN entries are live in
    /// the 65,536 slots at any time, so full sets evict.
    pub const NEW_FLOWS: usize = 100_000;

    /// (b) 64-byte SYNs of never-seen (or long-expired) flows to the NAT service.
    pub fn new_flows() -> Scenario {
        let vip = Service::Nat.vip();
        Scenario {
            name: "new flows (SYN, NAT, Maglev) at steady state".into(),
            warmup: Vec::new(),
            frames: (0..NEW_FLOWS)
                .map(|i| tcp_frame(new_client(i), vip, SYN, MIN_FRAME))
                .collect(),
            order: (0..NEW_FLOWS as u32).collect(),
            tick_us: 200,
            prime: true,
        }
    }

    /// Frames in one pass of the mix.
    pub const MIX_LEN: usize = 50_000;

    /// (c) 90 % established / 10 % new, spread over NAT, full NAT and DSR; established
    /// frames 7:4:1 of 64/576/1500 bytes, SYNs 64 bytes. One pass is 20 s of virtual
    /// time (400 µs a frame), so each new flow's SYN entry has expired when it comes round
    /// again, while established flows are refreshed every few seconds.
    pub fn mix() -> Scenario {
        let mut rng = Rng::new(0x1313_4C1E);
        let service = |i: usize| Service::ALL[i % 3];
        let warmup = (0..FLOWS).flat_map(|i| open(i, service(i))).collect();
        let mut frames: Vec<Vec<u8>> = (0..FLOWS)
            .map(|i| {
                let len = match rng.below(12) {
                    0..7 => 64,
                    7..11 => 576,
                    _ => 1500,
                };
                tcp_frame(established_client(i), service(i).vip(), ACK, len)
            })
            .collect();
        let mut order = Vec::with_capacity(MIX_LEN);
        let mut new = 0;
        for _ in 0..MIX_LEN {
            if rng.below(10) == 0 {
                let vip = Service::ALL[rng.below(3)].vip();
                frames.push(tcp_frame(new_client(new), vip, SYN, MIN_FRAME));
                order.push((frames.len() - 1) as u32);
                new += 1;
            } else {
                order.push(rng.below(FLOWS) as u32);
            }
        }
        Scenario {
            name: "mix 90/10 established/new, NAT+full NAT+DSR, IMIX".into(),
            warmup,
            frames,
            order,
            tick_us: 400,
            prime: true,
        }
    }

    /// (d) The backends' ACKs of `len` bytes on [`FLOWS`] open flows of `service` (NAT or
    /// full NAT), back to the clients.
    pub fn returning(service: Service, len: usize) -> Scenario {
        let warmup: Vec<Vec<u8>> = (0..FLOWS).flat_map(|i| open(i, service)).collect();
        // Where each flow went (backend, and the full-NAT source port of its slot) is
        // decided by the pipeline: ask one, then replay the same warmup in the measured one.
        let (mut owned, cp) = setup();
        let mut p = owned.pipeline();
        program(&mut p, &cp);
        let mut out = vec![0u8; 1600];
        let mut frames = Vec::with_capacity(FLOWS);
        for f in &warmup {
            let v = p.process(0, f, Port::Network, &mut out);
            assert!(matches!(v.action, Action::ToBackend { .. }), "{v:?}");
            if f[47] & 0x02 == 0 {
                let sent = &out[..v.len];
                let (src, dst) = endpoints(sent);
                let backend_mac: [u8; 6] = sent[0..6].try_into().unwrap();
                let payload = vec![0xa5; len.saturating_sub(54)];
                frames.push(frame(
                    backend_mac,
                    APPLIANCE_MAC,
                    6,
                    dst,
                    src,
                    ACK,
                    &payload,
                ));
            }
        }
        let order = (0..frames.len() as u32).collect();
        Scenario {
            name: format!("return path {service:?} {len} B"),
            warmup,
            frames,
            order,
            tick_us: 1,
            prime: false,
        }
    }

    /// What a stretch of the stream did, from the counters.
    #[derive(Debug, Default)]
    pub struct Summary {
        /// Frames processed.
        pub frames: u64,
        /// Frames forwarded (either direction).
        pub forwarded: u64,
        /// Flows created.
        pub new_flows: u64,
        /// Live flows evicted from full sets.
        pub evictions: u64,
        /// Flows found expired (on lookup or insert).
        pub expirations: u64,
        /// Frames dropped or punted.
        pub dropped_or_punted: u64,
    }

    fn forwarded(c: &Counters) -> u64 {
        c.services
            .iter()
            .map(|s| s.packets + s.return_packets)
            .sum()
    }

    fn new_flow_count(c: &Counters) -> u64 {
        c.services.iter().map(|s| s.new_flows).sum()
    }

    /// A pipeline replaying a [`Scenario`].
    pub struct Runner<'a> {
        pipeline: Pipeline<'a>,
        scenario: &'a Scenario,
        cursor: usize,
        now_us: u64,
        out: Vec<u8>,
    }

    impl<'a> Runner<'a> {
        /// Programs a pipeline over `owned`, sends the warmup, and if the scenario asks,
        /// replays the stream once.
        pub fn new(owned: &'a mut Owned, cp: &ControlPlane, scenario: &'a Scenario) -> Self {
            let max = scenario.frames.iter().map(Vec::len).max().unwrap_or(0);
            let mut pipeline = owned.pipeline();
            program(&mut pipeline, cp);
            let mut out = vec![0u8; max.max(MIN_FRAME) + OUT_HEADROOM];
            for f in &scenario.warmup {
                pipeline.process(0, f, Port::Network, &mut out);
            }
            let mut runner = Runner {
                pipeline,
                scenario,
                cursor: 0,
                now_us: 1_000_000,
                out,
            };
            if scenario.prime {
                runner.run(scenario.order.len() as u64);
            }
            runner
        }

        /// Processes the next `n` frames of the stream; returns the bytes sent (so the
        /// work cannot be optimised away).
        #[inline(never)]
        pub fn run(&mut self, n: u64) -> u64 {
            let order = &self.scenario.order;
            let frames = &self.scenario.frames;
            let mut sent = 0u64;
            for _ in 0..n {
                let f = &frames[order[self.cursor] as usize];
                self.cursor += 1;
                if self.cursor == order.len() {
                    self.cursor = 0;
                }
                self.now_us += self.scenario.tick_us;
                let v = self
                    .pipeline
                    .process(self.now_us / 1000, f, Port::Network, &mut self.out);
                sent += v.len as u64;
            }
            sent
        }

        /// Runs `n` frames and says what they did.
        pub fn summarize(&mut self, n: u64) -> Summary {
            let before = self.pipeline.counters().clone();
            self.run(n);
            let after = self.pipeline.counters();
            Summary {
                frames: after.rx_frames - before.rx_frames,
                forwarded: forwarded(after) - forwarded(&before),
                new_flows: new_flow_count(after) - new_flow_count(&before),
                evictions: after.evictions - before.evictions,
                expirations: after.expirations - before.expirations,
                dropped_or_punted: (after.dropped() + after.punted())
                    - (before.dropped() + before.punted()),
            }
        }

        /// Flow-table entries in use.
        pub fn occupancy(&self) -> usize {
            self.pipeline.flow_table().occupancy()
        }
    }
}

use workload::{Runner, Scenario, Service};

/// Frames per measured iteration.
const BATCH: u64 = 1000;

/// Short runs (about 5 s a benchmark) so the whole suite fits in two minutes on a
/// shared two-core machine.
fn configure() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Benchmarks one scenario as `group/id`, after printing what its traffic does.
fn bench_scenario(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    scenario: &Scenario,
) {
    let (mut owned, cp) = workload::setup();
    let mut runner = Runner::new(&mut owned, &cp, scenario);
    let s = runner.summarize(scenario.order.len() as u64);
    eprintln!(
        "{}: {} frames, mean {:.0} B: {:.1} % forwarded, {:.1} % new flows, {:.1} % evictions, {:.1} % expirations, {:.1} % dropped/punted; table {} / 65536",
        scenario.name,
        s.frames,
        scenario.mean_frame_len(),
        100.0 * s.forwarded as f64 / s.frames as f64,
        100.0 * s.new_flows as f64 / s.frames as f64,
        100.0 * s.evictions as f64 / s.frames as f64,
        100.0 * s.expirations as f64 / s.frames as f64,
        100.0 * s.dropped_or_punted as f64 / s.frames as f64,
        runner.occupancy(),
    );
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(runner.run(BATCH));
            }
            start.elapsed()
        })
    });
}

fn established(c: &mut Criterion) {
    let mut group = c.benchmark_group("established/nat");
    for len in [64, 512, 1500] {
        bench_scenario(
            &mut group,
            &format!("{len}B"),
            &workload::established(Service::Nat, len),
        );
    }
    group.finish();
}

fn new_flows(c: &mut Criterion) {
    let mut group = c.benchmark_group("new_flows/nat");
    bench_scenario(&mut group, "syn_64B", &workload::new_flows());
    group.finish();
}

fn mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix");
    bench_scenario(&mut group, "imix_90est_10new", &workload::mix());
    group.finish();
}

fn return_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("return");
    for (service, len) in [
        (Service::Fullnat, 64),
        (Service::Fullnat, 1500),
        (Service::Nat, 64),
    ] {
        let id = format!("{}/{len}B", format!("{service:?}").to_lowercase());
        bench_scenario(&mut group, &id, &workload::returning(service, len));
    }
    group.finish();
}

/// Source address, destination address, (source port, destination port).
type FourTuple = ([u8; 4], [u8; 4], (u16, u16));

/// The stages alone: what part of a packet's cost they are.
fn stages(c: &mut Criterion) {
    use fulcrum_model::hash::ToeplitzKey;
    use fulcrum_model::maglev::{self, MaglevBackend};

    // The flows of the established-flow workload.
    let frames = workload::established(Service::Nat, workload::MIN_FRAME).frames;
    let tuples: Vec<FourTuple> = frames
        .iter()
        .map(|f| {
            let h = fulcrum_model::wire::parse(f).expect("bench frame parses");
            let ip = h.ipv4().expect("IPv4");
            (ip.src.octets(), ip.dst.octets(), ip.l4.ports().unwrap())
        })
        .collect();
    let n = tuples.len();
    let key = ToeplitzKey::default();
    let hashes: Vec<u32> = tuples
        .iter()
        .map(|(s, d, p)| key.hash_v4(*s, *d, Some(*p)))
        .collect();
    let backends: Vec<MaglevBackend> = (0..workload::BACKENDS as u64)
        .map(|i| MaglevBackend {
            id: (0x0A00_010A + i) << 16 | 8080,
            weight: 1,
        })
        .collect();
    let mut ring = vec![0u16; 65537];
    maglev::build(&backends, &mut ring).expect("ring builds");

    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("toeplitz_hash_v4", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for (s, d, p) in &tuples {
                acc ^= key.hash_v4(black_box(*s), *d, Some(*p));
            }
            acc
        })
    });
    group.bench_function("maglev_lookup_65537", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for h in &hashes {
                acc += u32::from(maglev::lookup(&ring, black_box(*h)));
            }
            acc
        })
    });
    group.bench_function("parse_64B", |b| {
        b.iter(|| {
            let mut acc = 0usize;
            for f in &frames {
                if let Ok(h) = fulcrum_model::wire::parse(black_box(f)) {
                    acc += h.l4_offset();
                }
            }
            acc
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = configure();
    targets = established, new_flows, mix, return_path, stages
}
criterion_main!(benches);
