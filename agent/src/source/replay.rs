//! Replays a recorded drive as if the truck were sending it: in real time, faster or
//! slower by a factor, or as fast as the pipeline takes it. The log is read through the one
//! recording reader ([`Recording`]): a CAN log in any form the frame module reads (path `-`:
//! standard input) and, when there is one beside it, the tank node's `.serial` file, merged
//! in time order.
//!
//! Pacing follows the inputs' own timestamps on tokio's clock, so tests run it on paused
//! time and a sped-up replay is exact. No input is handed on before its time; those due
//! together go in one batch, and a busy log is handed on at most once every
//! [`HAND_OFF_EVERY`] (as a CAN socket is read), so an input is at most that late. Lines are read as bytes, bounded
//! ([`LineSplitter`]); a line that gives no frame (too long, not UTF-8, malformed,
//! unsupported) is counted (`replay_lines_malformed_total`), logged with its line number and
//! skipped; the replay carries on. A log that cannot be read at all (a binary form, or no
//! frame in it) ends the source with an error. Replayed frames keep the log's wall time, and
//! their monotonic time is their distance from the log's first frame.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead};
use tokio::time::Instant;

use super::{BATCH_MAX, HAND_OFF_EVERY, Source, SourceContext, SourceError, SourceTask};
use crate::frame::log::{LineSplitter, Piece};
use crate::frame::recording::{Recording, serial_companion};
use crate::telemetry::Metrics;

/// A candump log to replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// The log file (candump, Vector ASC or Saleae CSV; `-` for standard input); a
    /// `.serial` file beside it is merged in.
    pub path: PathBuf,
    /// Times real time; 0 means as fast as the pipeline takes it.
    #[serde(default = "real_time")]
    pub speed: f64,
}

fn real_time() -> f64 {
    1.0
}

impl ReplayConfig {
    /// Checks the values; returns the key and what is wrong. No I/O: the log is opened
    /// when the source runs.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.speed.is_finite() && self.speed >= 0.0 {
            Ok(())
        } else {
            Err((
                "source.replay.speed",
                format!(
                    "replay speed must be 0 (as fast as possible) or a positive factor of real time, found {}",
                    self.speed
                ),
            ))
        }
    }
}

impl Source for ReplayConfig {
    fn name(&self) -> &'static str {
        "source:replay"
    }

    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask {
        Box::pin(async move { run(&self, cx).await })
    }
}

/// Replays the log once, then returns. Returns early, without error, on shutdown or when
/// the pipeline has gone.
async fn run(config: &ReplayConfig, cx: SourceContext) -> Result<(), SourceError> {
    let io_error = |path: &std::path::Path| {
        let what = format!("replay log {}", path.display());
        move |source| SourceError::Io { what, source }
    };
    let from_stdin = config.path.as_os_str() == "-";
    // A read from a regular file never waits for the writer; one from a pipe may.
    let mut reads_may_wait = from_stdin;
    let (input, serial): (Box<dyn AsyncRead + Unpin + Send>, Vec<u8>) = if from_stdin {
        (Box::new(tokio::io::stdin()), Vec::new())
    } else {
        let file = tokio::fs::File::open(&config.path)
            .await
            .map_err(io_error(&config.path))?;
        reads_may_wait = !file
            .metadata()
            .await
            .map_err(io_error(&config.path))?
            .is_file();
        let serial_path = serial_companion(&config.path);
        let serial = match tokio::fs::read(&serial_path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(&serial_path)(e)),
        };
        (Box::new(file), serial)
    };
    let name = if from_stdin {
        "standard input".to_owned()
    } else {
        config.path.display().to_string()
    };
    let mut recording = Recording::new(name, &serial);
    // Large reads: each refill of a file is a round trip to tokio's blocking pool.
    let mut log = tokio::io::BufReader::with_capacity(READ_BUFFER, input);
    let mut lines = LineSplitter::new();
    let mut pace = Pace::new(config.speed);
    let mut inputs = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        // Nothing waits behind a read that may block (a pipe, standard input).
        if reads_may_wait && log.buffer().is_empty() && !cx.send_batch(next_batch(&mut batch)).await
        {
            return Ok(());
        }
        let skipped = recording.log().skipped();
        // A line whole in the buffer is read in place: a select on the shutdown per line
        // registered and dropped a waiter (two lock round trips) for each frame of a busy log.
        let (more, read) = if let Some((line, taken)) = lines.whole_line(log.buffer()) {
            if cx.is_stopping() {
                return Ok(());
            }
            let read = recording.piece(Piece::Line(line), &mut inputs);
            std::pin::Pin::new(&mut log).consume(taken);
            (true, read)
        } else {
            let more = tokio::select! {
                _ = cx.shutdown.cancelled() => return Ok(()),
                read = next_line(&mut log, &mut lines) => read.map_err(io_error(&config.path))?,
            };
            let read = if more {
                recording.piece(lines.piece(), &mut inputs)
            } else {
                recording.finish(&mut inputs)
            };
            (more, read)
        };
        let malformed = recording.log().skipped() - skipped;
        if malformed > 0 {
            Metrics::add(&cx.metrics.replay_lines_malformed_total, malformed);
        }
        for input in inputs.drain(..) {
            if let Some(due) = input.mono().and_then(|mono| pace.due(mono))
                && pace.ahead(due)
            {
                // Hand on what is due before waiting for what is not.
                if !batch.is_empty() {
                    if !cx.send_batch(next_batch(&mut batch)).await {
                        return Ok(());
                    }
                    pace.handed_on = Some(Instant::now());
                }
                if !cx.sleep_until(pace.wake_at(due)).await {
                    return Ok(());
                }
            }
            batch.push(input);
            if batch.len() >= BATCH_MAX && !cx.send_batch(next_batch(&mut batch)).await {
                return Ok(());
            }
        }
        read?;
        if !more {
            if !cx.send_batch(batch).await {
                return Ok(());
            }
            let counts = recording.log().counts();
            tracing::info!(event = "replay_finished", path = %config.path.display(), %counts);
            return Ok(());
        }
    }
}

