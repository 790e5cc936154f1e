//! High-availability types of the management protocol: roles and causes in events, and
//! the `fulcrum ha status` report.

use core::net::Ipv4Addr;

use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Most flow-sync peers one status report lists.
pub const MAX_HA_PEERS: usize = 7;

/// A VRRP role (RFC 5798 states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HaRole {
    /// Not taking part.
    Initialize,
    /// Watching the master.
    Backup,
    /// Owning the virtual addresses.
    Master,
}

impl HaRole {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HaRole::Initialize => "initialize",
            HaRole::Backup => "backup",
            HaRole::Master => "master",
        }
    }
}

/// Why a role changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HaCause {
    /// Startup or shutdown.
    Admin,
    /// `fulcrum ha promote` / `demote`.
    Operator,
    /// No master heard for `Master_Down_Interval` (or a master released, or preemption).
    MasterDown,
    /// A better master was heard.
    BetterMaster,
    /// The address owner started, or its flow table finished synchronising.
    Owner,
}

impl HaCause {
    /// Lower-case description.
    pub fn as_str(self) -> &'static str {
        match self {
            HaCause::Admin => "startup/shutdown",
            HaCause::Operator => "operator",
            HaCause::MasterDown => "master down",
            HaCause::BetterMaster => "better master heard",
            HaCause::Owner => "address owner",
        }
    }
}

/// One flow-sync peer in [`HaStatus`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaPeerStatus {
    /// The peer's own address.
    pub address: Option<Ipv4Addr>,
    /// The peer answered our hello (a session is open).
    pub connected: bool,
    /// We hold the peer's complete table (its snapshot finished).
    pub synced: bool,
    /// We send our table to this peer (we are master).
    pub sending: bool,
    /// Our changes waiting for this peer: queued entries.
    pub lag_entries: u32,
    /// ... and unacknowledged messages.
    pub lag_messages: u32,
    /// Age of the oldest unacknowledged message, ms.
    pub lag_ms: u64,
    /// Full resyncs started towards the peer.
    pub resyncs: u32,
    /// Snapshots completed from the peer.
    pub snapshots_received: u32,
    /// Records applied from the peer.
    pub records_applied: u32,
    /// Data messages sent (retransmissions included) and of those retransmitted.
    pub data_sent: u32,
    /// Retransmitted messages.
    pub retransmitted: u32,
    /// Messages refused (bad tag, stale, malformed).
    pub refused: u32,
    /// Milliseconds since the peer last delivered data.
    pub last_applied_ago_ms: Option<u64>,
}

/// Answer to the HA status request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatus {
    /// Whether `[appliance.ha]` is configured (everything else is zero without it).
    pub enabled: bool,
    /// Current role.
    pub role: Option<HaRole>,
    /// VRRP virtual router id.
    pub vrid: u8,
    /// Effective priority (254 promoted, 1 demoted).
    pub priority: u8,
    /// Configured priority.
    pub configured_priority: u8,
    /// Advertisement interval, ms.
    pub advert_interval_ms: u64,
    /// `Master_Down_Interval`, ms.
    pub master_down_interval_ms: u64,
    /// The master heard last (or this node).
    pub master: Option<Ipv4Addr>,
    /// Milliseconds since the last advert heard.
    pub last_advert_ago_ms: Option<u64>,
    /// Role changes since boot.
    pub role_changes: u32,
    /// Times another master was heard while this node was master (split brain).
    pub split_brains: u32,
    /// Adverts sent and received.
    pub adverts_sent: u32,
    /// Adverts received and used.
    pub adverts_received: u32,
    /// Times the data path's change log overflowed (each forces a resync).
    pub change_log_overflows: u32,
    /// Change records read from the data path.
    pub changes_read: u64,
    /// Replicas the data path refused.
    pub install_refused: u32,
    /// Flow-sync peers.
    pub peers: Vec<HaPeerStatus, MAX_HA_PEERS>,
}

/// `fulcrum ha promote|demote|clear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HaAction {
    /// Priority 254 (takes over from any non-owner master) until cleared.
    Promote,
    /// Priority 1 (releases mastership at once) until cleared.
    Demote,
    /// Back to the configured priority.
    Clear,
}
