//! Example filter: gives every request an `X-Request-Id` (kept if the client sent one)
//! made of the client's address and a per-filter counter, and tells the backend
//! which client it serves with `X-Client-Ip`.
//!
//! The counter lives in the module's memory, which persists between requests of the
//! same installed filter (it starts over when the filter is replaced).

#![no_std]

use core::sync::atomic::{AtomicU32, Ordering};

use fulcrum_filter_sdk::{Request, Verdict, export_filter};

static NEXT: AtomicU32 = AtomicU32::new(1);

/// Writes `n` in lowercase hex, 8 digits, into `out`.
fn hex8(n: u32, out: &mut [u8; 8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((n >> (28 - 4 * i)) & 0xf) as usize];
    }
}

fn on_request(req: &Request<'_>) -> Verdict {
    let mut verdict = Verdict::allow();
    if req.header("x-request-id").is_none() {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let (mut client, mut counter) = ([0u8; 8], [0u8; 8]);
        hex8(u32::from(req.client()), &mut client);
        hex8(n, &mut counter);
        let mut id = [b'-'; 17];
        id[..8].copy_from_slice(&client);
        id[9..].copy_from_slice(&counter);
        let _ = verdict.set_header("X-Request-Id", &id);
    }
    let ip = dotted_quad(req.client().octets());
    let _ = verdict.set_header("X-Client-Ip", ip.as_bytes());
    verdict
}

/// Dotted-quad text of an address, without `core::fmt` (keeps the module small).
fn dotted_quad(octets: [u8; 4]) -> IpText {
    let mut text = IpText::default();
    for (i, o) in octets.iter().enumerate() {
        if i > 0 {
            text.push(b'.');
        }
        let (h, t, u) = (o / 100, o / 10 % 10, o % 10);
        if h > 0 {
            text.push(b'0' + h);
        }
        if h > 0 || t > 0 {
            text.push(b'0' + t);
        }
        text.push(b'0' + u);
    }
    text
}

/// Up to 15 bytes of text.
#[derive(Default)]
struct IpText {
    bytes: [u8; 15],
    len: usize,
}

impl IpText {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

export_filter!(on_request);
