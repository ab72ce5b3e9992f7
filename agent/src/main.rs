//! The `vigil` command: parses the command line, sets up logging, loads the config and
//! calls into the library. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vigil::config::{Config, ConfigError, DEFAULT_TOML};

/// Exit code for a bad config or bad arguments: nothing was started.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Edge agent for fuel-tanker sensor monitoring."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent with a config file until Ctrl-C or SIGTERM.
    #[command(after_help = "Example:\n  vigil run --config /etc/vigil/vigil.toml")]
    Run {
        /// The TOML config file (see `vigil print-default-config`).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a simulated truck through the real pipeline, with a live view. Needs nothing installed.
    #[command(
        after_help = "Examples:\n  vigil demo\n  vigil demo --scenario tank-heating --fault-at 1m --speed 20\n  \
                            vigil demo --duration 30m --speed 0 | grep ALERT"
    )]
    Demo(vigil::demo::DemoOptions),
    /// Write a simulated drive as a candump log, the sensor node's serial stream and fault labels.
    #[command(
        after_help = "Example:\n  vigil simulate --scenario coolant-loss --seed 7 --duration 2h --fault-at 30m --out drive.log\n\
                            writes drive.log (candump -l), drive.serial (raw node bytes) and drive.labels.csv"
    )]
    Simulate(vigil::demo::SimulateOptions),
    /// Run the detect stage over a recorded candump log (with its .serial companion) or CSV.
    #[command(
        after_help = "Examples:\n  vigil replay --input drive.log --model models/forecaster.card.json --out alerts.jsonl --report report.html\n  \
                            vigil replay --input history.csv --out alerts.jsonl\n\
                            A CSV has a `timestamp` column (Unix seconds) then one column per VSS signal."
    )]
    Replay {
        /// A candump -l log (a .serial file beside it is merged in) or a .csv file.
        #[arg(long)]
        input: PathBuf,
        /// The model card (JSON, the .onnx beside it); without it only the rules run.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Where to write the alerts, one JSON object a line.
        #[arg(long)]
        out: PathBuf,
        /// Also write a single-file HTML report with plots.
        #[arg(long)]
        report: Option<PathBuf>,
        /// A config file for the limits and rules (default: the built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Evaluate the model and the baselines on simulated drives never used in training.
    #[command(
        after_help = "Example:\n  vigil eval --model models/forecaster.card.json --out models/eval.json"
    )]
    Eval {
        /// The model card to evaluate.
        #[arg(long)]
        model: PathBuf,
        /// Drives per fault kind.
        #[arg(long, default_value_t = 10)]
        drives_per_fault: usize,
        /// Normal one-hour drives.
        #[arg(long, default_value_t = 40)]
        normal_drives: usize,
        /// Write the figures as JSON here (models/train.py copies them into the card).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a config file and exit: 0 if it is good, 2 with the reason if not.
    #[command(after_help = "Example:\n  vigil check-config /etc/vigil/vigil.toml")]
    CheckConfig {
        /// The TOML config file to check.
        file: PathBuf,
    },
    /// Print the default config, every key commented.
    #[command(after_help = "Example:\n  vigil print-default-config > /etc/vigil/vigil.toml")]
    PrintDefaultConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet_terminal = matches!(&cli.command, Command::Demo(_)) && vigil::demo::is_live_view();
    init_tracing(quiet_terminal);
    match execute(cli.command) {
        Ok(code) => code,
        Err(error) => {
            if let Some(config_error) = error.downcast_ref::<ConfigError>() {
                eprintln!("error: {config_error}");
                return ExitCode::from(EXIT_CONFIG);
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::PrintDefaultConfig => print!("{DEFAULT_TOML}"),
        Command::CheckConfig { file } => {
            Config::load(&file)?;
            println!("{}: ok", file.display());
        }
        Command::Run { config } => {
            let config = Config::load(&config)?;
            let deadline = config.shutdown.deadline;
            runtime()?.block_on(async {
                let shutdown = shutdown_on_signals(deadline)?;
                let summary = vigil::pipeline::run(config, shutdown).await?;
                eprintln!(
                    "vigil: shutdown complete, {} tasks drained, 0 left; {} readings, {} alerts raised",
                    summary.tasks_drained, summary.metrics.readings_total, summary.metrics.alerts_raised_total
                );
                anyhow::Ok(())
            })?;
        }
        Command::Demo(options) => {
            runtime()?.block_on(async {
                let shutdown = shutdown_on_signals(Duration::from_secs(5))?;
                vigil::demo::run(options, shutdown).await
            })?;
        }
        Command::Replay {
            input,
            model,
            out,
            report,
            config,
        } => {
            let config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::embedded_default(),
            };
            let summary = vigil::detect::replay::replay(
                &config,
                &input,
                model.as_deref(),
                &out,
                report.as_deref(),
            )?;
            eprintln!(
                "replayed {} readings from {} with {}: {} alerts to {}",
                summary.readings,
                input.display(),
                summary.model.as_deref().unwrap_or("rules only"),
                summary.alerts.len(),
                out.display()
            );
        }
        Command::Eval {
            model,
            drives_per_fault,
            normal_drives,
            out,
        } => {
            let model = std::sync::Arc::new(vigil::detect::model::Model::load(&model)?);
            let options = vigil::detect::eval::EvalOptions {
                drives_per_fault,
                normal_drives,
                ..Default::default()
            };
            let report = vigil::detect::eval::run(model, &options, |line| {
                tracing::debug!(event = "eval_progress", "{line}")
            });
            println!("{}", report.table_markdown);
            if let Some(out) = out {
                std::fs::write(&out, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", out.display()))?;
            }
        }
        Command::Simulate(options) => {
            let summary = vigil::demo::simulate(&options)?;
            eprintln!("{summary}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Cancels the returned token on the first Ctrl-C or SIGTERM. A second one, or the deadline
/// passing after the first, exits at once: an operator must always be able to stop the agent.
/// Both handlers are registered before this returns, so no signal can slip in before them.
fn shutdown_on_signals(deadline: Duration) -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!(event = "shutdown_requested");
        cancel.cancel();
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = tokio::time::sleep(deadline + Duration::from_secs(1)) => {}
        }
        eprintln!("vigil: forced exit");
        std::process::exit(130);
    });
    Ok(token)
}

fn init_tracing(quiet_terminal: bool) {
    use tracing_subscriber::EnvFilter;
    // The live demo view owns the terminal: only errors may interrupt it.
    let default = if quiet_terminal { "error" } else { "info" };
    let filter = EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
