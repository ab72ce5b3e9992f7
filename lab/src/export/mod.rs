//! `vigil dataset --input FILE... --out DIR`: recorded drives and the fleet's stored
//! readings to the 1 Hz training CSV ([`crate::dataset`]'s format: `timestamp` in Unix
//! seconds, then VSS names, an empty cell a gap), one CSV per input, named after it.
//!
//! Every input goes through what the agent runs: CAN logs (any form the agent's
//! [`LogReader`](vigil_agent::frame::log::LogReader) reads, with the tank node's `.serial`
//! companion beside it) through the agent's [`Recording`] reader and [`Decoder`] with the
//! config's DBC; every reading through the agent's 1 Hz [`Grid`](vigil_agent::detect::window::Grid)
//! ([`Table`], which also says which origin a column holds). The forms read, told apart by
//! their first bytes (gzip is opened first, as Firehose writes it):
//! - a CAN log: `NAME.log` -> `NAME.csv`;
//! - a CSV of readings, `timestamp` then VSS names (any rate; resampled again): `NAME.csv`
//!   -> `NAME.csv` in the output folder;
//! - `vigil decode`'s rows, `timestamp,signal,origin,value`: -> `NAME.csv`;
//! - `vigil.readings/1` batches, one JSON document a line, as the AWS template's Firehose
//!   rule stores them ([`readings`]): pooled over every such input and written one CSV per
//!   vehicle, `THING.csv`.
//!
//! Bad input is never fatal: a line that gives nothing is counted by cause (the log
//! reader's causes, the serial frames that failed their checks, the decoder's unknown PGNs
//! and bad lengths, the CSV and JSON lines that do not parse) and the first
//! [`LOUD_SKIPPED_LINES`] of each input are logged with their line number; an input that
//! cannot be read at all is reported and the others are still converted. The summary goes
//! to `DIR/dataset-summary.json` ([`DatasetSummary`]) and, one line an input, to stderr.

mod csv;
mod readings;
mod table;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use vigil_agent::decode::Decoder;
use vigil_agent::decode::table::SignalTable;
use vigil_agent::frame::Input;
use vigil_agent::frame::log::{LOUD_SKIPPED_LINES, LineSplitter, LogCounts, next_line};
use vigil_agent::frame::recording::{Recording, serial_companion};
use vigil_agent::reading::{Reading, Signal};
use vigil_agent::signals::tank_temperature;
use vigil_agent::telemetry::Metrics;

use csv::{csv_header, read_rows, read_wide_csv};
pub use readings::parse_origin;
pub use table::{Table, origin_column};

/// The summary file written into the output folder.
pub const SUMMARY_FILE: &str = "dataset-summary.json";

/// What `vigil dataset` converts, and with what.
#[derive(Clone, Debug)]
pub struct DatasetCommand {
    pub inputs: Vec<PathBuf>,
    /// The output folder (made if missing).
    pub out: PathBuf,
    /// The decode table (the config's DBC and `[dbc.signals]`).
    pub table: SignalTable,
}

/// Why `vigil dataset` could not run at all (a bad input is not one: it is reported).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot write into {}: {source}; check the --out folder", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The form of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputForm {
    CanLog,
    ReadingsCsv,
    DecodeRows,
    ReadingsBatches,
}

/// Lines skipped by cause, the first few logged.
#[derive(Clone, Debug, Default)]
pub struct Skipped {
    pub by_cause: BTreeMap<String, u64>,
    logged: u64,
}

impl Skipped {
    /// Counts one line skipped for `cause`, logging it while the input has been quiet.
    pub fn count(&mut self, input: &str, line: u64, cause: &str) {
        *self.by_cause.entry(cause.to_owned()).or_default() += 1;
        self.logged += 1;
        if self.logged <= LOUD_SKIPPED_LINES {
            tracing::warn!(event = "dataset_line_skipped", input, line, cause);
        } else {
            tracing::debug!(event = "dataset_line_skipped", input, line, cause);
        }
    }

