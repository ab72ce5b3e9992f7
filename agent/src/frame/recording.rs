//! A recorded drive: a candump log and, beside it, the tank node's raw serial bytes
//! (`drive.log` and `drive.serial`, as `vigil simulate` writes them and a logger on the truck
//! would), merged into one stream of [`Input`]s in time order.
//!
//! The node stamps each message with its own millisecond clock, which starts with the log:
//! a message is placed at the log's first wall time plus its node time, and handed out
//! before the first frame that is not earlier. A serial frame that fails its checks becomes
//! an [`Input::NodeError`] where it stood, so it is counted exactly as a live port counts it.
//! Node messages after the log's last frame come out at [`Recording::finish`].
//!
//! Pure: the caller reads the files and hands over the companion's bytes and the log's lines
//! (bounded, through [`next_line`](super::log::next_line)).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vigil_wire::{FrameDecoder, FrameError, Message};

use super::log::{LogError, LogReader, Piece};
use super::{Input, NodeMessage};
use crate::reading::Timestamp;

/// The serial port name readings from a recorded node carry.
pub const RECORDED_NODE_PORT: &str = "recorded-node";

/// The companion serial file of a log: `drive.log` -> `drive.serial`.
pub fn serial_companion(log: &Path) -> PathBuf {
    log.with_extension("serial")
}

/// A log and its serial companion being read together.
#[derive(Debug)]
pub struct Recording {
    log: LogReader,
    /// The node's messages (by node time) and rejected frames, in the order they were sent.
    node: VecDeque<Result<Message, FrameError>>,
    /// Whether the companion held any message: then a log without frames is no error.
    any_node_message: bool,
    port: Arc<str>,
}

impl Recording {
    /// `name` is the log's name in messages; `serial` the companion's bytes (empty when
    /// there is none).
    pub fn new(name: impl Into<String>, serial: &[u8]) -> Recording {
        let mut decoder = FrameDecoder::new();
        let node: VecDeque<_> = serial.iter().filter_map(|&b| decoder.push(b)).collect();
        Recording {
            log: LogReader::new(name),
            any_node_message: node.iter().any(Result::is_ok),
            node,
            port: Arc::from(RECORDED_NODE_PORT),
        }
    }

    /// The inputs one line of the log gives, appended to `out`: the node messages due by
    /// its frame's time, then the frame. A line that is not a frame gives nothing (the log
    /// reader counted and logged it); the error is for a file that cannot be read at all.
    #[inline]
    pub fn piece(&mut self, piece: Piece<'_>, out: &mut Vec<Input>) -> Result<(), LogError> {
        let frame = self.log.piece(piece)?;
        self.push(frame, out);
        Ok(())
    }

    /// [`Recording::piece`] for a line in hand.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<Input>) -> Result<(), LogError> {
        let frame = self.log.line(line)?;
        self.push(frame, out);
        Ok(())
    }

    /// The end of the log: a frame its form held back, then the node messages left after
    /// the log's last frame. A log that gave no frame (and no node message) is an error.
    pub fn finish(&mut self, out: &mut Vec<Input>) -> Result<(), LogError> {
        let last = self.log.finish();
        self.push(last, out);
        self.node_until(None, out);
        match self.log.no_frames() {
            Some(error)
                if !self.any_node_message || matches!(error, LogError::Container { .. }) =>
            {
                Err(error)
            }
            _ => Ok(()),
        }
    }

    #[inline]
    fn push(&mut self, frame: Option<super::CanFrame>, out: &mut Vec<Input>) {
        if let Some(frame) = frame {
            if !self.node.is_empty() {
                self.node_until(Some(frame.at.mono), out);
            }
            out.push(Input::Can(frame));
        }
        if let Some(error) = self.log.take_bus_error() {
            self.node_until(Some(error.at.mono), out);
            out.push(Input::BusError(error));
        }
    }

    /// The log's reader: its form, lines read, frames, lines skipped by cause.
    pub fn log(&self) -> &LogReader {
        &self.log
    }

    /// Hands out node messages up to `until` on the log's monotonic clock (all when `None`).
    #[inline]
    fn node_until(&mut self, until: Option<Duration>, out: &mut Vec<Input>) {
        let origin = self.log.first_wall_us().unwrap_or(0);
        while let Some(next) = self.node.front() {
            let input = match next {
                Ok(message) => {
                    let mono = Duration::from_millis(u64::from(message.node_ms));
                    if until.is_some_and(|until| mono > until) {
                        return;
                    }
                    Input::Node(NodeMessage {
                        port: self.port.clone(),
                        message: *message,
                        at: Timestamp {
                            wall_us: origin + mono.as_micros() as i64,
                            mono,
                        },
                    })
                }
                Err(error) => Input::NodeError {
                    port: self.port.clone(),
                    error: *error,
                },
            };
            self.node.pop_front();
            out.push(input);
        }
    }
}

#[cfg(test)]
mod tests {
    use vigil_wire::Body;

    use super::*;

    fn node_bytes(messages: &[(u32, u16)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &(node_ms, seq) in messages {
            let message = Message {
                seq,
                node_ms,
                body: Body::Heartbeat {
                    channels: 3,
                    firmware: 1,
                },
            };
            let mut buf = [0u8; vigil_wire::MAX_FRAME];
            let n = message.encode(&mut buf);
            bytes.extend_from_slice(&buf[..n]);
        }
        bytes
    }

    fn kinds(inputs: &[Input]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| match i {
                Input::Can(f) => format!("can@{}", f.at.mono.as_millis()),
                Input::Node(n) => format!("node@{}", n.at.mono.as_millis()),
                Input::NodeError { .. } => "error".into(),
                Input::BusError(e) => format!("bus-error@{}", e.at.mono.as_millis()),
                Input::Gps(_) => "gps".into(),
            })
            .collect()
    }

    #[test]
    fn node_messages_are_placed_by_their_clock_between_the_frames() {
        let mut serial = node_bytes(&[(0, 1), (1200, 2)]);
        serial.extend_from_slice(&[0x55, 0x55, 0x00]); // a frame that fails its checks
        serial.extend(node_bytes(&[(5000, 3)]));
        let mut recording = Recording::new("drive.log", &serial);
        let mut out = Vec::new();
        for line in [
            "(10.000000) can0 18FEEE00#6F",
            "garbage",
            "(11.000000) can0 18FEEE00#6F",
            "(12.000000) can0 18FEEE00#6F",
        ] {
            recording.line(line.as_bytes(), &mut out).unwrap();
        }
        recording.finish(&mut out).unwrap();
        assert_eq!(
            kinds(&out),
            [
                "node@0",
                "can@0",
                "can@1000",
                "node@1200",
                "error",
                "can@2000",
                "node@5000"
            ]
        );
        let Input::Node(late) = &out[6] else { panic!() };
        assert_eq!(late.at.wall_us, 15_000_000, "log start + node time");
        assert_eq!(recording.log().counts().malformed, 1);
    }
}
