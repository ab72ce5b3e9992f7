//! Model jobs (AWS IoT Jobs): a model update arrives inline in the job document, base64,
//! with its SHA-256 and version; the agent verifies it, swaps it in through the detect
//! stage's [`ModelUpdater`] (which keeps it in the model store), and reports `IN_PROGRESS`,
//! then `SUCCEEDED` or `FAILED`. A rollback job returns to the model that ran before.
//!
//! The job documents (schema: `deploy/schemas/model-job.schema.json`; `vigil model job`
//! builds the first from a card):
//!
//! ```json
//! {"operation": "model-update",
//!  "model": {"version": "2.1.0", "sha256": "<64 hex digits>", "onnx_base64": "<base64>",
//!            "card": { ...the model card JSON, as models/forecaster.card.json... }}}
//! {"operation": "model-rollback"}
//! ```
//!
//! The card carries what the model needs to run (normalisation, thresholds, golden vectors);
//! the detect stage refuses a model without one. Its `version` must be the job's. Its
//! `evaluation` section is for people and may be left out (AWS IoT Jobs takes documents
//! of at most 32 KB).
//!
//! Nothing is swapped before the hash matches. If the swap fails the updater keeps the
//! running model; if the swap went through but the updater does not then report the new
//! version, the agent rolls back to the previous model. Either way the job says FAILED with
//! the reason, and the status message keeps showing the model that runs.

use std::collections::HashSet;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::detect::ModelUpdater;

/// A job execution as AWS sends it on `notify-next` and `$next/get/accepted`.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub job_id: String,
    pub document: Value,
}

/// A status update to publish on `jobs/{job_id}/update`.
#[derive(Clone, Debug, PartialEq)]
pub struct JobUpdate {
    pub job_id: String,
    pub status: &'static str,
    pub details: Vec<(&'static str, String)>,
}

impl JobUpdate {
    pub fn payload(&self) -> Vec<u8> {
        let details: serde_json::Map<String, Value> = self
            .details
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect();
        serde_json::to_vec(&json!({ "status": self.status, "statusDetails": details }))
            .expect("a job update always serialises")
    }
}

/// Reads the execution out of a jobs message; `None` when there is no job (AWS sends an
/// empty execution when the queue is empty) or it is already finished.
pub fn execution(payload: &[u8]) -> Option<Execution> {
    let doc: Value = serde_json::from_slice(payload).ok()?;
    let e = &doc["execution"];
    let status = e["status"].as_str().unwrap_or("QUEUED");
    if !matches!(status, "QUEUED" | "IN_PROGRESS") {
        return None;
    }
    Some(Execution {
        job_id: e["jobId"].as_str()?.to_owned(),
        document: e["jobDocument"].clone(),
    })
}

/// Remembers which jobs this run has taken, so the same execution arriving on both
/// `notify-next` and `$next/get/accepted` (or again after a reconnect) runs once.
#[derive(Debug, Default)]
pub struct Taken {
    ids: HashSet<String>,
}

impl Taken {
    /// True the first time a job id is seen.
    pub fn take(&mut self, job_id: &str) -> bool {
        self.ids.insert(job_id.to_owned())
    }
}

pub fn in_progress(execution: &Execution) -> JobUpdate {
    JobUpdate {
        job_id: execution.job_id.clone(),
        status: "IN_PROGRESS",
        details: vec![("step", "verifying".into())],
    }
}

/// A model-update job's document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    /// Read before: it chose this shape.
    #[serde(rename = "operation")]
    _operation: String,
    model: ModelPart,
}

/// A rollback job's document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    /// Read before: it chose this shape.
    #[serde(rename = "operation")]
    _operation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelPart {
    version: String,
    sha256: String,
    onnx_base64: String,
    /// The model card (JSON object); the detect stage needs it to run the model.
    #[serde(default)]
    card: Option<serde_json::Value>,
}

/// The operations this agent does, as the job document's `operation` names them.
pub const UPDATE: &str = "model-update";
pub const ROLLBACK: &str = "model-rollback";

/// Runs a model job (an update or a rollback); returns the final status to report. Runs
/// the updater's blocking calls: call it off the uplink's event loop.
pub fn finish(execution: &Execution, updater: &dyn ModelUpdater) -> JobUpdate {
    match execution.document["operation"].as_str() {
        Some(UPDATE) => update(execution, updater),
        Some(ROLLBACK) => rollback(execution, updater),
        other => failed(
            execution,
            updater,
            format!("unknown operation {other:?}; this agent does {UPDATE:?} and {ROLLBACK:?}"),
            false,
        ),
    }
}

/// A FAILED update naming the reason and the model that runs.
fn failed(
    execution: &Execution,
    updater: &dyn ModelUpdater,
    reason: String,
    rolled_back: bool,
) -> JobUpdate {
    JobUpdate {
        job_id: execution.job_id.clone(),
        status: "FAILED",
        details: vec![
            ("reason", reason),
            (
                "running_model",
                updater.version().unwrap_or_else(|| "none".into()),
            ),
            ("rolled_back", rolled_back.to_string()),
        ],
    }
}

