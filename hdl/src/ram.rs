//! A single-address block RAM with a registered output (two cycles of read latency).
//!
//! Why not rust-hdl's `RAM` widget: used on one clock with one address (as the flow
//! table does: read a set, write one of its ways back), yosys adds bypass logic after the
//! RAM for the read-old-data behaviour, and it never uses the ECP5 block RAM's output
//! register, so every read path starts with the RAM's 5.8 ns clock-to-out, which capped
//! the core at 114–118 MHz.
//!
//! Semantics (Rust simulation and behavioural Verilog alike): at each rising edge the
//! word at `address` is read into an internal register and the previous edge's word
//! moves to `read_data` (so `read_data` shows the word addressed two edges ago); then, if
//! `write_enable`, the word at `address` becomes `write_data`. A read in the same cycle as
//! a write to the same address returns the old word here but is **undefined** on the
//! FPGA; users must not rely on it (the flow table never does). Contents start as given to
//! [`SinglePortRam::new`] (unset words are zero).
//!
//! With the Verilog macro `FULCRUM_ECP5_BRAM` defined (`fulcrum-synth` defines it) and at
//! most 16,384 words, at least 1 Kibit (smaller ones are behavioural with `ram_style =
//! "distributed"`) and all-zero initial contents (others stay behavioural and yosys maps
//! them), the module instantiates ECP5 `DP16KD` blocks directly: 512 × 36
//! pseudo-dual-port mode up to 512 words, 1,024 × 18, 2,048 × 9 … beyond (write port A,
//! read port B, pin mapping as yosys's own `brams_map_16kd.v`), with `REGMODE_B =
//! "OUTREG"`: every read path starts at the output register's ~1 ns clock-to-out instead
//! of the array's 5.8 ns. That path is **not simulated**:
//! yosys ships no behavioural `DP16KD` model (its `cells_sim` entry is a parameter-only
//! stub), so it rests on mirroring yosys's own, proven pin mapping; the tests and the
//! iverilog co-simulation run the behavioural path.

use std::collections::BTreeMap;

use rust_hdl::core::timing::TimingInfo;
use rust_hdl::prelude::*;

/// A `2^N`-word RAM of `D` words with one address and a two-cycle registered read.
#[derive(LogicBlock, Default)]
pub struct SinglePortRam<D: Synth, const N: usize> {
    /// The clock of both reading and writing.
    pub clock: Signal<In, Clock>,
    /// The word to read, and to write when `write_enable`.
    pub address: Signal<In, Bits<N>>,
    /// The word at `address` before the last edge's write.
    pub read_data: Signal<Out, D>,
    /// Data to write.
    pub write_data: Signal<In, D>,
    /// Write `write_data` at this edge.
    pub write_enable: Signal<In, Bit>,
    _contents: BTreeMap<Bits<N>, D>,
    _stage: D,
    // Words in the Verilog memory (0: all 2^N); see `with_depth`.
    _depth: usize,
    // Always distributed RAM (see `distributed`).
    _distributed: bool,
}

impl<D: Synth, const N: usize> SinglePortRam<D, N> {
    /// An all-zero RAM of `depth` words (a power of two, at most `2^N`) behind an `N`-bit
    /// address: for a depth that depends on a const generic (`4 << A`), which Rust cannot
    /// put in the type. The Verilog memory has `depth` words, indexed by the address's
    /// low bits; the address must stay below `depth`.
    pub fn with_depth(depth: usize) -> Self {
        assert!(depth.is_power_of_two() && depth <= 1 << N);
        SinglePortRam {
            _depth: depth,
            ..Default::default()
        }
    }

    /// An all-zero RAM in distributed (LUT) RAM whatever its size: for a table that must
    /// not take a block RAM (the board image uses all 56).
    pub fn distributed() -> Self {
        SinglePortRam {
            _distributed: true,
            ..Default::default()
        }
    }

    /// A RAM holding `contents` (missing words are zero).
    pub fn new(contents: BTreeMap<Bits<N>, D>) -> Self {
        SinglePortRam {
            _contents: contents,
            ..Default::default()
        }
    }

    /// A RAM whose every word is zero, written out so the Verilog initialises it too.
    pub fn zeroed() -> Self {
        Self::new(
            (0..1u64 << N)
                .map(|a| (Bits::from(a), D::default()))
                .collect(),
        )
    }
}

