//! What the latency benches share: a buzzer line that reports its levels, and a wait for
//! one of them that gives up instead of hanging.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use embedded_hal::digital::{ErrorType, OutputPin};

/// A buzzer line that reports every level it is set to, with when.
pub struct Line(pub std_mpsc::Sender<(bool, Instant)>);

impl ErrorType for Line {
    type Error = std::convert::Infallible;
}

impl OutputPin for Line {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        let _ = self.0.send((false, Instant::now()));
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        let _ = self.0.send((true, Instant::now()));
        Ok(())
    }
}

/// Waits for the line to reach `level`; returns when it did, or `None` after `limit` (or
/// when the line is gone).
pub fn wait_level(
    levels: &std_mpsc::Receiver<(bool, Instant)>,
    level: bool,
    limit: Duration,
) -> Option<Instant> {
    let end = Instant::now() + limit;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        match levels.recv_timeout(left) {
            Ok((l, at)) if l == level => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}
