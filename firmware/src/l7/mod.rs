//! The L7 (HTTP/1.1) reverse proxy of services with `mode = "l7"`, sans-IO.
//!
//! The FPGA punts every frame of an L7 service to the MCU. The driver wrapper
//! ([`crate::net::Snoop`]) translates the VIP and port of each L7 service to the MCU's own
//! address and a local listening port ([`L7_PORT_BASE`] + the service's index among the
//! L7 services), and back on the way out, so the MCU's TCP stack (one address) terminates
//! the client's connection as the VIP. Per request the runner ([`run`], feature `net`):
//!
//! 1. reads a head and parses it ([`http::parse_request`]: limits and request-smuggling
//!    shapes refused with 400/431/414/501, counted by reason);
//! 2. asks [`L7Proxy::admit`] (rate limit → 429, deny rules → 403);
//! 3. runs the service's WebAssembly filter, if one is installed (deny, route to a pool,
//!    set headers; a failing filter follows the service's `filter_failure` policy);
//! 4. asks [`L7Proxy::choose`] for a backend (route → pool; cookie persistence; else the
//!    pool's algorithm from the shared model's [`fulcrum_model::select`]);
//! 5. connects to the backend from the MCU's own address, sends the re-serialized head
//!    ([`L7Proxy::write_request_head`]: hop-by-hop headers dropped, `X-Forwarded-For` and
//!    `Forwarded` added, filter headers set, `Connection: close`) and the body as framed;
//! 6. reads the response head, measures the time to it (fed to least response time),
//!    forwards it ([`write_response_head`]: `Set-Cookie` inserted for a new persistent
//!    client) and the body, and keeps the client's connection for the next request when
//!    both sides allow (pipelined requests wait in the buffer in order).
//!
//! The decisions themselves (rules, normalization, cookie tokens, token buckets) are the
//! shared model's ([`fulcrum_model::l7`]).

pub mod http;
#[cfg(feature = "net")]
pub mod run;

use core::net::Ipv4Addr;

use fulcrum_mgmt::message::{L7Status, MAX_L7_REJECT_REASONS};
use fulcrum_model::compile::{ControlPlane, build_member_ring};
use fulcrum_model::config::{Algorithm, Config, Mode, Name};
use fulcrum_model::hash::ToeplitzKey;
use fulcrum_model::l7::{
    FilterFailure, L7Settings, MAX_L7_SERVICES, PoolName, RateLimiter, RequestView, cookie_token,
    cookie_value,
};
use fulcrum_model::select::{Candidates, SelectState};
use fulcrum_model::tables::{BACKEND_SLOTS, MEMBER_SLOTS, NO_BACKEND};
use heapless::Vec;

use self::http::{Reject, RequestHead, ResponseHead, is_hop_by_hop, lists_token, slice};

/// The first local port the MCU listens on for L7 services (one port per service).
pub const L7_PORT_BASE: u16 = 7100;
/// Pools of one L7 service: the default pool and the named ones the config allows.
pub const MAX_POOLS: usize = fulcrum_model::l7::MAX_NAMED_POOLS + 1;
/// Size of a pool's Maglev ring (a prime, at least twice the 32 backends a pool can hold).
pub const POOL_RING: usize = 127;
/// Clients whose token buckets one L7 service remembers (least recently seen replaced).
pub const RATE_CLIENTS: usize = 32;

/// Counters of one L7 service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L7Counters {
    /// Requests whose head parsed.
    pub requests: u64,
    /// Responses forwarded from backends, by class (1xx … 5xx).
    pub responses: [u64; 5],
    /// Requests refused by the parser, by [`Reject::ALL`] order.
    pub rejected: [u64; Reject::ALL.len()],
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
    /// Connection attempts (SYNs) dropped while every worker of the service was busy;
    /// the client retries (as Linux drops SYNs when a listen queue is full).
    pub dropped_syns: u64,
    /// Requests sent on the backend connection kept from the client connection's
    /// previous request.
    pub backend_reused: u64,
}

impl L7Counters {
    const ZERO: L7Counters = L7Counters {
        requests: 0,
        responses: [0; 5],
        rejected: [0; Reject::ALL.len()],
        rate_limited: 0,
        denied: 0,
        filter_denied: 0,
        filter_failures: 0,
        no_backend: 0,
        backend_errors: 0,
        persisted: 0,
        dropped_syns: 0,
        backend_reused: 0,
    };

