//! What every source is given, and the one way it hands inputs on (vector's
//! `SourceContext`): the clock, the channel to the decoder, the shutdown signal and the
//! counters. A source never holds the channel itself, so none can forget to stop at
//! shutdown while it waits on a full queue.
//!
//! Inputs go to the decoder in batches: a hand-off wakes the decoder, and one wake-up per
//! frame was most of what the pipeline cost (on four saturated buses, 70 % of the CPU time
//! went to the runtime, channels and context switches, not to decoding or detection). A
//! busy source hands on at most once every [`HAND_OFF_EVERY`] (20 ms), everything that came in
//! between; a frame is never held longer than that, and a quiet source hands each input
//! on as it comes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::SourceError;
use crate::frame::Input;
use crate::reading::Clock;
use crate::telemetry::Metrics;

/// A source's task, ready to spawn.
pub type SourceTask = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;

/// Something the pipeline can run as a source: a configured CAN bus, serial port or log, a
/// simulated truck (the `vigil-sim` crate), or inputs a test injects.
pub trait Source: Send + 'static {
    /// The task's name, such as `source:can`.
    fn name(&self) -> &'static str;
    /// The source's task: it returns when shutdown is signalled, when its input ends (a
    /// replayed log), or when the pipeline has gone; an error if it cannot go on.
    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask;
}

/// The shortest time between two hand-offs of a busy source: at most this is added to a
/// frame's way to the alarm (target: sample to buzzer p99 < 50 ms), and it bounds the
/// decoder's wake-ups to 50 a second a source, however fast the bus. Measured with the
/// pipeline bench (agent/benches/pipeline.rs) on the 2-core build machine, the other core
/// busy: at 5 ms, 1.6 % of a core at the real truck's rate and 3.7 % at 16k frames/s,
/// sample -> buzzer 10-12 ms; at 20 ms, 0.8 % and 2.6 %, 16-23 ms (on the quiet machine
/// 1.1-1.2 % and 3.3-3.4 %, 11-22 ms). At 20 ms with the release build, after the log
/// reader's one-pass lines and the security monitor's known-sender cache (quiet machine,
/// medians of three): 0.95 % at 365 frames/s, 1.24 % at 3.9k, 1.82 % at 15.9k; sample ->
/// buzzer p99 15.7-20.5 ms.
pub const HAND_OFF_EVERY: Duration = Duration::from_millis(20);

/// The most inputs in one hand-off: 20 ms of four saturated J1939 buses (16k frames/s)
/// are 320 frames, so a batch reaches this only when a source catches up (a log at full
/// speed) or the buses run faster still.
pub const BATCH_MAX: usize = 512;

/// What a source gets from the pipeline. Clones share everything.
#[derive(Clone)]
pub struct SourceContext {
    /// One monotonic origin for every live source, so their readings order against each other.
    pub clock: Clock,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    out: mpsc::Sender<Vec<Input>>,
}

impl SourceContext {
    pub fn new(
        clock: Clock,
        out: mpsc::Sender<Vec<Input>>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> SourceContext {
        SourceContext {
            clock,
            shutdown,
            metrics,
            out,
        }
    }

    /// Hands one input to the decoder on its own: for a source whose inputs are rare (a
    /// bus error, a GPS fix). See [`SourceContext::send_batch`].
    pub async fn send(&self, input: Input) -> bool {
        self.send_batch(vec![input]).await
    }

    /// Hands a batch of inputs to the decoder in one hand-off, waiting while its queue is
    /// full: a full queue slows a source down instead of losing inputs. An empty batch is
    /// not sent. `false` means stop: shutdown came first, or the pipeline has gone.
    pub async fn send_batch(&self, inputs: Vec<Input>) -> bool {
        if inputs.is_empty() {
            return !self.shutdown.is_cancelled();
        }
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            sent = self.out.send(inputs) => sent.is_ok(),
        }
    }

    /// Waits until `due` on tokio's clock (the pace of a log or a simulated truck). `false`
    /// means shutdown came first.
    pub async fn sleep_until(&self, due: Instant) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep_until(due) => true,
        }
    }

    /// Whether shutdown has been signalled.
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

/// Inputs from a channel as one more source: tests and benchmarks inject frames here, and
/// each hand-off takes what the channel holds. It ends, like any source, at shutdown or
/// when its sender is dropped.
pub struct Injected(pub mpsc::Receiver<Input>);

impl Source for Injected {
    fn name(&self) -> &'static str {
        "source:injected"
    }

    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask {
        let mut from = self.0;
        Box::pin(async move {
            let mut batch = Vec::new();
            loop {
                let received = tokio::select! {
                    _ = cx.shutdown.cancelled() => return Ok(()),
                    received = from.recv_many(&mut batch, BATCH_MAX) => received,
                };
                if received == 0 || !cx.send_batch(std::mem::take(&mut batch)).await {
                    return Ok(());
                }
            }
        })
    }
}
