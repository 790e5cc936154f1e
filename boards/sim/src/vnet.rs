//! The in-process virtual network: a learning Ethernet switch and virtual hosts, each a
//! real TCP/IP stack (embassy-net on smoltcp) running a small server — HTTP, Redis or
//! Memcached protocol — that a test or a failure drill can stop, black-hole or slow down.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::task::Poll;

use embassy_net::tcp::TcpSocket;
use embassy_net::{Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_time::{Duration, Timer};

use crate::link::{End, LinkDriver, link};

/// A learning switch. Ports whose `connected` flag is off neither send nor receive (a
/// pulled cable or a dead host).
#[derive(Default)]
pub struct Switch {
    ports: Vec<(End, Rc<Cell<bool>>)>,
}

impl Switch {
    /// An empty switch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a port; returns the far end (to attach a host or the FPGA) and its cable.
    pub fn port(&mut self) -> (End, Rc<Cell<bool>>) {
        let (near, far) = link();
        let cable = Rc::new(Cell::new(true));
        self.ports.push((near, cable.clone()));
        (far, cable)
    }

    /// Switches frames forever.
    pub async fn run(self) {
        let mut table: HashMap<[u8; 6], usize> = HashMap::new();
        let mut next = 0usize;
        loop {
            let (ingress, frame) = poll_fn(|cx| {
                // Round-robin start so no port starves the others.
                let n = self.ports.len();
                for k in 0..n {
                    let i = (next + k) % n;
                    if let Poll::Ready(f) = self.ports[i].0.poll_recv(cx) {
                        return Poll::Ready((i, f));
                    }
                }
                Poll::Pending
            })
            .await;
            next = (ingress + 1) % self.ports.len();
            if frame.len() < 14 || !self.ports[ingress].1.get() {
                continue;
            }
            let dst: [u8; 6] = frame[0..6].try_into().unwrap_or([0xff; 6]);
            let src: [u8; 6] = frame[6..12].try_into().unwrap_or([0; 6]);
            if src[0] & 1 == 0 {
                table.insert(src, ingress);
            }
            let out = |i: usize| {
                let (end, cable) = &self.ports[i];
                if i != ingress && cable.get() {
                    end.send(&frame);
                }
            };
            match table.get(&dst) {
                Some(&i) if dst[0] & 1 == 0 => out(i),
                _ => (0..self.ports.len()).for_each(out),
            }
        }
    }
}

/// What a virtual host serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// HTTP/1.1: every request gets `200 OK` with a body naming the host.
    Http(u16),
    /// Redis protocol: `PING` → `+PONG`.
    Redis(u16),
    /// Memcached text protocol: `version` → `VERSION ...`.
    Memcached(u16),
    /// Nothing listens (a client host).
    None,
}

/// How a virtual host behaves now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Answers normally.
    Up,
    /// The server process is stopped: the host answers SYNs with RST (connection refused).
    Stopped,
    /// The host is gone: its cable is pulled, nothing answers (timeouts).
    Dead,
    /// Answers after a delay, in ms.
    Slow(u32),
}

/// A handle to control and observe a virtual host.
#[derive(Clone)]
pub struct HostHandle {
    /// Name.
    pub name: String,
    /// Address.
    pub address: Ipv4Addr,
    /// The host's stack (to open client connections from it).
    pub stack: Stack<'static>,
    health: Rc<Cell<Health>>,
    changed: Rc<tokio::sync::Notify>,
    cable: Rc<Cell<bool>>,
    /// Requests answered by the server.
    pub served: Rc<Cell<u64>>,
}

impl HostHandle {
    /// Changes how the host behaves.
    pub fn set(&self, health: Health) {
        self.health.set(health);
        self.cable.set(health != Health::Dead);
        self.changed.notify_waiters();
    }

    /// Waits until the host's health is `want` (or not `want`, with `negate`).
    async fn wait_for(&self, want: Health, negate: bool) {
        loop {
            let changed = self.changed.notified();
            if (self.health() == want) != negate {
                return;
            }
            changed.await;
        }
    }

    /// How the host behaves.
    pub fn health(&self) -> Health {
        self.health.get()
    }
}

/// Parameters of a virtual host.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Name (in HTTP bodies and logs).
    pub name: String,
    /// MAC.
    pub mac: [u8; 6],
    /// Address.
    pub address: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Default gateway (the appliance, for NAT return traffic).
    pub gateway: Option<Ipv4Addr>,
    /// What it serves.
    pub server: Server,
}

/// Concurrent connections a virtual server handles.
pub const SERVER_CONCURRENCY: usize = 32;

