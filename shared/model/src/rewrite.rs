//! Stage 5, rewrite: how a frame changes on its way to a backend or back to a client.
//!
//! | mode | client → backend | backend → client |
//! |---|---|---|
//! | NAT | dst IP:port := backend | src IP:port := VIP:port |
//! | full NAT | dst := backend, src := SNAT address:port of the flow's slot | dst := client, src := VIP:port |
//! | DSR | destination MAC only | (not seen) |
//! | IP-in-IP | new outer IPv4 (proto 4) to the backend | (not seen) |
//! | GUE | new outer IPv4 + UDP (variant 1: IP directly in UDP) | (not seen) |
//!
//! In every mode the Ethernet source becomes the appliance MAC and the destination the
//! next hop's MAC (backend, or the client's last source MAC on the return path); a VLAN
//! tag is kept as it came. Address and port changes update the IPv4 header checksum and
//! the TCP/UDP checksum incrementally (RFC 1624), never by recomputation, exactly as the
//! hardware does it in one pass; a UDP checksum of zero ("none") stays zero.
//!
//! Tunnels: the outer header is `45 00 len 0000 4000 40 proto csum src dst` (no options,
//! DF set, TTL 64, ID 0 as RFC 6864 allows for atomic datagrams); GUE's UDP source port is
//! `0xC000 | (flow hash & 0x3FFF)` so the backend's NIC spreads flows over its queues, and
//! its checksum is zero (RFC 6935 zero-checksum is fine for IPv4). Ethernet padding of
//! the original frame is not carried inside the tunnel.

use crate::checksum;
use crate::wire::{ETHERTYPE_IPV4, Headers, IPPROTO_IPIP, IPPROTO_UDP, L4, ipv4_field, l4_field};

/// Largest IPv4 packet a tunnel may send (the network port's MTU).
pub const TUNNEL_MTU: usize = 1500;
/// Bytes an IP-in-IP tunnel adds.
pub const IPIP_OVERHEAD: usize = 20;
/// Bytes a GUE tunnel adds.
pub const GUE_OVERHEAD: usize = 28;

fn read16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn write16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn read32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Sets the Ethernet destination and source MACs.
pub fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
}

/// An endpoint (address and port) to write into a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// IPv4 address.
    pub addr: [u8; 4],
    /// TCP or UDP port.
    pub port: u16,
}

/// Rewrites the source and/or destination endpoint of a parsed TCP or UDP frame in place,
/// updating the IPv4 and transport checksums incrementally. Frames without ports (the
/// parser said otherwise) are left unchanged.
pub fn rewrite_endpoints(
    frame: &mut [u8],
    headers: &Headers,
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
) {
    let Some(ip) = headers.ipv4() else { return };
    let l3 = headers.l3_offset;
    let l4 = headers.l4_offset();
    let checksum_at = match ip.l4 {
        L4::Tcp { .. } => Some(l4 + l4_field::TCP_CHECKSUM),
        L4::Udp { .. } => Some(l4 + l4_field::UDP_CHECKSUM),
        _ => None,
    };
    let is_udp = matches!(ip.l4, L4::Udp { .. });
    let mut ip_sum = read16(frame, l3 + ipv4_field::CHECKSUM);
    let mut l4_sum = checksum_at.map(|at| read16(frame, at));
    let udp_without_checksum = is_udp && l4_sum == Some(0);
    for (endpoint, addr_at, port_at) in [
        (src, l3 + ipv4_field::SRC, l4 + l4_field::SRC_PORT),
        (dst, l3 + ipv4_field::DST, l4 + l4_field::DST_PORT),
    ] {
        let Some(endpoint) = endpoint else { continue };
        let old_addr = read32(frame, addr_at);
        let new_addr = u32::from_be_bytes(endpoint.addr);
        ip_sum = checksum::update32(ip_sum, old_addr, new_addr);
        frame[addr_at..addr_at + 4].copy_from_slice(&endpoint.addr);
        if checksum_at.is_some() {
            let old_port = read16(frame, port_at);
            l4_sum = l4_sum.map(|s| {
                let s = checksum::update32(s, old_addr, new_addr);
                checksum::update16(s, old_port, endpoint.port)
            });
            write16(frame, port_at, endpoint.port);
        }
    }
    write16(frame, l3 + ipv4_field::CHECKSUM, ip_sum);
    if let (Some(at), Some(sum)) = (checksum_at, l4_sum) {
        let sum = if udp_without_checksum {
            0
        } else if is_udp {
            checksum::udp_fixup(sum)
        } else {
            sum
        };
        write16(frame, at, sum);
    }
}

