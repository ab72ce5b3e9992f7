//! When the disk fails the spool: it carries on in memory and goes back to the disk by itself.
//!
//! A full disk, a folder the agent may not write, a store left root-owned by a `sudo vigil
//! run`: none of them may stop the spool, because the alarm and the uplink must not wait on
//! the disk (invariant 4). When the store cannot be opened at start, or one of its
//! operations fails while the agent runs, the spool swaps it for a store in memory:
//!
//! - Records written since the last completed flush are lost from the disk with the failed
//!   commit (redb refuses every write after an I/O error until the file is opened again);
//!   the spool kept a copy of each until that flush, and moves the copies to memory.
//! - Records that were already flushed stay on the disk. They leave the ledger until the
//!   disk is back (they cannot be read or deleted there meanwhile); one acknowledged in the
//!   meantime, and every removal the failed commit undid, is deleted when it is back.
//! - Caps shrink to [`MEMORY_MAX_BYTES`] (alerts [`MEMORY_MAX_ALERT_BYTES`]): the agent's
//!   memory budget is 20 MB. Alerts go first as always; the oldest readings are evicted.
//! - Every [`RETRY_FIRST`] doubling to [`RETRY_MAX`], a probe write of [`PROBE_BYTES`]
//!   (synced, then removed) asks whether the disk takes writes again; when it does, the
//!   store is opened again, everything held in memory is written into it and flushed, and
//!   only then does the spool switch back. The records left on the disk rejoin the backlog.
//!
//! Logged at error when it happens (`spool_store_failed`, `spool_memory_only`) and at warn
//! when the disk is back (`spool_store_back`); the `spool_memory_only` gauge is 1 meanwhile
//! and `spool_store_failures_total` counts the failures.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::redb_store::{self, Opened, RedbStore};
use super::{Loaded, META_FORMAT, META_SEQ_LEASE, OpenReport, SEQ_LEASE, Spool, Tree, wall_ms};
use crate::spool::error::StoreError;
use crate::spool::record::{self, Seq};
use crate::spool::{SpoolConfig, SpoolError};
use crate::telemetry::Metrics;

/// Cap on the records held while the spool runs in memory, counted as on disk (at most
/// the configured share). At one reading batch of 8 KiB per 10 s, 40 minutes of readings.
pub(super) const MEMORY_MAX_BYTES: u64 = 2 << 20;

/// Cap on the bytes of alerts held in memory (at most the configured alert cap).
pub(super) const MEMORY_MAX_ALERT_BYTES: u64 = 512 << 10;

/// The first retry after a failure, doubled after each one that fails...
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// ...up to this: the disk is back at most this long before the spool notices.
const RETRY_MAX: Duration = Duration::from_secs(8);

/// What the probe writes: about what the spool needs to get going again.
const PROBE_BYTES: usize = 64 << 10;
const PROBE_FILE: &str = ".write-probe";

/// The spool's caps while it runs in memory (in the ledger's terms, as on disk).
pub(super) fn max_bytes(config: &SpoolConfig) -> u64 {
    config.ledger_config().max_bytes.min(MEMORY_MAX_BYTES)
}

pub(super) fn max_alert_bytes(config: &SpoolConfig) -> u64 {
    config
        .ledger_config()
        .max_alert_bytes
        .min(MEMORY_MAX_ALERT_BYTES)
}

/// The spool is in memory: since when, when it tries the disk again, and what waits there.
pub(super) struct Away {
    since: Instant,
    next_try: Instant,
    backoff: Duration,
    /// Flushed records that stayed on the disk; out of the ledger until it is back.
    on_disk: BTreeSet<Seq>,
    /// Records to delete from the disk when it is back.
    to_delete: BTreeSet<Seq>,
    /// Why the last try failed (logged when it changes).
    last_failure: String,
}

impl Away {
    fn new(now: Instant, on_disk: BTreeSet<Seq>, to_delete: BTreeSet<Seq>) -> Away {
        Away {
            since: now,
            next_try: now + RETRY_FIRST,
            backoff: RETRY_FIRST,
            on_disk,
            to_delete,
            last_failure: String::new(),
        }
    }
}

