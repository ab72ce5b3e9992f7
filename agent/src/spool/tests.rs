//! Tests of the spool against real redb stores in temporary directories: restart, damage,
//! the disk cap, write-only-while-offline, the task API, inspect, and a model-based
//! property test. The pure ordering and eviction rules are tested in `ledger.rs`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::record::{self, RecordKind, Seq};
use super::*;
use crate::telemetry::Metrics;

fn open(config: &SpoolConfig) -> (Spool, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(config.clone(), metrics.clone()).expect("spool opens");
    (spool, metrics)
}

/// Small payloads and caps, so a test reaches the caps with a few records.
fn small(dir: &Path) -> SpoolConfig {
    // What one record of 200 bytes needs of the caps (the file's; `records_share`), and a little.
    let rec = record::footprint(200) * 16 / 7 + 16;
    SpoolConfig {
        max_payload: 200,
        max_alert_bytes: 3 * rec,
        max_bytes: 3 * rec + 5 * rec,
        ..SpoolConfig::new(dir)
    }
}

fn seqs(records: &[Record]) -> Vec<Seq> {
    records.iter().map(|r| r.seq).collect()
}

/// Opens on another thread and fails the test (instead of hanging it) after 60 s.
fn open_within_a_minute(config: &SpoolConfig) -> (Spool, Arc<Metrics>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = config.clone();
    std::thread::spawn(move || {
        let _ = tx.send(open(&config));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("opening a damaged store returned within a minute")
}

fn fill(config: &SpoolConfig, n: u32) -> Vec<Seq> {
    let (mut spool, _) = open(config);
    let seqs = (0..n)
        .map(|i| {
            spool
                .append(RecordKind::Readings, vec![(i % 251) as u8; 150])
                .unwrap()
                .seq
        })
        .collect();
    spool.close().unwrap();
    seqs
}

#[test]
fn records_survive_a_restart_and_leave_only_on_ack() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig::new(dir.path());
    let (mut spool, metrics) = open(&config);
    let a = spool.append(RecordKind::Readings, b"r0".to_vec()).unwrap();
    let b = spool.append(RecordKind::Alert, b"a1".to_vec()).unwrap();
    assert!(b.flushed.is_some(), "an alert is flushed at once");
    let c = spool.append(RecordKind::Readings, b"r2".to_vec()).unwrap();
    let sent = spool.next_to_send(10).unwrap();
    assert_eq!(seqs(&sent), vec![b.seq, a.seq, c.seq]);
    assert_eq!(sent[0].payload, b"a1");
    assert_eq!(sent[0].boot_id, spool.boot_id());
    assert!(spool.ack(a.seq).unwrap());
    assert!(!spool.ack(a.seq).unwrap(), "a second ack finds nothing");
    let first_boot = spool.boot_id();
    spool.close().unwrap();

    let (mut spool, _) = open(&config);
    assert_eq!(spool.open_report().recovered, 2);
    assert_ne!(spool.boot_id(), first_boot);
    let sent = spool.next_to_send(10).unwrap();
    assert_eq!(seqs(&sent), vec![b.seq, c.seq]);
    assert_eq!(
        sent[1].boot_id, first_boot,
        "a record keeps its writer's boot id"
    );
    let next = spool.append(RecordKind::Readings, b"r3".to_vec()).unwrap();
    assert!(next.seq > c.seq, "sequences continue after a restart");
    assert_eq!(metrics.spool_acked_total.load(Ordering::Relaxed), 1);
}

#[test]
fn a_store_that_cannot_be_opened_gives_a_spool_in_memory_that_still_delivers() {
    // A regular file where the spool's folder should be: no store can be made there (as
    // with a folder the agent may not open; this test runs as root, who may open anything).
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("spool");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let config = small(&blocked);
    let (mut spool, metrics) = open(&config);
    assert_eq!(metrics.snapshot().spool_memory_only, 1);
    let alert = spool.append(RecordKind::Alert, b"a0".to_vec()).unwrap();
    let reading = spool.append(RecordKind::Readings, vec![7; 150]).unwrap();
    let sent = spool.next_to_send(10).unwrap();
    assert_eq!(seqs(&sent), vec![alert.seq, reading.seq]);
    assert!(spool.ack(alert.seq).unwrap());
    // The same caps hold: more readings than fit evict the oldest, the alert stays first.
    let alert = spool.append(RecordKind::Alert, b"a1".to_vec()).unwrap();
    for _ in 0..20 {
        spool.append(RecordKind::Readings, vec![8; 150]).unwrap();
    }
    assert!(metrics.snapshot().spool_evicted_total > 0);
    assert_eq!(spool.next_to_send(1).unwrap()[0].seq, alert.seq);
    spool.requeue_all();
    assert_eq!(spool.size_on_disk().unwrap(), 0);
    assert_eq!(
        std::fs::read(&blocked).unwrap(),
        b"not a folder",
        "left as it was"
    );
    let retry = spool.retry_at().expect("the spool tries the disk again");
    assert!(!spool.rejoin_disk_if_due(retry), "still blocked");
    assert!(spool.in_memory());

    // The way is clear: at its next try the spool writes what it holds to the disk.
    std::fs::remove_file(&blocked).unwrap();
    let held: Vec<Seq> = {
        let sent = spool.next_to_send(100).unwrap();
        spool.requeue_all();
        seqs(&sent)
    };
    let retry = spool.retry_at().unwrap();
    assert!(spool.rejoin_disk_if_due(retry), "back on the disk");
    assert!(!spool.in_memory());
    assert_eq!(metrics.snapshot().spool_memory_only, 0);
    spool.close().unwrap();
    let (mut spool, _) = open(&config);
    assert_eq!(seqs(&spool.next_to_send(100).unwrap()), held);
    let next = spool.append(RecordKind::Alert, b"a2".to_vec()).unwrap();
    assert!(next.seq > *held.iter().max().unwrap());
    spool.close().unwrap();
}

#[test]
fn sequence_numbers_are_never_reused_even_when_everything_was_acked() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig::new(dir.path());
    let mut last = None;
    for _ in 0..3 {
        let (mut spool, _) = open(&config);
        let a = spool.append(RecordKind::Readings, b"x".to_vec()).unwrap();
        assert!(last < Some(a.seq), "{last:?} then {}", a.seq);
        last = Some(a.seq);
        spool.next_to_send(1).unwrap();
        spool.ack(a.seq).unwrap();
        // Not even a clean close: the lease was flushed at open.
        drop(spool);
    }
}

