//! The subcommands that talk to an appliance: status, watch, apply, backend, logs,
//! metrics, flash.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::ValueEnum;
use fulcrum_host::client::{Client, ClientError};
use fulcrum_host::operate::{self, Status};
use fulcrum_host::target::{TargetArgs, TargetError};
use fulcrum_mgmt::message::{EventKind, Request, Response};
use fulcrum_model::config::{AdminState, Name};

/// Exit status: the appliance refused the request or a config is invalid.
pub const REFUSED: u8 = 1;
/// Exit status: usage error, unreadable file, or no appliance given.
pub const USAGE: u8 = 2;
/// Exit status: the appliance could not be reached, timed out, or authentication failed.
pub const UNREACHABLE: u8 = 3;

/// Prints a client error with what to do, and gives the exit status.
pub fn failed(target: &str, error: &ClientError) -> ExitCode {
    eprintln!("fulcrum: {target}: {error}");
    match error {
        ClientError::Refused { .. } => ExitCode::from(REFUSED),
        ClientError::WrongKey => {
            eprintln!("hint: the key must be the one the appliance was built or configured with");
            ExitCode::from(UNREACHABLE)
        }
        _ => ExitCode::from(UNREACHABLE),
    }
}

fn resolve(target: &TargetArgs) -> Result<fulcrum_host::target::Resolved, ExitCode> {
    target.resolve().map_err(|e: TargetError| {
        eprintln!("fulcrum: {e}");
        ExitCode::from(USAGE)
    })
}

pub(crate) fn connect(target: &TargetArgs) -> Result<(Client, String), ExitCode> {
    let resolved = resolve(target)?;
    let name = resolved.describe();
    match resolved.connect() {
        Ok(c) => Ok((c, name)),
        Err(e) => Err(failed(&name, &e)),
    }
}

/// Arguments of `fulcrum status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// `fulcrum status`.
pub fn status(target: &TargetArgs, args: StatusArgs) -> Result<ExitCode> {
    let (mut client, name) = match connect(target) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match operate::fetch_status(&mut client) {
        Ok(s) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&operate::status_json(&s))?
                );
            } else {
                print!("{}", operate::render_status(&s));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&name, &e)),
    }
}

/// Arguments of `fulcrum watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many refreshes (default: until interrupted).
    #[arg(long)]
    count: Option<u64>,
}

/// `fulcrum watch`: the status, refreshed, with per-backend packet rates.
pub fn watch(target: &TargetArgs, args: WatchArgs) -> Result<ExitCode> {
    let (mut client, name) = match connect(target) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    let mut previous: Option<(Instant, Status)> = None;
    let tty = std::io::stdout().is_terminal();
    let mut n = 0u64;
    loop {
        let status = match operate::fetch_status(&mut client) {
            Ok(s) => s,
            Err(e) => return Ok(failed(&name, &e)),
        };
        let now = Instant::now();
        let mut out = String::new();
        if tty {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&operate::render_status(&status));
        if let Some((then, before)) = &previous {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            out.push_str("\nrates (packets/s):");
            for (s, b) in status.services.iter().zip(before.services.iter()) {
                for (x, y) in s.backends.iter().zip(b.backends.iter()) {
                    let rate = x.packets.saturating_sub(y.packets) as f64 / secs;
                    out.push_str(&format!("  {}/{} {:.0}", s.name, x.name, rate));
                }
            }
            out.push('\n');
        }
        print!("{out}");
        if !tty {
            println!("---");
        }
        std::io::stdout().flush()?;
        previous = Some((now, status));
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(interval);
    }
}

/// Arguments of `fulcrum apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The configuration file.
    config: PathBuf,
    /// Apply without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Only show the changes (the appliance validates the config too).
    #[arg(long)]
    dry_run: bool,
    /// Drain backends the new config removes, waiting up to this many seconds for their
    /// active flows to end, before applying.
    #[arg(long, value_name = "SECONDS")]
    drain_timeout: Option<f64>,
    /// Print the diff and the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `fulcrum apply`.
