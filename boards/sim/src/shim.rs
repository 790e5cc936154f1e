//! What a real backend of a DSR or tunnel service does in its kernel, for a virtual host:
//! it holds the VIP as a local address (the "VIP on loopback" of DSR), and decapsulates
//! IP-in-IP and GUE. smoltcp (under embassy-net) keeps one address per interface, so the
//! shim translates: a packet to a VIP reaches the stack addressed to the host's own
//! address, and the answers of that connection leave from the VIP again, checksums
//! updated incrementally.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};
use fulcrum_model::checksum::{update_bytes, update_udp_bytes};

/// Connections answered on behalf of a VIP: (protocol, peer address, peer port, local
/// port) → the VIP they were addressed to.
type Flows = Rc<RefCell<HashMap<(u8, Ipv4Addr, u16, u16), Ipv4Addr>>>;

/// A driver wrapper giving a host VIPs and tunnel decapsulation.
pub struct VipShim<D> {
    inner: D,
    tables: Rc<Tables>,
}

/// The shim's addresses and connections.
struct Tables {
    real: Ipv4Addr,
    vips: Vec<Ipv4Addr>,
    gue_ports: Vec<u16>,
    flows: Flows,
}

impl<D> VipShim<D> {
    /// Wraps `inner` for a host at `real` that also answers for `vips` and decapsulates
    /// IP-in-IP and GUE on `gue_ports`.
    pub fn new(inner: D, real: Ipv4Addr, vips: Vec<Ipv4Addr>, gue_ports: Vec<u16>) -> Self {
        VipShim {
            inner,
            tables: Rc::new(Tables {
                real,
                vips,
                gue_ports,
                flows: Rc::default(),
            }),
        }
    }
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Rewrites the IPv4 address at `offset` of the IP header starting at `l3` (12: source,
/// 16: destination), with the header and TCP/UDP checksums.
fn rewrite_address(frame: &mut [u8], l3: usize, offset: usize, new: Ipv4Addr) {
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    let old: [u8; 4] = frame[l3 + offset..l3 + offset + 4]
        .try_into()
        .unwrap_or([0; 4]);
    let new = new.octets();
    frame[l3 + offset..l3 + offset + 4].copy_from_slice(&new);
    let hc = u16::from_be_bytes([frame[l3 + 10], frame[l3 + 11]]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&update_bytes(hc, &old, &new).to_be_bytes());
    let l4 = l3 + ihl;
    match frame[l3 + 9] {
        6 if frame.len() >= l4 + 18 => {
            let c = u16::from_be_bytes([frame[l4 + 16], frame[l4 + 17]]);
            frame[l4 + 16..l4 + 18].copy_from_slice(&update_bytes(c, &old, &new).to_be_bytes());
        }
        17 if frame.len() >= l4 + 8 => {
            let c = u16::from_be_bytes([frame[l4 + 6], frame[l4 + 7]]);
            frame[l4 + 6..l4 + 8].copy_from_slice(&update_udp_bytes(c, &old, &new).to_be_bytes());
        }
        _ => {}
    }
}

fn ports(frame: &[u8], l3: usize) -> Option<(u16, u16)> {
    let l4 = l3 + usize::from(frame[l3] & 0x0f) * 4;
    if !matches!(frame[l3 + 9], 6 | 17) || frame.len() < l4 + 4 {
        return None;
    }
    Some((
        u16::from_be_bytes([frame[l4], frame[l4 + 1]]),
        u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]),
    ))
}

impl Tables {
    /// Decapsulates and translates a received frame in place; returns its new length.
    fn ingress(&self, frame: &mut [u8]) -> usize {
        let mut len = frame.len();
        if len < 34 || frame[12..14] != [0x08, 0x00] {
            return len;
        }
        // IP-in-IP: the inner packet follows the outer header. GUE (variant 1): it
        // follows the outer UDP header.
        let outer_ihl = usize::from(frame[14] & 0x0f) * 4;
        let inner_at = match frame[23] {
            4 => Some(14 + outer_ihl),
            17 if len >= 14 + outer_ihl + 8 => {
                let dport =
                    u16::from_be_bytes([frame[14 + outer_ihl + 2], frame[14 + outer_ihl + 3]]);
                self.gue_ports
                    .contains(&dport)
                    .then_some(14 + outer_ihl + 8)
            }
            _ => None,
        };
        if let Some(at) = inner_at
            && ip(&frame[30..34]) == self.real
            && at < len
        {
            frame.copy_within(at..len, 14);
            len -= at - 14;
        }
        let f = &mut frame[..len];
        let dst = ip(&f[30..34]);
        if self.vips.contains(&dst) {
            let src = ip(&f[26..30]);
            if let Some((sport, dport)) = ports(f, 14) {
                self.flows
                    .borrow_mut()
                    .insert((f[23], src, sport, dport), dst);
            }
            rewrite_address(f, 14, 16, self.real);
        }
        len
    }

    /// Translates an outgoing frame of a VIP connection back to the VIP.
    fn egress(&self, frame: &mut [u8]) {
        let (flows, real) = (&self.flows, self.real);
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || ip(&frame[26..30]) != real {
            return;
        }
        let Some((sport, dport)) = ports(frame, 14) else {
            return;
        };
        let key = (frame[23], ip(&frame[30..34]), dport, sport);
        if let Some(vip) = flows.borrow().get(&key).copied() {
            rewrite_address(frame, 14, 12, vip);
        }
    }
}

/// Receive token.
pub struct ShimRx<R> {
    inner: R,
    tables: Rc<Tables>,
}

/// Transmit token.
pub struct ShimTx<T> {
    inner: T,
    tables: Rc<Tables>,
}

impl<R: RxToken> RxToken for ShimRx<R> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, f: F) -> T {
        let tables = self.tables;
        self.inner.consume(|frame| {
            let len = tables.ingress(frame);
            f(&mut frame[..len])
        })
    }
}

impl<T: TxToken> TxToken for ShimTx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let tables = self.tables;
        self.inner.consume(len, |frame| {
            let r = f(frame);
            tables.egress(frame);
            r
        })
    }
}

impl<D: Driver> Driver for VipShim<D> {
    type RxToken<'a>
        = ShimRx<D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = ShimTx<D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(cx)?;
        Some((
            ShimRx {
                inner: rx,
                tables: self.tables.clone(),
            },
            ShimTx {
                inner: tx,
                tables: self.tables.clone(),
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<Self::TxToken<'_>> {
        let tables = self.tables.clone();
        self.inner
            .transmit(cx)
            .map(|inner| ShimTx { inner, tables })
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        self.inner.link_state(cx)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn hardware_address(&self) -> HardwareAddress {
        self.inner.hardware_address()
    }
}