#[test]
fn disconnect_requeues_what_was_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = open(&SpoolConfig::new(dir.path()));
    for i in 0..3u8 {
        spool.append(RecordKind::Readings, vec![i]).unwrap();
    }
    spool.link_up();
    assert_eq!(spool.next_to_send(2).unwrap().len(), 2);
    spool.link_down().unwrap();
    assert_eq!(spool.stats().depth.in_flight, 0);
    assert_eq!(spool.next_to_send(10).unwrap().len(), 3);
}

#[test]
fn cap_reached_evicts_oldest_readings_keeps_alerts_and_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(dir.path());
    let (mut spool, metrics) = open(&config);
    let alerts: Vec<Seq> = (0..2)
        .map(|_| spool.append(RecordKind::Alert, vec![1; 200]).unwrap().seq)
        .collect();
    let readings: Vec<Seq> = (0..20)
        .map(|_| {
            spool
                .append(RecordKind::Readings, vec![2; 200])
                .unwrap()
                .seq
        })
        .collect();
    let d = spool.stats().depth;
    assert!(d.bytes() <= config.max_bytes, "{d:?}");
    assert_eq!(d.alerts.records, 2, "alerts are kept");
    // 8 records fit: the 2 alerts and the 6 newest readings.
    assert_eq!(d.readings.records, 6);
    assert_eq!(metrics.spool_evicted_total.load(Ordering::Relaxed), 14);
    // Alerts beyond their own cap push out the oldest alert, not the newest.
    let more: Vec<Seq> = (0..2)
        .map(|_| spool.append(RecordKind::Alert, vec![3; 200]).unwrap().seq)
        .collect();
    let sent = seqs(&spool.next_to_send(100).unwrap());
    let mut expected = vec![alerts[1], more[0], more[1]];
    expected.extend_from_slice(&readings[readings.len() - 5..]);
    assert_eq!(sent, expected);
    // The evictions reached the disk: a restart finds the same records.
    spool.close().unwrap();
    let (mut spool, _) = open(&config);
    assert_eq!(seqs(&spool.next_to_send(100).unwrap()), expected);
    assert!(matches!(
        spool.append(RecordKind::Readings, vec![0; 201]),
        Err(SpoolError::PayloadTooLarge { .. })
    ));
}

