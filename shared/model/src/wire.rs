//! Stage 1, parse: what the fast path reads of a frame, and the exact rules for what it
//! refuses.
//!
//! The parser produces [`Headers`], a small `Copy` summary with the byte offsets of each
//! layer, so later stages rewrite the original bytes in place (zero copy). Header access
//! goes through `smoltcp::wire` views; the one layer smoltcp does not model, the 802.1Q
//! tag, is four bytes read here.
//!
//! The rules below are the specification of the hardware parser; each refusal is a
//! [`ParseError`] the pipeline counts under its own reason:
//!
//! 1. Fewer than 14 bytes: [`ParseError::Runt`]. EtherType `0x8100` takes one tag
//!    (4 more bytes, else `Runt`); a second tag (`0x8100` or `0x88a8` inside) is
//!    [`ParseError::StackedVlan`].
//! 2. EtherType ARP and IPv6 are recognised ([`L3::Arp`], [`L3::Ipv6`]); anything else but
//!    IPv4 is [`L3::Other`].
//! 3. IPv4: version must be 4, IHL at least 5, total length at least the header length and
//!    within the frame (Ethernet padding after it is allowed and ignored), else
//!    [`ParseError::MalformedIpv4`] / [`ParseError::TruncatedIpv4`]. The header checksum
//!    (options included) must verify, else [`ParseError::BadIpv4Checksum`].
//! 4. A fragment (MF set or offset non-zero) carries no transport ports: [`L4::Fragment`].
//! 5. TCP needs its whole header (data offset ≥ 5, within the IP payload), UDP its 8 bytes
//!    and a length field between 8 and the IP payload length, else
//!    [`ParseError::TruncatedL4`]. Transport checksums are not verified: the fast path
//!    cuts through and updates them incrementally, so a bad one stays bad for the
//!    receiver to see.

use core::net::Ipv4Addr;

use smoltcp::wire::{EthernetFrame, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

/// Length of an Ethernet II header without a tag.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) service tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of IP-in-IP.
pub const IPPROTO_IPIP: u8 = 4;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Why the parser refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ParseError {
    /// Shorter than an Ethernet header (or its VLAN tag).
    Runt,
    /// More than one VLAN tag.
    StackedVlan,
    /// IPv4 header fields that cannot be right (version, IHL, total length).
    MalformedIpv4,
    /// The frame ends before the IPv4 header or the length the header claims.
    TruncatedIpv4,
    /// The IPv4 header checksum does not verify.
    BadIpv4Checksum,
    /// The TCP or UDP header is cut short or its length field is inconsistent.
    TruncatedL4,
}

/// The TCP flags the flow table acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// The transport layer of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum L4 {
    /// A TCP segment.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Flags.
        flags: TcpFlags,
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// An ICMP message.
    Icmp,
    /// A fragment of a larger datagram (no ports to read).
    Fragment,
    /// Any other protocol.
    Other,
}

impl L4 {
    /// Source and destination port, where the layer has them.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            L4::Tcp {
                src_port, dst_port, ..
            }
            | L4::Udp { src_port, dst_port } => Some((src_port, dst_port)),
            _ => None,
        }
    }
}

/// The IPv4 layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ipv4Headers {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// Header length in bytes (20 to 60).
    pub header_len: usize,
    /// The total length field (header and payload).
    pub total_len: usize,
    /// The transport layer.
    pub l4: L4,
}

/// The network layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum L3 {
    /// ARP.
    Arp,
    /// IPv6 (recognised, not balanced).
    Ipv6,
    /// IPv4.
    Ipv4(Ipv4Headers),
    /// Any other EtherType.
    Other(u16),
}

/// What the parser learned about a frame: layers and their offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Headers {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// The 802.1Q tag control information, if tagged.
    pub vlan: Option<u16>,
    /// Offset of the network-layer header (14, or 18 when tagged).
    pub l3_offset: usize,
    /// The network layer.
    pub l3: L3,
}

impl Headers {
    /// Offset of the transport header (meaningful for IPv4 only).
    pub fn l4_offset(&self) -> usize {
        match self.l3 {
            L3::Ipv4(ip) => self.l3_offset + ip.header_len,
            _ => self.l3_offset,
        }
    }

    /// The IPv4 layer, if any.
    pub fn ipv4(&self) -> Option<&Ipv4Headers> {
        match &self.l3 {
            L3::Ipv4(ip) => Some(ip),
            _ => None,
        }
    }
}

/// Parses a frame per the rules in the module documentation. Never panics.
pub fn parse(frame: &[u8]) -> Result<Headers, ParseError> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| ParseError::Runt)?;
    let mut ethertype = u16::from(eth.ethertype());
    let mut l3_offset = ETH_HEADER_LEN;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN {
        let tag = frame
            .get(ETH_HEADER_LEN..ETH_HEADER_LEN + VLAN_TAG_LEN)
            .ok_or(ParseError::Runt)?;
        vlan = Some(u16::from_be_bytes([tag[0], tag[1]]));
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        l3_offset += VLAN_TAG_LEN;
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            return Err(ParseError::StackedVlan);
        }
    }
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[0..6]);
    src_mac.copy_from_slice(&frame[6..12]);
    let l3 = match ethertype {
        ETHERTYPE_ARP => L3::Arp,
        ETHERTYPE_IPV6 => L3::Ipv6,
        ETHERTYPE_IPV4 => L3::Ipv4(parse_ipv4(&frame[l3_offset..])?),
        other => L3::Other(other),
    };
    Ok(Headers {
        dst_mac,
        src_mac,
        vlan,
        l3_offset,
        l3,
    })
}

