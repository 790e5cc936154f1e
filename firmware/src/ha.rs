//! High availability in the appliance: one VRRP [`Router`] and one flow-sync [`Link`] per
//! peer, tied to the data path through the register map (sans-IO; the embassy-net runner
//! is [`crate::net::ha_loop`]).
//!
//! - **Where changes come from.** The data path logs every material flow and persistence
//!   change in a FIFO ([`fulcrum_model::changelog`]); [`Ha::drain_changes`] pops it
//!   through the register map and queues each record on every link. A full FIFO (records
//!   lost) starts a full resync of every link instead.
//! - **Where replicas go.** [`BusSink`] writes received entries into the data path's
//!   tables through the replica window (`RECORD` + `INSTALL`); a snapshot begins with
//!   `CLEAR`. Snapshots are read back with `FLOW_READ`/`STICKY_READ` ([`BusSource`]).
//! - **Who sends.** Only the master: its links send, its change log is on. A backup's
//!   log is off and its links only receive. (Turning sending on starts a hello and a full
//!   snapshot.)
//! - **Preemption hold-off.** The router is told the node is synchronised once any link
//!   holds its peer's complete table; a recovered higher-priority node preempts only then.
//! - **The MAC.** Adverts and gratuitous ARPs leave from the RFC virtual MAC
//!   `00:00:5e:00:01:VRID`, and the master answers ARP for every virtual address with it.
//!   Clients and backends therefore never have to re-learn a MAC at takeover: the switch
//!   learns the virtual MAC's new port from the new master's first frame. (With the
//!   appliance's own MAC, as keepalived does by default, takeover would depend on every
//!   host accepting the gratuitous ARP; smoltcp and many embedded stacks ignore ARP not
//!   aimed at them, so they would keep sending to the dead appliance for a minute.) The
//!   data path accepts frames to any MAC; the board's Ethernet MAC filter must also pass
//!   the virtual MAC.

use core::cell::RefCell;
use core::net::Ipv4Addr;

use fulcrum_mgmt::envelope::Key;
use fulcrum_mgmt::ha::{HaAction, HaCause, HaPeerStatus, HaRole, HaStatus};
use fulcrum_mgmt::message::EventKind;
use fulcrum_model::changelog::{self, RECORD_WORDS, TableChange, addr as reg, kind};
use fulcrum_model::config::Config;
use fulcrum_model::flow::{FlowEntry, FlowKey, StickyEntry};
use fulcrum_model::regmap::RegisterBus;
use heapless::{Deque, Vec};

use crate::flowsync::{Change, Link, LinkConfig, ReplicaSink, ReplicaSource, node_ids};
use crate::vrrp::{Cause, Packet, Reconfigure, Role, Router, RouterConfig, virtual_mac};

/// Change records drained per call (bounded work per poll; the rest stay in the FIFO).
pub const DRAIN_BATCH: usize = 256;
/// Flow-sync retransmission timeout, ms.
pub const RTO_MS: u64 = 20;
/// Hello repetition while no session is open, ms.
pub const HELLO_MS: u64 = 50;
/// Keepalive of an idle sender, ms.
pub const KEEPALIVE_MS: u64 = 200;

/// Counters of the HA runner (besides the router's and the links').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HaCounters {
    /// Role changes.
    pub role_changes: u32,
    /// Adverts from another master heard while master.
    pub split_brains: u32,
    /// Change-log overflows seen (each resyncs every link).
    pub overflows: u32,
    /// Change records read.
    pub changes_read: u64,
    /// Sync messages from an address that is no peer.
    pub unknown_sender: u32,
}

/// Up to `N` flow-sync links with their peers' addresses, kept in place: a link is tens
/// of KiB, so they are set up where they live ([`Link::reset`]), never built by value.
struct Links<const N: usize> {
    slots: [(Ipv4Addr, Link); N],
    len: usize,
}

