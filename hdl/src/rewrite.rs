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
//! The chain takes 12 cycles; the first checksum byte is at frame offset 24 or later.
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
    // Destination then source MAC, shifted out a byte per input byte.
    mac_sr: DFF<Bits<96>>,
    // A command was accepted and its frame is not through yet.
    r_busy: DFF<Bit>,
    // Next-byte field flags (see the byte multiplexer).
    f_mac: DFF<Bit>,
    f_et0: DFF<Bit>,
    f_et1: DFF<Bit>,
    f_ipc0: DFF<Bit>,
    f_ipc1: DFF<Bit>,
    f_src: DFF<Bit>,
    f_dst: DFF<Bit>,
    f_p01: DFF<Bit>,
    f_p23: DFF<Bit>,
    f_c6: DFF<Bit>,
    f_c7: DFF<Bit>,
    f_c16: DFF<Bit>,
    f_c17: DFF<Bit>,
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
    // Derived from the latched command the cycles after it is taken.
    start: DFF<Bit>,
    end_pos: DFF<Bits<16>>,
    chain_src_ip: DFF<Bits<32>>,
    chain_dst_ip: DFF<Bits<32>>,
    chain_ports: DFF<Bits<32>>,
    outer_word2: DFF<Bits<32>>,
    ip3_new: DFF<Bits<32>>,
    udp_ports: DFF<Bits<32>>,
    udp_word: DFF<Bits<32>>,
    hdr_word_idx: DFF<Bits<3>>,
    // The outer-header word at `hdr_word_idx`.
    hdr_word_q: DFF<Bits<32>>,
    // The word after it.
    hdr_word_nx: DFF<Bits<32>>,
    hdr_byte_idx: DFF<Bits<2>>,
    ip_new: DFF<Bits<16>>,
    l4_new: DFF<Bits<16>>,
    refused: DFF<Bit>,
    // Byte positions: in the frame, relative to the IPv4 and transport headers
    // (wrapping: "before the header" is a large value), and in the inserted header.
    pos: DFF<Bits<16>>,
    rel3: DFF<Bits<16>>,
    rel4: DFF<Bits<16>>,
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
    new_sport: Signal<Local, Bits<16>>,
    new_dport: Signal<Local, Bits<16>>,
    byte_out: Signal<Local, Bits<8>>,
    ip_word: Signal<Local, Bits<32>>,
    port_word: Signal<Local, Bits<16>>,
    hdr_word_next: Signal<Local, Bits<3>>,
    hdr_byte: Signal<Local, Bits<8>>,
    body_end: Signal<Local, Bit>,
    l3_wide: Signal<Local, Bits<16>>,
    l4_wide: Signal<Local, Bits<16>>,
    outer_len_in: Signal<Local, Bits<16>>,
    rel3_low: Signal<Local, Bits<2>>,
    flow_hash_low: Signal<Local, Bits<16>>,
    gue_sport_in: Signal<Local, Bits<16>>,
    udp_len_in: Signal<Local, Bits<16>>,
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
            mac_sr: Default::default(),
            r_busy: Default::default(),
            f_mac: Default::default(),
            f_et0: Default::default(),
            f_et1: Default::default(),
            f_ipc0: Default::default(),
            f_ipc1: Default::default(),
            f_src: Default::default(),
            f_dst: Default::default(),
            f_p01: Default::default(),
            f_p23: Default::default(),
            f_c6: Default::default(),
            f_c7: Default::default(),
            f_c16: Default::default(),
            f_c17: Default::default(),
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
            start: Default::default(),
            end_pos: Default::default(),
            chain_src_ip: Default::default(),
            chain_dst_ip: Default::default(),
            chain_ports: Default::default(),
            outer_word2: Default::default(),
            ip3_new: Default::default(),
            udp_ports: Default::default(),
            udp_word: Default::default(),
            hdr_word_idx: Default::default(),
            hdr_word_q: Default::default(),
            hdr_word_nx: Default::default(),
            hdr_byte_idx: Default::default(),
            ip_new: Default::default(),
            l4_new: Default::default(),
            refused: Default::default(),
            pos: Default::default(),
            rel3: Default::default(),
            rel4: Default::default(),
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
            new_sport: Default::default(),
            new_dport: Default::default(),
            byte_out: Default::default(),
            ip_word: Default::default(),
            port_word: Default::default(),
            hdr_word_next: Default::default(),
            hdr_byte: Default::default(),
            body_end: Default::default(),
            l3_wide: Default::default(),
            l4_wide: Default::default(),
            outer_len_in: Default::default(),
            rel3_low: Default::default(),
            flow_hash_low: Default::default(),
            gue_sport_in: Default::default(),
            udp_len_in: Default::default(),
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
            mac_sr,
            r_busy,
            f_mac,
            f_et0,
            f_et1,
            f_ipc0,
            f_ipc1,
            f_src,
            f_dst,
            f_p01,
            f_p23,
            f_c6,
            f_c7,
            f_c16,
            f_c17,
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
            start,
            end_pos,
            chain_src_ip,
            chain_dst_ip,
            chain_ports,
            outer_word2,
            ip3_new,
            udp_ports,
            udp_word,
            ip_new,
            l4_new,
            refused,
            pos,
            rel3,
            rel4,
            hdr_word_idx,
            hdr_word_q,
            hdr_word_nx,
            hdr_byte_idx,
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
        // The outer packet's length (total length + 20 or 28).
        self.outer_len_in.next = self.s_cmd.ip_total_len.val() + 20;
        if self.s_cmd.gue.val() {
            self.outer_len_in.next = self.s_cmd.ip_total_len.val() + 28;
        }
        // GUE: UDP source port 0xC000 | (hash & 0x3FFF), length = total length + 8.
        self.flow_hash_low.next = bit_cast::<16, 32>(self.s_cmd.flow_hash.val());
        self.gue_sport_in.next = (self.flow_hash_low.val() & 0x3fff) | 0xc000;
        self.udp_len_in.next = self.s_cmd.ip_total_len.val() + 8;
        // Fields left alone go into the checksum chains with old == new.
        self.new_src_ip.next = self.s_cmd.old_src_ip.val();
        self.new_sport.next = self.s_cmd.old_src_port.val();
        if self.s_cmd.set_src.val() {
            self.new_src_ip.next = self.s_cmd.src_ip.val();
            self.new_sport.next = self.s_cmd.src_port.val();
        }
        self.new_dst_ip.next = self.s_cmd.old_dst_ip.val();
        self.new_dport.next = self.s_cmd.old_dst_port.val();
        if self.s_cmd.set_dst.val() {
            self.new_dst_ip.next = self.s_cmd.dst_ip.val();
            self.new_dport.next = self.s_cmd.dst_port.val();
        }
        self.ip1.s_valid.next = self.start.q.val();
        self.ip1.checksum.next = self.ip_checksum.q.val();
        self.ip1.old.next = self.old_src_ip.q.val();
        self.ip1.new.next = self.chain_src_ip.q.val();
        self.ip2.old.next = self.old_dst_ip.q.val();
        self.ip2.new.next = self.chain_dst_ip.q.val();
        self.ip3.old.next = 0.into();
        self.ip3.new.next = 0.into();
        if self.encap.q.val() {
            // The outer header: checksum of the constant words, then the fields.
            self.ip1.checksum.next = 0x7aff.into();
            self.ip1.old.next = 0.into();
            self.ip1.new.next = self.src_ip.q.val();
            self.ip2.old.next = 0.into();
            self.ip2.new.next = self.dst_ip.q.val();
            self.ip3.new.next = self.ip3_new.q.val();
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
        self.l4a.new.next = self.chain_src_ip.q.val();
        self.l4b.old.next = self.old_dst_ip.q.val();
        self.l4b.new.next = self.chain_dst_ip.q.val();
        self.l4c.old.next = self.old_ports.q.val();
        self.l4c.new.next = self.chain_ports.q.val();
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

        // The byte leaving for this input byte. Which field a byte belongs to is decided
        // a cycle ahead: the `f_*` flags are registered from the counters' next values
        // (they only load at the command or count up by one), so the multiplexer below
        // selects on flip-flops (a comparator chain on the counters was 15 LUTs deep).
        // The MACs leave from a shift register.
        self.byte_out.next = self.s_axis.tdata.val();
        if self.macs.q.val() & self.f_mac.q.val() {
            self.byte_out.next = self.mac_sr.q.val().get_bits::<8>(88);
        }
        // The EtherType before the network header (0xFFFE, 0xFFFF relative to it).
        if self.encap.q.val() & self.f_et0.q.val() {
            self.byte_out.next = 0x08.into();
        }
        if self.encap.q.val() & self.f_et1.q.val() {
            self.byte_out.next = 0x00.into();
        }
        // IPv4 header: checksum at 10, source at 12, destination at 16.
        // 12..15 has bit 2 set, 16..19 does not.
        self.ip_word.next = self.dst_ip.q.val();
        if self.rel3.q.val().get_bit(2) {
            self.ip_word.next = self.src_ip.q.val();
        }
        self.rel3_low.next = bit_cast::<2, 16>(self.rel3.q.val());
        self.port_word.next = self.src_port.q.val();
        if self.rel4.q.val().get_bit(1) {
            self.port_word.next = self.dst_port.q.val();
        }
        if self.rewrite.q.val() & (self.set_src.q.val() | self.set_dst.q.val()) {
            if self.f_ipc0.q.val() {
                self.byte_out.next = self.ip_new.q.val().get_bits::<8>(8);
            }
            if self.f_ipc1.q.val() {
                self.byte_out.next = self.ip_new.q.val().get_bits::<8>(0);
            }
            if (self.set_src.q.val() & self.f_src.q.val())
                | (self.set_dst.q.val() & self.f_dst.q.val())
            {
                if self.rel3_low.val() == 0 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(24);
                }
                if self.rel3_low.val() == 1 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(16);
                }
                if self.rel3_low.val() == 2 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(8);
                }
                if self.rel3_low.val() == 3 {
                    self.byte_out.next = self.ip_word.val().get_bits::<8>(0);
                }
            }
            // Transport header: ports at 0 and 2, checksum at 6 (UDP) or 16 (TCP).
            if self.has_ports.q.val() {
                if (self.set_src.q.val() & self.f_p01.q.val())
                    | (self.set_dst.q.val() & self.f_p23.q.val())
                {
                    if self.rel4.q.val().get_bit(0) {
                        self.byte_out.next = self.port_word.val().get_bits::<8>(0);
                    } else {
                        self.byte_out.next = self.port_word.val().get_bits::<8>(8);
                    }
                }
                if (self.is_udp.q.val() & self.f_c6.q.val())
                    | (self.is_tcp.q.val() & self.f_c16.q.val())
                {
                    self.byte_out.next = self.l4_new.q.val().get_bits::<8>(8);
                }
                if (self.is_udp.q.val() & self.f_c7.q.val())
                    | (self.is_tcp.q.val() & self.f_c17.q.val())
                {
                    self.byte_out.next = self.l4_new.q.val().get_bits::<8>(0);
                }
            }
        }
        self.body_end.next = self.encap.q.val() & (self.pos.q.val() == self.end_pos.q.val());

        // The inserted outer header: 45 00 len | 0000 4000 | 40 proto csum | src | dst
        // [| sport dport | len 0000], as words (index `hdr_idx / 4`) of bytes.
        // (`hdr_word_q` is the word at `hdr_word_idx`, a register: a 7-way word selection
        // in front of the output byte was a critical path.)
        self.hdr_byte.next = 0.into();
        if self.phase.q.val() == Phase::Insert {
            self.hdr_byte.next = self.hdr_word_q.q.val().get_bits::<8>(24);
            if self.hdr_byte_idx.q.val() == 1 {
                self.hdr_byte.next = self.hdr_word_q.q.val().get_bits::<8>(16);
            }
            if self.hdr_byte_idx.q.val() == 2 {
                self.hdr_byte.next = self.hdr_word_q.q.val().get_bits::<8>(8);
            }
            if self.hdr_byte_idx.q.val() == 3 {
                self.hdr_byte.next = self.hdr_word_q.q.val().get_bits::<8>(0);
            }
        }

        // The output register empties when taken.
        if self.advance.val() {
            self.out_valid.d.next = false;
        }
        if self.take.val() {
            self.pos.d.next = self.pos.q.val() + 1;
            self.rel3.d.next = self.rel3.q.val() + 1;
            self.rel4.d.next = self.rel4.q.val() + 1;
            // The flags of the next byte: position p next is p - 1 now.
            // Rotated, not shifted: no zero fill, so no synchronous reset on the low byte
            // (its reset from the late `take` was the board's critical path); the bytes
            // after the twelfth are never sent.
            self.mac_sr.d.next = (self.mac_sr.q.val() << 8) | (self.mac_sr.q.val() >> 88);
            self.f_mac.d.next = self.pos.q.val() < 11;
            self.f_et0.d.next = self.rel3.q.val() == 0xfffd;
            self.f_et1.d.next = self.rel3.q.val() == 0xfffe;
            self.f_ipc0.d.next = self.rel3.q.val() == 9;
            self.f_ipc1.d.next = self.rel3.q.val() == 10;
            self.f_src.d.next = (self.rel3.q.val() >= 11) & (self.rel3.q.val() < 15);
            self.f_dst.d.next = (self.rel3.q.val() >= 15) & (self.rel3.q.val() < 19);
            self.f_p01.d.next = (self.rel4.q.val() == 0xffff) | (self.rel4.q.val() == 0);
            self.f_p23.d.next = (self.rel4.q.val() == 1) | (self.rel4.q.val() == 2);
            self.f_c6.d.next = self.rel4.q.val() == 5;
            self.f_c7.d.next = self.rel4.q.val() == 6;
            self.f_c16.d.next = self.rel4.q.val() == 15;
            self.f_c17.d.next = self.rel4.q.val() == 16;
        }

        // Between frames (`r_busy` low, a register) the frame registers follow the
        // command, so their loads hang off one flip-flop rather than off the accept
        // decision; they hold from the accept on.
        if !self.r_busy.q.val() {
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
            self.l3_offset.d.next = self.s_cmd.l3_offset.val();
            self.total_len.d.next = self.s_cmd.ip_total_len.val();
            self.ip_checksum.d.next = self.s_cmd.ip_checksum.val();
            self.l4_checksum.d.next = self.s_cmd.l4_checksum.val();
            self.old_src_ip.d.next = self.s_cmd.old_src_ip.val();
            self.old_dst_ip.d.next = self.s_cmd.old_dst_ip.val();
            self.old_ports.d.next = (bit_cast::<32, 16>(self.s_cmd.old_src_port.val()) << 16)
                | bit_cast::<32, 16>(self.s_cmd.old_dst_port.val());
            self.src_ip.d.next = self.s_cmd.src_ip.val();
            self.dst_ip.d.next = self.s_cmd.dst_ip.val();
            self.src_port.d.next = self.s_cmd.src_port.val();
            self.dst_port.d.next = self.s_cmd.dst_port.val();
            self.pos.d.next = 0.into();
            // The flags of byte 0 (`rel3` = -l3, `rel4` = -l4 with 8-bit offsets: a
            // field at a positive offset cannot be at byte 0).
            self.mac_sr.d.next = (bit_cast::<96, 48>(self.s_cmd.dst_mac.val()) << 48)
                | bit_cast::<96, 48>(self.s_cmd.src_mac.val());
            self.f_mac.d.next = true;
            self.f_et0.d.next = self.s_cmd.l3_offset.val() == 2;
            self.f_et1.d.next = self.s_cmd.l3_offset.val() == 1;
            self.f_ipc0.d.next = false;
            self.f_ipc1.d.next = false;
            self.f_src.d.next = false;
            self.f_dst.d.next = false;
            self.f_p01.d.next = self.s_cmd.l4_offset.val() == 0;
            self.f_p23.d.next = false;
            self.f_c6.d.next = false;
            self.f_c7.d.next = false;
            self.f_c16.d.next = false;
            self.f_c17.d.next = false;
            // 0 - offset: the header starts when the counter wraps to 0.
            self.rel3.d.next = !self.l3_wide.val() + 1;
            self.rel4.d.next = !self.l4_wide.val() + 1;
            self.hdr_word_idx.d.next = 0.into();
            self.hdr_byte_idx.d.next = 0.into();
            self.chain_src_ip.d.next = self.new_src_ip.val();
            self.chain_dst_ip.d.next = self.new_dst_ip.val();
            self.chain_ports.d.next = (bit_cast::<32, 16>(self.new_sport.val()) << 16)
                | bit_cast::<32, 16>(self.new_dport.val());
            self.end_pos.d.next = self.l3_wide.val() + self.s_cmd.ip_total_len.val() - 1;
            self.hdr_word_q.d.next = 0x4500_0000 | bit_cast::<32, 16>(self.outer_len_in.val());
            // TTL 64, protocol 4 (IP-in-IP) or 17 (UDP); the checksum comes later.
            self.outer_word2.d.next = 0x4004_0000.into();
            self.ip3_new.d.next = (bit_cast::<32, 16>(self.outer_len_in.val()) << 16) | 0x4004;
            if self.s_cmd.gue.val() {
                self.outer_word2.d.next = 0x4011_0000.into();
                self.ip3_new.d.next = (bit_cast::<32, 16>(self.outer_len_in.val()) << 16) | 0x4011;
            }
            self.udp_ports.d.next = (bit_cast::<32, 16>(self.gue_sport_in.val()) << 16)
                | bit_cast::<32, 16>(self.s_cmd.gue_port.val());
            self.udp_word.d.next = bit_cast::<32, 16>(self.udp_len_in.val()) << 16;
        }

        match self.phase.q.val() {
            Phase::Idle => {
                if self.accept.val() {
                    self.r_busy.d.next = true;
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
                        self.r_busy.d.next = false;
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
                    self.hdr_byte_idx.d.next = self.hdr_byte_idx.q.val() + 1;
                    if self.hdr_byte_idx.q.val() == 3 {
                        self.hdr_word_idx.d.next = self.hdr_word_idx.q.val() + 1;
                        self.hdr_word_q.d.next = self.hdr_word_nx.q.val();
                        // 5 words (IP-in-IP) or 7 (GUE).
                        if (!self.gue.q.val() & (self.hdr_word_idx.q.val() == 4))
                            | (self.hdr_word_idx.q.val() == 6)
                        {
                            self.phase.d.next = Phase::Copy;
                        }
                    }
                }
            }
            Phase::Discard => {
                if self.take.val() & self.s_axis.tlast.val() {
                    self.r_busy.d.next = false;
                    self.phase.d.next = Phase::Idle;
                }
            }
            _ => {
                self.r_busy.d.next = false;
                self.phase.d.next = Phase::Idle;
            }
        }

        // The inserted outer header: 45 00 len | 0000 4000 | 40 proto csum | src | dst
        // [| sport dport | len 0000], as words of bytes. `hdr_word_nx` is the word after
        // the one at `hdr_word_idx` (registered; the index holds for four bytes), and
        // `hdr_word_q` takes it when the index moves on. The sources are loaded at the
        // command or computed (`ip_new`) long before the insert, which starts after the
        // 14-byte Ethernet header.
        self.hdr_word_next.next = self.hdr_word_idx.q.val() + 1;
        self.hdr_word_nx.d.next = 0x0000_4000.into();
        if self.hdr_word_next.val() == 2 {
            self.hdr_word_nx.d.next =
                self.outer_word2.q.val() | bit_cast::<32, 16>(self.ip_new.q.val());
        }
        if self.hdr_word_next.val() == 3 {
            self.hdr_word_nx.d.next = self.src_ip.q.val();
        }
        if self.hdr_word_next.val() == 4 {
            self.hdr_word_nx.d.next = self.dst_ip.q.val();
        }
        if self.hdr_word_next.val() == 5 {
            self.hdr_word_nx.d.next = self.udp_ports.q.val();
        }
        if self.hdr_word_next.val() == 6 {
            self.hdr_word_nx.d.next = self.udp_word.q.val();
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
    pub(super) enum Mode {
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
    pub(super) struct Command {
        pub(super) op: u64,
        pub(super) dst_mac: [u8; 6],
        pub(super) src_mac: [u8; 6],
        pub(super) l3_offset: u64,
        pub(super) l4_offset: u64,
        pub(super) l4_kind: u64,
        pub(super) total_len: u64,
        pub(super) ip_checksum: u16,
        pub(super) l4_checksum: u16,
        pub(super) old_src: [u8; 4],
        pub(super) old_dst: [u8; 4],
        pub(super) old_ports: (u16, u16),
        pub(super) src: Option<Endpoint>,
        pub(super) dst: Option<Endpoint>,
        pub(super) tunnel_src: [u8; 4],
        pub(super) tunnel_dst: [u8; 4],
        pub(super) gue: Option<u16>,
        pub(super) flow_hash: u32,
    }

    pub(super) struct Case {
        pub(super) mode: Mode,
        pub(super) frame: Vec<u8>,
        pub(super) command: Command,
        /// The model's output frame (`None`: nothing leaves).
        pub(super) expected: Option<Vec<u8>>,
        /// The model refuses the tunnel (MTU).
        pub(super) refused: bool,
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
            command.op = if mode == Mode::Pass {
                op::PASS
            } else {
                op::DROP
            };
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
        let (mut frame, h) = if tunnel && rng.chance(60) {
            // Half of them on either side of the limits (1472 for GUE, 1480 for IP-in-IP).
            let total_len = if rng.chance(500) {
                [1471, 1472, 1473, 1479, 1480, 1481][rng.below(6) as usize]
            } else {
                1440 + rng.below(61) as usize
            };
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

    fn drive(uut: &mut Rewrite, c: &Command) {
        let cmd = &mut uut.s_cmd;
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
        let started = std::time::Instant::now();
        let mut source = ByteSource::new(cases.iter().map(|c| c.frame.clone()).collect());
        let expected: Vec<(usize, &Vec<u8>)> = cases
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.expected.as_ref().map(|e| (i, e)))
            .collect();
        let want_refused = cases.iter().filter(|c| c.refused).count();
        let (mut next_cmd, mut received, mut refused, mut cycles) = (0, 0, 0, 0u64);
        let mut current = Vec::new();
        let mut driven = None;
        let limit = 50 + 4 * cases.iter().map(|c| c.frame.len() as u64 + 30).sum::<u64>();
        while next_cmd < cases.len() || !source.done() || received < expected.len() {
            let offer = next_cmd < cases.len() && !rng.chance(traffic.idle_permille);
            if driven != Some(next_cmd) {
                // The fields change only for a new command (wide values are slow to set).
                let c = cases
                    .get(next_cmd)
                    .map_or(Command::default(), |c| c.command);
                drive(&mut uut, &c);
                driven = Some(next_cmd);
            }
            uut.s_cmd.tvalid.next = offer;
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
            assert!(
                cycles < limit,
                "stuck: {received} of {} frames out",
                expected.len()
            );
        }
        assert!(current.is_empty());
        assert_eq!(refused, want_refused, "MTU refusals");
        eprintln!(
            "rewrite {traffic:?}: {} frames, {received} out, {refused} refused, {cycles} cycles, {:.0} cycles/s",
            cases.len(),
            cycles as f64 / started.elapsed().as_secs_f64()
        );
        cycles
    }

    pub(super) fn cases(seed: u64, per_mode: usize) -> Vec<Case> {
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
        let big_tunnelled =
            count(&|c| c.command.op == op::ENCAP && !c.refused && c.command.total_len > 1400);
        assert!(
            refused >= 20 && big_tunnelled >= 20,
            "{refused} {big_tunnelled}"
        );
        let rewritten = |kind: u64| {
            count(&|c| {
                c.command.op == op::REWRITE && c.command.l4_kind == kind && c.command.src.is_some()
            })
        };
        assert!(rewritten(l4_kind::TCP) >= 200 && rewritten(l4_kind::UDP) >= 200);
        assert!(rewritten(l4_kind::ICMP) + rewritten(l4_kind::FRAGMENT) >= 50);
        let udp_none = count(&|c| {
            c.command.op == op::REWRITE
                && c.command.l4_kind == l4_kind::UDP
                && c.command.l4_checksum == 0
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
        // One cycle for the command, one per byte in, one per inserted byte.
        let inserted = |c: &Case| match (c.command.op, c.refused, c.command.gue) {
            (op::ENCAP, false, Some(_)) => 28,
            (op::ENCAP, false, None) => 20,
            _ => 0,
        };
        let ideal: u64 = cases
            .iter()
            .map(|c| 1 + c.frame.len() as u64 + inserted(c))
            .sum();
        // The loop ends with the last byte out, at most one cycle (the output register)
        // after the last byte in.
        assert!(
            cycles == ideal || cycles == ideal + 1,
            "{cycles} cycles, {ideal} ideal"
        );
    }

    #[test]
    fn every_mode_with_idle_cycles_and_back_pressure_equals_the_model() {
        let cases = cases(0xb0b0, 800);
        check_coverage(&cases);
        run(&cases, Traffic::BUMPY, 12);
    }
}

/// iverilog co-simulation of the rewrite stage's generated Verilog on a subset of the
/// same cases (see [`crate::cosim`] for why).
#[cfg(test)]
mod cosim {
    use std::fmt::Write as _;
    use std::process::Command as Process;

    use rust_hdl::prelude::*;

    use super::tests::{Command, cases};
    use super::{Rewrite, op};
    use crate::verilog::have_program;

    /// The command fields in the order they are packed (most significant first), with
    /// their widths and the port they drive.
    const FIELDS: [(&str, usize); 22] = [
        ("op", 2),
        ("dst_mac", 48),
        ("src_mac", 48),
        ("l3_offset", 8),
        ("l4_offset", 8),
        ("l4_kind", 3),
        ("ip_total_len", 16),
        ("ip_checksum", 16),
        ("l4_checksum", 16),
        ("old_src_ip", 32),
        ("old_dst_ip", 32),
        ("old_src_port", 16),
        ("old_dst_port", 16),
        ("set_src", 1),
        ("src_ip", 32),
        ("src_port", 16),
        ("set_dst", 1),
        ("dst_ip", 32),
        ("dst_port", 16),
        ("gue", 1),
        ("gue_port", 16),
        ("flow_hash", 32),
    ];

    fn values(c: &Command) -> [u128; 22] {
        let be = |b: &[u8]| b.iter().fold(0u128, |a, &x| a << 8 | u128::from(x));
        let (src, dst) = if c.op == op::ENCAP {
            ((be(&c.tunnel_src), 0), (be(&c.tunnel_dst), 0))
        } else {
            (
                c.src.map_or((0, 0), |e| (be(&e.addr), u128::from(e.port))),
                c.dst.map_or((0, 0), |e| (be(&e.addr), u128::from(e.port))),
            )
        };
        [
            u128::from(c.op),
            be(&c.dst_mac),
            be(&c.src_mac),
            u128::from(c.l3_offset),
            u128::from(c.l4_offset),
            u128::from(c.l4_kind),
            u128::from(c.total_len),
            u128::from(c.ip_checksum),
            u128::from(c.l4_checksum),
            be(&c.old_src),
            be(&c.old_dst),
            u128::from(c.old_ports.0),
            u128::from(c.old_ports.1),
            u128::from(c.src.is_some()),
            src.0,
            src.1,
            u128::from(c.dst.is_some()),
            dst.0,
            dst.1,
            u128::from(c.gue.is_some()),
            u128::from(c.gue.unwrap_or(0)),
            u128::from(c.flow_hash),
        ]
    }

    /// The command as one hex word, fields packed as in [`FIELDS`].
    fn pack(c: &Command) -> String {
        let mut bits = String::new();
        for ((_, w), v) in FIELDS.iter().zip(values(c)) {
            write!(bits, "{:0w$b}", v, w = *w).unwrap();
        }
        // Binary for $readmemb: wider than any integer type.
        bits
    }

    fn testbench(ncmds: usize, beats: usize, outputs: usize) -> String {
        let width: usize = FIELDS.iter().map(|(_, w)| w).sum();
        let mut tb = String::new();
        writeln!(tb, "`timescale 1ns/1ps\nmodule tb;").unwrap();
        writeln!(tb, "reg clock = 0;\nalways #4 clock = ~clock;").unwrap();
        writeln!(tb, "reg [{}:0] cmds [0:{}];", width - 1, ncmds - 1).unwrap();
        writeln!(tb, "reg [8:0] vec [0:{}];", beats - 1).unwrap();
        writeln!(
            tb,
            "integer i = 0, c = 0, frames = 0, refused = 0, out, cycles = 0;"
        )
        .unwrap();
        writeln!(tb, "reg [31:0] lfsr = 32'h5eed;").unwrap();
        writeln!(tb, "reg idle = 0, cidle = 0, m_ready = 1;").unwrap();
        writeln!(
            tb,
            "wire s_tready, c_tready, m_tvalid, m_tlast, m_tuser, mtu_refused;\nwire [7:0] m_tdata;"
        )
        .unwrap();
        writeln!(tb, "wire tvalid = (i < {beats}) && !idle;").unwrap();
        writeln!(tb, "wire cvalid = (c < {ncmds}) && !cidle;").unwrap();
        writeln!(tb, "wire [8:0] beat = vec[i < {beats} ? i : 0];").unwrap();
        writeln!(
            tb,
            "wire [{}:0] cmd = cmds[c < {ncmds} ? c : 0];",
            width - 1
        )
        .unwrap();
        let mut ports = vec![
            ".clock(clock)".to_string(),
            ".s_axis$tdata(beat[7:0])".into(),
            ".s_axis$tkeep(1'b1)".into(),
            ".s_axis$tvalid(tvalid)".into(),
            ".s_axis$tready(s_tready)".into(),
            ".s_axis$tlast(beat[8])".into(),
            ".s_axis$tuser(1'b0)".into(),
            ".m_axis$tdata(m_tdata)".into(),
            ".m_axis$tkeep()".into(),
            ".m_axis$tvalid(m_tvalid)".into(),
            ".m_axis$tready(m_ready)".into(),
            ".m_axis$tlast(m_tlast)".into(),
            ".m_axis$tuser(m_tuser)".into(),
            ".s_cmd$tvalid(cvalid)".into(),
            ".s_cmd$tready(c_tready)".into(),
            ".mtu_refused(mtu_refused)".into(),
        ];
        let mut top = width;
        for (name, w) in FIELDS {
            ports.push(format!(".s_cmd${name}(cmd[{}:{}])", top - 1, top - w));
            top -= w;
        }
        writeln!(tb, "top uut({});", ports.join(", ")).unwrap();
        writeln!(
            tb,
            "initial begin\n  $readmemb(\"cmds.bin\", cmds);\n  $readmemh(\"frames.hex\", vec);\n  out = $fopen(\"out.txt\", \"w\");\nend"
        )
        .unwrap();
        writeln!(tb, "always @(posedge clock) begin").unwrap();
        writeln!(tb, "  cycles <= cycles + 1;").unwrap();
        writeln!(tb, "  if (tvalid && s_tready) i <= i + 1;").unwrap();
        writeln!(tb, "  if (cvalid && c_tready) c <= c + 1;").unwrap();
        writeln!(tb, "  if (mtu_refused) refused <= refused + 1;").unwrap();
        writeln!(
            tb,
            "  if (m_tvalid && m_ready) begin\n    $fwrite(out, \"%h\", m_tdata);\n    if (m_tlast) begin $fwrite(out, \"\\n\"); frames <= frames + 1; end\n  end"
        )
        .unwrap();
        writeln!(
            tb,
            "  lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};"
        )
        .unwrap();
        writeln!(tb, "  idle <= lfsr[3] & lfsr[7];").unwrap();
        writeln!(tb, "  cidle <= lfsr[5] & lfsr[9];").unwrap();
        writeln!(tb, "  m_ready <= !(lfsr[17] & lfsr[19]);").unwrap();
        writeln!(
            tb,
            "  if (frames == {outputs} && i == {beats} && c == {ncmds}) begin\n    $fdisplay(out, \"refused %0d cycles %0d\", refused, cycles);\n    $fclose(out);\n    $finish;\n  end"
        )
        .unwrap();
        writeln!(
            tb,
            "  if (cycles > {}) begin $display(\"timeout\"); $finish; end",
            beats * 8 + 1000
        )
        .unwrap();
        writeln!(tb, "end\nendmodule").unwrap();
        tb
    }

    #[test]
    fn rewrite_verilog_matches_the_model_in_iverilog() {
        assert!(
            have_program("iverilog") && have_program("vvp"),
            "iverilog/vvp not found: the Verilog co-simulation cannot run. Install it \
             (Debian: apt-get install -y iverilog; scripts/test.sh does this as root)."
        );
        let cases = cases(0xc051, 60);
        let mut uut = Rewrite::new();
        uut.connect_inputs();
        uut.connect_all();
        let verilog = generate_verilog(&uut);

        let mut hex = String::new();
        let mut bin = String::new();
        for case in &cases {
            writeln!(bin, "{}", pack(&case.command)).unwrap();
            for (i, b) in case.frame.iter().enumerate() {
                let last = u16::from(i + 1 == case.frame.len()) << 8;
                writeln!(hex, "{:03x}", last | u16::from(*b)).unwrap();
            }
        }
        let beats: usize = cases.iter().map(|c| c.frame.len()).sum();
        let expected: Vec<&Vec<u8>> = cases.iter().filter_map(|c| c.expected.as_ref()).collect();
        let refused = cases.iter().filter(|c| c.refused).count();

        let dir =
            std::env::temp_dir().join(format!("fulcrum_cosim_rewrite_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cmds.bin"), bin).unwrap();
        std::fs::write(dir.join("frames.hex"), hex).unwrap();
        std::fs::write(dir.join("rewrite.v"), verilog).unwrap();
        std::fs::write(
            dir.join("tb.v"),
            testbench(cases.len(), beats, expected.len()),
        )
        .unwrap();
        let compile = Process::new("iverilog")
            .current_dir(&dir)
            .args(["-g2005", "-o", "sim", "tb.v", "rewrite.v"])
            .output()
            .unwrap();
        assert!(
            compile.status.success(),
            "iverilog rejects the rewrite stage's Verilog:\n{}",
            String::from_utf8_lossy(&compile.stderr)
        );
        let run = Process::new("vvp")
            .current_dir(&dir)
            .args(["-n", "sim"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "vvp failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(dir.join("out.txt")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            expected.len() + 1,
            "frames written by the testbench ({})",
            String::from_utf8_lossy(&run.stdout)
        );
        for (n, (line, want)) in lines.iter().zip(&expected).enumerate() {
            let want: String = want.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(*line, want, "output frame {n} in the Verilog simulation");
        }
        let last = lines[expected.len()];
        assert!(
            last.starts_with(&format!("refused {refused} ")),
            "MTU refusals: {last}, want {refused}"
        );
        assert!(refused > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
