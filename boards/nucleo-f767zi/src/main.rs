//! Fulcrum's MCU firmware on the NUCLEO-F767ZI: a thin embassy runner around
//! `fulcrum-firmware`, the same shape as embassy's stm32f7 Ethernet example.
//!
//! What this file owns is only hardware: clocks, the Ethernet MAC and its PHY, the
//! register bus to the FPGA, the config sectors in flash ([`flash_store`]), the ST-LINK
//! serial port, the RNG and the watchdog ([`watchdog`]). The control plane, health checks
//! and the management protocol are `fulcrum_firmware::{Appliance, net}`.
//!
//! The register bus (see README.md, "Register bus"): by default control frames on the
//! Ethernet link to the FPGA's port 2 (`fulcrum_firmware::ctrl_bus`: the Colorlight
//! 5A-75B, the FPGA board of this repository, has no pins an SPI link could use); with
//! feature `spi-bus`, SPI1 to an FPGA board wired for the SPI slave of `hdl/`
//! (`fpga_bus`).
//!
//! Tasks: `net_task` drives embassy-net; `watchdog_task` pets the IWDG while the main
//! loops make progress; `health_task` schedules the health checks and 8 `probe_task`s run them;
//! `tcp_task` the management service on TCP 7070 (only with a key built in from
//! `FULCRUM_KEY`); `serial_task` the management protocol on the ST-LINK serial port; and
//! `housekeeping_task` hands learned MACs to the appliance, follows address changes,
//! bumps the watchdog heartbeat and logs the stack high-water mark. They share the
//! appliance (`RefCell`, one executor) and one request scratch, as `fulcrum_firmware::net`
//! expects.

#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod flash_store;
#[cfg(feature = "spi-bus")]
mod fpga_bus;
#[cfg(feature = "filters")]
mod heap;
mod stack;
mod watchdog;

use core::cell::RefCell;
use core::net::Ipv4Addr;

use defmt::{info, unwrap, warn};
use embassy_executor::Spawner;
use embassy_net::{ConfigV4, Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_stm32::eth::{self, Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::flash::Flash;
#[cfg(feature = "spi-bus")]
use embassy_stm32::gpio::{Level, Output, Speed};
use embassy_stm32::peripherals::{ETH, ETH_SMA};
use embassy_stm32::rng::{self, Rng};
#[cfg(feature = "spi-bus")]
use embassy_stm32::spi::{self, Spi};
use embassy_stm32::time::Hertz;
use embassy_stm32::usart::{self, BufferedUart};
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_stm32::{bind_interrupts, peripherals};
use embassy_sync::mutex::Mutex;
use embassy_time::Timer;
use fulcrum_firmware::appliance::State;
#[cfg(not(feature = "spi-bus"))]
use fulcrum_firmware::ctrl_bus::{self, CtrlBuffers, CtrlCore, CtrlPort, CtrlRegisterBus};
use fulcrum_firmware::l7::run::{ProxyBuffers, ProxyContext};
use fulcrum_firmware::l7::{self, L7Proxy};
use fulcrum_firmware::net::{self, LinkBuffers, Management, ProbeBuffers, SharedScratch, Wake};
use fulcrum_firmware::persist::{self, ConfigStore, HEADER};
use fulcrum_firmware::session::{Connection, Scratch};
use fulcrum_firmware::{Appliance, Buffers};
use fulcrum_mgmt::MAX_ENVELOPE;
use fulcrum_mgmt::envelope::Key;
use fulcrum_model::config::MAX_RING_SIZE;
use static_cell::{ConstStaticCell, StaticCell};
use {defmt_rtt as _, panic_probe as _};

use crate::flash_store::FlashConfigStore;
#[cfg(feature = "spi-bus")]
use crate::fpga_bus::SpiRegisterBus;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<peripherals::RNG>;
    USART3 => usart::BufferedInterruptHandler<peripherals::USART3>;
});

