//! One Ethernet MAC shared by the register bus and the network stack.
//!
//! ```text
//!              ┌── CtrlRegisterBus (the appliance's RegisterBus; blocking exchanges)
//!   Driver ── CtrlPort (RefCell: the MAC, the core, a stash of other frames)
//!              └── CtrlDevice (embassy-net's Driver: every frame but control frames)
//! ```
//!
//! While the bus waits for a response it polls the MAC itself (with a no-op waker) and
//! keeps the other frames that arrive meanwhile (punts, the MCU's traffic) in a small
//! stash, which the device hands to embassy-net first, in order. When the stash is full,
//! further frames are dropped and counted ([`PortStats::stash_dropped`]); TCP recovers
//! them. The device flushes a batch of writes that no read or commit has sent yet at
//! the stack's next poll (the bus wakes the stack when a batch opens).
//!
//! Everything is synchronous on the executor's thread: the bus is used from the
//! appliance's synchronous code and the device from the stack's runner, never at once; a
//! borrow conflict (which would be a bug) is answered as "nothing now", not a panic.

use core::cell::RefCell;
use core::task::{Context, Waker};

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};
use fulcrum_model::ctrl_frame::Op;
use fulcrum_model::regmap::{RegisterBus, addr};

use super::{Action, CtrlBusError, CtrlCore, FAILED_READ};

/// Largest frame the port passes to the stack (the MCU's MTU is 1514; the simulated
/// FPGA's punts carry up to 64 bytes of tunnel headroom more).
pub const FRAME_BUF: usize = 1600;
/// Frames on the wire are at least this long (before the FCS): requests are padded.
const MIN_FRAME: usize = 60;
/// Frames taken from the MAC per pump (bounds one pass while waiting).
const PUMP_FRAMES: usize = 64;

/// A frame kept for the network stack while the bus waited.
pub struct Stashed {
    len: usize,
    data: [u8; FRAME_BUF],
}

/// Counters of the shared port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames kept for the stack while the bus waited.
    pub stashed: u64,
    /// Frames dropped because the stash was full.
    pub stash_dropped: u64,
    /// Frames dropped as longer than [`FRAME_BUF`].
    pub oversize_dropped: u64,
    /// Frames of the stack dropped because the MAC had no transmit descriptor.
    pub tx_dropped: u64,
    /// Control frames that arrived while no exchange was running (late responses).
    pub late_control: u64,
}

/// The port's buffers, in a static on the board (`N` = frames the stash holds).
pub struct CtrlBuffers<const N: usize> {
    stash: heapless::Deque<Stashed, N>,
    rx: [u8; FRAME_BUF],
    tx: [u8; FRAME_BUF],
}

impl<const N: usize> CtrlBuffers<N> {
    /// Empty buffers (const: for a `ConstStaticCell`).
    pub const fn new() -> Self {
        CtrlBuffers {
            stash: heapless::Deque::new(),
            rx: [0; FRAME_BUF],
            tx: [0; FRAME_BUF],
        }
    }
}

impl<const N: usize> Default for CtrlBuffers<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The MAC, the bus core and the stash; share it in a `RefCell` between
/// [`CtrlRegisterBus`] and [`CtrlDevice`].
pub struct CtrlPort<'a, D, const N: usize> {
    driver: D,
    core: CtrlCore,
    stash: &'a mut heapless::Deque<Stashed, N>,
    waker: Option<Waker>,
    progress: Option<fn()>,
    /// Counters.
    pub stats: PortStats,
}

fn now_us() -> u64 {
    embassy_time::Instant::now().as_micros()
}

/// Sends `frame` (padded to the minimum length) as soon as the MAC takes it, within
/// `timeout_us`.
fn send<D: Driver>(driver: &mut D, frame: &[u8], timeout_us: u64) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let start = now_us();
    let len = frame.len().max(MIN_FRAME);
    loop {
        if let Some(tx) = driver.transmit(&mut cx) {
            tx.consume(len, |out| {
                out[..frame.len()].copy_from_slice(frame);
                out[frame.len()..].fill(0);
            });
            return true;
        }
        if now_us().saturating_sub(start) >= timeout_us {
            return false;
        }
        core::hint::spin_loop();
    }
}

