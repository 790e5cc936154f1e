//! The appliance configuration schema: what an operator writes (TOML on the host) and
//! what the management protocol carries to the MCU (postcard), one definition for both.
//!
//! The schema is `no_std` and allocation-free: names are `heapless::String`s and lists are
//! `heapless::Vec`s with the appliance's hard limits as capacities, so a config that
//! deserializes at all already fits the tables. [`Config::validate`] checks everything
//! the types cannot say (unique names, addresses that do not collide, modes that need
//! settings, limits of the FPGA tables) and reports each problem with the *path* of the
//! offending field (`service[1].backend[0].port`), which the host maps back to a file,
//! line and column.

use core::fmt;
use core::net::Ipv4Addr;

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::l7::{L7Settings, MAX_L7_SERVICES, PoolName};
use crate::maglev::is_prime;

/// Most services one appliance holds (service table entries).
pub const MAX_SERVICES: usize = 16;
/// Most backends one service holds.
pub const MAX_BACKENDS_PER_SERVICE: usize = 32;
/// Most backends the appliance holds across all services (backend table entries).
pub const MAX_BACKENDS: usize = 256;
/// Longest service or backend name, in bytes.
pub const MAX_NAME: usize = 32;
/// Most addresses in the full-NAT source pool.
pub const MAX_SNAT_ADDRS: usize = 8;
/// Longest HTTP health-check path or expected body.
pub const MAX_HTTP_TEXT: usize = 64;

/// A name of a service, backend or appliance.
pub type Name = String<MAX_NAME>;

/// The whole configuration of one appliance.
///
/// In memory the backends of all services are one flat table of at most [`MAX_BACKENDS`]
/// (the appliance's backend table), each service naming its range of it
/// ([`Service::backends`]): a config takes the room of 256 backends, not of 16 × 32. The
/// file and wire forms are unchanged — each service with its `backend` list inline (see
/// the `Serialize`/`Deserialize` impls) — so paths like `service[1].backend[0].port` keep
/// naming the same field. Read a service's backends with [`Config::backends`]; add,
/// remove or reorder services and backends only through the methods of `Config`
/// ([`Config::push_service`], [`Config::push_backend`], [`Config::remove_backend`],
/// [`Config::retain_services`], ...), which keep the ranges consistent: a `Service`
/// pushed onto `services` directly (say, from another config) would name backends that
/// are not its own. Changing fields in place (`services[i].port`,
/// `backends_mut(i)[j].weight`) is fine.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings of the appliance itself.
    pub appliance: Appliance,
    /// The virtual services, in the order they were written.
    pub services: Vec<Service, MAX_SERVICES>,
    /// The backends of all services, service after service.
    backends: Vec<Backend, MAX_BACKENDS>,
    /// Settings of the L7 (HTTP) services, one table per service of mode `l7`
    /// (see [`crate::l7`]); a service of mode `l7` without one gets the defaults.
    pub l7: Vec<L7Settings, MAX_L7_SERVICES>,
}

/// Settings of the appliance itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appliance {
    /// A name for logs and status output.
    pub name: Name,
    /// The MAC address the appliance uses as source of every frame it rewrites.
    pub mac: MacAddr,
    /// The appliance's own IPv4 address (management, health checks); frames to it are punted to the MCU.
    pub address: Ipv4Addr,
    /// Prefix length of the appliance's network (the MCU's interface), 8 to 30.
    #[serde(default = "default_prefix")]
    pub prefix: u8,
    /// Router the MCU uses for health checks and management beyond its own network.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Outer source address of IP-in-IP and GUE tunnels. Defaults to `address`.
    #[serde(default)]
    pub tunnel_source: Option<Ipv4Addr>,
    /// Source addresses for full NAT; each gives `65536 - snat_port_base` source ports.
    #[serde(default, deserialize_with = "bounded_vec")]
    pub snat_pool: Vec<Ipv4Addr, MAX_SNAT_ADDRS>,
    /// First source port used for full NAT.
    #[serde(default = "default_snat_port_base")]
    pub snat_port_base: u16,
    /// The 40-byte Toeplitz key as 80 hex digits. Defaults to the Microsoft RSS verification key.
    #[serde(default)]
    pub hash_key: Option<HashKey>,
    /// Geometry of the flow table.
    #[serde(default)]
    pub flow_table: FlowTableConfig,
    /// Size of every service's Maglev ring; must be a prime.
    #[serde(default = "default_ring_size")]
    pub maglev_ring_size: u32,
    /// Idle timeouts of flows.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// High availability (VRRP and flow sync); none when the table is absent.
    #[serde(default)]
    pub ha: Option<crate::ha::HaConfig>,
}

/// Deserializes a list into a `heapless::Vec`, saying what the limit is when the list
/// is longer (heapless' own impl only says "invalid length").
pub(crate) fn bounded_vec<'de, D, T, const N: usize>(d: D) -> Result<Vec<T, N>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Visitor<T, const N: usize>(core::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Visitor<T, N> {
        type Value = Vec<T, N>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {N} entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<T, N>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                if out.push(item).is_err() {
                    return Err(serde::de::Error::custom(format_args!(
                        "too many entries: at most {N} are allowed"
                    )));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Visitor(core::marker::PhantomData))
}

fn default_snat_port_base() -> u16 {
    1024
}

fn default_prefix() -> u8 {
    24
}

/// Default Maglev ring size of the host model (the FPGA uses a smaller prime).
pub const DEFAULT_RING_SIZE: u32 = 65537;

fn default_ring_size() -> u32 {
    DEFAULT_RING_SIZE
}

/// Geometry of the set-associative flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTableConfig {
    /// Number of sets; a power of two.
    pub sets: u32,
    /// Entries per set (associativity), 1 to 8.
    pub ways: u32,
}

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            sets: 16384,
            ways: 4,
        }
    }
}

/// Idle timeouts of flow-table entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// A TCP flow that has seen only a SYN.
    pub tcp_syn: Millis,
    /// An established TCP flow.
    pub tcp_established: Millis,
    /// A TCP flow after a FIN or RST.
    pub tcp_closing: Millis,
    /// A UDP flow.
    pub udp: Millis,
    /// A source-IP persistence (stickiness) entry when the service sets none.
    pub sticky: Millis,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn: Millis(10_000),
            tcp_established: Millis(300_000),
            tcp_closing: Millis(10_000),
            udp: Millis(30_000),
            sticky: Millis(300_000),
        }
    }
}

/// One virtual service: a VIP, protocol and port, balanced over a pool of backends.
///
/// Its backends are in its [`Config`]'s flat backend table ([`Config::backends`]); in the
/// file they are written inline, as the service's `backend` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Unique name of the service.
    pub name: Name,
    /// The virtual IP clients connect to.
    pub vip: Ipv4Addr,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The virtual port clients connect to.
    pub port: u16,
    /// How frames reach the backends.
    pub mode: Mode,
    /// How a new flow picks its backend.
    pub algorithm: Algorithm,
    /// Source-IP persistence: a client's new flows go to the backend of its last flow.
    pub sticky: bool,
    /// How long a persistence entry lives without traffic (default: `appliance.timeouts.sticky`).
    pub sticky_timeout: Option<Millis>,
    /// Destination UDP port of GUE encapsulation (mode `gue`).
    pub gue_port: u16,
    /// Health checking of the backends.
    pub health: HealthCheck,
    /// Where the service's backends are in its config's backend table ([`Config::backends`]);
    /// `backends.len()` is how many it has.
    pub backends: BackendRange,
}

/// Default GUE destination port (the one Katran and Linux `fou` examples use).
pub const DEFAULT_GUE_PORT: u16 = 6080;

fn default_gue_port() -> u16 {
    DEFAULT_GUE_PORT
}

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl Protocol {
    /// The IP protocol number.
    pub const fn ip_number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// How frames of a service reach its backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Destination NAT to the backend; replies are source-NATed back to the VIP.
    /// Backends must route their replies through the appliance.
    #[default]
    Nat,
    /// Destination and source NAT (to the `snat_pool`): backends need no route back.
    Fullnat,
    /// Direct server return: only the destination MAC changes; backends hold the VIP
    /// on a loopback interface and answer clients directly.
    Dsr,
    /// IP-in-IP (protocol 4) encapsulation to the backend, which decapsulates.
    Ipip,
    /// GUE (variant 1, IP directly in UDP) encapsulation to the backend.
    Gue,
    /// HTTP/1.1 inspection on the MCU: every frame of the service is punted.
    L7,
}

impl fmt::Display for Mode {
    /// The name as written in the config (`nat`, `fullnat`, ...).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Nat => "nat",
            Mode::Fullnat => "fullnat",
            Mode::Dsr => "dsr",
            Mode::Ipip => "ipip",
            Mode::Gue => "gue",
            Mode::L7 => "l7",
        })
    }
}

impl Mode {
    /// Whether the backend must listen on the service port: the appliance never sees
    /// the replies (DSR, tunnels), so it cannot translate the port back.
    pub const fn keeps_port(self) -> bool {
        matches!(self, Mode::Dsr | Mode::Ipip | Mode::Gue)
    }

    /// Whether the appliance sees (and rewrites) the backend's replies.
    pub const fn has_return_path(self) -> bool {
        matches!(self, Mode::Nat | Mode::Fullnat)
    }
}

/// How a new flow picks its backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Each new flow to the next available backend in order.
    RoundRobin,
    /// Smooth weighted round robin (as nginx): shares follow weights, evenly interleaved.
    WeightedRoundRobin,
    /// Consistent hash of the client's source address (Maglev ring).
    IpHash,
    /// Consistent hash of the 5-tuple over a weighted Maglev ring.
    #[default]
    Maglev,
    /// Fewest active flows per unit of weight.
    LeastConnections,
    /// Lowest measured response time, scaled by active flows and weight.
    LeastResponseTime,
}

impl Algorithm {
    /// Whether the choice depends only on the packet (so a mid-flow packet of an unknown
    /// flow lands where its SYN did, e.g. after a restart or failover).
    pub const fn is_stateless(self) -> bool {
        matches!(self, Algorithm::IpHash | Algorithm::Maglev)
    }
}

