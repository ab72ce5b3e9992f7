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
use vigil_agent::security::SecurityConfig;
use vigil_agent::signals::{COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE};
use vigil_lab::Judge;
use vigil_lab::replay::{AlertLine, replay};

/// One log's expectation: the alerts (signal, kind, earliest raise in seconds from the
/// log's start), the parameters it lists as not sent, and the intrusion monitor's findings
/// (kind, severity, seconds from the log's start, to the millisecond).
struct Expected {
    log: &'static str,
    alerts: &'static [(&'static str, &'static str, f64)],
    unsupported: &'static [&'static str],
    security: &'static [(&'static str, &'static str, f64)],
}

const LOGS: &[Expected] = &[
    Expected {
        log: "j1939-truck-css.candump.log",
        alerts: &[],
        unsupported: &[],
        security: &[],
    },
    Expected {
        log: "j1939-truck-sentry-normal.candump.txt",
        alerts: &[],
        unsupported: &[OIL_TEMPERATURE, FUEL_TEMPERATURE],
        security: &[],
    },
    Expected {
        log: "j1939-truck-sentry-address-claim.candump.txt",
        alerts: &[(COOLANT_TEMPERATURE, "dropout", 15.5)],
        unsupported: &[OIL_TEMPERATURE, FUEL_TEMPERATURE],
        // NAME 0 claims the engine's address 0x00, in use and never claimed in the log, and
        // the engine answers that it cannot claim one.
        security: &[
            ("address_hijack", "warning", 15.498),
            ("address_lost", "critical", 15.513),
        ],
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

/// The default config's detect stage, the built-in model included.
fn default_judge() -> Judge {
    Judge {
        model: Some(Arc::new(
            Model::builtin().expect("the built-in model checks out"),
        )),
        ..Judge::default()
    }
}

#[test]
fn healthy_real_trucks_raise_nothing_and_an_attack_only_its_silence() {
    let judge = default_judge();
    let dir = tempfile::tempdir().unwrap();
    for expected in LOGS {
        let log = data(expected.log);
        let out = dir.path().join("alerts.jsonl");
        let signals = DbcConfig::default().load().unwrap();
        let summary = replay(
            &judge,
            signals,
            &SecurityConfig::default(),
            &log,
            &out,
            None,
        )
        .unwrap();
        let start = start_of(&log);
        let security: Vec<(String, String, f64)> = summary
            .security
            .iter()
            .map(|s| {
                (
                    s.kind.to_string(),
                    s.severity.to_string(),
                    ((s.at - start) * 1000.0).round() / 1000.0,
                )
            })
            .collect();
        let want: Vec<(String, String, f64)> = expected
            .security
            .iter()
            .map(|&(k, s, t)| (k.to_owned(), s.to_owned(), t))
            .collect();
        assert_eq!(security, want, "{}: security findings", expected.log);
        // The output holds them after the alerts, one JSON line each.
        let written = std::fs::read_to_string(&out).unwrap();
        let categories: Vec<String> = written
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["category"].to_string())
            .collect();
        let mut want_categories = vec!["\"alert\"".to_owned(); expected.alerts.len()];
        want_categories.extend(vec!["\"security\"".to_owned(); expected.security.len()]);
        assert_eq!(categories, want_categories, "{}", expected.log);
        assert!(
            summary.readings > 1000,
            "{}: {} readings",
            expected.log,
            summary.readings
        );
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
        assert_eq!(summary.log.unwrap().skipped(), 0, "{}", expected.log);
    }
}

/// The CSS truck's log with its engine's ET1 coolant set to `engine` degC, and, when
/// `second` is given, a second controller (source address 0x03) sending ET1 with that coolant
/// 0.2 s after each of the engine's frames, as a spoofing or misconfigured node would.
fn with_second_sender(engine: u8, second: Option<u8>) -> String {
    let text = std::fs::read_to_string(data("j1939-truck-css.candump.log")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let Some((head, payload)) = line.split_once("18FEEE00#") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        // Coolant is ET1's first byte, 1 degC a bit from -40.
        let rest = &payload[2..];
        out.push_str(&format!(
            "{head}18FEEE00#{:02X}{rest}\n",
            engine as i32 + 40
        ));
        if let Some(second) = second {
            let stamp: f64 = head
                .trim_start_matches('(')
                .split(')')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let bus = head.split(')').nth(1).unwrap().trim();
            out.push_str(&format!(
                "({:.6}) {bus} 18FEEE03#{:02X}{rest}\n",
                stamp + 0.2,
                second as i32 + 40
            ));
        }
    }
    out
}

#[test]
fn a_second_sender_neither_hides_an_overheating_engine_nor_goes_unseen() {
    let judge = default_judge();
    let dir = tempfile::tempdir().unwrap();
    let alerts = |name: &str, engine: u8, second: Option<u8>| -> Vec<AlertLine> {
        let log = dir.path().join(name);
        std::fs::write(&log, with_second_sender(engine, second)).unwrap();
        let signals = DbcConfig::default().load().unwrap();
        let out = dir.path().join(format!("{name}.jsonl"));
        replay(
            &judge,
            signals,
            &SecurityConfig::default(),
            &log,
            &out,
            None,
        )
        .unwrap()
        .alerts
    };
    let coolant = |a: &AlertLine| a.signal.as_str() == COOLANT_TEMPERATURE;
    let raised = |alerts: &[AlertLine], kind: &str, origin: &str| {
        alerts
            .iter()
            .filter(|a| coolant(a) && a.kind.to_string() == kind)
            .filter(|a| a.origin.as_deref() == Some(origin))
            .map(|a| (a.severity.to_string(), a.peer.clone()))
            .collect::<Vec<_>>()
    };
    // The engine at 120 degC alone: a critical high limit from its own address.
    let alone = alerts("alone.log", 120, None);
    assert_eq!(
        raised(&alone, "high_limit", "can1/sa00"),
        [("critical".to_owned(), None)]
    );
    assert!(raised(&alone, "sender_conflict", "can1/sa03").is_empty());
    // A node at 90 degC 0.2 s after each engine frame: the engine's critical still sounds,
    // and the disagreement is an alert naming both senders.
    let masked = alerts("masked.log", 120, Some(90));
    assert_eq!(
        raised(&masked, "high_limit", "can1/sa00"),
        [("critical".to_owned(), None)],
        "{masked:?}"
    );
    assert_eq!(
        raised(&masked, "sender_conflict", "can1/sa03"),
        [("warning".to_owned(), Some("can1/sa00".to_owned()))]
    );
    // A node at 200 degC beside a healthy engine at 72: its own limit and the conflict; the
    // engine's stream stays clean.
    let hot = alerts("hot.log", 72, Some(200));
    assert_eq!(
        raised(&hot, "high_limit", "can1/sa03"),
        [("critical".to_owned(), None)]
    );
    assert_eq!(
        raised(&hot, "sender_conflict", "can1/sa03"),
        [("warning".to_owned(), Some("can1/sa00".to_owned()))]
    );
    assert!(
        hot.iter().all(|a| a.origin.as_deref() != Some("can1/sa00")),
        "{hot:?}"
    );
    // Two senders that agree (within a degree) are no conflict.
    let agree = alerts("agree.log", 72, Some(73));
    assert!(agree.is_empty(), "{agree:?}");
}
