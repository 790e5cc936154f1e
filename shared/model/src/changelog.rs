//! The data path's change log (high availability): a FIFO of flow-table and persistence
//! changes the MCU drains through the register map and replicates to the other
//! appliances, and the register window through which a backup writes the replicated
//! entries into its own tables.
//!
//! Why a FIFO and not a scan: the MCU cannot keep a shadow of 64 Ki flows to diff against,
//! and a scan that visits every slot finds a new flow only when it passes by. The data
//! path already knows the exact moment and slot of every material change (a new flow, a
//! TCP state change, a flow moved or expired, a persistence entry made or dropped), so it
//! pushes a record into a block-RAM FIFO at that moment, at line rate (one record per
//! frame at most, written while the frame's rewrite runs). What is *not* logged: the
//! `last_seen` refresh of every frame. Instead, a flow is logged again when its
//! `last_seen` crosses into a new period of a quarter of its idle timeout (one compare of
//! high bits), so a replica never looks more than a quarter of a timeout older than the
//! original, for one record per flow per quarter timeout.
//!
//! The log is off until the MCU enables it (`CHANGE_CTRL.0`): an appliance without HA
//! pays nothing. When the FIFO is full, records are dropped and `CHANGE_STATUS.31` is set:
//! the MCU then replicates a full snapshot (read back with `FLOW_READ`/`STICKY_READ`).
//! Replicated entries written with `INSTALL` are never logged (a backup does not echo).
//!
//! Registers (word addresses, continuing [`crate::regmap`]'s table):
//!
//! | address | name | access | meaning |
//! |---|---|---|---|
//! | 0x060 | `CHANGE_CTRL` | rw | bit 0: log changes; writing bit 1 clears the overflow flag |
//! | 0x061 | `CHANGE_STATUS` | r | bits 15:0 records waiting (saturated), bit 31 records were lost (FIFO full) |
//! | 0x062 | `CHANGE_POP` | w | moves the oldest record into `RECORD` (`RECORD[0]` = 0 when empty) |
//! | 0x063 | `FLOW_READ` | w | copies flow-table slot `value` into `RECORD` (kind 0 when free) |
//! | 0x064 | `STICKY_READ` | w | copies persistence slot `value` into `RECORD` (kind 0 when free) |
//! | 0x065 | `FLOW_SLOTS` | r | flow-table capacity |
//! | 0x066 | `STICKY_SLOTS` | r | persistence-table capacity |
//! | 0x067 | `INSTALL` | w | applies the record in `RECORD` to the tables (a replica); value bit 0 = **keep own**: a flow is not written over a slot that holds another flow, and flow removals are ignored (what a master does with a peer's records: its own flows win) |
//! | 0x068 | `INSTALL_REFUSED` | r | replicas refused so far (wrong set, bad slot, full table) |
//! | 0x069 | `VMAC_FILTER` | rw | the Ethernet MAC filter (before the pipeline): bit 8 accepts frames to the VRRP virtual MAC `00:00:5e:00:01:VRID`, bits 7:0 the VRID; other virtual MACs are always dropped. The MCU sets it while master only |
//! | 0x070–0x077 | `RECORD[0..8]` | rw | one record, encoded by [`encode`] |
//!
//! Record words: w0 = `kind << 28 | slot` (kinds [`kind`]); flow: w1 = source address,
//! w2 = destination address, w3 = `src_port << 16 | dst_port`, w4 = `protocol << 24 |
//! service << 16 | backend`, w5 = `generation << 24 | state << 16 | client_mac[0..2]`,
//! w6 = `client_mac[2..6]`, w7 = `last_seen`; persistence: w1 = client, w4 = `service << 16
//! | backend`, w5 = `generation << 24`, w7 = `last_seen`; removals carry the key words only.

use crate::flow::{FlowEntry, FlowKey, FlowState, StickyEntry};

