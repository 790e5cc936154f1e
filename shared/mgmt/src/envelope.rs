//! The envelope every management message travels in, and the authentication rules.
//!
//! ```text
//! 0      1        2     3      4            12           20            n-32     n
//! +------+--------+-----+------+------------+------------+-------------+--------+
//! | 0xF1 | version| kind| flags| session u64| seq u64    | payload     | tag    |
//! +------+--------+-----+------+------------+------------+-------------+--------+
//! ```
//! All integers are big-endian. `kind` is 0 for a request, 1 for a response. Flag bit 0
//! says the envelope ends with a 32-byte HMAC-SHA256 tag over everything before it. The
//! payload is a postcard-encoded [`Request`] or [`Response`].
//!
//! [`Envelope`] is a zero-copy view in the smoltcp style: [`Envelope::new_checked`]
//! checks the length and constant fields, after which no accessor panics.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::command::Command;
use crate::message::{ErrorCode, ErrorReply, HelloInfo, Request, Response, ResponseRef};
use crate::{MAX_ENVELOPE, VERSION};

/// First byte of every envelope.
pub const MAGIC: u8 = 0xF1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 20;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 32;
/// Longest pre-shared key, in bytes.
pub const MAX_KEY: usize = 64;
/// Flag bit: the envelope carries a tag.
const FLAG_AUTH: u8 = 0x01;

mod field {
    use core::ops::Range;
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const KIND: usize = 2;
    pub const FLAGS: usize = 3;
    pub const SESSION: Range<usize> = 4..12;
    pub const SEQ: Range<usize> = 12..20;
}

/// Direction of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// Host to appliance.
    Request,
    /// Appliance to host.
    Response,
}

/// Why an envelope was refused before its payload was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EnvelopeError {
    /// Shorter than a header (plus tag, if flagged).
    Truncated,
    /// Longer than [`MAX_ENVELOPE`].
    TooLong,
    /// Wrong magic byte: not a Fulcrum management message.
    BadMagic,
    /// A protocol version this side does not speak.
    BadVersion(u8),
    /// Unknown kind or flag bits.
    BadHeader,
}

impl core::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EnvelopeError::Truncated => f.write_str("message truncated"),
            EnvelopeError::TooLong => f.write_str("message too long"),
            EnvelopeError::BadMagic => f.write_str("not a Fulcrum management message"),
            EnvelopeError::BadVersion(v) => write!(f, "protocol version {v} not supported"),
            EnvelopeError::BadHeader => f.write_str("bad message header"),
        }
    }
}

/// A read view of an envelope.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Envelope<T> {
    /// Wraps `buffer` after checking length, magic, version and header bits.
    pub fn new_checked(buffer: T) -> Result<Self, EnvelopeError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(EnvelopeError::Truncated);
        }
        if b.len() > MAX_ENVELOPE {
            return Err(EnvelopeError::TooLong);
        }
        if b[field::MAGIC] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        if b[field::VERSION] != VERSION {
            return Err(EnvelopeError::BadVersion(b[field::VERSION]));
        }
        if b[field::KIND] > 1 || b[field::FLAGS] & !FLAG_AUTH != 0 {
            return Err(EnvelopeError::BadHeader);
        }
        if b[field::FLAGS] & FLAG_AUTH != 0 && b.len() < HEADER_LEN + TAG_LEN {
            return Err(EnvelopeError::Truncated);
        }
        Ok(Envelope { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Request or response.
    pub fn kind(&self) -> Kind {
        if self.bytes()[field::KIND] == 0 {
            Kind::Request
        } else {
            Kind::Response
        }
    }

    /// Whether the envelope carries a tag.
    pub fn authenticated(&self) -> bool {
        self.bytes()[field::FLAGS] & FLAG_AUTH != 0
    }

    /// The session number.
    pub fn session(&self) -> u64 {
        u64::from_be_bytes(self.bytes()[field::SESSION].try_into().unwrap_or([0; 8]))
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        u64::from_be_bytes(self.bytes()[field::SEQ].try_into().unwrap_or([0; 8]))
    }

    fn tag_start(&self) -> usize {
        let len = self.bytes().len();
        if self.authenticated() {
            len - TAG_LEN
        } else {
            len
        }
    }

    /// The postcard payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[HEADER_LEN..self.tag_start()]
    }

    /// Whether the tag verifies under `key` (constant time). False when there is no tag.
    pub fn verify(&self, key: &Key) -> bool {
        if !self.authenticated() {
            return false;
        }
        let split = self.tag_start();
        let mut mac = key.mac();
        mac.update(&self.bytes()[..split]);
        mac.verify_slice(&self.bytes()[split..]).is_ok()
    }
}

