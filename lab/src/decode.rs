//! `vigil decode --dbc FILE --input LOG [--format csv|jsonl] [--out FILE]`: decodes a CAN
//! log with a DBC into rows, the tool engineers use to check a DBC against a real log. The
//! CLI only parses arguments and calls [`decode_command`].
//!
//! Every signal of the DBC is decoded: those the mapping names under their VSS name, the
//! others under their DBC name. A row with a quality flag says the flag instead of a value.
//! DM1 diagnostic messages become rows too, one per trouble code. The log (any form the
//! agent's [`LogReader`](vigil_agent::frame::log::LogReader) reads; `-` for standard input)
//! is read by the agent's own recording reader: a `.serial` file beside it (the tank node)
//! is merged in, and lines that give no frame are skipped, logged and counted by cause in
//! the summary, beside the decoder's own counters ([`DecodeSummary`]).
//!
//! # Rows
//!
//! CSV, with a header: `timestamp,signal,origin,value`, the timestamp in wall-clock seconds
//! with microseconds as candump writes it, the origin the sender (`can1/sa00`: bus and
//! source address; the serial port for the tank node), so two senders of one signal are
//! told apart:
//!
//! ```text
//! 1635188455.410900,Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature,can1/sa00,71
//! 1635188455.410900,EngTurboOilTemp,can1/sa00,not_available
//! 1635188455.718900,DM1,can1/sa00,spn=980 fmi=9 oc=126 cm=0 mil=on rsl=off awl=off pl=not_available
//! ```
//!
//! JSON lines: `{"timestamp":..,"signal":..,"origin":..,"value":..}` (or `"quality":..`
//! instead of `"value"`), and `{"timestamp":..,"origin":..,"dm1":{..}}` with the whole
//! [`DiagnosticEvent`](super::dm1::DiagnosticEvent).

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_agent::decode::dbc::{self, DbcError, SignalNames};
use vigil_agent::decode::dm1::{DiagnosticEvent, LampState, SpnConversion};
use vigil_agent::decode::table::SignalTable;
use vigil_agent::decode::{Decoded, Decoder};
use vigil_agent::frame::log::{LineSplitter, LogCounts, LogError, next_line};
use vigil_agent::frame::recording::{Recording, serial_companion};
use vigil_agent::reading::{Origin, Reading, Timestamp};
use vigil_agent::telemetry::{Metrics, MetricsSnapshot};

/// The row format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Csv,
    Jsonl,
}

/// The decode command's arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeCommand {
    pub dbc: PathBuf,
    /// The log; `-` for standard input.
    pub input: PathBuf,
    pub format: OutputFormat,
    /// Standard output when `None`.
    pub out: Option<PathBuf>,
    /// DBC signal name -> VSS name (the config's mapping, or [`dbc::default_signal_names`]).
    pub signals: BTreeMap<String, String>,
}

/// What a decode run did, for the CLI to print ([`DecodeSummary::line`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodeSummary {
    /// The log's form, its frames and the lines skipped by cause.
    pub log: LogCounts,
    pub readings: u64,
    /// Readings with a quality flag instead of a value.
    pub flagged: u64,
    pub diagnostics: u64,
    /// The decoder's counters (unknown PGNs, bad lengths, transport sessions...).
    pub metrics: MetricsSnapshot,
}

impl DecodeSummary {
    /// The one summary line `vigil decode` ends with.
    pub fn line(&self) -> String {
        format!(
            "decoded {} into {} readings ({} flagged) and {} DM1 events; {}; {}",
            self.log.frames_text(),
            self.readings,
            self.flagged,
            self.diagnostics,
            self.log.skipped_text(),
            decoder_counts(&self.metrics)
        )
    }
}

