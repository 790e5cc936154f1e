//! The whole fast path against the model in the rust-hdl simulation: seeded random
//! frames on both ports, settings written and committed in the middle of traffic, and
//! every verdict, output frame (bytes and port) and counter compared with
//! `Pipeline::process` frame by frame. The generators, the replay and the traffic loops
//! are in `common` (shared with `verilator_fast_path.rs`, which runs the generated
//! Verilog on 100,000 frames of the same kinds).
//!
//! Run in release: `cargo test -p fulcrum-hdl --release --test fast_path`.

mod common;

use common::{A, FwdConfig, Summary, Workload, run_workload};
use fulcrum_hdl::fast_path_sim::FastPathSim;
use fulcrum_hdl::sim::Traffic;
use fulcrum_model::config::{Algorithm, Mode};

fn run(seed: u64, frames: usize, traffic: Traffic) {
    let mut sim = FastPathSim::<A>::new(traffic, seed ^ 0x5eed);
    run_workload(&mut sim, Workload::L7, seed, frames);
}

// The L7 workload (every parser verdict; settings and L7 service entries written in the
// middle of traffic). The generated Verilog runs its bumpy kind on 10,000 frames in
// Verilator (`verilator_fast_path.rs`); these are the rust-hdl description's own runs.
#[test]
fn fast_path_equals_model_back_to_back() {
    run(1, 2_000, Traffic::SMOOTH);
}

#[test]
fn fast_path_equals_model_with_idle_cycles_and_backpressure() {
    run(2, 1_000, Traffic::BUMPY);
}

