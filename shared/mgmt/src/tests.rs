extern crate std;

use std::vec::Vec as StdVec;

use fulcrum_model::config::{AdminState, Algorithm, Mode, Name, Protocol};
use fulcrum_model::tables::BackendState;
use proptest::prelude::*;

use crate::envelope::{AuthError, ClientError, Key};
use crate::framing::{FrameError, FrameReader, encode};
use crate::message::*;
use crate::*;

fn key(k: &[u8]) -> Option<Key> {
    Key::new(k)
}

fn buf() -> StdVec<u8> {
    std::vec![0u8; MAX_ENVELOPE]
}

fn hello_info(session: u64, auth: bool) -> Response {
    Response::Hello(HelloInfo {
        name: Name::try_from("edge-1").unwrap(),
        version: heapless::String::try_from("0.1.0").unwrap(),
        session,
        auth_required: auth,
        generation: 3,
    })
}

/// Runs Hello between a client and a server; returns the session number the client got.
fn handshake(
    client: &mut ClientSession,
    server: &mut ServerSession,
    fresh: u64,
) -> Result<u64, ClientError> {
    let mut b = buf();
    let n = client.hello(&mut b).unwrap();
    let (req, to) = server.accept(&b[..n], fresh).expect("hello accepted");
    assert!(matches!(req, Request::Hello { .. }));
    let mut out = buf();
    let m = server
        .reply(&mut out, to, &hello_info(fresh, true))
        .unwrap();
    client.accept_hello(&out[..m]).map(|info| info.session)
}

#[test]
fn authenticated_session_round_trip() {
    let k = key(b"correct horse battery staple");
    let mut client = ClientSession::new(k.clone(), 0x1111);
    let mut server = ServerSession::new(k, true);
    assert_eq!(handshake(&mut client, &mut server, 0xABCD), Ok(0xABCD));

    for page in 0..3u8 {
        let mut b = buf();
        let n = client.request(&mut b, &Request::Status { page }).unwrap();
        let (req, to) = server.accept(&b[..n], 1).expect("accepted");
        assert_eq!(req, Request::Status { page });
        let mut out = buf();
        let m = server.reply(&mut out, to, &Response::Done).unwrap();
        assert_eq!(client.accept(&out[..m]), Ok(Response::Done));
    }
}

#[test]
fn replayed_reordered_and_cross_session_requests_are_refused() {
    let k = key(b"k");
    let mut client = ClientSession::new(k.clone(), 7);
    let mut server = ServerSession::new(k.clone(), true);
    handshake(&mut client, &mut server, 99).unwrap();
    let mut first = buf();
    let n1 = client.request(&mut first, &Request::GetConfig).unwrap();
    let mut second = buf();
    let n2 = client.request(&mut second, &Request::GetConfig).unwrap();
    assert!(server.accept(&second[..n2], 1).is_ok());
    // An older sequence number after a newer one: reordered or replayed.
    assert_eq!(
        server.accept(&first[..n1], 1).unwrap_err().0,
        AuthError::Replay
    );
    // The same message again.
    assert_eq!(
        server.accept(&second[..n2], 1).unwrap_err().0,
        AuthError::Replay
    );
    // A new connection (new session) does not accept messages of the old one.
    let mut server2 = ServerSession::new(k, true);
    let mut client2 = ClientSession::new(key(b"k"), 8);
    handshake(&mut client2, &mut server2, 100).unwrap();
    assert_eq!(
        server2.accept(&second[..n2], 1).unwrap_err().0,
        AuthError::Replay
    );
}

