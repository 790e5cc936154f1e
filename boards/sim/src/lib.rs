//! The simulated board: the MCU firmware and the FPGA data path of one Fulcrum appliance
//! as a Linux process, running the same code as the hardware.
//!
//! ```text
//!   network (virtual switch or tap) ── port 1 ── FPGA (reference model pipeline)
//!                                                   │ port 2 (punt / MCU traffic)
//!                                                   │ register bus (the SPI register map)
//!                                     MCU: fulcrum-firmware on embassy-net
//!                                       health checks · management (TCP + serial pty)
//! ```
//!
//! Everything runs on one thread (a tokio `LocalSet`), like the single-core MCU: the
//! firmware's loops ([`fulcrum_firmware::net`]), the FPGA's forwarding loop
//! ([`fpga::forward`]) and, in virtual mode, the switch and virtual hosts ([`vnet`]).

pub mod ctrl_link;
pub mod fpga;
pub mod gateway;
pub mod hdl_fpga;
pub mod link;
pub mod network;
pub mod router;
pub mod scenario;
pub mod serial;
pub mod shim;
pub mod store;
pub mod tap_lab;
pub mod vnet;

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::Context as _;
use embassy_net::{Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use fulcrum_firmware::appliance::State;
use fulcrum_firmware::l7::L7Proxy;
#[cfg(not(feature = "filters"))]
use fulcrum_firmware::l7::NoFilters;
use fulcrum_firmware::l7::run::{self as l7_run, ProxyBuffers, ProxyContext};
use fulcrum_firmware::net::{
    self as fw, Learned, LinkBuffers, Management, Neighbors, ProbeBuffers, SharedScratch, Snoop,
    Wake,
};
use fulcrum_firmware::session::{Connection, Scratch};
use fulcrum_firmware::{Appliance, Buffers};
use fulcrum_mgmt::envelope::Key;
use fulcrum_model::config::Config;

use crate::fpga::{Engine, Fpga, FpgaBus, FpgaHandle, Geometry};
use crate::link::{LinkDriver, link};
use crate::network::NetworkPort;
use crate::store::FileStore;

/// The firmware's appliance type on the simulated board.
pub type SimAppliance = Appliance<'static, FpgaBus, FileStore>;

/// The L7 proxy's filters: the appliance's WebAssembly filters (feature `filters`).
#[cfg(feature = "filters")]
pub type SimFilters = l7_run::AppFilters<'static, 'static, FpgaBus, FileStore>;
/// The L7 proxy's filters: none (built without `filters`).
#[cfg(not(feature = "filters"))]
pub type SimFilters = NoFilters;

/// Management TCP port of the firmware.
pub const MANAGEMENT_PORT: u16 = 7070;
/// Concurrent health probes of the simulated board (the NUCLEO runs 8).
pub const PROBES: usize = 16;
/// Concurrent management connections (each a listening socket on the management port).
pub const MANAGEMENT_CONNECTIONS: usize = 4;
/// L7 proxy workers (each serves one client connection at a time, with a backend socket),
/// spread over the config's L7 services. A client beyond them waits: its SYN is dropped
/// and retried (see `fulcrum_firmware::l7::is_refusal`).
pub const L7_WORKERS: usize = 64;
/// Backend connections the L7 workers share, kept alive between requests. A request
/// finds an idle connection to its backend only if the pool holds enough per backend:
/// with 32 client connections over 3 backends, 32 churned (0.67 new backend connections
/// per request in docs/PERFORMANCE.md's run), 96 opened none.
pub const L7_POOL: usize = 96;

/// Sockets of the MCU's network stack: probes, management, two per L7 worker, the L7
/// pool, and 5 for HA and the rest.
const SOCKETS: usize = PROBES + MANAGEMENT_CONNECTIONS + 2 * L7_WORKERS + L7_POOL + 5;
/// Flow-sync peers the simulated board supports (an HA group of up to 4).
pub const HA_PEERS: usize = 3;

/// The HA state of the simulated board.
pub type SimHa = fulcrum_firmware::ha::Ha<HA_PEERS>;

/// How to start a simulated board.
pub struct BoardOptions {
    /// Where the saved config lives (the board's flash sector).
    pub state_dir: PathBuf,
    /// A config to apply at boot (as if pushed by the host) when none is saved, or always
    /// with `force_config`.
    pub config: Option<Config>,
    /// Apply `config` even when a saved one exists.
    pub force_config: bool,
    /// The management pre-shared key; without one the TCP service is off.
    pub key: Option<Key>,
    /// Open a pseudo-terminal for the serial console.
    pub serial: bool,
    /// Flow-table and ring geometry of the simulated FPGA.
    pub geometry: Geometry,
}

/// A running simulated board.
pub struct Board {
    /// The firmware's control plane.
    pub app: Rc<RefCell<SimAppliance>>,
    /// The L7 proxy (its services and counters).
    pub proxy: &'static RefCell<L7Proxy>,
    /// The FPGA.
    pub fpga: FpgaHandle,
    /// The MCU's network stack.
    pub stack: Stack<'static>,
    /// The appliance's address.
    pub address: Ipv4Addr,
    /// The serial console's path, if opened.
    pub serial_path: Option<PathBuf>,
    /// VRRP and flow sync, with `[appliance.ha]` (and a management key).
    pub ha: Option<&'static RefCell<SimHa>>,
    mcu_tasks: McuHandle,
}

/// The MCU's tasks, to stop them.
#[derive(Clone)]
pub struct McuHandle(Rc<Vec<tokio::task::AbortHandle>>);

impl McuHandle {
    /// Stops the MCU (its network stack, health checks, management), as a crashed or
    /// unplugged MCU would; the FPGA keeps forwarding with the tables it holds.
    pub fn halt_mcu(&self) {
        for t in self.0.iter() {
            t.abort();
        }
    }
}

impl Board {
    /// See [`McuHandle::halt_mcu`].
    pub fn halt_mcu(&self) {
        self.mcu_tasks.halt_mcu()
    }

    /// A handle that can halt the MCU later.
    pub fn mcu_handle(&self) -> McuHandle {
        self.mcu_tasks.clone()
    }
}

fn leak<T>(value: T) -> &'static mut T {
    Box::leak(Box::new(value))
}