impl<const N: usize> core::ops::Deref for Links<N> {
    type Target = [(Ipv4Addr, Link)];
    fn deref(&self) -> &Self::Target {
        &self.slots[..self.len]
    }
}

impl<const N: usize> core::ops::DerefMut for Links<N> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.slots[..self.len]
    }
}

/// The HA state of one appliance with up to `N` peers.
///
/// It is large (its links), so a board keeps it in a static built at compile time
/// ([`Ha::IDLE`]) and starts it in place ([`Ha::start`]); [`Ha::new`] is for hosts.
pub struct Ha<const N: usize> {
    router: Router,
    links: Links<N>,
    sync_port: u16,
    configured_priority: u8,
    counters: HaCounters,
    events: Deque<EventKind, 16>,
    synced: Vec<bool, N>,
    logging: Option<bool>,
    flow_slots: Option<u32>,
    sticky_slots: Option<u32>,
    last_split_event: Option<u64>,
    vmac_accept: Option<bool>,
    /// An operator action happened: the runner should run promptly.
    kicked: bool,
    waker: Option<core::task::Waker>,
    /// For links rebuilt by [`Ha::reconfigure`].
    key: Key,
    epoch: u64,
    session_base: u64,
    reconfigured: u16,
}

/// Sets up `links` in place: one per peer of `config`'s `[appliance.ha]`, none sending
/// yet. On error nothing changed.
fn make_links<const N: usize>(
    links: &mut Links<N>,
    config: &Config,
    key: &Key,
    epoch: u64,
    session_base: u64,
) -> Result<(), HaError> {
    let ha = config.appliance.ha.as_ref().ok_or(HaError::NotConfigured)?;
    let (node, peers) = node_ids(config.appliance.address, &ha.peers).ok_or(HaError::Peers)?;
    if peers.len() > N {
        return Err(HaError::Peers);
    }
    for (i, &(id, address)) in peers.iter().enumerate() {
        let (peer_address, link) = &mut links.slots[i];
        *peer_address = address;
        link.reset(
            LinkConfig {
                node,
                peer: id,
                peers: peers.iter().map(|p| p.0).collect(),
                mode: ha.sync,
                rto_ms: RTO_MS,
                hello_ms: HELLO_MS,
                keepalive_ms: KEEPALIVE_MS,
            },
            key,
            epoch,
            session_base.wrapping_add((i as u64) << 32),
        );
        // Only the master sends (turned on at the role change).
        link.set_sending(0, false);
    }
    links.len = peers.len();
    Ok(())
}

/// What the management service needs of HA (object-safe, so the appliance holds it
/// without knowing the number of peers).
pub trait HaControl {
    /// The status report at `now`; `refused` is the data path's `INSTALL_REFUSED`.
    fn report(&self, now: u64, refused: u32) -> HaStatus;
    /// Promote, demote or clear.
    fn admin(&mut self, now: u64, action: HaAction);
    /// Whether a pushed config can be applied live (the reason when not).
    fn check_config(&self, config: &Config) -> Result<(), &'static str>;
    /// Applies a pushed config's HA settings at once.
    fn reconfigure(&mut self, now: u64, config: &Config) -> Result<(), &'static str>;
}

impl<const N: usize> HaControl for Ha<N> {
    fn report(&self, now: u64, refused: u32) -> HaStatus {
        self.status(now, refused)
    }
    fn admin(&mut self, now: u64, action: HaAction) {
        match action {
            HaAction::Promote => self.promote(now),
            HaAction::Demote => self.demote(now),
            HaAction::Clear => self.clear_admin(now),
        }
        self.kicked = true;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
    fn check_config(&self, config: &Config) -> Result<(), &'static str> {
        Ha::check_config(self, config)
    }
    fn reconfigure(&mut self, now: u64, config: &Config) -> Result<(), &'static str> {
        Ha::reconfigure(self, now, config)
    }
}

