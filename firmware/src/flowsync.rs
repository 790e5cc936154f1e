//! Flow-state sync between appliances: a reliable, sequenced, authenticated stream of
//! flow-table and persistence-table changes from each appliance to each peer, so that a
//! backup's data path already holds the master's flows when it takes over. Sans-IO: the
//! runner carries [`Link`] messages over UDP (one `Link` per peer) and supplies `now`.
//!
//! ## Message ([`Message`], zero-copy view)
//! ```text
//! 0     1       2     3       4            12           20        28       30    31     32
//! +-----+-------+-----+-------+------------+------------+---------+--------+-----+------+----------+-----+
//! | F5  | ver 1 | kind| rsvd 0| epoch u64  | session u64| seq u64 | len u16| node| count| records  | tag |
//! +-----+-------+-----+-------+------------+------------+---------+--------+-----+------+----------+-----+
//! ```
//! Big-endian. `kind` 1 = data, 2 = ack, 3 = hello. The 32-byte tag is HMAC-SHA256 under
//! the management key (`fulcrum_mgmt::envelope::Key::tag`) over everything before it; the
//! magic differs from the management envelope's, so a tag never verifies across the two.
//!
//! ## Reliability: go-back-N
//! - The sender numbers data messages 1, 2, 3, ... and keeps up to [`WINDOW`] unacked
//!   ones; the receiver applies them strictly in order and answers every data message
//!   with a cumulative ack (next expected sequence). A duplicate is acked and not applied;
//!   a message ahead of a gap (reordered) is kept, up to [`WINDOW`] ahead, and applied
//!   when the gap fills.
//! - An idle sender sends an empty data message every `keepalive_ms`, so it notices a
//!   peer that restarted (and resyncs it) even when nothing changes.
//! - When the oldest unacked message is older than the retransmission timeout, the sender
//!   resends the whole window from it. After [`MAX_RETRIES`] timeouts in a row without
//!   progress it falls back to hello (the peer is gone or has restarted).
//!
//! ## Sessions and replay refusal
//! - Each sender has an **epoch** (a random number per boot, from the runner); each
//!   receiver has a **session** that changes every time it sees a new sender epoch
//!   (a random base per boot, then +1: never reused within a boot).
//! - A sender without a session sends **hello** (its epoch and a hello counter that grows
//!   each time the sender starts over); the receiver answers with an ack carrying its
//!   session and echoing the epoch. A new epoch or a higher counter gets a new session
//!   (and sequence 1); the same counter (a repeated hello) the same session; a lower one
//!   is refused. Data carries (epoch, session, seq);
//!   the receiver takes only its current session and the current epoch, and only the next
//!   sequence number. So a message recorded earlier is refused after either side restarts
//!   (another session or epoch), and within a session a replay is only a duplicate.
//!   An ack is taken only if it echoes the sender's epoch.
//! - Known limit: an on-path attacker who replays an old ack of the same sender epoch
//!   carrying an older session can make the sender start a needless resync (liveness,
//!   not correctness: the receiver refuses data of the stale session).
//!
//! ## Full resync
//! When a sender learns a new session (the peer joined or restarted) or its change queue
//! overflows (the peer fell [`QUEUE`] changes behind), it drops its queue and sends a
//! **snapshot**: `SnapshotBegin`, every flow and persistence entry it owns in chunks (table
//! order, a message at a time, interleaved with live changes, which keep their order),
//! then `SnapshotEnd`. The receiver clears what it held from that sender at
//! `SnapshotBegin` and counts as **synchronised** from `SnapshotEnd` on ([`Link::synced`],
//! which gates VRRP preemption). Because every change after the snapshot began is also in
//! the stream, in order, the receiver ends with the sender's table.
//!
//! ## Time
//! Records carry idle times, not timestamps: the receiver sets `last_seen = now − idle`
//! in its own clock. The idle time is measured when a message is first packed, so a
//! replica looks younger than the original by the transit delay plus any retransmission
//! wait (it expires a little later, never earlier).
//!
//! ## Replication modes and memory per flow
//! - **All-to-all** (up to 4 nodes): every flow goes, as a full entry, to every peer.
//! - **Owner + backup**: a flow's full entry goes to one backup, chosen among the owner's
//!   peers by rendezvous hashing of the flow key (every node computes the same choice);
//!   the others get a [`Record::FlowOwner`] (key and owner node) only.
//!
//! A flow-table entry as the FPGA stores it is [`FLOW_ENTRY_BYTES`] (28) bytes (key 13,
//! service 1, backend 2, generation 1, state 1, last seen 4, client MAC 6); an owner
//! record held by a non-backup is [`OWNER_ENTRY_BYTES`] (14: key and owner). Across a group
//! of `n` nodes ([`group_bytes_per_flow`]):
//!
//! | nodes | all-to-all | owner + backup |
//! |---|---|---|
//! | 2 | 56 B | 56 B |
//! | 3 | 84 B | 70 B |
//! | 4 | 112 B | 84 B |
//! | 8 | — | 140 B |
//!
//! and on the wire a flow costs a [`Record::FlowUpsert`] of 34 bytes per full copy and a
//! [`Record::FlowOwner`] of 15 bytes per owner record, in messages of at most
//! [`MAX_MESSAGE`] bytes (64 bytes of header and tag: 33 upserts a message).

use core::net::Ipv4Addr;

use fulcrum_mgmt::envelope::{Key, TAG_LEN};
use fulcrum_model::flow::{FlowEntry, FlowKey, FlowState, StickyEntry};
use fulcrum_model::ha::SyncMode;
use heapless::{Deque, Vec};

/// First byte of every sync message.
pub const MAGIC: u8 = 0xF5;
/// Protocol version.
pub const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 32;
/// Largest message (fits a 1500-byte MTU in UDP with room to spare).
pub const MAX_MESSAGE: usize = 1200;
/// Unacked data messages a sender keeps per peer.
pub const WINDOW: usize = 8;
/// Changes a sender queues per peer before it gives up and resyncs.
pub const QUEUE: usize = 512;
/// Table slots a snapshot reads per message at most (each empty slot costs register
/// accesses on the board: a mostly empty table is read over many messages, not in one
/// call).
pub const SNAPSHOT_VISITS: usize = 256;
/// Retransmission timeouts in a row before the sender falls back to hello.
pub const MAX_RETRIES: u32 = 8;
/// Bytes of one flow entry as the FPGA table stores it (see the module docs).
pub const FLOW_ENTRY_BYTES: usize = 28;
/// Bytes of one owner record (key and owner node).
pub const OWNER_ENTRY_BYTES: usize = 14;

/// Bytes a flow costs across a group of `nodes` appliances in `mode` (the table in the
/// module docs).
pub const fn group_bytes_per_flow(mode: SyncMode, nodes: usize) -> usize {
    match mode {
        SyncMode::AllToAll => nodes * FLOW_ENTRY_BYTES,
        SyncMode::OwnerBackup => {
            let full = if nodes >= 2 { 2 } else { nodes };
            full * FLOW_ENTRY_BYTES + (nodes - full) * OWNER_ENTRY_BYTES
        }
    }
}

mod field {
    use core::ops::Range;
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const KIND: usize = 2;
    pub const RESERVED: usize = 3;
    pub const EPOCH: Range<usize> = 4..12;
    pub const SESSION: Range<usize> = 12..20;
    pub const SEQ: Range<usize> = 20..28;
    pub const LEN: Range<usize> = 28..30;
    pub const NODE: usize = 30;
    pub const COUNT: usize = 31;
}

/// Kind of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// Records, sequenced.
    Data,
    /// Cumulative ack (and the receiver's session).
    Ack,
    /// A sender asking for a session.
    Hello,
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SyncError {
    /// Shorter than its header, length field and tag, or longer than [`MAX_MESSAGE`].
    Truncated,
    /// Not a sync message of this version, or reserved bits set.
    BadHeader,
    /// The tag does not verify under the management key.
    BadTag,
    /// A record is malformed (unknown type, cut short, count mismatch).
    BadRecord,
    /// From another node than this link's peer.
    WrongPeer,
    /// A stale session or epoch: a replay, or a message from before a restart.
    Stale,
}

