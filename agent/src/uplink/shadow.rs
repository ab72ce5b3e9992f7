//! The named device shadow `vigil`: the fleet's desired tuning in, the running tuning
//! reported back. Pure: payloads in, the new tuning and the report to publish out.
//!
//! AWS IoT Core sends the difference between desired and reported on `update/delta`, and the
//! whole document on `get/accepted` (asked for after every connect, so a change made while
//! the truck was offline is applied when it returns). The agent reports its running tuning
//! in the same shape as desired, so the delta clears once a change is applied. A desired
//! state that fails the config checks is not applied: the running tuning is reported with a
//! `rejected` entry giving the shadow version, the key and the reason, and the delta stays
//! for the fleet to see. The reported state also says which model runs (`model`: where it
//! came from and why a newer one was passed over), which only jobs change: a desired
//! `model` is refused like any key the shadow may not set.

use serde_json::{Value, json};

use crate::detect::{Running, Tuning, TuningError};

/// What a shadow message led to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Apply this tuning now, and publish the report. Boxed: a tuning is several times
    /// the size of the other variants.
    Applied {
        tuning: Box<Tuning>,
        report: Vec<u8>,
    },
    /// Keep the running tuning; publish the report that says why.
    Rejected { error: TuningError, report: Vec<u8> },
    /// Nothing to change; publish the report if there is one (the first one after start).
    Unchanged { report: Option<Vec<u8>> },
}

#[derive(Debug)]
pub struct Shadow {
    running: Tuning,
    /// The running model as reported (`null` until the uplink says).
    model: Value,
    /// Whether the running tuning has been reported since start.
    reported: bool,
}

impl Shadow {
    /// The shadow of an agent that started with `running`.
    pub fn new(running: Tuning) -> Self {
        Shadow {
            running,
            model: Value::Null,
            reported: false,
        }
    }

    #[cfg(test)]
    pub fn running(&self) -> &Tuning {
        &self.running
    }

    /// The running tuning was changed by someone else (a config reload): it becomes the
    /// running state, and the report to publish says so. `None` when nothing changed
    /// (this shadow's own change coming back on the watch).
    pub fn retuned(&mut self, tuning: &Tuning) -> Option<Vec<u8>> {
        if *tuning == self.running {
            return None;
        }
        self.running = tuning.clone();
        self.reported = true;
        Some(self.report(Value::Null))
    }

    /// The running model changed (a job, or the start): the report to publish, once the
    /// tuning has been reported at all (the first report carries it anyway). `None` when
    /// nothing changed.
    pub fn model_changed(&mut self, model: Option<&Running>) -> Option<Vec<u8>> {
        let model = serde_json::to_value(model).expect("a running model always serialises");
        if model == self.model {
            return None;
        }
        self.model = model;
        self.reported.then(|| self.report(Value::Null))
    }

    /// The `update` document: the running tuning and model as reported state; `rejected`
    /// is `null` (which deletes it in the shadow) once a desired state has been applied.
    fn report(&self, rejected: Value) -> Vec<u8> {
        let mut reported = serde_json::to_value(&self.running).expect("a tuning always serialises");
        reported["rejected"] = rejected;
        if !self.model.is_null() {
            reported["model"] = self.model.clone();
        }
        serde_json::to_vec(&json!({ "state": { "reported": reported } }))
            .expect("a report always serialises")
    }

    /// A message on `update/delta`: `{"version": N, "state": {...desired keys...}}`.
    pub fn on_delta(&mut self, payload: &[u8]) -> Outcome {
        match serde_json::from_slice::<Value>(payload) {
            Ok(doc) => self.apply(&doc["state"], doc["version"].as_u64()),
            Err(e) => self.reject(
                TuningError {
                    key: "(document)".into(),
                    message: format!("not JSON: {e}"),
                },
                None,
            ),
        }
    }

    /// A message on `get/accepted`: the whole document; its `state.delta`, if any, is what
    /// still differs.
    pub fn on_document(&mut self, payload: &[u8]) -> Outcome {
        let Ok(doc) = serde_json::from_slice::<Value>(payload) else {
            return Outcome::Unchanged {
                report: self.first_report(),
            };
        };
        let delta = &doc["state"]["delta"];
        if delta.is_object() {
            self.apply(delta, doc["version"].as_u64())
        } else {
            Outcome::Unchanged {
                report: self.first_report(),
            }
        }
    }