    /// Counts a parser refusal.
    pub fn reject(&mut self, why: Reject) {
        if let Some(i) = Reject::ALL.iter().position(|&r| r == why) {
            self.rejected[i] += 1;
        }
    }

    /// The counters as the management protocol carries them (refusals in
    /// [`Reject::ALL`] order).
    pub fn status(&self) -> L7Status {
        L7Status {
            requests: self.requests,
            responses: self.responses,
            rejected: self.rejected.iter().copied().collect(),
            rate_limited: self.rate_limited,
            denied: self.denied,
            filter_denied: self.filter_denied,
            filter_failures: self.filter_failures,
            no_backend: self.no_backend,
            backend_errors: self.backend_errors,
            persisted: self.persisted,
            dropped_syns: self.dropped_syns,
            backend_reused: self.backend_reused,
        }
    }
}

// Every refusal reason has a slot in the management protocol's status.
const _: () = assert!(Reject::ALL.len() <= MAX_L7_REJECT_REASONS);

/// Where the appliance's status reads the proxy's counters from (the proxy lives beside
/// the appliance, not in it: see [`crate::appliance::Appliance::set_l7_counters`]).
pub trait L7CounterSource {
    /// Counters of the L7 service named `service`, if this appliance proxies it.
    fn l7_counters(&self, service: &str) -> Option<L7Counters>;
    /// Counts `n` connection attempts to local port `local_port` the driver dropped
    /// because no worker was listening (see [`is_refusal`]).
    fn add_dropped_syns(&self, local_port: u16, n: u64);
}

impl<const N: usize> L7CounterSource for core::cell::RefCell<L7Proxy<N>> {
    fn l7_counters(&self, service: &str) -> Option<L7Counters> {
        let proxy = self.try_borrow().ok()?;
        proxy
            .services()
            .iter()
            .find(|s| s.name.as_str() == service)
            .map(|s| s.counters)
    }

    fn add_dropped_syns(&self, local_port: u16, n: u64) {
        if let Ok(mut proxy) = self.try_borrow_mut()
            && let Some(s) = proxy
                .services
                .iter_mut()
                .find(|s| s.local_port == local_port)
        {
            s.counters.dropped_syns += n;
        }
    }
}

/// A pool: the backends of an L7 service with one `pool` name (or none: the default).
#[derive(Debug, Clone)]
struct Pool {
    name: Option<PoolName>,
    members: Vec<u16, MEMBER_SLOTS>,
    ring: [u16; POOL_RING],
}

/// One L7 service as the proxy runs it.
#[derive(Debug, Clone)]
pub struct L7Service {
    /// Service name.
    pub name: Name,
    /// The VIP clients connect to.
    pub vip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// The MCU's local port for it.
    pub local_port: u16,
    algorithm: Algorithm,
    settings: L7Settings,
    pools: Vec<Pool, MAX_POOLS>,
    select: SelectState,
    limiter: RateLimiter<RATE_CLIENTS>,
    /// Counters.
    pub counters: L7Counters,
}

impl L7Service {
    const EMPTY: L7Service = L7Service {
        name: Name::new(),
        vip: Ipv4Addr::UNSPECIFIED,
        port: 0,
        local_port: 0,
        algorithm: Algorithm::RoundRobin,
        settings: L7Settings::DEFAULT,
        pools: Vec::new(),
        select: SelectState::new(),
        limiter: RateLimiter::new(),
        counters: L7Counters::ZERO,
    };
}

