//! SocketCAN: one task per interface, frames in, [`Input::Can`] (and [`Input::BusError`]
//! for an error frame) out.
//!
//! The socket sits behind the small [`CanInterface`] trait so the receive loop is tested
//! with an in-memory bus: the machine this is developed on has no `AF_CAN` at all, so the
//! `socketcan` implementation ([`SocketCan`]) compiles here but is only exercised on a
//! gateway (or any Linux with `vcan`).
//!
//! Frames are stamped with the kernel's receive time (`SO_TIMESTAMPNS`) as their wall time
//! when the socket gives one, and with the agent's monotonic clock. Remote frames are not
//! J1939 data and are dropped; error frames (the socket asks the kernel for all of them) go
//! on as bus errors, which the intrusion monitor counts. An interface that fails (bus-off,
//! taken down) is reopened with backoff, counted in `source_reopens_total`.

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::retry::Backoff;
use super::{BATCH_MAX, HAND_OFF_EVERY, Source, SourceContext, SourceTask};
use crate::frame::{BusError, CanFrame, Input};
use crate::reading::Timestamp;
use crate::telemetry::Metrics;

/// The CAN interfaces to listen on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanConfig {
    /// Interface names, e.g. `["can0", "can1"]`; one task each.
    pub interfaces: Vec<String>,
}

/// What one receive gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A data frame; `kernel_time` is the kernel's receive timestamp when enabled.
    Data {
        id: u32,
        extended: bool,
        data: [u8; 8],
        len: u8,
        kernel_time: Option<SystemTime>,
    },
    /// An error frame: the controller saw a frame broken off (the socket asks the kernel
    /// for them), for the intrusion monitor.
    Error { kernel_time: Option<SystemTime> },
    /// A remote frame: nothing J1939 decodes.
    Other,
}

/// A CAN interface that can be read.
pub trait CanInterface: Send {
    fn recv(&mut self) -> impl Future<Output = std::io::Result<Received>> + Send;

    /// A frame the interface already holds, without waiting: `None` when it holds none.
    /// The source empties the socket this way after each wake-up, so a busy bus costs one
    /// wake-up per batch, not per frame.
    fn try_recv(&mut self) -> Option<std::io::Result<Received>> {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(self.recv()).poll(&mut context) {
            std::task::Poll::Ready(received) => Some(received),
            std::task::Poll::Pending => None,
        }
    }
}

/// Opens a [`CanInterface`] by name; the real one is [`SocketCan::open`].
pub trait CanOpener: Send + Sync + 'static {
    type Interface: CanInterface;
    fn open(&self, name: &str) -> std::io::Result<Self::Interface>;
}

/// A SocketCAN raw socket through the `socketcan` crate, with kernel timestamps.
pub struct SocketCan {
    socket: socketcan::tokio::CanSocket,
    timestamps: bool,
}

impl SocketCan {
    pub fn open(name: &str) -> std::io::Result<Self> {
        use socketcan::SocketOptions;
        let socket = socketcan::tokio::CanSocket::open(name)?;
        // Kernel timestamps are the better clock, but a driver without them still works.
        let timestamps = socket.set_recv_timestamp(true).is_ok();
        // Error frames feed the intrusion monitor's bus_errors; a socket that cannot have
        // them still reads the data frames.
        if let Err(error) = socket.set_error_filter_accept_all() {
            tracing::warn!(event = "can_error_frames_unavailable", bus = name, %error);
        }
        Ok(SocketCan { socket, timestamps })
    }
}

impl CanInterface for SocketCan {
    async fn recv(&mut self) -> std::io::Result<Received> {
        use socketcan::{EmbeddedFrame, Frame};
        let (frame, kernel_time) = if self.timestamps {
            let (frame, at) = self.socket.read_frame_with_timestamp().await?;
            (frame, Some(at))
        } else {
            (self.socket.read_frame().await?, None)
        };
        Ok(match frame {
            socketcan::CanFrame::Data(frame) => {
                let mut data = [0u8; 8];
                let payload = frame.data();
                data[..payload.len()].copy_from_slice(payload);
                Received::Data {
                    id: frame.raw_id(),
                    extended: frame.is_extended(),
                    data,
                    len: payload.len() as u8,
                    kernel_time,
                }
            }
            socketcan::CanFrame::Error(_) => Received::Error { kernel_time },
            socketcan::CanFrame::Remote(_) => Received::Other,
        })
    }
}

/// Opens real SocketCAN interfaces.
pub struct SocketCanOpener;

impl CanOpener for SocketCanOpener {
    type Interface = SocketCan;
    fn open(&self, name: &str) -> std::io::Result<SocketCan> {
        SocketCan::open(name)
    }
}

