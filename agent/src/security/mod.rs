//! The bus's own watch: a J1939 intrusion monitor.
//!
//! A gateway on a tanker's bus is the only thing that can see an attack on it (AWS IoT
//! Device Defender's Detect service is closed to new customers, and it never sees the bus).
//! [`Monitor`] is a pure state machine fed every CAN frame the agent receives, by the
//! decode stage, with the transport-protocol refusals the decoder made. It keeps, per bus:
//!
//! - the address table from address claims (PGN 60928): NAME <-> source address;
//! - which senders send each data parameter group, and how fast each identifier comes,
//!   learned over the bus's first [`SecurityConfig::learn`] (and a group's or an
//!   identifier's own first `learn` when it appears later, as on-request groups do);
//! - per second: frames, never-seen identifiers, requests (PGN 59904) and TP.CM frames.
//!
//! Its findings are [`SecurityEvent`]s: counted, published on `dt/vigil/{thing}/security`,
//! written by `vigil replay` beside the alerts and shown by `vigil fleet watch`. They never
//! sound the driver's buzzer: an attack that hides a safety signal shows on the safety side
//! as that signal's dropout or sender conflict, which do.
//!
//! # Invariants
//!
//! - Bounded whatever the bus sends: at most [`MAX_BUSES`] buses, 2,048 identifiers and
//!   2,048 parameter groups each; past a bound, what is new is still counted, not kept.
//! - Time is the frames' monotonic clock; nothing here reads a clock of its own.
//! - One finding of one kind about one sender (or identifier) is reported at most once per
//!   [`SecurityConfig::report_every`]; the next report says how many it covered.
//! - A healthy bus gives none: every figure below was checked on the real truck logs in
//!   `tests/data/` (`lab/tests/real_logs.rs`).

mod bus;
mod config;
mod event;
mod monitor;

pub use config::SecurityConfig;
pub use event::{SecurityEvent, SecurityKind};
pub use monitor::{MAX_BUSES, Monitor};

#[cfg(test)]
mod tests;
