//! VRRP version 3 for IPv4 (RFC 5798): the wire format and the election state machine,
//! sans-IO. This is how two or more Fulcrum appliances (or a Fulcrum and a keepalived)
//! agree on which one owns the virtual addresses.
//!
//! ## Wire ([`Packet`], [`Repr`])
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      IPv4 Address(es) ...                     |
//! ```
//! Version 3, type 1 (advertisement), the interval in centiseconds (12 bits), and the
//! checksum over an IPv4 pseudo-header (source, destination, zero, protocol 112, VRRP
//! length) followed by the VRRP message (RFC 5798 §5.2.8). [`Packet`] is a zero-copy view
//! in the smoltcp style: once [`Packet::check_len`] has passed, no accessor panics, and no
//! input panics the parser at all (property-tested). Adverts travel in IPv4 to
//! 224.0.0.18, TTL 255, protocol 112, from the virtual MAC `00-00-5E-00-01-{VRID}`.
//!
//! ## Election ([`Router`]), RFC 5798 §6.4
//! - **Initialize → Master** at startup only for the address owner (priority 255);
//!   everyone else starts as **Backup** with `Master_Down_Timer = Master_Down_Interval`.
//! - `Skew_Time = (256 − Priority) × Master_Adver_Interval / 256` and
//!   `Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time`, where
//!   `Master_Adver_Interval` is learned from the master's adverts (a backup takes the
//!   interval the master announces, as §6.4.2 says).
//! - A **backup** that hears an advert of priority 0 (the master is leaving) sets its
//!   timer to `Skew_Time`; one that hears any other advert resets its timer if
//!   preemption is off or the advert's priority is ≥ its own, and otherwise ignores it
//!   (so the timer runs out and it preempts a lower-priority master).
//! - A **master** that hears priority 0 sends an advert at once. It steps down to Backup
//!   when it hears a higher priority, or an equal priority from a higher primary address
//!   (the tie-break, compared as unsigned 32-bit integers). This is also how a **split
//!   brain** ends: after a partition heals, both masters hear each other and exactly one
//!   (the lower priority, or the lower address) steps down, whatever the preemption mode.
//! - **Shutdown** from Master sends an advert of priority 0 so a backup takes over after
//!   only `Skew_Time`.
//! - Becoming master queues an advert and one gratuitous ARP per virtual address.
//!
//! ## Receive checks, RFC 5798 §7.1
//! TTL 255, version 3, type 1, checksum, our VRID (other VRIDs are someone else's
//! business and are dropped silently), a non-zero interval. The address owner ignores
//! adverts. An address list that differs from ours is counted
//! ([`Stats::address_mismatch`]) but the advert is still used (the RFC leaves dropping it
//! optional; keepalived uses it too). Our own adverts (looped back by the host stack) are
//! ignored. Accept mode and IPv6 are not implemented.
//!
//! ## Fulcrum additions
//! - **Hold-off until synchronised**: with [`RouterConfig::hold_preempt_until_synced`],
//!   a node whose flow table is not yet re-synchronised ([`Router::set_synced`]) does not
//!   preempt: it treats every advert as if preemption were off, and an owner starts as a
//!   backup. A node that hears no master still takes over (nobody else can carry the
//!   traffic). When sync completes, preemption applies from the next advert on.
//! - **A master without the flow table yields to one with it**: with the hold-off on, a
//!   master that does not hold the group's flow table ([`Router::set_holds_table`]: it
//!   never received a complete table, no peer has received its table, and it has not
//!   yet been master for [`HOLD_MDIS`] × `Master_Down_Interval` without hearing another
//!   master) advertises and defends [`HELD_OFF_PRIORITY`] instead of its priority. (A
//!   node that has carried the traffic alone that long holds the only table there is.) So when a node that
//!   restarted empty becomes master because it heard no advert in its first
//!   `Master_Down_Interval` (a master it could not hear yet, a loaded machine), the
//!   master that holds the flows keeps the traffic when the two hear each other, however
//!   their priorities compare; the empty one yields, synchronises, then preempts as
//!   usual. It is visible on the wire (keepalived sees priority 1), so with a peer that
//!   sends no flows (keepalived) the hold-off must be off.
//! - **Admin** [`Router::promote`] runs with priority 254 (above every non-owner) and
//!   takes over at once; [`Router::demote`] runs with priority 1 and, if master, releases
//!   with a priority-0 advert; [`Router::clear_admin`] returns to the configured priority.
//!
//! Time is milliseconds (`now`), as everywhere in the firmware; the 10 ms (1 cs) minimum
//! interval gives `Master_Down_Interval` between 30 and 40 ms.

use core::net::Ipv4Addr;

use heapless::Vec;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

use fulcrum_model::checksum;

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The multicast group adverts go to.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The Ethernet address of [`GROUP`].
pub const GROUP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
/// TTL of every advert; received adverts with another TTL are refused.
pub const TTL: u8 = 255;
/// The protocol version spoken.
pub const VERSION: u8 = 3;
/// The only message type: advertisement.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 8;
/// Most virtual addresses a [`Repr`] and a [`Router`] hold.
pub const MAX_ADDRESSES: usize = 16;
/// Priority of the address owner.
pub const OWNER_PRIORITY: u8 = 255;
/// Priority an advert carries when its sender stops being master.
pub const RELEASE_PRIORITY: u8 = 0;
/// Priority while promoted by the operator.
pub const PROMOTED_PRIORITY: u8 = 254;
/// Priority while demoted by the operator.
pub const DEMOTED_PRIORITY: u8 = 1;
/// The priority a master advertises and defends while it does not hold the group's flow
/// table (hold-off on; see the module docs).
pub const HELD_OFF_PRIORITY: u8 = 1;
/// A held-off master that hears no other master for this many of its
/// `Master_Down_Interval`s holds the table from then on (see the module docs).
pub const HOLD_MDIS: u64 = 3;
/// Largest advert interval, centiseconds (12 bits).
pub const MAX_INTERVAL_CS: u16 = 0x0fff;
/// Longest advert frame: Ethernet, IPv4, VRRP with [`MAX_ADDRESSES`].
pub const MAX_ADVERT_FRAME: usize = 14 + 20 + HEADER_LEN + 4 * MAX_ADDRESSES;
/// Length of a gratuitous ARP frame.
pub const ARP_FRAME_LEN: usize = 14 + 28;

/// The virtual router's MAC address, `00-00-5E-00-01-{VRID}` (RFC 5798 §7.3).
pub const fn virtual_mac(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x01, vrid]
}

