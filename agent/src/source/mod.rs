//! Sources: where frames and node messages come from (the simulated truck, logs, SocketCAN,
//! the serial port). Every source hands [`crate::decode::Input`]s to the decoder through a bounded channel;
//! none of them decodes.
//!
//! The shape every source follows: an async `run(.., inputs: mpsc::Sender<Input>,
//! shutdown: CancellationToken) -> Result<(), SourceError>` that returns when the token is
//! cancelled, when its input ends (a replayed log), or when the receiver is gone. A source
//! awaits `send`, so a full channel slows it down instead of losing frames.

pub mod can;
pub mod candump;
pub mod replay;
mod retry;
pub mod serial;
pub mod simulated;
pub mod simulator;

/// Why a source stopped before it was told to.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: {source}; check that the device or file exists and the agent may read it")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} line {line}: {source}")]
    Log {
        what: String,
        line: usize,
        #[source]
        source: candump::CandumpError,
    },
}

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::decode::Input;
use crate::reading::Clock;
use crate::telemetry::Metrics;

/// A source's task, ready to spawn.
pub type SourceTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a source could not be built from a config that passed validation.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("source.simulator: {0}")]
    Simulator(#[from] simulator::SimError),
}

/// Runs a source that can fail, logging how it ended: a failed source is reported, and the
/// rest of the agent keeps running on the other sources.
async fn logged(name: &'static str, source: impl Future<Output = Result<(), SourceError>>) {
    match source.await {
        Ok(()) => tracing::info!(event = "source_ended", source = name),
        Err(error) => tracing::error!(event = "source_failed", source = name, %error),
    }
}

/// Builds a task for every source the config names, each with its task name.
pub fn build_all(
    config: &Config,
    metrics: &Arc<Metrics>,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> Result<Vec<(&'static str, SourceTask)>, BuildError> {
    let mut tasks: Vec<(&'static str, SourceTask)> = Vec::new();
    // One monotonic origin for every live source, so their readings order against each other.
    let clock = Clock::start();
    if let Some(replay) = config.source.replay.clone() {
        let (metrics, inputs, shutdown) = (metrics.clone(), inputs.clone(), shutdown.clone());
        tasks.push((
            "source:replay",
            Box::pin(logged("replay", async move {
                replay::run(&replay, metrics, inputs, shutdown).await
            })),
        ));
    }
    if let Some(can) = config.source.can.clone() {
        let (metrics, inputs, shutdown) = (metrics.clone(), inputs.clone(), shutdown.clone());
        tasks.push((
            "source:can",
            Box::pin(logged("can", async move {
                can::run(&can, clock, metrics, inputs, shutdown).await
            })),
        ));
    }
    for serial in config.source.serial.clone() {
        let (metrics, inputs, shutdown) = (metrics.clone(), inputs.clone(), shutdown.clone());
        tasks.push((
            "source:serial",
            Box::pin(logged("serial", async move {
                serial::run(&serial, clock, metrics, inputs, shutdown).await
            })),
        ));
    }
    if let Some(sim) = &config.source.simulator {
        let truck = simulated::build_truck(sim, &config.vehicle)?;
        tasks.push((
            "source:simulator",
            Box::pin(simulated::run(truck, sim.speed, inputs, shutdown)),
        ));
    }
    Ok(tasks)
}
