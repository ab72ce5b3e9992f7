//! Keeps the uplink inside the broker's per-connection rates (AWS IoT Core: 100 publishes/s
//! and 512 KiB/s), as two token buckets. Pure: the caller passes the time.
//!
//! Each bucket holds at most one second of its rate, so a backlog drain starts with at most
//! one second's worth at once and then runs at the rate; a message larger than a second's
//! byte budget cannot exist (the config keeps the byte rate above the largest payload).

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
}

impl Bucket {
    fn refill(&mut self, elapsed: Duration) {
        self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.rate);
    }

    /// How long until `n` tokens are there.
    fn wait_for(&self, n: f64) -> Duration {
        if self.tokens >= n {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((n - self.tokens) / self.rate)
        }
    }
}

#[derive(Debug)]
pub struct Pacer {
    publishes: Bucket,
    bytes: Bucket,
    last: Instant,
}

impl Pacer {
    pub fn new(publishes_per_second: u32, bytes_per_second: u32, now: Instant) -> Self {
        let bucket = |rate: u32| Bucket {
            rate: rate as f64,
            tokens: rate as f64,
        };
        Pacer {
            publishes: bucket(publishes_per_second),
            bytes: bucket(bytes_per_second),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.publishes.refill(elapsed);
        self.bytes.refill(elapsed);
    }

    /// Takes one publish of `bytes` if both budgets allow it now; otherwise says how long to
    /// wait before asking again.
    pub fn take(&mut self, bytes: usize, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let wait = self
            .publishes
            .wait_for(1.0)
            .max(self.bytes.wait_for(bytes as f64));
        if wait > Duration::ZERO {
            return Err(wait);
        }
        self.publishes.tokens -= 1.0;
        self.bytes.tokens -= bytes as f64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishes `n` messages of `bytes` as fast as the pacer lets them; returns the time
    /// the last one went, from the start.
    fn drain(pacer: &mut Pacer, start: Instant, n: usize, bytes: usize) -> Duration {
        let mut now = start;
        for _ in 0..n {
            loop {
                match pacer.take(bytes, now) {
                    Ok(()) => break,
                    Err(wait) => now += wait,
                }
            }
        }
        now - start
    }

    #[test]
    fn small_messages_are_held_to_100_per_second() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 512 * 1024, start);
        // A full bucket (100) at once, then 100 per second: 1000 take about 9 s.
        let took = drain(&mut p, start, 1000, 100);
        assert!(
            took >= Duration::from_millis(8990) && took <= Duration::from_millis(9010),
            "{took:?}"
        );
    }

    #[test]
    fn large_messages_are_held_to_512_kib_per_second() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 512 * 1024, start);
        // 64 KiB messages: 8 per second by bytes, well under 100 by count.
        let took = drain(&mut p, start, 8 * 11, 64 * 1024);
        assert!(
            took >= Duration::from_millis(9990) && took <= Duration::from_millis(10010),
            "{took:?}"
        );
    }

    #[test]
    fn idle_time_refills_at_most_one_second_of_budget() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 512 * 1024, start);
        let later = start + Duration::from_secs(3600);
        for _ in 0..100 {
            p.take(10, later).unwrap();
        }
        assert!(p.take(10, later).is_err());
    }
}
