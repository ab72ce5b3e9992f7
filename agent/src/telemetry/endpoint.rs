//! The metrics listener: a small HTTP/1.1 responder on tokio's `TcpListener` that answers
//! `GET /metrics` (every metric, [`super::exposition`]), `GET /healthz` (200 while the
//! process answers: liveness) and `GET /readyz` (200 while every task the pipeline started
//! runs, 503 naming the ones that ended: readiness). HEAD is answered too; anything else
//! gets 404 or 405.
//!
//! Not hyper or axum: three fixed paths, one request per connection, answered and closed,
//! need none of a general server, and the gateway's binary has a size budget (12 MB).
//!
//! # Invariants
//!
//! - It never slows the pipeline: a request reads atomics and the task list (a lock held
//!   only to count), on a task of its own; no stage waits on it.
//! - What a client can cost is bounded: a request head of at most [`MAX_REQUEST`] bytes,
//!   [`CONNECTION_DEADLINE`] for the whole exchange, at most [`MAX_CONNECTIONS`] at once
//!   (one more is closed unanswered).
//! - A port it cannot bind never stops the agent: it says so and tries again every
//!   [`BIND_RETRY`], and monitoring goes on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::LivenessProbe;
use super::exposition::{self, Exposition};

/// The largest request head read: a scraper's is a few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time for one connection, from accept to the last byte of the answer.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Connections answered at once; Prometheus scrapes one at a time.
pub const MAX_CONNECTIONS: usize = 8;
/// How often a port that could not be bound is tried again.
pub const BIND_RETRY: Duration = Duration::from_secs(10);

/// What the listener answers from.
pub struct Endpoint {
    pub exposition: Exposition,
    /// Which tasks run, asked at each `/readyz`.
    pub liveness: LivenessProbe,
}

/// Binds `addr` (retrying until it can or `stop` is cancelled) and answers until `stop`;
/// `listening` is told the bound address (port 0 takes a free one).
pub async fn run(
    addr: SocketAddr,
    endpoint: Endpoint,
    listening: watch::Sender<Option<SocketAddr>>,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(error) => {
                failures += 1;
                // The first failure is the operator's business; the retries are not news.
                if failures == 1 {
                    tracing::error!(event = "metrics_listen_failed", %addr, %error, retry_in = ?BIND_RETRY, "the agent runs on without the metrics endpoint until it can listen");
                } else {
                    tracing::debug!(event = "metrics_listen_failed", %addr, %error, attempts = failures);
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(BIND_RETRY) => {}
                }
            }
        }
    };
    listening.send_replace(listener.local_addr().ok());
    serve(listener, endpoint, stop).await;
}

/// Answers on `listener` until `stop` is cancelled; connections still open then are cut.
pub async fn serve(listener: TcpListener, endpoint: Endpoint, stop: CancellationToken) {
    match listener.local_addr() {
        Ok(addr) => {
            tracing::info!(event = "metrics_listening", %addr, "GET /metrics, /healthz, /readyz")
        }
        Err(error) => tracing::warn!(event = "metrics_listening", %error),
    }
    let endpoint = Arc::new(endpoint);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::debug!(event = "metrics_connection_refused", limit = MAX_CONNECTIONS);
                        continue;
                    };
                    let endpoint = endpoint.clone();
                    connections.spawn(async move {
                        let _permit = permit;
                        let _ = tokio::time::timeout(CONNECTION_DEADLINE, answer(stream, &endpoint)).await;
                    });
                }
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(event = "metrics_accept_failed", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    connections.shutdown().await;
    tracing::debug!(event = "metrics_stopped");
}

/// Reads one request head and writes its answer; the connection then closes.
async fn answer(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let response = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break respond(&head, endpoint);
        }
        if head.len() > MAX_REQUEST {
            break Response::text(
                431,
                "Request Header Fields Too Large",
                "request too large\n",
            );
        }
    };
    stream.write_all(&response.to_bytes()).await?;
    stream.shutdown().await
}

/// An answer, before it is written.
#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    /// HEAD: the headers of a GET, without its body.
    head_only: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// The answer to a request head: pure, so tests drive it without a socket.
