//! The uplink against a real Mosquitto with TLS and `require_certificate`: the `vigil`
//! binary end to end (readings, alerts, status; connection failures), and the uplink task
//! in-process where the test must see inside (the spool across a broker restart, the
//! shadow's tuning, the model updater's calls).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vigil_agent::detect::{DetectConfig, ModelHandle, ModelUpdater, Tuning};
use vigil_agent::spool::{RecordKind, Spool, SpoolConfig, SpoolHandle, SpoolTask};
use vigil_agent::telemetry::Metrics;
use vigil_agent::uplink::payload::{Stream, stored};
use vigil_agent::uplink::{LinkStatus, Uplink, UplinkConfig};
use vigil_agent::vehicle::VehicleConfig;

use crate::broker::{Fleet, Identity, LIMIT, Mosquitto, Pki, record_id, run_agent};
use crate::schema::assert_valid;
use crate::{vigil, wait_with_limit, write_file};

pub(crate) fn agent_config(
    thing: &str,
    port: u16,
    ca: &std::path::Path,
    id: &Identity,
    spool: &str,
) -> String {
    format!(
        "[vehicle]\nid = \"{thing}\"\n\n[source.simulator]\nspeed = 20.0\n\n\
         # Tank limits low enough that the first seconds raise alerts.\n\
         [detect.tank.gasoline]\nwarning = 5.0\ncritical = 90.0\n\n\
         [spool]\npath = \"{spool}\"\n\n\
         [uplink]\nendpoint = \"localhost\"\nport = {port}\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         keep_alive = \"30s\"\n",
        ca.display(),
        id.cert.display(),
        id.key.display()
    )
}

