//! The simulated board on the in-process virtual network (no root): health checks of
//! HTTP, Redis and Memcached backends that die, stop, slow down and come back; the table
//! commits the FPGA receives; management over TCP (through the gateway) and over the
//! serial console (a pseudo-terminal); persistence across a restart.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fulcrum_host::client::{Client, ClientError};
use fulcrum_mgmt::envelope::Key;
use fulcrum_mgmt::message::{CheckFailure, ErrorCode, EventKind, Request, Response};
use fulcrum_model::config::{AdminState, Config};
use fulcrum_model::tables::BackendState;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{Health, HostHandle, HostSpec, Server, Switch, spawn_host};
use fulcrum_sim::{Board, BoardOptions, start};
use tokio::task::LocalSet;

const CONFIG: &str = r#"
[appliance]
name = "sim-1"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
maglev_ring_size = 1021
flow_table = { sets = 1024, ways = 4 }

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "maglev"
[service.health]
kind = "http"
path = "/healthz"
expect_status = 200
expect_body = "ok from"
inter = 300
fastinter = 100
downinter = 400
rise = 2
fall = 3
timeout = 100
[[service.backend]]
name = "web-1"
address = "10.0.0.11"
port = 8080
[[service.backend]]
name = "web-2"
address = "10.0.0.12"
port = 8080
[[service.backend]]
name = "web-3"
address = "10.0.0.13"
port = 8080

[[service]]
name = "sessions"
vip = "10.0.0.101"
protocol = "tcp"
port = 6379
mode = "nat"
algorithm = "least_connections"
[service.health]
kind = "redis"
inter = 300
fastinter = 100
downinter = 400
rise = 2
fall = 3
timeout = 100
[[service.backend]]
name = "redis-1"
address = "10.0.0.21"

[[service]]
name = "cache"
vip = "10.0.0.102"
protocol = "tcp"
port = 11211
mode = "nat"
algorithm = "round_robin"
[service.health]
kind = "memcached"
inter = 300
fastinter = 100
downinter = 400
rise = 2
fall = 3
timeout = 100
[[service.backend]]
name = "mc-1"
address = "10.0.0.31"
"#;

fn state_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fulcrum-sim-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config() -> Config {
    let c: Config = toml::from_str(CONFIG).unwrap();
    c.validate().unwrap();
    c
}

struct Lab {
    board: Board,
    hosts: Vec<HostHandle>,
}

