//! The `[metrics]` section: where the Prometheus endpoint listens, if anywhere.
//! [`MetricsConfig::check`] is pure: the address is bound when the pipeline starts.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The `[metrics]` section. Off unless `listen` is given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The address of the HTTP listener that serves `/metrics` (every counter and gauge of
    /// the agent, Prometheus text format), `/healthz` (the process answers) and `/readyz`
    /// (every stage is running; 503 otherwise), for example `"127.0.0.1:9898"`. Port 0
    /// takes a free port, which the `metrics_listening` log event names. `None`: no
    /// listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

impl MetricsConfig {
    /// Checks the values; returns the key and what is wrong. No I/O.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self.listen {
            // The endpoint has no authentication: on every interface it would answer on
            // the truck's cellular link too.
            Some(addr) if addr.ip().is_unspecified() => Err((
                "metrics.listen",
                format!(
                    "expected the address of one interface (\"127.0.0.1:{}\" for this machine \
                     only), found {addr}: the endpoint has no authentication and would answer \
                     on every network the truck is on",
                    addr.port()
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_never_on_every_interface() {
        assert_eq!(MetricsConfig::default().listen, None);
        assert!(MetricsConfig::default().check().is_ok());
        let local = MetricsConfig {
            listen: Some("127.0.0.1:9898".parse().unwrap()),
        };
        assert!(local.check().is_ok());
        for everywhere in ["0.0.0.0:9898", "[::]:9898"] {
            let config = MetricsConfig {
                listen: Some(everywhere.parse().unwrap()),
            };
            let (key, message) = config.check().unwrap_err();
            assert_eq!(key, "metrics.listen");
            assert!(message.contains("127.0.0.1:9898"), "{message}");
        }
    }
}
