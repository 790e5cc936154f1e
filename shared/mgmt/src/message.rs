//! What the host and the appliance say to each other.
//!
//! Every type is `no_std` and allocation-free (heapless), serialized with postcard. Lists
//! indexed by a data-path reason ([`StatusReport::drops`], [`StatusReport::punts`]) follow
//! the order of `fulcrum_model::counters::DropReason::ALL` / `PuntReason::ALL`, so both
//! sides name them from the same definition.

use core::net::Ipv4Addr;

use fulcrum_model::config::{AdminState, Algorithm, Config, Mode, Name, Protocol};
use fulcrum_model::tables::BackendState;
use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Services per status page (a page of 4 × 32 backends fits one envelope).
pub const STATUS_PAGE_SERVICES: usize = 4;
/// Events per [`Response::Events`] page.
pub const EVENTS_PER_PAGE: usize = 32;
/// Longest error or detail text.
pub const MAX_TEXT: usize = 160;
/// Most detail lines in an error (e.g. one per invalid config field).
pub const MAX_DETAILS: usize = 8;
/// Longest firmware version string.
pub const MAX_VERSION: usize = 24;

/// Bytes of a filter module per [`Request::FilterChunk`] (an envelope holds ~20 KiB).
pub const FILTER_CHUNK: usize = 16 * 1024;
/// Most filters an appliance holds (one per service).
pub const MAX_FILTERS: usize = 8;

/// A text of at most [`MAX_TEXT`] bytes.
pub type Text = String<MAX_TEXT>;

/// A request from the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// Opens a session; `client_nonce` is echoed in the MACed answer.
    Hello {
        /// A random number chosen by the client for this connection.
        client_nonce: u64,
    },
    /// One page of the status report.
    Status {
        /// Page number, from 0; the answer says how many there are.
        page: u8,
    },
    /// The running configuration.
    GetConfig,
    /// Validates a configuration and, unless `dry_run`, applies it atomically.
    Apply {
        /// The new configuration, complete.
        config: Config,
        /// Only validate and report what would change.
        dry_run: bool,
    },
    /// Changes a backend's administrative state.
    Backend {
        /// The service's name.
        service: Name,
        /// The backend's name.
        backend: Name,
        /// Enabled, drain or disabled.
        state: AdminState,
    },
    /// Events (health transitions, applies, ...) with sequence numbers above `after`.
    Events {
        /// The last sequence number already seen (0: from the oldest kept).
        after: u32,
    },
    /// Starts uploading a WebAssembly filter for `service` (replacing an unfinished
    /// upload). The module follows in [`Request::FilterChunk`]s, then
    /// [`Request::FilterCommit`] installs it.
    FilterBegin {
        /// The service the filter runs for.
        service: Name,
        /// The module's length in bytes.
        length: u32,
        /// SHA-256 of the whole module.
        sha256: [u8; 32],
    },
    /// The next piece of the module being uploaded.
    FilterChunk {
        /// Where `data` starts in the module: must be the bytes received so far.
        offset: u32,
        /// At most [`FILTER_CHUNK`] bytes.
        data: Vec<u8, FILTER_CHUNK>,
    },
    /// Checks the upload's length and digest and installs the filter, replacing the
    /// service's old one atomically (or refuses it and keeps the old one).
    FilterCommit,
    /// The installed filters.
    FilterList,
    /// Removes a service's filter.
    FilterRemove {
        /// The service.
        service: Name,
    },
    /// High availability: role, peers, sync lag ([`Response::Ha`]).
    HaStatus,
    /// High availability: promote, demote, or back to the configured priority.
    HaAdmin {
        /// What to do.
        action: crate::ha::HaAction,
    },
}

/// An answer from the appliance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Response {
    /// Answer to [`Request::Hello`].
    Hello(HelloInfo),
    /// One page of the status report.
    Status(StatusReport),
    /// The running configuration (`None` before the first apply).
    Config(Option<Config>),
    /// Result of [`Request::Apply`].
    Applied(ApplyReport),
    /// The request was carried out.
    Done,
    /// A page of events.
    Events(EventPage),
    /// The request was refused; nothing was changed.
    Error(ErrorReply),
    /// A filter was installed (answer to [`Request::FilterCommit`]).
    FilterInstalled(FilterInfo),
    /// The installed filters (answer to [`Request::FilterList`]).
    Filters(Vec<FilterInfo, MAX_FILTERS>),
    /// High availability status (answer to [`Request::HaStatus`] and
    /// [`Request::HaAdmin`]).
    Ha(crate::ha::HaStatus),
}

