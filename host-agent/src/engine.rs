//! The data path on the host: a configuration compiled into tables and run frame by
//! frame, for `fulcrum trace` and `fulcrum pcap` (and the golden fixtures).
//!
//! [`Engine`] owns everything a data path needs that the model leaves to its caller: the
//! control plane that compiles the configuration ([`ControlPlane`]) and the memories the
//! pipeline borrows (flow table, persistence table, the two ring banks). Because
//! [`Pipeline`] borrows that memory, the engine hands it out in a scope:
//! [`Engine::run`] boots a fresh appliance (empty flow table, tables written through
//! [`ControlPlane::write_all`] exactly as the MCU writes them) and gives the closure a
//! [`Session`] to push frames through.
//!
//! [`EngineKind`] names the implementation behind a session: the reference model, or the
//! rust-hdl simulation of the FPGA fast path (`fulcrum_hdl::pipeline::FastPath`),
//! programmed through the register map with the same writes the model gets
//! ([`ControlPlane::write_all`] through a `RegisterWriter`), behind the same
//! [`Session::process`]. The fast path forwards L4 services of mode DSR, IP-in-IP and GUE
//! with Maglev and serves L7 services; the `hdl` engine refuses any other configuration
//! before it starts, naming the service and the reason ([`hdl_support`],
//! [`EngineError::Unsupported`]). With
//! `hdl` the model runs beside the simulation (for [`Session::pipeline`]); the verdicts
//! and frames a session returns are the simulation's.
//!
//! [`FrameReport`] says, in names an operator knows, what happened to one frame: the
//! service and backend (resolved through the control plane's slot bookkeeping), the
//! mode, and the rewrite read back from the frame actually transmitted.

use std::fmt;
use std::net::Ipv4Addr;

use fulcrum_hdl::fast_path_sim::{Event, FastPathSim};
use fulcrum_hdl::sim::Traffic;
use fulcrum_model::compile::{CompileError, ControlPlane};
use fulcrum_model::config::{Algorithm, Config, Mode};
use fulcrum_model::counters::{DropReason, PuntReason};
use fulcrum_model::flow::{FlowEntry, StickyEntry};
use fulcrum_model::pipeline::{
    Action, OUT_HEADROOM, Pipeline, Port, STICKY_WAYS, Storage, Verdict, sticky_slots,
};
use fulcrum_model::regmap::RegisterWriter;
use fulcrum_model::tables::{BACKEND_SLOTS, SERVICE_SLOTS};
use fulcrum_model::wire::{self, Headers, IPPROTO_IPIP, IPPROTO_UDP, L3};
use serde_json::{Value, json};

/// Which implementation of the data path runs the frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// The bit-exact reference model (`fulcrum_model::pipeline`).
    #[default]
    Model,
    /// The rust-hdl simulation of the FPGA fast path (`fulcrum_hdl::pipeline::FastPath`);
    /// the configurations [`hdl_support`] accepts.
    Hdl,
}

/// Flow-table sets (log2) of the simulated fast path (4 ways each): the board image's.
const HDL_SETS_LOG2: usize = fulcrum_hdl::FLOW_SETS_LOG2;
/// Flow-table ways of the fast path (`fulcrum_hdl::flow_table::WAYS`).
const HDL_WAYS: u32 = fulcrum_hdl::flow_table::WAYS as u32;
// The model's persistence table (`sticky_slots`, one way) is the hardware's with the
// hardware's flow table (`Engine::new`).
const _: () = assert!(
    sticky_slots((1usize << HDL_SETS_LOG2) * fulcrum_hdl::flow_table::WAYS)
        == fulcrum_hdl::forward::STICKY_SETS
        && STICKY_WAYS == 1
);

