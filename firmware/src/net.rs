//! The firmware on embassy-net: the same async code runs on the NUCLEO-F767ZI and in the
//! simulated board. Each loop is a thin driver of a sans-IO core:
//!
//! - [`health_loop`]: asks the [`Appliance`] for due probes, runs up to `N` at once as TCP
//!   connections ([`run_probe`]), reports results, and lets the appliance commit;
//! - [`management_tcp`]: the authenticated management service on the appliance's address;
//! - [`management_serial`]: the same protocol on a byte stream (the ST-LINK virtual COM
//!   port, or a pseudo-terminal in the simulated board), authentication optional;
//! - [`Snoop`]: wraps the Ethernet driver to resolve backends by ARP and learn their MACs
//!   (the FPGA needs them to rewrite frames), see [`Neighbors`].

use core::cell::RefCell;
use core::net::Ipv4Addr;

use embassy_futures::select::{Either, select};
use embassy_net::Stack;
use embassy_net::tcp::{ConnectError, TcpSocket};
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer, with_timeout};
use fulcrum_mgmt::envelope::Key;
use fulcrum_mgmt::message::CheckFailure;
use fulcrum_model::regmap::RegisterBus;

use crate::appliance::Appliance;
use crate::health::{Outcome, Probe};
use crate::persist::ConfigStore;
use crate::probe::{Judge, ProbeKind, Verdict, request};
use crate::session::{Connection, Scratch};

/// Milliseconds since boot.
pub fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// The appliance as the loops share it (one executor, so a `RefCell`; no loop holds the
/// borrow across an `.await`).
pub type Shared<'a, 'b, B, S> = &'a RefCell<Appliance<'b, B, S>>;

/// Socket buffers of one probe worker.
pub struct ProbeBuffers {
    rx: [u8; 1024],
    tx: [u8; 256],
}

impl ProbeBuffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        ProbeBuffers {
            rx: [0; 1024],
            tx: [0; 256],
        }
    }
}

impl Default for ProbeBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs one health check over TCP; the response time is measured from the start of the
/// connection to the verdict.
pub async fn run_probe(stack: Stack<'_>, probe: &Probe, bufs: &mut ProbeBuffers) -> Outcome {
    let mut socket = TcpSocket::new(stack, &mut bufs.rx, &mut bufs.tx);
    let start = Instant::now();
    let timeout = Duration::from_millis(u64::from(probe.timeout_ms.max(1)));
    let outcome = with_timeout(timeout, exchange(&mut socket, probe, start))
        .await
        .unwrap_or(Err(CheckFailure::Timeout));
    // Reset rather than linger: a check leaves no TIME_WAIT behind on either side.
    socket.abort();
    let _ = with_timeout(Duration::from_millis(20), socket.flush()).await;
    outcome
}

async fn exchange(socket: &mut TcpSocket<'_>, probe: &Probe, start: Instant) -> Outcome {
    socket
        .connect((probe.address, probe.port))
        .await
        .map_err(|e| match e {
            ConnectError::ConnectionReset => CheckFailure::Refused,
            ConnectError::TimedOut => CheckFailure::Timeout,
            ConnectError::NoRoute | ConnectError::InvalidState => CheckFailure::Local,
        })?;
    let elapsed = || start.elapsed().as_micros().min(u64::from(u32::MAX)) as u32;
    if probe.kind == ProbeKind::Tcp {
        return Ok(elapsed());
    }
    let mut req = [0u8; 256];
    let n = request(&probe.kind, probe.address, probe.port, &mut req);
    let mut sent = 0;
    while sent < n {
        match socket.write(&req[sent..n]).await {
            Ok(0) | Err(_) => return Err(CheckFailure::Closed),
            Ok(k) => sent += k,
        }
    }
    let mut judge = Judge::new(&probe.kind);
    let mut buf = [0u8; 256];
    loop {
        let verdict = match socket.read(&mut buf).await {
            Ok(0) => judge.eof(),
            Ok(k) => judge.feed(&buf[..k]),
            Err(_) => Verdict::Fail(CheckFailure::Refused),
        };
        match verdict {
            Verdict::NeedMore => continue,
            Verdict::Pass => return Ok(elapsed()),
            Verdict::Fail(f) => return Err(f),
        }
    }
}

