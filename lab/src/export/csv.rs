//! The CSV inputs of `vigil dataset`: a CSV of readings (`timestamp` then a column per
//! signal, at any rate) and `vigil decode`'s rows (`timestamp,signal,origin,value`). A line
//! that cannot be read is counted by cause and skipped; a cell that is not a number is
//! counted and left a gap, the row's other cells kept.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use vigil_agent::reading::{Origin, Quality, Reading, Signal, Timestamp};

use super::Skipped;
use super::readings::parse_origin;

/// Reads a CSV header line: `timestamp` then signal names. Returns (1, the names).
pub(super) fn csv_header(reader: &mut Box<dyn BufRead>) -> std::io::Result<(u64, Vec<Signal>)> {
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let names = header
        .trim()
        .split(',')
        .skip(1)
        .map(|n| Signal::new(n.trim()))
        .collect();
    Ok((1, names))
}

/// Reads the rows of a CSV of readings (`timestamp` then a value per column). A row whose
/// time is not a number, or runs backwards, is skipped and counted; a cell that is not a
/// number is counted and left a gap; the row's other cells are kept.
pub(super) fn read_wide_csv(
    name: &str,
    reader: impl BufRead,
    columns: &[Signal],
    skipped: &mut Skipped,
    each: &mut impl FnMut(&Reading),
) -> std::io::Result<u64> {
    let origin = Origin::Serial {
        port: Arc::from("csv"),
    };
    let mut clock = Clock::default();
    each_line(name, reader, skipped, |line_no, line, skipped| {
        let mut cells = line.split(',');
        let Some(at) = clock.stamp(cells.next().unwrap_or("")) else {
            skipped.count(name, line_no, "bad_timestamp");
            return;
        };
        for (signal, cell) in columns.iter().zip(cells) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    each(&Reading::good(signal.clone(), at, v, origin.clone()))
                }
                _ => skipped.count(name, line_no, "bad_value"),
            }
        }
    })
}

/// Calls `row` with each non-blank line after the header and its line number in the file;
/// a line that is not UTF-8 is counted and skipped. Returns how many lines were read.
fn each_line(
    name: &str,
    reader: impl BufRead,
    skipped: &mut Skipped,
    mut row: impl FnMut(u64, &str, &mut Skipped),
) -> std::io::Result<u64> {
    let mut lines = 0;
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        lines += 1;
        let line_no = i as u64 + 2;
        let Ok(line) = std::str::from_utf8(&line) else {
            skipped.count(name, line_no, "bad_bytes");
            continue;
        };
        if !line.trim().is_empty() {
            row(line_no, line, skipped);
        }
    }
    Ok(lines)
}

/// Reads `vigil decode`'s rows: `timestamp,signal,origin,value`, the value a number or a
/// quality flag; DM1 rows are not readings and are passed over.
pub(super) fn read_rows(
    name: &str,
    mut reader: Box<dyn BufRead>,
    skipped: &mut Skipped,
    each: &mut impl FnMut(&Reading),
) -> std::io::Result<u64> {
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let mut clock = Clock::default();
    let rows = each_line(name, reader, skipped, |line_no, line, skipped| {
        let cells: Vec<&str> = line.trim().splitn(4, ',').collect();
        let [stamp, signal, origin, value] = cells[..] else {
            skipped.count(name, line_no, "malformed");
            return;
        };
        if signal == "DM1" {
            return;
        }
        let Some(at) = clock.stamp(stamp) else {
            skipped.count(name, line_no, "bad_timestamp");
            return;
        };
        let (signal, origin) = (Signal::new(signal), parse_origin(origin));
        let reading = match value.parse::<f64>() {
            Ok(v) if v.is_finite() => Reading::good(signal, at, v, origin),
            _ => match value {
                "not_available" => Reading::flagged(signal, at, Quality::NotAvailable, origin),
                "error" => Reading::flagged(signal, at, Quality::Error, origin),
                "out_of_range" => Reading::flagged(signal, at, Quality::OutOfRange, origin),
                _ => {
                    skipped.count(name, line_no, "bad_value");
                    return;
                }
            },
        };
        each(&reading);
    })?;
    // The header is a line too.
    Ok(rows + 1)
}

/// The monotonic clock a CSV's wall times give: from the first row, never backwards.
#[derive(Default)]
struct Clock {
    first_us: Option<i64>,
    last: Duration,
}

impl Clock {
    /// The time of a row stamped `cell` (Unix seconds); `None` when it is not a time, or
    /// runs backwards (a row out of order cannot be placed without rewriting history).
    fn stamp(&mut self, cell: &str) -> Option<Timestamp> {
        let seconds: f64 = cell.trim().parse().ok().filter(|s: &f64| s.is_finite())?;
        let wall_us = (seconds * 1e6).round() as i64;
        let first = *self.first_us.get_or_insert(wall_us);
        let mono = Duration::from_micros(u64::try_from(wall_us - first).ok()?);
        if mono < self.last {
            return None;
        }
        self.last = mono;
        Some(Timestamp { wall_us, mono })
    }
}
