//! # fulcrum-host: the host side of Fulcrum
//!
//! The library behind the `fulcrum` command line tool. The binary is a thin clap layer;
//! everything it does is here so that tests and other tools can call it directly.
//!
//! - [`config_file`]: loads a TOML configuration into `fulcrum_model::config::Config`,
//!   with every problem located by file, line and column.
//! - [`client`]: the management protocol to an appliance, over TCP or serial.
//! - [`engine`]: a configuration compiled and run frame by frame (trace, replay).
//! - [`filters`]: WebAssembly filters on an appliance (upload, list, remove).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config_file;
pub mod engine;
pub mod filters;
pub mod operate;
pub mod target;
