//! `fulcrum pcap --config CONFIG IN.pcap OUT.pcap`: replays a capture through the data
//! path and writes what the appliance would transmit.
//!
//! Every frame of `IN` enters on the network port of one freshly booted appliance, in
//! order, at its capture time (milliseconds after the first frame, so flow timeouts
//! behave as they would have). Frames leaving on the network port go to `OUT`; frames
//! handed to the MCU go to `--punt` if given. Each output frame keeps its input frame's
//! timestamp. One line per input frame says what happened to it.
//!
//! Classic pcap (either byte order, micro- or nanosecond timestamps) and pcapng are read;
//! only Ethernet link types are accepted. Outputs are classic little-endian pcap with
//! the input's timestamp resolution (microseconds for pcapng input), so replays of the
//! same input are byte for byte identical — the golden fixtures rely on it.
//!
//! A frame the data path cannot parse is a drop verdict, never an error. A capture file
//! that is cut short or corrupt stops the replay at the bad record: the frames before it
//! are processed and written, and the error names the file and the frame number.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fulcrum_host::engine::{Change, EngineKind, FrameReport};
use fulcrum_model::pipeline::{Action, Port};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapParser, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use serde_json::{Value, json};

/// Arguments of `fulcrum pcap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML), e.g. examples/fulcrum.toml.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The capture to replay (pcap or pcapng, Ethernet), as received on the network port.
    pub input: PathBuf,
    /// Where to write the frames the appliance sends to the network (pcap).
    pub output: PathBuf,
    /// Where to write the frames the appliance hands to its MCU (pcap).
    #[arg(long, value_name = "PUNT.pcap")]
    pub punt: Option<PathBuf>,
    /// Print JSON lines instead of text: one object per frame with keys frame, time_ms,
    /// len, hash, action, new_flow, service, backend, mode, ... (as `trace --json`), then
    /// {"summary": {"frames", "actions": {action: count}, "network", "mcu"}}.
    #[arg(long)]
    pub json: bool,
    /// The data path implementation to run.
    #[arg(long, value_enum, default_value_t)]
    pub engine: EngineKind,
}

/// One frame read from a capture.
#[derive(Debug, Clone)]
struct Captured<'a> {
    /// Capture time since the epoch.
    timestamp: Duration,
    /// The bytes captured (borrowed from the file's bytes).
    data: Cow<'a, [u8]>,
}

/// What a capture file held: its frames up to the first bad record, and that record's
/// problem if there was one.
#[derive(Debug)]
struct Capture<'a> {
    frames: Vec<Captured<'a>>,
    resolution: TsResolution,
    /// The problem that stopped reading, with the number of the frame it hit.
    problem: Option<String>,
}

/// Reads a classic pcap or pcapng file held in `bytes`. `Err` when the file is not a
/// capture at all (or not Ethernet) and nothing can be replayed.
fn read_capture(bytes: &[u8]) -> Result<Capture<'_>> {
    if bytes.len() >= 4 && bytes[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        return read_pcapng(bytes);
    }
    let (mut rest, parser) = match PcapParser::new(bytes) {
        Ok(parsed) => parsed,
        Err(PcapError::IncompleteBuffer) => {
            bail!(
                "is too short for a pcap file ({} bytes, the header alone is 24)",
                bytes.len()
            )
        }
        Err(_) => bail!(
            "is neither a pcap nor a pcapng file (it starts with {:02x?})",
            &bytes[..bytes.len().min(4)]
        ),
    };
    let header = parser.header();
    if header.datalink != DataLink::ETHERNET {
        bail!(
            "has link type {:?} ({}); fulcrum replays Ethernet captures (link type 1) only",
            header.datalink,
            u32::from(header.datalink)
        );
    }
    let mut frames = Vec::new();
    let mut problem = None;
    while !rest.is_empty() {
        let number = frames.len() + 1;
        match parser.next_raw_packet(rest) {
            Ok((remainder, raw)) => {
                let nanos = match header.ts_resolution {
                    TsResolution::MicroSecond => u64::from(raw.ts_frac) * 1000,
                    TsResolution::NanoSecond => u64::from(raw.ts_frac),
                };
                if nanos >= 1_000_000_000 {
                    problem = Some(format!(
                        "frame {number}: timestamp fraction {} is out of range; the file is corrupt",
                        raw.ts_frac
                    ));
                    break;
                }
                frames.push(Captured {
                    timestamp: Duration::from_secs(u64::from(raw.ts_sec))
                        + Duration::from_nanos(nanos),
                    data: raw.data,
                });
                rest = remainder;
            }
            Err(PcapError::IncompleteBuffer) if rest.len() < 16 => {
                problem = Some(format!(
                    "frame {number}: the file ends inside the frame's record header \
                     ({} of 16 bytes); the capture is truncated",
                    rest.len()
                ));
                break;
            }
            Err(PcapError::IncompleteBuffer) => {
                let field = [rest[8], rest[9], rest[10], rest[11]];
                let captured = match header.endianness {
                    Endianness::Big => u32::from_be_bytes(field),
                    Endianness::Little => u32::from_le_bytes(field),
                };
                problem = Some(format!(
                    "frame {number}: the record says {captured} bytes were captured but the \
                     file has only {} left; the capture is truncated or corrupt",
                    rest.len() - 16
                ));
                break;
            }
            Err(error) => {
                problem = Some(format!("frame {number}: {error}"));
                break;
            }
        }
    }
    Ok(Capture {
        frames,
        resolution: header.ts_resolution,
        problem,
    })
}

