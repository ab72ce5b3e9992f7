//! The serial wire protocol between the tank sensor node (firmware) and the agent.
//!
//! One crate, used by both sides by path, so the two can never disagree on a byte.
//! It is `no_std` and allocates nothing: the firmware encodes into a stack buffer and
//! the agent feeds received bytes one at a time into a [`FrameDecoder`].
//!
//! # On the wire
//!
//! Each message is one frame: the COBS encoding of the packet below, followed by a single
//! `0x00` delimiter. COBS guarantees no zero byte inside a frame, so a receiver that joins
//! mid-stream, or sees garbage, resynchronises at the next `0x00`.
//!
//! ```text
//! packet = version:u8  kind:u8  seq:u16 LE  node_ms:u32 LE  body  crc:u16 LE
//! ```
//!
//! - `version` is [`VERSION`]; a receiver rejects any other.
//! - `seq` counts messages from the node, wrapping; the receiver uses it to count gaps.
//! - `node_ms` is the node's uptime in milliseconds when the value was sampled.
//! - `crc` is CRC-16/CCITT-FALSE over every byte before it.
//! - `body` depends on `kind`:
//!   - `1` tank temperature: `channel:u8  fault:u8  milli_c:i32 LE` (`fault` is the MAX31865
//!     fault status register, `0` when the reading is good);
//!   - `2` heartbeat: `channels:u8  firmware:u16 LE`.
//!
//! # Never
//!
//! The decoder never panics on any input and never hands out a message whose checksum,
//! version, kind or length is wrong: it reports a [`FrameError`] and carries on.
#![no_std]
#![forbid(unsafe_code)]

mod cobs;
mod crc;

pub use crc::crc16_ccitt_false;

/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;

/// The frame delimiter on the wire.
pub const DELIMITER: u8 = 0x00;

/// The longest packet (before COBS) any message kind produces.
pub const MAX_PACKET: usize = HEADER_LEN + 6 + CRC_LEN;

/// The longest frame on the wire, COBS overhead and delimiter included.
pub const MAX_FRAME: usize = MAX_PACKET + MAX_PACKET / 254 + 2;

const HEADER_LEN: usize = 8;
const CRC_LEN: usize = 2;

const KIND_TANK_TEMPERATURE: u8 = 1;
const KIND_HEARTBEAT: u8 = 2;

/// Bits of [`Body::TankTemperature`]'s `fault` that the node sets itself. The MAX31865
/// fault status register uses D7..D2 and never sets D1 or D0, so the node reports what only
/// it can see there. Any non-zero `fault` means the reading is not to be trusted.
pub mod node_fault {
    /// D0: the converter did not answer (SPI error, or data no MAX31865 would send).
    pub const NO_ANSWER: u8 = 0x01;
    /// D1: the converter flagged a fault but its status register read empty.
    pub const UNEXPLAINED: u8 = 0x02;
}

/// One message from the sensor node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// Message counter, wrapping at `u16::MAX`.
    pub seq: u16,
    /// Node uptime in milliseconds when the body was sampled.
    pub node_ms: u32,
    pub body: Body,
}

/// What a message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A cargo-tank compartment temperature from one PT100 channel.
    TankTemperature {
        /// Compartment number, counted from 1 as the VSS overlay names them.
        channel: u8,
        /// MAX31865 fault status register; `0` means the value is good.
        fault: u8,
        /// Temperature in thousandths of a degree Celsius.
        milli_c: i32,
    },
    /// The node is alive; sent when it has nothing else to say.
    Heartbeat { channels: u8, firmware: u16 },
}

/// Why a frame was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes than [`MAX_FRAME`] arrived without a delimiter.
    TooLong,
    /// The COBS encoding is broken (a code byte points past the frame).
    Framing,
    /// The frame decoded to fewer or more bytes than its kind needs.
    Length,
    /// The checksum does not match.
    Checksum,
    /// The node speaks another protocol version.
    Version(u8),
    /// A message kind this version does not define.
    Kind(u8),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::TooLong => write!(f, "frame longer than {MAX_FRAME} bytes"),
            FrameError::Framing => write!(f, "broken COBS framing"),
            FrameError::Length => write!(f, "frame has the wrong length for its kind"),
            FrameError::Checksum => write!(f, "CRC mismatch"),
            FrameError::Version(v) => write!(f, "protocol version {v}, expected {VERSION}"),
            FrameError::Kind(k) => write!(f, "unknown message kind {k}"),
        }
    }
}

