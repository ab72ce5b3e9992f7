//! `vigil eval`: the detect stage and the baselines on simulated drives of vehicles never
//! used in training or calibration, every fault kind, with per-event recall, false alarms
//! per vehicle-hour and detection delay.
//!
//! Every detector turns its per-tick score into alerts the same way (held for the
//! debounce, against a threshold that is the worst the score held on the calibration
//! drives, times the model card's margin), so they are compared at the same budget. The
//! model's thresholds come from its card (calibrated by `models/train.py` on the same
//! calibration seeds); the baselines are calibrated here.
//!
//! Scoring: an event (one fault interval) is detected by the first alert on its signal
//! raised within it; the delay is from the fault's start. An alert raised on a normal
//! drive, or before a fault starts, is a false alarm; clean hours count both.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Detector;
use super::alert::AlertEvent;
use super::baseline::{Ewma, Forest};
use super::dataset::{self, CALIBRATION_SEEDS, EVALUATION_SEEDS};
use super::model::{Model, ModelHandle};
use super::window::Grid;
use crate::config::Config;
use crate::reading::Signal;
use crate::source::simulator::Scenario;

/// The detectors a table compares.
pub const DETECTORS: [&str; 5] = ["stage", "model", "rules", "ewma", "rcf"];

/// Faults slow enough that the issue asks for recall >= 0.9 rather than abrupt targets.
pub const SLOW_FAULTS: [&str; 2] = ["drift", "insulation-loss"];

/// What to run.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Drives per fault kind.
    pub drives_per_fault: usize,
    /// Normal one-hour drives.
    pub normal_drives: usize,
    /// Length of a fault drive; its fault starts between 10 and 15 minutes in.
    pub fault_drive: Duration,
    /// Calibration drives for the baselines (one hour each).
    pub calibration_drives: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            drives_per_fault: 10,
            normal_drives: 40,
            fault_drive: Duration::from_secs(40 * 60),
            calibration_drives: CALIBRATION_SEEDS.count(),
        }
    }
}

/// One detector's figures on one fault kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cell {
    pub events: usize,
    pub detected: usize,
    /// Delays of detected events, seconds, sorted.
    pub delays_s: Vec<f64>,
}

impl Cell {
    pub fn recall(&self) -> f64 {
        self.detected as f64 / self.events.max(1) as f64
    }

    pub fn median_delay_s(&self) -> Option<f64> {
        (!self.delays_s.is_empty()).then(|| self.delays_s[self.delays_s.len() / 2])
    }
}

/// The evaluation's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EvalReport {
    pub model: String,
    /// fault kind -> detector -> figures.
    pub faults: Vec<(String, Vec<(String, Cell)>)>,
    /// detector -> false alarms raised on clean time.
    pub false_alarms: Vec<(String, usize)>,
    pub clean_hours: f64,
    /// Baseline thresholds calibrated here: (detector, signal kind, threshold).
    pub baseline_thresholds: Vec<(String, String, f64)>,
    pub table_markdown: String,
}

/// A detector's alert: signal and the monotonic time it was raised.
type Raised = Vec<(Signal, Duration)>;

/// The baselines' state for one drive, scoring every watched signal each tick.
struct Baselines {
    grid: Grid,
    signals: Vec<(Signal, usize)>,
    ewma: Vec<Ewma>,
    forests: Vec<Forest>,
    window: Vec<f64>,
    features: Vec<f32>,
}

impl Baselines {
    fn new(model: &Model, compartments: u8, seed: u64) -> Self {
        let signals: Vec<(Signal, usize)> = dataset::csv_signals(compartments)
            .into_iter()
            .filter_map(|s| {
                let i = model
                    .card
                    .signals
                    .iter()
                    .position(|w| w.signal == s.as_str())?;
                Some((s, i))
            })
            .collect();
        Baselines {
            grid: Grid::new(signals.iter().map(|(s, _)| s.clone())),
            ewma: signals
                .iter()
                .map(|&(_, i)| Ewma::new(model.card.signals[i].sigma_floor))
                .collect(),
            forests: (0..signals.len())
                .map(|k| Forest::new(30, 256, seed * 31 + k as u64))
                .collect(),
            signals,
            window: Vec::new(),
            features: Vec::new(),
        }
    }

    /// Scores of the newest tick: per signal (ewma, rcf).
    fn score(&mut self, model: &Model, out: &mut Vec<(Option<f64>, Option<f64>)>) {
        out.clear();
        let window = model.card.window;
        for (k, (signal, i)) in self.signals.iter().enumerate() {
            let column = self
                .grid
                .column(signal)
                .expect("every baseline signal is a column");
            let value = column.newest();
            let ewma = self.ewma[k].step(value);
            let full = column.copy_last(window, &mut self.window)
                && self.window.iter().all(|v| !v.is_nan());
            let rcf = if full {
                // The forest sees the model's own normalised window and level.
                let ctx = vec![0.0; window];
                model.card.features(
                    &model.card.signals[*i],
                    &self.window,
                    &ctx,
                    &mut self.features,
                );
                let point: Vec<f64> = self.features[..=window].iter().map(|&v| v as f64).collect();
                self.forests[k].step(&point)
            } else {
                None
            };
            out.push((ewma, rcf));
        }
    }
}

