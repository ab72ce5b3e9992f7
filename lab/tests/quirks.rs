//! The simulated truck with what real buses do (`vigil_sim::BusQuirks`): no oil or fuel
//! temperature, two-degree coolant ticks, a second controller relaying the coolant, a
//! passenger car's engine speeds. A normal hour on such a truck, judged by the default
//! detect stage (the built-in model and the rules), must raise nothing for the driver, and
//! a coolant that sticks must still be caught. Cold mornings are included: a cold start
//! with no oil signal is what made the model's consistency check misfire on real drives.

use std::sync::Arc;
use std::time::Duration;

use vigil_agent::detect::Model;
use vigil_agent::detect::alert::{AlertEvent, AlertKind};
use vigil_lab::eval::{QUIRKS, quirks};
use vigil_lab::{Judge, dataset};
use vigil_sim::{Scenario, TruckParams};

const HOUR: Duration = Duration::from_secs(3600);

/// Every quirk, on vehicle `seed` with a day `ambient` degC on average.
fn quirky(seed: u64, ambient: f64) -> TruckParams {
    let all: Vec<String> = QUIRKS.iter().map(|q| q.to_string()).collect();
    TruckParams {
        ambient_mean_c: ambient,
        quirks: quirks(&all, seed).unwrap(),
        ..dataset::truck_params(seed)
    }
}

/// What the default stage tells the driver on a drive: (kind, seconds in) of each
/// incident raised.
fn incidents(params: TruckParams, scenario: Scenario, duration: Duration) -> Vec<(AlertKind, u64)> {
    let judge = Judge {
        model: Some(Arc::new(Model::builtin().unwrap())),
        ..Judge::default()
    };
    let mut detector = judge.detector();
    let (mut events, mut raised) = (Vec::new(), Vec::new());
    dataset::simulate(params, scenario, duration, |r| {
        detector.observe(r, &mut events);
        for e in events.drain(..) {
            if let AlertEvent::Raised(a) = e {
                raised.push((a.kind, a.raised_at.mono.as_secs()));
            }
        }
    })
    .unwrap();
    raised
}

#[test]
fn a_normal_hour_on_a_quirky_truck_raises_nothing_from_a_cold_start_or_a_warm_one() {
    // Vehicles apart from training (1..25), calibration (101..1101), evaluation
    // (3001..3301) and the fault drives (5001..).
    for (seed, ambient) in [(9001, -5.0), (9002, 2.0), (9003, 12.0), (9004, 30.0)] {
        let raised = incidents(quirky(seed, ambient), Scenario::normal(), HOUR);
        assert_eq!(raised, [], "seed {seed} at {ambient} degC");
    }
}

#[test]
fn a_stuck_coolant_with_no_oil_to_compare_is_still_caught() {
    let start = Duration::from_secs(900);
    let scenario = Scenario::from_name("stuck-sensor", start).unwrap();
    let raised = incidents(quirky(9011, 15.0), scenario, HOUR);
    let stuck: Vec<u64> = raised
        .iter()
        .filter(|(k, _)| *k == AlertKind::StuckSensor)
        .map(|(_, at)| *at)
        .collect();
    assert!(
        stuck.first().is_some_and(|&at| at > start.as_secs()),
        "{raised:?}"
    );
}
