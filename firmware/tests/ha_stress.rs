//! Seeded, randomized HA stress in virtual time: two appliances (`Ha` through the register
//! map, the model as data path, as in `ha_runner`) behind a learning switch, a lossy sync
//! network (loss, duplication, 1–3 ms delay: reordering), a steady stream of new
//! connections and the older ones kept in use through whichever node the switch sends
//! to, and random trouble:
//! - **deaf**: a node hears nothing (adverts and sync are lost) for 20–80 ms: spurious
//!   takeovers, split brains;
//! - **stall**: a node's MCU loop does not run for 20–80 ms (a descheduled process): what
//!   arrives meanwhile waits in its socket, its data path keeps forwarding and logging;
//! - **kill**: a node dies (port dead, MCU halted) and boots again empty 100–400 ms later.
//!
//! ## The invariant (checked after the trouble stops and the group is quiet)
//! Exactly one master, each node's role changed at most twice since the trouble stopped
//! (no flapping), and every connection still in use maps, through that master, to the
//! backend and the full-NAT source it got when it was opened (its flow is there with its
//! NAT mapping; persistence made it so for the client too), with two exceptions, each
//! counted and bounded:
//! - **asynchronous replication at a crash**: the connection's flow was made on a node
//!   that was killed, and at the moment of the kill the surviving node did not hold it
//!   (its record was still queued, unacknowledged or in flight); such a connection must
//!   have been opened at most [`CRASH_WINDOW_MS`] before the kill;
//! - **the data path's own eviction**: opening it displaced an older flow from a full
//!   4-way set (the older connection is gone with or without HA).
//!
//! Flows made by a node that was master only briefly (deaf, stalled: a spurious takeover)
//! are not exempt: they must reach the master that stays.

#[path = "common/ha.rs"]
mod ha_common;

use std::collections::{HashMap, HashSet};

use fulcrum_firmware::flowsync::MAX_MESSAGE;
use fulcrum_firmware::ha::Ha;
use fulcrum_firmware::vrrp::{MAX_ADVERT_FRAME, Role};
use fulcrum_mgmt::ha::HaRole;
use fulcrum_mgmt::message::EventKind;
use fulcrum_model::changelog::{self, ChangeRegisters};
use fulcrum_model::flow::FlowEntry;
use fulcrum_model::pipeline::{OUT_HEADROOM, Pipeline, Port};
use fulcrum_model::regmap::RegisterBus;
use ha_common::{ADDRS, config, key, mapping, pipeline, tcp};

/// A connection may be lost with its node at a crash only if, between its opening and
/// the crash, the two nodes never had this long without trouble (none deaf, stalled or
/// down): the async replication window (a change waits at most a millisecond for the
/// change-log drain, then a sync round trip of 2–6 ms; with loss, a retransmission after
/// 20 ms; after a role change, a hello and possibly a snapshot of the table first).
const CLEAN_MS: u64 = 100;

/// How far apart two connections that collide in a slot during a split may have been
/// opened (the longest split here: deaf or stalled windows back to back, a restart).
const SPLIT_MS: u64 = 500;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// The data path as the MCU sees it: only the change-log registers.
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

/// (backend, full-NAT source) of a forwarded frame.
type Mapping = (u16, [u8; 6]);

/// A connection as the test remembers it.
#[derive(Debug, Clone)]
struct Conn {
    client: u8,
    port: u16,
    /// When opened.
    mapping: Mapping,
    opened: u64,
    /// The node whose data path made the flow.
    on: usize,
    /// The flow-table slot it got there (the full-NAT source port follows from it).
    slot: usize,
    /// Made while two nodes were master, or by a master that neither received the
    /// peer's complete table nor had its own acknowledged (its table being replaced by
    /// a snapshot, or empty after a restart and alone as far as it can tell).
    split: bool,
}

#[derive(Default, Debug)]
struct Tally {
    connections: usize,
    lost_at_crash: usize,
    slot_conflicts: usize,
    evicted: usize,
    kills: usize,
    deaf: usize,
    stalls: usize,
    takeovers: usize,
}

