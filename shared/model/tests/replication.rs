//! High availability in the model: flows and persistence entries copied from a master's
//! tables into a backup's with `install_flow` / `install_sticky` keep their backend and
//! their NAT mapping when the backup takes the traffic. Round robin is used on purpose:
//! it is stateful, so without the replicated flow the backup would drop mid-flow segments.

mod common;

use common::*;
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::counters::DropReason;
use fulcrum_model::flow::FlowEntry;
use fulcrum_model::pipeline::{Action, InstallError};

fn setup(text: &str) -> (Owned, Owned, ControlPlane) {
    let c = config(text);
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    (Owned::for_config(&c), Owned::for_config(&c), cp)
}

fn check_takeover(mode: &str) {
    let (mut m, mut b, cp) = setup(&one_service(
        mode,
        "round_robin",
        "sticky = true\nsticky_timeout = \"60s\"",
        3,
    ));
    let mut master = m.pipeline();
    let mut backup = b.pipeline();
    program(&mut master, &cp);
    program(&mut backup, &cp);
    let vip = (ip(10, 0, 0, 100), 80);
    let clients: Vec<_> = (0..40u16)
        .map(|i| (ip(198, 51, 100, (i % 9) as u8 + 1), 20000 + i))
        .collect();
    let mut on_master = Vec::new();
    for &c in &clients {
        send(&mut master, 100, &tcp(c, vip, SYN));
        let (v, out) = send(&mut master, 101, &tcp(c, vip, ACK));
        assert!(matches!(v.action, Action::ToBackend { .. }), "{v:?}");
        on_master.push((v.action, endpoints(&out)));
    }
    // Replicate: every flow into its slot, every persistence entry by key. The backup's
    // clock is 5 s behind the master's; the idle time is what is carried.
    let (master_now, backup_now) = (101u64, 5_000_101u64);
    for (slot, e) in master.flow_table().slots().iter().enumerate() {
        if e.valid {
            let mut e = *e;
            e.last_seen = (backup_now - (master_now - u64::from(e.last_seen))) as u32;
            assert_eq!(backup.install_flow(slot, e), Ok(None));
        }
    }
    for e in master.sticky_table().slots().iter().filter(|e| e.valid) {
        let mut e = *e;
        e.last_seen = backup_now as u32;
        assert!(backup.install_sticky(backup_now, e));
    }
    assert_eq!(
        backup.flow_table().occupancy(),
        master.flow_table().occupancy()
    );
    assert_eq!(backup.active_flows(), master.active_flows());
    // Takeover: mid-flow segments on the backup go where they went, with the same
    // rewritten endpoints (for full NAT, the same pool address and port).
    for (&c, expected) in clients.iter().zip(&on_master) {
        let (v, out) = send(&mut backup, backup_now + 1, &tcp(c, vip, ACK));
        let Action::ToBackend {
            service,
            backend,
            new_flow,
        } = v.action
        else {
            panic!("{v:?}")
        };
        assert!(!new_flow);
        let Action::ToBackend {
            service: s0,
            backend: b0,
            ..
        } = expected.0
        else {
            unreachable!()
        };
        assert_eq!((service, backend), (s0, b0));
        assert_eq!(endpoints(&out), expected.1, "{mode}: same NAT mapping");
    }
    // A new connection of a known client sticks to its backend on the backup too.
    let (v, _) = send(
        &mut backup,
        backup_now + 2,
        &tcp((clients[0].0, 60000), vip, SYN),
    );
    let Action::ToBackend { backend: first, .. } = on_master[0].0 else {
        unreachable!()
    };
    assert!(
        matches!(v.action, Action::ToBackend { backend, new_flow: true, .. } if backend == first),
        "{v:?}"
    );
}

#[test]
fn nat_flows_survive_takeover() {
    check_takeover("nat");
}

#[test]
fn fullnat_flows_survive_takeover_with_the_same_source_port() {
    check_takeover("fullnat");
}

#[test]
fn without_replication_the_backup_drops_mid_flow_segments() {
    let (mut m, mut b, cp) = setup(&one_service("nat", "round_robin", "", 3));
    let mut master = m.pipeline();
    let mut backup = b.pipeline();
    program(&mut master, &cp);
    program(&mut backup, &cp);
    let c = (ip(198, 51, 100, 1), 20000);
    let vip = (ip(10, 0, 0, 100), 80);
    send(&mut master, 1, &tcp(c, vip, SYN));
    let (v, _) = send(&mut backup, 2, &tcp(c, vip, ACK));
    assert_eq!(v.action, Action::Drop(DropReason::TcpNoFlow));
}

#[test]
fn install_refuses_slots_a_lookup_would_not_find_and_replaces_duplicates() {
    let (mut m, mut b, cp) = setup(&one_service("nat", "round_robin", "", 3));
    let mut master = m.pipeline();
    let mut backup = b.pipeline();
    program(&mut master, &cp);
    program(&mut backup, &cp);
    let c = (ip(198, 51, 100, 1), 20000);
    let vip = (ip(10, 0, 0, 100), 80);
    send(&mut master, 1, &tcp(c, vip, SYN));
    let (slot, entry) = master
        .flow_table()
        .slots()
        .iter()
        .enumerate()
        .find(|(_, e)| e.valid)
        .map(|(s, e)| (s, *e))
        .unwrap();
    let ways = backup.flow_table().ways();
    let other_set = (slot + ways) % backup.flow_table().capacity();
    assert_eq!(
        backup.install_flow(other_set, entry),
        Err(InstallError::WrongSet)
    );
    assert_eq!(
        backup.install_flow(usize::MAX, entry),
        Err(InstallError::SlotOutOfRange)
    );
    assert_eq!(
        backup.install_flow(slot, FlowEntry::default()),
        Err(InstallError::Invalid)
    );
    // The same key in another way of the set is moved, not duplicated.
    let base = slot - slot % ways;
    let other_way = base + (slot - base + 1) % ways;
    assert_eq!(backup.install_flow(other_way, entry), Ok(None));
    assert_eq!(backup.install_flow(slot, entry), Ok(None));
    assert_eq!(backup.flow_table().occupancy(), 1);
    assert_eq!(backup.active_flows()[usize::from(entry.backend)], 1);
    // Removal by key frees it and its active count.
    assert_eq!(backup.remove_flow(&entry.key), Some(entry));
    assert_eq!(backup.remove_flow(&entry.key), None);
    assert_eq!(backup.active_flows()[usize::from(entry.backend)], 0);
    assert_eq!(backup.flow_table().occupancy(), 0);
}