/// Why a request is answered by the proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 429: the client's token bucket is empty.
    RateLimited,
    /// 403: deny rule `n` matched.
    Denied(usize),
    /// The filter answered with this status (200..=599; others answer 403).
    FilterDenied(u16),
    /// 503: the filter failed and the policy is closed.
    FilterFailed,
    /// 503: no backend of the pool takes the request (or the pool does not exist).
    NoBackend,
    /// The request was malformed.
    Malformed(Reject),
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> u16 {
        match self {
            Refusal::RateLimited => 429,
            Refusal::Denied(_) => 403,
            Refusal::FilterDenied(status) => {
                if (200..600).contains(&status) {
                    status
                } else {
                    403
                }
            }
            Refusal::FilterFailed | Refusal::NoBackend => 503,
            Refusal::Malformed(r) => r.status(),
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// Backend-table slot.
    pub slot: u16,
    /// Backend address.
    pub address: Ipv4Addr,
    /// Backend port.
    pub port: u16,
    /// The persistence cookie to set on the response (a new persistent client).
    pub set_cookie: Option<[u8; 8]>,
}

/// The proxy's state: the L7 services of the running config (the first `N`; a board
/// short of RAM serves fewer than the schema's [`MAX_L7_SERVICES`]), their pools, rate
/// limiters, selection state, active requests per backend and counters.
pub struct L7Proxy<const N: usize = MAX_L7_SERVICES> {
    services: Vec<L7Service, N>,
    commits_seen: Option<u64>,
    config_generation: Option<u32>,
    key: Option<ToeplitzKey>,
    active: [u32; BACKEND_SLOTS],
}

impl<const N: usize> Default for L7Proxy<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl L7Proxy {
    /// The (VIP, port, local port) of every L7 service in `config`, the translation the
    /// driver applies.
    pub fn listeners(config: &Config) -> impl Iterator<Item = (Ipv4Addr, u16, u16)> + '_ {
        config
            .services
            .iter()
            .filter(|s| s.mode == Mode::L7)
            .take(MAX_L7_SERVICES)
            .enumerate()
            .map(|(i, s)| (s.vip, s.port, L7_PORT_BASE + i as u16))
    }
}

impl<const N: usize> L7Proxy<N> {
    /// No services.
    pub const fn new() -> Self {
        L7Proxy {
            services: Vec::new(),
            commits_seen: None,
            config_generation: None,
            key: None,
            active: [0; BACKEND_SLOTS],
        }
    }

    /// The L7 services.
    pub fn services(&self) -> &[L7Service] {
        &self.services
    }

    /// The L7 service listening on `local_port`.
    pub fn by_local_port(&self, local_port: u16) -> Option<usize> {
        self.services
            .iter()
            .position(|s| s.local_port == local_port)
    }

    /// Follows the running config and tables: call before each decision. Cheap when nothing
    /// changed (`generation` is the config generation, `commits` the table commits); on a
    /// change it rebuilds the pools (members and rings) from `cp`.
    pub fn refresh(&mut self, config: &Config, generation: u32, cp: &ControlPlane, commits: u64) {
        if self.config_generation != Some(generation) {
            self.config_generation = Some(generation);
            self.commits_seen = None;
            self.key = Some(ToeplitzKey::new(config.appliance.hash_key()));
            // Rebuilt in place (the MCU has no stack for a second copy); counters carry
            // over by service name, rate-limit buckets start afresh.
            let mut kept: Vec<(Name, L7Counters), N> = Vec::new();
            for s in &self.services {
                let _ = kept.push((s.name.clone(), s.counters));
            }
            self.services.clear();
            for (i, s) in config
                .services
                .iter()
                .filter(|s| s.mode == Mode::L7)
                .take(MAX_L7_SERVICES)
                .enumerate()
            {
                if self.services.push(L7Service::EMPTY).is_err() {
                    warn!(
                        "L7 service {} is not served: this board proxies at most {} L7 services",
                        s.name.as_str(),
                        N
                    );
                    break;
                }
                let Some(service) = self.services.last_mut() else {
                    break;
                };
                service.name.clone_from(&s.name);
                service.vip = s.vip;
                service.port = s.port;
                service.local_port = L7_PORT_BASE + i as u16;
                service.algorithm = s.algorithm;
                service.counters = kept
                    .iter()
                    .find(|k| k.0 == s.name)
                    .map(|k| k.1)
                    .unwrap_or_default();
                match config.l7_settings(&s.name) {
                    Some(l7) => service.settings.clone_from(l7),
                    None => {
                        service.settings = L7Settings::DEFAULT;
                        service.settings.service.clone_from(&s.name);
                    }
                }
                // The default pool first, then pools in the order backends name them.
                let _ = service.pools.push(Pool::new(None));
                for b in config.backends(s) {
                    if let Some(p) = &b.pool
                        && !service.pools.iter().any(|q| q.name.as_ref() == Some(p))
                    {
                        let _ = service.pools.push(Pool::new(Some(p.clone())));
                    }
                }
                for b in config.backends(s) {
                    let Some(slot) = cp.backend_slot(&s.name, &b.name) else {
                        continue;
                    };
                    if let Some(pool) = service.pools.iter_mut().find(|p| p.name == b.pool) {
                        let _ = pool.members.push(slot as u16);
                    }
                }
            }
        }
        if self.commits_seen != Some(commits) {
            self.commits_seen = Some(commits);
            for s in self.services.iter_mut() {
                let uses_ring = matches!(s.algorithm, Algorithm::Maglev | Algorithm::IpHash);
                for p in s.pools.iter_mut() {
                    if build_member_ring(&p.members, cp.backends(), uses_ring, &mut p.ring).is_err()
                    {
                        p.ring = [NO_BACKEND; POOL_RING];
                    }
                }
            }
        }
    }

