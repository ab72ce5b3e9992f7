//! The config file: one TOML file whose sections are the stages' own configs, composed
//! here. Checked in two steps, as ripgrep does it:
//!
//! 1. [`Config::parse`] and [`Config::check`]: the text into these structs (unknown keys
//!    refused, every field with a default), then every section's own pure `check()` and the
//!    checks across sections. No file is opened: a path is only a value here.
//! 2. [`Config::resolve`], once at start: reads the DBC, the model and the PEM files, and
//!    builds the stages and the sources the pipeline runs. Nothing later re-reads them.
//!
//! A bad file fails with the file, the key, what was expected and what was found, before any
//! task starts. `default.toml` beside this file is the documented default: `vigil
//! print-default-config` prints it, and a test holds it equal to
//! [`Config::embedded_default`].

mod logging;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_agent::alarm::AlarmConfig;
use vigil_agent::batch::BatchConfig;
use vigil_agent::decode::dbc::DbcConfig;
use vigil_agent::decode::table::SignalTable;
use vigil_agent::detect::model::{self, Model, ModelError};
use vigil_agent::detect::{
    DetectConfig, ModelStore, ModelStoreConfig, ModelUpdates, Running, watched_signals,
};
use vigil_agent::pipeline::{Outbound, ShutdownConfig, Stages};
use vigil_agent::reading::Signal;
use vigil_agent::security::SecurityConfig;
use vigil_agent::signals::tank_temperature;
use vigil_agent::source::{CanConfig, GpsConfig, ReplayConfig, SerialConfig, Source};
use vigil_agent::spool::SpoolSection;
use vigil_agent::telemetry::MetricsConfig;
use vigil_agent::uplink::UplinkConfig;
use vigil_agent::vehicle::VehicleConfig;
use vigil_sim::SimulatorConfig;
use vigil_sim::source::SimulatedTruck;

pub use logging::{LogConfig, LogFormat, LogLevel};

/// The commented default configuration.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The whole file, one field per section; each section's type belongs to its stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub vehicle: VehicleConfig,
    pub source: SourceConfig,
    /// The DBC that drives J1939 decoding, and its signal names in VSS.
    pub dbc: DbcConfig,
    /// The bus's intrusion monitor.
    pub security: SecurityConfig,
    pub detect: DetectConfig,
    /// Where models accepted from jobs are kept, so a restart runs them.
    pub model_store: ModelStoreConfig,
    pub batch: BatchConfig,
    pub alarm: AlarmConfig,
    /// The store-and-forward spool; used when `[uplink]` is configured.
    pub spool: SpoolSection,
    /// The broker the agent publishes to; `None` (no `[uplink]` table) keeps everything on
    /// the truck.
    pub uplink: Option<UplinkConfig>,
    pub shutdown: ShutdownConfig,
    /// The Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`); off by default.
    pub metrics: MetricsConfig,
    /// How `vigil run` logs.
    pub log: LogConfig,
}

/// The `[source]` section: the truck's own sources, and the simulated truck.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// The simulated truck; `None` when the table is absent.
    pub simulator: Option<SimulatorConfig>,
    /// A CAN log replayed as if it were the bus.
    pub replay: Option<ReplayConfig>,
    /// SocketCAN interfaces.
    pub can: Option<CanConfig>,
    /// Serial ports with a tank sensor node, one `[[source.serial]]` table each.
    pub serial: Vec<SerialConfig>,
    /// An NMEA 0183 GPS receiver on a serial port: the truck's position when the bus does
    /// not carry it. It only adds the position: alone it is not enough to run on.
    pub gps: Option<GpsConfig>,
}

impl SourceConfig {
    fn is_empty(&self) -> bool {
        self.simulator.is_none()
            && self.replay.is_none()
            && self.can.is_none()
            && self.serial.is_empty()
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

impl ConfigError {
    fn invalid(file: &Path, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: file.to_owned(),
            location: String::new(),
            key: key.to_owned(),
            message,
        }
    }
}

/// A config with everything it names read: the stages and the sources, ready to start.
pub struct Resolved {
    pub stages: Stages,
    pub sources: Vec<Box<dyn Source>>,
    /// Why the configured model could not be used, if it could not: the agent then runs the
    /// rules and limits alone (the driver's alarm never waits on a model), and
    /// `check-config` reports it.
    pub model_rejected: Option<ModelError>,
    /// Watched signals that none of the configured sources can give (a DBC mapping that
    /// leaves them out, no sensor node for the tanks): never judged on this truck.
    /// `check-config` warns about each; when it would be all of them the config is refused.
    pub unsourced: Vec<Signal>,
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

    /// Reads, parses and checks a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
        Config::parse(&text, file)
    }

