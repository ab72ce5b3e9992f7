//! The cargo-tank compartments: gasoline in an aluminium shell, trading heat with the air
//! and the sun through its skin (or its insulation and refrigeration unit), heated by a
//! fire when the scenario says so, and boiling off through its vent past its boiling point.
//!
//! A lumped thermal mass integrated with explicit Euler at the physics step, like
//! [`super::thermal`]; it owns no clock and no randomness, and never looks at a fault list:
//! the caller says what the compartment is exposed to.

/// A full compartment: about 10 700 l of gasoline (8 t at 2.1 kJ/kg K) in its share of
/// the aluminium shell (2 t at 0.9 kJ/kg K).
const CARGO_KG: f64 = 8_000.0;
const CARGO_KJ_PER_K: f64 = 16_800.0;
const SHELL_KJ_PER_K: f64 = 1_800.0;
/// Heat of vaporisation of gasoline, kJ/kg (300-400 across blends).
const CARGO_LATENT_KJ_PER_KG: f64 = 350.0;
/// A fire or a hot external source on a compartment.
const EXTERNAL_HEAT_KW: f64 = 1_000.0;
/// Where the cargo boils, degC, against the share of it already boiled off: summer
/// gasoline (EN 228, vapour pressure at most 60 kPa) starts to boil near 45 degC at the
/// pressure its vent holds, is 46-71 % evaporated at 100 degC and at least 75 % at 150,
/// and has all boiled by 210 degC (its final boiling point). The light ends leave first,
/// so the boiling point climbs as the load boils away.
const BOILING_CURVE: [(f64, f64); 5] = [
    (0.0, 45.0),
    (0.34, 70.0),
    (0.58, 100.0),
    (0.85, 150.0),
    (1.0, FINAL_BOILING_C),
];
/// The cargo's final boiling point: no compartment's contents get hotter than this.
pub(crate) const FINAL_BOILING_C: f64 = 210.0;

/// What one compartment is exposed to during a step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TankExposure {
    pub(crate) ambient_c: f64,
    pub(crate) sun: f64,
    /// Refrigeration setpoint, if the tank is a refrigerated one.
    pub(crate) setpoint_c: Option<f64>,
    pub(crate) external_heat: bool,
    pub(crate) insulation_lost: bool,
}

/// Where the cargo boils once `boiled` (0 to 1) of it has boiled off.
pub(crate) fn boiling_c(boiled: f64) -> f64 {
    let boiled = boiled.clamp(0.0, 1.0);
    let mut below = BOILING_CURVE[0];
    for point in BOILING_CURVE {
        if boiled <= point.0 {
            let share = (boiled - below.0) / (point.0 - below.0).max(f64::EPSILON);
            return below.1 + share * (point.1 - below.1);
        }
        below = point;
    }
    FINAL_BOILING_C
}

/// One compartment's contents: their temperature and how much of the load has boiled off.
///
/// A tank heated past its cargo's boiling point does not heat its cargo further: the heat
/// boils it, and the vapour leaves through the compartment's pressure relief vent, so the
/// temperature follows the boiling curve (a slow climb, not the steady rise below it). A
/// compartment boiled dry in a fire is a shell about to fail, which this model does not
/// describe: it holds the final boiling point, reached about an hour into a fire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Compartment {
    pub(crate) temp_c: f64,
    /// The share of the load boiled off through the vent, 0 to 1.
    pub(crate) boiled: f64,
}

impl Compartment {
    pub(crate) fn loaded(temp_c: f64) -> Self {
        Compartment {
            temp_c,
            boiled: 0.0,
        }
    }

    /// Advances the contents by `dt` seconds.
    pub(crate) fn step(&mut self, dt: f64, x: TankExposure) {
        let capacity = SHELL_KJ_PER_K + CARGO_KJ_PER_K * (1.0 - self.boiled);
        let heated = self.temp_c + net_kw(self.temp_c, x) * dt / capacity;
        let boils_at = boiling_c(self.boiled);
        if heated <= boils_at {
            self.temp_c = heated;
            return;
        }
        // What would heat the cargo past its boiling point boils it off instead.
        let surplus_kj = (heated - boils_at) * capacity;
        self.boiled = (self.boiled + surplus_kj / (CARGO_LATENT_KJ_PER_KG * CARGO_KG)).min(1.0);
        self.temp_c = boiling_c(self.boiled);
    }
}

