//! When to try connecting again: exponential backoff with full jitter, never sooner than
//! one second after the previous attempt (AWS IoT Core allows one connect per second per
//! client id, and a fleet of trucks reconnecting in step after a cell outage must spread
//! out). Pure: the caller passes the time and the randomness is a seeded generator.

use std::time::Duration;

use tokio::time::Instant;

/// The floor between two connection attempts.
pub const MIN_BETWEEN_CONNECTS: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    last_attempt: Option<Instant>,
    rng: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            min: min.max(MIN_BETWEEN_CONNECTS),
            max: max.max(min),
            failures: 0,
            last_attempt: None,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// An attempt starts now.
    pub fn attempt(&mut self, now: Instant) {
        self.last_attempt = Some(now);
    }

    /// The link came up: the next failure starts from the minimum again.
    pub fn connected(&mut self) {
        self.failures = 0;
    }

    /// An attempt (or an established link) failed at `now`: when to try again.
    pub fn failed(&mut self, now: Instant) -> Instant {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        // Full jitter between the minimum and the ceiling.
        let span = ceiling.saturating_sub(self.min).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.next_random() % (span + 1)
        };
        let at = now + self.min + Duration::from_millis(jitter);
        let floor = self
            .last_attempt
            .map_or(now, |last| last + MIN_BETWEEN_CONNECTS);
        at.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_maximum_and_reset_on_success() {
        let start = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42);
        let mut ceilings = Vec::new();
        for n in 0..10u32 {
            b.attempt(start);
            let delay = b.failed(start) - start;
            let ceiling = Duration::from_secs(1 << n).min(Duration::from_secs(60));
            assert!(delay >= Duration::from_secs(1), "{delay:?}");
            assert!(delay <= Duration::from_secs(1) + ceiling, "{delay:?}");
            ceilings.push(delay);
        }
        // Jitter: not every delay the same.
        ceilings.dedup();
        assert!(ceilings.len() > 5);
        b.connected();
        b.attempt(start);
        assert!(b.failed(start) - start <= Duration::from_secs(1));
    }

    #[test]
    fn never_two_attempts_within_a_second() {
        let start = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 7);
        b.attempt(start);
        // A link that dropped 200 ms after it came up waits the rest of the second at least.
        let next = b.failed(start + Duration::from_millis(200));
        assert!(next >= start + MIN_BETWEEN_CONNECTS);
    }
}
