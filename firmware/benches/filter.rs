//! Cost of the WebAssembly filters per request, on the host (wasmi, release build).
//!
//! * `filter/encode`: only encoding the request into a buffer (what the host does
//!   before every call), for comparison;
//! * `filter/empty`: a WAT filter that answers "allow" without looking at the request:
//!   the fixed cost of a call (encode, set fuel, call, decode the verdict);
//! * `filter/block_ua`, `filter/route_by_header`, `filter/request_id`: the example
//!   filters on a typical browser request (GET, 8 headers, ~420 bytes);
//! * `install/*`: validating, compiling and instantiating each example module.
//!
//! Instruction counts (deterministic, what the MCU cost scales with) come from
//! `examples/filter_instructions.rs` under callgrind: see `docs/PERFORMANCE.md`.

#[path = "../tests/common/filters.rs"]
mod example_filters;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
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

fn request() -> FilterRequest<'static> {
    FilterRequest {
        client: Ipv4Addr::new(192, 0, 2, 7),
        method: "GET",
        path: "/products/42?ref=home",
        minor_version: 1,
        headers: &HEADERS,
        body_prefix: b"",
    }
}

/// Answers allow (verdict bytes 0, 0 at the output buffer) without reading the request.
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

fn benches(c: &mut Criterion) {
    let req = request();
    let mut group = c.benchmark_group("filter");
    let mut buf = [0u8; 4096];
    group.bench_function("encode", |b| {
        b.iter(|| fulcrum_filter_sdk::request::encode(black_box(&req), &mut buf))
    });
    let mut filters = Filters::default();
    filters
        .install("empty", &wat::parse_str(EMPTY).unwrap())
        .unwrap();
    for name in ["block_ua", "route_by_header", "request_id"] {
        filters
            .install(name, &example_filters::example(name))
            .unwrap();
    }
    for name in ["empty", "block_ua", "route_by_header", "request_id"] {
        assert!(filters.run(name, &req).unwrap().is_ok());
        group.bench_function(name, |b| {
            b.iter(|| filters.run(black_box(name), black_box(&req)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("install");
    for name in ["block_ua", "route_by_header", "request_id"] {
        let wasm = example_filters::example(name);
        let mut filters = Filters::default();
        group.bench_function(name, |b| {
            b.iter(|| filters.install("svc", black_box(&wasm)).is_ok())
        });
    }
    group.finish();
}

criterion_group! {
    name = filter;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    targets = benches
}
criterion_main!(filter);
