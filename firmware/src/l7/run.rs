//! The L7 proxy on embassy-net: workers that accept clients on the L7 services' local
//! ports and forward their requests (see the module above for the steps). Each worker
//! serves one connection at a time, one request at a time; a board runs as many workers
//! as it has buffers for, spread over the L7 services.

use core::cell::RefCell;
use core::net::Ipv4Addr;

use embassy_net::tcp::{ConnectError, State, TcpSocket};
use embassy_net::{IpAddress, Stack};
use embassy_time::{Duration, Instant, Timer, with_timeout};
use embedded_io_async::Write as _;
use fulcrum_model::regmap::RegisterBus;

use super::http::{self, Body, BodyProgress, Reject, parse_request, parse_response};
use super::{
    FilterDecision, FilterInput, L7Filter, L7Proxy, Refusal, request_view, write_answer,
    write_request_head, write_response_head,
};
use crate::net::Shared;
use crate::persist::ConfigStore;

/// Buffer size of the simulated board's workers (the NUCLEO uses less).
pub const BUF: usize = 4096;

/// The buffers of one proxy worker, `N` bytes each: the largest head it takes is `N`.
pub struct ProxyBuffers<const N: usize = BUF> {
    client_rx: [u8; N],
    client_tx: [u8; N],
    backend_rx: [u8; N],
    backend_tx: [u8; N],
    /// Bytes read from the client (a head, body bytes, pipelined requests).
    request: [u8; N],
    /// Bytes read from the backend.
    response: [u8; N],
    /// Heads re-serialized for the other side.
    out: [u8; N],
}

impl<const N: usize> ProxyBuffers<N> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        ProxyBuffers {
            client_rx: [0; N],
            client_tx: [0; N],
            backend_rx: [0; N],
            backend_tx: [0; N],
            request: [0; N],
            response: [0; N],
            out: [0; N],
        }
    }
}

impl<const N: usize> Default for ProxyBuffers<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the proxy's workers share.
pub struct ProxyContext<
    'a,
    'b,
    B: RegisterBus,
    S: ConfigStore,
    F: L7Filter,
    const P: usize = { super::MAX_L7_SERVICES },
> {
    /// The appliance (config, tables, response-time feedback).
    pub app: Shared<'a, 'b, B, S>,
    /// The proxy state.
    pub proxy: &'a RefCell<L7Proxy<P>>,
    /// The request filters.
    pub filters: F,
    /// Backend connections shared by the workers (may be empty).
    pub pool: &'a BackendPool<'a>,
}

impl<B: RegisterBus, S: ConfigStore, F: L7Filter, const P: usize> ProxyContext<'_, '_, B, S, F, P> {
    /// Brings the proxy up to date with the appliance's config and tables.
    fn refresh(&self) {
        let app = self.app.borrow();
        if let Some(config) = app.config() {
            self.proxy.borrow_mut().refresh(
                config,
                app.generation(),
                app.control_plane(),
                app.commits(),
            );
        }
    }

    /// The (service index, local port) worker `worker` listens on.
    fn assignment(&self, worker: usize) -> Option<(usize, u16)> {
        self.refresh();
        let proxy = self.proxy.borrow();
        let services = proxy.services();
        if services.is_empty() {
            return None;
        }
        let i = worker % services.len();
        Some((i, services[i].local_port))
    }
}

