//! Real clients and real servers through the simulated appliance on a tap device (root):
//! a NAT service, a full-NAT service (weighted), a DSR service whose Linux backends hold
//! the VIP on loopback, IP-in-IP and GUE services whose backends decapsulate
//! (`scripts/decap.py` into a TUN device: this kernel has no `ipip`/`fou`), and an L7
//! service that `curl` reaches through the MCU's proxy to Python's `http.server`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fulcrum_model::config::Config;
use fulcrum_model::tables::BackendState;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::tap_lab::TapLab;
use fulcrum_sim::{BoardOptions, start};

const CONFIG: &str = r#"
[appliance]
name = "tap-lab"
mac = "02:00:00:00:00:01"
address = "10.88.0.2"
prefix = 24
maglev_ring_size = 1021
flow_table = { sets = 1024, ways = 4 }
snat_pool = ["10.88.0.250"]

[[service]]
name = "web"
vip = "10.88.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "round_robin"
[service.health]
kind = "http"
inter = 500
fastinter = 200
timeout = 300
[[service.backend]]
name = "py-1"
address = "10.88.0.11"
port = 8080
[[service.backend]]
name = "py-2"
address = "10.88.0.12"
port = 8080

[[service]]
name = "direct"
vip = "10.88.0.101"
protocol = "tcp"
port = 8081
mode = "dsr"
algorithm = "round_robin"
[service.health]
kind = "tcp"
inter = 500
fastinter = 200
timeout = 300
[[service.backend]]
name = "dsr-1"
address = "10.88.0.21"
[[service.backend]]
name = "dsr-2"
address = "10.88.0.22"

[[service]]
name = "pooled"
vip = "10.88.0.104"
protocol = "tcp"
port = 80
mode = "fullnat"
algorithm = "weighted_round_robin"
[service.health]
kind = "http"
inter = 500
fastinter = 200
timeout = 300
[[service.backend]]
name = "fn-1"
address = "10.88.0.13"
port = 8080
weight = 3
[[service.backend]]
name = "fn-2"
address = "10.88.0.14"
port = 8080

[[service]]
name = "tunnel"
vip = "10.88.0.102"
protocol = "tcp"
port = 8082
mode = "ipip"
algorithm = "round_robin"
[service.health]
kind = "tcp"
inter = 500
fastinter = 200
timeout = 300
[[service.backend]]
name = "ipip-1"
address = "10.88.0.31"
[[service.backend]]
name = "ipip-2"
address = "10.88.0.32"

[[service]]
name = "udp-tunnel"
vip = "10.88.0.103"
protocol = "tcp"
port = 8083
mode = "gue"
algorithm = "round_robin"
[service.health]
kind = "tcp"
inter = 500
fastinter = 200
timeout = 300
[[service.backend]]
name = "gue-1"
address = "10.88.0.41"
[[service.backend]]
name = "gue-2"
address = "10.88.0.42"

[[service]]
name = "app"
vip = "10.88.0.110"
protocol = "tcp"
port = 80
mode = "l7"
algorithm = "round_robin"
[service.health]
kind = "http"
inter = 500
fastinter = 200
timeout = 300
[[service.backend]]
name = "py-1"
address = "10.88.0.11"
port = 8080
[[service.backend]]
name = "py-2"
address = "10.88.0.12"
port = 8080

[[l7]]
service = "app"
cookie = "FULCRUM"
[[l7.deny]]
path_prefix = "/admin"
"#;

/// `curl -si URL` with extra arguments; the whole answer (head and body).
fn curl(url: &str, extra: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("curl")
        .args(["-si", "--max-time", "3"])
        .args(extra)
        .arg(url)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl exit {:?}", out.status.code()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn get(addr: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    out.lines()
        .last()
        .map(str::to_string)
        .ok_or_else(|| "empty".into())
}

/// (service, backend) of every L4 backend; the tunnels' at 4..8.
const BACKENDS: [(&str, &str); 10] = [
    ("web", "py-1"),
    ("web", "py-2"),
    ("direct", "dsr-1"),
    ("direct", "dsr-2"),
    ("tunnel", "ipip-1"),
    ("tunnel", "ipip-2"),
    ("udp-tunnel", "gue-1"),
    ("udp-tunnel", "gue-2"),
    ("pooled", "fn-1"),
    ("pooled", "fn-2"),
];

