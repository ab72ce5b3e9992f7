//! `SIGHUP`: the config file read again while the agent runs. What the running stages can
//! take is applied at once (the tuning: cargo class, `[detect]` limits, rules, debounce and
//! hysteresis, `batch.max_age`, the same set the device shadow may change; and `[log]
//! level`, unless `VIGIL_LOG` set it); a change to anything else (sources, DBC, model,
//! alarm devices, spool, uplink, security, metrics, log format, shutdown) is logged as
//! needing a restart and not applied. A file that does not load or check is
//! refused with the reason, and the running config stays.
//!
//! A reload and the shadow both set the tuning; the newer wins. The uplink reports a
//! reloaded tuning as the shadow's running state, so a desired state the fleet still holds
//! comes back as a delta and is applied again: the fleet's word outlasts a file on the
//! truck.

use std::path::{Path, PathBuf};

use tokio::signal::unix::Signal;
use tokio::sync::mpsc;
use vigil_agent::detect::{DetectConfig, Tuning};

use crate::config::{Config, LogConfig};

/// Sets the log's level from a `[log]` section (the subscriber's reload handle).
pub type LogLevel = Box<dyn Fn(&LogConfig) -> Result<(), String> + Send>;

/// What a reloaded file changes: the tuning to apply, and the sections whose change waits
/// for a restart.
#[derive(Debug, PartialEq)]
pub struct Reload {
    pub tuning: Tuning,
    pub needs_restart: Vec<&'static str>,
    /// The config in force after the reload: the running one with the new tuning.
    pub in_force: Config,
}

impl Reload {
    /// Compares a freshly loaded (and checked) file with the config in force. Pure.
    pub fn of(running: &Config, new: &Config) -> Reload {
        // Which signals are watched changes at a restart only (the detector's streams are
        // made at start); each watched signal's own rules apply at once.
        let watch = if running.detect.watch_signals() == new.detect.watch_signals() {
            new.detect.watch.clone()
        } else {
            running.detect.watch.clone()
        };
        let detect = DetectConfig {
            model: running.detect.model.clone(),
            watch,
            ..new.detect.clone()
        };
        let tuning = Tuning::new(&new.vehicle, &detect, new.batch.max_age);
        let mut in_force = running.clone();
        in_force.vehicle.cargo = new.vehicle.cargo;
        in_force.detect = detect;
        in_force.batch.max_age = new.batch.max_age;
        in_force.log.level = new.log.level;
        // What still differs once the tuning is taken over can only change by a restart.
        let mut needs_restart = Vec::new();
        let mut differs = |name, differ: bool| {
            if differ {
                needs_restart.push(name);
            }
        };
        differs("vehicle", in_force.vehicle != new.vehicle);
        differs("source", in_force.source != new.source);
        differs("dbc", in_force.dbc != new.dbc);
        differs("security", in_force.security != new.security);
        differs("detect.model", in_force.detect.model != new.detect.model);
        differs("detect.watch", in_force.detect.watch != new.detect.watch);
        differs("model_store", in_force.model_store != new.model_store);
        differs("batch", in_force.batch != new.batch);
        differs("alarm", in_force.alarm != new.alarm);
        differs("spool", in_force.spool != new.spool);
        differs("uplink", in_force.uplink != new.uplink);
        differs("metrics", in_force.metrics != new.metrics);
        differs("log.format", in_force.log.format != new.log.format);
        differs("shutdown", in_force.shutdown != new.shutdown);
        Reload {
            tuning,
            needs_restart,
            in_force,
        }
    }
}

/// Reads `file` again on every SIGHUP and hands the tuning of each good file to the
/// pipeline; ends when the pipeline stops taking them.
pub async fn on_hangup(
    file: PathBuf,
    mut running: Config,
    mut hangups: Signal,
    reloads: mpsc::Sender<Tuning>,
    log_level: Option<LogLevel>,
) {
    while hangups.recv().await.is_some() {
        match reload(&file, &running) {
            Ok(reload) => {
                if reload.in_force.log.level != running.log.level {
                    match &log_level {
                        Some(set) => match set(&reload.in_force.log) {
                            Ok(()) => tracing::info!(
                                event = "log_level_changed",
                                level = reload.in_force.log.level.as_str()
                            ),
                            Err(error) => tracing::error!(event = "log_level_refused", %error),
                        },
                        None => tracing::warn!(
                            event = "log_level_ignored",
                            "VIGIL_LOG sets the log's level; unset it in the unit to let [log] level apply"
                        ),
                    }
                }
                if !reload.needs_restart.is_empty() {
                    tracing::warn!(
                        event = "config_reload_needs_restart",
                        sections = %reload.needs_restart.join(", "),
                        "changed in the file but not applied: restart the agent (systemctl restart vigil)"
                    );
                }
                running = reload.in_force;
                if reloads.send(reload.tuning).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::error!(event = "config_reload_refused", %error, "the running config stays");
            }
        }
    }
}