    /// Service `svc`'s counters.
    pub fn counters_mut(&mut self, svc: usize) -> Option<&mut L7Counters> {
        self.services.get_mut(svc).map(|s| &mut s.counters)
    }

    /// Service `svc`'s settings.
    pub fn settings(&self, svc: usize) -> Option<&L7Settings> {
        self.services.get(svc).map(|s| &s.settings)
    }

    /// The rate limit and deny rules: `Err` answers the request.
    pub fn admit(
        &mut self,
        now: u64,
        svc: usize,
        client: Ipv4Addr,
        req: &RequestView<'_>,
    ) -> Result<(), Refusal> {
        let Some(s) = self.services.get_mut(svc) else {
            return Err(Refusal::NoBackend);
        };
        s.counters.requests += 1;
        if let Some(limit) = s.settings.rate_limit
            && !s.limiter.allow(limit, client, now)
        {
            s.counters.rate_limited += 1;
            return Err(Refusal::RateLimited);
        }
        if let Some(rule) = s.settings.denied(req) {
            s.counters.denied += 1;
            return Err(Refusal::Denied(rule));
        }
        Ok(())
    }

    /// What a failed filter run means for service `svc`'s request.
    pub fn filter_failed(&mut self, svc: usize) -> Result<(), Refusal> {
        let Some(s) = self.services.get_mut(svc) else {
            return Err(Refusal::NoBackend);
        };
        s.counters.filter_failures += 1;
        match s.settings.filter_failure {
            FilterFailure::Open => Ok(()),
            FilterFailure::Closed => Err(Refusal::FilterFailed),
        }
    }

    /// Chooses the backend of a request of service `svc` from `client`: the pool is
    /// `pool` (a filter's choice) or the first matching route's or the default; a valid
    /// persistence cookie for an eligible member wins; else the pool's algorithm.
    pub fn choose(
        &mut self,
        svc: usize,
        client: (Ipv4Addr, u16),
        req: &RequestView<'_>,
        pool: Option<&str>,
        cp: &ControlPlane,
    ) -> Result<Forward, Refusal> {
        let Some(key) = &self.key else {
            return Err(Refusal::NoBackend);
        };
        let active = &self.active;
        let Some(s) = self.services.get_mut(svc) else {
            return Err(Refusal::NoBackend);
        };
        let pool_name: Option<&str> = match pool {
            Some(p) => Some(p),
            None => s.settings.route(req).map(|p| p.as_str()),
        };
        let Some(pool_index) = s.pools.iter().position(|p| p.name.as_deref() == pool_name) else {
            s.counters.no_backend += 1;
            return Err(Refusal::NoBackend);
        };
        let backends = cp.backends();
        // Persistence: the cookie names a member that keeps flows (up or draining).
        if let Some(cookie) = &s.settings.cookie {
            let wanted = req
                .header_values("cookie")
                .find_map(|v| cookie_value(v, cookie));
            if let Some(wanted) = wanted {
                let hit = s.pools[pool_index].members.iter().copied().find(|&m| {
                    let b = &backends[usize::from(m)];
                    b.state.keeps_flows()
                        && cp
                            .backend_name(usize::from(m))
                            .is_some_and(|(sv, be)| cookie_token(sv, be) == wanted)
                });
                if let Some(slot) = hit {
                    s.counters.persisted += 1;
                    let b = &backends[usize::from(slot)];
                    return Ok(Forward {
                        slot,
                        address: b.ip(),
                        port: b.port,
                        set_cookie: None,
                    });
                }
            }
        }
        let p = &s.pools[pool_index];
        let candidates = Candidates {
            members: &p.members,
            backends,
            active,
            ring: &p.ring,
        };
        let flow_hash = key.hash_v4(client.0.octets(), s.vip.octets(), Some((client.1, s.port)));
        let src_hash = key.hash(&client.0.octets());
        let slot = s
            .select
            .select(s.algorithm, pool_index, &candidates, flow_hash, src_hash);
        if slot == NO_BACKEND {
            s.counters.no_backend += 1;
            return Err(Refusal::NoBackend);
        }
        let b = &backends[usize::from(slot)];
        let set_cookie = s.settings.cookie.as_ref().and_then(|_| {
            cp.backend_name(usize::from(slot))
                .map(|(sv, be)| cookie_token(sv, be))
        });
        Ok(Forward {
            slot,
            address: b.ip(),
            port: b.port,
            set_cookie,
        })
    }

