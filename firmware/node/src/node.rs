//! The body of the node's main loop: read every converter once, write every frame.
//!
//! Owns the hardware only through embedded-hal and embedded-io traits, so it runs on any
//! board and, in tests, on embedded-hal-mock. It never blocks except in the one-shot
//! conversion delay and in the UART's own `write`.

use embedded_hal::{delay::DelayNs, spi::SpiDevice};
use embedded_io::Write;
use max31865::{ConversionMode, Max31865};
use vigil_wire::{MAX_FRAME, Message};

use crate::{
    FAULT_NO_ANSWER, FAULT_UNEXPLAINED, FIRMWARE_VERSION, Sample, Telemetry, milli_celsius,
};

/// A monotonic millisecond counter since boot, wrapping at `u32::MAX` (49.7 days).
pub trait Clock {
    /// Milliseconds since boot, modulo 2^32.
    fn now_ms(&mut self) -> u32;
}

/// The sensor node: one converter per compartment, a UART, a clock.
#[derive(Debug)]
pub struct Node<SPI, UART, CLOCK, const N: usize> {
    probes: [Max31865<SPI>; N],
    uart: UART,
    clock: CLOCK,
    telemetry: Telemetry,
}

impl<SPI, UART, CLOCK, const N: usize> Node<SPI, UART, CLOCK, N>
where
    SPI: SpiDevice,
    UART: Write,
    CLOCK: Clock,
{
    /// Takes the converters (compartment 1 first), the UART and the clock. Talks to none
    /// of them until [`Node::configure`].
    pub fn new(probes: [Max31865<SPI>; N], uart: UART, clock: CLOCK) -> Self {
        const { assert!(N >= 1 && N <= u8::MAX as usize, "1 to 255 channels") };
        Node {
            probes,
            uart,
            clock,
            telemetry: Telemetry::new(N as u8, FIRMWARE_VERSION),
        }
    }

    /// Configures every converter and reads its configuration back. Returns, per channel,
    /// whether that worked. A channel that failed still gets sampled: it reports
    /// [`FAULT_NO_ANSWER`] and is reconfigured each time, so it joins once it answers.
    pub fn configure(&mut self) -> [bool; N] {
        let mut answered = [false; N];
        for (ok, probe) in answered.iter_mut().zip(self.probes.iter_mut()) {
            *ok = probe.configure().is_ok() && probe.is_configured().unwrap_or(false);
        }
        answered
    }

    /// Samples every channel once and writes a frame per channel, preceded by a
    /// heartbeat when one is due. One-shot converters are all started first and read
    /// after one conversion time, spent in `delay`; automatic ones are read at once.
    ///
    /// A UART error does not stop the step: every channel is still sampled (reading a
    /// fault clears it in the chip, so skipping would lose it) and the first error is
    /// returned. The lost frames show at the agent as a gap in `seq`.
    pub fn step(&mut self, delay: &mut impl DelayNs) -> Result<(), UART::Error> {
        let mut result = Ok(());
        let now = self.clock.now_ms();
        if let Some(heartbeat) = self.telemetry.heartbeat(now) {
            result = result.and(send(&mut self.uart, &heartbeat));
        }

        let mut wait_us = 0;
        for probe in self.probes.iter_mut() {
            if probe.config().mode == ConversionMode::OneShot {
                // A failed start shows up as a stale or missing reading below.
                let _ = probe.start_one_shot();
                wait_us = wait_us.max(probe.config().filter.conversion_time_us());
            }
        }
        if wait_us > 0 {
            delay.delay_us(wait_us);
        }

        for (index, probe) in self.probes.iter_mut().enumerate() {
            let sample = sample(probe);
            let now = self.clock.now_ms();
            // `new` bounds N to 255 channels, so the channel number fits.
            let message = self.telemetry.tank(now, index as u8 + 1, sample);
            result = result.and(send(&mut self.uart, &message));
        }
        result.and(self.uart.flush())
    }

    /// Gives the hardware back.
    pub fn destroy(self) -> ([Max31865<SPI>; N], UART, CLOCK) {
        (self.probes, self.uart, self.clock)
    }
}

/// Reads one converter and decides what it may report.
///
/// - No fault flag: the temperature, unless the code is 0, which a real chip always flags
///   (0 is at or below any low threshold), so it is a bus reading nothing: no answer.
/// - Fault flag: the fault status register, after which the fault is cleared so that the
///   next reading shows whether it persists. A status of 0 is [`FAULT_UNEXPLAINED`]; a
///   status with D1 or D0 set cannot come from the chip and is no answer.
/// - No answer in any form: the converter is reconfigured, in case it lost power.
pub fn sample<SPI: SpiDevice>(probe: &mut Max31865<SPI>) -> Sample {
    let sample = match probe.read_rtd() {
        Err(_) => Sample::Fault(FAULT_NO_ANSWER),
        Ok(rtd) if !rtd.fault && rtd.code == 0 => Sample::Fault(FAULT_NO_ANSWER),
        Ok(rtd) if !rtd.fault => Sample::MilliCelsius(milli_celsius(probe.temperature(rtd))),
        Ok(_) => match probe.read_fault_status() {
            Err(_) => Sample::Fault(FAULT_NO_ANSWER),
            Ok(status) if status.bits() & 0x03 != 0 => Sample::Fault(FAULT_NO_ANSWER),
            Ok(status) if status.bits() == 0 => Sample::Fault(FAULT_UNEXPLAINED),
            Ok(status) => Sample::Fault(status.bits()),
        },
    };
    match sample {
        // Errors here are already reported as this sample and will be again next time.
        Sample::Fault(FAULT_NO_ANSWER) => {
            let _ = probe.configure();
        }
        Sample::Fault(_) => {
            let _ = probe.clear_fault();
        }
        Sample::MilliCelsius(_) => {}
    }
    sample
}

fn send<UART: Write>(uart: &mut UART, message: &Message) -> Result<(), UART::Error> {
    let mut frame = [0u8; MAX_FRAME];
    let len = message.encode(&mut frame);
    uart.write_all(&frame[..len])
}
