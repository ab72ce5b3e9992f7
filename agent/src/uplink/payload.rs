//! What the agent publishes, byte for byte; every message has a JSON Schema in
//! `deploy/schemas/`.
//!
//! # Spooled payloads
//!
//! The spool keeps payloads opaque. The outbound stage stores each as one stream byte
//! ([`Stream`]) followed by a JSON object *without* its identity; the uplink adds the
//! identity when it publishes, because the sequence number is the spool's to give:
//!
//! ```text
//! stored:     0x02 {"format":"vigil.readings/1","t0":...}
//! published:       {"thing":"truck-7","boot":81985529216486895,"seq":42,"format":"vigil.readings/1","t0":...}
//! ```
//!
//! `(thing, boot, seq)` is unique per record; QoS 1 may deliver a message twice, and
//! consumers drop the second by that key.

use std::collections::HashMap;

use serde::Serialize;

use crate::decode::dm1::{DiagnosticEvent, Dtc, Lamps};
use crate::detect::alert::AlertEvent;
use crate::detect::{DetectStatus, ModelCoverage, Running};
use crate::reading::Timestamp;
use crate::security::SecurityEvent;
use crate::spool::{Record, RecordKind};
use crate::telemetry::Liveness;

use super::topics::Topics;

/// Which topic a spooled payload goes to: its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Alerts = 1,
    Readings = 2,
    Dm1 = 3,
    Security = 4,
}

impl Stream {
    pub fn from_byte(b: u8) -> Option<Stream> {
        match b {
            1 => Some(Stream::Alerts),
            2 => Some(Stream::Readings),
            3 => Some(Stream::Dm1),
            4 => Some(Stream::Security),
            _ => None,
        }
    }

    /// The spool's kind: DM1 events (one per change) and security events (held back to one
    /// a minute per finding) are rare and go with the alerts, ahead of any readings backlog.
    pub fn record_kind(self) -> RecordKind {
        match self {
            Stream::Alerts | Stream::Dm1 | Stream::Security => RecordKind::Alert,
            Stream::Readings => RecordKind::Readings,
        }
    }

    pub fn topic(self, topics: &Topics) -> &str {
        match self {
            Stream::Alerts => &topics.alerts,
            Stream::Readings => &topics.readings,
            Stream::Dm1 => &topics.dm1,
            Stream::Security => &topics.security,
        }
    }
}

/// A payload as the spool stores it.
pub fn stored(stream: Stream, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(stream as u8);
    out.extend_from_slice(body);
    out
}

/// Bytes the identity adds to a body, at most, for a thing name of `thing_len` bytes.
pub fn identity_headroom(thing_len: usize) -> usize {
    // {"thing":"","boot":,"seq":, plus two u64 of 20 digits and JSON escapes of the name,
    // and ,"recovered":true.
    30 + 40 + 17 + thing_len * 2
}

/// The topic and the bytes to publish for a spooled record; `None` for a payload this
/// version cannot place (it is acknowledged and dropped, with an error logged).
pub fn publication<'t>(record: &Record, topics: &'t Topics) -> Option<(&'t str, Vec<u8>)> {
    let (&tag, body) = record.payload.split_first()?;
    let stream = Stream::from_byte(tag)?;
    let rest = body.strip_prefix(b"{")?;
    let mut out = Vec::with_capacity(body.len() + identity_headroom(topics.thing.len()));
    out.extend_from_slice(b"{\"thing\":");
    serde_json::to_writer(&mut out, &topics.thing).ok()?;
    out.extend_from_slice(
        format!(",\"boot\":{},\"seq\":{}", record.boot_id, record.seq).as_bytes(),
    );
    if record.recovered {
        out.extend_from_slice(b",\"recovered\":true");
    }
    if rest != b"}" {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Some((stream.topic(topics), out))
}

fn wall_ms(t: &Timestamp) -> i64 {
    t.wall_us.div_euclid(1000)
}

/// `vigil.alert/1`: one alert event (deploy/schemas/alert.schema.json).
#[derive(Serialize)]
struct AlertMessage<'a> {
    format: &'static str,
    event: &'static str,
    alert_id: u64,
    signal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    kind: String,
    severity: String,
    value: f64,
    threshold: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    rule: &'a str,
    raised_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cleared_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    findings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<PositionMessage>,
}

/// Where the truck was: the last known fix and its age at the event.
#[derive(Serialize)]
struct PositionMessage {
    latitude: f64,
    longitude: f64,
    /// The fix's wall time, for the record.
    at_ms: i64,
    /// Seconds from the fix to the event, on the agent's monotonic clock, to the millisecond.
    age_s: f64,
}

