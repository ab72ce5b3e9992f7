//! The watcher's task: owns rumqttc's event loop and standard output, and is the only code
//! of the fleet module that does I/O.
//!
//! ```text
//! CONNACK          -> subscribe (QoS 1) to alerts, status, dm1, security and readings of one
//!                     truck or all
//! SUBACK           -> a refused alerts filter is an error the user must fix (the broker's
//!                     policy); another refused stream is warned of, and the rest shown
//! PUBLISH          -> board.apply -> JSON lines, or the table redrawn
//! error            -> say why, wait for the backoff (1 s doubling to 60 s, jittered), poll again
//! every second     -> the table again (its "since" column moves)
//! shutdown         -> DISCONNECT (bounded), the terminal restored
//! ```
//!
//! Writing to standard output blocks the loop when the reader is slow; that is the
//! backpressure: the broker holds the QoS 1 messages meanwhile (AWS IoT Core drops a
//! client that does not take them for long, and the watcher then reconnects).

use std::io::Write;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, QoS, SubscribeFilter,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use vigil_agent::uplink::backoff::Backoff;
use vigil_agent::uplink::payload::now_ms;
use vigil_agent::uplink::tls;
use vigil_agent::uplink::topics::Topics;

use super::board::FleetBoard;
use super::config::WatchConfig;
use super::render::{self, Link};

