//! The `[alarm]` section: the cab's devices. Each is optional: absent means the truck has
//! none, and the alarm still keeps its state (the demo shows it on the terminal).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmConfig {
    /// How long the acknowledge button must read steady before a press counts.
    #[serde(with = "duration")]
    pub button_debounce: Duration,
    /// The buzzer's GPIO line (driven high to sound).
    pub buzzer: Option<GpioLine>,
    /// The acknowledge button's GPIO line (reads high, after `active_low`, while pressed).
    pub button: Option<GpioLine>,
    /// An SSD1306-class 128x64 OLED on an I2C bus.
    pub display: Option<I2cDisplay>,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            button_debounce: Duration::from_millis(30),
            buzzer: None,
            button: None,
            display: None,
        }
    }
}

/// One line of a GPIO character device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// The chip's character device, such as `/dev/gpiochip0`.
    pub chip: PathBuf,
    /// The line's offset on that chip (see `gpioinfo`).
    pub line: u32,
    /// The line is wired inverted: the kernel flips every level.
    #[serde(default)]
    pub active_low: bool,
}

/// A display on an i2c-dev bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I2cDisplay {
    /// The bus device, such as `/dev/i2c-1`.
    pub i2c: PathBuf,
    /// The display's 7-bit address: 0x3C for most modules, 0x3D with the address jumper.
    #[serde(default = "I2cDisplay::default_address")]
    pub address: u8,
}

impl I2cDisplay {
    fn default_address() -> u8 {
        0x3C
    }
}

impl AlarmConfig {
    /// Checks the values; returns the key and what is wrong. No I/O: the devices are opened
    /// when the alarm starts.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.button_debounce > Duration::from_secs(1) {
            return Err((
                "alarm.button_debounce",
                format!(
                    "expected at most 1s (a press must count while the buzzer sounds), found {}",
                    humantime::format_duration(self.button_debounce)
                ),
            ));
        }
        let bad_address = (self.display.as_ref())
            .map(|d| d.address)
            .filter(|a| !(0x08..=0x77).contains(a));
        if let Some(address) = bad_address {
            return Err((
                "alarm.display.address",
                format!(
                    "expected a 7-bit I2C address from 0x08 to 0x77 (0x3C or 0x3D for an SSD1306), found {address:#04x}"
                ),
            ));
        }
        Ok(())
    }
}