/// Wakes the health scheduler early (a config was applied, a result came in).
pub type Wake = Signal<NoopRawMutex, ()>;

/// Runs health checks forever with `N` concurrent probes.
pub async fn health_loop<B: RegisterBus, S: ConfigStore, const N: usize>(
    stack: Stack<'_>,
    app: Shared<'_, '_, B, S>,
    wake: &Wake,
    bufs: &mut [ProbeBuffers; N],
) {
    let queue = ProbeQueue::new();
    let workers = embassy_futures::join::join_array(
        bufs.each_mut()
            .map(|b| probe_worker(stack, app, wake, &queue, b)),
    );
    embassy_futures::join::join(health_scheduler(app, wake, &queue), workers).await;
}

/// The probes [`health_scheduler`] hands to the [`probe_worker`]s.
pub type ProbeQueue = Channel<NoopRawMutex, Probe, 8>;

/// The scheduling half of [`health_loop`]: hands due probes to the workers through
/// `queue`. A board that runs it and each worker as tasks of their own (instead of
/// [`health_loop`], which joins them in one future) keeps every worker's state in its own
/// task storage, and no poll builds all of them on the stack at once.
pub async fn health_scheduler<B: RegisterBus, S: ConfigStore>(
    app: Shared<'_, '_, B, S>,
    wake: &Wake,
    queue: &ProbeQueue,
) {
    loop {
        let now = now_ms();
        let next = app.borrow_mut().poll(now);
        loop {
            let probe = app.borrow_mut().next_probe(now_ms());
            match probe {
                Some(p) => queue.send(p).await,
                None => break,
            }
        }
        let now = now_ms();
        // Come back at the next deadline, at most a second away (config changes and
        // results also wake us).
        let at = next.unwrap_or(now + 1000).clamp(now + 1, now + 1000);
        if let Either::Second(()) = select(Timer::at(Instant::from_millis(at)), wake.wait()).await {
            // A result or a config change: run poll promptly.
        }
    }
}

/// One probe worker of [`health_loop`]: runs the probes `queue` hands it, one at a time.
pub async fn probe_worker<B: RegisterBus, S: ConfigStore>(
    stack: Stack<'_>,
    app: Shared<'_, '_, B, S>,
    wake: &Wake,
    queue: &ProbeQueue,
    b: &mut ProbeBuffers,
) {
    loop {
        let probe = queue.receive().await;
        let outcome = run_probe(stack, &probe, b).await;
        app.borrow_mut().probe_done(now_ms(), probe.ticket, outcome);
        wake.signal(());
    }
}

/// Buffers of one management link.
pub struct LinkBuffers {
    /// Socket receive buffer.
    pub rx: [u8; 2048],
    /// Socket transmit buffer.
    pub tx: [u8; 2048],
    /// Input chunk.
    pub chunk: [u8; 512],
}

impl LinkBuffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        LinkBuffers {
            rx: [0; 2048],
            tx: [0; 2048],
            chunk: [0; 512],
        }
    }
}

/// The request scratch shared by all management links, handed over one request at a time.
pub type SharedScratch = embassy_sync::mutex::Mutex<NoopRawMutex, Scratch>;

/// What every management link shares: the appliance, the health loop's wake-up, and the
/// request scratch.
pub struct Management<'a, 'b, B: RegisterBus, S: ConfigStore> {
    /// The appliance.
    pub app: Shared<'a, 'b, B, S>,
    /// Wakes the health loop after a request (a config may have changed).
    pub wake: &'a Wake,
    /// Request scratch.
    pub scratch: &'a SharedScratch,
}