pub fn apply(target: &TargetArgs, args: ApplyArgs) -> Result<ExitCode> {
    let config = match crate::trace::load_config(&args.config)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let (mut client, name) = match connect(target) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let running = match client.request(&Request::GetConfig) {
        Ok(Response::Config(c)) => c,
        Ok(other) => {
            return Ok(failed(
                &name,
                &ClientError::Protocol(format!("unexpected answer {other:?}")),
            ));
        }
        Err(e) => return Ok(failed(&name, &e)),
    };
    let diff = operate::diff(running.as_ref(), &config);
    if !args.json {
        print!("{diff}");
    }
    if diff.is_empty() {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"diff": diff.to_json(), "applied": false})
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The appliance validates too (a dry run) before anything is asked or drained.
    match client.request(&Request::Apply {
        config: config.clone(),
        dry_run: true,
    }) {
        Ok(_) => {}
        Err(e) => return Ok(failed(&name, &e)),
    }
    if args.dry_run {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"diff": diff.to_json(), "applied": false, "dry_run": true})
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("fulcrum: not applied: pass --yes to apply without a terminal to confirm on");
            return Ok(ExitCode::from(REFUSED));
        }
        eprint!("apply these changes to {name}? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("not applied");
            return Ok(ExitCode::from(REFUSED));
        }
    }
    if let Some(limit) = args.drain_timeout
        && let Err(code) =
            drain_removed(&mut client, &name, &diff.backends_removed, limit, args.json)
    {
        return Ok(code);
    }
    match client.request(&Request::Apply {
        config,
        dry_run: false,
    }) {
        Ok(Response::Applied(r)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"diff": diff.to_json(), "applied": r.changed, "generation": r.generation,
                        "words_written": r.words_written, "ring_entries_written": r.ring_entries_written})
                );
            } else {
                println!(
                    "applied: generation {} ({} table entries and {} ring entries written)",
                    r.generation, r.words_written, r.ring_entries_written
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(other) => Ok(failed(
            &name,
            &ClientError::Protocol(format!("unexpected answer {other:?}")),
        )),
        Err(e) => Ok(failed(&name, &e)),
    }
}

