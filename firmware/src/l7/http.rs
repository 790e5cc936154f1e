//! HTTP/1.1 message framing for the L7 proxy: request heads (httparse) with the checks a
//! proxy in front of other servers needs, the chunked-body validator, and response heads.
//!
//! The proxy never forwards the bytes of a head as received: it forwards the head it
//! parsed, re-serialized with CRLF line ends and hop-by-hop headers dropped, so the
//! backend can only see what the proxy understood. Bodies are forwarded as received,
//! framed by the one length the proxy accepted (`Content-Length`, or `chunked` checked
//! chunk by chunk).
//!
//! A request is refused (and the connection closed after the answer) when its framing is
//! ambiguous — the request-smuggling shapes of RFC 9112 §6.3 and §11.2:
//!
//! | shape | answer | reason |
//! |---|---|---|
//! | both `Content-Length` and `Transfer-Encoding` | 400 | `cl_and_te` |
//! | two `Content-Length`s (even equal), or one that is not digits | 400 | `bad_content_length` |
//! | `Transfer-Encoding` other than exactly `chunked`, or twice, or on HTTP/1.0 | 400 / 501 | `bad_transfer_encoding` |
//! | a folded header line (obs-fold) | 400 | `obs_fold` |
//! | a bad chunk size line, or a chunk not followed by CRLF | 400 | `bad_chunk` |
//! | no `Host` on HTTP/1.1, or two | 400 | `bad_host` |
//! | a head over the buffer, or more than [`MAX_HEADERS`] headers | 431 | `head_too_large` |
//! | a request target over [`MAX_TARGET`] | 414 | `target_too_long` |
//! | anything httparse refuses | 400 | `bad_request` |

use heapless::Vec;

/// Most headers a request or response head may have.
pub const MAX_HEADERS: usize = 48;
/// Longest request target.
pub const MAX_TARGET: usize = 1024;

/// Why a request was refused, as counted and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reject {
    /// httparse refused the head.
    BadRequest,
    /// Both `Content-Length` and `Transfer-Encoding`.
    ClAndTe,
    /// More than one `Content-Length`, or one that is not a decimal number.
    BadContentLength,
    /// A `Transfer-Encoding` other than exactly `chunked` (once, on HTTP/1.1).
    BadTransferEncoding,
    /// A folded header line.
    ObsFold,
    /// A malformed chunked body.
    BadChunk,
    /// No `Host` on HTTP/1.1, or more than one.
    BadHost,
    /// The head does not fit the buffer, or has too many headers.
    HeadTooLarge,
    /// The request target is too long.
    TargetTooLong,
    /// The path does not normalize (malformed escape, dot segments above the root).
    BadPath,
    /// A method the proxy does not forward (`CONNECT`), or an `Upgrade` request.
    NotImplemented,
}

impl Reject {
    /// The status answered.
    pub const fn status(self) -> u16 {
        match self {
            Reject::HeadTooLarge => 431,
            Reject::TargetTooLong => 414,
            Reject::NotImplemented => 501,
            Reject::BadTransferEncoding => 501,
            _ => 400,
        }
    }

    /// The name used in counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::BadRequest => "bad_request",
            Reject::ClAndTe => "cl_and_te",
            Reject::BadContentLength => "bad_content_length",
            Reject::BadTransferEncoding => "bad_transfer_encoding",
            Reject::ObsFold => "obs_fold",
            Reject::BadChunk => "bad_chunk",
            Reject::BadHost => "bad_host",
            Reject::HeadTooLarge => "head_too_large",
            Reject::TargetTooLong => "target_too_long",
            Reject::BadPath => "bad_path",
            Reject::NotImplemented => "not_implemented",
        }
    }

    /// Every reason, in counter order.
    pub const ALL: [Reject; 11] = [
        Reject::BadRequest,
        Reject::ClAndTe,
        Reject::BadContentLength,
        Reject::BadTransferEncoding,
        Reject::ObsFold,
        Reject::BadChunk,
        Reject::BadHost,
        Reject::HeadTooLarge,
        Reject::TargetTooLong,
        Reject::BadPath,
        Reject::NotImplemented,
    ];
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// A parsed request head: offsets into the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Length of the head, including the blank line.
    pub len: usize,
    /// HTTP/1.`minor`.
    pub minor: u8,
    /// Method (range into the buffer).
    pub method: (usize, usize),
    /// Request target.
    pub target: (usize, usize),
    /// Headers: (name range, value range).
    pub headers: Vec<((usize, usize), (usize, usize)), MAX_HEADERS>,
    /// How the body is delimited.
    pub body: Body,
    /// Whether the client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// The host (from an absolute-form target, else `Host`), without port.
    pub host: Option<(usize, usize)>,
    /// Whether the client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

