//! `fulcrum`: the command line tool of the Fulcrum load balancer appliance.
//!
//! Each subcommand is a module with an `Args` struct (clap derive, doc comments as
//! help) and `pub fn run(args: Args) -> anyhow::Result<ExitCode>`. To add one, add a
//! variant to [`Command`] and its arm to the `match` in [`main`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;

/// Exit statuses shared by all subcommands (shown in `--help`).
const EXIT_CODES: &str = "\
Exit status:
  0  success (for `check`: the configuration is valid)
  1  the input is invalid (for `check`: the configuration has problems, all listed)
  2  usage error, or a file could not be read";

/// Fulcrum, the open hardware L4 load balancer: host tools.
///
/// Checks configurations (and soon traces flows and replays captures) with the same
/// model the appliance runs.
#[derive(Debug, Parser)]
#[command(name = "fulcrum", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration file and list every problem.
    ///
    /// Checks the TOML syntax, the types and keys of the schema, and every rule the
    /// appliance enforces (unique names and addresses, settings each mode needs, table
    /// limits). Problems print as `file:line:column: path: message`, one per line.
    #[command(after_help = EXIT_CODES)]
    Check(check::Args),
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(args),
    };
    result.unwrap_or_else(|error| {
        eprintln!("fulcrum: {error:#}");
        ExitCode::from(2)
    })
}
