//! Model updates survive a restart: the real `vigil` binary against a real Mosquitto over
//! mutual TLS. `vigil model job` builds the job document, the cloud sends it, the agent
//! keeps the model in its `[model_store]`; after a SIGTERM and a new start it still runs
//! it, and a rollback job returns to the config's model, which the next start keeps.

use std::path::Path;

use serde_json::{Value, json};

use crate::broker::{Fleet, KillOnDrop, LIMIT, Mosquitto, Pki, run_agent};
use crate::schema::assert_valid;
use crate::uplink::agent_config;
use crate::{Lines, vigil, wait_with_limit, write_file};

const THING: &str = "store-truck";
/// The built-in model's version, and the one the job sends (the same network, renamed).
const BUILTIN: &str = "2.3.0";
const SHIPPED: &str = "2.3.1-fleet";

/// The committed model and its card, renamed to [`SHIPPED`], in a folder of its own.
fn shipped_card(dir: &Path) -> std::path::PathBuf {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut card: Value = serde_json::from_str(
        &std::fs::read_to_string(models.join("forecaster.card.json")).unwrap(),
    )
    .unwrap();
    card["version"] = json!(SHIPPED);
    let folder = dir.join("shipped");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(
        models.join("forecaster.onnx"),
        folder.join("forecaster.onnx"),
    )
    .unwrap();
    write_file(&folder, "forecaster.card.json", &card.to_string())
}