/// Register addresses of the change log and the replica window.
pub mod addr {
    /// Control: bit 0 enables logging, bit 1 (write) clears the overflow flag.
    pub const CHANGE_CTRL: u16 = 0x060;
    /// Records waiting and the overflow flag.
    pub const CHANGE_STATUS: u16 = 0x061;
    /// Pop the oldest record into `RECORD`.
    pub const CHANGE_POP: u16 = 0x062;
    /// Read a flow-table slot into `RECORD`.
    pub const FLOW_READ: u16 = 0x063;
    /// Read a persistence slot into `RECORD`.
    pub const STICKY_READ: u16 = 0x064;
    /// Flow-table capacity.
    pub const FLOW_SLOTS: u16 = 0x065;
    /// Persistence-table capacity.
    pub const STICKY_SLOTS: u16 = 0x066;
    /// Apply `RECORD` as a replica.
    pub const INSTALL: u16 = 0x067;
    /// Replicas refused.
    pub const INSTALL_REFUSED: u16 = 0x068;
    /// The MAC filter's virtual-MAC entry (decoded by the port, not the pipeline).
    pub const VMAC_FILTER: u16 = 0x069;
    /// First of the eight `RECORD` words.
    pub const RECORD: u16 = 0x070;
    /// Whether `a` is one of these registers.
    pub const fn contains(a: u16) -> bool {
        a >= CHANGE_CTRL && a < RECORD + super::RECORD_WORDS as u16
    }
}

/// Record kinds (bits 31:28 of word 0).
pub mod kind {
    /// No record (an empty FIFO, a free slot).
    pub const NONE: u32 = 0;
    /// A flow was created or changed.
    pub const FLOW: u32 = 1;
    /// A flow was freed.
    pub const FLOW_REMOVED: u32 = 2;
    /// A persistence entry was created or refreshed.
    pub const STICKY: u32 = 3;
    /// A persistence entry was freed.
    pub const STICKY_REMOVED: u32 = 4;
    /// (Install only) free every flow and persistence entry: a snapshot begins.
    pub const CLEAR: u32 = 5;
}

/// Words of one record.
pub const RECORD_WORDS: usize = 8;
/// Records the FIFO holds (block RAM: 512 × 8 words = 16 KiB).
pub const CAPACITY: usize = 512;
/// `slot` of a removal whose slot is not known (an expiry found by a lookup).
pub const NO_SLOT: u32 = 0x0FFF_FFFF;

/// One change of the data path's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TableChange {
    /// A flow was created or changed (state, client MAC, or a periodic refresh).
    Flow {
        /// Flow-table slot (the full-NAT port is derived from it).
        slot: u32,
        /// The entry.
        entry: FlowEntry,
    },
    /// A flow was freed.
    FlowRemoved {
        /// Its slot, or [`NO_SLOT`].
        slot: u32,
        /// Its key.
        key: FlowKey,
    },
    /// A persistence entry was created or refreshed.
    Sticky(StickyEntry),
    /// A persistence entry was freed.
    StickyRemoved {
        /// Service-table index.
        service: u8,
        /// Client address.
        client: [u8; 4],
    },
    /// Free every entry (a replica snapshot begins); only written, never logged.
    Clear,
}

fn key_words(w: &mut [u32; RECORD_WORDS], key: &FlowKey) {
    w[1] = u32::from_be_bytes(key.src);
    w[2] = u32::from_be_bytes(key.dst);
    w[3] = (u32::from(key.src_port) << 16) | u32::from(key.dst_port);
    w[4] = u32::from(key.protocol) << 24;
}

fn key_from(w: &[u32; RECORD_WORDS]) -> FlowKey {
    FlowKey {
        protocol: (w[4] >> 24) as u8,
        src: w[1].to_be_bytes(),
        dst: w[2].to_be_bytes(),
        src_port: (w[3] >> 16) as u16,
        dst_port: w[3] as u16,
    }
}

