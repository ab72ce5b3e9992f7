//! `vigil dataset` (`vigil_lab::export`) on data the tests make: simulated drives written
//! as a real gateway logs them (candump plus the node's `.serial`) and as the fleet stores
//! them (`vigil.readings/1` batches, one JSON a line, as Firehose writes them to S3), read
//! back into the 1 Hz training CSV and compared with the lab's own CSV of the same drive.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_agent::decode::dbc::DbcConfig;
use vigil_agent::frame::Input;
use vigil_agent::reading::{Origin, Reading};
use vigil_agent::uplink::readings;
use vigil_lab::dataset::{self, CsvWriter};
use vigil_lab::export::{self, DatasetCommand, DatasetSummary};
use vigil_sim::source::Inputs;
use vigil_sim::{BusQuirks, Scenario, Truck, TruckParams, record};

/// A parsed CSV: its columns, and its rows by timestamp in hundredths of a second (stored
/// readings keep milliseconds, a log microseconds), cells `None` for a gap.
struct Csv {
    columns: Vec<String>,
    rows: BTreeMap<i64, Vec<Option<f64>>>,
}

impl Csv {
    fn parse(text: &str) -> Csv {
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(header[0], "timestamp");
        let rows = lines
            .map(|line| {
                let mut cells = line.split(',');
                let stamp: f64 = cells.next().unwrap().parse().unwrap();
                let stamp = (stamp * 100.0).round() as i64;
                let values = cells.map(|c| c.parse().ok()).collect();
                (stamp, values)
            })
            .collect();
        Csv {
            columns: header[1..].to_vec(),
            rows,
        }
    }

    fn read(path: &Path) -> Csv {
        Csv::parse(&std::fs::read_to_string(path).unwrap())
    }

    /// The column's values by timestamp.
    fn column(&self, name: &str) -> BTreeMap<i64, Option<f64>> {
        let at = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns));
        self.rows
            .iter()
            .map(|(t, v)| (*t, v.get(at).copied().flatten()))
            .collect()
    }

    /// Columns that hold at least one value.
    fn filled_columns(&self) -> Vec<String> {
        (0..self.columns.len())
            .filter(|&i| {
                self.rows
                    .values()
                    .any(|r| r.get(i).copied().flatten().is_some())
            })
            .map(|i| self.columns[i].clone())
            .collect()
    }
}

/// The lab's own CSV of a drive: readings straight from the simulator's decode, resampled
/// by `CsvWriter` (what `models/train.py` has always read). With a `clock`, on the clock a
/// recording of the drive is read back on (`place` moves each reading there).
fn lab_csv(
    params: TruckParams,
    scenario: Scenario,
    length: Duration,
    mut place: impl FnMut(&Reading) -> Reading,
) -> Csv {
    let compartments = params.compartments;
    let mut csv = CsvWriter::new(Vec::new(), dataset::csv_signals(compartments)).unwrap();
    let mut readings = Vec::new();
    dataset::simulate(params, scenario, length, |r| readings.push(place(r))).unwrap();
    // The node's readings moved later: back in time order, as the recording reads them.
    readings.sort_by_key(|r| r.at.mono);
    for r in &readings {
        csv.push(r).unwrap();
    }
    Csv::parse(&String::from_utf8(csv.finish().unwrap()).unwrap())
}

/// Where a recording's reader puts a simulated drive's readings: the log's clock starts at
/// its first frame, and the node's messages are placed at the log's start plus the node's
/// own clock, which in the simulator started `node_boot` before the drive (2 to 30 s: a
/// node powered before the logger).
#[derive(Clone, Copy, Debug)]
struct RecordingClock {
    first_frame: Duration,
    node_boot: Duration,
}

impl RecordingClock {
    fn place(&self, r: &Reading) -> Reading {
        let mut r = r.clone();
        let wall_start =
            r.at.wall_us - r.at.mono.as_micros() as i64 + self.first_frame.as_micros() as i64;
        r.at.mono = match r.origin {
            Origin::Serial { .. } => {
                self.node_boot + Duration::from_millis(r.at.mono.as_millis() as u64)
            }
            Origin::Can { .. } => r.at.mono - self.first_frame,
        };
        r.at.wall_us = wall_start + r.at.mono.as_micros() as i64;
        r
    }
}

