//! Keeps the uplink inside the broker's per-connection rates (AWS IoT Core: 100 publishes/s
//! and 512 KiB/s). Pure: the caller passes the time.
//!
//! A sliding window, not a token bucket: a bucket that holds a second of tokens lets a
//! backlog drain send its full bucket and a second's refill inside one second, twice the
//! rate (the broker counted 116-176 publishes in a second after a reconnect). Here every
//! publish of the last [`WINDOW`] is remembered (at most the publish rate of them, 100), and
//! one more goes only if that window then holds no more than the rate's publishes and
//! bytes. [`WINDOW`] is a little longer than a second, so that a message held up on its
//! way to the broker (network jitter) cannot bring the next second's first message into
//! the broker's second. A message larger than a second's byte budget cannot exist (the
//! config keeps the byte rate above the largest payload).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The span both limits hold over: one second and 100 ms for delays on the way (a busy
/// broker or gateway reading a burst late). Measured at Mosquitto: a 450-record backlog
/// drain peaks at exactly 100 publishes in the broker's busiest second with 50 ms, 184
/// with the token buckets this replaced.
pub const WINDOW: Duration = Duration::from_millis(1100);

#[derive(Debug)]
pub struct Pacer {
    max_publishes: usize,
    max_bytes: usize,
    /// The publishes of the last [`WINDOW`], oldest first: when, and how many bytes.
    sent: VecDeque<(Instant, usize)>,
    /// The bytes in `sent`.
    bytes: usize,
}

impl Pacer {
    pub fn new(publishes_per_second: u32, bytes_per_second: u32) -> Self {
        Pacer {
            max_publishes: publishes_per_second as usize,
            max_bytes: bytes_per_second as usize,
            sent: VecDeque::with_capacity(publishes_per_second as usize),
            bytes: 0,
        }
    }

    /// Takes one publish of `bytes` if both limits allow it now; otherwise says how long to
    /// wait before asking again.
    pub fn take(&mut self, bytes: usize, now: Instant) -> Result<(), Duration> {
        while let Some(&(at, n)) = self.sent.front() {
            if now.saturating_duration_since(at) < WINDOW {
                break;
            }
            self.sent.pop_front();
            self.bytes -= n;
        }
        // The oldest publishes that must leave the window before this one fits.
        let mut freed = (self.sent.len() + 1).saturating_sub(self.max_publishes);
        let mut bytes_over = (self.bytes + bytes).saturating_sub(self.max_bytes);
        if freed == 0 && bytes_over == 0 {
            self.sent.push_back((now, bytes));
            self.bytes += bytes;
            return Ok(());
        }
        let mut leaves = now;
        for &(at, n) in &self.sent {
            if freed == 0 && bytes_over == 0 {
                break;
            }
            freed = freed.saturating_sub(1);
            bytes_over = bytes_over.saturating_sub(n);
            leaves = at + WINDOW;
        }
        Err(leaves
            .saturating_duration_since(now)
            .max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishes `n` messages of `bytes` as fast as the pacer lets them; returns when each
    /// one went, from the start.
    fn drain(pacer: &mut Pacer, start: Instant, n: usize, bytes: usize) -> Vec<Duration> {
        let mut now = start;
        let mut sent = Vec::with_capacity(n);
        for _ in 0..n {
            loop {
                match pacer.take(bytes, now) {
                    Ok(()) => break,
                    Err(wait) => now += wait,
                }
            }
            sent.push(now - start);
        }
        sent
    }

    /// The most publishes and bytes in any one-second window (each window starting at a
    /// publish is the worst of its kind).
    fn busiest_second(sent: &[Duration], bytes: usize) -> (usize, usize) {
        let most = (0..sent.len())
            .map(|i| {
                sent[i..]
                    .iter()
                    .take_while(|&&t| t < sent[i] + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0);
        (most, most * bytes)
    }

    #[test]
    fn a_backlog_drains_at_100_per_second_and_never_more_in_any_second() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 512 * 1024);
        let sent = drain(&mut p, start, 1000, 100);
        assert_eq!(busiest_second(&sent, 100).0, 100);
        // 100 at once, then 100 a window: the 1000th goes after 9 windows.
        let took = *sent.last().unwrap();
        assert_eq!(took, WINDOW * 9, "{took:?}");
    }

    #[test]
    fn large_messages_are_held_to_512_kib_in_any_second() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 512 * 1024);
        // 64 KiB messages: 8 per second by bytes, well under 100 by count.
        let sent = drain(&mut p, start, 8 * 11, 64 * 1024);
        let (publishes, bytes) = busiest_second(&sent, 64 * 1024);
        assert_eq!((publishes, bytes), (8, 512 * 1024));
        assert_eq!(*sent.last().unwrap(), WINDOW * 10);
    }

    #[test]
    fn mixed_sizes_keep_both_limits_in_every_window() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 20_000);
        let mut now = start;
        let mut sent: Vec<(Duration, usize)> = Vec::new();
        for i in 0..2000usize {
            let bytes = [40, 5000, 300, 12_000, 80][i % 5];
            loop {
                match p.take(bytes, now) {
                    Ok(()) => break,
                    Err(wait) => now += wait,
                }
            }
            sent.push((now - start, bytes));
            now += Duration::from_micros((i as u64 * 7919) % 3000);
        }
        for (i, &(t, _)) in sent.iter().enumerate() {
            let window = sent[i..]
                .iter()
                .take_while(|&&(u, _)| u < t + Duration::from_secs(1));
            let (n, b) = window.fold((0, 0), |(n, b), &(_, bytes)| (n + 1, b + bytes));
            assert!(
                n <= 100 && b <= 20_000,
                "{n} publishes, {b} bytes from {t:?}"
            );
        }
    }

    #[test]
    fn idle_time_gives_at_most_one_second_of_budget() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 512 * 1024);
        let later = start + Duration::from_secs(3600);
        for _ in 0..100 {
            p.take(10, later).unwrap();
        }
        assert_eq!(p.take(10, later), Err(WINDOW));
    }
}