impl<'a, D: Driver, const N: usize> CtrlPort<'a, D, N> {
    /// The port over `driver`, with `core` and the stash of `buffers`; returns it and the
    /// device's two frame buffers (for [`CtrlDevice::new`]).
    pub fn new(
        driver: D,
        core: CtrlCore,
        buffers: &'a mut CtrlBuffers<N>,
    ) -> (Self, &'a mut [u8; FRAME_BUF], &'a mut [u8; FRAME_BUF]) {
        let CtrlBuffers { stash, rx, tx } = buffers;
        (
            CtrlPort {
                driver,
                core,
                stash,
                waker: None,
                progress: None,
                stats: PortStats::default(),
            },
            rx,
            tx,
        )
    }

    /// Calls `progress` every 128 requests (a long table write is progress for a
    /// watchdog).
    pub fn set_progress(&mut self, progress: fn()) {
        self.progress = Some(progress);
    }

    /// The bus core (counters, last error).
    pub fn core(&self) -> &CtrlCore {
        &self.core
    }

    /// The bus core, to change its MAC or take its error.
    pub fn core_mut(&mut self) -> &mut CtrlCore {
        &mut self.core
    }

    /// The MAC driver.
    pub fn driver_mut(&mut self) -> &mut D {
        &mut self.driver
    }

    /// Takes what the MAC has received: control frames to the core, others to the stash.
    fn pump(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..PUMP_FRAMES {
            let Some((rx, _)) = self.driver.receive(&mut cx) else {
                return;
            };
            let core = &mut self.core;
            let stash = &mut *self.stash;
            let stats = &mut self.stats;
            rx.consume(|f| {
                if CtrlCore::is_control(f) {
                    core.on_frame(f);
                } else if f.len() > FRAME_BUF {
                    stats.oversize_dropped += 1;
                } else if stash.is_full() {
                    stats.stash_dropped += 1;
                } else {
                    let mut s = Stashed {
                        len: f.len(),
                        data: [0; FRAME_BUF],
                    };
                    s.data[..f.len()].copy_from_slice(f);
                    let _ = stash.push_back(s);
                    stats.stashed += 1;
                }
            });
        }
    }

    /// Sends everything batched, one request at a time, each until its response or its
    /// failure.
    pub fn exchange(&mut self) {
        let timing = self.core.timing();
        while self.core.has_work() {
            if self.core.stats.requests.is_multiple_of(128)
                && let Some(progress) = self.progress
            {
                progress();
            }
            let Some(frame) = self.core.start(now_us()) else {
                break;
            };
            if !send(&mut self.driver, frame, timing.timeout_us) {
                self.core.abort(CtrlBusError::TransmitBlocked);
                continue;
            }
            self.core.sent(now_us());
            loop {
                self.pump();
                match self.core.poll(now_us()) {
                    Action::Idle | Action::Failed(_) => break,
                    Action::Wait => core::hint::spin_loop(),
                    Action::Resend => {
                        let sent = match self.core.frame() {
                            Some(frame) => send(&mut self.driver, frame, timing.timeout_us),
                            None => true,
                        };
                        if !sent {
                            self.core.abort(CtrlBusError::TransmitBlocked);
                            break;
                        }
                    }
                }
            }
        }
        // The stack's waker was replaced by the no-op one while waiting, and frames may
        // be stashed: let the stack poll.
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    fn push(&mut self, op: Op) {
        let opened = self.core.batched() == 0;
        if let Err(op) = self.core.push(op) {
            self.exchange();
            let _ = self.core.push(op);
        } else if opened && let Some(w) = &self.waker {
            // The stack flushes the tail of this batch at its next poll.
            w.wake_by_ref();
        }
    }
}

/// The register bus over control frames.
pub struct CtrlRegisterBus<'a, D, const N: usize> {
    port: &'a RefCell<CtrlPort<'a, D, N>>,
    /// Accesses refused because the port was busy (a bug if ever non-zero).
    pub conflicts: u32,
}

