//! Alarm: what the driver hears and sees.
//!
//! Owns the [`Panel`], the pure state of the cab outputs: the active alerts, which one the
//! display shows (the most severe, then the newest) and the buzzer pattern. The task applies
//! alert events as they arrive and publishes the panel on a `watch` channel that the
//! outputs (the demo's terminal now, embedded-hal pins and a display later) render.
//!
//! Never waits on the network or the spool: its only input is the detect stage's channel
//! and its only output is a `watch`, which cannot block.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, watch};

use crate::detect::alert::{Alert, AlertEvent, Severity};

/// What the buzzer does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Buzzer {
    #[default]
    Silent,
    /// Slow beeps: something needs attention soon.
    Warning,
    /// Continuous fast beeps: stop safely now.
    Critical,
}

/// The state of the cab outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    /// Active alerts by id.
    active: BTreeMap<u64, Alert>,
}

impl Panel {
    pub fn apply(&mut self, event: &AlertEvent) {
        match event {
            AlertEvent::Raised(a) | AlertEvent::Escalated(a) => {
                self.active.insert(a.id, a.clone());
            }
            AlertEvent::Cleared { alert, .. } => {
                self.active.remove(&alert.id);
            }
        }
    }

    /// The alert the display shows: the most severe, and among those the newest.
    pub fn shown(&self) -> Option<&Alert> {
        self.active.values().max_by_key(|a| (a.severity, a.id))
    }

    pub fn buzzer(&self) -> Buzzer {
        match self.shown().map(|a| a.severity) {
            None => Buzzer::Silent,
            Some(Severity::Warning) => Buzzer::Warning,
            Some(Severity::Critical) => Buzzer::Critical,
        }
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }
}

/// The alarm task: applies alert events until the channel closes.
pub async fn run(mut alerts: mpsc::Receiver<AlertEvent>, panel: watch::Sender<Panel>) {
    while let Some(event) = alerts.recv().await {
        panel.send_modify(|p| p.apply(&event));
        let buzzer = panel.borrow().buzzer();
        tracing::info!(event = "alarm_changed", ?buzzer, shown = ?panel.borrow().shown().map(|a| a.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::AlertKind;
    use crate::reading::{Signal, Timestamp};
    use std::time::Duration;

    fn alert(id: u64, severity: Severity) -> Alert {
        Alert {
            id,
            signal: Signal::new("Vehicle.Cargo.Tank.Compartment1.Temperature"),
            kind: AlertKind::HighLimit,
            severity,
            value: 51.0,
            threshold: 50.0,
            raised_at: Timestamp {
                wall_us: 0,
                mono: Duration::ZERO,
            },
            rule: "test/1".into(),
            score: None,
            evidence: Vec::new(),
        }
    }

    #[test]
    fn the_display_shows_the_worst_alert_and_the_buzzer_follows_it() {
        let mut panel = Panel::default();
        assert_eq!(panel.buzzer(), Buzzer::Silent);
        panel.apply(&AlertEvent::Raised(alert(1, Severity::Critical)));
        panel.apply(&AlertEvent::Raised(alert(2, Severity::Warning)));
        assert_eq!(panel.shown().unwrap().id, 1);
        assert_eq!(panel.buzzer(), Buzzer::Critical);
        panel.apply(&AlertEvent::Cleared {
            alert: alert(1, Severity::Critical),
            cleared_at: alert(1, Severity::Critical).raised_at,
        });
        assert_eq!(panel.shown().unwrap().id, 2);
        assert_eq!(panel.buzzer(), Buzzer::Warning);
    }

    #[tokio::test]
    async fn the_task_publishes_every_change() {
        let (tx, rx) = mpsc::channel(4);
        let (panel_tx, mut panel_rx) = watch::channel(Panel::default());
        let task = tokio::spawn(run(rx, panel_tx));
        tx.send(AlertEvent::Raised(alert(7, Severity::Warning)))
            .await
            .unwrap();
        panel_rx.changed().await.unwrap();
        assert_eq!(panel_rx.borrow().buzzer(), Buzzer::Warning);
        drop(tx);
        task.await.unwrap();
    }
}
