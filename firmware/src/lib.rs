//! Fulcrum's MCU firmware, hardware-independent.
//!
//! The cores are sans-IO and unit-tested on the host:
//! - [`health`]: when to check which backend and what results mean (HAProxy semantics);
//! - [`probe`]: the bytes of TCP, HTTP, Redis and Memcached checks and how answers are judged;
//! - [`appliance`]: the control plane — running config, health, tables written as deltas
//!   through the shared register map, events, status;
//! - [`ctrl_bus`]: the register bus over control frames (EtherType 0x88B5 on the FPGA's MCU
//!   port), for boards without an SPI link to the FPGA;
//! - [`session`]: one management connection (authentication, framing);
//! - [`persist`]: the saved-config record;
//! - [`events`]: the event log;
//! - [`l7`]: the HTTP/1.1 reverse proxy of L7 services;
//! - [`filter`] (feature `filters`): the WebAssembly filters L7 services run per request;
//! - [`vrrp`]: VRRPv3 (RFC 5798) elections between appliances (high availability);
//! - [`ha`]: VRRP and flow sync tied to the data path's change log (register map);
//! - [`flowsync`]: the reliable, authenticated replication of flow and persistence entries
//!   to the other appliances of an HA group.
//!
//! With the `net` feature, [`net`] runs them on embassy-net: the same code on the
//! NUCLEO-F767ZI (`boards/nucleo-f767zi`) and in the simulated board (`boards/sim`).

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Refusals carry the reply text inline (heapless): larger than clippy's default.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

#[cfg(feature = "filters")]
extern crate alloc;

#[macro_use]
mod fmt;

pub mod appliance;
pub mod ctrl_bus;
pub mod events;
#[cfg(feature = "filters")]
pub mod filter;
pub mod flowsync;
pub mod ha;
pub mod health;
pub mod l7;
pub mod persist;
pub mod probe;
pub mod session;
pub mod vrrp;

#[cfg(feature = "net")]
pub mod net;

pub use appliance::{Appliance, Buffers};
