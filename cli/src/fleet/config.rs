//! `vigil fleet watch`'s options, checked once before anything connects: the broker's
//! address, the TLS files (the agent's rules: mutual TLS unless plain TCP is asked for, never
//! plain TCP toward AWS, a private key only its owner can read), the filter.

use std::path::PathBuf;
use std::sync::Arc;

use vigil_agent::detect::alert::Severity;
use vigil_agent::uplink::UplinkConfig;
use vigil_agent::uplink::config::is_aws_host;
use vigil_agent::uplink::tls::{self, TlsError};

use super::board::Filter;

/// Options of `vigil fleet watch`.
#[derive(Clone, Debug, clap::Args)]
pub struct WatchOptions {
    /// The broker, `HOST` or `HOST:PORT` (`[V6ADDR]:PORT`); the port defaults to 8883
    /// (1883 with --insecure-plain-tcp).
    #[arg(long)]
    pub broker: String,
    /// PEM file of the CA the broker's certificate chains to (AmazonRootCA1.pem).
    #[arg(long, required_unless_present = "insecure_plain_tcp")]
    pub ca: Option<PathBuf>,
    /// PEM file of this watcher's client certificate.
    #[arg(long, required_unless_present = "insecure_plain_tcp")]
    pub cert: Option<PathBuf>,
    /// PEM file of its private key; must not be readable by group or others.
    #[arg(long, required_unless_present = "insecure_plain_tcp")]
    pub key: Option<PathBuf>,
    /// Watch one truck (its vehicle id) instead of all.
    #[arg(long)]
    pub vehicle: Option<String>,
    /// Show alerts from this severity up: `warning` shows warnings and criticals,
    /// `critical` only criticals. Trucks going online and offline are always shown.
    #[arg(long, value_enum)]
    pub severity: Option<SeverityArg>,
    /// One JSON line per event on standard output (the default when it is not a terminal).
    #[arg(long)]
    pub json: bool,
    /// MQTT client id (default: vigil-fleet-<pid>); the broker's policy must allow it.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Plain TCP without TLS, for a local development broker only; refused toward
    /// *.amazonaws.com and *.amazonaws.com.cn.
    #[arg(long, conflicts_with_all = ["ca", "cert", "key"])]
    pub insecure_plain_tcp: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SeverityArg {
    Warning,
    Critical,
}

impl From<SeverityArg> for Severity {
    fn from(s: SeverityArg) -> Severity {
        match s {
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

/// Why the watcher cannot start; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum WatchConfigError {
    #[error("--broker {0:?}: expected HOST or HOST:PORT, such as broker.example.com:8883")]
    Broker(String),
    #[error(
        "--insecure-plain-tcp is for a local development broker only and is refused toward {0}; \
         drop it and give --ca, --cert and --key"
    )]
    PlainTcpToAws(String),
    #[error(
        "--vehicle {0:?}: expected a vehicle id (1-128 letters, digits, ':', '_' or '-'), \
         without MQTT wildcards"
    )]
    Vehicle(String),
    #[error("{}", for_flags(.0))]
    Tls(#[from] TlsError),
}

/// The TLS messages name the agent's config keys; here they are flags.
fn for_flags(e: &TlsError) -> String {
    e.to_string()
        .replace("uplink.ca_file", "--ca")
        .replace("uplink.cert_file", "--cert")
        .replace("uplink.key_file", "--key")
}

/// The options, checked.
#[derive(Clone)]
pub struct WatchConfig {
    pub host: String,
    pub port: u16,
    /// `None`: plain TCP (asked for, and not toward AWS).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub filter: Filter,
    pub client_id: String,
    pub json: bool,
}

