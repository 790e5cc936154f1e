//! The HA runner's core (`fulcrum_firmware::ha::Ha`) in virtual time, with the data path
//! behind the register map exactly as the boards have it: flow changes come from the
//! model's change log (drained through `CHANGE_STATUS`/`CHANGE_POP`/`RECORD`), replicas go
//! in through the replica window (`RECORD` + `INSTALL`), snapshots are read back with
//! `FLOW_READ`/`STICKY_READ`. Two appliances, full NAT with persistence, a connection
//! every 4 ms and a data segment every ms through the master; the master crashes, the
//! backup takes over within `Master_Down_Interval`, every connection keeps its backend
//! and its NAT source; the old master restarts empty, re-synchronises, then preempts,
//! without flapping. Deterministic (unlike the wall-clock drill in `boards/sim`).

#[path = "common/ha.rs"]
mod ha_common;

use fulcrum_firmware::flowsync::MAX_MESSAGE;
use fulcrum_firmware::ha::Ha;
use fulcrum_firmware::vrrp::{MAX_ADVERT_FRAME, Role};
use fulcrum_mgmt::ha::HaRole;
use fulcrum_mgmt::message::EventKind;
use fulcrum_model::changelog::{self, ChangeRegisters};
use fulcrum_model::flow::FlowEntry;
use fulcrum_model::ha::SyncMode;
use fulcrum_model::pipeline::{Action, OUT_HEADROOM, Pipeline, Port};
use fulcrum_model::regmap::RegisterBus;
use ha_common::{ADDRS, Connection, config, config_with, key, mapping, pipeline, tcp};

/// The data path as the MCU sees it: only the change-log registers matter here.
struct Bus<'a> {
    pipeline: &'a mut Pipeline<'static>,
    regs: &'a mut ChangeRegisters,
    now: u64,
}

impl RegisterBus for Bus<'_> {
    fn write32(&mut self, addr: u16, value: u32) {
        assert!(changelog::addr::contains(addr), "{addr:#x}");
        self.regs.write32(self.pipeline, self.now, addr, value);
    }
    fn read32(&mut self, addr: u16) -> u32 {
        assert!(changelog::addr::contains(addr), "{addr:#x}");
        self.regs.read32(self.pipeline, addr)
    }
}

struct Node {
    ha: Ha<1>,
    pipeline: Pipeline<'static>,
    regs: ChangeRegisters,
    alive: bool,
    events: Vec<(u64, EventKind)>,
}

fn node(i: usize, priority: u8, boot: u64) -> Node {
    let c = config(i, priority);
    Node {
        ha: Ha::new(&c, &key(), boot * 1000 + i as u64, boot * 7777 + i as u64).unwrap(),
        pipeline: pipeline(&c, 8192),
        regs: ChangeRegisters::new(),
        alive: true,
        events: Vec::new(),
    }
}

struct World {
    nodes: Vec<Node>,
    /// (deliver at, from, is VRRP, bytes)
    wire: Vec<(u64, usize, bool, Vec<u8>)>,
    now: u64,
    /// (client, port), (backend, NAT source), opened at.
    connections: Vec<Connection>,
    next_port: u16,
    crash: Option<u64>,
    broken: Vec<String>,
    lost_in_flight: usize,
    evicted: std::collections::HashSet<(u8, u16)>,
    /// With a learning switch: client frames go to the node whose VRRP frame (advert or
    /// gratuitous ARP, from the virtual MAC) was seen last, and only a master takes them
    /// (the port's MAC filter); without, to the first live master.
    switch: Option<Option<usize>>,
    /// Nothing reaches this node (adverts, sync) before this time: a node that has just
    /// booted and does not hear its peer yet.
    deaf_until: Option<(usize, u64)>,
}

impl World {
    fn new(nodes: Vec<Node>) -> World {
        World {
            nodes,
            wire: Vec::new(),
            now: 0,
            connections: Vec::new(),
            next_port: 10_000,
            crash: None,
            broken: Vec::new(),
            lost_in_flight: 0,
            evicted: Default::default(),
            switch: None,
            deaf_until: None,
        }
    }

    fn master(&self) -> Option<usize> {
        let master =
            |i: usize| self.nodes[i].alive && self.nodes[i].ha.router().role() == Role::Master;
        match self.switch {
            Some(port) => port.filter(|&i| master(i)),
            None => (0..2).find(|&i| master(i)),
        }
    }

