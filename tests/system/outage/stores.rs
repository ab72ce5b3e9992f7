//! The spool's store under the agent: damaged, not the agent's to open, and full.
//!
//! (A disk that fills up and comes back belongs here too: the next case to add, beside the
//! full spool, once the store recovers from a failed commit by itself.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use vigil_agent::spool::{RecordKind, Spool, SpoolConfig};
use vigil_agent::telemetry::Metrics;
use vigil_agent::uplink::payload::{Stream, stored};

use super::figures::{Profile, figure};
use super::tally::{Tally, account};
use super::truck::{Truck, TruckConfig};
use super::{DRAIN, assert_paced, some, stop_and_drain_but};
use crate::broker::{LIMIT, Mosquitto, Pki};

/// The user the agent runs as where a store must be one it may not open (`nobody`): root
/// opens any file whatever its mode.
const NOBODY: u32 = 65534;

/// What is wrong with the spool before the agent starts.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The store's file overwritten with random bytes.
    Garbage,
    /// The store's file cut to half its length.
    Truncated,
    /// A regular file where the spool's folder should be.
    FileForFolder,
    /// The store's folder a symbolic link to itself (every open fails with ELOOP).
    LinkLoop,
    /// A store folder of another user's, mode 000 (root's, left by a `sudo vigil run`).
    NotTheAgents,
}

/// A store in `dir` holding a few records, as an earlier run left it.
fn earlier_store(dir: &Path) {
    let mut spool = Spool::open(SpoolConfig::new(dir), Arc::new(Metrics::default())).unwrap();
    for n in 0..5 {
        let body = format!("{{\"format\":\"test\",\"n\":{n}}}");
        spool
            .append(
                RecordKind::Readings,
                stored(Stream::Readings, body.as_bytes()),
            )
            .unwrap();
    }
    spool.close().unwrap();
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Damages the spool at `dir`; returns the user to run the agent as.
fn damage(dir: &Path, how: Damage) -> Option<u32> {
    let file = dir.join("store/spool.redb");
    match how {
        Damage::Garbage | Damage::Truncated => {
            earlier_store(dir);
            let len = std::fs::metadata(&file).unwrap().len();
            if matches!(how, Damage::Garbage) {
                let mut rng = super::figures::Rng::from_env();
                let bytes: Vec<u8> = (0..len).map(|_| rng.upto(256) as u8).collect();
                std::fs::write(&file, bytes).unwrap();
            } else {
                let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
                f.set_len(len / 2).unwrap();
            }
        }
        Damage::FileForFolder => std::fs::write(dir, b"not a folder\n").unwrap(),
        Damage::LinkLoop => {
            std::fs::create_dir_all(dir).unwrap();
            std::os::unix::fs::symlink(dir.join("store"), dir.join("store")).unwrap();
        }
        Damage::NotTheAgents => {
            earlier_store(dir);
            let store = dir.join("store");
            std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o000)).unwrap();
            // The agent's user may enter the spool folder, not the store in it.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            return is_root().then_some(NOBODY);
        }
    }
    None
}

#[test]
fn outage_damaged_and_unopenable_stores_still_give_alerts_and_say_what_happened() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let phase = "damaged stores";
    for how in [
        Damage::Garbage,
        Damage::Truncated,
        Damage::FileForFolder,
        Damage::LinkLoop,
        Damage::NotTheAgents,
    ] {
        let thing = format!("{how:?}-truck").to_lowercase();
        let mut tally = Tally::connect(&pki, broker.port, &thing);
        let spool = pki.dir.path().join(format!("{thing}-spool"));
        let mut config = TruckConfig::new(&pki, &thing, broker.port, spool.clone());
        let user = damage(&spool, how);
        if let Some(uid) = user {
            // The agent's own key is its user's, and readable by nobody else.
            std::os::unix::fs::chown(&config.id.key, Some(uid), Some(uid)).unwrap();
        }
        config.batch_readings = 200;
        let file = config.write(pki.dir.path());
        let mut truck = Truck::start_as(&file, user);
        let boot = truck.boot_id;
        // It says what happened: moved aside (and it was), or held in memory.
        let said = truck.seen("spool store damaged").pop().or_else(|| {
            let memory = truck.seen("\"event\":\"spool_memory_only\"");
            memory.into_iter().next()
        });
        let said: serde_json::Value = match said {
            Some(line) => serde_json::from_str(&line).unwrap(),
            None => panic!(
                "{how:?}: nothing said about the store: {:#?}",
                truck.log.seen
            ),
        };
        let memory_only = said["event"] == "spool_memory_only";
        if memory_only {
            let moved = truck.seen("moved aside");
            assert!(moved.is_empty(), "{how:?}: held in memory, yet {moved:?}");
        } else {
            let moved = Path::new(said["moved_to"].as_str().unwrap());
            assert!(
                moved.join("reason.txt").is_file(),
                "{how:?}: {said} but {} holds no reason.txt",
                moved.display()
            );
        }
        let what = if memory_only {
            format!("memory only: {}", said["error"])
        } else {
            format!("moved aside: {}", said["reason"])
        };
        figure(phase, &format!("{how:?}"), what);
        // Alerts still arrive, and the status says whether the spool is on disk.
        assert!(
            tally.wait(LIMIT, |t| t
                .deliveries
                .iter()
                .any(|d| d.alert && d.key.0 == boot)),
            "{how:?}: no alert reached the fleet"
        );
        assert!(
            tally.wait(LIMIT, |t| t.statuses.iter().any(|s| s["state"] == "online")),
            "{how:?}: no online status"
        );
        let status = tally
            .statuses
            .iter()
            .find(|s| s["state"] == "online")
            .unwrap();
        assert_eq!(
            status["spool"]["memory_only"], memory_only,
            "{how:?}: {status}"
        );
        assert_eq!(
            truck.metric("spool_memory_only"),
            Some(if memory_only { 1.0 } else { 0.0 }),
            "{how:?}"
        );
        drop(truck);
    }
}