    /// Parses and checks config text; `file` is only used in messages.
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
            .check()
            .map_err(|(key, message)| invalid(key.into(), message, None))?;
        Ok(config)
    }

    /// Checks every section and the sections against each other; returns the key and what
    /// is wrong. Pure: it opens no file and reads no device, whatever paths the config
    /// holds ([`Config::resolve`] reads them).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.vehicle.check()?;
        if self.source.is_empty() {
            return Err((
                "source",
                "expected at least one source ([source.simulator], [source.replay], [source.can] \
                 or [[source.serial]]; [source.gps] only adds the position), found none"
                    .into(),
            ));
        }
        if let Some(replay) = &self.source.replay {
            replay.check()?;
        }
        if let Some(can) = &self.source.can {
            can.check()?;
        }
        if let Some(sim) = &self.source.simulator {
            sim.check()?;
        }
        if let Some(gps) = &self.source.gps {
            gps.check()?;
        }
        self.security.check()?;
        self.detect.check(self.vehicle.cargo)?;
        self.model_store.check()?;
        self.check_model_store_apart()?;
        self.batch.check()?;
        self.alarm.check()?;
        let max_in_flight = self.uplink.as_ref().map_or(100, |u| u.max_in_flight);
        self.spool.check(max_in_flight)?;
        if let Some(uplink) = &self.uplink {
            uplink.check()?;
        }
        self.metrics.check()?;
        self.shutdown.check()
    }

    /// The model store and the spool each own their folder: one inside the other would
    /// have each take the other's files for its own.
    fn check_model_store_apart(&self) -> Result<(), (&'static str, String)> {
        let (Some(store), Some(spool)) = (&self.model_store.path, &self.spool.path) else {
            return Ok(());
        };
        if store.starts_with(spool) || spool.starts_with(store) {
            return Err((
                "model_store.path",
                format!(
                    "expected a folder apart from the spool's ({}), found {}; on a gateway: \
                     /var/lib/vigil/models beside /var/lib/vigil/spool",
                    spool.display(),
                    store.display()
                ),
            ));
        }
        Ok(())
    }

    /// Reads what the config names, once: the DBC, the model and the uplink's PEM files;
    /// builds every stage's config and every source. `file` is only used in messages.
    pub fn resolve(&self, file: &Path) -> Result<Resolved, ConfigError> {
        let decode = self
            .dbc
            .load()
            .map_err(|e| ConfigError::invalid(file, "dbc", e.to_string()))?;
        let unsourced = self.unsourced(&decode);
        if !unsourced.is_empty()
            && unsourced.len() == watched_signals(&self.vehicle, &self.detect).len()
        {
            return Err(ConfigError::invalid(
                file,
                "dbc.signals",
                format!(
                    "no watched signal has a source, so nothing would be judged: the sources \
                     give none of {}; map the DBC's signals to them in [dbc.signals], or add \
                     a [[source.serial]] sensor node for the tanks",
                    names(&unsourced)
                ),
            ));
        }
        let (model, model_rejected) = match load_model(self.detect.model.as_deref()) {
            Ok(model) => (model, None),
            Err(error) => (None, Some(error)),
        };
        let (model, model_updates) = self.stored_or(model);
        let outbound = match &self.uplink {
            Some(uplink) => Some(Outbound {
                spool: self
                    .spool
                    .spool_config(&self.vehicle.id, uplink.max_in_flight),
                uplink: uplink.clone(),
                tls: uplink
                    .resolve_tls()
                    .map_err(|e| ConfigError::invalid(file, e.key(), e.to_string()))?,
            }),
            None => None,
        };
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        if let Some(replay) = &self.source.replay {
            // A log that is not there fails the start, as a missing DBC does; its lines are
            // read when the source runs. `-` is standard input.
            if replay.path.as_os_str() != "-"
                && let Err(e) = std::fs::File::open(&replay.path)
            {
                return Err(ConfigError::invalid(
                    file,
                    "source.replay.path",
                    format!("cannot open the log {}: {e}", replay.path.display()),
                ));
            }
            sources.push(Box::new(replay.clone()));
        }
        if let Some(can) = &self.source.can {
            sources.push(Box::new(can.clone()));
        }
        for serial in &self.source.serial {
            sources.push(Box::new(serial.clone()));
        }
        if let Some(gps) = &self.source.gps {
            sources.push(Box::new(gps.clone()));
        }
        if let Some(sim) = &self.source.simulator {
            let truck = SimulatedTruck::new(sim, &self.vehicle)
                .map_err(|e| ConfigError::invalid(file, "source.simulator", e.to_string()))?;
            sources.push(Box::new(truck));
        }
        Ok(Resolved {
            stages: Stages {
                vehicle: self.vehicle.clone(),
                decode,
                security: self.security.clone(),
                detect: self.detect.clone(),
                model,
                model_updates,
                batch: self.batch.clone(),
                alarm: self.alarm.clone(),
                outbound,
                shutdown: self.shutdown.clone(),
                metrics: self.metrics.clone(),
            },
            sources,
            model_rejected,
            unsourced,
        })
    }

    /// The model to run: the newest model in the store that verifies, else `config_model`
    /// (the one `[detect] model` names); with what model-update jobs need. A store that
    /// cannot be opened is a refusal the status reports, never a failed start: the rules
    /// and the config's model run, and jobs' models are held in memory.
    fn stored_or(&self, config_model: Option<Model>) -> (Option<Model>, ModelUpdates) {
        let config = self.detect.model.clone();
        let Some(dir) = &self.model_store.path else {
            let running = Running::config(config_model.as_ref());
            let updates = ModelUpdates {
                store: None,
                config,
                running,
            };
            return (config_model, updates);
        };
        match ModelStore::open(dir) {
            Ok(store) => {
                let choice = store.choose(|| config_model);
                let updates = ModelUpdates {
                    store: Some(store),
                    config,
                    running: choice.running,
                };
                (choice.model, updates)
            }
            Err(error) => {
                let mut running = Running::config(config_model.as_ref());
                running.refused.push(error.to_string());
                let updates = ModelUpdates {
                    store: None,
                    config,
                    running,
                };
                (config_model, updates)
            }
        }
    }

    /// The watched signals none of the configured sources gives: a CAN bus or a replayed
    /// log gives what the DBC table decodes, a sensor node the tank temperatures, the
    /// simulated truck everything.
    fn unsourced(&self, table: &SignalTable) -> Vec<Signal> {
        if self.source.simulator.is_some() {
            return Vec::new();
        }
        let bus = self.source.can.is_some() || self.source.replay.is_some();
        let node = !self.source.serial.is_empty();
        watched_signals(&self.vehicle, &self.detect)
            .into_iter()
            .filter(|signal| {
                let decoded = bus && table.layouts().iter().any(|l| l.signal == *signal);
                let probed =
                    node && (1..=self.vehicle.compartments).any(|n| tank_temperature(n) == *signal);
                !(decoded || probed)
            })
            .collect()
    }
}

