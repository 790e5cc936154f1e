//! The one stream interface every stage uses: AXI-stream signal names.
//!
//! A stage receives frames on an [`AxiStreamSlave`] (`s_axis`) and sends them on an
//! [`AxiStreamMaster`] (`m_axis`); the two are `#[join]`ed, so a top connects stages with
//! `self.a.m_axis.join(&mut self.b.s_axis)`. A beat moves when `tvalid & tready`; `tlast`
//! marks the last beat of a frame and `tuser` carries the MAC's "frame error" flag on
//! that beat. `tkeep` has one bit per data byte (for the 8-bit GMII/RGMII datapath it is
//! a single bit that is always 1; wider datapaths use it on the last beat).
//!
//! The data width `D` (bits) and keep width `K` (`D / 8`) are parameters; stable Rust
//! cannot compute `K` from `D`, so [`AxiStreamMaster::assert_widths`] checks it.

use rust_hdl::prelude::*;

/// The sending side of a stream (a stage's `m_axis`).
#[derive(LogicInterface, Default)]
#[join = "AxiStreamSlave"]
pub struct AxiStreamMaster<const D: usize, const K: usize> {
    /// Data, first byte of the frame in the most significant byte of a wide beat.
    pub tdata: Signal<Out, Bits<D>>,
    /// One bit per valid byte of `tdata`.
    pub tkeep: Signal<Out, Bits<K>>,
    /// The beat on `tdata` is valid.
    pub tvalid: Signal<Out, Bit>,
    /// The receiver takes the beat this cycle (if `tvalid`).
    pub tready: Signal<In, Bit>,
    /// Last beat of the frame.
    pub tlast: Signal<Out, Bit>,
    /// Frame error (valid with `tlast`).
    pub tuser: Signal<Out, Bit>,
}

/// The receiving side of a stream (a stage's `s_axis`).
#[derive(LogicInterface, Default)]
#[join = "AxiStreamMaster"]
pub struct AxiStreamSlave<const D: usize, const K: usize> {
    /// Data.
    pub tdata: Signal<In, Bits<D>>,
    /// One bit per valid byte of `tdata`.
    pub tkeep: Signal<In, Bits<K>>,
    /// The beat on `tdata` is valid.
    pub tvalid: Signal<In, Bit>,
    /// This side takes the beat this cycle (if `tvalid`).
    pub tready: Signal<Out, Bit>,
    /// Last beat of the frame.
    pub tlast: Signal<In, Bit>,
    /// Frame error (valid with `tlast`).
    pub tuser: Signal<In, Bit>,
}

impl<const D: usize, const K: usize> AxiStreamMaster<D, K> {
    /// Panics unless `D` is a whole number of bytes and `K = D / 8`.
    pub fn assert_widths() {
        assert!(
            D.is_multiple_of(8) && K == D / 8,
            "AXI stream of {D} data bits needs {} keep bits",
            D / 8
        );
    }
}

/// The 8-bit stream of the GMII/RGMII datapath at 125 MHz.
pub type ByteStreamMaster = AxiStreamMaster<8, 1>;
/// The 8-bit stream of the GMII/RGMII datapath at 125 MHz.
pub type ByteStreamSlave = AxiStreamSlave<8, 1>;
