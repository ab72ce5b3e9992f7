//! A bad config fails at start with the file, the key, what was expected and what was
//! found, exit code 2, and nothing started.

use crate::{run, sim_config, write_file};

/// (what is wrong, config text, key named, text that must appear in the message)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "unknown key",
        "[vehicle]\nid = \"t\"\ncolour = \"red\"\n[source.simulator]\n",
        "vehicle.colour",
        "unknown field `colour`",
    ),
    (
        "wrong type",
        "[vehicle]\ncompartments = \"three\"\n[source.simulator]\n",
        "vehicle.compartments",
        "invalid type: string \"three\"",
    ),
    (
        "bad duration",
        "[source.simulator]\nfault_at = \"soon\"\n",
        "source.simulator.fault_at",
        "found \"soon\"",
    ),
    (
        "unknown scenario",
        "[source.simulator]\nscenario = \"meteor\"\n",
        "source.simulator.scenario",
        "meteor",
    ),
    (
        "no source",
        "[vehicle]\nid = \"t\"\n",
        "source",
        "expected at least one source",
    ),
];

#[test]
fn each_kind_of_bad_config_is_named_and_exits_2_with_nothing_started() {
    let dir = tempfile::tempdir().unwrap();
    for (what, text, key, detail) in CASES {
        let path = write_file(dir.path(), "vigil.toml", text);
        let file = path.to_str().unwrap();
        for args in [vec!["check-config", file], vec!["run", "--config", file]] {
            let out = run(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} ({args:?}): {stderr}");
            assert!(stderr.contains(file), "{what}: names the file: {stderr}");
            assert!(
                stderr.contains(&format!("key `{key}`")),
                "{what}: names the key {key}: {stderr}"
            );
            assert!(stderr.contains(detail), "{what}: says {detail:?}: {stderr}");
            assert!(
                !stderr.contains("pipeline_started"),
                "{what}: nothing may start: {stderr}"
            );
        }
    }
}

#[test]
fn a_missing_file_is_named_and_exits_2() {
    let out = run(&["run", "--config", "/nonexistent/vigil.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read config file /nonexistent/vigil.toml"),
        "{stderr}"
    );
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn the_printed_default_config_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["print-default-config"]);
    assert!(out.status.success());
    let path = write_file(
        dir.path(),
        "default.toml",
        &String::from_utf8(out.stdout).unwrap(),
    );
    let check = run(&["check-config", path.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let good = write_file(dir.path(), "sim.toml", &sim_config("speed = 0.0"));
    assert!(
        run(&["check-config", good.to_str().unwrap()])
            .status
            .success()
    );
}
