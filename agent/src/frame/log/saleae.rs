//! The Saleae Logic 2 CAN analyzer's CSV export: a row per field of a frame, as a logic
//! analyzer on the bus's wires decoded it.
//!
//! ```text
//! name,type,start_time,duration,"identifier","extended","num_data_bytes","data","crc","ack"
//! "CAN","identifier_field",0.001598125,0.00014,0x0000000018F03300,true,,,,
//! "CAN","control_field",0.001742125,1.2e-05,,,0x0000000000000008,,,
//! "CAN","data_field",0.001758125,3.2e-05,,,,0xFF,,
//! ...
//! "CAN","crc_field",0.0020,6.4e-05,,,,,0x0000000000005A00,
//! "CAN","ack_field",0.0021,4e-06,,,,,,true
//! ```
//!
//! One frame is assembled from its rows: it starts at its `identifier_field` (its time),
//! takes its length from the `control_field` and a byte from each `data_field`. A frame is
//! whole only when the next one starts (or the export ends) without a `can_error` row
//! between: a `can_error` means the bus broke the frame off, and a receiver would have
//! dropped it, so it is counted as a bus error. A frame that ends before its data is
//! malformed. The column order is read from the header (exports differ); `start_time` is
//! seconds since the capture began or an ISO-8601 time (`2023-08-25T05:27:11.752721116+00:00`).
//! The export names no bus: its frames are on `can0`.

use std::borrow::Cow;

use super::{MAX_FD_LEN, Outcome, Parsed, SkipCause, seconds_to_micros, unix_micros};

/// The bus a Saleae capture's frames are on.
const BUS: &str = "can0";

/// The columns a row is read by.
#[derive(Debug)]
struct Columns {
    kind: usize,
    start_time: usize,
    identifier: usize,
    extended: Option<usize>,
    num_data_bytes: usize,
    data: usize,
}

/// A frame whose rows are being read.
#[derive(Debug)]
struct Pending {
    wall_us: i64,
    id: u32,
    extended: bool,
    len: Option<u8>,
    data: [u8; 8],
    count: u8,
    /// Why it will be skipped, once something broke it.
    broken: Option<(SkipCause, &'static str)>,
}

/// A Saleae CSV export being read.
#[derive(Debug)]
pub struct Saleae {
    columns: Columns,
    pending: Option<Pending>,
}

impl Saleae {
    /// `None` if `line` is no Saleae CAN header; an error if it is one that lacks a column.
    pub(crate) fn detect(line: &str) -> Option<Result<Saleae, &'static str>> {
        let names: Vec<&str> = line.split(',').map(unquote).collect();
        if names.len() < 3 || names[..3] != ["name", "type", "start_time"] {
            return None;
        }
        let at = |name: &str| names.iter().position(|n| *n == name);
        let columns = (|| {
            Some(Columns {
                kind: at("type")?,
                start_time: at("start_time")?,
                identifier: at("identifier")?,
                extended: at("extended"),
                num_data_bytes: at("num_data_bytes")?,
                data: at("data")?,
            })
        })();
        Some(
            columns
                .map(|columns| Saleae {
                    columns,
                    pending: None,
                })
                .ok_or("a Saleae CSV header without the CAN analyzer's identifier, num_data_bytes or data column"),
        )
    }

    pub(crate) fn row(&mut self, line: &str) -> Outcome<'static> {
        let fields: Vec<&str> = line.split(',').take(32).map(unquote).collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or_default();
        let c = &self.columns;
        match field(c.kind) {
            "identifier_field" => {
                let time = parse_time(field(c.start_time));
                let id = hex(field(c.identifier));
                let extended = match c.extended.map(field) {
                    Some("true") => true,
                    Some("false") => false,
                    _ => id.is_some_and(|id| id > 0x7FF),
                };
                let max = if extended { 0x1FFF_FFFF } else { 0x7FF };
                let broken = match (time, id) {
                    (None, _) => Some(MALFORMED_TIME),
                    (_, None) => Some(MALFORMED_ID),
                    (_, Some(id)) if id > max => Some(MALFORMED_ID),
                    _ => None,
                };
                let previous = self.finish();
                self.pending = Some(Pending {
                    wall_us: time.unwrap_or_default(),
                    id: id.unwrap_or_default() as u32,
                    extended,
                    len: None,
                    data: [0; 8],
                    count: 0,
                    broken,
                });
                previous
            }
            "control_field" => {
                let len = hex(field(c.num_data_bytes)).filter(|&n| n <= 8);
                match (&mut self.pending, len) {
                    (Some(p), Some(len)) if p.len.is_none() => p.len = Some(len as u8),
                    (Some(p), _) => p.break_off(MALFORMED_CONTROL),
                    (None, _) => return malformed_reason(MALFORMED_CONTROL.1),
                }
                Outcome::Nothing
            }
            "data_field" => {
                let byte = hex(field(c.data)).and_then(|b| u8::try_from(b).ok());
                match (&mut self.pending, byte) {
                    (Some(p), Some(byte)) if p.len.is_some_and(|len| p.count < len) => {
                        p.data[p.count as usize] = byte;
                        p.count += 1;
                    }
                    (Some(p), _) => p.break_off(MALFORMED_DATA),
                    (None, _) => return malformed_reason(MALFORMED_DATA.1),
                }
                Outcome::Nothing
            }
            "crc_field" | "ack_field" => Outcome::Nothing,
            "can_error" => match &mut self.pending {
                Some(p) => {
                    p.break_off(BUS_ERROR);
                    Outcome::Nothing
                }
                None => Outcome::Skip(BUS_ERROR.0, BUS_ERROR.1.into()),
            },
            _ => Outcome::Skip(
                SkipCause::Unsupported,
                "a Saleae row that is no CAN frame field".into(),
            ),
        }
    }

    /// The frame being read, if whole, or why it is skipped; it ends here.
    pub(crate) fn finish(&mut self) -> Outcome<'static> {
        let Some(p) = self.pending.take() else {
            return Outcome::Nothing;
        };
        if let Some((cause, reason)) = p.broken {
            if (cause, reason) == BUS_ERROR {
                return Outcome::BusError {
                    bus: Cow::Borrowed(BUS),
                    id: Some((p.id, p.extended)),
                    wall_us: p.wall_us,
                    reason,
                };
            }
            return Outcome::Skip(cause, reason.into());
        }
        if p.len != Some(p.count) {
            return malformed("a frame with all its data bytes before the next");
        }
        let mut data = [0u8; MAX_FD_LEN];
        data[..8].copy_from_slice(&p.data);
        Outcome::Frame(Parsed {
            bus: Cow::Borrowed(BUS),
            id: p.id,
            extended: p.extended,
            fd: false,
            data,
            len: p.count,
            wall_us: p.wall_us,
        })
    }
}

