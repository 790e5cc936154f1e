//! The register map: how the MCU writes the tables of [`crate::tables`] into the FPGA.
//!
//! One definition for the HDL register block, the firmware's SPI driver and the model.
//! Registers are 32 bits wide at word addresses; multi-byte values are big-endian (network
//! order) so an address reads the same in a register dump as on the wire.
//!
//! | address | name | access | meaning |
//! |---|---|---|---|
//! | 0x000 | `ID` | r | `0x46554C43` ("FULC") |
//! | 0x001 | `VERSION` | r | register-map version, [`VERSION`] |
//! | 0x002 | `CONTROL` | w | bit 0: commit the shadow bank |
//! | 0x003 | `STATUS` | r | bit 0: a commit is pending (hardware: until the next frame boundary) |
//! | 0x010 | `MAC_HI` | rw | appliance MAC bytes 0–1 (bits 15:0) |
//! | 0x011 | `MAC_LO` | rw | appliance MAC bytes 2–5 |
//! | 0x012 | `ADDRESS` | rw | appliance IPv4 address |
//! | 0x013 | `TUNNEL_SRC` | rw | outer source address of tunnels |
//! | 0x014 | `SNAT_CFG` | rw | bits 19:16 pool size, bits 15:0 first port |
//! | 0x015 | `RING_SIZE` | rw | Maglev ring size (prime) |
//! | 0x016–0x019 | `T_SYN`, `T_EST`, `T_CLOSE`, `T_UDP` | rw | flow idle timeouts, ms |
//! | 0x020–0x029 | `HASH_KEY[0..10]` | rw | Toeplitz key, key bytes 4i..4i+3 in word i |
//! | 0x030–0x037 | `SNAT_POOL[0..8]` | rw | full-NAT source addresses |
//! | 0x040 | `TABLE_ADDR` | rw | bits 31:28 table ([`Table`]), bits 27:0 index |
//! | 0x041–0x045 | `TABLE_DATA[0..5]` | rw | the entry's words, encoded as below |
//! | 0x046 | `TABLE_WRITE` | w | writes DATA into the shadow entry at ADDR, then ADDR's index += 1 |
//! | 0x050 | `COUNTER_SELECT` | w | latches the 64-bit counter at this index ([`counter`]) |
//! | 0x051 | `COUNTER_HI` | r | bits 63:32 of the latched counter |
//! | 0x052 | `COUNTER_LO` | r | bits 31:0 of the latched counter |
//! | 0x060–0x077 | change log, replica window | | see [`crate::changelog`] (high availability) |
//!
//! Table indexes: service `s`; backend `b`; member `s << 5 | position`; ring
//! `s << 20 | offset`. Entry encodings ([`encode_service`], [`encode_backend`]):
//!
//! - service: w0 = `valid<<31 | sticky<<30 | mode<<27 | algorithm<<24 | protocol<<16 | member_count`,
//!   w1 = VIP, w2 = `port<<16 | gue_port`, w3 = persistence timeout (ms);
//! - backend: w0 = `state<<29 | generation<<16 | weight`, w1 = address,
//!   w2 = `port<<16 | mac[0..2]`, w3 = `mac[2..6]`, w4 = response time (µs);
//! - member and ring: w0 = backend-table index (`0xFFFF` = none).
//!
//! **Shadow and commit.** Settings and table writes land in the shadow bank only; the data
//! path reads the active bank. Writing `CONTROL.0` makes the active bank equal to the
//! shadow bank between two frames (the hardware swaps banks at a frame boundary and copies
//! back in the background; `STATUS.0` is set until both banks agree). So the data path
//! never sees a half-written service, backend list or ring, and the control plane can write
//! deltas against the shadow bank, which always holds what it last wrote.

use core::net::Ipv4Addr;

use crate::config::{Algorithm, Mode, Protocol};
use crate::tables::{BackendEntry, BackendState, ServiceEntry, Settings, TableWriter};

/// Value of the `ID` register.
pub const ID: u32 = 0x4655_4C43;
/// Register-map version.
pub const VERSION: u32 = 1;

