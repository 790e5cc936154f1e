//! `fulcrum-sim-board`: one simulated Fulcrum board as a Linux process.
//!
//! Virtual mode (default, no root): the board's network port is an in-process switch with
//! one virtual server per backend of the config (HTTP, Redis or Memcached, by the
//! service's check kind) and a management gateway on `--listen`.
//! Tap mode (`--tap NAME`, root): the network port is a tap device; bridge it to real
//! hosts.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use fulcrum_mgmt::envelope::Key;
use fulcrum_model::config::{CheckKind, Config};
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{HostSpec, Server, Switch, spawn_host};
use fulcrum_sim::{BoardOptions, MANAGEMENT_PORT, McuLink, start_with};

/// Runs a simulated Fulcrum board: the MCU firmware and the FPGA data path (the reference
/// model) in one process.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Config to apply at boot (as if pushed by the host). Without it the board boots with
    /// the config saved in the state directory.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the board keeps its saved config (its flash). Default:
    /// $XDG_STATE_HOME/fulcrum-sim (or ~/.local/state/fulcrum-sim).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Stop after this many seconds and print a summary (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// File holding the management pre-shared key (or set FULCRUM_KEY). Without a key the
    /// TCP management service is off.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Attach the network port to this tap device (needs root) instead of the virtual network.
    #[arg(long)]
    tap: Option<String>,
    /// Virtual mode: host address where the management service is reachable.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: String,
    /// Open the serial console on a pseudo-terminal (its path is printed).
    #[arg(long)]
    serial: bool,
    /// The MCU reaches the FPGA's registers through control frames on its Ethernet link
    /// (EtherType 0x88B5, as on the Colorlight 5A-75B) instead of a direct register bus.
    #[arg(long)]
    ctrl_frames: bool,
}

fn load_key(path: Option<&PathBuf>) -> anyhow::Result<Option<Key>> {
    let bytes = match (path, std::env::var("FULCRUM_KEY")) {
        (Some(p), _) => {
            std::fs::read(p).with_context(|| format!("reading key file {}", p.display()))?
        }
        (None, Ok(k)) => k.into_bytes(),
        (None, Err(_)) => return Ok(None),
    };
    let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
    match Key::new(&trimmed) {
        Some(k) => Ok(Some(k)),
        None => bail!(
            "the management key must be 1 to 64 bytes (got {})",
            trimmed.len()
        ),
    }
}

fn load_config(path: &PathBuf) -> anyhow::Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: Config = toml::from_str(&text).with_context(|| {
        format!(
            "{}: not a valid config (run `fulcrum check`)",
            path.display()
        )
    })?;
    if let Err(errors) = config.validate() {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("  {}: {}", e.path, e.message))
            .collect();
        bail!("{} is invalid:\n{}", path.display(), lines.join("\n"));
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let key = load_key(args.key_file.as_ref())?;
    let config = args.config.as_ref().map(load_config).transpose()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let geometry = config.as_ref().map(Geometry::of).unwrap_or_default();
        let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
        let has_key = key.is_some();
        let options = BoardOptions {
            state_dir,
            config: config.clone(),
            force_config: true,
            key,
            serial: args.serial,
            geometry,
        };
        let mcu_link = if args.ctrl_frames {
            McuLink::CtrlFrames(Default::default())
        } else {
            McuLink::Direct
        };
        let board = if let Some(tap) = &args.tap {
            let port = NetworkPort::tap(tap).with_context(|| format!("opening tap device {tap} (needs root or CAP_NET_ADMIN)"))?;
            let board = start_with(options, port, mcu_link)?.0;
            println!("fulcrum-sim-board: up on tap {tap}, appliance {} (management tcp {}:{MANAGEMENT_PORT})", board.address, board.address);
            if let Some(p) = &board.serial_path {
                println!("serial console: {}", p.display());
            }
            board
        } else {
            let mut switch = Switch::new();
            let (fpga_port, _) = switch.port();
            let board_config = match &config {
                Some(c) => c.clone(),
                None => bail!("virtual mode needs --config (its backends become virtual servers)"),
            };
            let hosts = spawn_backends(&mut switch, &board_config);
            let operator = operator_address(&board_config);
            let op = spawn_host(
                &mut switch,
                HostSpec {
                    name: "operator".into(),
                    mac: [0x02, 0xfe, 0, 0, 0, 1],
                    address: operator,
                    prefix: board_config.appliance.prefix,
                    gateway: None,
                    server: Server::None,
                },
                0xfe,
            );
            tokio::task::spawn_local(switch.run());
            let board = start_with(options, NetworkPort::Virtual(fpga_port), mcu_link)?.0;
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("listening on {}", args.listen))?;
            if has_key {
                println!(
                    "fulcrum-sim-board: up, appliance {} with {} virtual backends; management at {} (via {operator})",
                    board.address,
                    hosts,
                    listener.local_addr()?
                );
            } else {
                println!(
                    "fulcrum-sim-board: up, appliance {} with {} virtual backends; TCP management off (no --key-file or FULCRUM_KEY)",
                    board.address, hosts
                );
            }
            if let Some(p) = &board.serial_path {
                println!("serial console: {}", p.display());
            }
            tokio::task::spawn_local(fulcrum_sim::gateway::serve(listener, op.stack, board.address, MANAGEMENT_PORT));
            board
        };
        match args.duration {
            Some(seconds) => tokio::time::sleep(std::time::Duration::from_secs_f64(seconds.max(0.0))).await,
            None => tokio::signal::ctrl_c().await?,
        }
        print_summary(&board);
        Ok(())
    })
}

fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("fulcrum-sim")
}

/// Health of every backend and the events so far.
fn print_summary(board: &fulcrum_sim::Board) {
    let app = board.app.borrow();
    let fpga = board.fpga.borrow();
    println!(
        "\n{:<12} {:<12} {:<21} {:<9} {:>7} {:>7} {:>10}",
        "SERVICE", "BACKEND", "ADDRESS", "STATE", "CHECKS", "FAILED", "LATENCY"
    );
    if let Some(config) = app.config() {
        for svc in &config.services {
            for be in config.backends(svc) {
                let Some(slot) = app.control_plane().backend_slot(&svc.name, &be.name) else {
                    continue;
                };
                let state = fpga.pipeline().backend(slot).map(|b| b.state);
                let health = app.checker().status(slot).unwrap_or_default();
                println!(
                    "{:<12} {:<12} {:<21} {:<9} {:>7} {:>7} {:>10}",
                    svc.name.as_str(),
                    be.name.as_str(),
                    format!("{}:{}", be.address, svc.backend_port(be)),
                    state
                        .map(|s| format!("{s:?}").to_lowercase())
                        .unwrap_or_default(),
                    health.checks_passed + health.checks_failed,
                    health.checks_failed,
                    health
                        .last_latency_us
                        .map(|us| format!("{:.2} ms", f64::from(us) / 1000.0))
                        .unwrap_or_else(|| "-".into()),
                );
            }
        }
    }
    let events = app.events().page(0);
    println!("\nevents:");
    for e in &events.events {
        println!("  {:>8.3} s  {:?}", e.at_ms as f64 / 1000.0, e.kind);
    }
}

/// One virtual server per distinct backend address of `config`; returns how many.
fn spawn_backends(switch: &mut Switch, config: &Config) -> usize {
    let mut seen: Vec<Ipv4Addr> = Vec::new();
    for svc in &config.services {
        for be in config.backends(svc) {
            if seen.contains(&be.address) {
                continue;
            }
            seen.push(be.address);
            let port = svc.health.port.unwrap_or(svc.backend_port(be));
            let server = match svc.health.kind {
                CheckKind::Redis => Server::Redis(port),
                CheckKind::Memcached => Server::Memcached(port),
                _ => Server::Http(port),
            };
            let o = be.address.octets();
            spawn_host(
                switch,
                HostSpec {
                    name: be.name.to_string(),
                    mac: be
                        .mac
                        .map(|m| m.0)
                        .unwrap_or([0x02, 0x5e, o[0], o[1], o[2], o[3]]),
                    address: be.address,
                    prefix: config.appliance.prefix,
                    gateway: Some(config.appliance.address),
                    server,
                },
                u64::from(u32::from(be.address)),
            );
        }
    }
    seen.len()
}

/// An address in the appliance's last /24 that no backend uses, for the operator host.
fn operator_address(config: &Config) -> Ipv4Addr {
    let o = config.appliance.address.octets();
    (1..=254u8)
        .rev()
        .map(|last| Ipv4Addr::new(o[0], o[1], o[2], last))
        .find(|a| {
            *a != config.appliance.address
                && !config.services.iter().any(|s| s.vip == *a)
                && !config.all_backends().any(|(_, b)| b.address == *a)
        })
        .unwrap_or(Ipv4Addr::new(o[0], o[1], o[2], 254))
}
