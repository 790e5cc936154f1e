//! The simulated board with its MCU reaching the FPGA through control frames (EtherType
//! 0x88B5 on the MCU's Ethernet link, `fulcrum_firmware::ctrl_bus`, answered by the FPGA's
//! bridge, `ctrl_frame::Responder`), as on the Colorlight 5A-75B, with frames lost on the
//! way in both directions: the config pushed at boot and again over management TCP,
//! health-check-driven table writes, and counters read back all travel in control frames
//! while the MCU's own traffic (the checks, management) shares the link.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fulcrum_host::client::Client;
use fulcrum_mgmt::envelope::Key;
use fulcrum_mgmt::message::{Request, Response};
use fulcrum_model::config::Config;
use fulcrum_model::tables::BackendState;
use fulcrum_sim::ctrl_link::CtrlFaults;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{Health, HostHandle, HostSpec, Server, Switch, spawn_host};
use fulcrum_sim::{Board, BoardOptions, CtrlHandle, McuLink, start_with};
use tokio::task::LocalSet;

const CONFIG: &str = r#"
[appliance]
name = "ctrl-1"
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
inter = 200
fastinter = 100
downinter = 300
rise = 2
fall = 2
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
"#;

fn state_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fulcrum-ctrl-test-{}-{tag}", std::process::id()));
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
    ctrl: CtrlHandle,
    hosts: Vec<HostHandle>,
}

impl Lab {
    fn host(&self, name: &str) -> &HostHandle {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    /// The backend's state in the FPGA's table (written only through control frames).
    fn state(&self, backend: &str) -> Option<BackendState> {
        let app = self.board.app.borrow();
        let slot = app.control_plane().backend_slot("web", backend)?;
        let fpga = self.board.fpga.borrow();
        fpga.pipeline().backend(slot).map(|b| b.state)
    }

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

    /// The FPGA's Maglev ring of `web` holds exactly these backends' slots.
    fn ring_holds(&self, backends: &[&str]) -> bool {
        let app = self.board.app.borrow();
        let svc = app.control_plane().service_slot("web").unwrap();
        let slots: Vec<u16> = backends
            .iter()
            .map(|b| app.control_plane().backend_slot("web", b).unwrap() as u16)
            .collect();
        let fpga = self.board.fpga.borrow();
        let ring = fpga.pipeline().ring(svc);
        ring.iter().all(|e| slots.contains(e)) && slots.iter().all(|s| ring.contains(s))
    }
}

fn lab(dir: &std::path::Path, faults: CtrlFaults, key: Option<Key>) -> Lab {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut switch = Switch::new();
    let (fpga_port, _) = switch.port();
    let spec = |name: &str, last: u8| HostSpec {
        name: name.to_string(),
        mac: [0x02, 0x00, 0x00, 0x00, 0x01, last],
        address: Ipv4Addr::new(10, 0, 0, last),
        prefix: 24,
        gateway: Some(Ipv4Addr::new(10, 0, 0, 2)),
        server: Server::Http(8080),
    };
    let mut operator = spec("operator", 9);
    operator.server = Server::None;
    let hosts = vec![
        spawn_host(&mut switch, spec("web-1", 11), 1),
        spawn_host(&mut switch, spec("web-2", 12), 2),
        spawn_host(&mut switch, spec("web-3", 13), 3),
        spawn_host(&mut switch, operator, 4),
    ];
    tokio::task::spawn_local(switch.run());
    let (board, ctrl) = start_with(
        BoardOptions {
            state_dir: dir.to_path_buf(),
            config: Some(config()),
            force_config: false,
            key,
            serial: false,
            geometry: Geometry {
                sets: 1024,
                ways: 4,
                ring: 1021,
            },
        },
        NetworkPort::Virtual(fpga_port),
        McuLink::CtrlFrames(faults),
    )
    .expect("board starts");
    Lab {
        board,
        ctrl: ctrl.expect("a control-frame link"),
        hosts,
    }
}

fn run<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&rt, f);
}

