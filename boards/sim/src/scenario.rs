//! The whole simulated appliance with traffic: clients behind a router send real TCP
//! (HTTP) and UDP requests to the VIPs of a config, virtual backends answer (each serving
//! its services' ports and health checks; DSR and tunnel backends hold the VIP), the
//! simulated board balances; failure drills change backends or the config on a schedule.
//! Drives `fulcrum sim` and the end-to-end tests.
//!
//! ```text
//! clients 192.0.2.10.. ── router ── appliance network: FPGA port 1, backends, operator
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use embassy_net::tcp::TcpSocket;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use fulcrum_mgmt::envelope::Key;
use fulcrum_mgmt::message::EventKind;
use fulcrum_model::config::{AdminState, CheckKind, Config, Mode, Protocol};
use serde::Serialize;

use crate::fpga::{Engine, Geometry};
use crate::network::NetworkPort;
use crate::router::{Router, Side};
use crate::vnet::{
    Extras, Health, HostHandle, HostSpec, Server, Switch, http_get, spawn_host_with,
};
use crate::{Board, BoardOptions, MANAGEMENT_PORT, McuLink, start, start_full};

/// A scheduled change.
#[derive(Debug, Clone)]
pub struct Drill {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub action: DrillAction,
}

/// Failure drills and changes.
#[derive(Debug, Clone)]
pub enum DrillAction {
    /// The backend host dies (its checks time out).
    Fail(String),
    /// The backend's server stops (connections refused).
    Stop(String),
    /// The backend answers after this many ms.
    Slow(String, u32),
    /// The backend is healthy again.
    Revive(String),
    /// Sets a backend's weight (`service`, `backend`, weight) in the running config.
    Weight(String, String, u16),
    /// Sets a backend's administrative state.
    Admin(String, String, AdminState),
    /// Applies a new config.
    Apply(Box<Config>),
    /// Stops the MCU (crash or unplug): the FPGA keeps forwarding (fail-static).
    HaltMcu,
    /// HA: the VRRP master dies (its port goes dark, its MCU halts); the summary gives the
    /// other appliance's takeover time.
    KillMaster,
}

impl std::fmt::Display for DrillAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrillAction::Fail(b) => write!(f, "fail {b}"),
            DrillAction::Stop(b) => write!(f, "stop {b}"),
            DrillAction::Slow(b, ms) => write!(f, "slow {b} {ms}ms"),
            DrillAction::Revive(b) => write!(f, "revive {b}"),
            DrillAction::Weight(s, b, w) => write!(f, "weight {s}/{b}={w}"),
            DrillAction::Admin(s, b, a) => write!(f, "{} {s}/{b}", format!("{a:?}").to_lowercase()),
            DrillAction::Apply(c) => write!(f, "apply config ({} services)", c.services.len()),
            DrillAction::HaltMcu => write!(f, "halt the MCU"),
            DrillAction::KillMaster => write!(f, "kill the HA master"),
        }
    }
}

/// How to run.
pub struct Scenario {
    /// The appliance's config.
    pub config: Config,
    /// Seed of the clients' choices.
    pub seed: u64,
    /// Client hosts.
    pub clients: usize,
    /// Requests per second per client.
    pub rate: f64,
    /// Length of the run.
    pub duration: Duration,
    /// Scheduled changes.
    pub drills: Vec<Drill>,
    /// Management key (with `listen`, a management gateway is opened).
    pub key: Option<Key>,
    /// Host address of the management gateway.
    pub listen: Option<String>,
    /// Open the serial console.
    pub serial: bool,
    /// The board's state directory.
    pub state_dir: PathBuf,
    /// Clients that also keep one long-lived keep-alive connection to the first TCP
    /// service, with a request on it every 200 ms.
    pub long_lived: usize,
    /// What runs the FPGA's data path: the reference model or the fast path's rust-hdl
    /// simulation.
    pub engine: Engine,
    /// Requests each client sends before it stops (none: until the end); the run ends
    /// once every client is done, or at `duration`. The same seed and count give the
    /// same requests, however fast the data path is.
    pub requests: Option<u64>,
}