/// What an encapsulation needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// Outer source address.
    pub src: [u8; 4],
    /// Outer destination address (the backend).
    pub dst: [u8; 4],
    /// `None` for IP-in-IP; `Some(destination port)` for GUE.
    pub gue_port: Option<u16>,
    /// The flow hash (GUE source port entropy).
    pub flow_hash: u32,
}

/// Length of the frame [`encapsulate`] writes, or `None` if the outer packet would exceed
/// [`TUNNEL_MTU`].
pub fn encapsulated_len(headers: &Headers, tunnel: &Tunnel) -> Option<usize> {
    let ip = headers.ipv4()?;
    let overhead = if tunnel.gue_port.is_some() {
        GUE_OVERHEAD
    } else {
        IPIP_OVERHEAD
    };
    let outer = ip.total_len + overhead;
    (outer <= TUNNEL_MTU).then_some(headers.l3_offset + outer)
}

/// Writes into `out` the frame `frame` encapsulated towards `tunnel.dst`, with Ethernet
/// `dst_mac`/`src_mac` and the original VLAN tag. Returns the length written, or `None`
/// when the frame is not IPv4, exceeds the MTU, or `out` is too small.
pub fn encapsulate(
    frame: &[u8],
    headers: &Headers,
    tunnel: &Tunnel,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    out: &mut [u8],
) -> Option<usize> {
    let ip = headers.ipv4()?;
    let len = encapsulated_len(headers, tunnel)?;
    if out.len() < len {
        return None;
    }
    let l3 = headers.l3_offset;
    // Ethernet header and tag as received, then the new MACs; the inner EtherType was IPv4.
    out[..l3].copy_from_slice(&frame[..l3]);
    set_macs(out, dst_mac, src_mac);
    write16(out, l3 - 2, ETHERTYPE_IPV4);
    let outer_len = len - l3;
    let protocol = if tunnel.gue_port.is_some() {
        IPPROTO_UDP
    } else {
        IPPROTO_IPIP
    };
    let outer = &mut out[l3..l3 + 20];
    outer.copy_from_slice(&[
        0x45, 0x00, 0, 0, 0x00, 0x00, 0x40, 0x00, 64, protocol, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    write16(outer, 2, outer_len as u16);
    outer[12..16].copy_from_slice(&tunnel.src);
    outer[16..20].copy_from_slice(&tunnel.dst);
    let sum = checksum::checksum(outer);
    write16(outer, ipv4_field::CHECKSUM, sum);
    let mut inner_at = l3 + 20;
    if let Some(port) = tunnel.gue_port {
        let udp = &mut out[inner_at..inner_at + 8];
        write16(udp, 0, 0xC000 | (tunnel.flow_hash as u16 & 0x3FFF));
        write16(udp, 2, port);
        write16(udp, 4, (ip.total_len + 8) as u16);
        write16(udp, 6, 0);
        inner_at += 8;
    }
    out[inner_at..inner_at + ip.total_len].copy_from_slice(&frame[l3..l3 + ip.total_len]);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse;
    use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket, UdpPacket};

    fn frame(protocol: u8, udp_checksum: bool, payload: &[u8]) -> [u8; 128] {
        let mut f = [0u8; 128];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let l4_len = if protocol == 6 { 20 } else { 8 } + payload.len();
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = protocol;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 100]);
        let c = checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let l4 = &mut f[34..34 + l4_len];
        l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        let (src, dst) = (IpAddress::v4(192, 0, 2, 1), IpAddress::v4(10, 0, 0, 100));
        if protocol == 6 {
            l4[12] = 5 << 4;
            l4[13] = 0x18;
            l4[20..].copy_from_slice(payload);
            TcpPacket::new_unchecked(&mut *l4).fill_checksum(&src, &dst);
        } else {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4[8..].copy_from_slice(payload);
            if udp_checksum {
                UdpPacket::new_unchecked(&mut *l4).fill_checksum(&src, &dst);
            }
        }
        f
    }

    fn verify(f: &[u8]) -> (bool, bool) {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let (s, d) = (
            IpAddress::Ipv4(ip.src_addr()),
            IpAddress::Ipv4(ip.dst_addr()),
        );
        let l4 = ip.payload();
        let ok = match ip.next_header() {
            smoltcp::wire::IpProtocol::Tcp => {
                TcpPacket::new_checked(l4).unwrap().verify_checksum(&s, &d)
            }
            _ => UdpPacket::new_checked(l4).unwrap().verify_checksum(&s, &d),
        };
        (ip.verify_checksum(), ok)
    }

    #[test]
    fn nat_rewrite_keeps_checksums_valid() {
        for (proto, payload) in [(6u8, &b"GET / HTTP/1.1\r\n"[..]), (17, &b"dns?"[..])] {
            let mut f = frame(proto, true, payload);
            let h = parse(&f).unwrap();
            let dst = Endpoint {
                addr: [10, 0, 1, 11],
                port: 8080,
            };
            let src = Endpoint {
                addr: [10, 0, 0, 250],
                port: 1024,
            };
            rewrite_endpoints(&mut f, &h, Some(src), Some(dst));
            assert_eq!(verify(&f), (true, true), "proto {proto}");
            let h2 = parse(&f).unwrap();
            assert_eq!(h2.ipv4().unwrap().dst.octets(), [10, 0, 1, 11]);
            assert_eq!(h2.ipv4().unwrap().l4.ports(), Some((1024, 8080)));
        }
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut f = frame(17, false, b"x");
        let h = parse(&f).unwrap();
        rewrite_endpoints(
            &mut f,
            &h,
            None,
            Some(Endpoint {
                addr: [10, 9, 9, 9],
                port: 53,
            }),
        );
        assert_eq!(&f[34 + 6..34 + 8], &[0, 0]);
        assert!(Ipv4Packet::new_checked(&f[14..]).unwrap().verify_checksum());
    }

    #[test]
    fn encapsulation_ipip_and_gue() {
        let f = frame(6, true, b"hello");
        let h = parse(&f).unwrap();
        let inner_len = h.ipv4().unwrap().total_len;
        let mut out = [0u8; 256];
        for gue in [None, Some(6080)] {
            let t = Tunnel {
                src: [10, 0, 0, 2],
                dst: [10, 0, 1, 11],
                gue_port: gue,
                flow_hash: 0x1234_5678,
            };
            let n = encapsulate(
                &f,
                &h,
                &t,
                [2, 0, 0, 0, 1, 11],
                [2, 0, 0, 0, 0, 1],
                &mut out,
            )
            .unwrap();
            let outer = Ipv4Packet::new_checked(&out[14..n]).unwrap();
            assert!(outer.verify_checksum());
            assert!(outer.dont_frag());
            let skip = if gue.is_some() { 8 } else { 0 };
            assert_eq!(n, 14 + 20 + skip + inner_len);
            assert_eq!(&out[34 + skip..n], &f[14..14 + inner_len]);
            if gue.is_some() {
                let udp = UdpPacket::new_checked(outer.payload()).unwrap();
                assert_eq!(udp.src_port(), 0xC000 | 0x1678);
                assert_eq!(udp.dst_port(), 6080);
            } else {
                assert_eq!(u8::from(outer.next_header()), 4);
            }
        }
    }
}