pub fn alert_body(event: &AlertEvent) -> Vec<u8> {
    let a = event.alert();
    let (word, cleared_at_ms) = match event {
        AlertEvent::Raised(_) => ("raised", None),
        AlertEvent::Escalated(_) => ("escalated", None),
        AlertEvent::Updated(_) => ("updated", None),
        AlertEvent::Cleared { cleared_at, .. } => ("cleared", Some(wall_ms(cleared_at))),
    };
    let message = AlertMessage {
        format: "vigil.alert/1",
        event: word,
        alert_id: a.id,
        signal: a.signal.as_str(),
        origin: a.origin.as_ref().map(ToString::to_string),
        peer: a.peer.as_ref().map(ToString::to_string),
        kind: a.kind.to_string(),
        severity: a.severity.to_string(),
        value: finite(a.value),
        threshold: finite(a.threshold),
        score: a.score.filter(|s| s.is_finite()),
        rule: &a.rule,
        raised_at_ms: wall_ms(&a.raised_at),
        cleared_at_ms,
        findings: a.findings.iter().map(ToString::to_string).collect(),
        position: a
            .position
            .filter(|p| p.latitude.is_finite() && p.longitude.is_finite())
            .map(|p| PositionMessage {
                latitude: p.latitude,
                longitude: p.longitude,
                at_ms: wall_ms(&p.at),
                age_s: (p.age_s * 1000.0).round() / 1000.0,
            }),
    };
    serde_json::to_vec(&message).expect("an alert always serialises")
}

/// JSON has no NaN or infinity; an alert never carries one, but a bad rule must not make
/// the message unreadable.
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// `vigil.dm1/1`: one controller's active trouble codes (deploy/schemas/dm1.schema.json).
#[derive(Serialize)]
struct Dm1Message<'a> {
    format: &'static str,
    at_ms: i64,
    origin: String,
    pgn: u32,
    lamps: &'a Lamps,
    dtcs: &'a [Dtc],
}

pub fn dm1_body(event: &DiagnosticEvent) -> Vec<u8> {
    serde_json::to_vec(&Dm1Message {
        format: "vigil.dm1/1",
        at_ms: wall_ms(&event.at),
        origin: event.origin.to_string(),
        pgn: event.pgn,
        lamps: &event.lamps,
        dtcs: &event.dtcs,
    })
    .expect("a DM1 event always serialises")
}

/// `vigil.security/1`: one finding of the bus's intrusion monitor
/// (deploy/schemas/security.schema.json).
#[derive(Serialize)]
struct SecurityMessage<'a> {
    format: &'static str,
    at_ms: i64,
    kind: &'static str,
    severity: String,
    bus: &'a str,
    /// The senders involved (`can0/saF9`), the suspect first.
    origins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pgn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    can_id: Option<u32>,
    count: u64,
    detail: &'a str,
}

pub fn security_body(event: &SecurityEvent) -> Vec<u8> {
    serde_json::to_vec(&SecurityMessage {
        format: "vigil.security/1",
        at_ms: wall_ms(&event.at),
        kind: event.kind.as_str(),
        severity: event.severity.to_string(),
        bus: &event.bus,
        origins: event.origins().iter().map(ToString::to_string).collect(),
        pgn: event.pgn,
        can_id: event.can_id,
        count: event.count,
        detail: &event.detail,
    })
    .expect("a security event always serialises")
}

/// Passes a controller's DM1 on only when what it says changed: a controller repeats its
/// DM1 about once a second while a fault is active, and the fleet needs the changes.
#[derive(Debug, Default)]
pub struct Dm1Changes {
    last: HashMap<String, (Lamps, Vec<Dtc>)>,
}

impl Dm1Changes {
    pub fn is_new(&mut self, event: &DiagnosticEvent) -> bool {
        let key = format!("{}/{}", event.origin, event.pgn);
        let now = (event.lamps, event.dtcs.clone());
        if self.last.get(&key) == Some(&now) {
            return false;
        }
        self.last.insert(key, now);
        true
    }
}

/// `vigil.status/1`: retained on the status topic; the Last Will says `offline`. The online
/// form is the truck's health, sent at connect and every `status_interval`. Its size is
/// bounded: every list in it is bounded by the code (task names) or by the config (the
/// watched signals, at most 4 senders each).
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub format: &'static str,
    pub thing: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Which model runs: where it came from (a stored job's model, the config's, a job's
    /// held in memory, none) and why newer ones were passed over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Running>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolDepth>,
    /// What the model covered (signal-ticks where it could run, abstained, was masked, and
    /// the share it abstained on) and the parameters this truck does not send.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "detect_message"
    )]
    pub detect: Option<DetectStatus>,
    /// What the bus's intrusion monitor found since the agent started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityCounts>,
    /// The pipeline's tasks: how many started, how many run, which ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Liveness>,
    /// The link to the broker since the agent started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkCounts>,
    /// The cab's devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<AlarmHealth>,
    /// When the device certificate expires, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_expires_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
}

