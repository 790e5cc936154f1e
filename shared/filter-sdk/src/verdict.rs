//! The verdict encoding (filter to host): what a filter decides about a request. The
//! filter builds a [`Verdict`] and [`Verdict::encode`]s it; the host [`Verdict::decode`]s
//! the bytes, which come from untrusted code: every length, code and text is checked, and
//! anything out of place is a [`VerdictError`], never a panic.

use heapless::{String, Vec};

use crate::{MAX_EDITS, MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_POOL};

/// What happens to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Carry on: the service's own routing chooses the backend.
    Allow,
    /// Answer the client with this status (200..=599) and do not forward.
    Deny {
        /// The HTTP status.
        status: u16,
    },
    /// Send the request to the named pool of the service.
    Route {
        /// The pool's name.
        pool: String<MAX_POOL>,
    },
}

/// How a header edit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOp {
    /// Append a header, keeping any of the same name.
    Add,
    /// Replace every header of that name with this one (add it if there is none).
    Set,
    /// Remove every header of that name.
    Remove,
}

/// One header edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEdit {
    /// Add, set or remove.
    pub op: EditOp,
    /// The header name (an RFC 9110 token).
    pub name: String<MAX_HEADER_NAME>,
    /// The value (empty for [`EditOp::Remove`]).
    pub value: Vec<u8, MAX_HEADER_VALUE>,
}

/// A filter's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What happens to the request.
    pub action: Action,
    /// Header edits, applied in order, whatever the action (a deny's edits apply to the
    /// request, not to the answer; the proxy may ignore them).
    pub edits: Vec<HeaderEdit, MAX_EDITS>,
}

/// Why a verdict is invalid (from [`Verdict::decode`] on the host, or refused while
/// building it in the filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictError {
    /// The encoding ends in the middle of a field.
    Truncated,
    /// Bytes follow the last edit.
    TrailingBytes,
    /// Unknown action code.
    UnknownAction(u8),
    /// Deny status outside 200..=599.
    BadStatus(u16),
    /// Pool name empty, too long, or with characters other than `A-Z a-z 0-9 . _ -`.
    BadPoolName,
    /// More than [`MAX_EDITS`] edits.
    TooManyEdits,
    /// Unknown edit op code.
    UnknownEditOp(u8),
    /// Header name empty, too long, or not an RFC 9110 token.
    BadHeaderName,
    /// Header value too long or with control characters (or non-empty for a removal).
    BadHeaderValue,
    /// The edit touches a framing or connection header (`content-length`,
    /// `transfer-encoding`, `connection`, `keep-alive`, `te`, `trailer`, `upgrade`).
    ProtectedHeader,
    /// The encoding does not fit the output buffer (filter side).
    BufferTooSmall,
}

impl core::fmt::Display for VerdictError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VerdictError::Truncated => write!(f, "verdict ends in the middle of a field"),
            VerdictError::TrailingBytes => write!(f, "bytes after the last header edit"),
            VerdictError::UnknownAction(a) => write!(f, "unknown action code {a}"),
            VerdictError::BadStatus(s) => write!(f, "deny status {s} is not in 200..=599"),
            VerdictError::BadPoolName => write!(f, "invalid pool name"),
            VerdictError::TooManyEdits => write!(f, "more than {MAX_EDITS} header edits"),
            VerdictError::UnknownEditOp(o) => write!(f, "unknown header edit op {o}"),
            VerdictError::BadHeaderName => write!(f, "invalid header name"),
            VerdictError::BadHeaderValue => write!(f, "invalid header value"),
            VerdictError::ProtectedHeader => {
                write!(f, "edit of a framing or connection header")
            }
            VerdictError::BufferTooSmall => write!(f, "verdict does not fit the output buffer"),
        }
    }
}

/// Headers a filter may not touch: they decide where a message ends, or belong to the
/// connection, so editing them could split one request into two at the backend.
const PROTECTED: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

const ACTION_ALLOW: u8 = 0;
const ACTION_DENY: u8 = 1;
const ACTION_ROUTE: u8 = 2;
const OP_ADD: u8 = 0;
const OP_SET: u8 = 1;
const OP_REMOVE: u8 = 2;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_pool(name: &str) -> Result<(), VerdictError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POOL
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(VerdictError::BadPoolName)
    }
}

