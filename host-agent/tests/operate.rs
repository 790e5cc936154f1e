//! The `fulcrum` binary against a simulated board (in this process, on its virtual
//! network), over TCP and over the serial console (a pseudo-terminal): status numbers
//! against the traffic this test sends, apply with diff / idempotence / rejection, wrong
//! keys, drain without moving established flows, metrics, logs, watch, flash.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../../firmware/tests/common/filters.rs"]
mod example_filters;

use embassy_net::tcp::TcpSocket;
use fulcrum_mgmt::envelope::Key;
use fulcrum_model::config::Config;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{HostSpec, Server, Switch, http_get, spawn_host};
use fulcrum_sim::{BoardOptions, MANAGEMENT_PORT, start};

const CONFIG: &str = r#"[appliance]
name = "lab-1"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
snat_pool = ["10.0.0.250"]
maglev_ring_size = 1021
flow_table = { sets = 1024, ways = 4 }

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "fullnat"
algorithm = "round_robin"
[service.health]
kind = "http"
inter = 300
fastinter = 100
downinter = 300
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

enum Cmd {
    /// `n` requests, each on a new connection; answers the backend names.
    Fresh(usize),
    /// Opens `n` keep-alive connections and makes one request on each.
    Open(usize),
    /// One more request on every open connection.
    Reuse,
}

/// The answers to a [`Cmd`]: one per request, the body or why it failed.
type Answers = Vec<Result<String, String>>;
/// A command and where to send its answers.
type Order = (Cmd, mpsc::Sender<Answers>);

struct Lab {
    commands: tokio::sync::mpsc::UnboundedSender<Order>,
    addr: String,
    serial: PathBuf,
    dir: PathBuf,
    key_file: PathBuf,
}

impl Lab {
    fn ask(&self, cmd: Cmd) -> Answers {
        let (tx, rx) = mpsc::channel();
        self.commands.send((cmd, tx)).expect("lab thread alive");
        rx.recv_timeout(Duration::from_secs(60))
            .expect("lab answers")
    }

    fn fulcrum(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_fulcrum"))
            .args(args)
            .env_remove("FULCRUM_KEY")
            .env("FULCRUM_TARGETS", self.dir.join("targets.toml"))
            .output()
            .expect("fulcrum runs")
    }

    fn tcp(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "--host",
            &self.addr,
            "--key-file",
            self.key_file.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.fulcrum(&all)
    }

    fn serial(&self, args: &[&str]) -> Output {
        let mut all = vec!["--serial", self.serial.to_str().unwrap()];
        all.extend_from_slice(args);
        self.fulcrum(&all)
    }