/// Register addresses.
pub mod addr {
    /// Identification.
    pub const ID: u16 = 0x000;
    /// Register-map version.
    pub const VERSION: u16 = 0x001;
    /// Control: bit 0 commits.
    pub const CONTROL: u16 = 0x002;
    /// Status: bit 0 commit pending.
    pub const STATUS: u16 = 0x003;
    /// MAC bytes 0–1.
    pub const MAC_HI: u16 = 0x010;
    /// MAC bytes 2–5.
    pub const MAC_LO: u16 = 0x011;
    /// Own address.
    pub const ADDRESS: u16 = 0x012;
    /// Tunnel source.
    pub const TUNNEL_SRC: u16 = 0x013;
    /// Full-NAT pool size and first port.
    pub const SNAT_CFG: u16 = 0x014;
    /// Maglev ring size.
    pub const RING_SIZE: u16 = 0x015;
    /// TCP SYN timeout.
    pub const T_SYN: u16 = 0x016;
    /// TCP established timeout.
    pub const T_EST: u16 = 0x017;
    /// TCP closing timeout.
    pub const T_CLOSE: u16 = 0x018;
    /// UDP timeout.
    pub const T_UDP: u16 = 0x019;
    /// First of 10 hash-key words.
    pub const HASH_KEY: u16 = 0x020;
    /// First of 8 full-NAT pool addresses.
    pub const SNAT_POOL: u16 = 0x030;
    /// Table and index of the next entry write.
    pub const TABLE_ADDR: u16 = 0x040;
    /// First of 5 entry data words.
    pub const TABLE_DATA: u16 = 0x041;
    /// Entry write strobe.
    pub const TABLE_WRITE: u16 = 0x046;
    /// Counter to latch.
    pub const COUNTER_SELECT: u16 = 0x050;
    /// Latched counter, high word.
    pub const COUNTER_HI: u16 = 0x051;
    /// Latched counter, low word.
    pub const COUNTER_LO: u16 = 0x052;
}

/// The SPI transaction format of the register bus (the FPGA is the SPI slave, mode 0,
/// MSB first, chip select low for one whole transaction of [`spi::FRAME`] bytes):
///
/// | byte | write | read |
/// |---|---|---|
/// | 0 | [`spi::WRITE`] | [`spi::READ`] |
/// | 1–2 | register address, big-endian | register address, big-endian |
/// | 3–6 | value, big-endian | don't care on MOSI; MISO carries the value |
pub mod spi {
    /// Bytes of one transaction.
    pub const FRAME: usize = 7;
    /// Command byte of a write.
    pub const WRITE: u8 = 0x57;
    /// Command byte of a read.
    pub const READ: u8 = 0x52;

    /// The MOSI bytes of a write of `value` at `addr`.
    pub const fn write(addr: u16, value: u32) -> [u8; FRAME] {
        let a = addr.to_be_bytes();
        let v = value.to_be_bytes();
        [WRITE, a[0], a[1], v[0], v[1], v[2], v[3]]
    }

    /// The MOSI bytes of a read at `addr`.
    pub const fn read(addr: u16) -> [u8; FRAME] {
        let a = addr.to_be_bytes();
        [READ, a[0], a[1], 0, 0, 0, 0]
    }

    /// The value in the MISO bytes of a read.
    pub const fn read_value(miso: &[u8; FRAME]) -> u32 {
        u32::from_be_bytes([miso[3], miso[4], miso[5], miso[6]])
    }
}

