//! Register-bus control frames: the MCU's register reads and writes carried in-band as
//! Ethernet frames on the FPGA's MCU port (port 2).
//!
//! On the Colorlight 5A-75B every free FPGA pin sits behind a one-way 74HC245 buffer
//! (the HUB75 connectors), so an SPI slave cannot be wired without modifying the board.
//! The MCU is cabled to port 2 anyway, so the register bus of [`crate::regmap`] travels in
//! frames of the local experimental EtherType [`ETHERTYPE`] (IEEE 802 "local
//! experimental 1"). The FPGA accepts them only on port 2: a frame of this EtherType on
//! the network port is just traffic to the pipeline, never a register access.
//!
//! Layout after the 14-byte Ethernet header (multi-byte fields big-endian, as the
//! register map):
//!
//! | offset | field |
//! |---|---|
//! | 0 | version, [`VERSION`] |
//! | 1 | kind: [`KIND_REQUEST`] (MCU to FPGA) or [`KIND_RESPONSE`] (FPGA to MCU) |
//! | 2–3 | sequence number, echoed in the response |
//! | 4 | operation count `n`, 1..=[`MAX_OPS`] |
//! | 5 | 0 |
//! | 6 + 8i | op `i`: code ([`crate::regmap::spi::WRITE`] or [`crate::regmap::spi::READ`]), 0, address (2), value (4) |
//!
//! The FPGA performs the ops in order and answers with the same frame turned around
//! (destination and source MAC swapped, kind = response) in which each read's value is
//! the register's value and each write's value is echoed. [`respond`] is that behaviour,
//! the reference the HDL bridge is checked against. A frame shorter than 60 bytes is
//! padded on the wire; decoding ignores bytes after the last op.
//!
//! Panic contract: nothing here panics on any input bytes; bad frames give a
//! [`CtrlError`].

use crate::regmap::{RegisterBus, spi};

/// The EtherType of control frames (IEEE 802 local experimental EtherType 1).
pub const ETHERTYPE: u16 = 0x88B5;
/// Format version.
pub const VERSION: u8 = 1;
/// `kind` of a request.
pub const KIND_REQUEST: u8 = 1;
/// `kind` of a response.
pub const KIND_RESPONSE: u8 = 2;
/// Most ops in one frame (keeps a frame under 300 bytes and the FPGA's buffer small).
pub const MAX_OPS: usize = 32;
/// Ethernet header bytes.
pub const ETH_HEADER: usize = 14;
/// Control header bytes after the Ethernet header.
pub const CTRL_HEADER: usize = 6;
/// Bytes per op.
pub const OP_LEN: usize = 8;

/// The frame length (without FCS or padding) for `ops` operations.
pub const fn frame_len(ops: usize) -> usize {
    ETH_HEADER + CTRL_HEADER + OP_LEN * ops
}

/// One register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Op {
    /// Write `value` at `addr`.
    Write {
        /// Word address.
        addr: u16,
        /// Value.
        value: u32,
    },
    /// Read `addr` (in a response: `value` is what was read).
    Read {
        /// Word address.
        addr: u16,
        /// 0 in a request; the register's value in a response.
        value: u32,
    },
}

/// Why a control frame could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CtrlError {
    /// The frame ends before its header or its last op.
    Truncated,
    /// The EtherType is not [`ETHERTYPE`].
    NotControl,
    /// The version byte is not [`VERSION`].
    Version(u8),
    /// The kind byte is neither request nor response.
    Kind(u8),
    /// The op count is 0 or more than [`MAX_OPS`].
    OpCount(u8),
    /// Op number `.0` has an unknown code `.1`.
    OpCode(u8, u8),
    /// The output buffer is smaller than the frame.
    BufferTooSmall,
}

impl core::fmt::Display for CtrlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "control frame truncated"),
            Self::NotControl => write!(f, "not a control frame (EtherType is not 0x88B5)"),
            Self::Version(v) => write!(f, "control frame version {v}, expected {VERSION}"),
            Self::Kind(k) => write!(f, "control frame kind {k} is neither request nor response"),
            Self::OpCount(n) => write!(f, "control frame op count {n} outside 1..={MAX_OPS}"),
            Self::OpCode(i, c) => write!(f, "control frame op {i}: unknown code {c:#04x}"),
            Self::BufferTooSmall => write!(f, "buffer too small for the control frame"),
        }
    }
}

