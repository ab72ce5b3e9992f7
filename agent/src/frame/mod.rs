//! The ground floor: what a source receives, before anything is decoded. A [`CanFrame`] from
//! a bus or a log, a [`NodeMessage`] from the serial tank node, a [`GpsFix`] from a GPS
//! receiver's NMEA sentences ([`nmea`]), and the [`Input`] that carries each to the decoder; and the one reader and writer of candump logs
//! ([`candump`]) and of recorded drives ([`recording`]) that every command uses.
//!
//! Nothing here decodes a signal or does I/O of its own: the readers are handed lines and
//! bytes by whoever opened the file.

pub mod candump;
pub mod nmea;
pub mod recording;

use std::sync::Arc;

use vigil_wire::{FrameError, Message};

use crate::reading::Timestamp;

/// One classic CAN frame as a source received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanFrame {
    /// The interface it arrived on (`can0`), or the channel a log names.
    pub bus: Arc<str>,
    /// The identifier: 29 bits when `extended`, else 11.
    pub id: u32,
    pub extended: bool,
    /// Payload; only the first `len` bytes are meaningful.
    pub data: [u8; 8],
    pub len: u8,
    pub at: Timestamp,
}

impl CanFrame {
    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len.min(8) as usize]
    }
}

/// One message from the serial tank sensor node, with when the agent received it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeMessage {
    pub port: Arc<str>,
    pub message: Message,
    pub at: Timestamp,
}

/// One position fix from a GPS receiver on a serial port, with when the agent received it.
#[derive(Clone, Debug, PartialEq)]
pub struct GpsFix {
    pub port: Arc<str>,
    pub fix: nmea::Fix,
    pub at: Timestamp,
}

/// What the sources hand to the decoder.
#[derive(Clone, Debug)]
pub enum Input {
    Can(CanFrame),
    Node(NodeMessage),
    /// A serial frame that failed its checks; decoded only to be counted.
    NodeError {
        port: Arc<str>,
        error: FrameError,
    },
    Gps(GpsFix),
}

impl Input {
    /// When the input was received, on the monotonic clock (an error has no time).
    pub fn mono(&self) -> Option<std::time::Duration> {
        match self {
            Input::Can(frame) => Some(frame.at.mono),
            Input::Node(node) => Some(node.at.mono),
            Input::Gps(gps) => Some(gps.at.mono),
            Input::NodeError { .. } => None,
        }
    }
}