/// The clock of a recording of the truck `params`: its first frame and its node's boot.
fn recording_clock(params: &TruckParams, scenario: &Scenario) -> RecordingClock {
    let mut inputs = Inputs::new(Truck::new(params.clone(), scenario.clone()).unwrap());
    let (mut first_frame, mut node_boot, mut batch) = (None, None, Vec::new());
    while first_frame.is_none() || node_boot.is_none() {
        inputs.next(&mut batch);
        for input in batch.drain(..) {
            match input {
                Input::Can(frame) if first_frame.is_none() => first_frame = Some(frame.at.mono),
                Input::Node(node) if node_boot.is_none() => {
                    let own = Duration::from_millis(u64::from(node.message.node_ms));
                    node_boot = Some(own - Duration::from_millis(node.at.mono.as_millis() as u64));
                }
                _ => {}
            }
        }
    }
    RecordingClock {
        first_frame: first_frame.unwrap(),
        node_boot: node_boot.unwrap(),
    }
}

fn export(inputs: Vec<PathBuf>, out: &Path) -> DatasetSummary {
    export::run(&DatasetCommand {
        inputs,
        out: out.to_owned(),
        table: DbcConfig::default().load().unwrap(),
    })
    .unwrap()
}

/// Compares two CSVs' column on the timestamps both have: the same value to within
/// `tolerance`, or a gap in both, on all rows but `allowed` (a sample landing either side
/// of a tick's end). Returns the rows compared.
fn assert_same(name: &str, ours: &Csv, lab: &Csv, tolerance: f64, allowed: usize) -> usize {
    let (a, b) = (ours.column(name), lab.column(name));
    let mut compared = 0;
    let mut differ = Vec::new();
    for (t, x) in &a {
        let Some(y) = b.get(t) else { continue };
        compared += 1;
        let same = match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= tolerance,
            (None, None) => true,
            _ => false,
        };
        if !same {
            differ.push((*t, *x, *y));
        }
    }
    assert!(
        differ.len() <= allowed,
        "{name}: {} rows differ: {differ:?}",
        differ.len()
    );
    compared
}

#[test]
fn a_recorded_drive_gives_the_csv_the_lab_writes_for_the_same_drive() {
    let dir = tempfile::tempdir().unwrap();
    let length = Duration::from_secs(20 * 60);
    let params = dataset::truck_params(7);
    let scenario = Scenario::from_name("coolant-loss", Duration::from_secs(600)).unwrap();
    let log = dir.path().join("drive-7.log");
    record::write(params.clone(), scenario.clone(), length, &log).unwrap();
    let out = dir.path().join("data");
    let summary = export(vec![log.clone()], &out);
    assert_eq!(summary.failed_inputs(), 0, "{:?}", summary.inputs);
    assert_eq!(
        summary.inputs[0].skipped,
        BTreeMap::new(),
        "a clean log skips nothing"
    );
    let ours = Csv::read(&out.join("drive-7.csv"));
    let clock = recording_clock(&params, &scenario);
    let lab = lab_csv(params, scenario, length, |r| clock.place(r));
    // The same columns, in the same order: every signal the lab's CSV fills.
    assert_eq!(ours.columns, lab.filled_columns());
    // Row for row on the recording's clock, every value the same (both decode the same
    // frames and node messages: the same bus resolution), but for a sample or two landing
    // the other side of a tick's end.
    let mut rows = 0;
    for name in &ours.columns {
        rows = rows.max(assert_same(name, &ours, &lab, 1e-9, 2));
    }
    assert!(rows >= 1199, "{rows} rows compared of 1200");
    assert_eq!(summary.outputs[0].rows as usize, ours.rows.len());
    assert!((summary.outputs[0].hours - ours.rows.len() as f64 / 3600.0).abs() < 1e-9);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(export::SUMMARY_FILE)).unwrap())
            .unwrap();
    assert_eq!(json["outputs"][0]["rows"], summary.outputs[0].rows);
}

