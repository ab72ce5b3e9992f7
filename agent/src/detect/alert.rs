//! Alerts and the state machine that raises and clears them, one per (signal, origin, kind).
//!
//! Pure: it is driven by observations stamped with monotonic time and never reads a clock,
//! so tests step it through debounce and hysteresis exactly. It emits on edges only: one
//! `Raised` per activation, `Escalated` when the severity rises while active, one `Cleared`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::position::AlertPosition;
use crate::reading::{Origin, Signal, Timestamp};

/// How bad it is; the buzzer pattern and the fleet's routing follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// What raised an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A value beyond a configured hard limit.
    HighLimit,
    /// The value climbs faster than its class may (degC per minute over the window).
    RateOfRise,
    /// The value has not changed at all for longer than a live sensor can hold still.
    StuckSensor,
    /// Nothing usable arrives any more.
    Dropout,
    /// The sender flags the value (not available, error) instead of sending one.
    SensorFault,
    /// A value outside what the sensor can physically read.
    OutOfRange,
    /// A value held above its normal operating band (a coolant the fan no longer holds).
    AboveNormal,
    /// A cargo tank trades heat with the air faster than its insulation lets it.
    HeatLeak,
    /// Single-tick jumps away from both neighbours and straight back keep recurring (a
    /// loose connector, EMI): a rule on the values themselves, so spikes are caught while
    /// the model abstains or is off.
    Spikes,
    /// The forecaster's standardised residual is beyond its threshold.
    Forecast,
    /// The forecaster's residuals lean one way for long (CUSUM): a slow drift.
    Drift,
    /// Single wild residuals keep recurring (spikes, a loose connector).
    Outliers,
    /// The value has stopped agreeing with what its companion says it should be (a coolant
    /// reading that drifts or sticks while the oil carries on).
    Inconsistent,
    /// Two senders of one signal disagree: a spoofed or misconfigured controller, or a
    /// failing one. The alert carries both origins.
    SenderConflict,
}

impl AlertKind {
    /// Every kind, in declaration order.
    pub const ALL: [AlertKind; 14] = [
        AlertKind::HighLimit,
        AlertKind::RateOfRise,
        AlertKind::StuckSensor,
        AlertKind::Dropout,
        AlertKind::SensorFault,
        AlertKind::OutOfRange,
        AlertKind::AboveNormal,
        AlertKind::HeatLeak,
        AlertKind::Spikes,
        AlertKind::Forecast,
        AlertKind::Drift,
        AlertKind::Outliers,
        AlertKind::Inconsistent,
        AlertKind::SenderConflict,
    ];

    /// The kind a message names (`high_limit`), as [`fmt::Display`] writes it.
    pub fn from_name(name: &str) -> Option<AlertKind> {
        Self::ALL.into_iter().find(|k| k.to_string() == name)
    }

    /// Whether the alert's value is a reading: a silent or flagged sensor has none.
    pub fn has_value(&self) -> bool {
        !matches!(self, AlertKind::Dropout | AlertKind::SensorFault)
    }

    /// What was crossed, in words a driver reads at a glance: at most 21 characters (the
    /// cab display's footer), never a model statistic dressed as a temperature. `threshold`
    /// and `score` are the alert's.
    pub fn in_words(&self, threshold: f64, score: Option<f64>) -> String {
        match self {
            AlertKind::HighLimit => format!("over {threshold:.0}°C limit"),
            AlertKind::AboveNormal => format!("above normal {threshold:.0}°C"),
            AlertKind::RateOfRise => match score {
                Some(rate) => format!("rising {rate:.1}°C/min"),
                None => "rising too fast".into(),
            },
            AlertKind::HeatLeak => "tank taking in heat".into(),
            AlertKind::Spikes => "readings spiking".into(),
            AlertKind::Forecast => "unexpected change".into(),
            AlertKind::Drift => "drifting from normal".into(),
            AlertKind::Outliers => "erratic readings".into(),
            AlertKind::Inconsistent => "disagrees w/ engine".into(),
            AlertKind::StuckSensor => "sensor stuck".into(),
            AlertKind::Dropout => "no signal".into(),
            AlertKind::SensorFault => "sensor reports fault".into(),
            AlertKind::OutOfRange => "impossible reading".into(),
            AlertKind::SenderConflict => "2 senders disagree".into(),
        }
    }

    /// The value and what was crossed, for a line of text: `41.2°C, over 40°C limit`,
    /// `--, no signal`. Temperatures are the only signals alerts are raised on.
    pub fn describe(&self, value: f64, threshold: f64, score: Option<f64>) -> String {
        let words = self.in_words(threshold, score);
        if self.has_value() {
            format!("{value:.1}°C, {words}")
        } else {
            format!("--, {words}")
        }
    }

