//! `fulcrum sim --engine hdl`: the simulated appliance with the rust-hdl simulation of the
//! FPGA fast path as its data path gives the same per-backend counts as with the reference
//! model, for the same seeded requests (`--requests`), with no failure: an L7 service,
//! and a Maglev service in DSR, NAT and full-NAT mode.
//!
//! Every frame of the run (clients' SYNs and requests to the VIP, the MCU's proxied
//! connections and health checks to the backends, the backends' answers) goes through
//! the fast path's simulation, cycle by cycle; the MCU programs it over its register bus
//! and reads its counters back for `fulcrum status`.
//!
//! Release builds only (as `engine_hdl`): a debug build simulates ~30x slower, too slow
//! for real TCP. CI runs it in the HDL step: `cargo test -p fulcrum-host --release --test
//! sim_engine_hdl`.

use std::process::Command;

use serde_json::Value;

/// An L7 service (the fast path punts its frames to the MCU's proxy) with two backends
/// served in turn, and a third only for `/api/`.
const L7_CONFIG: &str = r#"
[appliance]
name = "edge-hdl"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
prefix = 16
maglev_ring_size = 251

[[service]]
name = "app"
vip = "10.0.0.110"
protocol = "tcp"
port = 80
mode = "l7"
algorithm = "round_robin"
[service.health]
kind = "http"
path = "/healthz"
# Patient checks: the fast path's simulation carries a few hundred frames a second on
# a loaded machine, and a backend whose first check fails is out at once (the first check
# took over 5 s in CI: the ARP exchange and the handshake through the simulated fast
# path, with two simulations running side by side on 2 cores).
inter = "30s"
fastinter = "1s"
timeout = "30s"
fall = 3

[[service.backend]]
name = "app-1"
address = "10.0.4.41"
port = 8080

[[service.backend]]
name = "app-2"
address = "10.0.4.42"
port = 8080

[[l7]]
service = "app"
# Patient too: a backend exchange through the simulated fast path takes seconds.
request_timeout = "30s"
backend_timeout = "30s"
"#;

/// A DSR service with Maglev, forwarded by the fast path itself (flow table, ring,
/// rewrite towards the backend, which answers the client directly). No health checks:
/// a check that times out on the slow simulation would move flows, and the L7 run above
/// covers the MCU's frames.
const DSR_CONFIG: &str = r#"
[appliance]
name = "edge-hdl"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
prefix = 16
maglev_ring_size = 251
[appliance.flow_table]
sets = 512
ways = 4

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "dsr"
algorithm = "maglev"
[service.health]
kind = "none"

[[service.backend]]
name = "web-1"
address = "10.0.1.11"
mac = "02:00:00:00:01:0b"
[[service.backend]]
name = "web-2"
address = "10.0.1.12"
mac = "02:00:00:00:01:0c"
[[service.backend]]
name = "web-3"
address = "10.0.1.13"
mac = "02:00:00:00:01:0d"
"#;

/// The DSR service balanced by round robin (the fast path's member lists and cursor).
fn round_robin_config() -> String {
    DSR_CONFIG.replace("algorithm = \"maglev\"", "algorithm = \"round_robin\"")
}

/// The DSR service balanced by weighted round robin, weights 3, 1, 1 (nginx's smooth
/// sequence a a b a c).
fn weighted_config() -> String {
    DSR_CONFIG
        .replace(
            "algorithm = \"maglev\"",
            "algorithm = \"weighted_round_robin\"",
        )
        .replace(
            "address = \"10.0.1.11\"\n",
            "address = \"10.0.1.11\"\nweight = 3\n",
        )
}

/// The DSR service balanced by IP hash (the ring at the source-address hash).
fn ip_hash_config() -> String {
    DSR_CONFIG.replace("algorithm = \"maglev\"", "algorithm = \"ip_hash\"")
}

/// The DSR service balanced by least connections (each member's active flows in the
/// fast path's count RAM, per unit of weight; weights 3, 1, 1).
fn least_connections_config() -> String {
    weighted_config().replace(
        "algorithm = \"weighted_round_robin\"",
        "algorithm = \"least_connections\"",
    )
}

/// The DSR service balanced by least response time (no health checks here, so every
/// response time is 0, counted as 1: the choice follows `(active + 1) / weight`).
fn least_response_time_config() -> String {
    weighted_config().replace(
        "algorithm = \"weighted_round_robin\"",
        "algorithm = \"least_response_time\"",
    )
}

/// The same service in NAT mode: the fast path rewrites the clients' frames towards the
/// backends and the backends' replies back to the VIP (the NAT return path), so every
/// answer a client gets went through the fast path both ways.
const NAT_CONFIG: &str = r#"
[appliance]
name = "edge-hdl"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
prefix = 16
maglev_ring_size = 251
[appliance.flow_table]
sets = 512
ways = 4

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "maglev"
[service.health]
kind = "none"

