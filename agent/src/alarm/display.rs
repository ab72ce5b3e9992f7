//! The display task: draws the [`Screen`] the panel, the link state and the live values call
//! for, whenever one changes, and once a second while an alert shows (its age counts up).
//!
//! A display is anything that can [`Display::show`] a screen; the gateway's SSD1306 draws it
//! with embedded-graphics and flushes it over I2C, which blocks for a few milliseconds, so
//! every frame is drawn on a blocking thread and the alarm task never waits for the bus.
//! When the alarm task ends the display says so, so a stopped agent never leaves "all
//! normal" on the screen.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::screen::Screen;
use super::{LinkStatus, Panel};
use crate::detect::Live;

/// A screen the alarm can draw on.
pub trait Display: Send + 'static {
    /// Shows `screen`. May block for as long as one frame takes on its bus.
    fn show(&mut self, screen: &Screen) -> Result<(), DisplayError>;
}

/// A display failed to draw or to send a frame; the text is the back end's own error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DisplayError(String);

impl DisplayError {
    pub fn of(error: impl fmt::Debug) -> Self {
        DisplayError(format!("{error:?}"))
    }
}

impl From<String> for DisplayError {
    fn from(reason: String) -> Self {
        DisplayError(reason)
    }
}

/// How often the screen is redrawn while an alert shows, so its age stays current.
pub const TICK: Duration = Duration::from_secs(1);

/// Runs until the panel's sender (the alarm task) is gone, then shows [`Screen::Stopped`].
pub async fn run(
    mut panel: watch::Receiver<Panel>,
    mut link: watch::Receiver<LinkStatus>,
    mut live: watch::Receiver<Live>,
    display: Box<dyn Display>,
) {
    let mut display = Some(display);
    let mut first_seen: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut shown: Option<Screen> = None;
    let mut link_open = true;
    let mut live_open = true;
    let mut failing = false;
    loop {
        let screen = {
            let now = Instant::now();
            let panel = panel.borrow_and_update();
            first_seen.retain(|id, _| panel.alerts().any(|a| a.id == *id));
            for alert in panel.alerts() {
                first_seen.entry(alert.id).or_insert(now);
            }
            let age = |id| now.saturating_duration_since(first_seen[&id]);
            let live = live.borrow_and_update();
            Screen::of(&panel, *link.borrow_and_update(), &live, |a| age(a.id))
        };
        if shown.as_ref() != Some(&screen) {
            display = show(display, &screen, &mut failing).await;
            if display.is_none() {
                return;
            }
            shown = Some(screen);
        }
        let ticking = matches!(shown, Some(Screen::Alert(_)));
        tokio::select! {
            changed = panel.changed() => if changed.is_err() { break },
            changed = link.changed(), if link_open => link_open = changed.is_ok(),
            changed = live.changed(), if live_open => live_open = changed.is_ok(),
            _ = tokio::time::sleep(TICK), if ticking => {}
        }
    }
    show(display, &Screen::Stopped, &mut failing).await;
}

/// Shows one screen on a blocking thread; `None` if the display's thread panicked (the
/// display is gone; the buzzer goes on).
async fn show(
    display: Option<Box<dyn Display>>,
    screen: &Screen,
    failing: &mut bool,
) -> Option<Box<dyn Display>> {
    let mut display = display?;
    let screen = screen.clone();
    let drawn = tokio::task::spawn_blocking(move || {
        let result = display.show(&screen);
        (display, result)
    })
    .await;
    match drawn {
        Ok((display, Ok(()))) => {
            if std::mem::take(failing) {
                tracing::info!(event = "alarm_display_recovered");
            }
            Some(display)
        }
        Ok((display, Err(error))) => {
            if !std::mem::replace(failing, true) {
                tracing::error!(event = "alarm_display_failed", %error, "check the [alarm] display with `vigil alarm test`");
            }
            Some(display)
        }
        Err(panicked) => {
            tracing::error!(event = "alarm_display_failed", error = %panicked, "the display driver panicked; the display stays as it was");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::screen::AlertScreen;
    use crate::alarm::tests::alert;
    use crate::detect::alert::{AlertEvent, Severity};
    use tokio::sync::mpsc;

    /// A display that hands every screen it shows to the test.
    struct Recording(mpsc::UnboundedSender<Screen>);

    impl Display for Recording {
        fn show(&mut self, screen: &Screen) -> Result<(), DisplayError> {
            let _ = self.0.send(screen.clone());
            Ok(())
        }
    }

    /// The next screen that is more than the shown alert's age counting up.
    async fn next(rx: &mut mpsc::UnboundedReceiver<Screen>, last: &mut Option<Screen>) -> Screen {
        loop {
            let screen = rx.recv().await.expect("the display task is running");
            let age_only = match (&*last, &screen) {
                (Some(Screen::Alert(a)), Screen::Alert(b)) => {
                    AlertScreen {
                        active_for: b.active_for,
                        ..a.clone()
                    } == *b
                }
                _ => false,
            };
            *last = Some(screen.clone());
            if !age_only {
                return screen;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_draws_the_link_state_each_alert_and_the_end() {
        let (panel_tx, panel_rx) = watch::channel(Panel::default());
        let (link_tx, link_rx) = watch::channel(LinkStatus::default());
        let (screens_tx, mut screens) = mpsc::unbounded_channel();
        let (_live_tx, live_rx) = watch::channel(crate::detect::Live::default());
        let task = tokio::spawn(run(
            panel_rx,
            link_rx,
            live_rx,
            Box::new(Recording(screens_tx)),
        ));
        let mut last = None;

        assert_eq!(
            next(&mut screens, &mut last).await,
            Screen::Normal(LinkStatus::default())
        );
        let online = LinkStatus {
            online: Some(true),
            spool_depth: Some(3),
            ..LinkStatus::default()
        };
        link_tx.send(online).unwrap();
        assert_eq!(next(&mut screens, &mut last).await, Screen::Normal(online));

        panel_tx.send_modify(|p| p.apply(&AlertEvent::Raised(alert(1, Severity::Critical))));
        let Screen::Alert(shown) = next(&mut screens, &mut last).await else {
            panic!("an alert is active");
        };
        assert_eq!(
            (shown.severity, shown.active_for, shown.acknowledged),
            (Severity::Critical, Duration::ZERO, false)
        );

        // Its age counts up while it shows, once a second.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let Some(Screen::Alert(aged)) = screens.recv().await else {
            panic!("still the alert");
        };
        assert!(aged.active_for >= Duration::from_secs(1), "{aged:?}");

        // The link changing does not replace the alert; acknowledging marks it.
        link_tx.send(LinkStatus::default()).unwrap();
        panel_tx.send_modify(|p| {
            p.acknowledge();
        });
        let Screen::Alert(acked) = next(&mut screens, &mut last).await else {
            panic!("acknowledged alerts stay on the display");
        };
        assert!(acked.acknowledged);

        panel_tx.send_modify(|p| {
            p.apply(&AlertEvent::Cleared {
                alert: alert(1, Severity::Critical),
                cleared_at: alert(1, Severity::Critical).raised_at,
            })
        });
        assert_eq!(
            next(&mut screens, &mut last).await,
            Screen::Normal(LinkStatus::default())
        );

        drop(panel_tx);
        assert_eq!(next(&mut screens, &mut last).await, Screen::Stopped);
        task.await.unwrap();
        assert!(screens.recv().await.is_none(), "nothing after the end");
    }
}
