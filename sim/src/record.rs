//! Recording a simulated run to files, for `vigil simulate --out FILE`: the CAN traffic
//! as a `candump -l` log, the tank node's raw serial bytes, and the fault labels.
//!
//! Owns the three files' names and formats:
//! - `FILE`: one `candump -l` line per frame (bus `can0`), through [`candump::format_line`];
//! - `FILE` with extension `.serial`: the node's bytes exactly as the UART carries them
//!   (COBS frames, each ending in `0x00`);
//! - `FILE` with extension `.labels.csv`: `fault,signal,start,end`, one row per fault
//!   interval, times in Unix seconds written as the candump log writes them; [`read_labels`]
//!   reads it back (the replay report draws the faults over the signals).
//!
//! It must never write anything the truck did not emit, and never leave a partial file
//! unreported: every write error comes back with the path it concerns.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Emitted, FaultInterval, Scenario, SimError, Truck, TruckParams};
use vigil_agent::frame::candump;
use vigil_agent::reading::Signal;

/// The CAN interface name recorded logs carry, as a real gateway's would.
pub const RECORDED_BUS: &str = "can0";

/// What a recording wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSummary {
    pub candump: PathBuf,
    pub serial: PathBuf,
    pub labels: PathBuf,
    /// Simulated time covered.
    pub duration: Duration,
    pub can_frames: u64,
    pub serial_messages: u64,
    pub serial_bytes: u64,
    pub faults: Vec<FaultInterval>,
}

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("{}: {source}; check that its folder exists and is writable", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: the recording's companion files would overwrite it; name the log with another \
         extension, such as `run.log`",
        .0.display()
    )]
    NameClash(PathBuf),
}

/// The `.serial` and `.labels.csv` files that go with a candump log at `out`.
pub fn companion_paths(out: &Path) -> (PathBuf, PathBuf) {
    (
        out.with_extension("serial"),
        out.with_extension("labels.csv"),
    )
}

/// Simulates `duration` of `scenario` and writes the three files. The CAN bus is named
/// [`RECORDED_BUS`] whatever `params.bus` says.
pub fn write(
    params: TruckParams,
    scenario: Scenario,
    duration: Duration,
    out: &Path,
) -> Result<RecordSummary, RecordError> {
    let (serial_path, labels_path) = companion_paths(out);
    if serial_path == out || labels_path == out {
        return Err(RecordError::NameClash(out.to_owned()));
    }
    let start_wall_us = params.start_wall_us;
    let mut truck = Truck::new(
        TruckParams {
            bus: Arc::from(RECORDED_BUS),
            ..params
        },
        scenario,
    )?;
    let mut candump_file = create(out)?;
    let mut serial_file = create(&serial_path)?;
    let mut summary = RecordSummary {
        candump: out.to_owned(),
        serial: serial_path,
        labels: labels_path,
        duration,
        can_frames: 0,
        serial_messages: 0,
        serial_bytes: 0,
        faults: truck.fault_intervals(duration),
    };
    loop {
        let emission = truck.next_emission();
        if emission.elapsed >= duration {
            break;
        }
        match emission.what {
            Emitted::Can(frame) => {
                let line = candump::format_line(&frame);
                writeln!(candump_file, "{line}").map_err(io_at(&summary.candump))?;
                summary.can_frames += 1;
            }
            Emitted::Serial(bytes) => {
                serial_file
                    .write_all(&bytes)
                    .map_err(io_at(&summary.serial))?;
                summary.serial_messages += 1;
                summary.serial_bytes += bytes.len() as u64;
            }
        }
    }
    candump_file.flush().map_err(io_at(&summary.candump))?;
    serial_file.flush().map_err(io_at(&summary.serial))?;
    let mut labels = create(&summary.labels)?;
    write_labels(&mut labels, &summary.faults, start_wall_us).map_err(io_at(&summary.labels))?;
    labels.flush().map_err(io_at(&summary.labels))?;
    Ok(summary)
}

/// Writes the labels CSV: a header, then one row per interval.
pub fn write_labels(
    out: &mut impl Write,
    faults: &[FaultInterval],
    start_wall_us: i64,
) -> io::Result<()> {
    writeln!(out, "fault,signal,start,end")?;
    for f in faults {
        let start = unix_seconds(start_wall_us + f.start.as_micros() as i64);
        let end = unix_seconds(start_wall_us + f.end.as_micros() as i64);
        writeln!(out, "{},{},{start},{end}", f.fault, f.signal)?;
    }
    Ok(())
}

