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