/// Turns per-tick scores into raised alerts: held `ticks` in a row above the threshold,
/// cleared below it, quiet for `realert` after a clear (as the alert state machine does).
#[derive(Clone, Debug, Default)]
struct Alarm {
    held: usize,
    active: bool,
    quiet_until: u64,
}

impl Alarm {
    fn step(&mut self, tick: u64, score: Option<f64>, threshold: f64, ticks: usize) -> bool {
        let Some(score) = score else {
            return false;
        };
        if score > threshold {
            self.held += 1;
        } else {
            self.held = 0;
            if self.active {
                self.active = false;
                self.quiet_until = tick + 60;
            }
        }
        if !self.active && self.held >= ticks && tick >= self.quiet_until {
            self.active = true;
            return true;
        }
        false
    }
}

/// Runs one drive through the detect stage and the baselines.
fn drive(
    config: &Config,
    model: &Arc<Model>,
    seed: u64,
    scenario: Scenario,
    duration: Duration,
    thresholds: Option<&HashMap<(usize, usize), f64>>,
    worst: &mut HashMap<(usize, usize), f64>,
) -> HashMap<&'static str, Raised> {
    let params = dataset::truck_params(seed);
    let handle = ModelHandle::new(None);
    handle.install_shared(model.clone());
    let mut detector = Detector::with_model(config, handle);
    let mut baselines = Baselines::new(model, params.compartments, seed);
    let ticks = model.card.thresholds.debounce_ticks;
    let mut alarms: HashMap<(usize, usize), Alarm> = HashMap::new();
    let mut held: HashMap<(usize, usize), Vec<f64>> = HashMap::new();
    let mut raised: HashMap<&'static str, Raised> = HashMap::new();
    let mut events = Vec::new();
    let mut scores = Vec::new();
    let kinds: Vec<usize> = baselines
        .signals
        .iter()
        .map(|(_, i)| model.card.signals[*i].kind)
        .collect();
    let result = dataset::simulate(params, scenario, duration, |reading| {
        detector.observe(reading, &mut events);
        for e in events.drain(..) {
            if let AlertEvent::Raised(a) = e {
                let t = (a.signal.clone(), a.raised_at.mono);
                let part = if a.kind.is_model() { "model" } else { "rules" };
                raised.entry(part).or_default().push(t.clone());
                raised.entry("stage").or_default().push(t);
            }
        }
        for tick in baselines.grid.push(reading) {
            baselines.score(model, &mut scores);
            for (k, &(ewma, rcf)) in scores.iter().enumerate() {
                for (d, score) in [(0usize, ewma), (1, rcf)] {
                    let key = (d, k);
                    // The score held for the debounce: the least of the last `ticks`.
                    let h = held.entry(key).or_default();
                    h.push(score.unwrap_or(f64::NAN));
                    if h.len() > ticks {
                        h.remove(0);
                    }
                    if h.len() == ticks && h.iter().all(|v| !v.is_nan()) {
                        let least = h.iter().cloned().fold(f64::INFINITY, f64::min);
                        let w = worst.entry((d, kinds[k])).or_insert(0.0);
                        *w = w.max(least);
                    }
                    if let Some(th) = thresholds {
                        let threshold = th.get(&(d, kinds[k])).copied().unwrap_or(f64::INFINITY);
                        if alarms
                            .entry(key)
                            .or_default()
                            .step(tick, score, threshold, ticks)
                        {
                            let name = if d == 0 { "ewma" } else { "rcf" };
                            let signal = baselines.signals[k].0.clone();
                            raised
                                .entry(name)
                                .or_default()
                                .push((signal, Duration::from_secs(tick)));
                        }
                    }
                }
            }
        }
    });
    if let Err(e) = result {
        tracing::error!(event = "eval_drive_failed", error = %e);
    }
    raised
}

/// The fault drives' fault start, varied by seed so no detector can learn a fixed time.
fn fault_start(seed: u64) -> Duration {
    Duration::from_secs(600 + (seed * 7919) % 300)
}

