//! Helpers of the end-to-end tests: configs and a runner for one scenario.

use std::time::Duration;

use fulcrum_model::config::Config;
pub use fulcrum_sim::fpga::Engine;
use fulcrum_sim::scenario::{Drill, Scenario, Summary, run};

/// Fast health checks: a dead backend is out after `fall × fastinter` ≈ 300–400 ms.
pub const FAST_CHECKS: &str =
    "inter = 300\nfastinter = 100\ndowninter = 300\nrise = 2\nfall = 3\ntimeout = 100\n";
/// Unhurried health checks for tests that kill no backend: a check answered late because
/// a loaded test machine starved the simulation must not take a live backend down.
pub const CALM_CHECKS: &str =
    "inter = 1000\nfastinter = 1000\ndowninter = 1000\nrise = 2\nfall = 3\ntimeout = 900\n";

/// A config with one TCP service on 10.0.0.100:80 in `mode` with `algorithm`, backends
/// 10.0.1.11.. with `weights`, fast health checks, and `extra` lines in the service.
pub fn one_service(mode: &str, algorithm: &str, weights: &[u16], extra: &str) -> Config {
    one_service_checked(mode, algorithm, weights, extra, FAST_CHECKS)
}

/// [`one_service`] with the health check timing `checks` ([`FAST_CHECKS`], [`CALM_CHECKS`]).
pub fn one_service_checked(
    mode: &str,
    algorithm: &str,
    weights: &[u16],
    extra: &str,
    checks: &str,
) -> Config {
    build("tcp", 80, 8080, mode, algorithm, weights, extra, checks)
}

/// A config with one UDP service on 10.0.0.100:53 in `mode` with `algorithm`, backends
/// 10.0.1.11.. (echoing on 5353, or 53 where the mode cannot change the port) with
/// `weights`, health-checked over HTTP on port 8000.
pub fn one_udp_service(mode: &str, algorithm: &str, weights: &[u16]) -> Config {
    let checks = format!("port = 8000\n{CALM_CHECKS}");
    build("udp", 53, 5353, mode, algorithm, weights, "", &checks)
}

#[allow(clippy::too_many_arguments)]
fn build(
    protocol: &str,
    port: u16,
    backend_port: u16,
    mode: &str,
    algorithm: &str,
    weights: &[u16],
    extra: &str,
    checks: &str,
) -> Config {
    let mut text = format!(
        "[appliance]\nname = \"e2e\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\nprefix = 16\nsnat_pool = [\"10.0.0.250\"]\nmaglev_ring_size = 4093\nflow_table = {{ sets = 4096, ways = 4 }}\n\n[[service]]\nname = \"web\"\nvip = \"10.0.0.100\"\nprotocol = \"{protocol}\"\nport = {port}\nmode = \"{mode}\"\nalgorithm = \"{algorithm}\"\n{extra}\n[service.health]\nkind = \"http\"\n{checks}"
    );
    let port = if matches!(mode, "nat" | "fullnat") {
        format!("port = {backend_port}\n")
    } else {
        String::new()
    };
    for (i, w) in weights.iter().enumerate() {
        text.push_str(&format!(
            "[[service.backend]]\nname = \"web-{}\"\naddress = \"10.0.1.{}\"\n{port}weight = {w}\n",
            i + 1,
            11 + i
        ));
    }
    let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    if let Err(e) = config.validate() {
        panic!("{e:?}\n{text}");
    }
    config
}

/// One simulation at a time: the scenarios run in real time with request timeouts, and the
/// test harness runs a binary's tests on parallel threads, so two simulations starving
/// each other of CPU fail requests that a machine to themselves would serve.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs a scenario on a fresh thread-local runtime (one scenario at a time), the FPGA
/// being the reference model.
pub fn simulate(
    config: Config,
    clients: usize,
    rate: f64,
    seconds: f64,
    drills: Vec<Drill>,
    long_lived: usize,
) -> Summary {
    simulate_on(
        Engine::Model,
        config,
        clients,
        rate,
        seconds,
        drills,
        long_lived,
    )
}

/// [`simulate`] with the FPGA's data path run by `engine`.
pub fn simulate_on(
    engine: Engine,
    config: Config,
    clients: usize,
    rate: f64,
    seconds: f64,
    drills: Vec<Drill>,
    long_lived: usize,
) -> Summary {
    // A panicking test poisons the lock; the next one may still run.
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "fulcrum-e2e-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let summary = tokio::task::LocalSet::new().block_on(&rt, async {
        run(
            Scenario {
                config,
                seed: 42,
                clients,
                rate,
                duration: Duration::from_secs_f64(seconds),
                drills,
                key: None,
                listen: None,
                serial: false,
                state_dir: dir.clone(),
                long_lived,
                engine,
                requests: None,
            },
            |_| {},
        )
        .await
        .expect("scenario runs")
    });
    let _ = std::fs::remove_dir_all(&dir);
    summary
}

/// Fractions of answers per backend name, in `names` order.
pub fn shares(summary: &Summary, names: &[&str]) -> Vec<f64> {
    let s = &summary.services[0];
    let total: u64 = s.per_backend.values().sum();
    names
        .iter()
        .map(|n| s.per_backend.get(*n).copied().unwrap_or(0) as f64 / total.max(1) as f64)
        .collect()
}