fn read_pcapng(bytes: &[u8]) -> Result<Capture<'_>> {
    let (mut rest, mut parser) = match PcapNgParser::new(bytes) {
        Ok(parsed) => parsed,
        Err(error) => bail!("is not a readable pcapng file: {error}"),
    };
    let mut frames = Vec::new();
    let mut problem = None;
    let mut last = Duration::ZERO;
    while !rest.is_empty() {
        let number = frames.len() + 1;
        let block = match parser.next_block(rest) {
            Ok((remainder, block)) => {
                rest = remainder;
                block
            }
            Err(PcapError::IncompleteBuffer) => {
                problem = Some(format!(
                    "frame {number}: the file ends inside a block ({} bytes left); the \
                     capture is truncated",
                    rest.len()
                ));
                break;
            }
            Err(error) => {
                problem = Some(format!("frame {number}: {error}"));
                break;
            }
        };
        let (interface_id, ticks, data) = match block {
            Block::EnhancedPacket(packet) => (
                packet.interface_id,
                Some(packet.timestamp.as_nanos()),
                packet.data,
            ),
            Block::SimplePacket(packet) => (0, None, packet.data),
            _ => continue,
        };
        let Some(interface) = parser.interfaces().get(interface_id as usize) else {
            problem = Some(format!(
                "frame {number}: interface {interface_id} has no interface description block"
            ));
            break;
        };
        if interface.linktype != DataLink::ETHERNET {
            problem = Some(format!(
                "frame {number}: interface {interface_id} has link type {:?}; fulcrum \
                 replays Ethernet captures (link type 1) only",
                interface.linktype
            ));
            break;
        }
        if let Some(ticks) = ticks {
            // pcap-file reads the 64-bit timestamp as nanoseconds; it counts units of
            // the interface's if_tsresol (default 10^-6 s).
            let resolution = interface
                .options
                .iter()
                .find_map(|option| match option {
                    InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                    _ => None,
                })
                .unwrap_or(6);
            let exponent = u32::from(resolution & 0x7f);
            let nanos = if resolution & 0x80 == 0 {
                (ticks * 1_000_000_000).checked_div(10u128.checked_pow(exponent).unwrap_or(0))
            } else {
                (ticks * 1_000_000_000).checked_shr(exponent)
            };
            last = Duration::from_nanos(nanos.unwrap_or(0).min(u128::from(u64::MAX)) as u64);
        }
        frames.push(Captured {
            timestamp: last,
            data,
        });
    }
    Ok(Capture {
        frames,
        resolution: TsResolution::MicroSecond,
        problem,
    })
}

/// A pcap file being written.
struct Sink {
    path: PathBuf,
    writer: PcapWriter<BufWriter<File>>,
    frames: usize,
}

impl Sink {
    fn create(path: &Path, resolution: TsResolution) -> Result<Sink> {
        let file =
            File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: 262_144,
            datalink: DataLink::ETHERNET,
            ts_resolution: resolution,
            endianness: Endianness::Little,
        };
        let writer = PcapWriter::with_header(BufWriter::new(file), header)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        Ok(Sink {
            path: path.to_owned(),
            writer,
            frames: 0,
        })
    }

    fn write(&mut self, timestamp: Duration, frame: &[u8]) -> Result<()> {
        self.writer
            .write_packet(&PcapPacket::new(timestamp, frame.len() as u32, frame))
            .with_context(|| format!("{}: cannot write", self.path.display()))?;
        self.frames += 1;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        self.writer
            .into_writer()
            .flush()
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }
}