/// A random 64-bit number from the OS.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).unwrap_or_else(|_| {
        // No OS randomness: fall back to the clock (sessions are still unique per run).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.as_nanos() as u64).to_le_bytes();
    });
    u64::from_le_bytes(b)
}

/// How the MCU reaches the FPGA's registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum McuLink {
    /// A direct register bus (what SPI is on a board wired for it).
    #[default]
    Direct,
    /// Control frames on the MCU's Ethernet link (the Colorlight pairing), losing frames
    /// as `faults` says.
    CtrlFrames(ctrl_link::CtrlFaults),
}

/// Boots the board with its network port on `network`; spawns its tasks on the current
/// `LocalSet` and returns once the firmware has booted. The FPGA runs the reference model.
pub fn start(options: BoardOptions, network: NetworkPort) -> anyhow::Result<Board> {
    start_with(options, network, McuLink::Direct).map(|(board, _)| board)
}

/// [`start`], with the MCU reaching the FPGA over `mcu_link`; also returns the control
/// frames' port and bridge with [`McuLink::CtrlFrames`].
pub fn start_with(
    options: BoardOptions,
    network: NetworkPort,
    mcu_link: McuLink,
) -> anyhow::Result<(Board, Option<CtrlHandle>)> {
    start_full(options, network, mcu_link, Engine::Model)
}