#[test]
fn the_file_stays_under_its_cap_whatever_the_record_size() {
    // An 8 MiB cap and 2.5 times that of records through it, a slow link acknowledging a
    // few from the front: alerts' size (700 B), a batch that fits one page (3,900 B) and the
    // default message (4,950 B, two pages). The store's file must stay under the cap: the
    // caps are the file's (`records_share`, `record::footprint`).
    use std::os::unix::fs::MetadataExt;
    for payload in [700usize, 3900, 4950] {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig {
            max_bytes: 8 << 20,
            max_alert_bytes: 1 << 20,
            ..SpoolConfig::new(dir.path())
        };
        let (mut spool, metrics) = open(&config);
        let file = data_file(&config);
        let (mut peak_len, mut peak_allocated) = (0, 0);
        for i in 0..(config.max_bytes * 5 / 2) / payload as u64 {
            let kind = if i % 50 == 0 {
                RecordKind::Alert
            } else {
                RecordKind::Readings
            };
            spool.append(kind, vec![(i % 251) as u8; payload]).unwrap();
            spool.flush_if_due(std::time::Instant::now()).unwrap();
            if i % 20 == 0 {
                for r in spool.next_to_send(3).unwrap() {
                    assert!(spool.ack(r.seq).unwrap());
                }
            }
            if i % 25 == 0 {
                let m = std::fs::metadata(&file).unwrap();
                peak_len = peak_len.max(m.len());
                peak_allocated = peak_allocated.max(m.blocks() * 512);
            }
        }
        assert!(
            metrics.snapshot().spool_evicted_total > 0,
            "the cap was reached"
        );
        eprintln!(
            "{payload} B records through an 8 MiB cap: file at most {peak_len} B long, \
             {peak_allocated} B allocated; records {} B",
            spool.stats().depth.bytes()
        );
        assert!(
            peak_len <= config.max_bytes,
            "{payload} B records: the file reached {peak_len} B for a cap of {}",
            config.max_bytes
        );
    }
}

#[test]
fn the_file_gives_space_back_once_a_backlog_has_drained() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_payload: 4096,
        max_in_flight: usize::MAX,
        ..SpoolConfig::new(dir.path())
    };
    let (mut spool, _) = open(&config);
    for i in 0..2500u32 {
        spool
            .append(RecordKind::Readings, vec![(i % 251) as u8; 4096])
            .unwrap();
        spool.flush_if_due(std::time::Instant::now()).unwrap();
    }
    spool.flush().unwrap();
    let full = spool.size_on_disk().unwrap();
    assert!(full > 10 << 20, "10 MiB of records in {full} bytes");
    for r in spool.next_to_send(usize::MAX).unwrap() {
        assert!(spool.ack(r.seq).unwrap());
    }
    spool.flush().unwrap();
    let drained = spool.size_on_disk().unwrap();
    eprintln!("file with 2500 records {full} B, drained {drained} B");
    assert!(drained < 4 << 20, "{drained} bytes kept after the drain");
    // The compacted store still works and keeps what it is given.
    let seq = spool
        .append(RecordKind::Alert, b"after".to_vec())
        .unwrap()
        .seq;
    spool.close().unwrap();
    let (mut spool, _) = open(&config);
    assert_eq!(seqs(&spool.next_to_send(10).unwrap()), vec![seq]);
}

#[test]
fn write_only_while_offline_keeps_readings_off_flash_while_online() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        write_mode: WriteMode::OnlyWhileOffline { max_unstored: 8 },
        ..SpoolConfig::new(dir.path())
    };
    let (mut spool, metrics) = open(&config);
    spool.link_up();
    let a = spool.append(RecordKind::Readings, b"a".to_vec()).unwrap();
    let b = spool.append(RecordKind::Readings, b"b".to_vec()).unwrap();
    let alert = spool.append(RecordKind::Alert, b"!".to_vec()).unwrap();
    assert!(!a.stored && !b.stored && alert.stored);
    assert_eq!(spool.stats().depth.unstored, 2);
    // Sent straight from memory; acked, it never touches flash.
    let sent = spool.next_to_send(10).unwrap();
    assert_eq!(seqs(&sent), vec![alert.seq, a.seq, b.seq]);
    assert_eq!(sent[1].payload, b"a");
    spool.ack(a.seq).unwrap();
    // The link drops before b is acked: b is written, and survives a restart.
    spool.link_down().unwrap();
    assert_eq!(metrics.spool_spilled_total.load(Ordering::Relaxed), 1);
    let offline = spool.append(RecordKind::Readings, b"c".to_vec()).unwrap();
    assert!(offline.stored, "offline: written");
    drop(spool); // no clean close: b and c must have been written anyway
    let (mut spool, _) = open(&config);
    assert_eq!(
        seqs(&spool.next_to_send(10).unwrap()),
        vec![alert.seq, b.seq, offline.seq]
    );
}