/// TCP port of the management service.
const MANAGEMENT_PORT: u16 = 7070;
/// Health checks run at once (one TCP socket each).
const PROBES: usize = 8;
/// L7 proxy workers (each a client and a backend socket); one in the `filters` image,
/// whose heap takes the RAM of the second.
#[cfg(not(feature = "filters"))]
const L7_WORKERS: usize = 2;
#[cfg(feature = "filters")]
const L7_WORKERS: usize = 1;
/// L7 services the board proxies (the schema allows more; RAM does not).
const L7_SERVICES: usize = 1;
/// Each L7 worker's buffers (socket buffers, request, response, heads): the largest head.
const L7_BUF: usize = 1024;
/// Sockets: the probes, the management connection and the L7 workers.
const SOCKETS: usize = PROBES + 1 + 2 * L7_WORKERS + HA_SOCKETS;
/// Flow-sync peers of the `ha` image (a pair of appliances).
#[cfg(feature = "ha")]
const HA_PEERS: usize = 1;
const HA_SOCKETS: usize = if cfg!(feature = "ha") { 1 } else { 0 };
/// Address (and prefix length) without a saved config.
const DEFAULT_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
const DEFAULT_PREFIX: u8 = 24;
/// Locally administered, unicast: used when no config names the appliance's MAC.
const DEFAULT_MAC: [u8; 6] = [0x02, 0x46, 0x4c, 0x43, 0x52, 0x4d];
/// The pre-shared management key, built in from the environment (never a default).
const KEY: Option<&str> = option_env!("FULCRUM_KEY");
/// A record holds at most one config as the management protocol carries it.
const RECORD_BYTES: usize = HEADER + MAX_ENVELOPE;

type Eth = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;
/// Frames kept for embassy-net while the register bus waits for the FPGA's answer (2 in
/// the `ha` and `filters` images, whose RAM is short: see README.md, "Stack").
#[cfg(not(any(feature = "spi-bus", feature = "ha", feature = "filters")))]
const CTRL_STASH: usize = 4;
#[cfg(all(not(feature = "spi-bus"), any(feature = "ha", feature = "filters")))]
const CTRL_STASH: usize = 2;
#[cfg(not(feature = "spi-bus"))]
type Port = CtrlPort<'static, Eth, CTRL_STASH>;
#[cfg(not(feature = "spi-bus"))]
type Device = net::Snoop<'static, ctrl_bus::CtrlDevice<'static, Eth, CTRL_STASH>>;
#[cfg(not(feature = "spi-bus"))]
type Bus = CtrlRegisterBus<'static, Eth, CTRL_STASH>;
#[cfg(feature = "spi-bus")]
type Device = net::Snoop<'static, Eth>;
#[cfg(feature = "spi-bus")]
type Bus = SpiRegisterBus<'static>;
type Store = FlashConfigStore<'static>;
type App = Appliance<'static, Bus, Store>;
#[cfg(feature = "ha")]
type BoardHa = fulcrum_firmware::ha::Ha<HA_PEERS>;

/// Largest Maglev ring this board builds: the FPGA's block-RAM ring (4093 entries, see
/// `fulcrum_model::maglev`). The config schema allows up to 65537 (`MAX_RING_SIZE`, also
/// the default), but two scratch rings of that size (2 × 128 KiB) do not fit the F767's
/// 512 KiB next to the appliance; a config with a larger `maglev_ring_size` is refused
/// by the appliance (`CompileError::ScratchTooSmall`) and the tables stay as they were.
const RING_SCRATCH: usize = 4093;
const _: () = assert!(RING_SCRATCH <= MAX_RING_SIZE as usize);

// Everything big lives in statics, so `llvm-size` accounts for it.
static RING_OLD: ConstStaticCell<[u16; RING_SCRATCH]> = ConstStaticCell::new([0; RING_SCRATCH]);
static RING_NEW: ConstStaticCell<[u16; RING_SCRATCH]> = ConstStaticCell::new([0; RING_SCRATCH]);
static RECORD: ConstStaticCell<[u8; RECORD_BYTES]> = ConstStaticCell::new([0; RECORD_BYTES]);
static APP: StaticCell<RefCell<App>> = StaticCell::new();
#[cfg(not(feature = "spi-bus"))]
static CTRL_BUFS: ConstStaticCell<CtrlBuffers<CTRL_STASH>> =
    ConstStaticCell::new(CtrlBuffers::new());
