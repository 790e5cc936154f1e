//! Real traffic through the simulated appliance (root): network namespaces with real
//! servers (Python's `http.server`, `redis-server`, `memcached`) and real client sockets,
//! a Linux router, and the board on a tap device — all created here and removed on drop.
//!
//! ```text
//! NS-c: clients 192.0.2.2/24 ── veth ── NS-n: router (ip_forward), bridge br0 ── tap (the board)
//!                                                               ├── veth ── NS-h0: backend address 0, its servers
//!                                                               └── veth ── NS-h1: ...
//! ```
//!
//! One namespace per backend address, as separate machines: DSR and tunnel backends hold
//! their VIPs on loopback and answer through the router, tunnel backends decapsulate in
//! user space (`scripts/decap.py`; this kernel has no `ipip`/`fou`), NAT backends answer
//! through the appliance.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use fulcrum_model::config::{CheckKind, Config, Mode};

/// The namespaces and processes of one run.
pub struct TapLab {
    /// Prefix of every name (namespaces `PREFIX-n`, `-c`, `-h0`, `-h1`, ...).
    pub prefix: String,
    /// Where the servers listen (namespace, port), as started.
    pub listening: Vec<(String, String)>,
    /// The tap device's name.
    pub tap: String,
    /// The clients' address.
    pub client: Ipv4Addr,
    /// The router's address on the appliance's network: the appliance's gateway to the
    /// clients (the MCU answers L7 clients through it).
    pub router: Ipv4Addr,
    servers: Vec<Child>,
    /// The tunnel decapsulators (one per tunnel backend's namespace) and their logs.
    decap: Vec<(Child, PathBuf)>,
    /// Every namespace created, removed on drop.
    namespaces: Vec<String>,
    dir: PathBuf,
}

/// The userspace IP-in-IP/GUE decapsulator (this kernel has no `ipip`/`fou`).
const DECAP: &str = include_str!("../scripts/decap.py");
/// Its TUN device in a tunnel backend's namespace.
const DECAP_TUN: &str = "fdecap0";

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ns_exec(ns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    ip(&all)
}

impl TapLab {
    /// Namespace names.
    pub fn ns(&self, which: char) -> String {
        format!("{}-{which}", self.prefix)
    }