/// The store's file that holds the records.
fn data_file(config: &SpoolConfig) -> std::path::PathBuf {
    config.store_dir().join(store::FILE)
}

/// Writes `bytes` into the store's data file at `fraction` of its length.
fn scribble(config: &SpoolConfig, fraction: (u64, u64), bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let file = data_file(config);
    let len = std::fs::metadata(&file).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(len * fraction.0 / fraction.1))
        .unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_record_that_fails_its_checksum_is_dropped_and_never_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig::new(dir.path());
    let seqs_written = fill(&config, 3);
    {
        // A value the store itself accepts (its own checksums are right) but whose record
        // checksum is wrong: what a bug or a bit flipped before the write would leave.
        let mut db = store::open_store(&config.store_dir(), 1 << 20)
            .map_err(|e| e.to_string())
            .unwrap()
            .store;
        let key = record::key(seqs_written[1]);
        let mut v = db.get(store::Tree::Records, &key).unwrap().unwrap();
        let last = v.len() - 1;
        v[last] ^= 0x40;
        db.insert(store::Tree::Records, &key, &v).unwrap();
        db.flush().unwrap();
    }
    let (mut spool, metrics) = open(&config);
    assert_eq!(spool.open_report().corrupt_records, 1);
    assert_eq!(
        metrics.spool_corrupt_records_total.load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        seqs(&spool.next_to_send(10).unwrap()),
        vec![seqs_written[0], seqs_written[2]]
    );
}

/// Sends and acknowledges everything pending; returns what was sent.
fn drain_all(spool: &mut Spool) -> Vec<Record> {
    let mut sent = Vec::new();
    loop {
        let batch = spool.next_to_send(100).unwrap();
        if batch.is_empty() {
            return sent;
        }
        for r in batch {
            assert!(spool.ack(r.seq).unwrap());
            sent.push(r);
        }
    }
}

/// Records read back from a quarantined store of [`fill`]ed records: each one marked,
/// written by `fill` under that sequence number with that payload, and there once.
fn assert_read_back_intact(read_back: &[Record], written: &[Seq]) {
    let mut seen = BTreeSet::new();
    for r in read_back {
        assert!(r.recovered, "marked as recovered");
        assert!(seen.insert(r.seq), "{} read back twice", r.seq);
        let n = written
            .iter()
            .position(|&s| s == r.seq)
            .unwrap_or_else(|| panic!("{} was never written", r.seq));
        assert_eq!(r.payload, vec![(n % 251) as u8; 150], "intact");
    }
}

/// Fills a store with 2000 records, applies `damage` to it, reopens, and checks that the
/// store was moved aside (with a reason ending in `slug`) and a fresh one works, holding
/// what could be read back of the damaged one. Returns how many records that was.
fn check_quarantined(damage: impl FnOnce(&SpoolConfig), slug: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        open_timeout: Duration::from_secs(20),
        ..SpoolConfig::new(dir.path())
    };
    let before = fill(&config, 2000);
    assert_eq!(before.len(), 2000);
    damage(&config);
    let (mut spool, metrics) = open_within_a_minute(&config);
    let report = spool.open_report().clone();
    let moved = report
        .quarantined
        .clone()
        .unwrap_or_else(|| panic!("the damaged store is moved aside, but: {report:?}"));
    assert!(
        moved.file_name().unwrap().to_string_lossy().ends_with(slug),
        "{moved:?}: {:?}",
        report.quarantine_reason
    );
    assert!(moved.join("reason.txt").exists());
    assert!(moved.join(store::FILE).exists(), "the damaged file is kept");
    assert_eq!(metrics.spool_quarantined_total.load(Ordering::Relaxed), 1);
    // What could be read back is queued again in the fresh store, intact and marked.
    let rescued = drain_all(&mut spool);
    assert_eq!(rescued.len() as u64, report.rescued);
    assert_read_back_intact(&rescued, &before);
    eprintln!(
        "{slug:?}: {} of {} records read back",
        rescued.len(),
        before.len()
    );
    // A fresh store, and it works, numbering on above what was read back.
    let seq = spool
        .append(RecordKind::Alert, b"after".to_vec())
        .unwrap()
        .seq;
    assert!(rescued.iter().all(|r| r.seq < seq));
    assert_eq!(seqs(&spool.next_to_send(10).unwrap()), vec![seq]);
    spool.close().unwrap();
    let report = inspect(dir.path()).unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.alerts.records, 1);
    rescued.len()
}

