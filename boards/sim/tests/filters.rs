//! WebAssembly filters uploaded to the simulated board over management (TCP through the
//! gateway, authenticated, and the serial console): the example filters built from
//! `examples/filters`, chunked uploads larger than one envelope, refusals (digest
//! mismatch, oversize, invalid module) that keep the running filter, list and remove;
//! and the installed filter answering requests inside the board's firmware.

#![cfg(feature = "filters")]

#[path = "../../../firmware/tests/common/filters.rs"]
mod example_filters;

use std::net::Ipv4Addr;
use std::time::Duration;

use fulcrum_firmware::filter::{FilterAction, FilterRequest};
use fulcrum_host::client::{Client, ClientError};
use fulcrum_host::filters;
use fulcrum_mgmt::envelope::Key;
use fulcrum_mgmt::message::{ErrorCode, EventKind, Request, Response};
use fulcrum_model::config::{Config, Name};
use fulcrum_sim::fpga::Geometry;
use fulcrum_sim::network::NetworkPort;
use fulcrum_sim::vnet::{HostSpec, Server, Switch, spawn_host};
use fulcrum_sim::{BoardOptions, MANAGEMENT_PORT, start};
use sha2::Digest;
use tokio::task::LocalSet;

const CONFIG: &str = r#"
[appliance]
name = "sim-filters"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
maglev_ring_size = 1021
flow_table = { sets = 1024, ways = 4 }

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
[[service.backend]]
name = "web-1"
address = "10.0.0.11"
port = 8080
"#;

