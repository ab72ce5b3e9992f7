//! `vigil fleet watch` (the real binary, `--json`) against the real Mosquitto with TLS and
//! client certificates, watching two real agents (`vigil run` with the simulator): their
//! alerts and an offline event (the Last Will, after SIGKILL) appear, filtered as asked.
//!
//! "Never shown" is checked against a barrier, not a wait: the broker hands each subscriber
//! its messages in the order it took them in. Truck A is killed only after the test's own
//! subscriber has seen both trucks' alerts, so A's Last Will reaches every watcher after
//! those alerts would have; when a watcher prints A's offline event, anything it was going to
//! print of them is already printed.

use std::path::Path;
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::broker::{Fleet, KillOnDrop, LIMIT, Mosquitto, Pki};
use crate::schema::assert_valid;
use crate::{Lines, vigil, wait_with_limit, write_file};

/// A simulated truck whose cargo tank is over its limits from the first seconds (the
/// simulator's tank sits near ambient, 11-25 degC): warning only, or critical too.
fn truck_config(
    pki: &Pki,
    thing: &str,
    port: u16,
    (warning, critical): (f64, f64),
) -> std::path::PathBuf {
    let id = pki.client(thing, None, false);
    let spool = pki.dir.path().join(format!("spool-{thing}"));
    write_file(
        pki.dir.path(),
        &format!("{thing}.toml"),
        &format!(
            "[vehicle]\nid = \"{thing}\"\n\n[source.simulator]\nspeed = 20.0\n\n\
             [detect.tank.gasoline]\nwarning = {warning:.1}\ncritical = {critical:.1}\n\n\
             [spool]\npath = \"{}\"\n\n\
             [uplink]\nendpoint = \"localhost\"\nport = {port}\nca_file = \"{}\"\n\
             cert_file = \"{}\"\nkey_file = \"{}\"\nkeep_alive = \"30s\"\n",
            spool.display(),
            pki.ca.pem.display(),
            id.cert.display(),
            id.key.display()
        ),
    )
}

fn start_truck(config: &Path) -> (Child, Lines) {
    let mut child = vigil()
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Lines::of(child.stderr.take().unwrap());
    (child, log)
}

/// A `vigil fleet watch --json` process: its events (stdout) and its log (stderr).
struct Watcher {
    name: &'static str,
    child: Option<Child>,
    events: Lines,
    log: Lines,
}

impl Watcher {
    /// Starts it and waits until it has subscribed.
    fn start(pki: &Pki, port: u16, name: &'static str, extra: &[&str]) -> Watcher {
        let id = pki.client(name, None, false);
        let mut child = vigil()
            .args([
                "fleet",
                "watch",
                "--broker",
                &format!("localhost:{port}"),
                "--ca",
            ])
            .arg(&pki.ca.pem)
            .arg("--cert")
            .arg(&id.cert)
            .arg("--key")
            .arg(&id.key)
            .args(["--json", "--client-id", name])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut w = Watcher {
            name,
            events: Lines::of(child.stdout.take().unwrap()),
            log: Lines::of(child.stderr.take().unwrap()),
            child: Some(child),
        };
        w.log_line("fleet_subscribed");
        w
    }

    fn log_line(&mut self, needle: &str) -> String {
        self.log.wait_for(needle, LIMIT).unwrap_or_else(|| {
            panic!(
                "{}: no log line with {needle}; log: {:#?}",
                self.name, self.log.seen
            )
        })
    }

    /// Every event up to and including the first `matching` one, as JSON.
    fn events_until(&mut self, what: &str, matching: impl Fn(&Value) -> bool) -> Vec<Value> {
        let end = std::time::Instant::now() + LIMIT * 2;
        loop {
            let found = self.events.seen.iter().any(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .is_some_and(|v| matching(&v))
            });
            if found {
                break;
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            // Any line: the check above runs again on everything seen.
            if self.events.wait_for("", left).is_none() {
                panic!(
                    "{}: gave up waiting for {what}; events: {:#?}; log: {:#?}",
                    self.name, self.events.seen, self.log.seen
                );
            }
        }
        self.events
            .seen
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {l}", self.name))
            })
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = wait_with_limit(child, LIMIT);
        }
    }
}

