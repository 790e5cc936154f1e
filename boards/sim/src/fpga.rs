//! The FPGA of the simulated board: the reference model's pipeline between the network
//! port and the MCU port, programmed through the same register map the board's SPI bus
//! carries; or, with [`Engine::Hdl`], the rust-hdl simulation of the FPGA's fast path
//! ([`crate::hdl_fpga`]) in its place.
//!
//! With [`Engine::Hdl`] the frames and every register read (counters, status) are the
//! simulation's. The model's pipeline stays beside it as a mirror of the tables the MCU
//! writes (every register write goes to both), so [`Fpga::pipeline`] still shows the
//! backends and rings as written; its flow table and counters see no frames.

use std::cell::RefCell;
use std::rc::Rc;

use embassy_futures::select::{Either3, select3};
use embassy_time::{Duration, Instant, Timer};
use fulcrum_model::changelog::{self, ChangeRegisters};
use fulcrum_model::config::Config;
use fulcrum_model::counters::Counters;
use fulcrum_model::flow::{FlowEntry, StickyEntry};
use fulcrum_model::pipeline::{OUT_HEADROOM, Pipeline, Port, STICKY_WAYS, Storage, sticky_slots};
use fulcrum_model::regmap::{CounterSource, RegisterBus, RegisterFile};
use fulcrum_model::tables::{
    BACKEND_SLOTS, BackendEntry, SERVICE_SLOTS, ServiceEntry, Settings, TableWriter,
};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::hdl_fpga::{HdlFpga, HdlStats};
use crate::link::{End, MAX_FRAME};
use crate::network::NetworkPort;

/// Flow-table geometry of the simulated FPGA (the config's geometry must not exceed it).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Sets (power of two).
    pub sets: usize,
    /// Ways.
    pub ways: usize,
    /// Ring entries per service.
    pub ring: usize,
}

impl Geometry {
    /// The geometry a config asks for.
    pub fn of(config: &Config) -> Geometry {
        Geometry {
            sets: config.appliance.flow_table.sets as usize,
            ways: config.appliance.flow_table.ways as usize,
            ring: config.appliance.maglev_ring_size as usize,
        }
    }
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            sets: 16384,
            ways: 4,
            ring: 65537,
        }
    }
}

/// What runs the simulated FPGA's data path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// The reference model (`fulcrum_model::pipeline::Pipeline`).
    #[default]
    Model,
    /// The rust-hdl simulation of the fast path (`fulcrum_hdl::pipeline::FastPath`).
    Hdl,
}

/// The simulated FPGA.
pub struct Fpga {
    pipeline: Pipeline<'static>,
    /// The fast-path simulation, with [`Engine::Hdl`].
    hdl: Option<HdlFpga>,
    /// The Ethernet MAC filter's virtual-MAC entry (`VMAC_FILTER`): frames to a VRRP
    /// virtual MAC pass only when it is this VRID's and accepted (the HA master).
    vmac_filter: u32,
}

/// Whether the port's MAC filter passes `frame` (only VRRP virtual MACs are filtered; the
/// model accepts every other destination, as the simulated network only delivers what a
/// switch would).
fn mac_filter_passes(vmac_filter: u32, frame: &[u8]) -> bool {
    match frame.get(0..6) {
        Some([0, 0, 0x5e, 0, 1, vrid]) => {
            vmac_filter & 0x100 != 0 && u32::from(*vrid) == vmac_filter & 0xff
        }
        _ => true,
    }
}

/// Shared handle (the forwarding loop and the MCU's register bus both hold one).
pub type FpgaHandle = Rc<RefCell<Fpga>>;

impl Fpga {
    /// A pipeline with empty tables and storage for `geometry` (allocated once, for the
    /// life of the process, as block RAM is).
    pub fn new(geometry: Geometry) -> FpgaHandle {
        Fpga::with_engine(geometry, Engine::Model).expect("the model needs no thread")
    }

