//! Flow-state sync in virtual time: appliances exchange `flowsync` messages over a
//! simulated network that loses, duplicates, delays and reorders them (seeded), while the
//! owners' tables change; at the end every replica must equal its owner's table. Also a
//! rejoin (the backup restarts mid-stream), a peer that falls too far behind, replays,
//! the two replication modes, and the model's own tables on both ends.

#[path = "common/ha.rs"]
mod ha_common;

use std::collections::HashMap;
use std::time::Instant;

use fulcrum_firmware::flowsync::{
    Change, Link, LinkConfig, LinkStats, MAX_MESSAGE, PipelineSink, PipelineSource, QUEUE,
    ReplicaSink, ReplicaSource, SyncError, backup_of, group_bytes_per_flow,
};
use fulcrum_model::flow::{FlowEntry, FlowKey, FlowState, StickyEntry};
use fulcrum_model::ha::SyncMode;
use ha_common::{config, key, pipeline, tcp_to};

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

const FLOW_SLOTS: usize = 4096;
const STICKY_SLOTS: usize = 256;

/// One appliance's tables: its own flows and sticky entries, and the replicas it holds
/// from each other node (kept per origin: the slot numbers are the origin's).
#[derive(Default)]
struct Tables {
    node: u8,
    flows: Vec<Option<FlowEntry>>,
    sticky: Vec<Option<StickyEntry>>,
    replicas: HashMap<u8, HashMap<usize, FlowEntry>>,
    replica_sticky: HashMap<u8, HashMap<(u8, [u8; 4]), StickyEntry>>,
    owners: HashMap<FlowKey, u8>,
    /// Origin of the message being applied (set by the simulator).
    from: u8,
}

impl Tables {
    fn new(node: u8) -> Tables {
        Tables {
            node,
            flows: vec![None; FLOW_SLOTS],
            sticky: vec![None; STICKY_SLOTS],
            ..Tables::default()
        }
    }
}

impl ReplicaSource for Tables {
    fn flow_slots(&self) -> usize {
        self.flows.len()
    }
    fn flow(&self, slot: usize) -> Option<(FlowEntry, u8)> {
        self.flows[slot].map(|e| (e, self.node))
    }
    fn sticky_slots(&self) -> usize {
        self.sticky.len()
    }
    fn sticky(&self, slot: usize) -> Option<StickyEntry> {
        self.sticky[slot]
    }
}

impl ReplicaSink for Tables {
    fn upsert_flow(&mut self, _: u64, slot: usize, entry: FlowEntry, owner: u8) {
        assert_eq!(owner, self.from, "owner is the sender");
        self.replicas.entry(owner).or_default().insert(slot, entry);
    }
    fn remove_flow(&mut self, _: u64, slot: usize, key: &FlowKey) {
        let r = self.replicas.entry(self.from).or_default();
        if r.get(&slot).is_some_and(|e| e.key == *key) {
            r.remove(&slot);
        }
        if self.owners.get(key) == Some(&self.from) {
            self.owners.remove(key);
        }
    }
    fn upsert_sticky(&mut self, _: u64, entry: StickyEntry) {
        self.replica_sticky
            .entry(self.from)
            .or_default()
            .insert((entry.service, entry.client), entry);
    }
    fn remove_sticky(&mut self, _: u64, service: u8, client: [u8; 4]) {
        self.replica_sticky
            .entry(self.from)
            .or_default()
            .remove(&(service, client));
    }
    fn flow_owner(&mut self, _: u64, key: &FlowKey, owner: u8) {
        self.owners.insert(*key, owner);
    }
    fn begin_snapshot(&mut self, _: u64, from: u8) {
        self.replicas.remove(&from);
        self.replica_sticky.remove(&from);
        self.owners.retain(|_, o| *o != from);
    }
}

struct Node {
    tables: Tables,
    links: Vec<Link>,
    alive: bool,
}

struct Net {
    nodes: Vec<Node>,
    /// (deliver at, from, to, bytes)
    wire: Vec<(u64, u8, u8, Vec<u8>)>,
    now: u64,
    rng: Rng,
    loss: f64,
    duplicate: f64,
    delay: (u64, u64),
    partitioned: bool,
    delivered: usize,
    /// Every data message sent, for replay tests.
    captured: Vec<(u8, u8, Vec<u8>)>,
    /// Every ack sent.
    acks: Vec<(u8, u8, Vec<u8>)>,
    /// Flows created so far: each new flow gets a key no other flow has had (the real
    /// table holds a key once).
    created: u32,
}

fn link_config(node: u8, peer: u8, nodes: u8, mode: SyncMode) -> LinkConfig {
    LinkConfig {
        node,
        peer,
        peers: (0..nodes).filter(|&p| p != node).collect(),
        mode,
        rto_ms: 20,
        hello_ms: 50,
        keepalive_ms: 100,
    }
}

fn link(node: u8, peer: u8, nodes: u8, mode: SyncMode, boot: u64) -> Link {
    Link::new(
        link_config(node, peer, nodes, mode),
        key(),
        0x1000 * boot + u64::from(node) * 7 + 1,
        0x9000 * boot + u64::from(peer) * 13 + 3,
    )
}

impl Net {
    fn new(n: u8, mode: SyncMode, seed: u64) -> Net {
        Net {
            nodes: (0..n)
                .map(|i| Node {
                    tables: Tables::new(i),
                    links: (0..n)
                        .filter(|&p| p != i)
                        .map(|p| link(i, p, n, mode, 1))
                        .collect(),
                    alive: true,
                })
                .collect(),
            wire: Vec::new(),
            now: 0,
            rng: Rng(seed | 1),
            loss: 0.0,
            duplicate: 0.0,
            delay: (1, 1),
            partitioned: false,
            delivered: 0,
            captured: Vec::new(),
            acks: Vec::new(),
            created: 0,
        }
    }

