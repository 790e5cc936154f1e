//! `--engine hdl`: the rust-hdl simulation of the FPGA fast path gives the same verdicts
//! and output frames as the model on the fixture capture, for the configurations it
//! serves (L7 services; NAT, DSR, IP-in-IP and GUE with Maglev), and refuses the others with a
//! clear error naming the service and the reason.
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

#[test]
fn hdl_engine_refuses_l4_services() {
    let config = config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml");
    // The first service the fast path cannot serve is api (full NAT); web (NAT, round
    // robin) before it is served.
    let err = Engine::new(EngineKind::Hdl, &config).expect_err("full NAT is not in hardware");
    assert!(matches!(err, EngineError::Unsupported(_)));
    let text = err.to_string();
    assert!(
        text.contains("--engine hdl")
            && text.contains("service api")
            && text.contains("fullnat")
            && text.contains("--engine model"),
        "{text}"
    );
}

/// The fixture configuration cut down to what the fast path serves: every service but
/// the full-NAT one (NAT with round robin, DSR with IP hash, IP-in-IP and GUE with
/// Maglev, L7).
fn served_fixture() -> Config {
    let mut config = config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml");
    config.services.retain(|s| {
        matches!(
            s.mode,
            Mode::L7 | Mode::Nat | Mode::Dsr | Mode::Ipip | Mode::Gue
        )
    });
    config
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
    let full = config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml");
    let fullnat = full
        .services
        .iter()
        .find(|s| s.mode == Mode::Fullnat)
        .expect("a fullnat service")
        .clone();
    let mut c = base.clone();
    c.services.push(fullnat).unwrap();
    let t = refusal(&c);
    assert!(t.contains("service api") && t.contains("fullnat"), "{t}");

    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::IpHash,
        Algorithm::Maglev,
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
    for (algorithm, name) in [
        (Algorithm::LeastConnections, "least_connections"),
        (Algorithm::LeastResponseTime, "least_response_time"),
    ] {
        let mut c = base.clone();
        let s = c
            .services
            .iter_mut()
            .find(|s| s.mode == Mode::Ipip)
            .unwrap();
        s.algorithm = algorithm;
        let t = refusal(&c);
        assert!(t.contains("service tunnel") && t.contains(name), "{t}");
    }

    let mut c = base.clone();
    c.services
        .iter_mut()
        .find(|s| s.mode == Mode::Gue)
        .unwrap()
        .sticky = true;
    let t = refusal(&c);
    assert!(t.contains("service media") && t.contains("sticky"), "{t}");

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
    let frames = capture();
    let model = replay(
        &mut Engine::new(EngineKind::Model, &config).unwrap(),
        &frames,
    );
    let hdl = replay(&mut Engine::new(EngineKind::Hdl, &config).unwrap(), &frames);
    assert_eq!(model.len(), hdl.len());
    let mut forwarded = 0;
    let mut nat = 0;
    let mut returned = 0;
    for (i, (m, h)) in model.iter().zip(&hdl).enumerate() {
        assert_eq!(h, m, "frame {i}");
        match m.verdict.action {
            fulcrum_model::pipeline::Action::ToBackend { service, .. } => {
                forwarded += 1;
                nat += usize::from(config.services[usize::from(service)].mode == Mode::Nat);
            }
            fulcrum_model::pipeline::Action::ToClient { .. } => returned += 1,
            _ => {}
        }
    }
    assert!(forwarded >= 3, "{forwarded} frames forwarded");
    assert!(nat >= 1, "{nat} frames forwarded by the NAT service");
    eprintln!(
        "{} frames, {forwarded} forwarded ({nat} NAT), {returned} NAT replies",
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