#[cfg(not(feature = "spi-bus"))]
static PORT: StaticCell<RefCell<Port>> = StaticCell::new();
/// The control plane's tables, built at compile time: never on the stack.
static STATE: ConstStaticCell<State> = ConstStaticCell::new(State::new());
static PACKETS: ConstStaticCell<PacketQueue<4, 4>> = ConstStaticCell::new(PacketQueue::new());
static RESOURCES: ConstStaticCell<StackResources<SOCKETS>> =
    ConstStaticCell::new(StackResources::new());
static PROBE_BUFS: ConstStaticCell<[ProbeBuffers; PROBES]> =
    ConstStaticCell::new([const { ProbeBuffers::new() }; PROBES]);
static TCP_BUFS: ConstStaticCell<LinkBuffers> = ConstStaticCell::new(LinkBuffers::new());
static SERIAL_BUFS: ConstStaticCell<LinkBuffers> = ConstStaticCell::new(LinkBuffers::new());
/// The management connections (20 KiB each): built at compile time, never on the stack;
/// all zeros (no key, no authentication), so in .bss, not flash: `net::management_tcp`
/// and `net::management_serial` reset them for each peer with their own settings.
static TCP_CONN: ConstStaticCell<Connection> = ConstStaticCell::new(Connection::new(None, false));
static SERIAL_CONN: ConstStaticCell<Connection> =
    ConstStaticCell::new(Connection::new(None, false));
/// Probes from the health scheduler to the probe workers.
static PROBE_QUEUE: ConstStaticCell<net::ProbeQueue> = ConstStaticCell::new(net::ProbeQueue::new());
static SCRATCH: ConstStaticCell<SharedScratch> = ConstStaticCell::new(Mutex::new(Scratch::new()));
static UART_TX: ConstStaticCell<[u8; 1024]> = ConstStaticCell::new([0; 1024]);
static UART_RX: ConstStaticCell<[u8; 2048]> = ConstStaticCell::new([0; 2048]);
static LEARNED: StaticCell<net::Learned> = StaticCell::new();
static L7_BUFS: ConstStaticCell<[ProxyBuffers<L7_BUF>; L7_WORKERS]> =
    ConstStaticCell::new([const { ProxyBuffers::new() }; L7_WORKERS]);
static PROXY: ConstStaticCell<RefCell<L7Proxy<L7_SERVICES>>> =
    ConstStaticCell::new(RefCell::new(L7Proxy::new()));
static L7_CONTEXT: StaticCell<L7Context> = StaticCell::new();
static WAKE: StaticCell<Wake> = StaticCell::new();
/// The HA state (its flow-sync links are tens of KiB): built at compile time and started
/// in place, never on the stack.
#[cfg(feature = "ha")]
static HA: ConstStaticCell<RefCell<BoardHa>> = ConstStaticCell::new(RefCell::new(BoardHa::IDLE));
/// Sync socket buffers and staged messages of the HA loop: smaller than the simulated
/// board's (RAM); a snapshot's window of 8 goes out over a few rounds.
#[cfg(feature = "ha")]
type BoardHaBuffers = net::HaBuffers<4096, 4096, 2>;
#[cfg(feature = "ha")]
static HA_BUFS: ConstStaticCell<BoardHaBuffers> = ConstStaticCell::new(BoardHaBuffers::new());

/// 216 MHz from the ST-LINK's 8 MHz clock (HSE bypass): PLL 8 / 4 × 216 / 2; PLLQ gives
/// the 48 MHz the RNG needs. APB1 54 MHz (USART3), APB2 108 MHz (SPI1).
fn clocks() -> embassy_stm32::Config {
    use embassy_stm32::rcc::*;
    let mut config = embassy_stm32::Config::default();
    config.rcc.hse = Some(Hse {
        freq: Hertz(8_000_000),
        mode: HseMode::Bypass,
    });
    config.rcc.pll_src = PllSource::HSE;
    config.rcc.pll = Some(Pll {
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL216,
        divp: Some(PllPDiv::DIV2),
        divq: Some(PllQDiv::DIV9),
        divr: None,
    });
    config.rcc.ahb_pre = AHBPrescaler::DIV1;
    config.rcc.apb1_pre = APBPrescaler::DIV4;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.sys = Sysclk::PLL1_P;
    config
}

/// The MCU's interface: address, prefix and router from the config.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Interface {
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
}

