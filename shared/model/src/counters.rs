//! Stage 6, count: what the data path counts, per service, per backend and per reason.
//!
//! Counters are 64 bits and wrap; the hardware keeps the same widths so the MCU reads
//! identical values from the model and the FPGA. A frame is counted exactly once under
//! [`Counters::rx_frames`] and exactly once under one of: a service or return path
//! (forwarded), a [`PuntReason`], a [`DropReason`], or [`Counters::from_mcu`].

use crate::tables::{BACKEND_SLOTS, SERVICE_SLOTS};

macro_rules! reasons {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $name {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();
            /// A stable snake_case name, for metrics and JSON.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            /// The counter index.
            pub const fn index(self) -> usize { self as usize }
        }
    };
}

reasons! {
    /// Why the data path dropped a frame.
    DropReason {
        /// Shorter than an Ethernet header.
        Runt => "runt",
        /// More than one VLAN tag.
        StackedVlan => "stacked_vlan",
        /// Impossible IPv4 header fields.
        MalformedIpv4 => "malformed_ipv4",
        /// The frame ends before the IPv4 packet does.
        TruncatedIpv4 => "truncated_ipv4",
        /// The IPv4 header checksum does not verify.
        BadIpv4Checksum => "bad_ipv4_checksum",
        /// The TCP or UDP header is cut short.
        TruncatedL4 => "truncated_l4",
        /// An EtherType the appliance does not handle.
        UnsupportedEthertype => "unsupported_ethertype",
        /// Addressed to a VIP on a protocol or port no service serves.
        NoService => "no_service",
        /// The service has no backend that can take a new flow.
        NoBackend => "no_backend",
        /// A TCP segment other than SYN for an unknown flow of a stateful algorithm.
        TcpNoFlow => "tcp_no_flow",
        /// A backend's reply for which no flow exists.
        ReturnNoFlow => "return_no_flow",
        /// The encapsulated frame would exceed the tunnel MTU.
        TunnelMtu => "tunnel_mtu",
        /// IPv4 not addressed to the appliance, a VIP, or a return path.
        NotForUs => "not_for_us",
        /// The runner's output buffer was smaller than the frame plus
        /// [`crate::pipeline::OUT_HEADROOM`] (a runner bug; hardware never counts it).
        NoBuffer => "no_buffer",
    }
}

reasons! {
    /// Why the data path handed a frame to the MCU.
    PuntReason {
        /// ARP.
        Arp => "arp",
        /// IPv6.
        Ipv6 => "ipv6",
        /// Addressed to the appliance itself.
        OwnAddress => "own_address",
        /// IPv4 broadcast or multicast (VRRP adverts among them).
        Multicast => "multicast",
        /// An L7 service: the MCU proxies it.
        L7Service => "l7_service",
        /// An IPv4 fragment to a VIP or return path.
        Fragment => "fragment",
        /// ICMP to a VIP or a full-NAT address.
        Icmp => "icmp",
        /// The chosen backend's MAC is not resolved yet.
        NeighborUnresolved => "neighbor_unresolved",
    }
}

/// Counters of one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// Frames forwarded client → backend.
    pub packets: u64,
    /// Bytes of those frames as received.
    pub bytes: u64,
    /// Frames forwarded backend → client (NAT return path).
    pub return_packets: u64,
    /// Bytes of those frames as received.
    pub return_bytes: u64,
    /// Flows created.
    pub new_flows: u64,
}

/// Counters of one backend slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendCounters {
    /// Frames sent to the backend.
    pub packets: u64,
    /// Bytes of those frames as received.
    pub bytes: u64,
    /// Flows created towards the backend.
    pub flows: u64,
}

/// All data-path counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Frames received on either port.
    pub rx_frames: u64,
    /// Frames received from the MCU port and sent to the network unchanged.
    pub from_mcu: u64,
    /// Per service-table index.
    pub services: [ServiceCounters; SERVICE_SLOTS],
    /// Per backend-table index.
    pub backends: [BackendCounters; BACKEND_SLOTS],
    /// Per [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// Per [`PuntReason::index`].
    pub punts: [u64; PuntReason::COUNT],
    /// Live flows displaced from a full set.
    pub evictions: u64,
    /// Flows found expired on lookup or reclaimed on insert or by aging.
    pub expirations: u64,
    /// Established flows moved because their backend went down, was disabled or removed.
    pub moved_flows: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Counters {
    /// All zero.
    pub const fn new() -> Self {
        const S: ServiceCounters = ServiceCounters {
            packets: 0,
            bytes: 0,
            return_packets: 0,
            return_bytes: 0,
            new_flows: 0,
        };
        const B: BackendCounters = BackendCounters {
            packets: 0,
            bytes: 0,
            flows: 0,
        };
        Counters {
            rx_frames: 0,
            from_mcu: 0,
            services: [S; SERVICE_SLOTS],
            backends: [B; BACKEND_SLOTS],
            drops: [0; DropReason::COUNT],
            punts: [0; PuntReason::COUNT],
            evictions: 0,
            expirations: 0,
            moved_flows: 0,
        }
    }

    /// Counts a drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] = self.drops[reason.index()].wrapping_add(1);
    }

    /// Counts a punt.
    pub fn punt(&mut self, reason: PuntReason) {
        self.punts[reason.index()] = self.punts[reason.index()].wrapping_add(1);
    }

    /// Total dropped frames.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// Total punted frames.
    pub fn punted(&self) -> u64 {
        self.punts.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }
}