/// A decoded control frame (a view over the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtrlFrame<'a> {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// [`KIND_REQUEST`] or [`KIND_RESPONSE`].
    pub kind: u8,
    /// Sequence number.
    pub seq: u16,
    ops: &'a [u8],
}

impl<'a> CtrlFrame<'a> {
    /// Checks and decodes `frame` (Ethernet header onwards, FCS removed; trailing padding
    /// allowed).
    pub fn parse(frame: &'a [u8]) -> Result<Self, CtrlError> {
        if frame.len() < ETH_HEADER + CTRL_HEADER {
            return Err(CtrlError::Truncated);
        }
        if u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE {
            return Err(CtrlError::NotControl);
        }
        let h = &frame[ETH_HEADER..];
        if h[0] != VERSION {
            return Err(CtrlError::Version(h[0]));
        }
        if h[1] != KIND_REQUEST && h[1] != KIND_RESPONSE {
            return Err(CtrlError::Kind(h[1]));
        }
        let n = h[4];
        if n == 0 || usize::from(n) > MAX_OPS {
            return Err(CtrlError::OpCount(n));
        }
        let end = frame_len(usize::from(n));
        if frame.len() < end {
            return Err(CtrlError::Truncated);
        }
        let ops = &frame[ETH_HEADER + CTRL_HEADER..end];
        for (i, op) in ops.chunks_exact(OP_LEN).enumerate() {
            if op[0] != spi::WRITE && op[0] != spi::READ {
                return Err(CtrlError::OpCode(i as u8, op[0]));
            }
        }
        let mut dst = [0; 6];
        let mut src = [0; 6];
        dst.copy_from_slice(&frame[0..6]);
        src.copy_from_slice(&frame[6..12]);
        Ok(Self {
            dst,
            src,
            kind: h[1],
            seq: u16::from_be_bytes([h[2], h[3]]),
            ops,
        })
    }

    /// Number of ops.
    pub fn op_count(&self) -> usize {
        self.ops.len() / OP_LEN
    }

    /// The ops, in order.
    pub fn ops(&self) -> impl Iterator<Item = Op> + 'a {
        self.ops.chunks_exact(OP_LEN).map(|op| {
            let addr = u16::from_be_bytes([op[2], op[3]]);
            let value = u32::from_be_bytes([op[4], op[5], op[6], op[7]]);
            if op[0] == spi::WRITE {
                Op::Write { addr, value }
            } else {
                Op::Read { addr, value }
            }
        })
    }
}

