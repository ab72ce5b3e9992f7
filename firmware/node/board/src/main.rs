//! The sensor node's firmware for an STM32F411 "Black Pill" board: four MAX31865 PT100
//! converters on SPI1, frames out on USART1 at 115200 8N1.
//!
//! Everything with logic in it lives in `vigil-node` and `max31865` and is tested on the
//! host; this file only wires the board's peripherals to them and paces the loop. See
//! `firmware/README.md` for the wiring.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use embedded_hal::digital::OutputPin;
use embedded_hal_bus::spi::{NoDelay, RefCellDevice};
use max31865::{Config, Filter, Max31865, Wiring};
use panic_halt as _;
use stm32f4xx_hal::{
    gpio::{AnyPin, Output},
    pac,
    prelude::*,
    rcc::Config as ClockConfig,
    serial::config::Config as SerialConfig,
    watchdog::IndependentWatchdog,
};
use vigil_node::{Clock, Node};

/// How often every channel is sampled and sent. The agent resamples to 1 Hz.
const SAMPLE_PERIOD_MS: u32 = 1_000;

/// Reset if a loop iteration hangs (a wedged bus, a UART that never drains).
const WATCHDOG_MS: u32 = 4 * SAMPLE_PERIOD_MS;

/// The probes: three-wire PT100s on 430 ohm references. Readings outside -60..250 degC
/// (beyond any cargo the truck carries, hot bitumen included) latch a threshold fault in
/// the converter, which is also how an open or shorted probe shows.
const PROBE: Config = Config {
    wiring: Wiring::ThreeWire,
    filter: Filter::Hz50,
    ..Config::DEFAULT
};
const PROBE_RANGE_C: (f32, f32) = (-60.0, 250.0);

/// Milliseconds since boot, counted by the SysTick exception.
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// The SysTick millisecond counter as the node's clock.
struct SysTickClock;

impl Clock for SysTickClock {
    fn now_ms(&mut self) -> u32 {
        MILLIS.load(Ordering::Relaxed)
    }
}

/// A chip select that holds each edge long enough for the MAX31865 (CS-to-clock setup and
/// CS inactive time are a few hundred nanoseconds; a GPIO write and an SPI start can be
/// closer than that at this clock).
struct SettledChipSelect(AnyPin<Output>);

/// About 0.7 us at 48 MHz.
const CHIP_SELECT_SETTLE_CYCLES: u32 = 32;

impl embedded_hal::digital::ErrorType for SettledChipSelect {
    type Error = core::convert::Infallible;
}

impl OutputPin for SettledChipSelect {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.0.set_low();
        cortex_m::asm::delay(CHIP_SELECT_SETTLE_CYCLES);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        cortex_m::asm::delay(CHIP_SELECT_SETTLE_CYCLES);
        self.0.set_high();
        cortex_m::asm::delay(CHIP_SELECT_SETTLE_CYCLES);
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    // Both are taken exactly once, here, at reset; there is no other owner to fail to.
    let dp = pac::Peripherals::take().expect("device peripherals taken once");
    let mut cp = cortex_m::Peripherals::take().expect("core peripherals taken once");

    let mut rcc = dp.RCC.freeze(ClockConfig::hse(25.MHz()).sysclk(48.MHz()));

    let mut watchdog = IndependentWatchdog::new(dp.IWDG);
    watchdog.start(WATCHDOG_MS.millis());

    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(rcc.clocks.sysclk().raw() / 1_000 - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let gpioa = dp.GPIOA.split(&mut rcc);
    let gpiob = dp.GPIOB.split(&mut rcc);

    let spi = dp.SPI1.spi(
        (Some(gpioa.pa5), Some(gpioa.pa6), Some(gpioa.pa7)),
        max31865::MODE,
        1.MHz(),
        &mut rcc,
    );
    let bus = RefCell::new(spi);
    let chip_select = |pin: AnyPin<Output>| {
        let mut cs = SettledChipSelect(pin);
        let _ = cs.set_high();
        // Infallible: the chip select is a plain GPIO.
        RefCellDevice::new(&bus, cs, NoDelay).unwrap_or_else(|never| match never {})
    };
    let config = PROBE.fault_thresholds_celsius(PROBE_RANGE_C.0, PROBE_RANGE_C.1);
    let probes = [
        Max31865::new(
            chip_select(gpioa.pa4.into_push_pull_output().erase()),
            config,
        ),
        Max31865::new(
            chip_select(gpiob.pb0.into_push_pull_output().erase()),
            config,
        ),
        Max31865::new(
            chip_select(gpiob.pb1.into_push_pull_output().erase()),
            config,
        ),
        Max31865::new(
            chip_select(gpiob.pb10.into_push_pull_output().erase()),
            config,
        ),
    ];

    let uart = dp
        .USART1
        .tx(
            gpioa.pa9,
            SerialConfig::default().baudrate(115_200.bps()),
            &mut rcc,
        )
        .expect("115200 8N1 is reachable from a 48 MHz clock");

    let mut delay = dp.TIM2.delay_us(&mut rcc);
    let mut clock = SysTickClock;
    let mut node = Node::new(probes, uart, SysTickClock);
    // A converter that did not answer is reported in its frames and retried every step.
    let _ = node.configure();

    let mut next = clock.now_ms();
    loop {
        // A UART error loses this step's frames; the agent sees the gap in `seq`.
        let _ = node.step(&mut delay);
        watchdog.feed();
        next = next.wrapping_add(SAMPLE_PERIOD_MS);
        // Sleep until the next period; SysTick wakes the core every millisecond. Comparing
        // the signed distance keeps this right across the counter's wrap.
        while (next.wrapping_sub(clock.now_ms()) as i32) > 0 {
            cortex_m::asm::wfi();
        }
    }
}