/// Runs proxy worker number `worker` forever.
pub async fn worker<B: RegisterBus, S: ConfigStore, F: L7Filter, const N: usize, const P: usize>(
    stack: Stack<'_>,
    ctx: &ProxyContext<'_, '_, B, S, F, P>,
    worker: usize,
    bufs: &mut ProxyBuffers<N>,
) {
    loop {
        let Some((svc, port)) = ctx.assignment(worker) else {
            Timer::after_millis(500).await;
            continue;
        };
        let ProxyBuffers {
            client_rx,
            client_tx,
            backend_rx,
            backend_tx,
            request,
            response,
            out,
        } = bufs;
        let mut client = TcpSocket::new(stack, client_rx, client_tx);
        if !accept(&mut client, port, || {
            ctx.assignment(worker) == Some((svc, port))
        })
        .await
        {
            continue;
        }
        let mut backend = TcpSocket::new(stack, backend_rx, backend_tx);
        let mut io = Io {
            request,
            response,
            out,
        };
        let mut link = BackendLink {
            socket: &mut backend,
            to: None,
        };
        serve(ctx, svc, &mut client, &mut link, &mut io).await;
        reset(link.socket, &mut link.to).await;
        linger(&mut client).await;
    }
}

/// The worker's own backend connection, kept between the requests of one client
/// connection while they go to the same backend and both sides keep it alive, and used
/// when the shared [`BackendPool`] has no connection to lend.
struct BackendLink<'s, 'b> {
    socket: &'s mut TcpSocket<'b>,
    /// The backend it is connected to.
    to: Option<(Ipv4Addr, u16)>,
}

/// Whether `socket`, connected to `to`, is open to `target` and idle: established, with
/// nothing unread (a backend speaking out of turn is not reused).
fn open_to(socket: &TcpSocket<'_>, to: Option<(Ipv4Addr, u16)>, target: (Ipv4Addr, u16)) -> bool {
    to == Some(target)
        && socket.state() == State::Established
        && socket.may_send()
        && !socket.can_recv()
}

/// Drops a backend connection (reset: the backend has nothing more to say to us).
async fn reset(socket: &mut TcpSocket<'_>, to: &mut Option<(Ipv4Addr, u16)>) {
    if to.take().is_some() || socket.state() != State::Closed {
        socket.abort();
        let _ = with_timeout(Duration::from_millis(20), socket.flush()).await;
    }
}

/// One connection of the [`BackendPool`].
pub struct PoolSlot<'d> {
    /// The socket; `None` while a worker holds it.
    socket: Option<TcpSocket<'d>>,
    /// The backend it is connected to, while idle.
    to: Option<(Ipv4Addr, u16)>,
    /// When it became idle (ms).
    idle_since: u64,
}

impl<'d> PoolSlot<'d> {
    /// A slot with an unconnected socket (its buffers bound a response's head, as a
    /// worker's do).
    pub fn new(socket: TcpSocket<'d>) -> Self {
        PoolSlot {
            socket: Some(socket),
            to: None,
            idle_since: 0,
        }
    }
}

/// Backend connections shared by all the proxy's workers, as HAProxy's `http-reuse
/// safe` shares idle server connections: a worker borrows one for one exchange; a
/// connection left idle to a backend serves the next request any worker sends there,
/// but never two requests at once. Without a connection to lend (all borrowed, or an
/// empty pool: the NUCLEO has none for RAM), a worker uses its own.
pub type BackendPool<'d> = [RefCell<PoolSlot<'d>>];

/// A connection borrowed from the [`BackendPool`]: its slot, the socket, where it was
/// connected, and whether it is open to the backend asked for (reused as it is).
struct Lease<'p, 'd> {
    slot: &'p RefCell<PoolSlot<'d>>,
    socket: TcpSocket<'d>,
    to: Option<(Ipv4Addr, u16)>,
    reused: bool,
}

/// Borrows a connection of `pool` for `target`: an idle one open to it (`true`: reused),
/// else a free one, else the one idle longest (`false`: to be reset and connected).
fn lease<'p, 'd>(pool: &'p BackendPool<'d>, target: (Ipv4Addr, u16)) -> Option<Lease<'p, 'd>> {
    let open = pool.iter().find(|slot| {
        let s = slot.borrow();
        s.socket
            .as_ref()
            .is_some_and(|socket| open_to(socket, s.to, target))
    });
    let (slot, reused) = match open {
        Some(slot) => (slot, true),
        None => (
            pool.iter()
                .filter(|slot| slot.borrow().socket.is_some())
                .min_by_key(|slot| {
                    let s = slot.borrow();
                    (s.to.is_some(), s.idle_since)
                })?,
            false,
        ),
    };
    let mut s = slot.borrow_mut();
    let socket = s.socket.take()?;
    let to = s.to.take();
    Some(Lease {
        slot,
        socket,
        to,
        reused,
    })
}