#[test]
fn damaged_file_header_is_quarantined() {
    check_quarantined(|c| scribble(c, (0, 1), &[0xA5; 512]), "open-failed");
}

#[test]
fn a_panic_or_a_hang_while_opening_counts_as_damage() {
    let panicked = store::guarded(Duration::from_secs(20), || -> Result<(), _> {
        panic!("tried to serialize Uninitialized")
    });
    assert!(
        matches!(&panicked, Err(store::LoadError::Damaged { slug: "panic", detail })
            if detail.contains("Uninitialized")),
        "{panicked:?}"
    );
    // A hang: the opener waits on a channel nobody ever sends on.
    let (never_tx, never_rx) = std::sync::mpsc::channel::<()>();
    let hung = store::guarded(Duration::from_millis(100), move || {
        let _ = never_rx.recv();
        Ok(())
    });
    assert!(
        matches!(
            hung,
            Err(store::LoadError::Damaged {
                slug: "timeout",
                ..
            })
        ),
        "{hung:?}"
    );
    drop(never_tx); // lets the left-behind thread end
}

#[test]
fn damage_to_a_stored_record_is_detected_and_the_store_quarantined() {
    // 4 KiB of garbage over the records a third, a half and two thirds into the queue
    // (found in the file by their payloads, 150 bytes of `n % 251`): the store's page
    // checksums catch it at open, instead of reading the damage as a shorter store (sled
    // did: it dropped everything after the damage without an error). The records on the
    // other pages are read back (1,962-1,968 of 2,000 when this was written).
    for (i, n) in [666usize, 1000, 1333].into_iter().enumerate() {
        let read_back = check_quarantined(
            |c| {
                let bytes = std::fs::read(data_file(c)).unwrap();
                let payload = [(n % 251) as u8; 150];
                let at = bytes
                    .windows(payload.len())
                    .position(|w| w == payload)
                    .expect("the record's payload is in the file");
                let len = bytes.len() as u64;
                scribble(c, (at as u64, len), &[0xAB ^ i as u8; 4096]);
            },
            "corrupt",
        );
        assert!(read_back >= 1900, "{read_back} of 2000 read back");
    }
}

#[test]
fn damage_anywhere_in_the_file_loses_nothing_silently() {
    // Garbage at fixed points of the file, live or free space: either the store is
    // quarantined (counted and reported), or every record comes back intact.
    for (i, at) in [(1u64, 3u64), (1, 2), (2, 3), (9, 10)]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig {
            open_timeout: Duration::from_secs(20),
            max_in_flight: usize::MAX,
            ..SpoolConfig::new(dir.path())
        };
        let written = fill(&config, 2000);
        scribble(&config, at, &[0x3C ^ i as u8; 4096]);
        let (mut spool, _) = open_within_a_minute(&config);
        let report = spool.open_report().clone();
        let sent = spool.next_to_send(usize::MAX).unwrap();
        if report.quarantined.is_some() {
            assert_eq!(sent.len() as u64, report.rescued);
            assert_read_back_intact(&sent, &written);
        } else {
            assert_eq!(seqs(&sent), written, "damage at {at:?}: {report:?}");
            for (n, r) in sent.iter().enumerate() {
                assert_eq!(r.payload, vec![(n % 251) as u8; 150], "intact");
            }
        }
        eprintln!(
            "damage at {at:?} of the file: quarantined {:?}, {} records back",
            report.quarantine_reason,
            sent.len()
        );
    }
}

#[test]
fn emptied_file_is_quarantined() {
    check_quarantined(
        |c| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(data_file(c))
                .unwrap();
            f.set_len(0).unwrap();
        },
        "",
    );
}

