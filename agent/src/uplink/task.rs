//! The uplink task: owns rumqttc's event loop and is the only code here that does network
//! I/O. It connects (backing off), drains the spool at the paced rate, ties PUBACKs to
//! records, answers the shadow and jobs, and keeps the retained status and the
//! [`LinkStatus`] watch current.
//!
//! ```text
//! CONNACK        -> spool.link_up() (requeues in flight), subscribe, status online (retained),
//!                   shadow get, jobs $next/get
//! loop           -> spool.next_to_send(room) -> pace -> publish QoS 1 -> Outgoing::Publish(pkid)
//! PUBACK(pkid)   -> tracker -> spool.ack(seq)
//! error          -> spool.link_down(), tracker reset, wait for the backoff, poll again
//! PINGREQ with no answer for PING_ANSWER -> the same (a silent link: rumqttc would wait
//!                   for its next ping)
//! shutdown       -> while connected, go on until outbound has appended its last record and
//!                   the spool is empty (or the drain budget ends), then status offline
//!                   (retained), DISCONNECT
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::config::UplinkConfig;
use super::inflight::{InFlight, Resolved, Sent};
use super::jobs::{self, Taken};
use super::pacer::{Pacer, Wait};
use super::payload::{
    self, AlarmHealth, Health, LinkCounts, SecurityCounts, SpoolDepth, Status, publication,
};
use super::shadow::{Outcome, Shadow};
use super::topics::Topics;
use super::{LinkStatus, tls};
use crate::detect::{DetectStatus, ModelUpdater, Tuning};
use crate::spool::{Seq, SpoolError, SpoolHandle, SpoolStats};
use crate::telemetry::{LivenessProbe, Metrics};

/// rumqttc's packet-id space: twice the in-flight window, so a publish whose PUBACK is
/// slow does not stall the ones after it on a packet-id collision. The window itself is
/// ours ([`InFlight`]); rumqttc never sees more than `max_in_flight` at once.
const PKID_SPACE: u16 = 200;
/// Control messages (status, shadow reports, job updates) waiting for the link, at most;
/// past it the oldest is dropped (each is superseded by a newer one, or repeated by the
/// cloud on the next connect).
const CONTROL_CAPACITY: usize = 64;
/// Job results coming back from the worker: one job runs at a time in practice.
const JOB_RESULTS_CAPACITY: usize = 8;
/// The largest message the agent takes in: a job document (AWS: 32 KB) or a shadow
/// document (8 KB), with room to spare.
const MAX_INCOMING: usize = 64 * 1024;
/// How long a clean shutdown waits for the offline status to be written.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);
/// How long the broker has to answer a PINGREQ (with any packet) before the link counts as
/// lost. rumqttc alone notices only when its next ping is due, a whole keep-alive later: a
/// broker that stopped answering with its TCP connection still open (frozen, or a dead
/// NAT path) went unnoticed for 59 s with a 30 s keep-alive (tests/system/outage). With
/// this the silence is found within `keep_alive` and this. AWS's device SDKs wait 3 s; a
/// cellular link that stalls for a few seconds is given more.
pub const PING_ANSWER: Duration = Duration::from_secs(10);

/// Why the uplink stopped.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error(
        "the uplink has no TLS settings and plain TCP is not allowed; resolve them with UplinkConfig::resolve_tls"
    )]
    NoTls,
    #[error("the uplink lost the spool: {0}")]
    Spool(#[from] SpoolError),
}

/// What the uplink waits for at shutdown before it disconnects.
pub struct Drain {
    /// Cancelled once nothing more will be appended to the spool (the outbound stage ended).
    pub appended: CancellationToken,
    /// The longest it goes on sending after shutdown began.
    pub budget: Duration,
}

impl Drain {
    /// Stop at once at shutdown (what is left waits in the spool for the next start).
    pub fn none() -> Drain {
        let appended = CancellationToken::new();
        appended.cancel();
        Drain {
            appended,
            budget: Duration::ZERO,
        }
    }
}

