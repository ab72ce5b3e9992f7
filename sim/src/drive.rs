//! The drive cycle and the powertrain: where the truck is going, how fast, in which gear,
//! and how hard the engine works to get there.
//!
//! Owns vehicle speed, road grade, gear, engine speed and engine power. It knows nothing
//! of temperatures except the two facts the cooling loop hands it (is the engine running,
//! how much power the fan takes), and it must never read a fault directly: the physics
//! decides what a fault means for the engine.

use super::rng::{Rng, Stream, Wander};

/// A loaded 5-axle fuel tanker.
const MASS_KG: f64 = 36_000.0;
const GRAVITY: f64 = 9.81;
/// Drag coefficient times frontal area.
const CDA_M2: f64 = 6.0;
const AIR_DENSITY: f64 = 1.2;
const ROLLING_RESISTANCE: f64 = 0.006;
const DRIVELINE_EFFICIENCY: f64 = 0.92;
/// A 450 hp heavy-duty diesel.
pub(crate) const RATED_POWER_KW: f64 = 330.0;
pub(crate) const IDLE_RPM: f64 = 600.0;
/// Alternator, air compressor, steering pump.
const ACCESSORY_KW: f64 = 4.0;
/// Below this the clutch is open and the engine idles.
const CLUTCH_OPEN_KMH: f64 = 4.0;
/// The driver shifts up as soon as the engine would still turn this fast in the next gear.
const SHIFT_RPM: f64 = 1050.0;
const GEARS: u8 = 12;

/// Engine rpm per km/h in a gear (1 = lowest). The top gear turns about 1300 rpm at
/// 80 km/h; each gear down multiplies by 1.25, a typical 12-speed step.
pub(crate) fn rpm_per_kmh(gear: u8) -> f64 {
    16.0 * 1.25f64.powi((GEARS - gear) as i32)
}

/// What the driver is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Leg {
    /// Standing with the engine idling (warm-up, traffic lights, deliveries) until a time.
    Stopped {
        until: f64,
    },
    /// Driving toward a cruising speed until a time, then braking to a stop.
    Moving {
        cruise_kmh: f64,
        until: f64,
    },
    Braking,
}

/// The vehicle and its driver.
#[derive(Clone, Debug)]
pub(crate) struct Drive {
    rng: Rng,
    engine_rng: Rng,
    leg: Leg,
    /// The driver never holds a speed exactly.
    wobble_kmh: Wander,
    /// Road grade (rise over run), wandering with distance so a stopped truck stays on
    /// the same slope.
    grade: Wander,
    pub(crate) speed_ms: f64,
    pub(crate) gear: u8,
    pub(crate) rpm: f64,
    /// Power the engine delivers (traction, accessories, fan), kW.
    pub(crate) power_kw: f64,
}

