//! Heat: the engine's cooling loop (thermostat, radiator, viscous fan), the oil and fuel
//! that follow it, and the weather ([`super::cargo`] has the cargo-tank compartments).
//!
//! Every model here is a lumped thermal mass integrated with explicit Euler at the
//! physics step (50 ms, far below the shortest time constant, a few seconds). It owns no
//! clock and no randomness except the ambient's own wander, and it must never look at a
//! fault list: the caller says, as plain inputs, what is broken.

use super::rng::{Rng, Stream, Wander};

/// The wax thermostat starts to open here...
pub(crate) const THERMOSTAT_OPENS_C: f64 = 82.0;
/// ...and is fully open here.
pub(crate) const THERMOSTAT_FULL_C: f64 = 92.0;
/// The viscous fan clutch locks up near this coolant temperature...
pub(crate) const FAN_ON_C: f64 = 94.0;
/// ...and lets go again once the coolant is back down here.
pub(crate) const FAN_OFF_C: f64 = 88.0;
/// What the fan draws from the engine when locked.
const FAN_KW: f64 = 12.0;
/// Engine metal plus coolant; the coolant's part leaves with a leak.
const ENGINE_METAL_KJ_PER_K: f64 = 440.0;
const COOLANT_KJ_PER_K: f64 = 160.0;
/// A burst hose empties the system in about this long.
const LEAK_DRAIN_S: f64 = 300.0;
/// Heat the block loses to the air under the hood whatever the thermostat does.
const BLOCK_LOSS_KW_PER_K: f64 = 0.06;

/// How far the thermostat wants to be open at a coolant temperature, 0 to 1.
pub(crate) fn thermostat_target(coolant_c: f64) -> f64 {
    ((coolant_c - THERMOSTAT_OPENS_C) / (THERMOSTAT_FULL_C - THERMOSTAT_OPENS_C)).clamp(0.0, 1.0)
}

/// What breaks the cooling loop, as the physics hands it over.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct CoolingFaults {
    pub(crate) leak: bool,
    pub(crate) fan_failed: bool,
    pub(crate) thermostat_stuck_closed: bool,
}

/// What the engine and the road do to the cooling loop during a step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Duty {
    /// Heat into the coolant, kW (see [`CoolingLoop::engine_heat_kw`]).
    pub(crate) heat_kw: f64,
    /// Vehicle speed: ram air through the radiator.
    pub(crate) speed_ms: f64,
    pub(crate) ambient_c: f64,
    /// Engine load, 0 to 1.
    pub(crate) load: f64,
    /// A stopped engine turns neither its pump nor its fan.
    pub(crate) running: bool,
}

/// The engine's coolant, oil and fuel temperatures and the parts that set them.
#[derive(Clone, Debug)]
pub(crate) struct CoolingLoop {
    pub(crate) coolant_c: f64,
    pub(crate) oil_c: f64,
    pub(crate) fuel_c: f64,
    /// Thermostat opening, 0 (closed) to 1; the wax takes its time.
    pub(crate) thermostat: f64,
    /// Fan clutch engagement, 0 to 1.
    pub(crate) fan: f64,
    /// Whether the clutch's bimetal calls for the fan (with hysteresis).
    fan_called: bool,
    /// Coolant in the system, 1 = full.
    pub(crate) level: f64,
}

impl CoolingLoop {
    /// An engine that stood long enough to reach the air temperature.
    pub(crate) fn cold(ambient_c: f64) -> Self {
        CoolingLoop {
            coolant_c: ambient_c,
            oil_c: ambient_c,
            fuel_c: ambient_c,
            thermostat: 0.0,
            fan: 0.0,
            fan_called: false,
            level: 1.0,
        }
    }

    pub(crate) fn fan_kw(&self) -> f64 {
        self.fan * FAN_KW
    }

    /// Heat the engine puts into its coolant: most of the waste heat of the work it does
    /// plus friction that grows with engine speed (which is what keeps an idling engine warm).
    pub(crate) fn engine_heat_kw(power_kw: f64, rpm: f64, running: bool) -> f64 {
        if running {
            0.72 * power_kw + 0.012 * rpm
        } else {
            0.0
        }
    }