/// Why one attempt at an exchange failed.
enum Failure {
    /// A reused connection turned out closed before any of the response: the request (no
    /// body) may go again on a new connection.
    Stale,
    /// Give up: `Some(status)` answers the client, `None` just closes it.
    Give(Option<u16>),
}

/// Closes a client connection gracefully: sends FIN, then waits (at most
/// [`LINGER`]) for the client's own FIN, reading and discarding what it still sends. A
/// client reads its last response and then closes, so this costs one round trip; resetting
/// instead would make the client see an error after a complete answer. Only a client that
/// does not close in time is reset.
async fn linger(client: &mut TcpSocket<'_>) {
    client.close();
    let _ = with_timeout(LINGER, async {
        let mut sink = [0u8; 64];
        while let Ok(n) = client.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
        let _ = client.flush().await;
    })
    .await;
    if !matches!(client.state(), State::Closed | State::TimeWait) {
        client.abort();
        let _ = with_timeout(Duration::from_millis(100), client.flush()).await;
    }
}

/// How long a closing client connection may take to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Waits for a client on `port` while `still_mine()`; whether one connected.
async fn accept(socket: &mut TcpSocket<'_>, port: u16, still_mine: impl Fn() -> bool) -> bool {
    loop {
        match with_timeout(Duration::from_secs(1), socket.accept(port)).await {
            Ok(Ok(())) => return true,
            // A connection was half-open when the last wait timed out: wait it out.
            Ok(Err(_)) => match socket.state() {
                State::Established | State::CloseWait => return true,
                State::SynReceived | State::Listen => Timer::after_millis(5).await,
                _ => return false,
            },
            Err(_) => {
                if !still_mine() {
                    return false;
                }
            }
        }
    }
}

struct Io<'a, const N: usize> {
    request: &'a mut [u8; N],
    response: &'a mut [u8; N],
    out: &'a mut [u8; N],
}

/// Sends an answer of the proxy itself.
async fn answer(client: &mut TcpSocket<'_>, out: &mut [u8], status: u16, close: bool) {
    let extra: &[u8] = if status == 429 {
        b"Retry-After: 1\r\n"
    } else {
        b""
    };
    let n = write_answer(out, status, close, extra);
    let _ = client.write_all(&out[..n]).await;
}

