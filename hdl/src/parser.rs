//! Stage 1, parse: the header parser of the 8-bit datapath (`fulcrum_model::wire::parse`).
//!
//! Frames pass through unchanged from `s_axis` to `m_axis` (combinationally: no latency,
//! no storage). While they pass, the parser captures the header fields at their byte
//! positions and, two cycles after the last byte, offers them with the model's verdict on
//! the side bundle `m_hdr` ([`HeaderSource`]). The verdict needs the whole frame: the
//! model refuses an IPv4 packet whose total length exceeds the frame, so nothing is final
//! before `tlast`. The rewrite stage holds the frame in a buffer anyway (the MAC rewrite
//! is at byte 0), so a header at the end of the frame costs nothing there.
//!
//! Rules reproduced (see `wire.rs`): runt below 14 bytes or a cut 802.1Q tag; stacked
//! tags (`0x8100`/`0x88a8` inside a tag); ARP, IPv6 and other EtherTypes recognised;
//! IPv4 version/IHL/total length (malformed), frame shorter than 20 bytes of IPv4 or than
//! the total length (truncated), header checksum over IHL×4 bytes (options included)
//! with end-around carry; fragments (MF or offset) carry no ports; TCP needs 20 bytes and
//! its data offset within the IP payload, UDP 8 bytes and a length field between 8 and
//! the payload, else truncated L4. Ethernet padding after the total length is ignored.
//!
//! Timing: one byte per cycle while `m_axis.tready`; after the last byte the parser holds
//! `s_axis.tready` low for one cycle to register the verdict's comparisons and then until
//! `m_hdr` is taken, so a frame of `n` bytes occupies `n + 2` cycles when nobody stalls. The byte counter saturates at 65535 (no Ethernet frame is
//! that long). `tuser` passes through; the parser does not act on it (the MAC drops
//! frames with a bad FCS before they get here).

use rust_hdl::prelude::*;

use crate::stream::{ByteStreamMaster, ByteStreamSlave};

/// The verdict classes of `wire::parse`, as carried in [`HeaderSource::status`].
pub mod status {
    /// IPv4, parsed (`Ok` with `L3::Ipv4`).
    pub const IPV4: u64 = 0;
    /// ARP (`L3::Arp`).
    pub const ARP: u64 = 1;
    /// IPv6 (`L3::Ipv6`).
    pub const IPV6: u64 = 2;
    /// Any other EtherType (`L3::Other`).
    pub const OTHER: u64 = 3;
    /// `ParseError::Runt`.
    pub const RUNT: u64 = 8;
    /// `ParseError::StackedVlan`.
    pub const STACKED_VLAN: u64 = 9;
    /// `ParseError::MalformedIpv4`.
    pub const MALFORMED_IPV4: u64 = 10;
    /// `ParseError::TruncatedIpv4`.
    pub const TRUNCATED_IPV4: u64 = 11;
    /// `ParseError::BadIpv4Checksum`.
    pub const BAD_IPV4_CHECKSUM: u64 = 12;
    /// `ParseError::TruncatedL4`.
    pub const TRUNCATED_L4: u64 = 13;
}

/// The transport layer of a parsed IPv4 frame, as carried in [`HeaderSource::l4_kind`].
pub mod l4_kind {
    /// `L4::Tcp`.
    pub const TCP: u64 = 0;
    /// `L4::Udp`.
    pub const UDP: u64 = 1;
    /// `L4::Icmp`.
    pub const ICMP: u64 = 2;
    /// `L4::Fragment`.
    pub const FRAGMENT: u64 = 3;
    /// `L4::Other`.
    pub const OTHER: u64 = 4;
}