impl<'a, D: Driver, const N: usize> CtrlRegisterBus<'a, D, N> {
    /// The bus on `port`.
    pub fn new(port: &'a RefCell<CtrlPort<'a, D, N>>) -> Self {
        CtrlRegisterBus { port, conflicts: 0 }
    }

    /// The shared port (counters).
    pub fn port(&self) -> &'a RefCell<CtrlPort<'a, D, N>> {
        self.port
    }

    /// Reads `ID` and `VERSION` now (the boot probe): whether the FPGA answers with this
    /// register map, or why not.
    pub fn probe(&mut self) -> Result<(), CtrlBusError> {
        let id = self.read32(addr::ID);
        let version = self.read32(addr::VERSION);
        let Ok(mut port) = self.port.try_borrow_mut() else {
            return Err(CtrlBusError::TransmitBlocked);
        };
        if let Some(e) = port.core.take_error() {
            return Err(e);
        }
        if id != fulcrum_model::regmap::ID || version != fulcrum_model::regmap::VERSION {
            return Err(CtrlBusError::WrongFpga { id, version });
        }
        Ok(())
    }
}

impl<D: Driver, const N: usize> RegisterBus for CtrlRegisterBus<'_, D, N> {
    fn write32(&mut self, addr: u16, value: u32) {
        let Ok(mut port) = self.port.try_borrow_mut() else {
            self.conflicts = self.conflicts.wrapping_add(1);
            return;
        };
        port.push(Op::Write { addr, value });
        if addr == addr::CONTROL {
            // A commit ends a table update: send it now.
            port.exchange();
        }
    }

    fn read32(&mut self, addr: u16) -> u32 {
        let Ok(mut port) = self.port.try_borrow_mut() else {
            self.conflicts = self.conflicts.wrapping_add(1);
            return FAILED_READ;
        };
        port.push(Op::Read { addr, value: 0 });
        port.exchange();
        port.core.last_read()
    }
}

/// The network stack's view of the port: every frame but control frames.
pub struct CtrlDevice<'a, D, const N: usize> {
    port: &'a RefCell<CtrlPort<'a, D, N>>,
    rx: &'a mut [u8; FRAME_BUF],
    tx: &'a mut [u8; FRAME_BUF],
}

impl<'a, D: Driver, const N: usize> CtrlDevice<'a, D, N> {
    /// The device on `port`, with the buffers [`CtrlPort::new`] gave back.
    pub fn new(
        port: &'a RefCell<CtrlPort<'a, D, N>>,
        rx: &'a mut [u8; FRAME_BUF],
        tx: &'a mut [u8; FRAME_BUF],
    ) -> Self {
        CtrlDevice { port, rx, tx }
    }
}

/// Receive token of [`CtrlDevice`] (the frame, copied out of the MAC).
pub struct CtrlRx<'t>(&'t mut [u8]);

impl RxToken for CtrlRx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// Transmit token of [`CtrlDevice`].
pub struct CtrlTx<'t, 'a, D, const N: usize> {
    port: &'a RefCell<CtrlPort<'a, D, N>>,
    scratch: &'t mut [u8; FRAME_BUF],
}

impl<D: Driver, const N: usize> TxToken for CtrlTx<'_, '_, D, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut cx = Context::from_waker(Waker::noop());
        let len_ok = len <= FRAME_BUF;
        if let Ok(mut port) = self.port.try_borrow_mut() {
            let port = &mut *port;
            if len_ok && let Some(tx) = port.driver.transmit(&mut cx) {
                return tx.consume(len, f);
            }
            port.stats.tx_dropped += 1;
        }
        f(&mut self.scratch[..len.min(FRAME_BUF)])
    }
}