/// Why HA could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaError {
    /// No `[appliance.ha]` in the config.
    NotConfigured,
    /// More peers than this build supports, or a duplicate address.
    Peers,
}

fn role(r: Role) -> HaRole {
    match r {
        Role::Initialize => HaRole::Initialize,
        Role::Backup => HaRole::Backup,
        Role::Master => HaRole::Master,
    }
}

fn cause(c: Cause) -> HaCause {
    match c {
        Cause::Admin => HaCause::Admin,
        Cause::Operator => HaCause::Operator,
        Cause::MasterDown => HaCause::MasterDown,
        Cause::BetterMaster => HaCause::BetterMaster,
        Cause::Owner => HaCause::Owner,
    }
}

impl<const N: usize> Ha<N> {
    /// HA for a validated `config` with `[appliance.ha]`; `key` authenticates sync
    /// messages (the management key); `epoch` and `session_base` must be random per boot.
    pub fn new(config: &Config, key: &Key, epoch: u64, session_base: u64) -> Result<Self, HaError> {
        let mut ha = Ha::IDLE;
        ha.start(config, key, epoch, session_base)?;
        Ok(ha)
    }

    /// Not started: no group, no links (see [`Ha::start`]).
    pub const IDLE: Ha<N> = Ha {
        router: Router::IDLE,
        links: Links {
            slots: [const { (Ipv4Addr::UNSPECIFIED, Link::IDLE) }; N],
            len: 0,
        },
        sync_port: 0,
        configured_priority: 0,
        counters: HaCounters {
            role_changes: 0,
            split_brains: 0,
            overflows: 0,
            changes_read: 0,
            unknown_sender: 0,
        },
        events: Deque::new(),
        synced: Vec::new(),
        logging: None,
        flow_slots: None,
        sticky_slots: None,
        last_split_event: None,
        vmac_accept: None,
        kicked: false,
        waker: None,
        key: Key::PLACEHOLDER,
        epoch: 0,
        session_base: 0,
        reconfigured: 0,
    };

    /// Starts this (idle, [`Ha::IDLE`]) state in place, as [`Ha::new`] with the same
    /// arguments would return it. On error it stays idle.
    pub fn start(
        &mut self,
        config: &Config,
        key: &Key,
        epoch: u64,
        session_base: u64,
    ) -> Result<(), HaError> {
        let ha = config.appliance.ha.as_ref().ok_or(HaError::NotConfigured)?;
        let rc = RouterConfig::from_config(config).ok_or(HaError::NotConfigured)?;
        make_links(&mut self.links, config, key, epoch, session_base)?;
        self.router = Router::new(rc);
        self.synced = self.links.iter().map(|_| false).collect();
        self.sync_port = ha.sync_port;
        self.configured_priority = ha.priority;
        self.key.clone_from(key);
        self.epoch = epoch;
        self.session_base = session_base;
        Ok(())
    }