/// Drains `backends` (`service/backend`) and waits until their active flows reach zero or
/// `limit` seconds pass.
fn drain_removed(
    client: &mut Client,
    name: &str,
    backends: &[String],
    limit: f64,
    quiet: bool,
) -> Result<(), ExitCode> {
    if backends.is_empty() {
        return Ok(());
    }
    for sb in backends {
        let (s, b) = sb.split_once('/').unwrap_or((sb, ""));
        let request = Request::Backend {
            service: Name::try_from(s).unwrap_or_default(),
            backend: Name::try_from(b).unwrap_or_default(),
            state: AdminState::Drain,
        };
        if let Err(e) = client.request(&request) {
            return Err(failed(name, &e));
        }
    }
    let deadline = Instant::now() + Duration::from_secs_f64(limit.max(0.0));
    loop {
        let status = operate::fetch_status(client).map_err(|e| failed(name, &e))?;
        let active: u64 = status
            .services
            .iter()
            .flat_map(|s| s.backends.iter().map(move |b| (s, b)))
            .filter(|(s, b)| backends.contains(&format!("{}/{}", s.name, b.name)))
            .map(|(_, b)| u64::from(b.active_flows))
            .sum();
        if active == 0 {
            if !quiet {
                println!("drained: {}", backends.join(", "));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            if !quiet {
                println!("drain timeout: {active} flows still active; applying anyway");
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An administrative action.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Action {
    /// Take no new flows, keep established ones.
    Drain,
    /// Back in rotation.
    Enable,
    /// Out of rotation; established flows move.
    Disable,
}

/// Arguments of `fulcrum backend`.
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// What to do.
    action: Action,
    /// The backend, as SERVICE/BACKEND.
    backend: String,
}

/// `fulcrum backend drain|enable|disable SERVICE/BACKEND`.
pub fn backend(target: &TargetArgs, args: BackendArgs) -> Result<ExitCode> {
    let Some((service, backend)) = args.backend.split_once('/') else {
        eprintln!("fulcrum: name the backend as SERVICE/BACKEND (like web/web-2)");
        return Ok(ExitCode::from(USAGE));
    };
    let (Ok(service), Ok(backend)) = (Name::try_from(service), Name::try_from(backend)) else {
        eprintln!("fulcrum: names are at most 32 bytes");
        return Ok(ExitCode::from(USAGE));
    };
    let (mut client, name) = match connect(target) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let state = match args.action {
        Action::Drain => AdminState::Drain,
        Action::Enable => AdminState::Enabled,
        Action::Disable => AdminState::Disabled,
    };
    match client.request(&Request::Backend {
        service: service.clone(),
        backend: backend.clone(),
        state,
    }) {
        Ok(_) => {
            println!(
                "{service}/{backend}: {}",
                format!("{state:?}").to_lowercase()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&name, &e)),
    }
}

/// Arguments of `fulcrum logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep streaming new events.
    #[arg(long, short = 'f')]
    follow: bool,
    /// JSON lines.
    #[arg(long)]
    json: bool,
    /// Stop following after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    until: Option<f64>,
    /// On the board: the firmware's own log, decoded from defmt over the debug probe
    /// (`probe-rs attach` with this ELF), instead of the event log.
    #[arg(long, value_name = "ELF")]
    rtt: Option<PathBuf>,
    /// The probe-rs chip name (with --rtt).
    #[arg(long, default_value = "STM32F767ZITx")]
    chip: String,
}

fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::Boot { restored } => format!("boot (saved config restored: {restored})"),
        EventKind::BackendUp {
            service,
            backend,
            latency_us,
        } => {
            format!(
                "{service}/{backend} up ({:.2} ms)",
                f64::from(*latency_us) / 1000.0
            )
        }
        EventKind::BackendDown {
            service,
            backend,
            failure,
        } => {
            format!("{service}/{backend} down: {}", failure.describe())
        }
        EventKind::AdminChanged {
            service,
            backend,
            state,
        } => {
            format!(
                "{service}/{backend} {}",
                format!("{state:?}").to_lowercase()
            )
        }
        EventKind::ConfigApplied { generation } => {
            format!("config generation {generation} applied")
        }
        EventKind::ConfigRejected => "config rejected".into(),
        EventKind::AuthFailure => "management request failed authentication".into(),
        EventKind::PersistFailed => "saving the config failed".into(),
        EventKind::FilterInstalled { service } => format!("{service}: filter installed"),
        EventKind::FilterRemoved { service } => format!("{service}: filter removed"),
        EventKind::FilterRejected { service } => format!("{service}: filter upload refused"),
        EventKind::HaRoleChanged { from, to, cause } => format!(
            "HA: {} -> {} ({})",
            from.as_str(),
            to.as_str(),
            cause.as_str()
        ),
        EventKind::HaSynced { peer } => format!("HA: flow table synchronised from {peer}"),
        EventKind::HaResync { peer } => format!("HA: full resync towards {peer}"),
        EventKind::HaSplitBrain { peer, priority } => {
            format!("HA: split brain, another master {peer} (priority {priority})")
        }
    }
}

/// `fulcrum logs`: the appliance's events (health transitions, applies, admin changes,
/// authentication failures). On the board, `probe-rs attach` shows the decoded defmt log.
pub fn logs(target: &TargetArgs, args: LogsArgs) -> Result<ExitCode> {
    if let Some(elf) = &args.rtt {
        if !elf.is_file() {
            eprintln!(
                "fulcrum logs: {}: no such firmware ELF (build boards/nucleo-f767zi first)",
                elf.display()
            );
            return Ok(ExitCode::from(USAGE));
        }
        let probe_rs = match tool("probe-rs", "install it with `cargo install probe-rs-tools`") {
            Ok(p) => p,
            Err(code) => return Ok(code),
        };
        return Ok(
            match run_step(
                "streaming the board's defmt log (probe-rs attach; Ctrl-C to stop)",
                std::process::Command::new(probe_rs)
                    .args(["attach", "--chip", &args.chip])
                    .arg(elf),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            },
        );
    }
    let (mut client, name) = match connect(target) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let stop = args
        .until
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut after = 0u32;
    loop {
        let page = match client.request(&Request::Events { after }) {
            Ok(Response::Events(p)) => p,
            Ok(other) => {
                return Ok(failed(
                    &name,
                    &ClientError::Protocol(format!("unexpected {other:?}")),
                ));
            }
            Err(e) => return Ok(failed(&name, &e)),
        };
        if page.lost > 0 {
            eprintln!("({} older events were overwritten)", page.lost);
        }
        let got = page.events.len();
        for e in &page.events {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"seq": e.seq, "at_ms": e.at_ms, "event": e.kind, "text": describe(&e.kind)})
                );
            } else {
                println!("{:>10.3}s  {}", e.at_ms as f64 / 1000.0, describe(&e.kind));
            }
            after = e.seq;
        }
        std::io::stdout().flush()?;
        if got == fulcrum_mgmt::message::EVENTS_PER_PAGE {
            continue;
        }
        if !args.follow || stop.is_some_and(|t| Instant::now() >= t) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Arguments of `fulcrum metrics`.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Address to serve /metrics on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: String,
    /// Print one scrape to stdout and exit instead of serving.
    #[arg(long)]
    once: bool,
}

