//! The pipeline: builds every stage from the config, joins them with bounded channels and
//! runs them as named tokio tasks.
//!
//! ```text
//! sources ─inputs─> decode+route ─┬─> detect ─alerts─> alarm ─panel─> display (never waits on the network)
//!                                 │            └─────> outbound alerts
//!                                 ├─> batch ──batches─> outbound
//!                                 └─> taps (the demo's view; lossy)
//! ```
//!
//! # Shutdown
//!
//! Only sources watch the [`CancellationToken`]. When they return, their senders drop and
//! each stage drains its input and ends, so the order (sources, decode, detect and batch,
//! alarm and outbound) falls out of the channel graph. [`Pipeline::join`] waits for that
//! under the configured deadline and names any task still running past it.
//!
//! # Backpressure
//!
//! Sources await a full channel (a log or the simulator slows down; the kernel buffers a
//! live bus). The router awaits the detect stage, because every reading must be judged,
//! but sheds (and counts) what the batch stage cannot take, so a stalled uplink path can
//! never delay an alarm.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alarm::{self, LinkStatus, Panel};
use crate::batch::{self, Batch};
use crate::config::Config;
use crate::decode::dm1::DiagnosticEvent;
use crate::decode::{Decoded, Decoder, Input};
use crate::detect::{self, Detector, alert::AlertEvent};
use crate::reading::Reading;
use crate::source;
use crate::systemd::Notifier;
use crate::telemetry::Metrics;

// Channel capacities, each with its reason.
/// Sources to decode: 1024 frames is 64 ms of four saturated J1939 buses (16k frames/s),
/// enough to ride out a scheduling hiccup without holding much memory.
const INPUTS_CAPACITY: usize = 1024;
/// Router to detect: detection is cheap per reading, so a short queue keeps alarm latency low.
const DETECT_CAPACITY: usize = 256;
/// Router to batch: a full 10 s batch of every signal at 10 Hz fits with room to spare.
const BATCH_CAPACITY: usize = 2048;
/// Detect to alarm: alerts are rare; 64 absorbs a burst when many limits trip at once.
const ALARM_CAPACITY: usize = 64;
/// Detect to the fleet: as above; a full queue here sheds (counted), it never blocks detect.
const OUTBOUND_ALERTS_CAPACITY: usize = 256;
/// Batch to the fleet: a few sealed batches; the spool behind it absorbs outages.
const OUTBOUND_BATCHES_CAPACITY: usize = 4;

/// What a front end (the demo's view) may watch. Copies are lossy: a slow view misses
/// readings rather than slowing the pipeline.
#[derive(Default)]
pub struct Taps {
    pub readings: Option<mpsc::Sender<Reading>>,
    pub alerts: Option<mpsc::Sender<AlertEvent>>,
    pub batches: Option<mpsc::Sender<Batch>>,
    pub diagnostics: Option<mpsc::Sender<DiagnosticEvent>>,
}

/// What a caller plugs in instead of what the config names: tests, benchmarks and tools.
#[derive(Default)]
pub struct Plugs {
    /// The cab's devices; `None` opens the ones `[alarm]` names.
    pub alarm: Option<alarm::Devices>,
    /// Inputs fed in as one more source (tests and benchmarks inject frames here). It ends,
    /// like any source, when the token is cancelled or its sender is dropped.
    pub inputs: Option<mpsc::Receiver<Input>>,
}

/// Why the pipeline could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no source is configured; add [source.simulator] to the config")]
    NoSource,
    #[error(transparent)]
    Source(#[from] source::BuildError),
    #[error(transparent)]
    Dbc(#[from] crate::decode::dbc::DbcError),
    #[error(transparent)]
    Alarm(#[from] alarm::OpenError),
    #[error(
        "tasks still running {deadline:?} after shutdown began: {tasks}; raise [shutdown] deadline or report a bug"
    )]
    DeadlineExceeded {
        deadline: std::time::Duration,
        tasks: String,
    },
}