/// Administrative state of a backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// In rotation while healthy.
    #[default]
    Enabled,
    /// No new flows; established flows continue.
    Drain,
    /// Out of rotation; established flows are moved on their next packet.
    Disabled,
}

/// One backend (real server) of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Name, unique within the service.
    pub name: Name,
    /// The backend's address.
    pub address: Ipv4Addr,
    /// The backend's port (default: the service port). DSR and tunnel modes need it equal to the service port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Relative share of new flows, 1 to 1000 (0 takes the backend out of new-flow selection).
    #[serde(default = "default_weight")]
    pub weight: u16,
    /// The backend's (or its next hop's) MAC address. Without it the MCU resolves it by ARP.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Administrative state.
    #[serde(default)]
    pub state: AdminState,
    /// Mode `l7`: the pool the backend belongs to (routes name pools); without one it is
    /// in the default pool.
    #[serde(default)]
    pub pool: Option<PoolName>,
}

fn default_weight() -> u16 {
    1
}

/// Largest backend weight.
pub const MAX_WEIGHT: u16 = 1000;

/// Kind of health check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// No check: backends are always up.
    None,
    /// A TCP handshake (L4).
    #[default]
    Tcp,
    /// An HTTP/1.1 request with an expected status and optional body match (L7).
    Http,
    /// Redis `PING`, expecting `+PONG`.
    Redis,
    /// Memcached `version`, expecting `VERSION`.
    Memcached,
}

/// Health-check parameters of a service, with HAProxy's meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    /// The kind of check.
    pub kind: CheckKind,
    /// Interval between checks of a backend whose state is settled.
    pub inter: Millis,
    /// Interval while a state change is pending (some but not enough successes/failures).
    pub fastinter: Millis,
    /// Interval while the backend is down.
    pub downinter: Millis,
    /// Consecutive successes that bring a backend up.
    pub rise: u8,
    /// Consecutive failures that take a backend down.
    pub fall: u8,
    /// How long one check may take.
    pub timeout: Millis,
    /// Time over which a recovered backend's weight ramps up to its configured value (0: none).
    pub slowstart: Millis,
    /// Port to check (default: the backend's port).
    pub port: Option<u16>,
    /// HTTP: the request path.
    pub path: String<MAX_HTTP_TEXT>,
    /// HTTP: the expected status code.
    pub expect_status: u16,
    /// HTTP: a string the response body must contain.
    pub expect_body: Option<String<MAX_HTTP_TEXT>>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: CheckKind::Tcp,
            inter: Millis(2000),
            fastinter: Millis(1000),
            downinter: Millis(2000),
            rise: 2,
            fall: 3,
            timeout: Millis(1000),
            slowstart: Millis(0),
            port: None,
            path: String::try_from("/").unwrap_or_default(),
            expect_status: 200,
            expect_body: None,
        }
    }
}

/// A duration in milliseconds. In TOML either an integer (milliseconds) or a string with
/// a unit: `"250ms"`, `"2s"`, `"5m"`, `"1h"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Millis(pub u32);

impl Millis {
    /// Parses `"250ms"`, `"2s"`, `"5m"`, `"1h"` or a bare number of milliseconds.
    pub fn parse(text: &str) -> Option<Millis> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let value: u32 = digits.parse().ok()?;
        let scale = match unit.trim() {
            "" | "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        value.checked_mul(scale).map(Millis)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) && self.0 != 0 {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

impl Serialize for Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: milliseconds as an integer, or a string like \"250ms\", \"2s\", \"5m\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Millis, E> {
                u32::try_from(v)
                    .map(Millis)
                    .map_err(|_| E::custom("duration too long (at most 4294967295 ms)"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Millis, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("a duration cannot be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Millis, E> {
                Millis::parse(v).ok_or_else(|| {
                    E::custom(
                        "bad duration: expected a number with unit ms, s, m or h, like \"2s\"",
                    )
                })
            }
        }
        // Self-describing formats (TOML, JSON) take either form; postcard has no
        // `deserialize_any` and carries the plain `u32` that `serialize` wrote.
        if d.is_human_readable() {
            d.deserialize_any(Visitor)
        } else {
            u32::deserialize(d).map(Millis)
        }
    }
}

/// An Ethernet MAC address, written `"02:00:5e:00:00:01"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses six colon- or dash-separated hex octets.
    pub fn parse(text: &str) -> Option<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let mut text: String<17> = String::new();
            let _ = fmt::write(&mut text, format_args!("{self}"));
            s.serialize_str(&text)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than `<&str>::deserialize`: TOML (and JSON with escapes) hand
        // out owned strings, which a borrowed `&str` cannot take.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MacAddr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MAC address: six hex octets like \"02:00:5e:00:00:01\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MacAddr, E> {
                MacAddr::parse(v).ok_or_else(|| {
                    E::custom("bad MAC address: expected six hex octets like \"02:00:5e:00:00:01\"")
                })
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(Visitor)
        } else {
            <[u8; 6]>::deserialize(d).map(MacAddr)
        }
    }
}

/// A 40-byte Toeplitz hash key, written as 80 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKey(pub [u8; 40]);

impl HashKey {
    /// Parses 80 hex digits (colons, dashes and spaces between bytes are allowed).
    pub fn parse(text: &str) -> Option<HashKey> {
        let mut out = [0u8; 40];
        let mut digits = text.bytes().filter(|b| !matches!(b, b':' | b'-' | b' '));
        for byte in out.iter_mut() {
            let hi = (digits.next()? as char).to_digit(16)?;
            let lo = (digits.next()? as char).to_digit(16)?;
            *byte = (hi * 16 + lo) as u8;
        }
        digits.next().is_none().then_some(HashKey(out))
    }
}

impl Serialize for HashKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let mut text: String<80> = String::new();
            for b in self.0 {
                let _ = fmt::write(&mut text, format_args!("{b:02x}"));
            }
            s.serialize_str(&text)
        } else {
            // serde implements arrays only up to 32 elements: a tuple is what `[u8; 40]`
            // would be (postcard: 40 bytes in a row, no length).
            use serde::ser::SerializeTuple;
            let mut tuple = s.serialize_tuple(self.0.len())?;
            for b in &self.0 {
                tuple.serialize_element(b)?;
            }
            tuple.end()
        }
    }
}

impl<'de> Deserialize<'de> for HashKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HashKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Toeplitz key: 40 bytes as 80 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HashKey, E> {
                HashKey::parse(v)
                    .ok_or_else(|| E::custom("bad hash key: expected 40 bytes as 80 hex digits"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<HashKey, A::Error> {
                let mut key = [0u8; 40];
                for (i, byte) in key.iter_mut().enumerate() {
                    *byte = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(HashKey(key))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(Visitor)
        } else {
            d.deserialize_tuple(40, Visitor)
        }
    }
}

impl Config {
    /// An empty configuration (no services; appliance fields zero or default). `const`, so
    /// the MCU can keep a config buffer in a static without building it on its stack.
    pub const fn empty() -> Config {
        Config {
            appliance: Appliance {
                name: String::new(),
                mac: MacAddr([0; 6]),
                address: Ipv4Addr::UNSPECIFIED,
                prefix: 24,
                gateway: None,
                tunnel_source: None,
                snat_pool: Vec::new(),
                snat_port_base: 1024,
                hash_key: None,
                flow_table: FlowTableConfig {
                    sets: 16384,
                    ways: 4,
                },
                maglev_ring_size: DEFAULT_RING_SIZE,
                timeouts: Timeouts {
                    tcp_syn: Millis(10_000),
                    tcp_established: Millis(300_000),
                    tcp_closing: Millis(10_000),
                    udp: Millis(30_000),
                    sticky: Millis(300_000),
                },
                ha: None,
            },
            services: Vec::new(),
            backends: Vec::new(),
            l7: Vec::new(),
        }
    }

    /// Makes `self` equal to `other`, reusing its memory (one service or backend at a time
    /// on the stack, never a whole config).
    pub fn copy_from(&mut self, other: &Config) {
        self.appliance.clone_from(&other.appliance);
        self.clear_services();
        for (service, backends) in other.services_with_backends() {
            if let Some(index) = self.push_service(service.clone()) {
                for backend in backends {
                    let _ = self.push_backend(index, backend.clone());
                }
            }
        }
        self.l7.clear();
        for settings in &other.l7 {
            let _ = self.l7.push(settings.clone());
        }
    }

    /// The backends of `service` (a service of this config), in the order they were written.
    pub fn backends(&self, service: &Service) -> &[Backend] {
        let r = service.backends;
        let start = usize::from(r.start);
        self.backends
            .get(start..start + usize::from(r.len))
            .unwrap_or(&[])
    }

    /// The backends of service `index`, mutably (empty if there is no such service).
    pub fn backends_mut(&mut self, index: usize) -> &mut [Backend] {
        let Some(r) = self.services.get(index).map(|s| s.backends) else {
            return &mut [];
        };
        let start = usize::from(r.start);
        self.backends
            .get_mut(start..start + usize::from(r.len))
            .unwrap_or(&mut [])
    }

    /// Every service with its backends, in the order they were written.
    pub fn services_with_backends(
        &self,
    ) -> impl Iterator<Item = (&Service, &[Backend])> + Clone + '_ {
        self.services.iter().map(|s| (s, self.backends(s)))
    }

    /// Every backend of every service with its service, in the order they were written.
    pub fn all_backends(&self) -> impl Iterator<Item = (&Service, &Backend)> + Clone + '_ {
        self.services_with_backends()
            .flat_map(|(s, backends)| backends.iter().map(move |b| (s, b)))
    }

    /// Removes every service and backend.
    pub fn clear_services(&mut self) {
        self.services.clear();
        self.backends.clear();
    }

    /// Appends `service` without backends (whatever its `backends` range said); returns its
    /// index, or `None` when there are [`MAX_SERVICES`] already.
    pub fn push_service(&mut self, mut service: Service) -> Option<usize> {
        service.backends = BackendRange {
            start: self.backends.len() as u16,
            len: 0,
        };
        self.services.push(service).ok()?;
        Some(self.services.len() - 1)
    }