fn respond(head: &[u8], endpoint: &Endpoint) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Response::text(400, "Bad Request", "bad request line\n");
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request", "bad request line\n");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::text(505, "HTTP Version Not Supported", "HTTP/1.x only\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Response::text(405, "Method Not Allowed", "GET or HEAD\n"),
    };
    let path = target.split('?').next().unwrap_or_default();
    let response = match path {
        "/metrics" => Response {
            content_type: exposition::CONTENT_TYPE,
            ..Response::text(200, "OK", endpoint.exposition.encode())
        },
        "/healthz" => Response::text(200, "OK", "ok\n"),
        "/readyz" => {
            let live = (endpoint.liveness)();
            if live.is_whole() {
                Response::text(200, "OK", format!("ready: {} tasks running\n", live.alive))
            } else {
                let body = format!(
                    "not ready: {} of {} tasks running; ended: {}\n",
                    live.alive,
                    live.started,
                    live.dead.join(", ")
                );
                Response::text(503, "Service Unavailable", body)
            }
        }
        _ => Response::text(404, "Not Found", "try /metrics, /healthz or /readyz\n"),
    };
    Response {
        head_only,
        ..response
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::telemetry::{Liveness, Metrics};

    fn endpoint(live: Arc<Mutex<Liveness>>) -> Endpoint {
        let metrics = Arc::new(Metrics::default());
        Metrics::add(&metrics.alerts_raised_total, 3);
        Endpoint {
            exposition: Exposition::new(metrics),
            liveness: Box::new(move || live.lock().unwrap().clone()),
        }
    }

    fn whole() -> Arc<Mutex<Liveness>> {
        Arc::new(Mutex::new(Liveness {
            started: 3,
            alive: 3,
            dead: vec![],
        }))
    }

    #[test]
    fn each_path_gets_its_answer() {
        let live = whole();
        let e = endpoint(live.clone());
        let get = |target: &str| {
            respond(
                format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
                &e,
            )
        };
        let metrics = get("/metrics");
        assert_eq!(
            (metrics.status, metrics.content_type),
            (200, exposition::CONTENT_TYPE)
        );
        assert!(
            metrics.body.contains("\nvigil_alerts_raised_total 3\n"),
            "{}",
            metrics.body
        );
        assert_eq!(get("/metrics?name[]=x").status, 200);
        assert_eq!(
            (get("/healthz").status, get("/healthz").body.as_str()),
            (200, "ok\n")
        );
        assert_eq!(get("/readyz").status, 200);
        *live.lock().unwrap() = Liveness {
            started: 3,
            alive: 2,
            dead: vec!["detect"],
        };
        let ready = get("/readyz");
        assert_eq!(ready.status, 503);
        assert!(
            ready.body.contains("2 of 3 tasks running; ended: detect"),
            "{}",
            ready.body
        );
        assert_eq!(get("/healthz").status, 200, "the process still answers");
        assert_eq!(get("/").status, 404);
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let e = endpoint(whole());
        let status = |head: &[u8]| respond(head, &e).status;
        assert_eq!(status(b"POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status(b"GET /metrics\r\n\r\n"), 400);
        assert_eq!(status(b"GET /metrics HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"), 400);
        let head = respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &e);
        let bytes = String::from_utf8(head.to_bytes()).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 200 OK\r\n"), "{bytes}");
        assert!(
            bytes.contains(&format!("Content-Length: {}\r\n", head.body.len())),
            "{bytes}"
        );
        assert!(bytes.ends_with("\r\n\r\n"), "HEAD has no body: {bytes}");
        let refused = String::from_utf8(respond(b"PUT / HTTP/1.1\r\n\r\n", &e).to_bytes()).unwrap();
        assert!(refused.contains("Allow: GET, HEAD\r\n"), "{refused}");
    }

    /// Sends `request` and reads until the server closes; a reset (the server closed with
    /// the request unread) ends the answer like a close.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{e}"),
            }
        }
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn answers_over_tcp_bounds_what_a_client_costs_and_stops_on_the_token() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, endpoint(whole()), stop.clone()));

        let answer = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: truck\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("Content-Type: text/plain; version=0.0.4"),
            "{answer}"
        );
        assert!(
            answer.ends_with("vigil_outbound_append_failures_total 0\n"),
            "{answer}"
        );

        // A head one byte past the limit, and no end of head: refused.
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
        huge.resize(MAX_REQUEST + 1, b'a');
        let answer = exchange(addr, &huge).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

        // Every permit held by a client that sends nothing: one more is closed unanswered.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let answer = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
        assert_eq!(answer, "", "over the limit");
        drop(idle);

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the listener ends on the token")
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the port is closed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_cut_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, endpoint(whole()), stop.clone()));
        let started = tokio::time::Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        silent.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
        assert!(
            started.elapsed() >= CONNECTION_DEADLINE,
            "{:?}",
            started.elapsed()
        );
        stop.cancel();
        server.await.unwrap();
    }
}
