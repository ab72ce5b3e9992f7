//! A GPS receiver on a serial port (`tokio-serial`), speaking NMEA 0183: bytes in, one
//! [`Input::Gps`] per position fix out, through [`nmea::Lines`] and
//! [`nmea::parse_sentence`].
//!
//! Never stops for bad bytes: a line that is not a sentence, fails its checksum or is too
//! long is counted in `gps_sentences_rejected_total` (and logged at debug) and reading
//! carries on; a sentence without a fix gives no input. A port that fails is reopened with
//! the same backoff as the tank node's, counted in `source_reopens_total`; the source returns
//! only on shutdown or when the pipeline has gone.

use std::sync::Arc;

use super::retry::{Ended, SerialDevice, keep_open};
use super::{Source, SourceContext, SourceTask};
use crate::frame::nmea::{self, Sentence};
use crate::frame::{GpsFix, Input};
use crate::telemetry::Metrics;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The `[source.gps]` section: the serial port a GPS receiver is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpsConfig {
    /// The device, e.g. `/dev/ttyACM0` or a `/dev/serial/by-id/...` link.
    pub path: String,
    /// Bits per second; NMEA 0183 receivers default to 4800 or 9600 (u-blox: 9600).
    #[serde(default = "default_baud")]
    pub baud: u32,
}

fn default_baud() -> u32 {
    9600
}

impl GpsConfig {
    /// Pure: the device is not opened here.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.path.trim().is_empty() {
            return Err((
                "source.gps.path",
                "expected the receiver's device, such as \"/dev/ttyACM0\", found an empty path"
                    .into(),
            ));
        }
        if !(1200..=921_600).contains(&self.baud) {
            return Err((
                "source.gps.baud",
                format!(
                    "expected a serial speed from 1200 to 921600 (NMEA receivers use 4800 or 9600), found {}",
                    self.baud
                ),
            ));
        }
        Ok(())
    }
}

impl Source for GpsConfig {
    fn name(&self) -> &'static str {
        "source:gps"
    }

    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask {
        Box::pin(async move {
            run(&self, cx).await;
            Ok(())
        })
    }
}

