//! Incidents: what the driver hears and the fleet receives. One fault trips several
//! findings (a tank fire is over its limit, rising too fast and far from the forecast, and
//! the forecast finding comes and goes while the fire burns); the driver must hear it once.
//!
//! The findings of one stream (a signal from one origin) that share a [`Cause`] make one
//! incident. It is raised by its first finding (each finding has already held through its
//! own debounce), escalates when a finding is more severe than any before, gathers the
//! kinds of every finding that joined it (a kind it had not seen is an `Updated` event, for
//! the fleet: the driver is not woken again), and clears only once none of its findings has
//! been active for [`CLEAR_HOLD`]. Findings that come and go inside it say nothing new.
//!
//! Pure, like the detector: driven by the findings' own timestamps.

use std::collections::HashMap;
use std::time::Duration;

use super::alert::{Alert, AlertEvent, AlertKind};
use crate::reading::{Origin, Signal, Timestamp};

/// How long an incident's findings must all have been clear before it clears: a condition
/// that comes back within this is the same incident, not a new one.
pub const CLEAR_HOLD: Duration = Duration::from_secs(30);

/// What kind of trouble a finding points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The temperature itself: too high, rising too fast, not what the model expected.
    Temperature,
    /// The sensor or its sender: stuck, silent, flagged, spiking, disagreeing with its
    /// companion.
    Sensor,
    /// Two senders of the signal disagree.
    Senders,
}

impl Cause {
    pub fn of(kind: AlertKind) -> Cause {
        match kind {
            AlertKind::HighLimit
            | AlertKind::RateOfRise
            | AlertKind::AboveNormal
            | AlertKind::HeatLeak
            | AlertKind::Forecast
            | AlertKind::Drift => Cause::Temperature,
            AlertKind::StuckSensor
            | AlertKind::Dropout
            | AlertKind::SensorFault
            | AlertKind::OutOfRange
            | AlertKind::Spikes
            | AlertKind::Outliers
            | AlertKind::Inconsistent => Cause::Sensor,
            AlertKind::SenderConflict => Cause::Senders,
        }
    }
}

type Key = (Signal, Option<Origin>, Cause);

struct Incident {
    /// The incident as shown: its own id; the kind, value and limit of its most severe
    /// finding; every finding kind that joined it, in order.
    alert: Alert,
    /// The findings active now, by their ids.
    active: Vec<u64>,
    /// When its last active finding cleared.
    quiet_since: Option<Duration>,
}

/// Findings in, incidents out.
#[derive(Default)]
pub struct Incidents {
    open: HashMap<Key, Incident>,
    last_id: u64,
}

impl Incidents {
    /// Takes the findings' events; appends the incidents' events to `out`.
    pub fn feed(&mut self, findings: &mut Vec<AlertEvent>, out: &mut Vec<AlertEvent>) {
        for event in findings.drain(..) {
            let finding = event.alert();
            let key = (
                finding.signal.clone(),
                finding.origin.clone(),
                Cause::of(finding.kind),
            );
            match event {
                AlertEvent::Raised(f) | AlertEvent::Escalated(f) => {
                    let Some(incident) = self.open.get_mut(&key) else {
                        self.last_id += 1;
                        let mut alert = f.clone();
                        alert.id = self.last_id;
                        alert.findings = vec![f.kind];
                        out.push(AlertEvent::Raised(alert.clone()));
                        self.open.insert(
                            key,
                            Incident {
                                alert,
                                active: vec![f.id],
                                quiet_since: None,
                            },
                        );
                        continue;
                    };
                    incident.quiet_since = None;
                    if !incident.active.contains(&f.id) {
                        incident.active.push(f.id);
                    }
                    let new_kind = !incident.alert.findings.contains(&f.kind);
                    if new_kind {
                        incident.alert.findings.push(f.kind);
                    }
                    if f.severity > incident.alert.severity {
                        let findings = std::mem::take(&mut incident.alert.findings);
                        incident.alert = Alert {
                            id: incident.alert.id,
                            raised_at: incident.alert.raised_at,
                            findings,
                            ..f
                        };
                        out.push(AlertEvent::Escalated(incident.alert.clone()));
                    } else if new_kind {
                        incident.alert.changed_at = f.changed_at;
                        out.push(AlertEvent::Updated(incident.alert.clone()));
                    }
                }
                // The detector's findings are raised, escalated and cleared, never updated.
                AlertEvent::Updated(_) => {}
                AlertEvent::Cleared { alert, cleared_at } => {
                    if let Some(incident) = self.open.get_mut(&key) {
                        incident.active.retain(|id| *id != alert.id);
                        if incident.active.is_empty() {
                            incident.quiet_since = Some(cleared_at.mono);
                        }
                    }
                }
            }
        }
    }