/// MQTT keep-alive: a broker that went silent is noticed within about this long.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// rumqttc's request channel: a subscribe and a disconnect at most are ever queued.
const REQUEST_CAPACITY: usize = 8;
/// The largest message taken in; every vigil message is well under 128 KB (AWS's limit).
const MAX_INCOMING: usize = 256 * 1024;
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(60);
const REDRAW_EVERY: Duration = Duration::from_secs(1);
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// Why the watcher stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "the broker refused the subscription to {0}; check that its policy allows this client \
         iot:Subscribe and iot:Receive on dt/vigil/*"
    )]
    SubscriptionRefused(String),
    #[error("cannot write to standard output: {0}")]
    Output(#[source] std::io::Error),
}

/// The topic filters for one truck or all of them.
pub fn subscriptions(vehicle: Option<&str>) -> Vec<String> {
    let t = Topics::new(vehicle.unwrap_or("+"));
    vec![t.alerts, t.status, t.dm1, t.security, t.readings]
}

fn options(config: &WatchConfig) -> MqttOptions {
    let mut options = MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        // Clean: the retained statuses give the trucks' state again at each subscription;
        // alerts published while the watcher itself is disconnected are not replayed.
        .set_clean_session(true)
        .set_max_packet_size(MAX_INCOMING, 4096);
    if let Some(tls) = &config.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    options
}

/// Where the events go.
enum Output<W: Write> {
    Lines(W),
    Table { out: W, last: String },
}

struct Watcher<W: Write> {
    config: WatchConfig,
    board: FleetBoard,
    output: Output<W>,
    link: Link,
    broker: String,
}

impl<W: Write> Watcher<W> {
    fn publish(&mut self, topic: &str, payload: &[u8], retained: bool) -> Result<(), WatchError> {
        match self.board.apply(topic, payload, retained, now_ms()) {
            Ok(events) => {
                if let Output::Lines(out) = &mut self.output {
                    for event in &events {
                        writeln!(out, "{}", render::json_line(event))
                            .map_err(WatchError::Output)?;
                    }
                    out.flush().map_err(WatchError::Output)?;
                } else {
                    // A readings batch is no event but may move an active alert's value;
                    // the table is written only when it changed.
                    self.redraw()?;
                }
            }
            Err(why) => tracing::warn!(event = "fleet_message_ignored", topic, reason = %why),
        }
        Ok(())
    }

    fn set_link(&mut self, link: Link) -> Result<(), WatchError> {
        self.link = link;
        self.redraw()
    }

    fn redraw(&mut self) -> Result<(), WatchError> {
        let Output::Table { out, last } = &mut self.output else {
            return Ok(());
        };
        let table = render::table(
            &self.board.rows(),
            now_ms(),
            &self.broker,
            &self.link,
            self.board.counts(),
        );
        if table != *last {
            write!(out, "{}", render::screen(&table)).map_err(WatchError::Output)?;
            out.flush().map_err(WatchError::Output)?;
            *last = table;
        }
        Ok(())
    }
}

/// Watches until `shutdown` is cancelled; `out` is standard output (a terminal for the table).
pub async fn run<W: Write>(
    config: WatchConfig,
    out: W,
    shutdown: CancellationToken,
) -> Result<(), WatchError> {
    let (client, mut eventloop) = AsyncClient::new(options(&config), REQUEST_CAPACITY);
    let filters = subscriptions(config.filter.vehicle.as_deref());
    let broker = format!("{}:{}", config.host, config.port);
    let mut output = if config.json {
        Output::Lines(out)
    } else {
        Output::Table {
            out,
            last: String::new(),
        }
    };
    if let Output::Table { out, .. } = &mut output {
        // The alternate screen, cursor hidden; both undone on the way out.
        let _ = write!(out, "\x1b[?1049h\x1b[?25l");
    }
    let mut w = Watcher {
        board: FleetBoard::new(config.filter.clone()),
        config,
        output,
        link: Link::Connecting,
        broker,
    };
    tracing::info!(event = "fleet_connecting", broker = %w.broker, tls = w.config.tls.is_some(), client_id = %w.config.client_id);
    let result = watch(&mut w, &client, &mut eventloop, &filters, shutdown).await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
    if let Output::Table { out, last } = &mut w.output {
        let _ = write!(out, "\x1b[?25h\x1b[?1049l{last}");
        let _ = out.flush();
    }
    result
}

async fn watch<W: Write>(
    w: &mut Watcher<W>,
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    filters: &[String],
    shutdown: CancellationToken,
) -> Result<(), WatchError> {
    let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX, now_ms() as u64);
    let mut connected = false;
    // None: poll (connect) now; Some(t): wait until t before the next attempt.
    let mut reconnect_at: Option<Instant> = None;
    let mut redraw = tokio::time::interval(REDRAW_EVERY);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    backoff.attempt(Instant::now());
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            event = eventloop.poll(), if reconnect_at.is_none() => match event {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    connected = true;
                    backoff.connected();
                    tracing::info!(event = "fleet_connected", broker = %w.broker);
                    // Clean session: subscribe again after every CONNACK.
                    let subscribe = filters
                        .iter()
                        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(subscribe) {
                        tracing::warn!(event = "fleet_subscribe_failed", error = %e);
                    }
                    w.set_link(Link::Connected)?;
                }
                Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                    for (filter, code) in filters.iter().zip(&ack.return_codes) {
                        // Without alerts the watcher has no purpose; without another
                        // stream (a policy older than the stream) it shows the rest.
                        if *code == SubscribeReasonCode::Failure && filter.ends_with("/alerts") {
                            return Err(WatchError::SubscriptionRefused(filter.clone()));
                        }
                        if *code == SubscribeReasonCode::Failure {
                            tracing::warn!(event = "fleet_subscription_refused", filter = %filter, "the broker refused this stream; check that the watcher's policy allows iot:Subscribe and iot:Receive on it (deploy/aws/vigil-fleet.yaml); watching the others");
                        }
                    }
                    tracing::info!(event = "fleet_subscribed", topics = ?filters);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    w.publish(&p.topic, &p.payload, p.retain)?;
                }
                Ok(_) => {}
                Err(error) => {
                    let at = backoff.failed(Instant::now());
                    reconnect_at = Some(at);
                    let why = explain(&error);
                    let in_secs = at.saturating_duration_since(Instant::now()).as_secs_f64().ceil() as u64;
                    if std::mem::take(&mut connected) {
                        tracing::warn!(event = "fleet_disconnected", error = %why, retry_in_s = in_secs, "lost the broker; reconnecting");
                    } else {
                        tracing::warn!(event = "fleet_connect_failed", error = %why, retry_in_s = in_secs, "cannot reach the broker; retrying");
                    }
                    w.set_link(Link::Retrying { in_secs, why })?;
                }
            },
            _ = sleep_until(reconnect_at) => {
                reconnect_at = None;
                backoff.attempt(Instant::now());
                tracing::info!(event = "fleet_reconnecting", broker = %w.broker);
                w.set_link(Link::Connecting)?;
            }
            _ = redraw.tick() => w.redraw()?,
        }
    }
}

/// The uplink's explanation, with the watcher's flags in place of the agent's config keys.
fn explain(error: &ConnectionError) -> String {
    tls::explain(error)
        .replace("uplink.ca_file", "--ca")
        .replace("uplink.cert_file", "--cert")
        .replace("uplink.key_file", "--key")
        .replace("uplink.endpoint and uplink.port", "--broker")
        .replace("uplink.endpoint", "--broker")
        .replace("insecure_plain_tcp", "--insecure-plain-tcp")
        .replace("(vehicle.id)", "(--client-id)")
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_truck_or_all() {
        assert_eq!(
            subscriptions(None),
            [
                "dt/vigil/+/alerts",
                "dt/vigil/+/status",
                "dt/vigil/+/dm1",
                "dt/vigil/+/security",
                "dt/vigil/+/readings"
            ]
        );
        assert_eq!(
            subscriptions(Some("truck-7")),
            [
                "dt/vigil/truck-7/alerts",
                "dt/vigil/truck-7/status",
                "dt/vigil/truck-7/dm1",
                "dt/vigil/truck-7/security",
                "dt/vigil/truck-7/readings"
            ]
        );
    }
}
