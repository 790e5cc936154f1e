//! Real traffic through the simulated appliance (root): network namespaces with real
//! servers (Python's `http.server`, `redis-server`, `memcached`) and real client sockets,
//! a Linux router, and the board on a tap device — all created here and removed on drop.
//!
//! ```text
//! NS-c: clients 192.0.2.2/24 ── veth ── NS-n: router (ip_forward), bridge br0 ── tap (the board)
//!                                                               └── veth ── NS-b: every backend address, servers
//! ```

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use fulcrum_model::config::{CheckKind, Config, Mode};

/// The namespaces and processes of one run.
pub struct TapLab {
    /// Prefix of every name (namespaces `PREFIX-n`, `-b`, `-c`).
    pub prefix: String,
    /// Where the servers listen (address, port), as started.
    pub listening: Vec<(String, String)>,
    /// The tap device's name.
    pub tap: String,
    /// The clients' address.
    pub client: Ipv4Addr,
    /// The router's address on the appliance's network: the appliance's gateway to the
    /// clients (the MCU answers L7 clients through it).
    pub router: Ipv4Addr,
    servers: Vec<Child>,
    /// The tunnel decapsulator in the backends' namespace (tunnel services only).
    decap: Option<Child>,
    dir: PathBuf,
}

/// The userspace IP-in-IP/GUE decapsulator (this kernel has no `ipip`/`fou`).
const DECAP: &str = include_str!("../scripts/decap.py");
/// Its TUN device in the backends' namespace.
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
            decap: None,
            dir,
        };
        let (n, b, c) = (lab.ns('n'), lab.ns('b'), lab.ns('c'));
        for ns in [&n, &b, &c] {
            ip(&["netns", "add", ns])?;
            ns_exec(ns, &["ip", "link", "set", "lo", "up"])?;
        }
        let a = &config.appliance;
        let o = a.address.octets();
        let router = (1..=254u8)
            .map(|l| Ipv4Addr::new(o[0], o[1], o[2], l))
            .find(|x| {
                *x != a.address
                    && !a.snat_pool.contains(x)
                    && !config
                        .services
                        .iter()
                        .any(|s| s.vip == *x || s.backends.iter().any(|be| be.address == *x))
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
            "link", "add", "bport", "netns", &n, "type", "veth", "peer", "name", "eth0", "netns",
            &b,
        ])?;
        ns_exec(&n, &["ip", "link", "set", "bport", "master", "br0", "up"])?;
        ns_exec(&b, &["ip", "link", "set", "eth0", "up"])?;
        ip(&[
            "link", "add", "cport", "netns", &n, "type", "veth", "peer", "name", "eth0", "netns",
            &c,
        ])?;
        ns_exec(&n, &["ip", "addr", "add", "192.0.2.1/24", "dev", "cport"])?;
        ns_exec(&n, &["ip", "link", "set", "cport", "up"])?;
        ns_exec(&c, &["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"])?;
        ns_exec(&c, &["ip", "link", "set", "eth0", "up"])?;
        ns_exec(&c, &["ip", "route", "add", "default", "via", "192.0.2.1"])?;
        // Backends: every address on one interface; NAT backends route through the
        // appliance, DSR/tunnel ones through the router.
        let mut seen: Vec<Ipv4Addr> = Vec::new();
        let direct = config.services.iter().any(|s| s.mode.keeps_port());
        for svc in &config.services {
            for be in &svc.backends {
                if !seen.contains(&be.address) {
                    ns_exec(
                        &b,
                        &[
                            "ip",
                            "addr",
                            "add",
                            &format!("{}/{}", be.address, a.prefix),
                            "dev",
                            "eth0",
                        ],
                    )?;
                    seen.push(be.address);
                }
            }
        }
        let gateway = if direct { router } else { a.address };
        ns_exec(
            &b,
            &["ip", "route", "add", "default", "via", &gateway.to_string()],
        )?;
        if direct {
            // NAT backends answer through the appliance even where DSR ones use the
            // router: source routing per backend address.
            ns_exec(
                &b,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &a.address.to_string(),
                    "table",
                    "100",
                ],
            )?;
            for svc in config
                .services
                .iter()
                .filter(|s| matches!(s.mode, Mode::Nat))
            {
                for be in &svc.backends {
                    ns_exec(
                        &b,
                        &[
                            "ip",
                            "rule",
                            "add",
                            "from",
                            &be.address.to_string(),
                            "lookup",
                            "100",
                        ],
                    )?;
                }
            }
        }
        if direct {
            // DSR and tunnel backends hold the VIPs on loopback and do not answer ARP
            // for them.
            for svc in config.services.iter().filter(|s| s.mode.keeps_port()) {
                ns_exec(
                    &b,
                    &["ip", "addr", "add", &format!("{}/32", svc.vip), "dev", "lo"],
                )?;
            }
            ns_exec(
                &b,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.conf.all.arp_ignore=1",
                    "net.ipv4.conf.all.arp_announce=2",
                ],
            )?;
        }
        // Servers, one per backend and port, by the service's check kind (DSR backends
        // share one namespace, so they share one server on the VIP's port).
        let mut bound: Vec<(String, String)> = Vec::new();
        for svc in &config.services {
            for be in &svc.backends {
                let port = svc.backend_port(be).to_string();
                // A DSR or tunnel backend serves the VIP (on its loopback) too.
                let addr = if svc.mode.keeps_port() {
                    "0.0.0.0".to_string()
                } else {
                    be.address.to_string()
                };
                if bound.contains(&(addr.clone(), port.clone())) {
                    continue;
                }
                bound.push((addr.clone(), port.clone()));
                let args: Vec<String> = match svc.health.kind {
                    CheckKind::Redis => [
                        "redis-server",
                        "--port",
                        &port,
                        "--bind",
                        &addr,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--protected-mode",
                        "no",
                    ]
                    .map(String::from)
                    .to_vec(),
                    CheckKind::Memcached => ["memcached", "-l", &addr, "-p", &port, "-u", "root"]
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
                            addr.clone(),
                            "--directory".into(),
                            root.display().to_string(),
                        ]
                    }
                };
                let child = Command::new("ip")
                    .args(["netns", "exec", &b])
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
        if config
            .services
            .iter()
            .any(|s| matches!(s.mode, Mode::Ipip | Mode::Gue))
        {
            lab.start_decap(config)?;
        }
        Ok(lab)
    }

    /// Starts the tunnel decapsulator in the backends' namespace (`scripts/decap.py`:
    /// IP-in-IP and the GUE ports of the config's services into a TUN device, as the
    /// kernel's `ipip` and `fou` devices would) and waits until it listens.
    fn start_decap(&mut self, config: &Config) -> Result<()> {
        let mut ports: Vec<String> = config
            .services
            .iter()
            .filter(|s| s.mode == Mode::Gue)
            .map(|s| s.gue_port.to_string())
            .collect();
        ports.dedup();
        let ready = self.dir.join("decap.ready");
        let log = std::fs::File::create(self.dir.join("decap.log"))?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns('b'),
                "python3",
                "-c",
                DECAP,
                DECAP_TUN,
            ])
            .arg(&ready)
            .args(&ports)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the tunnel decapsulator (python3)")?;
        self.decap = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ready.exists() {
            if let Some(c) = self.decap.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "the tunnel decapsulator exited ({status}): {}",
                    std::fs::read_to_string(self.dir.join("decap.log")).unwrap_or_default()
                );
            }
            if std::time::Instant::now() > deadline {
                bail!("the tunnel decapsulator did not start");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the tunnel decapsulator and returns its counts (`decapsulated ipip N gue N
    /// refused N`), or `None` without tunnel services.
    pub fn stop_decap(&mut self) -> Option<String> {
        let mut child = self.decap.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
        // `ip netns exec` execs python3: the signal reached the script.
        std::fs::read_to_string(self.dir.join("decap.log"))
            .ok()
            .and_then(|l| {
                l.lines()
                    .rev()
                    .find(|l| l.starts_with("decapsulated"))
                    .map(String::from)
            })
    }

    /// Waits until every server accepts connections (from inside the backends' namespace).
    fn wait_for_servers(&self, limit: std::time::Duration) -> Result<()> {
        let listening = self.listening.clone();
        let path = format!("/run/netns/{}", self.ns('b'));
        std::thread::spawn(move || -> Result<()> {
            let file = std::fs::File::open(&path)?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
            let deadline = std::time::Instant::now() + limit;
            for (addr, port) in listening {
                let addr = if addr == "0.0.0.0" {
                    "127.0.0.1".to_string()
                } else {
                    addr
                };
                let target: std::net::SocketAddr = format!("{addr}:{port}").parse()?;
                while std::net::TcpStream::connect_timeout(
                    &target,
                    std::time::Duration::from_millis(200),
                )
                .is_err()
                {
                    if std::time::Instant::now() > deadline {
                        bail!("the server on {target} did not start");
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
        for c in self.servers.iter_mut().chain(self.decap.as_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for w in ['c', 'b', 'n'] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(w)])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