    /// A simulated FPGA whose data path is `engine` (see the module doc); fails only if
    /// the simulation thread cannot start.
    pub fn with_engine(geometry: Geometry, engine: Engine) -> std::io::Result<FpgaHandle> {
        let hdl = match engine {
            Engine::Model => None,
            Engine::Hdl => Some(HdlFpga::start()?),
        };
        let capacity = geometry.sets * geometry.ways;
        let leak_flows = vec![FlowEntry::default(); capacity].leak();
        let leak_sticky = vec![StickyEntry::default(); sticky_slots(capacity)].leak();
        let ring_active = vec![0u16; geometry.ring * SERVICE_SLOTS].leak();
        let ring_shadow = vec![0u16; geometry.ring * SERVICE_SLOTS].leak();
        Ok(Rc::new(RefCell::new(Fpga {
            hdl,
            pipeline: Pipeline::new(Storage {
                flows: leak_flows,
                flow_ways: geometry.ways,
                sticky: leak_sticky,
                sticky_ways: STICKY_WAYS,
                ring_active,
                ring_shadow,
            }),
            vmac_filter: 0,
        })))
    }

    /// The data path's engine.
    pub fn engine(&self) -> Engine {
        if self.hdl.is_some() {
            Engine::Hdl
        } else {
            Engine::Model
        }
    }

    /// The fast-path simulation's statistics, with [`Engine::Hdl`].
    pub fn hdl_stats(&self) -> Option<&HdlStats> {
        self.hdl.as_ref().map(HdlFpga::stats)
    }

    /// The pipeline (for inspection; with [`Engine::Hdl`] a mirror of the tables only).
    pub fn pipeline(&self) -> &Pipeline<'static> {
        &self.pipeline
    }

    /// The pipeline, to write (tests and benchmarks that preload tables).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline<'static> {
        &mut self.pipeline
    }

    /// The counters (the model's: with [`Engine::Hdl`] read them over the register bus).
    pub fn counters(&self) -> &Counters {
        self.pipeline.counters()
    }
}

/// The MCU's register bus to the simulated FPGA (what SPI is on the board).
pub struct FpgaBus {
    regs: RegisterFile<Target>,
    fpga: FpgaHandle,
    changes: ChangeRegisters,
    /// Register writes so far (each an SPI transaction on the board).
    pub writes: u64,
    /// Register reads so far.
    pub reads: u64,
    /// The MCU's bus when it reaches the FPGA some other way (control frames,
    /// [`crate::ctrl_link`]); the accesses are still counted here.
    via: Option<Box<dyn RegisterBus>>,
}

impl FpgaBus {
    /// A bus to `fpga`.
    pub fn new(fpga: FpgaHandle) -> Self {
        FpgaBus {
            regs: RegisterFile::new(Target(fpga.clone())),
            fpga,
            changes: ChangeRegisters::new(),
            writes: 0,
            reads: 0,
            via: None,
        }
    }

    /// The MCU's bus to `fpga` through `bus` (which reaches `fpga`'s registers itself).
    pub fn via(fpga: FpgaHandle, bus: Box<dyn RegisterBus>) -> Self {
        FpgaBus {
            via: Some(bus),
            ..FpgaBus::new(fpga)
        }
    }
}

impl RegisterBus for FpgaBus {
    fn write32(&mut self, addr: u16, value: u32) {
        self.writes += 1;
        if let Some(bus) = &mut self.via {
            return bus.write32(addr, value);
        }
        if addr == changelog::addr::VMAC_FILTER {
            self.fpga.borrow_mut().vmac_filter = value & 0x1ff;
            return;
        }
        if changelog::addr::contains(addr) {
            let pipeline = &mut self.fpga.borrow_mut().pipeline;
            self.changes.write32(pipeline, now_ms(), addr, value);
            return;
        }
        if let Some(hdl) = &self.fpga.borrow().hdl {
            hdl.write32(addr, value);
        }
        self.regs.write32(addr, value)
    }
    fn read32(&mut self, addr: u16) -> u32 {
        self.reads += 1;
        if let Some(bus) = &mut self.via {
            return bus.read32(addr);
        }
        if addr == changelog::addr::VMAC_FILTER {
            return self.fpga.borrow().vmac_filter;
        }
        if changelog::addr::contains(addr) {
            return self.changes.read32(&self.fpga.borrow().pipeline, addr);
        }
        if let Some(hdl) = &self.fpga.borrow().hdl {
            return hdl.read32(addr);
        }
        self.regs.read32(addr)
    }
}

/// The register file's view of the FPGA.
pub struct Target(FpgaHandle);

