//! Line rate for minimum-size frames (issue 3): back-to-back 60-byte frames of one kind
//! at a time (new flows and hits of Maglev and IP-hash services in every mode, L7 punts,
//! `not_for_us` drops), the cycles per frame measured and printed, every verdict, output
//! frame and counter checked against `Pipeline::process` as in `fast_path.rs`.
//!
//! A 60-byte frame (64 with its FCS) takes 84 byte times on a 1 GbE wire (preamble and
//! inter-frame gap included): at 8 bits per 125 MHz cycle the fast path must take one
//! every 84 cycles. Frames whose output is longer than their input (IP-in-IP + 20 bytes,
//! GUE + 28) are bounded by the output instead (n + 21 / n + 29 cycles in the rewrite
//! stage); they take as long on the output wire.
//!
//! `cargo test -p fulcrum-hdl --release --test line_rate -- --nocapture` prints the table.

mod common;

use std::net::Ipv4Addr;

use common::{A, Dut, Reference};
use fulcrum_hdl::fast_path_sim::{Event, FastPathSim};
use fulcrum_hdl::sim::Traffic;
use fulcrum_hdl::vectors::fix_ip_checksum;
use fulcrum_model::config::{Algorithm, Mode, Protocol};
use fulcrum_model::pipeline::Port;
use fulcrum_model::regmap::{RegisterBus, RegisterWriter, addr, counter};
use fulcrum_model::tables::{BackendEntry, BackendState, ServiceEntry, TableWriter};

/// One 1 GbE wire slot of a 60-byte frame: 60 + FCS 4 + preamble 8 + gap 12 byte times.
const LINE_RATE_CYCLES: f64 = 84.0;

const OWN: [u8; 4] = [10, 0, 0, 1];
const VIP_A: [u8; 4] = [10, 1, 0, 1];
const VIP_B: [u8; 4] = [10, 1, 0, 2];
const POOL: [u8; 4] = [10, 2, 0, 1];

/// The services of the run: (slot, VIP, port, mode, algorithm).
const SERVICES: [(u8, [u8; 4], u16, Mode, Algorithm); 11] = [
    (0, VIP_A, 53, Mode::Nat, Algorithm::Maglev),
    (1, VIP_A, 80, Mode::Dsr, Algorithm::Maglev),
    (2, VIP_A, 443, Mode::Ipip, Algorithm::Maglev),
    (3, VIP_B, 53, Mode::Gue, Algorithm::Maglev),
    (4, VIP_B, 80, Mode::Fullnat, Algorithm::Maglev),
    (5, VIP_B, 443, Mode::Nat, Algorithm::IpHash),
    (6, VIP_B, 8080, Mode::L7, Algorithm::Maglev),
    // Not part of the aim (issue 3 asks it of Maglev and IP hash): measured only (the
    // list algorithms look at every member of the list, 8 here).
    (7, VIP_A, 8081, Mode::Nat, Algorithm::RoundRobin),
    (8, VIP_A, 8082, Mode::Nat, Algorithm::WeightedRoundRobin),
    (9, VIP_A, 8083, Mode::Nat, Algorithm::LeastConnections),
    (10, VIP_A, 8084, Mode::Nat, Algorithm::LeastResponseTime),
];