/// A read view of a sync message.
#[derive(Debug, Clone, Copy)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps `buffer` after checking the header and lengths (not the tag). After this, no
    /// accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self, SyncError> {
        let m = Message { buffer };
        m.check_len()?;
        Ok(m)
    }

    /// Checks magic, version, kind, reserved byte and that the length field, the records
    /// and the tag fit the buffer exactly.
    pub fn check_len(&self) -> Result<(), SyncError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN + TAG_LEN || b.len() > MAX_MESSAGE {
            return Err(SyncError::Truncated);
        }
        if b[field::MAGIC] != MAGIC
            || b[field::VERSION] != VERSION
            || !(1..=3).contains(&b[field::KIND])
            || b[field::RESERVED] != 0
        {
            return Err(SyncError::BadHeader);
        }
        let len = usize::from(u16::from_be_bytes([
            b[field::LEN.start],
            b[field::LEN.start + 1],
        ]));
        if HEADER_LEN + len + TAG_LEN != b.len() {
            return Err(SyncError::Truncated);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        match self.b()[field::KIND] {
            1 => Kind::Data,
            2 => Kind::Ack,
            _ => Kind::Hello,
        }
    }

    /// Sender epoch (data, hello) or the echoed epoch (ack).
    pub fn epoch(&self) -> u64 {
        be64(&self.b()[field::EPOCH])
    }

    /// Receiver session (data: the one the sender uses; ack: the acker's).
    pub fn session(&self) -> u64 {
        be64(&self.b()[field::SESSION])
    }

    /// Sequence number (data) or next expected sequence (ack).
    pub fn seq(&self) -> u64 {
        be64(&self.b()[field::SEQ])
    }

    /// The sending node's id.
    pub fn node(&self) -> u8 {
        self.b()[field::NODE]
    }

    /// Number of records.
    pub fn count(&self) -> u8 {
        self.b()[field::COUNT]
    }

    /// The record bytes.
    pub fn records(&self) -> &[u8] {
        let b = self.b();
        &b[HEADER_LEN..b.len() - TAG_LEN]
    }

    /// Whether the tag verifies under `key`.
    pub fn verify(&self, key: &Key) -> bool {
        let b = self.b();
        let split = b.len() - TAG_LEN;
        key.verify_tag(&b[..split], &b[split..])
    }

    /// The records, parsed one at a time.
    pub fn iter(&self) -> Records<'_> {
        Records {
            bytes: self.records(),
        }
    }

    /// Checks that every record parses and that there are [`Message::count`] of them.
    pub fn check_records(&self) -> Result<(), SyncError> {
        let mut n = 0usize;
        for r in self.iter() {
            r?;
            n += 1;
        }
        if n != usize::from(self.count()) {
            return Err(SyncError::BadRecord);
        }
        Ok(())
    }
}

/// Iterator over the records of a message.
pub struct Records<'a> {
    bytes: &'a [u8],
}

impl Iterator for Records<'_> {
    type Item = Result<Record, SyncError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.is_empty() {
            return None;
        }
        match Record::parse(self.bytes) {
            Ok((r, used)) => {
                self.bytes = &self.bytes[used..];
                Some(Ok(r))
            }
            Err(e) => {
                self.bytes = &[];
                Some(Err(e))
            }
        }
    }
}

/// One replicated change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Record {
    /// A flow in `slot`, idle for `idle_ms`, owned by node `owner`.
    FlowUpsert {
        /// Flow-table slot (the full-NAT source port depends on it).
        slot: u32,
        /// The entry (`valid` set, `last_seen` unused on the wire).
        entry: FlowEntry,
        /// Milliseconds since the flow's last frame, at the sender.
        idle_ms: u32,
        /// The owning node.
        owner: u8,
    },
    /// The flow in `slot` with `key` is gone.
    FlowRemove {
        /// Flow-table slot.
        slot: u32,
        /// The flow's key.
        key: FlowKey,
    },
    /// A persistence entry.
    StickyUpsert {
        /// The entry (`valid` set, `last_seen` unused on the wire).
        entry: StickyEntry,
        /// Milliseconds since it was last used, at the sender.
        idle_ms: u32,
    },
    /// A persistence entry is gone.
    StickyRemove {
        /// Service-table index.
        service: u8,
        /// Client address.
        client: [u8; 4],
    },
    /// Owner + backup mode: which node owns a flow this node does not hold.
    FlowOwner {
        /// The flow's key.
        key: FlowKey,
        /// The owning node.
        owner: u8,
    },
    /// A snapshot starts: forget what this sender replicated before.
    SnapshotBegin,
    /// A snapshot ends; `flows` full entries were in it.
    SnapshotEnd {
        /// Flow entries sent in the snapshot.
        flows: u32,
    },
}

const KEY_LEN: usize = 13;

fn put_key(out: &mut [u8], k: &FlowKey) {
    out[0] = k.protocol;
    out[1..5].copy_from_slice(&k.src);
    out[5..9].copy_from_slice(&k.dst);
    out[9..11].copy_from_slice(&k.src_port.to_be_bytes());
    out[11..13].copy_from_slice(&k.dst_port.to_be_bytes());
}

fn get_key(b: &[u8]) -> FlowKey {
    FlowKey {
        protocol: b[0],
        src: [b[1], b[2], b[3], b[4]],
        dst: [b[5], b[6], b[7], b[8]],
        src_port: u16::from_be_bytes([b[9], b[10]]),
        dst_port: u16::from_be_bytes([b[11], b[12]]),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Record {
    const FLOW_UPSERT: u8 = 1;
    const FLOW_REMOVE: u8 = 2;
    const STICKY_UPSERT: u8 = 3;
    const STICKY_REMOVE: u8 = 4;
    const FLOW_OWNER: u8 = 5;
    const SNAPSHOT_BEGIN: u8 = 6;
    const SNAPSHOT_END: u8 = 7;

    /// Bytes of a record of type `t` after its type byte.
    const fn body_len(t: u8) -> Option<usize> {
        match t {
            Self::FLOW_UPSERT => Some(4 + KEY_LEN + 1 + 2 + 1 + 1 + 4 + 6 + 1),
            Self::FLOW_REMOVE => Some(4 + KEY_LEN),
            Self::STICKY_UPSERT => Some(1 + 4 + 2 + 1 + 4),
            Self::STICKY_REMOVE => Some(1 + 4),
            Self::FLOW_OWNER => Some(KEY_LEN + 1),
            Self::SNAPSHOT_BEGIN => Some(0),
            Self::SNAPSHOT_END => Some(4),
            _ => None,
        }
    }

    fn type_byte(&self) -> u8 {
        match self {
            Record::FlowUpsert { .. } => Self::FLOW_UPSERT,
            Record::FlowRemove { .. } => Self::FLOW_REMOVE,
            Record::StickyUpsert { .. } => Self::STICKY_UPSERT,
            Record::StickyRemove { .. } => Self::STICKY_REMOVE,
            Record::FlowOwner { .. } => Self::FLOW_OWNER,
            Record::SnapshotBegin => Self::SNAPSHOT_BEGIN,
            Record::SnapshotEnd { .. } => Self::SNAPSHOT_END,
        }
    }

    /// Bytes [`Record::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        1 + Self::body_len(self.type_byte()).unwrap_or(0)
    }

    /// Parses one record from the front of `b`; returns it and the bytes it used.
    pub fn parse(b: &[u8]) -> Result<(Record, usize), SyncError> {
        let t = *b.first().ok_or(SyncError::BadRecord)?;
        let len = Self::body_len(t).ok_or(SyncError::BadRecord)?;
        let body = b.get(1..1 + len).ok_or(SyncError::BadRecord)?;
        let record = match t {
            Self::FLOW_UPSERT => {
                let k = &body[4..4 + KEY_LEN];
                let r = &body[4 + KEY_LEN..];
                if r[4] > 3 {
                    return Err(SyncError::BadRecord);
                }
                Record::FlowUpsert {
                    slot: be32(body),
                    entry: FlowEntry {
                        valid: true,
                        key: get_key(k),
                        service: r[0],
                        backend: u16::from_be_bytes([r[1], r[2]]),
                        generation: r[3],
                        state: FlowState::from_code(r[4]),
                        last_seen: 0,
                        client_mac: [r[9], r[10], r[11], r[12], r[13], r[14]],
                    },
                    idle_ms: be32(&r[5..9]),
                    owner: r[15],
                }
            }
            Self::FLOW_REMOVE => Record::FlowRemove {
                slot: be32(body),
                key: get_key(&body[4..]),
            },
            Self::STICKY_UPSERT => Record::StickyUpsert {
                entry: StickyEntry {
                    valid: true,
                    service: body[0],
                    client: [body[1], body[2], body[3], body[4]],
                    backend: u16::from_be_bytes([body[5], body[6]]),
                    generation: body[7],
                    last_seen: 0,
                },
                idle_ms: be32(&body[8..12]),
            },
            Self::STICKY_REMOVE => Record::StickyRemove {
                service: body[0],
                client: [body[1], body[2], body[3], body[4]],
            },
            Self::FLOW_OWNER => Record::FlowOwner {
                key: get_key(body),
                owner: body[KEY_LEN],
            },
            Self::SNAPSHOT_BEGIN => Record::SnapshotBegin,
            _ => Record::SnapshotEnd { flows: be32(body) },
        };
        Ok((record, 1 + len))
    }

    /// Writes the record at the front of `out`; returns its length, or `None` if `out` is
    /// too short.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let out = out.get_mut(..len)?;
        out[0] = self.type_byte();
        let body = &mut out[1..];
        match *self {
            Record::FlowUpsert {
                slot,
                entry,
                idle_ms,
                owner,
            } => {
                body[..4].copy_from_slice(&slot.to_be_bytes());
                put_key(&mut body[4..], &entry.key);
                let r = &mut body[4 + KEY_LEN..];
                r[0] = entry.service;
                r[1..3].copy_from_slice(&entry.backend.to_be_bytes());
                r[3] = entry.generation;
                r[4] = entry.state.code();
                r[5..9].copy_from_slice(&idle_ms.to_be_bytes());
                r[9..15].copy_from_slice(&entry.client_mac);
                r[15] = owner;
            }
            Record::FlowRemove { slot, key } => {
                body[..4].copy_from_slice(&slot.to_be_bytes());
                put_key(&mut body[4..], &key);
            }
            Record::StickyUpsert { entry, idle_ms } => {
                body[0] = entry.service;
                body[1..5].copy_from_slice(&entry.client);
                body[5..7].copy_from_slice(&entry.backend.to_be_bytes());
                body[7] = entry.generation;
                body[8..12].copy_from_slice(&idle_ms.to_be_bytes());
            }
            Record::StickyRemove { service, client } => {
                body[0] = service;
                body[1..5].copy_from_slice(&client);
            }
            Record::FlowOwner { key, owner } => {
                put_key(body, &key);
                body[KEY_LEN] = owner;
            }
            Record::SnapshotBegin => {}
            Record::SnapshotEnd { flows } => body[..4].copy_from_slice(&flows.to_be_bytes()),
        }
        Some(len)
    }
}

