//! What the FPGA holds, entry by entry: the global settings, the service table, the
//! backend table, each service's member list and Maglev ring.
//!
//! These are the *compiled* form of a [`crate::config::Config`] (see [`crate::compile`]):
//! fixed-size, index-addressed, no names. The control plane writes them through the
//! [`TableWriter`] trait — into the model directly, or encoded into registers by
//! [`crate::regmap`] for the FPGA — always into a shadow bank, then commits atomically.
//!
//! Backends live in one global table; a service names its backends by slot in a member
//! list. A slot keeps its index for as long as the backend exists, so a config change
//! does not move established flows; a freed slot that is reused gets a new generation,
//! so flows that pointed at the old occupant are recognised as stale.

use core::net::Ipv4Addr;

use crate::config::{Algorithm, Mode, Protocol};

/// Service-table entries.
pub const SERVICE_SLOTS: usize = crate::config::MAX_SERVICES;
/// Backend-table entries.
pub const BACKEND_SLOTS: usize = crate::config::MAX_BACKENDS;
/// Member-list entries per service.
pub const MEMBER_SLOTS: usize = crate::config::MAX_BACKENDS_PER_SERVICE;
/// A backend index that names no backend (empty ring slot, no choice).
pub const NO_BACKEND: u16 = 0xFFFF;

/// Appliance-wide settings of the data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Source MAC of every rewritten frame.
    pub mac: [u8; 6],
    /// The appliance's own address: frames to it are punted.
    pub address: Ipv4Addr,
    /// Outer source address of tunnels.
    pub tunnel_source: Ipv4Addr,
    /// Full-NAT source addresses (first `snat_count` valid).
    pub snat_pool: [Ipv4Addr; crate::config::MAX_SNAT_ADDRS],
    /// Number of valid `snat_pool` entries.
    pub snat_count: u8,
    /// First full-NAT source port.
    pub snat_port_base: u16,
    /// The Toeplitz key.
    pub hash_key: [u8; 40],
    /// Maglev ring size (a prime), the same for every service.
    pub ring_size: u32,
    /// Idle timeout of a TCP flow that has seen only a SYN, in ms.
    pub tcp_syn_timeout: u32,
    /// Idle timeout of an established TCP flow, in ms.
    pub tcp_established_timeout: u32,
    /// Idle timeout of a TCP flow after FIN or RST, in ms.
    pub tcp_closing_timeout: u32,
    /// Idle timeout of a UDP flow, in ms.
    pub udp_timeout: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Settings {
    /// The reset values.
    pub const DEFAULT: Settings = Settings {
        mac: [0; 6],
        address: Ipv4Addr::UNSPECIFIED,
        tunnel_source: Ipv4Addr::UNSPECIFIED,
        snat_pool: [Ipv4Addr::UNSPECIFIED; crate::config::MAX_SNAT_ADDRS],
        snat_count: 0,
        snat_port_base: 1024,
        hash_key: crate::hash::RSS_DEFAULT_KEY,
        ring_size: crate::config::DEFAULT_RING_SIZE,
        tcp_syn_timeout: 10_000,
        tcp_established_timeout: 300_000,
        tcp_closing_timeout: 10_000,
        udp_timeout: 30_000,
    };
}

/// One service-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Whether the entry is in use.
    pub valid: bool,
    /// The VIP.
    pub vip: Ipv4Addr,
    /// The protocol.
    pub protocol: Protocol,
    /// The virtual port.
    pub port: u16,
    /// The rewrite mode.
    pub mode: Mode,
    /// The selection algorithm.
    pub algorithm: Algorithm,
    /// Source-IP persistence on.
    pub sticky: bool,
    /// Persistence timeout in ms.
    pub sticky_timeout: u32,
    /// Destination port of GUE encapsulation.
    pub gue_port: u16,
    /// Number of valid member-list entries.
    pub member_count: u8,
}

