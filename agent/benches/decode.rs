//! Decode throughput on the real truck log (`tests/data/`), one thread, with the project's
//! DBC; then the same log and DBC through cantools (`cantools_decode.py`), side by side.
//!
//! The figure compared is frames/s over every frame of the log (most of which no DBC row
//! names, for both decoders), frames already parsed. Both decode every signal of the DBC;
//! Vigil also reassembles the transport protocol and decodes DM1, which cantools does not.
//!
//! cantools is run from `target/cantools-venv` (created with `python3 -m venv` and
//! `pip install cantools` on first run), or from `$VIGIL_CANTOOLS_PYTHON`. Without Python or
//! network the comparison is skipped with a note; the Vigil figures still print.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_agent::decode::dbc::{self, SignalNames};
use vigil_agent::decode::{Decoded, Decoder};
use vigil_agent::frame::{Input, candump};

const MIN_TIME: Duration = Duration::from_secs(1);
/// Alternating rounds of both decoders; the best of each is reported, which is the figure
/// least disturbed by other work on a shared machine.
const ROUNDS: usize = 3;
/// The target: at least this many times cantools' frames/s.
const TARGET_RATIO: f64 = 10.0;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `round` until `MIN_TIME` has passed; returns rounds per second.
fn rate(mut round: impl FnMut()) -> f64 {
    round(); // warm up
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < MIN_TIME {
        round();
        rounds += 1;
    }
    rounds as f64 / start.elapsed().as_secs_f64()
}

fn parse(lines: &[&str]) -> Vec<Input> {
    let mut first = None;
    let mut inputs = Vec::with_capacity(lines.len());
    for line in lines {
        if let Ok(frame) = candump::parse_line(line, first) {
            first.get_or_insert(frame.at.wall_us);
            inputs.push(Input::Can(frame));
        }
    }
    inputs
}

fn main() {
    let root = workspace();
    let dbc_path = root.join("deploy/dbc/vigil-j1939.dbc");
    let log_path = root.join("tests/data/j1939-truck-css.candump.log");
    let text = std::fs::read_to_string(&log_path).expect("the real truck log");
    let lines: Vec<&str> = text.lines().collect();
    let inputs = parse(&lines);
    let n = inputs.len() as f64;

    let dbc_text = dbc::read_dbc(&dbc_path).unwrap();
    let all =
        dbc::table_from_dbc(&dbc_text, "dbc", &SignalNames::All(&Default::default())).unwrap();
    let mapped = dbc::DbcConfig::default().load().unwrap();

    let decode_rate = |table: &vigil_agent::decode::table::SignalTable| {
        let mut decoder = Decoder::with_signal_table(table.clone(), Arc::default());
        let mut out = Decoded::default();
        n * rate(|| {
            for input in &inputs {
                out.clear();
                decoder.decode_full(black_box(input), &mut out);
                black_box(&out);
            }
        })
    };
    // As the pipeline decodes: up to 64 inputs per call (`recv_many`).
    let batch_rate = |table: &vigil_agent::decode::table::SignalTable| {
        let mut decoder = Decoder::with_signal_table(table.clone(), Arc::default());
        let mut out = Decoded::default();
        n * rate(|| {
            for batch in inputs.chunks(64) {
                out.clear();
                decoder.decode_batch(black_box(batch), &mut out);
                black_box(&out);
            }
        })
    };
    let parse_decode_rate = || {
        let mut decoder = Decoder::with_signal_table(all.clone(), Arc::default());
        let mut out = Decoded::default();
        n * rate(|| {
            let mut first = None;
            for line in &lines {
                if let Ok(frame) = candump::parse_line(black_box(line), first) {
                    first.get_or_insert(frame.at.wall_us);
                    out.clear();
                    decoder.decode_full(&Input::Can(frame), &mut out);
                    black_box(&out);
                }
            }
        })
    };

    println!(
        "decode benchmark: {} frames of {}, DBC {}, best of {ROUNDS} alternating rounds",
        inputs.len(),
        log_path.display(),
        dbc_path.display()
    );
    let (mut vigil_all, mut vigil_mapped, mut vigil_parse) = (0f64, 0f64, 0f64);
    let mut vigil_batch = 0f64;
    let (mut cantools_decode, mut cantools_parse) = (0f64, 0f64);
    let mut cantools_version = None;
    let mut cantools_skipped = None;
    for _ in 0..ROUNDS {
        vigil_all = vigil_all.max(decode_rate(&all));
        vigil_batch = vigil_batch.max(batch_rate(&all));
        vigil_mapped = vigil_mapped.max(decode_rate(&mapped));
        vigil_parse = vigil_parse.max(parse_decode_rate());
        if cantools_skipped.is_some() {
            continue;
        }
        match cantools(&root, &dbc_path, &log_path) {
            Ok(result) => {
                let field = |name: &str| result[name].as_f64().unwrap_or(f64::NAN);
                cantools_decode = cantools_decode.max(field("decode_frames_per_s"));
                cantools_parse = cantools_parse.max(field("parse_decode_frames_per_s"));
                cantools_version = result["cantools"].as_str().map(str::to_owned);
            }
            Err(why) => cantools_skipped = Some(why),
        }
    }
    println!(
        "  vigil    decode, all {} DBC signals      {vigil_all:>12.0} frames/s",
        all.layouts().len()
    );
    println!("  vigil    decode, all, batches of 64         {vigil_batch:>12.0} frames/s");
    println!(
        "  vigil    decode, {} mapped (agent)        {vigil_mapped:>12.0} frames/s",
        mapped.layouts().len()
    );
    println!("  vigil    parse + decode                  {vigil_parse:>12.0} frames/s");
    match cantools_skipped {
        Some(why) => println!("  cantools: skipped ({why})"),
        None => {
            let version = cantools_version.unwrap_or_default();
            println!(
                "  cantools {version:<7} decode                {cantools_decode:>12.0} frames/s"
            );
            println!("  cantools parse + decode                  {cantools_parse:>12.0} frames/s");
            let ratio = vigil_all / cantools_decode;
            let verdict = |r: f64| if r >= TARGET_RATIO { "met" } else { "NOT MET" };
            println!(
                "  ratio, same DBC signals: decode {ratio:.1}x cantools one frame per call, {:.1}x in batches of 64; parse + decode {:.1}x",
                vigil_batch / cantools_decode,
                vigil_parse / cantools_parse,
            );
            println!(
                "  target >= {TARGET_RATIO}x cantools: {} in batches (how the pipeline should call it), {} one frame per call",
                verdict(vigil_batch / cantools_decode),
                verdict(ratio)
            );
        }
    }
}

/// Runs the cantools script, installing cantools into a venv under target/ if needed.
fn cantools(root: &Path, dbc: &Path, log: &Path) -> Result<serde_json::Value, String> {
    let python = match std::env::var_os("VIGIL_CANTOOLS_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let venv = root.join("target/cantools-venv");
            let python = venv.join("bin/python");
            if !python.exists() {
                eprintln!("creating {} and installing cantools", venv.display());
                run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
                run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "cantools"]))?;
            }
            python
        }
    };
    let script = root.join("agent/benches/cantools_decode.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(dbc)
        .arg(log)
        .arg(MIN_TIME.as_secs_f64().to_string())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("{cmd:?} failed: {status}"))
}
