//! `fulcrum filter check`: a module through the appliance's runtime on this machine,
//! with no appliance.

#[path = "../../firmware/tests/common/filters.rs"]
mod example_filters;

use std::process::{Command, Output};

fn fulcrum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(args)
        .output()
        .expect("fulcrum runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_runs_a_filter_offline_and_refuses_bad_modules() {
    let dir = std::env::temp_dir().join(format!("fulcrum-filter-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = dir.join("block-ua.wasm");
    std::fs::write(&wasm, example_filters::example("block_ua")).unwrap();
    let wasm = wasm.to_str().unwrap();

    let out = fulcrum(&["filter", "check", wasm, "-H", "User-Agent: sqlmap/1.7"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("verdict  deny 403"), "{t}");
    assert!(t.contains("header   Set X-Fulcrum-Filter: block-ua"), "{t}");
    assert!(t.contains("of 100000"), "{t}");

    let out = fulcrum(&["filter", "check", wasm, "-H", "User-Agent: curl/8"]);
    assert!(text(&out).contains("verdict  allow"), "{}", text(&out));

    // Not WebAssembly: refused, exit status 1, one line.
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, "[workspace]\n").unwrap();
    let out = fulcrum(&["filter", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not a valid WebAssembly module"),
        "{}",
        text(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    // Usage: unreadable file, malformed header.
    let out = fulcrum(&["filter", "check", "/nonexistent.wasm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = fulcrum(&["filter", "check", wasm, "-H", "no colon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