impl Default for ServiceEntry {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl ServiceEntry {
    /// An unused entry.
    pub const EMPTY: ServiceEntry = ServiceEntry {
        valid: false,
        vip: Ipv4Addr::UNSPECIFIED,
        protocol: Protocol::Tcp,
        port: 0,
        mode: Mode::Nat,
        algorithm: Algorithm::Maglev,
        sticky: false,
        sticky_timeout: 0,
        gue_port: crate::config::DEFAULT_GUE_PORT,
        member_count: 0,
    };
}

/// Run-time state of a backend, as the data path sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// The slot holds no backend.
    #[default]
    Free,
    /// Healthy and enabled: takes new and established flows.
    Up,
    /// Failed its health checks: takes no new flows; established flows are moved.
    Down,
    /// Draining: takes no new flows; established flows continue.
    Drain,
    /// Administratively disabled: like `Down`.
    Disabled,
}

impl BackendState {
    /// Whether new flows may pick the backend.
    pub const fn takes_new_flows(self) -> bool {
        matches!(self, BackendState::Up)
    }

    /// Whether flows already on the backend stay there.
    pub const fn keeps_flows(self) -> bool {
        matches!(self, BackendState::Up | BackendState::Drain)
    }

    /// The 3-bit encoding used in registers and flow-sync messages.
    pub const fn code(self) -> u8 {
        match self {
            BackendState::Free => 0,
            BackendState::Up => 1,
            BackendState::Down => 2,
            BackendState::Drain => 3,
            BackendState::Disabled => 4,
        }
    }

    /// Decodes [`BackendState::code`]; unknown codes read as `Free`.
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => BackendState::Up,
            2 => BackendState::Down,
            3 => BackendState::Drain,
            4 => BackendState::Disabled,
            _ => BackendState::Free,
        }
    }
}

/// One backend-table entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendEntry {
    /// Run-time state.
    pub state: BackendState,
    /// Generation of the slot: bumped each time the slot gets a new occupant.
    pub generation: u8,
    /// The address.
    pub address: [u8; 4],
    /// The port frames are rewritten to (NAT modes).
    pub port: u16,
    /// The MAC frames are sent to; all zero while unresolved.
    pub mac: [u8; 6],
    /// Effective weight (after health and slow start); 0 takes no new flows.
    pub weight: u16,
    /// Smoothed response time in µs, fed by the control plane (least response time).
    pub rtt_us: u32,
}

impl BackendEntry {
    /// A free slot.
    pub const EMPTY: BackendEntry = BackendEntry {
        state: BackendState::Free,
        generation: 0,
        address: [0; 4],
        port: 0,
        mac: [0; 6],
        weight: 0,
        rtt_us: 0,
    };

    /// Whether the backend's MAC is known.
    pub fn mac_resolved(&self) -> bool {
        self.mac != [0; 6]
    }

    /// The backend's address.
    pub fn ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }
}

/// How the control plane writes tables: into the model, or into FPGA registers.
///
/// Every write goes to the shadow bank; nothing is visible to the data path until
/// [`TableWriter::commit`]. Ring writes carry a run of consecutive entries so deltas are cheap.
pub trait TableWriter {
    /// Writes the appliance settings.
    fn write_settings(&mut self, settings: &Settings);
    /// Writes service-table entry `index`.
    fn write_service(&mut self, index: u8, entry: &ServiceEntry);
    /// Writes backend-table entry `index`.
    fn write_backend(&mut self, index: u16, entry: &BackendEntry);
    /// Writes member-list entry `position` of service `service`.
    fn write_member(&mut self, service: u8, position: u8, backend: u16);
    /// Writes `entries` into service `service`'s ring from `offset` on.
    fn write_ring(&mut self, service: u8, offset: u32, entries: &[u16]);
    /// Makes the shadow bank the active bank, atomically between two frames.
    fn commit(&mut self);
}
