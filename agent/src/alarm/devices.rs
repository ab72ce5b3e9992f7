//! The cab's devices as the pipeline holds them: whatever the back end (linux-embedded-hal
//! on the gateway, recording pins in tests), one type each, opened from `[alarm]`.
//!
//! The drivers are generic over the embedded-hal traits; here a pin is boxed behind
//! [`DynOutputPin`] / [`DynInputPin`], whose error keeps the back end's message as text
//! (for the log and the installer) and reports `ErrorKind::Other`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use embedded_hal::digital::{self, ErrorType, InputPin, OutputPin};
use tokio::time::Instant;

use super::AlarmConfig;
use super::button::AckButton;
use super::buzzer::BuzzerPin;
use super::display::{Display, DisplayError};
use super::screen::Screen;
use crate::telemetry::Metrics;

/// A pin of some back end failed; the text is the back end's own error.
#[derive(Debug)]
pub struct PinError(String);

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinError {}

impl digital::Error for PinError {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

impl PinError {
    fn of(error: impl fmt::Debug) -> PinError {
        PinError(format!("{error:?}"))
    }
}

/// Any back end's output pin.
pub struct DynOutputPin(Box<dyn FnMut(bool) -> Result<(), PinError> + Send>);

impl DynOutputPin {
    pub fn new<P: OutputPin + Send + 'static>(mut pin: P) -> Self {
        DynOutputPin(Box::new(move |high| {
            if high { pin.set_high() } else { pin.set_low() }.map_err(PinError::of)
        }))
    }
}

impl ErrorType for DynOutputPin {
    type Error = PinError;
}

impl OutputPin for DynOutputPin {
    fn set_low(&mut self) -> Result<(), PinError> {
        (self.0)(false)
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        (self.0)(true)
    }
}

/// Any back end's input pin.
pub struct DynInputPin(Box<dyn FnMut() -> Result<bool, PinError> + Send>);

impl DynInputPin {
    pub fn new<P: InputPin + Send + 'static>(mut pin: P) -> Self {
        DynInputPin(Box::new(move || pin.is_high().map_err(PinError::of)))
    }
}

impl ErrorType for DynInputPin {
    type Error = PinError;
}

impl InputPin for DynInputPin {
    fn is_high(&mut self) -> Result<bool, PinError> {
        (self.0)()
    }

    fn is_low(&mut self) -> Result<bool, PinError> {
        (self.0)().map(|high| !high)
    }
}

/// The cab's devices; each is optional (a truck without a display still beeps).
#[derive(Default)]
pub struct Devices {
    pub buzzer: Option<BuzzerPin<DynOutputPin>>,
    pub button: Option<AckButton<DynInputPin>>,
    pub display: Option<Box<dyn Display>>,
}

/// A configured device could not be opened. Each message names the config key and the
/// device, and says what to check.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "alarm.{key}: cannot use line {line} of {chip}: {reason}; check the chip and offset \
         with `gpioinfo`, that no other program holds the line, and that the agent may open the device"
    )]
    Gpio {
        key: &'static str,
        chip: std::path::PathBuf,
        line: u32,
        reason: String,
    },
    #[error(
        "alarm.display: no SSD1306 answered at address {address:#04x} on {bus}: {reason}; check \
         the wiring and address with `i2cdetect -y N`, and that the agent may open the device"
    )]
    Display {
        bus: std::path::PathBuf,
        address: u8,
        reason: String,
    },
    #[error(
        "alarm: GPIO and I2C devices are only supported on Linux; remove the [alarm] devices \
         from the config on this system"
    )]
    Unsupported,
}

/// How often a configured device that could not be opened is tried again. Opening a
/// missing GPIO chip or I2C bus fails at once, so trying costs nothing; the interval only
/// keeps the log and the kernel quiet.
pub const REOPEN_EVERY: Duration = Duration::from_secs(5);

impl Devices {
    /// Opens every device `[alarm]` names, or fails on the first that cannot be opened: the
    /// installer's `vigil alarm test`, which must say what is wrong. None named gives no
    /// devices.
    pub fn open(config: &AlarmConfig) -> Result<Devices, OpenError> {
        Ok(Devices {
            buzzer: config
                .buzzer
                .as_ref()
                .map(backend::buzzer)
                .transpose()?
                .map(BuzzerPin::new),
            button: config
                .button
                .as_ref()
                .map(backend::button)
                .transpose()?
                .map(|pin| AckButton::new(pin, config.button_debounce)),
            display: config.display.as_ref().map(backend::display).transpose()?,
        })
    }

