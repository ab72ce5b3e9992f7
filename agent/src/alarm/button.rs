//! The acknowledge button: a pure [`Debouncer`] and its driver on an embedded-hal
//! [`InputPin`], polled (never waited on) by the alarm task.
//!
//! A press counts once the line has read "pressed" steadily for the debounce time, after
//! having read "released" steadily before. The first steady level after (re)starting is
//! taken as it is, without a press: a button stuck down, or shorted, must never silence an
//! alert the driver has not heard.

use std::time::Duration;

use embedded_hal::digital::InputPin;

/// An acknowledge button's pin failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error<E: std::fmt::Debug> {
    #[error("the acknowledge button's GPIO line could not be read: {0:?}")]
    Pin(E),
}

/// Turns raw samples into presses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debouncer {
    debounce: Duration,
    /// The accepted level; `None` until one has been steady for the debounce time.
    stable: Option<bool>,
    /// The last raw level and since when it has read so.
    raw: Option<(bool, Duration)>,
}

impl Debouncer {
    pub fn new(debounce: Duration) -> Self {
        Debouncer {
            debounce,
            stable: None,
            raw: None,
        }
    }

    /// Forgets what it knew; the next steady level is accepted without a press.
    pub fn reset(&mut self) {
        self.stable = None;
        self.raw = None;
    }

    /// Takes one sample (`pressed` at `now`); true when it completes a press.
    pub fn sample(&mut self, pressed: bool, now: Duration) -> bool {
        let since = match self.raw {
            Some((level, since)) if level == pressed => since,
            _ => {
                self.raw = Some((pressed, now));
                now
            }
        };
        if self.stable == Some(pressed) || now.saturating_sub(since) < self.debounce {
            return false;
        }
        let was = self.stable.replace(pressed);
        pressed && was == Some(false)
    }
}

pub struct AckButton<P> {
    pin: P,
    debouncer: Debouncer,
}

impl<P: InputPin> AckButton<P> {
    /// `pin` reads high while the button is pressed (configure an inverted line as active
    /// low, so the kernel flips it).
    pub fn new(pin: P, debounce: Duration) -> Self {
        AckButton {
            pin,
            debouncer: Debouncer::new(debounce),
        }
    }

    pub fn destroy(self) -> P {
        self.pin
    }

    /// Reads the pin once; true when this sample completes a press.
    pub fn poll(&mut self, now: Duration) -> Result<bool, Error<P::Error>> {
        let pressed = self.pin.is_high().map_err(Error::Pin)?;
        Ok(self.debouncer.sample(pressed, now))
    }

    /// Forgets the button's state, as after a pause in polling.
    pub fn reset(&mut self) {
        self.debouncer.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    /// Samples every 10 ms with a 30 ms debounce; `levels` is one character per sample
    /// ('_' released, '#' pressed). Returns the sample indexes that completed a press.
    fn presses(levels: &str) -> Vec<usize> {
        let mut d = Debouncer::new(Duration::from_millis(30));
        levels
            .chars()
            .enumerate()
            .filter(|&(i, c)| d.sample(c == '#', Duration::from_millis(10 * i as u64)))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn a_press_counts_once_it_has_been_steady_for_the_debounce() {
        assert_eq!(presses("____####____"), [7]);
        assert_eq!(presses("____#########"), [7], "holding it counts once");
        assert_eq!(presses("____####____####__"), [7, 15]);
    }

    #[test]
    fn contact_bounce_and_short_glitches_are_not_presses() {
        assert_eq!(presses("____#_#_##_#_____"), Vec::<usize>::new());
        assert_eq!(presses("____##_##_####___"), [13]);
    }

    #[test]
    fn a_button_held_or_stuck_from_the_start_never_presses() {
        assert_eq!(presses("##########"), Vec::<usize>::new());
        assert_eq!(
            presses("#####_____###"),
            Vec::<usize>::new(),
            "not held long enough"
        );
        assert_eq!(
            presses("#####______####"),
            [14],
            "released, then pressed again"
        );
        let mut d = Debouncer::new(Duration::from_millis(30));
        for i in 0..5 {
            d.sample(false, Duration::from_millis(10 * i));
        }
        d.reset();
        let after_reset: Vec<bool> = (5..12)
            .map(|i| d.sample(true, Duration::from_millis(10 * i)))
            .collect();
        assert!(after_reset.iter().all(|p| !p), "{after_reset:?}");
    }

    #[test]
    fn the_driver_reads_the_pin_once_per_poll() {
        use State::{High, Low};
        let pin = Mock::new(&[
            Transaction::get(Low),
            Transaction::get(Low),
            Transaction::get(Low),
            Transaction::get(Low),
            Transaction::get(High),
            Transaction::get(High),
            Transaction::get(High),
            Transaction::get(High),
        ]);
        let mut button = AckButton::new(pin, Duration::from_millis(30));
        let pressed: Vec<bool> = (0..8)
            .map(|i| button.poll(Duration::from_millis(10 * i)).unwrap())
            .collect();
        assert_eq!(
            pressed,
            [false, false, false, false, false, false, false, true]
        );
        button.destroy().done();
    }
}
