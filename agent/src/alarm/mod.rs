//! Alarm: what the driver hears and sees, at once, online or not.
//!
//! Owns the [`Panel`] (the pure state of the cab: the active alerts, which of them the driver
//! has acknowledged, which one the display shows, which buzzer pattern plays) and the cab's
//! devices, written against embedded-hal 1.0 traits in the family style:
//!
//! - [`buzzer`]: a buzzer on an `OutputPin`, its pattern per severity from [`pattern`];
//! - [`button`]: a debounced acknowledge button on an `InputPin`;
//! - [`screen`] and [`display`]: the screens, drawn with embedded-graphics on any
//!   `DrawTarget<Color = BinaryColor>` (a 128x64 SSD1306 on the gateway);
//! - [`devices`]: opening what `[alarm]` names (linux-embedded-hal on the gateway), and
//!   [`check`], the installer's `vigil alarm test`.
//!
//! Two tasks: [`run`] applies alert events, sounds the buzzer and reads the button; the
//! [`display::run`] task draws the panel and the link state, on its own so that a slow
//! display bus never delays a beep.
//!
//! # Invariants
//!
//! - Never waits on the network or the spool: its inputs are the detect stage's channel and
//!   the button pin; its output is a `watch`, which never blocks. The display reads the link
//!   state from a `watch` the pipeline fills, and never waits for it to change.
//! - Never sleeps between pin writes: the pattern is a pure state machine stepped by
//!   monotonic time, and the task waits on deadlines in `select!`.
//! - Acknowledging silences only what was active at that moment, at its severity: an
//!   escalation or a new alert sounds again. Acknowledged alerts stay on the display.
//! - The buzzer ends low: at start (a line left high by a previous run) and when the task
//!   ends.

pub(crate) mod button;
pub(crate) mod buzzer;
pub mod check;
mod config;
pub(crate) mod devices;
pub(crate) mod display;
pub(crate) mod pattern;
pub(crate) mod screen;

#[cfg(target_os = "linux")]
mod linux;

use std::collections::BTreeMap;
use std::time::Duration;

use embedded_hal::digital::{InputPin, OutputPin};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::detect::alert::{Alert, AlertEvent, Severity};
pub use button::AckButton;
pub use buzzer::BuzzerPin;
pub use config::{AlarmConfig, GpioLine, I2cDisplay};
pub use devices::{Devices, DynInputPin, DynOutputPin, OpenError};

/// What the buzzer does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Buzzer {
    #[default]
    Silent,
    /// A short chirp every two seconds: something needs attention soon.
    Warning,
    /// Fast beeps until acknowledged: stop safely now.
    Critical,
}

/// The uplink's and spool's state, as the display shows it when nothing is wrong. The
/// pipeline fills it; `None` is unknown (no uplink or spool running, or not reported yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Whether the broker connection is up.
    pub online: Option<bool>,
    /// Records waiting in the spool for the uplink.
    pub spool_depth: Option<u64>,
    /// The spool runs in memory: its disk is full or failing (lost if the agent stops).
    pub spool_in_memory: bool,
}

/// The state of the cab outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    /// Active alerts by id.
    active: BTreeMap<u64, Alert>,
    /// The severity at which the driver acknowledged each alert.
    acknowledged: BTreeMap<u64, Severity>,
}

impl Panel {
    pub fn apply(&mut self, event: &AlertEvent) {
        match event {
            AlertEvent::Raised(a) | AlertEvent::Escalated(a) | AlertEvent::Updated(a) => {
                self.active.insert(a.id, a.clone());
            }
            AlertEvent::Cleared { alert, .. } => {
                self.active.remove(&alert.id);
                self.acknowledged.remove(&alert.id);
            }
        }
    }

    /// The driver pressed the acknowledge button: every active alert is acknowledged at its
    /// current severity. Returns how many were not acknowledged before.
    pub fn acknowledge(&mut self) -> usize {
        let mut newly = 0;
        for a in self.active.values() {
            if !self.is_acknowledged(a) {
                newly += 1;
            }
            self.acknowledged.insert(a.id, a.severity);
        }
        newly
    }

    /// Whether the driver acknowledged this alert at (at least) its current severity.
    pub fn is_acknowledged(&self, alert: &Alert) -> bool {
        self.acknowledged
            .get(&alert.id)
            .is_some_and(|&at| at >= alert.severity)
    }

    /// The alert the display shows: the most severe, and among those the newest.
    /// Acknowledged alerts stay shown until they clear.
    pub fn shown(&self) -> Option<&Alert> {
        self.active.values().max_by_key(|a| (a.severity, a.id))
    }

