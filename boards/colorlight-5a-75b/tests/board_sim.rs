//! Pin-level simulation of the Colorlight 5A-75B board top in iverilog: Ethernet frames
//! go into one port's RGMII receive pins and must leave the other port's RGMII transmit
//! pins, across the PHY-clock to core-clock crossing, with preamble, FCS and gap right.
//!
//! The core here is `core_loopthrough` (network port <-> MCU port, unchanged), the
//! image's default core, so "what comes out" is "the same frame on the other port": this
//! isolates the MACs, FIFOs and crossings. Bad frames (FCS, runt, giant) must be dropped
//! whole. `board_fast_path.rs` runs the same pins with FastPath against the model.

use fulcrum_board_colorlight::sim::{BoardSim, Core, TxFrame};
use fulcrum_board_colorlight::with_fcs;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A frame of `len` bytes (FCS excluded) with a recognisable header: ports and an index.
fn frame(rng: &mut StdRng, len: usize, index: u32) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
    f[..4].copy_from_slice(&index.to_be_bytes());
    f
}

fn on_port(out: &[TxFrame], port: u8) -> Vec<&TxFrame> {
    out.iter().filter(|f| f.port == port).collect()
}

fn check_framing(frames: &[&TxFrame]) {
    for (i, f) in frames.iter().enumerate() {
        assert!(
            f.preamble_ok,
            "frame {i} on port {}: bad preamble/SFD",
            f.port
        );
        assert!(
            f.payload().is_some(),
            "frame {i} on port {}: bad FCS",
            f.port
        );
        assert!(
            f.idle_before >= 12,
            "frame {i} on port {}: gap of {} byte times",
            f.port,
            f.idle_before
        );
    }
}

/// Good and bad frames both ways: (into port 1, into port 2, expected out of port 2,
/// expected out of port 1).
#[allow(clippy::type_complexity)]
fn mixed_traffic() -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut rng = StdRng::seed_from_u64(8);

    let mut into1 = Vec::new();
    let mut expect_on2 = Vec::new();
    for i in 0..40u32 {
        let len = match i % 4 {
            0 => 60,
            // 1518 + FCS = 1522, the longest frame with one 802.1Q tag
            1 => 1514 + 4 * (i as usize / 4 % 2),
            _ => rng.gen_range(60..=1514),
        };
        let f = frame(&mut rng, len, i);
        let mut wire = with_fcs(&f);
        match i % 10 {
            // corrupt one byte: FCS mismatch
            3 => {
                let at = rng.gen_range(0..wire.len());
                wire[at] ^= 0x10;
            }
            // a runt with a good FCS (40 bytes + FCS)
            7 => wire = with_fcs(&f[..40]),
            // a giant with a good FCS: 1519 + FCS is over 1522
            9 => {
                let mut giant = f.clone();
                giant.resize(1519, 0x5a);
                wire = with_fcs(&giant);
            }
            _ => expect_on2.push(f),
        }
        into1.push(wire);
    }
    let mut into2 = Vec::new();
    let mut expect_on1 = Vec::new();
    for i in 0..20u32 {
        let len = rng.gen_range(60..=600);
        let f = frame(&mut rng, len, 1000 + i);
        into2.push(with_fcs(&f));
        expect_on1.push(f);
    }
    (into1, into2, expect_on2, expect_on1)
}

#[test]
fn frames_cross_both_ports_and_bad_ones_are_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sim = BoardSim::compile(dir.path(), Core::LoopThrough).unwrap();
    check_mixed(&sim);
}