impl Interface {
    fn of(app: &App) -> Interface {
        match app.config() {
            Some(c) => Interface {
                address: c.appliance.address,
                prefix: c.appliance.prefix,
                gateway: c.appliance.gateway,
            },
            None => Interface {
                address: DEFAULT_ADDRESS,
                prefix: DEFAULT_PREFIX,
                gateway: None,
            },
        }
    }

    fn static_v4(self) -> StaticConfigV4 {
        StaticConfigV4 {
            address: Ipv4Cidr::new(self.address, self.prefix),
            gateway: self.gateway,
            dns_servers: Default::default(),
        }
    }
}

type RngCell = RefCell<Rng<'static, peripherals::RNG>>;
type Context = Management<'static, 'static, Bus, Store>;
/// The filters the L7 proxy runs: the appliance's WebAssembly filters in the `filters`
/// image, none otherwise.
#[cfg(feature = "filters")]
type L7Filters = l7::run::AppFilters<'static, 'static, Bus, Store>;
#[cfg(not(feature = "filters"))]
type L7Filters = l7::NoFilters;
type L7Context = ProxyContext<'static, 'static, Bus, Store, L7Filters, L7_SERVICES>;

static RNG_CELL: StaticCell<RngCell> = StaticCell::new();
static CONTEXT: StaticCell<Context> = StaticCell::new();

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // Everything is set up in a plain function and runs in tasks of its own: a task's
    // stack frame is paid on every poll, so nothing big may live in an async body.
    setup(spawner);
}

