//! [`Spool`]: owns the store and applies the [`Ledger`]'s decisions to it.
//!
//! This is the only code that touches the store while the agent runs (through
//! `store/redb_store.rs`, which owns the redb file and its settings). It is synchronous: the
//! spool task (`task.rs`) runs it on a thread of its own, so fsyncs never stall the
//! runtime's workers. Opening (with the quarantine of a damaged store) lives here too.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::StoreError;
use super::ledger::{Depth, Eviction, Ledger, WriteMode};
use super::record::{self, Damage, Header, Record, RecordKind, Seq};
use super::{SpoolConfig, SpoolError};
use crate::telemetry::Metrics;

mod memory;
mod redb_store;

#[cfg(test)]
pub(crate) use redb_store::{FILE, backend_for_tests};
pub(crate) use redb_store::{Opened, RedbStore, open as open_store};

/// Sequence numbers leased per flushed write of `seq_lease`: one extra fsync per this many
/// appends buys the promise that no number is handed out twice, even if the records that
/// carried it were never flushed (they may have been sent straight from memory).
const SEQ_LEASE: u64 = 4096;

const META_FORMAT: &[u8] = b"format";
const META_SEQ_LEASE: &[u8] = b"seq_lease";

/// The result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub seq: Seq,
    /// Written to flash (false: kept in memory, write-only-while-offline mode).
    pub stored: bool,
    /// Records evicted to make room.
    pub evicted: u64,
    /// Set when the append itself flushed (an alert under `alerts_at_once`).
    pub flushed: Option<Flushed>,
}

/// A completed flush: every stored record with a sequence number up to `through` is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flushed {
    pub through: Option<Seq>,
    pub took: Duration,
}

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpenReport {
    /// Records found intact and queued again.
    pub recovered: u64,
    /// Records that failed their checksum and were dropped.
    pub corrupt_records: u64,
    /// Records evicted because the caps are smaller than when they were written.
    pub evicted: u64,
    /// Where a damaged store was moved, and why.
    pub quarantined: Option<PathBuf>,
    pub quarantine_reason: Option<String>,
    /// Records read back from the quarantined store (their checksums held), queued again
    /// in the fresh one and marked as recovered.
    pub rescued: u64,
    /// Time spent opening, scanning and (if needed) quarantining.
    pub took: Duration,
}

/// A snapshot of the spool for status messages and the uplink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SpoolStats {
    pub depth: Depth,
    /// Wall-clock ms of the oldest pending record's append.
    pub oldest_created_ms: Option<u64>,
    pub next_seq: Seq,
    /// The highest sequence number covered by a completed flush.
    pub durable_through: Option<Seq>,
    pub boot_id: u64,
    pub online: bool,
    /// The spool runs in memory: its store on disk cannot be used (`store/memory.rs`).
    pub in_memory: bool,
}

pub struct Spool {
    config: SpoolConfig,
    store: RedbStore,
    ledger: Ledger,
    /// Payloads of records kept only in memory (write-only-while-offline mode).
    unstored: HashMap<Seq, Record>,
    boot_id: u64,
    seq_lease: Seq,
    unflushed: u64,
    unflushed_since: Option<Instant>,
    written_through: Option<Seq>,
    durable_through: Option<Seq>,
    metrics: Arc<Metrics>,
    opened: OpenReport,
    /// Evictions since the last warning about them, and when that was.
    evictions: EvictionLog,
    /// Copies of the records written since the last completed flush: a failed commit loses
    /// them from the store, and the spool then keeps these in memory (`memory.rs`).
    unflushed_copies: BTreeMap<Seq, Record>,
    /// Records removed from the store (acknowledged, evicted, dropped) since the last
    /// completed flush: a failed commit brings them back on disk.
    removed_since_flush: Vec<Seq>,
    /// Set while the store on disk cannot be used and the spool runs in memory.
    away: Option<memory::Away>,
}

/// Evictions lose data the fleet never gets: each is counted (`spool_evicted_total`), and a
/// warning says so at most once a minute with the count since the last one, so a spool that
/// stays full tells the operator without a line per record.
#[derive(Default)]
struct EvictionLog {
    since_warned: u64,
    alerts_since_warned: u64,
    warned_at: Option<Instant>,
}