    /// Appends `backend` to service `index`; gives it back when there is no such service,
    /// the service has [`MAX_BACKENDS_PER_SERVICE`] or the appliance [`MAX_BACKENDS`].
    pub fn push_backend(&mut self, index: usize, backend: Backend) -> Result<(), Backend> {
        let Some(r) = self.services.get(index).map(|s| s.backends) else {
            return Err(backend);
        };
        if usize::from(r.len) >= MAX_BACKENDS_PER_SERVICE {
            return Err(backend);
        }
        let at = usize::from(r.start) + usize::from(r.len);
        if at > self.backends.len() {
            return Err(backend);
        }
        self.backends.insert(at, backend)?;
        for (k, s) in self.services.iter_mut().enumerate() {
            if k == index {
                s.backends.len += 1;
            } else if usize::from(s.backends.start) >= at {
                s.backends.start += 1;
            }
        }
        Ok(())
    }

    /// Removes backend `b` of service `index`.
    pub fn remove_backend(&mut self, index: usize, b: usize) -> Option<Backend> {
        let r = self.services.get(index)?.backends;
        if b >= usize::from(r.len) {
            return None;
        }
        let at = usize::from(r.start) + b;
        if at >= self.backends.len() {
            return None;
        }
        let removed = self.backends.remove(at);
        for (k, s) in self.services.iter_mut().enumerate() {
            if k == index {
                s.backends.len -= 1;
            } else if usize::from(s.backends.start) > at {
                s.backends.start -= 1;
            }
        }
        Some(removed)
    }

    /// Removes every backend of service `index`.
    pub fn clear_backends(&mut self, index: usize) {
        let Some(r) = self.services.get(index).map(|s| s.backends) else {
            return;
        };
        let (start, len) = (usize::from(r.start), usize::from(r.len));
        if start + len > self.backends.len() {
            return;
        }
        self.backends[start..].rotate_left(len);
        self.backends.truncate(self.backends.len() - len);
        for (k, s) in self.services.iter_mut().enumerate() {
            if k == index {
                s.backends.len = 0;
            } else if usize::from(s.backends.start) >= start + len {
                s.backends.start -= r.len;
            }
        }
    }

    /// Removes service `index` and its backends.
    pub fn remove_service(&mut self, index: usize) -> Option<Service> {
        if index >= self.services.len() {
            return None;
        }
        self.clear_backends(index);
        let mut service = self.services.remove(index);
        service.backends = BackendRange::EMPTY;
        Some(service)
    }

    /// Keeps only the services for which `keep` (given the service and its backends) says
    /// so, with their backends.
    pub fn retain_services(&mut self, mut keep: impl FnMut(&Service, &[Backend]) -> bool) {
        let mut index = 0;
        while index < self.services.len() {
            if keep(&self.services[index], self.backends(&self.services[index])) {
                index += 1;
            } else {
                self.remove_service(index);
            }
        }
    }
}

impl PartialEq for Config {
    /// Equal settings, services and backends (where the backends sit in the flat table
    /// does not matter).
    fn eq(&self, other: &Config) -> bool {
        self.appliance == other.appliance
            && self.l7 == other.l7
            && self.services.len() == other.services.len()
            && self
                .services_with_backends()
                .zip(other.services_with_backends())
                .all(|((a, ab), (b, bb))| a.same_settings(b) && ab == bb)
    }
}

impl Eq for Config {}

/// Where a service's backends are in its config's flat backend table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendRange {
    start: u16,
    len: u16,
}

impl BackendRange {
    /// No backends (what a new [`Service`] gets; [`Config::push_service`] places it).
    pub const EMPTY: BackendRange = BackendRange { start: 0, len: 0 };

    /// How many backends the service has.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the service has no backends.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Service {
    /// Whether every setting but the backends is equal.
    pub fn same_settings(&self, other: &Service) -> bool {
        let Service {
            name,
            vip,
            protocol,
            port,
            mode,
            algorithm,
            sticky,
            sticky_timeout,
            gue_port,
            health,
            backends: _,
        } = self;
        *name == other.name
            && *vip == other.vip
            && *protocol == other.protocol
            && *port == other.port
            && *mode == other.mode
            && *algorithm == other.algorithm
            && *sticky == other.sticky
            && *sticky_timeout == other.sticky_timeout
            && *gue_port == other.gue_port
            && *health == other.health
    }

    /// The port a backend listens on (its own, or the service port).
    pub fn backend_port(&self, backend: &Backend) -> u16 {
        backend.port.unwrap_or(self.port)
    }

    /// The persistence timeout in force.
    pub fn sticky_timeout_or(&self, timeouts: &Timeouts) -> Millis {
        self.sticky_timeout.unwrap_or(timeouts.sticky)
    }
}

impl Appliance {
    /// The outer source address of tunnels.
    pub fn tunnel_source(&self) -> Ipv4Addr {
        self.tunnel_source.unwrap_or(self.address)
    }

    /// The Toeplitz key in force.
    pub fn hash_key(&self) -> [u8; 40] {
        self.hash_key
            .map(|k| k.0)
            .unwrap_or(crate::hash::RSS_DEFAULT_KEY)
    }
}

// ---------------------------------------------------------------------------------------
// File and wire form
// ---------------------------------------------------------------------------------------

