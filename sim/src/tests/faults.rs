//! One test per fault kind: each changes what it should, from its start on, and nothing
//! else. The traces come from the parent module's `run`, through the agent's decoders.

use super::*;

/// A hot afternoon: the fan has work to do on every long climb.
fn hot_afternoon(seed: u64) -> TruckParams {
    TruckParams {
        start_wall_us: TruckParams::default().start_wall_us + 6 * 3_600_000_000,
        ambient_mean_c: 26.0,
        ..params(seed)
    }
}

fn peak(states: impl Iterator<Item = f64>) -> f64 {
    states.fold(f64::MIN, f64::max)
}

#[test]
fn thermostat_stuck_closed_overheats_within_minutes() {
    let at = 25 * MIN;
    let trace = run(params(2), scenario("thermostat-stuck", at), 45 * MIN);
    let before = peak(
        trace
            .truth_between(at - 5 * MIN, at)
            .map(|t| t.thermostat_open),
    );
    assert!(
        before > 0.1,
        "the thermostat was not regulating before: {before:.2}"
    );
    let closed = peak(
        trace
            .truth_between(at + 2 * MIN, 45 * MIN)
            .map(|t| t.thermostat_open),
    );
    assert!(closed < 0.01, "still open {closed:.3} after the fault");
    let hot = trace
        .truth_between(at, 45 * MIN)
        .find(|t| t.coolant_c > 105.0);
    assert!(
        hot.is_some_and(|t| t.elapsed < at + 10 * MIN),
        "no overheating within 10 min"
    );
}

#[test]
fn coolant_loss_drains_the_system_and_a_repair_refills_it() {
    let at = 20 * MIN;
    let faulty = scenario("coolant-loss", at).lasting(5 * MIN);
    let trace = run(params(4), faulty, 60 * MIN);
    let level = |t: Duration| {
        trace
            .truth
            .iter()
            .find(|s| s.elapsed >= t)
            .unwrap()
            .coolant_level
    };
    assert_eq!(level(at - MIN), 1.0);
    assert!(
        level(at + 4 * MIN) < 0.3,
        "level {:.2}",
        level(at + 4 * MIN)
    );
    assert_eq!(level(at + 6 * MIN), 1.0);
    // Topped up, the engine is back at its setpoint a while later.
    let late = peak(trace.truth_between(50 * MIN, 60 * MIN).map(|t| t.coolant_c));
    assert!(late < 96.0, "still {late:.1} degC long after the repair");
}

#[test]
fn fan_failure_overheats_on_a_hot_afternoon_where_the_fan_was_needed() {
    let (at, end) = (20 * MIN, 90 * MIN);
    for seed in [1, 6] {
        let normal = run(hot_afternoon(seed), Scenario::normal(), end);
        let faulty = run(hot_afternoon(seed), scenario("fan-failure", at), end);
        let fan_on = normal
            .truth_between(at, end)
            .filter(|t| t.fan_engaged > 0.5)
            .count();
        assert!(
            fan_on > 60,
            "seed {seed}: the healthy fan ran only {fan_on} s"
        );
        let engaged = peak(faulty.truth_between(at + MIN, end).map(|t| t.fan_engaged));
        assert!(
            engaged < 0.01,
            "seed {seed}: the failed fan engaged {engaged:.2}"
        );
        let healthy = peak(normal.truth_between(at, end).map(|t| t.coolant_c));
        let broken = peak(faulty.truth_between(at, end).map(|t| t.coolant_c));
        assert!(healthy <= 95.0, "seed {seed}: healthy peak {healthy:.1}");
        assert!(
            broken > healthy + 3.0,
            "seed {seed}: {broken:.1} vs healthy {healthy:.1}"
        );
    }
}

#[test]
fn tank_heating_raises_one_compartment_several_degrees_a_minute() {
    let at = 10 * MIN;
    let trace = run(params(5), scenario("tank-heating", at), 20 * MIN);
    let rise = |n: u8, from: Duration, to: Duration| {
        let name = tank_temperature(n);
        let value = |t: Duration| {
            let s = trace.after(name.as_str(), t).next().unwrap();
            s.reading.value().unwrap()
        };
        value(to) - value(from)
    };
    let per_min = rise(1, at, at + 5 * MIN) / 5.0;
    assert!(
        (2.0..6.0).contains(&per_min),
        "compartment 1 rose {per_min:.2} degC/min"
    );
    assert!(
        rise(1, at - 5 * MIN, at).abs() < 0.3,
        "compartment 1 moved before the fault"
    );
    for n in [2, 3] {
        let r = rise(n, at, at + 5 * MIN);
        assert!(r.abs() < 0.3, "compartment {n} rose {r:.2} degC");
    }
}