impl Pending {
    /// Marks the frame as not received; the first reason stands.
    fn break_off(&mut self, why: (SkipCause, &'static str)) {
        self.broken.get_or_insert(why);
    }
}

const MALFORMED_TIME: (SkipCause, &str) = (
    SkipCause::Malformed,
    "not a Saleae CAN row: expected a start_time in seconds or ISO-8601",
);
const MALFORMED_ID: (SkipCause, &str) = (
    SkipCause::Malformed,
    "not a Saleae CAN row: expected an identifier of 11 or 29 bits like 0x0000000018FEEE00",
);
const MALFORMED_CONTROL: (SkipCause, &str) = (
    SkipCause::Malformed,
    "not a Saleae CAN row: expected one control field of 0 to 8 bytes after an identifier",
);
const MALFORMED_DATA: (SkipCause, &str) = (
    SkipCause::Malformed,
    "not a Saleae CAN row: expected a data byte within the frame's length",
);
const BUS_ERROR: (SkipCause, &str) = (SkipCause::BusError, "a frame the bus broke off (can_error)");

fn malformed_reason(reason: &'static str) -> Outcome<'static> {
    Outcome::Skip(SkipCause::Malformed, reason.into())
}

fn malformed(expected: &'static str) -> Outcome<'static> {
    Outcome::Skip(
        SkipCause::Malformed,
        Cow::Owned(format!("not a Saleae CAN row: expected {expected}")),
    )
}

fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

/// `0x000000000CF00400`.
fn hex(field: &str) -> Option<u64> {
    let digits = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Seconds since the capture began, or an ISO-8601 time with its offset, as microseconds.
fn parse_time(field: &str) -> Option<i64> {
    let Some((date, time)) = field.split_once('T') else {
        return seconds_to_micros(field);
    };
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    // The offset: `Z`, `+HH:MM` or `-HH:MM` after the time.
    let (clock, offset_us) = match time.find(['Z', '+', '-']) {
        Some(at) => {
            let (clock, zone) = time.split_at(at);
            let offset = match zone {
                "Z" => 0,
                _ => {
                    let sign = if zone.starts_with('-') { -1 } else { 1 };
                    let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
                    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
                    if h > 23 || m > 59 {
                        return None;
                    }
                    sign * (h * 3600 + m * 60) * 1_000_000
                }
            };
            (clock, offset)
        }
        None => (time, 0),
    };
    let mut hms = clock.splitn(3, ':');
    let (h, mi, s) = (hms.next()?, hms.next()?, hms.next()?);
    if s.starts_with('-') {
        return None;
    }
    let base = unix_micros(y, m, d, h.parse().ok()?, mi.parse().ok()?, 0)?;
    base.checked_add(seconds_to_micros(s)?)?
        .checked_sub(offset_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_seconds_and_iso_8601() {
        assert_eq!(parse_time("0.001598125"), Some(1_598));
        assert_eq!(parse_time("1.2e-05"), Some(12));
        assert_eq!(
            parse_time("2023-08-25T05:27:11.752721116+00:00"),
            Some(1_692_941_231_752_721)
        );
        assert_eq!(
            parse_time("2023-08-25T07:27:11.752721Z"),
            Some(1_692_941_231_752_721 + 7_200_000_000)
        );
        assert_eq!(
            parse_time("2023-08-25T07:27:11.752721+02:00"),
            Some(1_692_941_231_752_721)
        );
        assert_eq!(parse_time("2023-13-25T07:27:11Z"), None);
        assert_eq!(parse_time("soon"), None);
    }
}