/// What the decoder counted: unknown PGNs, bad lengths, transport-protocol sessions.
pub fn decoder_counts(m: &MetricsSnapshot) -> String {
    format!(
        "{} frames of unknown PGNs, {} of bad length; TP sessions {} opened, {} completed, \
         {} timed out, {} aborted, {} frames rejected",
        m.can_frames_unknown_total,
        m.can_frames_bad_length_total,
        m.tp_sessions_opened_total,
        m.tp_messages_total,
        m.tp_timeouts_total,
        m.tp_aborts_total,
        m.tp_errors_total
    )
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeCommandError {
    #[error(transparent)]
    Dbc(#[from] DbcError),
    #[error("cannot read the log {path}: {source}; check the --input path")]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot write the rows{}: {source}", .path.as_ref().map(|p| format!(" to {}", p.display())).unwrap_or_default())]
    Output {
        path: Option<PathBuf>,
        #[source]
        source: std::io::Error,
    },
}

/// The input's and the output's buffer: a system call per 64 KiB of log or rows, not per
/// 8 KiB (std's default).
const IO_BUFFER: usize = 64 * 1024;

/// Lines read before their inputs are decoded and their rows written: the decoder's
/// counters are published once a batch, and the rows go out in one write.
const LINES_PER_BATCH: usize = 256;

/// Runs `vigil decode`.
pub fn decode_command(cmd: &DecodeCommand) -> Result<DecodeSummary, DecodeCommandError> {
    let text = dbc::read_dbc(&cmd.dbc)?;
    let origin = cmd.dbc.display().to_string();
    let table = dbc::table_from_dbc(&text, &origin, &SignalNames::All(&cmd.signals))?;
    let input_error = |path: &Path| {
        let path = path.to_owned();
        move |source| DecodeCommandError::Input { path, source }
    };
    let from_stdin = cmd.input.as_os_str() == "-";
    // One buffered reader over either source: its line reads are plain calls, and only the
    // refill of its 64 KiB buffer goes through `dyn Read`.
    let (input, recording): (Box<dyn Read>, Recording) = if from_stdin {
        (
            Box::new(std::io::stdin()),
            Recording::new("standard input", &[]),
        )
    } else {
        let file = std::fs::File::open(&cmd.input).map_err(input_error(&cmd.input))?;
        let serial_path = serial_companion(&cmd.input);
        let serial = match std::fs::read(&serial_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(input_error(&serial_path)(source)),
        };
        let name = cmd.input.display().to_string();
        (Box::new(file), Recording::new(name, &serial))
    };
    let input = std::io::BufReader::with_capacity(IO_BUFFER, input);
    let output_error = |source| DecodeCommandError::Output {
        path: cmd.out.clone(),
        source,
    };
    match &cmd.out {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(output_error)?;
            let out = std::io::BufWriter::with_capacity(IO_BUFFER, file);
            decode_log(table, recording, input, cmd.format, out)
        }
        None => {
            let out = std::io::BufWriter::with_capacity(IO_BUFFER, std::io::stdout().lock());
            decode_log(table, recording, input, cmd.format, out)
        }
    }
    .map_err(|e| match e {
        DecodeCommandError::Output { source, .. } => output_error(source),
        DecodeCommandError::Input { source, .. } => input_error(&cmd.input)(source),
        other => other,
    })
}

/// Decodes a CAN log read from `input` (through `recording`, which holds the log's serial
/// companion, if any) into rows written to `out`. A log that cannot be read at all (a
/// binary form, no frame in it) is an error once its rows, if any, are written.
pub fn decode_log<R: BufRead, W: Write>(
    table: SignalTable,
    mut recording: Recording,
    mut input: R,
    format: OutputFormat,
    mut out: W,
) -> Result<DecodeSummary, DecodeCommandError> {
    let write_error = |source| DecodeCommandError::Output { path: None, source };
    let metrics = Arc::new(Metrics::default());
    let mut decoder = Decoder::with_signal_table(table, metrics.clone());
    let mut summary = DecodeSummary::default();
    let mut decoded = Decoded::default();
    // A batch's rows, formatted here (no allocation per row) and written in one call.
    let (mut rows, mut scratch) = (Vec::with_capacity(64 * 1024), Vec::new());
    let (mut lines, mut inputs) = (LineSplitter::new(), Vec::new());
    if format == OutputFormat::Csv {
        out.write_all(b"timestamp,signal,origin,value\n")
            .map_err(write_error)?;
    }
    let ended = loop {
        // Up to LINES_PER_BATCH lines' inputs, then their rows in one pass and one write.
        let mut read = Ok(());
        let mut more = true;
        while more && read.is_ok() && inputs.len() < LINES_PER_BATCH {
            let piece =
                next_line(&mut input, &mut lines).map_err(|source| DecodeCommandError::Input {
                    path: PathBuf::new(),
                    source,
                })?;
            more = piece.is_some();
            read = match piece {
                Some(piece) => recording.piece(piece, &mut inputs),
                None => recording.finish(&mut inputs),
            };
        }
        rows.clear();
        decoder.decode_each(&inputs, &mut decoded, |decoded| {
            for reading in &decoded.readings {
                summary.readings += 1;
                summary.flagged += reading.value().is_none() as u64;
                match format {
                    OutputFormat::Csv => csv_reading(&mut rows, reading),
                    OutputFormat::Jsonl => jsonl_reading(&mut rows, &mut scratch, reading),
                }
            }
            for event in &decoded.diagnostics {
                summary.diagnostics += 1;
                match format {
                    OutputFormat::Csv => csv_diagnostic(&mut rows, event),
                    OutputFormat::Jsonl => jsonl_diagnostic(&mut rows, &mut scratch, event),
                }
            }
        });
        inputs.clear();
        out.write_all(&rows).map_err(write_error)?;
        if read.is_err() || !more {
            break read;
        }
    };
    out.flush().map_err(write_error)?;
    ended?;
    summary.log = recording.log().counts().clone();
    summary.metrics = metrics.snapshot();
    Ok(summary)
}

/// `SECONDS.MICROS`, exactly as the log wrote it.
fn write_timestamp(row: &mut Vec<u8>, at: Timestamp) {
    let secs = at.wall_us.div_euclid(1_000_000);
    let micros = at.wall_us.rem_euclid(1_000_000);
    if secs < 0 {
        row.push(b'-');
    }
    write_decimal(row, secs.unsigned_abs(), 1);
    row.push(b'.');
    write_decimal(row, micros.unsigned_abs(), 6);
}

/// `n` in decimal, zero-padded to at least `width` digits (at most 20), without going
/// through `fmt`: the timestamp is formatted for every row. Two digits a division.
fn write_decimal(row: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else if n > 0 {
        start -= 1;
        digits[start] = b'0' + n as u8;
    }
    start = start.min(digits.len() - width.clamp(1, 20));
    row.extend_from_slice(&digits[start..]);
}

/// `00`, `01`, ... `99`, one after the other.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// `can1/sa00`, as [`Origin`]'s `Display` writes it.
fn write_origin(row: &mut Vec<u8>, origin: &Origin) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    match origin {
        Origin::Can {
            bus,
            source_address,
        } => {
            row.extend_from_slice(bus.as_bytes());
            let sa = *source_address as usize;
            row.extend_from_slice(&[b'/', b's', b'a', HEX[sa >> 4], HEX[sa & 0xF]]);
        }
        Origin::Serial { port } => row.extend_from_slice(port.as_bytes()),
    }
}