[[service.backend]]
name = "web-1"
address = "10.0.1.11"
port = 8080
mac = "02:00:00:00:01:0b"
[[service.backend]]
name = "web-2"
address = "10.0.1.12"
port = 8080
mac = "02:00:00:00:01:0c"
[[service.backend]]
name = "web-3"
address = "10.0.1.13"
port = 8080
mac = "02:00:00:00:01:0d"
"#;

/// The same service in full-NAT mode: the fast path rewrites the clients' frames towards
/// the backends with the source set to a pool address and the port of the flow's
/// flow-table slot, and the backends' replies to that address and port back to the
/// client from the VIP (the full-NAT return path).
fn fullnat_config() -> String {
    let config = NAT_CONFIG
        .replace("mode = \"nat\"", "mode = \"fullnat\"")
        .replace(
            "maglev_ring_size = 251\n",
            "maglev_ring_size = 251\nsnat_pool = [\"10.0.0.250\"]\nsnat_port_base = 1024\n",
        );
    assert!(config.contains("\"fullnat\"") && config.contains("snat_pool"));
    config
}

fn sim(config: &std::path::Path, engine: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["sim", "--config"])
        .arg(config)
        .args([
            "--engine",
            engine,
            "--clients",
            "3",
            "--rate",
            "5",
            "--requests",
            "6",
            "--long-lived",
            "0",
            "--duration",
            "90",
            "--seed",
            "7",
            "--json",
        ])
        .output()
        .expect("fulcrum runs");
    assert!(
        out.status.success(),
        "fulcrum sim --engine {engine} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `fulcrum sim` on `config` (written to a temporary file) with the model, then with
/// the hdl engine.
fn both_engines(name: &str, config: &str) -> (Value, Value) {
    let dir = std::env::temp_dir().join(format!("fulcrum-sim-hdl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let model = sim(&path, "model");
    let hdl = sim(&path, "hdl");
    let _ = std::fs::remove_dir_all(&dir);
    (model, hdl)
}

/// The first service's requests went to the same backends, as many each, under both
/// engines, and to more than one backend.
fn same_split_over_backends(model: &Value, hdl: &Value) {
    let per = &model["services"][0]["per_backend"];
    assert_eq!(
        hdl["services"][0]["per_backend"], *per,
        "per-backend counts differ"
    );
    assert!(
        per.as_object().unwrap().len() >= 2,
        "the requests spread over the backends: {per}"
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: the rust-hdl simulation is ~30x slower in debug"
)]
fn hdl_engine_serves_like_the_model() {
    let (model, hdl) = both_engines("l7", L7_CONFIG);

    assert_eq!(model["engine"], "model");
    assert_eq!(hdl["engine"], "hdl");
    assert!(
        model["hdl"].is_null(),
        "the model run has no fast-path stats"
    );
    for (name, run) in [("model", &model), ("hdl", &hdl)] {
        let app = &run["services"][0];
        assert_eq!(app["name"], "app");
        assert_eq!(app["sent"], 18, "{name}: 3 clients x 6 requests: {app}");
        assert_eq!(app["failed"], 0, "{name}: {app}");
    }
    // Round robin over two backends, the same requests: the same split.
    assert_eq!(
        hdl["services"][0]["per_backend"], model["services"][0]["per_backend"],
        "per-backend counts differ between the engines"
    );
    assert_eq!(model["services"][0]["per_backend"]["app-1"], 9);
    // The fast path carried the run: the frames in came out (the L7 service's frames are
    // punted to the MCU, the MCU's frames go out to the network), but for the few in
    // flight when the summary was taken.
    let stats = &hdl["hdl"];
    let frames_in = stats["frames_in"].as_u64().unwrap();
    assert!(
        frames_in >= 18 * 8,
        "18 proxied requests need at least 8 frames each through the fast path: {stats}"
    );
    let frames_out = stats["frames_out"].as_u64().unwrap();
    assert!(
        frames_out <= frames_in && frames_out + 10 >= frames_in,
        "{stats}"
    );
    assert_eq!(stats["backlog_drops"], 0, "{stats}");
    assert!(
        stats["cycles"].as_u64().unwrap() >= frames_in * 60,
        "{stats}"
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: the rust-hdl simulation is ~30x slower in debug"
)]
fn hdl_engine_forwards_dsr_like_the_model() {
    let (model, hdl) = both_engines("dsr", DSR_CONFIG);
    for (name, run) in [("model", &model), ("hdl", &hdl)] {
        let web = &run["services"][0];
        assert_eq!(web["sent"], 18, "{name}: {web}");
        assert_eq!(web["failed"], 0, "{name}: {web}");
    }
    // Maglev over the same connections (same seed, same client ports): every backend
    // gets exactly the same requests from the fast path as from the model.
    same_split_over_backends(&model, &hdl);
    // The clients' frames to the VIP went through the fast path (the answers do not:
    // DSR backends answer the clients directly).
    assert!(
        hdl["hdl"]["frames_in"].as_u64().unwrap() >= 18 * 3,
        "{}",
        hdl["hdl"]
    );
    assert_eq!(hdl["hdl"]["backlog_drops"], 0);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: the rust-hdl simulation is ~30x slower in debug"
)]
fn hdl_engine_forwards_nat_both_ways_like_the_model() {
    let (model, hdl) = both_engines("nat", NAT_CONFIG);
    for (name, run) in [("model", &model), ("hdl", &hdl)] {
        let web = &run["services"][0];
        assert_eq!(web["sent"], 18, "{name}: {web}");
        // A reply the fast path did not rewrite back to the VIP would fail the request.
        assert_eq!(web["failed"], 0, "{name}: {web}");
    }
    same_split_over_backends(&model, &hdl);
    // Both directions of every connection went through the fast path.
    assert!(
        hdl["hdl"]["frames_in"].as_u64().unwrap() >= 18 * 6,
        "{}",
        hdl["hdl"]
    );
    assert_eq!(hdl["hdl"]["backlog_drops"], 0);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: the rust-hdl simulation is ~30x slower in debug"
)]
fn hdl_engine_forwards_fullnat_both_ways_like_the_model() {
    let (model, hdl) = both_engines("fullnat", &fullnat_config());
    for (name, run) in [("model", &model), ("hdl", &hdl)] {
        let web = &run["services"][0];
        assert_eq!(web["sent"], 18, "{name}: {web}");
        // A reply the fast path did not take back from the pool address to the client
        // would fail the request.
        assert_eq!(web["failed"], 0, "{name}: {web}");
    }
    same_split_over_backends(&model, &hdl);
    // Both directions of every connection went through the fast path.
    assert!(
        hdl["hdl"]["frames_in"].as_u64().unwrap() >= 18 * 6,
        "{}",
        hdl["hdl"]
    );
    assert_eq!(hdl["hdl"]["backlog_drops"], 0);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: the rust-hdl simulation is ~30x slower in debug"
)]
fn hdl_engine_balances_every_algorithm_like_the_model() {
    for (name, algorithm, config) in [
        ("rr", "round_robin", round_robin_config()),
        ("wrr", "weighted_round_robin", weighted_config()),
        ("iphash", "ip_hash", ip_hash_config()),
        ("lc", "least_connections", least_connections_config()),
        ("lrt", "least_response_time", least_response_time_config()),
    ] {
        assert!(
            config.contains(&format!("algorithm = \"{algorithm}\"")),
            "{name}: the algorithm was replaced"
        );
        let (model, hdl) = both_engines(name, &config);
        for (engine, run) in [("model", &model), ("hdl", &hdl)] {
            let web = &run["services"][0];
            assert_eq!(web["sent"], 18, "{name} {engine}: {web}");
            assert_eq!(web["failed"], 0, "{name} {engine}: {web}");
        }
        // The same connections, the same per-backend split.
        assert_eq!(
            hdl["services"][0]["per_backend"], model["services"][0]["per_backend"],
            "{name}: per-backend counts differ between the engines"
        );
        if name != "iphash" {
            // The round robins and the least algorithms (flows stay in the table until
            // they expire, so active counts grow) spread over more than one backend; IP
            // hash may send all three clients' addresses to one.
            same_split_over_backends(&model, &hdl);
        }
        assert!(
            hdl["hdl"]["frames_in"].as_u64().unwrap() >= 18 * 3,
            "{name}: {}",
            hdl["hdl"]
        );
        assert_eq!(hdl["hdl"]["backlog_drops"], 0, "{name}");
    }
}