/// `fulcrum metrics`: a Prometheus exporter; each scrape asks the appliance for its status.
pub fn metrics(target: &TargetArgs, args: MetricsArgs) -> Result<ExitCode> {
    let resolved = match resolve(target) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let name = resolved.describe();
    let mut client: Option<Client> = None;
    let scrape = |client: &mut Option<Client>| -> String {
        for _ in 0..2 {
            if client.is_none() {
                match resolved.connect() {
                    Ok(c) => *client = Some(c),
                    Err(e) => {
                        eprintln!("fulcrum metrics: {name}: {e}");
                        break;
                    }
                }
            }
            if let Some(c) = client.as_mut() {
                match operate::fetch_status(c) {
                    Ok(s) => {
                        let mut out = operate::render_prometheus(&s);
                        // HA gauges and counters, when the appliance runs HA.
                        if let Ok(Response::Ha(ha)) = c.request(&Request::HaStatus) {
                            out.push_str(&crate::ha_cmd::render_prometheus(&ha));
                        }
                        return out;
                    }
                    Err(e) => {
                        eprintln!("fulcrum metrics: {name}: {e}");
                        *client = None;
                    }
                }
            }
        }
        "# HELP fulcrum_up 1 when the appliance answered this scrape.\n# TYPE fulcrum_up gauge\nfulcrum_up 0\n".to_string()
    };
    if args.once {
        print!("{}", scrape(&mut client));
        return Ok(ExitCode::SUCCESS);
    }
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "fulcrum metrics: serving http://{}/metrics for {name}",
        listener.local_addr()?
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut request = [0u8; 2048];
        let n = stream.read(&mut request).unwrap_or(0);
        let head = String::from_utf8_lossy(&request[..n]);
        let path = head.split_whitespace().nth(1).unwrap_or("");
        let (status, body, kind) = if path == "/metrics" {
            ("200 OK", scrape(&mut client), "text/plain; version=0.0.4")
        } else {
            ("404 Not Found", "try /metrics\n".to_string(), "text/plain")
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `fulcrum flash`.
#[derive(Debug, clap::Args)]
pub struct FlashArgs {
    /// Build and flash the MCU firmware (NUCLEO-F767ZI) with probe-rs.
    #[arg(long)]
    mcu: bool,
    /// Flash the FPGA (Colorlight 5A-75B) with openFPGALoader: this bitstream (.bit), or
    /// without a value the one `boards/colorlight-5a-75b/build.sh` built for
    /// `--board-rev` (target/colorlight-5a-75b/v<REV>/fulcrum_board.bit).
    #[arg(long, value_name = "BITSTREAM", num_args = 0..=1)]
    fpga: Option<Option<PathBuf>>,
    /// The Colorlight 5A-75B revision whose built bitstream `--fpga` takes: 8.0 or 7.0.
    #[arg(long, default_value = "8.0", value_parser = ["8.0", "7.0"])]
    board_rev: String,
    /// Write the bitstream to the FPGA board's SPI flash (default: SRAM, lost at power off).
    #[arg(long)]
    persist: bool,
    /// The probe-rs chip name.
    #[arg(long, default_value = "STM32F767ZITx")]
    chip: String,
}

fn tool(name: &str, install: &str) -> Result<PathBuf, ExitCode> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        eprintln!("fulcrum flash: {name} not found on PATH ({install})");
        ExitCode::from(UNREACHABLE)
    })
}

fn run_step(what: &str, command: &mut std::process::Command) -> Result<(), ExitCode> {
    eprintln!("==> {what}");
    match command.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            eprintln!("fulcrum flash: {what} failed ({s}); is the board connected and powered?");
            Err(ExitCode::from(UNREACHABLE))
        }
        Err(e) => {
            eprintln!("fulcrum flash: {what}: {e}");
            Err(ExitCode::from(UNREACHABLE))
        }
    }
}

