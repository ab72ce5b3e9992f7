//! Vigil's agent: everything that runs on a fuel-tanker's gateway, and nothing else.
//!
//! One module per pipeline stage, each owning its config (see ARCHITECTURE.md for the map).
//! The simulated truck (`vigil-sim`), the engineer's tools (`vigil-lab`) and the command line
//! with its file-level config (`vigil`) are other crates that use this one; this crate uses
//! none of them, so the compiler keeps the truck's code free of them.

pub mod alarm;
pub mod batch;
pub mod calendar;
pub mod decode;
pub mod detect;
pub mod duration;
pub mod frame;
pub mod pipeline;
pub mod reading;
pub mod security;
pub mod signals;
pub mod source;
pub mod spool;
pub(crate) mod systemd;
pub mod telemetry;
pub mod uplink;
pub mod vehicle;