fn is(event: &Value, kind: &str, truck: &str) -> bool {
    event["event"] == kind && event["truck"] == truck
}

fn is_alert(event: &Value) -> bool {
    event["event"]
        .as_str()
        .is_some_and(|e| e.starts_with("alert_"))
}

fn alert_payload(payload: &[u8]) -> Option<Value> {
    serde_json::from_slice(payload).ok()
}

#[test]
fn the_fleet_watch_shows_two_trucks_alerts_filtered_and_the_last_will_of_a_killed_one() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    // The test's own view of what the trucks published: the barrier (see the module doc).
    let seen = Fleet::connect(&pki, broker.port, "fleet-barrier", &["dt/vigil/#"]);
    let mut all = Watcher::start(&pki, broker.port, "watch-all", &[]);
    let mut critical = Watcher::start(
        &pki,
        broker.port,
        "watch-critical",
        &["--severity", "critical"],
    );
    let mut only_a = Watcher::start(&pki, broker.port, "watch-a", &["--vehicle", "truck-a"]);

    // Truck A only warns (critical limit far above), truck B goes critical at once.
    let (mut truck_a, _log_a) =
        start_truck(&truck_config(&pki, "truck-a", broker.port, (5.0, 90.0)));
    let (truck_b, _log_b) = start_truck(&truck_config(&pki, "truck-b", broker.port, (2.0, 4.0)));
    seen.until("truck A's warning and truck B's critical alert", |msgs| {
        let alert = |truck: &str, severity: &str| {
            msgs.iter().any(|(t, p)| {
                t == &format!("dt/vigil/{truck}/alerts")
                    && alert_payload(p).is_some_and(|v| v["severity"] == severity)
            })
        };
        alert("truck-a", "warning") && alert("truck-b", "critical")
    });
    truck_a.kill().unwrap(); // SIGKILL: no goodbye, so the broker sends the Last Will.
    truck_a.wait().unwrap();

    let a_offline = |v: &Value| is(v, "truck_offline", "truck-a") && v["retained"] == false;

    // Everything, from both trucks.
    let events = all.events_until("truck A offline", a_offline);
    for (truck, severity) in [("truck-a", "warning"), ("truck-b", "critical")] {
        assert!(
            events
                .iter()
                .any(|v| is_alert(v) && v["truck"] == truck && v["severity"] == severity),
            "watch-all: no {severity} alert of {truck}: {events:#?}"
        );
        assert!(
            events.iter().any(|v| is(v, "truck_online", truck)),
            "watch-all: {truck} never online: {events:#?}"
        );
    }
    let raised = events
        .iter()
        .find(|v| is(v, "alert_raised", "truck-a"))
        .expect("truck A's alert was raised");
    assert!(
        raised["signal"]
            .as_str()
            .is_some_and(|s| s.starts_with("Vehicle.Cargo.Tank.Compartment")),
        "{raised}"
    );
    assert_eq!(raised["threshold"], json!(5.0), "{raised}");

    // --severity critical: truck B's criticals and both trucks' comings and goings; never
    // a warning (truck A's alerts were all warnings).
    let events = critical.events_until("truck A offline", a_offline);
    assert!(
        events
            .iter()
            .any(|v| is_alert(v) && v["truck"] == "truck-b" && v["severity"] == "critical"),
        "watch-critical: no critical alert of truck B: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|v| !is_alert(v) || v["severity"] == "critical"),
        "watch-critical showed a warning: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|v| v["truck"] != "truck-a" || !is_alert(v)),
        "watch-critical showed truck A's warning: {events:#?}"
    );

    // --vehicle truck-a: its warning and its end, nothing of truck B.
    let events = only_a.events_until("truck A offline", a_offline);
    assert!(
        events.iter().any(|v| is(v, "alert_raised", "truck-a")),
        "watch-a: no alert of truck A: {events:#?}"
    );
    assert!(
        events.iter().all(|v| v["truck"] == "truck-a"),
        "watch-a showed another truck: {events:#?}"
    );

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &truck_b.id().to_string()])
        .status();
    assert!(
        wait_with_limit(truck_b, LIMIT).is_some(),
        "truck B did not stop on SIGTERM"
    );
}

