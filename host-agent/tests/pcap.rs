//! `fulcrum pcap` and the golden fixtures in `tests/fixtures/`.
//!
//! The input capture `mixed.pcap` is generated here, deterministically, frame by frame
//! (see [`mixed`]); the replies of the backends are built from what the appliance sent
//! them, as a backend would. The test regenerates it and the expected outputs and
//! compares them with the committed files byte for byte. After an intended change, run
//! `FULCRUM_BLESS=1 cargo test -p fulcrum-host --test pcap` to rewrite them, and review
//! the diff of `mixed.expected.jsonl` and `README.md`.
//!
//! Every forwarded frame is also checked independently with `smoltcp::wire`: valid IPv4
//! header checksums and TCP/UDP checksums (inner and outer for tunnels).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use fulcrum_host::config_file;
use fulcrum_host::engine::{Engine, EngineKind};
use fulcrum_model::pipeline::Port;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use serde_json::Value;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv4Message, Icmpv4Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv6Address, Ipv6Packet,
    TcpPacket, TcpSeqNumber, UdpPacket,
};

const APPLIANCE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const ROUTER_MAC: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x01];
/// Capture time of the first frame: 2023-11-14 22:13:20 UTC.
const T0: Duration = Duration::from_secs(1_700_000_000);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pcap-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn blessing() -> bool {
    std::env::var_os("FULCRUM_BLESS").is_some_and(|v| v == "1")
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// Frame builders (smoltcp views; checksums valid unless a frame says otherwise)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Tcp {
    syn: bool,
    ack: bool,
    fin: bool,
    seq: u32,
    ack_number: u32,
}

const SYN: Tcp = Tcp {
    syn: true,
    ack: false,
    fin: false,
    seq: 1000,
    ack_number: 0,
};

fn ethernet(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let tag = if vlan.is_some() { 4 } else { 0 };
    let mut frame = vec![0u8; 14 + tag + body.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(EthernetAddress(dst));
    eth.set_src_addr(EthernetAddress(src));
    match vlan {
        Some(tci) => {
            eth.set_ethertype(EthernetProtocol::Unknown(0x8100));
            frame[14..16].copy_from_slice(&tci.to_be_bytes());
            frame[16..18].copy_from_slice(&ethertype.to_be_bytes());
        }
        None => eth.set_ethertype(EthernetProtocol::from(ethertype)),
    }
    frame[14 + tag..].copy_from_slice(body);
    frame
}

/// An IPv4 packet (ID 1, DF unless fragmented, TTL 64) around `l4`.
fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    l4: &[u8],
    more_frags: bool,
) -> Vec<u8> {
    let mut packet = vec![0u8; 20 + l4.len()];
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len((20 + l4.len()) as u16);
    ip.set_ident(1);
    ip.set_dont_frag(!more_frags);
    ip.set_more_frags(more_frags);
    ip.set_frag_offset(0);
    ip.set_hop_limit(64);
    ip.set_next_header(protocol);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    packet[20..].copy_from_slice(l4);
    packet
}

fn tcp_segment(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), t: Tcp, payload: &[u8]) -> Vec<u8> {
    let mut segment = vec![0u8; 20 + payload.len()];
    let mut tcp = TcpPacket::new_unchecked(&mut segment[..]);
    tcp.set_src_port(src.1);
    tcp.set_dst_port(dst.1);
    tcp.set_seq_number(TcpSeqNumber(t.seq as i32));
    tcp.set_ack_number(TcpSeqNumber(t.ack_number as i32));
    tcp.set_header_len(20);
    tcp.clear_flags();
    tcp.set_syn(t.syn);
    tcp.set_ack(t.ack);
    tcp.set_fin(t.fin);
    tcp.set_psh(!payload.is_empty());
    tcp.set_window_len(64240);
    tcp.payload_mut().copy_from_slice(payload);
    tcp.fill_checksum(&IpAddress::Ipv4(src.0), &IpAddress::Ipv4(dst.0));
    segment
}

