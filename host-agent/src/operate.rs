//! What the operator subcommands show and compute: the whole status (all pages), its
//! text, JSON and Prometheus renderings, and the diff between two configurations.

use std::fmt::Write as _;

use fulcrum_firmware::l7::http::Reject;
use fulcrum_mgmt::message::{
    BackendStatus, L7Status, LATENCY_BUCKETS_US, Request, Response, ServiceStatus, StatusReport,
};
use fulcrum_model::config::Config;
use fulcrum_model::counters::{DropReason, PuntReason};
use serde_json::{Value, json};

use crate::client::{Client, ClientError};

/// Every page of the status, joined.
#[derive(Debug, Clone)]
pub struct Status {
    /// The first page (appliance-wide fields).
    pub head: StatusReport,
    /// Every service of every page.
    pub services: Vec<ServiceStatus>,
}

/// Fetches every status page.
pub fn fetch_status(client: &mut Client) -> Result<Status, ClientError> {
    let mut head = None;
    let mut services = Vec::new();
    let mut page = 0u8;
    loop {
        let report = match client.request(&Request::Status { page })? {
            Response::Status(r) => r,
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected a status page, got {other:?}"
                )));
            }
        };
        services.extend(report.services.iter().cloned());
        let pages = report.pages;
        if head.is_none() {
            head = Some(report);
        }
        page += 1;
        if page >= pages {
            break;
        }
    }
    let head = head.ok_or_else(|| ClientError::Protocol("no status".into()))?;
    Ok(Status { head, services })
}

/// `LeastResponseTime` → `least_response_time` (the config's spelling).
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

fn health_text(b: &BackendStatus, uptime_ms: u64) -> String {
    let word = if b.health.up { "up" } else { "down" };
    let since = uptime_ms.saturating_sub(b.health.since_ms);
    match (b.health.up, b.health.last_failure) {
        (false, Some(f)) => format!("{word} {} ({})", duration(since), f.describe()),
        _ => format!("{word} {}", duration(since)),
    }
}

/// The status as a table.
pub fn render_status(status: &Status) -> String {
    let h = &status.head;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "appliance {}  config generation {}  up {}  frames in {}  from mcu {}  dropped {}  punted {}",
        h.name,
        h.generation,
        duration(h.uptime_ms),
        h.rx_frames,
        h.from_mcu,
        h.drops.iter().sum::<u64>(),
        h.punts.iter().sum::<u64>()
    );
    for s in &status.services {
        let _ = writeln!(
            out,
            "\nservice {}  {} {}:{}  {}  {}  packets {}  bytes {}  return packets {}  new flows {}",
            s.name,
            format!("{:?}", s.protocol).to_lowercase(),
            s.vip,
            s.port,
            format!("{:?}", s.mode).to_lowercase(),
            snake(&format!("{:?}", s.algorithm)),
            s.packets,
            s.bytes,
            s.return_packets,
            s.new_flows
        );
        if let Some(l7) = &s.l7 {
            let _ = writeln!(out, "{}", l7_line(l7));
        }
        let _ = writeln!(
            out,
            "  {:<14} {:<21} {:<9} {:<26} {:>9} {:>7} {:>7} {:>9} {:>10} {:>12}",
            "BACKEND",
            "ADDRESS",
            "STATE",
            "HEALTH",
            "CHECK",
            "WEIGHT",
            "ACTIVE",
            "FLOWS",
            "PACKETS",
            "BYTES"
        );
        for b in &s.backends {
            let check = b
                .health
                .last_latency_us
                .map(|us| format!("{:.2}ms", f64::from(us) / 1000.0))
                .unwrap_or_else(|| "-".into());
            let weight = if b.effective_weight == b.weight {
                b.weight.to_string()
            } else {
                format!("{}/{}", b.effective_weight, b.weight)
            };
            let _ = writeln!(
                out,
                "  {:<14} {:<21} {:<9} {:<26} {:>9} {:>7} {:>7} {:>9} {:>10} {:>12}",
                b.name.as_str(),
                format!("{}:{}", b.address, b.port),
                format!("{:?}", b.state).to_lowercase(),
                health_text(b, h.uptime_ms),
                check,
                weight,
                b.active_flows,
                b.total_flows,
                b.packets,
                b.bytes
            );
        }
    }
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .zip(h.drops.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{}={n}", r.name()))
        .collect();
    if !drops.is_empty() {
        let _ = writeln!(out, "\ndrops: {}", drops.join(" "));
    }
    let m = &h.management;
    let _ = writeln!(
        out,
        "\nmanagement: {} requests, {} malformed, {} authentication failures, {} replays, {} rejected configs",
        m.requests, m.malformed, m.auth_failures, m.replays, m.rejected_configs
    );
    out
}

