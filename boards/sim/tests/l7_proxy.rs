//! The L7 proxy on the simulated board, on the in-process virtual network: HTTP clients
//! talk to an L7 VIP through the FPGA (punt) and the MCU's proxy to virtual HTTP
//! backends that echo what they received. Routing by path, `X-Forwarded-For`, cookie
//! persistence across a backend failure, deny rules with path normalization, rate
//! limiting, keep-alive with pipelining, request bodies, a corpus of malformed and
//! request-smuggling requests answered without harm, and the example WebAssembly filters
//! deciding requests (deny, route, headers), hot-swapped under traffic.

#[path = "../../../firmware/tests/common/filters.rs"]
mod example_filters;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use embassy_net::tcp::TcpSocket;
use fulcrum_firmware::l7::http::Reject;
use fulcrum_model::config::Config;
use fulcrum_model::tables::BackendState;
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{Health, HostHandle, HostSpec, Server, Switch, spawn_host};
use fulcrum_sim::{Board, BoardOptions, start};
use tokio::task::LocalSet;

const CONFIG: &str = r#"
[appliance]
name = "sim-l7"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
maglev_ring_size = 1021
flow_table = { sets = 1024, ways = 4 }

[[service]]
name = "app"
vip = "10.0.0.110"
protocol = "tcp"
port = 80
mode = "l7"
algorithm = "round_robin"
[service.health]
kind = "http"
path = "/healthz"
inter = 300
fastinter = 100
downinter = 300
rise = 2
fall = 2
timeout = 150
[[service.backend]]
name = "app-1"
address = "10.0.0.11"
port = 8080
[[service.backend]]
name = "app-2"
address = "10.0.0.12"
port = 8080
[[service.backend]]
name = "api-1"
address = "10.0.0.13"
port = 8080
pool = "api"

[[l7]]
service = "app"
cookie = "FULCRUM"
rate_limit = { rate = 20, burst = 40 }
request_timeout = "2s"
backend_timeout = "1s"
[[l7.route]]
path_prefix = "/api/"
pool = "api"
[[l7.deny]]
path_prefix = "/admin"
[[l7.deny]]
header = { name = "user-agent", contains = "sqlmap" }
"#;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 110);

struct Lab {
    board: Board,
    hosts: Vec<HostHandle>,
}