/// The cab's devices, as the status reports them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AlarmHealth {
    /// Configured devices (buzzer, button, display) that could not be opened and are tried
    /// again while the agent runs without them.
    pub devices_unavailable: u64,
}

/// The intrusion monitor's counters, as the status reports them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SecurityCounts {
    /// Security events reported (each published on the security topic).
    pub events: u64,
    /// Findings, reported or held back as repeats.
    pub findings: u64,
    /// Transport-protocol announcements refused for capacity.
    pub tp_sessions_refused: u64,
}

impl SecurityCounts {
    pub fn from_metrics(m: &crate::telemetry::Metrics) -> Self {
        let s = m.snapshot();
        SecurityCounts {
            events: s.security_events_total,
            findings: s.security_findings_total,
            tp_sessions_refused: s.tp_sessions_refused_total,
        }
    }
}

/// What the spool holds, and how long its oldest record has waited.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SpoolDepth {
    pub records: u64,
    pub bytes: u64,
    pub alerts: u64,
    /// Age of the oldest pending record, milliseconds; 0 when the spool is empty.
    pub oldest_age_ms: u64,
    /// Whether the spool is held in memory because its store on disk could not be opened
    /// or failed (a full disk); it goes back to the disk by itself.
    pub memory_only: bool,
    /// Since the agent started: records dropped to stay under the caps (never sent),
    /// damaged stores moved aside, failures of the store on disk, and records the pipeline
    /// could not append. Each is also logged.
    pub evicted: u64,
    pub quarantined: u64,
    pub store_failures: u64,
    pub append_failures: u64,
}

/// The broker connection since the agent started.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LinkCounts {
    /// Connections established (CONNACK).
    pub connects: u64,
    /// Established connections lost.
    pub disconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Wall-clock ms of this connection's CONNACK.
    pub since_ms: i64,
}

impl LinkCounts {
    pub fn from_metrics(m: &crate::telemetry::Metrics, since_ms: i64) -> Self {
        let s = m.snapshot();
        LinkCounts {
            connects: s.uplink_connects_total,
            disconnects: s.uplink_disconnects_total,
            connect_failures: s.uplink_connect_failures_total,
            since_ms,
        }
    }
}

/// What the online status says besides who sends it.
#[derive(Clone, Debug)]
pub struct Health {
    pub model_version: Option<String>,
    pub model: Option<Running>,
    pub spool: SpoolDepth,
    pub detect: DetectStatus,
    pub security: SecurityCounts,
    /// `None` for an uplink run without a pipeline around it.
    pub stages: Option<Liveness>,
    pub link: LinkCounts,
    pub alarm: AlarmHealth,
    pub certificate_expires_ms: Option<i64>,
}

impl Status {
    pub fn online(thing: &str, health: Health) -> Self {
        Status {
            format: "vigil.status/1",
            thing: thing.to_owned(),
            state: "online",
            agent_version: Some(env!("CARGO_PKG_VERSION")),
            model_version: health.model_version,
            model: health.model,
            spool: Some(health.spool),
            detect: Some(health.detect),
            security: Some(health.security),
            stages: health.stages,
            link: Some(health.link),
            alarm: Some(health.alarm),
            certificate_expires_ms: health.certificate_expires_ms,
            at_ms: Some(now_ms()),
        }
    }