/// The tasks of one pipeline, each with a name so a stuck one can be named.
#[derive(Clone, Default)]
struct Tasks {
    tracker: TaskTracker,
    live: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

/// Removes a task's name from the live set when the task ends, however it ends.
struct LiveGuard {
    name: &'static str,
    live: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = live.get_mut(self.name) {
            *n -= 1;
            if *n == 0 {
                live.remove(self.name);
            }
        }
    }
}

impl Tasks {
    fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        *self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_default() += 1;
        let guard = LiveGuard {
            name,
            live: self.live.clone(),
        };
        self.tracker.spawn(async move {
            let _guard = guard;
            task.await;
            tracing::debug!(event = "task_finished", task = name);
        });
    }

    fn live_names(&self) -> String {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .map(|(name, n)| format!("{name} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A running pipeline.
pub struct Pipeline {
    tasks: Tasks,
    /// How many tasks were started; all of them must have ended when `join` succeeds.
    started: usize,
    shutdown: CancellationToken,
    deadline: std::time::Duration,
    /// The cab outputs' state, for front ends.
    pub panel: watch::Receiver<Panel>,
    /// The link and spool state the cab display shows when nothing is wrong; the uplink and
    /// spool report here. Until they do, it stays unknown.
    pub link: watch::Sender<LinkStatus>,
    pub metrics: Arc<Metrics>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Summary {
    pub metrics: crate::telemetry::MetricsSnapshot,
    /// Tasks that had ended when the run returned (all of them on success).
    pub tasks_drained: usize,
}

impl Pipeline {
    /// Starts every stage. Returns at once; [`Pipeline::join`] waits for the end.
    pub fn start(
        config: Config,
        shutdown: CancellationToken,
        taps: Taps,
    ) -> Result<Pipeline, RunError> {
        Pipeline::start_with(config, shutdown, taps, Plugs::default())
    }

    /// [`Pipeline::start`], with devices or inputs plugged in instead of the configured ones.
    pub fn start_with(
        config: Config,
        shutdown: CancellationToken,
        taps: Taps,
        plugs: Plugs,
    ) -> Result<Pipeline, RunError> {
        let metrics = Arc::new(Metrics::default());
        let tasks = Tasks::default();
        // Opened first, so a missing device fails the start before any task runs.
        let devices = match plugs.alarm {
            Some(devices) => devices,
            None => alarm::Devices::open(&config.alarm)?,
        };

        let (inputs_tx, inputs_rx) = mpsc::channel(INPUTS_CAPACITY);
        // Checked by Config::validate already; loaded here once for the decoder.
        let table = config.dbc.load()?;
        let mut sources =
            source::build_all(&config, &metrics, inputs_tx.clone(), shutdown.clone())?;
        if let Some(injected) = plugs.inputs {
            sources.push((
                "source:injected",
                Box::pin(forward(injected, inputs_tx, shutdown.clone())),
            ));
        }
        if sources.is_empty() {
            return Err(RunError::NoSource);
        }
        for (name, task) in sources {
            tasks.spawn(name, task);
        }

        let (detect_tx, detect_rx) = mpsc::channel(DETECT_CAPACITY);
        let (batch_tx, batch_rx) = mpsc::channel(BATCH_CAPACITY);
        let (diagnostics_tx, diagnostics_rx) = mpsc::channel(OUTBOUND_ALERTS_CAPACITY);
        let router = Router {
            decoder: Decoder::with_signal_table(table, metrics.clone()),
            diagnostics: diagnostics_tx,
            detect: detect_tx,
            batch: batch_tx,
            tap: taps.readings.clone(),
            metrics: metrics.clone(),
        };
        tasks.spawn("decode", router.run(inputs_rx));

        let (alarm_tx, alarm_rx) = mpsc::channel(ALARM_CAPACITY);
        let (outbound_alerts_tx, outbound_alerts_rx) = mpsc::channel(OUTBOUND_ALERTS_CAPACITY);
        tasks.spawn(
            "detect",
            detect::run(
                Detector::new(&config),
                detect_rx,
                alarm_tx,
                outbound_alerts_tx,
                metrics.clone(),
            ),
        );

        let (panel_tx, panel_rx) = watch::channel(Panel::default());
        let (link_tx, link_rx) = watch::channel(LinkStatus::default());
        let alarm::Devices {
            buzzer,
            button,
            display,
        } = devices;
        if let Some(display) = display {
            tasks.spawn(
                "display",
                alarm::display::run(panel_rx.clone(), link_rx, display),
            );
        }
        tasks.spawn("alarm", async move {
            alarm::run(alarm_rx, panel_tx, buzzer, button).await;
        });

        let (batches_tx, batches_rx) = mpsc::channel(OUTBOUND_BATCHES_CAPACITY);
        tasks.spawn(
            "batch",
            batch::run(config.batch.clone(), batch_rx, batches_tx, metrics.clone()),
        );
        tasks.spawn(
            "outbound",
            outbound(outbound_alerts_rx, batches_rx, diagnostics_rx, taps),
        );

        tasks.tracker.close();
        let started = tasks.tracker.len();
        tracing::info!(event = "pipeline_started", vehicle = %config.vehicle.id, tasks = started);
        Ok(Pipeline {
            tasks,
            started,
            shutdown,
            deadline: config.shutdown.deadline,
            panel: panel_rx,
            link: link_tx,
            metrics,
        })
    }

    /// A handle that tells whether every stage is still running.
    pub fn health(&self) -> Health {
        Health {
            tasks: self.tasks.clone(),
            started: self.started,
        }
    }

    /// Waits until the token is cancelled (or every source has ended by itself), then for
    /// every stage to drain, within the deadline.
    pub async fn join(self) -> Result<Summary, RunError> {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.tasks.tracker.wait() => {}
        }
        tracing::info!(
            event = "shutdown_started",
            tasks_running = self.tasks.tracker.len(),
            deadline = ?self.deadline
        );
        if tokio::time::timeout(self.deadline, self.tasks.tracker.wait())
            .await
            .is_err()
        {
            return Err(RunError::DeadlineExceeded {
                deadline: self.deadline,
                tasks: self.tasks.live_names(),
            });
        }
        let summary = Summary {
            metrics: self.metrics.snapshot(),
            tasks_drained: self.started,
        };
        tracing::info!(
            event = "shutdown_complete",
            tasks_drained = self.started,
            tasks_left = self.tasks.tracker.len()
        );
        Ok(summary)
    }
}

/// Runs the agent until `shutdown` is cancelled: the library's entry point.
/// Tells systemd (when it supervises the agent) that it is ready, pings the watchdog while
/// every stage is alive, and says when it is stopping.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Summary, RunError> {
    let notifier = Notifier::from_env().unwrap_or_else(|error| {
        tracing::warn!(event = "systemd_notify_unavailable", %error);
        Notifier::disabled()
    });
    let pipeline = Pipeline::start(config, shutdown.clone(), Taps::default())?;
    log_notify("ready", notifier.ready());
    let supervisor = tokio::spawn(supervise(notifier, pipeline.health(), shutdown));
    let summary = pipeline.join().await;
    supervisor.abort();
    summary
}

/// Pings systemd's watchdog while the pipeline is whole; a dead stage stops the pings, so
/// systemd restarts the agent. Says STOPPING once shutdown begins.
async fn supervise(notifier: Notifier, health: Health, shutdown: CancellationToken) {
    // Without a watchdog there is nothing to ping: only the stopping message is left.
    let every = notifier
        .watchdog_interval()
        .unwrap_or(std::time::Duration::MAX);
    let mut reported_broken = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                log_notify("stopping", notifier.stopping());
                return;
            }
            _ = tokio::time::sleep(every) => {}
        }
        if health.is_whole() {
            log_notify("watchdog", notifier.ping());
        } else if !reported_broken {
            reported_broken = true;
            tracing::error!(event = "pipeline_broken", tasks = %health.tasks.live_names(), "a stage has ended; watchdog pings stop so systemd restarts the agent");
        }
    }
}