/// Counter indexes for `COUNTER_SELECT`. A counter is latched whole when selected, so the
/// two reads that follow give one consistent 64-bit value.
pub mod counter {
    /// Frames received from the network.
    pub const RX_FRAMES: u32 = 0;
    /// Frames from the MCU.
    pub const FROM_MCU: u32 = 1;
    /// Flows evicted.
    pub const EVICTIONS: u32 = 2;
    /// Flows expired.
    pub const EXPIRATIONS: u32 = 3;
    /// Flows moved off a backend that went down.
    pub const MOVED_FLOWS: u32 = 4;
    /// Drops: `DROPS + DropReason::index()`.
    pub const DROPS: u32 = 0x20;
    /// Punts: `PUNTS + PuntReason::index()`.
    pub const PUNTS: u32 = 0x40;
    /// Service counters: `SERVICE + slot × 8 + field` (fields below).
    pub const SERVICE: u32 = 0x100;
    /// Service field: forward packets.
    pub const SERVICE_PACKETS: u32 = 0;
    /// Service field: forward bytes.
    pub const SERVICE_BYTES: u32 = 1;
    /// Service field: return packets.
    pub const SERVICE_RETURN_PACKETS: u32 = 2;
    /// Service field: return bytes.
    pub const SERVICE_RETURN_BYTES: u32 = 3;
    /// Service field: flows created.
    pub const SERVICE_NEW_FLOWS: u32 = 4;
    /// Backend counters: `BACKEND + slot × 4 + field` (fields below).
    pub const BACKEND: u32 = 0x1000;
    /// Backend field: packets.
    pub const BACKEND_PACKETS: u32 = 0;
    /// Backend field: bytes.
    pub const BACKEND_BYTES: u32 = 1;
    /// Backend field: flows ever assigned.
    pub const BACKEND_FLOWS: u32 = 2;
    /// Backend field: flows active now.
    pub const BACKEND_ACTIVE_FLOWS: u32 = 3;
}

/// Something whose counters can be read by index ([`counter`]): the model's pipeline, and
/// through [`RegisterFile`] the register map.
pub trait CounterSource {
    /// The counter at `index`; 0 for an index that names none.
    fn counter(&self, index: u32) -> u64;
}

/// The counter at `index` of `counters` and `active_flows` (the model's definition of the
/// counter index space).
pub fn counter_value(
    counters: &crate::counters::Counters,
    active_flows: &[u32; crate::tables::BACKEND_SLOTS],
    index: u32,
) -> u64 {
    use counter::*;
    let i = index as usize;
    match index {
        RX_FRAMES => counters.rx_frames,
        FROM_MCU => counters.from_mcu,
        EVICTIONS => counters.evictions,
        EXPIRATIONS => counters.expirations,
        MOVED_FLOWS => counters.moved_flows,
        DROPS..PUNTS => counters.drops.get(i - DROPS as usize).copied().unwrap_or(0),
        PUNTS..SERVICE => counters.punts.get(i - PUNTS as usize).copied().unwrap_or(0),
        SERVICE..BACKEND => {
            let rel = i - SERVICE as usize;
            let Some(s) = counters.services.get(rel / 8) else {
                return 0;
            };
            match (rel % 8) as u32 {
                SERVICE_PACKETS => s.packets,
                SERVICE_BYTES => s.bytes,
                SERVICE_RETURN_PACKETS => s.return_packets,
                SERVICE_RETURN_BYTES => s.return_bytes,
                SERVICE_NEW_FLOWS => s.new_flows,
                _ => 0,
            }
        }
        _ => {
            let rel = i.wrapping_sub(BACKEND as usize);
            let Some(b) = counters.backends.get(rel / 4) else {
                return 0;
            };
            match (rel % 4) as u32 {
                BACKEND_PACKETS => b.packets,
                BACKEND_BYTES => b.bytes,
                BACKEND_FLOWS => b.flows,
                _ => u64::from(active_flows[rel / 4]),
            }
        }
    }
}