/// Brings up the hardware, boots the appliance and spawns the tasks.
#[inline(never)]
fn setup(spawner: Spawner) {
    #[cfg(feature = "filters")]
    heap::init();
    let p = embassy_stm32::init(clocks());
    if let Some(mut core) = cortex_m::Peripherals::take() {
        // Instruction cache only: the data cache would need cache maintenance around the
        // Ethernet DMA buffers.
        core.SCB.enable_icache();
    }
    info!(
        "Fulcrum on NUCLEO-F767ZI, firmware {}",
        fulcrum_firmware::appliance::VERSION
    );

    let rng: &'static RngCell = RNG_CELL.init(RefCell::new(Rng::new(p.RNG, Irqs)));

    // The network identity comes from the saved config, if any: the MAC is needed before
    // the Ethernet starts, which (with control frames) is before the appliance boots.
    let mut store = FlashConfigStore::new(Flash::new_blocking(p.FLASH));
    let scratch: &'static mut SharedScratch = SCRATCH.take();
    let record: &'static mut [u8; RECORD_BYTES] = RECORD.take();
    let mac = saved_mac(&mut store, record, scratch.get_mut().config_mut()).unwrap_or(DEFAULT_MAC);

    // Ethernet: RMII to the LAN8742A (pins as on the NUCLEO-144 board).
    let ethernet = Ethernet::new(
        PACKETS.take(),
        p.ETH,
        Irqs,
        p.PA1,  // REF_CLK
        p.PA7,  // CRS_DV
        p.PC4,  // RXD0
        p.PC5,  // RXD1
        p.PG13, // TXD0
        p.PB13, // TXD1
        p.PG11, // TX_EN
        mac,
        p.ETH_SMA,
        p.PA2, // MDIO
        p.PC1, // MDC
    );

    // The register bus to the FPGA: control frames on the Ethernet link to its port 2.
    #[cfg(not(feature = "spi-bus"))]
    let (bus, device) = {
        let first_seq = rng.borrow_mut().next_u32() as u16;
        let core = CtrlCore::new(
            ctrl_bus::FPGA_MAC,
            mac,
            first_seq,
            ctrl_bus::Timing::DEFAULT,
        );
        let (port, rx, tx) = CtrlPort::new(ethernet, core, CTRL_BUFS.take());
        let port: &'static RefCell<Port> = PORT.init(RefCell::new(port));
        // A long table write is progress for the watchdog.
        port.borrow_mut().set_progress(watchdog::bus_progress);
        let mut bus = CtrlRegisterBus::new(port);
        wait_for_fpga(port, &mut bus);
        (bus, ctrl_bus::CtrlDevice::new(port, rx, tx))
    };
    // The register bus to the FPGA: SPI1 (PA5 SCK, PA6 MISO, PB5 MOSI), CS on PD14.
    #[cfg(feature = "spi-bus")]
    let (bus, device) = {
        let mut spi_config = spi::Config::default();
        spi_config.mode = spi::MODE_0;
        spi_config.frequency = Hertz(fpga_bus::SPI_HZ);
        let spi = Spi::new_blocking(p.SPI1, p.PA5, p.PB5, p.PA6, spi_config);
        let cs = Output::new(p.PD14, Level::High, Speed::VeryHigh);
        (SpiRegisterBus::new(spi, cs), ethernet)
    };

    let app = boot(bus, store, record, scratch.get_mut().config_mut());
    let interface = Interface::of(&app.borrow());
    info!(
        "address {}/{}, MAC {:02x}",
        interface.address.octets(),
        interface.prefix,
        mac
    );
    let learned: &'static net::Learned = LEARNED.init(RefCell::new(net::Neighbors::new()));
    learned.borrow_mut().set_own(interface.address, mac);
    let device = net::Snoop::new(device, learned);
    let seed = rng.borrow_mut().next_u64();
    let stack = start_stack(spawner, device, interface, seed);

    let wdg = IndependentWatchdog::new(p.IWDG, watchdog::TIMEOUT_US);
    spawner.spawn(unwrap!(watchdog::watchdog_task(wdg)));

    // The ST-LINK virtual COM port: USART3, PD8 TX / PD9 RX, 115200 8N1.
    let mut uart_config = usart::Config::default();
    uart_config.baudrate = 115_200;
    let uart = unwrap!(BufferedUart::new(
        p.USART3,
        p.PD9,
        p.PD8,
        UART_TX.take(),
        UART_RX.take(),
        Irqs,
        uart_config,
    ));

    let key = built_in_key();
    let wake: &'static Wake = WAKE.init(Wake::new());
    let ctx: &'static Context = CONTEXT.init(Management { app, wake, scratch });

    // The health loop as a scheduler task and one task per probe (each probe's state in
    // its own task storage: `net::health_loop` would join them in one future, whose first
    // poll builds all of them on the stack).
    let queue: &'static net::ProbeQueue = PROBE_QUEUE.take();
    spawner.spawn(unwrap!(health_task(app, wake, queue)));
    for bufs in PROBE_BUFS.take().iter_mut() {
        spawner.spawn(unwrap!(probe_task(stack, app, wake, queue, bufs)));
    }
    let proxy: &'static RefCell<L7Proxy<L7_SERVICES>> = PROXY.take();
    app.borrow_mut().set_l7_counters(proxy);
    let l7: &'static L7Context = L7_CONTEXT.init(ProxyContext {
        app,
        proxy,
        #[cfg(feature = "filters")]
        filters: l7::run::AppFilters(app),
        #[cfg(not(feature = "filters"))]
        filters: l7::NoFilters,
        // No shared backend connections: their buffers do not fit beside the workers'.
        pool: &[],
    });
    for (worker, bufs) in L7_BUFS.take().iter_mut().enumerate() {
        spawner.spawn(unwrap!(l7_task(stack, l7, worker, bufs)));
    }
    match key.clone() {
        Some(key) => {
            let conn = TCP_CONN.take();
            spawner.spawn(unwrap!(tcp_task(stack, ctx, key, conn, rng)))
        }
        None => warn!(
            "built without a usable FULCRUM_KEY: TCP management on port {} is disabled (serial only)",
            MANAGEMENT_PORT
        ),
    }
    #[cfg(feature = "ha")]
    if let Some(ha) = start_ha(app, key.as_ref(), rng) {
        app.borrow_mut().set_ha(ha);
        spawner.spawn(unwrap!(ha_task(stack, app, learned, ha)));
    }
    let conn = SERIAL_CONN.take();
    spawner.spawn(unwrap!(serial_task(uart, ctx, key, conn, rng)));
    spawner.spawn(unwrap!(housekeeping_task(
        stack, app, learned, interface, mac
    )));
}

/// Starts embassy-net. A function of its own: building the stack's state (the interface
/// with its 256-entry neighbour cache) takes ~16 KiB of stack, which must not stay in
/// `setup`'s frame while the appliance boots below it.
#[inline(never)]
fn start_stack(
    spawner: Spawner,
    device: Device,
    interface: Interface,
    seed: u64,
) -> Stack<'static> {
    let (stack, runner) = embassy_net::new(
        device,
        embassy_net::Config::ipv4_static(interface.static_v4()),
        RESOURCES.take(),
        seed,
    );
    spawner.spawn(unwrap!(net_task(runner)));
    stack
}