    /// Builds the topology for `config` (needs root); the tap device `tap` must then be
    /// opened by the board and handed to [`TapLab::attach_tap`].
    pub fn create(config: &Config) -> Result<TapLab> {
        if !nix::unistd::Uid::effective().is_root() {
            bail!("--tap needs root (network namespaces and a tap device)");
        }
        let id = std::process::id() % 100_000;
        let prefix = format!("fsim{id}");
        let dir = std::env::temp_dir().join(format!("fulcrum-tap-lab-{id}"));
        std::fs::create_dir_all(&dir)?;
        let mut lab = TapLab {
            prefix: prefix.clone(),
            listening: Vec::new(),
            tap: format!("fst{id}"),
            client: Ipv4Addr::new(192, 0, 2, 2),
            router: Ipv4Addr::UNSPECIFIED,
            servers: Vec::new(),
            decap: Vec::new(),
            namespaces: Vec::new(),
            dir,
        };
        let (n, c) = (lab.ns('n'), lab.ns('c'));
        for ns in [&n, &c] {
            lab.add_ns(ns)?;
        }
        let a = &config.appliance;
        let o = a.address.octets();
        let router = (1..=254u8)
            .map(|l| Ipv4Addr::new(o[0], o[1], o[2], l))
            .find(|x| {
                *x != a.address
                    && !a.snat_pool.contains(x)
                    && !config.services.iter().any(|s| s.vip == *x)
                    && !config.all_backends().any(|(_, be)| be.address == *x)
            })
            .context("no free address for the router")?;
        lab.router = router;
        // Network namespace: bridge br0 (router address), veths to backends and clients.
        ns_exec(&n, &["ip", "link", "add", "br0", "type", "bridge"])?;
        ns_exec(
            &n,
            &[
                "ip",
                "addr",
                "add",
                &format!("{router}/{}", a.prefix),
                "dev",
                "br0",
            ],
        )?;
        ns_exec(&n, &["ip", "link", "set", "br0", "up"])?;
        ns_exec(&n, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        ip(&[
            "link", "add", "cport", "netns", &n, "type", "veth", "peer", "name", "eth0", "netns",
            &c,
        ])?;
        ns_exec(&n, &["ip", "addr", "add", "192.0.2.1/24", "dev", "cport"])?;
        ns_exec(&n, &["ip", "link", "set", "cport", "up"])?;
        ns_exec(&c, &["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"])?;
        ns_exec(&c, &["ip", "link", "set", "eth0", "up"])?;
        ns_exec(&c, &["ip", "route", "add", "default", "via", "192.0.2.1"])?;
        // Backends: one namespace per backend address (`-h0`, `-h1`, ...), as separate
        // machines, so every answer names the backend that really served it.
        let mut hosts: Vec<Ipv4Addr> = Vec::new();
        for (_, be) in config.all_backends() {
            if !hosts.contains(&be.address) {
                hosts.push(be.address);
            }
        }
        let mut bound: Vec<(String, String)> = Vec::new();
        let mut tunnel_hosts: Vec<String> = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let h = lab.ns_host(i);
            lab.add_ns(&h)?;
            let port = format!("bp{i}");
            ip(&[
                "link", "add", &port, "netns", &n, "type", "veth", "peer", "name", "eth0", "netns",
                &h,
            ])?;
            ns_exec(&n, &["ip", "link", "set", &port, "master", "br0", "up"])?;
            ns_exec(
                &h,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{host}/{}", a.prefix),
                    "dev",
                    "eth0",
                ],
            )?;
            ns_exec(&h, &["ip", "link", "set", "eth0", "up"])?;
            let served: Vec<_> = config
                .all_backends()
                .filter(|(_, be)| be.address == *host)
                .collect();
            // DSR and tunnel backends hold their VIPs on loopback (without answering ARP
            // for them) and answer the clients through the router; NAT backends answer
            // through the appliance (their replies' source is the backend address, a
            // direct reply's is the VIP: source routing tells them apart); full-NAT and
            // L7 backends answer the appliance on the link.
            let direct = served.iter().any(|(s, _)| s.mode.keeps_port());
            let nat = served.iter().any(|(s, _)| s.mode == Mode::Nat);
            if direct {
                for (svc, _) in served.iter().filter(|(s, _)| s.mode.keeps_port()) {
                    ns_exec(
                        &h,
                        &["ip", "addr", "add", &format!("{}/32", svc.vip), "dev", "lo"],
                    )?;
                }
                ns_exec(
                    &h,
                    &[
                        "sysctl",
                        "-qw",
                        "net.ipv4.conf.all.arp_ignore=1",
                        "net.ipv4.conf.all.arp_announce=2",
                    ],
                )?;
                ns_exec(
                    &h,
                    &["ip", "route", "add", "default", "via", &router.to_string()],
                )?;
                if nat {
                    let appliance = a.address.to_string();
                    let table = ["ip", "route", "add", "default", "via", &appliance];
                    ns_exec(&h, &[&table[..], &["table", "100"]].concat())?;
                    ns_exec(
                        &h,
                        &[
                            "ip",
                            "rule",
                            "add",
                            "from",
                            &host.to_string(),
                            "lookup",
                            "100",
                        ],
                    )?;
                }
            } else {
                ns_exec(
                    &h,
                    &[
                        "ip",
                        "route",
                        "add",
                        "default",
                        "via",
                        &a.address.to_string(),
                    ],
                )?;
            }
            if served
                .iter()
                .any(|(s, _)| matches!(s.mode, Mode::Ipip | Mode::Gue))
            {
                tunnel_hosts.push(h.clone());
            }
            // Servers, one per port, by the service's check kind; on every address (a
            // direct backend serves its VIPs too).
            for (svc, be) in served {
                let port = svc.backend_port(be).to_string();
                if bound.contains(&(h.clone(), port.clone())) {
                    continue;
                }
                bound.push((h.clone(), port.clone()));
                let addr = "0.0.0.0";
                let args: Vec<String> = match svc.health.kind {
                    CheckKind::Redis => [
                        "redis-server",
                        "--port",
                        &port,
                        "--bind",
                        addr,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--protected-mode",
                        "no",
                    ]
                    .map(String::from)
                    .to_vec(),
                    CheckKind::Memcached => ["memcached", "-l", addr, "-p", &port, "-u", "root"]
                        .map(String::from)
                        .to_vec(),
                    _ => {
                        let root = lab.dir.join(be.name.as_str());
                        std::fs::create_dir_all(&root)?;
                        std::fs::write(root.join("index.html"), format!("ok from {}\n", be.name))?;
                        let health = svc.health.path.trim_start_matches('/');
                        if !health.is_empty() {
                            let p = root.join(health);
                            if let Some(parent) = p.parent() {
                                std::fs::create_dir_all(parent)?;
                            }
                            std::fs::write(p, "ok\n")?;
                        }
                        vec![
                            "python3".into(),
                            "-m".into(),
                            "http.server".into(),
                            port.clone(),
                            "--bind".into(),
                            addr.into(),
                            "--directory".into(),
                            root.display().to_string(),
                        ]
                    }
                };
                let child = Command::new("ip")
                    .args(["netns", "exec", &h])
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting {}", args[0]))?;
                lab.servers.push(child);
            }
        }
        lab.listening = bound;
        lab.wait_for_servers(std::time::Duration::from_secs(15))?;
        for h in tunnel_hosts {
            lab.start_decap(config, &h)?;
        }
        Ok(lab)
    }

    /// The namespace of backend host `i` (in the order the config names addresses).
    pub fn ns_host(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// Creates namespace `ns` (removed on drop) with its loopback up.
    fn add_ns(&mut self, ns: &str) -> Result<()> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        ns_exec(ns, &["ip", "link", "set", "lo", "up"])
    }

    /// Starts the tunnel decapsulator in backend namespace `ns` (`scripts/decap.py`:
    /// IP-in-IP and the GUE ports of the config's services into a TUN device, as the
    /// kernel's `ipip` and `fou` devices would) and waits until it listens.
    fn start_decap(&mut self, config: &Config, ns: &str) -> Result<()> {
        let mut ports: Vec<String> = config
            .services
            .iter()
            .filter(|s| s.mode == Mode::Gue)
            .map(|s| s.gue_port.to_string())
            .collect();
        ports.sort();
        ports.dedup();
        let ready = self.dir.join(format!("{ns}.decap.ready"));
        let log_path = self.dir.join(format!("{ns}.decap.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", DECAP, DECAP_TUN])
            .arg(&ready)
            .args(&ports)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the tunnel decapsulator (python3)")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ready.exists() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the tunnel decapsulator in {ns} exited ({status}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("the tunnel decapsulator in {ns} did not start");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.decap.push((child, log_path));
        Ok(())
    }

    /// Stops the tunnel decapsulators and returns their summed counts (`decapsulated
    /// ipip N gue N refused N`), or `None` without tunnel services.
    pub fn stop_decap(&mut self) -> Option<String> {
        if self.decap.is_empty() {
            return None;
        }
        let mut sums = [0u64; 3];
        for (mut child, log) in std::mem::take(&mut self.decap) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
            // `ip netns exec` execs python3: the signal reached the script.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let Some(line) = text.lines().rev().find(|l| l.starts_with("decapsulated")) else {
                continue;
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            for (k, kind) in ["ipip", "gue", "refused"].iter().enumerate() {
                if let Some(n) = words
                    .iter()
                    .position(|w| w == kind)
                    .and_then(|at| words.get(at + 1))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    sums[k] += n;
                }
            }
        }
        Some(format!(
            "decapsulated ipip {} gue {} refused {}",
            sums[0], sums[1], sums[2]
        ))
    }

    /// Waits until every server accepts connections (from inside its namespace).
    fn wait_for_servers(&self, limit: std::time::Duration) -> Result<()> {
        let listening = self.listening.clone();
        std::thread::spawn(move || -> Result<()> {
            let deadline = std::time::Instant::now() + limit;
            for (ns, port) in listening {
                let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
                let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
                while std::net::TcpStream::connect_timeout(
                    &target,
                    std::time::Duration::from_millis(200),
                )
                .is_err()
                {
                    if std::time::Instant::now() > deadline {
                        bail!("the server on port {port} in {ns} did not start");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("server wait panicked"))?
    }

    /// Moves the board's tap into the network namespace and onto the bridge.
    pub fn attach_tap(&self) -> Result<()> {
        let n = self.ns('n');
        ip(&["link", "set", &self.tap, "netns", &n])?;
        // A high MAC, so the bridge keeps the router's.
        ns_exec(
            &n,
            &[
                "ip",
                "link",
                "set",
                &self.tap,
                "address",
                "fe:ff:ff:ff:ff:fe",
            ],
        )?;
        ns_exec(&n, &["ip", "link", "set", &self.tap, "master", "br0", "up"])
    }

    /// Runs `f` on a thread inside the clients' namespace (its sockets are the clients').
    pub fn in_clients<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<Result<T>> {
        let path = format!("/run/netns/{}", self.ns('c'));
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .context("entering the clients' namespace")?;
            Ok(f())
        })
    }
}

impl Drop for TapLab {
    fn drop(&mut self) {
        for c in self
            .servers
            .iter_mut()
            .chain(self.decap.iter_mut().map(|(c, _)| c))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
