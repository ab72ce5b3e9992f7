//! The `[detect]` section: the model to run, the hard limits per signal and cargo class,
//! the rules' parameters and the alert timing. [`DetectConfig::check`] is pure (no file is
//! opened): the model's path is resolved once, at start, by whoever loads it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::window;
use crate::duration;
use crate::signals::{COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE, tank_compartment};
use crate::vehicle::CargoClass;

/// The engine signals the detector always watches (with every compartment's tank).
pub(super) const BUILT_IN: [&str; 3] = [COOLANT_TEMPERATURE, OIL_TEMPERATURE, FUEL_TEMPERATURE];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    #[serde(with = "duration")]
    pub debounce: Duration,
    /// degC back inside a limit before an alert clears.
    pub hysteresis: f64,
    /// The least time between a clear and the next raise of the same (signal, kind).
    #[serde(with = "duration")]
    pub realert: Duration,
    /// The forecaster: `"builtin"` (the model built into the agent), or the path of a model
    /// card (JSON) with its ONNX file beside it; `"none"` (or `None`): rules only.
    /// Never part of the shadow's tuning: models arrive through jobs, verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    pub engine: EngineLimits,
    pub tank: BTreeMap<CargoClass, Limit>,
    pub rules: RulesConfig,
    /// Signals watched beside the built-in ones: any the DBC decodes or the serial node
    /// sends (`[[detect.watch]]`). The model card's signals are watched too, without one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<WatchConfig>,
}

/// One more signal to watch, with its own limits and rules (`[[detect.watch]]`). In the
/// signal's own unit: nothing here assumes degC.
///
/// It gets the rules that need no physics of their own (dropout, sensor fault), and those
/// this entry sets: out of range, a high limit (per cargo class or for any), rate of rise,
/// stuck and spikes. The model judges it too when the running model's card lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Its name as the decoder gives it (a VSS name from the DBC or the serial node).
    pub signal: String,
    /// Its unit, for people reading the config and the alerts (`"kPa"`, `"%"`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// What the sensor can read, `[low, high]`: outside it a value is out of range.
    pub range: [f64; 2],
    /// A warning and a critical level for every cargo...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// ...or per cargo class, which wins over `limit` for that class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cargo: BTreeMap<CargoClass, Limit>,
    /// A rise over the last 10 s faster than this, in units per minute, raises an alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise_per_minute: Option<f64>,
    /// A value that does not change at all for this long is stuck (for a signal whose
    /// sensor always moves a little; leave it out for one that may hold still).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stuck_after: Option<Duration>,
    /// A single tick that leaves both neighbours by at least this much and comes back is
    /// a spike (`detect.rules.spikes_to_raise` of them within `spike_window` raise it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike_jump: Option<f64>,
}

impl WatchConfig {
    /// The high limit for a cargo class: the class's own, else the one for every cargo.
    pub fn limit_for(&self, cargo: CargoClass) -> Option<Limit> {
        self.cargo.get(&cargo).copied().or(self.limit)
    }
}

