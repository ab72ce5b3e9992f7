//! The pipeline: builds every stage from its own config ([`Stages`]), joins them with
//! bounded channels and runs them, and the sources it is given, as named tokio tasks.
//!
//! ```text
//! sources ─inputs─> decode+route ─┬─> detect ─alerts─> alarm ─panel─> display (never waits on the network)
//!       (security monitor inline) │            └─────> outbound alerts
//!                                 ├─> security events, DM1 ─> outbound
//!                                 ├─> batch ──batches─> outbound
//!                                 └─> taps (the demo's view; lossy)
//!
//! outbound ─encode, append─> spool ─next_to_send─> uplink ─QoS 1─> broker
//!                                  <────ack on PUBACK──┘  └─shadow─> tuning (watch) ─> detect, batch
//!                                                          └─jobs──> ModelUpdater
//! ```
//!
//! The spool and the uplink run only when [`Stages::outbound`] is given (an `[uplink]` in the
//! config); without it nothing leaves the truck and outbound feeds the taps alone. Files
//! (the DBC, the model, the PEM files) were read before: the pipeline opens only the cab's
//! devices and the spool.
//!
//! # Shutdown
//!
//! Only sources watch the [`CancellationToken`]. When they return, their senders drop and
//! each stage drains its input and ends, so the order (sources, decode, detect and batch,
//! alarm and outbound) falls out of the channel graph. [`Pipeline::join`] waits for that
//! under the configured deadline and names any task still running past it. The metrics
//! endpoint (`[metrics]`, [`crate::telemetry::endpoint`]) is not one of those tasks: it
//! answers through the drain (`/readyz` then says 503) and stops when `join` returns.
//!
//! # Backpressure
//!
//! Sources await a full channel (a log or the simulator slows down; the kernel buffers a
//! live bus). The router awaits the detect stage, because every reading must be judged,
//! but sheds (and counts) what the batch stage cannot take, so a stalled uplink path can
//! never delay an alarm.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alarm::{self, AlarmConfig, LinkStatus, Panel};
use crate::batch::{self, Batch, BatchConfig};
use crate::decode::dm1::DiagnosticEvent;
use crate::decode::table::SignalTable;
use crate::decode::{Decoded, Decoder};
use crate::detect::alert::AlertEvent;
use crate::detect::{
    self, DetectConfig, DetectStatus, Detector, Model, ModelHandle, ModelUpdater, ModelUpdates,
    Tuning,
};
use crate::duration;
use crate::frame::Input;
use crate::reading::{Clock, Reading};
use crate::security::{Monitor, SecurityConfig, SecurityEvent};
use crate::source::{Source, SourceContext};
use crate::spool::{RecordKind, Seq, Spool, SpoolConfig, SpoolError, SpoolHandle, SpoolTask};
use crate::systemd::Notifier;
use crate::telemetry::{Liveness, Metrics, MetricsConfig, endpoint};
use crate::uplink::payload::{self, Dm1Changes, Stream};
use crate::uplink::{Drain, Uplink, UplinkConfig, readings};
use crate::vehicle::VehicleConfig;

// Channel capacities, each with its reason. Frames and readings move in batches (one
// hand-off per source wake-up, see `source::HAND_OFF_EVERY`), so the first three count
// batches of up to `source::BATCH_MAX` inputs and the readings decoded from them.
/// Sources to decode: 32 batches are 640 ms of a busy source's 20 ms hand-offs (at most
/// 16,384 frames, about 1 MB), enough to ride out a scheduling hiccup.
const INPUTS_CAPACITY: usize = 32;
/// Router to detect: detection is cheap per reading, so a short queue keeps alarm latency low.
const DETECT_CAPACITY: usize = 8;
/// Router to batch: the batch stage only appends to its open batch, so it is never far
/// behind; 32 hand-offs give it 640 ms of slack before readings are shed (counted).
const BATCH_CAPACITY: usize = 32;
/// Detect to alarm: alerts are rare; 64 absorbs a burst when many limits trip at once.
const ALARM_CAPACITY: usize = 64;
/// Detect to the fleet: as above; a full queue here sheds (counted), it never blocks detect.
const OUTBOUND_ALERTS_CAPACITY: usize = 256;
/// Batch to the fleet: a few sealed batches; the spool behind it absorbs outages.
const OUTBOUND_BATCHES_CAPACITY: usize = 4;

