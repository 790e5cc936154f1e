//! The control-frame bridge of the board top (`rtl/ctrl_bridge.v`), at the RGMII pins:
//! register reads and writes sent by the MCU on port 2 as `fulcrum_model::ctrl_frame`
//! requests must be answered on port 2 exactly as `ctrl_frame::Responder` answers them on
//! the same registers (a retransmitted request's writes skipped), malformed ones dropped
//! without touching a register, other frames
//! on port 2 passed to the core unchanged, and EtherType 0x88B5 on the network port
//! never treated as a register access.
//!
//! The core is the test-only `sim/tb_core_regs.v` (loop-through + 256 plain registers),
//! mirrored here by [`Words`].

use fulcrum_board_colorlight::sim::{BoardSim, Core, TxFrame};
use fulcrum_board_colorlight::with_fcs;
use fulcrum_model::ctrl_frame::{self, CtrlFrame, KIND_REQUEST, KIND_RESPONSE, Op, Responder};
use fulcrum_model::regmap::RegisterBus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MCU: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const FPGA: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// The register side of `tb_core_regs.v`.
struct Words([u32; 256]);

impl RegisterBus for Words {
    fn write32(&mut self, addr: u16, value: u32) {
        self.0[usize::from(addr & 0xFF)] = value;
    }
    fn read32(&mut self, addr: u16) -> u32 {
        if addr == 0 {
            fulcrum_model::regmap::ID
        } else {
            self.0[usize::from(addr & 0xFF)]
        }
    }
}

fn random_ops(rng: &mut StdRng, n: usize) -> Vec<Op> {
    (0..n)
        .map(|_| {
            // a small address range so reads often see earlier writes
            let addr = rng.gen_range(0..24u16);
            if rng.gen_bool(0.5) {
                Op::Write {
                    addr,
                    value: rng.r#gen(),
                }
            } else {
                Op::Read { addr, value: 0 }
            }
        })
        .collect()
}

