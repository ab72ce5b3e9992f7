//! The cloud's side of model updates, for the system tests that ship a model to a running
//! agent over Mosquitto: `vigil model job` builds the document, the cloud notifies the
//! agent of the job as AWS IoT Jobs does, and reads the job's end, the status and the
//! shadow's reports, each checked against its JSON Schema.

use std::path::Path;

use serde_json::{Value, json};

use crate::broker::{Fleet, KillOnDrop, LIMIT, Pki, run_agent};
use crate::schema::assert_valid;
use crate::{Lines, vigil, wait_with_limit};

/// What the cloud client received: (topic, payload), oldest first.
pub type Seen = Vec<(String, Vec<u8>)>;

/// `vigil model job --card CARD --out OUT`: the document, checked against its schema and
/// AWS IoT Jobs' 32 KB limit, with the size the command says matching the file's.
pub fn model_job(card: &Path, out: &Path) -> Value {
    let done = vigil()
        .args(["model", "job", "--card"])
        .arg(card)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{said}");
    assert!(said.contains("of AWS IoT Jobs' 32,768"), "{said}");
    let bytes = std::fs::read(out).unwrap();
    assert!(bytes.len() <= 32_768, "{} bytes", bytes.len());
    assert!(
        said.contains(&format!("job document of {} bytes", thousands(bytes.len()))),
        "{said}"
    );
    let document = assert_valid("model-job.schema.json", &bytes);
    assert!(document["model"]["card"].get("evaluation").is_none());
    document
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let (head, tail) = s.split_at(s.len() % 3);
    let mut groups: Vec<&str> = tail
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    if !head.is_empty() {
        groups.insert(0, head);
    }
    groups.join(",")
}

/// The newest online status in `seen`, checked against its schema.
pub fn online_status(seen: &[(String, Vec<u8>)]) -> Option<Value> {
    seen.iter()
        .filter(|(t, _)| t.ends_with("/status"))
        .map(|(_, p)| assert_valid("status.schema.json", p))
        .rfind(|v| v["state"] == "online")
}

/// The running model an online status reports, if `seen` holds one.
pub fn status_model(seen: &[(String, Vec<u8>)]) -> Option<Value> {
    online_status(seen).map(|v| v["model"].clone())
}

/// The cloud on the broker at `port`, hearing everything `thing` publishes: its jobs and
/// shadow topics and its status.
pub fn cloud_of(pki: &Pki, port: u16, thing: &str) -> Fleet {
    Fleet::connect(
        pki,
        port,
        "cloud",
        &[
            &format!("$aws/things/{thing}/#"),
            &format!("dt/vigil/{thing}/status"),
        ],
    )
}

/// One truck as the cloud sees it: its jobs, shadow and status topics on the broker.
pub struct Thing<'a> {
    pub cloud: &'a Fleet,
    pub name: &'a str,
}

impl Thing<'_> {
    /// Sends a job as AWS IoT Jobs' `notify-next` does.
    pub fn notify(&self, job_id: &str, document: &Value) {
        let execution = json!({"timestamp": 1, "execution": {
            "jobId": job_id, "status": "QUEUED", "versionNumber": 1, "jobDocument": document}});
        self.cloud.publish(
            &format!("$aws/things/{}/jobs/notify-next", self.name),
            serde_json::to_vec(&execution).unwrap(),
            false,
        );
    }

    /// The job's final status, once the agent sent it.
    pub fn finished(&self, seen: &[(String, Vec<u8>)], job_id: &str) -> Option<Value> {
        let topic = format!("$aws/things/{}/jobs/{job_id}/update", self.name);
        seen.iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, p)| assert_valid("job-update.schema.json", p))
            .find(|v| v["status"] != "IN_PROGRESS")
    }

    /// The running model the shadow's reports say, newest last.
    pub fn shadow_models(&self, seen: &[(String, Vec<u8>)]) -> Vec<Value> {
        let topic = format!("$aws/things/{}/shadow/name/vigil/update", self.name);
        seen.iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, p)| {
                assert_valid("shadow-update.schema.json", p)["state"]["reported"]["model"].clone()
            })
            .collect()
    }

    /// Starts the agent; once it asks for its shadow (from then on it hears jobs) answers
    /// as AWS does when there is none yet, and waits for its first report and online
    /// status. Returns the model both say runs.
    pub fn start(&self, config: &Path) -> ((KillOnDrop, Lines), Value) {
        let agent = run_agent(config);
        let shadow = format!("$aws/things/{}/shadow/name/vigil", self.name);
        let asked: Seen = self.cloud.until("the agent's shadow get", |seen| {
            seen.iter().any(|(t, _)| *t == format!("{shadow}/get"))
        });
        self.cloud.publish(
            &format!("{shadow}/get/rejected"),
            br#"{"code":404,"message":"No shadow exists with name: 'vigil'"}"#.to_vec(),
            false,
        );
        let status =
            |more: &[(String, Vec<u8>)]| status_model(more).or_else(|| status_model(&asked));
        let seen = self
            .cloud
            .until("the first shadow report and an online status", |more| {
                !self.shadow_models(more).is_empty() && status(more).is_some()
            });
        let model = status(&seen).unwrap();
        assert_eq!(
            self.shadow_models(&seen).last(),
            Some(&model),
            "the shadow and the status say the same"
        );
        (agent, model)
    }

    /// Waits for an online status whose model is `version` from `from`.
    pub fn wait_for_model(&self, version: &str, from: &str) -> Value {
        let seen = self
            .cloud
            .until(&format!("a status running {version} from {from}"), |seen| {
                status_model(seen).is_some_and(|m| m["version"] == version && m["from"] == from)
            });
        status_model(&seen).unwrap()
    }
}

/// SIGTERM, and a clean exit within the limit.
pub fn stop(mut agent: (KillOnDrop, Lines)) {
    let child = agent.0.0.take().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_with_limit(child, LIMIT).expect("the agent stops on SIGTERM");
    assert!(status.success(), "{status:?}: {:#?}", agent.1.rest(LIMIT));
}
