//! A real Mosquitto with TLS and client certificates, certificates made by the test, and an
//! MQTT client playing the fleet's (and the cloud's) side.
//!
//! Mosquitto is installed by test.sh (Debian's package). Started as root it drops to the
//! `mosquitto` user, so the files it reads (CA, server certificate and key) and their folder
//! are world-readable; the agent's own key is not (the agent refuses it otherwise).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};

/// How long a test waits for something that should take well under a second. It bounds a
/// hang; nothing sleeps to synchronise.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A certificate authority made for one test.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem: PathBuf,
}

/// The PEM files of one test: CAs, the broker's and the clients' certificates.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    /// A CA the broker does not know.
    pub other_ca: Ca,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A client certificate and key (key mode 0600).
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn world_readable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn make_ca(dir: &Path, name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Vigil test {name}"));
    let cert = params.self_signed(&key).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, cert.pem()).unwrap();
    world_readable(&pem);
    Ca { cert, key, pem }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ca = make_ca(dir.path(), "ca");
        let other_ca = make_ca(dir.path(), "other-ca");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        let server_cert = dir.path().join("server.pem");
        let server_key = dir.path().join("server.key");
        std::fs::write(&server_cert, cert.pem()).unwrap();
        std::fs::write(&server_key, key.serialize_pem()).unwrap();
        world_readable(&server_cert);
        world_readable(&server_key);
        Pki {
            dir,
            ca,
            other_ca,
            server_cert,
            server_key,
        }
    }

    /// A client certificate for `name`, signed by the test CA (or `by`), valid now or, with
    /// `expired`, only in 2020.
    pub fn client(&self, name: &str, by: Option<&Ca>, expired: bool) -> Identity {
        let ca = by.unwrap_or(&self.ca);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        let id = Identity {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        };
        std::fs::write(&id.cert, cert.pem()).unwrap();
        std::fs::write(&id.key, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&id.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        id
    }
}

