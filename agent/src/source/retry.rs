//! Reopening a device that went away (a USB serial adapter unplugged, a CAN interface
//! taken down): exponential backoff from 1 s to 30 s, reset once the device works again.
//! Shared by the serial (tank node and GPS) and SocketCAN sources.

use std::time::Duration;

use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;

use super::SourceContext;
use crate::telemetry::Metrics;

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

/// How reading an open device ended.
pub(crate) enum Ended {
    /// Shutdown, or the pipeline has gone: stop.
    Stop,
    /// The device failed: reopen it, after the shortest wait if it had worked.
    Failed { error: std::io::Error, worked: bool },
}

/// A serial device a source keeps open, and the names its log events use.
pub(crate) struct SerialDevice<'a> {
    pub path: &'a str,
    pub baud: u32,
    /// The `event` of the line logged when the port opens, and when it fails.
    pub opened: &'static str,
    pub failed: &'static str,
    /// What to check when it fails.
    pub hint: &'static str,
}

/// Opens `device` and hands it to `read` until shutdown, reopening it with backoff (counted
/// in `source_reopens_total`) whenever it fails to open or `read` says it failed; a device
/// that worked before it failed is retried after the shortest wait.
pub(crate) async fn keep_open<F, Fut>(device: SerialDevice<'_>, cx: &SourceContext, mut read: F)
where
    F: FnMut(SerialStream) -> Fut,
    Fut: std::future::Future<Output = Ended>,
{
    let mut backoff = Backoff::new();
    loop {
        let opened = tokio_serial::new(device.path, device.baud).open_native_async();
        let error = match opened {
            Ok(stream) => {
                tracing::info!(
                    event = device.opened,
                    port = device.path,
                    baud = device.baud
                );
                match read(stream).await {
                    Ended::Stop => return,
                    Ended::Failed { error, worked } => {
                        if worked {
                            backoff.reset();
                        }
                        error
                    }
                }
            }
            Err(error) => error.into(),
        };
        Metrics::inc(&cx.metrics.source_reopens_total);
        tracing::warn!(
            event = device.failed,
            port = device.path,
            %error,
            "reopening with backoff; {}",
            device.hint
        );
        if !backoff.wait(&cx.shutdown).await {
            return;
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
