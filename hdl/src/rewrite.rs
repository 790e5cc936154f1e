//! Stage 5, rewrite: the frame on its way out (`fulcrum_model::rewrite`).
//!
//! One command per frame (`s_cmd`, taken before the frame's first byte) says what to do
//! with the next frame on `s_axis`; the frame leaves on `m_axis`:
//!
//! | `op` | output | model |
//! |---|---|---|
//! | `PASS` | the frame unchanged (punt, from the MCU) | `Pipeline::pass` |
//! | `DROP` | nothing; the frame is read and discarded | `Pipeline::drop` |
//! | `REWRITE` | MACs := `dst_mac`/`src_mac`; with `set_src`/`set_dst` the IPv4 source/destination address and TCP/UDP port, IPv4 and TCP/UDP checksums updated (RFC 1624) | `set_macs` + `rewrite_endpoints` (NAT, full NAT, both return paths; DSR sets neither) |
//! | `ENCAP` | Ethernet header (new MACs, tag kept, EtherType IPv4), a new outer IPv4 header (+ UDP for `gue`) from `src_ip` to `dst_ip`, then the IPv4 packet without Ethernet padding; refused (discarded, `mtu_refused` strobe) when the outer packet would exceed 1500 bytes | `encapsulate`, `encapsulated_len` |
//!
//! The command carries the parsed header of the frame (offsets, transport kind, old
//! addresses, ports and checksums as the parser saw them), so the bytes can be replaced as
//! they pass: one byte per cycle in, one byte per cycle out, through an output register.
//! Encapsulation inserts 20 (IP-in-IP) or 28 (GUE) bytes after the Ethernet header and
//! holds `s_axis.tready` low meanwhile.
//!
//! Checksums reuse [`ChecksumUpdate`]: three units in a chain per checksum, started the
//! cycle after the command is taken, each adding one 32-bit field (address, address,
//! both ports). Chained RFC 1624 updates equal the model's sequence of `update32` /
//! `update16` calls bit for bit: every step's `~HC` is the previous step's ones-complement
//! sum (never zero, so the "0xFFFF read as 0" rule does not change it), and ones-complement
//! addition is associative. A field that does not change goes in with `old == new`,
//! which adds `0xFFFF` ≡ 0. With UDP rules on every unit an intermediate 0 is sent as
//! 0xFFFF, which the next unit reads as 0 again, and a received 0 stays 0: the model's
//! `udp_fixup` at the end. The outer header checksum of a tunnel is the same chain
//! started from the checksum of the constant words (`0x4500`, `0x4000`: `!0x8500 =
//! 0x7AFF`) adding source, destination and (length, TTL/protocol) as fields that were 0.
//! The chain takes 9 cycles; the first checksum byte is at frame offset 24 or later.
//!
//! Timing: a frame of `n` bytes takes `n + 1` cycles (command, then one byte per cycle;
//! `n + 1 + 20` or `n + 1 + 28` when encapsulated), plus any cycles the output is not
//! taken. Byte positions are kept as counters relative to the network and transport
//! headers (loaded at the command), so the byte multiplexer compares registers with
//! constants only.
//!
//! `tuser` is passed on with each byte; an encapsulated frame ends at the end of its IPv4
//! packet, so a `tuser` on discarded padding is not passed on.

use rust_hdl::prelude::*;

use crate::checksum::ChecksumUpdate;
use crate::stream::{ByteStreamMaster, ByteStreamSlave};

/// The operations of a [`RewriteCommand`].
pub mod op {
    /// Send the frame unchanged.
    pub const PASS: u64 = 0;
    /// Discard the frame.
    pub const DROP: u64 = 1;
    /// New MACs and optionally new endpoints, checksums updated.
    pub const REWRITE: u64 = 2;
    /// IP-in-IP or GUE encapsulation.
    pub const ENCAP: u64 = 3;
}

/// What to do with the next frame (valid/ready handshake, one per frame).
#[derive(LogicInterface, Default)]
pub struct RewriteCommand {
    /// A command is on the fields below.
    pub tvalid: Signal<In, Bit>,
    /// The stage takes it this cycle (it is between frames).
    pub tready: Signal<Out, Bit>,
    /// See [`op`].
    pub op: Signal<In, Bits<2>>,
    /// New destination MAC (byte 0 in the top bits), for `REWRITE` and `ENCAP`.
    pub dst_mac: Signal<In, Bits<48>>,
    /// New source MAC.
    pub src_mac: Signal<In, Bits<48>>,
    /// Offset of the IPv4 header (14 or 18), from the parser.
    pub l3_offset: Signal<In, Bits<8>>,
    /// Offset of the transport header, from the parser.
    pub l4_offset: Signal<In, Bits<8>>,
    /// Transport kind ([`crate::parser::l4_kind`]): ports and the transport checksum are
    /// rewritten for TCP and UDP only.
    pub l4_kind: Signal<In, Bits<3>>,
    /// IPv4 total length, from the parser.
    pub ip_total_len: Signal<In, Bits<16>>,
    /// IPv4 header checksum as received.
    pub ip_checksum: Signal<In, Bits<16>>,
    /// TCP or UDP checksum as received.
    pub l4_checksum: Signal<In, Bits<16>>,
    /// Source address as received.
    pub old_src_ip: Signal<In, Bits<32>>,
    /// Destination address as received.
    pub old_dst_ip: Signal<In, Bits<32>>,
    /// Source port as received.
    pub old_src_port: Signal<In, Bits<16>>,
    /// Destination port as received.
    pub old_dst_port: Signal<In, Bits<16>>,
    /// `REWRITE`: replace the source endpoint.
    pub set_src: Signal<In, Bit>,
    /// `REWRITE`: new source address; `ENCAP`: outer source address.
    pub src_ip: Signal<In, Bits<32>>,
    /// `REWRITE`: new source port.
    pub src_port: Signal<In, Bits<16>>,
    /// `REWRITE`: replace the destination endpoint.
    pub set_dst: Signal<In, Bit>,
    /// `REWRITE`: new destination address; `ENCAP`: outer destination (the backend).
    pub dst_ip: Signal<In, Bits<32>>,
    /// `REWRITE`: new destination port.
    pub dst_port: Signal<In, Bits<16>>,
    /// `ENCAP`: GUE (outer UDP) rather than IP-in-IP.
    pub gue: Signal<In, Bit>,
    /// `ENCAP` with `gue`: the outer UDP destination port.
    pub gue_port: Signal<In, Bits<16>>,
    /// `ENCAP` with `gue`: the flow hash (its low 14 bits make the UDP source port).
    pub flow_hash: Signal<In, Bits<32>>,
}

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum Phase {
    Idle,
    Copy,
    Insert,
    Discard,
}

