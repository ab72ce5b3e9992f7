//! The part of the config that may change while the agent runs: thresholds, rates and the
//! cargo class. The fleet sets it through the device shadow; the pipeline hands it to the
//! stages on a `watch`, so a stage reads the newest value without anyone waiting on it.
//!
//! A change is checked exactly as the same keys in a config file are checked
//! ([`Tuning::check`], the sections' own pure checks): a tuning that would be refused at
//! start is refused at run time, with the same key and message, and the running tuning
//! stays. Checking opens no file: a change of cargo class is applied whatever the state of
//! the certificate files or the DBC on disk.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DetectConfig;
use crate::duration;
use crate::vehicle::{CargoClass, VehicleConfig};

/// The runtime-adjustable subset of the config: `vehicle.cargo`, `[detect]` without its
/// model, `batch.max_age`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// `vehicle.cargo`: selects the tank limits.
    pub cargo: CargoClass,
    /// `[detect]`: debounce, hysteresis, engine and tank limits.
    pub detect: DetectConfig,
    /// `batch.max_age`: how often readings are sealed for the uplink.
    #[serde(with = "duration")]
    pub batch_max_age: Duration,
}

/// Why a tuning was refused: the key (in the shadow document's terms) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct TuningError {
    pub key: String,
    pub message: String,
}

impl Tuning {
    /// The tuning the sections of a config start with (`batch_max_age`: `[batch] max_age`).
    pub fn new(vehicle: &VehicleConfig, detect: &DetectConfig, batch_max_age: Duration) -> Tuning {
        Tuning {
            cargo: vehicle.cargo,
            // The model is not the shadow's to set (a path on the gateway); jobs deliver models.
            detect: DetectConfig {
                model: None,
                ..detect.clone()
            },
            batch_max_age,
        }
    }

    /// The checks a config file's same keys get; the key is the shadow document's.
    pub fn check(&self) -> Result<(), TuningError> {
        let invalid = |(key, message): (&str, String)| TuningError {
            key: key.to_owned(),
            message,
        };
        self.detect.check(self.cargo).map_err(invalid)?;
        duration::check_positive(self.batch_max_age)
            .map_err(|message| invalid(("batch_max_age", message)))
    }

    /// Applies a partial document (the shadow's desired state: any subset of the keys, nested
    /// tables merged key by key) to this tuning, and checks the result.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Tuning, TuningError> {
        if !patch.is_object() {
            return Err(TuningError {
                key: "(document)".into(),
                message: format!("expected an object of config keys, found {patch}"),
            });
        }
        if patch.pointer("/detect/model").is_some() {
            return Err(TuningError {
                key: "detect.model".into(),
                message: "a model cannot be set through the shadow; send a model-update job".into(),
            });
        }
        let mut merged = serde_json::to_value(self).expect("a tuning always serialises");
        merge(&mut merged, patch);
        let tuning: Tuning = serde_path_to_error::deserialize(merged).map_err(|e| TuningError {
            key: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
        // Deserialising fills the default model back in; the shadow never carries one.
        let tuning = Tuning {
            detect: DetectConfig {
                model: None,
                ..tuning.detect
            },
            ..tuning
        };
        if tuning.detect.watch_signals() != self.detect.watch_signals() {
            return Err(TuningError {
                key: "detect.watch".into(),
                message: format!(
                    "the shadow may change the rules of the watched signals {:?}, not which signals are watched: that is the config's (and a restart)",
                    self.detect.watch_signals()
                ),
            });
        }
        tuning.check()?;
        Ok(tuning)
    }
}

/// Merges `patch` into `target`: objects key by key, anything else replaced. A `null` in
/// the patch (the shadow's way of deleting a key) leaves the running value.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    continue;
                }
                match t.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running() -> Tuning {
        Tuning::new(
            &VehicleConfig::default(),
            &DetectConfig::default(),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn the_shadow_retunes_a_watched_signal_but_cannot_add_one() {
        let entry = |warning: f64| {
            json!({"signal": "Vehicle.Cargo.Tank.Pressure", "range": [0, 2500],
                   "limit": {"warning": warning, "critical": 2100}})
        };
        let err = running()
            .patched(&json!({"detect": {"watch": [entry(1900.0)]}}))
            .unwrap_err();
        assert_eq!(err.key, "detect.watch");
        let mut watching = running();
        watching.detect.watch = vec![serde_json::from_value(entry(1900.0)).unwrap()];
        let retuned = watching
            .patched(&json!({"detect": {"watch": [entry(1800.0)]}}))
            .unwrap();
        assert_eq!(
            retuned.detect.watch[0].limit.map(|l| l.warning),
            Some(1800.0)
        );
        // A bad level is the check's to refuse, as for any limit.
        let err = watching
            .patched(&json!({"detect": {"watch": [entry(2200.0)]}}))
            .unwrap_err();
        assert_eq!(err.key, "detect.watch");
        assert!(
            err.message.contains("below the critical"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_shadow_cannot_point_the_model_at_a_file() {
        let err = running()
            .patched(&json!({"detect": {"model": "/etc/shadow"}}))
            .unwrap_err();
        assert_eq!(err.key, "detect.model");
        let detect = DetectConfig {
            model: Some("/usr/share/vigil/models/forecaster.card.json".into()),
            ..DetectConfig::default()
        };
        let tuning = Tuning::new(&VehicleConfig::default(), &detect, Duration::from_secs(10));
        assert_eq!(
            tuning.detect.model, None,
            "a tuning never carries the model"
        );
    }

    #[test]
    fn a_partial_patch_changes_only_its_keys() {
        let t = running()
            .patched(
                &json!({"cargo": "lpg", "detect": {"engine": {"coolant_warning": 100.0}}, "batch_max_age": "5s"}),
            )
            .unwrap();
        assert_eq!(t.cargo, CargoClass::Lpg);
        assert_eq!(t.detect.engine.coolant_warning, 100.0);
        assert_eq!(t.detect.engine.coolant_critical, 110.0);
        assert_eq!(t.batch_max_age, Duration::from_secs(5));
    }

    #[test]
    fn an_invalid_patch_names_the_key_and_changes_nothing() {
        let running = running();
        let cases = [
            (json!({"cargo": "milk"}), "cargo"),
            (
                json!({"detect": {"engine": {"coolant_warning": 120.0}}}),
                "detect.engine",
            ),
            (json!({"detect": {"debounce": "soon"}}), "detect.debounce"),
            (json!({"colour": "red"}), "colour"),
            (json!({"detect": {"hysteresis": -1.0}}), "detect.hysteresis"),
            (json!([1, 2]), "(document)"),
            (json!({"batch_max_age": "0s"}), "batch_max_age"),
            (
                json!({"detect": {"rules": {"spike_jump": 0.0}}}),
                "detect.rules.spike_jump",
            ),
            (
                json!({"detect": {"rules": {"spikes_to_raise": 0}}}),
                "detect.rules.spikes_to_raise",
            ),
            (
                json!({"detect": {"rules": {"spike_window": "2s"}}}),
                "detect.rules.spike_window",
            ),
            (
                json!({"detect": {"rules": {"spike_window": "11m"}}}),
                "detect.rules.spike_window",
            ),
        ];
        for (patch, key) in cases {
            let e = running.patched(&patch).unwrap_err();
            assert!(e.to_string().contains(key), "{patch}: {e}");
        }
    }
}