struct World {
    nodes: Vec<Node>,
    rng: Rng,
    /// (deliver at, from, is VRRP, bytes)
    wire: Vec<(u64, usize, bool, Vec<u8>)>,
    now: u64,
    conns: Vec<Conn>,
    next_port: u16,
    /// The switch's port for the virtual MAC: the node that sent the last VRRP frame.
    switch: Option<usize>,
    deaf_until: [u64; 2],
    stalled_until: [u64; 2],
    /// (node, killed at, restart at)
    down: Option<(usize, u64, u64)>,
    boots: u64,
    /// (node, when) it stopped being master.
    master_ends: Vec<(usize, u64)>,
    /// Per millisecond: a node was deaf, stalled or down.
    troubled: Vec<bool>,
    sync_loss: f64,
    /// Connections the crash may take: (client, port) -> killed at.
    lost_at_crash: HashMap<(u8, u16), u64>,
    evicted: HashSet<(u8, u16)>,
    tally: Tally,
    log: Vec<String>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let sync_loss = rng.below(6) as f64 / 100.0;
        World {
            nodes: vec![node(0, 200, 1), node(1, 100, 1)],
            rng,
            wire: Vec::new(),
            now: 0,
            conns: Vec::new(),
            next_port: 10_000,
            switch: None,
            deaf_until: [0; 2],
            stalled_until: [0; 2],
            down: None,
            boots: 1,
            troubled: vec![false],
            master_ends: Vec::new(),
            sync_loss,
            lost_at_crash: HashMap::new(),
            evicted: HashSet::new(),
            tally: Tally::default(),
            log: Vec::new(),
        }
    }

    fn is_master(&self, i: usize) -> bool {
        self.nodes[i].alive && self.nodes[i].ha.router().role() == Role::Master
    }

    /// A client frame through the switch: to the node that advertised last, if alive (a
    /// backup's MAC filter drops frames to the virtual MAC; a stalled master still
    /// forwards). Returns the node and its forwarded frame's mapping.
    fn client_frame(
        &mut self,
        client: u8,
        port: u16,
        syn: bool,
    ) -> Option<(usize, Option<Mapping>)> {
        let i = self.switch?;
        if !self.is_master(i) {
            return None;
        }
        let frame = tcp(client, port, syn);
        let n = &mut self.nodes[i];
        let before: Option<Vec<FlowEntry>> = syn.then(|| n.pipeline.flow_table().slots().to_vec());
        let mut out = vec![0u8; frame.len() + OUT_HEADROOM];
        let v = n
            .pipeline
            .process(self.now, &frame, Port::Network, &mut out);
        if let Some(before) = before {
            for (old, new) in before.iter().zip(n.pipeline.flow_table().slots()) {
                if old.valid && old.key != new.key {
                    self.evicted.insert((old.key.src[3], old.key.src_port));
                }
            }
        }
        out.truncate(v.len);
        Some((i, mapping(v.action, &out)))
    }

    /// Whether node `i` holds the flow of `c` in the state it was opened with.
    fn holds(&self, i: usize, c: &Conn) -> bool {
        self.nodes[i].pipeline.flow_table().slots().iter().any(|e| {
            e.valid && e.key.src[3] == c.client && e.key.src_port == c.port && e.key.dst_port == 80
        })
    }

    fn trouble(&mut self) {
        if !self.rng.chance(1.0 / 120.0) {
            return;
        }
        let who = self.rng.below(2) as usize;
        let how_long = 20 + self.rng.below(61);
        let what = self.rng.below(5);
        self.log.push(format!(
            "{}: TROUBLE {} node {who} {how_long} ms",
            self.now,
            ["deaf", "deaf", "stall", "stall", "kill"][what as usize]
        ));
        match what {
            0 | 1 => {
                self.deaf_until[who] = self.now + how_long;
                self.tally.deaf += 1;
            }
            2 | 3 => {
                self.stalled_until[who] = self.now + how_long;
                self.tally.stalls += 1;
            }
            _ => {
                // One node down at a time, and only once the other holds the table (with
                // both gone, or a survivor still empty, there is nothing to keep).
                let other = 1 - who;
                let o = &self.nodes[other].ha;
                let ready = o.links()[0].1.synced() || o.is_master() && o.holds_table();
                if self.down.is_some() || !self.nodes[who].alive || !ready {
                    return;
                }
                if self.nodes[who].ha.is_master() {
                    self.master_ends.push((who, self.now));
                }
                self.nodes[who].alive = false;
                self.tally.kills += 1;
                let killed = self.now;
                self.down = Some((who, killed, killed + 100 + self.rng.below(301)));
                for c in &self.conns {
                    if c.on == who && !self.holds(other, c) {
                        self.lost_at_crash
                            .entry((c.client, c.port))
                            .or_insert(killed);
                    }
                }
            }
        }
    }

    fn step(&mut self, traffic: bool, trouble: bool) {
        self.now += 1;
        let now = self.now;
        if trouble {
            self.trouble();
        }
        if let Some((who, _, restart)) = self.down
            && now >= restart
        {
            self.boots += 1;
            let priority = if who == 0 { 200 } else { 100 };
            self.nodes[who] = node(who, priority, self.boots);
            self.nodes[who].ha.startup(now);
            self.down = None;
        }
        let troubled = self.down.is_some()
            || (0..2).any(|i| now < self.deaf_until[i] || now < self.stalled_until[i]);
        self.troubled.push(troubled);
        debug_assert_eq!(self.troubled.len() as u64, now + 1);
        // Delivery: a dead or deaf node loses what arrives; a stalled one finds it later.
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
            .into_iter()
            .partition(|m| m.0 <= now && now >= self.stalled_until[1 - m.1]);
        self.wire = rest;
        for (_, from, vrrp, bytes) in due {
            let to = 1 - from;
            if !self.nodes[to].alive || now < self.deaf_until[to] {
                continue;
            }
            let n = &mut self.nodes[to];
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
            if !self.nodes[i].alive || now < self.stalled_until[i] {
                continue;
            }
            let n = &mut self.nodes[i];
            let mut bus = Bus {
                pipeline: &mut n.pipeline,
                regs: &mut n.regs,
                now,
            };
            n.ha.handle_timeout(now);
            n.ha.drain_changes(now, &mut bus);
            let mut frame = [0u8; MAX_ADVERT_FRAME];
            while let Some(len) = n.ha.poll_frame(&mut frame) {
                self.switch = Some(i);
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
                if self.rng.chance(self.sync_loss) {
                    continue;
                }
                let copies = if self.rng.chance(0.02) { 2 } else { 1 };
                for _ in 0..copies {
                    let at = now + 1 + self.rng.below(3);
                    self.wire.push((at, i, false, buf[..len].to_vec()));
                }
            }
            while let Some(e) = n.ha.poll_event() {
                if matches!(
                    e,
                    EventKind::HaRoleChanged {
                        from: HaRole::Master,
                        ..
                    }
                ) {
                    self.master_ends.push((i, now));
                }
                self.log.push(format!("{now}: node {i} {e:?}"));
                n.events.push((now, e));
            }
        }
        if traffic {
            let client = (now % 50) as u8 + 1;
            if now.is_multiple_of(4) {
                let port = self.next_port;
                if let Some((on, Some(m))) = self.client_frame(client, port, true) {
                    self.next_port += 1;
                    let slot = self.nodes[on]
                        .pipeline
                        .flow_table()
                        .slots()
                        .iter()
                        .position(|e| e.valid && e.key.src[3] == client && e.key.src_port == port)
                        .expect("the flow it just made");
                    let link = &self.nodes[on].ha.links()[0].1;
                    let split = self.nodes[1 - on].alive && self.nodes[1 - on].ha.is_master()
                        || !(link.synced() || link.peer_synced());
                    self.conns.push(Conn {
                        client,
                        port,
                        mapping: m,
                        opened: now,
                        on,
                        slot,
                        split,
                    });
                }
            }
            // The older connections stay in use: a segment on one of them every ms.
            if !self.conns.is_empty() {
                let c = self.conns[(now as usize * 7919) % self.conns.len()].clone();
                let _ = self.client_frame(c.client, c.port, false);
            }
        }
    }

    /// The longest stretch of milliseconds in `from..to` without trouble.
    fn longest_clean(&self, from: u64, to: u64) -> u64 {
        let mut best = 0;
        let mut run = 0;
        for t in from..to {
            if self.troubled.get(t as usize).copied().unwrap_or(false) {
                run = 0;
            } else {
                run += 1;
                best = best.max(run);
            }
        }
        best
    }

    fn role_changes_since(&self, i: usize, t: u64) -> usize {
        self.nodes[i]
            .events
            .iter()
            .filter(|(at, e)| *at >= t && matches!(e, EventKind::HaRoleChanged { .. }))
            .count()
    }
}