/// What a backend of a DSR or tunnel service needs besides a server.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// VIPs the host answers for (DSR: "the VIP on loopback").
    pub vips: Vec<Ipv4Addr>,
    /// UDP ports where GUE is decapsulated (IP-in-IP always is, once there are VIPs).
    pub gue_ports: Vec<u16>,
    /// UDP ports with an echo server.
    pub udp_echo: Vec<u16>,
}

/// Starts a virtual host on a new switch port; spawns its tasks on the current `LocalSet`.
pub fn spawn_host(switch: &mut Switch, spec: HostSpec, seed: u64) -> HostHandle {
    spawn_host_with(switch, spec, Extras::default(), seed)
}

/// As [`spawn_host`], with VIPs, tunnel decapsulation and UDP echo servers.
pub fn spawn_host_with(
    switch: &mut Switch,
    spec: HostSpec,
    extras: Extras,
    seed: u64,
) -> HostHandle {
    let (end, cable) = switch.port();
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(spec.address, spec.prefix),
        gateway: spec.gateway,
        dns_servers: heapless::Vec::new(),
    });
    let resources = Box::leak(Box::new(StackResources::<{ SERVER_CONCURRENCY + 8 }>::new()));
    let driver = LinkDriver::new(end, spec.mac);
    let stack = if extras.vips.is_empty() {
        let (stack, mut runner) = embassy_net::new(driver, config, resources, seed);
        tokio::task::spawn_local(async move { runner.run().await });
        stack
    } else {
        let shim = crate::shim::VipShim::new(
            driver,
            spec.address,
            extras.vips.clone(),
            extras.gue_ports.clone(),
        );
        let (stack, mut runner) = embassy_net::new(shim, config, resources, seed);
        tokio::task::spawn_local(async move { runner.run().await });
        stack
    };
    let handle = HostHandle {
        name: spec.name.clone(),
        address: spec.address,
        stack,
        health: Rc::new(Cell::new(Health::Up)),
        changed: Rc::new(tokio::sync::Notify::new()),
        cable,
        served: Rc::new(Cell::new(0)),
    };
    if spec.server != Server::None {
        for _ in 0..SERVER_CONCURRENCY {
            let h = handle.clone();
            let server = spec.server.clone();
            tokio::task::spawn_local(async move { serve(h, server).await });
        }
    }
    for port in extras.udp_echo {
        let h = handle.clone();
        tokio::task::spawn_local(async move { udp_echo(h, port).await });
    }
    handle
}

/// Answers every UDP datagram on `port` with `<host name>: <datagram>`.
async fn udp_echo(host: HostHandle, port: u16) {
    use embassy_net::udp::{PacketMetadata, UdpSocket};
    let mut rx_meta = [PacketMetadata::EMPTY; 16];
    let mut tx_meta = [PacketMetadata::EMPTY; 16];
    let (mut rx, mut tx) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut socket = UdpSocket::new(host.stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
    if socket.bind(port).is_err() {
        return;
    }
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, meta)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if host.health() != Health::Up && !matches!(host.health(), Health::Slow(_)) {
            continue;
        }
        if let Health::Slow(ms) = host.health() {
            Timer::after_millis(u64::from(ms)).await;
        }
        let mut reply = format!("{}: ", host.name).into_bytes();
        reply.extend_from_slice(&buf[..n]);
        let _ = socket.send_to(&reply, meta.endpoint).await;
        host.served.set(host.served.get() + 1);
    }
}

async fn serve(host: HostHandle, server: Server) {
    let port = match server {
        Server::Http(p) | Server::Redis(p) | Server::Memcached(p) => p,
        Server::None => return,
    };
    let mut rx = vec![0u8; 2048];
    let mut tx = vec![0u8; 2048];
    loop {
        // A stopped server does not listen: SYNs get RST.
        host.wait_for(Health::Stopped, true).await;
        let mut socket = TcpSocket::new(host.stack, &mut rx, &mut tx);
        socket.set_timeout(Some(Duration::from_secs(10)));
        // Stopping the server closes its listening sockets too.
        let stopped = host.wait_for(Health::Stopped, false);
        match embassy_futures::select::select(socket.accept(port), stopped).await {
            embassy_futures::select::Either::First(Ok(())) => {}
            embassy_futures::select::Either::First(Err(_)) => continue,
            embassy_futures::select::Either::Second(()) => {
                socket.abort();
                continue;
            }
        }
        let _ = session(&host, &server, &mut socket).await;
        socket.close();
        let _ = socket.flush().await;
        socket.abort();
    }
}

