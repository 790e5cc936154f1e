//! In-memory Ethernet links: a pair of frame queues between two ends, and an embassy-net
//! driver over one end (so a firmware or virtual-host stack can sit on a link).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState};

/// Frames queued on one direction of a link before new ones are dropped (like a NIC ring).
pub const QUEUE_FRAMES: usize = 1024;
/// Largest frame (Ethernet header + 1500 + tunnel headroom).
pub const MAX_FRAME: usize = 1514 + 64;

#[derive(Default)]
struct Queue {
    frames: RefCell<VecDeque<Vec<u8>>>,
    waker: RefCell<Option<Waker>>,
    dropped: std::cell::Cell<u64>,
}

impl Queue {
    fn push(&self, frame: Vec<u8>) {
        let mut q = self.frames.borrow_mut();
        if q.len() >= QUEUE_FRAMES {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        q.push_back(frame);
        drop(q);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        if let Some(f) = self.frames.borrow_mut().pop_front() {
            return Poll::Ready(f);
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One end of a link.
#[derive(Clone)]
pub struct End {
    rx: Rc<Queue>,
    tx: Rc<Queue>,
}

/// A link: two ends, each receiving what the other sends.
pub fn link() -> (End, End) {
    let a = Rc::new(Queue::default());
    let b = Rc::new(Queue::default());
    (
        End {
            rx: a.clone(),
            tx: b.clone(),
        },
        End { rx: b, tx: a },
    )
}

impl End {
    /// Sends a frame to the other end (dropped if its queue is full).
    pub fn send(&self, frame: &[u8]) {
        self.tx.push(frame.to_vec());
    }

    /// Receives the next frame.
    pub async fn recv(&self) -> Vec<u8> {
        poll_fn(|cx| self.rx.poll_pop(cx)).await
    }

    /// Polls for the next frame.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        self.rx.poll_pop(cx)
    }

    /// Frames dropped because this end's receive queue was full.
    pub fn rx_dropped(&self) -> u64 {
        self.rx.dropped.get()
    }
}

/// An embassy-net driver on one end of a link.
pub struct LinkDriver {
    end: End,
    mac: [u8; 6],
}

impl LinkDriver {
    /// A driver with hardware address `mac`.
    pub fn new(end: End, mac: [u8; 6]) -> Self {
        LinkDriver { end, mac }
    }
}

/// Receive token.
pub struct Rx(Vec<u8>);
/// Transmit token.
pub struct Tx<'a>(&'a End);

impl embassy_net_driver::RxToken for Rx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl embassy_net_driver::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.tx.push(buf);
        r
    }
}

impl Driver for LinkDriver {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(Rx, Tx<'_>)> {
        match self.end.rx.poll_pop(cx) {
            Poll::Ready(f) => Some((Rx(f), Tx(&self.end))),
            Poll::Pending => None,
        }
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<Tx<'_>> {
        Some(Tx(&self.end))
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.max_transmission_unit = 1514;
        c
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}
