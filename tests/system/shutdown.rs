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

/// A stage that ends while the truck's inputs still run (here the uplink, refused plain
/// TCP it was not allowed) stops the whole pipeline with an error naming it, so `vigil run`
/// exits 1 and systemd starts it afresh: never a live agent with a dead stage.
#[test]
fn a_stage_that_ends_stops_the_agent_instead_of_running_without_it() {
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;
    use vigil_agent::pipeline::{Outbound, Pipeline, RunError, Stages, Taps};
    use vigil_agent::source::{Injected, Source};
    use vigil_agent::spool::SpoolConfig;
    use vigil_agent::uplink::UplinkConfig;

    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_inputs, kept) = mpsc::channel(1);
        let stages = Stages {
            outbound: Some(Outbound {
                spool: SpoolConfig::new(dir.path()),
                uplink: UplinkConfig {
                    endpoint: "127.0.0.1".into(),
                    insecure_plain_tcp: false,
                    ..UplinkConfig::default()
                },
                tls: None,
            }),
            ..Stages::builtin()
        };
        let sources: Vec<Box<dyn Source>> = vec![Box::new(Injected(kept))];
        let shutdown = CancellationToken::new();
        let pipeline = Pipeline::start(stages, sources, shutdown.clone(), Taps::default()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(20), pipeline.join())
            .await
            .expect("the pipeline stops by itself");
        match ended {
            Err(RunError::StageEnded { stage }) => assert_eq!(stage, "uplink"),
            other => panic!("expected the uplink's end to stop the pipeline, got {other:?}"),
        }
        assert!(
            shutdown.is_cancelled(),
            "the other stages were told to stop"
        );
    });
}
