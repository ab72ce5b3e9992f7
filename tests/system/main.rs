//! System tests: the real `vigil` binary, started as a child process.

mod alarm;
mod broker;
mod completions;
mod config_errors;
mod dataset;
mod decode;
mod demo;
mod fleet;
mod fleet_loop;
mod jobs;
mod metrics;
mod model_store;
mod outage;
mod provision;
mod reload;
mod replay;
mod schema;
mod shutdown;
mod systemd;
mod uplink;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub fn vigil() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.env_remove("VIGIL_LOG").stdin(Stdio::null());
    command
}

/// Runs `vigil` with `args` to completion.
pub fn run(args: &[&str]) -> Output {
    vigil().args(args).output().expect("the vigil binary runs")
}

/// Writes `text` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// Reads a child's stderr on a thread, line by line, so a test can wait for a line.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn of(stream: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; `None` if the stream ends or `limit` passes
    /// first (the limit only bounds a hang: the test fails, it never sleeps to synchronise).
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let end = std::time::Instant::now() + limit;
        loop {
            let left = end.checked_duration_since(std::time::Instant::now())?;
            let line = self.rx.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    /// Everything until the stream ends.
    pub fn rest(&mut self, limit: Duration) -> &[String] {
        let end = std::time::Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        &self.seen
    }
}

/// Waits for a child to exit, at most `limit`; `None` means it was still running (and is killed).
pub fn wait_with_limit(mut child: Child, limit: Duration) -> Option<ExitStatus> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    match rx.recv_timeout(limit) {
        Ok(()) => Some(
            waiter
                .join()
                .expect("waiter thread")
                .expect("wait for vigil"),
        ),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            None
        }
    }
}

/// The Python the system tests run: `VIGIL_TEST_PYTHON`, or test.sh's venv, which holds
/// `prometheus_client` (tests/requirements.txt) and train.py's numpy and onnx
/// (models/requirements.txt).
pub fn python() -> PathBuf {
    let python = std::env::var_os("VIGIL_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/py-venv/bin/python3"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh once, or `python3 -m venv target/tools/py-venv && \
         target/tools/py-venv/bin/pip install --require-hashes -r tests/requirements.txt \
         -r models/requirements.txt`, or point VIGIL_TEST_PYTHON at a Python with \
         prometheus_client, numpy and onnx",
        python.display()
    );
    python
}

/// A config that runs the simulated truck with the given simulator keys.
pub fn sim_config(simulator_keys: &str) -> String {
    format!("[vehicle]\nid = \"test-truck\"\n\n[source.simulator]\n{simulator_keys}\n")
}
