//! High-availability settings: the `[appliance.ha]` table of the config file.
//!
//! Two or more appliances share the virtual addresses with VRRP version 3 (RFC 5798) and
//! replicate flow-table and persistence entries over an authenticated sync protocol (the
//! firmware's `vrrp` and `flowsync` cores). This module is only the schema and its
//! validation, in the style of [`crate::config`]: every problem is reported with the TOML
//! path of the field (`appliance.ha.peers[1]`).
//!
//! ```toml
//! [appliance.ha]
//! vrid = 51
//! priority = 200            # 1..254; 255 only for the owner of every virtual address
//! preempt = true
//! advert_interval = "10ms"  # 10 ms to 40.95 s, a multiple of 10 ms
//! peers = ["10.0.0.3"]
//! sync = "all_to_all"       # or "owner_backup"
//! ```

use core::net::Ipv4Addr;

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Millis, ValidationErrors};

/// Most peers one appliance names (owner + backup mode; all-to-all allows fewer).
pub const MAX_PEERS: usize = 7;
/// Most appliances in an all-to-all group (every node holds every flow).
pub const MAX_ALL_TO_ALL_NODES: usize = 4;
/// Most virtual addresses one VRRP instance carries.
pub const MAX_VIRTUAL_ADDRESSES: usize = 16;
/// Shortest advert interval: one centisecond.
pub const MIN_ADVERT_INTERVAL_MS: u32 = 10;
/// Longest advert interval: 4095 centiseconds (12 bits on the wire).
pub const MAX_ADVERT_INTERVAL_MS: u32 = 40_950;
/// Default UDP port of the flow-sync protocol.
pub const DEFAULT_SYNC_PORT: u16 = 8694;

/// How flow state is replicated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Every node holds every flow (groups of up to [`MAX_ALL_TO_ALL_NODES`]).
    #[default]
    AllToAll,
    /// Each flow lives on its owner and one backup; the other nodes learn only which node
    /// owns it.
    OwnerBackup,
}

/// The `[appliance.ha]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// VRRP virtual router identifier, 1 to 255; the same on every member of the group.
    pub vrid: u8,
    /// VRRP priority, 1 to 254 (255: the owner of every virtual address).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Whether this node takes over from a lower-priority master.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// VRRP advertisement interval.
    #[serde(default = "default_advert_interval")]
    pub advert_interval: Millis,
    /// The virtual addresses VRRP moves. Empty: every service VIP and full-NAT pool
    /// address of the config (see [`HaConfig::virtual_addresses`]).
    #[serde(default)]
    pub addresses: Vec<Ipv4Addr, MAX_VIRTUAL_ADDRESSES>,
    /// The other appliances' own addresses (flow-sync peers).
    pub peers: Vec<Ipv4Addr, MAX_PEERS>,
    /// Replication mode.
    #[serde(default)]
    pub sync: SyncMode,
    /// UDP port of the flow-sync protocol.
    #[serde(default = "default_sync_port")]
    pub sync_port: u16,
    /// Whether a recovered node waits for its flow table to be re-synchronised before it
    /// preempts a lower-priority master.
    #[serde(default = "default_true")]
    pub hold_preempt_until_synced: bool,
}

fn default_priority() -> u8 {
    100
}

fn default_true() -> bool {
    true
}

fn default_advert_interval() -> Millis {
    Millis(1000)
}

fn default_sync_port() -> u16 {
    DEFAULT_SYNC_PORT
}

fn is_unicast(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast())
}

impl HaConfig {
    /// The advert interval in centiseconds, as VRRP carries it (clamped to 1..=4095).
    pub fn advert_interval_cs(&self) -> u16 {
        (self.advert_interval.0 / 10).clamp(1, 4095) as u16
    }

    /// The addresses VRRP carries: [`HaConfig::addresses`] if given, else every distinct
    /// service VIP and full-NAT pool address in config order (cut at
    /// [`MAX_VIRTUAL_ADDRESSES`]; validation reports a config that has more).
    pub fn virtual_addresses(&self, config: &Config) -> Vec<Ipv4Addr, MAX_VIRTUAL_ADDRESSES> {
        if !self.addresses.is_empty() {
            return self.addresses.clone();
        }
        let mut out = Vec::new();
        let all = config
            .services
            .iter()
            .map(|s| s.vip)
            .chain(config.appliance.snat_pool.iter().copied());
        for a in all {
            if !out.contains(&a) && out.push(a).is_err() {
                break;
            }
        }
        out
    }

