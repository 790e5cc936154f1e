//! The MCU's control plane: the running configuration, the health checker, and the tables
//! it keeps in the FPGA. Sans-IO: runners feed it time, probe results, neighbours and
//! management requests; it writes the FPGA through the register map
//! ([`fulcrum_model::regmap::RegisterWriter`] over a [`RegisterBus`]: SPI on the board,
//! the model or the HDL simulation in the simulated board).
//!
//! Every change — a config, a health transition, a slow-start step, a measured response
//! time, a learned MAC, an admin command — marks the tables dirty; [`Appliance::poll`]
//! writes the delta against what the FPGA holds and commits once, so a burst of changes
//! is one atomic commit. A config is validated and compiled before anything is written:
//! a bad one is rejected whole and the data path keeps the last good tables (fail-static).

use core::net::Ipv4Addr;

use fulcrum_mgmt::command::Command;
use fulcrum_mgmt::message::{
    ApplyReport, BackendStatus, ErrorCode, ErrorReply, EventKind, HealthStatus, ManagementCounters,
    ResponseRef, STATUS_PAGE_SERVICES, ServiceStatus, StatusReport, truncated,
};
#[cfg(feature = "filters")]
use fulcrum_mgmt::message::{FilterInfo, MAX_FILTERS};
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::{AdminState, Algorithm, Config, Mode, Name};
use fulcrum_model::counters::Counters;
use fulcrum_model::regmap::{RegisterBus, RegisterWriter, read_counters};
use fulcrum_model::tables::{BACKEND_SLOTS, BackendState};

use crate::events::EventLog;
use crate::health::{HealthChecker, Outcome, Probe, RAMP_STEPS, Target, Ticket, ramped_weight};
use crate::persist::{self, ConfigStore};

/// Response-time updates are written at most this often (health changes at once), ms.
pub const RTT_BATCH_MS: u64 = 250;

/// Firmware version reported to the host.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Buffers the appliance borrows (statics on the board, heap on Linux).
pub struct Buffers<'b> {
    /// Ring scratch (old), at least the largest ring size.
    pub old_ring: &'b mut [u16],
    /// Ring scratch (new), same size.
    pub new_ring: &'b mut [u16],
    /// Persistence record buffer.
    pub record: &'b mut [u8],
}

/// The control plane's large state, kept apart so the board can place it in a static
/// built at compile time ([`State::new`] is `const`): nothing of this size ever goes
/// through the MCU's stack.
pub struct State {
    cp: ControlPlane,
    written: ControlPlane,
    config: Config,
    configured: bool,
    checker: HealthChecker,
    events: EventLog,
    counters: Counters,
    active_flows: [u32; BACKEND_SLOTS],
}