/// A store in memory for a spool whose store on disk cannot be opened at start. Sequence
/// numbers start at the wall clock's milliseconds times 1000: above any number a store on
/// that disk can have leased (it would take 10^15 appends), so none collides when the
/// records are written there later, and below 2^53, which JSON readers keep exact.
pub(super) fn start_in_memory(
    config: &SpoolConfig,
    metrics: &Metrics,
    error: &SpoolError,
) -> Result<(Loaded, Option<Away>), SpoolError> {
    tracing::error!(
        event = "spool_memory_only",
        %error,
        max_bytes = max_bytes(config),
        "the spool's store cannot be opened: records are kept in memory (oldest readings evicted past max_bytes) and written to the disk when it can be opened; what is in memory is lost if the agent stops first"
    );
    metrics.spool_memory_only.store(1, Ordering::Relaxed);
    let store = in_memory(config)?;
    let loaded = Loaded {
        store,
        found: Vec::new(),
        bad: Vec::new(),
        lease: wall_ms().saturating_mul(1000),
    };
    Ok((
        loaded,
        Some(Away::new(Instant::now(), BTreeSet::new(), BTreeSet::new())),
    ))
}

fn in_memory(config: &SpoolConfig) -> Result<RedbStore, SpoolError> {
    let Opened { store, .. } =
        redb_store::open_in_memory(config.cache_capacity).map_err(|e| SpoolError::Open {
            path: "(memory)".into(),
            reason: e.to_string(),
        })?;
    Ok(store)
}

/// Whether the folder takes a write and a sync of [`PROBE_BYTES`] now.
fn probe(dir: &Path) -> Result<(), String> {
    let path = dir.join(PROBE_FILE);
    let written = fs::create_dir_all(dir).and_then(|()| {
        let mut f = fs::File::create(&path)?;
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_data()
    });
    let _ = fs::remove_file(&path);
    written.map_err(|e| format!("the disk does not take writes yet: {e}"))
}

impl Spool {
    /// Runs a store operation. When the store on disk fails, the spool moves to memory and
    /// runs it there; an error of the store in memory is returned.
    pub(super) fn with_store<T>(
        &mut self,
        op: &'static str,
        mut f: impl FnMut(&mut RedbStore) -> Result<T, StoreError>,
    ) -> Result<T, SpoolError> {
        match f(&mut self.store) {
            Ok(v) => Ok(v),
            Err(error) if self.away.is_none() => {
                self.leave_disk(op, error)?;
                f(&mut self.store).map_err(SpoolError::store(op))
            }
            Err(error) => Err(SpoolError::store(op)(error)),
        }
    }

    /// Whether the spool runs in memory because its store on disk cannot be used.
    pub fn in_memory(&self) -> bool {
        self.away.is_some()
    }

    fn leave_disk(&mut self, op: &'static str, error: StoreError) -> Result<(), SpoolError> {
        let disk = std::mem::replace(&mut self.store, in_memory(&self.config)?);
        disk.abandon();
        let copies = std::mem::take(&mut self.unflushed_copies);
        let mut on_disk = BTreeSet::new();
        for seq in self.ledger.stored() {
            match copies.get(&seq) {
                Some(r) => self
                    .store
                    .insert(Tree::Records, &record::key(seq), &record::encode(r))
                    .map_err(SpoolError::store(op))?,
                None => {
                    self.ledger.forget(seq);
                    on_disk.insert(seq);
                }
            }
        }
        let to_delete = self.removed_since_flush.drain(..).collect();
        tracing::error!(
            event = "spool_store_failed",
            op,
            %error,
            kept_in_memory = self.ledger.depth().records(),
            waiting_on_disk = on_disk.len(),
            max_bytes = max_bytes(&self.config),
            "the spool's store failed (is the disk full or failing? check `df` and the kernel log): records are kept in memory until the disk takes writes again, and those already flushed wait on the disk"
        );
        Metrics::inc(&self.metrics.spool_store_failures_total);
        self.metrics.spool_memory_only.store(1, Ordering::Relaxed);
        self.away = Some(Away::new(Instant::now(), on_disk, to_delete));
        let evicted = self
            .ledger
            .set_caps(max_bytes(&self.config), max_alert_bytes(&self.config));
        self.apply_evictions(&evicted)?;
        self.publish_gauges();
        Ok(())
    }

    /// An acknowledgement the ledger did not know: one of the records left on the disk
    /// when it failed, deleted there when it is back.
    pub(super) fn acked_while_away(&mut self, seq: Seq) {
        if let Some(away) = &mut self.away
            && away.on_disk.remove(&seq)
        {
            away.to_delete.insert(seq);
        }
    }

    /// When the spool tries the disk again, while it runs in memory.
    pub fn retry_at(&self) -> Option<Instant> {
        self.away.as_ref().map(|a| a.next_try)
    }

