//! The data path's change log as HA uses it: a master's log, drained through the change
//! registers and written into a backup through the replica window, rebuilds the master's
//! tables — every flow in its slot with its backend, state, generation and client MAC
//! (so the full-NAT port is the same), every persistence entry — while flows are created,
//! established, closed, moved by an eviction and aged out. `last_seen` may lag by at most
//! a quarter of the flow's timeout (refreshes are logged once per quarter period).

mod common;

use common::*;
use fulcrum_model::changelog::{self, ChangeRegisters, RECORD_WORDS, addr};
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::pipeline::Pipeline;

/// Pops every waiting record from `master` and installs it into `backup`, register by
/// register, as the MCU does. Returns the records moved.
fn replicate(
    m_regs: &mut ChangeRegisters,
    master: &mut Pipeline<'_>,
    b_regs: &mut ChangeRegisters,
    backup: &mut Pipeline<'_>,
    now: u64,
) -> usize {
    let waiting = (m_regs.read32(master, addr::CHANGE_STATUS) & 0xFFFF) as usize;
    for _ in 0..waiting {
        m_regs.write32(master, now, addr::CHANGE_POP, 0);
        let mut w = [0u32; RECORD_WORDS];
        for (i, x) in w.iter_mut().enumerate() {
            *x = m_regs.read32(master, addr::RECORD + i as u16);
        }
        assert!(changelog::decode(&w).is_some(), "{w:x?}");
        for (i, x) in w.iter().enumerate() {
            b_regs.write32(backup, now, addr::RECORD + i as u16, *x);
        }
        b_regs.write32(backup, now, addr::INSTALL, 0);
    }
    waiting
}

#[test]
fn a_drained_change_log_rebuilds_the_masters_tables() {
    let text = one_service(
        "fullnat",
        "round_robin",
        "sticky = true\nsticky_timeout = \"60s\"",
        3,
    )
    .replace("sets = 1024", "sets = 16");
    let c = config(&text);
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    let (mut mo, mut bo) = (Owned::for_config(&c), Owned::for_config(&c));
    let (mut master, mut backup) = (mo.pipeline(), bo.pipeline());
    program(&mut master, &cp);
    program(&mut backup, &cp);
    let (mut m_regs, mut b_regs) = (ChangeRegisters::new(), ChangeRegisters::new());
    m_regs.write32(&mut master, 0, addr::CHANGE_CTRL, 1);

    let vip = (ip(10, 0, 0, 100), 80);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut moved = 0;
    let mut open: Vec<(std::net::Ipv4Addr, u16)> = Vec::new();
    for step in 0..4_000u64 {
        let now = 1_000 + step * 7;
        let r = rand();
        // 64 sets × 4 ways for up to a few hundred live flows: evictions happen.
        if open.is_empty() || r % 3 == 0 {
            let c = (
                ip(198, 51, 100, (r >> 8) as u8 % 40 + 1),
                10_000 + (step as u16),
            );
            send(&mut master, now, &tcp(c, vip, SYN));
            open.push(c);
        } else {
            let i = (r >> 16) as usize % open.len();
            let c = open[i];
            let flags = if r % 11 == 0 { FIN } else { ACK };
            send(&mut master, now, &tcp(c, vip, flags));
            if r % 11 == 0 {
                open.swap_remove(i);
            }
        }
        if step % 50 == 0 {
            master.age(now, 64);
        }
        moved += replicate(&mut m_regs, &mut master, &mut b_regs, &mut backup, now);
    }
    assert!(!master.change_log().overflowed());
    assert!(moved > 2_000, "{moved} records");
    assert_eq!(b_regs.read32(&backup, addr::INSTALL_REFUSED), 0);
    let settings = *master.settings();
    let (mf, bf) = (master.flow_table().slots(), backup.flow_table().slots());
    let mut flows = 0;
    for (slot, (m, b)) in mf.iter().zip(bf.iter()).enumerate() {
        let (mut m2, mut b2) = (*m, *b);
        m2.last_seen = 0;
        b2.last_seen = 0;
        assert_eq!(m2, b2, "slot {slot}");
        if m.valid {
            flows += 1;
            let lag = m.last_seen.wrapping_sub(b.last_seen);
            assert!(
                lag <= m.state.timeout(&settings) / 4,
                "slot {slot}: {lag} ms"
            );
        }
    }
    assert!(flows > 40, "{flows} live flows");
    let key = |e: &fulcrum_model::flow::StickyEntry| (e.service, e.client, e.backend, e.generation);
    let mut ms: Vec<_> = master
        .sticky_table()
        .slots()
        .iter()
        .filter(|e| e.valid)
        .map(key)
        .collect();
    let mut bs: Vec<_> = backup
        .sticky_table()
        .slots()
        .iter()
        .filter(|e| e.valid)
        .map(key)
        .collect();
    ms.sort();
    bs.sort();
    assert_eq!(ms, bs);
    assert!(
        master.counters().evictions > 0,
        "the run should evict live flows"
    );
}

