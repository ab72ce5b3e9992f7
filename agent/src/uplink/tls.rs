//! Mutual TLS for the uplink: the PEM files, the key's permissions, the rustls client config
//! on the `ring` provider, and plain words for the ways a handshake fails.
//!
//! One crypto provider only (DESIGN.md, dependency notes): rumqttc is built without its
//! aws-lc default and rustls with `ring`. The config is built with that provider explicitly,
//! and [`install_crypto_provider`] also makes it the process default once, so any other
//! rustls user in the process (none today) finds the same one instead of panicking.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::UplinkConfig;

/// Why the TLS settings cannot be used. Each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read {what} {path}: {source}; check the path and that the agent's user may read it"
    )]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} {path} holds no PEM certificate; expected a file beginning with -----BEGIN CERTIFICATE-----"
    )]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error(
        "key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1); expected -----BEGIN PRIVATE KEY----- or similar"
    )]
    NoKey { path: PathBuf },
    #[error(
        "key file {path} is readable by group or others (mode {mode:04o}); the device's private key \
         must be private: run `chmod 600 {path}` (and check its owner)"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error(
        "the device certificate {cert} and key {key} do not go together ({reason}); use the key the certificate was issued for"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("the CA file {path} has no usable CA certificate ({reason})")]
    BadCa { path: PathBuf, reason: String },
}

impl TlsError {
    /// The config key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { what, .. } | TlsError::NoCertificate { what, .. } => match *what {
                "CA file" => "uplink.ca_file",
                "certificate file" => "uplink.cert_file",
                _ => "uplink.key_file",
            },
            TlsError::BadCa { .. } => "uplink.ca_file",
            TlsError::Mismatch { .. } => "uplink.cert_file",
            TlsError::NoKey { .. } | TlsError::KeyPermissions { .. } => "uplink.key_file",
        }
    }
}

/// Makes `ring` the process's default crypto provider, once. Harmless if something else
/// installed one first: the uplink passes its provider explicitly anyway.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Refuses a key file that group or others may read (or write).
pub fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        what: "key file",
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// What the `[uplink]` PEM files give: the rustls client config, and when the device
/// certificate expires (`check-config` warns ahead of it; the status message reports it).
#[derive(Clone, Debug)]
pub struct DeviceTls {
    pub config: Arc<ClientConfig>,
    /// The device certificate's `notAfter`; `None` if it could not be read from the DER.
    pub certificate_expires: Option<SystemTime>,
}

/// Builds the rustls client config from the `[uplink]` files: the CA as the only trust
/// anchor, the device certificate and key for client authentication, ALPN on port 443.
pub fn client_config(config: &UplinkConfig) -> Result<Arc<ClientConfig>, TlsError> {
    device_tls(config).map(|tls| tls.config)
}

/// [`client_config`], with the device certificate's expiry.
pub fn device_tls(config: &UplinkConfig) -> Result<DeviceTls, TlsError> {
    let missing = |what| TlsError::Read {
        what,
        path: PathBuf::new(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "not set in [uplink]"),
    };
    let ca_file = config
        .ca_file
        .as_deref()
        .ok_or_else(|| missing("CA file"))?;
    let cert_file = config
        .cert_file
        .as_deref()
        .ok_or_else(|| missing("certificate file"))?;
    let key_file = config
        .key_file
        .as_deref()
        .ok_or_else(|| missing("key file"))?;

    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certificates("CA file", ca_file)?);
    if added == 0 {
        return Err(TlsError::BadCa {
            path: ca_file.to_owned(),
            reason: format!("{ignored} certificate(s) could not be parsed"),
        });
    }
    let chain = certificates("certificate file", cert_file)?;
    let certificate_expires = super::expiry::not_after(&chain[0]);
    check_key_permissions(key_file)?;
    let key_pem = read("key file", key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key_file.to_owned(),
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::Mismatch {
            cert: cert_file.to_owned(),
            key: key_file.to_owned(),
            reason: e.to_string(),
        })?;
    tls.alpn_protocols = config.alpn();
    Ok(DeviceTls {
        config: Arc::new(tls),
        certificate_expires,
    })
}