mod field {
    use core::ops::Range;
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    pub const INTERVAL: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// Why bytes are not a VRRP packet (or not one this side takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WireError {
    /// Shorter than the header plus the addresses its count announces.
    Truncated,
    /// A version other than 3.
    Version(u8),
    /// A type other than advertisement.
    Type(u8),
    /// The checksum does not verify.
    Checksum,
    /// More addresses than [`MAX_ADDRESSES`] (only [`Repr`] holds them all).
    TooManyAddresses,
}

/// A read/write view of a VRRPv3 packet (IPv4 addresses).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking anything; accessors may panic until
    /// [`Packet::check_len`] has passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the header and every address the count announces.
    /// After this, no accessor panics.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < HEADER_LEN + 4 * usize::from(b[field::COUNT]) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version (high nibble of byte 0).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_TYPE] >> 4
    }

    /// Type (low nibble of byte 0).
    pub fn msg_type(&self) -> u8 {
        self.b()[field::VER_TYPE] & 0x0f
    }

    /// Virtual router identifier.
    pub fn vrid(&self) -> u8 {
        self.b()[field::VRID]
    }

    /// Sender's priority.
    pub fn priority(&self) -> u8 {
        self.b()[field::PRIORITY]
    }

    /// Number of IPv4 addresses.
    pub fn count(&self) -> u8 {
        self.b()[field::COUNT]
    }

    /// Advertisement interval, centiseconds (the 4 reserved bits masked off).
    pub fn max_adver_int(&self) -> u16 {
        let b = self.b();
        u16::from_be_bytes([b[field::INTERVAL.start], b[field::INTERVAL.start + 1]]) & 0x0fff
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.b();
        u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]])
    }

    /// Address `index`, if the count covers it.
    pub fn address(&self, index: usize) -> Option<Ipv4Addr> {
        if index >= usize::from(self.count()) {
            return None;
        }
        let at = field::ADDRESSES + 4 * index;
        let b = self.b().get(at..at + 4)?;
        Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }

    /// The addresses, in packet order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (0..usize::from(self.count())).filter_map(|i| self.address(i))
    }

    /// Bytes of the message: header and addresses (trailing bytes are not part of it).
    pub fn message_len(&self) -> usize {
        HEADER_LEN + 4 * usize::from(self.count())
    }

    fn message(&self) -> &[u8] {
        let len = self.message_len().min(self.b().len());
        &self.b()[..len]
    }

    /// Whether the checksum verifies for an IPv4 packet from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::fold(message_sum(self.message(), src, dst)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets version and type.
    pub fn set_version_type(&mut self, version: u8, msg_type: u8) {
        self.b_mut()[field::VER_TYPE] = (version << 4) | (msg_type & 0x0f);
    }

    /// Sets the VRID.
    pub fn set_vrid(&mut self, vrid: u8) {
        self.b_mut()[field::VRID] = vrid;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.b_mut()[field::PRIORITY] = priority;
    }

    /// Sets the address count.
    pub fn set_count(&mut self, count: u8) {
        self.b_mut()[field::COUNT] = count;
    }

    /// Sets the interval (centiseconds, 12 bits; the reserved bits are written as zero).
    pub fn set_max_adver_int(&mut self, centiseconds: u16) {
        let v = (centiseconds & 0x0fff).to_be_bytes();
        self.b_mut()[field::INTERVAL].copy_from_slice(&v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.b_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets address `index` (which must be below the count and within the buffer).
    pub fn set_address(&mut self, index: usize, address: Ipv4Addr) {
        let at = field::ADDRESSES + 4 * index;
        self.b_mut()[at..at + 4].copy_from_slice(&address.octets());
    }

    /// Computes and writes the checksum for an IPv4 packet from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = checksum::fold(message_sum(self.message(), src, dst));
        self.set_checksum(!sum);
    }
}

/// The unfolded sum of the pseudo-header and the message (RFC 5798 §5.2.8).
fn message_sum(message: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    let pseudo =
        checksum::pseudo_header_v4(src.octets(), dst.octets(), PROTOCOL, message.len() as u16);
    checksum::sum(message, pseudo)
}

/// A VRRPv3 advertisement, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    /// Virtual router identifier.
    pub vrid: u8,
    /// Sender's priority (0: releasing, 255: owner).
    pub priority: u8,
    /// Advertisement interval, centiseconds.
    pub max_adver_int: u16,
    /// The virtual addresses.
    pub addresses: Vec<Ipv4Addr, MAX_ADDRESSES>,
}

impl Repr {
    /// Parses an advert sent from `src` to `dst` (checksum included).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<Repr, WireError> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(WireError::Version(packet.version()));
        }
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(WireError::Type(packet.msg_type()));
        }
        if !packet.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        let mut addresses = Vec::new();
        for a in packet.addresses() {
            addresses.push(a).map_err(|_| WireError::TooManyAddresses)?;
        }
        Ok(Repr {
            vrid: packet.vrid(),
            priority: packet.priority(),
            max_adver_int: packet.max_adver_int(),
            addresses,
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + 4 * self.addresses.len()
    }

    /// Writes the advert into `packet` (at least [`Repr::buffer_len`] bytes) with the
    /// checksum for an IPv4 packet from `src` to `dst`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) {
        packet.set_version_type(VERSION, TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_count(self.addresses.len() as u8);
        packet.set_max_adver_int(self.max_adver_int);
        for (i, a) in self.addresses.iter().enumerate() {
            packet.set_address(i, *a);
        }
        packet.fill_checksum(src, dst);
    }
}

// ---------------------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------------------

/// The RFC's three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// Not taking part (before startup, after shutdown).
    Initialize,
    /// Watching the master.
    Backup,
    /// Owning the virtual addresses.
    Master,
}

/// Settings of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Virtual router identifier, 1 to 255.
    pub vrid: u8,
    /// Priority, 1 to 255 (255: the address owner).
    pub priority: u8,
    /// Whether a higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// Advertisement interval, centiseconds (1 to 4095).
    pub advert_interval_cs: u16,
    /// This node's primary IPv4 address (the source of its adverts, and the tie-break).
    pub primary: Ipv4Addr,
    /// The virtual addresses.
    pub addresses: Vec<Ipv4Addr, MAX_ADDRESSES>,
    /// Whether preemption waits for [`Router::set_synced`] (Fulcrum's flow-table
    /// hold-off).
    pub hold_preempt_until_synced: bool,
}

impl RouterConfig {
    /// The router settings of a validated config's `[appliance.ha]` table, or `None`
    /// without one.
    pub fn from_config(config: &fulcrum_model::config::Config) -> Option<RouterConfig> {
        let ha = config.appliance.ha.as_ref()?;
        Some(RouterConfig {
            vrid: ha.vrid,
            priority: ha.priority,
            preempt: ha.preempt,
            advert_interval_cs: ha.advert_interval_cs(),
            primary: config.appliance.address,
            addresses: ha.virtual_addresses(config).iter().copied().collect(),
            hold_preempt_until_synced: ha.hold_preempt_until_synced,
        })
    }
}