/// Serves one client connection: requests in order until either side closes.
async fn serve<B: RegisterBus, S: ConfigStore, F: L7Filter, const N: usize, const P: usize>(
    ctx: &ProxyContext<'_, '_, B, S, F, P>,
    svc: usize,
    client: &mut TcpSocket<'_>,
    backend: &mut BackendLink<'_, '_>,
    io: &mut Io<'_, N>,
) {
    let peer = match client.remote_endpoint() {
        Some(e) => match e.addr {
            IpAddress::Ipv4(a) => (a, e.port),
            #[allow(unreachable_patterns)]
            _ => return,
        },
        None => return,
    };
    let (request_timeout, backend_timeout) = match ctx.proxy.borrow().settings(svc) {
        Some(s) => (
            Duration::from_millis(u64::from(s.request_timeout.0)),
            Duration::from_millis(u64::from(s.backend_timeout.0)),
        ),
        None => return,
    };
    let mut have = 0usize;
    loop {
        // 1. A whole head.
        let head = loop {
            match parse_request(&io.request[..have], have == N) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(why) => {
                    refuse(ctx, svc, Refusal::Malformed(why));
                    answer(client, io.out, why.status(), true).await;
                    return;
                }
            }
            match with_timeout(request_timeout, client.read(&mut io.request[have..])).await {
                Ok(Ok(n)) if n > 0 => have += n,
                Ok(_) => return,
                Err(_) => {
                    if have > 0 {
                        answer(client, io.out, 408, true).await;
                    }
                    return;
                }
            }
        };
        // 2.-4. The decision, and the head for the backend.
        let decision = decide(ctx, svc, peer, &io.request[..have], &head, io.out);
        let (forward, head_len) = match decision {
            Ok(d) => d,
            Err(refusal) => {
                // A malformed request ends the connection; a refused one need not, when
                // there is no body to skip.
                let keep = head.keep_alive
                    && head.body == Body::None
                    && !matches!(refusal, Refusal::Malformed(_));
                answer(client, io.out, refusal.status(), !keep).await;
                if !keep {
                    return;
                }
                io.request.copy_within(head.len..have, 0);
                have -= head.len;
                continue;
            }
        };
        let head_request = head.is_head(&io.request[..have]);
        // The request's head is consumed: keep only what follows it.
        io.request.copy_within(head.len..have, 0);
        have -= head.len;
        ctx.proxy.borrow_mut().begin(forward.slot);
        let result = exchange(
            ctx,
            client,
            backend,
            io,
            &mut have,
            Exchange {
                forward,
                head_len,
                body: head.body,
                head_request,
                client_minor: head.minor,
                client_keep_alive: head.keep_alive,
                backend_timeout,
                svc,
            },
        )
        .await;
        ctx.proxy.borrow_mut().end(forward.slot);
        let keep = match result {
            Ok(backend_keeps) => head.keep_alive && backend_keeps,
            Err(status) => {
                if matches!(status, None | Some(502 | 504))
                    && let Some(c) = ctx.proxy.borrow_mut().counters_mut(svc)
                {
                    c.backend_errors += 1;
                }
                if let Some(status) = status {
                    answer(client, io.out, status, true).await;
                }
                false
            }
        };
        if !keep {
            return;
        }
    }
}

fn refuse<B: RegisterBus, S: ConfigStore, F: L7Filter, const P: usize>(
    ctx: &ProxyContext<'_, '_, B, S, F, P>,
    svc: usize,
    refusal: Refusal,
) {
    if let (Refusal::Malformed(why), Some(c)) = (refusal, ctx.proxy.borrow_mut().counters_mut(svc))
    {
        c.reject(why);
    }
}

/// Rules, filter and choice for the request in `buf`; on success the backend and the
/// length of the head written for it into `out`.
fn decide<B: RegisterBus, S: ConfigStore, F: L7Filter, const P: usize>(
    ctx: &ProxyContext<'_, '_, B, S, F, P>,
    svc: usize,
    peer: (Ipv4Addr, u16),
    buf: &[u8],
    head: &http::RequestHead,
    out: &mut [u8],
) -> Result<(super::Forward, usize), Refusal> {
    let mut path = [0u8; http::MAX_TARGET];
    let mut headers = [("", &[][..]); http::MAX_HEADERS];
    let view = match request_view(buf, head, &mut path, &mut headers) {
        Ok(v) => v,
        Err(why) => {
            refuse(ctx, svc, Refusal::Malformed(why));
            return Err(Refusal::Malformed(why));
        }
    };
    let now = Instant::now().as_millis();
    ctx.proxy.borrow_mut().admit(now, svc, peer.0, &view)?;
    let service_name = ctx.proxy.borrow().services()[svc].name.clone();
    let body_prefix = &buf[head.len..buf.len().min(head.len + 256)];
    let input = FilterInput {
        service: &service_name,
        client: peer.0,
        minor: head.minor,
        method: view.method,
        target: core::str::from_utf8(head.target(buf)).unwrap_or(""),
        headers: view.headers,
        body_prefix,
    };
    let decision = match ctx.filters.inspect(&input) {
        None => FilterDecision::default(),
        Some(Ok(d)) => d,
        Some(Err(())) => {
            ctx.proxy.borrow_mut().filter_failed(svc)?;
            FilterDecision::default()
        }
    };
    if let Some(status) = decision.deny {
        if let Some(c) = ctx.proxy.borrow_mut().counters_mut(svc) {
            c.filter_denied += 1;
        }
        return Err(Refusal::FilterDenied(status));
    }
    let forward = {
        let app = ctx.app.borrow();
        ctx.proxy.borrow_mut().choose(
            svc,
            peer,
            &view,
            decision.pool.as_deref(),
            app.control_plane(),
        )?
    };
    let forwarded = ctx.proxy.borrow().settings(svc).is_none_or(|s| s.forwarded);
    // The backend connection is kept for the client's next request if the client keeps
    // its own.
    let len = write_request_head(
        out,
        buf,
        head,
        peer.0,
        forwarded,
        &decision.edits,
        head.keep_alive,
    )
    .ok_or(Refusal::Malformed(Reject::HeadTooLarge))?;
    Ok((forward, len))
}

