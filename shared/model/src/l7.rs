//! L7 (HTTP/1.1) services: their settings in the config, and the request-level decisions
//! the MCU's reverse proxy makes, written once here so the firmware, the host's tools and
//! tests agree on them.
//!
//! A service with `mode = "l7"` is punted whole by the FPGA; the MCU terminates the
//! client's TCP connection, reads each request and forwards it to a backend of the
//! service. An `[[l7]]` table of the config, naming the service, says how:
//!
//! ```toml
//! [[l7]]
//! service = "app"
//! cookie = "FULCRUM"          # cookie persistence (insert), optional
//! forwarded = true            # add X-Forwarded-For and Forwarded (default)
//! rate_limit = { rate = 50, burst = 100 }   # per client address, optional
//! filter_failure = "open"     # a WebAssembly filter that fails: "open" (default) or "closed"
//! [[l7.route]]                # first match wins; all conditions given must hold
//! host = "api.example.com"
//! path_prefix = "/v1/"
//! method = "GET"
//! header = { name = "x-canary", contains = "yes" }
//! pool = "api"                # the service's backends with `pool = "api"`
//! [[l7.deny]]                 # answered 403; all conditions given must hold
//! path_prefix = "/admin"
//! ```
//!
//! Decisions, in the order the proxy takes them for a request that parsed cleanly:
//!
//! 1. **rate limit** ([`RateLimiter`]): a token bucket per client address; an empty bucket
//!    answers 429;
//! 2. **deny** ([`L7Settings::denied`]): the first deny rule that matches answers 403;
//! 3. **filter** (WebAssembly, on the MCU): may deny, route to a pool or set headers;
//! 4. **route** ([`L7Settings::route`]): the first route that matches names the pool;
//!    no match is the *default pool*, the backends without a `pool`;
//! 5. **persistence**: a request carrying the service's cookie whose value is the
//!    [`cookie_token`] of a backend of the pool that takes persistent traffic (up, or
//!    draining) goes there; otherwise the pool's algorithm chooses (the model's
//!    [`crate::select`]) and the response carries a `Set-Cookie` with the new backend's
//!    token.
//!
//! Paths are matched after [`normalize_path`] (percent-decoding of unreserved characters
//! and removal of dot segments), so `/%61dmin` and `/x/../admin` meet a deny rule for
//! `/admin` as `/admin` does. Host matching is case-insensitive and ignores a port.

use core::fmt;
use core::net::Ipv4Addr;

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Millis, Mode, Name, Protocol, ValidationErrors, bounded_vec};

/// Most `[[l7]]` tables (and so L7 services) one appliance holds.
pub const MAX_L7_SERVICES: usize = 4;
/// Most routes, and most deny rules, of one L7 service.
pub const MAX_L7_RULES: usize = 4;
/// Most named pools of one L7 service (besides the default pool).
pub const MAX_NAMED_POOLS: usize = 4;
/// Longest pool name.
pub const MAX_POOL_NAME: usize = 12;
/// Longest text a rule matches (host, path prefix, header value).
pub const MAX_MATCH_TEXT: usize = 40;
/// Longest header name a rule matches.
pub const MAX_HEADER_NAME: usize = 32;
/// Longest persistence cookie name.
pub const MAX_COOKIE_NAME: usize = 24;
/// Longest method a rule matches.
pub const MAX_METHOD: usize = 12;

/// A pool name: the `pool` of backends, and what routes and filters name.
pub type PoolName = String<MAX_POOL_NAME>;

/// How the L7 proxy handles one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7Settings {
    /// The service (of mode `l7`) these settings are for.
    pub service: Name,
    /// Cookie persistence: the cookie the appliance inserts and honours.
    #[serde(default)]
    pub cookie: Option<String<MAX_COOKIE_NAME>>,
    /// Add `X-Forwarded-For` and `Forwarded: for=` with the client's address.
    #[serde(default = "yes")]
    pub forwarded: bool,
    /// Requests per second per client address.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// What happens to a request whose WebAssembly filter fails (traps, runs out of fuel).
    #[serde(default)]
    pub filter_failure: FilterFailure,
    /// How long a client may take to send a request's head (and an idle keep-alive
    /// connection may stay open).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Millis,
    /// How long a backend may take to accept the connection and answer with a head.
    #[serde(default = "default_backend_timeout")]
    pub backend_timeout: Millis,
    /// Routes to pools, tried in order.
    #[serde(default, rename = "route", deserialize_with = "bounded_vec")]
    pub routes: Vec<Rule, MAX_L7_RULES>,
    /// Requests answered 403, tried in order.
    #[serde(default, rename = "deny", deserialize_with = "bounded_vec")]
    pub deny: Vec<Rule, MAX_L7_RULES>,
}

