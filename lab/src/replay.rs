//! `vigil replay`: the detect stage over a recorded log, as fast as it can go.
//!
//! Input is a CAN log in any form the agent's log reader reads (candump, Vector ASC, Saleae
//! CSV; `-` for standard input) with the tank node's `.serial` companion when there is one,
//! read by the agent's own [`Recording`] reader and decoded by the same [`Decoder`] the
//! agent runs, or a CSV whose header starts with `timestamp` (Unix seconds) then VSS names.
//! Output is one JSON line per alert (`"category":"alert"`), then one per finding of the
//! bus's intrusion monitor (`"category":"security"`, run on the frames exactly as the
//! agent's decode stage runs it) and, if asked, a single-file HTML report (with the fault
//! labels `vigil simulate` wrote beside the log, `NAME.labels.csv`, when they are there); the summary
//! ([`ReplaySummary::line`]) counts the log's frames and skipped lines and the decoder's
//! counters. The I/O is here; the judging is the detect stage built as the agent builds it
//! ([`Judge`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use vigil_agent::decode::table::SignalTable;
use vigil_agent::decode::{Decoded, Decoder};
use vigil_agent::detect::DetectStatus;
use vigil_agent::detect::alert::{Alert, AlertEvent, AlertKind, Severity};
use vigil_agent::frame::Input;
use vigil_agent::frame::log::{LineSplitter, LogCounts, LogError, next_line};
use vigil_agent::frame::recording::{Recording, serial_companion};
use vigil_agent::reading::{Reading, Signal};
use vigil_agent::security::{Monitor, SecurityConfig, SecurityEvent, SecurityKind};
use vigil_agent::telemetry::{Metrics, MetricsSnapshot};

use vigil_sim::record::{self, Label, LabelsError};

use crate::Judge;
use crate::dataset::{self, CsvError};
use crate::report::{self, Context, Units};

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: CsvError,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{}: {source}", path.display())]
    Labels {
        path: PathBuf,
        #[source]
        source: LabelsError,
    },
}

/// One alert as a JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertLine {
    /// `"alert"`: a replay's output also holds `"security"` lines.
    pub category: &'static str,
    pub id: u64,
    pub signal: Signal,
    /// The sender whose values raised it (`can0/sa00`, a serial port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// For a `sender_conflict`, the sender heard first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    pub kind: AlertKind,
    /// The highest severity it reached.
    pub severity: Severity,
    /// Unix seconds.
    pub raised_at: f64,
    pub cleared_at: Option<f64>,
    pub score: Option<f64>,
    pub threshold: f64,
    pub value: f64,
    pub rule: Arc<str>,
    pub evidence: Vec<Option<f64>>,
    /// The kinds of every finding the incident gathered, first first.
    pub findings: Vec<AlertKind>,
    /// Where the truck was when it was raised: the last known position and its age
    /// (`null` when the log carried no position before it).
    pub position: Option<PositionLine>,
}

/// The last known position of an alert line.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PositionLine {
    pub latitude: f64,
    pub longitude: f64,
    /// Unix seconds of the fix.
    pub at: f64,
    /// Seconds from the fix to the raise, on the log's monotonic clock.
    pub age_s: f64,
}

impl AlertLine {
    fn new(a: &Alert) -> Self {
        AlertLine {
            category: "alert",
            id: a.id,
            signal: a.signal.clone(),
            origin: a.origin.as_ref().map(ToString::to_string),
            peer: a.peer.as_ref().map(ToString::to_string),
            kind: a.kind,
            severity: a.severity,
            raised_at: a.raised_at.wall_secs(),
            cleared_at: None,
            score: a.score,
            threshold: a.threshold,
            value: a.value,
            rule: a.rule.clone(),
            evidence: a
                .evidence
                .iter()
                .map(|v| (!v.is_nan()).then_some(*v))
                .collect(),
            findings: a.findings.clone(),
            position: a.position.map(|p| PositionLine {
                latitude: p.latitude,
                longitude: p.longitude,
                at: p.at.wall_secs(),
                age_s: p.age_s,
            }),
        }
    }
}

