//! Alerts and the state machine that raises and clears them, one per (signal, kind).
//!
//! Pure: it is driven by observations stamped with monotonic time and never reads a clock,
//! so tests step it through debounce and hysteresis exactly. It emits on edges only: one
//! `Raised` per activation, `Escalated` when the severity rises while active, one `Cleared`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::reading::{Signal, Timestamp};

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
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlertKind::HighLimit => "high_limit",
        })
    }
}

/// One alert as the driver and the fleet see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Unique within one run of the agent.
    pub id: u64,
    pub signal: Signal,
    pub kind: AlertKind,
    pub severity: Severity,
    /// The value that completed the debounce (or escalated it).
    pub value: f64,
    /// The limit it crossed.
    pub threshold: f64,
    pub raised_at: Timestamp,
    /// Which rule or model decided, with its version.
    pub rule: &'static str,
}

/// A change the detect stage reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AlertEvent {
    Raised(Alert),
    Escalated(Alert),
    Cleared { alert: Alert, cleared_at: Timestamp },
}

impl AlertEvent {
    pub fn alert(&self) -> &Alert {
        match self {
            AlertEvent::Raised(a) | AlertEvent::Escalated(a) => a,
            AlertEvent::Cleared { alert, .. } => alert,
        }
    }
}

impl fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, a) = match self {
            AlertEvent::Raised(a) => ("RAISED", a),
            AlertEvent::Escalated(a) => ("ESCALATED", a),
            AlertEvent::Cleared { alert, .. } => ("CLEARED", alert),
        };
        write!(
            f,
            "ALERT {word} #{} {} {} {}: {:.1} (limit {:.1})",
            a.id, a.severity, a.kind, a.signal, a.value, a.threshold
        )
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
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    /// Over a limit since `since`; raised once the debounce has passed.
    Pending {
        since: Duration,
    },
    Active(Alert),
}

/// The state machine for one (signal, kind).
#[derive(Clone, Debug)]
pub struct AlertState {
    signal: Signal,
    kind: AlertKind,
    rule: &'static str,
    debounce: Duration,
    phase: Phase,
}

impl AlertState {
    pub fn new(signal: Signal, kind: AlertKind, rule: &'static str, debounce: Duration) -> Self {
        AlertState {
            signal,
            kind,
            rule,
            debounce,
            phase: Phase::Idle,
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active(_))
    }

    /// Feeds one verdict; `next_id` numbers a newly raised alert.
    pub fn observe(
        &mut self,
        at: Timestamp,
        value: f64,
        verdict: Verdict,
        next_id: &mut u64,
    ) -> Option<AlertEvent> {
        match (&mut self.phase, verdict.severity) {
            (Phase::Idle, None) => None,
            (Phase::Idle, Some(_)) => {
                self.phase = Phase::Pending { since: at.mono };
                self.raise_if_debounced(at, value, verdict, next_id)
            }
            (Phase::Pending { .. }, None) => {
                self.phase = Phase::Idle;
                None
            }
            (Phase::Pending { .. }, Some(_)) => {
                self.raise_if_debounced(at, value, verdict, next_id)
            }
            (Phase::Active(alert), Some(severity)) if severity > alert.severity => {
                alert.severity = severity;
                alert.value = value;
                alert.threshold = verdict.threshold;
                Some(AlertEvent::Escalated(alert.clone()))
            }
            (Phase::Active(_), _) if verdict.clear => {
                let Phase::Active(alert) = std::mem::replace(&mut self.phase, Phase::Idle) else {
                    unreachable!("matched Active above");
                };
                Some(AlertEvent::Cleared {
                    alert,
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
        next_id: &mut u64,
    ) -> Option<AlertEvent> {
        let Phase::Pending { since } = self.phase else {
            return None;
        };
        if at.mono.saturating_sub(since) < self.debounce {
            return None;
        }
        *next_id += 1;
        let alert = Alert {
            id: *next_id,
            signal: self.signal.clone(),
            kind: self.kind,
            severity: verdict.severity?,
            value,
            threshold: verdict.threshold,
            raised_at: at,
            rule: self.rule,
        };
        self.phase = Phase::Active(alert.clone());
        Some(AlertEvent::Raised(alert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    const INSIDE: Verdict = Verdict {
        severity: None,
        threshold: 105.0,
        clear: false,
    };
    const CLEAR: Verdict = Verdict {
        severity: None,
        threshold: 105.0,
        clear: true,
    };

    /// Steps a state machine through (second, verdict) pairs and names what it emitted.
    fn check(steps: &[(u64, Verdict)], expected: &[(u64, &str)]) {
        let mut state = AlertState::new(
            Signal::new("x"),
            AlertKind::HighLimit,
            "test/1",
            Duration::from_secs(2),
        );
        let mut id = 0;
        let emitted: Vec<(u64, String)> = steps
            .iter()
            .filter_map(|&(t, v)| {
                state.observe(at(t), 106.0, v, &mut id).map(|e| {
                    let word = match e {
                        AlertEvent::Raised(a) => format!("raised {}", a.severity),
                        AlertEvent::Escalated(a) => format!("escalated {}", a.severity),
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
}
