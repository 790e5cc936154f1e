//! The request encoding (host to filter): [`encode`] on the host, the zero-copy
//! [`Request`] view in the filter. Layout: see the crate documentation.
//!
//! [`Request::parse`] checks the whole buffer once (every length, UTF-8 where text is
//! promised, nothing trailing); after it succeeds no accessor can fail or panic.

use core::net::Ipv4Addr;

/// What the host hands a filter: the parsed request line and headers of one HTTP/1.x
/// request, a prefix of its body, and the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterRequest<'a> {
    /// The client's address.
    pub client: Ipv4Addr,
    /// The method (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The request target as received (path and query).
    pub path: &'a str,
    /// `x` of `HTTP/1.x`.
    pub minor_version: u8,
    /// Headers in request order: name as received, raw value.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The start of the body (may be empty); cut further if it does not fit the filter's
    /// input buffer.
    pub body_prefix: &'a [u8],
}

/// Flag bit: the host cut the body prefix to fit the filter's input buffer.
pub const FLAG_BODY_CUT: u8 = 1;

const FIXED_LEN: usize = 8;

/// Why a request could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The request line and headers alone do not fit the buffer, or a field is longer
    /// than its length prefix can say (65535 bytes, 65535 headers).
    TooLarge,
    /// A header name is not ASCII (HTTP tokens are; the ABI promises filters ASCII).
    NonAsciiHeaderName,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::TooLarge => {
                f.write_str("the request's line and headers do not fit the filter's input buffer")
            }
            EncodeError::NonAsciiHeaderName => f.write_str("a header name is not ASCII"),
        }
    }
}

/// Bytes the request takes without its body prefix.
pub fn encoded_len_without_body(req: &FilterRequest<'_>) -> usize {
    FIXED_LEN
        + 2
        + req.method.len()
        + 2
        + req.path.len()
        + req
            .headers
            .iter()
            .map(|(n, v)| 4 + n.len() + v.len())
            .sum::<usize>()
        + 4
}

/// Encodes `req` into `buf`; the body prefix is cut to what fits (and the cut flagged).
/// Returns the encoded length.
pub fn encode(req: &FilterRequest<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let fixed = encoded_len_without_body(req);
    if fixed > buf.len()
        || req.headers.len() > usize::from(u16::MAX)
        || req.method.len() > usize::from(u16::MAX)
        || req.path.len() > usize::from(u16::MAX)
        || req
            .headers
            .iter()
            .any(|(n, v)| n.len() > usize::from(u16::MAX) || v.len() > usize::from(u16::MAX))
    {
        return Err(EncodeError::TooLarge);
    }
    if req.headers.iter().any(|(n, _)| !n.is_ascii()) {
        return Err(EncodeError::NonAsciiHeaderName);
    }
    let body_len = req
        .body_prefix
        .len()
        .min(buf.len() - fixed)
        .min(u32::MAX as usize);
    let cut = body_len < req.body_prefix.len();
    let mut w = Writer { buf, at: 0 };
    w.put(&req.client.octets());
    w.put(&[req.minor_version, if cut { FLAG_BODY_CUT } else { 0 }]);
    w.put(&(req.headers.len() as u16).to_le_bytes());
    w.put_short(req.method.as_bytes());
    w.put_short(req.path.as_bytes());
    for (name, value) in req.headers {
        w.put_short(name.as_bytes());
        w.put_short(value);
    }
    w.put(&(body_len as u32).to_le_bytes());
    w.put(&req.body_prefix[..body_len]);
    Ok(w.at)
}

/// A writer over a buffer already checked to be large enough.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }

    fn put_short(&mut self, bytes: &[u8]) {
        self.put(&(bytes.len() as u16).to_le_bytes());
        self.put(bytes);
    }
}

/// Why an input did not decode as a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A field runs past the end of the input.
    Truncated,
    /// The method or path is not UTF-8.
    NotUtf8,
    /// A header name is not ASCII.
    NotAscii,
    /// Bytes follow the body prefix, or reserved flag bits are set.
    Malformed,
}

