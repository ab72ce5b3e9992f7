//! The schemas in `deploy/schemas/`, read from the repository and checked with the `vigil`
//! crate's small checker ([`vigil::schema`], which says why it is not the `jsonschema`
//! crate). A keyword it does not know fails the test.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/schemas")
}

pub fn load(name: &str) -> Value {
    let path = schemas_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks `value` against the schema file `name`; the error names the path and the rule.
pub fn check(name: &str, value: &Value) -> Result<(), String> {
    let root = load(name);
    vigil::schema::validate(&root, &root, value, "$", &load)
}

/// Parses `payload` as JSON and checks it, panicking with the payload on failure.
pub fn assert_valid(name: &str, payload: &[u8]) -> Value {
    let value: Value = serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(payload)));
    if let Err(e) = check(name, &value) {
        panic!("{name}: {e}\n{value}");
    }
    value
}

#[test]
fn the_checker_refuses_what_the_schemas_refuse() {
    let status = serde_json::json!({"format": "vigil.status/1", "thing": "t", "state": "online"});
    check("status.schema.json", &status).unwrap();
    let mut bad = status.clone();
    bad["state"] = "sleeping".into();
    assert!(
        check("status.schema.json", &bad)
            .unwrap_err()
            .contains("state")
    );
    let mut extra = status;
    extra["colour"] = "red".into();
    assert!(check("status.schema.json", &extra).is_err());
}

/// The online status as the agent builds it, with every health field filled in, against
/// `status.schema.json`; and what the schema refuses of them.
#[test]
fn the_health_status_matches_its_schema() {
    use vigil_agent::detect::{DetectStatus, ModelCoverage};
    use vigil_agent::reading::Signal;
    use vigil_agent::telemetry::Liveness;
    use vigil_agent::uplink::payload::{
        AlarmHealth, Health, LinkCounts, SecurityCounts, SpoolDepth, Status,
    };

    let health = Health {
        model_version: Some("2.3.0".into()),
        model: Some(vigil_agent::detect::Running {
            version: Some("2.3.0".into()),
            from: vigil_agent::detect::Origin::Stored,
            entry: Some(7),
            refused: vec!["stored model 00000008: SHA-256 mismatch".into()],
        }),
        spool: SpoolDepth {
            records: 12,
            bytes: 4096,
            alerts: 2,
            oldest_age_ms: 61_000,
            memory_only: true,
            evicted: 40,
            quarantined: 1,
            store_failures: 2,
            append_failures: 0,
        },
        detect: DetectStatus {
            model: ModelCoverage {
                ticks: 1000,
                abstained: 125,
                masked: 3,
                signals: vec![Signal::new(
                    "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature",
                )],
            },
            unsupported: vec![Signal::new(
                "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature",
            )],
            ..DetectStatus::default()
        },
        security: SecurityCounts {
            events: 1,
            findings: 4,
            tp_sessions_refused: 0,
        },
        stages: Some(Liveness {
            started: 10,
            alive: 9,
            dead: vec!["source:serial"],
        }),
        link: LinkCounts {
            connects: 3,
            disconnects: 2,
            connect_failures: 7,
            since_ms: 1_781_503_200_000,
        },
        alarm: AlarmHealth {
            devices_unavailable: 1,
        },
        certificate_expires_ms: Some(1_803_859_200_000),
    };
    let status = assert_valid(
        "status.schema.json",
        &Status::online("truck-7", health).to_bytes(),
    );
    assert_eq!(status["detect"]["model"]["abstained_share"], 0.125);
    assert_eq!(
        status["stages"]["dead"],
        serde_json::json!(["source:serial"])
    );
    assert!(status.to_string().len() < 1024, "{status}");
    for (path, bad) in [
        ("/stages/dead", serde_json::json!("source:serial")),
        ("/stages/started", serde_json::json!(-1)),
        ("/spool/oldest_age_ms", serde_json::json!(1.5)),
        ("/link/connects", serde_json::json!(0)),
        ("/detect/model/abstained_share", serde_json::json!(1.5)),
        ("/link/colour", serde_json::json!("red")),
        ("/spool/memory_only", serde_json::json!(1)),
        ("/alarm/devices_unavailable", serde_json::json!(-1)),
        ("/certificate_expires_ms", serde_json::json!("2027-03-01")),
    ] {
        let mut wrong = status.clone();
        let (parent, field) = path.rsplit_once('/').unwrap();
        wrong.pointer_mut(parent).unwrap()[field] = bad;
        assert!(
            check("status.schema.json", &wrong).is_err(),
            "{path} accepted"
        );
    }
}

/// The alert payload with and without a position, as the agent encodes it and publishes it
/// (identity added), against `alert.schema.json`; and what the schema refuses of a position.
#[test]
fn an_alert_carries_its_position_as_the_schema_says() {
    use std::sync::Arc;
    use std::time::Duration;
    use vigil_agent::detect::alert::{Alert, AlertEvent, AlertKind, Severity};
    use vigil_agent::detect::position::AlertPosition;
    use vigil_agent::reading::{Signal, Timestamp};
    use vigil_agent::spool::{Record, RecordKind};
    use vigil_agent::uplink::payload::{Stream, alert_body, publication, stored};
    use vigil_agent::uplink::topics::Topics;

    let at = |secs: u64| Timestamp {
        wall_us: 1_781_503_200_000_000 + secs as i64 * 1_000_000,
        mono: Duration::from_secs(secs),
    };
    let alert = |position| Alert {
        id: 3,
        signal: Signal::new("Vehicle.Cargo.Tank.Compartment1.Temperature"),
        origin: None,
        peer: None,
        kind: AlertKind::HighLimit,
        severity: Severity::Warning,
        value: 41.0,
        threshold: 40.0,
        score: None,
        raised_at: at(100),
        changed_at: at(100),
        rule: Arc::from("limits/1"),
        evidence: Vec::new(),
        findings: Vec::new(),
        position,
    };
    let published = |a: Alert| {
        let record = Record {
            seq: 1,
            kind: RecordKind::Alert,
            boot_id: 9,
            created_ms: 0,
            recovered: true,
            payload: stored(Stream::Alerts, &alert_body(&AlertEvent::Raised(a))),
        };
        publication(&record, &Topics::new("truck-7")).unwrap().1
    };
    let none = assert_valid("alert.schema.json", &published(alert(None)));
    assert!(none.get("position").is_none(), "{none}");
    let fix = AlertPosition {
        latitude: 48.137_154_3,
        longitude: -11.575_382_1,
        at: at(93),
        age_s: 7.000_4,
    };
    let v = assert_valid("alert.schema.json", &published(alert(Some(fix))));
    assert_eq!(
        v["position"],
        serde_json::json!({"latitude": 48.137_154_3, "longitude": -11.575_382_1,
                           "at_ms": 1_781_503_293_000i64, "age_s": 7.0})
    );
    for (field, bad) in [
        ("latitude", serde_json::json!(95.0)),
        ("longitude", serde_json::json!(-181.0)),
        ("age_s", serde_json::json!(-1.0)),
        ("at_ms", serde_json::json!("yesterday")),
    ] {
        let mut wrong = v.clone();
        wrong["position"][field] = bad;
        assert!(check("alert.schema.json", &wrong).is_err(), "{field}");
    }
    let mut missing = v;
    missing["position"].as_object_mut().unwrap().remove("age_s");
    assert!(check("alert.schema.json", &missing).is_err());
}
