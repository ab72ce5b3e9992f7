//! `cargo bench -p vigil-agent --bench uplink`: the uplink's figures on a loopback broker (the
//! demo's in-process rumqttd, plain MQTT; TLS adds a handshake per connect, not per message).
//!
//! 1. Wire cost: 10 s of every signal at 10 Hz in the compact encoding, in bytes and billed
//!    5 KB units (target: at most one).
//! 2. Sample -> PUBACK for alerts: append (the spool flushes an alert at once), publish,
//!    PUBACK, ack in the spool; p50/p99 over sequential alerts (target p99 < 100 ms).
//! 3. Backlog drain: one hour of readings at full signal rate spooled while offline, then
//!    the link comes up; publishes/s and KiB/s until the spool is empty (the pacer holds
//!    them to 100/s and 512 KiB/s).
//!
//! Exits 1, naming it, when the wire cost or the p99 misses its target. On the 2-core build
//! machine with a CI run beside it (2026-12-07): p50 0.66 ms and p99 2.66 ms with the
//! uplink's TCP_NODELAY, 0.86-0.88 ms and 51-108 ms without it.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vigil_agent::detect::{DetectConfig, ModelHandle, Tuning};
use vigil_agent::reading::{Origin, Reading, Signal, Timestamp};
use vigil_agent::spool::{RecordKind, Spool, SpoolConfig, SpoolHandle, SpoolTask};
use vigil_agent::telemetry::Metrics;
use vigil_agent::uplink::demo_broker::DemoBroker;
use vigil_agent::uplink::payload::{Stream, alert_body, identity_headroom, stored};
use vigil_agent::uplink::{LinkStatus, Uplink, UplinkConfig, readings};
use vigil_agent::vehicle::VehicleConfig;

const SIGNALS: [(&str, f64, f64); 9] = [
    (
        "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature",
        88.0,
        0.05,
    ),
    (
        "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature",
        102.0,
        0.04,
    ),
    ("Vehicle.Powertrain.FuelSystem.Temperature", 41.0, 0.03),
    ("Vehicle.Exterior.AirTemperature", 18.0, 0.02),
    ("Vehicle.Speed", 72.0, 0.4),
    ("Vehicle.Powertrain.CombustionEngine.Speed", 1450.0, 6.0),
    ("Vehicle.Cargo.Tank.Compartment1.Temperature", 21.0, 0.02),
    ("Vehicle.Cargo.Tank.Compartment2.Temperature", 21.5, 0.02),
    ("Vehicle.Cargo.Tank.Compartment3.Temperature", 20.8, 0.02),
];

/// 10 s of every signal at 10 Hz: random walks with the given step, from a fixed seed.
fn ten_seconds(start_ms: i64, seed: &mut u64) -> Vec<Reading> {
    let mut out = Vec::new();
    let origin = Origin::Can {
        bus: Arc::from("can0"),
        source_address: 0,
    };
    let mut values: Vec<f64> = SIGNALS.iter().map(|s| s.1).collect();
    for tick in 0..100i64 {
        for (i, (name, _, step)) in SIGNALS.iter().enumerate() {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let r = (*seed % 2001) as f64 / 1000.0 - 1.0;
            values[i] += r * step;
            let ms = start_ms + tick * 100;
            out.push(Reading::good(
                Signal::new(name),
                Timestamp {
                    wall_us: ms * 1000,
                    mono: Duration::from_millis((ms - start_ms) as u64),
                },
                values[i],
                origin.clone(),
            ));
        }
    }
    out
}

struct Bench {
    spool: SpoolHandle,
    acked: mpsc::UnboundedReceiver<u64>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    uplink: Option<Uplink>,
    _link: watch::Receiver<LinkStatus>,
    _dir: tempfile::TempDir,
    _task: SpoolTask,
}