/// What [`Router::reconfigure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reconfigure {
    /// The settings were the same.
    Unchanged,
    /// In effect now.
    Applied,
    /// A new VRID or primary address while master: nothing changed.
    Refused,
}

/// Why an advert was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Discard {
    /// Not IPv4, not protocol 112, or shorter than its headers say.
    NotVrrp,
    /// TTL other than 255 (§7.1: it crossed a router).
    Ttl(u8),
    /// The VRRP packet is malformed or fails its checksum.
    Wire(WireError),
    /// Another virtual router's advert.
    OtherVrid(u8),
    /// An interval of zero.
    ZeroInterval,
    /// Our own advert, looped back.
    Own,
    /// We are the address owner: adverts change nothing.
    Owner,
    /// Initialize state: not taking part.
    NotRunning,
    /// A lower-priority advert while we preempt (backup) or lead (master).
    Lower,
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Adverts sent.
    pub adverts_sent: u32,
    /// Adverts received and used.
    pub adverts_received: u32,
    /// Received packets refused by the §7.1 checks.
    pub refused: u32,
    /// Valid adverts ignored for their lower priority (we preempt or lead).
    pub lower_ignored: u32,
    /// Adverts whose address list differs from ours (still used).
    pub address_mismatch: u32,
    /// Priority-0 adverts heard.
    pub releases_heard: u32,
    /// Times this node became master.
    pub became_master: u32,
    /// Gratuitous ARPs sent.
    pub garps_sent: u32,
}

/// Why the role changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Cause {
    /// Startup or shutdown.
    Admin,
    /// Operator promote or demote.
    Operator,
    /// `Master_Down_Timer` ran out (no master heard, or a master released, or preemption).
    MasterDown,
    /// A better master was heard (§6.4.3).
    BetterMaster,
    /// The owner started up, or synchronisation finished for a held-off owner.
    Owner,
}

/// Something the runner reports (logs, events, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RoleChange {
    /// Previous role.
    pub from: Role,
    /// New role.
    pub to: Role,
    /// Why.
    pub cause: Cause,
    /// When, ms.
    pub at: u64,
}

/// Capacity of the role-change queue; older changes are dropped when the runner does not
/// drain it (counted in [`Router::lost_events`]).
const EVENTS: usize = 8;

/// One virtual router (sans-IO).
#[derive(Debug, Clone)]
pub struct Router {
    config: RouterConfig,
    role: Role,
    admin_priority: Option<u8>,
    synced: bool,
    /// Whether this node holds the group's flow table (see [`Router::set_holds_table`]).
    holds_table: bool,
    /// While master: since when, or since the last advert of another master heard.
    master_since: u64,
    /// `Master_Adver_Interval`, centiseconds.
    master_adver_cs: u16,
    /// Adver_Timer (master) or Master_Down_Timer (backup), ms.
    deadline: Option<u64>,
    advert_pending: Option<u8>,
    garp_next: usize,
    master: Option<Ipv4Addr>,
    master_priority: u8,
    last_advert_at: Option<u64>,
    events: heapless::Deque<RoleChange, EVENTS>,
    lost_events: u32,
    stats: Stats,
}

impl Router {
    /// A router of no group yet (VRID 1, priority 1, no addresses) in Initialize: a
    /// placeholder built at compile time, for state a board keeps in a static
    /// ([`crate::ha::Ha::IDLE`]); replaced with [`Router::new`] before use.
    pub const IDLE: Router = Router {
        config: RouterConfig {
            vrid: 1,
            priority: 1,
            preempt: false,
            advert_interval_cs: 100,
            primary: Ipv4Addr::UNSPECIFIED,
            addresses: Vec::new(),
            hold_preempt_until_synced: false,
        },
        role: Role::Initialize,
        admin_priority: None,
        synced: false,
        holds_table: false,
        master_since: 0,
        master_adver_cs: 100,
        deadline: None,
        advert_pending: None,
        garp_next: usize::MAX,
        master: None,
        master_priority: 0,
        last_advert_at: None,
        events: heapless::Deque::new(),
        lost_events: 0,
        stats: Stats {
            adverts_sent: 0,
            adverts_received: 0,
            refused: 0,
            lower_ignored: 0,
            address_mismatch: 0,
            releases_heard: 0,
            became_master: 0,
            garps_sent: 0,
        },
    };

