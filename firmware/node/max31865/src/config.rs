//! What the driver writes to the configuration and fault threshold registers.

use crate::{FULL_SCALE, bits, rtd};

/// How the RTD is wired to the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wiring {
    /// Two wires: the lead resistance adds to the reading.
    TwoWire,
    /// Three wires: the chip cancels matched lead resistance (D4 = 1).
    ThreeWire,
    /// Four wires (Kelvin): lead resistance does not enter the reading.
    #[default]
    FourWire,
}

/// Notch frequency of the ADC's noise filter (D0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Rejects 50 Hz and its harmonics.
    Hz50,
    /// Rejects 60 Hz and its harmonics (the power-on default).
    #[default]
    Hz60,
}

impl Filter {
    /// The worst-case time from a one-shot command to its result, in microseconds
    /// (datasheet: 62.5 ms typical, 66 ms max at 50 Hz; 52 ms typical, 55 ms max at 60 Hz).
    pub const fn conversion_time_us(self) -> u32 {
        match self {
            Filter::Hz50 => 66_000,
            Filter::Hz60 => 55_000,
        }
    }
}

/// When the chip converts (D6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConversionMode {
    /// Continuously, one result every ~21 ms or less; the bias stays on.
    #[default]
    Automatic,
    /// Only on [`crate::Max31865::start_one_shot`] ("normally off").
    OneShot,
}

/// The chip configuration and the circuit around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// RTD wiring.
    pub wiring: Wiring,
    /// Mains notch filter.
    pub filter: Filter,
    /// Whether VBIAS is on (D7). Automatic conversion keeps it on whatever this says.
    pub bias: bool,
    /// Automatic or one-shot conversion.
    pub mode: ConversionMode,
    /// The reference resistor on the board, in ohms (430 for a PT100 on most boards,
    /// 4300 for a PT1000).
    pub reference_ohms: f32,
    /// The RTD's resistance at 0 degC, in ohms (100 for a PT100).
    pub nominal_ohms: f32,
    /// 15-bit code at or below which the chip flags "RTD low" (0 disables it).
    pub low_threshold: u16,
    /// 15-bit code at or above which the chip flags "RTD high" (`0x7FFF` disables it).
    pub high_threshold: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

impl Config {
    /// A PT100 on a 430 ohm reference, four wires, 60 Hz filter, bias on, automatic
    /// conversion, thresholds at their power-on values (off). Usable in `const` items.
    pub const DEFAULT: Config = Config {
        wiring: Wiring::FourWire,
        filter: Filter::Hz60,
        bias: true,
        mode: ConversionMode::Automatic,
        reference_ohms: 430.0,
        nominal_ohms: 100.0,
        low_threshold: 0,
        high_threshold: 0x7FFF,
    };

    /// Sets the wiring.
    pub const fn wiring(mut self, wiring: Wiring) -> Self {
        self.wiring = wiring;
        self
    }

    /// Sets the notch filter.
    pub const fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Switches VBIAS on or off.
    pub const fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// Sets the conversion mode.
    pub const fn mode(mut self, mode: ConversionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the reference resistor and the RTD's nominal resistance, in ohms.
    pub const fn resistors(mut self, reference_ohms: f32, nominal_ohms: f32) -> Self {
        self.reference_ohms = reference_ohms;
        self.nominal_ohms = nominal_ohms;
        self
    }

    /// Sets the fault thresholds as raw 15-bit codes.
    pub const fn fault_thresholds(mut self, low: u16, high: u16) -> Self {
        self.low_threshold = low & 0x7FFF;
        self.high_threshold = high & 0x7FFF;
        self
    }

    /// Sets the fault thresholds from temperatures, with the configured resistors: a
    /// reading outside `low_c..high_c` latches a threshold fault in the chip, which is
    /// also how an open (code near full scale) or shorted (code near 0) RTD shows up in
    /// automatic mode. Set the resistors first.
    pub fn fault_thresholds_celsius(self, low_c: f32, high_c: f32) -> Self {
        let low = self.code_for(rtd::resistance(low_c, self.nominal_ohms));
        let high = self.code_for(rtd::resistance(high_c, self.nominal_ohms));
        self.fault_thresholds(low, high)
    }

    /// The 15-bit code the chip reports for a resistance, saturated to the code range.
    pub fn code_for(&self, ohms: f32) -> u16 {
        let code = ohms / self.reference_ohms * FULL_SCALE;
        if code <= 0.0 {
            0
        } else if code >= 32767.0 {
            0x7FFF
        } else {
            // Truncation matches the ADC, which reports the code below the exact ratio.
            code as u16
        }
    }

    /// The configuration register value, without one-shot, fault cycle or fault clear.
    pub(crate) fn register_bits(&self) -> u8 {
        let mut value = 0;
        if self.bias {
            value |= bits::BIAS;
        }
        if self.mode == ConversionMode::Automatic {
            value |= bits::AUTO;
        }
        if self.wiring == Wiring::ThreeWire {
            value |= bits::THREE_WIRE;
        }
        if self.filter == Filter::Hz50 {
            value |= bits::FILTER_50HZ;
        }
        value
    }

    /// The high threshold as its register pair holds it (bit 0 is unused; setting it
    /// makes the disabled value equal the chip's power-on `0xFFFF`).
    pub(crate) fn high_threshold_register(&self) -> u16 {
        (self.high_threshold << 1) | 1
    }

    /// The low threshold as its register pair holds it.
    pub(crate) fn low_threshold_register(&self) -> u16 {
        self.low_threshold << 1
    }
}