#[test]
fn insulation_loss_lets_a_refrigerated_compartment_warm_toward_the_air() {
    let at = 10 * MIN;
    let fridge = TruckParams {
        refrigeration_setpoint_c: Some(4.0),
        ..hot_afternoon(6)
    };
    let trace = run(fridge, scenario("insulation-loss", at), 40 * MIN);
    let change = |n: u8| {
        let name = tank_temperature(n);
        let first = trace
            .after(name.as_str(), at)
            .next()
            .unwrap()
            .reading
            .value()
            .unwrap();
        let last = trace
            .of(name.as_str())
            .last()
            .unwrap()
            .reading
            .value()
            .unwrap();
        last - first
    };
    let (lost, held) = (change(1), change(2));
    assert!(
        lost > 3.0,
        "compartment 1 warmed only {lost:.2} degC in 30 min"
    );
    assert!(held.abs() < 0.3, "compartment 2 moved {held:.2} degC");
}

#[test]
fn a_stuck_sensor_repeats_its_last_value_while_the_engine_moves_on() {
    let at = 20 * MIN;
    let trace = run(params(1), scenario("stuck-sensor", at), 40 * MIN);
    let values: Vec<f64> = trace
        .after(COOLANT_TEMPERATURE, at)
        .filter_map(|s| s.reading.value())
        .collect();
    assert_eq!(values.len(), 20 * 60);
    assert!(
        values.iter().all(|v| *v == values[0]),
        "the stuck value moved"
    );
    let truths: Vec<f64> = trace
        .after(COOLANT_TEMPERATURE, at)
        .map(|s| s.truth)
        .collect();
    let spread = peak(truths.iter().copied()) + peak(truths.iter().map(|t| -t));
    assert!(spread > 2.0, "the true coolant only moved {spread:.2} degC");
    for s in trace.before(COOLANT_TEMPERATURE, at) {
        assert!((s.reading.value().unwrap() - s.truth).abs() <= 0.5 + 1e-9);
    }
}

#[test]
fn dropout_stops_the_messages_that_carry_the_signal_and_only_those() {
    let at = 5 * MIN;
    let trace = run(params(2), scenario("dropout", at), 10 * MIN);
    for signal in [COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE] {
        assert_eq!(trace.before(signal, at).count(), 5 * 60, "{signal}");
        assert_eq!(trace.after(signal, at).count(), 0, "{signal} still arrives");
    }
    assert_eq!(trace.after(ENGINE_SPEED, at).count(), 5 * 60 * 20);
    assert_eq!(trace.after(AMBIENT_TEMPERATURE, at).count(), 5 * 60);

    // A tank channel drops out of the node's stream without a gap in its sequence
    // numbers (the run helper checks those).
    let tank2 = scenario("dropout", at).targeting(Sensor::Tank(2)).unwrap();
    let trace = run(params(2), tank2, 10 * MIN);
    assert_eq!(trace.after(tank_temperature(2).as_str(), at).count(), 0);
    assert_eq!(
        trace.after(tank_temperature(3).as_str(), at).count(),
        5 * 60
    );
    assert_eq!(trace.after(COOLANT_TEMPERATURE, at).count(), 5 * 60);
}

#[test]
fn spikes_are_single_large_samples_after_the_fault() {
    let at = 10 * MIN;
    let trace = run(params(3), scenario("spikes", at), 30 * MIN);
    let off = |s: &Sample| (s.reading.value().unwrap() - s.truth).abs();
    assert!(
        trace
            .before(COOLANT_TEMPERATURE, at)
            .all(|s| off(s) <= 0.5 + 1e-9)
    );
    let after: Vec<&Sample> = trace.after(COOLANT_TEMPERATURE, at).collect();
    let spikes: Vec<usize> = (0..after.len()).filter(|&i| off(after[i]) > 10.0).collect();
    assert!(spikes.len() >= 10, "only {} spikes in 20 min", spikes.len());
    assert!(
        spikes.len() < after.len() / 10,
        "{} spikes are not occasional",
        spikes.len()
    );
    // A spike is one sample: every other sample is clean, nothing bleeds into neighbours.
    assert!(after.iter().all(|s| off(s) <= 0.5 + 1e-9 || off(s) > 10.0));
    let isolated = spikes
        .iter()
        .filter(|&&i| !spikes.contains(&(i + 1)))
        .count();
    assert!(isolated * 10 >= spikes.len() * 9, "spikes come in runs");
}

#[test]
fn drift_grows_an_offset_slowly() {
    let at = 10 * MIN;
    let trace = run(params(4), scenario("drift", at), 30 * MIN);
    let offset = |s: &Sample| s.reading.value().unwrap() - s.truth;
    assert!(
        trace
            .before(COOLANT_TEMPERATURE, at)
            .all(|s| offset(s).abs() <= 0.5 + 1e-9)
    );
    let after: Vec<f64> = trace.after(COOLANT_TEMPERATURE, at).map(offset).collect();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (early, late) = (mean(&after[..120]), mean(&after[after.len() - 120..]));
    assert!(early.abs() < 1.0, "offset {early:.2} at once");
    // 0.3 degC a minute for twenty minutes.
    assert!((late - 5.7).abs() < 1.0, "offset {late:.2} after 20 min");
}

