//! The simulated board on a tap device, checking real servers (Python's http.server,
//! redis-server, memcached) in a network namespace this test creates and removes. Needs
//! root (CI runs as root); set FULCRUM_SKIP_ROOT_TESTS=1 to skip it elsewhere.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fulcrum_mgmt::message::CheckFailure;
use fulcrum_model::config::Config;
use fulcrum_model::tables::BackendState;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::{Board, BoardOptions, start};
use tokio::task::LocalSet;

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("command runs");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status();
}

/// The namespace, bridge, veth and tap of one test run; removed on drop.
struct Topology {
    ns: String,
    bridge: String,
    veth: String,
    tap: String,
    servers: Vec<(String, Child)>,
}

impl Topology {
    fn new() -> Topology {
        let id = std::process::id() % 100_000;
        let t = Topology {
            ns: format!("fsim{id}"),
            bridge: format!("fsbr{id}"),
            veth: format!("fsva{id}"),
            tap: format!("fstp{id}"),
            servers: Vec::new(),
        };
        let peer = format!("fsvb{id}");
        sh(&["ip", "netns", "add", &t.ns]);
        sh(&["ip", "link", "add", &t.bridge, "type", "bridge"]);
        sh(&[
            "ip", "link", "add", &t.veth, "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "link", "set", &peer, "netns", &t.ns]);
        sh(&["ip", "link", "set", &t.veth, "master", &t.bridge, "up"]);
        sh(&["ip", "link", "set", &t.bridge, "up"]);
        for (cmd, arg) in [("lo", ""), (peer.as_str(), "")] {
            let _ = arg;
            sh(&["ip", "netns", "exec", &t.ns, "ip", "link", "set", cmd, "up"]);
        }
        for last in [11, 12, 13] {
            sh(&[
                "ip",
                "netns",
                "exec",
                &t.ns,
                "ip",
                "addr",
                "add",
                &format!("10.77.0.{last}/24"),
                "dev",
                &peer,
            ]);
        }
        t
    }

    /// Bridges the board's tap (created when the board opened it).
    fn attach_tap(&self) {
        sh(&["ip", "link", "set", &self.tap, "master", &self.bridge, "up"]);
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.servers.push((name.to_string(), child));
    }

    fn kill(&mut self, name: &str) {
        if let Some(i) = self.servers.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.servers.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for (_, c) in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        quiet(&["ip", "link", "del", &self.tap]);
        quiet(&["ip", "link", "del", &self.veth]);
        quiet(&["ip", "link", "del", &self.bridge]);
        quiet(&["ip", "netns", "del", &self.ns]);
    }
}

fn http_server() -> Vec<&'static str> {
    vec![
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        "10.77.0.11",
    ]
}

const CONFIG: &str = r#"
[appliance]
name = "tap-1"
mac = "02:00:00:00:00:01"
address = "10.77.0.2"
prefix = 24
maglev_ring_size = 1021
flow_table = { sets = 1024, ways = 4 }

[[service]]
name = "web"
vip = "10.77.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "maglev"
[service.health]
kind = "http"
path = "/"
inter = 300
fastinter = 150
downinter = 500
rise = 2
fall = 3
timeout = 300
[[service.backend]]
name = "py-1"
address = "10.77.0.11"
port = 8080

[[service]]
name = "sessions"
vip = "10.77.0.101"
protocol = "tcp"
port = 6379
mode = "nat"
algorithm = "least_connections"
[service.health]
kind = "redis"
inter = 300
fastinter = 150
downinter = 500
timeout = 300
[[service.backend]]
name = "redis-1"
address = "10.77.0.12"

[[service]]
name = "cache"
vip = "10.77.0.102"
protocol = "tcp"
port = 11211
mode = "nat"
algorithm = "round_robin"
[service.health]
kind = "memcached"
inter = 300
fastinter = 150
downinter = 500
timeout = 300
[[service.backend]]
name = "mc-1"
address = "10.77.0.13"
"#;

fn state(board: &Board, service: &str, backend: &str) -> (BackendState, Option<CheckFailure>) {
    let app = board.app.borrow();
    let slot = app.control_plane().backend_slot(service, backend).unwrap();
    let st = board.fpga.borrow().pipeline().backend(slot).unwrap().state;
    (st, app.checker().status(slot).and_then(|s| s.last_failure))
}

async fn until(board: &Board, what: &str, limit: Duration, f: impl Fn(&Board) -> bool) -> Duration {
    let start = Instant::now();
    while !f(board) {
        if start.elapsed() >= limit {
            let app = board.app.borrow();
            for slot in 0..3 {
                eprintln!(
                    "slot {slot}: {:?} {:?}",
                    board.fpga.borrow().pipeline().backend(slot),
                    app.checker().status(slot)
                );
            }
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[test]
fn real_http_redis_and_memcached_backends_through_a_tap() {
    if std::env::var_os("FULCRUM_SKIP_ROOT_TESTS").is_some() {
        eprintln!("skipped: FULCRUM_SKIP_ROOT_TESTS is set");
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root for tap devices and namespaces (CI runs as root); set FULCRUM_SKIP_ROOT_TESTS=1 to skip"
    );
    for tool in ["redis-server", "memcached", "python3"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{tool} is not installed (scripts/test.sh installs it)"
        );
    }
    let _ = env_logger::builder().is_test(true).try_init();
    let mut topo = Topology::new();
    topo.spawn("http", &http_server());
    topo.spawn(
        "redis",
        &[
            "redis-server",
            "--port",
            "6379",
            "--bind",
            "10.77.0.12",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ],
    );
    topo.spawn(
        "memcached",
        &["memcached", "-l", "10.77.0.13", "-p", "11211", "-u", "root"],
    );

    let config: Config = toml::from_str(CONFIG).unwrap();
    let dir = std::env::temp_dir().join(format!("fulcrum-tap-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&rt, async {
        let port = NetworkPort::tap(&topo.tap).expect("tap opens");
        topo.attach_tap();
        let board = start(
            BoardOptions {
                state_dir: dir.clone(),
                config: Some(config),
                force_config: false,
                key: None,
                serial: false,
                geometry: Geometry {
                    sets: 1024,
                    ways: 4,
                    ring: 1021,
                },
            },
            port,
        )
        .expect("board starts");
        let all = [("web", "py-1"), ("sessions", "redis-1"), ("cache", "mc-1")];
        let took = until(
            &board,
            "all three real servers up and resolved",
            Duration::from_secs(20),
            |b| {
                all.iter().all(|(s, n)| {
                    let app = b.app.borrow();
                    let slot = app.control_plane().backend_slot(s, n).unwrap();
                    let entry = *b.fpga.borrow().pipeline().backend(slot).unwrap();
                    entry.state == BackendState::Up
                        && entry.mac != [0; 6]
                        && app
                            .checker()
                            .status(slot)
                            .is_some_and(|st| st.checks_passed >= 2)
                })
            },
        )
        .await;
        println!("real servers confirmed up {took:?} after boot");

        // Kill the HTTP server: refused → down; start it again → up.
        topo.kill("http");
        let took = until(&board, "py-1 down", Duration::from_secs(5), |b| {
            state(b, "web", "py-1").0 == BackendState::Down
        })
        .await;
        println!("http.server killed: down after {took:?}");
        assert_eq!(state(&board, "web", "py-1").1, Some(CheckFailure::Refused));
        topo.spawn("http", &http_server());
        let took = until(&board, "py-1 up", Duration::from_secs(10), |b| {
            state(b, "web", "py-1").0 == BackendState::Up
        })
        .await;
        println!("http.server restarted: up after {took:?}");

        topo.kill("redis");
        topo.kill("memcached");
        until(
            &board,
            "redis and memcached down",
            Duration::from_secs(5),
            |b| {
                state(b, "sessions", "redis-1").0 == BackendState::Down
                    && state(b, "cache", "mc-1").0 == BackendState::Down
            },
        )
        .await;
        assert_eq!(state(&board, "web", "py-1").0, BackendState::Up);
        let rtt = {
            let app = board.app.borrow();
            let slot = app.control_plane().backend_slot("web", "py-1").unwrap();
            app.checker().rtt_us(slot).unwrap()
        };
        println!("py-1 smoothed check latency {rtt} us");
        assert!(rtt > 0);
        let _ = Ipv4Addr::UNSPECIFIED;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