/// Parsed headers of one frame, leaving the parser (valid/ready handshake).
///
/// Fields are meaningful as far as `status` says the frame was parsed: MACs whenever
/// the status is not `RUNT`, IPv4 fields for `IPV4`, ports for TCP/UDP.
#[derive(LogicInterface, Default)]
#[join = "HeaderSink"]
pub struct HeaderSource {
    /// The fields below describe a frame.
    pub tvalid: Signal<Out, Bit>,
    /// The receiver takes them this cycle.
    pub tready: Signal<In, Bit>,
    /// Verdict class, see [`status`].
    pub status: Signal<Out, Bits<4>>,
    /// Transport kind for `IPV4`, see [`l4_kind`].
    pub l4_kind: Signal<Out, Bits<3>>,
    /// Destination MAC (byte 0 in the top bits).
    pub dst_mac: Signal<Out, Bits<48>>,
    /// Source MAC.
    pub src_mac: Signal<Out, Bits<48>>,
    /// The frame has one 802.1Q tag.
    pub vlan_present: Signal<Out, Bit>,
    /// The tag control information (PCP, DEI, VID) when tagged.
    pub vlan_tci: Signal<Out, Bits<16>>,
    /// The EtherType after the tag, if any.
    pub ethertype: Signal<Out, Bits<16>>,
    /// Offset of the network header: 14, or 18 when tagged.
    pub l3_offset: Signal<Out, Bits<8>>,
    /// IPv4 header length in bytes (IHL × 4).
    pub ip_header_len: Signal<Out, Bits<8>>,
    /// IPv4 total length field.
    pub ip_total_len: Signal<Out, Bits<16>>,
    /// IPv4 flags and fragment offset field (DF = 0x4000, MF = 0x2000).
    pub ip_flags_frag: Signal<Out, Bits<16>>,
    /// IPv4 header checksum field, as received.
    pub ip_checksum: Signal<Out, Bits<16>>,
    /// IPv4 protocol number.
    pub protocol: Signal<Out, Bits<8>>,
    /// IPv4 source address (first byte in the top bits).
    pub src_ip: Signal<Out, Bits<32>>,
    /// IPv4 destination address.
    pub dst_ip: Signal<Out, Bits<32>>,
    /// Offset of the transport header (`l3_offset + ip_header_len`).
    pub l4_offset: Signal<Out, Bits<8>>,
    /// TCP/UDP source port.
    pub src_port: Signal<Out, Bits<16>>,
    /// TCP/UDP destination port.
    pub dst_port: Signal<Out, Bits<16>>,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
    pub tcp_flags: Signal<Out, Bits<8>>,
    /// TCP or UDP checksum as received (transport offset 16 or 6), for the rewrite.
    pub l4_checksum: Signal<Out, Bits<16>>,
    /// Frame length in bytes (saturating at 65535).
    pub frame_len: Signal<Out, Bits<16>>,
}

/// The receiving side of [`HeaderSource`].
#[derive(LogicInterface, Default)]
#[join = "HeaderSource"]
pub struct HeaderSink {
    /// See [`HeaderSource`].
    pub tvalid: Signal<In, Bit>,
    /// See [`HeaderSource`].
    pub tready: Signal<Out, Bit>,
    /// See [`HeaderSource`].
    pub status: Signal<In, Bits<4>>,
    /// See [`HeaderSource`].
    pub l4_kind: Signal<In, Bits<3>>,
    /// See [`HeaderSource`].
    pub dst_mac: Signal<In, Bits<48>>,
    /// See [`HeaderSource`].
    pub src_mac: Signal<In, Bits<48>>,
    /// See [`HeaderSource`].
    pub vlan_present: Signal<In, Bit>,
    /// See [`HeaderSource`].
    pub vlan_tci: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub ethertype: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub l3_offset: Signal<In, Bits<8>>,
    /// See [`HeaderSource`].
    pub ip_header_len: Signal<In, Bits<8>>,
    /// See [`HeaderSource`].
    pub ip_total_len: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub ip_flags_frag: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub ip_checksum: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub protocol: Signal<In, Bits<8>>,
    /// See [`HeaderSource`].
    pub src_ip: Signal<In, Bits<32>>,
    /// See [`HeaderSource`].
    pub dst_ip: Signal<In, Bits<32>>,
    /// See [`HeaderSource`].
    pub l4_offset: Signal<In, Bits<8>>,
    /// See [`HeaderSource`].
    pub src_port: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub dst_port: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub tcp_flags: Signal<In, Bits<8>>,
    /// See [`HeaderSource`].
    pub l4_checksum: Signal<In, Bits<16>>,
    /// See [`HeaderSource`].
    pub frame_len: Signal<In, Bits<16>>,
}

/// The header parser (8-bit datapath).
#[derive(LogicBlock)]
pub struct HeaderParser {
    /// The datapath clock (125 MHz for GMII/RGMII).
    pub clock: Signal<In, Clock>,
    /// Frames in.
    pub s_axis: ByteStreamSlave,
    /// The same frames out, unchanged.
    pub m_axis: ByteStreamMaster,
    /// Parsed headers, one per frame, two cycles after its last byte.
    pub m_hdr: HeaderSource,