/// The file (TOML, JSON) and wire (postcard) form of a [`Config`]: as if the struct were
/// derived with each service's backends inline,
///
/// ```text
/// Config  { appliance, service: [Service], l7: [L7Settings] }
/// Service { name, vip, protocol, port, mode, algorithm, sticky, sticky_timeout,
///           gue_port, health, backend: [Backend] }
/// ```
///
/// with the same field names, defaults and errors (unknown and missing fields, "too many
/// entries"). Deserializing writes the backends straight into the config's flat table, a
/// backend at a time: no service-sized or config-sized value is built on the stack, which
/// is what lets the MCU decode a pushed config with little stack
/// ([`Config::deserialize_service`]).
mod serde_form {
    use core::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, SerializeStruct};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::*;

    const CONFIG_FIELDS: &[&str] = &["appliance", "service", "l7"];
    const SERVICE_FIELDS: &[&str] = &[
        "name",
        "vip",
        "protocol",
        "port",
        "mode",
        "algorithm",
        "sticky",
        "sticky_timeout",
        "gue_port",
        "health",
        "backend",
    ];

    impl Serialize for Config {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut st = s.serialize_struct("Config", CONFIG_FIELDS.len())?;
            st.serialize_field("appliance", &self.appliance)?;
            st.serialize_field("service", &ServiceList(self))?;
            st.serialize_field("l7", &self.l7)?;
            st.end()
        }
    }

    struct ServiceList<'a>(&'a Config);

    impl Serialize for ServiceList<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.services.len()))?;
            for (service, backends) in self.0.services_with_backends() {
                seq.serialize_element(&ServiceForm { service, backends })?;
            }
            seq.end()
        }
    }

    struct ServiceForm<'a> {
        service: &'a Service,
        backends: &'a [Backend],
    }

    impl Serialize for ServiceForm<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let v = self.service;
            let mut st = s.serialize_struct("Service", SERVICE_FIELDS.len())?;
            st.serialize_field("name", &v.name)?;
            st.serialize_field("vip", &v.vip)?;
            st.serialize_field("protocol", &v.protocol)?;
            st.serialize_field("port", &v.port)?;
            st.serialize_field("mode", &v.mode)?;
            st.serialize_field("algorithm", &v.algorithm)?;
            st.serialize_field("sticky", &v.sticky)?;
            st.serialize_field("sticky_timeout", &v.sticky_timeout)?;
            st.serialize_field("gue_port", &v.gue_port)?;
            st.serialize_field("health", &v.health)?;
            st.serialize_field("backend", self.backends)?;
            st.end()
        }
    }

    impl<'de> Deserialize<'de> for Config {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
            let mut config = Config::empty();
            d.deserialize_struct("Config", CONFIG_FIELDS, ConfigVisitor(&mut config))?;
            Ok(config)
        }
    }

    impl Config {
        /// Decodes one service in its file or wire form (its `backend` list inline) and
        /// appends it, its backends going straight into the flat table: the MCU decodes a
        /// pushed config this way, a service at a time.
        pub fn deserialize_service<'de, D: Deserializer<'de>>(
            &mut self,
            d: D,
        ) -> Result<(), D::Error> {
            ServiceSeed(self).deserialize(d)
        }
    }

    /// A field name (or, from formats that number fields, its index) as its index.
    struct Field(&'static [&'static str]);

    impl<'de> DeserializeSeed<'de> for Field {
        type Value = usize;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_identifier(self)
        }
    }

    impl Visitor<'_> for Field {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a field identifier")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v)
                .ok()
                .filter(|&i| i < self.0.len())
                .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
            self.0
                .iter()
                .position(|f| *f == v)
                .ok_or_else(|| E::unknown_field(v, self.0))
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<usize, E> {
            match core::str::from_utf8(v) {
                Ok(v) => self.visit_str(v),
                Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
            }
        }
    }

    /// A list of at most `N`, with [`bounded_vec`]'s message when longer.
    struct Bounded<T, const N: usize>(Vec<T, N>);

    impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            bounded_vec(d).map(Bounded)
        }
    }

    fn too_many<E: de::Error>(limit: usize) -> E {
        E::custom(format_args!(
            "too many entries: at most {limit} are allowed"
        ))
    }

    struct ConfigVisitor<'a>(&'a mut Config);

    impl<'de> Visitor<'de> for ConfigVisitor<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("struct Config")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let config = self.0;
            config.appliance = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(0, &"struct Config with 3 elements"))?;
            seq.next_element_seed(ServicesSeed(config))?
                .ok_or_else(|| de::Error::invalid_length(1, &"struct Config with 3 elements"))?;
            let l7: Bounded<L7Settings, MAX_L7_SERVICES> = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(2, &"struct Config with 3 elements"))?;
            config.l7 = l7.0;
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let config = self.0;
            let mut seen = [false; 3];
            while let Some(field) = map.next_key_seed(Field(CONFIG_FIELDS))? {
                if core::mem::replace(&mut seen[field], true) {
                    return Err(de::Error::duplicate_field(CONFIG_FIELDS[field]));
                }
                match field {
                    0 => config.appliance = map.next_value()?,
                    1 => map.next_value_seed(ServicesSeed(&mut *config))?,
                    _ => config.l7 = map.next_value::<Bounded<_, MAX_L7_SERVICES>>()?.0,
                }
            }
            if !seen[0] {
                return Err(de::Error::missing_field("appliance"));
            }
            Ok(())
        }
    }

    /// The `service` list: replaces the config's services and backends.
    struct ServicesSeed<'a>(&'a mut Config);

    impl<'de> DeserializeSeed<'de> for ServicesSeed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for ServicesSeed<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_SERVICES} entries")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let config = self.0;
            config.clear_services();
            while seq.next_element_seed(ServiceSeed(&mut *config))?.is_some() {}
            Ok(())
        }
    }

    /// One service: appended to the config, its backends to the flat table.
    struct ServiceSeed<'a>(&'a mut Config);

    impl<'de> DeserializeSeed<'de> for ServiceSeed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            if self.0.services.is_full() {
                return Err(too_many(MAX_SERVICES));
            }
            d.deserialize_struct("Service", SERVICE_FIELDS, self)
        }
    }

    /// The fields of a service as they are read; the defaults of the file form.
    struct Fields {
        name: Option<Name>,
        vip: Option<Ipv4Addr>,
        protocol: Option<Protocol>,
        port: Option<u16>,
        mode: Mode,
        algorithm: Algorithm,
        sticky: bool,
        sticky_timeout: Option<Millis>,
        gue_port: u16,
        health: HealthCheck,
        backends: BackendRange,
    }

    impl ServiceSeed<'_> {
        fn finish<E: de::Error>(self, f: Fields) -> Result<(), E> {
            let service = Service {
                name: f.name.ok_or_else(|| E::missing_field("name"))?,
                vip: f.vip.ok_or_else(|| E::missing_field("vip"))?,
                protocol: f.protocol.ok_or_else(|| E::missing_field("protocol"))?,
                port: f.port.ok_or_else(|| E::missing_field("port"))?,
                mode: f.mode,
                algorithm: f.algorithm,
                sticky: f.sticky,
                sticky_timeout: f.sticky_timeout,
                gue_port: f.gue_port,
                health: f.health,
                backends: f.backends,
            };
            self.0
                .services
                .push(service)
                .map_err(|_| too_many(MAX_SERVICES))
        }
    }

    impl<'de> Visitor<'de> for ServiceSeed<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("struct Service")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
                seq: &mut A,
                index: usize,
            ) -> Result<T, A::Error> {
                seq.next_element()?.ok_or_else(|| {
                    de::Error::invalid_length(index, &"struct Service with 11 elements")
                })
            }
            let mut f = Fields {
                name: Some(next(&mut seq, 0)?),
                vip: Some(next(&mut seq, 1)?),
                protocol: Some(next(&mut seq, 2)?),
                port: Some(next(&mut seq, 3)?),
                mode: next(&mut seq, 4)?,
                algorithm: next(&mut seq, 5)?,
                sticky: next(&mut seq, 6)?,
                sticky_timeout: next(&mut seq, 7)?,
                gue_port: next(&mut seq, 8)?,
                health: next(&mut seq, 9)?,
                backends: BackendRange::EMPTY,
            };
            f.backends = seq
                .next_element_seed(BackendsSeed(&mut *self.0))?
                .ok_or_else(|| de::Error::invalid_length(10, &"struct Service with 11 elements"))?;
            self.finish(f)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut f = Fields {
                name: None,
                vip: None,
                protocol: None,
                port: None,
                mode: Mode::default(),
                algorithm: Algorithm::default(),
                sticky: false,
                sticky_timeout: None,
                gue_port: default_gue_port(),
                health: HealthCheck::default(),
                backends: BackendRange::EMPTY,
            };
            let mut seen = [false; 11];
            while let Some(field) = map.next_key_seed(Field(SERVICE_FIELDS))? {
                if core::mem::replace(&mut seen[field], true) {
                    return Err(de::Error::duplicate_field(SERVICE_FIELDS[field]));
                }
                match field {
                    0 => f.name = Some(map.next_value()?),
                    1 => f.vip = Some(map.next_value()?),
                    2 => f.protocol = Some(map.next_value()?),
                    3 => f.port = Some(map.next_value()?),
                    4 => f.mode = map.next_value()?,
                    5 => f.algorithm = map.next_value()?,
                    6 => f.sticky = map.next_value()?,
                    7 => f.sticky_timeout = map.next_value()?,
                    8 => f.gue_port = map.next_value()?,
                    9 => f.health = map.next_value()?,
                    _ => f.backends = map.next_value_seed(BackendsSeed(&mut *self.0))?,
                }
            }
            if !seen[10] {
                // No `backend` list: an empty range at the end of the table.
                f.backends.start = self.0.backends.len() as u16;
            }
            self.finish(f)
        }
    }

    /// A service's `backend` list, appended to the flat table; its range there.
    struct BackendsSeed<'a>(&'a mut Config);

    impl<'de> DeserializeSeed<'de> for BackendsSeed<'_> {
        type Value = BackendRange;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<BackendRange, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for BackendsSeed<'_> {
        type Value = BackendRange;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_BACKENDS_PER_SERVICE} entries")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BackendRange, A::Error> {
            let table = &mut self.0.backends;
            let start = table.len();
            while let Some(backend) = seq.next_element::<Backend>()? {
                if table.len() - start == MAX_BACKENDS_PER_SERVICE {
                    return Err(too_many(MAX_BACKENDS_PER_SERVICE));
                }
                if table.push(backend).is_err() {
                    return Err(de::Error::custom(format_args!(
                        "too many backends: the appliance holds at most {MAX_BACKENDS} in all services together; remove backends"
                    )));
                }
            }
            Ok(BackendRange {
                start: start as u16,
                len: (table.len() - start) as u16,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// Most problems one [`Config::validate`] reports; further ones are only counted
/// ([`ValidationErrors::omitted`]).
pub const MAX_VALIDATION_ERRORS: usize = 32;
/// Longest field path of a [`ValidationError`], in bytes.
pub const MAX_FIELD_PATH: usize = 48;
/// Longest message of a [`ValidationError`], in bytes.
pub const MAX_VALIDATION_MESSAGE: usize = 128;

/// Where a problem is: the TOML path of the field, like `service[1].backend[0].port`.
///
/// Keys are spelled as in the TOML file (`service`, `backend`), indices count from 0 in
/// the order of the file. A path may name a field the file leaves out (its default is
/// what is wrong); the host then points at the enclosing table.
pub type FieldPath = String<MAX_FIELD_PATH>;

/// What is wrong and what to do about it, like `weight 1200 is above the maximum 1000`.
pub type ValidationMessage = String<MAX_VALIDATION_MESSAGE>;

/// One problem [`Config::validate`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// The offending field.
    pub path: FieldPath,
    /// What is wrong and what to do.
    pub message: ValidationMessage,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl core::error::Error for ValidationError {}

/// All problems [`Config::validate`] found, in the order of the file (appliance first,
/// then each service and its backends), at most [`MAX_VALIDATION_ERRORS`] of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationErrors {
    errors: Vec<ValidationError, MAX_VALIDATION_ERRORS>,
    omitted: u32,
}

impl ValidationErrors {
    /// The problems that were kept.
    pub fn as_slice(&self) -> &[ValidationError] {
        &self.errors
    }

    /// Iterates over the problems that were kept.
    pub fn iter(&self) -> core::slice::Iter<'_, ValidationError> {
        self.errors.iter()
    }

    /// Number of problems kept.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.omitted == 0
    }

    /// Number of further problems found after [`MAX_VALIDATION_ERRORS`] were kept.
    pub fn omitted(&self) -> usize {
        self.omitted as usize
    }

    /// Records a problem; the path and message are cut if longer than their capacity.
    pub(crate) fn push(&mut self, path: fmt::Arguments<'_>, message: fmt::Arguments<'_>) {
        if self.errors.is_full() {
            self.omitted = self.omitted.saturating_add(1);
            return;
        }
        let mut error = ValidationError {
            path: String::new(),
            message: String::new(),
        };
        let _ = fmt::write(&mut Truncating(&mut error.path), path);
        let _ = fmt::write(&mut Truncating(&mut error.message), message);
        let _ = self.errors.push(error);
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = core::slice::Iter<'a, ValidationError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for ValidationErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        if self.omitted > 0 {
            write!(f, "\n... and {} more problems", self.omitted)?;
        }
        Ok(())
    }
}

impl core::error::Error for ValidationErrors {}

/// Writes into a `heapless::String` and silently drops what does not fit, so a long
/// message is cut instead of lost.
struct Truncating<'a, const N: usize>(&'a mut String<N>);

impl<const N: usize> fmt::Write for Truncating<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Largest Maglev ring the tables hold (the ring index is 17 bits wide: 65537 is prime).
pub const MAX_RING_SIZE: u32 = 65537;
/// Most flow-table sets.
pub const MAX_FLOW_SETS: u32 = 1 << 20;
/// Most flow-table ways (entries per set).
pub const MAX_FLOW_WAYS: u32 = 8;

/// The smallest prime at or above `n` (for suggestions in messages).
fn prime_at_or_above(n: u32) -> u32 {
    let mut candidate = n.max(2);
    while !is_prime(candidate) {
        candidate += 1;
    }
    candidate
}

/// Whether a MAC address can be the source or destination of unicast frames.
fn is_unicast_mac(mac: MacAddr) -> bool {
    mac.0[0] & 1 == 0 && mac.0 != [0; 6]
}

/// Whether an address can be a host's own unicast address.
fn is_unicast_ip(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast())
}

impl Config {
    /// Number of backends across all services (entries of the backend table).
    pub fn backend_count(&self) -> usize {
        self.services
            .iter()
            .map(|service| service.backends.len())
            .sum()
    }

