//! The crash and outage suite (issue 19): the real `vigil run` against a real Mosquitto over
//! mutual TLS, every record counted by `(boot, seq)` at a fleet subscriber.
//!
//! - SIGKILL loop: the agent killed at random points, with the broker up and stopped, its
//!   spool kept across restarts; after a clean drain every record the store held at a
//!   kill (what was flushed) reached the fleet.
//! - Broker stopped, then back on the same port: nothing lost, alerts first, and never
//!   more than 100 publishes or 512 KiB in one of the broker's seconds.
//! - Broker frozen (SIGSTOP: the TCP connection stays open, nothing answers): detected
//!   within `keep_alive` and a bound, spooled meanwhile, delivered after SIGCONT.
//! - Damaged and unopenable stores: the agent starts, alerts arrive, it says what happened.
//! - The spool full (a small `max_bytes`): readings evicted and counted, alerts kept.
//! - `VmHWM` of the agent in each phase, and the store's size against its cap.
//!   (A disk that fills and comes back is the next case to add, beside the full spool.)
//!
//! The hard properties are asserted; the soft figures (memory, sizes, times, duplicates)
//! are printed (see `figures.rs`). Nothing sleeps to synchronise: the suite waits on log
//! lines, the fleet's count, and the agent's metrics, each with a deadline.

mod figures;
mod link;
mod stores;
mod tally;
mod truck;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use figures::{Profile, Rng, figure};
use tally::{Account, Boot, Tally, account};
use truck::{Held, Truck, TruckConfig, held};

use crate::broker::{LIMIT, Mosquitto, Pki};

/// The most a drain may take: the full profile's outage leaves 1,500 records (about 5 MB,
/// sent at 128 KiB a second) behind, with room to spare.
const DRAIN: Duration = Duration::from_secs(120);

/// `[spool] flush_every_records` (the default): a run loses at most this many unflushed
/// records to a kill (at the simulator's rate the one-second flush comes later).
const FLUSH_EVERY_RECORDS: usize = 100;

fn report(phase: &str, a: &Account) {
    figure(phase, "delivered", a.delivered);
    figure(phase, "duplicates", a.duplicates);
    figure(phase, "lost inside the window", a.lost_inside);
    figure(
        phase,
        "lost inside the window, most in one run",
        a.most_inside_one_run,
    );
    figure(phase, "lost outside the window", a.lost_outside.len());
}

/// Stops the agent cleanly once it is connected and its backlog has gone (the drain at
/// shutdown has only the shutdown deadline less 2 s), then waits until the fleet has every
/// record the run spooled. Returns the run and what its store still holds (nothing, after a
/// clean drain).
fn stop_and_drain(truck: Truck, tally: &mut Tally, spool: &Path) -> (Boot, BTreeSet<Held>) {
    stop_and_drain_but(truck, tally, spool, 0)
}

/// [`stop_and_drain`], where up to `evicted` records of the run will never come.
fn stop_and_drain_but(
    mut truck: Truck,
    tally: &mut Tally,
    spool: &Path,
    evicted: u64,
) -> (Boot, BTreeSet<Held>) {
    truck.find("\"event\":\"uplink_connected\"");
    assert!(
        truck.wait_metric("spool_records", DRAIN, |n| n <= 20.0),
        "the spool did not drain"
    );
    let (run, log) = truck.stop();
    let left = held(spool);
    // What is missing after this is lost (the account says so).
    let allowed = evicted + left.len() as u64;
    tally.wait(DRAIN, |t| run.missing(t) as u64 <= allowed);
    if !left.is_empty() {
        let shutdown: Vec<&String> = log
            .iter()
            .filter(|l| l.contains("drain") || l.contains("shutdown") || l.contains("uplink_"))
            .collect();
        eprintln!(
            "left in the store after a clean stop: {}; {shutdown:#?}",
            some(&left)
        );
    }
    (run, left)
}