impl Default for LinkBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves the management protocol on TCP `port`, one connection at a time, every request
/// authenticated with `key`. `random` gives session numbers.
pub async fn management_tcp<B: RegisterBus, S: ConfigStore>(
    stack: Stack<'_>,
    ctx: &Management<'_, '_, B, S>,
    key: Key,
    port: u16,
    conn: &mut Connection,
    bufs: &mut LinkBuffers,
    random: &mut impl FnMut() -> u64,
) {
    loop {
        let mut socket = TcpSocket::new(stack, &mut bufs.rx, &mut bufs.tx);
        socket.set_timeout(Some(Duration::from_secs(120)));
        if socket.accept(port).await.is_err() {
            Timer::after_millis(10).await;
            continue;
        }
        conn.reset(Some(key.clone()), true);
        loop {
            let n = match socket.read(&mut bufs.chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if answer(&mut socket, ctx, conn, &bufs.chunk[..n], random)
                .await
                .is_err()
            {
                break;
            }
        }
        socket.close();
        let _ = with_timeout(Duration::from_millis(500), socket.flush()).await;
        socket.abort();
    }
}

/// Feeds `input` to the connection and writes every answer to `io`.
async fn answer<B: RegisterBus, S: ConfigStore, W: embedded_io_async::Write>(
    io: &mut W,
    ctx: &Management<'_, '_, B, S>,
    conn: &mut Connection,
    mut input: &[u8],
    random: &mut impl FnMut() -> u64,
) -> Result<(), W::Error> {
    while !input.is_empty() {
        let mut scratch = ctx.scratch.lock().await;
        let (used, len) = conn.on_bytes(
            &mut ctx.app.borrow_mut(),
            now_ms(),
            input,
            random(),
            &mut scratch,
        );
        input = &input[used..];
        if len > 0 {
            ctx.wake.signal(());
            io.write_all(&scratch.out[..len]).await?;
            io.flush().await?;
        }
    }
    Ok(())
}

/// Serves the management protocol on a byte stream (serial console): requests may be
/// untagged; tagged ones are checked against `key`.
pub async fn management_serial<B, S, IO>(
    io: &mut IO,
    ctx: &Management<'_, '_, B, S>,
    key: Option<Key>,
    conn: &mut Connection,
    bufs: &mut LinkBuffers,
    random: &mut impl FnMut() -> u64,
) where
    B: RegisterBus,
    S: ConfigStore,
    IO: embedded_io_async::Read + embedded_io_async::Write,
{
    conn.reset(key, false);
    loop {
        let n = match io.read(&mut bufs.chunk).await {
            Ok(n) if n > 0 => n,
            // Nothing, or a line error: the console stays up.
            _ => {
                Timer::after_millis(50).await;
                continue;
            }
        };
        // A write error (host gone) loses that answer only.
        let _ = answer(io, ctx, conn, &bufs.chunk[..n], random).await;
    }
}

/// The neighbour bookkeeping between the firmware and its Ethernet driver: MACs learned
/// from ARP (for the FPGA's backend table) and addresses the firmware wants resolved.
///
/// Why the driver sends ARP itself: smoltcp sends at most one ARP request per second for
/// the whole interface, so at boot, with many backends, most first health checks would
/// time out waiting for resolution. The driver asks for every backend at once; smoltcp
/// fills its neighbour cache from the replies (they are addressed to it) and the FPGA
/// learns the MACs from the same replies.
pub struct Neighbors {
    learned: heapless::Deque<(Ipv4Addr, [u8; 6]), 32>,
    to_resolve: heapless::Deque<Ipv4Addr, 64>,
    own: Option<(Ipv4Addr, [u8; 6])>,
    /// Addresses the appliance answers ARP for besides its own: the VIPs and full-NAT
    /// source addresses (clients and backends must reach them through the FPGA).
    proxied: heapless::Vec<Ipv4Addr, 32>,
    /// ARP replies to send: (address asked for, requester MAC, requester address).
    to_answer: heapless::Deque<(Ipv4Addr, [u8; 6], Ipv4Addr), 8>,
    waker: Option<core::task::Waker>,
    /// L7 services: (VIP, port, local port) translated to and from the MCU's address.
    l7: crate::l7::Listeners,
    /// Connection attempts to L7 local ports dropped since the last look, per local port
    /// (see [`crate::l7::is_refusal`]).
    l7_dropped_syns: heapless::Vec<(u16, u64), { fulcrum_model::l7::MAX_L7_SERVICES }>,
    /// HA: the virtual MAC; proxy ARP answers with it, and frames to it are handed to
    /// the stack as if sent to the appliance's MAC.
    virtual_mac: Option<[u8; 6]>,
    /// HA: whether this node answers ARP for the proxied addresses (only the master).
    answer_proxied: bool,
    /// HA: VRRP packets (IPv4 header on) punted by the data path, for [`ha_loop`].
    vrrp_in: heapless::Deque<heapless::Vec<u8, VRRP_PACKET>, 8>,
    /// HA: whole frames to send (adverts, gratuitous ARPs).
    frames_out: heapless::Deque<heapless::Vec<u8, { crate::vrrp::MAX_ADVERT_FRAME }>, 24>,
    ha_waker: Option<core::task::Waker>,
}

/// Largest VRRP packet kept (IPv4 header with options + the largest advert).
pub const VRRP_PACKET: usize = 60 + crate::vrrp::HEADER_LEN + 4 * crate::vrrp::MAX_ADDRESSES;

impl Neighbors {
    /// Empty.
    pub const fn new() -> Self {
        Neighbors {
            learned: heapless::Deque::new(),
            to_resolve: heapless::Deque::new(),
            own: None,
            proxied: heapless::Vec::new(),
            to_answer: heapless::Deque::new(),
            waker: None,
            l7: heapless::Vec::new(),
            l7_dropped_syns: heapless::Vec::new(),
            virtual_mac: None,
            answer_proxied: true,
            vrrp_in: heapless::Deque::new(),
            frames_out: heapless::Deque::new(),
            ha_waker: None,
        }
    }

    /// Counts a refused connection to L7 local port `port` that the driver dropped.
    fn count_dropped_syn(&mut self, port: u16) {
        match self.l7_dropped_syns.iter_mut().find(|(p, _)| *p == port) {
            Some((_, n)) => *n += 1,
            None => {
                let _ = self.l7_dropped_syns.push((port, 1));
            }
        }
    }

    /// HA: sets the virtual MAC and whether this node answers ARP for the proxied
    /// addresses (only the VRRP master does; a backup stays silent for them).
    pub fn set_ha(&mut self, virtual_mac: [u8; 6], master: bool) {
        self.virtual_mac = Some(virtual_mac);
        self.answer_proxied = master;
        if !master {
            self.to_answer.clear();
        }
    }

    /// HA: queues a whole Ethernet frame to send; `false` when the queue is full.
    pub fn send_frame(&mut self, frame: &[u8]) -> bool {
        let Ok(f) = heapless::Vec::from_slice(frame) else {
            return false;
        };
        let queued = self.frames_out.push_back(f).is_ok();
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        queued
    }

    /// Sets the L7 listeners the driver translates (see [`crate::l7`]).
    pub fn set_l7(&mut self, listeners: impl Iterator<Item = (Ipv4Addr, u16, u16)>) {
        self.l7.clear();
        for l in listeners {
            let _ = self.l7.push(l);
        }
    }

    /// Sets the address and MAC ARP requests are sent from.
    pub fn set_own(&mut self, address: Ipv4Addr, mac: [u8; 6]) {
        self.own = Some((address, mac));
    }

    /// Sets the addresses answered by proxy ARP (VIPs, full-NAT pool).
    pub fn set_proxied(&mut self, addresses: impl Iterator<Item = Ipv4Addr>) {
        self.proxied.clear();
        for a in addresses {
            if !self.proxied.contains(&a) {
                let _ = self.proxied.push(a);
            }
        }
    }

    /// Asks the driver to send an ARP request for `address`.
    pub fn resolve(&mut self, address: Ipv4Addr) {
        if !self.to_resolve.iter().any(|&a| a == address) {
            let _ = self.to_resolve.push_back(address);
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

impl Default for Neighbors {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared neighbour state.
pub type Learned = RefCell<Neighbors>;

/// Hands learned neighbours to the appliance and queues ARP requests for backends:
/// unresolved ones every call, all of them every `refresh_every`-th call (to keep
/// smoltcp's cache and the FPGA's MACs fresh). Call every few hundred milliseconds.
pub fn tend_neighbors<B: RegisterBus, S: ConfigStore>(
    learned: &Learned,
    app: Shared<'_, '_, B, S>,
    round: u32,
    refresh_every: u32,
) {
    loop {
        let next = learned.borrow_mut().learned.pop_front();
        let Some((ip, mac)) = next else { break };
        app.borrow_mut().learn_neighbor(ip, mac);
    }
    let app = app.borrow();
    let mut n = learned.borrow_mut();
    if let Some(config) = app.config() {
        let vips = config.services.iter().map(|s| s.vip);
        // With HA, also the group's virtual addresses (e.g. the backends' gateway).
        let ha = config
            .appliance
            .ha
            .as_ref()
            .map(|h| h.virtual_addresses(config))
            .unwrap_or_default();
        n.set_proxied(
            vips.chain(config.appliance.snat_pool.iter().copied())
                .chain(ha),
        );
        n.set_l7(crate::l7::L7Proxy::listeners(config));
    }
    if let Some(source) = app.l7_counter_source() {
        for (port, dropped) in n.l7_dropped_syns.drain(..) {
            source.add_dropped_syns(port, dropped);
        }
    }
    if round.is_multiple_of(refresh_every.max(1)) {
        for address in app.backend_addresses() {
            n.resolve(address);
        }
    } else {
        for address in app.unresolved() {
            n.resolve(address);
        }
    }
}

/// An Ethernet driver that records the sender of every ARP packet it receives and sends
/// the ARP requests [`Neighbors::resolve`] asks for.
pub struct Snoop<'l, D> {
    inner: D,
    learned: &'l Learned,
}

impl<'l, D> Snoop<'l, D> {
    /// Wraps `inner`; learned neighbours go to `learned`.
    pub fn new(inner: D, learned: &'l Learned) -> Self {
        Snoop { inner, learned }
    }
}

/// The receive token of [`Snoop`].
pub struct SnoopRx<'l, R> {
    inner: R,
    learned: &'l Learned,
}

impl<R: RxToken> RxToken for SnoopRx<'_, R> {
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&mut [u8]) -> T,
    {
        let learned = self.learned;
        self.inner.consume(|frame| {
            ha_inbound(learned, frame);
            {
                let n = learned.borrow();
                if let Some((own, _)) = n.own
                    && !n.l7.is_empty()
                {
                    crate::l7::translate_inbound(frame, &n.l7, own);
                }
            }
            if let Some(neighbor) = arp_sender(frame) {
                let mut n = learned.borrow_mut();
                if n.learned.is_full() {
                    n.learned.pop_front();
                }
                let _ = n.learned.push_back(neighbor);
                // A request for a VIP or pool address: answer it (proxy ARP).
                if frame[20..22] == [0, 1] {
                    let target = Ipv4Addr::new(frame[38], frame[39], frame[40], frame[41]);
                    if n.answer_proxied && n.proxied.contains(&target) && !n.to_answer.is_full() {
                        let _ = n.to_answer.push_back((target, neighbor.1, neighbor.0));
                        if let Some(w) = n.waker.take() {
                            w.wake();
                        }
                    }
                }
            }
            f(frame)
        })
    }
}

/// The transmit token of [`Snoop`]: translates L7 replies back to their VIP.
pub struct SnoopTx<'l, T> {
    inner: T,
    learned: &'l Learned,
}