impl Lab {
    fn host(&self, name: &str) -> &HostHandle {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    fn state(&self, backend: &str) -> BackendState {
        let app = self.board.app.borrow();
        let slot = app.control_plane().backend_slot("app", backend).unwrap();
        self.board
            .fpga
            .borrow()
            .pipeline()
            .backend(slot)
            .unwrap()
            .state
    }

    async fn until(&self, what: &str, limit: Duration, f: impl Fn(&Lab) -> bool) {
        let start = Instant::now();
        while !f(self) {
            assert!(start.elapsed() < limit, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn counters(&self) -> fulcrum_firmware::l7::L7Counters {
        self.board.proxy.borrow().services()[0].counters
    }
}

fn lab(tag: &str) -> Lab {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = std::env::temp_dir().join(format!("fulcrum-l7-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config: Config = toml::from_str(CONFIG).unwrap();
    config.validate().unwrap();
    let mut switch = Switch::new();
    let (fpga_port, _) = switch.port();
    let spec = |name: &str, last: u8, server| HostSpec {
        name: name.to_string(),
        mac: [0x02, 0x00, 0x00, 0x00, 0x01, last],
        address: Ipv4Addr::new(10, 0, 0, last),
        prefix: 24,
        gateway: None,
        server,
    };
    let hosts = vec![
        spawn_host(&mut switch, spec("app-1", 11, Server::Http(8080)), 1),
        spawn_host(&mut switch, spec("app-2", 12, Server::Http(8080)), 2),
        spawn_host(&mut switch, spec("api-1", 13, Server::Http(8080)), 3),
        spawn_host(&mut switch, spec("client-1", 51, Server::None), 4),
        spawn_host(&mut switch, spec("client-2", 52, Server::None), 5),
        spawn_host(&mut switch, spec("client-3", 53, Server::None), 6),
    ];
    tokio::task::spawn_local(switch.run());
    let board = start(
        BoardOptions {
            state_dir: dir,
            config: Some(config),
            force_config: true,
            key: None,
            serial: false,
            geometry: Geometry {
                sets: 1024,
                ways: 4,
                ring: 1021,
            },
        },
        NetworkPort::Virtual(fpga_port),
    )
    .expect("board starts");
    Lab { board, hosts }
}

fn run<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&rt, f);
}

/// One HTTP response as the client saw it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }

    fn backend(&self) -> &str {
        self.body.trim().strip_prefix("ok from ").unwrap_or("")
    }
}

/// A client connection to the VIP.
struct Conn<'a> {
    socket: TcpSocket<'a>,
    data: Vec<u8>,
}

impl<'a> Conn<'a> {
    async fn open(host: &HostHandle, rx: &'a mut [u8], tx: &'a mut [u8]) -> Conn<'a> {
        let mut socket = TcpSocket::new(host.stack, rx, tx);
        socket.set_timeout(Some(embassy_time::Duration::from_secs(5)));
        socket
            .connect((VIP, 80))
            .await
            .expect("connects to the VIP");
        Conn {
            socket,
            data: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.socket.write(rest).await.expect("write");
            rest = &rest[n..];
        }
    }

    /// Reads one response (Content-Length framed); `None` if the connection closed first.
    async fn response(&mut self) -> Option<Response> {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = self.data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.data[..end]).to_string();
                let mut lines = head.lines();
                let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
                let headers: BTreeMap<String, String> = lines
                    .filter_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    })
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.data.len() >= end + 4 + len {
                    let body =
                        String::from_utf8_lossy(&self.data[end + 4..end + 4 + len]).to_string();
                    self.data.drain(..end + 4 + len);
                    return Some(Response {
                        status,
                        headers,
                        body,
                    });
                }
            }
            match tokio::time::timeout(Duration::from_secs(5), self.socket.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.data.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Whether the appliance closed the connection (EOF within a second).
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.socket.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    async fn close(mut self) {
        self.socket.close();
        let _ = tokio::time::timeout(Duration::from_millis(300), self.socket.flush()).await;
        self.socket.abort();
    }
}

/// One request on a fresh connection.
async fn request(host: &HostHandle, raw: &str) -> Option<Response> {
    let (mut rx, mut tx) = (vec![0u8; 8192], vec![0u8; 8192]);
    let mut c = Conn::open(host, &mut rx, &mut tx).await;
    c.send(raw.as_bytes()).await;
    let r = c.response().await;
    c.close().await;
    r
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: app.example\r\n{extra}\r\n")
}

async fn all_up(lab: &Lab) {
    lab.until("backends up", Duration::from_secs(10), |l| {
        ["app-1", "app-2", "api-1"]
            .iter()
            .all(|b| l.state(b) == BackendState::Up)
    })
    .await;
}

