//! The board, data-driven: a script of messages in, the JSON lines and tables out, compared
//! with the expectation written beside each case.
//!
//! A script line is `<received_ms> [retained] <topic> <payload>`, or `table <now_ms>` for the
//! table at that point. The output has one line per event, `ignored: <why>` for a message
//! that changed nothing because it could not be read, and the tables.

use std::sync::Arc;
use std::time::Duration;

use super::board::{Filter, FleetBoard};
use super::render::{self, Link};
use vigil_agent::decode::dm1::{
    DiagnosticEvent, Dtc, Lamp, LampFlash, LampState, Lamps, SpnConversion,
};
use vigil_agent::detect::alert::{Alert, AlertEvent, AlertKind, Severity};
use vigil_agent::reading::{Origin, Signal, Timestamp};
use vigil_agent::security::{SecurityEvent, SecurityKind};
use vigil_agent::spool::{Record, RecordKind};
use vigil_agent::uplink::payload::{
    Status, Stream, alert_body, dm1_body, publication, security_body, stored,
};
use vigil_agent::uplink::topics::Topics;

fn run(filter: Filter, script: &str) -> String {
    let mut board = FleetBoard::new(filter);
    let mut out = String::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (first, rest) = line.split_once(' ').expect("a script line has a time");
        if first == "table" {
            let now: i64 = rest.parse().expect("table <now_ms>");
            let table = render::table(
                &board.rows(),
                now,
                "broker:8883",
                &Link::Connected,
                board.counts(),
            );
            out.push_str(&table);
            continue;
        }
        let received: i64 = first.parse().expect("<received_ms> first");
        let (retained, rest) = match rest.strip_prefix("retained ") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let (topic, payload) = rest.split_once(' ').expect("<topic> <payload>");
        match board.apply(topic, payload.as_bytes(), retained, received) {
            Ok(events) => {
                for e in events {
                    out.push_str(&render::json_line(&e));
                    out.push('\n');
                }
            }
            Err(why) => out.push_str(&format!("ignored: {why}\n")),
        }
    }
    out
}

/// Compares line by line, trailing spaces aside (the table pads its columns).
fn check(filter: Filter, script: &str, expected: &str) {
    let actual = run(filter, script);
    let normal = |s: &str| {
        s.lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        normal(&actual),
        normal(expected),
        "\n--- actual output (paste it as the expectation once checked) ---\n{actual}"
    );
}

const TANK: &str = "Vehicle.Cargo.Tank.Compartment1.Temperature";