    /// Kinds the forecaster raises (the others are rules).
    pub fn is_model(&self) -> bool {
        matches!(
            self,
            AlertKind::Forecast | AlertKind::Drift | AlertKind::Outliers | AlertKind::Inconsistent
        )
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlertKind::HighLimit => "high_limit",
            AlertKind::RateOfRise => "rate_of_rise",
            AlertKind::StuckSensor => "stuck_sensor",
            AlertKind::Dropout => "dropout",
            AlertKind::SensorFault => "sensor_fault",
            AlertKind::OutOfRange => "out_of_range",
            AlertKind::AboveNormal => "above_normal",
            AlertKind::HeatLeak => "heat_leak",
            AlertKind::Spikes => "spikes",
            AlertKind::Forecast => "forecast",
            AlertKind::Inconsistent => "inconsistent",
            AlertKind::Drift => "drift",
            AlertKind::Outliers => "outliers",
            AlertKind::SenderConflict => "sender_conflict",
        })
    }
}

/// One alert as the driver and the fleet see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Unique within one run of the agent.
    pub id: u64,
    pub signal: Signal,
    /// The controller (bus and source address) or port whose values raised it; `None` only
    /// for alerts built outside the detector (tests, tools).
    pub origin: Option<Origin>,
    /// For a `sender_conflict`, the other sender: the origin heard first.
    pub peer: Option<Origin>,
    pub kind: AlertKind,
    pub severity: Severity,
    /// The value that completed the debounce (or escalated it).
    pub value: f64,
    /// The limit it crossed (for the model: the threshold of its statistic).
    pub threshold: f64,
    /// The statistic that crossed it (residual score, CUSUM, outlier count, rate), if the
    /// kind has one beside the value.
    pub score: Option<f64>,
    pub raised_at: Timestamp,
    /// When it last changed: raised, or escalated since.
    pub changed_at: Timestamp,
    /// Which rule or model decided, with its version (`limits/1`, `model:NAME/VERSION`).
    pub rule: Arc<str>,
    /// The signal's last 10 s at 1 Hz when it was raised, oldest first (`null` for a gap).
    pub evidence: Vec<f64>,
    /// For an incident, the kinds of every finding that joined it, first first (its `kind`
    /// is the most severe one's); empty for a finding.
    pub findings: Vec<AlertKind>,
    /// Where the truck was: the last known position when the event left the detector,
    /// aged to the event's time; `None` when no position was ever seen.
    pub position: Option<AlertPosition>,
}

/// A change the detect stage reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AlertEvent {
    Raised(Alert),
    Escalated(Alert),
    /// An incident gathered a finding of a new kind at no higher severity: the fleet learns
    /// of it (say the tank is now over its limit too); the driver is not woken again.
    Updated(Alert),
    Cleared {
        alert: Alert,
        cleared_at: Timestamp,
    },
}

impl AlertEvent {
    /// When this event happened: the raise, the escalation or the clear.
    pub fn at(&self) -> Timestamp {
        match self {
            AlertEvent::Raised(a) | AlertEvent::Escalated(a) | AlertEvent::Updated(a) => {
                a.changed_at
            }
            AlertEvent::Cleared { cleared_at, .. } => *cleared_at,
        }
    }

    pub fn alert(&self) -> &Alert {
        match self {
            AlertEvent::Raised(a) | AlertEvent::Escalated(a) | AlertEvent::Updated(a) => a,
            AlertEvent::Cleared { alert, .. } => alert,
        }
    }

    pub fn alert_mut(&mut self) -> &mut Alert {
        match self {
            AlertEvent::Raised(a) | AlertEvent::Escalated(a) | AlertEvent::Updated(a) => a,
            AlertEvent::Cleared { alert, .. } => alert,
        }
    }
}

impl fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, a) = match self {
            AlertEvent::Raised(a) => ("RAISED", a),
            AlertEvent::Escalated(a) => ("ESCALATED", a),
            AlertEvent::Updated(a) => ("UPDATED", a),
            AlertEvent::Cleared { alert, .. } => ("CLEARED", alert),
        };
        write!(
            f,
            "ALERT {word} #{} {} {} {}: {}",
            a.id,
            a.severity,
            a.kind,
            a.signal,
            a.kind.describe(a.value, a.threshold, a.score)
        )?;
        match (&a.origin, &a.peer) {
            (Some(origin), Some(peer)) => write!(f, " from {origin} against {peer}")?,
            (Some(origin), None) => write!(f, " from {origin}")?,
            _ => {}
        }
        // An incident's findings, when it gathered more than its lead.
        if a.findings.len() > 1 {
            let kinds: Vec<String> = a.findings.iter().map(ToString::to_string).collect();
            write!(f, " [{}]", kinds.join(", "))?;
        }
        if let Some(p) = &a.position {
            write!(
                f,
                " at {:.5},{:.5} (fix {:.0} s old)",
                p.latitude, p.longitude, p.age_s
            )?;
        }
        Ok(())
    }
}

