//! `cargo bench -p vigil-lab --bench detect`: the cost of one model step for one signal group (window
//! features, tract, forecast) and of the whole detect stage per second of truck data.
//! Plain timing loops (no harness), reported as the median of several batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use vigil_agent::detect::model::{Model, committed_card_path};
use vigil_lab::{Judge, dataset};
use vigil_sim::Scenario;

/// Median time per iteration over `batches` batches of `n`.
fn measure(batches: usize, n: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed() / n as u32
        })
        .collect();
    times.sort();
    times[batches / 2]
}

fn main() {
    let model = Model::load(&committed_card_path()).expect("the committed model loads");
    let spec = model.card.signals[0].clone();
    let window: Vec<f64> = (0..10).map(|i| 88.0 + (i % 3) as f64).collect();
    let context: Vec<f64> = (0..10).map(|i| 1200.0 + 10.0 * i as f64).collect();
    // The coolant: the forecast and the consistency check against the oil in one step.
    let companion: Vec<f64> = (0..10).map(|i| 90.0 + 0.1 * i as f64).collect();
    let mut scratch = Vec::new();
    let step = measure(21, 20_000, || {
        black_box(
            model
                .forecast(
                    &spec,
                    black_box(&window),
                    &context,
                    Some(&companion),
                    &mut scratch,
                )
                .unwrap(),
        );
    });
    println!("model step (one window, one signal group): {step:?}");

    // Ten simulated minutes of readings, decoded once; then the stage over them.
    let minutes = 10;
    let mut readings = Vec::new();
    dataset::simulate(
        dataset::truck_params(1),
        Scenario::normal(),
        Duration::from_secs(60 * minutes),
        |r| readings.push(r.clone()),
    )
    .unwrap();
    // The default config's detect stage, built as the agent builds it.
    let judge = Judge {
        model: Some(std::sync::Arc::new(model)),
        ..Judge::default()
    };
    let mut events = Vec::new();
    let per_run = measure(5, 1, || {
        let mut detector = judge.detector();
        for r in &readings {
            detector.observe(r, &mut events);
            events.clear();
        }
    });
    let per_second = per_run / (60 * minutes) as u32;
    println!(
        "detect stage with the model: {per_second:?} per second of truck data ({} readings/s, {:.3} % of a core)",
        readings.len() as u64 / (60 * minutes),
        per_second.as_secs_f64() * 100.0
    );
}
