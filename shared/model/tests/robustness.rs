//! Robustness of the reference model against whatever the wire brings: arbitrary bytes,
//! valid frames with single-byte mutations and truncations, on both ports. Every frame
//! must leave the model unpanicked, counted exactly once, and, when forwarded, with
//! checksums exactly as valid as they came in (the incremental update neither breaks a
//! good checksum nor repairs a bad one). A NAT round-trip property closes the loop: a
//! backend's reply reaches the client from exactly the VIP and port the client used.
//!
//! Seeded and deterministic: a fixed proptest seed, a fixed number of cases and no
//! failure persistence, so CI replays the same inputs every run.

mod common;

use std::net::Ipv4Addr;

use common::*;
use fulcrum_model::checksum;
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::Mode;
use fulcrum_model::pipeline::{Action, OUT_HEADROOM, Pipeline, Port, Verdict};
use fulcrum_model::rewrite::{GUE_OVERHEAD, IPIP_OVERHEAD};
use fulcrum_model::wire;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, RngSeed, TestCaseError};
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

const APPLIANCE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const POOL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 250);

/// Every mode, both protocols, an L7 service, a backend without a MAC, persistence and
/// every algorithm, over a small flow table so sets fill, evict and expire within a case.
const CONFIG: &str = r#"
[appliance]
name = "robust"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
snat_pool = ["10.0.0.250"]
snat_port_base = 1024
maglev_ring_size = 257
flow_table = { sets = 8, ways = 2 }
timeouts = { tcp_syn = "300ms", tcp_established = "2s", tcp_closing = "200ms", udp = "500ms" }

[[service]]
name = "web-nat"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "maglev"
health = { kind = "none" }
backend = [
  { name = "a", address = "10.0.1.11", port = 8080, mac = "02:00:00:00:01:11" },
  { name = "b", address = "10.0.1.12", port = 8080, mac = "02:00:00:00:01:12" },
  { name = "c", address = "10.0.1.13", port = 8080, mac = "02:00:00:00:01:13" },
]

[[service]]
name = "dns-nat"
vip = "10.0.0.100"
protocol = "udp"
port = 53
mode = "nat"
algorithm = "round_robin"
health = { kind = "none" }
backend = [
  { name = "a", address = "10.0.1.21", port = 5353, mac = "02:00:00:00:01:21" },
  { name = "b", address = "10.0.1.22", port = 5353, mac = "02:00:00:00:01:22" },
]

[[service]]
name = "web-fullnat"
vip = "10.0.0.101"
protocol = "tcp"
port = 80
mode = "fullnat"
algorithm = "least_connections"
sticky = true
health = { kind = "none" }
backend = [
  { name = "a", address = "10.0.2.11", port = 8080, mac = "02:00:00:00:02:11" },
  { name = "b", address = "10.0.2.12", port = 8080, mac = "02:00:00:00:02:12" },
]

[[service]]
name = "ike-fullnat"
vip = "10.0.0.101"
protocol = "udp"
port = 4500
mode = "fullnat"
algorithm = "ip_hash"
health = { kind = "none" }
backend = [
  { name = "a", address = "10.0.2.21", port = 4500, mac = "02:00:00:00:02:21" },
  { name = "b", address = "10.0.2.22", port = 4500, mac = "02:00:00:00:02:22" },
]

[[service]]
name = "web-dsr"
vip = "10.0.0.102"
protocol = "tcp"
port = 80
mode = "dsr"
algorithm = "maglev"
health = { kind = "none" }
backend = [
  { name = "a", address = "10.0.3.11", mac = "02:00:00:00:03:11" },
  { name = "b", address = "10.0.3.12", mac = "02:00:00:00:03:12" },
]

[[service]]
name = "web-ipip"
vip = "10.0.0.103"
protocol = "tcp"
port = 80
mode = "ipip"
algorithm = "maglev"
health = { kind = "none" }
backend = [
  { name = "a", address = "10.0.4.11", mac = "02:00:00:00:04:11" },
  { name = "b", address = "10.0.4.12", mac = "02:00:00:00:04:12" },
]

[[service]]
name = "quic-gue"
vip = "10.0.0.104"
protocol = "udp"
port = 443
mode = "gue"
algorithm = "weighted_round_robin"
health = { kind = "none" }
backend = [
  { name = "a", address = "10.0.5.11", weight = 3, mac = "02:00:00:00:05:11" },
  { name = "b", address = "10.0.5.12", weight = 1, mac = "02:00:00:00:05:12" },
]