#[test]
fn wrong_key_is_detected_by_both_sides() {
    let mut client = ClientSession::new(key(b"wrong"), 5);
    let mut server = ServerSession::new(key(b"right"), true);
    // The client sees that the appliance's Hello does not verify with its key.
    assert_eq!(
        handshake(&mut client, &mut server, 42),
        Err(ClientError::Unauthenticated)
    );
    // And the appliance refuses the client's tagged requests.
    let mut forced = ClientSession::new(key(b"wrong"), 5);
    let mut b = buf();
    let n = forced.request(&mut b, &Request::GetConfig).unwrap();
    let (err, to) = server.accept(&b[..n], 1).unwrap_err();
    assert_eq!(err, AuthError::BadTag);
    let mut out = buf();
    let m = server
        .reply(
            &mut out,
            to,
            &Response::Error(ErrorReply::new(err.code(), err.message())),
        )
        .unwrap();
    match forced.accept(&out[..m]) {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::AuthFailed),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn network_link_requires_authentication_and_detects_tampering() {
    let k = key(b"secret");
    let mut server = ServerSession::new(k.clone(), true);
    let mut plain = ClientSession::new(None, 1);
    let mut b = buf();
    let n = plain.request(&mut b, &Request::GetConfig).unwrap();
    assert_eq!(
        server.accept(&b[..n], 1).unwrap_err().0,
        AuthError::Required
    );

    let mut client = ClientSession::new(k, 2);
    handshake(&mut client, &mut server, 77).unwrap();
    let n = client
        .request(
            &mut b,
            &Request::Backend {
                service: Name::try_from("web").unwrap(),
                backend: Name::try_from("web-1").unwrap(),
                state: AdminState::Drain,
            },
        )
        .unwrap();
    for i in 0..n {
        let mut t = b[..n].to_vec();
        t[i] ^= 0x20;
        assert!(
            server.accept(&t, 1).is_err(),
            "flipping byte {i} went unnoticed"
        );
    }
    assert!(server.accept(&b[..n], 1).is_ok());
}

#[test]
fn serial_console_accepts_untagged_requests() {
    let mut server = ServerSession::new(None, false);
    let mut client = ClientSession::new(None, 3);
    let mut b = buf();
    let n = client
        .request(&mut b, &Request::Events { after: 4 })
        .unwrap();
    let (req, to) = server.accept(&b[..n], 1).unwrap();
    assert_eq!(req, Request::Events { after: 4 });
    let mut out = buf();
    let m = server.reply(&mut out, to, &Response::Done).unwrap();
    assert_eq!(client.accept(&out[..m]), Ok(Response::Done));
}

#[test]
fn frames_split_joined_and_garbled() {
    let mut stream = StdVec::new();
    let mut enc = std::vec![0u8; MAX_FRAME + 1];
    let payloads: [&[u8]; 3] = [b"\x00\x01\x02\x00", b"hello", &[0u8; 300]];
    stream.extend_from_slice(b"\x05\x06garbage-before-first-delimiter\x00");
    for p in payloads {
        let n = encode(p, &mut enc).unwrap();
        stream.extend_from_slice(&enc[..n]);
    }
    // Feed in awkward chunk sizes; collect frames.
    for chunk in [1usize, 2, 7, 64, stream.len()] {
        let mut reader: FrameReader<1024> = FrameReader::new();
        let mut got: StdVec<Result<StdVec<u8>, FrameError>> = StdVec::new();
        for piece in stream.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (used, outcome) = reader.feed(rest);
                rest = &rest[used..];
                match outcome {
                    Some(Ok(n)) => got.push(Ok(reader.frame()[..n].to_vec())),
                    Some(Err(e)) => got.push(Err(e)),
                    None => {}
                }
            }
        }
        assert_eq!(got.len(), 4, "chunk size {chunk}");
        assert!(got[0].is_err(), "garbage is reported, not delivered");
        for (g, p) in got[1..].iter().zip(payloads) {
            assert_eq!(g.as_deref(), Ok(p));
        }
    }
    // A frame longer than the buffer is dropped up to its delimiter; the next one is fine.
    let mut reader: FrameReader<16> = FrameReader::new();
    let mut long = std::vec![1u8; 40];
    long.push(0);
    let n = encode(b"ok", &mut enc).unwrap();
    long.extend_from_slice(&enc[..n]);
    let (used, outcome) = reader.feed(&long);
    assert_eq!(outcome, Some(Err(FrameError::Overflow)));
    let (_, outcome) = reader.feed(&long[used..]);
    assert_eq!(outcome, Some(Ok(2)));
    assert_eq!(reader.frame(), b"ok");
}

