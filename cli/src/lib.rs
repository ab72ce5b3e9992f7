//! The `vigil` command's library: the file-level config that composes every stage's own
//! ([`config`]), and what composes the crates: running the agent from a config file
//! ([`run`]), the demo ([`demo`], [`view`]) and the fleet team's live view ([`fleet`]).
//! `main.rs` only parses the command line and calls in here, so tests start the real agent
//! in-process.

mod columns;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod view;

use std::path::Path;

use tokio_util::sync::CancellationToken;
use vigil_agent::pipeline::{self, RunError, Summary};

use config::{Config, ConfigError};

/// Why `vigil run` could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Runs the agent a config file describes until `shutdown` is cancelled: resolves it (the
/// DBC, the model and the PEM files are read here, once) and runs the pipeline. A model that
/// cannot be used is logged and the rules and limits run without it.
pub async fn run(
    config: &Config,
    file: &Path,
    shutdown: CancellationToken,
) -> Result<Summary, AgentError> {
    let resolved = config.resolve(file)?;
    if let Some(error) = &resolved.model_rejected {
        tracing::error!(event = "model_rejected", %error, "running the rules without the model");
    }
    Ok(pipeline::run(resolved.stages, resolved.sources, shutdown).await?)
}
