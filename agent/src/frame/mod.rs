//! The ground floor: what a source receives, before anything is decoded. A [`CanFrame`] from
//! a bus or a log, a [`NodeMessage`] from the serial tank node, a [`GpsFix`] from a GPS
//! receiver's NMEA sentences ([`nmea`]), and the [`Input`] that carries each to the
//! decoder; and the one reader of CAN logs in every form Vigil reads ([`log`]: candump,
//! Vector ASC, Saleae CSV), the candump writer ([`candump`]) and the reader of recorded
//! drives ([`recording`]) that every command uses.
//!
//! Nothing here decodes a signal or does I/O of its own: the readers are handed lines and
//! bytes by whoever opened the file.

pub mod log;
pub mod nmea;
pub mod recording;

pub use log::candump;

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

/// Where the bus named `bus` stands among `items` (`name_of` gives an item's bus name).
/// The log reader and the sources share one name per bus, so the pointer finds it without
/// comparing names (four buses compared byte by byte cost a call each a frame); a name
/// made apart but equal is found after.
pub(crate) fn find_bus<T>(
    items: &[T],
    bus: &Arc<str>,
    name_of: impl Fn(&T) -> &Arc<str>,
) -> Option<usize> {
    (items
        .iter()
        .position(|item| Arc::ptr_eq(name_of(item), bus)))
    .or_else(|| items.iter().position(|item| **name_of(item) == **bus))
}

/// A frame the bus broke off (an error frame), as a log recorded it: no data, but when, on
/// which bus, and the identifier it started with when the recorder saw one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusError {
    pub bus: Arc<str>,
    pub at: Timestamp,
    /// The broken frame's identifier, with whether it is extended.
    pub id: Option<(u32, bool)>,
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
    /// An error frame on a bus; counted, and watched by the intrusion monitor.
    BusError(BusError),
    /// A position fix from a GPS receiver.
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
            Input::BusError(e) => Some(e.at.mono),
        }
    }
}