/// A 60-byte IPv4/UDP frame (the Ethernet minimum without FCS).
fn small_udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x11]);
    f[6..12].copy_from_slice(&[0x02, 0xc1, 0, src[2], src[3], 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    ip[20..22].copy_from_slice(&sport.to_be_bytes());
    ip[22..24].copy_from_slice(&dport.to_be_bytes());
    ip[24..26].copy_from_slice(&26u16.to_be_bytes());
    ip[26..28].copy_from_slice(&sport.wrapping_mul(7).to_be_bytes());
    fix_ip_checksum(ip);
    f
}

fn configure(sim: &mut FastPathSim<A>) {
    sim.write32(addr::ADDRESS, u32::from_be_bytes(OWN));
    sim.write32(addr::RING_SIZE, 251);
    for a in addr::T_SYN..=addr::T_UDP {
        sim.write32(a, 60_000);
    }
    sim.write32(addr::SNAT_CFG, (1 << 16) | 1024);
    sim.write32(addr::SNAT_POOL, u32::from_be_bytes(POOL));
    let mut writer = RegisterWriter::new(&mut *sim);
    for b in 0..8u16 {
        let entry = BackendEntry {
            state: BackendState::Up,
            generation: 0,
            address: [10, 9, 0, b as u8 + 1],
            port: 8000,
            mac: [0x02, 0xbe, 0, 0, 1, b as u8],
            weight: 1,
            rtt_us: 100 + 10 * u32::from(b),
        };
        writer.write_backend(b, &entry);
    }
    for (slot, vip, port, mode, algorithm) in SERVICES {
        let entry = ServiceEntry {
            valid: true,
            vip: Ipv4Addr::from(vip),
            protocol: Protocol::Udp,
            port,
            mode,
            algorithm,
            sticky: false,
            sticky_timeout: 0,
            gue_port: 6080,
            member_count: 8,
        };
        writer.write_service(slot, &entry);
        // Member lists: the NAT return path finds a reply's service by them.
        for b in 0..8u8 {
            writer.write_member(slot, b, u16::from(b));
        }
        let ring: Vec<u16> = (0..251u16).map(|i| (i * 7 + u16::from(slot)) % 8).collect();
        writer.write_ring(slot, 0, &ring);
    }
    sim.write32(addr::CONTROL, 1);
    assert!(sim.wait_commit(200_000), "the commit never completes");
}

/// Runs `frames` back to back and returns the cycles per frame in steady state: from the
/// first verdict to the last, over the frames between (the pipeline's fill and drain
/// left out). Halfway, `rx_frames` is read over the bus in the middle of the traffic: the
/// latch (which waits for the counter queue) must count every frame whose verdict came
/// before the `COUNTER_SELECT` write (and may count the one in the same cycle).
fn burst(
    sim: &mut FastPathSim<A>,
    reference: &mut Reference<'_>,
    frames: &[Vec<u8>],
) -> (f64, Vec<Vec<u8>>) {
    // Time passes between bursts: the flows of this one are the newest (the flow table
    // evicts the least recently seen way).
    let now = reference.now_ms + 1;
    Dut::set_now(sim, now, reference);
    for f in frames {
        reference.push(Port::Network, f);
        sim.push(Port::Network, f.clone());
    }
    let mut events = Vec::new();
    let mut verdicts = Vec::new();
    let mut read = false;
    while verdicts.len() < frames.len() {
        assert!(sim.cycles() < 10_000_000, "the fast path hangs");
        let now = if !read && verdicts.len() == frames.len() / 2 {
            read = true;
            let before = reference.verdicts
                + events
                    .iter()
                    .filter(|e| matches!(e, Event::Verdict(_)))
                    .count();
            let value = sim.counter(counter::RX_FRAMES);
            let mut now = sim.take_events();
            let write = now
                .iter()
                .position(|e| matches!(e, Event::Write(a, _) if *a == addr::COUNTER_SELECT))
                .expect("the COUNTER_SELECT write");
            now.remove(write);
            let at_write = now[..write]
                .iter()
                .filter(|e| matches!(e, Event::Verdict(_)))
                .count();
            let counted = (before + at_write) as u64;
            assert!(
                value == counted || value == counted + 1,
                "rx_frames latched in traffic: {value}, {counted} verdicts before the write"
            );
            now
        } else {
            sim.run(1);
            sim.take_events()
        };
        for e in &now {
            if matches!(e, Event::Verdict(_)) {
                verdicts.push(sim.cycles());
            }
        }
        events.extend(now);
    }
    assert!(sim.run_until_idle(10_000_000), "the fast path hangs");
    events.extend(sim.take_events());
    let sent = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(Port::Network, f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    reference.replay(events);
    reference.assert_drained();
    let cycles = (verdicts[verdicts.len() - 1] - verdicts[0]) as f64 / (frames.len() - 1) as f64;
    (cycles, sent)
}

/// A backend's reply to a frame it received (NAT: to the client; full NAT: to the pool
/// endpoint): addresses and ports swapped, a 60-byte UDP frame.
fn reply(to_backend: &[u8]) -> Vec<u8> {
    let ip = &to_backend[14..];
    let a = |o: usize| [ip[o], ip[o + 1], ip[o + 2], ip[o + 3]];
    let p = |o: usize| u16::from_be_bytes([ip[o], ip[o + 1]]);
    let mut f = small_udp(a(16), p(22), a(12), p(20));
    f[6..12].copy_from_slice(&to_backend[..6]);
    f
}

/// Client `n`'s flow (distinct source address and port).
fn client(n: u32) -> ([u8; 4], u16) {
    (
        [172, 16, (n >> 8) as u8, n as u8],
        1024 + (n as u16).wrapping_mul(13),
    )
}

#[test]
fn minimum_size_frames_at_line_rate() {
    let mut reference = Reference::new(common::model_pipeline());
    let mut sim = FastPathSim::<A>::new(Traffic::SMOOTH, 0x11e);
    Dut::sync(&mut sim, &mut reference);
    configure(&mut sim);
    Dut::sync(&mut sim, &mut reference);

    let n = 120u32;
    let mut next_client = 0u32;
    let mut rows: Vec<(String, f64, usize)> = Vec::new();
    let row =
        |rows: &mut Vec<_>, what: String, reference: &Reference<'_>, before: usize, cycles| {
            rows.push((what, cycles, reference.new_flows - before));
        };
    for (slot, vip, port, mode, algorithm) in SERVICES {
        let kind = format!("{} {:?}", mode.name(), algorithm);
        if mode == Mode::L7 {
            let frames: Vec<_> = (0..n)
                .map(|i| {
                    let (src, sport) = client(i);
                    small_udp(src, sport, vip, port)
                })
                .collect();
            let (cycles, _) = burst(&mut sim, &mut reference, &frames);
            row(
                &mut rows,
                format!("punt (L7 service {slot})"),
                &reference,
                reference.new_flows,
                cycles,
            );
            continue;
        }
        // New flows: clients not seen before.
        let frames: Vec<_> = (next_client..next_client + n)
            .map(|c| {
                let (src, sport) = client(c);
                small_udp(src, sport, vip, port)
            })
            .collect();
        next_client += n;
        let before = reference.new_flows;
        let (cycles, sent) = burst(&mut sim, &mut reference, &frames);
        row(
            &mut rows,
            format!("{kind}, new flows"),
            &reference,
            before,
            cycles,
        );
        // Hits: 40 of those flows, three times over.
        let again: Vec<_> = (0..n as usize).map(|i| frames[i % 40].clone()).collect();
        let before = reference.new_flows;
        let (cycles, _) = burst(&mut sim, &mut reference, &again);
        row(
            &mut rows,
            format!("{kind}, hits"),
            &reference,
            before,
            cycles,
        );
        if slot == 0 || mode == Mode::Fullnat {
            // The backends' replies (a NAT reply goes to the first NAT service with its
            // backend as a member, as in the model: service 0's) to the last 40 flows' frames, three times over.
            let replies: Vec<_> = (0..n as usize)
                .map(|i| reply(&sent[sent.len() - 40 + i % 40]))
                .collect();
            let returned = reference.returned;
            let (cycles, _) = burst(&mut sim, &mut reference, &replies);
            let what = format!(
                "{kind}, replies ({} returned)",
                reference.returned - returned
            );
            row(&mut rows, what, &reference, reference.new_flows, cycles);
        }
    }
    let frames: Vec<_> = (0..n)
        .map(|i| {
            let (src, sport) = client(i);
            small_udp(src, sport, [198, 51, 100, 1], 53)
        })
        .collect();
    let (cycles, _) = burst(&mut sim, &mut reference, &frames);
    row(
        &mut rows,
        "not_for_us".to_string(),
        &reference,
        reference.new_flows,
        cycles,
    );
    Dut::check_counters(&mut sim, &mut reference, true);
    eprintln!("verdicts: {:?}", reference.classes);
    eprintln!("60-byte frames back to back, cycles per frame (line rate: {LINE_RATE_CYCLES}):");
    for (what, cycles, new) in &rows {
        eprintln!("  {what:<40} {cycles:6.1}  ({new} new flows)");
    }
    for (what, cycles, _) in &rows {
        // GUE: the output (n + 28 bytes) is the bound, n + 29 cycles in the rewrite stage.
        let bound = if what.starts_with("gue") {
            90.0
        } else if what.contains("RoundRobin") || what.contains("Least") {
            f64::INFINITY
        } else {
            LINE_RATE_CYCLES
        };
        assert!(
            *cycles <= bound,
            "{what}: {cycles:.1} cycles per frame, over {bound}"
        );
    }
}