/// The batch to hand on, leaving an empty one as large in its place: grown from nothing,
/// a busy log's batch of hundreds of frames was copied over eight times on its way.
fn next_batch(batch: &mut Vec<crate::frame::Input>) -> Vec<crate::frame::Input> {
    if batch.is_empty() {
        return Vec::new();
    }
    let capacity = batch.len();
    std::mem::replace(batch, Vec::with_capacity(capacity))
}

/// Bytes read from the log at once.
const READ_BUFFER: usize = 64 * 1024;

/// When the replay hands inputs on: at their own time scaled by the speed, and no sooner
/// than [`HAND_OFF_EVERY`] after the last hand-off while the log is busy.
struct Pace {
    started: Instant,
    speed: f64,
    handed_on: Option<Instant>,
    /// The clock as last read: it is read again only when an input looks early (a clock
    /// read for every frame was a tenth of the replay's time on a busy log).
    now: Instant,
}

impl Pace {
    fn new(speed: f64) -> Pace {
        Pace {
            started: Instant::now(),
            speed,
            handed_on: None,
            now: Instant::now(),
        }
    }

    /// Whether `due` is still to come.
    fn ahead(&mut self, due: Instant) -> bool {
        if due <= self.now {
            return false;
        }
        self.now = Instant::now();
        due > self.now
    }

    /// When an input at `mono` in the log is due; `None` at speed 0 (as fast as taken).
    fn due(&self, mono: std::time::Duration) -> Option<Instant> {
        match self.speed {
            // Real time, the common case, without a float division for every frame.
            1.0 => Some(self.started + mono),
            speed if speed > 0.0 => Some(self.started + mono.div_f64(speed)),
            _ => None,
        }
    }

    /// When to wake for an input due at `due`.
    fn wake_at(&self, due: Instant) -> Instant {
        match self.handed_on {
            Some(last) => due.max(last + HAND_OFF_EVERY),
            None => due,
        }
    }
}

