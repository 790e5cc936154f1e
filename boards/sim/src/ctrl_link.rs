//! The MCU reaching its FPGA through control frames, as on the Colorlight 5A-75B: the
//! MCU's register bus is `fulcrum_firmware::ctrl_bus` (the NUCLEO's code) on the MCU's
//! Ethernet link, and the FPGA's bridge on port 2 answers with
//! [`fulcrum_model::ctrl_frame::Responder`] on the FPGA's register file (the same
//! [`FpgaBus`] the direct mode writes), as the board's `ctrl_bridge.v` does.
//!
//! ```text
//!   MCU: Appliance ─ CtrlRegisterBus ─┐
//!        embassy-net ─ CtrlDevice ────┴ CtrlPort ─ BridgedMac ══ link ══ FPGA port 2
//!                                                    │ (0x88B5: the bridge)
//! ```
//!
//! The bridge sits on the wire in front of the FPGA's port 2, as the hardware bridge sits
//! in front of the core: a control frame is answered as it arrives, and every other frame
//! goes on to the pipeline (`fpga::forward`). In the board it is a block of its own that
//! runs beside the MCU; here it runs inside the MCU's transmit, since the simulated FPGA
//! shares the MCU's thread and the MCU's bus blocks while it waits for the answer.
//! [`CtrlFaults`] loses requests or responses on purpose, so the bus's retransmissions
//! run for real.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};
use fulcrum_firmware::ctrl_bus::{
    CtrlBuffers, CtrlCore, CtrlDevice, CtrlPort, CtrlRegisterBus, FPGA_MAC, FRAME_MAX, Timing,
};
use fulcrum_model::ctrl_frame::Responder;

use crate::fpga::{FpgaBus, FpgaHandle};
use crate::link::{End, LinkDriver};

/// Frames the MCU's port keeps for embassy-net while its bus waits (the NUCLEO keeps 4).
pub const STASH: usize = 8;

/// Control frames lost on purpose (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtrlFaults {
    /// Lose every n-th request on its way to the bridge.
    pub lose_every_nth_request: u32,
    /// Lose every n-th response on its way back (the request was executed).
    pub lose_every_nth_response: u32,
}

/// What the bridge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Control frames that reached the bridge.
    pub requests: u64,
    /// Requests lost on purpose.
    pub lost_requests: u64,
    /// Responses lost on purpose.
    pub lost_responses: u64,
    /// The bridge's own counters (answered, retransmissions skipped, rejected).
    pub responder: Responder,
}

/// The FPGA's control-frame bridge on port 2.
pub struct Bridge {
    regs: FpgaBus,
    responder: Responder,
    faults: CtrlFaults,
    replies: VecDeque<Vec<u8>>,
    stats: BridgeStats,
}

impl Bridge {
    fn request(&mut self, frame: &[u8]) {
        self.stats.requests += 1;
        let n = self.stats.requests;
        let nth = |every: u32| every != 0 && n.is_multiple_of(u64::from(every));
        if nth(self.faults.lose_every_nth_request) {
            self.stats.lost_requests += 1;
            return;
        }
        let mut out = [0u8; FRAME_MAX];
        // A malformed frame is not answered (counted by the responder), as in the FPGA.
        if let Ok(len) = self.responder.respond(frame, &mut self.regs, &mut out) {
            if nth(self.faults.lose_every_nth_response) {
                self.stats.lost_responses += 1;
            } else {
                self.replies.push_back(out[..len].to_vec());
            }
        }
        self.stats.responder = self.responder;
    }

    /// The bridge's counters.
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// Register writes and reads the bridge performed on the FPGA.
    pub fn register_accesses(&self) -> (u64, u64) {
        (self.regs.writes, self.regs.reads)
    }
}

/// The MCU's MAC on the link to the FPGA's port 2, with the FPGA's bridge on the wire.
pub struct BridgedMac {
    inner: LinkDriver,
    end: End,
    bridge: Rc<RefCell<Bridge>>,
    mac: [u8; 6],
}

impl BridgedMac {
    /// Sets the MCU's MAC (known once the saved or given config is applied).
    pub fn set_mac(&mut self, mac: [u8; 6]) {
        self.mac = mac;
    }
}

