//! A single-port, read-first block RAM.
//!
//! rust-hdl's `RAM` widget has separate read and write ports. Used on one clock with the
//! same address (as the flow table does: read a set, write one of its ways back), yosys
//! cannot map the read-old-data behaviour onto the ECP5 block RAM's two ports and adds
//! bypass logic after the RAM output, a LUT on a path that already starts with the block
//! RAM's 5.8 ns clock-to-out. One port that reads and writes the same address is the
//! block RAM's native read-before-write mode: no bypass logic.
//!
//! Semantics (simulation and Verilog alike): at each rising edge, `read_data` takes the
//! word at `address` as it was *before* this edge's write, and if `write_enable` the word
//! becomes `write_data`. Contents start as given to [`SinglePortRam::new`] (unset words
//! are zero).

use std::collections::BTreeMap;

use rust_hdl::core::timing::TimingInfo;
use rust_hdl::prelude::*;

/// A `2^N`-word single-port read-first RAM of `D` words.
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
}

impl<D: Synth, const N: usize> SinglePortRam<D, N> {
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
            self.read_data.next = self._contents.get(&address).copied().unwrap_or_default();
            if self.write_enable.val() {
                self._contents.insert(address, self.write_data.val());
            }
        }
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        let init: Vec<String> = self
            ._contents
            .iter()
            .map(|(a, d)| format!("    mem[{}] = {};", a.verilog(), d.verilog()))
            .collect();
        let init = if init.is_empty() {
            String::new()
        } else {
            format!("initial begin\n{}\nend\n", init.join("\n"))
        };
        Verilog::Custom(format!(
            "\
reg [{top}:0] mem[{last}:0];

{init}
always @(posedge clock) begin
    if (write_enable) begin
        mem[address] <= write_data;
    end
    read_data <= mem[address];
end
",
            top = D::BITS - 1,
            last = (1usize << N) - 1,
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
