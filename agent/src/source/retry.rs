//! Reopening a device that went away (a USB serial adapter unplugged, a CAN interface
//! taken down): exponential backoff from 1 s to 30 s, reset once the device works again.
//! Shared by the serial (tank node and GPS) and SocketCAN sources.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: FIRST }
    }

    /// The device worked: the next failure waits the shortest time again.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }

    /// Waits before the next attempt. Returns `false` when shutdown came first.
    pub(crate) async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(LONGEST);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_up_to_thirty_seconds_and_resets() {
        let shutdown = CancellationToken::new();
        let mut b = Backoff::new();
        let mut waits = Vec::new();
        for _ in 0..7 {
            let start = tokio::time::Instant::now();
            assert!(b.wait(&shutdown).await);
            waits.push(start.elapsed().as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        let start = tokio::time::Instant::now();
        b.wait(&shutdown).await;
        assert_eq!(start.elapsed(), FIRST);
        shutdown.cancel();
        assert!(!b.wait(&shutdown).await);
    }
}