/// One row of a labels file: which fault acted on which signal, from `start` to `end`,
/// Unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub fault: String,
    pub signal: Signal,
    pub start: f64,
    pub end: f64,
}

/// A labels file that is not what [`write_labels`] writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "line {line}: {problem}; a labels file has the header `fault,signal,start,end`, then \
     one fault a row with its start and end in Unix seconds (as `vigil simulate` writes it)"
)]
pub struct LabelsError {
    pub line: usize,
    pub problem: String,
}

/// Reads a labels file's text back into its rows.
pub fn read_labels(text: &str) -> Result<Vec<Label>, LabelsError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
    let bad = |line: usize, problem: &str| LabelsError {
        line,
        problem: problem.to_owned(),
    };
    match lines.next() {
        Some((_, "fault,signal,start,end")) => {}
        Some((line, _)) => return Err(bad(line, "the header is not `fault,signal,start,end`")),
        None => return Err(bad(1, "the file is empty")),
    }
    let mut labels = Vec::new();
    for (line, row) in lines.filter(|(_, l)| !l.is_empty()) {
        let fields: Vec<&str> = row.split(',').collect();
        let [fault, signal, start, end] = fields[..] else {
            return Err(bad(line, &format!("{} fields, not 4", fields.len())));
        };
        let time = |text: &str, name: &str| -> Result<f64, LabelsError> {
            text.parse::<f64>()
                .ok()
                .filter(|t| t.is_finite())
                .ok_or_else(|| bad(line, &format!("the {name} {text:?} is not Unix seconds")))
        };
        let (start, end) = (time(start, "start")?, time(end, "end")?);
        if end < start {
            return Err(bad(line, "the fault ends before it starts"));
        }
        labels.push(Label {
            fault: fault.to_owned(),
            signal: Signal::new(signal),
            start,
            end,
        });
    }
    Ok(labels)
}

/// Unix seconds with six decimals, the way a candump log writes its timestamps.
pub fn unix_seconds(wall_us: i64) -> String {
    format!(
        "{}.{:06}",
        wall_us.div_euclid(1_000_000),
        wall_us.rem_euclid(1_000_000)
    )
}