    /// Opens every device `[alarm]` names, for the running agent: a device that cannot be
    /// opened is logged, counted in the `alarm_devices_unavailable` gauge and tried again
    /// each time the alarm uses it (at most every [`REOPEN_EVERY`]), so a missing buzzer
    /// never stops detection or the fleet's alerts, and a buzzer plugged in later works
    /// without a restart.
    pub fn open_or_retry(config: &AlarmConfig, metrics: &Arc<Metrics>) -> Devices {
        let buzzer = config.buzzer.clone().map(|line| {
            let mut pin = Reopening::new("buzzer", metrics, move || backend::buzzer(&line));
            BuzzerPin::new(DynOutputPin(Box::new(move |high| {
                let pin = pin.get().map_err(PinError)?;
                if high { pin.set_high() } else { pin.set_low() }
            })))
        });
        let button = config.button.clone().map(|line| {
            let mut pin = Reopening::new("button", metrics, move || backend::button(&line));
            let input = DynInputPin(Box::new(move || pin.get().map_err(PinError)?.is_high()));
            AckButton::new(input, config.button_debounce)
        });
        let display = config.display.clone().map(|bus| {
            let display = Reopening::new("display", metrics, move || backend::display(&bus));
            Box::new(display) as Box<dyn Display>
        });
        Devices {
            buzzer,
            button,
            display,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buzzer.is_none() && self.button.is_none() && self.display.is_none()
    }
}

/// A configured device, opened when it can be: [`Reopening::get`] hands it out, or tries to
/// open it again (at most every [`REOPEN_EVERY`]) and fails with the reason it could not be
/// opened. The alarm task already retries a failing write; a missing device is one more.
struct Reopening<D> {
    key: &'static str,
    open: Box<dyn FnMut() -> Result<D, OpenError> + Send>,
    device: Option<D>,
    /// Why the last attempt failed.
    reason: String,
    next_try: Instant,
    metrics: Arc<Metrics>,
}

impl<D> Reopening<D> {
    /// Tries to open the device now; logs and counts it if it cannot be.
    fn new(
        key: &'static str,
        metrics: &Arc<Metrics>,
        open: impl FnMut() -> Result<D, OpenError> + Send + 'static,
    ) -> Self {
        let mut device = Reopening {
            key,
            open: Box::new(open),
            device: None,
            reason: String::new(),
            next_try: Instant::now(),
            metrics: metrics.clone(),
        };
        match (device.open)() {
            Ok(opened) => device.device = Some(opened),
            Err(error) => {
                device.reason = error.to_string();
                device.next_try = Instant::now() + REOPEN_EVERY;
                Metrics::inc(&metrics.alarm_devices_unavailable);
                tracing::error!(event = "alarm_device_unavailable", device = key, %error,
                    "detection and the fleet's alerts go on without it; tried again every {REOPEN_EVERY:?}");
            }
        }
        device
    }

    fn get(&mut self) -> Result<&mut D, String> {
        if self.device.is_none() && Instant::now() >= self.next_try {
            match (self.open)() {
                Ok(opened) => {
                    self.device = Some(opened);
                    self.metrics
                        .alarm_devices_unavailable
                        .fetch_sub(1, Ordering::Relaxed);
                    tracing::info!(event = "alarm_device_opened", device = self.key);
                }
                Err(error) => {
                    self.reason = error.to_string();
                    self.next_try = Instant::now() + REOPEN_EVERY;
                }
            }
        }
        self.device.as_mut().ok_or_else(|| self.reason.clone())
    }
}

impl Display for Reopening<Box<dyn Display>> {
    fn show(&mut self, screen: &Screen) -> Result<(), DisplayError> {
        self.get().map_err(DisplayError::from)?.show(screen)
    }
}

/// Where devices come from: linux-embedded-hal on Linux; elsewhere every configured device
/// is refused.
#[cfg(target_os = "linux")]
use super::linux as backend;

#[cfg(not(target_os = "linux"))]
mod backend {
    use super::{Display, DynInputPin, DynOutputPin, OpenError};
    use crate::alarm::{GpioLine, I2cDisplay};