/// What a rule says of one observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// `None` when the value is inside every limit.
    pub severity: Option<Severity>,
    /// The limit of `severity` (or the lowest limit, when `None`).
    pub threshold: f64,
    /// Whether an active alert may clear: the value is back inside by the hysteresis.
    pub clear: bool,
    /// The statistic judged, for kinds that have one.
    pub score: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    /// Over a limit since `since`; raised once the debounce has passed.
    Pending {
        since: Duration,
    },
    /// Boxed: an alert is large beside the other phases, and states are many.
    Active(Box<Alert>),
}

/// The state machine for one (signal, origin, kind).
#[derive(Clone, Debug)]
pub struct AlertState {
    signal: Signal,
    origin: Option<Origin>,
    peer: Option<Origin>,
    kind: AlertKind,
    rule: Arc<str>,
    debounce: Duration,
    /// The least time from a clear to the next raise of the same (signal, kind).
    realert: Duration,
    /// Monotonic time before which nothing is raised again (the last clear + `realert`).
    quiet_until: Option<Duration>,
    phase: Phase,
}

impl AlertState {
    pub fn new(signal: Signal, kind: AlertKind, rule: Arc<str>, debounce: Duration) -> Self {
        AlertState {
            signal,
            origin: None,
            peer: None,
            kind,
            rule,
            debounce,
            realert: Duration::ZERO,
            quiet_until: None,
            phase: Phase::Idle,
        }
    }

    /// Sets the minimum re-alert interval: after a clear, the same (signal, kind) stays
    /// quiet this long even if the condition returns at once.
    pub fn with_realert(mut self, realert: Duration) -> Self {
        self.realert = realert;
        self
    }

    /// The origin whose values this state judges, and for a sender conflict the other one.
    pub fn with_origins(mut self, origin: Origin, peer: Option<Origin>) -> Self {
        self.origin = Some(origin);
        self.peer = peer;
        self
    }

