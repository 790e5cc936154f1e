//! Failures and changes under traffic: a dead backend leaves the rotation within
//! `fall × fastinter` (plus the next check) and no connection started after that fails;
//! established connections to healthy backends never break through health and config
//! changes; source-IP stickiness holds; a config applied mid-traffic takes effect at once.

use std::time::Duration;

use fulcrum_e2e::{CALM_CHECKS, one_service, one_service_checked, simulate};
use fulcrum_sim::scenario::{Drill, DrillAction};

#[test]
fn a_dead_backend_leaves_and_no_new_connection_fails_after() {
    let config = one_service("nat", "round_robin", &[1, 1, 1], "");
    let drills = vec![
        Drill {
            at: Duration::from_secs(2),
            action: DrillAction::Fail("web-2".into()),
        },
        Drill {
            at: Duration::from_secs(5),
            action: DrillAction::Revive("web-2".into()),
        },
    ];
    let summary = simulate(config, 8, 15.0, 7.0, drills, 6);
    let s = &summary.services[0];
    println!(
        "{:?}\n{:?}\n{:?}\nlong-lived {:?}",
        s.per_backend, summary.transitions, s.failure_times, summary.long_lived
    );
    let down = summary
        .transitions
        .iter()
        .find(|t| t.backend == "web-2" && !t.up)
        .expect("web-2 went down");
    // Killed at 2 s; the next check within `inter` (300 ms), then `fall` (3) checks at
    // `fastinter` (100 ms): ≤ 2.6 s plus scheduling slack.
    assert!(
        down.at_s >= 2.0 && down.at_s <= 2.0 + 0.3 + 0.3 + 0.2,
        "down at {:.3}s",
        down.at_s
    );
    // Connections started after it left the rotation never fail (a request takes < 50 ms
    // here; one started before the removal may still time out, retrying its SYN).
    let late: Vec<f64> = s
        .failure_times
        .iter()
        .copied()
        .filter(|t| *t > down.at_s + 3.1)
        .collect();
    assert!(late.is_empty(), "failures after removal: {late:?}");
    assert!(
        summary
            .transitions
            .iter()
            .any(|t| t.backend == "web-2" && t.up && t.at_s > 5.0),
        "web-2 came back"
    );
    // Long-lived connections: only ones on the dead backend may break; none moved.
    let l = &summary.long_lived;
    assert_eq!(l.connections, 6);
    assert!(l.broken_on.iter().all(|b| b == "web-2"), "{l:?}");
    assert_eq!(l.moved, 0, "{l:?}");
}

#[test]
fn config_and_weight_changes_mid_traffic_take_effect_and_break_nothing() {
    let config = one_service_checked("nat", "maglev", &[1, 1, 1], "", CALM_CHECKS);
    // At 2 s web-3 goes (removed from the config) and web-4 comes; at 4 s web-1 weighs 5.
    let mut next = config.clone();
    let last = next.services[0].backends.len() - 1;
    let web3 = next.remove_backend(0, last).unwrap();
    let mut web4 = web3.clone();
    web4.name = "web-4".try_into().unwrap();
    web4.address = "10.0.1.14".parse().unwrap();
    // The virtual backends are built from the first config: web-4 reuses web-3's host.
    web4.address = web3.address;
    next.push_backend(0, web4).unwrap();
    let drills = vec![
        Drill {
            at: Duration::from_secs(2),
            action: DrillAction::Apply(Box::new(next)),
        },
        Drill {
            at: Duration::from_secs(4),
            action: DrillAction::Weight("web".into(), "web-1".into(), 5),
        },
    ];
    let summary = simulate(config, 8, 15.0, 6.0, drills, 4);
    let s = &summary.services[0];
    println!(
        "{:?}\nphases {:?}\nlong-lived {:?}\n{:?}",
        s.per_backend, s.per_backend_by_phase, summary.long_lived, summary.drills
    );
    assert_eq!(s.failed, 0, "{:?}", s.failure_times);
    assert!(
        summary.drills.iter().all(|(_, d)| !d.contains("FAILED")),
        "{:?}",
        summary.drills
    );
    // After the weight change web-1 takes about 5 of 7 shares of new connections.
    let last = s.per_backend_by_phase.last().unwrap();
    let total: u64 = last.values().sum();
    let web1 = *last.get("web-1").unwrap_or(&0) as f64 / total as f64;
    assert!(
        (web1 - 5.0 / 7.0).abs() < 0.12,
        "web-1 share {web1:.3} after weight 5 ({last:?})"
    );
    let l = &summary.long_lived;
    assert_eq!(
        (l.failures, l.moved),
        (0, 0),
        "established connections survived: {l:?}"
    );
}

#[test]
fn source_ip_stickiness_holds_across_connections() {
    let config = one_service_checked(
        "nat",
        "round_robin",
        &[1, 1, 1],
        "sticky = true\n",
        CALM_CHECKS,
    );
    let summary = simulate(config, 12, 10.0, 3.0, vec![], 0);
    let s = &summary.services[0];
    assert_eq!(s.failed, 0);
    let mut used = std::collections::BTreeSet::new();
    for (client, backends) in &s.per_client {
        assert_eq!(backends.len(), 1, "{client} moved between {backends:?}");
        used.extend(backends.keys().cloned());
        assert!(
            backends.values().sum::<u64>() >= 10,
            "{client} made enough connections"
        );
    }
    assert_eq!(
        used.len(),
        3,
        "clients still spread over the backends: {:?}",
        s.per_client
    );
}

#[test]
fn the_data_path_keeps_forwarding_when_the_mcu_stops() {
    let config = one_service("fullnat", "maglev", &[1, 2, 3], "");
    let drills = vec![Drill {
        at: Duration::from_millis(1500),
        action: DrillAction::HaltMcu,
    }];
    let summary = simulate(config, 8, 15.0, 4.5, drills, 4);
    let s = &summary.services[0];
    println!(
        "{:?} failures {:?} long-lived {:?}",
        s.per_backend_by_phase, s.failure_times, summary.long_lived
    );
    assert_eq!(s.failed, 0, "fail-static: {:?}", s.failure_times);
    let after = s
        .per_backend_by_phase
        .get(1)
        .map(|p| p.values().sum::<u64>())
        .unwrap_or(0);
    assert!(
        after >= 100,
        "traffic went on after the MCU stopped ({after} answers)"
    );
    let l = &summary.long_lived;
    assert_eq!((l.failures, l.moved), (0, 0), "{l:?}");
}
