//! One typed configuration, checked once at start.
//!
//! Two stages, as in ripgrep: parse the TOML into these structs (unknown keys refused, every
//! field with a default), then [`Config::validate`] the values against each other. A bad file
//! fails here with the file, the key, what was expected and what was found, before any task
//! starts; nothing later re-checks or re-reads the file.
//!
//! `default.toml` beside this file is the documented default: `vigil print-default-config`
//! prints it, and a test holds it equal to `Config::default()`.

pub(crate) mod duration;
pub mod tuning;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decode::dbc::DbcConfig;
use crate::source::can::CanConfig;
use crate::source::replay::ReplayConfig;
use crate::source::serial::SerialConfig;
use crate::spool::{FlushPolicy, SpoolConfig, WriteMode};
use crate::uplink::UplinkConfig;

/// The commented default configuration.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub vehicle: VehicleConfig,
    pub source: SourceConfig,
    /// The DBC that drives J1939 decoding, and its signal names in VSS.
    pub dbc: DbcConfig,
    pub detect: DetectConfig,
    pub batch: BatchConfig,
    pub alarm: AlarmConfig,
    /// The store-and-forward spool; used when `[uplink]` is configured.
    pub spool: SpoolSection,
    /// The broker the agent publishes to; `None` (no `[uplink]` table) keeps everything on
    /// the truck.
    pub uplink: Option<UplinkConfig>,
    pub shutdown: ShutdownConfig,
}

/// The `[spool]` section (see the spool module for what each bound means).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// The spool directory. When absent: `$XDG_STATE_HOME/vigil/spool/<vehicle.id>`, else
    /// `~/.local/state/vigil/spool/<vehicle.id>`, else under the system's temp directory.
    pub path: Option<PathBuf>,
    /// Cap on the bytes of pending records; the oldest readings are evicted first.
    pub max_bytes: u64,
    /// Cap on the bytes of pending alerts (part of `max_bytes`).
    pub max_alert_bytes: u64,
    /// Flush (fsync) at least this often while records are unflushed...
    #[serde(with = "duration")]
    pub flush_every: Duration,
    /// ...and after this many appends; alerts are flushed at once.
    pub flush_every_records: u64,
    /// Write readings to flash only while the link is down (saves flash wear; a power cut
    /// can then lose the readings not yet acknowledged).
    pub write_only_while_offline: bool,
}

impl Default for SpoolSection {
    fn default() -> Self {
        let spool = SpoolConfig::new("");
        SpoolSection {
            path: None,
            max_bytes: spool.max_bytes,
            max_alert_bytes: spool.max_alert_bytes,
            flush_every: spool.flush.every,
            flush_every_records: spool.flush.every_records,
            write_only_while_offline: false,
        }
    }
}

impl SpoolSection {
    /// The spool's settings for this vehicle, the directory resolved.
    pub fn spool_config(&self, vehicle_id: &str, max_in_flight: usize) -> SpoolConfig {
        let dir = self.path.clone().unwrap_or_else(|| {
            let state = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(std::env::temp_dir);
            state.join("vigil/spool").join(vehicle_id)
        });
        SpoolConfig {
            max_bytes: self.max_bytes,
            max_alert_bytes: self.max_alert_bytes,
            max_in_flight,
            write_mode: if self.write_only_while_offline {
                WriteMode::OnlyWhileOffline { max_unstored: 64 }
            } else {
                WriteMode::Always
            },
            flush: FlushPolicy {
                every: self.flush_every,
                every_records: self.flush_every_records,
                alerts_at_once: true,
            },
            ..SpoolConfig::new(dir)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VehicleConfig {
    /// Thing name on AWS IoT Core and MQTT client id.
    pub id: String,
    pub cargo: CargoClass,
    /// Cargo-tank compartments with a probe, 1-8.
    pub compartments: u8,
}

/// What the cargo tank carries; it selects the tank limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CargoClass {
    Gasoline,
    Lpg,
    Naphtha,
    Empty,
}

impl fmt::Display for CargoClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CargoClass::Gasoline => "gasoline",
            CargoClass::Lpg => "lpg",
            CargoClass::Naphtha => "naphtha",
            CargoClass::Empty => "empty",
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// The simulated truck; `None` when the table is absent.
    pub simulator: Option<SimulatorConfig>,
    /// A candump log replayed as if it were the bus.
    pub replay: Option<ReplayConfig>,
    /// SocketCAN interfaces.
    pub can: Option<CanConfig>,
    /// Serial ports with a tank sensor node, one `[[source.serial]]` table each.
    pub serial: Vec<SerialConfig>,
}

impl SourceConfig {
    fn is_empty(&self) -> bool {
        self.simulator.is_none()
            && self.replay.is_none()
            && self.can.is_none()
            && self.serial.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    pub seed: u64,
    pub scenario: String,
    #[serde(with = "duration")]
    pub fault_at: Duration,
    /// Times real time; 0 means as fast as the pipeline takes it.
    pub speed: f64,
}

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
            coolant_high_normal: 95.5,
            coolant_high_after: Duration::from_secs(3),
            dropout_after: Duration::from_secs(5),
            engine_range: [-40.0, 150.0],
            tank_range: [-40.0, 90.0],
            tank_exchange_per_hour: 0.3,
            tank_exchange_gap: 5.0,
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

/// A warning and a critical level, in degC.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub warning: f64,
    pub critical: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub max_readings: usize,
    #[serde(with = "duration")]
    pub max_age: Duration,
}

/// The cab's alarm hardware. Each device is optional: absent means the truck has none, and
/// the alarm still keeps its state (the demo shows it on the terminal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmConfig {
    /// How long the acknowledge button must read steady before a press counts.
    #[serde(with = "duration")]
    pub button_debounce: Duration,
    /// The buzzer's GPIO line (driven high to sound).
    pub buzzer: Option<GpioLine>,
    /// The acknowledge button's GPIO line (reads high, after `active_low`, while pressed).
    pub button: Option<GpioLine>,
    /// An SSD1306-class 128x64 OLED on an I2C bus.
    pub display: Option<I2cDisplay>,
}