    /// Whether `config` can be applied while running (see [`Ha::reconfigure`]); the
    /// reason when not.
    pub fn check_config(&self, config: &Config) -> Result<(), &'static str> {
        let Some(ha) = config.appliance.ha.as_ref() else {
            return Err(
                "[appliance.ha] cannot be removed while high availability runs; restart the appliance without it",
            );
        };
        if node_ids(config.appliance.address, &ha.peers).is_none_or(|(_, p)| p.len() > N) {
            return Err("appliance.ha.peers: more peers than this build runs");
        }
        if self.is_master() {
            let rc = RouterConfig::from_config(config).ok_or("no [appliance.ha]")?;
            if rc.vrid != self.router.config().vrid {
                return Err(
                    "appliance.ha.vrid cannot change while this appliance is master; `fulcrum ha demote` it first",
                );
            }
            if rc.primary != self.router.config().primary {
                return Err(
                    "appliance.address cannot change while this appliance is the HA master; `fulcrum ha demote` it first",
                );
            }
        }
        Ok(())
    }

    /// Applies a new config's `[appliance.ha]` at once: priority (the configured one; an
    /// operator's promote/demote stays in force), preemption, hold-off, advert interval
    /// and virtual addresses go to the router (a master re-advertises now); new peers,
    /// sync mode or key-relevant identity rebuild the sync links (each starts over with a
    /// hello; a master then sends a full snapshot); a new sync port is rebound by the
    /// runner. Checked first with [`Ha::check_config`]; a config it refuses changes
    /// nothing.
    pub fn reconfigure(&mut self, now: u64, config: &Config) -> Result<(), &'static str> {
        self.check_config(config)?;
        let ha = config.appliance.ha.as_ref().ok_or("no [appliance.ha]")?;
        let rc = RouterConfig::from_config(config).ok_or("no [appliance.ha]")?;
        let old_vrid = self.router.config().vrid;
        if self.router.reconfigure(now, rc) == Reconfigure::Refused {
            return Err(
                "appliance.ha.vrid cannot change while this appliance is master; `fulcrum ha demote` it first",
            );
        }
        if old_vrid != self.router.config().vrid {
            // The MAC filter entry is written again, for the new virtual MAC.
            self.vmac_accept = None;
        }
        self.configured_priority = ha.priority;
        self.sync_port = ha.sync_port;
        let peers: Vec<Ipv4Addr, N> = self.links.iter().map(|(a, _)| *a).collect();
        let node = self.links.first().map(|(_, l)| l.node());
        let same_links = node_ids(config.appliance.address, &ha.peers).is_some_and(|(n, p)| {
            Some(n) == node
                && p.len() == peers.len()
                && p.iter().all(|(_, a)| peers.contains(a))
                && self.links.iter().all(|(_, l)| l.mode() == ha.sync)
        });
        if !same_links {
            self.reconfigured = self.reconfigured.wrapping_add(1);
            let base = self
                .session_base
                .wrapping_add(u64::from(self.reconfigured) << 48);
            let key = self.key.clone();
            make_links(&mut self.links, config, &key, self.epoch ^ base, base)
                .map_err(|_| "appliance.ha.peers: more peers than this build runs")?;
            let master = self.is_master();
            for (_, link) in self.links.iter_mut() {
                link.set_sending(now, master);
            }
            self.synced = self.links.iter().map(|_| false).collect();
            self.logging = None;
        }
        self.after_router(now);
        self.kicked = true;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Starts the election (the router enters Backup, or Master as the owner).
    pub fn startup(&mut self, now: u64) {
        self.router.startup(now);
        self.after_router(now);
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The links, with their peers' addresses.
    pub fn links(&self) -> &[(Ipv4Addr, Link)] {
        &self.links
    }

    /// The flow-sync UDP port.
    pub fn sync_port(&self) -> u16 {
        self.sync_port
    }

    /// The virtual MAC (adverts, gratuitous ARPs, ARP answers for virtual addresses).
    pub fn mac(&self) -> [u8; 6] {
        virtual_mac(self.router.config().vrid)
    }

    /// Counters.
    pub fn counters(&self) -> &HaCounters {
        &self.counters
    }

    /// Whether this node is master (answers ARP for the virtual addresses).
    pub fn is_master(&self) -> bool {
        self.router.role() == Role::Master
    }

    /// For the runner: whether an operator action happened since the last call (else
    /// `waker` is woken at the next one).
    pub fn take_kick(&mut self, waker: &core::task::Waker) -> bool {
        if core::mem::take(&mut self.kicked) {
            return true;
        }
        self.waker = Some(waker.clone());
        false
    }

    /// An event for the appliance's log.
    pub fn poll_event(&mut self) -> Option<EventKind> {
        self.events.pop_front()
    }

    fn event(&mut self, e: EventKind) {
        if self.events.is_full() {
            self.events.pop_front();
        }
        let _ = self.events.push_back(e);
    }

    /// A VRRP packet (IPv4 header included) punted by the data path.
    pub fn handle_vrrp(&mut self, now: u64, ip_packet: &[u8]) {
        // Split brain: while master, an advert from a master that should be following
        // us (lower priority, or equal with a lower address): two masters after a
        // partition healed. (A higher one is an ordinary preemption.)
        let mine = self.router.master_priority();
        let primary = self.router.config().primary;
        if self.router.role() == Role::Master
            && ip_packet.len() >= 20
            && let Some(vrrp) = ip_packet.get(usize::from(ip_packet[0] & 0x0f) * 4..)
            && let Ok(p) = Packet::new_checked(vrrp)
            && p.vrid() == self.router.config().vrid
            && p.priority() != 0
        {
            let src = Ipv4Addr::new(ip_packet[12], ip_packet[13], ip_packet[14], ip_packet[15]);
            let lower = p.priority() < mine
                || (p.priority() == mine && u32::from(src) < u32::from(primary));
            if src != primary && lower {
                self.counters.split_brains = self.counters.split_brains.wrapping_add(1);
                // One event per episode (at most one a second), not one per advert.
                if self.last_split_event.is_none_or(|t| now >= t + 1000) {
                    self.last_split_event = Some(now);
                    let priority = p.priority();
                    self.event(EventKind::HaSplitBrain {
                        peer: src,
                        priority,
                    });
                    warn!("split brain: another master heard (priority {})", priority);
                }
            }
        }
        let _ = self.router.handle_ipv4(now, ip_packet);
        self.after_router(now);
    }

    /// A flow-sync datagram from `from`; replicas go into the data path through `bus`.
    pub fn handle_sync<B: RegisterBus>(
        &mut self,
        now: u64,
        from: Ipv4Addr,
        bytes: &[u8],
        bus: &mut B,
    ) {
        let Some(i) = self.links.iter().position(|(a, _)| *a == from) else {
            self.counters.unknown_sender = self.counters.unknown_sender.wrapping_add(1);
            return;
        };
        // A master never lets a peer's snapshot clear its own table (a split brain's
        // other master), nor a peer's record replace or remove one of its own flows; the
        // peer's other changes (a demoted master's last ones) are still applied. Nor does
        // a backup still delivering the flows it made as a brief master (a link
        // draining): its snapshot towards the master may still have to read them from
        // the table, so the master's entries are written over it instead of after a
        // clear (what the clear would have removed ages out).
        let draining = self.links.iter().any(|(_, l)| l.draining());
        let clear = !self.is_master() && !draining;
        let mut sink = BusSink {
            bus,
            owners: 0,
            clear_on_snapshot: clear,
            keep_own: self.is_master(),
            cleared: false,
        };
        let _ = self.links[i].1.handle_message(now, bytes, &mut sink);
        if sink.cleared {
            // The table is being replaced: not the group's until the snapshot ends.
            self.router.set_holds_table(now, false);
        }
        self.after_links(now);
    }

    /// `fulcrum ha promote`: priority 254 until cleared.
    pub fn promote(&mut self, now: u64) {
        self.router.promote(now);
        self.after_router(now);
    }

    /// `fulcrum ha demote`: priority 1 (releases mastership) until cleared.
    pub fn demote(&mut self, now: u64) {
        self.router.demote(now);
        self.after_router(now);
    }

    /// Back to the configured priority.
    pub fn clear_admin(&mut self, now: u64) {
        self.router.clear_admin(now);
        self.after_router(now);
    }

    /// Drains the data path's change log into the links (only a master's log is on).
    /// Returns the records read.
    pub fn drain_changes<B: RegisterBus>(&mut self, now: u64, bus: &mut B) -> usize {
        // The log is on while master, and while a demoted master drains its links (the
        // changes still in the FIFO, and those of frames that reach it until the switch
        // has learned the new master's port, go out too).
        let master = self.is_master();
        if self.vmac_accept != Some(master) {
            // The port's MAC filter passes frames to the virtual MAC only on the master: a
            // backup that still gets some (a switch not yet moved) must not make flows.
            let vrid = u32::from(self.router.config().vrid);
            bus.write32(reg::VMAC_FILTER, if master { 0x100 | vrid } else { vrid });
            self.vmac_accept = Some(master);
        }
        let on = master || self.links.iter().any(|(_, l)| l.draining());
        if self.logging != Some(on) {
            // On: clear a stale overflow too. Off: the FIFO empties.
            bus.write32(reg::CHANGE_CTRL, if on { 3 } else { 0 });
            self.logging = Some(on);
        }
        if !on {
            return 0;
        }
        let status = bus.read32(reg::CHANGE_STATUS);
        if status & 0x8000_0000 != 0 {
            // Records were lost: every peer gets a full snapshot instead.
            bus.write32(reg::CHANGE_CTRL, 3);
            self.counters.overflows = self.counters.overflows.wrapping_add(1);
            warn!("change log overflowed: resynchronising every peer");
            for i in 0..self.links.len() {
                self.links[i].1.resync(now);
                let peer = self.links[i].0;
                self.event(EventKind::HaResync { peer });
            }
        }
        let waiting = (status & 0xFFFF) as usize;
        let mut read = 0;
        for _ in 0..waiting.min(DRAIN_BATCH) {
            bus.write32(reg::CHANGE_POP, 0);
            let w = read_record(bus);
            let Some(change) = changelog::decode(&w) else {
                break;
            };
            read += 1;
            let change = match change {
                TableChange::Flow { slot, entry } => Change::Flow { slot, entry },
                TableChange::FlowRemoved { slot, key } => Change::FlowRemoved { slot, key },
                TableChange::Sticky(e) => Change::Sticky(e),
                TableChange::StickyRemoved { service, client } => {
                    Change::StickyRemoved { service, client }
                }
                TableChange::Clear => continue,
            };
            for (_, link) in self.links.iter_mut() {
                link.record(change);
            }
        }
        self.counters.changes_read = self.counters.changes_read.wrapping_add(read as u64);
        read
    }

    /// Timers of the router and the links.
    pub fn handle_timeout(&mut self, now: u64) {
        self.router.handle_timeout(now);
        for (_, link) in self.links.iter_mut() {
            link.handle_timeout(now);
        }
        self.after_router(now);
    }

    /// When to call [`Ha::handle_timeout`] next, ms.
    pub fn poll_timeout(&self) -> Option<u64> {
        let links = self.links.iter().filter_map(|(_, l)| l.poll_timeout());
        links.chain(self.router.poll_timeout()).min()
    }

    /// The next VRRP frame to send (a whole Ethernet frame: advert or gratuitous ARP).
    pub fn poll_frame(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.router.poll_transmit(buf)
    }

    /// The next flow-sync datagram: (peer, length). Snapshots are read from the data path
    /// through `bus`.
    pub fn poll_sync<B: RegisterBus>(
        &mut self,
        now: u64,
        bus: &mut B,
        buf: &mut [u8],
    ) -> Option<(Ipv4Addr, usize)> {
        let flow_slots = *self
            .flow_slots
            .get_or_insert_with(|| bus.read32(reg::FLOW_SLOTS));
        let sticky_slots = *self
            .sticky_slots
            .get_or_insert_with(|| bus.read32(reg::STICKY_SLOTS));
        let node = self.links.first().map_or(0, |(_, l)| l.node());
        let source = BusSource {
            bus: RefCell::new(bus),
            node,
            flow_slots,
            sticky_slots,
        };
        for i in 0..self.links.len() {
            let before = self.links[i].1.stats().resyncs;
            let sent = self.links[i].1.poll_transmit(now, &source, buf);
            if self.links[i].1.stats().resyncs != before {
                let peer = self.links[i].0;
                self.event(EventKind::HaResync { peer });
            }
            if let Some(len) = sent {
                return Some((self.links[i].0, len));
            }
        }
        None
    }

    /// After the router may have changed: role events, the links' sending, the log.
    fn after_router(&mut self, now: u64) {
        self.after_links(now);
        while let Some(change) = self.router.poll_event() {
            self.counters.role_changes = self.counters.role_changes.wrapping_add(1);
            info!(
                "HA role {} -> {}",
                role(change.from).as_str(),
                role(change.to).as_str()
            );
            self.event(EventKind::HaRoleChanged {
                from: role(change.from),
                to: role(change.to),
                cause: cause(change.cause),
            });
            let master = change.to == Role::Master;
            for (_, link) in self.links.iter_mut() {
                link.set_sending(now, master);
            }
        }
    }

    fn after_links(&mut self, now: u64) {
        let mut any = false;
        for i in 0..self.links.len() {
            let s = self.links[i].1.synced();
            if s && !self.synced[i] {
                let peer = self.links[i].0;
                self.event(EventKind::HaSynced { peer });
            }
            self.synced[i] = s;
            any |= s;
            // We hold the group's table once we received a peer's complete table, or a
            // peer acknowledged ours (see `crate::vrrp`, "A master without the flow
            // table yields to one with it").
            if s || self.links[i].1.peer_synced() {
                self.router.set_holds_table(now, true);
            }
        }
        if any != self.router.synced() {
            self.router.set_synced(now, any);
        }
    }

    /// Whether this node holds the group's flow table ([`Router::holds_table`]).
    pub fn holds_table(&self) -> bool {
        self.router.holds_table()
    }

    /// The `fulcrum ha status` report at `now`; `refused` is the data path's
    /// `INSTALL_REFUSED`.
    pub fn status(&self, now: u64, refused: u32) -> HaStatus {
        let r = &self.router;
        let mut peers = Vec::new();
        for (address, link) in self.links.iter() {
            let s = link.stats();
            let (entries, messages) = link.lag();
            let _ = peers.push(HaPeerStatus {
                address: Some(*address),
                connected: link.connected(),
                synced: link.synced(),
                sending: link.sending(),
                lag_entries: entries as u32,
                lag_messages: messages as u32,
                lag_ms: link.lag_ms(now),
                resyncs: s.resyncs,
                snapshots_received: s.snapshots_received,
                records_applied: s.records_applied,
                data_sent: s.data_sent,
                retransmitted: s.retransmitted,
                refused: s.bad_tag.wrapping_add(s.stale).wrapping_add(s.malformed),
                last_applied_ago_ms: link.last_applied_at().map(|t| now.saturating_sub(t)),
            });
        }
        HaStatus {
            enabled: true,
            role: Some(role(r.role())),
            vrid: r.config().vrid,
            // What it advertises: a master without the flow table runs held off.
            priority: if r.role() == Role::Master {
                r.master_priority()
            } else {
                r.priority()
            },
            configured_priority: self.configured_priority,
            advert_interval_ms: u64::from(r.config().advert_interval_cs) * 10,
            master_down_interval_ms: r.master_down_interval_ms(),
            master: r.master(),
            last_advert_ago_ms: r.last_advert_at().map(|t| now.saturating_sub(t)),
            role_changes: self.counters.role_changes,
            split_brains: self.counters.split_brains,
            adverts_sent: r.stats().adverts_sent,
            adverts_received: r.stats().adverts_received,
            change_log_overflows: self.counters.overflows,
            changes_read: self.counters.changes_read,
            install_refused: refused,
            peers,
        }
    }
}