#[test]
fn overwritten_file_is_quarantined() {
    check_quarantined(
        |c| {
            let len = std::fs::metadata(data_file(c)).unwrap().len() as usize;
            std::fs::write(data_file(c), vec![0x5A; len]).unwrap();
        },
        "",
    );
}

#[test]
fn truncated_file_is_quarantined() {
    check_quarantined(
        |c| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(data_file(c))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        },
        "",
    );
}

#[test]
fn only_the_newest_quarantined_stores_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_quarantined: 2,
        ..SpoolConfig::new(dir.path())
    };
    for _ in 0..4 {
        fill(&config, 1);
        scribble(&config, (0, 1), &[0xA5; 512]);
        let (spool, _) = open(&config);
        assert!(spool.open_report().quarantined.is_some());
    }
    let kept = store::quarantined_stores(&config.quarantine_dir()).unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
}

#[test]
fn a_store_in_use_is_reported_not_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig::new(dir.path());
    let (_running, _) = open(&config);
    let err = Spool::open(config.clone(), Arc::new(Metrics::default()))
        .err()
        .expect("a second open fails");
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("stop the other vigil"), "{err}");
    assert!(!config.quarantine_dir().exists());
}

#[test]
fn bad_settings_fail_before_anything_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_bytes: 1000,
        ..SpoolConfig::new(dir.path().join("spool"))
    };
    let err = Spool::open(config, Arc::new(Metrics::default()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("raise"), "{err}");
    assert!(!dir.path().join("spool").exists());
}

#[test]
fn inspect_reports_depth_sequence_range_and_age_without_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        inspect(&dir.path().join("nowhere")),
        Err(SpoolError::NotFound { .. })
    ));
    let config = SpoolConfig::new(dir.path());
    let (mut spool, _) = open(&config);
    let first = spool.append(RecordKind::Alert, vec![0; 10]).unwrap().seq;
    spool.append(RecordKind::Readings, vec![0; 100]).unwrap();
    let last = spool
        .append(RecordKind::Readings, vec![0; 100])
        .unwrap()
        .seq;
    spool.close().unwrap();
    let r = inspect(dir.path()).unwrap();
    assert_eq!(r.alerts.records, 1);
    assert_eq!(r.alerts.bytes, record::footprint(10));
    assert_eq!(r.readings.records, 2);
    assert_eq!((r.seq_first, r.seq_last), (Some(first), Some(last)));
    assert_eq!(r.boot_ids, 1);
    assert!(r.oldest_age_s.is_some_and(|a| a < 3600));
    assert!(r.bytes_on_disk > 0);
    assert!(r.quarantined.is_empty());
    let text = r.to_string();
    assert!(text.contains("readings:       2 records"), "{text}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["readings"]["records"], 2);
    // Inspect changed nothing: the agent finds the same records.
    let (spool, _) = open(&config);
    assert_eq!(spool.stats().depth.records(), 3);
}

#[tokio::test]
async fn the_task_api_sends_acks_requeues_and_flushes_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig::new(dir.path());
    let (spool, _) = open(&config);
    let cancel = tokio_util::sync::CancellationToken::new();
    let (handle, task) = SpoolTask::spawn(spool, cancel.clone()).unwrap();
    let mut stats = handle.stats();
    let r = handle
        .append(RecordKind::Readings, b"one".to_vec())
        .await
        .unwrap();
    let a = handle
        .append(RecordKind::Alert, b"two".to_vec())
        .await
        .unwrap();
    stats.wait_for(|s| s.depth.records() == 2).await.unwrap();
    handle.link_up().await.unwrap();
    let sent = handle.next_to_send(10).await.unwrap();
    assert_eq!(seqs(&sent), vec![a.seq, r.seq]);
    assert!(handle.next_to_send(10).await.unwrap().is_empty());
    assert!(handle.ack(a.seq).await.unwrap());
    handle.link_down().await.unwrap();
    assert_eq!(seqs(&handle.next_to_send(10).await.unwrap()), vec![r.seq]);
    let f = handle.flush().await.unwrap();
    assert_eq!(f.through, Some(a.seq.max(r.seq)));
    cancel.cancel();
    task.join().await.unwrap();
    assert!(matches!(handle.ack(r.seq).await, Err(SpoolError::Stopped)));
    let (spool, _) = open(&config);
    assert_eq!(spool.stats().depth.records(), 1);
}

