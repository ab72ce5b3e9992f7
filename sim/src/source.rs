//! The simulated truck as a pipeline source: a thin adapter. [`Inputs`] (pure) turns the
//! [`Truck`]'s emissions into the pipeline's inputs through the same paths as real hardware:
//! CAN frames as they are, the sensor node's bytes through the same [`FrameDecoder`] a
//! serial port uses, so a frame that fails its checks is an [`Input::NodeError`] the decoder
//! counts. [`SimulatedTruck`] paces them by the configured speed and sends them; `vigil-lab`
//! builds its data sets from the same [`Inputs`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vigil_agent::frame::{Input, NodeMessage};
use vigil_agent::reading::Clock;
use vigil_agent::source::{Source, SourceContext, SourceTask};
use vigil_agent::vehicle::VehicleConfig;
use vigil_wire::FrameDecoder;

use crate::config::SimulatorConfig;
use crate::{Emitted, Scenario, SimError, Truck, TruckParams};

/// The serial port name the simulated sensor node's readings carry.
pub const NODE_PORT: &str = "sim-node";

/// A truck's emissions as pipeline inputs.
pub struct Inputs {
    truck: Truck,
    node: FrameDecoder,
    port: Arc<str>,
}

impl Inputs {
    pub fn new(truck: Truck) -> Inputs {
        Inputs {
            truck,
            node: FrameDecoder::new(),
            port: Arc::from(NODE_PORT),
        }
    }

    /// Runs the truck to its next emission and appends the inputs it gives to `out` (none
    /// for a node frame still incomplete). Returns the emission's simulated time.
    pub fn next(&mut self, out: &mut Vec<Input>) -> Duration {
        let emission = self.truck.next_emission();
        match emission.what {
            Emitted::Can(frame) => out.push(Input::Can(frame)),
            Emitted::Serial(bytes) => {
                for result in bytes.iter().filter_map(|&b| self.node.push(b)) {
                    out.push(match result {
                        Ok(message) => Input::Node(NodeMessage {
                            port: self.port.clone(),
                            message,
                            at: emission.at,
                        }),
                        Err(error) => Input::NodeError {
                            port: self.port.clone(),
                            error,
                        },
                    });
                }
            }
        }
        emission.elapsed
    }

    pub fn truck(&self) -> &Truck {
        &self.truck
    }
}

/// A simulated truck running as one of the pipeline's sources.
pub struct SimulatedTruck {
    truck: Truck,
    /// Times real time; 0 runs as fast as the pipeline takes it.
    speed: f64,
}

impl SimulatedTruck {
    /// The configured truck for this vehicle, starting now on the wall clock.
    pub fn new(config: &SimulatorConfig, vehicle: &VehicleConfig) -> Result<Self, SimError> {
        // Checked by `SimulatorConfig::check`, so a known name for a checked config.
        let scenario = Scenario::from_name(&config.scenario, config.fault_at)
            .unwrap_or_else(|_| Scenario::normal());
        let truck = Truck::new(
            TruckParams {
                seed: config.seed,
                compartments: vehicle.compartments,
                start_wall_us: Clock::start().now().wall_us,
                ..TruckParams::default()
            },
            scenario,
        )?;
        Ok(SimulatedTruck {
            truck,
            speed: config.speed,
        })
    }
}

impl Source for SimulatedTruck {
    fn name(&self) -> &'static str {
        "source:simulator"
    }

    /// Runs until shutdown or until the pipeline is gone.
    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask {
        let speed = self.speed;
        let mut inputs = Inputs::new(self.truck);
        Box::pin(async move {
            let started = Instant::now();
            let mut out = Vec::new();
            loop {
                let elapsed = inputs.next(&mut out);
                if speed > 0.0 {
                    if !cx.sleep_until(started + elapsed.div_f64(speed)).await {
                        return Ok(());
                    }
                } else if cx.is_stopping() {
                    return Ok(());
                }
                // One simulated step's frames and node messages: one hand-off.
                if !cx.send_batch(std::mem::take(&mut out)).await {
                    return Ok(());
                }
                // As fast as possible still lets the other tasks on this thread run.
                if speed == 0.0 && elapsed.subsec_millis() == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    }
}
