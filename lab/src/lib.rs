//! Vigil's lab: the tools that run on an engineer's desk, never on the truck. They use the
//! truck's stages (`vigil-agent`) and the simulated truck (`vigil-sim`) exactly as the agent
//! does, and nothing on the truck uses them.
//!
//! - [`replay`] (`vigil replay`): the detect stage over a recorded drive, with a [`report`].
//! - [`eval`] (`vigil eval`): the model, the rules and two [`baseline`]s on simulated
//!   drives of unseen vehicles.
//! - [`dataset`]: simulated drives decoded to readings, and the 1 Hz CSV training uses.
//! - [`export`] (`vigil dataset`): recorded drives and the fleet's stored readings to that CSV.
//! - [`decode`] (`vigil decode`): a candump log decoded by a DBC into rows.

pub mod baseline;
pub mod dataset;
pub mod decode;
pub mod eval;
pub mod export;
pub mod replay;
pub mod report;
#[cfg(test)]
mod scenarios;

use std::sync::Arc;

use vigil_agent::detect::{DetectConfig, Detector, Model, ModelHandle};
use vigil_agent::vehicle::VehicleConfig;

/// How the detect stage judges: the sections of a config it is built from, and the model
/// (`None`: the rules and limits alone). `vigil replay` and `vigil eval` build their
/// detectors here with [`Detector::new`], the constructor the agent's pipeline uses, so
/// with the same config they judge exactly as the agent would.
#[derive(Clone, Debug, Default)]
pub struct Judge {
    pub vehicle: VehicleConfig,
    pub detect: DetectConfig,
    pub model: Option<Arc<Model>>,
}

impl Judge {
    /// A fresh detector.
    pub fn detector(&self) -> Detector {
        let handle = ModelHandle::shared(self.model.clone());
        Detector::new(&self.vehicle, &self.detect, handle)
    }

    /// The model's id, `name/version`, if there is one.
    pub fn model_id(&self) -> Option<Arc<str>> {
        self.model.as_ref().map(|m| m.id.clone())
    }
}
