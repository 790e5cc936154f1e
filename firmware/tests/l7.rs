//! The L7 proxy's sans-IO parts on the host: request parsing and its refusals, the chunked
//! body validator, head re-serialization, pool selection with cookie persistence against
//! the model's control plane, and the VIP translation of the MCU's driver. Properties: no
//! input panics, and a body's framing does not depend on how it is split into reads.

use std::net::Ipv4Addr;

use fulcrum_firmware::l7::http::{
    Body, BodyProgress, Chunked, ChunkedDecoder, Reject, parse_request, parse_response,
};
use fulcrum_firmware::l7::{
    EditOp, HeaderEdit, L7Proxy, Refusal, is_refusal, request_view, translate_inbound,
    translate_outbound, write_answer, write_request_head, write_response_head,
};
use fulcrum_model::checksum;
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::Config;
use fulcrum_model::l7::cookie_token;
use proptest::prelude::*;

fn parse(raw: &str) -> Result<Option<fulcrum_firmware::l7::http::RequestHead>, Reject> {
    parse_request(raw.as_bytes(), false)
}

#[test]
fn requests_parse_with_framing() {
    let raw = "POST /a?b HTTP/1.1\r\nHost: Example.com:8080\r\nContent-Length: 5\r\n\r\nhello";
    let head = parse(raw).unwrap().unwrap();
    assert_eq!(head.len, raw.len() - 5);
    assert_eq!(head.body, Body::Length(5));
    assert!(head.keep_alive);
    assert_eq!(head.method(raw.as_bytes()), "POST");
    assert_eq!(
        fulcrum_firmware::l7::http::slice(raw.as_bytes(), head.host.unwrap()),
        b"Example.com"
    );
    let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
    assert_eq!(parse(chunked).unwrap().unwrap().body, Body::Chunked);
    let old = "GET / HTTP/1.0\r\n\r\n";
    assert!(!parse(old).unwrap().unwrap().keep_alive);
    let old_ka = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert!(parse(old_ka).unwrap().unwrap().keep_alive);
    let close = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert!(!parse(close).unwrap().unwrap().keep_alive);
    // An absolute-form target names the host.
    let abs = "GET http://other.example:81/x HTTP/1.1\r\nHost: a\r\n\r\n";
    let h = parse(abs).unwrap().unwrap();
    assert_eq!(
        fulcrum_firmware::l7::http::slice(abs.as_bytes(), h.host.unwrap()),
        b"other.example"
    );
    assert_eq!(h.path(abs.as_bytes()), b"/x");
    // Incomplete: more to read.
    assert_eq!(parse("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
}

#[test]
fn smuggling_shapes_are_refused() {
    let cases: &[(&str, Reject)] = &[
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reject::ClAndTe,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            Reject::ClAndTe,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            Reject::BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
            Reject::BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            Reject::BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            Reject::BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            Reject::BadTransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            Reject::BadTransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reject::BadTransferEncoding,
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reject::BadTransferEncoding,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tz\r\n\r\n",
            Reject::ObsFold,
        ),
        ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", Reject::ObsFold),
        ("GET / HTTP/1.1\r\n\r\n", Reject::BadHost),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
            Reject::BadHost,
        ),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", Reject::BadRequest),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", Reject::BadRequest),
        (
            "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
            Reject::NotImplemented,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n",
            Reject::NotImplemented,
        ),
    ];
    for (raw, why) in cases {
        assert_eq!(parse(raw), Err(*why), "{raw:?}");
    }
    let many: String = (0..60).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        parse(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
        Err(Reject::HeadTooLarge)
    );
    let partial = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "a".repeat(100));
    assert_eq!(
        parse_request(partial.as_bytes(), true),
        Err(Reject::HeadTooLarge)
    );
    let target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(1100));
    assert_eq!(parse(&target), Err(Reject::TargetTooLong));
    assert_eq!(Reject::HeadTooLarge.status(), 431);
    assert_eq!(Reject::TargetTooLong.status(), 414);
    assert_eq!(Reject::ClAndTe.status(), 400);
}

