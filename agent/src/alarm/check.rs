//! `vigil alarm test`: the installer's check of the cab devices `[alarm]` names. It sounds
//! each buzzer pattern with the matching screen on the display, then waits for a press of
//! the acknowledge button, saying at each step what the installer should see and hear.
//!
//! It uses the same drivers and patterns as the agent, with the same non-blocking stepping.

use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;

use super::AlarmConfig;
use super::button::AckButton;
use super::buzzer::BuzzerPin;
use super::devices::{Devices, DynInputPin, DynOutputPin, OpenError};
use super::display::Display;
use super::screen::{AlertScreen, Screen};
use super::{BUTTON_POLL, Buzzer, LinkStatus};
use crate::detect::alert::Severity;

/// How long each part of the check lasts.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Three warning cycles.
    pub warning: Duration,
    /// Six critical beeps.
    pub critical: Duration,
    /// How long to wait for a press of the acknowledge button.
    pub button_wait: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            warning: Duration::from_secs(6),
            critical: Duration::from_secs(3),
            button_wait: Duration::from_secs(20),
        }
    }
}

/// Why the check failed; each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "no alarm hardware is configured: add buzzer, button or display under [alarm] in the \
         config file (see `vigil print-default-config`) and pass it with --config"
    )]
    NoHardware,
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{0}; check the wiring of the buzzer's line")]
    Buzzer(String),
    #[error("display: {0}; check the display's wiring and power")]
    Display(String),
    #[error("button: {0}; check the wiring of the button's line")]
    Button(String),
    #[error(
        "button: no press seen within {}; check the button's line and its active_low setting",
        humantime::format_duration(*.0)
    )]
    NoPress(Duration),
    #[error("cannot write the report: {0}")]
    Report(#[from] std::io::Error),
}

/// Opens what `config` names and checks it.
pub async fn run_config(config: &AlarmConfig, out: &mut impl Write) -> Result<(), CheckError> {
    let devices = Devices::open(config)?;
    run(devices, Plan::default(), out).await
}

/// Checks `devices` along `plan`, reporting each step to `out`.
pub async fn run(devices: Devices, plan: Plan, out: &mut impl Write) -> Result<(), CheckError> {
    if devices.is_empty() {
        return Err(CheckError::NoHardware);
    }
    let Devices {
        mut buzzer,
        button,
        mut display,
    } = devices;
    let present = |b: bool| if b { "configured" } else { "none" };
    writeln!(
        out,
        "alarm test: buzzer {}, button {}, display {}",
        present(buzzer.is_some()),
        present(button.is_some()),
        present(display.is_some())
    )?;
    if let Some(display) = &mut display {
        show(display.as_mut(), &Screen::Normal(LinkStatus::default()))?;
        writeln!(out, "display: shows ALL NORMAL")?;
    }
    for (mode, severity, length) in [
        (Buzzer::Warning, Severity::Warning, plan.warning),
        (Buzzer::Critical, Severity::Critical, plan.critical),
    ] {
        if let Some(display) = &mut display {
            show(display.as_mut(), &sample(severity))?;
            writeln!(out, "display: shows a {severity} alert for TEST")?;
        }
        if let Some(buzzer) = &mut buzzer {
            let cadence = mode.cadence().expect("a sounding mode");
            writeln!(
                out,
                "buzzer: {severity} pattern, {} ms on / {} ms off, for {}",
                cadence.on.as_millis(),
                cadence.off.as_millis(),
                humantime::format_duration(length)
            )?;
            play(buzzer, mode, length).await?;
        }
    }
    if let Some(buzzer) = &mut buzzer {
        buzzer
            .silence(Duration::ZERO)
            .map_err(|e| CheckError::Buzzer(e.to_string()))?;
        writeln!(out, "buzzer: silent")?;
    }
    if let Some(mut button) = button {
        writeln!(
            out,
            "button: press the acknowledge button now (waiting up to {})",
            humantime::format_duration(plan.button_wait)
        )?;
        out.flush()?;
        wait_for_press(&mut button, plan.button_wait).await?;
        writeln!(out, "button: press seen")?;
    }
    if let Some(display) = &mut display {
        show(display.as_mut(), &Screen::Stopped)?;
        writeln!(out, "display: shows STOPPED (the agent is not running)")?;
    }
    writeln!(out, "alarm test: done")?;
    Ok(())
}

/// The alert screen shown while a pattern plays.
fn sample(severity: Severity) -> Screen {
    Screen::Alert(AlertScreen {
        severity,
        signal: "TEST".into(),
        value: None,
        crossed: "alarm test".into(),
        unit: "",
        active_for: Duration::ZERO,
        acknowledged: false,
        others: 0,
    })
}

fn show(display: &mut dyn Display, screen: &Screen) -> Result<(), CheckError> {
    display
        .show(screen)
        .map_err(|e| CheckError::Display(e.to_string()))
}

/// Plays `mode` for `length`, stepping the driver at its own deadlines.
async fn play(
    buzzer: &mut BuzzerPin<DynOutputPin>,
    mode: Buzzer,
    length: Duration,
) -> Result<(), CheckError> {
    let origin = Instant::now();
    buzzer.play(mode, Duration::ZERO, true);
    loop {
        let now = origin.elapsed();
        let next = buzzer
            .update(now)
            .map_err(|e| CheckError::Buzzer(e.to_string()))?;
        match next {
            Some(at) if at < length => tokio::time::sleep_until(origin + at).await,
            _ => break,
        }
    }
    tokio::time::sleep_until(origin + length).await;
    Ok(())
}