#[test]
fn the_fleet_watch_reconnects_by_itself_and_says_so() {
    let pki = Pki::new();
    let mut broker = Mosquitto::start(&pki);
    let mut watcher = Watcher::start(&pki, broker.port, "watch-reconnect", &[]);
    let publisher = Fleet::connect(&pki, broker.port, "fleet-publisher", &[]);

    broker.stop();
    let line = watcher.log_line("fleet_disconnected");
    assert!(line.contains("reconnecting"), "{line}");
    broker.restart();
    watcher.log_line("fleet_connected");
    watcher.log_line("fleet_subscribed");

    // Published after the watcher subscribed again: it must show it.
    let alert = json!({
        "thing": "truck-c", "boot": 1, "seq": 1, "format": "vigil.alert/1", "event": "raised",
        "alert_id": 1, "signal": "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature",
        "kind": "high_limit", "severity": "critical", "value": 112.0, "threshold": 110.0,
        "rule": "limits/1", "raised_at_ms": 1_000
    });
    publisher.publish(
        "dt/vigil/truck-c/alerts",
        serde_json::to_vec(&alert).unwrap(),
        false,
    );
    let lamp = |state: &str| json!({"state": state, "flash": "none"});
    let dm1 = json!({
        "thing": "truck-c", "boot": 1, "seq": 2, "format": "vigil.dm1/1", "at_ms": 2_000,
        "origin": "can0/sa00", "pgn": 65226,
        "lamps": {"malfunction": lamp("off"), "red_stop": lamp("on"),
                  "amber_warning": lamp("off"), "protect": lamp("off")},
        "dtcs": [{"spn": 110, "fmi": 0, "occurrence_count": 3, "conversion": "version4"}]
    });
    publisher.publish(
        "dt/vigil/truck-c/dm1",
        serde_json::to_vec(&dm1).unwrap(),
        false,
    );
    let events = watcher.events_until("truck C's alert and DM1 after the restart", |v| {
        is(v, "dm1", "truck-c")
    });
    let raised = events
        .iter()
        .find(|v| is(v, "alert_raised", "truck-c"))
        .unwrap_or_else(|| panic!("no alert of truck C: {events:#?}"));
    assert_eq!(raised["severity"], "critical");
    assert_eq!(raised["value"], json!(112.0));
    let dm1 = events.last().unwrap();
    assert_eq!(dm1["severity"], "critical", "{dm1}");
    assert_eq!(dm1["dtcs"][0]["spn"], 110, "{dm1}");
}