fn long_name(prefix: &str, i: usize) -> Name {
    let mut s = std::format!("{prefix}-{i}-");
    while s.len() < fulcrum_model::config::MAX_NAME {
        s.push('x');
    }
    Name::try_from(&s[..fulcrum_model::config::MAX_NAME]).unwrap()
}

#[test]
fn the_largest_status_page_fits_one_envelope() {
    let backend = |i| BackendStatus {
        name: long_name("backend", i),
        address: core::net::Ipv4Addr::new(10, 0, 0, 1),
        port: 65535,
        admin: AdminState::Enabled,
        state: BackendState::Up,
        health: HealthStatus {
            up: true,
            since_ms: u64::MAX,
            last_latency_us: Some(u32::MAX),
            last_failure: Some(CheckFailure::WrongStatus(503)),
            checks_passed: u64::MAX,
            checks_failed: u64::MAX,
        },
        weight: 1000,
        effective_weight: 1000,
        active_flows: u32::MAX,
        total_flows: u64::MAX,
        packets: u64::MAX,
        bytes: u64::MAX,
    };
    let service = |s| ServiceStatus {
        name: long_name("service", s),
        vip: core::net::Ipv4Addr::new(10, 0, 0, 100),
        protocol: Protocol::Tcp,
        port: 443,
        mode: Mode::Fullnat,
        algorithm: Algorithm::LeastResponseTime,
        packets: u64::MAX,
        bytes: u64::MAX,
        return_packets: u64::MAX,
        return_bytes: u64::MAX,
        new_flows: u64::MAX,
        check_latency: LatencyHistogram {
            buckets: [u64::MAX; 13],
            sum_us: u64::MAX,
            count: u64::MAX,
        },
        backends: (0..32).map(backend).collect(),
        // Every service on the page as if proxied, every counter at its longest.
        l7: Some(L7Status {
            requests: u64::MAX,
            responses: [u64::MAX; 5],
            rejected: (0..MAX_L7_REJECT_REASONS).map(|_| u64::MAX).collect(),
            rate_limited: u64::MAX,
            denied: u64::MAX,
            filter_denied: u64::MAX,
            filter_failures: u64::MAX,
            no_backend: u64::MAX,
            backend_errors: u64::MAX,
            persisted: u64::MAX,
            dropped_syns: u64::MAX,
            backend_reused: u64::MAX,
        }),
    };
    let report = Response::Status(StatusReport {
        page: 3,
        pages: 4,
        name: long_name("appliance", 0),
        uptime_ms: u64::MAX,
        generation: u32::MAX,
        rx_frames: u64::MAX,
        from_mcu: u64::MAX,
        drops: (0..32).map(|_| u64::MAX).collect(),
        punts: (0..16).map(|_| u64::MAX).collect(),
        evictions: u64::MAX,
        expirations: u64::MAX,
        moved_flows: u64::MAX,
        management: ManagementCounters::default(),
        services: (0..STATUS_PAGE_SERVICES).map(service).collect(),
    });
    let mut b = buf();
    let server = ServerSession::new(key(b"k"), true);
    let mut client = ClientSession::new(key(b"k"), 1);
    let mut s2 = server.clone();
    handshake(&mut client, &mut s2, 5).unwrap();
    let mut req = buf();
    let n = client
        .request(&mut req, &Request::Status { page: 3 })
        .unwrap();
    let (_, to) = s2.accept(&req[..n], 1).unwrap();
    let m = s2.reply(&mut b, to, &report).unwrap();
    std::println!("largest status page: {m} of {MAX_ENVELOPE} bytes");
    assert_eq!(client.accept(&b[..m]), Ok(report));
}