struct Exchange {
    forward: super::Forward,
    head_len: usize,
    body: Body,
    head_request: bool,
    client_minor: u8,
    /// Whether the client asked to keep the connection (HTTP/1.1 without `close`, or
    /// 1.0 with `keep-alive`): the response says `Connection: close` otherwise.
    client_keep_alive: bool,
    backend_timeout: Duration,
    svc: usize,
}

/// Sends the request to the backend and its response to the client: on the worker's
/// own connection if it is open to that backend, else on one of the shared pool (an idle
/// one to that backend if there is one), else on the worker's own, connected anew.
/// `Ok(true)` when the client connection can take another request; `Err(Some(status))`
/// when the client should get an error answer (nothing of a response was sent yet),
/// `Err(None)` when the connection must just close.
async fn exchange<B: RegisterBus, S: ConfigStore, F: L7Filter, const N: usize, const P: usize>(
    ctx: &ProxyContext<'_, '_, B, S, F, P>,
    client: &mut TcpSocket<'_>,
    backend: &mut BackendLink<'_, '_>,
    io: &mut Io<'_, N>,
    have: &mut usize,
    x: Exchange,
) -> Result<bool, Option<u16>> {
    let target = (x.forward.address, x.forward.port);
    let own_open = open_to(backend.socket, backend.to, target);
    if !own_open
        && let Some(Lease {
            slot,
            mut socket,
            mut to,
            reused,
        }) = lease(ctx.pool, target)
    {
        let result = converse(ctx, client, &mut socket, &mut to, reused, io, have, &x).await;
        let mut s = slot.borrow_mut();
        s.socket = Some(socket);
        s.to = to;
        s.idle_since = Instant::now().as_millis();
        return result;
    }
    converse(
        ctx,
        client,
        backend.socket,
        &mut backend.to,
        own_open,
        io,
        have,
        &x,
    )
    .await
}