fn read_record<B: RegisterBus>(bus: &mut B) -> [u32; RECORD_WORDS] {
    let mut w = [0u32; RECORD_WORDS];
    for (i, x) in w.iter_mut().enumerate() {
        *x = bus.read32(reg::RECORD + i as u16);
    }
    w
}

/// `keep`: the data path keeps its own flows (a master applying a peer's records).
fn write_record<B: RegisterBus>(bus: &mut B, change: &TableChange, keep: bool) {
    for (i, x) in changelog::encode(change).iter().enumerate() {
        bus.write32(reg::RECORD + i as u16, *x);
    }
    bus.write32(reg::INSTALL, u32::from(keep));
}

/// The data path's tables read back through the register map (snapshot source). Empty
/// slots cost one write and one read.
pub struct BusSource<'a, B> {
    bus: RefCell<&'a mut B>,
    node: u8,
    flow_slots: u32,
    sticky_slots: u32,
}

impl<B: RegisterBus> BusSource<'_, B> {
    fn read(&self, strobe: u16, slot: usize) -> Option<TableChange> {
        let mut bus = self.bus.borrow_mut();
        bus.write32(strobe, slot as u32);
        let w0 = bus.read32(reg::RECORD);
        if w0 >> 28 == kind::NONE {
            return None;
        }
        let mut w = read_record(&mut **bus);
        w[0] = w0;
        changelog::decode(&w)
    }
}

