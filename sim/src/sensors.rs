//! Sensors: which signals the truck measures, and what a faulty sensor does to a value
//! on its way to the wire (stuck, dropout, spikes, drift, not available).
//!
//! Owns the per-sensor fault state (frozen values, the spike draws). It must never touch
//! the physics: a sensor fault changes what is reported, never what is true.

use std::time::Duration;

use super::faults::{FaultKind, Scenario};
use super::rng::{Rng, Stream};
use vigil_agent::reading::Signal;
use vigil_agent::signals;

/// A sensor the truck reports, each with one signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensor {
    Coolant,
    Oil,
    Fuel,
    Ambient,
    Speed,
    EngineSpeed,
    /// A cargo-tank compartment, counted from 1.
    Tank(u8),
}

impl Sensor {
    /// The VSS signal this sensor feeds.
    pub fn signal(&self) -> Signal {
        match self {
            Sensor::Coolant => Signal::new(signals::COOLANT_TEMPERATURE),
            Sensor::Oil => Signal::new(signals::OIL_TEMPERATURE),
            Sensor::Fuel => Signal::new(signals::FUEL_TEMPERATURE),
            Sensor::Ambient => Signal::new(signals::AMBIENT_TEMPERATURE),
            Sensor::Speed => Signal::new(signals::SPEED),
            Sensor::EngineSpeed => Signal::new(signals::ENGINE_SPEED),
            Sensor::Tank(n) => signals::tank_temperature(*n),
        }
    }

    /// The sensor feeding a VSS signal, if the simulated truck has one.
    pub fn from_signal(name: &str) -> Option<Sensor> {
        let fixed = [
            Sensor::Coolant,
            Sensor::Oil,
            Sensor::Fuel,
            Sensor::Ambient,
            Sensor::Speed,
            Sensor::EngineSpeed,
        ];
        if let Some(s) = fixed.into_iter().find(|s| s.signal().as_str() == name) {
            return Some(s);
        }
        let n = name
            .strip_prefix("Vehicle.Cargo.Tank.Compartment")?
            .strip_suffix(".Temperature")?;
        n.parse().ok().filter(|&n| n > 0).map(Sensor::Tank)
    }

    /// A typical size of a spike on this sensor (a loose connector, EMI from the starter).
    fn spike_size(&self) -> f64 {
        match self {
            Sensor::Speed => 60.0,
            Sensor::EngineSpeed => 1500.0,
            _ => 40.0,
        }
    }

    /// How fast a drifting sensor's offset grows, per minute. A few degrees in ten
    /// minutes is slow enough to pass a range check and fast enough to matter.
    fn drift_per_minute(&self) -> f64 {
        match self {
            Sensor::Speed => 0.5,
            Sensor::EngineSpeed => 10.0,
            _ => 0.3,
        }
    }
}

/// What a faulty (or healthy) sensor puts on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Measured {
    Value(f64),
    /// The sender flags the value as missing.
    NotAvailable,
    /// Nothing is sent at all.
    Silent,
}

/// The state sensor faults keep between samples.
#[derive(Clone, Debug)]
pub(crate) struct SensorFaults {
    /// Values frozen by a stuck fault, per sensor.
    frozen: Vec<(Sensor, f64)>,
    rng: Rng,
}

impl SensorFaults {
    pub(crate) fn new(seed: u64) -> Self {
        SensorFaults {
            frozen: Vec::new(),
            rng: Rng::new(seed, Stream::Faults),
        }
    }