    /// Checks everything the types cannot: unique names and addresses, settings each
    /// mode needs, and the limits of the FPGA tables. Collects every problem (up to
    /// [`MAX_VALIDATION_ERRORS`]) rather than stopping at the first, each with the path
    /// of the offending field, appliance first and then in the order of the file.
    ///
    /// A service without backends is valid: its traffic is dropped (and counted).
    // The error is big (about 6 KiB) because it holds every problem without allocating;
    // it is returned once per config load, never on the data path.
    #[allow(clippy::result_large_err)]
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        self.validate_appliance(&mut errors);
        if let Some(ha) = &self.appliance.ha {
            ha.validate_into(self, &mut errors);
        }
        for (index, service) in self.services.iter().enumerate() {
            self.validate_service(index, service, &mut errors);
        }
        self.validate_l7(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn validate_appliance(&self, errors: &mut ValidationErrors) {
        let appliance = &self.appliance;
        if appliance.name.is_empty() {
            errors.push(
                format_args!("appliance.name"),
                format_args!("name is empty; give the appliance a name for logs and status"),
            );
        }
        if !is_unicast_mac(appliance.mac) {
            errors.push(
                format_args!("appliance.mac"),
                format_args!(
                    "mac {} is not a unicast address; use one whose first octet is even, like 02:00:00:00:00:01",
                    appliance.mac
                ),
            );
        }
        if !is_unicast_ip(appliance.address) {
            errors.push(
                format_args!("appliance.address"),
                format_args!(
                    "address {} is not a unicast address; give the appliance's own IPv4 address",
                    appliance.address
                ),
            );
        }
        if !(8..=30).contains(&appliance.prefix) {
            errors.push(
                format_args!("appliance.prefix"),
                format_args!(
                    "prefix {} is out of range; give the length of the appliance's network, 8 to 30 (like 24 for a /24)",
                    appliance.prefix
                ),
            );
        } else if let Some(gateway) = appliance.gateway {
            let mask = u32::MAX << (32 - u32::from(appliance.prefix));
            if !is_unicast_ip(gateway)
                || u32::from(gateway) & mask != u32::from(appliance.address) & mask
                || gateway == appliance.address
            {
                errors.push(
                    format_args!("appliance.gateway"),
                    format_args!(
                        "gateway {gateway} is not another unicast address in {}/{}; the router must be on the appliance's network",
                        appliance.address, appliance.prefix
                    ),
                );
            }
        }
        if let Some(source) = appliance.tunnel_source
            && !is_unicast_ip(source)
        {
            errors.push(
                format_args!("appliance.tunnel_source"),
                format_args!("tunnel_source {source} is not a unicast address; use one of the appliance's addresses"),
            );
        }

        let sets = appliance.flow_table.sets;
        if !(1..=MAX_FLOW_SETS).contains(&sets) || !sets.is_power_of_two() {
            let suggestion = sets
                .clamp(1, MAX_FLOW_SETS)
                .next_power_of_two()
                .min(MAX_FLOW_SETS);
            errors.push(
                format_args!("appliance.flow_table.sets"),
                format_args!(
                    "sets {sets} is not a power of two from 1 to {MAX_FLOW_SETS}; use e.g. {suggestion}"
                ),
            );
        }
        let ways = appliance.flow_table.ways;
        if !(1..=MAX_FLOW_WAYS).contains(&ways) {
            errors.push(
                format_args!("appliance.flow_table.ways"),
                format_args!("ways {ways} is outside 1 to {MAX_FLOW_WAYS}; use e.g. 4"),
            );
        }

        self.validate_ring_size(errors);

        let timeouts = &appliance.timeouts;
        for (name, value) in [
            ("tcp_syn", timeouts.tcp_syn),
            ("tcp_established", timeouts.tcp_established),
            ("tcp_closing", timeouts.tcp_closing),
            ("udp", timeouts.udp),
            ("sticky", timeouts.sticky),
        ] {
            if value.0 == 0 {
                errors.push(
                    format_args!("appliance.timeouts.{name}"),
                    format_args!("{name} is 0; give a positive duration like \"30s\""),
                );
            }
        }

        self.validate_snat_pool(errors);
    }

    fn validate_ring_size(&self, errors: &mut ValidationErrors) {
        let size = self.appliance.maglev_ring_size;
        // Maglev's spread needs a ring well larger than the pool; twice the biggest pool
        // is the least that still gives every backend a slot at the highest weight ratio
        // the permutation fill can keep.
        let biggest = self
            .services
            .iter()
            .enumerate()
            .max_by_key(|(index, service)| (service.backends.len(), usize::MAX - index));
        let minimum = biggest.map_or(0, |(_, service)| 2 * service.backends.len() as u32);
        if size > MAX_RING_SIZE {
            errors.push(
                format_args!("appliance.maglev_ring_size"),
                format_args!("maglev_ring_size {size} is above the maximum {MAX_RING_SIZE}; use a prime like {MAX_RING_SIZE}"),
            );
        } else if let Some((index, service)) = biggest.filter(|_| size < minimum) {
            errors.push(
                format_args!("appliance.maglev_ring_size"),
                format_args!(
                    "maglev_ring_size {size} is below twice the {} backends of service[{index}] \"{}\"; use a prime like {}",
                    service.backends.len(),
                    service.name,
                    prime_at_or_above(minimum)
                ),
            );
        } else if !is_prime(size) {
            let suggestion = prime_at_or_above(size);
            errors.push(
                format_args!("appliance.maglev_ring_size"),
                format_args!(
                    "maglev_ring_size {size} is not a prime; use a prime like {suggestion}"
                ),
            );
        }
    }

    fn validate_snat_pool(&self, errors: &mut ValidationErrors) {
        let appliance = &self.appliance;
        for (index, address) in appliance.snat_pool.iter().enumerate() {
            if !is_unicast_ip(*address) {
                errors.push(
                    format_args!("appliance.snat_pool[{index}]"),
                    format_args!("{address} is not a unicast address; use addresses the backends route back to the appliance"),
                );
            } else if let Some(first) = appliance.snat_pool[..index]
                .iter()
                .position(|a| a == address)
            {
                errors.push(
                    format_args!("appliance.snat_pool[{index}]"),
                    format_args!("{address} is already snat_pool[{first}]; list each address once"),
                );
            }
        }
        if appliance.snat_port_base == 0 {
            errors.push(
                format_args!("appliance.snat_port_base"),
                format_args!("snat_port_base 0 would use source port 0; use 1024 or above"),
            );
        }
        // The full-NAT source port is derived from the flow-table slot, so every slot
        // needs its own (address, port) pair.
        let uses_fullnat = self
            .services
            .iter()
            .any(|service| service.mode == Mode::Fullnat);
        let geometry_valid = (1..=MAX_FLOW_SETS).contains(&appliance.flow_table.sets)
            && appliance.flow_table.sets.is_power_of_two()
            && (1..=MAX_FLOW_WAYS).contains(&appliance.flow_table.ways);
        if uses_fullnat && geometry_valid && !appliance.snat_pool.is_empty() {
            let ports = 65536 - u64::from(appliance.snat_port_base);
            let pairs = appliance.snat_pool.len() as u64 * ports;
            let slots = u64::from(appliance.flow_table.sets) * u64::from(appliance.flow_table.ways);
            if pairs < slots {
                errors.push(
                    format_args!("appliance.snat_pool"),
                    format_args!(
                        "{} addresses x {ports} ports = {pairs} source pairs, fewer than the {slots} flow-table slots; add addresses",
                        appliance.snat_pool.len()
                    ),
                );
            }
        }
    }

    fn validate_service(&self, index: usize, service: &Service, errors: &mut ValidationErrors) {
        let earlier = &self.services[..index];
        if service.name.is_empty() {
            errors.push(
                format_args!("service[{index}].name"),
                format_args!("name is empty; give every service a unique name"),
            );
        } else if let Some(first) = earlier.iter().position(|s| s.name == service.name) {
            errors.push(
                format_args!("service[{index}].name"),
                format_args!("service name \"{}\" is already used by service[{first}]; give each service a unique name", service.name),
            );
        }

        if !is_unicast_ip(service.vip) {
            errors.push(
                format_args!("service[{index}].vip"),
                format_args!(
                    "vip {} is not a unicast address; use an address clients can reach",
                    service.vip
                ),
            );
        } else if service.vip == self.appliance.address {
            errors.push(
                format_args!("service[{index}].vip"),
                format_args!(
                    "vip {} is the appliance's own address, whose frames go to the MCU; use another address",
                    service.vip
                ),
            );
        } else if let Some((owner, backend)) =
            self.services.iter().enumerate().find_map(|(i, s)| {
                self.backends(s)
                    .iter()
                    .find(|b| b.address == service.vip)
                    .map(|b| (i, b))
            })
        {
            errors.push(
                format_args!("service[{index}].vip"),
                format_args!(
                    "vip {} is also the address of backend \"{}\" of service[{owner}]; a VIP cannot be a backend",
                    service.vip, backend.name
                ),
            );
        }

        if service.port == 0 {
            errors.push(
                format_args!("service[{index}].port"),
                format_args!("port 0 is not a valid port; use 1 to 65535"),
            );
        } else if let Some(first) = earlier.iter().position(|s| {
            s.vip == service.vip && s.protocol == service.protocol && s.port == service.port
        }) {
            errors.push(
                format_args!("service[{index}].port"),
                format_args!(
                    "{} {}:{} is already served by service[{first}] \"{}\"; use another vip or port",
                    service.protocol, service.vip, service.port, earlier[first].name
                ),
            );
        }

        if service.mode == Mode::Fullnat && self.appliance.snat_pool.is_empty() {
            errors.push(
                format_args!("service[{index}].mode"),
                format_args!(
                    "mode fullnat needs source addresses; add at least one to appliance.snat_pool"
                ),
            );
        }
        if service.mode == Mode::Gue && service.gue_port == 0 {
            errors.push(
                format_args!("service[{index}].gue_port"),
                format_args!("mode gue needs a non-zero gue_port; leave it out for the default {DEFAULT_GUE_PORT}"),
            );
        }
        if service.sticky_timeout == Some(Millis(0)) {
            errors.push(
                format_args!("service[{index}].sticky_timeout"),
                format_args!(
                    "sticky_timeout is 0; give a positive duration like \"5m\" or leave it out"
                ),
            );
        }

        validate_health(index, &service.health, errors);

        // The flat backend table holds at most MAX_BACKENDS: a config with more does not
        // even deserialize (see `serde_form`).
        for (b, backend) in self.backends(service).iter().enumerate() {
            self.validate_backend(index, service, b, backend, errors);
        }
    }

    fn validate_backend(
        &self,
        index: usize,
        service: &Service,
        b: usize,
        backend: &Backend,
        errors: &mut ValidationErrors,
    ) {
        if backend.name.is_empty() {
            errors.push(
                format_args!("service[{index}].backend[{b}].name"),
                format_args!("name is empty; give every backend of a service a unique name"),
            );
        } else if let Some(first) = self.backends(service)[..b]
            .iter()
            .position(|o| o.name == backend.name)
        {
            errors.push(
                format_args!("service[{index}].backend[{b}].name"),
                format_args!(
                    "backend name \"{}\" is already used by backend[{first}] of this service; give each backend a unique name",
                    backend.name
                ),
            );
        }

        if !is_unicast_ip(backend.address) {
            errors.push(
                format_args!("service[{index}].backend[{b}].address"),
                format_args!(
                    "address {} is not a unicast address; use the backend's own address",
                    backend.address
                ),
            );
        } else if backend.address == self.appliance.address {
            errors.push(
                format_args!("service[{index}].backend[{b}].address"),
                format_args!(
                    "address {} is the appliance's own address; use the backend's own address",
                    backend.address
                ),
            );
        } else if service.mode.has_return_path() {
            // Replies of NAT services are matched to their service by (backend address,
            // backend port, protocol): two NAT services cannot share a backend socket.
            let port = service.backend_port(backend);
            let clash = self.services[..index]
                .iter()
                .enumerate()
                .filter(|(_, s)| s.mode.has_return_path() && s.protocol == service.protocol)
                .find_map(|(i, s)| {
                    self.backends(s)
                        .iter()
                        .find(|o| o.address == backend.address && s.backend_port(o) == port)
                        .map(|o| (i, o))
                });
            if let Some((owner, other)) = clash {
                errors.push(
                    format_args!("service[{index}].backend[{b}].address"),
                    format_args!(
                        "{} {}:{port} is also backend \"{}\" of service[{owner}]; NAT replies need a unique backend address and port",
                        service.protocol, backend.address, other.name
                    ),
                );
            }
        }

        match backend.port {
            Some(0) => errors.push(
                format_args!("service[{index}].backend[{b}].port"),
                format_args!("port 0 is not a valid port; use 1 to 65535 or leave it out for the service port"),
            ),
            Some(port) if service.mode.keeps_port() && port != service.port => errors.push(
                format_args!("service[{index}].backend[{b}].port"),
                format_args!(
                    "port {port} differs from the service port {}, which mode {} cannot change; remove port",
                    service.port, service.mode
                ),
            ),
            _ => {}
        }

        if backend.weight > MAX_WEIGHT {
            errors.push(
                format_args!("service[{index}].backend[{b}].weight"),
                format_args!(
                    "weight {} is above the maximum {MAX_WEIGHT}",
                    backend.weight
                ),
            );
        }

        if let Some(mac) = backend.mac
            && !is_unicast_mac(mac)
        {
            errors.push(
                format_args!("service[{index}].backend[{b}].mac"),
                format_args!(
                    "mac {mac} is not a unicast address; use the backend's (or next hop's) MAC"
                ),
            );
        }
    }
}

fn validate_health(index: usize, health: &HealthCheck, errors: &mut ValidationErrors) {
    if health.kind == CheckKind::None {
        return;
    }
    for (name, value) in [("rise", health.rise), ("fall", health.fall)] {
        if value == 0 {
            errors.push(
                format_args!("service[{index}].health.{name}"),
                format_args!("{name} is 0; it counts consecutive checks, so use 1 or more"),
            );
        }
    }
    for (name, value) in [
        ("inter", health.inter),
        ("fastinter", health.fastinter),
        ("downinter", health.downinter),
        ("timeout", health.timeout),
    ] {
        if value.0 == 0 {
            errors.push(
                format_args!("service[{index}].health.{name}"),
                format_args!("{name} is 0; give a positive duration like \"2s\""),
            );
        }
    }
    if health.timeout > health.inter && health.inter.0 != 0 {
        errors.push(
            format_args!("service[{index}].health.timeout"),
            format_args!(
                "timeout {} is longer than inter {}; lower timeout or raise inter",
                health.timeout, health.inter
            ),
        );
    }
    if health.port == Some(0) {
        errors.push(
            format_args!("service[{index}].health.port"),
            format_args!(
                "port 0 is not a valid port; use 1 to 65535 or leave it out for the backend port"
            ),
        );
    }
    if health.kind == CheckKind::Http {
        if !health.path.starts_with('/') {
            errors.push(
                format_args!("service[{index}].health.path"),
                format_args!(
                    "path \"{}\" does not start with '/'; write it like \"/healthz\"",
                    health.path
                ),
            );
        }
        if !(100..=599).contains(&health.expect_status) {
            errors.push(
                format_args!("service[{index}].health.expect_status"),
                format_args!(
                    "expect_status {} is not an HTTP status; use 100 to 599, like 200",
                    health.expect_status
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::{String as StdString, ToString};
    use std::vec::Vec as StdVec;

    use super::*;

    fn name(text: &str) -> Name {
        Name::try_from(text).unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn backend(backend_name: &str, address: &str, port: Option<u16>) -> Backend {
        Backend {
            name: name(backend_name),
            address: ip(address),
            port,
            weight: 1,
            mac: None,
            state: AdminState::Enabled,
            pool: None,
        }
    }

    fn service(
        service_name: &str,
        vip: &str,
        protocol: Protocol,
        port: u16,
        mode: Mode,
    ) -> Service {
        Service {
            name: name(service_name),
            vip: ip(vip),
            protocol,
            port,
            mode,
            algorithm: Algorithm::Maglev,
            sticky: false,
            sticky_timeout: None,
            gue_port: DEFAULT_GUE_PORT,
            health: HealthCheck::default(),
            backends: BackendRange::EMPTY,
        }
    }

    /// A valid config using NAT, DSR and full NAT; each test breaks one thing.
    fn base() -> Config {
        let mut web = service("web", "10.0.0.100", Protocol::Tcp, 80, Mode::Nat);
        web.health.kind = CheckKind::Http;
        web.health.path = String::try_from("/healthz").unwrap();
        let mut web_backends = StdVec::new();
        for (n, address) in [
            ("web-1", "10.0.1.11"),
            ("web-2", "10.0.1.12"),
            ("web-3", "10.0.1.13"),
        ] {
            web_backends.push(backend(n, address, Some(8080)));
        }
        web_backends[2].weight = 2;
        web_backends[0].mac = Some(MacAddr([2, 0, 0, 0, 1, 11]));

        let mut dns = service("dns", "10.0.0.53", Protocol::Udp, 53, Mode::Dsr);
        dns.algorithm = Algorithm::IpHash;
        let dns_backends = [
            backend("dns-1", "10.0.2.21", None),
            backend("dns-2", "10.0.2.22", Some(53)),
        ];

        let api = service("api", "10.0.0.101", Protocol::Tcp, 443, Mode::Fullnat);
        let api_backends = [backend("api-1", "10.0.3.31", None)];

        let mut config = Config::empty();
        config.appliance = Appliance {
            name: name("edge-1"),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            address: ip("10.0.0.2"),
            prefix: 16,
            gateway: None,
            tunnel_source: None,
            snat_pool: Vec::from_slice(&[ip("10.0.0.200"), ip("10.0.0.201")]).unwrap(),
            snat_port_base: 1024,
            hash_key: None,
            flow_table: FlowTableConfig::default(),
            maglev_ring_size: DEFAULT_RING_SIZE,
            timeouts: Timeouts::default(),
            ha: None,
        };
        for (s, backends) in [
            (web, &web_backends[..]),
            (dns, &dns_backends[..]),
            (api, &api_backends[..]),
        ] {
            let index = config.push_service(s).unwrap();
            for b in backends {
                config.push_backend(index, b.clone()).unwrap();
            }
        }
        config
    }

    fn problems(config: &Config) -> StdVec<(StdString, StdString)> {
        match config.validate() {
            Ok(()) => StdVec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| (e.path.as_str().to_string(), e.message.as_str().to_string()))
                .collect(),
        }
    }

    /// The one problem of `config`, as (path, message).
    #[track_caller]
    fn only_problem(config: &Config) -> (StdString, StdString) {
        let mut found = problems(config);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one problem, got {found:#?}"
        );
        found.remove(0)
    }

    #[track_caller]
    fn assert_problem(config: &Config, path: &str, message: &str) {
        assert_eq!(
            only_problem(config),
            (path.to_string(), message.to_string())
        );
    }

    #[test]
    fn base_config_is_valid() {
        assert_eq!(problems(&base()), []);
        assert_eq!(base().backend_count(), 6);
    }

    #[test]
    fn service_without_backends_is_valid() {
        let mut config = base();
        config.clear_backends(1);
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn service_names_are_unique() {
        let mut config = base();
        config.services[2].name = name("web");
        assert_problem(
            &config,
            "service[2].name",
            "service name \"web\" is already used by service[0]; give each service a unique name",
        );
    }

    #[test]
    fn vip_protocol_and_port_are_unique() {
        let mut config = base();
        config.services[2].vip = ip("10.0.0.100");
        config.services[2].port = 80;
        assert_problem(
            &config,
            "service[2].port",
            "tcp 10.0.0.100:80 is already served by service[0] \"web\"; use another vip or port",
        );
        // The same VIP and port over another protocol is another service.
        config.services[2].protocol = Protocol::Udp;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn backend_names_are_unique_within_a_service() {
        let mut config = base();
        config.backends_mut(0)[2].name = name("web-1");
        assert_problem(
            &config,
            "service[0].backend[2].name",
            "backend name \"web-1\" is already used by backend[0] of this service; give each backend a unique name",
        );
        // Another service may reuse the name.
        let mut config = base();
        config.backends_mut(1)[0].name = name("web-1");
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn weight_is_at_most_the_maximum() {
        let mut config = base();
        config.backends_mut(0)[1].weight = MAX_WEIGHT;
        assert_eq!(problems(&config), []);
        config.backends_mut(0)[1].weight = 1200;
        assert_problem(
            &config,
            "service[0].backend[1].weight",
            "weight 1200 is above the maximum 1000",
        );
    }

    /// A config file with `services` services of `per_service` backends each.
    fn big_file(services: u8, per_service: u8) -> StdString {
        let mut text = StdString::from(
            "[appliance]\nname = \"big\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\n",
        );
        for s in 0..services {
            text += &std::format!(
                "[[service]]\nname = \"svc-{s}\"\nvip = \"10.0.0.1\"\nprotocol = \"tcp\"\nport = {}\n",
                1000 + u16::from(s)
            );
            for b in 0..per_service {
                text += &std::format!(
                    "[[service.backend]]\nname = \"b-{b}\"\naddress = \"10.9.{s}.{}\"\n",
                    u16::from(b) + 1
                );
            }
        }
        text
    }

    #[test]
    fn backends_in_total_are_limited() {
        // 8 x 32 fill the appliance's 256 backends exactly.
        let config: Config = toml::from_str(&big_file(8, 32)).unwrap();
        assert_eq!(config.backend_count(), MAX_BACKENDS);
        assert_eq!(problems(&config), []);
        assert_eq!(config.backends(&config.services[7])[31].name, name("b-31"));
        assert_eq!(
            config.backends(&config.services[7])[31].address,
            ip("10.9.7.32")
        );
        // One more service's backends do not fit: the file is refused where it says so.
        let error = toml::from_str::<Config>(&big_file(9, 32))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "too many backends: the appliance holds at most 256 in all services together; remove backends"
            ),
            "{error}"
        );
        // And one service holds at most 32.
        let error = toml::from_str::<Config>(&big_file(1, 33))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("too many entries: at most 32 are allowed"),
            "{error}"
        );
    }

    #[test]
    fn flow_table_sets_are_a_power_of_two_in_range() {
        let mut config = base();
        config.appliance.flow_table.sets = 1000;
        assert_problem(
            &config,
            "appliance.flow_table.sets",
            "sets 1000 is not a power of two from 1 to 1048576; use e.g. 1024",
        );
        config.appliance.flow_table.sets = 0;
        assert_eq!(only_problem(&config).0, "appliance.flow_table.sets");
        config.appliance.flow_table.sets = 1 << 21;
        assert_problem(
            &config,
            "appliance.flow_table.sets",
            "sets 2097152 is not a power of two from 1 to 1048576; use e.g. 1048576",
        );
        config.appliance.flow_table.sets = 1;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn flow_table_ways_are_one_to_eight() {
        let mut config = base();
        config.appliance.flow_table.ways = 9;
        assert_problem(
            &config,
            "appliance.flow_table.ways",
            "ways 9 is outside 1 to 8; use e.g. 4",
        );
        config.appliance.flow_table.ways = 0;
        assert_eq!(only_problem(&config).0, "appliance.flow_table.ways");
        config.appliance.flow_table.sets = 8192;
        config.appliance.flow_table.ways = 8;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn ring_size_is_a_prime() {
        let mut config = base();
        config.appliance.maglev_ring_size = 65536;
        assert_problem(
            &config,
            "appliance.maglev_ring_size",
            "maglev_ring_size 65536 is not a prime; use a prime like 65537",
        );
        config.appliance.maglev_ring_size = 1;
        assert_eq!(only_problem(&config).0, "appliance.maglev_ring_size");
        config.appliance.maglev_ring_size = 7;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn ring_size_is_at_most_65537() {
        let mut config = base();
        config.appliance.maglev_ring_size = 65539;
        assert_problem(
            &config,
            "appliance.maglev_ring_size",
            "maglev_ring_size 65539 is above the maximum 65537; use a prime like 65537",
        );
    }

    #[test]
    fn ring_size_is_twice_the_biggest_service() {
        let mut config = base();
        config.appliance.maglev_ring_size = 5;
        assert_problem(
            &config,
            "appliance.maglev_ring_size",
            "maglev_ring_size 5 is below twice the 3 backends of service[0] \"web\"; use a prime like 7",
        );
        // Without backends any prime will do.
        for index in 0..config.services.len() {
            config.clear_backends(index);
        }
        config.appliance.maglev_ring_size = 2;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn fullnat_needs_a_snat_pool() {
        let mut config = base();
        config.appliance.snat_pool.clear();
        assert_problem(
            &config,
            "service[2].mode",
            "mode fullnat needs source addresses; add at least one to appliance.snat_pool",
        );
        // Without a fullnat service the pool may be empty.
        config.services[2].mode = Mode::Nat;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn snat_pool_covers_the_flow_table() {
        let mut config = base();
        config.appliance.snat_pool.truncate(1);
        assert_problem(
            &config,
            "appliance.snat_pool",
            "1 addresses x 64512 ports = 64512 source pairs, fewer than the 65536 flow-table slots; add addresses",
        );
        config.appliance.flow_table.ways = 2;
        assert_eq!(problems(&config), []);
        config.appliance.snat_port_base = 0;
        assert_problem(
            &config,
            "appliance.snat_port_base",
            "snat_port_base 0 would use source port 0; use 1024 or above",
        );
    }

    #[test]
    fn snat_pool_addresses_are_unique() {
        let mut config = base();
        config.appliance.snat_pool[1] = ip("10.0.0.200");
        let found = problems(&config);
        assert_eq!(found[0].0, "appliance.snat_pool[1]");
        assert_eq!(
            found[0].1,
            "10.0.0.200 is already snat_pool[0]; list each address once"
        );
    }

    #[test]
    fn dsr_and_tunnels_keep_the_service_port() {
        for mode in [Mode::Dsr, Mode::Ipip, Mode::Gue] {
            let mut config = base();
            config.services[1].mode = mode;
            config.backends_mut(1)[1].port = Some(5353);
            let message = std::format!(
                "port 5353 differs from the service port 53, which mode {mode} cannot change; remove port"
            );
            assert_problem(&config, "service[1].backend[1].port", &message);
        }
        // NAT translates ports.
        let mut config = base();
        config.services[1].mode = Mode::Nat;
        config.backends_mut(1)[1].port = Some(5353);
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn nat_backends_are_unique_across_services() {
        let mut config = base();
        config.backends_mut(2)[0].address = ip("10.0.1.12");
        config.backends_mut(2)[0].port = Some(8080);
        assert_problem(
            &config,
            "service[2].backend[0].address",
            "tcp 10.0.1.12:8080 is also backend \"web-2\" of service[0]; NAT replies need a unique backend address and port",
        );
        // Another port is another socket.
        config.backends_mut(2)[0].port = Some(8081);
        assert_eq!(problems(&config), []);
        // A DSR service never sees replies.
        config.backends_mut(2)[0].port = Some(8080);
        config.services[2].mode = Mode::Dsr;
        config.services[2].port = 8080;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn nat_backends_may_share_a_socket_over_another_protocol() {
        let mut config = base();
        config.services[1].mode = Mode::Nat;
        config.backends_mut(1)[0].address = ip("10.0.1.11");
        config.backends_mut(1)[0].port = Some(8080);
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn vip_is_not_the_appliance_address() {
        let mut config = base();
        config.services[1].vip = ip("10.0.0.2");
        assert_problem(
            &config,
            "service[1].vip",
            "vip 10.0.0.2 is the appliance's own address, whose frames go to the MCU; use another address",
        );
    }

    #[test]
    fn vip_is_not_a_backend_address() {
        let mut config = base();
        config.services[1].vip = ip("10.0.1.13");
        assert_problem(
            &config,
            "service[1].vip",
            "vip 10.0.1.13 is also the address of backend \"web-3\" of service[0]; a VIP cannot be a backend",
        );
    }

    #[test]
    fn backend_is_not_the_appliance() {
        let mut config = base();
        config.backends_mut(1)[0].address = ip("10.0.0.2");
        assert_eq!(only_problem(&config).0, "service[1].backend[0].address");
    }

    #[test]
    fn health_rise_and_fall_are_at_least_one() {
        let mut config = base();
        config.services[0].health.rise = 0;
        assert_problem(
            &config,
            "service[0].health.rise",
            "rise is 0; it counts consecutive checks, so use 1 or more",
        );
        let mut config = base();
        config.services[1].health.fall = 0;
        assert_eq!(only_problem(&config).0, "service[1].health.fall");
    }

    #[test]
    fn health_timeout_is_at_most_inter() {
        let mut config = base();
        config.services[0].health.timeout = Millis(3000);
        assert_problem(
            &config,
            "service[0].health.timeout",
            "timeout 3s is longer than inter 2s; lower timeout or raise inter",
        );
        config.services[0].health.timeout = Millis(2000);
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn health_intervals_are_not_zero() {
        let mut config = base();
        config.services[0].health.fastinter = Millis(0);
        assert_problem(
            &config,
            "service[0].health.fastinter",
            "fastinter is 0; give a positive duration like \"2s\"",
        );
    }

    #[test]
    fn http_health_path_starts_with_a_slash() {
        let mut config = base();
        config.services[0].health.path = String::try_from("healthz").unwrap();
        assert_problem(
            &config,
            "service[0].health.path",
            "path \"healthz\" does not start with '/'; write it like \"/healthz\"",
        );
        // Only HTTP checks use the path.
        config.services[0].health.kind = CheckKind::Tcp;
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn http_expect_status_is_a_status() {
        let mut config = base();
        config.services[0].health.expect_status = 99;
        assert_problem(
            &config,
            "service[0].health.expect_status",
            "expect_status 99 is not an HTTP status; use 100 to 599, like 200",
        );
        config.services[0].health.expect_status = 600;
        assert_eq!(only_problem(&config).0, "service[0].health.expect_status");
    }

    #[test]
    fn disabled_health_check_is_not_checked() {
        let mut config = base();
        config.services[0].health.kind = CheckKind::None;
        config.services[0].health.rise = 0;
        config.services[0].health.timeout = Millis(0);
        assert_eq!(problems(&config), []);
    }

    #[test]
    fn flow_timeouts_are_not_zero() {
        let mut config = base();
        config.appliance.timeouts.udp = Millis(0);
        assert_problem(
            &config,
            "appliance.timeouts.udp",
            "udp is 0; give a positive duration like \"30s\"",
        );
        let mut config = base();
        config.services[0].sticky_timeout = Some(Millis(0));
        assert_eq!(only_problem(&config).0, "service[0].sticky_timeout");
    }

    #[test]
    fn gue_needs_a_port() {
        let mut config = base();
        config.services[1].mode = Mode::Gue;
        assert_eq!(problems(&config), []);
        config.services[1].gue_port = 0;
        assert_problem(
            &config,
            "service[1].gue_port",
            "mode gue needs a non-zero gue_port; leave it out for the default 6080",
        );
    }

    #[test]
    fn addresses_are_unicast() {
        let mut config = base();
        config.appliance.mac = MacAddr([1, 0, 0x5e, 0, 0, 1]);
        config.appliance.address = ip("0.0.0.0");
        config.services[0].vip = ip("224.0.0.1");
        config.backends_mut(0)[0].mac = Some(MacAddr([0xff; 6]));
        let paths: StdVec<_> = problems(&config)
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(
            paths,
            [
                "appliance.mac",
                "appliance.address",
                "service[0].vip",
                "service[0].backend[0].mac"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let mut config = base();
        config.appliance.flow_table.ways = 0;
        config.backends_mut(0)[0].weight = 1001;
        config.backends_mut(1)[1].port = Some(54);
        config.services[2].name = name("dns");
        let paths: StdVec<_> = problems(&config)
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(
            paths,
            [
                "appliance.flow_table.ways",
                "service[0].backend[0].weight",
                "service[1].backend[1].port",
                "service[2].name",
            ]
        );
    }

    #[test]
    fn problems_beyond_the_limit_are_counted() {
        let mut config = base();
        for index in 0..config.services.len() {
            for backend in config.backends_mut(index) {
                backend.weight = 5000;
                backend.port = Some(0);
            }
        }
        for service in config.services.iter_mut() {
            service.health.rise = 0;
            service.health.fall = 0;
            service.health.inter = Millis(0);
            service.health.fastinter = Millis(0);
            service.health.downinter = Millis(0);
            service.health.timeout = Millis(0);
        }
        config.appliance.timeouts = Timeouts {
            tcp_syn: Millis(0),
            tcp_established: Millis(0),
            tcp_closing: Millis(0),
            udp: Millis(0),
            sticky: Millis(0),
        };
        // 5 timeouts, 6 health fields of 3 services, 2 fields of 6 backends.
        let errors = config.validate().unwrap_err();
        assert_eq!(errors.len(), MAX_VALIDATION_ERRORS);
        assert_eq!(errors.omitted(), 5 + 3 * 6 + 6 * 2 - MAX_VALIDATION_ERRORS);
        assert!(errors.to_string().ends_with("\n... and 3 more problems"));
    }

    #[test]
    fn errors_display_as_path_and_message() {
        let mut config = base();
        config.backends_mut(0)[1].weight = 1200;
        config.appliance.flow_table.ways = 9;
        let errors = config.validate().unwrap_err();
        assert_eq!(
            errors.to_string(),
            "appliance.flow_table.ways: ways 9 is outside 1 to 8; use e.g. 4\n\
             service[0].backend[1].weight: weight 1200 is above the maximum 1000"
        );
    }

    #[test]
    fn long_messages_are_cut_not_lost() {
        let mut errors = ValidationErrors::default();
        errors.push(format_args!("{:a<60}", ""), format_args!("{:b<200}", ""));
        let error = &errors.as_slice()[0];
        assert_eq!(error.path.len(), MAX_FIELD_PATH);
        assert_eq!(error.message.len(), MAX_VALIDATION_MESSAGE);
    }

    #[test]
    fn suggested_primes() {
        assert_eq!(prime_at_or_above(0), 2);
        assert_eq!(prime_at_or_above(64), 67);
        assert_eq!(prime_at_or_above(67), 67);
        assert_eq!(prime_at_or_above(65536), 65537);
    }

    /// The form the config had when services held their backends inline (derived).
    #[derive(Serialize)]
    struct NestedConfig<'a> {
        appliance: &'a Appliance,
        service: StdVec<NestedService<'a>>,
        l7: &'a [L7Settings],
    }

    #[derive(Serialize)]
    struct NestedService<'a> {
        name: &'a Name,
        vip: Ipv4Addr,
        protocol: Protocol,
        port: u16,
        mode: Mode,
        algorithm: Algorithm,
        sticky: bool,
        sticky_timeout: Option<Millis>,
        gue_port: u16,
        health: &'a HealthCheck,
        backend: &'a [Backend],
    }

    fn nested(config: &Config) -> NestedConfig<'_> {
        NestedConfig {
            appliance: &config.appliance,
            service: config
                .services_with_backends()
                .map(|(s, backend)| NestedService {
                    name: &s.name,
                    vip: s.vip,
                    protocol: s.protocol,
                    port: s.port,
                    mode: s.mode,
                    algorithm: s.algorithm,
                    sticky: s.sticky,
                    sticky_timeout: s.sticky_timeout,
                    gue_port: s.gue_port,
                    health: &s.health,
                    backend,
                })
                .collect(),
            l7: &config.l7,
        }
    }

    #[test]
    fn file_and_wire_forms_keep_backends_inline() {
        let mut config = base();
        config.backends_mut(1)[0].state = AdminState::Drain;
        config.services[0].sticky_timeout = Some(Millis(60_000));
        let text = toml::to_string(&config).unwrap();
        assert_eq!(text, toml::to_string(&nested(&config)).unwrap());
        assert!(text.contains("[[service.backend]]"), "{text}");
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
        assert_eq!(
            postcard::to_allocvec(&config).unwrap(),
            postcard::to_allocvec(&nested(&config)).unwrap()
        );
    }

    #[test]
    fn service_fields_keep_their_defaults_and_errors() {
        let head =
            "[appliance]\nname = \"a\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\n";
        let config: Config = toml::from_str(&std::format!(
            "{head}[[service]]\nname = \"s\"\nvip = \"10.0.0.1\"\nprotocol = \"udp\"\nport = 53\n"
        ))
        .unwrap();
        let s = &config.services[0];
        assert_eq!(
            (s.mode, s.algorithm, s.sticky),
            (Mode::Nat, Algorithm::Maglev, false)
        );
        assert_eq!((s.gue_port, s.sticky_timeout), (DEFAULT_GUE_PORT, None));
        assert_eq!(s.health, HealthCheck::default());
        assert!(config.backends(s).is_empty());
        let error = toml::from_str::<Config>(&std::format!(
            "{head}[[service]]\nname = \"s\"\nvip = \"10.0.0.1\"\nprotocol = \"udp\"\nport = 53\nweight = 2\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("unknown field `weight`, expected one of `name`, `vip`"),
            "{error}"
        );
        let error = toml::from_str::<Config>(&std::format!(
            "{head}[[service]]\nname = \"s\"\nprotocol = \"udp\"\nport = 53\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("missing field `vip`"), "{error}");
        let error = toml::from_str::<Config>("l7 = []\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing field `appliance`"), "{error}");
        let error = toml::from_str::<Config>(&std::format!("{head}[other]\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `other`"), "{error}");
    }

    #[test]
    fn backend_lists_change_in_place() {
        let mut config = base();
        let before = config.clone();
        // Grow the first service: the later ones keep their backends.
        config
            .push_backend(0, backend("web-4", "10.0.1.14", Some(8080)))
            .unwrap();
        assert_eq!(config.backends(&config.services[0]).len(), 4);
        assert_eq!(
            config.backends(&config.services[1]),
            before.backends(&before.services[1])
        );
        assert_eq!(
            config.backends(&config.services[2]),
            before.backends(&before.services[2])
        );
        assert_ne!(config, before);
        assert_eq!(config.remove_backend(0, 3).unwrap().name, name("web-4"));
        assert_eq!(config, before);
        // A service removed takes its backends along.
        config.remove_service(1).unwrap();
        assert_eq!(config.backend_count(), 4);
        assert_eq!(config.backends(&config.services[1])[0].name, name("api-1"));
        // The same services and backends in another place of the table are equal.
        let mut other = before.clone();
        other.retain_services(|s, _| s.name != "dns");
        other.clear_backends(0);
        for b in before.backends(&before.services[0]) {
            other.push_backend(0, b.clone()).unwrap();
        }
        assert_eq!(other, config);
        let mut copy = Config::empty();
        copy.copy_from(&other);
        assert_eq!(copy, config);
        // Limits: 32 per service, none for a missing service.
        let mut full = base();
        for b in 3..32u8 {
            let mut one = backend("", "10.0.1.1", None);
            let _ = fmt::write(&mut one.name, format_args!("web-x{b}"));
            full.push_backend(0, one).unwrap();
        }
        assert!(
            full.push_backend(0, backend("no", "10.0.1.1", None))
                .is_err()
        );
        assert!(
            full.push_backend(7, backend("no", "10.0.1.1", None))
                .is_err()
        );
        assert!(full.remove_backend(7, 0).is_none());
        assert!(full.remove_backend(1, 2).is_none());
        assert!(full.backends_mut(7).is_empty());
    }

    #[test]
    fn binary_form_round_trips() {
        let mut config = base();
        config.appliance.hash_key = Some(HashKey(core::array::from_fn(|i| i as u8)));
        let bytes = postcard::to_allocvec(&config).unwrap();
        let back: Config = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, config);
    }
}