/// Writes a message header, records and tag into `out`; returns its length.
#[allow(clippy::too_many_arguments)]
fn emit_message(
    out: &mut [u8],
    key: &Key,
    kind: Kind,
    epoch: u64,
    session: u64,
    seq: u64,
    node: u8,
    count: u8,
    records: &[u8],
) -> Option<usize> {
    let len = HEADER_LEN + records.len() + TAG_LEN;
    if len > MAX_MESSAGE {
        return None;
    }
    let out = out.get_mut(..len)?;
    out[field::MAGIC] = MAGIC;
    out[field::VERSION] = VERSION;
    out[field::KIND] = match kind {
        Kind::Data => 1,
        Kind::Ack => 2,
        Kind::Hello => 3,
    };
    out[field::RESERVED] = 0;
    out[field::EPOCH].copy_from_slice(&epoch.to_be_bytes());
    out[field::SESSION].copy_from_slice(&session.to_be_bytes());
    out[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    out[field::LEN].copy_from_slice(&(records.len() as u16).to_be_bytes());
    out[field::NODE] = node;
    out[field::COUNT] = count;
    out[HEADER_LEN..HEADER_LEN + records.len()].copy_from_slice(records);
    let split = HEADER_LEN + records.len();
    let tag = key.tag(&out[..split]);
    out[split..].copy_from_slice(&tag);
    Some(len)
}

// ---------------------------------------------------------------------------------------
// What the link reads from and writes to
// ---------------------------------------------------------------------------------------

/// The local tables, read for snapshots.
pub trait ReplicaSource {
    /// Flow-table slots.
    fn flow_slots(&self) -> usize;
    /// The flow in `slot` and its owner node, if valid.
    fn flow(&self, slot: usize) -> Option<(FlowEntry, u8)>;
    /// Persistence-table slots.
    fn sticky_slots(&self) -> usize;
    /// The persistence entry in `slot`, if valid.
    fn sticky(&self, slot: usize) -> Option<StickyEntry>;
}

/// Where received changes go (the data path of the backup). `now` is the receiver's
/// clock, for turning idle times into `last_seen`.
pub trait ReplicaSink {
    /// A flow from node `owner` in `slot`, with `last_seen` already in this clock.
    fn upsert_flow(&mut self, now: u64, slot: usize, entry: FlowEntry, owner: u8);
    /// A flow is gone.
    fn remove_flow(&mut self, now: u64, slot: usize, key: &FlowKey);
    /// A persistence entry, with `last_seen` already in this clock.
    fn upsert_sticky(&mut self, now: u64, entry: StickyEntry);
    /// A persistence entry is gone.
    fn remove_sticky(&mut self, now: u64, service: u8, client: [u8; 4]);
    /// Owner + backup: node `owner` holds a flow this node does not.
    fn flow_owner(&mut self, now: u64, key: &FlowKey, owner: u8);
    /// A snapshot from node `from` begins: forget what was replicated from it.
    fn begin_snapshot(&mut self, now: u64, from: u8);
}

/// A local change to replicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Change {
    /// A flow was created or changed (state, backend, client MAC); `entry.last_seen` is
    /// this node's clock.
    Flow {
        /// Flow-table slot.
        slot: u32,
        /// The entry.
        entry: FlowEntry,
    },
    /// A flow was freed.
    FlowRemoved {
        /// Flow-table slot.
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
}

/// Which copy of a flow a peer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copy {
    Full,
    OwnerOnly,
}

/// FNV-1a over the key and a node id, then a finalizer: the rendezvous weight.
fn weight(key: &FlowKey, node: u8) -> u32 {
    let mut b = [0u8; KEY_LEN + 1];
    put_key(&mut b, key);
    b[KEY_LEN] = node;
    let mut h: u32 = 0x811c_9dc5;
    for x in b {
        h = (h ^ u32::from(x)).wrapping_mul(0x0100_0193);
    }
    // FNV alone mixes the last byte (the node) poorly: finish with MurmurHash3's fmix32.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Owner + backup: the backup of a flow among `peers` (the owner's peers), by rendezvous
/// hashing (highest weight, lowest id on a tie). Every node computes the same choice.
pub fn backup_of(key: &FlowKey, peers: &[u8]) -> Option<u8> {
    peers
        .iter()
        .copied()
        .max_by_key(|&p| (weight(key, p), core::cmp::Reverse(p)))
}

// ---------------------------------------------------------------------------------------
// The link
// ---------------------------------------------------------------------------------------

/// Node ids of an HA group: every member's own address, sorted, numbered from 0, so
/// every member derives the same ids from its own config (its address and its peers').
/// Returns this node's id and (id, address) of each peer; `None` with more than 8 members
/// or a duplicate address.
pub fn node_ids(own: Ipv4Addr, peers: &[Ipv4Addr]) -> Option<(u8, Vec<(u8, Ipv4Addr), 8>)> {
    let mut all: Vec<Ipv4Addr, 8> = Vec::new();
    all.push(own).ok()?;
    for p in peers {
        if all.contains(p) {
            return None;
        }
        all.push(*p).ok()?;
    }
    all.sort_unstable();
    let id = |a: &Ipv4Addr| all.iter().position(|x| x == a).map(|i| i as u8);
    let mut out = Vec::new();
    for p in peers {
        out.push((id(p)?, *p)).ok()?;
    }
    Some((id(&own)?, out))
}

/// Settings of one link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// This node's id (its index in the group).
    pub node: u8,
    /// The peer's id.
    pub peer: u8,
    /// Every peer id of this node (for owner + backup choices), the link's peer included.
    pub peers: Vec<u8, 8>,
    /// Replication mode.
    pub mode: SyncMode,
    /// Retransmission timeout, ms.
    pub rto_ms: u64,
    /// How often hello is repeated while no session is known, ms.
    pub hello_ms: u64,
    /// How often an idle sender sends an empty data message, ms.
    pub keepalive_ms: u64,
}