/// A [`Response`] that borrows its contents: serializes to exactly the same bytes, so the
/// MCU answers straight from its own state without copying a config or status page onto
/// its small stack. (Variant order and types must mirror [`Response`]; a test checks.)
#[derive(Debug, Clone, Copy, Serialize)]
pub enum ResponseRef<'a> {
    /// See [`Response::Hello`].
    Hello(&'a HelloInfo),
    /// See [`Response::Status`].
    Status(&'a StatusReport),
    /// See [`Response::Config`].
    Config(Option<&'a Config>),
    /// See [`Response::Applied`].
    Applied(&'a ApplyReport),
    /// See [`Response::Done`].
    Done,
    /// See [`Response::Events`].
    Events(&'a EventPage),
    /// See [`Response::Error`].
    Error(&'a ErrorReply),
    /// See [`Response::FilterInstalled`].
    FilterInstalled(&'a FilterInfo),
    /// See [`Response::Filters`].
    Filters(&'a [FilterInfo]),
    /// See [`Response::Ha`].
    Ha(&'a crate::ha::HaStatus),
}

impl Response {
    /// The borrowed form.
    pub fn as_ref(&self) -> ResponseRef<'_> {
        match self {
            Response::Hello(h) => ResponseRef::Hello(h),
            Response::Status(s) => ResponseRef::Status(s),
            Response::Config(c) => ResponseRef::Config(c.as_ref()),
            Response::Applied(a) => ResponseRef::Applied(a),
            Response::Done => ResponseRef::Done,
            Response::Events(e) => ResponseRef::Events(e),
            Response::Error(e) => ResponseRef::Error(e),
            Response::FilterInstalled(f) => ResponseRef::FilterInstalled(f),
            Response::Filters(f) => ResponseRef::Filters(f),
            Response::Ha(h) => ResponseRef::Ha(h),
        }
    }
}

/// An installed WebAssembly filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterInfo {
    /// The service it runs for.
    pub service: Name,
    /// The module's size in bytes.
    pub size: u32,
    /// SHA-256 of the module.
    pub sha256: [u8; 32],
    /// Bytes of linear memory the instance has.
    pub memory_bytes: u32,
    /// Fuel each request may use.
    pub fuel_per_request: u64,
    /// Requests run since it was installed.
    pub runs: u64,
    /// Runs that failed (trap, out of fuel, bad verdict, the filter's own error).
    pub errors: u64,
    /// Most fuel one request used.
    pub max_fuel_used: u64,
}

/// Who answered a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloInfo {
    /// The appliance's name (from its config, or "fulcrum").
    pub name: Name,
    /// Firmware version.
    pub version: String<MAX_VERSION>,
    /// The session number every later message of this connection carries.
    pub session: u64,
    /// Whether requests on this transport must be authenticated.
    pub auth_required: bool,
    /// Generation of the running configuration (0: none).
    pub generation: u32,
}

/// One page of the appliance's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Page number.
    pub page: u8,
    /// Number of pages.
    pub pages: u8,
    /// The appliance's name.
    pub name: Name,
    /// Milliseconds since the firmware started.
    pub uptime_ms: u64,
    /// Generation of the running configuration.
    pub generation: u32,
    /// Frames received from the network.
    pub rx_frames: u64,
    /// Frames sent by the MCU through the data path.
    pub from_mcu: u64,
    /// Drops, in `DropReason::ALL` order.
    pub drops: Vec<u64, 32>,
    /// Punts, in `PuntReason::ALL` order.
    pub punts: Vec<u64, 16>,
    /// Flows evicted from a full set.
    pub evictions: u64,
    /// Flows expired by the aging scan.
    pub expirations: u64,
    /// Flows moved off a backend that went down.
    pub moved_flows: u64,
    /// The management link's own counters.
    pub management: ManagementCounters,
    /// Services of this page.
    pub services: Vec<ServiceStatus, STATUS_PAGE_SERVICES>,
}

/// Counters of the management service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagementCounters {
    /// Requests carried out.
    pub requests: u64,
    /// Frames that did not decode (bad COBS, envelope, or postcard).
    pub malformed: u64,
    /// Requests without authentication where it is required, or with a wrong MAC.
    pub auth_failures: u64,
    /// Authenticated requests with a stale session or sequence number.
    pub replays: u64,
    /// Configurations rejected.
    pub rejected_configs: u64,
}

/// Status of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: Name,
    /// VIP.
    pub vip: Ipv4Addr,
    /// Protocol.
    pub protocol: Protocol,
    /// Virtual port.
    pub port: u16,
    /// Rewrite mode.
    pub mode: Mode,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Forward-path packets.
    pub packets: u64,
    /// Forward-path bytes.
    pub bytes: u64,
    /// Return-path packets.
    pub return_packets: u64,
    /// Return-path bytes.
    pub return_bytes: u64,
    /// Flows created.
    pub new_flows: u64,
    /// Response times of the service's successful health checks.
    pub check_latency: LatencyHistogram,
    /// Backends, in config order.
    pub backends: Vec<BackendStatus, 32>,
    /// The L7 proxy's counters, for a service the MCU proxies (`mode = "l7"`).
    pub l7: Option<L7Status>,
}

/// Most refusal reasons an [`L7Status`] carries.
pub const MAX_L7_REJECT_REASONS: usize = 16;

/// Counters of one L7 service's proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L7Status {
    /// Requests whose head parsed.
    pub requests: u64,
    /// Responses forwarded from backends, by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub responses: [u64; 5],
    /// Requests refused by the parser, one count per reason in the firmware's order
    /// (`fulcrum_firmware::l7::http::Reject::ALL`, whose `name()` labels them).
    pub rejected: Vec<u64, MAX_L7_REJECT_REASONS>,
    /// Requests answered 429 by the rate limit.
    pub rate_limited: u64,
    /// Requests answered 403 by a deny rule.
    pub denied: u64,
    /// Requests a filter denied.
    pub filter_denied: u64,
    /// Filter runs that failed (trap, fuel, bad verdict).
    pub filter_failures: u64,
    /// Requests answered 503: no backend of the pool could take them.
    pub no_backend: u64,
    /// Requests answered 502/504: the backend did not connect or answer properly.
    pub backend_errors: u64,
    /// Requests that went to their persistence cookie's backend.
    pub persisted: u64,
    /// Connection attempts (SYNs) dropped while every worker of the service was busy
    /// (the client retries).
    pub dropped_syns: u64,
    /// Requests sent on a backend connection kept from the client connection's previous
    /// request (no new TCP handshake to the backend).
    pub backend_reused: u64,
}

/// Upper bounds of the check-latency buckets, µs (a last, unbounded bucket follows).
pub const LATENCY_BUCKETS_US: [u32; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
];

/// A histogram of check response times (Prometheus-style, per bucket, not cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Counts per bucket of [`LATENCY_BUCKETS_US`], then the count above the last bound.
    pub buckets: [u64; 13],
    /// Sum of all observations, µs.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&mut self, us: u32) {
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i] += 1;
        self.sum_us += u64::from(us);
        self.count += 1;
    }
}

