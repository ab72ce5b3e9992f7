//! `vigil eval --data --labels` (`vigil_lab::eval::run_on_data`) on drives the test makes:
//! the simulated eval's own drives, recorded as a gateway logs them, exported by `vigil
//! dataset` and labelled from the simulator's fault intervals, must give the figures the
//! simulated eval gives for them. Labels that do not fit the data are refused by line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vigil_agent::decode::dbc::DbcConfig;
use vigil_agent::detect::{DetectConfig, Model};
use vigil_lab::Judge;
use vigil_lab::eval::{self, DataEvalError, DataOptions, EvalOptions, EvalReport, LABELS_HEADER};
use vigil_lab::export::{self, DatasetCommand};
use vigil_sim::record;

/// Detected events of `detector` over a report's rows.
fn detected(report: &EvalReport, detector: &str) -> Vec<(String, usize, usize)> {
    report
        .faults
        .iter()
        .map(|(fault, cells)| {
            let cell = &cells.iter().find(|(d, _)| d == detector).unwrap().1;
            (fault.clone(), cell.detected, cell.visible)
        })
        .collect()
}

fn false_alarms(report: &EvalReport, detector: &str) -> usize {
    report
        .false_alarms
        .iter()
        .find(|(d, _)| d == detector)
        .unwrap()
        .1
}

#[test]
fn recorded_drives_through_dataset_score_as_the_simulated_eval_scores_them() {
    // Fault drives only, of two faults that show within minutes: a coolant sensor that
    // drops out (the engine's controller, on the bus) and a tank's PT100 that drops out
    // (the node, on the serial line). Normal hours and the baselines' calibration hours are
    // what `labels_...` and the simulated eval's own tests cover; here they would only
    // make the test slow (an hour of simulated truck is over a minute in a debug build).
    let options = EvalOptions {
        drives_per_fault: 1,
        normal_drives: 0,
        fault_drive: Duration::from_secs(16 * 60),
        slow_fault_drive: Duration::from_secs(16 * 60),
        calibration_drives: 0,
        quirks: Vec::new(),
        rows: ["dropout", "dropout (tank)"].map(String::from).to_vec(),
    };
    let model = Arc::new(Model::builtin().unwrap());
    let simulated = eval::run(model.clone(), &DetectConfig::default(), &options, |_| {});

    // The same drives, as a gateway would have logged them, and their labels.
    let dir = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    let mut labels = format!("{LABELS_HEADER}\n");
    for (i, drive) in eval::simulated_drives(&options).into_iter().enumerate() {
        let log = dir.path().join(format!("drive-{i:02}.log"));
        record::write(drive.params.clone(), drive.scenario, drive.length, &log).unwrap();
        logs.push(log);
        if let (Some(row), Some(fault)) = (drive.row, drive.fault) {
            let unix = |t: Duration| {
                record::unix_seconds(drive.params.start_wall_us + t.as_micros() as i64)
            };
            labels.push_str(&format!(
                "drive-{i:02}.csv,{},{},{},{row}\n",
                fault.signal,
                unix(fault.start),
                unix(fault.end)
            ));
        }
    }
    let data = dir.path().join("data");
    let summary = export::run(&DatasetCommand {
        inputs: logs,
        out: data.clone(),
        table: DbcConfig::default().load().unwrap(),
    })
    .unwrap();
    assert_eq!(summary.failed_inputs(), 0);
    let labels_path = dir.path().join("labels.csv");
    std::fs::write(&labels_path, labels).unwrap();
    let judge = Judge {
        model: Some(model),
        ..Judge::default()
    };
    let recorded = eval::run_on_data(
        &judge,
        &DataOptions {
            dir: data,
            labels: Some(labels_path),
        },
        |_| {},
    )
    .unwrap();
    println!(
        "simulated:\n{}\nrecorded:\n{}",
        simulated.table_markdown, recorded.table_markdown
    );

    // The same rows, in the same order, one event each.
    let rows = |r: &EvalReport| r.faults.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>();
    assert_eq!(rows(&recorded), rows(&simulated));
    // The same clean time, every fault drive up to its fault: to the second per drive on
    // the bus's clock, and up to 30 s more where the node's readings (placed by its own
    // clock, which booted 2 to 30 s before the log) run past the log's last frame.
    let drives = simulated.faults.len() as f64;
    assert!(
        (recorded.clean_hours - simulated.clean_hours).abs() <= drives * 31.0 / 3600.0,
        "{} vs {}",
        recorded.clean_hours,
        simulated.clean_hours
    );
    assert!(simulated.clean_hours > 0.3, "{}", simulated.clean_hours);
    // The detect stage, the model and the rules see the same 1 Hz values either way, so
    // they catch the same faults: an event the simulated eval counts (one that showed in
    // the data) is caught on the recording too.
    for detector in ["stage", "model", "rules"] {
        let (sim, rec) = (
            detected(&simulated, detector),
            detected(&recorded, detector),
        );
        let missed: Vec<&String> = sim
            .iter()
            .zip(&rec)
            .filter(|(s, r)| s.1 > r.1)
            .map(|(s, _)| &s.0)
            .collect();
        assert!(
            missed.len() <= 1,
            "{detector} missed on the recording: {missed:?}"
        );
        let (sum_sim, sum_rec) = (
            sim.iter().map(|s| s.1).sum::<usize>(),
            rec.iter().map(|r| r.1).sum::<usize>(),
        );
        assert!(
            sum_rec >= sum_sim,
            "{detector}: {sum_rec} detected on the recordings, {sum_sim} simulated"
        );
        let (fa_sim, fa_rec) = (
            false_alarms(&simulated, detector),
            false_alarms(&recorded, detector),
        );
        assert!(
            fa_rec.abs_diff(fa_sim) <= 1,
            "{detector}: {fa_rec} false alarms on the recordings, {fa_sim} simulated"
        );
    }
    let html = eval::html(&recorded);
    assert!(
        html.contains("<table>") && html.contains("drive-00.csv"),
        "{html}"
    );
    assert!(!html.contains("http"), "self-contained: nothing fetched");
}

