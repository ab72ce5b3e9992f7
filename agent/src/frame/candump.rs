//! can-utils' `candump` logs, one frame a line, in both of candump's forms: the log file
//! (`candump -l`: `(SECONDS.MICROS) IFACE ID#DATA`) and its printed output with timestamps
//! (`candump -ta`/`-td`/`-tz`: `(SECONDS.MICROS)  IFACE  ID   [LEN]  B0 B1 ...`, the form
//! most public truck logs are kept in). This is the one parser and the one writer of them:
//! the replay source, `vigil replay`, `vigil decode` and the simulator's recordings all go
//! through [`LogReader`] or [`format_line`], which writes the log-file form.
//!
//! Eight hex digits of ID mean an extended (29-bit) frame, three a standard one. Remote
//! frames (`#R`) and CAN FD (`##`) are not carried by J1939 and are rejected by name.

use std::sync::Arc;
use std::time::Duration;

use super::CanFrame;
use crate::reading::Timestamp;

/// Lines that are not frames logged at `warn`, per log, before the rest go to `debug`.
const LOUD_MALFORMED_LINES: u64 = 10;

/// Why a log line is not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CandumpError {
    #[error(
        "expected `(SECONDS.MICROS) IFACE ID#DATA` or `(SECONDS.MICROS) IFACE ID [LEN] BYTES`, found {0:?}"
    )]
    Shape(String),
    #[error("bad timestamp {0:?}: expected `(SECONDS.MICROS)`")]
    Timestamp(String),
    #[error("bad CAN id {0:?}: expected 3 or 8 hex digits")]
    Id(String),
    #[error("bad data {0:?}: expected 0 to 8 bytes as hex pairs")]
    Data(String),
    #[error("remote and CAN FD frames are not J1939: {0:?}")]
    Unsupported(String),
}

/// Writes one frame as a `candump -l` line (without the newline).
pub fn format_line(frame: &CanFrame) -> String {
    use std::fmt::Write;
    let secs = frame.at.wall_us.div_euclid(1_000_000);
    let micros = frame.at.wall_us.rem_euclid(1_000_000);
    let mut line = if frame.extended {
        format!("({secs}.{micros:06}) {} {:08X}#", frame.bus, frame.id)
    } else {
        format!("({secs}.{micros:06}) {} {:03X}#", frame.bus, frame.id)
    };
    for byte in frame.payload() {
        let _ = write!(line, "{byte:02X}");
    }
    line
}

/// Parses one line of a candump log, in either form. `first_wall_us` is the log's first
/// timestamp: the monotonic time of a replayed frame is its distance from the start of the
/// log.
pub fn parse_line(line: &str, first_wall_us: Option<i64>) -> Result<CanFrame, CandumpError> {
    let shape = || CandumpError::Shape(line.to_owned());
    let mut parts = line.split_ascii_whitespace();
    let (stamp, bus, body) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(b), Some(f)) => (s, b, f),
        _ => return Err(shape()),
    };
    let wall_us =
        parse_timestamp(stamp).ok_or_else(|| CandumpError::Timestamp(stamp.to_owned()))?;
    let (id_hex, data) = match body.split_once('#') {
        // The log-file form: `ID#DATA`, nothing after it.
        Some((id_hex, data_hex)) => {
            if parts.next().is_some() {
                return Err(shape());
            }
            if data_hex.starts_with('#') || data_hex.starts_with('R') {
                return Err(CandumpError::Unsupported(body.to_owned()));
            }
            (id_hex, Bytes::Packed(data_hex))
        }
        // The printed form: `ID [LEN] B0 B1 ...`.
        None => {
            let len = parts
                .next()
                .and_then(|l| l.strip_prefix('[')?.strip_suffix(']'))
                .ok_or_else(shape)?;
            let bytes: Vec<&str> = parts.collect();
            if bytes.first() == Some(&"remote") {
                return Err(CandumpError::Unsupported(line.trim().to_owned()));
            }
            if len.parse::<usize>().ok() != Some(bytes.len()) {
                return Err(CandumpError::Data(bytes.join(" ")));
            }
            (body, Bytes::Spaced(bytes))
        }
    };
    let extended = match id_hex.len() {
        8 => true,
        3 => false,
        _ => return Err(CandumpError::Id(id_hex.to_owned())),
    };
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| CandumpError::Id(id_hex.to_owned()))?;
    if (extended && id > 0x1FFF_FFFF) || (!extended && id > 0x7FF) {
        return Err(CandumpError::Id(id_hex.to_owned()));
    }
    let (data, len) = data.decode()?;
    let since_start = wall_us - first_wall_us.unwrap_or(wall_us);
    Ok(CanFrame {
        bus: Arc::from(bus),
        id,
        extended,
        data,
        len,
        at: Timestamp {
            wall_us,
            mono: Duration::from_micros(since_start.max(0) as u64),
        },
    })
}