/// Reads every counter of the data path through `bus` into `counters` and `active_flows`
/// (what the MCU does to answer a status request).
pub fn read_counters<B: RegisterBus>(
    bus: &mut B,
    counters: &mut crate::counters::Counters,
    active_flows: &mut [u32; crate::tables::BACKEND_SLOTS],
) {
    fn read(bus: &mut impl RegisterBus, index: u32) -> u64 {
        bus.write32(addr::COUNTER_SELECT, index);
        (u64::from(bus.read32(addr::COUNTER_HI)) << 32) | u64::from(bus.read32(addr::COUNTER_LO))
    }
    use counter::*;
    counters.rx_frames = read(bus, RX_FRAMES);
    counters.from_mcu = read(bus, FROM_MCU);
    counters.evictions = read(bus, EVICTIONS);
    counters.expirations = read(bus, EXPIRATIONS);
    counters.moved_flows = read(bus, MOVED_FLOWS);
    for (r, v) in counters.drops.iter_mut().enumerate() {
        *v = read(bus, DROPS + r as u32);
    }
    for (r, v) in counters.punts.iter_mut().enumerate() {
        *v = read(bus, PUNTS + r as u32);
    }
    for (s, c) in counters.services.iter_mut().enumerate() {
        let base = SERVICE + s as u32 * 8;
        c.packets = read(bus, base + SERVICE_PACKETS);
        c.bytes = read(bus, base + SERVICE_BYTES);
        c.return_packets = read(bus, base + SERVICE_RETURN_PACKETS);
        c.return_bytes = read(bus, base + SERVICE_RETURN_BYTES);
        c.new_flows = read(bus, base + SERVICE_NEW_FLOWS);
    }
    for (b, c) in counters.backends.iter_mut().enumerate() {
        let base = BACKEND + b as u32 * 4;
        c.packets = read(bus, base + BACKEND_PACKETS);
        c.bytes = read(bus, base + BACKEND_BYTES);
        c.flows = read(bus, base + BACKEND_FLOWS);
        active_flows[b] = read(bus, base + BACKEND_ACTIVE_FLOWS) as u32;
    }
}

/// Words of entry data.
pub const DATA_WORDS: usize = 5;

/// The tables reachable through `TABLE_ADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// Service table.
    Service = 1,
    /// Backend table.
    Backend = 2,
    /// Member lists.
    Member = 3,
    /// Maglev rings.
    Ring = 4,
}

impl Table {
    fn from_code(code: u32) -> Option<Table> {
        match code {
            1 => Some(Table::Service),
            2 => Some(Table::Backend),
            3 => Some(Table::Member),
            4 => Some(Table::Ring),
            _ => None,
        }
    }
}

/// The `TABLE_ADDR` value of `table`, `index`.
pub const fn table_addr(table: Table, index: u32) -> u32 {
    ((table as u32) << 28) | (index & 0x0FFF_FFFF)
}

/// Something 32-bit registers can be written to and read from: the FPGA over SPI, or the
/// model's [`RegisterFile`].
pub trait RegisterBus {
    /// Writes `value` at word address `addr`.
    fn write32(&mut self, addr: u16, value: u32);
    /// Reads word address `addr`.
    fn read32(&mut self, addr: u16) -> u32;
}

const fn mode_code(m: Mode) -> u32 {
    match m {
        Mode::Nat => 0,
        Mode::Fullnat => 1,
        Mode::Dsr => 2,
        Mode::Ipip => 3,
        Mode::Gue => 4,
        Mode::L7 => 5,
    }
}

const fn mode_from(code: u32) -> Mode {
    match code {
        1 => Mode::Fullnat,
        2 => Mode::Dsr,
        3 => Mode::Ipip,
        4 => Mode::Gue,
        5 => Mode::L7,
        _ => Mode::Nat,
    }
}

const fn algorithm_code(a: Algorithm) -> u32 {
    match a {
        Algorithm::RoundRobin => 0,
        Algorithm::WeightedRoundRobin => 1,
        Algorithm::IpHash => 2,
        Algorithm::Maglev => 3,
        Algorithm::LeastConnections => 4,
        Algorithm::LeastResponseTime => 5,
    }
}

const fn algorithm_from(code: u32) -> Algorithm {
    match code {
        0 => Algorithm::RoundRobin,
        1 => Algorithm::WeightedRoundRobin,
        2 => Algorithm::IpHash,
        4 => Algorithm::LeastConnections,
        5 => Algorithm::LeastResponseTime,
        _ => Algorithm::Maglev,
    }
}

/// Encodes a service entry.
pub fn encode_service(e: &ServiceEntry) -> [u32; DATA_WORDS] {
    [
        (u32::from(e.valid) << 31)
            | (u32::from(e.sticky) << 30)
            | (mode_code(e.mode) << 27)
            | (algorithm_code(e.algorithm) << 24)
            | (u32::from(e.protocol.ip_number()) << 16)
            | u32::from(e.member_count),
        u32::from(e.vip),
        (u32::from(e.port) << 16) | u32::from(e.gue_port),
        e.sticky_timeout,
        0,
    ]
}

