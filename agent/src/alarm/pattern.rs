//! The buzzer's cadence per severity, as a pure state machine stepped by monotonic time.
//!
//! Time is a [`Duration`] since an origin the caller chooses (the alarm task's start), so
//! tests step it exactly and nothing here reads a clock or sleeps. A pattern always starts
//! with its sounding phase: the first beep of a new or escalated alert is never delayed by
//! the silent part of a cycle.

use std::time::Duration;

use super::Buzzer;

/// One cycle of a pattern: sound for `on`, then stay quiet for `off`, and repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    pub on: Duration,
    pub off: Duration,
}

/// A warning: one short chirp every two seconds, noticeable without being alarming.
pub const WARNING: Cadence = Cadence {
    on: Duration::from_millis(200),
    off: Duration::from_millis(1800),
};

/// A critical alert: fast beeps, twice a second, that do not stop until acknowledged.
pub const CRITICAL: Cadence = Cadence {
    on: Duration::from_millis(250),
    off: Duration::from_millis(250),
};

impl Buzzer {
    /// The cadence of this mode; `None` when silent.
    pub fn cadence(self) -> Option<Cadence> {
        match self {
            Buzzer::Silent => None,
            Buzzer::Warning => Some(WARNING),
            Buzzer::Critical => Some(CRITICAL),
        }
    }
}

/// Which pattern plays and since when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatternClock {
    mode: Buzzer,
    /// When the current pattern's first sounding phase began.
    since: Duration,
}

impl PatternClock {
    pub fn mode(&self) -> Buzzer {
        self.mode
    }

    /// Plays `mode` from `now`. The pattern restarts (with its sounding phase) when the mode
    /// changes or when `restart` says a new alert wants to be heard; otherwise it continues
    /// its cycle undisturbed.
    pub fn play(&mut self, mode: Buzzer, now: Duration, restart: bool) {
        if mode != self.mode || restart {
            self.mode = mode;
            self.since = now;
        }
    }

    /// Whether the buzzer sounds at `now`.
    pub fn level(&self, now: Duration) -> bool {
        let Some(cadence) = self.mode.cadence() else {
            return false;
        };
        let period = cadence.on + cadence.off;
        if cadence.off.is_zero() {
            return true;
        }
        let phase = now.saturating_sub(self.since).as_nanos() % period.as_nanos();
        phase < cadence.on.as_nanos()
    }

    /// When the level next changes after `now`; `None` when it never will (silent, or a
    /// pattern without a quiet phase).
    pub fn next_change(&self, now: Duration) -> Option<Duration> {
        let cadence = self.mode.cadence()?;
        if cadence.off.is_zero() {
            return None;
        }
        let period = (cadence.on + cadence.off).as_nanos();
        let elapsed = now.saturating_sub(self.since).as_nanos();
        let cycle_start = elapsed - elapsed % period;
        let on = cadence.on.as_nanos();
        let next = if elapsed % period < on {
            cycle_start + on
        } else {
            cycle_start + period
        };
        Some(self.since + nanos(next))
    }
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Steps a clock from its start along its own change points and lists (ms, level).
    fn edges(mode: Buzzer, start_ms: u64, until_ms: u64) -> Vec<(u64, bool)> {
        let mut clock = PatternClock::default();
        clock.play(mode, ms(start_ms), false);
        let mut now = ms(start_ms);
        let mut out = vec![(start_ms, clock.level(now))];
        while let Some(next) = clock.next_change(now) {
            if next > ms(until_ms) {
                break;
            }
            now = next;
            out.push((now.as_millis() as u64, clock.level(now)));
        }
        out
    }

    #[test]
    fn a_warning_chirps_200ms_every_2s_and_a_critical_beeps_twice_a_second() {
        assert_eq!(
            edges(Buzzer::Warning, 1000, 5000),
            [
                (1000, true),
                (1200, false),
                (3000, true),
                (3200, false),
                (5000, true)
            ]
        );
        assert_eq!(
            edges(Buzzer::Critical, 0, 1000),
            [
                (0, true),
                (250, false),
                (500, true),
                (750, false),
                (1000, true)
            ]
        );
        assert_eq!(edges(Buzzer::Silent, 0, 10_000), [(0, false)]);
    }

    #[test]
    fn the_same_mode_continues_its_cycle_a_new_mode_or_a_restart_begins_sounding() {
        let mut clock = PatternClock::default();
        clock.play(Buzzer::Warning, ms(0), false);
        clock.play(Buzzer::Warning, ms(700), false);
        assert!(
            !clock.level(ms(700)),
            "continuing: still in the quiet phase"
        );
        assert_eq!(clock.next_change(ms(700)), Some(ms(2000)));

        clock.play(Buzzer::Warning, ms(700), true);
        assert!(clock.level(ms(700)), "a restart sounds at once");
        assert_eq!(clock.next_change(ms(700)), Some(ms(900)));

        clock.play(Buzzer::Critical, ms(800), false);
        assert!(clock.level(ms(800)));
        assert_eq!(clock.next_change(ms(800)), Some(ms(1050)));

        clock.play(Buzzer::Silent, ms(900), false);
        assert!(!clock.level(ms(900)));
        assert_eq!(clock.next_change(ms(900)), None);
    }

    #[test]
    fn a_late_step_lands_in_the_right_phase() {
        let mut clock = PatternClock::default();
        clock.play(Buzzer::Warning, ms(0), false);
        // A wake-up 5 ms late inside the quiet phase of the 3rd cycle.
        assert!(!clock.level(ms(4205)));
        assert_eq!(clock.next_change(ms(4205)), Some(ms(6000)));
        assert!(clock.level(ms(6000)));
    }
}
