//! `vigil decode` and `vigil run` on logs as users bring them: candump's printed form on
//! standard input, a log with one bad byte, a file with no frame, a log that is not there.
//! Each ends with one summary line counting what was read and skipped.

use std::io::Write;
use std::process::Stdio;

use crate::{run, vigil, write_file};

const DBC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dbc/vigil-j1939.dbc");
const CSS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/j1939-truck-css.candump.log"
);
const SENTRY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/j1939-truck-sentry-normal.candump.txt"
);

/// The last line of `stderr`: the summary.
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn decode_reads_candumps_printed_form_from_standard_input() {
    let mut child = vigil()
        .args(["decode", "--dbc", DBC, "--input", "-", "--format", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::fs::read(SENTRY).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || stdin.write_all(&log));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary = last_line(&out.stderr);
    assert!(
        summary.starts_with("decoded 19957 frames (candump printed) into ")
            && summary.contains("lines skipped: 0 too long, 0 bad bytes, 0 malformed")
            && summary.contains("TP sessions 44 opened, 44 completed"),
        "{summary}"
    );
    let rows = String::from_utf8(out.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert_eq!(first["origin"], "can0/sa00", "{first}");
}

#[test]
fn one_bad_byte_in_line_2_is_one_skipped_line_for_decode_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(CSS).unwrap();
    let lines: Vec<&str> = text.lines().take(1002).collect();
    let clean = write_file(dir.path(), "clean.log", &lines.join("\n"));
    let mut bytes = std::fs::read(&clean).unwrap();
    bytes[lines[0].len() + 1 + 30] = 0xFF; // in line 2's data
    let bad = dir.path().join("bad.log");
    std::fs::write(&bad, bytes).unwrap();
    let decode = |log: &std::path::Path| {
        let out = run(&["decode", "--dbc", DBC, "--input", log.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            last_line(&out.stderr),
        )
    };
    let (clean_rows, _) = decode(&clean);
    let (bad_rows, summary) = decode(&bad);
    assert!(
        summary.starts_with("decoded 1001 frames (candump -l)")
            && summary.contains("lines skipped: 0 too long, 1 bad bytes, 0 malformed"),
        "{summary}"
    );
    // Line 2's frame is the only one missing (its readings share no timestamp with others).
    let line2 = lines[1][1..].split(')').next().unwrap();
    let without: Vec<&str> = clean_rows
        .lines()
        .filter(|r| !r.starts_with(line2))
        .collect();
    assert_eq!(bad_rows.lines().collect::<Vec<_>>(), without);

    // The agent replays it to the end and counts the line.
    let config = write_file(
        dir.path(),
        "vigil.toml",
        &format!(
            "[vehicle]\nid = \"bad-byte\"\n\n[source.replay]\npath = \"{}\"\nspeed = 0.0\n",
            bad.display()
        ),
    );
    let agent = run(&["run", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&agent.stderr);
    assert_eq!(agent.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cause=bad_bytes"), "{stderr}");
    assert!(
        stderr.contains("1001 frames (candump -l); lines skipped: 0 too long, 1 bad bytes"),
        "{stderr}"
    );
}

#[test]
fn a_file_without_frames_exits_1_and_a_missing_replay_log_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(dir.path(), "notes.txt", "this is not a CAN log\n");
    let out = run(&["decode", "--dbc", DBC, "--input", empty.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("holds no CAN frame") && stderr.contains("Vector ASC"),
        "{stderr}"
    );
    let blf = write_file(dir.path(), "drive.blf", "LOGG\u{1}\u{2}binary");
    let alerts = dir.path().join("a.jsonl");
    let args = [
        "replay",
        "--input",
        blf.to_str().unwrap(),
        "--model",
        "none",
    ];
    let out = run(&[&args[..], &["--out", alerts.to_str().unwrap()]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Vector BLF") && stderr.contains("can.logconvert"),
        "{stderr}"
    );

    // `vigil run`: a log with no frame fails its source, and the agent exits 1...
    let config = |path: &std::path::Path| {
        write_file(
            dir.path(),
            "vigil.toml",
            &format!(
                "[vehicle]\nid = \"t\"\n\n[source.replay]\npath = \"{}\"\nspeed = 0.0\n",
                path.display()
            ),
        )
    };
    let out = run(&["run", "--config", config(&empty).to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("source_failed") && stderr.contains("holds no CAN frame"),
        "{stderr}"
    );
    // ...and a log that is not there is a bad config: nothing starts.
    let missing = dir.path().join("nowhere.log");
    let out = run(&["run", "--config", config(&missing).to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("source.replay.path") && stderr.contains("nowhere.log"),
        "{stderr}"
    );
    assert!(!stderr.contains("pipeline_started"), "{stderr}");
}

#[test]
fn replay_reads_a_saleae_capture_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("a.jsonl");
    let mut child = vigil()
        .args(["replay", "--input", "-", "--model", "none", "--out"])
        .arg(&alerts)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/j1939-truck-sentry-connection-exhaustion.saleae.csv"
    ))
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || stdin.write_all(&log));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary = last_line(&out.stderr);
    assert!(
        summary.starts_with("replayed ")
            && summary.contains("30 frames (Saleae CSV)")
            && summary.contains("12 bus errors"),
        "{summary}"
    );
}
