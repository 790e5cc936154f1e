//! Fulcrum's management protocol: how the host (`fulcrum` CLI) talks to the appliance's
//! MCU, over the serial console or TCP. One definition, used by the firmware and the host.
//!
//! - [`message`]: what is said — [`Request`]s and [`Response`]s, serialized with postcard.
//! - [`envelope`]: how it is carried — a zero-copy [`envelope::Envelope`] view with a
//!   header (kind, flags, session, sequence), the postcard payload and an HMAC-SHA256 tag,
//!   plus the sans-IO [`envelope::ServerSession`] / [`envelope::ClientSession`] that apply
//!   the authentication and replay rules.
//! - [`framing`]: COBS frames delimited by a zero byte, the same on serial and TCP, with a
//!   bounded [`framing::FrameReader`] that survives garbage on the line.
//!
//! ## Authentication
//! The appliance holds a pre-shared key. A connection starts with `Hello`: the client sends
//! a random nonce, the appliance answers with a fresh random session number, MACed over
//! the client's nonce so the client knows the answer is live and from a key holder. Every
//! later request carries that session number and a sequence number that must grow; the
//! appliance MACs its response over the same session and sequence. A replayed, reordered
//! or forged message is rejected and counted; nothing it asks for is done. On the network
//! every request but `Hello` must be authenticated; on the serial console (physical access)
//! authentication is optional.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Refusals carry the appliance's reply text inline (heapless, no allocator): larger than
// clippy's default for error types, by design.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

pub mod command;
pub mod envelope;
pub mod framing;
pub mod ha;
pub mod message;

pub use envelope::{AuthError, ClientSession, Envelope, Kind, ServerSession};
pub use message::{Request, Response};

/// Protocol version carried in every envelope.
pub const VERSION: u8 = 1;

/// Largest envelope (header + payload + tag) either side accepts, in bytes. The largest
/// config (256 backends, every text at its longest) and the largest status page are both
/// about 16.6 KiB (tested); the MCU keeps a few buffers of this size.
pub const MAX_ENVELOPE: usize = 20 * 1024;

/// Largest COBS-encoded frame, without the zero delimiter.
pub const MAX_FRAME: usize = cobs::max_encoding_length(MAX_ENVELOPE);

#[cfg(test)]
mod tests;