/// `vigil model job`: the document, checked against its schema and the 32 KB limit.
fn build_job(dir: &Path) -> Value {
    let card = shipped_card(dir);
    let out = dir.join("job.json");
    let done = vigil()
        .args(["model", "job", "--card"])
        .arg(&card)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{said}");
    assert!(said.contains("of AWS IoT Jobs' 32,768"), "{said}");
    let bytes = std::fs::read(&out).unwrap();
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

fn notify(cloud: &Fleet, job_id: &str, document: &Value) {
    let execution = json!({"timestamp": 1, "execution": {
        "jobId": job_id, "status": "QUEUED", "versionNumber": 1, "jobDocument": document}});
    cloud.publish(
        &format!("$aws/things/{THING}/jobs/notify-next"),
        serde_json::to_vec(&execution).unwrap(),
        false,
    );
}

/// The job's final status, once the agent sent it.
fn finished(seen: &[(String, Vec<u8>)], job_id: &str) -> Option<Value> {
    let topic = format!("$aws/things/{THING}/jobs/{job_id}/update");
    seen.iter()
        .filter(|(t, _)| *t == topic)
        .map(|(_, p)| assert_valid("job-update.schema.json", p))
        .find(|v| v["status"] != "IN_PROGRESS")
}

/// The running model an online status reports, if `seen` holds one.
fn status_model(seen: &[(String, Vec<u8>)]) -> Option<Value> {
    seen.iter()
        .filter(|(t, _)| t.ends_with("/status"))
        .map(|(_, p)| assert_valid("status.schema.json", p))
        .filter(|v| v["state"] == "online")
        .map(|v| v["model"].clone())
        .next_back()
}

/// The running model the shadow's reports say, newest last.
fn shadow_models(seen: &[(String, Vec<u8>)]) -> Vec<Value> {
    let topic = format!("$aws/things/{THING}/shadow/name/vigil/update");
    seen.iter()
        .filter(|(t, _)| *t == topic)
        .map(|(_, p)| {
            assert_valid("shadow-update.schema.json", p)["state"]["reported"]["model"].clone()
        })
        .collect()
}

type Seen = Vec<(String, Vec<u8>)>;

/// Starts the agent; once it asks for its shadow (from then on it hears jobs) answers as
/// AWS does when there is none yet, and waits for its first report and online status.
/// Returns the model both say runs.
fn start(cloud: &Fleet, config: &Path) -> ((KillOnDrop, Lines), Value) {
    let agent = run_agent(config);
    let shadow = format!("$aws/things/{THING}/shadow/name/vigil");
    let asked: Seen = cloud.until("the agent's shadow get", |seen| {
        seen.iter().any(|(t, _)| *t == format!("{shadow}/get"))
    });
    cloud.publish(
        &format!("{shadow}/get/rejected"),
        br#"{"code":404,"message":"No shadow exists with name: 'vigil'"}"#.to_vec(),
        false,
    );
    let status = |more: &[(String, Vec<u8>)]| status_model(more).or_else(|| status_model(&asked));
    let seen = cloud.until("the first shadow report and an online status", |more| {
        !shadow_models(more).is_empty() && status(more).is_some()
    });
    let model = status(&seen).unwrap();
    assert_eq!(
        shadow_models(&seen).last(),
        Some(&model),
        "the shadow and the status say the same"
    );
    (agent, model)
}

/// SIGTERM, and a clean exit within the limit.
fn stop(mut agent: (KillOnDrop, Lines)) {
    let child = agent.0.0.take().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_with_limit(child, LIMIT).expect("the agent stops on SIGTERM");
    assert!(status.success(), "{status:?}: {:#?}", agent.1.rest(LIMIT));
}

/// Waits for an online status whose model is `version` from `from`.
fn wait_for_model(cloud: &Fleet, version: &str, from: &str) -> Value {
    let seen = cloud.until(&format!("a status running {version} from {from}"), |seen| {
        status_model(seen).is_some_and(|m| m["version"] == version && m["from"] == from)
    });
    status_model(&seen).unwrap()
}

#[test]
fn a_model_sent_by_a_job_runs_again_after_a_restart_and_a_rollback_job_is_kept_too() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let cloud = Fleet::connect(
        &pki,
        broker.port,
        "cloud",
        &[
            &format!("$aws/things/{THING}/#"),
            &format!("dt/vigil/{THING}/status"),
        ],
    );
    let document = build_job(pki.dir.path());
    let id = pki.client(THING, None, false);
    let spool = pki.dir.path().join("spool");
    let store = pki.dir.path().join("models");
    let config = format!(
        "{}\n[model_store]\npath = \"{}\"\n",
        agent_config(
            THING,
            broker.port,
            &pki.ca.pem,
            &id,
            &spool.display().to_string()
        ),
        store.display()
    );
    let config = write_file(pki.dir.path(), "vigil.toml", &config);

    // First start: nothing stored, the config's (built-in) model runs.
    let (agent, model) = start(&cloud, &config);
    assert_eq!(model, json!({"version": BUILTIN, "from": "config"}));
    notify(&cloud, "ship", &document);
    let seen = cloud.until("the model job's end", |seen| {
        finished(seen, "ship").is_some()
            && status_model(seen).is_some_and(|m| m["version"] == SHIPPED)
    });
    let done = finished(&seen, "ship").unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["statusDetails"]["model_version"], SHIPPED, "{done}");
    let model = status_model(&seen).unwrap();
    assert_eq!(
        model,
        json!({"version": SHIPPED, "from": "stored", "entry": 1})
    );
    assert_eq!(
        shadow_models(&seen).last(),
        Some(&model),
        "the shadow says so too"
    );
    stop(agent);

    // After a restart the stored model runs, and the shadow's first report says so.
    let (agent, model) = start(&cloud, &config);
    assert_eq!(
        model,
        json!({"version": SHIPPED, "from": "stored", "entry": 1})
    );

    // A rollback job returns to the config's model...
    notify(&cloud, "back", &json!({"operation": "model-rollback"}));
    let seen = cloud.until("the rollback job's end", |seen| {
        finished(seen, "back").is_some()
    });
    let done = finished(&seen, "back").unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["statusDetails"]["model_version"], BUILTIN, "{done}");
    assert_eq!(done["statusDetails"]["previous_model"], SHIPPED, "{done}");
    wait_for_model(&cloud, BUILTIN, "config");
    stop(agent);

    // ...and the next start keeps it: the rolled-back model is gone from the store.
    let (agent, model) = start(&cloud, &config);
    assert_eq!(model, json!({"version": BUILTIN, "from": "config"}));
    stop(agent);
    let left: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
