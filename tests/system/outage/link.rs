//! The link fails under a running agent: the broker stopped and brought back on the same
//! port, and the broker frozen (SIGSTOP) with its TCP connection left open.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::figures::{Profile, figure};
use super::tally::{Tally, account};
use super::truck::{Truck, TruckConfig};
use super::{DRAIN, assert_paced, broker_log, report, some, stop_and_drain};
use crate::broker::{LIMIT, Mosquitto, Pki};

/// The trucks' `[uplink] keep_alive` (AWS IoT Core's shortest).
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long past a keep-alive the agent may take to call a silent link lost: the uplink
/// waits 10 s for the answer to its PINGREQ, and 2 s are left for a loaded test machine.
const SILENCE_BOUND: Duration = Duration::from_secs(12);

/// The longest an outage may take to fill the spool: the full profile's 1,500 records come
/// at 4 to 8 a second.
const OUTAGE: Duration = Duration::from_secs(600);

/// The broker-stopped truck's `[uplink] max_bytes_per_second` (the lowest allowed).
const BYTES_PER_SECOND: u32 = 128 * 1024;

#[test]
fn outage_broker_stopped_loses_nothing_sends_alerts_first_and_keeps_the_pace() {
    let profile = Profile::get();
    let pki = Pki::new();
    let mut broker = Mosquitto::start_logging_publishes(&pki);
    let thing = "outage-truck";
    let mut tally = Tally::connect(&pki, broker.port, thing);
    let spool = pki.dir.path().join("outage-spool");
    let mut config = TruckConfig::new(&pki, thing, broker.port, spool.clone());
    // Large reading batches and a byte rate of 128 KiB a second: the backlog's drain is held
    // back by the byte limit (the full spool's, of small records, by the publish limit). The
    // simulator does not make data fast enough to fill 512 KiB a second in a short outage.
    // The broker is stopped with SIGTERM: it keeps what it acknowledged (the fleet's queued
    // messages) as a managed broker would; to the agent a stop and a crash look the same.
    config.speed = 40.0;
    config.batch_readings = 2000;
    config.message_bytes = 16_000;
    config.bytes_per_second = BYTES_PER_SECOND;
    let file = config.write(pki.dir.path());
    let mut truck = Truck::start(&file);
    let boot = truck.boot_id;
    truck.expect("uplink_connected");
    assert!(
        tally.wait(DRAIN, |t| t.of_boot(boot) as u64 >= profile.steady_records),
        "the steady phase never delivered {} records",
        profile.steady_records
    );
    let hwm_steady = truck.vm_hwm_kib();

    broker.stop();
    truck.expect("uplink_disconnected");
    let appended = |truck: &Truck| truck.metric("spool_appended_total").unwrap() as u64;
    let lost_at = appended(&truck);
    let spooled = |truck: &Truck, records: u64| {
        assert!(
            truck.wait_metric("spool_records", OUTAGE, |n| n as u64 >= records),
            "the spool never held {records} records"
        );
    };
    spooled(&truck, profile.outage_records / 2);
    // An alert in the middle of the backlog: the tank's critical limit lowered under its
    // temperature escalates its warning.
    config.tank_critical = 6.0;
    config.write(pki.dir.path());
    truck.hangup();
    truck.expect("config_reloaded");
    assert!(
        truck.wait_metric("spool_alert_records", LIMIT, |n| n >= 1.0),
        "no alert spooled after the limit was lowered"
    );
    spooled(&truck, profile.outage_records);
    let back_at = appended(&truck);
    let pending = truck.metric("spool_bytes").unwrap();
    let file = std::fs::metadata(spool.join("store/spool.redb"))
        .unwrap()
        .len();
    broker.restart();
    truck.expect("uplink_connected");
    let backlog: BTreeSet<u64> = (truck.first_seq + lost_at..truck.first_seq + back_at).collect();
    let drained = Instant::now();
    assert!(
        tally.wait(DRAIN, |t| backlog.iter().all(|&s| t.has(&(boot, s)))),
        "the backlog did not arrive"
    );
    let drain_time = drained.elapsed();
    let hwm_after = truck.vm_hwm_kib();
    let (run, left) = stop_and_drain(truck, &mut tally, &spool);

    let phase = "broker stopped";
    let a = account(&[run], &left, &tally);
    figure(phase, "backlog (records)", backlog.len());
    figure(phase, "backlog drained in (ms)", drain_time.as_millis());
    figure(phase, "store file at the end of the outage (bytes)", file);
    figure(phase, "pending records then (bytes)", pending);
    report(phase, &a);
    figure(phase, "VmHWM steady (KiB)", hwm_steady);
    figure(phase, "VmHWM after the outage (KiB)", hwm_after);
    assert!(left.is_empty(), "left after a clean stop: {}", some(&left));
    assert_eq!(
        (a.lost_inside, a.lost_outside.len()),
        (0, 0),
        "lost: {}",
        some(&a.lost_outside)
    );

    // Alerts first: every alert of the backlog reached the fleet before its first reading.
    let first_delivery = |seq: u64| {
        tally
            .deliveries
            .iter()
            .position(|d| d.key == (boot, seq))
            .unwrap()
    };
    let (alerts, readings): (Vec<u64>, Vec<u64>) = backlog.iter().partition(|&&s| {
        tally
            .deliveries
            .iter()
            .any(|d| d.key == (boot, s) && d.alert)
    });
    assert!(!alerts.is_empty(), "no alert in the backlog");
    let first_reading = readings.iter().map(|&s| first_delivery(s)).min().unwrap();
    for a in alerts {
        assert!(
            first_delivery(a) < first_reading,
            "alert {a} after a reading of the backlog"
        );
    }
    assert_paced(phase, &broker, thing, BYTES_PER_SECOND);
}

