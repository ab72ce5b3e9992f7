//! The `[uplink]` section: where the broker is, how the agent proves who it is, and the
//! limits it keeps (AWS IoT Core's, per connection).
//!
//! Checked in two stages like the rest of the config: [`UplinkConfig::check`] looks at the
//! values and opens nothing; [`UplinkConfig::resolve_tls`], once at start, reads the
//! certificate and key files (they exist, parse, and the key is not readable by group or
//! others) into the TLS settings the uplink connects with.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tls::{DeviceTls, TlsError};

use crate::duration;

/// AWS IoT Core: 100 unacknowledged QoS 1 publishes per connection.
pub const AWS_MAX_IN_FLIGHT: usize = 100;
/// AWS IoT Core: 100 publishes per second per connection.
pub const AWS_MAX_PUBLISHES_PER_SECOND: u32 = 100;
/// AWS IoT Core: 512 KiB per second per connection.
pub const AWS_MAX_BYTES_PER_SECOND: u32 = 512 * 1024;
/// AWS IoT Core bills messages in 5 KB units.
pub const BILLING_UNIT: usize = 5 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UplinkConfig {
    /// The broker's host name: the account's AWS IoT data endpoint
    /// (`xxxxxxxx-ats.iot.REGION.amazonaws.com`).
    pub endpoint: String,
    /// 8883 (MQTT over TLS), or 443 with ALPN `x-amzn-mqtt-ca` where 8883 is blocked.
    pub port: u16,
    /// PEM file of the CA(s) the broker's certificate must chain to (AmazonRootCA1.pem).
    pub ca_file: Option<PathBuf>,
    /// PEM file of the device certificate (and any intermediates).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the device's private key; must not be readable by group or others.
    pub key_file: Option<PathBuf>,
    /// Plain TCP without TLS, for a local development broker only; refused toward
    /// `*.amazonaws.com` and `*.amazonaws.com.cn`.
    pub insecure_plain_tcp: bool,
    /// MQTT keep-alive, 30 s to 1200 s (AWS IoT Core's range).
    #[serde(with = "duration")]
    pub keep_alive: Duration,
    /// Unacknowledged publishes at most (AWS IoT Core: 100).
    pub max_in_flight: usize,
    /// Publishes per second at most (AWS IoT Core: 100).
    pub max_publishes_per_second: u32,
    /// Payload bytes per second at most (AWS IoT Core: 512 KiB).
    pub max_bytes_per_second: u32,
    /// First reconnect delay; it doubles up to `reconnect_max`, with jitter. Never under 1 s
    /// (AWS IoT Core allows one connect per second per client id).
    #[serde(with = "duration")]
    pub reconnect_min: Duration,
    #[serde(with = "duration")]
    pub reconnect_max: Duration,
    /// How often the retained online status (spool depth, model version) is refreshed.
    #[serde(with = "duration")]
    pub status_interval: Duration,
    /// Largest readings message, in bytes: most of one 5 KB billing unit.
    pub message_bytes: usize,
    /// Reading values are sent rounded to this step of their unit (degC, km/h, rpm).
    pub resolution: f64,
    /// Subscribe to the device shadow and jobs topics (`$aws/things/...`). Off only for a
    /// broker that refuses `$` topics, such as the demo's.
    pub shadow_and_jobs: bool,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            endpoint: String::new(),
            port: 8883,
            ca_file: None,
            cert_file: None,
            key_file: None,
            insecure_plain_tcp: false,
            keep_alive: Duration::from_secs(60),
            max_in_flight: AWS_MAX_IN_FLIGHT,
            max_publishes_per_second: AWS_MAX_PUBLISHES_PER_SECOND,
            max_bytes_per_second: AWS_MAX_BYTES_PER_SECOND,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(120),
            status_interval: Duration::from_secs(60),
            message_bytes: 5000,
            resolution: 0.1,
            shadow_and_jobs: true,
        }
    }
}