#[test]
fn not_available_flags_the_value_from_the_fault_on_and_leaves_its_neighbours() {
    let at = 5 * MIN;
    let trace = run(params(5), scenario("not-available", at), 10 * MIN);
    for s in trace.of(COOLANT_TEMPERATURE) {
        let expect = if s.reading.at.mono < at {
            Quality::Good
        } else {
            Quality::NotAvailable
        };
        assert_eq!(s.reading.quality, expect, "at {:?}", s.reading.at.mono);
    }
    assert_eq!(trace.after(COOLANT_TEMPERATURE, at).count(), 5 * 60);
    for signal in [FUEL_TEMPERATURE, OIL_TEMPERATURE] {
        assert!(
            trace.of(signal).all(|s| s.reading.quality == Quality::Good),
            "{signal}"
        );
    }
    // The tank node has no "not available": it reports the MAX31865's open-RTD fault.
    let tank = scenario("not-available", at)
        .targeting(Sensor::Tank(1))
        .unwrap();
    let trace = run(params(5), tank, 10 * MIN);
    let name = tank_temperature(1);
    assert!(
        trace
            .before(name.as_str(), at)
            .all(|s| s.reading.quality == Quality::Good)
    );
    assert!(
        trace
            .after(name.as_str(), at)
            .all(|s| s.reading.quality == Quality::Error)
    );
    assert_eq!(trace.after(name.as_str(), at).count(), 5 * 60);
}

#[test]
fn an_overheated_engine_is_shut_down_and_restarted_once_repaired_and_cool() {
    let at = 20 * MIN;
    let repaired = at + 10 * MIN;
    let s = scenario("thermostat-stuck", at).lasting(10 * MIN);
    let trace = run(params(1), s, 120 * MIN);
    let off = trace
        .truth
        .iter()
        .find(|t| !t.engine_running)
        .expect("never shut down");
    assert!(
        off.elapsed > at && off.elapsed < repaired,
        "shut down at {:?}",
        off.elapsed
    );
    // Sampled once a second, the peak can fall a hair short of the trip point.
    let hottest = peak(trace.truth.iter().map(|t| t.coolant_c));
    assert!(
        (physics::SHUTDOWN_C - 0.5..physics::SHUTDOWN_C + 3.0).contains(&hottest),
        "peak {hottest:.1}"
    );
    let back = trace
        .truth
        .iter()
        .find(|t| t.elapsed > off.elapsed && t.engine_running);
    let back = back.expect("never restarted");
    assert!(
        back.elapsed > repaired,
        "restarted at {:?} before the repair",
        back.elapsed
    );
    assert!(
        back.coolant_c < 95.0,
        "restarted at {:.1} degC",
        back.coolant_c
    );
    // While it was off the bus said so, and the truck stood still. The truth is sampled
    // once a second, so the restart lies somewhere in the second before `back`.
    let stopped = |s: &&Sample| {
        s.reading.at.mono > off.elapsed + MIN
            && s.reading.at.mono < back.elapsed - Duration::from_secs(1)
    };
    assert!(
        trace
            .of(ENGINE_SPEED)
            .filter(stopped)
            .all(|s| s.reading.value() == Some(0.0))
    );
    assert!(
        trace
            .of(SPEED)
            .filter(stopped)
            .all(|s| s.reading.value() == Some(0.0))
    );
    assert!(trace.of(ENGINE_SPEED).filter(stopped).count() > 60 * 20);
    let driving = trace
        .truth_between(back.elapsed, 120 * MIN)
        .any(|t| t.speed_kmh > 30.0);
    assert!(driving, "the truck never drove again");
}

/// Every scenario for three hours, its fault from the first minute, on a summer morning and
/// a hot afternoon: no compartment gets hotter than its cargo's final boiling point (a fire
/// boils it off, then holds it there), and the engine stays under its sensors' 150 degC.
#[test]
fn no_scenario_heats_anything_past_its_physical_bound() {
    use crate::cargo::FINAL_BOILING_C;
    use crate::physics::{Physics, STEP};
    for name in Scenario::NAMES {
        for p in [params(1), hot_afternoon(2)] {
            let scenario = scenario(name, MIN);
            let mut physics = Physics::new(&p);
            let (mut t, mut tank, mut engine) = (STEP, f64::MIN, f64::MIN);
            while t <= 180 * MIN {
                physics.step(t, &scenario);
                let truth = physics.truth();
                tank = truth.tanks_c.iter().copied().fold(tank, f64::max);
                engine = engine
                    .max(truth.coolant_c)
                    .max(truth.oil_c)
                    .max(truth.fuel_c);
                t += STEP;
            }
            let seed = p.seed;
            assert!(
                tank <= FINAL_BOILING_C,
                "{name} on seed {seed}: a tank at {tank:.1} degC"
            );
            assert!(
                engine < 150.0,
                "{name} on seed {seed}: the engine at {engine:.1} degC"
            );
            if name == "tank-heating" {
                assert_eq!(tank, FINAL_BOILING_C, "seed {seed}: the fire boiled it dry");
            }
        }
    }
}