    // Position of the next byte in the frame, and the "frame ended, header offered" state.
    count: DFF<Bits<16>>,
    // Bytes of the frame from the network header on, and from the transport header on.
    l3_count: DFF<Bits<16>>,
    l4_count: DFF<Bits<16>>,
    // The counters have passed 31 (every field is captured below 32: the captures
    // compare five bits and this flag, not sixteen bits).
    c_far: DFF<Bit>,
    l3_far: DFF<Bit>,
    l4_far: DFF<Bit>,
    // The next network-header byte is past the IPv4 header, and the header bytes left
    // after this one (a count down from the IHL: no 16-bit compare of the position with
    // the header length in front of every transport capture).
    past_hdr: DFF<Bit>,
    hdr_rem: DFF<Bits<6>>,
    tagged_q: DFF<Bit>,
    in_l3_q: DFF<Bit>,
    done: DFF<Bit>,
    // The verdict's comparisons, registered the cycle after the last byte.
    flagged: DFF<Bit>,
    f_runt: DFF<Bit>,
    f_stacked: DFF<Bit>,
    f_arp: DFF<Bit>,
    f_ipv6: DFF<Bit>,
    f_ipv4: DFF<Bit>,
    f_l3_short: DFF<Bit>,
    f_malformed: DFF<Bit>,
    f_truncated: DFF<Bit>,
    f_bad_csum: DFF<Bit>,
    f_fragment: DFF<Bit>,
    f_tcp: DFF<Bit>,
    f_udp: DFF<Bit>,
    f_icmp: DFF<Bit>,
    f_tcp_bad: DFF<Bit>,
    f_udp_bad: DFF<Bit>,
    // Captured bytes: shift registers filled at their byte positions.
    dst_mac: DFF<Bits<48>>,
    src_mac: DFF<Bits<48>>,
    outer_type: DFF<Bits<16>>,
    tci: DFF<Bits<16>>,
    inner_type: DFF<Bits<16>>,
    ver_ihl: DFF<Bits<8>>,
    total_len: DFF<Bits<16>>,
    flags_frag: DFF<Bits<16>>,
    protocol: DFF<Bits<8>>,
    ip_checksum: DFF<Bits<16>>,
    src_ip: DFF<Bits<32>>,
    dst_ip: DFF<Bits<32>>,
    src_port: DFF<Bits<16>>,
    dst_port: DFF<Bits<16>>,
    udp_len: DFF<Bits<16>>,
    tcp_offset: DFF<Bits<8>>,
    tcp_flags: DFF<Bits<8>>,
    tcp_csum: DFF<Bits<16>>,
    udp_csum: DFF<Bits<16>>,
    // Ones-complement sum of the IPv4 header words so far, and the high byte of a word.
    csum: DFF<Bits<16>>,
    csum_high: DFF<Bits<8>>,

    // Combinational helpers (rust-hdl has no `let`).
    beat: Signal<Local, Bit>,
    byte16: Signal<Local, Bits<16>>,
    tagged: Signal<Local, Bit>,
    l3_off: Signal<Local, Bits<16>>,
    in_l3: Signal<Local, Bit>,
    c_idx: Signal<Local, Bits<5>>,
    l3_idx: Signal<Local, Bits<5>>,
    hdr_len: Signal<Local, Bits<16>>,
    in_ip_header: Signal<Local, Bit>,
    in_l4: Signal<Local, Bit>,
    l4_idx: Signal<Local, Bits<5>>,
    csum_word: Signal<Local, Bits<17>>,
    csum_sum: Signal<Local, Bits<17>>,
    ethertype: Signal<Local, Bits<16>>,
    l3_len: Signal<Local, Bits<16>>,
    payload_len: Signal<Local, Bits<16>>,
    tcp_hdr_len: Signal<Local, Bits<16>>,
    verdict: Signal<Local, Bits<4>>,
    kind: Signal<Local, Bits<3>>,
}

impl HeaderParser {
    /// A parser in its idle state.
    pub fn new() -> Self {
        HeaderParser {
            clock: Default::default(),
            s_axis: Default::default(),
            m_axis: Default::default(),
            m_hdr: Default::default(),
            count: Default::default(),
            l3_count: Default::default(),
            l4_count: Default::default(),
            c_far: Default::default(),
            l3_far: Default::default(),
            l4_far: Default::default(),
            past_hdr: Default::default(),
            hdr_rem: Default::default(),
            tagged_q: Default::default(),
            in_l3_q: Default::default(),
            done: Default::default(),
            flagged: Default::default(),
            f_runt: Default::default(),
            f_stacked: Default::default(),
            f_arp: Default::default(),
            f_ipv6: Default::default(),
            f_ipv4: Default::default(),
            f_l3_short: Default::default(),
            f_malformed: Default::default(),
            f_truncated: Default::default(),
            f_bad_csum: Default::default(),
            f_fragment: Default::default(),
            f_tcp: Default::default(),
            f_udp: Default::default(),
            f_icmp: Default::default(),
            f_tcp_bad: Default::default(),
            f_udp_bad: Default::default(),
            dst_mac: Default::default(),
            src_mac: Default::default(),
            outer_type: Default::default(),
            tci: Default::default(),
            inner_type: Default::default(),
            ver_ihl: Default::default(),
            total_len: Default::default(),
            flags_frag: Default::default(),
            protocol: Default::default(),
            ip_checksum: Default::default(),
            src_ip: Default::default(),
            dst_ip: Default::default(),
            src_port: Default::default(),
            dst_port: Default::default(),
            udp_len: Default::default(),
            tcp_offset: Default::default(),
            tcp_flags: Default::default(),
            tcp_csum: Default::default(),
            udp_csum: Default::default(),
            csum: Default::default(),
            csum_high: Default::default(),
            beat: Default::default(),
            byte16: Default::default(),
            tagged: Default::default(),
            l3_off: Default::default(),
            in_l3: Default::default(),
            c_idx: Default::default(),
            l3_idx: Default::default(),
            hdr_len: Default::default(),
            in_ip_header: Default::default(),
            in_l4: Default::default(),
            l4_idx: Default::default(),
            csum_word: Default::default(),
            csum_sum: Default::default(),
            ethertype: Default::default(),
            l3_len: Default::default(),
            payload_len: Default::default(),
            tcp_hdr_len: Default::default(),
            verdict: Default::default(),
            kind: Default::default(),
        }
    }
}