/// The register words of a change.
pub fn encode(change: &TableChange) -> [u32; RECORD_WORDS] {
    let mut w = [0u32; RECORD_WORDS];
    match change {
        TableChange::Flow { slot, entry } => {
            w[0] = (kind::FLOW << 28) | (slot & NO_SLOT);
            key_words(&mut w, &entry.key);
            w[4] |= (u32::from(entry.service) << 16) | u32::from(entry.backend);
            let m = entry.client_mac;
            w[5] = (u32::from(entry.generation) << 24)
                | (u32::from(entry.state.code()) << 16)
                | (u32::from(m[0]) << 8)
                | u32::from(m[1]);
            w[6] = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
            w[7] = entry.last_seen;
        }
        TableChange::FlowRemoved { slot, key } => {
            w[0] = (kind::FLOW_REMOVED << 28) | (slot & NO_SLOT);
            key_words(&mut w, key);
        }
        TableChange::Sticky(e) => {
            w[0] = kind::STICKY << 28;
            w[1] = u32::from_be_bytes(e.client);
            w[4] = (u32::from(e.service) << 16) | u32::from(e.backend);
            w[5] = u32::from(e.generation) << 24;
            w[7] = e.last_seen;
        }
        TableChange::StickyRemoved { service, client } => {
            w[0] = kind::STICKY_REMOVED << 28;
            w[1] = u32::from_be_bytes(*client);
            w[4] = u32::from(*service) << 16;
        }
        TableChange::Clear => w[0] = kind::CLEAR << 28,
    }
    w
}

/// The change in register words; `None` for kind 0 or an unknown kind.
pub fn decode(w: &[u32; RECORD_WORDS]) -> Option<TableChange> {
    let slot = w[0] & NO_SLOT;
    match w[0] >> 28 {
        kind::FLOW => {
            let m = [
                (w[5] >> 8) as u8,
                w[5] as u8,
                (w[6] >> 24) as u8,
                (w[6] >> 16) as u8,
                (w[6] >> 8) as u8,
                w[6] as u8,
            ];
            Some(TableChange::Flow {
                slot,
                entry: FlowEntry {
                    valid: true,
                    key: key_from(w),
                    service: (w[4] >> 16) as u8,
                    backend: w[4] as u16,
                    generation: (w[5] >> 24) as u8,
                    state: FlowState::from_code((w[5] >> 16) as u8),
                    last_seen: w[7],
                    client_mac: m,
                },
            })
        }
        kind::FLOW_REMOVED => Some(TableChange::FlowRemoved {
            slot,
            key: key_from(w),
        }),
        kind::STICKY => Some(TableChange::Sticky(StickyEntry {
            valid: true,
            service: (w[4] >> 16) as u8,
            client: w[1].to_be_bytes(),
            backend: w[4] as u16,
            generation: (w[5] >> 24) as u8,
            last_seen: w[7],
        })),
        kind::STICKY_REMOVED => Some(TableChange::StickyRemoved {
            service: (w[4] >> 16) as u8,
            client: w[1].to_be_bytes(),
        }),
        kind::CLEAR => Some(TableChange::Clear),
        _ => None,
    }
}

/// Whether a flow last logged with `old` last-seen should be logged again at `now`: the
/// two times fall in different periods of (a power of two near) a quarter of `timeout`.
pub fn refresh_due(old: u32, now: u32, timeout: u32) -> bool {
    let quarter = (timeout / 4).max(1);
    let shift = 31 - quarter.leading_zeros();
    (old >> shift) != (now >> shift)
}

/// The FIFO.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    ring: [TableChange; CAPACITY],
    head: usize,
    len: usize,
    enabled: bool,
    overflowed: bool,
    lost: u64,
}

impl Default for ChangeLog {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeLog {
    /// Empty and off.
    pub const fn new() -> Self {
        ChangeLog {
            ring: [TableChange::Clear; CAPACITY],
            head: 0,
            len: 0,
            enabled: false,
            overflowed: false,
            lost: 0,
        }
    }