    /// Clears every incident whose findings have all been clear for [`CLEAR_HOLD`] at `now`.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<AlertEvent>) {
        let mut done: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, i)| i.quiet_since.is_some_and(|q| now.mono >= q + CLEAR_HOLD))
            .map(|(k, _)| k.clone())
            .collect();
        // Oldest first, so a run clears them in the same order every time.
        done.sort_by_key(|k| self.open[k].alert.id);
        for key in done {
            let incident = self.open.remove(&key).expect("listed above");
            out.push(AlertEvent::Cleared {
                alert: incident.alert,
                cleared_at: now,
            });
        }
    }

    /// Incidents raised and not yet cleared.
    pub fn active(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::Severity;
    use std::sync::Arc;

    fn at(secs: u64) -> Timestamp {
        Timestamp {
            wall_us: secs as i64 * 1_000_000,
            mono: Duration::from_secs(secs),
        }
    }

    fn finding(id: u64, kind: AlertKind, severity: Severity, secs: u64) -> Alert {
        Alert {
            id,
            signal: Signal::new("Vehicle.Cargo.Tank.Compartment1.Temperature"),
            origin: Some(Origin::Serial {
                port: Arc::from("/dev/ttyS1"),
            }),
            peer: None,
            kind,
            severity,
            value: 40.0 + secs as f64,
            threshold: 40.0,
            score: None,
            raised_at: at(secs),
            changed_at: at(secs),
            rule: "rules/1".into(),
            evidence: Vec::new(),
            findings: Vec::new(),
            position: None,
        }
    }

    fn step(incidents: &mut Incidents, secs: u64, mut findings: Vec<AlertEvent>) -> Vec<String> {
        let mut out = Vec::new();
        incidents.feed(&mut findings, &mut out);
        incidents.advance(at(secs), &mut out);
        out.iter()
            .map(|e| {
                let a = e.alert();
                let word = match e {
                    AlertEvent::Raised(_) => "raised",
                    AlertEvent::Escalated(_) => "escalated",
                    AlertEvent::Updated(_) => "updated",
                    AlertEvent::Cleared { .. } => "cleared",
                };
                format!(
                    "{word} #{} {} {} {:?}",
                    a.id, a.severity, a.kind, a.findings
                )
            })
            .collect()
    }

    #[test]
    fn one_fault_is_one_incident_that_escalates_and_clears_once() {
        use AlertKind::*;
        use Severity::*;
        let mut inc = Incidents::default();
        let raised = |f: Alert| AlertEvent::Raised(f);
        let cleared = |f: Alert, secs| AlertEvent::Cleared {
            alert: f,
            cleared_at: at(secs),
        };
        // A tank fire: the forecast notices first...
        let forecast = finding(1, Forecast, Warning, 10);
        assert_eq!(
            step(&mut inc, 10, vec![raised(forecast.clone())]),
            ["raised #1 warning forecast [Forecast]"]
        );
        // ...then the rate of rise (the fleet hears of it; the driver is not woken again)
        // and the limit; the forecast comes and goes meanwhile.
        let rate = finding(2, RateOfRise, Warning, 20);
        assert_eq!(
            step(&mut inc, 20, vec![raised(rate.clone())]),
            ["updated #1 warning forecast [Forecast, RateOfRise]"]
        );
        assert_eq!(
            step(&mut inc, 25, vec![cleared(forecast.clone(), 25)]),
            [] as [&str; 0]
        );
        let again = finding(3, Forecast, Warning, 27);
        assert_eq!(
            step(&mut inc, 27, vec![raised(again.clone())]),
            [] as [&str; 0]
        );
        let limit = finding(4, HighLimit, Critical, 40);
        assert_eq!(
            step(&mut inc, 40, vec![raised(limit.clone())]),
            ["escalated #1 critical high_limit [Forecast, RateOfRise, HighLimit]"]
        );
        // A sensor fault on the same stream is another incident.
        let stuck = finding(5, StuckSensor, Warning, 50);
        assert_eq!(
            step(&mut inc, 50, vec![raised(stuck)]),
            ["raised #2 warning stuck_sensor [StuckSensor]"]
        );
        // Every finding clears; the incident waits CLEAR_HOLD, and a finding that returns
        // inside it keeps it open.
        let all_clear = vec![
            cleared(rate, 100),
            cleared(again, 100),
            cleared(limit.clone(), 100),
        ];
        assert_eq!(step(&mut inc, 100, all_clear), [] as [&str; 0]);
        let back = finding(6, RateOfRise, Warning, 120);
        assert_eq!(
            step(&mut inc, 120, vec![raised(back.clone())]),
            [] as [&str; 0]
        );
        assert_eq!(
            step(&mut inc, 121, vec![cleared(back, 121)]),
            [] as [&str; 0]
        );
        assert_eq!(step(&mut inc, 150, vec![]), [] as [&str; 0]);
        assert_eq!(
            step(&mut inc, 151, vec![]),
            ["cleared #1 critical high_limit [Forecast, RateOfRise, HighLimit]"]
        );
        assert_eq!(inc.active(), 1, "the stuck sensor's incident is still open");
    }
}
