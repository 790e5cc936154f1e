//! Seeded random test frames and the model's expectations for them.
//!
//! [`random_frame`] makes frames of every kind the parser must tell apart: valid TCP,
//! UDP, ICMP, other-protocol and fragmented IPv4 (with and without a VLAN tag, IP
//! options, Ethernet padding), ARP, IPv6, other EtherTypes, stacked tags, and broken
//! ones (cut at a random length, random bytes flipped, header fields set to values the
//! parser must refuse). [`ParsedHeader::from_model`] turns `wire::parse` into the values
//! the hardware must put on its header bundle.

use fulcrum_model::checksum;
use fulcrum_model::wire::{self, L3, L4, ParseError};

use crate::parser::{l4_kind, status};
use crate::sim::Rng;

/// What the header bundle must carry for a frame, in the hardware's encoding.
///
/// Only the fields the verdict makes meaningful are `Some`; the test compares those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParsedHeader {
    /// [`status`] code.
    pub status: u64,
    /// MACs (dst, src) when not a runt.
    pub macs: Option<(u64, u64)>,
    /// VLAN: (present, tci if present).
    pub vlan: Option<(bool, u64)>,
    /// l3 offset when not a runt/stacked VLAN.
    pub l3_offset: Option<u64>,
    /// EtherType for `OTHER`.
    pub ethertype: Option<u64>,
    /// IPv4: (src, dst, protocol, header_len, total_len, l4 offset, l4 kind).
    pub ipv4: Option<(u64, u64, u64, u64, u64, u64, u64)>,
    /// TCP/UDP ports.
    pub ports: Option<(u64, u64)>,
    /// TCP flags as (syn, ack, fin, rst).
    pub tcp_flags: Option<(bool, bool, bool, bool)>,
    /// TCP/UDP checksum bytes as received (what `rewrite_endpoints` reads).
    pub l4_checksum: Option<u64>,
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| acc << 8 | u64::from(b))
}

impl ParsedHeader {
    /// The model's verdict for `frame`, in the hardware's encoding.
    pub fn from_model(frame: &[u8]) -> Self {
        match wire::parse(frame) {
            Err(e) => ParsedHeader {
                status: match e {
                    ParseError::Runt => status::RUNT,
                    ParseError::StackedVlan => status::STACKED_VLAN,
                    ParseError::MalformedIpv4 => status::MALFORMED_IPV4,
                    ParseError::TruncatedIpv4 => status::TRUNCATED_IPV4,
                    ParseError::BadIpv4Checksum => status::BAD_IPV4_CHECKSUM,
                    ParseError::TruncatedL4 => status::TRUNCATED_L4,
                },
                ..Default::default()
            },
            Ok(h) => {
                let mut p = ParsedHeader {
                    macs: Some((be(&h.dst_mac), be(&h.src_mac))),
                    vlan: Some((h.vlan.is_some(), u64::from(h.vlan.unwrap_or(0)))),
                    l3_offset: Some(h.l3_offset as u64),
                    ..Default::default()
                };
                match h.l3 {
                    L3::Arp => p.status = status::ARP,
                    L3::Ipv6 => p.status = status::IPV6,
                    L3::Other(t) => {
                        p.status = status::OTHER;
                        p.ethertype = Some(u64::from(t));
                    }
                    L3::Ipv4(ip) => {
                        p.status = status::IPV4;
                        let kind = match ip.l4 {
                            L4::Tcp {
                                src_port,
                                dst_port,
                                flags,
                            } => {
                                p.ports = Some((u64::from(src_port), u64::from(dst_port)));
                                p.tcp_flags = Some((flags.syn, flags.ack, flags.fin, flags.rst));
                                let at = h.l4_offset() + 16;
                                p.l4_checksum = Some(be(&frame[at..at + 2]));
                                l4_kind::TCP
                            }
                            L4::Udp { src_port, dst_port } => {
                                p.ports = Some((u64::from(src_port), u64::from(dst_port)));
                                let at = h.l4_offset() + 6;
                                p.l4_checksum = Some(be(&frame[at..at + 2]));
                                l4_kind::UDP
                            }
                            L4::Icmp => l4_kind::ICMP,
                            L4::Fragment => l4_kind::FRAGMENT,
                            L4::Other => l4_kind::OTHER,
                        };
                        p.ipv4 = Some((
                            be(&ip.src.octets()),
                            be(&ip.dst.octets()),
                            u64::from(ip.protocol),
                            ip.header_len as u64,
                            ip.total_len as u64,
                            h.l4_offset() as u64,
                            kind,
                        ));
                    }
                }
                p
            }
        }
    }
}

