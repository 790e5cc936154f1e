//! Runs an example filter `N` times on the benchmark's request, for instruction counts
//! under callgrind: the cost of one request is the difference of the runs with `N` and
//! with 0 divided by `N` (setup cancels out). Also prints the fuel one request used.
//!
//! ```sh
//! cargo build --release -p fulcrum-firmware --features filters --example filter_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/filter_instructions block_ua 10000
//! ```
//! Filters: `block_ua`, `route_by_header`, `request_id`, and `empty` (a WAT filter that
//! answers allow without reading the request: the fixed cost of a call).

#[path = "../tests/common/filters.rs"]
mod example_filters;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Answers allow (verdict bytes 0, 0) without reading the request.
const EMPTY: &str = r#"(module
    (memory (export "memory") 8192 (pagesize 1))
    (func (export "fulcrum_abi_version") (result i32) i32.const 1)
    (func (export "fulcrum_input") (result i32) i32.const 0)
    (func (export "fulcrum_input_capacity") (result i32) i32.const 4096)
    (func (export "fulcrum_output") (result i32) i32.const 4096)
    (func (export "fulcrum_output_capacity") (result i32) i32.const 64)
    (func (export "fulcrum_on_request") (param i32) (result i32)
        i32.const 4096 i32.const 0 i32.store16
        i32.const 2))"#;

/// Counts heap use, to size the MCU's heap: bytes live now, the peak, allocations made.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

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
    let wasm = if name == "empty" {
        wat::parse_str(EMPTY).expect("valid WAT")
    } else {
        example_filters::example(&name)
    };
    let mut filters = Filters::default();
    let (before, allocs_before) = (LIVE.load(Ordering::Relaxed), ALLOCS.load(Ordering::Relaxed));
    PEAK.store(before, Ordering::Relaxed);
    filters.install("svc", &wasm).expect("installs");
    let retained = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let install_allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    let mut fuel = 0;
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..n {
        let out = filters.run("svc", black_box(&req)).unwrap().unwrap();
        fuel = out.fuel_used;
    }
    let run_allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    println!(
        "{name}: module {} bytes; install: heap retained {retained} bytes, peak {peak} bytes, \
         {install_allocs} allocations; {n} requests: fuel per request {fuel}, {run_allocs} allocations",
        wasm.len()
    );
}
