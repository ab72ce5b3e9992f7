//! The buzzer driver: a [`PatternClock`] on an embedded-hal [`OutputPin`].
//!
//! Family style (`new(pin)` / `destroy() -> pin`, an [`Error`] over the pin's error), and
//! non-blocking: the driver never sleeps. [`BuzzerPin::update`] writes the level the pattern
//! wants at `now` and says when it next changes; the caller (the alarm task) waits for that
//! moment however it likes. The pin is written only when its level changes, and the first
//! update always writes, so a line left high by a previous run is brought low at start.

use std::time::Duration;

use embedded_hal::digital::OutputPin;

use super::Buzzer;
use super::pattern::PatternClock;

/// A buzzer pin failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error<E: std::fmt::Debug> {
    #[error("the buzzer's GPIO line could not be set: {0:?}")]
    Pin(E),
}

pub struct BuzzerPin<P> {
    pin: P,
    clock: PatternClock,
    /// The level last written; `None` before the first write or after a failed one.
    written: Option<bool>,
}

impl<P: OutputPin> BuzzerPin<P> {
    pub fn new(pin: P) -> Self {
        BuzzerPin {
            pin,
            clock: PatternClock::default(),
            written: None,
        }
    }

    /// Gives the pin back, as it was last written.
    pub fn destroy(self) -> P {
        self.pin
    }

    /// The pattern playing now.
    pub fn mode(&self) -> Buzzer {
        self.clock.mode()
    }

    /// Plays `mode` from `now` (see [`PatternClock::play`]). Writes nothing: call
    /// [`BuzzerPin::update`] next.
    pub fn play(&mut self, mode: Buzzer, now: Duration, restart: bool) {
        self.clock.play(mode, now, restart);
    }

    /// Sets the pin to the pattern's level at `now` if it is not there already, and returns
    /// when the level next changes (`None`: not until another `play`).
    pub fn update(&mut self, now: Duration) -> Result<Option<Duration>, Error<P::Error>> {
        let level = self.clock.level(now);
        if self.written != Some(level) {
            self.written = None;
            if level {
                self.pin.set_high()
            } else {
                self.pin.set_low()
            }
            .map_err(Error::Pin)?;
            self.written = Some(level);
        }
        Ok(self.clock.next_change(now))
    }

    /// Stops any pattern and brings the pin low now.
    pub fn silence(&mut self, now: Duration) -> Result<(), Error<P::Error>> {
        self.clock.play(Buzzer::Silent, now, false);
        self.update(now).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Brings the pin low at 0, plays `mode` from 0 and follows the driver's own deadlines
    /// up to `until_ms`, expecting exactly `expected` pin writes; returns (ms, level) at
    /// every step.
    fn check(mode: Buzzer, until_ms: u64, expected: &[Transaction]) -> Vec<(u64, bool)> {
        let mut buzzer = BuzzerPin::new(Mock::new(expected));
        assert_eq!(buzzer.update(ms(0)).unwrap(), None);
        buzzer.play(mode, ms(0), false);
        let mut now = ms(0);
        let mut steps = vec![];
        loop {
            let next = buzzer.update(now).unwrap();
            steps.push((now.as_millis() as u64, buzzer.written == Some(true)));
            match next {
                Some(at) if at <= ms(until_ms) => now = at,
                _ => break,
            }
        }
        buzzer.destroy().done();
        steps
    }

    #[test]
    fn warning_pattern_pin_transactions() {
        use State::{High, Low};
        let steps = check(
            Buzzer::Warning,
            4200,
            &[
                Transaction::set(Low), // start: a line left high is brought low
                Transaction::set(High),
                Transaction::set(Low),
                Transaction::set(High),
                Transaction::set(Low),
                Transaction::set(High),
                Transaction::set(Low),
            ],
        );
        assert_eq!(
            steps,
            [
                (0, true),
                (200, false),
                (2000, true),
                (2200, false),
                (4000, true),
                (4200, false)
            ]
        );
    }

    #[test]
    fn critical_pattern_pin_transactions() {
        use State::{High, Low};
        let steps = check(
            Buzzer::Critical,
            1000,
            &[
                Transaction::set(Low),
                Transaction::set(High),
                Transaction::set(Low),
                Transaction::set(High),
                Transaction::set(Low),
                Transaction::set(High),
            ],
        );
        assert_eq!(
            steps,
            [
                (0, true),
                (250, false),
                (500, true),
                (750, false),
                (1000, true)
            ]
        );
    }

    #[test]
    fn silent_writes_low_once_and_schedules_nothing() {
        let steps = check(Buzzer::Silent, 10_000, &[Transaction::set(State::Low)]);
        assert_eq!(steps, [(0, false)]);
    }

    #[test]
    fn updates_between_changes_write_nothing_and_silence_writes_low() {
        use State::{High, Low};
        let mut buzzer =
            BuzzerPin::new(Mock::new(&[Transaction::set(High), Transaction::set(Low)]));
        buzzer.play(Buzzer::Critical, ms(0), false);
        for t in [0, 10, 100, 249] {
            assert_eq!(buzzer.update(ms(t)).unwrap(), Some(ms(250)));
        }
        buzzer.silence(ms(300)).unwrap();
        assert_eq!(buzzer.mode(), Buzzer::Silent);
        buzzer.destroy().done();
    }

    #[test]
    fn a_failed_write_is_reported_and_retried() {
        use State::High;
        let mut buzzer = BuzzerPin::new(Mock::new(&[
            Transaction::set(High).with_error(MockError::Io(std::io::ErrorKind::Other)),
            Transaction::set(High),
        ]));
        buzzer.play(Buzzer::Warning, ms(0), false);
        let err = buzzer.update(ms(0)).unwrap_err();
        assert!(matches!(err, Error::Pin(_)), "{err:?}");
        assert_eq!(buzzer.update(ms(1)).unwrap(), Some(ms(200)));
        buzzer.destroy().done();
    }
}
