//! Decode: turns what the sources receive (CAN frames, serial-node messages) into
//! [`Reading`]s.
//!
//! Owns the signal layouts and the bad-input counters. Never panics on any input and never
//! turns a J1939 error or not-available code into a number: such values become flagged
//! readings. Streams are keyed by (PGN, source address) through the reading's [`Origin`],
//! so one PGN from two controllers never mixes.

pub mod j1939;

use std::sync::Arc;

use vigil_wire::{Body, FrameError, Message};

use crate::reading::{Origin, Quality, Reading, Signal, Timestamp};
use crate::signals::{J1939_SIGNALS, J1939Signal, tank_temperature};
use crate::telemetry::Metrics;
use j1939::J1939Id;

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

/// What the sources hand to the decoder.
#[derive(Clone, Debug)]
pub enum Input {
    Can(CanFrame),
    Node(NodeMessage),
    /// A serial frame that failed its checks; decoded only to be counted.
    NodeError { port: Arc<str>, error: FrameError },
}

/// A decoder for one agent: the signal table it uses and the state sequence checks need.
pub struct Decoder {
    /// Each signal with its VSS name interned once, so readings share the allocation.
    signals: Vec<(J1939Signal, Signal)>,
    /// Tank compartment names, interned, indexed by compartment number.
    tanks: Vec<Signal>,
    /// Last sequence number seen per serial port, to count gaps.
    last_seq: Vec<(Arc<str>, u16)>,
    metrics: Arc<Metrics>,
}

