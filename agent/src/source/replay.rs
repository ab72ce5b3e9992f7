//! Replays a `candump -l` log as if the truck were sending it: in real time, faster or
//! slower by a factor, or as fast as the pipeline takes it.
//!
//! Pacing follows the frames' own timestamps on tokio's clock, so tests run it on paused
//! time and a sped-up replay is exact. A malformed line is counted, logged with its line
//! number (the first few at `warn`, the rest at `debug`) and skipped; the replay carries on.
//! Replayed frames keep the log's wall time, and their monotonic time is their distance
//! from the log's first frame.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SourceError;
use super::candump;
use crate::decode::Input;
use crate::telemetry::Metrics;

/// Malformed lines logged at `warn` before the rest go to `debug`.
const LOUD_MALFORMED_LINES: usize = 10;

/// A candump log to replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// The `candump -l` log file.
    pub path: PathBuf,
    /// Times real time; 0 means as fast as the pipeline takes it.
    #[serde(default = "real_time")]
    pub speed: f64,
}

fn real_time() -> f64 {
    1.0
}

impl ReplayConfig {
    /// Checks the values a TOML file can get wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.speed.is_finite() && self.speed >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "replay speed must be 0 (as fast as possible) or a positive factor of real time, found {}",
                self.speed
            ))
        }
    }
}

