//! Where the truck was: the newest position fix among the readings, so every alert event
//! can say where the truck was and how old that knowledge is.
//!
//! Position is never judged: it is not a temperature, it has no limit, rule or model, and
//! it never enters the window's watched signals. This tracker only pairs a latitude with
//! the longitude of the same fix (same sender, same monotonic time: one J1939 Vehicle
//! Position frame or one NMEA sentence) and keeps the newest pair. A flagged half (not
//! available, error) or a value no place on Earth has (J1939 carries -210 to 211 degrees)
//! is no fix: the last known position stays. Pure: readings in, the
//! position out; ages are differences of monotonic times, never of wall times.

use serde::Serialize;

use super::alert::AlertEvent;
use crate::reading::{Origin, Reading, Timestamp};
use crate::signals::{LATITUDE, LONGITUDE};

/// A position fix: WGS 84 degrees, north and east positive, and when it was taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub latitude: f64,
    pub longitude: f64,
    pub at: Timestamp,
    /// The receiver: a J1939 controller or a GPS's serial port.
    pub origin: Origin,
}

/// The last known position as an alert carries it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AlertPosition {
    pub latitude: f64,
    pub longitude: f64,
    /// When the fix was taken (its wall time is for the record).
    pub at: Timestamp,
    /// Seconds from the fix to the alert event, on the monotonic clock (0 when the fix is
    /// as new as the event).
    pub age_s: f64,
}

/// One half of a fix, waiting for the other.
#[derive(Clone, Debug)]
struct Half {
    value: f64,
    at: Timestamp,
    origin: Origin,
}

/// The newest position among the readings.
#[derive(Clone, Debug, Default)]
pub struct PositionTracker {
    latitude: Option<Half>,
    longitude: Option<Half>,
    last: Option<Position>,
}

impl PositionTracker {
    /// Takes one reading; anything but a good latitude or longitude is ignored.
    pub fn observe(&mut self, reading: &Reading) {
        let name = reading.signal.as_str();
        let (slot, bound) = if name == LATITUDE {
            (&mut self.latitude, 90.0)
        } else if name == LONGITUDE {
            (&mut self.longitude, 180.0)
        } else {
            return;
        };
        // J1939's range (-210 to 211 degrees) is wider than the Earth: no place, no fix.
        let Some(value) = reading.value().filter(|v: &f64| v.abs() <= bound) else {
            return;
        };
        *slot = Some(Half {
            value,
            at: reading.at,
            origin: reading.origin.clone(),
        });
        if let (Some(lat), Some(lon)) = (&self.latitude, &self.longitude)
            && lat.origin == lon.origin
            && lat.at.mono == lon.at.mono
        {
            self.last = Some(Position {
                latitude: lat.value,
                longitude: lon.value,
                at: lat.at,
                origin: lat.origin.clone(),
            });
        }
    }

    /// The newest complete fix, if one was ever seen.
    pub fn last(&self) -> Option<&Position> {
        self.last.as_ref()
    }

    /// The position an alert event at `at` carries: the newest fix and its age.
    pub fn at(&self, at: Timestamp) -> Option<AlertPosition> {
        self.last.as_ref().map(|p| AlertPosition {
            latitude: p.latitude,
            longitude: p.longitude,
            at: p.at,
            age_s: at.mono.saturating_sub(p.at.mono).as_secs_f64(),
        })
    }

