//! Samples in, wire messages out: numbering and the heartbeat schedule. Pure state.

use vigil_wire::{Body, Message};

use crate::HEARTBEAT_PERIOD_MS;

/// What one channel said at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// A trusted temperature, in thousandths of a degree Celsius.
    MilliCelsius(i32),
    /// A fault: the MAX31865 fault status register, or a node fault bit
    /// ([`crate::FAULT_NO_ANSWER`], [`crate::FAULT_UNEXPLAINED`]). Never 0.
    Fault(u8),
}

/// Degrees Celsius to the wire's milli-degrees, rounded to nearest. Saturates at the
/// `i32` range; NaN, which the conversion cannot produce, would give 0.
pub fn milli_celsius(celsius: f32) -> i32 {
    libm::roundf(celsius * 1000.0) as i32
}

/// Numbers the node's messages and decides when a heartbeat is due.
#[derive(Debug, Clone)]
pub struct Telemetry {
    next_seq: u16,
    channels: u8,
    firmware: u16,
    /// When the last heartbeat went out; `None` before the first, which is due at once so
    /// the agent learns the channel count as soon as the node boots.
    last_heartbeat_ms: Option<u32>,
}

impl Telemetry {
    /// A node with `channels` compartments running `firmware`.
    pub const fn new(channels: u8, firmware: u16) -> Self {
        Telemetry {
            next_seq: 0,
            channels,
            firmware,
            last_heartbeat_ms: None,
        }
    }

    /// The message for one channel's sample; `channel` counts compartments from 1.
    pub fn tank(&mut self, now_ms: u32, channel: u8, sample: Sample) -> Message {
        let (fault, milli_c) = match sample {
            Sample::MilliCelsius(milli_c) => (0, milli_c),
            Sample::Fault(bits) => (bits, 0),
        };
        self.message(
            now_ms,
            Body::TankTemperature {
                channel,
                fault,
                milli_c,
            },
        )
    }

    /// A heartbeat, if [`HEARTBEAT_PERIOD_MS`] has passed since the last one (or none was
    /// sent yet). `now_ms` wraps after 49.7 days; the arithmetic wraps with it. After a
    /// long stall one heartbeat goes out and the schedule restarts from then: heartbeats
    /// say "alive now", so missed ones are not worth catching up.
    pub fn heartbeat(&mut self, now_ms: u32) -> Option<Message> {
        let due = self
            .last_heartbeat_ms
            .is_none_or(|last| now_ms.wrapping_sub(last) >= HEARTBEAT_PERIOD_MS);
        if !due {
            return None;
        }
        self.last_heartbeat_ms = Some(now_ms);
        Some(self.message(
            now_ms,
            Body::Heartbeat {
                channels: self.channels,
                firmware: self.firmware,
            },
        ))
    }

    fn message(&mut self, node_ms: u32, body: Body) -> Message {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        Message { seq, node_ms, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat_times(telemetry: &mut Telemetry, times: &[u32]) -> [bool; 8] {
        let mut sent = [false; 8];
        for (i, &t) in times.iter().enumerate() {
            sent[i] = telemetry.heartbeat(t).is_some();
        }
        sent
    }

    #[test]
    fn heartbeat_at_boot_then_every_ten_seconds() {
        let mut telemetry = Telemetry::new(4, 0x0102);
        let sent = heartbeat_times(
            &mut telemetry,
            &[500, 5_000, 10_499, 10_500, 20_499, 20_500],
        );
        assert_eq!(sent[..6], [true, false, false, true, false, true]);
    }

    #[test]
    fn heartbeat_survives_the_millisecond_counter_wrapping() {
        let mut telemetry = Telemetry::new(1, 1);
        let before_wrap = u32::MAX - 3_000;
        let sent = heartbeat_times(&mut telemetry, &[before_wrap, 2_000, 6_998, 6_999]);
        // Across the wrap, 6_998 is 9_999 ms after before_wrap and 6_999 is 10_000.
        assert_eq!(sent[..4], [true, false, false, true]);
    }

    #[test]
    fn heartbeat_carries_channels_and_firmware_and_time() {
        let mut telemetry = Telemetry::new(3, 0x0A0B);
        let message = telemetry.heartbeat(42).unwrap();
        assert_eq!(message.node_ms, 42);
        assert_eq!(
            message.body,
            Body::Heartbeat {
                channels: 3,
                firmware: 0x0A0B
            }
        );
    }

    #[test]
    fn every_message_takes_the_next_sequence_number_and_it_wraps() {
        let mut telemetry = Telemetry::new(2, 1);
        telemetry.next_seq = u16::MAX - 1;
        let a = telemetry.heartbeat(0).unwrap();
        let b = telemetry.tank(1, 1, Sample::MilliCelsius(20_000));
        let c = telemetry.tank(2, 2, Sample::Fault(0x80));
        assert_eq!([a.seq, b.seq, c.seq], [u16::MAX - 1, u16::MAX, 0]);
    }

    #[test]
    fn a_fault_carries_the_register_and_no_temperature() {
        let mut telemetry = Telemetry::new(2, 1);
        let good = telemetry.tank(7, 2, Sample::MilliCelsius(-12_345));
        assert_eq!(
            good.body,
            Body::TankTemperature {
                channel: 2,
                fault: 0,
                milli_c: -12_345
            }
        );
        let bad = telemetry.tank(8, 1, Sample::Fault(0x40));
        assert_eq!(
            bad.body,
            Body::TankTemperature {
                channel: 1,
                fault: 0x40,
                milli_c: 0
            }
        );
        assert_eq!(bad.node_ms, 8);
    }

    #[test]
    fn milli_celsius_rounds_to_nearest() {
        assert_eq!(milli_celsius(21.4996), 21_500);
        assert_eq!(milli_celsius(-0.0156), -16);
        assert_eq!(milli_celsius(-200.0), -200_000);
        assert_eq!(milli_celsius(850.0004), 850_000);
    }

    #[test]
    fn firmware_version_follows_the_crate_version() {
        let major: u16 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
        let minor: u16 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
        assert_eq!(crate::FIRMWARE_VERSION, major << 8 | minor);
    }
}
