//! What every source is given, and the one way it hands inputs on (vector's
//! `SourceContext`): the clock, the channel to the decoder, the shutdown signal and the
//! counters. A source never holds the channel itself, so none can forget to stop at
//! shutdown while it waits on a full queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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

/// What a source gets from the pipeline. Clones share everything.
#[derive(Clone)]
pub struct SourceContext {
    /// One monotonic origin for every live source, so their readings order against each other.
    pub clock: Clock,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    out: mpsc::Sender<Input>,
}

impl SourceContext {
    pub fn new(
        clock: Clock,
        out: mpsc::Sender<Input>,
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

    /// Hands one input to the decoder, waiting while its queue is full: a full queue slows
    /// a source down instead of losing inputs. `false` means stop: shutdown came first, or
    /// the pipeline has gone.
    pub async fn send(&self, input: Input) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            sent = self.out.send(input) => sent.is_ok(),
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

/// Inputs from a channel as one more source: tests and benchmarks inject frames here. It
/// ends, like any source, at shutdown or when its sender is dropped.
pub struct Injected(pub mpsc::Receiver<Input>);

impl Source for Injected {
    fn name(&self) -> &'static str {
        "source:injected"
    }

    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask {
        let mut from = self.0;
        Box::pin(async move {
            loop {
                let input = tokio::select! {
                    _ = cx.shutdown.cancelled() => return Ok(()),
                    input = from.recv() => input,
                };
                let Some(input) = input else { return Ok(()) };
                if !cx.send(input).await {
                    return Ok(());
                }
            }
        })
    }
}