/// Creates the appliance in its static and loads the saved config (programming the FPGA).
/// Two steps in two frames, one after the other: each needs a large stack frame of its own
/// (the appliance is built by value; booting decodes a config by value).
fn boot(
    bus: Bus,
    store: Store,
    record: &'static mut [u8; RECORD_BYTES],
    staging: &mut fulcrum_model::config::Config,
) -> &'static RefCell<App> {
    let app = create_appliance(bus, store, record);
    #[cfg(feature = "filters")]
    {
        let mut app = app.borrow_mut();
        app.filters_mut().set_limits(heap::FILTER_LIMITS);
        app.filters_mut().set_free_memory_probe(heap::free);
    }
    restore_config(app, staging);
    app
}

/// The MAC of the saved config (decoded into `staging`, which the boot then reuses).
#[inline(never)]
fn saved_mac(
    store: &mut Store,
    record: &mut [u8],
    staging: &mut fulcrum_model::config::Config,
) -> Option<[u8; 6]> {
    let len = store.load(record).ok()??;
    persist::decode_into(record.get(..len)?, staging).ok()?;
    Some(staging.appliance.mac.0)
}

/// Waits for the Ethernet link and for the FPGA to answer the register bus (up to 10 s
/// each; the FPGA loads its bitstream from flash in a fraction of that), so that the
/// saved config's tables reach it at boot. Without an answer the appliance boots anyway;
/// its writes fail with a logged `CtrlBusError` until the FPGA answers.
#[cfg(not(feature = "spi-bus"))]
#[inline(never)]
fn wait_for_fpga(port: &RefCell<Port>, bus: &mut Bus) {
    use embassy_net::driver::{Driver as _, LinkState};
    use embassy_time::{Duration, Instant, block_for};
    let limit = Duration::from_secs(10);
    let start = Instant::now();
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    while port.borrow_mut().driver_mut().link_state(&mut cx) != LinkState::Up {
        if start.elapsed() > limit {
            warn!("Ethernet link still down after 10 s: the FPGA cannot be programmed yet");
            return;
        }
        block_for(Duration::from_millis(20));
    }
    let start = Instant::now();
    loop {
        match bus.probe() {
            Ok(()) => {
                info!(
                    "FPGA answers control frames after {} ms",
                    start.elapsed().as_millis()
                );
                return;
            }
            Err(e) if start.elapsed() > limit => {
                warn!("the FPGA does not answer control frames: {}", e);
                return;
            }
            Err(_) => block_for(Duration::from_millis(100)),
        }
    }
}

#[inline(never)]
fn create_appliance(
    bus: Bus,
    store: Store,
    record: &'static mut [u8; RECORD_BYTES],
) -> &'static RefCell<App> {
    let bufs = Buffers {
        old_ring: RING_OLD.take(),
        new_ring: RING_NEW.take(),
        record,
    };
    APP.init_with(|| {
        RefCell::new(Appliance::new(
            bus,
            store,
            bufs,
            STATE.take(),
            net::now_ms(),
        ))
    })
}

#[inline(never)]
fn restore_config(app: &RefCell<App>, staging: &mut fulcrum_model::config::Config) {
    app.borrow_mut().boot(net::now_ms(), staging);
}

/// VRRP and flow sync when the saved config has `[appliance.ha]` (flow sync is
/// authenticated with the management key, so it needs one).
#[cfg(feature = "ha")]
#[inline(never)]
fn start_ha(
    app: &RefCell<App>,
    key: Option<&Key>,
    rng: &RngCell,
) -> Option<&'static RefCell<BoardHa>> {
    let app = app.borrow();
    let config = app.config()?;
    config.appliance.ha.as_ref()?;
    let Some(key) = key else {
        warn!("[appliance.ha] needs FULCRUM_KEY (flow sync is authenticated): HA is off");
        return None;
    };
    let (epoch, session) = {
        let mut r = rng.borrow_mut();
        (r.next_u64(), r.next_u64())
    };
    let ha: &'static RefCell<BoardHa> = HA.take();
    match ha.borrow_mut().start(config, key, epoch, session) {
        Ok(()) => Some(ha),
        Err(e) => {
            warn!(
                "HA cannot start ({}): this image supports {} peer",
                defmt::Debug2Format(&e),
                HA_PEERS
            );
            None
        }
    }
}

