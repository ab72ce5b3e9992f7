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
//!    `meta` table covers sequence numbers handed out but never written). Consumers drop
//!    duplicates by `(thing, boot_id, seq)`. A record that fails its checksum is never handed
//!    out: it is dropped and counted. (`record::tests`, `tests/spool_crash.rs`)
//! 3. **A stated loss window.** "Flushed" means that a redb write transaction holding the
//!    record committed with `Durability::Immediate` (written, then `fdatasync`);
//!    [`Spool::flush`] reports the highest sequence number it covers. Between flushes the
//!    changes sit in one open transaction in memory, so a crash rolls back to the last flush.
//!    The agent flushes when [`FlushPolicy::every_records`] appends or [`FlushPolicy::every`]
//!    have passed since the first unflushed append, whichever comes first, and at once after
//!    an alert when [`FlushPolicy::alerts_at_once`]. A power cut loses at most the records
//!    appended since the last completed flush (and, in write-only-while-offline mode, up to
//!    `max_unstored` readings kept only in memory). `tests/spool_crash.rs` kills a writer
//!    with SIGKILL at random points and checks that nothing flushed is lost: 0 lost over 100
//!    kills (CI) and 400 (local); of the records appended but not yet flushed at a kill (at
//!    most `every_records`, 64 there) 80-93 % were lost, the rest had just been committed.
//!    SIGKILL leaves the kernel's page cache to be written; a power cut does not.
//!    `powercut.rs` runs the spool on a redb backend that models a disk with a volatile
//!    write cache and cuts the power under load, with the default policy, at random points
//!    (at one of the store's writes or syncs, or between two calls): half the cuts drop
//!    every write not yet synced, half keep a random subset of the unsynced 4 KiB pages or
//!    512-byte sectors, so a commit, or a page, can reach the disk torn. The store is then
//!    opened as the agent opens it. Over 2,000 cuts (two runs of 1,000; CI runs 100 on the
//!    host, 20 under qemu-aarch64): each of the 215,802 records covered by a completed flush
//!    was there unless acked, no record acked before a completed flush came back, nothing
//!    was corrupt, no store was quarantined, and sequence numbers kept growing. 177 of the
//!    1,000 torn cuts had kept redb's new header without every page written with it. Of
//!    the records appended after the last completed flush (at most 100, `every_records`: at
//!    that rate the count bound comes before the time bound), 98.7-99.6 % were lost when
//!    the cache was dropped and 97.6-99.6 % when it was torn; the rest had been committed
//!    without a reported flush: by the store's own commit after 256 changes
//!    (acknowledgements count), or by a commit whose pages had all reached the disk when
//!    the power went.
//! 4. **Startup never blocks on a damaged store.** Opening and scanning run on their own
//!    thread under [`SpoolConfig::open_timeout`], with panics caught; a store that fails,
//!    panics or hangs is renamed into `quarantine/` with a timestamp, counted
//!    (`spool_quarantined_total`), logged, and a fresh store starts. Only the newest
//!    [`SpoolConfig::max_quarantined`] quarantined stores are kept. redb verifies the
//!    checksum of every page at open, so damage anywhere in live data is reported and the
//!    store quarantined; it is never read as a shorter store. What can still be read of the
//!    quarantined store (read-only, past damaged pages, each record's own checksum checked)
//!    is queued again in the fresh one under its own sequence numbers and sent marked
//!    `"recovered": true` (`spool_rescued_total`, logged at warn): 1,962-1,968 of 2,000
//!    records came back from a store with 4 KiB of garbage over its records; none when the
//!    file's header is gone (redb cannot open it at all). (`tests::damage*`, `tests::*_quarantined`)
//!    A store that cannot be had at all (a folder the agent may not open or create, a
//!    regular file in its place), or one that fails while the agent runs (a full disk),
//!    gives a spool held in memory (caps 2 MiB, 512 KiB of alerts; `spool_memory_only`,
//!    logged at error) that goes back to the disk by itself when the disk takes writes
//!    again, without a restart (`store/memory.rs`): the alarm and the uplink never wait on
//!    the disk, and nothing appended is lost on the way. Only another process holding the
//!    store stops the start.
//!    (`tests::a_store_that_cannot_be_opened_gives_a_spool_in_memory_that_still_delivers`,
//!    `tests/spool_disk_full.rs` on a real tmpfs)
//! 5. **Bounded disk.** [`SpoolConfig::max_bytes`] caps the store's file. Pending records
//!    fill at most 7/16 of it, each counted with the pages redb gives it
//!    ([`record::footprint`]); the rest is redb's own (branches, pages copied on write) and
//!    its growth by doubling. When a new record would pass the cap the oldest readings are
//!    evicted first; alerts are kept up to their own [`SpoolConfig::max_alert_bytes`],
//!    beyond which the oldest alert goes. Freed pages are reused, and the file is compacted
//!    back once it is mostly free. `tests::the_file_stays_under_its_cap_whatever_the_record_size`:
//!    through an 8 MiB cap, the file stayed at 4.0-4.7 MiB with 700, 3,900 and 4,950-byte
//!    records. Records of 20 KB (32 KiB pages) fragment more: their file reached 16.1 MiB
//!    for a 16 MiB cap in one measurement (8.0 MiB for 8 and 32.1 for 64). At the default
//!    128 MiB cap, `benches/spool.rs` churns 320 MiB of 4 KiB readings through it (a slow
//!    link acking 3 records in 20, the rest evicted) and fails if the file ever passes the
//!    cap: it peaked at 64.3 MiB. Compaction is redb's own, in transactions of its own, so
//!    a power cut in the middle of one loses nothing flushed: `powercut/compaction.rs` cuts
//!    the power at 13 points spread over a compacting flush (the commit of the acks, the
//!    moves, the file cut short) and finds every unacked record there, intact, the store
//!    not quarantined, and the next flush compacting what the cut left past 4 MiB.
//! 6. **Alerts first.** Alerts go out before any reading; after a reconnect, readings appended
//!    since the connect and the older backlog take turns. At most `max_in_flight` records are
//!    unacknowledged at once. Rate pacing (at most 100 publishes and 512 KiB in any second
//!    at the broker) is the uplink's.
//! 7. **Write only while offline.** With [`WriteMode::OnlyWhileOffline`], readings appended
//!    while the link is up and the uplink keeps up stay in memory and go straight to the
//!    uplink; they are written to flash when the link drops, when they wait longer than
//!    [`SpoolConfig::spill_after`], and at shutdown. Alerts are always written.
//!
//! # Layout of the spool directory
//!
//! ```text
//! DIR/store/spool.redb                      the store: one redb file
//! DIR/quarantine/<unix-seconds>-<reason>/   damaged stores moved aside, newest kept
//! ```
//!
//! The file holds two tables: `records` (key: sequence number, value: see [`record`]) and
//! `meta` (`format` = 1, `seq_lease` = the first sequence number not yet leased).
//!
//! # redb settings for a gateway (`store/redb_store.rs`)
//!
//! - Cache 2 MiB ([`SpoolConfig::cache_capacity`]; redb's default is 1 GiB): the spool
//!   appends at the end and reads from the front, so a small cache serves it; the agent's
//!   whole budget is 20 MB.
//! - One write transaction per flush, committed with `Durability::Immediate` and redb's
//!   default 1-phase commit (checksummed commit slots, which survive a commit torn by a
//!   power cut: `powercut.rs`): one commit per [`FlushPolicy`]
//!   flush, so the flash sees what the policy asks and "flushed" has one meaning. An open
//!   transaction is also committed after 256 changes, which bounds the memory and space
//!   that acknowledgements (not counted by the policy) hold.
//! - redb is built at opt-level "s" in the release profile (the root `Cargo.toml`): at "z"
//!   it zero-fills each page it reads a byte at a time, and reopening a full spool spent
//!   40 % of its time there.
//! - `set_check_integrity_on_open(true)`: every page is checked at open (a 64 MiB file of
//!   8 KiB leaves in 155-180 ms with redb at "s", 375-410 ms at "z", on a loaded machine:
//!   a redb-only probe). Quick-repair is off: it would save the allocator state at every commit to make
//!   crash recovery instant, but the open reads the whole file anyway.
//! - Exclusive writer (redb's default): a second process gets [`SpoolError::Locked`].
//! - Compaction at flush when the file is past 4 MiB and 8 times the live bytes (after a
//!   backlog drained): the file shrinks to a few KiB (16 KiB in
//!   `tests::the_file_gives_space_back_once_a_backlog_has_drained`). Not sooner: a full spool's
//!   file is legitimately 2-4 times its live bytes, and compacting would rewrite it all.
//!
//! # Measured limits (`benches/spool.rs`, 4 KiB payloads, one x86 VM, ext4)
//!
//! - Appends: 11,000-43,000 records/s flushing every 100; 125-3,300/s flushing every
//!   record (0.3-8 ms per commit: two `fdatasync`s; the VM's disk is shared and its fsync
//!   time varies that much between runs). Drain (send 100, ack each): 21,000-140,000
//!   records/s. Far above the spool's real rate (a few records per second).
//! - Reopen (the agent's start after an outage; target < 250 ms in wall time, a quarter of
//!   the 1 s start budget, since the gateway's cores are slower than this VM): a full spool
//!   at the default cap (7,168 records of 4 KiB, a 57 MiB file), median of five reopens,
//!   the bench built with redb at "z" and at "s" run one after the other on the 2-core VM
//!   while other builds ran (load 5.3): 419 ms (CPU time 278 ms) at "z", 227 ms (CPU time
//!   139 ms) at "s". Under heavier load the wall time passes the target and the bench
//!   fails: 480-646 ms at "s" (CPU time 122-142 ms) against 1,303 ms at "z" (CPU time
//!   282 ms) with a clippy run beside them. 20,480 records of 4 KiB under a cap
//!   that never evicts them (a 257 MiB file): 1,021 ms (CPU 617 ms) at "z", 666 ms (CPU
//!   436 ms) at "s". The open reads the file three times: redb's check and its rebuild of
//!   the allocator state, then the spool's scan of every record.
//! - Resident memory (`VmRSS` of the bench process, one process per size, 2.0-2.4 MB
//!   before the spool opens): 5.6-6.0 MB with 4 MiB queued, 6.3-6.4 MB with 20 MiB,
//!   7.9-8.3 MB with 80 MiB, 8.2-10.6 MB after reopening it; peak (`VmHWM`) 8.0-11.4 MB.
//!   The bench as it is now (80 MiB queued, reopened, drained, then 320 MiB churned through
//!   the 128 MiB cap and the full spool reopened five times): 10.9-11.1 MB with 80 MiB
//!   queued, 13.4-13.7 MB reopened, 13.9-14.2 MB through the churn, peak 14.1-14.4 MB.
//! - Disk: redb rounds a value up to a power of two of 4 KiB pages, so a record of a
//!   4,096-byte payload takes 8 KiB, and one of a 4,000-byte payload one page; smaller ones
//!   share a page. The file grows by doubling and is sparse. Before the caps counted pages
//!   and the file (invariant 5), 4,950-byte payloads churning through a 64 MiB cap made a
//!   file 128.5 MiB long with 107 MiB allocated; now 64 MiB holds 28 MiB of records in a
//!   file of 32 MiB. Reading batches of at most 4,000 bytes halve the disk. Size the
//!   partition for [`SpoolConfig::max_bytes`] and as much again for each quarantined store
//!   kept. After a drain the file is compacted to near zero (60-220 ms for 80 MiB).
//! - Disk full (`tests/spool_disk_full.rs`, a 4 MiB tmpfs grown with a remount): after a
//!   failed commit redb refuses every write ("previous I/O error") until the file is
//!   opened again, and on a disk still full even a delete fails (copy-on-write needs free
//!   pages). The spool therefore moves to memory at the first failure (`store/memory.rs`):
//!   1,000 records of 3.9 KB filled the disk, 120 more were appended while it was full, all
//!   1,120 were delivered once after it grew, none evicted; the write-back took 0.40 s, and
//!   the spool task was back on the disk 1.3 s after the remount. Still, the cap, not the
//!   disk, should be the limit: size the partition for it (below).
//! - sled 0.34.7, measured side by side, was replaced because its resident memory grew
//!   with the data (38 MB with 80 MiB queued, 123 MB after reopening it, 58-140 MB
//!   churning), it never gave disk space back, it read damage or a truncation in its log
//!   as a shorter log and dropped the records after it without an error (164 to 1,097 of
//!   2,000 came back), and its flush on Linux is `sync_file_range`, which does not flush
//!   the drive's cache or the file's metadata: not durable across a power cut.
//!
//! # Module map
//!
//! - [`record`]: the on-disk envelope and checksum.
//! - [`ledger`]: the pure state machine (order, in flight, eviction, write mode).
//! - `store`: [`Spool`], which owns the store and applies the ledger; opening and
//!   quarantine. `store/redb_store.rs`: the redb file and its settings.
//! - [`task`]: the tokio-facing handle the pipeline and the uplink use.
//! - [`mod@inspect`]: `vigil spool inspect`. [`soak`]: the crash-test writer.