/// Whether the FPGA fast path (`--engine hdl`) can run `config`, and if not why: the
/// first service it cannot serve, by name, with the reason. What the fast path has in
/// hardware: L7 services (punted to the MCU) and L4 services of mode NAT or full NAT
/// (both ways), DSR, IP-in-IP or GUE with every algorithm, sticky or not, a Maglev ring
/// of at most `fulcrum_hdl::forward::RING_STRIDE` entries and a flow table of
/// `2^HDL_SETS_LOG2` sets × 4 ways (its persistence table is then the hardware's:
/// `fulcrum_hdl::forward::STICKY_SETS` entries of one way, see [`Engine::new`]).
pub fn hdl_support(config: &Config) -> Result<(), String> {
    // Every mode, algorithm and persistence are in hardware (L7 is punted to the MCU).
    let l4 = config.services.iter().any(|s| s.mode != Mode::L7);
    if l4 {
        let ring = config.appliance.maglev_ring_size;
        let most = fulcrum_hdl::forward::RING_STRIDE as u32;
        if ring > most {
            let prime = (2..=most)
                .rev()
                .find(|&n| fulcrum_model::maglev::is_prime(n))
                .unwrap_or(2);
            return Err(format!(
                "appliance.maglev_ring_size {ring} is larger than the hardware's ring of \
                 {most} entries per service (use a prime up to {most}, e.g. {prime})"
            ));
        }
        let geometry = config.appliance.flow_table;
        let sets = 1u32 << HDL_SETS_LOG2;
        if geometry.sets != sets || geometry.ways != HDL_WAYS {
            return Err(format!(
                "appliance.flow_table is {} sets × {} ways, the simulated fast path has \
                 {sets} sets × {HDL_WAYS} ways (set them so)",
                geometry.sets, geometry.ways
            ));
        }
    }
    Ok(())
}

/// Why an [`Engine`] could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is valid but does not fit the appliance's tables.
    #[error("the configuration does not compile into the appliance's tables: {0}")]
    Compile(CompileError),
    /// The `hdl` engine cannot run this configuration yet.
    #[error(
        "the FPGA fast path (--engine hdl) cannot run this configuration yet: {0}; use --engine model"
    )]
    Unsupported(String),
}

impl From<CompileError> for EngineError {
    fn from(error: CompileError) -> Self {
        EngineError::Compile(error)
    }
}

/// Whether `kind` can run `config` (the FPGA fast path does not run every mode yet):
/// [`EngineError::Unsupported`] names the first service it cannot run, and why.
/// `fulcrum pcap`, `fulcrum trace` and `fulcrum sim --engine hdl` all ask here.
pub fn check_supported(kind: EngineKind, config: &Config) -> Result<(), EngineError> {
    if kind == EngineKind::Hdl {
        hdl_support(config).map_err(EngineError::Unsupported)?;
    }
    Ok(())
}

/// A configured data path: the control plane and the memory of the tables.
#[derive(Debug)]
pub struct Engine {
    kind: EngineKind,
    control: ControlPlane,
    flows: Vec<FlowEntry>,
    flow_ways: usize,
    sticky: Vec<StickyEntry>,
    sticky_ways: usize,
    ring_active: Vec<u16>,
    ring_shadow: Vec<u16>,
    ring_scratch: Vec<u16>,
}

impl Engine {
    /// Compiles `config` (already validated) and allocates the tables its
    /// `appliance.flow_table` and `maglev_ring_size` ask for. The persistence table is
    /// `sticky_slots` of the flow table, direct-mapped as the FPGA's (with the board's flow
    /// table exactly its `STICKY_SETS`, so both engines keep the same entries).
    pub fn new(kind: EngineKind, config: &Config) -> Result<Engine, EngineError> {
        check_supported(kind, config)?;
        let mut control = ControlPlane::new();
        control.apply(config)?;
        let geometry = config.appliance.flow_table;
        let sets = geometry.sets as usize;
        let ways = geometry.ways as usize;
        let ring_size = config.appliance.maglev_ring_size as usize;
        Ok(Engine {
            kind,
            control,
            flows: vec![FlowEntry::default(); sets * ways],
            flow_ways: ways,
            sticky: vec![StickyEntry::default(); sticky_slots(sets * ways)],
            sticky_ways: STICKY_WAYS,
            ring_active: vec![0; SERVICE_SLOTS * ring_size],
            ring_shadow: vec![0; SERVICE_SLOTS * ring_size],
            ring_scratch: vec![0; ring_size],
        })
    }

