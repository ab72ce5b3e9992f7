//! Power cuts while the store's file is compacted (invariant 5 in `spool/mod.rs`).
//!
//! A backlog drained down to a few records leaves the file mostly free; the flush after the
//! acknowledgements commits them and then compacts the file (`redb_store::reclaim`, redb's
//! `Database::compact`: pages moved towards the front in transactions of their own, then
//! the file cut short). One run without a cut counts the writes, length changes and syncs
//! that flush makes; then the power goes at points spread over all of them, on the same
//! disk model as `powercut.rs`, and the store is opened as the agent opens it:
//!
//! - it is not quarantined and nothing in it is corrupt;
//! - every record not acked is there, intact, exactly once;
//! - nothing else is there but records acked in the flush the power cut short;
//! - it takes appends again, and its next flush compacts the file (unless the cut left it
//!   under the 4 MiB floor below which the store never compacts).

use std::collections::BTreeSet;
use std::sync::Arc;

use redb::StorageBackend;

use super::disk::{Cut, Disk, PAGE};
use super::{payload, reopened, returned};
use crate::spool::store::{FILE, backend_for_tests};
use crate::spool::{RecordKind, Spool, SpoolConfig};
use crate::telemetry::Metrics;

/// Records written before the drain: 4,000-byte payloads take one page each, so this makes
/// a file past the 4 MiB below which the store never compacts.
const RECORDS: u64 = 1200;
/// Records left unacknowledged by the drain.
const KEPT: u64 = 10;
const PAYLOAD: usize = 4000;

fn config(dir: &std::path::Path) -> SpoolConfig {
    SpoolConfig {
        max_in_flight: usize::MAX,
        ..SpoolConfig::new(dir)
    }
}

fn file_len(config: &SpoolConfig) -> u64 {
    std::fs::metadata(config.store_dir().join(FILE))
        .unwrap()
        .len()
}

/// What one run did: the records kept and acked, and the flush's store calls.
struct Drained {
    kept: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    flush_changes: u64,
    /// The file's length before the drain, and after the flush (as redb saw it).
    before: u64,
    after: u64,
}

/// Fills a store in `dir`, reopens it on the disk model, acks all but the last [`KEPT`]
/// records, and flushes (which compacts), with the power cut at the `cut`-th store call of
/// that flush, if given.
fn drain_and_compact(config: &SpoolConfig, cut: Option<(u64, Cut, u64)>) -> Drained {
    let mut spool = Spool::open(config.clone(), Arc::new(Metrics::default())).unwrap();
    for _ in 0..RECORDS {
        let seq = spool.next_seq();
        spool
            .append(RecordKind::Readings, payload(seq, PAYLOAD))
            .unwrap();
    }
    spool.close().unwrap();
    let before = file_len(config);

    let disk = Disk::open(&config.store_dir().join(FILE)).unwrap();
    backend_for_tests::open_next_with(&config.store_dir(), disk.clone());
    let mut spool = Spool::open(config.clone(), Arc::new(Metrics::default())).unwrap();
    let (mut kept, mut acked) = (BTreeSet::new(), BTreeSet::new());
    for r in spool.next_to_send(usize::MAX).unwrap() {
        if kept.len() < KEPT as usize && r.seq >= RECORDS - KEPT {
            kept.insert(r.seq);
        } else {
            assert!(spool.ack(r.seq).unwrap());
            acked.insert(r.seq);
        }
    }
    assert_eq!(kept.len() as u64, KEPT);
    let from = disk.changes();
    match cut {
        None => spool.flush().map(|_| ()).unwrap(),
        Some((after, kind, seed)) => {
            disk.arm(after, kind, seed);
            let flushed = spool.flush();
            if returned(&disk, after, "the compacting flush", flushed).is_some() {
                // The cut was aimed past the flush's last call: it falls right after.
                disk.cut_now(kind, seed).unwrap();
            }
        }
    }
    let flush_changes = disk.changes() - from;
    // The file's length as the program sees it (the cut decides what the medium keeps).
    let after = disk.len().unwrap_or(0);
    drop(spool);
    Drained {
        kept,
        acked,
        flush_changes,
        before,
        after,
    }
}

#[test]
fn a_power_cut_while_compacting_loses_nothing_flushed() {
    // The run without a cut: the flush compacts, and counts its store calls.
    let dir = tempfile::tempdir().unwrap();
    let uncut = drain_and_compact(&config(dir.path()), None);
    assert!(
        uncut.before > 4 << 20 && uncut.after < uncut.before / 4,
        "the flush after the drain compacts: {} B before, {} B after",
        uncut.before,
        uncut.after
    );
    let calls = uncut.flush_changes;
    assert!(calls > 8, "the compacting flush made {calls} store calls");

    // Cuts spread over the flush's calls: the commit of the acks, the compaction's
    // transactions, the file cut short.
    let points: BTreeSet<u64> = (0..12).map(|k| k * calls / 12).chain([calls - 1]).collect();
    let kinds = [
        Cut::DropUnsynced,
        Cut::TornSectors { sector: PAGE },
        Cut::TornSectors { sector: 512 },
    ];
    for (i, &at) in points.iter().enumerate() {
        let kind = kinds[i % kinds.len()];
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let run = drain_and_compact(&config, Some((at, kind, i as u64 + 1)));
        check_after_cut(
            &config,
            &run,
            &format!("cut at call {at} of {calls} ({kind})"),
        );
    }
}

/// Opens the store as the agent does after the cut and checks what is there.
fn check_after_cut(config: &SpoolConfig, run: &Drained, what: &str) {
    let (mut spool, metrics) = reopened(config.clone(), what);
    let mut present = BTreeSet::new();
    for r in spool.next_to_send(usize::MAX).unwrap() {
        assert!(present.insert(r.seq), "{what}: seq {} twice", r.seq);
        assert!(
            r.payload == payload(r.seq, PAYLOAD),
            "{what}: seq {} came back with another payload",
            r.seq
        );
        assert!(
            run.kept.contains(&r.seq) || run.acked.contains(&r.seq),
            "{what}: seq {} was never appended",
            r.seq
        );
    }
    let lost: Vec<_> = run.kept.difference(&present).collect();
    assert!(lost.is_empty(), "{what}: flushed records lost: {lost:?}");
    assert_eq!(metrics.snapshot().spool_corrupt_records_total, 0, "{what}");

    // The store goes on: it takes a record, and once the acks are flushed the file is
    // compacted (again, or the first time if the cut stopped it) unless what the cut left of
    // the compaction is already under the 4 MiB below which the store never compacts.
    for seq in present.difference(&run.kept) {
        assert!(spool.ack(*seq).unwrap());
    }
    let seq = spool
        .append(RecordKind::Alert, b"after the cut".to_vec())
        .unwrap()
        .seq;
    spool.flush().unwrap();
    let len = file_len(config);
    assert!(
        len <= 4 << 20,
        "{what}: the file is {len} B after the next flush, {} B before the drain",
        run.before
    );
    spool.close().unwrap();
    let mut spool = Spool::open(config.clone(), Arc::new(Metrics::default())).unwrap();
    let back: BTreeSet<u64> = spool
        .next_to_send(usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    let expected: BTreeSet<u64> = run.kept.iter().copied().chain([seq]).collect();
    assert_eq!(back, expected, "{what}");
}
