//! `fulcrum`: the command line tool of the Fulcrum load balancer appliance.
//!
//! Each subcommand is a module with an `Args` struct (clap derive, doc comments as
//! help) and `pub fn run(args: Args) -> anyhow::Result<ExitCode>`. To add one, add a
//! variant to [`Command`] and its arm to the `match` in [`main`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod appliance_cmds;
mod check;
mod ha_cmd;
mod pcap;
mod sim_cmd;
mod trace;

use fulcrum_host::target::TargetArgs;

/// Exit statuses shared by all subcommands (shown in `--help`).
const EXIT_CODES: &str = "\
Exit status:
  0  success (for `check`: the configuration is valid; for `trace` and `pcap`: the
     frames ran, whatever their verdicts)
  1  the input is invalid (the configuration has problems, all listed; for `pcap`: the
     capture is not Ethernet, or is cut short or corrupt after the frames replayed)
  2  usage error (for `trace`: a flow it cannot read), a file could not be read, or no
     appliance was given
  3  the appliance could not be reached, did not answer in time, or authentication
     failed (wrong key); for `flash`: a tool or the board is missing

Talking to an appliance (status, watch, apply, backend, logs, metrics, filter):
  --host HOST[:PORT] with the key from --key-file or FULCRUM_KEY (network), or
  --serial PATH (the console; no key needed), or --target NAME from
  ~/.config/fulcrum/targets.toml ($FULCRUM_TARGETS).";

/// Fulcrum, the open hardware L4 load balancer: the operator's tool.
///
/// Offline, on the same model the appliance runs: check configurations, trace flows,
/// replay captures. On an appliance (over TCP or its serial console): status, watch,
/// apply, backend, logs, metrics, filter, flash. On this machine: `sim`, the whole appliance
/// with clients and backends.
#[derive(Debug, Parser)]
#[command(name = "fulcrum", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    target: TargetArgs,
}

// Parsed once; the size difference between subcommands' arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration file and list every problem.
    ///
    /// Checks the TOML syntax, the types and keys of the schema, and every rule the
    /// appliance enforces (unique names and addresses, settings each mode needs, table
    /// limits). Problems print as `file:line:column: path: message`, one per line.
    #[command(after_help = EXIT_CODES)]
    Check(check::Args),
    /// Trace one flow: which service and backend it hits, and how it is rewritten.
    ///
    /// Builds the flow's first frame (a TCP SYN, a UDP datagram or an ICMP echo request
    /// from 02:00:00:00:00:fe to the appliance) and runs it through a freshly booted data
    /// path at time 0. Prints the flow hash (0x%08x), the service and backend, the
    /// verdict (forward, punt:REASON, drop:REASON) and the rewrite. Exit status 0
    /// whenever the trace ran, even for a drop.
    #[command(after_help = EXIT_CODES)]
    Trace(trace::Args),
    /// Replay a capture through the data path and write what the appliance sends.
    ///
    /// Every frame of IN (pcap or pcapng, Ethernet) enters the network port at its
    /// capture time; frames sent to the network go to OUT, frames handed to the MCU to
    /// --punt. Prints one line per frame (`frame 3: forward web/web-2 (nat) ...`,
    /// `frame 4: drop bad_ipv4_checksum`) and a summary on stderr, or JSON lines.
    #[command(after_help = EXIT_CODES)]
    Pcap(pcap::Args),
    /// Show the appliance: every service and backend with health (and since when), last
    /// check latency, weight, active and total flows, packets and bytes, drop reasons.
    #[command(after_help = EXIT_CODES)]
    Status(appliance_cmds::StatusArgs),
    /// The status, refreshed live, with per-backend packet rates.
    #[command(after_help = EXIT_CODES)]
    Watch(appliance_cmds::WatchArgs),
    /// Apply a configuration: shows the diff against the running one (services, backends,
    /// weights, settings), asks, applies atomically. The same config twice changes
    /// nothing. A config the appliance rejects changes nothing either.
    #[command(after_help = EXIT_CODES)]
    Apply(appliance_cmds::ApplyArgs),
    /// Drain, enable or disable a backend: `fulcrum backend drain web/web-2`.
    ///
    /// Drain: no new flows, established ones continue. Disable: out of rotation, its flows
    /// move. Enable: back in (subject to health checks). The change is saved.
    #[command(after_help = EXIT_CODES)]
    Backend(appliance_cmds::BackendArgs),
    /// The appliance's event log (health transitions, applies, admin changes, refused
    /// management requests); --follow streams it.
    #[command(after_help = EXIT_CODES)]
    Logs(appliance_cmds::LogsArgs),
    /// Serve the appliance's counters and health as Prometheus metrics.
    #[command(after_help = EXIT_CODES)]
    Metrics(appliance_cmds::MetricsArgs),
    /// Build and flash the MCU firmware (probe-rs) and/or the FPGA bitstream
    /// (openFPGALoader). Without the tools or the boards it fails and says what is missing.
    #[command(after_help = EXIT_CODES)]
    Flash(appliance_cmds::FlashArgs),
    /// WebAssembly filters of L7 services: `fulcrum filter upload web block-ua.wasm`,
    /// `fulcrum filter list [--json]`, `fulcrum filter remove web`, and offline
    /// `fulcrum filter check block-ua.wasm -H "User-Agent: sqlmap"`.
    ///
    /// The appliance validates each module itself, runs it with a fuel budget and a
    /// memory cap, and swaps it in atomically; a refused module changes nothing.
    #[command(after_help = EXIT_CODES)]
    Filter(appliance_cmds::FilterArgs),
    /// High availability: `fulcrum ha status [--json]` (role, priority, master, last
    /// advert, master-down interval, per peer sync state, lag in entries and ms,
    /// resyncs), `fulcrum ha promote|demote|clear`.
    #[command(after_help = EXIT_CODES)]
    Ha(ha_cmd::Args),
    /// Run the whole appliance on this machine (no root, no boards): the firmware and the
    /// data path of a simulated board, clients behind a router sending real TCP and UDP
    /// requests to the VIPs, and virtual backends; failure drills on a schedule.
    ///
    /// Prints a live view (per-backend share and state, request rates) and a summary
    /// (requests sent/succeeded/failed per service, answers per backend, health
    /// transitions with times); --json prints the summary only.
    #[command(after_help = EXIT_CODES)]
    Sim(sim_cmd::Args),
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Pcap(args) => pcap::run(args),
        Command::Status(args) => appliance_cmds::status(&cli.target, args),
        Command::Watch(args) => appliance_cmds::watch(&cli.target, args),
        Command::Apply(args) => appliance_cmds::apply(&cli.target, args),
        Command::Backend(args) => appliance_cmds::backend(&cli.target, args),
        Command::Logs(args) => appliance_cmds::logs(&cli.target, args),
        Command::Metrics(args) => appliance_cmds::metrics(&cli.target, args),
        Command::Flash(args) => appliance_cmds::flash(args),
        Command::Filter(args) => appliance_cmds::filter(&cli.target, args),
        Command::Ha(args) => ha_cmd::run(&cli.target, args),
        Command::Sim(args) => sim_cmd::run_sim(args),
    };
    result.unwrap_or_else(|error| {
        eprintln!("fulcrum: {error:#}");
        ExitCode::from(2)
    })
}