    /// Turns logging on or off (off also empties the FIFO).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        if !on {
            self.len = 0;
        }
    }

    /// Whether changes are logged.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Logs a change (when enabled); a full FIFO drops it and sets the overflow flag.
    pub fn push(&mut self, change: TableChange) {
        if !self.enabled {
            return;
        }
        if self.len == CAPACITY {
            self.overflowed = true;
            self.lost = self.lost.wrapping_add(1);
            return;
        }
        self.ring[(self.head + self.len) % CAPACITY] = change;
        self.len += 1;
    }

    /// The oldest record.
    pub fn pop(&mut self) -> Option<TableChange> {
        if self.len == 0 {
            return None;
        }
        let c = self.ring[self.head];
        self.head = (self.head + 1) % CAPACITY;
        self.len -= 1;
        Some(c)
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no record waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether records were dropped since the flag was last cleared.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Clears the overflow flag.
    pub fn clear_overflow(&mut self) {
        self.overflowed = false;
    }

    /// Records dropped in total.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// `CHANGE_STATUS`.
    pub fn status_word(&self) -> u32 {
        (u32::from(self.overflowed) << 31) | self.len.min(0xFFFF) as u32
    }
}

/// The data path's side of the change-log registers, over a pipeline (the model; the
/// hardware register block implements the same decoding).
#[derive(Debug, Clone, Default)]
pub struct ChangeRegisters {
    record: [u32; RECORD_WORDS],
    refused: u32,
}

impl ChangeRegisters {
    /// Fresh latches.
    pub const fn new() -> Self {
        ChangeRegisters {
            record: [0; RECORD_WORDS],
            refused: 0,
        }
    }

    /// A register write at `now_ms`; addresses outside [`addr::contains`] are ignored.
    pub fn write32(
        &mut self,
        pipeline: &mut crate::pipeline::Pipeline<'_>,
        now_ms: u64,
        a: u16,
        v: u32,
    ) {
        match a {
            addr::CHANGE_CTRL => {
                let log = pipeline.change_log_mut();
                log.set_enabled(v & 1 != 0);
                if v & 2 != 0 {
                    log.clear_overflow();
                }
            }
            addr::CHANGE_POP => {
                self.record = pipeline
                    .change_log_mut()
                    .pop()
                    .map_or([0; RECORD_WORDS], |c| encode(&c));
            }
            addr::FLOW_READ => {
                let slot = v as usize;
                self.record = match pipeline.flow_table().get(slot) {
                    Some(e) if e.valid => encode(&TableChange::Flow { slot: v, entry: *e }),
                    _ => [0; RECORD_WORDS],
                };
            }
            addr::STICKY_READ => {
                self.record = match pipeline.sticky_table().get(v as usize) {
                    Some(e) if e.valid => encode(&TableChange::Sticky(*e)),
                    _ => [0; RECORD_WORDS],
                };
            }
            addr::INSTALL if !self.install(pipeline, now_ms, v & 1 != 0) => {
                self.refused = self.refused.wrapping_add(1);
            }
            a if (addr::RECORD..addr::RECORD + RECORD_WORDS as u16).contains(&a) => {
                self.record[usize::from(a - addr::RECORD)] = v;
            }
            _ => {}
        }
    }

    fn install(&mut self, p: &mut crate::pipeline::Pipeline<'_>, now_ms: u64, keep: bool) -> bool {
        match decode(&self.record) {
            Some(TableChange::Flow { slot, entry }) => {
                let other = p
                    .flow_table()
                    .get(slot as usize)
                    .is_some_and(|e| e.valid && e.key != entry.key);
                if keep && other {
                    return false;
                }
                p.install_flow(slot as usize, entry).is_ok()
            }
            Some(TableChange::FlowRemoved { .. }) if keep => true,
            Some(TableChange::FlowRemoved { key, .. }) => {
                p.remove_flow(&key);
                true
            }
            Some(TableChange::Sticky(e)) => p.install_sticky(now_ms, e),
            Some(TableChange::StickyRemoved { service, client }) => {
                p.remove_sticky(service, client);
                true
            }
            Some(TableChange::Clear) => {
                p.clear_flows();
                true
            }
            None => false,
        }
    }

