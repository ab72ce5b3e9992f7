//! The spool task: the only place that touches the store while the agent runs, and the handle the
//! pipeline (append) and the uplink (next to send, ack, link up/down) talk to it through.
//!
//! The task runs on a thread of its own with a current-thread runtime: the store's calls block
//! (an fsync can take tens of milliseconds on an SD card) and must not stall the runtime
//! that reads the CAN bus. Commands arrive over one bounded channel and are answered on
//! oneshots; between commands the task flushes per the [`FlushPolicy`](super::FlushPolicy)
//! and, in write-only-while-offline mode, spills readings that waited too long.
//!
//! # How the uplink uses it
//!
//! ```text
//! on CONNACK:        handle.link_up()
//! loop:              let recs = handle.next_to_send(room).await?;   // alerts first, marked in flight
//!                    if recs.is_empty() { stats.changed().await }   // wait for work
//!                    publish each with id (thing, rec.boot_id, rec.seq)
//! on PUBACK(seq):    handle.ack(seq)
//! on disconnect:     handle.link_down()   // requeues all in flight; spills memory-only readings
//! ```

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::record::{Record, RecordKind, Seq};
use super::store::{Appended, Flushed, Spool, SpoolStats};
use super::{SpoolError, WriteMode};

/// Commands waiting for the spool thread, at most. The pipeline appends about one batch per
/// few seconds and the uplink's calls are request/response, so a short queue is plenty; when
/// it is full the caller waits (backpressure), which is right: the spool is the last stage
/// that can hold data, so nothing may be shed in front of it silently.
const COMMAND_CAPACITY: usize = 64;

/// How often memory-only readings are checked for `spill_after`.
const SPILL_CHECK: Duration = Duration::from_millis(500);

enum Command {
    Append {
        kind: RecordKind,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Appended, SpoolError>>,
    },
    NextToSend {
        max: usize,
        reply: oneshot::Sender<Result<Vec<Record>, SpoolError>>,
    },
    Ack {
        seq: Seq,
        reply: oneshot::Sender<Result<bool, SpoolError>>,
    },
    LinkUp {
        reply: oneshot::Sender<()>,
    },
    LinkDown {
        reply: oneshot::Sender<Result<(), SpoolError>>,
    },
    RequeueAll {
        reply: oneshot::Sender<()>,
    },
    Flush {
        reply: oneshot::Sender<Result<Flushed, SpoolError>>,
    },
}

/// The pipeline's and the uplink's way to the spool. Cheap to clone.
#[derive(Clone)]
pub struct SpoolHandle {
    tx: mpsc::Sender<Command>,
    stats: watch::Receiver<SpoolStats>,
}

impl SpoolHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SpoolError::Stopped)?;
        rx.await.map_err(|_| SpoolError::Stopped)
    }

    /// Adds a record (an alert, or one batch of readings sized for one message).
    pub async fn append(&self, kind: RecordKind, payload: Vec<u8>) -> Result<Appended, SpoolError> {
        self.call(|reply| Command::Append {
            kind,
            payload,
            reply,
        })
        .await?
    }

    /// Up to `max` records to publish now, alerts first; they are in flight until acked or
    /// requeued. Empty when there is nothing (wait on [`SpoolHandle::stats`] then).
    pub async fn next_to_send(&self, max: usize) -> Result<Vec<Record>, SpoolError> {
        self.call(|reply| Command::NextToSend { max, reply })
            .await?
    }

    /// The broker acknowledged `seq` (PUBACK): it is deleted. False if it was not pending.
    pub async fn ack(&self, seq: Seq) -> Result<bool, SpoolError> {
        self.call(|reply| Command::Ack { seq, reply }).await?
    }

    /// The link is up (CONNACK): requeues what was in flight; appends from now on are live.
    pub async fn link_up(&self) -> Result<(), SpoolError> {
        self.call(|reply| Command::LinkUp { reply }).await
    }

    /// The link is down: requeues what was in flight and writes memory-only readings.
    pub async fn link_down(&self) -> Result<(), SpoolError> {
        self.call(|reply| Command::LinkDown { reply }).await?
    }

    /// Requeues everything in flight without changing the link state.
    pub async fn requeue_all(&self) -> Result<(), SpoolError> {
        self.call(|reply| Command::RequeueAll { reply }).await
    }

    /// Flushes now, whatever the policy says.
    pub async fn flush(&self) -> Result<Flushed, SpoolError> {
        self.call(|reply| Command::Flush { reply }).await?
    }

    /// The spool's depth and sequence state, updated after every command. The uplink
    /// waits on `changed()` when `next_to_send` returned nothing.
    pub fn stats(&self) -> watch::Receiver<SpoolStats> {
        self.stats.clone()
    }
}

/// The running spool task.
pub struct SpoolTask {
    thread: Option<JoinHandle<()>>,
    done: oneshot::Receiver<Result<Flushed, SpoolError>>,
}