    /// The implementation this engine runs.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// The control plane: slot assignments and names.
    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// Boots a fresh data path (empty flow and persistence tables, counters at zero),
    /// writes the compiled tables into it and runs `f` over it. Each call starts afresh.
    pub fn run<R>(&mut self, f: impl FnOnce(&mut Session<'_>) -> R) -> Result<R, EngineError> {
        let mut pipeline = Pipeline::new(Storage {
            flows: &mut self.flows,
            flow_ways: self.flow_ways,
            sticky: &mut self.sticky,
            sticky_ways: self.sticky_ways,
            ring_active: &mut self.ring_active,
            ring_shadow: &mut self.ring_shadow,
        });
        self.control
            .write_all(&mut pipeline, &mut self.ring_scratch)?;
        let hdl = match self.kind {
            EngineKind::Model => None,
            EngineKind::Hdl => {
                let mut sim = Box::new(FastPathSim::<HDL_SETS_LOG2>::new(Traffic::SMOOTH, 0));
                self.control
                    .write_all(&mut RegisterWriter::new(&mut *sim), &mut self.ring_scratch)?;
                sim.run_until_idle(10_000);
                // The commit copies the backend table and the rings.
                assert!(
                    sim.wait_commit(1_000_000),
                    "the simulated fast path never applies its commit"
                );
                sim.take_events();
                Some(sim)
            }
        };
        let mut session = Session {
            control: &self.control,
            pipeline,
            hdl,
        };
        Ok(f(&mut session))
    }
}

/// A running data path, lent out by [`Engine::run`].
#[derive(Debug)]
pub struct Session<'e> {
    control: &'e ControlPlane,
    pipeline: Pipeline<'e>,
    hdl: Option<Box<FastPathSim<HDL_SETS_LOG2>>>,
}

/// One frame's way through the data path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// What the data path decided.
    pub verdict: Verdict,
    /// The frame it transmitted (on `verdict.egress`); empty when dropped.
    pub output: Vec<u8>,
}

impl Session<'_> {
    /// Processes `frame`, received on `ingress` at `now_ms`.
    pub fn process(&mut self, now_ms: u64, frame: &[u8], ingress: Port) -> Processed {
        let mut output = vec![0u8; frame.len() + OUT_HEADROOM];
        let verdict = self.pipeline.process(now_ms, frame, ingress, &mut output);
        output.truncate(verdict.len);
        match &mut self.hdl {
            // A stream has no empty frame: the FPGA never sees one (the model's answer).
            Some(sim) if !frame.is_empty() => hdl_process(sim, now_ms, frame, ingress),
            _ => Processed { verdict, output },
        }
    }

    /// The control plane the tables came from (for names).
    pub fn control(&self) -> &ControlPlane {
        self.control
    }

    /// The reference model itself (counters, flow table).
    pub fn pipeline(&self) -> &Pipeline<'_> {
        &self.pipeline
    }

    /// Describes what happened to `input` (see [`FrameReport::new`]).
    pub fn report(&self, input: &[u8], processed: &Processed) -> FrameReport {
        FrameReport::new(self.control, input, processed)
    }
}

/// One frame through the simulated fast path: its verdict and the frame it sent.
fn hdl_process(
    sim: &mut FastPathSim<HDL_SETS_LOG2>,
    now_ms: u64,
    frame: &[u8],
    ingress: Port,
) -> Processed {
    sim.set_now(now_ms);
    sim.push(ingress, frame.to_vec());
    // A frame of n bytes takes about n + 40 cycles; the bound only guards against a hang.
    let done = sim.run_until_idle(100_000 + 4 * frame.len() as u64);
    let mut verdict = None;
    let mut output = Vec::new();
    for event in sim.take_events() {
        match event {
            Event::Verdict(v) => verdict = Some(v),
            Event::Frame(_, bytes) => output = bytes,
            _ => {}
        }
    }
    match (done, verdict) {
        (true, Some(verdict)) => Processed { verdict, output },
        // Not reachable for the configurations `Engine::new` accepts (the tests replay
        // every frame kind); a hang or a refused frame is a bug in the fast path.
        _ => panic!(
            "the simulated fast path gave no verdict for a {}-byte frame",
            frame.len()
        ),
    }
}

