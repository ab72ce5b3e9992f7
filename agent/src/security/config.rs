//! The `[security]` section: what the intrusion monitor learns and what it calls an attack.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;

/// The `[security]` section. Every limit is per second of the frames' own clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Watch the buses at all.
    pub enabled: bool,
    /// How long a bus is learned from its first frame (its senders, each identifier's
    /// rate, its busiest second); a parameter group or identifier first seen later is
    /// learned for as long from then.
    #[serde(with = "duration")]
    pub learn: Duration,
    /// One finding about one sender or identifier is reported at most this often.
    #[serde(with = "duration")]
    pub report_every: Duration,
    /// An identifier comes too fast when a second holds more than this times the most it
    /// held in a learned second, plus 5.
    pub rate_factor: f64,
    /// Frames of one identifier in one second that are a flood, learned or not. No J1939
    /// message is sent more often than every 10 ms (100 a second).
    pub id_flood: u32,
    /// A bus floods when a second holds more than this times its busiest learned second,
    /// plus 100 frames.
    pub bus_flood_factor: f64,
    /// Identifiers never seen on a bus, in one second after it was learned, that make a
    /// fuzzing finding. A truck's bus carries 50 to 150 identifiers, all seen early.
    pub new_ids: u32,
    /// Requests (PGN 59904) on a bus in one second that overload it. Trucks send a few.
    pub requests: u32,
    /// TP.CM frames from one sender in one second that abuse the transport protocol
    /// (a DM1 broadcast is one a second).
    pub tp_cm_per_sender: u32,
    /// TP.CM frames on one bus in one second that abuse the transport protocol.
    pub tp_cm_per_bus: u32,
    /// Error frames (frames the bus broke off) on one bus in one second that make a
    /// finding. A healthy bus has none.
    pub bus_errors: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            enabled: true,
            learn: Duration::from_secs(10),
            report_every: Duration::from_secs(60),
            rate_factor: 1.5,
            id_flood: 500,
            bus_flood_factor: 1.5,
            new_ids: 20,
            requests: 20,
            tp_cm_per_sender: 10,
            tp_cm_per_bus: 50,
            bus_errors: 20,
        }
    }
}

impl SecurityConfig {
    /// Checks the values; returns the key and what is wrong. No I/O.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        duration::check_positive(self.learn).map_err(|m| ("security.learn", m))?;
        duration::check_positive(self.report_every).map_err(|m| ("security.report_every", m))?;
        for (key, factor) in [
            ("security.rate_factor", self.rate_factor),
            ("security.bus_flood_factor", self.bus_flood_factor),
        ] {
            if !(factor.is_finite() && factor >= 1.0) {
                return Err((
                    key,
                    format!("expected a factor of at least 1, found {factor}"),
                ));
            }
        }
        for (key, limit) in [
            ("security.id_flood", self.id_flood),
            ("security.new_ids", self.new_ids),
            ("security.requests", self.requests),
            ("security.tp_cm_per_sender", self.tp_cm_per_sender),
            ("security.tp_cm_per_bus", self.tp_cm_per_bus),
            ("security.bus_errors", self.bus_errors),
        ] {
            if limit == 0 {
                return Err((key, "expected at least 1 a second, found 0".to_owned()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_checks_and_bad_values_are_named() {
        assert_eq!(SecurityConfig::default().check(), Ok(()));
        let bad = |f: fn(&mut SecurityConfig)| {
            let mut c = SecurityConfig::default();
            f(&mut c);
            c.check().unwrap_err().0
        };
        assert_eq!(bad(|c| c.learn = Duration::ZERO), "security.learn");
        assert_eq!(bad(|c| c.rate_factor = 0.5), "security.rate_factor");
        assert_eq!(
            bad(|c| c.bus_flood_factor = f64::NAN),
            "security.bus_flood_factor"
        );
        assert_eq!(bad(|c| c.requests = 0), "security.requests");
    }
}