fn sigterm(child: &std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

#[test]
fn readings_alerts_and_status_arrive_over_mutual_tls_and_match_their_schemas() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let fleet = Fleet::connect(&pki, broker.port, "fleet-e2e", &["dt/vigil/#"]);
    let id = pki.client("e2e-truck", None, false);
    let spool = pki.dir.path().join("spool");
    let config = write_file(
        pki.dir.path(),
        "vigil.toml",
        &agent_config(
            "e2e-truck",
            broker.port,
            &pki.ca.pem,
            &id,
            &spool.display().to_string(),
        ),
    );
    let (mut child, mut log) = run_agent(&config);

    let seen = fleet.until(
        "an alert, two readings messages and the online status",
        |seen| {
            let on = |suffix: &str| seen.iter().filter(|(t, _)| t.ends_with(suffix)).count();
            on("/alerts") >= 1 && on("/readings") >= 2 && on("/status") >= 1
        },
    );
    let mut signals = BTreeSet::new();
    for (topic, payload) in &seen {
        assert!(topic.starts_with("dt/vigil/e2e-truck/"), "{topic}");
        let schema = match topic.rsplit('/').next().unwrap() {
            "readings" => "readings.schema.json",
            "alerts" => "alert.schema.json",
            "status" => "status.schema.json",
            "dm1" => "dm1.schema.json",
            other => panic!("unexpected topic {other}"),
        };
        let v = assert_valid(schema, payload);
        if schema == "readings.schema.json" {
            let readings = vigil_agent::uplink::readings::decode(&v).unwrap();
            assert!(!readings.is_empty());
            signals.extend(readings.into_iter().map(|r| r.signal));
            assert!(payload.len() <= 5000, "{} bytes", payload.len());
        }
        if schema == "status.schema.json" {
            if v["state"] != "online" {
                panic!(
                    "status {v}; agent log: {:#?}",
                    log.rest(Duration::from_millis(500))
                );
            }
            // The health the fleet reads: every stage alive, the link up since its CONNACK.
            let stages = &v["stages"];
            assert!(stages["started"].as_u64().unwrap() >= 8, "{v}");
            assert_eq!(stages["alive"], stages["started"], "{v}");
            assert_eq!(stages["dead"], json!([]), "{v}");
            assert!(v["link"]["connects"].as_u64().unwrap() >= 1, "{v}");
            assert!(
                v["link"]["since_ms"].as_i64().unwrap() > 1_700_000_000_000,
                "{v}"
            );
            assert!(v["spool"]["oldest_age_ms"].is_u64(), "{v}");
            assert_eq!(v["spool"]["memory_only"], false, "{v}");
            for count in [
                "evicted",
                "quarantined",
                "store_failures",
                "append_failures",
            ] {
                assert_eq!(v["spool"][count], 0, "{count}: {v}");
            }
            assert_eq!(v["alarm"]["devices_unavailable"], 0, "{v}");
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            assert!(
                v["certificate_expires_ms"].as_i64() > Some(now_ms),
                "the device certificate's expiry is reported: {v}"
            );
        }
    }
    assert!(
        signals.contains("Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"),
        "{signals:?}"
    );

    // A clean stop says offline on the retained status (a DISCONNECT does not fire the Will).
    let child = child.0.take().unwrap();
    sigterm(&child);
    fleet.until("the offline status", |seen| {
        seen.iter().any(|(t, p)| {
            t.ends_with("/status") && assert_valid("status.schema.json", p)["state"] == "offline"
        })
    });
    let status = wait_with_limit(child, LIMIT).expect("vigil stops on SIGTERM");
    let rest = log.rest(Duration::from_secs(1));
    assert!(status.success(), "{rest:?}");
    // The batch sealed as the stages drained was sent before the goodbye: nothing is left
    // in the spool for the next start.
    let inspect = crate::run(&[
        "spool",
        "inspect",
        "--json",
        "--path",
        spool.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        (&report["alerts"]["records"], &report["readings"]["records"]),
        (&json!(0), &json!(0)),
        "{report}\n{rest:#?}"
    );
}

#[test]
fn connection_failures_say_what_is_wrong() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let good = pki.client("good-truck", None, false);
    let expired = pki.client("expired-truck", None, true);
    let stranger = pki.client("stranger-truck", Some(&pki.other_ca), false);
    let spool = pki.dir.path().join("spool").display().to_string();

    // At run time: the agent keeps retrying (backing off) and logs why each attempt failed.
    let runtime_cases = [
        (
            "wrong CA",
            pki.other_ca.pem.clone(),
            &good,
            "not signed by the CA in uplink.ca_file",
        ),
        (
            "expired client certificate",
            pki.ca.pem.clone(),
            &expired,
            "expired",
        ),
        (
            "unknown client certificate",
            pki.ca.pem.clone(),
            &stranger,
            "device certificate",
        ),
    ];
    for (n, (case, ca, id, expected)) in runtime_cases.into_iter().enumerate() {
        let config = write_file(
            pki.dir.path(),
            "failing.toml",
            &agent_config(
                "failing-truck",
                broker.port,
                &ca,
                id,
                &format!("{spool}-{n}"),
            ),
        );
        let (mut guard, mut log) = run_agent(&config);
        let line = log.wait_for("uplink_connect_failed", LIMIT);
        let child = guard.0.take().unwrap();
        sigterm(&child);
        let _ = wait_with_limit(child, LIMIT);
        let line = line.unwrap_or_else(|| panic!("{case}: no failure logged: {:?}", log.seen));
        assert!(line.contains(expected), "{case}: {line}");
        // The expiry was known before the first attempt: said at start, and by check-config.
        let warned = log
            .seen
            .iter()
            .any(|l| l.contains("certificate_expiring") && l.contains("expired on 2020-12-31"));
        assert_eq!(warned, id.cert == expired.cert, "{case}: {:#?}", log.seen);
        let checked = crate::run(&["check-config", config.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&checked.stderr);
        assert!(checked.status.success(), "{case}: {stderr}");
        assert_eq!(
            stderr.contains("key `uplink.cert_file`: the device certificate expired on 2020-12-31"),
            id.cert == expired.cert,
            "{case}: {stderr}"
        );
    }

    // At start: refused before anything runs (exit 2), naming the key and the fix.
    let base = agent_config("t", broker.port, &pki.ca.pem, &good, &spool);
    let loose_key = pki.dir.path().join("loose.key");
    std::fs::copy(&good.key, &loose_key).unwrap();
    std::fs::set_permissions(&loose_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let no_cert: String = base
        .lines()
        .filter(|l| !l.starts_with("cert_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let start_cases = [
        ("missing client certificate", no_cert, "uplink.cert_file"),
        (
            "plain TCP toward AWS China",
            base.replace(
                "endpoint = \"localhost\"",
                "endpoint = \"abc-ats.iot.cn-north-1.amazonaws.com.cn\"",
            ) + "insecure_plain_tcp = true\n",
            "uplink.insecure_plain_tcp",
        ),
        (
            "plain TCP toward AWS",
            base.replace(
                "endpoint = \"localhost\"",
                "endpoint = \"abc-ats.iot.eu-west-1.amazonaws.com\"",
            ) + "insecure_plain_tcp = true\n",
            "refused toward",
        ),
        (
            "key readable by others",
            base.replace(
                &good.key.display().to_string(),
                &loose_key.display().to_string(),
            ),
            "chmod 600",
        ),
    ];
    for (case, text, expected) in start_cases {
        let config = write_file(pki.dir.path(), "refused.toml", &text);
        let out = vigil()
            .args(["run", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
    }
}

/// The uplink task in-process, with its spool, against the test broker.
struct Agent {
    spool: SpoolHandle,
    link: watch::Receiver<LinkStatus>,
    tuning: watch::Receiver<Tuning>,
    acked: mpsc::UnboundedReceiver<u64>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    spool_task: SpoolTask,
    /// The device certificate and key files the uplink read at start.
    pem_files: Vec<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(pki: &Pki, port: u16, thing: &str, model: Arc<dyn ModelUpdater>) -> Agent {
        let id = pki.client(thing, None, false);
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let spool = Spool::open(SpoolConfig::new(dir.path()), metrics.clone()).unwrap();
        let (handle, spool_task) = SpoolTask::spawn(spool, CancellationToken::new()).unwrap();
        let vehicle = VehicleConfig {
            id: thing.to_owned(),
            ..VehicleConfig::default()
        };
        let (link_tx, link) = watch::channel(LinkStatus::default());
        let tuning = Tuning::new(&vehicle, &DetectConfig::default(), Duration::from_secs(10));
        let (tuning_tx, tuning) = watch::channel(tuning);
        let (acked_tx, acked) = mpsc::unbounded_channel();
        let pem_files = vec![id.cert.clone(), id.key.clone()];
        let config = UplinkConfig {
            endpoint: "localhost".into(),
            port,
            ca_file: Some(pki.ca.pem.clone()),
            cert_file: Some(id.cert),
            key_file: Some(id.key),
            reconnect_max: Duration::from_secs(2),
            ..UplinkConfig::default()
        };
        let uplink = Uplink {
            tls: config
                .resolve_tls()
                .expect("the test PKI is good")
                .map(|tls| tls.config),
            config,
            thing: thing.to_owned(),
            spool: handle.clone(),
            link: link_tx,
            tuning: tuning_tx,
            detect: watch::channel(Default::default()).1,
            model,
            metrics,
            acked: Some(acked_tx),
            stages: None,
        };
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            uplink.run(token).await.expect("the uplink runs");
        });
        Agent {
            spool: handle,
            link,
            tuning,
            acked,
            shutdown,
            task,
            spool_task,
            pem_files,
            _dir: dir,
        }
    }

    async fn online(&mut self, online: bool) {
        tokio::time::timeout(LIMIT, self.link.wait_for(|l| l.online == Some(online)))
            .await
            .expect("the link changes in time")
            .unwrap();
    }

    async fn append(&self, stream: Stream, n: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        for i in 0..n {
            let body = format!("{{\"format\":\"test\",\"n\":{i}}}");
            let kind = match stream {
                Stream::Readings => RecordKind::Readings,
                _ => RecordKind::Alert,
            };
            seqs.push(
                self.spool
                    .append(kind, stored(stream, body.as_bytes()))
                    .await
                    .unwrap()
                    .seq,
            );
        }
        seqs
    }

    async fn acked(&mut self, seqs: &mut BTreeSet<u64>, until: impl Fn(&BTreeSet<u64>) -> bool) {
        while !until(seqs) {
            let seq = tokio::time::timeout(LIMIT, self.acked.recv())
                .await
                .expect("PUBACKs arrive in time")
                .unwrap();
            seqs.insert(seq);
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        drop(self.spool);
        self.spool_task.join().await.unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// After an outage the spool holds a backlog; draining it must stay within AWS IoT Core's
/// 100 publishes a second per connection in every second, as the broker counts them.
#[test]
fn a_backlog_drains_within_100_publishes_in_every_second_at_the_broker() {
    let pki = Pki::new();
    let mut broker = Mosquitto::start_logging_publishes(&pki);
    let rt = runtime();
    let thing = "backlog-truck";
    rt.block_on(async {
        let mut agent = Agent::start(&pki, broker.port, thing, Arc::new(ModelHandle::new(None)));
        agent.online(true).await;
        broker.stop();
        agent.online(false).await;
        let backlog: BTreeSet<u64> = agent
            .append(Stream::Readings, 450)
            .await
            .into_iter()
            .collect();
        broker.restart();
        let mut acked = BTreeSet::new();
        agent.acked(&mut acked, |a| a.is_superset(&backlog)).await;
        agent.stop().await;
    });
    let (busiest, total) = broker.busiest_second(thing);
    eprintln!("backlog drain: {total} publishes, at most {busiest} in one broker second");
    assert!(
        total >= 450,
        "the broker logged {total} publishes from {thing}"
    );
    assert!(
        busiest <= 100,
        "the broker received {busiest} publishes from {thing} in one second (limit 100)"
    );
}

#[test]
fn a_broker_restart_loses_nothing_and_alerts_go_first() {
    let pki = Pki::new();
    let mut broker = Mosquitto::start(&pki);
    let fleet = Fleet::connect(&pki, broker.port, "fleet-outage", &["dt/vigil/#"]);
    let rt = runtime();
    let (before, during, alerts) = rt.block_on(async {
        let mut agent = Agent::start(
            &pki,
            broker.port,
            "outage-truck",
            Arc::new(ModelHandle::new(None)),
        );
        agent.online(true).await;
        let mut acked = BTreeSet::new();
        let before = agent.append(Stream::Readings, 40).await;
        // Stop the broker while some of these are still in flight.
        agent.acked(&mut acked, |a| a.len() >= 5).await;
        broker.stop();
        agent.online(false).await;
        let during = agent.append(Stream::Readings, 30).await;
        let alerts = agent.append(Stream::Alerts, 2).await;
        // Nothing leaves the spool without its PUBACK: everything not acked is still there.
        // (The spool publishes its depth just after it answers an append: wait for it.)
        let mut stats = agent.spool.stats();
        let settled = tokio::time::timeout(LIMIT, stats.wait_for(|s| s.depth.records() >= 32))
            .await
            .is_ok();
        let pending = stats.borrow().depth.records();
        assert!(settled, "{pending}");
        broker.restart();
        agent.online(true).await;
        agent.acked(&mut acked, |a| a.len() == 72).await;
        // The spool publishes its depth after answering the ack.
        let mut stats = agent.spool.stats();
        tokio::time::timeout(LIMIT, stats.wait_for(|s| s.depth.records() == 0))
            .await
            .expect("the spool empties once everything is acknowledged")
            .unwrap();
        agent.stop().await;
        (before, during, alerts)
    });

    // Every record arrived at least once; duplicates (QoS 1) stay within the in-flight window.
    let all: BTreeSet<u64> = before
        .iter()
        .chain(&during)
        .chain(&alerts)
        .copied()
        .collect();
    let seen = fleet.until("every record", |seen| {
        let got: BTreeSet<u64> = seen
            .iter()
            .filter_map(|(_, p)| record_id(p))
            .map(|(_, _, s)| s)
            .collect();
        got == all
    });
    let seen: Vec<_> = seen
        .into_iter()
        .filter(|(t, _)| !t.ends_with("/status"))
        .collect();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, p) in &seen {
        let (thing, _, seq) = record_id(p).unwrap();
        assert_eq!(thing, "outage-truck");
        *counts.entry(seq).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(duplicates <= 100, "{duplicates} duplicates");
    // After the restart the alerts went out ahead of the readings written during the outage.
    let position = |seq: u64| {
        seen.iter()
            .position(|(_, p)| record_id(p).unwrap().2 == seq)
            .unwrap()
    };
    let first_outage_reading = during.iter().map(|&s| position(s)).min().unwrap();
    for &a in &alerts {
        assert!(
            position(a) < first_outage_reading,
            "alert {a} after the backlog"
        );
        assert!(seen[position(a)].0.ends_with("/alerts"));
    }
}

/// Records every call; a model whose version ends in "-broken" swaps without taking effect.
#[derive(Default)]
struct FakeModel {
    calls: Mutex<Vec<String>>,
    version: Mutex<Option<String>>,
}

impl ModelUpdater for FakeModel {
    fn version(&self) -> Option<String> {
        self.version.lock().unwrap().clone()
    }
    fn swap(&self, version: &str, onnx: &[u8], _card: Option<&str>) -> Result<(), String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("swap {version} {}", onnx.len()));
        if !version.ends_with("-broken") {
            *self.version.lock().unwrap() = Some(version.to_owned());
        }
        Ok(())
    }
    fn rollback(&self) -> Result<(), String> {
        self.calls.lock().unwrap().push("rollback".into());
        Ok(())
    }
}

fn model_job(id: &str, version: &str, model: &[u8], sha: Option<String>) -> Vec<u8> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let sha = sha.unwrap_or_else(|| {
        sha2::Sha256::digest(model)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    });
    let document = json!({"operation": "model-update", "model": {
        "version": version, "sha256": sha,
        "onnx_base64": base64::engine::general_purpose::STANDARD.encode(model)}});
    assert_valid("model-job.schema.json", document.to_string().as_bytes());
    serde_json::to_vec(&json!({"timestamp": 1, "execution": {
        "jobId": id, "status": "QUEUED", "versionNumber": 1, "jobDocument": document}}))
    .unwrap()
}

#[test]
fn the_shadow_retunes_without_restart_and_model_jobs_swap_or_roll_back() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let thing = "cloud-truck";
    let cloud = Fleet::connect(
        &pki,
        broker.port,
        "cloud",
        &[&format!("$aws/things/{thing}/#"), "dt/vigil/#"],
    );
    let model = Arc::new(FakeModel {
        version: Mutex::new(Some("1.0.0".into())),
        ..FakeModel::default()
    });
    let rt = runtime();
    let mut agent = rt.block_on(async { Agent::start(&pki, broker.port, thing, model.clone()) });
    // The agent asks for its shadow after subscribing: from then on it hears the cloud.
    let shadow = format!("$aws/things/{thing}/shadow/name/vigil");
    cloud.until("the shadow get", |seen| {
        seen.iter().any(|(t, _)| *t == format!("{shadow}/get"))
    });

    let reports = |seen: &[(String, Vec<u8>)]| -> Vec<Value> {
        seen.iter()
            .filter(|(t, _)| *t == format!("{shadow}/update"))
            .map(|(_, p)| assert_valid("shadow-update.schema.json", p)["state"]["reported"].clone())
            .collect()
    };
    // The PEM files were read once, at start: a change of cargo class is only checked, never
    // a reason to read them again. With the device certificate and key gone from the disk
    // (the CA stays: the broker reads it too), it is still applied.
    for file in &agent.pem_files {
        std::fs::rename(file, file.with_extension("gone")).unwrap();
    }
    cloud.publish(
        &format!("{shadow}/update/delta"),
        br#"{"version":5,"state":{"cargo":"lpg","detect":{"engine":{"coolant_warning":100.0}}}}"#
            .to_vec(),
        false,
    );
    let seen = cloud.until("the applied report", |seen| {
        reports(seen).iter().any(|r| r["cargo"] == "lpg")
    });
    let applied = reports(&seen)
        .into_iter()
        .find(|r| r["cargo"] == "lpg")
        .unwrap();
    assert!(applied["rejected"].is_null());
    rt.block_on(async {
        tokio::time::timeout(
            LIMIT,
            agent
                .tuning
                .wait_for(|t| t.detect.engine.coolant_warning == 100.0),
        )
        .await
        .unwrap()
        .unwrap();
    });

    cloud.publish(
        &format!("{shadow}/update/delta"),
        br#"{"version":6,"state":{"detect":{"engine":{"coolant_warning":150.0}}}}"#.to_vec(),
        false,
    );
    let seen = cloud.until("the rejection", |seen| {
        reports(seen).iter().any(|r| r["rejected"]["version"] == 6)
    });
    let rejected = reports(&seen)
        .into_iter()
        .find(|r| r["rejected"]["version"] == 6)
        .unwrap();
    assert_eq!(rejected["rejected"]["key"], "detect.engine");
    assert_eq!(rejected["detect"]["engine"]["coolant_warning"], 100.0);
    assert_eq!(agent.tuning.borrow().detect.engine.coolant_warning, 100.0);

    // Jobs: a good model, a bad hash, and a swap that does not take.
    let jobs = format!("$aws/things/{thing}/jobs");
    let finished = |seen: &[(String, Vec<u8>)], job: &str| -> Option<Value> {
        seen.iter()
            .filter(|(t, _)| *t == format!("{jobs}/{job}/update"))
            .map(|(_, p)| assert_valid("job-update.schema.json", p))
            .find(|v| v["status"] != "IN_PROGRESS")
    };
    let onnx = b"\x08\x07tiny-onnx-model".to_vec();
    cloud.publish(
        &format!("{jobs}/notify-next"),
        model_job("good", "2.0.0", &onnx, None),
        false,
    );
    let seen = cloud.until("the good job", |seen| finished(seen, "good").is_some());
    assert!(seen.iter().any(|(t, p)| *t == format!("{jobs}/good/update")
        && serde_json::from_slice::<Value>(p).unwrap()["status"] == "IN_PROGRESS"));
    assert_eq!(finished(&seen, "good").unwrap()["status"], "SUCCEEDED");
    // The status says which model runs now.
    cloud.until("the status with the new model", |seen| {
        seen.iter().any(|(t, p)| {
            t.ends_with("/status")
                && assert_valid("status.schema.json", p)["model_version"] == "2.0.0"
        })
    });

    cloud.publish(
        &format!("{jobs}/notify-next"),
        model_job("bad-hash", "3.0.0", &onnx, Some("0".repeat(64))),
        false,
    );
    let seen = cloud.until("the bad-hash job", |seen| {
        finished(seen, "bad-hash").is_some()
    });
    let failed = finished(&seen, "bad-hash").unwrap();
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["statusDetails"]["reason"]
            .as_str()
            .unwrap()
            .contains("SHA-256 mismatch")
    );
    assert_eq!(failed["statusDetails"]["running_model"], "2.0.0");

    cloud.publish(
        &format!("{jobs}/notify-next"),
        model_job("no-take", "4.0.0-broken", &onnx, None),
        false,
    );
    let seen = cloud.until("the job that does not take", |seen| {
        finished(seen, "no-take").is_some()
    });
    let failed = finished(&seen, "no-take").unwrap();
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["statusDetails"]["rolled_back"], "true");
    assert_eq!(
        *model.calls.lock().unwrap(),
        vec![
            format!("swap 2.0.0 {}", onnx.len()),
            format!("swap 4.0.0-broken {}", onnx.len()),
            "rollback".to_owned()
        ]
    );
    rt.block_on(agent.stop());
}