impl<D: Synth, const N: usize> Logic for SinglePortRam<D, N> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let address = self.address.val();
            self.read_data.next = self._stage;
            self._stage = self._contents.get(&address).copied().unwrap_or_default();
            if self.write_enable.val() {
                self._contents.insert(address, self.write_data.val());
            }
        }
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        let init = initial_block(&self._contents);
        let depth = if self._depth == 0 {
            1usize << N
        } else {
            self._depth
        };
        let bits = depth.trailing_zeros() as usize;
        let index = if depth == 1 << N {
            "address".to_string()
        } else {
            format!("address[{}:0]", bits.max(1) - 1)
        };
        // Small RAMs (under 1 Kibit, e.g. 16 × 5 or 256 × 1) go to distributed RAM: a
        // DP16KD for each would spend a whole 18 Kibit block (the LFE5U-25F has 56); so do
        // those made by `distributed`.
        let small = depth * D::BITS < 1024 || self._distributed;
        let style = if small {
            "(* ram_style = \"distributed\" *) "
        } else {
            ""
        };
        let behavioural = format!(
            "\
{style}reg [{top}:0] mem[{last}:0];
reg [{top}:0] stage;

{init}
always @(posedge clock) begin
    if (write_enable) begin
        mem[{index}] <= write_data;
    end
    stage <= mem[{index}];
    read_data <= stage;
end
",
            top = D::BITS - 1,
            last = depth - 1,
        );
        // Initial contents other than zero: behavioural (yosys infers the block RAMs and
        // loads them; `ecp5_blocks` starts from zero).
        if bits > 14 || small || !all_zero(&self._contents) {
            return Verilog::Custom(behavioural);
        }
        Verilog::Custom(format!(
            "`ifdef FULCRUM_ECP5_BRAM\n{}\n`else\n{behavioural}`endif\n",
            ecp5_blocks(D::BITS, bits, "address", "address"),
        ))
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "single_port_ram".into(),
            clock: "clock".into(),
            inputs: vec!["address".into(), "write_data".into(), "write_enable".into()],
            outputs: vec!["read_data".into()],
        }]
    }
}

/// A `2^N`-word RAM of `D` words with a write port and a read port on one clock, and a
/// two-cycle registered read: at each rising edge the word at `read_address` is read into
/// an internal register and the previous edge's word moves to `read_data`; then, if
/// `write_enable`, the word at `write_address` becomes `write_data`. A read at the edge
/// of a write to the same address returns the old word here but is **undefined** on the
/// FPGA. Mapped as [`SinglePortRam`] (`DP16KD` with the output register under
/// `FULCRUM_ECP5_BRAM`, at most 512 words).
/// An 8,192 × 9 single-address RAM as four 2,048-word `SinglePortRam`s (one `DP16KD`
/// each, chosen by address bits 11–12), with the bank selection *after* their read
/// registers. One 8,192-word RAM put a four-way selection between the block RAMs' slow
/// outputs and the read register (a 9.1 ns path). Same two-cycle read as
/// `SinglePortRam`; `read_bank` names the bank of the word on `read_data`: the address's
/// bits 11–12 two edges ago (the current ones when the address holds).
#[derive(LogicBlock, Default)]
pub struct BankedRam9 {
    /// The clock of both reading and writing.
    pub clock: Signal<In, Clock>,
    /// The word to read, and to write when `write_enable`.
    pub address: Signal<In, Bits<13>>,
    /// The bank (address bits 11–12) of the word on `read_data`.
    pub read_bank: Signal<In, Bits<2>>,
    /// The word read from bank `read_bank`.
    pub read_data: Signal<Out, Bits<9>>,
    /// Data to write.
    pub write_data: Signal<In, Bits<9>>,
    /// Write `write_data` at this edge.
    pub write_enable: Signal<In, Bit>,
    bank0: SinglePortRam<Bits<9>, 11>,
    bank1: SinglePortRam<Bits<9>, 11>,
    bank2: SinglePortRam<Bits<9>, 11>,
    bank3: SinglePortRam<Bits<9>, 11>,
    low: Signal<Local, Bits<11>>,
    bank: Signal<Local, Bits<2>>,
}

