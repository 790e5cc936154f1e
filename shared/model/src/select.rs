//! Stage 4, select: which backend a new flow of a service goes to.
//!
//! Only backends whose state takes new flows ([`BackendState::Up`]) and whose effective
//! weight is non-zero are *eligible*. Members are scanned in member-list order; every tie
//! goes to the earlier member, so the choice is a pure function of the tables and the
//! per-service state below — the property the FPGA is checked against.
//!
//! | algorithm | choice |
//! |---|---|
//! | round robin | the first eligible member at or after the cursor; the cursor moves past it |
//! | weighted round robin | nginx's smooth WRR: every eligible member's `current += weight`; the largest `current` wins and pays back the total; ineligible members' `current` is reset to 0 |
//! | IP hash | the Maglev ring at the hash of the source address |
//! | Maglev | the Maglev ring at the flow hash |
//! | least connections | the smallest `active / weight`, compared as `active_a × weight_b < active_b × weight_a` |
//! | least response time | the smallest `max(rtt, 1) × (active + 1) / weight`, rtt saturated at 2²⁴−1 µs and `active + 1` at 2²⁰ so every product fits 64 bits |
//!
//! A ring entry whose backend is not eligible (possible only between a state change and
//! the control plane's ring rebuild) gives no backend: the frame is dropped and counted,
//! never sent to a backend that must not take it.

use crate::config::Algorithm;
use crate::maglev;
use crate::tables::{BackendEntry, MEMBER_SLOTS, NO_BACKEND, SERVICE_SLOTS};

/// Largest response time the least-response-time comparison distinguishes, in µs.
pub const RTT_SATURATION: u32 = (1 << 24) - 1;
/// Largest `active + 1` the least-response-time comparison distinguishes.
pub const ACTIVE_SATURATION: u32 = 1 << 20;

/// Per-service state of the stateful algorithms.
#[derive(Debug, Clone)]
pub struct SelectState {
    rr_cursor: [u8; SERVICE_SLOTS],
    wrr_current: [[i32; MEMBER_SLOTS]; SERVICE_SLOTS],
}

impl Default for SelectState {
    fn default() -> Self {
        Self::new()
    }
}

impl SelectState {
    /// Every cursor and counter at zero.
    pub const fn new() -> Self {
        SelectState {
            rr_cursor: [0; SERVICE_SLOTS],
            wrr_current: [[0; MEMBER_SLOTS]; SERVICE_SLOTS],
        }
    }
}

/// The tables one choice reads.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// The service's member list (backend-table indexes), only the valid prefix.
    pub members: &'a [u16],
    /// The backend table.
    pub backends: &'a [BackendEntry],
    /// Active flows per backend-table index.
    pub active: &'a [u32],
    /// The service's Maglev ring.
    pub ring: &'a [u16],
}

impl Candidates<'_> {
    fn backend(&self, index: u16) -> Option<&BackendEntry> {
        self.backends.get(usize::from(index))
    }

    fn eligible(&self, index: u16) -> bool {
        self.backend(index)
            .is_some_and(|b| b.state.takes_new_flows() && b.weight > 0)
    }

    fn active(&self, index: u16) -> u32 {
        self.active.get(usize::from(index)).copied().unwrap_or(0)
    }
}

impl SelectState {
    /// Resets the state of service `service` (on a table commit that changes its members).
    pub fn reset_service(&mut self, service: usize) {
        if let Some(c) = self.rr_cursor.get_mut(service) {
            *c = 0;
        }
        if let Some(w) = self.wrr_current.get_mut(service) {
            *w = [0; MEMBER_SLOTS];
        }
    }