#[test]
fn outage_a_full_spool_evicts_readings_counts_them_and_keeps_its_alerts() {
    let profile = Profile::get();
    let pki = Pki::new();
    let mut broker = Mosquitto::start_logging_publishes(&pki);
    let thing = "full-truck";
    let mut tally = Tally::connect(&pki, broker.port, thing);
    let spool = pki.dir.path().join("full-spool");
    let mut config = TruckConfig::new(&pki, thing, broker.port, spool.clone());
    // The smallest caps allowed: one largest alert, and one largest reading batch beyond
    // (each 599,187 bytes of the file: a 128 KiB payload takes 256 KiB of pages, which may
    // fill 7/16 of the cap).
    let (max_bytes, max_alert_bytes) = (1176 << 10, 588 << 10);
    config.spool_caps = Some((max_bytes, max_alert_bytes));
    config.speed = 40.0;
    config.batch_readings = 50;
    let file = config.write(pki.dir.path());
    let mut truck = Truck::start(&file);
    let boot = truck.boot_id;
    truck.expect("uplink_connected");
    assert!(tally.wait(LIMIT, |t| t.of_boot(boot) >= 20));

    broker.stop();
    truck.expect("uplink_disconnected");
    let evicted = |n: u64| move |v: f64| v as u64 >= n;
    assert!(
        truck.wait_metric("spool_evicted_total", DRAIN, evicted(1)),
        "the spool never filled"
    );
    // An alert while the spool is full: the tank's critical limit lowered under it.
    config.tank_critical = 6.0;
    config.write(pki.dir.path());
    truck.hangup();
    truck.expect("config_reloaded");
    assert!(
        truck.wait_metric("spool_evicted_total", DRAIN, evicted(profile.evictions)),
        "fewer than {} evictions",
        profile.evictions
    );
    let hwm = truck.vm_hwm_kib();
    let file_len = std::fs::metadata(spool.join("store/spool.redb")).unwrap();
    let allocated = std::os::unix::fs::MetadataExt::blocks(&file_len) * 512;
    // Said at warn (at most once a minute), never an alert among them.
    let warnings = truck.seen("\"event\":\"spool_evicted\"");
    assert!(!warnings.is_empty(), "evictions not logged");
    for w in &warnings {
        let w: serde_json::Value = serde_json::from_str(w).unwrap();
        assert_eq!(
            (&w["level"], &w["alerts"]),
            (&"WARN".into(), &0.into()),
            "{w}"
        );
    }

    broker.restart();
    truck.expect("uplink_connected");
    // Once the backlog has gone nothing more is evicted: the agent's count is final.
    assert!(
        truck.wait_metric("spool_records", DRAIN, |n| n <= 20.0),
        "the spool did not drain"
    );
    let evicted_total = truck.metric("spool_evicted_total").unwrap() as u64;
    let (run, left) = stop_and_drain_but(truck, &mut tally, &spool, evicted_total);
    let a = account(&[run], &left, &tally);
    let phase = "spool full";
    figure(phase, "max_bytes", max_bytes);
    figure(phase, "store file length (bytes)", file_len.len());
    figure(
        phase,
        "store file length / max_bytes",
        format!("{:.2}", file_len.len() as f64 / max_bytes as f64),
    );
    figure(phase, "store file allocated (bytes)", allocated);
    figure(phase, "evicted (the agent's count)", evicted_total);
    figure(phase, "missing at the fleet", a.lost_inside);
    figure(phase, "VmHWM with the spool full (KiB)", hwm);
    assert!(
        file_len.len() <= max_bytes,
        "the store's file is {} bytes for a cap of {max_bytes}",
        file_len.len()
    );
    assert!(left.is_empty(), "left after a clean stop: {}", some(&left));
    assert!(a.lost_outside.is_empty(), "{}", some(&a.lost_outside));
    // Nothing lost silently: every record missing at the fleet is one the agent counted as
    // evicted (the count may also hold a record the broker had taken when it stopped,
    // before its PUBACK left), and both alerts (the warning, then the critical) arrived.
    assert!(
        a.lost_inside as u64 <= evicted_total,
        "{} missing, {evicted_total} counted as evicted",
        a.lost_inside
    );
    let alerts: std::collections::BTreeSet<_> = tally
        .deliveries
        .iter()
        .filter(|d| d.alert && d.key.0 == boot)
        .map(|d| d.key)
        .collect();
    assert!(alerts.len() >= 2, "alerts delivered: {alerts:?}");
    assert_paced(phase, &broker, thing, config.bytes_per_second);
}