impl<T: TxToken> TxToken for SnoopTx<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let learned = self.learned;
        let own = {
            let n = learned.borrow();
            n.own.map(|(own, _)| own).filter(|_| !n.l7.is_empty())
        };
        let Some(own) = own else {
            return self.inner.consume(len, f);
        };
        if len <= SMALL_FRAME {
            // Small enough to be a reset: built aside first, so that the stack refusing a
            // connection to a busy L7 service can be dropped (the client retries).
            let mut small = [0u8; SMALL_FRAME];
            let r = f(&mut small[..len]);
            let mut n = learned.borrow_mut();
            if let Some(port) = crate::l7::is_refusal(&small[..len], &n.l7, own) {
                n.count_dropped_syn(port);
                return r;
            }
            crate::l7::translate_outbound(&mut small[..len], &n.l7, own);
            drop(n);
            self.inner
                .consume(len, |frame| frame.copy_from_slice(&small[..len]));
            return r;
        }
        self.inner.consume(len, |frame| {
            let r = f(frame);
            crate::l7::translate_outbound(frame, &learned.borrow().l7, own);
            r
        })
    }
}

/// Frames up to this length (a TCP reset with options) are built aside by [`SnoopTx`].
const SMALL_FRAME: usize = 80;
/// HA on a received frame: a VRRP packet goes to [`ha_loop`] (and on to the stack, which
/// drops it); a frame to the virtual MAC is readdressed to the appliance's MAC so the
/// stack takes it (an L7 VIP's traffic).
fn ha_inbound(learned: &Learned, frame: &mut [u8]) {
    let mut n = learned.borrow_mut();
    let Some(vmac) = n.virtual_mac else {
        return;
    };
    if frame.len() < 34 {
        return;
    }
    if frame[0..6] == vmac
        && let Some((_, own)) = n.own
    {
        frame[0..6].copy_from_slice(&own);
    }
    if frame[12..14] == [0x08, 0x00] && frame[23] == crate::vrrp::PROTOCOL {
        if n.vrrp_in.is_full() {
            n.vrrp_in.pop_front();
        }
        if let Ok(p) = heapless::Vec::from_slice(&frame[14..frame.len().min(14 + VRRP_PACKET)]) {
            let _ = n.vrrp_in.push_back(p);
        }
        if let Some(w) = n.ha_waker.take() {
            w.wake();
        }
    }
}