fn decode_all(body: &[u8]) -> Result<Chunked, Reject> {
    ChunkedDecoder::new().feed(body)
}

#[test]
fn chunked_bodies_are_validated() {
    let ok = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    assert_eq!(decode_all(ok), Ok(Chunked::End(ok.len() - 4)));
    assert_eq!(decode_all(b"0\r\n\r\n"), Ok(Chunked::End(5)));
    assert_eq!(decode_all(b"A\r\n0123456789"), Ok(Chunked::More));
    for bad in [
        &b"zz\r\n"[..],
        b"-5\r\nhello\r\n",
        b" 5\r\nhello\r\n",
        b"5\nhello\r\n",
        b"5\r\nhelloXX",
        b"1000000000000000\r\n",
        b"0\r\n\n",
        b"0\r\nbad\n\r\n",
    ] {
        assert_eq!(
            decode_all(bad),
            Err(Reject::BadChunk),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut p = BodyProgress::new(Body::Length(3));
    assert_eq!(p.feed(b"ab"), Ok(2));
    assert_eq!(p.feed(b"cdef"), Ok(1));
    assert!(p.done());
}

#[test]
fn responses_frame_by_method_and_status() {
    let r = |raw: &str, head| {
        parse_response(raw.as_bytes(), head, false)
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false).body,
        Body::Length(3)
    );
    assert_eq!(
        r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true).body,
        Body::None
    );
    assert_eq!(r("HTTP/1.1 204 No Content\r\n\r\n", false).body, Body::None);
    assert_eq!(
        r(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false
        )
        .body,
        Body::None
    );
    assert_eq!(
        r(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false
        )
        .body,
        Body::Chunked
    );
    assert_eq!(r("HTTP/1.1 200 OK\r\n\r\n", false).body, Body::UntilClose);
    assert!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false,
            false
        )
        .is_err()
    );
    assert!(parse_response(b"garbage\r\n\r\n", false, false).is_err());
}

