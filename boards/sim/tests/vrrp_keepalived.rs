//! Interop: Fulcrum's VRRPv3 core against keepalived (Debian's package), over a real
//! kernel link. The test makes two network namespaces joined by a veth pair, runs
//! keepalived (VRRP version 3, 100 ms adverts, multicast, no authentication) in one, and
//! in the other a small Linux runner that drives `fulcrum_firmware::vrrp::Router` over a
//! raw IP socket (protocol 112, joined to 224.0.0.18). keepalived's state is read from
//! the file its notify script writes. Three elections:
//!
//! 1. Fulcrum priority 200 vs keepalived 100: Fulcrum becomes master (preempting
//!    keepalived, which was master alone first), keepalived goes backup.
//! 2. Fulcrum shuts down (priority-0 advert): keepalived takes over; Fulcrum restarts
//!    with priority 50 and stays backup under keepalived.
//! 3. keepalived is killed (SIGKILL, no release): Fulcrum takes over within its
//!    `Master_Down_Interval` of the last advert it heard.
//!
//! Everything stays inside the two namespaces, which the test removes (also on failure).
//! It needs root; without root it prints why it skips.
//!
//! The raw socket sends only the VRRP message (the kernel writes the IPv4 header: TTL 255
//! from the multicast TTL, DSCP CS6, the veth's address), so the runner's frames leave
//! from the veth's MAC, not the virtual MAC, and its gratuitous ARPs are not sent: the
//! embassy-net runner on the appliance sends the core's whole frames.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fulcrum_firmware::vrrp::{MAX_ADVERT_FRAME, Role, RoleChange, Router, RouterConfig};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const KA_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const FU_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
const VRID: u8 = 51;

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The namespaces, the temporary directory and keepalived; all removed on drop.
struct Lab {
    ns_ka: String,
    ns_fu: String,
    dir: PathBuf,
    keepalived: Option<Child>,
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let id = std::process::id();
        let lab = Lab {
            ns_ka: format!("fulcrum-ka-{id}"),
            ns_fu: format!("fulcrum-fu-{id}"),
            dir: std::env::temp_dir().join(format!("fulcrum-vrrp-{id}")),
            keepalived: None,
        };
        let _ = fs::remove_dir_all(&lab.dir);
        fs::create_dir_all(&lab.dir).map_err(|e| e.to_string())?;
        let (ka, fu) = (lab.ns_ka.as_str(), lab.ns_fu.as_str());
        run(&["ip", "netns", "add", ka])?;
        run(&["ip", "netns", "add", fu])?;
        run(&[
            "ip", "link", "add", "vka", "netns", ka, "type", "veth", "peer", "name", "vfu",
            "netns", fu,
        ])?;
        for (ns, dev, addr) in [(ka, "vka", "10.77.0.1/24"), (fu, "vfu", "10.77.0.2/24")] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])?;
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("keepalived.state")
    }

    /// keepalived's state as its notify script last wrote it.
    fn keepalived_state(&self) -> String {
        fs::read_to_string(self.state_file())
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn start_keepalived(&mut self, priority: u8) -> Result<(), String> {
        let notify = self.dir.join("notify.sh");
        fs::write(
            &notify,
            format!(
                "#!/bin/sh\necho \"$3\" > {}.tmp && mv {}.tmp {}\necho \"$(date +%s.%N) $3\" >> {}\n",
                self.state_file().display(),
                self.state_file().display(),
                self.state_file().display(),
                self.dir.join("keepalived.log").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        run(&["chmod", "700", &notify.display().to_string()])?;
        let _ = fs::remove_file(self.state_file());
        let conf = self.dir.join("keepalived.conf");
        fs::write(
            &conf,
            format!(
                r#"global_defs {{
    router_id fulcrum_interop
    vrrp_version 3
    script_user root
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface vka
    virtual_router_id {VRID}
    priority {priority}
    advert_int 0.1
    virtual_ipaddress {{
        {VIP}/24
    }}
    notify {notify}
}}
"#,
                notify = notify.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let d = |name: &str| self.dir.join(name).display().to_string();
        let log = fs::File::create(self.dir.join("keepalived.out")).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns_ka, "keepalived"])
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .args(["--use-file", &conf.display().to_string()])
            .args(["--pid", &d("keepalived.pid")])
            .args(["--vrrp_pid", &d("vrrp.pid")])
            .args(["--checkers_pid", &d("checkers.pid")])
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            // Its own process group: killing it takes its VRRP child too.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("keepalived: {e}"))?;
        self.keepalived = Some(child);
        Ok(())
    }

    /// SIGKILL to keepalived's process group: no release advert, like a crash.
    fn kill_keepalived(&mut self) {
        if let Some(mut child) = self.keepalived.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    fn keepalived_output(&self) -> String {
        fs::read_to_string(self.dir.join("keepalived.out")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_keepalived();
        let _ = run(&["ip", "netns", "del", &self.ns_ka]);
        let _ = run(&["ip", "netns", "del", &self.ns_fu]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What the runner thread shares with the test.
#[derive(Default)]
struct Status {
    role: Option<Role>,
    changes: Vec<(RoleChange, Instant)>,
    last_advert: Option<Instant>,
    master_down_ms: u64,
    master: Option<Ipv4Addr>,
    adverts_received: u32,
    lower_ignored: u32,
    adverts_sent: u32,
    refused: u32,
    address_mismatch: u32,
    garps: u32,
    error: Option<String>,
}

struct Runner {
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Runner {
    /// Starts a Fulcrum VRRP router in namespace `ns`.
    fn start(ns: &str, priority: u8) -> Runner {
        let status = Arc::new(Mutex::new(Status::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, ns) = (status.clone(), stop.clone(), ns.to_string());
        let thread = thread::spawn(move || {
            if let Err(e) = drive(&ns, priority, &s, &st) {
                s.lock().unwrap().error = Some(e);
            }
        });
        Runner {
            status,
            stop,
            thread: Some(thread),
        }
    }

    fn role(&self) -> Option<Role> {
        let s = self.status.lock().unwrap();
        if let Some(e) = &s.error {
            panic!("fulcrum runner: {e}");
        }
        s.role
    }

    /// Shuts the router down (release advert) and joins the thread.
    fn stop(mut self) -> Arc<Mutex<Status>> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.status.clone()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The runner: the namespace, the raw socket, the clock; the core does the rest.
fn drive(ns: &str, priority: u8, status: &Mutex<Status>, stop: &AtomicBool) -> Result<(), String> {
    let netns = fs::File::open(Path::new("/run/netns").join(ns)).map_err(|e| e.to_string())?;
    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns: {e}"))?;
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
        .map_err(|e| format!("raw socket: {e}"))?;
    let group = fulcrum_firmware::vrrp::GROUP;
    sock.join_multicast_v4(&group, &FU_ADDR)
        .map_err(|e| e.to_string())?;
    sock.set_multicast_if_v4(&FU_ADDR)
        .map_err(|e| e.to_string())?;
    sock.set_multicast_ttl_v4(255).map_err(|e| e.to_string())?;
    sock.set_multicast_loop_v4(false)
        .map_err(|e| e.to_string())?;
    sock.set_tos_v4(0xc0).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .map_err(|e| e.to_string())?;
    let dest = SockAddr::from(SocketAddrV4::new(group, 0));

    let mut router = Router::new(RouterConfig {
        vrid: VRID,
        priority,
        preempt: true,
        advert_interval_cs: 10,
        primary: FU_ADDR,
        addresses: [VIP].into_iter().collect(),
        hold_preempt_until_synced: false,
    });
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64;
    router.startup(now());
    let mut frame = [0u8; MAX_ADVERT_FRAME];
    let mut rx = [0u8; 2048];
    let mut sock_r = &sock;
    let mut last_seen_advert = None;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping {
            router.shutdown(now());
        }
        router.handle_timeout(now());
        while let Some(len) = router.poll_transmit(&mut frame) {
            let f = &frame[..len];
            if f[12..14] == [0x08, 0x06] {
                // Gratuitous ARP: a raw IP socket cannot send it (see the module docs).
                status.lock().unwrap().garps += 1;
                continue;
            }
            let ihl = usize::from(f[14] & 0x0f) * 4;
            sock.send_to(&f[14 + ihl..], &dest)
                .map_err(|e| format!("send: {e}"))?;
        }
        {
            let mut s = status.lock().unwrap();
            while let Some(c) = router.poll_event() {
                s.changes.push((c, Instant::now()));
            }
            s.role = Some(router.role());
            s.master_down_ms = router.master_down_interval_ms();
            s.master = router.master();
            let st = router.stats();
            s.adverts_received = st.adverts_received;
            s.lower_ignored = st.lower_ignored;
            s.adverts_sent = st.adverts_sent;
            s.refused = st.refused;
            s.address_mismatch = st.address_mismatch;
            if router.last_advert_at() != last_seen_advert {
                last_seen_advert = router.last_advert_at();
                s.last_advert = Some(Instant::now());
            }
        }
        if stopping {
            return Ok(());
        }
        match sock_r.read(&mut rx) {
            Ok(n) => {
                let _ = router.handle_ipv4(now(), &rx[..n]);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

/// Waits up to `limit` for `cond`; returns how long it took.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(2));
    }
    None
}

#[test]
fn elections_with_keepalived_follow_the_rfc_both_ways() {
    if !nix::unistd::geteuid().is_root() {
        println!(
            "SKIPPED vrrp_keepalived: needs root (network namespaces, raw sockets); run as root to test interop with keepalived"
        );
        return;
    }
    assert!(
        Command::new("keepalived").arg("--version").output().is_ok(),
        "keepalived is not installed: apt-get install -y keepalived (scripts/test.sh does)"
    );
    let mut lab = Lab::new().expect("namespaces and veth");
    let limit = Duration::from_secs(10);

    // keepalived alone becomes master.
    lab.start_keepalived(100).unwrap();
    let took = wait_for(limit, || lab.keepalived_state() == "MASTER");
    assert!(
        took.is_some(),
        "keepalived alone never became master:\n{}",
        lab.keepalived_output()
    );

    // 1. Fulcrum, priority 200, preempts; keepalived steps down to backup.
    let fulcrum = Runner::start(&lab.ns_fu, 200);
    let took = wait_for(limit, || {
        fulcrum.role() == Some(Role::Master) && lab.keepalived_state() == "BACKUP"
    });
    assert!(
        took.is_some(),
        "fulcrum {:?}, keepalived {}:\n{}",
        fulcrum.role(),
        lab.keepalived_state(),
        lab.keepalived_output()
    );
    println!("1. fulcrum (200) master, keepalived (100) backup after {took:?}");
    // Stable: no flapping for a second.
    thread::sleep(Duration::from_secs(1));
    assert_eq!(fulcrum.role(), Some(Role::Master));
    assert_eq!(lab.keepalived_state(), "BACKUP");
    {
        let s = fulcrum.status.lock().unwrap();
        // keepalived's adverts passed every check (TTL, version, checksum) and lost on
        // priority.
        assert!(s.lower_ignored >= 1, "keepalived's adverts were understood");
        assert_eq!((s.refused, s.address_mismatch), (0, 0));
        let masters = s.changes.iter().filter(|c| c.0.to == Role::Master).count();
        assert_eq!(masters, 1, "no flap: {:?}", s.changes);
    }

    // 2. Fulcrum leaves (priority 0): keepalived takes over at once.
    let left = Instant::now();
    let status = fulcrum.stop();
    let took = wait_for(limit, || lab.keepalived_state() == "MASTER");
    assert!(
        took.is_some(),
        "keepalived did not take over after the release"
    );
    println!(
        "2. fulcrum released; keepalived master {:?} later (its skew time is 61 ms)",
        left.elapsed()
    );
    assert!(status.lock().unwrap().adverts_sent > 10);
    // Fulcrum back with priority 50: stays backup under keepalived.
    let fulcrum = Runner::start(&lab.ns_fu, 50);
    let heard = wait_for(limit, || {
        fulcrum.status.lock().unwrap().adverts_received >= 10
    });
    assert!(heard.is_some());
    thread::sleep(Duration::from_secs(1));
    assert_eq!(fulcrum.role(), Some(Role::Backup));
    assert_eq!(lab.keepalived_state(), "MASTER");
    {
        let s = fulcrum.status.lock().unwrap();
        assert_eq!((s.refused, s.address_mismatch), (0, 0));
        assert_eq!(
            s.changes.iter().filter(|c| c.0.to == Role::Master).count(),
            0
        );
        assert_eq!(
            s.master,
            Some(KA_ADDR),
            "keepalived's address is the master"
        );
    }
    println!("2. fulcrum (50) backup under keepalived (100)");

    // 3. keepalived dies without a release: Fulcrum takes over after Master_Down_Interval
    // (3 × 100 ms + (256 − 50) × 100 / 256 ms = 380 ms) from the last advert it heard.
    lab.kill_keepalived();
    let killed = Instant::now();
    let took = wait_for(limit, || fulcrum.role() == Some(Role::Master));
    assert!(took.is_some(), "fulcrum did not take over");
    let s = fulcrum.status.lock().unwrap();
    let became = s
        .changes
        .iter()
        .rev()
        .find(|c| c.0.to == Role::Master)
        .unwrap()
        .1;
    let since_last = became.duration_since(s.last_advert.unwrap());
    let since_kill = became.duration_since(killed);
    println!(
        "3. keepalived killed; fulcrum master {since_kill:?} after the kill, {since_last:?} after the last advert (Master_Down_Interval {} ms)",
        s.master_down_ms
    );
    assert_eq!(s.master_down_ms, 380);
    // Wall clock: the runner polls every ≤ 1 ms; allow scheduling slack on a loaded
    // machine (the printed numbers are the measurement).
    assert!(since_last >= Duration::from_millis(375), "{since_last:?}");
    assert!(
        since_last <= Duration::from_millis(380 + 100),
        "{since_last:?}"
    );
    assert!(
        since_kill <= Duration::from_millis(380 + 100),
        "{since_kill:?}"
    );
}