    fn client_frame(&mut self, frame: &[u8]) -> Option<(Action, Vec<u8>)> {
        let m = self.master()?;
        let n = &mut self.nodes[m];
        let before: Vec<FlowEntry> = n.pipeline.flow_table().slots().to_vec();
        let mut out = vec![0u8; frame.len() + OUT_HEADROOM];
        let v = n.pipeline.process(self.now, frame, Port::Network, &mut out);
        for (old, new) in before.iter().zip(n.pipeline.flow_table().slots()) {
            if old.valid && old.key != new.key {
                self.evicted.insert((old.key.src[3], old.key.src_port));
            }
        }
        out.truncate(v.len);
        Some((v.action, out))
    }

    fn check(&mut self, i: usize) {
        let ((client, port), expected, opened) = self.connections[i];
        if self.evicted.contains(&(client, port)) {
            return;
        }
        if let Some((v, out)) = self.client_frame(&tcp(client, port, false))
            && mapping(v, &out) != Some(expected)
        {
            // A flow made in the last sync round trip (about 2 ms here) before the crash.
            if self.crash.is_some_and(|c| opened + 3 >= c && opened <= c) {
                self.lost_in_flight += 1;
                self.evicted.insert((client, port));
                return;
            }
            self.broken.push(format!(
                "{} ms: {client}:{port} (opened at {opened}) expected {expected:?}, got {v:?}",
                self.now
            ));
        }
    }

    fn step(&mut self, traffic: bool) {
        self.now += 1;
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
            .into_iter()
            .partition(|m| m.0 <= now);
        self.wire = rest;
        for (_, from, vrrp, bytes) in due {
            if self
                .deaf_until
                .is_some_and(|(node, until)| node == 1 - from && now < until)
            {
                continue;
            }
            let n = &mut self.nodes[1 - from];
            if !n.alive {
                continue;
            }
            if vrrp {
                n.ha.handle_vrrp(now, &bytes[14..]);
            } else {
                let mut bus = Bus {
                    pipeline: &mut n.pipeline,
                    regs: &mut n.regs,
                    now,
                };
                n.ha.handle_sync(now, ADDRS[from], &bytes, &mut bus);
            }
        }
        for i in 0..2 {
            let n = &mut self.nodes[i];
            if !n.alive {
                continue;
            }
            let mut bus = Bus {
                pipeline: &mut n.pipeline,
                regs: &mut n.regs,
                now,
            };
            n.ha.handle_timeout(now);
            n.ha.drain_changes(now, &mut bus);
            let mut frame = [0u8; MAX_ADVERT_FRAME];
            while let Some(len) = n.ha.poll_frame(&mut frame) {
                if let Some(port) = &mut self.switch {
                    *port = Some(i);
                }
                if frame[12..14] == [0x08, 0x00] {
                    self.wire.push((now + 1, i, true, frame[..len].to_vec()));
                }
            }
            let mut buf = vec![0u8; MAX_MESSAGE];
            let mut idle_calls = 0;
            loop {
                let Some((peer, len)) = n.ha.poll_sync(now, &mut bus, &mut buf) else {
                    // A snapshot is read in bounded steps: like `net::ha_loop`, call again
                    // at once while there is work now.
                    idle_calls += 1;
                    if idle_calls < 1_000 && n.ha.poll_timeout().is_some_and(|t| t <= now) {
                        continue;
                    }
                    break;
                };
                assert_eq!(peer, ADDRS[1 - i]);
                self.wire.push((now + 1, i, false, buf[..len].to_vec()));
            }
            while let Some(e) = n.ha.poll_event() {
                n.events.push((now, e));
            }
        }
        if traffic {
            let client = (now % 50) as u8 + 1;
            if now.is_multiple_of(4) {
                let port = self.next_port;
                if let Some((v, out)) = self.client_frame(&tcp(client, port, true)) {
                    self.next_port += 1;
                    if let Some(m) = mapping(v, &out) {
                        self.connections.push(((client, port), m, now));
                    }
                }
            }
            if !self.connections.is_empty() {
                let i = (now as usize * 7919) % self.connections.len();
                self.check(i);
            }
        }
    }
}

fn masters(events: &[(u64, EventKind)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                EventKind::HaRoleChanged {
                    to: HaRole::Master,
                    ..
                }
            )
        })
        .map(|(t, _)| *t)
        .collect()
}

