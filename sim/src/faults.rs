//! Faults and scenarios: what can go wrong with the truck or its sensors, when, and for
//! how long, and the ground-truth labels a recorded run carries.
//!
//! Owns the scenario names the CLI accepts, the fault timetable and the labels. It must
//! never act on anything itself: the physics reads the physical faults through
//! [`Scenario::active`], and [`super::sensors`] applies the sensor faults.

use std::fmt;
use std::time::Duration;

pub use super::sensors::Sensor;
use vigil_agent::reading::Signal;

/// One kind of fault, with what it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A coolant leak: the level falls, circulation collapses, the engine overheats.
    CoolantLoss,
    /// The viscous fan never engages.
    FanFailure,
    /// The thermostat stays closed.
    ThermostatStuck,
    /// A fire or external heat on one compartment.
    TankHeating { compartment: u8 },
    /// A compartment's insulation (and with it its refrigeration) is lost.
    InsulationLoss { compartment: u8 },
    /// The sensor repeats its last value.
    StuckSensor(Sensor),
    /// The messages carrying the sensor stop.
    Dropout(Sensor),
    /// Occasional single-sample spikes.
    Spikes(Sensor),
    /// A slowly growing offset.
    Drift(Sensor),
    /// The sender says "not available" (J1939 `0xFF`; the tank node reports an open RTD).
    NotAvailable(Sensor),
}

impl FaultKind {
    /// The name used on the command line and in label files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::CoolantLoss => "coolant-loss",
            FaultKind::FanFailure => "fan-failure",
            FaultKind::ThermostatStuck => "thermostat-stuck",
            FaultKind::TankHeating { .. } => "tank-heating",
            FaultKind::InsulationLoss { .. } => "insulation-loss",
            FaultKind::StuckSensor(_) => "stuck-sensor",
            FaultKind::Dropout(_) => "dropout",
            FaultKind::Spikes(_) => "spikes",
            FaultKind::Drift(_) => "drift",
            FaultKind::NotAvailable(_) => "not-available",
        }
    }

    /// The sensor whose signal shows the fault (what a label names).
    pub fn sensor(&self) -> Sensor {
        match *self {
            FaultKind::CoolantLoss | FaultKind::FanFailure | FaultKind::ThermostatStuck => {
                Sensor::Coolant
            }
            FaultKind::TankHeating { compartment } | FaultKind::InsulationLoss { compartment } => {
                Sensor::Tank(compartment)
            }
            FaultKind::StuckSensor(s)
            | FaultKind::Dropout(s)
            | FaultKind::Spikes(s)
            | FaultKind::Drift(s)
            | FaultKind::NotAvailable(s) => s,
        }
    }

    fn retarget(self, to: Sensor) -> Result<FaultKind, BadTarget> {
        let bad = || BadTarget {
            fault: self.name(),
            sensor: to,
        };
        Ok(match (self, to) {
            (FaultKind::TankHeating { .. }, Sensor::Tank(compartment)) => {
                FaultKind::TankHeating { compartment }
            }
            (FaultKind::InsulationLoss { .. }, Sensor::Tank(compartment)) => {
                FaultKind::InsulationLoss { compartment }
            }
            (FaultKind::StuckSensor(_), s) => FaultKind::StuckSensor(s),
            (FaultKind::Dropout(_), s) => FaultKind::Dropout(s),
            (FaultKind::Spikes(_), s) => FaultKind::Spikes(s),
            (FaultKind::Drift(_), s) => FaultKind::Drift(s),
            (FaultKind::NotAvailable(_), s) => FaultKind::NotAvailable(s),
            _ => return Err(bad()),
        })
    }
}

/// A fault and when it acts: from `start` (simulated time) for `duration`, or to the end.
/// When a fault ends it is repaired: a leak is topped up, a sensor reads true again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub start: Duration,
    pub duration: Option<Duration>,
}

impl Fault {
    pub fn new(kind: FaultKind, start: Duration) -> Self {
        Fault {
            kind,
            start,
            duration: None,
        }
    }

    pub fn end(&self) -> Option<Duration> {
        self.duration.map(|d| self.start + d)
    }

    pub fn active_at(&self, t: Duration) -> bool {
        t >= self.start && self.end().is_none_or(|end| t < end)
    }
}

/// A named set of faults to run the truck with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    name: &'static str,
    faults: Vec<Fault>,
}

/// A scenario name the simulator does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario {name:?}; choose one of: {}", Scenario::NAMES.join(", "))]
pub struct UnknownScenario {
    pub name: String,
}

/// A fault that cannot act on the sensor it was pointed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {fault} fault cannot act on {sensor:?}; tank faults need a compartment (Tank(n))")]
pub struct BadTarget {
    pub fault: &'static str,
    pub sensor: Sensor,
}

impl Scenario {
    /// Every scenario name, in the order help text lists them.
    pub const NAMES: [&'static str; 11] = [
        "normal",
        "coolant-loss",
        "fan-failure",
        "thermostat-stuck",
        "tank-heating",
        "insulation-loss",
        "stuck-sensor",
        "dropout",
        "spikes",
        "drift",
        "not-available",
    ];

    /// A healthy truck.
    pub fn normal() -> Self {
        Scenario {
            name: "normal",
            faults: Vec::new(),
        }
    }

