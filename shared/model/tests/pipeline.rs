//! End-to-end behaviour of the reference model: every mode's round trip, every
//! algorithm's shares, persistence, drain, health changes, table commits and the register
//! map. Seeded and deterministic.

mod common;

use common::*;
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::AdminState;
use fulcrum_model::counters::{DropReason, PuntReason};
use fulcrum_model::pipeline::{Action, Port};
use fulcrum_model::regmap::{RegisterFile, RegisterWriter};

fn setup(text: &str) -> (Owned, ControlPlane) {
    let c = config(text);
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    (Owned::for_config(&c), cp)
}

#[test]
fn nat_round_trip_client_sees_the_vip() {
    let (mut owned, cp) = setup(&one_service("nat", "maglev", "", 3));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let client = (ip(192, 0, 2, 7), 40001);
    let vip = (ip(10, 0, 0, 100), 80);

    let (v, out) = send(&mut p, 1, &tcp(client, vip, SYN));
    let Action::ToBackend {
        backend,
        new_flow: true,
        ..
    } = v.action
    else {
        panic!("{v:?}")
    };
    assert_eq!(v.egress, Some(Port::Network));
    let be = *p.backend(usize::from(backend)).unwrap();
    let (src, dst) = endpoints(&out);
    assert_eq!(src, client);
    assert_eq!(dst, (be.ip(), 8080));
    assert_eq!(&out[0..6], &be.mac, "to the backend's MAC");
    assert_eq!(&out[6..12], &[2, 0, 0, 0, 0, 1], "from the appliance MAC");
    assert!(checksums_valid(&out));

    // The backend answers the client; the appliance makes it come from the VIP.
    let reply = frame(
        be.mac,
        [2, 0, 0, 0, 0, 1],
        6,
        (be.ip(), 8080),
        client,
        SYNACK,
        b"",
    );
    let (v, back) = send(&mut p, 2, &reply);
    assert_eq!(
        v.action,
        Action::ToClient {
            service: 0,
            backend
        }
    );
    let (src, dst) = endpoints(&back);
    assert_eq!(src, vip);
    assert_eq!(dst, client);
    assert_eq!(
        &back[0..6],
        &CLIENT_MAC,
        "back to the MAC the client's frames came from"
    );
    assert!(checksums_valid(&back));

    // Data and FIN keep the flow on the same backend.
    for (t, f) in [(3, ACK), (4, FIN)] {
        let (v, _) = send(&mut p, t, &tcp(client, vip, f));
        assert_eq!(
            v.action,
            Action::ToBackend {
                service: 0,
                backend,
                new_flow: false
            }
        );
    }
    let c = p.counters();
    assert_eq!(c.services[0].packets, 3);
    assert_eq!(c.services[0].return_packets, 1);
    assert_eq!(c.services[0].new_flows, 1);
    assert_eq!(p.active_flows()[usize::from(backend)], 1);
}

#[test]
fn fullnat_round_trip_uses_the_pool_and_the_slot() {
    let (mut owned, cp) = setup(&one_service("fullnat", "round_robin", "", 2));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let vip = (ip(10, 0, 0, 100), 80);
    for i in 0..50u16 {
        let client = (ip(198, 51, 100, (i % 7) as u8 + 1), 30000 + i);
        let (v, out) = send(&mut p, 10, &tcp(client, vip, SYN));
        let Action::ToBackend { backend, .. } = v.action else {
            panic!("{v:?}")
        };
        let be = *p.backend(usize::from(backend)).unwrap();
        let (src, dst) = endpoints(&out);
        assert_eq!(src.0, ip(10, 0, 0, 250), "source NAT to the pool");
        assert!(src.1 >= 1024);
        assert_eq!(dst, (be.ip(), 8080));
        assert!(checksums_valid(&out));
        let reply = frame(be.mac, [2, 0, 0, 0, 0, 1], 6, dst, src, SYNACK, b"");
        let (v, back) = send(&mut p, 11, &reply);
        assert_eq!(
            v.action,
            Action::ToClient {
                service: 0,
                backend
            }
        );
        assert_eq!(endpoints(&back), (vip, client));
        assert!(checksums_valid(&back));
    }
    // A reply to a pool port with no flow behind it is dropped and counted.
    let stray = frame(
        [2; 6],
        [2, 0, 0, 0, 0, 1],
        6,
        (ip(10, 0, 1, 11), 8080),
        (ip(10, 0, 0, 250), 65000),
        ACK,
        b"",
    );
    let (v, _) = send(&mut p, 12, &stray);
    assert_eq!(v.action, Action::Drop(DropReason::ReturnNoFlow));
}

