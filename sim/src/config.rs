//! The `[source.simulator]` section: which simulated truck to run through the pipeline, and
//! how fast. [`SimulatorConfig::check`] is pure.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_agent::duration;

use crate::Scenario;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    pub seed: u64,
    pub scenario: String,
    #[serde(with = "duration")]
    pub fault_at: Duration,
    /// Times real time; 0 means as fast as the pipeline takes it.
    pub speed: f64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            seed: 1,
            scenario: "normal".into(),
            fault_at: Duration::from_secs(600),
            speed: 1.0,
        }
    }
}

impl SimulatorConfig {
    /// Checks the values; returns the key and what is wrong. No I/O.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Err(unknown) = Scenario::from_name(&self.scenario, self.fault_at) {
            return Err(("source.simulator.scenario", unknown.to_string()));
        }
        if !self.speed.is_finite() || self.speed < 0.0 {
            return Err((
                "source.simulator.speed",
                format!(
                    "expected a factor >= 0 (0 = as fast as possible), found {}",
                    self.speed
                ),
            ));
        }
        Ok(())
    }
}
