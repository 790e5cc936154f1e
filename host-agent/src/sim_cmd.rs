//! `fulcrum sim`: the whole appliance on this machine, with clients and backends.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fulcrum_mgmt::envelope::Key;
use fulcrum_model::config::AdminState;
use fulcrum_sim::fpga::Engine;
use fulcrum_sim::scenario::{Drill, DrillAction, Scenario, Snapshot, run};

use fulcrum_host::engine::{self, EngineKind};

/// Arguments of `fulcrum sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The appliance's configuration.
    #[arg(long)]
    config: PathBuf,
    /// Run for this many seconds, then print a summary (default: until Ctrl-C... or 30 s
    /// without a terminal).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Seed of the clients' choices (same seed, same requests).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Client hosts (192.0.2.10 and up, behind a router).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests per second per client.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Print the final summary as JSON (no live view).
    #[arg(long)]
    json: bool,
    /// Kill a backend host at a time: NAME@SECONDS (checks time out). Repeatable.
    #[arg(long, value_name = "BACKEND@T")]
    fail: Vec<String>,
    /// Stop a backend's server: NAME@SECONDS (connections refused).
    #[arg(long, value_name = "BACKEND@T")]
    stop: Vec<String>,
    /// Slow a backend down: NAME@SECONDS:MS.
    #[arg(long, value_name = "BACKEND@T:MS")]
    slow: Vec<String>,
    /// Bring a backend back: NAME@SECONDS.
    #[arg(long, value_name = "BACKEND@T")]
    revive: Vec<String>,
    /// Change a weight: SERVICE/BACKEND=WEIGHT@SECONDS.
    #[arg(long, value_name = "SVC/BACKEND=W@T")]
    weight: Vec<String>,
    /// Drain a backend: SERVICE/BACKEND@SECONDS.
    #[arg(long, value_name = "SVC/BACKEND@T")]
    drain: Vec<String>,
    /// Apply another config file mid-run: FILE@SECONDS.
    #[arg(long, value_name = "FILE@T")]
    apply: Vec<String>,
    /// Stop the MCU at this time (crash or unplug): the data path keeps forwarding with
    /// the tables it holds (fail-static).
    #[arg(long, value_name = "SECONDS")]
    halt_mcu: Option<f64>,
    /// High availability: run two appliances that share the VIPs (VRRP, 10 ms adverts)
    /// and replicate their flow tables. Uses the config's `[appliance.ha]` (its first
    /// peer becomes the second appliance, at half the priority) or adds one (VRID 42,
    /// priority 200, a free address of the appliance's network as the peer).
    #[arg(long)]
    ha: bool,
    /// With --ha: kill the VRRP master at this time (its port goes dark, its MCU halts);
    /// the summary gives the takeover time.
    #[arg(long, value_name = "SECONDS", requires = "ha")]
    kill_master: Vec<f64>,
    /// Serve the management protocol on this host address (needs a key: --key-file or
    /// FULCRUM_KEY), so `fulcrum --host` works against the simulation.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// File holding the management key.
    #[arg(long, value_name = "FILE")]
    sim_key_file: Option<PathBuf>,
    /// Where the simulated board keeps its saved config.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Clients that also hold one long-lived connection (a request every 200 ms); the
    /// summary says whether any broke or moved.
    #[arg(long, default_value_t = 2)]
    long_lived: usize,
    /// Real traffic (root): network namespaces with real servers (Python's http.server,
    /// redis-server, memcached), a Linux router and the appliance on a tap device; a
    /// client namespace sends real requests, and you can too (the command is printed).
    /// Drills do not apply in this mode.
    #[arg(long)]
    tap: bool,
    /// What runs the FPGA's data path: the reference model, or the rust-hdl simulation of
    /// the fast path (cycle by cycle, so far slower: use few clients and a low rate).
    #[arg(long, value_enum, default_value_t = EngineKind::Model)]
    engine: EngineKind,
    /// Each client sends this many requests, then stops; the run ends when all are done
    /// (or at --duration). The same seed and count send the same requests on either
    /// engine, so their per-backend counts compare.
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
}

fn at(text: &str) -> Result<(String, Duration)> {
    let (what, when) = text
        .rsplit_once('@')
        .with_context(|| format!("{text:?}: expected WHAT@SECONDS"))?;
    let secs: f64 = when
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("{text:?}: {when:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        bail!("{text:?}: time out of range");
    }
    Ok((what.to_string(), Duration::from_secs_f64(secs)))
}

fn service_backend(text: &str) -> Result<(String, String)> {
    let (s, b) = text
        .split_once('/')
        .with_context(|| format!("{text:?}: expected SERVICE/BACKEND"))?;
    Ok((s.to_string(), b.to_string()))
}