async fn wait_for_press(
    button: &mut AckButton<DynInputPin>,
    wait: Duration,
) -> Result<(), CheckError> {
    let origin = Instant::now();
    let mut now = Duration::ZERO;
    while now < wait {
        let pressed = button
            .poll(now)
            .map_err(|e| CheckError::Button(e.to_string()))?;
        if pressed {
            return Ok(());
        }
        tokio::time::sleep_until(origin + now + BUTTON_POLL).await;
        now = origin.elapsed();
    }
    Err(CheckError::NoPress(wait))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::screen::frame::Frame;
    use embedded_hal::digital::{ErrorType, InputPin, OutputPin};
    use std::sync::{Arc, Mutex};

    /// Records (ms since the test's start, level).
    struct Recording(Instant, Arc<Mutex<Vec<(u64, bool)>>>);

    impl ErrorType for Recording {
        type Error = std::convert::Infallible;
    }

    impl OutputPin for Recording {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            self.1
                .lock()
                .unwrap()
                .push((self.0.elapsed().as_millis() as u64, false));
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Self::Error> {
            self.1
                .lock()
                .unwrap()
                .push((self.0.elapsed().as_millis() as u64, true));
            Ok(())
        }
    }

    /// Pressed from `from` ms on.
    struct PressedFrom(Instant, u64);

    impl ErrorType for PressedFrom {
        type Error = std::convert::Infallible;
    }

    impl InputPin for PressedFrom {
        fn is_high(&mut self) -> Result<bool, Self::Error> {
            Ok(self.0.elapsed().as_millis() as u64 >= self.1)
        }
        fn is_low(&mut self) -> Result<bool, Self::Error> {
            self.is_high().map(|h| !h)
        }
    }

    /// A display that keeps every screen it was asked to show.
    struct Screens(Arc<Mutex<Vec<Screen>>>, Frame);

    impl Display for Screens {
        fn show(&mut self, screen: &Screen) -> Result<(), crate::alarm::display::DisplayError> {
            self.1.show(screen)?;
            self.0.lock().unwrap().push(screen.clone());
            Ok(())
        }
    }

    fn plan() -> Plan {
        Plan {
            warning: Duration::from_secs(4),
            critical: Duration::from_secs(1),
            button_wait: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_plays_each_pattern_shows_each_screen_and_waits_for_a_press() {
        let start = Instant::now();
        let writes = Arc::new(Mutex::new(vec![]));
        let screens = Arc::new(Mutex::new(vec![]));
        let devices = Devices {
            buzzer: Some(BuzzerPin::new(DynOutputPin::new(Recording(
                start,
                writes.clone(),
            )))),
            button: Some(AckButton::new(
                DynInputPin::new(PressedFrom(start, 6000)),
                Duration::from_millis(30),
            )),
            display: Some(Box::new(Screens(screens.clone(), Frame::default()))),
        };
        let mut out = Vec::new();
        run(devices, plan(), &mut out).await.unwrap();
        let (t, f) = (true, false);
        assert_eq!(
            *writes.lock().unwrap(),
            [
                (0, t), // warning, 4 s
                (200, f),
                (2000, t),
                (2200, f),
                (4000, t), // critical, 1 s
                (4250, f),
                (4500, t),
                (4750, f),
            ]
        );
        let screens = screens.lock().unwrap();
        assert_eq!(screens.len(), 4);
        assert_eq!(screens[0], Screen::Normal(LinkStatus::default()));
        assert!(matches!(&screens[1], Screen::Alert(a) if a.severity == Severity::Warning));
        assert!(matches!(&screens[2], Screen::Alert(a) if a.severity == Severity::Critical));
        assert_eq!(screens[3], Screen::Stopped);
        let out = String::from_utf8(out).unwrap();
        for line in [
            "alarm test: buzzer configured, button configured, display configured",
            "buzzer: warning pattern, 200 ms on / 1800 ms off, for 4s",
            "buzzer: critical pattern, 250 ms on / 250 ms off, for 1s",
            "buzzer: silent",
            "button: press seen",
            "alarm test: done",
        ] {
            assert!(out.contains(line), "{line:?} missing from:\n{out}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_press_fails_and_names_what_to_check() {
        let start = Instant::now();
        let devices = Devices {
            button: Some(AckButton::new(
                DynInputPin::new(PressedFrom(start, u64::MAX)),
                Duration::from_millis(30),
            )),
            ..Devices::default()
        };
        let error = run(devices, plan(), &mut Vec::new()).await.unwrap_err();
        assert!(matches!(error, CheckError::NoPress(_)));
        assert!(error.to_string().contains("within 5s"), "{error}");
        assert!(error.to_string().contains("active_low"), "{error}");
    }

    #[tokio::test]
    async fn without_hardware_it_says_what_to_configure() {
        let error = run_config(&AlarmConfig::default(), &mut Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(error, CheckError::NoHardware));
        assert!(error.to_string().contains("[alarm]"), "{error}");
    }
}