fn udp_datagram(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut datagram = vec![0u8; 8 + payload.len()];
    let mut udp = UdpPacket::new_unchecked(&mut datagram[..]);
    udp.set_src_port(src.1);
    udp.set_dst_port(dst.1);
    udp.set_len((8 + payload.len()) as u16);
    udp.payload_mut().copy_from_slice(payload);
    udp.fill_checksum(&IpAddress::Ipv4(src.0), &IpAddress::Ipv4(dst.0));
    datagram
}

/// A client frame (from the router's MAC to the appliance).
fn tcp(src: (&str, u16), dst: (&str, u16), t: Tcp, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = ((ip(src.0), src.1), (ip(dst.0), dst.1));
    let l4 = tcp_segment(src, dst, t, payload);
    let packet = ipv4(src.0, dst.0, IpProtocol::Tcp, &l4, false);
    ethernet(APPLIANCE_MAC, ROUTER_MAC, None, 0x0800, &packet)
}

fn udp(src: (&str, u16), dst: (&str, u16), payload: &[u8]) -> Vec<u8> {
    let (src, dst) = ((ip(src.0), src.1), (ip(dst.0), dst.1));
    let l4 = udp_datagram(src, dst, payload);
    let packet = ipv4(src.0, dst.0, IpProtocol::Udp, &l4, false);
    ethernet(APPLIANCE_MAC, ROUTER_MAC, None, 0x0800, &packet)
}

/// What a backend answers to the frame the appliance sent it: a SYN-ACK from its
/// destination back to its source, from the backend's MAC to the appliance.
fn backend_reply(received: &[u8]) -> Vec<u8> {
    let eth = EthernetFrame::new_checked(received).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    let t = Tcp {
        syn: true,
        ack: true,
        fin: false,
        seq: 5000,
        ack_number: tcp.seq_number().0 as u32 + 1,
    };
    let (me, peer) = (
        (ip.dst_addr(), tcp.dst_port()),
        (ip.src_addr(), tcp.src_port()),
    );
    let l4 = tcp_segment(me, peer, t, b"");
    let packet = ipv4(me.0, peer.0, IpProtocol::Tcp, &l4, false);
    ethernet(APPLIANCE_MAC, eth.dst_addr().0, None, 0x0800, &packet)
}

// ---------------------------------------------------------------------------------------
// The mixed capture
// ---------------------------------------------------------------------------------------

/// One frame of the fixture: when it arrives (ms after the first), what it tests, bytes.
struct Fixture {
    time_ms: u64,
    what: &'static str,
    bytes: Vec<u8>,
}

