//! `fulcrum check CONFIG`: loads a configuration file and reports whether the appliance
//! would take it, listing every problem as `file:line:column: path: message`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use fulcrum_host::config_file::{self, Diagnostic, LoadError};
use serde_json::json;

/// Arguments of `fulcrum check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML), e.g. examples/fulcrum.toml.
    pub config: PathBuf,
    /// Print the result as one JSON object on stdout:
    /// {"ok":true,"services":N,"backends":N} or {"ok":false,"errors":[{file,line,column,path,message}]}.
    #[arg(long)]
    pub json: bool,
}

/// Checks `args.config`: exit status 0 if valid, 1 if it has problems (listed on
/// stderr, or in the JSON on stdout), or an error (status 2) if it cannot be read.
pub fn run(args: Args) -> Result<ExitCode> {
    let name = args.config.display().to_string();
    match config_file::load(&args.config) {
        Ok(config) => {
            let services = config.services.len();
            let backends = config.backend_count();
            if args.json {
                println!(
                    "{}",
                    json!({ "ok": true, "services": services, "backends": backends })
                );
            } else {
                println!(
                    "{name}: ok ({services} {}, {backends} {})",
                    plural(services, "service", "services"),
                    plural(backends, "backend", "backends")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(invalid)) => {
            if args.json {
                let errors: Vec<_> = invalid.diagnostics.iter().map(diagnostic_json).collect();
                let mut report = json!({ "ok": false, "errors": errors });
                if invalid.omitted > 0 {
                    report["omitted"] = json!(invalid.omitted);
                }
                println!("{report}");
            } else {
                eprintln!("{invalid}");
                let count = invalid.diagnostics.len() + invalid.omitted;
                eprintln!("{name}: {count} {}", plural(count, "problem", "problems"));
            }
            Ok(ExitCode::from(1))
        }
        Err(error @ LoadError::Read { .. }) => Err(error.into()),
    }
}

fn diagnostic_json(diagnostic: &Diagnostic) -> serde_json::Value {
    json!({
        "file": diagnostic.file,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "path": diagnostic.path,
        "message": diagnostic.message,
    })
}

fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}