/// Fills in the IPv4 header checksum of the header at `ip` (IHL from byte 0).
pub fn fix_ip_checksum(ip: &mut [u8]) {
    let len = usize::from(ip[0] & 0x0f) * 4;
    if len < 12 || len > ip.len() {
        return;
    }
    ip[10] = 0;
    ip[11] = 0;
    let c = checksum::checksum(&ip[..len]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// A well-formed frame of a random kind (IPv4 TCP/UDP/ICMP/other/fragment, ARP, IPv6,
/// other EtherType), possibly VLAN-tagged, possibly padded.
pub fn valid_frame(rng: &mut Rng) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    for _ in 0..12 {
        f.push(rng.byte());
    }
    if rng.chance(250) {
        f.extend_from_slice(&[0x81, 0x00, rng.byte(), rng.byte()]);
    }
    let kind = rng.below(12);
    match kind {
        0 => {
            f.extend_from_slice(&[0x08, 0x06]);
            for _ in 0..28 {
                f.push(rng.byte());
            }
        }
        1 => {
            f.extend_from_slice(&[0x86, 0xdd]);
            for _ in 0..(40 + rng.below(40)) {
                f.push(rng.byte());
            }
        }
        2 => {
            // Other EtherTypes, QinQ at the outer level included (it is "other" there).
            let t = [0x88a8u16, 0x88cc, 0x0842, rng.next_u64() as u16][rng.below(4) as usize];
            f.extend_from_slice(&t.to_be_bytes());
            for _ in 0..rng.below(64) {
                f.push(rng.byte());
            }
        }
        _ => {
            f.extend_from_slice(&[0x08, 0x00]);
            let ihl = if rng.chance(200) {
                5 + rng.below(11) as usize
            } else {
                5
            };
            let protocol = match kind {
                3..=6 => 6u8,
                7..=9 => 17,
                10 => 1,
                _ => [4u8, 47, 50, 132, rng.byte()][rng.below(5) as usize],
            };
            let mut l4 = Vec::new();
            match protocol {
                6 => {
                    let doff = if rng.chance(200) {
                        5 + rng.below(11) as usize
                    } else {
                        5
                    };
                    for _ in 0..doff * 4 {
                        l4.push(rng.byte());
                    }
                    l4[12] = (doff as u8) << 4 | (l4[12] & 0x0f);
                }
                17 => {
                    for _ in 0..8 {
                        l4.push(rng.byte());
                    }
                }
                _ => {}
            }
            let payload_max = if rng.chance(100) { 600 } else { 40 };
            for _ in 0..rng.below(payload_max) {
                l4.push(rng.byte());
            }
            if protocol == 17 {
                let len = l4.len() as u16;
                l4[4..6].copy_from_slice(&len.to_be_bytes());
            }
            let total = ihl * 4 + l4.len();
            let mut ip = vec![0u8; ihl * 4];
            ip[0] = 0x40 | ihl as u8;
            ip[1] = rng.byte();
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[4] = rng.byte();
            ip[5] = rng.byte();
            let ff: u16 = match rng.below(8) {
                0 => 0x2000 | (rng.next_u64() as u16 & 0x1fff),
                1 => rng.next_u64() as u16 & 0x1fff,
                2 => 0x2000,
                3 => 0x8000,
                _ => 0x4000,
            };
            ip[6..8].copy_from_slice(&ff.to_be_bytes());
            ip[8] = rng.byte();
            ip[9] = protocol;
            for b in &mut ip[12..] {
                *b = rng.byte();
            }
            fix_ip_checksum(&mut ip);
            f.extend_from_slice(&ip);
            f.extend_from_slice(&l4);
        }
    }
    if f.len() < 60 || rng.chance(100) {
        let pad = if f.len() < 60 { 60 - f.len() } else { 0 } + rng.below(8) as usize;
        for _ in 0..pad {
            f.push(if rng.chance(500) { 0 } else { rng.byte() });
        }
    }
    f
}

/// A frame to test the parser with: valid (half), or broken in one of many ways.
pub fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let mut f = valid_frame(rng);
    let tagged = f.len() >= 14 && f[12..14] == [0x81, 0x00];
    let l3 = if tagged { 18 } else { 14 };
    let is_ipv4 = f.len() >= l3 && f[l3 - 2..l3] == [0x08, 0x00];
    match rng.below(16) {
        0..=7 => {}
        8 => f.truncate(rng.below(f.len() as u64 + 1) as usize),
        9 => f.truncate(rng.below(l3 as u64 + 44) as usize),
        10 => {
            for _ in 0..=rng.below(3) {
                let i = rng.below(f.len() as u64) as usize;
                f[i] ^= 1 << rng.below(8);
            }
        }
        11 if tagged => {
            let t = [0x8100u16, 0x88a8][rng.below(2) as usize];
            f[16..18].copy_from_slice(&t.to_be_bytes());
        }
        12 if is_ipv4 => {
            // Header fields the parser must refuse, with the checksum made right again
            // so the refusal is for the field, not the checksum.
            let ip = &mut f[l3..];
            match rng.below(6) {
                0 => ip[0] = (rng.byte() & 0xf0) | (ip[0] & 0x0f),
                1 => ip[0] = 0x40 | (rng.below(5) as u8),
                2 => {
                    let t = rng.below(40) as u16;
                    ip[2..4].copy_from_slice(&t.to_be_bytes());
                }
                3 => {
                    let t =
                        u16::from_be_bytes([ip[2], ip[3]]).wrapping_add(1 + rng.below(8) as u16);
                    ip[2..4].copy_from_slice(&t.to_be_bytes());
                }
                4 => {
                    let t =
                        u16::from_be_bytes([ip[2], ip[3]]).saturating_sub(1 + rng.below(24) as u16);
                    ip[2..4].copy_from_slice(&t.to_be_bytes());
                }
                _ => ip[6] &= 0x9f,
            }
            fix_ip_checksum(ip);
        }
        13 if is_ipv4 => {
            // Transport header fields: TCP data offset, UDP length.
            let ip = &mut f[l3..];
            let hl = usize::from(ip[0] & 0x0f) * 4;
            if ip.len() > hl + 12 {
                let v = rng.byte();
                match ip[9] {
                    6 => ip[hl + 12] = v,
                    _ => {
                        ip[hl + 4] = if rng.chance(500) { 0 } else { v };
                        ip[hl + 5] = rng.byte();
                    }
                }
            }
        }
        14 => {
            let i = rng.below(f.len() as u64) as usize;
            f[i] = rng.byte();
            let cut = rng.below(f.len() as u64 + 1) as usize;
            f.truncate(cut.max(1));
        }
        _ => {}
    }
    if f.is_empty() {
        f.push(rng.byte());
    }
    f
}