async fn next_line(
    input: &mut (impl AsyncBufRead + Unpin),
    lines: &mut LineSplitter,
) -> std::io::Result<bool> {
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(lines.end_of_input());
        }
        let (taken, ended) = lines.feed(chunk);
        input.consume(taken);
        if ended {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::frame::Input;
    use crate::reading::Clock;

    fn context(
        tx: mpsc::Sender<Vec<Input>>,
        metrics: Arc<Metrics>,
    ) -> (SourceContext, CancellationToken) {
        let shutdown = CancellationToken::new();
        (
            SourceContext::new(Clock::start(), tx, shutdown.clone(), metrics),
            shutdown,
        )
    }

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
        let (cx, _shutdown) = context(tx, metrics.clone());
        let task = tokio::spawn(Box::new(config).run(cx));
        let mut at = Vec::new();
        while let Some(batch) = rx.recv().await {
            for input in batch {
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
    async fn a_busy_log_is_handed_on_in_batches_never_early_and_at_most_one_period_late() {
        // One frame every 250 us for 2 s: 4,000 frames/s on one bus.
        let mut log = String::new();
        for i in 0..8000u32 {
            let t = 1635188455.0 + f64::from(i) * 0.000_25;
            log.push_str(&format!("({t:.6}) can1 18FEEE00#6F3F392BFFFFFFFF\n"));
        }
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(log.as_bytes()).unwrap();
        let config = ReplayConfig {
            path: file.path().to_owned(),
            speed: 1.0,
        };
        let (tx, mut rx) = mpsc::channel(4);
        let start = Instant::now();
        let (cx, _shutdown) = context(tx, Arc::default());
        let task = tokio::spawn(Box::new(config).run(cx));
        let (mut batches, mut frames, mut latest) = (0usize, 0usize, Duration::ZERO);
        let mut last_batch: Option<Duration> = None;
        while let Some(batch) = rx.recv().await {
            let now = start.elapsed();
            if let Some(last) = last_batch {
                assert!(
                    now - last >= HAND_OFF_EVERY,
                    "two hand-offs {:?} apart",
                    now - last
                );
            }
            last_batch = Some(now);
            for input in &batch {
                let due = input.mono().unwrap();
                assert!(due <= now, "a frame due at {due:?} came at {now:?}");
                latest = latest.max(now - due);
            }
            batches += 1;
            frames += batch.len();
        }
        task.await.unwrap().unwrap();
        assert_eq!(frames, 8000);
        assert!(latest <= HAND_OFF_EVERY, "a frame came {latest:?} late");
        // Without batching: 8,000 hand-offs.
        let period_ms = HAND_OFF_EVERY.as_millis() as usize;
        assert!(batches <= 2000 / period_ms + 1, "{batches} hand-offs");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_a_replay_waiting_for_its_next_frame() {
        let file = log_file();
        let config = ReplayConfig {
            path: file.path().to_owned(),
            speed: 1.0,
        };
        let (tx, mut rx) = mpsc::channel(4);
        let (cx, shutdown) = context(tx, Arc::default());
        let task = tokio::spawn(Box::new(config).run(cx));
        assert!(rx.recv().await.is_some());
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(rx.recv().await.is_none(), "no frame after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_byte_and_an_endless_line_cost_one_line_each() {
        // The log above with, after its first frame, a line with a byte that is not UTF-8
        // and a 1 MiB line: both skipped and counted, every frame still arrives.
        let mut log = LOG.as_bytes().to_vec();
        let first = LOG.find('\n').unwrap() + 1;
        let mut bad = b"(1635188455.500000) can1 18FEEE00#\xFF\n".to_vec();
        bad.extend(vec![b'7'; 1 << 20]);
        bad.push(b'\n');
        log.splice(first..first, bad);
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&log).unwrap();
        let config = ReplayConfig {
            path: file.path().to_owned(),
            speed: 0.0,
        };
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel(4);
        let (cx, _shutdown) = context(tx, metrics.clone());
        let task = tokio::spawn(Box::new(config).run(cx));
        let mut frames = 0;
        while let Some(batch) = rx.recv().await {
            frames += batch.len();
        }
        task.await.unwrap().unwrap();
        assert_eq!(frames, 3);
        assert_eq!(metrics.snapshot().replay_lines_malformed_total, 2 + 2);
    }

    #[tokio::test]
    async fn a_log_without_a_frame_ends_the_source_with_an_error() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"no frame here\n").unwrap();
        let config = ReplayConfig {
            path: file.path().to_owned(),
            speed: 0.0,
        };
        let (tx, _rx) = mpsc::channel(1);
        let (cx, _shutdown) = context(tx, Arc::default());
        let err = Box::new(config).run(cx).await.unwrap_err();
        assert!(err.to_string().contains("holds no CAN frame"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_file_names_itself() {
        let config = ReplayConfig {
            path: "/nonexistent/truck.log".into(),
            speed: 1.0,
        };
        let (tx, _rx) = mpsc::channel(1);
        let (cx, _shutdown) = context(tx, Arc::default());
        let err = Box::new(config).run(cx).await.unwrap_err();
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
        assert!(bad.check().unwrap_err().1.contains("-1"));
        assert!(toml::from_str::<ReplayConfig>("path = \"x\"\nloop = true").is_err());
    }
}