impl Logic for BankedRam9 {
    #[hdl_gen]
    fn update(&mut self) {
        clock!(self, clock, bank0, bank1, bank2, bank3);
        self.low.next = self.address.val().get_bits::<11>(0);
        self.bank.next = self.address.val().get_bits::<2>(11);
        self.bank0.address.next = self.low.val();
        self.bank1.address.next = self.low.val();
        self.bank2.address.next = self.low.val();
        self.bank3.address.next = self.low.val();
        self.bank0.write_data.next = self.write_data.val();
        self.bank1.write_data.next = self.write_data.val();
        self.bank2.write_data.next = self.write_data.val();
        self.bank3.write_data.next = self.write_data.val();
        self.bank0.write_enable.next = self.write_enable.val() & (self.bank.val() == 0);
        self.bank1.write_enable.next = self.write_enable.val() & (self.bank.val() == 1);
        self.bank2.write_enable.next = self.write_enable.val() & (self.bank.val() == 2);
        self.bank3.write_enable.next = self.write_enable.val() & (self.bank.val() == 3);
        self.read_data.next = self.bank0.read_data.val();
        if self.read_bank.val() == 1 {
            self.read_data.next = self.bank1.read_data.val();
        }
        if self.read_bank.val() == 2 {
            self.read_data.next = self.bank2.read_data.val();
        }
        if self.read_bank.val() == 3 {
            self.read_data.next = self.bank3.read_data.val();
        }
    }
}

#[derive(LogicBlock, Default)]
pub struct DualPortRam<D: Synth, const N: usize> {
    /// The clock of both ports.
    pub clock: Signal<In, Clock>,
    /// The word to read.
    pub read_address: Signal<In, Bits<N>>,
    /// The word at `read_address` two edges ago.
    pub read_data: Signal<Out, D>,
    /// The word to write.
    pub write_address: Signal<In, Bits<N>>,
    /// Data to write.
    pub write_data: Signal<In, D>,
    /// Write `write_data` at this edge.
    pub write_enable: Signal<In, Bit>,
    _contents: BTreeMap<Bits<N>, D>,
    _stage: D,
    _distributed: bool,
}

impl<D: Synth, const N: usize> DualPortRam<D, N> {
    /// As [`DualPortRam::zeroed`], but in distributed RAM (LUTs, `ram_style =
    /// "distributed"`) instead of block RAM: for a table whose block RAM the device
    /// cannot spare.
    pub fn zeroed_distributed() -> Self {
        DualPortRam {
            _distributed: true,
            ..Self::zeroed()
        }
    }

    /// A RAM holding `contents` (missing words are zero).
    pub fn new(contents: BTreeMap<Bits<N>, D>) -> Self {
        DualPortRam {
            _contents: contents,
            ..Default::default()
        }
    }

    /// A RAM whose every word is zero, written out so the Verilog initialises it too.
    pub fn zeroed() -> Self {
        DualPortRam {
            _contents: (0..1u64 << N)
                .map(|a| (Bits::from(a), D::default()))
                .collect(),
            ..Default::default()
        }
    }
}

impl<D: Synth, const N: usize> Logic for DualPortRam<D, N> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.read_data.next = self._stage;
            self._stage = self
                ._contents
                .get(&self.read_address.val())
                .copied()
                .unwrap_or_default();
            if self.write_enable.val() {
                self._contents
                    .insert(self.write_address.val(), self.write_data.val());
            }
        }
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        let init = initial_block(&self._contents);
        let style = if self._distributed {
            "(* ram_style = \"distributed\" *) "
        } else {
            ""
        };
        let behavioural = format!(
            "\
{style}reg [{top}:0] mem[{last}:0];
reg [{top}:0] stage;

{init}
always @(posedge clock) begin
    if (write_enable) begin
        mem[write_address] <= write_data;
    end
    stage <= mem[read_address];
    read_data <= stage;
end
",
            top = D::BITS - 1,
            last = (1usize << N) - 1,
        );
        if N > 14 || self._distributed || !all_zero(&self._contents) {
            return Verilog::Custom(behavioural);
        }
        Verilog::Custom(format!(
            "`ifdef FULCRUM_ECP5_BRAM\n{}\n`else\n{behavioural}`endif\n",
            ecp5_blocks(D::BITS, N, "write_address", "read_address"),
        ))
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "dual_port_ram".into(),
            clock: "clock".into(),
            inputs: vec![
                "read_address".into(),
                "write_address".into(),
                "write_data".into(),
                "write_enable".into(),
            ],
            outputs: vec!["read_data".into()],
        }]
    }
}

/// Whether every word given is zero (what the `DP16KD` path starts with).
fn all_zero<const N: usize, D: Synth>(contents: &BTreeMap<Bits<N>, D>) -> bool {
    contents.values().all(|d| *d == D::default())
}