    /// Passes one sample of `sensor` (its value as a healthy sensor would send it)
    /// through the faults acting at `t`.
    pub(crate) fn measure(
        &mut self,
        scenario: &Scenario,
        sensor: Sensor,
        t: Duration,
        healthy: f64,
    ) -> Measured {
        let mut value = healthy;
        let mut stuck = false;
        let mut flagged = None;
        for fault in scenario.faults().iter().filter(|f| f.active_at(t)) {
            match fault.kind {
                FaultKind::Drift(s) if s == sensor => {
                    let minutes = (t - fault.start).as_secs_f64() / 60.0;
                    value += sensor.drift_per_minute() * minutes;
                }
                // About one sample in forty; the draw happens only while the fault is
                // on, so the numbers other sensors see do not move.
                FaultKind::Spikes(s) if s == sensor && self.rng.chance(0.025) => {
                    let sign = if self.rng.chance(0.5) { 1.0 } else { -1.0 };
                    value += sign * sensor.spike_size() * self.rng.range(0.6, 1.0);
                }
                FaultKind::StuckSensor(s) if s == sensor => stuck = true,
                FaultKind::Dropout(s) if s == sensor => flagged = Some(Measured::Silent),
                FaultKind::NotAvailable(s) if s == sensor && flagged.is_none() => {
                    flagged = Some(Measured::NotAvailable)
                }
                _ => {}
            }
        }
        let slot = self.frozen.iter().position(|(s, _)| *s == sensor);
        if stuck {
            // The first sample after the fault freezes: the sensor's last value.
            match slot {
                Some(i) => value = self.frozen[i].1,
                None => self.frozen.push((sensor, value)),
            }
        } else if let Some(i) = slot {
            self.frozen.swap_remove(i);
        }
        flagged.unwrap_or(Measured::Value(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn sensors_round_trip_through_their_signal_names() {
        let all = [
            Sensor::Coolant,
            Sensor::Oil,
            Sensor::Fuel,
            Sensor::Ambient,
            Sensor::Speed,
            Sensor::EngineSpeed,
            Sensor::Tank(3),
        ];
        for s in all {
            assert_eq!(Sensor::from_signal(s.signal().as_str()), Some(s));
        }
        assert_eq!(
            Sensor::from_signal("Vehicle.Cargo.Tank.Compartment0.Temperature"),
            None
        );
        assert_eq!(Sensor::from_signal("Vehicle.Nothing"), None);
    }

    #[test]
    fn sensor_faults_only_touch_their_own_sensor_and_time() {
        // Each case checks the (measured, healthy) samples after the fault.
        type Check = fn(&[(Measured, f64)]);
        let cases: [(&str, Check); 5] = [
            ("stuck-sensor", |after| {
                assert!(after.iter().all(|(m, _)| *m == after[0].0));
                assert_ne!(after[0].1, after[after.len() - 1].1, "the truth moved");
            }),
            ("dropout", |after| {
                assert!(after.iter().all(|(m, _)| *m == Measured::Silent))
            }),
            ("not-available", |after| {
                assert!(after.iter().all(|(m, _)| *m == Measured::NotAvailable))
            }),
            ("drift", |after| {
                let offset = |(m, healthy): (Measured, f64)| match m {
                    Measured::Value(v) => v - healthy,
                    other => panic!("{other:?}"),
                };
                let (first, last) = (offset(after[0]), offset(after[after.len() - 1]));
                // 0.3 degC a minute over ten minutes.
                assert!(
                    first.abs() < 0.01 && (last - 3.0).abs() < 0.1,
                    "{first} .. {last}"
                );
            }),
            ("spikes", |after| {
                let spikes = after
                    .iter()
                    .filter(|(m, h)| matches!(m, Measured::Value(v) if (v - h).abs() > 20.0))
                    .count();
                let clean = after
                    .iter()
                    .filter(|(m, h)| *m == Measured::Value(*h))
                    .count();
                assert!(
                    spikes > 5 && spikes + clean == after.len(),
                    "{spikes} spikes"
                );
            }),
        ];
        for (name, check) in cases {
            let scenario = Scenario::from_name(name, 10 * MIN).unwrap();
            let mut faults = SensorFaults::new(1);
            let mut after = Vec::new();
            for s in 0..1200u64 {
                let t = Duration::from_secs(s);
                // A steadily changing true value, so a frozen one shows.
                let healthy = 90.0 + s as f64 / 1200.0;
                let m = faults.measure(&scenario, Sensor::Coolant, t, healthy);
                let oil = faults.measure(&scenario, Sensor::Oil, t, healthy);
                assert_eq!(
                    oil,
                    Measured::Value(healthy),
                    "{name} leaked onto the oil sensor"
                );
                if t < 10 * MIN {
                    assert_eq!(m, Measured::Value(healthy), "{name} acted before its start");
                } else {
                    after.push((m, healthy));
                }
            }
            check(&after);
        }
    }
}
