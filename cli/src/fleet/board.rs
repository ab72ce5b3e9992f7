//! The fleet board: what the watcher knows of every truck, built only from the messages the
//! trucks publish. Pure: a message (topic, payload, whether it was retained, when it
//! arrived) goes in, the events it caused come out, and [`FleetBoard::rows`] gives the table.
//! No sockets, no clocks; the task passes the time in.
//!
//! It turns a stream that may repeat itself into one that does not: QoS 1 delivers a
//! message twice now and then, the agent re-publishes what was in flight after a reconnect,
//! and the broker replays every retained status on each (re)subscription. So:
//!
//! - an alert or DM1 message whose `(boot, seq)` was seen already is dropped;
//! - an alert that is cleared stays cleared (a late `raised` of the same `(boot, alert_id)`
//!   changes nothing);
//! - a status that says what the board already knows (online after online) is no event.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use vigil_agent::decode::dm1::{Dtc, LampState, Lamps};
use vigil_agent::detect::alert::{AlertKind, Severity};
use vigil_agent::signals;
use vigil_agent::uplink::readings;

/// The message ids remembered per truck to drop repeats. A repeat comes within the
/// agent's in-flight window (100 messages), so a few times that is plenty.
const RECENT_IDS: usize = 512;

/// What the watcher shows: one truck or all, and alerts from a severity up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub vehicle: Option<String>,
    /// `Warning` shows warnings and criticals; `Critical` only criticals. Truck online and
    /// offline events are always shown.
    pub min_severity: Option<Severity>,
}

impl Filter {
    fn admits_truck(&self, truck: &str) -> bool {
        self.vehicle.as_deref().is_none_or(|v| v == truck)
    }

    fn admits(&self, severity: Option<Severity>) -> bool {
        match (self.min_severity, severity) {
            (None, _) => true,
            (Some(min), Some(s)) => s >= min,
            (Some(_), None) => false,
        }
    }
}

/// Something that changed on a truck: one JSON line each with `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FleetEvent {
    AlertRaised(AlertChange),
    AlertEscalated(AlertChange),
    /// The incident gathered another finding (another rule or the model) at its severity.
    AlertUpdated(AlertChange),
    AlertCleared(AlertChange),
    TruckOnline {
        truck: String,
        at_ms: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent_version: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        model_version: Option<String>,
        /// The broker's retained status, replayed at subscription: the state the truck was
        /// already in, not a change seen live.
        retained: bool,
    },
    TruckOffline {
        truck: String,
        /// When the agent said so; for the Last Will (which carries no time), when the
        /// watcher heard it.
        at_ms: i64,
        retained: bool,
    },
    Dm1 {
        truck: String,
        at_ms: i64,
        origin: String,
        pgn: u32,
        /// From the lamps: red stop or engine protect lit is critical, amber or
        /// malfunction lit is a warning; once the codes clear it keeps the last one.
        #[serde(skip_serializing_if = "Option::is_none")]
        severity: Option<Severity>,
        lamps_on: Vec<&'static str>,
        dtcs: Vec<Dtc>,
    },
    /// A finding of the truck's bus intrusion monitor.
    Security {
        truck: String,
        at_ms: i64,
        kind: String,
        severity: Severity,
        bus: String,
        /// The senders involved, the suspect first.
        origins: Vec<String>,
        /// Findings the message covers (repeats are sent once a minute).
        count: u64,
        detail: String,
    },
}

impl FleetEvent {
    pub fn truck(&self) -> &str {
        match self {
            FleetEvent::AlertRaised(a)
            | FleetEvent::AlertEscalated(a)
            | FleetEvent::AlertUpdated(a)
            | FleetEvent::AlertCleared(a) => &a.truck,
            FleetEvent::TruckOnline { truck, .. }
            | FleetEvent::TruckOffline { truck, .. }
            | FleetEvent::Dm1 { truck, .. }
            | FleetEvent::Security { truck, .. } => truck,
        }
    }

    /// A truck coming or going: every severity filter shows it.
    pub fn is_presence(&self) -> bool {
        matches!(
            self,
            FleetEvent::TruckOnline { .. } | FleetEvent::TruckOffline { .. }
        )
    }

