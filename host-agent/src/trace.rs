//! `fulcrum trace --config CONFIG "tcp 192.0.2.7:40001 -> 10.0.0.100:80"`: which service
//! and backend would this flow hit, and what would the appliance send?
//!
//! The flow is built into a real frame (Ethernet from a client MAC to the appliance's MAC,
//! IPv4 with a valid checksum, a TCP SYN, a UDP datagram or an ICMP echo request) and run
//! through a freshly booted data path at time 0 — the first packet of a new flow, as the
//! appliance would see it. Katran's "which backend would this flow hit?" query, answered
//! by the same model the FPGA is checked against.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use fulcrum_host::config_file::{self, LoadError};
use fulcrum_host::engine::{Engine, EngineKind, FrameReport, port_name};
use fulcrum_model::config::Config;
use fulcrum_model::pipeline::{Action, Port};
use serde_json::{Value, json};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Message, Icmpv4Packet, IpAddress,
    IpProtocol, Ipv4Packet, TcpPacket, TcpSeqNumber, UdpPacket,
};

/// Source MAC of traced frames (a locally administered address no real client has).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];

/// What `trace` accepts, for error messages and help.
const FLOW_FORMS: &str = "expected `tcp SRC:PORT -> DST:PORT`, `udp SRC:PORT -> DST:PORT` \
     or `icmp SRC -> DST` with IPv4 addresses, e.g. `tcp 192.0.2.7:40001 -> 10.0.0.100:80`";

/// Arguments of `fulcrum trace`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML), e.g. examples/fulcrum.toml.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print one JSON object with keys flow, len, hash ("0x%08x"), action ("forward",
    /// "punt:l7_service", "drop:no_service", ...), new_flow, service, backend, mode,
    /// algorithm, backend_address, rewritten {src,dst}, dnat/snat {from,to},
    /// dst_mac {from,to}, outer {mode,src,dst}, mac {src,dst}, egress and out_len.
    #[arg(long)]
    pub json: bool,
    /// The data path implementation to run.
    #[arg(long, value_enum, default_value_t)]
    pub engine: EngineKind,
    /// The flow, quoted as one argument (the shell would take `>` for a redirection):
    /// "tcp|udp SRC:PORT -> DST:PORT" or "icmp SRC -> DST".
    #[arg(allow_hyphen_values = true, value_name = "FLOW")]
    pub flow: String,
}

/// The protocol of a traced flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowProtocol {
    /// A TCP SYN.
    Tcp,
    /// A UDP datagram.
    Udp,
    /// An ICMP echo request.
    Icmp,
}

/// A flow as the operator writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    /// The protocol.
    pub protocol: FlowProtocol,
    /// Client address.
    pub src: Ipv4Addr,
    /// Destination (usually a VIP).
    pub dst: Ipv4Addr,
    /// Source and destination ports (TCP and UDP only).
    pub ports: Option<(u16, u16)>,
}

impl std::fmt::Display for FlowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.protocol, self.ports) {
            (FlowProtocol::Icmp, _) | (_, None) => {
                write!(f, "icmp {} -> {}", self.src, self.dst)
            }
            (protocol, Some((sp, dp))) => {
                let name = if protocol == FlowProtocol::Tcp {
                    "tcp"
                } else {
                    "udp"
                };
                write!(f, "{name} {}:{sp} -> {}:{dp}", self.src, self.dst)
            }
        }
    }
}

impl std::str::FromStr for FlowSpec {
    type Err = String;

    /// Parses `tcp 1.2.3.4:5 -> 6.7.8.9:10` (spaces around `->` optional) or
    /// `icmp 1.2.3.4 -> 6.7.8.9`; the error says what was wrong.
    fn from_str(text: &str) -> Result<FlowSpec, String> {
        let text = text.trim();
        let (protocol_word, rest) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| "no protocol and addresses".to_owned())?;
        let protocol = match protocol_word.to_ascii_lowercase().as_str() {
            "tcp" => FlowProtocol::Tcp,
            "udp" => FlowProtocol::Udp,
            "icmp" => FlowProtocol::Icmp,
            other => return Err(format!("unknown protocol `{other}`")),
        };
        let (src, dst) = rest
            .split_once("->")
            .ok_or_else(|| "no `->` between source and destination".to_owned())?;
        let (src, dst) = (src.trim(), dst.trim());
        if protocol == FlowProtocol::Icmp {
            let address = |s: &str| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| format!("`{s}` is not an IPv4 address (icmp takes no ports)"))
            };
            return Ok(FlowSpec {
                protocol,
                src: address(src)?,
                dst: address(dst)?,
                ports: None,
            });
        }
        let endpoint = |s: &str| -> Result<(Ipv4Addr, u16), String> {
            let (ip, port) = s
                .rsplit_once(':')
                .ok_or_else(|| format!("`{s}` has no port (ADDRESS:PORT)"))?;
            let ip = ip
                .parse::<Ipv4Addr>()
                .map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("`{port}` is not a port (0 to 65535)"))?;
            Ok((ip, port))
        };
        let (src, sport) = endpoint(src)?;
        let (dst, dport) = endpoint(dst)?;
        Ok(FlowSpec {
            protocol,
            src,
            dst,
            ports: Some((sport, dport)),
        })
    }
}