/// Buffers of the HA loop: UDP receive and transmit buffers of `RX` and `TX` bytes, and
/// up to `OUT` sync messages staged per round (the simulated board uses the defaults; the
/// NUCLEO smaller ones, for RAM).
pub struct HaBuffers<
    const RX: usize = { 16 * 1024 },
    const TX: usize = { 16 * 1024 },
    const OUT: usize = 10,
> {
    /// UDP receive buffer.
    pub rx: [u8; RX],
    /// UDP transmit buffer.
    pub tx: [u8; TX],
    /// One sync message.
    pub message: [u8; crate::flowsync::MAX_MESSAGE],
    /// Messages to send after the appliance's borrow ends: (peer, length, bytes).
    pub outbox: heapless::Vec<(Ipv4Addr, usize, [u8; crate::flowsync::MAX_MESSAGE]), OUT>,
}

impl<const RX: usize, const TX: usize, const OUT: usize> HaBuffers<RX, TX, OUT> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        HaBuffers {
            rx: [0; RX],
            tx: [0; TX],
            message: [0; crate::flowsync::MAX_MESSAGE],
            outbox: heapless::Vec::new(),
        }
    }
}

impl<const RX: usize, const TX: usize, const OUT: usize> Default for HaBuffers<RX, TX, OUT> {
    fn default() -> Self {
        Self::new()
    }
}