/// One exchange on `socket` (connected to `to`; `reused` when open to the exchange's
/// backend, else it is reset and connected). A reused connection that the backend closed
/// meanwhile (before any of the response) is replaced once, for a request without a body.
/// On return `to` says where the connection stays open (`None`: closed).
#[allow(clippy::too_many_arguments)]
async fn converse<B: RegisterBus, S: ConfigStore, F: L7Filter, const N: usize, const P: usize>(
    ctx: &ProxyContext<'_, '_, B, S, F, P>,
    client: &mut TcpSocket<'_>,
    socket: &mut TcpSocket<'_>,
    to: &mut Option<(Ipv4Addr, u16)>,
    mut reused: bool,
    io: &mut Io<'_, N>,
    have: &mut usize,
    x: &Exchange,
) -> Result<bool, Option<u16>> {
    let target = (x.forward.address, x.forward.port);
    if !reused {
        reset(socket, to).await;
    }
    socket.set_timeout(Some(x.backend_timeout));
    loop {
        if !reused {
            match with_timeout(x.backend_timeout, socket.connect(target)).await {
                Ok(Ok(())) => *to = Some(target),
                Ok(Err(ConnectError::TimedOut)) | Err(_) => {
                    reset(socket, to).await;
                    return Err(Some(504));
                }
                Ok(Err(_)) => {
                    reset(socket, to).await;
                    return Err(Some(502));
                }
            }
        } else if let Some(c) = ctx.proxy.borrow_mut().counters_mut(x.svc) {
            c.backend_reused += 1;
        }
        match attempt(ctx, client, socket, io, have, x).await {
            Ok((keep_client, keep_backend)) => {
                if keep_backend {
                    // Idle, it waits for the next request without a deadline (smoltcp's
                    // timeout would reset it); the backend closes it when it likes.
                    socket.set_timeout(None);
                } else {
                    reset(socket, to).await;
                }
                return Ok(keep_client);
            }
            Err(Failure::Stale) if reused => {
                reset(socket, to).await;
                reused = false;
            }
            Err(Failure::Stale) => {
                reset(socket, to).await;
                return Err(Some(502));
            }
            Err(Failure::Give(status)) => {
                reset(socket, to).await;
                return Err(status);
            }
        }
    }
}

/// One exchange on a connected backend socket: `Ok((client keeps, backend keeps))`.
async fn attempt<B: RegisterBus, S: ConfigStore, F: L7Filter, const N: usize, const P: usize>(
    ctx: &ProxyContext<'_, '_, B, S, F, P>,
    client: &mut TcpSocket<'_>,
    backend: &mut TcpSocket<'_>,
    io: &mut Io<'_, N>,
    have: &mut usize,
    x: &Exchange,
) -> Result<(bool, bool), Failure> {
    // Before any byte of the response, a dead connection may be replaced when the
    // request has no body (nothing of the client's was consumed).
    let stale = if x.body == Body::None {
        Failure::Stale
    } else {
        Failure::Give(Some(502))
    };
    if backend.write_all(&io.out[..x.head_len]).await.is_err() {
        return Err(stale);
    }
    let sent_at = Instant::now();
    // The request body, as framed.
    let mut body = BodyProgress::new(x.body);
    loop {
        let k = match body.feed(&io.request[..*have]) {
            Ok(k) => k,
            Err(why) => {
                if let Some(c) = ctx.proxy.borrow_mut().counters_mut(x.svc) {
                    c.reject(why);
                }
                return Err(Failure::Give(Some(why.status())));
            }
        };
        backend
            .write_all(&io.request[..k])
            .await
            .map_err(|_| Failure::Give(Some(502)))?;
        io.request.copy_within(k..*have, 0);
        *have -= k;
        if body.done() {
            break;
        }
        match with_timeout(x.backend_timeout, client.read(&mut io.request[*have..])).await {
            Ok(Ok(n)) if n > 0 => *have += n,
            _ => return Err(Failure::Give(None)),
        }
    }
    // The response head (1xx heads are passed on, then the final one).
    let mut got = 0usize;
    let mut any = false;
    let head = loop {
        match parse_response(&io.response[..got], x.head_request, got == N) {
            Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {
                let n = write_response_head(
                    io.out,
                    &io.response[..got],
                    &h,
                    None,
                    true,
                    x.client_minor,
                )
                .ok_or(Failure::Give(Some(502)))?;
                client
                    .write_all(&io.out[..n])
                    .await
                    .map_err(|_| Failure::Give(None))?;
                io.response.copy_within(h.len..got, 0);
                got -= h.len;
                continue;
            }
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(_) => return Err(Failure::Give(Some(502))),
        }
        match with_timeout(x.backend_timeout, backend.read(&mut io.response[got..])).await {
            Ok(Ok(n)) if n > 0 => {
                got += n;
                any = true;
            }
            Ok(_) if !any => return Err(stale),
            Ok(_) => return Err(Failure::Give(Some(502))),
            Err(_) => return Err(Failure::Give(Some(504))),
        }
    };
    let rtt = sent_at.elapsed().as_micros().min(u64::from(u32::MAX)) as u32;
    ctx.app
        .borrow_mut()
        .observe_response_time(usize::from(x.forward.slot), rtt);
    // The client connection stays open only if the client asked for it and the
    // response's end is known without closing; the head says which.
    let keep = x.client_keep_alive && head.body != Body::UntilClose;
    let cookie = {
        let proxy = ctx.proxy.borrow();
        let name = proxy.settings(x.svc).and_then(|s| s.cookie.clone());
        name.zip(x.forward.set_cookie)
    };
    let n = write_response_head(
        io.out,
        &io.response[..got],
        &head,
        cookie.as_ref().map(|(n, t)| (n.as_str(), *t)),
        keep,
        x.client_minor,
    )
    .ok_or(Failure::Give(Some(502)))?;
    if let Some(c) = ctx.proxy.borrow_mut().counters_mut(x.svc) {
        let class = usize::from(head.status / 100).clamp(1, 5) - 1;
        c.responses[class] += 1;
    }
    client
        .write_all(&io.out[..n])
        .await
        .map_err(|_| Failure::Give(None))?;
    // The response body.
    let mut body = BodyProgress::new(head.body);
    io.response.copy_within(head.len..got, 0);
    got -= head.len;
    let extra = loop {
        let k = body
            .feed(&io.response[..got])
            .map_err(|_| Failure::Give(None))?;
        client
            .write_all(&io.response[..k])
            .await
            .map_err(|_| Failure::Give(None))?;
        if body.done() {
            break got - k;
        }
        match with_timeout(x.backend_timeout, backend.read(&mut io.response[..])).await {
            Ok(Ok(n)) if n > 0 => got = n,
            Ok(_) if head.body == Body::UntilClose => break 0,
            _ => return Err(Failure::Give(None)),
        }
    };
    client.flush().await.map_err(|_| Failure::Give(None))?;
    // The backend connection is kept when we asked for it (an HTTP/1.1 client keeping
    // its own), the backend agreed, the body ended by its framing and nothing followed.
    let keep_backend =
        keep && x.client_minor == 1 && head.keep_alive && head.status != 101 && extra == 0;
    Ok((keep, keep_backend))
}