/// Whether a host name is an AWS endpoint (where plain TCP is never allowed): AWS's
/// commercial and GovCloud regions (`*.amazonaws.com`) and its China regions
/// (`*.amazonaws.com.cn`).
pub fn is_aws_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["amazonaws.com", "amazonaws.com.cn"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

impl UplinkConfig {
    /// Checks the values; returns the key (below `uplink.`) and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.endpoint.trim().is_empty() {
            return Err((
                "uplink.endpoint",
                "expected the broker's host name (your AWS IoT data endpoint), found none".into(),
            ));
        }
        if self.insecure_plain_tcp && is_aws_host(&self.endpoint) {
            return Err((
                "uplink.insecure_plain_tcp",
                format!(
                    "plain TCP is for a local development broker only and is refused toward {}; \
                     remove insecure_plain_tcp and set ca_file, cert_file and key_file",
                    self.endpoint
                ),
            ));
        }
        if !self.insecure_plain_tcp {
            for (key, file) in [
                ("uplink.ca_file", &self.ca_file),
                ("uplink.cert_file", &self.cert_file),
                ("uplink.key_file", &self.key_file),
            ] {
                if file.is_none() {
                    return Err((
                        key,
                        "expected a PEM file (mutual TLS needs the CA, the device certificate \
                         and its key), found none"
                            .into(),
                    ));
                }
            }
        }
        let keep_alive = self.keep_alive.as_secs();
        if !(30..=1200).contains(&keep_alive) || self.keep_alive.subsec_nanos() != 0 {
            return Err((
                "uplink.keep_alive",
                format!(
                    "expected whole seconds from 30s to 1200s (AWS IoT Core's range), found {}",
                    humantime::format_duration(self.keep_alive)
                ),
            ));
        }
        if !(1..=AWS_MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err((
                "uplink.max_in_flight",
                format!(
                    "expected 1 to {AWS_MAX_IN_FLIGHT} (AWS IoT Core's limit), found {}",
                    self.max_in_flight
                ),
            ));
        }
        if !(1..=AWS_MAX_PUBLISHES_PER_SECOND).contains(&self.max_publishes_per_second) {
            return Err((
                "uplink.max_publishes_per_second",
                format!(
                    "expected 1 to {AWS_MAX_PUBLISHES_PER_SECOND} (AWS IoT Core's limit), found {}",
                    self.max_publishes_per_second
                ),
            ));
        }
        // A second's budget must hold the largest message the spool accepts.
        let floor = crate::spool::record::MAX_PAYLOAD as u32;
        if !(floor..=AWS_MAX_BYTES_PER_SECOND).contains(&self.max_bytes_per_second) {
            return Err((
                "uplink.max_bytes_per_second",
                format!(
                    "expected {floor} to {AWS_MAX_BYTES_PER_SECOND} (one largest message to AWS \
                     IoT Core's limit), found {}",
                    self.max_bytes_per_second
                ),
            ));
        }
        if self.reconnect_min < Duration::from_secs(1) || self.reconnect_max < self.reconnect_min {
            return Err((
                "uplink.reconnect_min",
                format!(
                    "expected reconnect_min >= 1s (one connect per second per client id) and \
                     reconnect_max >= reconnect_min, found {} and {}",
                    humantime::format_duration(self.reconnect_min),
                    humantime::format_duration(self.reconnect_max)
                ),
            ));
        }
        if self.status_interval < Duration::from_secs(1) {
            return Err(("uplink.status_interval", "expected at least 1s".to_owned()));
        }
        if !(1024..=BILLING_UNIT * 25).contains(&self.message_bytes) {
            return Err((
                "uplink.message_bytes",
                format!(
                    "expected 1024 to {} bytes (a 5 KB billing unit is {BILLING_UNIT}), found {}",
                    BILLING_UNIT * 25,
                    self.message_bytes
                ),
            ));
        }
        if !(self.resolution.is_finite() && self.resolution > 0.0) {
            return Err((
                "uplink.resolution",
                format!(
                    "expected a step above 0 such as 0.1, found {}",
                    self.resolution
                ),
            ));
        }
        Ok(())
    }

    /// Reads the PEM files once (they exist, parse, and the key is private to its owner)
    /// into the TLS settings every connection then uses; `None` for plain TCP.
    pub fn resolve_tls(&self) -> Result<Option<DeviceTls>, TlsError> {
        if self.insecure_plain_tcp {
            return Ok(None);
        }
        super::tls::install_crypto_provider();
        super::tls::device_tls(self).map(Some)
    }

    /// ALPN protocols to offer: AWS IoT Core takes MQTT on port 443 only with this one.
    pub fn alpn(&self) -> Vec<Vec<u8>> {
        if self.port == 443 {
            vec![b"x-amzn-mqtt-ca".to_vec()]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> UplinkConfig {
        UplinkConfig {
            endpoint: "abc-ats.iot.eu-west-1.amazonaws.com".into(),
            ca_file: Some("ca.pem".into()),
            cert_file: Some("cert.pem".into()),
            key_file: Some("key.pem".into()),
            ..UplinkConfig::default()
        }
    }

    #[test]
    fn plain_tcp_is_refused_toward_any_aws_endpoint() {
        for host in [
            "abc-ats.iot.eu-west-1.amazonaws.com",
            "ABC-ATS.IOT.US-EAST-1.AMAZONAWS.COM.",
        ] {
            let c = UplinkConfig {
                endpoint: host.into(),
                insecure_plain_tcp: true,
                ..tls()
            };
            let (key, message) = c.check().unwrap_err();
            assert_eq!(key, "uplink.insecure_plain_tcp");
            assert!(message.contains("refused toward"), "{message}");
        }
        let local = UplinkConfig {
            endpoint: "127.0.0.1".into(),
            insecure_plain_tcp: true,
            ca_file: None,
            cert_file: None,
            key_file: None,
            ..UplinkConfig::default()
        };
        assert_eq!(local.check(), Ok(()));
        assert!(!is_aws_host("notamazonaws.com"));
        for aws in [
            "abc-ats.iot.eu-west-1.amazonaws.com",
            "abc-ats.iot.cn-north-1.amazonaws.com.cn",
            "ABC.iot.us-gov-west-1.AmazonAWS.com.",
        ] {
            assert!(is_aws_host(aws), "{aws}");
            let plain = UplinkConfig {
                endpoint: aws.into(),
                ..local.clone()
            };
            assert_eq!(plain.check().unwrap_err().0, "uplink.insecure_plain_tcp");
        }
        assert!(!is_aws_host("amazonaws.com.cn.example.org"));
    }

    #[test]
    fn limits_are_aws_iot_cores() {
        assert_eq!(tls().check(), Ok(()));
        type Change = fn(&mut UplinkConfig);
        let cases: [(Change, &str); 6] = [
            (
                |c| c.keep_alive = Duration::from_secs(20),
                "uplink.keep_alive",
            ),
            (
                |c| c.keep_alive = Duration::from_secs(1201),
                "uplink.keep_alive",
            ),
            (|c| c.max_in_flight = 101, "uplink.max_in_flight"),
            (
                |c| c.max_publishes_per_second = 500,
                "uplink.max_publishes_per_second",
            ),
            (
                |c| c.reconnect_min = Duration::from_millis(100),
                "uplink.reconnect_min",
            ),
            (|c| c.key_file = None, "uplink.key_file"),
        ];
        for (change, key) in cases {
            let mut c = tls();
            change(&mut c);
            assert_eq!(c.check().unwrap_err().0, key);
        }
    }

    #[test]
    fn port_443_offers_the_aws_alpn() {
        let c = UplinkConfig { port: 443, ..tls() };
        assert_eq!(c.alpn(), vec![b"x-amzn-mqtt-ca".to_vec()]);
        assert!(tls().alpn().is_empty());
    }
}