/// Status of one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// Name.
    pub name: Name,
    /// Address.
    pub address: Ipv4Addr,
    /// Port traffic is sent to.
    pub port: u16,
    /// Administrative state.
    pub admin: AdminState,
    /// State in the data path (up, down, drain, disabled).
    pub state: BackendState,
    /// Health as the checker sees it.
    pub health: HealthStatus,
    /// Configured weight.
    pub weight: u16,
    /// Weight in the data path (0 while down; ramps during slow start).
    pub effective_weight: u16,
    /// Flows currently on the backend.
    pub active_flows: u32,
    /// Flows ever assigned.
    pub total_flows: u64,
    /// Packets sent to it.
    pub packets: u64,
    /// Bytes sent to it.
    pub bytes: u64,
}

/// What the health checker knows of a backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// Whether the checker considers it up.
    pub up: bool,
    /// Milliseconds since boot when it last changed state (or was first checked).
    pub since_ms: u64,
    /// Response time of the last successful check, in µs.
    pub last_latency_us: Option<u32>,
    /// Why the last check failed, if it did.
    pub last_failure: Option<CheckFailure>,
    /// Checks passed.
    pub checks_passed: u64,
    /// Checks failed.
    pub checks_failed: u64,
}

/// Why a health check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "snake_case")]
pub enum CheckFailure {
    /// The connection was refused or reset.
    Refused,
    /// No answer within the check timeout.
    Timeout,
    /// The peer closed before a complete answer.
    Closed,
    /// The answer did not parse.
    BadResponse,
    /// HTTP answered with another status.
    WrongStatus(u16),
    /// HTTP body did not contain the expected text.
    BodyMismatch,
    /// The local stack could not open a connection (no socket, no route).
    Local,
}

impl CheckFailure {
    /// A short description for logs and the CLI.
    pub const fn describe(self) -> &'static str {
        match self {
            CheckFailure::Refused => "connection refused",
            CheckFailure::Timeout => "timeout",
            CheckFailure::Closed => "connection closed early",
            CheckFailure::BadResponse => "bad response",
            CheckFailure::WrongStatus(_) => "unexpected HTTP status",
            CheckFailure::BodyMismatch => "body mismatch",
            CheckFailure::Local => "local error",
        }
    }
}

