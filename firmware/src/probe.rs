//! What a health check says on the wire and how its answer is judged, without I/O.
//!
//! A probe connects (TCP), sends [`request`] and feeds every received chunk to a
//! [`Judge`] until it passes or fails; the connection's end goes to [`Judge::eof`]. The
//! runner (embassy-net on the board and on Linux) only moves bytes and keeps time.

use core::net::Ipv4Addr;

use fulcrum_mgmt::message::CheckFailure;
use fulcrum_model::config::{CheckKind, HealthCheck, MAX_HTTP_TEXT};
use heapless::String;

/// Longest response head an HTTP check reads (status line and headers).
pub const MAX_HEAD: usize = 1024;
/// Most body bytes an HTTP check scans for the expected text.
pub const MAX_BODY_SCAN: usize = 16 * 1024;

/// The protocol-level part of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// A TCP handshake only.
    Tcp,
    /// An HTTP/1.1 GET.
    Http {
        /// Request path.
        path: String<MAX_HTTP_TEXT>,
        /// Expected status.
        expect_status: u16,
        /// Text the body must contain.
        expect_body: Option<String<MAX_HTTP_TEXT>>,
    },
    /// Redis `PING`.
    Redis,
    /// Memcached `version`.
    Memcached,
}

impl ProbeKind {
    /// The probe of a service's health-check settings (`None` for `kind = "none"`).
    pub fn of(check: &HealthCheck) -> Option<ProbeKind> {
        Some(match check.kind {
            CheckKind::None => return None,
            CheckKind::Tcp => ProbeKind::Tcp,
            CheckKind::Http => ProbeKind::Http {
                path: check.path.clone(),
                expect_status: check.expect_status,
                expect_body: check.expect_body.clone(),
            },
            CheckKind::Redis => ProbeKind::Redis,
            CheckKind::Memcached => ProbeKind::Memcached,
        })
    }
}

/// Writes the bytes sent after the handshake into `out`; returns their length (0 for a
/// TCP check). `out` must hold 256 bytes.
pub fn request(kind: &ProbeKind, host: Ipv4Addr, port: u16, out: &mut [u8]) -> usize {
    let mut w = Writer { out, len: 0 };
    match kind {
        ProbeKind::Tcp => {}
        ProbeKind::Http { path, .. } => {
            use core::fmt::Write;
            let _ = write!(
                w,
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: fulcrum-health/1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            );
        }
        ProbeKind::Redis => w.put(b"PING\r\n"),
        ProbeKind::Memcached => w.put(b"version\r\n"),
    }
    w.len
}

struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.out.len() - self.len);
        self.out[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }
}

impl core::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

/// The judge's verdict so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep reading.
    NeedMore,
    /// The check passed.
    Pass,
    /// The check failed.
    Fail(CheckFailure),
}

/// Judges a response as it arrives.
#[derive(Debug)]
pub struct Judge<'k> {
    kind: &'k ProbeKind,
    head: [u8; MAX_HEAD],
    head_len: usize,
    /// HTTP body: bytes scanned, remaining by Content-Length, and the tail kept to find the
    /// expected text across chunk boundaries.
    body_seen: usize,
    body_left: Option<usize>,
    in_body: bool,
    tail: [u8; MAX_HTTP_TEXT],
    tail_len: usize,
}

impl<'k> Judge<'k> {
    /// A judge for one probe of `kind`.
    pub fn new(kind: &'k ProbeKind) -> Self {
        Judge {
            kind,
            head: [0; MAX_HEAD],
            head_len: 0,
            body_seen: 0,
            body_left: None,
            in_body: false,
            tail: [0; MAX_HTTP_TEXT],
            tail_len: 0,
        }
    }