impl Lab {
    fn host(&self, name: &str) -> &HostHandle {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    fn state(&self, service: &str, backend: &str) -> BackendState {
        let app = self.board.app.borrow();
        let slot = app.control_plane().backend_slot(service, backend).unwrap();
        let fpga = self.board.fpga.borrow();
        fpga.pipeline().backend(slot).unwrap().state
    }

    fn mac(&self, service: &str, backend: &str) -> [u8; 6] {
        let app = self.board.app.borrow();
        let slot = app.control_plane().backend_slot(service, backend).unwrap();
        self.board
            .fpga
            .borrow()
            .pipeline()
            .backend(slot)
            .unwrap()
            .mac
    }

    /// Waits (in real time, polling) until `f` holds; returns how long it took.
    async fn until(&self, what: &str, limit: Duration, f: impl Fn(&Lab) -> bool) -> Duration {
        let start = Instant::now();
        while !f(self) {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    fn last_failure(&self, service: &str, backend: &str) -> Option<CheckFailure> {
        let app = self.board.app.borrow();
        let slot = app.control_plane().backend_slot(service, backend).unwrap();
        app.checker().status(slot).and_then(|s| s.last_failure)
    }
}

fn lab(dir: &std::path::Path, key: Option<Key>, serial: bool) -> Lab {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut switch = Switch::new();
    let (fpga_port, _) = switch.port();
    let spec = |name: &str, last: u8, server| HostSpec {
        name: name.to_string(),
        mac: [0x02, 0x00, 0x00, 0x00, 0x01, last],
        address: Ipv4Addr::new(10, 0, 0, last),
        prefix: 24,
        gateway: Some(Ipv4Addr::new(10, 0, 0, 2)),
        server,
    };
    let hosts = vec![
        spawn_host(&mut switch, spec("web-1", 11, Server::Http(8080)), 1),
        spawn_host(&mut switch, spec("web-2", 12, Server::Http(8080)), 2),
        spawn_host(&mut switch, spec("web-3", 13, Server::Http(8080)), 3),
        spawn_host(&mut switch, spec("redis-1", 21, Server::Redis(6379)), 4),
        spawn_host(&mut switch, spec("mc-1", 31, Server::Memcached(11211)), 5),
        spawn_host(&mut switch, spec("operator", 9, Server::None), 6),
    ];
    tokio::task::spawn_local(switch.run());
    let board = start(
        BoardOptions {
            state_dir: dir.to_path_buf(),
            config: Some(config()),
            force_config: false,
            key,
            serial,
            geometry: Geometry {
                sets: 1024,
                ways: 4,
                ring: 1021,
            },
        },
        NetworkPort::Virtual(fpga_port),
    )
    .expect("board starts");
    Lab { board, hosts }
}

fn run<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&rt, f);
}

const ALL: [(&str, &str); 5] = [
    ("web", "web-1"),
    ("web", "web-2"),
    ("web", "web-3"),
    ("sessions", "redis-1"),
    ("cache", "mc-1"),
];

#[test]
fn health_checks_follow_dying_stopping_slow_and_reviving_backends() {
    run(async {
        let dir = state_dir("health");
        let lab = lab(&dir, None, false);
        // Every backend confirmed by a check of its own protocol, and its MAC learned from
        // the ARP of the checks (the config gives none).
        lab.until(
            "all backends checked and resolved",
            Duration::from_secs(10),
            |l| {
                ALL.iter().all(|(s, b)| {
                    let app = l.board.app.borrow();
                    let slot = app.control_plane().backend_slot(s, b).unwrap();
                    app.checker()
                        .status(slot)
                        .is_some_and(|st| st.checks_passed > 0)
                        && l.mac(s, b) != [0; 6]
                })
            },
        )
        .await;
        for (s, b) in ALL {
            assert_eq!(
                lab.state(s, b),
                BackendState::Up,
                "{s}/{b}: {:?}",
                lab.last_failure(s, b)
            );
        }
        assert_eq!(lab.mac("web", "web-2"), [0x02, 0, 0, 0, 1, 12]);

        // Kill web-2 (a dead host: timeouts). Down within inter (next check) + fall ×
        // fastinter of the kill, plus scheduling slack of this shared machine.
        lab.host("web-2").set(Health::Dead);
        let took = lab
            .until("web-2 down", Duration::from_secs(5), |l| {
                l.state("web", "web-2") == BackendState::Down
            })
            .await;
        println!("web-2 (dead) left the rotation {took:?} after it died");
        assert!(
            took <= Duration::from_millis(300 + 3 * 100 + 400),
            "took {took:?}"
        );
        assert_eq!(
            lab.last_failure("web", "web-2"),
            Some(CheckFailure::Timeout)
        );

        // Stop web-3's server (connection refused).
        lab.host("web-3").set(Health::Stopped);
        let took = lab
            .until("web-3 down", Duration::from_secs(5), |l| {
                l.state("web", "web-3") == BackendState::Down
            })
            .await;
        println!("web-3 (refusing) left the rotation {took:?} after it stopped");
        assert_eq!(
            lab.last_failure("web", "web-3"),
            Some(CheckFailure::Refused)
        );

        // Redis stopped, Memcached too slow for the 100 ms timeout.
        lab.host("redis-1").set(Health::Stopped);
        lab.host("mc-1").set(Health::Slow(300));
        lab.until("redis and memcached down", Duration::from_secs(5), |l| {
            l.state("sessions", "redis-1") == BackendState::Down
                && l.state("cache", "mc-1") == BackendState::Down
        })
        .await;
        assert_eq!(
            lab.last_failure("cache", "mc-1"),
            Some(CheckFailure::Timeout)
        );
        assert_eq!(
            lab.state("web", "web-1"),
            BackendState::Up,
            "the healthy one stays"
        );

        // The FPGA's Maglev ring for web holds only web-1 now.
        {
            let app = lab.board.app.borrow();
            let web1 = app.control_plane().backend_slot("web", "web-1").unwrap() as u16;
            let fpga = lab.board.fpga.borrow();
            let svc = app.control_plane().service_slot("web").unwrap();
            assert!(fpga.pipeline().ring(svc).iter().all(|&e| e == web1));
        }

        // Everything comes back; up after `rise` successes (downinter 400 + fastinter 100).
        for h in &lab.hosts {
            h.set(Health::Up);
        }
        let took = lab
            .until("all up again", Duration::from_secs(5), |l| {
                ALL.iter().all(|(s, b)| l.state(s, b) == BackendState::Up)
            })
            .await;
        println!("all backends back {took:?} after revival");
        let events = lab.board.app.borrow().events().page(0);
        let downs = events
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BackendDown { .. }))
            .count();
        let ups = events
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BackendUp { .. }))
            .count();
        assert_eq!((downs, ups), (4, 4), "{:#?}", events.events);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn management_over_tcp_and_serial_with_persistence() {
    let dir = state_dir("mgmt");
    let key = Key::new(b"sim test key").unwrap();
    let applied = run_mgmt(&dir, key.clone());
    // Restart: the board comes back with the config the host applied (generation 2).
    run(async {
        let lab = lab(&dir, Some(key.clone()), false);
        let app = lab.board.app.borrow();
        assert_eq!(app.generation(), applied);
        let running = app.config().unwrap();
        assert_eq!(running.services[0].backends.len(), 2);
        assert_eq!(
            running.backends(&running.services[0])[1].state,
            AdminState::Drain
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_mgmt(dir: &std::path::Path, key: Key) -> u32 {
    let mut generation = 0;
    run(async {
        let lab = lab(dir, Some(key.clone()), true);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let operator = lab.host("operator").stack;
        tokio::task::spawn_local(fulcrum_sim::gateway::serve(
            listener,
            operator,
            lab.board.address,
            fulcrum_sim::MANAGEMENT_PORT,
        ));
        let serial = lab.board.serial_path.clone().unwrap();
        let good_key = key.clone();
        let client = tokio::task::spawn_blocking(move || -> u32 {
            let t = Duration::from_secs(5);
            // Network: authenticated.
            let mut c =
                Client::connect_tcp(&addr.to_string(), good_key.clone(), t).expect("connects");
            assert_eq!(c.hello().name.as_str(), "sim-1");
            assert!(c.hello().auth_required);
            let Response::Status(s) = c.request(&Request::Status { page: 0 }).unwrap() else {
                panic!()
            };
            assert_eq!(s.services.len(), 3);
            assert_eq!(s.services[0].backends.len(), 3);
            // Apply a smaller web pool, then drain web-2.
            let Response::Config(Some(mut cfg)) = c.request(&Request::GetConfig).unwrap() else {
                panic!()
            };
            let last = cfg.services[0].backends.len() - 1;
            cfg.remove_backend(0, last).unwrap();
            let Response::Applied(r) = c
                .request(&Request::Apply {
                    config: cfg.clone(),
                    dry_run: false,
                })
                .unwrap()
            else {
                panic!()
            };
            assert!(r.changed);
            assert_eq!(r.generation, 2);
            let Response::Applied(r) = c
                .request(&Request::Apply {
                    config: cfg.clone(),
                    dry_run: false,
                })
                .unwrap()
            else {
                panic!()
            };
            assert!(!r.changed, "the same config twice changes nothing");
            // A bad config is refused whole, with a reason.
            let mut bad = cfg.clone();
            bad.backends_mut(0)[0].weight = 5000;
            match c.request(&Request::Apply {
                config: bad,
                dry_run: false,
            }) {
                Err(ClientError::Refused { code, details, .. }) => {
                    assert_eq!(code, ErrorCode::InvalidConfig);
                    assert!(details.iter().any(|d| d.contains("weight")), "{details:?}");
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                c.request(&Request::Backend {
                    service: "web".try_into().unwrap(),
                    backend: "web-2".try_into().unwrap(),
                    state: AdminState::Drain
                }),
                Ok(Response::Done)
            ));

            // A wrong key: refused at Hello, nothing applied.
            match Client::connect_tcp(&addr.to_string(), Key::new(b"wrong").unwrap(), t) {
                Err(ClientError::WrongKey) => {}
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("a wrong key was accepted"),
            }

            // Serial console (a pty), no key needed; sees the same state.
            let mut s = Client::open_serial(&serial, None, t).expect("serial opens");
            let Response::Status(st) = s.request(&Request::Status { page: 0 }).unwrap() else {
                panic!()
            };
            assert_eq!(st.generation, 2);
            assert_eq!(st.services[0].backends.len(), 2);
            assert_eq!(st.services[0].backends[1].state, BackendState::Drain);
            st.generation
        });
        generation = client.await.expect("client thread");
    });
    generation
}
