//! One vehicle's readings resampled to the 1 Hz training CSV: `timestamp` (Unix seconds),
//! then a column per signal, an empty cell for a gap.
//!
//! The resampling is the agent's own [`Grid`] (the detector, the replay and
//! [`CsvWriter`](crate::dataset::CsvWriter) use the same one), which keeps a column per
//! (signal, origin). The CSV's rule for a signal heard from several origins:
//! - the column named by the VSS name holds its *primary* origin: the one with the most
//!   good ticks (ties: the one heard first). With one sender of each signal, as on most
//!   trucks, that is its only one, and the file is exactly what [`CsvWriter`] writes;
//! - every other origin gets a column of its own after all the primary ones, named
//!   `NAME@ORIGIN` (`...EngineCoolant.Temperature@can0/sa03`). A reader that takes VSS
//!   names only (the training script) ignores it; nothing is merged or averaged.
//!
//! A stream that never had a good value (a parameter the truck does not send) gets no
//! column; the export's summary names it. Position is not a column: it is never judged.
//!
//! Rows are held until the end, because a second origin can first appear at any tick and
//! the header comes first: 8 bytes a stream and second (a vehicle-day of 12 streams at
//! 10 h a day is 3.5 MB).

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use vigil_agent::detect::window::{GRACE, Grid};
use vigil_agent::reading::{Origin, Reading, Signal};
use vigil_agent::signals::{LATITUDE, LONGITUDE};

use crate::dataset;

/// The column of a signal's second origin: `NAME@ORIGIN`, commas in the origin (a serial
/// port's odd name) made underscores so the CSV keeps its shape.
pub fn origin_column(signal: &Signal, origin: &Origin) -> String {
    format!("{signal}@{}", origin.to_string().replace(',', "_"))
}

/// One vehicle's resampled rows, building.
pub struct Table {
    grid: Grid,
    /// Signals heard so far, in the order heard (the grid's columns are looked up by these).
    heard: Vec<Signal>,
    heard_set: HashSet<Signal>,
    /// Every (signal, origin) stream in the order it first had a tick.
    streams: Vec<(Signal, Origin)>,
    index: HashMap<(Signal, Origin), usize>,
    /// Good ticks per stream.
    good: Vec<u64>,
    /// Wall time of each row, microseconds.
    walls: Vec<i64>,
    /// Each row's values by stream index (shorter than `streams` when a stream began later).
    rows: Vec<Vec<f64>>,
    /// Wall time of tick 0 of the readings' monotonic clock, from the first reading.
    wall_origin_us: Option<i64>,
    /// The newest reading's monotonic time.
    last: Option<std::time::Duration>,
}

impl Table {
    /// A table watching `signals` (every name the decode can give; position is left out).
    pub fn new(signals: impl IntoIterator<Item = Signal>) -> Self {
        let watched = signals
            .into_iter()
            .filter(|s| s.as_str() != LATITUDE && s.as_str() != LONGITUDE);
        Table {
            grid: Grid::new(watched),
            heard: Vec::new(),
            heard_set: HashSet::new(),
            streams: Vec::new(),
            index: HashMap::new(),
            good: Vec::new(),
            walls: Vec::new(),
            rows: Vec::new(),
            wall_origin_us: None,
            last: None,
        }
    }

    /// Takes one reading, in time order; closes the ticks it completes into rows.
    pub fn push(&mut self, reading: &Reading) {
        let origin = *self
            .wall_origin_us
            .get_or_insert(reading.at.wall_us - reading.at.mono.as_micros() as i64);
        if !self.heard_set.contains(&reading.signal) {
            self.heard_set.insert(reading.signal.clone());
            self.heard.push(reading.signal.clone());
        }
        self.last = Some(reading.at.mono);
        for tick in self.grid.push(reading) {
            self.row(origin + tick as i64 * 1_000_000);
        }
    }