/// Reads the receiver until shutdown, reopening the port whenever it fails.
async fn run(config: &GpsConfig, cx: SourceContext) {
    let port: Arc<str> = Arc::from(config.path.as_str());
    let device = SerialDevice {
        path: &config.path,
        baud: config.baud,
        opened: "gps_opened",
        failed: "gps_port_failed",
        hint: "check the receiver's cable and that the agent may open the device",
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
    // A fresh splitter per open: half a line from before a reconnect never joins the next.
    let mut lines = nmea::Lines::new();
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
        for &byte in &buf[..n] {
            let Some(line) = lines.push(byte) else {
                continue;
            };
            let sentence = line.and_then(nmea::parse_sentence);
            let fix = match sentence {
                Ok(Sentence::Fix(fix)) => {
                    Metrics::inc(&cx.metrics.gps_sentences_total);
                    Metrics::inc(&cx.metrics.gps_fixes_total);
                    fix
                }
                Ok(Sentence::NoFix | Sentence::Other) => {
                    Metrics::inc(&cx.metrics.gps_sentences_total);
                    continue;
                }
                Err(error) => {
                    Metrics::inc(&cx.metrics.gps_sentences_rejected_total);
                    tracing::debug!(event = "gps_sentence_rejected", port = &**port, %error);
                    continue;
                }
            };
            let input = Input::Gps(GpsFix {
                port: port.clone(),
                fix,
                at,
            });
            if !cx.send(input).await {
                return Ended::Stop;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;
    use tokio_serial::{SerialPort, SerialStream};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::reading::Clock;

    fn sentence(body: &str) -> String {
        let sum = body.bytes().fold(0u8, |x, b| x ^ b);
        format!("${body}*{sum:02X}\r\n")
    }

    #[test]
    fn the_section_is_checked_without_opening_anything() {
        let ok: GpsConfig = toml::from_str("path = \"/dev/vigil-no-such-gps\"").unwrap();
        assert_eq!(ok.baud, 9600);
        assert_eq!(ok.check(), Ok(()));
        let empty = GpsConfig {
            path: " ".into(),
            baud: 9600,
        };
        assert_eq!(empty.check().unwrap_err().0, "source.gps.path");
        let slow = GpsConfig {
            path: "/dev/ttyACM0".into(),
            baud: 300,
        };
        assert_eq!(slow.check().unwrap_err().0, "source.gps.baud");
        let err = toml::from_str::<GpsConfig>("path = \"x\"\nspeed = 9600").unwrap_err();
        assert!(err.to_string().contains("unknown field `speed`"), "{err}");
    }

    #[tokio::test]
    async fn fixes_arrive_over_a_pseudo_terminal_and_everything_else_is_counted() {
        let (mut receiver, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
        let path = slave.name().expect("the pty slave's path");
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let cx = SourceContext::new(Clock::start(), tx, shutdown.clone(), metrics.clone());
        let config = GpsConfig {
            path: path.clone(),
            baud: 9600,
        };
        let source = tokio::spawn(Box::new(config).run(cx));

        // A receiver's start: no fix, then fixes, with noise, a flipped bit and an
        // over-long line among them.
        const FIXES: usize = 40;
        let mut stream = String::new();
        stream += &sentence("GPRMC,000000.00,V,,,,,,,010126,,,N");
        stream += &sentence("GNGGA,000000.00,,,,,0,00,99.99,,,,,,");
        stream += "\u{55}\u{aa}garbage\r\n";
        let mut rejected = 1;
        for i in 0..FIXES {
            let minutes = 10.0 + i as f64 / 1000.0;
            let body = if i % 2 == 0 {
                format!(
                    "GNRMC,1200{:02}.00,A,48{minutes:08.5},N,01131.00000,E,40.0,90.0,010126,,,A",
                    i % 60
                )
            } else {
                format!(
                    "GPGGA,1200{:02}.00,48{minutes:08.5},N,01131.00000,E,1,08,0.9,545.4,M,46.9,M,,",
                    i % 60
                )
            };
            stream += &sentence(&body);
            stream += &sentence("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00");
            if i % 10 == 3 {
                // The same sentence with a digit changed and the old checksum.
                stream += &sentence(&body)
                    .replacen("0.9", "0.8", 1)
                    .replacen("40.0", "41.0", 1);
                rejected += 1;
            }
            if i % 10 == 7 {
                stream += &"$GPGSV".repeat(100);
                stream += "\r\n";
                rejected += 1;
            }
        }
        let bytes = stream.into_bytes();
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(61) {
                receiver.write_all(chunk).await.unwrap();
            }
            receiver
        });

        let mut got = Vec::new();
        let collect = async {
            while got.len() < FIXES {
                for input in rx.recv().await.expect("the source keeps running") {
                    match input {
                        Input::Gps(gps) => {
                            assert_eq!(&*gps.port, path.as_str());
                            got.push(gps.fix);
                        }
                        other => panic!("not a GPS input: {other:?}"),
                    }
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), collect)
            .await
            .unwrap_or_else(|_| panic!("fixes were lost"));
        for (i, fix) in got.iter().enumerate() {
            let latitude = 48.0 + (10.0 + i as f64 / 1000.0) / 60.0;
            assert!((fix.latitude - latitude).abs() < 1e-9, "fix {i}: {fix:?}");
            assert!((fix.longitude - (11.0 + 31.0 / 60.0)).abs() < 1e-9);
        }
        // The counters are bumped before each fix is sent, and the last line is a fix's
        // companion GSV: wait for it through one more good fix.
        let mut receiver = writer.await.unwrap();
        receiver
            .write_all(
                sentence("GPRMC,130000.00,A,4810.00000,N,01131.00000,E,0,0,010126,,,A").as_bytes(),
            )
            .await
            .unwrap();
        assert!(matches!(rx.recv().await.as_deref(), Some([Input::Gps(_)])));
        let s = metrics.snapshot();
        assert_eq!(s.gps_fixes_total, FIXES as u64 + 1);
        assert_eq!(s.gps_sentences_rejected_total, rejected);
        // Two without a fix, a fix and a GSV per fix, and the last fix.
        assert_eq!(s.gps_sentences_total, 2 + 2 * FIXES as u64 + 1);
        assert!(rx.try_recv().is_err(), "nothing extra");
        shutdown.cancel();
        source.await.unwrap().unwrap();
        assert_eq!(s.source_reopens_total, 0);
        drop(slave);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_receiver_is_retried_until_shutdown() {
        let config = GpsConfig {
            path: "/dev/vigil-no-such-gps".into(),
            baud: 9600,
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
