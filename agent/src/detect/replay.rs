//! `vigil replay`: the detect stage over a recorded log, as fast as it can go.
//!
//! Input is a `candump -l` log (decoded with the same [`Decoder`]; the tank node's
//! `.serial` companion beside it is merged in, its messages placed by the node's own
//! millisecond clock, which starts with the log) or a CSV with a `timestamp` column (Unix
//! seconds) then VSS names. Output is one JSON line per alert and, if asked, a single-file
//! HTML report. The I/O is here; the judging is the same [`Detector`] the agent runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use vigil_wire::FrameDecoder;

use super::Detector;
use super::alert::{Alert, AlertEvent, AlertKind, Severity};
use super::dataset::{self, CsvError};
use super::model::{Model, ModelError, ModelHandle};
use crate::config::Config;
use crate::decode::{Decoder, Input, NodeMessage};
use crate::reading::{Reading, Signal, Timestamp};
use crate::source::candump::{self, CandumpError};

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} line {line}: {source}", path.display())]
    Candump {
        path: PathBuf,
        line: usize,
        #[source]
        source: CandumpError,
    },
    #[error("{}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: CsvError,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// One alert as a JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertLine {
    pub id: u64,
    pub signal: Signal,
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
}

impl AlertLine {
    fn new(a: &Alert) -> Self {
        AlertLine {
            id: a.id,
            signal: a.signal.clone(),
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
        }
    }
}

/// What a replay found.
#[derive(Debug)]
pub struct ReplaySummary {
    pub readings: u64,
    pub alerts: Vec<AlertLine>,
    pub model: Option<Arc<str>>,
    pub late_samples: u64,
}

/// Replays `input` through a detector built from `config` (with the model card `model`,
/// if given: a model that fails its checks is an error here, not a warning). Writes the
/// alerts to `out` and, if asked, the report.
pub fn replay(
    config: &Config,
    input: &Path,
    model: Option<&Path>,
    out: &Path,
    report: Option<&Path>,
) -> Result<ReplaySummary, ReplayError> {
    let handle = ModelHandle::new(model.map(Model::load).transpose()?);
    let model_id = handle.current().map(|m| m.id.clone());
    let mut detector = Detector::with_model(config, handle.clone());
    if report.is_some() {
        detector.keep_trace();
    }
    let mut lines: BTreeMap<u64, AlertLine> = BTreeMap::new();
    let mut events = Vec::new();
    let mut readings = 0u64;
    let mut each = |r: &Reading| {
        readings += 1;
        detector.observe(r, &mut events);
        for e in events.drain(..) {
            match &e {
                AlertEvent::Raised(a) => {
                    lines.insert(a.id, AlertLine::new(a));
                }
                AlertEvent::Escalated(a) => {
                    if let Some(line) = lines.get_mut(&a.id) {
                        line.severity = line.severity.max(a.severity);
                    }
                }
                AlertEvent::Cleared { alert, cleared_at } => {
                    if let Some(line) = lines.get_mut(&alert.id) {
                        line.cleared_at = Some(cleared_at.wall_secs());
                    }
                }
            }
        }
    };
    let is_csv = input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let file = open(input)?;
        dataset::read_csv(BufReader::new(file), &mut each).map_err(|source| ReplayError::Csv {
            path: input.to_owned(),
            source,
        })?;
    } else {
        read_candump(input, &mut each)?;
    }
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
    file.flush().map_err(write_err)?;
    if let Some(path) = report {
        let html = super::report::html(input, model_id.as_deref(), &detector.take_trace(), &alerts);
        std::fs::write(path, html).map_err(|source| ReplayError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(ReplaySummary {
        readings,
        alerts,
        model: model_id,
        late_samples: detector.late_samples(),
    })
}

fn open(path: &Path) -> Result<File, ReplayError> {
    File::open(path).map_err(|source| ReplayError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Decodes a candump log and its `.serial` companion (if present) in time order.
fn read_candump(path: &Path, each: &mut impl FnMut(&Reading)) -> Result<(), ReplayError> {
    let metrics = Arc::default();
    let mut decoder = Decoder::new(metrics);
    let mut out = Vec::new();
    let file = open(path)?;
    let mut first_wall: Option<i64> = None;
    let node = read_serial(&path.with_extension("serial"))?;
    let mut node = node.into_iter().peekable();
    let port: Arc<str> = Arc::from("replay-serial");
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| ReplayError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let frame =
            candump::parse_line(&line, first_wall).map_err(|source| ReplayError::Candump {
                path: path.to_owned(),
                line: i + 1,
                source,
            })?;
        let origin = *first_wall.get_or_insert(frame.at.wall_us);
        while let Some((ms, _)) = node.peek() {
            let mono = Duration::from_millis(u64::from(*ms));
            if mono > frame.at.mono {
                break;
            }
            let (_, message) = node.next().expect("peeked");
            let at = Timestamp {
                wall_us: origin + mono.as_micros() as i64,
                mono,
            };
            let input = Input::Node(NodeMessage {
                port: port.clone(),
                message,
                at,
            });
            decoder.decode(&input, &mut out);
        }
        decoder.decode(&Input::Can(frame), &mut out);
        for r in out.drain(..) {
            each(&r);
        }
    }
    Ok(())
}

/// The node messages of a `.serial` file with their node clock (ms); none if it is absent.
fn read_serial(path: &Path) -> Result<Vec<(u32, vigil_wire::Message)>, ReplayError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReplayError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut decoder = FrameDecoder::new();
    Ok(bytes
        .iter()
        .filter_map(|&b| decoder.push(b))
        .flatten()
        .map(|m| (m.node_ms, m))
        .collect())
}