fn parse_ipv4(bytes: &[u8]) -> Result<Ipv4Headers, ParseError> {
    if bytes.len() < 20 {
        return Err(ParseError::TruncatedIpv4);
    }
    let packet = Ipv4Packet::new_unchecked(bytes);
    let header_len = usize::from(packet.header_len());
    let total_len = usize::from(packet.total_len());
    if packet.version() != 4 || header_len < 20 || total_len < header_len {
        return Err(ParseError::MalformedIpv4);
    }
    if bytes.len() < total_len {
        return Err(ParseError::TruncatedIpv4);
    }
    if !packet.verify_checksum() {
        return Err(ParseError::BadIpv4Checksum);
    }
    let protocol = u8::from(packet.next_header());
    let payload = &bytes[header_len..total_len];
    let l4 = if packet.more_frags() || packet.frag_offset() != 0 {
        L4::Fragment
    } else {
        match packet.next_header() {
            IpProtocol::Tcp => parse_tcp(payload)?,
            IpProtocol::Udp => parse_udp(payload)?,
            IpProtocol::Icmp => L4::Icmp,
            _ => L4::Other,
        }
    };
    Ok(Ipv4Headers {
        src: packet.src_addr(),
        dst: packet.dst_addr(),
        protocol,
        header_len,
        total_len,
        l4,
    })
}

fn parse_tcp(payload: &[u8]) -> Result<L4, ParseError> {
    let tcp = TcpPacket::new_checked(payload).map_err(|_| ParseError::TruncatedL4)?;
    Ok(L4::Tcp {
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        flags: TcpFlags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
        },
    })
}

fn parse_udp(payload: &[u8]) -> Result<L4, ParseError> {
    let udp = UdpPacket::new_checked(payload).map_err(|_| ParseError::TruncatedL4)?;
    Ok(L4::Udp {
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
    })
}

/// Byte offsets of the fields the rewrite stage changes, relative to the IPv4 header.
pub mod ipv4_field {
    /// Header checksum.
    pub const CHECKSUM: usize = 10;
    /// Source address.
    pub const SRC: usize = 12;
    /// Destination address.
    pub const DST: usize = 16;
}

/// Byte offsets within a TCP or UDP header.
pub mod l4_field {
    /// Source port.
    pub const SRC_PORT: usize = 0;
    /// Destination port.
    pub const DST_PORT: usize = 2;
    /// The UDP checksum.
    pub const UDP_CHECKSUM: usize = 6;
    /// The TCP checksum.
    pub const TCP_CHECKSUM: usize = 16;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP SYN 10.0.0.1:1234 -> 10.0.0.100:80, untagged, valid IPv4 checksum.
    pub(crate) fn tcp_syn() -> [u8; 54] {
        let mut f = [0u8; 54];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 100]);
        let c = crate::checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let tcp = &mut f[34..54];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02;
        f
    }

    #[test]
    fn parses_tcp_syn() {
        let h = parse(&tcp_syn()).unwrap();
        let ip = h.ipv4().unwrap();
        assert_eq!(ip.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ip.dst, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(h.l4_offset(), 34);
        match ip.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                flags,
            } => {
                assert_eq!((src_port, dst_port), (1234, 80));
                assert!(flags.syn && !flags.ack);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_truncation_is_an_error_or_a_short_layer_never_a_panic() {
        let f = tcp_syn();
        for len in 0..f.len() {
            let r = parse(&f[..len]);
            let expected = match len {
                0..14 => Err(ParseError::Runt),
                _ => Err(ParseError::TruncatedIpv4),
            };
            assert_eq!(r.map(|_| ()), expected.map(|_: ()| ()), "len {len}");
        }
    }

    #[test]
    fn refusals() {
        let mut f = tcp_syn();
        f[14] = 0x65;
        assert_eq!(parse(&f), Err(ParseError::MalformedIpv4));
        let mut f = tcp_syn();
        f[24] ^= 1;
        assert_eq!(parse(&f), Err(ParseError::BadIpv4Checksum));
        let mut f = tcp_syn();
        f[34 + 12] = 4 << 4;
        assert_eq!(parse(&f), Err(ParseError::TruncatedL4));
    }

    #[test]
    fn vlan_tag_and_stacked_tags() {
        let f = tcp_syn();
        let mut t = [0u8; 58];
        t[..12].copy_from_slice(&f[..12]);
        t[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        t[16..].copy_from_slice(&f[12..]);
        let h = parse(&t).unwrap();
        assert_eq!(h.vlan, Some(42));
        assert_eq!(h.l3_offset, 18);
        assert_eq!(h.l4_offset(), 38);
        t[16..18].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(parse(&t), Err(ParseError::StackedVlan));
    }

    #[test]
    fn padding_after_total_length_is_ignored() {
        let f = tcp_syn();
        let mut padded = [0u8; 64];
        padded[..54].copy_from_slice(&f);
        assert_eq!(parse(&padded).unwrap(), parse(&f).unwrap());
    }
}