/// Runs the evaluation. `progress` hears one line per drive.
pub fn run(model: Arc<Model>, options: &EvalOptions, mut progress: impl FnMut(&str)) -> EvalReport {
    let mut config = Config::embedded_default();
    config.detect.model = None;
    let margin = model
        .card
        .training
        .pointer("/calibration/margin")
        .and_then(|m| m.as_f64())
        .unwrap_or(1.25);
    // 1. Calibrate the baselines on the calibration drives (normal).
    let mut worst = HashMap::new();
    for seed in CALIBRATION_SEEDS.take(options.calibration_drives) {
        drive(
            &config,
            &model,
            seed,
            Scenario::normal(),
            Duration::from_secs(3600),
            None,
            &mut worst,
        );
        progress(&format!("calibrated baselines on seed {seed}"));
    }
    let thresholds: HashMap<(usize, usize), f64> =
        worst.iter().map(|(&k, &w)| (k, w * margin)).collect();
    let kind_names = &model.card.kind_names;
    let mut report = EvalReport {
        model: model.id.to_string(),
        ..EvalReport::default()
    };
    let mut sorted: Vec<_> = thresholds.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (&(d, kind), &t) in sorted {
        let name = if d == 0 { "ewma" } else { "rcf" };
        let kind = kind_names
            .get(kind)
            .cloned()
            .unwrap_or_else(|| kind.to_string());
        report.baseline_thresholds.push((name.into(), kind, t));
    }
    let mut false_alarms: HashMap<&str, usize> = HashMap::new();
    let mut clean = Duration::ZERO;
    let mut seeds = EVALUATION_SEEDS;
    let mut scratch = HashMap::new();
    // 2. Normal drives.
    for _ in 0..options.normal_drives {
        let seed = seeds.next().unwrap_or(0);
        let duration = Duration::from_secs(3600);
        let raised = drive(
            &config,
            &model,
            seed,
            Scenario::normal(),
            duration,
            Some(&thresholds),
            &mut scratch,
        );
        clean += duration;
        for d in DETECTORS {
            *false_alarms.entry(d).or_default() += raised.get(d).map_or(0, Vec::len);
        }
        progress(&format!("normal drive seed {seed}: {:?}", count(&raised)));
    }
    // 3. Fault drives: every kind on fresh seeds (vehicles) of its own.
    for name in Scenario::NAMES.iter().filter(|n| **n != "normal") {
        let mut cells: Vec<(String, Cell)> = DETECTORS
            .iter()
            .map(|d| (d.to_string(), Cell::default()))
            .collect();
        for _ in 0..options.drives_per_fault {
            let seed = 5000 + seeds.next().unwrap_or(0);
            let start = fault_start(seed);
            let scenario = Scenario::from_name(name, start).expect("a listed scenario");
            let fault = scenario.intervals(options.fault_drive)[0].clone();
            let raised = drive(
                &config,
                &model,
                seed,
                scenario,
                options.fault_drive,
                Some(&thresholds),
                &mut scratch,
            );
            clean += start;
            for (d, cell) in DETECTORS.iter().zip(cells.iter_mut().map(|(_, c)| c)) {
                let alerts = raised.get(d).map(Vec::as_slice).unwrap_or(&[]);
                *false_alarms.entry(d).or_default() +=
                    alerts.iter().filter(|(_, t)| *t < start).count();
                cell.events += 1;
                let hit = alerts
                    .iter()
                    .filter(|(s, t)| *s == fault.signal && *t >= fault.start && *t <= fault.end)
                    .map(|(_, t)| *t - fault.start)
                    .min();
                if let Some(delay) = hit {
                    cell.detected += 1;
                    cell.delays_s.push(delay.as_secs_f64());
                }
            }
            progress(&format!("{name} seed {seed}: {:?}", count(&raised)));
        }
        for (_, cell) in &mut cells {
            cell.delays_s.sort_by(f64::total_cmp);
        }
        report.faults.push((name.to_string(), cells));
    }
    report.clean_hours = clean.as_secs_f64() / 3600.0;
    report.false_alarms = DETECTORS
        .iter()
        .map(|d| (d.to_string(), false_alarms.get(d).copied().unwrap_or(0)))
        .collect();
    report.table_markdown = table(&report);
    report
}

fn count(raised: &HashMap<&'static str, Raised>) -> Vec<(&'static str, usize)> {
    let mut v: Vec<_> = raised.iter().map(|(k, r)| (*k, r.len())).collect();
    v.sort();
    v
}

/// The figures as a Markdown table: recall and median delay per fault kind and detector,
/// then false alarms per 100 vehicle-hours.
pub fn table(report: &EvalReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| fault | {} |",
        DETECTORS
            .iter()
            .map(|d| format!("{d} recall / median delay"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(DETECTORS.len()));
    for (fault, cells) in &report.faults {
        let slow = if SLOW_FAULTS.contains(&fault.as_str()) {
            " (slow)"
        } else {
            ""
        };
        let row: Vec<String> = cells
            .iter()
            .map(|(_, c)| {
                let delay = c
                    .median_delay_s()
                    .map_or("-".into(), |d| format!("{d:.0} s"));
                format!("{:.2} ({}/{}) / {delay}", c.recall(), c.detected, c.events)
            })
            .collect();
        let _ = writeln!(out, "| {fault}{slow} | {} |", row.join(" | "));
    }
    let fa: Vec<String> = report
        .false_alarms
        .iter()
        .map(|(_, n)| {
            format!(
                "{n} ({:.2} per 100 h)",
                *n as f64 * 100.0 / report.clean_hours.max(1e-9)
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "| false alarms in {:.1} clean vehicle-hours | {} |",
        report.clean_hours,
        fa.join(" | ")
    );
    out
}
