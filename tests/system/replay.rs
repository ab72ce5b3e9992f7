//! A source that ends by itself (a replayed log) drains the pipeline and the agent exits 0
//! without being told to stop.

use crate::{run, write_file};

#[test]
fn run_on_a_replayed_truck_log_ends_by_itself_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/j1939-truck-css.candump.log"
    );
    let config = write_file(
        dir.path(),
        "vigil.toml",
        &format!(
            "[vehicle]\nid = \"replay-truck\"\n\n[source.replay]\npath = \"{log}\"\nspeed = 0.0\n"
        ),
    );
    let out = run(&["run", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("event=\"source_ended\" source=\"replay\""),
        "{stderr}"
    );
    assert!(stderr.contains("tasks_left=0"), "{stderr}");
    // The summary line counts what the decoder made of the log: it must be most of its
    // 14,245 frames of the mapped parameter groups, not nothing.
    let readings: u64 = stderr
        .split("0 left; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line: {stderr}"));
    assert!(readings > 14_000, "{readings} readings from the real log");
}