/// One finding of the bus's intrusion monitor as a JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecurityLine {
    /// `"security"`.
    pub category: &'static str,
    pub kind: SecurityKind,
    pub severity: Severity,
    /// Unix seconds.
    pub at: f64,
    pub bus: String,
    /// The senders involved (`can0/saF9`), the suspect first.
    pub origins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_id: Option<u32>,
    pub count: u64,
    pub detail: String,
}

impl SecurityLine {
    fn new(e: &SecurityEvent) -> Self {
        SecurityLine {
            category: "security",
            kind: e.kind,
            severity: e.severity,
            at: e.at.wall_secs(),
            bus: e.bus.to_string(),
            origins: e.origins().iter().map(ToString::to_string).collect(),
            pgn: e.pgn,
            can_id: e.can_id,
            count: e.count,
            detail: e.detail.clone(),
        }
    }
}

/// What a replay found.
#[derive(Debug)]
pub struct ReplaySummary {
    pub readings: u64,
    pub alerts: Vec<AlertLine>,
    /// The intrusion monitor's findings (none for a CSV of readings).
    pub security: Vec<SecurityLine>,
    pub model: Option<Arc<str>>,
    pub late_samples: u64,
    /// A CAN log's form, frames and skipped lines by cause (`None` for a CSV of readings).
    pub log: Option<LogCounts>,
    /// The decoder's counters: unknown PGNs, bad lengths, transport sessions.
    pub decoder: MetricsSnapshot,
    /// What the model covered, and the parameters the log's truck does not send.
    pub detect: DetectStatus,
}

impl ReplaySummary {
    /// The one summary line `vigil replay` ends with.
    pub fn line(&self, input: &Path, out: &Path) -> String {
        let mut line = format!(
            "replayed {} readings from {} with {}: {} alerts and {} security findings to {}",
            self.readings,
            input.display(),
            self.model.as_deref().unwrap_or("rules only"),
            self.alerts.len(),
            self.security.len(),
            out.display()
        );
        if let Some(log) = &self.log {
            line.push_str(&format!(
                "; {log}; {}",
                crate::decode::decoder_counts(&self.decoder)
            ));
        }
        line
    }
}

