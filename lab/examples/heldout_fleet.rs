//! Writes a simulated fleet as a gateway logs it, split by vehicle into a training part and
//! a held-out part, for `models/heldout.sh`: the fleet's own loop (`vigil dataset`,
//! `train.py --data`, `vigil eval --data --labels`) run on drives the model never saw.
//!
//! Usage: `cargo run --profile tools -p vigil-lab --example heldout_fleet -- OUT_DIR
//! TRAIN_VEHICLES TRAIN_HOURS NORMAL_DRIVES DRIVES_PER_FAULT`
//!
//! - `OUT_DIR/train/vehicle-SEED.log`: one normal drive of `TRAIN_HOURS` for each of
//!   `TRAIN_VEHICLES` trucks (`dataset::truck_params`, seeds from [`TRAIN_SEEDS`], apart
//!   from every seed the simulated eval and the committed model use);
//! - `OUT_DIR/heldout/drive-NN.log`: the simulated eval's own drives
//!   (`eval::simulated_drives`): `NORMAL_DRIVES` normal hours and `DRIVES_PER_FAULT` drives
//!   of every fault row, each on a vehicle of its own;
//! - `OUT_DIR/labels.csv`: the held-out faults as `vigil eval --labels` reads them
//!   (`file,signal,start,end,kind`, the file named as `vigil dataset` names its CSV).
//!
//! Each log has its `.serial` companion (the tank node) and the simulator's `.labels.csv`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use vigil_lab::dataset;
use vigil_lab::eval::{self, EvalOptions, LABELS_HEADER};
use vigil_sim::{Scenario, TruckParams, record};

const USAGE: &str =
    "usage: heldout_fleet OUT_DIR TRAIN_VEHICLES TRAIN_HOURS NORMAL_DRIVES DRIVES_PER_FAULT";
/// The training vehicles' seeds: apart from the committed model's training (1..41) and
/// calibration (101..1901), the eval's normal (3001..3301) and fault (5001..) drives, and
/// the fleets README.md and test_train.py time (60001.., 80001.., 81001..).
const TRAIN_SEEDS: std::ops::RangeFrom<u64> = 82001..;

/// One drive to record.
struct Drive {
    log: PathBuf,
    params: TruckParams,
    scenario: Scenario,
    length: Duration,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, vehicles, hours, normal, per_fault] = args.as_slice() else {
        anyhow::bail!(USAGE);
    };
    let out = PathBuf::from(out);
    let vehicles: usize = vehicles.parse().context(USAGE)?;
    let hours: f64 = hours.parse().context(USAGE)?;
    let options = EvalOptions {
        normal_drives: normal.parse().context(USAGE)?,
        drives_per_fault: per_fault.parse().context(USAGE)?,
        ..EvalOptions::default()
    };
    std::fs::create_dir_all(out.join("train"))?;
    std::fs::create_dir_all(out.join("heldout"))?;

    let mut drives: Vec<Drive> = TRAIN_SEEDS
        .take(vehicles)
        .map(|seed| Drive {
            log: out.join(format!("train/vehicle-{seed}.log")),
            params: dataset::truck_params(seed),
            scenario: Scenario::normal(),
            length: Duration::from_secs_f64(hours * 3600.0),
        })
        .collect();
    let mut labels = format!("{LABELS_HEADER}\n");
    for (i, drive) in eval::simulated_drives(&options).into_iter().enumerate() {
        let name = format!("drive-{i:03}");
        if let (Some(row), Some(fault)) = (&drive.row, &drive.fault) {
            let unix = |t: Duration| {
                record::unix_seconds(drive.params.start_wall_us + t.as_micros() as i64)
            };
            labels.push_str(&format!(
                "{name}.csv,{},{},{},{row}\n",
                fault.signal,
                unix(fault.start),
                unix(fault.end)
            ));
        }
        drives.push(Drive {
            log: out.join(format!("heldout/{name}.log")),
            params: drive.params,
            scenario: drive.scenario,
            length: drive.length,
        });
    }
    std::fs::write(out.join("labels.csv"), labels)?;
    record_all(drives)?;
    Ok(())
}

/// Records every drive, spread over the machine's cores.
fn record_all(drives: Vec<Drive>) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut shares: Vec<Vec<Drive>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, drive) in drives.into_iter().enumerate() {
        shares[i % threads].push(drive);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || share.into_iter().try_for_each(record_one)))
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a recording thread panicked"))
    })
}

fn record_one(drive: Drive) -> anyhow::Result<()> {
    record::write(drive.params, drive.scenario, drive.length, &drive.log)
        .with_context(|| format!("recording {}", drive.log.display()))?;
    eprintln!("wrote {}", drive.log.display());
    Ok(())
}
