//! Talks to systemd when it supervises the agent: readiness, the watchdog and stopping
//! (the `sd_notify` protocol, written by hand on a Unix datagram socket).
//!
//! The packaged unit (`deploy/vigil.service`) is `Type=notify` with `WatchdogSec=`: systemd
//! counts the agent as started only after [`Notifier::ready`], and restarts it when no
//! [`Notifier::ping`] arrives within the watchdog time. Outside systemd (`$NOTIFY_SOCKET`
//! unset: a terminal, the demo, tests) every call is a no-op that returns `Ok`.
//!
//! Invariants:
//! - Never blocks: the socket is non-blocking, and a full queue at systemd's end is an error
//!   for the caller to log, never a stalled tokio worker.
//! - Never fails the agent: errors are returned for logging; nothing here panics or exits.
//! - Pings must prove health. Whoever calls [`Notifier::ping`] must check that the pipeline
//!   is whole (every stage's task alive) and ping from a task on the agent's own runtime, so a
//!   wedged runtime stops the pings; never from a free-running thread. At
//!   [`Notifier::watchdog_interval`] or more often.
//!
//! Where the calls belong in `vigil run` (errors are logged, never fatal):
//!
//! ```text
//! let notifier = Notifier::from_env()               // at start, before any task
//! Pipeline::start(..)  ->  notifier.ready()          // every stage is running
//! every notifier.watchdog_interval():                // a task of its own, if Some
//!     if every stage's task is still alive           // not "if readings came": a parked
//!     -> notifier.ping()                             // truck's bus may be silent for hours
//! shutdown token cancelled  ->  notifier.stopping()  // before draining
//! ```
//!
//! Protocol: `sd_notify(3)`. Each message is newline-separated `KEY=VALUE` lines in one
//! datagram to the socket named by `$NOTIFY_SOCKET`: a filesystem path, or an abstract
//! name written with a leading `@`. The watchdog time is `$WATCHDOG_USEC` (microseconds);
//! it is meant for this process only when `$WATCHDOG_PID` is unset or equals our pid.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Why a message could not be given to systemd. The agent logs it and carries on.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "$NOTIFY_SOCKET is {0:?}, which is neither a socket path nor an @abstract name; \
         run the agent under systemd with Type=notify, or unset NOTIFY_SOCKET"
    )]
    UnsupportedSocket(OsString),
    #[error("cannot create a socket to talk to systemd: {0}")]
    Socket(#[source] io::Error),
    #[error(
        "cannot send {message:?} to systemd at {socket:?}: {source}; \
         check that systemd is still running the unit (systemctl status vigil)"
    )]
    Send {
        message: &'static str,
        socket: OsString,
        #[source]
        source: io::Error,
    },
}

/// Sends state changes to systemd, or does nothing when systemd is not listening.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for error messages.
    name: OsString,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. The variables are left
    /// in place (removing them is `unsafe` in a threaded process); the agent starts no
    /// child processes that could misuse them.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        Notifier::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        )
    }

    /// A notifier that talks to no one: for the demo and for tests.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// As [`Notifier::from_env`], from given values: tests use this, so that none of them
    /// has to change the process environment.
    pub fn from_vars(
        notify_socket: Option<OsString>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
    ) -> Result<Notifier, NotifyError> {
        let Some(name) = notify_socket.filter(|name| !name.is_empty()) else {
            return Ok(Notifier::disabled());
        };
        let address = parse_address(&name)?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        socket.set_nonblocking(true).map_err(NotifyError::Socket)?;
        let for_us = match watchdog_pid {
            None => true,
            Some(pid) => pid.trim().parse::<u32>().ok() == Some(std::process::id()),
        };
        // An unparsable or zero WATCHDOG_USEC means no watchdog, as in libsystemd.
        let watchdog = watchdog_usec
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(Duration::from_micros);
        Ok(Notifier {
            target: Some(Target {
                socket,
                address,
                name,
            }),
            watchdog,
        })
    }

    /// Whether systemd is listening (`$NOTIFY_SOCKET` was set).
    #[cfg(test)]
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The agent has started: every stage runs and the config was good. Sent once at
    /// start, and again when a reload is done.
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1")
    }

    /// The agent is re-reading its config (SIGHUP); [`Self::ready`] follows when it is done.
    pub fn reloading(&self) -> Result<(), NotifyError> {
        self.send("RELOADING=1")
    }

    /// The agent is alive and making progress. Call at least every [`Self::watchdog_interval`].
    pub fn ping(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// The agent has begun its orderly shutdown (drain, flush, disconnect).
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }

    /// How often to [`Self::ping`]: half the unit's `WatchdogSec=`, as `sd_watchdog_enabled(3)`
    /// advises, so one late ping is not yet fatal. `None` when no watchdog is set for us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    fn send(&self, message: &'static str) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        match target
            .socket
            .send_to_addr(message.as_bytes(), &target.address)
        {
            Ok(_) => Ok(()),
            Err(source) => Err(NotifyError::Send {
                message,
                socket: target.name.clone(),
                source,
            }),
        }
    }
}