impl Message {
    /// Writes the packet (before COBS) into `out` and returns its length.
    fn write_packet(&self, out: &mut [u8; MAX_PACKET]) -> usize {
        let kind = match self.body {
            Body::TankTemperature { .. } => KIND_TANK_TEMPERATURE,
            Body::Heartbeat { .. } => KIND_HEARTBEAT,
        };
        out[0] = VERSION;
        out[1] = kind;
        out[2..4].copy_from_slice(&self.seq.to_le_bytes());
        out[4..8].copy_from_slice(&self.node_ms.to_le_bytes());
        let body_len = match self.body {
            Body::TankTemperature {
                channel,
                fault,
                milli_c,
            } => {
                out[8] = channel;
                out[9] = fault;
                out[10..14].copy_from_slice(&milli_c.to_le_bytes());
                6
            }
            Body::Heartbeat { channels, firmware } => {
                out[8] = channels;
                out[9..11].copy_from_slice(&firmware.to_le_bytes());
                3
            }
        };
        let end = HEADER_LEN + body_len;
        let crc = crc16_ccitt_false(&out[..end]);
        out[end..end + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
        end + CRC_LEN
    }

    /// Encodes the message as one frame, delimiter included, into `out`.
    ///
    /// Returns the number of bytes written. `out` must hold [`MAX_FRAME`] bytes.
    pub fn encode(&self, out: &mut [u8; MAX_FRAME]) -> usize {
        let mut packet = [0u8; MAX_PACKET];
        let len = self.write_packet(&mut packet);
        let n = cobs::encode(&packet[..len], &mut out[..]);
        out[n] = DELIMITER;
        n + 1
    }

    /// Parses a packet (COBS already removed, delimiter stripped).
    pub fn parse_packet(packet: &[u8]) -> Result<Message, FrameError> {
        if packet.len() < HEADER_LEN + CRC_LEN {
            return Err(FrameError::Length);
        }
        let (data, crc_bytes) = packet.split_at(packet.len() - CRC_LEN);
        let crc = u16::from_le_bytes([crc_bytes[0], crc_bytes[1]]);
        if crc16_ccitt_false(data) != crc {
            return Err(FrameError::Checksum);
        }
        if data[0] != VERSION {
            return Err(FrameError::Version(data[0]));
        }
        let seq = u16::from_le_bytes([data[2], data[3]]);
        let node_ms = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        let body = &data[HEADER_LEN..];
        let body = match (data[1], body.len()) {
            (KIND_TANK_TEMPERATURE, 6) => Body::TankTemperature {
                channel: body[0],
                fault: body[1],
                milli_c: i32::from_le_bytes([body[2], body[3], body[4], body[5]]),
            },
            (KIND_HEARTBEAT, 3) => Body::Heartbeat {
                channels: body[0],
                firmware: u16::from_le_bytes([body[1], body[2]]),
            },
            (KIND_TANK_TEMPERATURE | KIND_HEARTBEAT, _) => return Err(FrameError::Length),
            (kind, _) => return Err(FrameError::Kind(kind)),
        };
        Ok(Message { seq, node_ms, body })
    }
}

/// Reassembles frames from a byte stream, one byte at a time.
///
/// Garbage between frames, truncated frames and corrupted frames each end in exactly one
/// [`FrameError`] (or, for bytes that never reach a delimiter, in [`FrameError::TooLong`]),
/// after which decoding resumes at the next delimiter.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: [u8; MAX_FRAME],
    len: usize,
    /// Set after an over-long frame: drop bytes until the next delimiter.
    discarding: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub const fn new() -> Self {
        FrameDecoder {
            buf: [0; MAX_FRAME],
            len: 0,
            discarding: false,
        }
    }