fn csv_reading(row: &mut Vec<u8>, r: &Reading) {
    write_timestamp(row, r.at);
    row.push(b',');
    row.extend_from_slice(r.signal.as_str().as_bytes());
    row.push(b',');
    write_origin(row, &r.origin);
    row.push(b',');
    match r.value() {
        Some(v) => write_value(row, v),
        None => {
            let _ = write!(row, "{}", r.quality);
        }
    }
    row.push(b'\n');
}

/// A value as its `Display` writes it. Whole numbers (most of what a DBC's scales give:
/// 71 °C, 1,250 rpm) are written as integers, fractions (649.25 rpm) by `ryu`: both give
/// the shortest digits that read back as the same f64, which is what `Display` writes,
/// without `fmt`'s float path (about 140 instructions a frame of `vigil decode` before,
/// callgrind, about half of what the CSV cost). `ryu` writes an exponent
/// outside 1e-5..1e16 (`1e-7`) where `Display` does not (`0.0000001`): those go to `fmt`.
fn write_value(row: &mut Vec<u8>, v: f64) {
    // Below 2^53 every whole f64 is an exact integer; -0.0 prints as `-0`, so it goes to fmt.
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 && !(v == 0.0 && v.is_sign_negative())
    {
        if v < 0.0 {
            row.push(b'-');
        }
        write_decimal(row, v.abs() as u64, 1);
        return;
    }
    if v.is_finite() && v.fract() != 0.0 {
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(v).as_bytes();
        if !text.contains(&b'e') {
            row.extend_from_slice(text);
            return;
        }
    }
    let _ = write!(row, "{v}");
}