fn check_name(name: &[u8]) -> Result<(), VerdictError> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.iter().all(|&b| is_tchar(b)) {
        return Err(VerdictError::BadHeaderName);
    }
    if PROTECTED
        .iter()
        .any(|p| p.as_bytes().eq_ignore_ascii_case(name))
    {
        return Err(VerdictError::ProtectedHeader);
    }
    Ok(())
}

fn check_value(op: EditOp, value: &[u8]) -> Result<(), VerdictError> {
    let ok = value.len() <= MAX_HEADER_VALUE
        && value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        && (op != EditOp::Remove || value.is_empty());
    if ok {
        Ok(())
    } else {
        Err(VerdictError::BadHeaderValue)
    }
}

impl HeaderEdit {
    /// A checked edit.
    pub fn new(op: EditOp, name: &str, value: &[u8]) -> Result<HeaderEdit, VerdictError> {
        check_name(name.as_bytes())?;
        check_value(op, value)?;
        Ok(HeaderEdit {
            op,
            name: String::try_from(name).map_err(|_| VerdictError::BadHeaderName)?,
            value: Vec::from_slice(value).map_err(|_| VerdictError::BadHeaderValue)?,
        })
    }
}

impl Verdict {
    /// Allow, no edits.
    pub fn allow() -> Verdict {
        Verdict {
            action: Action::Allow,
            edits: Vec::new(),
        }
    }

    /// Deny with `status` (200..=599).
    pub fn deny(status: u16) -> Result<Verdict, VerdictError> {
        if !(200..=599).contains(&status) {
            return Err(VerdictError::BadStatus(status));
        }
        Ok(Verdict {
            action: Action::Deny { status },
            edits: Vec::new(),
        })
    }

    /// Route to `pool`.
    pub fn route(pool: &str) -> Result<Verdict, VerdictError> {
        check_pool(pool)?;
        Ok(Verdict {
            action: Action::Route {
                pool: String::try_from(pool).map_err(|_| VerdictError::BadPoolName)?,
            },
            edits: Vec::new(),
        })
    }

    /// Appends an edit.
    pub fn edit(&mut self, op: EditOp, name: &str, value: &[u8]) -> Result<(), VerdictError> {
        let edit = HeaderEdit::new(op, name, value)?;
        self.edits
            .push(edit)
            .map_err(|_| VerdictError::TooManyEdits)
    }

    /// Adds a header (keeping others of the same name).
    pub fn add_header(&mut self, name: &str, value: &[u8]) -> Result<(), VerdictError> {
        self.edit(EditOp::Add, name, value)
    }

    /// Sets a header (replacing others of the same name).
    pub fn set_header(&mut self, name: &str, value: &[u8]) -> Result<(), VerdictError> {
        self.edit(EditOp::Set, name, value)
    }

    /// Removes every header of that name.
    pub fn remove_header(&mut self, name: &str) -> Result<(), VerdictError> {
        self.edit(EditOp::Remove, name, b"")
    }