#[test]
fn the_appliance_programs_its_fpga_through_lossy_control_frames() {
    run(async {
        let dir = state_dir("lossy");
        let key = Key::new(b"ctrl frames test key").unwrap();
        let lab = lab(
            &dir,
            CtrlFaults {
                lose_every_nth_request: 13,
                lose_every_nth_response: 17,
            },
            Some(key.clone()),
        );
        // The boot config reached the FPGA's tables through the bridge: the service and
        // its three backends, the ring over all three.
        {
            let app = lab.board.app.borrow();
            let svc = app.control_plane().service_slot("web").unwrap();
            let fpga = lab.board.fpga.borrow();
            let entry = fpga.pipeline().service(svc).expect("service written");
            assert_eq!(entry.vip, Ipv4Addr::new(10, 0, 0, 100));
            assert_eq!(entry.port, 80);
        }
        assert!(lab.ring_holds(&["web-1", "web-2", "web-3"]));

        // Health checks (the MCU's own TCP traffic, sharing the link with the control
        // frames) bring every backend up in the FPGA's table.
        lab.until(
            "all backends up in the FPGA",
            Duration::from_secs(10),
            |l| {
                ["web-1", "web-2", "web-3"]
                    .iter()
                    .all(|b| l.state(b) == Some(BackendState::Up))
            },
        )
        .await;

        // A dead backend: the health loop's table writes take it out of the FPGA's ring.
        lab.host("web-2").set(Health::Dead);
        let took = lab
            .until("web-2 down in the FPGA", Duration::from_secs(5), |l| {
                l.state("web-2") == Some(BackendState::Down) && l.ring_holds(&["web-1", "web-3"])
            })
            .await;
        println!("web-2 left the FPGA's ring {took:?} after it died");
        lab.host("web-2").set(Health::Up);
        lab.until("web-2 back", Duration::from_secs(5), |l| {
            l.state("web-2") == Some(BackendState::Up) && l.ring_holds(&["web-1", "web-2", "web-3"])
        })
        .await;

        // A config push over management TCP (its frames share the MCU's link with the
        // control frames): web-3 removed; the FPGA follows. Then the status, whose counters
        // the MCU reads back through control frames.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::task::spawn_local(fulcrum_sim::gateway::serve(
            listener,
            lab.host("operator").stack,
            lab.board.address,
            fulcrum_sim::MANAGEMENT_PORT,
        ));
        let mut smaller = config();
        let last = smaller.services[0].backends.len() - 1;
        smaller.remove_backend(0, last).unwrap();
        let client = tokio::task::spawn_blocking(move || {
            let mut c = Client::connect_tcp(&addr.to_string(), key, Duration::from_secs(5))
                .expect("management connects");
            let Response::Applied(r) = c
                .request(&Request::Apply {
                    config: smaller,
                    dry_run: false,
                })
                .unwrap()
            else {
                panic!("apply refused")
            };
            assert!(r.changed);
            let Response::Status(s) = c.request(&Request::Status { page: 0 }).unwrap() else {
                panic!("no status")
            };
            s
        });
        let report = client.await.expect("client thread");
        assert!(lab.ring_holds(&["web-1", "web-2"]));
        assert_eq!(lab.state("web-3"), None);
        assert_eq!(report.services[0].backends.len(), 2);

        // Counters read back through control frames equal the FPGA's own (the frames of
        // the status exchange itself come after the read).
        let fpga_counters = lab.board.fpga.borrow().counters().clone();
        println!(
            "status: rx_frames {} from_mcu {}; FPGA now: {} {}",
            report.rx_frames, report.from_mcu, fpga_counters.rx_frames, fpga_counters.from_mcu
        );
        assert!(
            report.rx_frames > 20 && report.from_mcu > 20,
            "checks went through the FPGA"
        );
        assert!(report.rx_frames <= fpga_counters.rx_frames);
        assert!(report.from_mcu <= fpga_counters.from_mcu);
        let now = fulcrum_firmware::net::now_ms();
        let direct = lab.board.app.borrow_mut().status(now, 0);
        let fpga_counters = lab.board.fpga.borrow().counters().clone();
        assert_eq!(direct.rx_frames, fpga_counters.rx_frames);
        assert_eq!(direct.from_mcu, fpga_counters.from_mcu);
        let punts = direct.punts.len().min(fpga_counters.punts.len());
        assert!(punts > 0);
        assert_eq!(direct.punts[..punts], fpga_counters.punts[..punts]);

        // The losses happened and were recovered: no exchange failed, and the bridge
        // skipped the writes of every request whose response was lost.
        let bus = lab.ctrl.port.borrow().core().stats;
        let bridge = lab.ctrl.bridge.borrow().stats();
        println!("bus: {bus:?}");
        println!("bridge: {bridge:?}");
        println!("port: {:?}", lab.ctrl.port.borrow().stats);
        assert!(bridge.lost_requests > 10 && bridge.lost_responses > 10);
        assert_eq!(bus.failures, 0);
        assert_eq!(
            bus.retransmissions,
            bridge.lost_requests + bridge.lost_responses
        );
        assert_eq!(bridge.responder.retransmissions, bridge.lost_responses);
        assert_eq!(
            bus.responses,
            bridge.responder.answered - bridge.lost_responses
        );
        assert!(lab.ctrl.port.borrow().core().last_error().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn without_answers_the_bus_fails_with_a_clear_error() {
    run(async {
        let dir = state_dir("dead");
        let lab = lab(
            &dir,
            CtrlFaults {
                lose_every_nth_request: 1,
                lose_every_nth_response: 0,
            },
            None,
        );
        // Nothing reached the FPGA: the boot probe failed, and each later exchange fails
        // after its retransmissions (the failed writes are counted, not retried forever).
        assert!(!lab.board.fpga.borrow().pipeline().service(0).unwrap().valid);
        let stats = lab.ctrl.port.borrow().core().stats;
        assert!(stats.failures >= 1);
        let error = lab
            .ctrl
            .port
            .borrow()
            .core()
            .last_error()
            .expect("an error");
        assert!(
            error.to_string().contains("no valid response to request"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
