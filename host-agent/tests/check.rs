//! `fulcrum check` end to end: runs the built binary on the example configurations and
//! on fixtures with one mistake each, and asserts the exact diagnostics and exit status.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `fulcrum check ARGS...` from the workspace root, so file names in diagnostics
/// read as they do for an operator (`examples/bad.toml:12:8: ...`).
fn check(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .arg("check")
        .args(args)
        .current_dir(root)
        .output()
        .expect("run fulcrum")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The diagnostic lines `fulcrum check FILE` prints, and asserts it failed with status 1.
#[track_caller]
fn diagnostics(file: &str) -> Vec<String> {
    let output = check(&[file]);
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output), "");
    let text = stderr(&output);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let summary = lines.pop().unwrap();
    assert!(
        summary.starts_with(&format!("{file}: ")),
        "summary line: {summary}"
    );
    lines
}

#[test]
fn example_is_valid() {
    let output = check(&["examples/fulcrum.toml"]);
    assert_eq!(stderr(&output), "");
    assert_eq!(
        stdout(&output),
        "examples/fulcrum.toml: ok (3 services, 8 backends)\n"
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn example_is_valid_as_json() {
    let output = check(&["--json", "examples/fulcrum.toml"]);
    assert_eq!(
        stdout(&output),
        "{\"ok\":true,\"services\":3,\"backends\":8}\n"
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn syntax_error_points_at_the_broken_string() {
    assert_eq!(
        diagnostics("host-agent/tests/fixtures/syntax.toml"),
        ["host-agent/tests/fixtures/syntax.toml:3:15: invalid basic string, expected `\"`"]
    );
}

#[test]
fn type_error_names_the_field_and_points_at_the_value() {
    assert_eq!(
        diagnostics("host-agent/tests/fixtures/type.toml"),
        [
            "host-agent/tests/fixtures/type.toml:16:12: service[0].backend[0].weight: \
             invalid type: string \"x\", expected an integer from 0 to 65535"
        ]
    );
}

#[test]
fn unknown_field_points_at_the_key() {
    assert_eq!(
        diagnostics("host-agent/tests/fixtures/unknown_field.toml"),
        [
            "host-agent/tests/fixtures/unknown_field.toml:13:46: service[0].backend[0].wieght: \
             unknown field `wieght`, expected one of `name`, `address`, `port`, `weight`, `mac`, `state`, `pool`"
        ]
    );
}

#[test]
fn missing_field_points_at_its_table() {
    assert_eq!(
        diagnostics("host-agent/tests/fixtures/missing_field.toml"),
        ["host-agent/tests/fixtures/missing_field.toml:7:1: service[0]: missing field `vip`"]
    );
}

#[test]
fn malformed_mac_says_what_a_mac_looks_like() {
    assert_eq!(
        diagnostics("host-agent/tests/fixtures/bad_mac.toml"),
        [
            "host-agent/tests/fixtures/bad_mac.toml:4:7: appliance.mac: \
             bad MAC address: expected six hex octets like \"02:00:5e:00:00:01\""
        ]
    );
}

#[test]
fn every_rule_violation_is_listed_in_file_order() {
    let expected = [
        "examples/bad.toml:9:20: appliance.maglev_ring_size: maglev_ring_size 65536 is not a prime; use a prime like 65537",
        "examples/bad.toml:12:8: appliance.flow_table.sets: sets 10000 is not a power of two from 1 to 1048576; use e.g. 16384",
        // `timeout` is left out (its default is what is wrong): the table is shown.
        "examples/bad.toml:21:1: service[0].health.timeout: timeout 1s is longer than inter 500ms; lower timeout or raise inter",
        "examples/bad.toml:23:8: service[0].health.path: path \"healthz\" does not start with '/'; write it like \"/healthz\"",
        "examples/bad.toml:32:8: service[0].backend[1].name: backend name \"web-1\" is already used by backend[0] of this service; give each backend a unique name",
        "examples/bad.toml:46:8: service[1].backend[0].port: port 5353 differs from the service port 53, which mode dsr cannot change; remove port",
        "examples/bad.toml:47:10: service[1].backend[0].weight: weight 1200 is above the maximum 1000",
        "examples/bad.toml:50:8: service[2].name: service name \"web\" is already used by service[0]; give each service a unique name",
        "examples/bad.toml:51:7: service[2].vip: vip 10.0.0.2 is the appliance's own address, whose frames go to the MCU; use another address",
        "examples/bad.toml:54:8: service[2].mode: mode fullnat needs source addresses; add at least one to appliance.snat_pool",
    ];
    assert_eq!(diagnostics("examples/bad.toml"), expected);
    let output = check(&["examples/bad.toml"]);
    assert!(stderr(&output).ends_with("\nexamples/bad.toml: 10 problems\n"));
}

#[test]
fn errors_as_json() {
    let output = check(&["--json", "examples/bad.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "");
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["ok"], false);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 10);
    assert_eq!(
        errors[6],
        serde_json::json!({
            "file": "examples/bad.toml",
            "line": 47,
            "column": 10,
            "path": "service[1].backend[0].weight",
            "message": "weight 1200 is above the maximum 1000",
        })
    );

    let output = check(&["--json", "host-agent/tests/fixtures/syntax.toml"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["errors"][0]["path"], serde_json::Value::Null);
    assert_eq!(report["errors"][0]["line"], 3);
}

#[test]
fn unreadable_file_is_exit_status_2() {
    let output = check(&["host-agent/tests/fixtures/no-such-file.toml"]);
    assert_eq!(output.status.code(), Some(2));
    // The rest of the line is the operating system's wording.
    assert!(
        stderr(&output).starts_with(
            "fulcrum: host-agent/tests/fixtures/no-such-file.toml: cannot read the file: "
        ),
        "stderr: {}",
        stderr(&output)
    );
}

#[test]
fn usage_error_is_exit_status_2() {
    let output = check(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("<CONFIG>"));
}