#[cfg(feature = "ha")]
#[embassy_executor::task]
async fn ha_task(
    stack: Stack<'static>,
    app: &'static RefCell<App>,
    learned: &'static net::Learned,
    ha: &'static RefCell<BoardHa>,
) {
    net::ha_loop(stack, app, learned, ha, HA_BUFS.take()).await;
}

/// The management key from `FULCRUM_KEY` at build time; `None` (TCP disabled) without one.
fn built_in_key() -> Option<Key> {
    let text = KEY?;
    match Key::new(text.as_bytes()) {
        Some(key) => {
            if text.len() < 16 {
                warn!("FULCRUM_KEY is shorter than 16 bytes: use a long random key");
            }
            Some(key)
        }
        None => {
            warn!("FULCRUM_KEY is empty or longer than 64 bytes: not used");
            None
        }
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn health_task(
    app: &'static RefCell<App>,
    wake: &'static Wake,
    queue: &'static net::ProbeQueue,
) {
    net::health_scheduler(app, wake, queue).await;
}

#[embassy_executor::task(pool_size = PROBES)]
async fn probe_task(
    stack: Stack<'static>,
    app: &'static RefCell<App>,
    wake: &'static Wake,
    queue: &'static net::ProbeQueue,
    bufs: &'static mut ProbeBuffers,
) {
    net::probe_worker(stack, app, wake, queue, bufs).await;
}

#[embassy_executor::task(pool_size = L7_WORKERS)]
async fn l7_task(
    stack: Stack<'static>,
    ctx: &'static L7Context,
    worker: usize,
    bufs: &'static mut ProxyBuffers<L7_BUF>,
) {
    l7::run::worker(stack, ctx, worker, bufs).await;
}

#[embassy_executor::task]
async fn tcp_task(
    stack: Stack<'static>,
    ctx: &'static Context,
    key: Key,
    conn: &'static mut Connection,
    rng: &'static RngCell,
) {
    info!("management on TCP port {}", MANAGEMENT_PORT);
    net::management_tcp(
        stack,
        ctx,
        key,
        MANAGEMENT_PORT,
        conn,
        TCP_BUFS.take(),
        &mut || rng.borrow_mut().next_u64(),
    )
    .await;
}

#[embassy_executor::task]
async fn serial_task(
    mut uart: BufferedUart<'static>,
    ctx: &'static Context,
    key: Option<Key>,
    conn: &'static mut Connection,
    rng: &'static RngCell,
) {
    net::management_serial(&mut uart, ctx, key, conn, SERIAL_BUFS.take(), &mut || {
        rng.borrow_mut().next_u64()
    })
    .await;
}

/// Learned MACs to the appliance, address changes to the stack, the watchdog heartbeat,
/// link changes and the stack high-water mark to the log.
#[embassy_executor::task]
async fn housekeeping_task(
    stack: Stack<'static>,
    app: &'static RefCell<App>,
    learned: &'static net::Learned,
    mut current: Interface,
    mac: [u8; 6],
) {
    let mut link = false;
    let mut ticks = 0u32;
    loop {
        Timer::after_millis(250).await;
        watchdog::beat();
        // Learned MACs to the FPGA; ARP for unresolved backends, for all every 10 s.
        net::tend_neighbors(learned, app, ticks, 40);
        if stack.is_link_up() != link {
            link = !link;
            info!("Ethernet link {}", if link { "up" } else { "down" });
        }
        // A newly applied config may move the appliance; the MAC needs a reboot.
        let configured = Interface::of(&app.borrow());
        if configured != current {
            info!(
                "address changed to {}/{}",
                configured.address.octets(),
                configured.prefix
            );
            stack.set_config_v4(ConfigV4::Static(configured.static_v4()));
            learned.borrow_mut().set_own(configured.address, mac);
            current = configured;
        }
        ticks = ticks.wrapping_add(1);
        if ticks % 240 == 1 {
            let (used, total) = stack::usage();
            info!("stack high-water mark: {} of {} bytes", used, total);
        }
    }
}