    fn status(&self) -> serde_json::Value {
        let out = self.tcp(&["status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("status is JSON")
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}

fn lab(tag: &str) -> Lab {
    let dir = std::env::temp_dir().join(format!("fulcrum-operate-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("mgmt.key");
    write(&key_file, "operator test key 0123456789\n");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<Order>();
    let state_dir = dir.join("state");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async move {
            let config: Config = toml::from_str(CONFIG).unwrap();
            let mut switch = Switch::new();
            let (port, _) = switch.port();
            let host = |name: &str, last: u8, server| HostSpec {
                name: name.into(),
                mac: [2, 0, 0, 0, 1, last],
                address: Ipv4Addr::new(10, 0, 0, last),
                prefix: 24,
                gateway: None,
                server,
            };
            for (i, name) in ["web-1", "web-2", "web-3"].iter().enumerate() {
                spawn_host(
                    &mut switch,
                    host(name, 11 + i as u8, Server::Http(8080)),
                    i as u64,
                );
            }
            let client = spawn_host(&mut switch, host("client", 50, Server::None), 50);
            let operator = spawn_host(&mut switch, host("operator", 9, Server::None), 9);
            tokio::task::spawn_local(switch.run());
            let board = start(
                BoardOptions {
                    state_dir,
                    config: Some(config),
                    force_config: true,
                    key: Some(Key::new(b"operator test key 0123456789").unwrap()),
                    serial: true,
                    geometry: Geometry {
                        sets: 1024,
                        ways: 4,
                        ring: 1021,
                    },
                },
                NetworkPort::Virtual(port),
            )
            .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            tokio::task::spawn_local(fulcrum_sim::gateway::serve(
                listener,
                operator.stack,
                board.address,
                MANAGEMENT_PORT,
            ));
            ready_tx
                .send((addr, board.serial_path.clone().unwrap()))
                .unwrap();
            let vip = (Ipv4Addr::new(10, 0, 0, 100), 80);
            let mut open: Vec<TcpSocket<'static>> = Vec::new();
            let buffers = || -> (&'static mut [u8], &'static mut [u8]) {
                (vec![0u8; 4096].leak(), vec![0u8; 4096].leak())
            };
            while let Some((cmd, reply)) = cmd_rx.recv().await {
                let mut results = Vec::new();
                match cmd {
                    Cmd::Fresh(n) => {
                        let (rx, tx) = (&mut [0u8; 4096], &mut [0u8; 4096]);
                        for _ in 0..n {
                            let mut s = TcpSocket::new(client.stack, rx, tx);
                            s.set_timeout(Some(embassy_time::Duration::from_secs(5)));
                            let r = match s.connect(vip).await {
                                Ok(()) => http_get(&mut s, "lab", "/").await,
                                Err(e) => Err(format!("connect: {e:?}")),
                            };
                            results.push(r);
                            s.close();
                            let _ = s.flush().await;
                            s.abort();
                            drop(s);
                        }
                    }
                    Cmd::Open(n) => {
                        for _ in 0..n {
                            let (rx, tx) = buffers();
                            let mut s = TcpSocket::new(client.stack, rx, tx);
                            s.set_timeout(Some(embassy_time::Duration::from_secs(30)));
                            let r = match s.connect(vip).await {
                                Ok(()) => http_get(&mut s, "lab", "/").await,
                                Err(e) => Err(format!("connect: {e:?}")),
                            };
                            results.push(r);
                            open.push(s);
                        }
                    }
                    Cmd::Reuse => {
                        for s in open.iter_mut() {
                            results.push(http_get(s, "lab", "/").await);
                        }
                    }
                }
                let _ = reply.send(results);
            }
        });
    });
    let (addr, serial) = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("board starts");
    let lab = Lab {
        commands: cmd_tx,
        addr,
        serial,
        dir,
        key_file,
    };
    // Wait until every backend is up.
    let start = Instant::now();
    loop {
        let st = lab.status();
        let up = st["services"][0]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["state"] == "up")
            .count();
        if up == 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "backends never came up: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    lab
}

fn backend<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["services"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap()
}

#[test]
fn status_counts_the_traffic_sent_and_metrics_logs_watch_agree() {
    let lab = lab("status");
    let answers = lab.ask(Cmd::Fresh(30));
    let ok: Vec<&String> = answers.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
        ok.len(),
        30,
        "every request through the VIP succeeded: {answers:?}"
    );
    // Round robin over three backends: 10 each.
    for name in ["web-1", "web-2", "web-3"] {
        assert_eq!(
            ok.iter().filter(|b| b.contains(name)).count(),
            10,
            "{name}: {ok:?}"
        );
    }
    let st = lab.status();
    let web = &st["services"][0];
    assert_eq!(web["new_flows"], 30);
    let flows: u64 = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|n| backend(&st, n)["total_flows"].as_u64().unwrap())
        .sum();
    assert_eq!(flows, 30);
    assert!(web["packets"].as_u64().unwrap() >= 30 * 4, "{web}");
    assert!(web["return_packets"].as_u64().unwrap() >= 30 * 3, "{web}");

    // The serial console sees the same numbers, without a key.
    let out = lab.serial(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("service web  tcp 10.0.0.100:80  fullnat  round_robin"),
        "{shown}"
    );
    assert!(shown.contains("new flows 30"), "{shown}");