    /// The scenario of a name with its fault starting at `fault_at` and lasting to the
    /// end. Engine faults act on the coolant, tank faults on compartment 1, sensor faults
    /// on the coolant sensor; [`Scenario::targeting`] points them elsewhere.
    pub fn from_name(name: &str, fault_at: Duration) -> Result<Self, UnknownScenario> {
        let tank = 1;
        let kind = match name {
            "normal" => return Ok(Scenario::normal()),
            "coolant-loss" => FaultKind::CoolantLoss,
            "fan-failure" => FaultKind::FanFailure,
            "thermostat-stuck" => FaultKind::ThermostatStuck,
            "tank-heating" => FaultKind::TankHeating { compartment: tank },
            "insulation-loss" => FaultKind::InsulationLoss { compartment: tank },
            "stuck-sensor" => FaultKind::StuckSensor(Sensor::Coolant),
            "dropout" => FaultKind::Dropout(Sensor::Coolant),
            "spikes" => FaultKind::Spikes(Sensor::Coolant),
            "drift" => FaultKind::Drift(Sensor::Coolant),
            "not-available" => FaultKind::NotAvailable(Sensor::Coolant),
            _ => {
                return Err(UnknownScenario {
                    name: name.to_owned(),
                });
            }
        };
        // A one-fault scenario is named after its fault.
        Ok(Scenario {
            name: kind.name(),
            faults: vec![Fault::new(kind, fault_at)],
        })
    }

    /// Adds a fault (scenarios can combine faults; the name stays).
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Makes every fault last `duration` instead of to the end.
    pub fn lasting(mut self, duration: Duration) -> Self {
        for f in &mut self.faults {
            f.duration = Some(duration);
        }
        self
    }

    /// Points every sensor or tank fault at another sensor; engine faults stay as they are.
    pub fn targeting(mut self, sensor: Sensor) -> Result<Self, BadTarget> {
        for f in &mut self.faults {
            if !matches!(
                f.kind,
                FaultKind::CoolantLoss | FaultKind::FanFailure | FaultKind::ThermostatStuck
            ) {
                f.kind = f.kind.retarget(sensor)?;
            }
        }
        Ok(self)
    }

    pub fn name(&self) -> &str {
        self.name
    }

    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// The faults acting at simulated time `t`.
    pub fn active(&self, t: Duration) -> impl Iterator<Item = &FaultKind> {
        self.faults
            .iter()
            .filter(move |f| f.active_at(t))
            .map(|f| &f.kind)
    }

    /// The ground-truth intervals of a run that lasts `run`: one per fault that starts
    /// within it, cut at the end of the run.
    pub fn intervals(&self, run: Duration) -> Vec<FaultInterval> {
        self.faults
            .iter()
            .filter(|f| f.start < run)
            .map(|f| FaultInterval {
                fault: f.kind.name(),
                signal: f.kind.sensor().signal(),
                start: f.start,
                end: f.end().map_or(run, |e| e.min(run)),
            })
            .collect()
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// When a fault acted on which signal, in simulated time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultInterval {
    pub fault: &'static str,
    pub signal: Signal,
    pub start: Duration,
    pub end: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn every_name_parses_back_to_itself_and_unknown_names_list_the_choices() {
        for name in Scenario::NAMES {
            let s = Scenario::from_name(name, MIN).unwrap();
            assert_eq!(s.name(), name);
            assert_eq!(s.faults().len(), usize::from(name != "normal"));
            if let Some(f) = s.faults().first() {
                assert_eq!(f.kind.name(), name);
                assert_eq!(f.start, MIN);
            }
        }
        let err = Scenario::from_name("meltdown", MIN).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"meltdown\""), "{text}");
        for name in Scenario::NAMES {
            assert!(text.contains(name), "{text} does not offer {name}");
        }
    }

    #[test]
    fn defaults_target_the_coolant_and_compartment_1_and_can_be_moved() {
        let target = |name| {
            Scenario::from_name(name, MIN).unwrap().faults()[0]
                .kind
                .sensor()
        };
        assert_eq!(target("coolant-loss"), Sensor::Coolant);
        assert_eq!(target("tank-heating"), Sensor::Tank(1));
        assert_eq!(target("insulation-loss"), Sensor::Tank(1));
        assert_eq!(target("drift"), Sensor::Coolant);
        let moved = Scenario::from_name("spikes", MIN)
            .unwrap()
            .targeting(Sensor::Tank(2));
        assert_eq!(
            moved.unwrap().faults()[0].kind,
            FaultKind::Spikes(Sensor::Tank(2))
        );
        let bad = Scenario::from_name("tank-heating", MIN)
            .unwrap()
            .targeting(Sensor::Oil);
        assert!(bad.is_err());
    }

    #[test]
    fn intervals_are_cut_at_the_end_of_the_run_and_skip_later_faults() {
        let s = Scenario::from_name("drift", 10 * MIN)
            .unwrap()
            .with_fault(Fault::new(FaultKind::FanFailure, 90 * MIN))
            .with_fault(Fault {
                kind: FaultKind::Dropout(Sensor::Ambient),
                start: 20 * MIN,
                duration: Some(5 * MIN),
            });
        let got = s.intervals(60 * MIN);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].start, got[0].end), (10 * MIN, 60 * MIN));
        assert_eq!((got[1].start, got[1].end), (20 * MIN, 25 * MIN));
        assert_eq!(got[1].signal, Sensor::Ambient.signal());
        assert!(!s.faults()[2].active_at(25 * MIN) && s.faults()[2].active_at(20 * MIN));
    }
}
