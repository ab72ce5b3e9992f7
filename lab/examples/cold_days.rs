//! What the default detect stage (the built-in model and the rules) raises on normal drives
//! on cold days, below the 2 to 30 degC days of the simulator's usual vehicles: the evidence
//! behind the cold-day claim in `models/README.md`.
//!
//! Usage: `cargo run --release -p vigil-lab --example cold_days -- [FIRST LAST]` simulates
//! one normal hour per seed (default 40001 to 40120, apart from every other seed range), on
//! a day whose mean is drawn from -15 to 2 degC, half of them with every bus quirk
//! (`vigil_lab::eval::QUIRKS`), and prints each incident raised, then the count per 100 h.

use std::sync::Arc;
use std::time::Duration;

use vigil_agent::detect::Model;
use vigil_agent::detect::alert::AlertEvent;
use vigil_lab::eval::{QUIRKS, quirks};
use vigil_lab::{Judge, dataset};
use vigil_sim::{Scenario, TruckParams};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let first = args.next().transpose()?.unwrap_or(40001);
    let last = args.next().transpose()?.unwrap_or(40120);
    let judge = Judge {
        model: Some(Arc::new(Model::builtin()?)),
        ..Judge::default()
    };
    let all: Vec<String> = QUIRKS.iter().map(|q| q.to_string()).collect();
    let hour = Duration::from_secs(3600);
    let (mut hours, mut raised) = (0u64, 0u64);
    for seed in first..=last {
        let base = dataset::cold_params(seed);
        let params = TruckParams {
            quirks: if seed % 2 == 0 {
                quirks(&all, seed).map_err(anyhow::Error::msg)?
            } else {
                base.quirks.clone()
            },
            ..base
        };
        let ambient = params.ambient_mean_c;
        let mut detector = judge.detector();
        let mut events = Vec::new();
        dataset::simulate(params, Scenario::normal(), hour, |r| {
            detector.observe(r, &mut events);
            for e in events.drain(..) {
                if let AlertEvent::Raised(a) = e {
                    raised += 1;
                    println!(
                        "seed {seed} ({ambient:.1} degC day): {} {} {:.1} at {} s",
                        a.signal,
                        a.kind,
                        a.value,
                        a.raised_at.mono.as_secs()
                    );
                }
            }
        })?;
        hours += 1;
    }
    println!(
        "{raised} incidents in {hours} h ({:.2} per 100 h)",
        raised as f64 * 100.0 / hours as f64
    );
    Ok(())
}