    // Prometheus exposition.
    let out = lab.tcp(&["metrics", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains("fulcrum_backend_up{service=\"web\",backend=\"web-1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fulcrum_service_flows_total{service=\"web\"} 30"),
        "{metrics}"
    );
    let count_line = metrics
        .lines()
        .find(|l| l.starts_with("fulcrum_health_check_duration_seconds_count{service=\"web\"}"))
        .unwrap();
    assert!(
        count_line
            .split(' ')
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 3,
        "{count_line}"
    );
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a sample: {line}"));
    }

    // The exporter over HTTP, as Prometheus scrapes it.
    let mut exporter = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args([
            "--host",
            &lab.addr,
            "--key-file",
            lab.key_file.to_str().unwrap(),
            "metrics",
            "--listen",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(exporter.stderr.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the exporter says where")
        .to_string();
    let hostport = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let mut stream = std::net::TcpStream::connect(&hostport).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut scraped = String::new();
    std::io::Read::read_to_string(&mut stream, &mut scraped).unwrap();
    let _ = exporter.kill();
    let _ = exporter.wait();
    assert!(scraped.starts_with("HTTP/1.1 200 OK"), "{scraped}");
    assert!(scraped.contains("fulcrum_up 1"), "{scraped}");
    assert!(
        scraped.contains("fulcrum_service_flows_total{service=\"web\"} 30"),
        "{scraped}"
    );

    let out = lab.serial(&["logs"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("config generation 1 applied"),
        "{}",
        text(&out)
    );
    let out = lab.tcp(&["watch", "--count", "2", "--interval", "0.2"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("appliance lab-1")
            .count(),
        2
    );
}

#[test]
fn apply_diffs_is_idempotent_rejects_bad_configs_and_keys() {
    let lab = lab("apply");
    let same = lab.dir.join("same.toml");
    write(&same, CONFIG);
    let out = lab.tcp(&["apply", same.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no changes");

    // An invalid file: file:line diagnostics, exit 1, nothing sent.
    let bad = lab.dir.join("bad.toml");
    write(
        &bad,
        &CONFIG.replacen("port = 8080", "port = 8080\nweight = 5000", 1),
    );
    let out = lab.tcp(&["apply", bad.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("bad.toml:"), "{}", text(&out));
    assert_eq!(lab.status()["generation"], 1);

    // Without --yes and without a terminal: refused, nothing applied.
    let changed = lab.dir.join("changed.toml");
    let text_changed = CONFIG
        .replacen("port = 8080", "port = 8080\nweight = 3", 1)
        .replace(
            "[[service.backend]]\nname = \"web-3\"\naddress = \"10.0.0.13\"\nport = 8080\n",
            "",
        );
    write(&changed, &text_changed);
    let out = lab.tcp(&["apply", changed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--yes"));
    assert_eq!(lab.status()["generation"], 1);

    // The real thing, draining the removed backend first.
    let out = lab.tcp(&[
        "apply",
        changed.to_str().unwrap(),
        "--yes",
        "--drain-timeout",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("- backend web/web-3"), "{shown}");
    assert!(shown.contains("~ web/web-1.weight: 1 -> 3"), "{shown}");
    assert!(shown.contains("applied: generation 2"), "{shown}");
    let st = lab.status();
    assert_eq!(st["generation"], 2);
    assert_eq!(st["services"][0]["backends"].as_array().unwrap().len(), 2);
    // Twice: no changes, generation stays.
    let out = lab.tcp(&["apply", changed.to_str().unwrap(), "--yes", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["applied"], false);
    assert_eq!(lab.status()["generation"], 2);

    // A wrong key: exit 3, says so; a missing key over the network: exit 2.
    let wrong = lab.dir.join("wrong.key");
    write(&wrong, "not the key");
    let out = lab.fulcrum(&[
        "--host",
        &lab.addr,
        "--key-file",
        wrong.to_str().unwrap(),
        "status",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("wrong management key"),
        "{}",
        text(&out)
    );
    let out = lab.fulcrum(&["--host", &lab.addr, "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--key-file"), "{}", text(&out));

    // A named target.
    write(
        &lab.dir.join("targets.toml"),
        &format!(
            "[target.lab]\nhost = \"{}\"\nkey_file = \"{}\"\n",
            lab.addr,
            lab.key_file.display()
        ),
    );
    let out = lab.fulcrum(&["--target", "lab", "status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.fulcrum(&["--target", "nope", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("known: lab"), "{}", text(&out));

    // No appliance reachable there: exit 3.
    let out = lab.fulcrum(&[
        "--host",
        "127.0.0.1:1",
        "--key-file",
        lab.key_file.to_str().unwrap(),
        "status",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // logs --rtt without probe-rs on PATH fails clearly too.
    let elf = lab.dir.join("fw.elf");
    write(&elf, "not really an ELF");
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["logs", "--rtt", elf.to_str().unwrap()])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("probe-rs not found"), "{}", text(&out));

    // flash without probe-rs on PATH fails clearly.
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["flash", "--mcu"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("probe-rs not found"), "{}", text(&out));
}

#[test]
fn drain_moves_no_established_flow() {
    let lab = lab("drain");
    let first = lab.ask(Cmd::Open(6));
    let first: Vec<String> = first.into_iter().map(|r| r.expect("request")).collect();
    // Drain the backend of the first connection, over the serial console.
    let victim = ["web-1", "web-2", "web-3"]
        .into_iter()
        .find(|n| first[0].contains(n))
        .unwrap();
    let out = lab.serial(&["backend", "drain", &format!("web/{victim}")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(backend(&lab.status(), victim)["state"], "drain");
    // Every established connection keeps its backend.
    let again: Vec<String> = lab
        .ask(Cmd::Reuse)
        .into_iter()
        .map(|r| r.expect("request"))
        .collect();
    assert_eq!(first, again, "established flows stayed where they were");
    // New connections avoid the drained backend.
    let fresh: Vec<String> = lab
        .ask(Cmd::Fresh(12))
        .into_iter()
        .map(|r| r.expect("request"))
        .collect();
    assert!(
        fresh.iter().all(|b| !b.contains(victim)),
        "{victim} got new flows: {fresh:?}"
    );
    // Enable again.
    let out = lab.tcp(&["backend", "enable", &format!("web/{victim}")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(backend(&lab.status(), victim)["state"], "up");
    let out = lab.tcp(&["backend", "drain", "web/nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn filter_upload_list_remove_with_exit_codes() {
    let lab = lab("filters");
    let wasm = lab.dir.join("block-ua.wasm");
    std::fs::write(&wasm, example_filters::example("block_ua")).unwrap();
    let wasm = wasm.to_str().unwrap();

    let out = lab.tcp(&["filter", "upload", "web", wasm]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with("web: filter installed ("),
        "{}",
        text(&out)
    );

    let out = lab.tcp(&["filter", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["service"], "web");
    assert_eq!(list[0]["memory_bytes"], 16384);
    assert_eq!(list[0]["sha256"].as_str().unwrap().len(), 64);

    // Refused by the appliance: exit status 1, the running filter stays.
    let garbage = lab.dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\x01\xff").unwrap();
    let out = lab.tcp(&["filter", "upload", "web", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not a valid WebAssembly module"),
        "{}",
        text(&out)
    );
    let out = lab.serial(&["filter", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SERVICE"), "{}", text(&out));
    assert!(
        text(&out).lines().any(|l| l.starts_with("web ")),
        "{}",
        text(&out)
    );

    // Usage errors: exit status 2, nothing sent.
    let out = lab.tcp(&["filter", "upload", "web", "/nonexistent/x.wasm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let long = "s".repeat(40);
    let out = lab.tcp(&["filter", "upload", &long, wasm]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // A wrong key: exit status 3.
    let wrong = lab.dir.join("wrong.key");
    write(&wrong, "not the key\n");
    let out = lab.fulcrum(&[
        "--host",
        &lab.addr,
        "--key-file",
        wrong.to_str().unwrap(),
        "filter",
        "list",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    let out = lab.tcp(&["filter", "remove", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.tcp(&["filter", "remove", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = lab.tcp(&["filter", "list"]);
    assert_eq!(text(&out), "no filters\n");
}