/// The frames of `mixed.pcap`, in order. Backend replies are built from what the model
/// sent the backend, so the generator runs the model alongside.
fn mixed() -> Vec<Fixture> {
    let config = config_file::load(&fixtures().join("fixtures.toml")).expect("fixtures.toml");
    let mut engine = Engine::new(EngineKind::Model, &config).unwrap();
    engine
        .run(|session| {
            let mut frames: Vec<Fixture> = Vec::new();
            let mut add = |what: &'static str, bytes: Vec<u8>, time_ms: u64| {
                let sent = session.process(time_ms, &bytes, Port::Network).output;
                frames.push(Fixture {
                    time_ms,
                    what,
                    bytes,
                });
                sent
            };
            let mut t = 0..;
            let mut next = || t.next().unwrap();

            let web = ("10.0.0.100", 80);
            let client = ("192.0.2.10", 40001);
            let to_backend = add(
                "nat forward: client SYN to web, a new flow (round robin picks web-1)",
                tcp(client, web, SYN, b""),
                next(),
            );
            add(
                "nat return: web-1's SYN-ACK, source rewritten back to the VIP",
                backend_reply(&to_backend),
                next(),
            );
            let ack = Tcp {
                syn: false,
                ack: true,
                fin: false,
                seq: 1001,
                ack_number: 5001,
            };
            add(
                "nat forward: client ACK with a request, existing flow",
                tcp(client, web, ack, b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"),
                next(),
            );
            let api = ("10.0.0.101", 443);
            let api_client = ("192.0.2.11", 40002);
            let to_backend = add(
                "fullnat forward: client SYN to api, source becomes 10.0.0.250 and the port of its flow-table slot",
                tcp(api_client, api, SYN, b""),
                next(),
            );
            add(
                "fullnat return: api-1's SYN-ACK to the SNAT address, back to the client",
                backend_reply(&to_backend),
                next(),
            );
            add(
                "dsr forward: DNS query, only the destination MAC changes",
                udp(
                    ("192.0.2.12", 53001),
                    ("10.0.0.53", 53),
                    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01",
                ),
                next(),
            );
            add(
                "ipip forward: client SYN to tunnel, wrapped in IPv4 (protocol 4)",
                tcp(("192.0.2.13", 40003), ("10.0.0.103", 80), SYN, b""),
                next(),
            );
            add(
                "gue forward: RTP datagram to media, wrapped in IPv4 + UDP to port 6080",
                udp(
                    ("192.0.2.14", 5004),
                    ("10.0.0.104", 5004),
                    b"\x80\x60\x00\x01\x00\x00\x00\x00\x12\x34\x56\x78",
                ),
                next(),
            );
            add(
                "l7: client SYN to app, handed to the MCU",
                tcp(("192.0.2.15", 40004), ("10.0.0.105", 80), SYN, b""),
                next(),
            );
            let syn = tcp(("192.0.2.16", 40006), web, SYN, b"");
            add(
                "vlan: 802.1Q-tagged (VID 100) SYN to web, the tag is kept (round robin: web-2)",
                ethernet(APPLIANCE_MAC, ROUTER_MAC, Some(100), 0x0800, &syn[14..]),
                next(),
            );
            let arp = {
                let repr = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_hardware_addr: EthernetAddress(ROUTER_MAC),
                    source_protocol_addr: ip("10.0.0.1"),
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: ip("10.0.0.100"),
                };
                let mut body = vec![0u8; repr.buffer_len()];
                repr.emit(&mut ArpPacket::new_unchecked(&mut body[..]));
                ethernet([0xff; 6], ROUTER_MAC, None, 0x0806, &body)
            };
            add("arp: who has 10.0.0.100, handed to the MCU", arp, next());
            let ipv6 = {
                let mut body = vec![0u8; 40 + 8];
                let mut packet = Ipv6Packet::new_unchecked(&mut body[..]);
                packet.set_version(6);
                packet.set_payload_len(8);
                packet.set_next_header(IpProtocol::Udp);
                packet.set_hop_limit(64);
                packet.set_src_addr(Ipv6Address::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
                packet.set_dst_addr(Ipv6Address::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 100));
                let (s, d) = (packet.src_addr(), packet.dst_addr());
                let mut udp = UdpPacket::new_unchecked(&mut body[40..]);
                udp.set_src_port(40007);
                udp.set_dst_port(80);
                udp.set_len(8);
                udp.fill_checksum(&IpAddress::Ipv6(s), &IpAddress::Ipv6(d));
                ethernet(APPLIANCE_MAC, ROUTER_MAC, None, 0x86dd, &body)
            };
            add("ipv6: a UDP datagram, handed to the MCU", ipv6, next());
            let echo = {
                let mut body = vec![0u8; 16];
                let mut icmp = Icmpv4Packet::new_unchecked(&mut body[..]);
                icmp.set_msg_type(Icmpv4Message::EchoRequest);
                icmp.set_msg_code(0);
                icmp.set_echo_ident(7);
                icmp.set_echo_seq_no(1);
                icmp.data_mut().copy_from_slice(b"fulcrum!");
                icmp.fill_checksum();
                let packet = ipv4(ip("192.0.2.10"), ip("10.0.0.100"), IpProtocol::Icmp, &body, false);
                ethernet(APPLIANCE_MAC, ROUTER_MAC, None, 0x0800, &packet)
            };
            add("icmp: echo request to a VIP, handed to the MCU", echo, next());
            add(
                "own address: SSH to the appliance itself, handed to the MCU",
                tcp(("192.0.2.10", 40008), ("10.0.0.2", 22), SYN, b""),
                next(),
            );
            let fragment = {
                let src = (ip("192.0.2.12"), 53002);
                let dst = (ip("10.0.0.53"), 53);
                let l4 = udp_datagram(src, dst, &[0x55; 32]);
                let packet = ipv4(src.0, dst.0, IpProtocol::Udp, &l4, true);
                ethernet(APPLIANCE_MAC, ROUTER_MAC, None, 0x0800, &packet)
            };
            add(
                "fragment: first fragment (MF set) of a datagram to dns, handed to the MCU",
                fragment,
                next(),
            );
            let mut bad = tcp(("192.0.2.17", 40009), web, SYN, b"");
            bad[24] ^= 0xff;
            add(
                "bad IPv4 header checksum (one checksum byte flipped): dropped",
                bad,
                next(),
            );
            let mut cut = tcp(("192.0.2.18", 40010), web, SYN, b"");
            cut.truncate(14 + 26);
            add(
                "truncated: a SYN cut 14 bytes short of its IPv4 total length: dropped",
                cut,
                next(),
            );
            add(
                "runt: 10 bytes, shorter than an Ethernet header: dropped",
                vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0xee, 0, 0],
                next(),
            );
            add(
                "unknown VIP port: SYN to web's VIP on port 443: dropped",
                tcp(("192.0.2.19", 40011), ("10.0.0.100", 443), SYN, b""),
                next(),
            );
            add(
                "no flow: an ACK to api (round robin keeps state) without a SYN first: dropped",
                tcp(("192.0.2.20", 40012), api, ack, b""),
                next(),
            );
            add(
                "not for us: SYN to an address that is no VIP: dropped",
                tcp(("192.0.2.21", 40013), ("203.0.113.9", 80), SYN, b""),
                next(),
            );
            let stray = {
                let src = (ip("10.0.1.12"), 8080);
                let dst = (ip("192.0.2.99"), 5555);
                let l4 = tcp_segment(src, dst, ack, b"");
                let packet = ipv4(src.0, dst.0, IpProtocol::Tcp, &l4, false);
                ethernet(APPLIANCE_MAC, [0x02, 0, 0, 0, 1, 0x0c], None, 0x0800, &packet)
            };
            add(
                "return without a flow: web-2 answers a client it never got: dropped",
                stray,
                next(),
            );
            let fin = Tcp {
                syn: false,
                ack: true,
                fin: true,
                seq: 1031,
                ack_number: 5001,
            };
            add(
                "nat forward: the web client's FIN, existing flow (now closing)",
                tcp(client, web, fin, b""),
                next(),
            );
            add(
                "timeout: 20 s later the api flow (SYN seen, 10 s timeout) is gone: ACK dropped",
                tcp(api_client, api, ack, b""),
                20_000,
            );
            frames
        })
        .unwrap()
}