fn drills(args: &Args) -> Result<Vec<Drill>> {
    let mut out = Vec::new();
    for f in &args.fail {
        let (b, t) = at(f)?;
        out.push(Drill {
            at: t,
            action: DrillAction::Fail(b),
        });
    }
    for f in &args.stop {
        let (b, t) = at(f)?;
        out.push(Drill {
            at: t,
            action: DrillAction::Stop(b),
        });
    }
    for f in &args.revive {
        let (b, t) = at(f)?;
        out.push(Drill {
            at: t,
            action: DrillAction::Revive(b),
        });
    }
    for f in &args.slow {
        let (head, ms) = f
            .rsplit_once(':')
            .with_context(|| format!("{f:?}: expected BACKEND@T:MS"))?;
        let (b, t) = at(head)?;
        let ms: u32 = ms
            .trim_end_matches("ms")
            .parse()
            .with_context(|| format!("{f:?}: bad delay"))?;
        out.push(Drill {
            at: t,
            action: DrillAction::Slow(b, ms),
        });
    }
    for f in &args.weight {
        let (head, t) = at(f)?;
        let (sb, w) = head
            .split_once('=')
            .with_context(|| format!("{f:?}: expected SVC/BACKEND=W@T"))?;
        let (s, b) = service_backend(sb)?;
        let w: u16 = w.parse().with_context(|| format!("{f:?}: bad weight"))?;
        out.push(Drill {
            at: t,
            action: DrillAction::Weight(s, b, w),
        });
    }
    for f in &args.drain {
        let (sb, t) = at(f)?;
        let (s, b) = service_backend(&sb)?;
        out.push(Drill {
            at: t,
            action: DrillAction::Admin(s, b, AdminState::Drain),
        });
    }
    for t in &args.kill_master {
        out.push(Drill {
            at: Duration::from_secs_f64(t.clamp(0.0, 86_400.0)),
            action: DrillAction::KillMaster,
        });
    }
    if let Some(t) = args.halt_mcu {
        out.push(Drill {
            at: Duration::from_secs_f64(t.clamp(0.0, 86_400.0)),
            action: DrillAction::HaltMcu,
        });
    }
    for f in &args.apply {
        let (file, t) = at(f)?;
        let config = match crate::trace::load_config(std::path::Path::new(&file))? {
            Ok(c) => c,
            Err(_) => bail!("{file}: invalid config (see above)"),
        };
        out.push(Drill {
            at: t,
            action: DrillAction::Apply(Box::new(config)),
        });
    }
    Ok(out)
}

fn live(s: &Snapshot<'_>, previous: &mut Vec<(u64, u64)>) {
    let mut out = String::new();
    if std::io::stdout().is_terminal() {
        out.push_str("\x1b[2J\x1b[H");
    }
    out.push_str(&format!("fulcrum sim  t={:.0}s\n", s.t));
    let app = s.board.app.borrow();
    let fpga = s.board.fpga.borrow();
    for (i, svc) in s.services.iter().enumerate() {
        let (sent0, ok0) = previous.get(i).copied().unwrap_or((0, 0));
        out.push_str(&format!(
            "{:<10} sent {:>7} ok {:>7} failed {:>5}  {:>5} req/s\n",
            svc.name,
            svc.sent,
            svc.succeeded,
            svc.failed,
            svc.sent.saturating_sub(sent0)
        ));
        let _ = ok0;
        let total: u64 = svc.per_backend.values().sum();
        if let Some(config) = app.config()
            && let Some(c) = config.services.iter().find(|c| c.name.as_str() == svc.name)
        {
            for be in config.backends(c) {
                let n = svc.per_backend.get(be.name.as_str()).copied().unwrap_or(0);
                let state = app
                    .control_plane()
                    .backend_slot(&c.name, &be.name)
                    .and_then(|slot| fpga.pipeline().backend(slot))
                    .map(|b| format!("{:?}", b.state).to_lowercase())
                    .unwrap_or_default();
                let share = if total > 0 {
                    100.0 * n as f64 / total as f64
                } else {
                    0.0
                };
                out.push_str(&format!(
                    "    {:<12} {:<8} {:>7} answers {:>5.1}%\n",
                    be.name.as_str(),
                    state,
                    n,
                    share
                ));
            }
        }
    }
    *previous = s.services.iter().map(|s| (s.sent, s.succeeded)).collect();
    print!("{out}");
    let _ = std::io::stdout().flush();
}