impl L7Settings {
    /// The settings of an L7 service without an `[[l7]]` table (no service name).
    pub const DEFAULT: L7Settings = L7Settings {
        service: String::new(),
        cookie: None,
        forwarded: true,
        rate_limit: None,
        filter_failure: FilterFailure::Open,
        request_timeout: Millis(10_000),
        backend_timeout: Millis(5_000),
        routes: Vec::new(),
        deny: Vec::new(),
    };
}

fn yes() -> bool {
    true
}

fn default_request_timeout() -> Millis {
    L7Settings::DEFAULT.request_timeout
}

fn default_backend_timeout() -> Millis {
    L7Settings::DEFAULT.backend_timeout
}

/// A token bucket per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second allowed in the long run.
    pub rate: u32,
    /// Requests allowed at once (the bucket's size).
    pub burst: u32,
}

/// What a failing filter means for the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum FilterFailure {
    /// The request goes on as if there were no filter.
    #[default]
    Open,
    /// The request is answered 503.
    Closed,
}

/// A header condition: the header is present and its value contains the text
/// (ASCII case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: String<MAX_HEADER_NAME>,
    /// Text the value contains; empty matches any value.
    #[serde(default)]
    pub contains: String<MAX_MATCH_TEXT>,
}

/// A route or deny rule: the conditions given must all hold. A route names its `pool`;
/// a deny rule has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The request's host (from an absolute URI, else `Host`), case-insensitive, port ignored.
    #[serde(default)]
    pub host: Option<String<MAX_MATCH_TEXT>>,
    /// The normalized path starts with this.
    #[serde(default)]
    pub path_prefix: Option<String<MAX_MATCH_TEXT>>,
    /// The method, exactly (methods are case-sensitive).
    #[serde(default)]
    pub method: Option<String<MAX_METHOD>>,
    /// A header condition.
    #[serde(default)]
    pub header: Option<HeaderMatch>,
    /// Routes: the pool (backends of the service with this `pool`).
    #[serde(default)]
    pub pool: Option<PoolName>,
}

/// What the rules look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a str,
    /// The path as normalized by [`normalize_path`] (no query).
    pub path: &'a str,
    /// The host, without port.
    pub host: Option<&'a str>,
    /// The headers, in order, as (name, value).
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl RequestView<'_> {
    /// Values of header `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

impl Rule {
    /// Whether every condition given holds for `req`.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(host) = &self.host
            && !req.host.is_some_and(|h| h.eq_ignore_ascii_case(host))
        {
            return false;
        }
        if let Some(prefix) = &self.path_prefix
            && !req.path.starts_with(prefix.as_str())
        {
            return false;
        }
        if let Some(method) = &self.method
            && req.method != method.as_str()
        {
            return false;
        }
        if let Some(h) = &self.header
            && !req
                .header_values(&h.name)
                .any(|v| contains_ignore_case(v, h.contains.as_bytes()))
        {
            return false;
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.path_prefix.is_none()
            && self.method.is_none()
            && self.header.is_none()
    }
}

/// Whether `haystack` contains `needle`, ASCII case-insensitively.
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

impl L7Settings {
    /// The index of the first deny rule matching `req`.
    pub fn denied(&self, req: &RequestView<'_>) -> Option<usize> {
        self.deny.iter().position(|d| d.matches(req))
    }

    /// The pool of the first route matching `req`; `None` is the default pool.
    pub fn route(&self, req: &RequestView<'_>) -> Option<&PoolName> {
        self.routes
            .iter()
            .find(|r| r.matches(req))
            .and_then(|r| r.pool.as_ref())
    }
}

impl Config {
    /// The L7 settings of service `name`, if it has any.
    pub fn l7_settings(&self, name: &str) -> Option<&L7Settings> {
        self.l7.iter().find(|l| l.service == name)
    }
}