/// A truck replays the real address-claim attack (Truck_Sentry's `address_claim.log`, MIT):
/// its intrusion monitor's findings reach the fleet watch over TLS, valid against their
/// schema, and the coolant's silence after the attack is the one alert.
#[test]
fn a_hijacked_engine_address_reaches_the_fleet_watch_as_security_findings() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let fleet = Fleet::connect(
        &pki,
        broker.port,
        "security-subscriber",
        &["dt/vigil/+/security"],
    );
    let mut watcher = Watcher::start(&pki, broker.port, "vigil-fleet-sec", &[]);
    let thing = "truck-s";
    let id = pki.client(thing, None, false);
    let log = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/j1939-truck-sentry-address-claim.candump.txt");
    let config = write_file(
        pki.dir.path(),
        "truck-s.toml",
        &format!(
            "[vehicle]\nid = \"{thing}\"\n\n[source.replay]\npath = \"{}\"\nspeed = 0.0\n\n\
             [spool]\npath = \"{}\"\n\n\
             [uplink]\nendpoint = \"localhost\"\nport = {}\nca_file = \"{}\"\n\
             cert_file = \"{}\"\nkey_file = \"{}\"\nkeep_alive = \"30s\"\n",
            log.display(),
            pki.dir.path().join("spool-s").display(),
            broker.port,
            pki.ca.pem.display(),
            id.cert.display(),
            id.key.display()
        ),
    );
    let (child, _log) = start_truck(&config);
    let _child = crate::broker::KillOnDrop(Some(child));
    let seen = fleet.until("the hijack and the lost address", |seen| seen.len() >= 2);
    let kinds: Vec<Value> = seen
        .iter()
        .map(|(_, p)| crate::schema::assert_valid("security.schema.json", p)["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("address_hijack"), json!("address_lost")]);
    let events = watcher.events_until("the lost address", |e| {
        is(e, "security", thing) && e["kind"] == "address_lost"
    });
    let security: Vec<&Value> = events.iter().filter(|e| is(e, "security", thing)).collect();
    assert_eq!(security.len(), 2, "{events:#?}");
    assert_eq!(security[0]["origins"], json!(["can0/sa00"]));
    assert_eq!(security[1]["severity"], "critical");
}

/// Issue 17's "where is the truck": a simulated truck (`vigil run`, which sends J1939
/// Vehicle Position once a simulated second) raises an alert, and `vigil fleet watch`,
/// over Mosquitto with TLS and client certificates, shows it with the last known position
/// and its age, as the alert message carried it.
#[test]
fn an_alert_reaches_the_fleet_watch_with_where_the_truck_was() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let seen = Fleet::connect(&pki, broker.port, "fleet-position", &["dt/vigil/#"]);
    let mut watcher = Watcher::start(&pki, broker.port, "watch-position", &[]);
    let (truck, _log) = start_truck(&truck_config(&pki, "truck-p", broker.port, (5.0, 90.0)));
    let _truck = KillOnDrop(Some(truck));

    let raised = |v: &Value| is(v, "alert_raised", "truck-p");
    let events = watcher.events_until("truck P's alert", raised);
    let alert = events.iter().find(|v| raised(v)).unwrap();
    let position = &alert["position"];
    let (lat, lon) = (
        position["latitude"]
            .as_f64()
            .unwrap_or_else(|| panic!("no position: {alert}")),
        position["longitude"].as_f64().unwrap(),
    );
    // The simulator's depots lie between 47.5 and 52 N, 7 and 14 E.
    assert!(
        (47.0..53.0).contains(&lat) && (6.0..15.0).contains(&lon),
        "{alert}"
    );
    // A fix once a simulated second: at most a second and a bit before the raise.
    let age = position["age_s"].as_f64().unwrap();
    assert!((0.0..=1.5).contains(&age), "{alert}");
    let fix_ms = position["at_ms"].as_i64().unwrap();
    let behind = alert["at_ms"].as_i64().unwrap() - fix_ms;
    assert!((behind as f64 - age * 1000.0).abs() <= 2.0, "{alert}");

    // What the watcher shows is what the truck published, and the position also went out
    // as readings (its own step, 1e-7 degree), which the schema accepts.
    let msgs = seen.until("the alert and a readings batch with the position", |msgs| {
        let alert = msgs.iter().any(|(t, _)| t == "dt/vigil/truck-p/alerts");
        let readings = msgs.iter().any(|(t, p)| {
            t == "dt/vigil/truck-p/readings"
                && String::from_utf8_lossy(p).contains("Vehicle.CurrentLocation.Latitude")
        });
        alert && readings
    });
    let published = msgs
        .iter()
        .filter(|(t, _)| t == "dt/vigil/truck-p/alerts")
        .map(|(_, p)| assert_valid("alert.schema.json", p))
        .find(|v| v["alert_id"] == alert["alert_id"] && v["event"] == "raised")
        .expect("the raised alert was published");
    assert_eq!(published["position"], *position);
    let (_, batch) = msgs
        .iter()
        .find(|(t, p)| {
            t == "dt/vigil/truck-p/readings"
                && String::from_utf8_lossy(p).contains("Vehicle.CurrentLocation.Latitude")
        })
        .unwrap();
    let batch = assert_valid("readings.schema.json", batch);
    let readings = vigil_agent::uplink::readings::decode(&batch).unwrap();
    let latitudes: Vec<f64> = readings
        .iter()
        .filter(|r| r.signal == "Vehicle.CurrentLocation.Latitude")
        .filter_map(|r| r.value.clone().ok())
        .collect();
    assert!(!latitudes.is_empty());
    assert!(
        latitudes.iter().all(|l| (l - lat).abs() < 0.1),
        "{latitudes:?} far from {lat}"
    );
}
