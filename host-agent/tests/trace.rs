//! `fulcrum trace`: the published RSS hash vectors, every mode in text and JSON, and the
//! exit statuses for a flow it cannot read (2) and a configuration with problems (1).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// The Microsoft RSS verification vectors need the default key and a service on their
/// destination; the key is left out so the default applies.
const RSS_CONFIG: &str = r#"
[appliance]
name = "rss"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
maglev_ring_size = 251
flow_table = { sets = 1024, ways = 4 }

[[service]]
name = "rss"
vip = "161.142.100.80"
protocol = "tcp"
port = 1766
mode = "nat"
health = { kind = "none" }
backend = [ { name = "rss-1", address = "10.0.1.12", port = 8080, mac = "02:00:00:00:01:0c" } ]
"#;

fn fixtures_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fixtures.toml")
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn trace(config: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .arg("trace")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("runs fulcrum")
}

fn json(config: &Path, flow: &str) -> Value {
    let out = trace(config, &["--json", flow]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn text(config: &Path, flow: &str) -> String {
    let out = trace(config, &[flow]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rss_verification_vectors() {
    let config = write_config("trace-rss.toml", RSS_CONFIG);
    let tcp = json(&config, "tcp 66.9.149.187:2794 -> 161.142.100.80:1766");
    assert_eq!(tcp["hash"], "0x51ccc178");
    assert_eq!(tcp["action"], "forward");
    assert_eq!(tcp["service"], "rss");
    assert_eq!(tcp["backend"], "rss-1");
    assert_eq!(tcp["backend_address"], "10.0.1.12:8080");
    assert_eq!(tcp["rewritten"]["dst"], "10.0.1.12:8080");

    let icmp = json(&config, "icmp 66.9.149.187 -> 161.142.100.80");
    assert_eq!(icmp["hash"], "0x323e8fc2");
    assert_eq!(icmp["action"], "punt:icmp");
    assert_eq!(icmp["service"], Value::Null);

    let out = text(&config, "tcp 66.9.149.187:2794 -> 161.142.100.80:1766");
    assert!(out.contains("hash     0x51ccc178\n"), "{out}");
    assert!(
        out.contains("rewrite  dnat 161.142.100.80:1766 -> 10.0.1.12:8080\n"),
        "{out}"
    );
}

#[test]
fn every_mode_in_json() {
    let config = fixtures_config();
    let nat = json(&config, "tcp 192.0.2.7:40001 -> 10.0.0.100:80");
    assert_eq!(nat["action"], "forward");
    assert_eq!(nat["new_flow"], true);
    assert_eq!(nat["mode"], "nat");
    assert_eq!(nat["service"], "web");
    assert_eq!(nat["backend"], "web-1", "round robin starts at the first");
    assert_eq!(nat["dnat"]["from"], "10.0.0.100:80");
    assert_eq!(nat["dnat"]["to"], "10.0.1.11:8080");
    assert_eq!(nat["snat"], Value::Null);
    assert_eq!(nat["mac"]["dst"], "02:00:00:00:01:0b");
    assert_eq!(nat["egress"], "network");
    assert!(nat["hash"].as_str().unwrap().len() == 10);

    let fullnat = json(&config, "tcp 192.0.2.11:40002 -> 10.0.0.101:443");
    assert_eq!(fullnat["mode"], "fullnat");
    assert_eq!(fullnat["dnat"]["to"], "10.0.2.21:8443");
    assert_eq!(fullnat["snat"]["from"], "192.0.2.11:40002");
    let snat = fullnat["snat"]["to"].as_str().unwrap();
    assert!(snat.starts_with("10.0.0.250:"), "{snat}");
    assert_eq!(fullnat["rewritten"]["src"], snat);

    let dsr = json(&config, "udp 192.0.2.12:53001 -> 10.0.0.53:53");
    assert_eq!(dsr["mode"], "dsr");
    assert_eq!(dsr["dnat"], Value::Null);
    assert_eq!(dsr["dst_mac"]["from"], "02:00:00:00:00:01");
    assert_eq!(dsr["rewritten"]["dst"], "10.0.0.53:53", "DSR keeps the VIP");
    assert!(
        dsr["dst_mac"]["to"]
            .as_str()
            .unwrap()
            .starts_with("02:00:00:00:03:")
    );

    let ipip = json(&config, "tcp 192.0.2.13:40003 -> 10.0.0.103:80");
    assert_eq!(ipip["mode"], "ipip");
    assert_eq!(ipip["outer"]["mode"], "ipip");
    assert_eq!(ipip["outer"]["src"], "10.0.0.2");
    assert_eq!(ipip["out_len"], ipip["len"].as_u64().unwrap() + 20);

    let gue = json(&config, "udp 192.0.2.14:5004 -> 10.0.0.104:5004");
    assert_eq!(gue["mode"], "gue");
    assert!(gue["outer"]["dst"].as_str().unwrap().ends_with(":6080"));
    assert_eq!(gue["out_len"], gue["len"].as_u64().unwrap() + 28);

    let l7 = json(&config, "tcp 192.0.2.15:40004 -> 10.0.0.105:80");
    assert_eq!(l7["action"], "punt:l7_service");
    assert_eq!(l7["service"], "app");
    assert_eq!(l7["backend"], Value::Null);
    assert_eq!(l7["egress"], "mcu");

    let nothing = json(&config, "tcp 192.0.2.7:40001 -> 10.0.0.100:81");
    assert_eq!(nothing["action"], "drop:no_service");
    assert_eq!(nothing["egress"], Value::Null);
    assert_eq!(nothing["out_len"], 0);
}

#[test]
fn every_mode_in_text() {
    let config = fixtures_config();
    let nat = text(&config, "tcp 192.0.2.7:40001 -> 10.0.0.100:80");
    for line in [
        "flow     tcp 192.0.2.7:40001 -> 10.0.0.100:80\n",
        "service  web (tcp 10.0.0.100:80, nat, round_robin)\n",
        "backend  web-1 10.0.1.11:8080\n",
        "action   forward (new flow)\n",
        "rewrite  dnat 10.0.0.100:80 -> 10.0.1.11:8080\n",
        "mac      02:00:00:00:00:01 -> 02:00:00:00:01:0b\n",
        "egress   network port, 54 bytes\n",
    ] {
        assert!(nat.contains(line), "{line:?} not in\n{nat}");
    }
    let fullnat = text(&config, "tcp 192.0.2.11:40002 -> 10.0.0.101:443");
    assert!(fullnat.contains("rewrite  dnat 10.0.0.101:443 -> 10.0.2.21:8443\n"));
    assert!(fullnat.contains("         snat 192.0.2.11:40002 -> 10.0.0.250:"));
    let dsr = text(&config, "udp 192.0.2.12:53001 -> 10.0.0.53:53");
    assert!(dsr.contains("rewrite  dst mac 02:00:00:00:00:01 -> 02:00:00:00:03:"));
    let ipip = text(&config, "tcp 192.0.2.13:40003 -> 10.0.0.103:80");
    assert!(
        ipip.contains("rewrite  ipip outer 10.0.0.2 -> 10.0.4.4"),
        "{ipip}"
    );
    let gue = text(&config, "udp 192.0.2.14:5004 -> 10.0.0.104:5004");
    assert!(gue.contains("rewrite  gue outer 10.0.0.2:"), "{gue}");
    let l7 = text(&config, "tcp 192.0.2.15:40004 -> 10.0.0.105:80");
    assert!(
        l7.contains("action   punt:l7_service (handed to the MCU)\n"),
        "{l7}"
    );
    let drop = text(&config, "udp 192.0.2.7:1 -> 10.0.0.100:80");
    assert!(drop.contains("action   drop:no_service\n"), "{drop}");
    assert!(drop.contains("egress   none (dropped)\n"), "{drop}");
}

#[test]
fn options_may_follow_the_flow() {
    let config = fixtures_config();
    let out = trace(&config, &["tcp 192.0.2.7:40001->10.0.0.100:80", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flow"], "tcp 192.0.2.7:40001 -> 10.0.0.100:80");
}

#[test]
fn a_bad_flow_is_a_usage_error() {
    let config = fixtures_config();
    for flow in [
        "sctp 192.0.2.7:1 -> 10.0.0.100:80",
        "tcp 192.0.2.7 -> 10.0.0.100:80",
        "icmp 192.0.2.7:1 -> 10.0.0.100",
        "tcp 192.0.2.7:1 10.0.0.100:80",
    ] {
        let out = trace(&config, &[flow]);
        assert_eq!(out.status.code(), Some(2), "{flow}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(flow), "{stderr}");
        assert!(
            stderr.contains("`tcp SRC:PORT -> DST:PORT`") && stderr.contains("`icmp SRC -> DST`"),
            "names the accepted forms: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_bad_config_lists_its_problems_and_exits_1() {
    let config = write_config(
        "trace-bad.toml",
        &RSS_CONFIG.replace("maglev_ring_size = 251", "maglev_ring_size = 250"),
    );
    let out = trace(&config, &["tcp 66.9.149.187:2794 -> 161.142.100.80:1766"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("trace-bad.toml:6:20: appliance.maglev_ring_size:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let missing = trace(
        Path::new("/nonexistent/fulcrum.toml"),
        &["tcp 1.2.3.4:5 -> 6.7.8.9:10"],
    );
    assert_eq!(missing.status.code(), Some(2));
}