/// AWS IoT Core's limits per connection (or a lower byte rate the truck was given), checked
/// in the broker's busiest second.
pub(crate) fn assert_paced(phase: &str, broker: &Mosquitto, thing: &str, bytes_per_second: u32) {
    let rates = broker.received_from(thing);
    figure(phase, "publishes at the broker", rates.publishes);
    figure(phase, "payload bytes at the broker", rates.bytes);
    figure(
        phase,
        "busiest broker second: publishes",
        rates.busiest_publishes,
    );
    figure(phase, "busiest broker second: bytes", rates.busiest_bytes);
    figure(phase, "byte limit", bytes_per_second);
    if rates.busiest_publishes > 100 || rates.busiest_bytes > bytes_per_second as u64 {
        panic!(
            "over the limits at the broker (100 publishes, {bytes_per_second} bytes): {rates:?}; \
             the broker's log: {}",
            broker_log(broker, thing).display()
        );
    }
}

/// Writes the broker's log to a file named for `thing`, for a failure's message.
pub(crate) fn broker_log(broker: &Mosquitto, thing: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{thing}-broker.log"));
    std::fs::write(&path, broker.log.lock().unwrap().join("\n")).unwrap();
    path
}

/// The first few of many, for a failure's message.
fn some<T: std::fmt::Debug>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<T> = items.into_iter().collect();
    format!(
        "{} in all, the first: {:?}",
        items.len(),
        &items[..items.len().min(5)]
    )
}

#[test]
fn outage_sigkill_loop_loses_nothing_that_was_flushed() {
    let profile = Profile::get();
    let mut rng = Rng::from_env();
    let pki = Pki::new();
    let mut broker = Mosquitto::start_logging_publishes(&pki);
    let thing = "kill-truck";
    let mut tally = Tally::connect(&pki, broker.port, thing);
    let spool = pki.dir.path().join("kill-spool");
    let config = TruckConfig::new(&pki, thing, broker.port, spool.clone());
    let file = config.write(pki.dir.path());

    let kills = profile.kills_up + profile.kills_down;
    // The kills with the broker stopped are spread through the loop.
    let down_every = kills / profile.kills_down.max(1);
    let (mut boots, mut durable, mut hwm) = (Vec::new(), BTreeSet::new(), 0);
    let started = Instant::now();
    for i in 0..kills {
        let down = profile.kills_down > 0 && i % down_every == down_every - 1;
        if down {
            broker.stop();
        }
        let truck = Truck::start(&file);
        // The kill point: a random number of this run's records (0: as soon as its spool is
        // open) appended (broker stopped) or received by the fleet (broker up).
        if down {
            let target = (rng.upto(61) - 1) as f64;
            assert!(
                truck.wait_metric("spool_appended_total", LIMIT, |n| n >= target),
                "kill {i}: the spool never reached {target} appends"
            );
        } else {
            let target = (rng.upto(41) - 1) as usize;
            let boot = truck.boot_id;
            assert!(
                tally.wait(LIMIT, |t| t.of_boot(boot) >= target),
                "kill {i}: the fleet never received {target} records of this run"
            );
        }
        hwm = hwm.max(truck.vm_hwm_kib());
        boots.push(truck.kill());
        durable.extend(held(&spool));
        if down {
            broker.restart();
        }
    }

    // The last run drains everything and stops cleanly.
    let truck = Truck::start(&file);
    let drained = tally.wait(DRAIN, |t| durable.iter().all(|h| t.has(&h.key)));
    hwm = hwm.max(truck.vm_hwm_kib());
    let (run, left) = stop_and_drain(truck, &mut tally, &spool);
    boots.push(run);
    let a = account(&boots, &durable, &tally);
    let phase = "sigkill";
    figure(phase, "profile", profile.name);
    figure(phase, "kills (broker up)", profile.kills_up);
    figure(phase, "kills (broker stopped)", profile.kills_down);
    figure(phase, "records the store held at a kill", durable.len());
    report(phase, &a);
    figure(phase, "VmHWM, highest of any run (KiB)", hwm);
    figure(phase, "time (s)", started.elapsed().as_secs());
    assert!(
        drained && a.lost_outside.is_empty(),
        "flushed, then lost: {}",
        some(&a.lost_outside)
    );
    assert!(
        left.is_empty(),
        "left in the store after a clean stop: {}",
        some(&left)
    );
    assert!(
        a.most_inside_one_run <= FLUSH_EVERY_RECORDS,
        "{} unflushed records lost to one kill: more than the flush window allows",
        a.most_inside_one_run
    );
    assert_paced(phase, &broker, thing, config.bytes_per_second);
}