/// The rewrite stage (8-bit datapath).
#[derive(LogicBlock)]
pub struct Rewrite {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// One command per frame, before the frame.
    pub s_cmd: RewriteCommand,
    /// Frames in.
    pub s_axis: ByteStreamSlave,
    /// Frames out.
    pub m_axis: ByteStreamMaster,
    /// One-cycle strobe: an `ENCAP` command was refused (outer packet over 1500 bytes)
    /// and its frame is being discarded.
    pub mtu_refused: Signal<Out, Bit>,

    phase: DFF<Phase>,
    // The command, latched.
    macs: DFF<Bit>,
    rewrite: DFF<Bit>,
    encap: DFF<Bit>,
    set_src: DFF<Bit>,
    set_dst: DFF<Bit>,
    has_ports: DFF<Bit>,
    is_udp: DFF<Bit>,
    is_tcp: DFF<Bit>,
    gue: DFF<Bit>,
    dst_mac_hi: DFF<Bits<16>>,
    dst_mac_lo: DFF<Bits<32>>,
    src_mac_hi: DFF<Bits<16>>,
    src_mac_lo: DFF<Bits<32>>,
    l3_offset: DFF<Bits<8>>,
    total_len: DFF<Bits<16>>,
    ip_checksum: DFF<Bits<16>>,
    l4_checksum: DFF<Bits<16>>,
    old_src_ip: DFF<Bits<32>>,
    old_dst_ip: DFF<Bits<32>>,
    old_ports: DFF<Bits<32>>,
    src_ip: DFF<Bits<32>>,
    dst_ip: DFF<Bits<32>>,
    src_port: DFF<Bits<16>>,
    dst_port: DFF<Bits<16>>,
    gue_port: DFF<Bits<16>>,
    gue_sport: DFF<Bits<16>>,
    // Derived from the latched command the cycles after it is taken.
    start: DFF<Bit>,
    outer_len: DFF<Bits<16>>,
    udp_len: DFF<Bits<16>>,
    end_pos: DFF<Bits<16>>,
    ip_new: DFF<Bits<16>>,
    l4_new: DFF<Bits<16>>,
    refused: DFF<Bit>,
    // Byte positions: in the frame, relative to the IPv4 and transport headers
    // (wrapping: "before the header" is a large value), and in the inserted header.
    pos: DFF<Bits<16>>,
    rel3: DFF<Bits<16>>,
    rel4: DFF<Bits<16>>,
    hdr_idx: DFF<Bits<5>>,
    // The output register.
    out_valid: DFF<Bit>,
    out_data: DFF<Bits<8>>,
    out_last: DFF<Bit>,
    out_user: DFF<Bit>,

    ip1: ChecksumUpdate,
    ip2: ChecksumUpdate,
    ip3: ChecksumUpdate,
    l4a: ChecksumUpdate,
    l4b: ChecksumUpdate,
    l4c: ChecksumUpdate,

    advance: Signal<Local, Bit>,
    accept: Signal<Local, Bit>,
    take: Signal<Local, Bit>,
    over_mtu: Signal<Local, Bit>,
    new_src_ip: Signal<Local, Bits<32>>,
    new_dst_ip: Signal<Local, Bits<32>>,
    new_ports: Signal<Local, Bits<32>>,
    new_sport: Signal<Local, Bits<16>>,
    new_dport: Signal<Local, Bits<16>>,
    byte_out: Signal<Local, Bits<8>>,
    ip_word: Signal<Local, Bits<32>>,
    port_word: Signal<Local, Bits<16>>,
    hdr_word: Signal<Local, Bits<32>>,
    hdr_byte: Signal<Local, Bits<8>>,
    body_end: Signal<Local, Bit>,
    l3_wide: Signal<Local, Bits<16>>,
    l4_wide: Signal<Local, Bits<16>>,
}

impl Default for Rewrite {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewrite {
    /// An idle rewrite stage.
    pub fn new() -> Self {
        Rewrite {
            clock: Default::default(),
            s_cmd: Default::default(),
            s_axis: Default::default(),
            m_axis: Default::default(),
            mtu_refused: Default::default(),
            phase: Default::default(),
            macs: Default::default(),
            rewrite: Default::default(),
            encap: Default::default(),
            set_src: Default::default(),
            set_dst: Default::default(),
            has_ports: Default::default(),
            is_udp: Default::default(),
            is_tcp: Default::default(),
            gue: Default::default(),
            dst_mac_hi: Default::default(),
            dst_mac_lo: Default::default(),
            src_mac_hi: Default::default(),
            src_mac_lo: Default::default(),
            l3_offset: Default::default(),
            total_len: Default::default(),
            ip_checksum: Default::default(),
            l4_checksum: Default::default(),
            old_src_ip: Default::default(),
            old_dst_ip: Default::default(),
            old_ports: Default::default(),
            src_ip: Default::default(),
            dst_ip: Default::default(),
            src_port: Default::default(),
            dst_port: Default::default(),
            gue_port: Default::default(),
            gue_sport: Default::default(),
            start: Default::default(),
            outer_len: Default::default(),
            udp_len: Default::default(),
            end_pos: Default::default(),
            ip_new: Default::default(),
            l4_new: Default::default(),
            refused: Default::default(),
            pos: Default::default(),
            rel3: Default::default(),
            rel4: Default::default(),
            hdr_idx: Default::default(),
            out_valid: Default::default(),
            out_data: Default::default(),
            out_last: Default::default(),
            out_user: Default::default(),
            ip1: ChecksumUpdate::new(),
            ip2: ChecksumUpdate::new(),
            ip3: ChecksumUpdate::new(),
            l4a: ChecksumUpdate::new(),
            l4b: ChecksumUpdate::new(),
            l4c: ChecksumUpdate::new(),
            advance: Default::default(),
            accept: Default::default(),
            take: Default::default(),
            over_mtu: Default::default(),
            new_src_ip: Default::default(),
            new_dst_ip: Default::default(),
            new_ports: Default::default(),
            new_sport: Default::default(),
            new_dport: Default::default(),
            byte_out: Default::default(),
            ip_word: Default::default(),
            port_word: Default::default(),
            hdr_word: Default::default(),
            hdr_byte: Default::default(),
            body_end: Default::default(),
            l3_wide: Default::default(),
            l4_wide: Default::default(),
        }
    }