/// The L7 proxy's refusal counts by reason name (the firmware's order).
fn l7_rejected(l7: &L7Status) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    Reject::ALL
        .iter()
        .zip(l7.rejected.iter())
        .map(|(r, n)| (r.name(), *n))
}

/// One line of an L7 service's proxy counters (refusals only where nonzero).
fn l7_line(l7: &L7Status) -> String {
    let r = &l7.responses;
    let mut line = format!(
        "  l7: requests {}  responses 1xx {} 2xx {} 3xx {} 4xx {} 5xx {}  persisted {}  \
         denied {}  rate limited {}  filter denied {}  filter failures {}  no backend {}  \
         backend errors {}  dropped syns {}  backend reused {}",
        l7.requests,
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        l7.persisted,
        l7.denied,
        l7.rate_limited,
        l7.filter_denied,
        l7.filter_failures,
        l7.no_backend,
        l7.backend_errors,
        l7.dropped_syns,
        l7.backend_reused
    );
    let rejected: Vec<String> = l7_rejected(l7)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    if !rejected.is_empty() {
        line.push_str("  rejected ");
        line.push_str(&rejected.join(" "));
    }
    line
}

/// The status as JSON (drops, punts and L7 refusals by reason name).
pub fn status_json(status: &Status) -> Value {
    let h = &status.head;
    let drops: serde_json::Map<String, Value> = DropReason::ALL
        .iter()
        .zip(h.drops.iter())
        .map(|(r, n)| (r.name().to_string(), json!(n)))
        .collect();
    let punts: serde_json::Map<String, Value> = PuntReason::ALL
        .iter()
        .zip(h.punts.iter())
        .map(|(r, n)| (r.name().to_string(), json!(n)))
        .collect();
    json!({
        "name": h.name.as_str(),
        "generation": h.generation,
        "uptime_ms": h.uptime_ms,
        "rx_frames": h.rx_frames,
        "from_mcu": h.from_mcu,
        "evictions": h.evictions,
        "expirations": h.expirations,
        "moved_flows": h.moved_flows,
        "drops": drops,
        "punts": punts,
        "management": h.management,
        "services": status.services.iter().map(service_json).collect::<Vec<_>>(),
    })
}

fn service_json(s: &ServiceStatus) -> Value {
    let mut v = json!(s);
    if let (Some(l7), Some(obj)) = (&s.l7, v.get_mut("l7")) {
        let rejected: serde_json::Map<String, Value> = l7_rejected(l7)
            .map(|(name, n)| (name.to_string(), json!(n)))
            .collect();
        obj["rejected"] = Value::Object(rejected);
    }
    v
}