/// One line of a GPIO character device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// The chip's character device, such as `/dev/gpiochip0`.
    pub chip: PathBuf,
    /// The line's offset on that chip (see `gpioinfo`).
    pub line: u32,
    /// The line is wired inverted: the kernel flips every level.
    #[serde(default)]
    pub active_low: bool,
}

/// A display on an i2c-dev bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I2cDisplay {
    /// The bus device, such as `/dev/i2c-1`.
    pub i2c: PathBuf,
    /// The display's 7-bit address: 0x3C for most modules, 0x3D with the address jumper.
    #[serde(default = "I2cDisplay::default_address")]
    pub address: u8,
}

impl I2cDisplay {
    fn default_address() -> u8 {
        0x3C
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    #[serde(with = "duration")]
    pub deadline: Duration,
}

impl Default for VehicleConfig {
    fn default() -> Self {
        VehicleConfig {
            id: "vigil-demo-truck".into(),
            cargo: CargoClass::Gasoline,
            compartments: 3,
        }
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            seed: 1,
            scenario: "normal".into(),
            fault_at: Duration::from_secs(600),
            speed: 1.0,
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        let limit = |warning, critical| Limit { warning, critical };
        DetectConfig {
            debounce: Duration::from_secs(2),
            hysteresis: 2.0,
            realert: Duration::from_secs(60),
            model: Some(crate::detect::model::BUILTIN.into()),
            engine: EngineLimits::default(),
            tank: BTreeMap::from([
                (CargoClass::Gasoline, limit(40.0, 50.0)),
                (CargoClass::Lpg, limit(45.0, 50.0)),
                (CargoClass::Naphtha, limit(40.0, 50.0)),
                (CargoClass::Empty, limit(60.0, 80.0)),
            ]),
            rules: RulesConfig::default(),
        }
    }
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

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_readings: 2000,
            max_age: Duration::from_secs(10),
        }
    }
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            button_debounce: Duration::from_millis(30),
            buzzer: None,
            button: None,
            display: None,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            deadline: Duration::from_secs(5),
        }
    }
}

/// A configuration that cannot be used, saying where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {file}, {location}key `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        /// `line N: ` when the parser knows it, else empty.
        location: String,
        key: String,
        message: String,
    },
}

impl Config {
    /// The embedded default: every default value and the simulated truck as the source.
    /// It is what `default.toml` says and what `vigil demo` runs.
    pub fn embedded_default() -> Config {
        Config {
            source: SourceConfig {
                simulator: Some(SimulatorConfig::default()),
                ..SourceConfig::default()
            },
            ..Config::default()
        }
    }

