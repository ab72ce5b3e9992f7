//! A fleet's own model, the whole loop, on drives the test makes: `vigil simulate` records a
//! small fleet as gateways log it, `vigil dataset` turns the logs into the 1 Hz CSV,
//! `train.py --data` trains and calibrates a model of the coolant and the outside air (no
//! oil; the air is a signal today's built-in model does not watch) with the engine speed
//! as context, `vigil eval --data --labels` scores it on a labelled fault drive,
//! `vigil model job` builds the job document, the cloud sends it to a running agent over a
//! real Mosquitto with mutual TLS, and after a restart the agent still runs the new model.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::broker::{Mosquitto, Pki};
use crate::jobs::{Thing, cloud_of, model_job, online_status, status_model, stop};
use crate::uplink::agent_config;
use crate::{python, run, vigil, write_file};

const THING: &str = "loop-truck";
/// The config's (built-in) model, and the one the fleet trains.
const BUILTIN: &str = "2.3.0";
const TRAINED: &str = "1.0.0-loop";
const COOLANT: &str = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature";
const AIR: &str = "Vehicle.Exterior.AirTemperature";
const OIL: &str = "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature";
const ENGINE_SPEED: &str = "Vehicle.Powertrain.CombustionEngine.Speed";
const TRAIN_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/train.py");

/// One recorded drive: the log's name, the scenario, the truck's seed, its length.
struct Drive(&'static str, &'static str, u64, &'static str);

/// Training needs 2.3 h of whole windows of each signal for a model of two kinds (ten
/// rows per parameter, train.py's `minimum_training_hours`): three drives of 50 minutes.
/// Calibration is on a drive of its own, and the eval on a third truck whose coolant
/// sensor sticks 10 minutes in.
static TRAIN: [Drive; 3] = [
    Drive("train-a.log", "normal", 11, "50m"),
    Drive("train-b.log", "normal", 12, "50m"),
    Drive("train-c.log", "normal", 13, "50m"),
];
static CALIBRATE: [Drive; 1] = [Drive("calib.log", "normal", 21, "30m")];
static JUDGE: [Drive; 1] = [Drive("stuck.log", "stuck-sensor", 31, "25m")];

/// Records every drive with `vigil simulate`, all at once (one process each).
fn simulate(dir: &Path, drives: &[&Drive]) {
    let children: Vec<_> = drives
        .iter()
        .map(|drive| {
            let Drive(name, scenario, seed, length) = **drive;
            let child = vigil()
                .args(["simulate", "--scenario", scenario, "--seed"])
                .arg(seed.to_string())
                .args(["--duration", length, "--fault-at", "10m", "--out"])
                .arg(dir.join(name))
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (name, child)
        })
        .collect();
    for (name, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
    }
}

/// `vigil dataset` of `drives`' logs into `out`: one CSV each, every input converted.
fn dataset(dir: &Path, drives: &[Drive], out: &Path) {
    let mut command = vigil();
    command.arg("dataset").arg("--input");
    for Drive(name, ..) in drives {
        command.arg(dir.join(name));
    }
    let done = command.arg("--out").arg(out).output().unwrap();
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{said}");
    let n = drives.len();
    assert!(
        said.contains(&format!("{n} of {n} inputs converted into {n} CSVs")),
        "{said}"
    );
}

/// `train.py --data` on the coolant and the air, calibrated on its own folder; returns
/// the card's path.
fn train(dir: &Path) -> PathBuf {
    let out = dir.join("model");
    let done = Command::new(python())
        .arg(TRAIN_PY)
        .arg("--data")
        .arg(dir.join("train"))
        .arg("--calibration")
        .arg(dir.join("calibration"))
        .arg("--out")
        .arg(&out)
        .args(["--signals", &format!("{COOLANT},{AIR}")])
        // Few epochs: the test checks the loop, not the fit. Half an hour of calibration
        // is accepted as a half-hour "vehicle-day", and the budget is read against it.
        .args(["--epochs", "2", "--hours-per-vehicle-day", "0.5"])
        .args(["--name", "fleet-loop", "--version", TRAINED])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(done.status.success(), "train.py: {said}");
    assert!(said.contains("trained and calibrated in"), "{said}");
    out.join("forecaster.card.json")
}

/// The card's watched signals, and its context's.
fn card_signals(card: &Value) -> (Vec<&str>, &str) {
    let signals = card["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signal"].as_str().unwrap())
        .collect();
    (signals, card["context"]["signal"].as_str().unwrap())
}