impl EvictionLog {
    const EVERY: Duration = Duration::from_secs(60);

    fn record(&mut self, evicted: &[Eviction], now: Instant) {
        self.since_warned += evicted.len() as u64;
        self.alerts_since_warned += evicted
            .iter()
            .filter(|e| e.kind == RecordKind::Alert)
            .count() as u64;
        let due = self
            .warned_at
            .is_none_or(|at| now.duration_since(at) >= Self::EVERY);
        if self.since_warned > 0 && due {
            tracing::warn!(
                event = "spool_evicted",
                records = self.since_warned,
                alerts = self.alerts_since_warned,
                "spool full: the oldest records were dropped to stay under [spool] max_bytes/max_records; they will never be sent"
            );
            *self = EvictionLog {
                warned_at: Some(now),
                ..EvictionLog::default()
            };
        }
    }
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`. A damaged store is quarantined and a
    /// fresh one started. A store that cannot be had at all (a folder the agent may not
    /// open or create, a regular file in its place, a disk that fails) gives a spool held in
    /// memory (`memory.rs`): smaller caps, the same delivery, lost at exit, logged
    /// (`spool_memory_only`) and counted in the `spool_memory_only` gauge, and tried again
    /// on disk every few seconds, so that detection, the alarm and the uplink run whatever
    /// the disk does. Only another process holding the store is an error.
    pub fn open(config: SpoolConfig, metrics: Arc<Metrics>) -> Result<Spool, SpoolError> {
        config.validate()?;
        let started = Instant::now();
        let mut report = OpenReport::default();
        let (loaded, away) = match Spool::load_from_disk(&config, &metrics, &mut report) {
            Ok(loaded) => (loaded, None),
            Err(error @ SpoolError::Locked { .. }) => return Err(error),
            Err(error) => memory::start_in_memory(&config, &metrics, &error)?,
        };
        let Loaded {
            store,
            found,
            bad,
            lease,
        } = loaded;
        report.corrupt_records = bad.len() as u64;
        Metrics::add(&metrics.spool_corrupt_records_total, bad.len() as u64);

        let mut ledger = Ledger::new(config.ledger_config(), 0);
        for h in &found {
            ledger.restore(
                h.seq,
                h.kind,
                record::footprint(h.payload_len),
                h.created_ms,
            );
        }
        ledger.resume_at(lease);
        report.recovered = found.len() as u64;
        let durable_through = found.last().map(|h| h.seq);

        let mut spool = Spool {
            config,
            store,
            ledger,
            unstored: HashMap::new(),
            boot_id: new_boot_id(),
            seq_lease: 0,
            unflushed: 0,
            unflushed_since: None,
            written_through: durable_through,
            durable_through,
            metrics,
            opened: OpenReport::default(),
            evictions: EvictionLog::default(),
            unflushed_copies: BTreeMap::new(),
            removed_since_flush: Vec::new(),
            away,
        };
        for (key, damage) in &bad {
            tracing::error!(key = ?key, %damage, "spool record damaged: dropped");
            spool.with_store("dropping a damaged record", |s| {
                s.remove(Tree::Records, key)
            })?;
        }
        let evicted = match spool.away {
            Some(_) => spool.ledger.set_caps(
                memory::max_bytes(&spool.config),
                memory::max_alert_bytes(&spool.config),
            ),
            None => spool.ledger.enforce_caps(),
        };
        report.evicted = evicted.len() as u64;
        spool.apply_evictions(&evicted)?;
        spool.with_store("writing the format marker", |s| {
            s.insert(Tree::Meta, META_FORMAT, &[record::FORMAT_VERSION])
        })?;
        // Lease the next block of sequence numbers (and flush it) before any is handed out.
        let next = spool.ledger.next_seq();
        spool.extend_lease(next)?;
        report.took = started.elapsed();
        spool.opened = report;
        spool.publish_gauges();
        tracing::info!(
            recovered = spool.opened.recovered,
            next_seq = next,
            boot_id = spool.boot_id,
            "spool open"
        );
        Ok(spool)
    }

    /// What opening found (recovered records, quarantine).
    pub fn open_report(&self) -> &OpenReport {
        &self.opened
    }

    pub fn boot_id(&self) -> u64 {
        self.boot_id
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> Seq {
        self.ledger.next_seq()
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }

    /// Adds a record. It gets the next sequence number; the caps may evict older records.
    pub fn append(&mut self, kind: RecordKind, payload: Vec<u8>) -> Result<Appended, SpoolError> {
        if payload.len() > self.config.max_payload {
            return Err(SpoolError::PayloadTooLarge {
                kind,
                bytes: payload.len(),
                limit: self.config.max_payload as u64,
            });
        }
        let now_ms = wall_ms();
        let admission = self
            .ledger
            .admit(kind, record::footprint(payload.len()), now_ms)
            .map_err(|t| SpoolError::PayloadTooLarge {
                kind,
                bytes: payload.len(),
                limit: t.budget,
            })?;
        let seq = admission.seq;
        self.apply_evictions(&admission.evicted)?;
        if seq >= self.seq_lease {
            self.extend_lease(seq)?;
        }
        let record = Record {
            seq,
            kind,
            boot_id: self.boot_id,
            created_ms: now_ms,
            recovered: false,
            payload,
        };
        if admission.store {
            if let Err(e) = self.write(&record) {
                self.ledger.forget(seq);
                return Err(e);
            }
        } else {
            self.unstored.insert(seq, record);
            Metrics::inc(&self.metrics.spool_unstored_total);
        }
        Metrics::inc(&self.metrics.spool_appended_total);
        let flushed = if kind == RecordKind::Alert && self.config.flush.alerts_at_once {
            Some(self.flush()?)
        } else {
            None
        };
        self.publish_gauges();
        Ok(Appended {
            seq,
            stored: admission.store,
            evicted: admission.evicted.len() as u64,
            flushed,
        })
    }

    fn write(&mut self, record: &Record) -> Result<(), SpoolError> {
        let (key, value) = (record::key(record.seq), record::encode(record));
        self.with_store("writing a record", |s| {
            s.insert(Tree::Records, &key, &value)
        })?;
        self.unflushed += 1;
        self.unflushed_since.get_or_insert_with(Instant::now);
        if self.away.is_none() {
            self.written_through = self.written_through.max(Some(record.seq));
            self.unflushed_copies.insert(record.seq, record.clone());
        }
        Ok(())
    }

    /// Removes a record from the store (it was acknowledged, evicted or found damaged).
    fn delete(&mut self, op: &'static str, seq: Seq) -> Result<(), SpoolError> {
        // Noted first: if this removal fails the store, it is done again on its return.
        if self.away.is_none() {
            self.removed_since_flush.push(seq);
        }
        self.with_store(op, |s| s.remove(Tree::Records, &record::key(seq)))
    }

    /// The store on disk, quarantining a damaged one and starting afresh.
    fn load_from_disk(
        config: &SpoolConfig,
        metrics: &Metrics,
        report: &mut OpenReport,
    ) -> Result<Loaded, SpoolError> {
        fs::create_dir_all(&config.dir).map_err(|source| SpoolError::CreateDir {
            path: config.dir.clone(),
            source,
        })?;
        let store = config.store_dir();
        let loaded =
            match load(&store, config.cache_capacity, config.open_timeout) {
                Ok(l) => l,
                Err(LoadError::Locked(detail)) => {
                    return Err(SpoolError::Locked {
                        path: store,
                        detail,
                    });
                }
                Err(LoadError::Io(reason)) => {
                    return Err(SpoolError::Open {
                        path: store,
                        reason,
                    });
                }
                Err(LoadError::Damaged { slug, detail }) => {
                    let moved = quarantine(config, slug, &detail)?;
                    Metrics::inc(&metrics.spool_quarantined_total);
                    tracing::error!(
                        store = %store.display(),
                        moved_to = %moved.display(),
                        reason = %detail,
                        "spool store damaged: moved aside, starting a fresh one"
                    );
                    let mut fresh = load(&store, config.cache_capacity, config.open_timeout)
                        .map_err(|e| SpoolError::Open {
                            path: store.clone(),
                            reason: format!("after moving the damaged one aside: {e}"),
                        })?;
                    report.rescued = rescue(config, &moved, &mut fresh, metrics)?;
                    report.quarantined = Some(moved);
                    report.quarantine_reason = Some(detail);
                    fresh
                }
            };
        Ok(loaded)
    }

    fn extend_lease(&mut self, from: Seq) -> Result<(), SpoolError> {
        self.seq_lease = from + SEQ_LEASE;
        let lease = self.seq_lease.to_be_bytes();
        self.with_store("leasing sequence numbers", |s| {
            s.insert(Tree::Meta, META_SEQ_LEASE, &lease)
        })?;
        self.flush().map(|_| ())
    }

    fn apply_evictions(&mut self, evicted: &[Eviction]) -> Result<(), SpoolError> {
        for e in evicted {
            if e.stored {
                self.delete("evicting a record", e.seq)?;
            } else {
                self.unstored.remove(&e.seq);
            }
            tracing::debug!(seq = e.seq, kind = %e.kind, "spool full: record evicted");
        }
        Metrics::add(&self.metrics.spool_evicted_total, evicted.len() as u64);
        self.evictions.record(evicted, Instant::now());
        Ok(())
    }

    /// Makes every write so far durable (fsync). This is what "flushed" means. While the
    /// spool runs in memory nothing becomes durable: `through` stays where the disk left it.
    pub fn flush(&mut self) -> Result<Flushed, SpoolError> {
        let started = Instant::now();
        self.with_store("flushing", |s| s.flush())?;
        let took = started.elapsed();
        if self.away.is_none() {
            // Space the store holds far beyond what is pending goes back to the filesystem
            // here (invariant 5). A failure costs only disk space: the flush itself is done.
            if let Err(e) = self.store.reclaim(self.ledger.depth().bytes()) {
                tracing::warn!(error = %e, "spool: giving space back to the filesystem failed");
            }
            self.durable_through = self.written_through;
            self.unflushed_copies.clear();
            self.removed_since_flush.clear();
        }
        self.unflushed = 0;
        self.unflushed_since = None;
        let us = took.as_micros() as u64;
        Metrics::inc(&self.metrics.spool_flushes_total);
        self.metrics
            .spool_flush_last_us
            .store(us, Ordering::Relaxed);
        self.metrics
            .spool_flush_max_us
            .fetch_max(us, Ordering::Relaxed);
        Ok(Flushed {
            through: self.durable_through,
            took,
        })
    }

    /// Whether the flush policy asks for a flush now.
    pub fn flush_due(&self, now: Instant) -> bool {
        self.unflushed >= self.config.flush.every_records
            || self.flush_deadline().is_some_and(|d| now >= d)
    }

    /// When the flush policy's time limit falls due, if anything is unflushed.
    pub fn flush_deadline(&self) -> Option<Instant> {
        self.unflushed_since.map(|t| t + self.config.flush.every)
    }

    /// Flushes if the policy says so.
    pub fn flush_if_due(&mut self, now: Instant) -> Result<Option<Flushed>, SpoolError> {
        if self.flush_due(now) {
            self.flush().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Hands out up to `max` records to publish, in priority order, and marks them in
    /// flight. A stored record that fails its checksum is dropped and counted, never
    /// handed out.
    pub fn next_to_send(&mut self, max: usize) -> Result<Vec<Record>, SpoolError> {
        let seqs = self.ledger.next_to_send(max);
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(r) = self.unstored.get(&seq) {
                out.push(r.clone());
                continue;
            }
            let key = record::key(seq);
            let value = self.with_store("reading a record", |s| s.get(Tree::Records, &key))?;
            if !self.ledger.contains(seq) {
                // It was on the disk, which failed just now: it waits there (`memory.rs`).
                continue;
            }
            match value.map(|v| record::decode(&key, &v)) {
                Some(Ok(r)) => out.push(r),
                Some(Err(damage)) => self.drop_corrupt(seq, &damage.to_string())?,
                None => self.drop_corrupt(seq, "missing from the store")?,
            }
        }
        self.publish_gauges();
        Ok(out)
    }

    fn drop_corrupt(&mut self, seq: Seq, why: &str) -> Result<(), SpoolError> {
        tracing::error!(seq, why, "spool record unreadable: dropped");
        self.ledger.forget(seq);
        self.delete("dropping a damaged record", seq)?;
        Metrics::inc(&self.metrics.spool_corrupt_records_total);
        Ok(())
    }

    /// The broker acknowledged `seq`: the record is deleted. Returns false if it was not
    /// pending (already acknowledged, or evicted).
    pub fn ack(&mut self, seq: Seq) -> Result<bool, SpoolError> {
        let Some(removed) = self.ledger.ack(seq) else {
            self.acked_while_away(seq);
            return Ok(false);
        };
        if removed.stored {
            self.delete("deleting an acknowledged record", seq)?;
        } else {
            self.unstored.remove(&seq);
        }
        Metrics::inc(&self.metrics.spool_acked_total);
        self.publish_gauges();
        Ok(true)
    }

    /// Everything in flight goes back in the queue (a publish may not have arrived).
    pub fn requeue_all(&mut self) {
        self.ledger.requeue_all();
        self.publish_gauges();
    }

    /// The link is up (CONNACK): in-flight records are requeued, and what is appended from
    /// now on is live.
    pub fn link_up(&mut self) {
        self.ledger.link_up();
        self.publish_gauges();
    }

    /// The link is down: in-flight records are requeued and readings kept only in memory
    /// are written to flash.
    pub fn link_down(&mut self) -> Result<(), SpoolError> {
        let seqs = self.ledger.link_down();
        self.spill(&seqs)
    }

    /// Writes readings kept in memory longer than `spill_after` (write-only-while-offline).
    pub fn spill_stale(&mut self) -> Result<(), SpoolError> {
        if !matches!(self.config.write_mode, WriteMode::OnlyWhileOffline { .. }) {
            return Ok(());
        }
        let cutoff = wall_ms().saturating_sub(self.config.spill_after.as_millis() as u64);
        let seqs = self.ledger.unstored_older_than(cutoff);
        self.spill(&seqs)
    }

    fn spill(&mut self, seqs: &[Seq]) -> Result<(), SpoolError> {
        for &seq in seqs {
            if let Some(r) = self.unstored.remove(&seq) {
                self.write(&r)?;
                self.ledger.mark_stored(seq);
                Metrics::inc(&self.metrics.spool_spilled_total);
            }
        }
        self.publish_gauges();
        Ok(())
    }

    /// Writes what is kept only in memory and flushes: the clean shutdown. A spool running
    /// in memory tries its disk once more first.
    pub fn close(mut self) -> Result<Flushed, SpoolError> {
        if self.in_memory() && !self.rejoin_disk(Instant::now()) {
            tracing::error!(
                event = "spool_lost_at_exit",
                records = self.ledger.depth().records(),
                "the spool's disk still takes no writes: the records held in memory are lost"
            );
        }
        let seqs = self.ledger.unstored();
        self.spill(&seqs)?;
        self.flush()
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            depth: self.ledger.depth(),
            oldest_created_ms: self.ledger.oldest_created_ms(),
            next_seq: self.ledger.next_seq(),
            durable_through: self.durable_through,
            boot_id: self.boot_id,
            online: self.ledger.is_online(),
            in_memory: self.away.is_some(),
        }
    }

    /// The bytes the store's files take on disk.
    pub fn size_on_disk(&self) -> Result<u64, SpoolError> {
        self.store
            .size_on_disk()
            .map_err(SpoolError::store("measuring the store"))
    }

    fn publish_gauges(&self) {
        let d = self.ledger.depth();
        let m = &self.metrics;
        m.spool_records.store(d.records(), Ordering::Relaxed);
        m.spool_bytes.store(d.bytes(), Ordering::Relaxed);
        m.spool_alert_records
            .store(d.alerts.records, Ordering::Relaxed);
        m.spool_in_flight.store(d.in_flight, Ordering::Relaxed);
        let age = self
            .ledger
            .oldest_created_ms()
            .map_or(0, |t| wall_ms().saturating_sub(t));
        m.spool_oldest_age_ms.store(age, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch on the wall clock (0 if the clock is before 1970).
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh random id for this run, so `(boot_id, seq)` stays unique even if the store (and
/// with it the sequence) starts over after a quarantine.
fn new_boot_id() -> u64 {
    let mut b = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The two keyspaces of the store: the records, and the spool's own bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tree {
    Records,
    Meta,
}

pub(crate) struct Loaded {
    pub store: RedbStore,
    /// Intact records, ascending.
    pub found: Vec<Header>,
    /// Damaged records: key and why.
    pub bad: Vec<(Vec<u8>, Damage)>,
    /// The first sequence number not leased by an earlier run.
    pub lease: Seq,
}

#[derive(Debug)]
pub(crate) enum LoadError {
    Locked(String),
    Io(String),
    Damaged { slug: &'static str, detail: String },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Locked(d) | LoadError::Io(d) => f.write_str(d),
            LoadError::Damaged { detail, .. } => f.write_str(detail),
        }
    }
}

/// Opens and scans the store on a thread of its own, catching panics, for at most `timeout`.
/// A store that hangs leaves its thread behind (it cannot be stopped); the caller moves the
/// store aside, so that thread only ever touches the quarantined files.
pub(crate) fn load(
    store: &Path,
    cache_capacity: u64,
    timeout: Duration,
) -> Result<Loaded, LoadError> {
    let path = store.to_path_buf();
    guarded(timeout, move || load_unguarded(&path, cache_capacity))
}

/// Runs `open` on a thread of its own, turning a panic or a run longer than `timeout` into
/// `LoadError::Damaged`. A thread that hangs is left behind: it cannot be stopped.
pub(crate) fn guarded<T: Send + 'static>(
    timeout: Duration,
    open: impl FnOnce() -> Result<T, LoadError> + Send + std::panic::UnwindSafe + 'static,
) -> Result<T, LoadError> {
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("spool-open".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(open).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(LoadError::Damaged {
                    slug: "panic",
                    detail: format!("the store panicked while opening: {what}"),
                })
            });
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(LoadError::Io(format!("cannot start the open thread: {e}")));
    }
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(LoadError::Damaged {
            slug: "timeout",
            detail: format!("opening took longer than {timeout:?}"),
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(LoadError::Damaged {
            slug: "panic",
            detail: "the open thread died without an answer".into(),
        }),
    }
}

fn load_unguarded(dir: &Path, cache_capacity: u64) -> Result<Loaded, LoadError> {
    let damaged = |slug| {
        move |e: StoreError| LoadError::Damaged {
            slug,
            detail: format!("the store failed while reading: {e}"),
        }
    };
    let Opened { mut store, existed } = open_store(dir, cache_capacity)?;
    let format = store
        .get(Tree::Meta, META_FORMAT)
        .map_err(damaged("scan-failed"))?;
    match format {
        Some(f) if f != [record::FORMAT_VERSION] => {
            return Err(LoadError::Damaged {
                slug: "format",
                detail: format!("unknown spool format {f:?}"),
            });
        }
        // A store that existed but lacks the spool's own marker (written and flushed before
        // any record) has been emptied or overwritten, and is kept as evidence. (A crash
        // between the store creating its files and that first flush looks the same;
        // quarantining that empty store costs nothing.)
        None if existed => {
            return Err(LoadError::Damaged {
                slug: "emptied",
                detail: "the store is there but none of the spool's data is in it: its files \
                         were emptied or overwritten"
                    .into(),
            });
        }
        _ => {}
    }
    let lease = match store
        .get(Tree::Meta, META_SEQ_LEASE)
        .map_err(damaged("scan-failed"))?
    {
        Some(v) => Seq::from_be_bytes(v.as_slice().try_into().map_err(|_| LoadError::Damaged {
            slug: "format",
            detail: "the sequence lease is not 8 bytes".into(),
        })?),
        None => 0,
    };
    let mut found = Vec::new();
    let mut bad = Vec::new();
    store
        .scan(Tree::Records, &mut |k, v| match record::verify(k, v) {
            Ok(h) => found.push(h),
            Err(d) => bad.push((k.to_vec(), d)),
        })
        .map_err(damaged("scan-failed"))?;
    Ok(Loaded {
        store,
        found,
        bad,
        lease,
    })
}

/// Reads back what it can of the store quarantined in `moved` (`redb_store::read_back`)
/// and writes those records, marked as recovered, into the fresh store under their own
/// sequence numbers, so their `(boot, seq)` stays what it was and the fresh store numbers
/// on above them. Returns how many; a store that cannot be read at all gives 0.
fn rescue(
    config: &SpoolConfig,
    moved: &Path,
    fresh: &mut Loaded,
    metrics: &Metrics,
) -> Result<u64, SpoolError> {
    let file = moved.join(redb_store::FILE);
    let cache = config.cache_capacity;
    let back = match guarded(config.open_timeout, move || {
        redb_store::read_back(&file, cache).map_err(LoadError::Io)
    }) {
        Ok(back) => back,
        Err(e) => {
            tracing::warn!(event = "spool_rescue_failed", store = %moved.display(), reason = %e, "nothing could be read back from the quarantined spool store");
            return Ok(0);
        }
    };
    for mut r in back.records.iter().cloned() {
        r.recovered = true;
        let (key, value) = (record::key(r.seq), record::encode(&r));
        fresh
            .store
            .insert(Tree::Records, &key, &value)
            .map_err(SpoolError::store("writing a record read back"))?;
        fresh
            .found
            .push(record::verify(&key, &value).expect("just encoded"));
        fresh.lease = fresh.lease.max(r.seq + 1);
    }
    fresh
        .store
        .flush()
        .map_err(SpoolError::store("writing the records read back"))?;
    let n = back.records.len() as u64;
    Metrics::add(&metrics.spool_rescued_total, n);
    Metrics::add(&metrics.spool_corrupt_records_total, back.damaged);
    tracing::warn!(
        event = "spool_rescued",
        records = n,
        damaged = back.damaged,
        damaged_stretches_skipped = back.skips,
        stopped = back.stopped.as_deref().unwrap_or("at the end"),
        "records read back from the quarantined spool store are queued again, marked as recovered"
    );
    Ok(n)
}

/// Moves the store aside into `quarantine/<unix-seconds>-<slug>` with a `reason.txt`, and
/// deletes the oldest quarantined stores beyond `max_quarantined`.
fn quarantine(config: &SpoolConfig, slug: &str, detail: &str) -> Result<PathBuf, SpoolError> {
    let qdir = config.quarantine_dir();
    let store = config.store_dir();
    let err = |source| SpoolError::Quarantine {
        path: store.clone(),
        source,
    };
    fs::create_dir_all(&qdir).map_err(err)?;
    let secs = wall_ms() / 1000;
    let mut target = qdir.join(format!("{secs}-{slug}"));
    let mut n = 1;
    while target.exists() {
        target = qdir.join(format!("{secs}-{slug}-{n}"));
        n += 1;
    }
    fs::rename(&store, &target).map_err(err)?;
    // The reason is a courtesy for support; the move itself is what matters.
    let _ = fs::write(target.join("reason.txt"), format!("{detail}\n"));
    let mut kept = quarantined_stores(&qdir).unwrap_or_default();
    while kept.len() > config.max_quarantined {
        let oldest = kept.remove(0);
        if let Err(e) = fs::remove_dir_all(&oldest) {
            tracing::warn!(path = %oldest.display(), error = %e, "cannot delete an old quarantined spool store");
        }
    }
    Ok(target)
}

/// Quarantined stores under `qdir`, oldest first.
pub(crate) fn quarantined_stores(qdir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<(u64, String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(qdir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let secs = name
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            dirs.push((secs, name, entry.path()));
        }
    }
    dirs.sort();
    Ok(dirs.into_iter().map(|(_, _, p)| p).collect())
}

#[cfg(test)]
mod eviction_log_tests {
    use super::*;

    #[test]
    fn evictions_are_warned_about_at_most_once_a_minute_with_their_count() {
        let evicted = |seq, kind| Eviction {
            seq,
            kind,
            stored: true,
        };
        let start = Instant::now();
        let mut log = EvictionLog::default();
        log.record(&[evicted(1, RecordKind::Readings)], start);
        assert_eq!((log.since_warned, log.warned_at), (0, Some(start)));
        log.record(
            &[
                evicted(2, RecordKind::Readings),
                evicted(3, RecordKind::Alert),
            ],
            start + Duration::from_secs(10),
        );
        assert_eq!((log.since_warned, log.alerts_since_warned), (2, 1));
        let later = start + Duration::from_secs(61);
        log.record(&[evicted(4, RecordKind::Readings)], later);
        assert_eq!((log.since_warned, log.warned_at), (0, Some(later)));
    }
}