fn setup(port: u16) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(
        SpoolConfig {
            max_bytes: 256 << 20,
            ..SpoolConfig::new(dir.path())
        },
        metrics.clone(),
    )
    .unwrap();
    let (handle, task) = SpoolTask::spawn(spool, CancellationToken::new()).unwrap();
    let (link_tx, link) = watch::channel(LinkStatus::default());
    let tuning = Tuning::new(
        &VehicleConfig::default(),
        &DetectConfig::default(),
        Duration::from_secs(10),
    );
    let (tuning_tx, _) = watch::channel(tuning);
    let (acked_tx, acked) = mpsc::unbounded_channel();
    let uplink = Uplink {
        config: UplinkConfig {
            endpoint: "127.0.0.1".into(),
            port,
            insecure_plain_tcp: true,
            shadow_and_jobs: false,
            ..UplinkConfig::default()
        },
        thing: "bench-truck".into(),
        tls: None,
        spool: handle.clone(),
        link: link_tx,
        tuning: tuning_tx,
        detect: watch::channel(Default::default()).1,
        model: Arc::new(ModelHandle::new(None)),
        metrics: metrics.clone(),
        acked: Some(acked_tx),
        stages: None,
    };
    Bench {
        spool: handle,
        acked,
        shutdown: CancellationToken::new(),
        metrics,
        uplink: Some(uplink),
        _link: link,
        _dir: dir,
        _task: task,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = DemoBroker::start().expect("the demo broker starts");

    // 1. Wire cost.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let budget = UplinkConfig::default().message_bytes - identity_headroom("bench-truck".len());
    let now_ms = UNIX_EPOCH.elapsed().unwrap().as_millis() as i64;
    // The identity the uplink adds, at its longest (20-digit boot id and sequence number).
    let id_len = r#"{"thing":"bench-truck","boot":18446744073709551615,"seq":18446744073709551615,"#
        .len() - 1;
    let mut total_bytes = 0usize;
    let mut total_units = 0usize;
    let windows = 360; // one hour
    let mut hour = Vec::new();
    for w in 0..windows {
        let batch = ten_seconds(now_ms + w * 10_000, &mut seed);
        for body in readings::encode(&batch, 0.1, budget) {
            total_bytes += body.len() + id_len;
            total_units += (body.len() + id_len).div_ceil(5 * 1024);
            hour.push(body);
        }
    }
    println!(
        "wire cost: 10 s of {} signals at 10 Hz ({} readings) -> {:.0} bytes per 10 s, {:.2} billed 5 KB units per 10 s (target <= 1); per hour {} messages, {:.0} KiB, {} billed units",
        SIGNALS.len(),
        SIGNALS.len() * 100,
        total_bytes as f64 / windows as f64,
        total_units as f64 / windows as f64,
        hour.len(),
        total_bytes as f64 / 1024.0,
        total_units
    );

    let mut missed = Vec::new();
    if total_units > windows as usize {
        missed.push("wire cost over 1 billed unit per 10 s");
    }

    // 2. Alert latency: append -> PUBACK, one at a time.
    let mut b = setup(broker.port);
    let uplink = b.uplink.take().unwrap();
    let token = b.shutdown.clone();
    let latencies = rt.block_on(async {
        let task = tokio::spawn(uplink.run(token));
        let mut link = b._link.clone();
        link.wait_for(|l| l.online == Some(true)).await.unwrap();
        let event = sample_alert();
        let mut lat = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            let seq = b
                .spool
                .append(
                    RecordKind::Alert,
                    stored(Stream::Alerts, &alert_body(&event)),
                )
                .await
                .unwrap()
                .seq;
            while b.acked.recv().await.unwrap() != seq {}
            lat.push(t.elapsed());
        }
        b.shutdown.cancel();
        let _ = task.await;
        lat
    });
    let mut sorted = latencies;
    sorted.sort();
    println!(
        "alert append -> PUBACK (loopback, spool fsync per alert): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} alerts (target p99 < 100 ms)",
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3,
        sorted.len()
    );
    if percentile(&sorted, 0.99) >= Duration::from_millis(100) {
        missed.push("alert append -> PUBACK p99 not under 100 ms");
    }

    // 3. Backlog drain: an hour of readings spooled offline, then the link comes up.
    let mut b = setup(broker.port);
    let uplink = b.uplink.take().unwrap();
    let token = b.shutdown.clone();
    let (n, took, bytes) = rt.block_on(async {
        for body in &hour {
            b.spool
                .append(RecordKind::Readings, stored(Stream::Readings, body))
                .await
                .unwrap();
        }
        let n = hour.len();
        let start = Instant::now();
        let task = tokio::spawn(uplink.run(token));
        for _ in 0..n {
            b.acked.recv().await.unwrap();
        }
        let took = start.elapsed();
        b.shutdown.cancel();
        let _ = task.await;
        (n, took, b.metrics.snapshot().uplink_published_bytes_total)
    });
    println!(
        "backlog drain: {n} messages ({:.0} KiB) in {:.2} s from connect: {:.0} publishes/s, {:.0} KiB/s (pacer: 100 and 512 KiB a second, each publish counted until a second after its PUBACK; the broker's own count per second is checked by the system test uplink::a_backlog_drains_within_100_publishes_in_every_second_at_the_broker)",
        bytes as f64 / 1024.0,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        bytes as f64 / 1024.0 / took.as_secs_f64()
    );
    if !missed.is_empty() {
        eprintln!("uplink bench: missed: {}", missed.join("; "));
        std::process::exit(1);
    }
}

fn sample_alert() -> vigil_agent::detect::alert::AlertEvent {
    use vigil_agent::detect::alert::{Alert, AlertEvent, AlertKind, Severity};
    AlertEvent::Raised(Alert {
        id: 1,
        signal: Signal::new("Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"),
        origin: None,
        peer: None,
        kind: AlertKind::HighLimit,
        severity: Severity::Warning,
        value: 106.0,
        threshold: 105.0,
        raised_at: Timestamp {
            wall_us: 0,
            mono: Duration::ZERO,
        },
        changed_at: Timestamp {
            wall_us: 0,
            mono: Duration::ZERO,
        },
        rule: "limits/1".into(),
        score: None,
        evidence: Vec::new(),
        findings: Vec::new(),
        position: None,
    })
}