    /// The rule or model this state judges for; a model swap changes it.
    pub fn set_rule(&mut self, rule: Arc<str>) {
        self.rule = rule;
    }

    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active(_))
    }

    /// Forgets a debounce under way (the data it ran on was interrupted); an active alert
    /// stays.
    pub fn interrupt(&mut self) {
        if matches!(self.phase, Phase::Pending { .. }) {
            self.phase = Phase::Idle;
        }
    }

    /// Feeds one verdict; `evidence` is the window a raised alert carries, `next_id`
    /// numbers a newly raised alert.
    pub fn observe(
        &mut self,
        at: Timestamp,
        value: f64,
        verdict: Verdict,
        evidence: &[f64],
        next_id: &mut u64,
    ) -> Option<AlertEvent> {
        match (&mut self.phase, verdict.severity) {
            (Phase::Idle, None) => None,
            (Phase::Idle, Some(_)) => {
                self.phase = Phase::Pending { since: at.mono };
                self.raise_if_debounced(at, value, verdict, evidence, next_id)
            }
            (Phase::Pending { .. }, None) => {
                self.phase = Phase::Idle;
                None
            }
            (Phase::Pending { .. }, Some(_)) => {
                self.raise_if_debounced(at, value, verdict, evidence, next_id)
            }
            (Phase::Active(alert), Some(severity)) if severity > alert.severity => {
                alert.severity = severity;
                alert.changed_at = at;
                alert.value = value;
                alert.threshold = verdict.threshold;
                alert.score = verdict.score;
                alert.evidence = evidence.to_vec();
                Some(AlertEvent::Escalated((**alert).clone()))
            }
            (Phase::Active(_), _) if verdict.clear => {
                let Phase::Active(alert) = std::mem::replace(&mut self.phase, Phase::Idle) else {
                    unreachable!("matched Active above");
                };
                self.quiet_until = Some(at.mono + self.realert);
                Some(AlertEvent::Cleared {
                    alert: *alert,
                    cleared_at: at,
                })
            }
            (Phase::Active(_), _) => None,
        }
    }

    fn raise_if_debounced(
        &mut self,
        at: Timestamp,
        value: f64,
        verdict: Verdict,
        evidence: &[f64],
        next_id: &mut u64,
    ) -> Option<AlertEvent> {
        let Phase::Pending { since } = self.phase else {
            return None;
        };
        if at.mono.saturating_sub(since) < self.debounce
            || self.quiet_until.is_some_and(|q| at.mono < q)
        {
            return None;
        }
        *next_id += 1;
        let alert = Alert {
            id: *next_id,
            signal: self.signal.clone(),
            origin: self.origin.clone(),
            peer: self.peer.clone(),
            kind: self.kind,
            severity: verdict.severity?,
            value,
            threshold: verdict.threshold,
            score: verdict.score,
            raised_at: at,
            changed_at: at,
            rule: self.rule.clone(),
            evidence: evidence.to_vec(),
            findings: Vec::new(),
            position: None,
        };
        self.phase = Phase::Active(Box::new(alert.clone()));
        Some(AlertEvent::Raised(alert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_name_and_words_that_fit_the_display() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::from_name(&kind.to_string()), Some(kind));
            for (threshold, score) in [(-273.0, Some(-999.9)), (135.0, None), (40.0, Some(2.5))] {
                let words = kind.in_words(threshold, score);
                assert!(words.chars().count() <= 21, "{kind}: {words:?}");
            }
        }
        assert_eq!(AlertKind::from_name("meltdown"), None);
        assert_eq!(
            AlertKind::RateOfRise.in_words(2.0, Some(3.26)),
            "rising 3.3°C/min"
        );
        assert_eq!(AlertKind::HighLimit.in_words(40.0, None), "over 40°C limit");
        // The spike rule is a rule: it runs, and names itself, with no model at all.
        assert_eq!(AlertKind::from_name("spikes"), Some(AlertKind::Spikes));
        assert!(!AlertKind::Spikes.is_model());
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp {
            wall_us: 0,
            mono: Duration::from_secs(secs),
        }
    }

    fn over(severity: Severity) -> Verdict {
        Verdict {
            severity: Some(severity),
            threshold: 105.0,
            clear: false,
            score: None,
        }
    }

    const INSIDE: Verdict = Verdict {
        severity: None,
        threshold: 105.0,
        clear: false,
        score: None,
    };
    const CLEAR: Verdict = Verdict {
        severity: None,
        threshold: 105.0,
        clear: true,
        score: None,
    };

    /// Steps a state machine through (second, verdict) pairs and names what it emitted.
    fn check(steps: &[(u64, Verdict)], expected: &[(u64, &str)]) {
        check_with(Duration::ZERO, steps, expected)
    }

    fn check_with(realert: Duration, steps: &[(u64, Verdict)], expected: &[(u64, &str)]) {
        let mut state = AlertState::new(
            Signal::new("x"),
            AlertKind::HighLimit,
            Arc::from("test/1"),
            Duration::from_secs(2),
        )
        .with_realert(realert);
        let mut id = 0;
        let emitted: Vec<(u64, String)> = steps
            .iter()
            .filter_map(|&(t, v)| {
                state.observe(at(t), 106.0, v, &[], &mut id).map(|e| {
                    let word = match e {
                        AlertEvent::Raised(a) => format!("raised {}", a.severity),
                        AlertEvent::Escalated(a) => format!("escalated {}", a.severity),
                        AlertEvent::Updated(_) => unreachable!("a state never updates"),
                        AlertEvent::Cleared { .. } => "cleared".into(),
                    };
                    (t, word)
                })
            })
            .collect();
        let expected: Vec<(u64, String)> =
            expected.iter().map(|&(t, w)| (t, w.to_owned())).collect();
        assert_eq!(emitted, expected);
    }

    #[test]
    fn a_single_spike_shorter_than_the_debounce_raises_nothing() {
        check(
            &[
                (0, over(Severity::Warning)),
                (1, INSIDE),
                (2, over(Severity::Warning)),
                (3, INSIDE),
            ],
            &[],
        );
    }

    #[test]
    fn raises_once_after_the_debounce_and_escalates_while_active() {
        check(
            &[
                (0, over(Severity::Warning)),
                (1, over(Severity::Warning)),
                (2, over(Severity::Warning)),
                (3, over(Severity::Warning)),
                (4, over(Severity::Critical)),
                (5, over(Severity::Critical)),
                (6, over(Severity::Warning)),
            ],
            &[(2, "raised warning"), (4, "escalated critical")],
        );
    }

    #[test]
    fn clears_only_past_the_hysteresis_then_can_rise_again() {
        check(
            &[
                (0, over(Severity::Warning)),
                (2, over(Severity::Warning)),
                (3, INSIDE),
                (4, CLEAR),
                (5, over(Severity::Critical)),
                (7, over(Severity::Critical)),
            ],
            &[
                (2, "raised warning"),
                (4, "cleared"),
                (7, "raised critical"),
            ],
        );
    }

    #[test]
    fn a_cleared_alert_stays_quiet_for_the_realert_interval() {
        let over = over(Severity::Warning);
        check_with(
            Duration::from_secs(10),
            &[
                (0, over),
                (2, over),
                (3, CLEAR),
                (4, over),
                (6, over),
                (12, over),
                (13, over),
            ],
            &[
                (2, "raised warning"),
                (3, "cleared"),
                (13, "raised warning"),
            ],
        );
    }
}