fn refused(result: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Refused { code, message, .. }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `wasm` with a custom section appended (ignored by the runtime).
fn with_custom_section(wasm: &[u8], name: &[u8], contents: &[u8]) -> Vec<u8> {
    fn leb128(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(contents);
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

#[test]
fn filters_upload_over_management_and_run_in_the_board() {
    let dir = std::env::temp_dir().join(format!("fulcrum-sim-filters-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let block_ua = example_filters::example("block_ua");
    let route = example_filters::example("route_by_header");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&rt, async {
        let config: Config = toml::from_str(CONFIG).unwrap();
        let mut switch = Switch::new();
        let (port, _) = switch.port();
        let operator = spawn_host(
            &mut switch,
            HostSpec {
                name: "operator".into(),
                mac: [2, 0, 0, 0, 1, 9],
                address: Ipv4Addr::new(10, 0, 0, 9),
                prefix: 24,
                gateway: None,
                server: Server::None,
            },
            9,
        );
        tokio::task::spawn_local(switch.run());
        let key = Key::new(b"filter test key").unwrap();
        let board = start(
            BoardOptions {
                state_dir: dir.clone(),
                config: Some(config),
                force_config: true,
                key: Some(key.clone()),
                serial: true,
                geometry: Geometry {
                    sets: 1024,
                    ways: 4,
                    ring: 1021,
                },
            },
            NetworkPort::Virtual(port),
        )
        .expect("board starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::task::spawn_local(fulcrum_sim::gateway::serve(
            listener,
            operator.stack,
            board.address,
            MANAGEMENT_PORT,
        ));
        let serial = board.serial_path.clone().unwrap();

        let (block_ua_c, route_c) = (block_ua.clone(), route.clone());
        let client = tokio::task::spawn_blocking(move || {
            let t = Duration::from_secs(10);
            let web = Name::try_from("web").unwrap();
            let mut c = Client::connect_tcp(&addr, key, t).expect("connects");
            assert!(filters::list(&mut c).unwrap().is_empty());

            // A module in several chunks: pad it with a custom section so it takes
            // three envelopes (custom sections are ignored by the runtime).
            let padded = with_custom_section(&block_ua_c, b"pad", &[0xee; 40_000]);
            assert!(padded.len() > 2 * fulcrum_mgmt::message::FILTER_CHUNK);
            let info = filters::upload(&mut c, &web, &padded).expect("uploads");
            assert_eq!(info.size as usize, padded.len());
            assert_eq!(info.sha256, <[u8; 32]>::from(sha2::Sha256::digest(&padded)));

            // A digest that does not match: refused, the running filter stays.
            let begin = Request::FilterBegin {
                service: web.clone(),
                length: route_c.len() as u32,
                sha256: [0; 32],
            };
            assert!(matches!(c.request(&begin), Ok(Response::Done)));
            let chunk = Request::FilterChunk {
                offset: 0,
                data: heapless::Vec::from_slice(&route_c).unwrap(),
            };
            assert!(matches!(c.request(&chunk), Ok(Response::Done)));
            let (code, message) = refused(c.request(&Request::FilterCommit));
            assert_eq!(code, ErrorCode::InvalidFilter);
            assert!(message.contains("SHA-256"), "{message}");

            // Too large for the appliance: refused at begin.
            let (code, message) = refused(c.request(&Request::FilterBegin {
                service: web.clone(),
                length: 10 << 20,
                sha256: [0; 32],
            }));
            assert_eq!(code, ErrorCode::InvalidFilter);
            assert!(message.contains("10485760"), "{message}");

            // A well-delivered module that is not WebAssembly.
            let (code, message) = refused(filters::upload(&mut c, &web, b"#!/bin/sh\nrm -rf /\n"));
            assert_eq!(code, ErrorCode::InvalidFilter);
            assert!(
                message.contains("not a valid WebAssembly module"),
                "{message}"
            );

            // Out of order chunk.
            let begin = Request::FilterBegin {
                service: web.clone(),
                length: 100,
                sha256: [0; 32],
            };
            assert!(matches!(c.request(&begin), Ok(Response::Done)));
            let (code, message) = refused(c.request(&Request::FilterChunk {
                offset: 50,
                data: heapless::Vec::from_slice(&[0; 50]).unwrap(),
            }));
            assert_eq!(code, ErrorCode::InvalidFilter);
            assert!(message.contains("expected 0"), "{message}");

            let list = filters::list(&mut c).unwrap();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].sha256, info.sha256, "the first filter still runs");

            // Over the serial console: a second service, then list and remove.
            let mut s = Client::open_serial(&serial, None, t).expect("serial opens");
            let api = Name::try_from("api").unwrap();
            filters::upload(&mut s, &api, &route_c).expect("uploads over serial");
            assert_eq!(filters::list(&mut s).unwrap().len(), 2);
            filters::remove(&mut s, &api).unwrap();
            let (code, _) = refused(filters::remove(&mut s, &api));
            assert_eq!(code, ErrorCode::NotFound);
            assert_eq!(filters::list(&mut c).unwrap().len(), 1);
        });
        client.await.expect("client thread");

        // The firmware runs what was uploaded.
        let mut app = board.app.borrow_mut();
        let bad: [(&str, &[u8]); 1] = [("User-Agent", b"sqlmap/1.7")];
        let req = FilterRequest {
            client: Ipv4Addr::new(192, 0, 2, 50),
            method: "GET",
            path: "/",
            minor_version: 1,
            headers: &bad,
            body_prefix: b"",
        };
        let out = app.filters_mut().run("web", &req).unwrap().unwrap();
        assert_eq!(out.action, FilterAction::Deny { status: 403 });
        assert!(app.filters_mut().run("api", &req).is_none());
        let kinds: Vec<EventKind> = app
            .events()
            .page(0)
            .events
            .iter()
            .map(|e| e.kind.clone())
            .collect();
        for service in ["web", "api"] {
            let service = Name::try_from(service).unwrap();
            assert!(kinds.contains(&EventKind::FilterInstalled {
                service: service.clone()
            }));
        }
        assert!(kinds.contains(&EventKind::FilterRejected {
            service: Name::try_from("web").unwrap()
        }));
        assert!(kinds.contains(&EventKind::FilterRemoved {
            service: Name::try_from("api").unwrap()
        }));
    });
    let _ = std::fs::remove_dir_all(&dir);
}