fn range(buf: &[u8], part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    (start, start + part.len())
}

/// `buf[r.0..r.1]`.
pub fn slice(buf: &[u8], r: (usize, usize)) -> &[u8] {
    buf.get(r.0..r.1).unwrap_or(&[])
}

/// Whether the head in `buf` (up to its end, if found) folds a header line.
fn has_obs_fold(buf: &[u8]) -> bool {
    // A line after the request line that starts with SP or HT, before the blank line.
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let next = i + nl + 1;
        match buf.get(next) {
            Some(b' ' | b'\t') => return true,
            Some(b'\r' | b'\n') | None => return false,
            _ => {}
        }
        i = next;
    }
    false
}

/// Whether a header is hop-by-hop (not forwarded).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn lists_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a decimal `Content-Length`.
fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The host part of a `Host` value or authority (`[v6]:port`, `name:port`, `name`).
fn host_of(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        return authority
            .iter()
            .position(|&b| b == b']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .iter()
        .position(|&b| b == b':')
        .map_or(authority, |colon| &authority[..colon])
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete (read more, unless
/// `buf` is full: then the head is too large — the caller passes `full`).
pub fn parse_request(buf: &[u8], full: bool) -> Result<Option<RequestHead>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadTooLarge),
        Err(_) => {
            return Err(if has_obs_fold(buf) {
                Reject::ObsFold
            } else {
                Reject::BadRequest
            });
        }
    };
    let len = match status {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => {
            if has_obs_fold(buf) {
                return Err(Reject::ObsFold);
            }
            if full {
                return Err(if memchr_first_line(buf) > MAX_TARGET {
                    Reject::TargetTooLong
                } else {
                    Reject::HeadTooLarge
                });
            }
            return Ok(None);
        }
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Reject::BadRequest);
    };
    if path.len() > MAX_TARGET {
        return Err(Reject::TargetTooLong);
    }
    if method == "CONNECT" {
        return Err(Reject::NotImplemented);
    }
    let mut head = RequestHead {
        len,
        minor,
        method: range(buf, method.as_bytes()),
        target: range(buf, path.as_bytes()),
        headers: Vec::new(),
        body: Body::None,
        keep_alive: minor >= 1,
        host: None,
        expect_continue: false,
    };
    let (mut cl, mut te, mut hosts) = (None::<u64>, 0, 0);
    let mut cl_count = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        let _ = head.headers.push((range(buf, name), range(buf, h.value)));
        if name.eq_ignore_ascii_case(b"content-length") {
            cl_count += 1;
            cl = Some(content_length(value).ok_or(Reject::BadContentLength)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te += 1;
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Reject::BadTransferEncoding);
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            head.host = Some(range(buf, host_of(value)));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if lists_token(value, b"close") {
                head.keep_alive = false;
            } else if lists_token(value, b"keep-alive") {
                head.keep_alive = true;
            }
            if lists_token(value, b"upgrade") {
                return Err(Reject::NotImplemented);
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if cl_count > 1 {
        return Err(Reject::BadContentLength);
    }
    if te > 0 && cl.is_some() {
        return Err(Reject::ClAndTe);
    }
    if te > 1 || (te == 1 && minor == 0) {
        return Err(Reject::BadTransferEncoding);
    }
    if (minor >= 1 && hosts != 1) || hosts > 1 {
        return Err(Reject::BadHost);
    }
    // An absolute-form target's authority is the host (RFC 9112 §3.2.2).
    let target = slice(buf, head.target);
    if let Some(rest) = target
        .strip_prefix(b"http://")
        .or_else(|| target.strip_prefix(b"https://"))
    {
        let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        head.host = Some(range(buf, host_of(&rest[..end])));
    }
    head.body = match (te, cl) {
        (1, _) => Body::Chunked,
        (_, Some(0)) | (_, None) => Body::None,
        (_, Some(n)) => Body::Length(n),
    };
    Ok(Some(head))
}

fn memchr_first_line(buf: &[u8]) -> usize {
    buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len())
}