/// A reader that never panics: every step checks the length.
#[derive(Clone)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn short(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn text(&mut self) -> Result<&'a str, DecodeError> {
        core::str::from_utf8(self.short()?).map_err(|_| DecodeError::NotUtf8)
    }
}

/// A decoded request: a view over the input buffer.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    client: Ipv4Addr,
    minor_version: u8,
    flags: u8,
    method: &'a str,
    path: &'a str,
    header_count: u16,
    header_bytes: &'a [u8],
    body_prefix: &'a [u8],
}

impl<'a> Request<'a> {
    /// Checks and decodes `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Request<'a>, DecodeError> {
        let mut r = Reader { rest: bytes };
        let fixed = r.take(FIXED_LEN)?;
        let client = Ipv4Addr::new(fixed[0], fixed[1], fixed[2], fixed[3]);
        let (minor_version, flags) = (fixed[4], fixed[5]);
        if flags & !FLAG_BODY_CUT != 0 {
            return Err(DecodeError::Malformed);
        }
        let header_count = u16::from_le_bytes([fixed[6], fixed[7]]);
        let method = r.text()?;
        let path = r.text()?;
        let start = r.rest;
        for _ in 0..header_count {
            // Names are ASCII (HTTP tokens): checked here with a plain loop, turned into
            // `&str` only when a caller asks; `core::str::from_utf8` per field costs
            // several hundred fuel in an interpreted filter.
            if !r.short()?.is_ascii() {
                return Err(DecodeError::NotAscii);
            }
            r.short()?;
        }
        let header_bytes = &start[..start.len() - r.rest.len()];
        let body_len = r.u32()?;
        let body_prefix = r.take(body_len as usize)?;
        if !r.rest.is_empty() {
            return Err(DecodeError::Malformed);
        }
        Ok(Request {
            client,
            minor_version,
            flags,
            method,
            path,
            header_count,
            header_bytes,
            body_prefix,
        })
    }

    /// The client's address.
    pub fn client(&self) -> Ipv4Addr {
        self.client
    }

    /// The method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target (path and query).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// `x` of `HTTP/1.x`.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// Whether the host cut the body prefix to fit the input buffer.
    pub fn body_cut(&self) -> bool {
        self.flags & FLAG_BODY_CUT != 0
    }

    /// The body prefix.
    pub fn body_prefix(&self) -> &'a [u8] {
        self.body_prefix
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        usize::from(self.header_count)
    }

    /// The headers, in request order.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            reader: Reader {
                rest: self.header_bytes,
            },
            left: self.header_count,
        }
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.raw_headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The headers with their names as bytes (cheaper than [`Request::headers`] in a
    /// filter: no `&str` is built).
    pub fn raw_headers(&self) -> RawHeaders<'a> {
        RawHeaders {
            reader: Reader {
                rest: self.header_bytes,
            },
            left: self.header_count,
        }
    }
}

/// The headers of a [`Request`]: `(name, value)`.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    reader: Reader<'a>,
    left: u16,
}

impl core::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} bytes", self.rest.len())
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked by `Request::parse` (lengths, ASCII names): these cannot fail.
        let name = self.reader.text().ok()?;
        let value = self.reader.short().ok()?;
        Some((name, value))
    }
}

/// The headers of a [`Request`] with names as bytes: `(name, value)`.
#[derive(Debug, Clone)]
pub struct RawHeaders<'a> {
    reader: Reader<'a>,
    left: u16,
}