fn create(path: &Path) -> Result<BufWriter<File>, RecordError> {
    let file = File::create(path).map_err(io_at(path))?;
    // Large buffers: a two-hour run is about ten megabytes of log.
    Ok(BufWriter::with_capacity(1 << 16, file))
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fault, FaultKind, Sensor};
    use vigil_wire::FrameDecoder;

    const MIN: Duration = Duration::from_secs(60);

    /// What a fresh truck with the same inputs emits, split by path.
    fn expected(
        params: &TruckParams,
        scenario: &Scenario,
        duration: Duration,
    ) -> (Vec<vigil_agent::frame::CanFrame>, Vec<u8>) {
        let mut truck = Truck::new(params.clone(), scenario.clone()).unwrap();
        let (mut frames, mut serial) = (Vec::new(), Vec::new());
        loop {
            let e = truck.next_emission();
            if e.elapsed >= duration {
                return (frames, serial);
            }
            match e.what {
                Emitted::Can(f) => frames.push(f),
                Emitted::Serial(bytes) => serial.extend(bytes),
            }
        }
    }

    #[test]
    fn a_recording_is_the_run_as_candump_lines_raw_serial_bytes_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run.log");
        let params = TruckParams {
            seed: 11,
            ..TruckParams::default()
        };
        let scenario = Scenario::from_name("tank-heating", 2 * MIN)
            .unwrap()
            .lasting(MIN)
            .with_fault(Fault::new(FaultKind::Drift(Sensor::Ambient), 3 * MIN));
        let duration = 5 * MIN;
        let summary = write(params.clone(), scenario.clone(), duration, &out).unwrap();
        assert_eq!(summary.serial, dir.path().join("run.serial"));
        assert_eq!(summary.labels, dir.path().join("run.labels.csv"));

        let (frames, serial) = expected(&params, &scenario, duration);
        let log = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len() as u64, summary.can_frames);
        assert_eq!(lines.len(), frames.len());
        let first = Some(params.start_wall_us);
        for (line, sent) in lines.iter().zip(&frames) {
            let parsed = candump::parse_line(line, first).unwrap();
            assert_eq!(&*parsed.bus, RECORDED_BUS);
            assert_eq!(
                (parsed.id, parsed.data, parsed.at),
                (sent.id, sent.data, sent.at),
                "{line}"
            );
        }

        let bytes = std::fs::read(&summary.serial).unwrap();
        assert_eq!(bytes, serial);
        assert_eq!(bytes.len() as u64, summary.serial_bytes);
        let mut decoder = FrameDecoder::new();
        let mut messages = 0;
        for b in bytes {
            match decoder.push(b) {
                Some(Ok(_)) => messages += 1,
                Some(Err(e)) => panic!("recorded serial frame rejected: {e}"),
                None => {}
            }
        }
        assert_eq!(messages, summary.serial_messages);
        // 3 compartments a second and a heartbeat every 10 s.
        assert_eq!(messages, 5 * 60 * 3 + 30);

        let labels = std::fs::read_to_string(&summary.labels).unwrap();
        let rows: Vec<Vec<&str>> = labels.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows[0], ["fault", "signal", "start", "end"]);
        assert_eq!(rows.len(), 3);
        let secs = |text: &str| -> f64 { text.parse().unwrap() };
        let start = params.start_wall_us as f64 / 1e6;
        let tank = &rows[1];
        assert_eq!(
            tank[..2],
            [
                "tank-heating",
                "Vehicle.Cargo.Tank.Compartment1.Temperature"
            ]
        );
        assert!(
            (secs(tank[2]) - (start + 120.0)).abs() < 1e-6
                && (secs(tank[3]) - (start + 180.0)).abs() < 1e-6
        );
        let drift = &rows[2];
        assert_eq!(drift[..2], ["drift", "Vehicle.Exterior.AirTemperature"]);
        // An open-ended fault ends with the run; times read like the log's own stamps.
        assert!((secs(drift[3]) - (start + 300.0)).abs() < 1e-6);
        let last_frame = candump::parse_line(lines[lines.len() - 1], first).unwrap();
        assert!(last_frame.at.wall_secs() < secs(drift[3]));
        assert_eq!(drift[2].split('.').nth(1).map(str::len), Some(6));
        assert_eq!(summary.faults, scenario.intervals(duration));
        // They read back as written.
        let read = read_labels(&labels).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].fault, "tank-heating");
        assert_eq!(read[1].signal.as_str(), "Vehicle.Exterior.AirTemperature");
        assert_eq!(
            (read[1].start, read[1].end),
            (secs(drift[2]), secs(drift[3]))
        );
    }

    #[test]
    fn a_labels_file_that_is_not_one_names_its_line() {
        let header = "fault,signal,start,end\n";
        let err = |text: &str| read_labels(text).unwrap_err();
        assert_eq!(err("").line, 1);
        assert!(err("start,end\n").to_string().contains("header"));
        let e = err(&format!("{header}drift,Vehicle.Speed,1.0\n"));
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("3 fields"), "{e}");
        let e = err(&format!("{header}\ndrift,Vehicle.Speed,1.0,soon\n"));
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("\"soon\""), "{e}");
        assert!(
            err(&format!("{header}drift,Vehicle.Speed,2.0,1.0\n"))
                .to_string()
                .contains("ends before")
        );
        assert_eq!(read_labels(header), Ok(Vec::new()));
    }

    #[test]
    fn bad_output_paths_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let clash = dir.path().join("run.serial");
        let err = write(TruckParams::default(), Scenario::normal(), MIN, &clash).unwrap_err();
        assert!(
            matches!(err, RecordError::NameClash(ref p) if *p == clash),
            "{err}"
        );
        let missing = dir.path().join("no-such-folder").join("run.log");
        let err = write(TruckParams::default(), Scenario::normal(), MIN, &missing).unwrap_err();
        assert!(
            matches!(err, RecordError::Io { ref path, .. } if *path == missing),
            "{err}"
        );
        assert!(err.to_string().contains("no-such-folder"), "{err}");
    }
}
