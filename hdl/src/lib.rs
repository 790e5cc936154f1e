//! # fulcrum-hdl: Fulcrum's FPGA fast path in rust-hdl
//!
//! One module per stage of the reference model (`fulcrum-model`), each a
//! `#[derive(LogicBlock)]` with documented ports, checked bit for bit against the model
//! in direct-stepping testbenches (with and without idle cycles and back-pressure),
//! exported to Verilog and validated by yosys.
//!
//! | stage | module | model |
//! |---|---|---|
//! | stream interface | [`stream`] | — |
//! | test harness | [`sim`], [`vectors`], [`verilog`], [`cosim`] (iverilog), [`verilator`] (`FastPath` in Verilator) | — |
//! | parse | [`parser`] | `wire::parse` |
//! | block RAM | [`ram`] | — |
//! | frame FIFO (registered block-RAM output) | [`frame_fifo`] | — |
//! | look up | [`flow_table`] | `flow::SetAssociative` (lookup, insert, replacement) |
//! | rewrite (checksums) | [`checksum`] | `checksum::update16`, `update32`, `update_udp16`, `update_udp32` |
//! | rewrite (frames) | [`rewrite`] | `rewrite::set_macs`, `rewrite_endpoints`, `encapsulate`, `encapsulated_len` |
//! | hash | [`toeplitz`] | `hash::ToeplitzKey::hash_v4`, `hash` (source only) |
//! | registers (parallel bus, SPI) | [`regs`] | `regmap::RegisterFile`, `regmap::spi` |
//! | select (ring, round robin) | [`select`] | `select::SelectState::select`, `maglev::lookup` |
//! | the stages so far, wired | [`top`] | parse → hash → look up → create → checksum |
//! | the whole fast path (the board's top) | [`pipeline`] | `pipeline::Pipeline::process` (a subset so far) |
//!
//! rust-hdl 0.46 is pinned and no longer developed upstream: nothing outside this crate
//! should name it.
#![deny(unsafe_code)]
// No `#![warn(missing_docs)]`: rust-hdl's derives generate undocumented public methods
// (`join`, `link`, ...). Every port and public item written here is documented anyway.

/// log2 of the flow-table sets of the fast path as it is built for the board (4 ways
/// each: 2,048 flows) and as `fulcrum pcap/sim --engine hdl` simulate it: the one
/// geometry. 512 sets is what fits the LFE5U-25F's block RAM beside the rest of the
/// fast path (see docs/PERFORMANCE.md); configurations run on the fast path set
/// `appliance.flow_table = { sets = 512, ways = 4 }`.
pub const FLOW_SETS_LOG2: usize = 9;

pub mod checksum;
pub mod cosim;
pub mod fast_path_sim;
pub mod flow_table;
pub mod forward;
pub mod frame_fifo;
pub mod nat_return;
pub mod parser;
pub mod pipeline;
pub mod ram;
pub mod regs;
pub mod rewrite;
pub mod select;
pub mod sim;
pub mod stream;
pub mod toeplitz;
pub mod top;
pub mod vectors;
pub mod verilator;
pub mod verilog;
