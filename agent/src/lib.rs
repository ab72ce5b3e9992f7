//! Vigil: the edge agent for a fuel-tanker's gateway.
//!
//! One module per pipeline stage (see ARCHITECTURE.md for the map). `main.rs` only parses
//! the command line and calls into this library, so tests start the real agent in-process.

pub mod alarm;
pub mod batch;
pub mod config;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod fleet;
pub mod pipeline;
pub mod reading;
pub mod signals;
pub mod source;
pub mod spool;
pub mod systemd;
pub mod telemetry;
pub mod uplink;
pub mod view;
