//! Flow-sync throughput in the appliance: a master whose data path holds many flows, and
//! a backup that boots next to it and must receive them all (hello, then a snapshot read
//! back through the register map, sent over UDP on embassy-net, authenticated, written
//! into the backup's data path through the replica window). Prints entries per second;
//! checks the replica equals the original, entry for entry.
//!
//! Wall clock, release or debug (the number is reported, the test asserts only that the
//! snapshot completes in time and is exact).

use std::net::Ipv4Addr;
use std::time::Instant;

use embassy_time::Timer;
use fulcrum_firmware::vrrp::Role;
use fulcrum_mgmt::envelope::Key;
use fulcrum_model::config::Config;
use fulcrum_model::flow::{FlowEntry, FlowKey, FlowState};
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{HostSpec, Server, Switch, spawn_host};
use fulcrum_sim::{Board, BoardOptions, start};
use tokio::task::LocalSet;

const CONFIG: &str = r#"
[appliance]
name = "NAME"
mac = "MAC"
address = "ADDRESS"
maglev_ring_size = 251
flow_table = { sets = 8192, ways = 4 }

[appliance.ha]
vrid = 7
priority = PRIORITY
advert_interval = "10ms"
peers = ["PEER"]

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "round_robin"
[service.health]
kind = "none"
[[service.backend]]
name = "web-1"
address = "10.0.0.11"
port = 8080
"#;

const ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)];
const FLOWS: usize = 20_000;

fn boot(switch: &mut Switch, i: usize, priority: u8) -> Board {
    let text = CONFIG
        .replace("NAME", &format!("edge-{i}"))
        .replace("MAC", &format!("02:00:00:00:00:0{}", i + 1))
        .replace("ADDRESS", &ADDRS[i].to_string())
        .replace("PEER", &ADDRS[1 - i].to_string())
        .replace("PRIORITY", &priority.to_string());
    let c: Config = toml::from_str(&text).unwrap();
    c.validate().unwrap();
    let (port, _) = switch.port();
    let dir = std::env::temp_dir().join(format!("fulcrum-ha-rate-{}-{i}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    start(
        BoardOptions {
            state_dir: dir,
            config: Some(c.clone()),
            force_config: true,
            key: Some(Key::new(b"sync rate key").unwrap()),
            serial: false,
            geometry: Geometry::of(&c),
        },
        NetworkPort::Virtual(port),
    )
    .unwrap()
}

/// Fills the master's flow table with `FLOWS` established flows (as if clients had
/// opened them), each in a free way of its own set.
fn preload(board: &Board, now: u32) -> usize {
    let mut fpga = board.fpga.borrow_mut();
    let p = fpga.pipeline_mut();
    let generation = p.backend(0).map_or(0, |b| b.generation);
    let mut n = 0;
    let mut i = 0u32;
    while n < FLOWS {
        i += 1;
        let key = FlowKey {
            protocol: 6,
            src: [198, 51, (i >> 8) as u8, i as u8],
            dst: [10, 0, 0, 100],
            src_port: 1024 + (i % 50_000) as u16,
            dst_port: 80,
        };
        let hash = p.flow_hash(
            Ipv4Addr::from(key.src),
            Ipv4Addr::from(key.dst),
            Some((key.src_port, key.dst_port)),
        );
        let base = p.flow_table().set_base(hash);
        let ways = p.flow_table().ways();
        let Some(slot) = (base..base + ways).find(|&s| !p.flow_table().slots()[s].valid) else {
            continue;
        };
        let entry = FlowEntry {
            valid: true,
            key,
            service: 0,
            backend: 0,
            generation,
            state: FlowState::Established,
            last_seen: now,
            client_mac: [2, 0xc0, 0, 0, (i >> 8) as u8, i as u8],
        };
        p.install_flow(slot, entry).unwrap();
        n += 1;
    }
    n
}

async fn rate() {
    let mut net = Switch::new();
    // Backend host so the config's backend resolves (not needed for the sync itself).
    let _web = spawn_host(
        &mut net,
        HostSpec {
            name: "web-1".into(),
            mac: [2, 0x5e, 0, 0, 0, 11],
            address: Ipv4Addr::new(10, 0, 0, 11),
            prefix: 24,
            gateway: None,
            server: Server::Http(8080),
        },
        11,
    );
    let a = boot(&mut net, 0, 200);
    let (b_port, b_cable) = net.port();
    b_cable.set(false);
    tokio::task::spawn_local(net.run());
    let start_wait = Instant::now();
    while a.ha.unwrap().borrow().router().role() != Role::Master {
        assert!(start_wait.elapsed().as_secs() < 5, "no master");
        Timer::after_millis(1).await;
    }
    // A master that has carried the traffic alone (it holds the only table: see
    // `vrrp`, "A master without the flow table yields to one with it").
    while !a.ha.unwrap().borrow().holds_table() {
        assert!(start_wait.elapsed().as_secs() < 5, "no table holder");
        Timer::after_millis(1).await;
    }
    let now = fulcrum_firmware::net::now_ms() as u32;
    let loaded = preload(&a, now);

    // The backup boots: hello, snapshot, synchronised.
    b_cable.set(true);
    let text = CONFIG
        .replace("NAME", "edge-1")
        .replace("MAC", "02:00:00:00:00:02")
        .replace("ADDRESS", &ADDRS[1].to_string())
        .replace("PEER", &ADDRS[0].to_string())
        .replace("PRIORITY", "100");
    let c: Config = toml::from_str(&text).unwrap();
    let dir = std::env::temp_dir().join(format!("fulcrum-ha-rate-{}-1", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    let b = start(
        BoardOptions {
            state_dir: dir,
            config: Some(c.clone()),
            force_config: true,
            key: Some(Key::new(b"sync rate key").unwrap()),
            serial: false,
            geometry: Geometry::of(&c),
        },
        NetworkPort::Virtual(b_port),
    )
    .unwrap();
    let synced = || {
        b.ha.unwrap()
            .borrow()
            .links()
            .iter()
            .any(|(_, l)| l.synced())
    };
    while !synced() {
        assert!(
            t.elapsed().as_secs() < 30,
            "the snapshot did not finish in 30 s"
        );
        Timer::after_millis(1).await;
    }
    let took = t.elapsed();
    let (sent, retransmitted) = {
        let ha = a.ha.unwrap().borrow();
        let s = ha.links()[0].1.stats();
        (s.data_sent, s.retransmitted)
    };
    println!(
        "snapshot of {loaded} flows: backup synchronised {} ms after boot = {:.0} entries/s ({} messages sent, {} retransmitted)",
        took.as_millis(),
        loaded as f64 / took.as_secs_f64(),
        sent,
        retransmitted
    );
    // The replica equals the original, slot for slot (last_seen aside: it is carried as
    // an idle time and re-based on the backup's clock).
    let fa = a.fpga.borrow();
    let fb = b.fpga.borrow();
    let (ta, tb) = (
        fa.pipeline().flow_table().slots(),
        fb.pipeline().flow_table().slots(),
    );
    let mut differ = 0;
    for (x, y) in ta.iter().zip(tb.iter()) {
        let (mut x, mut y) = (*x, *y);
        x.last_seen = 0;
        y.last_seen = 0;
        if x != y {
            differ += 1;
        }
    }
    assert_eq!(tb.iter().filter(|e| e.valid).count(), loaded);
    assert_eq!(differ, 0, "replica differs from the master's table");
}

#[test]
fn snapshot_throughput_in_the_appliance() {
    let _ = env_logger::builder().is_test(true).try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&rt, rate());
}