    /// `None` for a truck coming or going, and for a DM1 with no lamp lit.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            FleetEvent::AlertRaised(a)
            | FleetEvent::AlertEscalated(a)
            | FleetEvent::AlertUpdated(a)
            | FleetEvent::AlertCleared(a) => Some(a.severity),
            FleetEvent::Dm1 { severity, .. } => *severity,
            FleetEvent::Security { severity, .. } => Some(*severity),
            FleetEvent::TruckOnline { .. } | FleetEvent::TruckOffline { .. } => None,
        }
    }
}

/// An alert as the fleet sees it change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertChange {
    pub truck: String,
    pub signal: String,
    pub kind: String,
    pub severity: Severity,
    pub value: f64,
    pub threshold: f64,
    /// The statistic that crossed it (a rate of rise, a spread), when the alert has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub alert_id: u64,
    pub boot: u64,
    /// Raised or escalated: when it was raised; cleared: when it cleared.
    pub at_ms: i64,
    /// Where the truck was: the last known position the agent had at this event, and its
    /// age then; absent when the truck never had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Whereabouts>,
}

/// A position fix as the alert message carries it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Whereabouts {
    pub latitude: f64,
    pub longitude: f64,
    /// Wall-clock ms of the fix.
    pub at_ms: i64,
    /// Seconds from the fix to the alert event, on the truck's monotonic clock.
    pub age_s: f64,
}

impl Whereabouts {
    /// `48.13715,11.57538 +7s`: where, and how much older the fix was than the event.
    fn describe(&self) -> String {
        format!(
            "{} +{}",
            coordinates(self.latitude, self.longitude),
            super::render::age((self.age_s * 1000.0) as i64)
        )
    }
}

/// Degrees to five decimals (about a metre), latitude first, as maps take them.
fn coordinates(latitude: f64, longitude: f64) -> String {
    format!("{latitude:.5},{longitude:.5}")
}

/// Why a message changed nothing; the task logs it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("not a vigil topic (expected dt/vigil/<truck>/alerts|status|dm1|security|readings)")]
    Topic,
    #[error("unreadable {what} payload: {reason}")]
    Payload { what: &'static str, reason: String },
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub truck: String,
    /// What the row is about: the alert's VSS signal, the DM1 sender (`can0/sa00`), the
    /// security finding's suspect (a sender, or the bus); empty for the truck's own line.
    pub signal: String,
    /// The alert's kind (`high_limit`), `dm1`, or the security finding's kind
    /// (`address_hijack`); empty for the truck's own line.
    pub kind: String,
    pub severity: Option<Severity>,
    pub value: String,
    pub since_ms: i64,
    /// Where: an alert's position and its age at the alert; on the truck's own line its
    /// newest position from the readings; empty when unknown.
    pub position: String,
    pub state: RowState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    Online,
    /// The truck is offline: its own line, and alerts that were active when it went.
    Offline,
    Active,
    Cleared,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Online => "online",
            RowState::Offline => "offline",
            RowState::Active => "active",
            RowState::Cleared => "cleared",
        }
    }
}

