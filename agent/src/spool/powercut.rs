//! The spool across power cuts (issue 19; invariant 3 in `spool/mod.rs`).
//!
//! SIGKILL (`tests/spool_crash.rs`) keeps the kernel's page cache; a power cut does not.
//! Here the spool runs through its real code ([`Spool::open`], append, flush, ack) on a
//! disk with a volatile write cache ([`disk::Disk`], registered under the store's path with
//! `backend_for_tests`), over the same store file cycle after cycle. Each cycle appends
//! records of random kinds and sizes as fast as it can with the default flush policy,
//! hands records out and acknowledges them as the uplink would (or not, in an outage), and
//! cuts the power at a random point: inside a commit (at the n-th write, length change or
//! sync the store makes) or between two calls. Half the cuts drop every unsynced write,
//! half keep a random subset of the unsynced sectors, 4 KiB pages or 512-byte sectors
//! (see `disk.rs`). Then the store is
//! opened as the agent opens it (its file, redb's integrity check on), and:
//!
//! - every record covered by a completed flush (`Flushed::through`), and every record
//!   found by the cycle's open, is there, intact, exactly once, unless it was acked;
//! - a record acked before a flush that completed is not there;
//! - nothing else is there, nothing corrupt was dropped, the store is not quarantined;
//! - sequence numbers continue above every record appended or found before.
//!
//! It measures the loss window: records appended (and not acked) after the last completed
//! flush, and how many of those were lost. Cuts: 100 (20 under aarch64, where CI runs the
//! unit tests in qemu-user), `VIGIL_POWERCUT_CUTS` for more; `VIGIL_POWERCUT_SEED` replays
//! a run (the cut points and the disk's choices follow from it; the spool's own timing
//! does not, so a replay is close, not exact).

mod compaction;
mod disk;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::record::{self, RecordKind, Seq};
use super::store::{FILE, backend_for_tests};
use super::{FlushPolicy, Flushed, Spool, SpoolConfig};
use crate::telemetry::Metrics;
use disk::{Cut, Disk};

/// xorshift64*: replayable from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The payload of `seq`: `len` bytes that depend on the sequence number.
fn payload(seq: Seq, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seq + 1);
    let mut p: Vec<u8> = (0..len.div_ceil(8))
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    p.truncate(len);
    p
}

/// Mostly reading batches and alerts of a few hundred bytes to a few KiB, one in a hundred up
/// to the 128 KiB limit (a value over many pages).
fn payload_len(rng: &mut Rng) -> usize {
    let len = match rng.below(100) {
        0 => rng.below(record::MAX_PAYLOAD as u64),
        1..=20 => 1000 + rng.below(7000),
        _ => 16 + rng.below(1000),
    };
    len.max(1) as usize
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number")),
    )
}

/// What one kind of cut did over the run.
#[derive(Default)]
struct Tally {
    cuts: u64,
    /// Cuts at one of the store's writes, length changes or syncs, not between two calls.
    at_a_store_call: u64,
    appended: u64,
    /// Records appended and covered by a completed flush when the power went.
    flushed: u64,
    /// Records appended after the last completed flush, not acked...
    window: u64,
    /// ...and of those, lost.
    lost: u64,
    max_window: u64,
    max_lost: u64,
    /// Records acked after the last completed flush that came back (sent again).
    acked_came_back: u64,
    dirty_sectors: u64,
    kept_sectors: u64,
    kept_older: u64,
    /// Cuts that kept redb's header in its new version but not every page written with it.
    torn_commits: u64,
}

/// The records one cycle appended and acked, and its completed flushes.
#[derive(Default)]
struct Cycle {
    appended: Vec<Seq>,
    /// Acked records, with the number of flushes completed before the ack.
    acked: HashMap<Seq, u64>,
    flushes: u64,
    through: Option<Seq>,
}

impl Cycle {
    fn flushed(&mut self, f: Flushed) {
        assert!(self.through <= f.through, "flushes go forward");
        self.flushes += 1;
        self.through = f.through;
    }
}

