//! The health checker: when to check each backend, and what the results mean, with
//! HAProxy's semantics. Sans-IO: the runner asks [`HealthChecker::next_due`] for probes,
//! runs them, and reports with [`HealthChecker::complete`]; [`HealthChecker::poll_at`]
//! says when to come back.
//!
//! ## Semantics
//! - A backend starts **up, unconfirmed** (HAProxy starts servers up with `health = rise`):
//!   its first check comes at once (spread over `inter` to avoid a thundering herd); a
//!   success confirms it, a failure takes it down at once.
//! - An up backend goes **down** after `fall` consecutive failures; a down backend comes
//!   **up** after `rise` consecutive successes. Anything in between is a pending change.
//! - The interval to the next check is `inter` while up and settled, `fastinter` while a
//!   change is pending (an up backend with failures, a down one with successes), and
//!   `downinter` while down and settled. It counts from the start of the previous check,
//!   so a backend that stops answering is down within `(fall − 1) × fastinter + timeout`
//!   of the start of its first failed check (≤ `fall × fastinter` when `timeout ≤
//!   fastinter`). Rise/fall hysteresis is what keeps a flapping backend from thrashing the
//!   tables: a change needs `rise` or `fall` results in a row.
//! - **Slow start**: a backend that comes up takes `weight × step / 10` for step 1..10 over
//!   `slowstart`, so the tables change at most ten times per recovery.
//! - Each successful check's response time is smoothed (EWMA, α = 1/4) for least response
//!   time.

use core::net::Ipv4Addr;

use fulcrum_mgmt::message::{CheckFailure, HealthStatus, LatencyHistogram};
use fulcrum_model::config::HealthCheck;
use fulcrum_model::tables::{BACKEND_SLOTS, SERVICE_SLOTS};

use crate::probe::ProbeKind;

/// Steps of a slow-start ramp.
pub const RAMP_STEPS: u8 = 10;

/// One backend to check, as the appliance describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Backend-table slot.
    pub slot: u16,
    /// Service-table slot (whose check settings apply).
    pub service: u8,
    /// Address checked.
    pub address: Ipv4Addr,
    /// Port checked.
    pub port: u16,
}

/// A check to run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Which backend (for [`HealthChecker::complete`]).
    pub ticket: Ticket,
    /// Address to connect to.
    pub address: Ipv4Addr,
    /// Port to connect to.
    pub port: u16,
    /// What to send and expect.
    pub kind: ProbeKind,
    /// How long the whole check may take, ms.
    pub timeout_ms: u32,
}

/// Names one probe; a result for a reconfigured or removed backend is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Backend-table slot.
    pub slot: u16,
    epoch: u32,
}

/// A backend changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Backend-table slot.
    pub slot: u16,
    /// Now up (true) or down.
    pub up: bool,
    /// Response time of the deciding check (up), µs.
    pub latency_us: u32,
    /// Why the deciding check failed (down).
    pub failure: Option<CheckFailure>,
}

/// The result of one probe.
pub type Outcome = Result<u32, CheckFailure>;

#[derive(Debug, Clone)]
struct Entry {
    target: Target,
    /// The check's timing parameters (copied: the hot fields of the service's check).
    timing: Timing,
    active: bool,
    epoch: u32,
    up: bool,
    confirmed: bool,
    successes: u8,
    failures: u8,
    next_at: u64,
    started_at: Option<u64>,
    since_ms: u64,
    up_at: Option<u64>,
    ramp_step: u8,
    rtt_us: Option<u32>,
    status: HealthStatus,
}

/// The timing fields of a service's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    inter: u32,
    fastinter: u32,
    downinter: u32,
    rise: u8,
    fall: u8,
    timeout: u32,
    slowstart: u32,
}

impl Timing {
    fn of(c: &HealthCheck) -> Timing {
        Timing {
            inter: c.inter.0,
            fastinter: c.fastinter.0,
            downinter: c.downinter.0,
            rise: c.rise.max(1),
            fall: c.fall.max(1),
            timeout: c.timeout.0,
            slowstart: c.slowstart.0,
        }
    }
}

impl Entry {
    fn interval(&self) -> u32 {
        let c = &self.timing;
        match (self.up, self.failures, self.successes) {
            (true, 0, _) => c.inter,
            (true, _, _) => c.fastinter,
            (false, _, 0) => c.downinter,
            (false, _, _) => c.fastinter,
        }
    }
}

/// Health state of every backend slot.
pub struct HealthChecker {
    entries: [Option<Entry>; BACKEND_SLOTS],
    checks: [Option<(HealthCheck, Option<ProbeKind>)>; SERVICE_SLOTS],
    latency: [LatencyHistogram; SERVICE_SLOTS],
    epoch: u32,
}