/// Replays the log once, then returns. Returns early, without error, on shutdown or when
/// the pipeline has gone.
pub async fn run(
    config: &ReplayConfig,
    metrics: Arc<Metrics>,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    let what = || format!("replay log {}", config.path.display());
    let file = tokio::fs::File::open(&config.path)
        .await
        .map_err(|source| SourceError::Io {
            what: what(),
            source,
        })?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    let started = tokio::time::Instant::now();
    let mut first_wall_us = None;
    let mut line_no = 0usize;
    let mut malformed = 0usize;
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            line = lines.next_line() => line.map_err(|source| SourceError::Io { what: what(), source })?,
        };
        let Some(line) = line else {
            tracing::info!(event = "replay_finished", path = %config.path.display(), lines = line_no, malformed);
            return Ok(());
        };
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let frame = match candump::parse_line(&line, first_wall_us) {
            Ok(frame) => frame,
            Err(error) => {
                malformed += 1;
                Metrics::inc(&metrics.replay_lines_malformed_total);
                if malformed <= LOUD_MALFORMED_LINES {
                    tracing::warn!(event = "replay_line_malformed", path = %config.path.display(), line = line_no, %error);
                } else {
                    tracing::debug!(event = "replay_line_malformed", path = %config.path.display(), line = line_no, %error);
                }
                continue;
            }
        };
        first_wall_us.get_or_insert(frame.at.wall_us);
        if config.speed > 0.0 {
            let due = started + frame.at.mono.div_f64(config.speed);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            sent = inputs.send(Input::Can(frame)) => if sent.is_err() { return Ok(()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    const LOG: &str = "(1635188455.000000) can1 18FEEE00#6F3F392BFFFFFFFF\n\
                       this line is not a frame\n\
                       \n\
                       (1635188456.000000) can1 18FEEE00#703F392BFFFFFFFF\n\
                       (1635188456.000000) can1 123#R\n\
                       (1635188457.500000) can1 18FEEE00#713F392BFFFFFFFF\n";

    fn log_file() -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(LOG.as_bytes()).unwrap();
        file
    }

    /// Replays the log and returns when each frame arrived, relative to the start.
    async fn arrivals(speed: f64) -> (Vec<Duration>, u64) {
        let file = log_file();
        let config = ReplayConfig {
            path: file.path().to_owned(),
            speed,
        };
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel(4);
        let start = Instant::now();
        let task = tokio::spawn({
            let metrics = metrics.clone();
            async move { run(&config, metrics, tx, CancellationToken::new()).await }
        });
        let mut at = Vec::new();
        while let Some(input) = rx.recv().await {
            let Input::Can(frame) = input else {
                panic!("not a frame")
            };
            assert_eq!(
                start.elapsed(),
                frame
                    .at
                    .mono
                    .div_f64(if speed > 0.0 { speed } else { f64::INFINITY })
            );
            at.push(start.elapsed());
        }
        task.await.unwrap().unwrap();
        (at, metrics.snapshot().replay_lines_malformed_total)
    }

    #[tokio::test(start_paused = true)]
    async fn real_time_follows_the_log_and_skips_bad_lines() {
        let (at, malformed) = arrivals(1.0).await;
        assert_eq!(
            at,
            [
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_millis(2500)
            ]
        );
        assert_eq!(malformed, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_speed_factor_scales_the_gaps() {
        let (at, _) = arrivals(10.0).await;
        assert_eq!(
            at,
            [
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(250)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn speed_zero_is_as_fast_as_possible() {
        let (at, _) = arrivals(0.0).await;
        assert_eq!(at, [Duration::ZERO; 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_a_replay_waiting_for_its_next_frame() {
        let file = log_file();
        let config = ReplayConfig {
            path: file.path().to_owned(),
            speed: 1.0,
        };
        let (tx, mut rx) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { run(&config, Arc::default(), tx, shutdown).await }
        });
        assert!(rx.recv().await.is_some());
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(rx.recv().await.is_none(), "no frame after shutdown");
    }

    #[tokio::test]
    async fn a_missing_file_names_itself() {
        let config = ReplayConfig {
            path: "/nonexistent/truck.log".into(),
            speed: 1.0,
        };
        let (tx, _rx) = mpsc::channel(1);
        let err = run(&config, Arc::default(), tx, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("replay log /nonexistent/truck.log:"),
            "{err}"
        );
    }

    #[test]
    fn config_checks_the_speed() {
        let cfg: ReplayConfig = toml::from_str("path = \"x.log\"").unwrap();
        assert_eq!(cfg.speed, 1.0);
        assert!(cfg.check().is_ok());
        let bad = ReplayConfig { speed: -1.0, ..cfg };
        assert!(bad.check().unwrap_err().contains("-1"));
        assert!(toml::from_str::<ReplayConfig>("path = \"x\"\nloop = true").is_err());
    }
}

#[cfg(test)]
mod properties {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;

    use crate::decode::CanFrame;
    use crate::reading::Timestamp;
    use crate::source::candump::{format_line, parse_line};

    fn frame() -> impl Strategy<Value = CanFrame> {
        (
            any::<bool>(),
            0u32..=0x1FFF_FFFF,
            any::<[u8; 8]>(),
            0u8..=8,
            0i64..4_000_000_000_000_000,
            "[a-z][a-z0-9]{0,7}",
        )
            .prop_map(|(extended, id, data, len, wall_us, bus)| {
                let mut data = data;
                data[len as usize..].fill(0);
                CanFrame {
                    bus: Arc::from(bus.as_str()),
                    id: if extended { id } else { id & 0x7FF },
                    extended,
                    data,
                    len,
                    at: Timestamp {
                        wall_us,
                        mono: Duration::ZERO,
                    },
                }
            })
    }

    proptest! {
        #[test]
        fn any_line_parses_or_fails_without_panicking(line in any::<String>(), first in any::<Option<i64>>()) {
            let _ = parse_line(&line, first);
        }

        #[test]
        fn line_like_garbage_parses_or_fails_without_panicking(line in r"\([0-9]{0,20}\.[0-9]{0,8}\) [a-z0-9]{0,5} [0-9A-Fa-f#R]{0,30}", first in any::<Option<i64>>()) {
            let _ = parse_line(&line, first);
        }

        #[test]
        fn every_frame_survives_a_round_trip(frame in frame()) {
            let line = format_line(&frame);
            let back = parse_line(&line, Some(frame.at.wall_us)).unwrap();
            prop_assert_eq!(back, frame);
        }
    }
}
