//! The register block of `regmap.rs` (`fulcrum_model::regmap`): the settings registers, the
//! table write port and the commit strobe, behind a parallel bus ([`RegisterBlock`]) and an
//! SPI slave ([`SpiSlave`], both together as [`SpiRegisters`]).
//!
//! **Parallel bus.** One access per cycle: `bus_we` writes `bus_wdata` at `bus_addr`;
//! `bus_re` reads `bus_addr` into `bus_rdata`, valid from the second cycle after it on
//! ([`BUS_READ_LATENCY`], until the next read). The block is two stages: the cycle after
//! an access its address decode is registered (one flip-flop per register for writes),
//! the cycle after that the write takes effect or the read value is registered. Accesses
//! stay in order (a read the cycle after a write sees the written value). Decoding is exactly `RegisterFile`'s: `ID`, `VERSION`, `STATUS`, the settings,
//! `TABLE_ADDR`, `TABLE_DATA[0..5]`, `COUNTER_HI`/`LO` read back; `HASH_KEY`, `SNAT_POOL`,
//! `CONTROL`, `TABLE_WRITE`, `COUNTER_SELECT` and unknown addresses read 0.
//!
//! **Table write port.** A write (any value) to `TABLE_WRITE` whose `TABLE_ADDR` names a
//! table (codes 1–4) pulses `table_write` for one cycle two cycles later, with
//! `table_kind` / `table_index` the address it was written to and `table_data0..4` the data
//! words; `TABLE_ADDR`'s index then counts up by one (28 bits, wrapping). An unknown table
//! code neither writes nor counts, as in the model.
//!
//! **Commit.** A write with bit 0 set to `CONTROL` pulses `commit` for one cycle (two cycles
//! after the write); the settings
//! outputs are the shadow values the model hands to `write_settings` at that commit (the
//! bank swap at a frame boundary belongs to the consumer of the strobe).
//!
//! **Counters.** A write to `COUNTER_SELECT` puts the index on `counter_index` (from the
//! second cycle after it) and, one cycle later, latches `counter_hi:counter_lo` (which the
//! counter source must present by then); `COUNTER_HI`/`LO` read the latch. A read of them
//! in the cycle right after the `COUNTER_SELECT` write sees the previous latch.
//!
//! **SPI** (`regmap::spi`): mode 0, MSB first, chip select low for one 7-byte transaction:
//! `0x57 addr_hi addr_lo v3 v2 v1 v0` writes, `0x52 addr_hi addr_lo` reads and the value
//! comes back on MISO in bytes 3–6. SCK, MOSI and CS are sampled with two-flop
//! synchronizers in the register clock domain. The tightest path is a read: the value must
//! be on MISO before the 25th rising SCK edge, about 7 clocks after the 24th. The test
//! passes down to an SCK half period of 4 clocks and fails at 3 (the register block's
//! two-cycle read); with the synchronizers'
//! one-clock uncertainty on a real pin, keep SCK high and low for at least 5 clocks each
//! (SCK ≤ clock / 10, 12.5 MHz at 125 MHz). Any other command byte,
//! or chip select rising early, does nothing.

use rust_hdl::prelude::*;

use fulcrum_model::tables::Settings;

/// Cycles from `bus_re` to its value on `bus_rdata` (of [`RegisterBlock`] and of
/// `FastPath`, which answers some addresses itself with the same timing).
pub const BUS_READ_LATENCY: usize = 2;

fn key_word(d: &Settings, i: usize) -> u64 {
    u64::from(u32::from_be_bytes([
        d.hash_key[4 * i],
        d.hash_key[4 * i + 1],
        d.hash_key[4 * i + 2],
        d.hash_key[4 * i + 3],
    ]))
}

/// The register block on a parallel bus.
#[derive(LogicBlock)]
pub struct RegisterBlock {
    /// The register clock.
    pub clock: Signal<In, Clock>,
    /// Word address of this cycle's access.
    pub bus_addr: Signal<In, Bits<16>>,
    /// Value to write.
    pub bus_wdata: Signal<In, Bits<32>>,
    /// Write this cycle.
    pub bus_we: Signal<In, Bit>,
    /// Read this cycle.
    pub bus_re: Signal<In, Bit>,
    /// The value of the last read, from the second cycle after it.
    pub bus_rdata: Signal<Out, Bits<32>>,
    /// `STATUS.0`: a commit is pending (driven by the bank logic; the model reads 0).
    pub commit_pending: Signal<In, Bit>,
    /// One-cycle strobe: `CONTROL.0` was written.
    pub commit: Signal<Out, Bit>,
    /// One-cycle strobe: write `table_data*` into entry `table_index` of `table_kind`.
    pub table_write: Signal<Out, Bit>,
    /// Table code of the write (1 service, 2 backend, 3 member, 4 ring).
    pub table_kind: Signal<Out, Bits<4>>,
    /// Entry index of the write.
    pub table_index: Signal<Out, Bits<28>>,
    /// Entry word 0.
    pub table_data0: Signal<Out, Bits<32>>,
    /// Entry word 1.
    pub table_data1: Signal<Out, Bits<32>>,
    /// Entry word 2.
    pub table_data2: Signal<Out, Bits<32>>,
    /// Entry word 3.
    pub table_data3: Signal<Out, Bits<32>>,
    /// Entry word 4.
    pub table_data4: Signal<Out, Bits<32>>,
    /// The counter index last written to `COUNTER_SELECT`.
    pub counter_index: Signal<Out, Bits<32>>,
    /// Bits 63:32 of the counter at `counter_index` (from the cycle after the select).
    pub counter_hi: Signal<In, Bits<32>>,
    /// Bits 31:0 of that counter.
    pub counter_lo: Signal<In, Bits<32>>,
    /// Full-NAT pool size (`SNAT_CFG` bits 19:16).
    pub snat_count: Signal<Out, Bits<4>>,
    /// First full-NAT port (`SNAT_CFG` bits 15:0).
    pub snat_port: Signal<Out, Bits<16>>,
    /// Appliance MAC bytes 0–1 (`MAC_HI`).
    pub mac_hi: Signal<Out, Bits<16>>,
    /// Appliance MAC bytes 2–5 (`MAC_LO`).
    pub mac_lo: Signal<Out, Bits<32>>,
    /// Appliance IPv4 address (`ADDRESS`).
    pub own_address: Signal<Out, Bits<32>>,
    /// Outer source address of tunnels (`TUNNEL_SRC`).
    pub tunnel_src: Signal<Out, Bits<32>>,
    /// Maglev ring size (`RING_SIZE`).
    pub ring_size: Signal<Out, Bits<32>>,
    /// TCP SYN timeout, ms (`T_SYN`).
    pub t_syn: Signal<Out, Bits<32>>,
    /// TCP established timeout, ms (`T_EST`).
    pub t_est: Signal<Out, Bits<32>>,
    /// TCP closing timeout, ms (`T_CLOSE`).
    pub t_close: Signal<Out, Bits<32>>,
    /// UDP timeout, ms (`T_UDP`).
    pub t_udp: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 0..3 (`HASH_KEY[0]`, write-only as in the model).
    pub hash_key0: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 4..7 (`HASH_KEY[1]`, write-only as in the model).
    pub hash_key1: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 8..11 (`HASH_KEY[2]`, write-only as in the model).
    pub hash_key2: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 12..15 (`HASH_KEY[3]`, write-only as in the model).
    pub hash_key3: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 16..19 (`HASH_KEY[4]`, write-only as in the model).
    pub hash_key4: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 20..23 (`HASH_KEY[5]`, write-only as in the model).
    pub hash_key5: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 24..27 (`HASH_KEY[6]`, write-only as in the model).
    pub hash_key6: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 28..31 (`HASH_KEY[7]`, write-only as in the model).
    pub hash_key7: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 32..35 (`HASH_KEY[8]`, write-only as in the model).
    pub hash_key8: Signal<Out, Bits<32>>,
    /// Toeplitz key bytes 36..39 (`HASH_KEY[9]`, write-only as in the model).
    pub hash_key9: Signal<Out, Bits<32>>,
    /// Full-NAT source address 0 (`SNAT_POOL[0]`, write-only as in the model).
    pub snat_pool0: Signal<Out, Bits<32>>,
    /// Full-NAT source address 1 (`SNAT_POOL[1]`, write-only as in the model).
    pub snat_pool1: Signal<Out, Bits<32>>,
    /// Full-NAT source address 2 (`SNAT_POOL[2]`, write-only as in the model).
    pub snat_pool2: Signal<Out, Bits<32>>,
    /// Full-NAT source address 3 (`SNAT_POOL[3]`, write-only as in the model).
    pub snat_pool3: Signal<Out, Bits<32>>,
    /// Full-NAT source address 4 (`SNAT_POOL[4]`, write-only as in the model).
    pub snat_pool4: Signal<Out, Bits<32>>,
    /// Full-NAT source address 5 (`SNAT_POOL[5]`, write-only as in the model).
    pub snat_pool5: Signal<Out, Bits<32>>,
    /// Full-NAT source address 6 (`SNAT_POOL[6]`, write-only as in the model).
    pub snat_pool6: Signal<Out, Bits<32>>,
    /// Full-NAT source address 7 (`SNAT_POOL[7]`, write-only as in the model).
    pub snat_pool7: Signal<Out, Bits<32>>,

