//! The whole L4 fast path: `process(now, frame, port)` gives a verdict and the frame to
//! transmit. This is the behaviour the FPGA must reproduce bit for bit.
//!
//! ## Ports
//! Port 1 faces the network (clients, backends, peers); port 2 faces the MCU. Every frame
//! from the MCU goes to the network unchanged. Frames from the network are classified in
//! this order; the first rule that applies decides:
//!
//! 1. parse errors → drop with the parser's reason; ARP → punt; IPv6 → punt; any other
//!    non-IPv4 EtherType → drop (`unsupported_ethertype`);
//! 2. to the appliance's own address → punt; to a broadcast or multicast address → punt;
//! 3. to a VIP: fragments → punt; the service of (VIP, protocol, port): L7 → punt,
//!    otherwise the **forward path**; no such service: ICMP → punt, else drop (`no_service`);
//! 4. to a full-NAT pool address: ICMP and fragments → punt; TCP/UDP → the **full-NAT
//!    return path**;
//! 5. TCP/UDP from a NAT-mode backend (address and port) → the **NAT return path**;
//! 6. anything else → drop (`not_for_us`).
//!
//! ## Forward path
//! The flow hash is Toeplitz over (src, dst, src port, dst port); the source hash is
//! Toeplitz over the source address alone. The flow table is looked up; a hit whose backend
//! still keeps flows (up or draining, same slot generation) is used and refreshed. A hit
//! whose backend went down, was disabled or removed is freed and handled as a miss (the
//! flow moves). On a miss, a TCP segment that is not a SYN is dropped (`tcp_no_flow`)
//! unless the algorithm is stateless (Maglev, IP hash), in which case the flow is
//! re-created where its SYN went. Persistence (if the service is sticky) is consulted
//! before the algorithm and refreshed after it. A chosen backend without a resolved MAC
//! punts the frame (the MCU resolves it) and creates no flow.
//!
//! ## Return paths
//! NAT: the reply from backend B to client C is matched to the flow (C → VIP) by
//! rebuilding its key; the flow must exist and point at B. Full NAT: the reply's
//! destination port names the flow-table slot directly
//! (`slot = pool index × (65536 − base) + port − base`); the slot's flow must point at B.
//!
//! ## Replicated flows (high availability)
//! A backup appliance holds the master's flows so that after a takeover every established
//! flow keeps its backend and NAT mapping. [`Pipeline::install_flow`] writes a flow into
//! the *same slot* the master had it in (the full-NAT source port is the slot, so any other
//! slot would change the mapping); the slot must lie in the set the flow's key hashes to,
//! or later lookups could not find it. Whatever else the slot held is freed, and a copy of
//! the same key in another way of the set is removed, so a key is never in the table twice.
//! The backend's active-flow count follows, as if the flow had been created here.
//! [`Pipeline::install_sticky`] writes a persistence entry by the normal insertion rule
//! (its slot carries no meaning). Times (`last_seen`) are this appliance's clock: the
//! caller converts the master's idle time.
//!
//! ## Tables and commits
//! Two banks of settings, services, members, backends and rings: writes go to the shadow
//! bank, [`Pipeline::commit`] copies it to the active bank between two frames. A backend
//! slot whose generation changes starts with zero active flows; a service whose entry or
//! members change restarts its round-robin state.

use core::net::Ipv4Addr;

use crate::changelog::TableChange;
use crate::config::{Algorithm, Mode, Protocol};
use crate::counters::{Counters, DropReason, PuntReason};
use crate::flow::{FlowEntry, FlowKey, FlowState, Lookup, SetAssociative, StickyEntry};
use crate::hash::ToeplitzKey;
use crate::rewrite::{self, Endpoint, Tunnel};
use crate::select::{Candidates, SelectState};
use crate::tables::{
    BACKEND_SLOTS, BackendEntry, BackendState, MEMBER_SLOTS, NO_BACKEND, SERVICE_SLOTS,
    ServiceEntry, Settings, TableWriter,
};
use crate::wire::{self, Headers, L3, L4, ParseError, TcpFlags};

/// A port of the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Port {
    /// Port 1: the network.
    Network,
    /// Port 2: the MCU.
    Mcu,
}

/// What happened to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// Rewritten towards a backend (forward path) of a service.
    ToBackend {
        /// Service-table index.
        service: u8,
        /// Backend-table index.
        backend: u16,
        /// Whether this frame created the flow.
        new_flow: bool,
    },
    /// Rewritten back towards the client (NAT return path).
    ToClient {
        /// Service-table index.
        service: u8,
        /// Backend-table index.
        backend: u16,
    },
    /// From the MCU, sent to the network unchanged.
    FromMcu,
    /// Handed to the MCU unchanged.
    Punt(PuntReason),
    /// Dropped.
    Drop(DropReason),
}

/// The result of processing one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Verdict {
    /// What happened.
    pub action: Action,
    /// The port the output frame leaves by (`None` when dropped).
    pub egress: Option<Port>,
    /// Length of the output frame written to `out` (0 when dropped).
    pub len: usize,
    /// The flow hash (0 when the frame had no IPv4 header).
    pub hash: u32,
}

/// Bytes `out` needs beyond the input frame for any verdict (the GUE overhead).
pub const OUT_HEADROOM: usize = rewrite::GUE_OVERHEAD;

