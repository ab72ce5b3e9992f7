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

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::decode::Input;

/// A source's task, ready to spawn.
pub type SourceTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a source could not be built from a config that passed validation.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("source.simulator: {0}")]
    Simulator(#[from] simulator::SimError),
}

/// Builds a task for every source the config names, each with its task name.
pub fn build_all(
    config: &Config,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> Result<Vec<(&'static str, SourceTask)>, BuildError> {
    let mut tasks: Vec<(&'static str, SourceTask)> = Vec::new();
    if let Some(sim) = &config.source.simulator {
        let truck = simulated::build_truck(sim, &config.vehicle)?;
        tasks.push((
            "source:simulator",
            Box::pin(simulated::run(truck, sim.speed, inputs, shutdown)),
        ));
    }
    Ok(tasks)
}