/// An IPv4 address with a port when the protocol has ports: `10.0.1.12:8080`, `10.0.1.12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The address.
    pub ip: Ipv4Addr,
    /// The TCP or UDP port.
    pub port: Option<u16>,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.ip),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// A MAC address, printed `02:00:00:00:01:0c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// One change the data path made to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The destination address (and port) was rewritten.
    Dnat {
        /// As received.
        from: Address,
        /// As sent.
        to: Address,
    },
    /// The source address (and port) was rewritten.
    Snat {
        /// As received.
        from: Address,
        /// As sent.
        to: Address,
    },
    /// Only the destination MAC changed (direct server return).
    DstMac {
        /// As received.
        from: Mac,
        /// As sent (the backend's).
        to: Mac,
    },
    /// The frame was wrapped in an outer IPv4 header (IP-in-IP or GUE).
    Encap {
        /// `ipip` or `gue`.
        mode: Mode,
        /// Outer source (with the UDP source port for GUE).
        src: Address,
        /// Outer destination (with the GUE port).
        dst: Address,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Dnat { from, to } => write!(f, "dnat {from} -> {to}"),
            Change::Snat { from, to } => write!(f, "snat {from} -> {to}"),
            Change::DstMac { from, to } => write!(f, "dst mac {from} -> {to}"),
            Change::Encap { mode, src, dst } => write!(f, "{mode} outer {src} -> {dst}"),
        }
    }
}

/// What happened to one frame, in the operator's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameReport {
    /// The verdict as the data path gave it.
    pub verdict: Verdict,
    /// The service, by name (forward and return paths).
    pub service: Option<String>,
    /// The backend, by name (forward and return paths).
    pub backend: Option<String>,
    /// The service's mode.
    pub mode: Option<Mode>,
    /// The service's algorithm.
    pub algorithm: Option<Algorithm>,
    /// The backend's address and port.
    pub backend_address: Option<Address>,
    /// Source and destination of the transmitted IPv4 packet (the inner one of a tunnel).
    pub rewritten: Option<(Address, Address)>,
    /// Ethernet source and destination of the transmitted frame.
    pub macs: Option<(Mac, Mac)>,
    /// The changes, destination first.
    pub changes: Vec<Change>,
}

/// The stable name of an action, as in JSON output: `forward`, `return`, `from_mcu`,
/// `punt:<reason>`, `drop:<reason>` (reasons as the counters name them).
pub fn action_name(action: &Action) -> String {
    match action {
        Action::ToBackend { .. } => "forward".to_owned(),
        Action::ToClient { .. } => "return".to_owned(),
        Action::FromMcu => "from_mcu".to_owned(),
        Action::Punt(reason) => format!("punt:{}", reason.name()),
        Action::Drop(reason) => format!("drop:{}", reason.name()),
    }
}

/// The service-table index of the service `frame` is addressed to (VIP, protocol, port).
fn addressed_service(control: &ControlPlane, frame: &[u8]) -> Option<u8> {
    let headers = wire::parse(frame).ok()?;
    let ip = headers.ipv4()?;
    let (_, port) = ip.l4.ports()?;
    let index = control.services().iter().position(|s| {
        s.valid && s.vip == ip.dst && s.protocol.ip_number() == ip.protocol && s.port == port
    })?;
    u8::try_from(index).ok()
}