/// A service metric: name, type, help, getter.
type ServiceMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ServiceStatus) -> u64,
);
/// A backend metric: name, type, help, getter.
type BackendMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BackendStatus) -> f64,
);

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The status as Prometheus metrics (text exposition format 0.0.4).
pub fn render_prometheus(status: &Status) -> String {
    let h = &status.head;
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut o,
        "fulcrum_up",
        "gauge",
        "1 when the appliance answered this scrape.",
    );
    let _ = writeln!(o, "fulcrum_up 1");
    family(
        &mut o,
        "fulcrum_config_generation",
        "gauge",
        "Generation of the running configuration.",
    );
    let _ = writeln!(o, "fulcrum_config_generation {}", h.generation);
    family(
        &mut o,
        "fulcrum_uptime_seconds",
        "gauge",
        "Seconds since the firmware started.",
    );
    let _ = writeln!(o, "fulcrum_uptime_seconds {}", h.uptime_ms as f64 / 1000.0);
    family(
        &mut o,
        "fulcrum_rx_frames_total",
        "counter",
        "Frames received by the data path.",
    );
    let _ = writeln!(o, "fulcrum_rx_frames_total {}", h.rx_frames);
    family(
        &mut o,
        "fulcrum_drops_total",
        "counter",
        "Frames dropped, by reason.",
    );
    for (r, n) in DropReason::ALL.iter().zip(h.drops.iter()) {
        let _ = writeln!(o, "fulcrum_drops_total{{reason=\"{}\"}} {n}", r.name());
    }
    family(
        &mut o,
        "fulcrum_punts_total",
        "counter",
        "Frames handed to the MCU, by reason.",
    );
    for (r, n) in PuntReason::ALL.iter().zip(h.punts.iter()) {
        let _ = writeln!(o, "fulcrum_punts_total{{reason=\"{}\"}} {n}", r.name());
    }
    family(
        &mut o,
        "fulcrum_flow_evictions_total",
        "counter",
        "Live flows evicted from a full set.",
    );
    let _ = writeln!(o, "fulcrum_flow_evictions_total {}", h.evictions);
    family(
        &mut o,
        "fulcrum_management_auth_failures_total",
        "counter",
        "Management requests refused for authentication.",
    );
    let _ = writeln!(
        o,
        "fulcrum_management_auth_failures_total {}",
        h.management.auth_failures
    );
    let svc_metrics: [ServiceMetric; 5] = [
        (
            "fulcrum_service_packets_total",
            "counter",
            "Forward-path packets.",
            |s| s.packets,
        ),
        (
            "fulcrum_service_bytes_total",
            "counter",
            "Forward-path bytes.",
            |s| s.bytes,
        ),
        (
            "fulcrum_service_return_packets_total",
            "counter",
            "Return-path packets.",
            |s| s.return_packets,
        ),
        (
            "fulcrum_service_return_bytes_total",
            "counter",
            "Return-path bytes.",
            |s| s.return_bytes,
        ),
        (
            "fulcrum_service_flows_total",
            "counter",
            "Flows created.",
            |s| s.new_flows,
        ),
    ];
    for (name, kind, help, get) in svc_metrics {
        family(&mut o, name, kind, help);
        for s in &status.services {
            let _ = writeln!(o, "{name}{{service=\"{}\"}} {}", label(&s.name), get(s));
        }
    }
    let be_metrics: [BackendMetric; 7] = [
        (
            "fulcrum_backend_up",
            "gauge",
            "1 when health checks pass.",
            |b| f64::from(u8::from(b.health.up)),
        ),
        (
            "fulcrum_backend_weight",
            "gauge",
            "Weight in the data path (0 while down; ramps in slow start).",
            |b| f64::from(b.effective_weight),
        ),
        (
            "fulcrum_backend_active_flows",
            "gauge",
            "Flows on the backend now.",
            |b| f64::from(b.active_flows),
        ),
        (
            "fulcrum_backend_flows_total",
            "counter",
            "Flows assigned.",
            |b| b.total_flows as f64,
        ),
        (
            "fulcrum_backend_packets_total",
            "counter",
            "Packets sent to the backend.",
            |b| b.packets as f64,
        ),
        (
            "fulcrum_backend_bytes_total",
            "counter",
            "Bytes sent to the backend.",
            |b| b.bytes as f64,
        ),
        (
            "fulcrum_backend_check_failures_total",
            "counter",
            "Failed health checks.",
            |b| b.health.checks_failed as f64,
        ),
    ];
    for (name, kind, help, get) in be_metrics {
        family(&mut o, name, kind, help);
        for s in &status.services {
            for b in &s.backends {
                let _ = writeln!(
                    o,
                    "{name}{{service=\"{}\",backend=\"{}\"}} {}",
                    label(&s.name),
                    label(&b.name),
                    get(b)
                );
            }
        }
    }
    render_l7_prometheus(&mut o, status);
    family(
        &mut o,
        "fulcrum_health_check_duration_seconds",
        "histogram",
        "Response time of successful health checks, per service.",
    );
    for s in &status.services {
        let hist = &s.check_latency;
        let mut cumulative = 0u64;
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += hist.buckets[i];
            let _ = writeln!(
                o,
                "fulcrum_health_check_duration_seconds_bucket{{service=\"{}\",le=\"{}\"}} {cumulative}",
                label(&s.name),
                f64::from(*bound) / 1e6
            );
        }
        let _ = writeln!(
            o,
            "fulcrum_health_check_duration_seconds_bucket{{service=\"{}\",le=\"+Inf\"}} {}",
            label(&s.name),
            hist.count
        );
        let _ = writeln!(
            o,
            "fulcrum_health_check_duration_seconds_sum{{service=\"{}\"}} {}",
            label(&s.name),
            hist.sum_us as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "fulcrum_health_check_duration_seconds_count{{service=\"{}\"}} {}",
            label(&s.name),
            hist.count
        );
    }
    o
}