fn parse_address(name: &OsString) -> Result<SocketAddr, NotifyError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    let unsupported = || NotifyError::UnsupportedSocket(name.clone());
    match bytes.first() {
        Some(b'/') => {
            SocketAddr::from_pathname(std::path::Path::new(name)).map_err(|_| unsupported())
        }
        #[cfg(target_os = "linux")]
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..]).map_err(|_| unsupported())
        }
        // `vsock:` addresses (systemd for virtual machines) and anything else.
        _ => Err(unsupported()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket standing in for systemd's, and a notifier pointed at it.
    fn systemd_socket(dir: &tempfile::TempDir) -> (UnixDatagram, OsString) {
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (socket, path.into_os_string())
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buffer = [0u8; 256];
        let n = socket.recv(&mut buffer).unwrap();
        String::from_utf8(buffer[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_ready_watchdog_and_stopping_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (systemd, path) = systemd_socket(&dir);
        let notifier = Notifier::from_vars(Some(path), Some("20000000"), None).unwrap();
        assert!(notifier.is_enabled());
        notifier.ready().unwrap();
        notifier.ping().unwrap();
        notifier.stopping().unwrap();
        assert_eq!(receive(&systemd), "READY=1");
        assert_eq!(receive(&systemd), "WATCHDOG=1");
        assert_eq!(receive(&systemd), "STOPPING=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("vigil-test-notify-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&address).unwrap();
        systemd
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::from_vars(Some(format!("@{name}").into()), None, None).unwrap();
        notifier.ready().unwrap();
        assert_eq!(receive(&systemd), "READY=1");
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let (_systemd, path) = systemd_socket(&dir);
        let notifier = Notifier::from_vars(Some(path), Some("30000000"), None).unwrap();
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn watchdog_for_another_process_or_unparsable_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let (_systemd, path) = systemd_socket(&dir);
        let other_pid = (std::process::id() + 1).to_string();
        let ours = std::process::id().to_string();
        let cases = [
            (Some("30000000"), Some(other_pid.as_str()), None),
            (
                Some("30000000"),
                Some(ours.as_str()),
                Some(Duration::from_secs(15)),
            ),
            (Some("0"), None, None),
            (Some("thirty"), None, None),
            (None, None, None),
        ];
        for (usec, pid, expected) in cases {
            let notifier = Notifier::from_vars(Some(path.clone()), usec, pid).unwrap();
            assert_eq!(notifier.watchdog_interval(), expected, "{usec:?} {pid:?}");
        }
    }

    #[test]
    fn without_notify_socket_every_call_is_a_no_op() {
        for socket in [None, Some(OsString::new())] {
            let notifier = Notifier::from_vars(socket, Some("30000000"), None).unwrap();
            assert!(!notifier.is_enabled());
            assert_eq!(notifier.watchdog_interval(), None);
            notifier.ready().unwrap();
            notifier.ping().unwrap();
            notifier.stopping().unwrap();
        }
    }

    #[test]
    fn refuses_addresses_it_cannot_reach() {
        let error = Notifier::from_vars(Some("vsock:2:1234".into()), None, None).unwrap_err();
        assert!(
            matches!(error, NotifyError::UnsupportedSocket(_)),
            "{error}"
        );
    }

    #[test]
    fn a_vanished_socket_is_an_error_to_log_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        let notifier = Notifier::from_vars(Some(path.into_os_string()), None, None).unwrap();
        let error = notifier.ready().unwrap_err();
        assert!(error.to_string().contains("READY=1"), "{error}");
    }
}