/// What an apply changed (or would change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Generation now running (unchanged for a dry run or an identical config).
    pub generation: u32,
    /// Only validated.
    pub dry_run: bool,
    /// Whether the running configuration changed.
    pub changed: bool,
    /// Register words written to the data path.
    pub words_written: u32,
    /// Ring entries written (delta against the previous rings).
    pub ring_entries_written: u32,
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// One line saying what was wrong.
    pub message: Text,
    /// Details (e.g. each invalid field of a config).
    pub details: Vec<Text, MAX_DETAILS>,
}

impl ErrorReply {
    /// An error with a message and no details (the message is cut to [`MAX_TEXT`]).
    pub fn new(code: ErrorCode, message: &str) -> Self {
        ErrorReply {
            code,
            message: truncated(message),
            details: Vec::new(),
        }
    }
}

/// Cuts `text` to [`MAX_TEXT`] bytes at a character boundary.
pub fn truncated(text: &str) -> Text {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Text::new();
    let _ = out.push_str(&text[..end]);
    out
}

/// Kinds of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// The message did not decode.
    Malformed,
    /// This transport requires authentication.
    AuthRequired,
    /// The MAC did not verify (wrong key or altered message).
    AuthFailed,
    /// Stale session or sequence number.
    Replay,
    /// The configuration is invalid; nothing was applied.
    InvalidConfig,
    /// No such service or backend.
    NotFound,
    /// The answer would not fit one message.
    TooLarge,
    /// The appliance failed to carry out a valid request.
    Internal,
    /// A WebAssembly filter (or its upload) was refused; the old filter stays.
    InvalidFilter,
    /// This firmware was built without the feature the request needs.
    Unsupported,
}

/// A page of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    /// Events, oldest first.
    pub events: Vec<Event, EVENTS_PER_PAGE>,
    /// Events between `after` and the first returned that were overwritten.
    pub lost: u32,
    /// The newest sequence number the appliance has.
    pub newest: u32,
}

/// Something that happened on the appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number (from 1, grows by one per event).
    pub seq: u32,
    /// Milliseconds since boot.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// Kinds of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The firmware started; `restored` says whether a saved config was loaded.
    Boot {
        /// A saved configuration was loaded and applied.
        restored: bool,
    },
    /// A backend passed `rise` checks and is up.
    BackendUp {
        /// Service name.
        service: Name,
        /// Backend name.
        backend: Name,
        /// Latency of the check that brought it up, µs.
        latency_us: u32,
    },
    /// A backend failed `fall` checks and is down.
    BackendDown {
        /// Service name.
        service: Name,
        /// Backend name.
        backend: Name,
        /// Why the last check failed.
        failure: CheckFailure,
    },
    /// A backend's administrative state changed.
    AdminChanged {
        /// Service name.
        service: Name,
        /// Backend name.
        backend: Name,
        /// New state.
        state: AdminState,
    },
    /// A configuration was applied.
    ConfigApplied {
        /// Its generation.
        generation: u32,
    },
    /// A configuration was rejected.
    ConfigRejected,
    /// A management request failed authentication.
    AuthFailure,
    /// Saving the configuration failed (it runs but will not survive a reboot).
    PersistFailed,
    /// A WebAssembly filter was installed (or replaced) for a service.
    FilterInstalled {
        /// The service.
        service: Name,
    },
    /// A service's filter was removed.
    FilterRemoved {
        /// The service.
        service: Name,
    },
    /// A filter upload was refused (the service's old filter, if any, stays).
    FilterRejected {
        /// The service.
        service: Name,
    },
    /// The VRRP role changed (high availability).
    HaRoleChanged {
        /// Previous role.
        from: crate::ha::HaRole,
        /// New role.
        to: crate::ha::HaRole,
        /// Why.
        cause: crate::ha::HaCause,
    },
    /// This node now holds a peer's complete flow table (its snapshot finished).
    HaSynced {
        /// The peer.
        peer: Ipv4Addr,
    },
    /// A full resync (snapshot) towards a peer began (a new session, or lost changes).
    HaResync {
        /// The peer.
        peer: Ipv4Addr,
    },
    /// Another master was heard while this node was master (split brain; the election
    /// resolves it by priority, then address).
    HaSplitBrain {
        /// The other master.
        peer: Ipv4Addr,
        /// Its priority.
        priority: u8,
    },
}
