//! The spool's crash test with a real process (issue 5, DESIGN.md invariant 3).
//!
//! `vigil spool soak` appends to a spool as fast as it can and prints `appended <seq>` and
//! `flushed <seq>` lines. This test reads them, kills the writer with SIGKILL at a random
//! point (after a random number of flushes plus a random number of appends), then opens
//! the store itself and checks:
//!
//! - every record reported appended at or below the last reported flush is there, exactly
//!   once, intact (payload and kind as the writer made them), and nothing corrupt is
//!   handed out;
//! - the next writer's sequence numbers continue above everything seen before;
//! - records acknowledged (deleted) before the previous writer started do not come back.
//!
//! It measures the loss window: records reported appended but not flushed when the kill
//! came, and how many of those were lost. Iterations: 100 by default,
//! `VIGIL_CRASH_ITERATIONS` for longer runs; `VIGIL_CRASH_SEED` replays a run.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;

use vigil_agent::spool::{Spool, soak};
use vigil_agent::telemetry::Metrics;

/// xorshift64*: enough randomness for kill points, and replayable from a seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[derive(Default)]
struct Run {
    /// `next=` from the writer's `open` line.
    first_seq: u64,
    appended: Vec<u64>,
    flushed_through: Option<u64>,
}

fn parse(line: &str, run: &mut Run) -> bool {
    if let Some(rest) = line.strip_prefix("open next=") {
        run.first_seq = rest.split(' ').next().unwrap().parse().unwrap();
    } else if let Some(seq) = line.strip_prefix("appended ") {
        run.appended.push(seq.parse().unwrap());
    } else if let Some(seq) = line.strip_prefix("flushed ") {
        let seq: u64 = seq.parse().unwrap();
        assert!(run.flushed_through <= Some(seq), "flushes go forward");
        run.flushed_through = Some(seq);
        return true;
    } else {
        panic!("unexpected line from the soak writer: {line:?}");
    }
    false
}

#[test]
fn flushed_records_survive_sigkill() {
    let iterations: u32 = std::env::var("VIGIL_CRASH_ITERATIONS")
        .ok()
        .map(|v| v.parse().expect("VIGIL_CRASH_ITERATIONS is a number"))
        .unwrap_or(100);
    let seed: u64 = std::env::var("VIGIL_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("VIGIL_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("spool crash test: {iterations} kills, VIGIL_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let policy = soak::SoakOptions::default().flush;

    let mut max_seen: Option<u64> = None;
    let mut acked_before: u64 = 0; // every seq below this was acknowledged
    let (mut unflushed_at_kill, mut lost, mut max_lost, mut checked) = (0u64, 0u64, 0u64, 0u64);
    let mut max_unflushed = 0u64;
    for i in 0..iterations {
        let flushes_before_kill = 1 + rng.below(8);
        let appends_after = rng.below(64);
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["spool", "soak", "--path"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the soak writer starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut run = Run::default();
        let mut flushes = 0;
        let mut after = None;
        let mut killed = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if parse(&line, &mut run) {
                flushes += 1;
            }
            if flushes >= flushes_before_kill && after.is_none() {
                after = Some(run.appended.len() as u64 + appends_after);
            }
            if after.is_some_and(|a| run.appended.len() as u64 >= a) {
                child.kill().expect("SIGKILL");
                killed = true;
                break;
            }
        }
        // What the writer printed before it died is still in the pipe: it happened.
        for line in lines {
            parse(&line.unwrap(), &mut run);
        }
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            killed,
            "iteration {i}: the writer ended by itself: {status} {stderr}"
        );
        assert!(
            max_seen < Some(run.first_seq),
            "iteration {i}: sequence restarted at {} after {max_seen:?}",
            run.first_seq
        );

        // Restart: open the store, take everything it hands out.
        let mut spool = Spool::open(soak::config(&path, policy), Arc::new(Metrics::default()))
            .unwrap_or_else(|e| panic!("iteration {i}: reopening failed: {e}"));
        let report = spool.open_report().clone();
        assert_eq!(
            report.quarantined, None,
            "iteration {i}: store quarantined: {report:?}"
        );
        let records = spool.next_to_send(usize::MAX).unwrap();
        let mut present = BTreeSet::new();
        for r in &records {
            assert!(
                present.insert(r.seq),
                "iteration {i}: seq {} handed out twice",
                r.seq
            );
            assert!(
                r.seq >= acked_before,
                "iteration {i}: acknowledged seq {} came back",
                r.seq
            );
            assert_eq!(
                r.payload,
                soak::payload(r.seq),
                "iteration {i}: seq {} damaged",
                r.seq
            );
            assert_eq!(
                r.kind,
                soak::kind_of(r.seq),
                "iteration {i}: seq {} kind",
                r.seq
            );
        }
        let flushed = run
            .flushed_through
            .expect("at least one flush before the kill");
        for &seq in run.appended.iter().filter(|&&s| s <= flushed) {
            assert!(
                present.contains(&seq),
                "iteration {i}: seq {seq} was flushed (through {flushed}) but is gone"
            );
            checked += 1;
        }
        let unflushed: Vec<u64> = run
            .appended
            .iter()
            .copied()
            .filter(|&s| s > flushed)
            .collect();
        let gone = unflushed.iter().filter(|s| !present.contains(s)).count() as u64;
        unflushed_at_kill += unflushed.len() as u64;
        max_unflushed = max_unflushed.max(unflushed.len() as u64);
        lost += gone;
        max_lost = max_lost.max(gone);
        assert!(
            unflushed.len() as u64 <= policy.every_records,
            "iteration {i}: {} appends outstanding, policy flushes every {}",
            unflushed.len(),
            policy.every_records
        );
        max_seen = max_seen
            .max(present.last().copied())
            .max(run.appended.last().copied());

        // Acknowledge everything so the store stays small; the next writer starts above.
        for seq in &present {
            assert!(spool.ack(*seq).unwrap());
        }
        acked_before = max_seen.map_or(0, |m| m + 1);
        spool.close().unwrap();
    }
    eprintln!(
        "spool crash test: {iterations} SIGKILLs, {checked} flushed records checked, 0 lost; \
         loss window: {unflushed_at_kill} records appended but not yet flushed at the kills \
         (at most {max_unflushed} at one kill, policy: every {} records or {:?}), \
         of which {lost} were lost (at most {max_lost} at one kill)",
        policy.every_records, policy.every
    );
}