[[service]]
name = "web-l7"
vip = "10.0.0.105"
protocol = "tcp"
port = 80
mode = "l7"
algorithm = "round_robin"
health = { kind = "none" }
backend = [{ name = "a", address = "10.0.6.11", port = 8080 }]

[[service]]
name = "unresolved"
vip = "10.0.0.106"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "maglev"
health = { kind = "none" }
backend = [{ name = "a", address = "10.0.7.11", port = 8080 }]
"#;

/// Fixed seed, fixed case count, no persistence: the same inputs on every run.
fn deterministic(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0xF01C_2026),
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

fn control_plane() -> (Owned, ControlPlane) {
    let c = config(CONFIG);
    let mut cp = ControlPlane::new();
    cp.apply(&c).expect("robustness config compiles");
    (Owned::for_config(&c), cp)
}

// ---------------------------------------------------------------------------------------
// Checks run after every frame.

/// Whether the IPv4 header checksum of the packet at `l3` verifies, and whether its
/// TCP/UDP checksum verifies (`None` when it is neither, or too short to tell).
fn checksum_validity(f: &[u8], l3: usize) -> Option<(bool, Option<bool>)> {
    let ip = Ipv4Packet::new_checked(f.get(l3..)?).ok()?;
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let transport = if ip.more_frags() || ip.frag_offset() != 0 {
        None
    } else {
        match ip.next_header() {
            IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
                .ok()
                .map(|t| t.verify_checksum(&s, &d)),
            IpProtocol::Udp => UdpPacket::new_checked(ip.payload())
                .ok()
                .map(|u| u.verify_checksum(&s, &d)),
            _ => None,
        }
    };
    Some((ip.verify_checksum(), transport))
}

fn counters_balance(p: &Pipeline<'_>) -> Result<(), TestCaseError> {
    let c = p.counters();
    let forwarded = c
        .services
        .iter()
        .map(|s| s.packets + s.return_packets)
        .sum::<u64>();
    prop_assert_eq!(
        c.rx_frames,
        forwarded + c.punted() + c.dropped() + c.from_mcu,
        "rx_frames = forwarded {} + punted {} + dropped {} + from_mcu {}",
        forwarded,
        c.punted(),
        c.dropped(),
        c.from_mcu
    );
    Ok(())
}

/// Every live flow entry holds exactly one active-flow count on its backend.
fn active_flows_balance(p: &Pipeline<'_>) -> Result<(), TestCaseError> {
    let mut expected = [0u32; fulcrum_model::tables::BACKEND_SLOTS];
    for e in p.flow_table().slots().iter().filter(|e| e.valid) {
        let b = usize::from(e.backend);
        if p.backend(b).is_some_and(|be| be.generation == e.generation) {
            expected[b] += 1;
        }
    }
    prop_assert_eq!(&expected[..], &p.active_flows()[..]);
    Ok(())
}

/// Sends `frame` in on `port` and checks everything the model promises about the result.
fn send_checked(
    p: &mut Pipeline<'_>,
    now: u64,
    frame: &[u8],
    port: Port,
    out_len: usize,
) -> Result<(Verdict, Vec<u8>), TestCaseError> {
    let mut out = vec![0xA5u8; out_len];
    let v = p.process(now, frame, port, &mut out);
    counters_balance(p)?;
    active_flows_balance(p)?;
    prop_assert!(v.len <= out.len(), "{v:?} longer than out");
    out.truncate(v.len);

    if port == Port::Mcu {
        prop_assert_eq!(v.action, Action::FromMcu);
    }
    match v.action {
        Action::Drop(_) => {
            prop_assert_eq!(v.egress, None);
            prop_assert_eq!(v.len, 0);
        }
        Action::FromMcu => {
            prop_assert_eq!(v.egress, Some(Port::Network));
            prop_assert_eq!(&out[..], frame, "from the MCU unchanged");
        }
        Action::Punt(_) => {
            prop_assert_eq!(v.egress, Some(Port::Mcu));
            prop_assert_eq!(&out[..], frame, "punted unchanged");
        }
        Action::ToBackend { service, .. } => {
            prop_assert_eq!(v.egress, Some(Port::Network));
            let mode = p.service(usize::from(service)).unwrap().mode;
            check_forwarded(frame, &out, mode)?;
        }
        Action::ToClient { service, .. } => {
            prop_assert_eq!(v.egress, Some(Port::Network));
            let svc = *p.service(usize::from(service)).unwrap();
            prop_assert!(matches!(svc.mode, Mode::Nat | Mode::Fullnat));
            check_forwarded(frame, &out, svc.mode)?;
            let (src, _) = endpoints(&out);
            prop_assert_eq!(src, (svc.vip, svc.port), "replies come from the VIP");
        }
    }
    Ok((v, out))
}

