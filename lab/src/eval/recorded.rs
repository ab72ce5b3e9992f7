//! `vigil eval --data DIR --labels LABELS.csv`: the simulated eval's figures on the user's
//! own recorded drives, the 1 Hz CSVs `vigil dataset` writes into DIR.
//!
//! `LABELS.csv` has the header `file,signal,start,end,kind`: the CSV's file name in DIR, the
//! VSS name of the signal the fault is on, its start and end in the data's Unix seconds, and
//! the fault's kind (the table's row). A file without a label is a normal drive. A label
//! naming a file DIR does not hold, a signal that is not one of its columns, an end before
//! its start, or a row that is not five fields, is refused with its line.
//!
//! Scoring is the simulated eval's ([`super::run`]), with what recorded data cannot give:
//! - an event is detected by the first alert on its signal raised within `[start, end]`;
//!   the delay is from the label's start. There is no healthy twin to say when the fault
//!   first showed, so every labelled event counts as shown and both delays are from the
//!   label's start;
//! - clean time is a normal file's rows, and a labelled file's rows before its first
//!   label; an alert raised in clean time is a false alarm (per 100 vehicle-hours, with
//!   the 95 % upper bound);
//! - the baselines are calibrated on the normal files, leave one out: a normal file is
//!   judged at thresholds set on the other normal files (each the worst score the
//!   baseline held for the debounce, times the card's margin, as the simulated eval sets
//!   them on its calibration drives), a labelled file at thresholds set on all of them.
//!   So no baseline is judged on the data it was calibrated on; with a single normal file
//!   it has nothing to calibrate on for that file and raises nothing there.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use vigil_agent::detect::Model;
use vigil_agent::reading::Signal;

use super::{
    Cell, DETECTORS, EvalReport, Raised, baseline_margin, in_parallel, judge_drive,
    poisson_upper_95,
};
use crate::Judge;
use crate::dataset::{self, CsvError};

/// The labels file's header.
pub const LABELS_HEADER: &str = "file,signal,start,end,kind";

/// Why an evaluation on recorded drives cannot run.
#[derive(Debug, thiserror::Error)]
pub enum DataEvalError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: {source}; the data folder holds the 1 Hz CSVs `vigil dataset` writes",
        path.display()
    )]
    Csv {
        path: PathBuf,
        #[source]
        source: CsvError,
    },
    #[error("{} holds no CSV of readings; write them with `vigil dataset --out {}`", path.display(), path.display())]
    NoData { path: PathBuf },
    #[error("{}, line {line}: {problem}; a labels file has the header `{LABELS_HEADER}`, then one fault a row (start and end in the data's Unix seconds)", path.display())]
    Label {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// One labelled fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub file: String,
    pub signal: Signal,
    pub start: f64,
    pub end: f64,
    pub kind: String,
}

/// One CSV of the data folder.
#[derive(Clone, Debug)]
struct DataFile {
    name: String,
    path: PathBuf,
    columns: Vec<Signal>,
    /// Every row's timestamp, Unix seconds.
    stamps: Vec<f64>,
}