/// Replays `input` through the detect stage `judge` builds, decoding a candump log with
/// `signals` (the config's DBC) and watching its frames with the intrusion monitor
/// `security` configures. Writes the alerts, then the security findings, to `out` and, if
/// asked, the report. A log line that is not a frame is skipped, logged and counted.
pub fn replay(
    judge: &Judge,
    signals: SignalTable,
    security: &SecurityConfig,
    input: &Path,
    out: &Path,
    report: Option<&Path>,
) -> Result<ReplaySummary, ReplayError> {
    let model_id = judge.model_id();
    let mut detector = judge.detector();
    if report.is_some() {
        detector.keep_trace();
    }
    let units = Units::of_table(&signals);
    let mut context = Context::default();
    let mut lines: BTreeMap<u64, AlertLine> = BTreeMap::new();
    let mut events = Vec::new();
    let mut readings = 0u64;
    let mut each = |r: &Reading| {
        readings += 1;
        if report.is_some() {
            context.observe(r);
        }
        detector.observe(r, &mut events);
        for e in events.drain(..) {
            match &e {
                AlertEvent::Raised(a) => {
                    lines.insert(a.id, AlertLine::new(a));
                }
                AlertEvent::Escalated(a) | AlertEvent::Updated(a) => {
                    if let Some(line) = lines.get_mut(&a.id) {
                        line.severity = line.severity.max(a.severity);
                        line.kind = a.kind;
                        line.findings = a.findings.clone();
                    }
                }
                AlertEvent::Cleared { alert, cleared_at } => {
                    if let Some(line) = lines.get_mut(&alert.id) {
                        line.cleared_at = Some(cleared_at.wall_secs());
                        line.findings = alert.findings.clone();
                    }
                }
            }
        }
    };
    let (mut log, mut decoder, mut findings) = (None, MetricsSnapshot::default(), Vec::new());
    if is_readings_csv(input)? {
        let file = open(input)?;
        dataset::read_csv(BufReader::new(file), &mut each).map_err(|source| ReplayError::Csv {
            path: input.to_owned(),
            source,
        })?;
    } else {
        let (counts, metrics) = read_log(input, signals, security, &mut findings, &mut each)?;
        (log, decoder) = (Some(counts), metrics);
    }
    let security: Vec<SecurityLine> = findings.iter().map(SecurityLine::new).collect();
    let alerts: Vec<AlertLine> = lines.into_values().collect();
    let write_err = |source| ReplayError::Io {
        path: out.to_owned(),
        source,
    };
    let mut file = BufWriter::new(File::create(out).map_err(write_err)?);
    for line in &alerts {
        let json = serde_json::to_string(line).expect("an alert line always serialises");
        writeln!(file, "{json}").map_err(write_err)?;
    }
    for line in &security {
        let json = serde_json::to_string(line).expect("a security line always serialises");
        writeln!(file, "{json}").map_err(write_err)?;
    }
    file.flush().map_err(write_err)?;
    let detect = detector.status();
    if let Some(path) = report {
        let labels = labels_beside(input)?;
        let html = report::html(&report::Report {
            input,
            model: model_id.as_deref(),
            detect: &detect,
            trace: &detector.take_trace(),
            context: &context,
            units: &units,
            alerts: &alerts,
            security: &security,
            labels: labels
                .as_ref()
                .map(|(path, rows)| (path.as_path(), rows.as_slice())),
        });
        std::fs::write(path, html).map_err(|source| ReplayError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(ReplaySummary {
        readings,
        alerts,
        security,
        model: model_id,
        late_samples: detector.late_samples(),
        log,
        decoder,
        detect,
    })
}

/// The fault labels `vigil simulate` wrote beside a log (`drive.labels.csv` for
/// `drive.log`), if there are any.
fn labels_beside(input: &Path) -> Result<Option<(PathBuf, Vec<Label>)>, ReplayError> {
    if input.as_os_str() == "-" {
        return Ok(None);
    }
    let path = record::companion_paths(input).1;
    if path == input {
        return Ok(None);
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReplayError::Io { path, source }),
    };
    match record::read_labels(&text) {
        Ok(rows) => Ok(Some((path, rows))),
        Err(source) => Err(ReplayError::Labels { path, source }),
    }
}

fn open(path: &Path) -> Result<File, ReplayError> {
    File::open(path).map_err(|source| ReplayError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Whether `path` is a CSV of readings (its header starts with `timestamp`) rather than a
/// CAN log (a Saleae export is a CSV too).
fn is_readings_csv(path: &Path) -> Result<bool, ReplayError> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return Ok(false);
    }
    let mut start = [0u8; 9];
    let mut file = open(path)?;
    let n = std::io::Read::read(&mut file, &mut start).map_err(|source| ReplayError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(start[..n].eq_ignore_ascii_case(b"timestamp"))
}

/// Decodes a CAN log (`-`: standard input) and its `.serial` companion (if present) in time
/// order, the CAN frames by `table`, and watches the frames as the agent's decode stage
/// does, appending the monitor's findings to `findings`. Returns what the log reader and the
/// decoder counted.
fn read_log(
    path: &Path,
    table: SignalTable,
    security: &SecurityConfig,
    findings: &mut Vec<SecurityEvent>,
    each: &mut impl FnMut(&Reading),
) -> Result<(LogCounts, MetricsSnapshot), ReplayError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ReplayError::Io { path, source }
    };
    let (mut log, mut recording): (Box<dyn BufRead>, Recording) = if path.as_os_str() == "-" {
        let stdin = BufReader::new(std::io::stdin());
        (Box::new(stdin), Recording::new("standard input", &[]))
    } else {
        let serial_path = serial_companion(path);
        let serial = match std::fs::read(&serial_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(&serial_path)(e)),
        };
        let name = path.display().to_string();
        (
            Box::new(BufReader::new(open(path)?)),
            Recording::new(name, &serial),
        )
    };
    let metrics = Arc::new(Metrics::default());
    let mut decoder = Decoder::with_signal_table(table, metrics.clone());
    let mut monitor = Monitor::new(security.clone(), metrics.clone());
    let mut decoded = Decoded::default();
    let mut last = None;
    let (mut lines, mut inputs) = (LineSplitter::new(), Vec::new());
    loop {
        let piece = next_line(&mut log, &mut lines).map_err(io_error(path))?;
        let more = piece.is_some();
        // A line that gives no frame is counted and logged by the reader; the replay goes on.
        let read = match piece {
            Some(piece) => recording.piece(piece, &mut inputs),
            None => recording.finish(&mut inputs),
        };
        for input in inputs.drain(..) {
            decoder.decode_full(&input, &mut decoded);
            if let Some(now) = input.mono() {
                decoder.expire(now);
            }
            match &input {
                Input::Can(frame) => {
                    monitor.observe(frame, findings);
                    last = Some(frame.at);
                }
                Input::BusError(error) => monitor.bus_error(error, findings),
                Input::Node(_) | Input::NodeError { .. } | Input::Gps(_) => {}
            }
            for refusal in decoded.transport.drain(..) {
                monitor.refused(&refusal, findings);
            }
            for r in decoded.readings.drain(..) {
                each(&r);
            }
            decoded.clear();
        }
        read?;
        if !more {
            if let Some(at) = last {
                monitor.finish(at, findings);
            }
            return Ok((recording.log().counts().clone(), metrics.snapshot()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use vigil_agent::decode::dbc::DbcConfig;
    use vigil_agent::detect::Model;
    use vigil_sim::{Scenario, TruckParams, record};

    /// A replay with the built-in DBC and the default intrusion monitor.
    fn replay_builtin(judge: &Judge, log: &Path, out: &Path) -> ReplaySummary {
        replay(
            judge,
            builtin_dbc(),
            &SecurityConfig::default(),
            log,
            out,
            None,
        )
        .unwrap()
    }

    const FAULT_AT: Duration = Duration::from_secs(60);

    /// A recorded drive of seed 1 (candump log, serial file, labels) whose compartment 1
    /// heats from 60 s in, in `dir`.
    fn recorded_drive(dir: &Path) -> PathBuf {
        let log = dir.join("drive.log");
        let scenario = Scenario::from_name("tank-heating", FAULT_AT).unwrap();
        record::write(
            TruckParams::default(),
            scenario,
            Duration::from_secs(180),
            &log,
        )
        .unwrap();
        log
    }

    fn committed_card() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/forecaster.card.json")
    }

    /// The default config's detect stage, with the committed model or with none.
    fn judge(model: Option<&Path>) -> Judge {
        Judge {
            model: model.map(|card| Arc::new(Model::load(card).unwrap())),
            ..Judge::default()
        }
    }

    fn builtin_dbc() -> SignalTable {
        DbcConfig::default().load().unwrap()
    }

    /// The alert lines of a file, as JSON values.
    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_recorded_drive_replays_to_alert_lines_and_a_report() {
        let dir = tempfile::tempdir().unwrap();
        let log = recorded_drive(dir.path());
        let (out, html) = (dir.path().join("alerts.jsonl"), dir.path().join("r.html"));
        let judge = judge(Some(&committed_card()));
        let summary = replay(
            &judge,
            builtin_dbc(),
            &SecurityConfig::default(),
            &log,
            &out,
            Some(&html),
        )
        .unwrap();
        assert!(summary.readings > 1000, "{} readings", summary.readings);
        assert_eq!(summary.log.as_ref().unwrap().skipped(), 0);
        let alerts = lines(&out);
        // The first line of the labels: the fault's start, wall-clock seconds.
        let labels = std::fs::read_to_string(log.with_extension("labels.csv")).unwrap();
        let start: f64 = labels
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        let heated = "Vehicle.Cargo.Tank.Compartment1.Temperature";
        let first = alerts
            .iter()
            .find(|a| a["signal"] == heated)
            .unwrap_or_else(|| panic!("no alert on {heated}: {alerts:?}"));
        let raised = first["raised_at"].as_f64().unwrap();
        assert!(
            raised >= start && raised < start + 30.0,
            "raised {} s after the fault",
            raised - start
        );
        for key in ["kind", "severity", "score", "rule"] {
            assert!(!first[key].is_null(), "{key} missing: {first}");
        }
        // The simulated truck sends its position once a second: the alert says where it
        // was, from a fix at most a second and a bit older than the raise.
        let position = &first["position"];
        let (lat, lon) = (
            position["latitude"].as_f64(),
            position["longitude"].as_f64(),
        );
        assert!(
            lat.is_some_and(|l| (47.0..53.0).contains(&l))
                && lon.is_some_and(|l| (6.0..15.0).contains(&l)),
            "{first}"
        );
        let age = position["age_s"].as_f64().unwrap();
        assert!((0.0..=1.5).contains(&age), "{first}");
        let fix_at = position["at"].as_f64().unwrap();
        assert!((raised - fix_at - age).abs() < 0.01, "{first}");
        // A log without a position: every line says so, as null.
        let no_vp: String = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| !l.contains(" can0 18FEF300#") && !l.contains(" sim0 18FEF300#"))
            .map(|l| format!("{l}\n"))
            .collect();
        let blind = dir.path().join("blind.log");
        std::fs::write(&blind, no_vp).unwrap();
        std::fs::copy(log.with_extension("serial"), blind.with_extension("serial")).unwrap();
        let blind_out = dir.path().join("blind.jsonl");
        replay_builtin(&judge, &blind, &blind_out);
        let blind_alerts = lines(&blind_out);
        assert!(!blind_alerts.is_empty());
        assert!(
            blind_alerts.iter().all(|a| a["position"].is_null()),
            "{blind_alerts:?}"
        );
        assert!(first.get("cleared_at").is_some(), "{first}");
        assert!(
            alerts
                .iter()
                .all(|a| a["raised_at"].as_f64().unwrap() >= start),
            "an alert before the fault: {alerts:?}"
        );
        let report = std::fs::read_to_string(&html).unwrap();
        assert!(
            report.contains(heated) && report.contains("<svg"),
            "{} bytes",
            report.len()
        );
        // The labels beside the log are drawn over the heated tank; a labels file that is
        // not one stops the report, naming it.
        assert!(
            report.contains("class=\"label-span\"><title>fault label tank-heating: 06:01:00"),
            "no label span"
        );
        assert!(report.contains("class=\"alert-span critical\""));
        let labels = log.with_extension("labels.csv");
        std::fs::write(&labels, "when,what\n").unwrap();
        let e = replay(
            &judge,
            builtin_dbc(),
            &SecurityConfig::default(),
            &log,
            &out,
            Some(&html),
        )
        .unwrap_err();
        assert!(matches!(e, ReplayError::Labels { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("drive.labels.csv: line 1: the header"),
            "{e}"
        );
    }

    #[test]
    fn lines_that_are_not_frames_are_skipped_and_counted_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = recorded_drive(dir.path());
        let judge = judge(None);
        let clean_out = dir.path().join("clean.jsonl");
        let clean = replay_builtin(&judge, &log, &clean_out);
        // Garbage in the middle of the same log, beside its serial file.
        let text = std::fs::read_to_string(&log).unwrap();
        let mut damaged: Vec<&str> = text.lines().collect();
        let middle = damaged.len() / 2;
        damaged.insert(middle, "(1781508301.000000) can0 not-a-frame");
        damaged.insert(middle, "\u{fffd}garbage");
        let bad_log = dir.path().join("damaged.log");
        std::fs::write(&bad_log, damaged.join("\n")).unwrap();
        std::fs::copy(
            log.with_extension("serial"),
            bad_log.with_extension("serial"),
        )
        .unwrap();
        let bad_out = dir.path().join("damaged.jsonl");
        let bad = replay_builtin(&judge, &bad_log, &bad_out);
        assert_eq!(bad.log.as_ref().unwrap().malformed, 2);
        assert_eq!(bad.readings, clean.readings);
        assert_eq!(lines(&bad_out), lines(&clean_out));
    }

    #[test]
    fn the_dbc_of_the_config_decodes_the_log_and_a_missing_one_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = recorded_drive(dir.path());
        let out = dir.path().join("alerts.jsonl");
        let judge = judge(None);
        let builtin = replay_builtin(&judge, &log, &out);
        // The built-in DBC from a file decodes the same readings...
        let dbc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dbc/vigil-j1939.dbc");
        let mut config = DbcConfig {
            path: Some(dbc),
            ..DbcConfig::default()
        };
        assert_eq!(
            replay(
                &judge,
                config.load().unwrap(),
                &SecurityConfig::default(),
                &log,
                &out,
                None
            )
            .unwrap()
            .readings,
            builtin.readings
        );
        // ...a table that maps only the coolant decodes fewer (the tank node's stay)...
        config
            .signals
            .retain(|_, vss| vss == vigil_agent::signals::COOLANT_TEMPERATURE);
        let fewer = replay(
            &judge,
            config.load().unwrap(),
            &SecurityConfig::default(),
            &log,
            &out,
            None,
        )
        .unwrap()
        .readings;
        assert!(fewer < builtin.readings, "{fewer} of {}", builtin.readings);
        // ...and a DBC that is not there names itself.
        config.path = Some(dir.path().join("nowhere.dbc"));
        let e = config.load().unwrap_err().to_string();
        assert!(e.contains("nowhere.dbc"), "{e}");
    }

    #[test]
    fn a_tank_fire_is_one_incident_that_escalates_not_a_storm() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("fire.log");
        let scenario = Scenario::from_name("tank-heating", FAULT_AT).unwrap();
        record::write(
            TruckParams::default(),
            scenario,
            Duration::from_secs(900),
            &log,
        )
        .unwrap();
        let heated = "Vehicle.Cargo.Tank.Compartment1.Temperature";
        let judge = judge(Some(&committed_card()));
        let out = dir.path().join("alerts.jsonl");
        let summary = replay_builtin(&judge, &log, &out);
        let on_tank: Vec<&AlertLine> = summary
            .alerts
            .iter()
            .filter(|a| a.signal.as_str() == heated)
            .collect();
        assert_eq!(on_tank.len(), 1, "{on_tank:#?}");
        let fire = on_tank[0];
        assert_eq!(fire.severity, Severity::Critical);
        assert!(fire.findings.len() >= 2, "{:?}", fire.findings);
        assert!(
            fire.findings.contains(&AlertKind::HighLimit),
            "{:?}",
            fire.findings
        );
        // The same drive judged finding by finding: what the driver used to hear.
        let mut detector = judge.detector().findings_only();
        let mut events = Vec::new();
        let mut raised = 0;
        let security = SecurityConfig::default();
        read_log(
            &log,
            builtin_dbc(),
            &security,
            &mut Vec::new(),
            &mut |r: &Reading| {
                detector.observe(r, &mut events);
                raised += events
                    .drain(..)
                    .filter(|e| matches!(e, AlertEvent::Raised(a) if a.signal.as_str() == heated))
                    .count();
            },
        )
        .unwrap();
        assert!(
            raised >= fire.findings.len() && raised > 1,
            "{raised} findings raised"
        );
    }
}