impl SpoolTask {
    /// Starts the spool's thread. It stops when `cancel` fires (after answering the commands
    /// already queued) or when every handle is dropped; either way it writes what is kept
    /// only in memory and flushes before it ends.
    pub fn spawn(
        spool: Spool,
        cancel: CancellationToken,
    ) -> Result<(SpoolHandle, SpoolTask), SpoolError> {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let (stats_tx, stats_rx) = watch::channel(spool.stats());
        let (done_tx, done_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt.block_on(run(spool, rx, stats_tx, cancel)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the spool's runtime");
                        spool.close()
                    }
                };
                let _ = done_tx.send(result);
            })
            .map_err(|e| SpoolError::Open {
                path: "spool thread".into(),
                reason: e.to_string(),
            })?;
        Ok((
            SpoolHandle {
                tx,
                stats: stats_rx,
            },
            SpoolTask {
                thread: Some(thread),
                done: done_rx,
            },
        ))
    }

    /// Waits for the task to end; returns its final flush.
    pub async fn join(mut self) -> Result<Flushed, SpoolError> {
        let result = (&mut self.done).await.map_err(|_| SpoolError::Stopped)?;
        if let Some(t) = self.thread.take() {
            // The thread has sent its result; it is ending now.
            let _ = t.join();
        }
        result
    }
}

async fn run(
    mut spool: Spool,
    mut rx: mpsc::Receiver<Command>,
    stats: watch::Sender<SpoolStats>,
    cancel: CancellationToken,
) -> Result<Flushed, SpoolError> {
    let offline_only = matches!(
        spool.config().write_mode,
        WriteMode::OnlyWhileOffline { .. }
    );
    let mut spill_check = tokio::time::interval(SPILL_CHECK);
    spill_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = spool.flush_deadline();
        let retry = spool.retry_at();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                // Answer what was already asked, then stop.
                rx.close();
                while let Some(cmd) = rx.recv().await {
                    handle(&mut spool, cmd, &stats);
                }
                break;
            }
            cmd = rx.recv() => match cmd {
                Some(cmd) => handle(&mut spool, cmd, &stats),
                None => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {}
            _ = sleep_until(retry), if retry.is_some() => {
                spool.rejoin_disk_if_due(Instant::now());
            }
            _ = spill_check.tick(), if offline_only => {
                if let Err(e) = spool.spill_stale() {
                    tracing::error!(error = %e, "spool: writing memory-only readings failed");
                }
            }
        }
        if let Err(e) = spool.flush_if_due(Instant::now()) {
            tracing::error!(error = %e, "spool flush failed");
        }
        stats.send_replace(spool.stats());
    }
    let result = spool.close();
    if let Err(e) = &result {
        tracing::error!(error = %e, "spool: final flush failed");
    }
    result
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// Does `cmd`, publishes the stats, then answers: whoever has the answer and reads the stats
/// sees its own command in them. (The uplink's drain at shutdown stops when the outbound
/// stage has had its last append answered and the stats show nothing queued; with the
/// stats published after the answer it once read them stale and left the last batch in
/// the spool.)
fn handle(spool: &mut Spool, cmd: Command, stats: &watch::Sender<SpoolStats>) {
    fn answer<T>(
        reply: oneshot::Sender<T>,
        value: T,
        spool: &Spool,
        stats: &watch::Sender<SpoolStats>,
    ) {
        stats.send_replace(spool.stats());
        // A caller that went away no longer wants the answer; the work is done regardless.
        let _ = reply.send(value);
    }
    match cmd {
        Command::Append {
            kind,
            payload,
            reply,
        } => {
            let result = spool.append(kind, payload);
            answer(reply, result, spool, stats);
        }
        Command::NextToSend { max, reply } => {
            let result = spool.next_to_send(max);
            answer(reply, result, spool, stats);
        }
        Command::Ack { seq, reply } => {
            let result = spool.ack(seq);
            answer(reply, result, spool, stats);
        }
        Command::LinkUp { reply } => {
            spool.link_up();
            answer(reply, (), spool, stats);
        }
        Command::LinkDown { reply } => {
            let result = spool.link_down();
            answer(reply, result, spool, stats);
        }
        Command::RequeueAll { reply } => {
            spool.requeue_all();
            answer(reply, (), spool, stats);
        }
        Command::Flush { reply } => {
            let result = spool.flush();
            answer(reply, result, spool, stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::spool::SpoolConfig;
    use crate::telemetry::Metrics;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stats_hold_a_command_as_soon_as_it_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let spool =
            Spool::open(SpoolConfig::new(dir.path()), Arc::new(Metrics::default())).unwrap();
        let (handle, task) = SpoolTask::spawn(spool, CancellationToken::new()).unwrap();
        let stats = handle.stats();
        for n in 1..=200 {
            let appended = handle
                .append(RecordKind::Readings, vec![b'r'; 100])
                .await
                .unwrap();
            let seen = *stats.borrow();
            assert_eq!(
                (seen.depth.records(), seen.next_seq),
                (n, appended.seq + 1),
                "append {n}"
            );
        }
        handle.link_up().await.unwrap();
        // At most max_in_flight (100) at once.
        let sent = handle.next_to_send(100).await.unwrap();
        assert_eq!(stats.borrow().depth.in_flight, 100);
        for (n, r) in (1..).zip(&sent) {
            handle.ack(r.seq).await.unwrap();
            assert_eq!(stats.borrow().depth.records(), 200 - n, "ack {n}");
        }
        drop(handle);
        task.join().await.unwrap();
    }
}
