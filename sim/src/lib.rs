//! The simulated truck: a small, seeded, deterministic physical model of a fuel tanker
//! that emits what the real one emits (J1939 frames and the tank node's serial bytes),
//! as fast as the caller asks for it; and, in [`source`], the thin adapter that streams it
//! into the agent's pipeline as one more source. A test tool and the demo's truck: nothing
//! on the truck uses this crate.
//!
//! Owns the model (drive cycle, engine heat, cooling loop, weather, cargo: [`physics`];
//! the route, a seeded path of road segments walked by the distance driven: `route`),
//! the fault scenarios ([`faults`]), the broadcast timetable ([`emit`]) and the recording
//! of a run to files ([`record`]). It must never read a clock or the operating system's
//! entropy (a run is a function of [`TruckParams`] and [`Scenario`] alone, byte for byte),
//! never decode what it emits, and never pace itself: [`Truck::next_emission`] returns at
//! once, and the caller decides how fast simulated time passes.
//!
//! Emissions come in timestamp order. The physics advances in 50 ms steps up to the time
//! of each emission, so [`Truck::truth`] after an emission is the state it was made from.

mod config;
pub mod emit;
pub mod faults;
pub mod physics;
pub mod record;
pub mod source;

mod cargo;
mod drive;
mod rng;
mod route;
mod sensors;
mod thermal;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use vigil_agent::frame::CanFrame;
use vigil_agent::reading::Timestamp;
use vigil_agent::signals;

pub use config::SimulatorConfig;
pub use faults::{BadTarget, Fault, FaultInterval, FaultKind, Scenario, Sensor, UnknownScenario};
pub use physics::TruthState;
pub use record::{RecordError, RecordSummary};

use emit::{Slot, TankNode, Timetable};
use physics::{Physics, STEP};
use rng::{Rng, Stream};
use sensors::{Measured, SensorFaults};

/// Everything that makes one simulated truck differ from another.
#[derive(Clone, Debug, PartialEq)]
pub struct TruckParams {
    /// Seeds every random draw; the same seed gives the same run, byte for byte.
    pub seed: u64,
    /// Cargo-tank compartments (channels of the tank node), numbered from 1.
    pub compartments: u8,
    /// Wall-clock time of the start, microseconds since the Unix epoch. Timestamps are
    /// this plus simulated time; the daily temperature curve is read from it.
    pub start_wall_us: i64,
    /// The CAN interface name frames carry.
    pub bus: Arc<str>,
    /// Local time minus UTC, seconds, for the daily temperature curve.
    pub utc_offset_s: i64,
    /// Daily mean air temperature, degC.
    pub ambient_mean_c: f64,
    /// Half the day's temperature range, degC (coldest before dawn, warmest at 15:00).
    pub ambient_swing_c: f64,
    /// Cargo temperature at loading, degC (from the terminal's buried tanks).
    pub cargo_loaded_c: f64,
    /// For a refrigerated, insulated tank: the setpoint its unit holds, degC.
    pub refrigeration_setpoint_c: Option<f64>,
    /// How much the engine ECU's temperature readings dither from one broadcast to the
    /// next, before they are rounded to the bus resolution.
    pub ecu_noise: EcuNoise,
    /// What real trucks' buses do that this one does not by default.
    pub quirks: BusQuirks,
}

/// What real trucks' buses do and the plain simulated truck does not; none by default,
/// so every seed's drive stays what it was. `vigil eval --quirks` runs drives with them
/// and reports those apart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BusQuirks {
    /// Engine temperatures the ECU does not broadcast: "not available" (0xFF) in every
    /// frame from the first. Many heavy trucks send no oil or fuel temperature.
    pub unsent: Vec<Sensor>,
    /// The chance, per ET1 broadcast, that the 1-degC coolant lands one more step away from
    /// the truth for that tick: the two-degree ticks real 1 Hz coolant sensors make.
    pub coolant_step_chance: f64,
    /// A second controller that also sends ET1 (its coolant only, the other fields not
    /// available) right after the engine's: its source address, and how far its coolant
    /// sits from the engine's, degC (a body controller relaying it: a fraction of a degree).
    pub second_sender: Option<(u8, f64)>,
    /// A passenger car's engine speeds instead of the heavy truck's: 800 rpm at idle,
    /// and the truck's speed above its idle times this (2.0 to 2.4 gives 2000-3100 rpm
    /// cruising).
    pub car_engine: Option<f64>,
}

