//! The control plane's compiler: a validated [`Config`] plus the backends' health becomes
//! the tables of [`crate::tables`], and Maglev rings are built here — the data path only
//! looks up (as in Katran, the control plane computes).
//!
//! [`ControlPlane`] keeps slots stable across config changes: a service keeps its
//! service-table index while its name exists, a backend keeps its backend-table slot while
//! (service name, backend name) exists. A slot given to a new occupant gets the next
//! generation, so flows of the old occupant are recognised as stale by the data path.
//! New services and backends take the lowest free slot.

use crate::config::{AdminState, Algorithm, Config, Name};
use crate::maglev::{self, MaglevBackend};
use crate::tables::{
    BACKEND_SLOTS, BackendEntry, BackendState, MEMBER_SLOTS, NO_BACKEND, SERVICE_SLOTS,
    ServiceEntry, Settings, TableWriter,
};

/// Why a config could not be compiled (it should have failed validation first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CompileError {
    /// More services than service-table slots.
    TooManyServices,
    /// More backends than backend-table slots.
    TooManyBackends,
    /// A service has more backends than member-list entries.
    TooManyMembers,
    /// The Maglev ring could not be built.
    Maglev(maglev::MaglevError),
    /// A ring scratch buffer is shorter than the ring size.
    ScratchTooSmall,
}

impl core::fmt::Display for CompileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CompileError::TooManyServices => write!(f, "more than {SERVICE_SLOTS} services"),
            CompileError::TooManyBackends => write!(f, "more than {BACKEND_SLOTS} backends in all"),
            CompileError::TooManyMembers => {
                write!(f, "a service has more than {MEMBER_SLOTS} backends")
            }
            CompileError::Maglev(e) => write!(f, "maglev ring: {e}"),
            CompileError::ScratchTooSmall => write!(f, "ring scratch buffer shorter than the ring"),
        }
    }
}

/// Who holds a backend slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BackendOwner {
    service: Name,
    backend: Name,
}