    /// Advances by `dt` seconds.
    pub(crate) fn step(&mut self, dt: f64, duty: Duty, faults: CoolingFaults) {
        let Duty {
            heat_kw,
            speed_ms,
            ambient_c,
            load,
            running,
        } = duty;
        let wants = if faults.thermostat_stuck_closed {
            0.0
        } else {
            thermostat_target(self.coolant_c)
        };
        self.thermostat += (wants - self.thermostat) * (dt / 20.0).min(1.0);

        if self.coolant_c >= FAN_ON_C {
            self.fan_called = true;
        } else if self.coolant_c <= FAN_OFF_C {
            self.fan_called = false;
        }
        let fan_target = if self.fan_called && !faults.fan_failed && running {
            1.0
        } else {
            0.0
        };
        self.fan += (fan_target - self.fan) * (dt / 4.0).min(1.0);

        // Air through the radiator: a little natural draught, ram air from driving, and
        // the fan. Heat transfer grows sub-linearly with air speed.
        let airflow_ms = 0.5 + 0.55 * speed_ms + 12.0 * self.fan;
        let radiator_kw_per_k = 0.45 * airflow_ms.powf(0.8);
        // A closed thermostat still lets a trickle through its bleed hole.
        let flow = 0.03 + 0.97 * self.thermostat;
        // Below about 80 % the pump starts drawing air and circulation collapses; a
        // stopped engine turns no pump, and only a thermosiphon trickle remains.
        let pump = if running { 1.0 } else { 0.1 };
        let circulation = pump * ((self.level - 0.35) / 0.45).clamp(0.0, 1.0);
        let above_air = self.coolant_c - ambient_c;
        let rejected_kw = radiator_kw_per_k * flow * circulation * above_air;
        let lost_kw = BLOCK_LOSS_KW_PER_K * above_air;
        let capacity = ENGINE_METAL_KJ_PER_K + COOLANT_KJ_PER_K * self.level;
        self.coolant_c += (heat_kw - rejected_kw - lost_kw) * dt / capacity;
        if faults.leak {
            self.level = (self.level - dt / LEAK_DRAIN_S).max(0.0);
        }

        // Oil runs a few degrees over the coolant, more under load, and lags it.
        let oil_target = self.coolant_c + if running { 3.0 + 12.0 * load } else { 0.0 };
        self.oil_c += (oil_target - self.oil_c) * dt / 240.0;
        // Fuel returned from the injectors warms the fuel tank slowly above the air.
        let fuel_target = ambient_c + if running { 3.0 + 0.15 * above_air } else { 0.0 };
        self.fuel_c += (fuel_target - self.fuel_c) * dt / 900.0;
    }

    /// A repaired leak: the system is topped up.
    pub(crate) fn refill(&mut self) {
        self.level = 1.0;
    }
}

/// The weather: a daily temperature curve (coldest before dawn, warmest mid-afternoon)
/// with gusty wander on top, and the sun.
#[derive(Clone, Debug)]
pub(crate) struct Weather {
    rng: Rng,
    wander: Wander,
    mean_c: f64,
    swing_c: f64,
    utc_offset_s: i64,
}

impl Weather {
    pub(crate) fn new(seed: u64, mean_c: f64, swing_c: f64, utc_offset_s: i64) -> Self {
        Weather {
            rng: Rng::new(seed, Stream::Ambient),
            wander: Wander::new(0.3, 60.0),
            mean_c,
            swing_c,
            utc_offset_s,
        }
    }

    /// Local solar hour, 0 to 24, at a wall time.
    fn hour(&self, wall_us: i64) -> f64 {
        let local_s = wall_us.div_euclid(1_000_000) + self.utc_offset_s;
        local_s.rem_euclid(86_400) as f64 / 3600.0
    }

    /// The air temperature the day's curve gives at a wall time, without the wander.
    pub(crate) fn diurnal_c(&self, wall_us: i64) -> f64 {
        let phase = std::f64::consts::TAU * (self.hour(wall_us) - 15.0) / 24.0;
        self.mean_c + self.swing_c * phase.cos()
    }

    /// Sunshine on the tank, 0 (night) to 1 (noon-ish), a plain daylight arch.
    pub(crate) fn sun(&self, wall_us: i64) -> f64 {
        let phase = std::f64::consts::TAU * (self.hour(wall_us) - 13.0) / 24.0;
        phase.cos().max(0.0)
    }

