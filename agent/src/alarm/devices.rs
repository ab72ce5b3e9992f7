//! The cab's devices as the pipeline holds them: whatever the back end (linux-embedded-hal
//! on the gateway, recording pins in tests), one type each, opened from `[alarm]`.
//!
//! The drivers are generic over the embedded-hal traits; here a pin is boxed behind
//! [`DynOutputPin`] / [`DynInputPin`], whose error keeps the back end's message as text
//! (for the log and the installer) and reports `ErrorKind::Other`.

use std::fmt;

use embedded_hal::digital::{self, ErrorType, InputPin, OutputPin};

use super::AlarmConfig;
use super::button::AckButton;
use super::buzzer::BuzzerPin;
use super::display::Display;

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

impl Devices {
    /// Opens every device `[alarm]` names; none named gives no devices.
    pub fn open(config: &AlarmConfig) -> Result<Devices, OpenError> {
        let any = config.buzzer.is_some() || config.button.is_some() || config.display.is_some();
        if !any {
            return Ok(Devices::default());
        }
        #[cfg(target_os = "linux")]
        {
            super::linux::open(config)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(OpenError::Unsupported)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buzzer.is_none() && self.button.is_none() && self.display.is_none()
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
