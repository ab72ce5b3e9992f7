//! Real trucks, judged with the default config and the built-in model, as a fleet engineer
//! would first try Vigil: the logs in `tests/data/` (their licences beside them) and what
//! each must give, kept here.
//!
//! Unsupported parameters come sorted by name.
//!
//! - `j1939-truck-css.candump.log`: a healthy engine idling at 72 degC (CSS Electronics,
//!   MIT). Nothing to alarm.
//! - `j1939-truck-sentry-normal.candump.txt`: a truck driving at 23-55 km/h, coolant 92-93
//!   degC; it sends no fuel or oil temperature (J1939 "not available" from the first
//!   frame). Nothing to alarm; the two are listed as not sent (SystemsCyber Truck_Sentry,
//!   MIT).
//! - `j1939-truck-sentry-address-claim.candump.txt`: the same truck at 95-96 degC until, at
//!   15.5 s, a forged address claim takes the engine's address and its messages stop. The
//!   silence is the one thing to alarm: a dropout, after the attack.

use std::path::Path;
use std::sync::Arc;

use vigil_agent::decode::dbc::DbcConfig;
use vigil_agent::detect::Model;
use vigil_agent::signals::{COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE};
use vigil_lab::Judge;
use vigil_lab::replay::{AlertLine, replay};

/// One log's expectation: the alerts (signal, kind, earliest raise in seconds from the
/// log's start) and the parameters it lists as not sent.
struct Expected {
    log: &'static str,
    alerts: &'static [(&'static str, &'static str, f64)],
    unsupported: &'static [&'static str],
}

const LOGS: &[Expected] = &[
    Expected {
        log: "j1939-truck-css.candump.log",
        alerts: &[],
        unsupported: &[],
    },
    Expected {
        log: "j1939-truck-sentry-normal.candump.txt",
        alerts: &[],
        unsupported: &[OIL_TEMPERATURE, FUEL_TEMPERATURE],
    },
    Expected {
        log: "j1939-truck-sentry-address-claim.candump.txt",
        alerts: &[(COOLANT_TEMPERATURE, "dropout", 15.5)],
        unsupported: &[OIL_TEMPERATURE, FUEL_TEMPERATURE],
    },
];

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

/// The log's first timestamp, seconds.
fn start_of(log: &Path) -> f64 {
    let text = std::fs::read_to_string(log).unwrap();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap();
    let stamp = first.trim().split(')').next().unwrap();
    stamp.trim_start_matches('(').parse().unwrap()
}

#[test]
fn healthy_real_trucks_raise_nothing_and_an_attack_only_its_silence() {
    let judge = Judge {
        model: Some(Arc::new(
            Model::builtin().expect("the built-in model checks out"),
        )),
        ..Judge::default()
    };
    let dir = tempfile::tempdir().unwrap();
    for expected in LOGS {
        let log = data(expected.log);
        let out = dir.path().join("alerts.jsonl");
        let signals = DbcConfig::default().load().unwrap();
        let summary = replay(&judge, signals, &log, &out, None).unwrap();
        assert!(
            summary.readings > 1000,
            "{}: {} readings",
            expected.log,
            summary.readings
        );
        let start = start_of(&log);
        let got: Vec<(String, String, f64)> = summary
            .alerts
            .iter()
            .map(|a: &AlertLine| {
                (
                    a.signal.as_str().to_owned(),
                    a.kind.to_string(),
                    a.raised_at - start,
                )
            })
            .collect();
        assert_eq!(
            got.len(),
            expected.alerts.len(),
            "{}: alerts {got:?}",
            expected.log
        );
        for ((signal, kind, after), (want_signal, want_kind, not_before)) in
            got.iter().zip(expected.alerts)
        {
            assert_eq!((signal.as_str(), kind.as_str()), (*want_signal, *want_kind));
            assert!(after >= not_before, "{}: {kind} at {after} s", expected.log);
        }
        let unsupported: Vec<&str> = summary
            .detect
            .unsupported
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(unsupported, expected.unsupported, "{}", expected.log);
        assert_eq!(summary.malformed_lines, 0, "{}", expected.log);
    }
}