/// A pre-shared management key (1 to [`MAX_KEY`] bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    bytes: heapless::Vec<u8, MAX_KEY>,
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({} bytes)", self.bytes.len())
    }
}

impl Key {
    /// A key of no bytes: only a placeholder, for holders built in a static at compile
    /// time before their real key is known (the MCU's idle HA links); [`Key::new`] never
    /// returns it, and nothing should authenticate with it.
    pub const PLACEHOLDER: Key = Key {
        bytes: heapless::Vec::new(),
    };

    /// A key from raw bytes; `None` when empty or longer than [`MAX_KEY`].
    pub fn new(bytes: &[u8]) -> Option<Key> {
        if bytes.is_empty() {
            return None;
        }
        Some(Key {
            bytes: heapless::Vec::from_slice(bytes).ok()?,
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// HMAC-SHA256 of `data` under this key, for Fulcrum's other authenticated protocols
    /// (HA flow sync). Their messages start with their own magic byte, so a tag made for
    /// one protocol never verifies a message of another.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the HMAC-SHA256 of `data` under this key (constant time).
    pub fn verify_tag(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

/// Why a message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EmitError {
    /// The message does not fit the buffer (or [`MAX_ENVELOPE`]).
    TooLarge,
}

/// Writes an envelope carrying `message` into `buf`; returns its length. With a key, the
/// envelope is tagged.
pub fn emit<M: serde::Serialize>(
    buf: &mut [u8],
    kind: Kind,
    session: u64,
    seq: u64,
    key: Option<&Key>,
    message: &M,
) -> Result<usize, EmitError> {
    let limit = buf.len().min(MAX_ENVELOPE);
    let tag = if key.is_some() { TAG_LEN } else { 0 };
    if limit < HEADER_LEN + tag {
        return Err(EmitError::TooLarge);
    }
    let buf = &mut buf[..limit];
    buf[field::MAGIC] = MAGIC;
    buf[field::VERSION] = VERSION;
    buf[field::KIND] = match kind {
        Kind::Request => 0,
        Kind::Response => 1,
    };
    buf[field::FLAGS] = if key.is_some() { FLAG_AUTH } else { 0 };
    buf[field::SESSION].copy_from_slice(&session.to_be_bytes());
    buf[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    let payload_room = limit - HEADER_LEN - tag;
    let payload_len = postcard::to_slice(message, &mut buf[HEADER_LEN..HEADER_LEN + payload_room])
        .map_err(|_| EmitError::TooLarge)?
        .len();
    let end = HEADER_LEN + payload_len;
    if let Some(key) = key {
        let mut mac = key.mac();
        mac.update(&buf[..end]);
        buf[end..end + TAG_LEN].copy_from_slice(&mac.finalize().into_bytes());
        Ok(end + TAG_LEN)
    } else {
        Ok(end)
    }
}

/// Why the appliance refused a request envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AuthError {
    /// The envelope or its payload did not decode.
    Malformed,
    /// Authentication is required and the request carried none.
    Required,
    /// The tag did not verify.
    BadTag,
    /// Session or sequence number stale: a replay or a reordered message.
    Replay,
}

impl AuthError {
    /// The error code answered to the client.
    pub const fn code(self) -> ErrorCode {
        match self {
            AuthError::Malformed => ErrorCode::Malformed,
            AuthError::Required => ErrorCode::AuthRequired,
            AuthError::BadTag => ErrorCode::AuthFailed,
            AuthError::Replay => ErrorCode::Replay,
        }
    }

    /// The message answered to the client: what is wrong and what to do.
    pub const fn message(self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed request",
            AuthError::Required => {
                "this link requires an authenticated request: pass the management key"
            }
            AuthError::BadTag => "authentication failed: wrong management key or altered message",
            AuthError::Replay => "stale session or sequence number: reconnect",
        }
    }
}

/// How to answer an accepted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    session: u64,
    seq: u64,
    authenticated: bool,
}

impl ReplyTo {
    /// An untagged answer outside any session (to a frame that did not decode).
    pub const fn unauthenticated() -> Self {
        ReplyTo {
            session: 0,
            seq: 0,
            authenticated: false,
        }
    }
}

/// The appliance's side of one connection (sans-IO): checks requests, tags answers.
#[derive(Debug, Clone)]
pub struct ServerSession {
    key: Option<Key>,
    require_auth: bool,
    session: u64,
    last_seq: u64,
}

impl ServerSession {
    /// A session for one connection. With `require_auth`, every request but `Hello` must be
    /// tagged with `key` (a network link); without, tags are checked when present (serial).
    pub const fn new(key: Option<Key>, require_auth: bool) -> Self {
        ServerSession {
            key,
            require_auth,
            session: 0,
            last_seq: 0,
        }
    }

    /// Whether this session demands authentication.
    pub fn auth_required(&self) -> bool {
        self.require_auth
    }

    /// Decodes and checks one request envelope. `fresh_session` is a random number used
    /// when the request is a `Hello` (it becomes the session number).
    pub fn accept(
        &mut self,
        bytes: &[u8],
        fresh_session: u64,
    ) -> Result<(Request, ReplyTo), (AuthError, ReplyTo)> {
        let mut slot = None;
        let to = self.accept_into(bytes, fresh_session, &mut slot)?;
        match slot {
            Some(request) => Ok((request, to)),
            None => Err((AuthError::Malformed, to)),
        }
    }

    /// As [`ServerSession::accept`], decoding the request into `slot` (kept in static
    /// memory by the MCU; a request can hold a whole config).
    pub fn accept_into(
        &mut self,
        bytes: &[u8],
        fresh_session: u64,
        slot: &mut Option<Request>,
    ) -> Result<ReplyTo, (AuthError, ReplyTo)> {
        *slot = None;
        let to = self.accept_with(bytes, fresh_session, |payload| {
            *slot = Some(postcard::from_bytes(payload).ok()?);
            match slot {
                Some(Request::Hello { client_nonce }) => Some(Some(*client_nonce)),
                _ => Some(None),
            }
        });
        if to.is_err() {
            *slot = None;
        }
        to
    }

    /// As [`ServerSession::accept`], for the MCU: the request decodes into a small
    /// [`Command`], and an `Apply`'s config into `config` (a static buffer).
    #[inline(never)]
    pub fn accept_command<'a>(
        &mut self,
        bytes: &'a [u8],
        fresh_session: u64,
        config: &mut fulcrum_model::config::Config,
    ) -> Result<(Command<'a>, ReplyTo), (AuthError, ReplyTo)> {
        let mut command = None;
        let to = self.accept_with(bytes, fresh_session, |payload| {
            let c = crate::command::decode(payload, config).ok()?;
            let nonce = c.hello_nonce();
            command = Some(c);
            Some(nonce)
        })?;
        match command {
            Some(c) => Ok((c, to)),
            None => Err((AuthError::Malformed, to)),
        }
    }

    /// The checks common to every request: envelope, tag, payload (by `decode`, which
    /// says whether the request is a `Hello` and with which nonce), session and sequence.
    fn accept_with<'a>(
        &mut self,
        bytes: &'a [u8],
        fresh_session: u64,
        decode: impl FnOnce(&'a [u8]) -> Option<Option<u64>>,
    ) -> Result<ReplyTo, (AuthError, ReplyTo)> {
        let unauth = ReplyTo::unauthenticated();
        let env = Envelope::new_checked(bytes).map_err(|_| (AuthError::Malformed, unauth))?;
        let unauth = ReplyTo {
            session: env.session(),
            seq: env.seq(),
            authenticated: false,
        };
        if env.kind() != Kind::Request {
            return Err((AuthError::Malformed, unauth));
        }
        if env.authenticated() {
            match &self.key {
                Some(key) if env.verify(key) => {}
                _ => return Err((AuthError::BadTag, unauth)),
            }
        }
        // The payload, borrowed from `bytes` itself (a decoded command may keep it).
        let payload = bytes
            .get(HEADER_LEN..env.tag_start())
            .ok_or((AuthError::Malformed, unauth))?;
        let hello = decode(payload).ok_or((AuthError::Malformed, unauth))?;
        if let Some(client_nonce) = hello {
            self.session = fresh_session;
            self.last_seq = 0;
            return Ok(ReplyTo {
                session: fresh_session,
                seq: client_nonce,
                authenticated: self.key.is_some(),
            });
        }
        if !env.authenticated() {
            if self.require_auth {
                return Err((AuthError::Required, unauth));
            }
            return Ok(unauth);
        }
        if self.session == 0 || env.session() != self.session || env.seq() <= self.last_seq {
            return Err((AuthError::Replay, unauth));
        }
        self.last_seq = env.seq();
        Ok(ReplyTo {
            session: env.session(),
            seq: env.seq(),
            authenticated: true,
        })
    }

    /// Writes the answer to a request accepted with `to`.
    pub fn reply(
        &self,
        buf: &mut [u8],
        to: ReplyTo,
        response: &Response,
    ) -> Result<usize, EmitError> {
        self.reply_ref(buf, to, response.as_ref())
    }

    /// Writes the answer to a request accepted with `to`, from borrowed contents.
    pub fn reply_ref(
        &self,
        buf: &mut [u8],
        to: ReplyTo,
        response: ResponseRef<'_>,
    ) -> Result<usize, EmitError> {
        let key = if to.authenticated {
            self.key.as_ref()
        } else {
            None
        };
        match emit(buf, Kind::Response, to.session, to.seq, key, &response) {
            Err(EmitError::TooLarge) if !matches!(response, ResponseRef::Error(_)) => {
                let too_large =
                    ErrorReply::new(ErrorCode::TooLarge, "the answer does not fit one message");
                emit(
                    buf,
                    Kind::Response,
                    to.session,
                    to.seq,
                    key,
                    &ResponseRef::Error(&too_large),
                )
            }
            other => other,
        }
    }
}

/// Why the host could not use an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientError {
    /// The answer did not decode.
    Malformed(EnvelopeError),
    /// The payload did not decode.
    BadPayload,
    /// The answer was not tagged, or the tag did not verify: wrong key, or not the appliance.
    Unauthenticated,
    /// The answer is for another request (session or sequence mismatch).
    Mismatch,
    /// The appliance refused the request (the reply may be untagged: trust it as a
    /// diagnostic only).
    Refused(ErrorReply),
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Malformed(e) => write!(f, "malformed answer: {e}"),
            ClientError::BadPayload => f.write_str("answer did not decode"),
            ClientError::Unauthenticated => f.write_str(
                "the appliance's answer does not verify with this key: wrong management key?",
            ),
            ClientError::Mismatch => f.write_str("answer does not belong to the request"),
            ClientError::Refused(e) => write!(f, "{:?}: {}", e.code, e.message),
        }
    }
}