/// Counters and lag for status (`fulcrum ha status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LinkStats {
    /// Data messages sent (retransmissions included).
    pub data_sent: u32,
    /// Of which retransmissions.
    pub retransmitted: u32,
    /// Records applied from the peer.
    pub records_applied: u32,
    /// Data messages received and applied.
    pub data_applied: u32,
    /// Duplicates (acked, not applied).
    pub duplicates: u32,
    /// Messages ahead of a gap (kept until the gap fills, or dropped beyond the window).
    pub out_of_order: u32,
    /// Messages refused: bad tag.
    pub bad_tag: u32,
    /// Messages refused: stale session or epoch (replays).
    pub stale: u32,
    /// Messages refused: malformed.
    pub malformed: u32,
    /// Full resyncs started towards the peer.
    pub resyncs: u32,
    /// Snapshots completed from the peer.
    pub snapshots_received: u32,
}

impl LinkStats {
    /// All zero (the default, usable in a `const`).
    pub const ZERO: LinkStats = LinkStats {
        data_sent: 0,
        retransmitted: 0,
        records_applied: 0,
        data_applied: 0,
        duplicates: 0,
        out_of_order: 0,
        bad_tag: 0,
        stale: 0,
        malformed: 0,
        resyncs: 0,
        snapshots_received: 0,
    };
}

struct Unacked {
    seq: u64,
    sent_at: u64,
    len: usize,
    bytes: [u8; MAX_MESSAGE],
}

/// Bytes of records a data message carries at most.
const RECORDS_MAX: usize = MAX_MESSAGE - HEADER_LEN - TAG_LEN;

struct Snapshot {
    begun: bool,
    flow_cursor: usize,
    sticky_cursor: usize,
    flows: u32,
    /// Records read in earlier calls that did not fill a message (a call reads at most
    /// [`SNAPSHOT_VISITS`] slots): they go out with the next ones, so a sparse table does
    /// not cost a message per call.
    partial: Vec<u8, RECORDS_MAX>,
    partial_count: u8,
}

/// One direction pair with one peer: sends our changes, applies theirs.
pub struct Link {
    config: LinkConfig,
    key: Key,
    // Sending.
    epoch: u64,
    peer_session: Option<u64>,
    next_seq: u64,
    unacked: Deque<Unacked, WINDOW>,
    resend_from: Option<u64>,
    retries: u32,
    hello_at: u64,
    hello_counter: u64,
    queue: Deque<Change, QUEUE>,
    snapshot: Option<Snapshot>,
    last_sent_at: u64,
    /// The sequence number of the message that carried our last `SnapshotEnd`.
    snapshot_end_seq: Option<u64>,
    /// The peer acknowledged our complete table (in the current session).
    peer_synced: bool,
    /// The peer's sessions this link has sent in (the latest few): never taken again.
    used_sessions: Deque<u64, 4>,
    // Receiving.
    reorder: Vec<Unacked, WINDOW>,
    session: u64,
    peer_epoch: Option<u64>,
    peer_hello: u64,
    expected: u64,
    ack_due: bool,
    /// Data came with an epoch or session we do not know: answer "say hello" (ack 0).
    hello_please: Option<u64>,
    sending: bool,
    /// Sending was turned off: what is queued or unacked still goes out, nothing new.
    draining: bool,
    /// Hellos sent while draining without a session.
    drain_hellos: u32,
    synced: bool,
    last_applied_at: Option<u64>,
    stats: LinkStats,
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("node", &self.config.node)
            .field("peer", &self.config.peer)
            .field("next_seq", &self.next_seq)
            .field("unacked", &self.unacked.len())
            .field("queued", &self.queue.len())
            .field("expected", &self.expected)
            .field("synced", &self.synced)
            .finish()
    }
}

impl Link {
    /// A link that is not set up yet (peer 0, no key): a placeholder built at compile
    /// time, so that a board can keep its links in a static and set them up in place
    /// with [`Link::reset`] (a link is tens of KiB: it never goes through the MCU's stack).
    pub const IDLE: Link = Link {
        config: LinkConfig {
            node: 0,
            peer: 0,
            peers: Vec::new(),
            mode: SyncMode::AllToAll,
            rto_ms: 0,
            hello_ms: 0,
            keepalive_ms: 0,
        },
        key: Key::PLACEHOLDER,
        epoch: 0,
        peer_session: None,
        next_seq: 1,
        unacked: Deque::new(),
        resend_from: None,
        retries: 0,
        hello_at: 0,
        hello_counter: 1,
        queue: Deque::new(),
        snapshot: None,
        last_sent_at: 0,
        snapshot_end_seq: None,
        peer_synced: false,
        used_sessions: Deque::new(),
        reorder: Vec::new(),
        session: 1,
        peer_epoch: None,
        peer_hello: 0,
        expected: 1,
        ack_due: false,
        hello_please: None,
        sending: true,
        draining: false,
        drain_hellos: 0,
        synced: false,
        last_applied_at: None,
        stats: LinkStats::ZERO,
    };

    /// Makes this link what [`Link::new`] with these arguments returns, in place.
    pub fn reset(&mut self, config: LinkConfig, key: &Key, epoch: u64, session_base: u64) {
        // Every field, by name: a field added to `Link` must be reset here too.
        let Link {
            config: c,
            key: k,
            epoch: e,
            peer_session,
            next_seq,
            unacked,
            resend_from,
            retries,
            hello_at,
            hello_counter,
            queue,
            snapshot,
            last_sent_at,
            snapshot_end_seq,
            peer_synced,
            used_sessions,
            reorder,
            session,
            peer_epoch,
            peer_hello,
            expected,
            ack_due,
            hello_please,
            sending,
            draining,
            drain_hellos,
            synced,
            last_applied_at,
            stats,
        } = self;
        *c = config;
        k.clone_from(key);
        *e = epoch;
        *peer_session = None;
        *next_seq = 1;
        unacked.clear();
        *resend_from = None;
        *retries = 0;
        *hello_at = 0;
        *hello_counter = 1;
        queue.clear();
        *snapshot = None;
        *last_sent_at = 0;
        *snapshot_end_seq = None;
        *peer_synced = false;
        used_sessions.clear();
        reorder.clear();
        // Zero means "no session" on the wire.
        *session = session_base.max(1);
        *peer_epoch = None;
        *peer_hello = 0;
        *expected = 1;
        *ack_due = false;
        *hello_please = None;
        *sending = true;
        *draining = false;
        *drain_hellos = 0;
        *synced = false;
        *last_applied_at = None;
        *stats = LinkStats::ZERO;
    }