impl<B: RegisterBus> ReplicaSource for BusSource<'_, B> {
    fn flow_slots(&self) -> usize {
        self.flow_slots as usize
    }
    fn flow(&self, slot: usize) -> Option<(FlowEntry, u8)> {
        match self.read(reg::FLOW_READ, slot)? {
            TableChange::Flow { entry, .. } => Some((entry, self.node)),
            _ => None,
        }
    }
    fn sticky_slots(&self) -> usize {
        self.sticky_slots as usize
    }
    fn sticky(&self, slot: usize) -> Option<StickyEntry> {
        match self.read(reg::STICKY_READ, slot)? {
            TableChange::Sticky(e) => Some(e),
            _ => None,
        }
    }
}

/// Replicas written into the data path through the register map's replica window.
pub struct BusSink<'a, B> {
    bus: &'a mut B,
    /// Owner records received (owner + backup mode; the data path has no owner table).
    pub owners: u32,
    /// Whether a snapshot's begin clears the tables: not on a master, nor on a backup
    /// still delivering what it made as master.
    pub clear_on_snapshot: bool,
    /// Whether the data path keeps its own flows against the peer's records (`INSTALL`
    /// with "keep own"): on a master.
    pub keep_own: bool,
    /// Set when a snapshot's begin cleared the tables.
    pub cleared: bool,
}

