//! Fulcrum's WebAssembly filter ABI, version 1: the specification, and the one encoder and
//! decoder both sides use (the firmware's runtime in `fulcrum-firmware::filter`, and
//! filters written in Rust with the [`guest`] SDK).
//!
//! A filter is a WebAssembly module the MCU runs for each HTTP request of an L7 service,
//! after parsing the request and before choosing a backend. It sees the request line, the
//! headers, a prefix of the body and the client's address, and answers with a [`Verdict`]:
//! allow, deny with a status, or route to a named pool, plus header edits.
//!
//! # The module
//!
//! - **No imports.** The host provides none; a module that imports anything is refused at
//!   install time. A filter is a pure function of its input and its own memory.
//! - **One memory, exported as `memory`**, 32-bit, at most the appliance's memory cap
//!   (64 KiB by default; its `minimum` times its page size counts). Build with the
//!   custom-page-sizes proposal (page size 1) to size it exactly; a module with 64 KiB
//!   pages needs at least one page. `memory.grow` beyond the cap fails (returns -1).
//! - **These exported functions** (names are the `EXPORT_*` constants):
//!
//!   | export | type | meaning |
//!   |---|---|---|
//!   | `fulcrum_abi_version` | `() -> i32` | [`ABI_VERSION`]; anything else is refused |
//!   | `fulcrum_input` | `() -> i32` | address of the input buffer in `memory` |
//!   | `fulcrum_input_capacity` | `() -> i32` | its size in bytes |
//!   | `fulcrum_output` | `() -> i32` | address of the output buffer |
//!   | `fulcrum_output_capacity` | `() -> i32` | its size in bytes |
//!   | `fulcrum_on_request` | `(len: i32) -> i32` | handle the request in `input[..len]` |
//!
//! A start function, if any, runs once at install time.
//!
//! # What the host does
//!
//! At install: validates the module (on the MCU, with wasmi's validator), checks the
//! memory and exports above, instantiates it with the memory cap, runs the start function
//! and calls the five query exports (under a setup fuel budget), and checks that both
//! buffers lie inside `memory`. Only then does the new filter replace the old one.
//!
//! Per request: encodes the request (below) into the input buffer, sets the fuel budget,
//! calls `fulcrum_on_request(len)`. A return value `n >= 0` means the verdict is in
//! `output[..n]`; a negative value is the filter's own error (the [`guest`] SDK uses the
//! `STATUS_*` codes). A trap, running out of fuel, `n` beyond the output buffer, or a
//! verdict that does not decode are errors; the proxy then applies the service's
//! fail-open / fail-closed policy. Memory persists between requests (a filter may keep
//! counters), so a filter must not rely on it being zeroed.
//!
//! # Request encoding (host to filter)
//!
//! All integers little-endian; lengths count bytes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | client IPv4 address (network order) |
//! | 4 | 1 | HTTP minor version (`HTTP/1.x`) |
//! | 5 | 1 | flags: bit 0 = the host cut the body prefix to fit the buffer; other bits 0 |
//! | 6 | 2 | number of headers |
//! | 8 | 2 + m | method: length, then bytes (UTF-8) |
//! | | 2 + p | path (request target): length, then bytes (UTF-8) |
//! | | per header | name: 2-byte length + bytes (ASCII); value: 2-byte length + bytes |
//! | | 4 + b | body prefix: length, then bytes |
//!
//! Nothing may follow the body prefix. Headers are in request order, names as received.
//! See [`request::encode`] and [`request::Request::parse`].
//!
//! # Verdict encoding (filter to host)
//!
//! | size | field |
//! |---|---|
//! | 1 | action: 0 allow, 1 deny, 2 route |
//! | 2 | deny only: status, 200..=599 |
//! | 1 + n | route only: pool name length (1..=32), then the name (`A-Z a-z 0-9 . _ -`) |
//! | 1 | number of header edits (at most [`MAX_EDITS`]) |
//! | per edit | op (0 add, 1 set = replace all of that name or add, 2 remove); name: 1-byte length (1..=64) + an RFC 9110 token; value: 2-byte length (at most [`MAX_HEADER_VALUE`]) + bytes without control characters other than tab (empty for remove) |
//!
//! Nothing may follow the last edit. Edits to the framing and connection headers
//! (`content-length`, `transfer-encoding`, `connection`, `keep-alive`, `te`, `trailer`,
//! `upgrade`) are refused: a filter must not be able to desynchronise the proxy and the
//! backend (request smuggling). See [`Verdict::encode`] and [`Verdict::decode`].
//!
//! # Versioning
//!
//! [`ABI_VERSION`] changes whenever either encoding or an export changes meaning; the host
//! refuses modules of another version at install time, so a filter never sees an
//! encoding it was not built for.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod guest;
pub mod request;
pub mod verdict;

pub use request::{FilterRequest, Request};
pub use verdict::{Action, EditOp, HeaderEdit, Verdict, VerdictError};

/// The ABI version this crate implements.
pub const ABI_VERSION: u32 = 1;

/// Export: `() -> i32`, the module's ABI version.
pub const EXPORT_ABI_VERSION: &str = "fulcrum_abi_version";
/// Export: `() -> i32`, the input buffer's address.
pub const EXPORT_INPUT: &str = "fulcrum_input";
/// Export: `() -> i32`, the input buffer's capacity.
pub const EXPORT_INPUT_CAPACITY: &str = "fulcrum_input_capacity";
/// Export: `() -> i32`, the output buffer's address.
pub const EXPORT_OUTPUT: &str = "fulcrum_output";
/// Export: `() -> i32`, the output buffer's capacity.
pub const EXPORT_OUTPUT_CAPACITY: &str = "fulcrum_output_capacity";
/// Export: `(len: i32) -> i32`, handles one request.
pub const EXPORT_ON_REQUEST: &str = "fulcrum_on_request";
/// Export: the module's memory.
pub const EXPORT_MEMORY: &str = "memory";

/// Most header edits in one verdict.
pub const MAX_EDITS: usize = 8;
/// Longest header name a verdict may set.
pub const MAX_HEADER_NAME: usize = 64;
/// Longest header value a verdict may set.
pub const MAX_HEADER_VALUE: usize = 192;
/// Longest pool name.
pub const MAX_POOL: usize = 32;
/// The longest verdict encoding: route with the longest pool name and every edit at its
/// longest. A guest output buffer of this size never overflows.
pub const MAX_VERDICT_LEN: usize =
    1 + 1 + MAX_POOL + 1 + MAX_EDITS * (1 + 1 + MAX_HEADER_NAME + 2 + MAX_HEADER_VALUE);

/// `fulcrum_on_request` status: `len` was negative or beyond the input buffer.
pub const STATUS_BAD_LENGTH: i32 = -1;
/// `fulcrum_on_request` status: the input did not decode as a request.
pub const STATUS_BAD_REQUEST: i32 = -2;
/// `fulcrum_on_request` status: the verdict did not fit the output buffer.
pub const STATUS_VERDICT_TOO_LARGE: i32 = -3;