/// When the node first logged that it holds its peer's table.
fn synced_at(events: &[(u64, EventKind)]) -> u64 {
    events
        .iter()
        .find(|(_, e)| matches!(e, EventKind::HaSynced { .. }))
        .map(|(t, _)| *t)
        .expect("synchronised")
}

#[test]
fn the_runner_core_takes_over_keeps_connections_and_rejoins_through_the_register_map() {
    let mut w = World::new(vec![node(0, 200, 1), node(1, 100, 1)]);
    for n in &mut w.nodes {
        n.ha.startup(0);
    }
    while w.now < 2_000 {
        w.step(w.now >= 100);
    }
    assert_eq!(w.master(), Some(0));
    assert!(w.nodes[1].ha.links()[0].1.synced());
    let before = w.connections.len();
    assert!(before > 400, "{before}");
    let applied = w.nodes[1].ha.links()[0].1.stats().records_applied;
    println!("{before} connections, backup applied {applied} records from the change log");

    w.nodes[0].alive = false;
    let crash = w.now;
    w.crash = Some(crash);
    while w.now < 3_000 {
        w.step(true);
    }
    let took = masters(&w.nodes[1].events)[0] - crash;
    println!("takeover {took} ms after the crash");
    assert!(took < 50, "{took} ms");
    for i in 0..before {
        w.check(i);
    }
    assert_eq!(w.broken, Vec::<String>::new());

    w.nodes[0] = node(0, 200, 2);
    w.nodes[0].ha.startup(w.now);
    let rejoin = w.now;
    while w.now < 5_000 {
        w.step(true);
    }
    let synced = synced_at(&w.nodes[0].events);
    let m0 = masters(&w.nodes[0].events);
    println!(
        "rejoin: synchronised {} ms after restart, master {} ms after restart",
        synced - rejoin,
        m0[0] - rejoin
    );
    assert_eq!(m0.len(), 1, "no flapping");
    assert!(m0[0] >= synced, "preempted before it was synchronised");
    assert_eq!(masters(&w.nodes[1].events).len(), 1, "no flapping");
    assert_eq!(w.master(), Some(0));
    for i in 0..w.connections.len() {
        w.check(i);
    }
    assert_eq!(w.broken, Vec::<String>::new());
    assert!(w.lost_in_flight <= 1, "{}", w.lost_in_flight);
    println!(
        "{} connections checked after both handovers; {} lost in flight at the crash",
        w.connections.len(),
        w.lost_in_flight
    );
}