/// `fulcrum flash`: builds and flashes the boards; without hardware it fails, saying why.
pub fn flash(args: FlashArgs) -> Result<ExitCode> {
    if !args.mcu && args.fpga.is_none() {
        eprintln!("fulcrum flash: say what to flash: --mcu, --fpga [BITSTREAM], or both");
        return Ok(ExitCode::from(USAGE));
    }
    if args.mcu {
        let probe_rs = match tool("probe-rs", "install it with `cargo install probe-rs-tools`") {
            Ok(p) => p,
            Err(code) => return Ok(code),
        };
        let board = PathBuf::from("boards/nucleo-f767zi");
        if !board.join("Cargo.toml").is_file() {
            eprintln!(
                "fulcrum flash: run from the Fulcrum checkout (boards/nucleo-f767zi not found)"
            );
            return Ok(ExitCode::from(USAGE));
        }
        if std::env::var_os("FULCRUM_KEY").is_none() {
            eprintln!(
                "note: FULCRUM_KEY is not set: the image will have TCP management off (serial only)"
            );
        }
        if let Err(code) = run_step(
            "building the MCU firmware (release, thumbv7em-none-eabihf)",
            std::process::Command::new("cargo")
                .args(["build", "--release", "--locked"])
                .current_dir(&board),
        ) {
            return Ok(code);
        }
        let elf = board.join("target/thumbv7em-none-eabihf/release/fulcrum-board-nucleo");
        if let Err(code) = run_step(
            "flashing the NUCLEO-F767ZI (probe-rs download, with progress)",
            std::process::Command::new(&probe_rs)
                .args(["download", "--chip", &args.chip])
                .arg(&elf),
        ) {
            return Ok(code);
        }
        if let Err(code) = run_step(
            "resetting the MCU",
            std::process::Command::new(&probe_rs).args(["reset", "--chip", &args.chip]),
        ) {
            return Ok(code);
        }
    }
    if let Some(bit) = &args.fpga {
        let bit = match bit {
            Some(path) => path.clone(),
            None => PathBuf::from(format!(
                "target/colorlight-5a-75b/v{}/fulcrum_board.bit",
                args.board_rev
            )),
        };
        if !bit.is_file() {
            eprintln!(
                "fulcrum flash: {}: no such bitstream (build it from the Fulcrum checkout: \
                 boards/colorlight-5a-75b/build.sh --rev {})",
                bit.display(),
                args.board_rev
            );
            return Ok(ExitCode::from(USAGE));
        }
        let loader = match tool(
            "openFPGALoader",
            "install it with `apt-get install openfpgaloader`",
        ) {
            Ok(p) => p,
            Err(code) => return Ok(code),
        };
        let mut cmd = std::process::Command::new(loader);
        cmd.args(["-b", "colorlight"]);
        if args.persist {
            cmd.arg("--write-flash");
        }
        cmd.arg(&bit);
        if let Err(code) = run_step("loading the FPGA bitstream (openFPGALoader)", &mut cmd) {
            return Ok(code);
        }
    }
    eprintln!("done");
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `fulcrum filter`.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    #[command(subcommand)]
    action: FilterAction,
}

#[derive(Debug, clap::Subcommand)]
enum FilterAction {
    /// Upload FILE.wasm as SERVICE's filter. The appliance checks the module's length
    /// and SHA-256, validates and instantiates it, and only then replaces the old filter
    /// (requests see the old or the new one); a refused module changes nothing.
    Upload {
        /// The service (its name in the config).
        service: String,
        /// The WebAssembly module (see shared/filter-sdk for the ABI).
        file: PathBuf,
    },
    /// List the installed filters: size, memory, fuel budget, runs, errors, SHA-256.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove SERVICE's filter (exit status 1 if it has none).
    Remove {
        /// The service.
        service: String,
    },
    /// Check FILE.wasm offline with the appliance's own runtime and limits (validation,
    /// memory cap, ABI) and run it on one request: prints the verdict and the fuel used.
    /// Exit status 1 if the module is refused or the run fails. No appliance needed.
    Check {
        /// The WebAssembly module.
        file: PathBuf,
        /// Request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request target.
        #[arg(long, default_value = "/")]
        path: String,
        /// A header `Name: value` (repeat for more).
        #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// The client's address.
        #[arg(long, default_value = "192.0.2.1")]
        client: std::net::Ipv4Addr,
    },
}