    /// The end of the input: closes the tick of the last reading, which no later reading
    /// will (the agent's grid closes it on its own clock, [`Grid::advance`], the same way).
    pub fn finish(&mut self) {
        let (Some(last), Some(origin)) = (self.last, self.wall_origin_us) else {
            return;
        };
        for tick in self.grid.advance(last + GRACE) {
            self.row(origin + tick as i64 * 1_000_000);
        }
    }

    fn row(&mut self, wall_us: i64) {
        let mut row = vec![f64::NAN; self.streams.len()];
        for signal in &self.heard {
            for (origin, column) in self.grid.streams(signal) {
                let key = (signal.clone(), origin.clone());
                let at = match self.index.get(&key) {
                    Some(&at) => at,
                    None => {
                        self.streams.push(key.clone());
                        self.good.push(0);
                        row.push(f64::NAN);
                        self.index.insert(key, self.streams.len() - 1);
                        self.streams.len() - 1
                    }
                };
                let value = column.newest();
                if !value.is_nan() {
                    self.good[at] += 1;
                }
                row[at] = value;
            }
        }
        self.walls.push(wall_us);
        self.rows.push(row);
    }

    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Samples the grid dropped: late ones, and ones from a fifth origin of a signal.
    pub fn dropped(&self) -> (u64, u64) {
        (self.grid.late_samples(), self.grid.origins_refused())
    }

    /// Times a jump in the readings' clock restarted the grid (rows skip the jump).
    pub fn restarts(&self) -> u64 {
        self.grid.restarts()
    }

    /// The columns, in order: (header name, stream index). Primary origins first, in the
    /// built-in CSV order and then by name; then the other origins, by name.
    pub fn columns(&self) -> Vec<(String, usize)> {
        let builtin = dataset::csv_signals(u8::MAX);
        let order = |signal: &Signal| {
            let at = builtin.iter().position(|s| s == signal);
            (at.unwrap_or(usize::MAX), signal.as_str().to_owned())
        };
        let mut signals: Vec<&Signal> = self
            .streams
            .iter()
            .map(|(s, _)| s)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        signals.sort_by_key(|s| order(s));
        let mut primary = Vec::new();
        let mut others = Vec::new();
        for signal in signals {
            let mut mine: Vec<usize> = (0..self.streams.len())
                .filter(|&i| self.streams[i].0 == *signal && self.good[i] > 0)
                .collect();
            // Most good ticks first; the stable sort keeps the first heard first on a tie.
            mine.sort_by_key(|&i| std::cmp::Reverse(self.good[i]));
            let Some((&first, rest)) = mine.split_first() else {
                continue;
            };
            primary.push((signal.to_string(), first));
            let mut rest: Vec<(String, usize)> = rest
                .iter()
                .map(|&i| (origin_column(signal, &self.streams[i].1), i))
                .collect();
            rest.sort();
            others.extend(rest);
        }
        primary.extend(others);
        primary
    }

    /// Signals heard that never had a good value (no column): `NAME@ORIGIN` each.
    pub fn never_valid(&self) -> Vec<String> {
        let mut out: Vec<String> = (0..self.streams.len())
            .filter(|&i| self.good[i] == 0)
            .map(|i| origin_column(&self.streams[i].0, &self.streams[i].1))
            .collect();
        out.sort();
        out
    }

    /// Writes the CSV; returns its columns (the header's names after `timestamp`).
    pub fn write(&self, mut out: impl Write) -> io::Result<Vec<String>> {
        let columns = self.columns();
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        writeln!(out, "timestamp,{}", names.join(","))?;
        for (wall, row) in self.walls.iter().zip(&self.rows) {
            write!(out, "{}", vigil_sim::record::unix_seconds(*wall))?;
            for (_, at) in &columns {
                match row.get(*at) {
                    Some(v) if !v.is_nan() => write!(out, ",{v}")?,
                    _ => write!(out, ",")?,
                }
            }
            writeln!(out)?;
        }
        out.flush()?;
        Ok(names)
    }
}
