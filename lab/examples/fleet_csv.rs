//! Writes a small simulated fleet as the 1 Hz CSV a fleet's own logs become, with only the
//! columns asked for: the data `models/test_train.py` gives `train.py --data`.
//!
//! Usage: `cargo run -p vigil-lab --example fleet_csv -- OUT_DIR FIRST_SEED VEHICLES HOURS SIGNAL,...`
//! writes `OUT_DIR/vehicle-SEED.csv` for each seed: one normal drive of `HOURS` of the truck
//! `dataset::truck_params(SEED)`, decoded and resampled as the agent does, `timestamp` then
//! the VSS names given (a name the simulator never sends is an empty column).

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use vigil_agent::reading::Signal;
use vigil_lab::dataset::{self, CsvWriter};
use vigil_sim::Scenario;

const USAGE: &str = "usage: fleet_csv OUT_DIR FIRST_SEED VEHICLES HOURS SIGNAL,...";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, first, vehicles, hours, signals] = args.as_slice() else {
        anyhow::bail!(USAGE);
    };
    let out = PathBuf::from(out);
    let first: u64 = first.parse().context(USAGE)?;
    let vehicles: u64 = vehicles.parse().context(USAGE)?;
    let duration = Duration::from_secs_f64(hours.parse::<f64>().context(USAGE)? * 3600.0);
    let columns: Vec<Signal> = signals.split(',').map(Signal::new).collect();
    std::fs::create_dir_all(&out)?;
    for seed in first..first + vehicles {
        let path = out.join(format!("vehicle-{seed}.csv"));
        let file = BufWriter::new(File::create(&path)?);
        let mut csv = CsvWriter::new(file, columns.clone())?;
        let mut result = Ok(());
        dataset::simulate(
            dataset::truck_params(seed),
            Scenario::normal(),
            duration,
            |r| {
                if result.is_ok() {
                    result = csv.push(r);
                }
            },
        )?;
        result?;
        csv.finish()?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