/// The value of the persistence cookie for backend `backend` of service `service`: eight
/// hex digits of the FNV-1a hash of `service/backend`. Opaque to clients (it names no
/// address), the same on every appliance (so it survives a failover), and stable across
/// config changes that keep the names.
pub fn cookie_token(service: &str, backend: &str) -> [u8; 8] {
    let mut h: u32 = 0x811c_9dc5;
    for b in service
        .bytes()
        .chain(core::iter::once(b'/'))
        .chain(backend.bytes())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        let nibble = (h >> (28 - 4 * i)) & 0xf;
        *o = b"0123456789abcdef"[nibble as usize];
    }
    out
}

/// The value of cookie `name` in a `Cookie` header value (`a=1; b=2`), if present.
pub fn cookie_value<'v>(header: &'v [u8], name: &str) -> Option<&'v [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (trim(&pair[..eq]) == name.as_bytes()).then(|| {
            let v = trim(&pair[eq + 1..]);
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v)
        })
    })
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

/// Why [`normalize_path`] refused a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PathError {
    /// Longer than the output buffer.
    TooLong,
    /// Not an origin-form path (does not start with `/`), or a bad percent escape.
    Malformed,
    /// Dot segments climb above the root.
    AboveRoot,
}

/// Writes the path of a request target (`/a/b?q` → `/a/b`) into `out` normalized for
/// matching: percent escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded,
/// other escapes kept with upper-case hex, dot segments removed (RFC 3986 §5.2.4).
/// Returns the length written. The request itself is forwarded unchanged.
pub fn normalize_path(target: &[u8], out: &mut [u8]) -> Result<usize, PathError> {
    let path = target
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or(&[]);
    if path.first() != Some(&b'/') {
        return Err(PathError::Malformed);
    }
    // Decode into `out` first, then remove dot segments in place.
    let mut n = 0;
    let mut i = 0;
    while i < path.len() {
        let mut emit = |bytes: &[u8]| -> Result<(), PathError> {
            let end = n + bytes.len();
            out.get_mut(n..end)
                .ok_or(PathError::TooLong)?
                .copy_from_slice(bytes);
            n = end;
            Ok(())
        };
        if path[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(hi), Some(lo)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::Malformed);
            };
            let byte = (hi * 16 + lo) as u8;
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                emit(&[byte])?;
            } else {
                let upper = |d: u32| b"0123456789ABCDEF"[d as usize];
                emit(&[b'%', upper(hi), upper(lo)])?;
            }
            i += 3;
        } else {
            emit(&[path[i]])?;
            i += 1;
        }
    }
    // Dot-segment removal over segments of out[..n], writing to out[..w] (w <= read).
    let mut w = 0;
    let mut r = 0;
    while r < n {
        // out[r] is '/': the segment runs to the next '/'.
        let end = out[r + 1..n]
            .iter()
            .position(|&b| b == b'/')
            .map_or(n, |p| r + 1 + p);
        let seg_len = end - r - 1;
        let is_dot = seg_len == 1 && out[r + 1] == b'.';
        let is_dotdot = seg_len == 2 && out[r + 1] == b'.' && out[r + 2] == b'.';
        if is_dot || is_dotdot {
            if is_dotdot {
                if w == 0 {
                    return Err(PathError::AboveRoot);
                }
                // Drop the last written segment.
                while w > 0 && out[w - 1] != b'/' {
                    w -= 1;
                }
                w -= 1;
            }
            if end == n {
                // A trailing dot segment leaves the directory: keep its slash.
                out[w] = b'/';
                w += 1;
            }
        } else {
            out.copy_within(r..end, w);
            w += end - r;
        }
        r = end;
    }
    if w == 0 {
        out[0] = b'/';
        w = 1;
    }
    Ok(w)
}

/// Per-client token buckets of one rate limit, in a fixed table of `N` clients; a new
/// client takes the entry used least recently (ties: the lowest index).
#[derive(Debug, Clone)]
pub struct RateLimiter<const N: usize> {
    entries: [(Ipv4Addr, u64, u64); N],
    used: usize,
}

/// Tokens are counted in thousandths so that refill is exact in integer milliseconds.
const MILLI: u64 = 1000;