    /// A link. `epoch` and `session_base` must be random per boot (the runner's RNG):
    /// they are what makes recorded messages useless after a restart.
    pub fn new(config: LinkConfig, key: Key, epoch: u64, session_base: u64) -> Self {
        Link {
            config,
            key,
            epoch,
            peer_session: None,
            next_seq: 1,
            unacked: Deque::new(),
            resend_from: None,
            retries: 0,
            hello_at: 0,
            hello_counter: 1,
            queue: Deque::new(),
            snapshot: None,
            last_sent_at: 0,
            snapshot_end_seq: None,
            peer_synced: false,
            used_sessions: Deque::new(),
            reorder: Vec::new(),
            // Zero means "no session" on the wire.
            session: session_base.max(1),
            peer_epoch: None,
            peer_hello: 0,
            expected: 1,
            ack_due: false,
            hello_please: None,
            sending: true,
            draining: false,
            drain_hellos: 0,
            synced: false,
            last_applied_at: None,
            stats: LinkStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Whether we hold the peer's complete table (a snapshot finished in the current
    /// session).
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Our changes not yet acked by the peer: queued changes plus unacked messages.
    pub fn lag(&self) -> (usize, usize) {
        (self.queue.len(), self.unacked.len())
    }

    /// How long the oldest unacked message has waited at `now`, ms (sync lag in time).
    pub fn lag_ms(&self, now: u64) -> u64 {
        self.unacked
            .front()
            .map_or(0, |u| now.saturating_sub(u.sent_at))
    }

    /// Whether the peer acknowledged our complete table: a snapshot of ours ended in the
    /// current session and the peer acked it. Cleared when we start over or resync.
    pub fn peer_synced(&self) -> bool {
        self.peer_synced
    }

    /// Whether the peer has given us a session (hello answered).
    pub fn connected(&self) -> bool {
        self.peer_session.is_some()
    }

    /// Whether a snapshot towards the peer is in progress.
    pub fn resyncing(&self) -> bool {
        self.snapshot.is_some()
    }

    /// When the peer last delivered data, ms.
    pub fn last_applied_at(&self) -> Option<u64> {
        self.last_applied_at
    }

    /// Whether this side sends its table (on by default). With one active master, only
    /// the VRRP master sends: a backup's table holds the master's flows, and sending them
    /// back would make the master clear its own. Turning sending on starts over with a
    /// hello and a full snapshot (keeping what an unfinished drain still had to deliver).
    /// Turning it off *drains*: what was queued or unacked still goes out (the changes of
    /// a master's last round trip) and, if the peer never acknowledged our complete
    /// table (a brief master), the whole table, after a hello if needed; then the link
    /// stops. While it drains, [`Link::draining`] is true: the runner must not let a
    /// snapshot from the peer clear the table it reads.
    pub fn set_sending(&mut self, now: u64, sending: bool) {
        if sending == self.sending {
            return;
        }
        self.sending = sending;
        if sending {
            // Still delivering what an earlier brief mastership made (a spurious
            // takeover, a split brain): it exists only here, so it is not dropped. In a
            // session, what is unacked or queued goes on, and so does a snapshot in
            // progress (one starts if the peer does not hold our table yet); without
            // one, the queue is kept for the snapshot that follows the hello's answer.
            let undelivered = self.draining;
            self.draining = false;
            if undelivered && self.peer_session.is_some() {
                if !self.peer_synced && self.snapshot.is_none() && self.snapshot_end_seq.is_none() {
                    self.start_resync();
                }
            } else if undelivered {
                // The queue stays (in place: it is the link's largest part).
                self.start_over_keeping_queue(now);
            } else {
                self.start_over(now);
            }
            return;
        }
        // What this node made as master must reach the peer before the link stops. If
        // the peer acknowledged our complete table, what is queued or unacked is the
        // rest. If not (a spurious takeover or a split brain: the peer never became our
        // backup), the peer gets our whole table, which it merges with its own (a master
        // keeps its own flows): in the session if there is one, else after a hello
        // (at most `MAX_RETRIES` more). Without a session and with nothing queued we
        // made nothing since we became master: nothing to deliver.
        self.draining = self.peer_session.is_some() || !self.queue.is_empty();
        self.drain_hellos = 0;
        if !self.draining {
            self.start_over(now);
        } else if self.peer_session.is_some()
            && !self.peer_synced
            && self.snapshot.is_none()
            && self.snapshot_end_seq.is_none()
        {
            self.start_resync();
        }
    }

    fn transmitting(&self) -> bool {
        self.sending || self.draining
    }

    /// Starts over with a hello and a full snapshot (changes were lost before they
    /// reached the link, e.g. the data path's change log overflowed). Only while sending.
    pub fn resync(&mut self, now: u64) {
        if self.sending {
            self.start_over(now);
        }
    }

    /// The replication mode.
    pub fn mode(&self) -> SyncMode {
        self.config.mode
    }

    /// This node's id.
    pub fn node(&self) -> u8 {
        self.config.node
    }

    /// Whether sending was turned off and what was queued or unacked still goes out.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Whether this side sends its table.
    pub fn sending(&self) -> bool {
        self.sending
    }

    /// Queues a local change for the peer. A full queue starts a resync instead.
    pub fn record(&mut self, change: Change) {
        // While draining (sending just turned off), changes the data path made before
        // (and in the moments after) the role change still go out.
        if !(self.sending || self.draining) {
            return;
        }
        if self.peer_session.is_none() {
            // No session yet (our hello is out). Kept: if the session comes while we
            // still send, the snapshot that starts then carries the change (the queue is
            // dropped); if sending stops first (a master that held the role only
            // briefly, e.g. in a split brain), the drain delivers the queue once the
            // peer answers. A full queue keeps the oldest.
            let _ = self.queue.push_back(change);
            return;
        }
        if self.snapshot.is_some() && !self.snapshot_begun() {
            // A snapshot about to start: it will carry the change.
            return;
        }
        if self.queue.push_back(change).is_err() {
            self.start_resync();
        }
    }

    fn snapshot_begun(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| s.begun)
    }

    fn start_resync(&mut self) {
        self.peer_synced = false;
        self.snapshot_end_seq = None;
        self.queue.clear();
        self.snapshot = Some(Snapshot {
            begun: false,
            flow_cursor: 0,
            sticky_cursor: 0,
            flows: 0,
            partial: Vec::new(),
            partial_count: 0,
        });
        self.stats.resyncs = self.stats.resyncs.wrapping_add(1);
    }

    fn start_over(&mut self, now: u64) {
        self.queue.clear();
        self.start_over_keeping_queue(now);
    }

    fn start_over_keeping_queue(&mut self, now: u64) {
        self.peer_synced = false;
        self.snapshot_end_seq = None;
        self.peer_session = None;
        self.unacked.clear();
        self.snapshot = None;
        self.resend_from = None;
        self.retries = 0;
        self.hello_at = now;
        self.hello_counter += 1;
    }

    /// When [`Link::handle_timeout`] or [`Link::poll_transmit`] has work, ms.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.ack_due || self.hello_please.is_some() || self.resend_from.is_some() {
            return Some(0);
        }
        if !self.transmitting() {
            return None;
        }
        if self.peer_session.is_none() {
            return Some(self.hello_at);
        }
        if let Some(u) = self.unacked.front() {
            return Some(u.sent_at + self.config.rto_ms);
        }
        if (!self.queue.is_empty() || self.snapshot.is_some()) && !self.unacked.is_full() {
            return Some(0);
        }
        Some(self.last_sent_at + self.config.keepalive_ms)
    }

    /// Retransmission timer: go back to the oldest unacked message.
    pub fn handle_timeout(&mut self, now: u64) {
        if let Some(u) = self.unacked.front()
            && now >= u.sent_at + self.config.rto_ms
            && self.resend_from.is_none()
        {
            self.retries += 1;
            if self.retries > MAX_RETRIES {
                self.start_over(now);
                return;
            }
            self.resend_from = Some(u.seq);
        }
    }

    /// The next message for the peer, written into `out` ([`MAX_MESSAGE`] bytes suffice):
    /// an ack, a retransmission, a hello, or new data (snapshot chunks and queued
    /// changes). `source` is read for snapshots.
    pub fn poll_transmit(
        &mut self,
        now: u64,
        source: &impl ReplicaSource,
        out: &mut [u8],
    ) -> Option<usize> {
        if out.len() < MAX_MESSAGE {
            return None;
        }
        if self.ack_due {
            self.ack_due = false;
            let epoch = self.peer_epoch.unwrap_or(0);
            return emit_message(
                out,
                &self.key,
                Kind::Ack,
                epoch,
                self.session,
                self.expected,
                self.config.node,
                0,
                &[],
            );
        }
        if let Some(epoch) = self.hello_please.take() {
            return emit_message(
                out,
                &self.key,
                Kind::Ack,
                epoch,
                self.session,
                0,
                self.config.node,
                0,
                &[],
            );
        }
        let drained = match self.peer_session {
            Some(_) => self.unacked.is_empty() && self.queue.is_empty() && self.snapshot.is_none(),
            // Without a session (our hello unanswered, or the peer stopped answering and
            // we started over): the table still has to reach the peer; give up only
            // after `MAX_RETRIES` more hellos.
            None => self.drain_hellos > MAX_RETRIES,
        };
        if self.draining && drained {
            // Drained (or the peer went away, or never answered): stop.
            self.draining = false;
            self.start_over(now);
        }
        if !self.transmitting() {
            return None;
        }
        if let Some(from) = self.resend_from {
            let next = self.unacked.iter_mut().find(|u| u.seq >= from);
            match next {
                Some(u) => {
                    u.sent_at = now;
                    let len = u.len;
                    out[..len].copy_from_slice(&u.bytes[..len]);
                    let seq = u.seq;
                    self.resend_from = Some(seq + 1);
                    self.stats.data_sent = self.stats.data_sent.wrapping_add(1);
                    self.stats.retransmitted = self.stats.retransmitted.wrapping_add(1);
                    return Some(len);
                }
                None => self.resend_from = None,
            }
        }
        let Some(session) = self.peer_session else {
            if now < self.hello_at {
                return None;
            }
            self.hello_at = now + self.config.hello_ms;
            if self.draining {
                self.drain_hellos += 1;
            }
            return emit_message(
                out,
                &self.key,
                Kind::Hello,
                self.epoch,
                0,
                self.hello_counter,
                self.config.node,
                0,
                &[],
            );
        };
        let idle = self.queue.is_empty() && self.snapshot.is_none();
        let keepalive =
            idle && self.unacked.is_empty() && now >= self.last_sent_at + self.config.keepalive_ms;
        if self.unacked.is_full() || (idle && !keepalive) {
            return None;
        }
        let mut records = [0u8; MAX_MESSAGE - HEADER_LEN - TAG_LEN];
        let (used, count) = self.fill(now, source, &mut records);
        if count == 0 && !keepalive {
            return None;
        }
        self.last_sent_at = now;
        let seq = self.next_seq;
        let mut u = Unacked {
            seq,
            sent_at: now,
            len: 0,
            bytes: [0; MAX_MESSAGE],
        };
        u.len = emit_message(
            &mut u.bytes,
            &self.key,
            Kind::Data,
            self.epoch,
            session,
            seq,
            self.config.node,
            count,
            &records[..used],
        )?;
        self.next_seq += 1;
        let len = u.len;
        out[..len].copy_from_slice(&u.bytes[..len]);
        let _ = self.unacked.push_back(u);
        self.stats.data_sent = self.stats.data_sent.wrapping_add(1);
        Some(len)
    }

    fn copy_for(&self, key: &FlowKey) -> Copy {
        match self.config.mode {
            SyncMode::AllToAll => Copy::Full,
            SyncMode::OwnerBackup => {
                if backup_of(key, &self.config.peers) == Some(self.config.peer) {
                    Copy::Full
                } else {
                    Copy::OwnerOnly
                }
            }
        }
    }

    fn flow_record(&self, now: u64, slot: u32, entry: &FlowEntry) -> Record {
        match self.copy_for(&entry.key) {
            Copy::Full => Record::FlowUpsert {
                slot,
                entry: *entry,
                idle_ms: (now as u32).wrapping_sub(entry.last_seen),
                owner: self.config.node,
            },
            Copy::OwnerOnly => Record::FlowOwner {
                key: entry.key,
                owner: self.config.node,
            },
        }
    }

    /// Packs snapshot chunks, then queued changes, into `out`; returns (bytes, records).
    fn fill(&mut self, now: u64, source: &impl ReplicaSource, out: &mut [u8]) -> (usize, u8) {
        let mut used = 0;
        let mut count: u8 = 0;
        if let Some(snap) = self.snapshot.as_mut()
            && let Some(dst) = out.get_mut(..snap.partial.len())
        {
            dst.copy_from_slice(&snap.partial);
            used = snap.partial.len();
            count = snap.partial_count;
            snap.partial.clear();
            snap.partial_count = 0;
        }
        let mut push = |r: &Record, used: &mut usize, count: &mut u8| -> bool {
            if *count == u8::MAX {
                return false;
            }
            match r.emit(&mut out[*used..]) {
                Some(n) => {
                    *used += n;
                    *count += 1;
                    true
                }
                None => false,
            }
        };
        if let Some(mut snap) = self.snapshot.take() {
            let mut done = false;
            if !snap.begun {
                if !push(&Record::SnapshotBegin, &mut used, &mut count) {
                    self.snapshot = Some(snap);
                    return (used, count);
                }
                snap.begun = true;
            }
            let mut visits = 0usize;
            let mut budget_spent = false;
            'chunk: {
                while snap.flow_cursor < source.flow_slots() {
                    if visits == SNAPSHOT_VISITS {
                        budget_spent = true;
                        break 'chunk;
                    }
                    visits += 1;
                    let slot = snap.flow_cursor;
                    if let Some((entry, owner)) = source.flow(slot)
                        && owner == self.config.node
                    {
                        let r = self.flow_record(now, slot as u32, &entry);
                        if !push(&r, &mut used, &mut count) {
                            break 'chunk;
                        }
                        if matches!(r, Record::FlowUpsert { .. }) {
                            snap.flows += 1;
                        }
                    }
                    snap.flow_cursor += 1;
                }
                while snap.sticky_cursor < source.sticky_slots() {
                    if visits == SNAPSHOT_VISITS {
                        budget_spent = true;
                        break 'chunk;
                    }
                    visits += 1;
                    if let Some(entry) = source.sticky(snap.sticky_cursor) {
                        let r = Record::StickyUpsert {
                            entry,
                            idle_ms: (now as u32).wrapping_sub(entry.last_seen),
                        };
                        if !push(&r, &mut used, &mut count) {
                            break 'chunk;
                        }
                    }
                    snap.sticky_cursor += 1;
                }
                if push(
                    &Record::SnapshotEnd { flows: snap.flows },
                    &mut used,
                    &mut count,
                ) {
                    done = true;
                    // This message gets the next sequence number.
                    self.snapshot_end_seq = Some(self.next_seq);
                }
            }
            if !done {
                if budget_spent && snap.partial.extend_from_slice(&out[..used]).is_ok() {
                    // The message is not full: keep what was read for the next call.
                    snap.partial_count = count;
                    used = 0;
                    count = 0;
                }
                self.snapshot = Some(snap);
                // Live changes wait for the snapshot's end: they are newer than what the
                // snapshot reads only if sent after it.
                return (used, count);
            }
        }
        while let Some(change) = self.queue.front().copied() {
            let r = match change {
                Change::Flow { slot, entry } => self.flow_record(now, slot, &entry),
                Change::FlowRemoved { slot, key } => match self.copy_for(&key) {
                    Copy::Full => Record::FlowRemove { slot, key },
                    // The others learnt only the owner; forgetting it is the same removal.
                    Copy::OwnerOnly => Record::FlowRemove { slot, key },
                },
                Change::Sticky(entry) => Record::StickyUpsert {
                    entry,
                    idle_ms: (now as u32).wrapping_sub(entry.last_seen),
                },
                Change::StickyRemoved { service, client } => {
                    Record::StickyRemove { service, client }
                }
            };
            if !push(&r, &mut used, &mut count) {
                break;
            }
            self.queue.pop_front();
        }
        (used, count)
    }

    /// Handles a message from the peer: applies data to `sink`, takes acks and hellos.
    pub fn handle_message(
        &mut self,
        now: u64,
        bytes: &[u8],
        sink: &mut impl ReplicaSink,
    ) -> Result<(), SyncError> {
        let result = self.check(bytes);
        let m = match result {
            Ok(m) => m,
            Err(e) => {
                match e {
                    SyncError::BadTag => self.stats.bad_tag = self.stats.bad_tag.wrapping_add(1),
                    _ => self.stats.malformed = self.stats.malformed.wrapping_add(1),
                }
                return Err(e);
            }
        };
        match m.kind() {
            Kind::Hello => {
                let fresh = self.peer_epoch != Some(m.epoch()) || m.seq() > self.peer_hello;
                if self.peer_epoch == Some(m.epoch()) && m.seq() < self.peer_hello {
                    self.stats.stale = self.stats.stale.wrapping_add(1);
                    return Err(SyncError::Stale);
                }
                if fresh {
                    // A new sender incarnation or a sender starting over: a new session
                    // and sequence 1, so nothing recorded before is accepted again. A
                    // repeated hello (same counter) gets the same session.
                    self.peer_epoch = Some(m.epoch());
                    self.peer_hello = m.seq();
                    self.session = self.session.wrapping_add(1).max(1);
                    self.expected = 1;
                    self.reorder.clear();
                    self.synced = false;
                }
                self.ack_due = true;
                Ok(())
            }
            Kind::Ack => self.take_ack(now, &m),
            Kind::Data => {
                if Some(m.epoch()) != self.peer_epoch || m.session() != self.session {
                    // Recorded earlier, or a leftover of the previous session, or the
                    // sender does not know we restarted: not applied. For an epoch we do
                    // not know, an ack of 0 asks the sender to say hello (only a live
                    // sender takes it: the ack echoes the epoch). For the known epoch,
                    // the sender is already on its way to the new session.
                    self.stats.stale = self.stats.stale.wrapping_add(1);
                    if Some(m.epoch()) != self.peer_epoch {
                        self.hello_please = Some(m.epoch());
                    }
                    return Err(SyncError::Stale);
                }
                self.ack_due = true;
                let seq = m.seq();
                if seq < self.expected {
                    self.stats.duplicates = self.stats.duplicates.wrapping_add(1);
                    return Ok(());
                }
                if seq > self.expected {
                    self.stats.out_of_order = self.stats.out_of_order.wrapping_add(1);
                    let ahead = seq - self.expected;
                    if ahead <= WINDOW as u64 && !self.reorder.iter().any(|u| u.seq == seq) {
                        let mut u = Unacked {
                            seq,
                            sent_at: now,
                            len: bytes.len(),
                            bytes: [0; MAX_MESSAGE],
                        };
                        u.bytes[..bytes.len()].copy_from_slice(bytes);
                        if self.reorder.is_full() {
                            // Keep the nearest ones: drop the farthest.
                            if let Some(far) = (0..self.reorder.len())
                                .max_by_key(|&i| self.reorder[i].seq)
                                .filter(|&i| self.reorder[i].seq > seq)
                            {
                                self.reorder.swap_remove(far);
                            }
                        }
                        let _ = self.reorder.push(u);
                    }
                    return Ok(());
                }
                self.expected += 1;
                self.apply(now, &m, sink);
                // Whatever was waiting for this one.
                while let Some(i) = self.reorder.iter().position(|u| u.seq == self.expected) {
                    let u = self.reorder.swap_remove(i);
                    self.expected += 1;
                    // Checked when it arrived.
                    if let Ok(m) = Message::new_checked(&u.bytes[..u.len]) {
                        self.apply(now, &m, sink);
                    }
                }
                self.reorder.retain(|u| u.seq > self.expected);
                Ok(())
            }
        }
    }

    fn check<'b>(&self, bytes: &'b [u8]) -> Result<Message<&'b [u8]>, SyncError> {
        let m = Message::new_checked(bytes)?;
        if !m.verify(&self.key) {
            return Err(SyncError::BadTag);
        }
        if m.node() != self.config.peer {
            return Err(SyncError::WrongPeer);
        }
        m.check_records()?;
        Ok(m)
    }

    fn take_ack(&mut self, now: u64, m: &Message<&[u8]>) -> Result<(), SyncError> {
        if m.epoch() != self.epoch || m.session() == 0 {
            self.stats.stale = self.stats.stale.wrapping_add(1);
            return Err(SyncError::Stale);
        }
        if !self.transmitting() {
            return Ok(());
        }
        if m.seq() == 0 {
            // The peer does not know our epoch or session (it restarted): hello again (a
            // draining link goes on: the table is sent once the hello is answered).
            self.start_over(now);
            return Ok(());
        }
        match self.peer_session {
            Some(s) if s != m.session() => {
                // Another session while we have one: an ack of an earlier hello, late or
                // duplicated (the peer moves to a new session only at a hello, and we
                // say hello only without a session; a peer that restarted answers our
                // data with ack 0). Taking it would number messages from 1 again in a
                // session whose numbers the peer may already have used.
                self.stats.stale = self.stats.stale.wrapping_add(1);
                return Err(SyncError::Stale);
            }
            None if self.used_sessions.iter().any(|&s| s == m.session()) => {
                // A late ack of a hello of ours from before we started over: that
                // session's sequence numbers were used, and the peer (if it is still in
                // it) would take new messages 1, 2, ... as duplicates and skip them.
                self.stats.stale = self.stats.stale.wrapping_add(1);
                return Err(SyncError::Stale);
            }
            None => {
                // Our hello answered: a session.
                self.peer_session = Some(m.session());
                if self.used_sessions.is_full() {
                    self.used_sessions.pop_front();
                }
                let _ = self.used_sessions.push_back(m.session());
                self.next_seq = 1;
                self.unacked.clear();
                self.resend_from = None;
                self.retries = 0;
                // The peer joined or restarted, or a drain found it again: a snapshot
                // (it carries what was queued).
                self.start_resync();
                return Ok(());
            }
            Some(_) => {}
        }
        let ack = m.seq();
        if ack > self.next_seq {
            self.stats.stale = self.stats.stale.wrapping_add(1);
            return Err(SyncError::Stale);
        }
        let mut progressed = false;
        while self.unacked.front().is_some_and(|u| u.seq < ack) {
            self.unacked.pop_front();
            progressed = true;
        }
        if self.snapshot_end_seq.is_some_and(|end| ack > end) {
            self.snapshot_end_seq = None;
            self.peer_synced = true;
        }
        if progressed {
            self.retries = 0;
            // Restart the timer of what is left from now.
            for u in self.unacked.iter_mut() {
                u.sent_at = u.sent_at.max(now);
            }
            if self.resend_from.is_some_and(|r| r < ack) {
                self.resend_from = Some(ack);
            }
        }
        Ok(())
    }

    fn apply(&mut self, now: u64, m: &Message<&[u8]>, sink: &mut impl ReplicaSink) {
        self.stats.data_applied = self.stats.data_applied.wrapping_add(1);
        self.last_applied_at = Some(now);
        let from = self.config.peer;
        let now32 = now as u32;
        for r in m.iter().flatten() {
            self.stats.records_applied = self.stats.records_applied.wrapping_add(1);
            match r {
                Record::FlowUpsert {
                    slot,
                    mut entry,
                    idle_ms,
                    owner,
                } => {
                    entry.last_seen = now32.wrapping_sub(idle_ms);
                    sink.upsert_flow(now, slot as usize, entry, owner);
                }
                Record::FlowRemove { slot, key } => sink.remove_flow(now, slot as usize, &key),
                Record::StickyUpsert { mut entry, idle_ms } => {
                    entry.last_seen = now32.wrapping_sub(idle_ms);
                    sink.upsert_sticky(now, entry);
                }
                Record::StickyRemove { service, client } => {
                    sink.remove_sticky(now, service, client)
                }
                Record::FlowOwner { key, owner } => sink.flow_owner(now, &key, owner),
                Record::SnapshotBegin => {
                    self.synced = false;
                    sink.begin_snapshot(now, from);
                }
                Record::SnapshotEnd { .. } => {
                    self.synced = true;
                    self.stats.snapshots_received = self.stats.snapshots_received.wrapping_add(1);
                }
            }
        }
    }
}

