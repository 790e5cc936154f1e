//! The WebAssembly filter runtime on the host: the three example filters (built from
//! `examples/filters` with the SDK), and hostile modules written in WAT (endless loops,
//! traps, oversized memory, wrong ABI, garbage, bad verdicts) — each an error, never a
//! panic, and never a half-installed filter.

#![cfg(feature = "filters")]

mod common;

use std::net::Ipv4Addr;

use common::filters::example;
use fulcrum_firmware::filter::{
    EditOp, FilterAction, FilterError, FilterLimits, FilterRequest, Filters, LoadError,
    UploadError, VerdictError, sha256,
};

fn request<'a>(path: &'a str, headers: &'a [(&'a str, &'a [u8])]) -> FilterRequest<'a> {
    FilterRequest {
        client: Ipv4Addr::new(192, 0, 2, 7),
        method: "GET",
        path,
        minor_version: 1,
        headers,
        body_prefix: b"",
    }
}

fn installed(service: &str, wasm: &[u8]) -> Filters {
    let mut filters = Filters::default();
    filters.install(service, wasm).expect("installs");
    filters
}

/// A minimal filter in WAT around `body` (the body of `fulcrum_on_request`, `$len` in
/// scope): 64 KiB memory, input at 0 (4 KiB), output at 4096 (1 KiB).
fn wat_filter(body: &str) -> Vec<u8> {
    wat_module(1, body, "")
}

fn wat_module(version: i32, body: &str, extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "fulcrum_abi_version") (result i32) i32.const {version})
            (func (export "fulcrum_input") (result i32) i32.const 0)
            (func (export "fulcrum_input_capacity") (result i32) i32.const 4096)
            (func (export "fulcrum_output") (result i32) i32.const 4096)
            (func (export "fulcrum_output_capacity") (result i32) i32.const 1024)
            (func (export "fulcrum_on_request") (param $len i32) (result i32) {body})
            {extra})"#
    ))
    .expect("valid WAT")
}

#[test]
fn block_ua_denies_bad_agents_and_allows_others() {
    let mut f = installed("web", &example("block_ua"));
    let bad: [(&str, &[u8]); 2] = [("Host", b"x"), ("User-Agent", b"Mozilla BADBOT/2")];
    let out = f.run("web", &request("/", &bad)).unwrap().unwrap();
    assert_eq!(out.action, FilterAction::Deny { status: 403 });
    assert_eq!(out.set_headers.len(), 1);
    assert_eq!(out.set_headers[0].name.as_str(), "X-Fulcrum-Filter");
    assert_eq!(&out.set_headers[0].value[..], b"block-ua");
    assert!(out.fuel_used > 0);

    let good: [(&str, &[u8]); 1] = [("user-agent", b"curl/8.5")];
    let out = f.run("web", &request("/", &good)).unwrap().unwrap();
    assert_eq!(out.action, FilterAction::Allow);
    assert!(out.set_headers.is_empty());

    let none: [(&str, &[u8]); 1] = [("Host", b"x")];
    let out = f.run("web", &request("/", &none)).unwrap().unwrap();
    assert_eq!(out.action, FilterAction::Deny { status: 403 });

    // Other services have no filter.
    assert!(f.run("api", &request("/", &good)).is_none());
    let info = f.get("web").unwrap();
    assert_eq!((info.runs, info.errors), (3, 0));
}

#[test]
fn route_by_header_routes_and_strips_the_hint() {
    let mut f = installed("web", &example("route_by_header"));
    let canary: [(&str, &[u8]); 1] = [("X-Pool", b"canary")];
    let out = f.run("web", &request("/", &canary)).unwrap().unwrap();
    assert_eq!(
        out.action,
        FilterAction::Route {
            pool: "canary".try_into().unwrap()
        }
    );
    assert_eq!(out.set_headers.len(), 1);
    assert_eq!(out.set_headers[0].op, EditOp::Remove);
    assert!(out.set_headers[0].name.eq_ignore_ascii_case("x-pool"));

    let out = f
        .run("web", &request("/api/v1/users", &[]))
        .unwrap()
        .unwrap();
    assert_eq!(
        out.action,
        FilterAction::Route {
            pool: "api".try_into().unwrap()
        }
    );

    let bad: [(&str, &[u8]); 1] = [("X-Pool", b"no spaces allowed")];
    let out = f.run("web", &request("/", &bad)).unwrap().unwrap();
    assert_eq!(out.action, FilterAction::Deny { status: 400 });

    let out = f.run("web", &request("/index.html", &[])).unwrap().unwrap();
    assert_eq!(out.action, FilterAction::Allow);
}