/// The host's side of one connection (sans-IO).
#[derive(Debug, Clone)]
pub struct ClientSession {
    key: Option<Key>,
    nonce: u64,
    session: u64,
    seq: u64,
}

impl ClientSession {
    /// A session that tags requests with `key` (if any). `nonce` must be random.
    pub fn new(key: Option<Key>, nonce: u64) -> Self {
        ClientSession {
            key,
            nonce,
            session: 0,
            seq: 0,
        }
    }

    /// Writes the `Hello` that opens the session.
    pub fn hello(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let hello = Request::Hello {
            client_nonce: self.nonce,
        };
        emit(buf, Kind::Request, 0, 0, None, &hello)
    }

    /// Reads the answer to `Hello`: with a key, it must be tagged and echo the nonce.
    pub fn accept_hello(&mut self, bytes: &[u8]) -> Result<HelloInfo, ClientError> {
        let (session, seq, response) = self.open(bytes)?;
        if seq != self.nonce {
            return Err(ClientError::Mismatch);
        }
        match response {
            Response::Hello(info) => {
                self.session = session;
                self.seq = 0;
                Ok(info)
            }
            Response::Error(e) => Err(ClientError::Refused(e)),
            _ => Err(ClientError::Mismatch),
        }
    }

    /// Decodes an answer and checks its tag (with a key) and kind; its session, sequence
    /// number and response. An untagged refusal is passed on as a diagnostic.
    fn open(&self, bytes: &[u8]) -> Result<(u64, u64, Response), ClientError> {
        let env = Envelope::new_checked(bytes).map_err(ClientError::Malformed)?;
        let response: Response =
            postcard::from_bytes(env.payload()).map_err(|_| ClientError::BadPayload)?;
        if let Some(key) = &self.key
            && !env.verify(key)
        {
            return Err(match response {
                Response::Error(e) => ClientError::Refused(e),
                _ => ClientError::Unauthenticated,
            });
        }
        if env.kind() != Kind::Response {
            return Err(ClientError::Mismatch);
        }
        Ok((env.session(), env.seq(), response))
    }

    /// Writes the next request; tagged when the session has a key.
    pub fn request(&mut self, buf: &mut [u8], request: &Request) -> Result<usize, EmitError> {
        self.seq += 1;
        emit(
            buf,
            Kind::Request,
            self.session,
            self.seq,
            self.key.as_ref(),
            request,
        )
    }

    /// Reads the answer to the last request.
    pub fn accept(&mut self, bytes: &[u8]) -> Result<Response, ClientError> {
        let (session, seq, response) = self.open(bytes)?;
        if self.key.is_some() && (session != self.session || seq != self.seq) {
            return Err(ClientError::Mismatch);
        }
        match response {
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Ok(other),
        }
    }
}