impl<const N: usize> RateLimiter<N> {
    /// An empty table.
    pub const fn new() -> Self {
        RateLimiter {
            entries: [(Ipv4Addr::UNSPECIFIED, 0, 0); N],
            used: 0,
        }
    }

    /// Forgets every client (the limit changed).
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// Whether `client` may send a request at `now` (ms) under `limit`; takes a token if so.
    pub fn allow(&mut self, limit: RateLimit, client: Ipv4Addr, now: u64) -> bool {
        let capacity = u64::from(limit.burst.max(1)) * MILLI;
        let index = match self.entries[..self.used].iter().position(|e| e.0 == client) {
            Some(i) => i,
            None => {
                let i = if self.used < N {
                    self.used += 1;
                    self.used - 1
                } else {
                    let mut oldest = 0;
                    for (i, e) in self.entries.iter().enumerate() {
                        if e.2 < self.entries[oldest].2 {
                            oldest = i;
                        }
                    }
                    oldest
                };
                self.entries[i] = (client, capacity, now);
                i
            }
        };
        let entry = &mut self.entries[index];
        let elapsed = now.saturating_sub(entry.2);
        entry.1 = entry
            .1
            .saturating_add(elapsed.saturating_mul(u64::from(limit.rate)))
            .min(capacity);
        entry.2 = now;
        if entry.1 >= MILLI {
            entry.1 -= MILLI;
            true
        } else {
            false
        }
    }
}

impl<const N: usize> Default for RateLimiter<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for FilterFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterFailure::Open => "open",
            FilterFailure::Closed => "closed",
        })
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

