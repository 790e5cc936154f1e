//! The whole fast path against the model: seeded random frames on both ports, settings
//! written and committed in the middle of traffic, and every verdict, output frame (bytes
//! and port) and counter compared with `Pipeline::process` frame by frame.
//!
//! Run in release: `cargo test -p fulcrum-hdl --release --test fast_path`.

use std::collections::VecDeque;

use fulcrum_hdl::fast_path_sim::{Event, FastPathSim};
use fulcrum_hdl::sim::{Rng, Traffic};
use fulcrum_hdl::vectors::{fix_ip_checksum, random_frame, valid_frame};
use fulcrum_model::counters::{DropReason, PuntReason};
use fulcrum_model::flow::{FlowEntry, StickyEntry};
use fulcrum_model::pipeline::{OUT_HEADROOM, Pipeline, Port, Storage};
use fulcrum_model::regmap::{CounterSource, RegisterBus, RegisterFile, addr, counter};
use fulcrum_model::tables::{BACKEND_SLOTS, SERVICE_SLOTS};

/// Flow-table sets of the design under test (log2).
const A: usize = 6;
const WAYS: usize = 4;
const RING: usize = 64;

/// The model beside the hardware, fed the hardware's event log.
struct Reference<'a> {
    regs: RegisterFile<Pipeline<'a>>,
    queued: [VecDeque<Vec<u8>>; 2],
    order: VecDeque<(Port, Vec<u8>)>,
    expected: [VecDeque<Vec<u8>>; 2],
    now_ms: u64,
    verdicts: usize,
}

fn port_index(p: Port) -> usize {
    match p {
        Port::Network => 0,
        Port::Mcu => 1,
    }
}

impl<'a> Reference<'a> {
    fn new(pipeline: Pipeline<'a>) -> Self {
        Reference {
            regs: RegisterFile::new(pipeline),
            queued: Default::default(),
            order: VecDeque::new(),
            expected: Default::default(),
            now_ms: 0,
            verdicts: 0,
        }
    }

    fn push(&mut self, port: Port, frame: &[u8]) {
        if !frame.is_empty() {
            self.queued[port_index(port)].push_back(frame.to_vec());
        }
    }

    fn replay(&mut self, events: Vec<Event>) {
        for e in events {
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
                }
                Event::Verdict(got) => {
                    let (port, frame) = self.order.pop_front().expect("a verdict without a frame");
                    let mut out = vec![0u8; frame.len() + OUT_HEADROOM];
                    let want = self
                        .regs
                        .target()
                        .process(self.now_ms, &frame, port, &mut out);
                    assert_eq!(
                        got, want,
                        "verdict {} differs; frame from {port:?}: {frame:02x?}",
                        self.verdicts
                    );
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
                }
            }
        }
    }

    fn assert_drained(&self) {
        assert!(self.order.is_empty(), "frames without a verdict");
        assert!(self.queued.iter().all(|q| q.is_empty()), "frames not taken");
        assert!(
            self.expected.iter().all(|q| q.is_empty()),
            "frames the hardware did not send"
        );
    }
}

/// Every counter index the model defines.
fn counter_indexes() -> Vec<u32> {
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

fn check_counters(sim: &mut FastPathSim<A>, model: &Pipeline<'_>, all: bool) {
    let indexes = counter_indexes();
    for (n, i) in indexes.into_iter().enumerate() {
        // The full list at the end; the first 64 (globals, drops, punts) in between.
        if !all && n >= 64 {
            break;
        }
        assert_eq!(sim.counter(i), model.counter(i), "counter {i:#x} differs");
    }
    sim.take_events();
}

const OWN: [[u8; 4]; 2] = [[10, 0, 0, 1], [192, 168, 7, 9]];

/// Points an IPv4 frame at `dst` (checksum fixed); other frames are left alone.
fn aim(frame: &mut [u8], dst: [u8; 4]) {
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

fn traffic_frame(rng: &mut Rng) -> Vec<u8> {
    let mut f = if rng.chance(300) {
        valid_frame(rng)
    } else {
        random_frame(rng)
    };
    match rng.below(10) {
        0 | 1 => aim(&mut f, OWN[rng.below(2) as usize]),
        2 => aim(
            &mut f,
            [
                224 + rng.below(16) as u8,
                rng.byte(),
                rng.byte(),
                rng.byte(),
            ],
        ),
        3 => aim(&mut f, [255; 4]),
        _ => {}
    }
    f
}

/// Settings changes: the appliance address and the hash key.
fn write_settings(sim: &mut FastPathSim<A>, rng: &mut Rng) {
    let own = OWN[rng.below(2) as usize];
    sim.write32(addr::ADDRESS, u32::from_be_bytes(own));
    if rng.chance(500) {
        for i in 0..10 {
            sim.write32(addr::HASH_KEY + i, rng.next_u64() as u32);
        }
    }
    sim.write32(addr::CONTROL, 1);
}

fn run(seed: u64, frames: usize, traffic: Traffic) {
    let mut flows = vec![FlowEntry::default(); (1 << A) * WAYS];
    let mut sticky = vec![StickyEntry::default(); (1 << A) * WAYS];
    let mut ring_a = vec![0u16; SERVICE_SLOTS * RING];
    let mut ring_s = vec![0u16; SERVICE_SLOTS * RING];
    let pipeline = Pipeline::new(Storage {
        flows: &mut flows,
        flow_ways: WAYS,
        sticky: &mut sticky,
        sticky_ways: WAYS,
        ring_active: &mut ring_a,
        ring_shadow: &mut ring_s,
    });
    let mut reference = Reference::new(pipeline);
    let mut sim = FastPathSim::<A>::new(traffic, seed ^ 0x5eed);
    let mut rng = Rng::new(seed);
    reference.replay(sim.take_events());
    write_settings(&mut sim, &mut rng);

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
            sim.push(port, f);
        }
        sent += batch;
        // Settings written and committed while those frames are in flight.
        if rng.chance(200) {
            sim.run(rng.below(300) as usize);
            write_settings(&mut sim, &mut rng);
        }
        if rng.chance(100) {
            assert!(sim.run_until_idle(2_000_000), "the fast path hangs");
            reference.replay(sim.take_events());
            reference.assert_drained();
            check_counters(&mut sim, reference.regs.target(), false);
        } else {
            sim.run(rng.below(2000) as usize);
            reference.replay(sim.take_events());
        }
    }
    assert!(sim.run_until_idle(2_000_000), "the fast path hangs");
    reference.replay(sim.take_events());
    reference.assert_drained();
    assert_eq!(reference.verdicts, frames, "every frame has a verdict");
    check_counters(&mut sim, reference.regs.target(), true);
    eprintln!("{frames} frames in {} cycles", sim.cycles());
}

#[test]
fn fast_path_equals_model_back_to_back() {
    run(1, 6_000, Traffic::SMOOTH);
}

#[test]
fn fast_path_equals_model_with_idle_cycles_and_backpressure() {
    run(2, 4_000, Traffic::BUMPY);
}
