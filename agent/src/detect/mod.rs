//! Detect: watches readings and raises alerts.
//!
//! Owns the rules and one [`AlertState`] per (signal, kind). The [`Detector`] is a pure
//! struct (readings in, alert events out); only [`run`] touches channels. Time is the
//! readings' monotonic time, so a wall-clock jump cannot fire or stall a debounce.
//! Never blocks on anything but its output to the alarm, which never waits on the network.

pub mod alert;

use std::collections::HashMap;

use tokio::sync::{mpsc, watch};

use crate::config::tuning::Tuning;
use crate::config::{Config, Limit};
use crate::reading::{Reading, Signal};
use crate::signals::{COOLANT_TEMPERATURE, OIL_TEMPERATURE, tank_temperature};
use crate::telemetry::Metrics;
use alert::{AlertEvent, AlertKind, AlertState, Severity, Verdict};

/// The name and version alerts of the limit rule carry.
const LIMIT_RULE: &str = "limits/1";

/// A high limit on one signal.
#[derive(Clone, Copy, Debug, PartialEq)]
struct HighLimit {
    limit: Limit,
    hysteresis: f64,
}

impl HighLimit {
    fn judge(&self, value: f64) -> Verdict {
        let Limit { warning, critical } = self.limit;
        let (severity, threshold) = if value >= critical {
            (Some(Severity::Critical), critical)
        } else if value >= warning {
            (Some(Severity::Warning), warning)
        } else {
            (None, warning)
        };
        Verdict {
            severity,
            threshold,
            clear: value < warning - self.hysteresis,
        }
    }
}

/// Rules and alert states for one vehicle.
pub struct Detector {
    limits: HashMap<Signal, HighLimit>,
    states: HashMap<(Signal, AlertKind), AlertState>,
    debounce: std::time::Duration,
    last_id: u64,
}

impl Detector {
    pub fn new(config: &Config) -> Self {
        let detect = &config.detect;
        let hysteresis = detect.hysteresis;
        let engine = &detect.engine;
        let mut limits = HashMap::new();
        let mut add = |signal: Signal, warning, critical| {
            limits.insert(
                signal,
                HighLimit {
                    limit: Limit { warning, critical },
                    hysteresis,
                },
            );
        };
        add(
            Signal::new(COOLANT_TEMPERATURE),
            engine.coolant_warning,
            engine.coolant_critical,
        );
        add(
            Signal::new(OIL_TEMPERATURE),
            engine.oil_warning,
            engine.oil_critical,
        );
        let tank = config.tank_limit();
        for compartment in 1..=config.vehicle.compartments {
            add(tank_temperature(compartment), tank.warning, tank.critical);
        }
        Detector {
            limits,
            states: HashMap::new(),
            debounce: detect.debounce,
            last_id: 0,
        }
    }

    /// Judges one reading; returns the alert event it causes, if any.
    pub fn observe(&mut self, reading: &Reading) -> Option<AlertEvent> {
        let value = reading.value()?;
        let rule = self.limits.get(&reading.signal)?;
        let verdict = rule.judge(value);
        let key = (reading.signal.clone(), AlertKind::HighLimit);
        let state = self.states.entry(key).or_insert_with(|| {
            AlertState::new(
                reading.signal.clone(),
                AlertKind::HighLimit,
                LIMIT_RULE,
                self.debounce,
            )
        });
        state.observe(reading.at, value, verdict, &mut self.last_id)
    }

    /// Takes new limits and debounce (from the device shadow) without a restart. Alerts
    /// that are active stay active and clear by the new limits; the debounce applies to
    /// signals that had not been over a limit yet.
    pub fn retune(&mut self, tuning: &Tuning) {
        let engine = &tuning.detect.engine;
        let tank = tuning.detect.tank.get(&tuning.cargo).copied();
        for (signal, rule) in self.limits.iter_mut() {
            let limit = match signal.as_str() {
                COOLANT_TEMPERATURE => Limit {
                    warning: engine.coolant_warning,
                    critical: engine.coolant_critical,
                },
                OIL_TEMPERATURE => Limit {
                    warning: engine.oil_warning,
                    critical: engine.oil_critical,
                },
                _ => match tank {
                    Some(tank) => tank,
                    None => continue,
                },
            };
            *rule = HighLimit {
                limit,
                hysteresis: tuning.detect.hysteresis,
            };
        }
        self.debounce = tuning.detect.debounce;
    }

    /// How many alerts are active now.
    pub fn active(&self) -> usize {
        self.states.values().filter(|s| s.is_active()).count()
    }
}