mod model {
    //! Random append / send / ack / disconnect / restart sequences (evictions come from
    //! small caps) against a naive in-memory model of the documented policy.

    use super::*;
    use proptest::prelude::*;

    const MAX_PAYLOAD: usize = 200;

    #[derive(Clone, Debug)]
    enum Op {
        Append(RecordKind, usize),
        Send(usize),
        Ack(usize),
        LinkUp,
        LinkDown,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        let kind = prop_oneof![Just(RecordKind::Alert), Just(RecordKind::Readings)];
        prop_oneof![
            6 => (kind, 0..=MAX_PAYLOAD).prop_map(|(k, n)| Op::Append(k, n)),
            3 => (1..6usize).prop_map(Op::Send),
            4 => any::<usize>().prop_map(Op::Ack),
            1 => Just(Op::LinkUp),
            1 => Just(Op::LinkDown),
            1 => Just(Op::Restart),
        ]
    }

    struct Rec {
        id: u64,
        kind: RecordKind,
        bytes: u64,
        in_flight: bool,
    }

    /// The policy in the plainest code: linear scans over a vector.
    struct Model {
        recs: Vec<Rec>,
        next_id: u64,
        live_from: u64,
        backlog_turn: bool,
        max_bytes: u64,
        max_alert_bytes: u64,
        max_in_flight: usize,
    }

    impl Model {
        fn bytes(&self, kind: Option<RecordKind>) -> u64 {
            self.recs
                .iter()
                .filter(|r| kind.is_none_or(|k| r.kind == k))
                .map(|r| r.bytes)
                .sum()
        }

        fn remove_first(&mut self, kind: RecordKind) -> bool {
            match self.recs.iter().position(|r| r.kind == kind) {
                Some(i) => {
                    self.recs.remove(i);
                    true
                }
                None => false,
            }
        }

        /// Returns the new id and how many records were evicted.
        fn append(&mut self, kind: RecordKind, bytes: u64) -> (u64, usize) {
            let before = self.recs.len();
            if kind == RecordKind::Alert {
                while self.bytes(Some(kind)) + bytes > self.max_alert_bytes {
                    self.remove_first(RecordKind::Alert);
                }
            }
            while self.bytes(None) + bytes > self.max_bytes {
                if !self.remove_first(RecordKind::Readings) {
                    break;
                }
            }
            let evicted = before - self.recs.len();
            let id = self.next_id;
            self.next_id += 1;
            self.recs.push(Rec {
                id,
                kind,
                bytes,
                in_flight: false,
            });
            (id, evicted)
        }

        fn send(&mut self, max: usize) -> Vec<u64> {
            let mut out = Vec::new();
            loop {
                let in_flight = self.recs.iter().filter(|r| r.in_flight).count();
                if out.len() == max || in_flight >= self.max_in_flight {
                    return out;
                }
                let queued = |r: &&Rec| !r.in_flight;
                let alert = self
                    .recs
                    .iter()
                    .filter(queued)
                    .find(|r| r.kind == RecordKind::Alert);
                let readings = || {
                    self.recs
                        .iter()
                        .filter(queued)
                        .filter(|r| r.kind == RecordKind::Readings)
                };
                let backlog = readings().find(|r| r.id < self.live_from).map(|r| r.id);
                let live = readings().find(|r| r.id >= self.live_from).map(|r| r.id);
                let pick = match (alert.map(|r| r.id), backlog, live) {
                    (Some(a), _, _) => a,
                    (None, Some(b), Some(l)) => {
                        let take_backlog = self.backlog_turn;
                        self.backlog_turn = !self.backlog_turn;
                        if take_backlog { b } else { l }
                    }
                    (None, Some(b), None) => b,
                    (None, None, Some(l)) => l,
                    (None, None, None) => return out,
                };
                self.recs
                    .iter_mut()
                    .find(|r| r.id == pick)
                    .unwrap()
                    .in_flight = true;
                out.push(pick);
            }
        }

        fn requeue(&mut self) {
            self.recs.iter_mut().for_each(|r| r.in_flight = false);
        }

        fn reset_live(&mut self) {
            self.requeue();
            self.live_from = self.next_id;
            self.backlog_turn = true;
        }
    }

    fn payload(id: u64, len: usize) -> Vec<u8> {
        let mut p: Vec<u8> = (0..len).map(|i| (id as usize + i) as u8).collect();
        if len >= 8 {
            p[..8].copy_from_slice(&id.to_le_bytes());
        }
        p
    }