fn request(seq: u16, ops: &[Op]) -> Vec<u8> {
    let mut buf = vec![0u8; ctrl_frame::frame_len(ops.len())];
    let n = ctrl_frame::encode(FPGA, MCU, KIND_REQUEST, seq, ops, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Pads to the 60-byte minimum as the MCU's MAC does, then adds the FCS.
fn wire(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    if f.len() < 60 {
        f.resize(60, 0);
    }
    with_fcs(&f)
}

fn is_ctrl(frame: &[u8]) -> bool {
    frame.len() >= 14 && frame[12..14] == ctrl_frame::ETHERTYPE.to_be_bytes()
}

#[test]
fn register_requests_are_answered_as_the_model_answers_them() {
    let dir = tempfile::tempdir().unwrap();
    let sim = BoardSim::compile(dir.path(), Core::TestRegisters).unwrap();
    let mut rng = StdRng::seed_from_u64(0x88B5);
    let mut model = Words([0; 256]);
    let mut bridge = Responder::new();

    let mut into2 = Vec::new(); // MCU -> FPGA
    let mut expect_replies = Vec::new();
    let mut expect_on1 = Vec::new(); // ordinary MCU frames, to the network port
    for i in 0..48u16 {
        // The bridge takes one control frame at a time (up to ~2,000 cycles for 32 ops)
        // while requests can arrive at line rate; a real MCU waits for each reply, and
        // here a pause every 4 frames keeps the port-2 receive FIFO from overflowing
        // (it would drop whole frames, which the FIFO tests cover).
        if i % 4 == 0 {
            into2.push(Vec::new());
        }
        match i % 8 {
            // an ordinary frame from the MCU, IPv4 EtherType
            1 | 5 => {
                let mut f: Vec<u8> = (0..rng.gen_range(60..300)).map(|_| rng.r#gen()).collect();
                f[12] = 0x08;
                f[13] = 0x00;
                into2.push(with_fcs(&f));
                expect_on1.push(f);
            }
            // malformed control frames: bad version, unknown op code, truncated
            3 => {
                let mut f = request(i, &random_ops(&mut rng, 3));
                match (i / 8) % 3 {
                    0 => f[14] = 2,
                    1 => f[20 + 8] = 0x99,
                    _ => {
                        f[18] = 12; // declares 12 ops, carries 3 (60+ bytes with padding)
                    }
                }
                assert!(CtrlFrame::parse(&f).is_err());
                into2.push(wire(&f));
            }
            // a request whose response was lost, sent again with the same sequence
            // number: its writes are not performed twice (the read between the two
            // writes then sees the second write's value, not the first's)
            6 => {
                let addr = rng.gen_range(0..24u16);
                let (x, y) = (rng.r#gen(), rng.r#gen());
                let req = request(
                    i,
                    &[
                        Op::Write { addr, value: x },
                        Op::Read { addr, value: 0 },
                        Op::Write { addr, value: y },
                    ],
                );
                for copy in 0..2 {
                    let mut resp = vec![0u8; req.len()];
                    let m = bridge.respond(&req, &mut model, &mut resp).unwrap();
                    resp.truncate(m);
                    let read = CtrlFrame::parse(&resp).unwrap().ops().nth(1);
                    let want = if copy == 0 { x } else { y };
                    assert_eq!(read, Some(Op::Read { addr, value: want }));
                    if copy == 1 {
                        into2.push(Vec::new()); // the MCU's timeout
                    }
                    into2.push(wire(&req));
                    expect_replies.push(resp);
                }
            }
            _ => {
                let n = rng.gen_range(1..=ctrl_frame::MAX_OPS);
                let req = request(i, &random_ops(&mut rng, n));
                let mut resp = vec![0u8; req.len()];
                let m = bridge.respond(&req, &mut model, &mut resp).unwrap();
                resp.truncate(m);
                into2.push(wire(&req));
                expect_replies.push(resp);
            }
        }
    }
    // a control frame on the network port is traffic: it crosses to port 2 unchanged
    let from_net = request(
        999,
        &[Op::Write {
            addr: 5,
            value: 0xDEAD_BEEF,
        }],
    );
    let into1 = vec![wire(&from_net)];
    // and a final read-back of every register shows what the model has
    let readback: Vec<Op> = (0..24u16).map(|addr| Op::Read { addr, value: 0 }).collect();
    let req = request(1000, &readback);
    let mut resp = vec![0u8; req.len()];
    bridge.respond(&req, &mut model, &mut resp).unwrap();
    into2.push(wire(&req));
    expect_replies.push(resp);
    assert_eq!(bridge.retransmissions, 6);

    let out = sim.run(&into1, &into2).unwrap();
    let payloads = |port: u8| -> Vec<Vec<u8>> {
        out.iter()
            .filter(|f: &&TxFrame| f.port == port)
            .map(|f| {
                assert!(f.preamble_ok && f.idle_before >= 12, "port {port} framing");
                f.payload().expect("FCS").to_vec()
            })
            .collect()
    };
    let on2 = payloads(2);
    let on1 = payloads(1);

    let replies: Vec<&Vec<u8>> = on2
        .iter()
        .filter(|f| is_ctrl(f) && f[15] == KIND_RESPONSE)
        .collect();
    assert_eq!(replies.len(), expect_replies.len(), "replies on port 2");
    for (i, (got, want)) in replies.iter().zip(&expect_replies).enumerate() {
        // the MAC pads a short reply to 60 bytes: compare the reply's own bytes
        assert!(
            got.len() >= want.len() && got.len() >= 60,
            "reply {i} length"
        );
        assert_eq!(&got[..want.len()], want.as_slice(), "reply {i}");
        assert!(
            got[want.len()..].iter().all(|&b| b == 0),
            "reply {i} padding"
        );
    }
    // the network port's 0x88B5 frame arrived on port 2 unchanged, and was not executed
    let crossed: Vec<&Vec<u8>> = on2
        .iter()
        .filter(|f| is_ctrl(f) && f[15] == KIND_REQUEST)
        .collect();
    assert_eq!(crossed.len(), 1);
    assert_eq!(&crossed[0][..from_net.len()], from_net.as_slice());
    assert_eq!(on2.len(), replies.len() + 1, "nothing else on port 2");

    assert_eq!(on1.len(), expect_on1.len(), "ordinary MCU frames on port 1");
    for (i, (got, want)) in on1.iter().zip(&expect_on1).enumerate() {
        assert_eq!(got, want, "MCU frame {i}");
    }
}
