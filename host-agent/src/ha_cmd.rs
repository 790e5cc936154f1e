//! `fulcrum ha status|promote|demote|clear`: the appliance's high availability (VRRP role,
//! peers, flow-sync lag) and the operator's overrides.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use fulcrum_host::target::TargetArgs;
use fulcrum_mgmt::ha::{HaAction, HaStatus};
use fulcrum_mgmt::message::{Request, Response};

use crate::appliance_cmds::{REFUSED, connect, failed};

/// Arguments of `fulcrum ha`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Role, priority, master, last advert, Master_Down_Interval, and per peer: sync
    /// state, lag in entries and ms, resyncs.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Priority 254: take over from any master but an address owner (until `clear`).
    Promote {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Priority 1: release mastership now (until `clear`); a backup takes over after
    /// its skew time.
    Demote {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back to the configured priority.
    Clear {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `fulcrum ha ...`.
pub fn run(target: &TargetArgs, args: Args) -> Result<ExitCode> {
    let (request, json) = match args.action {
        Action::Status { json } => (Request::HaStatus, json),
        Action::Promote { json } => (
            Request::HaAdmin {
                action: HaAction::Promote,
            },
            json,
        ),
        Action::Demote { json } => (
            Request::HaAdmin {
                action: HaAction::Demote,
            },
            json,
        ),
        Action::Clear { json } => (
            Request::HaAdmin {
                action: HaAction::Clear,
            },
            json,
        ),
    };
    let (mut client, name) = match connect(target) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match client.request(&request) {
        Ok(Response::Ha(status)) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render(&status));
            }
            if status.enabled {
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(REFUSED))
            }
        }
        Ok(other) => {
            eprintln!("fulcrum: {name}: unexpected answer {other:?}");
            Ok(ExitCode::from(REFUSED))
        }
        Err(e) => Ok(failed(&name, &e)),
    }
}

fn ago(ms: Option<u64>) -> String {
    ms.map_or_else(|| "never".into(), |m| format!("{m} ms ago"))
}

/// The status as text.
pub fn render(s: &HaStatus) -> String {
    let mut out = String::new();
    if !s.enabled {
        out.push_str("high availability is not configured ([appliance.ha])\n");
        return out;
    }
    let role = s.role.map_or("?", |r| r.as_str());
    let _ = writeln!(
        out,
        "role {role}  vrid {}  priority {} (configured {})",
        s.vrid, s.priority, s.configured_priority
    );
    let _ = writeln!(
        out,
        "master {}  last advert {}  advert interval {} ms  master-down interval {} ms",
        s.master.map_or_else(|| "-".into(), |m| m.to_string()),
        ago(s.last_advert_ago_ms),
        s.advert_interval_ms,
        s.master_down_interval_ms
    );
    let _ = writeln!(
        out,
        "role changes {}  split brains seen {}  adverts sent {} received {}  change records read {}  log overflows {}  replicas refused {}",
        s.role_changes,
        s.split_brains,
        s.adverts_sent,
        s.adverts_received,
        s.changes_read,
        s.change_log_overflows,
        s.install_refused
    );
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:<7} {:<7} {:>11} {:>9} {:>8} {:>8} {:>10}  last data",
        "peer",
        "session",
        "synced",
        "sending",
        "lag entries",
        "lag msgs",
        "lag ms",
        "resyncs",
        "applied"
    );
    for p in &s.peers {
        let _ = writeln!(
            out,
            "{:<16} {:<9} {:<7} {:<7} {:>11} {:>9} {:>8} {:>8} {:>10}  {}",
            p.address.map_or_else(|| "-".into(), |a| a.to_string()),
            if p.connected { "open" } else { "none" },
            if p.synced { "yes" } else { "no" },
            if p.sending { "yes" } else { "no" },
            p.lag_entries,
            p.lag_messages,
            p.lag_ms,
            p.resyncs,
            p.records_applied,
            ago(p.last_applied_ago_ms)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_mgmt::ha::{HaPeerStatus, HaRole};
    use std::net::Ipv4Addr;

    #[test]
    fn renders_role_peers_and_lag() {
        let s = HaStatus {
            enabled: true,
            role: Some(HaRole::Backup),
            vrid: 42,
            priority: 100,
            configured_priority: 100,
            advert_interval_ms: 10,
            master_down_interval_ms: 36,
            master: Some(Ipv4Addr::new(10, 0, 0, 2)),
            last_advert_ago_ms: Some(4),
            peers: [HaPeerStatus {
                address: Some(Ipv4Addr::new(10, 0, 0, 2)),
                connected: true,
                synced: true,
                lag_entries: 3,
                lag_ms: 7,
                resyncs: 1,
                records_applied: 1234,
                last_applied_ago_ms: Some(2),
                ..Default::default()
            }]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let text = render(&s);
        assert!(
            text.contains("role backup  vrid 42  priority 100"),
            "{text}"
        );
        assert!(
            text.contains("master 10.0.0.2  last advert 4 ms ago"),
            "{text}"
        );
        assert!(text.contains("master-down interval 36 ms"), "{text}");
        let peer = text.lines().last().unwrap();
        assert!(peer.starts_with("10.0.0.2"), "{peer}");
        assert!(
            peer.contains(" yes ") && peer.contains("1234") && peer.ends_with("2 ms ago"),
            "{peer}"
        );
        assert!(render(&HaStatus::default()).contains("not configured"));
    }
}