    fn link_index(&self, node: u8, peer: u8) -> usize {
        (0..self.nodes.len() as u8)
            .filter(|&p| p != node)
            .position(|p| p == peer)
            .unwrap()
    }

    /// A local change at `node`: applied to its table and queued on every link.
    fn change(&mut self, node: u8) {
        let now = self.now as u32;
        let rng = &mut self.rng;
        let n = &mut self.nodes[node as usize];
        let roll = rng.below(100);
        let change = if roll < 60 {
            let slot = rng.below(FLOW_SLOTS as u64) as usize;
            let entry = match n.tables.flows[slot] {
                Some(mut e) => {
                    e.state = FlowState::from_code(rng.below(4) as u8);
                    e.last_seen = now;
                    e
                }
                None => FlowEntry {
                    valid: true,
                    key: {
                        self.created += 1;
                        FlowKey {
                            protocol: 6,
                            src: [198, 51, node, (self.created >> 16) as u8],
                            dst: [10, 0, 0, 100],
                            src_port: self.created as u16,
                            dst_port: 80,
                        }
                    },
                    service: rng.below(16) as u8,
                    backend: rng.below(256) as u16,
                    generation: rng.below(256) as u8,
                    state: FlowState::SynSeen,
                    last_seen: now,
                    client_mac: [2, 0, 0, 0, node, 1],
                },
            };
            n.tables.flows[slot] = Some(entry);
            Change::Flow {
                slot: slot as u32,
                entry,
            }
        } else if roll < 90 {
            let slot = rng.below(FLOW_SLOTS as u64) as usize;
            match n.tables.flows[slot].take() {
                Some(e) => Change::FlowRemoved {
                    slot: slot as u32,
                    key: e.key,
                },
                None => return,
            }
        } else if roll < 96 {
            let slot = rng.below(STICKY_SLOTS as u64) as usize;
            let entry = StickyEntry {
                valid: true,
                service: rng.below(4) as u8,
                client: [192, 0, 2, slot as u8],
                backend: rng.below(256) as u16,
                generation: 1,
                last_seen: now,
            };
            // One entry per (service, client) as the real table keeps it.
            if let Some(old) = n.tables.sticky[slot]
                && (old.service, old.client) != (entry.service, entry.client)
            {
                for l in n.links.iter_mut() {
                    l.record(Change::StickyRemoved {
                        service: old.service,
                        client: old.client,
                    });
                }
            }
            n.tables.sticky[slot] = Some(entry);
            Change::Sticky(entry)
        } else {
            let slot = rng.below(STICKY_SLOTS as u64) as usize;
            match n.tables.sticky[slot].take() {
                Some(e) => Change::StickyRemoved {
                    service: e.service,
                    client: e.client,
                },
                None => return,
            }
        };
        for l in n.links.iter_mut() {
            l.record(change);
        }
    }