    /// A request to backend `slot` starts (least connections counts them).
    pub fn begin(&mut self, slot: u16) {
        if let Some(a) = self.active.get_mut(usize::from(slot)) {
            *a += 1;
        }
    }

    /// A request to backend `slot` ended.
    pub fn end(&mut self, slot: u16) {
        if let Some(a) = self.active.get_mut(usize::from(slot)) {
            *a = a.saturating_sub(1);
        }
    }

    /// Active requests on backend `slot`.
    pub fn active(&self, slot: u16) -> u32 {
        self.active.get(usize::from(slot)).copied().unwrap_or(0)
    }
}

/// Re-serializes the request head in `buf` for the backend into `out`: the request
/// line with the client's version, every header but hop-by-hop ones (and those the
/// `Connection` header names, and those a filter's `edits` set or remove),
/// `X-Forwarded-For` extended and `Forwarded` added when `forwarded`, the headers the
/// edits add or set (a later set of a name replaces earlier ones), and `Connection: close`
/// unless `keep_alive` (the proxy means to reuse the backend connection; only for an
/// HTTP/1.1 request, where a connection persists unless a side says `close`).
/// `None` when it does not fit.
pub fn write_request_head(
    out: &mut [u8],
    buf: &[u8],
    head: &RequestHead,
    client: Ipv4Addr,
    forwarded: bool,
    edits: &[HeaderEdit],
    keep_alive: bool,
) -> Option<usize> {
    let mut w = Writer { out, len: 0 };
    w.put(slice(buf, head.method))?;
    w.put(b" ")?;
    w.put(slice(buf, head.target))?;
    w.put(if head.minor == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    })?;
    let connection_lists = |name: &[u8]| {
        head.headers.iter().any(|&(n, v)| {
            slice(buf, n).eq_ignore_ascii_case(b"connection") && lists_token(slice(buf, v), name)
        })
    };
    let mut xff_done = false;
    let mut ip_text = [0u8; 15];
    let ip_len = write_ip(&mut ip_text, client);
    let ip = &ip_text[..ip_len];
    for &(n, v) in &head.headers {
        let name = slice(buf, n);
        if is_hop_by_hop(name)
            || connection_lists(name)
            || edits
                .iter()
                .any(|e| e.op != EditOp::Add && e.name.as_bytes().eq_ignore_ascii_case(name))
        {
            continue;
        }
        let is_xff = name.eq_ignore_ascii_case(b"x-forwarded-for");
        if forwarded && is_xff {
            if xff_done {
                continue;
            }
            // All X-Forwarded-For lines joined, then the client.
            xff_done = true;
            w.put(b"X-Forwarded-For: ")?;
            for &(n2, v2) in &head.headers {
                if slice(buf, n2).eq_ignore_ascii_case(b"x-forwarded-for") {
                    w.put(slice(buf, v2))?;
                    w.put(b", ")?;
                }
            }
            w.put(ip)?;
            w.put(b"\r\n")?;
            continue;
        }
        w.put(name)?;
        w.put(b": ")?;
        w.put(slice(buf, v))?;
        w.put(b"\r\n")?;
    }
    if forwarded {
        if !xff_done {
            w.put(b"X-Forwarded-For: ")?;
            w.put(ip)?;
            w.put(b"\r\n")?;
        }
        w.put(b"Forwarded: for=")?;
        w.put(ip)?;
        w.put(b";proto=http\r\n")?;
    }
    // Edits in order: a later set of a name replaces an earlier add or set of it.
    for (i, e) in edits.iter().enumerate() {
        let replaced_later = edits[i + 1..]
            .iter()
            .any(|l| l.op != EditOp::Add && l.name.eq_ignore_ascii_case(&e.name));
        if e.op == EditOp::Remove || replaced_later {
            continue;
        }
        w.put(e.name.as_bytes())?;
        w.put(b": ")?;
        w.put(&e.value)?;
        w.put(b"\r\n")?;
    }
    if keep_alive && head.minor == 1 {
        w.put(b"\r\n")?;
    } else {
        w.put(b"Connection: close\r\n\r\n")?;
    }
    Some(w.len)
}

