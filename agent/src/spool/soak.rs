//! The crash-test writer (`vigil spool soak`): appends records as
//! fast as asked and tells a parent process, line by line, what it has done:
//!
//! ```text
//! open next=<seq> recovered=<n> boot=<boot id>   once, after the store is open
//! appended <seq>                                  after each append returned
//! flushed <seq>                                   after each flush returned: every record up to <seq> is durable
//! ```
//!
//! Payloads are a pure function of the sequence number ([`payload`]), so a checker can tell
//! a record that came back intact from one that came back wrong. Every `alert_every`-th
//! sequence number is an alert (so the alert flush path is exercised too).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{RecordKind, Seq};
use super::{FlushPolicy, Spool, SpoolConfig, SpoolError};
use crate::telemetry::Metrics;

#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Records per second; 0 for as fast as possible.
    pub rate: u32,
    pub flush: FlushPolicy,
    /// Stop after this many records (None: run until killed).
    pub max_records: Option<u64>,
}

impl Default for SoakOptions {
    /// Flushes every 64 records or 20 ms: many flushes per second, so a kill lands at many
    /// different points of the flush cycle.
    fn default() -> Self {
        SoakOptions {
            rate: 0,
            flush: FlushPolicy {
                every_records: 64,
                every: Duration::from_millis(20),
                alerts_at_once: true,
            },
            max_records: None,
        }
    }
}

/// One sequence number in this many is an alert.
pub const ALERT_EVERY: u64 = 97;

/// The spool settings the soak writes with (and a checker should open with): caps far above
/// what a test writes, so nothing is evicted and everything flushed must come back.
pub fn config(path: &Path, flush: FlushPolicy) -> SpoolConfig {
    SpoolConfig {
        max_bytes: 4 << 30,
        max_alert_bytes: 1 << 30,
        max_in_flight: usize::MAX,
        flush,
        ..SpoolConfig::new(path)
    }
}

/// The kind the soak gives sequence number `seq`.
pub fn kind_of(seq: Seq) -> RecordKind {
    if seq.is_multiple_of(ALERT_EVERY) {
        RecordKind::Alert
    } else {
        RecordKind::Readings
    }
}

/// The payload the soak writes under `seq`: 100 to 1099 bytes, starting with the sequence
/// number, then a pattern that depends on it.
pub fn payload(seq: Seq) -> Vec<u8> {
    let len = 100 + (seq.wrapping_mul(7919) % 1000) as usize;
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend((8..len).map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8)));
    p
}

/// Appends until killed, at `rate` records per second (0: as fast as possible), reporting
/// to `report` (the process's stdout in the soak binary).
pub fn run(path: &Path, rate: u32, report: impl Write) -> Result<(), SpoolError> {
    run_with(
        path,
        &SoakOptions {
            rate,
            ..SoakOptions::default()
        },
        report,
    )
}

pub fn run_with(
    path: &Path,
    options: &SoakOptions,
    mut report: impl Write,
) -> Result<(), SpoolError> {
    let mut spool = Spool::open(config(path, options.flush), Arc::new(Metrics::default()))?;
    let line = |report: &mut dyn Write, text: std::fmt::Arguments| {
        writeln!(report, "{text}")
            .and_then(|()| report.flush())
            .map_err(SpoolError::Report)
    };
    line(
        &mut report,
        format_args!(
            "open next={} recovered={} boot={}",
            spool.next_seq(),
            spool.open_report().recovered,
            spool.boot_id()
        ),
    )?;
    let started = Instant::now();
    let mut written = 0u64;
    while options.max_records.is_none_or(|m| written < m) {
        if options.rate > 0 {
            let due = started + Duration::from_secs_f64(written as f64 / f64::from(options.rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let seq = spool.next_seq();
        let appended = spool.append(kind_of(seq), payload(seq))?;
        assert_eq!(appended.seq, seq, "the spool hands out next_seq()");
        written += 1;
        line(&mut report, format_args!("appended {seq}"))?;
        let flushed = match appended.flushed {
            Some(f) => Some(f),
            None => spool.flush_if_due(Instant::now())?,
        };
        if let Some(through) = flushed.and_then(|f| f.through) {
            line(&mut report, format_args!("flushed {through}"))?;
        }
    }
    let f = spool.close()?;
    if let Some(through) = f.through {
        line(&mut report, format_args!("flushed {through}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_differ_by_sequence_and_carry_it() {
        assert_ne!(payload(1), payload(2));
        assert_eq!(&payload(1234)[..8], &1234u64.to_le_bytes());
        assert!((100..1100).contains(&payload(99).len()));
        assert_eq!(kind_of(0), RecordKind::Alert);
        assert_eq!(kind_of(1), RecordKind::Readings);
    }

    #[test]
    fn a_bounded_run_reports_every_append_and_a_final_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let options = SoakOptions {
            max_records: Some(200),
            ..SoakOptions::default()
        };
        run_with(dir.path(), &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("open next=0 recovered=0"),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("appended ")).count(),
            200
        );
        assert_eq!(*lines.last().unwrap(), "flushed 199");
        // A second run continues the sequence and finds the first run's records.
        let mut out = Vec::new();
        run_with(dir.path(), &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.contains("recovered=200"), "{first}");
        let next: u64 = first["open next=".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(next >= 200, "{first}");
    }
}
