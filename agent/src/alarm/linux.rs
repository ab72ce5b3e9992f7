//! The gateway's back end: linux-embedded-hal's GPIO character device pins and an SSD1306
//! on i2c-dev. Deliberately thin (open, then hand over to the generic drivers): it cannot
//! run on a machine without the devices, so nothing but opening lives here. The error paths
//! (a missing chip or bus) are tested; driving real lines is `vigil alarm test`'s job on the
//! truck.

use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::{CdevPin, I2cdev};
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use super::devices::{DynInputPin, DynOutputPin, OpenError};
use super::display::{Display, DisplayError};
use super::screen::{self, Screen};
use super::{GpioLine, I2cDisplay};

/// The name the kernel shows as the lines' consumer (`gpioinfo`).
const CONSUMER: &str = "vigil";

/// The buzzer's line, requested as an output that starts inactive (silent).
pub fn buzzer(line: &GpioLine) -> Result<DynOutputPin, OpenError> {
    gpio("buzzer", line, LineRequestFlags::OUTPUT).map(DynOutputPin::new)
}

/// The acknowledge button's line, requested as an input.
pub fn button(line: &GpioLine) -> Result<DynInputPin, OpenError> {
    gpio("button", line, LineRequestFlags::INPUT).map(DynInputPin::new)
}

/// The display, initialised.
pub fn display(config: &I2cDisplay) -> Result<Box<dyn Display>, OpenError> {
    oled(config).map(|oled| Box::new(oled) as Box<dyn Display>)
}

/// Requests one line; an output starts inactive (the buzzer silent).
fn gpio(
    key: &'static str,
    line: &GpioLine,
    direction: LineRequestFlags,
) -> Result<CdevPin, OpenError> {
    let error = |reason: String| OpenError::Gpio {
        key,
        chip: line.chip.clone(),
        line: line.line,
        reason,
    };
    let mut flags = direction;
    if line.active_low {
        flags |= LineRequestFlags::ACTIVE_LOW;
    }
    let handle = Chip::new(&line.chip)
        .and_then(|mut chip| chip.get_line(line.line))
        .and_then(|l| l.request(flags, 0, CONSUMER))
        .map_err(|e| error(e.to_string()))?;
    CdevPin::new(handle).map_err(|e| error(e.to_string()))
}

type Oled =
    Ssd1306<I2CInterface<I2cdev>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

/// Opens the bus and initialises the display, so a display that is absent or at another
/// address fails here, at start, rather than at the first alert.
fn oled(config: &I2cDisplay) -> Result<Oled, OpenError> {
    let error = |reason: String| OpenError::Display {
        bus: config.i2c.clone(),
        address: config.address,
        reason,
    };
    let i2c = I2cdev::new(&config.i2c).map_err(|e| error(e.to_string()))?;
    let interface = I2CDisplayInterface::new_custom_address(i2c, config.address);
    let mut oled = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
        .into_buffered_graphics_mode();
    oled.init().map_err(|e| error(format!("{e:?}")))?;
    Ok(oled)
}

impl Display for Oled {
    fn show(&mut self, screen: &Screen) -> Result<(), DisplayError> {
        self.clear_buffer();
        screen::draw(screen, self).map_err(DisplayError::of)?;
        self.flush().map_err(DisplayError::of)
    }
}