/// The rules that run beside the model, per class of signal (engine, tank).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Rise over the last 10 s that raises an alert, degC per minute.
    pub engine_rise_per_minute: f64,
    pub tank_rise_per_minute: f64,
    /// A value that does not change at all for this long is stuck...
    #[serde(with = "duration")]
    pub stuck_after: Duration,
    /// ...for the engine's coarse signals only while the companion signal (coolant and oil
    /// watch each other) moved at least this many degC meanwhile.
    pub stuck_companion_move: f64,
    /// Where the thermostat starts to open, degC. From there up the thermostat (and above
    /// it the fan) regulate the coolant, and a healthy one holds still for minutes while
    /// the oil moves, so there it is taken for stuck only after `coolant_warm_stuck_after`
    /// (with the oil moving `stuck_companion_move` meanwhile, as below).
    pub coolant_thermostat_opens: f64,
    #[serde(with = "duration")]
    pub coolant_warm_stuck_after: Duration,
    /// Without a companion (a truck that sends no oil temperature) the coolant is judged
    /// against the engine instead, as OBD's coolant rationality monitors do (P0116, P0128):
    /// a warm coolant held still for `coolant_warm_stuck_after` while the engine speed moved
    /// at least this many rpm is stuck...
    pub stuck_engine_move: f64,
    /// ...and a cold one (below `coolant_cold` degC) that rose less than
    /// `coolant_warmup_rise` degC over `coolant_warmup_after` while the engine ran under
    /// load all along (never silent nor below 400 rpm, `engine_loaded_rpm` on average) has
    /// failed: such an engine warms its coolant by degrees a minute.
    pub coolant_cold: f64,
    #[serde(with = "duration")]
    pub coolant_warmup_after: Duration,
    pub coolant_warmup_rise: f64,
    pub engine_loaded_rpm: f64,
    /// A coolant above this many degC for `coolant_high_after` is held above its normal
    /// band: the thermostat is wide open and the fan no longer holds it (a failed fan).
    pub coolant_high_normal: f64,
    #[serde(with = "duration")]
    pub coolant_high_after: Duration,
    /// No usable value for this long raises a dropout (a sensor fault if it came flagged).
    #[serde(with = "duration")]
    pub dropout_after: Duration,
    /// What the sensors can physically read, degC; outside it a value is out of range.
    pub engine_range: [f64; 2],
    pub tank_range: [f64; 2],
    /// A tank whose temperature, fitted over the last 10 minutes, moves toward the air
    /// faster than this fraction of the gap per hour (the inverse of its time constant)
    /// has lost its insulation...
    pub tank_exchange_per_hour: f64,
    /// ...judged only while the air is at least this many degC away, on average.
    pub tank_exchange_gap: f64,
    /// A spike is one tick that departs from both its neighbours by at least this many
    /// degC the same way while they agree within half of it: a loose connector or EMI, not
    /// a temperature (a real step stays there, a fast steady rise passes between its
    /// neighbours)...
    pub spike_jump: f64,
    /// ...and this many spikes within the last `spike_window` raise a warning, which clears
    /// once none is left in the window.
    pub spikes_to_raise: u32,
    #[serde(with = "duration")]
    pub spike_window: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            engine_rise_per_minute: 42.0,
            tank_rise_per_minute: 6.0,
            stuck_after: Duration::from_secs(60),
            stuck_companion_move: 11.0,
            coolant_thermostat_opens: 82.0,
            coolant_warm_stuck_after: Duration::from_secs(540),
            stuck_engine_move: 800.0,
            coolant_cold: 35.0,
            coolant_warmup_after: Duration::from_secs(600),
            coolant_warmup_rise: 2.0,
            engine_loaded_rpm: 1000.0,
            coolant_high_normal: 100.0,
            coolant_high_after: Duration::from_secs(3),
            dropout_after: Duration::from_secs(5),
            engine_range: [-40.0, 150.0],
            tank_range: [-40.0, 90.0],
            tank_exchange_per_hour: 0.3,
            tank_exchange_gap: 5.0,
            spike_jump: 10.0,
            spikes_to_raise: 1,
            spike_window: Duration::from_secs(600),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineLimits {
    pub coolant_warning: f64,
    pub coolant_critical: f64,
    pub oil_warning: f64,
    pub oil_critical: f64,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            coolant_warning: 105.0,
            coolant_critical: 110.0,
            oil_warning: 125.0,
            oil_critical: 135.0,
        }
    }
}

/// A warning and a critical level, in degC.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub warning: f64,
    pub critical: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        let limit = |warning, critical| Limit { warning, critical };
        DetectConfig {
            debounce: Duration::from_secs(2),
            hysteresis: 2.0,
            realert: Duration::from_secs(60),
            model: Some(super::model::BUILTIN.into()),
            engine: EngineLimits::default(),
            tank: BTreeMap::from([
                (CargoClass::Gasoline, limit(40.0, 50.0)),
                (CargoClass::Lpg, limit(45.0, 50.0)),
                (CargoClass::Naphtha, limit(40.0, 50.0)),
                (CargoClass::Empty, limit(60.0, 80.0)),
            ]),
            rules: RulesConfig::default(),
            watch: Vec::new(),
        }
    }
}