    /// Tries the disk again if it is time; true when the spool is back on it.
    pub fn rejoin_disk_if_due(&mut self, now: Instant) -> bool {
        match &self.away {
            Some(away) if now >= away.next_try => self.rejoin_disk(now),
            _ => false,
        }
    }

    /// Opens the store on disk again, writes everything held in memory into it, flushes,
    /// and only then switches to it. True when the spool is back on the disk.
    pub(super) fn rejoin_disk(&mut self, now: Instant) -> bool {
        let Some(away) = self.away.take() else {
            return true;
        };
        match self.write_back(&away) {
            Ok(()) => {
                self.back_on_disk(away);
                true
            }
            Err(why) => {
                if why != away.last_failure {
                    tracing::warn!(event = "spool_store_retry_failed", reason = %why, "the spool stays in memory and tries the disk again");
                } else {
                    tracing::debug!(reason = %why, "the spool's disk is still unusable");
                }
                let backoff = (away.backoff * 2).min(RETRY_MAX);
                self.away = Some(Away {
                    next_try: now + away.backoff,
                    backoff,
                    last_failure: why,
                    ..away
                });
                false
            }
        }
    }

    /// Opens the store on disk and writes into it, flushed, what it must hold: everything
    /// the spool holds in memory, without what was removed meanwhile. The spool itself is
    /// not changed: on any failure it carries on in memory.
    fn write_back(&mut self, away: &Away) -> Result<(), String> {
        probe(&self.config.dir)?;
        let mut report = OpenReport::default();
        let loaded = Spool::load_from_disk(&self.config, &self.metrics, &mut report)
            .map_err(|e| e.to_string())?;
        let mut disk = loaded.store;
        let failed = |e: StoreError| format!("writing the records held in memory failed: {e}");
        for (key, _) in &loaded.bad {
            disk.remove(Tree::Records, key).map_err(failed)?;
        }
        for &seq in &away.to_delete {
            disk.remove(Tree::Records, &record::key(seq))
                .map_err(failed)?;
        }
        for seq in self.ledger.stored() {
            let key = record::key(seq);
            if let Some(value) = self.store.get(Tree::Records, &key).map_err(failed)? {
                disk.insert(Tree::Records, &key, &value).map_err(failed)?;
            }
        }
        let next = self.ledger.next_seq().max(loaded.lease);
        disk.insert(Tree::Meta, META_FORMAT, &[record::FORMAT_VERSION])
            .map_err(failed)?;
        disk.insert(
            Tree::Meta,
            META_SEQ_LEASE,
            &(next + SEQ_LEASE).to_be_bytes(),
        )
        .map_err(failed)?;
        disk.flush().map_err(failed)?;
        // Everything is on the disk: from here on nothing can fail.
        self.store = disk;
        self.seq_lease = next + SEQ_LEASE;
        self.ledger.resume_at(next);
        let mut back = 0u64;
        for h in &loaded.found {
            if !away.to_delete.contains(&h.seq) && !self.ledger.contains(h.seq) {
                self.ledger.take_back(
                    h.seq,
                    h.kind,
                    record::footprint(h.payload_len),
                    h.created_ms,
                );
                back += 1;
            }
        }
        Metrics::add(
            &self.metrics.spool_corrupt_records_total,
            loaded.bad.len() as u64,
        );
        tracing::info!(
            records_back_from_disk = back,
            corrupt = loaded.bad.len(),
            "spool store opened again"
        );
        Ok(())
    }

    fn back_on_disk(&mut self, away: Away) {
        let durable = self.ledger.stored().last().copied();
        self.written_through = self.written_through.max(durable);
        self.durable_through = self.written_through;
        self.unflushed = 0;
        self.unflushed_since = None;
        self.unflushed_copies.clear();
        self.removed_since_flush.clear();
        self.metrics.spool_memory_only.store(0, Ordering::Relaxed);
        tracing::warn!(
            event = "spool_store_back",
            away_ms = away.since.elapsed().as_millis() as u64,
            records = self.ledger.depth().records(),
            "the spool's store takes writes again: everything held in memory is on the disk"
        );
        let caps = self.config.ledger_config();
        let evicted = self.ledger.set_caps(caps.max_bytes, caps.max_alert_bytes);
        if let Err(error) = self.apply_evictions(&evicted) {
            tracing::error!(%error, "spool: evicting after the disk came back failed");
        }
        self.publish_gauges();
    }
}