/// Signal names for a message, comma-separated.
pub fn names(signals: &[Signal]) -> String {
    signals
        .iter()
        .map(Signal::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Resolved {
    /// What to tell an operator about the device certificate, when it has expired or
    /// expires within 30 days.
    pub fn certificate_warning(&self, now: std::time::SystemTime) -> Option<String> {
        let tls = self.stages.outbound.as_ref()?.tls.as_ref()?;
        vigil_agent::uplink::expiry::warning(tls.certificate_expires?, now)
    }
}

/// The model `[detect] model` names: `"builtin"`, `"none"` (or absent: no model), or the
/// path of a model card with its ONNX file beside it, verified against the card.
pub fn load_model(choice: Option<&Path>) -> Result<Option<Model>, ModelError> {
    match choice {
        None => Ok(None),
        Some(choice) if choice == Path::new(model::NONE) => Ok(None),
        Some(choice) => Model::from_config(choice).map(Some),
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
            (
                "[source.gps]\npath = \"/dev/ttyACM0\"\nbaud = 300\n",
                "key `source.gps.baud`",
                "found 300",
            ),
            (
                "[source.gps]\nport = \"/dev/ttyACM0\"\n",
                "key `source.gps.port`",
                "unknown field `port`",
            ),
            (
                "[metrics]\nlisten = \"localhost\"\n",
                "key `metrics.listen`",
                "invalid socket address",
            ),
            (
                "[metrics]\nlisten = \"0.0.0.0:9898\"\n",
                "key `metrics.listen`",
                "found 0.0.0.0:9898",
            ),
            (
                "[metrics]\nport = 9898\n",
                "key `metrics.port`",
                "unknown field `port`",
            ),
            (
                "[log]\nformat = \"xml\"\n",
                "key `log.format`",
                "unknown variant `xml`, expected `text` or `json`",
            ),
            (
                "[log]\nlevel = \"verbose\"\n",
                "key `log.level`",
                "unknown variant `verbose`",
            ),
        ];
        let broken = [
            ("[vehicle\n", "key `(document)`", "line 1"),
            ("", "key `source`", "expected at least one source"),
            // A GPS gives the position of alerts; alone it has nothing to alert on.
            (
                "[source.gps]\npath = \"/dev/ttyACM0\"\n",
                "key `source`",
                "expected at least one source",
            ),
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
        use vigil_agent::alarm::{GpioLine, I2cDisplay};
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
    fn check_opens_nothing_and_resolve_reads_what_the_config_names() {
        // Every path points nowhere: checking the values passes, resolving names the file.
        let text = "[source.simulator]\n[dbc]\npath = \"/nonexistent/truck.dbc\"\n\
                    [uplink]\nendpoint = \"broker.example\"\nca_file = \"/nonexistent/ca.pem\"\n\
                    cert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n";
        let config = parse(text).expect("check() never opens a file");
        let Err(error) = config.resolve(Path::new("vigil.toml")) else {
            panic!("resolve reads the DBC")
        };
        assert!(
            error.to_string().contains("/nonexistent/truck.dbc"),
            "{error}"
        );
        let config = Config {
            dbc: DbcConfig::default(),
            ..config
        };
        let Err(error) = config.resolve(Path::new("vigil.toml")) else {
            panic!("resolve reads the PEM files")
        };
        let message = error.to_string();
        assert!(message.contains("key `uplink.ca_file`"), "{message}");
    }

    #[test]
    fn the_model_store_is_an_absolute_folder_apart_from_the_spool() {
        let config = |spool: &str, store: &str| {
            parse(&format!(
                "[source.simulator]\n[spool]\npath = \"{spool}\"\n[model_store]\npath = \"{store}\"\n"
            ))
        };
        let relative = config("/var/lib/vigil/spool", "models").unwrap_err();
        assert!(
            relative.contains("model_store.path") && relative.contains("absolute"),
            "{relative}"
        );
        let inside = config("/var/lib/vigil", "/var/lib/vigil/models").unwrap_err();
        assert!(inside.contains("apart from the spool"), "{inside}");
        config("/var/lib/vigil/spool", "/var/lib/vigil/models").unwrap();
    }

    #[test]
    fn a_model_that_cannot_be_used_is_reported_and_the_rules_run_without_it() {
        let mut config = Config::embedded_default();
        config.detect.model = Some("/nonexistent/card.json".into());
        let resolved = config.resolve(Path::new("vigil.toml")).unwrap();
        assert!(resolved.stages.model.is_none());
        let rejected = resolved.model_rejected.expect("the reason is kept");
        assert!(matches!(rejected, ModelError::Read { .. }), "{rejected}");
        config.detect.model = Some(model::NONE.into());
        let resolved = config.resolve(Path::new("vigil.toml")).unwrap();
        assert!(resolved.stages.model.is_none() && resolved.model_rejected.is_none());
        let builtin = Config::embedded_default().resolve(Path::new("vigil.toml"));
        assert!(
            builtin.unwrap().stages.model.is_some(),
            "the default runs the built-in model"
        );
    }

    #[test]
    fn watched_signals_without_a_source_are_listed_and_none_at_all_is_refused() {
        let resolve = |text: &str| parse(text).unwrap().resolve(Path::new("vigil.toml"));
        // The default DBC on a bus gives the engine's temperatures; no node, no tanks.
        let bus_only = resolve("[source.can]\ninterfaces = [\"can0\"]\n").unwrap();
        assert_eq!(
            names(&bus_only.unsourced),
            "Vehicle.Cargo.Tank.Compartment1.Temperature, \
             Vehicle.Cargo.Tank.Compartment2.Temperature, \
             Vehicle.Cargo.Tank.Compartment3.Temperature"
        );
        let both = resolve(
            "[source.can]\ninterfaces = [\"can0\"]\n[[source.serial]]\npath = \"/dev/ttyUSB0\"\n",
        );
        assert!(both.unwrap().unsourced.is_empty());
        // A mapping that decodes only the speed leaves the detector nothing to judge.
        let Err(error) = resolve(
            "[source.can]\ninterfaces = [\"can0\"]\n\
             [dbc.signals]\nWheelBasedVehicleSpeed = \"Vehicle.Speed\"\n",
        ) else {
            panic!("a detector without input is refused")
        };
        let message = error.to_string();
        assert!(
            message.contains("key `dbc.signals`") && message.contains("no watched signal"),
            "{message}"
        );
        assert!(
            resolve("[source.simulator]\n")
                .unwrap()
                .unsourced
                .is_empty()
        );
    }

    #[test]
    fn metrics_and_json_logs_are_off_until_asked_for() {
        let config = Config::embedded_default();
        assert_eq!(config.metrics.listen, None);
        assert_eq!(config.log.format, LogFormat::Text);
        let config = parse(
            "[source.simulator]\n[metrics]\nlisten = \"127.0.0.1:9898\"\n\
             [log]\nformat = \"json\"\nlevel = \"debug\"\n",
        )
        .unwrap();
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9898".parse().unwrap())
        );
        assert_eq!(
            (config.log.format, config.log.level),
            (LogFormat::Json, LogLevel::Debug)
        );
        let resolved = config.resolve(Path::new("vigil.toml")).unwrap();
        assert_eq!(resolved.stages.metrics, config.metrics);
    }

    #[test]
    fn a_missing_file_says_so() {
        let err = Config::load(Path::new("/nonexistent/vigil.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/vigil.toml"));
    }
}
