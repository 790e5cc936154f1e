//! One management connection (serial console or TCP), sans-IO: bytes in, bytes out.
//!
//! Frames are reassembled ([`fulcrum_mgmt::framing::FrameReader`]), checked by the
//! connection's [`ServerSession`] (authentication, replay), carried out by the
//! [`Appliance`], and the answer is framed into [`Scratch::out`]. Malformed frames,
//! failed authentication and replays are answered with an error and counted; they never
//! reach the appliance.

use fulcrum_mgmt::command::Command;
use fulcrum_mgmt::envelope::{AuthError, Key, ReplyTo, ServerSession};
use fulcrum_mgmt::framing::{self, FrameError, FrameReader};
use fulcrum_mgmt::message::{ErrorCode, ErrorReply, HelloInfo, MAX_VERSION, ResponseRef};
use fulcrum_mgmt::{MAX_ENVELOPE, MAX_FRAME};
use fulcrum_model::config::Config;
use fulcrum_model::regmap::RegisterBus;

use crate::appliance::{Appliance, VERSION};
use crate::persist::ConfigStore;

/// A management connection: the frame being received and the session state.
pub struct Connection {
    reader: FrameReader<MAX_FRAME>,
    session: ServerSession,
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new(None, true)
    }
}

/// Working memory for handling one request, shared by all connections (requests are
/// handled one at a time).
pub struct Scratch {
    envelope: [u8; MAX_ENVELOPE],
    /// The framed answer of the last [`Connection::on_bytes`].
    pub out: [u8; MAX_FRAME + 1],
    /// The config an `Apply` carries, decoded here a service at a time.
    config: Config,
}

impl Scratch {
    /// Zeroed.
    pub const fn new() -> Self {
        Scratch {
            envelope: [0; MAX_ENVELOPE],
            out: [0; MAX_FRAME + 1],
            config: Config::empty(),
        }
    }

    /// The staging config (the board also uses it to load the saved config at boot).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// A connection; `require_auth` on the network, not on the serial console. Const, so a
    /// board can keep its connections in statics (never built on the stack).
    pub const fn new(key: Option<Key>, require_auth: bool) -> Self {
        Connection {
            reader: FrameReader::new(),
            session: ServerSession::new(key, require_auth),
        }
    }

    /// Starts over for a new peer, in place (no connection-sized temporary).
    pub fn reset(&mut self, key: Option<Key>, require_auth: bool) {
        self.reader.clear();
        self.session = ServerSession::new(key, require_auth);
    }

    /// Consumes some of `input`; if a request was complete, writes the framed answer into
    /// `scratch.out`. Returns (bytes of `input` used, answer length). `fresh_session` must
    /// be a new random number for each call (used by `Hello`).
    pub fn on_bytes<B: RegisterBus, S: ConfigStore>(
        &mut self,
        app: &mut Appliance<'_, B, S>,
        now: u64,
        input: &[u8],
        fresh_session: u64,
        scratch: &mut Scratch,
    ) -> (usize, usize) {
        let Scratch {
            envelope,
            out,
            config,
        } = scratch;
        let (used, outcome) = self.reader.feed(input);
        let Some(outcome) = outcome else {
            return (used, 0);
        };
        let len = match outcome {
            Err(FrameError::Overflow) | Err(FrameError::BadEncoding) => {
                app.management.malformed += 1;
                warn!("management: undecodable frame dropped");
                let reply = ErrorReply::new(ErrorCode::Malformed, "frame did not decode");
                emit(
                    None,
                    ReplyTo::unauthenticated(),
                    ResponseRef::Error(&reply),
                    envelope,
                    out,
                )
            }
            Ok(n) => {
                let frame = &self.reader.frame()[..n];
                match self
                    .session
                    .accept_command(frame, fresh_session.max(1), config)
                {
                    Err((error, to)) => {
                        match error {
                            AuthError::Malformed => app.management.malformed += 1,
                            AuthError::Replay => app.management.replays += 1,
                            AuthError::Required | AuthError::BadTag => {
                                app.management.auth_failures += 1;
                                app.auth_failure(now);
                            }
                        }
                        warn!("management: request refused: {}", error.message());
                        let reply = ErrorReply::new(error.code(), error.message());
                        emit(
                            Some(&self.session),
                            to,
                            ResponseRef::Error(&reply),
                            envelope,
                            out,
                        )
                    }
                    Ok((Command::Hello { .. }, to)) => {
                        let hello = HelloInfo {
                            name: app.name(),
                            version: heapless::String::<MAX_VERSION>::try_from(VERSION)
                                .unwrap_or_default(),
                            session: fresh_session.max(1),
                            auth_required: self.session.auth_required(),
                            generation: app.generation(),
                        };
                        emit(
                            Some(&self.session),
                            to,
                            ResponseRef::Hello(&hello),
                            envelope,
                            out,
                        )
                    }
                    Ok((command, to)) => {
                        let session = &self.session;
                        app.handle(now, &command, config, |response| {
                            emit(Some(session), to, response, envelope, out)
                        })
                    }
                }
            }
        };
        (used, len)
    }
}

fn emit(
    session: Option<&ServerSession>,
    to: ReplyTo,
    response: ResponseRef<'_>,
    envelope: &mut [u8],
    out: &mut [u8],
) -> usize {
    let n = match session {
        Some(s) => s.reply_ref(envelope, to, response),
        None => fulcrum_mgmt::envelope::emit(
            envelope,
            fulcrum_mgmt::Kind::Response,
            0,
            0,
            None,
            &response,
        ),
    };
    let Ok(n) = n else { return 0 };
    framing::encode(&envelope[..n], out).unwrap_or(0)
}