/// Builds the first frame of `flow`: Ethernet from [`CLIENT_MAC`] to `appliance_mac`,
/// IPv4 (DF, TTL 64, valid checksum), then a TCP SYN (no options, window 64240), a UDP
/// datagram with an 8-byte payload, or an ICMP echo request with an 8-byte payload.
/// Transport checksums are valid.
pub fn build_frame(flow: &FlowSpec, appliance_mac: [u8; 6]) -> Vec<u8> {
    const PAYLOAD: &[u8] = b"fulcrum\n";
    let (protocol, l4_len) = match flow.protocol {
        FlowProtocol::Tcp => (IpProtocol::Tcp, 20),
        FlowProtocol::Udp => (IpProtocol::Udp, 8 + PAYLOAD.len()),
        FlowProtocol::Icmp => (IpProtocol::Icmp, 8 + PAYLOAD.len()),
    };
    let mut frame = vec![0u8; 14 + 20 + l4_len];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(EthernetAddress(appliance_mac));
    eth.set_src_addr(EthernetAddress(CLIENT_MAC));
    eth.set_ethertype(EthernetProtocol::Ipv4);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len((20 + l4_len) as u16);
    ip.set_ident(1);
    ip.set_dont_frag(true);
    ip.set_hop_limit(64);
    ip.set_next_header(protocol);
    ip.set_src_addr(flow.src);
    ip.set_dst_addr(flow.dst);
    ip.fill_checksum();
    let (src, dst) = (IpAddress::Ipv4(flow.src), IpAddress::Ipv4(flow.dst));
    let (sport, dport) = flow.ports.unwrap_or((0, 0));
    let l4 = &mut frame[34..];
    match flow.protocol {
        FlowProtocol::Tcp => {
            let mut tcp = TcpPacket::new_unchecked(l4);
            tcp.set_src_port(sport);
            tcp.set_dst_port(dport);
            tcp.set_seq_number(TcpSeqNumber(1000));
            tcp.set_header_len(20);
            tcp.clear_flags();
            tcp.set_syn(true);
            tcp.set_window_len(64240);
            tcp.fill_checksum(&src, &dst);
        }
        FlowProtocol::Udp => {
            let mut udp = UdpPacket::new_unchecked(l4);
            udp.set_src_port(sport);
            udp.set_dst_port(dport);
            udp.set_len(l4_len as u16);
            udp.payload_mut().copy_from_slice(PAYLOAD);
            udp.fill_checksum(&src, &dst);
        }
        FlowProtocol::Icmp => {
            let mut icmp = Icmpv4Packet::new_unchecked(l4);
            icmp.set_msg_type(Icmpv4Message::EchoRequest);
            icmp.set_msg_code(0);
            icmp.set_echo_ident(0x4643);
            icmp.set_echo_seq_no(1);
            icmp.data_mut().copy_from_slice(PAYLOAD);
            icmp.fill_checksum();
        }
    }
    frame
}

/// Loads a configuration, printing its problems as `fulcrum check` does. `Ok(Err(1))`
/// when it is invalid; `Err` when it cannot be read.
pub fn load_config(path: &Path) -> Result<Result<Config, ExitCode>> {
    match config_file::load(path) {
        Ok(config) => Ok(Ok(config)),
        Err(LoadError::Invalid(invalid)) => {
            eprintln!("{invalid}");
            let count = invalid.diagnostics.len() + invalid.omitted;
            let noun = if count == 1 { "problem" } else { "problems" };
            eprintln!(
                "{}: {count} {noun}; `fulcrum check` explains each",
                path.display()
            );
            Ok(Err(ExitCode::from(1)))
        }
        Err(error @ LoadError::Read { .. }) => Err(error.into()),
    }
}

/// Loads the config and boots an engine on it; `Ok(Err(1))` after printing why when the
/// config is invalid or its tables cannot be built.
pub fn load_engine(path: &Path, kind: EngineKind) -> Result<Result<(Config, Engine), ExitCode>> {
    let config = match load_config(path)? {
        Ok(config) => config,
        Err(status) => return Ok(Err(status)),
    };
    match Engine::new(kind, &config) {
        Ok(engine) => Ok(Ok((config, engine))),
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            Ok(Err(ExitCode::from(1)))
        }
    }
}

/// Traces the flow: exit status 0 when the trace ran (whatever the verdict), 1 for an
/// invalid configuration, 2 (an error) for a flow that cannot be read.
pub fn run(args: Args) -> Result<ExitCode> {
    let text = args.flow.trim();
    let flow: FlowSpec = text
        .parse()
        .map_err(|why| anyhow!("cannot read the flow `{text}`: {why}; {FLOW_FORMS}"))?;
    let (config, mut engine) = match load_engine(&args.config, args.engine)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let frame = build_frame(&flow, config.appliance.mac.0);
    let report = engine.run(|session| {
        let processed = session.process(0, &frame, Port::Network);
        session.report(&frame, &processed)
    });
    let report = match report {
        Ok(report) => report,
        Err(error) => bail!("{}: {error}", args.config.display()),
    };
    if args.json {
        println!("{}", trace_json(&flow, frame.len(), &report));
    } else {
        print!("{}", trace_text(&flow, &config, &report));
    }
    Ok(ExitCode::SUCCESS)
}

