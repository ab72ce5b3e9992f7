//! The spool: a crash-safe store-and-forward queue between the pipeline and the uplink.
//!
//! It owns everything the agent still has to send while the truck is out of coverage, and
//! the decision of what goes out next. It never looks inside a payload (alerts and reading
//! batches are opaque bytes with a [`RecordKind`]) and it never talks to the network.
//!
//! # Invariants (DESIGN.md, "Spool"; each one is tested where named)
//!
//! 1. **Delete only on acknowledgement.** A record leaves the spool when [`Spool::ack`] is
//!    called for it (the uplink calls it on PUBACK), or when the eviction policy (5) drops
//!    it; nothing else removes one. Disconnects requeue. (`ledger::tests`, `tests::model`)
//! 2. **Checksummed, sequenced, with the boot id.** Every stored value carries a CRC-32 over
//!    key and value, the boot id of the run that wrote it, and a sequence number that grows
//!    with every append and is never reused in the same store (a flushed lease in the
//!    `meta` tree covers sequence numbers handed out but never written). Consumers drop
//!    duplicates by `(thing, boot_id, seq)`. A record that fails its checksum is never handed
//!    out: it is dropped and counted. (`record::tests`, `tests/spool_crash.rs`)
//! 3. **A stated loss window.** "Flushed" means a `sled::Db::flush` (fsync) returned after
//!    the record was written; [`Spool::flush`] reports the highest sequence number it covers.
//!    The agent flushes when [`FlushPolicy::every_records`] appends or [`FlushPolicy::every`]
//!    have passed since the first unflushed append, whichever comes first, and at once after
//!    an alert when [`FlushPolicy::alerts_at_once`]. A power cut loses at most the records
//!    appended since the last completed flush (and, in write-only-while-offline mode, up to
//!    `max_unstored` readings kept only in memory). `tests/spool_crash.rs` kills a writer
//!    with SIGKILL at random points and checks that nothing flushed is lost.
//! 4. **Startup never blocks on a damaged store.** Opening and scanning run on their own
//!    thread under [`SpoolConfig::open_timeout`], with panics caught; a store that fails,
//!    panics or hangs is renamed into `quarantine/` with a timestamp, counted
//!    (`spool_quarantined_total`), logged, and a fresh store starts. Only the newest
//!    [`SpoolConfig::max_quarantined`] quarantined stores are kept. (`tests::damaged_*`)
//! 5. **Bounded disk.** [`SpoolConfig::max_bytes`] caps the bytes of pending records; when a
//!    new record would pass it the oldest readings are evicted first; alerts are kept up to
//!    their own [`SpoolConfig::max_alert_bytes`], beyond which the oldest alert goes. sled's
//!    files on disk are larger than the live bytes (log-structured, and it never gives space
//!    back to the filesystem): the benchmark measures that amplification and
//!    `tests::disk_use_stays_bounded_under_churn` bounds it.
//! 6. **Alerts first.** Alerts go out before any reading; after a reconnect, readings appended
//!    since the connect and the older backlog take turns. At most `max_in_flight` records are
//!    unacknowledged at once. Rate pacing (100 publishes/s, 512 KiB/s) is the uplink's.
//! 7. **Write only while offline.** With [`WriteMode::OnlyWhileOffline`], readings appended
//!    while the link is up and the uplink keeps up stay in memory and go straight to the
//!    uplink; they are written to flash when the link drops, when they wait longer than
//!    [`SpoolConfig::spill_after`], and at shutdown. Alerts are always written.
//!
//! # Layout of the spool directory
//!
//! ```text
//! DIR/store/                         sled's files (conf, db, snap.*, blobs/)
//! DIR/quarantine/<unix-seconds>-<reason>/   damaged stores moved aside, newest kept
//! ```
//!
//! sled keeps two trees: `records` (key: sequence number, value: see [`record`]) and
//! `meta` (`format` = 1, `seq_lease` = the first sequence number not yet leased).
//!
//! # sled settings for a gateway
//!
//! - `cache_capacity` 2 MiB (sled's default is 1 GiB): the spool appends at the end and reads
//!   from the front, so a small page cache serves it; the agent's whole budget is 20 MB.
//! - `flush_every_ms(None)`: sled's own 500 ms background flush is off, so durability
//!   happens only where [`FlushPolicy`] says and "flushed" has one meaning; it also keeps
//!   flash writes to what the policy asks.
//! - `Mode::LowSpace` (sled's default): it rewrites more to keep files compact, which the
//!   disk cap needs more than write throughput (the spool's rate is a few records per second).
//!
//! # What sled does not hold (measured; see the report of issue 5 and `benches/spool.rs`)
//!
//! - Damage in the middle of sled's log is usually read as the torn end of the log: sled
//!   opens without an error and everything written after the damage is gone (4 KiB of
//!   garbage at the middle of a 2000-record log gave back about 1100 records). Sometimes it
//!   panics instead (quarantined). The checksums guarantee nothing damaged is handed out;
//!   they cannot bring back what sled dropped. redb reports such damage instead.
//! - Resident memory grows with the data written, whatever `cache_capacity` says: about
//!   10 MB with 4 MiB queued, 25 MB with 20 MiB, 37 MB with 80 MiB, 50-60 MB while churning
//!   through a 16 MiB cap. That is over the agent's 20 MB target for long outages.
//! - Files on disk: about 1.8 times the live bytes, and 2.5-2.7 times the cap in steady
//!   churn; sled never gives the space back.
//!
//! # Module map
//!
//! - [`record`]: the on-disk envelope and checksum.
//! - [`ledger`]: the pure state machine (order, in flight, eviction, write mode).
//! - `store`: [`Spool`], which owns sled and applies the ledger.
//! - [`task`]: the tokio-facing handle the pipeline and the uplink use.
//! - [`inspect`]: `vigil spool inspect`. [`soak`]: the crash-test writer.

