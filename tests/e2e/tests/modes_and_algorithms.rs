//! Every rewrite mode carries real TCP traffic from clients behind a router to backends
//! (DSR and tunnel backends hold the VIP and decapsulate), and every algorithm spreads it
//! as its weights say. Tolerance: ±10 percentage points of each backend's expected share
//! (a few hundred requests per run).

use fulcrum_e2e::{
    CALM_CHECKS, one_service, one_service_checked, one_udp_service, shares, simulate,
};

const NAMES: [&str; 3] = ["web-1", "web-2", "web-3"];

fn expect_shares(got: &[f64], want: &[f64], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 0.10,
            "{what}: {} got {:.3}, expected {:.3} (all: {got:?})",
            NAMES[i],
            g,
            w
        );
    }
}

#[test]
fn every_mode_carries_traffic_in_proportion_to_weights() {
    for mode in ["nat", "fullnat", "dsr", "ipip", "gue"] {
        let summary = simulate(
            one_service_checked(mode, "maglev", &[1, 2, 3], "", CALM_CHECKS),
            8,
            15.0,
            3.0,
            vec![],
            0,
        );
        let s = &summary.services[0];
        println!(
            "{mode}: sent {} ok {} failed {} {:?}",
            s.sent, s.succeeded, s.failed, s.per_backend
        );
        assert!(s.sent >= 150, "{mode}: {} requests", s.sent);
        assert_eq!(s.failed, 0, "{mode}: failures at {:?}", s.failure_times);
        expect_shares(
            &shares(&summary, &NAMES),
            &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0],
            mode,
        );
    }
}

#[test]
fn every_mode_carries_udp_in_proportion_to_weights() {
    // Datagrams: every one is a new flow for round robin; Maglev keeps a client's
    // 5-tuple on one backend, and clients use a fresh source port per request.
    for mode in ["nat", "fullnat", "dsr", "ipip", "gue"] {
        let summary = simulate(
            one_udp_service(mode, "maglev", &[1, 2, 3]),
            8,
            15.0,
            3.0,
            vec![],
            0,
        );
        let s = &summary.services[0];
        println!(
            "udp {mode}: sent {} ok {} failed {} {:?}",
            s.sent, s.succeeded, s.failed, s.per_backend
        );
        assert!(s.sent >= 150, "udp {mode}: {} requests", s.sent);
        assert_eq!(s.failed, 0, "udp {mode}: failures at {:?}", s.failure_times);
        expect_shares(
            &shares(&summary, &NAMES),
            &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0],
            &format!("udp {mode}"),
        );
    }
}

#[test]
fn every_algorithm_spreads_as_its_weights_say() {
    let cases: [(&str, [f64; 3]); 5] = [
        ("round_robin", [1.0 / 3.0; 3]),
        ("weighted_round_robin", [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]),
        ("maglev", [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]),
        ("least_connections", [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]),
        ("ip_hash", [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]),
    ];
    for (algorithm, want) in cases {
        // IP hash spreads clients, not requests: many clients.
        let clients = if algorithm == "ip_hash" { 120 } else { 8 };
        let rate = if algorithm == "ip_hash" { 1.5 } else { 15.0 };
        let summary = simulate(
            one_service_checked("nat", algorithm, &[1, 2, 3], "", CALM_CHECKS),
            clients,
            rate,
            3.0,
            vec![],
            0,
        );
        let s = &summary.services[0];
        println!(
            "{algorithm}: sent {} failed {} {:?}",
            s.sent, s.failed, s.per_backend
        );
        assert_eq!(
            s.failed, 0,
            "{algorithm}: failures at {:?}",
            s.failure_times
        );
        let got = if algorithm == "ip_hash" {
            // Share of clients, each counted once on the backend it was pinned to.
            let mut per = [0.0f64; 3];
            for backends in s.per_client.values() {
                assert_eq!(backends.len(), 1, "ip_hash pins a client: {backends:?}");
                let b = backends.keys().next().unwrap();
                per[NAMES.iter().position(|n| n == b).unwrap()] += 1.0;
            }
            let n: f64 = per.iter().sum();
            per.iter().map(|x| x / n).collect()
        } else {
            shares(&summary, &NAMES)
        };
        expect_shares(&got, &want, algorithm);
    }
}

#[test]
fn least_response_time_prefers_the_fast_backend() {
    use fulcrum_sim::scenario::{Drill, DrillAction};
    use std::time::Duration;
    let config = one_service("nat", "least_response_time", &[1, 1, 1], "");
    // web-3 answers after 30 ms (its checks too): it should get the least new traffic.
    let drills = vec![Drill {
        at: Duration::ZERO,
        action: DrillAction::Slow("web-3".into(), 30),
    }];
    let summary = simulate(config, 8, 15.0, 4.0, drills, 0);
    let s = &summary.services[0];
    println!(
        "lrt: {:?} phases {:?}",
        s.per_backend, s.per_backend_by_phase
    );
    assert_eq!(s.failed, 0);
    let got = shares(&summary, &NAMES);
    assert!(
        got[2] < got[0] && got[2] < got[1],
        "slow web-3 got {:.3} ({got:?})",
        got[2]
    );
}