    /// Number of distinct implied virtual addresses (for the limit check).
    fn implied_count(config: &Config) -> usize {
        let mut seen: Vec<
            Ipv4Addr,
            { crate::config::MAX_SERVICES + crate::config::MAX_SNAT_ADDRS },
        > = Vec::new();
        for a in config
            .services
            .iter()
            .map(|s| s.vip)
            .chain(config.appliance.snat_pool.iter().copied())
        {
            if !seen.contains(&a) {
                let _ = seen.push(a);
            }
        }
        seen.len()
    }

    /// Checks the table against the rest of `config`, adding problems to `errors` with
    /// paths under `appliance.ha`.
    pub(crate) fn validate_into(&self, config: &Config, errors: &mut ValidationErrors) {
        let own = config.appliance.address;
        if self.vrid == 0 {
            errors.push(
                format_args!("appliance.ha.vrid"),
                format_args!(
                    "vrid 0 is not a virtual router; use 1 to 255, the same on every appliance of the group"
                ),
            );
        }
        let addresses = self.virtual_addresses(config);
        if self.addresses.is_empty() && Self::implied_count(config) > MAX_VIRTUAL_ADDRESSES {
            errors.push(
                format_args!("appliance.ha.addresses"),
                format_args!(
                    "the services and full-NAT pool have more than {MAX_VIRTUAL_ADDRESSES} addresses; list the ones VRRP moves"
                ),
            );
        }
        if addresses.is_empty() {
            errors.push(
                format_args!("appliance.ha.addresses"),
                format_args!(
                    "no virtual address: give addresses, or configure a service, for VRRP to move"
                ),
            );
        }
        for (i, a) in self.addresses.iter().enumerate() {
            if !is_unicast(*a) {
                errors.push(
                    format_args!("appliance.ha.addresses[{i}]"),
                    format_args!("address {a} is not a unicast address"),
                );
            } else if self.addresses[..i].contains(a) {
                errors.push(
                    format_args!("appliance.ha.addresses[{i}]"),
                    format_args!("address {a} is listed twice"),
                );
            }
        }
        let owner = addresses.iter().all(|a| *a == own) && !addresses.is_empty();
        if self.priority == 0 {
            errors.push(
                format_args!("appliance.ha.priority"),
                format_args!("priority 0 is reserved for a master that is leaving; use 1 to 254"),
            );
        } else if self.priority == 255 && !owner {
            errors.push(
                format_args!("appliance.ha.priority"),
                format_args!(
                    "priority 255 is for the owner of every virtual address, which {own} is not; use 1 to 254"
                ),
            );
        }
        let interval = self.advert_interval.0;
        if !(MIN_ADVERT_INTERVAL_MS..=MAX_ADVERT_INTERVAL_MS).contains(&interval)
            || !interval.is_multiple_of(10)
        {
            errors.push(
                format_args!("appliance.ha.advert_interval"),
                format_args!(
                    "advert_interval {} is not a multiple of 10ms from 10ms to 40950ms; use e.g. \"1s\" or \"10ms\"",
                    self.advert_interval
                ),
            );
        }
        if self.peers.is_empty() {
            errors.push(
                format_args!("appliance.ha.peers"),
                format_args!("no peer: name the other appliances' own addresses"),
            );
        }
        for (i, p) in self.peers.iter().enumerate() {
            if !is_unicast(*p) || *p == own {
                errors.push(
                    format_args!("appliance.ha.peers[{i}]"),
                    format_args!(
                        "peer {p} is not another appliance's unicast address (this one is {own})"
                    ),
                );
            } else if self.peers[..i].contains(p) {
                errors.push(
                    format_args!("appliance.ha.peers[{i}]"),
                    format_args!("peer {p} is listed twice"),
                );
            } else if addresses.contains(p) {
                errors.push(
                    format_args!("appliance.ha.peers[{i}]"),
                    format_args!("peer {p} is a virtual address; give the peer's own address"),
                );
            }
        }
        if self.sync == SyncMode::AllToAll && self.peers.len() + 1 > MAX_ALL_TO_ALL_NODES {
            errors.push(
                format_args!("appliance.ha.sync"),
                format_args!(
                    "all_to_all replicates every flow to every node and allows {MAX_ALL_TO_ALL_NODES} nodes, this group has {}; use \"owner_backup\"",
                    self.peers.len() + 1
                ),
            );
        }
        if self.sync_port == 0 {
            errors.push(
                format_args!("appliance.ha.sync_port"),
                format_args!("sync_port 0 is not a port; use e.g. {DEFAULT_SYNC_PORT}"),
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

    const BASE: &str = r#"
[appliance]
name = "edge-1"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
snat_pool = ["10.0.0.250"]

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "round_robin"
"#;

    fn parse(ha: &str) -> Config {
        let text = BASE.replace(
            "[[service]]",
            &std::format!("[appliance.ha]\n{ha}\n[[service]]"),
        );
        toml::from_str(&text).unwrap()
    }

    fn problems(config: &Config) -> StdVec<(StdString, StdString)> {
        match config.validate() {
            Ok(()) => StdVec::new(),
            Err(e) => e
                .iter()
                .map(|e| (e.path.to_string(), e.message.to_string()))
                .collect(),
        }
    }

    #[test]
    fn defaults_and_implied_addresses() {
        let c = parse("vrid = 51\npeers = [\"10.0.0.3\"]");
        assert_eq!(problems(&c), StdVec::new());
        let ha = c.appliance.ha.as_ref().unwrap();
        assert_eq!(
            (ha.priority, ha.preempt, ha.advert_interval_cs(), ha.sync),
            (100, true, 100, SyncMode::AllToAll)
        );
        assert!(ha.hold_preempt_until_synced);
        assert_eq!(
            ha.virtual_addresses(&c).as_slice(),
            &[Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 250)]
        );
        // No [appliance.ha]: no HA.
        let plain: Config = toml::from_str(BASE).unwrap();
        assert_eq!(plain.appliance.ha, None);
        // Round trip through postcard, as the management protocol carries it.
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Config>(&bytes).unwrap(), c);
    }

    #[test]
    fn ten_ms_adverts_are_allowed() {
        let c = parse("vrid = 1\nadvert_interval = \"10ms\"\npeers = [\"10.0.0.3\"]");
        assert_eq!(problems(&c), StdVec::new());
        assert_eq!(c.appliance.ha.unwrap().advert_interval_cs(), 1);
    }

    #[test]
    fn every_problem_has_its_path() {
        let c = parse(
            "vrid = 0\npriority = 255\nadvert_interval = \"15ms\"\npeers = [\"10.0.0.2\", \"10.0.0.3\", \"10.0.0.3\", \"10.0.0.100\", \"10.0.0.5\"]\nsync_port = 0",
        );
        let paths: StdVec<_> = problems(&c).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "appliance.ha.vrid",
                "appliance.ha.priority",
                "appliance.ha.advert_interval",
                "appliance.ha.peers[0]",
                "appliance.ha.peers[2]",
                "appliance.ha.peers[3]",
                "appliance.ha.sync",
                "appliance.ha.sync_port",
            ]
        );
        let c = parse("vrid = 1\npeers = []\naddresses = [\"224.0.0.1\"]");
        assert_eq!(
            problems(&c),
            [
                (
                    "appliance.ha.addresses[0]".to_string(),
                    "address 224.0.0.1 is not a unicast address".to_string()
                ),
                (
                    "appliance.ha.peers".to_string(),
                    "no peer: name the other appliances' own addresses".to_string()
                ),
            ]
        );
    }

    #[test]
    fn owner_backup_allows_larger_groups_and_the_owner_may_take_255() {
        let c = parse(
            "vrid = 9\nsync = \"owner_backup\"\npeers = [\"10.0.0.3\", \"10.0.0.4\", \"10.0.0.5\", \"10.0.0.6\"]",
        );
        assert_eq!(problems(&c), StdVec::new());
        let c =
            parse("vrid = 9\npriority = 255\naddresses = [\"10.0.0.2\"]\npeers = [\"10.0.0.3\"]");
        assert_eq!(problems(&c), StdVec::new());
        let text = BASE.replace(
            "[[service]]",
            "[appliance.ha]\nvrid = 9\nunknown = 1\n[[service]]",
        );
        assert!(
            toml::from_str::<Config>(&text).is_err(),
            "unknown fields are refused"
        );
    }
}
