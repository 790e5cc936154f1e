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

/// The HA metrics in Prometheus text format (nothing without HA).
pub fn render_prometheus(s: &HaStatus) -> String {
    let mut o = String::new();
    if !s.enabled {
        return o;
    }
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    let role = s.role.map_or("unknown", |r| r.as_str());
    metric(
        "fulcrum_ha_master",
        "gauge",
        "1 when this appliance is the VRRP master.",
        vec![(
            format!("{{vrid=\"{}\",role=\"{role}\"}}", s.vrid),
            f64::from(u8::from(role == "master")),
        )],
    );
    metric(
        "fulcrum_ha_priority",
        "gauge",
        "Effective VRRP priority.",
        vec![(String::new(), f64::from(s.priority))],
    );
    metric(
        "fulcrum_ha_last_advert_age_seconds",
        "gauge",
        "Seconds since the last advert heard (absent when none).",
        s.last_advert_ago_ms
            .map(|m| vec![(String::new(), m as f64 / 1000.0)])
            .unwrap_or_default(),
    );
    for (name, help, v) in [
        (
            "fulcrum_ha_role_changes_total",
            "VRRP role changes.",
            f64::from(s.role_changes),
        ),
        (
            "fulcrum_ha_split_brains_total",
            "Adverts of a lower master heard while master.",
            f64::from(s.split_brains),
        ),
        (
            "fulcrum_ha_adverts_sent_total",
            "VRRP adverts sent.",
            f64::from(s.adverts_sent),
        ),
        (
            "fulcrum_ha_adverts_received_total",
            "VRRP adverts received and used.",
            f64::from(s.adverts_received),
        ),
        (
            "fulcrum_ha_change_records_total",
            "Change records read from the data path's log.",
            s.changes_read as f64,
        ),
        (
            "fulcrum_ha_change_log_overflows_total",
            "Change-log overflows (each a full resync).",
            f64::from(s.change_log_overflows),
        ),
        (
            "fulcrum_ha_replicas_refused_total",
            "Replicas the data path refused.",
            f64::from(s.install_refused),
        ),
    ] {
        metric(name, "counter", help, vec![(String::new(), v)]);
    }
    let peer = |p: &fulcrum_mgmt::ha::HaPeerStatus| {
        format!(
            "{{peer=\"{}\"}}",
            p.address.map_or_else(|| "-".into(), |a| a.to_string())
        )
    };
    let per = |f: &dyn Fn(&fulcrum_mgmt::ha::HaPeerStatus) -> f64| {
        s.peers.iter().map(|p| (peer(p), f(p))).collect::<Vec<_>>()
    };
    metric(
        "fulcrum_ha_peer_synced",
        "gauge",
        "1 when this node holds the peer's complete table.",
        per(&|p| f64::from(u8::from(p.synced))),
    );
    metric(
        "fulcrum_ha_peer_lag_entries",
        "gauge",
        "Changes queued for the peer.",
        per(&|p| f64::from(p.lag_entries)),
    );
    metric(
        "fulcrum_ha_peer_lag_seconds",
        "gauge",
        "Age of the oldest unacknowledged sync message.",
        per(&|p| p.lag_ms as f64 / 1000.0),
    );
    metric(
        "fulcrum_ha_peer_resyncs_total",
        "counter",
        "Full resyncs towards the peer.",
        per(&|p| f64::from(p.resyncs)),
    );
    metric(
        "fulcrum_ha_peer_records_applied_total",
        "counter",
        "Records applied from the peer.",
        per(&|p| f64::from(p.records_applied)),
    );
    metric(
        "fulcrum_ha_peer_retransmitted_total",
        "counter",
        "Sync messages retransmitted to the peer.",
        per(&|p| f64::from(p.retransmitted)),
    );
    o
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
        let m = render_prometheus(&s);
        assert!(
            m.contains("fulcrum_ha_master{vrid=\"42\",role=\"backup\"} 0"),
            "{m}"
        );
        assert!(
            m.contains("fulcrum_ha_peer_lag_entries{peer=\"10.0.0.2\"} 3"),
            "{m}"
        );
        assert!(
            m.contains("fulcrum_ha_peer_lag_seconds{peer=\"10.0.0.2\"} 0.007"),
            "{m}"
        );
        assert!(
            m.contains("fulcrum_ha_last_advert_age_seconds 0.004"),
            "{m}"
        );
        assert!(render_prometheus(&HaStatus::default()).is_empty());
    }
}