mod config;
mod error;
pub mod inspect;
pub(crate) mod ledger;
pub(crate) mod record;
pub mod soak;
mod store;
pub(crate) mod task;

use std::path::PathBuf;
use std::time::Duration;

pub use config::SpoolSection;
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

/// The share of the caps that records' [`record::footprint`]s may fill: the caps are the
/// store file's, and the rest of the file is redb's own pages (the tree's branches, pages
/// copied on write, the allocator's state: 0.4-2.3 MiB measured at caps of 16 and 64 MiB)
/// and its growth by doubling, which would otherwise take the file to twice what it holds.
/// Measured in `tests::the_file_stays_under_its_cap_whatever_the_record_size`.
fn records_share(cap: u64) -> u64 {
    cap / 16 * 7
}

/// Everything the spool needs; the agent's config file maps onto this.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolConfig {
    /// The spool directory (see the layout above).
    pub dir: PathBuf,
    /// Cap on the store's file in bytes. Pending records fill at most 7/16 of it, each
    /// counted with the pages it takes ([`record::footprint`]); when a new one would not
    /// fit, the oldest readings are evicted first.
    pub max_bytes: u64,
    /// The part of `max_bytes` alerts may use, counted the same way.
    pub max_alert_bytes: u64,
    /// The largest payload accepted; at most [`record::MAX_PAYLOAD`] (AWS IoT Core's limit).
    pub max_payload: usize,
    /// Unacknowledged records at most (AWS IoT Core: 100 QoS 1 publishes per connection).
    pub max_in_flight: usize,
    pub write_mode: WriteMode,
    pub flush: FlushPolicy,
    /// In write-only-while-offline mode, a reading kept in memory longer than this is written.
    pub spill_after: Duration,
    /// The store's page cache in bytes (redb's read cache and write buffer).
    pub cache_capacity: u64,
    /// How long opening and scanning the store may take before it counts as damaged.
    pub open_timeout: Duration,
    /// Quarantined stores kept; older ones are deleted (they count against the disk too).
    pub max_quarantined: usize,
}