impl std::fmt::Debug for WatchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("filter", &self.filter)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
pub fn parse_broker(text: &str, default_port: u16) -> Result<(String, u16), WatchConfigError> {
    let bad = || WatchConfigError::Broker(text.to_owned());
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(bad()),
            None => (text, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

fn vehicle_id_ok(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
}

impl WatchOptions {
    /// Checks everything, reads the TLS files; `stdout_is_terminal` picks the table.
    pub fn resolve(&self, stdout_is_terminal: bool) -> Result<WatchConfig, WatchConfigError> {
        let default_port = if self.insecure_plain_tcp { 1883 } else { 8883 };
        let (host, port) = parse_broker(&self.broker, default_port)?;
        if let Some(v) = self.vehicle.as_ref().filter(|v| !vehicle_id_ok(v)) {
            return Err(WatchConfigError::Vehicle(v.clone()));
        }
        let tls = if self.insecure_plain_tcp {
            if is_aws_host(&host) {
                return Err(WatchConfigError::PlainTcpToAws(host));
            }
            None
        } else {
            // The agent's own loader, so the same rules hold: the CA as the only trust
            // anchor, the key private to its owner, ALPN on port 443.
            tls::install_crypto_provider();
            Some(tls::client_config(&UplinkConfig {
                endpoint: host.clone(),
                port,
                ca_file: self.ca.clone(),
                cert_file: self.cert.clone(),
                key_file: self.key.clone(),
                ..UplinkConfig::default()
            })?)
        };
        Ok(WatchConfig {
            host,
            port,
            tls,
            filter: Filter {
                vehicle: self.vehicle.clone(),
                min_severity: self.severity.map(Severity::from),
            },
            client_id: self
                .client_id
                .clone()
                .unwrap_or_else(|| format!("vigil-fleet-{}", std::process::id())),
            json: self.json || !stdout_is_terminal,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn options(broker: &str) -> WatchOptions {
        WatchOptions {
            broker: broker.into(),
            ca: None,
            cert: None,
            key: None,
            vehicle: None,
            severity: None,
            json: false,
            client_id: None,
            insecure_plain_tcp: true,
        }
    }

    #[test]
    fn broker_addresses() {
        for (text, expected) in [
            ("localhost", Some(("localhost", 8883))),
            ("localhost:1884", Some(("localhost", 1884))),
            ("[::1]", Some(("::1", 8883))),
            ("[::1]:443", Some(("::1", 443))),
            ("host:0", None),
            ("host:x", None),
            (":8883", None),
            ("::1", None),
            ("[::1", None),
            ("", None),
        ] {
            let got = parse_broker(text, 8883).ok();
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn plain_tcp_only_when_asked_and_never_toward_aws() {
        let local = options("127.0.0.1").resolve(false).unwrap();
        assert!(local.tls.is_none());
        assert_eq!(local.port, 1883);
        assert!(local.json, "not a terminal: JSON lines");
        let aws = options("abc-ats.iot.eu-west-1.amazonaws.com")
            .resolve(true)
            .unwrap_err()
            .to_string();
        assert!(aws.contains("refused toward"), "{aws}");
        let bad = WatchOptions {
            vehicle: Some("dt/vigil/#".into()),
            ..options("localhost")
        };
        assert!(matches!(
            bad.resolve(true),
            Err(WatchConfigError::Vehicle(_))
        ));
    }

    #[test]
    fn tls_errors_name_the_flag_and_a_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("fleet.key");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let tls = |ca: PathBuf| WatchOptions {
            ca: Some(ca),
            cert: Some(dir.path().join("missing.pem")),
            key: Some(key.clone()),
            insecure_plain_tcp: false,
            ..options("localhost")
        };
        let missing = tls(dir.path().join("ca.pem"))
            .resolve(false)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("ca.pem"), "{missing}");
        // The CA and certificate parse; the key's mode is what is wrong.
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.cert.pem()).unwrap();
        std::fs::write(dir.path().join("missing.pem"), ca.cert.pem()).unwrap();
        let loose = tls(ca_pem).resolve(false).unwrap_err().to_string();
        assert!(loose.contains("chmod 600"), "{loose}");
    }
}