    fn first_report(&mut self) -> Option<Vec<u8>> {
        (!self.reported).then(|| {
            self.reported = true;
            self.report(Value::Null)
        })
    }

    fn apply(&mut self, desired: &Value, version: Option<u64>) -> Outcome {
        match self.running.patched(desired) {
            Ok(tuning) => {
                self.running = tuning.clone();
                self.reported = true;
                Outcome::Applied {
                    report: self.report(Value::Null),
                    tuning: Box::new(tuning),
                }
            }
            Err(error) => self.reject(error, version),
        }
    }

    fn reject(&mut self, error: TuningError, version: Option<u64>) -> Outcome {
        self.reported = true;
        let rejected = json!({
            "version": version,
            "key": error.key,
            "reason": error.message,
        });
        Outcome::Rejected {
            report: self.report(rejected),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::DetectConfig;
    use crate::vehicle::{CargoClass, VehicleConfig};

    fn started() -> Shadow {
        Shadow::new(Tuning::new(
            &VehicleConfig::default(),
            &DetectConfig::default(),
            std::time::Duration::from_secs(10),
        ))
    }

    fn reported(report: &[u8]) -> Value {
        serde_json::from_slice::<Value>(report).unwrap()["state"]["reported"].clone()
    }

    #[test]
    fn a_valid_delta_is_applied_and_reported() {
        let mut s = started();
        let out = s.on_delta(br#"{"version":3,"state":{"cargo":"lpg"}}"#);
        let Outcome::Applied { tuning, report } = out else {
            panic!("{out:?}")
        };
        assert_eq!(tuning.cargo, CargoClass::Lpg);
        let r = reported(&report);
        assert_eq!(r["cargo"], "lpg");
        assert!(r["rejected"].is_null());
        assert_eq!(s.running().cargo, CargoClass::Lpg);
    }

    #[test]
    fn a_reload_is_reported_and_the_next_delta_patches_the_reloaded_tuning() {
        let mut shadow = started();
        let reloaded = Tuning {
            cargo: CargoClass::Naphtha,
            ..shadow.running().clone()
        };
        assert_eq!(
            shadow.retuned(&started().running().clone()),
            None,
            "nothing changed"
        );
        let report = shadow.retuned(&reloaded).expect("a reload is reported");
        assert_eq!(reported(&report)["cargo"], "naphtha");
        assert_eq!(shadow.retuned(&reloaded), None, "reported once");
        let Outcome::Applied { tuning, .. } =
            shadow.on_delta(br#"{"version":2,"state":{"batch_max_age":"20s"}}"#)
        else {
            panic!("applied")
        };
        assert_eq!(
            (tuning.cargo, tuning.batch_max_age),
            (CargoClass::Naphtha, std::time::Duration::from_secs(20))
        );
    }

    #[test]
    fn an_invalid_delta_is_rejected_and_the_running_tuning_stays() {
        let mut s = started();
        let out =
            s.on_delta(br#"{"version":4,"state":{"detect":{"engine":{"coolant_warning":130.0}}}}"#);
        let Outcome::Rejected { error, report } = out else {
            panic!("{out:?}")
        };
        assert_eq!(error.key, "detect.engine");
        let r = reported(&report);
        assert_eq!(r["detect"]["engine"]["coolant_warning"], 105.0);
        assert_eq!(r["rejected"]["version"], 4);
        assert!(
            r["rejected"]["reason"]
                .as_str()
                .unwrap()
                .contains("warning")
        );
        assert_eq!(s.running().detect.engine.coolant_warning, 105.0);
    }

    #[test]
    fn the_document_after_connect_applies_its_delta_or_reports_once() {
        let mut s = started();
        let out = s.on_document(br#"{"version":1,"state":{"desired":{},"reported":{}}}"#);
        assert!(matches!(out, Outcome::Unchanged { report: Some(_) }));
        let out = s.on_document(br#"{"version":1,"state":{"desired":{}}}"#);
        assert_eq!(out, Outcome::Unchanged { report: None });
        let out = s.on_document(
            br#"{"version":2,"state":{"desired":{"cargo":"empty"},"delta":{"cargo":"empty"}}}"#,
        );
        assert!(
            matches!(out, Outcome::Applied { tuning, .. } if tuning.cargo == CargoClass::Empty)
        );
    }
}