impl Config {
    /// Validates the `[[l7]]` tables and the backends' pools (part of [`Config::validate`]).
    pub(crate) fn validate_l7(&self, errors: &mut ValidationErrors) {
        for (index, service) in self.services.iter().enumerate() {
            if service.mode == Mode::L7 && service.protocol != Protocol::Tcp {
                errors.push(
                    format_args!("service[{index}].protocol"),
                    format_args!(
                        "mode l7 proxies HTTP/1.1, which runs over tcp; use protocol = \"tcp\""
                    ),
                );
            }
            for (b, backend) in self.backends(service).iter().enumerate() {
                if let Some(pool) = &backend.pool {
                    if service.mode != Mode::L7 {
                        errors.push(
                            format_args!("service[{index}].backend[{b}].pool"),
                            format_args!(
                                "pools are for mode l7 services (mode is {}); remove pool",
                                service.mode
                            ),
                        );
                    } else if !is_token(pool) {
                        errors.push(
                            format_args!("service[{index}].backend[{b}].pool"),
                            format_args!("pool name \"{pool}\" must be letters, digits or -._~"),
                        );
                    }
                }
                if service.mode == Mode::L7
                    && let Some((other, _)) =
                        self.backends(service)[..b]
                            .iter()
                            .enumerate()
                            .find(|(_, o)| {
                                cookie_token(&service.name, &o.name)
                                    == cookie_token(&service.name, &backend.name)
                            })
                {
                    errors.push(
                        format_args!("service[{index}].backend[{b}].name"),
                        format_args!("backend names \"{}\" and \"{}\" (backend[{other}]) give the same persistence cookie; rename one", backend.name, self.backends(service)[other].name),
                    );
                }
            }
        }
        for (index, service) in self.services.iter().enumerate() {
            let mut named: Vec<&PoolName, { MAX_NAMED_POOLS + 1 }> = Vec::new();
            for (b, backend) in self.backends(service).iter().enumerate() {
                if let Some(pool) = &backend.pool
                    && !named.contains(&pool)
                    && named.push(pool).is_err()
                {
                    errors.push(
                        format_args!("service[{index}].backend[{b}].pool"),
                        format_args!("pool \"{pool}\" is one more than the {MAX_NAMED_POOLS} named pools an L7 service can have"),
                    );
                    break;
                }
            }
        }
        let l7_services = self.services.iter().filter(|s| s.mode == Mode::L7).count();
        if l7_services > MAX_L7_SERVICES {
            errors.push(
                format_args!("service"),
                format_args!(
                    "{l7_services} services have mode l7; the MCU proxies at most {MAX_L7_SERVICES}"
                ),
            );
        }
        for (i, l7) in self.l7.iter().enumerate() {
            let Some(service) = self.services.iter().find(|s| s.name == l7.service) else {
                errors.push(
                    format_args!("l7[{i}].service"),
                    format_args!(
                        "no service is named \"{}\"; name a service with mode = \"l7\"",
                        l7.service
                    ),
                );
                continue;
            };
            if service.mode != Mode::L7 {
                errors.push(
                    format_args!("l7[{i}].service"),
                    format_args!(
                        "service \"{}\" has mode {}; [[l7]] settings need mode = \"l7\"",
                        l7.service, service.mode
                    ),
                );
            }
            if let Some(first) = self.l7[..i].iter().position(|o| o.service == l7.service) {
                errors.push(
                    format_args!("l7[{i}].service"),
                    format_args!(
                        "service \"{}\" already has settings in l7[{first}]; merge them",
                        l7.service
                    ),
                );
            }
            if let Some(cookie) = &l7.cookie
                && !is_token(cookie)
            {
                errors.push(
                    format_args!("l7[{i}].cookie"),
                    format_args!(
                        "cookie name \"{cookie}\" is not an HTTP token; use letters, digits and -_."
                    ),
                );
            }
            if let Some(limit) = l7.rate_limit {
                if limit.rate == 0 {
                    errors.push(
                        format_args!("l7[{i}].rate_limit.rate"),
                        format_args!("rate 0 would refuse every request; give requests per second, or remove rate_limit"),
                    );
                }
                if limit.burst == 0 {
                    errors.push(
                        format_args!("l7[{i}].rate_limit.burst"),
                        format_args!("burst 0 would refuse every request; give at least 1"),
                    );
                }
            }
            for (name, value) in [
                ("request_timeout", l7.request_timeout),
                ("backend_timeout", l7.backend_timeout),
            ] {
                if value.0 == 0 {
                    errors.push(
                        format_args!("l7[{i}].{name}"),
                        format_args!("{name} is 0; give a positive duration like \"5s\""),
                    );
                }
            }
            for (r, route) in l7.routes.iter().enumerate() {
                validate_conditions(route, format_args!("l7[{i}].route[{r}]"), errors);
                match &route.pool {
                    None => errors.push(
                        format_args!("l7[{i}].route[{r}].pool"),
                        format_args!(
                            "a route needs the pool its requests go to; add pool = \"NAME\""
                        ),
                    ),
                    Some(pool)
                        if !self
                            .backends(service)
                            .iter()
                            .any(|b| b.pool.as_ref() == Some(pool)) =>
                    {
                        errors.push(
                            format_args!("l7[{i}].route[{r}].pool"),
                            format_args!(
                                "no backend of service \"{}\" has pool = \"{pool}\"",
                                service.name
                            ),
                        )
                    }
                    Some(_) => {}
                }
            }
            for (d, deny) in l7.deny.iter().enumerate() {
                if deny.pool.is_some() {
                    errors.push(
                        format_args!("l7[{i}].deny[{d}].pool"),
                        format_args!("deny rules answer 403 and go to no pool; remove pool"),
                    );
                }
                if deny.is_empty() {
                    errors.push(
                        format_args!("l7[{i}].deny[{d}]"),
                        format_args!("a deny rule without conditions would refuse every request; add host, path_prefix, method or header"),
                    );
                }
                validate_conditions(deny, format_args!("l7[{i}].deny[{d}]"), errors);
            }
        }
    }
}