impl State {
    /// Empty state.
    pub const fn new() -> Self {
        State {
            cp: ControlPlane::new(),
            written: ControlPlane::new(),
            config: Config::empty(),
            configured: false,
            checker: HealthChecker::new(),
            events: EventLog::new(),
            counters: Counters::new(),
            active_flows: [0; BACKEND_SLOTS],
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// The MCU's control plane.
pub struct Appliance<'b, B: RegisterBus, S: ConfigStore> {
    writer: RegisterWriter<B>,
    store: S,
    bufs: Buffers<'b>,
    st: &'b mut State,
    generation: u32,
    /// Counters of the management service (updated by the management layer).
    pub management: ManagementCounters,
    dirty: bool,
    /// Response times changed enough to write, but not urgently (batched).
    rtt_pending: bool,
    last_sync_ms: u64,
    commits: u64,
    boot_ms: u64,
    /// The WebAssembly filters of L7 services.
    #[cfg(feature = "filters")]
    filters: crate::filter::Filters,
    /// Where the status reads the L7 proxy's counters.
    l7_counters: Option<&'b dyn crate::l7::L7CounterSource>,
    /// High availability, when `[appliance.ha]` runs (see [`Appliance::set_ha`]).
    ha: Option<&'b core::cell::RefCell<dyn crate::ha::HaControl>>,
}

impl<'b, B: RegisterBus, S: ConfigStore> Appliance<'b, B, S> {
    /// An appliance writing through `bus`, keeping its tables in `state` (which should be
    /// fresh from [`State::new`]).
    pub fn new(bus: B, store: S, bufs: Buffers<'b>, state: &'b mut State, now: u64) -> Self {
        Appliance {
            writer: RegisterWriter::new(bus),
            store,
            bufs,
            st: state,
            generation: 0,
            management: ManagementCounters::default(),
            dirty: false,
            rtt_pending: false,
            last_sync_ms: 0,
            commits: 0,
            boot_ms: now,
            #[cfg(feature = "filters")]
            filters: crate::filter::Filters::default(),
            l7_counters: None,
            ha: None,
        }
    }

    /// Connects the HA runner's state, for `fulcrum ha status|promote|demote`.
    pub fn set_ha(&mut self, ha: &'b core::cell::RefCell<dyn crate::ha::HaControl>) {
        self.ha = Some(ha);
    }

    /// The HA status report (`enabled: false` without HA).
    pub fn ha_status(&mut self, now: u64) -> fulcrum_mgmt::ha::HaStatus {
        let Some(ha) = self.ha else {
            return fulcrum_mgmt::ha::HaStatus::default();
        };
        let refused = self
            .writer
            .bus()
            .read32(fulcrum_model::changelog::addr::INSTALL_REFUSED);
        match ha.try_borrow() {
            Ok(h) => h.report(now, refused),
            Err(_) => fulcrum_mgmt::ha::HaStatus::default(),
        }
    }

    /// Lets the status report the L7 proxy's counters (per service, read when asked).
    pub fn set_l7_counters(&mut self, source: &'b dyn crate::l7::L7CounterSource) {
        self.l7_counters = Some(source);
    }

    /// The L7 proxy's counters, if set.
    pub fn l7_counter_source(&self) -> Option<&'b dyn crate::l7::L7CounterSource> {
        self.l7_counters
    }

    /// Loads the saved configuration, if any, and programs the data path with it. The record
    /// is decoded into `staging` (a static buffer, such as the management scratch's), a
    /// service at a time. Returns whether a config was restored.
    #[inline(never)]
    pub fn boot(&mut self, now: u64, staging: &mut Config) -> bool {
        let restored = match self.store.load(self.bufs.record) {
            Ok(Some(len)) => match persist::decode_into(&self.bufs.record[..len], staging) {
                Ok(generation) => match self.install(now, staging, generation, false) {
                    Ok(_) => true,
                    Err(e) => {
                        warn!("saved config not applied: {}", e.message.as_str());
                        false
                    }
                },
                Err(_) => {
                    warn!("saved config unreadable; starting without one");
                    false
                }
            },
            Ok(None) => false,
            Err(_) => {
                warn!("config store unreadable; starting without a config");
                false
            }
        };
        self.st.events.push(now, EventKind::Boot { restored });
        info!(
            "fulcrum firmware {} up, config restored: {}",
            VERSION, restored
        );
        restored
    }

    /// The running configuration.
    pub fn config(&self) -> Option<&Config> {
        self.st.configured.then_some(&self.st.config)
    }

    /// Generation of the running configuration (0: none).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The control plane's tables.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.st.cp
    }

    /// The health checker.
    pub fn checker(&self) -> &HealthChecker {
        &self.st.checker
    }

