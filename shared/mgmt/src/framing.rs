//! COBS framing: each envelope is COBS-encoded and followed by one zero byte, on the
//! serial console and on TCP alike. A receiver that starts mid-stream, or sees line noise,
//! resynchronises at the next zero byte.

use crate::MAX_FRAME;
use crate::envelope::EmitError;

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// Longer than the reader's buffer: dropped up to the next delimiter.
    Overflow,
    /// Not valid COBS.
    BadEncoding,
}

/// COBS-encodes `envelope` into `out` and appends the zero delimiter; returns the length.
pub fn encode(envelope: &[u8], out: &mut [u8]) -> Result<usize, EmitError> {
    let n = cobs::try_encode(envelope, out).map_err(|_| EmitError::TooLarge)?;
    if n >= out.len() {
        return Err(EmitError::TooLarge);
    }
    out[n] = 0;
    Ok(n + 1)
}

/// Reassembles frames from a byte stream, with a fixed buffer of `N` bytes.
pub struct FrameReader<const N: usize = MAX_FRAME> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
    ready: Option<usize>,
}

impl<const N: usize> Default for FrameReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameReader<N> {
    /// An empty reader.
    pub const fn new() -> Self {
        FrameReader {
            buf: [0; N],
            len: 0,
            overflowed: false,
            ready: None,
        }
    }

    /// Consumes bytes of `input` up to and including the first delimiter. Returns how many
    /// bytes were used and, if a frame ended, its outcome: `Ok(n)` means the decoded
    /// envelope is [`FrameReader::frame`]`[..n]` until the next call. Empty frames (two
    /// delimiters in a row) are skipped.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Result<usize, FrameError>>) {
        if self.ready.take().is_some() {
            self.len = 0;
        }
        for (i, &byte) in input.iter().enumerate() {
            if byte == 0 {
                let outcome = if self.overflowed {
                    Some(Err(FrameError::Overflow))
                } else if self.len == 0 {
                    None
                } else {
                    match cobs::decode_in_place(&mut self.buf[..self.len]) {
                        Ok(n) => {
                            self.ready = Some(n);
                            Some(Ok(n))
                        }
                        Err(_) => Some(Err(FrameError::BadEncoding)),
                    }
                };
                if self.ready.is_none() {
                    self.len = 0;
                }
                self.overflowed = false;
                if outcome.is_some() {
                    return (i + 1, outcome);
                }
                continue;
            }
            if self.len < N {
                self.buf[self.len] = byte;
                self.len += 1;
            } else {
                self.overflowed = true;
            }
        }
        (input.len(), None)
    }

    /// Forgets any partial frame (a new connection), in place.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
        self.ready = None;
    }

    /// The decoded bytes of the last complete frame.
    pub fn frame(&self) -> &[u8] {
        &self.buf[..self.ready.unwrap_or(0)]
    }
}
