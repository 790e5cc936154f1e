//! Stage 3, look up: the flow table and the persistence (stickiness) table.
//!
//! Both are what the FPGA keeps in block RAM: a fixed-capacity **set-associative** table.
//! The set is chosen by the low bits of the flow's Toeplitz hash; within the set the
//! `ways` entries are compared in parallel in hardware, in way order here.
//!
//! Decisions, exactly:
//! - **Lookup** scans the set's ways from 0 up; the first valid entry whose key matches
//!   is a hit. A matching entry that is past its idle timeout is freed and reported as
//!   [`Lookup::Expired`] (its backend loses an active flow).
//! - **Insert** takes, in order: the lowest free way; else the lowest way whose entry is
//!   past its idle timeout; else the way with the oldest `last_seen` (lowest way on a
//!   tie). The displaced entry is returned so its backend's active count drops.
//! - **Timeouts** depend on the TCP state: `SynSeen` (only a SYN so far) uses the SYN
//!   timeout, `Established` the established timeout, `Closing` (after a FIN or RST) the
//!   closing timeout; UDP flows use the UDP timeout. A FIN or RST moves a flow to
//!   `Closing`; any non-SYN segment moves `SynSeen` to `Established`.
//! - **Time** is milliseconds, stored in 32 bits and compared with wrapping subtraction
//!   (correct for idle times below 24 days).
//! - **Aging** ([`FlowTable::age`]) visits slots round-robin from a cursor and frees the
//!   expired ones; the hardware does the same in idle cycles.

use crate::tables::Settings;

/// The 5-tuple that identifies a flow, as seen on the wire (client to VIP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FlowKey {
    /// IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// TCP state as far as the flow table cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlowState {
    /// Only a SYN seen.
    #[default]
    SynSeen,
    /// Data flowing.
    Established,
    /// A FIN or RST seen.
    Closing,
    /// A UDP flow (no states).
    Udp,
}

impl FlowState {
    /// The idle timeout of this state, in ms.
    pub fn timeout(self, settings: &Settings) -> u32 {
        match self {
            FlowState::SynSeen => settings.tcp_syn_timeout,
            FlowState::Established => settings.tcp_established_timeout,
            FlowState::Closing => settings.tcp_closing_timeout,
            FlowState::Udp => settings.udp_timeout,
        }
    }

    /// The 2-bit encoding used in registers and flow-sync messages.
    pub const fn code(self) -> u8 {
        match self {
            FlowState::SynSeen => 0,
            FlowState::Established => 1,
            FlowState::Closing => 2,
            FlowState::Udp => 3,
        }
    }

    /// Decodes [`FlowState::code`] (only the low two bits count).
    pub const fn from_code(code: u8) -> Self {
        match code & 3 {
            0 => FlowState::SynSeen,
            1 => FlowState::Established,
            2 => FlowState::Closing,
            _ => FlowState::Udp,
        }
    }
}

/// One flow-table entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FlowEntry {
    /// Whether the entry holds a flow.
    pub valid: bool,
    /// The flow's key.
    pub key: FlowKey,
    /// Service-table index.
    pub service: u8,
    /// Backend-table index.
    pub backend: u16,
    /// Generation of the backend slot when the flow was created.
    pub generation: u8,
    /// TCP state.
    pub state: FlowState,
    /// Time of the last frame, ms (wrapping).
    pub last_seen: u32,
    /// Source MAC of the client's frames (where replies go).
    pub client_mac: [u8; 6],
}

/// One persistence-table entry: a client address's backend within a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StickyEntry {
    /// Whether the entry is in use.
    pub valid: bool,
    /// Service-table index.
    pub service: u8,
    /// Client address.
    pub client: [u8; 4],
    /// Backend-table index.
    pub backend: u16,
    /// Generation of the backend slot.
    pub generation: u8,
    /// Time of the last new flow that used it, ms (wrapping).
    pub last_seen: u32,
}

/// Whether an entry last seen at `last_seen` is idle for longer than `timeout` at `now`.
pub fn is_expired(now: u32, last_seen: u32, timeout: u32) -> bool {
    now.wrapping_sub(last_seen) > timeout
}

/// Entries a set-associative table can hold.
pub trait TableEntry: Copy {
    /// What identifies an entry.
    type Key: PartialEq + Copy;
    /// The key, if the entry is in use.
    fn key(&self) -> Option<Self::Key>;
    /// Time of last use.
    fn last_seen(&self) -> u32;
}

impl TableEntry for FlowEntry {
    type Key = FlowKey;
    fn key(&self) -> Option<FlowKey> {
        self.valid.then_some(self.key)
    }
    fn last_seen(&self) -> u32 {
        self.last_seen
    }
}

impl TableEntry for StickyEntry {
    type Key = (u8, [u8; 4]);
    fn key(&self) -> Option<(u8, [u8; 4])> {
        self.valid.then_some((self.service, self.client))
    }
    fn last_seen(&self) -> u32 {
        self.last_seen
    }
}

