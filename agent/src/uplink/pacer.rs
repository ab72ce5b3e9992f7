//! Keeps the uplink inside the broker's per-connection rates (AWS IoT Core: 100 publishes/s
//! and 512 KiB/s), as the broker counts them. Pure: the caller passes the time.
//!
//! The broker counts a publish in the second it reads it, and that can be any moment between
//! the send and the PUBACK: a message held up on the way, or a broker that stalls and then
//! reads a burst, moves it. So a publish counts against both limits from when it is sent
//! until one second after its PUBACK: in any one-second window of the broker's, every message
//! it read there was either unacknowledged or acknowledged less than a second before the
//! last of them was sent, and the pacer let that last one go only with room for all of them.
//! The bound holds whatever the delays. (Pacing the send times alone, over a window 100 ms
//! longer than a second, let Mosquitto count 101 publishes, and 213,594 bytes against a
//! limit of 131,072, in one of its seconds when it stalled under load: tests/system/outage.)
//! The cost is the round trip: a message takes a second and its RTT from the budget, so a
//! drain runs at 100 / (1 s + RTT) a second. A message larger than the byte budget cannot
//! exist (the config keeps the byte rate above the largest payload).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How long after its PUBACK a publish still counts: the broker's second.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Why a publish must wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until then, when acknowledged publishes leave the window.
    For(Duration),
    /// Until a PUBACK: unacknowledged publishes hold the budget.
    Ack,
}

#[derive(Debug)]
pub struct Pacer {
    max_publishes: usize,
    max_bytes: usize,
    /// Publishes sent and not yet acknowledged, and their bytes.
    unacked: usize,
    unacked_bytes: usize,
    /// Publishes acknowledged within the last [`WINDOW`], oldest first: when, and their bytes.
    acked: VecDeque<(Instant, usize)>,
    acked_bytes: usize,
}

impl Pacer {
    pub fn new(publishes_per_second: u32, bytes_per_second: u32) -> Self {
        Pacer {
            max_publishes: publishes_per_second as usize,
            max_bytes: bytes_per_second as usize,
            unacked: 0,
            unacked_bytes: 0,
            acked: VecDeque::with_capacity(publishes_per_second as usize),
            acked_bytes: 0,
        }
    }

