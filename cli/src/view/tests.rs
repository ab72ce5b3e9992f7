//! The dashboard at its fullest fits 80 columns.

use super::*;
use std::sync::atomic::Ordering;

use vigil_agent::detect::alert::{Alert, AlertKind, Severity};
use vigil_agent::detect::position::AlertPosition;
use vigil_agent::reading::{Origin, Timestamp};

fn at(secs: u64) -> Timestamp {
    Timestamp {
        wall_us: 1_781_503_200_000_000 + secs as i64 * 1_000_000,
        mono: Duration::from_secs(secs),
    }
}

fn alert(id: u64, signal: &str, kind: AlertKind, severity: Severity) -> Alert {
    Alert {
        id,
        signal: Signal::new(signal),
        origin: Some(Origin::Serial {
            port: Arc::from("/dev/serial/by-id/usb-Vigil_Tank_Node_0001-if00"),
        }),
        peer: None,
        kind,
        severity,
        value: 112.25,
        threshold: 110.0,
        score: Some(14.2),
        raised_at: at(3_725),
        changed_at: at(3_725),
        rule: "model:vigil-forecaster/2.3.0".into(),
        evidence: Vec::new(),
        findings: vec![AlertKind::Forecast, AlertKind::Drift, AlertKind::HighLimit],
        position: Some(AlertPosition {
            latitude: 48.137_154_3,
            longitude: -11.575_382_1,
            at: at(3_724),
            age_s: 1.0,
        }),
    }
}

/// The dashboard at its fullest: a long title and vehicle id, every signal of the
/// simulated truck and a DBC's long names, flags, senders with long port names, eight
/// alerts of every kind, large counters, the link and the broker hint.
#[test]
fn the_dashboard_fits_80_columns_with_everything_on_it() {
    let long_signal = "Vehicle.Body.Trailer.Axle3.Wheel.Left.Brake.Lining.Rear.Temperature";
    let mut panel = Panel::default();
    let tank = signals::tank_temperature(1);
    panel.apply(&AlertEvent::Raised(alert(
        1,
        tank.as_str(),
        AlertKind::HighLimit,
        Severity::Critical,
    )));
    let (_panel_tx, panel_rx) = watch::channel(panel);
    let metrics = Arc::new(Metrics::default());
    for counter in [
        &metrics.can_frames_total,
        &metrics.readings_total,
        &metrics.batches_sealed_total,
        &metrics.uplink_published_total,
        &metrics.uplink_acked_total,
    ] {
        counter.store(123_456_789, Ordering::Relaxed);
    }
    let (_link_tx, link_rx) = watch::channel(LinkStatus {
        online: Some(true),
        spool_depth: Some(1_234_567),
        ..LinkStatus::default()
    });
    let id = format!("tanker-{}", "eu-west-1-depot-7-".repeat(6));
    let title = format!(
        "Vigil demo | {id} (gasoline cargo, 3 compartments) | scenario insulation-loss at 1h 30m | seed 18446744073709551615 | speed 10x"
    );
    let mut view = View::new(title, panel_rx, metrics, true).with_link(
        link_rx,
        Some("watch it: mosquitto_sub -h 127.0.0.1 -p 41234 -t 'dt/vigil/#' -v".into()),
    );
    let serial = Origin::Serial {
        port: Arc::from("/dev/serial/by-id/usb-Vigil_Tank_Node_0001-if00"),
    };
    let can = Origin::Can {
        bus: Arc::from("can0"),
        source_address: 0xF9,
    };
    let names = [
        signals::COOLANT_TEMPERATURE,
        signals::OIL_TEMPERATURE,
        signals::FUEL_TEMPERATURE,
        signals::AMBIENT_TEMPERATURE,
        signals::SPEED,
        signals::ENGINE_SPEED,
        signals::LATITUDE,
        signals::LONGITUDE,
        long_signal,
    ];
    for (n, name) in names.into_iter().enumerate() {
        let reading = match n % 3 {
            0 => Reading::flagged(Signal::new(name), at(9), Quality::NotAvailable, can.clone()),
            _ => Reading::good(Signal::new(name), at(9), -12_345.678, can.clone()),
        };
        view.latest.insert(reading.signal.clone(), reading);
    }
    for n in 1..=3 {
        let r = Reading::flagged(
            signals::tank_temperature(n),
            at(9),
            Quality::OutOfRange,
            serial.clone(),
        );
        view.latest.insert(r.signal.clone(), r);
    }
    for (id, kind) in AlertKind::ALL.into_iter().enumerate() {
        let signal = if id % 2 == 0 {
            long_signal
        } else {
            tank.as_str()
        };
        let event = AlertEvent::Escalated(alert(id as u64 + 1, signal, kind, Severity::Critical));
        view.alerts.push_back(alert_line(&event));
        if view.alerts.len() > ALERT_LINES {
            view.alerts.pop_front();
        }
    }
    view.sim_time = Duration::from_secs(99 * 3600);

    let screen = view.render();
    let lines: Vec<&str> = screen.lines().collect();
    for line in &lines {
        let width = columns::visible_width(line);
        assert!(width <= TERMINAL, "{width} columns: {line:?}");
    }
    // What a glance needs is still there: the shown alert in words, the readings by
    // name, flagged ones marked, the cut ones cut where they say least.
    let text = screen.replace("\x1b[K", "");
    assert!(
        text.contains("CRITICAL tank 1: 112.2°C, over 110°C limit"),
        "{text}"
    );
    assert!(
        text.contains("Cargo.Tank.Compartment1.Temperature"),
        "{text}"
    );
    assert!(text.contains("[n/a]") && text.contains("[range]"), "{text}");
    assert!(
        text.contains("-12345.68") && text.contains("…ode_0001-if00"),
        "{text}"
    );
    assert!(
        text.contains("…ailer.Axle3.Wheel.Left.Brake.Lining.Rear.Temperature -12345.68"),
        "{text}"
    );
    assert!(
        text.contains("ESCALATED #14 critical sender_conflict tank 1"),
        "{text}"
    );
    assert!(
        text.contains("drift …Lining.Rear.Temperature: 112.2°C, drift"),
        "{text}"
    );
    assert!(
        text.contains("mosquitto_sub -h 127.0.0.1 -p 41234"),
        "{text}"
    );
    assert!(
        lines[0].contains("Vigil demo | tanker-eu-west-1"),
        "{}",
        lines[0]
    );
    // A plain title stays on one line.
    assert_eq!(
        wrap_title("Vigil demo | truck-7 (gasoline cargo, 3 compartments) | seed 1"),
        ["Vigil demo | truck-7 (gasoline cargo, 3 compartments) | seed 1"]
    );
    assert!(
        text.contains("scenario insulation-loss at 1h 30m"),
        "{text}"
    );
}