    /// Marks every top-level input as driven (needed before `generate_verilog`).
    pub fn connect_inputs(&mut self) {
        self.clock.connect();
        self.s_cmd.tvalid.connect();
        self.s_cmd.op.connect();
        self.s_cmd.dst_mac.connect();
        self.s_cmd.src_mac.connect();
        self.s_cmd.l3_offset.connect();
        self.s_cmd.l4_offset.connect();
        self.s_cmd.l4_kind.connect();
        self.s_cmd.ip_total_len.connect();
        self.s_cmd.ip_checksum.connect();
        self.s_cmd.l4_checksum.connect();
        self.s_cmd.old_src_ip.connect();
        self.s_cmd.old_dst_ip.connect();
        self.s_cmd.old_src_port.connect();
        self.s_cmd.old_dst_port.connect();
        self.s_cmd.set_src.connect();
        self.s_cmd.src_ip.connect();
        self.s_cmd.src_port.connect();
        self.s_cmd.set_dst.connect();
        self.s_cmd.dst_ip.connect();
        self.s_cmd.dst_port.connect();
        self.s_cmd.gue.connect();
        self.s_cmd.gue_port.connect();
        self.s_cmd.flow_hash.connect();
        self.s_axis.tdata.connect();
        self.s_axis.tkeep.connect();
        self.s_axis.tvalid.connect();
        self.s_axis.tlast.connect();
        self.s_axis.tuser.connect();
        self.m_axis.tready.connect();
    }
}

impl Logic for Rewrite {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            phase,
            macs,
            rewrite,
            encap,
            set_src,
            set_dst,
            has_ports,
            is_udp,
            is_tcp,
            gue,
            dst_mac_hi,
            dst_mac_lo,
            src_mac_hi,
            src_mac_lo,
            l3_offset,
            total_len,
            ip_checksum,
            l4_checksum,
            old_src_ip,
            old_dst_ip,
            old_ports,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            gue_port,
            gue_sport,
            start,
            outer_len,
            udp_len,
            end_pos,
            ip_new,
            l4_new,
            refused,
            pos,
            rel3,
            rel4,
            hdr_idx,
            out_valid,
            out_data,
            out_last,
            out_user
        );
        self.ip1.clock.next = self.clock.val();
        self.ip2.clock.next = self.clock.val();
        self.ip3.clock.next = self.clock.val();
        self.l4a.clock.next = self.clock.val();
        self.l4b.clock.next = self.clock.val();
        self.l4c.clock.next = self.clock.val();

        // Handshakes.
        self.advance.next = !self.out_valid.q.val() | self.m_axis.tready.val();
        self.s_cmd.tready.next = self.phase.q.val() == Phase::Idle;
        self.accept.next = self.s_cmd.tvalid.val() & (self.phase.q.val() == Phase::Idle);
        self.s_axis.tready.next = ((self.phase.q.val() == Phase::Copy) & self.advance.val())
            | (self.phase.q.val() == Phase::Discard);
        self.take.next = self.s_axis.tvalid.val() & self.s_axis.tready.val();
        self.m_axis.tvalid.next = self.out_valid.q.val();
        self.m_axis.tdata.next = self.out_data.q.val();
        self.m_axis.tlast.next = self.out_last.q.val();
        self.m_axis.tuser.next = self.out_user.q.val();
        self.m_axis.tkeep.next = 1.into();
        self.mtu_refused.next = self.refused.q.val();

        // An outer packet over the 1500-byte MTU: total length above 1480 (IP-in-IP) or
        // 1472 (GUE).
        self.over_mtu.next = self.s_cmd.ip_total_len.val() > 1480;
        if self.s_cmd.gue.val() {
            self.over_mtu.next = self.s_cmd.ip_total_len.val() > 1472;
        }

        self.l3_wide.next = bit_cast::<16, 8>(self.s_cmd.l3_offset.val());
        self.l4_wide.next = bit_cast::<16, 8>(self.s_cmd.l4_offset.val());

        // Values derived from the latched command (stable for the whole frame).
        self.start.d.next = self.accept.val();
        self.refused.d.next = false;
        self.outer_len.d.next = self.total_len.q.val() + 20;
        if self.gue.q.val() {
            self.outer_len.d.next = self.total_len.q.val() + 28;
        }
        self.udp_len.d.next = self.total_len.q.val() + 8;
        self.end_pos.d.next =
            bit_cast::<16, 8>(self.l3_offset.q.val()) + self.total_len.q.val() - 1;