/// What happened to the long-lived connections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LongLived {
    /// Connections opened.
    pub connections: u64,
    /// Requests made on them.
    pub requests: u64,
    /// Requests that failed (the connection broke).
    pub failures: u64,
    /// Answers from another backend than the connection's first answer.
    pub moved: u64,
    /// The backends of the connections that broke.
    pub broken_on: Vec<String>,
}

/// Per-service results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceSummary {
    /// Service name.
    pub name: String,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered.
    pub succeeded: u64,
    /// Requests that failed (refused, reset, timed out).
    pub failed: u64,
    /// Answers per backend (by the name in the answer).
    pub per_backend: BTreeMap<String, u64>,
    /// Seconds from the start at which requests failed (the first 1000).
    pub failure_times: Vec<f64>,
    /// Answers per client host and backend.
    pub per_client: BTreeMap<String, BTreeMap<String, u64>>,
    /// Answers per backend after each drill (index = drills done before the answer).
    pub per_backend_by_phase: Vec<BTreeMap<String, u64>>,
}

/// A health transition.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionRecord {
    /// Seconds from the start.
    pub at_s: f64,
    /// Service.
    pub service: String,
    /// Backend.
    pub backend: String,
    /// Up or down.
    pub up: bool,
    /// Why it went down.
    pub reason: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Seed.
    pub seed: u64,
    /// Seconds.
    pub duration_s: f64,
    /// Client hosts.
    pub clients: usize,
    /// Per service.
    pub services: Vec<ServiceSummary>,
    /// Health transitions.
    pub transitions: Vec<TransitionRecord>,
    /// Drills carried out, with their times.
    pub drills: Vec<(f64, String)>,
    /// The long-lived connections.
    pub long_lived: LongLived,
    /// With `[appliance.ha]`: the two appliances' HA story.
    pub ha: Option<HaSummary>,
    /// The FPGA's data path: `model` or `hdl`.
    pub engine: &'static str,
    /// With `--engine hdl`: what the fast-path simulation did.
    pub hdl: Option<HdlSummary>,
}

/// What the fast-path simulation did in a run (`--engine hdl`).
#[derive(Debug, Clone, Serialize)]
pub struct HdlSummary {
    /// Clock cycles simulated (the fast path is clocked only while it has work).
    pub cycles: u64,
    /// Frames into the fast path (both ports).
    pub frames_in: u64,
    /// Frames out of the fast path (both ports).
    pub frames_out: u64,
    /// Frames dropped because the simulation fell behind.
    pub backlog_drops: u64,
}

/// Two appliances (the config's `[appliance.ha]` with its first peer as the second
/// appliance): what happened to their roles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HaSummary {
    /// The appliances' addresses (the config's first, its peer second).
    pub appliances: Vec<Ipv4Addr>,
    /// Role changes to master, per appliance: seconds from the start.
    pub became_master_s: Vec<Vec<f64>>,
    /// Per kill-master drill: ms from the kill until the other appliance was master.
    pub takeover_ms: Vec<Option<u64>>,
    /// The master at the end.
    pub master_at_end: Option<Ipv4Addr>,
}

/// A moment of the run, for a live view.
pub struct Snapshot<'a> {
    /// Seconds from the start.
    pub t: f64,
    /// Results so far.
    pub services: &'a [ServiceSummary],
    /// The board.
    pub board: &'a Board,
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn free_address(config: &Config, base: Ipv4Addr, avoid: &[Ipv4Addr]) -> Ipv4Addr {
    let taken = |a: Ipv4Addr| {
        a == config.appliance.address
            || avoid.contains(&a)
            || config.appliance.snat_pool.contains(&a)
            || config.services.iter().any(|s| s.vip == a)
            || config.all_backends().any(|(_, b)| b.address == a)
    };
    let o = base.octets();
    (1..=254u8)
        .map(|l| Ipv4Addr::new(o[0], o[1], o[2], l))
        .find(|a| !taken(*a))
        .unwrap_or(base)
}

