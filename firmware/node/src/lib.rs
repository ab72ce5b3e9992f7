//! The tank sensor node: PT100 probes on MAX31865 converters in, framed `vigil-wire`
//! messages out on a UART.
//!
//! Two layers, as in the agent:
//!
//! - [`Telemetry`] is the pure part. It turns samples into [`vigil_wire::Message`]s,
//!   numbers them and schedules the heartbeat. No bus, no clock: tests drive it with
//!   plain numbers.
//! - [`Node`] owns the hardware through embedded-hal traits only: the converters (one
//!   [`max31865::Max31865`] per compartment), a UART ([`embedded_io::Write`]), a
//!   millisecond [`Clock`] and, for one-shot converters, a delay. One [`Node::step`]
//!   samples every channel once and writes the frames. The board binary decides when to
//!   step; nothing here knows the chip it runs on.
//!
//! # What a frame says about a channel
//!
//! A good reading is `fault = 0` and the temperature in `milli_c`. Anything else is a
//! fault frame with `milli_c = 0` and `fault` set to the MAX31865 fault status register,
//! whose bits D7..D2 are the chip's ([`max31865::FaultStatus`]). The chip never sets D1 and
//! D0, so the node uses them for what only it can see: [`FAULT_NO_ANSWER`] and
//! [`FAULT_UNEXPLAINED`], defined in `vigil_wire::node_fault` so the agent can name
//! them. The agent needs no change to treat these as faults: any non-zero `fault` is one.
//!
//! # Never
//!
//! The node never stops sampling because one channel failed, and never reports a number
//! for a channel whose reading it cannot vouch for.
#![no_std]
#![forbid(unsafe_code)]

mod node;
mod telemetry;

pub use node::{Clock, Node, sample};
pub use telemetry::{Sample, Telemetry, milli_celsius};

/// How often the node says it is alive, in milliseconds.
pub const HEARTBEAT_PERIOD_MS: u32 = 10_000;

/// Firmware version in heartbeats: `major << 8 | minor` of this crate's version.
pub const FIRMWARE_VERSION: u16 = 0x0001;

/// Fault bit D0 (unused by the chip): the converter did not answer. The SPI transfer
/// failed, or the data read back cannot come from a MAX31865 (code 0 without the fault
/// flag, which the chip always flags; or D1/D0 set in its status). The node reconfigures
/// the converter after reporting it, so a chip that browned out comes back.
pub const FAULT_NO_ANSWER: u8 = vigil_wire::node_fault::NO_ANSWER;

/// Fault bit D1 (unused by the chip): the RTD fault flag was set but the fault status
/// register read empty, so the reading is not trusted either.
pub const FAULT_UNEXPLAINED: u8 = vigil_wire::node_fault::UNEXPLAINED;