fn pcap_bytes(fixtures: &[Fixture]) -> Vec<u8> {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    };
    let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
    for f in fixtures {
        let ts = T0 + Duration::from_millis(f.time_ms);
        writer
            .write_packet(&PcapPacket::new(ts, f.bytes.len() as u32, &f.bytes))
            .unwrap();
    }
    writer.into_writer()
}

fn read_frames(path: &Path) -> Vec<Vec<u8>> {
    let mut reader = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        frames.push(packet.unwrap().data.into_owned());
    }
    frames
}

fn fulcrum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(args)
        .output()
        .expect("runs fulcrum")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Compares `actual` with the committed `name` in tests/fixtures, or rewrites it when
/// blessing. Text files get a line diff in the failure message.
fn golden(name: &str, actual: &[u8]) {
    let path = fixtures().join(name);
    if blessing() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with FULCRUM_BLESS=1", path.display()));
    if expected == actual {
        return;
    }
    let mut message = format!(
        "{} differs from what was generated; if the change is intended, rerun with \
         FULCRUM_BLESS=1 and review the diff\n",
        path.display()
    );
    if let (Ok(e), Ok(a)) = (std::str::from_utf8(&expected), std::str::from_utf8(actual)) {
        for (i, (e, a)) in e.lines().zip(a.lines()).enumerate() {
            if e != a {
                message.push_str(&format!(
                    "line {}:\n  expected {e}\n  actual   {a}\n",
                    i + 1
                ));
            }
        }
    } else {
        let at = expected.iter().zip(actual).position(|(e, a)| e != a);
        message.push_str(&format!(
            "{} bytes expected, {} generated; first difference at byte {at:?}\n",
            expected.len(),
            actual.len()
        ));
    }
    panic!("{message}");
}

