//! `vigil demo`'s broker: rumqttd, in-process, plain MQTT on loopback, so the demo shows the
//! whole loop (spool, publish, PUBACK) with nothing installed. It is for the demo only: no
//! TLS and no authentication, bound to 127.0.0.1, and the agent reaches it with
//! `insecure_plain_tcp`, which the config refuses toward AWS.
//!
//! It starts rumqttd's router and one MQTT 3.1.1 server, the two parts `Broker::start` would
//! start for this config, rather than calling `Broker::start`: that function also holds the
//! code of every server and service a config could ask for (MQTT 5, bridging, the Prometheus
//! exporter, the HTTP console on axum), none of which the demo runs, and all of
//! which the gateway's binary would then carry: 592,864 bytes of its stripped aarch64 build
//! (12,019,528 -> 11,426,664, both without the lab's commands, measured 2026-12-07).
//!
//! rumqttd binds the address it is given and does not report the port it got, so the port
//! is found by binding 127.0.0.1:0 and releasing it just before rumqttd binds it: another
//! process could take it in between (then the demo says the broker did not start).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::protocol::v4::V4;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};

/// How long the broker may take to accept its first connection.
const READY_LIMIT: Duration = Duration::from_secs(5);

/// A running demo broker. It lives until the process ends (rumqttd has no stop).
#[derive(Debug)]
pub struct DemoBroker {
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoBrokerError {
    #[error("cannot find a free port on 127.0.0.1 for the demo broker: {0}")]
    Port(std::io::Error),
    #[error("cannot start the demo broker's thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "the demo broker did not accept connections on 127.0.0.1:{0} within {READY_LIMIT:?}; \
         another process may have taken the port: run the demo again"
    )]
    NotReady(u16),
}

impl DemoBroker {
    pub fn start() -> Result<DemoBroker, DemoBrokerError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(DemoBrokerError::Port)?
            .port();
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let server = ServerSettings {
            name: "vigil-demo".into(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                // The largest message the agent sends (AWS IoT Core's 128 KB) and more.
                max_payload_size: 256 * 1024,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let router = RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            // Small segments: the demo holds minutes of data, not a fleet's.
            max_segment_size: 1 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        // The router runs on a thread of its own; the server, as in `Broker::start`, on a
        // current-thread runtime on another.
        let router = Router::new(0, router).spawn();
        let mut server = Server::new(server, router, V4);
        std::thread::Builder::new()
            .name("demo-broker".into())
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|runtime| {
                        runtime
                            .block_on(server.start(LinkType::Remote))
                            .map_err(|e| e.to_string())
                    });
                if let Err(error) = served {
                    tracing::error!(event = "demo_broker_failed", %error);
                }
            })
            .map_err(DemoBrokerError::Thread)?;
        // Wait until it listens: bounded retries of a loopback connect, which answer at
        // once either way.
        let started = Instant::now();
        while TcpStream::connect(listen).is_err() {
            if started.elapsed() > READY_LIMIT {
                return Err(DemoBrokerError::NotReady(port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(DemoBroker { port })
    }
}