/// Decodes a service entry.
pub fn decode_service(w: &[u32; DATA_WORDS]) -> ServiceEntry {
    ServiceEntry {
        valid: w[0] >> 31 != 0,
        sticky: (w[0] >> 30) & 1 != 0,
        mode: mode_from((w[0] >> 27) & 7),
        algorithm: algorithm_from((w[0] >> 24) & 7),
        protocol: if (w[0] >> 16) & 0xFF == 17 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        member_count: w[0] as u8,
        vip: Ipv4Addr::from(w[1]),
        port: (w[2] >> 16) as u16,
        gue_port: w[2] as u16,
        sticky_timeout: w[3],
    }
}

/// Encodes a backend entry.
pub fn encode_backend(e: &BackendEntry) -> [u32; DATA_WORDS] {
    let m = e.mac;
    [
        (u32::from(e.state.code()) << 29) | (u32::from(e.generation) << 16) | u32::from(e.weight),
        u32::from_be_bytes(e.address),
        (u32::from(e.port) << 16) | u32::from(u16::from_be_bytes([m[0], m[1]])),
        u32::from_be_bytes([m[2], m[3], m[4], m[5]]),
        e.rtt_us,
    ]
}

/// Decodes a backend entry.
pub fn decode_backend(w: &[u32; DATA_WORDS]) -> BackendEntry {
    let hi = (w[2] as u16).to_be_bytes();
    let lo = w[3].to_be_bytes();
    BackendEntry {
        state: BackendState::from_code((w[0] >> 29) as u8),
        generation: (w[0] >> 16) as u8,
        weight: w[0] as u16,
        address: w[1].to_be_bytes(),
        port: (w[2] >> 16) as u16,
        mac: [hi[0], hi[1], lo[0], lo[1], lo[2], lo[3]],
        rtt_us: w[4],
    }
}

/// The control plane's side: a [`TableWriter`] that turns table writes into register
/// writes on a bus (SPI to the FPGA, or the model's [`RegisterFile`]).
#[derive(Debug)]
pub struct RegisterWriter<B> {
    bus: B,
}

impl<B: RegisterBus> RegisterWriter<B> {
    /// Wraps a bus.
    pub fn new(bus: B) -> Self {
        RegisterWriter { bus }
    }

    /// The bus back.
    pub fn into_inner(self) -> B {
        self.bus
    }

    /// The bus, for reads (counters, identification).
    pub fn bus(&mut self) -> &mut B {
        &mut self.bus
    }

    fn entry(&mut self, table: Table, index: u32, words: &[u32]) {
        self.bus.write32(addr::TABLE_ADDR, table_addr(table, index));
        for (i, w) in words.iter().enumerate() {
            self.bus.write32(addr::TABLE_DATA + i as u16, *w);
        }
        self.bus.write32(addr::TABLE_WRITE, 1);
    }
}

impl<B: RegisterBus> TableWriter for RegisterWriter<B> {
    fn write_settings(&mut self, s: &Settings) {
        let b = &mut self.bus;
        b.write32(
            addr::MAC_HI,
            u32::from(u16::from_be_bytes([s.mac[0], s.mac[1]])),
        );
        b.write32(
            addr::MAC_LO,
            u32::from_be_bytes([s.mac[2], s.mac[3], s.mac[4], s.mac[5]]),
        );
        b.write32(addr::ADDRESS, u32::from(s.address));
        b.write32(addr::TUNNEL_SRC, u32::from(s.tunnel_source));
        b.write32(
            addr::SNAT_CFG,
            (u32::from(s.snat_count) << 16) | u32::from(s.snat_port_base),
        );
        b.write32(addr::RING_SIZE, s.ring_size);
        b.write32(addr::T_SYN, s.tcp_syn_timeout);
        b.write32(addr::T_EST, s.tcp_established_timeout);
        b.write32(addr::T_CLOSE, s.tcp_closing_timeout);
        b.write32(addr::T_UDP, s.udp_timeout);
        for (i, chunk) in s.hash_key.chunks_exact(4).enumerate() {
            b.write32(
                addr::HASH_KEY + i as u16,
                u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            );
        }
        for (i, a) in s.snat_pool.iter().enumerate() {
            b.write32(addr::SNAT_POOL + i as u16, u32::from(*a));
        }
    }