/// `fulcrum sim --tap`: real namespaces, servers and client sockets.
fn run_tap(args: &Args, mut config: fulcrum_model::config::Config) -> Result<ExitCode> {
    use std::io::{Read, Write as _};
    let lab = fulcrum_sim::tap_lab::TapLab::create(&config)?;
    // The lab's router is the appliance's way to the clients (L7 answers go through it).
    config.appliance.gateway.get_or_insert(lab.router);
    let duration = Duration::from_secs_f64(args.duration.unwrap_or(30.0).clamp(1.0, 86_400.0));
    let state_dir = std::env::temp_dir().join(format!("fulcrum-sim-tap-{}", std::process::id()));
    let targets: Vec<(String, String)> = config
        .services
        .iter()
        .filter(|s| s.protocol == fulcrum_model::config::Protocol::Tcp)
        .map(|s| (s.name.to_string(), format!("{}:{}", s.vip, s.port)))
        .collect();
    println!(
        "namespaces {}-n (router, bridge, tap), {}-h0.. (one per backend address, its \
         servers), {}-c (clients, 192.0.2.2)",
        lab.prefix, lab.prefix, lab.prefix
    );
    for (name, addr) in &targets {
        println!(
            "  try: sudo ip netns exec {}-c curl http://{addr}/    ({name})",
            lab.prefix
        );
    }
    let rate = args.rate.max(0.1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = tokio::task::LocalSet::new().block_on(&rt, async {
        let port =
            fulcrum_sim::network::NetworkPort::tap(&lab.tap).context("opening the tap device")?;
        lab.attach_tap()?;
        let board = fulcrum_sim::start(
            fulcrum_sim::BoardOptions {
                state_dir: state_dir.clone(),
                config: Some(config.clone()),
                force_config: true,
                key: None,
                serial: false,
                geometry: fulcrum_sim::fpga::Geometry::of(&config),
            },
            port,
        )?;
        // Clients start once every backend is up (at most 15 s).
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            let up = {
                let app = board.app.borrow();
                let fpga = board.fpga.borrow();
                app.config().is_some_and(|c| {
                    c.services_with_backends().all(|(s, backends)| {
                        backends.iter().all(|b| {
                            app.control_plane()
                                .backend_slot(&s.name, &b.name)
                                .and_then(|slot| fpga.pipeline().backend(slot))
                                .is_some_and(|e| {
                                    e.state == fulcrum_model::tables::BackendState::Up
                                        && e.mac != [0; 6]
                                })
                        })
                    })
                })
            };
            if up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let targets2 = targets.clone();
        let clients = lab.in_clients(move || {
            let mut out: Vec<(u64, u64, std::collections::BTreeMap<String, u64>)> =
                vec![(0, 0, Default::default()); targets2.len()];
            let end = std::time::Instant::now() + duration;
            let mut k = 0;
            while std::time::Instant::now() < end && !targets2.is_empty() {
                let i = k % targets2.len();
                k += 1;
                let answer = (|| -> std::io::Result<String> {
                    let addr: std::net::SocketAddr =
                        targets2[i].1.parse().map_err(std::io::Error::other)?;
                    let mut s =
                        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"GET / HTTP/1.0\r\nHost: fulcrum-sim\r\n\r\n")?;
                    let mut body = String::new();
                    s.read_to_string(&mut body)?;
                    Ok(body.lines().last().unwrap_or("").trim().to_string())
                })();
                out[i].0 += 1;
                if let Ok(b) = answer {
                    out[i].1 += 1;
                    *out[i]
                        .2
                        .entry(b.trim_start_matches("ok from ").to_string())
                        .or_default() += 1;
                }
                std::thread::sleep(Duration::from_secs_f64(1.0 / rate));
            }
            out
        });
        while !clients.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let events = board.app.borrow().events().page(0);
        anyhow::Ok((
            clients
                .join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??,
            events,
        ))
    })?;
    let _ = std::fs::remove_dir_all(&state_dir);
    let (counts, events) = results;
    println!(
        "\nsummary ({} s, real sockets from 192.0.2.2):",
        duration.as_secs_f64()
    );
    for ((name, _), (sent, ok, per)) in targets.iter().zip(counts) {
        let per: Vec<String> = per.iter().map(|(b, n)| format!("{b}={n}")).collect();
        println!(
            "  {name:<10} sent {sent} ok {ok} failed {}  [{}]",
            sent - ok,
            per.join(" ")
        );
    }
    for e in &events.events {
        println!("  {:>8.3}s  {:?}", e.at_ms as f64 / 1000.0, e.kind);
    }
    Ok(ExitCode::SUCCESS)
}