fn service_name(service: &str) -> Result<Name, ExitCode> {
    match Name::try_from(service) {
        Ok(n) if !n.is_empty() => Ok(n),
        _ => {
            eprintln!("fulcrum: a service name is 1 to 32 bytes");
            Err(ExitCode::from(USAGE))
        }
    }
}

/// `fulcrum filter check`: the module through the firmware's runtime, on this machine.
fn check_filter(
    file: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[String],
    client: std::net::Ipv4Addr,
) -> Result<ExitCode> {
    use fulcrum_firmware::filter::{FilterAction, FilterRequest, Filters};
    let wasm = match std::fs::read(file) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("fulcrum: {}: {e}", file.display());
            return Ok(ExitCode::from(USAGE));
        }
    };
    let mut parsed = Vec::new();
    for h in headers {
        let Some((name, value)) = h.split_once(':') else {
            eprintln!("fulcrum: a header is `Name: value`, not {h:?}");
            return Ok(ExitCode::from(USAGE));
        };
        parsed.push((name.trim(), value.trim().as_bytes()));
    }
    let mut filters = Filters::default();
    let info = match filters.install("check", &wasm) {
        Ok(info) => info,
        Err(e) => {
            eprintln!("fulcrum: {}: refused: {e}", file.display());
            return Ok(ExitCode::from(REFUSED));
        }
    };
    println!(
        "module   {} bytes, sha256 {}, {} bytes of memory",
        info.size,
        fulcrum_host::filters::hex(&info.sha256),
        info.memory_bytes
    );
    let request = FilterRequest {
        client,
        method,
        path,
        minor_version: 1,
        headers: &parsed,
        body_prefix: b"",
    };
    match filters.run("check", &request) {
        Some(Ok(outcome)) => {
            let action = match &outcome.action {
                FilterAction::Allow => "allow".to_string(),
                FilterAction::Deny { status } => format!("deny {status}"),
                FilterAction::Route { pool } => format!("route to pool {pool}"),
            };
            println!("verdict  {action}");
            for edit in &outcome.set_headers {
                println!(
                    "header   {:?} {}: {}",
                    edit.op,
                    edit.name,
                    String::from_utf8_lossy(&edit.value)
                );
            }
            println!(
                "fuel     {} of {}",
                outcome.fuel_used,
                filters.limits().fuel_per_request
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => {
            eprintln!("fulcrum: {}: the filter failed: {e}", file.display());
            Ok(ExitCode::from(REFUSED))
        }
        None => Ok(ExitCode::from(REFUSED)),
    }
}

/// `fulcrum filter upload|list|remove|check`.
pub fn filter(target: &TargetArgs, args: FilterArgs) -> Result<ExitCode> {
    use fulcrum_host::filters;
    match args.action {
        FilterAction::Check {
            file,
            method,
            path,
            headers,
            client,
        } => check_filter(&file, &method, &path, &headers, client),
        FilterAction::Upload { service, file } => {
            let service = match service_name(&service) {
                Ok(n) => n,
                Err(code) => return Ok(code),
            };
            let wasm = match std::fs::read(&file) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("fulcrum: {}: {e}", file.display());
                    return Ok(ExitCode::from(USAGE));
                }
            };
            let (mut client, name) = match connect(target) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            match filters::upload(&mut client, &service, &wasm) {
                Ok(info) => {
                    println!(
                        "{}: filter installed ({} bytes, sha256 {}, {} bytes of memory, {} fuel per request)",
                        info.service,
                        info.size,
                        filters::hex(&info.sha256),
                        info.memory_bytes,
                        info.fuel_per_request
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(failed(&name, &e)),
            }
        }
        FilterAction::List { json } => {
            let (mut client, name) = match connect(target) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            match filters::list(&mut client) {
                Ok(list) => {
                    if json {
                        let list: Vec<_> = list.iter().map(filters::info_json).collect();
                        println!("{}", serde_json::to_string_pretty(&list)?);
                    } else {
                        print!("{}", filters::render(&list));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(failed(&name, &e)),
            }
        }
        FilterAction::Remove { service } => {
            let service = match service_name(&service) {
                Ok(n) => n,
                Err(code) => return Ok(code),
            };
            let (mut client, name) = match connect(target) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            match filters::remove(&mut client, &service) {
                Ok(()) => {
                    println!("{service}: filter removed");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(failed(&name, &e)),
            }
        }
    }
}