mod error;
pub mod inspect;
pub mod ledger;
pub mod record;
pub mod soak;
mod store;
pub mod task;

use std::path::PathBuf;
use std::time::Duration;

pub use error::SpoolError;
pub use inspect::{InspectReport, inspect};
pub use ledger::{Depth, KindDepth, WriteMode};
pub use record::{Record, RecordKind, Seq};
pub use store::{Appended, Flushed, OpenReport, Spool, SpoolStats};
pub use task::{SpoolHandle, SpoolTask};

/// When the spool makes its writes durable (invariant 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush after this many appends since the last flush.
    pub every_records: u64,
    /// Flush when the oldest unflushed append is this old.
    pub every: Duration,
    /// Flush right after every alert is appended.
    pub alerts_at_once: bool,
}

impl Default for FlushPolicy {
    /// One second or 100 records: at the real rate (one reading batch every few seconds) a
    /// power cut loses at most the last second of readings, and the flash sees about one
    /// fsync per second at most. Alerts are rare and matter most: flushed at once.
    fn default() -> Self {
        FlushPolicy {
            every_records: 100,
            every: Duration::from_secs(1),
            alerts_at_once: true,
        }
    }
}

/// Everything the spool needs; the agent's config file maps onto this.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolConfig {
    /// The spool directory (see the layout above).
    pub dir: PathBuf,
    /// Cap on the bytes of pending records, alerts included.
    pub max_bytes: u64,
    /// Cap on the bytes of pending alerts.
    pub max_alert_bytes: u64,
    /// The largest payload accepted; at most [`record::MAX_PAYLOAD`] (AWS IoT Core's limit).
    pub max_payload: usize,
    /// Unacknowledged records at most (AWS IoT Core: 100 QoS 1 publishes per connection).
    pub max_in_flight: usize,
    pub write_mode: WriteMode,
    pub flush: FlushPolicy,
    /// In write-only-while-offline mode, a reading kept in memory longer than this is written.
    pub spill_after: Duration,
    /// sled's page cache in bytes.
    pub cache_capacity: u64,
    /// How long opening and scanning the store may take before it counts as damaged.
    pub open_timeout: Duration,
    /// Quarantined stores kept; older ones are deleted (they count against the disk too).
    pub max_quarantined: usize,
}

impl SpoolConfig {
    /// Defaults for a gateway: 64 MiB of spool (days of reading batches at one 5 KB message
    /// per 10 s), 8 MiB of it for alerts.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 64 << 20,
            max_alert_bytes: 8 << 20,
            max_payload: record::MAX_PAYLOAD,
            max_in_flight: 100,
            write_mode: WriteMode::Always,
            flush: FlushPolicy::default(),
            spill_after: Duration::from_secs(5),
            cache_capacity: 2 << 20,
            open_timeout: Duration::from_secs(10),
            max_quarantined: 3,
        }
    }

    pub(crate) fn ledger_config(&self) -> ledger::LedgerConfig {
        ledger::LedgerConfig {
            max_bytes: self.max_bytes,
            max_alert_bytes: self.max_alert_bytes,
            max_in_flight: self.max_in_flight,
            write_mode: self.write_mode,
            max_record_bytes: record::stored_len(self.max_payload),
        }
    }

    /// Checks the numbers before anything is opened.
    pub fn validate(&self) -> Result<(), SpoolError> {
        if self.max_payload > record::MAX_PAYLOAD {
            return Err(SpoolError::Config(format!(
                "max_payload is {} but AWS IoT Core takes at most {} bytes: lower it",
                self.max_payload,
                record::MAX_PAYLOAD
            )));
        }
        self.ledger_config()
            .validate()
            .map_err(SpoolError::Config)?;
        if self.flush.every_records == 0 {
            return Err(SpoolError::Config(
                "flush.every_records is 0: use 1 to flush after every record".into(),
            ));
        }
        Ok(())
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }
}

#[cfg(test)]
mod tests;