/// A forwarded frame (either direction): lengths, MACs and checksum validity.
fn check_forwarded(input: &[u8], out: &[u8], mode: Mode) -> Result<(), TestCaseError> {
    let h = wire::parse(input).expect("a forwarded frame parsed");
    let ip = *h.ipv4().expect("a forwarded frame is IPv4");
    prop_assert!(
        ip.l4.ports().is_some(),
        "forwarded without ports: {:?}",
        ip.l4
    );
    let l3 = h.l3_offset;
    prop_assert_eq!(&out[6..12], &APPLIANCE_MAC, "from the appliance MAC");
    prop_assert_eq!(&out[12..l3], &input[12..l3], "tag and EtherType kept");
    let (in_ip_ok, in_l4_ok) = checksum_validity(input, l3).expect("input is IPv4");
    prop_assert!(in_ip_ok, "the parser forwarded a bad IPv4 header checksum");
    match mode {
        Mode::Nat | Mode::Fullnat | Mode::Dsr => {
            prop_assert_eq!(out.len(), input.len(), "{} keeps the length", mode.name());
            let (out_ip_ok, out_l4_ok) =
                checksum_validity(out, l3).expect("output is IPv4 TCP/UDP");
            prop_assert!(out_ip_ok, "{}: IPv4 checksum broken", mode.name());
            prop_assert!(in_l4_ok.is_some() && out_l4_ok.is_some());
            prop_assert_eq!(
                out_l4_ok,
                in_l4_ok,
                "{}: transport checksum validity changed",
                mode.name()
            );
            // Ethernet padding rides along untouched.
            let end = l3 + ip.total_len;
            prop_assert_eq!(&out[end..], &input[end..], "padding kept");
            if mode == Mode::Dsr {
                prop_assert_eq!(&out[12..], &input[12..], "DSR: only MACs change");
            }
        }
        Mode::Ipip | Mode::Gue => {
            let overhead = if mode == Mode::Gue {
                GUE_OVERHEAD
            } else {
                IPIP_OVERHEAD
            };
            prop_assert_eq!(out.len(), l3 + ip.total_len + overhead);
            let (outer_ok, outer_l4_ok) = checksum_validity(out, l3).expect("outer IPv4");
            prop_assert!(outer_ok, "outer IPv4 checksum");
            if mode == Mode::Gue {
                prop_assert_eq!(outer_l4_ok, Some(true), "GUE UDP (zero checksum)");
            }
            prop_assert_eq!(
                &out[l3 + overhead..],
                &input[l3..l3 + ip.total_len],
                "inner packet intact"
            );
        }
        Mode::L7 => prop_assert!(false, "an L7 service forwarded a frame"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Frames.

/// The valid frames mutations start from.
#[derive(Debug, Clone, Copy)]
enum Template {
    /// From the client to configured service `service` (an index into [`SERVICES`]).
    ToService {
        service: u8,
        flags: u8,
        zero_udp_checksum: bool,
    },
    /// From the client to VIP `vip` (10.0.0.100 + `vip % 7`), any port and protocol.
    ToVip {
        vip: u8,
        port: u16,
        udp: bool,
    },
    /// The backend's answer to the last frame forwarded in NAT or full-NAT mode.
    ReplyToLast {
        flags: u8,
    },
    /// The client's next segment of the last flow forwarded (an established-flow hit).
    Again {
        flags: u8,
    },
    /// From a NAT backend (10.0.1.11..13:8080 TCP, 10.0.1.21..22:5353 UDP) to the client.
    NatReply {
        backend: u8,
        flags: u8,
    },
    /// From a full-NAT backend to the pool, port `1016 + slot % 32` (some below the port
    /// base, most on a slot of the 16-slot table, some beyond it).
    FullnatReply {
        backend: u8,
        slot: u16,
        flags: u8,
    },
    /// ICMP to a VIP or the pool.
    Icmp {
        dst: u8,
    },
    /// A fragment to a VIP: the first (MF) or a later one.
    Fragment {
        vip: u8,
        offset: u16,
    },
    ToAppliance,
    Multicast,
    NotForUs,
    Arp,
    Ipv6,
}

/// (VIP, IP protocol, port) of the configured services, L7 and unresolved included.
const SERVICES: [(Ipv4Addr, u8, u16); 9] = [
    (Ipv4Addr::new(10, 0, 0, 100), 6, 80),
    (Ipv4Addr::new(10, 0, 0, 100), 17, 53),
    (Ipv4Addr::new(10, 0, 0, 101), 6, 80),
    (Ipv4Addr::new(10, 0, 0, 101), 17, 4500),
    (Ipv4Addr::new(10, 0, 0, 102), 6, 80),
    (Ipv4Addr::new(10, 0, 0, 103), 6, 80),
    (Ipv4Addr::new(10, 0, 0, 104), 17, 443),
    (Ipv4Addr::new(10, 0, 0, 105), 6, 80),
    (Ipv4Addr::new(10, 0, 0, 106), 6, 80),
];

const FLAG_CHOICES: [Flags; 5] = [
    SYN,
    ACK,
    FIN,
    SYNACK,
    Flags {
        syn: false,
        ack: false,
        fin: false,
        rst: true,
    },
];

fn vip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 100 + index % 7)
}

/// Client endpoint `index`: 64 addresses, 4 ports each.
fn client(index: u8) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(192, 0, 2, 1 + index % 64),
        40000 + u16::from(index / 64),
    )
}