/// The standard deviation, degC, of the dither on each engine temperature an ECU
/// broadcasts. A real ECU does not send the smooth truth: the healthy truck idling in
/// `tests/data/j1939-truck-css.candump.log` sends an oil temperature (SPN 175, 1/32 degC)
/// whose tick-to-tick differences have a standard deviation of 0.15 degC (steps up to 0.41),
/// and a fuel temperature (1 degC) that flips between two degrees in 24 of 126 ticks; real
/// 1 Hz coolant sensors (1 degC) now and then step two degrees in one tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EcuNoise {
    pub coolant_c: f64,
    pub fuel_c: f64,
    pub oil_c: f64,
}

impl Default for EcuNoise {
    /// The CSS truck's: 0.15 / sqrt(2) = 0.11 degC on the oil; a quarter of a degree on
    /// the 1-degC signals.
    fn default() -> Self {
        EcuNoise {
            coolant_c: 0.25,
            fuel_c: 0.25,
            oil_c: 0.11,
        }
    }
}

impl Default for TruckParams {
    fn default() -> Self {
        TruckParams {
            seed: 1,
            compartments: 3,
            // 2026-06-15 06:00 UTC: a summer morning run into the afternoon.
            start_wall_us: 1_781_503_200_000_000,
            bus: Arc::from("sim0"),
            utc_offset_s: 0,
            ambient_mean_c: 18.0,
            ambient_swing_c: 7.0,
            cargo_loaded_c: 14.0,
            refrigeration_setpoint_c: None,
            ecu_noise: EcuNoise::default(),
            quirks: BusQuirks::default(),
        }
    }
}

/// A passenger car's engine at idle, rpm.
const CAR_IDLE_RPM: f64 = 800.0;

/// Why a truck cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error(
        "the {fault} fault targets compartment {compartment}, but the truck has {compartments}; \
         choose a compartment from 1 to {compartments} or add compartments"
    )]
    NoSuchCompartment {
        fault: &'static str,
        compartment: u8,
        compartments: u8,
    },
}

/// One thing the truck sent, stamped with when.
#[derive(Clone, Debug, PartialEq)]
pub struct Emission {
    /// Simulated time since the start.
    pub elapsed: Duration,
    /// The same instant on both clocks: the start wall time plus `elapsed`, and `elapsed`.
    pub at: Timestamp,
    pub what: Emitted,
}

/// What was sent, as the hardware carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum Emitted {
    /// A J1939 frame on the bus named in [`TruckParams::bus`].
    Can(CanFrame),
    /// One vigil-wire frame from the tank node, delimiter included, exactly as the UART
    /// carries it.
    Serial(Vec<u8>),
}

/// The simulated truck.
#[derive(Clone, Debug)]
pub struct Truck {
    params: TruckParams,
    scenario: Scenario,
    physics: Physics,
    /// Time of the next physics step, microseconds.
    next_step_us: u64,
    timetable: Timetable,
    node: TankNode,
    sensor_faults: SensorFaults,
    /// The PT100 channels' measurement noise.
    tank_noise: Rng,
    /// The engine ECU's dither on its temperatures.
    ecu_noise: Rng,
    /// The draws of [`BusQuirks`].
    quirks: Rng,
    /// A second sender's frame, sent right after the engine's ET1.
    pending: Option<Emission>,
}

