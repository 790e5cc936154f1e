//! Interop in the appliance: the simulated board (firmware HA runner, the model as FPGA)
//! on a tap device, and keepalived (Debian's package) as its VRRP peer on the same bridge
//! in a network namespace this test creates and removes. The board's adverts are whole
//! frames from the virtual MAC through the data path; keepalived's are punted to the MCU.
//! Real TCP traffic flows all along: a client namespace opens short HTTP connections to
//! the VIP (one every 20 ms) and keeps one keep-alive connection (a request every
//! 50 ms) to a Python HTTP server in a backend namespace. Whoever is master carries it:
//! the board by full NAT (the backend sees the pool address 10.78.0.250), the Linux side
//! of keepalived by nftables DNAT + masquerade (the backend sees 10.78.0.1).
//!
//! 1. keepalived (priority 100) is master alone and carries the traffic; the board (200,
//!    preempt) starts: it becomes master, keepalived backup, and the traffic moves to it.
//! 2. The VIP resolves, from the namespace, to the RFC virtual MAC 00:00:5e:00:01:33
//!    (proxy ARP by the master only).
//! 3. The board's MCU halts (no release): keepalived takes over within its
//!    `Master_Down_Interval`, and the traffic moves back.
//!
//! Connections are **re-established, not kept**, across a handover between the board and
//! keepalived: keepalived carries no flow state (Fulcrum's flow sync is its own protocol),
//! and each side translates the connection to a different source (pool address and
//! slot port, or 10.78.0.1 and the kernel's port), so the backend answers the other
//! side's segments with a reset. The test measures the outage of new connections and
//! checks that the keep-alive connection, broken by each handover, is opened again.
//!
//! Root and keepalived needed (CI has both); without them, or with
//! `FULCRUM_SKIP_ROOT_TESTS=1`, the test says why and skips.

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
    /// The client (`cli`) and backend (`be`) namespaces.
    cli: String,
    be: String,
    /// The HTTP server and the client's traffic generator.
    server: Option<Child>,
    client: Option<Child>,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let id = std::process::id();
        let lab = Lab {
            ns: format!("fulcrum-hak-{id}"),
            tap: format!("fhak{}", id % 100_000),
            dir: std::env::temp_dir().join(format!("fulcrum-hak-{id}")),
            keepalived: None,
            cli: format!("fulcrum-hakc-{id}"),
            be: format!("fulcrum-hakb-{id}"),
            server: None,
            client: None,
        };
        let _ = fs::remove_dir_all(&lab.dir);
        fs::create_dir_all(&lab.dir).map_err(|e| e.to_string())?;
        let ns = lab.ns.as_str();
        run(&["ip", "netns", "add", ns])?;
        run(&["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", ns, "addr", "add", "10.78.0.1/24", "dev", "br0"])?;
        run(&["ip", "-n", ns, "link", "set", "br0", "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        // The client and the backend, each in a namespace on the bridge.
        for (other, port, address) in [
            (&lab.cli, "vcli", "10.78.0.20/24"),
            (&lab.be, "vbe", "10.78.0.50/24"),
        ] {
            run(&["ip", "netns", "add", other])?;
            run(&[
                "ip", "-n", ns, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", other,
            ])?;
            run(&["ip", "-n", ns, "link", "set", port, "master", "br0", "up"])?;
            run(&["ip", "-n", other, "addr", "add", address, "dev", "eth0"])?;
            run(&["ip", "-n", other, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", other, "link", "set", "lo", "up"])?;
        }
        // The Linux side of keepalived balances too: while it holds the VIP (a local
        // address then), DNAT to the backend and masquerade.
        let rules = lab.dir.join("nat.nft");
        fs::write(
            &rules,
            "table ip fulcrum_hak {\n  chain pre {\n    type nat hook prerouting priority -100;\n    ip daddr 10.78.0.100 tcp dport 80 fib daddr type local dnat to 10.78.0.50:8080\n  }\n  chain post {\n    type nat hook postrouting priority 100;\n    ct status dnat ip daddr 10.78.0.50 masquerade\n  }\n}\n",
        )
        .map_err(|e| e.to_string())?;
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "nft",
            "-f",
            &rules.display().to_string(),
        ])?;
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        // br0 stands for the switch: frames it bridges (to the board) must not go through
        // the namespace's netfilter (br_netfilter would NAT a connection the Linux side
        // once carried even when its frames are addressed to the board).
        for table in ["iptables", "ip6tables", "arptables"] {
            let _ = run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.bridge.bridge-nf-call-{table}=0"),
            ]);
        }
        Ok(lab)
    }

    /// The backend: HTTP/1.1 with keep-alive on 10.78.0.50:8080, answering with the
    /// address the connection came from (the balancer's source address).
    fn start_server(&mut self) -> Result<(), String> {
        let script = self.dir.join("server.py");
        fs::write(&script, SERVER_PY).map_err(|e| e.to_string())?;
        let log = fs::File::create(self.dir.join("server.out")).map_err(|e| e.to_string())?;
        self.server = Some(spawn_in(
            &self.be,
            &["python3", &script.display().to_string()],
            log,
        )?);
        Ok(())
    }

    /// The client's traffic, logged to `client.log` until `stop` exists.
    fn start_client(&mut self) -> Result<(), String> {
        let script = self.dir.join("client.py");
        fs::write(&script, CLIENT_PY).map_err(|e| e.to_string())?;
        let log = fs::File::create(self.dir.join("client.out")).map_err(|e| e.to_string())?;
        let (out, stop) = (self.dir.join("client.log"), self.dir.join("stop"));
        self.client = Some(spawn_in(
            &self.cli,
            &[
                "python3",
                &script.display().to_string(),
                &out.display().to_string(),
                &stop.display().to_string(),
            ],
            log,
        )?);
        Ok(())
    }

    /// Stops the client and returns its log.
    fn stop_client(&mut self) -> Vec<Event> {
        let _ = fs::write(self.dir.join("stop"), "");
        if let Some(mut c) = self.client.take() {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kill(&mut c);
        }
        fs::read_to_string(self.dir.join("client.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(Event::parse)
            .collect()
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

/// Runs `args` in namespace `ns` in its own process group, output to `log`.
fn spawn_in(ns: &str, args: &[&str], log: fs::File) -> Result<Child, String> {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))
}

/// Kills a child started by this test and its process group.
fn kill(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in [&mut self.keepalived, &mut self.server, &mut self.client] {
            if let Some(mut c) = child.take() {
                kill(&mut c);
            }
        }
        for ns in [&self.ns, &self.cli, &self.be] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One line of the client's log: `t kind ok|err detail` (t in seconds, wall clock).
#[derive(Debug, Clone)]
struct Event {
    t: f64,
    /// `short`, `keep` (a request on the keep-alive connection) or `reopen`.
    kind: String,
    ok: bool,
    /// The backend's view of the source (`10.78.0.250` via the board, `10.78.0.1` via
    /// Linux), or the error.
    detail: String,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let mut f = line.splitn(4, ' ');
        Some(Event {
            t: f.next()?.parse().ok()?,
            kind: f.next()?.to_string(),
            ok: f.next()? == "ok",
            detail: f.next().unwrap_or("").to_string(),
        })
    }
}

/// The backend (stdlib only): keep-alive HTTP/1.1, the peer's address as the body.
const SERVER_PY: &str = r#"
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("10.78.0.50", 8080), H).serve_forever()
"#;