    r_mac_hi: DFFWithInit<Bits<16>>,
    r_mac_lo: DFFWithInit<Bits<32>>,
    r_own_address: DFFWithInit<Bits<32>>,
    r_tunnel_src: DFFWithInit<Bits<32>>,
    r_ring_size: DFFWithInit<Bits<32>>,
    r_t_syn: DFFWithInit<Bits<32>>,
    r_t_est: DFFWithInit<Bits<32>>,
    r_t_close: DFFWithInit<Bits<32>>,
    r_t_udp: DFFWithInit<Bits<32>>,
    r_hash_key0: DFFWithInit<Bits<32>>,
    r_hash_key1: DFFWithInit<Bits<32>>,
    r_hash_key2: DFFWithInit<Bits<32>>,
    r_hash_key3: DFFWithInit<Bits<32>>,
    r_hash_key4: DFFWithInit<Bits<32>>,
    r_hash_key5: DFFWithInit<Bits<32>>,
    r_hash_key6: DFFWithInit<Bits<32>>,
    r_hash_key7: DFFWithInit<Bits<32>>,
    r_hash_key8: DFFWithInit<Bits<32>>,
    r_hash_key9: DFFWithInit<Bits<32>>,
    r_snat_pool0: DFFWithInit<Bits<32>>,
    r_snat_pool1: DFFWithInit<Bits<32>>,
    r_snat_pool2: DFFWithInit<Bits<32>>,
    r_snat_pool3: DFFWithInit<Bits<32>>,
    r_snat_pool4: DFFWithInit<Bits<32>>,
    r_snat_pool5: DFFWithInit<Bits<32>>,
    r_snat_pool6: DFFWithInit<Bits<32>>,
    r_snat_pool7: DFFWithInit<Bits<32>>,
    r_snat_count: DFFWithInit<Bits<4>>,
    r_snat_port: DFFWithInit<Bits<16>>,
    rdata: DFF<Bits<32>>,
    /// Stage 1 of a write: one bit per register, in the order of the stage-1 `match`
    /// arms (bit 0 `MAC_HI` at 0x010 … bit 36 `COUNTER_SELECT` at 0x050), set in the
    /// cycle after `bus_we` from the address decode; stage 2 writes `w_data` where a bit
    /// is set.
    w_sel: DFF<Bits<40>>,
    w_data: DFF<Bits<32>>,
    /// Stage 1 of a read: `bus_re`, and the readable register as a dense index (0 `ID`,
    /// 1 `VERSION`, 2 `COMMIT`, 3..12 0x010..0x019, 13..18 0x040..0x045, 19..20 0x051,
    /// 0x052; 31 for any other address: it reads 0). Dense, the stage-2 read is a
    /// balanced 32-to-1 multiplexer on five flip-flops (on the address's sparse low 7
    /// bits it was a decode and a mux five LUTs deep, the image's longest path on a seed).
    r_en: DFF<Bit>,
    r_sel: DFF<Bits<5>>,
    r_hi_zero: Signal<Local, Bit>,
    commit_q: DFF<Bit>,
    write_q: DFF<Bit>,
    kind_q: DFF<Bits<4>>,
    index_q: DFF<Bits<28>>,
    table_addr: DFF<Bits<32>>,
    data0: DFF<Bits<32>>,
    data1: DFF<Bits<32>>,
    data2: DFF<Bits<32>>,
    data3: DFF<Bits<32>>,
    data4: DFF<Bits<32>>,
    counter_sel: DFF<Bits<32>>,
    latch_pending: DFF<Bit>,
    latched_hi: DFF<Bits<32>>,
    latched_lo: DFF<Bits<32>>,
    code: Signal<Local, Bits<4>>,
    code_valid: Signal<Local, Bit>,
    next_index: Signal<Local, Bits<28>>,
}

impl Default for RegisterBlock {
    fn default() -> Self {
        Self::new()
    }
}