impl DataFile {
    fn read(path: PathBuf) -> Result<DataFile, DataEvalError> {
        let io = |source| DataEvalError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut lines = BufReader::new(file).lines();
        let header = lines.next().transpose().map_err(io)?.unwrap_or_default();
        let mut names = header.trim().split(',');
        if names.next().map(str::trim) != Some("timestamp") {
            return Err(DataEvalError::Csv {
                path: path.clone(),
                source: CsvError::Row {
                    line: 1,
                    message: format!("the header starts with {header:?}"),
                },
            });
        }
        let columns = names.map(|n| Signal::new(n.trim())).collect();
        let mut stamps = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let cell = line.split(',').next().unwrap_or("").trim();
            let stamp = cell.parse().map_err(|_| DataEvalError::Csv {
                path: path.clone(),
                source: CsvError::Row {
                    line: i + 2,
                    message: format!("the timestamp {cell:?} is not a number"),
                },
            })?;
            stamps.push(stamp);
        }
        Ok(DataFile {
            name: path
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
            path,
            columns,
            stamps,
        })
    }

    fn first(&self) -> f64 {
        self.stamps.first().copied().unwrap_or(0.0)
    }

    /// A Unix time of this file on the readings' monotonic clock (`read_csv` counts it
    /// from the first row).
    fn mono(&self, unix: f64) -> Duration {
        Duration::from_secs_f64((unix - self.first()).max(0.0))
    }

    /// Hours of rows stamped before `until` (all rows when `None`).
    fn clean_hours(&self, until: Option<f64>) -> f64 {
        let rows = match until {
            Some(t) => self.stamps.iter().filter(|&&s| s < t).count(),
            None => self.stamps.len(),
        };
        rows as f64 / 3600.0
    }

    /// Feeds the file's readings to the detectors.
    fn feed(
        &self,
        each: &mut dyn FnMut(&vigil_agent::reading::Reading),
    ) -> Result<(), DataEvalError> {
        let file = std::fs::File::open(&self.path).map_err(|source| DataEvalError::Io {
            path: self.path.clone(),
            source,
        })?;
        dataset::read_csv(BufReader::new(file), each).map_err(|source| DataEvalError::Csv {
            path: self.path.clone(),
            source,
        })
    }
}

/// The CSVs of `dir`, by name.
fn data_files(dir: &Path, labels: Option<&Path>) -> Result<Vec<DataFile>, DataEvalError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataEvalError::Io {
        path: dir.to_owned(),
        source,
    })?;
    // The labels may sit beside the drives; they are not one.
    let is_labels = |path: &Path| {
        labels.is_some_and(|l| std::fs::canonicalize(l).ok() == std::fs::canonicalize(path).ok())
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| DataEvalError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            && path.is_file()
            && !is_labels(&path)
        {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(DataEvalError::NoData {
            path: dir.to_owned(),
        });
    }
    paths.into_iter().map(DataFile::read).collect()
}

