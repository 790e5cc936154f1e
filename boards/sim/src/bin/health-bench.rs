//! `health-bench N SECONDS`: the simulated board health-checking N virtual HTTP backends
//! every second (inter = 1 s) for SECONDS; prints the checks done. Run under callgrind
//! with the toggles in docs/PERFORMANCE.md to count the MCU's instructions per check.

use std::net::Ipv4Addr;
use std::time::Duration;

use fulcrum_model::config::Config;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{HostSpec, Server, Switch, spawn_host};
use fulcrum_sim::{BoardOptions, start};

fn config(n: usize) -> Config {
    let mut text = String::from(
        "[appliance]\nname = \"bench\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\nprefix = 16\nmaglev_ring_size = 4093\nflow_table = { sets = 1024, ways = 4 }\n",
    );
    for s in 0..n.div_ceil(32) {
        text.push_str(&format!(
            "[[service]]\nname = \"svc-{s}\"\nvip = \"10.0.0.{}\"\nprotocol = \"tcp\"\nport = 80\n[service.health]\nkind = \"http\"\npath = \"/health\"\ninter = 1000\nfastinter = 1000\ndowninter = 1000\ntimeout = 1000\n",
            100 + s
        ));
        for b in (s * 32)..n.min(s * 32 + 32) {
            text.push_str(&format!(
                "[[service.backend]]\nname = \"b{b}\"\naddress = \"10.0.{}.{}\"\nport = 8080\n",
                1 + b / 200,
                1 + b % 200
            ));
        }
    }
    let c: Config = toml::from_str(&text).expect("bench config parses");
    c.validate().expect("bench config is valid");
    c
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let config = config(n);
    let dir = std::env::temp_dir().join(format!("fulcrum-health-bench-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let (passed, failed) = local.block_on(&rt, async {
        let mut switch = Switch::new();
        let (port, _) = switch.port();
        for svc in &config.services {
            for b in config.backends(svc) {
                let o = b.address.octets();
                spawn_host(
                    &mut switch,
                    HostSpec {
                        name: b.name.to_string(),
                        mac: [2, 0x5e, o[0], o[1], o[2], o[3]],
                        address: b.address,
                        prefix: 16,
                        gateway: Some(Ipv4Addr::new(10, 0, 0, 2)),
                        server: Server::Http(8080),
                    },
                    u64::from(u32::from(b.address)),
                );
            }
        }
        tokio::task::spawn_local(switch.run());
        let board = start(
            BoardOptions {
                state_dir: dir.clone(),
                config: Some(config.clone()),
                force_config: true,
                key: None,
                serial: false,
                geometry: Geometry {
                    sets: 1024,
                    ways: 4,
                    ring: 4093,
                },
            },
            NetworkPort::Virtual(port),
        )?;
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let app = board.app.borrow();
        let (mut passed, mut failed) = (0u64, 0u64);
        for slot in 0..fulcrum_model::tables::BACKEND_SLOTS {
            if let Some(st) = app.checker().status(slot) {
                passed += st.checks_passed;
                failed += st.checks_failed;
            }
        }
        anyhow::Ok((passed, failed))
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "backends {n}, {seconds} s: {passed} checks passed, {failed} failed ({:.1} checks/s)",
        (passed + failed) as f64 / seconds as f64
    );
    Ok(())
}
