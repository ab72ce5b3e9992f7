//! The detect task: the only part of detect that touches channels and a clock.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::alert::AlertEvent;
use super::window::HOLD;
use super::{DetectStatus, Detector, Live, Tuning};
use crate::reading::Reading;
use crate::telemetry::Metrics;

/// How often the task looks whether the readings have stopped.
const SILENCE_CHECK: Duration = Duration::from_secs(1);

/// What the detect stage shows besides alerts, each on a watch channel that moves at most
/// once a tick: the model's coverage and the parameters the truck does not send (for the
/// status message), and each stream's newest value (for the cab display).
pub struct Watches {
    pub status: watch::Sender<DetectStatus>,
    pub live: watch::Sender<Live>,
}

/// The detect task: batches of readings in until the channel closes; each alert event goes to the
/// driver's alarm (awaited: it is local and must not miss one) and to the fleet (never
/// awaited: a full outbound queue sheds and counts, so the fleet path cannot delay the cab).
/// A new [`Tuning`] (from the device shadow) is taken before the next reading is judged.
/// What the model covered, the parameters the truck does not send and each stream's newest
/// value go to `watches` whenever a tick changes them.
///
/// When no reading has come for longer than a value is held ([`HOLD`]), time still moves:
/// the detector is advanced on this task's clock, from the newest reading's time plus the
/// real time since it came, so a silent bus raises its dropout on time. Readings stamped
/// by the agent's clock (every live source) and a replay at real speed or faster never
/// arrive behind such an advance.
pub async fn run(
    mut detector: Detector,
    mut readings: mpsc::Receiver<Vec<Reading>>,
    alarm: mpsc::Sender<AlertEvent>,
    fleet: mpsc::Sender<AlertEvent>,
    metrics: std::sync::Arc<Metrics>,
    mut tuning: watch::Receiver<Tuning>,
    watches: Watches,
) {
    let Watches { status, live } = watches;
    let mut events = Vec::new();
    let mut silence = tokio::time::interval(SILENCE_CHECK);
    silence.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The newest reading's monotonic time, and when it came on this task's clock.
    let mut newest: Option<(Duration, Instant)> = None;
    let mut judged = detector.next_tick();
    loop {
        tokio::select! {
            batch = readings.recv() => {
                let Some(batch) = batch else { break };
                if tuning.has_changed().unwrap_or(false) {
                    detector.retune(&tuning.borrow_and_update());
                }
                for reading in &batch {
                    detector.observe(reading, &mut events);
                }
                if let Some(last) = batch.last() {
                    newest = Some((last.at.mono, Instant::now()));
                }
            }
            _ = silence.tick() => {
                let Some((mono, came)) = newest else { continue };
                let quiet = came.elapsed();
                if quiet < HOLD {
                    continue;
                }
                detector.advance(mono + quiet, &mut events);
            }
        }
        // The status moves only when a tick was judged: at most once a second.
        if detector.next_tick() != judged {
            judged = detector.next_tick();
            let now = detector.status();
            status.send_if_modified(|shown| {
                let changed = *shown != now;
                if changed {
                    *shown = now;
                }
                changed
            });
            let now = detector.live();
            live.send_if_modified(|shown| {
                let changed = *shown != now;
                if changed {
                    *shown = now;
                }
                changed
            });
        }
        for event in events.drain(..) {
            match &event {
                AlertEvent::Raised(a) => {
                    Metrics::inc(&metrics.alerts_raised_total);
                    tracing::warn!(event = "alert_raised", id = a.id, signal = %a.signal, origin = ?a.origin.as_ref().map(ToString::to_string), kind = %a.kind, severity = %a.severity, value = a.value, threshold = a.threshold);
                }
                AlertEvent::Escalated(a) => {
                    tracing::warn!(event = "alert_escalated", id = a.id, signal = %a.signal, kind = %a.kind, severity = %a.severity, value = a.value);
                }
                AlertEvent::Updated(a) => {
                    tracing::info!(event = "alert_updated", id = a.id, signal = %a.signal, findings = ?a.findings);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::detect::alert::AlertKind;
    use crate::detect::{DetectConfig, ModelHandle};
    use crate::reading::{Origin, Signal, Timestamp};
    use crate::signals::COOLANT_TEMPERATURE;
    use crate::vehicle::VehicleConfig;

    #[tokio::test(start_paused = true)]
    async fn a_silent_bus_raises_its_dropout_on_time() {
        let detect = DetectConfig::default();
        let detector = Detector::new(&VehicleConfig::default(), &detect, ModelHandle::new(None));
        let (readings_tx, readings) = mpsc::channel(16);
        let (alarm, mut raised) = mpsc::channel(16);
        let (fleet, _fleet) = mpsc::channel(16);
        let vehicle = VehicleConfig::default();
        let tuning = Tuning::new(&vehicle, &detect, Duration::from_secs(10));
        let (_tuning_tx, tuning) = watch::channel(tuning);
        let (status, _status) = watch::channel(DetectStatus::default());
        let (live, shown) = watch::channel(Live::default());
        let task = tokio::spawn(run(
            detector,
            readings,
            alarm,
            fleet,
            Arc::default(),
            tuning,
            Watches { status, live },
        ));
        let coolant = Signal::new(COOLANT_TEMPERATURE);
        let engine = Origin::Can {
            bus: Arc::from("can0"),
            source_address: 0,
        };
        // Ten seconds of coolant, one a second on the agent's clock, then the bus goes
        // silent and stays so: nothing more is sent and the channel stays open.
        let start = Instant::now();
        for secs in 0..10u64 {
            tokio::time::sleep_until(start + Duration::from_secs(secs)).await;
            if secs == 9 {
                // The ticks so far closed with the coolant at 85: the display's value.
                assert_eq!(shown.borrow().get(&coolant, &engine), Some(85.0));
            }
            let at = Timestamp {
                wall_us: 1_000_000 * secs as i64,
                mono: Duration::from_secs(secs),
            };
            let origin = Origin::Can {
                bus: Arc::from("can0"),
                source_address: 0,
            };
            readings_tx
                .send(vec![Reading::good(
                    Signal::new(COOLANT_TEMPERATURE),
                    at,
                    85.0,
                    origin,
                )])
                .await
                .unwrap();
        }
        let silent_at = start + Duration::from_secs(9);
        let event = raised
            .recv()
            .await
            .expect("an alert while the bus is silent");
        let alert = event.alert();
        assert_eq!(alert.kind, AlertKind::Dropout, "{event:?}");
        // Held for HOLD, gaps for `dropout_after`, then the debounce: all on this clock.
        let bound = HOLD + detect.rules.dropout_after + detect.debounce + 2 * SILENCE_CHECK;
        let took = Instant::now() - silent_at;
        assert!(took <= bound, "raised {took:?} after the bus went silent");
        let stamped = alert.raised_at.mono - Duration::from_secs(9);
        assert!(
            stamped <= took && took - stamped <= SILENCE_CHECK,
            "stamped {stamped:?} into the silence, raised {took:?} into it"
        );
        // Silent: the display has no value to show for it any more.
        assert_eq!(shown.borrow().get(&coolant, &engine), None);
        drop(readings_tx);
        task.await.unwrap();
    }
}