    pub fn buzzer(_: &GpioLine) -> Result<DynOutputPin, OpenError> {
        Err(OpenError::Unsupported)
    }

    pub fn button(_: &GpioLine) -> Result<DynInputPin, OpenError> {
        Err(OpenError::Unsupported)
    }

    pub fn display(_: &I2cDisplay) -> Result<Box<dyn Display>, OpenError> {
        Err(OpenError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{GpioLine, I2cDisplay};

    #[test]
    fn no_configured_device_opens_nothing() {
        let devices = Devices::open(&AlarmConfig::default()).unwrap();
        assert!(devices.is_empty());
    }

    #[test]
    fn a_missing_chip_or_bus_is_named_with_what_to_check() {
        let line = GpioLine {
            chip: "/nonexistent/gpiochip7".into(),
            line: 17,
            active_low: false,
        };
        let config = AlarmConfig {
            buzzer: Some(line.clone()),
            ..AlarmConfig::default()
        };
        let message = Devices::open(&config).err().unwrap().to_string();
        assert!(
            message.starts_with("alarm.buzzer: cannot use line 17 of /nonexistent/gpiochip7: "),
            "{message}"
        );
        assert!(message.contains("gpioinfo"), "{message}");

        let config = AlarmConfig {
            display: Some(I2cDisplay {
                i2c: "/nonexistent/i2c-9".into(),
                address: 0x3D,
            }),
            ..AlarmConfig::default()
        };
        let message = Devices::open(&config).err().unwrap().to_string();
        assert!(
            message.starts_with(
                "alarm.display: no SSD1306 answered at address 0x3d on /nonexistent/i2c-9"
            ),
            "{message}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_device_is_retried_counted_and_used_once_it_opens() {
        let metrics = Arc::new(Metrics::default());
        let config = AlarmConfig {
            buzzer: Some(GpioLine {
                chip: "/nonexistent/gpiochip7".into(),
                line: 17,
                active_low: false,
            }),
            display: Some(I2cDisplay {
                i2c: "/nonexistent/i2c-9".into(),
                address: 0x3C,
            }),
            ..AlarmConfig::default()
        };
        let devices = Devices::open_or_retry(&config, &metrics);
        assert!(devices.buzzer.is_some() && devices.display.is_some());
        assert_eq!(metrics.snapshot().alarm_devices_unavailable, 2);

        // A device that appears later: the first tries fail, the one after REOPEN_EVERY works.
        let plugged_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let present = plugged_in.clone();
        let mut line = Reopening::new("buzzer", &metrics, move || {
            if present.load(Ordering::Relaxed) {
                Ok(DynOutputPin(Box::new(|_| Ok(()))))
            } else {
                Err(OpenError::Unsupported)
            }
        });
        assert_eq!(metrics.snapshot().alarm_devices_unavailable, 3);
        let reason = line.get().err().expect("not there yet");
        assert!(reason.contains("only supported on Linux"), "{reason}");
        plugged_in.store(true, Ordering::Relaxed);
        assert!(line.get().is_err(), "not tried again before REOPEN_EVERY");
        tokio::time::advance(REOPEN_EVERY).await;
        line.get()
            .expect("opened on the next try")
            .set_high()
            .unwrap();
        assert_eq!(metrics.snapshot().alarm_devices_unavailable, 2);
    }

    #[test]
    fn boxed_pins_pass_levels_and_errors_through() {
        use embedded_hal_mock::eh1::MockError;
        use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
        let mock = Mock::new(&[
            Transaction::set(State::High),
            Transaction::set(State::Low)
                .with_error(MockError::Io(std::io::ErrorKind::PermissionDenied)),
        ]);
        let mut pin = DynOutputPin::new(mock.clone());
        pin.set_high().unwrap();
        let error = pin.set_low().unwrap_err();
        assert!(error.to_string().contains("PermissionDenied"), "{error}");
        let mut done = mock;
        done.done();

        let mock = Mock::new(&[Transaction::get(State::High), Transaction::get(State::Low)]);
        let mut pin = DynInputPin::new(mock.clone());
        assert!(pin.is_high().unwrap());
        assert!(pin.is_low().unwrap());
        let mut done = mock;
        done.done();
    }
}