/// The address a peer's sync messages come from, for runners that map addresses to
/// links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Node id.
    pub node: u8,
    /// Its own address.
    pub address: Ipv4Addr,
}

// ---------------------------------------------------------------------------------------
// The data path as source and sink
// ---------------------------------------------------------------------------------------

/// The model (or the FPGA tables read back) as a snapshot source, where every flow is
/// owned by `node` (a single active master).
pub struct PipelineSource<'a, 'p> {
    /// The pipeline.
    pub pipeline: &'a fulcrum_model::pipeline::Pipeline<'p>,
    /// This node's id.
    pub node: u8,
}

impl ReplicaSource for PipelineSource<'_, '_> {
    fn flow_slots(&self) -> usize {
        self.pipeline.flow_table().slots().len()
    }
    fn flow(&self, slot: usize) -> Option<(FlowEntry, u8)> {
        let e = self.pipeline.flow_table().get(slot)?;
        e.valid.then_some((*e, self.node))
    }
    fn sticky_slots(&self) -> usize {
        self.pipeline.sticky_table().slots().len()
    }
    fn sticky(&self, slot: usize) -> Option<StickyEntry> {
        let e = self.pipeline.sticky_table().get(slot)?;
        e.valid.then_some(*e)
    }
}

/// The model as the receiving data path: flows installed into their slots
/// ([`fulcrum_model::pipeline::Pipeline::install_flow`]). A snapshot's begin clears the
/// whole flow and persistence tables (a backup of one master holds nothing else).
/// Owner records are counted, not stored (the model has no owner table yet).
pub struct PipelineSink<'a, 'p> {
    /// The pipeline.
    pub pipeline: &'a mut fulcrum_model::pipeline::Pipeline<'p>,
    /// Installs refused (geometry or hash key differ between the peers).
    pub refused: u32,
    /// Owner records received.
    pub owners: u32,
}

