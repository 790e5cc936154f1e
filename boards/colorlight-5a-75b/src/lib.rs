//! The Colorlight 5A-75B board image of Fulcrum, and its RGMII-level simulation.
//!
//! The board top is hand-written Verilog under `rtl/`, wrapping the portable core the way
//! verilog-ethernet's `fpga.v` wraps `fpga_core`:
//!
//! ```text
//! clk25 ─► board_pll ─► clk125 (core clock)
//! eth1 RGMII ─► rgmii_phy_if ─► eth_mac_rx ─► frame_fifo ═(RXC → clk125)═► core net_rx
//! core net_tx ─► frame_fifo ─► eth_mac_tx ─► rgmii_phy_if ─► eth1 RGMII      (port 1)
//! eth2 … the same for the MCU port: core mcu_rx / mcu_tx                     (port 2)
//! ```
//!
//! Why Verilog and not rust-hdl here: the board layer is mostly vendor primitives
//! (IDDRX1F, ODDRX1F, DELAYG, EHXPLLL) that rust-hdl cannot express or simulate (it has no
//! IDDR, and its simulator has no second clock edge or sub-cycle delay), plus two clock
//! domains per port whose crossing is exactly what must be simulated with independent
//! clocks. A rust-hdl module would still need Verilog wrappers and an iverilog testbench
//! for those, so the thin layer is written once in Verilog and simulated in iverilog at
//! the pin level; everything that carries the load balancer's logic stays in rust-hdl
//! (`fulcrum-hdl`) and is checked there against `fulcrum-model`.
//!
//! This crate is the host-side half: [`sim`] writes frames for the testbench, runs
//! iverilog on `rtl/` + `sim/` (or the board top under Verilator, driven at the pins by
//! `sim/board_main.cpp`: fast enough for the whole fast path as the core), and reads back
//! what left on each port's RGMII TX pins.
//! The bitstream is built by `build.sh` (see the README).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod sim;

/// The IEEE 802.3 frame check sequence of `frame` (the four bytes that follow it on the
/// wire, least significant byte first).
pub fn fcs(frame: &[u8]) -> [u8; 4] {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC)
        .checksum(frame)
        .to_le_bytes()
}

/// `frame` followed by its FCS: the bytes a PHY sends after the SFD.
pub fn with_fcs(frame: &[u8]) -> Vec<u8> {
    let mut wire = frame.to_vec();
    wire.extend_from_slice(&fcs(frame));
    wire
}

/// log2 of the flow-table sets of the image's fast path (`fulcrum_hdl::FLOW_SETS_LOG2`).
pub const FLOW_SETS_LOG2: usize = fulcrum_hdl::FLOW_SETS_LOG2;

/// The Verilog of the image's fast path, `fulcrum_hdl::pipeline::FastPath`, with its top
/// module renamed `fulcrum_fast_path` (rust-hdl calls it `top`). With `ecp5_bram` the
/// block RAMs are ECP5 DP16KD instances (synthesis only: yosys has no simulation model).
pub fn core_verilog(ecp5_bram: bool) -> String {
    let verilog = fulcrum_hdl::pipeline::fast_path_verilog::<FLOW_SETS_LOG2>()
        .replace("module top(", "module fulcrum_fast_path(");
    if ecp5_bram {
        format!("`define FULCRUM_ECP5_BRAM\n{verilog}")
    } else {
        verilog
    }
}