impl Default for HeaderParser {
    fn default() -> Self {
        Self::new()
    }
}

impl Logic for HeaderParser {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            count,
            l3_count,
            l4_count,
            c_far,
            l3_far,
            l4_far,
            past_hdr,
            hdr_rem,
            tagged_q,
            in_l3_q,
            done,
            dst_mac,
            src_mac,
            outer_type,
            tci,
            inner_type,
            ver_ihl,
            total_len,
            flags_frag,
            protocol,
            ip_checksum,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            udp_len,
            tcp_offset,
            tcp_flags,
            tcp_csum,
            udp_csum,
            csum,
            csum_high,
            flagged,
            f_runt,
            f_stacked,
            f_arp,
            f_ipv6,
            f_ipv4,
            f_l3_short,
            f_malformed,
            f_truncated,
            f_bad_csum,
            f_fragment,
            f_tcp,
            f_udp,
            f_icmp,
            f_tcp_bad,
            f_udp_bad
        );

        // Pass-through; stalled while the previous frame's header waits.
        self.m_axis.tdata.next = self.s_axis.tdata.val();
        self.m_axis.tkeep.next = self.s_axis.tkeep.val();
        self.m_axis.tlast.next = self.s_axis.tlast.val();
        self.m_axis.tuser.next = self.s_axis.tuser.val();
        self.m_axis.tvalid.next = self.s_axis.tvalid.val() & !self.done.q.val();
        self.s_axis.tready.next = self.m_axis.tready.val() & !self.done.q.val();
        self.beat.next = self.s_axis.tvalid.val() & self.m_axis.tready.val() & !self.done.q.val();
        self.byte16.next = bit_cast::<16, 8>(self.s_axis.tdata.val());

        // Where the byte on the bus sits in the frame.
        // Registered: the tag and "the next byte is in the network header" are known
        // a byte ahead (comparing the EtherType every cycle was the critical path).
        self.tagged.next = self.tagged_q.q.val();
        self.l3_off.next = 14.into();
        if self.tagged.val() {
            self.l3_off.next = 18.into();
        }
        self.in_l3.next = self.in_l3_q.q.val();
        // Positions inside the IPv4 and transport headers are counters, not differences
        // of the frame position: no subtractor in the per-byte path.
        // (Their low five bits: the captures below 32 also check the `_far` flags.)
        self.c_idx.next = self.count.q.val().get_bits::<5>(0);
        self.l3_idx.next = self.l3_count.q.val().get_bits::<5>(0);
        self.hdr_len.next = bit_cast::<16, 8>(self.ver_ihl.q.val() & 0x0f) << 2;
        // At IPv4 byte 0 the IHL is being captured; byte 0 is in the header whatever it
        // is; byte k > 0 is when k < IHL × 4 (`past_hdr`, below).
        self.in_ip_header.next = self.in_l3.val() & !self.past_hdr.q.val();
        self.in_l4.next = self.in_l3.val() & !self.in_ip_header.val();
        self.l4_idx.next = self.l4_count.q.val().get_bits::<5>(0);
        self.csum_word.next = (bit_cast::<17, 8>(self.csum_high.q.val()) << 8)
            | bit_cast::<17, 8>(self.s_axis.tdata.val());
        self.csum_sum.next = bit_cast::<17, 16>(self.csum.q.val()) + self.csum_word.val();

        if self.beat.val() {
            if self.count.q.val() != 0xffff {
                self.count.d.next = self.count.q.val() + 1;
            }
            if self.c_idx.val() == 31 {
                self.c_far.d.next = true;
            }
            if self.in_l3.val() & (self.l3_count.q.val() != 0xffff) {
                self.l3_count.d.next = self.l3_count.q.val() + 1;
                if self.l3_idx.val() == 31 {
                    self.l3_far.d.next = true;
                }
            }
            if self.in_l3.val() {
                if !self.l3_far.q.val() & (self.l3_idx.val() == 0) {
                    // IHL × 4 - 1 header bytes after this one (none for IHL 0).
                    self.hdr_rem.d.next =
                        (bit_cast::<6, 4>(self.s_axis.tdata.val().get_bits::<4>(0)) << 2) - 1;
                    if self.s_axis.tdata.val().get_bits::<4>(0) == 0 {
                        self.hdr_rem.d.next = 0.into();
                        self.past_hdr.d.next = true;
                    }
                } else if self.hdr_rem.q.val() != 0 {
                    self.hdr_rem.d.next = self.hdr_rem.q.val() - 1;
                    if self.hdr_rem.q.val() == 1 {
                        self.past_hdr.d.next = true;
                    }
                } else {
                    self.past_hdr.d.next = true;
                }
            }
            if self.in_l4.val() & (self.l4_count.q.val() != 0xffff) {
                self.l4_count.d.next = self.l4_count.q.val() + 1;
                if self.l4_idx.val() == 31 {
                    self.l4_far.d.next = true;
                }
            }
        }
        // The captures: every field lies below byte 32 of its counter.
        if self.beat.val() & !self.c_far.q.val() {
            if self.c_idx.val() < 6 {
                self.dst_mac.d.next =
                    (self.dst_mac.q.val() << 8) | bit_cast::<48, 8>(self.s_axis.tdata.val());
            }
            if (self.c_idx.val() >= 6) & (self.c_idx.val() < 12) {
                self.src_mac.d.next =
                    (self.src_mac.q.val() << 8) | bit_cast::<48, 8>(self.s_axis.tdata.val());
            }
            if self.c_idx.val() == 13 {
                // The EtherType is complete with this byte: 0x8100 tags, else L3 follows.
                if (self.outer_type.q.val().get_bits::<8>(0) == 0x81)
                    & (self.s_axis.tdata.val() == 0x00)
                {
                    self.tagged_q.d.next = true;
                } else {
                    self.in_l3_q.d.next = true;
                }
            }
            if (self.c_idx.val() == 17) & self.tagged_q.q.val() {
                self.in_l3_q.d.next = true;
            }
            if (self.c_idx.val() == 12) | (self.c_idx.val() == 13) {
                self.outer_type.d.next = (self.outer_type.q.val() << 8) | self.byte16.val();
            }
            if (self.c_idx.val() == 14) | (self.c_idx.val() == 15) {
                self.tci.d.next = (self.tci.q.val() << 8) | self.byte16.val();
            }
            if (self.c_idx.val() == 16) | (self.c_idx.val() == 17) {
                self.inner_type.d.next = (self.inner_type.q.val() << 8) | self.byte16.val();
            }
        }
        if self.beat.val() {
            if self.in_l3.val() & !self.l3_far.q.val() {
                if self.l3_idx.val() == 0 {
                    self.ver_ihl.d.next = self.s_axis.tdata.val();
                }
                if (self.l3_idx.val() == 2) | (self.l3_idx.val() == 3) {
                    self.total_len.d.next = (self.total_len.q.val() << 8) | self.byte16.val();
                }
                if (self.l3_idx.val() == 6) | (self.l3_idx.val() == 7) {
                    self.flags_frag.d.next = (self.flags_frag.q.val() << 8) | self.byte16.val();
                }
                if self.l3_idx.val() == 9 {
                    self.protocol.d.next = self.s_axis.tdata.val();
                }
                if (self.l3_idx.val() == 10) | (self.l3_idx.val() == 11) {
                    self.ip_checksum.d.next = (self.ip_checksum.q.val() << 8) | self.byte16.val();
                }
                if (self.l3_idx.val() >= 12) & (self.l3_idx.val() < 16) {
                    self.src_ip.d.next =
                        (self.src_ip.q.val() << 8) | bit_cast::<32, 8>(self.s_axis.tdata.val());
                }
                if (self.l3_idx.val() >= 16) & (self.l3_idx.val() < 20) {
                    self.dst_ip.d.next =
                        (self.dst_ip.q.val() << 8) | bit_cast::<32, 8>(self.s_axis.tdata.val());
                }
            }
            if self.in_ip_header.val() {
                if self.l3_idx.val().get_bit(0) {
                    // End-around carry: the ones-complement sum stays in 16 bits.
                    self.csum.d.next = self.csum_sum.val().get_bits::<16>(0)
                        + bit_cast::<16, 1>(self.csum_sum.val().get_bits::<1>(16));
                } else {
                    self.csum_high.d.next = self.s_axis.tdata.val();
                }
            }
            if self.in_l4.val() & !self.l4_far.q.val() {
                if self.l4_idx.val() < 2 {
                    self.src_port.d.next = (self.src_port.q.val() << 8) | self.byte16.val();
                }
                if (self.l4_idx.val() == 2) | (self.l4_idx.val() == 3) {
                    self.dst_port.d.next = (self.dst_port.q.val() << 8) | self.byte16.val();
                }
                if (self.l4_idx.val() == 4) | (self.l4_idx.val() == 5) {
                    self.udp_len.d.next = (self.udp_len.q.val() << 8) | self.byte16.val();
                }
                if self.l4_idx.val() == 12 {
                    self.tcp_offset.d.next = self.s_axis.tdata.val() >> 4;
                }
                if self.l4_idx.val() == 13 {
                    self.tcp_flags.d.next = self.s_axis.tdata.val();
                }
                if (self.l4_idx.val() == 6) | (self.l4_idx.val() == 7) {
                    self.udp_csum.d.next = (self.udp_csum.q.val() << 8) | self.byte16.val();
                }
                if (self.l4_idx.val() == 16) | (self.l4_idx.val() == 17) {
                    self.tcp_csum.d.next = (self.tcp_csum.q.val() << 8) | self.byte16.val();
                }
            }
            if self.s_axis.tlast.val() {
                self.done.d.next = true;
            }
        }

        // The verdict, in two steps once the frame has ended: the cycle after the last
        // byte registers every comparison the rules need (flags), the next one orders
        // them by the rules of wire.rs. Computing it in one go from the counters was
        // the critical path of the core (74 MHz). Codes are literals: rust-hdl would emit
        // a path to a Rust constant as an undeclared Verilog identifier; the names are in
        // `status` / `l4_kind`.
        self.ethertype.next = self.outer_type.q.val();
        if self.tagged.val() {
            self.ethertype.next = self.inner_type.q.val();
        }
        self.l3_len.next = self.l3_count.q.val();
        self.payload_len.next = self.total_len.q.val() - self.hdr_len.val();
        self.tcp_hdr_len.next = bit_cast::<16, 8>(self.tcp_offset.q.val()) << 2;
        if self.done.q.val() & !self.flagged.q.val() {
            self.flagged.d.next = true;
            self.f_runt.d.next =
                (self.count.q.val() < 14) | (self.tagged.val() & (self.count.q.val() < 18));
            self.f_stacked.d.next = self.tagged.val()
                & ((self.inner_type.q.val() == 0x8100) | (self.inner_type.q.val() == 0x88a8));
            self.f_arp.d.next = self.ethertype.val() == 0x0806;
            self.f_ipv6.d.next = self.ethertype.val() == 0x86dd;
            self.f_ipv4.d.next = self.ethertype.val() == 0x0800;
            self.f_l3_short.d.next = self.l3_len.val() < 20;
            self.f_malformed.d.next = (self.ver_ihl.q.val().get_bits::<4>(4) != 4)
                | (self.hdr_len.val() < 20)
                | (self.total_len.q.val() < self.hdr_len.val());
            self.f_truncated.d.next = self.l3_len.val() < self.total_len.q.val();
            self.f_bad_csum.d.next = self.csum.q.val() != 0xffff;
            self.f_fragment.d.next = (self.flags_frag.q.val() & 0x3fff) != 0;
            self.f_tcp.d.next = self.protocol.q.val() == 6;
            self.f_udp.d.next = self.protocol.q.val() == 17;
            self.f_icmp.d.next = self.protocol.q.val() == 1;
            self.f_tcp_bad.d.next = (self.payload_len.val() < 20)
                | (self.tcp_hdr_len.val() < 20)
                | (self.payload_len.val() < self.tcp_hdr_len.val());
            self.f_udp_bad.d.next = (self.payload_len.val() < 8)
                | (self.udp_len.q.val() < 8)
                | (self.payload_len.val() < self.udp_len.q.val());
        }
        self.kind.next = 4.into(); // OTHER
        if self.f_runt.q.val() {
            self.verdict.next = 8.into(); // RUNT
        } else if self.f_stacked.q.val() {
            self.verdict.next = 9.into(); // STACKED_VLAN
        } else if self.f_arp.q.val() {
            self.verdict.next = 1.into(); // ARP
        } else if self.f_ipv6.q.val() {
            self.verdict.next = 2.into(); // IPV6
        } else if !self.f_ipv4.q.val() {
            self.verdict.next = 3.into(); // OTHER
        } else if self.f_l3_short.q.val() {
            self.verdict.next = 11.into(); // TRUNCATED_IPV4
        } else if self.f_malformed.q.val() {
            self.verdict.next = 10.into(); // MALFORMED_IPV4
        } else if self.f_truncated.q.val() {
            self.verdict.next = 11.into(); // TRUNCATED_IPV4
        } else if self.f_bad_csum.q.val() {
            self.verdict.next = 12.into(); // BAD_IPV4_CHECKSUM
        } else {
            self.verdict.next = 0.into(); // IPV4
            if self.f_fragment.q.val() {
                self.kind.next = 3.into(); // FRAGMENT
            } else if self.f_tcp.q.val() {
                self.kind.next = 0.into(); // TCP
                if self.f_tcp_bad.q.val() {
                    self.verdict.next = 13.into(); // TRUNCATED_L4
                }
            } else if self.f_udp.q.val() {
                self.kind.next = 1.into(); // UDP
                if self.f_udp_bad.q.val() {
                    self.verdict.next = 13.into(); // TRUNCATED_L4
                }
            } else if self.f_icmp.q.val() {
                self.kind.next = 2.into(); // ICMP
            }
        }

        self.m_hdr.tvalid.next = self.flagged.q.val();
        self.m_hdr.status.next = self.verdict.val();
        self.m_hdr.l4_kind.next = self.kind.val();
        self.m_hdr.dst_mac.next = self.dst_mac.q.val();
        self.m_hdr.src_mac.next = self.src_mac.q.val();
        self.m_hdr.vlan_present.next = self.tagged.val();
        self.m_hdr.vlan_tci.next = self.tci.q.val();
        self.m_hdr.ethertype.next = self.ethertype.val();
        self.m_hdr.l3_offset.next = self.l3_off.val().get_bits::<8>(0);
        self.m_hdr.ip_header_len.next = self.hdr_len.val().get_bits::<8>(0);
        self.m_hdr.ip_total_len.next = self.total_len.q.val();
        self.m_hdr.ip_flags_frag.next = self.flags_frag.q.val();
        self.m_hdr.ip_checksum.next = self.ip_checksum.q.val();
        self.m_hdr.protocol.next = self.protocol.q.val();
        self.m_hdr.src_ip.next = self.src_ip.q.val();
        self.m_hdr.dst_ip.next = self.dst_ip.q.val();
        self.m_hdr.l4_offset.next =
            self.l3_off.val().get_bits::<8>(0) + self.hdr_len.val().get_bits::<8>(0);
        self.m_hdr.src_port.next = self.src_port.q.val();
        self.m_hdr.dst_port.next = self.dst_port.q.val();
        self.m_hdr.tcp_flags.next = self.tcp_flags.q.val();
        self.m_hdr.l4_checksum.next = self.udp_csum.q.val();
        if self.protocol.q.val() == 6 {
            self.m_hdr.l4_checksum.next = self.tcp_csum.q.val();
        }
        self.m_hdr.frame_len.next = self.count.q.val();

        // Header taken: back to idle, every capture cleared for the next frame.
        if self.flagged.q.val() & self.m_hdr.tready.val() {
            self.done.d.next = false;
            self.flagged.d.next = false;
            self.count.d.next = 0.into();
            self.l3_count.d.next = 0.into();
            self.l4_count.d.next = 0.into();
            self.c_far.d.next = false;
            self.l3_far.d.next = false;
            self.l4_far.d.next = false;
            self.past_hdr.d.next = false;
            self.hdr_rem.d.next = 0.into();
            self.tagged_q.d.next = false;
            self.in_l3_q.d.next = false;
            self.dst_mac.d.next = 0.into();
            self.src_mac.d.next = 0.into();
            self.outer_type.d.next = 0.into();
            self.tci.d.next = 0.into();
            self.inner_type.d.next = 0.into();
            self.ver_ihl.d.next = 0.into();
            self.total_len.d.next = 0.into();
            self.flags_frag.d.next = 0.into();
            self.protocol.d.next = 0.into();
            self.ip_checksum.d.next = 0.into();
            self.src_ip.d.next = 0.into();
            self.dst_ip.d.next = 0.into();
            self.src_port.d.next = 0.into();
            self.dst_port.d.next = 0.into();
            self.udp_len.d.next = 0.into();
            self.tcp_offset.d.next = 0.into();
            self.tcp_flags.d.next = 0.into();
            self.tcp_csum.d.next = 0.into();
            self.udp_csum.d.next = 0.into();
            self.csum.d.next = 0.into();
            self.csum_high.d.next = 0.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{ByteSource, Rng, Traffic, settle, tick};
    use crate::vectors::{ParsedHeader, random_frame};

    #[test]
    fn header_parser_is_synthesizable() {
        let mut uut = HeaderParser::new();
        uut.clock.connect();
        uut.s_axis.tdata.connect();
        uut.s_axis.tkeep.connect();
        uut.s_axis.tvalid.connect();
        uut.s_axis.tlast.connect();
        uut.s_axis.tuser.connect();
        uut.m_axis.tready.connect();
        uut.m_hdr.tready.connect();
        uut.connect_all();
        crate::verilog::validate("header_parser", &generate_verilog(&uut));
    }

    /// What the header bundle carries, read back in the model's terms.
    fn observed(h: &HeaderSource, expected: &ParsedHeader) -> ParsedHeader {
        let mut p = ParsedHeader {
            status: h.status.val().into(),
            ..Default::default()
        };
        if expected.macs.is_some() {
            p.macs = Some((h.dst_mac.val().into(), h.src_mac.val().into()));
        }
        if expected.vlan.is_some() {
            let present = h.vlan_present.val();
            let tci: u64 = h.vlan_tci.val().into();
            p.vlan = Some((present, if present { tci } else { 0 }));
        }
        if expected.l3_offset.is_some() {
            p.l3_offset = Some(h.l3_offset.val().into());
        }
        if expected.ethertype.is_some() {
            p.ethertype = Some(h.ethertype.val().into());
        }
        if expected.ipv4.is_some() {
            p.ipv4 = Some((
                h.src_ip.val().into(),
                h.dst_ip.val().into(),
                h.protocol.val().into(),
                h.ip_header_len.val().into(),
                h.ip_total_len.val().into(),
                h.l4_offset.val().into(),
                h.l4_kind.val().into(),
            ));
        }
        if expected.ports.is_some() {
            p.ports = Some((h.src_port.val().into(), h.dst_port.val().into()));
        }
        if expected.tcp_flags.is_some() {
            let f: u64 = h.tcp_flags.val().into();
            p.tcp_flags = Some((f & 2 != 0, f & 0x10 != 0, f & 1 != 0, f & 4 != 0));
        }
        if expected.l4_checksum.is_some() {
            p.l4_checksum = Some(h.l4_checksum.val().into());
        }
        p
    }

    /// Plays `frames` through the parser; checks every header against the model and the
    /// pass-through bytes against the input. Returns the cycles taken.
    fn run(frames: Vec<Vec<u8>>, traffic: Traffic, seed: u64) -> u64 {
        let mut rng = Rng::new(seed);
        let expected: Vec<ParsedHeader> =
            frames.iter().map(|f| ParsedHeader::from_model(f)).collect();
        let sent: Vec<u8> = frames.iter().flatten().copied().collect();
        let lasts: std::collections::HashSet<usize> = frames
            .iter()
            .scan(0, |at, f| {
                *at += f.len();
                Some(*at - 1)
            })
            .collect();
        let mut source = ByteSource::new(frames);
        let mut uut = HeaderParser::new();
        uut.connect_all();
        let mut headers = 0;
        let mut passed = 0usize;
        let mut cycles = 0u64;
        let started = std::time::Instant::now();
        while headers < expected.len() {
            source.drive(&mut uut.s_axis, traffic, &mut rng);
            uut.m_axis.tready.next = traffic.ready(&mut rng);
            uut.m_hdr.tready.next = traffic.ready(&mut rng);
            settle(&mut uut);
            let taken = uut.s_axis.tvalid.val() & uut.s_axis.tready.val();
            if uut.m_axis.tvalid.val() & uut.m_axis.tready.val() {
                let byte: u64 = uut.m_axis.tdata.val().into();
                assert_eq!(byte, u64::from(sent[passed]), "pass-through byte {passed}");
                assert_eq!(
                    uut.m_axis.tlast.val(),
                    lasts.contains(&passed),
                    "tlast at {passed}"
                );
                passed += 1;
            }
            assert_eq!(taken, uut.m_axis.tvalid.val() & uut.m_axis.tready.val());
            if uut.m_hdr.tvalid.val() & uut.m_hdr.tready.val() {
                let want = expected[headers];
                let got = observed(&uut.m_hdr, &want);
                assert_eq!(got, want, "frame {headers} (seed {seed:#x})");
                headers += 1;
            }
            tick(&mut uut, |u| &mut u.clock);
            source.advance(taken);
            cycles += 1;
            assert!(cycles < 100_000_000, "parser stuck");
        }
        assert!(source.done());
        eprintln!("{cycles} cycles in {:?}", started.elapsed());
        cycles
    }

    fn random_frames(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| random_frame(&mut rng)).collect()
    }

    #[test]
    fn matches_model_on_random_frames_back_to_back() {
        let frames = random_frames(0x5eed_0001, 12_000);
        // The vectors must reach every verdict and every transport kind, often.
        let mut seen = std::collections::HashMap::new();
        for f in &frames {
            let p = ParsedHeader::from_model(f);
            *seen.entry((p.status, p.ipv4.map(|ip| ip.6))).or_insert(0) += 1;
        }
        for class in [
            (status::ARP, None),
            (status::IPV6, None),
            (status::OTHER, None),
            (status::RUNT, None),
            (status::STACKED_VLAN, None),
            (status::MALFORMED_IPV4, None),
            (status::TRUNCATED_IPV4, None),
            (status::BAD_IPV4_CHECKSUM, None),
            (status::TRUNCATED_L4, None),
            (status::IPV4, Some(l4_kind::TCP)),
            (status::IPV4, Some(l4_kind::UDP)),
            (status::IPV4, Some(l4_kind::ICMP)),
            (status::IPV4, Some(l4_kind::FRAGMENT)),
            (status::IPV4, Some(l4_kind::OTHER)),
        ] {
            let n = seen.get(&class).copied().unwrap_or(0);
            assert!(n >= 50, "only {n} frames of class {class:?}");
        }
        let bytes: usize = frames.iter().map(Vec::len).sum();
        let n = frames.len() as u64;
        let cycles = run(frames, Traffic::SMOOTH, 1);
        // One byte per cycle, one cycle to register the verdict, one to hand it off.
        assert_eq!(cycles, bytes as u64 + 2 * n);
    }

    #[test]
    fn matches_model_on_random_frames_with_idle_and_backpressure() {
        run(random_frames(0x5eed_0002, 10_000), Traffic::BUMPY, 2);
    }

    #[test]
    fn every_truncation_of_a_tagged_tcp_frame() {
        let mut rng = Rng::new(7);
        let mut frames = Vec::new();
        while frames.is_empty() {
            let f = crate::vectors::valid_frame(&mut rng);
            if f.len() > 70 && f[12..14] == [0x81, 0x00] && f[16..18] == [0x08, 0x00] && f[27] == 6
            {
                frames = (1..=f.len()).map(|n| f[..n].to_vec()).collect();
            }
        }
        run(frames, Traffic::BUMPY, 3);
    }
}
