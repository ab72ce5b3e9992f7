//! A source that ends by itself (a replayed log) drains the pipeline and the agent exits 0
//! without being told to stop.

use crate::{run, write_file};

#[test]
fn run_on_a_replayed_truck_log_ends_by_itself_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/j1939-truck-css.candump.log"
    );
    let config = write_file(
        dir.path(),
        "vigil.toml",
        &format!(
            "[vehicle]\nid = \"replay-truck\"\n\n[source.replay]\npath = \"{log}\"\nspeed = 0.0\n"
        ),
    );
    let out = run(&["run", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("event=\"source_ended\" source=\"replay\""),
        "{stderr}"
    );
    assert!(stderr.contains("tasks_left=0"), "{stderr}");
    // The summary line counts what the decoder made of the log: it must be most of its
    // 14,245 frames of the mapped parameter groups, not nothing.
    let readings = count_after(&stderr, "0 left; ");
    assert!(readings > 14_000, "{readings} readings from the real log");
}

/// The number that follows `marker` in a summary line of `stderr` (`replayed 12345 readings`).
fn count_after(stderr: &str, marker: &str) -> u64 {
    stderr
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line with {marker:?}: {stderr}"))
}

/// Every alert a run or a replay raised: id -> (signal, kind of its most severe finding,
/// highest severity, value when raised).
type Alerts = std::collections::BTreeMap<u64, (String, String, String, f64)>;

/// The alerts `vigil run` logged (`alert_raised`, `alert_escalated` events on stderr): an
/// escalation gives the incident its new lead kind and severity.
fn logged_alerts(stderr: &str) -> Alerts {
    let field = |line: &str, key: &str| -> String {
        let at = line
            .find(&format!(" {key}="))
            .unwrap_or_else(|| panic!("no {key} in {line}"));
        let rest = &line[at + key.len() + 2..];
        rest.split(' ').next().unwrap().trim_matches('"').to_owned()
    };
    let mut alerts = Alerts::new();
    for line in stderr.lines() {
        if line.contains("event=\"alert_raised\"") {
            let id: u64 = field(line, "id").parse().unwrap();
            let value: f64 = field(line, "value").parse().unwrap();
            let entry = (
                field(line, "signal"),
                field(line, "kind"),
                field(line, "severity"),
                value,
            );
            alerts.insert(id, entry);
        } else if line.contains("event=\"alert_escalated\"") {
            let id: u64 = field(line, "id").parse().unwrap();
            let alert = alerts.get_mut(&id).expect("raised before escalated");
            alert.1 = field(line, "kind");
            alert.2 = field(line, "severity");
        }
    }
    alerts
}

/// The alerts `vigil replay` wrote, one JSON object a line.
fn replayed_alerts(jsonl: &str) -> Alerts {
    jsonl
        .lines()
        .map(|line| {
            let a: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |key: &str| a[key].as_str().unwrap().to_owned();
            (
                a["id"].as_u64().unwrap(),
                (
                    text("signal"),
                    text("kind"),
                    text("severity"),
                    a["value"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn replay_judges_a_log_exactly_as_run_does_with_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    // A simulated drive whose tank heats, with its serial companion, and the real truck log.
    let drive = dir.path().join("drive.log");
    let simulated = run(&[
        "simulate",
        "--scenario",
        "tank-heating",
        "--fault-at",
        "1m",
        "--duration",
        "4m",
        "--out",
        drive.to_str().unwrap(),
    ]);
    assert!(simulated.status.success(), "{simulated:?}");
    let real = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/j1939-truck-css.candump.log"
    );
    for log in [drive.to_str().unwrap(), real] {
        // The default detect stage, the built-in model included.
        let config = write_file(
            dir.path(),
            "vigil.toml",
            &format!(
                "[vehicle]\nid = \"same-truck\"\n\n[source.replay]\npath = \"{log}\"\nspeed = 0.0\n"
            ),
        );
        let config = config.to_str().unwrap();
        let agent = run(&["run", "--config", config]);
        let stderr = String::from_utf8_lossy(&agent.stderr);
        assert_eq!(agent.status.code(), Some(0), "{stderr}");
        let out = dir.path().join("alerts.jsonl");
        let replay = run(&[
            "replay",
            "--input",
            log,
            "--config",
            config,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(replay.status.success(), "{replay:?}");
        let replayed = replayed_alerts(&std::fs::read_to_string(&out).unwrap());
        if log == drive.to_str().unwrap() {
            assert!(
                !replayed.is_empty(),
                "the heated tank raises alerts to compare"
            );
        }
        assert_eq!(logged_alerts(&stderr), replayed, "{log}");
    }
}

#[test]
fn a_log_whose_clock_steps_51_years_replays_and_runs_at_once() {
    // The real truck log with its first 20 s stamped in 1970 (a gateway without a clock
    // until NTP): the detect stage once walked every second in between, for hours (a
    // replay's report grew to gigabytes), and held shutdown past its deadline.
    let real = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/j1939-truck-css.candump.log"
    ))
    .unwrap();
    let start: f64 = 1_635_188_455.0;
    let stepped: Vec<String> = real
        .lines()
        .map(|line| {
            let (stamp, rest) = line.split_once(')').unwrap();
            let secs: f64 = stamp.trim_start_matches('(').parse().unwrap();
            if secs < start + 20.0 {
                format!("({:.6}){rest}", secs - start + 42.0)
            } else {
                line.to_owned()
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let log = write_file(dir.path(), "stepped.log", &stepped.join("\n"));
    let config = write_file(
        dir.path(),
        "vigil.toml",
        &format!(
            "[vehicle]\nid = \"stepped-truck\"\n\n[source.replay]\npath = \"{}\"\nspeed = 0.0\n",
            log.display()
        ),
    );
    let began = std::time::Instant::now();
    let out = run(&["run", "--config", config.to_str().unwrap()]);
    let took = began.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("detect_clock_jump"), "{stderr}");
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    // Replayed, rules only, with a report.
    let (alerts, html) = (dir.path().join("a.jsonl"), dir.path().join("r.html"));
    let began = std::time::Instant::now();
    let replay = run(&[
        "replay",
        "--input",
        log.to_str().unwrap(),
        "--model",
        "none",
        "--out",
        alerts.to_str().unwrap(),
        "--report",
        html.to_str().unwrap(),
    ]);
    let took = began.elapsed();
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(replay.status.success(), "{stderr}");
    let readings = count_after(&stderr, "replayed ");
    assert!(readings > 10_000, "{readings} readings");
    let report = std::fs::metadata(&html).unwrap().len();
    assert!(report < 2_000_000, "report of {report} bytes");
    assert!(
        took < std::time::Duration::from_secs(5),
        "replay took {took:?}"
    );
}