/// Says in plain words why a connection attempt failed, and what to check. rumqttc wraps
/// rustls's error in an `io::Error`; this digs it out.
pub fn explain(error: &rumqttc::ConnectionError) -> String {
    use rumqttc::ConnectionError as C;
    if let Some(e) = find_rustls(error) {
        return explain_rustls(&e);
    }
    // Some of rumqttc's wrappers do not expose their source; rustls's alert names are in
    // the text all the same.
    let text = error.to_string();
    for (name, alert) in [
        (
            "CertificateExpired",
            rustls::AlertDescription::CertificateExpired,
        ),
        ("UnknownCA", rustls::AlertDescription::UnknownCA),
        ("BadCertificate", rustls::AlertDescription::BadCertificate),
        (
            "CertificateRequired",
            rustls::AlertDescription::CertificateRequired,
        ),
        (
            "HandshakeFailure",
            rustls::AlertDescription::HandshakeFailure,
        ),
    ] {
        if text.contains(&format!("alert: {name}"))
            || text.contains(&format!("AlertReceived({name})"))
        {
            return explain_rustls(&rustls::Error::AlertReceived(alert));
        }
    }
    match error {
        C::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!(
                "{e}: nothing listens at the broker's address; check uplink.endpoint and uplink.port"
            )
        }
        C::Io(_) | C::MqttState(_)
            if text.contains("closed by peer")
                || text.contains("Broken pipe")
                || text.contains("reset by peer")
                || text.contains("UnexpectedEof")
                || text.contains("eof") =>
        {
            format!(
                "{text}: the broker closed the connection; if this happens at every connect it \
                 refuses the device certificate (missing, expired or from another CA), or it \
                 expects TLS where insecure_plain_tcp is set"
            )
        }
        C::ConnectionRefused(code) => format!(
            "the broker refused the MQTT connection ({code:?}); check the thing's policy allows \
             iot:Connect for this client id (vehicle.id)"
        ),
        C::NetworkTimeout => {
            "no answer from the broker in time; check the network and uplink.endpoint".into()
        }
        other => other.to_string(),
    }
}

/// The rustls error somewhere in an error's chain, looking inside `io::Error`s too (their
/// `source` skips the error they wrap).
fn find_rustls(error: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.clone());
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner.clone());
        }
        current = e.source();
    }
    None
}

fn explain_rustls(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as CE, Error as E};
    match e {
        E::InvalidCertificate(CE::UnknownIssuer) | E::InvalidCertificate(CE::BadSignature) => {
            format!(
                "TLS: {e}: the broker's certificate is not signed by the CA in uplink.ca_file; use the \
             broker's CA (AmazonRootCA1.pem for AWS IoT Core)"
            )
        }
        E::InvalidCertificate(CE::NotValidForName)
        | E::InvalidCertificate(CE::NotValidForNameContext { .. }) => format!(
            "TLS: {e}: the broker's certificate is not for uplink.endpoint; check the host name"
        ),
        E::InvalidCertificate(CE::Expired) | E::InvalidCertificate(CE::ExpiredContext { .. }) => {
            format!("TLS: {e}: the broker's certificate has expired (or this clock is wrong)")
        }
        E::AlertReceived(A::CertificateExpired) => format!(
            "TLS: {e}: the broker says the device certificate (uplink.cert_file) has expired; \
             renew it (or check this gateway's clock)"
        ),
        E::AlertReceived(A::UnknownCA) | E::AlertReceived(A::BadCertificate) => format!(
            "TLS: {e}: the broker does not trust the device certificate (uplink.cert_file); \
             register it with the broker (AWS IoT: activate it and attach it to the thing)"
        ),
        E::AlertReceived(A::CertificateRequired) | E::AlertReceived(A::HandshakeFailure) => {
            format!(
                "TLS: {e}: the broker wants a device certificate it accepts; check \
                 uplink.cert_file and uplink.key_file"
            )
        }
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_readable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("device.key");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let message = check_key_permissions(&key).unwrap_err().to_string();
        assert!(message.contains("mode 0644"), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_key_permissions(&key).unwrap();
    }

    #[test]
    fn handshake_failures_say_which_file_to_look_at() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(explain_rustls(&unknown).contains("uplink.ca_file"));
        let expired = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateExpired);
        assert!(explain_rustls(&expired).contains("expired"));
    }
}
