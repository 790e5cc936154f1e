//! The simulated board's FPGA as the rust-hdl simulation of the fast path
//! (`fulcrum_hdl::pipeline::FastPath`), for `fulcrum sim --engine hdl`.
//!
//! The simulation runs on its own OS thread, clocked only while it has work (a frame in
//! flight, a register access), as a clocked design whose inputs are idle would only count
//! cycles. The board talks to it as to the real chip:
//! - frames go in on port 1 (network) or port 2 (MCU) and come out where the fast path
//!   sends them ([`HdlFpga::send`], [`HdlFpga::take_output`]);
//! - the MCU's register accesses go over the fast path's parallel register bus
//!   ([`HdlFpga::write32`], [`HdlFpga::read32`]), the same register map the model's
//!   `RegisterFile` decodes. A read blocks the MCU until the simulation answers, as an SPI
//!   transaction blocks it on the board.
//!
//! Two documented timing rules of the fast path's register block are kept the way the
//! board's SPI bus keeps them by being slow (`fulcrum_hdl::pipeline` module doc): after a
//! write to `COUNTER_SELECT` the simulation runs [`COUNTER_LATCH_CYCLES`] before the next
//! access, and after a write to `CONTROL` (commit) it runs until `STATUS.0` clears.
//!
//! What the fast path cannot do yet, the host refuses before starting (`fulcrum sim
//! --engine hdl` names the service). If the simulation ever stops (a verdict code the
//! model has no name for: a hardware bug), the board logs it once; frames are then lost
//! and register reads return all ones, as from a dead bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};

use fulcrum_hdl::fast_path_sim::{Event, FastPathSim};
use fulcrum_hdl::pipeline::COUNTER_LATCH_CYCLES;
use fulcrum_hdl::sim::Traffic;
use fulcrum_model::pipeline::Port;
use fulcrum_model::regmap::{RegisterBus, addr};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Flow-table sets (log2) of the simulated fast path: the board image's (the same as
/// `fulcrum pcap --engine hdl`'s).
pub const SETS_LOG2: usize = fulcrum_hdl::FLOW_SETS_LOG2;

/// Frames waiting for the simulation before new ones are dropped (the FPGA's input FIFO
/// would drop them on the board when the pipeline falls behind).
pub const BACKLOG_FRAMES: usize = 512;

/// Cycles the simulation runs between looks at its command queue while a frame is in
/// flight.
const STEP_CYCLES: usize = 16;

/// Cycles run after the last frame or register access before the clock stops: the
/// counter read-modify-writes of the last verdict take 8 (`fulcrum_hdl::pipeline`).
const SETTLE_CYCLES: u64 = 16;

/// Most cycles a commit may take before the bus gives up waiting for `STATUS.0`.
const COMMIT_CYCLES: u32 = 100_000;

enum Command {
    Frame(Port, Vec<u8>),
    Write(u16, u32),
    Read(u16, SyncSender<u32>),
}

/// What the simulation thread reports.
#[derive(Debug, Default)]
pub struct HdlStats {
    /// Clock cycles simulated.
    pub cycles: AtomicU64,
    /// Frames given to the fast path.
    pub frames_in: AtomicU64,
    /// Frames the fast path transmitted (both ports).
    pub frames_out: AtomicU64,
    /// Frames dropped before the fast path because the simulation fell behind.
    pub backlog_drops: AtomicU64,
    /// Set when the simulation thread has stopped.
    pub stopped: AtomicBool,
}

/// A handle to the simulated fast path.
pub struct HdlFpga {
    commands: mpsc::Sender<Command>,
    backlog: Arc<AtomicUsize>,
    output: Option<UnboundedReceiver<(Port, Vec<u8>)>>,
    stats: Arc<HdlStats>,
    warned: AtomicBool,
}