/// One seeded run; the invariant (module docs) or what broke it.
fn run(seed: u64) -> Result<Tally, String> {
    let mut w = World::new(seed);
    for n in &mut w.nodes {
        n.ha.startup(0);
    }
    const TROUBLE: (u64, u64) = (400, 2_400);
    const QUIET: u64 = 3_400;
    while w.now < QUIET {
        let t = w.now;
        w.step(t >= 200, (TROUBLE.0..TROUBLE.1).contains(&t));
    }
    // Quiet: no trouble since TROUBLE.1 (a node killed at the end is back by now).
    let masters: Vec<usize> = (0..2).filter(|&i| w.is_master(i)).collect();
    if masters.len() != 1 {
        return Err(format!("{} masters at the end", masters.len()));
    }
    let m = masters[0];
    for i in 0..2 {
        let changes = w.role_changes_since(i, TROUBLE.1 + 500);
        if changes > 0 {
            return Err(format!(
                "node {i} changed role {changes} times in the last {} ms (flapping)",
                QUIET - TROUBLE.1 - 500
            ));
        }
    }
    w.switch = Some(m);
    let mut broken = Vec::new();
    let conns = w.conns.clone();
    for c in &conns {
        if w.evicted.contains(&(c.client, c.port)) {
            w.tally.evicted += 1;
            continue;
        }
        let got = w.client_frame(c.client, c.port, false).and_then(|(_, m)| m);
        if got == Some(c.mapping) {
            continue;
        }
        if let Some(c2) = conns.iter().find(|c2| {
            // Another connection in the same slot: two data paths gave the slot away
            // independently and only one flow can keep it. Either the newer one was
            // made by a master without the other's table (any age apart), or the older
            // one by a master without the peer's table, or in its last moments as master
            // before a handover, and the newer one soon after (its record had not
            // arrived).
            let (old, new): (&Conn, &Conn) = if c2.opened < c.opened {
                (c2, c)
            } else {
                (c, c2)
            };
            let soon = new.opened - old.opened <= SPLIT_MS;
            let last_moment = w
                .master_ends
                .iter()
                .any(|&(i, t)| i == old.on && t >= old.opened && t <= old.opened + CLEAN_MS);
            c2.slot == c.slot
                && c2.port != c.port
                && !w.evicted.contains(&(c2.client, c2.port))
                && (new.split || soon && (old.split || last_moment))
        }) {
            w.tally.slot_conflicts += 1;
            w.log.push(format!("slot conflict: {c:?} and {c2:?}"));
            continue;
        }
        if let Some(&killed) = w.lost_at_crash.get(&(c.client, c.port)) {
            let clean = w.longest_clean(c.opened, killed);
            if clean >= CLEAN_MS {
                broken.push(format!(
                    "{c:?}: lost with node {} killed at {killed}, {} ms after it was opened, with {clean} ms without trouble in between",
                    c.on,
                    killed - c.opened
                ));
            }
            w.tally.lost_at_crash += 1;
            continue;
        }
        let events: Vec<String> = (0..2)
            .flat_map(|i| {
                w.nodes[i]
                    .events
                    .iter()
                    .filter(|(t, _)| t + 200 >= c.opened && *t <= c.opened + 400)
                    .map(move |(t, e)| format!("node {i} at {t}: {e:?}"))
            })
            .collect();
        let same_slot: Vec<&Conn> = conns
            .iter()
            .filter(|c2| c2.slot == c.slot && c2.port != c.port)
            .collect();
        broken.push(format!(
            "{c:?} maps to {got:?} on master {m}; same slot: {same_slot:?}; held by node 0: {}, node 1: {}; events around: {events:#?}",
            w.holds(0, c),
            w.holds(1, c)
        ));
    }
    w.tally.connections = conns.len();
    w.tally.takeovers = (0..2)
        .map(|i| {
            w.nodes[i]
                .events
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
                .count()
        })
        .sum();
    if broken.is_empty() {
        Ok(w.tally)
    } else {
        // HA_STRESS_DEBUG=1: the run's role changes and trouble too.
        let log = if std::env::var("HA_STRESS_DEBUG").is_ok() {
            w.log.join("\n")
        } else {
            String::new()
        };
        Err(format!(
            "{} broken: {}\n{log}",
            broken.len(),
            broken.join("\n")
        ))
    }
}

/// Many seeds per run (more: `HA_STRESS_SEEDS=100..200`).
#[test]
fn connections_survive_spurious_takeovers_stalls_and_crashes_many_seeds() {
    let seeds = std::env::var("HA_STRESS_SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(1..25u64);
    let mut failures = Vec::new();
    let mut total = Tally::default();
    let mut runs = 0;
    for seed in seeds {
        runs += 1;
        match run(seed) {
            Ok(t) => {
                total.connections += t.connections;
                total.lost_at_crash += t.lost_at_crash;
                total.slot_conflicts += t.slot_conflicts;
                total.evicted += t.evicted;
                total.kills += t.kills;
                total.deaf += t.deaf;
                total.stalls += t.stalls;
                total.takeovers += t.takeovers;
            }
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    println!("{runs} runs: {total:?}");
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