/// Persistence-table entries the appliance gives a flow table of `flow_slots` entries: a
/// sixteenth (at least one), each its own set ([`STICKY_WAYS`]): direct-mapped, as the
/// FPGA fast path's (128 entries beside its 2,048 flows), so every data path of one
/// configuration keeps the same persistence entries.
pub const fn sticky_slots(flow_slots: usize) -> usize {
    if flow_slots < 16 { 1 } else { flow_slots / 16 }
}

/// Ways of the persistence table (see [`sticky_slots`]).
pub const STICKY_WAYS: usize = 1;

/// One bank of tables.
#[derive(Debug)]
struct Bank<'a> {
    settings: Settings,
    services: [ServiceEntry; SERVICE_SLOTS],
    members: [[u16; MEMBER_SLOTS]; SERVICE_SLOTS],
    backends: [BackendEntry; BACKEND_SLOTS],
    /// `SERVICE_SLOTS` rings of `ring_stride` entries each.
    rings: &'a mut [u16],
    ring_stride: usize,
}

impl<'a> Bank<'a> {
    fn new(rings: &'a mut [u16]) -> Self {
        let ring_stride = rings.len() / SERVICE_SLOTS;
        rings.fill(crate::maglev::EMPTY);
        Bank {
            settings: Settings::default(),
            services: [ServiceEntry::default(); SERVICE_SLOTS],
            members: [[NO_BACKEND; MEMBER_SLOTS]; SERVICE_SLOTS],
            backends: [BackendEntry::default(); BACKEND_SLOTS],
            rings,
            ring_stride,
        }
    }

    fn ring(&self, service: usize) -> &[u16] {
        let len = (self.settings.ring_size as usize).min(self.ring_stride);
        let start = service * self.ring_stride;
        self.rings.get(start..start + len).unwrap_or(&[])
    }

    fn members(&self, service: usize) -> &[u16] {
        let count = usize::from(self.services[service].member_count).min(MEMBER_SLOTS);
        &self.members[service][..count]
    }
}

/// Storage the caller provides (so the model needs no allocator): flow-table and
/// persistence-table slots, and the two banks' ring memories.
#[derive(Debug)]
pub struct Storage<'a> {
    /// Flow-table slots (`sets × ways`).
    pub flows: &'a mut [FlowEntry],
    /// Ways of the flow table.
    pub flow_ways: usize,
    /// Persistence-table slots (`sets × ways`).
    pub sticky: &'a mut [StickyEntry],
    /// Ways of the persistence table.
    pub sticky_ways: usize,
    /// Active bank's ring memory: at least `SERVICE_SLOTS × ring_size` entries.
    pub ring_active: &'a mut [u16],
    /// Shadow bank's ring memory, the same size.
    pub ring_shadow: &'a mut [u16],
}

/// The reference model of the data path.
#[derive(Debug)]
pub struct Pipeline<'a> {
    active: Bank<'a>,
    shadow: Bank<'a>,
    rings_dirty: bool,
    key: ToeplitzKey,
    flows: SetAssociative<'a, FlowEntry>,
    sticky: SetAssociative<'a, StickyEntry>,
    select: SelectState,
    active_flows: [u32; BACKEND_SLOTS],
    counters: Counters,
    changes: crate::changelog::ChangeLog,
}

fn now32(now_ms: u64) -> u32 {
    now_ms as u32
}

fn is_syn_only(flags: TcpFlags) -> bool {
    flags.syn && !flags.ack && !flags.rst && !flags.fin
}

fn next_state(state: FlowState, flags: Option<TcpFlags>) -> FlowState {
    match flags {
        None => FlowState::Udp,
        Some(f) if f.fin || f.rst => FlowState::Closing,
        Some(f) if state == FlowState::SynSeen && !f.syn => FlowState::Established,
        Some(_) => state,
    }
}

impl<'a> Pipeline<'a> {
    /// A pipeline with empty tables over `storage`.
    pub fn new(storage: Storage<'a>) -> Self {
        Pipeline {
            active: Bank::new(storage.ring_active),
            shadow: Bank::new(storage.ring_shadow),
            rings_dirty: false,
            key: ToeplitzKey::default(),
            flows: SetAssociative::new(storage.flows, storage.flow_ways),
            sticky: SetAssociative::new(storage.sticky, storage.sticky_ways),
            select: SelectState::default(),
            active_flows: [0; BACKEND_SLOTS],
            counters: Counters::default(),
            changes: crate::changelog::ChangeLog::new(),
        }
    }

    /// The change log (high availability, see [`crate::changelog`]).
    pub fn change_log(&self) -> &crate::changelog::ChangeLog {
        &self.changes
    }

    /// The change log, to enable and drain it.
    pub fn change_log_mut(&mut self) -> &mut crate::changelog::ChangeLog {
        &mut self.changes
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Active flows per backend-table index.
    pub fn active_flows(&self) -> &[u32; BACKEND_SLOTS] {
        &self.active_flows
    }

    /// The active settings.
    pub fn settings(&self) -> &Settings {
        &self.active.settings
    }

    /// Active service-table entry `index`.
    pub fn service(&self, index: usize) -> Option<&ServiceEntry> {
        self.active.services.get(index)
    }

    /// Active backend-table entry `index`.
    pub fn backend(&self, index: usize) -> Option<&BackendEntry> {
        self.active.backends.get(index)
    }

    /// The active members of service `index`.
    pub fn members(&self, index: usize) -> &[u16] {
        if index < SERVICE_SLOTS {
            self.active.members(index)
        } else {
            &[]
        }
    }

    /// The active ring of service `index`.
    pub fn ring(&self, index: usize) -> &[u16] {
        if index < SERVICE_SLOTS {
            self.active.ring(index)
        } else {
            &[]
        }
    }

    /// The flow table (for status and flow sync).
    pub fn flow_table(&self) -> &SetAssociative<'a, FlowEntry> {
        &self.flows
    }