        // The checksum chains. Fields left alone go in with old == new.
        self.new_src_ip.next = self.old_src_ip.q.val();
        if self.set_src.q.val() {
            self.new_src_ip.next = self.src_ip.q.val();
        }
        self.new_dst_ip.next = self.old_dst_ip.q.val();
        if self.set_dst.q.val() {
            self.new_dst_ip.next = self.dst_ip.q.val();
        }
        self.new_sport.next = self.old_ports.q.val().get_bits::<16>(16);
        if self.set_src.q.val() {
            self.new_sport.next = self.src_port.q.val();
        }
        self.new_dport.next = self.old_ports.q.val().get_bits::<16>(0);
        if self.set_dst.q.val() {
            self.new_dport.next = self.dst_port.q.val();
        }
        self.new_ports.next = (bit_cast::<32, 16>(self.new_sport.val()) << 16)
            | bit_cast::<32, 16>(self.new_dport.val());
        self.ip1.s_valid.next = self.start.q.val();
        self.ip1.checksum.next = self.ip_checksum.q.val();
        self.ip1.old.next = self.old_src_ip.q.val();
        self.ip1.new.next = self.new_src_ip.val();
        self.ip2.old.next = self.old_dst_ip.q.val();
        self.ip2.new.next = self.new_dst_ip.val();
        self.ip3.old.next = 0.into();
        self.ip3.new.next = 0.into();
        if self.encap.q.val() {
            // The outer header: checksum of the constant words, then the fields.
            self.ip1.checksum.next = 0x7aff.into();
            self.ip1.old.next = 0.into();
            self.ip1.new.next = self.src_ip.q.val();
            self.ip2.old.next = 0.into();
            self.ip2.new.next = self.dst_ip.q.val();
            // TTL 64, protocol 4 (IP-in-IP) or 17 (UDP).
            self.ip3.new.next = (bit_cast::<32, 16>(self.outer_len.q.val()) << 16) | 0x4004;
            if self.gue.q.val() {
                self.ip3.new.next =
                    (bit_cast::<32, 16>(self.outer_len.q.val()) << 16) | 0x4011;
            }
        }
        self.ip1.udp.next = false;
        self.ip2.udp.next = false;
        self.ip3.udp.next = false;
        self.ip2.s_valid.next = self.ip1.m_valid.val();
        self.ip2.checksum.next = self.ip1.updated.val();
        self.ip3.s_valid.next = self.ip2.m_valid.val();
        self.ip3.checksum.next = self.ip2.updated.val();
        self.ip1.m_ready.next = true;
        self.ip2.m_ready.next = true;
        self.ip3.m_ready.next = true;
        if self.ip3.m_valid.val() {
            self.ip_new.d.next = self.ip3.updated.val();
        }

        self.l4a.s_valid.next = self.start.q.val();
        self.l4a.checksum.next = self.l4_checksum.q.val();
        self.l4a.old.next = self.old_src_ip.q.val();
        self.l4a.new.next = self.new_src_ip.val();
        self.l4b.old.next = self.old_dst_ip.q.val();
        self.l4b.new.next = self.new_dst_ip.val();
        self.l4c.old.next = self.old_ports.q.val();
        self.l4c.new.next = self.new_ports.val();
        self.l4a.udp.next = self.is_udp.q.val();
        self.l4b.udp.next = self.is_udp.q.val();
        self.l4c.udp.next = self.is_udp.q.val();
        self.l4b.s_valid.next = self.l4a.m_valid.val();
        self.l4b.checksum.next = self.l4a.updated.val();
        self.l4c.s_valid.next = self.l4b.m_valid.val();
        self.l4c.checksum.next = self.l4b.updated.val();
        self.l4a.m_ready.next = true;
        self.l4b.m_ready.next = true;
        self.l4c.m_ready.next = true;
        if self.l4c.m_valid.val() {
            self.l4_new.d.next = self.l4c.updated.val();
        }

