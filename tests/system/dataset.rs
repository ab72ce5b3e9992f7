//! A fleet's own data through the real binary: `vigil simulate` writes drives as a gateway
//! logs them, `vigil dataset` turns them (and the repository's real truck log) into the
//! 1 Hz training CSV, and `vigil eval --data --labels` scores the built-in model on them,
//! writing its JSON and its one-page HTML. A missing input, or a label that does not fit
//! the data, is reported by name and line.

use std::path::Path;

use crate::run;

const CARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/forecaster.card.json"
);
const CSS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/j1939-truck-css.candump.log"
);

fn simulate(dir: &Path, name: &str, scenario: &str, seed: &str) -> String {
    let log = dir.join(name);
    let log = log.to_str().unwrap();
    let out = run(&[
        "simulate",
        "--scenario",
        scenario,
        "--seed",
        seed,
        "--duration",
        "25m",
        "--fault-at",
        "10m",
        "--out",
        log,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    log.to_owned()
}

#[test]
fn dataset_then_eval_on_recorded_drives_scores_a_labelled_fault_and_refuses_a_bad_label() {
    let dir = tempfile::tempdir().unwrap();
    let normal = simulate(dir.path(), "normal.log", "normal", "3");
    let faulty = simulate(dir.path(), "stuck.log", "stuck-sensor", "4");
    let missing = dir.path().join("missing.log");
    let data = dir.path().join("data");
    let out = run(&[
        "dataset",
        "--input",
        &normal,
        &faulty,
        CSS,
        missing.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One input could not be read: exit 1, the other three converted all the same.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing.log: NOT CONVERTED: cannot read it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 of 4 inputs converted into 3 CSVs"),
        "{stderr}"
    );
    for csv in ["normal.csv", "stuck.csv", "j1939-truck-css.candump.csv"] {
        let text = std::fs::read_to_string(data.join(csv)).unwrap();
        let header = text.lines().next().unwrap();
        assert!(
            header.starts_with(
                "timestamp,Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
            ),
            "{csv}: {header}"
        );
        assert!(
            text.lines().count() > 100,
            "{csv}: {} lines",
            text.lines().count()
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("dataset-summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["outputs"].as_array().unwrap().len(), 3);
    // 25 minutes at 1 Hz, and the node's last readings: the recording reader places the
    // node's messages by its own clock from the log's start, and the simulated node booted
    // 2 to 30 s before the log.
    let rows = summary["outputs"][0]["rows"].as_u64().unwrap();
    assert!((1500..=1531).contains(&rows), "{rows} rows");

    // The labels `vigil simulate` wrote, as the user's LABELS.csv.
    let simulated = std::fs::read_to_string(dir.path().join("stuck.labels.csv")).unwrap();
    let fault: Vec<&str> = simulated.lines().nth(1).unwrap().split(',').collect();
    let labels = dir.path().join("labels.csv");
    std::fs::write(
        &labels,
        format!(
            "file,signal,start,end,kind\nstuck.csv,{},{},{},{}\n",
            fault[1], fault[2], fault[3], fault[0]
        ),
    )
    .unwrap();
    let json = dir.path().join("eval.json");
    let out = run(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--model",
        CARD,
        "--out",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("| stuck-sensor |"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let stage = &report["faults"][0][1][0];
    assert_eq!(stage[0], "stage");
    assert_eq!(stage[1]["events"], 1);
    assert_eq!(
        stage[1]["detected"], 1,
        "the stuck coolant is caught: {report}"
    );
    assert_eq!(report["data"]["files"].as_array().unwrap().len(), 3);
    let html = std::fs::read_to_string(dir.path().join("eval.html")).unwrap();
    assert!(
        html.contains("stuck-sensor") && html.contains("False alarms"),
        "{html}"
    );

    // A label whose end comes before its start: refused, exit 2, its line named.
    std::fs::write(
        &labels,
        format!(
            "file,signal,start,end,kind\nstuck.csv,{},{},{},{}\n",
            fault[1], fault[3], fault[2], fault[0]
        ),
    )
    .unwrap();
    let out = run(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--model",
        CARD,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("labels.csv, line 2: the end"), "{stderr}");
}
