//! Windows: readings resampled onto a fixed 1 Hz grid, one column per stream: a watched
//! signal from one origin (bus and source address, or serial port). Two controllers that
//! send the same signal are two columns, never one: a second sender cannot overwrite, and so
//! hide, the engine's own values.
//!
//! Owns the resampling rule, which the training data, the detector and the replay share so
//! the model sees on the truck exactly what it was trained on:
//!
//! - Tick `k` is at monotonic time `k` seconds. Its value for a signal is the newest good
//!   sample taken in `(k - hold, k]`; older than that, or flagged, is a gap (`NaN`).
//! - Tick `k` closes once a reading stamped at or after `k + grace` arrives (any signal), so
//!   a sample a little late on the wire still lands in its tick.
//! - A sample stamped at or before a closed tick is late: it is counted and dropped, never
//!   rewrites history. Time is the readings' monotonic time only; a wall-clock jump is
//!   invisible here.
//! - A reading more than [`HISTORY`] ticks ahead of the grid, or behind it (a recorded log
//!   whose clock stepped, say from 1970 to the present when the gateway found NTP), restarts
//!   the grid at its time: the columns are emptied and no tick in between is walked through.
//! - [`Grid::advance`] closes ticks on a clock of the caller's when no reading comes (a
//!   silent bus), by the same rule.
//!
//! - A stream's column starts with its first reading, with a gap for every tick the grid
//!   had closed before it (up to [`HISTORY`]), as if it had been watched all along. A signal
//!   takes at most [`MAX_ORIGINS`] origins; readings from more are counted and dropped (a
//!   hostile bus cannot grow the grid without bound).
//!
//! It never reads a clock and never allocates per tick once the columns exist.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::reading::{Origin, Quality, Reading, Signal};

/// Grid spacing: the model's sample rate is 1 Hz.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a sample stays the signal's value at later ticks.
pub const HOLD: Duration = Duration::from_millis(2_500);
/// How long after a tick's time it waits for stragglers.
pub const GRACE: Duration = Duration::from_millis(200);
/// Ticks each column keeps (the model's 10 s window plus room for the rules).
pub const HISTORY: usize = 600;
/// Origins one signal may have: a truck has one sender of each temperature, a second is
/// already worth an alert (`sender_conflict`); more are an attack or a wiring fault.
pub const MAX_ORIGINS: usize = 4;

/// One reading as the grid keeps it: a value, or the flag that stands in for one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sample {
    Good(f64),
    /// The sender has no value (J1939 not available).
    NotAvailable,
    /// The sender reports its sensor in error (J1939 error range, a PT100 fault), or a raw
    /// value the specification reserves.
    Error,
}

impl Sample {
    fn of(reading: &Reading) -> Sample {
        match (reading.value(), reading.quality) {
            (Some(v), _) => Sample::Good(v),
            (None, Quality::NotAvailable) => Sample::NotAvailable,
            (None, _) => Sample::Error,
        }
    }
}

/// One signal's resampled history.
#[derive(Clone, Debug)]
pub struct Column {
    /// Samples not yet folded into a tick, in time order.
    pending: VecDeque<(Duration, Sample)>,
    /// The newest good sample folded into a tick.
    held: Option<(Duration, f64)>,
    /// The newest folded reading, when it was flagged.
    flagged: Option<Sample>,
    /// Whether any reading, good or flagged, has arrived.
    seen: bool,
    /// Whether a good value has ever arrived: a stream that was only ever "not available"
    /// is a parameter this truck does not send, not a failed sensor.
    valid_seen: bool,
    /// Oldest first; `NaN` is a gap.
    values: VecDeque<f64>,
    /// Ticks in a row whose newest reading was flagged (not available, error).
    pub flagged_ticks: usize,
}

impl Column {
    /// A column that joins a grid which has closed `closed` ticks: those are gaps.
    fn new(closed: u64) -> Self {
        let mut values = VecDeque::with_capacity(HISTORY);
        values.extend(std::iter::repeat_n(
            f64::NAN,
            (closed as usize).min(HISTORY),
        ));
        Column {
            pending: VecDeque::new(),
            held: None,
            flagged: None,
            seen: false,
            valid_seen: false,
            values,
            flagged_ticks: 0,
        }
    }

    fn insert(&mut self, t: Duration, value: Sample) {
        // Nearly always appended; a sample a little out of order is slotted in.
        let at = self.pending.partition_point(|(p, _)| *p <= t);
        self.pending.insert(at, (t, value));
    }

    /// Forgets the history (the grid restarts); whether the stream was seen stays.
    fn restart(&mut self) {
        self.pending.clear();
        self.held = None;
        self.flagged = None;
        self.values.clear();
        self.flagged_ticks = 0;
    }