/// The appliance's WebAssembly filters ([`crate::filter::Filters`], kept by the
/// [`crate::Appliance`] that management uploads them to) as the proxy's [`L7Filter`].
#[cfg(feature = "filters")]
pub struct AppFilters<'a, 'b, B: RegisterBus, S: ConfigStore>(pub Shared<'a, 'b, B, S>);

#[cfg(feature = "filters")]
impl<B: RegisterBus, S: ConfigStore> L7Filter for AppFilters<'_, '_, B, S> {
    fn inspect(&self, input: &FilterInput<'_>) -> Option<Result<FilterDecision, ()>> {
        use crate::filter::{FilterAction, FilterRequest};
        let request = FilterRequest {
            client: input.client,
            method: input.method,
            path: input.target,
            minor_version: input.minor,
            headers: input.headers,
            body_prefix: input.body_prefix,
        };
        let result = self
            .0
            .borrow_mut()
            .filters_mut()
            .run(input.service, &request)?;
        Some(match result {
            Ok(outcome) => {
                let mut decision = FilterDecision {
                    edits: outcome.set_headers,
                    ..FilterDecision::default()
                };
                match outcome.action {
                    FilterAction::Allow => {}
                    FilterAction::Deny { status } => decision.deny = Some(status),
                    FilterAction::Route { pool } => decision.pool = Some(pool),
                }
                Ok(decision)
            }
            Err(_) => {
                warn!("the filter of {} failed", input.service);
                Err(())
            }
        })
    }
}
