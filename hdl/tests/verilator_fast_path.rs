//! `FastPath`'s generated Verilog in Verilator against the model: 100,000 seeded frames
//! per run over every configuration `FastPath` serves (L7 punts with the full-NAT pool
//! and settings changes; NAT, full-NAT, DSR, IP-in-IP and GUE services with every algorithm and
//! blind full-NAT replies to pool addresses (to slots with and without their flow), backends
//! changing state and generation, rings rewritten, flows created, moved, expired and
//! evicted; malformed and truncated frames; table writes and commits in the middle of
//! traffic; back to back and with idle cycles and back-pressure), every verdict, output
//! frame and counter compared with `Pipeline::process` exactly as `fast_path.rs` does for
//! the rust-hdl simulation (the same generators and loops, `common`). Verilator checks
//! what yosys synthesises; the rust-hdl runs check the Rust description.
//!
//! The model is compiled once per Verilog and cached under `target/verilator/`
//! (`fulcrum_hdl::verilator`). Needs `verilator`; fails without it (a skipped
//! co-simulation would hide the code-generation bugs it exists for).
//!
//! `cargo test -p fulcrum-hdl --release --test verilator_fast_path`

mod common;

use common::{FwdConfig, Verilated, Workload, run_workload};
use fulcrum_hdl::sim::Traffic;
use fulcrum_model::config::{Algorithm, Mode};

/// Every forward mode `FastPath` has, with every algorithm it has.
const EVERY_MODE: FwdConfig = FwdConfig {
    modes: &[Mode::Nat, Mode::Fullnat, Mode::Dsr, Mode::Ipip, Mode::Gue],
    algorithms: &[
        Algorithm::Maglev,
        Algorithm::IpHash,
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConnections,
        Algorithm::LeastResponseTime,
    ],
    aim_all: true,
    returns: false,
    sticky: true,
};

/// The modes with a return path (and DSR), with replies from backends drawn from the
/// flow table of a model that follows the generator (`common::Guide`), as the rust-hdl
/// run `forward_fullnat_with_replies_and_backpressure_equals_the_model`.
const REPLIES: FwdConfig = FwdConfig {
    modes: &[Mode::Fullnat, Mode::Fullnat, Mode::Nat, Mode::Dsr],
    algorithms: &[Algorithm::Maglev],
    aim_all: false,
    returns: true,
    sticky: false,
};

/// The stateless modes, with traffic to any address (no NAT service: nothing can be a
/// backend's reply).
const STATELESS: FwdConfig = FwdConfig {
    modes: &[Mode::Dsr, Mode::Ipip, Mode::Gue],
    algorithms: &[
        Algorithm::Maglev,
        Algorithm::IpHash,
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConnections,
        Algorithm::LeastResponseTime,
    ],
    aim_all: false,
    returns: false,
    sticky: false,
};

/// The runs (seed, frames, traffic, workload): 100,000 frames in all, one test each
/// (they run in parallel).
fn run(seed: u64, frames: usize, traffic: Traffic, workload: Workload) {
    // FULCRUM_VL_FRAMES scales every run (a quick local run, or a long one).
    let frames = std::env::var("FULCRUM_VL_FRAMES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(frames, |f| f.min(frames));
    let mut dut = Verilated::new(traffic, seed ^ 0x7e51);
    run_workload(&mut dut, workload, seed, frames);
}

#[test]
fn verilog_l7_services_and_settings_equal_the_model() {
    run(0xc051, 10_000, Traffic::BUMPY, Workload::L7);
}

#[test]
fn verilog_stateless_modes_back_to_back_equal_the_model() {
    run(
        0xf0d1,
        30_000,
        Traffic::SMOOTH,
        Workload::Forward(STATELESS),
    );
}

#[test]
fn verilog_every_mode_back_to_back_equals_the_model() {
    run(
        0xf0d2,
        30_000,
        Traffic::SMOOTH,
        Workload::Forward(EVERY_MODE),
    );
}

#[test]
fn verilog_replies_with_backpressure_equal_the_model() {
    run(0xf0d3, 30_000, Traffic::BUMPY, Workload::Forward(REPLIES));
}
