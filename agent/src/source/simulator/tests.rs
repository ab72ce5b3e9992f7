//! Tests of the whole truck through the agent's real decoders: determinism, the physics
//! the simulator exists for, each fault, and the shape of what goes on the wire.

use std::sync::Arc;
use std::time::Duration;

use vigil_wire::{Body, FrameDecoder, Message};

use super::*;
use crate::decode::{Decoder, Input, NodeMessage};
use crate::reading::{Quality, Reading};
use crate::signals::{
    AMBIENT_TEMPERATURE, COOLANT_TEMPERATURE, ENGINE_SPEED, FUEL_TEMPERATURE, OIL_TEMPERATURE,
    SPEED, j1939_signal, tank_temperature,
};
use crate::telemetry::Metrics;

const MIN: Duration = Duration::from_secs(60);

/// One decoded reading and the true value of its signal when it was sent.
struct Sample {
    reading: Reading,
    truth: f64,
}

/// Everything a run sent, decoded the way the agent decodes it.
struct Trace {
    samples: Vec<Sample>,
    /// The true state once per simulated second.
    truth: Vec<TruthState>,
    messages: Vec<Message>,
}

impl Trace {
    fn of<'a>(&'a self, signal: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.reading.signal.as_str() == signal)
    }

    fn before<'a>(&'a self, signal: &'a str, t: Duration) -> impl Iterator<Item = &'a Sample> + 'a {
        self.of(signal).filter(move |s| s.reading.at.mono < t)
    }

    fn after<'a>(&'a self, signal: &'a str, t: Duration) -> impl Iterator<Item = &'a Sample> + 'a {
        self.of(signal).filter(move |s| s.reading.at.mono >= t)
    }

    /// The true state at each whole second in `[from, to)`.
    fn truth_between(&self, from: Duration, to: Duration) -> impl Iterator<Item = &TruthState> {
        self.truth
            .iter()
            .filter(move |t| t.elapsed >= from && t.elapsed < to)
    }
}

fn truth_of(t: &TruthState, signal: &str) -> f64 {
    match signal {
        COOLANT_TEMPERATURE => t.coolant_c,
        OIL_TEMPERATURE => t.oil_c,
        FUEL_TEMPERATURE => t.fuel_c,
        AMBIENT_TEMPERATURE => t.ambient_c,
        SPEED => t.speed_kmh,
        ENGINE_SPEED => t.engine_rpm,
        tank => {
            let n = Sensor::from_signal(tank);
            let Some(Sensor::Tank(n)) = n else {
                panic!("unexpected signal {tank}")
            };
            t.tanks_c[usize::from(n - 1)]
        }
    }
}

/// Runs the truck for `duration`, decoding CAN frames and the serial byte stream with
/// the agent's decoders. Every serial frame must decode and no sequence number may be
/// skipped, whatever the scenario.
fn run(params: TruckParams, scenario: Scenario, duration: Duration) -> Trace {
    let mut truck = Truck::new(params, scenario).unwrap();
    let metrics = Arc::new(Metrics::default());
    let mut decoder = Decoder::new(metrics.clone());
    let mut frames = FrameDecoder::new();
    let port: Arc<str> = Arc::from("sim-serial");
    let mut trace = Trace {
        samples: Vec::new(),
        truth: Vec::new(),
        messages: Vec::new(),
    };
    let mut next_second = Duration::ZERO;
    let mut out = Vec::new();
    loop {
        let e = truck.next_emission();
        if e.elapsed >= duration {
            break;
        }
        if e.elapsed >= next_second {
            trace.truth.push(truck.truth().clone());
            next_second += Duration::from_secs(1);
        }
        match e.what {
            Emitted::Can(frame) => decoder.decode(&Input::Can(frame), &mut out),
            Emitted::Serial(bytes) => {
                for byte in bytes {
                    match frames.push(byte) {
                        Some(Ok(message)) => {
                            trace.messages.push(message);
                            let node = NodeMessage {
                                port: port.clone(),
                                message,
                                at: e.at,
                            };
                            decoder.decode(&Input::Node(node), &mut out);
                        }
                        Some(Err(error)) => panic!("serial frame rejected: {error}"),
                        None => {}
                    }
                }
            }
        }
        for reading in out.drain(..) {
            let truth = truth_of(truck.truth(), reading.signal.as_str());
            trace.samples.push(Sample { reading, truth });
        }
    }
    let m = metrics.snapshot();
    assert_eq!(
        m.serial_sequence_gaps_total, 0,
        "the node skipped sequence numbers"
    );
    assert_eq!(
        m.can_frames_unknown_total + m.can_frames_bad_length_total,
        0
    );
    trace
}

