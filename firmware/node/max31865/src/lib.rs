//! A `no_std` driver for the Maxim (Analog Devices) MAX31865 RTD-to-digital converter,
//! written against the embedded-hal 1.0 [`SpiDevice`] trait.
//!
//! The driver owns its SPI device (chip select included) and hands it back with
//! [`Max31865::destroy`]. It keeps a copy of the configuration it last wrote, so that
//! commands which rewrite the configuration register (one-shot, fault clear) never need an
//! extra read of it.
//!
//! ```no_run
//! # fn demo<S: embedded_hal::spi::SpiDevice>(spi: S) -> Result<(), max31865::Error<S::Error>> {
//! use max31865::{Config, Filter, Max31865, Wiring};
//!
//! let config = Config::default()
//!     .wiring(Wiring::ThreeWire)
//!     .filter(Filter::Hz50)
//!     .fault_thresholds_celsius(-100.0, 250.0);
//! let mut rtd = Max31865::new(spi, config);
//! rtd.configure()?;
//! // ...one conversion period later (about 21 ms in automatic mode)...
//! let reading = rtd.read_rtd()?;
//! if reading.fault {
//!     let status = rtd.read_fault_status()?;
//!     rtd.clear_fault()?;
//!     # let _ = status;
//! } else {
//!     let celsius = rtd.temperature(reading);
//!     # let _ = celsius;
//! }
//! let _spi = rtd.destroy();
//! # Ok(()) }
//! ```
//!
//! # Register map (datasheet 19-6478, Table 1)
//!
//! | read | write | register |
//! |---|---|---|
//! | `0x00` | `0x80` | configuration |
//! | `0x01`, `0x02` | | RTD data MSB, LSB (LSB bit 0 is the fault flag) |
//! | `0x03`, `0x04` | `0x83`, `0x84` | high fault threshold MSB, LSB |
//! | `0x05`, `0x06` | `0x85`, `0x86` | low fault threshold MSB, LSB |
//! | `0x07` | | fault status |
//!
//! Multi-byte transfers auto-increment the address while chip select stays low; the driver
//! uses that to read both RTD bytes and to write all four threshold bytes in one transaction.
//! The chip speaks SPI mode 1 or 3 (CPHA = 1), MSB first, at up to 5 MHz.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
pub mod rtd;

pub use config::{Config, ConversionMode, Filter, Wiring};

use embedded_hal::spi::{Operation, SpiDevice};

/// SPI mode the MAX31865 needs (mode 1; mode 3 works as well, the chip detects CPOL).
pub const MODE: embedded_hal::spi::Mode = embedded_hal::spi::MODE_1;

/// Register addresses (the read address; OR with [`WRITE`] to write).
pub mod register {
    /// Configuration register.
    pub const CONFIG: u8 = 0x00;
    /// RTD data, most significant byte (the LSB follows at `0x02`).
    pub const RTD_MSB: u8 = 0x01;
    /// High fault threshold, most significant byte (then its LSB, then the low threshold).
    pub const HIGH_FAULT_THRESHOLD_MSB: u8 = 0x03;
    /// Low fault threshold, most significant byte.
    pub const LOW_FAULT_THRESHOLD_MSB: u8 = 0x05;
    /// Fault status register.
    pub const FAULT_STATUS: u8 = 0x07;
    /// Set in the address byte to write rather than read.
    pub const WRITE: u8 = 0x80;
}

/// Configuration register bits.
mod bits {
    pub const BIAS: u8 = 0x80;
    pub const AUTO: u8 = 0x40;
    pub const ONE_SHOT: u8 = 0x20;
    pub const THREE_WIRE: u8 = 0x10;
    /// D3:D2, the fault detection cycle control; written as 0 except to start a cycle.
    pub const FAULT_CYCLE: u8 = 0x0C;
    pub const FAULT_CLEAR: u8 = 0x02;
    pub const FILTER_50HZ: u8 = 0x01;
}