    fn add(&mut self, cause: &str, n: u64) {
        if n > 0 {
            *self.by_cause.entry(cause.to_owned()).or_default() += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.by_cause.values().sum()
    }
}

/// What one input gave.
#[derive(Clone, Debug, Serialize)]
pub struct InputReport {
    pub input: PathBuf,
    pub form: Option<InputForm>,
    /// Lines read (frames for a Saleae export are several lines each).
    pub lines: u64,
    pub readings: u64,
    /// Lines, frames or cells that gave nothing, by cause.
    pub skipped: BTreeMap<String, u64>,
    /// Why the input could not be read at all.
    pub error: Option<String>,
}

/// One CSV written.
#[derive(Clone, Debug, Serialize)]
pub struct OutputReport {
    pub csv: PathBuf,
    /// The inputs it came from (a vehicle's batches may span many files).
    pub from: Vec<PathBuf>,
    /// The vehicle (`thing`) of stored batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing: Option<String>,
    pub rows: u64,
    /// Rows as hours: the vehicle-hours the CSV covers.
    pub hours: f64,
    pub columns: Vec<String>,
    /// Streams heard without a single good value, so without a column (`NAME@ORIGIN`).
    pub never_valid: Vec<String>,
    /// Samples the grid dropped as late (stamped at or before a closed tick).
    pub late_samples: u64,
    /// Samples dropped from a fifth origin of one signal.
    pub origins_refused: u64,
    /// Jumps in the clock that restarted the grid (the rows skip them).
    pub clock_jumps: u64,
}

/// What `vigil dataset` did; written as [`SUMMARY_FILE`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct DatasetSummary {
    pub inputs: Vec<InputReport>,
    pub outputs: Vec<OutputReport>,
    /// Vehicle-hours written, over every CSV.
    pub hours: f64,
    /// Wall-clock seconds the conversion took.
    pub seconds: f64,
    /// Vehicle-hours converted per second of work.
    pub hours_per_second: f64,
}

impl DatasetSummary {
    /// Whether some input could not be read at all.
    pub fn failed_inputs(&self) -> usize {
        self.inputs.iter().filter(|i| i.error.is_some()).count()
    }

    /// The lines `vigil dataset` prints: one an input, one an output, then the total.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in &self.inputs {
            let skipped: Vec<String> = i
                .skipped
                .iter()
                .map(|(cause, n)| format!("{n} {cause}"))
                .collect();
            let skipped = if skipped.is_empty() {
                "none skipped".to_owned()
            } else {
                format!("skipped {}", skipped.join(", "))
            };
            out.push(match &i.error {
                Some(error) => format!("{}: NOT CONVERTED: {error}", i.input.display()),
                None => format!(
                    "{}: {} lines, {} readings; {skipped}",
                    i.input.display(),
                    i.lines,
                    i.readings
                ),
            });
        }
        for o in &self.outputs {
            out.push(format!(
                "wrote {}: {} rows ({:.2} vehicle-hours), {} columns{}",
                o.csv.display(),
                o.rows,
                o.hours,
                o.columns.len(),
                if o.never_valid.is_empty() {
                    String::new()
                } else {
                    format!("; never valid, no column: {}", o.never_valid.join(", "))
                }
            ));
        }
        out.push(format!(
            "{} of {} inputs converted into {} CSVs, {:.2} vehicle-hours in {:.2} s ({:.1} vehicle-hours/s)",
            self.inputs.len() - self.failed_inputs(),
            self.inputs.len(),
            self.outputs.len(),
            self.hours,
            self.seconds,
            self.hours_per_second
        ));
        out
    }
}

/// Runs `vigil dataset`: converts every input, writes the summary.
pub fn run(cmd: &DatasetCommand) -> Result<DatasetSummary, DatasetError> {
    let started = Instant::now();
    let output_error = |path: &Path| {
        let path = path.to_owned();
        move |source| DatasetError::Output { path, source }
    };
    std::fs::create_dir_all(&cmd.out).map_err(output_error(&cmd.out))?;
    let mut summary = DatasetSummary::default();
    let mut names = Names::default();
    let mut fleet = readings::Fleet::default();
    let mut fleet_inputs = Vec::new();
    for input in &cmd.inputs {
        let mut report = InputReport {
            input: input.clone(),
            form: None,
            lines: 0,
            readings: 0,
            skipped: BTreeMap::new(),
            error: None,
        };
        let mut skipped = Skipped::default();
        let result = convert(
            cmd,
            input,
            &mut report,
            &mut skipped,
            &mut fleet,
            &mut names,
        );
        match result {
            Ok(Some(output)) => summary.outputs.push(output),
            Ok(None) => fleet_inputs.push(input.clone()),
            Err(Failure::Input(error)) => {
                tracing::error!(event = "dataset_input_failed", input = %input.display(), %error);
                report.error = Some(error);
            }
            Err(Failure::Output(e)) => return Err(e),
        }
        report.skipped = skipped.by_cause;
        summary.inputs.push(report);
    }
    if !fleet_inputs.is_empty() {
        add_duplicates(&mut summary, &fleet_inputs, fleet.duplicates);
        let things: Vec<String> = fleet.things().map(str::to_owned).collect();
        let signals = fleet.signals();
        for thing in things {
            let mut table = Table::new(signals.iter().cloned());
            fleet.replay(&thing, |r| table.push(r));
            let csv = names.take(&cmd.out, &safe_name(&thing));
            let mut output = write_table(table, &csv)?;
            output.from = fleet_inputs.clone();
            output.thing = Some(thing);
            summary.outputs.push(output);
        }
    }
    summary.hours = summary.outputs.iter().map(|o| o.hours).sum();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.hours_per_second = summary.hours / summary.seconds.max(1e-9);
    let path = cmd.out.join(SUMMARY_FILE);
    let json = serde_json::to_string_pretty(&summary).expect("a summary always serialises");
    std::fs::write(&path, json).map_err(output_error(&path))?;
    Ok(summary)
}

