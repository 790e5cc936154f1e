//! The direct-stepping test harness: drive a design one clock at a time from a single
//! thread, with seeded random idle cycles on `tvalid` and back-pressure on `tready`.
//!
//! rust-hdl's `Simulation` runs testbenches in threads that hand over at every clock edge
//! (about 8k cycles/s here); stepping the design directly with [`simulate`] runs at about
//! 140k cycles/s, which is what makes tens of thousands of random frames per test
//! affordable. A cycle of a testbench is:
//!
//! 1. set the inputs for this cycle (`ByteSource::drive`, `tready` from [`Traffic`]);
//! 2. [`settle`], then read the handshakes (`tvalid & tready`) and outputs;
//! 3. [`tick`] (rising then falling clock edge);
//! 4. advance the source if its beat was taken.
//!
//! Everything is deterministic: [`Rng`] is SplitMix64 from a seed the test names.

use std::sync::atomic::{AtomicU64, Ordering};

use rust_hdl::prelude::*;

use crate::stream::ByteStreamSlave;

/// Most delta cycles a settle may take before the design counts as oscillating.
const MAX_DELTAS: usize = 200;

/// Propagates the inputs' `next` values through the combinational logic.
///
/// # Panics
/// If the design does not settle (a combinational loop).
pub fn settle<B: Block>(uut: &mut B) {
    for pass in 1..=MAX_DELTAS {
        uut.update_all();
        if !uut.has_changed() {
            PASSES.fetch_add(pass as u64, Ordering::Relaxed);
            return;
        }
    }
    panic!("design did not settle in {MAX_DELTAS} passes: combinational loop?");
}

/// Passes of `update_all` over the whole design made by [`settle`] in this process
/// (for speed measurements: the cost of a simulated cycle is passes × the design).
pub fn settle_passes() -> u64 {
    PASSES.load(Ordering::Relaxed)
}

static PASSES: AtomicU64 = AtomicU64::new(0);

/// One clock cycle: rising edge, settle, falling edge, settle.
pub fn tick<B: Block>(uut: &mut B, clock: impl Fn(&mut B) -> &mut Signal<In, Clock>) {
    clock(uut).next = Clock::from(true);
    settle(uut);
    clock(uut).next = Clock::from(false);
    settle(uut);
}

/// SplitMix64: a tiny, seedable, good-enough generator for test traffic.
#[derive(Debug, Clone)]
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

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `permille / 1000`.
    pub fn chance(&mut self, permille: u32) -> bool {
        self.below(1000) < u64::from(permille)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// How hostile the traffic around a design is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Per mille of cycles the source holds `tvalid` low although it has data.
    pub idle_permille: u32,
    /// Per mille of cycles each sink holds `tready` low.
    pub stall_permille: u32,
}

impl Traffic {
    /// Back-to-back beats, sinks always ready.
    pub const SMOOTH: Traffic = Traffic {
        idle_permille: 0,
        stall_permille: 0,
    };
    /// Idle cycles on the input and back-pressure on every output.
    pub const BUMPY: Traffic = Traffic {
        idle_permille: 300,
        stall_permille: 300,
    };

    /// Whether a sink is ready this cycle.
    pub fn ready(&self, rng: &mut Rng) -> bool {
        !rng.chance(self.stall_permille)
    }
}

/// Plays frames into an 8-bit `s_axis`, one byte per beat, with random idle cycles.
#[derive(Debug, Clone)]
pub struct ByteSource {
    frames: Vec<Vec<u8>>,
    frame: usize,
    byte: usize,
    /// Whether the beat offered this cycle is valid.
    offered: bool,
}

impl ByteSource {
    /// A source that will play `frames` in order (empty frames are skipped).
    pub fn new(frames: Vec<Vec<u8>>) -> Self {
        let frames = frames.into_iter().filter(|f| !f.is_empty()).collect();
        ByteSource {
            frames,
            frame: 0,
            byte: 0,
            offered: false,
        }
    }

    /// Whether every byte has been taken.
    pub fn done(&self) -> bool {
        self.frame >= self.frames.len()
    }

    /// Sets `tvalid`, `tdata`, `tlast`, `tkeep` and `tuser` for this cycle.
    pub fn drive(&mut self, port: &mut ByteStreamSlave, traffic: Traffic, rng: &mut Rng) {
        self.offered = !self.done() && !rng.chance(traffic.idle_permille);
        port.tvalid.next = self.offered;
        port.tkeep.next = 1.into();
        port.tuser.next = false;
        if self.offered {
            let frame = &self.frames[self.frame];
            port.tdata.next = u64::from(frame[self.byte]).into();
            port.tlast.next = self.byte + 1 == frame.len();
        } else {
            // Garbage on an idle bus must not matter.
            port.tdata.next = u64::from(rng.byte()).into();
            port.tlast.next = rng.chance(500);
        }
    }

    /// Call after the clock edge with whether the offered beat was taken.
    pub fn advance(&mut self, taken: bool) {
        if taken {
            assert!(self.offered, "the design took a beat that was not valid");
            self.byte += 1;
            if self.byte == self.frames[self.frame].len() {
                self.byte = 0;
                self.frame += 1;
            }
        }
    }
}
