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
    use crate::detect::alert::AlertKind;
    use crate::detect::detector::tests::{coolant, default_detector, observe};
    use crate::reading::{Quality, Signal};
    use crate::signals::COOLANT_TEMPERATURE;
    use crate::vehicle::VehicleConfig;

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

    #[test]
    fn position_is_never_judged_and_every_alert_carries_the_last_fix_and_its_age() {
        let mut d = default_detector(&VehicleConfig::default());
        let receiver = Origin::Can {
            bus: Arc::from("can0"),
            source_address: 0x1C,
        };
        let fix = |secs: u64, lat: f64, lon: f64| {
            let at = Timestamp {
                wall_us: secs as i64 * 1_000_000,
                mono: Duration::from_secs(secs),
            };
            [
                Reading::good(Signal::new(LATITUDE), at, lat, receiver.clone()),
                Reading::good(Signal::new(LONGITUDE), at, lon, receiver.clone()),
            ]
        };
        let mut events = Vec::new();
        // Ten minutes of coolant at 85 and a truck that jumps about wildly, stops sending
        // its position (not available) and then sends out-of-band values: no position is
        // ever a finding.
        for secs in 0..600 {
            events.extend(observe(
                &mut d,
                &coolant(secs, secs as i64 * 1_000_000, 85.0),
            ));
            let (lat, lon) = match secs {
                0..200 => (48.0 + secs as f64 * 0.01, 11.0),
                200..400 => (if secs % 2 == 0 { -90.0 } else { 90.0 }, 200.0),
                _ => (48.0, 11.0),
            };
            if !(300..310).contains(&secs) {
                for r in fix(secs, lat, lon) {
                    events.extend(observe(&mut d, &r));
                }
            }
        }
        assert!(events.is_empty(), "position was judged: {events:?}");
        assert!(
            d.live().get(&Signal::new(LATITUDE), &receiver).is_none(),
            "position is not a watched stream"
        );
        // The last fix came at 599 s; from 600 s the coolant is over its limit.
        let mut raised = Vec::new();
        for secs in 600..606 {
            raised.extend(observe(
                &mut d,
                &coolant(secs, secs as i64 * 1_000_000, 120.0),
            ));
        }
        let alert = raised
            .iter()
            .find(|e| matches!(e, AlertEvent::Raised(a) if a.kind == AlertKind::HighLimit))
            .unwrap_or_else(|| panic!("the coolant over its limit is raised: {raised:?}"))
            .alert();
        let position = alert.position.expect("the last fix");
        assert_eq!((position.latitude, position.longitude), (48.0, 11.0));
        assert_eq!(position.at.mono, Duration::from_secs(599));
        let age = alert.changed_at.mono - Duration::from_secs(599);
        assert!(
            age >= Duration::from_secs(3),
            "debounced for 2 s from 600 s: {age:?}"
        );
        assert_eq!(position.age_s, age.as_secs_f64());

        // A detector that never saw a position says none.
        let mut blind = default_detector(&VehicleConfig::default());
        let mut events = observe(&mut blind, &coolant(0, 0, 120.0));
        events.extend(observe(&mut blind, &coolant(3, 3_000_000, 120.0)));
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e.alert().position.is_none()));
    }
}