/// An L7 counter metric: name, help, getter.
type L7Metric = (&'static str, &'static str, fn(&L7Status) -> u64);

/// The L7 proxy's counters of the services it proxies.
fn render_l7_prometheus(o: &mut String, status: &Status) {
    let proxied: Vec<(&ServiceStatus, &L7Status)> = status
        .services
        .iter()
        .filter_map(|s| s.l7.as_ref().map(|l7| (s, l7)))
        .collect();
    if proxied.is_empty() {
        return;
    }
    let family = |o: &mut String, name: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
    };
    family(
        o,
        "fulcrum_l7_requests_total",
        "HTTP requests whose head parsed.",
    );
    for (s, l7) in &proxied {
        let _ = writeln!(
            o,
            "fulcrum_l7_requests_total{{service=\"{}\"}} {}",
            label(&s.name),
            l7.requests
        );
    }
    family(
        o,
        "fulcrum_l7_responses_total",
        "Responses forwarded from backends, by status class.",
    );
    for (s, l7) in &proxied {
        for (i, n) in l7.responses.iter().enumerate() {
            let _ = writeln!(
                o,
                "fulcrum_l7_responses_total{{service=\"{}\",class=\"{}xx\"}} {n}",
                label(&s.name),
                i + 1
            );
        }
    }
    family(
        o,
        "fulcrum_l7_rejected_total",
        "Requests refused by the HTTP parser, by reason.",
    );
    for (s, l7) in &proxied {
        for (reason, n) in l7_rejected(l7) {
            let _ = writeln!(
                o,
                "fulcrum_l7_rejected_total{{service=\"{}\",reason=\"{reason}\"}} {n}",
                label(&s.name)
            );
        }
    }
    let singles: [L7Metric; 9] = [
        (
            "fulcrum_l7_rate_limited_total",
            "Requests answered 429 by the rate limit.",
            |l| l.rate_limited,
        ),
        (
            "fulcrum_l7_denied_total",
            "Requests answered 403 by a deny rule.",
            |l| l.denied,
        ),
        (
            "fulcrum_l7_filter_denied_total",
            "Requests a WebAssembly filter denied.",
            |l| l.filter_denied,
        ),
        (
            "fulcrum_l7_filter_failures_total",
            "Filter runs that failed (trap, fuel, bad verdict).",
            |l| l.filter_failures,
        ),
        (
            "fulcrum_l7_no_backend_total",
            "Requests answered 503: no backend of the pool could take them.",
            |l| l.no_backend,
        ),
        (
            "fulcrum_l7_backend_errors_total",
            "Requests answered 502/504: the backend failed.",
            |l| l.backend_errors,
        ),
        (
            "fulcrum_l7_persisted_total",
            "Requests sent to their persistence cookie's backend.",
            |l| l.persisted,
        ),
        (
            "fulcrum_l7_dropped_syns_total",
            "Connection attempts dropped while every worker of the service was busy (clients retry).",
            |l| l.dropped_syns,
        ),
        (
            "fulcrum_l7_backend_reused_total",
            "Requests sent on a backend connection kept from the client connection's previous request.",
            |l| l.backend_reused,
        ),
    ];
    for (name, help, get) in singles {
        family(o, name, help);
        for (s, l7) in &proxied {
            let _ = writeln!(o, "{name}{{service=\"{}\"}} {}", label(&s.name), get(l7));
        }
    }
}