#[test]
fn routes_forwards_and_persists() {
    run(async {
        let lab = lab("route");
        all_up(&lab).await;
        let client = lab.host("client-1");

        // The default pool (round robin over app-1, app-2); api-1 only by route.
        let mut seen = BTreeMap::new();
        for _ in 0..6 {
            let r = request(client, &get("/", "")).await.expect("answer");
            assert_eq!(r.status, 200, "{r:?}");
            *seen.entry(r.backend().to_string()).or_insert(0) += 1;
            // X-Forwarded-For and Forwarded carry the client's address.
            assert_eq!(r.header("x-echo-x-forwarded-for"), Some("10.0.0.51"));
            assert_eq!(
                r.header("x-echo-forwarded"),
                Some("for=10.0.0.51;proto=http")
            );
        }
        assert_eq!(seen.get("app-1"), Some(&3), "{seen:?}");
        assert_eq!(seen.get("app-2"), Some(&3), "{seen:?}");
        for _ in 0..3 {
            let r = request(client, &get("/api/v1/items?x=1", ""))
                .await
                .unwrap();
            assert_eq!(r.backend(), "api-1");
            assert_eq!(r.header("x-echo-path"), Some("/api/v1/items?x=1"));
        }
        // An existing X-Forwarded-For is extended.
        let r = request(client, &get("/", "X-Forwarded-For: 203.0.113.9\r\n"))
            .await
            .unwrap();
        assert_eq!(
            r.header("x-echo-x-forwarded-for"),
            Some("203.0.113.9, 10.0.0.51")
        );

        // Cookie persistence: the first answer sets the cookie; with it, every request
        // goes to the same backend (round robin would alternate).
        let first = request(client, &get("/", "")).await.unwrap();
        let set = first
            .header("set-cookie")
            .expect("a persistence cookie")
            .to_string();
        assert!(
            set.starts_with("FULCRUM=") && set.contains("Path=/"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_string();
        let sticky = first.backend().to_string();
        for _ in 0..6 {
            let r = request(client, &get("/", &format!("Cookie: a=b; {cookie}\r\n")))
                .await
                .unwrap();
            assert_eq!(r.backend(), sticky);
            assert_eq!(r.header("set-cookie"), None, "no new cookie while it holds");
        }
        assert!(lab.counters().persisted >= 6);
        // The sticky backend dies: once it is down the cookie falls back to a healthy
        // backend, which sets a new cookie.
        lab.host(&sticky).set(Health::Dead);
        lab.until("sticky backend down", Duration::from_secs(5), |l| {
            l.state(&sticky) == BackendState::Down
        })
        .await;
        let r = request(client, &get("/", &format!("Cookie: {cookie}\r\n")))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_ne!(r.backend(), sticky);
        assert_ne!(r.backend(), "api-1", "the fallback stays in the pool");
        let new_cookie = r.header("set-cookie").expect("a new cookie");
        assert!(!new_cookie.starts_with(&cookie), "{new_cookie} vs {cookie}");

        // Keep-alive and pipelining: three requests in one write, answered in order on
        // one connection; then a request body (Content-Length) reaches the backend.
        let (mut rx, mut tx) = (vec![0u8; 8192], vec![0u8; 8192]);
        let mut c = Conn::open(lab.host("client-2"), &mut rx, &mut tx).await;
        let pipelined = [get("/a", ""), get("/api/b", ""), get("/c", "")].concat();
        c.send(pipelined.as_bytes()).await;
        let paths: Vec<String> = {
            let mut v = Vec::new();
            for _ in 0..3 {
                let r = c.response().await.expect("pipelined answer");
                v.push(r.header("x-echo-path").unwrap_or("").to_string());
            }
            v
        };
        assert_eq!(paths, ["/a", "/api/b", "/c"]);
        c.send(
            b"POST /form HTTP/1.1\r\nHost: app.example\r\nContent-Length: 11\r\n\r\nhello world",
        )
        .await;
        let r = c.response().await.expect("answer to the POST");
        assert_eq!(r.header("x-echo-body-length"), Some("11"));
        assert_eq!(
            r.header("connection"),
            None,
            "a kept connection says nothing"
        );
        // The client asks to close: the response says so, and the appliance closes
        // gracefully (FIN after the answer, not a reset).
        c.send(get("/last", "Connection: close\r\n").as_bytes())
            .await;
        let r = c.response().await.expect("answer to the last request");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("close"));
        let mut chunk = [0u8; 64];
        let end = tokio::time::timeout(Duration::from_secs(2), c.socket.read(&mut chunk)).await;
        assert!(matches!(end, Ok(Ok(0))), "end of stream, not {end:?}");
        c.close().await;
        // HTTP/1.0 without keep-alive: the same.
        let (mut rx, mut tx) = (vec![0u8; 8192], vec![0u8; 8192]);
        let mut c = Conn::open(lab.host("client-2"), &mut rx, &mut tx).await;
        c.send(b"GET /old HTTP/1.0\r\nHost: app.example\r\n\r\n")
            .await;
        let r = c.response().await.expect("answer to HTTP/1.0");
        assert_eq!(r.header("connection"), Some("close"));
        let end = tokio::time::timeout(Duration::from_secs(2), c.socket.read(&mut chunk)).await;
        assert!(matches!(end, Ok(Ok(0))), "end of stream, not {end:?}");
        c.close().await;
    });
}

/// Backend connections are kept alive and shared (HAProxy's `http-reuse safe`): a
/// client's requests to a backend go on one backend connection, a request to another
/// backend takes another one, and the idle connection serves the next request to its
/// backend from any client; the answers are the same as on fresh connections.
#[test]
fn backend_connections_are_kept_and_shared() {
    run(async {
        let lab = lab("reuse");
        all_up(&lab).await;
        let reused = |l: &Lab| l.counters().backend_reused;
        let ask = async |c: &mut Conn<'_>, path: &str| {
            c.send(get(path, "").as_bytes()).await;
            let r = c
                .response()
                .await
                .expect("an answer on the kept connection");
            assert_eq!(r.status, 200, "{r:?}");
            assert_ne!(r.header("connection"), Some("close"), "{r:?}");
            assert_eq!(r.header("x-echo-path"), Some(path));
            r.backend().to_string()
        };
        let (mut rx, mut tx) = (vec![0u8; 8192], vec![0u8; 8192]);
        let mut c = Conn::open(lab.host("client-2"), &mut rx, &mut tx).await;
        let before = reused(&lab);
        // Four requests routed to api-1: the first connects, three reuse.
        for i in 0..4 {
            assert_eq!(ask(&mut c, &format!("/api/{i}")).await, "api-1");
        }
        assert_eq!(reused(&lab) - before, 3, "{:?}", lab.counters());
        // The default pool: another backend, so another backend connection.
        let other = ask(&mut c, "/").await;
        assert!(other == "app-1" || other == "app-2", "{other}");
        assert_eq!(reused(&lab) - before, 3);
        // Back to api-1: its connection waited, idle.
        assert_eq!(ask(&mut c, "/api/again").await, "api-1");
        assert_eq!(reused(&lab) - before, 4);
        // Another client's request to api-1 takes the same idle connection.
        let (mut rx2, mut tx2) = (vec![0u8; 8192], vec![0u8; 8192]);
        let mut c2 = Conn::open(lab.host("client-3"), &mut rx2, &mut tx2).await;
        assert_eq!(ask(&mut c2, "/api/other-client").await, "api-1");
        assert_eq!(reused(&lab) - before, 5);
        c2.close().await;
        // A client that says close gets close, and its connection ends.
        c.send(get("/api/last", "Connection: close\r\n").as_bytes())
            .await;
        let r = c.response().await.expect("answer");
        assert_eq!(r.header("connection"), Some("close"), "{r:?}");
        assert!(
            c.closed().await,
            "the appliance closes after the last answer"
        );
        assert_eq!(lab.counters().backend_errors, 0);
    });
}