fn lamp(state: LampState) -> &'static str {
    match state {
        LampState::Off => "off",
        LampState::On => "on",
        LampState::Error => "error",
        LampState::NotAvailable => "not_available",
    }
}

fn csv_diagnostic(row: &mut Vec<u8>, e: &DiagnosticEvent) {
    let lamps = |row: &mut Vec<u8>| {
        let _ = writeln!(
            row,
            "mil={} rsl={} awl={} pl={}",
            lamp(e.lamps.malfunction.state),
            lamp(e.lamps.red_stop.state),
            lamp(e.lamps.amber_warning.state),
            lamp(e.lamps.protect.state)
        );
    };
    let start = |row: &mut Vec<u8>| {
        write_timestamp(row, e.at);
        row.extend_from_slice(b",DM1,");
        write_origin(row, &e.origin);
    };
    if e.dtcs.is_empty() {
        start(row);
        row.extend_from_slice(b",no_active_dtc ");
        lamps(row);
    }
    for dtc in &e.dtcs {
        start(row);
        let cm = (dtc.conversion != SpnConversion::Version4) as u8;
        let _ = write!(row, ",spn={} fmi={} oc=", dtc.spn, dtc.fmi);
        let _ = match dtc.occurrence_count {
            Some(n) => write!(row, "{n}"),
            None => write!(row, "not_available"),
        };
        let _ = write!(row, " cm={cm} ");
        lamps(row);
    }
}

/// A JSON string, escaped, written in place.
fn json_string(row: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail, and a str always serialises.
    let _ = serde_json::to_writer(&mut *row, s);
}

/// The origin as a JSON string: its text has nothing to escape but what the bus or port
/// name holds, so it is written as text first, into `scratch`.
fn json_origin(row: &mut Vec<u8>, scratch: &mut Vec<u8>, origin: &Origin) {
    scratch.clear();
    write_origin(scratch, origin);
    json_string(row, std::str::from_utf8(scratch).unwrap_or_default());
}

fn jsonl_reading(row: &mut Vec<u8>, scratch: &mut Vec<u8>, r: &Reading) {
    row.extend_from_slice(b"{\"timestamp\":");
    write_timestamp(row, r.at);
    row.extend_from_slice(b",\"signal\":");
    json_string(row, r.signal.as_str());
    row.extend_from_slice(b",\"origin\":");
    json_origin(row, scratch, &r.origin);
    let _ = match r.value() {
        Some(v) if v.is_finite() => writeln!(row, ",\"value\":{v}}}"),
        _ => writeln!(row, ",\"quality\":\"{}\"}}", r.quality),
    };
}