        // The byte leaving for this input byte.
        self.byte_out.next = self.s_axis.tdata.val();
        if self.macs.q.val() & (self.pos.q.val() < 12) {
            if self.pos.q.val() == 0 {
                self.byte_out.next = self.dst_mac_hi.q.val().get_bits::<8>(8);
            }
            if self.pos.q.val() == 1 {
                self.byte_out.next = self.dst_mac_hi.q.val().get_bits::<8>(0);
            }
            if self.pos.q.val() == 2 {
                self.byte_out.next = self.dst_mac_lo.q.val().get_bits::<8>(24);
            }
            if self.pos.q.val() == 3 {
                self.byte_out.next = self.dst_mac_lo.q.val().get_bits::<8>(16);
            }
            if self.pos.q.val() == 4 {
                self.byte_out.next = self.dst_mac_lo.q.val().get_bits::<8>(8);
            }
            if self.pos.q.val() == 5 {
                self.byte_out.next = self.dst_mac_lo.q.val().get_bits::<8>(0);
            }
            if self.pos.q.val() == 6 {
                self.byte_out.next = self.src_mac_hi.q.val().get_bits::<8>(8);
            }
            if self.pos.q.val() == 7 {
                self.byte_out.next = self.src_mac_hi.q.val().get_bits::<8>(0);
            }
            if self.pos.q.val() == 8 {
                self.byte_out.next = self.src_mac_lo.q.val().get_bits::<8>(24);
            }
            if self.pos.q.val() == 9 {
                self.byte_out.next = self.src_mac_lo.q.val().get_bits::<8>(16);
            }
            if self.pos.q.val() == 10 {
                self.byte_out.next = self.src_mac_lo.q.val().get_bits::<8>(8);
            }
            if self.pos.q.val() == 11 {
                self.byte_out.next = self.src_mac_lo.q.val().get_bits::<8>(0);
            }
        }
        // The EtherType before the network header (0xFFFE, 0xFFFF relative to it).
        if self.encap.q.val() & (self.rel3.q.val() == 0xfffe) {
            self.byte_out.next = 0x08.into();
        }
        if self.encap.q.val() & (self.rel3.q.val() == 0xffff) {
            self.byte_out.next = 0x00.into();
        }
        // IPv4 header: checksum at 10, source at 12, destination at 16.
        // 12..15 has bit 2 set, 16..19 does not.
        self.ip_word.next = self.dst_ip.q.val();
        if self.rel3.q.val().get_bit(2) {
            self.ip_word.next = self.src_ip.q.val();
        }
        if self.rewrite.q.val() & (self.set_src.q.val() | self.set_dst.q.val()) {
            if self.rel3.q.val() == 10 {
                self.byte_out.next = self.ip_new.q.val().get_bits::<8>(8);
            }
            if self.rel3.q.val() == 11 {
                self.byte_out.next = self.ip_new.q.val().get_bits::<8>(0);
            }
            if (self.set_src.q.val() & (self.rel3.q.val().get_bits::<14>(2) == 3))
                | (self.set_dst.q.val() & (self.rel3.q.val().get_bits::<14>(2) == 4))
            {
                if self.rel3.q.val().get_bits::<2>(0) == 0 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(24);
                }
                if self.rel3.q.val().get_bits::<2>(0) == 1 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(16);
                }
                if self.rel3.q.val().get_bits::<2>(0) == 2 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(8);
                }
                if self.rel3.q.val().get_bits::<2>(0) == 3 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(0);
                }
            }
            // Transport header: ports at 0 and 2, checksum at 6 (UDP) or 16 (TCP).
            self.port_word.next = self.src_port.q.val();
            if self.rel4.q.val().get_bit(1) {
                self.port_word.next = self.dst_port.q.val();
            }
            if self.has_ports.q.val() {
                if (self.set_src.q.val() & (self.rel4.q.val().get_bits::<15>(1) == 0))
                    | (self.set_dst.q.val() & (self.rel4.q.val().get_bits::<15>(1) == 1))
                {
                    if self.rel4.q.val().get_bit(0) {
                        self.byte_out.next = self.port_word.val().get_bits::<8>(0);
                    } else {
                        self.byte_out.next = self.port_word.val().get_bits::<8>(8);
                    }
                }
                if (self.is_udp.q.val() & (self.rel4.q.val() == 6))
                    | (self.is_tcp.q.val() & (self.rel4.q.val() == 16))
                {
                    self.byte_out.next = self.l4_new.q.val().get_bits::<8>(8);
                }
                if (self.is_udp.q.val() & (self.rel4.q.val() == 7))
                    | (self.is_tcp.q.val() & (self.rel4.q.val() == 17))
                {
                    self.byte_out.next = self.l4_new.q.val().get_bits::<8>(0);
                }
            }
        }
        self.body_end.next = self.encap.q.val() & (self.pos.q.val() == self.end_pos.q.val());

        // The inserted outer header: 45 00 len | 0000 4000 | 40 proto csum | src | dst
        // [| sport dport | len 0000].
        self.hdr_word.next = 0x4500_0000.into();
        if self.hdr_idx.q.val().get_bits::<3>(2) == 0 {
            self.hdr_word.next = 0x4500_0000 | bit_cast::<32, 16>(self.outer_len.q.val());
        }
        if self.hdr_idx.q.val().get_bits::<3>(2) == 1 {
            self.hdr_word.next = 0x0000_4000.into();
        }
        if self.hdr_idx.q.val().get_bits::<3>(2) == 2 {
            self.hdr_word.next = 0x4004_0000 | bit_cast::<32, 16>(self.ip_new.q.val());
            if self.gue.q.val() {
                self.hdr_word.next = 0x4011_0000 | bit_cast::<32, 16>(self.ip_new.q.val());
            }
        }
        if self.hdr_idx.q.val().get_bits::<3>(2) == 3 {
            self.hdr_word.next = self.src_ip.q.val();
        }
        if self.hdr_idx.q.val().get_bits::<3>(2) == 4 {
            self.hdr_word.next = self.dst_ip.q.val();
        }
        if self.hdr_idx.q.val().get_bits::<3>(2) == 5 {
            self.hdr_word.next = (bit_cast::<32, 16>(self.gue_sport.q.val()) << 16)
                | bit_cast::<32, 16>(self.gue_port.q.val());
        }
        if self.hdr_idx.q.val().get_bits::<3>(2) == 6 {
            self.hdr_word.next = bit_cast::<32, 16>(self.udp_len.q.val()) << 16;
        }
        self.hdr_byte.next = self.hdr_word.val().get_bits::<8>(24);
        if self.hdr_idx.q.val().get_bits::<2>(0) == 1 {
            self.hdr_byte.next = self.hdr_word.val().get_bits::<8>(16);
        }
        if self.hdr_idx.q.val().get_bits::<2>(0) == 2 {
            self.hdr_byte.next = self.hdr_word.val().get_bits::<8>(8);
        }
        if self.hdr_idx.q.val().get_bits::<2>(0) == 3 {
            self.hdr_byte.next = self.hdr_word.val().get_bits::<8>(0);
        }

        // The output register empties when taken.
        if self.advance.val() {
            self.out_valid.d.next = false;
        }
        if self.take.val() {
            self.pos.d.next = self.pos.q.val() + 1;
            self.rel3.d.next = self.rel3.q.val() + 1;
            self.rel4.d.next = self.rel4.q.val() + 1;
        }

        match self.phase.q.val() {
            Phase::Idle => {
                if self.accept.val() {
                    self.macs.d.next = (self.s_cmd.op.val() == 2) | (self.s_cmd.op.val() == 3);
                    self.rewrite.d.next = self.s_cmd.op.val() == 2;
                    self.encap.d.next = self.s_cmd.op.val() == 3;
                    self.set_src.d.next = self.s_cmd.set_src.val();
                    self.set_dst.d.next = self.s_cmd.set_dst.val();
                    // l4_kind: TCP 0, UDP 1.
                    self.has_ports.d.next =
                        (self.s_cmd.l4_kind.val() == 0) | (self.s_cmd.l4_kind.val() == 1);
                    self.is_tcp.d.next = self.s_cmd.l4_kind.val() == 0;
                    self.is_udp.d.next = self.s_cmd.l4_kind.val() == 1;
                    self.gue.d.next = self.s_cmd.gue.val();
                    self.dst_mac_hi.d.next = self.s_cmd.dst_mac.val().get_bits::<16>(32);
                    self.dst_mac_lo.d.next = self.s_cmd.dst_mac.val().get_bits::<32>(0);
                    self.src_mac_hi.d.next = self.s_cmd.src_mac.val().get_bits::<16>(32);
                    self.src_mac_lo.d.next = self.s_cmd.src_mac.val().get_bits::<32>(0);
                    self.l3_offset.d.next = self.s_cmd.l3_offset.val();
                    self.total_len.d.next = self.s_cmd.ip_total_len.val();
                    self.ip_checksum.d.next = self.s_cmd.ip_checksum.val();
                    self.l4_checksum.d.next = self.s_cmd.l4_checksum.val();
                    self.old_src_ip.d.next = self.s_cmd.old_src_ip.val();
                    self.old_dst_ip.d.next = self.s_cmd.old_dst_ip.val();
                    self.old_ports.d.next = (bit_cast::<32, 16>(self.s_cmd.old_src_port.val())
                        << 16)
                        | bit_cast::<32, 16>(self.s_cmd.old_dst_port.val());
                    self.src_ip.d.next = self.s_cmd.src_ip.val();
                    self.dst_ip.d.next = self.s_cmd.dst_ip.val();
                    self.src_port.d.next = self.s_cmd.src_port.val();
                    self.dst_port.d.next = self.s_cmd.dst_port.val();
                    self.gue_port.d.next = self.s_cmd.gue_port.val();
                    self.gue_sport.d.next =
                        0xc000 | (self.s_cmd.flow_hash.val().get_bits::<16>(0) & 0x3fff);
                    self.pos.d.next = 0.into();
                    // 0 - offset: the header starts when the counter wraps to 0.
                    self.rel3.d.next = !self.l3_wide.val() + 1;
                    self.rel4.d.next = !self.l4_wide.val() + 1;
                    self.hdr_idx.d.next = 0.into();
                    self.phase.d.next = Phase::Copy;
                    if self.s_cmd.op.val() == 1 {
                        self.phase.d.next = Phase::Discard;
                    }
                    if (self.s_cmd.op.val() == 3) & self.over_mtu.val() {
                        self.refused.d.next = true;
                        self.phase.d.next = Phase::Discard;
                    }
                }
            }
            Phase::Copy => {
                if self.take.val() {
                    self.out_valid.d.next = true;
                    self.out_data.d.next = self.byte_out.val();
                    self.out_last.d.next = self.s_axis.tlast.val() | self.body_end.val();
                    self.out_user.d.next = self.s_axis.tuser.val();
                    if self.s_axis.tlast.val() {
                        self.phase.d.next = Phase::Idle;
                    } else if self.body_end.val() {
                        self.phase.d.next = Phase::Discard;
                    } else if self.encap.q.val() & (self.rel3.q.val() == 0xffff) {
                        self.phase.d.next = Phase::Insert;
                    }
                }
            }
            Phase::Insert => {
                if self.advance.val() {
                    self.out_valid.d.next = true;
                    self.out_data.d.next = self.hdr_byte.val();
                    self.out_last.d.next = false;
                    self.out_user.d.next = false;
                    self.hdr_idx.d.next = self.hdr_idx.q.val() + 1;
                    if (!self.gue.q.val() & (self.hdr_idx.q.val() == 19))
                        | (self.hdr_idx.q.val() == 27)
                    {
                        self.phase.d.next = Phase::Copy;
                    }
                }
            }
            Phase::Discard => {
                if self.take.val() & self.s_axis.tlast.val() {
                    self.phase.d.next = Phase::Idle;
                }
            }
            _ => {
                self.phase.d.next = Phase::Idle;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::l4_kind;
    use crate::sim::{ByteSource, Rng, Traffic, settle, tick};
    use crate::vectors::{random_frame, valid_frame};
    use fulcrum_model::checksum;
    use fulcrum_model::rewrite::{self as model, Endpoint, Tunnel};
    use fulcrum_model::wire::{self, Headers, L4};

    #[test]
    fn rewrite_is_synthesizable() {
        let mut uut = Rewrite::new();
        uut.connect_inputs();
        uut.connect_all();
        crate::verilog::validate("rewrite", &generate_verilog(&uut));
    }

    /// What the test asks of one frame.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Pass,
        Drop,
        /// DSR: MACs only.
        Macs,
        /// NAT forward: destination.
        Dnat,
        /// NAT return: source.
        NatReturn,
        /// Full NAT: source and destination.
        FullNat,
        Ipip,
        Gue,
    }

    const MODES: [Mode; 8] = [
        Mode::Pass,
        Mode::Drop,
        Mode::Macs,
        Mode::Dnat,
        Mode::NatReturn,
        Mode::FullNat,
        Mode::Ipip,
        Mode::Gue,
    ];

    /// The command's fields, as the testbench drives them.
    #[derive(Debug, Clone, Copy, Default)]
    struct Command {
        op: u64,
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
        l3_offset: u64,
        l4_offset: u64,
        l4_kind: u64,
        total_len: u64,
        ip_checksum: u16,
        l4_checksum: u16,
        old_src: [u8; 4],
        old_dst: [u8; 4],
        old_ports: (u16, u16),
        src: Option<Endpoint>,
        dst: Option<Endpoint>,
        tunnel_src: [u8; 4],
        tunnel_dst: [u8; 4],
        gue: Option<u16>,
        flow_hash: u32,
    }

    struct Case {
        mode: Mode,
        frame: Vec<u8>,
        command: Command,
        /// The model's output frame (`None`: nothing leaves).
        expected: Option<Vec<u8>>,
        /// The model refuses the tunnel (MTU).
        refused: bool,
    }

    fn be(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0, |acc, &b| acc << 8 | u64::from(b))
    }

    fn read16(frame: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([frame[at], frame[at + 1]])
    }

    fn random_mac(rng: &mut Rng) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.iter_mut().for_each(|b| *b = rng.byte());
        m
    }

    fn random_addr(rng: &mut Rng) -> [u8; 4] {
        (rng.next_u64() as u32).to_be_bytes()
    }

    /// A parsed IPv4 frame with an IPv4 total length of `total_len` (TCP, UDP or other
    /// protocol, maybe tagged, maybe padded), for the tunnel MTU boundary.
    fn sized_frame(rng: &mut Rng, total_len: usize) -> Vec<u8> {
        let mut f: Vec<u8> = (0..12).map(|_| rng.byte()).collect();
        if rng.chance(300) {
            f.extend_from_slice(&[0x81, 0x00, rng.byte(), rng.byte()]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let protocol = [6u8, 17, 47][rng.below(3) as usize];
        let mut ip: Vec<u8> = (0..total_len).map(|_| rng.byte()).collect();
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
        ip[6] = 0x40;
        ip[7] = 0;
        ip[9] = protocol;
        ip[10..12].fill(0);
        let c = checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        match protocol {
            6 => ip[32] = 0x50,
            17 => ip[24..26].copy_from_slice(&((total_len - 20) as u16).to_be_bytes()),
            _ => {}
        }
        f.extend_from_slice(&ip);
        for _ in 0..rng.below(4) {
            f.push(rng.byte());
        }
        f
    }

    /// A frame the parser accepts as IPv4 (of any kind, options, padding, tag).
    fn ipv4_frame(rng: &mut Rng) -> (Vec<u8>, Headers) {
        loop {
            let f = if rng.chance(700) {
                valid_frame(rng)
            } else {
                random_frame(rng)
            };
            if let Ok(h) = wire::parse(&f)
                && h.ipv4().is_some()
            {
                return (f, h);
            }
        }
    }

    /// Transport checksums at the values the update rules treat specially.
    fn corner_l4_checksum(rng: &mut Rng, frame: &mut [u8], h: &Headers) {
        let l4 = h.l4_offset();
        let at = match h.ipv4().map(|ip| ip.l4) {
            Some(L4::Tcp { .. }) => l4 + 16,
            Some(L4::Udp { .. }) => l4 + 6,
            _ => return,
        };
        if rng.chance(250) {
            let v = [0x0000u16, 0xffff, 0x0001, 0xfffe][rng.below(4) as usize];
            frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
    }

    fn random_endpoint(rng: &mut Rng, old_addr: [u8; 4], old_port: u16) -> Endpoint {
        if rng.chance(50) {
            // Unchanged: the update adds ~x + x.
            return Endpoint {
                addr: old_addr,
                port: old_port,
            };
        }
        Endpoint {
            addr: random_addr(rng),
            port: rng.next_u64() as u16,
        }
    }

    /// A frame, a command for `mode`, and what the model makes of it.
    fn case(rng: &mut Rng, mode: Mode) -> Case {
        let mut command = Command {
            dst_mac: random_mac(rng),
            src_mac: random_mac(rng),
            flow_hash: rng.next_u64() as u32,
            ..Default::default()
        };
        if matches!(mode, Mode::Pass | Mode::Drop) {
            // Any frame at all, broken ones included; garbage in the other fields.
            let frame = random_frame(rng);
            command.op = if mode == Mode::Pass { op::PASS } else { op::DROP };
            command.l3_offset = 14;
            command.l4_offset = rng.below(80);
            command.total_len = rng.below(2000);
            let expected = (mode == Mode::Pass).then(|| frame.clone());
            return Case {
                mode,
                frame,
                command,
                expected,
                refused: false,
            };
        }
        let tunnel = matches!(mode, Mode::Ipip | Mode::Gue);
        let (mut frame, h) = if tunnel && rng.chance(150) {
            let total_len = 1440 + rng.below(61) as usize;
            let f = sized_frame(rng, total_len);
            let h = wire::parse(&f).expect("sized frames parse");
            (f, h)
        } else {
            ipv4_frame(rng)
        };
        corner_l4_checksum(rng, &mut frame, &h);
        let ip = *h.ipv4().expect("IPv4");
        let l3 = h.l3_offset;
        let l4 = h.l4_offset();
        let (old_ports, kind) = match ip.l4 {
            L4::Tcp {
                src_port, dst_port, ..
            } => ((src_port, dst_port), l4_kind::TCP),
            L4::Udp { src_port, dst_port } => ((src_port, dst_port), l4_kind::UDP),
            L4::Icmp => ((0, 0), l4_kind::ICMP),
            L4::Fragment => ((0, 0), l4_kind::FRAGMENT),
            L4::Other => ((0, 0), l4_kind::OTHER),
        };
        command.l3_offset = l3 as u64;
        command.l4_offset = l4 as u64;
        command.l4_kind = kind;
        command.total_len = ip.total_len as u64;
        command.ip_checksum = read16(&frame, l3 + 10);
        command.l4_checksum = match kind {
            l4_kind::TCP => read16(&frame, l4 + 16),
            l4_kind::UDP => read16(&frame, l4 + 6),
            _ => rng.next_u64() as u16,
        };
        command.old_src = ip.src.octets();
        command.old_dst = ip.dst.octets();
        command.old_ports = old_ports;
        let src = random_endpoint(rng, command.old_src, old_ports.0);
        let dst = random_endpoint(rng, command.old_dst, old_ports.1);
        let (mut expected, mut refused) = (None, false);
        match mode {
            Mode::Macs | Mode::Dnat | Mode::NatReturn | Mode::FullNat => {
                command.op = op::REWRITE;
                (command.src, command.dst) = match mode {
                    Mode::Macs => (None, None),
                    Mode::Dnat => (None, Some(dst)),
                    Mode::NatReturn => (Some(src), None),
                    _ => (Some(src), Some(dst)),
                };
                let mut out = frame.clone();
                model::set_macs(&mut out, command.dst_mac, command.src_mac);
                if command.src.is_some() || command.dst.is_some() {
                    model::rewrite_endpoints(&mut out, &h, command.src, command.dst);
                }
                expected = Some(out);
            }
            _ => {
                command.op = op::ENCAP;
                command.tunnel_src = random_addr(rng);
                command.tunnel_dst = random_addr(rng);
                command.gue = (mode == Mode::Gue).then(|| rng.next_u64() as u16);
                let t = Tunnel {
                    src: command.tunnel_src,
                    dst: command.tunnel_dst,
                    gue_port: command.gue,
                    flow_hash: command.flow_hash,
                };
                let mut out = vec![0u8; frame.len() + model::GUE_OVERHEAD];
                match model::encapsulate(&frame, &h, &t, command.dst_mac, command.src_mac, &mut out)
                {
                    Some(n) => {
                        out.truncate(n);
                        expected = Some(out);
                    }
                    None => {
                        assert!(model::encapsulated_len(&h, &t).is_none());
                        refused = true;
                    }
                }
            }
        }
        Case {
            mode,
            frame,
            command,
            expected,
            refused,
        }
    }

    fn drive(uut: &mut Rewrite, c: &Command, valid: bool) {
        let cmd = &mut uut.s_cmd;
        cmd.tvalid.next = valid;
        cmd.op.next = c.op.into();
        cmd.dst_mac.next = be(&c.dst_mac).into();
        cmd.src_mac.next = be(&c.src_mac).into();
        cmd.l3_offset.next = c.l3_offset.into();
        cmd.l4_offset.next = c.l4_offset.into();
        cmd.l4_kind.next = c.l4_kind.into();
        cmd.ip_total_len.next = c.total_len.into();
        cmd.ip_checksum.next = u64::from(c.ip_checksum).into();
        cmd.l4_checksum.next = u64::from(c.l4_checksum).into();
        cmd.old_src_ip.next = be(&c.old_src).into();
        cmd.old_dst_ip.next = be(&c.old_dst).into();
        cmd.old_src_port.next = u64::from(c.old_ports.0).into();
        cmd.old_dst_port.next = u64::from(c.old_ports.1).into();
        // Fields a mode does not use carry garbage: they must not matter.
        let junk = Endpoint {
            addr: [0xde, 0xad, 0xbe, 0xef],
            port: 0x5a5a,
        };
        let (src, dst) = if c.op == op::ENCAP {
            (
                Endpoint {
                    addr: c.tunnel_src,
                    port: junk.port,
                },
                Endpoint {
                    addr: c.tunnel_dst,
                    port: junk.port,
                },
            )
        } else {
            (c.src.unwrap_or(junk), c.dst.unwrap_or(junk))
        };
        cmd.set_src.next = c.src.is_some();
        cmd.src_ip.next = be(&src.addr).into();
        cmd.src_port.next = u64::from(src.port).into();
        cmd.set_dst.next = c.dst.is_some();
        cmd.dst_ip.next = be(&dst.addr).into();
        cmd.dst_port.next = u64::from(dst.port).into();
        cmd.gue.next = c.gue.is_some();
        cmd.gue_port.next = u64::from(c.gue.unwrap_or(0x1234)).into();
        cmd.flow_hash.next = u64::from(c.flow_hash).into();
    }

    /// Plays `cases` through the stage, compares every output frame with the model's and
    /// counts refusals; returns the cycles taken.
    fn run(cases: &[Case], traffic: Traffic, seed: u64) -> u64 {
        let mut rng = Rng::new(seed);
        let mut uut = Rewrite::new();
        uut.connect_all();
        let mut source = ByteSource::new(cases.iter().map(|c| c.frame.clone()).collect());
        let expected: Vec<(usize, &Vec<u8>)> = cases
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.expected.as_ref().map(|e| (i, e)))
            .collect();
        let want_refused = cases.iter().filter(|c| c.refused).count();
        let (mut next_cmd, mut received, mut refused, mut cycles) = (0, 0, 0, 0u64);
        let mut current = Vec::new();
        let limit = 50 + 4 * cases.iter().map(|c| c.frame.len() as u64 + 30).sum::<u64>();
        while next_cmd < cases.len() || !source.done() || received < expected.len() {
            let offer = next_cmd < cases.len() && !rng.chance(traffic.idle_permille);
            let c = cases.get(next_cmd).map_or(Command::default(), |c| c.command);
            drive(&mut uut, &c, offer);
            source.drive(&mut uut.s_axis, traffic, &mut rng);
            uut.m_axis.tready.next = traffic.ready(&mut rng);
            settle(&mut uut);
            let cmd_taken = offer && uut.s_cmd.tready.val();
            let taken = uut.s_axis.tvalid.val() && uut.s_axis.tready.val();
            if uut.m_axis.tvalid.val() && uut.m_axis.tready.val() {
                let byte: u64 = uut.m_axis.tdata.val().into();
                current.push(byte as u8);
                if uut.m_axis.tlast.val() {
                    let (i, want) = expected.get(received).expect("an unexpected output frame");
                    let case = &cases[*i];
                    assert_eq!(
                        &current, *want,
                        "frame {i} ({:?}) in {:02x?}\ncommand {:x?}",
                        case.mode, case.frame, case.command
                    );
                    current.clear();
                    received += 1;
                }
            }
            if uut.mtu_refused.val() {
                refused += 1;
            }
            tick(&mut uut, |u| &mut u.clock);
            source.advance(taken);
            next_cmd += usize::from(cmd_taken);
            cycles += 1;
            assert!(cycles < limit, "stuck: {received} of {} frames out", expected.len());
        }
        assert!(current.is_empty());
        assert_eq!(refused, want_refused, "MTU refusals");
        cycles
    }

    fn cases(seed: u64, per_mode: usize) -> Vec<Case> {
        let mut rng = Rng::new(seed);
        let mut cases = Vec::new();
        for _ in 0..per_mode {
            for mode in MODES {
                cases.push(case(&mut rng, mode));
            }
        }
        // Shuffle so modes follow each other in every order.
        for i in (1..cases.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            cases.swap(i, j);
        }
        cases
    }

    /// Enough of every interesting case to make the run meaningful.
    fn check_coverage(cases: &[Case]) {
        let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
        for mode in MODES {
            assert!(count(&|c| c.mode == mode) >= 500, "{mode:?}");
        }
        let refused = count(&|c| c.refused);
        let big_tunnelled = count(&|c| {
            c.command.op == op::ENCAP && !c.refused && c.command.total_len > 1400
        });
        assert!(refused >= 20 && big_tunnelled >= 20, "{refused} {big_tunnelled}");
        let rewritten = |kind: u64| {
            count(&|c| {
                c.command.op == op::REWRITE && c.command.l4_kind == kind && c.command.src.is_some()
            })
        };
        assert!(rewritten(l4_kind::TCP) >= 200 && rewritten(l4_kind::UDP) >= 200);
        assert!(rewritten(l4_kind::ICMP) + rewritten(l4_kind::FRAGMENT) >= 50);
        let udp_none = count(&|c| {
            c.command.op == op::REWRITE && c.command.l4_kind == l4_kind::UDP && c.command.l4_checksum == 0
        });
        let tcp_ffff = count(&|c| {
            c.command.op == op::REWRITE
                && c.command.l4_kind == l4_kind::TCP
                && c.command.l4_checksum == 0xffff
        });
        assert!(udp_none >= 20 && tcp_ffff >= 10, "{udp_none} {tcp_ffff}");
        let tagged = count(&|c| c.command.op >= op::REWRITE && c.command.l3_offset == 18);
        assert!(tagged >= 300);
    }

    #[test]
    fn every_mode_back_to_back_equals_the_model() {
        let cases = cases(0x5e5e, 800);
        check_coverage(&cases);
        let cycles = run(&cases, Traffic::SMOOTH, 11);
        // One cycle for the command, one per byte in, one per inserted byte, and the
        // output register emptying at the end.
        let inserted = |c: &Case| match (c.command.op, c.refused, c.command.gue) {
            (op::ENCAP, false, Some(_)) => 28,
            (op::ENCAP, false, None) => 20,
            _ => 0,
        };
        let ideal: u64 = cases
            .iter()
            .map(|c| 1 + c.frame.len() as u64 + inserted(c))
            .sum();
        assert_eq!(cycles, ideal + 1);
    }

    #[test]
    fn every_mode_with_idle_cycles_and_back_pressure_equals_the_model() {
        let cases = cases(0xb0b0, 800);
        check_coverage(&cases);
        run(&cases, Traffic::BUMPY, 12);
    }
}
