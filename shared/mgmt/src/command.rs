//! The MCU's view of a [`Request`](crate::Request): decoded piecewise from the very same
//! bytes, so that the config an `Apply` carries is written straight into a buffer the MCU
//! keeps in static memory, one service at a time — never a whole config on its stack.
//! The host keeps using [`Request`](crate::Request); a test checks both decodings agree.

use fulcrum_model::config::{AdminState, Appliance, Config, MAX_SERVICES, Name};
use fulcrum_model::l7::{L7Settings, MAX_L7_SERVICES};
use serde::Deserialize;

use crate::message::FILTER_CHUNK;

/// A request without its config; a filter chunk borrows its bytes from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// See `Request::Hello`.
    Hello {
        /// The client's nonce.
        client_nonce: u64,
    },
    /// See `Request::Status`.
    Status {
        /// Page number.
        page: u8,
    },
    /// See `Request::GetConfig`.
    GetConfig,
    /// See `Request::Apply`; the config was decoded into the caller's buffer.
    Apply {
        /// Only validate.
        dry_run: bool,
    },
    /// See `Request::Backend`.
    Backend {
        /// Service name.
        service: Name,
        /// Backend name.
        backend: Name,
        /// New administrative state.
        state: AdminState,
    },
    /// See `Request::Events`.
    Events {
        /// Last sequence number seen.
        after: u32,
    },
    /// See `Request::FilterBegin`.
    FilterBegin {
        /// The service.
        service: Name,
        /// Module length.
        length: u32,
        /// SHA-256 of the module.
        sha256: [u8; 32],
    },
    /// See `Request::FilterChunk`.
    FilterChunk {
        /// Offset of `data` in the module.
        offset: u32,
        /// The bytes (at most `FILTER_CHUNK`).
        data: &'a [u8],
    },
    /// See `Request::FilterCommit`.
    FilterCommit,
    /// See `Request::FilterList`.
    FilterList,
    /// See `Request::FilterRemove`.
    FilterRemove {
        /// The service.
        service: Name,
    },
    /// See `Request::HaStatus`.
    HaStatus,
    /// See `Request::HaAdmin`.
    HaAdmin {
        /// What to do.
        action: crate::ha::HaAction,
    },
}

impl Command<'_> {
    /// Whether this opens a session.
    pub fn hello_nonce(&self) -> Option<u64> {
        match self {
            Command::Hello { client_nonce } => Some(*client_nonce),
            _ => None,
        }
    }
}

/// The payload did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), DecodeError> {
    postcard::take_from_bytes(bytes).map_err(|_| DecodeError)
}

/// Decodes a request payload; an `Apply`'s config goes into `config` (left partly written
/// if the payload is malformed — it is only a staging buffer).
pub fn decode<'a>(payload: &'a [u8], config: &mut Config) -> Result<Command<'a>, DecodeError> {
    // Variant indexes follow the order of `Request`'s variants.
    let (variant, rest) = take::<u32>(payload)?;
    Ok(match variant {
        0 => Command::Hello {
            client_nonce: take::<u64>(rest)?.0,
        },
        1 => Command::Status {
            page: take::<u8>(rest)?.0,
        },
        2 => Command::GetConfig,
        3 => {
            let rest = decode_config_into(rest, config)?;
            Command::Apply {
                dry_run: take::<bool>(rest)?.0,
            }
        }
        4 => {
            let ((service, backend, state), _) = take::<(Name, Name, AdminState)>(rest)?;
            Command::Backend {
                service,
                backend,
                state,
            }
        }
        5 => Command::Events {
            after: take::<u32>(rest)?.0,
        },
        6 => {
            let ((service, length, sha256), _) = take::<(Name, u32, [u8; 32])>(rest)?;
            Command::FilterBegin {
                service,
                length,
                sha256,
            }
        }
        7 => {
            // `heapless::Vec<u8, N>` is a postcard sequence of bytes: a length, then the
            // bytes, exactly what `&[u8]` borrows.
            let ((offset, data), _) = take::<(u32, &[u8])>(rest)?;
            if data.len() > FILTER_CHUNK {
                return Err(DecodeError);
            }
            Command::FilterChunk { offset, data }
        }
        8 => Command::FilterCommit,
        9 => Command::FilterList,
        10 => Command::FilterRemove {
            service: take::<Name>(rest)?.0,
        },
        11 => Command::HaStatus,
        12 => Command::HaAdmin {
            action: take::<crate::ha::HaAction>(rest)?.0,
        },
        _ => return Err(DecodeError),
    })
}

/// Decodes a postcard-encoded [`Config`] into `config`, a service at a time; returns the
/// bytes after it.
pub fn decode_config_into<'a>(
    bytes: &'a [u8],
    config: &mut Config,
) -> Result<&'a [u8], DecodeError> {
    let (appliance, rest) = take::<Appliance>(bytes)?;
    config.appliance = appliance;
    config.clear_services();
    let (count, mut rest) = take::<usize>(rest)?;
    if count > MAX_SERVICES {
        return Err(DecodeError);
    }
    for _ in 0..count {
        // The service's backends go straight into the config's backend table.
        let mut de = postcard::Deserializer::from_bytes(rest);
        config
            .deserialize_service(&mut de)
            .map_err(|_| DecodeError)?;
        rest = de.finalize().map_err(|_| DecodeError)?;
    }
    // The L7 tables one at a time too (each is a few KiB; the list would not fit the
    // MCU's stack).
    config.l7.clear();
    let (count, mut rest) = take::<usize>(rest)?;
    if count > MAX_L7_SERVICES {
        return Err(DecodeError);
    }
    for _ in 0..count {
        let (l7, r) = take::<L7Settings>(rest)?;
        config.l7.push(l7).map_err(|_| DecodeError)?;
        rest = r;
    }
    Ok(rest)
}