#[test]
fn an_answer_too_large_becomes_a_too_large_error() {
    let mut server = ServerSession::new(None, false);
    let mut client = ClientSession::new(None, 1);
    let mut b = buf();
    let n = client.request(&mut b, &Request::GetConfig).unwrap();
    let (_, to) = server.accept(&b[..n], 1).unwrap();
    let mut small = [0u8; 64];
    let big = Response::Hello(HelloInfo {
        name: long_name("appliance", 1),
        version: heapless::String::try_from("0.1.0-with-a-long-suffix").unwrap(),
        session: u64::MAX,
        auth_required: false,
        generation: u32::MAX,
    });
    let m = server.reply(&mut small, to, &big).unwrap();
    match client.accept(&small[..m]) {
        Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::TooLarge),
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut reader: FrameReader<256> = FrameReader::new();
        let mut rest = &bytes[..];
        let mut server = ServerSession::new(key(b"k"), true);
        let mut open = ServerSession::new(None, false);
        while !rest.is_empty() {
            let (used, outcome) = reader.feed(rest);
            rest = &rest[used..];
            if let Some(Ok(n)) = outcome {
                let frame = reader.frame()[..n].to_vec();
                let _ = server.accept(&frame, 3);
                let _ = open.accept(&frame, 3);
            }
        }
        let _ = server.accept(&bytes, 3);
        let _ = open.accept(&bytes, 3);
        let mut client = ClientSession::new(key(b"k"), 1);
        let _ = client.accept(&bytes);
        let _ = client.accept_hello(&bytes);
    }
}

/// The biggest configuration the tables hold (16 services × 16 backends = 256, every name
/// and text at its longest) fits one `Apply` envelope.
#[test]
fn the_largest_config_fits_one_envelope() {
    let mut text = std::string::String::from(
        "[appliance]\nname = \"APPLIANCE-NAME-OF-32-CHARACTERS\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\nsnat_pool = [\"10.0.0.250\", \"10.0.0.251\", \"10.0.0.252\", \"10.0.0.253\", \"10.0.0.254\", \"10.0.0.249\", \"10.0.0.248\", \"10.0.0.247\"]\nhash_key = \"6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa\"\n",
    );
    let long = |p: &str, i: usize| {
        let mut s = std::format!("{p}{i:03}");
        while s.len() < 32 {
            s.push('x');
        }
        s
    };
    let path: std::string::String = core::iter::once('/')
        .chain(core::iter::repeat_n('p', 63))
        .collect();
    let body: std::string::String = core::iter::repeat_n('b', 64).collect();
    for s in 0..16 {
        text.push_str(&std::format!(
            "[[service]]\nname = \"{}\"\nvip = \"10.1.{s}.100\"\nprotocol = \"tcp\"\nport = 65000\nmode = \"nat\"\nalgorithm = \"least_response_time\"\nsticky = true\nsticky_timeout = 3600000\n[service.health]\nkind = \"http\"\ninter = 100000\nfastinter = 100000\ndowninter = 100000\ntimeout = 100000\nslowstart = 100000\nport = 65000\npath = \"{path}\"\nexpect_status = 299\nexpect_body = \"{body}\"\n",
            long("service", s)
        ));
        for b in 0..16 {
            text.push_str(&std::format!(
                "[[service.backend]]\nname = \"{}\"\naddress = \"10.2.{s}.{}\"\nport = 65001\nweight = 1000\nmac = \"02:ff:ff:ff:{s:02x}:{b:02x}\"\nstate = \"disabled\"\n",
                long("backend", s * 16 + b),
                b + 1
            ));
        }
    }
    let config: fulcrum_model::config::Config = toml::from_str(&text).expect("parses");
    config.validate().expect("valid");
    let mut client = ClientSession::new(None, 1);
    let mut b = buf();
    let n = client
        .request(
            &mut b,
            &Request::Apply {
                config: config.clone(),
                dry_run: false,
            },
        )
        .expect("fits");
    std::println!("largest config: {n} of {MAX_ENVELOPE} bytes");
    let mut server = ServerSession::new(None, false);
    let (req, _) = server.accept(&b[..n], 1).unwrap();
    assert_eq!(
        req,
        Request::Apply {
            config,
            dry_run: false
        }
    );
}