impl Default for HealthChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthChecker {
    /// No backends.
    pub const fn new() -> Self {
        HealthChecker {
            entries: [const { None }; BACKEND_SLOTS],
            checks: [const { None }; SERVICE_SLOTS],
            latency: [LatencyHistogram {
                buckets: [0; 13],
                sum_us: 0,
                count: 0,
            }; SERVICE_SLOTS],
            epoch: 0,
        }
    }

    /// Makes the checked set equal `targets`, with each service's check settings from
    /// `checks` (service slot, settings). A backend whose target and settings are unchanged
    /// keeps its state; a new or changed one starts up and unconfirmed.
    pub fn configure<'c>(
        &mut self,
        now: u64,
        checks: impl Iterator<Item = (u8, &'c HealthCheck)>,
        targets: impl Iterator<Item = Target> + Clone,
    ) {
        let mut changed = [false; SERVICE_SLOTS];
        let mut seen = [false; SERVICE_SLOTS];
        for (service, check) in checks {
            let s = usize::from(service);
            if s >= SERVICE_SLOTS {
                continue;
            }
            seen[s] = true;
            if self.checks[s].as_ref().map(|c| &c.0) != Some(check) {
                changed[s] = true;
                self.checks[s] = Some((check.clone(), ProbeKind::of(check)));
            }
        }
        for (s, c) in self.checks.iter_mut().enumerate() {
            if !seen[s] {
                *c = None;
                self.latency[s] = LatencyHistogram::default();
            }
        }
        let count = targets.clone().count().max(1) as u64;
        let mut keep = [false; BACKEND_SLOTS];
        for (i, t) in targets.enumerate() {
            let slot = usize::from(t.slot);
            let Some((check, kind)) = self
                .checks
                .get(usize::from(t.service))
                .and_then(|c| c.as_ref())
            else {
                continue;
            };
            if slot >= BACKEND_SLOTS {
                continue;
            }
            keep[slot] = true;
            if let Some(e) = &self.entries[slot]
                && e.target == t
                && !changed[usize::from(t.service)]
            {
                continue;
            }
            self.epoch = self.epoch.wrapping_add(1);
            let timing = Timing::of(check);
            // Spread first checks over one interval (at most fastinter), in target order.
            let spread = u64::from(timing.inter) * i as u64 / count;
            self.entries[slot] = Some(Entry {
                target: t,
                timing,
                active: kind.is_some(),
                epoch: self.epoch,
                up: true,
                confirmed: false,
                successes: 0,
                failures: 0,
                next_at: now + spread.min(u64::from(timing.fastinter)),
                started_at: None,
                since_ms: now,
                up_at: None,
                ramp_step: RAMP_STEPS,
                rtt_us: None,
                status: HealthStatus {
                    up: true,
                    since_ms: now,
                    ..HealthStatus::default()
                },
            });
        }
        for (slot, e) in self.entries.iter_mut().enumerate() {
            if !keep[slot] {
                *e = None;
            }
        }
    }

    /// Whether `slot` is up as far as checks go (unknown slots: up).
    pub fn is_up(&self, slot: usize) -> bool {
        self.entries
            .get(slot)
            .and_then(|e| e.as_ref())
            .is_none_or(|e| e.up)
    }

    /// What the checker knows of `slot`.
    pub fn status(&self, slot: usize) -> Option<HealthStatus> {
        self.entries.get(slot)?.as_ref().map(|e| e.status)
    }

    /// Smoothed response time of `slot`, µs.
    pub fn rtt_us(&self, slot: usize) -> Option<u32> {
        self.entries.get(slot)?.as_ref()?.rtt_us
    }

    /// Folds a response time measured outside the checks (the L7 proxy's time to a
    /// response head) into backend `slot`'s smoothed response time.
    pub fn observe_rtt(&mut self, slot: usize, latency_us: u32) {
        if let Some(Some(e)) = self.entries.get_mut(slot) {
            e.rtt_us = Some(smooth_rtt(e.rtt_us, latency_us));
        }
    }

    /// Response times of service slot `service`'s successful checks.
    pub fn latency(&self, service: usize) -> LatencyHistogram {
        self.latency.get(service).copied().unwrap_or_default()
    }

    /// Number of backends with a check.
    pub fn checked(&self) -> usize {
        self.entries.iter().flatten().filter(|e| e.active).count()
    }

    /// Number of checked backends whose first check has not finished yet (they count as
    /// up until it does: HAProxy's unconfirmed state).
    pub fn unconfirmed(&self) -> usize {
        self.entries
            .iter()
            .flatten()
            .filter(|e| e.active && !e.confirmed)
            .count()
    }