fn params(seed: u64) -> TruckParams {
    TruckParams {
        seed,
        ..TruckParams::default()
    }
}

fn scenario(name: &str, at: Duration) -> Scenario {
    Scenario::from_name(name, at).unwrap()
}

/// A run rendered to bytes as a recording would store it.
fn rendered(params: TruckParams, scenario: Scenario, duration: Duration) -> Vec<u8> {
    let mut truck = Truck::new(params, scenario).unwrap();
    let mut bytes = Vec::new();
    loop {
        let e = truck.next_emission();
        if e.elapsed >= duration {
            return bytes;
        }
        match e.what {
            Emitted::Can(f) => bytes.extend(crate::source::candump::format_line(&f).bytes()),
            Emitted::Serial(s) => bytes.extend(s),
        }
        bytes.push(b'\n');
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let run = |seed| rendered(params(seed), scenario("spikes", 2 * MIN), 10 * MIN);
    let first = run(7);
    assert!(first.len() > 500_000, "only {} bytes", first.len());
    assert_eq!(first, run(7));
    assert_ne!(first, run(8));
}

#[test]
fn a_fault_changes_nothing_before_it_starts_and_something_after() {
    let at = 5 * MIN;
    let normal = rendered(params(3), Scenario::normal(), 10 * MIN);
    for name in Scenario::NAMES.iter().filter(|n| **n != "normal") {
        let faulty = rendered(params(3), scenario(name, at), 10 * MIN);
        let stamp = format!(
            "({}.",
            params(3).start_wall_us / 1_000_000 + at.as_secs() as i64
        );
        let split = normal
            .windows(stamp.len())
            .position(|w| w == stamp.as_bytes())
            .expect("the log passes the fault time");
        assert_eq!(normal[..split], faulty[..split], "{name} acted early");
        // A fan that never had to engage changes nothing in a cold engine's first minutes.
        if *name != "fan-failure" {
            assert_ne!(normal[split..], faulty[split..], "{name} changed nothing");
        }
    }
}

#[test]
fn coolant_loss_overheats_a_steady_engine_and_every_et1_frame_decodes_to_the_truth() {
    let fault_at = 30 * MIN;
    for seed in [1, 2, 3] {
        let trace = run(params(seed), scenario("coolant-loss", fault_at), 60 * MIN);
        let mut et1 = 0;
        for signal in [COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE] {
            let resolution = j1939_signal(signal).unwrap().scale;
            for s in trace.of(signal) {
                et1 += 1;
                let value = s.reading.value().expect("ET1 values are good");
                assert!(
                    (value - s.truth).abs() <= resolution / 2.0 + 1e-9,
                    "seed {seed}: {signal} decoded {value}, truth {} at {:?}",
                    s.truth,
                    s.reading.at.mono
                );
            }
        }
        assert_eq!(et1, 3 * 3600, "seed {seed}: one ET1 frame a second");

        let warm = trace
            .truth
            .iter()
            .find(|t| t.coolant_c >= 80.0)
            .expect("never warmed up");
        assert!(
            warm.elapsed < 20 * MIN,
            "seed {seed}: warm only at {:?}",
            warm.elapsed
        );
        let steady: Vec<_> = trace
            .truth_between(warm.elapsed + 3 * MIN, fault_at)
            .collect();
        for t in &steady {
            assert!(
                (80.0..=95.0).contains(&t.coolant_c),
                "seed {seed}: coolant {:.1} at {:?} before the fault",
                t.coolant_c,
                t.elapsed
            );
        }
        let loaded = steady.iter().filter(|t| t.load > 0.5).count();
        assert!(
            loaded > 60,
            "seed {seed}: only {loaded} s under load before the fault"
        );

        let hot = trace
            .truth_between(fault_at, 60 * MIN)
            .find(|t| t.coolant_c > 105.0);
        let hot = hot.unwrap_or_else(|| panic!("seed {seed}: never passed 105 degC"));
        assert!(
            hot.elapsed < fault_at + 10 * MIN,
            "seed {seed}: 105 degC only at {:?}",
            hot.elapsed
        );
        let seen = trace
            .after(COOLANT_TEMPERATURE, fault_at)
            .filter_map(|s| s.reading.value());
        assert!(
            seen.fold(0.0, f64::max) > 105.0,
            "seed {seed}: the bus never showed it"
        );
    }
}

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
fn the_serial_stream_is_what_the_node_sends() {
    let compartments = 4;
    let p = TruckParams {
        compartments,
        ..params(8)
    };
    let trace = run(p, Scenario::normal(), 30 * Duration::from_secs(1));
    let (mut tanks, mut beats) = (vec![0; compartments as usize], 0);
    for (i, m) in trace.messages.iter().enumerate() {
        assert_eq!(m.seq, i as u16, "sequence numbers count every message");
        match m.body {
            Body::TankTemperature { channel, fault, .. } => {
                assert_eq!(fault, 0);
                tanks[usize::from(channel - 1)] += 1;
            }
            Body::Heartbeat { channels, firmware } => {
                assert_eq!((channels, firmware), (compartments, emit::NODE_FIRMWARE));
                beats += 1;
            }
        }
    }
    assert_eq!(tanks, vec![30; compartments as usize]);
    assert_eq!(beats, 3);
    // Node uptime runs with simulated time from a boot a little before the start.
    let ms: Vec<u32> = trace.messages.iter().map(|m| m.node_ms).collect();
    assert!(ms.windows(2).all(|w| w[0] <= w[1]));
    assert!(ms[ms.len() - 1] - ms[0] > 28_000 && ms[ms.len() - 1] - ms[0] < 30_000);
    for s in trace.of(tank_temperature(2).as_str()) {
        assert!((s.reading.value().unwrap() - s.truth).abs() < 0.1);
    }
}

#[test]
fn can_traffic_keeps_the_j1939_rates_layouts_and_clock() {
    let p = params(9);
    let start = p.start_wall_us;
    let mut truck = Truck::new(p, Scenario::normal()).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    let mut last = Duration::ZERO;
    loop {
        let e = truck.next_emission();
        if e.elapsed >= MIN {
            break;
        }
        assert!(e.elapsed >= last, "out of order at {:?}", e.elapsed);
        last = e.elapsed;
        assert_eq!(e.at.wall_us, start + e.elapsed.as_micros() as i64);
        assert_eq!(e.at.mono, e.elapsed);
        let Emitted::Can(f) = e.what else { continue };
        assert_eq!((&*f.bus, f.at, f.extended, f.len), ("sim0", e.at, true, 8));
        *counts.entry(f.id).or_insert(0) += 1;
        // Bytes no signal of the table uses stay 0xFF.
        let used: &[usize] = match f.id {
            emit::EEC1_ID => &[3, 4],
            emit::CCVS1_ID => &[1, 2],
            emit::ET1_ID => &[0, 1, 2, 3],
            emit::AMB_ID => &[3, 4],
            other => panic!("unexpected id {other:08X}"),
        };
        for (i, byte) in f.data.iter().enumerate() {
            assert!(
                used.contains(&i) || *byte == 0xFF,
                "{:08X} byte {i} is {byte:02X}",
                f.id
            );
        }
    }
    let expect = [
        (emit::EEC1_ID, 1200),
        (emit::ET1_ID, 60),
        (emit::CCVS1_ID, 600),
        (emit::AMB_ID, 60),
    ];
    assert_eq!(counts, expect.into_iter().collect());
}

#[test]
fn a_fault_on_a_compartment_the_truck_lacks_is_refused() {
    let s = scenario("tank-heating", MIN)
        .targeting(Sensor::Tank(4))
        .unwrap();
    let err = Truck::new(params(1), s).unwrap_err();
    assert!(err.to_string().contains("compartment 4"), "{err}");
    let s = scenario("tank-heating", MIN)
        .targeting(Sensor::Tank(3))
        .unwrap();
    assert!(Truck::new(params(1), s).is_ok());
}