impl DetectConfig {
    /// Checks the values against each other and against the vehicle's cargo (which must
    /// have tank limits); returns the key and what is wrong. No I/O: the device shadow runs
    /// exactly this on every change.
    pub fn check(&self, cargo: CargoClass) -> Result<(), (&'static str, String)> {
        let rules = &self.rules;
        let window = rules_window();
        for (key, after) in [
            ("detect.rules.stuck_after", rules.stuck_after),
            (
                "detect.rules.coolant_warm_stuck_after",
                rules.coolant_warm_stuck_after,
            ),
            ("detect.rules.coolant_high_after", rules.coolant_high_after),
            (
                "detect.rules.coolant_warmup_after",
                rules.coolant_warmup_after,
            ),
            ("detect.rules.spike_window", rules.spike_window),
        ] {
            if after > window {
                return Err((
                    key,
                    format!(
                        "expected at most {} s (the rules see the last {} s), found {} s",
                        window.as_secs(),
                        window.as_secs(),
                        after.as_secs()
                    ),
                ));
            }
        }
        let engine = &self.engine;
        for limit in [
            Limit {
                warning: engine.coolant_warning,
                critical: engine.coolant_critical,
            },
            Limit {
                warning: engine.oil_warning,
                critical: engine.oil_critical,
            },
        ] {
            limit.check("detect.engine")?;
        }
        for limit in self.tank.values() {
            limit.check("detect.tank")?;
        }
        if !self.tank.contains_key(&cargo) {
            return Err((
                "detect.tank",
                format!(
                    "expected limits for the vehicle's cargo {:?}, found none",
                    cargo.to_string()
                ),
            ));
        }
        if self.hysteresis.is_nan() || self.hysteresis < 0.0 {
            return Err((
                "detect.hysteresis",
                format!("expected degC >= 0, found {}", self.hysteresis),
            ));
        }
        for (key, range) in [
            ("detect.rules.engine_range", rules.engine_range),
            ("detect.rules.tank_range", rules.tank_range),
        ] {
            if !(range[0].is_finite() && range[1].is_finite() && range[0] < range[1]) {
                return Err((
                    key,
                    format!("expected [low, high] with low < high, found {range:?}"),
                ));
            }
        }
        for (key, rate) in [
            (
                "detect.rules.engine_rise_per_minute",
                rules.engine_rise_per_minute,
            ),
            (
                "detect.rules.tank_rise_per_minute",
                rules.tank_rise_per_minute,
            ),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err((key, format!("expected degC per minute > 0, found {rate}")));
            }
        }
        if rules.dropout_after < Duration::from_secs(2)
            || rules.stuck_after < Duration::from_secs(10)
        {
            return Err((
                "detect.rules",
                format!(
                    "expected dropout_after >= 2s and stuck_after >= 10s (the window ticks at 1 Hz), found {:?} and {:?}",
                    rules.dropout_after, rules.stuck_after
                ),
            ));
        }
        if !(rules.spike_jump.is_finite() && rules.spike_jump > 0.0) {
            return Err((
                "detect.rules.spike_jump",
                format!("expected degC > 0, found {}", rules.spike_jump),
            ));
        }
        if rules.spikes_to_raise < 1 {
            return Err((
                "detect.rules.spikes_to_raise",
                format!("expected at least 1 spike, found {}", rules.spikes_to_raise),
            ));
        }
        // A spike needs its two neighbours: a window under 3 ticks could never hold one.
        if rules.spike_window < Duration::from_secs(3) {
            return Err((
                "detect.rules.spike_window",
                format!(
                    "expected at least 3s (a spike and its two neighbours at 1 Hz), found {:?}",
                    rules.spike_window
                ),
            ));
        }
        self.check_watch()
    }

    /// The `[[detect.watch]]` entries: each names a signal not watched already, once, with
    /// a sound range and levels.
    fn check_watch(&self) -> Result<(), (&'static str, String)> {
        const KEY: &str = "detect.watch";
        let mut seen = std::collections::HashSet::new();
        for entry in &self.watch {
            let name = entry.signal.as_str();
            if name.trim().is_empty() {
                return Err((KEY, "expected a signal name, found an empty one".into()));
            }
            if BUILT_IN.contains(&name) || tank_compartment(name).is_some() {
                return Err((
                    KEY,
                    format!(
                        "{name} is watched already (its limits are in detect.engine or detect.tank)"
                    ),
                ));
            }
            if !seen.insert(name) {
                return Err((KEY, format!("{name} is listed twice")));
            }
            let [low, high] = entry.range;
            if !(low.is_finite() && high.is_finite() && low < high) {
                return Err((
                    KEY,
                    format!(
                        "{name}: expected range [low, high] with low < high, found {:?}",
                        entry.range
                    ),
                ));
            }
            for limit in entry.limit.iter().chain(entry.cargo.values()) {
                limit.check(KEY)?;
            }
            for (what, value) in [
                ("rise_per_minute", entry.rise_per_minute),
                ("spike_jump", entry.spike_jump),
            ] {
                if value.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                    return Err((
                        KEY,
                        format!(
                            "{name}: expected {what} > 0, found {}",
                            value.unwrap_or(0.0)
                        ),
                    ));
                }
            }
            if let Some(after) = entry.stuck_after {
                let window = rules_window();
                if after < Duration::from_secs(10) || after > window {
                    return Err((
                        KEY,
                        format!(
                            "{name}: expected stuck_after from 10 s to {} s (the rules see the last {} s), found {} s",
                            window.as_secs(),
                            window.as_secs(),
                            after.as_secs()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The signals `[[detect.watch]]` names, in order: which signals are watched beside
    /// the built-in ones (a change of these waits for a restart).
    pub fn watch_signals(&self) -> Vec<&str> {
        self.watch.iter().map(|w| w.signal.as_str()).collect()
    }

    /// The tank limits for a cargo (present once [`DetectConfig::check`] passed for it).
    pub fn tank_limit(&self, cargo: CargoClass) -> Option<Limit> {
        self.tank.get(&cargo).copied()
    }
}

/// How far back the rules see: the grid's whole history.
fn rules_window() -> Duration {
    window::TICK * window::HISTORY as u32
}

impl Limit {
    fn check(&self, key: &'static str) -> Result<(), (&'static str, String)> {
        if self.warning.is_finite() && self.critical.is_finite() && self.warning < self.critical {
            Ok(())
        } else {
            Err((
                key,
                format!(
                    "expected a warning level below the critical level, found warning {} and critical {}",
                    self.warning, self.critical
                ),
            ))
        }
    }
}
