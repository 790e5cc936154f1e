//! The L7 proxy's per-request work without the network, shared by the criterion bench
//! (`benches/l7.rs`) and the instruction-count driver (`examples/l7_instructions.rs`):
//! parse a typical browser request head, build the rule view (path normalization), rate
//! limit and deny rules, route + cookie + pool choice (the model's algorithm),
//! re-serialize the head for the backend, then parse the backend's response head and
//! re-serialize it for the client.

use std::hint::black_box;
use std::net::Ipv4Addr;

use fulcrum_firmware::l7::http::{parse_request, parse_response};
use fulcrum_firmware::l7::{L7Proxy, request_view, write_request_head, write_response_head};
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::Config;

const CONFIG: &str = r#"
[appliance]
name = "bench"
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
algorithm = "least_connections"
[[service.backend]]
name = "a1"
address = "10.0.2.1"
[[service.backend]]
name = "a2"
address = "10.0.2.2"
[[service.backend]]
name = "a3"
address = "10.0.2.3"
[[service.backend]]
name = "api1"
address = "10.0.2.9"
pool = "api"
[[l7]]
service = "app"
cookie = "SRV"
rate_limit = { rate = 1000000, burst = 1000000 }
[[l7.route]]
host = "api.example.com"
pool = "api"
[[l7.route]]
path_prefix = "/api/"
pool = "api"
[[l7.deny]]
path_prefix = "/admin"
[[l7.deny]]
header = { name = "user-agent", contains = "sqlmap" }
"#;

const REQUEST: &[u8] = b"GET /static/app/main.3f2a1c.js?v=12 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: http://www.example.com/\r\n\
Connection: keep-alive\r\n\
Cookie: theme=dark; session=6f1c2a9b0e; SRV=00000000\r\n\
\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/javascript\r\n\
Content-Length: 48213\r\n\
Cache-Control: public, max-age=31536000\r\n\
ETag: \"3f2a1c\"\r\n\
Connection: keep-alive\r\n\
\r\n";

/// A proxy over four healthy backends (least connections, two routes, two deny rules,
/// cookie persistence, a rate limit that never refuses).
pub struct Workload {
    cp: Box<ControlPlane>,
    proxy: L7Proxy,
    out: [u8; 4096],
    now: u64,
}

impl Workload {
    /// Set up.
    pub fn new() -> Self {
        let config: Config = toml::from_str(CONFIG).unwrap();
        config.validate().unwrap();
        let mut cp = Box::new(ControlPlane::new());
        cp.apply(&config).unwrap();
        for slot in 0..4 {
            cp.set_health(slot, true);
        }
        let mut proxy = L7Proxy::new();
        proxy.refresh(&config, 1, &cp, 1);
        Workload {
            cp,
            proxy,
            out: [0; 4096],
            now: 0,
        }
    }

    /// One request and its response head; returns the response head's length.
    pub fn request(&mut self) -> usize {
        self.now += 1;
        let buf = black_box(REQUEST);
        let head = parse_request(buf, false).unwrap().unwrap();
        let mut path = [0u8; 1024];
        let mut headers = [("", &[][..]); 48];
        let view = request_view(buf, &head, &mut path, &mut headers).unwrap();
        let client = (Ipv4Addr::new(192, 0, 2, 7), 40000);
        self.proxy.admit(self.now, 0, client.0, &view).unwrap();
        let fwd = self.proxy.choose(0, client, &view, None, &self.cp).unwrap();
        let n = write_request_head(&mut self.out, buf, &head, client.0, true, &[], false).unwrap();
        black_box(&self.out[..n]);
        let resp = black_box(RESPONSE);
        let rh = parse_response(resp, false, false).unwrap().unwrap();
        write_response_head(
            &mut self.out,
            resp,
            &rh,
            fwd.set_cookie.map(|t| ("SRV", t)),
            true,
            1,
        )
        .unwrap()
    }
}