    /// A register read.
    pub fn read32(&self, pipeline: &crate::pipeline::Pipeline<'_>, a: u16) -> u32 {
        match a {
            addr::CHANGE_CTRL => u32::from(pipeline.change_log().enabled()),
            addr::CHANGE_STATUS => pipeline.change_log().status_word(),
            addr::FLOW_SLOTS => pipeline.flow_table().slots().len() as u32,
            addr::STICKY_SLOTS => pipeline.sticky_table().slots().len() as u32,
            addr::INSTALL_REFUSED => self.refused,
            a if (addr::RECORD..addr::RECORD + RECORD_WORDS as u16).contains(&a) => {
                self.record[usize::from(a - addr::RECORD)]
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_register_words() {
        let entry = FlowEntry {
            valid: true,
            key: FlowKey {
                protocol: 6,
                src: [198, 51, 100, 7],
                dst: [10, 0, 0, 100],
                src_port: 40_001,
                dst_port: 80,
            },
            service: 3,
            backend: 1021,
            generation: 200,
            state: FlowState::Closing,
            last_seen: 0xDEAD_BEEF,
            client_mac: [2, 0xc0, 1, 2, 3, 0xfe],
        };
        let sticky = StickyEntry {
            valid: true,
            service: 15,
            client: [203, 0, 113, 9],
            backend: 77,
            generation: 3,
            last_seen: 12345,
        };
        for c in [
            TableChange::Flow {
                slot: 65_535,
                entry,
            },
            TableChange::FlowRemoved {
                slot: NO_SLOT,
                key: entry.key,
            },
            TableChange::Sticky(sticky),
            TableChange::StickyRemoved {
                service: 15,
                client: [203, 0, 113, 9],
            },
            TableChange::Clear,
        ] {
            assert_eq!(decode(&encode(&c)), Some(c));
        }
        assert_eq!(decode(&[0; RECORD_WORDS]), None);
        assert_eq!(decode(&[0xF000_0000, 0, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn fifo_keeps_order_and_logs_only_when_enabled() {
        let mut log = ChangeLog::new();
        log.push(TableChange::Clear);
        assert!(log.is_empty(), "off by default");
        log.set_enabled(true);
        for i in 0..3u8 {
            log.push(TableChange::StickyRemoved {
                service: i,
                client: [i; 4],
            });
        }
        assert_eq!(log.status_word(), 3);
        for i in 0..3u8 {
            assert_eq!(
                log.pop(),
                Some(TableChange::StickyRemoved {
                    service: i,
                    client: [i; 4]
                })
            );
        }
        assert_eq!(log.pop(), None);
    }

    #[test]
    fn overflow_sets_the_status_bit() {
        let mut log = ChangeLog::new();
        log.set_enabled(true);
        for _ in 0..CAPACITY + 5 {
            log.push(TableChange::Clear);
        }
        assert_eq!(log.len(), CAPACITY);
        assert_eq!(log.lost(), 5);
        assert_eq!(log.status_word(), 0x8000_0000 | CAPACITY as u32);
    }

    #[test]
    fn refresh_is_due_once_per_quarter_timeout() {
        // 300 s established timeout: a quarter is 75 s, the period 2^16 ms (65.5 s).
        let t = 300_000;
        assert!(!refresh_due(0, 65_535, t));
        assert!(refresh_due(65_535, 65_536, t));
        let mut logged = 0;
        let mut last = 0u32;
        for now in (0..600_000u32).step_by(10) {
            if refresh_due(last, now, t) {
                logged += 1;
            }
            last = now;
        }
        assert_eq!(logged, 600_000 / 65_536);
    }
}
