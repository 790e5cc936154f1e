//! Simulation speed of the whole fast path, direct-stepping style (a measurement, not a
//! test): `cargo run -p fulcrum-hdl --release --example fast_path_sim_speed`.

use fulcrum_hdl::fast_path_sim::FastPathSim;
use fulcrum_hdl::sim::{Rng, Traffic};
use fulcrum_hdl::vectors::valid_frame;
use fulcrum_model::pipeline::Port;

fn main() {
    let mut sim = FastPathSim::<6>::new(Traffic::SMOOTH, 1);
    let mut rng = Rng::new(7);
    let frames = 2_000;
    for _ in 0..frames {
        sim.push(Port::Network, valid_frame(&mut rng));
    }
    let start_cycles = sim.cycles();
    let started = std::time::Instant::now();
    assert!(sim.run_until_idle(10_000_000));
    let secs = started.elapsed().as_secs_f64();
    let cycles = sim.cycles() - start_cycles;
    println!(
        "fast path: {frames} frames, {cycles} cycles in {secs:.2} s: {:.0} cycles/s, {:.0} frames/s",
        cycles as f64 / secs,
        frames as f64 / secs
    );
}