impl ReplicaSink for PipelineSink<'_, '_> {
    fn upsert_flow(&mut self, _now: u64, slot: usize, entry: FlowEntry, _owner: u8) {
        if self.pipeline.install_flow(slot, entry).is_err() {
            self.refused = self.refused.wrapping_add(1);
        }
    }
    fn remove_flow(&mut self, _now: u64, _slot: usize, key: &FlowKey) {
        self.pipeline.remove_flow(key);
    }
    fn upsert_sticky(&mut self, now: u64, entry: StickyEntry) {
        if !self.pipeline.install_sticky(now, entry) {
            self.refused = self.refused.wrapping_add(1);
        }
    }
    fn remove_sticky(&mut self, _now: u64, service: u8, client: [u8; 4]) {
        self.pipeline.remove_sticky(service, client);
    }
    fn flow_owner(&mut self, _now: u64, _key: &FlowKey, _owner: u8) {
        self.owners = self.owners.wrapping_add(1);
    }
    fn begin_snapshot(&mut self, _now: u64, _from: u8) {
        let keys = self.pipeline.flow_table().slots().len();
        for slot in 0..keys {
            if let Some(e) = self.pipeline.flow_table().get(slot).copied()
                && e.valid
            {
                self.pipeline.remove_flow(&e.key);
            }
        }
        let stickies = self.pipeline.sticky_table().slots().len();
        for slot in 0..stickies {
            if let Some(e) = self.pipeline.sticky_table().get(slot).copied()
                && e.valid
            {
                self.pipeline.remove_sticky(e.service, e.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(b"management key").unwrap()
    }

    fn flow(n: u16) -> FlowEntry {
        FlowEntry {
            valid: true,
            key: FlowKey {
                protocol: 6,
                src: [192, 0, 2, 1],
                dst: [10, 0, 0, 100],
                src_port: 1000 + n,
                dst_port: 80,
            },
            service: 3,
            backend: 257,
            generation: 9,
            state: FlowState::Established,
            last_seen: 0,
            client_mac: [2, 0, 0, 0, 0, 7],
        }
    }

    #[test]
    fn records_round_trip_and_have_the_documented_sizes() {
        let records = [
            Record::FlowUpsert {
                slot: 77,
                entry: flow(1),
                idle_ms: 1234,
                owner: 2,
            },
            Record::FlowRemove {
                slot: 77,
                key: flow(1).key,
            },
            Record::StickyUpsert {
                entry: StickyEntry {
                    valid: true,
                    service: 1,
                    client: [1, 2, 3, 4],
                    backend: 5,
                    generation: 6,
                    last_seen: 0,
                },
                idle_ms: 7,
            },
            Record::StickyRemove {
                service: 1,
                client: [1, 2, 3, 4],
            },
            Record::FlowOwner {
                key: flow(2).key,
                owner: 3,
            },
            Record::SnapshotBegin,
            Record::SnapshotEnd { flows: 99 },
        ];
        let sizes = [34, 18, 13, 6, 15, 1, 5];
        for (r, size) in records.iter().zip(sizes) {
            let mut b = [0u8; 64];
            assert_eq!(r.emit(&mut b), Some(size));
            assert_eq!(Record::parse(&b[..size]), Ok((*r, size)));
            assert_eq!(
                Record::parse(&b[..size - 1]).err(),
                Some(SyncError::BadRecord)
            );
        }
        assert_eq!((MAX_MESSAGE - HEADER_LEN - TAG_LEN) / 34, 33);
    }

    #[test]
    fn node_ids_agree_across_the_group() {
        let a = Ipv4Addr::new(10, 0, 0, 3);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let c = Ipv4Addr::new(10, 0, 0, 10);
        let (ia, pa) = node_ids(a, &[b, c]).unwrap();
        let (ib, pb) = node_ids(b, &[c, a]).unwrap();
        let (ic, _) = node_ids(c, &[a, b]).unwrap();
        assert_eq!((ia, ib, ic), (1, 0, 2));
        assert_eq!(pa.as_slice(), &[(0, b), (2, c)]);
        assert_eq!(pb.as_slice(), &[(2, c), (1, a)]);
        assert_eq!(node_ids(a, &[a]), None);
    }

    #[test]
    fn memory_per_flow_table() {
        use SyncMode::*;
        assert_eq!(group_bytes_per_flow(AllToAll, 2), 56);
        assert_eq!(group_bytes_per_flow(AllToAll, 4), 112);
        assert_eq!(group_bytes_per_flow(OwnerBackup, 2), 56);
        assert_eq!(group_bytes_per_flow(OwnerBackup, 3), 70);
        assert_eq!(group_bytes_per_flow(OwnerBackup, 4), 84);
        assert_eq!(group_bytes_per_flow(OwnerBackup, 8), 140);
    }

    #[test]
    fn backup_choice_is_the_same_everywhere_and_spreads() {
        let mut counts = [0u32; 4];
        for n in 0..4000 {
            let k = flow(n).key;
            let b = backup_of(&k, &[1, 2, 3]).unwrap();
            // Order of the peer list does not matter.
            assert_eq!(backup_of(&k, &[3, 1, 2]), Some(b));
            counts[usize::from(b)] += 1;
        }
        assert_eq!(counts[0], 0);
        for c in &counts[1..] {
            assert!((1100..1600).contains(c), "{counts:?}");
        }
    }

    #[test]
    fn message_checks_and_tag() {
        let k = key();
        let mut rec = [0u8; 64];
        let n = Record::SnapshotBegin.emit(&mut rec).unwrap();
        let mut out = [0u8; MAX_MESSAGE];
        let len = emit_message(&mut out, &k, Kind::Data, 5, 6, 7, 1, 1, &rec[..n]).unwrap();
        let m = Message::new_checked(&out[..len]).unwrap();
        assert!(m.verify(&k));
        assert!(!m.verify(&Key::new(b"other").unwrap()));
        assert_eq!(
            (m.kind(), m.epoch(), m.session(), m.seq(), m.node()),
            (Kind::Data, 5, 6, 7, 1)
        );
        m.check_records().unwrap();
        let mut bad = out;
        bad[len - 40] ^= 1;
        assert!(!Message::new_checked(&bad[..len]).unwrap().verify(&k));
        assert_eq!(
            Message::new_checked(&out[..len - 1]).err(),
            Some(SyncError::Truncated)
        );
        let mut bad = out;
        bad[0] = 0xF1;
        assert_eq!(
            Message::new_checked(&bad[..len]).err(),
            Some(SyncError::BadHeader)
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        struct Null;
        impl ReplicaSink for Null {
            fn upsert_flow(&mut self, _: u64, _: usize, _: FlowEntry, _: u8) {}
            fn remove_flow(&mut self, _: u64, _: usize, _: &FlowKey) {}
            fn upsert_sticky(&mut self, _: u64, _: StickyEntry) {}
            fn remove_sticky(&mut self, _: u64, _: u8, _: [u8; 4]) {}
            fn flow_owner(&mut self, _: u64, _: &FlowKey, _: u8) {}
            fn begin_snapshot(&mut self, _: u64, _: u8) {}
        }

        proptest! {
            #[test]
            fn no_bytes_panic_the_receiver(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let config = LinkConfig {
                    node: 0, peer: 1, peers: [1].into_iter().collect(),
                    mode: SyncMode::AllToAll, rto_ms: 20, hello_ms: 100, keepalive_ms: 100,
                };
                let mut link = Link::new(config, key(), 1, 2);
                let _ = link.handle_message(0, &bytes, &mut Null);
                let mut rest: &[u8] = &bytes;
                while !rest.is_empty() {
                    match Record::parse(rest) {
                        Ok((_, used)) => rest = &rest[used..],
                        Err(_) => break,
                    }
                }
                // A correctly tagged message with arbitrary records must not panic either.
                let len = bytes.len().min(MAX_MESSAGE - HEADER_LEN - TAG_LEN);
                let mut out = [0u8; MAX_MESSAGE];
                let n = emit_message(&mut out, &key(), Kind::Data, 0, 2, 1, 1, 3, &bytes[..len]).unwrap();
                let _ = link.handle_message(0, &out[..n], &mut Null);
            }
        }
    }
}