/// Returns to the model that ran before the running one (the previous stored model, else
/// the config's).
fn rollback(execution: &Execution, updater: &dyn ModelUpdater) -> JobUpdate {
    if let Err(e) = serde_json::from_value::<Rollback>(execution.document.clone()) {
        return failed(
            execution,
            updater,
            format!("not a model-rollback job document: {e}"),
            false,
        );
    }
    let running = updater.version().unwrap_or_else(|| "none".into());
    if let Err(e) = updater.rollback() {
        return failed(
            execution,
            updater,
            format!("nothing was rolled back: {e}; model {running} keeps running"),
            false,
        );
    }
    JobUpdate {
        job_id: execution.job_id.clone(),
        status: "SUCCEEDED",
        details: vec![
            (
                "model_version",
                updater.version().unwrap_or_else(|| "none".into()),
            ),
            ("previous_model", running),
        ],
    }
}

/// Verifies and applies a model-update job.
fn update(execution: &Execution, updater: &dyn ModelUpdater) -> JobUpdate {
    let running = updater.version().unwrap_or_else(|| "none".into());
    let failed =
        |reason: String, rolled_back: bool| failed(execution, updater, reason, rolled_back);
    let doc: Document = match serde_json::from_value(execution.document.clone()) {
        Ok(d) => d,
        Err(e) => return failed(format!("not a model-update job document: {e}"), false),
    };
    let onnx = match base64::engine::general_purpose::STANDARD.decode(doc.model.onnx_base64.trim())
    {
        Ok(bytes) => bytes,
        Err(e) => return failed(format!("model.onnx_base64 is not base64: {e}"), false),
    };
    let actual = hex(&Sha256::digest(&onnx));
    if !actual.eq_ignore_ascii_case(doc.model.sha256.trim()) {
        return failed(
            format!(
                "SHA-256 mismatch: the document says {} but the model's is {actual}; nothing was \
                 swapped, model {running} keeps running",
                doc.model.sha256.trim()
            ),
            false,
        );
    }
    let card = doc.model.card.as_ref().map(|c| c.to_string());
    if let Err(e) = updater.swap(&doc.model.version, &onnx, card.as_deref()) {
        return failed(
            format!("the detect stage refused the model: {e}; model {running} keeps running"),
            false,
        );
    }
    if updater.version().as_deref() != Some(doc.model.version.as_str()) {
        let back = updater.rollback();
        return failed(
            format!(
                "after the swap the detect stage reports model {:?}, not {}; {}",
                updater.version(),
                doc.model.version,
                match back {
                    Ok(()) => format!("rolled back to {running}"),
                    Err(e) => format!("rolling back failed too: {e}"),
                }
            ),
            true,
        );
    }
    JobUpdate {
        job_id: execution.job_id.clone(),
        status: "SUCCEEDED",
        details: vec![
            ("model_version", doc.model.version),
            ("previous_model", running),
            ("bytes", onnx.len().to_string()),
        ],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records every call; can be told to refuse swaps or to lie about the version after one.
    #[derive(Default)]
    pub struct FakeUpdater {
        pub calls: Mutex<Vec<String>>,
        pub version: Mutex<Option<String>>,
        pub refuse: bool,
        pub ignore_swap: bool,
    }

    impl ModelUpdater for FakeUpdater {
        fn version(&self) -> Option<String> {
            self.version.lock().unwrap().clone()
        }
        fn swap(&self, version: &str, onnx: &[u8], _card: Option<&str>) -> Result<(), String> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("swap {version} {}", onnx.len()));
            if self.refuse {
                return Err("bad graph".into());
            }
            if !self.ignore_swap {
                *self.version.lock().unwrap() = Some(version.to_owned());
            }
            Ok(())
        }
        fn rollback(&self) -> Result<(), String> {
            self.calls.lock().unwrap().push("rollback".into());
            Ok(())
        }
    }

    pub fn job(id: &str, model: &[u8], sha256: Option<&str>) -> Vec<u8> {
        let sha = sha256.map_or_else(|| hex(&Sha256::digest(model)), str::to_owned);
        serde_json::to_vec(
            &json!({"execution": {"jobId": id, "status": "QUEUED", "jobDocument": {
            "operation": "model-update",
            "model": {"version": "2.0.0", "sha256": sha,
                      "onnx_base64": base64::engine::general_purpose::STANDARD.encode(model)}}}}),
        )
        .unwrap()
    }

    /// A job carrying the committed model and its card, through the real detect handle.
    #[test]
    fn a_job_with_its_card_swaps_the_detect_stage_model_and_one_without_fails() {
        use crate::detect::model::{ModelHandle, committed_card_path};
        let card_path = committed_card_path();
        let card: Value =
            serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
        let onnx = std::fs::read(card_path.with_file_name(card["onnx"].as_str().unwrap())).unwrap();
        let version = card["version"].as_str().unwrap().to_owned();
        let document = |card: Option<&Value>| {
            let mut model = json!({"version": version, "sha256": hex(&Sha256::digest(&onnx)),
                "onnx_base64": base64::engine::general_purpose::STANDARD.encode(&onnx)});
            if let Some(card) = card {
                model["card"] = card.clone();
            }
            Execution {
                job_id: "j-real".into(),
                document: json!({"operation": "model-update", "model": model}),
            }
        };
        let handle = ModelHandle::new(None);
        let without = finish(&document(None), &handle);
        assert_eq!(without.status, "FAILED");
        assert!(
            format!("{without:?}").contains("no model card"),
            "{without:?}"
        );
        assert!(handle.current().is_none(), "nothing swapped");

        let done = finish(&document(Some(&card)), &handle);
        assert_eq!(done.status, "SUCCEEDED", "{done:?}");
        assert_eq!(ModelUpdater::version(&handle), Some(version.clone()));

        let mut wrong = card.clone();
        wrong["golden"][0]["output"][0] = json!(123.0);
        let refused = finish(&document(Some(&wrong)), &handle);
        assert_eq!(refused.status, "FAILED", "{refused:?}");
        assert_eq!(
            ModelUpdater::version(&handle),
            Some(version),
            "the running model stays"
        );
    }

    #[test]
    fn a_verified_model_is_swapped_and_succeeds() {
        let fake = FakeUpdater {
            version: Mutex::new(Some("1.0.0".into())),
            ..FakeUpdater::default()
        };
        let e = execution(&job("j1", b"onnx-bytes", None)).unwrap();
        assert_eq!(in_progress(&e).status, "IN_PROGRESS");
        let done = finish(&e, &fake);
        assert_eq!(done.status, "SUCCEEDED", "{done:?}");
        assert_eq!(*fake.calls.lock().unwrap(), vec!["swap 2.0.0 10"]);
        assert!(done.details.contains(&("previous_model", "1.0.0".into())));
    }

    #[test]
    fn a_bad_hash_fails_without_touching_the_model() {
        let fake = FakeUpdater::default();
        let e = execution(&job("j2", b"onnx-bytes", Some(&"0".repeat(64)))).unwrap();
        let done = finish(&e, &fake);
        assert_eq!(done.status, "FAILED");
        assert!(done.details[0].1.contains("SHA-256 mismatch"), "{done:?}");
        assert!(fake.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn a_swap_that_does_not_take_is_rolled_back() {
        let fake = FakeUpdater {
            version: Mutex::new(Some("1.0.0".into())),
            ignore_swap: true,
            ..FakeUpdater::default()
        };
        let e = execution(&job("j3", b"x", None)).unwrap();
        let done = finish(&e, &fake);
        assert_eq!(done.status, "FAILED");
        assert_eq!(
            *fake.calls.lock().unwrap(),
            vec!["swap 2.0.0 1", "rollback"]
        );
        assert!(done.details.contains(&("rolled_back", "true".into())));
    }

    #[test]
    fn a_refused_swap_fails_and_finished_executions_are_ignored() {
        let fake = FakeUpdater {
            refuse: true,
            ..FakeUpdater::default()
        };
        let e = execution(&job("j4", b"x", None)).unwrap();
        assert_eq!(finish(&e, &fake).status, "FAILED");
        assert_eq!(
            execution(br#"{"execution":{"jobId":"j","status":"SUCCEEDED"}}"#),
            None
        );
        assert_eq!(execution(br#"{"timestamp":1}"#), None);
        let mut taken = Taken::default();
        assert!(taken.take("j4"));
        assert!(!taken.take("j4"));
    }

    #[test]
    fn a_rollback_job_rolls_back_and_an_unknown_operation_changes_nothing() {
        let fake = FakeUpdater {
            version: Mutex::new(Some("1.0.0".into())),
            ..FakeUpdater::default()
        };
        let run = |document: Value| {
            finish(
                &Execution {
                    job_id: "j5".into(),
                    document,
                },
                &fake,
            )
        };
        let done = run(json!({"operation": "model-rollback"}));
        assert_eq!(done.status, "SUCCEEDED", "{done:?}");
        assert_eq!(*fake.calls.lock().unwrap(), vec!["rollback"]);
        let extra = run(json!({"operation": "model-rollback", "to": "0.9"}));
        assert_eq!(extra.status, "FAILED", "{extra:?}");
        let unknown = run(json!({"operation": "model-delete"}));
        assert_eq!(unknown.status, "FAILED");
        assert!(
            unknown.details[0].1.contains("model-rollback"),
            "{unknown:?}"
        );
        assert_eq!(
            fake.calls.lock().unwrap().len(),
            1,
            "nothing else was called"
        );
    }
}