impl RegisterBlock {
    /// A block holding `Settings::DEFAULT` (the model's reset values).
    pub fn new() -> Self {
        let d = Settings::DEFAULT;
        RegisterBlock {
            clock: Default::default(),
            bus_addr: Default::default(),
            bus_wdata: Default::default(),
            bus_we: Default::default(),
            bus_re: Default::default(),
            bus_rdata: Default::default(),
            commit_pending: Default::default(),
            commit: Default::default(),
            table_write: Default::default(),
            table_kind: Default::default(),
            table_index: Default::default(),
            table_data0: Default::default(),
            table_data1: Default::default(),
            table_data2: Default::default(),
            table_data3: Default::default(),
            table_data4: Default::default(),
            counter_index: Default::default(),
            counter_hi: Default::default(),
            counter_lo: Default::default(),
            snat_count: Default::default(),
            snat_port: Default::default(),
            mac_hi: Default::default(),
            mac_lo: Default::default(),
            own_address: Default::default(),
            tunnel_src: Default::default(),
            ring_size: Default::default(),
            t_syn: Default::default(),
            t_est: Default::default(),
            t_close: Default::default(),
            t_udp: Default::default(),
            hash_key0: Default::default(),
            hash_key1: Default::default(),
            hash_key2: Default::default(),
            hash_key3: Default::default(),
            hash_key4: Default::default(),
            hash_key5: Default::default(),
            hash_key6: Default::default(),
            hash_key7: Default::default(),
            hash_key8: Default::default(),
            hash_key9: Default::default(),
            snat_pool0: Default::default(),
            snat_pool1: Default::default(),
            snat_pool2: Default::default(),
            snat_pool3: Default::default(),
            snat_pool4: Default::default(),
            snat_pool5: Default::default(),
            snat_pool6: Default::default(),
            snat_pool7: Default::default(),
            r_mac_hi: DFFWithInit::new(Bits::from(0)),
            r_mac_lo: DFFWithInit::new(Bits::from(0)),
            r_own_address: DFFWithInit::new(Bits::from(0)),
            r_tunnel_src: DFFWithInit::new(Bits::from(0)),
            r_ring_size: DFFWithInit::new(Bits::from(u64::from(d.ring_size))),
            r_t_syn: DFFWithInit::new(Bits::from(u64::from(d.tcp_syn_timeout))),
            r_t_est: DFFWithInit::new(Bits::from(u64::from(d.tcp_established_timeout))),
            r_t_close: DFFWithInit::new(Bits::from(u64::from(d.tcp_closing_timeout))),
            r_t_udp: DFFWithInit::new(Bits::from(u64::from(d.udp_timeout))),
            r_hash_key0: DFFWithInit::new(Bits::from(key_word(&d, 0))),
            r_hash_key1: DFFWithInit::new(Bits::from(key_word(&d, 1))),
            r_hash_key2: DFFWithInit::new(Bits::from(key_word(&d, 2))),
            r_hash_key3: DFFWithInit::new(Bits::from(key_word(&d, 3))),
            r_hash_key4: DFFWithInit::new(Bits::from(key_word(&d, 4))),
            r_hash_key5: DFFWithInit::new(Bits::from(key_word(&d, 5))),
            r_hash_key6: DFFWithInit::new(Bits::from(key_word(&d, 6))),
            r_hash_key7: DFFWithInit::new(Bits::from(key_word(&d, 7))),
            r_hash_key8: DFFWithInit::new(Bits::from(key_word(&d, 8))),
            r_hash_key9: DFFWithInit::new(Bits::from(key_word(&d, 9))),
            r_snat_pool0: DFFWithInit::new(Bits::from(0)),
            r_snat_pool1: DFFWithInit::new(Bits::from(0)),
            r_snat_pool2: DFFWithInit::new(Bits::from(0)),
            r_snat_pool3: DFFWithInit::new(Bits::from(0)),
            r_snat_pool4: DFFWithInit::new(Bits::from(0)),
            r_snat_pool5: DFFWithInit::new(Bits::from(0)),
            r_snat_pool6: DFFWithInit::new(Bits::from(0)),
            r_snat_pool7: DFFWithInit::new(Bits::from(0)),
            r_snat_count: DFFWithInit::new(Bits::from(u64::from(d.snat_count))),
            r_snat_port: DFFWithInit::new(Bits::from(u64::from(d.snat_port_base))),
            rdata: Default::default(),
            w_sel: Default::default(),
            w_data: Default::default(),
            r_en: Default::default(),
            r_sel: Default::default(),
            r_hi_zero: Default::default(),
            commit_q: Default::default(),
            write_q: Default::default(),
            kind_q: Default::default(),
            index_q: Default::default(),
            table_addr: Default::default(),
            data0: Default::default(),
            data1: Default::default(),
            data2: Default::default(),
            data3: Default::default(),
            data4: Default::default(),
            counter_sel: Default::default(),
            latch_pending: Default::default(),
            latched_hi: Default::default(),
            latched_lo: Default::default(),
            code: Default::default(),
            code_valid: Default::default(),
            next_index: Default::default(),
        }
    }
}

