//! Batch: gathers readings into one batch per outgoing message.
//!
//! AWS IoT Core bills per 5 KB, so readings leave in batches rather than one by one. A batch
//! is sealed when it holds `max_readings` or when its first reading is `max_age` old, by the
//! readings' monotonic time, or by the wall time the task has waited, whichever comes first
//! (a quiet bus must not hold readings back). The [`Batcher`] is pure; [`run`] owns the timer.
//! On shutdown the open batch is sealed, never dropped.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::duration;
use crate::reading::Reading;
use crate::telemetry::Metrics;

/// The `[batch]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub max_readings: usize,
    #[serde(with = "duration")]
    pub max_age: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_readings: 2000,
            max_age: Duration::from_secs(10),
        }
    }
}

impl BatchConfig {
    /// Checks the values; returns the key and what is wrong. No I/O.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_readings == 0 {
            return Err(("batch.max_readings", "expected at least 1, found 0".into()));
        }
        duration::check_positive(self.max_age).map_err(|message| ("batch.max_age", message))
    }
}

/// Readings sealed together for one outgoing message.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub readings: Vec<Reading>,
}

/// Gathers readings; pure, so tests drive it reading by reading.
#[derive(Debug)]
pub struct Batcher {
    config: BatchConfig,
    open: Vec<Reading>,
}

impl Batcher {
    pub fn new(config: BatchConfig) -> Self {
        Batcher {
            open: Vec::with_capacity(config.max_readings),
            config,
        }
    }

    /// Adds a reading; returns the batch it completes, if it completes one.
    pub fn push(&mut self, reading: Reading) -> Option<Batch> {
        let too_old = self.open.first().is_some_and(|first| {
            reading.at.mono.saturating_sub(first.at.mono) >= self.config.max_age
        });
        // The reading that is past the age limit opens the next batch, so a batch never spans
        // more than `max_age` of data.
        let sealed = if too_old { self.seal() } else { None };
        self.open.push(reading);
        if self.open.len() >= self.config.max_readings {
            return self.seal().or(sealed);
        }
        sealed
    }

    /// Seals whatever is open.
    pub fn seal(&mut self) -> Option<Batch> {
        if self.open.is_empty() {
            return None;
        }
        let readings =
            std::mem::replace(&mut self.open, Vec::with_capacity(self.config.max_readings));
        Some(Batch { readings })
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// A new age limit (from the device shadow); it applies from the next reading on.
    pub fn set_max_age(&mut self, max_age: Duration) {
        self.config.max_age = max_age;
    }
}

/// The batch task: readings in until the channel closes, sealed batches out. A new
/// `batch_max_age` in `tuning` (from the device shadow) applies at once.
pub async fn run(
    config: BatchConfig,
    mut readings: mpsc::Receiver<Vec<Reading>>,
    batches: mpsc::Sender<Batch>,
    metrics: std::sync::Arc<Metrics>,
    mut tuning: Option<tokio::sync::watch::Receiver<crate::detect::Tuning>>,
) {
    let mut max_wait: Duration = config.max_age;
    let mut batcher = Batcher::new(config);
    // When the open batch was started, in real time; `None` while nothing is open.
    let mut opened: Option<Instant> = None;
    loop {
        let deadline = opened.map(|t| t + max_wait);
        let tuned = async {
            match tuning.as_mut() {
                Some(t) => t.changed().await.ok(),
                None => std::future::pending().await,
            }
        };
        // At most a few: a hand-off holds far fewer readings than a batch.
        let mut sealed = Vec::new();
        tokio::select! {
            Some(()) = tuned => {
                if let Some(t) = &tuning {
                    max_wait = t.borrow().batch_max_age;
                    batcher.set_max_age(max_wait);
                }
            }
            hand_off = readings.recv() => match hand_off {
                Some(hand_off) => {
                    for reading in hand_off {
                        let closed = batcher.push(reading);
                        if closed.is_some() || opened.is_none() {
                            opened = Some(Instant::now());
                        }
                        sealed.extend(closed);
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                opened = None;
                sealed.extend(batcher.seal());
            }
        };
        if batcher.is_empty() {
            opened = None;
        }
        for batch in sealed {
            Metrics::inc(&metrics.batches_sealed_total);
            if batches.send(batch).await.is_err() {
                return;
            }
        }
    }
    if let Some(batch) = batcher.seal() {
        Metrics::inc(&metrics.batches_sealed_total);
        let _ = batches.send(batch).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Origin, Signal, Timestamp};
    use std::sync::Arc;

    fn reading(ms: u64) -> Reading {
        Reading::good(
            Signal::new("Vehicle.Speed"),
            Timestamp {
                wall_us: 0,
                mono: Duration::from_millis(ms),
            },
            50.0,
            Origin::Serial {
                port: Arc::from("p"),
            },
        )
    }

    fn config(max_readings: usize) -> BatchConfig {
        BatchConfig {
            max_readings,
            max_age: Duration::from_secs(10),
        }
    }

    #[test]
    fn seals_by_count_and_by_data_age() {
        let mut b = Batcher::new(config(3));
        assert_eq!(b.push(reading(0)), None);
        assert_eq!(b.push(reading(100)), None);
        assert_eq!(b.push(reading(200)).unwrap().readings.len(), 3);
        assert_eq!(b.push(reading(300)), None);
        // 10 s after the first open reading: the old batch is sealed, the new reading opens the next.
        let sealed = b.push(reading(10_300)).unwrap();
        assert_eq!(sealed.readings, vec![reading(300)]);
        assert_eq!(b.seal().unwrap().readings, vec![reading(10_300)]);
        assert_eq!(b.seal(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_source_does_not_hold_readings_back_and_shutdown_seals_the_rest() {
        let (tx, rx) = mpsc::channel(8);
        let (out_tx, mut out) = mpsc::channel(8);
        let task = tokio::spawn(run(config(100), rx, out_tx, Arc::default(), None));
        tx.send(vec![reading(0)]).await.unwrap();
        // Paused time advances only when every task is idle: this waits out the 10 s timer.
        let batch = out.recv().await.unwrap();
        assert_eq!(batch.readings.len(), 1);
        tx.send(vec![reading(1)]).await.unwrap();
        drop(tx);
        assert_eq!(out.recv().await.unwrap().readings, vec![reading(1)]);
        task.await.unwrap();
    }
}