/// A Mosquitto child process with TLS and `require_certificate`.
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
    /// Every line the broker logged (with [`Mosquitto::start_logging_publishes`], one per
    /// PUBLISH received, stamped with the broker's Unix second).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Mosquitto {
    /// Starts on a free port: binds port 0 to learn one, then lets Mosquitto bind it; if
    /// another process took it in between, Mosquitto says so and another port is tried.
    pub fn start(pki: &Pki) -> Mosquitto {
        Mosquitto::start_with(pki, "")
    }

    /// [`Mosquitto::start`], logging at debug level: the broker's own count of what it
    /// received, per second.
    pub fn start_logging_publishes(pki: &Pki) -> Mosquitto {
        Mosquitto::start_with(pki, "log_type debug\nlog_timestamp true\n")
    }

    fn start_with(pki: &Pki, extra: &str) -> Mosquitto {
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = pki.dir.path().join(format!("mosquitto-{port}.conf"));
            // Persistence keeps the fleet client's session and queued messages across a
            // restart (it is saved on SIGTERM), as a real broker would.
            let data = pki.dir.path().join(format!("data-{port}"));
            std::fs::create_dir_all(&data).unwrap();
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
            std::fs::write(
                &conf,
                format!(
                    "per_listener_settings false\nallow_anonymous true\npersistence true\n\
                     persistence_location {}/\n\
                     log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
                     listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                     require_certificate true\nuse_identity_as_username true\n{extra}",
                    data.display(),
                    pki.ca.pem.display(),
                    pki.server_cert.display(),
                    pki.server_key.display()
                ),
            )
            .unwrap();
            world_readable(&conf);
            let mut broker = Mosquitto {
                port,
                conf,
                child: None,
                log: Arc::default(),
            };
            if broker.spawn() {
                return broker;
            }
        }
        panic!("Mosquitto did not start on any of 5 free ports; is it installed (test.sh)?");
    }

    /// Starts the process; true once it listens (it logs the socket it opened).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto runs (installed by test.sh)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let end = Instant::now() + LIMIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("Opening ipv4 listen socket") => {
                    self.child = Some(child);
                    // Keep draining its log so it never blocks on a full pipe.
                    let log = self.log.clone();
                    std::thread::spawn(move || {
                        for line in rx {
                            if std::env::var_os("VIGIL_TEST_BROKER_LOG").is_some() {
                                eprintln!("mosquitto: {line}");
                            }
                            log.lock().unwrap().push(line);
                        }
                    });
                    return true;
                }
                Ok(line) if line.contains("Error") => {
                    eprintln!("mosquitto: {line}");
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// The most PUBLISH packets the broker received from `client` on one connection in one
    /// of its seconds (by its own log's timestamps), and how many it received in all.
    pub fn busiest_second(&self, client: &str) -> (usize, usize) {
        let rates = self.received_from(client);
        (rates.busiest_publishes, rates.publishes)
    }

    /// What the broker received from `client`, per connection and second of its own clock
    /// (needs [`Mosquitto::start_logging_publishes`]): its busiest second by publishes and
    /// by payload bytes (Mosquitto logs each PUBLISH as `... (N bytes))`), and the totals.
    /// Per connection, as AWS IoT Core's limits are: after a frozen broker wakes, it reads
    /// what the dead connection sent long before in the same second as the new one's.
    /// (Mosquitto closes the old connection before it logs the new one's connect.)
    pub fn received_from(&self, client: &str) -> Received {
        let connected = format!(" as {client} (");
        let needle = format!(": Received PUBLISH from {client} ");
        let mut connection = 0;
        let mut per_second = std::collections::BTreeMap::<(u32, u64), (usize, u64)>::new();
        for line in self.log.lock().unwrap().iter() {
            if line.contains("New client connected from ") && line.contains(&connected) {
                connection += 1;
            }
            if line.contains(&needle) {
                let second = line.split(':').next().unwrap().trim().parse().unwrap();
                let bytes: u64 = line
                    .rsplit_once(" (")
                    .and_then(|(_, tail)| tail.strip_suffix(" bytes))"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no payload size in {line:?}"));
                let entry = per_second.entry((connection, second)).or_default();
                entry.0 += 1;
                entry.1 += bytes;
            }
        }
        Received {
            busiest_publishes: per_second.values().map(|s| s.0).max().unwrap_or(0),
            busiest_bytes: per_second.values().map(|s| s.1).max().unwrap_or(0),
            publishes: per_second.values().map(|s| s.0).sum(),
            bytes: per_second.values().map(|s| s.1).sum(),
        }
    }

    /// Waits for a line of the broker's log containing `needle`, among those logged after the
    /// first `from` (the log's length when the caller began to look); returns the log's
    /// length after it, or `None` past `limit`.
    pub fn wait_log(&self, needle: &str, from: usize, limit: Duration) -> Option<usize> {
        let end = Instant::now() + limit;
        loop {
            {
                let log = self.log.lock().unwrap();
                if let Some(i) = log.iter().skip(from).position(|l| l.contains(needle)) {
                    return Some(from + i + 1);
                }
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (a `kill` name: STOP, CONT, KILL) to the broker.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the broker runs");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Stops it the way an operator would (SIGTERM: it saves sessions and queued messages).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A broker a test froze (SIGSTOP) would never act on the SIGTERM.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port (after [`Mosquitto::stop`]).
    pub fn restart(&mut self) {
        let end = Instant::now() + LIMIT;
        while !self.spawn() {
            assert!(
                Instant::now() < end,
                "mosquitto did not restart on {}",
                self.port
            );
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the broker received from one client (see [`Mosquitto::received_from`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Received {
    pub busiest_publishes: usize,
    pub busiest_bytes: u64,
    pub publishes: usize,
    pub bytes: u64,
}

/// The fleet's (or cloud's) client: subscribes, collects messages, publishes.
pub struct Fleet {
    pub client: AsyncClient,
    rx: std_mpsc::Receiver<(String, Vec<u8>)>,
    _runtime: tokio::runtime::Runtime,
}

impl Fleet {
    /// Connects with its own client certificate and subscribes to `filters`; returns once
    /// the subscription is acknowledged.
    pub fn connect(pki: &Pki, port: u16, name: &str, filters: &[&str]) -> Fleet {
        let id = pki.client(name, None, false);
        let tls = vigil_agent::uplink::tls::client_config(&vigil_agent::uplink::UplinkConfig {
            endpoint: "127.0.0.1".into(),
            port,
            ca_file: Some(pki.ca.pem.clone()),
            cert_file: Some(id.cert),
            key_file: Some(id.key),
            ..Default::default()
        })
        .unwrap();
        let mut options = MqttOptions::new(name, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            // A persistent session: what the agent publishes while this client reconnects
            // after a broker restart is queued for it, not lost.
            .set_clean_session(false)
            .set_max_packet_size(1 << 20, 1 << 20)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        // A worker thread of its own: the client runs while the test thread waits.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let subscriber = client.clone();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let subscriptions = filters.len();
        runtime.spawn(async move {
            // Said once per outage, not at every retry.
            let mut failing = false;
            loop {
                let event = eventloop.poll().await;
                if event.is_ok() {
                    failing = false;
                }
                match event {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        for f in &filters {
                            let _ = subscriber.subscribe(f.clone(), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The broker restarts in one test: keep trying, at most ten times a second.
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            eprintln!("fleet client: {e} (retrying)");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                }
            }
        });
        for _ in 0..subscriptions {
            ready_rx
                .recv_timeout(LIMIT)
                .expect("the fleet client subscribed");
        }
        Fleet {
            client,
            rx,
            _runtime: runtime,
        }
    }

    /// Messages until `done` says so (given everything received so far); panics past the limit.
    pub fn until(
        &self,
        what: &str,
        mut done: impl FnMut(&[(String, Vec<u8>)]) -> bool,
    ) -> Vec<(String, Vec<u8>)> {
        let end = Instant::now() + LIMIT * 2;
        let mut seen = Vec::new();
        while !done(&seen) {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => seen.push(m),
                Err(_) => panic!(
                    "gave up waiting for {what}; got {} messages: {:?}",
                    seen.len(),
                    seen.iter().map(|(t, _)| t).collect::<Vec<_>>()
                ),
            }
        }
        seen
    }

    /// The next message, if one comes within `limit`.
    pub fn next(&self, limit: Duration) -> Option<(String, Vec<u8>)> {
        self.rx.recv_timeout(limit).ok()
    }

    pub fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) {
        let client = self.client.clone();
        let topic = topic.to_owned();
        self._runtime.block_on(async move {
            client
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .unwrap();
        });
    }
}

/// The ids of every record message: (thing, boot, seq).
pub fn record_id(payload: &[u8]) -> Option<(String, u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    Some((
        v["thing"].as_str()?.to_owned(),
        v["boot"].as_u64()?,
        v["seq"].as_u64()?,
    ))
}

/// Kills a child agent if the test fails before stopping it, so none is left running.
pub struct KillOnDrop(pub Option<std::process::Child>);

/// `vigil run --config FILE`, its log read line by line; killed if the test ends first.
pub fn run_agent(config: &Path) -> (KillOnDrop, crate::Lines) {
    let mut child = crate::vigil()
        .args(["run", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = crate::Lines::of(child.stderr.take().unwrap());
    (KillOnDrop(Some(child)), log)
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
