//! The simulated truck as a pipeline source: paces the [`Truck`]'s emissions by the
//! configured speed and feeds them in through the same paths as real hardware: CAN frames
//! as they are, the sensor node's bytes through the same [`FrameDecoder`] a serial port uses.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_wire::FrameDecoder;

use super::simulator::{Emitted, Scenario, SimError, Truck, TruckParams};
use crate::config::{SimulatorConfig, VehicleConfig};
use crate::decode::{Input, NodeMessage};
use crate::reading::Clock;

/// The serial port name the simulated sensor node's readings carry.
pub const NODE_PORT: &str = "sim-node";

/// Builds the configured truck, starting now on the wall clock.
pub fn build_truck(config: &SimulatorConfig, vehicle: &VehicleConfig) -> Result<Truck, SimError> {
    // Checked by `Config::validate`, so this cannot fail for a loaded config.
    let scenario = Scenario::from_name(&config.scenario, config.fault_at)
        .unwrap_or_else(|_| Scenario::normal());
    Truck::new(
        TruckParams {
            seed: config.seed,
            compartments: vehicle.compartments,
            start_wall_us: Clock::start().now().wall_us,
            ..TruckParams::default()
        },
        scenario,
    )
}

/// Runs the simulated truck until `shutdown` is cancelled or the pipeline is gone.
/// `speed` is times real time; 0 runs as fast as the pipeline takes it.
pub async fn run(
    mut truck: Truck,
    speed: f64,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    let started = Instant::now();
    let port: Arc<str> = Arc::from(NODE_PORT);
    let mut node = FrameDecoder::new();
    loop {
        let emission = truck.next_emission();
        if speed > 0.0 {
            let due = started + emission.elapsed.div_f64(speed);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(due) => {}
            }
        } else if shutdown.is_cancelled() {
            return;
        }
        let at = emission.at;
        let sent = match emission.what {
            Emitted::Can(frame) => send(&inputs, Input::Can(frame), &shutdown).await,
            Emitted::Serial(bytes) => {
                let mut sent = true;
                for result in bytes.iter().filter_map(|&b| node.push(b)) {
                    let input = match result {
                        Ok(message) => Input::Node(NodeMessage {
                            port: port.clone(),
                            message,
                            at,
                        }),
                        Err(error) => Input::NodeError {
                            port: port.clone(),
                            error,
                        },
                    };
                    sent &= send(&inputs, input, &shutdown).await;
                }
                sent
            }
        };
        if !sent {
            return;
        }
        // As fast as possible still lets the other tasks on this thread run.
        if speed == 0.0 && emission.elapsed.subsec_millis() == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Sends unless shutdown comes first; `false` means stop.
async fn send(inputs: &mpsc::Sender<Input>, input: Input, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        sent = inputs.send(input) => sent.is_ok(),
    }
}