    fn run(ops: Vec<Op>, offline_only: bool) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig {
            max_in_flight: 4,
            write_mode: if offline_only {
                WriteMode::OnlyWhileOffline { max_unstored: 2 }
            } else {
                WriteMode::Always
            },
            flush: FlushPolicy {
                alerts_at_once: false,
                ..FlushPolicy::default()
            },
            ..small(dir.path())
        };
        let (mut spool, _) = open(&config);
        let mut model = Model {
            recs: Vec::new(),
            next_id: 0,
            live_from: 0,
            backlog_turn: true,
            max_bytes: config.ledger_config().max_bytes,
            max_alert_bytes: config.ledger_config().max_alert_bytes,
            max_in_flight: config.max_in_flight,
        };
        let mut id_of: HashMap<Seq, (u64, usize)> = HashMap::new();
        let mut seq_of: HashMap<u64, Seq> = HashMap::new();
        let mut last_seq = None;
        for op in ops {
            match op {
                Op::Append(kind, len) => {
                    let id = model.next_id;
                    let a = spool.append(kind, payload(id, len)).unwrap();
                    let (model_id, evicted) = model.append(kind, record::footprint(len));
                    prop_assert_eq!(model_id, id);
                    prop_assert_eq!(a.evicted as usize, evicted);
                    id_of.insert(a.seq, (id, len));
                    seq_of.insert(id, a.seq);
                    prop_assert!(last_seq < Some(a.seq), "sequence numbers grow");
                    last_seq = Some(a.seq);
                }
                Op::Send(max) => {
                    let got = spool.next_to_send(max).unwrap();
                    let want = model.send(max);
                    let got_ids: Vec<u64> = got.iter().map(|r| id_of[&r.seq].0).collect();
                    prop_assert_eq!(&got_ids, &want);
                    for r in &got {
                        let (id, len) = id_of[&r.seq];
                        prop_assert_eq!(&r.payload, &payload(id, len));
                    }
                }
                Op::Ack(pick) => {
                    let in_flight: Vec<u64> = model
                        .recs
                        .iter()
                        .filter(|r| r.in_flight)
                        .map(|r| r.id)
                        .collect();
                    let id = if in_flight.is_empty() {
                        if model.next_id == 0 {
                            continue;
                        }
                        pick as u64 % model.next_id
                    } else {
                        in_flight[pick % in_flight.len()]
                    };
                    let present = model.recs.iter().position(|r| r.id == id);
                    if let Some(i) = present {
                        model.recs.remove(i);
                    }
                    prop_assert_eq!(spool.ack(seq_of[&id]).unwrap(), present.is_some());
                }
                Op::LinkUp => {
                    spool.link_up();
                    model.reset_live();
                }
                Op::LinkDown => {
                    spool.link_down().unwrap();
                    model.requeue();
                }
                Op::Restart => {
                    spool.close().unwrap();
                    spool = open(&config).0;
                    model.reset_live();
                }
            }
            let d = spool.stats().depth;
            let count = |k| model.recs.iter().filter(|r| r.kind == k).count() as u64;
            prop_assert_eq!(d.alerts.records, count(RecordKind::Alert));
            prop_assert_eq!(d.readings.records, count(RecordKind::Readings));
            prop_assert_eq!(d.bytes(), model.bytes(None));
            prop_assert!(d.bytes() <= config.max_bytes);
            prop_assert!(d.alerts.bytes <= config.max_alert_bytes);
            let in_flight = model.recs.iter().filter(|r| r.in_flight).count() as u64;
            prop_assert_eq!(d.in_flight, in_flight);
        }
        // Whatever is left comes back after one more restart.
        spool.close().unwrap();
        let (mut spool, _) = open(&SpoolConfig {
            max_in_flight: usize::MAX,
            ..config
        });
        model.reset_live();
        let got: BTreeSet<u64> = spool
            .next_to_send(usize::MAX)
            .unwrap()
            .iter()
            .map(|r| id_of[&r.seq].0)
            .collect();
        let want: BTreeSet<u64> = model.recs.iter().map(|r| r.id).collect();
        prop_assert_eq!(got, want);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 40,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn deliveries_match_the_model(
            ops in proptest::collection::vec(op(), 1..60),
            offline_only in any::<bool>(),
        ) {
            run(ops, offline_only)?;
        }
    }
}