    /// Lets every live node send what it has.
    fn pump(&mut self) {
        let mut buf = vec![0u8; MAX_MESSAGE];
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                continue;
            }
            let peers: Vec<u8> = (0..self.nodes.len() as u8)
                .filter(|&p| p != i as u8)
                .collect();
            for (li, &peer) in peers.iter().enumerate() {
                loop {
                    let node = &mut self.nodes[i];
                    node.links[li].handle_timeout(self.now);
                    let Some(len) = node.links[li].poll_transmit(self.now, &node.tables, &mut buf)
                    else {
                        break;
                    };
                    let bytes = buf[..len].to_vec();
                    match bytes[2] {
                        1 => self.captured.push((i as u8, peer, bytes.clone())),
                        2 => self.acks.push((i as u8, peer, bytes.clone())),
                        _ => {}
                    }
                    if self.partitioned || self.rng.chance(self.loss) {
                        continue;
                    }
                    let copies = if self.rng.chance(self.duplicate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let (lo, hi) = self.delay;
                        let at = self.now + lo + self.rng.below(hi - lo + 1);
                        self.wire.push((at, i as u8, peer, bytes.clone()));
                    }
                }
            }
        }
    }

    fn deliver(&mut self, from: u8, to: u8, bytes: &[u8]) -> Result<(), SyncError> {
        let li = self.link_index(to, from);
        let node = &mut self.nodes[to as usize];
        node.tables.from = from;
        node.links[li].handle_message(self.now, bytes, &mut node.tables)
    }

    /// Runs to `until`, with `changes_per_ms` local changes at each node in `active`.
    fn run(&mut self, until: u64, active: &[u8], changes_per_ms: u32) {
        while self.now < until {
            self.now += 1;
            for &a in active {
                if self.nodes[a as usize].alive {
                    for _ in 0..changes_per_ms {
                        self.change(a);
                    }
                }
            }
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
                .into_iter()
                .partition(|m| m.0 <= now);
            self.wire = rest;
            for (_, from, to, bytes) in due {
                if self.nodes[to as usize].alive {
                    self.delivered += 1;
                    let _ = self.deliver(from, to, &bytes);
                }
            }
            self.pump();
        }
    }

    /// Runs without new changes until no record has been applied anywhere for 300 ms
    /// (longer than the keepalive, so a peer's restart is noticed) while every sending
    /// link is connected with nothing queued; returns when the last record was applied,
    /// relative to the start. Panics after `limit` ms.
    fn settle(&mut self, limit: u64) -> u64 {
        let start = self.now;
        let applied = |net: &Net| -> u64 {
            net.nodes
                .iter()
                .flat_map(|n| n.links.iter())
                .map(|l| u64::from(l.stats().records_applied))
                .sum()
        };
        let mut last = (applied(self), self.now);
        while self.now < start + limit {
            let pending = self.nodes.iter().filter(|n| n.alive).any(|n| {
                n.links
                    .iter()
                    .filter(|l| l.sending())
                    .any(|l| l.lag().0 > 0 || l.resyncing() || !l.connected())
            });
            let now_applied = applied(self);
            if now_applied != last.0 || pending {
                last = (now_applied, self.now);
            } else if self.now - last.1 >= 300 {
                return last.1 - start;
            }
            self.run(self.now + 1, &[], 0);
        }
        let states: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| n.links.iter().map(|l| format!("{l:?}")))
            .collect();
        panic!("links did not settle in {limit} ms: {states:#?}");
    }

    /// As [`Net::restart`], but the links are the old ones set up again in place
    /// ([`Link::reset`], what the MCU does with the links it keeps in a static).
    fn restart_in_place(&mut self, node: u8, mode: SyncMode, boot: u64) {
        let n = self.nodes.len() as u8;
        let me = &mut self.nodes[node as usize];
        me.tables = Tables::new(node);
        let peers = (0..n).filter(|&p| p != node);
        for (link, p) in me.links.iter_mut().zip(peers) {
            link.reset(
                link_config(node, p, n, mode),
                &key(),
                0x1000 * boot + u64::from(node) * 7 + 1,
                0x9000 * boot + u64::from(p) * 13 + 3,
            );
        }
    }

    fn restart(&mut self, node: u8, mode: SyncMode, boot: u64) {
        let n = self.nodes.len() as u8;
        let me = &mut self.nodes[node as usize];
        me.tables = Tables::new(node);
        me.links = (0..n)
            .filter(|&p| p != node)
            .map(|p| link(node, p, n, mode, boot))
            .collect();
    }

    /// Asserts that `holder`'s replica of `owner` equals `owner`'s own tables.
    fn assert_replica(&self, holder: u8, owner: u8) {
        let src = &self.nodes[owner as usize].tables;
        let dst = &self.nodes[holder as usize].tables;
        let empty = HashMap::new();
        let replica = dst.replicas.get(&owner).unwrap_or(&empty);
        let mut expected = 0;
        for (slot, e) in src.flows.iter().enumerate() {
            let Some(e) = e else { continue };
            expected += 1;
            let r = replica
                .get(&slot)
                .unwrap_or_else(|| panic!("node {holder} misses slot {slot} of node {owner}"));
            // Everything but the time. The idle time travels, measured when the message
            // was first packed, so the replica looks younger by the transit delay plus any
            // retransmission wait; never older.
            assert_eq!(
                FlowEntry { last_seen: 0, ..*r },
                FlowEntry { last_seen: 0, ..*e }
            );
            let skew = r.last_seen.wrapping_sub(e.last_seen);
            assert!(skew <= 1_000, "last_seen off by {skew} ms");
        }
        assert_eq!(replica.len(), expected, "no stale flows at node {holder}");
        let sticky: HashMap<_, _> = src
            .sticky
            .iter()
            .flatten()
            .map(|e| ((e.service, e.client), e.backend))
            .collect();
        let got: HashMap<_, _> = dst
            .replica_sticky
            .get(&owner)
            .map(|m| m.iter().map(|(k, e)| (*k, e.backend)).collect())
            .unwrap_or_default();
        assert_eq!(got, sticky);
    }
}

impl Net {
    /// The group invariant once the links have settled: every node's own tables are held
    /// by each other node exactly as the mode says (all-to-all: a full copy at every
    /// peer; owner + backup: a full copy at the flow's backup, an owner record at the
    /// others), and nothing else is held (no stale replica or owner record of a flow its
    /// owner no longer has). Returns (full copies, owner records).
    fn check_group(&self, mode: SyncMode) -> Result<(usize, usize), String> {
        let n = self.nodes.len() as u8;
        let mut full = 0;
        let mut owner_records = 0;
        for owner in 0..n {
            let peers: Vec<u8> = (0..n).filter(|&p| p != owner).collect();
            let src = &self.nodes[owner as usize].tables;
            for (slot, e) in src.flows.iter().enumerate() {
                let Some(e) = e else { continue };
                let backup = backup_of(&e.key, &peers).unwrap();
                for &p in &peers {
                    let t = &self.nodes[p as usize].tables;
                    let copy = t.replicas.get(&owner).and_then(|r| r.get(&slot));
                    let has_full = copy.is_some_and(|r| {
                        FlowEntry { last_seen: 0, ..*r } == FlowEntry { last_seen: 0, ..*e }
                    });
                    let has_owner = t.owners.get(&e.key) == Some(&owner);
                    let wants_full = mode == SyncMode::AllToAll || p == backup;
                    let as_wanted = if wants_full {
                        has_full && !has_owner
                    } else {
                        has_owner && copy.is_none()
                    };
                    if wants_full && !as_wanted {
                        return Err(format!(
                            "node {p} lacks the full copy of node {owner}'s slot {slot} ({e:?}): holds {copy:?}, owner record {has_owner}"
                        ));
                    }
                    if !wants_full && !as_wanted {
                        return Err(format!(
                            "node {p} lacks the owner record of node {owner}'s slot {slot} ({:?}): owner record {:?}, copy {copy:?}",
                            e.key,
                            t.owners.get(&e.key)
                        ));
                    }
                    if wants_full {
                        full += 1;
                    } else {
                        owner_records += 1;
                    }
                }
            }
            for &p in &peers {
                let t = &self.nodes[p as usize].tables;
                let sticky: HashMap<_, _> = src
                    .sticky
                    .iter()
                    .flatten()
                    .map(|e| ((e.service, e.client), e.backend))
                    .collect();
                let got: HashMap<_, _> = t
                    .replica_sticky
                    .get(&owner)
                    .map(|m| m.iter().map(|(k, e)| (*k, e.backend)).collect())
                    .unwrap_or_default();
                if got != sticky {
                    return Err(format!(
                        "node {p}'s persistence replica of node {owner} differs"
                    ));
                }
            }
        }
        let held_full: usize = self
            .nodes
            .iter()
            .map(|n| n.tables.replicas.values().map(|r| r.len()).sum::<usize>())
            .sum();
        let held_owner: usize = self.nodes.iter().map(|n| n.tables.owners.len()).sum();
        if (held_full, held_owner) != (full, owner_records) {
            let stale: Vec<String> = self
                .nodes
                .iter()
                .flat_map(|n| {
                    n.tables.owners.iter().filter_map(move |(k, &o)| {
                        let owned = self.nodes[o as usize]
                            .tables
                            .flows
                            .iter()
                            .flatten()
                            .any(|e| e.key == *k);
                        (!owned).then(|| format!("node {} holds owner {o} of {k:?}", n.tables.node))
                    })
                })
                .collect();
            return Err(format!(
                "stale entries: held {held_full} full copies and {held_owner} owner records, expected {full} and {owner_records}: {stale:?}"
            ));
        }
        Ok((full, owner_records))
    }
}