    /// Chooses a backend-table index for a new flow of service `service`, or
    /// [`NO_BACKEND`]. `flow_hash` is the 5-tuple hash, `src_hash` the source-address hash.
    pub fn select(
        &mut self,
        algorithm: Algorithm,
        service: usize,
        c: &Candidates<'_>,
        flow_hash: u32,
        src_hash: u32,
    ) -> u16 {
        if service >= SERVICE_SLOTS {
            return NO_BACKEND;
        }
        let members = &c.members[..c.members.len().min(MEMBER_SLOTS)];
        let choice = match algorithm {
            Algorithm::RoundRobin => self.round_robin(service, members, c),
            Algorithm::WeightedRoundRobin => self.smooth_weighted(service, members, c),
            Algorithm::Maglev => ring_choice(c, flow_hash),
            Algorithm::IpHash => ring_choice(c, src_hash),
            Algorithm::LeastConnections => least_by(members, c, |b, active| {
                (u64::from(active), u64::from(b.weight))
            }),
            Algorithm::LeastResponseTime => least_by(members, c, |b, active| {
                let rtt = u64::from(b.rtt_us.clamp(1, RTT_SATURATION));
                let load = u64::from(active.saturating_add(1).min(ACTIVE_SATURATION));
                (rtt * load, u64::from(b.weight))
            }),
        };
        if choice != NO_BACKEND && c.eligible(choice) {
            choice
        } else {
            NO_BACKEND
        }
    }

    fn round_robin(&mut self, service: usize, members: &[u16], c: &Candidates<'_>) -> u16 {
        let n = members.len();
        if n == 0 {
            return NO_BACKEND;
        }
        let start = usize::from(self.rr_cursor[service]) % n;
        for step in 0..n {
            let pos = (start + step) % n;
            if c.eligible(members[pos]) {
                self.rr_cursor[service] = ((pos + 1) % n) as u8;
                return members[pos];
            }
        }
        NO_BACKEND
    }

    fn smooth_weighted(&mut self, service: usize, members: &[u16], c: &Candidates<'_>) -> u16 {
        let current = &mut self.wrr_current[service];
        let mut total: i32 = 0;
        let mut best: Option<usize> = None;
        for (pos, &backend) in members.iter().enumerate() {
            if !c.eligible(backend) {
                current[pos] = 0;
                continue;
            }
            let weight = c.backend(backend).map_or(0, |b| i32::from(b.weight));
            current[pos] += weight;
            total += weight;
            if best.is_none_or(|b| current[pos] > current[b]) {
                best = Some(pos);
            }
        }
        match best {
            Some(pos) => {
                current[pos] -= total;
                members[pos]
            }
            None => NO_BACKEND,
        }
    }
}

fn ring_choice(c: &Candidates<'_>, hash: u32) -> u16 {
    if c.ring.is_empty() {
        return NO_BACKEND;
    }
    let entry = maglev::lookup(c.ring, hash);
    if entry == maglev::EMPTY {
        NO_BACKEND
    } else {
        entry
    }
}