/// Builds the topology, boots the board, runs clients and drills for the duration;
/// `on_tick` sees a snapshot every second.
pub async fn run(
    scenario: Scenario,
    mut on_tick: impl FnMut(&Snapshot<'_>),
) -> anyhow::Result<Summary> {
    let mut config = scenario.config.clone();
    // The router between the clients and the appliance's network; it is the appliance's
    // gateway unless the config names one (the MCU answers L7 clients through it).
    let router_net = config
        .appliance
        .gateway
        .unwrap_or_else(|| free_address(&config, config.appliance.address, &[]));
    config.appliance.gateway = Some(router_net);
    let mut net = Switch::new();
    let mut clients_net = Switch::new();
    let (fpga_port, fpga_cable) = net.port();
    // HA: the config's first peer is a second appliance on the same network; the
    // backends of NAT services route through a virtual gateway address the master owns.
    let ha_peer = config
        .appliance
        .ha
        .as_ref()
        .and_then(|h| h.peers.first().copied());
    let mut ha_gateway = None;
    if let (Some(peer), Some(mut ha)) = (ha_peer, config.appliance.ha.clone()) {
        let mut addresses = ha.virtual_addresses(&config);
        let gw = free_address(&config, config.appliance.address, &[router_net, peer]);
        if addresses.push(gw).is_err() {
            anyhow::bail!("[appliance.ha] has no room for a gateway address (16 at most)");
        }
        ha.addresses = addresses;
        config.appliance.ha = Some(ha);
        ha_gateway = Some(gw);
    }
    let a = &config.appliance;

    let router_mac = [0x02, 0xee, 0, 0, 0, 1];
    let (router_a, _) = net.port();
    let (router_b, _) = clients_net.port();
    let client_side = Side {
        address: Ipv4Addr::new(192, 0, 2, 1),
        prefix: 24,
    };
    let net_side = Side {
        address: router_net,
        prefix: a.prefix,
    };
    tokio::task::spawn_local(
        Router::new(router_mac, (router_a, net_side), (router_b, client_side), 0).run(),
    );

    // One virtual host per backend address, serving every port its services need.
    let mut hosts: BTreeMap<String, HostHandle> = BTreeMap::new();
    let mut by_address: BTreeMap<Ipv4Addr, (HostSpec, Extras, Vec<String>)> = BTreeMap::new();
    for svc in &config.services {
        let direct = matches!(svc.mode, Mode::Dsr | Mode::Ipip | Mode::Gue);
        for be in config.backends(svc) {
            let o = be.address.octets();
            let entry = by_address.entry(be.address).or_insert_with(|| {
                (
                    HostSpec {
                        name: be.name.to_string(),
                        mac: be
                            .mac
                            .map(|m| m.0)
                            .unwrap_or([0x02, 0x5e, o[0], o[1], o[2], o[3]]),
                        address: be.address,
                        prefix: a.prefix,
                        gateway: Some(if direct {
                            router_net
                        } else {
                            ha_gateway.unwrap_or(a.address)
                        }),
                        server: Server::None,
                    },
                    Extras::default(),
                    Vec::new(),
                )
            });
            entry.2.push(be.name.to_string());
            let port = svc.backend_port(be);
            let check_port = svc.health.port.unwrap_or(port);
            let server = match svc.health.kind {
                CheckKind::Redis => Server::Redis(check_port),
                CheckKind::Memcached => Server::Memcached(check_port),
                _ if svc.protocol == Protocol::Tcp => Server::Http(port),
                _ => Server::Http(check_port),
            };
            if entry.0.server == Server::None {
                entry.0.server = server;
            }
            if svc.protocol == Protocol::Udp {
                entry.1.udp_echo.push(port);
            }
            if direct {
                entry.1.vips.push(svc.vip);
                if svc.mode == Mode::Gue {
                    entry.1.gue_ports.push(svc.gue_port);
                }
            }
        }
    }
    for (i, (_, (spec, extras, names))) in by_address.into_iter().enumerate() {
        let handle = spawn_host_with(&mut net, spec, extras, 1000 + i as u64);
        for n in names {
            hosts.insert(n, handle.clone());
        }
    }
    let mut avoid = vec![router_net];
    avoid.extend(ha_peer);
    avoid.extend(ha_gateway);
    let operator_addr = free_address(&config, a.address, &avoid);
    let peer_port = ha_peer.map(|_| net.port());
    let operator = crate::vnet::spawn_host(
        &mut net,
        HostSpec {
            name: "operator".into(),
            mac: [0x02, 0xfe, 0, 0, 0, 1],
            address: operator_addr,
            prefix: a.prefix,
            gateway: None,
            server: Server::None,
        },
        0xfe,
    );
    let client_hosts: Vec<HostHandle> = (0..scenario.clients)
        .map(|i| {
            crate::vnet::spawn_host(
                &mut clients_net,
                HostSpec {
                    name: format!("client-{i}"),
                    mac: [0x02, 0xc0, 0, 0, (i >> 8) as u8, i as u8],
                    address: Ipv4Addr::new(192, 0, 2, 10 + (i % 240) as u8),
                    prefix: 24,
                    gateway: Some(client_side.address),
                    server: Server::None,
                },
                5000 + i as u64,
            )
        })
        .collect();
    tokio::task::spawn_local(net.run());
    tokio::task::spawn_local(clients_net.run());

    // Flow sync is authenticated with the management key: HA without one gets a random
    // key for this run.
    let key = match (&scenario.key, ha_peer) {
        (None, Some(_)) => {
            let bytes: [u8; 32] = std::array::from_fn(|_| crate::random_u64() as u8);
            Key::new(&bytes)
        }
        (k, _) => k.clone(),
    };
    let (board, _) = start_full(
        BoardOptions {
            state_dir: scenario.state_dir.clone(),
            config: Some(config.clone()),
            force_config: true,
            key: key.clone(),
            serial: scenario.serial,
            geometry: Geometry::of(&config),
        },
        NetworkPort::Virtual(fpga_port),
        McuLink::Direct,
        scenario.engine,
    )?;
    let peer_board = match (ha_peer, peer_port) {
        (Some(peer), Some((port, cable))) => {
            let mut c = config.clone();
            c.appliance.address = peer;
            c.appliance.mac.0[5] ^= 0x80;
            let mut name = c.appliance.name.to_string();
            name.push_str("-b");
            c.appliance.name = fulcrum_model::config::Name::try_from(name.as_str())
                .unwrap_or_else(|_| c.appliance.name.clone());
            if let Some(ha) = c.appliance.ha.as_mut() {
                ha.priority = (ha.priority / 2).max(1);
                ha.peers.clear();
                let _ = ha.peers.push(a.address);
            }
            let b = start(
                BoardOptions {
                    state_dir: scenario.state_dir.join("peer"),
                    config: Some(c.clone()),
                    force_config: true,
                    key: key.clone(),
                    serial: false,
                    geometry: Geometry::of(&c),
                },
                NetworkPort::Virtual(port),
            )?;
            Some((b, cable))
        }
        _ => None,
    };
    if let (Some(listen), Some(_)) = (&scenario.listen, &scenario.key) {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tokio::task::spawn_local(crate::gateway::serve(
            listener,
            operator.stack,
            board.address,
            MANAGEMENT_PORT,
        ));
    }

    let start_at = std::time::Instant::now();
    let results: Rc<RefCell<Vec<ServiceSummary>>> = Rc::new(RefCell::new(
        config
            .services
            .iter()
            .map(|s| ServiceSummary {
                name: s.name.to_string(),
                ..ServiceSummary::default()
            })
            .collect(),
    ));
    let end = start_at + scenario.duration;
    // Clients start once the health checks have had a moment (first checks are spread
    // over at most fastinter).
    let warmup = config
        .services
        .iter()
        .map(|s| s.health.fastinter.0)
        .max()
        .unwrap_or(0)
        .min(1000);
    tokio::time::sleep(Duration::from_millis(u64::from(warmup) + 100)).await;
    // Then until every backend's first check has ended (passed or failed): a check that
    // fails takes its backend out at once, and one that is slow (the fast path's
    // cycle-by-cycle simulation, `Engine::Hdl`, on a loaded machine) would otherwise fail
    // the first requests with 503s. Each check ends by its timeout, so this is bounded.
    let first_checks = config
        .services
        .iter()
        .map(|s| u64::from(s.health.fastinter.0) + u64::from(s.health.timeout.0))
        .max()
        .unwrap_or(0)
        + 500;
    let waiting_since = std::time::Instant::now();
    while board.app.borrow().checker().unconfirmed() > 0
        && waiting_since.elapsed() < Duration::from_millis(first_checks)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let services: Vec<(Ipv4Addr, u16, Protocol)> = config
        .services
        .iter()
        .map(|s| (s.vip, s.port, s.protocol))
        .collect();
    let long_lived_hosts: Vec<HostHandle> = client_hosts
        .iter()
        .take(scenario.long_lived)
        .cloned()
        .collect();
    // Drills done so far: answers are also counted per phase.
    let phase: Rc<std::cell::Cell<usize>> = Rc::default();
    // Clients that have sent their `requests`.
    let done: Rc<std::cell::Cell<usize>> = Rc::default();
    let clients = client_hosts.len();
    let quota = scenario.requests.unwrap_or(u64::MAX);
    let slow = scenario.engine == Engine::Hdl;
    for (i, client) in client_hosts.into_iter().enumerate() {
        let done = done.clone();
        let results = results.clone();
        let phase = phase.clone();
        let services = services.clone();
        let names: Vec<String> = config.services.iter().map(|s| s.name.to_string()).collect();
        let period = Duration::from_secs_f64(1.0 / scenario.rate.max(0.01));
        let mut rng =
            Rng(scenario.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1)) | 1);
        tokio::task::spawn_local(async move {
            if services.is_empty() {
                return;
            }
            // Clients start spread over one period, not in lockstep.
            let offset = period.mul_f64((rng.next() % 1000) as f64 / 1000.0);
            tokio::time::sleep(offset).await;
            let mut next = std::time::Instant::now();
            let mut sent = 0u64;
            while std::time::Instant::now() < end && sent < quota {
                sent += 1;
                let k = (rng.next() % services.len() as u64) as usize;
                let (vip, port, protocol) = services[k];
                let outcome = match protocol {
                    Protocol::Tcp => tcp_request(&client, vip, port, slow).await,
                    Protocol::Udp => udp_request(&client, vip, port, rng.next(), slow).await,
                };
                let t = start_at.elapsed().as_secs_f64();
                {
                    let mut r = results.borrow_mut();
                    let s = &mut r[k];
                    debug_assert_eq!(s.name, names[k]);
                    s.sent += 1;
                    match outcome {
                        Ok(backend) => {
                            if std::env::var_os("FULCRUM_SIM_DEBUG").is_some() {
                                eprintln!("{t:.3}s client-{i} {}: {backend}", s.name);
                            }
                            s.succeeded += 1;
                            let phase = phase.get();
                            if s.per_backend_by_phase.len() <= phase {
                                s.per_backend_by_phase.resize(phase + 1, BTreeMap::new());
                            }
                            *s.per_backend_by_phase[phase]
                                .entry(backend.clone())
                                .or_default() += 1;
                            *s.per_client
                                .entry(format!("client-{i}"))
                                .or_default()
                                .entry(backend.clone())
                                .or_default() += 1;
                            *s.per_backend.entry(backend).or_default() += 1;
                        }
                        Err(e) => {
                            if std::env::var_os("FULCRUM_SIM_DEBUG").is_some() {
                                eprintln!("{t:.3}s client-{i} {}: {e}", s.name);
                            }
                            s.failed += 1;
                            if s.failure_times.len() < 1000 {
                                s.failure_times.push(t);
                            }
                        }
                    }
                }
                next += period;
                let now = std::time::Instant::now();
                if next > now {
                    tokio::time::sleep(next - now).await;
                } else {
                    next = now;
                }
            }
            done.set(done.get() + 1);
        });
    }

    // Long-lived connections.
    let long_lived: Rc<RefCell<LongLived>> = Rc::default();
    let first_tcp = services.iter().find(|s| s.2 == Protocol::Tcp).copied();
    if let Some((vip, port, _)) = first_tcp {
        for i in 0..scenario.long_lived.min(scenario.clients) {
            let stats = long_lived.clone();
            let host = long_lived_hosts.get(i).cloned();
            tokio::task::spawn_local(async move {
                let Some(host) = host else { return };
                let (rx, tx) = (vec![0u8; 4096].leak(), vec![0u8; 4096].leak());
                let mut socket = TcpSocket::new(host.stack, rx, tx);
                socket.set_timeout(Some(embassy_time::Duration::from_secs(10)));
                if socket.connect((vip, port)).await.is_err() {
                    stats.borrow_mut().failures += 1;
                    return;
                }
                stats.borrow_mut().connections += 1;
                let mut first: Option<String> = None;
                while std::time::Instant::now() < end {
                    let answer = http_get(&mut socket, "sim", "/").await;
                    let broke = {
                        let mut st = stats.borrow_mut();
                        st.requests += 1;
                        match answer {
                            Ok(body) => {
                                let b = backend_of(&body);
                                match &first {
                                    None => first = Some(b),
                                    Some(f) if *f != b => st.moved += 1,
                                    _ => {}
                                }
                                false
                            }
                            Err(_) => {
                                st.failures += 1;
                                st.broken_on.push(first.clone().unwrap_or_default());
                                true
                            }
                        }
                    };
                    if broke {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    }

    // HA: both appliances' state, handles and cables, for the kill-master drill.
    let ha_nodes: Rc<Vec<HaNode>> = Rc::new(match (&board.ha, &peer_board) {
        (Some(h0), Some((b, cable))) => match b.ha {
            Some(h1) => vec![
                (board.address, h0, board.mcu_handle(), fpga_cable.clone()),
                (b.address, h1, b.mcu_handle(), cable.clone()),
            ],
            None => Vec::new(),
        },
        _ => Vec::new(),
    });
    let takeovers: Rc<RefCell<Vec<Option<u64>>>> = Rc::default();

    // Drills.
    let drill_log: Rc<RefCell<Vec<(f64, String)>>> = Rc::default();
    {
        let mut drills = scenario.drills.clone();
        drills.sort_by_key(|d| d.at);
        let hosts = hosts.clone();
        let app = board.app.clone();
        let mcu = board.mcu_handle();
        let log = drill_log.clone();
        let takeovers = takeovers.clone();
        let ha_nodes = ha_nodes.clone();
        let phase = phase.clone();
        tokio::task::spawn_local(async move {
            for d in drills {
                let now = start_at.elapsed();
                if d.at > now {
                    tokio::time::sleep(d.at - now).await;
                }
                let outcome = match d.action {
                    DrillAction::HaltMcu => {
                        mcu.halt_mcu();
                        Ok(())
                    }
                    DrillAction::KillMaster => kill_master(&ha_nodes, &takeovers),
                    _ => apply_drill(&d.action, &hosts, &app),
                };
                let text = match outcome {
                    Ok(()) => d.action.to_string(),
                    Err(e) => format!("{}: FAILED: {e}", d.action),
                };
                log.borrow_mut()
                    .push((start_at.elapsed().as_secs_f64(), text));
                phase.set(phase.get() + 1);
            }
        });
    }

    loop {
        let remaining = end.saturating_duration_since(std::time::Instant::now());
        if remaining.is_zero() || (scenario.requests.is_some() && done.get() == clients) {
            break;
        }
        tokio::time::sleep(remaining.min(Duration::from_secs(1))).await;
        let r = results.borrow();
        on_tick(&Snapshot {
            t: start_at.elapsed().as_secs_f64(),
            services: &r,
            board: &board,
        });
    }
    let ran = start_at.elapsed().min(scenario.duration);
    // Let requests in flight finish.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let boot = board.app.borrow().events().page(0);
    let started_ms =
        fulcrum_firmware::net::now_ms().saturating_sub(start_at.elapsed().as_millis() as u64);
    let mut transitions = Vec::new();
    let mut after = 0;
    loop {
        let page = board.app.borrow().events().page(after);
        if page.events.is_empty() {
            break;
        }
        for e in &page.events {
            after = e.seq;
            let at_s = e.at_ms.saturating_sub(started_ms) as f64 / 1000.0;
            match &e.kind {
                EventKind::BackendUp {
                    service, backend, ..
                } => transitions.push(TransitionRecord {
                    at_s,
                    service: service.to_string(),
                    backend: backend.to_string(),
                    up: true,
                    reason: None,
                }),
                EventKind::BackendDown {
                    service,
                    backend,
                    failure,
                } => transitions.push(TransitionRecord {
                    at_s,
                    service: service.to_string(),
                    backend: backend.to_string(),
                    up: false,
                    reason: Some(failure.describe().to_string()),
                }),
                _ => {}
            }
        }
    }
    let _ = boot;
    let services = results.borrow().clone();
    let drills = drill_log.borrow().clone();
    let long_lived = long_lived.borrow().clone();
    if std::env::var_os("FULCRUM_SIM_DEBUG").is_some()
        && let Some((peer, _)) = &peer_board
    {
        for b in [&board, peer] {
            for e in b.app.borrow().events().page(0).events.iter() {
                eprintln!(
                    "{} {:.3}s {:?}",
                    b.address,
                    e.at_ms.saturating_sub(started_ms) as f64 / 1000.0,
                    e.kind
                );
            }
        }
    }
    let ha = (!ha_nodes.is_empty()).then(|| HaSummary {
        appliances: ha_nodes.iter().map(|n| n.0).collect(),
        became_master_s: [&board, &peer_board.as_ref().expect("HA peer").0]
            .iter()
            .map(|b| {
                b.app
                    .borrow()
                    .events()
                    .page(0)
                    .events
                    .iter()
                    .filter(|e| {
                        matches!(
                            e.kind,
                            EventKind::HaRoleChanged {
                                to: fulcrum_mgmt::ha::HaRole::Master,
                                ..
                            }
                        )
                    })
                    .map(|e| e.at_ms.saturating_sub(started_ms) as f64 / 1000.0)
                    .collect()
            })
            .collect(),
        takeover_ms: takeovers.borrow().clone(),
        master_at_end: ha_nodes
            .iter()
            .find(|n| n.3.get() && n.1.borrow().is_master())
            .map(|n| n.0),
    });
    Ok(Summary {
        seed: scenario.seed,
        duration_s: ran.as_secs_f64(),
        clients: scenario.clients,
        services,
        transitions,
        drills,
        long_lived,
        ha,
        engine: match scenario.engine {
            Engine::Model => "model",
            Engine::Hdl => "hdl",
        },
        hdl: board.fpga.borrow().hdl_stats().map(|s| HdlSummary {
            cycles: s.cycles.load(Ordering::Relaxed),
            frames_in: s.frames_in.load(Ordering::Relaxed),
            frames_out: s.frames_out.load(Ordering::Relaxed),
            backlog_drops: s.backlog_drops.load(Ordering::Relaxed),
        }),
    })
}

/// (address, HA state, MCU, port cable) of one appliance of an HA pair.
type HaNode = (
    Ipv4Addr,
    &'static RefCell<crate::SimHa>,
    crate::McuHandle,
    Rc<std::cell::Cell<bool>>,
);

/// Kills the live VRRP master (port dark, MCU halted) and measures, in the background,
/// how long until another appliance is master.
fn kill_master(
    nodes: &Rc<Vec<HaNode>>,
    takeovers: &Rc<RefCell<Vec<Option<u64>>>>,
) -> Result<(), String> {
    let Some(i) = nodes
        .iter()
        .position(|n| n.3.get() && n.1.borrow().is_master())
    else {
        return Err("no live HA master (run with [appliance.ha] and a peer)".into());
    };
    nodes[i].3.set(false);
    nodes[i].2.halt_mcu();
    let killed = std::time::Instant::now();
    let index = {
        let mut t = takeovers.borrow_mut();
        t.push(None);
        t.len() - 1
    };
    let (nodes, takeovers) = (nodes.clone(), takeovers.clone());
    tokio::task::spawn_local(async move {
        while killed.elapsed() < Duration::from_secs(5) {
            if nodes
                .iter()
                .enumerate()
                .any(|(j, n)| j != i && n.3.get() && n.1.borrow().is_master())
            {
                takeovers.borrow_mut()[index] = Some(killed.elapsed().as_millis() as u64);
                return;
            }
            embassy_time::Timer::after_millis(1).await;
        }
    });
    Ok(())
}

fn apply_drill(
    action: &DrillAction,
    hosts: &BTreeMap<String, HostHandle>,
    app: &Rc<RefCell<crate::SimAppliance>>,
) -> Result<(), String> {
    let host = |name: &str| {
        hosts
            .get(name)
            .ok_or_else(|| format!("no backend named {name}"))
    };
    let now = fulcrum_firmware::net::now_ms();
    match action {
        DrillAction::Fail(b) => host(b)?.set(Health::Dead),
        DrillAction::Stop(b) => host(b)?.set(Health::Stopped),
        DrillAction::Slow(b, ms) => host(b)?.set(Health::Slow(*ms)),
        DrillAction::Revive(b) => host(b)?.set(Health::Up),
        DrillAction::Weight(s, b, w) => {
            let mut config = app.borrow().config().cloned().ok_or("no running config")?;
            let index = config.services.iter().position(|x| x.name.as_str() == s);
            let be = index
                .and_then(|i| {
                    config
                        .backends_mut(i)
                        .iter_mut()
                        .find(|y| y.name.as_str() == b)
                })
                .ok_or_else(|| format!("no backend {s}/{b}"))?;
            be.weight = *w;
            app.borrow_mut()
                .apply(now, &config, false)
                .map_err(|e| e.message.to_string())?;
        }
        DrillAction::Admin(s, b, state) => {
            app.borrow_mut()
                .set_admin(now, s, b, *state)
                .map_err(|e| e.message.to_string())?;
        }
        DrillAction::HaltMcu | DrillAction::KillMaster => {
            return Err("handled by the runner".into());
        }
        DrillAction::Apply(config) => {
            app.borrow_mut().apply(now, config, false).map_err(|e| {
                format!(
                    "{}{}",
                    e.message,
                    e.details
                        .iter()
                        .map(|d| format!("; {d}"))
                        .collect::<String>()
                )
            })?;
        }
    }
    Ok(())
}

/// Backend name in an answer: `ok from NAME` (HTTP) or `NAME: ...` (UDP echo).
fn backend_of(answer: &str) -> String {
    if let Some(rest) = answer.strip_prefix("ok from ") {
        return rest.trim().to_string();
    }
    answer.split(':').next().unwrap_or("").to_string()
}

/// A client's patience: 3 s for a TCP request, 2 s for a UDP answer; ten times that with
/// `slow` (the fast path's cycle-by-cycle simulation, `Engine::Hdl`, carries a few
/// hundred frames per second).
fn patience(tcp: bool, slow: bool) -> embassy_time::Duration {
    let ms = if tcp { 3000 } else { 2000 };
    embassy_time::Duration::from_millis(if slow { 10 * ms } else { ms })
}

async fn tcp_request(
    client: &HostHandle,
    vip: Ipv4Addr,
    port: u16,
    slow: bool,
) -> Result<String, String> {
    let (mut rx, mut tx) = ([0u8; 2048], [0u8; 1024]);
    let mut socket = TcpSocket::new(client.stack, &mut rx, &mut tx);
    socket.set_timeout(Some(patience(true, slow)));
    let result = match embassy_time::with_timeout(patience(true, slow), async {
        socket
            .connect((vip, port))
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        http_get(&mut socket, "sim", "/").await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err("timeout".into()),
    };
    socket.close();
    let _ =
        embassy_time::with_timeout(embassy_time::Duration::from_millis(500), socket.flush()).await;
    socket.abort();
    result.map(|b| backend_of(&b))
}

async fn udp_request(
    client: &HostHandle,
    vip: Ipv4Addr,
    port: u16,
    nonce: u64,
    slow: bool,
) -> Result<String, String> {
    let mut rx_meta = [PacketMetadata::EMPTY; 4];
    let mut tx_meta = [PacketMetadata::EMPTY; 4];
    let (mut rx, mut tx) = ([0u8; 1024], [0u8; 1024]);
    let mut socket = UdpSocket::new(client.stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
    let local = 20_000 + (nonce % 40_000) as u16;
    socket.bind(local).map_err(|e| format!("bind: {e:?}"))?;
    let payload = format!("q{nonce}");
    socket
        .send_to(payload.as_bytes(), (vip, port))
        .await
        .map_err(|e| format!("send: {e:?}"))?;
    let mut buf = [0u8; 1500];
    match embassy_time::with_timeout(patience(false, slow), socket.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if from.endpoint.addr != embassy_net::IpAddress::Ipv4(vip) {
                return Err(format!(
                    "answer from {} instead of the VIP",
                    from.endpoint.addr
                ));
            }
            if !text.ends_with(&payload) {
                return Err("answer to another question".into());
            }
            Ok(backend_of(&text))
        }
        Ok(Err(e)) => Err(format!("recv: {e:?}")),
        Err(_) => Err("timeout".into()),
    }
}