/// One changed field: its path, old and new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Field path (`appliance.maglev_ring_size`, `web/web-2.weight`).
    pub path: String,
    /// Old value (JSON).
    pub old: String,
    /// New value (JSON).
    pub new: String,
}

/// What applying a config would change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Appliance settings changed.
    pub appliance: Vec<Change>,
    /// Services added.
    pub services_added: Vec<String>,
    /// Services removed.
    pub services_removed: Vec<String>,
    /// Service settings changed (not their backend lists).
    pub services_changed: Vec<Change>,
    /// Backends added, as `service/backend`.
    pub backends_added: Vec<String>,
    /// Backends removed, as `service/backend`.
    pub backends_removed: Vec<String>,
    /// Backend settings changed.
    pub backends_changed: Vec<Change>,
}

impl ConfigDiff {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }
}

fn fields(prefix: &str, old: &Value, new: &Value, skip: &[&str], out: &mut Vec<Change>) {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        if old != new {
            out.push(Change {
                path: prefix.to_string(),
                old: old.to_string(),
                new: new.to_string(),
            });
        }
        return;
    };
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let (a, b) = (
            o.get(k).unwrap_or(&Value::Null),
            n.get(k).unwrap_or(&Value::Null),
        );
        if a != b {
            out.push(Change {
                path: format!("{prefix}.{k}"),
                old: a.to_string(),
                new: b.to_string(),
            });
        }
    }
}

/// The differences between the running config (`None`: the appliance has none) and `new`.
pub fn diff(running: Option<&Config>, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    let old_json = running.map(|c| serde_json::to_value(c).unwrap_or(Value::Null));
    let new_json = serde_json::to_value(new).unwrap_or(Value::Null);
    let Some(old_json) = old_json else {
        d.services_added = new.services.iter().map(|s| s.name.to_string()).collect();
        d.backends_added = new
            .all_backends()
            .map(|(s, b)| format!("{}/{}", s.name, b.name))
            .collect();
        d.appliance.push(Change {
            path: "appliance".into(),
            old: "none".into(),
            new: "set".into(),
        });
        return d;
    };
    fields(
        "appliance",
        &old_json["appliance"],
        &new_json["appliance"],
        &[],
        &mut d.appliance,
    );
    let by_name = |v: &Value| -> Vec<(String, Value)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| (x["name"].as_str().unwrap_or("").to_string(), x.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_services = by_name(&old_json["service"]);
    let new_services = by_name(&new_json["service"]);
    for (name, _) in &old_services {
        if !new_services.iter().any(|(n, _)| n == name) {
            d.services_removed.push(name.clone());
        }
    }
    for (name, new_s) in &new_services {
        let Some((_, old_s)) = old_services.iter().find(|(n, _)| n == name) else {
            d.services_added.push(name.clone());
            for (b, _) in by_name(&new_s["backend"]) {
                d.backends_added.push(format!("{name}/{b}"));
            }
            continue;
        };
        fields(
            name,
            old_s,
            new_s,
            &["backend", "name"],
            &mut d.services_changed,
        );
        let ob = by_name(&old_s["backend"]);
        let nb = by_name(&new_s["backend"]);
        for (b, _) in &ob {
            if !nb.iter().any(|(n, _)| n == b) {
                d.backends_removed.push(format!("{name}/{b}"));
            }
        }
        for (b, new_b) in &nb {
            match ob.iter().find(|(n, _)| n == b) {
                None => d.backends_added.push(format!("{name}/{b}")),
                Some((_, old_b)) => fields(
                    &format!("{name}/{b}"),
                    old_b,
                    new_b,
                    &["name"],
                    &mut d.backends_changed,
                ),
            }
        }
    }
    // The [[l7]] tables, by the service they name: a change shows as `l7/SERVICE.field`.
    let by_service = |v: &Value| -> Vec<(String, Value)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| (x["service"].as_str().unwrap_or("").to_string(), x.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_l7 = by_service(&old_json["l7"]);
    let new_l7 = by_service(&new_json["l7"]);
    let mut l7_names: Vec<&String> = old_l7.iter().chain(&new_l7).map(|(n, _)| n).collect();
    l7_names.sort();
    l7_names.dedup();
    for name in l7_names {
        let find = |v: &[(String, Value)]| {
            v.iter()
                .find(|(n, _)| n == name)
                .map_or(Value::Null, |(_, x)| x.clone())
        };
        fields(
            &format!("l7/{name}"),
            &find(&old_l7),
            &find(&new_l7),
            &["service"],
            &mut d.services_changed,
        );
    }
    for (name, _) in &old_services {
        if d.services_removed.contains(name)
            && let Some((_, s)) = old_services.iter().find(|(n, _)| n == name)
        {
            for (b, _) in by_name(&s["backend"]) {
                d.backends_removed.push(format!("{name}/{b}"));
            }
        }
    }
    d
}

impl std::fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        for s in &self.services_added {
            writeln!(f, "+ service {s}")?;
        }
        for s in &self.services_removed {
            writeln!(f, "- service {s}")?;
        }
        for b in &self.backends_added {
            writeln!(f, "+ backend {b}")?;
        }
        for b in &self.backends_removed {
            writeln!(f, "- backend {b}")?;
        }
        for c in self
            .appliance
            .iter()
            .chain(&self.services_changed)
            .chain(&self.backends_changed)
        {
            writeln!(f, "~ {}: {} -> {}", c.path, c.old, c.new)?;
        }
        Ok(())
    }
}