impl CanConfig {
    /// Checks the values; returns the key and what is wrong. No I/O: the interfaces are
    /// opened (and reopened) when the source runs.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.interfaces.is_empty() {
            return Err((
                "source.can.interfaces",
                "expected at least one interface such as \"can0\", found none".into(),
            ));
        }
        Ok(())
    }
}

/// Listens on every configured SocketCAN interface until shutdown.
impl Source for CanConfig {
    fn name(&self) -> &'static str {
        "source:can"
    }

    fn run(self: Box<Self>, cx: SourceContext) -> SourceTask {
        Box::pin(run_with(SocketCanOpener, *self, cx))
    }
}

/// The CAN source over any kind of interface: one task per interface, each reopening its own.
pub async fn run_with<O: CanOpener>(
    opener: O,
    config: CanConfig,
    cx: SourceContext,
) -> Result<(), super::SourceError> {
    let opener = Arc::new(opener);
    let mut tasks = JoinSet::new();
    for name in &config.interfaces {
        let bus: Arc<str> = Arc::from(name.as_str());
        let (opener, cx) = (opener.clone(), cx.clone());
        tasks.spawn(async move { listen(&*opener, bus, cx).await });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn listen<O: CanOpener>(opener: &O, bus: Arc<str>, cx: SourceContext) {
    let mut backoff = Backoff::new();
    loop {
        let error = match opener.open(&bus) {
            Ok(mut interface) => {
                tracing::info!(event = "can_opened", bus = &*bus);
                match read_until_failure(&mut interface, &bus, &cx, &mut backoff).await {
                    Some(error) => error,
                    None => return,
                }
            }
            Err(error) => error,
        };
        Metrics::inc(&cx.metrics.source_reopens_total);
        tracing::warn!(
            event = "can_interface_failed",
            bus = &*bus,
            %error,
            "reopening with backoff; check `ip link show {bus}` (up, bitrate set)"
        );
        if !backoff.wait(&cx.shutdown).await {
            return;
        }
    }
}

/// Reads an open interface in batches until it fails (the error) or the source must stop
/// (`None`). A busy bus is read at most once every [`HAND_OFF_EVERY`]: what comes between
/// waits in the socket's kernel buffer (at 4,000 frames/s a bus, 80 frames), and each read
/// takes everything there, up to [`BATCH_MAX`]. A quiet bus's frame is read as it comes.
async fn read_until_failure<I: CanInterface>(
    interface: &mut I,
    bus: &Arc<str>,
    cx: &SourceContext,
    backoff: &mut Backoff,
) -> Option<std::io::Error> {
    let mut handed_on: Option<Instant> = None;
    // Each batch starts as large as the last: grown from nothing, a busy bus's batch was
    // copied over several times on its way.
    let mut last_batch = 0;
    loop {
        if let Some(at) = handed_on
            && at + HAND_OFF_EVERY > Instant::now()
            && !cx.sleep_until(at + HAND_OFF_EVERY).await
        {
            return None;
        }
        let first = tokio::select! {
            _ = cx.shutdown.cancelled() => return None,
            received = interface.recv() => received,
        };
        let mut batch = Vec::with_capacity(last_batch);
        let mut failure = None;
        let mut received = Some(first);
        while let Some(next) = received.take() {
            match next {
                Ok(next) => batch.extend(input(next, bus, cx)),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
            if batch.len() < BATCH_MAX {
                received = interface.try_recv();
            }
        }
        if !batch.is_empty() {
            backoff.reset();
        }
        last_batch = batch.len();
        // What was read before a failure is handed on before the reopen.
        if !cx.send_batch(batch).await {
            return None;
        }
        handed_on = Some(Instant::now());
        if failure.is_some() {
            return failure;
        }
    }
}

/// What one received frame is to the decoder: a data frame, a bus error, or nothing.
fn input(received: Received, bus: &Arc<str>, cx: &SourceContext) -> Option<Input> {
    match received {
        Received::Data {
            id,
            extended,
            data,
            len,
            kernel_time,
        } => Some(Input::Can(CanFrame {
            bus: bus.clone(),
            id,
            extended,
            data,
            len,
            at: stamp(cx, kernel_time),
        })),
        Received::Error { kernel_time } => Some(Input::BusError(BusError {
            bus: bus.clone(),
            at: stamp(cx, kernel_time),
            id: None,
        })),
        Received::Other => None,
    }
}

/// The agent's monotonic time now, with the kernel's receive time as the wall time when
/// the socket gave one.
fn stamp(cx: &SourceContext, kernel_time: Option<SystemTime>) -> Timestamp {
    let at = cx.clock.now();
    match kernel_time.and_then(wall_micros) {
        Some(wall_us) => Timestamp { wall_us, ..at },
        None => at,
    }
}

fn wall_micros(at: SystemTime) -> Option<i64> {
    at.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::reading::Clock;

    /// An in-memory bus per interface name: a script of receives, then silence.
    #[derive(Default)]
    struct FakeBus {
        scripts: Mutex<Vec<(String, VecDeque<std::io::Result<Received>>)>>,
    }

    struct FakeInterface(VecDeque<std::io::Result<Received>>);

    impl CanInterface for FakeInterface {
        async fn recv(&mut self) -> std::io::Result<Received> {
            match self.0.pop_front() {
                Some(r) => r,
                None => std::future::pending().await,
            }
        }
    }

    impl CanOpener for FakeBus {
        type Interface = FakeInterface;
        fn open(&self, name: &str) -> std::io::Result<FakeInterface> {
            let mut scripts = self.scripts.lock().unwrap();
            match scripts.iter().position(|(n, _)| n == name) {
                Some(i) => Ok(FakeInterface(scripts.remove(i).1)),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such interface",
                )),
            }
        }
    }

    fn data(id: u32, first: u8, kernel_time: Option<SystemTime>) -> std::io::Result<Received> {
        Ok(Received::Data {
            id,
            extended: true,
            data: [first; 8],
            len: 8,
            kernel_time,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn each_interface_is_read_and_stamped_and_reopened_after_a_failure() {
        let kernel = UNIX_EPOCH + Duration::from_micros(1_635_188_455_020_850);
        let bus = FakeBus::default();
        {
            let mut s = bus.scripts.lock().unwrap();
            s.push((
                "can0".into(),
                VecDeque::from([
                    data(0x18FEEE00, 1, Some(kernel)),
                    Ok(Received::Other),
                    Ok(Received::Error {
                        kernel_time: Some(kernel),
                    }),
                    Err(std::io::Error::other("bus off")),
                ]),
            ));
            // can0 again after the failure, as the reopen finds it.
            s.push(("can0".into(), VecDeque::from([data(0x18FEEE00, 2, None)])));
            s.push(("can1".into(), VecDeque::from([data(0x0CF00400, 3, None)])));
        }
        let config = CanConfig {
            interfaces: vec!["can0".into(), "can1".into()],
        };
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let cx = SourceContext::new(Clock::start(), tx, shutdown.clone(), metrics.clone());
        let task = tokio::spawn(run_with(bus, config, cx));
        let (mut frames, mut errors) = (Vec::new(), Vec::new());
        while frames.len() < 3 || errors.is_empty() {
            for input in rx.recv().await.expect("the source runs") {
                match input {
                    Input::Can(frame) => frames.push(frame),
                    // An error frame is handed on for the intrusion monitor, with its bus.
                    Input::BusError(e) => errors.push((e.bus, e.at.wall_us, e.id)),
                    other => panic!("a frame, not {other:?}"),
                }
            }
        }
        assert_eq!(errors, [(Arc::from("can0"), 1_635_188_455_020_850, None)]);
        frames.sort_by_key(|f| f.data[0]);
        assert_eq!(
            frames
                .iter()
                .map(|f| (&*f.bus, f.data[0]))
                .collect::<Vec<_>>(),
            [("can0", 1), ("can0", 2), ("can1", 3)]
        );
        assert_eq!(
            frames[0].at.wall_us, 1_635_188_455_020_850,
            "kernel time is the wall time"
        );
        assert_eq!(metrics.snapshot().source_reopens_total, 1);
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn what_the_socket_holds_is_handed_on_in_one_batch() {
        let bus = FakeBus::default();
        let burst: VecDeque<_> = (0..700u32)
            .map(|i| data(0x18FEEE00, i as u8, None))
            .collect();
        bus.scripts.lock().unwrap().push(("can0".into(), burst));
        let config = CanConfig {
            interfaces: vec!["can0".into()],
        };
        let (tx, mut rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let cx = SourceContext::new(Clock::start(), tx, shutdown.clone(), Arc::default());
        let start = Instant::now();
        let task = tokio::spawn(run_with(bus, config, cx));
        // 700 frames waiting: a full batch at once, the rest one hand-off period later.
        let first = rx.recv().await.unwrap();
        assert_eq!((first.len(), start.elapsed()), (BATCH_MAX, Duration::ZERO));
        let second = rx.recv().await.unwrap();
        assert_eq!(
            (second.len(), start.elapsed()),
            (700 - BATCH_MAX, HAND_OFF_EVERY)
        );
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[test]
    fn config_refuses_unknown_keys() {
        let cfg: CanConfig = toml::from_str("interfaces = [\"can0\"]").unwrap();
        assert_eq!(cfg.interfaces, ["can0"]);
        assert!(toml::from_str::<CanConfig>("interfaces = []\nbitrate = 250000").is_err());
    }
}