/// `fulcrum sim`.
pub fn run_sim(args: Args) -> Result<ExitCode> {
    let config = match crate::trace::load_config(&args.config)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if args.tap {
        if args.engine != EngineKind::Model {
            bail!("--tap runs the reference model only; --engine hdl is for the embedded network");
        }
        return run_tap(&args, config);
    }
    engine::check_supported(args.engine, &config)?;
    if args.engine == EngineKind::Hdl && args.ha {
        bail!(
            "--ha needs flow sync, and the FPGA fast path (--engine hdl) has no flow change log yet; use --engine model"
        );
    }
    let drills = drills(&args)?;
    let key = match (&args.sim_key_file, std::env::var("FULCRUM_KEY")) {
        (Some(p), _) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(Key::new(text.trim().as_bytes()).context("the key must be 1 to 64 bytes")?)
        }
        (None, Ok(k)) if !k.trim().is_empty() => Key::new(k.trim().as_bytes()),
        _ => None,
    };
    if args.listen.is_some() && key.is_none() {
        bail!("--listen needs a management key: --sim-key-file FILE or FULCRUM_KEY");
    }
    let duration = args.duration.unwrap_or(if std::io::stdout().is_terminal() {
        3600.0
    } else {
        30.0
    });
    let state_dir = args.state_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("fulcrum-sim-{}", std::process::id()))
    });
    let mut config = config;
    if args.ha && config.appliance.ha.is_none() {
        config.appliance.ha = Some(default_ha(&config)?);
    }
    let scenario = Scenario {
        config,
        seed: args.seed,
        clients: args.clients.clamp(1, 240),
        rate: args.rate,
        duration: Duration::from_secs_f64(duration.clamp(0.5, 86_400.0)),
        drills,
        key,
        listen: args.listen.clone(),
        serial: false,
        state_dir: state_dir.clone(),
        long_lived: args.long_lived,
        engine: match args.engine {
            EngineKind::Model => Engine::Model,
            EngineKind::Hdl => Engine::Hdl,
        },
        requests: args.requests,
    };
    let json = args.json;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = tokio::task::LocalSet::new().block_on(&rt, async move {
        let mut previous = Vec::new();
        run(scenario, |s| {
            if !json {
                live(s, &mut previous);
            }
        })
        .await
    })?;
    if args.state_dir.is_none() {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "\nsummary ({:.1} s, {} clients, seed {}, engine {}):",
            summary.duration_s, summary.clients, summary.seed, summary.engine
        );
        if let Some(h) = &summary.hdl {
            println!(
                "  fast path (rust-hdl): {} cycles, {} frames in, {} out, {} dropped behind the simulation",
                h.cycles, h.frames_in, h.frames_out, h.backlog_drops
            );
        }
        for s in &summary.services {
            let per: Vec<String> = s
                .per_backend
                .iter()
                .map(|(b, n)| format!("{b}={n}"))
                .collect();
            println!(
                "  {:<10} sent {} ok {} failed {}  [{}]",
                s.name,
                s.sent,
                s.succeeded,
                s.failed,
                per.join(" ")
            );
        }
        for t in &summary.transitions {
            println!(
                "  {:>7.3}s  {}/{} {}{}",
                t.at_s,
                t.service,
                t.backend,
                if t.up { "up" } else { "down" },
                t.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        for (t, d) in &summary.drills {
            println!("  {t:>7.3}s  drill: {d}");
        }
        let l = &summary.long_lived;
        println!(
            "  long-lived connections: {} ({} requests, {} broken, {} answers from another backend)",
            l.connections, l.requests, l.failures, l.moved
        );
        if let Some(ha) = &summary.ha {
            for (a, times) in ha.appliances.iter().zip(&ha.became_master_s) {
                let t: Vec<String> = times.iter().map(|t| format!("{t:.3}s")).collect();
                println!("  HA {a}: became master at [{}]", t.join(", "));
            }
            for t in &ha.takeover_ms {
                match t {
                    Some(ms) => println!("  HA takeover {ms} ms after the master was killed"),
                    None => println!("  HA: no takeover within 5 s of the kill"),
                }
            }
            println!(
                "  HA master at the end: {}",
                ha.master_at_end
                    .map_or_else(|| "none".to_string(), |a| a.to_string())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `[appliance.ha]` for `--ha` without one in the config: VRID 42, priority 200, 10 ms
/// adverts, and the first free address of the appliance's network as the peer.
fn default_ha(config: &fulcrum_model::config::Config) -> Result<fulcrum_model::ha::HaConfig> {
    let a = config.appliance.address;
    let taken = |x: std::net::Ipv4Addr| {
        x == a
            || config.appliance.gateway == Some(x)
            || config.appliance.snat_pool.contains(&x)
            || config.services.iter().any(|s| s.vip == x)
            || config.all_backends().any(|(_, b)| b.address == x)
    };
    let o = a.octets();
    let peer = (2..=250u8)
        .map(|l| std::net::Ipv4Addr::new(o[0], o[1], o[2], l))
        .find(|x| !taken(*x))
        .ok_or_else(|| anyhow::anyhow!("no free address for the second appliance"))?;
    let text =
        format!("vrid = 42\npriority = 200\nadvert_interval = \"50ms\"\npeers = [\"{peer}\"]\n");
    Ok(toml::from_str(&text)?)
}