impl Drive {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed, Stream::Drive);
        // A cold start: the driver does the pre-trip check with the engine idling.
        let warm_up = rng.range(90.0, 240.0);
        Drive {
            rng,
            engine_rng: Rng::new(seed, Stream::Engine),
            leg: Leg::Stopped { until: warm_up },
            wobble_kmh: Wander::new(2.5, 30.0),
            grade: Wander::new(0.015, 1500.0),
            speed_ms: 0.0,
            gear: 1,
            rpm: IDLE_RPM,
            power_kw: ACCESSORY_KW,
        }
    }

    pub(crate) fn speed_kmh(&self) -> f64 {
        self.speed_ms * 3.6
    }

    pub(crate) fn grade(&self) -> f64 {
        self.grade.value
    }

    /// The engine's share of its rated power, 0 to 1.
    pub(crate) fn load(&self) -> f64 {
        (self.power_kw / RATED_POWER_KW).clamp(0.0, 1.0)
    }

    /// Advances by `dt` seconds ending at `t`. `running` is false after the engine
    /// protection shut the engine down; `fan_kw` is what the cooling fan draws.
    pub(crate) fn step(&mut self, t: f64, dt: f64, running: bool, fan_kw: f64) {
        self.next_leg(t, running);
        let target_kmh = match self.leg {
            Leg::Moving { cruise_kmh, .. } => {
                (cruise_kmh + self.wobble_kmh.step(dt, &mut self.rng)).max(5.0)
            }
            Leg::Stopped { .. } | Leg::Braking => 0.0,
        };
        let v = self.speed_ms;
        let wanted_accel = (0.4 * (target_kmh / 3.6 - v)).clamp(-1.5, 1.0);
        let grade = self.grade.value;
        let resistance =
            MASS_KG * GRAVITY * (ROLLING_RESISTANCE + grade) + 0.5 * AIR_DENSITY * CDA_M2 * v * v;
        let wanted_force = MASS_KG * wanted_accel + resistance;
        // The engine's power caps the tractive force; at walking pace the gearbox's
        // torque multiplication is the limit instead, modelled as a floor on speed.
        let available_kw = if running && target_kmh > 0.0 {
            (RATED_POWER_KW - ACCESSORY_KW - fan_kw) * DRIVELINE_EFFICIENCY
        } else {
            0.0
        };
        let max_force = available_kw * 1000.0 / v.max(1.5);
        // Brakes supply whatever negative force the driver wants.
        let force = wanted_force.min(max_force);
        let accel = (force - resistance) / MASS_KG;
        self.speed_ms = (v + accel * dt).max(0.0);
        if target_kmh == 0.0 && self.speed_ms < 0.3 {
            self.speed_ms = 0.0;
        }
        self.grade.step(self.speed_ms * dt, &mut self.rng);
        self.grade.value = self.grade.value.clamp(-0.06, 0.06);

        let traction_kw = force.max(0.0) * self.speed_ms / 1000.0 / DRIVELINE_EFFICIENCY;
        self.power_kw = if running {
            traction_kw + ACCESSORY_KW + fan_kw
        } else {
            0.0
        };
        self.shift_and_turn(dt, running);
    }

    fn next_leg(&mut self, t: f64, running: bool) {
        if !running {
            // An engine that was shut down leaves the driver braking to a stop.
            if !matches!(self.leg, Leg::Stopped { .. }) {
                self.leg = Leg::Braking;
            }
            if self.speed_ms == 0.0 {
                self.leg = Leg::Stopped {
                    until: f64::INFINITY,
                };
            }
            return;
        }
        self.leg = match self.leg {
            Leg::Stopped { until } if t >= until => {
                // A quarter of legs are town streets, the rest open road.
                if self.rng.chance(0.25) {
                    Leg::Moving {
                        cruise_kmh: self.rng.range(30.0, 50.0),
                        until: t + self.rng.range(60.0, 240.0),
                    }
                } else {
                    Leg::Moving {
                        cruise_kmh: self.rng.range(60.0, 90.0),
                        until: t + self.rng.range(300.0, 1200.0),
                    }
                }
            }
            Leg::Moving { until, .. } if t >= until => Leg::Braking,
            Leg::Braking if self.speed_ms == 0.0 => {
                // Mostly junctions and lights; now and then a longer stop.
                let dwell = if self.rng.chance(0.1) {
                    self.rng.range(180.0, 480.0)
                } else {
                    self.rng.range(15.0, 150.0)
                };
                Leg::Stopped { until: t + dwell }
            }
            // A restarted engine after a protection shutdown waits for the driver.
            Leg::Stopped { until } if until.is_infinite() => Leg::Stopped {
                until: t + self.rng.range(60.0, 180.0),
            },
            leg => leg,
        };
    }

    fn shift_and_turn(&mut self, dt: f64, running: bool) {
        let kmh = self.speed_kmh();
        let target_rpm = if !running {
            0.0
        } else if kmh < CLUTCH_OPEN_KMH {
            self.gear = 1;
            IDLE_RPM
        } else {
            self.gear = (1..=GEARS)
                .rev()
                .find(|&g| kmh * rpm_per_kmh(g) >= SHIFT_RPM)
                .unwrap_or(1);
            (kmh * rpm_per_kmh(self.gear)).clamp(IDLE_RPM, 2100.0)
        };
        // The crankshaft has inertia; a stopping engine takes about a second to spin down.
        let tau = if running { 0.3 } else { 1.0 };
        self.rpm += (target_rpm - self.rpm) * (dt / tau).min(1.0);
        if running {
            // Combustion is not perfectly even.
            self.rpm = (self.rpm + 2.0 * self.engine_rng.normal()).max(0.0);
        } else if self.rpm < 1.0 {
            self.rpm = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives one hour with a healthy engine and no fan, sampling once a second.
    fn hour(seed: u64) -> Vec<(f64, f64, f64)> {
        let mut d = Drive::new(seed);
        let dt = 0.05;
        let mut out = Vec::new();
        for k in 1..=72_000u32 {
            d.step(k as f64 * dt, dt, true, 0.0);
            if k % 20 == 0 {
                out.push((d.speed_kmh(), d.rpm, d.load()));
            }
        }
        out
    }

    #[test]
    fn an_hour_has_stops_idling_and_highway_cruising() {
        for seed in [1, 2, 3] {
            let samples = hour(seed);
            let stopped: Vec<_> = samples.iter().filter(|s| s.0 == 0.0).collect();
            let cruising = samples
                .iter()
                .filter(|s| (60.0..=95.0).contains(&s.0))
                .count();
            let top = samples.iter().map(|s| s.0).fold(0.0, f64::max);
            assert!(
                stopped.len() > 60,
                "seed {seed}: {} s stopped",
                stopped.len()
            );
            assert!(cruising > 900, "seed {seed}: {cruising} s at 60-95 km/h");
            assert!(top < 100.0, "seed {seed}: top speed {top}");
            for s in &stopped {
                assert!(
                    (s.1 - IDLE_RPM).abs() < 20.0,
                    "seed {seed}: idle at {} rpm",
                    s.1
                );
            }
        }
    }

    #[test]
    fn cruising_in_top_gear_turns_about_1300_rpm_and_load_follows_effort() {
        let samples = hour(4);
        for &(kmh, rpm, _) in samples.iter().filter(|s| (78.0..82.0).contains(&s.0)) {
            assert!((1150.0..1450.0).contains(&rpm), "{kmh} km/h at {rpm} rpm");
        }
        let idle_load = samples
            .iter()
            .filter(|s| s.0 == 0.0)
            .map(|s| s.2)
            .fold(0.0, f64::max);
        let busiest = samples.iter().map(|s| s.2).fold(0.0, f64::max);
        assert!(idle_load < 0.05, "idle load {idle_load}");
        assert!(busiest > 0.8, "the engine never worked hard: {busiest}");
    }

    #[test]
    fn a_shut_down_engine_stops_the_truck_and_stays_off() {
        let mut d = Drive::new(5);
        let dt = 0.05;
        let mut t = 0.0;
        while d.speed_kmh() < 50.0 {
            t += dt;
            d.step(t, dt, true, 0.0);
            assert!(t < 1200.0, "never reached 50 km/h");
        }
        for _ in 0..4000 {
            t += dt;
            d.step(t, dt, false, 0.0);
        }
        assert_eq!((d.speed_ms, d.rpm, d.power_kw), (0.0, 0.0, 0.0));
    }
}
