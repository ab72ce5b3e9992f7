//! The spool's crash-test writer: `vigil-spool-soak DIR [RATE]`.
//!
//! Appends records to the spool in DIR at RATE records per second (0 or absent: as fast as
//! it can) until killed, printing `appended <seq>` and `flushed <seq>` lines on stdout (see
//! `vigil::spool::soak`). `tests/spool_crash.rs` kills it with SIGKILL at random points.
//! A stand-in for `vigil spool soak` until the CLI grows that subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: vigil-spool-soak DIR [RATE]");
        return ExitCode::from(2);
    };
    let rate = match args.next().map(|r| r.to_string_lossy().parse::<u32>()) {
        None => 0,
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("RATE must be records per second: {e}");
            return ExitCode::from(2);
        }
    };
    match vigil::spool::soak::run(&dir, rate, std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-spool-soak: {e}");
            ExitCode::FAILURE
        }
    }
}
