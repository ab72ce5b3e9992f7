//! The tank sensor node on a serial port (`tokio-serial`): bytes in, [`Input::Node`] and
//! [`Input::NodeError`] out, through the wire protocol's [`FrameDecoder`].
//!
//! Never stops for bad bytes: garbage, truncated and corrupted frames each become one
//! `NodeError` (which the decoder counts) and reading carries on. A port that fails (a USB
//! adapter unplugged, a device that is not there yet) is reopened with backoff, counted in
//! `source_reopens_total`; the source returns only on shutdown or when the pipeline has gone.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use vigil_wire::FrameDecoder;

use super::retry::{Ended, SerialDevice, keep_open};
use super::{Source, SourceContext, SourceTask};
use crate::frame::{Input, NodeMessage};

/// The serial port the sensor node is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// The device, e.g. `/dev/ttyUSB0` or a `/dev/serial/by-id/...` link.
    pub path: String,
    /// Bits per second; the node's firmware sends at 115200.
    #[serde(default = "default_baud")]
    pub baud: u32,
}

fn default_baud() -> u32 {
    115_200
}

impl Source for SerialConfig {
    fn name(&self) -> &'static str {
        "source:serial"
    }

    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask {
        Box::pin(async move {
            run(&self, cx).await;
            Ok(())
        })
    }
}

/// Reads the node until shutdown, reopening the port whenever it fails.
async fn run(config: &SerialConfig, cx: SourceContext) {
    let port: Arc<str> = Arc::from(config.path.as_str());
    let device = SerialDevice {
        path: &config.path,
        baud: config.baud,
        opened: "serial_opened",
        failed: "serial_port_failed",
        hint: "check the cable and that the agent may open the device",
    };
    let (port, cx) = (&port, &cx);
    keep_open(device, cx, move |stream| read_port(stream, port, cx)).await;
}