/// Encodes a frame of `kind` with `ops` into `buf`; returns its length (without FCS or
/// padding: the MAC pads to 60 bytes).
pub fn encode(
    dst: [u8; 6],
    src: [u8; 6],
    kind: u8,
    seq: u16,
    ops: &[Op],
    buf: &mut [u8],
) -> Result<usize, CtrlError> {
    if ops.is_empty() || ops.len() > MAX_OPS {
        return Err(CtrlError::OpCount(ops.len().min(255) as u8));
    }
    if kind != KIND_REQUEST && kind != KIND_RESPONSE {
        return Err(CtrlError::Kind(kind));
    }
    let len = frame_len(ops.len());
    let out = buf.get_mut(..len).ok_or(CtrlError::BufferTooSmall)?;
    out[0..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    out[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    let seq = seq.to_be_bytes();
    out[14..20].copy_from_slice(&[VERSION, kind, seq[0], seq[1], ops.len() as u8, 0]);
    for (op, chunk) in ops.iter().zip(out[20..].chunks_exact_mut(OP_LEN)) {
        let (code, addr, value) = match *op {
            Op::Write { addr, value } => (spi::WRITE, addr, value),
            Op::Read { addr, value } => (spi::READ, addr, value),
        };
        chunk[0] = code;
        chunk[1] = 0;
        chunk[2..4].copy_from_slice(&addr.to_be_bytes());
        chunk[4..8].copy_from_slice(&value.to_be_bytes());
    }
    Ok(len)
}

/// What the FPGA does with a request: performs its ops on `bus` in order and writes the
/// response into `out`; returns the response length. A response or a malformed frame is
/// not answered (the error says why) and touches no register.
///
/// This is the stateless core; the bridge itself is a [`Responder`], which also skips the
/// writes of a retransmitted request.
pub fn respond(
    request: &[u8],
    bus: &mut impl RegisterBus,
    out: &mut [u8],
) -> Result<usize, CtrlError> {
    respond_ops(request, bus, out, false).map(|(len, _)| len)
}

/// The FPGA bridge with its one word of state: the sequence number of the last request it
/// executed. The MCU sends one request at a time and retransmits it, same sequence number,
/// when no valid response came back in time. A request whose response was lost arrives
/// twice, so a request with the same sequence number as the last one is a retransmission:
/// its writes were already performed and are skipped (some writes are not idempotent:
/// `TABLE_WRITE` advances the table index, `CHANGE_POP` pops a record), its reads are
/// performed again and answered (reads have no side effects in the register map: the
/// latched counter and the popped record are still in place, since only the MCU moves
/// them). Any other sequence number executes the whole request and becomes the last one.
///
/// So the MCU's first request after it boots must be read-only (it cannot know the
/// bridge's last sequence number): `firmware::ctrl_bus` starts by reading `ID` and
/// `VERSION`. What this does not cover: a network that delivers an old copy of a request
/// after a newer request (the MCU's link is a cable or one switch, which do not reorder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Responder {
    last: Option<u16>,
    /// Requests answered.
    pub answered: u64,
    /// Requests recognised as retransmissions (writes skipped).
    pub retransmissions: u64,
    /// Frames dropped as malformed (or responses).
    pub rejected: u64,
}

impl Responder {
    /// A bridge that has executed nothing yet (after the FPGA's reset).
    pub const fn new() -> Self {
        Responder {
            last: None,
            answered: 0,
            retransmissions: 0,
            rejected: 0,
        }
    }

    /// The sequence number of the last request executed.
    pub fn last_seq(&self) -> Option<u16> {
        self.last
    }

    /// Answers `request` into `out` as the bridge does (see the type's documentation);
    /// returns the response length. Bad frames are not answered and touch nothing.
    pub fn respond(
        &mut self,
        request: &[u8],
        bus: &mut impl RegisterBus,
        out: &mut [u8],
    ) -> Result<usize, CtrlError> {
        let seq = match CtrlFrame::parse(request) {
            Ok(f) if f.kind == KIND_REQUEST => f.seq,
            Ok(f) => {
                self.rejected += 1;
                return Err(CtrlError::Kind(f.kind));
            }
            Err(e) => {
                self.rejected += 1;
                return Err(e);
            }
        };
        let retransmission = self.last == Some(seq);
        let (len, _) = respond_ops(request, bus, out, retransmission).inspect_err(|_| {
            self.rejected += 1;
        })?;
        self.last = Some(seq);
        self.answered += 1;
        if retransmission {
            self.retransmissions += 1;
        }
        Ok(len)
    }
}

fn respond_ops(
    request: &[u8],
    bus: &mut impl RegisterBus,
    out: &mut [u8],
    skip_writes: bool,
) -> Result<(usize, u16), CtrlError> {
    let req = CtrlFrame::parse(request)?;
    if req.kind != KIND_REQUEST {
        return Err(CtrlError::Kind(req.kind));
    }
    let len = frame_len(req.op_count());
    let resp = out.get_mut(..len).ok_or(CtrlError::BufferTooSmall)?;
    resp.copy_from_slice(&request[..len]);
    resp[0..6].copy_from_slice(&req.src);
    resp[6..12].copy_from_slice(&req.dst);
    resp[ETH_HEADER + 1] = KIND_RESPONSE;
    for (op, chunk) in req
        .ops()
        .zip(resp[ETH_HEADER + CTRL_HEADER..].chunks_exact_mut(OP_LEN))
    {
        match op {
            Op::Write { addr, value } => {
                if !skip_writes {
                    bus.write32(addr, value)
                }
            }
            Op::Read { addr, .. } => chunk[4..8].copy_from_slice(&bus.read32(addr).to_be_bytes()),
        }
    }
    Ok((len, req.seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regmap::addr;

    /// A bus of plain memory words that answers `ID` like the register map.
    struct Words([u32; 0x100]);
    impl RegisterBus for Words {
        fn write32(&mut self, addr: u16, value: u32) {
            self.0[usize::from(addr) & 0xFF] = value;
        }
        fn read32(&mut self, a: u16) -> u32 {
            if a == addr::ID {
                crate::regmap::ID
            } else {
                self.0[usize::from(a) & 0xFF]
            }
        }
    }

    const MCU: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const FPGA: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    #[test]
    fn request_round_trips_and_matches_the_documented_bytes() {
        let ops = [
            Op::Write {
                addr: 0x0012,
                value: 0x0A00_0001,
            },
            Op::Read {
                addr: 0x0000,
                value: 0,
            },
        ];
        let mut buf = [0u8; 64];
        let len = encode(FPGA, MCU, KIND_REQUEST, 0x1234, &ops, &mut buf).unwrap();
        assert_eq!(len, 14 + 6 + 16);
        assert_eq!(&buf[12..20], &[0x88, 0xB5, 1, 1, 0x12, 0x34, 2, 0]);
        assert_eq!(&buf[20..28], &[0x57, 0, 0x00, 0x12, 0x0A, 0, 0, 1]);
        assert_eq!(&buf[28..36], &[0x52, 0, 0, 0, 0, 0, 0, 0]);
        // padded to 60 bytes on the wire: still decodes
        let f = CtrlFrame::parse(&buf[..60]).unwrap();
        assert_eq!(
            (f.dst, f.src, f.kind, f.seq),
            (FPGA, MCU, KIND_REQUEST, 0x1234)
        );
        let got: heapless::Vec<Op, 4> = f.ops().collect();
        assert_eq!(got.as_slice(), &ops);
    }

    #[test]
    fn respond_performs_ops_in_order_and_turns_the_frame_around() {
        let mut regs = Words([0; 0x100]);
        let ops = [
            Op::Write {
                addr: addr::ADDRESS,
                value: 0xC0A8_0001,
            },
            Op::Read {
                addr: addr::ADDRESS,
                value: 0,
            },
            Op::Read {
                addr: addr::ID,
                value: 0,
            },
        ];
        let mut req = [0u8; 64];
        let n = encode(FPGA, MCU, KIND_REQUEST, 7, &ops, &mut req).unwrap();
        let mut resp = [0u8; 64];
        let m = respond(&req[..n], &mut regs, &mut resp).unwrap();
        assert_eq!(m, n);
        let r = CtrlFrame::parse(&resp[..m]).unwrap();
        assert_eq!((r.dst, r.src, r.kind, r.seq), (MCU, FPGA, KIND_RESPONSE, 7));
        let got: heapless::Vec<Op, 4> = r.ops().collect();
        assert_eq!(
            got.as_slice(),
            &[
                Op::Write {
                    addr: addr::ADDRESS,
                    value: 0xC0A8_0001
                },
                Op::Read {
                    addr: addr::ADDRESS,
                    value: 0xC0A8_0001
                },
                Op::Read {
                    addr: addr::ID,
                    value: crate::regmap::ID
                },
            ]
        );
        // a response is not answered
        assert_eq!(
            respond(&resp[..m], &mut regs, &mut req),
            Err(CtrlError::Kind(KIND_RESPONSE))
        );
    }

    #[test]
    fn a_retransmitted_request_is_answered_but_its_writes_are_not_repeated() {
        // TABLE_WRITE-like: every write to 0x46 advances a counter (not idempotent).
        struct Strobe(Words, u32);
        impl RegisterBus for Strobe {
            fn write32(&mut self, addr: u16, value: u32) {
                if addr == 0x46 {
                    self.1 += 1;
                }
                self.0.write32(addr, value)
            }
            fn read32(&mut self, addr: u16) -> u32 {
                if addr == 0x46 {
                    self.1
                } else {
                    self.0.read32(addr)
                }
            }
        }
        let mut bus = Strobe(Words([0; 0x100]), 0);
        let mut bridge = Responder::new();
        let req = |seq: u16| {
            let mut b = [0u8; 64];
            let ops = [
                Op::Write {
                    addr: 0x46,
                    value: 1,
                },
                Op::Read {
                    addr: 0x46,
                    value: 0,
                },
            ];
            let n = encode(FPGA, MCU, KIND_REQUEST, seq, &ops, &mut b).unwrap();
            (b, n)
        };
        let read_back = |resp: &[u8]| match CtrlFrame::parse(resp).unwrap().ops().nth(1) {
            Some(Op::Read { value, .. }) => value,
            other => panic!("{other:?}"),
        };
        let mut out = [0u8; 64];
        let (r5, n5) = req(5);
        let m = bridge.respond(&r5[..n5], &mut bus, &mut out).unwrap();
        assert_eq!((bus.1, read_back(&out[..m])), (1, 1));
        // the response was lost: the same request again
        let m = bridge.respond(&r5[..n5], &mut bus, &mut out).unwrap();
        assert_eq!((bus.1, read_back(&out[..m])), (1, 1));
        assert_eq!((bridge.answered, bridge.retransmissions), (2, 1));
        // the next request executes
        let (r6, n6) = req(6);
        let m = bridge.respond(&r6[..n6], &mut bus, &mut out).unwrap();
        assert_eq!((bus.1, read_back(&out[..m])), (2, 2));
        assert_eq!(bridge.last_seq(), Some(6));
        // a bad frame changes nothing and is counted
        assert!(bridge.respond(&r6[..10], &mut bus, &mut out).is_err());
        assert_eq!((bus.1, bridge.last_seq(), bridge.rejected), (2, Some(6), 1));
        // after a reset, a request with any sequence number executes
        let mut bridge = Responder::new();
        bridge.respond(&r6[..n6], &mut bus, &mut out).unwrap();
        assert_eq!(bus.1, 3);
    }

    #[test]
    fn malformed_frames_are_rejected_without_panicking() {
        let mut buf = [0u8; 64];
        let n = encode(
            FPGA,
            MCU,
            KIND_REQUEST,
            1,
            &[Op::Read { addr: 1, value: 0 }],
            &mut buf,
        )
        .unwrap();
        let good = buf;
        for cut in 0..n {
            assert_eq!(
                CtrlFrame::parse(&good[..cut]),
                Err(CtrlError::Truncated),
                "cut at {cut}"
            );
        }
        let mut bad = good;
        bad[13] = 0x00;
        assert_eq!(CtrlFrame::parse(&bad[..n]), Err(CtrlError::NotControl));
        let mut bad = good;
        bad[14] = 9;
        assert_eq!(CtrlFrame::parse(&bad[..n]), Err(CtrlError::Version(9)));
        let mut bad = good;
        bad[15] = 3;
        assert_eq!(CtrlFrame::parse(&bad[..n]), Err(CtrlError::Kind(3)));
        let mut bad = good;
        bad[18] = 0;
        assert_eq!(CtrlFrame::parse(&bad[..n]), Err(CtrlError::OpCount(0)));
        bad[18] = 33;
        assert_eq!(CtrlFrame::parse(&bad[..n]), Err(CtrlError::OpCount(33)));
        let mut bad = good;
        bad[20] = 0x00;
        assert_eq!(CtrlFrame::parse(&bad[..n]), Err(CtrlError::OpCode(0, 0)));
        assert_eq!(
            encode(FPGA, MCU, KIND_REQUEST, 1, &[], &mut buf),
            Err(CtrlError::OpCount(0))
        );
        assert_eq!(
            encode(
                FPGA,
                MCU,
                KIND_REQUEST,
                1,
                &[Op::Read { addr: 0, value: 0 }],
                &mut buf[..10]
            ),
            Err(CtrlError::BufferTooSmall)
        );
        // every byte value in every position: parse never panics
        for at in 0..n {
            for v in 0..=255u8 {
                let mut f = good;
                f[at] = v;
                let _ = CtrlFrame::parse(&f[..n]).map(|f| f.ops().count());
            }
        }
    }
}
