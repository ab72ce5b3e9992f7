//! Sources: where frames and node messages come from on the truck (SocketCAN, the serial
//! tank node, an NMEA GPS receiver, a candump log replayed as if it were the bus). Each is a [`Source`] given the
//! same [`SourceContext`]; each hands [`Input`](crate::frame::Input)s to the decoder through
//! it and none of them decodes. A source's config sits beside it and builds it. The
//! simulated truck is a source of the same kind, from the `vigil-sim` crate.

pub mod can;
mod context;
pub mod gps;
pub mod replay;
mod retry;
pub mod serial;

pub use can::CanConfig;
pub use context::{BATCH_MAX, HAND_OFF_EVERY, Injected, Source, SourceContext, SourceTask};
pub use gps::GpsConfig;
pub use replay::ReplayConfig;
pub use serial::SerialConfig;

/// Why a source stopped before it was told to.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: {source}; check that the device or file exists and the agent may read it")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A replayed log that cannot be read at all (a binary form, no frame in it).
    #[error(transparent)]
    Log(#[from] crate::frame::log::LogError),
}
