//! Tests of the whole truck through the agent's real decoders: determinism, the physics
//! the simulator exists for, each fault, and the shape of what goes on the wire.

use std::sync::Arc;
use std::time::Duration;

use vigil_wire::{Body, FrameDecoder, Message};

use super::*;
use vigil_agent::decode::Decoder;
use vigil_agent::frame::{Input, NodeMessage};
use vigil_agent::reading::{Quality, Reading};
use vigil_agent::signals::{
    AMBIENT_TEMPERATURE, COOLANT_TEMPERATURE, ENGINE_SPEED, FUEL_TEMPERATURE, LATITUDE, LONGITUDE,
    OIL_TEMPERATURE, SPEED, j1939_signal, tank_temperature,
};
use vigil_agent::telemetry::Metrics;

const MIN: Duration = Duration::from_secs(60);

mod faults;

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
        LATITUDE => t.latitude,
        LONGITUDE => t.longitude,
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

/// A truck whose ECU sends its temperatures without dither, so a decoded value is the
/// truth to the bus's resolution (the dither has its own test).
fn params(seed: u64) -> TruckParams {
    TruckParams {
        seed,
        ecu_noise: EcuNoise {
            coolant_c: 0.0,
            fuel_c: 0.0,
            oil_c: 0.0,
        },
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
            Emitted::Can(f) => bytes.extend(vigil_agent::frame::candump::format_line(&f).bytes()),
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

#[test]
fn the_ecu_dithers_its_temperatures_as_configured_and_the_truth_does_not() {
    let noise = EcuNoise::default();
    let noisy = TruckParams {
        seed: 7,
        ecu_noise: noise,
        ..TruckParams::default()
    };
    let trace = run(noisy, Scenario::normal(), 20 * MIN);
    for (signal, sigma) in [
        (COOLANT_TEMPERATURE, noise.coolant_c),
        (FUEL_TEMPERATURE, noise.fuel_c),
        (OIL_TEMPERATURE, noise.oil_c),
    ] {
        let resolution = j1939_signal(signal).unwrap().scale;
        let errors: Vec<f64> = trace
            .of(signal)
            .map(|s| s.reading.value().unwrap() - s.truth)
            .collect();
        let n = errors.len() as f64;
        let mean = errors.iter().sum::<f64>() / n;
        let sd = (errors.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / n).sqrt();
        // The dither and the rounding to the bus's resolution, independent: their spreads
        // add in quadrature (a uniform rounding error has resolution / sqrt(12)).
        let expected = (sigma * sigma + resolution * resolution / 12.0).sqrt();
        assert!(mean.abs() < 0.05, "{signal}: mean error {mean}");
        assert!(
            (sd / expected - 1.0).abs() < 0.1,
            "{signal}: spread {sd}, expected {expected}"
        );
    }
    // The physics is the noiseless truck's: the dither is only on the wire.
    let quiet = run(params(7), Scenario::normal(), 20 * MIN);
    assert_eq!(trace.truth, quiet.truth);
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
            emit::VP_ID => &[0, 1, 2, 3, 4, 5, 6, 7],
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
        (emit::VP_ID, 60),
    ];
    assert_eq!(counts, expect.into_iter().collect());
}

/// The position goes out once a second, decodes to the truth to J1939's 1e-7 degree, and
/// moves as far as the truck drives: not at all while it stands, about 25 m a second at
/// 90 km/h.
#[test]
fn the_truck_drives_a_route_and_says_where_it_is_once_a_second() {
    let trace = run(params(3), Scenario::normal(), 20 * MIN);
    let lat: Vec<&Sample> = trace.of(LATITUDE).collect();
    let lon: Vec<&Sample> = trace.of(LONGITUDE).collect();
    assert_eq!((lat.len(), lon.len()), (1200, 1200));
    for s in lat.iter().chain(&lon) {
        let error = (s.reading.value().unwrap() - s.truth).abs();
        assert!(error <= 0.51e-7, "{} off by {error}", s.reading.signal);
    }
    let metres = |a: usize, b: usize| {
        let north = (lat[b].truth - lat[a].truth) * 111_320.0;
        let east = (lon[b].truth - lon[a].truth) * 111_320.0 * lat[a].truth.to_radians().cos();
        north.hypot(east)
    };
    let odometer = |i: usize| {
        let t = lat[i].reading.at.mono;
        trace
            .truth
            .iter()
            .rev()
            .find(|s| s.elapsed <= t)
            .unwrap()
            .odometer_m
    };
    let (mut moved, mut stood) = (0.0, 0);
    for i in 1..lat.len() {
        let step = metres(i - 1, i);
        // Between two broadcasts the truck covers at most what its odometer says (less
        // only across a turn); the truth is sampled at whole seconds, so allow 2 s at 90.
        assert!(
            step <= odometer(i) - odometer(i - 1) + 50.0,
            "step {i}: {step} m"
        );
        moved += step;
        if step == 0.0 {
            stood += 1;
        }
    }
    assert!(
        stood > 60,
        "the warm-up stop did not hold the position ({stood} s)"
    );
    let driven = trace.truth.last().unwrap().odometer_m;
    assert!(driven > 5_000.0, "{driven} m in 20 minutes");
    assert!(
        moved > 0.9 * driven && moved < 1.01 * driven,
        "{moved} of {driven} m"
    );
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

#[test]
fn bus_quirks_do_what_real_buses_do_and_nothing_else() {
    let quirky = TruckParams {
        quirks: BusQuirks {
            unsent: vec![Sensor::Oil, Sensor::Fuel],
            coolant_step_chance: 0.05,
            second_sender: Some((0x03, 0.4)),
            car_engine: Some(2.2),
        },
        ..params(7)
    };
    let plain = run(params(7), Scenario::normal(), 10 * MIN);
    let trace = run(quirky, Scenario::normal(), 10 * MIN);
    // Oil and fuel: "not available" in every frame, from the first.
    for signal in [OIL_TEMPERATURE, FUEL_TEMPERATURE] {
        assert!(trace.of(signal).count() > 500);
        assert!(
            trace
                .of(signal)
                .all(|s| s.reading.quality == Quality::NotAvailable)
        );
    }
    // Each engine ET1 is followed by the second sender's, a fraction of a degree away.
    let from = |sa: u8| {
        trace
            .of(COOLANT_TEMPERATURE)
            .filter(move |s| s.reading.origin.to_string() == format!("sim0/sa{sa:02X}"))
    };
    let (engine, second) = (from(0x00).count(), from(0x03).count());
    assert!(
        engine > 500 && second.abs_diff(engine) <= 1,
        "{engine} {second}"
    );
    for s in from(0x03) {
        let v = s.reading.value().unwrap();
        assert!((v - (s.truth + 0.4)).abs() <= 1.0, "{v} vs {}", s.truth);
    }
    // The engine speed as a passenger car's: 800 at idle, 2.2 times the truck's above it.
    let rpm = |t: &Trace| {
        t.of(ENGINE_SPEED)
            .map(|s| s.reading.value().unwrap())
            .fold(0.0f64, f64::max)
    };
    let car = 800.0 + (rpm(&plain) - 600.0) * 2.2;
    assert!((rpm(&trace) - car).abs() < 1.0, "{} vs {car}", rpm(&trace));
    // Two-degree ticks: an engine coolant sample more than half a degree from the truth
    // (rounding alone never is, with no dither in these trucks), about one in twenty.
    let far = |t: &Trace| {
        t.of(COOLANT_TEMPERATURE)
            .filter(|s| s.reading.origin.to_string() == "sim0/sa00")
            .filter(|s| (s.reading.value().unwrap() - s.truth).abs() > 0.5)
            .count()
    };
    let n = from(0x00).count();
    assert_eq!(far(&plain), 0);
    assert!(
        (n / 40..n / 10).contains(&far(&trace)),
        "{} of {n}",
        far(&trace)
    );
    // The physics is the same truck's.
    assert_eq!(plain.truth.len(), trace.truth.len());
    assert!(
        plain
            .truth
            .iter()
            .zip(&trace.truth)
            .all(|(a, b)| a.coolant_c == b.coolant_c)
    );
}
