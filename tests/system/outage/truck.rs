//! The agent under test as the suite drives it: `vigil run` on a truck's config, its log in
//! JSON lines, its metrics endpoint, its peak memory, SIGKILL, SIGHUP and SIGTERM, and what
//! the store it leaves behind holds.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_agent::spool::{FlushPolicy, RecordKind, Spool, soak};
use vigil_agent::telemetry::Metrics;

use super::tally::Boot;
use crate::Lines;
use crate::broker::{Identity, KillOnDrop, LIMIT, Pki};

/// A record's identity at the fleet: `(boot, seq)` (the thing is the test's one truck).
pub type Key = (u64, u64);

/// The binary under test: `VIGIL_OUTAGE_BIN` (the suite's script points it at the release
/// build, whose memory is the one that counts), else the test build's.
fn binary() -> PathBuf {
    std::env::var_os("VIGIL_OUTAGE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vigil")), PathBuf::from)
}

/// What one truck's config says; [`TruckConfig::write`] makes the file.
pub struct TruckConfig {
    pub thing: String,
    pub port: u16,
    pub ca: PathBuf,
    pub id: Identity,
    pub spool: PathBuf,
    /// The tanks sit near the air's temperature: a warning limit of 5 degC raises an alert
    /// at once; lowering `tank_critical` under the tank's temperature escalates it.
    pub tank_critical: f64,
    /// `[spool] max_bytes` and `max_alert_bytes`; the defaults when `None`.
    pub spool_caps: Option<(u64, u64)>,
    /// `[source.simulator] speed`: times real time.
    pub speed: f64,
    /// `[batch] max_readings`: small batches make many small records.
    pub batch_readings: usize,
    /// `[uplink] message_bytes`: the largest readings message.
    pub message_bytes: usize,
    /// `[uplink] max_bytes_per_second`: AWS IoT Core's 512 KiB, or lower.
    pub bytes_per_second: u32,
}

impl TruckConfig {
    pub fn new(pki: &Pki, thing: &str, port: u16, spool: PathBuf) -> TruckConfig {
        TruckConfig {
            thing: thing.to_owned(),
            port,
            ca: pki.ca.pem.clone(),
            id: pki.client(thing, None, false),
            spool,
            tank_critical: 90.0,
            spool_caps: None,
            speed: 20.0,
            batch_readings: 20,
            message_bytes: 5000,
            bytes_per_second: 512 * 1024,
        }
    }

    /// Writes the config as `<thing>.toml` in `dir` (again, after a change) and returns it.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let caps = self.spool_caps.map_or(String::new(), |(all, alerts)| {
            format!("max_bytes = {all}\nmax_alert_bytes = {alerts}\n")
        });
        let text = format!(
            "[vehicle]\nid = \"{thing}\"\n\n\
             [source.simulator]\nspeed = {speed:.1}\n\n\
             [detect.tank.gasoline]\nwarning = 5.0\ncritical = {critical:.1}\n\n\
             [batch]\nmax_readings = {batch}\n\n\
             [spool]\npath = \"{spool}\"\n{caps}\n\
             [uplink]\nendpoint = \"localhost\"\nport = {port}\nca_file = \"{ca}\"\n\
             cert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
             # AWS IoT Core's shortest keep-alive; a lost link is retried within 5 s.\n\
             keep_alive = \"30s\"\nreconnect_max = \"5s\"\nmessage_bytes = {message_bytes}\n\
             max_bytes_per_second = {bytes_per_second}\n\n\
             # Port 0: a free port, which the agent names in its log.\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n\n\
             [log]\nformat = \"json\"\n",
            thing = self.thing,
            critical = self.tank_critical,
            speed = self.speed,
            batch = self.batch_readings,
            message_bytes = self.message_bytes,
            bytes_per_second = self.bytes_per_second,
            spool = self.spool.display(),
            port = self.port,
            ca = self.ca.display(),
            cert = self.id.cert.display(),
            key = self.id.key.display(),
        );
        crate::write_file(dir, &format!("{}.toml", self.thing), &text)
    }
}

/// One run of `vigil run`.
pub struct Truck {
    guard: KillOnDrop,
    pub pid: u32,
    pub log: Lines,
    /// This run's boot id and its first sequence number (the spool's `spool open` line).
    pub boot_id: u64,
    pub first_seq: u64,
    metrics: SocketAddr,
}

impl Truck {
    /// Starts the agent on `config` and waits until its spool is open and its metrics
    /// endpoint listens.
    pub fn start(config: &Path) -> Truck {
        Truck::start_as(config, None)
    }