    /// A router in Initialize; call [`Router::startup`]. The config is taken as
    /// validated (`Config::validate` checks `[appliance.ha]`); out-of-range numbers are
    /// clamped rather than trusted (VRID ≥ 1, priority ≥ 1, interval 1..=4095 cs).
    pub fn new(mut config: RouterConfig) -> Self {
        config.vrid = config.vrid.max(1);
        config.priority = config.priority.max(1);
        config.advert_interval_cs = config.advert_interval_cs.clamp(1, MAX_INTERVAL_CS);
        let interval = config.advert_interval_cs;
        Router {
            config,
            role: Role::Initialize,
            admin_priority: None,
            synced: false,
            holds_table: false,
            master_since: 0,
            master_adver_cs: interval,
            deadline: None,
            advert_pending: None,
            garp_next: usize::MAX,
            master: None,
            master_priority: 0,
            last_advert_at: None,
            events: heapless::Deque::new(),
            lost_events: 0,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The priority in use: configured, or the operator's override.
    pub fn priority(&self) -> u8 {
        self.admin_priority.unwrap_or(self.config.priority)
    }

    /// Whether the node counts as synchronised for preemption.
    pub fn synced(&self) -> bool {
        self.synced || !self.config.hold_preempt_until_synced
    }

    /// Whether the node counts as holding the group's flow table: synchronised now, or
    /// told so by [`Router::set_holds_table`] (or the hold-off is off).
    pub fn holds_table(&self) -> bool {
        self.holds_table || self.synced()
    }

    /// The priority a master advertises and compares adverts with: the priority in use,
    /// or [`HELD_OFF_PRIORITY`] while it does not hold the flow table (module docs).
    pub fn master_priority(&self) -> u8 {
        if self.holds_table() {
            self.priority()
        } else {
            HELD_OFF_PRIORITY.min(self.priority())
        }
    }

    /// `Master_Adver_Interval` in ms (learned from the master while backup).
    pub fn master_adver_interval_ms(&self) -> u64 {
        u64::from(self.master_adver_cs) * 10
    }

    /// `Skew_Time` in ms, for our priority and the current `Master_Adver_Interval`.
    pub fn skew_time_ms(&self) -> u64 {
        (256 - u64::from(self.priority())) * self.master_adver_interval_ms() / 256
    }

    /// `Master_Down_Interval` in ms.
    pub fn master_down_interval_ms(&self) -> u64 {
        3 * self.master_adver_interval_ms() + self.skew_time_ms()
    }

    /// The master last heard (its primary address), or ourselves while master.
    pub fn master(&self) -> Option<Ipv4Addr> {
        match self.role {
            Role::Master => Some(self.config.primary),
            _ => self.master,
        }
    }

    /// When the last advert was used, ms.
    pub fn last_advert_at(&self) -> Option<u64> {
        self.last_advert_at
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Role changes dropped because the queue was full.
    pub fn lost_events(&self) -> u32 {
        self.lost_events
    }

    /// The next role change to report.
    pub fn poll_event(&mut self) -> Option<RoleChange> {
        self.events.pop_front()
    }

    /// When [`Router::handle_timeout`] must next be called, ms.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadline
    }

    fn set_role(&mut self, now: u64, to: Role, cause: Cause) {
        let from = self.role;
        if from == to {
            return;
        }
        self.role = to;
        if to == Role::Master {
            self.stats.became_master = self.stats.became_master.wrapping_add(1);
        }
        let change = RoleChange {
            from,
            to,
            cause,
            at: now,
        };
        if self.events.is_full() {
            self.events.pop_front();
            self.lost_events = self.lost_events.wrapping_add(1);
        }
        let _ = self.events.push_back(change);
    }

    fn become_master(&mut self, now: u64, cause: Cause) {
        self.master_since = now;
        self.advert_pending = Some(self.master_priority());
        self.garp_next = 0;
        self.master_adver_cs = self.config.advert_interval_cs;
        self.deadline = Some(now + u64::from(self.config.advert_interval_cs) * 10);
        self.set_role(now, Role::Master, cause);
    }

    fn become_backup(&mut self, now: u64, cause: Cause) {
        self.garp_next = usize::MAX;
        self.deadline = Some(now + self.master_down_interval_ms());
        self.set_role(now, Role::Backup, cause);
    }

    /// The RFC's Startup event (from Initialize; ignored otherwise).
    pub fn startup(&mut self, now: u64) {
        if self.role != Role::Initialize {
            return;
        }
        if self.priority() == OWNER_PRIORITY && self.synced() {
            self.become_master(now, Cause::Owner);
        } else {
            self.master_adver_cs = self.config.advert_interval_cs;
            self.become_backup(now, Cause::Admin);
        }
    }

    /// The RFC's Shutdown event: a master releases with a priority-0 advert (still to be
    /// sent by [`Router::poll_transmit`]); every role ends in Initialize.
    pub fn shutdown(&mut self, now: u64) {
        self.garp_next = usize::MAX;
        self.advert_pending = None;
        if self.role == Role::Master {
            self.advert_pending = Some(RELEASE_PRIORITY);
        }
        self.deadline = None;
        self.set_role(now, Role::Initialize, Cause::Admin);
    }

    /// Operator: run with priority 254 and take over now.
    pub fn promote(&mut self, now: u64) {
        self.admin_priority = Some(PROMOTED_PRIORITY.max(self.config.priority));
        if self.role == Role::Backup {
            self.become_master(now, Cause::Operator);
        }
    }

    /// Operator: run with priority 1; a master releases (priority-0 advert) and becomes a
    /// backup.
    pub fn demote(&mut self, now: u64) {
        self.admin_priority = Some(DEMOTED_PRIORITY);
        if self.role == Role::Master {
            self.advert_pending = Some(RELEASE_PRIORITY);
            self.become_backup(now, Cause::Operator);
        }
    }

    /// Operator: back to the configured priority (a master advertises it at once).
    pub fn clear_admin(&mut self, now: u64) {
        self.admin_priority = None;
        if self.role == Role::Master {
            self.advert_pending = Some(self.master_priority());
            self.deadline = Some(now + u64::from(self.config.advert_interval_cs) * 10);
        }
    }

    /// New settings while running (a config push): priority, preemption, the hold-off,
    /// the advert interval and the addresses take effect at once. A master advertises
    /// the new priority and interval now, and announces added addresses with gratuitous
    /// ARPs. A new VRID or primary address makes this a different router: it is refused
    /// while master ([`Reconfigure::Refused`]; demote first); otherwise the router
    /// starts over as a backup of the new group.
    pub fn reconfigure(&mut self, now: u64, mut config: RouterConfig) -> Reconfigure {
        config.vrid = config.vrid.max(1);
        config.priority = config.priority.max(1);
        config.advert_interval_cs = config.advert_interval_cs.clamp(1, MAX_INTERVAL_CS);
        if config == self.config {
            return Reconfigure::Unchanged;
        }
        let identity = config.vrid != self.config.vrid || config.primary != self.config.primary;
        if identity && self.role == Role::Master {
            return Reconfigure::Refused;
        }
        let advertised = self.master_priority();
        let interval = config.advert_interval_cs != self.config.advert_interval_cs;
        let added = config
            .addresses
            .iter()
            .any(|a| !self.config.addresses.contains(a));
        self.config = config;
        match self.role {
            Role::Master => {
                if interval || self.master_priority() != advertised {
                    self.master_adver_cs = self.config.advert_interval_cs;
                    self.advert_pending = Some(self.master_priority());
                    self.deadline = Some(now + u64::from(self.config.advert_interval_cs) * 10);
                }
                if added {
                    self.garp_next = 0;
                }
            }
            Role::Backup if identity => {
                // Another group: nothing heard from it yet.
                self.master = None;
                self.master_priority = 0;
                self.last_advert_at = None;
                self.master_adver_cs = self.config.advert_interval_cs;
                self.deadline = Some(now + self.master_down_interval_ms());
            }
            Role::Backup | Role::Initialize => {}
        }
        Reconfigure::Applied
    }

    /// Fulcrum's hold-off: whether the flow table is synchronised with the master's.
    /// A held-off owner backup takes over as soon as it is synchronised.
    pub fn set_synced(&mut self, now: u64, synced: bool) {
        let advertised = self.master_priority();
        self.synced = synced;
        if synced && self.role == Role::Backup && self.priority() == OWNER_PRIORITY {
            self.become_master(now, Cause::Owner);
        }
        self.readvertise(now, advertised);
    }

    /// Fulcrum's split-brain rule: whether this node holds the group's flow table (it
    /// received a complete table, or a peer acknowledged its complete table; the runner
    /// clears it when a snapshot starts replacing the table). A master that does not
    /// advertises [`HELD_OFF_PRIORITY`] (module docs).
    pub fn set_holds_table(&mut self, now: u64, holds: bool) {
        let advertised = self.master_priority();
        self.holds_table = holds;
        self.readvertise(now, advertised);
    }

    /// A master whose advertised priority changed says so at once.
    fn readvertise(&mut self, now: u64, before: u8) {
        if self.role == Role::Master && self.master_priority() != before {
            self.advert_pending = Some(self.master_priority());
            self.deadline = Some(now + u64::from(self.config.advert_interval_cs) * 10);
        }
    }

    /// Timers: the master advertises, a backup whose master went silent takes over.
    pub fn handle_timeout(&mut self, now: u64) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.role {
            Role::Master => {
                if !self.holds_table()
                    && now >= self.master_since + HOLD_MDIS * self.master_down_interval_ms()
                {
                    // Master alone for that long: the only table there is.
                    self.holds_table = true;
                }
                self.advert_pending = Some(self.master_priority());
                self.deadline = Some(now + u64::from(self.config.advert_interval_cs) * 10);
            }
            Role::Backup => self.become_master(now, Cause::MasterDown),
            Role::Initialize => self.deadline = None,
        }
    }

    /// Handles a received IPv4 packet (header included), as a raw socket or the data
    /// path's punt delivers it.
    pub fn handle_ipv4(&mut self, now: u64, packet: &[u8]) -> Result<(), Discard> {
        let result = (|| {
            let ip = Ipv4Packet::new_checked(packet).map_err(|_| Discard::NotVrrp)?;
            if ip.next_header() != IpProtocol::Unknown(PROTOCOL) {
                return Err(Discard::NotVrrp);
            }
            let header = usize::from(ip.header_len());
            let total = usize::from(ip.total_len());
            let payload = packet.get(header..total).ok_or(Discard::NotVrrp)?;
            Ok((ip.src_addr(), ip.dst_addr(), ip.hop_limit(), payload))
        })();
        match result {
            Ok((src, dst, ttl, payload)) => self.handle_advert(now, src, dst, ttl, payload),
            Err(e) => {
                self.stats.refused = self.stats.refused.wrapping_add(1);
                Err(e)
            }
        }
    }

    /// Handles a VRRP message `bytes` that arrived in an IPv4 packet from `src` to `dst`
    /// with `ttl`.
    pub fn handle_advert(
        &mut self,
        now: u64,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        bytes: &[u8],
    ) -> Result<(), Discard> {
        let verdict = self.check(src, dst, ttl, bytes);
        let packet = match verdict {
            Ok(p) => p,
            Err(e) => {
                if !matches!(e, Discard::OtherVrid(_) | Discard::Own) {
                    self.stats.refused = self.stats.refused.wrapping_add(1);
                }
                return Err(e);
            }
        };
        if self.role == Role::Initialize {
            return Err(Discard::NotRunning);
        }
        if self.priority() == OWNER_PRIORITY && self.synced() {
            return Err(Discard::Owner);
        }
        let count = usize::from(packet.count());
        if count != self.config.addresses.len()
            || packet
                .addresses()
                .any(|a| !self.config.addresses.contains(&a))
        {
            self.stats.address_mismatch = self.stats.address_mismatch.wrapping_add(1);
        }
        let priority = packet.priority();
        let interval = packet.max_adver_int();
        let mine = self.priority();
        match self.role {
            Role::Backup => {
                if priority == RELEASE_PRIORITY {
                    self.stats.releases_heard = self.stats.releases_heard.wrapping_add(1);
                    self.deadline = Some(now + self.skew_time_ms());
                    self.note_master(now, src, priority);
                    return Ok(());
                }
                let preempting = self.config.preempt && self.synced();
                if !preempting || priority >= mine {
                    self.master_adver_cs = interval;
                    self.deadline = Some(now + self.master_down_interval_ms());
                    self.note_master(now, src, priority);
                    Ok(())
                } else {
                    self.stats.lower_ignored = self.stats.lower_ignored.wrapping_add(1);
                    Err(Discard::Lower)
                }
            }
            Role::Master => {
                let mine = self.master_priority();
                if priority != RELEASE_PRIORITY {
                    // Not alone: the hold time starts again.
                    self.master_since = now;
                }
                if priority == RELEASE_PRIORITY {
                    self.stats.releases_heard = self.stats.releases_heard.wrapping_add(1);
                    self.advert_pending = Some(mine);
                    self.deadline = Some(now + u64::from(self.config.advert_interval_cs) * 10);
                    return Ok(());
                }
                let better = priority > mine
                    || (priority == mine && u32::from(src) > u32::from(self.config.primary));
                if better {
                    self.master_adver_cs = interval;
                    self.note_master(now, src, priority);
                    self.become_backup(now, Cause::BetterMaster);
                    Ok(())
                } else {
                    self.stats.lower_ignored = self.stats.lower_ignored.wrapping_add(1);
                    Err(Discard::Lower)
                }
            }
            Role::Initialize => Err(Discard::NotRunning),
        }
    }

    fn note_master(&mut self, now: u64, src: Ipv4Addr, priority: u8) {
        self.stats.adverts_received = self.stats.adverts_received.wrapping_add(1);
        self.master = Some(src);
        self.master_priority = priority;
        self.last_advert_at = Some(now);
    }

    /// The §7.1 checks up to the VRID.
    fn check<'b>(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        bytes: &'b [u8],
    ) -> Result<Packet<&'b [u8]>, Discard> {
        if src == self.config.primary {
            return Err(Discard::Own);
        }
        if ttl != TTL {
            return Err(Discard::Ttl(ttl));
        }
        let packet = Packet::new_checked(bytes).map_err(Discard::Wire)?;
        if packet.version() != VERSION {
            return Err(Discard::Wire(WireError::Version(packet.version())));
        }
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(Discard::Wire(WireError::Type(packet.msg_type())));
        }
        if packet.vrid() != self.config.vrid {
            return Err(Discard::OtherVrid(packet.vrid()));
        }
        if !packet.verify_checksum(src, dst) {
            return Err(Discard::Wire(WireError::Checksum));
        }
        if packet.max_adver_int() == 0 {
            return Err(Discard::ZeroInterval);
        }
        Ok(packet)
    }

    /// The next frame to send (an advert, then one gratuitous ARP per virtual address
    /// after becoming master), written into `buf` as a whole Ethernet frame; returns its
    /// length. `buf` of [`MAX_ADVERT_FRAME`] bytes always suffices; a shorter one that
    /// cannot hold the frame leaves it queued and returns `None`.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        if let Some(priority) = self.advert_pending {
            let len = self.emit_advert(priority, buf)?;
            self.advert_pending = None;
            self.stats.adverts_sent = self.stats.adverts_sent.wrapping_add(1);
            return Some(len);
        }
        if self.role == Role::Master
            && let Some(&vip) = self.config.addresses.get(self.garp_next)
        {
            let len = self.emit_garp(vip, buf)?;
            self.garp_next += 1;
            self.stats.garps_sent = self.stats.garps_sent.wrapping_add(1);
            return Some(len);
        }
        None
    }

    /// Whether [`Router::poll_transmit`] has a frame.
    pub fn has_transmit(&self) -> bool {
        self.advert_pending.is_some()
            || (self.role == Role::Master && self.garp_next < self.config.addresses.len())
    }

    fn emit_advert(&self, priority: u8, buf: &mut [u8]) -> Option<usize> {
        let repr = Repr {
            vrid: self.config.vrid,
            priority,
            max_adver_int: self.config.advert_interval_cs,
            addresses: self.config.addresses.clone(),
        };
        let vrrp_len = repr.buffer_len();
        let ip = Ipv4Repr {
            src_addr: self.config.primary,
            dst_addr: GROUP,
            next_header: IpProtocol::Unknown(PROTOCOL),
            payload_len: vrrp_len,
            hop_limit: TTL,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(virtual_mac(self.config.vrid)),
            dst_addr: EthernetAddress(GROUP_MAC),
            ethertype: EthernetProtocol::Ipv4,
        };
        let len = eth.buffer_len() + ip.buffer_len() + vrrp_len;
        let frame = buf.get_mut(..len)?;
        let mut f = EthernetFrame::new_unchecked(&mut *frame);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p, &ChecksumCapabilities::default());
        // Internetwork control, as keepalived and routers send it.
        p.set_dscp(48);
        p.fill_checksum();
        let mut v = Packet::new_unchecked(p.payload_mut());
        repr.emit(&mut v, self.config.primary, GROUP);
        Some(len)
    }

    fn emit_garp(&self, vip: Ipv4Addr, buf: &mut [u8]) -> Option<usize> {
        let mac = EthernetAddress(virtual_mac(self.config.vrid));
        let eth = EthernetRepr {
            src_addr: mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: vip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: vip,
        };
        let frame = buf.get_mut(..ARP_FRAME_LEN)?;
        let mut f = EthernetFrame::new_unchecked(&mut *frame);
        eth.emit(&mut f);
        arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        Some(ARP_FRAME_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An advert built by hand from RFC 5798 §5.1: VRID 51, priority 100, interval 100 cs,
    /// one address 192.168.1.1, from 192.168.1.10. The checksum was worked out by hand:
    /// the 16-bit words of the pseudo-header (c0a8 010a e000 0012 0070 000c) and of the
    /// message with a zero checksum (3133 6401 0064 0000 c0a8 0101) sum to 0x2f981, folded
    /// 0xf983, complemented 0x067c.
    const HAND_BUILT: [u8; 12] = [
        0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x06, 0x7c, 192, 168, 1, 1,
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

    #[test]
    fn hand_built_advert_parses_and_checksums() {
        let p = Packet::new_checked(&HAND_BUILT[..]).unwrap();
        assert_eq!((p.version(), p.msg_type()), (3, 1));
        assert_eq!((p.vrid(), p.priority(), p.count()), (51, 100, 1));
        assert_eq!(p.max_adver_int(), 100);
        assert_eq!(p.checksum(), 0x067c);
        assert!(p.verify_checksum(SRC, GROUP));
        // The pseudo-header counts: another source breaks the checksum.
        assert!(!p.verify_checksum(Ipv4Addr::new(192, 168, 1, 11), GROUP));
        let repr = Repr::parse(&p, SRC, GROUP).unwrap();
        assert_eq!(repr.addresses.as_slice(), &[Ipv4Addr::new(192, 168, 1, 1)]);
        let mut out = [0u8; 12];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), SRC, GROUP);
        assert_eq!(out, HAND_BUILT);
    }

    /// An advert keepalived 2.2.7 sent (VRID 51, priority 150, 1 s, two addresses), as
    /// a raw socket received it in a network namespace, IPv4 header included.
    const KEEPALIVED_ADVERT: [u8; 36] = [
        0x45, 0xc0, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x18, 0xe4, 192, 168, 1, 10,
        224, 0, 0, 18, 0x31, 0x33, 0x96, 0x02, 0x00, 0x64, 0x12, 0xcc, 192, 168, 1, 1, 192, 168, 1,
        2,
    ];

    #[test]
    fn keepalived_advert_is_understood_and_ours_is_byte_identical() {
        let ip = Ipv4Packet::new_checked(&KEEPALIVED_ADVERT[..]).unwrap();
        assert!(ip.verify_checksum());
        let src = Ipv4Addr::new(192, 168, 1, 10);
        let v = Packet::new_checked(ip.payload()).unwrap();
        let repr = Repr::parse(&v, src, GROUP).unwrap();
        assert_eq!(
            (repr.vrid, repr.priority, repr.max_adver_int),
            (51, 150, 100)
        );
        assert_eq!(
            repr.addresses.as_slice(),
            &[Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::new(192, 168, 1, 2)]
        );
        // The same advert from our emitter: the same 16 bytes, checksum included.
        let mut out = [0u8; 16];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), src, GROUP);
        assert_eq!(out, KEEPALIVED_ADVERT[20..]);
        // And a backup follows it.
        let mut r = router(100);
        r.config.addresses = repr.addresses.clone();
        r.startup(0);
        assert_eq!(r.handle_ipv4(10, &KEEPALIVED_ADVERT), Ok(()));
        assert_eq!(r.master(), Some(src));
        assert_eq!(r.poll_timeout(), Some(10 + 3000 + 609));
        assert_eq!(r.stats().address_mismatch, 0);
        // Our whole advert frame carries the same IPv4 essentials: TOS 0xc0, TTL 255,
        // protocol 112, to 224.0.0.18.
        let mut r = router(150);
        r.config.primary = src;
        r.config.addresses = repr.addresses.clone();
        r.startup(0);
        r.handle_timeout(r.poll_timeout().unwrap());
        let mut buf = [0u8; MAX_ADVERT_FRAME];
        let len = r.poll_transmit(&mut buf).unwrap();
        let ours = &buf[14..len];
        assert_eq!(ours[1], KEEPALIVED_ADVERT[1], "TOS");
        assert_eq!(ours[8..10], KEEPALIVED_ADVERT[8..10], "TTL and protocol");
        assert_eq!(
            ours[12..],
            KEEPALIVED_ADVERT[12..],
            "addresses and VRRP message"
        );
    }

    #[test]
    fn refusals() {
        let mut b = HAND_BUILT;
        assert_eq!(
            Packet::new_checked(&b[..11]).unwrap_err(),
            WireError::Truncated
        );
        b[0] = 0x21;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, GROUP), Err(WireError::Version(2)));
        let mut b = HAND_BUILT;
        b[0] = 0x32;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, GROUP), Err(WireError::Type(2)));
        let mut b = HAND_BUILT;
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, GROUP), Err(WireError::Checksum));
        // The reserved bits are ignored on receive and written as zero.
        let mut b = HAND_BUILT;
        b[4] |= 0xf0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.max_adver_int(), 100);
    }

    fn router(priority: u8) -> Router {
        let mut addresses = Vec::new();
        addresses.push(Ipv4Addr::new(192, 168, 1, 1)).unwrap();
        Router::new(RouterConfig {
            vrid: 51,
            priority,
            preempt: true,
            advert_interval_cs: 100,
            primary: Ipv4Addr::new(192, 168, 1, 20),
            addresses,
            hold_preempt_until_synced: false,
        })
    }

    /// The advertised priority of the next advert `r` sends.
    fn advertised(r: &mut Router) -> u8 {
        let mut buf = [0u8; MAX_ADVERT_FRAME];
        let len = r.poll_transmit(&mut buf).expect("an advert");
        let f = EthernetFrame::new_checked(&buf[..len]).unwrap();
        let ip = Ipv4Packet::new_checked(f.payload()).unwrap();
        Packet::new_checked(ip.payload()).unwrap().priority()
    }

    #[test]
    fn a_master_without_the_flow_table_runs_held_off_and_yields_to_one_with_it() {
        let mut r = router(200);
        r.config.hold_preempt_until_synced = true;
        r.startup(0);
        // Nobody heard: master by Master_Down_Interval, but without the table.
        r.handle_timeout(r.master_down_interval_ms());
        assert_eq!(r.role(), Role::Master);
        assert_eq!(r.master_priority(), HELD_OFF_PRIORITY);
        assert_eq!(advertised(&mut r), HELD_OFF_PRIORITY);
        // A master of priority 100 (HAND_BUILT) that holds the flows: yield to it.
        assert_eq!(r.handle_advert(5_000, SRC, GROUP, 255, &HAND_BUILT), Ok(()));
        assert_eq!(r.role(), Role::Backup);
        // Synchronised: it preempts as usual (ignores the lower master), and as master
        // it advertises and defends its own priority.
        r.set_synced(5_001, true);
        assert_eq!(
            r.handle_advert(5_002, SRC, GROUP, 255, &HAND_BUILT),
            Err(Discard::Lower)
        );
        r.handle_timeout(5_002 + r.master_down_interval_ms());
        assert_eq!(r.role(), Role::Master);
        assert_eq!(advertised(&mut r), 200);
        assert_eq!(
            r.handle_advert(9_000, SRC, GROUP, 255, &HAND_BUILT),
            Err(Discard::Lower)
        );
        // Its peer synchronised from it: it keeps its priority when its own link from
        // that peer is no longer in sync (the peer started over).
        r.set_holds_table(9_001, true);
        r.set_synced(9_001, false);
        assert_eq!(r.master_priority(), 200);
        // Told that its table is being replaced while master: held off again, and it
        // says so at once.
        r.set_holds_table(9_002, false);
        assert_eq!(advertised(&mut r), HELD_OFF_PRIORITY);
        // Master alone (no other master heard) for HOLD_MDIS Master_Down_Intervals: it
        // carries the only table there is, and defends its priority.
        let mut r = router(200);
        r.config.hold_preempt_until_synced = true;
        r.startup(0);
        let mdi = r.master_down_interval_ms();
        r.handle_timeout(mdi);
        let hold = mdi + HOLD_MDIS * mdi;
        // Checked at each advert: held off until the hold time, then its own priority.
        loop {
            let at = r.poll_timeout().unwrap();
            r.handle_timeout(at);
            let p = advertised(&mut r);
            if at < hold {
                assert_eq!(p, HELD_OFF_PRIORITY, "at {at}");
            } else {
                assert!(at < hold + r.master_adver_interval_ms());
                assert_eq!(p, 200);
                break;
            }
        }
        assert!(r.holds_table());
        // Without the hold-off (a keepalived peer), nothing of this applies.
        let mut r = router(200);
        r.startup(0);
        r.handle_timeout(r.master_down_interval_ms());
        assert_eq!(advertised(&mut r), 200);
    }

    #[test]
    fn emitted_frame_is_a_well_formed_advert() {
        let mut r = router(255);
        r.startup(0);
        assert_eq!(r.role(), Role::Master);
        let mut buf = [0u8; MAX_ADVERT_FRAME];
        let len = r.poll_transmit(&mut buf).unwrap();
        let f = EthernetFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(f.src_addr().0, [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(f.dst_addr().0, GROUP_MAC);
        let ip = Ipv4Packet::new_checked(f.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.dst_addr(), GROUP);
        assert_eq!(ip.next_header(), IpProtocol::Unknown(112));
        let v = Packet::new_checked(ip.payload()).unwrap();
        let repr = Repr::parse(&v, ip.src_addr(), GROUP).unwrap();
        assert_eq!(
            (repr.vrid, repr.priority, repr.max_adver_int),
            (51, 255, 100)
        );
        // Then the gratuitous ARP for the one address, then nothing.
        let len = r.poll_transmit(&mut buf).unwrap();
        assert_eq!(len, ARP_FRAME_LEN);
        let f = EthernetFrame::new_checked(&buf[..len]).unwrap();
        let arp = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()).unwrap();
        let ArpRepr::EthernetIpv4 {
            source_protocol_addr,
            target_protocol_addr,
            source_hardware_addr,
            ..
        } = arp
        else {
            panic!("not an IPv4 ARP")
        };
        assert_eq!(source_protocol_addr, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(target_protocol_addr, source_protocol_addr);
        assert_eq!(source_hardware_addr.0, virtual_mac(51));
        assert_eq!(r.poll_transmit(&mut buf), None);
        // A buffer too short keeps the frame queued.
        r.handle_timeout(1000);
        assert_eq!(r.poll_transmit(&mut buf[..20]), None);
        assert!(r.poll_transmit(&mut buf).is_some());
    }

    #[test]
    fn hand_built_advert_drives_a_backup() {
        let mut r = router(90);
        r.startup(0);
        assert_eq!(r.role(), Role::Backup);
        // 3 × 1 s + (256 − 90) × 1 s / 256 = 3648 ms.
        assert_eq!(r.poll_timeout(), Some(3648));
        assert_eq!(r.handle_advert(1000, SRC, GROUP, 255, &HAND_BUILT), Ok(()));
        assert_eq!(r.poll_timeout(), Some(4648));
        assert_eq!(r.master(), Some(SRC));
        assert_eq!(
            r.handle_advert(1000, SRC, GROUP, 254, &HAND_BUILT),
            Err(Discard::Ttl(254))
        );
        // A master with lower priority (100 < 110) is not followed when preempting.
        let mut r = router(110);
        r.startup(0);
        assert_eq!(
            r.handle_advert(1000, SRC, GROUP, 255, &HAND_BUILT),
            Err(Discard::Lower)
        );
        // 3 s + (256 − 110) × 1 s / 256 = 3570 ms.
        r.handle_timeout(3569);
        assert_eq!(r.role(), Role::Backup);
        r.handle_timeout(3570);
        assert_eq!(r.role(), Role::Master);
    }

    #[test]
    fn the_owner_leads_at_once_unless_held_off_until_synced() {
        let owner = |hold| {
            let mut r = router(255);
            r.config.addresses = [r.config.primary].into_iter().collect();
            r.config.hold_preempt_until_synced = hold;
            r
        };
        let mut r = owner(false);
        r.startup(0);
        assert_eq!(r.role(), Role::Master);
        // The owner ignores every advert, even a higher-address one of equal priority.
        let mut advert = HAND_BUILT;
        advert[2] = 255;
        let mut p = Packet::new_unchecked(&mut advert[..]);
        p.fill_checksum(Ipv4Addr::new(192, 168, 1, 200), GROUP);
        assert_eq!(
            r.handle_advert(5, Ipv4Addr::new(192, 168, 1, 200), GROUP, 255, &advert),
            Err(Discard::Owner)
        );
        assert_eq!(r.role(), Role::Master);
        // Held off: a backup that follows the current master until synchronised, then
        // master at once.
        let mut r = owner(true);
        r.startup(0);
        assert_eq!(r.role(), Role::Backup);
        assert_eq!(r.handle_advert(5, SRC, GROUP, 255, &HAND_BUILT), Ok(()));
        r.set_synced(7, true);
        assert_eq!(r.role(), Role::Master);
        let change = r.poll_event().unwrap();
        assert_eq!(
            (change.to, change.cause, change.at),
            (Role::Backup, Cause::Admin, 0)
        );
        let change = r.poll_event().unwrap();
        assert_eq!(
            (change.to, change.cause, change.at),
            (Role::Master, Cause::Owner, 7)
        );
    }

    #[test]
    fn a_master_hearing_a_release_advertises_at_once() {
        let mut r = router(255);
        r.config.priority = 200;
        r.startup(0);
        r.handle_timeout(r.poll_timeout().unwrap());
        assert_eq!(r.role(), Role::Master);
        let mut buf = [0u8; MAX_ADVERT_FRAME];
        while r.poll_transmit(&mut buf).is_some() {}
        let mut release = HAND_BUILT;
        release[2] = 0;
        let mut p = Packet::new_unchecked(&mut release[..]);
        p.fill_checksum(SRC, GROUP);
        assert_eq!(r.handle_advert(3000, SRC, GROUP, 255, &release), Ok(()));
        assert!(r.has_transmit());
        assert_eq!(r.poll_timeout(), Some(4000));
        assert_eq!(r.role(), Role::Master);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn no_bytes_panic_the_receive_path(
                bytes in proptest::collection::vec(any::<u8>(), 0..120),
                ttl in any::<u8>(),
                src in any::<u32>(),
            ) {
                let mut r = router(100);
                r.startup(0);
                let src = Ipv4Addr::from(src);
                let _ = r.handle_advert(1, src, GROUP, ttl, &bytes);
                let _ = r.handle_ipv4(2, &bytes);
                if let Ok(p) = Packet::new_checked(&bytes[..]) {
                    let _ = (p.priority(), p.max_adver_int(), p.addresses().count());
                    let _ = Repr::parse(&p, src, GROUP);
                }
            }

            /// Valid adverts (any priority, interval, source) interleaved with timers and
            /// admin actions: nothing panics, a running router always has a deadline, and
            /// a master never sits behind a better advert it has heard.
            #[test]
            fn valid_advert_sequences_keep_the_invariants(
                events in proptest::collection::vec(
                    (0u8..6, any::<u8>(), 1u16..4096, any::<u8>(), 0u64..3000), 1..60),
                preempt in any::<bool>(), hold in any::<bool>(),
            ) {
                let mut r = router(100);
                r.config.preempt = preempt;
                r.config.hold_preempt_until_synced = hold;
                let mut now = 0;
                r.startup(now);
                let mut buf = [0u8; MAX_ADVERT_FRAME];
                for (kind, priority, interval, last_octet, dt) in events {
                    now += dt;
                    match kind {
                        0..=2 => {
                            let src = Ipv4Addr::new(192, 168, 1, last_octet);
                            let repr = Repr {
                                vrid: 51, priority, max_adver_int: interval,
                                addresses: [Ipv4Addr::new(192, 168, 1, 1)].into_iter().collect(),
                            };
                            let mut b = [0u8; 12];
                            repr.emit(&mut Packet::new_unchecked(&mut b[..]), src, GROUP);
                            let mine = r.priority();
                            let result = r.handle_advert(now, src, GROUP, 255, &b);
                            if r.role() == Role::Master && result.is_err() {
                                // A master only keeps leading against a worse advert.
                                prop_assert!(
                                    src == r.config.primary
                                        || priority == 0
                                        || priority < mine
                                        || (priority == mine && u32::from(src) < u32::from(r.config.primary)),
                                    "master ignored a better advert"
                                );
                            }
                        }
                        3 => {
                            r.handle_timeout(now);
                            // After the timers ran, the next deadline is ahead.
                            prop_assert!(r.poll_timeout().is_some_and(|t| t > now));
                        }
                        4 => match priority % 4 {
                            0 => r.promote(now),
                            1 => r.demote(now),
                            2 => r.clear_admin(now),
                            _ => r.set_synced(now, priority % 8 == 3),
                        },
                        _ => {
                            if let Some(t) = r.poll_timeout() {
                                now = now.max(t);
                                r.handle_timeout(now);
                            }
                        }
                    }
                    while r.poll_transmit(&mut buf).is_some() {}
                    while r.poll_event().is_some() {}
                    prop_assert_ne!(r.role(), Role::Initialize);
                    prop_assert!(r.poll_timeout().is_some());
                }
            }

            #[test]
            fn repr_round_trips(
                vrid in 1u8.., priority in any::<u8>(), interval in 0u16..4096,
                addrs in proptest::collection::vec(any::<u32>(), 0..MAX_ADDRESSES),
                src in any::<u32>(),
            ) {
                let repr = Repr {
                    vrid, priority, max_adver_int: interval,
                    addresses: addrs.iter().map(|a| Ipv4Addr::from(*a)).collect(),
                };
                let src = Ipv4Addr::from(src);
                let mut buf = [0u8; HEADER_LEN + 4 * MAX_ADDRESSES];
                let mut p = Packet::new_unchecked(&mut buf[..repr.buffer_len()]);
                repr.emit(&mut p, src, GROUP);
                let p = Packet::new_checked(&buf[..repr.buffer_len()]).unwrap();
                prop_assert_eq!(Repr::parse(&p, src, GROUP), Ok(repr));
            }
        }
    }
}