/// A restarted node that hears nothing from its peer in its first `Master_Down_Interval`
/// (its data path and stack just starting, or a starved process, as seen in the drill
/// under machine load) becomes master with an empty flow table. When the two then hear
/// each other, the master that holds the flows must keep the traffic, whatever the
/// priorities: the empty one (priority 200 here, against 100) yields, synchronises, and
/// only then preempts. Before the fix it won the split brain on priority and every
/// connection broke.
#[test]
fn a_restarted_node_that_became_master_empty_yields_to_the_master_with_the_flows() {
    let mut w = World::new(vec![node(0, 200, 1), node(1, 100, 1)]);
    w.switch = Some(None);
    for n in &mut w.nodes {
        n.ha.startup(0);
    }
    while w.now < 2_000 {
        w.step(w.now >= 100);
    }
    assert_eq!(w.master(), Some(0));
    w.nodes[0].alive = false;
    w.crash = Some(w.now);
    while w.now < 3_000 {
        w.step(true);
    }
    assert_eq!(w.master(), Some(1));
    assert!(w.nodes[1].ha.holds_table());

    // The old master restarts empty and hears nothing for its first 60 ms.
    w.nodes[0] = node(0, 200, 2);
    w.nodes[0].ha.startup(w.now);
    let restart = w.now;
    w.deaf_until = Some((0, restart + 60));
    let mut both_masters_ms = 0;
    let mut empty_master_won = false;
    let mut split_probes_lost = None;
    while w.now < 5_000 {
        w.step(true);
        let roles = [0, 1].map(|i| w.nodes[i].ha.router().role());
        if split_probes_lost.is_none() && w.now > restart + 60 && roles[0] == Role::Backup {
            // While the deaf node was master too, the switch sent it some packets (it
            // follows whoever advertised last): those are lost packets of the split,
            // which the clients retransmit; the connections are checked again below.
            split_probes_lost = Some(std::mem::take(&mut w.broken).len());
        }
        if roles == [Role::Master, Role::Master] && w.now >= restart + 60 {
            both_masters_ms += 1;
        }
        // The node with the flows never yields to the one without them.
        if roles[1] == Role::Backup && !w.nodes[0].ha.holds_table() {
            empty_master_won = true;
        }
    }
    assert!(
        !empty_master_won,
        "the master with the flows yielded to the empty one"
    );
    let m0 = masters(&w.nodes[0].events);
    let synced = synced_at(&w.nodes[0].events);
    println!(
        "restarted node: master (empty) {} ms after restart, both masters for {both_masters_ms} ms once it hears, synchronised after {} ms, master again after {} ms",
        m0[0] - restart,
        synced - restart,
        m0.last().unwrap() - restart
    );
    assert!(
        m0[0] < restart + 60,
        "the restarted node did not take over deaf: {m0:?}"
    );
    assert!(both_masters_ms <= 15, "{both_masters_ms} ms of two masters");
    assert_eq!(
        m0.len(),
        2,
        "empty blip, then the preemption after sync: {m0:?}"
    );
    assert!(*m0.last().unwrap() >= synced);
    assert_eq!(
        masters(&w.nodes[1].events).len(),
        1,
        "edge-1 became master once"
    );
    assert_eq!(w.master(), Some(0));
    for i in 0..w.connections.len() {
        w.check(i);
    }
    println!(
        "{} connections checked, {} broken, {} lost in flight at the crash, {} probes lost during the split",
        w.connections.len(),
        w.broken.len(),
        w.lost_in_flight,
        split_probes_lost.unwrap_or(0)
    );
    assert!(w.lost_in_flight <= 1, "{}", w.lost_in_flight);
    assert_eq!(w.broken, Vec::<String>::new());
}