    /// The earliest time something is due: a check, or a slow-start step.
    pub fn poll_at(&self) -> Option<u64> {
        self.entries
            .iter()
            .flatten()
            .filter_map(|e| {
                let check = (e.active && e.started_at.is_none()).then_some(e.next_at);
                let ramp = e.up_at.and_then(|at| {
                    (e.ramp_step < RAMP_STEPS).then(|| {
                        at + u64::from(e.timing.slowstart) * u64::from(e.ramp_step)
                            / u64::from(RAMP_STEPS)
                    })
                });
                match (check, ramp) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// A probe that is due at `now`, marked in flight; `None` when nothing is due.
    pub fn next_due(&mut self, now: u64) -> Option<Probe> {
        let e = self
            .entries
            .iter_mut()
            .flatten()
            .filter(|e| e.active && e.started_at.is_none() && e.next_at <= now)
            .min_by_key(|e| e.next_at)?;
        let kind = self
            .checks
            .get(usize::from(e.target.service))?
            .as_ref()?
            .1
            .clone()?;
        e.started_at = Some(now);
        Some(Probe {
            ticket: Ticket {
                slot: e.target.slot,
                epoch: e.epoch,
            },
            address: e.target.address,
            port: e.target.port,
            kind,
            timeout_ms: e.timing.timeout,
        })
    }

    /// Records a probe's outcome at `now`; returns the state change it caused, if any.
    pub fn complete(&mut self, now: u64, ticket: Ticket, outcome: Outcome) -> Option<Transition> {
        let e = self.entries.get_mut(usize::from(ticket.slot))?.as_mut()?;
        if e.epoch != ticket.epoch {
            return None;
        }
        let started = e.started_at.take().unwrap_or(now);
        let c = e.timing;
        let mut transition = None;
        match outcome {
            Ok(latency_us) => {
                if let Some(h) = self.latency.get_mut(usize::from(e.target.service)) {
                    h.observe(latency_us);
                }
                e.status.checks_passed += 1;
                e.status.last_latency_us = Some(latency_us);
                e.status.last_failure = None;
                e.rtt_us = Some(smooth_rtt(e.rtt_us, latency_us));
                e.failures = 0;
                e.confirmed = true;
                if !e.up {
                    e.successes = e.successes.saturating_add(1);
                    if e.successes >= c.rise {
                        e.up = true;
                        e.successes = 0;
                        e.since_ms = now;
                        if c.slowstart > 0 {
                            e.up_at = Some(now);
                            e.ramp_step = 1;
                        }
                        transition = Some(Transition {
                            slot: ticket.slot,
                            up: true,
                            latency_us,
                            failure: None,
                        });
                    }
                }
            }
            Err(failure) => {
                e.status.checks_failed += 1;
                e.status.last_failure = Some(failure);
                e.successes = 0;
                if e.up {
                    e.failures = e.failures.saturating_add(1);
                    if e.failures >= c.fall || !e.confirmed {
                        e.up = false;
                        e.confirmed = true;
                        e.failures = 0;
                        e.since_ms = now;
                        e.up_at = None;
                        e.ramp_step = RAMP_STEPS;
                        transition = Some(Transition {
                            slot: ticket.slot,
                            up: false,
                            latency_us: 0,
                            failure: Some(failure),
                        });
                    }
                }
            }
        }
        e.status.up = e.up;
        e.status.since_ms = e.since_ms;
        e.next_at = (started + u64::from(e.interval())).max(now);
        transition
    }

    /// Advances slow-start ramps to `now`; calls `f(slot, step)` for each ramp whose step
    /// changed (step [`RAMP_STEPS`] = full weight).
    pub fn advance_ramps(&mut self, now: u64, mut f: impl FnMut(u16, u8)) {
        for e in self.entries.iter_mut().flatten() {
            let (Some(at), true) = (e.up_at, e.ramp_step < RAMP_STEPS) else {
                continue;
            };
            let span = u64::from(e.timing.slowstart).max(1);
            let step = (1 + (now.saturating_sub(at) * u64::from(RAMP_STEPS) / span))
                .min(u64::from(RAMP_STEPS)) as u8;
            if step != e.ramp_step {
                e.ramp_step = step;
                if step == RAMP_STEPS {
                    e.up_at = None;
                }
                f(e.target.slot, step);
            }
        }
    }

    /// The slow-start step of `slot` ([`RAMP_STEPS`] when not ramping).
    pub fn ramp_step(&self, slot: usize) -> u8 {
        self.entries
            .get(slot)
            .and_then(|e| e.as_ref())
            .map_or(RAMP_STEPS, |e| e.ramp_step)
    }
}

/// The weight a backend of configured weight `weight` has at slow-start step `step`.
pub fn ramped_weight(weight: u16, step: u8) -> u16 {
    if step >= RAMP_STEPS || weight == 0 {
        return weight;
    }
    ((u32::from(weight) * u32::from(step)).div_ceil(u32::from(RAMP_STEPS)) as u16).max(1)
}

/// The response-time EWMA (α = 1/4).
fn smooth_rtt(old: Option<u32>, sample: u32) -> u32 {
    match old {
        None => sample,
        Some(r) => (i64::from(r) + (i64::from(sample) - i64::from(r)) / 4) as u32,
    }
}
