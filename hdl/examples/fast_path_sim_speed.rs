//! Simulation speed of the whole fast path, direct-stepping style, and its throughput in
//! clock cycles per minimum-size frame (a measurement, not a test):
//! `cargo run -p fulcrum-hdl --release --example fast_path_sim_speed`.

use fulcrum_hdl::fast_path_sim::FastPathSim;
use fulcrum_hdl::sim::{Rng, Traffic, settle_passes};
use fulcrum_hdl::vectors::{fix_ip_checksum, valid_frame};
use fulcrum_model::pipeline::Port;

/// A 60-byte UDP frame (the Ethernet minimum without FCS) to `dst`.
fn small_udp(rng: &mut Rng, dst: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    for b in &mut f[..12] {
        *b = rng.byte();
    }
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[192, 0, 2, rng.byte()]);
    ip[16..20].copy_from_slice(&dst);
    ip[20..22].copy_from_slice(&(rng.next_u64() as u16).to_be_bytes());
    ip[22..24].copy_from_slice(&53u16.to_be_bytes());
    ip[24..26].copy_from_slice(&26u16.to_be_bytes());
    fix_ip_checksum(ip);
    f
}

/// CPU time of this thread in seconds (Linux `schedstat`), so a loaded machine does not
/// distort the speed; `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn main() {
    let mut rng = Rng::new(7);
    // Mixed frames: simulation speed.
    let mut sim = FastPathSim::<6>::new(Traffic::SMOOTH, 1);
    let frames = 2_000;
    for _ in 0..frames {
        sim.push(Port::Network, valid_frame(&mut rng));
    }
    let start_cycles = sim.cycles();
    let start_passes = settle_passes();
    let started = std::time::Instant::now();
    let cpu_started = cpu_seconds();
    assert!(sim.run_until_idle(10_000_000));
    let secs = started.elapsed().as_secs_f64();
    let cycles = sim.cycles() - start_cycles;
    let passes = settle_passes() - start_passes;
    println!(
        "simulation: {frames} mixed frames, {cycles} cycles in {secs:.2} s: {:.0} cycles/s, {:.0} frames/s (wall clock)",
        cycles as f64 / secs,
        frames as f64 / secs
    );
    if let (Some(a), Some(b)) = (cpu_started, cpu_seconds()) {
        let cpu = b - a;
        println!(
            "  on the CPU: {cpu:.2} s: {:.0} cycles/s, {:.0} frames/s",
            cycles as f64 / cpu,
            frames as f64 / cpu
        );
    }
    println!(
        "  {:.2} update passes over the design per cycle (two settles)",
        passes as f64 / cycles as f64
    );

    // Back-to-back 60-byte IPv4/UDP frames (hashed, scanned, dropped as not_for_us, and
    // punted when to the appliance's address 0.0.0.0 at reset): cycles per frame.
    for (what, dst) in [("not_for_us", [198, 51, 100, 1]), ("punted", [0, 0, 0, 0])] {
        let mut sim = FastPathSim::<6>::new(Traffic::SMOOTH, 2);
        let n = 500;
        for _ in 0..n {
            sim.push(Port::Network, small_udp(&mut rng, dst));
        }
        let start = sim.cycles();
        assert!(sim.run_until_idle(10_000_000));
        // run_until_idle adds 64 quiet cycles at the end.
        let cycles = sim.cycles() - start - 64;
        println!(
            "60-byte frames, {what}: {n} frames in {cycles} cycles = {:.1} cycles per frame",
            cycles as f64 / n as f64
        );
    }
}