    /// Reads, parses and validates a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
        Config::parse(&text, file)
    }

    /// Parses and validates config text; `file` is only used in messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: String, message: String, span: Option<std::ops::Range<usize>>| {
            let location = span
                .map(|s| {
                    format!(
                        "line {}, ",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            ConfigError::Invalid {
                file: file.to_owned(),
                location,
                key,
                message,
            }
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| invalid("(document)".into(), e.message().trim().to_owned(), e.span()))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            invalid(key, inner.message().trim().to_owned(), inner.span())
        })?;
        config
            .validate()
            .map_err(|(key, message)| invalid(key.into(), message, None))?;
        Ok(config)
    }

    /// Checks values against each other; returns the key and what is wrong with it.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        let id = &self.vehicle.id;
        let id_ok = (1..=128).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'));
        if !id_ok {
            return Err((
                "vehicle.id",
                format!(
                    "expected 1-128 letters, digits, ':', '_' or '-' (an AWS IoT thing name), found {id:?}"
                ),
            ));
        }
        if !(1..=8).contains(&self.vehicle.compartments) {
            return Err((
                "vehicle.compartments",
                format!("expected 1 to 8, found {}", self.vehicle.compartments),
            ));
        }
        if self.source.is_empty() {
            return Err((
                "source",
                "expected at least one source ([source.simulator], [source.replay], [source.can] \
                 or [[source.serial]]), found none"
                    .into(),
            ));
        }
        if let Some(replay) = &self.source.replay {
            replay.check().map_err(|e| ("source.replay.speed", e))?;
        }
        if self
            .source
            .can
            .as_ref()
            .is_some_and(|c| c.interfaces.is_empty())
        {
            return Err((
                "source.can.interfaces",
                "expected at least one interface such as \"can0\", found none".into(),
            ));
        }
        if let Err(e) = self.dbc.load() {
            return Err(("dbc", e.to_string()));
        }
        if let Some(sim) = &self.source.simulator {
            if let Err(unknown) =
                crate::source::simulator::Scenario::from_name(&sim.scenario, sim.fault_at)
            {
                return Err(("source.simulator.scenario", unknown.to_string()));
            }
            if !sim.speed.is_finite() || sim.speed < 0.0 {
                return Err((
                    "source.simulator.speed",
                    format!(
                        "expected a factor >= 0 (0 = as fast as possible), found {}",
                        sim.speed
                    ),
                ));
            }
        }
        let rules = &self.detect.rules;
        for (key, after) in [
            ("detect.rules.stuck_after", rules.stuck_after),
            (
                "detect.rules.coolant_warm_stuck_after",
                rules.coolant_warm_stuck_after,
            ),
            ("detect.rules.coolant_high_after", rules.coolant_high_after),
        ] {
            let window = crate::detect::window::TICK * crate::detect::window::HISTORY as u32;
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
        let engine = &self.detect.engine;
        for (key, limit) in [
            (
                "detect.engine",
                Limit {
                    warning: engine.coolant_warning,
                    critical: engine.coolant_critical,
                },
            ),
            (
                "detect.engine",
                Limit {
                    warning: engine.oil_warning,
                    critical: engine.oil_critical,
                },
            ),
        ] {
            check_limit(key, &limit)?;
        }
        for limit in self.detect.tank.values() {
            check_limit("detect.tank", limit)?;
        }
        if !self.detect.tank.contains_key(&self.vehicle.cargo) {
            return Err((
                "detect.tank",
                format!(
                    "expected limits for the vehicle's cargo {:?}, found none",
                    self.vehicle.cargo.to_string()
                ),
            ));
        }
        if self.detect.hysteresis.is_nan() || self.detect.hysteresis < 0.0 {
            return Err((
                "detect.hysteresis",
                format!("expected degC >= 0, found {}", self.detect.hysteresis),
            ));
        }
        let rules = &self.detect.rules;
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
        if self.batch.max_readings == 0 {
            return Err(("batch.max_readings", "expected at least 1, found 0".into()));
        }
        if self.alarm.button_debounce > Duration::from_secs(1) {
            return Err((
                "alarm.button_debounce",
                format!(
                    "expected at most 1s (a press must count while the buzzer sounds), found {}",
                    humantime::format_duration(self.alarm.button_debounce)
                ),
            ));
        }
        let bad_address = (self.alarm.display.as_ref())
            .map(|d| d.address)
            .filter(|a| !(0x08..=0x77).contains(a));
        if let Some(address) = bad_address {
            return Err((
                "alarm.display.address",
                format!(
                    "expected a 7-bit I2C address from 0x08 to 0x77 (0x3C or 0x3D for an SSD1306), found {address:#04x}"
                ),
            ));
        }
        if self.batch.max_age.is_zero() {
            return Err((
                "batch.max_age",
                "expected a duration above 0, found 0s".into(),
            ));
        }
        let max_in_flight = self.uplink.as_ref().map_or(100, |u| u.max_in_flight);
        if let Err(e) = self
            .spool
            .spool_config(&self.vehicle.id, max_in_flight)
            .validate()
        {
            return Err(("spool", e.to_string()));
        }
        if let Some(uplink) = &self.uplink {
            uplink.check()?;
            uplink.check_files()?;
        }
        if self.shutdown.deadline.is_zero() {
            return Err((
                "shutdown.deadline",
                "expected a duration above 0, found 0s".into(),
            ));
        }
        Ok(())
    }

    /// The tank limits for this vehicle's cargo.
    pub fn tank_limit(&self) -> Limit {
        self.detect.tank[&self.vehicle.cargo]
    }
}

