//! Runs an example filter `N` times on the benchmark's request, for instruction counts
//! under callgrind: the cost of one request is the difference of the runs with `N` and
//! with 0 divided by `N` (setup cancels out). Also prints the fuel one request used.
//!
//! ```sh
//! cargo build --release -p fulcrum-firmware --features filters --example filter_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/filter_instructions block_ua 10000
//! ```
//! Filters: `block_ua`, `route_by_header`, `request_id`.

#[path = "../tests/common/filters.rs"]
mod example_filters;

use std::hint::black_box;
use std::net::Ipv4Addr;

use fulcrum_firmware::filter::{FilterRequest, Filters};

const HEADERS: [(&str, &[u8]); 8] = [
    ("Host", b"shop.example.com"),
    (
        "User-Agent",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "Accept",
        b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("Accept-Language", b"en-US,en;q=0.5"),
    ("Accept-Encoding", b"gzip, deflate, br"),
    ("Cookie", b"session=4f2a9c1e7b3d; theme=dark"),
    ("Connection", b"keep-alive"),
    ("Upgrade-Insecure-Requests", b"1"),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "block_ua".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let req = FilterRequest {
        client: Ipv4Addr::new(192, 0, 2, 7),
        method: "GET",
        path: "/products/42?ref=home",
        minor_version: 1,
        headers: &HEADERS,
        body_prefix: b"",
    };
    let mut filters = Filters::default();
    let wasm = example_filters::example(&name);
    filters.install("svc", &wasm).expect("installs");
    let mut fuel = 0;
    for _ in 0..n {
        let out = filters.run("svc", black_box(&req)).unwrap().unwrap();
        fuel = out.fuel_used;
    }
    println!("{name}: {n} requests, fuel per request {fuel}");
}
