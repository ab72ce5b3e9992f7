//! The truck as one physical system: the drive cycle, the engine's heat, the cooling
//! loop, the weather and the cargo, stepped together, and the [`TruthState`] that
//! describes it.
//!
//! Owns the physics step and the engine protection (an ECU shuts an overheated engine
//! down). It decides what each physical fault means for the model. It must never encode
//! a frame or apply a sensor fault: the truth here is what a perfect sensor would read.

use std::time::Duration;

use super::TruckParams;
use super::cargo::{Compartment, TankExposure};
use super::drive::Drive;
use super::faults::{FaultKind, Scenario};
use super::rng::{Rng, Stream};
use super::route::Route;
use super::thermal::{CoolingFaults, CoolingLoop, Duty, Weather};

/// The physics step. Every emission period (50 ms EEC1 and up) is a multiple of it.
pub(crate) const STEP: Duration = Duration::from_millis(50);

/// The ECU's engine protection stops the engine at this coolant temperature...
pub(crate) const SHUTDOWN_C: f64 = 120.0;
/// ...and the driver restarts it once repaired and cooled below this.
const RESTART_C: f64 = 95.0;

/// The true physical state of the simulated truck at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct TruthState {
    /// Simulated time since the start.
    pub elapsed: Duration,
    pub speed_kmh: f64,
    pub engine_rpm: f64,
    pub engine_running: bool,
    pub gear: u8,
    /// Engine power over rated power, 0 to 1.
    pub load: f64,
    /// Road grade, rise over run.
    pub grade: f64,
    pub coolant_c: f64,
    pub oil_c: f64,
    pub fuel_c: f64,
    pub ambient_c: f64,
    /// Thermostat opening, 0 to 1.
    pub thermostat_open: f64,
    /// Fan clutch engagement, 0 to 1.
    pub fan_engaged: f64,
    /// Coolant in the system, 1 = full.
    pub coolant_level: f64,
    /// Cargo temperature per compartment; index 0 is compartment 1.
    pub tanks_c: Vec<f64>,
    /// Distance driven since the start, metres.
    pub odometer_m: f64,
    /// Where the truck is on its route, WGS 84 degrees.
    pub latitude: f64,
    pub longitude: f64,
}

/// Everything that moves, stepped together.
#[derive(Clone, Debug)]
pub(crate) struct Physics {
    start_wall_us: i64,
    setpoint_c: Option<f64>,
    drive: Drive,
    cooling: CoolingLoop,
    weather: Weather,
    route: Route,
    /// The cargo of each compartment; the truth carries their temperatures.
    compartments: Vec<Compartment>,
    truth: TruthState,
}

impl Physics {
    pub(crate) fn new(params: &TruckParams) -> Self {
        let mut weather = Weather::new(
            params.seed,
            params.ambient_mean_c,
            params.ambient_swing_c,
            params.utc_offset_s,
        );
        let ambient_c = weather.air_c(0.0, params.start_wall_us);
        // Each compartment was loaded from a different tank at the terminal.
        let mut cargo = Rng::new(params.seed, Stream::Cargo);
        let compartments: Vec<Compartment> = (0..params.compartments)
            .map(|_| {
                Compartment::loaded(match params.refrigeration_setpoint_c {
                    Some(sp) => sp + cargo.range(-0.3, 0.3),
                    None => params.cargo_loaded_c + cargo.range(-1.5, 1.5),
                })
            })
            .collect();
        let tanks_c = compartments.iter().map(|c| c.temp_c).collect();
        let cooling = CoolingLoop::cold(ambient_c);
        let drive = Drive::new(params.seed);
        let route = Route::new(params.seed);
        let (latitude, longitude) = route.position();
        let truth = TruthState {
            elapsed: Duration::ZERO,
            speed_kmh: 0.0,
            engine_rpm: drive.rpm,
            engine_running: true,
            gear: drive.gear,
            load: drive.load(),
            grade: drive.grade(),
            coolant_c: cooling.coolant_c,
            oil_c: cooling.oil_c,
            fuel_c: cooling.fuel_c,
            ambient_c,
            thermostat_open: 0.0,
            fan_engaged: 0.0,
            coolant_level: 1.0,
            tanks_c,
            odometer_m: 0.0,
            latitude,
            longitude,
        };
        Physics {
            start_wall_us: params.start_wall_us,
            setpoint_c: params.refrigeration_setpoint_c,
            drive,
            cooling,
            weather,
            route,
            compartments,
            truth,
        }
    }