impl RequestHead {
    /// The method.
    pub fn method<'b>(&self, buf: &'b [u8]) -> &'b str {
        core::str::from_utf8(slice(buf, self.method)).unwrap_or("")
    }

    /// The request target.
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        slice(buf, self.target)
    }

    /// The path of the target (absolute form: after the authority).
    pub fn path<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let target = self.target(buf);
        match target
            .strip_prefix(b"http://")
            .or_else(|| target.strip_prefix(b"https://"))
        {
            Some(rest) => rest
                .iter()
                .position(|&b| b == b'/')
                .map_or(b"/", |p| &rest[p..]),
            None => target,
        }
    }

    /// Whether the method's response has no body (`HEAD`).
    pub fn is_head(&self, buf: &[u8]) -> bool {
        self.method(buf) == "HEAD"
    }
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Length of the head.
    pub len: usize,
    /// Status code.
    pub status: u16,
    /// How the body is delimited (given the request's method).
    pub body: Body,
    /// Whether the backend keeps the connection.
    pub keep_alive: bool,
}

/// Why a backend's response was refused (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BadResponse {
    /// httparse refused it, or it was too large.
    Malformed,
    /// Ambiguous framing (both lengths, conflicting lengths, unknown coding).
    Framing,
}

/// Parses a response head at the start of `buf`, for a request that was `HEAD` or not.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
    full: bool,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if !full => return Ok(None),
        _ => return Err(BadResponse::Malformed),
    };
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(BadResponse::Malformed);
    };
    let mut keep_alive = minor >= 1;
    let (mut cl, mut chunked, mut te) = (None::<u64>, false, false);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(value).ok_or(BadResponse::Framing)?;
            if cl.is_some_and(|c| c != n) {
                return Err(BadResponse::Framing);
            }
            cl = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            // The last coding must be chunked for the length to be known.
            let last = value.rsplit(|&b| b == b',').next().map(trim);
            chunked = last.is_some_and(|l| l.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if lists_token(value, b"close") {
                keep_alive = false;
            } else if lists_token(value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let body = if no_body {
        Body::None
    } else if te {
        if chunked {
            Body::Chunked
        } else {
            Body::UntilClose
        }
    } else {
        match cl {
            Some(0) => Body::None,
            Some(n) => Body::Length(n),
            None => Body::UntilClose,
        }
    };
    if body == Body::UntilClose {
        keep_alive = false;
    }
    Ok(Some(ResponseHead {
        len,
        status,
        body,
        keep_alive,
    }))
}

/// Validates a chunked body as it streams past, and finds its end.
///
/// Chunk sizes are hex without sign or leading spaces, at most 15 digits; extensions
/// (`;name=value`) are allowed up to 128 bytes; every line ends with CRLF (bare LF is
/// refused: a server that accepts it and one that does not would disagree about where the
/// body ends); trailers are allowed up to 1 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    digits: u8,
    line: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Outcome of feeding bytes to a [`ChunkedDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// All bytes belong to the body; more is needed.
    More,
    /// The body ends after this many of the bytes fed.
    End(usize),
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// At the start of a body.
    pub const fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            size: 0,
            digits: 0,
            line: 0,
        }
    }

    /// Feeds body bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Chunked, Reject> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                ChunkState::Size => match (b as char).to_digit(16) {
                    Some(d) if self.digits < 15 => {
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                    }
                    Some(_) => return Err(Reject::BadChunk),
                    None if self.digits == 0 => return Err(Reject::BadChunk),
                    None => match b {
                        b';' => {
                            self.state = ChunkState::Ext;
                            self.line = 0;
                        }
                        b'\r' => self.state = ChunkState::SizeLf,
                        _ => return Err(Reject::BadChunk),
                    },
                },
                ChunkState::Ext => match b {
                    b'\r' => self.state = ChunkState::SizeLf,
                    b'\n' => return Err(Reject::BadChunk),
                    _ => {
                        self.line += 1;
                        if self.line > 128 {
                            return Err(Reject::BadChunk);
                        }
                    }
                },
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(Reject::BadChunk);
                    }
                    if self.size == 0 {
                        self.state = ChunkState::TrailerStart;
                        self.line = 0;
                    } else {
                        self.state = ChunkState::Data;
                    }
                }
                ChunkState::Data => {
                    let take =
                        (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(Reject::BadChunk);
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(Reject::BadChunk);
                    }
                    self.state = ChunkState::Size;
                    self.digits = 0;
                }
                ChunkState::TrailerStart => match b {
                    b'\r' => self.state = ChunkState::FinalLf,
                    b'\n' | b' ' | b'\t' => return Err(Reject::BadChunk),
                    _ => {
                        self.state = ChunkState::TrailerLine;
                        self.line += 1;
                    }
                },
                ChunkState::TrailerLine => {
                    self.line += 1;
                    if self.line > 1024 {
                        return Err(Reject::BadChunk);
                    }
                    match b {
                        b'\r' => self.state = ChunkState::TrailerLf,
                        b'\n' => return Err(Reject::BadChunk),
                        _ => {}
                    }
                }
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err(Reject::BadChunk);
                    }
                    self.state = ChunkState::TrailerStart;
                }
                ChunkState::FinalLf => {
                    if b != b'\n' {
                        return Err(Reject::BadChunk);
                    }
                    self.state = ChunkState::Done;
                    return Ok(Chunked::End(i + 1));
                }
                ChunkState::Done => return Ok(Chunked::End(i)),
            }
            i += 1;
        }
        Ok(if self.state == ChunkState::Done {
            Chunked::End(0)
        } else {
            Chunked::More
        })
    }
}

/// Tracks how much of a body is left; feeds chunked bodies through a [`ChunkedDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProgress {
    /// This many bytes left.
    Length(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// Until the connection closes.
    UntilClose,
    /// Complete.
    Done,
}

impl BodyProgress {
    /// The progress at the start of a body.
    pub fn new(body: Body) -> Self {
        match body {
            Body::None | Body::Length(0) => BodyProgress::Done,
            Body::Length(n) => BodyProgress::Length(n),
            Body::Chunked => BodyProgress::Chunked(ChunkedDecoder::new()),
            Body::UntilClose => BodyProgress::UntilClose,
        }
    }

    /// Feeds bytes that follow; returns how many belong to the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, Reject> {
        match self {
            BodyProgress::Done => Ok(0),
            BodyProgress::UntilClose => Ok(bytes.len()),
            BodyProgress::Length(n) => {
                let take = bytes.len().min(usize::try_from(*n).unwrap_or(usize::MAX));
                *n -= take as u64;
                if *n == 0 {
                    *self = BodyProgress::Done;
                }
                Ok(take)
            }
            BodyProgress::Chunked(d) => match d.feed(bytes)? {
                Chunked::More => Ok(bytes.len()),
                Chunked::End(k) => {
                    *self = BodyProgress::Done;
                    Ok(k)
                }
            },
        }
    }

    /// Whether the body is complete.
    pub fn done(&self) -> bool {
        *self == BodyProgress::Done
    }
}