/// The seed of a forward run: `default`, or FULCRUM_SEED (to explore other seeds).
fn seed(default: u64) -> u64 {
    std::env::var("FULCRUM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_forward(seed: u64, frames: usize, traffic: Traffic, config: FwdConfig) -> Summary {
    // FULCRUM_FWD_FRAMES overrides the count (a quick local run, or a long one).
    let frames = std::env::var("FULCRUM_FWD_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(frames);
    let start = std::time::Instant::now();
    let mut sim = FastPathSim::<A>::new(traffic, seed ^ 0x5eed);
    let summary = run_workload(&mut sim, Workload::Forward(config), seed, frames);
    eprintln!("{:.1} s", start.elapsed().as_secs_f64());
    summary
}

/// Frames of verdict class `class` in a run (`common::Reference` names them).
fn class(summary: &Summary, class: &str) -> usize {
    summary.classes.get(class).copied().unwrap_or(0)
}

#[test]
fn forward_dsr_and_tunnels_equal_the_model() {
    run_forward(
        11,
        400,
        Traffic::SMOOTH,
        FwdConfig {
            modes: &[Mode::Dsr, Mode::Ipip, Mode::Gue],
            algorithms: &[Algorithm::Maglev],
            aim_all: false,
            returns: false,
            sticky: false,
        },
    );
}

#[test]
fn forward_every_mode_with_backpressure_equals_the_model() {
    run_forward(
        seed(12),
        400,
        Traffic::BUMPY,
        FwdConfig {
            modes: &[Mode::Nat, Mode::Dsr, Mode::Ipip, Mode::Gue],
            algorithms: &[Algorithm::Maglev],
            aim_all: true,
            returns: false,
            sticky: false,
        },
    );
}

#[test]
fn forward_round_robin_ip_hash_and_weighted_equal_the_model() {
    run_forward(
        seed(15),
        400,
        Traffic::BUMPY,
        FwdConfig {
            modes: &[Mode::Nat, Mode::Dsr, Mode::Ipip, Mode::Gue],
            algorithms: &[
                Algorithm::RoundRobin,
                Algorithm::IpHash,
                Algorithm::Maglev,
                Algorithm::WeightedRoundRobin,
            ],
            // Any slot may be rewritten, so services that get traffic change too (fewer
            // frames reach a backend than with `aim_all`: 58 of 400 at seed 15).
            aim_all: false,
            returns: false,
            sticky: false,
        },
    );
}

#[test]
fn forward_least_connections_and_least_response_time_equal_the_model() {
    let summary = run_forward(
        seed(31),
        400,
        Traffic::BUMPY,
        FwdConfig {
            modes: &[Mode::Nat, Mode::Dsr, Mode::Ipip, Mode::Gue],
            algorithms: &[
                Algorithm::LeastConnections,
                Algorithm::LeastResponseTime,
                Algorithm::Maglev,
            ],
            aim_all: true,
            returns: false,
            sticky: false,
        },
    );
    eprintln!("least: {summary:?}");
}

/// Persistence (source-IP stickiness): half the services sticky, with every algorithm
/// family, few clients (each opens many flows), timeouts short enough to expire between
/// bursts, backends changing state and generation under the entries.
#[test]
fn forward_sticky_services_equal_the_model() {
    let summary = run_forward(
        // Seed 42: its member-list rewrites leave live entries on backends that left the
        // list (a fast path without the membership scan fails at frame 414).
        seed(42),
        500,
        Traffic::BUMPY,
        FwdConfig {
            modes: &[Mode::Nat, Mode::Dsr, Mode::Fullnat, Mode::Gue],
            algorithms: &[
                Algorithm::WeightedRoundRobin,
                Algorithm::LeastConnections,
                Algorithm::Maglev,
            ],
            aim_all: true,
            returns: false,
            sticky: true,
        },
    );
    eprintln!("sticky: {summary:?}");
}

/// The round-robin cursor is reset when only the service entry changes (the controller's
/// entry compare at the commit), and kept when an equal entry is written again.
#[test]
fn round_robin_resets_when_only_the_service_entry_changes() {
    let mut sim = FastPathSim::<A>::new(Traffic::SMOOTH, 0x5eed);
    run_workload(&mut sim, Workload::EntryReset, 16, 12);
}

#[test]
fn forward_nat_with_replies_and_backpressure_equals_the_model() {
    run_forward(
        // Seed 22 (was 14 until the line-rate and block-RAM merges changed the timing of the
        // cycle-counted configuration changes: 14 then forwarded 28 of 400, under the floor).
        seed(22),
        400,
        Traffic::BUMPY,
        FwdConfig {
            modes: &[Mode::Nat, Mode::Nat, Mode::Dsr],
            algorithms: &[Algorithm::Maglev],
            aim_all: false,
            returns: true,
            sticky: false,
        },
    );
}

/// Full NAT both ways: clients' frames rewritten to the pool endpoint of their flow's
/// slot, backends' replies to that endpoint (and to other slots, ports below the base,
/// other pool addresses, from other backends, of the other protocol) back to the client.
#[test]
fn forward_fullnat_with_replies_and_backpressure_equals_the_model() {
    let summary = run_forward(
        seed(17),
        400,
        Traffic::BUMPY,
        FwdConfig {
            modes: &[Mode::Fullnat, Mode::Fullnat, Mode::Fullnat, Mode::Nat],
            algorithms: &[Algorithm::Maglev],
            aim_all: false,
            returns: true,
            sticky: false,
        },
    );
    assert!(class(&summary, "to_backend fullnat") >= 20);
    assert!(class(&summary, "to_client fullnat") >= 10);
    assert!(class(&summary, "drop return_no_flow") >= 10);
}

/// Full NAT with replies the generator aims without seeing the flow table (as the
/// Verilator runs do): mostly to slots without their flow.
#[test]
fn forward_fullnat_with_blind_replies_equals_the_model() {
    let summary = run_forward(
        seed(19),
        400,
        Traffic::SMOOTH,
        FwdConfig {
            modes: &[Mode::Fullnat, Mode::Nat, Mode::Ipip],
            algorithms: &[Algorithm::Maglev],
            aim_all: false,
            returns: false,
            sticky: false,
        },
    );
    assert!(class(&summary, "to_backend fullnat") >= 10);
    assert!(class(&summary, "drop return_no_flow") >= 10);
}
