//! SIGHUP reads the config file again while the agent runs: a changed limit and the log's
//! level apply at once (systemd is told RELOADING=1, then READY=1), a change only a restart
//! can make is named, and a broken file is refused while the agent runs on with the config
//! it had.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Lines, sim_config, vigil, wait_with_limit, write_file};

const LIMIT: Duration = Duration::from_secs(30);

fn hangup(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn next_message(socket: &UnixDatagram) -> Option<String> {
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn config(tank_warning: f64, extra: &str) -> String {
    sim_config("speed = 20.0")
        + &format!("[detect.tank.gasoline]\nwarning = {tank_warning:.1}\ncritical = 90.0\n{extra}")
}

#[test]
fn sighup_applies_a_changed_limit_names_what_needs_a_restart_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    // The tanks sit near the air's temperature: no alert at 80 degC, one at once at 5.
    let file = write_file(dir.path(), "vigil.toml", &config(80.0, ""));
    let mut child = vigil()
        .args(["run", "--config", file.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = Lines::of(child.stderr.take().unwrap());
    assert_eq!(next_message(&socket).as_deref(), Some("READY=1"));

    write_file(dir.path(), "vigil.toml", &config(5.0, ""));
    hangup(&child);
    assert_eq!(next_message(&socket).as_deref(), Some("RELOADING=1"));
    assert_eq!(next_message(&socket).as_deref(), Some("READY=1"));
    let reloaded = log.wait_for("config_reloaded", LIMIT).expect("reloaded");
    assert!(reloaded.contains("tuning_changed=true"), "{reloaded}");
    let tank_alert = |line: &String| {
        line.contains("alert_raised")
            && line.contains("signal=Vehicle.Cargo.Tank.")
            && line.contains("kind=high_limit")
            && line.contains("threshold=5.0")
    };
    assert!(
        !log.seen.iter().any(tank_alert),
        "no alert at 5 degC before the reload: {:#?}",
        log.seen
    );
    log.wait_for("alert_raised", LIMIT)
        .filter(tank_alert)
        .unwrap_or_else(|| panic!("the new limit raises a tank alert: {:#?}", log.seen));

    // A broken file is refused, with the file and the key; the agent runs on.
    write_file(
        dir.path(),
        "vigil.toml",
        "[detect.engine]\ncoolant_warning = \"hot\"\n",
    );
    hangup(&child);
    let refused = log
        .wait_for("config_reload_refused", LIMIT)
        .expect("refused");
    assert!(
        refused.contains(file.to_str().unwrap())
            && refused.contains("detect.engine.coolant_warning"),
        "{refused}"
    );

    // The log's level applies at once: the debug lines of the shutdown below show it.
    write_file(
        dir.path(),
        "vigil.toml",
        &config(5.0, "[log]\nlevel = \"debug\"\n"),
    );
    hangup(&child);
    let changed = log.wait_for("log_level_changed", LIMIT).expect("applied");
    assert!(
        changed.contains("level=\"debug\"") || changed.contains("level=debug"),
        "{changed}"
    );

    // A new identity needs a restart: named, not applied; the limit still applies.
    let renamed = config(5.0, "[log]\nlevel = \"debug\"\n").replace("test-truck", "other-truck");
    write_file(dir.path(), "vigil.toml", &renamed);
    hangup(&child);
    let restart = log
        .wait_for("config_reload_needs_restart", LIMIT)
        .expect("a restart is asked for");
    assert!(restart.contains("sections=vehicle"), "{restart}");
    let reloaded = log.wait_for("config_reloaded", LIMIT).expect("reloaded");
    assert!(reloaded.contains("tuning_changed=false"), "{reloaded}");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_with_limit(child, LIMIT).expect("vigil exits after SIGTERM");
    let rest = log.rest(Duration::from_secs(1));
    assert_eq!(status.code(), Some(0), "{rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l.contains(" DEBUG ") && l.contains("task_finished")),
        "debug lines once the level was reloaded: {rest:#?}"
    );
}
