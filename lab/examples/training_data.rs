//! Writes the simulated drives `models/train.py` trains and calibrates on, as 1 Hz CSV.
//!
//! Usage: `cargo run -p vigil-lab --example training_data -- OUT_DIR [HOURS]`
//! writes `OUT_DIR/train-SEED.csv` for the training seeds and `OUT_DIR/calib-SEED.csv` for
//! the calibration seeds (normal drives only; faults are for `vigil eval`): trucks, and a
//! few vehicles with a passenger car's engine speeds (`dataset::car_params`) or on cold
//! days (`dataset::cold_params`). A file that
//! exists is kept: after a change to the simulator, delete the folder to write it again.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Duration;

use vigil_lab::dataset::{self, CsvWriter};
use vigil_sim::{Scenario, TruckParams};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "models/data".into()));
    let hours: f64 = args.next().map_or(Ok(1.0), |h| h.parse())?;
    std::fs::create_dir_all(&out)?;
    let duration = Duration::from_secs_f64(hours * 3600.0);
    let truck: fn(u64) -> TruckParams = dataset::truck_params;
    let car: fn(u64) -> TruckParams = dataset::car_params;
    let cold: fn(u64) -> TruckParams = dataset::cold_params;
    let sets = [
        ("train", dataset::TRAINING_SEEDS, truck),
        ("train", dataset::CAR_TRAINING_SEEDS, car),
        ("train", dataset::COLD_TRAINING_SEEDS, cold),
        ("calib", dataset::CALIBRATION_SEEDS, truck),
        ("calib", dataset::CAR_CALIBRATION_SEEDS, car),
        ("calib", dataset::COLD_CALIBRATION_SEEDS, cold),
    ];
    for (prefix, seeds, vehicle) in sets {
        for seed in seeds {
            let path = out.join(format!("{prefix}-{seed}.csv"));
            if path.exists() {
                continue;
            }
            let params = vehicle(seed);
            // Written aside and renamed, so a run cut short leaves no half file behind.
            let part = path.with_extension("csv.part");
            let file = BufWriter::new(File::create(&part)?);
            let mut csv = CsvWriter::new(file, dataset::csv_signals(params.compartments))?;
            let mut result = Ok(());
            dataset::simulate(params, Scenario::normal(), duration, |r| {
                if result.is_ok() {
                    result = csv.push(r);
                }
            })?;
            result?;
            csv.finish()?;
            std::fs::rename(&part, &path)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
