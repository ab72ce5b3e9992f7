//! Every metric the agent keeps, named in one place so operators can rely on the names.
//!
//! Counters only ever grow (their names end in `_total`); the few gauges (their doc starts
//! with "Gauge:") are set. All are plain atomics shared by the stages through an
//! `Arc<Metrics>`. A snapshot is what the exit line, the demo view and the uplink's status
//! message show; [`exposition`] serves every one of them to Prometheus, with its doc
//! comment as its help, from the listener in [`endpoint`] (`[metrics] listen`).
//!
//! Reading the metrics never takes a lock a stage holds: a scrape loads the atomics.

pub mod config;
pub mod endpoint;
pub mod exposition;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

pub use config::MetricsConfig;

/// Whether a metric only grows or is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric as operators see it: its name and its doc comment.
#[derive(Debug)]
pub struct Description {
    pub name: &'static str,
    /// The doc comment, one string a line (each with rustdoc's leading space).
    doc: &'static [&'static str],
}

impl Description {
    /// A gauge says so first in its doc; every other metric is a counter.
    pub fn kind(&self) -> Kind {
        match self.doc.first() {
            Some(line) if line.trim_start().starts_with("Gauge:") => Kind::Gauge,
            _ => Kind::Counter,
        }
    }

    /// The doc comment as one line, without the "Gauge:" mark.
    pub fn help(&self) -> String {
        let text = self
            .doc
            .iter()
            .map(|line| line.trim())
            .collect::<Vec<_>>()
            .join(" ");
        match text.strip_prefix("Gauge:") {
            Some(rest) => rest.trim_start().to_owned(),
            None => text,
        }
    }
}

/// Which of the pipeline's tasks run: what `/readyz` answers and the status message says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Liveness {
    /// Tasks started: the sources and every stage.
    pub started: usize,
    /// Of those, the ones still running.
    pub alive: usize,
    /// The names of the tasks that have ended, each once (`source:serial`, `uplink`): at
    /// most one a task the pipeline starts, so the list stays short.
    pub dead: Vec<&'static str>,
}

/// Asks the pipeline which tasks run (the metrics endpoint and the uplink's status hold one).
pub type LivenessProbe = Box<dyn Fn() -> Liveness + Send + Sync>;

impl Liveness {
    /// Every task started is still running.
    pub fn is_whole(&self) -> bool {
        self.alive == self.started
    }
}