    /// The pattern of the most severe alert the driver has not acknowledged.
    pub fn buzzer(&self) -> Buzzer {
        let unheard = self
            .active
            .values()
            .filter(|a| !self.is_acknowledged(a))
            .map(|a| a.severity)
            .max();
        match unheard {
            None => Buzzer::Silent,
            Some(Severity::Warning) => Buzzer::Warning,
            Some(Severity::Critical) => Buzzer::Critical,
        }
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// The active alerts, oldest first.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }
}

/// How often the acknowledge button is read while the buzzer sounds. It is not read while
/// silent: there is nothing to acknowledge, and an idle gateway should not wake 100 times a
/// second.
pub const BUTTON_POLL: Duration = Duration::from_millis(10);
/// How soon a failed buzzer write is tried again: at first soon (a glitch on the line), then
/// less often while it keeps failing (a missing buzzer, which
/// [`Devices::open_or_retry`] tries to open again), so a truck without its buzzer does not
/// wake ten times a second.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// The alarm task: applies alert events, plays the buzzer's pattern and reads the
/// acknowledge button until the alert channel closes, then silences the buzzer and gives
/// the devices back. Every pin access is a non-blocking register or ioctl write; waits are
/// deadlines in `select!` (tokio's paused time in tests).
pub async fn run<P, B>(
    mut alerts: mpsc::Receiver<AlertEvent>,
    panel: watch::Sender<Panel>,
    mut buzzer: Option<BuzzerPin<P>>,
    mut button: Option<AckButton<B>>,
) -> (Option<BuzzerPin<P>>, Option<AckButton<B>>)
where
    P: OutputPin,
    B: InputPin,
{
    let origin = Instant::now();
    let mut faults = Faults::default();
    // When the buzzer's level next changes, and when the button is next read (None: not
    // polling), both as time since `origin`.
    let mut buzzer_due = buzzer
        .as_mut()
        .and_then(|b| faults.buzzer(b.update(Duration::ZERO), Duration::ZERO));
    let mut next_poll: Option<Duration> = None;
    loop {
        let sounding = panel.borrow().buzzer() != Buzzer::Silent;
        match (&mut button, next_poll) {
            (Some(button), None) if sounding => {
                button.reset();
                next_poll = Some(origin.elapsed());
            }
            (_, Some(_)) if !sounding => next_poll = None,
            _ => {}
        }
        let at = |due: Option<Duration>| origin + due.unwrap_or_default();
        let restart = tokio::select! {
            biased;
            event = alerts.recv() => {
                let Some(event) = event else { break };
                panel.send_modify(|p| p.apply(&event));
                let p = panel.borrow();
                tracing::info!(event = "alarm_changed", buzzer = ?p.buzzer(), shown = ?p.shown().map(|a| a.id));
                // A new or escalated alert restarts the pattern with a beep, even when the
                // same pattern is already playing.
                matches!(event, AlertEvent::Raised(_) | AlertEvent::Escalated(_))
            }
            _ = tokio::time::sleep_until(at(buzzer_due)), if buzzer_due.is_some() => false,
            _ = tokio::time::sleep_until(at(next_poll)), if next_poll.is_some() => {
                let now = origin.elapsed();
                next_poll = Some(now + BUTTON_POLL);
                let pressed = button.as_mut().and_then(|b| faults.button(b.poll(now)));
                if pressed == Some(true) {
                    let newly = panel.send_modify_and(Panel::acknowledge);
                    tracing::info!(event = "alarm_acknowledged", alerts = newly);
                }
                false
            }
        };
        if let Some(b) = &mut buzzer {
            let now = origin.elapsed();
            b.play(panel.borrow().buzzer(), now, restart);
            buzzer_due = faults.buzzer(b.update(now), now);
        }
    }
    if let Some(b) = &mut buzzer {
        let now = origin.elapsed();
        faults.buzzer(b.silence(now).map(|()| None), now);
    }
    (buzzer, button)
}

/// `send_modify` that returns what the closure returns.
trait SendModifyAnd<T> {
    fn send_modify_and<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

impl<T> SendModifyAnd<T> for watch::Sender<T> {
    fn send_modify_and<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut out = None;
        self.send_modify(|t| out = Some(f(t)));
        out.expect("send_modify runs its closure")
    }
}

/// Logs a device failing once when it starts and once when it recovers, not at every write.
#[derive(Default)]
struct Faults {
    buzzer: bool,
    button: bool,
    /// The wait before the next buzzer write while it fails.
    buzzer_retry: Duration,
}

impl Faults {
    /// The next deadline from a buzzer update; after a failure, a retry soon.
    fn buzzer<E: std::fmt::Debug>(
        &mut self,
        result: Result<Option<Duration>, buzzer::Error<E>>,
        now: Duration,
    ) -> Option<Duration> {
        match result {
            Ok(due) => {
                if std::mem::take(&mut self.buzzer) {
                    tracing::info!(event = "alarm_buzzer_recovered");
                }
                self.buzzer_retry = RETRY_FIRST;
                due
            }
            Err(error) => {
                if !std::mem::replace(&mut self.buzzer, true) {
                    tracing::error!(event = "alarm_buzzer_failed", %error, "check the [alarm] buzzer line with `vigil alarm test`");
                }
                let wait = self.buzzer_retry.clamp(RETRY_FIRST, RETRY_MAX);
                self.buzzer_retry = (wait * 2).min(RETRY_MAX);
                Some(now + wait)
            }
        }
    }

    fn button<E: std::fmt::Debug>(
        &mut self,
        result: Result<bool, button::Error<E>>,
    ) -> Option<bool> {
        match result {
            Ok(pressed) => {
                if std::mem::take(&mut self.button) {
                    tracing::info!(event = "alarm_button_recovered");
                }
                Some(pressed)
            }
            Err(error) => {
                if !std::mem::replace(&mut self.button, true) {
                    tracing::error!(event = "alarm_button_failed", %error, "check the [alarm] button line with `vigil alarm test`");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