    /// Commits written to the data path so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.st.events
    }

    /// The register bus (for reads, and for runners that own the data path).
    pub fn bus(&mut self) -> &mut B {
        self.writer.bus()
    }

    /// The appliance's name.
    pub fn name(&self) -> Name {
        self.config()
            .map(|c| c.appliance.name.clone())
            .unwrap_or_else(|| Name::try_from("fulcrum").unwrap_or_default())
    }

    /// Validates `config` and, unless `dry_run`, applies it atomically and saves it.
    #[inline(never)]
    pub fn apply(
        &mut self,
        now: u64,
        config: &Config,
        dry_run: bool,
    ) -> Result<ApplyReport, ErrorReply> {
        self.check_valid(now, config)?;
        // High availability takes the new settings live; what it cannot (a new VRID
        // while master, removing [appliance.ha]) refuses the whole config now.
        if let Some(ha) = self.ha
            && let Ok(h) = ha.try_borrow()
            && let Err(reason) = h.check_config(config)
        {
            self.management.rejected_configs += 1;
            self.st.events.push(now, EventKind::ConfigRejected);
            return Err(ErrorReply::new(ErrorCode::InvalidConfig, reason));
        }
        let changed = self.config() != Some(config);
        if dry_run || !changed {
            return Ok(ApplyReport {
                generation: self.generation,
                dry_run,
                changed,
                ..ApplyReport::default()
            });
        }
        let generation = self.generation.wrapping_add(1).max(1);
        let mut report = self.install(now, config, generation, true)?;
        report.changed = true;
        if let Some(ha) = self.ha
            && let Ok(mut h) = ha.try_borrow_mut()
            && h.reconfigure(now, config).is_err()
        {
            // Checked above; the tables are in, so say so rather than fail the push.
            warn!("HA: the new settings were refused after the check");
        }
        Ok(report)
    }

    /// Validates `config`; the refusal with every problem found when it is invalid. A
    /// function of its own: the problems (~6 KiB) are in this frame only, not in `apply`'s
    /// (which stays on the stack while the tables are written).
    #[inline(never)]
    fn check_valid(&mut self, now: u64, config: &Config) -> Result<(), ErrorReply> {
        let Err(errors) = config.validate() else {
            return Ok(());
        };
        self.management.rejected_configs += 1;
        self.st.events.push(now, EventKind::ConfigRejected);
        let mut reply = ErrorReply::new(
            ErrorCode::InvalidConfig,
            "configuration rejected; nothing was changed",
        );
        for e in errors.iter() {
            let mut line = heapless::String::<200>::new();
            let _ = core::fmt::write(&mut line, format_args!("{}: {}", e.path, e.message));
            if reply.details.push(truncated(&line)).is_err() {
                break;
            }
        }
        Err(reply)
    }

    /// Compiles and writes `config`; on success it becomes the running config. On failure
    /// nothing changes: the data path keeps the last good tables.
    #[inline(never)]
    fn install(
        &mut self,
        now: u64,
        config: &Config,
        generation: u32,
        save: bool,
    ) -> Result<ApplyReport, ErrorReply> {
        let ring = config.appliance.maglev_ring_size as usize;
        if ring > self.bufs.old_ring.len().min(self.bufs.new_ring.len()) {
            let mut text = heapless::String::<160>::new();
            let _ = core::fmt::write(
                &mut text,
                format_args!(
                    "maglev_ring_size {ring} is larger than this appliance's ring memory ({} entries)",
                    self.bufs.new_ring.len()
                ),
            );
            self.management.rejected_configs += 1;
            self.st.events.push(now, EventKind::ConfigRejected);
            return Err(ErrorReply::new(ErrorCode::InvalidConfig, &text));
        }
        // Commit anything pending so `written` equals `cp`: the fallback if compiling fails.
        if self.dirty {
            self.sync()?;
        }
        // MACs learned by ARP survive a config change (the config only carries the ones it
        // sets); otherwise every apply would black-hole those backends until re-learned.
        let learned: heapless::Vec<(Ipv4Addr, [u8; 6]), BACKEND_SLOTS> = self
            .st
            .cp
            .backends()
            .iter()
            .filter(|b| b.state != BackendState::Free && b.mac_resolved())
            .map(|b| (b.ip(), b.mac))
            .collect();
        if let Err(e) = self.st.cp.apply(config) {
            self.st.cp.copy_from(&self.st.written);
            let mut text = heapless::String::<160>::new();
            let _ = core::fmt::write(
                &mut text,
                format_args!("configuration does not fit the tables: {e}"),
            );
            self.management.rejected_configs += 1;
            self.st.events.push(now, EventKind::ConfigRejected);
            return Err(ErrorReply::new(ErrorCode::InvalidConfig, &text));
        }
        for slot in 0..BACKEND_SLOTS {
            let b = self.st.cp.backends()[slot];
            if b.state != BackendState::Free
                && !b.mac_resolved()
                && let Some((_, mac)) = learned.iter().find(|(a, _)| *a == b.ip())
            {
                self.st.cp.set_mac(slot, *mac);
            }
        }
        self.st.config.copy_from(config);
        self.st.configured = true;
        let State {
            cp,
            config: running,
            checker,
            ..
        } = &mut *self.st;
        checker.configure(now, checks(cp, running), targets(cp, running));
        for slot in 0..BACKEND_SLOTS {
            if self.st.cp.backend_name(slot).is_some() {
                self.refresh_backend(slot);
            }
        }
        let stats = self.sync()?;
        self.generation = generation;
        self.st
            .events
            .push(now, EventKind::ConfigApplied { generation });
        info!("config generation {} applied", generation);
        if save {
            self.save(now);
        }
        Ok(ApplyReport {
            generation,
            dry_run: false,
            changed: true,
            words_written: stats.0,
            ring_entries_written: stats.1,
        })
    }

    fn save(&mut self, now: u64) {
        let Some(config) = self.st.configured.then_some(&self.st.config) else {
            return;
        };
        let saved = persist::encode(config, self.generation, self.bufs.record)
            .and_then(|len| self.store.save(&self.bufs.record[..len]));
        if saved.is_err() {
            warn!("saving the config failed; it runs but will not survive a reboot");
            self.st.events.push(now, EventKind::PersistFailed);
        }
    }

    /// Pushes the checker's view of `slot` (health, slow-start weight, response time) into
    /// the control plane.
    fn refresh_backend(&mut self, slot: usize) {
        self.st.cp.set_health(slot, self.st.checker.is_up(slot));
        let configured = self.configured_weight(slot);
        self.st.cp.set_effective_weight(
            slot,
            ramped_weight(configured, self.st.checker.ramp_step(slot)),
        );
        self.st
            .cp
            .set_rtt(slot, self.st.checker.rtt_us(slot).unwrap_or(0));
        self.dirty = true;
    }

    fn configured_weight(&self, slot: usize) -> u16 {
        let (Some((svc, be)), Some(config)) = (self.st.cp.backend_name(slot), self.config()) else {
            return 0;
        };
        config
            .services
            .iter()
            .find(|s| s.name.as_str() == svc)
            .and_then(|s| config.backends(s).iter().find(|b| b.name.as_str() == be))
            .map_or(0, |b| b.weight)
    }

    /// Writes what changed since the last commit and commits. Returns (entries, ring
    /// entries) written.
    #[inline(never)]
    fn sync(&mut self) -> Result<(u32, u32), ErrorReply> {
        let stats = self
            .st
            .cp
            .write_delta(
                &self.st.written,
                &mut self.writer,
                self.bufs.old_ring,
                self.bufs.new_ring,
            )
            .map_err(|e| {
                let mut text = heapless::String::<160>::new();
                let _ = core::fmt::write(&mut text, format_args!("writing the tables failed: {e}"));
                ErrorReply::new(ErrorCode::Internal, &text)
            })?;
        self.st.written.copy_from(&self.st.cp);
        self.dirty = false;
        self.rtt_pending = false;
        self.commits += 1;
        Ok((stats.entries, stats.ring_entries))
    }

    /// Changes a backend's administrative state; the running (and saved) config follows.
    #[inline(never)]
    pub fn set_admin(
        &mut self,
        now: u64,
        service: &str,
        backend: &str,
        state: AdminState,
    ) -> Result<(), ErrorReply> {
        let Some(slot) = self.st.cp.backend_slot(service, backend) else {
            return Err(ErrorReply::new(
                ErrorCode::NotFound,
                "no such service/backend in the running config",
            ));
        };
        if let Some(b) = self
            .st
            .configured
            .then_some(&mut self.st.config)
            .and_then(|c| {
                let index = c.services.iter().position(|s| s.name.as_str() == service)?;
                c.backends_mut(index)
                    .iter_mut()
                    .find(|b| b.name.as_str() == backend)
            })
        {
            if b.state == state {
                return Ok(());
            }
            b.state = state;
        }
        self.st.cp.set_admin(slot, state);
        self.dirty = true;
        self.sync()?;
        let (service, backend) = names(service, backend);
        self.st.events.push(
            now,
            EventKind::AdminChanged {
                service,
                backend,
                state,
            },
        );
        self.save(now);
        Ok(())
    }

    /// Learns that `address` is at `mac` (from ARP seen on the MCU port): backends at that
    /// address without a configured MAC get it.
    pub fn learn_neighbor(&mut self, address: Ipv4Addr, mac: [u8; 6]) {
        let Some(config) = self.st.configured.then_some(&self.st.config) else {
            return;
        };
        for (svc, be) in config.all_backends() {
            if be.address != address || be.mac.is_some() {
                continue;
            }
            if let Some(slot) = self.st.cp.backend_slot(&svc.name, &be.name)
                && self.st.cp.backends()[slot].mac != mac
            {
                self.st.cp.set_mac(slot, mac);
                self.dirty = true;
            }
        }
    }

    /// Every backend address of the running config.
    pub fn backend_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.config()
            .into_iter()
            .flat_map(|c| c.all_backends())
            .map(|(_, b)| b.address)
    }

    /// Backend addresses whose MAC is still unknown (the runner resolves them).
    pub fn unresolved(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.st
            .cp
            .backends()
            .iter()
            .filter(|b| b.state != BackendState::Free && !b.mac_resolved())
            .map(|b| b.ip())
    }

    /// Does what is due at `now` (slow-start steps, pending table writes); returns when to
    /// call again.
    pub fn poll(&mut self, now: u64) -> Option<u64> {
        let mut stepped: heapless::Vec<u16, BACKEND_SLOTS> = heapless::Vec::new();
        self.st.checker.advance_ramps(now, |slot, _| {
            let _ = stepped.push(slot);
        });
        for slot in stepped {
            self.refresh_backend(usize::from(slot));
        }
        let rtt_due = self.rtt_pending && now >= self.last_sync_ms + RTT_BATCH_MS;
        if self.dirty || rtt_due {
            self.last_sync_ms = now;
            if self.sync().is_err() {
                warn!("table write failed; will retry");
            }
        }
        let rtt_at = self.rtt_pending.then_some(self.last_sync_ms + RTT_BATCH_MS);
        match (self.st.checker.poll_at(), rtt_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the data path uses `slot`'s response time (its service balances by it).
    fn uses_rtt(&self, slot: usize) -> bool {
        self.st
            .cp
            .backend_name(slot)
            .and_then(|(service, _)| self.st.cp.service_slot(service))
            .is_some_and(|s| self.st.cp.services()[s].algorithm == Algorithm::LeastResponseTime)
    }

    /// A health probe due at `now`.
    pub fn next_probe(&mut self, now: u64) -> Option<Probe> {
        self.st.checker.next_due(now)
    }

    /// Records a probe result; a state change updates the tables at the next poll.
    pub fn probe_done(&mut self, now: u64, ticket: Ticket, outcome: Outcome) {
        let slot = usize::from(ticket.slot);
        let before = self.st.checker.rtt_us(slot);
        let transition = self.st.checker.complete(now, ticket, outcome);
        if let Some(t) = transition {
            let (svc, be) = self
                .st
                .cp
                .backend_name(slot)
                .map(|(s, b)| names(s, b))
                .unwrap_or_default();
            if t.up {
                info!(
                    "{}/{} is up ({} us)",
                    svc.as_str(),
                    be.as_str(),
                    t.latency_us
                );
                self.st.events.push(
                    now,
                    EventKind::BackendUp {
                        service: svc,
                        backend: be,
                        latency_us: t.latency_us,
                    },
                );
            } else {
                let failure = t
                    .failure
                    .unwrap_or(fulcrum_mgmt::message::CheckFailure::Local);
                warn!(
                    "{}/{} is down: {}",
                    svc.as_str(),
                    be.as_str(),
                    failure.describe()
                );
                self.st.events.push(
                    now,
                    EventKind::BackendDown {
                        service: svc,
                        backend: be,
                        failure,
                    },
                );
            }
            self.refresh_backend(slot);
        } else if self.st.checker.rtt_us(slot) != before {
            self.rtt_moved(slot);
        }
    }

    /// Records a response time the L7 proxy measured (request sent to response head) for
    /// backend `slot`: it feeds the same smoothed value as the checks (least response time).
    pub fn observe_response_time(&mut self, slot: usize, latency_us: u32) {
        self.st.checker.observe_rtt(slot, latency_us);
        self.rtt_moved(slot);
    }

    /// Writes a response time when it moved by more than an eighth (or 100 µs), and then
    /// batched: a single measurement is not worth a commit of its own.
    fn rtt_moved(&mut self, slot: usize) {
        if !self.uses_rtt(slot) {
            return;
        }
        let new = self.st.checker.rtt_us(slot).unwrap_or(0);
        let written = self.st.cp.backends()[slot].rtt_us;
        if new.abs_diff(written) > (written / 8).max(100) {
            self.st.cp.set_rtt(slot, new);
            self.rtt_pending = true;
        }
    }

    /// Whether table writes are pending.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// One page of the status report.
    #[inline(never)]
    pub fn status(&mut self, now: u64, page: u8) -> StatusReport {
        let mut report = empty_report();
        self.status_into(now, page, &mut report);
        report
    }

    /// One page of the status report, written into `report` (whatever it held): the MCU
    /// keeps one page (~20 KiB) in one frame, never a copy of it in another.
    #[inline(never)]
    pub fn status_into(&mut self, now: u64, page: u8, report: &mut StatusReport) {
        read_counters(
            self.writer.bus(),
            &mut self.st.counters,
            &mut self.st.active_flows,
        );
        let c = &self.st.counters;
        let services = self.config().map_or(0, |c| c.services.len());
        report.page = page;
        report.pages = services.div_ceil(STATUS_PAGE_SERVICES).max(1) as u8;
        report.name = self.name();
        report.uptime_ms = now.saturating_sub(self.boot_ms);
        report.generation = self.generation;
        report.rx_frames = c.rx_frames;
        report.from_mcu = c.from_mcu;
        report.drops.clear();
        report.drops.extend(c.drops.iter().copied().take(32));
        report.punts.clear();
        report.punts.extend(c.punts.iter().copied().take(16));
        report.evictions = c.evictions;
        report.expirations = c.expirations;
        report.moved_flows = c.moved_flows;
        report.management = self.management;
        report.services.clear();
        self.status_services(page, &mut report.services);
    }

    /// The services of status page `page`, written into `services` a service at a time
    /// (a page is ~20 KiB: it is built where it lives).
    #[inline(never)]
    fn status_services(
        &self,
        page: u8,
        services: &mut heapless::Vec<ServiceStatus, STATUS_PAGE_SERVICES>,
    ) {
        let c = &self.st.counters;
        let Some(config) = self.st.configured.then_some(&self.st.config) else {
            return;
        };
        let first = usize::from(page) * STATUS_PAGE_SERVICES;
        for svc in config
            .services
            .iter()
            .skip(first)
            .take(STATUS_PAGE_SERVICES)
        {
            let slot = self.st.cp.service_slot(&svc.name);
            let sc = slot.map(|s| c.services[s]).unwrap_or_default();
            let check_latency = slot.map(|s| self.st.checker.latency(s)).unwrap_or_default();
            if services
                .push(ServiceStatus {
                    name: svc.name.clone(),
                    vip: svc.vip,
                    protocol: svc.protocol,
                    port: svc.port,
                    mode: svc.mode,
                    algorithm: svc.algorithm,
                    packets: sc.packets,
                    bytes: sc.bytes,
                    return_packets: sc.return_packets,
                    return_bytes: sc.return_bytes,
                    new_flows: sc.new_flows,
                    check_latency,
                    backends: heapless::Vec::new(),
                    l7: match (svc.mode, self.l7_counters) {
                        (Mode::L7, Some(source)) => {
                            source.l7_counters(&svc.name).map(|c| c.status())
                        }
                        _ => None,
                    },
                })
                .is_err()
            {
                return;
            }
            let Some(status) = services.last_mut() else {
                return;
            };
            for be in config.backends(svc) {
                let Some(slot) = self.st.cp.backend_slot(&svc.name, &be.name) else {
                    continue;
                };
                let entry = &self.st.cp.backends()[slot];
                let bc = &c.backends[slot];
                let _ = status.backends.push(BackendStatus {
                    name: be.name.clone(),
                    address: be.address,
                    port: svc.backend_port(be),
                    admin: be.state,
                    state: entry.state,
                    health: self.st.checker.status(slot).unwrap_or(HealthStatus {
                        up: true,
                        ..HealthStatus::default()
                    }),
                    weight: be.weight,
                    effective_weight: if entry.state.takes_new_flows() {
                        entry.weight
                    } else {
                        0
                    },
                    active_flows: self.st.active_flows[slot],
                    total_flows: bc.flows,
                    packets: bc.packets,
                    bytes: bc.bytes,
                });
            }
        }
    }

    /// Answers a status request. A function of its own, so that the page (~20 KiB) is in
    /// this frame only, not in that of every request (`handle` is inlined into the
    /// connection's `on_bytes`, which is on the chain of every request, `Apply` too).
    #[inline(never)]
    fn reply_status<R>(
        &mut self,
        now: u64,
        page: u8,
        reply: impl FnOnce(ResponseRef<'_>) -> R,
    ) -> R {
        let mut report = empty_report();
        self.status_into(now, page, &mut report);
        reply(ResponseRef::Status(&report))
    }

    /// Answers an `Apply` (a function of its own for the same reason as `reply_status`).
    #[inline(never)]
    fn reply_apply<R>(
        &mut self,
        now: u64,
        staged: &Config,
        dry_run: bool,
        reply: impl FnOnce(ResponseRef<'_>) -> R,
    ) -> R {
        match self.apply(now, staged, dry_run) {
            Ok(report) => reply(ResponseRef::Applied(&report)),
            Err(e) => reply(ResponseRef::Error(&e)),
        }
    }

    /// Carries out a management command (authentication is the session's business) and
    /// hands the answer, borrowed from the appliance's state, to `reply`. An `Apply`'s
    /// config is in `staged`.
    pub fn handle<R>(
        &mut self,
        now: u64,
        command: &Command,
        staged: &Config,
        reply: impl FnOnce(ResponseRef<'_>) -> R,
    ) -> R {
        self.management.requests += 1;
        match command {
            Command::Hello { .. } => reply(ResponseRef::Error(&ErrorReply::new(
                ErrorCode::Malformed,
                "Hello is answered by the session",
            ))),
            Command::Status { page } => self.reply_status(now, *page, reply),
            Command::GetConfig => reply(ResponseRef::Config(self.config())),
            Command::Apply { dry_run } => self.reply_apply(now, staged, *dry_run, reply),
            Command::Backend {
                service,
                backend,
                state,
            } => match self.set_admin(now, service, backend, *state) {
                Ok(()) => reply(ResponseRef::Done),
                Err(e) => reply(ResponseRef::Error(&e)),
            },
            Command::Events { after } => {
                let page = self.st.events.page(*after);
                reply(ResponseRef::Events(&page))
            }
            Command::FilterBegin { .. }
            | Command::FilterChunk { .. }
            | Command::FilterCommit
            | Command::FilterList
            | Command::FilterRemove { .. } => self.handle_filter(now, command, reply),
            Command::HaStatus => {
                let status = self.ha_status(now);
                reply(ResponseRef::Ha(&status))
            }
            Command::HaAdmin { action } => {
                let Some(ha) = self.ha else {
                    return reply(ResponseRef::Error(&ErrorReply::new(
                        ErrorCode::Unsupported,
                        "high availability is not configured ([appliance.ha])",
                    )));
                };
                match ha.try_borrow_mut() {
                    Ok(mut h) => h.admin(now, *action),
                    Err(_) => {
                        return reply(ResponseRef::Error(&ErrorReply::new(
                            ErrorCode::Internal,
                            "HA is busy; try again",
                        )));
                    }
                }
                let status = self.ha_status(now);
                reply(ResponseRef::Ha(&status))
            }
        }
    }

    /// The WebAssembly filters (for the L7 proxy: [`crate::filter::Filters::run`]).
    #[cfg(feature = "filters")]
    pub fn filters(&self) -> &crate::filter::Filters {
        &self.filters
    }

    /// The WebAssembly filters, mutably (running a filter needs this).
    #[cfg(feature = "filters")]
    pub fn filters_mut(&mut self) -> &mut crate::filter::Filters {
        &mut self.filters
    }

    /// Filter upload, list and removal.
    #[cfg(feature = "filters")]
    fn handle_filter<R>(
        &mut self,
        now: u64,
        command: &Command,
        reply: impl FnOnce(ResponseRef<'_>) -> R,
    ) -> R {
        use crate::filter::UploadError;
        let refuse = |e: &dyn core::fmt::Display| {
            let mut text = heapless::String::<160>::new();
            let _ = core::fmt::write(&mut text, format_args!("{e}"));
            ErrorReply::new(ErrorCode::InvalidFilter, &text)
        };
        match command {
            Command::FilterBegin {
                service,
                length,
                sha256,
            } => match self.filters.begin_upload(service, *length, *sha256) {
                Ok(()) => reply(ResponseRef::Done),
                Err(e) => reply(ResponseRef::Error(&refuse(&e))),
            },
            Command::FilterChunk { offset, data } => {
                match self.filters.upload_chunk(*offset, data) {
                    Ok(_) => reply(ResponseRef::Done),
                    Err(e) => reply(ResponseRef::Error(&refuse(&e))),
                }
            }
            Command::FilterCommit => {
                let service = self
                    .filters
                    .upload_progress()
                    .map(|(s, _, _)| Name::try_from(s).unwrap_or_default());
                match self.filters.commit_upload() {
                    Ok(info) => {
                        self.st.events.push(
                            now,
                            EventKind::FilterInstalled {
                                service: info.service.clone(),
                            },
                        );
                        reply(ResponseRef::FilterInstalled(&info))
                    }
                    Err(e) => {
                        if let (Some(service), false) =
                            (service, matches!(e, UploadError::NotStarted))
                        {
                            self.st
                                .events
                                .push(now, EventKind::FilterRejected { service });
                        }
                        warn!("filter upload refused");
                        reply(ResponseRef::Error(&refuse(&e)))
                    }
                }
            }
            Command::FilterList => {
                let list: heapless::Vec<FilterInfo, MAX_FILTERS> =
                    self.filters.list().take(MAX_FILTERS).cloned().collect();
                reply(ResponseRef::Filters(&list))
            }
            Command::FilterRemove { service } => {
                if self.filters.remove(service) {
                    self.st.events.push(
                        now,
                        EventKind::FilterRemoved {
                            service: service.clone(),
                        },
                    );
                    reply(ResponseRef::Done)
                } else {
                    reply(ResponseRef::Error(&ErrorReply::new(
                        ErrorCode::NotFound,
                        "this service has no filter",
                    )))
                }
            }
            _ => reply(ResponseRef::Error(&ErrorReply::new(
                ErrorCode::Internal,
                "not a filter request",
            ))),
        }
    }

    /// Without the `filters` feature every filter request is refused.
    #[cfg(not(feature = "filters"))]
    fn handle_filter<R>(
        &mut self,
        _now: u64,
        _command: &Command,
        reply: impl FnOnce(ResponseRef<'_>) -> R,
    ) -> R {
        reply(ResponseRef::Error(&ErrorReply::new(
            ErrorCode::Unsupported,
            "this firmware was built without WebAssembly filters",
        )))
    }

    /// Appends an event to the log (the HA runner's role changes, resyncs, split brain).
    pub fn push_event(&mut self, now: u64, kind: EventKind) {
        self.st.events.push(now, kind);
    }

    /// Records an authentication failure (the management layer calls this).
    pub fn auth_failure(&mut self, now: u64) {
        self.st.events.push(now, EventKind::AuthFailure);
    }

    /// The slow-start step of `slot` (for tests and status).
    pub fn ramp_step(&self, slot: usize) -> u8 {
        if slot < BACKEND_SLOTS {
            self.st.checker.ramp_step(slot)
        } else {
            RAMP_STEPS
        }
    }
}

/// A status page with nothing in it (built in place: its lists are empty).
fn empty_report() -> StatusReport {
    StatusReport {
        page: 0,
        pages: 0,
        name: Name::new(),
        uptime_ms: 0,
        generation: 0,
        rx_frames: 0,
        from_mcu: 0,
        drops: heapless::Vec::new(),
        punts: heapless::Vec::new(),
        evictions: 0,
        expirations: 0,
        moved_flows: 0,
        management: ManagementCounters {
            requests: 0,
            malformed: 0,
            auth_failures: 0,
            replays: 0,
            rejected_configs: 0,
        },
        services: heapless::Vec::new(),
    }
}

fn names(service: &str, backend: &str) -> (Name, Name) {
    (
        Name::try_from(service).unwrap_or_default(),
        Name::try_from(backend).unwrap_or_default(),
    )
}

/// The health-check targets of `config` (slots from `cp`), produced lazily.
fn targets<'a>(
    cp: &'a ControlPlane,
    config: &'a Config,
) -> impl Iterator<Item = Target> + Clone + 'a {
    config.all_backends().filter_map(move |(svc, be)| {
        let slot = cp.backend_slot(&svc.name, &be.name)?;
        Some(Target {
            slot: slot as u16,
            service: cp.service_slot(&svc.name)? as u8,
            address: be.address,
            port: svc.health.port.unwrap_or(svc.backend_port(be)),
        })
    })
}

/// Each service's check settings, by service slot.
fn checks<'a>(
    cp: &'a ControlPlane,
    config: &'a Config,
) -> impl Iterator<Item = (u8, &'a fulcrum_model::config::HealthCheck)> + 'a {
    config
        .services
        .iter()
        .filter_map(move |svc| Some((cp.service_slot(&svc.name)? as u8, &svc.health)))
}