/// Full scale of the 15-bit RTD code: `resistance = code / FULL_SCALE * reference`.
pub const FULL_SCALE: f32 = 32768.0;

/// Everything that can go wrong talking to the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The SPI bus (or its chip select) failed.
    Spi(E),
    /// A one-shot conversion was asked for while the chip converts automatically.
    AutomaticMode,
}

impl<E> From<E> for Error<E> {
    fn from(e: E) -> Self {
        Error::Spi(e)
    }
}

/// One conversion result as read from the RTD data registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtd {
    /// The 15-bit ratio code: `resistance / reference * 32768`.
    pub code: u16,
    /// The chip's fault flag (RTD LSB bit 0): a fault is latched in the fault status register.
    pub fault: bool,
}

impl Rtd {
    /// Splits the RTD data registers (MSB, LSB) into code and fault flag.
    pub const fn from_registers(msb: u8, lsb: u8) -> Self {
        let word = u16::from_be_bytes([msb, lsb]);
        Rtd {
            code: word >> 1,
            fault: word & 1 != 0,
        }
    }

    /// The RTD resistance divided by the reference resistance, in `0.0..1.0`.
    pub fn ratio(self) -> f32 {
        f32::from(self.code) / FULL_SCALE
    }

    /// The RTD resistance in ohms for a given reference resistor.
    pub fn resistance(self, reference_ohms: f32) -> f32 {
        self.ratio() * reference_ohms
    }
}

/// The fault status register (`0x07`). Bits latch until [`Max31865::clear_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultStatus(pub u8);

impl FaultStatus {
    /// D7: the RTD code reached the high fault threshold (open RTD, or too hot).
    pub const RTD_HIGH_THRESHOLD: u8 = 0x80;
    /// D6: the RTD code fell to the low fault threshold (shorted RTD, or too cold).
    pub const RTD_LOW_THRESHOLD: u8 = 0x40;
    /// D5: REFIN- > 0.85 x VBIAS.
    pub const REFIN_HIGH: u8 = 0x20;
    /// D4: REFIN- < 0.85 x VBIAS with FORCE- open.
    pub const REFIN_LOW_FORCE_OPEN: u8 = 0x10;
    /// D3: RTDIN- < 0.85 x VBIAS with FORCE- open.
    pub const RTDIN_LOW_FORCE_OPEN: u8 = 0x08;
    /// D2: over- or under-voltage on an input.
    pub const OVER_UNDER_VOLTAGE: u8 = 0x04;

    /// The raw register value.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether any fault the chip defines is set (D1 and D0 are unused by the chip).
    pub const fn is_fault(self) -> bool {
        self.0 & 0xFC != 0
    }

    /// Whether every bit of `mask` is set.
    pub const fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// A MAX31865 on an SPI device.
#[derive(Debug)]
pub struct Max31865<SPI> {
    spi: SPI,
    config: Config,
}

impl<SPI: SpiDevice> Max31865<SPI> {
    /// Takes the SPI device; nothing is sent until [`Max31865::configure`].
    pub fn new(spi: SPI, config: Config) -> Self {
        Max31865 { spi, config }
    }

    /// Gives the SPI device back.
    pub fn destroy(self) -> SPI {
        self.spi
    }

    /// The configuration this driver writes.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Writes the configuration to the chip: three transactions.
    ///
    /// 1. The configuration register with automatic conversion off, because the datasheet
    ///    forbids changing the notch filter while converting automatically (the chip may
    ///    still be converting from before a microcontroller reset).
    /// 2. Both fault thresholds in one four-byte write starting at `0x83`.
    /// 3. The full configuration register, with the fault-clear bit so that no fault
    ///    latched before configuration survives it.
    pub fn configure(&mut self) -> Result<(), Error<SPI::Error>> {
        let settled = self.config.register_bits() & !bits::AUTO;
        self.write_register(register::CONFIG, settled)?;
        let [high_msb, high_lsb] = self.config.high_threshold_register().to_be_bytes();
        let [low_msb, low_lsb] = self.config.low_threshold_register().to_be_bytes();
        self.spi.write(&[
            register::HIGH_FAULT_THRESHOLD_MSB | register::WRITE,
            high_msb,
            high_lsb,
            low_msb,
            low_lsb,
        ])?;
        self.write_register(
            register::CONFIG,
            self.config.register_bits() | bits::FAULT_CLEAR,
        )
    }