    /// The Last Will: registered at connect, so it carries no time or depth.
    pub fn offline(thing: &str) -> Self {
        Status {
            format: "vigil.status/1",
            thing: thing.to_owned(),
            state: "offline",
            agent_version: Some(env!("CARGO_PKG_VERSION")),
            model_version: None,
            model: None,
            spool: None,
            detect: None,
            security: None,
            stages: None,
            link: None,
            alarm: None,
            certificate_expires_ms: None,
            at_ms: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a status always serialises")
    }
}

/// The detect stage's status as the fleet reads it: its coverage with the share of the
/// signal-ticks the model abstained on (absent before it could run at all).
fn detect_message<S: serde::Serializer>(
    detect: &Option<DetectStatus>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Coverage<'a> {
        #[serde(flatten)]
        counts: &'a ModelCoverage,
        #[serde(skip_serializing_if = "Option::is_none")]
        abstained_share: Option<f64>,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        model: Coverage<'a>,
        unsupported: &'a [crate::reading::Signal],
        senders: &'a [crate::detect::Senders],
        origins_refused: u64,
    }
    let Some(detect) = detect else {
        return serializer.serialize_none();
    };
    // Every field named, so a new one is a compile error here rather than missing.
    let DetectStatus {
        model,
        unsupported,
        senders,
        origins_refused,
    } = detect;
    let abstained_share = (model.ticks > 0)
        .then(|| (model.abstained as f64 / model.ticks as f64 * 1e4).round() / 1e4);
    Message {
        model: Coverage {
            counts: model,
            abstained_share,
        },
        unsupported,
        senders,
        origins_refused: *origins_refused,
    }
    .serialize(serializer)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: Vec<u8>) -> Record {
        Record {
            seq: 42,
            kind: RecordKind::Readings,
            boot_id: 7,
            created_ms: 0,
            recovered: false,
            payload,
        }
    }

    #[test]
    fn the_online_status_reports_stages_spool_age_link_and_the_abstention_share() {
        let health = Health {
            model_version: Some("2.3.0".into()),
            model: None,
            spool: SpoolDepth {
                records: 3,
                bytes: 300,
                alerts: 1,
                oldest_age_ms: 4200,
                memory_only: false,
                evicted: 0,
                quarantined: 0,
                store_failures: 0,
                append_failures: 0,
            },
            detect: DetectStatus {
                model: ModelCoverage {
                    ticks: 3,
                    abstained: 1,
                    masked: 0,
                    signals: vec![crate::reading::Signal::new(
                        "Vehicle.Exterior.AirTemperature",
                    )],
                },
                ..DetectStatus::default()
            },
            security: SecurityCounts {
                events: 0,
                findings: 0,
                tp_sessions_refused: 0,
            },
            stages: Some(Liveness {
                started: 9,
                alive: 8,
                dead: vec!["display"],
            }),
            link: LinkCounts {
                connects: 2,
                disconnects: 1,
                connect_failures: 5,
                since_ms: 1_700_000_000_000,
            },
            alarm: AlarmHealth {
                devices_unavailable: 0,
            },
            certificate_expires_ms: None,
        };
        let status: serde_json::Value =
            serde_json::from_slice(&Status::online("truck-7", health.clone()).to_bytes()).unwrap();
        assert_eq!(
            status["stages"],
            serde_json::json!({"started": 9, "alive": 8, "dead": ["display"]})
        );
        assert_eq!(status["spool"]["oldest_age_ms"], 4200);
        assert_eq!(
            status["link"],
            serde_json::json!({"connects": 2, "disconnects": 1, "connect_failures": 5, "since_ms": 1_700_000_000_000_i64})
        );
        assert_eq!(
            status["detect"]["model"],
            serde_json::json!({"ticks": 3, "abstained": 1, "masked": 0, "abstained_share": 0.3333,
                "signals": ["Vehicle.Exterior.AirTemperature"]})
        );
        assert_eq!(status["detect"]["unsupported"], serde_json::json!([]));
        // Before the model could run there is no share to give.
        let fresh = Health {
            detect: DetectStatus::default(),
            stages: None,
            ..health
        };
        let status: serde_json::Value =
            serde_json::from_slice(&Status::online("truck-7", fresh).to_bytes()).unwrap();
        assert_eq!(
            status["detect"]["model"],
            serde_json::json!({"ticks": 0, "abstained": 0, "masked": 0, "signals": []})
        );
        assert!(status.get("stages").is_none());
        let offline: serde_json::Value =
            serde_json::from_slice(&Status::offline("truck-7").to_bytes()).unwrap();
        assert!(offline.get("detect").is_none() && offline.get("link").is_none());
    }

    #[test]
    fn the_identity_is_added_at_publish_time() {
        let topics = Topics::new("truck-7");
        let r = record(stored(Stream::Readings, br#"{"format":"x"}"#));
        let (topic, bytes) = publication(&r, &topics).unwrap();
        assert_eq!(topic, "dt/vigil/truck-7/readings");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"thing":"truck-7","boot":7,"seq":42,"format":"x"}"#
        );
        let empty = record(stored(Stream::Dm1, b"{}"));
        let (_, bytes) = publication(&empty, &topics).unwrap();
        assert_eq!(bytes, br#"{"thing":"truck-7","boot":7,"seq":42}"#);
        assert!(publication(&record(vec![9, b'{', b'}']), &topics).is_none());
        // Read back from a quarantined store: marked, and still within the headroom.
        let recovered = Record {
            recovered: true,
            boot_id: u64::MAX,
            seq: u64::MAX,
            ..record(stored(Stream::Alerts, b"{}"))
        };
        let (_, bytes) = publication(&recovered, &topics).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with(r#","recovered":true}"#), "{text}");
        assert!(
            text.len() - 2 <= identity_headroom(topics.thing.len()),
            "{text}"
        );
    }
}