    /// Advances the wander by `dt` and returns the air temperature at `wall_us`.
    pub(crate) fn air_c(&mut self, dt: f64, wall_us: i64) -> f64 {
        self.diurnal_c(wall_us) + self.wander.step(dt, &mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the loop at a steady duty for `secs` and returns the peak coolant temperature
    /// over the last half and the final state.
    fn steady(
        mut c: CoolingLoop,
        power_kw: f64,
        rpm: f64,
        kmh: f64,
        ambient: f64,
        secs: f64,
        faults: CoolingFaults,
    ) -> (f64, CoolingLoop) {
        let dt = 0.05;
        let steps = (secs / dt) as usize;
        let mut peak = f64::MIN;
        for k in 0..steps {
            let heat = CoolingLoop::engine_heat_kw(power_kw + c.fan_kw(), rpm, true);
            let load = (power_kw / 330.0).min(1.0);
            let duty = Duty {
                heat_kw: heat,
                speed_ms: kmh / 3.6,
                ambient_c: ambient,
                load,
                running: true,
            };
            c.step(dt, duty, faults);
            if k > steps / 2 {
                peak = peak.max(c.coolant_c);
            }
        }
        (peak, c)
    }

    #[test]
    fn the_thermostat_opens_between_82_and_92_degrees() {
        assert_eq!(thermostat_target(81.9), 0.0);
        assert!(thermostat_target(87.0) > 0.4 && thermostat_target(87.0) < 0.6);
        assert_eq!(thermostat_target(92.0), 1.0);
    }

    #[test]
    fn a_warm_engine_holds_its_setpoint_from_idle_to_a_hard_climb() {
        let ok = CoolingFaults::default();
        // (engine kW, rpm, km/h, ambient degC)
        let duties = [
            (4.0, 600.0, 0.0, 15.0),
            (4.0, 600.0, 0.0, 35.0),
            (98.0, 1300.0, 80.0, 20.0),
            (200.0, 1400.0, 70.0, 30.0),
            (330.0, 1500.0, 60.0, 30.0),
        ];
        for (kw, rpm, kmh, amb) in duties {
            // Warmed up already: an idling diesel alone takes hours to get there.
            let mut warm = CoolingLoop::cold(amb);
            (warm.coolant_c, warm.oil_c) = (85.0, 85.0);
            let (peak, c) = steady(warm, kw, rpm, kmh, amb, 3600.0, ok);
            assert!(
                (82.0..=95.5).contains(&peak) && c.coolant_c > 80.0,
                "{kw} kW at {kmh} km/h in {amb} degC air: peak {peak:.1}, end {:.1}",
                c.coolant_c
            );
        }
    }

    #[test]
    fn each_cooling_fault_overheats_where_a_healthy_loop_copes() {
        // A full-power climb at 40 km/h on a hot afternoon needs the fan.
        let climb = (330.0, 1600.0, 40.0, 35.0);
        let faults = [
            CoolingFaults {
                fan_failed: true,
                ..Default::default()
            },
            CoolingFaults {
                thermostat_stuck_closed: true,
                ..Default::default()
            },
            CoolingFaults {
                leak: true,
                ..Default::default()
            },
        ];
        let (kw, rpm, kmh, amb) = climb;
        let warm = steady(
            CoolingLoop::cold(amb),
            98.0,
            1300.0,
            80.0,
            amb,
            1800.0,
            Default::default(),
        )
        .1;
        let (healthy, with_fan) =
            steady(warm.clone(), kw, rpm, kmh, amb, 900.0, Default::default());
        assert!(healthy <= 95.5, "healthy peak {healthy:.1}");
        assert!(
            with_fan.fan > 0.0 || with_fan.coolant_c < FAN_ON_C,
            "the fan was needed"
        );
        for f in faults {
            let (peak, _) = steady(warm.clone(), kw, rpm, kmh, amb, 900.0, f);
            assert!(peak > 105.0, "{f:?}: peak {peak:.1}");
        }
    }

    #[test]
    fn the_day_is_warmest_mid_afternoon_and_the_sun_sets() {
        let w = Weather::new(1, 18.0, 7.0, 0);
        let day = 1_781_481_600_000_000; // 2026-06-15 00:00 UTC
        let at = |h: i64| day + h * 3_600_000_000;
        assert!(w.diurnal_c(at(15)) > w.diurnal_c(at(10)));
        assert!(w.diurnal_c(at(10)) > w.diurnal_c(at(4)));
        assert!((w.diurnal_c(at(15)) - 25.0).abs() < 1e-9);
        assert_eq!(w.sun(at(2)), 0.0);
        assert!(w.sun(at(13)) > 0.99);
        // Local time shifts the curve: 15:00 at UTC+2 is 13:00 UTC.
        let east = Weather::new(1, 18.0, 7.0, 7200);
        assert!((east.diurnal_c(at(13)) - 25.0).abs() < 1e-9);
    }
}