impl ConfigDiff {
    /// The diff as JSON.
    pub fn to_json(&self) -> Value {
        let changes = |v: &[Change]| -> Vec<Value> {
            v.iter()
                .map(|c| json!({"path": c.path, "old": c.old, "new": c.new}))
                .collect()
        };
        json!({
            "changed": !self.is_empty(),
            "services_added": self.services_added,
            "services_removed": self.services_removed,
            "backends_added": self.backends_added,
            "backends_removed": self.backends_removed,
            "changes": changes(&self.appliance).into_iter()
                .chain(changes(&self.services_changed))
                .chain(changes(&self.backends_changed))
                .collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        crate::config_file::parse("fulcrum.toml", include_str!("../../examples/fulcrum.toml"))
            .unwrap()
    }

    /// A status with one L4 and one L7 service, from the example's services.
    fn status_with_l7() -> Status {
        let config = example();
        let service = |name: &str, l7: Option<L7Status>| {
            let s = config
                .services
                .iter()
                .find(|s| s.name.as_str() == name)
                .unwrap();
            ServiceStatus {
                name: s.name.clone(),
                vip: s.vip,
                protocol: s.protocol,
                port: s.port,
                mode: s.mode,
                algorithm: s.algorithm,
                packets: 0,
                bytes: 0,
                return_packets: 0,
                return_bytes: 0,
                new_flows: 0,
                check_latency: Default::default(),
                backends: heapless::Vec::new(),
                l7,
            }
        };
        let mut rejected: heapless::Vec<u64, 16> = (0..Reject::ALL.len()).map(|_| 0).collect();
        let bad_host = Reject::ALL
            .iter()
            .position(|&r| r == Reject::BadHost)
            .unwrap();
        rejected[bad_host] = 3;
        let l7 = L7Status {
            requests: 120,
            responses: [0, 100, 2, 5, 1],
            rejected,
            rate_limited: 4,
            denied: 6,
            persisted: 17,
            dropped_syns: 9,
            backend_reused: 11,
            ..L7Status::default()
        };
        let services = vec![service("web", None), service("app", Some(l7))];
        Status {
            head: StatusReport {
                page: 0,
                pages: 1,
                name: Default::default(),
                uptime_ms: 1000,
                generation: 1,
                rx_frames: 0,
                from_mcu: 0,
                drops: heapless::Vec::new(),
                punts: heapless::Vec::new(),
                evictions: 0,
                expirations: 0,
                moved_flows: 0,
                management: Default::default(),
                services: heapless::Vec::new(),
            },
            services,
        }
    }

    #[test]
    fn l7_counters_show_in_status_json_and_metrics() {
        let status = status_with_l7();
        let table = render_status(&status);
        assert!(
            table.contains("l7: requests 120  responses 1xx 0 2xx 100 3xx 2 4xx 5 5xx 1  persisted 17  denied 6  rate limited 4"),
            "{table}"
        );
        assert!(table.contains("rejected bad_host=3\n"), "{table}");
        assert_eq!(
            table.matches("  l7: ").count(),
            1,
            "only the L7 service: {table}"
        );

        let json = status_json(&status);
        assert_eq!(json["services"][0]["l7"], Value::Null);
        assert_eq!(json["services"][1]["l7"]["requests"], 120);
        assert_eq!(json["services"][1]["l7"]["rejected"]["bad_host"], 3);
        assert_eq!(json["services"][1]["l7"]["rejected"]["obs_fold"], 0);

        let metrics = render_prometheus(&status);
        for line in [
            "fulcrum_l7_requests_total{service=\"app\"} 120",
            "fulcrum_l7_responses_total{service=\"app\",class=\"2xx\"} 100",
            "fulcrum_l7_responses_total{service=\"app\",class=\"5xx\"} 1",
            "fulcrum_l7_rejected_total{service=\"app\",reason=\"bad_host\"} 3",
            "fulcrum_l7_rate_limited_total{service=\"app\"} 4",
            "fulcrum_l7_denied_total{service=\"app\"} 6",
            "fulcrum_l7_persisted_total{service=\"app\"} 17",
            "fulcrum_l7_dropped_syns_total{service=\"app\"} 9",
            "fulcrum_l7_backend_reused_total{service=\"app\"} 11",
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "{line} missing:\n{metrics}"
            );
        }
        assert!(!metrics.contains("fulcrum_l7_requests_total{service=\"web\"}"));
        assert_eq!(
            metrics
                .matches("# TYPE fulcrum_l7_requests_total counter")
                .count(),
            1
        );
    }

    #[test]
    fn diff_names_every_change() {
        let a = example();
        assert!(diff(Some(&a), &a).is_empty());
        let mut b = a.clone();
        b.backends_mut(0)[0].weight = 7;
        let last = b.backends(&b.services[0]).len() - 1;
        b.remove_backend(0, last).unwrap();
        b.services[1].port = 5353;
        b.appliance.maglev_ring_size = 4093;
        b.remove_service(1).unwrap();
        b.l7[0].cookie = None;
        let d = diff(Some(&a), &b);
        assert_eq!(d.services_removed, vec!["dns".to_string()]);
        assert!(
            d.services_changed
                .iter()
                .any(|c| c.path == "l7/app.cookie" && c.old == "\"FULCRUM\"" && c.new == "null"),
            "{d:?}"
        );
        assert!(
            d.backends_removed.contains(&"web/web-3".to_string()),
            "{d:?}"
        );
        assert!(
            d.backends_removed.contains(&"dns/dns-1".to_string()),
            "{d:?}"
        );
        assert_eq!(d.backends_changed.len(), 1);
        assert_eq!(d.backends_changed[0].path, "web/web-1.weight");
        assert_eq!(
            (
                d.backends_changed[0].old.as_str(),
                d.backends_changed[0].new.as_str()
            ),
            ("1", "7")
        );
        assert_eq!(d.appliance[0].path, "appliance.maglev_ring_size");
        let shown = d.to_string();
        assert!(
            shown.contains("- service dns") && shown.contains("~ web/web-1.weight: 1 -> 7"),
            "{shown}"
        );
        let fresh = diff(None, &a);
        assert_eq!(
            fresh.services_added,
            vec!["web".to_string(), "dns".to_string(), "app".to_string()]
        );
    }
}