    /// Takes one publish of `bytes` if both limits allow it now; otherwise says what to
    /// wait for before asking again.
    pub fn take(&mut self, bytes: usize, now: Instant) -> Result<(), Wait> {
        while let Some(&(at, n)) = self.acked.front() {
            if now.saturating_duration_since(at) < WINDOW {
                break;
            }
            self.acked.pop_front();
            self.acked_bytes -= n;
        }
        // The publishes that must leave the window before this one fits.
        let mut freed = (self.unacked + self.acked.len() + 1).saturating_sub(self.max_publishes);
        let mut bytes_over =
            (self.unacked_bytes + self.acked_bytes + bytes).saturating_sub(self.max_bytes);
        if freed == 0 && bytes_over == 0 {
            self.unacked += 1;
            self.unacked_bytes += bytes;
            return Ok(());
        }
        for &(at, n) in &self.acked {
            freed = freed.saturating_sub(1);
            bytes_over = bytes_over.saturating_sub(n);
            if freed == 0 && bytes_over == 0 {
                let leaves = at + WINDOW;
                return Err(Wait::For(
                    leaves
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1)),
                ));
            }
        }
        Err(Wait::Ack)
    }

    /// The broker acknowledged a publish of `bytes` (or it will never be: it counts as read
    /// now, the latest the broker could have read it).
    pub fn acked(&mut self, bytes: usize, now: Instant) {
        self.unacked = self.unacked.saturating_sub(1);
        self.unacked_bytes = self.unacked_bytes.saturating_sub(bytes);
        self.acked.push_back((now, bytes));
        self.acked_bytes += bytes;
    }

    /// The connection is gone: what was unacknowledged counts as read now, and goes out of
    /// the window a second later.
    pub fn reset(&mut self, now: Instant) {
        // One entry a publish; all the bytes on the first (they leave together).
        for i in 0..self.unacked {
            let bytes = if i == 0 { self.unacked_bytes } else { 0 };
            self.acked.push_back((now, bytes));
        }
        self.acked_bytes += self.unacked_bytes;
        self.unacked = 0;
        self.unacked_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: delays that look random and repeat.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    /// A broker, simulated: it reads each publish `read(i, sent)` and acknowledges it `rtt`
    /// after that. Sends `sizes` as fast as the pacer lets them; returns when each was read,
    /// and how long after the first the last was sent.
    fn drain(
        pacer: &mut Pacer,
        sizes: &[usize],
        rtt: Duration,
        mut read: impl FnMut(usize, Instant) -> Instant,
    ) -> (Vec<(Instant, usize)>, Duration) {
        let start = Instant::now();
        let mut now = start;
        let mut acks: Vec<(Instant, usize)> = Vec::new();
        let mut reads = Vec::new();
        for (i, &bytes) in sizes.iter().enumerate() {
            loop {
                acks.sort();
                while acks.first().is_some_and(|&(at, _)| at <= now) {
                    let (at, n) = acks.remove(0);
                    pacer.acked(n, at);
                }
                match pacer.take(bytes, now) {
                    Ok(()) => break,
                    Err(Wait::For(d)) => now = (now + d).min(acks.first().map_or(now + d, |a| a.0)),
                    Err(Wait::Ack) => now = acks.first().expect("an ack to wait for").0,
                }
            }
            let at = read(i, now).max(now);
            reads.push((at, bytes));
            acks.push((at + rtt, bytes));
        }
        reads.sort();
        (reads, now - start)
    }

    /// The most publishes and bytes the broker read in any one-second window (each window
    /// starting at a read is the worst of its kind).
    fn busiest_second(reads: &[(Instant, usize)]) -> (usize, usize) {
        (0..reads.len())
            .map(|i| {
                reads[i..]
                    .iter()
                    .take_while(|&&(t, _)| t < reads[i].0 + Duration::from_secs(1))
                    .fold((0, 0), |(n, b), &(_, bytes)| (n + 1, b + bytes))
            })
            .fold((0, 0), |(n, b), (wn, wb)| (n.max(wn), b.max(wb)))
    }

    #[test]
    fn whatever_the_delays_the_broker_never_reads_more_than_the_limits_in_a_second() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let sizes: Vec<usize> = (0..3000)
            .map(|i| [40, 5000, 300, 12_000, 80][i % 5])
            .collect();
        let mut pacer = Pacer::new(100, 64 * 1024);
        let (reads, _) = drain(&mut pacer, &sizes, Duration::from_millis(20), |_, sent| {
            // Held up on the way by up to 800 ms.
            sent + Duration::from_millis(rng.below(800))
        });
        let (publishes, bytes) = busiest_second(&reads);
        assert!(
            publishes <= 100 && bytes <= 64 * 1024,
            "{publishes} publishes, {bytes} bytes"
        );
    }

    #[test]
    fn a_broker_that_stalls_then_reads_a_burst_still_reads_no_more_than_the_limits() {
        // It reads nothing for 1.5 s of every 2, then all that waited: what made Mosquitto
        // count 213,594 bytes in a second against 131,072 with send times alone paced.
        let mut pacer = Pacer::new(100, 128 * 1024);
        let sizes = vec![2200; 1000];
        let start = Instant::now();
        let (reads, _) = drain(&mut pacer, &sizes, Duration::from_millis(5), |_, sent| {
            let cycle = Duration::from_secs(2);
            let into = (sent - start).as_nanos() % cycle.as_nanos();
            let stalled = Duration::from_millis(1500).as_nanos();
            if into < stalled {
                sent + Duration::from_nanos((stalled - into) as u64)
            } else {
                sent
            }
        });
        let (publishes, bytes) = busiest_second(&reads);
        assert!(
            publishes <= 100 && bytes <= 128 * 1024,
            "{publishes} publishes, {bytes} bytes"
        );
    }

    #[test]
    fn a_fast_broker_drains_a_backlog_at_about_100_a_second() {
        let mut pacer = Pacer::new(100, 512 * 1024);
        let (reads, took) = drain(
            &mut pacer,
            &[100; 1000],
            Duration::from_millis(10),
            |_, s| s,
        );
        assert_eq!(busiest_second(&reads).0, 100);
        // 100 a second and the round trip: the 1000th goes after 9 seconds and 9 round trips.
        assert_eq!(took, Duration::from_millis(9 * 1010), "{took:?}");
    }

    #[test]
    fn large_messages_are_held_to_the_byte_limit() {
        let mut pacer = Pacer::new(100, 512 * 1024);
        let (reads, _) = drain(
            &mut pacer,
            &[64 * 1024; 88],
            Duration::from_millis(10),
            |_, s| s,
        );
        assert_eq!(busiest_second(&reads), (8, 512 * 1024));
    }

    #[test]
    fn unacknowledged_publishes_hold_the_budget_until_their_puback_and_a_second() {
        let t = Instant::now();
        let mut pacer = Pacer::new(100, 512 * 1024);
        for _ in 0..100 {
            pacer.take(10, t).unwrap();
        }
        let later = t + Duration::from_secs(3600);
        assert_eq!(pacer.take(10, later), Err(Wait::Ack));
        pacer.acked(10, later);
        assert_eq!(pacer.take(10, later), Err(Wait::For(WINDOW)));
        assert_eq!(pacer.take(10, later + WINDOW), Ok(()));
    }

    #[test]
    fn a_lost_connection_counts_what_was_in_flight_as_read_when_it_was_lost() {
        let t = Instant::now();
        let mut pacer = Pacer::new(100, 512 * 1024);
        for _ in 0..100 {
            pacer.take(5000, t).unwrap();
        }
        let lost = t + Duration::from_secs(30);
        pacer.reset(lost);
        assert_eq!(pacer.take(5000, lost), Err(Wait::For(WINDOW)));
        for _ in 0..100 {
            pacer.take(5000, lost + WINDOW).unwrap();
        }
    }

    #[test]
    fn idle_time_gives_at_most_one_second_of_budget() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 512 * 1024);
        let later = start + Duration::from_secs(3600);
        for _ in 0..100 {
            p.take(10, later).unwrap();
            p.acked(10, later);
        }
        assert_eq!(p.take(10, later), Err(Wait::For(WINDOW)));
    }
}