/// Duplicate batches (QoS 1 redelivery) are counted on the first stored-batch input, where
/// the summary shows them; they are not bad lines but the user may wonder at the count.
fn add_duplicates(summary: &mut DatasetSummary, inputs: &[PathBuf], duplicates: u64) {
    if duplicates == 0 {
        return;
    }
    if let Some(report) = summary.inputs.iter_mut().find(|r| r.input == inputs[0]) {
        *report
            .skipped
            .entry("duplicate_batch".to_owned())
            .or_default() += duplicates;
    }
}

enum Failure {
    /// The input cannot be read: reported, the others go on.
    Input(String),
    /// The output cannot be written: nothing more can be.
    Output(DatasetError),
}

impl From<DatasetError> for Failure {
    fn from(e: DatasetError) -> Self {
        Failure::Output(e)
    }
}

/// Converts one input into its CSV, or (`None`) adds its stored batches to `fleet`.
fn convert(
    cmd: &DatasetCommand,
    input: &Path,
    report: &mut InputReport,
    skipped: &mut Skipped,
    fleet: &mut readings::Fleet,
    names: &mut Names,
) -> Result<Option<OutputReport>, Failure> {
    let cannot = |e: std::io::Error| Failure::Input(format!("cannot read it: {e}"));
    let mut reader = open(input).map_err(cannot)?;
    let form = sniff(&mut reader).map_err(cannot)?;
    report.form = Some(form);
    let name = input.display().to_string();
    if form == InputForm::ReadingsBatches {
        report.lines = fleet.read(&name, reader, skipped).map_err(cannot)?;
        return Ok(None);
    }
    // The signals the grid watches: a CSV's header names; what the DBC maps and the tank
    // node's channels for a log or `vigil decode`'s rows.
    let (header_lines, watched) = match form {
        InputForm::ReadingsCsv => csv_header(&mut reader).map_err(cannot)?,
        _ => (0, log_signals(&cmd.table)),
    };
    let mut table = Table::new(watched.iter().cloned());
    let mut readings = 0u64;
    let mut each = |r: &Reading| {
        readings += 1;
        table.push(r);
    };
    report.lines = header_lines
        + match form {
            InputForm::CanLog => read_log(input, reader, cmd.table.clone(), skipped, &mut each)?,
            InputForm::ReadingsCsv => {
                read_wide_csv(&name, reader, &watched, skipped, &mut each).map_err(cannot)?
            }
            InputForm::DecodeRows => {
                read_rows(&name, reader, skipped, &mut each).map_err(cannot)?
            }
            InputForm::ReadingsBatches => unreachable!("handled above"),
        };
    report.readings = readings;
    table.finish();
    if table.rows() == 0 {
        return Err(Failure::Input(format!(
            "it gave no 1 Hz row ({readings} readings{}); is it a drive?",
            if skipped.total() > 0 {
                format!(", {} lines skipped", skipped.total())
            } else {
                String::new()
            }
        )));
    }
    let stem = input
        .file_stem()
        .map_or("input".into(), |s| s.to_string_lossy().into_owned());
    let stem = stem.strip_suffix(".log").unwrap_or(&stem).to_owned();
    let csv = names.take(&cmd.out, &safe_name(&stem));
    let mut output = write_table(table, &csv)?;
    output.from = vec![input.to_owned()];
    Ok(Some(output))
}

/// Every signal a log can give: the table's and the tank node's channels.
fn log_signals(table: &SignalTable) -> Vec<Signal> {
    let mut out: Vec<Signal> = table.layouts().iter().map(|l| l.signal.clone()).collect();
    out.extend((0..=u8::MAX).map(tank_temperature));
    out
}