#[test]
fn a_full_log_says_so_and_nothing_is_logged_while_off() {
    let c = config(&one_service("nat", "round_robin", "", 2));
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    let mut o = Owned::for_config(&c);
    let mut p = o.pipeline();
    program(&mut p, &cp);
    let mut regs = ChangeRegisters::new();
    let vip = (ip(10, 0, 0, 100), 80);
    send(&mut p, 1, &tcp((ip(198, 51, 100, 1), 1), vip, SYN));
    assert_eq!(regs.read32(&p, addr::CHANGE_STATUS), 0, "off by default");
    regs.write32(&mut p, 1, addr::CHANGE_CTRL, 1);
    for port in 0..(changelog::CAPACITY as u16 + 10) {
        send(&mut p, 2, &tcp((ip(198, 51, 100, 2), 100 + port), vip, SYN));
    }
    let status = regs.read32(&p, addr::CHANGE_STATUS);
    assert_eq!(status, 0x8000_0000 | changelog::CAPACITY as u32);
    // Clearing the flag (CTRL bit 1) keeps logging on.
    regs.write32(&mut p, 2, addr::CHANGE_CTRL, 3);
    assert_eq!(regs.read32(&p, addr::CHANGE_STATUS) >> 31, 0);
    // Off empties the FIFO.
    regs.write32(&mut p, 2, addr::CHANGE_CTRL, 0);
    assert_eq!(regs.read32(&p, addr::CHANGE_STATUS), 0);
}

/// `INSTALL` with bit 0 ("keep own", what a master does with a peer's records): a
/// record never replaces another flow in its slot, nor removes one; the same flow is
/// still updated. Without the bit the record wins, as on a backup.
#[test]
fn keep_own_installs_never_replace_or_remove_another_flow() {
    let c =
        config(&one_service("fullnat", "round_robin", "", 2).replace("sets = 1024", "sets = 16"));
    let mut cp = ControlPlane::new();
    cp.apply(&c).unwrap();
    let mut o = Owned::for_config(&c);
    let mut p = o.pipeline();
    program(&mut p, &cp);
    let mut regs = ChangeRegisters::new();
    let vip = (ip(10, 0, 0, 100), 80);
    // Flows until two share a set (16 sets × 4 ways): `mine` in way 0 of it.
    let mut by_set: std::collections::HashMap<usize, usize> = Default::default();
    let mut pair = None;
    for port in 0..64u16 {
        send(
            &mut p,
            1,
            &tcp((ip(198, 51, 100, 1), 1_000 + port), vip, SYN),
        );
        for (slot, e) in p.flow_table().slots().iter().enumerate() {
            if e.valid && e.key.src_port == 1_000 + port {
                if let Some(&other) = by_set.get(&(slot / 4)) {
                    pair = Some((other, slot));
                }
                by_set.insert(slot / 4, slot);
            }
        }
        if pair.is_some() {
            break;
        }
    }
    let (mine_slot, theirs_slot) = pair.expect("two flows in one set");
    let mine = p.flow_table().slots()[mine_slot];
    let theirs = p.flow_table().slots()[theirs_slot];
    let mut install = |p: &mut Pipeline<'_>, change: &changelog::TableChange, keep: bool| {
        for (i, w) in changelog::encode(change).iter().enumerate() {
            regs.write32(p, 2, addr::RECORD + i as u16, *w);
        }
        regs.write32(p, 2, addr::INSTALL, u32::from(keep));
        regs.read32(p, addr::INSTALL_REFUSED)
    };
    // A peer's flow aimed at the slot of one of ours: refused with "keep own".
    let over = changelog::TableChange::Flow {
        slot: mine_slot as u32,
        entry: theirs,
    };
    assert_eq!(install(&mut p, &over, true), 1);
    assert_eq!(p.flow_table().slots()[mine_slot], mine);
    assert_eq!(p.flow_table().slots()[theirs_slot], theirs);
    // Removals are ignored.
    let remove = changelog::TableChange::FlowRemoved {
        slot: mine_slot as u32,
        key: mine.key,
    };
    assert_eq!(install(&mut p, &remove, true), 1);
    assert_eq!(p.flow_table().slots()[mine_slot], mine);
    // The same flow is updated.
    let mut newer = mine;
    newer.state = fulcrum_model::flow::FlowState::Established;
    let same = changelog::TableChange::Flow {
        slot: mine_slot as u32,
        entry: newer,
    };
    assert_eq!(install(&mut p, &same, true), 1);
    assert_eq!(p.flow_table().slots()[mine_slot].state, newer.state);
    // Without the bit (a backup), the record wins: the slot takes the peer's flow and
    // the other copy of its key goes.
    assert_eq!(install(&mut p, &over, false), 1);
    assert_eq!(p.flow_table().slots()[mine_slot].key, theirs.key);
    assert!(!p.flow_table().slots()[theirs_slot].valid);
}