/// Persistence in the fast path: weighted round robin (weights 3, 1, 1) with `sticky`,
/// so each client's six connections go to the backend of its first one (the fast path's
/// persistence table), as under the model; without persistence the smooth sequence
/// would spread each client's connections.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: the rust-hdl simulation is ~30x slower in debug"
)]
fn hdl_engine_keeps_persistence_like_the_model() {
    let config = weighted_config().replace(
        "algorithm = \"weighted_round_robin\"\n",
        "algorithm = \"weighted_round_robin\"\nsticky = true\n",
    );
    assert!(config.contains("sticky = true"), "persistence configured");
    let (model, hdl) = both_engines("sticky", &config);
    for (engine, run) in [("model", &model), ("hdl", &hdl)] {
        let web = &run["services"][0];
        assert_eq!(web["sent"], 18, "{engine}: {web}");
        assert_eq!(web["failed"], 0, "{engine}: {web}");
        // Three clients, six connections each, each client on one backend.
        for (backend, n) in web["per_backend"].as_object().unwrap() {
            let n = n.as_u64().unwrap();
            assert_eq!(n % 6, 0, "{engine}: {backend} got {n}: {web}");
        }
    }
    same_split_over_backends(&model, &hdl);
    assert_eq!(hdl["hdl"]["backlog_drops"], 0);
}