fn trace_json(flow: &FlowSpec, len: usize, report: &FrameReport) -> Value {
    let mut object = json!({ "flow": flow.to_string(), "len": len });
    if let (Value::Object(head), Value::Object(rest)) = (&mut object, report.to_json()) {
        head.extend(rest);
    }
    object
}

fn trace_text(flow: &FlowSpec, config: &Config, report: &FrameReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{key:<9}{value}");
    };
    line("flow", flow);
    line("hash", &report.hash());
    let service = config
        .services
        .iter()
        .find(|svc| Some(svc.name.as_str()) == report.service.as_deref());
    match service {
        Some(svc) => line(
            "service",
            &format!(
                "{} ({} {}:{}, {}, {})",
                svc.name,
                svc.protocol,
                svc.vip,
                svc.port,
                svc.mode,
                svc.algorithm.name()
            ),
        ),
        None => line("service", &"-"),
    }
    match (&report.backend, report.backend_address) {
        (Some(name), Some(address)) => line("backend", &format!("{name} {address}")),
        _ => line("backend", &"-"),
    }
    let action = match report.verdict.action {
        Action::ToBackend { new_flow: true, .. } => "forward (new flow)".to_owned(),
        Action::ToBackend { .. } => "forward (existing flow)".to_owned(),
        Action::ToClient { .. } => "return (to the client)".to_owned(),
        Action::Punt(_) => format!("{} (handed to the MCU)", report.action()),
        _ => report.action(),
    };
    line("action", &action);
    for (i, change) in report.changes.iter().enumerate() {
        line(if i == 0 { "rewrite" } else { "" }, change);
    }
    if let Some((src, dst)) = report.macs {
        line("mac", &format!("{src} -> {dst}"));
    }
    match report.verdict.egress {
        Some(port) => line(
            "egress",
            &format!("{} port, {} bytes", port_name(port), report.verdict.len),
        ),
        None => line("egress", &"none (dropped)"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_specs_parse_and_print_back() {
        for text in [
            "tcp 66.9.149.187:2794 -> 161.142.100.80:1766",
            "udp 192.0.2.7:5353 -> 10.0.0.53:53",
            "icmp 66.9.149.187 -> 161.142.100.80",
        ] {
            let flow: FlowSpec = text.parse().unwrap();
            assert_eq!(flow.to_string(), text);
        }
        let tight: FlowSpec = "TCP 1.2.3.4:5->6.7.8.9:10".parse().unwrap();
        assert_eq!(tight.to_string(), "tcp 1.2.3.4:5 -> 6.7.8.9:10");
    }

    #[test]
    fn bad_flow_specs_say_what_is_wrong() {
        for (text, why) in [
            ("sctp 1.2.3.4:5 -> 6.7.8.9:10", "unknown protocol `sctp`"),
            ("tcp 1.2.3.4:5 6.7.8.9:10", "no `->`"),
            ("tcp 1.2.3.4 -> 6.7.8.9:10", "has no port"),
            ("udp 1.2.3.4:99999 -> 6.7.8.9:10", "not a port"),
            ("icmp 1.2.3.4:5 -> 6.7.8.9", "icmp takes no ports"),
            ("tcp 1.2.3:5 -> 6.7.8.9:10", "not an IPv4 address"),
            ("tcp", "no protocol and addresses"),
        ] {
            let error = text.parse::<FlowSpec>().unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn built_frames_parse_with_valid_checksums() {
        for text in [
            "tcp 192.0.2.7:40001 -> 10.0.0.100:80",
            "udp 192.0.2.7:5353 -> 10.0.0.53:53",
            "icmp 192.0.2.7 -> 10.0.0.100",
        ] {
            let flow: FlowSpec = text.parse().unwrap();
            let frame = build_frame(&flow, [2, 0, 0, 0, 0, 1]);
            let headers = fulcrum_model::wire::parse(&frame).unwrap();
            let ip = headers.ipv4().unwrap();
            assert_eq!((ip.src, ip.dst), (flow.src, flow.dst));
            assert_eq!(ip.l4.ports(), flow.ports);
            let packet = Ipv4Packet::new_checked(&frame[14..]).unwrap();
            let (s, d) = (IpAddress::Ipv4(flow.src), IpAddress::Ipv4(flow.dst));
            let valid = match flow.protocol {
                FlowProtocol::Tcp => TcpPacket::new_checked(packet.payload())
                    .unwrap()
                    .verify_checksum(&s, &d),
                FlowProtocol::Udp => UdpPacket::new_checked(packet.payload())
                    .unwrap()
                    .verify_checksum(&s, &d),
                FlowProtocol::Icmp => Icmpv4Packet::new_checked(packet.payload())
                    .unwrap()
                    .verify_checksum(),
            };
            assert!(valid, "{text}");
        }
    }
}
