//! How long a healthy coolant holds one reading, and how far the oil moves meanwhile: the
//! evidence behind the stuck-coolant and above-band rules in `config/default.toml`.
//!
//! Usage: `cargo run --release -p vigil-lab --example coolant_holds -- [FIRST LAST]` simulates
//! one normal hour per seed (default 20001 to 24800, apart from the training, calibration
//! and evaluation seeds) and prints, for holds below and from the thermostat's opening
//! (82 degC), the most the oil moved during holds of at least each length, and in how many
//! drives such a hold saw the oil move 11 degC or more (`stuck_companion_move`). The
//! default 4800 h take about 4 minutes on one core.

use std::collections::BTreeMap;
use std::time::Duration;

use vigil_agent::detect::RulesConfig;
use vigil_agent::signals::{COOLANT_TEMPERATURE, OIL_TEMPERATURE};
use vigil_lab::dataset;
use vigil_sim::Scenario;

/// Hold lengths reported, seconds.
const LENGTHS: [usize; 10] = [60, 120, 180, 240, 300, 360, 420, 480, 540, 600];

/// One run of a single coolant reading: its value, length (s) and the oil's range meanwhile.
struct Hold {
    value: f64,
    seconds: usize,
    oil_move: f64,
}

/// The coolant and oil once a second (the last reading of each second, carried over gaps).
fn drive(seed: u64) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut by_second: BTreeMap<u64, (Option<f64>, Option<f64>)> = BTreeMap::new();
    let hour = Duration::from_secs(3600);
    dataset::simulate(dataset::truck_params(seed), Scenario::normal(), hour, |r| {
        let slot = by_second.entry(r.at.mono.as_secs()).or_default();
        match r.signal.as_str() {
            COOLANT_TEMPERATURE => slot.0 = r.value().or(slot.0),
            OIL_TEMPERATURE => slot.1 = r.value().or(slot.1),
            _ => {}
        }
    })?;
    let (mut coolant, mut oil) = (f64::NAN, f64::NAN);
    Ok((0..hour.as_secs())
        .map(|s| {
            let (c, o) = by_second.get(&s).copied().unwrap_or_default();
            coolant = c.unwrap_or(coolant);
            oil = o.unwrap_or(oil);
            (coolant, oil)
        })
        .collect())
}

fn holds(samples: &[(f64, f64)]) -> Vec<Hold> {
    samples
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| !run[0].0.is_nan())
        .map(|run| {
            let oil = run.iter().map(|s| s.1).filter(|o| !o.is_nan());
            let (lo, hi) = oil.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), o| {
                (lo.min(o), hi.max(o))
            });
            Hold {
                value: run[0].0,
                seconds: run.len(),
                oil_move: if hi >= lo { hi - lo } else { 0.0 },
            }
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let first = args.next().transpose()?.unwrap_or(20001);
    let last = args.next().transpose()?.unwrap_or(24800);
    let rules = RulesConfig::default();
    let (opens, far) = (rules.coolant_thermostat_opens, rules.stuck_companion_move);
    // [cold, warm][length]: the most oil move, and the drives that reached `far`.
    let mut most = [[0.0f64; LENGTHS.len()]; 2];
    let mut drives_far = [[0usize; LENGTHS.len()]; 2];
    let (mut hottest, mut longest_at_95) = (f64::NEG_INFINITY, 0usize);
    for seed in first..=last {
        let samples = drive(seed)?;
        let mut reached = [[false; LENGTHS.len()]; 2];
        for hold in holds(&samples) {
            let warm = usize::from(hold.value >= opens);
            for (i, &length) in LENGTHS.iter().enumerate() {
                if hold.seconds > length {
                    most[warm][i] = most[warm][i].max(hold.oil_move);
                    reached[warm][i] |= hold.oil_move >= far;
                }
            }
        }
        for (count, hit) in drives_far
            .iter_mut()
            .flatten()
            .zip(reached.iter().flatten())
        {
            *count += usize::from(*hit);
        }
        hottest = samples.iter().map(|s| s.0).fold(hottest, f64::max);
        let at_95 = samples.chunk_by(|a, b| (a.0 >= 95.0) == (b.0 >= 95.0));
        let at_95 = at_95.filter(|run| run[0].0 >= 95.0).map(<[_]>::len);
        longest_at_95 = longest_at_95.max(at_95.max().unwrap_or(0));
    }
    println!("{} normal hours, seeds {first} to {last}", last - first + 1);
    println!("hottest coolant reading: {hottest} degC; longest at 95 or more: {longest_at_95} s");
    println!("hold over | below {opens}: most oil move, drives >= {far} | from {opens}: the same");
    for (i, length) in LENGTHS.iter().enumerate() {
        println!(
            "{length:>6} s | {:>5.1} degC {:>5} | {:>5.1} degC {:>5}",
            most[0][i], drives_far[0][i], most[1][i], drives_far[1][i]
        );
    }
    Ok(())
}