    /// The persistence table.
    pub fn sticky_table(&self) -> &SetAssociative<'a, StickyEntry> {
        &self.sticky
    }

    /// Toeplitz hash of a flow with the active key (ports omitted when `None`).
    pub fn flow_hash(&self, src: Ipv4Addr, dst: Ipv4Addr, ports: Option<(u16, u16)>) -> u32 {
        self.key.hash_v4(src.octets(), dst.octets(), ports)
    }

    /// Frees flow-table and persistence entries idle past their timeouts, visiting at most
    /// `budget` slots of each table from their aging cursors.
    pub fn age(&mut self, now_ms: u64, budget: usize) {
        let now = now32(now_ms);
        let settings = self.active.settings;
        let backends = &self.active.backends;
        let active_flows = &mut self.active_flows;
        let counters = &mut self.counters;
        let changes = &mut self.changes;
        self.flows.age(
            now,
            budget,
            |e| e.state.timeout(&settings),
            |e| {
                release(active_flows, backends, e);
                counters.expirations = counters.expirations.wrapping_add(1);
                changes.push(TableChange::FlowRemoved {
                    slot: crate::changelog::NO_SLOT,
                    key: e.key,
                });
            },
        );
        let services = &self.active.services;
        self.sticky
            .age(now, budget, |e| sticky_timeout(services, e), |_| {});
    }

    /// Processes one frame received on `ingress` at `now_ms`, writing the frame to send
    /// into `out`. `out` must hold `frame.len() + OUT_HEADROOM` bytes; a shorter `out` is
    /// a runner bug, and the frame is dropped as `no_buffer` before anything else happens
    /// (no flow is created, nothing else is counted). Never panics.
    pub fn process(&mut self, now_ms: u64, frame: &[u8], ingress: Port, out: &mut [u8]) -> Verdict {
        self.counters.rx_frames = self.counters.rx_frames.wrapping_add(1);
        if out.len() < frame.len() + OUT_HEADROOM {
            return self.drop(DropReason::NoBuffer, 0);
        }
        if ingress == Port::Mcu {
            self.counters.from_mcu = self.counters.from_mcu.wrapping_add(1);
            return self.pass(frame, out, Action::FromMcu, Port::Network, 0);
        }
        let headers = match wire::parse(frame) {
            Ok(h) => h,
            Err(e) => return self.drop(parse_drop(e), 0),
        };
        let ip = match headers.l3 {
            L3::Ipv4(ip) => ip,
            L3::Arp => return self.punt(frame, out, PuntReason::Arp, 0),
            L3::Ipv6 => return self.punt(frame, out, PuntReason::Ipv6, 0),
            L3::Other(_) => return self.drop(DropReason::UnsupportedEthertype, 0),
        };
        let hash = self.flow_hash(ip.src, ip.dst, ip.l4.ports());
        let settings = &self.active.settings;
        if ip.dst == settings.address {
            return self.punt(frame, out, PuntReason::OwnAddress, hash);
        }
        if ip.dst.is_broadcast() || ip.dst.is_multicast() {
            return self.punt(frame, out, PuntReason::Multicast, hash);
        }
        let now = now32(now_ms);
        let vip_match = self
            .active
            .services
            .iter()
            .any(|s| s.valid && s.vip == ip.dst);
        if vip_match {
            if ip.l4 == L4::Fragment {
                return self.punt(frame, out, PuntReason::Fragment, hash);
            }
            let found = ip.l4.ports().and_then(|(_, dport)| {
                self.active.services.iter().position(|s| {
                    s.valid
                        && s.vip == ip.dst
                        && s.protocol.ip_number() == ip.protocol
                        && s.port == dport
                })
            });
            return match found {
                Some(svc) if self.active.services[svc].mode == Mode::L7 => {
                    self.punt(frame, out, PuntReason::L7Service, hash)
                }
                Some(svc) => self.forward(now, frame, &headers, svc, hash, out),
                None if ip.l4 == L4::Icmp => self.punt(frame, out, PuntReason::Icmp, hash),
                None => self.drop(DropReason::NoService, hash),
            };
        }
        if let Some(pool) = settings.snat_pool
            [..usize::from(settings.snat_count).min(settings.snat_pool.len())]
            .iter()
            .position(|a| *a == ip.dst)
        {
            return match ip.l4 {
                L4::Fragment => self.punt(frame, out, PuntReason::Fragment, hash),
                L4::Icmp => self.punt(frame, out, PuntReason::Icmp, hash),
                L4::Tcp { .. } | L4::Udp { .. } => {
                    self.fullnat_return(now, frame, &headers, pool, hash, out)
                }
                L4::Other => self.drop(DropReason::NotForUs, hash),
            };
        }
        if let Some((sport, _)) = ip.l4.ports()
            && let Some((svc, backend)) = self.nat_backend(ip.src.octets(), sport, ip.protocol)
        {
            return self.nat_return(now, frame, &headers, svc, backend, hash, out);
        }
        self.drop(DropReason::NotForUs, hash)
    }

    fn forward(
        &mut self,
        now: u32,
        frame: &[u8],
        headers: &Headers,
        svc: usize,
        hash: u32,
        out: &mut [u8],
    ) -> Verdict {
        let Some(ip) = headers.ipv4().copied() else {
            return self.drop(DropReason::NotForUs, hash);
        };
        let Some((sport, dport)) = ip.l4.ports() else {
            return self.drop(DropReason::NoService, hash);
        };
        let flags = match ip.l4 {
            L4::Tcp { flags, .. } => Some(flags),
            _ => None,
        };
        let service = self.active.services[svc];
        let key = FlowKey {
            protocol: ip.protocol,
            src: ip.src.octets(),
            dst: ip.dst.octets(),
            src_port: sport,
            dst_port: dport,
        };
        let settings = self.active.settings;
        let mut existing = None;
        match self
            .flows
            .lookup(key, hash, now, |e| e.state.timeout(&settings))
        {
            Lookup::Hit(slot) => {
                let entry = *self.flows.get(slot).unwrap_or(&FlowEntry::default());
                let backend = self.active.backends[usize::from(entry.backend) % BACKEND_SLOTS];
                if backend.state.keeps_flows() && backend.generation == entry.generation {
                    existing = Some(slot);
                } else {
                    if let Some(gone) = self.flows.remove(slot) {
                        release(&mut self.active_flows, &self.active.backends, &gone);
                        self.changes.push(TableChange::FlowRemoved {
                            slot: slot as u32,
                            key: gone.key,
                        });
                    }
                    self.counters.moved_flows = self.counters.moved_flows.wrapping_add(1);
                }
            }
            Lookup::Expired(gone) => {
                release(&mut self.active_flows, &self.active.backends, &gone);
                self.counters.expirations = self.counters.expirations.wrapping_add(1);
                self.changes.push(TableChange::FlowRemoved {
                    slot: crate::changelog::NO_SLOT,
                    key: gone.key,
                });
            }
            Lookup::Miss => {}
        }
        let (slot, backend_index, new_flow) = match existing {
            Some(slot) => {
                let Some(entry) = self.flows.get_mut(slot) else {
                    return self.drop(DropReason::NoBackend, hash);
                };
                let before = *entry;
                entry.last_seen = now;
                entry.state = next_state(entry.state, flags);
                entry.client_mac = headers.src_mac;
                let after = *entry;
                log_update(&mut self.changes, slot, &before, &after, &settings);
                (slot, entry.backend, false)
            }
            None => {
                if let Some(f) = flags
                    && !is_syn_only(f)
                    && !service.algorithm.is_stateless()
                {
                    return self.drop(DropReason::TcpNoFlow, hash);
                }
                let src_hash = self.key.hash(&key.src);
                let backend_index = self.choose(now, svc, &service, key.src, hash, src_hash);
                if backend_index == NO_BACKEND {
                    return self.drop(DropReason::NoBackend, hash);
                }
                let backend = self.active.backends[usize::from(backend_index)];
                if !backend.mac_resolved() {
                    return self.punt(frame, out, PuntReason::NeighborUnresolved, hash);
                }
                let state = match flags {
                    None => FlowState::Udp,
                    Some(f) if is_syn_only(f) => FlowState::SynSeen,
                    Some(f) => next_state(FlowState::Established, Some(f)),
                };
                let entry = FlowEntry {
                    valid: true,
                    key,
                    service: svc as u8,
                    backend: backend_index,
                    generation: backend.generation,
                    state,
                    last_seen: now,
                    client_mac: headers.src_mac,
                };
                let Some(ins) = self
                    .flows
                    .insert(entry, hash, now, |e| e.state.timeout(&settings))
                else {
                    return self.drop(DropReason::NoBackend, hash);
                };
                if let Some(displaced) = ins.displaced {
                    release(&mut self.active_flows, &self.active.backends, &displaced);
                    if ins.evicted_live {
                        self.counters.evictions = self.counters.evictions.wrapping_add(1);
                    } else {
                        self.counters.expirations = self.counters.expirations.wrapping_add(1);
                    }
                }
                self.changes.push(TableChange::Flow {
                    slot: ins.slot as u32,
                    entry,
                });
                let b = usize::from(backend_index);
                self.active_flows[b] = self.active_flows[b].saturating_add(1);
                let sc = &mut self.counters.services[svc];
                sc.new_flows = sc.new_flows.wrapping_add(1);
                let bc = &mut self.counters.backends[b];
                bc.flows = bc.flows.wrapping_add(1);
                (ins.slot, backend_index, true)
            }
        };
        let backend = self.active.backends[usize::from(backend_index)];
        let len = match self.rewrite_forward(frame, headers, &service, &backend, slot, hash, out) {
            Ok(len) => len,
            Err(reason) => return self.drop(reason, hash),
        };
        let bytes = frame.len() as u64;
        let sc = &mut self.counters.services[svc];
        sc.packets = sc.packets.wrapping_add(1);
        sc.bytes = sc.bytes.wrapping_add(bytes);
        let bc = &mut self.counters.backends[usize::from(backend_index)];
        bc.packets = bc.packets.wrapping_add(1);
        bc.bytes = bc.bytes.wrapping_add(bytes);
        Verdict {
            action: Action::ToBackend {
                service: svc as u8,
                backend: backend_index,
                new_flow,
            },
            egress: Some(Port::Network),
            len,
            hash,
        }
    }

    /// Picks the backend of a new flow: persistence first, then the algorithm.
    fn choose(
        &mut self,
        now: u32,
        svc: usize,
        service: &ServiceEntry,
        client: [u8; 4],
        hash: u32,
        src_hash: u32,
    ) -> u16 {
        let sticky_hash = src_hash ^ svc as u32;
        let services = &self.active.services;
        if service.sticky
            && let Lookup::Hit(slot) =
                self.sticky
                    .lookup((svc as u8, client), sticky_hash, now, |e| {
                        sticky_timeout(services, e)
                    })
        {
            {
                let entry = self.sticky.get(slot).copied().unwrap_or_default();
                let backend = self.active.backends[usize::from(entry.backend) % BACKEND_SLOTS];
                let member = self.active.members(svc).contains(&entry.backend);
                if member
                    && backend.state.takes_new_flows()
                    && backend.weight > 0
                    && backend.generation == entry.generation
                {
                    if let Some(e) = self.sticky.get_mut(slot) {
                        let timeout = sticky_timeout(services, e);
                        let due = crate::changelog::refresh_due(e.last_seen, now, timeout);
                        e.last_seen = now;
                        if due {
                            self.changes.push(TableChange::Sticky(*e));
                        }
                    }
                    return entry.backend;
                }
                self.sticky.remove(slot);
                self.changes.push(TableChange::StickyRemoved {
                    service: entry.service,
                    client: entry.client,
                });
            }
        }
        let candidates = Candidates {
            members: self.active.members(svc),
            backends: &self.active.backends,
            active: &self.active_flows,
            ring: self.active.ring(svc),
        };
        let choice = self
            .select
            .select(service.algorithm, svc, &candidates, hash, src_hash);
        if service.sticky && choice != NO_BACKEND {
            let entry = StickyEntry {
                valid: true,
                service: svc as u8,
                client,
                backend: choice,
                generation: self.active.backends[usize::from(choice)].generation,
                last_seen: now,
            };
            let services = &self.active.services;
            if let Some(ins) = self
                .sticky
                .insert(entry, sticky_hash, now, |e| sticky_timeout(services, e))
            {
                if let Some(gone) = ins.displaced {
                    self.changes.push(TableChange::StickyRemoved {
                        service: gone.service,
                        client: gone.client,
                    });
                }
                self.changes.push(TableChange::Sticky(entry));
            }
        }
        choice
    }

    #[allow(clippy::too_many_arguments)]
    fn rewrite_forward(
        &self,
        frame: &[u8],
        headers: &Headers,
        service: &ServiceEntry,
        backend: &BackendEntry,
        slot: usize,
        hash: u32,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        let settings = &self.active.settings;
        let copy = |out: &mut [u8]| -> Result<usize, DropReason> {
            let dst = out.get_mut(..frame.len()).ok_or(DropReason::Runt)?;
            dst.copy_from_slice(frame);
            rewrite::set_macs(dst, backend.mac, settings.mac);
            Ok(frame.len())
        };
        match service.mode {
            Mode::Nat => {
                let len = copy(out)?;
                let to = Endpoint {
                    addr: backend.address,
                    port: backend.port,
                };
                rewrite::rewrite_endpoints(&mut out[..len], headers, None, Some(to));
                Ok(len)
            }
            Mode::Fullnat => {
                let from = snat_endpoint(settings, slot).ok_or(DropReason::NoBackend)?;
                let len = copy(out)?;
                let to = Endpoint {
                    addr: backend.address,
                    port: backend.port,
                };
                rewrite::rewrite_endpoints(&mut out[..len], headers, Some(from), Some(to));
                Ok(len)
            }
            Mode::Dsr => copy(out),
            Mode::Ipip | Mode::Gue => {
                let tunnel = Tunnel {
                    src: settings.tunnel_source.octets(),
                    dst: backend.address,
                    gue_port: (service.mode == Mode::Gue).then_some(service.gue_port),
                    flow_hash: hash,
                };
                rewrite::encapsulated_len(headers, &tunnel).ok_or(DropReason::TunnelMtu)?;
                rewrite::encapsulate(frame, headers, &tunnel, backend.mac, settings.mac, out)
                    .ok_or(DropReason::Runt)
            }
            Mode::L7 => Err(DropReason::NoService),
        }
    }

    /// The NAT service and backend whose (address, port, protocol) sent a frame, scanning
    /// services and then members in table order.
    fn nat_backend(&self, addr: [u8; 4], port: u16, protocol: u8) -> Option<(usize, u16)> {
        (0..SERVICE_SLOTS).find_map(|s| {
            let service = &self.active.services[s];
            if !service.valid
                || service.mode != Mode::Nat
                || service.protocol.ip_number() != protocol
            {
                return None;
            }
            self.active
                .members(s)
                .iter()
                .copied()
                .find(|&m| {
                    let b = &self.active.backends[usize::from(m) % BACKEND_SLOTS];
                    b.state != BackendState::Free && b.address == addr && b.port == port
                })
                .map(|m| (s, m))
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn nat_return(
        &mut self,
        now: u32,
        frame: &[u8],
        headers: &Headers,
        svc: usize,
        backend_index: u16,
        hash: u32,
        out: &mut [u8],
    ) -> Verdict {
        let Some(ip) = headers.ipv4().copied() else {
            return self.drop(DropReason::NotForUs, hash);
        };
        let Some((_, client_port)) = ip.l4.ports() else {
            return self.drop(DropReason::NotForUs, hash);
        };
        let service = self.active.services[svc];
        let key = FlowKey {
            protocol: ip.protocol,
            src: ip.dst.octets(),
            dst: service.vip.octets(),
            src_port: client_port,
            dst_port: service.port,
        };
        let flow_hash = self
            .key
            .hash_v4(key.src, key.dst, Some((key.src_port, key.dst_port)));
        let settings = self.active.settings;
        let slot = match self
            .flows
            .lookup(key, flow_hash, now, |e| e.state.timeout(&settings))
        {
            Lookup::Hit(slot) => slot,
            Lookup::Expired(gone) => {
                release(&mut self.active_flows, &self.active.backends, &gone);
                self.counters.expirations = self.counters.expirations.wrapping_add(1);
                return self.drop(DropReason::ReturnNoFlow, hash);
            }
            Lookup::Miss => return self.drop(DropReason::ReturnNoFlow, hash),
        };
        self.return_to_client(now, frame, headers, slot, backend_index, None, hash, out)
    }

    fn fullnat_return(
        &mut self,
        now: u32,
        frame: &[u8],
        headers: &Headers,
        pool: usize,
        hash: u32,
        out: &mut [u8],
    ) -> Verdict {
        let Some(ip) = headers.ipv4().copied() else {
            return self.drop(DropReason::NotForUs, hash);
        };
        let Some((sport, dport)) = ip.l4.ports() else {
            return self.drop(DropReason::NotForUs, hash);
        };
        let settings = self.active.settings;
        let Some(slot) = snat_slot(&settings, pool, dport).filter(|&s| s < self.flows.capacity())
        else {
            return self.drop(DropReason::ReturnNoFlow, hash);
        };
        let Some(entry) = self.flows.get(slot).copied().filter(|e| e.valid) else {
            return self.drop(DropReason::ReturnNoFlow, hash);
        };
        let backend_index = entry.backend;
        let backend = self.active.backends[usize::from(backend_index) % BACKEND_SLOTS];
        let svc = usize::from(entry.service) % SERVICE_SLOTS;
        let service = self.active.services[svc];
        let matches = service.valid
            && service.mode == Mode::Fullnat
            && entry.key.protocol == ip.protocol
            && backend.generation == entry.generation
            && backend.address == ip.src.octets()
            && backend.port == sport;
        if !matches {
            return self.drop(DropReason::ReturnNoFlow, hash);
        }
        if crate::flow::is_expired(now, entry.last_seen, entry.state.timeout(&settings)) {
            if let Some(gone) = self.flows.remove(slot) {
                release(&mut self.active_flows, &self.active.backends, &gone);
                self.changes.push(TableChange::FlowRemoved {
                    slot: slot as u32,
                    key: gone.key,
                });
            }
            self.counters.expirations = self.counters.expirations.wrapping_add(1);
            return self.drop(DropReason::ReturnNoFlow, hash);
        }
        let client = Endpoint {
            addr: entry.key.src,
            port: entry.key.src_port,
        };
        self.return_to_client(
            now,
            frame,
            headers,
            slot,
            backend_index,
            Some(client),
            hash,
            out,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn return_to_client(
        &mut self,
        now: u32,
        frame: &[u8],
        headers: &Headers,
        slot: usize,
        backend_index: u16,
        client: Option<Endpoint>,
        hash: u32,
        out: &mut [u8],
    ) -> Verdict {
        let flags = match headers.ipv4().map(|ip| ip.l4) {
            Some(L4::Tcp { flags, .. }) => Some(flags),
            _ => None,
        };
        let Some(entry) = self.flows.get_mut(slot) else {
            return self.drop(DropReason::ReturnNoFlow, hash);
        };
        if entry.backend != backend_index {
            return self.drop(DropReason::ReturnNoFlow, hash);
        }
        let before = *entry;
        entry.last_seen = now;
        entry.state = next_state(entry.state, flags);
        let after = *entry;
        let settings = self.active.settings;
        log_update(&mut self.changes, slot, &before, &after, &settings);
        let Some(entry) = self.flows.get(slot) else {
            return self.drop(DropReason::ReturnNoFlow, hash);
        };
        let svc = usize::from(entry.service) % SERVICE_SLOTS;
        let client_mac = entry.client_mac;
        let service = &self.active.services[svc];
        let vip = Endpoint {
            addr: service.vip.octets(),
            port: service.port,
        };
        let Some(dst) = out.get_mut(..frame.len()) else {
            return self.drop(DropReason::Runt, hash);
        };
        dst.copy_from_slice(frame);
        rewrite::set_macs(dst, client_mac, self.active.settings.mac);
        rewrite::rewrite_endpoints(dst, headers, Some(vip), client);
        let bytes = frame.len() as u64;
        let sc = &mut self.counters.services[svc];
        sc.return_packets = sc.return_packets.wrapping_add(1);
        sc.return_bytes = sc.return_bytes.wrapping_add(bytes);
        Verdict {
            action: Action::ToClient {
                service: svc as u8,
                backend: backend_index,
            },
            egress: Some(Port::Network),
            len: frame.len(),
            hash,
        }
    }

    fn pass(
        &mut self,
        frame: &[u8],
        out: &mut [u8],
        action: Action,
        port: Port,
        hash: u32,
    ) -> Verdict {
        match out.get_mut(..frame.len()) {
            Some(dst) => {
                dst.copy_from_slice(frame);
                Verdict {
                    action,
                    egress: Some(port),
                    len: frame.len(),
                    hash,
                }
            }
            None => self.drop(DropReason::Runt, hash),
        }
    }

    fn punt(&mut self, frame: &[u8], out: &mut [u8], reason: PuntReason, hash: u32) -> Verdict {
        self.counters.punt(reason);
        self.pass(frame, out, Action::Punt(reason), Port::Mcu, hash)
    }

    fn drop(&mut self, reason: DropReason, hash: u32) -> Verdict {
        self.counters.drop(reason);
        Verdict {
            action: Action::Drop(reason),
            egress: None,
            len: 0,
            hash,
        }
    }

    /// Copies the shadow bank to the active bank (see the module docs).
    fn commit_banks(&mut self) {
        for (b, (new, old)) in self
            .shadow
            .backends
            .iter()
            .zip(self.active.backends.iter())
            .enumerate()
        {
            if new.generation != old.generation || new.state == BackendState::Free {
                self.active_flows[b] = 0;
            }
        }
        for s in 0..SERVICE_SLOTS {
            if self.shadow.services[s] != self.active.services[s]
                || self.shadow.members[s] != self.active.members[s]
            {
                self.select.reset_service(s);
            }
        }
        self.active.settings = self.shadow.settings;
        self.active.services = self.shadow.services;
        self.active.members = self.shadow.members;
        self.active.backends = self.shadow.backends;
        if self.rings_dirty {
            let n = self.active.rings.len().min(self.shadow.rings.len());
            self.active.rings[..n].copy_from_slice(&self.shadow.rings[..n]);
            self.rings_dirty = false;
        }
        self.key = ToeplitzKey::new(self.active.settings.hash_key);
    }
}

/// Why [`Pipeline::install_flow`] refused a replicated flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InstallError {
    /// The slot is beyond this flow table (the peers' geometries differ).
    SlotOutOfRange,
    /// The slot is not in the set the key hashes to (the peers' hash keys or geometries
    /// differ): a lookup would never find the flow.
    WrongSet,
    /// The entry is not marked valid.
    Invalid,
}

impl Pipeline<'_> {
    /// The set-base slot of a flow key under the active hash key.
    fn flow_set_base(&self, key: &FlowKey) -> usize {
        let hash = self
            .key
            .hash_v4(key.src, key.dst, Some((key.src_port, key.dst_port)));
        self.flows.set_base(hash)
    }

    /// Writes a flow replicated from a peer into `slot`, exactly as given (see the module
    /// docs). Returns the live entry the slot held before, if it was another flow.
    pub fn install_flow(
        &mut self,
        slot: usize,
        entry: FlowEntry,
    ) -> Result<Option<FlowEntry>, InstallError> {
        if !entry.valid {
            return Err(InstallError::Invalid);
        }
        if slot >= self.flows.capacity() {
            return Err(InstallError::SlotOutOfRange);
        }
        let base = self.flow_set_base(&entry.key);
        if !(base..base + self.flows.ways()).contains(&slot) {
            return Err(InstallError::WrongSet);
        }
        for other in base..base + self.flows.ways() {
            let same_key = self
                .flows
                .get(other)
                .is_some_and(|e| e.valid && e.key == entry.key);
            if other != slot
                && same_key
                && let Some(gone) = self.flows.remove(other)
            {
                release(&mut self.active_flows, &self.active.backends, &gone);
            }
        }
        let previous = self.flows.remove(slot);
        if let Some(gone) = &previous {
            release(&mut self.active_flows, &self.active.backends, gone);
        }
        if let Some(e) = self.flows.get_mut(slot) {
            *e = entry;
        }
        let b = usize::from(entry.backend);
        if b < BACKEND_SLOTS && self.active.backends[b].generation == entry.generation {
            self.active_flows[b] = self.active_flows[b].saturating_add(1);
        }
        Ok(previous.filter(|p| p.key != entry.key))
    }

    /// Frees every flow and persistence entry (a replica snapshot begins). Not logged.
    pub fn clear_flows(&mut self) {
        for slot in 0..self.flows.capacity() {
            if let Some(gone) = self.flows.remove(slot) {
                release(&mut self.active_flows, &self.active.backends, &gone);
            }
        }
        for slot in 0..self.sticky.capacity() {
            self.sticky.remove(slot);
        }
    }

    /// Removes the flow with `key` (a replicated removal); returns it if it was there.
    pub fn remove_flow(&mut self, key: &FlowKey) -> Option<FlowEntry> {
        let base = self.flow_set_base(key);
        let slot = (base..base + self.flows.ways())
            .find(|&s| self.flows.get(s).is_some_and(|e| e.valid && e.key == *key))?;
        let gone = self.flows.remove(slot)?;
        release(&mut self.active_flows, &self.active.backends, &gone);
        Some(gone)
    }

    /// Writes a persistence entry replicated from a peer: replaces the entry of the same
    /// (service, client), or inserts by the table's rule. `false` for an invalid entry or a
    /// table of capacity zero.
    pub fn install_sticky(&mut self, now_ms: u64, entry: StickyEntry) -> bool {
        if !entry.valid {
            return false;
        }
        let hash = self.key.hash(&entry.client) ^ u32::from(entry.service);
        let base = self.sticky.set_base(hash);
        let ways = self.sticky.ways();
        let existing = (base..base + ways).find(|&s| {
            self.sticky
                .get(s)
                .is_some_and(|e| e.valid && e.service == entry.service && e.client == entry.client)
        });
        if let Some(slot) = existing
            && let Some(e) = self.sticky.get_mut(slot)
        {
            *e = entry;
            return true;
        }
        let services = &self.active.services;
        self.sticky
            .insert(entry, hash, now32(now_ms), |e| sticky_timeout(services, e))
            .is_some()
    }

    /// Removes the persistence entry of (service, client); returns it if it was there.
    pub fn remove_sticky(&mut self, service: u8, client: [u8; 4]) -> Option<StickyEntry> {
        let hash = self.key.hash(&client) ^ u32::from(service);
        let base = self.sticky.set_base(hash);
        let slot = (base..base + self.sticky.ways()).find(|&s| {
            self.sticky
                .get(s)
                .is_some_and(|e| e.valid && e.service == service && e.client == client)
        })?;
        self.sticky.remove(slot)
    }
}

/// Logs an updated flow when something a replica needs changed: its state, its client
/// MAC, or its `last_seen` entered a new quarter-timeout period.
fn log_update(
    changes: &mut crate::changelog::ChangeLog,
    slot: usize,
    before: &FlowEntry,
    after: &FlowEntry,
    settings: &Settings,
) {
    if before.state != after.state
        || before.client_mac != after.client_mac
        || crate::changelog::refresh_due(
            before.last_seen,
            after.last_seen,
            after.state.timeout(settings),
        )
    {
        changes.push(TableChange::Flow {
            slot: slot as u32,
            entry: *after,
        });
    }
}

/// Releases the active-flow count a flow entry held on its backend.
fn release(
    active_flows: &mut [u32; BACKEND_SLOTS],
    backends: &[BackendEntry; BACKEND_SLOTS],
    entry: &FlowEntry,
) {
    let b = usize::from(entry.backend);
    if b < BACKEND_SLOTS && backends[b].generation == entry.generation {
        active_flows[b] = active_flows[b].saturating_sub(1);
    }
}

fn sticky_timeout(services: &[ServiceEntry; SERVICE_SLOTS], entry: &StickyEntry) -> u32 {
    services
        .get(usize::from(entry.service))
        .map_or(0, |s| s.sticky_timeout)
}

fn parse_drop(e: ParseError) -> DropReason {
    match e {
        ParseError::Runt => DropReason::Runt,
        ParseError::StackedVlan => DropReason::StackedVlan,
        ParseError::MalformedIpv4 => DropReason::MalformedIpv4,
        ParseError::TruncatedIpv4 => DropReason::TruncatedIpv4,
        ParseError::BadIpv4Checksum => DropReason::BadIpv4Checksum,
        ParseError::TruncatedL4 => DropReason::TruncatedL4,
    }
}

/// Ports each full-NAT address provides.
pub fn snat_ports_per_addr(settings: &Settings) -> usize {
    65536 - usize::from(settings.snat_port_base)
}

/// The full-NAT source endpoint of flow-table slot `slot`.
pub fn snat_endpoint(settings: &Settings, slot: usize) -> Option<Endpoint> {
    let per = snat_ports_per_addr(settings);
    let pool = slot / per;
    // A count above the pool's 8 addresses (raw register writes can set one) reads as 8.
    let addr = settings
        .snat_pool
        .get(pool)
        .filter(|_| pool < usize::from(settings.snat_count))?;
    Some(Endpoint {
        addr: addr.octets(),
        port: (usize::from(settings.snat_port_base) + slot % per) as u16,
    })
}

/// The flow-table slot a full-NAT reply to pool address `pool`, port `port` belongs to.
pub fn snat_slot(settings: &Settings, pool: usize, port: u16) -> Option<usize> {
    let base = settings.snat_port_base;
    (port >= base).then(|| pool * snat_ports_per_addr(settings) + usize::from(port - base))
}

impl crate::regmap::CounterSource for Pipeline<'_> {
    fn counter(&self, index: u32) -> u64 {
        crate::regmap::counter_value(&self.counters, &self.active_flows, index)
    }
}

impl TableWriter for Pipeline<'_> {
    fn write_settings(&mut self, settings: &Settings) {
        self.shadow.settings = *settings;
    }

    fn write_service(&mut self, index: u8, entry: &ServiceEntry) {
        if let Some(s) = self.shadow.services.get_mut(usize::from(index)) {
            *s = *entry;
        }
    }

    fn write_backend(&mut self, index: u16, entry: &BackendEntry) {
        if let Some(b) = self.shadow.backends.get_mut(usize::from(index)) {
            *b = *entry;
        }
    }

    fn write_member(&mut self, service: u8, position: u8, backend: u16) {
        if let Some(m) = self
            .shadow
            .members
            .get_mut(usize::from(service))
            .and_then(|m| m.get_mut(usize::from(position)))
        {
            *m = backend;
        }
    }

    fn write_ring(&mut self, service: u8, offset: u32, entries: &[u16]) {
        let stride = self.shadow.ring_stride;
        let service = usize::from(service);
        if service >= SERVICE_SLOTS {
            return;
        }
        let start = service * stride + offset as usize;
        let end = (start + entries.len()).min((service + 1) * stride);
        if start < end {
            self.shadow.rings[start..end].copy_from_slice(&entries[..end - start]);
            self.rings_dirty = true;
        }
    }

    fn commit(&mut self) {
        self.commit_banks();
    }
}

impl Protocol {
    /// The protocol of an IP protocol number, if TCP or UDP.
    pub fn from_ip_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl Algorithm {
    /// A stable snake_case name (as in the config file).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::WeightedRoundRobin => "weighted_round_robin",
            Algorithm::IpHash => "ip_hash",
            Algorithm::Maglev => "maglev",
            Algorithm::LeastConnections => "least_connections",
            Algorithm::LeastResponseTime => "least_response_time",
        }
    }
}

impl Mode {
    /// A stable lowercase name (as in the config file).
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Fullnat => "fullnat",
            Mode::Dsr => "dsr",
            Mode::Ipip => "ipip",
            Mode::Gue => "gue",
            Mode::L7 => "l7",
        }
    }
}
