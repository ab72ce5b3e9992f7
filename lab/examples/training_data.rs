//! Writes the simulated drives `models/train.py` trains and calibrates on, as 1 Hz CSV.
//!
//! Usage: `cargo run -p vigil-lab --example training_data -- OUT_DIR [HOURS]`
//! writes `OUT_DIR/train-SEED.csv` for the training seeds and `OUT_DIR/calib-SEED.csv` for
//! the calibration seeds (normal drives only; faults are for `vigil eval`).

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Duration;

use vigil_lab::dataset::{self, CsvWriter};
use vigil_sim::Scenario;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "models/data".into()));
    let hours: f64 = args.next().map_or(Ok(1.0), |h| h.parse())?;
    std::fs::create_dir_all(&out)?;
    let duration = Duration::from_secs_f64(hours * 3600.0);
    let sets = [
        ("train", dataset::TRAINING_SEEDS),
        ("calib", dataset::CALIBRATION_SEEDS),
    ];
    for (prefix, seeds) in sets {
        for seed in seeds {
            let path = out.join(format!("{prefix}-{seed}.csv"));
            let params = dataset::truck_params(seed);
            let file = BufWriter::new(File::create(&path)?);
            let mut csv = CsvWriter::new(file, dataset::csv_signals(params.compartments))?;
            let mut result = Ok(());
            dataset::simulate(params, Scenario::normal(), duration, |r| {
                if result.is_ok() {
                    result = csv.push(r);
                }
            })?;
            result?;
            csv.finish()?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