    /// Writes the last known position, aged to each event's time, into `events`.
    pub fn stamp(&self, events: &mut [AlertEvent]) {
        for event in events {
            let position = self.at(event.at());
            event.alert_mut().position = position;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::reading::{Quality, Signal};
    use crate::signals::COOLANT_TEMPERATURE;

    fn at(secs: f64) -> Timestamp {
        Timestamp {
            // The wall clock is stepped back an hour: ages must not notice.
            wall_us: 1_781_503_200_000_000 - 3_600_000_000 + (secs * 1e6) as i64,
            mono: Duration::from_secs_f64(secs),
        }
    }

    fn can(sa: u8) -> Origin {
        Origin::Can {
            bus: Arc::from("can0"),
            source_address: sa,
        }
    }

    fn good(name: &str, secs: f64, value: f64, origin: Origin) -> Reading {
        Reading::good(Signal::new(name), at(secs), value, origin)
    }

    /// Feeds `readings` and returns what an event at `event_secs` would carry, as
    /// `(latitude, longitude, age_s)`.
    fn check(readings: &[Reading], event_secs: f64, expect: Option<(f64, f64, f64)>) {
        let mut t = PositionTracker::default();
        for r in readings {
            t.observe(r);
        }
        let got = t
            .at(at(event_secs))
            .map(|p| (p.latitude, p.longitude, p.age_s));
        match (got, expect) {
            (Some(g), Some(e)) => assert!(
                (g.0 - e.0).abs() < 1e-12 && (g.1 - e.1).abs() < 1e-12 && (g.2 - e.2).abs() < 1e-6,
                "{g:?}, expected {e:?}"
            ),
            _ => assert_eq!(got, expect),
        }
    }

    #[test]
    fn a_fix_is_a_latitude_and_longitude_of_one_message_and_ages_on_the_monotonic_clock() {
        let gps = Origin::Serial {
            port: Arc::from("/dev/ttyACM0"),
        };
        // Nothing seen: no position.
        check(&[], 10.0, None);
        check(&[good(COOLANT_TEMPERATURE, 1.0, 80.0, can(0))], 10.0, None);
        // One fix, 7.5 s before the event.
        check(
            &[
                good(LATITUDE, 2.5, 48.1, can(0x1C)),
                good(LONGITUDE, 2.5, 11.5, can(0x1C)),
            ],
            10.0,
            Some((48.1, 11.5, 7.5)),
        );
        // Half a fix is none; halves of two messages or two senders are none.
        check(&[good(LATITUDE, 2.5, 48.1, can(0x1C))], 10.0, None);
        check(
            &[
                good(LATITUDE, 2.5, 48.1, can(0x1C)),
                good(LONGITUDE, 3.5, 11.5, can(0x1C)),
            ],
            10.0,
            None,
        );
        check(
            &[
                good(LATITUDE, 2.5, 48.1, can(0x1C)),
                good(LONGITUDE, 2.5, 11.5, gps.clone()),
            ],
            10.0,
            None,
        );
        // A newer fix from another receiver replaces the older one.
        check(
            &[
                good(LATITUDE, 2.0, 48.1, can(0x1C)),
                good(LONGITUDE, 2.0, 11.5, can(0x1C)),
                good(LATITUDE, 4.0, 48.2, gps.clone()),
                good(LONGITUDE, 4.0, 11.6, gps.clone()),
            ],
            10.0,
            Some((48.2, 11.6, 6.0)),
        );
        // Not available after a fix: the last known position stays, and ages.
        let mut lost = vec![
            good(LATITUDE, 2.0, 48.1, can(0x1C)),
            good(LONGITUDE, 2.0, 11.5, can(0x1C)),
        ];
        for name in [LATITUDE, LONGITUDE] {
            lost.push(Reading::flagged(
                Signal::new(name),
                at(3.0),
                Quality::NotAvailable,
                can(0x1C),
            ));
        }
        check(&lost, 62.0, Some((48.1, 11.5, 60.0)));
        // A latitude of 150 degrees is J1939 data but no place: no fix.
        check(
            &[
                good(LATITUDE, 2.0, 48.1, can(0x1C)),
                good(LONGITUDE, 2.0, 11.5, can(0x1C)),
                good(LATITUDE, 3.0, 150.0, can(0x1C)),
                good(LONGITUDE, 3.0, 11.6, can(0x1C)),
                good(LATITUDE, 4.0, 48.2, can(0x1C)),
                good(LONGITUDE, 4.0, -180.5, can(0x1C)),
            ],
            10.0,
            Some((48.1, 11.5, 8.0)),
        );
        // An event stamped before the fix (a tick closed by the fix's own reading): age 0.
        check(
            &[
                good(LATITUDE, 10.3, 48.1, can(0x1C)),
                good(LONGITUDE, 10.3, 11.5, can(0x1C)),
            ],
            10.0,
            Some((48.1, 11.5, 0.0)),
        );
    }
}