#[test]
fn flushed_records_survive_power_cuts() {
    let default_cuts = if cfg!(target_arch = "aarch64") {
        20
    } else {
        100
    };
    let cuts = env_u64("VIGIL_POWERCUT_CUTS").unwrap_or(default_cuts);
    let seed = env_u64("VIGIL_POWERCUT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("power-cut test: {cuts} cuts, VIGIL_POWERCUT_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        flush: FlushPolicy::default(),
        ..SpoolConfig::new(dir.path())
    };
    // The agent's own open makes the store; the cycles open it on the disk.
    Spool::open(config.clone(), Arc::new(Metrics::default()))
        .unwrap()
        .close()
        .unwrap();
    let file = config.store_dir().join(FILE);

    // Every record ever appended or tried: its kind and payload length.
    let mut made: HashMap<Seq, (RecordKind, usize)> = HashMap::new();
    // The records the last check found: in the store at the start of a cycle.
    let mut stored: BTreeSet<Seq> = BTreeSet::new();
    let mut highest: Option<Seq> = None;
    let mut tally: BTreeMap<Cut, Tally> = BTreeMap::new();
    for i in 0..cuts {
        let cut = match i % 4 {
            1 => Cut::TornSectors { sector: disk::PAGE },
            3 => Cut::TornSectors { sector: 512 },
            _ => Cut::DropUnsynced,
        };
        let cut_seed = rng.next();
        let t = tally.entry(cut).or_default();
        t.cuts += 1;

        let disk = Disk::open(&file).unwrap();
        backend_for_tests::open_next_with(&config.store_dir(), disk.clone());
        let mut spool = Spool::open(config.clone(), Arc::new(Metrics::default()))
            .unwrap_or_else(|e| panic!("cut {i}: opening on the disk failed: {e}"));
        let report = spool.open_report().clone();
        assert_eq!(report.quarantined, None, "cut {i}: {report:?}");
        assert_eq!(
            report.recovered,
            stored.len() as u64,
            "cut {i}: the open found another count of records than the last check"
        );
        assert!(
            highest < Some(spool.next_seq()),
            "cut {i}: the sequence restarted at {} after {highest:?}",
            spool.next_seq()
        );

        let (cycle, at_a_store_call) =
            run_until_cut(i, &mut spool, &disk, (cut, cut_seed), &mut rng, &mut made);
        drop(spool);
        let report = disk.cut().expect("the power is off");
        t.at_a_store_call += u64::from(at_a_store_call);
        t.appended += cycle.appended.len() as u64;
        t.dirty_sectors += report.dirty_sectors;
        t.kept_sectors += report.kept_sectors;
        t.kept_older += report.kept_older;
        t.torn_commits += u64::from(report.header_without_all_pages);
        drop(disk);

        let present = check(i, &config, &cycle, &stored, &made, t);
        highest = highest
            .max(present.last().copied())
            .max(cycle.appended.last().copied());
        stored = present;
    }

    for (cut, t) in &tally {
        eprintln!(
            "power-cut test, {cut}: {} cuts ({} at a store call), {} records appended, {} \
             covered by a completed flush (0 of them lost: all there unless acked); loss \
             window: {} records appended after the last completed flush, {} lost (at most \
             {} of {} at one cut); {} acked after it came back; sectors unsynced at the \
             cuts: {}, kept {} ({} in an older version); {} cuts kept the new header \
             without all of the pages written with it",
            t.cuts,
            t.at_a_store_call,
            t.appended,
            t.flushed,
            t.window,
            t.lost,
            t.max_lost,
            t.max_window,
            t.acked_came_back,
            t.dirty_sectors,
            t.kept_sectors,
            t.kept_older,
            t.torn_commits,
        );
    }
    eprintln!(
        "power-cut test: {cuts} cuts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Appends, flushes and acks until the power goes; returns what was done and whether the
/// cut fell on one of the store's calls rather than between two calls of the spool.
fn run_until_cut(
    i: u64,
    spool: &mut Spool,
    disk: &Disk,
    (cut, cut_seed): (Cut, u64),
    rng: &mut Rng,
    made: &mut HashMap<Seq, (RecordKind, usize)>,
) -> (Cycle, bool) {
    let mut cycle = Cycle::default();
    // The link is up (acks) three cycles in four; one alert in 64 or one in 8, or none.
    let link_up = rng.below(4) != 0;
    let alert_one_in = [0, 64, 8][rng.below(3) as usize];
    // The power goes at a random append, then at once or at a store call soon after.
    let cut_at_append = rng.below(200);
    let between_calls = rng.below(4) == 0;
    let store_calls_after = rng.below(48);
    if link_up {
        spool.link_up();
    }
    for n in 0u64.. {
        assert!(n < 100_000, "cut {i}: the power never went");
        if n == cut_at_append {
            if between_calls {
                disk.cut_now(cut, cut_seed).unwrap();
                return (cycle, false);
            }
            disk.arm(store_calls_after, cut, cut_seed);
        }
        let kind = if alert_one_in > 0 && rng.below(alert_one_in) == 0 {
            RecordKind::Alert
        } else {
            RecordKind::Readings
        };
        let len = payload_len(rng);
        let seq = spool.next_seq();
        made.insert(seq, (kind, len));
        let appended = spool.append(kind, payload(seq, len));
        let Some(a) = returned(disk, i, "an append", appended) else {
            return (cycle, true);
        };
        assert_eq!(a.seq, seq, "cut {i}: the spool hands out next_seq()");
        assert_eq!(a.evicted, 0, "cut {i}: the caps are far away");
        cycle.appended.push(seq);
        if let Some(f) = a.flushed {
            cycle.flushed(f);
        }
        let flushed = spool.flush_if_due(Instant::now());
        let Some(flushed) = returned(disk, i, "a flush", flushed) else {
            return (cycle, true);
        };
        if let Some(f) = flushed {
            cycle.flushed(f);
        }
        if link_up && rng.below(4) == 0 {
            let sent = spool.next_to_send(1 + rng.below(16) as usize);
            let Some(sent) = returned(disk, i, "next_to_send", sent) else {
                return (cycle, true);
            };
            for r in sent {
                check_intact(i, &r, made);
                // One in eight stays in flight (its PUBACK never came).
                if rng.below(8) == 0 {
                    continue;
                }
                cycle.acked.insert(r.seq, cycle.flushes);
                let Some(acked) = returned(disk, i, "an ack", spool.ack(r.seq)) else {
                    return (cycle, true);
                };
                assert!(acked, "cut {i}: seq {} was pending", r.seq);
            }
            if rng.below(64) == 0 {
                spool.requeue_all(); // a reconnect
            }
        }
    }
    unreachable!("the loop ends at the cut")
}

/// What a spool call returned, or `None` if the power went during it: the process would
/// not have seen it return. A call that fails with the power on fails the test.
fn returned<T, E: std::fmt::Display>(
    disk: &Disk,
    i: u64,
    what: &str,
    result: Result<T, E>,
) -> Option<T> {
    if disk.cut().is_some() {
        return None;
    }
    Some(result.unwrap_or_else(|e| panic!("cut {i}: {what} failed with the power on: {e}")))
}

fn check_intact(i: u64, r: &super::Record, made: &HashMap<Seq, (RecordKind, usize)>) {
    let &(kind, len) = made
        .get(&r.seq)
        .unwrap_or_else(|| panic!("cut {i}: seq {} was never appended", r.seq));
    assert_eq!(
        r.kind, kind,
        "cut {i}: seq {} came back as another kind",
        r.seq
    );
    assert!(
        r.payload == payload(r.seq, len),
        "cut {i}: seq {} came back with another payload",
        r.seq
    );
}

/// Opens the store as the agent does after a cut: it must open whole, nothing quarantined
/// and no record corrupt. `what` names the cut in messages.
fn reopened(config: SpoolConfig, what: &str) -> (Spool, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(config, metrics.clone())
        .unwrap_or_else(|e| panic!("{what}: reopening the store failed: {e}"));
    let report = spool.open_report().clone();
    assert_eq!(report.quarantined, None, "{what}: quarantined: {report:?}");
    assert_eq!(
        report.corrupt_records, 0,
        "{what}: corrupt records: {report:?}"
    );
    (spool, metrics)
}

/// Opens the store as the agent does after the cut, checks what is there against what the
/// cycle was told, counts the loss window, and returns the records found.
fn check(
    i: u64,
    config: &SpoolConfig,
    cycle: &Cycle,
    stored: &BTreeSet<Seq>,
    made: &HashMap<Seq, (RecordKind, usize)>,
    t: &mut Tally,
) -> BTreeSet<Seq> {
    let all = SpoolConfig {
        max_in_flight: usize::MAX,
        ..config.clone()
    };
    let (mut spool, metrics) = reopened(all, &format!("cut {i}"));
    let mut present = BTreeSet::new();
    for r in spool.next_to_send(usize::MAX).unwrap() {
        assert!(
            present.insert(r.seq),
            "cut {i}: seq {} handed out twice",
            r.seq
        );
        check_intact(i, &r, made);
        if let Some(&flushes) = cycle.acked.get(&r.seq) {
            assert!(
                flushes == cycle.flushes,
                "cut {i}: seq {} was acked before a completed flush and came back",
                r.seq
            );
            t.acked_came_back += 1;
        }
    }
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.spool_corrupt_records_total, 0, "cut {i}");
    assert_eq!(snapshot.spool_quarantined_total, 0, "cut {i}");

    let durable = |seq: &Seq| Some(*seq) <= cycle.through;
    let must_be_there = stored
        .iter()
        .chain(cycle.appended.iter().filter(|s| durable(s)))
        .filter(|s| !cycle.acked.contains_key(s));
    for seq in must_be_there {
        assert!(
            present.contains(seq),
            "cut {i}: seq {seq} was flushed (through {:?}) and not acked, but is gone",
            cycle.through
        );
    }
    t.flushed += cycle.appended.iter().filter(|s| durable(s)).count() as u64;
    let window: Vec<Seq> = cycle
        .appended
        .iter()
        .copied()
        .filter(|s| !durable(s) && !cycle.acked.contains_key(s))
        .collect();
    let lost = window.iter().filter(|s| !present.contains(s)).count() as u64;
    assert!(
        window.len() as u64 <= config.flush.every_records,
        "cut {i}: {} records were waiting for a flush, the policy flushes every {}",
        window.len(),
        config.flush.every_records
    );
    t.window += window.len() as u64;
    t.lost += lost;
    t.max_window = t.max_window.max(window.len() as u64);
    t.max_lost = t.max_lost.max(lost);

    let next = spool.next_seq();
    let highest = present.last().copied().max(cycle.appended.last().copied());
    assert!(
        highest < Some(next),
        "cut {i}: the next sequence number {next} is not above {highest:?}"
    );
    spool.close().unwrap();
    present
}
