//! `--engine hdl`: the rust-hdl simulation of the FPGA fast path gives the same verdicts
//! and output frames as the model on the fixture capture, for the configurations it
//! serves (all services L7), and refuses the others with a clear error.
//!
//! The equivalence test runs in release only (`scripts/test.sh`, HDL step: `cargo test
//! -p fulcrum-host --release --test engine_hdl`): the rust-hdl simulator is ~30x slower
//! in a debug build.

use std::path::{Path, PathBuf};

use fulcrum_host::config_file;
use fulcrum_host::engine::{Engine, EngineError, EngineKind, Processed};
use fulcrum_model::config::Mode;
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

#[test]
fn hdl_engine_refuses_l4_services() {
    let config = config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml");
    let err = Engine::new(EngineKind::Hdl, &config).expect_err("nat is not in hardware");
    assert!(matches!(err, EngineError::Unsupported(_)));
    let text = err.to_string();
    assert!(
        text.contains("--engine hdl")
            && text.contains("mode nat")
            && text.contains("--engine model"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "rust-hdl simulation: run in release (scripts/test.sh HDL step)"
)]
fn hdl_engine_equals_the_model_on_the_fixture_capture() {
    let mut config = config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml");
    config.services.retain(|s| s.mode == Mode::L7);
    assert!(!config.services.is_empty(), "the fixture has an L7 service");
    let frames = capture();
    let model = replay(
        &mut Engine::new(EngineKind::Model, &config).unwrap(),
        &frames,
    );
    let hdl = replay(&mut Engine::new(EngineKind::Hdl, &config).unwrap(), &frames);
    assert_eq!(model.len(), hdl.len());
    let mut punted = 0;
    for (i, (m, h)) in model.iter().zip(&hdl).enumerate() {
        assert_eq!(h, m, "frame {i}");
        punted += usize::from(matches!(m.verdict.egress, Some(Port::Mcu)));
    }
    // The capture exercises the L7 punt and the other classes, not just drops.
    assert!(punted >= 3, "{punted} punts");
}