/// A frame's data as a line writes it.
enum Bytes<'a> {
    /// Hex pairs run together (`6F3F392B`).
    Packed(&'a str),
    /// One hex pair a word (`6F 3F 39 2B`).
    Spaced(Vec<&'a str>),
}

impl Bytes<'_> {
    fn decode(&self) -> Result<([u8; 8], u8), CandumpError> {
        let mut data = [0u8; 8];
        let pairs: Vec<&str> = match self {
            Bytes::Packed(hex) => {
                let bad = || CandumpError::Data((*hex).to_owned());
                if hex.len() % 2 != 0 || hex.len() > 16 || !hex.is_ascii() {
                    return Err(bad());
                }
                (0..hex.len()).step_by(2).map(|i| &hex[i..i + 2]).collect()
            }
            Bytes::Spaced(words) => words.clone(),
        };
        let bad = || {
            CandumpError::Data(match self {
                Bytes::Packed(hex) => (*hex).to_owned(),
                Bytes::Spaced(words) => words.join(" "),
            })
        };
        if pairs.len() > 8 {
            return Err(bad());
        }
        for (i, pair) in pairs.iter().enumerate() {
            if pair.len() != 2 {
                return Err(bad());
            }
            data[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok((data, pairs.len() as u8))
    }
}

/// Reads a log line by line, as every command does: blank lines are skipped, a line that is
/// not a frame is counted and logged with its line number (the first few at `warn`, the
/// rest at `debug`) and skipped, and each frame's monotonic time is its distance from the
/// log's first frame. The caller reads the lines; this only judges them.
#[derive(Debug)]
pub struct LogReader {
    /// The log's name in messages (its path).
    name: String,
    lines: u64,
    malformed: u64,
    first_wall_us: Option<i64>,
}

impl LogReader {
    pub fn new(name: impl Into<String>) -> LogReader {
        LogReader {
            name: name.into(),
            lines: 0,
            malformed: 0,
            first_wall_us: None,
        }
    }

    /// The next line of the log, without its line ending: `Ok(Some(frame))`, `Ok(None)` for
    /// a blank line, or the reason it is not a frame (already counted and logged).
    pub fn line(&mut self, line: &str) -> Result<Option<CanFrame>, CandumpError> {
        self.lines += 1;
        if line.trim().is_empty() {
            return Ok(None);
        }
        match parse_line(line, self.first_wall_us) {
            Ok(frame) => {
                self.first_wall_us.get_or_insert(frame.at.wall_us);
                Ok(Some(frame))
            }
            Err(error) => {
                self.malformed += 1;
                let (log, line) = (&self.name, self.lines);
                if self.malformed <= LOUD_MALFORMED_LINES {
                    tracing::warn!(event = "log_line_malformed", log, line, %error);
                } else {
                    tracing::debug!(event = "log_line_malformed", log, line, %error);
                }
                Err(error)
            }
        }
    }

    /// Lines read so far, blank ones included.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Lines that were not frames.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The wall time of the log's first frame: where its monotonic clock starts.
    pub fn first_wall_us(&self) -> Option<i64> {
        self.first_wall_us
    }
}

fn parse_timestamp(stamp: &str) -> Option<i64> {
    let inner = stamp.strip_prefix('(')?.strip_suffix(')')?;
    let (secs, micros) = inner.split_once('.')?;
    if micros.len() != 6 {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let micros: i64 = micros.parse().ok()?;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_a_line_of_the_real_log_unchanged() {
        let line = "(1635188455.020850) can1 18F00E00#821639C4FFFFFFFF";
        let frame = parse_line(line, Some(1_635_188_455_000_000)).unwrap();
        assert!(frame.extended);
        assert_eq!(frame.id, 0x18F00E00);
        assert_eq!(
            frame.payload(),
            [0x82, 0x16, 0x39, 0xC4, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(frame.at.mono, Duration::from_micros(20_850));
        assert_eq!(format_line(&frame), line);
    }

    #[test]
    fn the_reader_skips_blank_lines_counts_bad_ones_and_times_frames_from_the_first() {
        let mut reader = LogReader::new("test.log");
        let lines = [
            "(100.000000) can0 18FEEE00#6F",
            "",
            "garbage",
            "(101.500000) can0 18FEEE00#70",
        ];
        let results: Vec<_> = lines.iter().map(|l| reader.line(l)).collect();
        assert!(matches!(&results[0], Ok(Some(f)) if f.at.mono == Duration::ZERO));
        assert_eq!(results[1], Ok(None));
        assert!(matches!(results[2], Err(CandumpError::Shape(_))));
        assert!(matches!(&results[3], Ok(Some(f)) if f.at.mono == Duration::from_millis(1500)));
        assert_eq!((reader.lines(), reader.malformed()), (4, 1));
        assert_eq!(reader.first_wall_us(), Some(100_000_000));
    }

    #[test]
    fn reads_candumps_printed_form_as_public_truck_logs_keep_it() {
        // SystemsCyber/Truck_Sentry's datasets/normal.log (MIT), relative timestamps.
        let line = " (000.005001)  can0  18FEDF00   [8]  8A A0 28 7D 7D FF FF F5";
        let frame = parse_line(line, Some(0)).unwrap();
        assert_eq!(
            (frame.id, frame.extended, &*frame.bus),
            (0x18FEDF00, true, "can0")
        );
        assert_eq!(
            frame.payload(),
            [0x8A, 0xA0, 0x28, 0x7D, 0x7D, 0xFF, 0xFF, 0xF5]
        );
        assert_eq!(frame.at.mono, Duration::from_micros(5_001));
        // The same frame in the log-file form parses to the same frame.
        let logged = format_line(&frame);
        assert_eq!(logged, "(0.005001) can0 18FEDF00#8AA0287D7DFFFFF5");
        assert_eq!(parse_line(&logged, Some(0)).unwrap(), frame);
        // Short frames, standard ids, and what is not data.
        let short = parse_line("(1.000000) can1 123 [2] 01 ff", None).unwrap();
        assert_eq!(
            (short.id, short.extended, short.payload()),
            (0x123, false, &[1, 0xFF][..])
        );
        let cases = [
            (
                "(1.000000) can1 123 [3] 01 02",
                CandumpError::Data("01 02".into()),
            ),
            (
                "(1.000000) can1 123 [2] 01 2",
                CandumpError::Data("01 2".into()),
            ),
            (
                "(1.000000) can1 123 [0] remote request",
                CandumpError::Unsupported("(1.000000) can1 123 [0] remote request".into()),
            ),
            (
                "(1.000000) can1 123 2 01 02",
                CandumpError::Shape("(1.000000) can1 123 2 01 02".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line, None), Err(expected), "{line}");
        }
    }

    #[test]
    fn rejects_malformed_lines_by_name() {
        let cases = [
            ("garbage", CandumpError::Shape("garbage".into())),
            ("(1.5) can0 123#00", CandumpError::Timestamp("(1.5)".into())),
            ("(1.000000) can0 12345#00", CandumpError::Id("12345".into())),
            ("(1.000000) can0 123#0", CandumpError::Data("0".into())),
            (
                "(1.000000) can0 123#R",
                CandumpError::Unsupported("123#R".into()),
            ),
            (
                "(1.000000) can0 123##100",
                CandumpError::Unsupported("123##100".into()),
            ),
            (
                "(1.000000) can0 FFFFFFFF#00",
                CandumpError::Id("FFFFFFFF".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line, None), Err(expected), "{line}");
        }
    }
}

#[cfg(test)]
mod properties {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::{format_line, parse_line};
    use crate::frame::CanFrame;
    use crate::reading::Timestamp;

    fn frame() -> impl Strategy<Value = CanFrame> {
        (
            any::<bool>(),
            0u32..=0x1FFF_FFFF,
            any::<[u8; 8]>(),
            0u8..=8,
            0i64..4_000_000_000_000_000,
            "[a-z][a-z0-9]{0,7}",
        )
            .prop_map(|(extended, id, data, len, wall_us, bus)| {
                let mut data = data;
                data[len as usize..].fill(0);
                CanFrame {
                    bus: Arc::from(bus.as_str()),
                    id: if extended { id } else { id & 0x7FF },
                    extended,
                    data,
                    len,
                    at: Timestamp {
                        wall_us,
                        mono: Duration::ZERO,
                    },
                }
            })
    }

    proptest! {
        #[test]
        fn any_line_parses_or_fails_without_panicking(line in any::<String>(), first in any::<Option<i64>>()) {
            let _ = parse_line(&line, first);
        }

        #[test]
        fn line_like_garbage_parses_or_fails_without_panicking(line in r"\([0-9]{0,20}\.[0-9]{0,8}\) [a-z0-9]{0,5} [0-9A-Fa-f#R]{0,30}", first in any::<Option<i64>>()) {
            let _ = parse_line(&line, first);
        }

        #[test]
        fn every_frame_survives_a_round_trip(frame in frame()) {
            let line = format_line(&frame);
            let back = parse_line(&line, Some(frame.at.wall_us)).unwrap();
            prop_assert_eq!(back, frame);
        }
    }
}