/// Replays the capture: exit status 0 when every frame was replayed (whatever the
/// verdicts), 1 for an invalid configuration or a capture that is not Ethernet, cut
/// short or corrupt (after writing what came before), 2 (an error) when a file cannot
/// be read or written.
pub fn run(args: Args) -> Result<ExitCode> {
    let name = args.input.display().to_string();
    let mut engine = match crate::trace::load_engine(&args.config, args.engine)? {
        Ok((_, engine)) => engine,
        Err(status) => return Ok(status),
    };
    let bytes = std::fs::read(&args.input).with_context(|| format!("{name}: cannot read"))?;
    let capture = match read_capture(&bytes) {
        Ok(capture) => capture,
        Err(error) => {
            eprintln!("fulcrum: {name} {error:#}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut network = Sink::create(&args.output, capture.resolution)?;
    let mut mcu = match &args.punt {
        Some(path) => Some(Sink::create(path, capture.resolution)?),
        None => None,
    };
    let first = capture
        .frames
        .first()
        .map_or(Duration::ZERO, |f| f.timestamp);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut stdout = std::io::stdout().lock();
    let replay = engine.run(|session| -> Result<()> {
        for (index, frame) in capture.frames.iter().enumerate() {
            let now_ms = frame.timestamp.saturating_sub(first).as_millis() as u64;
            let processed = session.process(now_ms, &frame.data, Port::Network);
            let report = session.report(&frame.data, &processed);
            match processed.verdict.egress {
                Some(Port::Network) => network.write(frame.timestamp, &processed.output)?,
                Some(Port::Mcu) => {
                    if let Some(sink) = mcu.as_mut() {
                        sink.write(frame.timestamp, &processed.output)?;
                    }
                }
                None => {}
            }
            *counts.entry(report.action()).or_default() += 1;
            let number = index + 1;
            if args.json {
                writeln!(
                    stdout,
                    "{}",
                    frame_json(number, now_ms, frame.data.len(), &report)
                )?;
            } else {
                writeln!(stdout, "{}", frame_line(number, &report))?;
            }
        }
        Ok(())
    });
    replay??;
    let frames = capture.frames.len();
    let written = network.frames;
    let punted = mcu.as_ref().map(|sink| sink.frames);
    network.finish()?;
    if let Some(sink) = mcu {
        sink.finish()?;
    }
    if args.json {
        let mut summary = json!({
            "summary": {
                "frames": frames,
                "actions": counts,
                "network": written,
                "mcu": counts.iter().filter(|(a, _)| a.starts_with("punt:")).map(|(_, n)| n).sum::<u64>(),
            }
        });
        if let Some(problem) = &capture.problem {
            summary["summary"]["error"] = json!(problem);
        }
        writeln!(stdout, "{summary}")?;
    } else {
        let actions: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
        eprintln!(
            "{name}: {frames} frames ({}); {written} written to {}{}",
            if actions.is_empty() {
                "none".to_owned()
            } else {
                actions.join(", ")
            },
            args.output.display(),
            match (punted, &args.punt) {
                (Some(n), Some(path)) => format!(", {n} to {}", path.display()),
                _ => String::new(),
            }
        );
    }
    match capture.problem {
        Some(problem) => {
            eprintln!(
                "fulcrum: {name}: {problem} (the {frames} frames before it were replayed and written)"
            );
            Ok(ExitCode::from(1))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

fn frame_json(number: usize, now_ms: u64, len: usize, report: &FrameReport) -> Value {
    let mut object = json!({ "frame": number, "time_ms": now_ms, "len": len });
    if let (Value::Object(head), Value::Object(rest)) = (&mut object, report.to_json()) {
        head.extend(rest);
    }
    object
}

/// `frame 1: forward web/web-2 (nat) 192.0.2.7:40001 -> 10.0.1.12:8080`,
/// `frame 9: punt l7_service (app)`, `frame 16: drop bad_ipv4_checksum`.
fn frame_line(number: usize, report: &FrameReport) -> String {
    let mut line = format!("frame {number}: ");
    let refusal = match report.verdict.action {
        Action::Punt(reason) => Some(format!("punt {}", reason.name())),
        Action::Drop(reason) => Some(format!("drop {}", reason.name())),
        Action::FromMcu => Some("from_mcu".to_owned()),
        Action::ToBackend { .. } | Action::ToClient { .. } => None,
    };
    if let Some(refusal) = refusal {
        line.push_str(&refusal);
        if let Some(service) = &report.service {
            line.push_str(&format!(" ({service})"));
        }
        return line;
    }
    line.push_str(&report.action());
    if let Some(backend) = report.qualified_backend() {
        line.push_str(&format!(" {backend}"));
    }
    if let Some(mode) = report.mode {
        line.push_str(&format!(" ({mode})"));
    }
    if let Some((src, dst)) = report.rewritten {
        line.push_str(&format!(" {src} -> {dst}"));
    }
    for change in &report.changes {
        match change {
            Change::Encap { mode, src, dst } => {
                line.push_str(&format!(" in {mode} {src} -> {dst}"))
            }
            Change::DstMac { to, .. } => line.push_str(&format!(" via {to}")),
            Change::Dnat { .. } | Change::Snat { .. } => {}
        }
    }
    line
}