/// Two short CSVs of readings in `dir`.
fn two_files(dir: &Path) {
    let mut text = String::from("timestamp,Vehicle.Speed,Vehicle.Exterior.AirTemperature\n");
    for t in 0..120 {
        text.push_str(&format!("{},{},{}\n", 1_700_000_000 + t, 50 + t % 3, 12));
    }
    std::fs::write(dir.join("a.csv"), &text).unwrap();
    std::fs::write(dir.join("b.csv"), &text).unwrap();
}

#[test]
fn labels_that_do_not_fit_the_data_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    two_files(dir.path());
    let judge = Judge {
        model: Some(Arc::new(Model::builtin().unwrap())),
        ..Judge::default()
    };
    let good = "a.csv,Vehicle.Speed,1700000010,1700000050,stuck";
    for (bad, line, says) in [
        (
            "c.csv,Vehicle.Speed,1700000010,1700000050,stuck",
            3,
            "no file \"c.csv\"",
        ),
        (
            "b.csv,Vehicle.Speed,1700000050,1700000010,stuck",
            3,
            "before the start",
        ),
        (
            "b.csv,Vehicle.OilLevel,1700000010,1700000050,stuck",
            3,
            "no column \"Vehicle.OilLevel\"",
        ),
        ("b.csv,Vehicle.Speed,soon,1700000050,stuck", 3, "not a time"),
        ("b.csv,Vehicle.Speed,1700000010", 3, "3 fields, not 5"),
    ] {
        let labels = dir.path().join("labels.csv");
        std::fs::write(&labels, format!("{LABELS_HEADER}\n{good}\n{bad}\n")).unwrap();
        let options = DataOptions {
            dir: dir.path().to_owned(),
            labels: Some(labels),
        };
        let error = eval::run_on_data(&judge, &options, |_| {}).unwrap_err();
        assert!(
            matches!(error, DataEvalError::Label { line: l, .. } if l == line),
            "{bad}: {error}"
        );
        let text = error.to_string();
        assert!(
            text.contains(&format!("line {line}")) && text.contains(says),
            "{text}"
        );
    }
    // Without the bad line the same labels are taken: one event, on a file of two minutes.
    let labels = dir.path().join("labels.csv");
    std::fs::write(&labels, format!("{LABELS_HEADER}\n{good}\n")).unwrap();
    let options = DataOptions {
        dir: dir.path().to_owned(),
        labels: Some(labels),
    };
    let report = eval::run_on_data(&judge, &options, |_| {}).unwrap();
    assert_eq!(report.faults.len(), 1);
    assert_eq!(report.faults[0].1[0].1.events, 1);
    // Clean time: b.csv's 120 rows and a.csv's 10 before its label.
    assert!(
        (report.clean_hours - 130.0 / 3600.0).abs() < 1e-9,
        "{}",
        report.clean_hours
    );
}
