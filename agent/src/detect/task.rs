//! The detect task: the only part of detect that touches channels.

use tokio::sync::{mpsc, watch};

use super::alert::AlertEvent;
use super::{Detector, Tuning};
use crate::reading::Reading;
use crate::telemetry::Metrics;

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
    let mut events = Vec::new();
    while let Some(reading) = readings.recv().await {
        if tuning.has_changed().unwrap_or(false) {
            detector.retune(&tuning.borrow_and_update());
        }
        detector.observe(&reading, &mut events);
        for event in events.drain(..) {
            match &event {
                AlertEvent::Raised(a) => {
                    Metrics::inc(&metrics.alerts_raised_total);
                    tracing::warn!(event = "alert_raised", id = a.id, signal = %a.signal, kind = %a.kind, severity = %a.severity, value = a.value, threshold = a.threshold);
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
                tracing::debug!(event = "detect_drained", active_alerts = detector.active());
                return;
            }
        }
    }
    tracing::debug!(event = "detect_drained", active_alerts = detector.active());
}