/// The eligible member with the smallest `cost / weight`, where `score` gives
/// `(cost, weight)`; ties go to the earlier member.
fn least_by(
    members: &[u16],
    c: &Candidates<'_>,
    score: impl Fn(&BackendEntry, u32) -> (u64, u64),
) -> u16 {
    let mut best: Option<(u16, u64, u64)> = None;
    for &backend in members {
        if !c.eligible(backend) {
            continue;
        }
        let Some(entry) = c.backend(backend) else {
            continue;
        };
        let (cost, weight) = score(entry, c.active(backend));
        let better = match best {
            None => true,
            Some((_, best_cost, best_weight)) => {
                u128::from(cost) * u128::from(best_weight)
                    < u128::from(best_cost) * u128::from(weight)
            }
        };
        if better {
            best = Some((backend, cost, weight));
        }
    }
    best.map_or(NO_BACKEND, |(b, _, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::BackendState;

    fn backends(weights: &[u16]) -> [BackendEntry; 8] {
        let mut t = [BackendEntry::default(); 8];
        for (i, &w) in weights.iter().enumerate() {
            t[i] = BackendEntry {
                state: BackendState::Up,
                weight: w,
                address: [10, 0, 1, i as u8],
                ..Default::default()
            };
        }
        t
    }

    fn run(alg: Algorithm, table: &[BackendEntry], active: &[u32], n: usize) -> [u32; 8] {
        let members: [u16; 4] = [0, 1, 2, 3];
        let mut s = SelectState::default();
        let mut counts = [0u32; 8];
        let c = Candidates {
            members: &members,
            backends: table,
            active,
            ring: &[],
        };
        for _ in 0..n {
            let b = s.select(alg, 0, &c, 0, 0);
            if let Some(n) = counts.get_mut(usize::from(b)) {
                *n += 1;
            }
        }
        counts
    }

    #[test]
    fn round_robin_skips_ineligible() {
        let mut t = backends(&[1, 1, 1, 1]);
        t[2].state = BackendState::Drain;
        let counts = run(Algorithm::RoundRobin, &t, &[0; 8], 300);
        assert_eq!(&counts[..4], &[100, 100, 0, 100]);
    }

    #[test]
    fn smooth_wrr_follows_weights_and_interleaves() {
        let t = backends(&[5, 1, 1, 0]);
        let members: [u16; 4] = [0, 1, 2, 3];
        let mut s = SelectState::default();
        let c = Candidates {
            members: &members,
            backends: &t,
            active: &[0; 8],
            ring: &[],
        };
        let seq: [u16; 7] =
            core::array::from_fn(|_| s.select(Algorithm::WeightedRoundRobin, 0, &c, 0, 0));
        // nginx's documented sequence for weights 5,1,1: a a b a c a a.
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn least_connections_weighs_active_flows() {
        let t = backends(&[1, 2, 1, 1]);
        // active 3,4,1,2: ratios 3, 2, 1, 2 -> backend 2.
        let mut s = SelectState::default();
        let members: [u16; 4] = [0, 1, 2, 3];
        let active = [3, 4, 1, 2, 0, 0, 0, 0];
        let c = Candidates {
            members: &members,
            backends: &t,
            active: &active,
            ring: &[],
        };
        assert_eq!(s.select(Algorithm::LeastConnections, 0, &c, 0, 0), 2);
        // Tie between 1 (4/2) and 3 (2/1): the earlier member.
        let active = [3, 4, 9, 2, 0, 0, 0, 0];
        let c = Candidates {
            active: &active,
            ..c
        };
        assert_eq!(s.select(Algorithm::LeastConnections, 0, &c, 0, 0), 1);
    }

    #[test]
    fn least_response_time_prefers_fast_backends() {
        let mut t = backends(&[1, 1, 1, 1]);
        for (i, rtt) in [4000, 1000, 2000, 8000].into_iter().enumerate() {
            t[i].rtt_us = rtt;
        }
        let members: [u16; 4] = [0, 1, 2, 3];
        let mut s = SelectState::default();
        let c = Candidates {
            members: &members,
            backends: &t,
            active: &[0, 2, 0, 0, 0, 0, 0, 0],
            ring: &[],
        };
        // Scores: 4000, 3000, 2000, 8000.
        assert_eq!(s.select(Algorithm::LeastResponseTime, 0, &c, 0, 0), 2);
    }

    #[test]
    fn nothing_eligible_gives_no_backend() {
        let mut t = backends(&[1, 1, 1, 1]);
        for b in t.iter_mut() {
            b.state = BackendState::Down;
        }
        for alg in [
            Algorithm::RoundRobin,
            Algorithm::WeightedRoundRobin,
            Algorithm::LeastConnections,
            Algorithm::LeastResponseTime,
            Algorithm::Maglev,
            Algorithm::IpHash,
        ] {
            let counts = run(alg, &t, &[0; 8], 1);
            assert_eq!(counts.iter().sum::<u32>(), 0, "{alg:?}");
        }
    }
}
