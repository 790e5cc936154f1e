//! A virtual IPv4 router between the clients' network and the appliance's network, so
//! clients reach VIPs the way they do in production: through a router whose MAC is the
//! one the appliance sends replies back to.
//!
//! Each side has an address (answered by ARP) and a prefix; frames addressed to the
//! router's MAC are forwarded by destination address (TTL decremented, checksum updated
//! incrementally), the next hop resolved by ARP (frames wait for the answer). Neighbours
//! are learned from ARP only.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::Ipv4Addr;
use std::task::Poll;

use crate::link::End;

/// One side of the router.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    /// The router's address on this side.
    pub address: Ipv4Addr,
    /// Prefix length of this side's network.
    pub prefix: u8,
}

impl Side {
    fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(a) & mask == u32::from(self.address) & mask
    }
}

/// A two-port router.
pub struct Router {
    ports: [(End, Side); 2],
    mac: [u8; 6],
    /// The side a destination outside both networks goes to (a default route).
    default_side: usize,
}

fn arp(op: u16, src_mac: [u8; 6], src_ip: Ipv4Addr, dst_mac: [u8; 6], dst_ip: Ipv4Addr) -> Vec<u8> {
    let eth_dst = if op == 1 { [0xff; 6] } else { dst_mac };
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&dst_ip.octets());
    f
}

impl Router {
    /// A router with `mac` between `a` and `b`; destinations outside both go to side
    /// `default_side`.
    pub fn new(mac: [u8; 6], a: (End, Side), b: (End, Side), default_side: usize) -> Self {
        Router {
            ports: [a, b],
            mac,
            default_side,
        }
    }

    /// Routes forever.
    pub async fn run(self) {
        let mut neighbors: [HashMap<Ipv4Addr, [u8; 6]>; 2] = [HashMap::new(), HashMap::new()];
        let mut pending: [Vec<(Ipv4Addr, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
        loop {
            let (side, frame) = poll_fn(|cx| {
                for (i, (end, _)) in self.ports.iter().enumerate() {
                    if let Poll::Ready(f) = end.poll_recv(cx) {
                        return Poll::Ready((i, f));
                    }
                }
                Poll::Pending
            })
            .await;
            if frame.len() < 34 {
                continue;
            }
            let ethertype = [frame[12], frame[13]];
            let (end, me) = &self.ports[side];
            if ethertype == [0x08, 0x06] && frame.len() >= 42 {
                let op = u16::from_be_bytes([frame[20], frame[21]]);
                let sender_mac: [u8; 6] = frame[22..28].try_into().unwrap_or([0; 6]);
                let sender_ip = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
                let target_ip = Ipv4Addr::new(frame[38], frame[39], frame[40], frame[41]);
                if me.contains(sender_ip) {
                    neighbors[side].insert(sender_ip, sender_mac);
                }
                if op == 1 && target_ip == me.address {
                    end.send(&arp(2, self.mac, me.address, sender_mac, sender_ip));
                }
                // Frames waiting for this neighbour go now.
                let ready: Vec<(Ipv4Addr, Vec<u8>)> = pending[side]
                    .iter()
                    .filter(|(ip, _)| neighbors[side].contains_key(ip))
                    .cloned()
                    .collect();
                pending[side].retain(|(ip, _)| !neighbors[side].contains_key(ip));
                for (ip, mut f) in ready {
                    f[0..6].copy_from_slice(&neighbors[side][&ip]);
                    end.send(&f);
                }
                continue;
            }
            if ethertype != [0x08, 0x00] || frame[0..6] != self.mac {
                continue;
            }
            // Neighbours are learned from ARP only, as routers do: a DSR backend's answers
            // carry the VIP as source, and learning from them would send the next
            // client packets straight to that backend, past the balancer.
            let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
            let out = if self.ports[1 - side].1.contains(dst) {
                1 - side
            } else if me.contains(dst) {
                continue; // not ours to route back the same way
            } else {
                self.default_side
            };
            if out == side || frame[22] <= 1 {
                continue;
            }
            let mut f = frame;
            // TTL - 1, checksum + 0x0100 (RFC 1624).
            f[22] -= 1;
            let sum = u16::from_be_bytes([f[24], f[25]]);
            let mut s = u32::from(sum) + 0x0100;
            s = (s & 0xffff) + (s >> 16);
            f[24..26].copy_from_slice(&(s as u16).to_be_bytes());
            f[6..12].copy_from_slice(&self.mac);
            let (out_end, out_side) = &self.ports[out];
            let next_hop = if out_side.contains(dst) {
                dst
            } else {
                // Default route: the appliance's network has no further router.
                dst
            };
            match neighbors[out].get(&next_hop) {
                Some(mac) => {
                    f[0..6].copy_from_slice(mac);
                    out_end.send(&f);
                }
                None => {
                    if pending[out].len() < 256 {
                        pending[out].push((next_hop, f));
                    }
                    out_end.send(&arp(1, self.mac, out_side.address, [0; 6], next_hop));
                }
            }
        }
    }
}
