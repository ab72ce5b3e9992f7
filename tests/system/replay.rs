//! A source that ends by itself (a replayed log) drains the pipeline and the agent exits 0
//! without being told to stop; `vigil replay` judges a log as `vigil run` does, and its
//! report renders in a real browser with its axes, units, legend, labels and alerts.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Lines, run, wait_with_limit, write_file};

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

/// Writes a 4-minute simulated drive whose tank 1 heats from minute 1: `drive`, its
/// `.serial` companion and its `.labels.csv`.
fn simulate_tank_heating(drive: &Path) {
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
}

#[test]
fn replay_judges_a_log_exactly_as_run_does_with_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    // A simulated drive whose tank heats, with its serial companion, and the real truck log.
    let drive = dir.path().join("drive.log");
    simulate_tank_heating(&drive);
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

/// Debian's Chromium, headless, on a local file with `args` (`--dump-dom`, `--screenshot`):
/// what it printed. The flags keep it off the network and out of any profile but a new one.
fn chromium(profile: &Path, args: &[&str], page: &Path) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Debian's chromium renders the report: install it (test.sh does: apt-get install chromium)");
    let (mut stdout, mut stderr) = (
        Lines::of(child.stdout.take().unwrap()),
        Lines::of(child.stderr.take().unwrap()),
    );
    let limit = Duration::from_secs(90);
    let status = wait_with_limit(child, limit);
    let printed = stdout.rest(limit).join("\n");
    let errors = stderr.rest(limit).join("\n");
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium {args:?}: {status:?}\n{errors}"
    );
    printed
}

/// The text of every element of `class` in a serialised DOM.
fn texts<'a>(dom: &'a str, class: &str) -> Vec<&'a str> {
    let marker = format!("class=\"{class}\"");
    dom.match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = &dom[at..];
            let text = &rest[rest.find('>')? + 1..];
            Some(&text[..text.find('<')?])
        })
        .collect()
}

#[test]
fn the_replay_report_renders_in_chromium_with_time_axes_units_labels_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("drive.log");
    simulate_tank_heating(&drive);
    let (alerts, report) = (dir.path().join("a.jsonl"), dir.path().join("report.html"));
    let replay = run(&[
        "replay",
        "--input",
        drive.to_str().unwrap(),
        "--out",
        alerts.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(replay.status.success(), "{replay:?}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "the report needs nothing from anywhere"
    );

    // The DOM as Chromium built it from the file.
    let profile = dir.path().join("chromium-profile");
    let dom = chromium(&profile, &["--dump-dom"], &report);
    // The simulated truck starts at 2026-06-15 06:00:00 UTC: four minutes of clock ticks
    // every 30 s, the date once, and the time since the start above them.
    let clocks = texts(&dom, "clock");
    assert!(clocks.contains(&"06:01:00"), "{clocks:?}");
    let clock = |t: &str| {
        t.len() == 8
            && t.bytes().enumerate().all(|(i, b)| {
                if i % 3 == 2 {
                    b == b':'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    assert!(clocks.iter().all(|t| clock(t)), "{clocks:?}");
    assert!(texts(&dom, "date").contains(&"2026-06-15"));
    let since = texts(&dom, "since");
    assert!(
        since.contains(&"+1m") && since.contains(&"+3m30s"),
        "{since:?}"
    );
    // Units from the signal table: the tanks and engine in degC, the speeds in theirs.
    let units = texts(&dom, "unit");
    for unit in ["degC", "km/h", "rpm"] {
        assert!(units.contains(&unit), "no {unit} axis: {units:?}");
    }
    // The legend says what each mark is, the labels file by name.
    assert!(dom.matches("class=\"legend-entry\"").count() >= 6);
    for entry in [
        "reading",
        "forecast ± 3 spreads",
        "fault label (drive.labels.csv)",
        "critical alert, raised to cleared",
    ] {
        assert!(dom.contains(entry), "no legend entry {entry:?}");
    }
    // The labelled fault and the alert it raised, as spans on compartment 1.
    assert!(
        dom.contains(
            "class=\"label-span\"><title>fault label tank-heating: 06:01:00 to 06:04:00 UTC"
        ),
        "no label span"
    );
    let critical = dom
        .split("class=\"alert-span critical\"><title>")
        .nth(1)
        .expect("no critical alert span");
    assert!(
        critical.starts_with("alert #1: ") && critical.contains("raised 06:01:"),
        "{}",
        &critical[..120.min(critical.len())]
    );

    // A screenshot of the top of the page, kept in the target folder for a look.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-report.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot = format!("--screenshot={}", shot.display());
    chromium(&profile, &[&screenshot, "--window-size=1100,1400"], &report);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dimension = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((dimension(16), dimension(20)), (1100, 1400));
}