impl Decoder {
    /// A decoder over the built-in J1939 table.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self::with_table(J1939_SIGNALS, metrics)
    }

    pub fn with_table(table: &[J1939Signal], metrics: Arc<Metrics>) -> Self {
        Decoder {
            signals: table.iter().map(|s| (*s, Signal::new(s.vss))).collect(),
            tanks: (0..=u8::MAX).map(tank_temperature).collect(),
            last_seq: Vec::new(),
            metrics,
        }
    }

    /// Decodes one input, appending its readings to `out`.
    pub fn decode(&mut self, input: &Input, out: &mut Vec<Reading>) {
        let before = out.len();
        match input {
            Input::Can(frame) => self.decode_can(frame, out),
            Input::Node(node) => self.decode_node(node, out),
            Input::NodeError { port, error } => self.count_node_error(port, *error),
        }
        Metrics::add(&self.metrics.readings_total, (out.len() - before) as u64);
    }

    fn decode_can(&mut self, frame: &CanFrame, out: &mut Vec<Reading>) {
        Metrics::inc(&self.metrics.can_frames_total);
        if !frame.extended {
            Metrics::inc(&self.metrics.can_frames_unknown_total);
            return;
        }
        let id = J1939Id::from_can_id(frame.id);
        let origin = Origin::Can {
            bus: frame.bus.clone(),
            source_address: id.source_address,
        };
        let mut known = false;
        let mut short = false;
        for (layout, signal) in self.signals.iter().filter(|(s, _)| s.pgn == id.pgn) {
            known = true;
            let Some(raw) = j1939::raw_value(layout, frame.payload()) else {
                short = true;
                continue;
            };
            out.push(match j1939::physical_value(layout, raw) {
                Ok(v) => Reading::good(signal.clone(), frame.at, v, origin.clone()),
                Err(q) => Reading::flagged(signal.clone(), frame.at, q, origin.clone()),
            });
        }
        if !known {
            Metrics::inc(&self.metrics.can_frames_unknown_total);
        }
        if short {
            Metrics::inc(&self.metrics.can_frames_bad_length_total);
        }
    }

    fn decode_node(&mut self, node: &NodeMessage, out: &mut Vec<Reading>) {
        Metrics::inc(&self.metrics.serial_messages_total);
        self.check_sequence(&node.port, node.message.seq);
        let Body::TankTemperature {
            channel,
            fault,
            milli_c,
        } = node.message.body
        else {
            return;
        };
        let signal = self.tanks[channel as usize].clone();
        let origin = Origin::Serial {
            port: node.port.clone(),
        };
        out.push(if fault == 0 {
            Reading::good(signal, node.at, milli_c as f64 / 1000.0, origin)
        } else {
            Reading::flagged(signal, node.at, Quality::Error, origin)
        });
    }

    fn check_sequence(&mut self, port: &Arc<str>, seq: u16) {
        match self.last_seq.iter_mut().find(|(p, _)| p == port) {
            Some((_, last)) => {
                let gap = seq.wrapping_sub(last.wrapping_add(1));
                // A gap of more than half the sequence space is a node restart, not loss.
                if gap != 0 && gap < u16::MAX / 2 {
                    Metrics::add(&self.metrics.serial_sequence_gaps_total, gap as u64);
                }
                *last = seq;
            }
            None => self.last_seq.push((port.clone(), seq)),
        }
    }

    fn count_node_error(&self, port: &str, error: FrameError) {
        let counter = match error {
            FrameError::Checksum => &self.metrics.serial_checksum_errors_total,
            FrameError::Version(_) | FrameError::Kind(_) => {
                &self.metrics.serial_protocol_errors_total
            }
            FrameError::TooLong | FrameError::Framing | FrameError::Length => {
                &self.metrics.serial_framing_errors_total
            }
        };
        Metrics::inc(counter);
        tracing::debug!(event = "serial_frame_rejected", port, %error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE};
    use std::time::Duration;

    fn at() -> Timestamp {
        Timestamp {
            wall_us: 1_635_188_455_020_850,
            mono: Duration::ZERO,
        }
    }

    fn frame(id: u32, data: &[u8]) -> CanFrame {
        let mut bytes = [0u8; 8];
        bytes[..data.len()].copy_from_slice(data);
        CanFrame {
            bus: Arc::from("can1"),
            id,
            extended: true,
            data: bytes,
            len: data.len() as u8,
            at: at(),
        }
    }

    fn decode(decoder: &mut Decoder, input: Input) -> Vec<Reading> {
        let mut out = Vec::new();
        decoder.decode(&input, &mut out);
        out
    }

    #[test]
    fn et1_from_the_real_log_decodes_and_flags_what_is_missing() {
        let mut d = Decoder::new(Arc::default());
        let readings = decode(&mut d, Input::Can(frame(0x18FEEE00, &[0x6F, 0x3F, 0x39, 0x2B, 0xFF, 0xFF, 0xFF, 0xFF])));
        let value = |name: &str| readings.iter().find(|r| r.signal.as_str() == name).unwrap().value();
        assert_eq!(value(COOLANT_TEMPERATURE), Some(71.0));
        assert_eq!(value(FUEL_TEMPERATURE), Some(23.0));
        assert!((value(OIL_TEMPERATURE).unwrap() - 72.78125).abs() < 1e-9);
        let na = decode(&mut d, Input::Can(frame(0x18FEEE00, &[0xFF, 0xFE, 0xFF, 0xFF])));
        assert_eq!(
            na.iter().map(|r| r.quality).collect::<Vec<_>>(),
            [Quality::NotAvailable, Quality::Error, Quality::NotAvailable]
        );
    }

    #[test]
    fn the_same_pgn_from_two_controllers_is_two_streams() {
        let mut d = Decoder::new(Arc::default());
        let a = decode(&mut d, Input::Can(frame(0x18FEEE00, &[0x6F; 8])));
        let b = decode(&mut d, Input::Can(frame(0x18FEEE17, &[0x6F; 8])));
        assert_ne!(a[0].origin, b[0].origin);
    }

    #[test]
    fn short_and_unknown_frames_are_counted_not_decoded() {
        let metrics = Arc::new(Metrics::default());
        let mut d = Decoder::new(metrics.clone());
        // ET1 cut to 3 bytes: coolant and fuel still decode, oil (bytes 2-3) cannot.
        assert_eq!(decode(&mut d, Input::Can(frame(0x18FEEE00, &[0x6F, 0x3F, 0x39]))).len(), 2);
        assert!(decode(&mut d, Input::Can(frame(0x18F00E00, &[0; 8]))).is_empty());
        let s = metrics.snapshot();
        assert_eq!((s.can_frames_bad_length_total, s.can_frames_unknown_total), (1, 1));
    }

    #[test]
    fn node_messages_become_tank_readings_and_gaps_are_counted() {
        let metrics = Arc::new(Metrics::default());
        let mut d = Decoder::new(metrics.clone());
        let port: Arc<str> = Arc::from("/dev/ttyUSB0");
        let msg = |seq, fault| {
            Input::Node(NodeMessage {
                port: port.clone(),
                message: Message {
                    seq,
                    node_ms: 10,
                    body: Body::TankTemperature {
                        channel: 3,
                        fault,
                        milli_c: 18_250,
                    },
                },
                at: at(),
            })
        };
        let r = decode(&mut d, msg(u16::MAX, 0));
        assert_eq!(r[0].signal, tank_temperature(3));
        assert_eq!(r[0].value(), Some(18.25));
        assert_eq!(decode(&mut d, msg(0, 0x40))[0].quality, Quality::Error);
        decode(&mut d, msg(4, 0));
        assert_eq!(metrics.snapshot().serial_sequence_gaps_total, 3);
    }
}