#[test]
fn real_clients_and_servers_through_every_mode() {
    if std::env::var_os("FULCRUM_SKIP_ROOT_TESTS").is_some() {
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root (CI runs as root); FULCRUM_SKIP_ROOT_TESTS=1 skips"
    );
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config: Config = toml::from_str(CONFIG).unwrap();
    config.validate().unwrap();
    let mut lab = TapLab::create(&config).expect("topology");
    config.appliance.gateway = Some(lab.router);
    let dir = std::env::temp_dir().join(format!("fulcrum-tap-lab-state-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async {
        let port = NetworkPort::tap(&lab.tap).expect("tap");
        lab.attach_tap().expect("tap attached");
        let board = start(
            BoardOptions {
                state_dir: dir.clone(),
                config: Some(config),
                force_config: true,
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
        .expect("board");
        let t0 = Instant::now();
        loop {
            let all_up = {
                let app = board.app.borrow();
                let fpga = board.fpga.borrow();
                BACKENDS.iter().all(|(s, b)| {
                    let slot = app.control_plane().backend_slot(s, b).unwrap();
                    let e = fpga.pipeline().backend(slot).unwrap();
                    e.state == BackendState::Up
                        && e.mac != [0; 6]
                        && app
                            .checker()
                            .status(slot)
                            .is_some_and(|h| h.checks_passed >= 2)
                })
            };
            if all_up {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "backends never came up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Real sockets in the clients' namespace; the board keeps running meanwhile.
        let clients = lab.in_clients(|| {
            let web: Vec<_> = (0..20).map(|_| get("10.88.0.100:80")).collect();
            let dsr: Vec<_> = (0..20).map(|_| get("10.88.0.101:8081")).collect();
            let pooled: Vec<_> = (0..20).map(|_| get("10.88.0.104:80")).collect();
            let ipip: Vec<_> = (0..20).map(|_| get("10.88.0.102:8082")).collect();
            let gue: Vec<_> = (0..20).map(|_| get("10.88.0.103:8083")).collect();
            let l7: Vec<_> = (0..10)
                .map(|_| curl("http://10.88.0.110/", &[]))
                .chain([
                    curl("http://10.88.0.110/admin/", &[]),
                    curl("http://10.88.0.110/", &["-H", "Cookie: FULCRUM=bogus"]),
                ])
                .collect();
            (web, dsr, pooled, ipip, gue, l7)
        });
        while !clients.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (web, dsr, pooled, ipip, gue, l7) =
            clients.join().unwrap().expect("in the clients' namespace");
        println!(
            "web: {web:?}\ndsr: {dsr:?}\npooled: {pooled:?}\nipip: {ipip:?}\ngue: {gue:?}\nl7: {l7:?}"
        );
        // L7: curl through the MCU's proxy to http.server, round robin per request, a
        // persistence cookie on every answer (curl keeps none), 403 for the deny rule.
        let l7: Vec<String> = l7
            .into_iter()
            .map(|r| r.expect("curl to the L7 VIP"))
            .collect();
        for answer in &l7[..10] {
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.contains("Set-Cookie: FULCRUM="), "{answer}");
        }
        for backend in ["ok from py-1", "ok from py-2"] {
            assert_eq!(
                l7[..10].iter().filter(|a| a.contains(backend)).count(),
                5,
                "{l7:?}"
            );
        }
        assert!(l7[10].contains(" 403 "), "{}", l7[10]);
        assert!(
            l7[11].contains(" 200 ") && l7[11].contains("Set-Cookie: FULCRUM="),
            "{}",
            l7[11]
        );
        let web: Vec<String> = web.into_iter().map(|r| r.expect("NAT request")).collect();
        assert_eq!(
            web.iter().filter(|b| b.contains("py-1")).count(),
            10,
            "{web:?}"
        );
        assert_eq!(
            web.iter().filter(|b| b.contains("py-2")).count(),
            10,
            "{web:?}"
        );
        // Full NAT, weights 3:1: the backends answer the pool address, not the client.
        let pooled: Vec<String> = pooled
            .into_iter()
            .map(|r| r.expect("full-NAT request"))
            .collect();
        assert_eq!(
            pooled.iter().filter(|b| b.contains("fn-1")).count(),
            15,
            "{pooled:?}"
        );
        assert_eq!(
            pooled.iter().filter(|b| b.contains("fn-2")).count(),
            5,
            "{pooled:?}"
        );
        let fpga = board.fpga.borrow();
        let app = board.app.borrow();
        // DSR and tunnels: every request answered by the backend the data path chose
        // (each backend host is a namespace of its own; a tunnel's VIP is reachable there
        // only through the decapsulator), round robin, as the data path's own counts say.
        for (name, answers, backends) in [
            ("dsr", &dsr, &BACKENDS[2..4]),
            ("ipip", &ipip, &BACKENDS[4..6]),
            ("gue", &gue, &BACKENDS[6..8]),
        ] {
            assert!(answers.iter().all(|r| r.is_ok()), "{name}: {answers:?}");
            for (service, backend) in backends {
                let served = answers
                    .iter()
                    .filter(|r| r.as_deref() == Ok(&format!("ok from {backend}")))
                    .count();
                assert_eq!(served, 10, "{name}: half the answers from {backend}");
                let slot = app.control_plane().backend_slot(service, backend).unwrap();
                assert_eq!(fpga.counters().backends[slot].flows, 10, "{service}/{backend}");
            }
        }
        let direct = app.control_plane().service_slot("direct").unwrap();
        assert_eq!(
            fpga.counters().services[direct].new_flows,
            20,
            "the DSR connections went through the appliance"
        );
        drop((fpga, app));
        let counts = lab.stop_decap().expect("the decapsulator's counts");
        println!("{counts}");
        let count = |kind: &str| -> u64 {
            let words: Vec<&str> = counts.split_whitespace().collect();
            let at = words.iter().position(|w| *w == kind).expect(kind);
            words[at + 1].parse().unwrap()
        };
        // 20 connections of at least 5 client segments each, and the health checks.
        assert!(count("ipip") >= 100, "{counts}");
        assert!(count("gue") >= 100, "{counts}");
        assert_eq!(count("refused"), 0, "{counts}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