/// The Verilated board (`sim/board_main.cpp`, the engine `board_fast_path.rs` runs the
/// whole fast path on) against the same traffic: the same frames out, and the same
/// frames, byte for byte and port for port, as the iverilog testbench gives.
#[test]
fn verilator_board_equals_the_iverilog_testbench() {
    let dir = tempfile::tempdir().unwrap();
    let vl = BoardSim::verilator(dir.path(), Core::LoopThrough).unwrap();
    check_mixed(&vl);
    let iv_dir = tempfile::tempdir().unwrap();
    let iv = BoardSim::compile(iv_dir.path(), Core::LoopThrough).unwrap();
    let (into1, into2, _, _) = mixed_traffic();
    let a = vl.run(&into1, &into2).unwrap();
    let b = iv.run(&into1, &into2).unwrap();
    let frames = |out: &[TxFrame], port: u8| -> Vec<Vec<u8>> {
        on_port(out, port).iter().map(|f| f.wire.clone()).collect()
    };
    for port in [1, 2] {
        assert_eq!(frames(&a, port), frames(&b, port), "port {port}");
    }
}

fn check_mixed(sim: &BoardSim) {
    let (into1, into2, expect_on2, expect_on1) = mixed_traffic();
    let out = sim.run(&into1, &into2).unwrap();
    let out1 = on_port(&out, 1);
    let out2 = on_port(&out, 2);
    check_framing(&out1);
    check_framing(&out2);
    let got2: Vec<&[u8]> = out2.iter().map(|f| f.payload().unwrap()).collect();
    let got1: Vec<&[u8]> = out1.iter().map(|f| f.payload().unwrap()).collect();
    assert_eq!(got2.len(), expect_on2.len(), "frames out of port 2");
    assert_eq!(got1.len(), expect_on1.len(), "frames out of port 1");
    for (i, (got, want)) in got2.iter().zip(&expect_on2).enumerate() {
        assert_eq!(*got, want.as_slice(), "port 2 frame {i}");
    }
    for (i, (got, want)) in got1.iter().zip(&expect_on1).enumerate() {
        assert_eq!(*got, want.as_slice(), "port 1 frame {i}");
    }
}

#[test]
fn back_to_back_minimum_frames_leave_at_line_rate() {
    const FRAMES: u32 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let sim = BoardSim::compile(dir.path(), Core::LoopThrough).unwrap();
    let mut rng = StdRng::seed_from_u64(64);

    // 60 bytes + FCS, back to back (12-byte gap) into port 1, whose PHY clock is 500 ppm
    // faster than the core clock, and the same into port 2 (500 ppm slower).
    let into1: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| with_fcs(&frame(&mut rng, 60, i)))
        .collect();
    let into2: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| with_fcs(&frame(&mut rng, 60, 100_000 + i)))
        .collect();

    let out = sim.run(&into1, &into2).unwrap();
    for (port, sent) in [(2u8, &into1), (1u8, &into2)] {
        let got = on_port(&out, port);
        check_framing(&got);
        assert_eq!(
            got.len(),
            sent.len(),
            "frames out of port {port}: none dropped"
        );
        for (i, (g, s)) in got.iter().zip(sent.iter()).enumerate() {
            assert_eq!(g.wire, **s, "port {port} frame {i}");
        }
        // Once the first frame is out, the port sends one minimum frame every 84 byte
        // times (8 preamble + 64 + 12 gap) of the 8 ns core clock: line rate.
        let span = got.last().unwrap().start_ps - got[0].start_ps;
        let per_frame_ps = span as f64 / f64::from(FRAMES - 1);
        assert!(
            (per_frame_ps - 672_000.0).abs() < 672.0 * 0.6,
            "port {port}: {per_frame_ps:.0} ps per frame, line rate is 672000"
        );
        let gaps = got.iter().skip(1).map(|f| f.idle_before);
        assert!(gaps.clone().all(|g| g >= 12));
        eprintln!(
            "port {port}: {} frames, {per_frame_ps:.0} ps per 64-byte frame ({:.4} Mpps), gaps {}..{} byte times",
            got.len(),
            1e6 / per_frame_ps,
            gaps.clone().min().unwrap(),
            gaps.max().unwrap()
        );
    }
}