/// The HA state as the loops share it.
pub type SharedHa<'a, const N: usize> = &'a RefCell<crate::ha::Ha<N>>;

/// Runs VRRP and flow sync forever: adverts in (punted by the data path, picked out by
/// [`Snoop`]) and out (whole frames through [`Neighbors::send_frame`]), flow sync over UDP
/// on the HA sync port, the data path's change log drained through the register map every
/// millisecond while master, replicas written through it, events into the appliance's
/// log, and proxy ARP for the virtual addresses only while master.
pub async fn ha_loop<
    B: RegisterBus,
    S: ConfigStore,
    const N: usize,
    const RX: usize,
    const TX: usize,
    const OUT: usize,
>(
    stack: Stack<'_>,
    app: Shared<'_, '_, B, S>,
    learned: &Learned,
    ha: SharedHa<'_, N>,
    bufs: &mut HaBuffers<RX, TX, OUT>,
) {
    use embassy_futures::select::{Either3, select3};
    use embassy_net::udp::{PacketMetadata, UdpSocket};
    let mut rx_meta = [PacketMetadata::EMPTY; 16];
    let mut tx_meta = [PacketMetadata::EMPTY; 16];
    let HaBuffers {
        rx,
        tx,
        message,
        outbox,
    } = bufs;
    let mut socket = UdpSocket::new(stack, &mut rx_meta, rx, &mut tx_meta, tx);
    let mut port = ha.borrow().sync_port();
    if socket.bind(port).is_err() {
        warn!("HA: cannot bind the sync port; HA is off");
        return;
    }
    {
        let now = now_ms();
        let mut h = ha.borrow_mut();
        h.startup(now);
        learned.borrow_mut().set_ha(h.mac(), h.is_master());
    }
    // Peers without a session get an ARP request from the driver every half second
    // (smoltcp alone retries once a second after a miss).
    let mut next_resolve = 0u64;
    loop {
        let now = now_ms();
        // A config push may have moved the sync port.
        let configured = ha.borrow().sync_port();
        if configured != port {
            socket.close();
            if socket.bind(configured).is_err() {
                warn!("HA: cannot bind the new sync port; keeping the old one");
                let _ = socket.bind(port);
            } else {
                port = configured;
            }
        }
        if now >= next_resolve {
            next_resolve = now + 500;
            let h = ha.borrow();
            let mut n = learned.borrow_mut();
            for (peer, link) in h.links() {
                if !link.connected() || !link.synced() {
                    n.resolve(*peer);
                }
            }
        }
        // VRRP adverts punted by the data path.
        loop {
            let packet = learned.borrow_mut().vrrp_in.pop_front();
            let Some(packet) = packet else { break };
            ha.borrow_mut().handle_vrrp(now, &packet);
        }
        {
            let mut h = ha.borrow_mut();
            let mut a = app.borrow_mut();
            h.handle_timeout(now);
            h.drain_changes(now, a.bus());
            let mut frame = [0u8; crate::vrrp::MAX_ADVERT_FRAME];
            while let Some(len) = h.poll_frame(&mut frame) {
                if !learned.borrow_mut().send_frame(&frame[..len]) {
                    warn!("HA: frame queue full, an advert or ARP was dropped");
                }
            }
            outbox.clear();
            while !outbox.is_full() {
                let Some((peer, len)) = h.poll_sync(now, a.bus(), &mut message[..]) else {
                    break;
                };
                let _ = outbox.push((peer, len, *message));
            }
            while let Some(e) = h.poll_event() {
                a.push_event(now, e);
            }
            learned.borrow_mut().set_ha(h.mac(), h.is_master());
        }
        // Sync traffic never holds up the adverts: a peer whose MAC is not resolved yet
        // (or a full socket) would block `send_to`; what does not fit at once is dropped
        // and the link's retransmission sends it again.
        for (peer, len, bytes) in outbox.iter() {
            match with_timeout(
                Duration::from_millis(1),
                socket.send_to(&bytes[..*len], (*peer, port)),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => warn!("HA: a sync message could not be sent"),
                Err(_) => break,
            }
        }
        let more = !outbox.is_empty() && outbox.is_full();
        let (deadline, master) = {
            let h = ha.borrow();
            (h.poll_timeout(), h.is_master())
        };
        let now = now_ms();
        // The master drains the change log every millisecond; timers come first.
        let mut at = deadline.unwrap_or(now + 1000).min(now + 1000);
        if master || more {
            at = at.min(now + 1);
        }
        // A punted advert, or an operator's promote/demote.
        let vrrp = core::future::poll_fn(|cx| {
            if ha.borrow_mut().take_kick(cx.waker()) {
                return core::task::Poll::Ready(());
            }
            let mut n = learned.borrow_mut();
            if n.vrrp_in.is_empty() {
                n.ha_waker = Some(cx.waker().clone());
                core::task::Poll::Pending
            } else {
                core::task::Poll::Ready(())
            }
        });
        if at <= now {
            // More work now (a snapshot being read back in bounded steps): let the other
            // tasks run first.
            embassy_futures::yield_now().await;
            continue;
        }
        let at = Instant::from_millis(at);
        match select3(Timer::at(at), socket.recv_from(&mut message[..]), vrrp).await {
            Either3::Second(Ok((n, meta))) => {
                if let embassy_net::IpAddress::Ipv4(from) = meta.endpoint.addr {
                    let now = now_ms();
                    let mut h = ha.borrow_mut();
                    let mut a = app.borrow_mut();
                    h.handle_sync(now, from, &message[..n], a.bus());
                }
            }
            Either3::Second(Err(_)) | Either3::First(()) | Either3::Third(()) => {}
        }
    }
}