/// A message that is not a spooled record.
#[derive(Clone, Debug)]
struct Control {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

/// Everything the uplink task needs; the pipeline builds it.
pub struct Uplink {
    pub config: UplinkConfig,
    /// The thing name (vehicle.id), also the client id.
    pub thing: String,
    /// The TLS settings, read from the PEM files once at start ([`UplinkConfig::resolve_tls`]);
    /// `None` only for plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub spool: SpoolHandle,
    pub link: watch::Sender<LinkStatus>,
    pub tuning: watch::Sender<Tuning>,
    /// The detect stage's coverage and unsupported parameters, for the status message.
    pub detect: watch::Receiver<DetectStatus>,
    pub model: Arc<dyn ModelUpdater>,
    pub metrics: Arc<Metrics>,
    /// Told the sequence number of every record as its PUBACK arrives (benchmarks, tests).
    pub acked: Option<mpsc::UnboundedSender<Seq>>,
    /// Which of the pipeline's tasks run, for the status message; `None` without a pipeline.
    pub stages: Option<LivenessProbe>,
}

struct State {
    client: AsyncClient,
    topics: Topics,
    connected: bool,
    inflight: InFlight,
    pacer: Pacer,
    backoff: Backoff,
    /// Records handed out by the spool and not yet submitted (waiting for the pacer).
    ready: VecDeque<(Sent, String, Vec<u8>)>,
    control: VecDeque<Control>,
    shadow: Shadow,
    jobs_taken: Taken,
    /// Model updates being verified and swapped, off the event loop. Owned here, so none
    /// outlives the uplink task (and with it the pipeline's task tracker).
    jobs: JoinSet<()>,
    failures_in_a_row: u32,
    /// Wall-clock ms of the current connection's CONNACK.
    connected_at_ms: i64,
    /// When a PINGREQ went out that nothing from the broker has followed yet.
    ping_unanswered: Option<Instant>,
}

impl Uplink {
    /// MQTT options: client id = thing, clean session, keep-alive, the Last Will, TLS.
    fn options(&self, topics: &Topics) -> Result<MqttOptions, UplinkError> {
        let c = &self.config;
        let mut options = MqttOptions::new(self.thing.clone(), c.endpoint.clone(), c.port);
        options
            .set_keep_alive(c.keep_alive)
            .set_clean_session(true)
            .set_inflight(PKID_SPACE)
            .set_request_channel_capacity(c.max_in_flight + 16)
            .set_max_packet_size(MAX_INCOMING, crate::spool::record::MAX_PAYLOAD + 4096)
            .set_last_will(LastWill::new(
                &topics.status,
                Status::offline(&self.thing).to_bytes(),
                QoS::AtLeastOnce,
                true,
            ));
        match (&self.tls, c.insecure_plain_tcp) {
            (Some(tls), _) => {
                options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                    tls.clone(),
                )));
            }
            (None, true) => {}
            (None, false) => return Err(UplinkError::NoTls),
        }
        Ok(options)
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), UplinkError> {
        self.run_and_drain(shutdown, Drain::none()).await
    }

    /// [`Uplink::run`]; at shutdown, while connected, it goes on sending until the stage
    /// that appends has finished (`drain.appended`: the batch sealed at shutdown is in the
    /// spool) and the spool is empty, or `drain.budget` has passed, whichever is first.
    pub async fn run_and_drain(
        self,
        shutdown: CancellationToken,
        drain: Drain,
    ) -> Result<(), UplinkError> {
        let topics = Topics::new(&self.thing);
        let options = self.options(&topics)?;
        let capacity = options.request_channel_capacity();
        let (client, mut eventloop) = AsyncClient::new(options, capacity);
        // An alert is one small PUBLISH: it goes out at once, not held back by Nagle's
        // algorithm until the broker acknowledges the segment before it (rumqttc leaves
        // Nagle on by default).
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let mut st = State {
            client,
            topics,
            connected: false,
            inflight: InFlight::new(self.config.max_in_flight),
            pacer: Pacer::new(
                self.config.max_publishes_per_second,
                self.config.max_bytes_per_second,
            ),
            backoff: Backoff::new(
                self.config.reconnect_min,
                self.config.reconnect_max,
                self.spool.stats().borrow().boot_id,
            ),
            ready: VecDeque::new(),
            control: VecDeque::new(),
            shadow: {
                let mut shadow = Shadow::new(self.tuning.borrow().clone());
                // Carried by the first report, which nothing has sent yet.
                let _ = shadow.model_changed(self.model.running().as_ref());
                shadow
            },
            jobs_taken: Taken::default(),
            jobs: JoinSet::new(),
            failures_in_a_row: 0,
            connected_at_ms: 0,
            ping_unanswered: None,
        };
        let mut stats = self.spool.stats();
        // The tuning changes by the shadow (here) or by a config reload: the shadow reports
        // a reload's tuning as the running state.
        let mut tuning = self.tuning.subscribe();
        let (job_tx, mut job_rx) = mpsc::channel(JOB_RESULTS_CAPACITY);
        let mut status_tick = tokio::time::interval(self.config.status_interval);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut depth_tick = tokio::time::interval(Duration::from_secs(1));
        depth_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // None: poll (connect) now; Some(t): wait until t before the next attempt.
        let mut reconnect_at: Option<Instant> = None;
        // Set once shutdown began: send what is left until then.
        let mut draining_until: Option<Instant> = None;
        let mut pace_until: Option<Instant> = None;
        tracing::info!(event = "uplink_starting", endpoint = %self.config.endpoint, port = self.config.port, thing = %self.thing, tls = !self.config.insecure_plain_tcp);

        loop {
            // Top up from the spool when there is room and nothing waits for the pacer.
            let mut wait_for_records = false;
            if st.connected && st.ready.is_empty() && st.inflight.room() > st.control.len() {
                let queued = queued(&stats.borrow_and_update());
                if queued > 0 {
                    let room = st.inflight.room() - st.control.len();
                    for record in self.spool.next_to_send(room).await? {
                        match publication(&record, &st.topics) {
                            Some((topic, bytes)) => st.ready.push_back((
                                Sent::Record {
                                    seq: record.seq,
                                    bytes: bytes.len(),
                                },
                                topic.to_owned(),
                                bytes,
                            )),
                            None => {
                                // Written by a newer or broken outbound stage: it can never
                                // be placed, so it must not block the queue forever.
                                tracing::error!(
                                    event = "uplink_record_undeliverable",
                                    seq = record.seq
                                );
                                Metrics::inc(&self.metrics.uplink_undeliverable_total);
                                self.spool.ack(record.seq).await?;
                            }
                        }
                    }
                } else {
                    wait_for_records = true;
                }
            }
            if st.connected && pace_until.is_none() {
                pace_until = self.submit(&mut st);
            }

            let polling = st.connected || reconnect_at.is_none();
            // A connect in progress must not be interrupted: dropping `poll` between
            // CONNECT and CONNACK drops the connection, and the broker fires the Last Will.
            // While connecting, only shutdown may cut in.
            let connecting = !st.connected && reconnect_at.is_none();
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if draining_until.is_none() => {
                    if !st.connected || drain.budget.is_zero() {
                        break;
                    }
                    draining_until = Some(Instant::now() + drain.budget);
                    tracing::info!(event = "uplink_draining", budget = ?drain.budget);
                }
                _ = sleep_until(draining_until), if draining_until.is_some() => {
                    tracing::warn!(event = "uplink_drain_cut_short", queued = queued(&stats.borrow()), in_flight = st.inflight.len(), "the rest waits in the spool for the next start");
                    break;
                }
                _ = drain.appended.cancelled(), if draining_until.is_some() && !drain.appended.is_cancelled() => {}
                event = eventloop.poll(), if polling => match event {
                    Ok(event) => self.on_event(event, &mut st, &job_tx).await?,
                    Err(error) => {
                        let now = Instant::now();
                        reconnect_at = Some(st.backoff.failed(now));
                        pace_until = None;
                        self.on_error(&error, &mut st).await?;
                    }
                },
                _ = sleep_until(st.ping_unanswered.map(|t| t + PING_ANSWER)), if st.connected => {
                    // A silent link: drop the connection rumqttc still holds, and reconnect.
                    eventloop.clean();
                    reconnect_at = Some(st.backoff.failed(Instant::now()));
                    pace_until = None;
                    let why = format!(
                        "the broker did not answer a PINGREQ within {}s: the link is silent \
                         (its TCP connection may still be open)",
                        PING_ANSWER.as_secs()
                    );
                    self.lost(&why, &mut st).await?;
                }
                _ = sleep_until(reconnect_at), if reconnect_at.is_some() && !st.connected => {
                    reconnect_at = None;
                    st.backoff.attempt(Instant::now());
                }
                _ = sleep_until(pace_until), if pace_until.is_some() => pace_until = None,
                changed = stats.changed(), if wait_for_records => {
                    if changed.is_err() {
                        return Err(SpoolError::Stopped.into());
                    }
                }
                Some(update) = job_rx.recv(), if !connecting => {
                    let update: jobs::JobUpdate = update;
                    let counter = if update.status == "SUCCEEDED" {
                        &self.metrics.uplink_jobs_succeeded_total
                    } else {
                        &self.metrics.uplink_jobs_failed_total
                    };
                    Metrics::inc(counter);
                    tracing::info!(event = "job_finished", job = %update.job_id, status = update.status, details = ?update.details);
                    let topic = st.topics.jobs(&format!("{}/update", update.job_id));
                    push_control(&mut st.control, Control { topic, payload: update.payload(), retain: false });
                    // The model changed (or not): say so on the status topic and in the shadow.
                    if let Some(report) = st.shadow.model_changed(self.model.running().as_ref()) {
                        let topic = st.topics.shadow("update");
                        push_control(&mut st.control, Control { topic, payload: report, retain: false });
                    }
                    if st.connected {
                        self.queue_status(&mut st);
                    }
                }
                Ok(()) = tuning.changed() => {
                    if let Some(report) = st.shadow.retuned(&tuning.borrow_and_update()) {
                        let topic = st.topics.shadow("update");
                        push_control(&mut st.control, Control { topic, payload: report, retain: false });
                    }
                }
                _ = status_tick.tick(), if st.connected => self.queue_status(&mut st),
                _ = depth_tick.tick(), if !connecting => {}
            }
            if draining_until.is_some() {
                let drained = drain.appended.is_cancelled()
                    && queued(&stats.borrow()) == 0
                    && st.inflight.is_empty()
                    && st.ready.is_empty();
                if drained || !st.connected {
                    break;
                }
            }
            while st.jobs.try_join_next().is_some() {}
            let (depth, in_memory) = {
                let s = stats.borrow();
                (s.depth.records(), s.in_memory)
            };
            self.link.send_if_modified(|l| {
                let new = LinkStatus {
                    online: Some(st.connected),
                    spool_depth: Some(depth),
                    spool_in_memory: in_memory,
                };
                std::mem::replace(l, new) != new
            });
        }
        self.stop(&mut st, &mut eventloop).await;
        Ok(())
    }

    /// Hands ready messages to rumqttc while the window and the pacer allow; returns when
    /// to try again if the pacer said wait for a time (`None` also when it waits for a
    /// PUBACK: the loop comes back here after every event).
    fn submit(&self, st: &mut State) -> Option<Instant> {
        while st.inflight.room() > 0 {
            let now = Instant::now();
            let (sent, topic, payload, retain) = if let Some(c) = st.control.front() {
                (
                    Sent::Control {
                        bytes: c.payload.len(),
                    },
                    c.topic.clone(),
                    c.payload.clone(),
                    c.retain,
                )
            } else if let Some((sent, topic, payload)) = st.ready.front() {
                (*sent, topic.clone(), payload.clone(), false)
            } else {
                return None;
            };
            let bytes = payload.len();
            match st.pacer.take(bytes, now) {
                Ok(()) => {}
                Err(Wait::For(wait)) => return Some(now + wait),
                Err(Wait::Ack) => return None,
            }
            match st
                .client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            {
                Ok(()) => {
                    if matches!(sent, Sent::Control { .. }) {
                        st.control.pop_front();
                    } else {
                        st.ready.pop_front();
                    }
                    st.inflight.submitted(sent);
                    Metrics::inc(&self.metrics.uplink_published_total);
                    Metrics::add(&self.metrics.uplink_published_bytes_total, bytes as u64);
                }
                Err(e) => {
                    // The request channel is sized above the window, so this is a bug or a
                    // closed event loop; try again on the next turn. (Counted as sent all the
                    // same: the pacer errs on the side of the broker.)
                    st.pacer.acked(bytes, now);
                    tracing::warn!(event = "uplink_request_refused", error = %e);
                    return Some(now + Duration::from_millis(10));
                }
            }
        }
        None
    }

    async fn on_event(
        &self,
        event: Event,
        st: &mut State,
        jobs_tx: &mpsc::Sender<jobs::JobUpdate>,
    ) -> Result<(), UplinkError> {
        // Anything from the broker answers the ping: it is there.
        match event {
            Event::Incoming(_) => st.ping_unanswered = None,
            Event::Outgoing(Outgoing::PingReq) => {
                st.ping_unanswered.get_or_insert_with(Instant::now);
            }
            Event::Outgoing(_) => {}
        }
        match event {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                st.connected = true;
                st.connected_at_ms = payload::now_ms();
                st.failures_in_a_row = 0;
                st.backoff.connected();
                Metrics::inc(&self.metrics.uplink_connects_total);
                // Whatever rumqttc had in flight is gone with the old session; the spool
                // requeues it all and it is published again.
                st.inflight.reset();
                st.pacer.reset(Instant::now());
                st.ready.clear();
                self.spool.link_up().await?;
                tracing::info!(
                    event = "uplink_connected",
                    session_present = ack.session_present,
                    spool_records = self.spool.stats().borrow().depth.records()
                );
                // Status first, then ask for the shadow and the next job.
                let mut first = VecDeque::new();
                first.push_back(self.status(st));
                if self.config.shadow_and_jobs {
                    let subscriptions = st
                        .topics
                        .subscriptions()
                        .into_iter()
                        .map(|t| rumqttc::SubscribeFilter::new(t, QoS::AtLeastOnce));
                    if let Err(e) = st.client.try_subscribe_many(subscriptions) {
                        tracing::warn!(event = "uplink_subscribe_failed", error = %e);
                    }
                    first.push_back(Control {
                        topic: st.topics.shadow("get"),
                        payload: b"{}".to_vec(),
                        retain: false,
                    });
                    first.push_back(Control {
                        topic: st.topics.jobs("$next/get"),
                        payload: b"{}".to_vec(),
                        retain: false,
                    });
                }
                first.extend(st.control.drain(..));
                st.control = first;
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(lost) = st.inflight.written(pkid) {
                    st.pacer.acked(lost.bytes(), Instant::now());
                    tracing::error!(event = "uplink_pkid_reused_early", pkid, ?lost);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                let resolved = st.inflight.acked(ack.pkid);
                if let Resolved::Acked(sent) = resolved {
                    st.pacer.acked(sent.bytes(), Instant::now());
                }
                match resolved {
                    Resolved::Acked(Sent::Record { seq, .. }) => {
                        Metrics::inc(&self.metrics.uplink_acked_total);
                        self.spool.ack(seq).await?;
                        if let Some(tx) = &self.acked {
                            let _ = tx.send(seq);
                        }
                    }
                    Resolved::Acked(Sent::Control { .. }) => {}
                    Resolved::Unknown(pkid) => {
                        Metrics::inc(&self.metrics.uplink_unknown_acks_total);
                        tracing::debug!(event = "uplink_unknown_puback", pkid);
                    }
                }
            }
            Event::Incoming(Incoming::Publish(p)) => {
                self.on_message(&p.topic, &p.payload, st, jobs_tx)
            }
            _ => {}
        }
        Ok(())
    }

    async fn on_error(
        &self,
        error: &rumqttc::ConnectionError,
        st: &mut State,
    ) -> Result<(), UplinkError> {
        self.lost(&tls::explain(error), st).await
    }

    /// The connection is gone (or never came): `why` is logged, what was in flight goes
    /// back to the spool.
    async fn lost(&self, why: &str, st: &mut State) -> Result<(), UplinkError> {
        if st.connected {
            st.connected = false;
            Metrics::inc(&self.metrics.uplink_disconnects_total);
            tracing::warn!(event = "uplink_disconnected", error = %why, in_flight = st.inflight.len());
        } else {
            st.failures_in_a_row += 1;
            Metrics::inc(&self.metrics.uplink_connect_failures_total);
            // Every failure is logged (they are at most one a second), so the reason is
            // always at hand; the count says how long it has gone on.
            tracing::error!(event = "uplink_connect_failed", error = %why, attempts = st.failures_in_a_row);
        }
        st.ping_unanswered = None;
        st.inflight.reset();
        st.pacer.reset(Instant::now());
        st.ready.clear();
        self.spool.link_down().await?;
        Ok(())
    }

    fn on_message(
        &self,
        topic: &str,
        payload: &[u8],
        st: &mut State,
        jobs_tx: &mpsc::Sender<jobs::JobUpdate>,
    ) {
        let t = &st.topics;
        if topic == t.shadow("update/delta") {
            let outcome = st.shadow.on_delta(payload);
            self.on_shadow(outcome, st);
        } else if topic == t.shadow("get/accepted") || topic == t.shadow("get/rejected") {
            // Rejected: no shadow yet (404); report the running tuning to create it.
            let outcome = if topic.ends_with("accepted") {
                st.shadow.on_document(payload)
            } else {
                st.shadow.on_document(b"{}")
            };
            self.on_shadow(outcome, st);
        } else if topic == t.jobs("notify-next") || topic == t.jobs("$next/get/accepted") {
            let Some(execution) = jobs::execution(payload) else {
                return;
            };
            if !st.jobs_taken.take(&execution.job_id) {
                return;
            }
            tracing::info!(event = "job_started", job = %execution.job_id);
            let started = jobs::in_progress(&execution);
            push_control(
                &mut st.control,
                Control {
                    topic: t.jobs(&format!("{}/update", started.job_id)),
                    payload: started.payload(),
                    retain: false,
                },
            );
            let model = self.model.clone();
            let tx = jobs_tx.clone();
            st.jobs.spawn(async move {
                let id = execution.job_id.clone();
                let update = tokio::task::spawn_blocking(move || jobs::finish(&execution, &*model))
                    .await
                    .unwrap_or_else(|e| jobs::JobUpdate {
                        job_id: id,
                        status: "FAILED",
                        details: vec![("reason", format!("the model update panicked: {e}"))],
                    });
                let _ = tx.send(update).await;
            });
        } else if topic.ends_with("/rejected") {
            tracing::warn!(event = "uplink_request_rejected", topic, payload = %String::from_utf8_lossy(payload));
        }
    }

    fn on_shadow(&self, outcome: Outcome, st: &mut State) {
        let report = match outcome {
            Outcome::Applied { tuning, report } => {
                Metrics::inc(&self.metrics.uplink_shadow_applied_total);
                tracing::info!(event = "shadow_applied", cargo = %tuning.cargo);
                self.tuning.send_replace(*tuning);
                Some(report)
            }
            Outcome::Rejected { error, report } => {
                Metrics::inc(&self.metrics.uplink_shadow_rejected_total);
                tracing::warn!(event = "shadow_rejected", error = %error);
                Some(report)
            }
            Outcome::Unchanged { report } => report,
        };
        if let Some(payload) = report {
            let topic = st.topics.shadow("update");
            push_control(
                &mut st.control,
                Control {
                    topic,
                    payload,
                    retain: false,
                },
            );
        }
    }

    fn status(&self, st: &State) -> Control {
        let stats = *self.spool.stats().borrow();
        let metrics = self.metrics.snapshot();
        let depth = stats.depth;
        let oldest_age_ms = stats.oldest_created_ms.map_or(0, |created| {
            u64::try_from(payload::now_ms())
                .unwrap_or(0)
                .saturating_sub(created)
        });
        let status = Status::online(
            &self.thing,
            Health {
                model_version: self.model.version(),
                model: self.model.running(),
                spool: SpoolDepth {
                    records: depth.records(),
                    bytes: depth.bytes(),
                    alerts: depth.alerts.records,
                    oldest_age_ms,
                    memory_only: metrics.spool_memory_only > 0,
                    evicted: metrics.spool_evicted_total,
                    quarantined: metrics.spool_quarantined_total,
                    store_failures: metrics.spool_store_failures_total,
                    append_failures: metrics.outbound_append_failures_total,
                },
                detect: self.detect.borrow().clone(),
                security: SecurityCounts::from_metrics(&self.metrics),
                stages: self.stages.as_ref().map(|probe| probe()),
                link: LinkCounts::from_metrics(&self.metrics, st.connected_at_ms),
                alarm: AlarmHealth {
                    devices_unavailable: metrics.alarm_devices_unavailable,
                },
                certificate_expires_ms: (metrics.uplink_certificate_expires_seconds > 0)
                    .then(|| metrics.uplink_certificate_expires_seconds as i64 * 1000),
            },
        );
        Control {
            topic: st.topics.status.clone(),
            payload: status.to_bytes(),
            retain: true,
        }
    }

    fn queue_status(&self, st: &mut State) {
        // A newer status replaces one still waiting.
        let topic = st.topics.status.clone();
        st.control.retain(|c| c.topic != topic);
        let status = self.status(st);
        push_control(&mut st.control, status);
    }

    /// Says goodbye: the retained status goes to offline (a clean DISCONNECT does not fire
    /// the Last Will), then DISCONNECT; bounded, since the broker may be gone.
    async fn stop(&self, st: &mut State, eventloop: &mut EventLoop) {
        if !st.connected {
            return;
        }
        let offline = Status::offline(&self.thing).to_bytes();
        let _ = st
            .client
            .try_publish(st.topics.status.clone(), QoS::AtLeastOnce, true, offline);
        let _ = st.client.try_disconnect();
        let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        let _ = self.spool.link_down().await;
        let stats = *self.spool.stats().borrow();
        self.link.send_replace(LinkStatus {
            online: Some(false),
            spool_depth: Some(stats.depth.records()),
            spool_in_memory: stats.in_memory,
        });
        tracing::info!(
            event = "uplink_stopped",
            in_flight_requeued = st.inflight.len()
        );
    }
}

/// Records the spool holds that are not in flight.
fn queued(stats: &SpoolStats) -> u64 {
    stats.depth.records().saturating_sub(stats.depth.in_flight)
}

fn push_control(queue: &mut VecDeque<Control>, control: Control) {
    let full = queue.len() >= CONTROL_CAPACITY;
    if let Some(dropped) = full.then(|| queue.pop_front()).flatten() {
        tracing::warn!(event = "uplink_control_dropped", topic = %dropped.topic);
    }
    queue.push_back(control);
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