#[test]
fn a_second_sender_gets_a_column_of_its_own_and_the_engines_keeps_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let params = TruckParams {
        quirks: BusQuirks {
            second_sender: Some((0x03, 0.4)),
            ..BusQuirks::default()
        },
        ..dataset::truck_params(11)
    };
    let log = dir.path().join("relay.log");
    record::write(params, Scenario::normal(), Duration::from_secs(300), &log).unwrap();
    let out = dir.path().join("data");
    export(vec![log], &out);
    let csv = Csv::read(&out.join("relay.csv"));
    let coolant = vigil_agent::signals::COOLANT_TEMPERATURE;
    let relay = format!("{coolant}@can0/sa03");
    assert!(
        csv.columns.contains(&coolant.to_owned()),
        "{:?}",
        csv.columns
    );
    assert_eq!(
        csv.columns.last(),
        Some(&relay),
        "the relay's column comes last"
    );
    let (own, relayed) = (csv.column(coolant), csv.column(&relay));
    let differ = own
        .iter()
        .filter(|(t, v)| relayed.get(*t) != Some(v))
        .count();
    assert!(
        differ > 0,
        "the two senders' columns are not the same column twice"
    );
}

/// A drive's readings as its truck's agent would publish them: batches of 10 s, each
/// `vigil.readings/1` with the identity the agent gives it and the fields the Firehose rule
/// adds.
fn batches(thing: &str, params: TruckParams, length: Duration) -> Vec<String> {
    let mut all: Vec<Reading> = Vec::new();
    dataset::simulate(params, Scenario::normal(), length, |r| all.push(r.clone())).unwrap();
    let mut out = Vec::new();
    let mut seq = 0;
    for chunk in all.chunk_by(|a, b| a.at.mono.as_secs() / 10 == b.at.mono.as_secs() / 10) {
        for body in readings::encode(chunk, 0.1, 5000) {
            let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            json["thing"] = thing.into();
            json["boot"] = 77.into();
            json["seq"] = seq.into();
            json["received_at"] = (json["t0"].as_i64().unwrap() + 1500).into();
            seq += 1;
            out.push(json.to_string());
        }
    }
    out
}