/// Reads and checks `LABELS.csv` against the data's files and their columns.
pub fn read_labels(
    path: &Path,
    text: &str,
    files: &[DataFileRef<'_>],
) -> Result<Vec<Label>, DataEvalError> {
    let bad = |line: usize, problem: String| DataEvalError::Label {
        path: path.to_owned(),
        line,
        problem,
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    match lines.next() {
        Some((_, header)) if header.replace(' ', "") == LABELS_HEADER => {}
        Some((line, header)) => {
            return Err(bad(
                line,
                format!("the header is {header:?}, not `{LABELS_HEADER}`"),
            ));
        }
        None => return Err(bad(1, "the file is empty".into())),
    }
    let mut labels = Vec::new();
    for (line, row) in lines {
        if row.is_empty() {
            continue;
        }
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        let [file, signal, start, end, kind] = cells[..] else {
            return Err(bad(line, format!("{} fields, not 5", cells.len())));
        };
        let Some(data) = files.iter().find(|f| f.name == file) else {
            let known: Vec<&str> = files.iter().map(|f| f.name).take(5).collect();
            return Err(bad(
                line,
                format!(
                    "the data folder has no file {file:?} (it has {}{})",
                    known.join(", "),
                    if files.len() > 5 { ", ..." } else { "" }
                ),
            ));
        };
        if !data.columns.iter().any(|c| c.as_str() == signal) {
            return Err(bad(
                line,
                format!(
                    "{file} has no column {signal:?} (its signals: {})",
                    data.columns
                        .iter()
                        .map(Signal::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let time = |what: &str, cell: &str| {
            cell.parse::<f64>()
                .ok()
                .filter(|t| t.is_finite())
                .ok_or_else(|| {
                    bad(
                        line,
                        format!("the {what} {cell:?} is not a time in Unix seconds"),
                    )
                })
        };
        let (start, end) = (time("start", start)?, time("end", end)?);
        if end < start {
            return Err(bad(
                line,
                format!("the end {end} is before the start {start}"),
            ));
        }
        if kind.is_empty() {
            return Err(bad(
                line,
                "the kind is empty; name the fault (e.g. coolant-loss)".into(),
            ));
        }
        labels.push(Label {
            file: file.to_owned(),
            signal: Signal::new(signal),
            start,
            end,
            kind: kind.to_owned(),
        });
    }
    Ok(labels)
}

/// What [`read_labels`] checks a label against: a file's name and columns.
#[derive(Clone, Copy, Debug)]
pub struct DataFileRef<'a> {
    pub name: &'a str,
    pub columns: &'a [Signal],
}

/// What an evaluation on recorded drives saw, beside the figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DataSummary {
    pub dir: PathBuf,
    pub labels_file: Option<PathBuf>,
    pub labels: Vec<Label>,
    pub files: Vec<FileScore>,
    /// How the baselines were calibrated (see the module's documentation).
    pub baseline_calibration: String,
}

/// One file's part.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FileScore {
    pub file: String,
    pub hours: f64,
    pub clean_hours: f64,
    pub labels: usize,
    /// The stage's findings, as `kind on SIGNAL at T s` (T from the file's first row).
    pub stage_alerts: Vec<String>,
}

/// Where to find the drives.
#[derive(Clone, Debug)]
pub struct DataOptions {
    pub dir: PathBuf,
    pub labels: Option<PathBuf>,
}

/// Runs the evaluation of `judge`'s model on the recorded drives of `options.dir`.
pub fn run_on_data(
    judge: &Judge,
    options: &DataOptions,
    progress: impl FnMut(&str) + Send,
) -> Result<EvalReport, DataEvalError> {
    let model: Arc<Model> = judge.model.clone().expect("the eval judges with a model");
    let files = data_files(&options.dir, options.labels.as_deref())?;
    let labels = match &options.labels {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| DataEvalError::Io {
                path: path.clone(),
                source,
            })?;
            let refs: Vec<DataFileRef> = files
                .iter()
                .map(|f| DataFileRef {
                    name: &f.name,
                    columns: &f.columns,
                })
                .collect();
            read_labels(path, &text, &refs)?
        }
        None => Vec::new(),
    };
    let progress = Mutex::new(progress);
    let say = |line: &str| (progress.lock().expect("progress never panics"))(line);
    let labelled = |f: &DataFile| labels.iter().any(|l| l.file == f.name);
    let margin = baseline_margin(&model);
    let run_file = |f: &DataFile, thresholds: Option<&HashMap<(usize, usize), f64>>| {
        let mut worst = HashMap::new();
        let mut failed = None;
        let raised = judge_drive(
            judge,
            &model,
            (f.columns.clone(), seed_of(&f.name)),
            |each| failed = f.feed(each).err(),
            thresholds,
            &mut worst,
        );
        match failed {
            Some(e) => Err(e),
            None => Ok((raised, worst)),
        }
    };
    // 1. The baselines' worst scores on each normal file.
    let normal: Vec<usize> = (0..files.len()).filter(|&i| !labelled(&files[i])).collect();
    let worsts = in_parallel(&normal, |&i| {
        let result = run_file(&files[i], None).map(|(_, worst)| worst);
        say(&format!("calibrated the baselines on {}", files[i].name));
        result
    });
    let worsts: Vec<HashMap<(usize, usize), f64>> = worsts.into_iter().collect::<Result<_, _>>()?;
    let thresholds_without = |skip: Option<usize>| {
        let mut out: HashMap<(usize, usize), f64> = HashMap::new();
        for (k, worst) in worsts.iter().enumerate() {
            if Some(k) == skip {
                continue;
            }
            for (&key, &w) in worst {
                let t = out.entry(key).or_insert(0.0);
                *t = t.max(w * margin);
            }
        }
        out
    };
    // 2. Every file at thresholds set without it.
    let jobs: Vec<usize> = (0..files.len()).collect();
    let results = in_parallel(&jobs, |&i| {
        let own = normal.iter().position(|&n| n == i);
        let thresholds = thresholds_without(own);
        let result = run_file(&files[i], Some(&thresholds)).map(|(raised, _)| raised);
        say(&format!("judged {}", files[i].name));
        result
    });
    let raised: Vec<HashMap<&'static str, Raised>> =
        results.into_iter().collect::<Result<_, _>>()?;
    let mut report = score(&files, &labels, &raised);
    report.model = model.id.to_string();
    let all = thresholds_without(None);
    let mut sorted: Vec<_> = all.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (&(d, kind), &t) in sorted {
        let name = if d == 0 { "ewma" } else { "rcf" };
        let kind = model
            .card
            .kind_names
            .get(kind)
            .cloned()
            .unwrap_or_else(|| kind.to_string());
        report.baseline_thresholds.push((name.into(), kind, t));
    }
    let data = report.data.get_or_insert_with(DataSummary::default);
    data.dir = options.dir.clone();
    data.labels_file = options.labels.clone();
    data.baseline_calibration = format!(
        "leave one out over {} normal file(s): each judged at the worst held score of the others times {margin}",
        normal.len()
    );
    report.table_markdown = super::table(&report);
    Ok(report)
}

/// A fixed seed for a file's forests, from its name, so a run is the same every time.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The figures from what each detector raised on each file.
fn score(
    files: &[DataFile],
    labels: &[Label],
    raised: &[HashMap<&'static str, Raised>],
) -> EvalReport {
    let mut kinds: Vec<&str> = Vec::new();
    for l in labels {
        if !kinds.contains(&l.kind.as_str()) {
            kinds.push(&l.kind);
        }
    }
    let mut cells: BTreeMap<(&str, &str), Cell> = BTreeMap::new();
    let mut false_alarms: HashMap<&str, usize> = HashMap::new();
    let mut clean_hours = 0.0;
    let mut scores = Vec::new();
    for (file, raised) in files.iter().zip(raised) {
        let mine: Vec<&Label> = labels.iter().filter(|l| l.file == file.name).collect();
        let first_start = mine.iter().map(|l| l.start).min_by(f64::total_cmp);
        let clean_until = first_start.map(|t| file.mono(t));
        let clean = file.clean_hours(first_start);
        clean_hours += clean;
        for d in DETECTORS {
            let alerts = raised.get(d).map(Vec::as_slice).unwrap_or(&[]);
            *false_alarms.entry(d).or_default() += alerts
                .iter()
                .filter(|(_, t, _)| clean_until.is_none_or(|until| *t < until))
                .count();
            for label in &mine {
                let cell = cells.entry((label.kind.as_str(), d)).or_default();
                cell.events += 1;
                cell.visible += 1;
                let (start, end) = (file.mono(label.start), file.mono(label.end));
                let hit = alerts
                    .iter()
                    .filter(|(s, t, _)| *s == label.signal && *t >= start && *t <= end)
                    .map(|(_, t, _)| *t)
                    .min();
                if let Some(at) = hit {
                    cell.detected += 1;
                    let delay = (at - start).as_secs_f64();
                    cell.delays_s.push(delay);
                    cell.delays_from_visible_s.push(delay);
                }
            }
        }
        scores.push(FileScore {
            file: file.name.clone(),
            hours: file.clean_hours(None),
            clean_hours: clean,
            labels: mine.len(),
            stage_alerts: super::listed(raised.get("stage").into_iter().flatten().cloned()),
        });
    }
    let faults = kinds
        .iter()
        .map(|kind| {
            let row = DETECTORS
                .iter()
                .map(|d| {
                    let mut cell = cells.remove(&(*kind, *d)).unwrap_or_default();
                    cell.delays_s.sort_by(f64::total_cmp);
                    cell.delays_from_visible_s.sort_by(f64::total_cmp);
                    (d.to_string(), cell)
                })
                .collect();
            (kind.to_string(), row)
        })
        .collect();
    EvalReport {
        faults,
        false_alarms: DETECTORS
            .iter()
            .map(|d| (d.to_string(), false_alarms.get(d).copied().unwrap_or(0)))
            .collect(),
        clean_hours,
        data: Some(DataSummary {
            labels: labels.to_vec(),
            files: scores,
            ..DataSummary::default()
        }),
        ..EvalReport::default()
    }
}

/// The one-page HTML summary: the figures as tables, nothing fetched.
pub fn html(report: &EvalReport) -> String {
    let mut out = String::new();
    let e = escape;
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vigil eval: {}</title>\n\
         <style>body{{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:.3em .6em;text-align:left}}\
         th{{background:#eee}}td.n{{text-align:right}}</style></head><body>\n<h1>vigil eval: {}</h1>\n",
        e(&report.model),
        e(&report.model)
    );
    if let Some(data) = &report.data {
        let _ = writeln!(
            out,
            "<p>Recorded drives in <code>{}</code>: {} files ({} labelled), {:.2} vehicle-hours, {:.2} of them clean. Labels: <code>{}</code>.</p>",
            e(&data.dir.display().to_string()),
            data.files.len(),
            data.files.iter().filter(|f| f.labels > 0).count(),
            data.files.iter().map(|f| f.hours).sum::<f64>(),
            report.clean_hours,
            e(&data
                .labels_file
                .as_ref()
                .map_or("none: every file normal".into(), |p| p
                    .display()
                    .to_string())),
        );
    } else {
        let _ = writeln!(
            out,
            "<p>Simulated drives; {:.1} clean vehicle-hours.</p>",
            report.clean_hours
        );
    }
    out.push_str("<h2>Recall and delay</h2>\n<p>Per fault kind and detector: recall (detected / events) and the median delay from the fault's start.</p>\n<table><tr><th>fault</th>");
    for d in DETECTORS {
        let _ = write!(out, "<th>{d}</th>");
    }
    out.push_str("</tr>\n");
    for (fault, cells) in &report.faults {
        let _ = write!(out, "<tr><td>{}</td>", e(fault));
        for (_, c) in cells {
            let delay = c
                .median_delay_s()
                .map_or("-".into(), |d| format!("{d:.0} s"));
            let _ = write!(
                out,
                "<td class=\"n\">{:.2} ({}/{}) / {delay}</td>",
                c.recall(),
                c.detected,
                c.visible
            );
        }
        out.push_str("</tr>\n");
    }
    if report.faults.is_empty() {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"{}\">no labelled fault</td></tr>",
            DETECTORS.len() + 1
        );
    }
    out.push_str("</table>\n<h2>False alarms</h2>\n<table><tr><th>detector</th><th>false alarms</th><th>per 100 vehicle-hours</th><th>at most, 95 %</th></tr>\n");
    for (d, n) in &report.false_alarms {
        let per_100h = |count: f64| count * 100.0 / report.clean_hours.max(1e-9);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{n}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td></tr>",
            e(d),
            per_100h(*n as f64),
            per_100h(poisson_upper_95(*n))
        );
    }
    let _ = writeln!(
        out,
        "</table>\n<p>In {:.2} clean vehicle-hours.</p>",
        report.clean_hours
    );
    if let Some(data) = &report.data {
        out.push_str("<h2>Files</h2>\n<table><tr><th>file</th><th>hours</th><th>clean hours</th><th>labels</th><th>the stage's findings</th></tr>\n");
        for f in &data.files {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                e(&f.file),
                f.hours,
                f.clean_hours,
                f.labels,
                e(&f.stage_alerts.join("; "))
            );
        }
        let _ = writeln!(
            out,
            "</table>\n<p>Baselines: {}.</p>",
            e(&data.baseline_calibration)
        );
    }
    out.push_str("</body></html>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