/// `ResponseRef` serializes to the same bytes as `Response`, variant by variant.
#[test]
fn borrowed_responses_serialize_like_owned_ones() {
    let config: fulcrum_model::config::Config = toml::from_str(
        "[appliance]\nname = \"a\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\n",
    )
    .unwrap();
    let samples = [
        hello_info(7, true),
        Response::Config(Some(config)),
        Response::Config(None),
        Response::Applied(ApplyReport {
            generation: 3,
            dry_run: false,
            changed: true,
            words_written: 9,
            ring_entries_written: 12,
        }),
        Response::Done,
        Response::Events(EventPage {
            events: heapless::Vec::new(),
            lost: 2,
            newest: 9,
        }),
        Response::Error(ErrorReply::new(ErrorCode::NotFound, "no such backend")),
        Response::FilterInstalled(filter_info("web")),
        Response::Filters(heapless::Vec::new()),
        Response::Filters(
            [filter_info("web"), filter_info("api")]
                .into_iter()
                .collect(),
        ),
        Response::Ha(crate::ha::HaStatus::default()),
        Response::Ha(crate::ha::HaStatus {
            enabled: true,
            role: Some(crate::ha::HaRole::Master),
            vrid: 42,
            priority: 200,
            master: Some(core::net::Ipv4Addr::new(10, 0, 0, 2)),
            last_advert_ago_ms: Some(3),
            peers: [crate::ha::HaPeerStatus {
                address: Some(core::net::Ipv4Addr::new(10, 0, 0, 3)),
                synced: true,
                lag_ms: 2,
                ..Default::default()
            }]
            .into_iter()
            .collect(),
            ..Default::default()
        }),
    ];
    for r in &samples {
        let owned = postcard::to_allocvec(r).unwrap();
        let borrowed = postcard::to_allocvec(&r.as_ref()).unwrap();
        assert_eq!(owned, borrowed, "{r:?}");
    }
}