/// The client (stdlib only): a short connection every 20 ms, and one keep-alive
/// connection with a request every 50 ms, opened again when it breaks.
const CLIENT_PY: &str = r#"
import http.client, os, sys, threading, time
out, stop = open(sys.argv[1], "w", buffering=1), sys.argv[2]
lock = threading.Lock()
def log(kind, ok, detail):
    with lock:
        out.write("%.3f %s %s %s\n" % (time.time(), kind, "ok" if ok else "err", detail))
def get(c):
    c.request("GET", "/")
    r = c.getresponse()
    return r.read().decode()
def short():
    while not os.path.exists(stop):
        try:
            c = http.client.HTTPConnection("10.78.0.100", 80, timeout=1)
            log("short", True, get(c))
            c.close()
        except Exception as e:
            log("short", False, type(e).__name__)
        time.sleep(0.02)
def keep():
    c = None
    while not os.path.exists(stop):
        try:
            if c is None:
                c = http.client.HTTPConnection("10.78.0.100", 80, timeout=1)
                c.connect()
                log("reopen", True, "")
            log("keep", True, get(c))
        except Exception as e:
            log("keep", False, type(e).__name__)
            try:
                c.close()
            except Exception:
                pass
            c = None
        time.sleep(0.05)
threads = [threading.Thread(target=short), threading.Thread(target=keep)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"#;

/// From `events`, the successful answers in `[from, to)` by the backend's view of the
/// source, and the longest gap between successful short connections in that window.
fn window(events: &[Event], from: f64, to: f64) -> (usize, usize, f64) {
    let inside = events.iter().filter(|e| e.t >= from && e.t < to && e.ok);
    let (mut board, mut linux) = (0, 0);
    let mut last = from;
    let mut gap = 0f64;
    for e in inside {
        match e.detail.as_str() {
            "10.78.0.250" => board += 1,
            "10.78.0.1" => linux += 1,
            _ => {}
        }
        if e.kind == "short" {
            gap = gap.max(e.t - last);
            last = e.t;
        }
    }
    (board, linux, gap.max(to - last))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

const CONFIG: &str = r#"
[appliance]
name = "edge-tap"
mac = "02:00:00:00:78:02"
address = "10.78.0.2"
snat_pool = ["10.78.0.250"]
flow_table = { sets = 1024, ways = 4 }

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
mode = "fullnat"
algorithm = "round_robin"
[service.health]
kind = "none"
[[service.backend]]
name = "web-1"
address = "10.78.0.50"
port = 8080
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
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (network namespaces, a tap device)");
        return;
    }
    for tool in ["keepalived", "nft", "python3"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            eprintln!(
                "skipped: {tool} is not installed (apt-get install keepalived nftables python3)"
            );
            return;
        }
    }
    let _ = env_logger::builder().is_test(true).try_init();
    let mut lab = Lab::new().expect("namespace");
    lab.start_server().expect("backend");
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
    // Traffic through keepalived's side first.
    lab.start_client().expect("client");
    let t_client = unix_now();
    // Until keepalived's side has answered for a second (Python starts slowly).
    let t = Instant::now();
    loop {
        let log = fs::read_to_string(lab.dir.join("client.log")).unwrap_or_default();
        let first = log.lines().filter_map(Event::parse).find(|e| e.ok);
        if first.is_some_and(|e| unix_now() - e.t > 1.0) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no answer through keepalived: {:?}",
            fs::read_to_string(lab.dir.join("client.out"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t_board = unix_now();
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

        // Traffic through the board for a while.
        Timer::after_millis(1_500).await;
        let cli = lab.cli.clone();
        let neigh = tokio::task::spawn_blocking(move || {
            run(&["ip", "-n", &cli, "neigh", "show", "10.78.0.100"]).unwrap_or_default()
        })
        .await
        .unwrap();
        println!("the client's neighbour entry for the VIP: {}", neigh.trim());

        // 3. The board halts: keepalived takes over (its Master_Down_Interval: 3 × 100 ms
        //    + skew (256 − 100) / 256 × 100 ms ≈ 361 ms).
        let t_halt = unix_now();
        board.halt_mcu();
        let back = until(Duration::from_secs(3), || lab.state() == "MASTER").await;
        println!("keepalived master {:?} after the board's MCU halted", back);
        assert!(
            back.is_some_and(|d| d < Duration::from_millis(800)),
            "{back:?}"
        );
        Timer::after_millis(1_500).await;
        let t_end = unix_now();

        // The traffic, phase by phase (the board is done: blocking here is fine).
        let events = lab.stop_client();
        let phases = [
            ("keepalived master", t_client, t_board),
            ("board starts and preempts", t_board, t_halt),
            ("board halted, keepalived takes over", t_halt, t_end),
        ];
        let mut seen = Vec::new();
        for (name, from, to) in phases {
            let (via_board, via_linux, gap) = window(&events, from, to);
            let failed = events
                .iter()
                .filter(|e| e.t >= from && e.t < to && !e.ok)
                .count();
            let reopened = events
                .iter()
                .filter(|e| e.t >= from && e.t < to && e.kind == "reopen" && e.ok)
                .count();
            println!(
                "{name}: {via_board} answers via the board, {via_linux} via keepalived's Linux, {failed} failed requests, longest gap between new connections {:.0} ms, keep-alive connection opened {reopened}x",
                gap * 1e3
            );
            seen.push((via_board, via_linux, gap, reopened));
        }
        assert!(
            events.iter().filter(|e| e.ok).count() > 100,
            "too little traffic: {:?}",
            fs::read_to_string(lab.dir.join("client.out"))
        );
        // keepalived carried the traffic first, then the board, then keepalived again:
        // the last second of each phase went through its master only.
        let tail = |from: f64, to: f64| window(&events, (to - 0.7).max(from), to);
        let (b0, l0, _) = tail(t_client, t_board);
        let (b1, l1, _) = tail(t_board, t_halt);
        let (b2, l2, _) = tail(t_halt, t_end);
        assert!(b0 == 0 && l0 > 10, "keepalived phase: board {b0}, linux {l0}");
        assert!(b1 > 10 && l1 == 0, "board phase: board {b1}, linux {l1}");
        assert!(b2 == 0 && l2 > 10, "keepalived again: board {b2}, linux {l2}");
        // New connections resume within the takeover (board: preempts after its
        // Master_Down_Interval ≈ 321 ms; keepalived: ≈ 361 ms after the last advert) plus
        // the client's 1 s timeout for the attempt caught in between.
        assert!(seen[1].2 < 2.0, "outage at the preemption {:.3} s", seen[1].2);
        assert!(seen[2].2 < 2.0, "outage at the takeover {:.3} s", seen[2].2);
        // The keep-alive connection is re-established after each handover (it cannot be
        // kept: no shared flow state, a different NAT source on each side).
        assert!(seen[1].3 >= 1 && seen[2].3 >= 1, "keep-alive connection not reopened");
    });
}