    /// [`Truck::start`], as the user `uid` (with its group) when given: the agent as its
    /// own unprivileged user, where a test runs as root.
    pub fn start_as(config: &Path, uid: Option<u32>) -> Truck {
        let mut command = match uid {
            None => Command::new(binary()),
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .args(["--clear-groups", "--"])
                    .arg(binary());
                c
            }
        };
        let mut child = command
            .env_remove("VIGIL_LOG")
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the vigil binary runs");
        let pid = child.id();
        let log = Lines::of(child.stderr.take().unwrap());
        let mut truck = Truck {
            guard: KillOnDrop(Some(child)),
            pid,
            log,
            boot_id: 0,
            first_seq: 0,
            metrics: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        };
        let opened = truck.find("\"message\":\"spool open\"");
        truck.boot_id = opened["boot_id"].as_u64().expect("boot_id");
        truck.first_seq = opened["next_seq"].as_u64().expect("next_seq");
        let listening = truck.find("\"event\":\"metrics_listening\"");
        truck.metrics = listening["addr"].as_str().unwrap().parse().unwrap();
        truck
    }

    /// The first line so far containing `needle`, or the next one (failing the test if none
    /// comes), as JSON.
    pub fn find(&mut self, needle: &str) -> Value {
        match self.log.seen.iter().find(|l| l.contains(needle)) {
            Some(line) => serde_json::from_str(line).unwrap(),
            None => self.expect(needle),
        }
    }

    /// The next log line containing `needle`, as JSON; `None` past `limit` or at exit.
    pub fn wait(&mut self, needle: &str, limit: Duration) -> Option<Value> {
        let line = self.log.wait_for(needle, limit)?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
    }

    /// [`Truck::wait`], failing the test (with the log so far) if the line does not come.
    pub fn expect(&mut self, needle: &str) -> Value {
        match self.wait(needle, LIMIT) {
            Some(v) => v,
            None => panic!("no log line with {needle}; the log: {:#?}", self.log.seen),
        }
    }

    /// Every line so far (and those waiting) containing `needle`.
    pub fn seen(&mut self, needle: &str) -> Vec<String> {
        self.log.rest(Duration::from_millis(50));
        self.log
            .seen
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// A sample of the metrics endpoint (`vigil_` prefix left off); `None` when it does not
    /// answer or has no such line.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let mut stream = TcpStream::connect_timeout(&self.metrics, LIMIT).ok()?;
        stream.set_read_timeout(Some(LIMIT)).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let prefix = format!("vigil_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Polls the metric until `done` holds; false past `limit`. Polling a gauge is how the
    /// test sees the spool fill while no message can leave.
    pub fn wait_metric(&self, name: &str, limit: Duration, done: impl Fn(f64) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.metric(name).is_some_and(&done) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The process's peak resident memory so far (`VmHWM`), KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {}", self.pid);
    }

    /// SIGHUP: the agent reads its config file again.
    pub fn hangup(&self) {
        self.signal("HUP");
    }

    /// SIGKILL, and waits for the process to be gone; returns the run with the records it
    /// had appended by the moment before (at least).
    pub fn kill(mut self) -> Boot {
        let appended = self.metric("spool_appended_total").map_or(0, |n| n as u64);
        let mut child = self.guard.0.take().unwrap();
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        Boot {
            last_seq: appended.checked_sub(1).map(|n| self.first_seq + n),
            ..self.boot()
        }
    }

    /// This run, as the accounting knows it so far (it has not stopped).
    pub fn boot(&self) -> Boot {
        Boot {
            id: self.boot_id,
            first_seq: self.first_seq,
            last_seq: None,
        }
    }

    /// SIGTERM; once it has exited cleanly, this run with its last sequence number (from the
    /// records its exit summary says it spooled), and its log.
    pub fn stop(mut self) -> (Boot, Vec<String>) {
        self.signal("TERM");
        let child = self.guard.0.take().unwrap();
        let status = crate::wait_with_limit(child, LIMIT)
            .unwrap_or_else(|| panic!("no exit after SIGTERM: {:#?}", self.log.seen));
        let summary = self.wait("\"event\":\"run_summary\"", LIMIT);
        let log = self.log.rest(Duration::from_secs(1)).to_vec();
        assert!(status.success(), "{status}: {log:#?}");
        let spooled = summary.and_then(|s| s["records_spooled"].as_u64());
        let spooled = spooled.unwrap_or_else(|| panic!("no records_spooled in {log:#?}"));
        let run = Boot {
            last_seq: spooled.checked_sub(1).map(|n| self.first_seq + n),
            ..self.boot()
        };
        (run, log)
    }
}

/// A record the store held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
    pub key: Key,
    pub alert: bool,
}

/// Everything the spool in `dir` holds, read from a copy of its store (the next start will
/// change the original): after a SIGKILL this is exactly what had been flushed and not yet
/// acknowledged, since the kernel keeps what the dead process wrote and redb reads back
/// only committed transactions. A store a SIGKILL left damaged fails the test.
pub fn held(dir: &Path) -> BTreeSet<Held> {
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir(copy.path().join("store")).unwrap();
    for entry in std::fs::read_dir(dir.join("store")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            copy.path().join("store").join(entry.file_name()),
        )
        .unwrap();
    }
    let mut spool = Spool::open(
        soak::config(copy.path(), FlushPolicy::default()),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let report = spool.open_report();
    assert!(
        report.quarantined.is_none() && report.corrupt_records == 0,
        "the store after a SIGKILL was damaged: {report:?}"
    );
    spool
        .next_to_send(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| Held {
            key: (r.boot_id, r.seq),
            alert: r.kind == RecordKind::Alert,
        })
        .collect()
}