    fn close(&mut self, tick: Duration) {
        while let Some(&(t, value)) = self.pending.front() {
            if t > tick {
                break;
            }
            self.pending.pop_front();
            self.seen = true;
            match value {
                Sample::Good(v) => {
                    self.held = Some((t, v));
                    self.flagged = None;
                    self.valid_seen = true;
                }
                flag => self.flagged = Some(flag),
            }
        }
        let value = match self.held {
            Some((at, v)) if tick - at < HOLD && self.flagged.is_none() => v,
            _ => f64::NAN,
        };
        self.flagged_ticks = if self.flagged.is_some() {
            self.flagged_ticks + 1
        } else {
            0
        };
        if self.values.len() == HISTORY {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// The last `n` ticks, oldest first, or `None` when fewer exist.
    pub fn last(&self, n: usize) -> Option<impl Iterator<Item = f64> + '_> {
        let len = self.values.len();
        (len >= n).then(|| self.values.range(len - n..).copied())
    }

    /// The last `n` ticks copied into `out` (cleared first); false when fewer exist.
    pub fn copy_last(&self, n: usize, out: &mut Vec<f64>) -> bool {
        out.clear();
        match self.last(n) {
            Some(it) => {
                out.extend(it);
                true
            }
            None => false,
        }
    }

    /// The value at the newest tick (`NaN` for a gap).
    pub fn newest(&self) -> f64 {
        self.values.back().copied().unwrap_or(f64::NAN)
    }

    /// How many ticks in a row, newest first, are gaps.
    pub fn gap_ticks(&self) -> usize {
        self.values.iter().rev().take_while(|v| v.is_nan()).count()
    }

    /// How many ticks in a row, newest first, hold exactly the newest value.
    pub fn unchanged_ticks(&self) -> usize {
        let newest = self.newest();
        if newest.is_nan() {
            return 0;
        }
        self.values
            .iter()
            .rev()
            .take_while(|&&v| v == newest)
            .count()
    }

    /// Whether the signal has ever arrived (good or flagged).
    pub fn seen(&self) -> bool {
        self.seen
    }

    /// Whether the newest reading's flag says the sensor failed: a sender reporting an
    /// error, or "not available" after a good value. "Not available" from a stream that
    /// never had a value is a parameter the truck does not send ([`Column::unsupported`]).
    pub fn flagged_as_fault(&self) -> bool {
        match self.flagged {
            Some(Sample::Error) => true,
            Some(_) => self.valid_seen,
            None => false,
        }
    }

    /// Whether the stream has only ever said "not available": the truck does not send it.
    pub fn unsupported(&self) -> bool {
        self.seen && !self.valid_seen && self.flagged == Some(Sample::NotAvailable)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The resampled columns of every watched signal, one per origin, advancing together.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Per watched signal, its streams in the order their first reading arrived.
    streams: HashMap<Signal, Vec<(Origin, Column)>>,
    /// Ticks already closed; the next to close is `closed`.
    closed: u64,
    /// Ticks closed since the grid started or restarted (a new column's gaps).
    since_restart: u64,
    late_samples: u64,
    /// Times a jump in the readings' clock restarted the grid.
    restarts: u64,
    /// Readings dropped because their signal already had [`MAX_ORIGINS`] origins.
    origins_refused: u64,
    /// Streams started so far (a caller watches this to learn of a new sender).
    streams_started: u64,
}

impl Grid {
    pub fn new(watched: impl IntoIterator<Item = Signal>) -> Self {
        Grid {
            streams: watched.into_iter().map(|s| (s, Vec::new())).collect(),
            closed: 0,
            since_restart: 0,
            late_samples: 0,
            restarts: 0,
            origins_refused: 0,
            streams_started: 0,
        }
    }

    /// Watches one more signal (a model's card can bring one); its streams start as
    /// any watched signal's do, with its first reading. Watched already: nothing changes.
    pub fn watch(&mut self, signal: Signal) {
        self.streams.entry(signal).or_default();
    }

    /// Takes one reading; returns the index of every tick it closed, oldest first
    /// (usually none or one; several after a silence on every signal; none when the
    /// reading's clock jumped and the grid restarted).
    pub fn push(&mut self, reading: &Reading) -> std::ops::Range<u64> {
        let t = reading.at.mono;
        let closed = self.advance(t);
        let Some(streams) = self.streams.get_mut(&reading.signal) else {
            return closed;
        };
        // Tick `closed - 1` is history: a sample stamped at or before it is late.
        if self.closed > 0 && t <= Duration::from_secs(self.closed - 1) {
            self.late_samples += 1;
            return closed;
        }
        let at = match streams.iter().position(|(o, _)| *o == reading.origin) {
            Some(at) => at,
            None if streams.len() < MAX_ORIGINS => {
                streams.push((reading.origin.clone(), Column::new(self.since_restart)));
                self.streams_started += 1;
                streams.len() - 1
            }
            None => {
                self.origins_refused += 1;
                return closed;
            }
        };
        streams[at].1.insert(t, Sample::of(reading));
        closed
    }

    /// Closes every tick that `now` (on the readings' clock) has passed, as a reading
    /// stamped `now` would; returns their indices. A `now` more than [`HISTORY`] ticks away
    /// from the grid, ahead or behind, restarts it there and closes nothing.
    pub fn advance(&mut self, now: Duration) -> std::ops::Range<u64> {
        let tick = now.as_secs();
        let history = HISTORY as u64;
        if tick > self.closed + history || tick + history < self.closed {
            for (_, column) in self.streams.values_mut().flatten() {
                column.restart();
            }
            self.closed = tick;
            self.since_restart = 0;
            self.restarts += 1;
            return tick..tick;
        }
        let first = self.closed;
        while now >= Duration::from_secs(self.closed) + GRACE {
            self.close(Duration::from_secs(self.closed));
            self.closed += 1;
            self.since_restart += 1;
        }
        first..self.closed
    }

    /// The next tick to close (every tick before it is closed).
    pub fn next_tick(&self) -> u64 {
        self.closed
    }

    /// How many times a jump in the readings' clock restarted the grid.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    fn close(&mut self, tick: Duration) {
        for (_, column) in self.streams.values_mut().flatten() {
            column.close(tick);
        }
    }

    /// The signal's first stream: the origin heard first (for a truck with one sender of
    /// each signal, its only one).
    pub fn column(&self, signal: &Signal) -> Option<&Column> {
        self.streams.get(signal)?.first().map(|(_, c)| c)
    }

    /// The signal's stream from `origin`, if that origin has sent it.
    pub fn column_from(&self, signal: &Signal, origin: &Origin) -> Option<&Column> {
        let streams = self.streams.get(signal)?;
        streams.iter().find(|(o, _)| o == origin).map(|(_, c)| c)
    }

    /// The signal's stream from `origin`, or else its first: a companion or the engine
    /// speed is read from the same controller when it sends one.
    pub fn column_near(&self, signal: &Signal, origin: &Origin) -> Option<&Column> {
        self.column_from(signal, origin)
            .or_else(|| self.column(signal))
    }

    /// Every stream of the signal, first heard first.
    pub fn streams(&self, signal: &Signal) -> impl Iterator<Item = (&Origin, &Column)> {
        self.streams
            .get(signal)
            .into_iter()
            .flatten()
            .map(|(o, c)| (o, c))
    }

    pub fn signals(&self) -> impl Iterator<Item = &Signal> {
        self.streams.keys()
    }

    /// Streams started so far: it moves when a new origin of a watched signal is heard.
    pub fn streams_started(&self) -> u64 {
        self.streams_started
    }

    /// Readings dropped because their signal already had [`MAX_ORIGINS`] origins.
    pub fn origins_refused(&self) -> u64 {
        self.origins_refused
    }

    /// Samples dropped for arriving after their tick had closed.
    pub fn late_samples(&self) -> u64 {
        self.late_samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Origin, Quality, Timestamp};
    use std::sync::Arc;

    fn reading(signal: &str, ms: u64, value: Option<f64>) -> Reading {
        let at = Timestamp {
            wall_us: 0,
            mono: Duration::from_millis(ms),
        };
        let origin = Origin::Serial {
            port: Arc::from("t"),
        };
        match value {
            Some(v) => Reading::good(Signal::new(signal), at, v, origin),
            None => Reading::flagged(Signal::new(signal), at, Quality::NotAvailable, origin),
        }
    }

    /// Feeds (signal, ms, value) readings and returns each column's ticks as text.
    fn check(input: &[(&str, u64, Option<f64>)], expected: &[(&str, &str)]) {
        let mut grid = Grid::new(["a", "b"].map(Signal::new));
        for &(s, ms, v) in input {
            grid.push(&reading(s, ms, v));
        }
        assert_eq!(grid.late_samples(), 1);
        for &(signal, want) in expected {
            let column = grid.column(&Signal::new(signal)).unwrap();
            let got: Vec<String> = column
                .last(column.len())
                .unwrap()
                .map(|v| {
                    if v.is_nan() {
                        "-".into()
                    } else {
                        v.to_string()
                    }
                })
                .collect();
            assert_eq!(got.join(" "), want, "column {signal}");
        }
    }

    #[test]
    fn resamples_holds_gaps_drops_late_samples_and_flags() {
        check(
            // `a` at 1 Hz with a late-but-in-grace sample; `b` falls silent after 1.1 s.
            &[
                ("a", 0, Some(1.0)),
                ("b", 100, Some(10.0)),
                ("a", 1_000, Some(2.0)),
                ("b", 1_100, Some(11.0)),
                ("a", 2_150, Some(3.0)),
                // Out of order, but tick 2 only closes at 2.2 s: it still counts.
                ("a", 1_900, Some(2.5)),
                ("a", 3_000, Some(4.0)),
                ("a", 4_000, Some(5.0)),
                ("a", 5_000, Some(6.0)),
                ("a", 6_000, None),
                // Stamped before tick 5, which a@6.0 closed: late, dropped.
                ("b", 4_900, Some(99.0)),
                // Closes ticks 6 and 7; `a`'s flag and `b`'s silence make both gaps.
                ("a", 7_300, Some(8.0)),
            ],
            &[("a", "1 2 2.5 4 5 6 - -"), ("b", "- 10 11 11 - - - -")],
        );
    }

    #[test]
    fn a_clock_jump_either_way_restarts_the_grid_instead_of_walking_it() {
        let mut grid = Grid::new(["a"].map(Signal::new));
        for secs in 0..10 {
            grid.push(&reading("a", secs * 1_000, Some(1.0)));
        }
        assert_eq!(grid.column(&Signal::new("a")).unwrap().len(), 9);
        // 55 years later (1970 -> 2025 on a gateway that found NTP): no tick is walked.
        let later = 55 * 365 * 86_400 * 1_000;
        let closed = grid.push(&reading("a", later, Some(2.0)));
        assert!(closed.is_empty(), "{closed:?}");
        assert_eq!(grid.restarts(), 1);
        assert_eq!(grid.column(&Signal::new("a")).unwrap().len(), 0);
        // Time goes on from there, one tick a second.
        assert_eq!(
            grid.push(&reading("a", later + 1_000, Some(3.0))).count(),
            1
        );
        assert_eq!(grid.column(&Signal::new("a")).unwrap().newest(), 2.0);
        // And back again: restarted, not a flood of late samples.
        grid.push(&reading("a", 20_000, Some(4.0)));
        assert_eq!((grid.restarts(), grid.late_samples()), (2, 0));
        assert_eq!(grid.push(&reading("a", 21_000, Some(5.0))).count(), 1);
        // A silence advanced on the caller's clock closes ticks like a reading would.
        assert_eq!(grid.advance(Duration::from_millis(25_300)).count(), 5);
        let column = grid.column(&Signal::new("a")).unwrap();
        assert_eq!(column.gap_ticks(), 2, "held for HOLD, then gaps");
    }

    #[test]
    fn each_origin_is_a_column_of_its_own_up_to_a_bound() {
        let mut grid = Grid::new(["a"].map(Signal::new));
        let from = |sa: u8, ms: u64, v: f64| {
            let at = Timestamp {
                wall_us: 0,
                mono: Duration::from_millis(ms),
            };
            let origin = Origin::Can {
                bus: Arc::from("can0"),
                source_address: sa,
            };
            Reading::good(Signal::new("a"), at, v, origin)
        };
        let engine = Origin::Can {
            bus: Arc::from("can0"),
            source_address: 0,
        };
        for secs in 0..5 {
            grid.push(&from(0, secs * 1_000, 120.0));
            // A second sender 0.2 s later, from the third second on.
            if secs >= 2 {
                grid.push(&from(3, secs * 1_000 + 200, 90.0));
            }
        }
        grid.push(&from(0, 5_000, 120.0));
        let first = grid.column(&Signal::new("a")).unwrap();
        assert_eq!(
            first.newest(),
            120.0,
            "never overwritten by the second sender"
        );
        assert_eq!(
            grid.column_from(&Signal::new("a"), &engine).unwrap().len(),
            5
        );
        let streams: Vec<(String, Vec<f64>)> = grid
            .streams(&Signal::new("a"))
            .map(|(o, c)| (o.to_string(), c.last(c.len()).unwrap().collect()))
            .collect();
        assert_eq!(streams[1].0, "can0/sa03");
        // Its column joined with gaps for the ticks before it was heard (its first sample,
        // at 2.2 s, belongs to tick 3).
        assert!(streams[1].1[..3].iter().all(|v| v.is_nan()), "{streams:?}");
        assert_eq!(streams[1].1[3..], [90.0, 90.0]);
        // A hostile bus sending the signal from every address grows nothing past the bound.
        for sa in 10..60 {
            grid.push(&from(sa, 5_100, 1.0));
        }
        assert_eq!(grid.streams(&Signal::new("a")).count(), MAX_ORIGINS);
        assert_eq!(grid.origins_refused(), 50 - (MAX_ORIGINS as u64 - 2));
    }
}