/// Heat into one compartment, kW.
fn net_kw(temp_c: f64, x: TankExposure) -> f64 {
    let refrigerated = x.setpoint_c.is_some();
    // An aluminium fuel tank couples to the air through its skin; a refrigerated one is
    // insulated. A damaged shell couples about ten times as strongly either way.
    let ua_kw_per_k = match (x.insulation_lost, refrigerated) {
        (true, _) => 3.0,
        (false, true) => 0.08,
        (false, false) => 0.3,
    };
    let solar_kw = x.sun
        * if refrigerated && !x.insulation_lost {
            0.6
        } else {
            3.0
        };
    // The refrigeration unit runs on the tank's insulation; when that is lost, so is it.
    let cooling_kw = match x.setpoint_c {
        Some(sp) if !x.insulation_lost => (20.0 * (temp_c - sp)).clamp(0.0, 6.0),
        _ => 0.0,
    };
    let external_kw = if x.external_heat {
        EXTERNAL_HEAT_KW
    } else {
        0.0
    };
    ua_kw_per_k * (x.ambient_c - temp_c) + solar_kw + external_kw - cooling_kw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compartments_follow_the_air_slowly_unless_something_is_wrong() {
        let base = TankExposure {
            ambient_c: 30.0,
            sun: 0.0,
            setpoint_c: None,
            external_heat: false,
            insulation_lost: false,
        };
        let minutes = |x: TankExposure, start: f64, min: f64| {
            let mut cargo = Compartment::loaded(start);
            for _ in 0..(min * 1200.0) as usize {
                cargo.step(0.05, x);
            }
            cargo.temp_c
        };
        let plain = minutes(base, 10.0, 10.0) - 10.0;
        assert!(
            plain > 0.0 && plain < 0.2,
            "plain tank moved {plain:.3} in 10 min"
        );
        let fire = minutes(
            TankExposure {
                external_heat: true,
                ..base
            },
            10.0,
            1.0,
        ) - 10.0;
        assert!(
            fire > 2.0 && fire < 6.0,
            "fire heated {fire:.2} degC in a minute"
        );
        let fridge = TankExposure {
            setpoint_c: Some(4.0),
            ..base
        };
        let held = minutes(fridge, 4.0, 60.0);
        assert!((held - 4.0).abs() < 0.3, "refrigerated tank at {held:.2}");
        let lost = minutes(
            TankExposure {
                insulation_lost: true,
                ..fridge
            },
            4.0,
            20.0,
        );
        assert!(
            lost - 4.0 > 3.0,
            "lost insulation only warmed {:.2}",
            lost - 4.0
        );
    }

    #[test]
    fn the_boiling_point_climbs_through_the_gasoline_curve() {
        assert_eq!(boiling_c(0.0), 45.0);
        assert!((boiling_c(0.46) - 85.0).abs() < 1e-9, "{}", boiling_c(0.46));
        assert_eq!(boiling_c(0.85), 150.0);
        assert_eq!(boiling_c(1.0), FINAL_BOILING_C);
        assert_eq!(boiling_c(1.5), FINAL_BOILING_C);
        let mut last = f64::MIN;
        for i in 0..=100 {
            let b = boiling_c(f64::from(i) / 100.0);
            assert!(b >= last, "the curve falls at {i} %");
            last = b;
        }
    }

    #[test]
    fn a_fire_boils_the_cargo_off_and_never_heats_it_past_its_final_boiling_point() {
        let fire = TankExposure {
            ambient_c: 25.0,
            sun: 1.0,
            setpoint_c: None,
            external_heat: true,
            insulation_lost: false,
        };
        let mut cargo = Compartment::loaded(15.0);
        // (temperature, share boiled off) at the end of each minute of three hours.
        let mut minutes = Vec::new();
        for _ in 0..180 {
            for _ in 0..1200 {
                cargo.step(0.05, fire);
            }
            minutes.push((cargo.temp_c, cargo.boiled));
        }
        let rise = |from: usize, to: usize| (minutes[to].0 - minutes[from].0) / (to - from) as f64;
        let heating = rise(0, 5);
        assert!((2.5..4.0).contains(&heating), "{heating:.2} degC/min");
        let boiling = minutes.iter().position(|m| m.1 > 0.0).unwrap();
        assert!((8..=12).contains(&boiling), "boiling from minute {boiling}");
        let boiling_rise = rise(boiling + 5, boiling + 25);
        assert!(
            boiling_rise < 0.7 * heating,
            "{boiling_rise:.2} degC/min while boiling"
        );
        let dry = minutes.iter().position(|m| m.1 >= 1.0).unwrap();
        assert!((45..=75).contains(&dry), "dry at minute {dry}");
        let peak = minutes.iter().map(|m| m.0).fold(f64::MIN, f64::max);
        assert!(peak <= FINAL_BOILING_C, "{peak:.1} degC");
        assert!(minutes[dry..].iter().all(|m| m.0 == FINAL_BOILING_C));
        // The fire out, the empty shell cools toward the air.
        let out = TankExposure {
            external_heat: false,
            ..fire
        };
        for _ in 0..1200 * 30 {
            cargo.step(0.05, out);
        }
        assert!(cargo.temp_c < FINAL_BOILING_C - 30.0, "{:.1}", cargo.temp_c);
    }
}