impl Truck {
    pub fn new(params: TruckParams, scenario: Scenario) -> Result<Truck, SimError> {
        for fault in scenario.faults() {
            if let Sensor::Tank(n) = fault.kind.sensor()
                && (n == 0 || n > params.compartments)
            {
                return Err(SimError::NoSuchCompartment {
                    fault: fault.kind.name(),
                    compartment: n,
                    compartments: params.compartments,
                });
            }
        }
        Ok(Truck {
            physics: Physics::new(&params),
            next_step_us: STEP.as_micros() as u64,
            timetable: Timetable::new(params.seed, params.compartments),
            node: TankNode::new(params.seed, params.compartments),
            sensor_faults: SensorFaults::new(params.seed),
            tank_noise: Rng::new(params.seed, Stream::Sensors),
            ecu_noise: Rng::new(params.seed, Stream::EcuNoise),
            quirks: Rng::new(params.seed, Stream::Quirks),
            pending: None,
            params,
            scenario,
        })
    }

    pub fn params(&self) -> &TruckParams {
        &self.params
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The true physical state as of the last emission.
    pub fn truth(&self) -> &TruthState {
        self.physics.truth()
    }

    /// The fault intervals of a run lasting `run` (the ground-truth labels).
    pub fn fault_intervals(&self, run: Duration) -> Vec<FaultInterval> {
        self.scenario.intervals(run)
    }

    /// The timestamp of an instant `elapsed` into the run.
    pub fn timestamp(&self, elapsed: Duration) -> Timestamp {
        Timestamp {
            wall_us: self.params.start_wall_us + elapsed.as_micros() as i64,
            mono: elapsed,
        }
    }

    /// Runs the model up to the next thing the truck sends and returns it. Never blocks
    /// and never ends; simulated time only moves forward.
    pub fn next_emission(&mut self) -> Emission {
        if let Some(pending) = self.pending.take() {
            return pending;
        }
        loop {
            let (slot, at_us) = self.timetable.next();
            while self.next_step_us <= at_us {
                let t = Duration::from_micros(self.next_step_us);
                self.physics.step(t, &self.scenario);
                self.next_step_us += STEP.as_micros() as u64;
            }
            let elapsed = Duration::from_micros(at_us);
            // A dropped-out message sends nothing; the heartbeat always goes out, so
            // this loop ends within ten simulated seconds whatever the scenario.
            if let Some(what) = self.emit(slot, elapsed) {
                if slot == Slot::Et1 {
                    self.pending = self.second_sender(elapsed);
                }
                return Emission {
                    elapsed,
                    at: self.timestamp(elapsed),
                    what,
                };
            }
        }
    }

    fn measure(&mut self, sensor: Sensor, t: Duration, healthy: f64) -> Measured {
        if self.params.quirks.unsent.contains(&sensor) {
            return Measured::NotAvailable;
        }
        self.sensor_faults
            .measure(&self.scenario, sensor, t, healthy)
    }

    /// The second sender's ET1, if the truck has one: the engine's true coolant (with the
    /// ECU's dither) plus its offset.
    fn second_sender(&mut self, t: Duration) -> Option<Emission> {
        let (address, offset) = self.params.quirks.second_sender?;
        let coolant = self.physics.truth().coolant_c
            + offset
            + self.params.ecu_noise.coolant_c * self.ecu_noise.normal();
        let id = (emit::ET1_ID & !0xFF) | u32::from(address);
        let at = self.timestamp(t);
        let frame = emit::can_frame(
            &self.params.bus,
            id,
            at,
            &[(signals::COOLANT_TEMPERATURE, Some(coolant))],
        );
        Some(Emission {
            elapsed: t,
            at,
            what: Emitted::Can(frame),
        })
    }

    fn emit(&mut self, slot: Slot, t: Duration) -> Option<Emitted> {
        let at = self.timestamp(t);
        let truth = self.physics.truth();
        // What the ECU broadcasts is the true value with its dither, rounded to the bus's
        // resolution (by the encoding), faults aside.
        let quirks = &self.params.quirks;
        let rpm = match quirks.car_engine {
            Some(scale) if truth.engine_rpm > 0.0 => {
                CAR_IDLE_RPM + (truth.engine_rpm - drive::IDLE_RPM) * scale
            }
            _ => truth.engine_rpm,
        };
        let (kmh, air) = (truth.speed_kmh, truth.ambient_c);
        let (coolant, fuel, oil) = (truth.coolant_c, truth.fuel_c, truth.oil_c);
        let noise = self.params.ecu_noise;
        let (coolant, fuel, oil) = match slot {
            Slot::Et1 => {
                // The quirk's draws come from a stream of their own, so a truck without
                // quirks sends exactly what it always did.
                let step = if quirks.coolant_step_chance > 0.0
                    && self.quirks.chance(quirks.coolant_step_chance)
                {
                    if self.quirks.chance(0.5) { 1.0 } else { -1.0 }
                } else {
                    0.0
                };
                (
                    coolant + noise.coolant_c * self.ecu_noise.normal() + step,
                    fuel + noise.fuel_c * self.ecu_noise.normal(),
                    oil + noise.oil_c * self.ecu_noise.normal(),
                )
            }
            _ => (coolant, fuel, oil),
        };
        let (id, values) = match slot {
            Slot::Eec1 => (
                emit::EEC1_ID,
                vec![(
                    signals::ENGINE_SPEED,
                    self.measure(Sensor::EngineSpeed, t, rpm),
                )],
            ),
            Slot::Ccvs1 => (
                emit::CCVS1_ID,
                vec![(signals::SPEED, self.measure(Sensor::Speed, t, kmh))],
            ),
            Slot::Et1 => (
                emit::ET1_ID,
                vec![
                    (
                        signals::COOLANT_TEMPERATURE,
                        self.measure(Sensor::Coolant, t, coolant),
                    ),
                    (
                        signals::FUEL_TEMPERATURE,
                        self.measure(Sensor::Fuel, t, fuel),
                    ),
                    (signals::OIL_TEMPERATURE, self.measure(Sensor::Oil, t, oil)),
                ],
            ),
            Slot::Amb => (
                emit::AMB_ID,
                vec![(
                    signals::AMBIENT_TEMPERATURE,
                    self.measure(Sensor::Ambient, t, air),
                )],
            ),
            // The GPS is not one of the sensors faults act on: it always has a fix.
            Slot::Vp => (
                emit::VP_ID,
                vec![
                    (signals::LATITUDE, Measured::Value(truth.latitude)),
                    (signals::LONGITUDE, Measured::Value(truth.longitude)),
                ],
            ),
            Slot::Tank(n) => return self.emit_tank(n, t).map(Emitted::Serial),
            Slot::Heartbeat => {
                let frame = self.node.heartbeat_frame(t.as_micros() as u64);
                return Some(Emitted::Serial(frame));
            }
        };
        let mut sent = Vec::with_capacity(values.len());
        for (vss, m) in values {
            match m {
                // The message carrying a dropped-out signal stops altogether.
                Measured::Silent => return None,
                Measured::NotAvailable => sent.push((vss, None)),
                Measured::Value(v) => sent.push((vss, Some(v))),
            }
        }
        Some(Emitted::Can(emit::can_frame(
            &self.params.bus,
            id,
            at,
            &sent,
        )))
    }

    fn emit_tank(&mut self, n: u8, t: Duration) -> Option<Vec<u8>> {
        let true_c = self.physics.truth().tanks_c[usize::from(n - 1)];
        // A PT100 through the MAX31865's 15-bit ADC: a few hundredths of a degree of noise.
        let healthy = true_c + 0.02 * self.tank_noise.normal();
        let t_us = t.as_micros() as u64;
        match self.measure(Sensor::Tank(n), t, healthy) {
            Measured::Silent => None,
            Measured::NotAvailable => Some(self.node.tank_frame(t_us, n, None)),
            Measured::Value(c) => {
                let milli_c = (c * 1000.0).round() as i32;
                Some(self.node.tank_frame(t_us, n, Some(milli_c)))
            }
        }
    }
}