/// The MCU's piecewise decoding agrees with the host's `Request` on every variant.
#[test]
fn commands_decode_like_requests() {
    use crate::command::{Command, decode};
    let config: fulcrum_model::config::Config = toml::from_str(
        "[appliance]\nname = \"a\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\n[[service]]\nname = \"web\"\nvip = \"10.0.0.100\"\nprotocol = \"tcp\"\nport = 80\n[[service.backend]]\nname = \"w1\"\naddress = \"10.0.1.1\"\n[[service]]\nname = \"dns\"\nvip = \"10.0.0.53\"\nprotocol = \"udp\"\nport = 53\nmode = \"dsr\"\n[[service.backend]]\nname = \"d1\"\naddress = \"10.0.2.1\"\n",
    )
    .unwrap();
    let chunk: heapless::Vec<u8, { crate::message::FILTER_CHUNK }> = (0
        ..crate::message::FILTER_CHUNK)
        .map(|i| (i * 7) as u8)
        .collect();
    let cases = [
        (
            Request::Hello {
                client_nonce: u64::MAX - 3,
            },
            Command::Hello {
                client_nonce: u64::MAX - 3,
            },
        ),
        (Request::Status { page: 3 }, Command::Status { page: 3 }),
        (Request::GetConfig, Command::GetConfig),
        (
            Request::Apply {
                config: config.clone(),
                dry_run: true,
            },
            Command::Apply { dry_run: true },
        ),
        (
            Request::Backend {
                service: Name::try_from("web").unwrap(),
                backend: Name::try_from("w1").unwrap(),
                state: AdminState::Drain,
            },
            Command::Backend {
                service: Name::try_from("web").unwrap(),
                backend: Name::try_from("w1").unwrap(),
                state: AdminState::Drain,
            },
        ),
        (
            Request::Events { after: 70_000 },
            Command::Events { after: 70_000 },
        ),
        (
            Request::FilterBegin {
                service: Name::try_from("web").unwrap(),
                length: 70_001,
                sha256: [0xa5; 32],
            },
            Command::FilterBegin {
                service: Name::try_from("web").unwrap(),
                length: 70_001,
                sha256: [0xa5; 32],
            },
        ),
        (
            Request::FilterChunk {
                offset: 16_384,
                data: chunk.clone(),
            },
            Command::FilterChunk {
                offset: 16_384,
                data: &chunk,
            },
        ),
        (
            Request::FilterChunk {
                offset: 0,
                data: heapless::Vec::new(),
            },
            Command::FilterChunk {
                offset: 0,
                data: &[],
            },
        ),
        (Request::FilterCommit, Command::FilterCommit),
        (Request::FilterList, Command::FilterList),
        (
            Request::FilterRemove {
                service: Name::try_from("api").unwrap(),
            },
            Command::FilterRemove {
                service: Name::try_from("api").unwrap(),
            },
        ),
        (Request::HaStatus, Command::HaStatus),
        (
            Request::HaAdmin {
                action: crate::ha::HaAction::Demote,
            },
            Command::HaAdmin {
                action: crate::ha::HaAction::Demote,
            },
        ),
    ];
    for (request, command) in cases {
        let bytes = postcard::to_allocvec(&request).unwrap();
        let mut staged = fulcrum_model::config::Config::empty();
        assert_eq!(
            decode(&bytes, &mut staged),
            Ok(command.clone()),
            "{request:?}"
        );
        if let Request::Apply { config, .. } = &request {
            assert_eq!(&staged, config);
        }
        // No truncation panics.
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut], &mut staged);
        }
    }
    let mut staged = fulcrum_model::config::Config::empty();
    assert!(decode(&[13], &mut staged).is_err());
    // A chunk longer than FILTER_CHUNK is refused even though it would decode.
    let mut long = std::vec![7u8];
    long.extend_from_slice(&[0]); // offset 0
    long.extend_from_slice(&[0x81, 0x80, 0x01]); // length 16385 (varint)
    long.extend(core::iter::repeat_n(1u8, 16_385));
    assert!(decode(&long, &mut staged).is_err());
}

/// A whole-size chunk fits one envelope.
#[test]
fn a_full_filter_chunk_fits_an_envelope() {
    let mut client = ClientSession::new(None, 1);
    let mut b = buf();
    let data = (0..crate::message::FILTER_CHUNK).map(|i| i as u8).collect();
    let request = Request::FilterChunk {
        offset: u32::MAX,
        data,
    };
    let n = client.request(&mut b, &request).expect("fits");
    assert!(n <= MAX_ENVELOPE);
    let mut server = ServerSession::new(None, false);
    let mut staged = fulcrum_model::config::Config::empty();
    let (command, _) = server.accept_command(&b[..n], 1, &mut staged).unwrap();
    let Request::FilterChunk { data, .. } = &request else {
        unreachable!()
    };
    assert_eq!(
        command,
        crate::command::Command::FilterChunk {
            offset: u32::MAX,
            data
        }
    );
}

fn filter_info(service: &str) -> crate::message::FilterInfo {
    crate::message::FilterInfo {
        service: Name::try_from(service).unwrap(),
        size: 4309,
        sha256: [0x5a; 32],
        memory_bytes: 16_384,
        fuel_per_request: 100_000,
        runs: 12,
        errors: 1,
        max_fuel_used: 2_345,
    }
}
