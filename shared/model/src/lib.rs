//! # fulcrum-model: the reference model of Fulcrum's L4 pipeline
//!
//! This crate is the specification the FPGA fast path must match bit for bit, and the
//! code the MCU firmware and the host agent share. It is `no_std`, allocation-free in the
//! data path and sans-IO: every entry point takes `now` and bytes, and returns verdicts,
//! frames and deadlines. Nothing here names a chip, an FPGA part, a clock or a socket.
//!
//! One module per pipeline stage, in the order a frame meets them:
//!
//! | stage | module | what it decides |
//! |---|---|---|
//! | parse | [`wire`] | Ethernet / 802.1Q / IPv4 / TCP / UDP view of the frame, or a verdict for what is not |
//! | hash | [`hash`] | the Toeplitz (RSS) hash of the flow |
//! | look up | [`flow`] | the set-associative flow table and the persistence table |
//! | select | [`select`], [`maglev`] | the backend of a new flow |
//! | rewrite | [`rewrite`], [`checksum`] | NAT, full NAT, DSR, IP-in-IP and GUE |
//! | count | [`counters`] | per service, per backend, per reason |
//!
//! [`pipeline`] composes them into `process(now, frame, port)`. [`tables`] holds what the
//! FPGA holds (service, backend and ring tables), [`compile`] turns a [`config`] into
//! those tables, and [`regmap`] is the register map through which the MCU writes them.
//! [`ha`] is the high-availability part of the config schema; a backup appliance writes the
//! flows it receives from the master with [`pipeline::Pipeline::install_flow`].
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod changelog;
pub mod checksum;
pub mod compile;
pub mod config;
pub mod counters;
pub mod ctrl_frame;
pub mod flow;
pub mod ha;
pub mod hash;
pub mod l7;
pub mod maglev;
pub mod pipeline;
pub mod regmap;
pub mod rewrite;
pub mod select;
pub mod tables;
pub mod wire;
