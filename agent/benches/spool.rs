//! The spool's benchmark (issue 5): appends/s, drain records/s, bytes on disk per stored
//! record, reopen time, and resident memory with the chosen page cache.
//!
//! `cargo bench -p vigil-agent --bench spool`. Plain `main` (harness = false): each figure is one
//! timed run over a fresh store in a temporary directory, printed as a table. The payload is
//! 4 KiB (`VIGIL_BENCH_PAYLOAD` to change it), the size of a reading batch that fills most of
//! a billed 5 KB message.
//! `VIGIL_BENCH_RECORDS` sets how many are queued (default 20480, 80 MiB); resident memory is
//! the process's own `VmRSS`/`VmHWM` from `/proc/self/status`, so run one size per process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_agent::spool::{FlushPolicy, RecordKind, Spool, SpoolConfig};
use vigil_agent::telemetry::Metrics;

/// The payload size: 4 KiB unless `VIGIL_BENCH_PAYLOAD` (bytes) says otherwise.
fn payload_len() -> usize {
    static LEN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LEN.get_or_init(|| {
        std::env::var("VIGIL_BENCH_PAYLOAD")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096)
    })
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn payload(i: u64) -> Vec<u8> {
    // Mildly compressible, like encoded readings; the store does not compress.
    (0..payload_len())
        .map(|j| ((i as usize * 7 + j / 16) % 251) as u8)
        .collect()
}

/// The store's page cache: the spool's default unless `VIGIL_BENCH_CACHE` (bytes) says otherwise.
fn cache() -> u64 {
    std::env::var("VIGIL_BENCH_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SpoolConfig::new("").cache_capacity)
}

fn open(dir: &std::path::Path, flush: FlushPolicy, max_bytes: u64) -> Spool {
    let config = SpoolConfig {
        cache_capacity: cache(),
        max_bytes,
        max_alert_bytes: 8 << 20,
        max_in_flight: 100,
        flush,
        ..SpoolConfig::new(dir)
    };
    Spool::open(config, Arc::new(Metrics::default())).expect("open")
}

/// Bytes of the files under `dir`: their length, and the blocks they really take.
fn dir_bytes(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let (len, used) = if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            (meta.len(), meta.blocks() * 512)
        };
        total = (total.0 + len, total.1 + used);
    }
    total
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn append_n(spool: &mut Spool, n: u64) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        spool.append(RecordKind::Readings, payload(i)).unwrap();
        spool.flush_if_due(Instant::now()).unwrap();
    }
    spool.flush().unwrap();
    start.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore arguments.
    let (rss0, _) = rss_kib();
    println!(
        "spool benchmark, redb, payload {} B, page cache {} KiB\n",
        payload_len(),
        cache() / 1024
    );

    // 1. Appends with the default policy (flush every 100 records or 1 s).
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut spool = open(dir.path(), FlushPolicy::default(), 256 << 20);
    let (rss_open, _) = rss_kib();
    let queued: u64 = std::env::var("VIGIL_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_480);
    let n = queued;
    let t = append_n(&mut spool, n);
    let (rss_full, _) = rss_kib();
    println!(
        "append, flush every 100 records:   {:>9.0} records/s  ({:.1} MB/s)",
        n as f64 / t.as_secs_f64(),
        (n * payload_len() as u64) as f64 / t.as_secs_f64() / 1e6
    );
    let (on_disk, used) = dir_bytes(&store);
    let logical = spool.stats().depth.bytes();
    println!(
        "bytes on disk per stored record:   {:>9.0} B for a {} B payload \
         (files {:.1} MiB, {:.1} MiB allocated, for {:.1} MiB of records, x{:.2})",
        on_disk as f64 / n as f64,
        payload_len(),
        mib(on_disk),
        mib(used),
        mib(logical),
        on_disk as f64 / logical as f64
    );

    // 2. Reopen with everything queued: what a start after an outage costs.
    spool.close().unwrap();
    let start = Instant::now();
    let mut spool = open(dir.path(), FlushPolicy::default(), 256 << 20);
    let reopen = start.elapsed();
    assert_eq!(spool.open_report().recovered, n);
    let (rss_reopened, _) = rss_kib();
    println!(
        "reopen with {n} records queued:  {:>9.0} ms",
        reopen.as_secs_f64() * 1e3
    );

    // 3. Drain: hand out 100 at a time (the in-flight cap) and acknowledge each.
    let start = Instant::now();
    let mut drained = 0u64;
    loop {
        let batch = spool.next_to_send(100).unwrap();
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            spool.ack(r.seq).unwrap();
        }
        drained += batch.len() as u64;
        spool.flush_if_due(Instant::now()).unwrap();
    }
    let t = start.elapsed();
    let (before_last_flush, _) = dir_bytes(&store);
    let last_flush = Instant::now();
    spool.flush().unwrap();
    let last_flush = last_flush.elapsed();
    assert_eq!(drained, n);
    println!(
        "drain (send 100, ack each):        {:>9.0} records/s",
        drained as f64 / t.as_secs_f64()
    );
    let (rss_drained, _) = rss_kib();
    let (after, used) = dir_bytes(&store);
    println!(
        "files after the drain:             {:>9.1} MiB before the last flush, {:.1} MiB \
         ({:.1} MiB allocated) after it ({:.0} ms)",
        mib(before_last_flush),
        mib(after),
        mib(used),
        last_flush.as_secs_f64() * 1e3
    );
    spool.close().unwrap();

    // 4. The worst case for the loss window: flush after every record.
    let dir = tempfile::tempdir().unwrap();
    let every = FlushPolicy {
        every_records: 1,
        ..FlushPolicy::default()
    };
    let mut spool = open(dir.path(), every, 256 << 20);
    let n = 2_000;
    let t = append_n(&mut spool, n);
    println!(
        "append, flush after every record:  {:>9.0} records/s  (mean flush {:.2} ms)",
        n as f64 / t.as_secs_f64(),
        t.as_secs_f64() * 1e3 / n as f64
    );
    spool.close().unwrap();

    // 5. Churn through a 16 MiB cap: the disk bound in steady state.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut spool = open(dir.path(), FlushPolicy::default(), 16 << 20);
    let mut peak = 0;
    let start = Instant::now();
    let n = 40_000u64; // 160 MiB through a 16 MiB cap
    for i in 0..n {
        spool.append(RecordKind::Readings, payload(i)).unwrap();
        spool.flush_if_due(Instant::now()).unwrap();
        if i % 1000 == 999 {
            peak = peak.max(dir_bytes(&store).0);
        }
    }
    let t = start.elapsed();
    let (end, end_used) = dir_bytes(&store);
    peak = peak.max(end);
    let (rss_churn, _) = rss_kib();
    println!(
        "churn 160 MiB through a 16 MiB cap: {:>8.0} records/s, files peak {:.1} MiB \
         (x{:.2} the cap), {:.1} MiB ({:.1} MiB allocated) at the end",
        n as f64 / t.as_secs_f64(),
        mib(peak),
        peak as f64 / (16u64 << 20) as f64,
        mib(end),
        mib(end_used)
    );
    spool.close().unwrap();
    let (rss_closed, hwm) = rss_kib();

    println!(
        "\nresident memory (KiB): before open {rss0}, open {rss_open}, {queued} records queued \
         {rss_full}, reopened {rss_reopened}, drained {rss_drained}, during churn at the cap \
         {rss_churn}, all closed {rss_closed}, peak {hwm}"
    );
}