#[derive(Deserialize)]
struct AlertMessage {
    boot: Option<u64>,
    seq: Option<u64>,
    event: String,
    alert_id: u64,
    signal: String,
    /// The sender of the reading (`can0/sa00`), when the agent names one.
    origin: Option<String>,
    kind: String,
    severity: String,
    value: f64,
    threshold: f64,
    score: Option<f64>,
    raised_at_ms: i64,
    cleared_at_ms: Option<i64>,
    /// Read on its own: an alert whose position cannot be read is still an alert.
    position: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StatusMessage {
    state: String,
    agent_version: Option<String>,
    model_version: Option<String>,
    at_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Dm1Message {
    boot: Option<u64>,
    seq: Option<u64>,
    at_ms: i64,
    origin: String,
    pgn: u32,
    lamps: Lamps,
    dtcs: Vec<Dtc>,
}

#[derive(Deserialize)]
struct SecurityMessage {
    boot: Option<u64>,
    seq: Option<u64>,
    at_ms: i64,
    kind: String,
    severity: String,
    bus: String,
    origins: Vec<String>,
    count: u64,
    detail: String,
}

/// The newest finding of one kind about one suspect, and how many there were.
#[derive(Clone, Debug)]
struct SecurityState {
    at_ms: i64,
    severity: Severity,
    count: u64,
    detail: String,
}

/// Security lines kept per truck; the oldest go first (a fuzzed bus makes many kinds).
const SECURITY_KEPT: usize = 16;

#[derive(Clone, Debug)]
struct AlertState {
    change: AlertChange,
    origin: Option<String>,
    raised_at_ms: i64,
    cleared: bool,
}

/// The newest good value of one (signal, origin) from the truck's readings, and when.
#[derive(Clone, Copy, Debug)]
struct Live {
    value: f64,
    at_ms: i64,
}

#[derive(Clone, Debug)]
struct Dm1State {
    at_ms: i64,
    severity: Option<Severity>,
    dtcs: Vec<Dtc>,
}

#[derive(Clone, Debug)]
struct Presence {
    online: bool,
    since_ms: i64,
    agent_version: Option<String>,
}

#[derive(Debug, Default)]
struct Truck {
    presence: Option<Presence>,
    /// The latest alert per (signal, kind).
    alerts: BTreeMap<(String, String), AlertState>,
    /// The latest DM1 per controller.
    dm1: BTreeMap<String, Dm1State>,
    /// The latest security finding per (kind, suspect or bus).
    security: BTreeMap<(String, String), SecurityState>,
    /// The newest reading per (signal, origin), for the value of an active alert.
    live: BTreeMap<(String, String), Live>,
    seen: HashSet<(u64, u64)>,
    seen_order: VecDeque<(u64, u64)>,
}

impl Truck {
    /// True the first time `(boot, seq)` is seen; messages without an id always pass.
    fn first_time(&mut self, boot: Option<u64>, seq: Option<u64>) -> bool {
        let (Some(boot), Some(seq)) = (boot, seq) else {
            return true;
        };
        if !self.seen.insert((boot, seq)) {
            return false;
        }
        self.seen_order.push_back((boot, seq));
        while self.seen_order.len() > RECENT_IDS {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    fn offline(&self) -> bool {
        self.presence.as_ref().is_some_and(|p| !p.online)
    }

    /// The newest position in the readings: a latitude and longitude of one sender and time.
    fn position(&self) -> Option<(f64, f64)> {
        self.live
            .iter()
            .filter(|((s, _), _)| s == signals::LATITUDE)
            .filter_map(|((_, origin), lat)| {
                let lon = self
                    .live
                    .get(&(signals::LONGITUDE.to_owned(), origin.clone()))?;
                (lon.at_ms == lat.at_ms).then_some((lat.at_ms, lat.value, lon.value))
            })
            .max_by_key(|(at_ms, _, _)| *at_ms)
            .map(|(_, lat, lon)| (lat, lon))
    }

    /// The newest reading of `signal` from `origin` (from any sender when the alert names
    /// none) that is newer than `after_ms`.
    fn live(&self, signal: &str, origin: Option<&str>, after_ms: i64) -> Option<Live> {
        self.live
            .iter()
            .filter(|((s, o), _)| s == signal && origin.is_none_or(|origin| origin == o))
            .map(|(_, live)| *live)
            .filter(|live| live.at_ms > after_ms)
            .max_by_key(|live| live.at_ms)
    }
}

/// Everything the watcher knows, keyed by truck.
#[derive(Debug, Default)]
pub struct FleetBoard {
    filter: Filter,
    trucks: BTreeMap<String, Truck>,
}

/// The truck and the stream of a `dt/vigil/<truck>/<stream>` topic.
pub fn split_topic(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix("dt/vigil/")?;
    let (truck, stream) = rest.split_once('/')?;
    (!truck.is_empty() && !stream.contains('/')).then_some((truck, stream))
}

fn parse_severity(text: &str) -> Result<Severity, Ignored> {
    match text {
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        other => Err(Ignored::Payload {
            what: "alert",
            reason: format!("unknown severity {other:?}"),
        }),
    }
}

fn payload<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, Ignored> {
    serde_json::from_slice(bytes).map_err(|e| Ignored::Payload {
        what,
        reason: e.to_string(),
    })
}

/// The severity the lamps say, and the names of those lit.
fn lamps(l: &Lamps) -> (Option<Severity>, Vec<&'static str>) {
    let lit = [
        ("red_stop", l.red_stop, Severity::Critical),
        ("protect", l.protect, Severity::Critical),
        ("amber_warning", l.amber_warning, Severity::Warning),
        ("malfunction", l.malfunction, Severity::Warning),
    ];
    let on: Vec<_> = lit
        .iter()
        .filter(|(_, lamp, _)| lamp.state == LampState::On)
        .collect();
    let severity = on.iter().map(|(_, _, s)| *s).max();
    (severity, on.iter().map(|(name, _, _)| *name).collect())
}

impl FleetBoard {
    pub fn new(filter: Filter) -> Self {
        FleetBoard {
            filter,
            trucks: BTreeMap::new(),
        }
    }

    /// Takes one message; returns the events it caused that the filter shows.
    pub fn apply(
        &mut self,
        topic: &str,
        bytes: &[u8],
        retained: bool,
        received_ms: i64,
    ) -> Result<Vec<FleetEvent>, Ignored> {
        let (truck, stream) = split_topic(topic).ok_or(Ignored::Topic)?;
        if !self.filter.admits_truck(truck) {
            return Ok(Vec::new());
        }
        let events = match stream {
            "alerts" => self.alert(truck, payload("alert", bytes)?)?,
            "status" => self.status(truck, payload("status", bytes)?, retained, received_ms)?,
            "dm1" => self.dm1(truck, payload("DM1", bytes)?),
            "security" => self.security(truck, payload("security", bytes)?)?,
            "readings" => self.readings(truck, payload("readings", bytes)?)?,
            _ => return Err(Ignored::Topic),
        };
        Ok(events
            .into_iter()
            .filter(|e| e.is_presence() || self.filter.admits(e.severity()))
            .collect())
    }

    fn truck(&mut self, name: &str) -> &mut Truck {
        self.trucks.entry(name.to_owned()).or_default()
    }

    fn alert(&mut self, name: &str, m: AlertMessage) -> Result<Vec<FleetEvent>, Ignored> {
        let severity = parse_severity(&m.severity)?;
        let truck = self.truck(name);
        if !truck.first_time(m.boot, m.seq) {
            return Ok(Vec::new());
        }
        let boot = m.boot.unwrap_or(0);
        let key = (m.signal.clone(), m.kind.clone());
        let known = truck.alerts.get(&key);
        let same_alert =
            known.is_some_and(|a| a.change.boot == boot && a.change.alert_id == m.alert_id);
        if same_alert && known.is_some_and(|a| a.cleared) {
            // Cleared already: a late copy of its raise or escalation changes nothing.
            return Ok(Vec::new());
        }
        let mut change = AlertChange {
            truck: name.to_owned(),
            signal: m.signal,
            kind: m.kind,
            severity,
            value: m.value,
            threshold: m.threshold,
            score: m.score,
            alert_id: m.alert_id,
            boot,
            at_ms: m.raised_at_ms,
            position: m
                .position
                .and_then(|p| serde_json::from_value::<Whereabouts>(p).ok()),
        };
        let event = match m.event.as_str() {
            "raised" if same_alert => return Ok(Vec::new()),
            "raised" => FleetEvent::AlertRaised(change.clone()),
            "escalated" => FleetEvent::AlertEscalated(change.clone()),
            "updated" => FleetEvent::AlertUpdated(change.clone()),
            "cleared" => {
                change.at_ms = m.cleared_at_ms.unwrap_or(m.raised_at_ms);
                FleetEvent::AlertCleared(change.clone())
            }
            other => {
                return Err(Ignored::Payload {
                    what: "alert",
                    reason: format!("unknown event {other:?}"),
                });
            }
        };
        let cleared = matches!(event, FleetEvent::AlertCleared(_));
        truck.alerts.insert(
            key,
            AlertState {
                change,
                origin: m.origin,
                raised_at_ms: m.raised_at_ms,
                cleared,
            },
        );
        Ok(vec![event])
    }

    /// A batch of readings: no event, but the newest value of each series, which the table
    /// shows for an active alert on it (the alert message carries the value at its raise).
    fn readings(
        &mut self,
        name: &str,
        body: serde_json::Value,
    ) -> Result<Vec<FleetEvent>, Ignored> {
        let decoded = readings::decode(&body).map_err(|field| Ignored::Payload {
            what: "readings",
            reason: format!("bad or missing {field}"),
        })?;
        let truck = self.truck(name);
        for r in decoded {
            let Ok(value) = r.value else { continue };
            let live = truck.live.entry((r.signal, r.origin)).or_insert(Live {
                value,
                at_ms: r.wall_ms,
            });
            if r.wall_ms >= live.at_ms {
                *live = Live {
                    value,
                    at_ms: r.wall_ms,
                };
            }
        }
        Ok(Vec::new())
    }

    fn status(
        &mut self,
        name: &str,
        m: StatusMessage,
        retained: bool,
        received_ms: i64,
    ) -> Result<Vec<FleetEvent>, Ignored> {
        let online = match m.state.as_str() {
            "online" => true,
            "offline" => false,
            other => {
                return Err(Ignored::Payload {
                    what: "status",
                    reason: format!("unknown state {other:?}"),
                });
            }
        };
        let truck = self.truck(name);
        if truck.presence.as_ref().is_some_and(|p| p.online == online) {
            return Ok(Vec::new());
        }
        let at_ms = m.at_ms.unwrap_or(received_ms);
        truck.presence = Some(Presence {
            online,
            since_ms: at_ms,
            agent_version: m.agent_version.clone(),
        });
        let truck = name.to_owned();
        Ok(vec![if online {
            FleetEvent::TruckOnline {
                truck,
                at_ms,
                agent_version: m.agent_version,
                model_version: m.model_version,
                retained,
            }
        } else {
            FleetEvent::TruckOffline {
                truck,
                at_ms,
                retained,
            }
        }])
    }

    fn dm1(&mut self, name: &str, m: Dm1Message) -> Vec<FleetEvent> {
        let truck = self.truck(name);
        if !truck.first_time(m.boot, m.seq) {
            return Vec::new();
        }
        let (lit, lamps_on) = lamps(&m.lamps);
        let previous = truck.dm1.get(&m.origin).and_then(|d| d.severity);
        // Codes gone and lamps off: the controller's faults cleared; the event keeps the
        // severity they had, so a filter that showed them shows them go.
        let severity = if m.dtcs.is_empty() && lit.is_none() {
            previous
        } else {
            lit
        };
        truck.dm1.insert(
            m.origin.clone(),
            Dm1State {
                at_ms: m.at_ms,
                severity,
                dtcs: m.dtcs.clone(),
            },
        );
        vec![FleetEvent::Dm1 {
            truck: name.to_owned(),
            at_ms: m.at_ms,
            origin: m.origin,
            pgn: m.pgn,
            severity,
            lamps_on,
            dtcs: m.dtcs,
        }]
    }

    fn security(&mut self, name: &str, m: SecurityMessage) -> Result<Vec<FleetEvent>, Ignored> {
        let severity = parse_severity(&m.severity)?;
        let truck = self.truck(name);
        if !truck.first_time(m.boot, m.seq) {
            return Ok(Vec::new());
        }
        let suspect = m.origins.first().cloned().unwrap_or_else(|| m.bus.clone());
        let key = (m.kind.clone(), suspect);
        let count = truck.security.get(&key).map_or(0, |s| s.count) + m.count;
        truck.security.insert(
            key,
            SecurityState {
                at_ms: m.at_ms,
                severity,
                count,
                detail: m.detail.clone(),
            },
        );
        while truck.security.len() > SECURITY_KEPT {
            let oldest = truck
                .security
                .iter()
                .min_by_key(|(_, s)| s.at_ms)
                .map(|(k, _)| k.clone());
            oldest.map(|k| truck.security.remove(&k));
        }
        Ok(vec![FleetEvent::Security {
            truck: name.to_owned(),
            at_ms: m.at_ms,
            kind: m.kind,
            severity,
            bus: m.bus,
            origins: m.origins,
            count: m.count,
            detail: m.detail,
        }])
    }

    /// The table: per truck (by name) its own line, then its alerts, DM1s and security
    /// findings, those the filter shows.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (name, truck) in &self.trucks {
            let offline = truck.offline();
            let (state, since_ms, value) = match &truck.presence {
                Some(p) => (
                    if p.online {
                        RowState::Online
                    } else {
                        RowState::Offline
                    },
                    p.since_ms,
                    p.agent_version
                        .as_deref()
                        .map(|v| format!("agent {v}"))
                        .unwrap_or_default(),
                ),
                // Heard from only through alerts so far (its status is not retained).
                None => (RowState::Online, 0, String::new()),
            };
            if truck.presence.is_some() {
                rows.push(Row {
                    truck: name.clone(),
                    signal: String::new(),
                    kind: String::new(),
                    severity: None,
                    value,
                    since_ms,
                    position: truck
                        .position()
                        .map(|(lat, lon)| coordinates(lat, lon))
                        .unwrap_or_default(),
                    state,
                });
            }
            let mut alerts = Vec::new();
            for a in truck.alerts.values() {
                let c = &a.change;
                // While it is active, the newest reading since the alert's last message;
                // the value the message carried before any comes, and once it cleared.
                let value = match a.cleared {
                    false => truck.live(&c.signal, a.origin.as_deref(), c.at_ms),
                    true => None,
                }
                .map_or(c.value, |live| live.value);
                alerts.push(Row {
                    truck: name.clone(),
                    signal: c.signal.clone(),
                    kind: c.kind.clone(),
                    severity: Some(c.severity),
                    value: match AlertKind::from_name(&c.kind) {
                        Some(kind) => kind.describe(value, c.threshold, c.score),
                        // A kind newer than this watcher: the numbers as sent.
                        None => format!("{:.1} {} {:.1}", value, c.kind, c.threshold),
                    },
                    since_ms: if a.cleared { c.at_ms } else { a.raised_at_ms },
                    position: c.position.map(|p| p.describe()).unwrap_or_default(),
                    state: match (a.cleared, offline) {
                        (true, _) => RowState::Cleared,
                        (false, true) => RowState::Offline,
                        (false, false) => RowState::Active,
                    },
                });
            }
            for (origin, d) in &truck.dm1 {
                let codes: Vec<String> = d
                    .dtcs
                    .iter()
                    .map(|c| format!("SPN {} FMI {}", c.spn, c.fmi))
                    .collect();
                alerts.push(Row {
                    truck: name.clone(),
                    signal: origin.clone(),
                    kind: "dm1".into(),
                    severity: d.severity,
                    value: if codes.is_empty() {
                        "no codes".into()
                    } else {
                        codes.join(", ")
                    },
                    since_ms: d.at_ms,
                    position: String::new(),
                    state: match (d.dtcs.is_empty(), offline) {
                        (true, _) => RowState::Cleared,
                        (false, true) => RowState::Offline,
                        (false, false) => RowState::Active,
                    },
                });
            }
            for ((kind, suspect), f) in &truck.security {
                alerts.push(Row {
                    truck: name.clone(),
                    signal: suspect.clone(),
                    kind: kind.clone(),
                    severity: Some(f.severity),
                    value: if f.count > 1 {
                        format!("x{} {}", f.count, f.detail)
                    } else {
                        f.detail.clone()
                    },
                    since_ms: f.at_ms,
                    // The monitor's messages carry no position; the truck's line has it.
                    position: String::new(),
                    // A finding is an event, not a state: it stays on the board as seen.
                    state: if offline {
                        RowState::Offline
                    } else {
                        RowState::Active
                    },
                });
            }
            rows.extend(
                alerts
                    .into_iter()
                    .filter(|r| self.filter.admits(r.severity)),
            );
        }
        rows
    }

    /// Trucks known, and those of them offline.
    pub fn counts(&self) -> (usize, usize) {
        let offline = self.trucks.values().filter(|t| t.offline()).count();
        (self.trucks.len(), offline)
    }
}
