//! The metrics endpoint and the JSON log. The real `vigil` binary with `[metrics]` and
//! `[log] format = "json"`: its `/metrics` read by Prometheus's own text parser (the Python
//! `prometheus_client` that test.sh installs from tests/requirements.txt), `/healthz` and
//! `/readyz`, and every line of its log read as JSON. In-process, where the test must end
//! one task: `/readyz` answers 503 and names it while the rest run.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_agent::pipeline::{Pipeline, Stages, Taps};
use vigil_agent::source::{Injected, Source};
use vigil_agent::telemetry::{DESCRIPTIONS, Kind, MetricsConfig};

use crate::broker::run_agent;
use crate::{python, sim_config, wait_with_limit, write_file};

/// Bounds a hang; nothing waits this long when the agent works.
const LIMIT: Duration = Duration::from_secs(30);

/// Reads the exposition on standard input with `prometheus_client`'s text parser, which
/// raises on any line it cannot read, and prints every family as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    assert f.name not in families, "two families named " + f.name
    families[f.name] = {"type": f.type, "help": f.documentation,
                        "samples": {s.name: s.value for s in f.samples}}
print(json.dumps(families))
"#;

/// Every metric family of `text` as Prometheus's text parser reads it.
fn parse_exposition(text: &str) -> serde_json::Map<String, Value> {
    let mut child = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Object(families) => families,
        other => panic!("{other}"),
    }
}

/// One GET on a connection of its own: the status code and the body, whose length the
/// answer's Content-Length must give.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("the endpoint accepts");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length = format!("\r\nContent-Length: {}\r\n", body.len());
    assert!(head.contains(&length), "{head}");
    (status, body.to_owned())
}

#[test]
fn the_endpoint_serves_every_metric_to_prometheus_and_the_log_is_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "vigil.toml",
        &format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[log]\nformat = \"json\"\n",
            sim_config("speed = 20.0")
        ),
    );
    let (mut child, mut log) = run_agent(&config);
    let Some(line) = log.wait_for("metrics_listening", LIMIT) else {
        panic!("no metrics_listening: {:#?}", log.seen)
    };
    let listening: Value = serde_json::from_str(&line).expect("a JSON line");
    let addr: SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    assert_eq!(get(addr, "/healthz"), (200, "ok\n".into()));
    let (status, body) = get(addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    let families = parse_exposition(&text);
    assert_eq!(families.len(), DESCRIPTIONS.len(), "{families:#?}");
    for metric in DESCRIPTIONS {
        let sample = format!("vigil_{}", metric.name);
        // The parser names a counter's family without its `_total`.
        let (family, kind) = match metric.kind() {
            Kind::Counter => (sample.trim_end_matches("_total").to_owned(), "counter"),
            Kind::Gauge => (sample.clone(), "gauge"),
        };
        let Some(f) = families.get(&family) else {
            panic!("{sample} is not served: {text}")
        };
        assert_eq!(f["type"], kind, "{sample}");
        assert_eq!(f["help"], metric.help(), "{sample}");
        assert!(f["samples"][&sample].is_number(), "{sample}: {f}");
    }
    let readings = &families["vigil_readings"]["samples"]["vigil_readings_total"];
    assert!(
        readings.as_f64().unwrap() > 0.0,
        "the simulator's readings are counted"
    );

    let child = child.0.take().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_with_limit(child, LIMIT).expect("vigil stops on SIGTERM");
    let lines = log.rest(LIMIT).to_vec();
    assert!(status.success(), "{lines:#?}");

    // Every line a JSON object with a timestamp and a level; the agent's own with an event.
    let mut events = BTreeSet::new();
    for line in &lines {
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
            panic!("not a JSON object: {line}")
        };
        assert!(
            o["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
            "{line}"
        );
        let level = o["level"].as_str().unwrap_or_default();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "{line}"
        );
        let target = o["target"].as_str().unwrap_or_default();
        if target.starts_with("vigil") {
            let Some(event) = o.get("event").and_then(Value::as_str) else {
                panic!("no event: {line}")
            };
            events.insert(event.to_owned());
        }
    }
    for expected in [
        "pipeline_started",
        "metrics_listening",
        "shutdown_complete",
        "run_summary",
    ] {
        assert!(events.contains(expected), "no {expected} in {events:?}");
    }
}

#[test]
fn readyz_names_a_task_that_ended_while_the_others_run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_kept, kept) = mpsc::channel(1);
        let (ending, ends) = mpsc::channel(1);
        let stages = Stages {
            metrics: MetricsConfig {
                listen: Some("127.0.0.1:0".parse().unwrap()),
            },
            ..Stages::builtin()
        };
        let sources: Vec<Box<dyn Source>> =
            vec![Box::new(Injected(kept)), Box::new(Injected(ends))];
        let shutdown = CancellationToken::new();
        let pipeline = Pipeline::start(stages, sources, shutdown.clone(), Taps::default()).unwrap();
        let mut listening = pipeline.metrics_listening.clone();
        let addr = tokio::time::timeout(LIMIT, listening.wait_for(Option::is_some))
            .await
            .expect("the endpoint listens")
            .unwrap()
            .unwrap();
        let ask = move |path: &'static str| tokio::task::spawn_blocking(move || get(addr, path));

        let (status, body) = ask("/readyz").await.unwrap();
        assert_eq!(status, 200, "{body}");
        let started = pipeline.health().liveness().started;

        // One source ends (its sender is dropped); the other keeps every stage running.
        drop(ending);
        let deadline = Instant::now() + LIMIT;
        let (status, body) = loop {
            let (status, body) = ask("/readyz").await.unwrap();
            if status != 200 || Instant::now() > deadline {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body,
            format!(
                "not ready: {} of {started} tasks running; ended: source:injected\n",
                started - 1
            )
        );
        assert_eq!(ask("/healthz").await.unwrap().0, 200);

        shutdown.cancel();
        pipeline.join().await.expect("the rest drains");
        let refused = tokio::task::spawn_blocking(move || TcpStream::connect(addr))
            .await
            .unwrap();
        assert!(refused.is_err(), "the endpoint stops with the pipeline");
    });
}