// The write decode keeps `if bus_we` inside each arm (a match guard is not hardware
// rust-hdl translates, and the arms must not be constants alone: see `update`).
#[allow(clippy::collapsible_match)]
impl Logic for RegisterBlock {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            r_mac_hi,
            r_mac_lo,
            r_own_address,
            r_tunnel_src,
            r_ring_size,
            r_t_syn,
            r_t_est,
            r_t_close,
            r_t_udp,
            r_hash_key0,
            r_hash_key1,
            r_hash_key2,
            r_hash_key3,
            r_hash_key4,
            r_hash_key5,
            r_hash_key6,
            r_hash_key7,
            r_hash_key8,
            r_hash_key9,
            r_snat_pool0,
            r_snat_pool1,
            r_snat_pool2,
            r_snat_pool3,
            r_snat_pool4,
            r_snat_pool5,
            r_snat_pool6,
            r_snat_pool7,
            r_snat_count,
            r_snat_port,
            rdata,
            w_sel,
            w_data,
            r_en,
            r_sel,
            commit_q,
            write_q,
            kind_q,
            index_q,
            table_addr,
            data0,
            data1,
            data2,
            data3,
            data4,
            counter_sel,
            latch_pending,
            latched_hi,
            latched_lo
        );
        self.mac_hi.next = self.r_mac_hi.q.val();
        self.mac_lo.next = self.r_mac_lo.q.val();
        self.own_address.next = self.r_own_address.q.val();
        self.tunnel_src.next = self.r_tunnel_src.q.val();
        self.ring_size.next = self.r_ring_size.q.val();
        self.t_syn.next = self.r_t_syn.q.val();
        self.t_est.next = self.r_t_est.q.val();
        self.t_close.next = self.r_t_close.q.val();
        self.t_udp.next = self.r_t_udp.q.val();
        self.hash_key0.next = self.r_hash_key0.q.val();
        self.hash_key1.next = self.r_hash_key1.q.val();
        self.hash_key2.next = self.r_hash_key2.q.val();
        self.hash_key3.next = self.r_hash_key3.q.val();
        self.hash_key4.next = self.r_hash_key4.q.val();
        self.hash_key5.next = self.r_hash_key5.q.val();
        self.hash_key6.next = self.r_hash_key6.q.val();
        self.hash_key7.next = self.r_hash_key7.q.val();
        self.hash_key8.next = self.r_hash_key8.q.val();
        self.hash_key9.next = self.r_hash_key9.q.val();
        self.snat_pool0.next = self.r_snat_pool0.q.val();
        self.snat_pool1.next = self.r_snat_pool1.q.val();
        self.snat_pool2.next = self.r_snat_pool2.q.val();
        self.snat_pool3.next = self.r_snat_pool3.q.val();
        self.snat_pool4.next = self.r_snat_pool4.q.val();
        self.snat_pool5.next = self.r_snat_pool5.q.val();
        self.snat_pool6.next = self.r_snat_pool6.q.val();
        self.snat_pool7.next = self.r_snat_pool7.q.val();
        self.snat_count.next = self.r_snat_count.q.val();
        self.snat_port.next = self.r_snat_port.q.val();
        self.bus_rdata.next = self.rdata.q.val();
        self.commit.next = self.commit_q.q.val();
        self.table_write.next = self.write_q.q.val();
        self.table_kind.next = self.kind_q.q.val();
        self.table_index.next = self.index_q.q.val();
        self.table_data0.next = self.data0.q.val();
        self.table_data1.next = self.data1.q.val();
        self.table_data2.next = self.data2.q.val();
        self.table_data3.next = self.data3.q.val();
        self.table_data4.next = self.data4.q.val();
        self.counter_index.next = self.counter_sel.q.val();

        self.code.next = self.table_addr.q.val().get_bits::<4>(28);
        self.code_valid.next = (self.code.val() == 1)
            | (self.code.val() == 2)
            | (self.code.val() == 3)
            | (self.code.val() == 4);
        self.next_index.next = self.table_addr.q.val().get_bits::<28>(0) + 1;

        // Strobes last one cycle.
        self.commit_q.d.next = false;
        self.write_q.d.next = false;
        self.latch_pending.d.next = false;
        if self.latch_pending.q.val() {
            self.latched_hi.d.next = self.counter_hi.val();
            self.latched_lo.d.next = self.counter_lo.val();
        }

        // Stage 1: the address decode, registered (one bit per register), and the data.
        // Stage 2 below acts on them: a write takes effect, and its strobes fire, one
        // cycle later than a single-stage block (the decode in front of every
        // register's enable was a critical path on the board).
        self.w_data.d.next = self.bus_wdata.val();
        self.w_sel.d.next = 0.into();
        // A `case` on the address with `bus_we` inside each arm: yosys turns a case of
        // constants alone into a ROM (here a block RAM), and a chain of `if`s into a
        // 37-deep priority mux; this one is a parallel decode, one compare per bit.
        match self.bus_addr.val().index() {
            16 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x1_u64.into();
                }
            }
            17 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x2_u64.into();
                }
            }
            18 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x4_u64.into();
                }
            }
            19 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x8_u64.into();
                }
            }
            21 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x10_u64.into();
                }
            }
            22 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x20_u64.into();
                }
            }
            23 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x40_u64.into();
                }
            }
            24 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x80_u64.into();
                }
            }
            25 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x100_u64.into();
                }
            }
            32 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x200_u64.into();
                }
            }
            33 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x400_u64.into();
                }
            }
            34 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x800_u64.into();
                }
            }
            35 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x1000_u64.into();
                }
            }
            36 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x2000_u64.into();
                }
            }
            37 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x4000_u64.into();
                }
            }
            38 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x8000_u64.into();
                }
            }
            39 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x10000_u64.into();
                }
            }
            40 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x20000_u64.into();
                }
            }
            41 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x40000_u64.into();
                }
            }
            48 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x80000_u64.into();
                }
            }
            49 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x100000_u64.into();
                }
            }
            50 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x200000_u64.into();
                }
            }
            51 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x400000_u64.into();
                }
            }
            52 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x800000_u64.into();
                }
            }
            53 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x1000000_u64.into();
                }
            }
            54 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x2000000_u64.into();
                }
            }
            55 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x4000000_u64.into();
                }
            }
            20 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x8000000_u64.into();
                }
            }
            2 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x10000000_u64.into();
                }
            }
            64 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x20000000_u64.into();
                }
            }
            65 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x40000000_u64.into();
                }
            }
            66 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x80000000_u64.into();
                }
            }
            67 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x100000000_u64.into();
                }
            }
            68 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x200000000_u64.into();
                }
            }
            69 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x400000000_u64.into();
                }
            }
            70 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x800000000_u64.into();
                }
            }
            80 => {
                if self.bus_we.val() {
                    self.w_sel.d.next = 0x1000000000_u64.into();
                }
            }
            _ => {}
        }
        self.r_en.d.next = self.bus_re.val();
        // `bus_re` inside each arm, as for `w_sel`: a `case` of constants alone becomes
        // a ROM.
        self.r_sel.d.next = 31.into();
        // The address's top nine bits are checked beside the case on its low seven (a
        // case on all sixteen compared every label with the whole address: six LUT
        // levels from the bus register to `r_sel`).
        self.r_hi_zero.next = self.bus_addr.val().get_bits::<9>(7) == 0;
        if self.r_hi_zero.val() {
            match self.bus_addr.val().get_bits::<7>(0).index() {
                0 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 0.into();
                    }
                }
                1 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 1.into();
                    }
                }
                3 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 2.into();
                    }
                }
                16 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 3.into();
                    }
                }
                17 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 4.into();
                    }
                }
                18 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 5.into();
                    }
                }
                19 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 6.into();
                    }
                }
                20 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 7.into();
                    }
                }
                21 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 8.into();
                    }
                }
                22 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 9.into();
                    }
                }
                23 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 10.into();
                    }
                }
                24 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 11.into();
                    }
                }
                25 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 12.into();
                    }
                }
                64 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 13.into();
                    }
                }
                65 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 14.into();
                    }
                }
                66 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 15.into();
                    }
                }
                67 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 16.into();
                    }
                }
                68 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 17.into();
                    }
                }
                69 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 18.into();
                    }
                }
                81 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 19.into();
                    }
                }
                82 => {
                    if self.bus_re.val() {
                        self.r_sel.d.next = 20.into();
                    }
                }
                _ => {}
            }
        }

        // Stage 2: the writes.
        if self.w_sel.q.val().get_bit(0) {
            self.r_mac_hi.d.next = self.w_data.q.val().get_bits::<16>(0);
        }
        if self.w_sel.q.val().get_bit(1) {
            self.r_mac_lo.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(2) {
            self.r_own_address.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(3) {
            self.r_tunnel_src.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(4) {
            self.r_ring_size.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(5) {
            self.r_t_syn.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(6) {
            self.r_t_est.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(7) {
            self.r_t_close.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(8) {
            self.r_t_udp.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(9) {
            self.r_hash_key0.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(10) {
            self.r_hash_key1.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(11) {
            self.r_hash_key2.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(12) {
            self.r_hash_key3.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(13) {
            self.r_hash_key4.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(14) {
            self.r_hash_key5.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(15) {
            self.r_hash_key6.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(16) {
            self.r_hash_key7.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(17) {
            self.r_hash_key8.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(18) {
            self.r_hash_key9.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(19) {
            self.r_snat_pool0.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(20) {
            self.r_snat_pool1.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(21) {
            self.r_snat_pool2.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(22) {
            self.r_snat_pool3.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(23) {
            self.r_snat_pool4.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(24) {
            self.r_snat_pool5.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(25) {
            self.r_snat_pool6.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(26) {
            self.r_snat_pool7.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(27) {
            self.r_snat_count.d.next = self.w_data.q.val().get_bits::<4>(16);
            self.r_snat_port.d.next = self.w_data.q.val().get_bits::<16>(0);
        }
        if self.w_sel.q.val().get_bit(28) {
            self.commit_q.d.next = self.w_data.q.val().get_bit(0);
        }
        if self.w_sel.q.val().get_bit(29) {
            self.table_addr.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(30) {
            self.data0.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(31) {
            self.data1.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(32) {
            self.data2.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(33) {
            self.data3.d.next = self.w_data.q.val();
        }
        if self.w_sel.q.val().get_bit(34) {
            self.data4.d.next = self.w_data.q.val();
        }
        if (self.w_sel.q.val().get_bit(35)) & self.code_valid.val() {
            self.write_q.d.next = true;
            self.kind_q.d.next = self.code.val();
            self.index_q.d.next = self.table_addr.q.val().get_bits::<28>(0);
            self.table_addr.d.next = (bit_cast::<32, 4>(self.code.val()) << 28)
                | bit_cast::<32, 28>(self.next_index.val());
        }
        if self.w_sel.q.val().get_bit(36) {
            self.counter_sel.d.next = self.w_data.q.val();
            self.latch_pending.d.next = true;
        }

        // A `case` on the dense index (a parallel mux): a chain of `if`s here was a
        // 22-deep priority mux, the register block's longest path. (Decimal labels:
        // rust-hdl copies them into the Verilog as written.) Indices as in `r_sel`.
        if self.r_en.q.val() {
            match self.r_sel.q.val().index() {
                0 => self.rdata.d.next = 0x4655_4C43.into(), // regmap::ID
                1 => self.rdata.d.next = 1.into(),           // regmap::VERSION
                2 => {
                    self.rdata.d.next = 0.into();
                    if self.commit_pending.val() {
                        self.rdata.d.next = 1.into();
                    }
                }
                3 => self.rdata.d.next = bit_cast::<32, 16>(self.r_mac_hi.q.val()),
                4 => self.rdata.d.next = self.r_mac_lo.q.val(),
                5 => self.rdata.d.next = self.r_own_address.q.val(),
                6 => self.rdata.d.next = self.r_tunnel_src.q.val(),
                7 => {
                    self.rdata.d.next = (bit_cast::<32, 4>(self.r_snat_count.q.val()) << 16)
                        | bit_cast::<32, 16>(self.r_snat_port.q.val());
                }
                8 => self.rdata.d.next = self.r_ring_size.q.val(),
                9 => self.rdata.d.next = self.r_t_syn.q.val(),
                10 => self.rdata.d.next = self.r_t_est.q.val(),
                11 => self.rdata.d.next = self.r_t_close.q.val(),
                12 => self.rdata.d.next = self.r_t_udp.q.val(),
                13 => self.rdata.d.next = self.table_addr.q.val(),
                14 => self.rdata.d.next = self.data0.q.val(),
                15 => self.rdata.d.next = self.data1.q.val(),
                16 => self.rdata.d.next = self.data2.q.val(),
                17 => self.rdata.d.next = self.data3.q.val(),
                18 => self.rdata.d.next = self.data4.q.val(),
                19 => self.rdata.d.next = self.latched_hi.q.val(),
                20 => self.rdata.d.next = self.latched_lo.q.val(),
                _ => self.rdata.d.next = 0.into(),
            }
        }
    }
}

/// An SPI slave (mode 0, MSB first) that turns `regmap::spi` transactions into accesses
/// on a [`RegisterBlock`] bus.
#[derive(LogicBlock, Default)]
pub struct SpiSlave {
    /// The register clock (SPI pins are synchronized to it).
    pub clock: Signal<In, Clock>,
    /// SPI clock from the MCU.
    pub sck: Signal<In, Bit>,
    /// Data from the MCU.
    pub mosi: Signal<In, Bit>,
    /// Chip select, active low.
    pub cs_n: Signal<In, Bit>,
    /// Data to the MCU.
    pub miso: Signal<Out, Bit>,
    /// Bus address.
    pub bus_addr: Signal<Out, Bits<16>>,
    /// Bus write data.
    pub bus_wdata: Signal<Out, Bits<32>>,
    /// Bus write strobe.
    pub bus_we: Signal<Out, Bit>,
    /// Bus read strobe.
    pub bus_re: Signal<Out, Bit>,
    /// Bus read data (`BUS_READ_LATENCY` cycles after `bus_re`).
    pub bus_rdata: Signal<In, Bits<32>>,

    sck_meta: DFF<Bit>,
    sck_sync: DFF<Bit>,
    sck_prev: DFF<Bit>,
    mosi_meta: DFF<Bit>,
    mosi_sync: DFF<Bit>,
    cs_meta: DFF<Bit>,
    cs_sync: DFF<Bit>,
    bits: DFF<Bits<6>>,
    shift_in: DFF<Bits<32>>,
    sampled: DFF<Bit>,
    command: DFF<Bits<8>>,
    addr: DFF<Bits<16>>,
    wdata: DFF<Bits<32>>,
    we: DFF<Bit>,
    re: DFF<Bit>,
    read_wait: DFF<Bit>,
    read_wait2: DFF<Bit>,
    shift_out: DFF<Bits<32>>,
    rise: Signal<Local, Bit>,
    fall: Signal<Local, Bit>,
}

impl Logic for SpiSlave {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, sck_meta, sck_sync, sck_prev, mosi_meta, mosi_sync, cs_meta, cs_sync,
            bits, shift_in, sampled, command, addr, wdata, we, re, read_wait, read_wait2,
            shift_out
        );
        self.sck_meta.d.next = self.sck.val();
        self.sck_sync.d.next = self.sck_meta.q.val();
        self.sck_prev.d.next = self.sck_sync.q.val();
        self.mosi_meta.d.next = self.mosi.val();
        self.mosi_sync.d.next = self.mosi_meta.q.val();
        self.cs_meta.d.next = self.cs_n.val();
        self.cs_sync.d.next = self.cs_meta.q.val();
        self.rise.next = self.sck_sync.q.val() & !self.sck_prev.q.val();
        self.fall.next = !self.sck_sync.q.val() & self.sck_prev.q.val();

        self.miso.next = self.shift_out.q.val().get_bit(31);
        self.bus_addr.next = self.addr.q.val();
        self.bus_wdata.next = self.wdata.q.val();
        self.bus_we.next = self.we.q.val();
        self.bus_re.next = self.re.q.val();

        self.we.d.next = false;
        self.re.d.next = false;
        self.sampled.d.next = false;
        // The read value is on `bus_rdata` `BUS_READ_LATENCY` (2) cycles after `bus_re`.
        self.read_wait.d.next = self.re.q.val();
        self.read_wait2.d.next = self.read_wait.q.val();
        if self.read_wait2.q.val() {
            self.shift_out.d.next = self.bus_rdata.val();
        }

        if self.cs_sync.q.val() {
            // Deselected: the next transaction starts from bit 0.
            self.bits.d.next = 0.into();
            self.shift_out.d.next = 0.into();
        } else {
            if self.rise.val() & (self.bits.q.val() != 63) {
                self.shift_in.d.next = self.shift_in.q.val() << 1;
                if self.mosi_sync.q.val() {
                    self.shift_in.d.next = (self.shift_in.q.val() << 1) | 1;
                }
                self.bits.d.next = self.bits.q.val() + 1;
                self.sampled.d.next = true;
            }
            if self.fall.val() & (self.bits.q.val() > 24) {
                self.shift_out.d.next = self.shift_out.q.val() << 1;
            }
            if self.sampled.q.val() {
                if self.bits.q.val() == 8 {
                    self.command.d.next = self.shift_in.q.val().get_bits::<8>(0);
                }
                if self.bits.q.val() == 24 {
                    self.addr.d.next = self.shift_in.q.val().get_bits::<16>(0);
                    self.re.d.next = self.command.q.val() == 0x52; // regmap::spi::READ
                }
                if self.bits.q.val() == 56 {
                    self.wdata.d.next = self.shift_in.q.val();
                    self.we.d.next = self.command.q.val() == 0x57; // regmap::spi::WRITE
                }
            }
        }
    }
}

/// The register block behind its SPI slave: what the MCU sees.
#[derive(LogicBlock, Default)]
pub struct SpiRegisters {
    /// The register clock.
    pub clock: Signal<In, Clock>,
    /// SPI clock.
    pub sck: Signal<In, Bit>,
    /// SPI data in.
    pub mosi: Signal<In, Bit>,
    /// SPI chip select, active low.
    pub cs_n: Signal<In, Bit>,
    /// SPI data out.
    pub miso: Signal<Out, Bit>,
    /// `STATUS.0` (see [`RegisterBlock::commit_pending`]).
    pub commit_pending: Signal<In, Bit>,
    /// Counter bits 63:32 (see [`RegisterBlock::counter_hi`]).
    pub counter_hi: Signal<In, Bits<32>>,
    /// Counter bits 31:0.
    pub counter_lo: Signal<In, Bits<32>>,
    /// The SPI slave.
    pub spi: SpiSlave,
    /// The registers (their outputs are the block's outputs).
    pub regs: RegisterBlock,
}

impl Logic for SpiRegisters {
    #[hdl_gen]
    fn update(&mut self) {
        self.spi.clock.next = self.clock.val();
        self.regs.clock.next = self.clock.val();
        self.spi.sck.next = self.sck.val();
        self.spi.mosi.next = self.mosi.val();
        self.spi.cs_n.next = self.cs_n.val();
        self.miso.next = self.spi.miso.val();
        self.regs.bus_addr.next = self.spi.bus_addr.val();
        self.regs.bus_wdata.next = self.spi.bus_wdata.val();
        self.regs.bus_we.next = self.spi.bus_we.val();
        self.regs.bus_re.next = self.spi.bus_re.val();
        self.spi.bus_rdata.next = self.regs.bus_rdata.val();
        self.regs.commit_pending.next = self.commit_pending.val();
        self.regs.counter_hi.next = self.counter_hi.val();
        self.regs.counter_lo.next = self.counter_lo.val();
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use fulcrum_model::config::{Algorithm, Mode, Protocol};
    use fulcrum_model::regmap::{
        CounterSource, RegisterBus, RegisterFile, RegisterWriter, addr, decode_backend,
        decode_service, spi,
    };
    use fulcrum_model::tables::{BackendEntry, BackendState, ServiceEntry, Settings, TableWriter};

    use super::*;
    use crate::sim::{Rng, Traffic, settle, tick};

    /// What reaches the tables: the model's decoded calls, or the block's port, decoded.
    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        Settings(Settings),
        Service(u8, ServiceEntry),
        Backend(u16, BackendEntry),
        Member(u8, u8, u16),
        Ring(u8, u32, u16),
        Commit,
    }

    /// A model target that records what `RegisterFile` decodes, with fixed counters.
    #[derive(Default)]
    struct Recorder(Vec<Event>);

    fn counter(index: u32) -> u64 {
        let mut r = Rng::new(u64::from(index));
        r.next_u64()
    }

    impl CounterSource for Recorder {
        fn counter(&self, index: u32) -> u64 {
            counter(index)
        }
    }

    impl TableWriter for Recorder {
        fn write_settings(&mut self, s: &Settings) {
            self.0.push(Event::Settings(*s));
        }
        fn write_service(&mut self, index: u8, e: &ServiceEntry) {
            self.0.push(Event::Service(index, *e));
        }
        fn write_backend(&mut self, index: u16, e: &BackendEntry) {
            self.0.push(Event::Backend(index, *e));
        }
        fn write_member(&mut self, service: u8, position: u8, backend: u16) {
            self.0.push(Event::Member(service, position, backend));
        }
        fn write_ring(&mut self, service: u8, offset: u32, entries: &[u16]) {
            for (i, e) in entries.iter().enumerate() {
                self.0.push(Event::Ring(service, offset + i as u32, *e));
            }
        }
        fn commit(&mut self) {
            self.0.push(Event::Commit);
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Write(u16, u32),
        Read(u16),
    }

    /// A bus that only records what `RegisterWriter` does.
    #[derive(Default)]
    struct Recording(Vec<Op>);

    impl RegisterBus for Recording {
        fn write32(&mut self, a: u16, v: u32) {
            self.0.push(Op::Write(a, v));
        }
        fn read32(&mut self, a: u16) -> u32 {
            self.0.push(Op::Read(a));
            0
        }
    }

    fn random_settings(rng: &mut Rng) -> Settings {
        let mut s = Settings::DEFAULT;
        s.mac.iter_mut().for_each(|b| *b = rng.byte());
        s.address = Ipv4Addr::from(rng.next_u64() as u32);
        s.tunnel_source = Ipv4Addr::from(rng.next_u64() as u32);
        s.snat_pool
            .iter_mut()
            .for_each(|a| *a = Ipv4Addr::from(rng.next_u64() as u32));
        s.snat_count = rng.below(9) as u8;
        s.snat_port_base = rng.next_u64() as u16;
        s.hash_key.iter_mut().for_each(|b| *b = rng.byte());
        s.ring_size = [1021, 4093, 65537, rng.next_u64() as u32][rng.below(4) as usize];
        s.tcp_syn_timeout = rng.next_u64() as u32;
        s.tcp_established_timeout = rng.next_u64() as u32;
        s.tcp_closing_timeout = rng.next_u64() as u32;
        s.udp_timeout = rng.next_u64() as u32;
        s
    }

    fn random_service(rng: &mut Rng) -> ServiceEntry {
        ServiceEntry {
            valid: rng.chance(800),
            vip: Ipv4Addr::from(rng.next_u64() as u32),
            protocol: if rng.chance(500) {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            port: rng.next_u64() as u16,
            mode: [
                Mode::Nat,
                Mode::Fullnat,
                Mode::Dsr,
                Mode::Ipip,
                Mode::Gue,
                Mode::L7,
            ][rng.below(6) as usize],
            algorithm: [
                Algorithm::RoundRobin,
                Algorithm::WeightedRoundRobin,
                Algorithm::IpHash,
                Algorithm::Maglev,
                Algorithm::LeastConnections,
                Algorithm::LeastResponseTime,
            ][rng.below(6) as usize],
            sticky: rng.chance(500),
            sticky_timeout: rng.next_u64() as u32,
            gue_port: rng.next_u64() as u16,
            member_count: rng.below(33) as u8,
        }
    }

    fn random_backend(rng: &mut Rng) -> BackendEntry {
        BackendEntry {
            state: BackendState::from_code(rng.below(5) as u8),
            generation: rng.byte(),
            address: (rng.next_u64() as u32).to_be_bytes(),
            port: rng.next_u64() as u16,
            mac: core::array::from_fn(|_| rng.byte()),
            weight: rng.next_u64() as u16,
            rtt_us: rng.next_u64() as u32,
        }
    }

    /// Addresses worth reading: every readable one and a few that read 0.
    const READABLE: [u16; 30] = [
        addr::ID,
        addr::VERSION,
        addr::STATUS,
        addr::MAC_HI,
        addr::MAC_LO,
        addr::ADDRESS,
        addr::TUNNEL_SRC,
        addr::SNAT_CFG,
        addr::RING_SIZE,
        addr::T_SYN,
        addr::T_EST,
        addr::T_CLOSE,
        addr::T_UDP,
        addr::TABLE_ADDR,
        addr::TABLE_DATA,
        addr::TABLE_DATA + 1,
        addr::TABLE_DATA + 2,
        addr::TABLE_DATA + 3,
        addr::TABLE_DATA + 4,
        addr::COUNTER_HI,
        addr::COUNTER_LO,
        addr::HASH_KEY + 3,
        addr::SNAT_POOL + 5,
        addr::CONTROL,
        addr::TABLE_WRITE,
        addr::COUNTER_SELECT,
        0x004,
        0x0FF,
        0x1010,
        0xFFFF,
    ];

    /// A random sequence of `RegisterWriter` calls, raw writes and reads, as bus operations.
    fn random_ops(rng: &mut Rng, calls: usize) -> Vec<Op> {
        let mut w = RegisterWriter::new(Recording::default());
        for _ in 0..calls {
            match rng.below(12) {
                0 => w.write_settings(&random_settings(rng)),
                1 | 2 => w.write_service(rng.below(16) as u8, &random_service(rng)),
                3 | 4 => w.write_backend(rng.below(256) as u16, &random_backend(rng)),
                5 => w.write_member(
                    rng.below(16) as u8,
                    rng.below(32) as u8,
                    if rng.chance(100) {
                        0xFFFF
                    } else {
                        rng.below(256) as u16
                    },
                ),
                6 => {
                    let n = 1 + rng.below(12) as usize;
                    let entries: Vec<u16> = (0..n).map(|_| rng.below(300) as u16).collect();
                    // Offsets near the 20-bit end cross into the next service's index.
                    let offset = if rng.chance(100) {
                        0xF_FFFF - rng.below(4) as u32
                    } else {
                        rng.below(4093) as u32
                    };
                    w.write_ring(rng.below(16) as u8, offset, &entries);
                }
                7 => w.commit(),
                8 => {
                    let b = w.bus();
                    b.write32(addr::COUNTER_SELECT, rng.below(0x1400) as u32);
                    b.read32(addr::COUNTER_HI);
                    b.read32(addr::COUNTER_LO);
                }
                9 => {
                    // Raw: a table address with any code (5..15 and 0 name no table), data, strobe.
                    let b = w.bus();
                    let v = rng.next_u64() as u32;
                    let v = if rng.chance(500) { v | 0x0FFF_FFFF } else { v };
                    b.write32(addr::TABLE_ADDR, v);
                    for i in 0..rng.below(6) as u16 {
                        b.write32(addr::TABLE_DATA + i, rng.next_u64() as u32);
                    }
                    for _ in 0..rng.below(3) {
                        b.write32(addr::TABLE_WRITE, rng.next_u64() as u32);
                    }
                }
                10 => {
                    // Raw write anywhere (CONTROL with bit 0 clear, unknown addresses, ...).
                    let a = READABLE[rng.below(READABLE.len() as u64) as usize];
                    let v = rng.next_u64() as u32;
                    if a != addr::COUNTER_SELECT {
                        w.bus().write32(a, v);
                    }
                }
                _ => {
                    for _ in 0..4 {
                        let a = READABLE[rng.below(READABLE.len() as u64) as usize];
                        w.bus().read32(a);
                    }
                }
            }
        }
        w.into_inner().0
    }

    /// The model's events and read values for `ops`.
    fn model_run(ops: &[Op]) -> (Vec<Event>, Vec<u32>) {
        let mut file = RegisterFile::new(Recorder::default());
        let mut reads = Vec::new();
        for op in ops {
            match *op {
                Op::Write(a, v) => file.write32(a, v),
                Op::Read(a) => reads.push(file.read32(a)),
            }
        }
        (std::mem::take(&mut file.target().0), reads)
    }

    fn v32(s: &Signal<Out, Bits<32>>) -> u32 {
        s.val().to_u64() as u32
    }

    /// The settings on the block's outputs.
    fn settings_of(r: &RegisterBlock) -> Settings {
        let hi = (r.mac_hi.val().to_u64() as u16).to_be_bytes();
        let lo = v32(&r.mac_lo).to_be_bytes();
        let keys = [
            &r.hash_key0,
            &r.hash_key1,
            &r.hash_key2,
            &r.hash_key3,
            &r.hash_key4,
            &r.hash_key5,
            &r.hash_key6,
            &r.hash_key7,
            &r.hash_key8,
            &r.hash_key9,
        ];
        let mut hash_key = [0u8; 40];
        for (i, k) in keys.iter().enumerate() {
            hash_key[4 * i..4 * i + 4].copy_from_slice(&v32(k).to_be_bytes());
        }
        let pool = [
            &r.snat_pool0,
            &r.snat_pool1,
            &r.snat_pool2,
            &r.snat_pool3,
            &r.snat_pool4,
            &r.snat_pool5,
            &r.snat_pool6,
            &r.snat_pool7,
        ];
        Settings {
            mac: [hi[0], hi[1], lo[0], lo[1], lo[2], lo[3]],
            address: Ipv4Addr::from(v32(&r.own_address)),
            tunnel_source: Ipv4Addr::from(v32(&r.tunnel_src)),
            snat_pool: pool.map(|p| Ipv4Addr::from(v32(p))),
            snat_count: r.snat_count.val().to_u64() as u8,
            snat_port_base: r.snat_port.val().to_u64() as u16,
            hash_key,
            ring_size: v32(&r.ring_size),
            tcp_syn_timeout: v32(&r.t_syn),
            tcp_established_timeout: v32(&r.t_est),
            tcp_closing_timeout: v32(&r.t_close),
            udp_timeout: v32(&r.t_udp),
        }
    }

    /// The events of this cycle's strobes (call after `settle`).
    fn strobes(r: &RegisterBlock, events: &mut Vec<Event>) {
        if r.table_write.val() {
            let words = [
                v32(&r.table_data0),
                v32(&r.table_data1),
                v32(&r.table_data2),
                v32(&r.table_data3),
                v32(&r.table_data4),
            ];
            let index = r.table_index.val().to_u64() as u32;
            events.push(match r.table_kind.val().to_u64() {
                1 => Event::Service(index as u8, decode_service(&words)),
                2 => Event::Backend(index as u16, decode_backend(&words)),
                3 => Event::Member((index >> 5) as u8, (index & 31) as u8, words[0] as u16),
                4 => Event::Ring((index >> 20) as u8, index & 0xF_FFFF, words[0] as u16),
                k => panic!("table_write with table code {k}"),
            });
        }
        if r.commit.val() {
            events.push(Event::Settings(settings_of(r)));
            events.push(Event::Commit);
        }
    }

    /// The counter source beside the block: the value at `counter_index`.
    fn drive_counter(hi: &mut Signal<In, Bits<32>>, lo: &mut Signal<In, Bits<32>>, index: u32) {
        let c = counter(index);
        hi.next = (c >> 32).into();
        lo.next = (c & 0xFFFF_FFFF).into();
    }

    /// Replays `ops` on the parallel bus; `traffic.idle_permille` inserts idle cycles.
    /// Returns the events, the read values and the cycles taken.
    fn bus_run(ops: &[Op], traffic: Traffic, seed: u64) -> (Vec<Event>, Vec<u32>, u64) {
        let mut rng = Rng::new(seed);
        let mut uut = RegisterBlock::new();
        uut.connect_all();
        let mut events = Vec::new();
        let mut reads = Vec::new();
        // Reads issued one and two cycles ago (the value shows `BUS_READ_LATENCY` later).
        let mut pending_read = [false; BUS_READ_LATENCY];
        let mut after_select = false;
        let mut cycles = 0u64;
        let mut next = 0;
        while next < ops.len() || pending_read.iter().any(|&p| p) {
            uut.bus_we.next = false;
            uut.bus_re.next = false;
            uut.commit_pending.next = false;
            let index = v32(&uut.counter_index);
            drive_counter(&mut uut.counter_hi, &mut uut.counter_lo, index);
            // Random bus address and data when idle must not matter.
            uut.bus_addr.next = (rng.next_u64() & 0xFFFF).into();
            uut.bus_wdata.next = (rng.next_u64() & 0xFFFF_FFFF).into();
            let mut issued = None;
            if next < ops.len() && !after_select && !rng.chance(traffic.idle_permille) {
                issued = Some(ops[next]);
                next += 1;
            }
            after_select = false;
            match issued {
                Some(Op::Write(a, v)) => {
                    uut.bus_we.next = true;
                    uut.bus_addr.next = u64::from(a).into();
                    uut.bus_wdata.next = u64::from(v).into();
                    // The latch lands one cycle after the select.
                    after_select = a == addr::COUNTER_SELECT;
                }
                Some(Op::Read(a)) => {
                    uut.bus_re.next = true;
                    uut.bus_addr.next = u64::from(a).into();
                }
                None => {}
            }
            settle(&mut uut);
            if pending_read[BUS_READ_LATENCY - 1] {
                reads.push(v32(&uut.bus_rdata));
            }
            strobes(&uut, &mut events);
            pending_read.rotate_right(1);
            pending_read[0] = matches!(issued, Some(Op::Read(_)));
            tick(&mut uut, |u| &mut u.clock);
            cycles += 1;
        }
        // Strobes of the last operation (two cycles after it).
        uut.bus_we.next = false;
        uut.bus_re.next = false;
        for _ in 0..3 {
            settle(&mut uut);
            strobes(&uut, &mut events);
            tick(&mut uut, |u| &mut u.clock);
        }
        (events, reads, cycles)
    }

    fn compare(name: &str, model: &(Vec<Event>, Vec<u32>), got: (&[Event], &[u32])) {
        assert_eq!(model.1.len(), got.1.len(), "{name}: number of reads");
        for (i, (m, g)) in model.1.iter().zip(got.1).enumerate() {
            assert_eq!(m, g, "{name}: read {i}");
        }
        for (i, (m, g)) in model.0.iter().zip(got.0).enumerate() {
            assert_eq!(m, g, "{name}: event {i}");
        }
        assert_eq!(
            model.0.len(),
            got.0.len(),
            "{name}: number of table writes/commits, last model {:?}, last block {:?}",
            model.0.last(),
            got.0.last()
        );
    }

    #[test]
    fn register_block_is_synthesizable() {
        let mut uut = RegisterBlock::new();
        uut.connect_all();
        crate::verilog::validate("register_block", &generate_verilog(&uut));
        let mut uut = SpiRegisters::default();
        uut.connect_all();
        crate::verilog::validate("spi_registers", &generate_verilog(&uut));
    }

    #[test]
    fn reset_values_match_the_model() {
        let ops: Vec<Op> = READABLE.iter().map(|&a| Op::Read(a)).collect();
        let model = model_run(&ops);
        let (events, reads, _) = bus_run(&ops, Traffic::SMOOTH, 1);
        compare("reset", &model, (&events, &reads));
        let mut uut = RegisterBlock::new();
        uut.connect_all();
        settle(&mut uut);
        assert_eq!(settings_of(&uut), Settings::DEFAULT);
    }

    #[test]
    fn parallel_bus_matches_the_register_file() {
        let mut rng = Rng::new(0x5e65_0001);
        for (round, traffic) in [Traffic::SMOOTH, Traffic::BUMPY].into_iter().enumerate() {
            let ops = random_ops(&mut rng, 4_000);
            let model = model_run(&ops);
            let (events, reads, cycles) = bus_run(&ops, traffic, 10 + round as u64);
            compare(&format!("round {round}"), &model, (&events, &reads));
            let count = |f: fn(&Event) -> bool| model.0.iter().filter(|e| f(e)).count();
            let counts = [
                count(|e| matches!(e, Event::Service(..))),
                count(|e| matches!(e, Event::Backend(..))),
                count(|e| matches!(e, Event::Member(..))),
                count(|e| matches!(e, Event::Ring(..))),
                count(|e| matches!(e, Event::Commit)),
            ];
            eprintln!(
                "regs round {round}: {} bus ops, {} reads, {:?} (service, backend, member, ring, commit) in {cycles} cycles",
                ops.len(),
                reads.len(),
                counts
            );
            assert!(counts.iter().all(|&c| c >= 200), "coverage {counts:?}");
        }
    }

    /// Bit-bangs SPI transactions (mode 0, MSB first) at a random SCK half period of
    /// `half..=half + 4` clocks and returns the MISO bytes of each. Each frame comes with
    /// the number of bits sent before chip select rises (56 for a whole transaction).
    fn spi_run(
        frames: &[([u8; spi::FRAME], usize)],
        half: u64,
        jitter: u64,
        seed: u64,
    ) -> (Vec<[u8; spi::FRAME]>, Vec<Event>) {
        let mut rng = Rng::new(seed);
        let mut uut = SpiRegisters::default();
        uut.connect_all();
        let mut events = Vec::new();
        let mut out = Vec::new();
        uut.cs_n.next = true;
        uut.sck.next = false;
        uut.mosi.next = false;
        uut.commit_pending.next = false;
        let step = |uut: &mut SpiRegisters, cycles: u64, events: &mut Vec<Event>| {
            for _ in 0..cycles {
                let index = v32(&uut.regs.counter_index);
                drive_counter(&mut uut.counter_hi, &mut uut.counter_lo, index);
                settle(uut);
                strobes(&uut.regs, events);
                tick(uut, |u| &mut u.clock);
            }
        };
        step(&mut uut, 4, &mut events);
        for (frame, length) in frames {
            uut.cs_n.next = false;
            let mut miso = [0u8; spi::FRAME];
            for (i, byte) in frame.iter().enumerate() {
                for bit in (0..8).rev() {
                    if i * 8 + 7 - bit >= *length {
                        break;
                    }
                    uut.mosi.next = (byte >> bit) & 1 != 0;
                    step(&mut uut, half + rng.below(jitter), &mut events);
                    // Rising edge: both sides sample.
                    uut.sck.next = true;
                    settle(&mut uut);
                    miso[i] = (miso[i] << 1) | u8::from(uut.miso.val());
                    step(&mut uut, half + rng.below(jitter), &mut events);
                    uut.sck.next = false;
                }
            }
            step(&mut uut, half, &mut events);
            uut.cs_n.next = true;
            step(&mut uut, half + rng.below(jitter), &mut events);
            out.push(miso);
        }
        step(&mut uut, 8, &mut events);
        (out, events)
    }

    #[test]
    fn spi_matches_the_register_file() {
        spi_check(8, 5);
        // The shortest SCK half period that works, without jitter.
        spi_check(SPI_HALF_PERIOD, 1);
    }

    /// The shortest SCK half period, in clocks, at which the slave works.
    const SPI_HALF_PERIOD: u64 = 4;

    fn spi_check(half: u64, jitter: u64) {
        let mut rng = Rng::new(0x5e65_0002);
        let mut ops = random_ops(&mut rng, 150);
        // Plus a read of every readable register at the end.
        ops.extend(READABLE.iter().map(|&a| Op::Read(a)));
        let model = model_run(&ops);
        let whole = spi::FRAME * 8;
        let mut frames: Vec<([u8; spi::FRAME], usize)> = ops
            .iter()
            .map(|op| match *op {
                Op::Write(a, v) => (spi::write(a, v), whole),
                Op::Read(a) => (spi::read(a), whole),
            })
            .collect();
        // Garbage that must do nothing: an unknown command, and a table strobe, a commit
        // and a settings write with chip select rising before the last bit.
        let garbage = [
            ([0x99, 0, 0x10, 1, 2, 3, 4], whole),
            (spi::write(addr::TABLE_WRITE, 1), whole - 1),
            (spi::write(addr::CONTROL, 1), 50),
            (spi::write(addr::MAC_LO, 0xDEAD_BEEF), 31),
        ];
        for (k, g) in garbage.iter().enumerate() {
            frames.insert(3 + 2 * k, *g);
        }
        let (mut miso, events) = spi_run(&frames, half, jitter, 21);
        for k in (0..garbage.len()).rev() {
            frames.remove(3 + 2 * k);
            miso.remove(3 + 2 * k);
        }
        let reads: Vec<u32> = ops
            .iter()
            .zip(&miso)
            .filter(|(op, _)| matches!(op, Op::Read(_)))
            .map(|(_, m)| spi::read_value(m))
            .collect();
        compare("spi", &model, (&events, &reads));
        eprintln!(
            "spi: {} transactions ({} reads, {} table writes/commits)",
            frames.len(),
            reads.len(),
            events.len()
        );
    }
}
