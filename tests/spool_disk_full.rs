//! The spool on a disk that fills up and comes back (issue 19): a real tmpfs of 4 MiB,
//! mounted by the test (CI runs as root), grown while the spool runs.
//!
//! The spool appends until the disk refuses a commit, carries on in memory (every append
//! still succeeds, nothing is dropped), refuses to go back while the disk is still full,
//! and goes back by itself once the filesystem has grown: everything it held in memory is
//! then on the disk, and every record appended is delivered exactly once, whether it was
//! flushed before the disk filled, lost from the failed commit, or appended while full.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_agent::spool::{
    FlushPolicy, RecordKind, Seq, Spool, SpoolConfig, SpoolHandle, SpoolTask,
};
use vigil_agent::telemetry::Metrics;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs to fill a real filesystem, which needs root (CI runs as \
             root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path, _dir: dir }
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        // The cap is far above the disk: the disk, not the cap, runs out first.
        max_bytes: 64 << 20,
        max_alert_bytes: 8 << 20,
        flush: FlushPolicy {
            every_records: 8,
            every: Duration::from_secs(3600),
            alerts_at_once: true,
        },
        ..SpoolConfig::new(dir.join("spool"))
    }
}

/// The payload of record `i`: its number, then filler (a reading batch is about 4 KB).
fn payload(i: u32) -> Vec<u8> {
    let mut p = i.to_be_bytes().to_vec();
    p.resize(3900, (i % 251) as u8);
    p
}

fn kind(i: u32) -> RecordKind {
    if i % 10 == 9 {
        RecordKind::Alert
    } else {
        RecordKind::Readings
    }
}

/// Sends and acknowledges everything; returns what arrived, by payload number.
fn drain(spool: &mut Spool) -> Vec<u32> {
    let mut got = Vec::new();
    loop {
        let batch = spool.next_to_send(50).unwrap();
        if batch.is_empty() {
            return got;
        }
        for r in batch {
            assert_eq!(r.payload, payload(number(&r.payload)), "intact");
            got.push(number(&r.payload));
            assert!(spool.ack(r.seq).unwrap());
        }
    }
}

fn number(p: &[u8]) -> u32 {
    u32::from_be_bytes(p[..4].try_into().unwrap())
}

#[test]
fn a_full_disk_moves_the_spool_to_memory_and_it_returns_to_the_disk_by_itself() {
    let disk = Tmpfs::mount("4m");
    let metrics = Arc::new(Metrics::default());
    let mut spool = Spool::open(config(&disk.path), metrics.clone()).unwrap();

    // Fill the disk: every append succeeds, through the failure.
    let mut appended = Vec::new();
    let mut i = 0u32;
    while !spool.in_memory() {
        assert!(i < 5_000, "4 MiB never filled");
        spool.append(kind(i), payload(i)).unwrap();
        appended.push(i);
        i += 1;
    }
    let filled_at = i;
    assert_eq!(metrics.snapshot().spool_store_failures_total, 1);
    assert_eq!(metrics.snapshot().spool_memory_only, 1);
    // 120 more while the disk is full (470 KB: under the memory cap, so nothing is evicted).
    for _ in 0..120 {
        spool.append(kind(i), payload(i)).unwrap();
        appended.push(i);
        i += 1;
    }
    let retry = spool.retry_at().expect("it tries the disk again");
    assert!(!spool.rejoin_disk_if_due(retry), "the disk is still full");
    assert!(spool.in_memory());

    disk.grow("64m");
    let grown = Instant::now();
    let retry = spool.retry_at().unwrap();
    assert!(
        spool.rejoin_disk_if_due(retry),
        "the disk takes writes again"
    );
    let took = grown.elapsed();
    assert_eq!(metrics.snapshot().spool_memory_only, 0);
    assert_eq!(metrics.snapshot().spool_evicted_total, 0);
    eprintln!(
        "disk full after {filled_at} records of 3.9 KB; {} appended in all; back on the disk \
         in {took:?} (the retry itself; the spool tries every 1-8 s)",
        appended.len()
    );

    // Everything held is on the disk now: a restart finds it, and it all arrives once.
    spool.close().unwrap();
    let mut spool = Spool::open(config(&disk.path), metrics.clone()).unwrap();
    assert_eq!(spool.open_report().recovered, appended.len() as u64);
    let mut got = drain(&mut spool);
    got.sort_unstable();
    assert_eq!(got, appended, "every record arrives exactly once");
    spool.close().unwrap();
}

/// The same through the spool's task, as the agent runs it: its own timer brings it back,
/// and what is acknowledged while the disk is full does not come back.
#[test]
fn the_spool_task_returns_to_the_disk_on_its_own_timer() {
    let disk = Tmpfs::mount("2m");
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(config(&disk.path), metrics.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let cancel = tokio_util::sync::CancellationToken::new();
        let (handle, task) = SpoolTask::spawn(spool, cancel.clone()).unwrap();
        let mut i = 0u32;
        let mut pending = BTreeSet::new();
        while metrics.snapshot().spool_memory_only == 0 {
            assert!(i < 5_000, "2 MiB never filled");
            let a = handle.append(kind(i), payload(i)).await.unwrap();
            pending.insert(a.seq);
            i += 1;
        }
        // Acknowledge some while full: records that waited on the disk and in memory.
        handle.link_up().await.unwrap();
        let sent = handle.next_to_send(40).await.unwrap();
        let sent_now: BTreeSet<Seq> = sent.iter().map(|r| r.seq).collect();
        for r in &sent {
            handle.ack(r.seq).await.unwrap();
        }
        let acked: Vec<u32> = sent.iter().map(|r| number(&r.payload)).collect();
        assert!(!acked.is_empty());
        handle.link_down().await.unwrap();

        disk.grow("64m");
        let grown = Instant::now();
        wait_until(&handle, Duration::from_secs(20), || {
            metrics.snapshot().spool_memory_only == 0
        })
        .await;
        eprintln!(
            "the task was back on the disk {:?} after it grew",
            grown.elapsed()
        );
        drop(handle);
        cancel.cancel();
        task.join().await.unwrap();

        let mut spool = Spool::open(config(&disk.path), metrics.clone()).unwrap();
        let got = drain(&mut spool);
        let expected: BTreeSet<u32> = (0..i).filter(|n| !acked.contains(n)).collect();
        assert_eq!(
            got.iter().copied().collect::<BTreeSet<u32>>(),
            expected,
            "all but the {} acknowledged ({:?}) are there, once",
            acked.len(),
            sent_now
        );
        assert_eq!(got.len(), expected.len(), "no duplicates");
        spool.close().unwrap();
    });
}

/// Waits on the spool's stats (sent after every command and every retry) until `done`.
async fn wait_until(handle: &SpoolHandle, limit: Duration, done: impl Fn() -> bool) {
    let mut stats = handle.stats();
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        tokio::time::timeout_at(deadline, stats.changed())
            .await
            .unwrap_or_else(|_| panic!("not back on the disk within {limit:?}"))
            .unwrap();
    }
}