impl HdlFpga {
    /// Starts the simulation thread with a freshly reset fast path; returns once it is out
    /// of reset (seconds: the reset clears the rings, 16,384 cycles).
    pub fn start() -> std::io::Result<HdlFpga> {
        let (commands, rx) = mpsc::channel();
        let (out_tx, out_rx) = unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(HdlStats::default());
        let (b, s) = (backlog.clone(), stats.clone());
        let (ready_tx, ready) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("fpga-hdl".into())
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    simulate(rx, out_tx, &b, &s, ready_tx)
                }));
                s.stopped.store(true, Ordering::SeqCst);
                if let Err(panic) = run {
                    let why = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("unknown");
                    log::error!("the FPGA fast-path simulation stopped: {why}");
                }
            })?;
        // As on the board, the FPGA is out of reset (its rings cleared) before the MCU
        // talks to it.
        let _ = ready.recv();
        Ok(HdlFpga {
            commands,
            backlog,
            output: Some(out_rx),
            stats,
            warned: AtomicBool::new(false),
        })
    }

    /// The simulation's counters.
    pub fn stats(&self) -> &HdlStats {
        &self.stats
    }

    /// The frames the fast path transmits, with their port (once; the forwarding loop
    /// takes it).
    pub fn take_output(&mut self) -> Option<UnboundedReceiver<(Port, Vec<u8>)>> {
        self.output.take()
    }

    fn dead(&self) {
        if !self.warned.swap(true, Ordering::SeqCst) {
            log::error!(
                "the FPGA fast-path simulation is not running: frames and register accesses are lost"
            );
        }
    }

    /// Gives the fast path a frame received on `port` (dropped, and counted, when the
    /// simulation is [`BACKLOG_FRAMES`] frames behind).
    pub fn send(&self, port: Port, frame: Vec<u8>) {
        if self.backlog.load(Ordering::SeqCst) >= BACKLOG_FRAMES {
            self.stats.backlog_drops.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.backlog.fetch_add(1, Ordering::SeqCst);
        if self.commands.send(Command::Frame(port, frame)).is_err() {
            self.dead();
        }
    }

    /// A register write on the fast path's bus (in order with frames and other accesses).
    pub fn write32(&self, addr: u16, value: u32) {
        if self.commands.send(Command::Write(addr, value)).is_err() {
            self.dead();
        }
    }

    /// A register read on the fast path's bus; all ones if the simulation has stopped.
    pub fn read32(&self, addr: u16) -> u32 {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.commands.send(Command::Read(addr, tx)).is_err() {
            self.dead();
            return u32::MAX;
        }
        rx.recv().unwrap_or_else(|_| {
            self.dead();
            u32::MAX
        })
    }
}

/// The simulation thread: commands in arrival order, clocked while busy.
///
/// Busy means: a frame has no verdict yet, or a verdict's output frame has not left yet,
/// or a register access just happened; then a few more cycles let the last counter
/// updates finish ([`SETTLE_CYCLES`]), and the clock stops until the next command.
fn simulate(
    commands: Receiver<Command>,
    output: UnboundedSender<(Port, Vec<u8>)>,
    backlog: &AtomicUsize,
    stats: &HdlStats,
    ready: SyncSender<()>,
) {
    // Returns once the fast path is out of reset (its reset clears the rings).
    let mut sim = Box::new(FastPathSim::<SETS_LOG2>::new(Traffic::SMOOTH, 0));
    let _ = ready.send(());
    // Frames without a verdict, and verdicts whose frame has not left.
    let (mut no_verdict, mut unsent) = (0u64, 0u64);
    let mut settle = 0u64;
    loop {
        let busy = no_verdict > 0 || unsent > 0 || settle > 0;
        let command = if busy {
            match commands.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return,
            }
        } else {
            match commands.recv() {
                Ok(c) => Some(c),
                Err(_) => return,
            }
        };
        sim.set_now(crate::fpga::now_ms());
        match command {
            Some(Command::Frame(port, frame)) => {
                backlog.fetch_sub(1, Ordering::SeqCst);
                stats.frames_in.fetch_add(1, Ordering::Relaxed);
                if !frame.is_empty() {
                    no_verdict += 1;
                    sim.push(port, frame);
                }
                continue;
            }
            Some(Command::Write(a, v)) => {
                sim.write32(a, v);
                if a == addr::COUNTER_SELECT {
                    sim.run(COUNTER_LATCH_CYCLES);
                } else if a == addr::CONTROL && v & 1 != 0 {
                    let mut waited = 0;
                    while sim.read32(addr::STATUS) & 1 != 0 && waited < COMMIT_CYCLES {
                        sim.run(16);
                        waited += 17;
                    }
                }
                settle = SETTLE_CYCLES;
            }
            Some(Command::Read(a, reply)) => {
                let _ = reply.send(sim.read32(a));
            }
            None if no_verdict > 0 || unsent > 0 => {
                sim.run(STEP_CYCLES);
                settle = SETTLE_CYCLES;
            }
            None => {
                sim.run(settle as usize);
                settle = 0;
            }
        }
        stats.cycles.store(sim.cycles(), Ordering::Relaxed);
        for event in sim.take_events() {
            match event {
                Event::Verdict(v) => {
                    no_verdict = no_verdict.saturating_sub(1);
                    if v.egress.is_some() {
                        unsent += 1;
                    }
                }
                Event::Frame(port, bytes) => {
                    unsent = unsent.saturating_sub(1);
                    stats.frames_out.fetch_add(1, Ordering::Relaxed);
                    if output.send((port, bytes)).is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}
