//! Interop in the appliance: the simulated board (firmware HA runner, the model as FPGA)
//! on a tap device, and keepalived (Debian's package) as its VRRP peer on the same bridge
//! in a network namespace this test creates and removes. The board's adverts are whole
//! frames from the virtual MAC through the data path; keepalived's are punted to the MCU.
//!
//! 1. keepalived (priority 100) is master alone; the board (200, preempt) starts: it
//!    becomes master, keepalived backup.
//! 2. The VIP resolves, from the namespace, to the RFC virtual MAC 00:00:5e:00:01:33
//!    (proxy ARP by the master only).
//! 3. The board's MCU halts (no release): keepalived takes over within its
//!    `Master_Down_Interval`.
//!
//! Root only (CI runs as root); `FULCRUM_SKIP_ROOT_TESTS=1` skips.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use embassy_time::Timer;
use fulcrum_firmware::vrrp::Role;
use fulcrum_mgmt::envelope::Key;
use fulcrum_model::config::Config;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::{BoardOptions, start};

const VRID: u8 = 51;

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The namespace (bridge br0 with keepalived on it), its directory and keepalived.
struct Lab {
    ns: String,
    tap: String,
    dir: PathBuf,
    keepalived: Option<Child>,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let id = std::process::id();
        let lab = Lab {
            ns: format!("fulcrum-hak-{id}"),
            tap: format!("fhak{}", id % 100_000),
            dir: std::env::temp_dir().join(format!("fulcrum-hak-{id}")),
            keepalived: None,
        };
        let _ = fs::remove_dir_all(&lab.dir);
        fs::create_dir_all(&lab.dir).map_err(|e| e.to_string())?;
        let ns = lab.ns.as_str();
        run(&["ip", "netns", "add", ns])?;
        run(&["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", ns, "addr", "add", "10.78.0.1/24", "dev", "br0"])?;
        run(&["ip", "-n", ns, "link", "set", "br0", "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        Ok(lab)
    }

    fn attach_tap(&self) -> Result<(), String> {
        run(&["ip", "link", "set", &self.tap, "netns", &self.ns])?;
        run(&[
            "ip",
            "-n",
            &self.ns,
            "link",
            "set",
            &self.tap,
            "address",
            "fe:ff:ff:ff:ff:fe",
        ])?;
        run(&[
            "ip", "-n", &self.ns, "link", "set", &self.tap, "master", "br0", "up",
        ])?;
        Ok(())
    }

    fn state(&self) -> String {
        fs::read_to_string(self.dir.join("state"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn start_keepalived(&mut self) -> Result<(), String> {
        let notify = self.dir.join("notify.sh");
        let state = self.dir.join("state");
        fs::write(
            &notify,
            format!(
                "#!/bin/sh\necho \"$3\" > {s}.tmp && mv {s}.tmp {s}\n",
                s = state.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        run(&["chmod", "700", &notify.display().to_string()])?;
        let conf = self.dir.join("keepalived.conf");
        fs::write(
            &conf,
            format!(
                "global_defs {{\n    router_id fulcrum_ha_tap\n    vrrp_version 3\n    script_user root\n}}\nvrrp_instance VI_1 {{\n    state BACKUP\n    interface br0\n    virtual_router_id {VRID}\n    priority 100\n    advert_int 0.1\n    virtual_ipaddress {{\n        10.78.0.100/24\n    }}\n    notify {}\n}}\n",
                notify.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let d = |n: &str| self.dir.join(n).display().to_string();
        let log = fs::File::create(self.dir.join("keepalived.out")).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "keepalived"])
            .args(["--dont-fork", "--log-console", "--vrrp"])
            .args(["--use-file", &conf.display().to_string()])
            .args([
                "--pid",
                &d("k.pid"),
                "--vrrp_pid",
                &d("v.pid"),
                "--checkers_pid",
                &d("c.pid"),
            ])
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("keepalived: {e}"))?;
        self.keepalived = Some(child);
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.keepalived.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        let _ = run(&["ip", "netns", "del", &self.ns]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const CONFIG: &str = r#"
[appliance]
name = "edge-tap"
mac = "02:00:00:00:78:02"
address = "10.78.0.2"

[appliance.ha]
vrid = 51
priority = 200
advert_interval = "100ms"
peers = ["10.78.0.1"]
addresses = ["10.78.0.100"]
hold_preempt_until_synced = false

[[service]]
name = "web"
vip = "10.78.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "round_robin"
[service.health]
kind = "none"
[[service.backend]]
name = "web-1"
address = "10.78.0.50"
port = 8080
mac = "02:00:00:00:78:50"
"#;

async fn until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return Some(t.elapsed());
        }
        Timer::after_millis(2).await;
    }
    None
}

#[test]
fn keepalived_and_the_appliance_elect_by_the_rfc() {
    if std::env::var_os("FULCRUM_SKIP_ROOT_TESTS").is_some() {
        eprintln!("skipped (FULCRUM_SKIP_ROOT_TESTS)");
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root (CI runs as root); FULCRUM_SKIP_ROOT_TESTS=1 skips"
    );
    let _ = env_logger::builder().is_test(true).try_init();
    let mut lab = Lab::new().expect("namespace");
    lab.start_keepalived().expect("keepalived");
    let t = Instant::now();
    while lab.state() != "MASTER" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "keepalived never master: {:?}",
            fs::read_to_string(lab.dir.join("keepalived.out"))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let config: Config = toml::from_str(CONFIG).unwrap();
    config.validate().unwrap();
    let dir = lab.dir.join("board");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async {
        let port = NetworkPort::tap(&lab.tap).expect("tap");
        lab.attach_tap().expect("tap attached");
        let board = start(
            BoardOptions {
                state_dir: dir,
                config: Some(config.clone()),
                force_config: true,
                key: Some(Key::new(b"keepalived interop key").unwrap()),
                serial: false,
                geometry: Geometry::of(&config),
            },
            port,
        )
        .expect("board");
        let ha = board.ha.unwrap();
        let role = || ha.borrow().router().role();
        // 1. The board preempts keepalived.
        let took = until(Duration::from_secs(5), || {
            role() == Role::Master && lab.state() == "BACKUP"
        })
        .await;
        println!(
            "board master, keepalived backup after {:?} (board: {:?}, keepalived: {})",
            took,
            role(),
            lab.state()
        );
        assert!(
            took.is_some(),
            "board {:?}, keepalived {}",
            role(),
            lab.state()
        );
        let stats = *ha.borrow().router().stats();
        println!(
            "board: adverts sent {}, keepalived's heard {} (lower, ignored while preempting {}), refused {}",
            stats.adverts_sent,
            stats.adverts_received + stats.lower_ignored,
            stats.lower_ignored,
            stats.refused
        );
        assert!(
            stats.adverts_received + stats.lower_ignored > 0,
            "keepalived's adverts reached the board"
        );
        assert_eq!(stats.refused, 0, "refused adverts");

        // 2. The VIP resolves to the virtual MAC (the master's proxy ARP).
        // (Blocking commands on another thread: the board runs on this one.)
        let ns = lab.ns.clone();
        let neigh = tokio::task::spawn_blocking(move || {
            // A datagram to the VIP makes the kernel ARP for it (no ping on this image).
            let _ = run(&[
                "ip", "netns", "exec", &ns, "bash", "-c", "echo x > /dev/udp/10.78.0.100/9",
            ]);
            std::thread::sleep(Duration::from_millis(300));
            run(&["ip", "-n", &ns, "neigh", "show", "10.78.0.100"]).unwrap_or_default()
        })
        .await
        .unwrap();
        println!("neighbour: {}", neigh.trim());
        assert!(neigh.contains("00:00:5e:00:01:33"), "{neigh}");

        // 3. The board halts: keepalived takes over (its Master_Down_Interval: 3 × 100 ms
        //    + skew (256 − 100) / 256 × 100 ms ≈ 361 ms).
        let halted = Instant::now();
        board.halt_mcu();
        let back = until(Duration::from_secs(3), || lab.state() == "MASTER").await;
        println!("keepalived master {:?} after the board's MCU halted", back);
        assert!(
            back.is_some_and(|d| d < Duration::from_millis(800)),
            "{back:?}"
        );
        let _ = halted;
    });
}