impl<'a> Iterator for RawHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = self.reader.short().ok()?;
        let value = self.reader.short().ok()?;
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> FilterRequest<'a> {
        FilterRequest {
            client: Ipv4Addr::new(192, 0, 2, 7),
            method: "GET",
            path: "/index.html?q=1",
            minor_version: 1,
            headers,
            body_prefix: body,
        }
    }

    #[test]
    fn round_trip() {
        let headers: [(&str, &[u8]); 2] = [("Host", b"example.com"), ("User-Agent", b"curl/8")];
        let req = sample(&headers, b"hello");
        let mut buf = [0u8; 256];
        let n = encode(&req, &mut buf).unwrap();
        assert_eq!(n, encoded_len_without_body(&req) + 5);
        let view = Request::parse(&buf[..n]).unwrap();
        assert_eq!(view.client(), req.client);
        assert_eq!(view.method(), "GET");
        assert_eq!(view.path(), "/index.html?q=1");
        assert_eq!(view.minor_version(), 1);
        assert_eq!(view.header_count(), 2);
        let got: [(&str, &[u8]); 2] = {
            let mut it = view.headers();
            [it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(got, headers);
        assert_eq!(view.header("user-agent"), Some(&b"curl/8"[..]));
        assert_eq!(view.header("cookie"), None);
        assert_eq!(
            view.raw_headers().nth(1),
            Some((&b"User-Agent"[..], &b"curl/8"[..]))
        );
        assert_eq!(view.body_prefix(), b"hello");
        assert!(!view.body_cut());
    }

    #[test]
    fn exact_bytes() {
        let headers: [(&str, &[u8]); 1] = [("A", b"b")];
        let req = sample(&headers, b"");
        let req = FilterRequest { path: "/", ..req };
        let mut buf = [0u8; 64];
        let n = encode(&req, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &[
                192, 0, 2, 7, 1, 0, 1, 0, // client, version, flags, one header
                3, 0, b'G', b'E', b'T', 1, 0, b'/', // method, path
                1, 0, b'A', 1, 0, b'b', // header
                0, 0, 0, 0, // no body
            ]
        );
    }

    #[test]
    fn body_is_cut_to_fit_and_flagged() {
        let req = sample(&[], &[7u8; 100]);
        let fixed = encoded_len_without_body(&req);
        let mut buf = [0u8; 128];
        let n = encode(&req, &mut buf[..fixed + 10]).unwrap();
        let view = Request::parse(&buf[..n]).unwrap();
        assert_eq!(view.body_prefix(), &[7u8; 10]);
        assert!(view.body_cut());
        assert_eq!(
            encode(&req, &mut buf[..fixed - 1]),
            Err(EncodeError::TooLarge)
        );
    }

    #[test]
    fn malformed_inputs_are_refused() {
        let headers: [(&str, &[u8]); 1] = [("Host", b"x")];
        let req = sample(&headers, b"body");
        let mut buf = [0u8; 128];
        let n = encode(&req, &mut buf).unwrap();
        for cut in 0..n {
            assert_eq!(
                Request::parse(&buf[..cut]).err(),
                Some(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        assert_eq!(
            Request::parse(&buf[..n + 1]).err(),
            Some(DecodeError::Malformed)
        );
        let mut flags = buf;
        flags[5] = 2;
        assert_eq!(
            Request::parse(&flags[..n]).err(),
            Some(DecodeError::Malformed)
        );
        let mut utf = buf;
        utf[10] = 0xff; // first byte of the method
        assert_eq!(Request::parse(&utf[..n]).err(), Some(DecodeError::NotUtf8));
        let mut name = buf;
        name[10 + 3 + 2 + 15 + 2] = 0xc3; // first byte of the header name
        assert_eq!(
            Request::parse(&name[..n]).err(),
            Some(DecodeError::NotAscii)
        );
        let headers: [(&str, &[u8]); 1] = [("Hôst", b"x")];
        assert_eq!(
            encode(&sample(&headers, b""), &mut buf),
            Err(EncodeError::NonAsciiHeaderName)
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(view) = Request::parse(&bytes) {
                // Every header the count promises is there.
                proptest::prop_assert_eq!(view.headers().count(), view.header_count());
            }
        }
    }
}