/// The control plane's view of the tables, and the slot bookkeeping behind it.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    settings: Settings,
    services: [ServiceEntry; SERVICE_SLOTS],
    members: [[u16; MEMBER_SLOTS]; SERVICE_SLOTS],
    backends: [BackendEntry; BACKEND_SLOTS],
    service_names: [Option<Name>; SERVICE_SLOTS],
    owners: [Option<BackendOwner>; BACKEND_SLOTS],
    admin: [AdminState; BACKEND_SLOTS],
    configured_weight: [u16; BACKEND_SLOTS],
    healthy: [bool; BACKEND_SLOTS],
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlPlane {
    /// A control plane with empty tables (`const`, so the MCU can keep one in a static
    /// without building it on the stack).
    pub const fn new() -> Self {
        ControlPlane {
            settings: Settings::DEFAULT,
            services: [ServiceEntry::EMPTY; SERVICE_SLOTS],
            members: [[NO_BACKEND; MEMBER_SLOTS]; SERVICE_SLOTS],
            backends: [BackendEntry::EMPTY; BACKEND_SLOTS],
            service_names: [const { None }; SERVICE_SLOTS],
            owners: [const { None }; BACKEND_SLOTS],
            admin: [AdminState::Enabled; BACKEND_SLOTS],
            configured_weight: [0; BACKEND_SLOTS],
            healthy: [true; BACKEND_SLOTS],
        }
    }

    /// Makes `self` equal to `other` in place (no whole-struct temporary, unlike
    /// `clone`: the MCU keeps two of these and has little stack).
    pub fn copy_from(&mut self, other: &ControlPlane) {
        self.settings = other.settings;
        self.services.copy_from_slice(&other.services);
        self.members.copy_from_slice(&other.members);
        self.backends.copy_from_slice(&other.backends);
        for (a, b) in self
            .service_names
            .iter_mut()
            .zip(other.service_names.iter())
        {
            a.clone_from(b);
        }
        for (a, b) in self.owners.iter_mut().zip(other.owners.iter()) {
            a.clone_from(b);
        }
        self.admin.copy_from_slice(&other.admin);
        self.configured_weight
            .copy_from_slice(&other.configured_weight);
        self.healthy.copy_from_slice(&other.healthy);
    }

    /// Brings the tables in line with `config`, keeping slots of services and backends
    /// that still exist. New backends start healthy (as HAProxy's servers start up).
    pub fn apply(&mut self, config: &Config) -> Result<(), CompileError> {
        if config.services.len() > SERVICE_SLOTS {
            return Err(CompileError::TooManyServices);
        }
        let a = &config.appliance;
        let mut settings = Settings {
            mac: a.mac.0,
            address: a.address,
            tunnel_source: a.tunnel_source(),
            snat_count: a.snat_pool.len() as u8,
            snat_port_base: a.snat_port_base,
            hash_key: a.hash_key(),
            ring_size: a.maglev_ring_size,
            tcp_syn_timeout: a.timeouts.tcp_syn.0,
            tcp_established_timeout: a.timeouts.tcp_established.0,
            tcp_closing_timeout: a.timeouts.tcp_closing.0,
            udp_timeout: a.timeouts.udp.0,
            ..Settings::default()
        };
        for (slot, addr) in settings.snat_pool.iter_mut().zip(a.snat_pool.iter()) {
            *slot = *addr;
        }

        // Service slots: keep by name, free the vanished, then place the new.
        let mut service_slot = [usize::MAX; SERVICE_SLOTS];
        let mut taken = [false; SERVICE_SLOTS];
        for (i, svc) in config.services.iter().enumerate() {
            if let Some(s) = self
                .service_names
                .iter()
                .position(|n| n.as_ref() == Some(&svc.name))
            {
                service_slot[i] = s;
                taken[s] = true;
            }
        }
        for (i, _) in config.services.iter().enumerate() {
            if service_slot[i] == usize::MAX {
                let s = (0..SERVICE_SLOTS)
                    .find(|&s| !taken[s])
                    .ok_or(CompileError::TooManyServices)?;
                service_slot[i] = s;
                taken[s] = true;
            }
        }

        // Backend slots: keep by (service, backend) name, free the vanished.
        let mut keep = [false; BACKEND_SLOTS];
        for svc in config.services.iter() {
            for be in config.backends(svc) {
                if let Some(b) = self.find_backend(&svc.name, &be.name) {
                    keep[b] = true;
                }
            }
        }
        for (b, kept) in keep.iter().enumerate() {
            if !kept && self.owners[b].take().is_some() {
                self.backends[b].state = BackendState::Free;
            }
        }

        let mut services = [ServiceEntry::default(); SERVICE_SLOTS];
        let mut members = [[NO_BACKEND; MEMBER_SLOTS]; SERVICE_SLOTS];
        let mut names: [Option<Name>; SERVICE_SLOTS] = [const { None }; SERVICE_SLOTS];
        for (i, svc) in config.services.iter().enumerate() {
            if svc.backends.len() > MEMBER_SLOTS {
                return Err(CompileError::TooManyMembers);
            }
            let s = service_slot[i];
            names[s] = Some(svc.name.clone());
            services[s] = ServiceEntry {
                valid: true,
                vip: svc.vip,
                protocol: svc.protocol,
                port: svc.port,
                mode: svc.mode,
                algorithm: svc.algorithm,
                sticky: svc.sticky,
                sticky_timeout: svc.sticky_timeout_or(&a.timeouts).0,
                gue_port: svc.gue_port,
                member_count: svc.backends.len() as u8,
            };
            for (pos, be) in config.backends(svc).iter().enumerate() {
                let b = match self.find_backend(&svc.name, &be.name) {
                    Some(b) => b,
                    None => {
                        let b = (0..BACKEND_SLOTS)
                            .find(|&b| self.owners[b].is_none())
                            .ok_or(CompileError::TooManyBackends)?;
                        self.owners[b] = Some(BackendOwner {
                            service: svc.name.clone(),
                            backend: be.name.clone(),
                        });
                        self.backends[b].generation = self.backends[b].generation.wrapping_add(1);
                        self.healthy[b] = true;
                        self.backends[b].rtt_us = 0;
                        b
                    }
                };
                members[s][pos] = b as u16;
                self.admin[b] = be.state;
                self.configured_weight[b] = be.weight;
                let entry = &mut self.backends[b];
                entry.address = be.address.octets();
                entry.port = svc.backend_port(be);
                entry.mac = be.mac.map(|m| m.0).unwrap_or([0; 6]);
                entry.weight = be.weight;
            }
        }
        self.settings = settings;
        self.services = services;
        self.members = members;
        self.service_names = names;
        for b in 0..BACKEND_SLOTS {
            self.refresh_state(b);
        }
        Ok(())
    }

    fn find_backend(&self, service: &Name, backend: &Name) -> Option<usize> {
        self.owners.iter().position(|o| {
            o.as_ref()
                .is_some_and(|o| &o.service == service && &o.backend == backend)
        })
    }

    fn refresh_state(&mut self, b: usize) {
        if self.owners[b].is_none() {
            self.backends[b].state = BackendState::Free;
            return;
        }
        self.backends[b].state = match (self.admin[b], self.healthy[b]) {
            (AdminState::Disabled, _) => BackendState::Disabled,
            (AdminState::Drain, _) => BackendState::Drain,
            (AdminState::Enabled, true) => BackendState::Up,
            (AdminState::Enabled, false) => BackendState::Down,
        };
    }

    /// Records a health-check verdict for backend slot `slot`.
    pub fn set_health(&mut self, slot: usize, up: bool) {
        if slot < BACKEND_SLOTS {
            self.healthy[slot] = up;
            self.refresh_state(slot);
        }
    }

    /// Sets the administrative state of backend slot `slot` (drain / enable / disable).
    pub fn set_admin(&mut self, slot: usize, state: AdminState) {
        if slot < BACKEND_SLOTS {
            self.admin[slot] = state;
            self.refresh_state(slot);
        }
    }

    /// Sets the effective weight of slot `slot` (slow start), capped at its configured weight.
    pub fn set_effective_weight(&mut self, slot: usize, weight: u16) {
        if slot < BACKEND_SLOTS {
            self.backends[slot].weight = weight.min(self.configured_weight[slot]);
        }
    }

    /// Records a measured response time for slot `slot`.
    pub fn set_rtt(&mut self, slot: usize, rtt_us: u32) {
        if let Some(b) = self.backends.get_mut(slot) {
            b.rtt_us = rtt_us;
        }
    }

    /// Sets the resolved MAC of slot `slot`.
    pub fn set_mac(&mut self, slot: usize, mac: [u8; 6]) {
        if let Some(b) = self.backends.get_mut(slot) {
            b.mac = mac;
        }
    }

    /// The backend slot of `service`/`backend` (by name).
    pub fn backend_slot(&self, service: &str, backend: &str) -> Option<usize> {
        self.owners.iter().position(|o| {
            o.as_ref()
                .is_some_and(|o| o.service.as_str() == service && o.backend.as_str() == backend)
        })
    }

    /// The service-table index of `service` (by name).
    pub fn service_slot(&self, service: &str) -> Option<usize> {
        self.service_names
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.as_str() == service))
    }

    /// The names of the service and backend holding backend slot `slot`.
    pub fn backend_name(&self, slot: usize) -> Option<(&str, &str)> {
        let o = self.owners.get(slot)?.as_ref()?;
        Some((o.service.as_str(), o.backend.as_str()))
    }

    /// The name of service slot `slot`.
    pub fn service_name(&self, slot: usize) -> Option<&str> {
        self.service_names.get(slot)?.as_ref().map(|n| n.as_str())
    }

    /// The compiled settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The compiled service table.
    pub fn services(&self) -> &[ServiceEntry; SERVICE_SLOTS] {
        &self.services
    }

    /// The compiled backend table.
    pub fn backends(&self) -> &[BackendEntry; BACKEND_SLOTS] {
        &self.backends
    }

    /// The member list of service slot `service`.
    pub fn members(&self, service: usize) -> &[u16] {
        let count = usize::from(self.services[service].member_count).min(MEMBER_SLOTS);
        &self.members[service][..count]
    }

    /// Builds service `service`'s ring into `ring` (length = the ring size): Maglev over
    /// the members that take new flows, weighted by effective weight, entries as
    /// backend-table slots. Services whose algorithm uses no ring get an empty ring.
    pub fn build_ring(&self, service: usize, ring: &mut [u16]) -> Result<(), CompileError> {
        let entry = &self.services[service];
        let uses_ring =
            entry.valid && matches!(entry.algorithm, Algorithm::Maglev | Algorithm::IpHash);
        build_member_ring(self.members(service), &self.backends, uses_ring, ring)
            .map_err(CompileError::Maglev)
    }

    /// Writes every table into `writer`'s shadow bank and commits. `ring_scratch` must hold
    /// the ring size.
    pub fn write_all(
        &self,
        writer: &mut impl TableWriter,
        ring_scratch: &mut [u16],
    ) -> Result<(), CompileError> {
        writer.write_settings(&self.settings);
        for (b, entry) in self.backends.iter().enumerate() {
            writer.write_backend(b as u16, entry);
        }
        let ring_len = (self.settings.ring_size as usize).min(ring_scratch.len());
        for s in 0..SERVICE_SLOTS {
            writer.write_service(s as u8, &self.services[s]);
            for (p, &m) in self.members[s].iter().enumerate() {
                writer.write_member(s as u8, p as u8, m);
            }
            let ring = &mut ring_scratch[..ring_len];
            if self.services[s].valid {
                self.build_ring(s, ring)?;
            } else {
                ring.fill(maglev::EMPTY);
            }
            writer.write_ring(s as u8, 0, ring);
        }
        writer.commit();
        Ok(())
    }
}