    fn write_service(&mut self, index: u8, entry: &ServiceEntry) {
        self.entry(
            Table::Service,
            u32::from(index),
            &encode_service(entry)[..4],
        );
    }

    fn write_backend(&mut self, index: u16, entry: &BackendEntry) {
        self.entry(Table::Backend, u32::from(index), &encode_backend(entry));
    }

    fn write_member(&mut self, service: u8, position: u8, backend: u16) {
        let index = (u32::from(service) << 5) | u32::from(position & 31);
        self.entry(Table::Member, index, &[u32::from(backend)]);
    }

    fn write_ring(&mut self, service: u8, offset: u32, entries: &[u16]) {
        // One address, then a stream of data + strobe pairs (the index auto-increments).
        self.bus.write32(
            addr::TABLE_ADDR,
            table_addr(Table::Ring, (u32::from(service) << 20) | offset),
        );
        for e in entries {
            self.bus.write32(addr::TABLE_DATA, u32::from(*e));
            self.bus.write32(addr::TABLE_WRITE, 1);
        }
    }

    fn commit(&mut self) {
        self.bus.write32(addr::CONTROL, 1);
    }
}

/// The data path's side, as the model implements it: decodes register writes into
/// [`TableWriter`] calls on a target (the [`crate::pipeline::Pipeline`]). The hardware
/// register block is checked against this.
#[derive(Debug)]
pub struct RegisterFile<W> {
    target: W,
    settings: Settings,
    table_addr: u32,
    data: [u32; DATA_WORDS],
    latched: u64,
}

impl<W: TableWriter> RegisterFile<W> {
    /// Decodes into `target`.
    pub fn new(target: W) -> Self {
        RegisterFile {
            target,
            settings: Settings::default(),
            table_addr: 0,
            data: [0; DATA_WORDS],
            latched: 0,
        }
    }

    /// The target.
    pub fn target(&mut self) -> &mut W {
        &mut self.target
    }

    fn table_write(&mut self) {
        let index = self.table_addr & 0x0FFF_FFFF;
        match Table::from_code(self.table_addr >> 28) {
            Some(Table::Service) => self
                .target
                .write_service(index as u8, &decode_service(&self.data)),
            Some(Table::Backend) => self
                .target
                .write_backend(index as u16, &decode_backend(&self.data)),
            Some(Table::Member) => self.target.write_member(
                (index >> 5) as u8,
                (index & 31) as u8,
                self.data[0] as u16,
            ),
            Some(Table::Ring) => self.target.write_ring(
                (index >> 20) as u8,
                index & 0xF_FFFF,
                &[self.data[0] as u16],
            ),
            None => return,
        }
        self.table_addr = (self.table_addr & 0xF000_0000) | ((index + 1) & 0x0FFF_FFFF);
    }
}