async fn session(host: &HostHandle, server: &Server, socket: &mut TcpSocket<'_>) -> Result<(), ()> {
    let mut buf = RefCell::new(Vec::with_capacity(1024));
    let mut chunk = [0u8; 512];
    loop {
        let n = socket.read(&mut chunk).await.map_err(|_| ())?;
        if n == 0 {
            return Ok(());
        }
        if host.health() == Health::Stopped {
            return Err(());
        }
        buf.get_mut().extend_from_slice(&chunk[..n]);
        loop {
            let reply: Option<(Vec<u8>, bool)> = {
                let data = buf.borrow();
                match server {
                    Server::Http(_) => http_request_len(&data).map(|(head, len)| {
                        let body = format!("ok from {}\n", host.name);
                        let text = String::from_utf8_lossy(&data[..head]);
                        let path = text
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or("")
                            .to_string();
                        // What an application behind a proxy looks at, echoed as headers
                        // so tests can see what the appliance sent.
                        let mut echo = format!("X-Echo-Path: {path}\r\nX-Echo-Body-Length: {}\r\n", len - head);
                        for line in text.lines().skip(1) {
                            if let Some((k, v)) = line.split_once(':') {
                                let k = k.trim().to_ascii_lowercase();
                                if matches!(k.as_str(), "x-forwarded-for" | "forwarded" | "x-request-id" | "cookie") {
                                    echo.push_str(&format!("X-Echo-{k}: {}\r\n", v.trim()));
                                }
                            }
                        }
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{echo}Connection: keep-alive\r\n\r\n",
                            body.len()
                        );
                        ([head.into_bytes(), body.into_bytes()].concat(), false)
                    }),
                    Server::Redis(_) | Server::Memcached(_) => {
                        data.iter().position(|&b| b == b'\n').map(|end| {
                            let line = String::from_utf8_lossy(&data[..end]).trim().to_ascii_lowercase();
                            let reply: &[u8] = match (server, line.as_str()) {
                                (Server::Redis(_), "ping") => b"+PONG\r\n",
                                (Server::Redis(_), _) => b"-ERR unknown command\r\n",
                                (_, "version") => b"VERSION 1.6.0-fulcrum-sim\r\n",
                                (_, "quit") => b"",
                                _ => b"ERROR\r\n",
                            };
                            (reply.to_vec(), line == "quit")
                        })
                    }
                    Server::None => None,
                }
            };
            let Some((reply, close)) = reply else { break };
            // Consume the request just answered.
            {
                let mut data = buf.borrow_mut();
                let cut = match server {
                    Server::Http(_) => http_request_len(&data).map_or(0, |(_, len)| len),
                    _ => data.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1),
                };
                data.drain(..cut);
            }
            if let Health::Slow(ms) = host.health() {
                Timer::after_millis(u64::from(ms)).await;
            }
            let mut rest = &reply[..];
            while !rest.is_empty() {
                let k = socket.write(rest).await.map_err(|_| ())?;
                rest = &rest[k..];
            }
            host.served.set(host.served.get() + 1);
            if close {
                return Ok(());
            }
        }
    }
}

/// The (head, whole request) lengths of a complete HTTP request at the start of `data`
/// (bodies by `Content-Length`).
fn http_request_len(data: &[u8]) -> Option<(usize, usize)> {
    let head = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body: usize = String::from_utf8_lossy(&data[..head])
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (data.len() >= head + body).then_some((head, head + body))
}

/// One HTTP/1.1 GET on an open connection (keep-alive); returns the body.
pub async fn http_get(
    socket: &mut TcpSocket<'_>,
    host: &str,
    path: &str,
) -> Result<String, String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fulcrum-sim\r\n\r\n");
    let mut rest = request.as_bytes();
    while !rest.is_empty() {
        let n = socket
            .write(rest)
            .await
            .map_err(|e| format!("write: {e:?}"))?;
        if n == 0 {
            return Err("connection closed while sending".into());
        }
        rest = &rest[n..];
    }
    let mut data = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or("no Content-Length")?;
            if data.len() >= end + 4 + length {
                if !head.starts_with("HTTP/1.1 200") {
                    return Err(format!("status: {}", head.lines().next().unwrap_or("")));
                }
                return Ok(String::from_utf8_lossy(&data[end + 4..end + 4 + length]).to_string());
            }
        }
        let n = socket
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e:?}"))?;
        if n == 0 {
            return Err("connection closed before the answer".into());
        }
        data.extend_from_slice(&chunk[..n]);
    }
}