/// One seeded run of the group under churn: every node active (1 change a millisecond
/// each), a lossy sync network (loss, duplication, 1–8 ms delay: reordering), and random
/// events: a node crashes (hears and sends nothing) and restarts empty with a new boot
/// epoch, a node stalls (a descheduled process: hears and sends nothing, keeps its state),
/// the network is cut for a while. Then the load stops and the links settle; the group
/// invariant ([`Net::check_group`]) must hold.
fn churn(seed: u64, nodes: u8, mode: SyncMode) -> Result<(usize, usize, u32), String> {
    let mut net = Net::new(nodes, mode, seed);
    net.loss = 0.02 + net.rng.below(10) as f64 / 100.0;
    net.duplicate = 0.05;
    net.delay = (1, 1 + net.rng.below(8));
    let mut boot = 1;
    let mut down: Vec<Option<(u64, bool)>> = vec![None; nodes as usize];
    let active: Vec<u8> = (0..nodes).collect();
    let mut events = 0;
    while net.now < 3_000 {
        // An event every ~150 ms on average.
        if net.rng.chance(1.0 / 150.0) {
            let who = net.rng.below(u64::from(nodes)) as usize;
            let how_long = 20 + net.rng.below(200);
            match net.rng.below(3) {
                0 | 1 if down[who].is_none() => {
                    net.nodes[who].alive = false;
                    down[who] = Some((net.now + how_long, net.rng.chance(0.5)));
                    events += 1;
                }
                _ if !net.partitioned => {
                    net.partitioned = true;
                    down.push(Some((net.now + how_long, false)));
                    events += 1;
                }
                _ => {}
            }
        }
        for (i, d) in down.iter_mut().enumerate() {
            if let Some((until, restart)) = *d
                && net.now >= until
            {
                *d = None;
                if i >= nodes as usize {
                    net.partitioned = false;
                    continue;
                }
                net.nodes[i].alive = true;
                if restart {
                    boot += 1;
                    net.restart(i as u8, mode, boot);
                }
            }
        }
        net.run(net.now + 1, &active, 1);
    }
    for (i, d) in down.iter().enumerate() {
        if d.is_some() && i < nodes as usize {
            net.nodes[i].alive = true;
        }
    }
    net.partitioned = false;
    net.settle(20_000);
    let (full, owners) = net.check_group(mode).map_err(|e| {
        let links: Vec<String> = net
            .nodes
            .iter()
            .flat_map(|n| {
                n.links
                    .iter()
                    .map(|l| format!("{l:?} connected {} {:?}", l.connected(), l.stats()))
            })
            .collect();
        format!("{e}\n{}", links.join("\n"))
    })?;
    Ok((full, owners, events))
}

