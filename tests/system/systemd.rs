//! Under systemd (`Type=notify`, `WatchdogSec=`): `vigil run` says READY=1 once every stage
//! runs, pings the watchdog while they all run, and says STOPPING=1 when told to stop.
//! systemd's side is played by a real Unix datagram socket named in `$NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{sim_config, vigil, wait_with_limit, write_file};

/// Receives the next notification, at most `limit` later (the limit only bounds a hang).
fn next_message(socket: &UnixDatagram, limit: Duration) -> Option<String> {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn run_reports_ready_pings_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let config = write_file(dir.path(), "vigil.toml", &sim_config("speed = 10.0"));
    let child = vigil()
        .args(["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        // 200 ms watchdog: the agent pings every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(30);
    assert_eq!(next_message(&socket, limit).as_deref(), Some("READY=1"));
    for _ in 0..3 {
        assert_eq!(next_message(&socket, limit).as_deref(), Some("WATCHDOG=1"));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // Pings already in flight may arrive first; STOPPING=1 must follow.
    let stopping = (0..10).find_map(|_| next_message(&socket, limit).filter(|m| m != "WATCHDOG=1"));
    assert_eq!(stopping.as_deref(), Some("STOPPING=1"));
    let status = wait_with_limit(child, limit).expect("vigil exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
}