/// The sender (address, MAC) of an Ethernet ARP packet (untagged).
pub fn arp_sender(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[14..20] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let mac: [u8; 6] = frame[22..28].try_into().ok()?;
    let ip = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
    (mac != [0; 6] && !ip.is_unspecified()).then_some((ip, mac))
}

/// Writes an ARP reply saying `address` is at `mac`, to (`to_mac`, `to_ip`) (42 bytes).
pub fn arp_reply(
    frame: &mut [u8],
    mac: [u8; 6],
    address: Ipv4Addr,
    to_mac: [u8; 6],
    to_ip: Ipv4Addr,
) {
    frame[0..6].copy_from_slice(&to_mac);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&[0x08, 0x06]);
    frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&address.octets());
    frame[32..38].copy_from_slice(&to_mac);
    frame[38..42].copy_from_slice(&to_ip.octets());
}

/// Writes a broadcast ARP request for `target` from (`ip`, `mac`) into `frame` (42 bytes).
pub fn arp_request(frame: &mut [u8], mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) {
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&[0x08, 0x06]);
    frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    frame[32..38].copy_from_slice(&[0; 6]);
    frame[38..42].copy_from_slice(&target.octets());
}

impl<'l, D: Driver> Driver for Snoop<'l, D> {
    type RxToken<'a>
        = SnoopRx<'l, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = SnoopTx<'l, D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(
        &mut self,
        cx: &mut core::task::Context,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let learned = self.learned;
        // Proxy-ARP replies first, one per poll.
        // HA frames (adverts, gratuitous ARPs) first, one per poll.
        let frame = learned.borrow_mut().frames_out.pop_front();
        if let Some(frame) = frame {
            match self.inner.transmit(cx) {
                Some(tx) => tx.consume(frame.len(), |out| out.copy_from_slice(&frame)),
                None => {
                    let _ = learned.borrow_mut().frames_out.push_front(frame);
                }
            }
            cx.waker().wake_by_ref();
        }
        let answer = {
            let mut n = learned.borrow_mut();
            let virtual_mac = n.virtual_mac;
            match n.own {
                Some((_, mac)) => n
                    .to_answer
                    .pop_front()
                    .map(|a| (virtual_mac.unwrap_or(mac), a)),
                None => None,
            }
        };
        if let Some((mac, (address, to_mac, to_ip))) = answer {
            match self.inner.transmit(cx) {
                Some(tx) => tx.consume(42, |frame| arp_reply(frame, mac, address, to_mac, to_ip)),
                None => {
                    let _ = learned
                        .borrow_mut()
                        .to_answer
                        .push_front((address, to_mac, to_ip));
                }
            }
            cx.waker().wake_by_ref();
        }
        // Send one pending ARP request per poll (the stack polls on every wake).
        let pending = {
            let mut n = learned.borrow_mut();
            n.waker = Some(cx.waker().clone());
            match n.own {
                Some(own) => n.to_resolve.pop_front().map(|t| (own, t)),
                None => None,
            }
        };
        if let Some(((ip, mac), target)) = pending {
            match self.inner.transmit(cx) {
                Some(tx) => tx.consume(42, |frame| arp_request(frame, mac, ip, target)),
                None => {
                    let _ = learned.borrow_mut().to_resolve.push_front(target);
                }
            }
            if !learned.borrow().to_resolve.is_empty() {
                cx.waker().wake_by_ref();
            }
        }
        self.inner.receive(cx).map(|(rx, tx)| {
            (
                SnoopRx { inner: rx, learned },
                SnoopTx { inner: tx, learned },
            )
        })
    }

    fn transmit(&mut self, cx: &mut core::task::Context) -> Option<Self::TxToken<'_>> {
        let learned = self.learned;
        self.inner
            .transmit(cx)
            .map(|inner| SnoopTx { inner, learned })
    }

    fn link_state(&mut self, cx: &mut core::task::Context) -> LinkState {
        self.inner.link_state(cx)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn hardware_address(&self) -> HardwareAddress {
        self.inner.hardware_address()
    }
}
