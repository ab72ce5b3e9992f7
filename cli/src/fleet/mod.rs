//! `vigil fleet watch`: the fleet team's live view of every truck's alerts, DM1 trouble codes
//! and online/offline state, from the same broker the trucks publish to (DESIGN.md, "Uplink":
//! `dt/vigil/{thing}/alerts|dm1|status`), with the live value of an active alert's signal
//! from the truck's `readings`.
//!
//! # Invariants
//!
//! 1. **Only the task owns I/O.** [`board::FleetBoard`] is a plain struct: messages in,
//!    events and table rows out; tests drive it without sockets or clocks.
//! 2. **The agent's TLS rules.** Mutual TLS through the uplink's loader ([`vigil_agent::uplink::tls`]):
//!    the CA as the only trust anchor, a key file only its owner can read. Plain TCP only with
//!    `--insecure-plain-tcp`, and never toward `*.amazonaws.com` or `*.amazonaws.com.cn`. All checked before connecting.
//! 3. **Each change once.** QoS 1 repeats, re-publication after an agent's reconnect and the
//!    retained statuses replayed at every subscription give no second event (see [`board`]).
//! 4. **It keeps watching.** A lost broker is retried with the uplink's backoff (1 s doubling
//!    to 60 s, jittered, one connect per second at most) and said on standard error (and in
//!    the table's header); only a subscription the broker refuses (its policy) stops it.
//! 5. **Standard output carries events only**: one JSON object per line with `--json` or when
//!    it is not a terminal; logs go to standard error.
//!
//! # Module map
//!
//! [`config`]: the options, checked. [`board`]: the pure state. [`render`]: JSON lines and
//! the table. [`task`]: the event loop.

pub mod board;
pub mod config;
pub mod render;
pub mod task;

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;

pub use board::{Filter, FleetBoard, FleetEvent, Row, RowState};
pub use config::{WatchConfig, WatchConfigError, WatchOptions};
pub use task::WatchError;

#[cfg(test)]
mod tests;

/// Why `vigil fleet watch` stopped.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Bad options: nothing was started.
    #[error(transparent)]
    Config(#[from] WatchConfigError),
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// Whether `vigil fleet watch` draws the table (standard output is a terminal and `--json`
/// was not given); `main` keeps logs quiet then.
pub fn draws_table(options: &WatchOptions) -> bool {
    !options.json && std::io::stdout().is_terminal()
}

/// Runs `vigil fleet watch` until `shutdown` is cancelled.
pub async fn watch(options: WatchOptions, shutdown: CancellationToken) -> Result<(), FleetError> {
    let config = options.resolve(std::io::stdout().is_terminal())?;
    task::run(config, std::io::stdout(), shutdown).await?;
    Ok(())
}