const CONFIG: &str = r#"
[appliance]
name = "t"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
maglev_ring_size = 1021
flow_table = { sets = 1024, ways = 4 }
[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
[[service.backend]]
name = "w"
address = "10.0.1.1"
[[service]]
name = "app"
vip = "10.0.0.110"
protocol = "tcp"
port = 80
mode = "l7"
algorithm = "weighted_round_robin"
[[service.backend]]
name = "a1"
address = "10.0.2.1"
port = 8080
weight = 3
[[service.backend]]
name = "a2"
address = "10.0.2.2"
port = 8080
[[service.backend]]
name = "m1"
address = "10.0.2.3"
port = 8080
pool = "media"
[[l7]]
service = "app"
cookie = "SRV"
[[l7.route]]
path_prefix = "/media/"
pool = "media"
"#;

fn setup() -> (Config, Box<ControlPlane>, L7Proxy) {
    let config: Config = toml::from_str(CONFIG).unwrap();
    config.validate().unwrap();
    let mut cp = Box::new(ControlPlane::new());
    cp.apply(&config).unwrap();
    for slot in 0..256 {
        if cp.backend_name(slot).is_some() {
            cp.set_health(slot, true);
        }
    }
    let mut proxy = L7Proxy::new();
    proxy.refresh(&config, 1, &cp, 1);
    (config, cp, proxy)
}

fn choose(
    proxy: &mut L7Proxy,
    cp: &ControlPlane,
    raw: &str,
) -> Result<fulcrum_firmware::l7::Forward, Refusal> {
    let buf = raw.as_bytes();
    let head = parse_request(buf, false).unwrap().unwrap();
    let mut path = [0u8; 1024];
    let mut headers = [("", &[][..]); 48];
    let view = request_view(buf, &head, &mut path, &mut headers).unwrap();
    proxy.choose(0, (Ipv4Addr::new(192, 0, 2, 1), 40000), &view, None, cp)
}

#[test]
fn pools_follow_routes_weights_and_cookies() {
    let (_config, mut cp, mut proxy) = setup();
    assert_eq!(proxy.services().len(), 1);
    assert_eq!(proxy.services()[0].local_port, 7100);
    let name = |f: &fulcrum_firmware::l7::Forward, cp: &ControlPlane| {
        cp.backend_name(usize::from(f.slot)).unwrap().1.to_string()
    };
    // Smooth WRR 3:1 over the default pool (the model's algorithm).
    let picks: Vec<String> = (0..8)
        .map(|_| {
            name(
                &choose(&mut proxy, &cp, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap(),
                &cp,
            )
        })
        .collect();
    assert_eq!(picks, ["a1", "a1", "a2", "a1", "a1", "a1", "a2", "a1"]);
    let media = choose(&mut proxy, &cp, "GET /media/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(name(&media, &cp), "m1");
    assert_eq!(media.address, Ipv4Addr::new(10, 0, 2, 3));
    assert_eq!(media.port, 8080);
    assert_eq!(media.set_cookie, Some(cookie_token("app", "m1")));
    // The cookie of a2 sends every request to a2, with no new cookie.
    let token = String::from_utf8(cookie_token("app", "a2").to_vec()).unwrap();
    let with_cookie = format!("GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1; SRV={token}\r\n\r\n");
    for _ in 0..5 {
        let f = choose(&mut proxy, &cp, &with_cookie).unwrap();
        assert_eq!(name(&f, &cp), "a2");
        assert_eq!(f.set_cookie, None);
    }
    // A cookie for another pool's backend is not honoured on this route.
    let m1 = String::from_utf8(cookie_token("app", "m1").to_vec()).unwrap();
    let f = choose(
        &mut proxy,
        &cp,
        &format!("GET / HTTP/1.1\r\nHost: a\r\nCookie: SRV={m1}\r\n\r\n"),
    )
    .unwrap();
    assert_ne!(name(&f, &cp), "m1");
    // a2 drains: its cookie still holds (persistence survives drain); down: it falls back.
    let a2 = cp.backend_slot("app", "a2").unwrap();
    cp.set_admin(a2, fulcrum_model::config::AdminState::Drain);
    proxy.refresh(&_config, 1, &cp, 2);
    assert_eq!(
        name(&choose(&mut proxy, &cp, &with_cookie).unwrap(), &cp),
        "a2"
    );
    cp.set_admin(a2, fulcrum_model::config::AdminState::Enabled);
    cp.set_health(a2, false);
    proxy.refresh(&_config, 1, &cp, 3);
    let f = choose(&mut proxy, &cp, &with_cookie).unwrap();
    assert_eq!(name(&f, &cp), "a1");
    assert_eq!(f.set_cookie, Some(cookie_token("app", "a1")));
    // The media pool's only backend down: 503.
    cp.set_health(cp.backend_slot("app", "m1").unwrap(), false);
    proxy.refresh(&_config, 1, &cp, 4);
    assert_eq!(
        choose(&mut proxy, &cp, "GET /media/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        Err(Refusal::NoBackend)
    );
    assert_eq!(Refusal::NoBackend.status(), 503);
}

fn edit(op: EditOp, name: &str, value: &str) -> HeaderEdit {
    HeaderEdit {
        op,
        name: name.try_into().unwrap(),
        value: heapless::Vec::from_slice(value.as_bytes()).unwrap(),
    }
}

#[test]
fn heads_are_rewritten_for_the_backend_and_client() {
    let raw = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.2.3.4\r\nX-Id: old\r\nAccept: */*\r\n\r\n";
    let head = parse_request(raw, false).unwrap().unwrap();
    let mut out = [0u8; 1024];
    let n = write_request_head(
        &mut out,
        raw,
        &head,
        Ipv4Addr::new(192, 0, 2, 7),
        true,
        &[
            edit(EditOp::Add, "X-Id", "first"),
            edit(EditOp::Set, "X-Id", "new"),
            edit(EditOp::Remove, "Accept", ""),
            edit(EditOp::Add, "X-More", "1"),
        ],
        false,
    )
    .unwrap();
    let forwarded = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4, 192.0.2.7\r\n\
         Forwarded: for=192.0.2.7;proto=http\r\nX-Id: new\r\nX-More: 1\r\n";
    assert_eq!(
        std::str::from_utf8(&out[..n]).unwrap(),
        format!("{forwarded}Connection: close\r\n\r\n")
    );
    // Kept alive (the proxy reuses the backend connection): HTTP/1.1 persists by default.
    let edits = [
        edit(EditOp::Add, "X-Id", "first"),
        edit(EditOp::Set, "X-Id", "new"),
        edit(EditOp::Remove, "Accept", ""),
        edit(EditOp::Add, "X-More", "1"),
    ];
    let n = write_request_head(
        &mut out,
        raw,
        &head,
        Ipv4Addr::new(192, 0, 2, 7),
        true,
        &edits,
        true,
    )
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&out[..n]).unwrap(),
        format!("{forwarded}\r\n")
    );
    // An HTTP/1.0 request is never kept: its connection would close by default.
    let raw10 = b"GET / HTTP/1.0\r\nHost: a\r\n\r\n";
    let head10 = parse_request(raw10, false).unwrap().unwrap();
    let n = write_request_head(
        &mut out,
        raw10,
        &head10,
        Ipv4Addr::LOCALHOST,
        false,
        &[],
        true,
    )
    .unwrap();
    assert!(
        std::str::from_utf8(&out[..n])
            .unwrap()
            .ends_with("Connection: close\r\n\r\n")
    );
    assert!(
        write_request_head(
            &mut out[..40],
            raw,
            &head,
            Ipv4Addr::LOCALHOST,
            true,
            &[],
            false
        )
        .is_none()
    );

    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: b\r\n\r\nhi";
    let h = parse_response(resp, false, false).unwrap().unwrap();
    let n = write_response_head(&mut out, resp, &h, Some(("SRV", *b"0123abcd")), true, 1).unwrap();
    assert_eq!(
        std::str::from_utf8(&out[..n]).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\nSet-Cookie: SRV=0123abcd; Path=/; HttpOnly\r\n\r\n"
    );
    let n = write_response_head(&mut out, resp, &h, None, false, 0).unwrap();
    assert!(
        std::str::from_utf8(&out[..n])
            .unwrap()
            .starts_with("HTTP/1.0 200 OK\r\n")
    );
    assert!(
        std::str::from_utf8(&out[..n])
            .unwrap()
            .ends_with("Connection: close\r\n\r\n")
    );

    let n = write_answer(&mut out, 429, false, b"Retry-After: 1\r\n");
    assert_eq!(
        std::str::from_utf8(&out[..n]).unwrap(),
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nRetry-After: 1\r\n\r\nToo Many Requests\n"
    );
}

/// A TCP/IPv4 frame with valid checksums.
fn frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[12..14].copy_from_slice(&[8, 0]);
    f[14] = 0x45;
    let total = (40 + payload.len()) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&src.0.octets());
    f[30..34].copy_from_slice(&dst.0.octets());
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&src.1.to_be_bytes());
    f[36..38].copy_from_slice(&dst.1.to_be_bytes());
    f[46] = 0x50;
    f.extend_from_slice(payload);
    let seg_len = (20 + payload.len()) as u16;
    let pseudo = checksum::pseudo_header_v4(src.0.octets(), dst.0.octets(), 6, seg_len);
    let c = !checksum::fold(checksum::sum(&f[34..], pseudo));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn the_driver_translates_vip_to_the_mcu_and_back() {
    let own = Ipv4Addr::new(10, 0, 0, 2);
    let vip = Ipv4Addr::new(10, 0, 0, 110);
    let client = (Ipv4Addr::new(192, 0, 2, 1), 40000);
    let listeners = [(vip, 80, 7100)];
    let mut f = frame(client, (vip, 80), b"GET / HTTP/1.1\r\n\r\n");
    assert!(translate_inbound(&mut f, &listeners, own));
    assert_eq!(
        f,
        frame(client, (own, 7100), b"GET / HTTP/1.1\r\n\r\n"),
        "checksums as if built so"
    );
    let mut back = frame((own, 7100), client, b"HTTP/1.1 200 OK\r\n\r\n");
    assert!(translate_outbound(&mut back, &listeners, own));
    assert_eq!(back, frame((vip, 80), client, b"HTTP/1.1 200 OK\r\n\r\n"));
    // Other traffic is left alone: another port, the management port, a fragment.
    let mut other = frame(client, (vip, 81), b"");
    assert!(!translate_inbound(&mut other, &listeners, own));
    let mut mgmt = frame((own, 7070), client, b"");
    assert!(!translate_outbound(&mut mgmt, &listeners, own));
    let mut frag = frame(client, (vip, 80), b"x");
    frag[20] = 0x20;
    assert!(!translate_inbound(&mut frag, &listeners, own));
}

#[test]
fn the_driver_recognizes_the_stack_refusing_a_connection_to_a_busy_service() {
    let own = Ipv4Addr::new(10, 0, 0, 2);
    let vip = Ipv4Addr::new(10, 0, 0, 110);
    let client = (Ipv4Addr::new(192, 0, 2, 1), 40000);
    let listeners = [(vip, 80, 7100)];
    // smoltcp's answer to a SYN without a listening socket: RST+ACK, sequence 0,
    // acknowledging the SYN.
    let with = |src: (Ipv4Addr, u16), flags: u8, seq: u32| {
        let mut f = frame(src, client, b"");
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[42..46].copy_from_slice(&1235u32.to_be_bytes());
        f[47] = flags;
        f
    };
    assert_eq!(
        is_refusal(&with((own, 7100), 0x14, 0), &listeners, own),
        Some(7100)
    );
    // Not a refusal: a worker aborting its connection (sequence number in the stream),
    // a reset from another port, from another address, a FIN, data.
    assert_eq!(
        is_refusal(&with((own, 7100), 0x14, 99_000), &listeners, own),
        None
    );
    assert_eq!(
        is_refusal(&with((own, 7070), 0x14, 0), &listeners, own),
        None
    );
    assert_eq!(
        is_refusal(&with((vip, 7100), 0x14, 0), &listeners, own),
        None
    );
    assert_eq!(
        is_refusal(&with((own, 7100), 0x11, 0), &listeners, own),
        None
    );
    assert_eq!(
        is_refusal(&with((own, 7100), 0x10, 0), &listeners, own),
        None
    );
    assert_eq!(is_refusal(&[0u8; 20], &listeners, own), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(7), failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the parsers or the translation.
    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), full in any::<bool>()) {
        let _ = parse_request(&bytes, full);
        let _ = parse_response(&bytes, false, full);
        let _ = ChunkedDecoder::new().feed(&bytes);
        let mut f = bytes.clone();
        let listeners = [(Ipv4Addr::new(10, 0, 0, 110), 80, 7100)];
        translate_inbound(&mut f, &listeners, Ipv4Addr::new(10, 0, 0, 2));
        translate_outbound(&mut f, &listeners, Ipv4Addr::new(10, 0, 0, 2));
        if let Ok(Some(head)) = parse_request(&bytes, false) {
            let mut path = [0u8; 1024];
            let mut headers = [("", &[][..]); 48];
            let _ = request_view(&bytes, &head, &mut path, &mut headers);
            let mut out = [0u8; 700];
            let _ =
                write_request_head(&mut out, &bytes, &head, Ipv4Addr::LOCALHOST, true, &[], true);
        }
    }

    /// A chunked body ends at the same byte however it is split into reads.
    #[test]
    fn chunked_split_invariance(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
        cuts in proptest::collection::vec(0usize..400, 0..8),
    ) {
        let mut body = Vec::new();
        for c in &chunks {
            if c.is_empty() { continue; }
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\nNEXT REQUEST");
        let whole = body.len() - b"NEXT REQUEST".len();
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
        points.sort();
        let mut p = BodyProgress::new(Body::Chunked);
        let mut taken = 0;
        let mut start = 0;
        for end in points.into_iter().chain([body.len()]) {
            if end < start { continue; }
            let k = p.feed(&body[start..end]).unwrap();
            taken += k;
            if p.done() { break; }
            prop_assert_eq!(k, end - start);
            start = end;
        }
        prop_assert!(p.done());
        prop_assert_eq!(taken, whole);
    }
}