fn log_notify(what: &'static str, result: Result<(), crate::systemd::NotifyError>) {
    if let Err(error) = result {
        tracing::warn!(event = "systemd_notify_failed", message = what, %error);
    }
}

/// Whether every task a pipeline started is still running.
pub struct Health {
    tasks: Tasks,
    started: usize,
}

impl Health {
    pub fn is_whole(&self) -> bool {
        self.tasks.tracker.len() == self.started
    }
}

/// Decodes inputs and hands each reading to detect, batch and the taps, and each J1939
/// diagnostic (DM1) event to the fleet path.
struct Router {
    decoder: Decoder,
    detect: mpsc::Sender<Reading>,
    batch: mpsc::Sender<Reading>,
    diagnostics: mpsc::Sender<DiagnosticEvent>,
    tap: Option<mpsc::Sender<Reading>>,
    metrics: Arc<Metrics>,
}

/// Inputs decoded per batch: enough to amortise the counters on a busy bus, few enough
/// that the first reading of a batch is not held back noticeably (64 frames are 4 ms of
/// four saturated buses).
const DECODE_BATCH: usize = 64;

impl Router {
    async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        let mut batch = Vec::with_capacity(DECODE_BATCH);
        let mut decoded = Decoded::default();
        while inputs.recv_many(&mut batch, DECODE_BATCH).await > 0 {
            self.decoder.decode_batch(&batch, &mut decoded);
            // Transport sessions time out on the frames' own clock, never the wall clock.
            if let Some(now) = batch.iter().filter_map(Input::mono).max() {
                self.decoder.expire(now);
            }
            batch.clear();
            for event in decoded.diagnostics.drain(..) {
                if self.diagnostics.try_send(event).is_err() {
                    Metrics::inc(&self.metrics.alerts_shed_total);
                }
            }
            for reading in decoded.readings.drain(..) {
                if let Some(tap) = &self.tap {
                    let _ = tap.try_send(reading.clone());
                }
                if self.batch.try_send(reading.clone()).is_err() {
                    Metrics::inc(&self.metrics.readings_shed_total);
                }
                if self.detect.send(reading).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The injected inputs' source: forwards until shutdown or until its sender is gone.
async fn forward(
    mut from: mpsc::Receiver<Input>,
    to: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    loop {
        let input = tokio::select! {
            _ = shutdown.cancelled() => return,
            input = from.recv() => input,
        };
        let Some(input) = input else { return };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            sent = to.send(input) => if sent.is_err() { return },
        }
    }
}

/// Takes what leaves the truck. Until the spool and uplink stages are wired here, it hands
/// alerts, diagnostics and batches to the taps only.
async fn outbound(
    mut alerts: mpsc::Receiver<AlertEvent>,
    mut batches: mpsc::Receiver<Batch>,
    mut diagnostics: mpsc::Receiver<DiagnosticEvent>,
    taps: Taps,
) {
    let (mut alerts_open, mut batches_open, mut diagnostics_open) = (true, true, true);
    while alerts_open || batches_open || diagnostics_open {
        tokio::select! {
            alert = alerts.recv(), if alerts_open => match alert {
                Some(alert) => tap(&taps.alerts, alert),
                None => alerts_open = false,
            },
            batch = batches.recv(), if batches_open => match batch {
                Some(batch) => tap(&taps.batches, batch),
                None => batches_open = false,
            },
            event = diagnostics.recv(), if diagnostics_open => match event {
                Some(event) => tap(&taps.diagnostics, event),
                None => diagnostics_open = false,
            },
        }
    }
}

/// Offers a copy to a front end; a slow or absent one misses it.
fn tap<T>(tap: &Option<mpsc::Sender<T>>, item: T) {
    if let Some(tap) = tap {
        let _ = tap.try_send(item);
    }
}
