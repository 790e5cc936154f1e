//! `--engine hdl`: the rust-hdl simulation of the FPGA fast path gives the same verdicts
//! and output frames as the model on the fixture capture (`fulcrum pcap --engine hdl`
//! writes the golden files), for the configurations it serves (L7 services; NAT, full
//! NAT, DSR, IP-in-IP and GUE with Maglev, IP hash, round robin or weighted round robin),
//! and refuses the others with a clear error naming the service and the reason.
//!
//! The equivalence test runs in release only (`scripts/test.sh`, HDL step: `cargo test
//! -p fulcrum-host --release --test engine_hdl`): the rust-hdl simulator is ~30x slower
//! in a debug build.

use std::path::{Path, PathBuf};

use fulcrum_host::config_file;
use fulcrum_host::engine::{Engine, EngineError, EngineKind, Processed};
use fulcrum_model::config::{Algorithm, Config, Mode};
use fulcrum_model::pipeline::Port;
use pcap_file::pcap::PcapReader;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn capture() -> Vec<(u64, Vec<u8>)> {
    let file = std::fs::File::open(fixtures().join("mixed.pcap")).expect("mixed.pcap");
    let mut reader = PcapReader::new(file).expect("a pcap");
    let mut frames = Vec::new();
    let mut t0 = None;
    while let Some(p) = reader.next_packet() {
        let p = p.expect("a packet");
        let ms = p.timestamp.as_millis() as u64;
        let base = *t0.get_or_insert(ms);
        frames.push((ms - base, p.data.into_owned()));
    }
    frames
}

fn replay(engine: &mut Engine, frames: &[(u64, Vec<u8>)]) -> Vec<Processed> {
    engine
        .run(|session| {
            let mut out: Vec<Processed> = frames
                .iter()
                .map(|(t, f)| session.process(*t, f, Port::Network))
                .collect();
            // And back from the MCU: every frame goes to the network unchanged.
            out.extend(
                frames
                    .iter()
                    .take(8)
                    .map(|(t, f)| session.process(*t, f, Port::Mcu)),
            );
            out
        })
        .expect("the engine runs")
}

/// `fulcrum pcap --engine hdl` on the golden capture with the golden configuration (a
/// service in every mode, round robin and IP hash among the algorithms) writes exactly
/// the golden files `--engine model` writes: the frames to the network, the punts and
/// every verdict line (only the summary's engine name differs).
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "rust-hdl simulation: run in release (scripts/test.sh HDL step)"
)]
fn pcap_engine_hdl_writes_the_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let (out, punt) = (dir.path().join("out.pcap"), dir.path().join("punt.pcap"));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .arg("pcap")
        .arg("--engine")
        .arg("hdl")
        .arg("--config")
        .arg(fixtures().join("fixtures.toml"))
        .arg(fixtures().join("mixed.pcap"))
        .arg(&out)
        .arg("--punt")
        .arg(&punt)
        .arg("--json")
        .output()
        .expect("run fulcrum");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let golden = |name: &str| std::fs::read(fixtures().join(name)).expect(name);
    assert!(
        std::fs::read(&out).unwrap() == golden("mixed.expected.pcap"),
        "frames to the network differ from mixed.expected.pcap"
    );
    assert!(
        std::fs::read(&punt).unwrap() == golden("mixed.expected.punt.pcap"),
        "punts differ from mixed.expected.punt.pcap"
    );
    let got = String::from_utf8(run.stdout).unwrap();
    let want = String::from_utf8(golden("mixed.expected.jsonl")).unwrap();
    let (got_verdicts, got_summary) = got.trim_end().rsplit_once('\n').unwrap();
    let (want_verdicts, want_summary) = want.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(got_verdicts, want_verdicts, "verdict lines");
    let mut got_summary: serde_json::Value = serde_json::from_str(got_summary).unwrap();
    let mut want_summary: serde_json::Value = serde_json::from_str(want_summary).unwrap();
    for v in [&mut got_summary, &mut want_summary] {
        if let Some(s) = v["summary"].as_object_mut() {
            s.remove("engine");
        }
    }
    assert_eq!(got_summary, want_summary, "summary");
}

/// The fixture configuration, every service of which the fast path serves (NAT and full
/// NAT with round robin, DSR with IP hash, IP-in-IP and GUE with Maglev, L7).
fn served_fixture() -> Config {
    config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml")
}

/// The fixture capture through the model engine and through the hdl engine.
fn both_engines(config: &Config) -> (Vec<Processed>, Vec<Processed>) {
    let frames = capture();
    let model = replay(
        &mut Engine::new(EngineKind::Model, config).unwrap(),
        &frames,
    );
    let hdl = replay(&mut Engine::new(EngineKind::Hdl, config).unwrap(), &frames);
    assert_eq!(model.len(), hdl.len());
    (model, hdl)
}

