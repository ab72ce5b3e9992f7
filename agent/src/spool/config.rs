//! The `[spool]` section of the config file, and the [`SpoolConfig`] it becomes for one
//! vehicle. Checking is pure; the folder is opened when the spool starts.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FlushPolicy, SpoolConfig, WriteMode};
use crate::duration;

/// The `[spool]` section (see the spool module for what each bound means).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// The spool directory. When absent: `$XDG_STATE_HOME/vigil/spool/<vehicle.id>`, else
    /// `~/.local/state/vigil/spool/<vehicle.id>`, else under the system's temp directory.
    pub path: Option<PathBuf>,
    /// Cap on the store's file in bytes; pending records fill at most 7/16 of it (each
    /// counted with the pages it takes) and the oldest readings are evicted first.
    pub max_bytes: u64,
    /// The part of `max_bytes` alerts may use, counted the same way.
    pub max_alert_bytes: u64,
    /// Flush (fsync) at least this often while records are unflushed...
    #[serde(with = "duration")]
    pub flush_every: Duration,
    /// ...and after this many appends; alerts are flushed at once.
    pub flush_every_records: u64,
    /// Write readings to flash only while the link is down (saves flash wear; a power cut
    /// can then lose the readings not yet acknowledged).
    pub write_only_while_offline: bool,
}

impl Default for SpoolSection {
    fn default() -> Self {
        let spool = SpoolConfig::new("");
        SpoolSection {
            path: None,
            max_bytes: spool.max_bytes,
            max_alert_bytes: spool.max_alert_bytes,
            flush_every: spool.flush.every,
            flush_every_records: spool.flush.every_records,
            write_only_while_offline: false,
        }
    }
}

impl SpoolSection {
    /// The spool's settings for this vehicle: the section's folder, or one chosen from the
    /// environment when it names none (nothing is opened).
    pub fn spool_config(&self, vehicle_id: &str, max_in_flight: usize) -> SpoolConfig {
        let dir = self.path.clone().unwrap_or_else(|| {
            let state = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(std::env::temp_dir);
            state.join("vigil/spool").join(vehicle_id)
        });
        self.spool_config_in(dir, max_in_flight)
    }

    /// The spool's settings in `dir`.
    fn spool_config_in(&self, dir: PathBuf, max_in_flight: usize) -> SpoolConfig {
        SpoolConfig {
            max_bytes: self.max_bytes,
            max_alert_bytes: self.max_alert_bytes,
            max_in_flight,
            write_mode: if self.write_only_while_offline {
                WriteMode::OnlyWhileOffline { max_unstored: 64 }
            } else {
                WriteMode::Always
            },
            flush: FlushPolicy {
                every: self.flush_every,
                every_records: self.flush_every_records,
                alerts_at_once: true,
            },
            ..SpoolConfig::new(dir)
        }
    }

    /// Checks the bounds against each other; returns the key and what is wrong. No I/O.
    pub fn check(&self, max_in_flight: usize) -> Result<(), (&'static str, String)> {
        self.spool_config_in(PathBuf::new(), max_in_flight)
            .validate()
            .map_err(|e| ("spool", e.to_string()))
    }
}