/// The runtime `vigil run` runs the pipeline on (the pipeline bench builds the same): one
/// thread. The stages' work is small and comes in batches, and a hand-off between two
/// threads costs a wake-up and a context switch each: the pipeline bench measured 5.5 %
/// of a core at 16k frames/s on tokio's multi-threaded runtime and 4.0 % on this one
/// (5 ms hand-offs, other core busy). What may block runs elsewhere: the spool on its own
/// thread, the display and a job's model check on the blocking pool.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// What a front end (the demo's view) may watch. Copies are lossy: a slow view misses
/// readings rather than slowing the pipeline.
#[derive(Default)]
pub struct Taps {
    pub readings: Option<mpsc::Sender<Reading>>,
    pub alerts: Option<mpsc::Sender<AlertEvent>>,
    pub batches: Option<mpsc::Sender<Batch>>,
    pub diagnostics: Option<mpsc::Sender<DiagnosticEvent>>,
    pub security: Option<mpsc::Sender<SecurityEvent>>,
}

/// What a caller plugs in instead of what the config names: tests, benchmarks and tools.
#[derive(Default)]
pub struct Plugs {
    /// The cab's devices; `None` opens the ones `[alarm]` names.
    pub alarm: Option<alarm::Devices>,
    /// What model-update jobs swap; `None`: the detect stage's own model handle.
    pub model: Option<Arc<dyn ModelUpdater>>,
    /// Told the sequence number of every spooled record the broker acknowledged.
    pub acked: Option<mpsc::UnboundedSender<Seq>>,
}

/// The `[shutdown]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long every stage has to drain once shutdown begins.
    #[serde(with = "duration")]
    pub deadline: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            deadline: Duration::from_secs(5),
        }
    }
}

impl ShutdownConfig {
    /// Checks the values; returns the key and what is wrong. No I/O.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        duration::check_positive(self.deadline).map_err(|message| ("shutdown.deadline", message))
    }
}

/// Every stage's own config, with what start must read from disk already read and checked
/// (the `vigil` command's config resolves a file into this once). The pipeline itself
/// opens only the cab's devices and the spool.
pub struct Stages {
    pub vehicle: VehicleConfig,
    /// The decoder's signal table: the DBC, read and checked.
    pub decode: SignalTable,
    /// The bus's intrusion monitor, run by the decode stage on every frame.
    pub security: SecurityConfig,
    pub detect: DetectConfig,
    /// The forecaster, verified against its card; `None` runs the rules and limits alone.
    pub model: Option<Model>,
    /// Where jobs' models are kept, what to fall back to, and why `model` was chosen.
    pub model_updates: ModelUpdates,
    pub batch: BatchConfig,
    pub alarm: AlarmConfig,
    /// The spool and the uplink; `None` keeps everything on the truck.
    pub outbound: Option<Outbound>,
    pub shutdown: ShutdownConfig,
    /// The Prometheus endpoint; off unless it names an address.
    pub metrics: MetricsConfig,
}

/// What leaves the truck: where it waits, and the broker it goes to.
pub struct Outbound {
    pub spool: SpoolConfig,
    pub uplink: UplinkConfig,
    /// The TLS settings read from the PEM files ([`UplinkConfig::resolve_tls`]); `None` for
    /// plain TCP to a development broker.
    pub tls: Option<crate::uplink::tls::DeviceTls>,
}