/// Many seeds of [`churn`]: 2 and 3 nodes all-to-all, 3 and 4 nodes owner + backup. Before
/// the fix in `Link::take_ack` (a late ack of an earlier hello was taken, and a session's
/// sequence numbers used again) runs ended with a replica missing a flow, holding an
/// older state of it, or missing an owner record: 2–3 of 48 (seeds 1–12) as the fix was
/// made, 2 of 132 (seeds 7–39: 19 and 22) with the final code.
#[test]
fn groups_under_churn_end_with_exact_replicas_many_seeds() {
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut totals = (0, 0, 0);
    // More seeds: CHURN_SEEDS=1..200 (a range). By default 1–6 and 19 and 22, the two
    // of seeds 7–39 that failed without the `take_ack` fix (with this code otherwise).
    let seeds: Vec<u64> = std::env::var("CHURN_SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some((a.parse().ok()?..b.parse().ok()?).collect())
        })
        .unwrap_or_else(|| (1..7u64).chain([19, 22]).collect());
    for seed in seeds {
        for (nodes, mode) in [
            (2, SyncMode::AllToAll),
            (3, SyncMode::AllToAll),
            (3, SyncMode::OwnerBackup),
            (4, SyncMode::OwnerBackup),
        ] {
            runs += 1;
            match churn(seed * 7919, nodes, mode) {
                Ok((f, o, e)) => {
                    totals.0 += f;
                    totals.1 += o;
                    totals.2 += e;
                }
                Err(e) => failures.push(format!("seed {seed}, {nodes} nodes {mode:?}: {e}")),
            }
        }
    }
    println!(
        "{runs} runs: {} full copies and {} owner records checked, {} crashes/stalls/cuts",
        totals.0, totals.1, totals.2
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A sender that starts over (here a forced resync; in the churn runs, retries exhausted
/// or the peer's "say hello") and then gets a late ack of its earlier hello must not take
/// that session again: it would number its snapshot from 1 in a session where the peer
/// has already applied 1, 2, ..., and the peer would skip the snapshot's first messages as
/// duplicates (and, with reordering, mix them with the earlier ones of the same numbers).
/// Before the fix the snapshot's new flows were missing from the replica.
#[test]
fn a_late_ack_of_an_earlier_hello_is_not_taken() {
    let mut net = Net::new(2, SyncMode::AllToAll, 13);
    net.nodes[1].links[0].set_sending(0, false);
    // Connected, an empty snapshot and a few changes: a handful of sequence numbers used.
    while !net.nodes[1].links[0].synced() && net.now < 100 {
        net.run(net.now + 1, &[0], 1);
    }
    assert!(net.nodes[1].links[0].synced());
    let applied = net.nodes[1].links[0].stats().data_applied;
    assert!((1..8).contains(&applied), "{applied}");
    let (_, _, late_ack) = net
        .acks
        .iter()
        .rev()
        .find(|(from, _, _)| *from == 1)
        .cloned()
        .unwrap();
    // The master starts over; what it creates now only its next snapshot carries.
    net.nodes[0].links[0].resync(net.now);
    for _ in 0..20 {
        net.change(0);
    }
    // Its hello is lost, and the late ack of the earlier hello arrives.
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = &mut net.nodes[0];
    let len = n.links[0]
        .poll_transmit(net.now, &n.tables, &mut buf)
        .unwrap();
    assert_eq!(buf[2], 3, "a hello");
    let _ = len;
    assert_eq!(net.deliver(1, 0, &late_ack), Err(SyncError::Stale));
    assert!(!net.nodes[0].links[0].connected());
    // Traffic goes on; the next hello gets a new session and the snapshot arrives whole.
    let now = net.now;
    net.run(now + 100, &[0], 1);
    net.settle(2_000);
    net.assert_replica(1, 0);
}

#[test]
fn backup_equals_master_through_loss_reordering_duplication_and_a_rejoin() {
    let mut net = Net::new(2, SyncMode::AllToAll, 0xfeed);
    net.nodes[1].links[0].set_sending(0, false);
    net.loss = 0.10;
    net.duplicate = 0.05;
    net.delay = (1, 8);
    net.run(3_000, &[0], 3);
    // The backup restarts mid-stream with empty tables and a new session.
    net.restart(1, SyncMode::AllToAll, 2);
    net.nodes[1].links[0].set_sending(net.now, false);
    net.run(6_000, &[0], 3);
    let settle = net.settle(5_000);
    net.assert_replica(1, 0);
    let (master, backup) = (&net.nodes[0].links[0], &net.nodes[1].links[0]);
    assert!(backup.synced());
    let (m, b) = (master.stats(), backup.stats());
    println!("master: {m:?}\nbackup: {b:?}\nsettled in {settle} ms");
    assert!(m.resyncs >= 2, "initial sync and the rejoin");
    assert!(m.retransmitted > 0 && b.duplicates > 0 && b.out_of_order > 0);
    assert!(
        b.stale > 0,
        "the old session's messages were refused after the restart"
    );
    assert_eq!(b.bad_tag + b.malformed, 0);
    // The backup never sent data of its own.
    assert_eq!(b.data_sent, 0);
}

#[test]
fn a_link_set_up_again_in_place_rejoins_like_a_new_one() {
    let mut net = Net::new(2, SyncMode::AllToAll, 0xbeef);
    net.nodes[1].links[0].set_sending(0, false);
    net.loss = 0.05;
    net.delay = (1, 4);
    net.run(2_000, &[0], 3);
    assert!(net.nodes[1].links[0].stats().data_applied > 0);
    net.restart_in_place(1, SyncMode::AllToAll, 2);
    let backup = &net.nodes[1].links[0];
    assert_eq!(*backup.stats(), LinkStats::ZERO);
    assert_eq!(backup.lag(), (0, 0));
    assert!(!backup.synced() && !backup.connected());
    net.nodes[1].links[0].set_sending(net.now, false);
    net.run(4_000, &[0], 3);
    net.settle(5_000);
    net.assert_replica(1, 0);
    let b = net.nodes[1].links[0].stats();
    assert!(net.nodes[1].links[0].synced());
    assert!(
        b.stale > 0,
        "the old session's messages were refused after the reset"
    );
    assert_eq!(b.bad_tag + b.malformed + b.data_sent, 0);
}

#[test]
fn a_peer_that_falls_too_far_behind_gets_a_snapshot() {
    let mut net = Net::new(2, SyncMode::AllToAll, 5);
    net.nodes[1].links[0].set_sending(0, false);
    net.run(500, &[0], 2);
    net.settle(1_000);
    let resyncs = |net: &Net| net.nodes[0].links[0].stats().resyncs;
    let before = resyncs(&net);
    // A short cut (shorter than the retries allow) with more than QUEUE changes: the queue
    // overflows and a snapshot replaces it.
    net.partitioned = true;
    net.run(net.now + 100, &[0], 8);
    const { assert!(100 * 8 > QUEUE) };
    assert_eq!(resyncs(&net), before + 1, "overflow starts a resync");
    net.partitioned = false;
    net.settle(5_000);
    net.assert_replica(1, 0);
    // A long cut: the sender gives up after its retries, says hello again when the link
    // heals, and resyncs.
    net.partitioned = true;
    net.run(net.now + 2_000, &[0], 1);
    assert!(!net.nodes[0].links[0].connected());
    net.partitioned = false;
    net.settle(5_000);
    assert_eq!(resyncs(&net), before + 2);
    net.assert_replica(1, 0);
}

#[test]
fn replays_and_forgeries_are_refused() {
    let mut net = Net::new(2, SyncMode::AllToAll, 77);
    net.nodes[1].links[0].set_sending(0, false);
    net.run(300, &[0], 2);
    net.settle(1_000);
    let captured: Vec<_> = net.captured.iter().map(|c| c.2.clone()).collect();
    // Within the session, a replay is a duplicate: acked, not applied.
    let dup_before = net.nodes[1].links[0].stats().duplicates;
    assert_eq!(net.deliver(0, 1, &captured[3]), Ok(()));
    assert_eq!(net.nodes[1].links[0].stats().duplicates, dup_before + 1);
    // A forged or altered message fails its tag.
    let mut altered = captured[4].clone();
    altered[40] ^= 0x55;
    assert_eq!(net.deliver(0, 1, &altered), Err(SyncError::BadTag));
    // After the backup restarts, nothing recorded before is accepted.
    net.restart(1, SyncMode::AllToAll, 9);
    net.nodes[1].links[0].set_sending(net.now, false);
    for c in &captured {
        assert_eq!(net.deliver(0, 1, c), Err(SyncError::Stale));
    }
    assert!(net.nodes[1].tables.replicas.is_empty());
    // Nor after it has re-synchronised with the live master.
    net.settle(2_000);
    net.assert_replica(1, 0);
    for c in &captured {
        assert_eq!(net.deliver(0, 1, c), Err(SyncError::Stale));
    }
    net.assert_replica(1, 0);
}

#[test]
fn all_to_all_three_active_nodes() {
    let mut net = Net::new(3, SyncMode::AllToAll, 31);
    net.loss = 0.05;
    net.delay = (1, 4);
    net.run(2_000, &[0, 1, 2], 1);
    net.settle(5_000);
    for holder in 0..3 {
        for owner in 0..3 {
            if holder != owner {
                net.assert_replica(holder, owner);
            }
        }
    }
}

#[test]
fn owner_backup_four_nodes_keep_one_full_copy_and_owner_records() {
    let mut net = Net::new(4, SyncMode::OwnerBackup, 99);
    net.loss = 0.05;
    net.delay = (1, 4);
    net.run(2_000, &[0, 1, 2, 3], 1);
    net.settle(5_000);
    let mut full = 0;
    let mut owner_records = 0;
    let mut flows = 0;
    for owner in 0..4u8 {
        let peers: Vec<u8> = (0..4).filter(|&p| p != owner).collect();
        for (slot, e) in net.nodes[owner as usize].tables.flows.iter().enumerate() {
            let Some(e) = e else { continue };
            flows += 1;
            let backup = backup_of(&e.key, &peers).unwrap();
            for &p in &peers {
                let t = &net.nodes[p as usize].tables;
                let has_full = t
                    .replicas
                    .get(&owner)
                    .and_then(|r| r.get(&slot))
                    .is_some_and(|r| r.key == e.key);
                let has_owner = t.owners.get(&e.key) == Some(&owner);
                if p == backup {
                    assert!(has_full && !has_owner, "backup {p} holds the flow");
                    full += 1;
                } else {
                    assert!(has_owner && !has_full, "node {p} knows only the owner");
                    owner_records += 1;
                }
            }
        }
    }
    // Nothing else is held: no stale copies.
    let held_full: usize = net
        .nodes
        .iter()
        .map(|n| n.tables.replicas.values().map(|r| r.len()).sum::<usize>())
        .sum();
    let held_owner: usize = net.nodes.iter().map(|n| n.tables.owners.len()).sum();
    assert_eq!((held_full, held_owner), (full, owner_records));
    assert_eq!((full, owner_records), (flows, 2 * flows));
    // The documented cost: own copy + backup copy + 2 owner records.
    let bytes = flows * 2 * 28 + owner_records * 14;
    assert_eq!(
        bytes,
        flows * group_bytes_per_flow(SyncMode::OwnerBackup, 4)
    );
    println!(
        "owner+backup, 4 nodes, {flows} flows: {} B/flow (all-to-all would be {} B/flow)",
        group_bytes_per_flow(SyncMode::OwnerBackup, 4),
        group_bytes_per_flow(SyncMode::AllToAll, 4)
    );
}

#[test]
fn sync_throughput() {
    // Virtual time: a clean 1 ms link; the master creates 40 changes per ms (40 000/s).
    let mut net = Net::new(2, SyncMode::AllToAll, 3);
    net.nodes[1].links[0].set_sending(0, false);
    net.run(200, &[0], 0);
    net.settle(1_000);
    let applied0 = net.nodes[1].links[0].stats().records_applied;
    let start = net.now;
    net.run(start + 1_000, &[0], 40);
    let after = net.settle(2_000);
    let applied = net.nodes[1].links[0].stats().records_applied - applied0;
    net.assert_replica(1, 0);
    let lag = net.nodes[0].links[0].stats().resyncs;
    println!(
        "virtual time: 40 000 changes/s offered for 1 s; {applied} records applied, the last {after} ms after the load stopped; resyncs {lag}"
    );
    assert_eq!(lag, 1, "kept up without falling back to a snapshot");
    assert!(after <= 10, "fell behind by {after} ms");

    // Virtual time, saturated: a snapshot of a full flow table (4096 flows) over
    // the same link is limited by the window (8 messages of 33 records per round trip).
    let mut net = Net::new(2, SyncMode::AllToAll, 8);
    net.nodes[1].links[0].set_sending(0, false);
    for slot in 0..FLOW_SLOTS {
        net.nodes[0].tables.flows[slot] = Some(FlowEntry {
            valid: true,
            key: FlowKey {
                protocol: 17,
                src: [198, 51, 100, slot as u8],
                dst: [10, 0, 0, 100],
                src_port: slot as u16,
                dst_port: 53,
            },
            state: FlowState::Udp,
            ..FlowEntry::default()
        });
    }
    let mut took = None;
    while net.now < 5_000 && took.is_none() {
        net.run(net.now + 1, &[], 0);
        if net.nodes[1].links[0].synced() {
            took = Some(net.now);
        }
    }
    let took = took.expect("snapshot finished");
    net.assert_replica(1, 0);
    println!(
        "virtual time: snapshot of {FLOW_SLOTS} flows in {took} ms over a 1 ms link = {:.0} entries/s",
        FLOW_SLOTS as f64 * 1000.0 / took as f64
    );

    // Host CPU: encode + HMAC + verify + decode + apply of full messages, one core.
    let mut net = Net::new(2, SyncMode::AllToAll, 4);
    net.nodes[1].links[0].set_sending(0, false);
    net.run(200, &[0], 0);
    net.settle(1_000);
    let t = Instant::now();
    let applied0 = net.nodes[1].links[0].stats().records_applied;
    net.run(net.now + 500, &[0], 200);
    net.settle(5_000);
    let applied = net.nodes[1].links[0].stats().records_applied - applied0;
    let secs = t.elapsed().as_secs_f64();
    net.assert_replica(1, 0);
    println!(
        "host CPU: {applied} records in {secs:.3} s wall = {:.0} records/s ({} build, simulator included)",
        applied as f64 / secs,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

/// The model on both ends: the master's pipeline creates flows from real frames, the
/// backup's pipeline receives them through `PipelineSink`, and ends with the same flow
/// table, slot for slot.
#[test]
fn model_pipelines_end_with_equal_flow_tables() {
    use fulcrum_model::pipeline::{OUT_HEADROOM, Port};

    // The HA tests' full-NAT service (its `[appliance.ha]` plays no part here) in a
    // 1,024-slot table: 2 new flows a millisecond displace older ones.
    let config = config(0, 200);
    let (mut master, mut backup) = (pipeline(&config, 1024), pipeline(&config, 1024));

    let mut tx = link(0, 1, 2, SyncMode::AllToAll, 1);
    let mut rx = link(1, 0, 2, SyncMode::AllToAll, 1);
    rx.set_sending(0, false);
    let mut rng = Rng(12345);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut frame_out = vec![0u8; 128 + OUT_HEADROOM];
    let mut in_flight: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    for now in 1..3_000u64 {
        // New clients (SYNs), some displacing older flows; quiet for the last second so
        // everything drains.
        for _ in 0..if now < 2_000 { 2 } else { 0 } {
            let frame = tcp_to(
                [198, 51, 100, rng.below(200) as u8],
                1024 + rng.below(60_000) as u16,
                [2, 0, 0, 0, 0, 1],
                true,
            );
            let before: Vec<FlowEntry> = master.flow_table().slots().to_vec();
            master.process(now, &frame, Port::Network, &mut frame_out);
            for (slot, (old, new)) in before.iter().zip(master.flow_table().slots()).enumerate() {
                if old != new {
                    let change = if new.valid {
                        Change::Flow {
                            slot: slot as u32,
                            entry: *new,
                        }
                    } else {
                        Change::FlowRemoved {
                            slot: slot as u32,
                            key: old.key,
                        }
                    };
                    tx.record(change);
                }
            }
        }
        // Deliver (1–5 ms, 5 % loss, both directions).
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut in_flight)
            .into_iter()
            .partition(|m| m.0 <= now);
        in_flight = rest;
        for (_, to_backup, bytes) in due {
            if to_backup {
                let mut sink = PipelineSink {
                    pipeline: &mut backup,
                    refused: 0,
                    owners: 0,
                };
                let _ = rx.handle_message(now, &bytes, &mut sink);
                assert_eq!(sink.refused, 0);
            } else {
                let mut sink = PipelineSink {
                    pipeline: &mut master,
                    refused: 0,
                    owners: 0,
                };
                let _ = tx.handle_message(now, &bytes, &mut sink);
            }
        }
        for (l, to_backup) in [(&mut tx, true), (&mut rx, false)] {
            l.handle_timeout(now);
            let source = PipelineSource {
                pipeline: if to_backup { &master } else { &backup },
                node: if to_backup { 0 } else { 1 },
            };
            while let Some(len) = l.poll_transmit(now, &source, &mut buf) {
                if !rng.chance(0.05) {
                    in_flight.push((now + 1 + rng.below(5), to_backup, buf[..len].to_vec()));
                }
            }
        }
    }
    assert!(rx.synced());
    let occupied = master.flow_table().occupancy();
    assert!(occupied > 500, "{occupied} flows");
    for (slot, (m, b)) in master
        .flow_table()
        .slots()
        .iter()
        .zip(backup.flow_table().slots())
        .enumerate()
    {
        assert_eq!(
            FlowEntry { last_seen: 0, ..*m },
            FlowEntry { last_seen: 0, ..*b },
            "slot {slot}"
        );
    }
    assert_eq!(master.active_flows(), backup.active_flows());
}

#[test]
fn link_memory() {
    let size = std::mem::size_of::<Link>();
    println!(
        "one Link (one peer): {size} bytes ({} B of unacked and reorder buffers, {} B of change queue)",
        2 * fulcrum_firmware::flowsync::WINDOW * MAX_MESSAGE,
        QUEUE * std::mem::size_of::<Change>()
    );
    // Statically allocated on the MCU: three peers must fit comfortably in the F767's
    // 512 KiB.
    assert!(size < 48 * 1024, "{size}");
}

#[test]
fn a_master_that_steps_down_still_delivers_its_last_changes() {
    let mut net = Net::new(2, SyncMode::AllToAll, 21);
    net.nodes[1].links[0].set_sending(0, false);
    net.delay = (5, 5);
    net.run(300, &[0], 2);
    // Changes made in the last round trip are still queued or unacked when it steps
    // down; they must arrive anyway.
    assert_ne!(net.nodes[0].links[0].lag(), (0, 0));
    let now = net.now;
    net.nodes[0].links[0].set_sending(now, false);
    net.run(now + 200, &[], 0);
    net.assert_replica(1, 0);
    assert!(!net.nodes[0].links[0].connected(), "stopped after draining");
    let sent = net.nodes[0].links[0].stats().data_sent;
    net.run(net.now + 500, &[], 0);
    assert_eq!(
        net.nodes[0].links[0].stats().data_sent,
        sent,
        "nothing more, not even keepalives"
    );
}

/// A snapshot of a large, mostly empty table reads at most `SNAPSHOT_VISITS` slots per
/// `poll_transmit` call (on the board each empty slot costs a register write and read over
/// SPI; the runner yields between calls), and still delivers the whole table.
#[test]
fn snapshot_reads_are_bounded_per_call() {
    use fulcrum_firmware::flowsync::SNAPSHOT_VISITS;
    use std::cell::Cell;

    /// A 64 Ki-slot table with a flow every 64 slots, counting reads.
    struct Sparse {
        flows: Vec<Option<FlowEntry>>,
        reads: Cell<usize>,
    }
    impl ReplicaSource for Sparse {
        fn flow_slots(&self) -> usize {
            self.flows.len()
        }
        fn flow(&self, slot: usize) -> Option<(FlowEntry, u8)> {
            self.reads.set(self.reads.get() + 1);
            self.flows[slot].map(|e| (e, 0))
        }
        fn sticky_slots(&self) -> usize {
            1024
        }
        fn sticky(&self, _: usize) -> Option<StickyEntry> {
            self.reads.set(self.reads.get() + 1);
            None
        }
    }
    let mut source = Sparse {
        flows: vec![None; 65_536],
        reads: Cell::new(0),
    };
    for slot in (0..65_536).step_by(64) {
        source.flows[slot] = Some(FlowEntry {
            valid: true,
            key: FlowKey {
                protocol: 17,
                src: [198, 51, (slot >> 8) as u8, slot as u8],
                dst: [10, 0, 0, 100],
                src_port: slot as u16,
                dst_port: 53,
            },
            state: FlowState::Udp,
            ..FlowEntry::default()
        });
    }
    let mut tx = link(0, 1, 2, SyncMode::AllToAll, 1);
    let mut rx = link(1, 0, 2, SyncMode::AllToAll, 1);
    rx.set_sending(0, false);
    let mut sink = Tables::new(1);
    sink.flows = vec![None; 65_536];
    sink.from = 0;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (mut calls, mut most, mut messages) = (0usize, 0usize, 0usize);
    let mut now = 0;
    // 1 ms each way; the sender is called again at once while it says it has work (as
    // `net::ha_loop` does, yielding in between).
    let mut wire: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    while !rx.synced() && now < 10_000 {
        now += 1;
        let (due, rest): (Vec<_>, Vec<_>) = wire.into_iter().partition(|m| m.0 <= now);
        wire = rest;
        for (_, to_rx, bytes) in due {
            if to_rx {
                let _ = rx.handle_message(now, &bytes, &mut sink);
            } else {
                let _ = tx.handle_message(now, &bytes, &mut sink);
            }
        }
        tx.handle_timeout(now);
        while tx.poll_timeout().is_some_and(|t| t <= now) {
            source.reads.set(0);
            calls += 1;
            let sent = tx.poll_transmit(now, &source, &mut buf);
            most = most.max(source.reads.get());
            match sent {
                Some(len) => {
                    messages += 1;
                    wire.push((now + 1, true, buf[..len].to_vec()));
                }
                None if tx.poll_timeout().is_some_and(|t| t <= now) => {}
                None => break,
            }
            if calls > 1_000_000 {
                panic!("no progress");
            }
        }
        while let Some(len) = rx.poll_transmit(now, &sink, &mut buf) {
            wire.push((now + 1, false, buf[..len].to_vec()));
        }
    }
    assert!(rx.synced(), "snapshot did not finish");
    let held = sink.replicas.get(&0).map_or(0, |r| r.len());
    println!(
        "snapshot of a 65,536-slot table holding 1,024 flows: {calls} poll_transmit calls, at most {most} slots read per call, {messages} messages, synchronised after {now} ms (virtual)"
    );
    assert_eq!(held, 1024);
    assert!(most <= SNAPSHOT_VISITS, "{most} reads in one call");
}
