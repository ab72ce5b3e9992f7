//! The panel's rules, and the alarm task driving mock pins over paused tokio time: the exact
//! pin transactions (embedded-hal-mock) at the exact moments (a recording wrapper).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};
use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::*;
use crate::detect::alert::{Alert, AlertEvent, AlertKind, Severity};
use crate::reading::{Signal, Timestamp};

pub(crate) fn alert(id: u64, severity: Severity) -> Alert {
    Alert {
        id,
        signal: Signal::new("Vehicle.Cargo.Tank.Compartment1.Temperature"),
        origin: None,
        peer: None,
        kind: AlertKind::HighLimit,
        severity,
        value: 51.0,
        threshold: 50.0,
        raised_at: Timestamp {
            wall_us: 0,
            mono: Duration::ZERO,
        },
        changed_at: Timestamp {
            wall_us: 0,
            mono: Duration::ZERO,
        },
        rule: "test/1".into(),
        score: None,
        evidence: Vec::new(),
        findings: Vec::new(),
        position: None,
    }
}

fn cleared(id: u64, severity: Severity) -> AlertEvent {
    AlertEvent::Cleared {
        alert: alert(id, severity),
        cleared_at: alert(id, severity).raised_at,
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
    panel.apply(&cleared(1, Severity::Critical));
    assert_eq!(panel.shown().unwrap().id, 2);
    assert_eq!(panel.buzzer(), Buzzer::Warning);
}

#[test]
fn acknowledging_silences_what_is_active_and_keeps_it_shown() {
    let mut panel = Panel::default();
    panel.apply(&AlertEvent::Raised(alert(1, Severity::Warning)));
    assert_eq!(panel.acknowledge(), 1);
    assert_eq!(panel.acknowledge(), 0, "nothing new to acknowledge");
    assert_eq!(panel.buzzer(), Buzzer::Silent);
    assert_eq!(panel.shown().map(|a| a.id), Some(1));
    assert!(panel.is_acknowledged(panel.shown().unwrap()));
}

#[test]
fn an_escalation_or_a_new_alert_sounds_again_after_an_acknowledgement() {
    let mut panel = Panel::default();
    panel.apply(&AlertEvent::Raised(alert(1, Severity::Warning)));
    panel.acknowledge();
    panel.apply(&AlertEvent::Escalated(alert(1, Severity::Critical)));
    assert_eq!(panel.buzzer(), Buzzer::Critical);
    panel.acknowledge();
    assert_eq!(panel.buzzer(), Buzzer::Silent);

    // A new warning sounds as a warning, although a critical (acknowledged) is shown.
    panel.apply(&AlertEvent::Raised(alert(2, Severity::Warning)));
    assert_eq!(panel.buzzer(), Buzzer::Warning);
    assert_eq!(panel.shown().map(|a| a.id), Some(1));

    // An alert that clears and rises again is a new alert (a new id) and sounds.
    panel.acknowledge();
    panel.apply(&cleared(2, Severity::Warning));
    panel.apply(&AlertEvent::Raised(alert(3, Severity::Warning)));
    assert_eq!(panel.buzzer(), Buzzer::Warning);
}

/// (ms since the test's start, level) of every write, shared with the test.
type Writes = Arc<Mutex<Vec<(u64, bool)>>>;

/// Records every write, and passes it on to a mock.
struct Timed {
    pin: Mock,
    start: Instant,
    writes: Writes,
}

impl Timed {
    fn new(expected: &[Transaction]) -> (Timed, Writes) {
        let writes = Arc::new(Mutex::new(vec![]));
        let pin = Timed {
            pin: Mock::new(expected),
            start: Instant::now(),
            writes: writes.clone(),
        };
        (pin, writes)
    }

    fn record(&self, level: bool) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.writes.lock().unwrap().push((ms, level));
    }
}

impl ErrorType for Timed {
    type Error = <Mock as ErrorType>::Error;
}

impl OutputPin for Timed {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.record(false);
        self.pin.set_low()
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.record(true);
        self.pin.set_high()
    }
}

/// A button pressed during the given windows (ms since the test's start); counts its reads.
struct ScriptedButton {
    start: Instant,
    pressed: Vec<(u64, u64)>,
    reads: Arc<Mutex<u64>>,
}

impl ErrorType for ScriptedButton {
    type Error = std::convert::Infallible;
}