#[test]
fn an_alert_raised_escalated_and_cleared_shows_each_change_once() {
    let script = format!(
        r#"
        1000 retained dt/vigil/truck-a/status {{"format":"vigil.status/1","thing":"truck-a","state":"online","agent_version":"0.1.0","at_ms":500}}
        2000 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":10,"format":"vigil.alert/1","event":"raised","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":1900}}
        2001 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":10,"format":"vigil.alert/1","event":"raised","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":1900}}
        table 62000
        9000 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":11,"format":"vigil.alert/1","event":"escalated","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"critical","value":50.5,"threshold":50.0,"rule":"limits/1","raised_at_ms":1900}}
        99000 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":12,"format":"vigil.alert/1","event":"cleared","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"critical","value":50.5,"threshold":50.0,"rule":"limits/1","raised_at_ms":1900,"cleared_at_ms":98000}}
        99500 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":13,"format":"vigil.alert/1","event":"raised","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":1900}}
        table 100000
        "#
    );
    check(
        Filter::default(),
        &script,
        r#"
{"event":"truck_online","truck":"truck-a","at_ms":500,"agent_version":"0.1.0","retained":true}
{"event":"alert_raised","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"alert_id":1,"boot":7,"at_ms":1900}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a                                                          1m01s online
  agent 0.1.0
truck-a              tank 1           high_limit       warning   1m00s active
  41.2°C, over 40°C limit
{"event":"alert_escalated","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"critical","value":50.5,"threshold":50.0,"alert_id":1,"boot":7,"at_ms":1900}
{"event":"alert_cleared","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"critical","value":50.5,"threshold":50.0,"alert_id":1,"boot":7,"at_ms":98000}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a                                                          1m39s online
  agent 0.1.0
truck-a              tank 1           high_limit       critical     2s cleared
  50.5°C, over 50°C limit
"#,
    );
}

/// While an alert is active the table shows its signal's newest reading from the truck's
/// readings batches, from the alert's own sender (never a second sender's), and never one
/// older than the alert; once cleared, the value the alert message carried.
#[test]
fn an_active_alert_shows_the_live_value_of_its_own_sender() {
    let script = format!(
        r#"
        2000 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":10,"format":"vigil.alert/1","event":"raised","alert_id":1,"signal":"{TANK}","origin":"can0/sa00","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":1900}}
        2100 dt/vigil/truck-a/readings {{"format":"vigil.readings/1","t0":1000,"res":0.001,"series":[{{"s":"{TANK}","o":"can0/sa00","t":[[0,0,1]],"v":[39000]}}]}}
        table 2200
        7000 dt/vigil/truck-a/readings {{"format":"vigil.readings/1","t0":5000,"res":0.001,"series":[{{"s":"{TANK}","o":"can0/sa00","t":[[0,1000,2]],"v":[43000,500]}},{{"s":"{TANK}","o":"can0/sa03","t":[[1500,0,1]],"v":[90000]}}]}}
        table 7000
        9000 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":12,"format":"vigil.alert/1","event":"cleared","alert_id":1,"signal":"{TANK}","origin":"can0/sa00","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":1900,"cleared_at_ms":8900}}
        table 9000
        "#
    );
    check(
        Filter::default(),
        &script,
        r#"
{"event":"alert_raised","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"alert_id":1,"boot":7,"at_ms":1900}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a              tank 1           high_limit       warning      0s active
  41.2°C, over 40°C limit
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a              tank 1           high_limit       warning      5s active
  43.5°C, over 40°C limit
{"event":"alert_cleared","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"alert_id":1,"boot":7,"at_ms":8900}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a              tank 1           high_limit       warning      0s cleared
  41.2°C, over 40°C limit
"#,
    );
}

/// Truck B raises a warning that escalates; truck A only ever warns.
fn two_trucks() -> String {
    format!(
        r#"
        1000 retained dt/vigil/truck-a/status {{"format":"vigil.status/1","thing":"truck-a","state":"online","at_ms":900}}
        1000 retained dt/vigil/truck-b/status {{"format":"vigil.status/1","thing":"truck-b","state":"online","at_ms":800}}
        2000 dt/vigil/truck-a/alerts {{"boot":1,"seq":1,"event":"raised","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":41.0,"threshold":40.0,"raised_at_ms":2000}}
        3000 dt/vigil/truck-b/alerts {{"boot":2,"seq":5,"event":"raised","alert_id":3,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":42.0,"threshold":40.0,"raised_at_ms":3000}}
        4000 dt/vigil/truck-b/alerts {{"boot":2,"seq":6,"event":"escalated","alert_id":3,"signal":"{TANK}","kind":"high_limit","severity":"critical","value":51.0,"threshold":50.0,"raised_at_ms":3000}}
        5000 dt/vigil/truck-a/status {{"format":"vigil.status/1","thing":"truck-a","state":"offline","agent_version":"0.1.0"}}
        table 6000
        "#
    )
}

#[test]
fn critical_shows_only_criticals_but_every_truck_coming_and_going() {
    check(
        Filter {
            vehicle: None,
            min_severity: Some(Severity::Critical),
        },
        &two_trucks(),
        r#"
{"event":"truck_online","truck":"truck-a","at_ms":900,"retained":true}
{"event":"truck_online","truck":"truck-b","at_ms":800,"retained":true}
{"event":"alert_escalated","truck":"truck-b","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"critical","value":51.0,"threshold":50.0,"alert_id":3,"boot":2,"at_ms":3000}
{"event":"truck_offline","truck":"truck-a","at_ms":5000,"retained":false}
vigil fleet watch  trucks 2 (1 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a                                                             1s offline
  agent 0.1.0
truck-b                                                             5s online
truck-b              tank 1           high_limit       critical     3s active
  51.0°C, over 50°C limit
"#,
    );
}

#[test]
fn warning_shows_warnings_and_criticals_and_an_offline_truck_s_alerts_say_offline() {
    check(
        Filter {
            vehicle: None,
            min_severity: Some(Severity::Warning),
        },
        &two_trucks(),
        r#"
{"event":"truck_online","truck":"truck-a","at_ms":900,"retained":true}
{"event":"truck_online","truck":"truck-b","at_ms":800,"retained":true}
{"event":"alert_raised","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":41.0,"threshold":40.0,"alert_id":1,"boot":1,"at_ms":2000}
{"event":"alert_raised","truck":"truck-b","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":42.0,"threshold":40.0,"alert_id":3,"boot":2,"at_ms":3000}
{"event":"alert_escalated","truck":"truck-b","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"critical","value":51.0,"threshold":50.0,"alert_id":3,"boot":2,"at_ms":3000}
{"event":"truck_offline","truck":"truck-a","at_ms":5000,"retained":false}
vigil fleet watch  trucks 2 (1 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a                                                             1s offline
  agent 0.1.0
truck-a              tank 1           high_limit       warning      4s offline
  41.0°C, over 40°C limit
truck-b                                                             5s online
truck-b              tank 1           high_limit       critical     3s active
  51.0°C, over 50°C limit
"#,
    );
}

#[test]
fn one_vehicle_shows_nothing_of_the_others() {
    check(
        Filter {
            vehicle: Some("truck-b".into()),
            min_severity: None,
        },
        &two_trucks(),
        r#"
{"event":"truck_online","truck":"truck-b","at_ms":800,"retained":true}
{"event":"alert_raised","truck":"truck-b","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":42.0,"threshold":40.0,"alert_id":3,"boot":2,"at_ms":3000}
{"event":"alert_escalated","truck":"truck-b","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"critical","value":51.0,"threshold":50.0,"alert_id":3,"boot":2,"at_ms":3000}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-b                                                             5s online
truck-b              tank 1           high_limit       critical     3s active
  51.0°C, over 50°C limit
"#,
    );
}

#[test]
fn retained_statuses_replayed_at_resubscription_and_the_will_after_a_clean_stop_are_no_news() {
    check(
        Filter::default(),
        r#"
        1000 retained dt/vigil/truck-a/status {"format":"vigil.status/1","thing":"truck-a","state":"online","at_ms":900}
        1500 dt/vigil/truck-a/status {"format":"vigil.status/1","thing":"truck-a","state":"online","at_ms":1400}
        9000 retained dt/vigil/truck-a/status {"format":"vigil.status/1","thing":"truck-a","state":"online","at_ms":1400}
        9500 dt/vigil/truck-a/status {"format":"vigil.status/1","thing":"truck-a","state":"offline"}
        9600 retained dt/vigil/truck-a/status {"format":"vigil.status/1","thing":"truck-a","state":"offline"}
        20000 dt/vigil/truck-a/status {"format":"vigil.status/1","thing":"truck-a","state":"online","at_ms":19900}
        "#,
        r#"
{"event":"truck_online","truck":"truck-a","at_ms":900,"retained":true}
{"event":"truck_offline","truck":"truck-a","at_ms":9500,"retained":false}
{"event":"truck_online","truck":"truck-a","at_ms":19900,"retained":false}
"#,
    );
}

#[test]
fn dm1_severity_follows_the_lamps_and_a_clearing_keeps_it() {
    let amber = r#"{"malfunction":{"state":"off","flash":"none"},"red_stop":{"state":"off","flash":"none"},"amber_warning":{"state":"on","flash":"none"},"protect":{"state":"off","flash":"none"}}"#;
    let off = r#"{"malfunction":{"state":"off","flash":"none"},"red_stop":{"state":"off","flash":"none"},"amber_warning":{"state":"off","flash":"none"},"protect":{"state":"off","flash":"none"}}"#;
    let script = format!(
        r#"
        1000 dt/vigil/truck-a/dm1 {{"boot":1,"seq":3,"at_ms":1000,"origin":"can0/sa00","pgn":65226,"lamps":{amber},"dtcs":[{{"spn":110,"fmi":0,"occurrence_count":2,"conversion":"version4"}}]}}
        table 4000
        5000 dt/vigil/truck-a/dm1 {{"boot":1,"seq":4,"at_ms":5000,"origin":"can0/sa00","pgn":65226,"lamps":{off},"dtcs":[]}}
        table 6000
        "#
    );
    let expected_all = r#"
{"event":"dm1","truck":"truck-a","at_ms":1000,"origin":"can0/sa00","pgn":65226,"severity":"warning","lamps_on":["amber_warning"],"dtcs":[{"spn":110,"fmi":0,"occurrence_count":2,"conversion":"version4"}]}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a              can0/sa00        dm1              warning      3s active
  SPN 110 FMI 0
{"event":"dm1","truck":"truck-a","at_ms":5000,"origin":"can0/sa00","pgn":65226,"severity":"warning","lamps_on":[],"dtcs":[]}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a              can0/sa00        dm1              warning      1s cleared
  no codes
"#;
    check(Filter::default(), &script, expected_all);
    check(
        Filter {
            vehicle: None,
            min_severity: Some(Severity::Critical),
        },
        &script,
        r#"
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
(nothing to show yet)
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
(nothing to show yet)
"#,
    );
}

#[test]
fn unreadable_messages_are_ignored_with_the_reason() {
    check(
        Filter::default(),
        r#"
        1000 dt/vigil/truck-a/readings {"format":"vigil.readings/1"}
        1000 dt/other/truck-a/alerts {}
        1000 dt/vigil/truck-a/alerts not json
        1000 dt/vigil/truck-a/alerts {"event":"raised","alert_id":1,"signal":"s","kind":"k","severity":"info","value":1,"threshold":0,"raised_at_ms":1}
        1000 dt/vigil/truck-a/status {"state":"sleeping"}
        "#,
        r#"
ignored: unreadable readings payload: bad or missing t0
ignored: not a vigil topic (expected dt/vigil/<truck>/alerts|status|dm1|security|readings)
ignored: unreadable alert payload: expected ident at line 1 column 2
ignored: unreadable alert payload: unknown severity "info"
ignored: unreadable status payload: unknown state "sleeping"
"#,
    );
}

/// The board reads what the agent publishes, byte for byte: the uplink's own serialisers
/// (and its identity header) make the messages.
#[test]
fn the_board_reads_the_agent_s_own_messages() {
    let topics = Topics::new("truck-7");
    let at = |ms: i64| Timestamp {
        wall_us: ms * 1000,
        mono: Duration::from_millis(ms as u64),
    };
    let alert = Alert {
        id: 4,
        signal: Signal::new(TANK),
        origin: None,
        peer: None,
        kind: AlertKind::HighLimit,
        severity: Severity::Critical,
        value: 55.0,
        threshold: 50.0,
        raised_at: at(10_000),
        changed_at: at(10_000),
        rule: "limits/1".into(),
        score: None,
        evidence: Vec::new(),
        findings: Vec::new(),
        position: None,
    };
    let lamp = |state| Lamp {
        state,
        flash: LampFlash::None,
    };
    let dm1 = DiagnosticEvent {
        at: at(11_000),
        origin: Origin::Can {
            bus: Arc::from("can0"),
            source_address: 0,
        },
        pgn: 65226,
        lamps: Lamps {
            malfunction: lamp(LampState::Off),
            red_stop: lamp(LampState::On),
            amber_warning: lamp(LampState::Off),
            protect: lamp(LampState::NotAvailable),
        },
        dtcs: vec![Dtc {
            spn: 110,
            fmi: 0,
            occurrence_count: None,
            conversion: SpnConversion::Version4,
        }],
    };
    let record = |seq, stream, body: Vec<u8>| {
        let r = Record {
            seq,
            kind: RecordKind::Alert,
            boot_id: 9,
            created_ms: 0,
            recovered: false,
            payload: stored(stream, &body),
        };
        let (topic, bytes) = publication(&r, &topics).unwrap();
        (topic.to_owned(), bytes)
    };
    let messages = [
        (topics.status.clone(), Status::offline("truck-7").to_bytes()),
        record(
            1,
            Stream::Alerts,
            alert_body(&AlertEvent::Raised(alert.clone())),
        ),
        record(2, Stream::Dm1, dm1_body(&dm1)),
        record(
            3,
            Stream::Alerts,
            alert_body(&AlertEvent::Cleared {
                alert,
                cleared_at: at(12_000),
            }),
        ),
    ];
    let mut board = FleetBoard::new(Filter::default());
    let events: Vec<String> = messages
        .iter()
        .flat_map(|(topic, bytes)| board.apply(topic, bytes, false, 500).unwrap())
        .map(|e| render::json_line(&e))
        .collect();
    assert_eq!(
        events,
        [
            r#"{"event":"truck_offline","truck":"truck-7","at_ms":500,"retained":false}"#.to_owned(),
            format!(
                r#"{{"event":"alert_raised","truck":"truck-7","signal":"{TANK}","kind":"high_limit","severity":"critical","value":55.0,"threshold":50.0,"alert_id":4,"boot":9,"at_ms":10000}}"#
            ),
            r#"{"event":"dm1","truck":"truck-7","at_ms":11000,"origin":"can0/sa00","pgn":65226,"severity":"critical","lamps_on":["red_stop"],"dtcs":[{"spn":110,"fmi":0,"occurrence_count":null,"conversion":"version4"}]}"#.to_owned(),
            format!(
                r#"{{"event":"alert_cleared","truck":"truck-7","signal":"{TANK}","kind":"high_limit","severity":"critical","value":55.0,"threshold":50.0,"alert_id":4,"boot":9,"at_ms":12000}}"#
            ),
        ]
    );
}

/// A security finding as the agent publishes it reaches the board: one JSON line, and a
/// table line per (kind, suspect) that adds up the counts of its messages.
#[test]
fn security_findings_show_with_their_suspect_and_count() {
    let topics = Topics::new("truck-7");
    let hijack = |seq: u64, ms: i64, count: u64| {
        let event = SecurityEvent {
            at: Timestamp {
                wall_us: ms * 1000,
                mono: Duration::from_millis(ms as u64),
            },
            bus: Arc::from("can0"),
            kind: SecurityKind::AddressHijack,
            severity: Severity::Critical,
            sources: vec![0x00],
            pgn: Some(60928),
            can_id: None,
            count,
            detail: "NAME 0x0000000000000000 claimed address 0x00".to_owned(),
        };
        let record = Record {
            seq,
            kind: RecordKind::Alert,
            boot_id: 9,
            created_ms: 0,
            recovered: false,
            payload: stored(Stream::Security, &security_body(&event)),
        };
        let (topic, bytes) = publication(&record, &topics).unwrap();
        format!("{ms} {topic} {}", String::from_utf8(bytes).unwrap())
    };
    let script = format!(
        "{}\n{}\n{}\ntable 80000",
        hijack(1, 15_000, 1),
        // QoS 1 may deliver it twice: the second is dropped by its (boot, seq).
        hijack(1, 15_000, 1),
        hijack(2, 75_000, 3)
    );
    check(
        Filter {
            vehicle: None,
            min_severity: Some(Severity::Critical),
        },
        &script,
        r#"
{"event":"security","truck":"truck-7","at_ms":15000,"kind":"address_hijack","severity":"critical","bus":"can0","origins":["can0/sa00"],"count":1,"detail":"NAME 0x0000000000000000 claimed address 0x00"}
{"event":"security","truck":"truck-7","at_ms":75000,"kind":"address_hijack","severity":"critical","bus":"can0","origins":["can0/sa00"],"count":3,"detail":"NAME 0x0000000000000000 claimed address 0x00"}
vigil fleet watch  trucks 1 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-7              can0/sa00        address_hijack   critical     5s active
  x4 NAME 0x0000000000000000 claimed address 0x00
"#,
    );
}

/// An alert says where the truck was (its last fix and how much older it was than the
/// alert); an alert whose position cannot be read is shown without one; the truck's own
/// line shows its newest position from the readings batches, a latitude and longitude of
/// one sender and time.
#[test]
fn an_alert_shows_where_the_truck_was_and_the_truck_where_it_is() {
    let lat = "Vehicle.CurrentLocation.Latitude";
    let lon = "Vehicle.CurrentLocation.Longitude";
    let script = format!(
        r#"
        1000 retained dt/vigil/truck-a/status {{"format":"vigil.status/1","thing":"truck-a","state":"online","agent_version":"0.1.0","at_ms":500}}
        2000 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":10,"format":"vigil.alert/1","event":"raised","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":1900,"position":{{"latitude":48.1371543,"longitude":-11.5753821,"at_ms":1500,"age_s":0.4}}}}
        2100 dt/vigil/truck-b/alerts {{"thing":"truck-b","boot":1,"seq":1,"format":"vigil.alert/1","event":"raised","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":2000,"position":{{"latitude":"north"}}}}
        table 3000
        7000 dt/vigil/truck-a/readings {{"format":"vigil.readings/1","t0":5000,"res":0.1,"series":[{{"s":"{lat}","o":"/dev/ttyACM0","r":1e-7,"t":[[0,1000,2]],"v":[481371543,200000]}},{{"s":"{lon}","o":"/dev/ttyACM0","r":1e-7,"t":[[0,1000,2]],"v":[-115753821,-10]}}]}}
        80000 dt/vigil/truck-a/alerts {{"thing":"truck-a","boot":7,"seq":11,"format":"vigil.alert/1","event":"cleared","alert_id":1,"signal":"{TANK}","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"rule":"limits/1","raised_at_ms":1900,"cleared_at_ms":79000,"position":{{"latitude":48.1571543,"longitude":-11.5753831,"at_ms":6000,"age_s":73.0}}}}
        table 80000
        "#
    );
    check(
        Filter::default(),
        &script,
        r#"
{"event":"truck_online","truck":"truck-a","at_ms":500,"agent_version":"0.1.0","retained":true}
{"event":"alert_raised","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"alert_id":1,"boot":7,"at_ms":1900,"position":{"latitude":48.1371543,"longitude":-11.5753821,"at_ms":1500,"age_s":0.4}}
{"event":"alert_raised","truck":"truck-b","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"alert_id":1,"boot":1,"at_ms":2000}
vigil fleet watch  trucks 2 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a                                                             2s online
  agent 0.1.0
truck-a              tank 1           high_limit       warning      1s active
  41.2°C, over 40°C limit  at 48.13715,-11.57538 +0s
truck-b              tank 1           high_limit       warning      1s active
  41.2°C, over 40°C limit
{"event":"alert_cleared","truck":"truck-a","signal":"Vehicle.Cargo.Tank.Compartment1.Temperature","kind":"high_limit","severity":"warning","value":41.2,"threshold":40.0,"alert_id":1,"boot":7,"at_ms":79000,"position":{"latitude":48.1571543,"longitude":-11.5753831,"at_ms":6000,"age_s":73.0}}
vigil fleet watch  trucks 2 (0 offline)  connected  broker:8883
truck                signal           kind             severity  since state
  value and what was crossed, where the truck was
truck-a                                                          1m19s online
  agent 0.1.0  at 48.15715,-11.57538
truck-a              tank 1           high_limit       warning      1s cleared
  41.2°C, over 40°C limit  at 48.15715,-11.57538 +1m13s
truck-b              tank 1           high_limit       warning   1m18s active
  41.2°C, over 40°C limit
"#,
    );
}