/// [`start_with`], with the FPGA's data path run by `engine`. With [`Engine::Hdl`], HA
/// is refused: the fast path has no flow change log yet.
pub fn start_full(
    options: BoardOptions,
    network: NetworkPort,
    mcu_link: McuLink,
    engine: Engine,
) -> anyhow::Result<(Board, Option<CtrlHandle>)> {
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("creating state directory {}", options.state_dir.display()))?;
    if engine == Engine::Hdl
        && let Some(config) = &options.config
        && config.appliance.ha.is_some()
    {
        anyhow::bail!(
            "[appliance.ha] cannot run on the FPGA fast-path simulation (--engine hdl): the \
             fast path has no flow change log for flow sync yet; use --engine model"
        );
    }
    if engine == Engine::Hdl && mcu_link != McuLink::Direct {
        anyhow::bail!(
            "control frames reach the model's register file only; with --engine hdl the MCU \
             uses the fast path's register bus directly"
        );
    }
    let fpga = Fpga::with_engine(options.geometry, engine)
        .context("starting the FPGA fast-path simulation thread")?;
    let bufs = Buffers {
        old_ring: vec![0u16; options.geometry.ring].leak(),
        new_ring: vec![0u16; options.geometry.ring].leak(),
        record: vec![0u8; 64 * 1024].leak(),
    };
    let store = FileStore::new(options.state_dir.join("config.bin"));
    let now = fw::now_ms();
    let state = leak(State::new());
    // The MCU's Ethernet: a link to the FPGA's port 2 (with control frames, also the
    // register bus; the MCU's MAC is set once the config is known).
    let (mcu_end, fpga_mcu_end) = link();
    let ctrl = match mcu_link {
        McuLink::Direct => None,
        McuLink::CtrlFrames(faults) => Some(ctrl_link::CtrlLink::new(
            fpga.clone(),
            mcu_end.clone(),
            [0x02, 0, 0, 0, 0, 0],
            faults,
        )),
    };
    let bus = match &ctrl {
        None => FpgaBus::new(fpga.clone()),
        Some(c) => FpgaBus::via(fpga.clone(), Box::new(c.bus())),
    };
    let mut app = Appliance::new(bus, store, bufs, state, now);
    let staging = leak(Config::empty());
    let restored = app.boot(now, staging);
    if let Some(config) = options.config.clone()
        && (options.force_config || !restored)
    {
        app.apply(now, &config, false).map_err(|e| {
            anyhow::anyhow!(
                "the config was rejected: {}{}",
                e.message,
                e.details
                    .iter()
                    .map(|d| format!("\n  {d}"))
                    .collect::<String>()
            )
        })?;
    }
    let Some(config) = app.config().cloned() else {
        anyhow::bail!(
            "no configuration: none saved in {} and none given (pass --config FILE)",
            options.state_dir.display()
        );
    };
    let address = config.appliance.address;
    let mac = config.appliance.mac.0;
    let app = Rc::new(RefCell::new(app));

    // The MCU's Ethernet, snooped for ARP.
    let learned: &'static Learned = leak(RefCell::new(Neighbors::new()));
    learned.borrow_mut().set_own(address, mac);
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(address, config.appliance.prefix),
        gateway: config.appliance.gateway,
        dns_servers: heapless::Vec::new(),
    });
    let resources = leak(StackResources::<SOCKETS>::new());
    let mut mcu_tasks = Vec::new();
    fn spawn_stack<D: embassy_net_driver::Driver + 'static>(
        driver: D,
        config: embassy_net::Config,
        resources: &'static mut StackResources<SOCKETS>,
        tasks: &mut Vec<tokio::task::AbortHandle>,
    ) -> Stack<'static> {
        let (stack, mut runner) = embassy_net::new(driver, config, resources, random_u64());
        tasks.push(tokio::task::spawn_local(async move { runner.run().await }).abort_handle());
        stack
    }
    let (stack, ctrl) = match ctrl {
        None => {
            let driver = Snoop::new(LinkDriver::new(mcu_end, mac), learned);
            let stack = spawn_stack(driver, net_config, resources, &mut mcu_tasks);
            (stack, None)
        }
        Some(c) => {
            c.set_mac(mac);
            let handle = CtrlHandle {
                port: c.port,
                bridge: c.bridge.clone(),
            };
            let driver = Snoop::new(c.device(), learned);
            let stack = spawn_stack(driver, net_config, resources, &mut mcu_tasks);
            (stack, Some(handle))
        }
    };
    tokio::task::spawn_local(fpga::forward(fpga.clone(), fpga_mcu_end, network));

    let wake: &'static Wake = leak(Wake::new());
    let app_static: &'static RefCell<SimAppliance> = leak_rc(app.clone());
    mcu_tasks.push(
        tokio::task::spawn_local(async move {
            let bufs = leak(std::array::from_fn::<_, PROBES, _>(|_| ProbeBuffers::new()));
            fw::health_loop(stack, app_static, wake, bufs).await
        })
        .abort_handle(),
    );
    mcu_tasks.push(
        tokio::task::spawn_local(async move {
            // Unresolved backends every 200 ms, all of them every 10 s.
            for round in 0u32.. {
                fw::tend_neighbors(learned, app_static, round, 50);
                embassy_time::Timer::after_millis(200).await;
            }
        })
        .abort_handle(),
    );
    let scratch: &'static SharedScratch = leak(SharedScratch::new(Scratch::new()));
    let ctx: &'static Management<'static, 'static, FpgaBus, FileStore> = leak(Management {
        app: app_static,
        wake,
        scratch,
    });
    if let Some(key) = options.key.clone() {
        for _ in 0..MANAGEMENT_CONNECTIONS {
            let key = key.clone();
            mcu_tasks.push(
                tokio::task::spawn_local(async move {
                    let conn = leak(Connection::new(None, true));
                    let bufs = leak(LinkBuffers::new());
                    fw::management_tcp(
                        stack,
                        ctx,
                        key,
                        MANAGEMENT_PORT,
                        conn,
                        bufs,
                        &mut random_u64,
                    )
                    .await
                })
                .abort_handle(),
            );
        }
    } else {
        log::warn!("no management key: the TCP management service is off (serial only)");
    }
    // The L7 proxy: workers spread over the L7 services of the running config.
    let proxy: &'static RefCell<L7Proxy> = leak(RefCell::new(L7Proxy::new()));
    // Backend connections the workers share (kept alive between requests).
    let pool: &'static l7_run::BackendPool<'static> = Vec::from_iter((0..L7_POOL).map(|_| {
        let (rx, tx) = (vec![0u8; l7_run::BUF].leak(), vec![0u8; l7_run::BUF].leak());
        RefCell::new(l7_run::PoolSlot::new(embassy_net::tcp::TcpSocket::new(
            stack, rx, tx,
        )))
    }))
    .leak();
    app_static.borrow_mut().set_l7_counters(proxy);
    let l7: &'static ProxyContext<'static, 'static, FpgaBus, FileStore, SimFilters> =
        leak(ProxyContext {
            app: app_static,
            proxy,
            #[cfg(feature = "filters")]
            filters: l7_run::AppFilters(app_static),
            #[cfg(not(feature = "filters"))]
            filters: NoFilters,
            pool,
        });
    for worker in 0..L7_WORKERS {
        mcu_tasks.push(
            tokio::task::spawn_local(async move {
                let bufs = leak(ProxyBuffers::<{ l7_run::BUF }>::new());
                l7_run::worker(stack, l7, worker, bufs).await
            })
            .abort_handle(),
        );
    }
    // High availability: VRRP and flow sync (authenticated with the management key).
    let ha: Option<&'static RefCell<SimHa>> = match (&config.appliance.ha, &options.key) {
        (None, _) => None,
        (Some(_), None) => {
            anyhow::bail!(
                "[appliance.ha] needs a management key (flow sync is authenticated with it)"
            )
        }
        (Some(_), Some(key)) => {
            let h = SimHa::new(&config, key, random_u64(), random_u64())
                .map_err(|e| anyhow::anyhow!("HA cannot start: {e:?}"))?;
            Some(leak(RefCell::new(h)))
        }
    };
    if let Some(ha) = ha {
        app.borrow_mut().set_ha(ha);
        mcu_tasks.push(
            tokio::task::spawn_local(async move {
                let bufs = leak(fw::HaBuffers::<{ 16 * 1024 }, { 16 * 1024 }, 10>::new());
                fw::ha_loop(stack, app_static, learned, ha, bufs).await
            })
            .abort_handle(),
        );
    }
    let serial_path = if options.serial {
        let mut pty = serial::Pty::open().context("opening the serial console pseudo-terminal")?;
        let path = pty.path().to_path_buf();
        let key = options.key.clone();
        mcu_tasks.push(
            tokio::task::spawn_local(async move {
                let conn = leak(Connection::new(None, false));
                let bufs = leak(LinkBuffers::new());
                fw::management_serial(&mut pty, ctx, key, conn, bufs, &mut random_u64).await
            })
            .abort_handle(),
        );
        Some(path)
    } else {
        None
    };
    Ok((
        Board {
            app,
            proxy,
            fpga,
            stack,
            address,
            serial_path,
            ha,
            mcu_tasks: McuHandle(Rc::new(mcu_tasks)),
        },
        ctrl,
    ))
}

/// The control-frame link of a board started with [`McuLink::CtrlFrames`].
pub struct CtrlHandle {
    /// The MCU's port: the bus's counters (`core().stats`) and the stash's.
    pub port: &'static RefCell<ctrl_link::SimCtrlPort>,
    /// The FPGA's bridge: what it answered.
    pub bridge: Rc<RefCell<ctrl_link::Bridge>>,
}

/// The board's appliance lives for the whole process, as firmware statics do.
fn leak_rc<T>(rc: Rc<T>) -> &'static T {
    let ptr: &'static Rc<T> = Box::leak(Box::new(rc));
    ptr
}