fn check_limit(key: &'static str, limit: &Limit) -> Result<(), (&'static str, String)> {
    if limit.warning.is_finite() && limit.critical.is_finite() && limit.warning < limit.critical {
        Ok(())
    } else {
        Err((
            key,
            format!(
                "expected a warning level below the critical level, found warning {} and critical {}",
                limit.warning, limit.critical
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("vigil.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_default_is_the_embedded_default() {
        assert_eq!(parse(DEFAULT_TOML).unwrap(), Config::embedded_default());
    }

    #[test]
    fn a_file_with_only_a_source_takes_every_other_default() {
        let config = parse("[source.simulator]\n").unwrap();
        assert_eq!(config, Config::embedded_default());
    }

    #[test]
    fn bad_files_name_the_file_the_key_what_was_expected_and_what_was_found() {
        let cases = [
            (
                "[vehicle]\nidd = \"x\"\n",
                "key `vehicle.idd`",
                "unknown field `idd`",
            ),
            (
                "[vehicle]\ncompartments = \"three\"\n",
                "key `vehicle.compartments`",
                "\"three\"",
            ),
            (
                "[detect]\ndebounce = \"ten seconds\"\n",
                "key `detect.debounce`",
                "found \"ten seconds\"",
            ),
            (
                "[vehicle]\ncargo = \"milk\"\n",
                "key `vehicle.cargo`",
                "milk",
            ),
            (
                "[vehicle]\ncompartments = 12\n",
                "key `vehicle.compartments`",
                "expected 1 to 8, found 12",
            ),
            (
                "[vehicle]\nid = \"truck 7\"\n",
                "key `vehicle.id`",
                "found \"truck 7\"",
            ),
            (
                "[detect.tank.lpg]\nwarning = 60.0\ncritical = 50.0\n",
                "key `detect.tank`",
                "warning 60 and critical 50",
            ),
            (
                "[alarm]\nbuzzer = { chip = \"/dev/gpiochip0\" }\n",
                "key `alarm.buzzer`",
                "missing field `line`",
            ),
            (
                "[alarm]\ndisplay = { i2c = \"/dev/i2c-1\", address = 0x80 }\n",
                "key `alarm.display.address`",
                "found 0x80",
            ),
            (
                "[alarm]\nbutton_debounce = \"2s\"\n",
                "key `alarm.button_debounce`",
                "found 2s",
            ),
        ];
        let broken = [
            ("[vehicle\n", "key `(document)`", "line 1"),
            ("", "key `source`", "expected at least one source"),
        ];
        let with_a_source =
            cases.map(|(text, key, detail)| (format!("{text}[source.simulator]\n"), key, detail));
        for (text, key, detail) in with_a_source
            .into_iter()
            .chain(broken.map(|(t, k, d)| (t.to_owned(), k, d)))
        {
            let message = parse(&text).unwrap_err();
            assert!(message.starts_with("config file vigil.toml, "), "{message}");
            assert!(message.contains(key), "{message:?} should name {key}");
            assert!(message.contains(detail), "{message:?} should say {detail}");
        }
    }

    #[test]
    fn alarm_hardware_is_optional_and_read_by_chip_line_and_bus() {
        assert_eq!(Config::embedded_default().alarm.buzzer, None);
        let config = parse(
            "[source.simulator]\n[alarm]\n\
             buzzer = { chip = \"/dev/gpiochip0\", line = 17 }\n\
             button = { chip = \"/dev/gpiochip1\", line = 4, active_low = true }\n\
             display = { i2c = \"/dev/i2c-1\" }\n",
        )
        .unwrap();
        let alarm = config.alarm;
        assert_eq!(
            alarm.buzzer,
            Some(GpioLine {
                chip: "/dev/gpiochip0".into(),
                line: 17,
                active_low: false
            })
        );
        assert_eq!(
            alarm.button.map(|b| (b.line, b.active_low)),
            Some((4, true))
        );
        assert_eq!(
            alarm.display,
            Some(I2cDisplay {
                i2c: "/dev/i2c-1".into(),
                address: 0x3C
            })
        );
    }

    #[test]
    fn a_missing_file_says_so() {
        let err = Config::load(Path::new("/nonexistent/vigil.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/vigil.toml"));
    }
}