/// Checks the IPv4 header checksum and the TCP/UDP checksum of the IPv4 packet in
/// `packet`, and those of the inner packet of an IP-in-IP or GUE tunnel.
fn verify_ipv4(packet: &[u8], what: &str) {
    let ip = Ipv4Packet::new_checked(packet).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(ip.verify_checksum(), "{what}: IPv4 header checksum");
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.verify_checksum(&s, &d), "{what}: TCP checksum");
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(&s, &d), "{what}: UDP checksum");
            if udp.dst_port() == 6080 {
                assert_eq!(udp.checksum(), 0, "{what}: GUE sends no UDP checksum");
                verify_ipv4(udp.payload(), &format!("{what} (inside GUE)"));
            }
        }
        IpProtocol::Unknown(4) => verify_ipv4(ip.payload(), &format!("{what} (inside IP-in-IP)")),
        _ => {}
    }
}

fn verify_forwarded(frame: &[u8], what: &str) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let (ethertype, payload) = match u16::from(eth.ethertype()) {
        0x8100 => (u16::from_be_bytes([frame[16], frame[17]]), &frame[18..]),
        other => (other, eth.payload()),
    };
    assert_eq!(ethertype, 0x0800, "{what}: only IPv4 is forwarded");
    assert_eq!(
        eth.src_addr().0,
        APPLIANCE_MAC,
        "{what}: from the appliance"
    );
    verify_ipv4(payload, what);
}

/// The frame table of README.md, from the fixtures and the verdict lines.
fn readme_table(fixtures: &[Fixture], verdicts: &[Value]) -> String {
    let mut table =
        String::from("| # | time | what it tests | expected verdict |\n|---|---|---|---|\n");
    for (i, (f, v)) in fixtures.iter().zip(verdicts).enumerate() {
        let action = v["action"].as_str().unwrap();
        let verdict = match (v["service"].as_str(), v["backend"].as_str()) {
            (Some(service), Some(backend)) => format!("`{action}` {service}/{backend}"),
            (Some(service), None) => format!("`{action}` ({service})"),
            _ => format!("`{action}`"),
        };
        table.push_str(&format!(
            "| {} | {} ms | {} | {verdict} |\n",
            i + 1,
            f.time_ms,
            f.what
        ));
    }
    table
}

const TABLE_BEGIN: &str = "<!-- frames: generated by host-agent/tests/pcap.rs -->\n";
const TABLE_END: &str = "<!-- end of frames -->\n";