/// Writes the response head in `buf` for the client into `out`: status line and headers
/// as the backend sent them, minus hop-by-hop ones, plus `Set-Cookie` for persistence and
/// the connection header the proxy decided (`keep_alive`). `None` when it does not fit.
pub fn write_response_head(
    out: &mut [u8],
    buf: &[u8],
    head: &ResponseHead,
    cookie: Option<(&str, [u8; 8])>,
    keep_alive: bool,
    client_minor: u8,
) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&buf[..head.len]).ok()?;
    let mut w = Writer { out, len: 0 };
    w.put(if client_minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    })?;
    let mut code = [0u8; 3];
    for (i, c) in code.iter_mut().enumerate() {
        *c = b'0' + ((head.status / 10u16.pow(2 - i as u32)) % 10) as u8;
    }
    w.put(&code)?;
    w.put(b" ")?;
    w.put(resp.reason.unwrap_or("").as_bytes())?;
    w.put(b"\r\n")?;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if is_hop_by_hop(name) {
            continue;
        }
        w.put(name)?;
        w.put(b": ")?;
        w.put(h.value)?;
        w.put(b"\r\n")?;
    }
    if let Some((name, token)) = cookie {
        w.put(b"Set-Cookie: ")?;
        w.put(name.as_bytes())?;
        w.put(b"=")?;
        w.put(&token)?;
        w.put(b"; Path=/; HttpOnly\r\n")?;
    }
    w.put(match (keep_alive, client_minor) {
        (false, _) => &b"Connection: close\r\n\r\n"[..],
        (true, 0) => &b"Connection: keep-alive\r\n\r\n"[..],
        (true, _) => &b"\r\n"[..],
    })?;
    Some(w.len)
}

/// Writes a complete answer of the proxy itself (`status`, a one-line text body) into
/// `out`; `close` adds `Connection: close`. Returns the length (cut to `out`).
pub fn write_answer(out: &mut [u8], status: u16, close: bool, extra: &[u8]) -> usize {
    let reason: &[u8] = match status {
        200 => b"OK",
        204 => b"No Content",
        301 => b"Moved Permanently",
        302 => b"Found",
        400 => b"Bad Request",
        401 => b"Unauthorized",
        403 => b"Forbidden",
        404 => b"Not Found",
        408 => b"Request Timeout",
        414 => b"URI Too Long",
        429 => b"Too Many Requests",
        431 => b"Request Header Fields Too Large",
        501 => b"Not Implemented",
        502 => b"Bad Gateway",
        503 => b"Service Unavailable",
        504 => b"Gateway Timeout",
        _ => b"Error",
    };
    let mut w = Writer { out, len: 0 };
    let mut code = [0u8; 3];
    for (i, c) in code.iter_mut().enumerate() {
        *c = b'0' + ((status / 10u16.pow(2 - i as u32)) % 10) as u8;
    }
    let body_len = reason.len() + 1;
    let mut len_text = [0u8; 5];
    let len_digits = write_u32(&mut len_text, body_len as u32);
    let _ = (|| {
        w.put(b"HTTP/1.1 ")?;
        w.put(&code)?;
        w.put(b" ")?;
        w.put(reason)?;
        w.put(b"\r\nContent-Type: text/plain\r\nContent-Length: ")?;
        w.put(&len_text[..len_digits])?;
        w.put(b"\r\n")?;
        w.put(extra)?;
        if close {
            w.put(b"Connection: close\r\n")?;
        }
        w.put(b"\r\n")?;
        w.put(reason)?;
        w.put(b"\n")
    })();
    w.len
}