fn refusal(config: &Config) -> String {
    let err = Engine::new(EngineKind::Hdl, config).expect_err("refused");
    assert!(matches!(err, EngineError::Unsupported(_)));
    let text = err.to_string();
    assert!(
        text.contains("--engine hdl") && text.contains("--engine model"),
        "{text}"
    );
    text
}

#[test]
fn hdl_engine_refuses_what_is_not_in_hardware() {
    let base = served_fixture();
    assert!(
        Engine::new(EngineKind::Hdl, &base).is_ok(),
        "the served subset runs"
    );
    assert!(
        base.services.iter().any(|s| s.mode == Mode::Fullnat),
        "full NAT is served"
    );

    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::IpHash,
        Algorithm::Maglev,
        Algorithm::LeastConnections,
        Algorithm::LeastResponseTime,
    ] {
        let mut c = base.clone();
        for s in c.services.iter_mut().filter(|s| s.mode != Mode::L7) {
            s.algorithm = algorithm;
        }
        assert!(
            Engine::new(EngineKind::Hdl, &c).is_ok(),
            "{algorithm:?} is in hardware"
        );
    }

    let mut c = base.clone();
    for s in c.services.iter_mut() {
        s.sticky = true;
    }
    assert!(
        Engine::new(EngineKind::Hdl, &c).is_ok(),
        "persistence is in hardware"
    );

    let mut c = base.clone();
    c.appliance.maglev_ring_size = 65537;
    let t = refusal(&c);
    assert!(
        t.contains("maglev_ring_size 65537") && t.contains("512 entries"),
        "{t}"
    );

    let mut c = base.clone();
    c.appliance.flow_table.sets = 16384;
    let t = refusal(&c);
    assert!(t.contains("flow_table") && t.contains("16384"), "{t}");
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "rust-hdl simulation: run in release (scripts/test.sh HDL step)"
)]
fn hdl_engine_forwards_as_the_model_on_the_fixture_capture() {
    let config = served_fixture();
    let (model, hdl) = both_engines(&config);
    let mut forwarded = 0;
    let mut nat = 0;
    let mut fullnat = 0;
    let mut returned = 0;
    for (i, (m, h)) in model.iter().zip(&hdl).enumerate() {
        assert_eq!(h, m, "frame {i}");
        match m.verdict.action {
            fulcrum_model::pipeline::Action::ToBackend { service, .. } => {
                forwarded += 1;
                let mode = config.services[usize::from(service)].mode;
                nat += usize::from(mode == Mode::Nat);
                fullnat += usize::from(mode == Mode::Fullnat);
            }
            fulcrum_model::pipeline::Action::ToClient { .. } => returned += 1,
            _ => {}
        }
    }
    assert!(forwarded >= 3, "{forwarded} frames forwarded");
    assert!(nat >= 1, "{nat} frames forwarded by the NAT service");
    assert!(
        fullnat >= 1,
        "{fullnat} frames forwarded by the full-NAT service"
    );
    eprintln!(
        "{} frames, {forwarded} forwarded ({nat} NAT, {fullnat} full NAT), {returned} replies",
        model.len()
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "rust-hdl simulation: run in release (scripts/test.sh HDL step)"
)]
fn hdl_engine_equals_the_model_on_the_fixture_capture() {
    let mut config = config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml");
    config.retain_services(|s, _| s.mode == Mode::L7);
    assert!(!config.services.is_empty(), "the fixture has an L7 service");
    let (model, hdl) = both_engines(&config);
    let mut punted = 0;
    for (i, (m, h)) in model.iter().zip(&hdl).enumerate() {
        assert_eq!(h, m, "frame {i}");
        punted += usize::from(matches!(m.verdict.egress, Some(Port::Mcu)));
    }
    // The capture exercises the L7 punt and the other classes, not just drops.
    assert!(punted >= 3, "{punted} punts");
}

/// The served fixture with every L4 service sticky: the persistence table of the fast
/// path (direct-mapped, `STICKY_SETS` entries) decides as the model's with the same
/// geometry, frame for frame.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "rust-hdl simulation: run in release (scripts/test.sh HDL step)"
)]
fn hdl_engine_keeps_persistence_as_the_model_on_the_fixture_capture() {
    let mut config = served_fixture();
    for s in config.services.iter_mut().filter(|s| s.mode != Mode::L7) {
        s.sticky = true;
    }
    let (model, hdl) = both_engines(&config);
    let mut forwarded = 0;
    for (i, (m, h)) in model.iter().zip(&hdl).enumerate() {
        assert_eq!(h, m, "frame {i}");
        forwarded += usize::from(matches!(
            m.verdict.action,
            fulcrum_model::pipeline::Action::ToBackend { .. }
        ));
    }
    assert!(forwarded >= 3, "{forwarded} frames forwarded");
}