fn write_table(mut table: Table, csv: &Path) -> Result<OutputReport, DatasetError> {
    table.finish();
    let error = |source| DatasetError::Output {
        path: csv.to_owned(),
        source,
    };
    let file = File::create(csv).map_err(error)?;
    let columns = table.write(BufWriter::new(file)).map_err(error)?;
    let (late_samples, origins_refused) = table.dropped();
    Ok(OutputReport {
        csv: csv.to_owned(),
        from: Vec::new(),
        thing: None,
        rows: table.rows() as u64,
        hours: table.rows() as f64 / 3600.0,
        columns,
        never_valid: table.never_valid(),
        late_samples,
        origins_refused,
        clock_jumps: table.restarts(),
    })
}

/// Output names already given, so two inputs named alike do not overwrite each other.
#[derive(Default)]
struct Names(std::collections::HashSet<PathBuf>);

impl Names {
    /// `DIR/STEM.csv`, or `DIR/STEM-2.csv` and on when that was given already.
    fn take(&mut self, dir: &Path, stem: &str) -> PathBuf {
        let mut n = 1;
        loop {
            let name = if n == 1 {
                format!("{stem}.csv")
            } else {
                format!("{stem}-{n}.csv")
            };
            let path = dir.join(name);
            if self.0.insert(path.clone()) {
                return path;
            }
            n += 1;
        }
    }
}

/// A file name from a thing or a stem: what a file name may not hold becomes `_`.
fn safe_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| match c {
            '/' | '\\' | '\0' => '_',
            c => c,
        })
        .collect();
    match name.as_str() {
        "" | "." | ".." => "input".into(),
        _ => name,
    }
}

/// Opens a file, through gzip when its first bytes say so.
fn open(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::new(File::open(path)?);
    let gzip = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    })
}

/// The form of an input from its first bytes.
fn sniff(reader: &mut Box<dyn BufRead>) -> std::io::Result<InputForm> {
    let start = reader.fill_buf()?;
    let text = String::from_utf8_lossy(&start[..start.len().min(64)]).to_ascii_lowercase();
    let text = text.trim_start();
    Ok(if text.starts_with('{') {
        InputForm::ReadingsBatches
    } else if text.starts_with("timestamp,signal,origin,value") {
        InputForm::DecodeRows
    } else if text.starts_with("timestamp") {
        InputForm::ReadingsCsv
    } else {
        InputForm::CanLog
    })
}

/// Decodes a CAN log and its `.serial` companion as the agent's replay source does.
fn read_log(
    path: &Path,
    mut log: Box<dyn BufRead>,
    table: SignalTable,
    skipped: &mut Skipped,
    each: &mut impl FnMut(&Reading),
) -> Result<u64, Failure> {
    let serial_path = serial_companion(path);
    let serial = match std::fs::read(&serial_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Failure::Input(format!(
                "cannot read its companion {}: {e}",
                serial_path.display()
            )));
        }
    };
    let mut recording = Recording::new(path.display().to_string(), &serial);
    let metrics = Arc::new(Metrics::default());
    let mut decoder = Decoder::with_signal_table(table, metrics.clone());
    let mut readings = Vec::new();
    let (mut lines, mut inputs) = (LineSplitter::new(), Vec::new());
    let mut node_errors = 0u64;
    loop {
        let piece = next_line(&mut log, &mut lines)
            .map_err(|e| Failure::Input(format!("cannot read it: {e}")))?;
        let more = piece.is_some();
        let read = match piece {
            Some(piece) => recording.piece(piece, &mut inputs),
            None => recording.finish(&mut inputs),
        };
        for input in inputs.drain(..) {
            if matches!(input, Input::NodeError { .. }) {
                node_errors += 1;
            }
            decoder.decode(&input, &mut readings);
            if let Some(now) = input.mono() {
                decoder.expire(now);
            }
            for r in readings.drain(..) {
                each(&r);
            }
        }
        read.map_err(|e| Failure::Input(e.to_string()))?;
        if !more {
            break;
        }
    }
    let counts: &LogCounts = recording.log().counts();
    for (cause, n) in [
        ("too_long", counts.too_long),
        ("bad_bytes", counts.bad_bytes),
        ("malformed", counts.malformed),
        ("unsupported", counts.unsupported),
        ("bus_error", counts.bus_errors),
        ("serial_frame_rejected", node_errors),
    ] {
        skipped.add(cause, n);
    }
    let m = metrics.snapshot();
    skipped.add("unknown_pgn_frames", m.can_frames_unknown_total);
    skipped.add("bad_length_frames", m.can_frames_bad_length_total);
    Ok(counts.lines)
}