impl Pool {
    fn new(name: Option<PoolName>) -> Self {
        Pool {
            name,
            members: Vec::new(),
            ring: [NO_BACKEND; POOL_RING],
        }
    }
}

struct Writer<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.out.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }
}

/// Writes `n` in decimal; returns the length.
fn write_u32(out: &mut [u8], mut n: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut k = 0;
    loop {
        digits[k] = b'0' + (n % 10) as u8;
        k += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..k.min(out.len()) {
        out[i] = digits[k - 1 - i];
    }
    k.min(out.len())
}

/// Writes a dotted-quad address; returns the length (at most 15).
fn write_ip(out: &mut [u8; 15], ip: Ipv4Addr) -> usize {
    let mut len = 0;
    for (i, octet) in ip.octets().iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        len += write_u32(&mut out[len..], u32::from(*octet));
    }
    len
}

/// Builds the rule view of a parsed request: method, normalized path (into `path_buf`),
/// host, headers (into `headers`). `Err` when the path does not normalize.
pub fn request_view<'a>(
    buf: &'a [u8],
    head: &RequestHead,
    path_buf: &'a mut [u8],
    headers: &'a mut [(&'a str, &'a [u8]); http::MAX_HEADERS],
) -> Result<RequestView<'a>, Reject> {
    let n =
        fulcrum_model::l7::normalize_path(head.path(buf), path_buf).map_err(|_| Reject::BadPath)?;
    let path = core::str::from_utf8(&path_buf[..n]).map_err(|_| Reject::BadPath)?;
    let count = head.headers.len().min(headers.len());
    for (slot, &(name, value)) in headers.iter_mut().zip(head.headers.iter()) {
        *slot = (
            core::str::from_utf8(slice(buf, name)).unwrap_or(""),
            slice(buf, value),
        );
    }
    let host = head
        .host
        .and_then(|h| core::str::from_utf8(slice(buf, h)).ok());
    Ok(RequestView {
        method: head.method(buf),
        path,
        host,
        headers: &headers[..count],
    })
}

pub use fulcrum_filter_sdk::verdict::{EditOp, HeaderEdit};

/// Most header edits a filter makes on one request.
pub const MAX_EDITS: usize = fulcrum_filter_sdk::MAX_EDITS;

/// What a request filter decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterDecision {
    /// Answer the request with this status instead of forwarding it.
    pub deny: Option<u16>,
    /// Send it to this pool instead of the routes' choice.
    pub pool: Option<heapless::String<{ fulcrum_filter_sdk::MAX_POOL }>>,
    /// Header edits for the forwarded request, in order.
    pub edits: Vec<HeaderEdit, MAX_EDITS>,
}

/// A request as a filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct FilterInput<'a> {
    /// The service's name.
    pub service: &'a str,
    /// The client's address.
    pub client: Ipv4Addr,
    /// `x` of `HTTP/1.x`.
    pub minor: u8,
    /// The method.
    pub method: &'a str,
    /// The request target as received.
    pub target: &'a str,
    /// The headers, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The start of the body already read (may be empty).
    pub body_prefix: &'a [u8],
}

/// The request filters the proxy consults (WebAssembly filters on the appliance).
pub trait L7Filter {
    /// Runs the service's filter on a request: `None` when the service has no filter,
    /// `Some(Err(()))` when the filter failed (trap, fuel, bad verdict).
    fn inspect(&self, input: &FilterInput<'_>) -> Option<Result<FilterDecision, ()>>;
}

/// No filters.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFilters;

impl L7Filter for NoFilters {
    fn inspect(&self, _: &FilterInput<'_>) -> Option<Result<FilterDecision, ()>> {
        None
    }
}

/// Most L7 listeners the driver translates (one per L7 service).
pub type Listeners = Vec<(Ipv4Addr, u16, u16), MAX_L7_SERVICES>;

/// Where the TCP header of an untagged Ethernet IPv4 TCP frame starts, if it is one
/// (not a fragment, header complete).
fn tcp_offset(frame: &[u8]) -> Option<usize> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 || frame[23] != 6 {
        return None;
    }
    // Fragments (offset or more-fragments) are left alone.
    if u16::from_be_bytes([frame[20], frame[21]]) & 0x3fff != 0 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let tcp = 14 + ihl;
    (ihl >= 20 && frame.len() >= tcp + 20).then_some(tcp)
}