    pub(crate) fn truth(&self) -> &TruthState {
        &self.truth
    }

    /// Advances one [`STEP`], ending at simulated time `t`, under the faults of `scenario`.
    pub(crate) fn step(&mut self, t: Duration, scenario: &Scenario) {
        let dt = STEP.as_secs_f64();
        let wall_us = self.start_wall_us + t.as_micros() as i64;
        let mut cooling_faults = CoolingFaults::default();
        for kind in scenario.active(t) {
            match kind {
                FaultKind::CoolantLoss => cooling_faults.leak = true,
                FaultKind::FanFailure => cooling_faults.fan_failed = true,
                FaultKind::ThermostatStuck => cooling_faults.thermostat_stuck_closed = true,
                _ => {}
            }
        }
        if !cooling_faults.leak && self.cooling.level < 1.0 {
            // The leak's fault interval ended: the hose was fixed and the system topped up.
            self.cooling.refill();
        }

        let running = self.engine_protection(cooling_faults);
        self.drive
            .step(t.as_secs_f64(), dt, running, self.cooling.fan_kw());
        let ambient_c = self.weather.air_c(dt, wall_us);
        let duty = Duty {
            heat_kw: CoolingLoop::engine_heat_kw(self.drive.power_kw, self.drive.rpm, running),
            speed_ms: self.drive.speed_ms,
            ambient_c,
            load: self.drive.load(),
            running,
        };
        self.cooling.step(dt, duty, cooling_faults);

        let sun = self.weather.sun(wall_us);
        for (i, cargo) in self.compartments.iter_mut().enumerate() {
            let compartment = i as u8 + 1;
            let mut exposure = TankExposure {
                ambient_c,
                sun,
                setpoint_c: self.setpoint_c,
                external_heat: false,
                insulation_lost: false,
            };
            for kind in scenario.active(t) {
                match *kind {
                    FaultKind::TankHeating { compartment: c } if c == compartment => {
                        exposure.external_heat = true
                    }
                    FaultKind::InsulationLoss { compartment: c } if c == compartment => {
                        exposure.insulation_lost = true
                    }
                    _ => {}
                }
            }
            cargo.step(dt, exposure);
            self.truth.tanks_c[i] = cargo.temp_c;
        }

        let d = &self.drive;
        let c = &self.cooling;
        let truth = &mut self.truth;
        truth.elapsed = t;
        truth.odometer_m += d.speed_ms * dt;
        self.route.drive_to(truth.odometer_m);
        (truth.latitude, truth.longitude) = self.route.position();
        truth.speed_kmh = d.speed_kmh();
        truth.engine_rpm = d.rpm;
        truth.engine_running = running;
        truth.gear = d.gear;
        truth.load = d.load();
        truth.grade = d.grade();
        truth.coolant_c = c.coolant_c;
        truth.oil_c = c.oil_c;
        truth.fuel_c = c.fuel_c;
        truth.ambient_c = ambient_c;
        truth.thermostat_open = c.thermostat;
        truth.fan_engaged = c.fan;
        truth.coolant_level = c.level;
    }

    /// Whether the engine runs this step: the ECU stops it when the coolant boils over,
    /// and it stays off until the fault is repaired and the engine has cooled.
    fn engine_protection(&mut self, faults: CoolingFaults) -> bool {
        let was = self.truth.engine_running;
        if was && self.cooling.coolant_c >= SHUTDOWN_C {
            return false;
        }
        if !was {
            let repaired = faults == CoolingFaults::default();
            return repaired && self.cooling.coolant_c < RESTART_C;
        }
        was
    }
}
