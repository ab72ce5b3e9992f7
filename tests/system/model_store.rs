//! Model updates survive a restart: the real `vigil` binary against a real Mosquitto over
//! mutual TLS. `vigil model job` builds the job document, the cloud sends it, the agent
//! keeps the model in its `[model_store]`; after a SIGTERM and a new start it still runs
//! it, and a rollback job returns to the config's model, which the next start keeps.

use std::path::Path;

use serde_json::{Value, json};

use crate::broker::{Mosquitto, Pki};
use crate::jobs::{Thing, cloud_of, model_job, status_model, stop};
use crate::uplink::agent_config;
use crate::write_file;

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

/// `vigil model job` on the renamed card: the document, checked by [`model_job`].
fn build_job(dir: &Path) -> Value {
    model_job(&shipped_card(dir), &dir.join("job.json"))
}

#[test]
fn a_model_sent_by_a_job_runs_again_after_a_restart_and_a_rollback_job_is_kept_too() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let cloud = cloud_of(&pki, broker.port, THING);
    let truck = Thing {
        cloud: &cloud,
        name: THING,
    };
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
    let (agent, model) = truck.start(&config);
    assert_eq!(model, json!({"version": BUILTIN, "from": "config"}));
    truck.notify("ship", &document);
    let seen = cloud.until("the model job's end", |seen| {
        truck.finished(seen, "ship").is_some()
            && status_model(seen).is_some_and(|m| m["version"] == SHIPPED)
    });
    let done = truck.finished(&seen, "ship").unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["statusDetails"]["model_version"], SHIPPED, "{done}");
    let model = status_model(&seen).unwrap();
    assert_eq!(
        model,
        json!({"version": SHIPPED, "from": "stored", "entry": 1})
    );
    assert_eq!(
        truck.shadow_models(&seen).last(),
        Some(&model),
        "the shadow says so too"
    );
    stop(agent);

    // After a restart the stored model runs, and the shadow's first report says so.
    let (agent, model) = truck.start(&config);
    assert_eq!(
        model,
        json!({"version": SHIPPED, "from": "stored", "entry": 1})
    );

    // A rollback job returns to the config's model...
    truck.notify("back", &json!({"operation": "model-rollback"}));
    let seen = cloud.until("the rollback job's end", |seen| {
        truck.finished(seen, "back").is_some()
    });
    let done = truck.finished(&seen, "back").unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["statusDetails"]["model_version"], BUILTIN, "{done}");
    assert_eq!(done["statusDetails"]["previous_model"], SHIPPED, "{done}");
    truck.wait_for_model(BUILTIN, "config");
    stop(agent);

    // ...and the next start keeps it: the rolled-back model is gone from the store.
    let (agent, model) = truck.start(&config);
    assert_eq!(model, json!({"version": BUILTIN, "from": "config"}));
    stop(agent);
    let left: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
