//! The part of the config that may change while the agent runs: thresholds, rates and the
//! cargo class. The fleet sets it through the device shadow; the pipeline hands it to the
//! stages on a `watch`, so a stage reads the newest value without anyone waiting on it.
//!
//! A change is checked exactly like a config file ([`Config::validate`] on the running config
//! with the change applied): a tuning that would be refused at start is refused at run time,
//! with the same key and message, and the running tuning stays.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CargoClass, Config, DetectConfig, duration};

/// The runtime-adjustable subset of [`Config`].
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
    pub fn of(config: &Config) -> Tuning {
        Tuning {
            cargo: config.vehicle.cargo,
            // The model is not the shadow's to set (a path on the gateway); jobs deliver models.
            detect: DetectConfig {
                model: None,
                ..config.detect.clone()
            },
            batch_max_age: config.batch.max_age,
        }
    }

    pub fn apply_to(&self, config: &mut Config) {
        config.vehicle.cargo = self.cargo;
        config.detect = DetectConfig {
            model: config.detect.model.take(),
            ..self.detect.clone()
        };
        config.batch.max_age = self.batch_max_age;
    }

    /// Applies a partial document (the shadow's desired state: any subset of the keys, nested
    /// tables merged key by key) to this tuning, and checks the result against `base`.
    pub fn patched(&self, patch: &serde_json::Value, base: &Config) -> Result<Tuning, TuningError> {
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
        let mut config = base.clone();
        tuning.apply_to(&mut config);
        config.validate().map_err(|(key, message)| TuningError {
            key: match key {
                "vehicle.cargo" => "cargo".to_owned(),
                "batch.max_age" => "batch_max_age".to_owned(),
                other => other.to_owned(),
            },
            message,
        })?;
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

    #[test]
    fn the_shadow_cannot_point_the_model_at_a_file() {
        let base = Config::embedded_default();
        let err = Tuning::of(&base)
            .patched(&json!({"detect": {"model": "/etc/shadow"}}), &base)
            .unwrap_err();
        assert_eq!(err.key, "detect.model");
        let mut with_model = base.clone();
        with_model.detect.model = Some("/usr/share/vigil/models/forecaster.card.json".into());
        let mut applied = with_model.clone();
        Tuning::of(&with_model).apply_to(&mut applied);
        assert_eq!(
            applied.detect.model, with_model.detect.model,
            "a retune keeps the model"
        );
    }

    #[test]
    fn a_partial_patch_changes_only_its_keys() {
        let base = Config::embedded_default();
        let running = Tuning::of(&base);
        let t = running
            .patched(
                &json!({"cargo": "lpg", "detect": {"engine": {"coolant_warning": 100.0}}, "batch_max_age": "5s"}),
                &base,
            )
            .unwrap();
        assert_eq!(t.cargo, CargoClass::Lpg);
        assert_eq!(t.detect.engine.coolant_warning, 100.0);
        assert_eq!(t.detect.engine.coolant_critical, 110.0);
        assert_eq!(t.batch_max_age, Duration::from_secs(5));
    }

    #[test]
    fn an_invalid_patch_names_the_key_and_changes_nothing() {
        let base = Config::embedded_default();
        let running = Tuning::of(&base);
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
        ];
        for (patch, key) in cases {
            let e = running.patched(&patch, &base).unwrap_err();
            assert!(e.to_string().contains(key), "{patch}: {e}");
        }
    }
}