/// The `initial` block that loads a RAM's initial contents (empty when there are none).
fn initial_block<const N: usize, D: Synth>(contents: &BTreeMap<Bits<N>, D>) -> String {
    let init: Vec<String> = contents
        .iter()
        .map(|(a, d)| format!("    mem[{}] = {};", a.verilog(), d.verilog()))
        .collect();
    if init.is_empty() {
        String::new()
    } else {
        format!("initial begin\n{}\nend\n", init.join("\n"))
    }
}

/// `DP16KD` blocks with the read port's output register for `width` bits and
/// `address_bits` address bits (at most 14). Up to 512 words: 512 × 36 pseudo-dual-port
/// mode as yosys's `$__PDPW16KD_` mapping (port A writes, ADA0..3 the byte enables, the
/// word address on ADA5..13; port B reads, word address on ADB5..13; data bits 0..17 on
/// the A pins, 18..35 on the B pins). Deeper: 1,024 × 18 (byte enables ADA0..1, word
/// address on AD*4..13), 2,048 × 9 (AD*3..13), down to 16,384 × 1, as yosys's
/// `$__DP16KD_` mapping, port A writing on `DIA`, port B reading on `DOB`. Contents start
/// as zero.
fn ecp5_blocks(
    width: usize,
    address_bits: usize,
    write_address: &str,
    read_address: &str,
) -> String {
    // The block's data width for this depth: 512 × 36 (pseudo-dual-port, data on both
    // ports' pins), 1,024 × 18, 2,048 × 9, 4,096 × 4, 8,192 × 2, 16,384 × 1.
    let (per_block, lsb) = match address_bits {
        0..=9 => (36, 5),
        10 => (18, 4),
        11 => (9, 3),
        12 => (4, 2),
        13 => (2, 1),
        14 => (1, 0),
        _ => return "`error \"FULCRUM_ECP5_BRAM: more than 16,384 words is not mapped\"".into(),
    };
    let blocks = width.div_ceil(per_block);
    let mut v = String::new();
    v += &format!(
        "wire [{}:0] wide_in = write_data;\n",
        blocks * per_block - 1
    );
    v += &format!("wire [{}:0] wide_out;\n", blocks * per_block - 1);
    v += &format!("always @(*) read_data = wide_out[{}:0];\n", width - 1);
    for b in 0..blocks {
        let mut pins = vec![
            ".CLKA(clock)".to_string(),
            ".WEA(1'b1)".into(),
            ".CEA(write_enable)".into(),
            ".OCEA(1'b1)".into(),
            ".RSTA(1'b0)".into(),
            ".CLKB(clock)".into(),
            ".WEB(1'b0)".into(),
            ".CEB(1'b1)".into(),
            ".OCEB(1'b1)".into(),
            ".RSTB(1'b0)".into(),
        ];
        for cs in 0..3 {
            pins.push(format!(".CSA{cs}(1'b0)"));
            pins.push(format!(".CSB{cs}(1'b0)"));
        }
        // Address pins below the word address: byte enables in the ×36 (ADA0..3) and
        // ×18 (ADA0..1) modes, all set on the write port; zero otherwise.
        let byte_enables = match per_block {
            36 => 4,
            18 => 2,
            _ => 0,
        };
        for a in 0..14 {
            let (pa, pb) = if a < byte_enables {
                ("1'b1".to_string(), "1'b0".to_string())
            } else if a >= lsb && a - lsb < address_bits {
                (
                    format!("{write_address}[{}]", a - lsb),
                    format!("{read_address}[{}]", a - lsb),
                )
            } else {
                ("1'b0".to_string(), "1'b0".to_string())
            };
            pins.push(format!(".ADA{a}({pa})"));
            pins.push(format!(".ADB{a}({pb})"));
        }
        if per_block == 36 {
            for i in 0..18 {
                pins.push(format!(".DIA{i}(wide_in[{}])", b * 36 + i));
                pins.push(format!(".DIB{i}(wide_in[{}])", b * 36 + 18 + i));
                pins.push(format!(".DOA{i}(wide_out[{}])", b * 36 + i));
                pins.push(format!(".DOB{i}(wide_out[{}])", b * 36 + 18 + i));
            }
        } else {
            // True dual port at this width: A writes on DIA, B reads on DOB.
            for i in 0..per_block {
                pins.push(format!(".DIA{i}(wide_in[{}])", b * per_block + i));
                pins.push(format!(".DOB{i}(wide_out[{}])", b * per_block + i));
            }
        }
        v += &format!(
            "DP16KD #(.DATA_WIDTH_A({per_block}), .DATA_WIDTH_B({per_block}), .REGMODE_A(\"OUTREG\"), \
             .REGMODE_B(\"OUTREG\"), .RESETMODE(\"SYNC\"), .ASYNC_RESET_RELEASE(\"SYNC\"), \
             .CSDECODE_A(\"0b000\"), .CSDECODE_B(\"0b000\"), .CLKAMUX(\"CLKA\"), \
             .CLKBMUX(\"CLKB\"), .GSR(\"AUTO\")) block{b} ({});\n",
            pins.join(", ")
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Rng, settle, tick};

    /// Random writes and reads on both ports against an array with the documented
    /// semantics: `read_data` is the word at the read address two edges ago, read before
    /// that edge's write.
    fn dual_port_matches_an_array(mut uut: DualPortRam<Bits<32>, 8>, seed: u64) {
        uut.connect_all();
        let mut rng = Rng::new(seed);
        let mut array = [0u64; 256];
        let mut pipe = [0u64; 2];
        for cycle in 0..4000 {
            let (ra, wa) = (rng.below(256), rng.below(256));
            let we = rng.chance(400);
            let wd = rng.next_u64() & 0xFFFF_FFFF;
            uut.read_address.next = ra.into();
            uut.write_address.next = wa.into();
            uut.write_enable.next = we;
            uut.write_data.next = wd.into();
            settle(&mut uut);
            tick(&mut uut, |u| &mut u.clock);
            pipe = [array[ra as usize], pipe[0]];
            if we {
                array[wa as usize] = wd;
            }
            if cycle >= 2 {
                assert_eq!(
                    uut.read_data.val(),
                    Bits::<32>::from(pipe[1]),
                    "cycle {cycle}"
                );
            }
        }
    }

    #[test]
    fn dual_port_ram_reads_two_edges_late() {
        dual_port_matches_an_array(DualPortRam::zeroed(), 1);
        dual_port_matches_an_array(DualPortRam::zeroed_distributed(), 2);
    }

    #[test]
    fn verilog_follows_the_depth_and_the_style() {
        let deep = SinglePortRam::<Bits<48>, 12>::with_depth(2048).hdl();
        let Verilog::Custom(deep) = deep else {
            panic!("custom Verilog expected");
        };
        assert!(deep.contains("mem[2047:0]") && deep.contains("mem[address[10:0]]"));
        // 2,048 × 48 bits: six 2,048 × 9 blocks, the word address on AD*3..13.
        assert!(deep.contains("DATA_WIDTH_B(9)") && deep.contains("block5 ("));
        assert!(!deep.contains("block6 ("));
        assert!(deep.contains(".ADA3(address[0])") && deep.contains(".ADB13(address[10])"));
        assert!(deep.contains(".ADA0(1'b0)") && deep.contains(".DOB8(wide_out[53])"));
        // 1,024 × 70 bits: four 1,024 × 18 blocks, byte enables on ADA0..1.
        let Verilog::Custom(x18) = SinglePortRam::<Bits<70>, 10>::zeroed().hdl() else {
            panic!("custom Verilog expected");
        };
        assert!(x18.contains("DATA_WIDTH_A(18)") && x18.contains("block3 ("));
        assert!(!x18.contains("block4 ("));
        assert!(x18.contains(".ADA0(1'b1)") && x18.contains(".ADA1(1'b1)"));
        assert!(x18.contains(".ADA2(1'b0)") && x18.contains(".ADA4(address[0])"));
        assert!(x18.contains(".ADB13(address[9])") && x18.contains(".ADB1(1'b0)"));
        // Contents other than zero stay behavioural (the blocks start from zero).
        let ones: BTreeMap<Bits<10>, Bits<16>> = [(Bits::from(3u64), Bits::from(0xFFFFu64))].into();
        let Verilog::Custom(init) = DualPortRam::<Bits<16>, 10>::new(ones).hdl() else {
            panic!("custom Verilog expected");
        };
        assert!(!init.contains("DP16KD") && init.contains("initial begin"));
        let Verilog::Custom(blocks) = DualPortRam::<Bits<32>, 8>::zeroed().hdl() else {
            panic!("custom Verilog expected");
        };
        assert!(blocks.contains("DP16KD") && blocks.contains(".ADA5(write_address[0])"));
        assert!(blocks.contains(".ADB5(read_address[0])"));
        let Verilog::Custom(lut) = DualPortRam::<Bits<32>, 8>::zeroed_distributed().hdl() else {
            panic!("custom Verilog expected");
        };
        assert!(lut.contains("ram_style = \"distributed\"") && !lut.contains("DP16KD"));
    }
}