impl<B: RegisterBus> ReplicaSink for BusSink<'_, B> {
    fn upsert_flow(&mut self, _now: u64, slot: usize, entry: FlowEntry, _owner: u8) {
        write_record(
            self.bus,
            &TableChange::Flow {
                slot: slot as u32,
                entry,
            },
            self.keep_own,
        );
    }
    fn remove_flow(&mut self, _now: u64, slot: usize, key: &FlowKey) {
        write_record(
            self.bus,
            &TableChange::FlowRemoved {
                slot: slot as u32,
                key: *key,
            },
            self.keep_own,
        );
    }
    fn upsert_sticky(&mut self, _now: u64, entry: StickyEntry) {
        write_record(self.bus, &TableChange::Sticky(entry), self.keep_own);
    }
    fn remove_sticky(&mut self, _now: u64, service: u8, client: [u8; 4]) {
        write_record(
            self.bus,
            &TableChange::StickyRemoved { service, client },
            self.keep_own,
        );
    }
    fn flow_owner(&mut self, _now: u64, _key: &FlowKey, _owner: u8) {
        self.owners = self.owners.wrapping_add(1);
    }
    fn begin_snapshot(&mut self, _now: u64, _from: u8) {
        if self.clear_on_snapshot {
            write_record(self.bus, &TableChange::Clear, false);
            self.cleared = true;
        }
    }
}