/// Result of [`SetAssociative::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<E> {
    /// The entry at this slot matches and is live.
    Hit(usize),
    /// No entry matches.
    Miss,
    /// An entry matched but had expired; it has been freed (this is its last content).
    Expired(E),
}

/// Where [`SetAssociative::insert`] put an entry, and what it displaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted<E> {
    /// The slot written.
    pub slot: usize,
    /// The live or expired entry that was there before, if any.
    pub displaced: Option<E>,
    /// Whether the displaced entry was still live (an eviction, not a reclaim).
    pub evicted_live: bool,
}

/// A set-associative table over caller-provided storage (`sets × ways` entries, sets a
/// power of two). Slot `i` is way `i % ways` of set `i / ways`.
#[derive(Debug)]
pub struct SetAssociative<'a, E> {
    slots: &'a mut [E],
    ways: usize,
    set_mask: usize,
    age_cursor: usize,
}

impl<'a, E: TableEntry + Default> SetAssociative<'a, E> {
    /// Wraps `slots` as a table of `ways` ways. `slots.len()` must be `ways` times a power
    /// of two; the caller (config validation) guarantees it, and a wrong geometry is
    /// cut down to the largest valid one rather than panicking.
    pub fn new(slots: &'a mut [E], ways: usize) -> Self {
        let ways = ways.clamp(1, slots.len().max(1));
        let sets = slots.len() / ways;
        let sets = if sets == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - sets.leading_zeros())
        };
        for slot in slots.iter_mut() {
            *slot = E::default();
        }
        SetAssociative {
            slots,
            ways,
            set_mask: sets.wrapping_sub(1),
            age_cursor: 0,
        }
    }

    /// Number of sets.
    pub fn sets(&self) -> usize {
        self.set_mask.wrapping_add(1)
    }

    /// Entries per set.
    pub fn ways(&self) -> usize {
        self.ways
    }

    /// Total entries.
    pub fn capacity(&self) -> usize {
        self.sets() * self.ways
    }

    /// The first slot of the set a hash selects.
    pub fn set_base(&self, hash: u32) -> usize {
        (hash as usize & self.set_mask) * self.ways
    }

    /// The entry in `slot`.
    pub fn get(&self, slot: usize) -> Option<&E> {
        self.slots.get(slot)
    }

    /// The entry in `slot`, to update in place.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut E> {
        self.slots.get_mut(slot)
    }

    /// All slots (for inspection and flow sync).
    pub fn slots(&self) -> &[E] {
        self.slots
    }

    /// Finds `key` in the set of `hash`; `timeout` gives each entry's idle timeout.
    pub fn lookup(
        &mut self,
        key: E::Key,
        hash: u32,
        now: u32,
        timeout: impl Fn(&E) -> u32,
    ) -> Lookup<E> {
        if self.capacity() == 0 {
            return Lookup::Miss;
        }
        let base = self.set_base(hash);
        for slot in base..base + self.ways {
            let entry = self.slots[slot];
            if entry.key() == Some(key) {
                if is_expired(now, entry.last_seen(), timeout(&entry)) {
                    self.slots[slot] = E::default();
                    return Lookup::Expired(entry);
                }
                return Lookup::Hit(slot);
            }
        }
        Lookup::Miss
    }

    /// Puts `entry` into the set of `hash` by the insertion rule of the module docs.
    /// Returns `None` only for a table of capacity zero.
    pub fn insert(
        &mut self,
        entry: E,
        hash: u32,
        now: u32,
        timeout: impl Fn(&E) -> u32,
    ) -> Option<Inserted<E>> {
        if self.capacity() == 0 {
            return None;
        }
        let base = self.set_base(hash);
        let ways = base..base + self.ways;
        let free = ways.clone().find(|&s| self.slots[s].key().is_none());
        let expired = || {
            ways.clone().find(|&s| {
                let e = &self.slots[s];
                is_expired(now, e.last_seen(), timeout(e))
            })
        };
        let (slot, evicted_live) = match free {
            Some(slot) => (slot, false),
            None => match expired() {
                Some(slot) => (slot, false),
                None => {
                    let mut oldest = base;
                    for s in ways.clone() {
                        let age = now.wrapping_sub(self.slots[s].last_seen());
                        if age > now.wrapping_sub(self.slots[oldest].last_seen()) {
                            oldest = s;
                        }
                    }
                    (oldest, true)
                }
            },
        };
        let previous = self.slots[slot];
        self.slots[slot] = entry;
        Some(Inserted {
            slot,
            displaced: previous.key().map(|_| previous),
            evicted_live,
        })
    }

    /// Frees `slot`, returning what it held.
    pub fn remove(&mut self, slot: usize) -> Option<E> {
        let entry = *self.slots.get(slot)?;
        self.slots[slot] = E::default();
        entry.key().map(|_| entry)
    }

    /// Visits up to `budget` slots from the aging cursor, freeing expired entries; calls
    /// `on_expired` with each freed entry.
    pub fn age(
        &mut self,
        now: u32,
        budget: usize,
        timeout: impl Fn(&E) -> u32,
        mut on_expired: impl FnMut(&E),
    ) {
        let capacity = self.capacity();
        if capacity == 0 {
            return;
        }
        for _ in 0..budget.min(capacity) {
            let slot = self.age_cursor;
            self.age_cursor = (self.age_cursor + 1) % capacity;
            let entry = self.slots[slot];
            if entry.key().is_some() && is_expired(now, entry.last_seen(), timeout(&entry)) {
                self.slots[slot] = E::default();
                on_expired(&entry);
            }
        }
    }

    /// Number of entries in use (a scan; for status, not the data path).
    pub fn occupancy(&self) -> usize {
        self.slots.iter().filter(|e| e.key().is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u8, now: u32) -> FlowEntry {
        FlowEntry {
            valid: true,
            key: FlowKey {
                protocol: 6,
                src: [10, 0, 0, n],
                dst: [10, 0, 0, 100],
                src_port: 1000,
                dst_port: 80,
            },
            state: FlowState::Established,
            last_seen: now,
            ..FlowEntry::default()
        }
    }

    #[test]
    fn insert_lookup_evict_oldest() {
        let mut storage = [FlowEntry::default(); 8];
        let mut t = SetAssociative::new(&mut storage, 4);
        assert_eq!(t.sets(), 2);
        let to = |_: &FlowEntry| 1000;
        // Four flows in set 0 at times 10, 5, 7, 9; a fifth evicts the one from time 5.
        for (n, at) in [(1, 10), (2, 5), (3, 7), (4, 9)] {
            let ins = t.insert(flow(n, at), 0, at, to).unwrap();
            assert_eq!(ins.displaced, None);
        }
        let ins = t.insert(flow(5, 11), 0, 11, to).unwrap();
        assert_eq!(ins.slot, 1);
        assert!(ins.evicted_live);
        assert_eq!(ins.displaced.unwrap().key.src[3], 2);
        assert_eq!(t.lookup(flow(5, 0).key, 0, 12, to), Lookup::Hit(1));
        assert_eq!(t.lookup(flow(2, 0).key, 0, 12, to), Lookup::Miss);
        // Same key in the other set is a miss.
        assert_eq!(t.lookup(flow(5, 0).key, 1, 12, to), Lookup::Miss);
    }

    #[test]
    fn expired_entries_are_reclaimed_before_live_ones() {
        let mut storage = [FlowEntry::default(); 4];
        let mut t = SetAssociative::new(&mut storage, 4);
        let to = |e: &FlowEntry| if e.key.src[3] == 3 { 10 } else { 1000 };
        for n in 1..=4 {
            t.insert(flow(n, 100), 7, 100, to).unwrap();
        }
        let ins = t.insert(flow(9, 200), 7, 200, to).unwrap();
        assert_eq!(ins.slot, 2);
        assert!(!ins.evicted_live);
        let hit = t.lookup(flow(1, 0).key, 7, 2000, to);
        assert!(matches!(hit, Lookup::Expired(e) if e.key.src[3] == 1));
        assert_eq!(t.occupancy(), 3);
    }

    #[test]
    fn aging_sweeps_round_robin_and_time_wraps() {
        let mut storage = [FlowEntry::default(); 8];
        let mut t = SetAssociative::new(&mut storage, 2);
        let to = |_: &FlowEntry| 100;
        let start = u32::MAX - 50;
        for n in 0..8u8 {
            t.insert(flow(n, start), u32::from(n) / 2, start, to)
                .unwrap();
        }
        let mut freed = 0;
        // 49 ms later across the wrap: nothing expires.
        t.age(start.wrapping_add(99), 8, to, |_| freed += 1);
        assert_eq!(freed, 0);
        t.age(start.wrapping_add(101), 3, to, |_| freed += 1);
        assert_eq!(freed, 3);
        t.age(start.wrapping_add(101), 8, to, |_| freed += 1);
        assert_eq!(freed, 8);
        assert_eq!(t.occupancy(), 0);
    }

    #[test]
    fn odd_geometry_is_cut_down_not_a_panic() {
        let mut storage = [FlowEntry::default(); 13];
        let t = SetAssociative::new(&mut storage, 4);
        assert_eq!((t.sets(), t.ways()), (2, 4));
        let mut empty: [FlowEntry; 0] = [];
        let mut t = SetAssociative::new(&mut empty, 4);
        assert_eq!(t.capacity(), 0);
        assert!(t.insert(flow(1, 0), 0, 0, |_| 1).is_none());
        assert_eq!(t.lookup(flow(1, 0).key, 0, 0, |_| 1), Lookup::Miss);
    }
}