impl InputPin for ScriptedButton {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        *self.reads.lock().unwrap() += 1;
        let ms = self.start.elapsed().as_millis() as u64;
        Ok(self.pressed.iter().any(|&(a, b)| (a..b).contains(&ms)))
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.is_high().map(|h| !h)
    }
}

/// One step of a script: at `ms`, send an event, or end (close the channel).
#[allow(clippy::large_enum_variant)] // a test script of a few steps
enum Step {
    Send(u64, AlertEvent),
    End(u64),
}

struct Run {
    writes: Vec<(u64, bool)>,
    button_reads: u64,
    panel: Panel,
}

/// Runs the alarm task over paused time with a buzzer expecting `expected` and a button
/// pressed during `presses` (no button: `None`), following `script`.
async fn run_script(
    expected: &[Transaction],
    presses: Option<&[(u64, u64)]>,
    script: Vec<Step>,
) -> Run {
    let start = Instant::now();
    let (pin, writes) = Timed::new(expected);
    let reads = Arc::new(Mutex::new(0));
    let button = presses.map(|presses| ScriptedButton {
        start,
        pressed: presses.to_vec(),
        reads: reads.clone(),
    });
    let (tx, rx) = mpsc::channel(8);
    let (panel_tx, panel_rx) = watch::channel(Panel::default());
    let task = tokio::spawn(run(
        rx,
        panel_tx,
        Some(BuzzerPin::new(pin)),
        button.map(|b| AckButton::new(b, Duration::from_millis(30))),
    ));
    let mut tx = Some(tx);
    for step in script {
        let at = match &step {
            Step::Send(ms, _) | Step::End(ms) => start + Duration::from_millis(*ms),
        };
        tokio::time::sleep_until(at).await;
        match step {
            Step::Send(_, event) => tx.as_ref().unwrap().send(event).await.unwrap(),
            Step::End(_) => drop(tx.take()),
        }
    }
    let (buzzer, _) = task.await.unwrap();
    let Timed { mut pin, .. } = buzzer.unwrap().destroy();
    pin.done();
    let writes = writes.lock().unwrap().clone();
    let button_reads = *reads.lock().unwrap();
    Run {
        writes,
        button_reads,
        panel: panel_rx.borrow().clone(),
    }
}

fn sets(levels: &[bool]) -> Vec<Transaction> {
    levels
        .iter()
        .map(|&l| Transaction::set(if l { State::High } else { State::Low }))
        .collect()
}

const H: bool = true;
const L: bool = false;