fn with_proto(mut f: Vec<u8>, proto: u8) -> Vec<u8> {
    f[23] = proto;
    fix_ipv4_checksum(&mut f);
    f
}

/// Recomputes the IPv4 header checksum, if the frame has enough of an IPv4 header.
fn fix_ipv4_checksum(f: &mut [u8]) {
    let l3 = if f.get(12..14) == Some(&[0x81, 0x00]) {
        18
    } else {
        14
    };
    let Some(&vihl) = f.get(l3) else { return };
    let hl = usize::from(vihl & 0x0f) * 4;
    if hl < 20 || f.len() < l3 + hl || f[l3 - 2..l3] != [0x08, 0x00] {
        return;
    }
    f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&f[l3..l3 + hl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// What a case has forwarded so far, for templates that continue a flow.
#[derive(Default)]
struct History {
    /// The last frame forwarded to a backend, as received.
    forward_in: Option<Vec<u8>>,
    /// The last frame forwarded to a NAT or full-NAT backend, as sent.
    nat_out: Option<Vec<u8>>,
}

/// Builds a template's frame.
fn build(t: Template, who: u8, payload: &[u8], history: &History) -> Vec<u8> {
    let me = client(who);
    let mac = [2, 0xc0, 0, 0, 0, 1 + who % 5];
    match t {
        Template::ToService {
            service,
            flags,
            zero_udp_checksum,
        } => {
            let (vip, proto, port) = SERVICES[usize::from(service) % SERVICES.len()];
            let flags = FLAG_CHOICES[usize::from(flags) % 5];
            let mut f = frame(mac, APPLIANCE_MAC, proto, me, (vip, port), flags, payload);
            if proto == 17 && zero_udp_checksum {
                f[40..42].copy_from_slice(&[0, 0]);
            }
            f
        }
        Template::ToVip { vip: v, port, udp } => {
            let proto = if udp { 17 } else { 6 };
            frame(mac, APPLIANCE_MAC, proto, me, (vip(v), port), SYN, payload)
        }
        Template::Again { flags } => match history.forward_in.as_deref() {
            Some(f) => {
                let (src, dst) = endpoints(f);
                let proto = wire::parse(f).unwrap().ipv4().unwrap().protocol;
                let flags = FLAG_CHOICES[usize::from(flags) % 5];
                let client_mac: [u8; 6] = f[6..12].try_into().unwrap();
                frame(client_mac, APPLIANCE_MAC, proto, src, dst, flags, payload)
            }
            None => build(Template::NotForUs, who, payload, history),
        },
        Template::ReplyToLast { flags } => match history.nat_out.as_deref() {
            Some(out) => {
                let (src, dst) = endpoints(out);
                let proto = out[23];
                let flags = FLAG_CHOICES[usize::from(flags) % 5];
                let backend_mac: [u8; 6] = out[0..6].try_into().unwrap();
                frame(backend_mac, APPLIANCE_MAC, proto, dst, src, flags, payload)
            }
            None => build(Template::NotForUs, who, payload, history),
        },
        Template::NatReply { backend, flags } => {
            let b = backend % 5;
            let (src, proto) = if b < 3 {
                ((Ipv4Addr::new(10, 0, 1, 11 + b), 8080), 6)
            } else {
                ((Ipv4Addr::new(10, 0, 1, 18 + b), 5353), 17)
            };
            let flags = FLAG_CHOICES[usize::from(flags) % 5];
            frame(
                [2, 0, 0, 0, 1, 0x11],
                APPLIANCE_MAC,
                proto,
                src,
                me,
                flags,
                payload,
            )
        }
        Template::FullnatReply {
            backend,
            slot,
            flags,
        } => {
            let b = backend % 4;
            let (src, proto) = if b < 2 {
                ((Ipv4Addr::new(10, 0, 2, 11 + b), 8080), 6)
            } else {
                ((Ipv4Addr::new(10, 0, 2, 19 + b), 4500), 17)
            };
            let flags = FLAG_CHOICES[usize::from(flags) % 5];
            let dst = (POOL, 1016 + slot % 32);
            frame(
                [2, 0, 0, 0, 2, 0x11],
                APPLIANCE_MAC,
                proto,
                src,
                dst,
                flags,
                payload,
            )
        }
        Template::Icmp { dst } => {
            let to = if dst % 2 == 0 { vip(dst / 2) } else { POOL };
            with_proto(frame(mac, APPLIANCE_MAC, 17, me, (to, 0), SYN, payload), 1)
        }
        Template::Fragment { vip: v, offset } => {
            let mut f = frame(mac, APPLIANCE_MAC, 6, me, (vip(v), 80), SYN, payload);
            // MF set (offset 0), or a later fragment.
            let word = if offset == 0 { 0x2000 } else { offset & 0x1fff };
            f[20..22].copy_from_slice(&word.to_be_bytes());
            fix_ipv4_checksum(&mut f);
            f
        }
        Template::ToAppliance => frame(
            mac,
            APPLIANCE_MAC,
            6,
            me,
            (Ipv4Addr::new(10, 0, 0, 2), 22),
            SYN,
            payload,
        ),
        Template::Multicast => frame(
            mac,
            [1, 0, 0x5e, 0, 0, 18],
            17,
            me,
            (Ipv4Addr::new(224, 0, 0, 18), 0),
            SYN,
            payload,
        ),
        Template::NotForUs => frame(
            mac,
            APPLIANCE_MAC,
            6,
            me,
            (Ipv4Addr::new(198, 51, 100, 9), 80),
            SYN,
            payload,
        ),
        Template::Arp => {
            let mut f = vec![0u8; 42];
            f[0..6].copy_from_slice(&[0xff; 6]);
            f[6..12].copy_from_slice(&mac);
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            f
        }
        Template::Ipv6 => {
            let mut f = vec![0u8; 54 + payload.len()];
            f[0..6].copy_from_slice(&APPLIANCE_MAC);
            f[6..12].copy_from_slice(&mac);
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f[14] = 0x60;
            f[54..].copy_from_slice(payload);
            f
        }
    }
}

/// Inserts an 802.1Q tag after the MACs.
fn tagged(f: &[u8], tci: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(f.len() + 4);
    t.extend_from_slice(&f[..12]);
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&tci.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

fn template() -> impl Strategy<Value = Template> {
    prop_oneof![
        10 => (0u8..9, 0u8..5, prop::bool::weighted(0.2)).prop_map(
            |(service, flags, zero_udp_checksum)| Template::ToService {
                service,
                flags,
                zero_udp_checksum,
            }
        ),
        5 => (0u8..5).prop_map(|flags| Template::ReplyToLast { flags }),
        5 => (0u8..5).prop_map(|flags| Template::Again { flags }),
        1 => (0u8..7, any::<u16>(), any::<bool>())
            .prop_map(|(vip, port, udp)| Template::ToVip { vip, port, udp }),
        2 => (0u8..5, 0u8..5).prop_map(|(backend, flags)| Template::NatReply { backend, flags }),
        2 => (0u8..4, any::<u16>(), 0u8..5).prop_map(|(backend, slot, flags)| {
            Template::FullnatReply { backend, slot, flags }
        }),
        1 => any::<u8>().prop_map(|dst| Template::Icmp { dst }),
        1 => (0u8..7, 0u16..4).prop_map(|(vip, offset)| Template::Fragment { vip, offset }),
        1 => Just(Template::ToAppliance),
        1 => Just(Template::Multicast),
        1 => Just(Template::NotForUs),
        1 => Just(Template::Arp),
        1 => Just(Template::Ipv6),
    ]
}

/// One frame of a mutation case: a template, how it is dressed, how it is damaged, when
/// and where it arrives.
#[derive(Debug, Clone)]
struct MutatedFrame {
    template: Template,
    client: u8,
    payload_len: usize,
    vlan: Option<u16>,
    padding: usize,
    /// (position, XOR mask): one byte changed (position taken modulo the length).
    mutation: Option<(usize, u8)>,
    /// Recompute the IPv4 header checksum after the mutation, so header damage gets past
    /// the parser's checksum check and into the pipeline.
    fix_ipv4: bool,
    /// Cut the frame to this fraction (per mille) of its length.
    truncate: Option<u16>,
    from_mcu: bool,
    advance_ms: u64,
    age: bool,
}

impl MutatedFrame {
    fn bytes(&self, history: &History) -> Vec<u8> {
        let payload: Vec<u8> = (0..self.payload_len).map(|i| (i * 7 + 3) as u8).collect();
        let mut f = build(self.template, self.client, &payload, history);
        if let Some(tci) = self.vlan {
            f = tagged(&f, tci);
        }
        f.resize(f.len() + self.padding, 0);
        if let Some((at, mask)) = self.mutation {
            let at = at % f.len();
            f[at] ^= mask;
            if self.fix_ipv4 {
                fix_ipv4_checksum(&mut f);
            }
        }
        if let Some(per_mille) = self.truncate {
            let keep = f.len() * usize::from(per_mille) / 1000;
            f.truncate(keep);
        }
        f
    }
}

fn mutated_frame() -> impl Strategy<Value = MutatedFrame> {
    (
        template(),
        // A few regular clients (so flows see more than one frame), and many others (so
        // the 16-slot table fills, evicts and expires).
        prop_oneof![3 => 0u8..3, 1 => any::<u8>()],
        prop_oneof![3 => 0usize..16, 1 => 0usize..1460],
        prop::option::weighted(0.15, any::<u16>()),
        prop_oneof![4 => Just(0usize), 1 => 0usize..20],
        prop::option::weighted(0.5, (any::<usize>(), 1u8..=255)),
        any::<bool>(),
        prop::option::weighted(0.1, 0u16..1000),
        prop::bool::weighted(0.05),
        prop_oneof![4 => Just(0u64), 3 => 0u64..50, 1 => 0u64..3000],
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(
                template,
                client,
                payload_len,
                vlan,
                padding,
                mutation,
                fix_ipv4,
                truncate,
                from_mcu,
                advance_ms,
                age,
            )| MutatedFrame {
                template,
                client,
                payload_len,
                vlan: vlan.map(|t| t & 0x0fff),
                padding,
                mutation,
                fix_ipv4,
                truncate,
                from_mcu,
                advance_ms,
                age,
            },
        )
}

// ---------------------------------------------------------------------------------------
// Properties.

/// An arbitrary frame: raw bytes, optionally made to look like IPv4 to one of the
/// appliance's addresses so that random transport bytes reach the deep stages.
#[derive(Debug, Clone)]
struct RawFrame {
    bytes: Vec<u8>,
    /// `Some(destination)`: EtherType IPv4, version/IHL 0x45, total length fitting the
    /// frame, that destination, and a valid header checksum.
    plausible: Option<(u8, u8)>,
    from_mcu: bool,
    advance_ms: u64,
}

impl RawFrame {
    fn bytes(&self) -> Vec<u8> {
        let mut f = self.bytes.clone();
        if let Some((dst, proto)) = self.plausible
            && f.len() >= 38
        {
            let dsts = [
                vip(0),
                vip(1),
                vip(2),
                vip(3),
                vip(4),
                vip(5),
                vip(6),
                POOL,
                Ipv4Addr::new(10, 0, 0, 2),
            ];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            let total = ((f.len() - 14).min(0xffff)) as u16;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            f[20] &= 0x40; // no fragments, DF as it came
            f[21] = 0;
            f[23] = [6, 17, 1, 4][usize::from(proto) % 4];
            let to = dsts[usize::from(dst) % dsts.len()];
            if dst < 128 {
                f[30..34].copy_from_slice(&to.octets());
                if dst % 2 == 0 {
                    let port = [80u16, 53, 4500, 443][usize::from(dst / 2) % 4];
                    f[36..38].copy_from_slice(&port.to_be_bytes());
                }
            } else {
                // From a NAT backend (the return path).
                f[26..30].copy_from_slice(&[10, 0, 1, 11 + dst % 3]);
                f[34..36].copy_from_slice(&8080u16.to_be_bytes());
                f[30..34].copy_from_slice(&[192, 0, 2, 1]);
                f[23] = 6;
            }
            fix_ipv4_checksum(&mut f);
        }
        f
    }
}

fn raw_frame() -> impl Strategy<Value = RawFrame> {
    (
        prop::collection::vec(any::<u8>(), 0..1600),
        prop::option::weighted(0.6, (any::<u8>(), any::<u8>())),
        prop::bool::weighted(0.1),
        0u64..500,
    )
        .prop_map(|(bytes, plausible, from_mcu, advance_ms)| RawFrame {
            bytes,
            plausible,
            from_mcu,
            advance_ms,
        })
}

proptest! {
    #![proptest_config(deterministic(2000))]

    /// Arbitrary bytes on either port never panic and are counted exactly once.
    #[test]
    fn arbitrary_bytes_are_counted_once_and_never_panic(
        frames in prop::collection::vec(raw_frame(), 1..8)
    ) {
        let (mut owned, cp) = control_plane();
        let mut p = owned.pipeline();
        program(&mut p, &cp);
        let mut now = 1_000u64;
        for raw in &frames {
            now += raw.advance_ms;
            let f = raw.bytes();
            let port = if raw.from_mcu { Port::Mcu } else { Port::Network };
            send_checked(&mut p, now, &f, port, f.len() + OUT_HEADROOM)?;
        }
    }

    /// Valid frames of every kind, then damaged by one byte and/or cut short: no panic,
    /// the counters balance, and what is forwarded keeps its checksums exactly as valid
    /// (or invalid) as they came in.
    #[test]
    fn mutated_and_truncated_frames_keep_checksums_and_counters(
        frames in prop::collection::vec(mutated_frame(), 1..24)
    ) {
        let (mut owned, cp) = control_plane();
        let mut p = owned.pipeline();
        program(&mut p, &cp);
        let mut now = 1_000u64;
        let mut history = History::default();
        for m in &frames {
            now += m.advance_ms;
            if m.age {
                p.age(now, 32);
                counters_balance(&p)?;
                active_flows_balance(&p)?;
            }
            let f = m.bytes(&history);
            let port = if m.from_mcu { Port::Mcu } else { Port::Network };
            let (v, out) = send_checked(&mut p, now, &f, port, f.len() + OUT_HEADROOM)?;
            if let Action::ToBackend { service, .. } = v.action {
                let mode = p.service(usize::from(service)).unwrap().mode;
                if matches!(mode, Mode::Nat | Mode::Fullnat) {
                    history.nat_out = Some(out);
                }
                history.forward_in = Some(f);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// NAT round trip.

/// Addresses a client may not have: the appliance's own, the VIPs, the pool, and
/// broadcast / multicast (replies to those are not return traffic).
fn plausible_client(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    !(addr.is_broadcast()
        || addr.is_multicast()
        || addr == POOL
        || (o[..3] == [10, 0, 0] && (o[3] == 2 || (100..=106).contains(&o[3]))))
}

fn client_endpoint() -> impl Strategy<Value = (Ipv4Addr, u16)> {
    (
        any::<u32>()
            .prop_map(Ipv4Addr::from)
            .prop_filter("a unicast client", |a| plausible_client(*a)),
        any::<u16>(),
    )
}

proptest! {
    #![proptest_config(deterministic(2000))]

    /// For any client endpoint, NAT and full NAT, TCP and UDP: the flow reaches a backend,
    /// the backend's reply reaches the client from exactly the VIP and port it used, to
    /// its own MAC, with valid checksums, and the client's next segment stays on the flow.
    #[test]
    fn nat_round_trip_returns_from_exactly_the_vip(
        client in client_endpoint(),
        client_mac in any::<[u8; 5]>(),
        // (VIP, protocol, port): web-nat, dns-nat, web-fullnat, ike-fullnat.
        service in 0usize..4,
        payload in prop::collection::vec(any::<u8>(), 0..64),
        reply_payload in prop::collection::vec(any::<u8>(), 0..64),
        now in 1_000u64..1_000_000,
    ) {
        let (vip, proto, fullnat) = [
            ((ip(10, 0, 0, 100), 80), 6, false),
            ((ip(10, 0, 0, 100), 53), 17, false),
            ((ip(10, 0, 0, 101), 80), 6, true),
            ((ip(10, 0, 0, 101), 4500), 17, true),
        ][service];
        let mac = [0x02, client_mac[0], client_mac[1], client_mac[2], client_mac[3], client_mac[4]];
        let (mut owned, cp) = control_plane();
        let mut p = owned.pipeline();
        program(&mut p, &cp);

        let open = frame(mac, APPLIANCE_MAC, proto, client, vip, SYN, &payload);
        let (v, fwd) = send_checked(&mut p, now, &open, Port::Network, open.len() + OUT_HEADROOM)?;
        let Action::ToBackend { backend, new_flow: true, .. } = v.action else {
            return Err(TestCaseError::fail(format!("opening frame: {v:?}")));
        };
        let be = *p.backend(usize::from(backend)).unwrap();
        prop_assert!(checksums_valid(&fwd));
        let (src, dst) = endpoints(&fwd);
        prop_assert_eq!(dst, (be.ip(), be.port));
        if fullnat {
            prop_assert_eq!(src.0, POOL);
        } else {
            prop_assert_eq!(src, client);
        }

        let reply = frame(be.mac, APPLIANCE_MAC, proto, dst, src, SYNACK, &reply_payload);
        let (v, back) =
            send_checked(&mut p, now + 1, &reply, Port::Network, reply.len() + OUT_HEADROOM)?;
        prop_assert_eq!(v.action, Action::ToClient { service: service as u8, backend });
        prop_assert_eq!(endpoints(&back), (vip, client));
        prop_assert_eq!(&back[0..6], &mac, "to the client's MAC");
        prop_assert!(checksums_valid(&back));

        let next = frame(mac, APPLIANCE_MAC, proto, client, vip, ACK, &payload);
        let (v, _) = send_checked(&mut p, now + 2, &next, Port::Network, next.len() + OUT_HEADROOM)?;
        prop_assert_eq!(
            v.action,
            Action::ToBackend { service: service as u8, backend, new_flow: false }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Known model bug, documented.

/// `process` promises that an `out` shorter than the frame needs "drops what does not fit
/// as `runt`" and that every frame is counted exactly once. A frame that is punted, or
/// comes from the MCU, and does not fit `out` is counted twice: `punt()` (or the
/// `from_mcu` increment) counts it, then `pass()` finds `out` too short and `drop()`
/// counts a `runt` as well, so `rx_frames` is one less than the sum of the outcomes.
/// Minimal input found by the arbitrary-bytes property: a 59-byte IPv4 ICMP frame to a
/// VIP with an empty `out`. Un-ignore when the model counts such a frame once.
#[test]
fn a_frame_that_does_not_fit_out_is_counted_once() {
    let (mut owned, cp) = control_plane();
    let mut p = owned.pipeline();
    program(&mut p, &cp);
    let icmp = build(Template::Icmp { dst: 0 }, 0, b"ping", &History::default());
    let arp = build(Template::Arp, 0, b"", &History::default());
    for (frame, port) in [
        (&icmp, Port::Network),
        (&arp, Port::Network),
        (&icmp, Port::Mcu),
    ] {
        let mut out = [0u8; 8];
        let v = p.process(1, frame, port, &mut out);
        assert_eq!(
            v.action,
            Action::Drop(fulcrum_model::counters::DropReason::NoBuffer)
        );
        let c = p.counters();
        let forwarded: u64 = c
            .services
            .iter()
            .map(|s| s.packets + s.return_packets)
            .sum();
        assert_eq!(
            c.rx_frames,
            forwarded + c.punted() + c.dropped() + c.from_mcu,
            "{port:?} {v:?}: punts {:?} drops {:?} from_mcu {}",
            c.punts,
            c.drops,
            c.from_mcu
        );
    }
}

/// Raw register writes can set a full-NAT pool count above the pool's 8 addresses
/// (`SNAT_CFG` carries 8 bits of count): the slot of a flow past the 8th address has no
/// source endpoint (the data path drops such a frame as `no_backend`), and nothing panics.
#[test]
fn a_pool_count_above_the_pool_reads_as_the_pool() {
    use fulcrum_model::pipeline::snat_endpoint;
    use fulcrum_model::tables::Settings;
    let mut settings = Settings {
        snat_port_base: 65_000,
        snat_count: 200,
        ..Settings::default()
    };
    for (i, a) in settings.snat_pool.iter_mut().enumerate() {
        *a = Ipv4Addr::new(10, 0, 0, 200 + i as u8);
    }
    let per = 65_536 - 65_000;
    let last = snat_endpoint(&settings, 8 * per - 1).expect("the 8th address");
    assert_eq!(last.addr, [10, 0, 0, 207]);
    assert_eq!(last.port, 65_535);
    for slot in [8 * per, 9 * per + 3, 199 * per] {
        assert_eq!(snat_endpoint(&settings, slot), None, "slot {slot}");
    }
}