/// Rewrites an address and port field (`addr_at`, `port_at`) of a TCP/IPv4 frame,
/// patching the IPv4 and TCP checksums incrementally (RFC 1624).
fn rewrite_endpoint(
    frame: &mut [u8],
    tcp: usize,
    addr_at: usize,
    port_at: usize,
    to: (Ipv4Addr, u16),
) {
    use fulcrum_model::checksum::{update16, update32};
    let old_addr = u32::from_be_bytes([
        frame[addr_at],
        frame[addr_at + 1],
        frame[addr_at + 2],
        frame[addr_at + 3],
    ]);
    let new_addr = u32::from(to.0);
    let old_port = u16::from_be_bytes([frame[port_at], frame[port_at + 1]]);
    let ip_csum = u16::from_be_bytes([frame[24], frame[25]]);
    frame[24..26].copy_from_slice(&update32(ip_csum, old_addr, new_addr).to_be_bytes());
    let mut tcp_csum = u16::from_be_bytes([frame[tcp + 16], frame[tcp + 17]]);
    tcp_csum = update32(tcp_csum, old_addr, new_addr);
    tcp_csum = update16(tcp_csum, old_port, to.1);
    frame[tcp + 16..tcp + 18].copy_from_slice(&tcp_csum.to_be_bytes());
    frame[addr_at..addr_at + 4].copy_from_slice(&to.0.octets());
    frame[port_at..port_at + 2].copy_from_slice(&to.1.to_be_bytes());
}

/// A frame arriving at the MCU for an L7 service (`VIP:port`): its destination becomes
/// the MCU's `own` address and the service's local port. Returns whether it changed.
pub fn translate_inbound(
    frame: &mut [u8],
    listeners: &[(Ipv4Addr, u16, u16)],
    own: Ipv4Addr,
) -> bool {
    let Some(tcp) = tcp_offset(frame) else {
        return false;
    };
    let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    let port = u16::from_be_bytes([frame[tcp + 2], frame[tcp + 3]]);
    match listeners.iter().find(|l| l.0 == dst && l.1 == port) {
        Some(&(_, _, local)) => {
            rewrite_endpoint(frame, tcp, 30, tcp + 2, (own, local));
            true
        }
        None => false,
    }
}

/// Whether `frame`, about to leave the MCU, is the TCP stack refusing a connection to an
/// L7 service's local port because no worker is listening (smoltcp has no listen
/// backlog: it answers a SYN without a listening socket with RST+ACK, sequence number 0).
/// The driver drops such a reset instead, so the client retransmits its SYN and gets a
/// worker once one is free, as Linux drops SYNs when a listen queue is full. Returns the
/// local port.
pub fn is_refusal(frame: &[u8], listeners: &[(Ipv4Addr, u16, u16)], own: Ipv4Addr) -> Option<u16> {
    let tcp = tcp_offset(frame)?;
    let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
    let port = u16::from_be_bytes([frame[tcp], frame[tcp + 1]]);
    let seq = u32::from_be_bytes([
        frame[tcp + 4],
        frame[tcp + 5],
        frame[tcp + 6],
        frame[tcp + 7],
    ]);
    // RST and ACK set, SYN and FIN clear.
    let flags = frame[tcp + 13] & 0x17;
    (src == own && flags == 0x14 && seq == 0 && listeners.iter().any(|l| l.2 == port))
        .then_some(port)
}

/// A frame the MCU sends from an L7 service's local port: its source becomes the VIP
/// and service port again. Returns whether it changed.
pub fn translate_outbound(
    frame: &mut [u8],
    listeners: &[(Ipv4Addr, u16, u16)],
    own: Ipv4Addr,
) -> bool {
    let Some(tcp) = tcp_offset(frame) else {
        return false;
    };
    let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
    let port = u16::from_be_bytes([frame[tcp], frame[tcp + 1]]);
    if src != own {
        return false;
    }
    match listeners.iter().find(|l| l.2 == port) {
        Some(&(vip, service_port, _)) => {
            rewrite_endpoint(frame, tcp, 26, tcp, (vip, service_port));
            true
        }
        None => false,
    }
}