/// HA settings pushed while running take effect at once: a backup given a higher
/// priority preempts, a new advert interval is advertised (and learned by the backup),
/// and what cannot change live (the VRID of the master, removing `[appliance.ha]`) is
/// refused without changing anything. Connections survive the handover it causes.
#[test]
fn ha_settings_apply_at_once_and_what_cannot_change_live_is_refused() {
    let mut w = World::new(vec![node(0, 200, 1), node(1, 100, 1)]);
    for n in &mut w.nodes {
        n.ha.startup(0);
    }
    while w.now < 2_000 {
        w.step(w.now >= 100);
    }
    assert_eq!(w.master(), Some(0));
    // The master's VRID cannot change: refused, nothing changed.
    let vrid43 = config_with(0, 200, |t| t.replace("vrid = 42", "vrid = 43"));
    let err = w.nodes[0].ha.reconfigure(w.now, &vrid43).unwrap_err();
    assert!(err.contains("vrid"), "{err}");
    assert_eq!(w.nodes[0].ha.router().config().vrid, 42);
    // Nor can HA be removed while it runs.
    let without = config_with(1, 100, |t| {
        let start = t.find("[appliance.ha]").unwrap();
        let end = t.find("[[service]]").unwrap();
        format!("{}{}", &t[..start], &t[end..])
    });
    assert!(w.nodes[1].ha.check_config(&without).is_err());

    // The backup gets priority 250: it preempts (it holds the table) at once.
    let pushed = w.now;
    w.nodes[1]
        .ha
        .reconfigure(pushed, &config_with(1, 250, |t| t))
        .unwrap();
    while w.now < pushed + 200 {
        w.step(true);
    }
    let m1 = masters(&w.nodes[1].events);
    let took = m1.last().unwrap() - pushed;
    println!("priority 100 -> 250 on the backup: master {took} ms after the push");
    assert!(took <= 50, "{took} ms");
    assert_eq!(w.master(), Some(1));
    assert_eq!(w.nodes[0].ha.router().role(), Role::Backup);
    let status = w.nodes[1].ha.status(w.now, 0);
    assert_eq!((status.priority, status.configured_priority), (250, 250));

    // The new master's advert interval becomes 50 ms: the backup learns it from the
    // next advert (its Master_Down_Interval follows).
    let pushed = w.now;
    let slow = config_with(1, 250, |t| t.replace("\"10ms\"", "\"50ms\""));
    w.nodes[1].ha.reconfigure(pushed, &slow).unwrap();
    while w.now < pushed + 20 {
        w.step(true);
    }
    assert_eq!(w.nodes[0].ha.router().master_adver_interval_ms(), 50);
    let mdi = w.nodes[0].ha.router().master_down_interval_ms();
    println!("advert interval 10 -> 50 ms: the backup's Master_Down_Interval is {mdi} ms");
    assert_eq!(mdi, 3 * 50 + (256 - 200) * 50 / 256);
    while w.now < pushed + 1_000 {
        w.step(true);
    }
    // Stable at the new interval: nobody took over, one master.
    assert_eq!(masters(&w.nodes[1].events).len(), m1.len());
    assert_eq!(w.master(), Some(1));
    for i in 0..w.connections.len() {
        w.check(i);
    }
    assert_eq!(w.broken, Vec::<String>::new());

    // A new sync mode sets the links up again (in place, as the MCU keeps them): both
    // sides start over with a hello, and the backup holds the master's complete table
    // again (only the master sends).
    let pushed = w.now;
    for (i, priority) in [(0, 200), (1, 250)] {
        let mode = config_with(i, priority, |t| {
            t.replace("\"10ms\"", "\"50ms\"")
                .replace("peers = ", "sync = \"owner_backup\"\npeers = ")
        });
        w.nodes[i].ha.reconfigure(pushed, &mode).unwrap();
        let link = &w.nodes[i].ha.links()[0].1;
        assert_eq!(link.mode(), SyncMode::OwnerBackup);
        assert!(!link.synced() && !link.connected());
    }
    while w.now < pushed + 1_000 {
        w.step(true);
    }
    let (backup, master) = (&w.nodes[0].ha.links()[0].1, &w.nodes[1].ha.links()[0].1);
    assert!(
        backup.synced(),
        "the backup holds the master's table after the rebuild"
    );
    assert!(master.peer_synced(), "and the master knows it");
    assert_eq!(w.master(), Some(1));
    for i in 0..w.connections.len() {
        w.check(i);
    }
    assert_eq!(w.broken, Vec::<String>::new());

    // Through the appliance's config push: the refusal is the push's error, and an
    // accepted push reaches HA.
    use fulcrum_firmware::appliance::{Appliance, Buffers, State};
    use fulcrum_firmware::persist::{ConfigStore, StoreError};
    struct Nowhere;
    impl ConfigStore for Nowhere {
        fn load(&mut self, _: &mut [u8]) -> Result<Option<usize>, StoreError> {
            Ok(None)
        }
        fn save(&mut self, _: &[u8]) -> Result<(), StoreError> {
            Ok(())
        }
    }
    let c = config(0, 200);
    let bufs = Buffers {
        old_ring: Box::leak(vec![0u16; 251].into_boxed_slice()),
        new_ring: Box::leak(vec![0u16; 251].into_boxed_slice()),
        record: Box::leak(vec![0u8; 64 * 1024].into_boxed_slice()),
    };
    let state = Box::leak(Box::new(State::new()));
    let bus = fulcrum_model::regmap::RegisterFile::new(pipeline(&c, 8192));
    let mut app = Appliance::new(bus, Nowhere, bufs, state, 0);
    app.apply(0, &c, false).unwrap();
    let ha: &'static std::cell::RefCell<Ha<1>> =
        Box::leak(Box::new(std::cell::RefCell::new(node(0, 200, 3).ha)));
    app.set_ha(ha);
    ha.borrow_mut().startup(0);
    ha.borrow_mut().handle_timeout(100);
    assert!(ha.borrow().is_master());
    let err = app.apply(200, &vrid43, false).unwrap_err();
    println!("push of a new VRID to the master: {}", err.message);
    assert_eq!(err.code, fulcrum_mgmt::message::ErrorCode::InvalidConfig);
    assert!(err.message.contains("vrid"), "{}", err.message);
    assert_eq!(
        app.config().unwrap().appliance.ha.as_ref().unwrap().vrid,
        42
    );
    app.apply(300, &config(0, 150), false).unwrap();
    assert_eq!(ha.borrow().router().priority(), 150);
    assert_eq!(
        app.config()
            .unwrap()
            .appliance
            .ha
            .as_ref()
            .unwrap()
            .priority,
        150
    );
}