impl Stages {
    /// Every stage at its defaults, the built-in DBC and model, nothing leaving the truck:
    /// for tests and benchmarks that plug in their own sources.
    pub fn builtin() -> Stages {
        Stages {
            vehicle: VehicleConfig::default(),
            decode: crate::decode::dbc::DbcConfig::default()
                .load()
                .expect("the built-in DBC decodes"),
            security: SecurityConfig::default(),
            detect: DetectConfig::default(),
            model: Some(Model::builtin().expect("the built-in model checks out")),
            model_updates: ModelUpdates::default(),
            batch: BatchConfig::default(),
            alarm: AlarmConfig::default(),
            outbound: None,
            shutdown: ShutdownConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Why the pipeline could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no source is configured; add one under [source] in the config")]
    NoSource,
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(
        "tasks still running {deadline:?} after shutdown began: {tasks}; raise [shutdown] deadline or report a bug"
    )]
    DeadlineExceeded {
        deadline: std::time::Duration,
        tasks: String,
    },
    #[error(
        "the {stage} stage ended while the truck's inputs still ran; the agent stopped so that \
         systemd starts it afresh (see the error logged before this)"
    )]
    StageEnded { stage: &'static str },
}

/// The tasks of one pipeline, each with a name so a stuck or dead one can be named.
#[derive(Clone)]
struct Tasks {
    tracker: TaskTracker,
    counts: Arc<Mutex<BTreeMap<&'static str, Count>>>,
    /// Cancelled when a stage ends while a source still runs and no shutdown was asked for:
    /// the pipeline then stops (never a live agent with a dead stage).
    broken: Broken,
}

/// The first stage that ended too soon, and the token that stops the pipeline for it.
#[derive(Clone)]
struct Broken {
    shutdown: CancellationToken,
    stage: Arc<std::sync::OnceLock<&'static str>>,
    token: CancellationToken,
}

/// Sources end by themselves (a replayed log runs out) and a failed one leaves the others
/// running; every other task is a stage, which runs until the sources end or shutdown.
fn is_source(task: &str) -> bool {
    task.starts_with("source:")
}

/// Tasks of one name: how many were started, how many still run.
#[derive(Clone, Copy, Default)]
struct Count {
    started: usize,
    live: usize,
}

/// Counts a task out when it ends, however it ends (a panic included), and stops the
/// pipeline when a stage ends too soon.
struct LiveGuard {
    name: &'static str,
    counts: Arc<Mutex<BTreeMap<&'static str, Count>>>,
    broken: Broken,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let sources_run = {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = counts.get_mut(self.name) {
                count.live -= 1;
            }
            counts
                .iter()
                .any(|(name, count)| is_source(name) && count.live > 0)
        };
        let broken = &self.broken;
        if !is_source(self.name) && sources_run && !broken.shutdown.is_cancelled() {
            if broken.stage.set(self.name).is_ok() {
                tracing::error!(
                    event = "stage_ended",
                    stage = self.name,
                    "a stage ended while the truck's inputs still run: the agent stops (exit 1) so that systemd starts it afresh"
                );
            }
            broken.token.cancel();
        }
    }
}

impl Tasks {
    fn new(shutdown: CancellationToken) -> Tasks {
        Tasks {
            tracker: TaskTracker::new(),
            counts: Arc::default(),
            broken: Broken {
                shutdown,
                stage: Arc::default(),
                token: CancellationToken::new(),
            },
        }
    }

    fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let count = counts.entry(name).or_default();
            count.started += 1;
            count.live += 1;
        }
        let guard = LiveGuard {
            name,
            counts: self.counts.clone(),
            broken: self.broken.clone(),
        };
        self.tracker.spawn(async move {
            let _guard = guard;
            task.await;
            tracing::debug!(event = "task_finished", task = name);
        });
    }

    fn live_names(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .filter(|(_, count)| count.live > 0)
            .map(|(name, count)| format!("{name} x{}", count.live))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How many tasks were started and run, and the names of those that ended.
    fn liveness(&self) -> Liveness {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut liveness = Liveness::default();
        for (name, count) in counts.iter() {
            liveness.started += count.started;
            liveness.alive += count.live;
            if count.live < count.started {
                liveness.dead.push(name);
            }
        }
        liveness
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
    /// The runtime-adjustable config in force: the device shadow and a config reload
    /// change it, and the stages that use it read the newest value.
    pub tuning: watch::Sender<Tuning>,
    /// What the model covered and which parameters this truck does not send.
    pub detect: watch::Receiver<DetectStatus>,
    pub metrics: Arc<Metrics>,
    /// Where the metrics endpoint listens, once it does (`None` until then, and without
    /// `[metrics] listen`).
    pub metrics_listening: watch::Receiver<Option<std::net::SocketAddr>>,
    /// The metrics endpoint, when `[metrics] listen` names an address: it answers through
    /// the drain and stops when [`Pipeline::join`] returns (or the pipeline is dropped).
    endpoint: Option<(tokio::task::JoinHandle<()>, tokio_util::sync::DropGuard)>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Summary {
    pub metrics: crate::telemetry::MetricsSnapshot,
    /// Tasks that had ended when the run returned (all of them on success).
    pub tasks_drained: usize,
}

impl Pipeline {
    /// Starts every stage and the given sources. Returns at once; [`Pipeline::join`] waits
    /// for the end.
    pub fn start(
        stages: Stages,
        sources: Vec<Box<dyn Source>>,
        shutdown: CancellationToken,
        taps: Taps,
    ) -> Result<Pipeline, RunError> {
        Pipeline::start_with(stages, sources, shutdown, taps, Plugs::default())
    }

    /// [`Pipeline::start`], with devices or a model updater plugged in instead of the
    /// configured ones.
    pub fn start_with(
        stages: Stages,
        sources: Vec<Box<dyn Source>>,
        shutdown: CancellationToken,
        taps: Taps,
        plugs: Plugs,
    ) -> Result<Pipeline, RunError> {
        let Stages {
            vehicle,
            decode,
            security,
            detect,
            model,
            model_updates,
            batch,
            alarm,
            outbound: leaves_the_truck,
            shutdown: shutdown_config,
            metrics: metrics_config,
        } = stages;
        if sources.is_empty() {
            return Err(RunError::NoSource);
        }
        let metrics = Arc::new(Metrics::default());
        let tasks = Tasks::new(shutdown.clone());
        // A device that cannot be opened is retried while everything else runs: the fleet
        // still gets the alerts, and the display or buzzer works once it is there.
        let devices = match plugs.alarm {
            Some(devices) => devices,
            None => alarm::Devices::open_or_retry(&alarm, &metrics),
        };
        let (tuning_tx, tuning_rx) = watch::channel(Tuning::new(&vehicle, &detect, batch.max_age));
        let (link_tx, link_rx) = watch::channel(LinkStatus::default());

        let (inputs_tx, inputs_rx) = mpsc::channel(INPUTS_CAPACITY);
        // One monotonic origin for every live source, so their readings order against each other.
        let cx = SourceContext::new(Clock::start(), inputs_tx, shutdown.clone(), metrics.clone());
        for source in sources {
            let name = source.name();
            tasks.spawn(name, logged(name, metrics.clone(), source.run(cx.clone())));
        }
        drop(cx);

        let (detect_tx, detect_rx) = mpsc::channel(DETECT_CAPACITY);
        let (batch_tx, batch_rx) = mpsc::channel(BATCH_CAPACITY);
        let (diagnostics_tx, diagnostics_rx) = mpsc::channel(OUTBOUND_ALERTS_CAPACITY);
        let (security_tx, security_rx) = mpsc::channel(OUTBOUND_ALERTS_CAPACITY);
        let router = Router {
            decoder: Decoder::with_signal_table(decode, metrics.clone()),
            monitor: Monitor::new(security, metrics.clone()),
            diagnostics: diagnostics_tx,
            security: security_tx,
            detect: detect_tx,
            batch: batch_tx,
            tap: taps.readings.clone(),
            metrics: metrics.clone(),
        };
        tasks.spawn("decode", router.run(inputs_rx));

        let (alarm_tx, alarm_rx) = mpsc::channel(ALARM_CAPACITY);
        let (outbound_alerts_tx, outbound_alerts_rx) = mpsc::channel(OUTBOUND_ALERTS_CAPACITY);
        match &model {
            Some(m) => tracing::info!(event = "model_loaded", model = %m.id),
            None => tracing::info!(
                event = "model_none",
                "running the rules and limits without a model"
            ),
        }
        let model_handle = ModelHandle::new(model);
        let detector = Detector::new(&vehicle, &detect, model_handle.clone());
        let (detect_status_tx, detect_status) = watch::channel(detector.status());
        let (live_tx, live_rx) = watch::channel(detector.live());
        // Model-update jobs swap this detector's model unless a caller plugs in another.
        let model_updater: Arc<dyn ModelUpdater> = match plugs.model {
            Some(updater) => updater,
            None => Arc::new(model_updates.updater(model_handle)),
        };
        tasks.spawn(
            "detect",
            detect::run(
                detector,
                detect_rx,
                alarm_tx,
                outbound_alerts_tx,
                metrics.clone(),
                tuning_rx.clone(),
                detect::Watches {
                    status: detect_status_tx,
                    live: live_tx,
                },
            ),
        );

        let (panel_tx, panel_rx) = watch::channel(Panel::default());
        let alarm::Devices {
            buzzer,
            button,
            display,
        } = devices;
        if let Some(display) = display {
            tasks.spawn(
                "display",
                alarm::display::run(panel_rx.clone(), link_rx, live_rx, display),
            );
        }
        tasks.spawn("alarm", async move {
            alarm::run(alarm_rx, panel_tx, buzzer, button).await;
        });

        let (batches_tx, batches_rx) = mpsc::channel(OUTBOUND_BATCHES_CAPACITY);
        tasks.spawn(
            "batch",
            batch::run(
                batch,
                batch_rx,
                batches_tx,
                metrics.clone(),
                Some(tuning_rx.clone()),
            ),
        );

        // Cancelled when the outbound stage has appended its last record.
        let appended = CancellationToken::new();
        let sink = match leaves_the_truck {
            Some(Outbound {
                spool: spool_config,
                uplink,
                tls,
            }) => {
                let dir = spool_config.dir.clone();
                let spool = Spool::open(spool_config, metrics.clone())?;
                tracing::info!(event = "spool_opened", dir = %dir.display(), recovered = spool.open_report().recovered);
                // The spool stops when its last handle drops (outbound has appended its
                // last record and the uplink has stopped), never on the token: records
                // sealed during shutdown must still be written.
                let (handle, spool_task) = SpoolTask::spawn(spool, CancellationToken::new())?;
                tasks.spawn("spool", async move {
                    if let Err(e) = spool_task.join().await {
                        tracing::error!(event = "spool_close_failed", error = %e);
                    }
                });
                let model = model_updater;
                let (resolution, message_bytes) = (uplink.resolution, uplink.message_bytes);
                let uplink_task = Uplink {
                    config: uplink,
                    thing: vehicle.id.clone(),
                    tls: tls.map(|tls| {
                        if let Some(expires) = tls.certificate_expires {
                            let seconds = expires
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs());
                            metrics
                                .uplink_certificate_expires_seconds
                                .store(seconds, std::sync::atomic::Ordering::Relaxed);
                        }
                        tls.config
                    }),
                    spool: handle.clone(),
                    link: link_tx.clone(),
                    tuning: tuning_tx.clone(),
                    detect: detect_status.clone(),
                    model,
                    metrics: metrics.clone(),
                    acked: plugs.acked,
                    stages: Some(Box::new({
                        let tasks = tasks.clone();
                        move || tasks.liveness()
                    })),
                };
                let token = shutdown.clone();
                // At shutdown the uplink sends what outbound appends last (the batch sealed
                // as the stages drain), within the deadline less the goodbye's grace.
                let drain = Drain {
                    appended: appended.clone(),
                    budget: shutdown_config
                        .deadline
                        .saturating_sub(UPLINK_DRAIN_RESERVE),
                };
                tasks.spawn("uplink", async move {
                    if let Err(e) = uplink_task.run_and_drain(token, drain).await {
                        tracing::error!(event = "uplink_failed", error = %e);
                    }
                });
                Some(Sink {
                    spool: handle,
                    resolution,
                    budget: message_bytes
                        .saturating_sub(payload::identity_headroom(vehicle.id.len())),
                    dm1: Dm1Changes::default(),
                    metrics: metrics.clone(),
                })
            }
            None => {
                tracing::info!(
                    event = "uplink_not_configured",
                    "no [uplink] in the config: nothing leaves the truck"
                );
                None
            }
        };
        let appended_all = appended.drop_guard();
        tasks.spawn(
            "outbound",
            outbound_then(
                appended_all,
                outbound(
                    Outgoing {
                        alerts: outbound_alerts_rx,
                        batches: batches_rx,
                        diagnostics: diagnostics_rx,
                        security: security_rx,
                    },
                    taps,
                    sink,
                ),
            ),
        );

        tasks.tracker.close();
        let started = tasks.tracker.len();
        tracing::info!(event = "pipeline_started", vehicle = %vehicle.id, tasks = started);
        // Outside the tracker: the endpoint must not keep a pipeline whose sources have
        // ended from draining, and it answers /readyz (503) while the stages drain.
        let (listening_tx, metrics_listening) = watch::channel(None);
        let endpoint = metrics_config.listen.map(|addr| {
            let stop = CancellationToken::new();
            let endpoint = endpoint::Endpoint {
                exposition: crate::telemetry::exposition::Exposition::new(metrics.clone()),
                liveness: Box::new({
                    let tasks = tasks.clone();
                    move || tasks.liveness()
                }),
            };
            let task = tokio::spawn(endpoint::run(addr, endpoint, listening_tx, stop.clone()));
            (task, stop.drop_guard())
        });
        Ok(Pipeline {
            tasks,
            started,
            shutdown,
            deadline: shutdown_config.deadline,
            panel: panel_rx,
            link: link_tx,
            tuning: tuning_tx,
            detect: detect_status,
            metrics,
            metrics_listening,
            endpoint,
        })
    }

    /// A handle that tells whether every stage is still running.
    pub fn health(&self) -> Health {
        Health {
            tasks: self.tasks.clone(),
        }
    }

    /// Waits until the token is cancelled (or every source has ended by itself), then for
    /// every stage to drain, within the deadline.
    pub async fn join(mut self) -> Result<Summary, RunError> {
        let summary = self.drain().await;
        if let Some((task, stop)) = self.endpoint.take() {
            drop(stop);
            let _ = task.await;
        }
        summary
    }

    async fn drain(&self) -> Result<Summary, RunError> {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.tasks.tracker.wait() => {}
            _ = self.tasks.broken.token.cancelled() => self.shutdown.cancel(),
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
        if let Some(&stage) = self.tasks.broken.stage.get() {
            return Err(RunError::StageEnded { stage });
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

/// What the shutdown deadline keeps back from the uplink's final sending: the goodbye
/// (offline status, DISCONNECT: at most a second) and a second for the stages after it.
const UPLINK_DRAIN_RESERVE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `stage`, then drops `done` (which cancels its token): tells the uplink the outbound
/// stage has appended its last record.
async fn outbound_then(
    done: tokio_util::sync::DropGuard,
    stage: impl std::future::Future<Output = ()>,
) {
    stage.await;
    drop(done);
}

/// Runs the agent until `shutdown` is cancelled: the library's entry point.
/// Tells systemd (when it supervises the agent) that it is ready, pings the watchdog while
/// every stage is alive, and says when it is stopping. Each tuning that arrives on
/// `reloads` (a config file read again on SIGHUP, already checked) replaces the running one.
pub async fn run(
    stages: Stages,
    sources: Vec<Box<dyn Source>>,
    shutdown: CancellationToken,
    reloads: mpsc::Receiver<Tuning>,
) -> Result<Summary, RunError> {
    let notifier = Notifier::from_env().unwrap_or_else(|error| {
        tracing::warn!(event = "systemd_notify_unavailable", %error);
        Notifier::disabled()
    });
    let pipeline = Pipeline::start(stages, sources, shutdown.clone(), Taps::default())?;
    log_notify("ready", notifier.ready());
    let supervisor = tokio::spawn(supervise(
        notifier,
        pipeline.health(),
        shutdown,
        reloads,
        pipeline.tuning.clone(),
    ));
    let summary = pipeline.join().await;
    supervisor.abort();
    summary
}

/// Pings systemd's watchdog while the pipeline is whole; a dead stage stops the pings, so
/// systemd restarts the agent. Applies reloaded tunings, telling systemd around each. Says
/// STOPPING once shutdown begins.
async fn supervise(
    notifier: Notifier,
    health: Health,
    shutdown: CancellationToken,
    mut reloads: mpsc::Receiver<Tuning>,
    tuning: watch::Sender<Tuning>,
) {
    // Without a watchdog there is nothing to ping: only the stopping message is left.
    let every = notifier
        .watchdog_interval()
        .unwrap_or(std::time::Duration::MAX);
    let mut reported_broken = false;
    let mut watchdog = tokio::time::interval(every.min(std::time::Duration::from_secs(86_400)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    watchdog.reset();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                log_notify("stopping", notifier.stopping());
                return;
            }
            Some(reloaded) = reloads.recv() => {
                log_notify("reloading", notifier.reloading());
                let changed = tuning.send_if_modified(|running| {
                    std::mem::replace(running, reloaded.clone()) != reloaded
                });
                tracing::info!(event = "config_reloaded", tuning_changed = changed, cargo = %reloaded.cargo);
                log_notify("ready", notifier.ready());
                continue;
            }
            _ = watchdog.tick() => {}
        }
        if health.is_whole() {
            log_notify("watchdog", notifier.ping());
        } else if !reported_broken {
            reported_broken = true;
            tracing::error!(event = "pipeline_broken", ended = %health.liveness().dead.join(", "), "a stage has ended; watchdog pings stop so systemd restarts the agent");
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
}

impl Health {
    pub fn is_whole(&self) -> bool {
        self.liveness().is_whole()
    }

    /// How many tasks were started and run, and the names of those that ended.
    pub fn liveness(&self) -> Liveness {
        self.tasks.liveness()
    }
}

/// Decodes inputs and hands each reading to detect, batch and the taps, and each J1939
/// diagnostic (DM1) event to the fleet path; watches every frame for the bus's intrusion
/// monitor (inline: a hand-off per frame would cost more than the watching) and hands its
/// events to the fleet path.
struct Router {
    decoder: Decoder,
    monitor: Monitor,
    detect: mpsc::Sender<Vec<Reading>>,
    batch: mpsc::Sender<Vec<Reading>>,
    diagnostics: mpsc::Sender<DiagnosticEvent>,
    security: mpsc::Sender<SecurityEvent>,
    tap: Option<mpsc::Sender<Reading>>,
    metrics: Arc<Metrics>,
}

impl Router {
    /// One batch of inputs in, one batch of readings out to detect (awaited) and to batch
    /// (shed when full): a hand-off per batch, never per frame.
    async fn run(mut self, mut inputs: mpsc::Receiver<Vec<Input>>) {
        let mut decoded = Decoded::default();
        let mut findings = Vec::new();
        while let Some(batch) = inputs.recv().await {
            self.decoder.decode_batch(&batch, &mut decoded);
            // Transport sessions time out on the frames' own clock, never the wall clock.
            if let Some(now) = batch.iter().filter_map(Input::mono).max() {
                self.decoder.expire(now);
            }
            for input in &batch {
                match input {
                    Input::Can(frame) => self.monitor.observe(frame, &mut findings),
                    Input::BusError(error) => self.monitor.bus_error(error, &mut findings),
                    Input::Node(_) | Input::NodeError { .. } | Input::Gps(_) => {}
                }
            }
            for refusal in decoded.transport.drain(..) {
                self.monitor.refused(&refusal, &mut findings);
            }
            for event in findings.drain(..) {
                if self.security.try_send(event).is_err() {
                    Metrics::inc(&self.metrics.alerts_shed_total);
                }
            }
            for event in decoded.diagnostics.drain(..) {
                if self.diagnostics.try_send(event).is_err() {
                    Metrics::inc(&self.metrics.alerts_shed_total);
                }
            }
            if decoded.readings.is_empty() {
                continue;
            }
            let readings = std::mem::take(&mut decoded.readings);
            if let Some(tap) = &self.tap {
                for reading in &readings {
                    let _ = tap.try_send(reading.clone());
                }
            }
            if let Err(shed) = self.batch.try_send(readings.clone()) {
                Metrics::add(
                    &self.metrics.readings_shed_total,
                    shed.into_inner().len() as u64,
                );
            }
            if self.detect.send(readings).await.is_err() {
                return;
            }
        }
    }
}

/// Runs a source, logging how it ended: a failed source is reported and counted, and the
/// rest of the agent keeps running on the other sources.
async fn logged(task: &'static str, metrics: Arc<Metrics>, source: crate::source::SourceTask) {
    let name = task.trim_start_matches("source:");
    match source.await {
        Ok(()) => tracing::info!(event = "source_ended", source = name),
        Err(error) => {
            Metrics::inc(&metrics.sources_failed_total);
            tracing::error!(event = "source_failed", source = name, %error)
        }
    }
}

/// Where outbound puts what leaves the truck: the spool, encoded for the uplink.
struct Sink {
    spool: SpoolHandle,
    resolution: f64,
    /// Largest readings message body, before the uplink adds its identity.
    budget: usize,
    dm1: Dm1Changes,
    metrics: Arc<Metrics>,
}

impl Sink {
    async fn append(&self, stream: Stream, body: &[u8]) {
        let kind: RecordKind = stream.record_kind();
        if let Err(e) = self.spool.append(kind, payload::stored(stream, body)).await {
            Metrics::inc(&self.metrics.outbound_append_failures_total);
            tracing::error!(event = "outbound_append_failed", %kind, error = %e);
        }
    }
}

/// What outbound takes in, one receiver a stream.
struct Outgoing {
    alerts: mpsc::Receiver<AlertEvent>,
    batches: mpsc::Receiver<Batch>,
    diagnostics: mpsc::Receiver<DiagnosticEvent>,
    security: mpsc::Receiver<SecurityEvent>,
}

/// Takes what leaves the truck: alerts at once (one message each), sealed reading batches
/// in the compact encoding (split to fit a message), DM1 events when they change, security
/// events as the monitor reports them; each is appended to the spool, and a copy offered
/// to the taps.
async fn outbound(mut from: Outgoing, taps: Taps, mut sink: Option<Sink>) {
    let (mut alerts_open, mut batches_open, mut diagnostics_open, mut security_open) =
        (true, true, true, true);
    while alerts_open || batches_open || diagnostics_open || security_open {
        // Alerts first when several inputs are ready: they are what the fleet waits for.
        tokio::select! {
            biased;
            alert = from.alerts.recv(), if alerts_open => match alert {
                Some(alert) => {
                    if let Some(sink) = &sink {
                        sink.append(Stream::Alerts, &payload::alert_body(&alert)).await;
                    }
                    tap(&taps.alerts, alert);
                }
                None => alerts_open = false,
            },
            event = from.security.recv(), if security_open => match event {
                Some(event) => {
                    if let Some(sink) = &sink {
                        sink.append(Stream::Security, &payload::security_body(&event)).await;
                    }
                    tap(&taps.security, event);
                }
                None => security_open = false,
            },
            event = from.diagnostics.recv(), if diagnostics_open => match event {
                Some(event) => {
                    if let Some(sink) = &mut sink {
                        if sink.dm1.is_new(&event) {
                            sink.append(Stream::Dm1, &payload::dm1_body(&event)).await;
                        } else {
                            Metrics::inc(&sink.metrics.outbound_dm1_repeats_total);
                        }
                    }
                    tap(&taps.diagnostics, event);
                }
                None => diagnostics_open = false,
            },
            batch = from.batches.recv(), if batches_open => match batch {
                Some(batch) => {
                    if let Some(sink) = &sink {
                        for body in readings::encode(&batch.readings, sink.resolution, sink.budget) {
                            sink.append(Stream::Readings, &body).await;
                        }
                    }
                    tap(&taps.batches, batch);
                }
                None => batches_open = false,
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
