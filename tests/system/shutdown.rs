//! SIGTERM during a run drains every task within the deadline and exits 0.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Lines, sim_config, vigil, wait_with_limit, write_file};

#[test]
fn sigterm_during_a_run_drains_every_task_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "vigil.toml",
        &(sim_config("speed = 50.0\nscenario = \"coolant-loss\"\nfault_at = \"1m\"")
            + "[shutdown]\ndeadline = \"3s\"\n"),
    );
    let mut child = vigil()
        .args(["run", "--config", config.to_str().unwrap()])
        .env("VIGIL_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = Lines::of(child.stderr.take().unwrap());
    let started = stderr.wait_for("pipeline_started", Duration::from_secs(30));
    assert!(
        started.is_some(),
        "the agent did not start: {:?}",
        stderr.seen
    );

    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    // The deadline is 3 s; the limit here only catches a hang.
    let status =
        wait_with_limit(child, Duration::from_secs(20)).expect("vigil exits after SIGTERM");
    let lines = stderr.rest(Duration::from_secs(5)).join("\n");
    assert_eq!(status.code(), Some(0), "{lines}");
    assert!(lines.contains("shutdown_complete"), "{lines}");
    assert!(lines.contains("tasks_left=0"), "{lines}");
    for task in [
        "source:simulator",
        "decode",
        "detect",
        "alarm",
        "batch",
        "outbound",
    ] {
        assert!(
            lines.contains(&format!("event=\"task_finished\" task=\"{task}\"")),
            "{task} drained: {lines}"
        );
    }
}