    /// Length of [`Verdict::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let action = match &self.action {
            Action::Allow => 1,
            Action::Deny { .. } => 3,
            Action::Route { pool } => 2 + pool.len(),
        };
        action
            + 1
            + self
                .edits
                .iter()
                .map(|e| 1 + 1 + e.name.len() + 2 + e.value.len())
                .sum::<usize>()
    }

    /// Encodes the verdict into `buf`; returns its length. Checks what the decoder checks,
    /// so a filter cannot send a verdict the host would refuse (fields are public).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, VerdictError> {
        let len = self.encoded_len();
        let Some(buf) = buf.get_mut(..len) else {
            return Err(VerdictError::BufferTooSmall);
        };
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        match &self.action {
            Action::Allow => put(&[ACTION_ALLOW]),
            Action::Deny { status } => {
                if !(200..=599).contains(status) {
                    return Err(VerdictError::BadStatus(*status));
                }
                put(&[ACTION_DENY]);
                put(&status.to_le_bytes());
            }
            Action::Route { pool } => {
                check_pool(pool)?;
                put(&[ACTION_ROUTE, pool.len() as u8]);
                put(pool.as_bytes());
            }
        }
        put(&[self.edits.len() as u8]);
        for e in &self.edits {
            check_name(e.name.as_bytes())?;
            check_value(e.op, &e.value)?;
            let op = match e.op {
                EditOp::Add => OP_ADD,
                EditOp::Set => OP_SET,
                EditOp::Remove => OP_REMOVE,
            };
            put(&[op, e.name.len() as u8]);
            put(e.name.as_bytes());
            put(&(e.value.len() as u16).to_le_bytes());
            put(&e.value);
        }
        Ok(len)
    }

    /// Decodes and checks a verdict from a filter's output.
    pub fn decode(bytes: &[u8]) -> Result<Verdict, VerdictError> {
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8], VerdictError> {
            if rest.len() < n {
                return Err(VerdictError::Truncated);
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let action = match take(1)?[0] {
            ACTION_ALLOW => Action::Allow,
            ACTION_DENY => {
                let s = take(2)?;
                let status = u16::from_le_bytes([s[0], s[1]]);
                if !(200..=599).contains(&status) {
                    return Err(VerdictError::BadStatus(status));
                }
                Action::Deny { status }
            }
            ACTION_ROUTE => {
                let n = take(1)?[0];
                let name = core::str::from_utf8(take(usize::from(n))?)
                    .map_err(|_| VerdictError::BadPoolName)?;
                check_pool(name)?;
                Action::Route {
                    pool: String::try_from(name).map_err(|_| VerdictError::BadPoolName)?,
                }
            }
            other => return Err(VerdictError::UnknownAction(other)),
        };
        let count = take(1)?[0];
        if usize::from(count) > MAX_EDITS {
            return Err(VerdictError::TooManyEdits);
        }
        let mut edits = Vec::new();
        for _ in 0..count {
            let op = match take(1)?[0] {
                OP_ADD => EditOp::Add,
                OP_SET => EditOp::Set,
                OP_REMOVE => EditOp::Remove,
                other => return Err(VerdictError::UnknownEditOp(other)),
            };
            let n = take(1)?[0];
            let name = take(usize::from(n))?;
            check_name(name)?;
            let v = take(2)?;
            let value = take(usize::from(u16::from_le_bytes([v[0], v[1]])))?;
            check_value(op, value)?;
            let name = core::str::from_utf8(name).map_err(|_| VerdictError::BadHeaderName)?;
            let edit = HeaderEdit {
                op,
                name: String::try_from(name).map_err(|_| VerdictError::BadHeaderName)?,
                value: Vec::from_slice(value).map_err(|_| VerdictError::BadHeaderValue)?,
            };
            edits.push(edit).map_err(|_| VerdictError::TooManyEdits)?;
        }
        if !rest.is_empty() {
            return Err(VerdictError::TrailingBytes);
        }
        Ok(Verdict { action, edits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_VERDICT_LEN;

    fn round_trip(v: &Verdict) {
        let mut buf = [0u8; MAX_VERDICT_LEN];
        let n = v.encode(&mut buf).unwrap();
        assert_eq!(n, v.encoded_len());
        assert_eq!(&Verdict::decode(&buf[..n]).unwrap(), v);
        for cut in 0..n {
            assert_eq!(
                Verdict::decode(&buf[..cut]),
                Err(VerdictError::Truncated),
                "cut at {cut}"
            );
        }
        let mut longer = [0u8; MAX_VERDICT_LEN + 1];
        longer[..n].copy_from_slice(&buf[..n]);
        assert_eq!(
            Verdict::decode(&longer[..n + 1]),
            Err(VerdictError::TrailingBytes)
        );
    }

    #[test]
    fn round_trips() {
        round_trip(&Verdict::allow());
        round_trip(&Verdict::deny(403).unwrap());
        round_trip(&Verdict::route("canary-v2.eu").unwrap());
        let mut v = Verdict::route(&"p".repeat(MAX_POOL)).unwrap();
        for i in 0..MAX_EDITS {
            let op = [EditOp::Add, EditOp::Set, EditOp::Remove][i % 3];
            let value = [b'x'; MAX_HEADER_VALUE];
            let value: &[u8] = if op == EditOp::Remove { b"" } else { &value };
            v.edit(op, &"X".repeat(MAX_HEADER_NAME), value).unwrap();
        }
        assert!(v.encoded_len() <= MAX_VERDICT_LEN);
        round_trip(&v);
        assert_eq!(
            v.add_header("X-One-Too-Many", b"1"),
            Err(VerdictError::TooManyEdits)
        );
    }

    #[test]
    fn exact_bytes() {
        let mut v = Verdict::deny(403).unwrap();
        v.set_header("X-Why", b"ua").unwrap();
        let mut buf = [0u8; 32];
        let n = v.encode(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &[
                1, 0x93, 0x01, 1, 1, 5, b'X', b'-', b'W', b'h', b'y', 2, 0, b'u', b'a'
            ]
        );
    }

    #[test]
    fn guest_mistakes_are_refused_by_the_builder() {
        assert_eq!(Verdict::deny(99), Err(VerdictError::BadStatus(99)));
        assert_eq!(Verdict::deny(600), Err(VerdictError::BadStatus(600)));
        assert_eq!(Verdict::route(""), Err(VerdictError::BadPoolName));
        assert_eq!(Verdict::route("a b"), Err(VerdictError::BadPoolName));
        assert_eq!(
            Verdict::route(&"p".repeat(MAX_POOL + 1)),
            Err(VerdictError::BadPoolName)
        );
        let mut v = Verdict::allow();
        assert_eq!(v.add_header("", b"x"), Err(VerdictError::BadHeaderName));
        assert_eq!(
            v.add_header("Bad Name", b"x"),
            Err(VerdictError::BadHeaderName)
        );
        assert_eq!(
            v.add_header("X-Inject", b"a\r\nHost: evil"),
            Err(VerdictError::BadHeaderValue)
        );
        assert_eq!(
            v.set_header("Content-Length", b"0"),
            Err(VerdictError::ProtectedHeader)
        );
        assert_eq!(
            v.remove_header("transfer-encoding"),
            Err(VerdictError::ProtectedHeader)
        );
        assert_eq!(
            v.add_header("X-Long", &[b'a'; MAX_HEADER_VALUE + 1]),
            Err(VerdictError::BadHeaderValue)
        );
        assert!(v.edits.is_empty());
        let mut buf = [0u8; 2];
        assert_eq!(
            Verdict::deny(403).unwrap().encode(&mut buf),
            Err(VerdictError::BufferTooSmall)
        );
    }

    #[test]
    fn malformed_output_from_a_guest_is_refused() {
        let cases: &[(&[u8], VerdictError)] = &[
            (b"", VerdictError::Truncated),
            (&[9, 0], VerdictError::UnknownAction(9)),
            (&[1, 0x2b, 0x00, 0], VerdictError::BadStatus(43)),
            (&[1, 0x58, 0x02, 0], VerdictError::BadStatus(600)),
            (&[2, 0, 0], VerdictError::BadPoolName),
            (&[2, 3, b'a', b'/', b'b', 0], VerdictError::BadPoolName),
            (&[2, 2, 0xc3, 0x28, 0], VerdictError::BadPoolName),
            (&[2, 40, b'a'], VerdictError::Truncated),
            (&[0, 9], VerdictError::TooManyEdits),
            (&[0, 1, 3, 1, b'X', 0, 0], VerdictError::UnknownEditOp(3)),
            (&[0, 1, 0, 0, 0, 0], VerdictError::BadHeaderName),
            (&[0, 1, 0, 1, b':', 0, 0], VerdictError::BadHeaderName),
            (&[0, 1, 0, 2, 0xc3, 0x28, 0, 0], VerdictError::BadHeaderName),
            (
                &[0, 1, 0, 1, b'X', 1, 0, b'\n'],
                VerdictError::BadHeaderValue,
            ),
            (
                &[0, 1, 0, 1, b'X', 0xff, 0xff, b'a'],
                VerdictError::Truncated,
            ),
            (
                &[0, 1, 2, 1, b'X', 1, 0, b'a'],
                VerdictError::BadHeaderValue,
            ),
            (
                &[0, 1, 1, 2, b'T', b'E', 1, 0, b'x'],
                VerdictError::ProtectedHeader,
            ),
            (&[0, 0, 0], VerdictError::TrailingBytes),
        ];
        for (bytes, error) in cases {
            assert_eq!(Verdict::decode(bytes), Err(*error), "{bytes:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(v) = Verdict::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes.
                let mut buf = [0u8; MAX_VERDICT_LEN];
                let n = v.encode(&mut buf).unwrap();
                proptest::prop_assert_eq!(&buf[..n], &bytes[..]);
            }
        }
    }
}