    /// Feeds one byte; returns a result when the byte completes (or breaks) a frame.
    pub fn push(&mut self, byte: u8) -> Option<Result<Message, FrameError>> {
        if byte == DELIMITER {
            let was_discarding = core::mem::replace(&mut self.discarding, false);
            let len = core::mem::replace(&mut self.len, 0);
            if was_discarding || len == 0 {
                // An empty frame is an idle line or the tail of an over-long frame that
                // was already reported: nothing to say.
                return None;
            }
            let mut packet = [0u8; MAX_FRAME];
            return Some(
                cobs::decode(&self.buf[..len], &mut packet)
                    .ok_or(FrameError::Framing)
                    .and_then(|n| Message::parse_packet(&packet[..n])),
            );
        }
        if self.discarding {
            return None;
        }
        if self.len == MAX_FRAME {
            self.discarding = true;
            self.len = 0;
            return Some(Err(FrameError::TooLong));
        }
        self.buf[self.len] = byte;
        self.len += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tank(seq: u16, milli_c: i32) -> Message {
        Message {
            seq,
            node_ms: 1_234_567,
            body: Body::TankTemperature {
                channel: 2,
                fault: 0,
                milli_c,
            },
        }
    }

    fn feed(
        decoder: &mut FrameDecoder,
        bytes: &[u8],
    ) -> ([Option<Message>; 8], [Option<FrameError>; 8]) {
        let mut good = [None; 8];
        let mut bad = [None; 8];
        let (mut g, mut b) = (0, 0);
        for &byte in bytes {
            match decoder.push(byte) {
                Some(Ok(m)) => {
                    good[g] = Some(m);
                    g += 1;
                }
                Some(Err(e)) => {
                    bad[b] = Some(e);
                    b += 1;
                }
                None => {}
            }
        }
        (good, bad)
    }

    #[test]
    fn round_trips_every_kind() {
        let messages = [
            tank(0, -40_000),
            tank(u16::MAX, 850_000),
            Message {
                seq: 7,
                node_ms: 0,
                body: Body::Heartbeat {
                    channels: 4,
                    firmware: 0x0102,
                },
            },
        ];
        for message in messages {
            let mut frame = [0u8; MAX_FRAME];
            let n = message.encode(&mut frame);
            assert_eq!(frame[n - 1], DELIMITER);
            assert!(
                !frame[..n - 1].contains(&DELIMITER),
                "COBS leaves no zero inside"
            );
            let mut decoder = FrameDecoder::new();
            let (good, bad) = feed(&mut decoder, &frame[..n]);
            assert_eq!(good[0], Some(message));
            assert_eq!(bad[0], None);
        }
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error_and_the_next_frame_still_arrives() {
        let mut first = [0u8; MAX_FRAME];
        let n1 = tank(1, 21_500).encode(&mut first);
        first[5] ^= 0x10;
        let mut second = [0u8; MAX_FRAME];
        let n2 = tank(2, 21_600).encode(&mut second);
        let mut stream = [0u8; 2 * MAX_FRAME];
        stream[..n1].copy_from_slice(&first[..n1]);
        stream[n1..n1 + n2].copy_from_slice(&second[..n2]);
        let (good, bad) = feed(&mut FrameDecoder::new(), &stream[..n1 + n2]);
        assert!(matches!(
            bad[0],
            Some(FrameError::Checksum | FrameError::Framing)
        ));
        assert_eq!(good[0], Some(tank(2, 21_600)));
        assert_eq!(good[1], None);
    }

    #[test]
    fn garbage_longer_than_a_frame_is_reported_once() {
        let mut stream = [0xAAu8; 3 * MAX_FRAME];
        let mut frame = [0u8; MAX_FRAME];
        let n = tank(9, 1).encode(&mut frame);
        let start = stream.len() - n;
        stream[start - 1] = DELIMITER;
        stream[start..].copy_from_slice(&frame[..n]);
        let (good, bad) = feed(&mut FrameDecoder::new(), &stream);
        assert_eq!(bad[0], Some(FrameError::TooLong));
        assert_eq!(bad[1], None);
        assert_eq!(good[0], Some(tank(9, 1)));
    }

    #[test]
    fn wrong_version_and_kind_are_named() {
        let mut packet = [0u8; MAX_PACKET];
        let len = tank(3, 5).write_packet(&mut packet);
        packet[0] = 9;
        let crc = crc16_ccitt_false(&packet[..len - 2]);
        packet[len - 2..len].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            Message::parse_packet(&packet[..len]),
            Err(FrameError::Version(9))
        );
        packet[0] = VERSION;
        packet[1] = 77;
        let crc = crc16_ccitt_false(&packet[..len - 2]);
        packet[len - 2..len].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            Message::parse_packet(&packet[..len]),
            Err(FrameError::Kind(77))
        );
    }
}
