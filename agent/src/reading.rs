//! The data model every stage speaks: a [`Reading`] is one value of one signal, stamped twice.
//!
//! # Two clocks
//!
//! A reading carries the wall-clock time (`wall`), which is what the record says to the
//! fleet, and a monotonic time (`mono`), which is what windows, rates and ordering use.
//! The wall clock of a gateway jumps (GPS fix, NTP step, a dead RTC battery at boot); the
//! monotonic clock never goes backwards. Nothing in the pipeline may compute a duration
//! from two `wall` values.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A VSS signal name such as `Vehicle.Speed`. Cheap to clone: readings share one allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Signal(Arc<str>);

impl Signal {
    pub fn new(name: &str) -> Self {
        Signal(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a reading was taken, on both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Microseconds since the Unix epoch, from the source's wall clock. For the record only.
    pub wall_us: i64,
    /// Time since the agent's (or the simulation's, or the replayed log's) start, monotonic.
    pub mono: Duration,
}

impl Timestamp {
    pub fn wall(&self) -> SystemTime {
        if self.wall_us >= 0 {
            UNIX_EPOCH + Duration::from_micros(self.wall_us as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(self.wall_us.unsigned_abs())
        }
    }

    /// Wall-clock seconds since the Unix epoch, as written in candump logs and CSV files.
    pub fn wall_secs(&self) -> f64 {
        self.wall_us as f64 / 1e6
    }
}

/// How far a value can be trusted. Anything but `Good` carries no number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    /// The sender says it has no value (J1939 `0xFF..`).
    NotAvailable,
    /// The sender says its sensor is in error (J1939 `0xFE..`, a MAX31865 fault).
    Error,
    /// A raw value in a range the specification reserves.
    OutOfRange,
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quality::Good => "good",
            Quality::NotAvailable => "not_available",
            Quality::Error => "error",
            Quality::OutOfRange => "out_of_range",
        })
    }
}

/// Where a reading came from, so one signal from two controllers is two streams.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// A J1939 controller: the bus and the source address.
    Can { bus: Arc<str>, source_address: u8 },
    /// The serial tank sensor node on a port.
    Serial { port: Arc<str> },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Can {
                bus,
                source_address,
            } => write!(f, "{bus}/sa{source_address:02X}"),
            Origin::Serial { port } => write!(f, "{port}"),
        }
    }
}

/// One value of one signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub signal: Signal,
    pub at: Timestamp,
    /// `Some` exactly when `quality` is [`Quality::Good`].
    value: Option<f64>,
    pub quality: Quality,
    pub origin: Origin,
}

impl Reading {
    /// A trustworthy value.
    #[inline]
    pub fn good(signal: Signal, at: Timestamp, value: f64, origin: Origin) -> Self {
        Reading {
            signal,
            at,
            value: Some(value),
            quality: Quality::Good,
            origin,
        }
    }

    /// A reading that says the value is missing or wrong, and so carries no number.
    #[inline]
    pub fn flagged(signal: Signal, at: Timestamp, quality: Quality, origin: Origin) -> Self {
        debug_assert_ne!(quality, Quality::Good, "a flagged reading needs a flag");
        Reading {
            signal,
            at,
            value: None,
            quality,
            origin,
        }
    }

    /// The value, if it can be trusted.
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(v) => write!(f, "{:.3} {} = {:.2}", self.at.wall_secs(), self.signal, v),
            None => write!(
                f,
                "{:.3} {} = [{}]",
                self.at.wall_secs(),
                self.signal,
                self.quality
            ),
        }
    }
}

/// Hands out timestamps from the real clocks: the wall clock for the record and a
/// monotonic clock started with the agent.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    started: std::time::Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            started: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        let wall_us = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_micros() as i64,
            Err(before) => -(before.duration().as_micros() as i64),
        };
        Timestamp {
            wall_us,
            mono: self.started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagged_readings_carry_no_number() {
        let at = Timestamp {
            wall_us: 0,
            mono: Duration::ZERO,
        };
        let origin = Origin::Serial {
            port: Arc::from("/dev/ttyS1"),
        };
        let r = Reading::flagged(
            Signal::new("Vehicle.Speed"),
            at,
            Quality::NotAvailable,
            origin,
        );
        assert_eq!(r.value(), None);
        assert_eq!(r.to_string(), "0.000 Vehicle.Speed = [not_available]");
    }

    #[test]
    fn wall_time_before_the_epoch_is_representable() {
        // A gateway whose RTC battery died can boot in 1970 or earlier after a bad NTP step.
        let at = Timestamp {
            wall_us: -1_500_000,
            mono: Duration::from_secs(3),
        };
        assert_eq!(at.wall(), UNIX_EPOCH - Duration::from_micros(1_500_000));
    }
}