#[test]
fn stored_batches_become_one_csv_per_vehicle_with_bad_lines_counted() {
    let dir = tempfile::tempdir().unwrap();
    let length = Duration::from_secs(10 * 60);
    let (a, b) = (dataset::truck_params(21), dataset::truck_params(22));
    let mut lines_a = batches("truck-21", a.clone(), length);
    let lines_b = batches("truck-22", b.clone(), length);
    // Firehose files cut by arrival time across trucks; one batch delivered twice (QoS 1),
    // and the second file's batches out of order.
    let duplicate = lines_a[5].clone();
    let (first, second) = lines_a.split_at_mut(30);
    second.reverse();
    let mut file_1: Vec<String> = first.to_vec();
    file_1.extend(lines_b[..20].iter().cloned());
    file_1.push("not json at all".into());
    file_1.push(r#"{"format":"vigil.alert/1","thing":"truck-21"}"#.into());
    let mut file_2: Vec<String> = second.to_vec();
    file_2.extend(lines_b[20..].iter().cloned());
    file_2.push(duplicate);
    file_2.push(r#"{"format":"vigil.readings/1","t0":0,"res":0.1,"series":[]}"#.into());
    file_2.push(r#"{"format":"vigil.readings/1","thing":"truck-21","boot":1,"seq":9,"t0":0,"res":0.1,"series":[{"s":"x","o":"y","t":[[0,1,5]],"v":[1]}]}"#.into());
    let plain = dir.path().join("part-1");
    std::fs::write(&plain, file_1.join("\n") + "\n").unwrap();
    // The second as Firehose stores it: gzipped.
    let gz = dir.path().join("part-2.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    encoder
        .write_all((file_2.join("\n") + "\n").as_bytes())
        .unwrap();
    encoder.finish().unwrap();
    let out = dir.path().join("data");
    let summary = export(vec![plain, gz], &out);
    let skipped: BTreeMap<String, u64> = summary
        .inputs
        .iter()
        .flat_map(|i| i.skipped.clone())
        .fold(BTreeMap::new(), |mut m, (k, v)| {
            *m.entry(k).or_default() += v;
            m
        });
    let expected: BTreeMap<String, u64> = [
        ("not_json", 1),
        ("not_readings", 1),
        ("no_thing", 1),
        ("bad_encoding", 1),
        ("duplicate_batch", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(skipped, expected);
    let written: Vec<&Path> = summary.outputs.iter().map(|o| o.csv.as_path()).collect();
    assert_eq!(
        written,
        [out.join("truck-21.csv"), out.join("truck-22.csv")]
    );
    for (thing, params) in [("truck-21", a), ("truck-22", b)] {
        let ours = Csv::read(&out.join(format!("{thing}.csv")));
        // Stored readings keep the readings' wall times to the millisecond, on a clock
        // that starts at the first reading: the lab's CSV of the same readings so timed.
        let mut first_ms = None;
        let stored = |r: &Reading| {
            let wall_ms = r.at.wall_us.div_euclid(1000);
            let first = *first_ms.get_or_insert(wall_ms);
            let mut r = r.clone();
            r.at.mono = Duration::from_millis((wall_ms - first) as u64);
            r.at.wall_us = wall_ms * 1000;
            r
        };
        let lab = lab_csv(params, Scenario::normal(), length, stored);
        assert_eq!(ours.columns, lab.filled_columns(), "{thing}");
        // The batches carry values in steps of 0.1 (`uplink.resolution`): within half a step.
        let mut rows = 0;
        for name in &ours.columns {
            rows = rows.max(assert_same(name, &ours, &lab, 0.05 + 1e-9, 2));
        }
        assert!(rows >= 599, "{thing}: {rows} rows compared of 600");
    }
}

#[test]
fn bad_lines_are_counted_by_cause_and_an_unreadable_input_leaves_the_others_converted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("drive.log");
    record::write(
        dataset::truck_params(3),
        Scenario::normal(),
        Duration::from_secs(120),
        &log,
    )
    .unwrap();
    // Damage the log: a garbage line, a line of bad bytes and a remote frame among the frames.
    let mut bytes = std::fs::read(&log).unwrap();
    let cut = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut damaged = bytes[..cut].to_vec();
    damaged.extend_from_slice(b"this is not a frame\n\xff\xfe\xfd\n(1.000000) can0 18FEEE00#R\n");
    damaged.extend_from_slice(&bytes.split_off(cut));
    std::fs::write(&log, damaged).unwrap();
    // And a serial frame that fails its checks in the node's stream.
    let serial = log.with_extension("serial");
    let mut node = std::fs::read(&serial).unwrap();
    node.splice(0..0, [0x55, 0x55, 0x00]);
    std::fs::write(&serial, node).unwrap();
    let csv = dir.path().join("history.csv");
    std::fs::write(
        &csv,
        "timestamp,Vehicle.Speed,Vehicle.Exterior.AirTemperature\n\
         1700000000,50,12\n1700000001,51,x\nnot-a-time,1,2\n1700000002,52,12\n1700000003,53,12\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.log");
    let blf = dir.path().join("trace.blf");
    std::fs::write(&blf, b"LOGG\x90\x00\x00\x00").unwrap();
    let out = dir.path().join("data");
    let summary = export(vec![missing.clone(), log, blf, csv], &out);
    assert_eq!(summary.failed_inputs(), 2);
    let error = |path: &Path| {
        summary
            .inputs
            .iter()
            .find(|i| i.input == path)
            .and_then(|i| i.error.clone())
            .unwrap()
    };
    assert!(
        error(&missing).contains("cannot read it"),
        "{}",
        error(&missing)
    );
    assert!(
        error(&dir.path().join("trace.blf")).contains("convert"),
        "{}",
        error(&dir.path().join("trace.blf"))
    );
    let log_report = &summary.inputs[1];
    assert_eq!(log_report.error, None);
    assert_eq!(
        log_report.skipped.get("malformed"),
        Some(&1),
        "{:?}",
        log_report.skipped
    );
    assert_eq!(
        log_report.skipped.get("bad_bytes"),
        Some(&1),
        "{:?}",
        log_report.skipped
    );
    assert_eq!(
        log_report.skipped.get("unsupported"),
        Some(&1),
        "{:?}",
        log_report.skipped
    );
    assert_eq!(
        log_report.skipped.get("serial_frame_rejected"),
        Some(&1),
        "{:?}",
        log_report.skipped
    );
    let csv_report = &summary.inputs[3];
    assert_eq!(csv_report.skipped.get("bad_value"), Some(&1));
    assert_eq!(csv_report.skipped.get("bad_timestamp"), Some(&1));
    let history = Csv::read(&out.join("history.csv"));
    assert_eq!(
        history.columns,
        ["Vehicle.Exterior.AirTemperature", "Vehicle.Speed"]
    );
    assert_eq!(history.column("Vehicle.Speed").len(), 4);
    assert!(out.join("drive.csv").exists());
    let lines = summary.lines();
    assert!(lines[0].contains("NOT CONVERTED"), "{lines:?}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("2 of 4 inputs converted into 2 CSVs"),
        "{lines:?}"
    );
}