fn validate_conditions(when: &Rule, at: fmt::Arguments<'_>, errors: &mut ValidationErrors) {
    if let Some(prefix) = &when.path_prefix {
        let mut buf = [0u8; MAX_MATCH_TEXT];
        match normalize_path(prefix.as_bytes(), &mut buf) {
            Ok(n) if &buf[..n] == prefix.as_bytes() => {}
            _ => errors.push(
                format_args!("{at}.path_prefix"),
                format_args!("path_prefix \"{prefix}\" is not a normalized path (it must start with / and have no dot segments, query or escapes of plain characters)"),
            ),
        }
    }
    if let Some(method) = &when.method
        && !is_token(method)
    {
        errors.push(
            format_args!("{at}.method"),
            format_args!("method \"{method}\" is not an HTTP token, like GET"),
        );
    }
    if let Some(h) = &when.header
        && !is_token(&h.name)
    {
        errors.push(
            format_args!("{at}.header.name"),
            format_args!("header name \"{}\" is not an HTTP token", h.name),
        );
    }
    if let Some(host) = &when.host
        && (host.is_empty() || host.contains([':', '/', ' ']))
    {
        errors.push(
            format_args!("{at}.host"),
            format_args!("host \"{host}\" must be a host name without port or path"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<&'static str, PathError> {
        let mut out = [0u8; 64];
        let n = normalize_path(p.as_bytes(), &mut out)?;
        Ok(std::string::String::from_utf8(out[..n].to_vec())
            .unwrap()
            .leak())
    }

    extern crate std;

    #[test]
    fn paths_normalize_like_rfc3986() {
        assert_eq!(norm("/a/b/c/./../../g"), Ok("/a/g"));
        assert_eq!(norm("/%61dmin/x?q=1"), Ok("/admin/x"));
        assert_eq!(norm("/x/../admin"), Ok("/admin"));
        assert_eq!(norm("/a/%2f/b"), Ok("/a/%2F/b"));
        assert_eq!(norm("/a/."), Ok("/a/"));
        assert_eq!(norm("/a/.."), Ok("/"));
        assert_eq!(norm("/"), Ok("/"));
        assert_eq!(norm("/%2e%2e/etc"), Err(PathError::AboveRoot));
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("a/b"), Err(PathError::Malformed));
        assert_eq!(norm("/a%zz"), Err(PathError::Malformed));
        assert_eq!(norm("/a%4"), Err(PathError::Malformed));
        let long = "/".repeat(65);
        assert_eq!(norm(&long), Err(PathError::TooLong));
    }

    #[test]
    fn cookies_parse() {
        assert_eq!(cookie_value(b"a=1; SRV=abc; b=2", "SRV"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(b"SRV=\"q\"", "SRV"), Some(&b"q"[..]));
        assert_eq!(cookie_value(b"XSRV=1", "SRV"), None);
        assert_eq!(cookie_value(b"garbage;;=", "SRV"), None);
        assert_ne!(cookie_token("s", "a"), cookie_token("s", "b"));
        // FNV-1a 32 of "web/web-1", computed independently.
        assert_eq!(&cookie_token("web", "web-1"), b"5335adb6");
    }

    #[test]
    fn token_bucket_refills_at_rate() {
        let mut rl = RateLimiter::<2>::new();
        let limit = RateLimit { rate: 10, burst: 3 };
        let c = Ipv4Addr::new(192, 0, 2, 1);
        assert!((0..3).all(|_| rl.allow(limit, c, 1000)));
        assert!(!rl.allow(limit, c, 1000));
        assert!(!rl.allow(limit, c, 1099));
        assert!(rl.allow(limit, c, 1100));
        // Two other clients push out the least recently used (c, last seen at 1100).
        assert!(rl.allow(limit, Ipv4Addr::new(192, 0, 2, 2), 1200));
        assert!(rl.allow(limit, Ipv4Addr::new(192, 0, 2, 3), 1300));
        assert!(
            (0..3).all(|_| rl.allow(limit, c, 1300)),
            "c starts a full bucket again"
        );
    }

    #[test]
    fn rules_match_all_their_conditions() {
        let headers: [(&str, &[u8]); 2] = [("User-Agent", b"Mozilla sqlmap/1.0"), ("X-A", b"1")];
        let req = RequestView {
            method: "GET",
            path: "/admin/x",
            host: Some("App.Example"),
            headers: &headers,
        };
        let mut c = Rule {
            host: Some(String::try_from("app.example").unwrap()),
            ..Rule::default()
        };
        assert!(c.matches(&req));
        c.path_prefix = Some(String::try_from("/admin").unwrap());
        assert!(c.matches(&req));
        c.method = Some(String::try_from("POST").unwrap());
        assert!(!c.matches(&req));
        c.method = None;
        c.header = Some(HeaderMatch {
            name: String::try_from("user-agent").unwrap(),
            contains: String::try_from("SQLMAP").unwrap(),
        });
        assert!(c.matches(&req));
        c.header.as_mut().unwrap().contains = String::try_from("curl").unwrap();
        assert!(!c.matches(&req));
    }
}