#[tokio::test(start_paused = true)]
async fn a_warning_chirps_200ms_every_2s_from_the_moment_it_is_raised() {
    let run = run_script(
        &sets(&[L, H, L, H, L, H, L]),
        Some(&[]),
        vec![
            Step::Send(1000, AlertEvent::Raised(alert(1, Severity::Warning))),
            Step::End(5100),
        ],
    )
    .await;
    assert_eq!(
        run.writes,
        [
            (0, L),
            (1000, H),
            (1200, L),
            (3000, H),
            (3200, L),
            (5000, H),
            (5100, L)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_critical_beeps_twice_a_second() {
    let run = run_script(
        &sets(&[L, H, L, H, L, H, L]),
        Some(&[]),
        vec![
            Step::Send(0, AlertEvent::Raised(alert(1, Severity::Critical))),
            Step::End(1100),
        ],
    )
    .await;
    assert_eq!(
        run.writes,
        [
            (0, L),
            (0, H),
            (250, L),
            (500, H),
            (750, L),
            (1000, H),
            (1100, L)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_press_silences_at_once_and_a_new_alert_sounds_again() {
    // Pressed at 100 ms, counted after the 30 ms debounce: the beep stops at 130 ms.
    let run = run_script(
        &sets(&[L, H, L, H, L]),
        Some(&[(100, 200)]),
        vec![
            Step::Send(0, AlertEvent::Raised(alert(1, Severity::Critical))),
            Step::Send(5000, AlertEvent::Raised(alert(2, Severity::Warning))),
            Step::End(5300),
        ],
    )
    .await;
    assert_eq!(run.writes, [(0, L), (0, H), (130, L), (5000, H), (5200, L)]);
    assert!(run.panel.is_acknowledged(&alert(1, Severity::Critical)));
    assert_eq!(run.panel.shown().map(|a| a.id), Some(1), "still shown");
}

#[tokio::test(start_paused = true)]
async fn an_acknowledged_warning_sounds_again_when_it_escalates() {
    // Acknowledged during its quiet phase (no write needed); the escalation beeps at once.
    let run = run_script(
        &sets(&[L, H, L, H, L, H, L]),
        Some(&[(300, 400)]),
        vec![
            Step::Send(0, AlertEvent::Raised(alert(1, Severity::Warning))),
            Step::Send(3000, AlertEvent::Escalated(alert(1, Severity::Critical))),
            Step::End(3600),
        ],
    )
    .await;
    assert_eq!(
        run.writes,
        [
            (0, L),
            (0, H),
            (200, L),
            (3000, H),
            (3250, L),
            (3500, H),
            (3600, L)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_button_held_down_before_the_alert_does_not_silence_it() {
    let run = run_script(
        &sets(&[L, H, L, H, L]),
        Some(&[(0, 10_000)]),
        vec![
            Step::Send(1000, AlertEvent::Raised(alert(1, Severity::Critical))),
            Step::End(1600),
        ],
    )
    .await;
    assert_eq!(
        run.writes,
        [(0, L), (1000, H), (1250, L), (1500, H), (1600, L)]
    );
    assert_eq!(run.panel.buzzer(), Buzzer::Critical);
}

#[tokio::test(start_paused = true)]
async fn a_clear_silences_and_the_button_is_not_read_while_silent() {
    let run = run_script(
        &sets(&[L, H, L]),
        Some(&[]),
        vec![
            Step::Send(0, AlertEvent::Raised(alert(1, Severity::Warning))),
            Step::Send(100, cleared(1, Severity::Warning)),
            Step::End(60_000),
        ],
    )
    .await;
    assert_eq!(run.writes, [(0, L), (0, H), (100, L)]);
    // Read every 10 ms while sounding (0 to 100 ms), never in the silent minute after.
    assert!(
        (10..=11).contains(&run.button_reads),
        "{}",
        run.button_reads
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_buzzer_write_is_retried_soon() {
    use embedded_hal_mock::eh1::MockError;
    let failed = MockError::Io(std::io::ErrorKind::Other);
    let run = run_script(
        &[
            Transaction::set(State::Low),
            Transaction::set(State::High).with_error(failed),
            Transaction::set(State::High),
            Transaction::set(State::Low),
        ],
        None,
        vec![
            Step::Send(0, AlertEvent::Raised(alert(1, Severity::Critical))),
            Step::End(300),
        ],
    )
    .await;
    assert_eq!(run.writes, [(0, L), (0, H), (100, H), (250, L)]);
}

#[tokio::test(start_paused = true)]
async fn a_buzzer_that_keeps_failing_is_tried_less_often_up_to_once_a_second() {
    use embedded_hal_mock::eh1::MockError;
    let failed = || MockError::Io(std::io::ErrorKind::NotFound);
    let run = run_script(
        &[
            Transaction::set(State::Low).with_error(failed()),
            Transaction::set(State::Low).with_error(failed()),
            Transaction::set(State::Low).with_error(failed()),
            Transaction::set(State::Low).with_error(failed()),
            Transaction::set(State::Low).with_error(failed()),
            Transaction::set(State::Low),
            Transaction::set(State::High),
            Transaction::set(State::Low),
        ],
        None,
        vec![
            Step::Send(3000, AlertEvent::Raised(alert(1, Severity::Critical))),
            Step::End(3100),
        ],
    )
    .await;
    assert_eq!(
        run.writes,
        [
            (0, L),
            (100, L),
            (300, L),
            (700, L),
            (1500, L),
            (2500, L),
            (3000, H),
            (3100, L)
        ]
    );
}

#[tokio::test]
async fn without_devices_the_task_still_publishes_every_change() {
    let (tx, rx) = mpsc::channel(4);
    let (panel_tx, mut panel_rx) = watch::channel(Panel::default());
    let task = tokio::spawn(run(
        rx,
        panel_tx,
        None::<BuzzerPin<DynOutputPin>>,
        None::<AckButton<DynInputPin>>,
    ));
    tx.send(AlertEvent::Raised(alert(7, Severity::Warning)))
        .await
        .unwrap();
    panel_rx.changed().await.unwrap();
    assert_eq!(panel_rx.borrow().buzzer(), Buzzer::Warning);
    drop(tx);
    task.await.unwrap();
}