#[test]
fn a_client_beyond_the_workers_waits_instead_of_being_refused() {
    run(async {
        let lab = lab("busy");
        all_up(&lab).await;
        // Every worker holds an idle client connection (connected, no request yet).
        let clients = ["client-1", "client-2", "client-3"];
        let mut idle = Vec::new();
        for i in 0..fulcrum_sim::L7_WORKERS {
            let rx = Box::leak(vec![0u8; 1024].into_boxed_slice());
            let tx = Box::leak(vec![0u8; 1024].into_boxed_slice());
            idle.push(Conn::open(lab.host(clients[i % clients.len()]), rx, tx).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // One more: the stack has no listening socket left. Its SYN is dropped (not
        // answered with a reset) and retried, and it is served once a worker is free.
        let late = tokio::task::spawn_local({
            let host = lab.host("client-3").clone();
            async move {
                let rx = Box::leak(vec![0u8; 8192].into_boxed_slice());
                let tx = Box::leak(vec![0u8; 8192].into_boxed_slice());
                let mut c = Conn::open(&host, rx, tx).await;
                c.send(get("/late", "").as_bytes()).await;
                let r = c.response().await;
                c.close().await;
                r
            }
        });
        lab.until("a dropped SYN counted", Duration::from_secs(3), |l| {
            l.counters().dropped_syns >= 1
        })
        .await;
        assert!(!late.is_finished(), "the late client waits");
        idle.pop().expect("an idle connection").close().await;
        let r = tokio::time::timeout(Duration::from_secs(6), late)
            .await
            .expect("the late client is served once a worker is free")
            .expect("task")
            .expect("an answer");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-path"), Some("/late"));
        for c in idle {
            c.close().await;
        }
    });
}

#[test]
fn denies_limits_and_survives_malformed_requests() {
    run(async {
        let lab = lab("deny");
        all_up(&lab).await;
        let client = lab.host("client-1");

        // Deny rules, after path normalization.
        for path in [
            "/admin",
            "/admin/users",
            "/x/../admin",
            "/%61dmin",
            "/./admin",
        ] {
            let r = request(client, &get(path, "")).await.expect("answer");
            assert_eq!(r.status, 403, "{path}");
        }
        let r = request(client, &get("/", "User-Agent: sqlmap/1.7\r\n"))
            .await
            .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(
            request(client, &get("/administrator-not", ""))
                .await
                .unwrap()
                .status,
            403
        );
        assert_eq!(request(client, &get("/adm", "")).await.unwrap().status, 200);
        assert_eq!(lab.counters().denied, 7);

        // The corpus: every request answered with the right status and the connection
        // closed; nothing reaches a backend.
        let served_before: u64 = ["app-1", "app-2", "api-1"]
            .iter()
            .map(|b| lab.host(b).served.get())
            .sum();
        let long_header = format!("X-Big: {}\r\n", "a".repeat(5000));
        let long_target = format!("/{}", "b".repeat(2000));
        let corpus: Vec<(&str, String, u16)> = vec![
            ("cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), 400),
            ("two cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".into(), 400),
            ("equal cl twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na".into(), 400),
            ("signed cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd".into(), 400),
            ("te not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".into(), 501),
            ("te twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n".into(), 501),
            ("te on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), 501),
            ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n".into(), 400),
            ("no host", "GET / HTTP/1.1\r\n\r\n".into(), 400),
            ("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
            ("space in header name", "GET / HTTP/1.1\r\nHost : a\r\n\r\n".into(), 400),
            ("garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\r\n\r\n".into(), 400),
            ("header too large", format!("GET / HTTP/1.1\r\nHost: a\r\n{long_header}\r\n"), 431),
            ("target too long", format!("GET {long_target} HTTP/1.1\r\nHost: a\r\n\r\n"), 414),
            ("above the root", "GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
            ("connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n".into(), 501),
            ("upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".into(), 501),
        ];
        for (what, raw, status) in &corpus {
            let (mut rx, mut tx) = (vec![0u8; 8192], vec![0u8; 8192]);
            let mut c = Conn::open(lab.host("client-2"), &mut rx, &mut tx).await;
            c.send(raw.as_bytes()).await;
            let r = c
                .response()
                .await
                .unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(r.status, *status, "{what}");
            assert_eq!(r.header("connection"), Some("close"), "{what}");
            assert!(c.closed().await, "{what}: the connection stays open");
            c.close().await;
        }
        let served_after: u64 = ["app-1", "app-2", "api-1"]
            .iter()
            .map(|b| lab.host(b).served.get())
            .sum();
        // Health checks keep hitting the backends; none of the corpus may.
        let checks_allowance = 200;
        assert!(served_after - served_before < checks_allowance);
        let c = lab.counters();
        let count = |r: Reject| c.rejected[Reject::ALL.iter().position(|&x| x == r).unwrap()];
        assert_eq!(count(Reject::ClAndTe), 1);
        assert_eq!(count(Reject::BadContentLength), 3);
        assert_eq!(count(Reject::BadTransferEncoding), 3);
        assert_eq!(count(Reject::ObsFold), 1);
        assert_eq!(count(Reject::BadHost), 2);
        assert_eq!(count(Reject::HeadTooLarge), 1);
        assert_eq!(count(Reject::TargetTooLong), 1);
        assert_eq!(count(Reject::BadPath), 1);
        assert_eq!(count(Reject::NotImplemented), 2);

        // A chunked body with a bad chunk size: the request went out, the body is cut.
        let (mut rx, mut tx) = (vec![0u8; 8192], vec![0u8; 8192]);
        let mut c = Conn::open(lab.host("client-2"), &mut rx, &mut tx).await;
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").await;
        if let Some(r) = c.response().await {
            assert_eq!(r.status, 400);
        }
        assert!(c.closed().await);
        c.close().await;
        assert_eq!(count_after(&lab, Reject::BadChunk), 1);

        // The appliance still serves.
        assert_eq!(request(client, &get("/", "")).await.unwrap().status, 200);

        // Rate limit: burst 40 at 20/s; a client sending 80 at once gets 429s, another
        // client is not affected.
        let heavy = lab.host("client-3");
        let mut statuses = BTreeMap::new();
        let (mut rx, mut tx) = (vec![0u8; 65536], vec![0u8; 65536]);
        let mut c = Conn::open(heavy, &mut rx, &mut tx).await;
        for _ in 0..80 {
            c.send(get("/", "").as_bytes()).await;
            let r = c.response().await.expect("answer");
            if r.status == 429 {
                assert_eq!(r.header("retry-after"), Some("1"));
            }
            *statuses.entry(r.status).or_insert(0) += 1;
        }
        c.close().await;
        let limited = statuses.get(&429).copied().unwrap_or(0);
        assert!((20..=45).contains(&limited), "{statuses:?}");
        assert_eq!(request(client, &get("/", "")).await.unwrap().status, 200);

        // The management status (what `fulcrum status` and `metrics` show) carries the
        // proxy's counters for the L7 service, and none for the L4 ones.
        let now = fulcrum_firmware::net::now_ms();
        let report = lab.board.app.borrow_mut().status(now, 0);
        let c = lab.counters();
        for svc in &report.services {
            match svc.name.as_str() {
                "app" => {
                    let l7 = svc.l7.as_ref().expect("the L7 service's counters");
                    assert_eq!(*l7, c.status());
                    assert_eq!(l7.rate_limited, c.rate_limited);
                    assert!(l7.rate_limited >= 20 && l7.denied == 7, "{l7:?}");
                    assert_eq!(l7.rejected.len(), Reject::ALL.len());
                }
                other => assert!(svc.l7.is_none(), "{other} is not proxied"),
            }
        }
    });
}

fn count_after(lab: &Lab, r: Reject) -> u64 {
    lab.counters().rejected[Reject::ALL.iter().position(|&x| x == r).unwrap()]
}

#[test]
fn webassembly_filters_decide_requests() {
    run(async {
        let lab = lab("filters");
        all_up(&lab).await;
        let client = lab.host("client-1");
        let install = |name: &str| {
            lab.board
                .app
                .borrow_mut()
                .filters_mut()
                .install("app", &example_filters::example(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };

        // request-id: every forwarded request gets an id the backend sees.
        install("request_id");
        let r = request(client, &get("/", "")).await.unwrap();
        assert_eq!(r.status, 200);
        let id = r
            .header("x-echo-x-request-id")
            .expect("the backend saw an id")
            .to_string();
        assert!(id.contains('-'), "{id}");
        let r2 = request(client, &get("/", "")).await.unwrap();
        assert_ne!(r2.header("x-echo-x-request-id"), Some(id.as_str()));
        let r = request(client, &get("/", "X-Request-Id: mine\r\n"))
            .await
            .unwrap();
        assert_eq!(r.header("x-echo-x-request-id"), Some("mine"));

        // Swapped for block-ua: a scanner is refused by the filter, a browser passes; the
        // config's own deny rules still come first.
        install("block_ua");
        let r = request(client, &get("/", "User-Agent: masscan/1.3\r\n"))
            .await
            .unwrap();
        assert_eq!(r.status, 403);
        let r = request(client, &get("/", "User-Agent: Mozilla/5.0\r\n"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-echo-x-request-id"),
            None,
            "the old filter is gone"
        );
        assert!(lab.counters().filter_denied >= 1);

        // route-by-header: X-Pool picks the pool (the routes of the config do not).
        install("route_by_header");
        for _ in 0..3 {
            let r = request(client, &get("/", "X-Pool: api\r\n")).await.unwrap();
            assert_eq!(r.backend(), "api-1");
        }
        let r = request(client, &get("/", "X-Pool: nosuch\r\n"))
            .await
            .unwrap();
        assert_eq!(r.status, 503, "a pool the service does not have");
        let r = request(client, &get("/", "")).await.unwrap();
        assert_ne!(r.backend(), "api-1");

        // Removed: requests go on as before the filters.
        assert!(lab.board.app.borrow_mut().filters_mut().remove("app"));
        let r = request(client, &get("/", "User-Agent: masscan/1.3\r\n"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    });
}
