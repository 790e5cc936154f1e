//! Setup shared by the HA tests in virtual time (`ha_runner`, `ha_takeover`,
//! `flowsync_sim`): the two-appliance full-NAT config, the model as a data path
//! programmed from a config, client TCP frames, and what a forwarded frame maps to.
//! Included with `#[path = "common/ha.rs"] mod ha_common;`; each test uses part of it.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use fulcrum_mgmt::envelope::Key;
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::Config;
use fulcrum_model::flow::{FlowEntry, StickyEntry};
use fulcrum_model::pipeline::{Action, Pipeline, Storage};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::*;

/// Two appliances (edge-0 and edge-1), VRID 42 with 10 ms adverts, one full-NAT service
/// `web` (10.0.0.100:80, round robin with persistence) over three backends.
pub const CONFIG: &str = r#"
[appliance]
name = "NAME"
mac = "02:00:00:00:00:01"
address = "ADDRESS"
snat_pool = ["10.0.0.250"]
maglev_ring_size = 251
flow_table = { sets = 2048, ways = 4 }

[appliance.ha]
vrid = 42
priority = PRIORITY
advert_interval = "10ms"
peers = ["PEER"]

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "fullnat"
algorithm = "round_robin"
sticky = true
[service.health]
kind = "none"
[[service.backend]]
name = "a"
address = "10.0.1.11"
mac = "02:00:00:00:01:11"
[[service.backend]]
name = "b"
address = "10.0.1.12"
mac = "02:00:00:00:01:12"
[[service.backend]]
name = "c"
address = "10.0.1.13"
mac = "02:00:00:00:01:13"
"#;

/// The appliances' own addresses.
pub const ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)];

/// The VRRP virtual MAC of VRID 42 (where clients send).
pub const VMAC: [u8; 6] = [0, 0, 0x5e, 0, 1, 42];

/// Appliance `i`'s validated config with `priority`.
pub fn config(i: usize, priority: u8) -> Config {
    config_with(i, priority, |t| t)
}

/// [`config`] with `edit` applied to its text first.
pub fn config_with(i: usize, priority: u8, edit: impl Fn(String) -> String) -> Config {
    let text = CONFIG
        .replace("NAME", &format!("edge-{i}"))
        .replace("ADDRESS", &ADDRS[i].to_string())
        .replace("PEER", &ADDRS[1 - i].to_string())
        .replace("PRIORITY", &priority.to_string());
    parse(&edit(text))
}

/// A validated config from TOML.
pub fn parse(text: &str) -> Config {
    let c: Config = toml::from_str(text).unwrap();
    c.validate().unwrap();
    c
}

/// The management key the tests' links authenticate with.
pub fn key() -> Key {
    Key::new(b"management key").unwrap()
}

/// The model as a data path with `flow_slots` flow entries (4 ways) and 256 persistence
/// entries, its tables written from `config` (storage leaked, as block RAM lives as long
/// as the process).
pub fn pipeline(config: &Config, flow_slots: usize) -> Pipeline<'static> {
    let mut cp = ControlPlane::new();
    cp.apply(config).unwrap();
    let mut pipeline = Pipeline::new(Storage {
        flows: Box::leak(vec![FlowEntry::default(); flow_slots].into_boxed_slice()),
        flow_ways: 4,
        sticky: Box::leak(vec![StickyEntry::default(); 256].into_boxed_slice()),
        sticky_ways: 4,
        ring_active: Box::leak(vec![0u16; 251 * 16].into_boxed_slice()),
        ring_shadow: Box::leak(vec![0u16; 251 * 16].into_boxed_slice()),
    });
    cp.write_all(&mut pipeline, &mut vec![0u16; 251]).unwrap();
    pipeline
}

/// A TCP segment from `src`:`port` to the VIP 10.0.0.100:80, Ethernet to `dst_mac`: a
/// SYN, or a bare ACK.
pub fn tcp_to(src: [u8; 4], port: u16, dst_mac: [u8; 6], syn: bool) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: port,
        dst_port: 80,
        control: if syn {
            TcpControl::Syn
        } else {
            TcpControl::None
        },
        seq_number: TcpSeqNumber(1),
        ack_number: (!syn).then_some(TcpSeqNumber(1)),
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let src = Ipv4Address::from(src);
    let dst = Ipv4Address::new(10, 0, 0, 100);
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0xc0, 0, 0, 0, src.octets()[3]]),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut out = vec![0u8; 14 + 20 + tcp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut out[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &ChecksumCapabilities::default());
    let mut t = TcpPacket::new_unchecked(p.payload_mut());
    tcp.emit(
        &mut t,
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &ChecksumCapabilities::default(),
    );
    out
}

/// Client 198.51.100.`client`'s segment from `port` to the VIP, sent to the virtual MAC.
pub fn tcp(client: u8, port: u16, syn: bool) -> Vec<u8> {
    tcp_to([198, 51, 100, client], port, VMAC, syn)
}

/// (backend, rewritten source endpoint) of a forwarded frame.
pub fn mapping(v: Action, out: &[u8]) -> Option<(u16, [u8; 6])> {
    let Action::ToBackend { backend, .. } = v else {
        return None;
    };
    let ip = Ipv4Packet::new_checked(&out[14..]).ok()?;
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    let mut src = [0u8; 6];
    src[..4].copy_from_slice(&ip.src_addr().octets());
    src[4..].copy_from_slice(&t.src_port().to_be_bytes());
    Some((backend, src))
}

/// A connection: (client, port), (backend, NAT source endpoint) as first seen, opened
/// at (ms).
pub type Connection = ((u8, u16), (u16, [u8; 6]), u64);