/// Receive token of [`BridgedMac`].
pub struct BridgedRx(Vec<u8>);
/// Transmit token of [`BridgedMac`].
pub struct BridgedTx<'a> {
    end: &'a End,
    bridge: &'a RefCell<Bridge>,
}

impl RxToken for BridgedRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl TxToken for BridgedTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if CtrlCore::is_control(&frame) {
            self.bridge.borrow_mut().request(&frame);
        } else {
            self.end.send(&frame);
        }
        r
    }
}

impl Driver for BridgedMac {
    type RxToken<'a> = BridgedRx;
    type TxToken<'a> = BridgedTx<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(BridgedRx, BridgedTx<'_>)> {
        let reply = self.bridge.borrow_mut().replies.pop_front();
        let frame = match reply {
            Some(f) => f,
            None => {
                let (rx, _) = self.inner.receive(cx)?;
                rx.consume(|f| f.to_vec())
            }
        };
        Some((
            BridgedRx(frame),
            BridgedTx {
                end: &self.end,
                bridge: &self.bridge,
            },
        ))
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<BridgedTx<'_>> {
        Some(BridgedTx {
            end: &self.end,
            bridge: &self.bridge,
        })
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        self.inner.link_state(cx)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}

/// The MCU's shared port.
pub type SimCtrlPort = CtrlPort<'static, BridgedMac, STASH>;
/// The MCU's register bus over control frames.
pub type SimCtrlBus = CtrlRegisterBus<'static, BridgedMac, STASH>;
/// The MCU's network device (every frame but control frames).
pub type SimCtrlDevice = CtrlDevice<'static, BridgedMac, STASH>;

/// The MCU side of a control-frame link, before the network stack is started.
pub struct CtrlLink {
    /// The shared port (the bus's counters).
    pub port: &'static RefCell<SimCtrlPort>,
    /// The FPGA's bridge.
    pub bridge: Rc<RefCell<Bridge>>,
    rx: &'static mut [u8; fulcrum_firmware::ctrl_bus::FRAME_BUF],
    tx: &'static mut [u8; fulcrum_firmware::ctrl_bus::FRAME_BUF],
}

impl CtrlLink {
    /// The MCU's end `mcu` of the link to `fpga`'s port 2, MCU MAC `mac`, with `faults`.
    pub fn new(fpga: FpgaHandle, mcu: End, mac: [u8; 6], faults: CtrlFaults) -> CtrlLink {
        let bridge = Rc::new(RefCell::new(Bridge {
            regs: FpgaBus::new(fpga),
            responder: Responder::new(),
            faults,
            replies: VecDeque::new(),
            stats: BridgeStats::default(),
        }));
        let mac_driver = BridgedMac {
            inner: LinkDriver::new(mcu.clone(), mac),
            end: mcu,
            bridge: bridge.clone(),
            mac,
        };
        let first_seq = crate::random_u64() as u16;
        let core = CtrlCore::new(FPGA_MAC, mac, first_seq, Timing::DEFAULT);
        let bufs: &'static mut CtrlBuffers<STASH> = Box::leak(Box::new(CtrlBuffers::new()));
        let (port, rx, tx) = CtrlPort::new(mac_driver, core, bufs);
        let port: &'static RefCell<SimCtrlPort> = Box::leak(Box::new(RefCell::new(port)));
        CtrlLink {
            port,
            bridge,
            rx,
            tx,
        }
    }

    /// Sets the MCU's MAC, the source of its requests and the stack's address.
    pub fn set_mac(&self, mac: [u8; 6]) {
        let mut port = self.port.borrow_mut();
        port.core_mut().set_mcu_mac(mac);
        port.driver_mut().set_mac(mac);
    }

    /// The register bus for the appliance.
    pub fn bus(&self) -> SimCtrlBus {
        CtrlRegisterBus::new(self.port)
    }

    /// The network device for embassy-net (once).
    pub fn device(self) -> SimCtrlDevice {
        CtrlDevice::new(self.port, self.rx, self.tx)
    }
}