impl<'a, D: Driver, const N: usize> Driver for CtrlDevice<'a, D, N> {
    type RxToken<'t>
        = CtrlRx<'t>
    where
        Self: 't;
    type TxToken<'t>
        = CtrlTx<'t, 'a, D, N>
    where
        Self: 't;

    fn receive(&mut self, cx: &mut Context) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let Ok(mut guard) = self.port.try_borrow_mut() else {
            cx.waker().wake_by_ref();
            return None;
        };
        let port = &mut *guard;
        if !port.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            port.waker = Some(cx.waker().clone());
        }
        if port.core.has_work() {
            port.exchange();
        }
        let len = if let Some(s) = port.stash.pop_front() {
            self.rx[..s.len].copy_from_slice(&s.data[..s.len]);
            s.len
        } else {
            loop {
                let (rx, _) = port.driver.receive(cx)?;
                let core = &mut port.core;
                let stats = &mut port.stats;
                let buf = &mut *self.rx;
                let got = rx.consume(|f| {
                    if CtrlCore::is_control(f) {
                        stats.late_control += 1;
                        core.on_frame(f);
                        None
                    } else if f.len() > FRAME_BUF {
                        stats.oversize_dropped += 1;
                        None
                    } else {
                        buf[..f.len()].copy_from_slice(f);
                        Some(f.len())
                    }
                });
                if let Some(len) = got {
                    break len;
                }
            }
        };
        if !port.stash.is_empty() {
            cx.waker().wake_by_ref();
        }
        drop(guard);
        Some((
            CtrlRx(&mut self.rx[..len]),
            CtrlTx {
                port: self.port,
                scratch: &mut *self.tx,
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<Self::TxToken<'_>> {
        let Ok(mut guard) = self.port.try_borrow_mut() else {
            cx.waker().wake_by_ref();
            return None;
        };
        let port = &mut *guard;
        if !port.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            port.waker = Some(cx.waker().clone());
        }
        if port.core.has_work() {
            port.exchange();
        }
        // Only whether the MAC has a descriptor now; the token asks again when used.
        port.driver.transmit(cx)?;
        drop(guard);
        Some(CtrlTx {
            port: self.port,
            scratch: &mut *self.tx,
        })
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        match self.port.try_borrow_mut() {
            Ok(mut port) => port.driver.link_state(cx),
            Err(_) => {
                cx.waker().wake_by_ref();
                LinkState::Up
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self.port.try_borrow() {
            Ok(port) => port.driver.capabilities(),
            Err(_) => Capabilities::default(),
        }
    }

    fn hardware_address(&self) -> HardwareAddress {
        match self.port.try_borrow() {
            Ok(port) => port.driver.hardware_address(),
            Err(_) => HardwareAddress::Ethernet([0; 6]),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::vec::Vec;

    use fulcrum_model::ctrl_frame::Responder;
    use fulcrum_model::regmap::{self, RegisterBus, addr};

    use super::*;
    use crate::ctrl_bus::{FPGA_MAC, Timing};

    const MCU: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    /// The FPGA's side of the cable: the bridge on a register file, plus other traffic.
    #[derive(Default)]
    struct Wire {
        regs: std::collections::BTreeMap<u16, u32>,
        strobes: u32,
        bridge: Responder,
        to_mcu: VecDeque<Vec<u8>>,
        /// Control frames from the MCU to drop (lost on the way).
        lose_requests: u32,
        /// Responses to drop.
        lose_responses: u32,
        /// Frames that arrive at the MCU together with the next response.
        punts_with_next_response: Vec<Vec<u8>>,
        /// Frames the MCU's stack sent.
        from_stack: Vec<Vec<u8>>,
        dead: bool,
    }

    struct Regs<'w>(&'w mut std::collections::BTreeMap<u16, u32>, &'w mut u32);
    impl RegisterBus for Regs<'_> {
        fn write32(&mut self, a: u16, v: u32) {
            if a == addr::TABLE_WRITE {
                *self.1 += 1;
            }
            self.0.insert(a, v);
        }
        fn read32(&mut self, a: u16) -> u32 {
            match a {
                addr::ID => regmap::ID,
                addr::VERSION => regmap::VERSION,
                addr::TABLE_WRITE => *self.1,
                _ => self.0.get(&a).copied().unwrap_or(0),
            }
        }
    }

    impl Wire {
        fn deliver(&mut self, frame: Vec<u8>) {
            if !CtrlCore::is_control(&frame) {
                self.from_stack.push(frame);
                return;
            }
            if self.dead {
                return;
            }
            if self.lose_requests > 0 {
                self.lose_requests -= 1;
                return;
            }
            let mut out = [0u8; 300];
            let n = self
                .bridge
                .respond(
                    &frame,
                    &mut Regs(&mut self.regs, &mut self.strobes),
                    &mut out,
                )
                .unwrap();
            self.to_mcu.extend(self.punts_with_next_response.drain(..));
            if self.lose_responses > 0 {
                self.lose_responses -= 1;
                return;
            }
            self.to_mcu.push_back(out[..n].to_vec());
        }
    }

    #[derive(Clone)]
    struct Mac(Rc<RefCell<Wire>>);
    struct MacRx(Vec<u8>);
    struct MacTx(Rc<RefCell<Wire>>);
    impl RxToken for MacRx {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
            f(&mut self.0)
        }
    }
    impl TxToken for MacTx {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut b = std::vec![0u8; len];
            let r = f(&mut b);
            self.0.borrow_mut().deliver(b);
            r
        }
    }
    impl Driver for Mac {
        type RxToken<'a> = MacRx;
        type TxToken<'a> = MacTx;
        fn receive(&mut self, _: &mut Context) -> Option<(MacRx, MacTx)> {
            let f = self.0.borrow_mut().to_mcu.pop_front()?;
            Some((MacRx(f), MacTx(self.0.clone())))
        }
        fn transmit(&mut self, _: &mut Context) -> Option<MacTx> {
            Some(MacTx(self.0.clone()))
        }
        fn link_state(&mut self, _: &mut Context) -> LinkState {
            LinkState::Up
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        fn hardware_address(&self) -> HardwareAddress {
            HardwareAddress::Ethernet(MCU)
        }
    }

    type Port = CtrlPort<'static, Mac, 2>;

    fn setup() -> (
        Rc<RefCell<Wire>>,
        CtrlRegisterBus<'static, Mac, 2>,
        CtrlDevice<'static, Mac, 2>,
    ) {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let bufs = std::boxed::Box::leak(std::boxed::Box::new(CtrlBuffers::<2>::new()));
        let core = CtrlCore::new(
            FPGA_MAC,
            MCU,
            7,
            Timing {
                timeout_us: 2_000,
                attempts: 3,
            },
        );
        let (port, rx, tx) = Port::new(Mac(wire.clone()), core, bufs);
        let port: &'static RefCell<Port> =
            std::boxed::Box::leak(std::boxed::Box::new(RefCell::new(port)));
        (
            wire,
            CtrlRegisterBus::new(port),
            CtrlDevice::new(port, rx, tx),
        )
    }

    fn frame(ethertype: u16, tag: u8) -> Vec<u8> {
        let mut f = std::vec![0u8; 60];
        f[0..6].copy_from_slice(&MCU);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[14] = tag;
        f
    }

    fn received(dev: &mut CtrlDevice<'static, Mac, 2>) -> Vec<u8> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut tags = Vec::new();
        while let Some((rx, _)) = dev.receive(&mut cx) {
            rx.consume(|f| tags.push(f[14]));
        }
        tags
    }

    #[test]
    fn reads_and_writes_reach_the_register_file_and_other_frames_reach_the_stack_in_order() {
        let (wire, mut bus, mut dev) = setup();
        assert_eq!(bus.probe(), Ok(()));
        // frames for the stack arrive while the bus waits: kept, in order; the third
        // overflows the stash of 2 and is dropped (counted)
        wire.borrow_mut().punts_with_next_response =
            std::vec![frame(0x0800, 1), frame(0x0800, 2), frame(0x0806, 3)];
        bus.write32(addr::ADDRESS, 0x0A00_0001);
        assert_eq!(bus.read32(addr::ADDRESS), 0x0A00_0001);
        wire.borrow_mut().to_mcu.push_back(frame(0x0800, 4));
        assert_eq!(received(&mut dev), [1, 2, 4]);
        let stats = bus.port().borrow().stats;
        assert_eq!((stats.stashed, stats.stash_dropped), (2, 1));
        // the stack's own frames go out untouched
        let mut cx = Context::from_waker(Waker::noop());
        dev.transmit(&mut cx)
            .unwrap()
            .consume(60, |b| b.copy_from_slice(&frame(0x0800, 9)));
        assert_eq!(wire.borrow().from_stack.len(), 1);
        assert_eq!(wire.borrow().from_stack[0][14], 9);
    }

    #[test]
    fn a_batch_without_a_read_is_sent_at_the_stack_s_next_poll_or_a_commit() {
        let (wire, mut bus, mut dev) = setup();
        bus.probe().unwrap();
        for i in 0..5 {
            bus.write32(addr::TABLE_DATA + i, u32::from(i));
        }
        assert!(
            !wire.borrow().regs.contains_key(&addr::TABLE_DATA),
            "batched"
        );
        assert_eq!(received(&mut dev), []);
        assert_eq!(wire.borrow().regs.get(&(addr::TABLE_DATA + 4)), Some(&4));
        bus.write32(addr::TABLE_WRITE, 0);
        bus.write32(addr::CONTROL, 1);
        assert_eq!(
            wire.borrow().regs.get(&addr::CONTROL),
            Some(&1),
            "a commit goes at once"
        );
        // 33 writes: two requests
        let before = bus.port().borrow().core().stats.requests;
        for i in 0..33u32 {
            bus.write32(addr::SNAT_POOL, i);
        }
        bus.write32(addr::CONTROL, 1);
        assert_eq!(bus.port().borrow().core().stats.requests - before, 2);
        assert_eq!(wire.borrow().regs.get(&addr::SNAT_POOL), Some(&32));
    }

    #[test]
    fn lost_frames_are_retried_without_repeating_writes() {
        let (wire, mut bus, _dev) = setup();
        bus.probe().unwrap();
        wire.borrow_mut().lose_requests = 1;
        bus.write32(addr::TABLE_WRITE, 0);
        assert_eq!(bus.read32(addr::TABLE_WRITE), 1);
        wire.borrow_mut().lose_responses = 1;
        bus.write32(addr::TABLE_WRITE, 0);
        assert_eq!(bus.read32(addr::TABLE_WRITE), 2, "executed once");
        let port = bus.port().borrow();
        assert_eq!(port.core().stats.retransmissions, 2);
        assert_eq!(port.core().stats.failures, 0);
        assert_eq!(wire.borrow().bridge.retransmissions, 1);
    }

    #[test]
    fn a_dead_link_fails_reads_with_a_clear_error_and_recovers() {
        let (wire, mut bus, _dev) = setup();
        wire.borrow_mut().dead = true;
        let start = std::time::Instant::now();
        assert_eq!(bus.read32(addr::ADDRESS), crate::ctrl_bus::FAILED_READ);
        assert!(start.elapsed() >= std::time::Duration::from_millis(6));
        assert_eq!(
            bus.port().borrow_mut().core_mut().take_error(),
            Some(CtrlBusError::NoResponse {
                seq: 7,
                attempts: 3
            })
        );
        wire.borrow_mut().dead = false;
        bus.write32(addr::ADDRESS, 5);
        assert_eq!(bus.read32(addr::ADDRESS), 5);
        assert_eq!(bus.probe(), Ok(()));
    }
}