/// Source and destination of a parsed IPv4 packet.
fn endpoints(headers: &Headers) -> Option<(Address, Address)> {
    let ip = headers.ipv4()?;
    let ports = ip.l4.ports();
    Some((
        Address {
            ip: ip.src,
            port: ports.map(|p| p.0),
        },
        Address {
            ip: ip.dst,
            port: ports.map(|p| p.1),
        },
    ))
}

/// The outer header of a tunnel frame, and the inner packet's headers.
fn tunnel_endpoints(output: &[u8], headers: &Headers) -> Option<(Change, Option<Headers>)> {
    let ip = headers.ipv4()?;
    let l4 = headers.l4_offset();
    let (mode, src_port, dst_port, inner_at) = match ip.protocol {
        IPPROTO_IPIP => (Mode::Ipip, None, None, l4),
        IPPROTO_UDP => {
            let (s, d) = ip.l4.ports()?;
            (Mode::Gue, Some(s), Some(d), l4 + 8)
        }
        _ => return None,
    };
    let change = Change::Encap {
        mode,
        src: Address {
            ip: ip.src,
            port: src_port,
        },
        dst: Address {
            ip: ip.dst,
            port: dst_port,
        },
    };
    // Parse the inner packet as if it were the payload of a plain Ethernet frame.
    let mut inner = Vec::with_capacity(14 + output.len().saturating_sub(inner_at));
    inner.extend_from_slice(&output[..12]);
    inner.extend_from_slice(&wire::ETHERTYPE_IPV4.to_be_bytes());
    inner.extend_from_slice(output.get(inner_at..)?);
    Some((change, wire::parse(&inner).ok()))
}

impl FrameReport {
    /// Describes the frame `input` and what the data path made of it. Names come from
    /// `control`; the rewrite is read from `processed.output`, so it shows what was
    /// actually sent.
    pub fn new(control: &ControlPlane, input: &[u8], processed: &Processed) -> FrameReport {
        let verdict = processed.verdict;
        let (service, backend) = match verdict.action {
            Action::ToBackend {
                service, backend, ..
            }
            | Action::ToClient { service, backend } => (Some(service), Some(backend)),
            // Refused on the way to a service (before or after the choice of a
            // backend): the service is the one the frame was addressed to.
            Action::Punt(PuntReason::L7Service | PuntReason::NeighborUnresolved)
            | Action::Drop(DropReason::NoBackend | DropReason::TcpNoFlow | DropReason::TunnelMtu) => {
                (addressed_service(control, input), None)
            }
            _ => (None, None),
        };
        let service_index = service.map(usize::from).filter(|&s| s < SERVICE_SLOTS);
        let backend_index = backend.map(usize::from).filter(|&b| b < BACKEND_SLOTS);
        let entry = service_index.map(|s| control.services()[s]);
        let backend_entry = backend_index.map(|b| control.backends()[b]);
        let mut report = FrameReport {
            verdict,
            service: service_index
                .and_then(|s| control.service_name(s))
                .map(str::to_owned),
            backend: backend_index
                .and_then(|b| control.backend_name(b))
                .map(|(_, name)| name.to_owned()),
            mode: entry.map(|e| e.mode),
            algorithm: entry.map(|e| e.algorithm),
            backend_address: backend_entry.map(|b| Address {
                ip: b.ip(),
                port: Some(b.port),
            }),
            rewritten: None,
            macs: None,
            changes: Vec::new(),
        };
        let rewrites = matches!(
            verdict.action,
            Action::ToBackend { .. } | Action::ToClient { .. }
        );
        if !rewrites {
            return report;
        }
        let (Ok(before), Ok(after)) = (wire::parse(input), wire::parse(&processed.output)) else {
            return report;
        };
        report.macs = Some((Mac(after.src_mac), Mac(after.dst_mac)));
        let tunnelled = matches!(report.mode, Some(Mode::Ipip | Mode::Gue))
            && matches!(verdict.action, Action::ToBackend { .. });
        let inner = if tunnelled {
            let Some((encap, inner)) = tunnel_endpoints(&processed.output, &after) else {
                return report;
            };
            report.changes.push(encap);
            inner
        } else {
            Some(after)
        };
        let (Some((src0, dst0)), Some((src1, dst1))) =
            (endpoints(&before), inner.as_ref().and_then(endpoints))
        else {
            return report;
        };
        report.rewritten = Some((src1, dst1));
        if dst0 != dst1 {
            report.changes.insert(
                0,
                Change::Dnat {
                    from: dst0,
                    to: dst1,
                },
            );
        }
        if src0 != src1 {
            report.changes.push(Change::Snat {
                from: src0,
                to: src1,
            });
        }
        if report.changes.is_empty() && matches!(before.l3, L3::Ipv4(_)) {
            report.changes.push(Change::DstMac {
                from: Mac(before.dst_mac),
                to: Mac(after.dst_mac),
            });
        }
        report
    }