fn reload(file: &Path, running: &Config) -> Result<Reload, crate::config::ConfigError> {
    let new = Config::load(file)?;
    Ok(Reload::of(running, &new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_agent::vehicle::CargoClass;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("vigil.toml")).unwrap()
    }

    #[test]
    fn limits_rules_and_cargo_apply_and_the_rest_waits_for_a_restart() {
        let running = parse("[source.simulator]\n");
        let new = parse(
            "[source.simulator]\nspeed = 5.0\n[vehicle]\ncargo = \"lpg\"\nid = \"truck-9\"\n\
             [detect.engine]\ncoolant_warning = 99.0\n[detect.rules]\nstuck_after = \"5m\"\n\
             [batch]\nmax_age = \"30s\"\n",
        );
        let reload = Reload::of(&running, &new);
        assert_eq!(reload.tuning.cargo, CargoClass::Lpg);
        assert_eq!(reload.tuning.detect.engine.coolant_warning, 99.0);
        assert_eq!(
            reload.tuning.detect.rules.stuck_after,
            std::time::Duration::from_secs(300)
        );
        assert_eq!(reload.tuning.batch_max_age.as_secs(), 30);
        assert_eq!(reload.needs_restart, ["vehicle", "source"]);
        // In force: the new tuning, the old identity and source.
        assert_eq!(reload.in_force.vehicle.cargo, CargoClass::Lpg);
        assert_eq!(reload.in_force.vehicle.id, running.vehicle.id);
        assert_eq!(reload.in_force.source, running.source);
        // The same file again changes nothing more.
        let again = Reload::of(&reload.in_force, &new);
        assert_eq!(again.tuning, reload.tuning);
        assert_eq!(again.needs_restart, ["vehicle", "source"]);
    }

    #[test]
    fn an_unchanged_file_needs_nothing_and_a_new_model_needs_a_restart() {
        let running = parse("[source.simulator]\n");
        let same = Reload::of(&running, &running);
        assert!(same.needs_restart.is_empty());
        assert_eq!(same.in_force, running);
        let new = parse("[source.simulator]\n[detect]\nmodel = \"none\"\n");
        assert_eq!(Reload::of(&running, &new).needs_restart, ["detect.model"]);
        // A new watched signal waits for the restart too; a watched one's limit does not.
        let watching = |limit: u32| {
            parse(&format!(
                "[source.simulator]\n[[detect.watch]]\nsignal = \"Vehicle.Cargo.Tank.Pressure\"\n\
                 range = [0, 2500]\nlimit = {{ warning = {limit}, critical = 2100 }}\n"
            ))
        };
        let reload = Reload::of(&running, &watching(1900));
        assert_eq!(reload.needs_restart, ["detect.watch"]);
        assert!(reload.tuning.detect.watch.is_empty());
        let retuned = Reload::of(&watching(1900), &watching(1800));
        assert!(retuned.needs_restart.is_empty());
        let limit = retuned.tuning.detect.watch[0].limit.map(|l| l.warning);
        assert_eq!(limit, Some(1800.0));
        let new = parse("[source.simulator]\n[model_store]\npath = \"/var/lib/vigil/models\"\n");
        assert_eq!(Reload::of(&running, &new).needs_restart, ["model_store"]);
        let new = parse("[source.simulator]\n[log]\nlevel = \"debug\"\nformat = \"json\"\n");
        let reload = Reload::of(&running, &new);
        assert_eq!(reload.needs_restart, ["log.format"]);
        assert_eq!(reload.in_force.log.level, new.log.level);
    }
}