impl TableWriter for Target {
    fn write_settings(&mut self, s: &Settings) {
        self.0.borrow_mut().pipeline.write_settings(s)
    }
    fn write_service(&mut self, i: u8, e: &ServiceEntry) {
        self.0.borrow_mut().pipeline.write_service(i, e)
    }
    fn write_backend(&mut self, i: u16, e: &BackendEntry) {
        self.0.borrow_mut().pipeline.write_backend(i, e)
    }
    fn write_member(&mut self, s: u8, p: u8, b: u16) {
        self.0.borrow_mut().pipeline.write_member(s, p, b)
    }
    fn write_ring(&mut self, s: u8, o: u32, e: &[u16]) {
        self.0.borrow_mut().pipeline.write_ring(s, o, e)
    }
    fn commit(&mut self) {
        self.0.borrow_mut().pipeline.commit()
    }
}

impl CounterSource for Target {
    fn counter(&self, index: u32) -> u64 {
        self.0.borrow().pipeline.counter(index)
    }
}

/// Milliseconds on the simulated board's clock.
pub fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// Forwards frames forever: network → pipeline → network or MCU; MCU → pipeline → network.
/// Ages the flow table in the background, as the hardware's aging scan does.
pub async fn forward(fpga: FpgaHandle, mcu: End, network: NetworkPort) {
    let hdl_output = fpga
        .borrow_mut()
        .hdl
        .as_mut()
        .and_then(HdlFpga::take_output);
    match hdl_output {
        Some(output) => forward_hdl(fpga, mcu, network, output).await,
        None => forward_model(fpga, mcu, network).await,
    }
}

/// [`forward`] through the fast-path simulation: frames in as they arrive (the MAC filter
/// first), frames out as the simulation transmits them. Aging is the fast path's own.
async fn forward_hdl(
    fpga: FpgaHandle,
    mcu: End,
    mut network: NetworkPort,
    mut output: UnboundedReceiver<(Port, Vec<u8>)>,
) {
    loop {
        match select3(network.recv(), mcu.recv(), output.recv()).await {
            Either3::First(frame) => {
                let f = fpga.borrow();
                if mac_filter_passes(f.vmac_filter, &frame)
                    && let Some(hdl) = &f.hdl
                {
                    hdl.send(Port::Network, frame);
                }
            }
            Either3::Second(frame) => {
                if let Some(hdl) = &fpga.borrow().hdl {
                    hdl.send(Port::Mcu, frame);
                }
            }
            Either3::Third(Some((Port::Network, frame))) => network.send(&frame).await,
            Either3::Third(Some((Port::Mcu, frame))) => mcu.send(&frame),
            // The simulation stopped (it logged why): the port goes dark.
            Either3::Third(None) => std::future::pending::<()>().await,
        }
    }
}

/// [`forward`] through the reference model.
async fn forward_model(fpga: FpgaHandle, mcu: End, mut network: NetworkPort) {
    let mut out = vec![0u8; MAX_FRAME + OUT_HEADROOM];
    let budget = BACKEND_SLOTS * 4;
    let period = Duration::from_millis(50);
    let mut next_age = Instant::now() + period;
    loop {
        if Instant::now() >= next_age {
            fpga.borrow_mut().pipeline.age(now_ms(), budget);
            next_age += period;
        }
        match select3(network.recv(), mcu.recv(), Timer::at(next_age)).await {
            Either3::First(frame) => {
                if !mac_filter_passes(fpga.borrow().vmac_filter, &frame) {
                    continue;
                }
                let verdict =
                    fpga.borrow_mut()
                        .pipeline
                        .process(now_ms(), &frame, Port::Network, &mut out);
                match verdict.egress {
                    Some(Port::Network) => network.send(&out[..verdict.len]).await,
                    Some(Port::Mcu) => mcu.send(&out[..verdict.len]),
                    None => {}
                }
            }
            Either3::Second(frame) => {
                let verdict =
                    fpga.borrow_mut()
                        .pipeline
                        .process(now_ms(), &frame, Port::Mcu, &mut out);
                if verdict.egress == Some(Port::Network) {
                    network.send(&out[..verdict.len]).await;
                }
            }
            Either3::Third(()) => {}
        }
    }
}