fn jsonl_diagnostic(row: &mut Vec<u8>, scratch: &mut Vec<u8>, e: &DiagnosticEvent) {
    row.extend_from_slice(b"{\"timestamp\":");
    write_timestamp(row, e.at);
    row.extend_from_slice(b",\"origin\":");
    json_origin(row, scratch, &e.origin);
    row.extend_from_slice(b",\"dm1\":");
    if serde_json::to_writer(&mut *row, e).is_err() {
        row.extend_from_slice(b"null");
    }
    row.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use vigil_agent::frame::log::Form;
    use vigil_agent::signals::COOLANT_TEMPERATURE;

    const LOG: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/j1939-truck-css.candump.log"
    );

    fn run(format: OutputFormat) -> (String, DecodeSummary) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rows");
        let cmd = DecodeCommand {
            dbc: concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dbc/vigil-j1939.dbc").into(),
            input: LOG.into(),
            format,
            out: Some(out.clone()),
            signals: dbc::default_signal_names(),
        };
        let summary = decode_command(&cmd).unwrap();
        (std::fs::read_to_string(out).unwrap(), summary)
    }

    #[test]
    fn the_real_log_decodes_to_csv_rows() {
        let (csv, s) = run(OutputFormat::Csv);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], "timestamp,signal,origin,value");
        assert_eq!(
            (s.log.lines, s.log.frames, s.log.skipped()),
            (57_849, 57_849, 0)
        );
        assert_eq!(s.log.form, Some(Form::CandumpLog));
        // EEC1 1 + ET1 5 + CCVS1 1 + AMB 2 readings per frame; 4 codes per DM1.
        assert_eq!(s.readings, 12_719 + 127 * 5 + 1_272 + 127 * 2);
        assert_eq!(s.flagged, 127 * 3);
        assert_eq!(s.diagnostics, 127);
        assert_eq!(rows.len() as u64, 1 + s.readings + 4 * s.diagnostics);
        let coolant = format!("1635188455.410900,{COOLANT_TEMPERATURE},can1/sa00,71");
        assert!(rows.contains(&coolant.as_str()), "{coolant}");
        assert!(rows.contains(
            &"1635188455.410900,Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature,can1/sa00,72.78125"
        ));
        assert!(rows.contains(&"1635188455.410900,EngTurboOilTemp,can1/sa00,not_available"));
        assert!(rows.contains(
            &"1635188455.718900,DM1,can1/sa00,spn=3216 fmi=20 oc=2 cm=0 mil=on rsl=off awl=off pl=not_available"
        ));
        assert!(
            rows[1..].iter().all(|r| r.split(',').count() == 4),
            "four columns everywhere"
        );
    }

    #[test]
    fn the_real_log_decodes_to_json_lines() {
        let (jsonl, s) = run(OutputFormat::Jsonl);
        let mut values = 0;
        let mut dm1 = 0;
        for line in jsonl.lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect(line);
            assert!(row["timestamp"].as_f64().unwrap() > 1.6e9);
            if let Some(event) = row.get("dm1") {
                dm1 += 1;
                assert_eq!(row["origin"], "can1/sa00");
                assert_eq!(event["dtcs"][0]["spn"], 980);
                assert_eq!(event["lamps"]["malfunction"]["state"], "on");
            } else if row.get("value").is_some() {
                values += 1;
            } else {
                assert_eq!(row["quality"], "not_available");
            }
        }
        assert_eq!((values, dm1), (s.readings - s.flagged, s.diagnostics));
        let first = jsonl.lines().next().unwrap();
        assert!(first.starts_with("{\"timestamp\":1635188455.029900,\"signal\":\"Vehicle.Powertrain.CombustionEngine.Speed\",\"origin\":\"can1/sa00\",\"value\":"), "{first}");
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted() {
        let log = "(1.000000) can1 18FEEE00#6F3F392BFFFFFFFF\nnot a frame\n(2.000000) can1 18FEEE00#FF3F392B\n";
        let (text, s) = decode_bytes(log.as_bytes()).unwrap();
        assert_eq!((s.log.frames, s.log.malformed, s.flagged), (2, 1, 1));
        assert!(
            text.contains(&format!(
                "2.000000,{COOLANT_TEMPERATURE},can1/sa00,not_available"
            )),
            "{text}"
        );
    }

    /// Decodes a log given as bytes to CSV with the built-in table.
    fn decode_bytes(log: &[u8]) -> Result<(String, DecodeSummary), DecodeCommandError> {
        let table = dbc::DbcConfig::default().load().unwrap();
        let mut out = Vec::new();
        let s = decode_log(
            table,
            Recording::new("log", &[]),
            log,
            OutputFormat::Csv,
            &mut out,
        )?;
        Ok((String::from_utf8(out).unwrap(), s))
    }

    #[test]
    fn two_senders_of_one_signal_are_told_apart_by_their_origin() {
        let log = "(1.000000) can1 18FEEE00#6F3F392BFFFFFFFF\n(1.100000) can1 18FEEE03#703F392BFFFFFFFF\n";
        let (text, _) = decode_bytes(log.as_bytes()).unwrap();
        assert!(
            text.contains(&format!("1.000000,{COOLANT_TEMPERATURE},can1/sa00,71")),
            "{text}"
        );
        assert!(
            text.contains(&format!("1.100000,{COOLANT_TEMPERATURE},can1/sa03,72")),
            "{text}"
        );
    }

    #[test]
    fn the_summary_line_shows_every_counter() {
        let log = "(1.000000) can1 18FEEE00#6F3F392BFFFFFFFF\n\
                   (1.000100) can1 18FEEE00#6F3F\n\
                   (1.000200) can1 18FFFF00#00\n\
                   (1.000300) can1 18ECFF00#20120003FFCAFE00\n\
                   (1.000400) can1 123#R\n\
                   (3.000000) can1 18FFFF00#00\n";
        let (_, s) = decode_bytes(log.as_bytes()).unwrap();
        let line = s.line();
        assert_eq!(
            line,
            "decoded 5 frames (candump -l) into 5 readings (0 flagged) and 0 DM1 events; \
             lines skipped: 0 too long, 0 bad bytes, 0 malformed, 1 unsupported, 0 bus errors; \
             2 frames of unknown PGNs, 1 of bad length; TP sessions 1 opened, 0 completed, \
             1 timed out, 0 aborted, 0 frames rejected"
        );
    }

    #[test]
    fn a_log_without_a_frame_is_an_error_naming_the_forms_read() {
        let err = decode_bytes(b"hello\nworld\n").unwrap_err().to_string();
        assert!(err.contains("holds no CAN frame"), "{err}");
        assert!(
            err.contains("Vector ASC") && err.contains("Saleae"),
            "{err}"
        );
        let err = decode_bytes(b"LOGG\x90\x00\x00\x00binary")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Vector BLF") && err.contains("can.logconvert"),
            "{err}"
        );
    }

    #[test]
    fn one_bad_byte_in_line_2_costs_line_2_only() {
        // D5: the 1,000 first lines of the real log with one byte of line 2 not UTF-8.
        let text = std::fs::read_to_string(LOG).unwrap();
        let clean: Vec<&str> = text.lines().take(1000).collect();
        let mut bad = clean.join("\n").into_bytes();
        let second = clean[0].len() + 1;
        bad[second + 5] = 0xFF;
        let (good_rows, good) = decode_bytes(clean.join("\n").as_bytes()).unwrap();
        let (bad_rows, s) = decode_bytes(&bad).unwrap();
        assert_eq!(
            (s.log.frames, s.log.bad_bytes, s.log.skipped()),
            (999, 1, 1)
        );
        // Everything else decodes as before: the rows of line 2's frame alone are missing.
        let line2 = clean[1].split(')').next().unwrap().trim_start_matches('(');
        let without: Vec<&str> = good_rows
            .lines()
            .filter(|r| !r.starts_with(line2))
            .collect();
        assert_eq!(bad_rows.lines().collect::<Vec<_>>(), without);
        assert!(good.readings >= s.readings);
    }

    /// The real log as candump prints it (`-ta`) and as Vector ASC (bus `can1` is channel 2),
    /// written here from its `candump -l` lines.
    fn printed_and_asc(candump: &str) -> (String, String) {
        let mut printed = String::new();
        let mut asc =
            String::from("date Mon Oct 25 07:00:55.000 pm 2021\nbase hex  timestamps absolute\n");
        for line in candump.lines() {
            let (stamp, rest) = line.split_once(") ").unwrap();
            let (bus, frame) = rest.split_once(' ').unwrap();
            let (id, data) = frame.split_once('#').unwrap();
            let bytes: Vec<&str> = (0..data.len())
                .step_by(2)
                .map(|i| &data[i..i + 2])
                .collect();
            let (n, spaced) = (bytes.len(), bytes.join(" "));
            let _ = writeln!(printed, " {stamp})  {bus}  {id}   [{n}]  {spaced}");
            let (secs, micros) = stamp[1..].split_once('.').unwrap();
            let offset = secs.parse::<i64>().unwrap() - 1_635_188_455;
            let channel = bus[3..].parse::<u32>().unwrap() + 1;
            let x = if id.len() == 8 { "x" } else { "" };
            let _ = writeln!(
                asc,
                "   {offset}.{micros} {channel}  {id}{x}  Rx   d {n} {spaced}"
            );
        }
        (printed, asc)
    }

    #[test]
    fn the_real_log_decodes_to_the_same_rows_printed_by_candump_and_as_vector_asc() {
        let text = std::fs::read_to_string(LOG).unwrap();
        assert!(
            text.starts_with("(1635188455."),
            "the ASC date line is this second"
        );
        let (rows, clean) = decode_bytes(text.as_bytes()).unwrap();
        assert!(clean.readings > 14_000, "{}", clean.readings);
        let (printed, asc) = printed_and_asc(&text);
        for (form, log) in [(Form::CandumpPrinted, printed), (Form::VectorAsc, asc)] {
            let (same, s) = decode_bytes(log.as_bytes()).unwrap();
            assert_eq!(
                (s.log.form, s.log.frames, s.log.skipped()),
                (Some(form), 57_849, 0)
            );
            assert_eq!(
                (s.readings, s.flagged, s.diagnostics),
                (clean.readings, clean.flagged, clean.diagnostics)
            );
            assert!(same == rows, "{form}: the rows differ");
        }
    }

    /// The rows are formatted by hand, not through `fmt`: they must read exactly as the
    /// `Display` of what they show.
    #[test]
    fn hand_formatted_fields_read_as_their_display() {
        for wall_us in [
            0,
            5_001,
            1_635_188_455_020_850,
            -500_000,
            -1,
            i64::MAX,
            i64::MIN,
        ] {
            let mut row = Vec::new();
            write_timestamp(
                &mut row,
                Timestamp {
                    wall_us,
                    mono: Default::default(),
                },
            );
            let (secs, micros) = (wall_us.div_euclid(1_000_000), wall_us.rem_euclid(1_000_000));
            assert_eq!(
                String::from_utf8(row).unwrap(),
                format!("{secs}.{micros:06}")
            );
        }
        let bus: Arc<str> = Arc::from("can1");
        for origin in [
            Origin::Can {
                bus: bus.clone(),
                source_address: 0,
            },
            Origin::Can {
                bus,
                source_address: 0xFE,
            },
            Origin::Serial {
                port: Arc::from("/dev/ttyUSB0"),
            },
        ] {
            let mut row = Vec::new();
            write_origin(&mut row, &origin);
            assert_eq!(String::from_utf8(row).unwrap(), origin.to_string());
        }
    }

    #[test]
    fn values_read_as_their_display() {
        for v in [
            0.0,
            -0.0,
            71.0,
            -40.0,
            72.78125,
            -0.5,
            1e15,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let mut row = Vec::new();
            write_value(&mut row, v);
            assert_eq!(String::from_utf8(row).unwrap(), v.to_string(), "{v:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decimals_are_written_as_fmt_pads_them(n in proptest::num::u64::ANY, small in 0u64..1000, width in 0usize..22) {
            for n in [n, small] {
                let mut row = Vec::new();
                write_decimal(&mut row, n, width);
                let width = width.clamp(1, 20);
                proptest::prop_assert_eq!(String::from_utf8(row).unwrap(), format!("{n:0width$}"));
            }
        }
    }

    proptest::proptest! {
        /// `ryu`'s digits are `Display`'s: any f64, and values the way a DBC makes them
        /// (a raw integer times a scale plus an offset).
        #[test]
        fn values_are_written_as_display_writes_them(
            any in proptest::num::f64::ANY,
            raw in 0u64..=0xFFFF_FFFF,
            scale in proptest::sample::select(vec![0.001, 0.03125, 0.05, 0.1, 0.125, 0.4, 0.5, 1e-6, 3.3]),
            offset in proptest::sample::select(vec![0.0, -40.0, -273.0, -125.0, -210.0, -1e9]),
        ) {
            for v in [any, raw as f64 * scale + offset, any / 1e300, any * 1e-310] {
                let mut row = Vec::new();
                write_value(&mut row, v);
                proptest::prop_assert_eq!(String::from_utf8(row).unwrap(), v.to_string());
            }
        }
    }

    #[test]
    fn json_rows_escape_what_names_hold() {
        let at = Timestamp {
            wall_us: 1_000_000,
            mono: Default::default(),
        };
        let origin = Origin::Serial {
            port: Arc::from("odd \"port\"\\"),
        };
        let reading = Reading::good(
            vigil_agent::reading::Signal::new("a \"quoted\" name"),
            at,
            1.5,
            origin,
        );
        let (mut row, mut scratch) = (Vec::new(), Vec::new());
        jsonl_reading(&mut row, &mut scratch, &reading);
        let value: serde_json::Value = serde_json::from_slice(&row).unwrap();
        assert_eq!(value["signal"], "a \"quoted\" name");
        assert_eq!(value["origin"], "odd \"port\"\\");
        assert_eq!(
            (value["value"].as_f64(), value["timestamp"].as_f64()),
            (Some(1.5), Some(1.0))
        );
    }

    #[test]
    fn a_missing_log_names_itself() {
        let cmd = DecodeCommand {
            dbc: concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dbc/vigil-j1939.dbc").into(),
            input: "/nonexistent.log".into(),
            format: OutputFormat::Csv,
            out: None,
            signals: dbc::default_signal_names(),
        };
        let err = decode_command(&cmd).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the log /nonexistent.log"),
            "{err}"
        );
    }
}
