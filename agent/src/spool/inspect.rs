//! `vigil spool inspect --path DIR [--json]`: what a spool directory holds, for operators
//! and support.
//!
//! It works while the agent is stopped and never changes the spool: the store is copied to
//! a temporary directory and the copy is opened: opening writes (redb repairs a store left
//! by a crash, and its integrity check commits), and the agent may hold the store's lock. A store that cannot be opened is reported as damaged, not quarantined: that is
//! the agent's decision at its next start.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::SpoolError;
use super::ledger::KindDepth;
use super::record::{RecordKind, Seq};
use super::store::{self, wall_ms};

/// A small page cache: inspect reads every record once.
const INSPECT_CACHE: u64 = 1 << 20;
const INSPECT_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    pub path: PathBuf,
    /// Whether `DIR/store` exists.
    pub store_present: bool,
    /// Bytes of the store's files in `DIR/store`.
    pub bytes_on_disk: u64,
    pub alerts: KindDepth,
    pub readings: KindDepth,
    /// Lowest and highest pending sequence numbers.
    pub seq_first: Option<Seq>,
    pub seq_last: Option<Seq>,
    /// Distinct boot ids among pending records (runs that left records behind).
    pub boot_ids: usize,
    /// Wall-clock ms of the oldest pending record's append, and its age now in seconds.
    pub oldest_created_ms: Option<u64>,
    pub oldest_age_s: Option<u64>,
    /// Records that fail their checksum (the agent drops them at start).
    pub corrupt_records: u64,
    /// Why the store cannot be opened, if it cannot (the agent will quarantine it).
    pub damaged: Option<String>,
    pub quarantined: Vec<QuarantinedStore>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuarantinedStore {
    pub path: PathBuf,
    pub quarantined_at_unix_s: u64,
    pub reason: String,
    pub bytes: u64,
}

/// Reports on the spool directory `dir` (the agent's spool path, holding `store/`).
pub fn inspect(dir: &Path) -> Result<InspectReport, SpoolError> {
    if !dir.is_dir() {
        return Err(SpoolError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpoolError::Read { path, source }
    };
    let store_dir = dir.join("store");
    let mut report = InspectReport {
        path: dir.to_path_buf(),
        store_present: store_dir.is_dir(),
        bytes_on_disk: 0,
        alerts: KindDepth::default(),
        readings: KindDepth::default(),
        seq_first: None,
        seq_last: None,
        boot_ids: 0,
        oldest_created_ms: None,
        oldest_age_s: None,
        corrupt_records: 0,
        damaged: None,
        quarantined: Vec::new(),
    };
    let qdir = dir.join("quarantine");
    if qdir.is_dir() {
        for path in store::quarantined_stores(&qdir).map_err(read_err(&qdir))? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            report.quarantined.push(QuarantinedStore {
                quarantined_at_unix_s: name
                    .split('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                reason: fs::read_to_string(path.join("reason.txt"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
                bytes: dir_bytes(&path).map_err(read_err(&path))?,
                path,
            });
        }
    }
    if !report.store_present {
        return Ok(report);
    }
    report.bytes_on_disk = dir_bytes(&store_dir).map_err(read_err(&store_dir))?;

    // Unique per call: two inspections in one process and one millisecond (parallel tests,
    // a tool inspecting several spools) must never share a copy.
    static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let copy = std::env::temp_dir().join(format!(
        "vigil-spool-inspect-{}-{}-{}",
        std::process::id(),
        wall_ms(),
        COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    copy_dir(&store_dir, &copy).map_err(read_err(&store_dir))?;
    let loaded = store::load(&copy, INSPECT_CACHE, INSPECT_OPEN_TIMEOUT);
    match loaded {
        Ok(l) => {
            let mut boots = BTreeSet::new();
            for h in &l.found {
                let d = match h.kind {
                    RecordKind::Alert => &mut report.alerts,
                    RecordKind::Readings => &mut report.readings,
                };
                d.records += 1;
                d.bytes += super::record::footprint(h.payload_len);
                boots.insert(h.boot_id);
            }
            report.seq_first = l.found.first().map(|h| h.seq);
            report.seq_last = l.found.last().map(|h| h.seq);
            report.boot_ids = boots.len();
            report.oldest_created_ms = l.found.first().map(|h| h.created_ms);
            report.oldest_age_s = report
                .oldest_created_ms
                .map(|t| wall_ms().saturating_sub(t) / 1000);
            report.corrupt_records = l.bad.len() as u64;
            drop(l);
        }
        Err(e) => report.damaged = Some(e.to_string()),
    }
    let _ = fs::remove_dir_all(&copy);
    Ok(report)
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "spool {}", self.path.display())?;
        if !self.store_present {
            writeln!(f, "  store: none (the agent creates it at start)")?;
        } else if let Some(why) = &self.damaged {
            writeln!(
                f,
                "  store: DAMAGED ({why}); the agent will move it aside at its next start"
            )?;
        } else {
            writeln!(f, "  bytes on disk:  {}", self.bytes_on_disk)?;
            writeln!(
                f,
                "  alerts:         {} records, {} bytes",
                self.alerts.records, self.alerts.bytes
            )?;
            writeln!(
                f,
                "  readings:       {} records, {} bytes",
                self.readings.records, self.readings.bytes
            )?;
            match (self.seq_first, self.seq_last) {
                (Some(a), Some(b)) => {
                    writeln!(f, "  sequence:       {a}..={b} ({} boots)", self.boot_ids)?
                }
                _ => writeln!(f, "  sequence:       empty")?,
            }
            match self.oldest_age_s {
                Some(age) => writeln!(f, "  oldest record:  {age} s old")?,
                None => writeln!(f, "  oldest record:  none")?,
            }
            if self.corrupt_records > 0 {
                writeln!(
                    f,
                    "  corrupt:        {} records (dropped at the agent's next start)",
                    self.corrupt_records
                )?;
            }
        }
        writeln!(f, "  quarantined:    {}", self.quarantined.len())?;
        for q in &self.quarantined {
            writeln!(
                f,
                "    {} ({} bytes, at {} s): {}",
                q.path.display(),
                q.bytes,
                q.quarantined_at_unix_s,
                q.reason
            )?;
        }
        Ok(())
    }
}
