//! `vigil demo` with standard output not a terminal prints plain lines: readings with
//! their VSS names and alerts, and ends cleanly after the asked duration.

use std::time::Duration;

use crate::{Lines, vigil, wait_with_limit};

#[test]
fn demo_prints_readings_and_the_overheating_alert_then_exits_0() {
    let mut child = vigil()
        .args([
            "demo",
            "--speed",
            "0",
            "--duration",
            "30m",
            "--scenario",
            "coolant-loss",
            "--fault-at",
            "5m",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = Lines::of(child.stdout.take().unwrap());
    let mut stderr = Lines::of(child.stderr.take().unwrap());
    let raised = stdout.wait_for("ALERT RAISED", Duration::from_secs(120));
    let lines = stdout.rest(Duration::from_secs(60)).to_vec();
    let status =
        wait_with_limit(child, Duration::from_secs(60)).expect("the demo ends after --duration");
    let errors = stderr.rest(Duration::from_secs(5)).join("\n");
    assert_eq!(status.code(), Some(0), "{errors}");

    let raised = raised.unwrap_or_else(|| {
        panic!(
            "no alert raised; last lines: {:?}",
            &lines[lines.len().saturating_sub(5)..]
        )
    });
    assert!(
        raised.contains("Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"),
        "{raised}"
    );
    // The simulated truck drives a route and sends its position: the alert says where.
    let (_, at) = raised
        .split_once(" at ")
        .unwrap_or_else(|| panic!("no position in {raised}"));
    let (lat, lon) = at.split_once(' ').unwrap().0.split_once(',').unwrap();
    let (lat, lon): (f64, f64) = (lat.parse().unwrap(), lon.parse().unwrap());
    assert!(
        (47.0..53.0).contains(&lat) && (6.0..15.0).contains(&lon),
        "{raised}"
    );
    for signal in [
        "Vehicle.Speed",
        "Vehicle.Exterior.AirTemperature",
        "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature",
        "Vehicle.Cargo.Tank.Compartment1.Temperature",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("reading ") && l.contains(signal)),
            "{signal} shown"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("batch ")),
        "batches are sealed"
    );
    assert!(errors.contains("shutdown complete"), "{errors}");
}
