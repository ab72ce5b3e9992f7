//! The `vigil` command's library: the file-level config that composes every stage's own
//! ([`config`]), and what composes the crates: running the agent from a config file
//! ([`run`]), the demo ([`demo`], [`view`]) and the fleet team's live view ([`fleet`]).
//! `main.rs` only parses the command line and calls in here, so tests start the real agent
//! in-process.

mod columns;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod generate;
#[cfg(feature = "lab")]
pub mod model_job;
pub mod reload;
pub mod schema;
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
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(std::io::Error),
}

/// Runs the agent a config file describes until `shutdown` is cancelled: resolves it (the
/// DBC, the model and the PEM files are read here, once) and runs the pipeline. A model that
/// cannot be used is logged and the rules and limits run without it. SIGHUP reads the file
/// again ([`reload`]); `log_level` changes the log's level then (`None`: `VIGIL_LOG` sets it).
pub async fn run(
    config: &Config,
    file: &Path,
    shutdown: CancellationToken,
    log_level: Option<reload::LogLevel>,
) -> Result<Summary, AgentError> {
    let resolved = config.resolve(file)?;
    if let Some(error) = &resolved.model_rejected {
        tracing::error!(event = "model_rejected", %error, "the config's model cannot be used");
    }
    // Which model runs: a stored one a job sent, or the config's; and what was refused.
    let running = &resolved.stages.model_updates.running;
    tracing::info!(
        event = "model_chosen",
        from = ?running.from,
        version = ?running.version,
        entry = ?running.entry,
        refused = ?running.refused
    );
    if let Some(warning) = resolved.certificate_warning(std::time::SystemTime::now()) {
        tracing::warn!(event = "certificate_expiring", "{warning}");
    }
    if !resolved.unsourced.is_empty() {
        let signals = config::names(&resolved.unsourced);
        tracing::warn!(event = "signals_without_source", %signals, "no configured source gives them: they are never judged");
    }
    // Listened for before anything starts: SIGHUP's default action ends the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(AgentError::Signal)?;
    // One reload at a time: the next SIGHUP is read once the pipeline took this one.
    let (reloads_tx, reloads) = tokio::sync::mpsc::channel(1);
    let reloader = tokio::spawn(reload::on_hangup(
        file.to_owned(),
        config.clone(),
        hangups,
        reloads_tx,
        log_level,
    ));
    let summary = pipeline::run(resolved.stages, resolved.sources, shutdown, reloads).await;
    reloader.abort();
    Ok(summary?)
}