/// The simulator's label of the stuck drive, as `vigil eval --labels` reads it.
fn labels(dir: &Path) -> PathBuf {
    let simulated = std::fs::read_to_string(dir.join("stuck.labels.csv")).unwrap();
    let row = simulated.lines().nth(1).expect("the stuck drive's fault");
    let [fault, signal, start, end] = row.split(',').collect::<Vec<_>>()[..] else {
        panic!("{row}")
    };
    assert_eq!(signal, COOLANT);
    write_file(
        dir,
        "labels.csv",
        &format!("file,signal,start,end,kind\nstuck.csv,{signal},{start},{end},{fault}\n"),
    )
}

/// `vigil eval --data --labels` with the trained card: the stage catches the stuck coolant.
fn evaluate(dir: &Path, card: &Path) {
    let json = dir.join("eval.json");
    let out = run(&[
        "eval",
        "--data",
        dir.join("eval").to_str().unwrap(),
        "--labels",
        labels(dir).to_str().unwrap(),
        "--model",
        card.to_str().unwrap(),
        "--out",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (fault, cells) = (&report["faults"][0][0], &report["faults"][0][1]);
    assert_eq!(fault, "stuck-sensor", "{report}");
    let stage = &cells[0];
    assert_eq!(stage[0], "stage");
    assert_eq!(stage[1]["events"], 1, "{report}");
    assert_eq!(
        stage[1]["detected"], 1,
        "the stuck coolant is caught: {report}"
    );
    assert!(dir.join("eval.html").exists());
}

#[test]
fn a_fleet_trains_a_model_of_its_own_signals_evaluates_it_and_the_truck_runs_it_after_a_restart() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let every: Vec<&Drive> = TRAIN.iter().chain(&CALIBRATE).chain(&JUDGE).collect();
    simulate(dir, &every);
    dataset(dir, &TRAIN, &dir.join("train"));
    dataset(dir, &CALIBRATE, &dir.join("calibration"));
    dataset(dir, &JUDGE, &dir.join("eval"));

    let card_path = train(dir);
    let card: Value = serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    let (signals, context) = card_signals(&card);
    assert_eq!(signals, [COOLANT, AIR], "no oil, and the air");
    assert!(!signals.contains(&OIL));
    assert_eq!(context, ENGINE_SPEED);
    assert_eq!(card["version"], TRAINED);

    evaluate(dir, &card_path);

    let document = model_job(&card_path, &dir.join("job.json"));
    assert_eq!(document["model"]["version"], TRAINED);
    assert_eq!(document["model"]["card"]["signals"], card["signals"]);

    // A truck on the fleet's broker, its model store on disk, its status every second.
    let broker = Mosquitto::start(&pki);
    let cloud = cloud_of(&pki, broker.port, THING);
    let truck = Thing {
        cloud: &cloud,
        name: THING,
    };
    let id = pki.client(THING, None, false);
    let config = format!(
        "{}status_interval = \"1s\"\n\n[model_store]\npath = \"{}\"\n",
        agent_config(
            THING,
            broker.port,
            &pki.ca.pem,
            &id,
            &dir.join("spool").display().to_string()
        ),
        dir.join("models").display()
    );
    let config = write_file(dir, "vigil.toml", &config);

    let (agent, model) = truck.start(&config);
    assert_eq!(model, json!({"version": BUILTIN, "from": "config"}));
    truck.notify("fleet-model", &document);
    let seen = cloud.until("the model job's end", |seen| {
        truck.finished(seen, "fleet-model").is_some()
    });
    let done = truck.finished(&seen, "fleet-model").unwrap();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["statusDetails"]["model_version"], TRAINED, "{done}");
    truck.wait_for_model(TRAINED, "stored");
    stop(agent);

    // After a restart the truck runs the fleet's model from its store.
    let (agent, model) = truck.start(&config);
    assert_eq!(
        model,
        json!({"version": TRAINED, "from": "stored", "entry": 1})
    );
    // The air, which no built-in rule watches, is judged by the model: the detector watches
    // every signal its card lists, and the status's `detect.model.signals` names the
    // signals the model has run on at least once.
    let seen = cloud.until("a status whose model has run on the air", |seen| {
        online_status(seen).is_some_and(|s| ran_on(&s, AIR) && ran_on(&s, COOLANT))
    });
    assert_eq!(
        status_model(&seen).unwrap(),
        json!({"version": TRAINED, "from": "stored", "entry": 1})
    );
    stop(agent);
}

/// Whether a status says the model has run on `signal`.
fn ran_on(status: &Value, signal: &str) -> bool {
    status["detect"]["model"]["signals"]
        .as_array()
        .is_some_and(|s| s.iter().any(|n| n == signal))
}