impl SpoolConfig {
    /// Defaults for a gateway: a store file of at most 128 MiB (about 20 hours of reading
    /// batches at one 5 KB message, 8 KiB on disk, per 10 s), 16 MiB of it for alerts.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 128 << 20,
            max_alert_bytes: 16 << 20,
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

    /// The ledger counts each record's [`record::footprint`] against [`records_share`] of
    /// the caps.
    pub(crate) fn ledger_config(&self) -> ledger::LedgerConfig {
        ledger::LedgerConfig {
            max_bytes: records_share(self.max_bytes),
            max_alert_bytes: records_share(self.max_alert_bytes),
            max_in_flight: self.max_in_flight,
            write_mode: self.write_mode,
            max_record_bytes: record::footprint(self.max_payload),
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
        // The file bytes one record of the largest payload needs.
        let largest = (record::footprint(self.max_payload) * 16).div_ceil(7);
        if self.max_alert_bytes < largest {
            return Err(SpoolError::Config(format!(
                "max_alert_bytes is {} but one alert may need {largest} bytes of the store's \
                 file: raise it to at least {largest}",
                self.max_alert_bytes
            )));
        }
        if self.max_bytes < self.max_alert_bytes + largest {
            return Err(SpoolError::Config(format!(
                "max_bytes is {} but must leave room for one reading batch ({largest} bytes of \
                 the file) beyond max_alert_bytes ({}): raise max_bytes to at least {}",
                self.max_bytes,
                self.max_alert_bytes,
                self.max_alert_bytes + largest
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
mod powercut;
#[cfg(test)]
mod tests;