#[test]
fn request_id_numbers_requests_and_keeps_a_clients_id() {
    let mut f = installed("web", &example("request_id"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = f.run("web", &request("/", &[])).unwrap().unwrap();
        assert_eq!(out.action, FilterAction::Allow);
        let id = out
            .set_headers
            .iter()
            .find(|e| e.name == "X-Request-Id")
            .expect("an id");
        assert_eq!(id.op, EditOp::Set);
        ids.push(String::from_utf8(id.value.to_vec()).unwrap());
        let ip = out
            .set_headers
            .iter()
            .find(|e| e.name == "X-Client-Ip")
            .unwrap();
        assert_eq!(&ip.value[..], b"192.0.2.7");
    }
    // 192.0.2.7 = c0000207; the counter lives in the module's memory.
    assert_eq!(
        ids,
        [
            "c0000207-00000001",
            "c0000207-00000002",
            "c0000207-00000003"
        ]
    );
    let own: [(&str, &[u8]); 1] = [("x-request-id", b"abc")];
    let out = f.run("web", &request("/", &own)).unwrap().unwrap();
    assert!(out.set_headers.iter().all(|e| e.name != "X-Request-Id"));

    // Reinstalling starts a fresh instance (counter back to 1).
    f.install("web", &example("request_id")).unwrap();
    let out = f.run("web", &request("/", &[])).unwrap().unwrap();
    assert_eq!(&out.set_headers[0].value[..], b"c0000207-00000001");
}

#[test]
fn example_modules_fit_the_default_limits() {
    for name in ["block_ua", "route_by_header", "request_id"] {
        let wasm = example(name);
        let info = Filters::default().install("svc", &wasm).unwrap();
        assert_eq!(info.memory_bytes, 16 * 1024, "{name}");
        assert_eq!(info.size as usize, wasm.len());
        assert_eq!(info.sha256, sha256(&wasm));
    }
}

#[test]
fn an_endless_loop_runs_out_of_fuel_and_the_filter_stays() {
    let mut f = installed("web", &wat_filter("(loop $l (br $l)) i32.const 0"));
    for _ in 0..2 {
        assert_eq!(
            f.run("web", &request("/", &[])),
            Some(Err(FilterError::OutOfFuel))
        );
    }
    let info = f.get("web").unwrap();
    assert_eq!((info.runs, info.errors), (2, 2));
    assert_eq!(info.max_fuel_used, FilterLimits::DEFAULT.fuel_per_request);

    // A start function that never ends is stopped at install, by the setup budget.
    let spin = wat_module(1, "i32.const 0", "(func $s (loop $l (br $l))) (start $s)");
    assert_eq!(
        Filters::default().install("web", &spin).err(),
        Some(LoadError::Setup(FilterError::OutOfFuel))
    );
}

#[test]
fn traps_are_errors() {
    let cases = [
        ("unreachable", "wasm `unreachable` instruction executed"),
        ("i32.const 70000 i32.load", "out of bounds memory access"),
        (
            "i32.const 1 i32.const 0 i32.div_u",
            "integer divide by zero",
        ),
    ];
    for (body, reason) in cases {
        let mut f = installed("web", &wat_filter(body));
        assert_eq!(
            f.run("web", &request("/", &[])),
            Some(Err(FilterError::Trap { reason })),
            "{body}"
        );
    }
    // Unbounded recursion hits the value stack or call depth cap, not the MCU's stack.
    let deep = wat_module(
        1,
        "local.get $len call $r",
        "(func $r (param i32) (result i32) local.get 0 i32.const 1 i32.add call $r)",
    );
    let mut f = installed("web", &deep);
    assert!(matches!(
        f.run("web", &request("/", &[])),
        Some(Err(FilterError::Trap { .. }))
    ));
}

#[test]
fn memory_is_capped() {
    // Two 64 KiB pages: over the 64 KiB cap.
    let big = wat::parse_str(
        r#"(module (memory (export "memory") 2)
            (func (export "fulcrum_abi_version") (result i32) i32.const 1))"#,
    )
    .unwrap();
    assert_eq!(
        Filters::default().install("web", &big).err(),
        Some(LoadError::MemoryTooLarge {
            bytes: 128 * 1024,
            cap: 64 * 1024
        })
    );
    // Custom page sizes count too: 70,000 one-byte pages.
    let small_pages =
        wat::parse_str(r#"(module (memory (export "memory") 70000 (pagesize 1)))"#).unwrap();
    assert_eq!(
        Filters::default().install("web", &small_pages).err(),
        Some(LoadError::MemoryTooLarge {
            bytes: 70_000,
            cap: 64 * 1024
        })
    );
    // Growing beyond the cap fails inside the filter (memory.grow returns -1), which
    // this filter reports as its own error.
    let mut f = installed("web", &wat_filter("i32.const 1 memory.grow"));
    assert_eq!(
        f.run("web", &request("/", &[])),
        Some(Err(FilterError::Failed(-1)))
    );
}

#[test]
fn modules_that_break_the_abi_are_refused() {
    let mut f = Filters::default();
    assert_eq!(
        f.install("web", &wat_module(2, "i32.const 0", "")).err(),
        Some(LoadError::WrongAbiVersion(2))
    );
    assert!(matches!(
        f.install("web", b"\0asm\x01\0\0\0garbage").err(),
        Some(LoadError::Invalid(_))
    ));
    assert!(matches!(
        f.install("web", b"GET / HTTP/1.1\r\n\r\n").err(),
        Some(LoadError::Invalid(_))
    ));
    assert!(matches!(
        f.install("web", b"").err(),
        Some(LoadError::Invalid(_))
    ));
    let imports = wat::parse_str(
        r#"(module (import "env" "log" (func (param i32)))
            (memory (export "memory") 1))"#,
    )
    .unwrap();
    assert_eq!(
        f.install("web", &imports).err(),
        Some(LoadError::HasImports)
    );
    let no_memory = wat::parse_str(
        r#"(module (func (export "fulcrum_abi_version") (result i32) i32.const 1))"#,
    )
    .unwrap();
    assert_eq!(
        f.install("web", &no_memory).err(),
        Some(LoadError::NoMemory)
    );
    let no_handler = wat::parse_str(
        r#"(module (memory (export "memory") 1)
            (func (export "fulcrum_abi_version") (result i32) i32.const 1))"#,
    )
    .unwrap();
    assert_eq!(
        f.install("web", &no_handler).err(),
        Some(LoadError::MissingExport("fulcrum_on_request"))
    );
    let wrong_type = wat::parse_str(
        r#"(module (memory (export "memory") 1)
            (func (export "fulcrum_abi_version") (result i32) i32.const 1)
            (func (export "fulcrum_on_request") (result i32) i32.const 0))"#,
    )
    .unwrap();
    assert_eq!(
        f.install("web", &wrong_type).err(),
        Some(LoadError::MissingExport("fulcrum_on_request"))
    );
    let outside = wat::parse_str(
        r#"(module (memory (export "memory") 1)
            (func (export "fulcrum_abi_version") (result i32) i32.const 1)
            (func (export "fulcrum_input") (result i32) i32.const 65000)
            (func (export "fulcrum_input_capacity") (result i32) i32.const 4096)
            (func (export "fulcrum_output") (result i32) i32.const 0)
            (func (export "fulcrum_output_capacity") (result i32) i32.const 16)
            (func (export "fulcrum_on_request") (param i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    f.remove("web");
    assert_eq!(
        f.install("web", &outside).err(),
        Some(LoadError::BufferOutOfBounds)
    );
    assert_eq!(f.list().count(), 0);
    let huge = vec![0u8; FilterLimits::DEFAULT.max_module_bytes + 1];
    assert!(matches!(
        f.install("web", &huge).err(),
        Some(LoadError::TooLarge { .. })
    ));
    assert_eq!(
        f.install("", &example("block_ua")).err(),
        Some(LoadError::BadServiceName)
    );
}

#[test]
fn bad_verdicts_are_errors() {
    // Output buffer at 4096: write one byte and return its length.
    let write = |bytes: &[u8], ret: i32| {
        let mut body = String::new();
        for (i, b) in bytes.iter().enumerate() {
            body.push_str(&format!("i32.const {} i32.const {b} i32.store8 ", 4096 + i));
        }
        body.push_str(&format!("i32.const {ret}"));
        wat_filter(&body)
    };
    let cases = [
        (
            write(&[9, 0], 2),
            FilterError::BadVerdict(VerdictError::UnknownAction(9)),
        ),
        (
            write(&[0], 1),
            FilterError::BadVerdict(VerdictError::Truncated),
        ),
        (
            write(&[0, 0, 7], 3),
            FilterError::BadVerdict(VerdictError::TrailingBytes),
        ),
        (
            write(&[1, 0x93, 0x01], 3),
            FilterError::BadVerdict(VerdictError::Truncated),
        ),
        (
            write(&[1, 0x64, 0, 0], 4),
            FilterError::BadVerdict(VerdictError::BadStatus(100)),
        ),
        (
            write(&[0, 1, 1, 2, b't', b'e', 1, 0, b'x'], 9),
            FilterError::BadVerdict(VerdictError::ProtectedHeader),
        ),
        (write(&[], 1025), FilterError::OutputOutOfBounds(1025)),
        (
            write(&[], i32::MAX),
            FilterError::OutputOutOfBounds(i32::MAX),
        ),
        (write(&[], -2), FilterError::Failed(-2)),
    ];
    for (wasm, error) in cases {
        let mut f = installed("web", &wasm);
        assert_eq!(f.run("web", &request("/", &[])), Some(Err(error)));
    }
    // A good verdict written by hand decodes.
    let mut f = installed("web", &write(&[1, 0x93, 0x01, 0], 4));
    let out = f.run("web", &request("/", &[])).unwrap().unwrap();
    assert_eq!(out.action, FilterAction::Deny { status: 403 });
}

#[test]
fn a_request_too_large_for_the_input_buffer_is_an_error() {
    let mut f = installed("web", &example("block_ua"));
    let long = vec![b'a'; 5000];
    let headers: [(&str, &[u8]); 1] = [("Cookie", &long)];
    assert_eq!(
        f.run("web", &request("/", &headers)),
        Some(Err(FilterError::RequestTooLarge))
    );
    let odd: [(&str, &[u8]); 1] = [("Ünïcode", b"x")];
    assert_eq!(
        f.run("web", &request("/", &odd)),
        Some(Err(FilterError::NonAsciiHeaderName))
    );
    // A long body is only cut.
    let ua: [(&str, &[u8]); 1] = [("User-Agent", b"curl")];
    let body = vec![b'b'; 100_000];
    let req = FilterRequest {
        body_prefix: &body,
        ..request("/", &ua)
    };
    assert_eq!(
        f.run("web", &req).unwrap().unwrap().action,
        FilterAction::Allow
    );
}

#[test]
fn hot_swap_is_all_or_nothing() {
    let mut f = installed("web", &example("block_ua"));
    let bad: [(&str, &[u8]); 1] = [("User-Agent", b"sqlmap")];
    let deny = FilterAction::Deny { status: 403 };
    // Refused replacements leave the old filter running.
    for broken in [
        b"garbage".to_vec(),
        wat_module(2, "i32.const 0", ""),
        wat_module(1, "i32.const 0", "(func $s unreachable) (start $s)"),
    ] {
        assert!(f.install("web", &broken).is_err());
        assert_eq!(
            f.run("web", &request("/", &bad)).unwrap().unwrap().action,
            deny
        );
    }
    // A good one replaces it.
    f.install("web", &example("route_by_header")).unwrap();
    assert_eq!(
        f.run("web", &request("/", &bad)).unwrap().unwrap().action,
        FilterAction::Allow
    );
    assert_eq!(f.list().count(), 1);
    assert!(f.remove("web"));
    assert!(!f.remove("web"));
    assert!(f.run("web", &request("/", &bad)).is_none());
}

#[test]
fn slots_are_limited() {
    let wasm = example("block_ua");
    let mut f = Filters::default();
    for i in 0..fulcrum_mgmt::message::MAX_FILTERS {
        f.install(&format!("svc{i}"), &wasm).unwrap();
    }
    assert_eq!(
        f.install("one-more", &wasm).err(),
        Some(LoadError::TooManyFilters)
    );
    // Replacing an existing one still works.
    f.install("svc0", &example("request_id")).unwrap();
}

#[test]
fn uploads_are_assembled_and_checked() {
    let wasm = example("route_by_header");
    let digest = sha256(&wasm);
    let mut f = Filters::default();
    let len = wasm.len() as u32;

    f.begin_upload("web", len, digest).unwrap();
    let mut at = 0;
    for chunk in wasm.chunks(1000) {
        assert_eq!(f.upload_chunk(at, chunk).unwrap(), at + chunk.len() as u32);
        at += chunk.len() as u32;
    }
    let info = f.commit_upload().unwrap();
    assert_eq!(info.sha256, digest);
    assert!(f.get("web").is_some());

    // Digest mismatch: refused, old filter kept.
    f.begin_upload("web", len, [0; 32]).unwrap();
    f.upload_chunk(0, &wasm).unwrap();
    assert_eq!(f.commit_upload(), Err(UploadError::DigestMismatch));
    assert_eq!(f.get("web").unwrap().sha256, digest);
    assert_eq!(f.commit_upload(), Err(UploadError::NotStarted));

    // Out of order, overflow, incomplete, oversize.
    f.begin_upload("web", len, digest).unwrap();
    assert_eq!(
        f.upload_chunk(5, &wasm[5..]),
        Err(UploadError::WrongOffset {
            offset: 5,
            expected: 0
        })
    );
    assert_eq!(f.upload_chunk(0, &wasm), Err(UploadError::NotStarted));
    f.begin_upload("web", 10, digest).unwrap();
    assert_eq!(f.upload_chunk(0, &wasm[..11]), Err(UploadError::Overflow));
    f.begin_upload("web", len, digest).unwrap();
    f.upload_chunk(0, &wasm[..10]).unwrap();
    assert_eq!(
        f.commit_upload(),
        Err(UploadError::Incomplete {
            received: 10,
            length: len
        })
    );
    let max = FilterLimits::DEFAULT.max_module_bytes;
    assert_eq!(
        f.begin_upload("web", max as u32 + 1, digest),
        Err(UploadError::BadLength {
            length: max as u32 + 1,
            max
        })
    );
    assert_eq!(
        f.begin_upload("web", 0, digest),
        Err(UploadError::BadLength { length: 0, max })
    );
    // A valid upload of an invalid module: refused as a load error.
    let garbage = b"not wasm at all";
    f.begin_upload("web", garbage.len() as u32, sha256(garbage))
        .unwrap();
    f.upload_chunk(0, garbage).unwrap();
    assert!(matches!(
        f.commit_upload(),
        Err(UploadError::Load(LoadError::Invalid(_)))
    ));
    assert_eq!(f.get("web").unwrap().sha256, digest);
}

/// Arbitrary bytes never panic the loader (a cheap fuzz, deterministic seed).
#[test]
fn random_and_mutated_modules_never_panic() {
    let seed_module = example("block_ua");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut f = Filters::default();
    let ua: [(&str, &[u8]); 1] = [("User-Agent", b"x")];
    let mut loaded = 0;
    for _ in 0..300 {
        let mut wasm = seed_module.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % wasm.len();
            wasm[i] = next() as u8;
        }
        if f.install("web", &wasm).is_ok() {
            loaded += 1;
            let _ = f.run("web", &request("/", &ua));
        }
    }
    for _ in 0..100 {
        let len = (next() % 200) as usize;
        let mut wasm: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if next() % 2 == 0 && wasm.len() >= 8 {
            wasm[..8].copy_from_slice(b"\0asm\x01\0\0\0");
        }
        let _ = f.install("web", &wasm);
    }
    println!("{loaded} of 300 mutated modules still loaded");
}

#[test]
fn a_free_memory_probe_refuses_modules_the_heap_cannot_hold() {
    let wasm = example("block_ua");
    let mut f = Filters::default();
    f.set_free_memory_probe(|| 40 * 1024);
    // 3.9 KB × 12 + 16 KiB memory + 16 KiB stack + 8 KiB > 40 KiB.
    assert_eq!(f.install("web", &wasm).err(), Some(LoadError::OutOfMemory));
    assert_eq!(f.list().count(), 0);
    f.set_free_memory_probe(|| 200 * 1024);
    assert!(f.install("web", &wasm).is_ok());
}

#[test]
fn instantiation_failures_are_errors() {
    let mut f = Filters::default();
    // A data segment beyond the memory.
    let data = wat_module(1, "i32.const 0", r#"(data (i32.const 65530) "0123456789")"#);
    // (WebAssembly makes this a trap during instantiation.)
    assert_eq!(
        f.install("web", &data).err(),
        Some(LoadError::Setup(FilterError::Trap {
            reason: "out of bounds memory access"
        }))
    );
    // A table far larger than the limiter allows.
    let table = wat_module(1, "i32.const 0", "(table 100000 funcref)");
    assert!(matches!(
        f.install("web", &table).err(),
        Some(LoadError::Instantiate(_))
    ));
    // A 64-bit memory.
    let memory64 = wat::parse_str(r#"(module (memory (export "memory") i64 1))"#).unwrap();
    assert!(matches!(
        f.install("web", &memory64).err(),
        Some(LoadError::UnsupportedMemory | LoadError::Invalid(_))
    ));
    // Growing past the cap in the start function fails quietly (-1), the filter loads.
    let grow = wat_module(
        1,
        "i32.const 0",
        "(func $s i32.const 1 memory.grow drop) (start $s)",
    );
    let info = f.install("web", &grow).unwrap();
    assert_eq!(info.memory_bytes, 64 * 1024);
}
