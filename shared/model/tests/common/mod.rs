//! Shared by the model's integration tests and benchmarks: owned storage for a pipeline,
//! a config loader and a frame builder.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::Config;
use fulcrum_model::flow::{FlowEntry, StickyEntry};
use fulcrum_model::pipeline::{OUT_HEADROOM, Pipeline, Port, Storage, Verdict};
use fulcrum_model::tables::SERVICE_SLOTS;
use smoltcp::wire::{IpAddress, TcpPacket, UdpPacket};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc0, 0, 0, 0, 0x01];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x01];

/// Storage for one pipeline.
pub struct Owned {
    pub flows: Vec<FlowEntry>,
    pub flow_ways: usize,
    pub sticky: Vec<StickyEntry>,
    pub ring_a: Vec<u16>,
    pub ring_b: Vec<u16>,
}

impl Owned {
    pub fn for_config(config: &Config) -> Owned {
        let ft = config.appliance.flow_table;
        let capacity = (ft.sets * ft.ways) as usize;
        let ring = config.appliance.maglev_ring_size as usize * SERVICE_SLOTS;
        Owned {
            flows: vec![FlowEntry::default(); capacity],
            flow_ways: ft.ways as usize,
            sticky: vec![StickyEntry::default(); capacity / 4 + ft.ways as usize],
            ring_a: vec![0; ring],
            ring_b: vec![0; ring],
        }
    }

    pub fn pipeline(&mut self) -> Pipeline<'_> {
        Pipeline::new(Storage {
            flows: &mut self.flows,
            flow_ways: self.flow_ways,
            sticky: &mut self.sticky,
            sticky_ways: self.flow_ways,
            ring_active: &mut self.ring_a,
            ring_shadow: &mut self.ring_b,
        })
    }
}

pub fn config(toml_text: &str) -> Config {
    let c: Config = toml::from_str(toml_text).expect("test config parses");
    if let Err(e) = c.validate() {
        panic!("test config invalid: {e:?}");
    }
    c
}

pub fn program(p: &mut Pipeline<'_>, cp: &ControlPlane) {
    let mut scratch = vec![0u16; cp.settings().ring_size as usize];
    cp.write_all(p, &mut scratch).expect("tables compile");
}

/// Sends one frame in on the network port; returns the verdict and the output frame.
pub fn send(p: &mut Pipeline<'_>, now: u64, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + OUT_HEADROOM];
    let v = p.process(now, frame, Port::Network, &mut out);
    out.truncate(v.len);
    (v, out)
}

#[derive(Clone, Copy)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
pub const SYNACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
pub const FIN: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};

/// An Ethernet + IPv4 + TCP/UDP frame with valid checksums.
pub fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    proto: u8,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = if proto == 6 { 20 } else { 8 } + payload.len();
    let mut f = vec![0u8; 14 + 20 + l4_len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    {
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src.0.octets());
        ip[16..20].copy_from_slice(&dst.0.octets());
        let c = fulcrum_model::checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let (s, d) = (IpAddress::Ipv4(src.0), IpAddress::Ipv4(dst.0));
    let l4 = &mut f[34..];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    if proto == 6 {
        l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
        l4[12] = 5 << 4;
        l4[13] = (flags.fin as u8)
            | (flags.syn as u8) << 1
            | (flags.rst as u8) << 2
            | (flags.ack as u8) << 4;
        l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
        l4[20..].copy_from_slice(payload);
        TcpPacket::new_unchecked(&mut *l4).fill_checksum(&s, &d);
    } else {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        l4[8..].copy_from_slice(payload);
        UdpPacket::new_unchecked(&mut *l4).fill_checksum(&s, &d);
    }
    f
}

pub fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: Flags) -> Vec<u8> {
    frame(CLIENT_MAC, [2, 0, 0, 0, 0, 1], 6, src, dst, flags, b"")
}

pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    frame(CLIENT_MAC, [2, 0, 0, 0, 0, 1], 17, src, dst, SYN, payload)
}

/// Checks IPv4 and transport checksums of an output frame (IPv4 at offset 14).
pub fn checksums_valid(f: &[u8]) -> bool {
    use smoltcp::wire::{IpProtocol, Ipv4Packet};
    let Ok(ip) = Ipv4Packet::new_checked(&f[14..]) else {
        return false;
    };
    if !ip.verify_checksum() {
        return false;
    }
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    match ip.next_header() {
        IpProtocol::Tcp => {
            TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.verify_checksum(&s, &d))
        }
        IpProtocol::Udp => {
            UdpPacket::new_checked(ip.payload()).is_ok_and(|u| u.verify_checksum(&s, &d))
        }
        _ => true,
    }
}

pub fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// Source/destination endpoints of an output IPv4 frame.
pub fn endpoints(f: &[u8]) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let h = fulcrum_model::wire::parse(f).expect("output parses");
    let ip = *h.ipv4().expect("ipv4");
    let (sp, dp) = ip.l4.ports().unwrap_or((0, 0));
    ((ip.src, sp), (ip.dst, dp))
}

pub const BASE: &str = r#"
[appliance]
name = "test"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
snat_pool = ["10.0.0.250"]
snat_port_base = 1024
maglev_ring_size = 4099
flow_table = { sets = 1024, ways = 4 }
"#;

/// A config with one TCP service on 10.0.0.100:80 with `n` backends 10.0.1.(11..) port 8080.
pub fn one_service(mode: &str, algorithm: &str, extra: &str, n: usize) -> String {
    let mut s = format!(
        "{BASE}\n[[service]]\nname = \"web\"\nvip = \"10.0.0.100\"\nprotocol = \"tcp\"\nport = 80\nmode = \"{mode}\"\nalgorithm = \"{algorithm}\"\n{extra}\n[service.health]\nkind = \"none\"\n"
    );
    let port = if matches!(mode, "nat" | "fullnat") {
        "port = 8080\n"
    } else {
        ""
    };
    for i in 0..n {
        s.push_str(&format!(
            "[[service.backend]]\nname = \"web-{}\"\naddress = \"10.0.1.{}\"\n{port}mac = \"02:00:00:00:01:{:02x}\"\n",
            i + 1,
            11 + i,
            11 + i
        ));
    }
    s
}