    /// The stable action name (see [`action_name`]).
    pub fn action(&self) -> String {
        action_name(&self.verdict.action)
    }

    /// Whether this frame created a flow (`None` when the action is not a forward).
    pub fn new_flow(&self) -> Option<bool> {
        match self.verdict.action {
            Action::ToBackend { new_flow, .. } => Some(new_flow),
            _ => None,
        }
    }

    /// `service/backend`, or the service alone, or `None`.
    pub fn qualified_backend(&self) -> Option<String> {
        match (&self.service, &self.backend) {
            (Some(s), Some(b)) => Some(format!("{s}/{b}")),
            (Some(s), None) => Some(s.clone()),
            _ => None,
        }
    }

    /// The flow hash as printed everywhere: `0x%08x`.
    pub fn hash(&self) -> String {
        format!("{:#010x}", self.verdict.hash)
    }

    /// The report as a JSON object. Keys are always present (null when not applicable):
    /// `hash`, `action`, `new_flow`, `service`, `backend`, `mode`, `algorithm`,
    /// `backend_address`, `rewritten` {`src`, `dst`}, `dnat` / `snat` {`from`, `to`},
    /// `dst_mac` {`from`, `to`}, `outer` {`mode`, `src`, `dst`}, `mac` {`src`, `dst`},
    /// `egress` (`network`, `mcu`) and `out_len`.
    pub fn to_json(&self) -> Value {
        let text = |v: &dyn fmt::Display| Value::String(v.to_string());
        let mut dnat = Value::Null;
        let mut snat = Value::Null;
        let mut dst_mac = Value::Null;
        let mut outer = Value::Null;
        for change in &self.changes {
            match change {
                Change::Dnat { from, to } => dnat = json!({ "from": text(from), "to": text(to) }),
                Change::Snat { from, to } => snat = json!({ "from": text(from), "to": text(to) }),
                Change::DstMac { from, to } => {
                    dst_mac = json!({ "from": text(from), "to": text(to) })
                }
                Change::Encap { mode, src, dst } => {
                    outer = json!({ "mode": mode.name(), "src": text(src), "dst": text(dst) })
                }
            }
        }
        json!({
            "hash": self.hash(),
            "action": self.action(),
            "new_flow": self.new_flow(),
            "service": self.service,
            "backend": self.backend,
            "mode": self.mode.map(Mode::name),
            "algorithm": self.algorithm.map(Algorithm::name),
            "backend_address": self.backend_address.map(|a| a.to_string()),
            "rewritten": self.rewritten.map(|(s, d)| json!({ "src": text(&s), "dst": text(&d) })),
            "dnat": dnat,
            "snat": snat,
            "dst_mac": dst_mac,
            "outer": outer,
            "mac": self.macs.map(|(s, d)| json!({ "src": text(&s), "dst": text(&d) })),
            "egress": self.verdict.egress.map(port_name),
            "out_len": self.verdict.len,
        })
    }
}

/// `network` or `mcu`.
pub fn port_name(port: Port) -> &'static str {
    match port {
        Port::Network => "network",
        Port::Mcu => "mcu",
    }
}