#[test]
fn dsr_changes_only_the_destination_mac() {
    let (mut owned, cp) = setup(&one_service("dsr", "maglev", "", 3));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let f = tcp((ip(192, 0, 2, 9), 5555), (ip(10, 0, 0, 100), 80), SYN);
    let (v, out) = send(&mut p, 1, &f);
    let Action::ToBackend { backend, .. } = v.action else {
        panic!("{v:?}")
    };
    assert_eq!(&out[0..6], &p.backend(usize::from(backend)).unwrap().mac);
    assert_eq!(&out[6..12], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(&out[12..], &f[12..], "IP and TCP untouched");
}

#[test]
fn tunnels_carry_the_original_packet() {
    for (mode, overhead) in [("ipip", 20usize), ("gue", 28)] {
        let (mut owned, cp) = setup(&one_service(mode, "maglev", "", 2));
        let mut p = owned.pipeline();
        program(&mut p, &cp);
        let f = udp_or_tcp_payload();
        let (v, out) = send(&mut p, 1, &f);
        assert!(
            matches!(v.action, Action::ToBackend { .. }),
            "{mode}: {v:?}"
        );
        assert_eq!(out.len(), f.len() + overhead, "{mode}");
        assert_eq!(
            &out[14 + overhead..],
            &f[14..],
            "{mode}: inner packet intact"
        );
        assert!(checksums_valid(&out), "{mode}");
    }

    // A full-size packet does not fit a tunnel: dropped and counted.
    let (mut owned, cp) = setup(&one_service("ipip", "maglev", "", 2));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let big = frame(
        CLIENT_MAC,
        [2, 0, 0, 0, 0, 1],
        6,
        (ip(192, 0, 2, 1), 1),
        (ip(10, 0, 0, 100), 80),
        SYN,
        &[0u8; 1460],
    );
    let (v, _) = send(&mut p, 1, &big);
    assert_eq!(v.action, Action::Drop(DropReason::TunnelMtu));
}

fn udp_or_tcp_payload() -> Vec<u8> {
    frame(
        CLIENT_MAC,
        [2, 0, 0, 0, 0, 1],
        6,
        (ip(192, 0, 2, 1), 1234),
        (ip(10, 0, 0, 100), 80),
        SYN,
        b"hello",
    )
}

#[test]
fn classification_of_everything_else() {
    let text = format!(
        "{}\n[[service]]\nname = \"api\"\nvip = \"10.0.0.101\"\nprotocol = \"tcp\"\nport = 443\nmode = \"l7\"\n[service.health]\nkind = \"none\"\n[[service.backend]]\nname = \"a\"\naddress = \"10.0.1.50\"\nmac = \"02:00:00:00:01:50\"\n",
        one_service("nat", "maglev", "", 1)
    );
    let (mut owned, cp) = setup(&text);
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let c = (ip(192, 0, 2, 1), 1000);
    let cases: Vec<(Vec<u8>, Action)> = vec![
        (
            tcp(c, (ip(10, 0, 0, 2), 22), SYN),
            Action::Punt(PuntReason::OwnAddress),
        ),
        (
            tcp(c, (ip(10, 0, 0, 101), 443), SYN),
            Action::Punt(PuntReason::L7Service),
        ),
        (
            tcp(c, (ip(10, 0, 0, 100), 81), SYN),
            Action::Drop(DropReason::NoService),
        ),
        (
            udp(c, (ip(10, 0, 0, 100), 80), b"x"),
            Action::Drop(DropReason::NoService),
        ),
        (
            udp(c, (ip(224, 0, 0, 18), 0), b"vrrp"),
            Action::Punt(PuntReason::Multicast),
        ),
        (
            tcp(c, (ip(10, 9, 9, 9), 80), SYN),
            Action::Drop(DropReason::NotForUs),
        ),
        (
            tcp(c, (ip(10, 0, 0, 100), 80), ACK),
            Action::Drop(DropReason::NotForUs),
        ),
        (vec![0u8; 10], Action::Drop(DropReason::Runt)),
    ];
    // Mid-flow ACK without a flow on a stateless algorithm is re-created, not dropped:
    // adjust the expectation for that case.
    for (i, (f, expected)) in cases.into_iter().enumerate() {
        let (v, out) = send(&mut p, 1, &f);
        if i == 6 {
            assert!(
                matches!(v.action, Action::ToBackend { new_flow: true, .. }),
                "case {i}: {v:?}"
            );
            continue;
        }
        assert_eq!(v.action, expected, "case {i}");
        if let Action::Punt(_) = v.action {
            assert_eq!(v.egress, Some(Port::Mcu));
            assert_eq!(out, f, "punted unchanged");
        }
    }
    // ARP is punted; a frame from the MCU goes out unchanged.
    let mut arp = vec![0xffu8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        send(&mut p, 1, &arp).0.action,
        Action::Punt(PuntReason::Arp)
    );
    let mut out = vec![0u8; 128];
    let v = p.process(1, &arp, Port::Mcu, &mut out);
    assert_eq!((v.action, v.egress), (Action::FromMcu, Some(Port::Network)));
    assert_eq!(p.counters().rx_frames, 10);
}

#[test]
fn stateful_algorithms_drop_mid_flow_segments_of_unknown_flows() {
    let (mut owned, cp) = setup(&one_service("nat", "round_robin", "", 2));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let (v, _) = send(
        &mut p,
        1,
        &tcp((ip(192, 0, 2, 1), 1), (ip(10, 0, 0, 100), 80), ACK),
    );
    assert_eq!(v.action, Action::Drop(DropReason::TcpNoFlow));
}

fn shares(mode_alg: (&str, &str), extra: &str, n: usize, flows: u16) -> Vec<u32> {
    let (mut owned, cp) = setup(&one_service(mode_alg.0, mode_alg.1, extra, n));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let mut counts = vec![0u32; n];
    for i in 0..flows {
        let client = (ip(100, (i >> 8) as u8, i as u8, 1), 1024 + i);
        let (v, _) = send(&mut p, 1, &tcp(client, (ip(10, 0, 0, 100), 80), SYN));
        let Action::ToBackend { backend, .. } = v.action else {
            panic!("{v:?}")
        };
        counts[usize::from(backend)] += 1;
    }
    counts
}

#[test]
fn every_algorithm_spreads_new_flows() {
    for alg in [
        "round_robin",
        "weighted_round_robin",
        "maglev",
        "least_connections",
        "least_response_time",
        "ip_hash",
    ] {
        let counts = shares(("nat", alg), "", 4, 4000);
        for (b, &c) in counts.iter().enumerate() {
            assert!(
                (850..=1150).contains(&c),
                "{alg}: backend {b} got {c} of 4000: {counts:?}"
            );
        }
    }
}

#[test]
fn persistence_keeps_a_client_on_its_backend() {
    let (mut owned, cp) = setup(&one_service(
        "nat",
        "round_robin",
        "sticky = true\nsticky_timeout = \"60s\"",
        4,
    ));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    for client in 1..=20u8 {
        let mut first = None;
        for port in 0..25u16 {
            let (v, _) = send(
                &mut p,
                1000,
                &tcp(
                    (ip(192, 0, 2, client), 2000 + port),
                    (ip(10, 0, 0, 100), 80),
                    SYN,
                ),
            );
            let Action::ToBackend { backend, .. } = v.action else {
                panic!("{v:?}")
            };
            assert_eq!(*first.get_or_insert(backend), backend, "client {client}");
        }
    }
    // After the timeout a client is balanced afresh. Twenty clients went round the four
    // backends five times, so the cursor is back at web-1, where client 1 was; one other
    // client takes web-1, and client 1's next flow lands on web-2.
    let vip = (ip(10, 0, 0, 100), 80);
    let (v1, _) = send(&mut p, 1000, &tcp((ip(192, 0, 2, 1), 9000), vip, SYN));
    assert!(matches!(v1.action, Action::ToBackend { backend: 0, .. }));
    let later = 1000 + 61_000;
    let (other, _) = send(&mut p, later, &tcp((ip(192, 0, 2, 99), 9000), vip, SYN));
    assert!(matches!(other.action, Action::ToBackend { backend: 0, .. }));
    let (v2, _) = send(&mut p, later, &tcp((ip(192, 0, 2, 1), 9001), vip, SYN));
    assert!(
        matches!(v2.action, Action::ToBackend { backend: 1, .. }),
        "{v2:?}"
    );
}

#[test]
fn drain_keeps_established_flows_and_down_moves_them() {
    let text = one_service("nat", "round_robin", "", 2);
    let c = config(&text);
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    let mut owned = Owned::for_config(&c);
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let vip = (ip(10, 0, 0, 100), 80);
    let mut on_first = Vec::new();
    for i in 0..10u16 {
        let client = (ip(192, 0, 2, 1), 5000 + i);
        let (v, _) = send(&mut p, 1, &tcp(client, vip, SYN));
        if v.action
            == (Action::ToBackend {
                service: 0,
                backend: 0,
                new_flow: true,
            })
        {
            on_first.push(client);
        }
    }
    assert_eq!(on_first.len(), 5);
    let web1 = cp.backend_slot("web", "web-1").unwrap();
    cp.set_admin(web1, AdminState::Drain);
    program(&mut p, &cp);
    for &client in &on_first {
        let (v, _) = send(&mut p, 2, &tcp(client, vip, ACK));
        assert_eq!(
            v.action,
            Action::ToBackend {
                service: 0,
                backend: 0,
                new_flow: false
            },
            "drained flow stays"
        );
    }
    for i in 0..10u16 {
        let (v, _) = send(&mut p, 2, &tcp((ip(192, 0, 2, 2), 7000 + i), vip, SYN));
        assert!(
            matches!(v.action, Action::ToBackend { backend: 1, .. }),
            "no new flow on a drained backend"
        );
    }
    // Health failure: established flows move on their next packet (here: dropped as
    // tcp_no_flow, since round robin cannot re-create a mid-flow TCP connection).
    cp.set_admin(web1, AdminState::Enabled);
    cp.set_health(web1, false);
    program(&mut p, &cp);
    let (v, _) = send(&mut p, 3, &tcp(on_first[0], vip, ACK));
    assert_eq!(v.action, Action::Drop(DropReason::TcpNoFlow));
    assert_eq!(p.counters().moved_flows, 1);
}

#[test]
fn maglev_flows_survive_a_config_change_and_removal_moves_about_one_nth() {
    let n = 8;
    let c = config(&one_service("nat", "maglev", "", n));
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    let mut owned = Owned::for_config(&c);
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let vip = (ip(10, 0, 0, 100), 80);
    let clients: Vec<_> = (0..2000u16)
        .map(|i| (ip(100, 64, (i >> 8) as u8, i as u8), 10000 + i))
        .collect();
    let before: Vec<_> = clients
        .iter()
        .map(|&cl| send(&mut p, 1, &tcp(cl, vip, SYN)).0.action)
        .collect();

    // Remove one backend from the config: established flows of the others stay put.
    let mut c2 = c.clone();
    let removed = c2.remove_backend(0, 3).unwrap();
    cp.apply(&c2).unwrap();
    program(&mut p, &cp);
    let removed_slot = before
        .iter()
        .filter(|a| matches!(a, Action::ToBackend { backend: 3, .. }))
        .count();
    for (cl, b) in clients.iter().zip(&before) {
        let (v, _) = send(&mut p, 2, &tcp(*cl, vip, ACK));
        let Action::ToBackend { backend: was, .. } = *b else {
            panic!()
        };
        let Action::ToBackend { backend: now, .. } = v.action else {
            panic!("{v:?}")
        };
        if was != 3 {
            assert_eq!(now, was, "established flow moved off a surviving backend");
        }
    }
    assert!(removed.name.as_str() == "web-4");
    // New flows (fresh ports) from the same clients: about 1/n of them change backend
    // compared with the full set, i.e. those that hashed to the removed one.
    let mut p2_owned = Owned::for_config(&c);
    let mut p2 = p2_owned.pipeline();
    let mut cp_full = ControlPlane::new();
    cp_full.apply(&c).unwrap();
    program(&mut p2, &cp_full);
    let mut moved = 0;
    for i in 0..4000u16 {
        let cl = (ip(100, 65, (i >> 8) as u8, i as u8), 20000 + i);
        let a = send(&mut p2, 1, &tcp(cl, vip, SYN)).0.action;
        let b = send(&mut p, 3, &tcp(cl, vip, SYN)).0.action;
        if a != b {
            moved += 1;
        }
    }
    let fraction = f64::from(moved) / 4000.0;
    assert!(removed_slot > 0);
    assert!(
        (0.08..=0.18).contains(&fraction),
        "moved {fraction:.3} of new flows, 1/n = {:.3}",
        1.0 / n as f64
    );
}

#[test]
fn register_map_programs_the_same_tables_as_direct_writes() {
    let c = config(&one_service("fullnat", "maglev", "sticky = true", 5));
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    cp.set_health(cp.backend_slot("web", "web-2").unwrap(), false);
    let mut direct_owned = Owned::for_config(&c);
    let mut via_regs_owned = Owned::for_config(&c);
    let mut direct = direct_owned.pipeline();
    let mut via_regs = via_regs_owned.pipeline();
    program(&mut direct, &cp);
    let mut scratch = vec![0u16; cp.settings().ring_size as usize];
    let mut writer = RegisterWriter::new(RegisterFile::new(&mut via_regs));
    cp.write_all(&mut writer, &mut scratch).unwrap();
    let _ = writer.into_inner();
    assert_eq!(direct.settings(), via_regs.settings());
    for s in 0..16 {
        assert_eq!(direct.service(s), via_regs.service(s));
        assert_eq!(direct.members(s), via_regs.members(s));
        assert_eq!(direct.ring(s), via_regs.ring(s));
    }
    for b in 0..256 {
        assert_eq!(direct.backend(b), via_regs.backend(b));
    }
    // And they forward identically.
    for i in 0..500u16 {
        let f = tcp(
            (ip(203, 0, 113, (i % 250) as u8), 1000 + i),
            (ip(10, 0, 0, 100), 80),
            SYN,
        );
        assert_eq!(send(&mut direct, 1, &f), send(&mut via_regs, 1, &f));
    }
    // The counters read back through the register map are the pipeline's.
    let mut counters = fulcrum_model::counters::Counters::default();
    let mut active = [0u32; 256];
    fulcrum_model::regmap::read_counters(
        &mut RegisterFile::new(&mut via_regs),
        &mut counters,
        &mut active,
    );
    assert_eq!(&counters, via_regs.counters());
    assert_eq!(&active, via_regs.active_flows());
    assert_eq!(counters.rx_frames, 500);
    assert_eq!(
        active.iter().map(|&a| u64::from(a)).sum::<u64>(),
        counters.services[0].new_flows
    );
}

#[test]
fn nothing_is_visible_before_commit() {
    let c = config(&one_service("nat", "maglev", "", 2));
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    let mut owned = Owned::for_config(&c);
    let mut p = owned.pipeline();
    let f = tcp((ip(192, 0, 2, 1), 1), (ip(10, 0, 0, 100), 80), SYN);
    // Write everything but do not commit: the VIP is unknown to the data path.
    use fulcrum_model::tables::TableWriter;
    struct NoCommit<'p, 'a>(&'p mut fulcrum_model::pipeline::Pipeline<'a>);
    impl TableWriter for NoCommit<'_, '_> {
        fn write_settings(&mut self, s: &fulcrum_model::tables::Settings) {
            self.0.write_settings(s)
        }
        fn write_service(&mut self, i: u8, e: &fulcrum_model::tables::ServiceEntry) {
            self.0.write_service(i, e)
        }
        fn write_backend(&mut self, i: u16, e: &fulcrum_model::tables::BackendEntry) {
            self.0.write_backend(i, e)
        }
        fn write_member(&mut self, s: u8, p: u8, b: u16) {
            self.0.write_member(s, p, b)
        }
        fn write_ring(&mut self, s: u8, o: u32, e: &[u16]) {
            self.0.write_ring(s, o, e)
        }
        fn commit(&mut self) {}
    }
    let mut scratch = vec![0u16; 4099];
    cp.write_all(&mut NoCommit(&mut p), &mut scratch).unwrap();
    assert_eq!(
        send(&mut p, 1, &f).0.action,
        Action::Drop(DropReason::NotForUs)
    );
    p.commit();
    assert!(matches!(
        send(&mut p, 1, &f).0.action,
        Action::ToBackend { .. }
    ));
}

#[test]
fn flows_expire_and_aging_releases_active_counts() {
    let (mut owned, cp) = setup(&one_service("nat", "least_connections", "", 2));
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let vip = (ip(10, 0, 0, 100), 80);
    for i in 0..10u16 {
        send(&mut p, 0, &tcp((ip(192, 0, 2, 1), 100 + i), vip, SYN));
    }
    assert_eq!(p.active_flows()[0] + p.active_flows()[1], 10);
    // SYN-only flows time out after 10 s.
    p.age(20_000, 1 << 20);
    assert_eq!(p.active_flows()[0] + p.active_flows()[1], 0);
    assert_eq!(p.counters().expirations, 10);
    assert_eq!(p.flow_table().occupancy(), 0);
}

#[test]
fn shares_track_weights() {
    // Weights 1:2:3:4 over 10,000 new flows from distinct clients.
    for alg in [
        "weighted_round_robin",
        "maglev",
        "ip_hash",
        "least_connections",
        "least_response_time",
    ] {
        let mut text = format!(
            "{BASE}\n[[service]]\nname = \"web\"\nvip = \"10.0.0.100\"\nprotocol = \"tcp\"\nport = 80\nalgorithm = \"{alg}\"\n[service.health]\nkind = \"none\"\n"
        );
        for i in 0..4 {
            text.push_str(&format!(
                "[[service.backend]]\nname = \"b{i}\"\naddress = \"10.0.1.{}\"\nport = 8080\nweight = {}\nmac = \"02:00:00:00:01:{:02x}\"\n",
                11 + i,
                i + 1,
                11 + i
            ));
        }
        let (mut owned, cp) = setup(&text);
        let mut p = owned.pipeline();
        program(&mut p, &cp);
        let mut counts = [0u32; 4];
        let total = 10_000u32;
        for i in 0..total {
            let client = (
                ip(100, (i >> 16) as u8, (i >> 8) as u8, i as u8),
                1024 + (i % 50000) as u16,
            );
            let (v, _) = send(&mut p, 1, &tcp(client, (ip(10, 0, 0, 100), 80), SYN));
            let Action::ToBackend { backend, .. } = v.action else {
                panic!("{alg}: {v:?}")
            };
            counts[usize::from(backend)] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let expected = f64::from(total) * (i + 1) as f64 / 10.0;
            let error = (f64::from(c) - expected).abs() / expected;
            assert!(
                error < 0.05,
                "{alg}: backend {i} got {c}, expected {expected:.0} ({counts:?})"
            );
        }
    }
}