/// What a delta write sent to the data path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Settings, service, member and backend entries written.
    pub entries: u32,
    /// Ring entries written.
    pub ring_entries: u32,
    /// Rings rebuilt to compare (services whose ring inputs changed).
    pub rings_rebuilt: u32,
}

impl DeltaStats {
    /// Whether nothing was written (the commit changed nothing).
    pub fn is_empty(&self) -> bool {
        self.entries == 0 && self.ring_entries == 0
    }
}

impl ControlPlane {
    /// Writes only what differs from `previous` (the tables last written to `writer`), then
    /// commits. Rings are compared entry by entry: only services whose ring inputs changed
    /// (members, their identity, weight or whether they take new flows) are rebuilt, into
    /// `old_scratch` (from `previous`) and `new_scratch`, and only changed runs are written.
    /// Both scratch buffers must hold the ring size. When the ring size itself changes,
    /// every ring is written whole.
    pub fn write_delta(
        &self,
        previous: &ControlPlane,
        writer: &mut impl TableWriter,
        old_scratch: &mut [u16],
        new_scratch: &mut [u16],
    ) -> Result<DeltaStats, CompileError> {
        let mut stats = DeltaStats::default();
        let ring_len = self.settings.ring_size as usize;
        if old_scratch.len() < ring_len || new_scratch.len() < ring_len {
            return Err(CompileError::ScratchTooSmall);
        }
        if self.settings != previous.settings {
            writer.write_settings(&self.settings);
            stats.entries += 1;
        }
        for (b, (new, old)) in self
            .backends
            .iter()
            .zip(previous.backends.iter())
            .enumerate()
        {
            if new != old {
                writer.write_backend(b as u16, new);
                stats.entries += 1;
            }
        }
        let whole_rings = self.settings.ring_size != previous.settings.ring_size;
        for s in 0..SERVICE_SLOTS {
            if self.services[s] != previous.services[s] {
                writer.write_service(s as u8, &self.services[s]);
                stats.entries += 1;
            }
            for (p, (&new, &old)) in self.members[s]
                .iter()
                .zip(previous.members[s].iter())
                .enumerate()
            {
                if new != old {
                    writer.write_member(s as u8, p as u8, new);
                    stats.entries += 1;
                }
            }
            if !whole_rings && !self.ring_inputs_changed(previous, s) {
                continue;
            }
            stats.rings_rebuilt += 1;
            let new_ring = &mut new_scratch[..ring_len];
            if self.services[s].valid {
                self.build_ring(s, new_ring)?;
            } else {
                new_ring.fill(maglev::EMPTY);
            }
            if whole_rings {
                writer.write_ring(s as u8, 0, new_ring);
                stats.ring_entries += ring_len as u32;
                continue;
            }
            let old_ring = &mut old_scratch[..ring_len];
            if previous.services[s].valid {
                previous.build_ring(s, old_ring)?;
            } else {
                old_ring.fill(maglev::EMPTY);
            }
            let mut i = 0;
            while i < ring_len {
                if new_ring[i] == old_ring[i] {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < ring_len && new_ring[i] != old_ring[i] {
                    i += 1;
                }
                writer.write_ring(s as u8, start as u32, &new_ring[start..i]);
                stats.ring_entries += (i - start) as u32;
            }
        }
        writer.commit();
        Ok(stats)
    }

    /// Whether anything service `s`'s ring is built from differs from `previous`.
    fn ring_inputs_changed(&self, previous: &ControlPlane, s: usize) -> bool {
        let (new, old) = (&self.services[s], &previous.services[s]);
        if new.valid != old.valid || new.algorithm != old.algorithm {
            return true;
        }
        if !new.valid {
            return false;
        }
        let (nm, om) = (self.members(s), previous.members(s));
        if nm != om {
            return true;
        }
        nm.iter().any(|&m| {
            let (a, b) = (
                &self.backends[usize::from(m)],
                &previous.backends[usize::from(m)],
            );
            backend_identity(a) != backend_identity(b)
                || a.weight != b.weight
                || a.state.takes_new_flows() != b.state.takes_new_flows()
        })
    }
}

/// Builds a Maglev ring over `members` (backend-table slots) into `ring`: weighted by
/// effective weight, members that take no new flows (or all, when `!uses_ring`) weigh 0;
/// entries are backend-table slots or [`maglev::EMPTY`]. The ring of a service, and of an
/// L7 service's pool.
pub fn build_member_ring(
    members: &[u16],
    backends: &[BackendEntry],
    uses_ring: bool,
    ring: &mut [u16],
) -> Result<(), maglev::MaglevError> {
    let mut pool = [MaglevBackend { id: 0, weight: 0 }; MEMBER_SLOTS];
    let members = &members[..members.len().min(MEMBER_SLOTS)];
    for (p, &m) in pool.iter_mut().zip(members.iter()) {
        let b = backends
            .get(usize::from(m))
            .copied()
            .unwrap_or(BackendEntry::EMPTY);
        let weight = if uses_ring && b.state.takes_new_flows() {
            u32::from(b.weight)
        } else {
            0
        };
        *p = MaglevBackend {
            id: backend_identity(&b),
            weight,
        };
    }
    maglev::build(&pool[..members.len()], ring)?;
    for e in ring.iter_mut() {
        if *e != maglev::EMPTY {
            *e = members[usize::from(*e)];
        }
    }
    Ok(())
}

/// The stable identity Maglev derives a backend's ring permutation from: address and port.
pub fn backend_identity(b: &BackendEntry) -> u64 {
    (u64::from(u32::from_be_bytes(b.address)) << 16) | u64::from(b.port)
}
