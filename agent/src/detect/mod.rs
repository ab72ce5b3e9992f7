//! Detect: watches readings and raises alerts.
//!
//! Owns the hard limits (judged per reading), the 1 Hz [`window::Grid`] of the watched
//! signals, the rules judged per tick ([`rules`]), the forecaster's residual scoring per
//! tick ([`score`], through the model in a [`model::ModelHandle`]), and one [`AlertState`]
//! per (signal, origin, kind): a signal two controllers send is two streams, judged apart
//! and against each other (`sender_conflict`). The [`Detector`] is a pure struct (readings in, alert events out);
//! only [`run`] touches channels. Time is the readings' monotonic time, so a wall-clock
//! jump cannot fire or stall a debounce. Never blocks on anything but its output to the
//! alarm, which never waits on the network. Without a model the rules and limits still run.
//! Position readings are never judged: [`position`] keeps the newest fix, and every alert
//! event leaves the detector carrying it and its age.

pub mod alert;
mod config;
mod detector;
pub mod incident;
pub mod model;
pub mod position;
pub(crate) mod rules;
pub mod score;
pub mod store;
mod task;
mod tuning;
mod updates;
pub mod window;

pub use config::{DetectConfig, EngineLimits, Limit, RulesConfig, WatchConfig};
pub use detector::{
    DetectStatus, Detector, Live, ModelCoverage, Senders, TracePoint, watched_signals,
};
pub use model::{Model, ModelHandle, ModelUpdater};
pub use store::{ModelStore, ModelStoreConfig, Origin, Running};
pub use task::{Watches, run};
pub use tuning::{Tuning, TuningError};
pub use updates::{ModelUpdates, StoredModels};