    /// Replaces the configuration and writes it (see [`Max31865::configure`]).
    pub fn set_config(&mut self, config: Config) -> Result<(), Error<SPI::Error>> {
        self.config = config;
        self.configure()
    }

    /// Reads the configuration register as the chip has it.
    pub fn read_config_register(&mut self) -> Result<u8, Error<SPI::Error>> {
        let mut value = [0u8; 1];
        self.read_registers(register::CONFIG, &mut value)?;
        Ok(value[0])
    }

    /// Whether the chip's configuration register holds what [`Max31865::configure`] wrote.
    ///
    /// SPI writes are never acknowledged, so this read-back is the only way to tell a
    /// missing or reset chip (it reads `0x00`, or `0xFF` with MISO floating high) from a
    /// configured one.
    pub fn is_configured(&mut self) -> Result<bool, Error<SPI::Error>> {
        Ok(self.read_config_register()? == self.config.register_bits())
    }

    /// Starts one conversion (one-shot mode only). The result is ready after
    /// [`Filter::conversion_time_us`]; with the bias off, switch it on and let the input
    /// filter settle first.
    pub fn start_one_shot(&mut self) -> Result<(), Error<SPI::Error>> {
        if self.config.mode == ConversionMode::Automatic {
            return Err(Error::AutomaticMode);
        }
        self.write_register(
            register::CONFIG,
            self.config.register_bits() | bits::ONE_SHOT,
        )
    }

    /// Reads the latest conversion: one transaction reading `0x01` and `0x02`.
    pub fn read_rtd(&mut self) -> Result<Rtd, Error<SPI::Error>> {
        let mut data = [0u8; 2];
        self.read_registers(register::RTD_MSB, &mut data)?;
        Ok(Rtd::from_registers(data[0], data[1]))
    }

    /// Reads the fault status register (`0x07`).
    pub fn read_fault_status(&mut self) -> Result<FaultStatus, Error<SPI::Error>> {
        let mut status = [0u8; 1];
        self.read_registers(register::FAULT_STATUS, &mut status)?;
        Ok(FaultStatus(status[0]))
    }

    /// Clears the fault status register: writes the configuration with D1 set and D5, D3
    /// and D2 cleared, as the datasheet asks.
    pub fn clear_fault(&mut self) -> Result<(), Error<SPI::Error>> {
        let value = (self.config.register_bits() & !(bits::ONE_SHOT | bits::FAULT_CYCLE))
            | bits::FAULT_CLEAR;
        self.write_register(register::CONFIG, value)
    }

    /// The resistance of a reading, with the configured reference resistor.
    pub fn resistance(&self, reading: Rtd) -> f32 {
        reading.resistance(self.config.reference_ohms)
    }

    /// The temperature of a reading in degrees Celsius (see [`rtd::temperature`]).
    pub fn temperature(&self, reading: Rtd) -> f32 {
        rtd::temperature(self.resistance(reading), self.config.nominal_ohms)
    }

    fn write_register(&mut self, address: u8, value: u8) -> Result<(), Error<SPI::Error>> {
        self.spi.write(&[address | register::WRITE, value])?;
        Ok(())
    }

    fn read_registers(&mut self, address: u8, out: &mut [u8]) -> Result<(), Error<SPI::Error>> {
        self.spi
            .transaction(&mut [Operation::Write(&[address]), Operation::Read(out)])?;
        Ok(())
    }
}
