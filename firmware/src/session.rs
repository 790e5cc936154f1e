//! One management connection (serial console or TCP), sans-IO: bytes in, bytes out.
//!
//! Frames are reassembled ([`fulcrum_mgmt::framing::FrameReader`]), checked by the
//! connection's [`ServerSession`] (authentication, replay), carried out by the
//! [`Appliance`], and the answer is framed into the output buffer. Malformed frames,
//! failed authentication and replays are answered with an error (when there is anything to
//! answer) and counted; they never reach the appliance.

use fulcrum_mgmt::envelope::{AuthError, Key, ServerSession};
use fulcrum_mgmt::framing::{self, FrameError, FrameReader};
use fulcrum_mgmt::message::{ErrorCode, ErrorReply, HelloInfo, MAX_VERSION, Request, Response};
use fulcrum_mgmt::{MAX_ENVELOPE, MAX_FRAME};
use fulcrum_model::regmap::RegisterBus;

use crate::appliance::{Appliance, VERSION};
use crate::persist::ConfigStore;

/// A management connection.
pub struct Connection {
    reader: FrameReader<MAX_FRAME>,
    session: ServerSession,
    envelope: [u8; MAX_ENVELOPE],
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new(None, true)
    }
}

impl Connection {
    /// A connection; `require_auth` on the network, not on the serial console.
    pub fn new(key: Option<Key>, require_auth: bool) -> Self {
        Connection {
            reader: FrameReader::new(),
            session: ServerSession::new(key, require_auth),
            envelope: [0; MAX_ENVELOPE],
        }
    }

    /// Consumes some of `input`; if a request was complete, writes the framed answer into
    /// `out` and returns its length. Returns (bytes of `input` used, answer length).
    /// `fresh_session` must be a new random number for each call (used by `Hello`).
    pub fn on_bytes<B: RegisterBus, S: ConfigStore>(
        &mut self,
        app: &mut Appliance<'_, B, S>,
        now: u64,
        input: &[u8],
        fresh_session: u64,
        out: &mut [u8],
    ) -> (usize, usize) {
        let (used, outcome) = self.reader.feed(input);
        let Some(outcome) = outcome else {
            return (used, 0);
        };
        let response_len = match outcome {
            Err(FrameError::Overflow) | Err(FrameError::BadEncoding) => {
                app.management.malformed += 1;
                warn!("management: undecodable frame dropped");
                self.answer_unauthenticated(ErrorCode::Malformed, "frame did not decode", out)
            }
            Ok(n) => {
                let frame = &self.reader.frame()[..n];
                match self.session.accept(frame, fresh_session.max(1)) {
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
                        let reply = Response::Error(ErrorReply::new(error.code(), error.message()));
                        self.emit(to, &reply, out)
                    }
                    Ok((request, to)) => {
                        let response = match request {
                            Request::Hello { .. } => Response::Hello(HelloInfo {
                                name: app.name(),
                                version: heapless::String::<MAX_VERSION>::try_from(VERSION)
                                    .unwrap_or_default(),
                                session: fresh_session.max(1),
                                auth_required: self.session.auth_required(),
                                generation: app.generation(),
                            }),
                            other => app.handle(now, other),
                        };
                        self.emit(to, &response, out)
                    }
                }
            }
        };
        (used, response_len)
    }

    fn emit(
        &mut self,
        to: fulcrum_mgmt::envelope::ReplyTo,
        response: &Response,
        out: &mut [u8],
    ) -> usize {
        let Ok(n) = self.session.reply(&mut self.envelope, to, response) else {
            return 0;
        };
        framing::encode(&self.envelope[..n], out).unwrap_or(0)
    }

    fn answer_unauthenticated(&mut self, code: ErrorCode, message: &str, out: &mut [u8]) -> usize {
        let reply = Response::Error(ErrorReply::new(code, message));
        let Ok(n) = fulcrum_mgmt::envelope::emit(
            &mut self.envelope,
            fulcrum_mgmt::Kind::Response,
            0,
            0,
            None,
            &reply,
        ) else {
            return 0;
        };
        framing::encode(&self.envelope[..n], out).unwrap_or(0)
    }
}