#[test]
fn mixed_capture_replays_to_the_golden_outputs() {
    let dir = scratch("golden");
    let fixtures_in = mixed();
    let input = pcap_bytes(&fixtures_in);
    golden("mixed.pcap", &input);
    let input_path = dir.join("mixed.pcap");
    std::fs::write(&input_path, &input).unwrap();

    let (out, punt) = (dir.join("out.pcap"), dir.join("punt.pcap"));
    let config = fixtures().join("fixtures.toml");
    let run = fulcrum(&[
        "pcap",
        "--config",
        s(&config),
        s(&input_path),
        s(&out),
        "--punt",
        s(&punt),
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    golden("mixed.expected.jsonl", &run.stdout);
    golden("mixed.expected.pcap", &std::fs::read(&out).unwrap());
    golden("mixed.expected.punt.pcap", &std::fs::read(&punt).unwrap());

    let lines: Vec<Value> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, verdicts) = lines.split_last().unwrap();
    assert_eq!(verdicts.len(), fixtures_in.len());
    assert_eq!(summary["summary"]["frames"], fixtures_in.len());

    // Independently of the golden files: every frame sent to the network is well formed.
    let sent = read_frames(&out);
    let network: Vec<&Value> = verdicts
        .iter()
        .filter(|v| v["egress"] == "network")
        .collect();
    assert_eq!(sent.len(), network.len());
    for (frame, verdict) in sent.iter().zip(&network) {
        let what = format!("frame {}", verdict["frame"]);
        assert!(
            matches!(verdict["action"].as_str(), Some("forward" | "return")),
            "{what}"
        );
        assert_eq!(
            frame.len() as u64,
            verdict["out_len"].as_u64().unwrap(),
            "{what}"
        );
        verify_forwarded(frame, &what);
    }
    assert_eq!(
        read_frames(&punt).len() as u64,
        summary["summary"]["mcu"].as_u64().unwrap()
    );

    // Every mode's forward path, both return paths and every kind of refusal are covered.
    let actions: Vec<String> = verdicts
        .iter()
        .map(|v| {
            let mode = v["mode"].as_str().unwrap_or("");
            format!("{} {mode}", v["action"].as_str().unwrap())
        })
        .collect();
    for wanted in [
        "forward nat",
        "forward fullnat",
        "forward dsr",
        "forward ipip",
        "forward gue",
        "return nat",
        "return fullnat",
        "punt:l7_service l7",
        "punt:arp ",
        "punt:ipv6 ",
        "punt:fragment ",
        "drop:bad_ipv4_checksum ",
        "drop:truncated_ipv4 ",
        "drop:no_service ",
    ] {
        assert!(
            actions.iter().any(|a| a == wanted),
            "no frame tests `{wanted}`"
        );
    }

    // The README's table of frames matches the fixtures.
    let readme_path = fixtures().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (head, rest) = readme.split_once(TABLE_BEGIN).expect("README table marker");
    let (_, tail) = rest.split_once(TABLE_END).expect("README table end marker");
    let table = readme_table(&fixtures_in, verdicts);
    let regenerated = format!("{head}{TABLE_BEGIN}{table}{TABLE_END}{tail}");
    golden("README.md", regenerated.as_bytes());
}

#[test]
fn text_lines_name_service_backend_and_rewrite() {
    let dir = scratch("text");
    let input = dir.join("mixed.pcap");
    std::fs::write(&input, pcap_bytes(&mixed())).unwrap();
    let out = dir.join("out.pcap");
    let config = fixtures().join("fixtures.toml");
    let run = fulcrum(&["pcap", "-c", s(&config), s(&input), s(&out)]);
    assert!(run.status.success());
    let stdout = String::from_utf8(run.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 24, "{stdout}");
    assert_eq!(
        lines[0],
        "frame 1: forward web/web-1 (nat) 192.0.2.10:40001 -> 10.0.1.11:8080"
    );
    assert_eq!(
        lines[1],
        "frame 2: return web/web-1 (nat) 10.0.0.100:80 -> 192.0.2.10:40001"
    );
    assert!(
        lines[3].starts_with("frame 4: forward api/api-1 (fullnat) 10.0.0.250:"),
        "{}",
        lines[3]
    );
    assert!(lines[3].ends_with(" -> 10.0.2.21:8443"), "{}", lines[3]);
    assert_eq!(
        lines[5],
        "frame 6: forward dns/dns-1 (dsr) 192.0.2.12:53001 -> 10.0.0.53:53 via 02:00:00:00:03:1f"
    );
    assert!(
        lines[6].contains("(ipip) 192.0.2.13:40003 -> 10.0.0.103:80 in ipip 10.0.0.2 -> 10.0.4.4")
    );
    assert!(lines[7].contains(":6080"), "{}", lines[7]);
    assert_eq!(lines[8], "frame 9: punt l7_service (app)");
    assert_eq!(lines[19], "frame 20: drop tcp_no_flow (api)");
    assert_eq!(lines[15], "frame 16: drop bad_ipv4_checksum");
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(stderr.contains("24 frames ("), "{stderr}");
    assert!(stderr.contains("written to"), "{stderr}");
}

#[test]
fn a_truncated_capture_names_the_frame_and_keeps_what_came_before() {
    let dir = scratch("truncated");
    let fixtures_in = mixed();
    let mut bytes = pcap_bytes(&fixtures_in);
    // Cut the file inside the 5th record: header (24) + 4 records, and 20 bytes more.
    let four: usize = 24
        + fixtures_in[..4]
            .iter()
            .map(|f| 16 + f.bytes.len())
            .sum::<usize>();
    bytes.truncate(four + 20);
    let input = dir.join("cut.pcap");
    std::fs::write(&input, &bytes).unwrap();
    let out = dir.join("out.pcap");
    let config = fixtures().join("fixtures.toml");
    let run = fulcrum(&["pcap", "-c", s(&config), s(&input), s(&out), "--json"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(stderr.contains("cut.pcap"), "{stderr}");
    assert!(stderr.contains("frame 5"), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        5,
        "4 frames and the summary: {stdout}"
    );
    assert!(stdout.lines().last().unwrap().contains("\"error\""));
    assert_eq!(
        read_frames(&out).len(),
        4,
        "the 4 frames before were written"
    );

    // Cut inside a record header too.
    bytes.truncate(four + 7);
    std::fs::write(&input, &bytes).unwrap();
    let run = fulcrum(&["pcap", "-c", s(&config), s(&input), s(&out)]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(stderr.contains("frame 5: the file ends inside"), "{stderr}");
}

#[test]
fn non_ethernet_and_non_capture_files_are_refused() {
    let dir = scratch("refused");
    let config = fixtures().join("fixtures.toml");
    let out = dir.join("out.pcap");
    let header = PcapHeader {
        datalink: DataLink::RAW,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let raw = PcapWriter::with_header(Vec::new(), header)
        .unwrap()
        .into_writer();
    let input = dir.join("raw.pcap");
    std::fs::write(&input, raw).unwrap();
    let run = fulcrum(&["pcap", "-c", s(&config), s(&input), s(&out)]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(stderr.contains("raw.pcap has link type RAW"), "{stderr}");
    assert!(stderr.contains("Ethernet"), "{stderr}");

    let input = dir.join("text.pcap");
    std::fs::write(&input, "this is not a capture file, just text").unwrap();
    let run = fulcrum(&["pcap", "-c", s(&config), s(&input), s(&out)]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.contains("is neither a pcap nor a pcapng file"),
        "{stderr}"
    );

    let run = fulcrum(&["pcap", "-c", s(&config), "/nonexistent.pcap", s(&out)]);
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn pcapng_replays_like_pcap() {
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;

    let dir = scratch("pcapng");
    let fixtures_in = mixed();
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 65535))
        .unwrap();
    for f in &fixtures_in {
        // Default if_tsresol: microseconds; pcap-file writes the raw count as given.
        let micros = (T0 + Duration::from_millis(f.time_ms)).as_micros() as u64;
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(micros),
                original_len: f.bytes.len() as u32,
                data: f.bytes.as_slice().into(),
                options: vec![],
            })
            .unwrap();
    }
    let ng = dir.join("mixed.pcapng");
    std::fs::write(&ng, writer.into_inner()).unwrap();
    let classic = dir.join("mixed.pcap");
    std::fs::write(&classic, pcap_bytes(&fixtures_in)).unwrap();
    let config = fixtures().join("fixtures.toml");
    let (out_ng, out_classic) = (dir.join("ng.out.pcap"), dir.join("classic.out.pcap"));
    let ng_run = fulcrum(&["pcap", "-c", s(&config), s(&ng), s(&out_ng), "--json"]);
    let classic_run = fulcrum(&[
        "pcap",
        "-c",
        s(&config),
        s(&classic),
        s(&out_classic),
        "--json",
    ]);
    assert!(
        ng_run.status.success(),
        "{}",
        String::from_utf8_lossy(&ng_run.stderr)
    );
    assert_eq!(
        String::from_utf8(ng_run.stdout).unwrap(),
        String::from_utf8(classic_run.stdout).unwrap()
    );
    assert_eq!(
        std::fs::read(&out_ng).unwrap(),
        std::fs::read(&out_classic).unwrap()
    );
}
