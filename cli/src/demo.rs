//! `vigil demo` and `vigil simulate`: the simulated truck, run through the real pipeline
//! with a view, or recorded to files for training and backtesting.
//!
//! The demo builds the embedded default config, overrides the simulator from the command
//! line and starts the same [`Pipeline`] `vigil run` starts; it only adds taps for the view.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use vigil_agent::pipeline::{Pipeline, RunError, Taps};
use vigil_sim::{Scenario, TruckParams};

use crate::config::Config;
use crate::view::View;

/// Options of `vigil demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoOptions {
    /// The fault to inject (see `vigil simulate --help` for the list).
    #[arg(long, default_value = "tank-heating")]
    pub scenario: String,
    /// Simulated time at which the fault starts.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub fault_at: Duration,
    /// Seed of the simulated drive.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Times real time; 0 runs as fast as the pipeline can.
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
    /// Stop after this much simulated time (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

/// Options of `vigil simulate`.
#[derive(Clone, Debug, clap::Args)]
pub struct SimulateOptions {
    /// One of: normal, coolant-loss, fan-failure, thermostat-stuck, tank-heating,
    /// insulation-loss, stuck-sensor, dropout, spikes, drift, not-available.
    #[arg(long, default_value = "normal")]
    pub scenario: String,
    /// Seed of the simulated drive: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated time to write.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub duration: Duration,
    /// Simulated time at which the fault starts.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub fault_at: Duration,
    /// Cargo-tank compartments.
    #[arg(long, default_value_t = 3)]
    pub compartments: u8,
    /// The candump log to write; `.serial` and `.labels.csv` files are written beside it.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; expected a duration such as \"90s\", \"10m\" or \"2h\""))
}

/// Whether the demo draws a live view (standard output is a terminal) or prints lines.
pub fn is_live_view() -> bool {
    std::io::stdout().is_terminal()
}

/// Runs the demo until `shutdown` is cancelled or the simulated duration has passed.
pub async fn run(options: DemoOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = Config::embedded_default();
    let sim = config
        .source
        .simulator
        .as_mut()
        .expect("the embedded default has a simulator");
    sim.scenario = options.scenario.clone();
    sim.fault_at = options.fault_at;
    sim.seed = options.seed;
    sim.speed = options.speed;
    // The full loop with nothing installed: an in-process broker on loopback, plain MQTT
    // (the dev flag; the config refuses it toward AWS), and a fresh spool for this run.
    #[cfg(feature = "demo-broker")]
    let broker = vigil_agent::uplink::demo_broker::DemoBroker::start()?;
    #[cfg(feature = "demo-broker")]
    let spool_dir = {
        let dir = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
        config.uplink = Some(vigil_agent::uplink::UplinkConfig {
            endpoint: "127.0.0.1".into(),
            port: broker.port,
            insecure_plain_tcp: true,
            // The demo shows a status refresh every few seconds rather than every minute.
            status_interval: Duration::from_secs(5),
            // rumqttd refuses `$aws/...` filters; the demo has no cloud side anyway.
            shadow_and_jobs: false,
            ..vigil_agent::uplink::UplinkConfig::default()
        });
        config.spool.path = Some(dir.clone());
        dir
    };
    #[cfg(feature = "demo-broker")]
    let watch_hint = Some(format!(
        "watch it: mosquitto_sub -h 127.0.0.1 -p {} -t 'dt/vigil/#' -v",
        broker.port
    ));
    #[cfg(not(feature = "demo-broker"))]
    let watch_hint: Option<String> = None;
    if let Some(hint) = &watch_hint {
        eprintln!("vigil demo: in-process MQTT broker on 127.0.0.1 (plain TCP, demo only); {hint}");
    }
    // Parse, check and resolve the result like any config, so the demo can't run what `run`
    // would refuse.
    let text = toml::to_string(&config)?;
    let file = std::path::Path::new("(demo options)");
    let config = Config::parse(&text, file)?;
    let resolved = config.resolve(file)?;

    // The view keeps up with every reading at 10x; beyond that it may skip some (lossy tap).
    let (readings_tx, readings_rx) = mpsc::channel(4096);
    let (alerts_tx, alerts_rx) = mpsc::channel(256);
    let (batches_tx, batches_rx) = mpsc::channel(16);
    let taps = Taps {
        readings: Some(readings_tx),
        alerts: Some(alerts_tx),
        batches: Some(batches_tx),
        // The simulated truck sends no DM1; the view has nothing to show of them.
        diagnostics: None,
        // A healthy simulated bus gives no security event; the closing line counts them.
        security: None,
    };
    let pipeline = Pipeline::start(resolved.stages, resolved.sources, shutdown.clone(), taps)?;
    let vehicle = &config.vehicle;
    let title = format!(
        "Vigil demo | {} ({} cargo, {} compartments) | scenario {} at {} | seed {} | speed {}x",
        vehicle.id,
        vehicle.cargo,
        vehicle.compartments,
        options.scenario,
        humantime::format_duration(options.fault_at),
        options.seed,
        options.speed
    );
    let view = View::new(
        title,
        pipeline.panel.clone(),
        pipeline.metrics.clone(),
        is_live_view(),
    )
    .with_link(pipeline.link.subscribe(), watch_hint);
    let view = tokio::spawn(view.run(
        readings_rx,
        alerts_rx,
        batches_rx,
        options.duration,
        shutdown.clone(),
    ));
    let summary = pipeline.join().await;
    // The pipeline has drained, so the taps are closed and the view ends after its last frame.
    view.await?;
    #[cfg(feature = "demo-broker")]
    let _ = std::fs::remove_dir_all(&spool_dir);
    let summary = summary.map_err(|e: RunError| anyhow::anyhow!(e))?;
    let m = &summary.metrics;
    eprintln!(
        "vigil demo: {} readings, {} alerts raised, {} security events, {} batches sealed; {} records spooled, {} published, {} acknowledged; shutdown complete, {} tasks drained",
        m.readings_total,
        m.alerts_raised_total,
        m.security_events_total,
        m.batches_sealed_total,
        m.spool_appended_total,
        m.uplink_published_total,
        m.uplink_acked_total,
        summary.tasks_drained
    );
    Ok(())
}

/// Writes a simulated drive to files; returns a one-line summary.
pub fn simulate(options: &SimulateOptions) -> anyhow::Result<String> {
    let scenario = Scenario::from_name(&options.scenario, options.fault_at)?;
    let params = TruckParams {
        seed: options.seed,
        compartments: options.compartments,
        ..TruckParams::default()
    };
    let s = vigil_sim::record::write(params, scenario, options.duration, &options.out)?;
    Ok(format!(
        "wrote {} of {}: {} ({} CAN frames), {} ({} node messages, {} bytes), {} ({} fault intervals)",
        humantime::format_duration(s.duration),
        options.scenario,
        s.candump.display(),
        s.can_frames,
        s.serial.display(),
        s.serial_messages,
        s.serial_bytes,
        s.labels.display(),
        s.faults.len()
    ))
}