/// The detect task: readings in until the channel closes; each alert event goes to the
/// driver's alarm (awaited: it is local and must not miss one) and to the fleet (never
/// awaited: a full outbound queue sheds and counts, so the fleet path cannot delay the cab).
/// A new [`Tuning`] (from the device shadow) is taken before the next reading is judged.
pub async fn run(
    mut detector: Detector,
    mut readings: mpsc::Receiver<Reading>,
    alarm: mpsc::Sender<AlertEvent>,
    fleet: mpsc::Sender<AlertEvent>,
    metrics: std::sync::Arc<Metrics>,
    mut tuning: watch::Receiver<Tuning>,
) {
    while let Some(reading) = readings.recv().await {
        if tuning.has_changed().unwrap_or(false) {
            detector.retune(&tuning.borrow_and_update());
        }
        let Some(event) = detector.observe(&reading) else {
            continue;
        };
        match &event {
            AlertEvent::Raised(a) => {
                Metrics::inc(&metrics.alerts_raised_total);
                tracing::warn!(event = "alert_raised", id = a.id, signal = %a.signal, severity = %a.severity, value = a.value, threshold = a.threshold);
            }
            AlertEvent::Escalated(a) => {
                tracing::warn!(event = "alert_escalated", id = a.id, signal = %a.signal, severity = %a.severity, value = a.value);
            }
            AlertEvent::Cleared { alert, .. } => {
                Metrics::inc(&metrics.alerts_cleared_total);
                tracing::info!(event = "alert_cleared", id = alert.id, signal = %alert.signal);
            }
        }
        if fleet.try_send(event.clone()).is_err() {
            Metrics::inc(&metrics.alerts_shed_total);
        }
        if alarm.send(event).await.is_err() {
            break;
        }
    }
    tracing::debug!(event = "detect_drained", active_alerts = detector.active());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Origin, Timestamp};
    use std::sync::Arc;
    use std::time::Duration;

    fn coolant(secs: u64, wall_us: i64, value: f64) -> Reading {
        Reading::good(
            Signal::new(COOLANT_TEMPERATURE),
            Timestamp {
                wall_us,
                mono: Duration::from_secs(secs),
            },
            value,
            Origin::Can {
                bus: Arc::from("can0"),
                source_address: 0,
            },
        )
    }

    #[test]
    fn an_overheating_engine_raises_a_warning_then_a_critical() {
        let mut d = Detector::new(&Config::embedded_default());
        let events: Vec<_> = [90.0, 104.0, 106.0, 106.5, 107.0, 111.0, 112.0]
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| d.observe(&coolant(i as u64, 0, v)))
            .collect();
        assert!(
            matches!(&events[0], AlertEvent::Raised(a) if a.severity == Severity::Warning && a.threshold == 105.0)
        );
        assert!(matches!(&events[1], AlertEvent::Escalated(a) if a.severity == Severity::Critical));
        assert_eq!(events.len(), 2);
        assert_eq!(d.active(), 1);
    }

    #[test]
    fn a_wall_clock_jump_does_not_shorten_the_debounce() {
        // The wall clock leaps a day forward between two samples one second apart: the
        // debounce (2 s) runs on monotonic time, so nothing is raised yet.
        let mut d = Detector::new(&Config::embedded_default());
        assert_eq!(d.observe(&coolant(0, 0, 108.0)), None);
        assert_eq!(d.observe(&coolant(1, 86_400_000_000, 108.0)), None);
        assert!(d.observe(&coolant(2, 86_400_000_000, 108.0)).is_some());
    }

    #[test]
    fn tank_limits_follow_the_cargo_class() {
        let mut config = Config::embedded_default();
        config.vehicle.cargo = crate::config::CargoClass::Lpg;
        let d = Detector::new(&config);
        assert_eq!(
            d.limits[&tank_temperature(3)].limit,
            Limit {
                warning: 45.0,
                critical: 50.0
            }
        );
        assert!(!d.limits.contains_key(&tank_temperature(4)));
    }

    #[test]
    fn retuning_changes_the_limits_without_a_restart() {
        let config = Config::embedded_default();
        let mut d = Detector::new(&config);
        let mut tuning = Tuning::of(&config);
        tuning.cargo = crate::config::CargoClass::Lpg;
        tuning.detect.engine.coolant_warning = 95.0;
        d.retune(&tuning);
        assert_eq!(
            d.limits[&Signal::new(COOLANT_TEMPERATURE)].limit.warning,
            95.0
        );
        assert_eq!(d.limits[&tank_temperature(1)].limit.warning, 45.0);
    }
}