#[test]
fn outage_frozen_broker_is_detected_within_keep_alive_and_a_bound() {
    let profile = Profile::get();
    let pki = Pki::new();
    let broker = Mosquitto::start_logging_publishes(&pki);
    let thing = "frozen-truck";
    let mut tally = Tally::connect(&pki, broker.port, thing);
    let spool = pki.dir.path().join("frozen-spool");
    let mut config = TruckConfig::new(&pki, thing, broker.port, spool.clone());
    config.batch_readings = 200;
    let file = config.write(pki.dir.path());
    let mut truck = Truck::start(&file);
    let boot = truck.boot_id;
    truck.expect("uplink_connected");
    let phase = "broker frozen";
    let mut worst = Duration::ZERO;
    for freeze in 0..profile.freezes {
        let delivered = tally.of_boot(boot);
        assert!(
            tally.wait(LIMIT, |t| t.of_boot(boot) >= delivered + 20),
            "records stopped flowing before freeze {freeze}"
        );
        // After the first freeze, the worst moment: just after the broker answered a ping,
        // so the next one is a whole keep-alive away.
        if freeze > 0 {
            let from = broker.log.lock().unwrap().len();
            broker
                .wait_log(
                    &format!("Sending PINGRESP to {thing}"),
                    from,
                    KEEP_ALIVE * 2,
                )
                .expect("the agent pings within its keep-alive");
        }
        let frozen = Instant::now();
        broker.signal("STOP");
        let lost = truck.wait("uplink_disconnected", KEEP_ALIVE * 3);
        let detected = frozen.elapsed();
        figure(
            phase,
            &format!("freeze {freeze}: detected after (ms)"),
            detected.as_millis(),
        );
        let lost = lost.unwrap_or_else(|| {
            broker.signal("CONT");
            panic!("a frozen broker was not detected in {detected:?}")
        });
        figure(
            phase,
            &format!("freeze {freeze}: the agent said"),
            &lost["error"],
        );
        worst = worst.max(detected);
        // It goes on spooling while the broker is silent.
        let held = truck.metric("spool_records").unwrap();
        assert!(
            truck.wait_metric("spool_records", LIMIT, |n| n >= held + 20.0),
            "the spool stopped filling"
        );
        broker.signal("CONT");
        truck.expect("uplink_connected");
    }
    let hwm = truck.vm_hwm_kib();
    let (run, left) = stop_and_drain(truck, &mut tally, &spool);
    let a = account(&[run], &left, &tally);
    report(phase, &a);
    figure(phase, "VmHWM (KiB)", hwm);
    figure(
        phase,
        "bound: keep_alive + (s)",
        SILENCE_BOUND.as_secs_f64(),
    );
    if !left.is_empty() || !a.lost_outside.is_empty() {
        panic!(
            "left after a clean stop: {}; lost {}; the broker's log: {}",
            some(&left),
            some(&a.lost_outside),
            broker_log(&broker, thing).display()
        );
    }
    assert_eq!(a.lost_inside, 0, "{a:?}");
    assert!(
        worst <= KEEP_ALIVE + SILENCE_BOUND,
        "a frozen broker took {worst:?} to detect (keep_alive {KEEP_ALIVE:?} + {SILENCE_BOUND:?})"
    );
    assert_paced(phase, &broker, thing, config.bytes_per_second);
}
