//! Data-driven tests of the whole detect stage with the committed model: simulated drives
//! in, alerts out, compared with the expectations in the tables below.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use vigil_agent::detect::alert::{AlertEvent, AlertKind};
use vigil_agent::detect::model::{Model, committed_card_path};
use vigil_agent::reading::Signal;
use vigil_sim::Scenario;

use super::{Judge, dataset};

const MIN: Duration = Duration::from_secs(60);

fn committed() -> Arc<Model> {
    Arc::new(Model::load(&committed_card_path()).expect("the committed model matches its card"))
}

/// Every alert a drive raises: (signal, kind, monotonic time).
fn drive(seed: u64, scenario: Scenario, duration: Duration) -> Vec<(Signal, AlertKind, Duration)> {
    let judge = Judge {
        model: Some(committed()),
        ..Judge::default()
    };
    // Each finding: the expectations name the kind that catches each fault first.
    let mut detector = judge.detector().findings_only();
    let mut events = Vec::new();
    let mut raised = Vec::new();
    dataset::simulate(dataset::truck_params(seed), scenario, duration, |r| {
        detector.observe(r, &mut events);
        for e in events.drain(..) {
            if let AlertEvent::Raised(a) = e {
                raised.push((a.signal, a.kind, a.raised_at.mono));
            }
        }
    })
    .unwrap();
    raised
}

#[test]
fn without_a_model_the_rules_keep_running() {
    let judge = Judge {
        model: None,
        ..Judge::default()
    };
    let mut detector = judge.detector();
    assert!(detector.model_handle().current().is_none());
    let mut events = Vec::new();
    let scenario = Scenario::from_name("dropout", 2 * MIN).unwrap();
    dataset::simulate(dataset::truck_params(3), scenario, 3 * MIN, |r| {
        detector.observe(r, &mut events)
    })
    .unwrap();
    let kinds: BTreeSet<AlertKind> = events.iter().map(|e| e.alert().kind).collect();
    assert_eq!(kinds, BTreeSet::from([AlertKind::Dropout]));
}

/// The vehicles of the fault scenarios here: unseen in training and calibration, and apart
/// from `vigil eval`'s.
const SCENARIO_SEEDS: std::ops::RangeFrom<u64> = 1101..;

/// Each fault, on a vehicle never used in training: the kinds that may catch it first and
/// the longest delay allowed from the fault's start (the drive runs 10 minutes past it).
/// `None` is a known miss: the fault is not caught within an hour on this vehicle. A failed
/// fan on a cool day shows only once the engine works hard; on this vehicle its coolant
/// stays under the 100 degC a healthy real truck may run at (the normal band's rule was at
/// the simulator's own 95.5 before, and caught it after 44 minutes). A miss that starts
/// being caught fails too, so the table is updated with the better figure. The eval table
/// has the rates.
#[rustfmt::skip]
const CAUGHT: &[(&str, &[AlertKind], Option<u64>)] = {
    use AlertKind::*;
    &[
        ("coolant-loss", &[Forecast, Drift, Inconsistent, AboveNormal, RateOfRise, HighLimit], Some(240)),
        ("fan-failure", &[Forecast, Drift, Inconsistent, AboveNormal, RateOfRise, HighLimit], None),
        ("thermostat-stuck", &[Forecast, Drift, Inconsistent, AboveNormal, RateOfRise, HighLimit], Some(180)),
        ("tank-heating", &[Forecast, Drift, RateOfRise], Some(30)),
        ("insulation-loss", &[Forecast, Drift, RateOfRise, HighLimit, HeatLeak], Some(300)),
        ("stuck-sensor", &[StuckSensor, Inconsistent, Forecast, Drift], Some(180)),
        ("dropout", &[Dropout], Some(10)),
        ("spikes", &[Spikes, Outliers, Forecast], Some(120)),
        // The coolant leaves its 100 degC normal band (about 2480 s at 0.3 degC a minute;
        // 1050 s when the band ended at the simulator's 95.5, or by the consistency check
        // before the model learnt the ECU's dither).
        ("drift", &[Inconsistent, AboveNormal, Drift, Forecast, HighLimit], Some(2700)),
        ("not-available", &[SensorFault], Some(10)),
    ]
};

#[test]
fn every_fault_is_caught_by_the_model_or_a_rule_within_its_delay() {
    let mut report = Vec::new();
    for (i, &(name, kinds, max_delay)) in CAUGHT.iter().enumerate() {
        let seed = SCENARIO_SEEDS.start + i as u64;
        let start = 10 * MIN;
        let scenario = Scenario::from_name(name, start).unwrap();
        let horizon = Duration::from_secs(max_delay.unwrap_or(3600));
        let duration = start + horizon + 10 * MIN;
        let fault = scenario.intervals(duration)[0].clone();
        let alerts = drive(seed, scenario, duration);
        let before: Vec<_> = alerts.iter().filter(|(_, _, t)| *t < start).collect();
        assert!(
            before.is_empty(),
            "{name}: false alarms before the fault: {before:?}"
        );
        let first = alerts
            .iter()
            .filter(|(s, _, t)| *s == fault.signal && *t >= start)
            .min_by_key(|(_, _, t)| *t);
        let (Some((_, kind, t)), Some(max_delay)) = (first, max_delay) else {
            let verdict = if first.is_none() && max_delay.is_none() {
                "ok"
            } else {
                "FAIL"
            };
            report.push(format!(
                "{verdict} {name} on seed {seed}: expected {max_delay:?}, first {first:?}"
            ));
            continue;
        };
        let delay = (*t - start).as_secs();
        let ok = kinds.contains(kind) && delay <= max_delay;
        let verdict = if ok { "ok" } else { "FAIL" };
        report.push(format!(
            "{verdict} {name}: {kind} after {delay} s (allowed {max_delay} s by {kinds:?})"
        ));
    }
    let report = report.join("\n");
    assert!(!report.contains("FAIL"), "{report}");
    eprintln!("{report}");
}

#[test]
fn normal_drives_of_unseen_vehicles_raise_nothing() {
    // The budget is 1 false alarm per 100 vehicle-hours: on these hours the expected
    // count is well under one, so any alert fails.
    let mut hours = 0.0;
    for seed in 2001..2005 {
        let alerts = drive(seed, Scenario::normal(), 60 * MIN);
        hours += 1.0;
        assert!(alerts.is_empty(), "seed {seed}: {alerts:?}");
    }
    assert_eq!(hours, 4.0);
}