    /// Feeds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Verdict {
        match self.kind {
            ProbeKind::Tcp => Verdict::Pass,
            ProbeKind::Redis => self.line(bytes, |line| {
                if line == b"+PONG" {
                    Verdict::Pass
                } else {
                    Verdict::Fail(CheckFailure::BadResponse)
                }
            }),
            ProbeKind::Memcached => self.line(bytes, |line| {
                if line.starts_with(b"VERSION ") {
                    Verdict::Pass
                } else {
                    Verdict::Fail(CheckFailure::BadResponse)
                }
            }),
            ProbeKind::Http {
                expect_status,
                expect_body,
                ..
            } => {
                let (expect_status, expect_body) = (*expect_status, expect_body.as_ref());
                if self.in_body {
                    return self.body(bytes, expect_body);
                }
                let room = MAX_HEAD - self.head_len;
                let n = bytes.len().min(room);
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.head[..self.head_len]) {
                    Ok(httparse::Status::Partial) => {
                        if self.head_len == MAX_HEAD {
                            Verdict::Fail(CheckFailure::BadResponse)
                        } else {
                            Verdict::NeedMore
                        }
                    }
                    Err(_) => Verdict::Fail(CheckFailure::BadResponse),
                    Ok(httparse::Status::Complete(head_len)) => {
                        let status = response.code.unwrap_or(0);
                        if status != expect_status {
                            return Verdict::Fail(CheckFailure::WrongStatus(status));
                        }
                        let Some(expect) = expect_body else {
                            return Verdict::Pass;
                        };
                        self.body_left = response
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .and_then(|h| core::str::from_utf8(h.value).ok())
                            .and_then(|v| v.trim().parse().ok());
                        self.in_body = true;
                        // Body bytes that came with the head: those in the head buffer
                        // past `head_len`, then whatever of `bytes` did not fit it.
                        let mut early = [0u8; MAX_HEAD];
                        let early_len = self.head_len - head_len;
                        early[..early_len].copy_from_slice(&self.head[head_len..self.head_len]);
                        let v = self.body(&early[..early_len], Some(expect));
                        if v != Verdict::NeedMore {
                            return v;
                        }
                        self.body(&bytes[n..], Some(expect))
                    }
                }
            }
        }
    }

    /// The connection ended (peer closed); the final verdict.
    pub fn eof(&mut self) -> Verdict {
        match self.kind {
            ProbeKind::Tcp => Verdict::Pass,
            ProbeKind::Http { .. } if self.in_body => Verdict::Fail(CheckFailure::BodyMismatch),
            _ => Verdict::Fail(CheckFailure::Closed),
        }
    }

    fn line(&mut self, bytes: &[u8], judge: impl Fn(&[u8]) -> Verdict) -> Verdict {
        for &b in bytes {
            if b == b'\n' {
                let line = &self.head[..self.head_len];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return judge(line);
            }
            if self.head_len == 128 {
                return Verdict::Fail(CheckFailure::BadResponse);
            }
            self.head[self.head_len] = b;
            self.head_len += 1;
        }
        Verdict::NeedMore
    }

    fn body(&mut self, bytes: &[u8], expect: Option<&String<MAX_HTTP_TEXT>>) -> Verdict {
        let Some(expect) = expect else {
            return Verdict::Pass;
        };
        let needle = expect.as_bytes();
        if needle.is_empty() {
            return Verdict::Pass;
        }
        let bytes = match self.body_left {
            Some(left) => &bytes[..bytes.len().min(left)],
            None => bytes,
        };
        // Scan the kept tail joined with the new bytes, a window at a time.
        for &b in bytes {
            if self.tail_len == needle.len() {
                self.tail.copy_within(1..self.tail_len, 0);
                self.tail_len -= 1;
            }
            self.tail[self.tail_len] = b;
            self.tail_len += 1;
            if &self.tail[..self.tail_len] == needle {
                return Verdict::Pass;
            }
        }
        self.body_seen += bytes.len();
        if let Some(left) = self.body_left.as_mut() {
            *left -= bytes.len();
            if *left == 0 {
                return Verdict::Fail(CheckFailure::BodyMismatch);
            }
        }
        if self.body_seen >= MAX_BODY_SCAN {
            return Verdict::Fail(CheckFailure::BodyMismatch);
        }
        Verdict::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: Option<&str>) -> ProbeKind {
        ProbeKind::Http {
            path: String::try_from("/healthz").unwrap(),
            expect_status: status,
            expect_body: body.map(|b| String::try_from(b).unwrap()),
        }
    }

    fn judge_chunks(kind: &ProbeKind, response: &[u8], chunk: usize) -> Verdict {
        let mut j = Judge::new(kind);
        for c in response.chunks(chunk) {
            let v = j.feed(c);
            if v != Verdict::NeedMore {
                return v;
            }
        }
        j.eof()
    }

    #[test]
    fn http_request_is_well_formed() {
        let mut out = [0u8; 256];
        let n = request(
            &http(200, None),
            Ipv4Addr::new(10, 0, 1, 11),
            8080,
            &mut out,
        );
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        assert_eq!(req.parse(&out[..n]), Ok(httparse::Status::Complete(n)));
        assert_eq!(req.path, Some("/healthz"));
        assert_eq!(req.headers[0].value, b"10.0.1.11:8080");
    }

    #[test]
    fn http_status_and_body_in_any_chunking() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nstatus: healthy\n";
        let down = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        let other = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstarting\n";
        for chunk in [1, 3, 17, 1000] {
            assert_eq!(judge_chunks(&http(200, None), ok, chunk), Verdict::Pass);
            assert_eq!(
                judge_chunks(&http(200, Some("healthy")), ok, chunk),
                Verdict::Pass
            );
            assert_eq!(
                judge_chunks(&http(200, Some("healthy")), other, chunk),
                Verdict::Fail(CheckFailure::BodyMismatch)
            );
            assert_eq!(
                judge_chunks(&http(200, None), down, chunk),
                Verdict::Fail(CheckFailure::WrongStatus(503))
            );
        }
        // Without Content-Length the body ends at EOF.
        let close = b"HTTP/1.1 200 OK\r\n\r\nall good, healthy";
        assert_eq!(
            judge_chunks(&http(200, Some("healthy")), close, 5),
            Verdict::Pass
        );
        assert_eq!(
            judge_chunks(&http(200, Some("ready")), close, 5),
            Verdict::Fail(CheckFailure::BodyMismatch)
        );
        // Garbage and an endless head fail, never panic.
        assert_eq!(
            judge_chunks(&http(200, None), b"SSH-2.0-OpenSSH\r\n\r\n", 4),
            Verdict::Fail(CheckFailure::BadResponse)
        );
        let endless = [b'a'; 3000];
        let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long_head.extend_from_slice(&endless);
        assert_eq!(
            judge_chunks(&http(200, None), &long_head, 100),
            Verdict::Fail(CheckFailure::BadResponse)
        );
        assert_eq!(
            judge_chunks(&http(200, None), b"HTTP/1.1 20", 4),
            Verdict::Fail(CheckFailure::Closed)
        );
    }

    #[test]
    fn redis_and_memcached() {
        assert_eq!(
            judge_chunks(&ProbeKind::Redis, b"+PONG\r\n", 1),
            Verdict::Pass
        );
        assert_eq!(
            judge_chunks(
                &ProbeKind::Redis,
                b"-NOAUTH Authentication required.\r\n",
                4
            ),
            Verdict::Fail(CheckFailure::BadResponse)
        );
        assert_eq!(
            judge_chunks(&ProbeKind::Memcached, b"VERSION 1.6.18\r\n", 2),
            Verdict::Pass
        );
        assert_eq!(
            judge_chunks(&ProbeKind::Memcached, b"ERROR\r\n", 2),
            Verdict::Fail(CheckFailure::BadResponse)
        );
        assert_eq!(
            judge_chunks(&ProbeKind::Redis, b"+PO", 2),
            Verdict::Fail(CheckFailure::Closed)
        );
        let mut out = [0u8; 256];
        let n = request(&ProbeKind::Redis, Ipv4Addr::LOCALHOST, 6379, &mut out);
        assert_eq!(&out[..n], b"PING\r\n");
    }
}