macro_rules! metrics {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// The agent's counters. Each field's name is the metric's name.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        /// A point-in-time copy of [`Metrics`].
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
        pub struct MetricsSnapshot {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        /// Every metric, in the order of [`Metrics`]' fields.
        pub const DESCRIPTIONS: &[Description] = &[
            $( Description { name: stringify!($name), doc: &[$($doc),*] }, )*
        ];

        impl Metrics {
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl MetricsSnapshot {
            /// Every metric with its value, in the order of [`DESCRIPTIONS`].
            pub fn values(&self) -> impl Iterator<Item = (&'static Description, u64)> {
                DESCRIPTIONS.iter().zip([$( self.$name ),*])
            }
        }
    };
}

metrics! {
    /// CAN frames that reached the decoder.
    can_frames_total,
    /// CAN frames whose PGN no configured signal uses (not an error: buses carry much more).
    can_frames_unknown_total,
    /// Error frames: frames the bus broke off, as a log recorded them.
    can_bus_errors_total,
    /// CAN frames too short for a signal they should carry.
    can_frames_bad_length_total,
    /// Serial-node messages decoded with a good checksum.
    serial_messages_total,
    /// Serial frames rejected: broken framing, too long, wrong length.
    serial_framing_errors_total,
    /// Serial frames whose CRC did not match.
    serial_checksum_errors_total,
    /// Serial frames from another protocol version or of an unknown kind.
    serial_protocol_errors_total,
    /// Serial messages missing according to the node's sequence numbers.
    serial_sequence_gaps_total,
    /// J1939 transport-protocol sessions opened by an announcement (BAM or RTS).
    tp_sessions_opened_total,
    /// NMEA sentences from a GPS receiver with a good checksum (with a fix or not).
    gps_sentences_total,
    /// GPS position fixes read (RMC or GGA with a fix).
    gps_fixes_total,
    /// NMEA lines refused: no `$...*hh` framing, longer than NMEA allows, a checksum that
    /// does not match, or a position field that cannot be read.
    gps_sentences_rejected_total,
    /// J1939 transport-protocol messages reassembled (BAM or RTS/CTS).
    tp_messages_total,
    /// Transport-protocol transfers dropped because a packet came later than J1939-21 allows.
    tp_timeouts_total,
    /// Transport-protocol transfers aborted by a node, or replaced by a new announcement.
    tp_aborts_total,
    /// Transport-protocol frames refused: bad announcements, packets out of sequence or
    /// outside any transfer (a listener joining mid-transfer sees a few), too many sessions.
    tp_errors_total,
    /// Transport-protocol announcements refused for capacity: their sender already held its
    /// share of a bus, the bus was full of senders standing better, or too many buses.
    tp_sessions_refused_total,
    /// Transport-protocol sessions ended to make room for a sender standing better.
    tp_sessions_evicted_total,
    /// Findings of the bus's intrusion monitor, reported or held back as repeats.
    security_findings_total,
    /// Security events reported (published, written by replay).
    security_events_total,
    /// Frames on buses beyond those the intrusion monitor watches.
    security_frames_unwatched_total,
    /// DM1 diagnostic messages decoded into events.
    diagnostics_total,
    /// DM1 messages too short to read.
    diagnostics_malformed_total,
    /// Lines of a replayed log that are not frames (skipped, the replay carries on).
    replay_lines_malformed_total,
    /// Sources that ended with an error (`source_failed`): `vigil run` then exits 1.
    sources_failed_total,
    /// Times a serial port or CAN interface was reopened after it failed.
    source_reopens_total,
    /// Readings produced by the decoders, good or flagged.
    readings_total,
    /// Readings the batch stage could not take because it was behind (shed, counted).
    readings_shed_total,
    /// Batches of readings sealed for the uplink.
    batches_sealed_total,
    /// Alerts raised.
    alerts_raised_total,
    /// Alerts cleared.
    alerts_cleared_total,
    /// Alert, DM1 or security events the fleet path could not take (its queue was full); the
    /// cab still got every alert.
    alerts_shed_total,
    /// Records appended to the spool.
    spool_appended_total,
    /// Spooled records acknowledged by the broker and deleted.
    spool_acked_total,
    /// Spooled records evicted to stay under the spool's caps (oldest readings first).
    spool_evicted_total,
    /// Damaged spool stores moved aside at startup.
    spool_quarantined_total,
    /// Records read back from quarantined spool stores (their checksums held) and queued
    /// again, marked as recovered.
    spool_rescued_total,
    /// Spooled records that failed their checksum (or vanished) and were dropped, never sent.
    spool_corrupt_records_total,
    /// Readings kept in memory instead of flash (write-only-while-offline mode).
    spool_unstored_total,
    /// Readings kept in memory that were later written to flash (link down, stale, shutdown).
    spool_spilled_total,
    /// Gauge: 1 while the spool's store is held in memory because the one on disk could
    /// not be opened or failed (what it holds is lost if the agent stops first), else 0.
    spool_memory_only,
    /// Times the spool's store on disk failed (a full or failing disk) and the spool moved
    /// its records to memory until the disk took writes again.
    spool_store_failures_total,
    /// Spool flushes (fsync) completed.
    spool_flushes_total,
    /// Gauge: duration of the last spool flush, microseconds.
    spool_flush_last_us,
    /// Gauge: the longest spool flush since start, microseconds.
    spool_flush_max_us,
    /// Gauge: records pending in the spool (alerts and readings).
    spool_records,
    /// Gauge: bytes of records pending in the spool (key, header and payload).
    spool_bytes,
    /// Gauge: alerts pending in the spool.
    spool_alert_records,
    /// Gauge: spooled records handed to the uplink and not yet acknowledged.
    spool_in_flight,
    /// Gauge: age of the oldest pending spooled record, milliseconds (0 when empty).
    spool_oldest_age_ms,
    /// Connections to the broker established (CONNACK).
    uplink_connects_total,
    /// Connection attempts that failed (TCP, TLS or MQTT refused); each one is logged.
    uplink_connect_failures_total,
    /// Established connections that were lost.
    uplink_disconnects_total,
    /// Publishes handed to the broker connection (records, status, shadow, jobs).
    uplink_published_total,
    /// Payload bytes of those publishes.
    uplink_published_bytes_total,
    /// Spooled records acknowledged by the broker (PUBACK), then deleted from the spool.
    uplink_acked_total,
    /// PUBACKs for a packet id nothing was waiting on (from a connection since lost).
    uplink_unknown_acks_total,
    /// Spooled records no topic fits (a damaged or foreign payload): dropped, never sent.
    uplink_undeliverable_total,
    /// Desired shadow states applied.
    uplink_shadow_applied_total,
    /// Desired shadow states refused (the running config stays).
    uplink_shadow_rejected_total,
    /// Model-update jobs that succeeded.
    uplink_jobs_succeeded_total,
    /// Model-update jobs that failed (the running model stays or was rolled back).
    uplink_jobs_failed_total,
    /// Gauge: when the device certificate expires, Unix seconds (0: no TLS, or not read).
    uplink_certificate_expires_seconds,
    /// Gauge: configured alarm devices (buzzer, button, display) that could not be opened
    /// and are tried again while the agent runs without them.
    alarm_devices_unavailable,
    /// DM1 messages that repeated what their controller said last, not sent again.
    outbound_dm1_repeats_total,
    /// Records the outbound stage could not append to the spool (it had stopped).
    outbound_append_failures_total,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        Self::add(counter, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_every_counter() {
        let m = Metrics::default();
        Metrics::inc(&m.alerts_raised_total);
        Metrics::add(&m.readings_total, 5);
        let s = m.snapshot();
        assert_eq!(
            (
                s.alerts_raised_total,
                s.readings_total,
                s.alerts_cleared_total
            ),
            (1, 5, 0)
        );
    }

    #[test]
    fn every_metric_is_described_and_named_for_its_kind() {
        let m = Metrics::default();
        Metrics::add(&m.spool_records, 7);
        let values: Vec<_> = m.snapshot().values().collect();
        assert_eq!(values.len(), DESCRIPTIONS.len());
        assert!(DESCRIPTIONS.len() > 60, "{}", DESCRIPTIONS.len());
        let (spool_records, seven) = values
            .iter()
            .find(|(d, _)| d.name == "spool_records")
            .unwrap();
        assert_eq!((spool_records.kind(), *seven), (Kind::Gauge, 7));
        assert_eq!(
            spool_records.help(),
            "records pending in the spool (alerts and readings)."
        );
        for d in DESCRIPTIONS {
            // Prometheus counters end in `_total`; a gauge must not look like one.
            assert_eq!(
                d.name.ends_with("_total"),
                d.kind() == Kind::Counter,
                "{}",
                d.name
            );
            let help = d.help();
            assert!(
                !help.is_empty() && !help.contains("  "),
                "{}: {help:?}",
                d.name
            );
        }
        let tp = DESCRIPTIONS
            .iter()
            .find(|d| d.name == "tp_errors_total")
            .unwrap();
        assert!(
            tp.help()
                .contains("refused: bad announcements, packets out of sequence or outside"),
            "{}",
            tp.help()
        );
    }
}
