//! How long the suite runs, and the figures it reports.
//!
//! The short profile runs in CI; `VIGIL_OUTAGE_FULL=1` selects the full one (more kills,
//! longer outages). Every figure is printed as `outage figure | phase | name | value` and,
//! when `VIGIL_OUTAGE_FIGURES` names a file, appended to it (scripts/outage-suite.sh makes
//! its table from that file).

use std::io::Write;

/// The sizes of one run of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub name: &'static str,
    /// SIGKILLs with the broker up, and with it stopped.
    pub kills_up: u32,
    pub kills_down: u32,
    /// Records the fleet receives before the broker is stopped (the steady phase).
    pub steady_records: u64,
    /// Records the spool holds before the stopped broker comes back.
    pub outage_records: u64,
    /// Times the broker is frozen, and whether each freeze waits for a ping's answer (the
    /// worst moment for the agent: the next ping is a whole keep-alive away).
    pub freezes: u32,
    /// Records evicted from the full spool before it is measured and drained.
    pub evictions: u64,
}

impl Profile {
    pub fn get() -> Profile {
        if std::env::var_os("VIGIL_OUTAGE_FULL").is_some_and(|v| v != "0") {
            Profile {
                name: "full",
                kills_up: 100,
                kills_down: 20,
                steady_records: 300,
                outage_records: 1_500,
                freezes: 3,
                evictions: 500,
            }
        } else {
            Profile {
                name: "short",
                kills_up: 8,
                kills_down: 2,
                steady_records: 100,
                outage_records: 150,
                freezes: 1,
                evictions: 20,
            }
        }
    }
}

/// Prints one figure (and appends it to `VIGIL_OUTAGE_FIGURES`).
pub fn figure(phase: &str, name: &str, value: impl std::fmt::Display) {
    let line = format!("outage figure | {phase} | {name} | {value}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("VIGIL_OUTAGE_FIGURES") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("VIGIL_OUTAGE_FIGURES can be written");
        writeln!(file, "{line}").unwrap();
    }
}

/// xorshift64*: random kill points, replayable from `VIGIL_OUTAGE_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("VIGIL_OUTAGE_SEED")
            .ok()
            .map(|v| v.parse().expect("VIGIL_OUTAGE_SEED is a number"))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("outage suite: VIGIL_OUTAGE_SEED={seed}");
        Rng(seed)
    }

    /// A number in `1..=n`.
    pub fn upto(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        1 + self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