impl<W: TableWriter + CounterSource> RegisterBus for RegisterFile<W> {
    fn write32(&mut self, a: u16, v: u32) {
        let s = &mut self.settings;
        match a {
            addr::CONTROL if v & 1 != 0 => {
                self.target.write_settings(&self.settings);
                self.target.commit();
            }
            addr::MAC_HI => s.mac[..2].copy_from_slice(&(v as u16).to_be_bytes()),
            addr::MAC_LO => s.mac[2..].copy_from_slice(&v.to_be_bytes()),
            addr::ADDRESS => s.address = Ipv4Addr::from(v),
            addr::TUNNEL_SRC => s.tunnel_source = Ipv4Addr::from(v),
            addr::SNAT_CFG => {
                s.snat_count = ((v >> 16) & 0xF) as u8;
                s.snat_port_base = v as u16;
            }
            addr::RING_SIZE => s.ring_size = v,
            addr::T_SYN => s.tcp_syn_timeout = v,
            addr::T_EST => s.tcp_established_timeout = v,
            addr::T_CLOSE => s.tcp_closing_timeout = v,
            addr::T_UDP => s.udp_timeout = v,
            a if (addr::HASH_KEY..addr::HASH_KEY + 10).contains(&a) => {
                let i = usize::from(a - addr::HASH_KEY) * 4;
                s.hash_key[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            a if (addr::SNAT_POOL..addr::SNAT_POOL + 8).contains(&a) => {
                s.snat_pool[usize::from(a - addr::SNAT_POOL)] = Ipv4Addr::from(v);
            }
            addr::TABLE_ADDR => self.table_addr = v,
            a if (addr::TABLE_DATA..addr::TABLE_DATA + DATA_WORDS as u16).contains(&a) => {
                self.data[usize::from(a - addr::TABLE_DATA)] = v;
            }
            addr::TABLE_WRITE => self.table_write(),
            addr::COUNTER_SELECT => self.latched = self.target.counter(v),
            _ => {}
        }
    }

    fn read32(&mut self, a: u16) -> u32 {
        let s = &self.settings;
        match a {
            addr::ID => ID,
            addr::VERSION => VERSION,
            addr::STATUS => 0,
            addr::MAC_HI => u32::from(u16::from_be_bytes([s.mac[0], s.mac[1]])),
            addr::MAC_LO => u32::from_be_bytes([s.mac[2], s.mac[3], s.mac[4], s.mac[5]]),
            addr::ADDRESS => u32::from(s.address),
            addr::TUNNEL_SRC => u32::from(s.tunnel_source),
            addr::SNAT_CFG => (u32::from(s.snat_count) << 16) | u32::from(s.snat_port_base),
            addr::RING_SIZE => s.ring_size,
            addr::T_SYN => s.tcp_syn_timeout,
            addr::T_EST => s.tcp_established_timeout,
            addr::T_CLOSE => s.tcp_closing_timeout,
            addr::T_UDP => s.udp_timeout,
            addr::TABLE_ADDR => self.table_addr,
            a if (addr::TABLE_DATA..addr::TABLE_DATA + DATA_WORDS as u16).contains(&a) => {
                self.data[usize::from(a - addr::TABLE_DATA)]
            }
            addr::COUNTER_HI => (self.latched >> 32) as u32,
            addr::COUNTER_LO => self.latched as u32,
            _ => 0,
        }
    }
}

impl<W: TableWriter + ?Sized> TableWriter for &mut W {
    fn write_settings(&mut self, settings: &Settings) {
        (**self).write_settings(settings)
    }
    fn write_service(&mut self, index: u8, entry: &ServiceEntry) {
        (**self).write_service(index, entry)
    }
    fn write_backend(&mut self, index: u16, entry: &BackendEntry) {
        (**self).write_backend(index, entry)
    }
    fn write_member(&mut self, service: u8, position: u8, backend: u16) {
        (**self).write_member(service, position, backend)
    }
    fn write_ring(&mut self, service: u8, offset: u32, entries: &[u16]) {
        (**self).write_ring(service, offset, entries)
    }
    fn commit(&mut self) {
        (**self).commit()
    }
}

impl<C: CounterSource + ?Sized> CounterSource for &mut C {
    fn counter(&self, index: u32) -> u64 {
        (**self).counter(index)
    }
}

impl<B: RegisterBus + ?Sized> RegisterBus for &mut B {
    fn write32(&mut self, addr: u16, value: u32) {
        (**self).write32(addr, value)
    }
    fn read32(&mut self, addr: u16) -> u32 {
        (**self).read32(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let s = ServiceEntry {
            valid: true,
            vip: Ipv4Addr::new(10, 0, 0, 100),
            protocol: Protocol::Udp,
            port: 53,
            mode: Mode::Gue,
            algorithm: Algorithm::LeastResponseTime,
            sticky: true,
            sticky_timeout: 300_000,
            gue_port: 6080,
            member_count: 31,
        };
        assert_eq!(decode_service(&encode_service(&s)), s);
        let b = BackendEntry {
            state: BackendState::Drain,
            generation: 200,
            address: [10, 0, 1, 11],
            port: 8080,
            mac: [2, 0, 0, 0, 1, 0x0b],
            weight: 1000,
            rtt_us: 123_456,
        };
        assert_eq!(decode_backend(&encode_backend(&b)), b);
    }
}