/// Reads one open port until it fails, shutdown, or the pipeline goes.
async fn read_port<R: AsyncRead + Unpin>(
    mut reader: R,
    port: &Arc<str>,
    cx: &SourceContext,
) -> Ended {
    let mut worked = false;
    // A fresh decoder per open: bytes from before a reconnect never join bytes after it.
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 256];
    loop {
        let read = tokio::select! {
            _ = cx.shutdown.cancelled() => return Ended::Stop,
            read = reader.read(&mut buf) => read,
        };
        let n = match read {
            Ok(0) => {
                return Ended::Failed {
                    error: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the port closed",
                    ),
                    worked,
                };
            }
            Ok(n) => n,
            Err(error) => return Ended::Failed { error, worked },
        };
        worked = true;
        let at = cx.clock.now();
        // What one read gave, in one hand-off.
        let mut inputs = Vec::new();
        for &byte in &buf[..n] {
            inputs.push(match decoder.push(byte) {
                None => continue,
                Some(Ok(message)) => Input::Node(NodeMessage {
                    port: port.clone(),
                    message,
                    at,
                }),
                Some(Err(error)) => Input::NodeError {
                    port: port.clone(),
                    error,
                },
            });
        }
        if !cx.send_batch(inputs).await {
            return Ended::Stop;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::telemetry::Metrics;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;
    use tokio_serial::{SerialPort, SerialStream};
    use tokio_util::sync::CancellationToken;
    use vigil_wire::{Body, MAX_FRAME, Message};

    use super::*;
    use crate::reading::Clock;

    fn encoded(seq: u16) -> Vec<u8> {
        let message = Message {
            seq,
            node_ms: seq as u32 * 1000,
            body: Body::TankTemperature {
                channel: (seq % 4) as u8 + 1,
                fault: 0,
                milli_c: 15_000 + seq as i32,
            },
        };
        let mut frame = [0u8; MAX_FRAME];
        let n = message.encode(&mut frame);
        frame[..n].to_vec()
    }

    /// One of the corruptions the test injects between good frames; each must cost exactly
    /// one `NodeError`.
    fn corruption(kind: usize, seq: u16) -> Vec<u8> {
        match kind % 4 {
            // Garbage that is not COBS, then a delimiter.
            0 => b"\x55\xAAnoise\x13\x37\x00".to_vec(),
            // A frame cut in half, then the delimiter of a line that went quiet.
            1 => {
                let mut f = encoded(seq);
                f.truncate(f.len() / 2);
                f.push(0);
                f
            }
            // A frame with one bit flipped (never into a delimiter).
            2 => {
                let mut f = encoded(seq);
                let i = 3 + (seq as usize % (f.len() - 4));
                let bit = if f[i] == 1 << (seq % 8) {
                    1 << ((seq + 1) % 8)
                } else {
                    1 << (seq % 8)
                };
                f[i] ^= bit;
                f
            }
            // More bytes than any frame without a delimiter.
            _ => {
                let mut f = vec![0x5A; 3 * MAX_FRAME];
                f.push(0);
                f
            }
        }
    }

    #[tokio::test]
    async fn every_good_frame_arrives_once_and_every_bad_one_is_counted() {
        let (mut node, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
        let path = slave.name().expect("the pty slave's path");
        let config = SerialConfig {
            path,
            baud: 115_200,
        };
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let cx = SourceContext::new(Clock::start(), tx, shutdown.clone(), metrics.clone());
        let source = tokio::spawn(Box::new(config).run(cx));

        const GOOD: u16 = 200;
        let mut stream = Vec::new();
        let mut injected = 0;
        for seq in 0..GOOD {
            stream.extend(encoded(seq));
            if seq % 3 == 0 {
                stream.extend(corruption(injected, seq.wrapping_add(1000)));
                injected += 1;
            }
        }
        // The node writes while the agent reads; the reader task collects what arrives.
        let writer = tokio::spawn(async move {
            for chunk in stream.chunks(97) {
                node.write_all(chunk).await.unwrap();
            }
            node
        });

        let mut good = Vec::new();
        let mut bad = Vec::new();
        // A guard so a lost frame fails the test instead of hanging it.
        let collect = async {
            while good.len() < GOOD as usize || bad.len() < injected {
                for input in rx.recv().await.expect("the source keeps running") {
                    match input {
                        Input::Node(m) => good.push(m.message.seq),
                        Input::NodeError { error, .. } => bad.push(error),
                        Input::Can(_) | Input::BusError(_) | Input::Gps(_) => unreachable!(),
                    }
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), collect)
            .await
            .unwrap_or_else(|_| panic!("frames were lost"));
        assert_eq!(
            good,
            (0..GOOD).collect::<Vec<_>>(),
            "every good frame once, in order"
        );
        assert_eq!(bad.len(), injected);
        assert!(bad.contains(&vigil_wire::FrameError::TooLong));

        // Still running after all that: one more frame arrives.
        let mut node = writer.await.unwrap();
        node.write_all(&encoded(GOOD)).await.unwrap();
        match rx.recv().await.as_deref() {
            Some([Input::Node(m)]) => assert_eq!(m.message.seq, GOOD),
            other => panic!("expected frame {GOOD}, got {other:?}"),
        }
        assert!(rx.try_recv().is_err(), "nothing extra");
        shutdown.cancel();
        source.await.unwrap().unwrap();
        assert_eq!(metrics.snapshot().source_reopens_total, 0);
        drop(slave);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_port_is_retried_until_shutdown() {
        let config = SerialConfig {
            path: "/dev/vigil-no-such-port".into(),
            baud: 115_200,
        };
        let metrics = Arc::new(Metrics::default());
        let (tx, _rx) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let cx = SourceContext::new(Clock::start(), tx, shutdown.clone(), metrics.clone());
        let source = tokio::spawn(Box::new(config).run(cx));
        // Paused time runs the backoff at once: 1 + 2 + 4 s of retries fit in 7.5 s.
        tokio::time::sleep(std::time::Duration::from_millis(7_500)).await;
        shutdown.cancel();
        source.await.unwrap().unwrap();
        assert_eq!(metrics.snapshot().source_reopens_total, 4);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use vigil_wire::{Body, FrameDecoder, MAX_FRAME, Message};

    proptest! {
        /// Whatever comes before it, a good frame after a delimiter arrives intact.
        #[test]
        fn arbitrary_bytes_never_panic_and_never_hide_the_next_good_frame(noise in prop::collection::vec(any::<u8>(), 0..600), seq in any::<u16>()) {
            let mut decoder = FrameDecoder::new();
            for &b in &noise {
                let _ = decoder.push(b);
            }
            let message = Message { seq, node_ms: 1, body: Body::TankTemperature { channel: 1, fault: 0, milli_c: -5 } };
            let mut frame = [0u8; MAX_FRAME];
            let n = message.encode(&mut frame);
            let mut got = decoder.push(0);
            for &b in &frame[..n] {
                if let Some(r) = decoder.push(b) {
                    got = Some(r);
                }
            }
            prop_assert_eq!(got, Some(Ok(message)));
        }
    }
}
