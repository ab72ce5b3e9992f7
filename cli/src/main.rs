//! The `vigil` command: parses the command line, sets up logging, loads the config and
//! calls into the library. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "lab")]
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
#[cfg(feature = "lab")]
use vigil::config::load_model;
use vigil::config::{Config, ConfigError, DEFAULT_TOML, LogConfig, LogFormat};

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

// The commands behind `feature = "lab"` are the engineer's desk tools (replay, dataset, eval,
// decode, model job): the gateway's build leaves them out (cli/Cargo.toml, feature `lab`).
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
        after_help = "Examples:\n  vigil demo\n  vigil demo --scenario coolant-loss --fault-at 2m --speed 20\n  \
                            vigil demo --duration 30m --speed 0 | grep ALERT"
    )]
    Demo(vigil::demo::DemoOptions),
    /// Write a simulated drive as a candump log, the sensor node's serial stream and fault labels.
    #[command(
        after_help = "Example:\n  vigil simulate --scenario coolant-loss --seed 7 --duration 2h --fault-at 30m --out drive.log\n\
                            writes drive.log (candump -l), drive.serial (raw node bytes) and drive.labels.csv"
    )]
    Simulate(vigil::demo::SimulateOptions),
    #[cfg(feature = "lab")]
    /// Run the detect stage over a recorded CAN log (with its .serial companion) or CSV,
    /// judging exactly as `vigil run` with the same config would.
    #[command(
        after_help = "Examples:\n  vigil replay --input drive.log --config /etc/vigil/vigil.toml --out alerts.jsonl --report report.html\n  \
                            vigil replay --input drive.log --model models/forecaster.card.json --out alerts.jsonl\n  \
                            vigil replay --input history.csv --model none --out alerts.jsonl\n  \
                            cat drive.log | vigil replay --input - --out alerts.jsonl\n\
                            Logs: candump -l or printed (CAN FD too), Vector ASC, Saleae Logic 2 CAN CSV.\n\
                            A CSV of readings has a `timestamp` column (Unix seconds) then one column per VSS signal."
    )]
    Replay {
        /// A CAN log (candump, Vector ASC, Saleae CSV; a .serial file beside it is merged
        /// in), `-` for standard input, or a CSV of readings.
        #[arg(long)]
        input: PathBuf,
        /// The model instead of the config's `[detect] model`: a model card (JSON, the
        /// .onnx beside it), `builtin`, or `none` to run the rules and limits alone.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Where to write the alerts, one JSON object a line.
        #[arg(long)]
        out: PathBuf,
        /// Also write a single-file HTML report with plots.
        #[arg(long)]
        report: Option<PathBuf>,
        /// The DBC that decodes a candump log (default: the config's, or the built-in one),
        /// mapped to VSS names by the config's `[dbc.signals]`.
        #[arg(long)]
        dbc: Option<PathBuf>,
        /// The agent's config file: its vehicle, DBC, limits, rules and model (default: the
        /// built-in defaults, the built-in model included).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    #[cfg(feature = "lab")]
    /// Convert recorded drives or the fleet's stored readings to the 1 Hz training CSV.
    #[command(
        after_help = "Examples:\n  vigil dataset --input drives/*.log --out data/ --config /etc/vigil/vigil.toml\n  \
                            aws s3 cp --recursive s3://BUCKET/readings/ s3/ && vigil dataset --input s3/*/*/*/*/* --out data/\n\
                            Inputs: CAN logs (candump, Vector ASC, Saleae CSV; a .serial file beside a log is merged in),\n\
                            CSVs of readings (`timestamp` then VSS names), `vigil decode` rows, and vigil.readings/1\n\
                            batches as Firehose stores them (one JSON a line, gzip or not; one CSV per vehicle).\n\
                            Writes one CSV per input (`timestamp` in Unix seconds, then VSS names; a signal's other\n\
                            senders as NAME@ORIGIN columns) and dataset-summary.json. Bad lines are counted, never fatal;\n\
                            exits 1 if an input could not be read at all (the others are still converted)."
    )]
    Dataset {
        /// The recorded drives or stored batches, one or more.
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// The folder to write the CSVs and the summary into (made if missing).
        #[arg(long)]
        out: PathBuf,
        /// The DBC that decodes the logs (default: the config's, or the built-in one),
        /// mapped to VSS names by the config's `[dbc.signals]`.
        #[arg(long)]
        dbc: Option<PathBuf>,
        /// The agent's config file, for its DBC and `[dbc.signals]`.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    #[cfg(feature = "lab")]
    /// Evaluate the model and the baselines on simulated drives never used in training, or
    /// on your own recorded drives (--data).
    #[command(
        after_help = "Examples:\n  vigil eval --model models/forecaster.card.json --out models/eval.json\n  \
                            vigil eval --data data/ --labels labels.csv --model models/forecaster.card.json --out eval.json\n\
                            --data: a folder of the 1 Hz CSVs `vigil dataset` writes; --labels: `file,signal,start,end,kind`,\n\
                            one labelled fault a row (start and end in the data's Unix seconds); files without a label are\n\
                            normal drives. Writes eval.json and a one-page HTML summary beside it (eval.html)."
    )]
    Eval {
        /// The model card to evaluate.
        #[arg(long)]
        model: PathBuf,
        /// Evaluate on recorded drives instead of simulated ones: a folder of the 1 Hz CSVs
        /// `vigil dataset` writes. The simulation's options are then not used.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The labelled faults of --data: `file,signal,start,end,kind`.
        #[arg(long, requires = "data")]
        labels: Option<PathBuf>,
        /// Also write the one-page HTML summary here (with --data and --out: beside the
        /// JSON, named like it with .html).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Drives per fault kind, each on a vehicle of its own.
        #[arg(long, default_value_t = 20)]
        drives_per_fault: usize,
        /// Normal one-hour drives, at most 300 (300 h without a false alarm bounds the
        /// rate below 1 per 100 h at 95 % confidence).
        #[arg(long, default_value_t = 300)]
        normal_drives: usize,
        /// One-hour normal drives the baselines calibrate on, at most 1000: the same
        /// vehicles the model's thresholds come from. Fewer is faster (the 1000 take about
        /// 24 of the eval's 36 minutes on 2 cores) but leaves the baselines less data.
        #[arg(long, default_value_t = 1000)]
        calibration_drives: usize,
        /// Give every drive's truck these bus quirks, comma-separated: unsent (no oil or
        /// fuel temperature), two-step (two-degree coolant ticks), second-sender (a second
        /// controller relays the coolant), car-rpm (a passenger car's engine speeds: 800 rpm
        /// idle, 2000-3100 cruising). Drives with quirks are reported on their own.
        #[arg(long, value_delimiter = ',')]
        quirks: Vec<String>,
        /// Write the figures as JSON here (models/train.py copies them into the card).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A config file whose `[detect]` limits and rules run beside the model (default:
        /// the built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config file and exit: 0 if it is good, 2 with the reason if not.
    #[command(after_help = "Example:\n  vigil check-config /etc/vigil/vigil.toml")]
    CheckConfig {
        /// The TOML config file to check.
        file: PathBuf,
    },
    #[cfg(feature = "lab")]
    /// Decode a CAN log with a DBC to rows of timestamp, VSS signal, origin and value.
    #[command(
        after_help = "Example:\n  vigil decode --dbc deploy/dbc/vigil-j1939.dbc --input tests/data/j1939-truck-css.candump.log --format csv\n\
                            Logs: candump -l or printed (CAN FD too), Vector ASC, Saleae Logic 2 CAN CSV; `--input -` reads stdin.\n\
                            Rows whose value is flagged (not available, error) give the flag instead of a number;\n\
                            DM1 diagnostic messages give one row each. The last line on stderr counts frames,\n\
                            skipped lines by cause, unknown PGNs and transport sessions."
    )]
    Decode {
        /// The DBC file.
        #[arg(long)]
        dbc: PathBuf,
        /// The CAN log (candump, Vector ASC, Saleae CSV), or `-` for standard input.
        #[arg(long)]
        input: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: vigil_lab::decode::OutputFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Look into the store-and-forward spool.
    #[command(subcommand)]
    Spool(SpoolCommand),
    #[cfg(feature = "lab")]
    /// Ship a model to the trucks.
    #[command(subcommand)]
    Model(ModelCommand),
    /// The fleet team's side: watch the trucks through the broker they publish to.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Print the built-in default config: every key with its default, commented.
    ///
    /// Its source is the simulated truck (what `vigil demo` runs). A gateway's config starts
    /// from the package's /etc/vigil/vigil.toml instead: a real-truck template that says what
    /// to fill in.
    #[command(
        after_help = "Example:\n  vigil print-default-config > sim.toml && vigil run --config sim.toml"
    )]
    PrintDefaultConfig,
    /// The cab alarm's devices (buzzer, acknowledge button, display).
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Shell completions and man pages, from this command line's own definition.
    #[command(subcommand)]
    Generate(GenerateCommand),
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// Print the completion script for a shell (the Debian package installs bash's, zsh's and fish's).
    #[command(
        after_help = "Example:\n  vigil generate completions bash > ~/.local/share/bash-completion/completions/vigil"
    )]
    Completions { shell: vigil::generate::Shell },
    /// Write the man pages into a folder: vigil.1 and one per command (vigil-run.1, ...).
    #[command(
        after_help = "Example:\n  vigil generate man /tmp/man && man -l /tmp/man/vigil-run.1"
    )]
    Man { dir: PathBuf },
}

#[derive(Subcommand)]
enum AlarmCommand {
    /// For installers: sound each buzzer pattern, show each screen, wait for a button press.
    #[command(
        after_help = "Example:\n  vigil alarm test --config /etc/vigil/vigil.toml\n\
                      Exits 0 when every configured device worked, 2 when none is configured."
    )]
    Test {
        /// The TOML config file whose [alarm] section names the devices.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Report what a spool holds (works while the agent is stopped; it opens a copy).
    #[command(after_help = "Example:\n  vigil spool inspect --path /var/lib/vigil/spool --json")]
    Inspect {
        /// The spool folder.
        #[arg(long)]
        path: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Append records as fast as asked, printing `flushed <seq>` after each flush, until
    /// killed: the writer the crash test kills with SIGKILL.
    #[command(after_help = "Example:\n  vigil spool soak --path /tmp/soak --rate 1000")]
    Soak {
        /// The spool folder (created if missing).
        #[arg(long)]
        path: PathBuf,
        /// Records per second; 0 for as fast as possible.
        #[arg(long, default_value_t = 0)]
        rate: u32,
    },
}

#[cfg(feature = "lab")]
#[derive(Subcommand)]
enum ModelCommand {
    /// Build the model-update job document (AWS IoT Jobs) from a model card and the .onnx
    /// file beside it: the model verified against the card as the truck will, the card's
    /// evaluation left out, checked against deploy/schemas/model-job.schema.json and the
    /// 32 KB document limit.
    #[command(
        after_help = "Example:\n  vigil model job --card models/forecaster.card.json --out job.json\n  \
                      aws iot create-job --job-id model-1-0-1 --targets ARN --document file://job.json"
    )]
    Job {
        /// The model card (JSON, as models/train.py writes it); its `onnx` names the model file.
        #[arg(long)]
        card: PathBuf,
        /// Where to write the job document.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Every truck's alerts, DM1 codes and online/offline state, live: a table on a
    /// terminal, one JSON line per event otherwise (or with --json). Runs until Ctrl-C.
    #[command(after_help = "Examples:\n  \
        vigil fleet watch --broker xxxxxxxx-ats.iot.eu-west-1.amazonaws.com --ca AmazonRootCA1.pem --cert fleet.pem.crt --key fleet.pem.key\n  \
        vigil fleet watch --broker localhost:8883 --ca ca.pem --cert fleet.pem --key fleet.key --severity critical --json | jq .\n  \
        vigil fleet watch --broker localhost --insecure-plain-tcp --vehicle truck-7")]
    Watch(vigil::fleet::WatchOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet_terminal = match &cli.command {
        Command::Demo(_) => vigil::demo::is_live_view(),
        Command::Fleet(FleetCommand::Watch(options)) => vigil::fleet::draws_table(options),
        _ => false,
    };
    // `vigil run` logs as its config's [log] says: it starts logging once the file is read,
    // so a bad file is reported as a plain `error:` line.
    if !matches!(cli.command, Command::Run { .. }) {
        let _ = init_tracing(&LogConfig::default(), quiet_terminal);
    }
    match execute(cli.command) {
        Ok(code) => code,
        Err(error) => {
            if let Some(config_error) = error.downcast_ref::<ConfigError>() {
                eprintln!("error: {config_error}");
                return ExitCode::from(EXIT_CONFIG);
            }
            if let Some(vigil::fleet::FleetError::Config(e)) = error.downcast_ref() {
                eprintln!("error: {e}");
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
        Command::Generate(GenerateCommand::Completions { shell }) => {
            vigil::generate::completions(Cli::command(), shell, &mut std::io::stdout().lock())
        }
        Command::Generate(GenerateCommand::Man { dir }) => {
            for page in vigil::generate::man_pages(Cli::command(), &dir)? {
                eprintln!("wrote {}", page.display());
            }
        }
        Command::CheckConfig { file } => {
            let resolved = Config::load(&file)?.resolve(&file)?;
            if let Some(error) = resolved.model_rejected {
                // `vigil run` would start without the model; an operator checking must know.
                eprintln!(
                    "error: config file {}, key `detect.model`: {error}",
                    file.display()
                );
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            if let Some(warning) = resolved.certificate_warning(std::time::SystemTime::now()) {
                eprintln!(
                    "warning: config file {}, key `uplink.cert_file`: {warning}",
                    file.display()
                );
            }
            for signal in &resolved.unsourced {
                eprintln!(
                    "warning: config file {}: no configured source gives {signal}, so it is never \
                     judged; map it in [dbc.signals] or add the source that gives it",
                    file.display()
                );
            }
            println!("{}: ok", file.display());
        }
        Command::Run { config: file } => {
            let config = Config::load(&file)?;
            let log_level = init_tracing(&config.log, false);
            let deadline = config.shutdown.deadline;
            runtime()?.block_on(async {
                let shutdown = shutdown_on_signals(deadline)?;
                let summary = vigil::run(&config, &file, shutdown, log_level)
                    .await
                    .map_err(|e| match e {
                        // A file that does not resolve exits like any bad config.
                        vigil::AgentError::Config(e) => anyhow::Error::from(e),
                        e => anyhow::Error::from(e),
                    })?;
                let m = &summary.metrics;
                // A JSON log stays JSON to its last line.
                if config.log.format == LogFormat::Json {
                    tracing::info!(event = "run_summary", tasks_drained = summary.tasks_drained, readings = m.readings_total, alerts_raised = m.alerts_raised_total, records_spooled = m.spool_appended_total);
                } else {
                    eprintln!(
                        "vigil: shutdown complete, {} tasks drained, 0 left; {} readings, {} alerts raised, {} records spooled",
                        summary.tasks_drained, m.readings_total, m.alerts_raised_total, m.spool_appended_total
                    );
                }
                match summary.metrics.sources_failed_total {
                    0 => anyhow::Ok(()),
                    n => Err(anyhow::anyhow!("{n} source(s) failed; see `source_failed` above")),
                }
            })?;
        }
        Command::Demo(options) => {
            runtime()?.block_on(async {
                let shutdown = shutdown_on_signals(Duration::from_secs(5))?;
                vigil::demo::run(options, shutdown).await
            })?;
        }
        #[cfg(feature = "lab")]
        Command::Decode {
            dbc,
            input,
            format,
            out,
        } => {
            let summary = vigil_lab::decode::decode_command(&vigil_lab::decode::DecodeCommand {
                dbc,
                input,
                format,
                out,
                signals: vigil_agent::decode::dbc::default_signal_names(),
            })?;
            eprintln!("{}", summary.line());
        }
        Command::Spool(SpoolCommand::Inspect { path, json }) => {
            let report = vigil_agent::spool::inspect(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
        #[cfg(feature = "lab")]
        Command::Model(ModelCommand::Job { card, out }) => {
            let job = vigil::model_job::build(&card)?;
            std::fs::write(&out, &job.bytes)
                .with_context(|| format!("cannot write the job document {}", out.display()))?;
            eprintln!("{}", job.summary(&out));
        }
        Command::Spool(SpoolCommand::Soak { path, rate }) => {
            vigil_agent::spool::soak::run(&path, rate, std::io::stdout().lock())?;
        }
        Command::Alarm(AlarmCommand::Test { config }) => {
            let config = match config {
                Some(file) => Config::load(&file)?,
                None => Config::embedded_default(),
            };
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .context("cannot start the async runtime")?
                .block_on(vigil_agent::alarm::check::run_config(
                    &config.alarm,
                    &mut std::io::stdout(),
                ));
            if let Err(error @ vigil_agent::alarm::check::CheckError::NoHardware) = result {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            result?;
        }
        #[cfg(feature = "lab")]
        Command::Replay {
            input,
            model,
            out,
            report,
            dbc,
            config,
        } => {
            // The same resolution as `vigil run`: the config's DBC and model, read once. A
            // model that cannot be used is an error here, not a warning: a backtest must
            // judge with the model it names.
            let (mut config, signals) = lab_config(config, dbc)?;
            if model.is_some() {
                config.detect.model = model;
            }
            let judge = vigil_lab::Judge {
                vehicle: config.vehicle.clone(),
                detect: config.detect.clone(),
                model: load_model(config.detect.model.as_deref())?.map(Arc::new),
            };
            let summary = vigil_lab::replay::replay(
                &judge,
                signals,
                &config.security,
                &input,
                &out,
                report.as_deref(),
            )?;
            eprintln!("{}", vigil_lab::report::coverage(&summary.detect));
            eprintln!("{}", summary.line(&input, &out));
        }
        #[cfg(feature = "lab")]
        Command::Dataset {
            input,
            out,
            dbc,
            config,
        } => {
            let (_, table) = lab_config(config, dbc)?;
            let summary = vigil_lab::export::run(&vigil_lab::export::DatasetCommand {
                inputs: input,
                out,
                table,
            })?;
            for line in summary.lines() {
                eprintln!("{line}");
            }
            if summary.failed_inputs() > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        #[cfg(feature = "lab")]
        Command::Eval {
            model,
            data: Some(dir),
            labels,
            html,
            out,
            config,
            ..
        } => {
            let (config, _) = lab_config(config, None)?;
            let judge = vigil_lab::Judge {
                vehicle: config.vehicle,
                detect: config.detect,
                model: Some(Arc::new(vigil_agent::detect::Model::load(&model)?)),
            };
            let options = vigil_lab::eval::DataOptions { dir, labels };
            let report = match vigil_lab::eval::run_on_data(&judge, &options, |line| {
                tracing::info!(event = "eval_progress", "{line}")
            }) {
                Err(error @ vigil_lab::eval::DataEvalError::Label { .. }) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
                result => result?,
            };
            println!("{}", report.table_markdown);
            let html = html.or_else(|| out.as_ref().map(|o| o.with_extension("html")));
            write_eval(&report, out, html)?;
        }
        #[cfg(feature = "lab")]
        Command::Eval {
            model,
            drives_per_fault,
            normal_drives,
            calibration_drives,
            quirks,
            out,
            config,
            html,
            ..
        } => {
            let detect = match config {
                Some(path) => Config::load(&path)?.detect,
                None => Config::embedded_default().detect,
            };
            let model = Arc::new(vigil_agent::detect::Model::load(&model)?);
            // A misspelt quirk is refused before an hour of drives, not after.
            vigil_lab::eval::quirks(&quirks, 0).map_err(|e| anyhow::anyhow!("--quirks: {e}"))?;
            let options = vigil_lab::eval::EvalOptions {
                drives_per_fault,
                normal_drives,
                calibration_drives,
                quirks,
                ..Default::default()
            };
            let report = vigil_lab::eval::run(model, &detect, &options, |line| {
                tracing::info!(event = "eval_progress", "{line}")
            });
            println!("{}", report.table_markdown);
            write_eval(&report, out, html)?;
        }
        Command::Fleet(FleetCommand::Watch(options)) => {
            runtime()?.block_on(async {
                let shutdown = shutdown_on_signals(Duration::from_secs(2))?;
                vigil::fleet::watch(options, shutdown).await?;
                anyhow::Ok(())
            })?;
        }
        Command::Simulate(options) => {
            let summary = vigil::demo::simulate(&options)?;
            eprintln!("{summary}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "lab")]
/// Writes an evaluation's figures as JSON and its HTML summary, each where asked.
fn write_eval(
    report: &vigil_lab::eval::EvalReport,
    json: Option<PathBuf>,
    html: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(out) = json {
        std::fs::write(&out, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    if let Some(out) = html {
        std::fs::write(&out, vigil_lab::eval::html(report))
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

#[cfg(feature = "lab")]
/// The config a lab command judges or decodes with (the built-in defaults when none is
/// given), the DBC given instead of the config's, and its signal table, read once.
fn lab_config(
    config: Option<PathBuf>,
    dbc: Option<PathBuf>,
) -> anyhow::Result<(Config, vigil_agent::decode::table::SignalTable)> {
    let (mut config, file) = match config {
        Some(path) => (Config::load(&path)?, path),
        None => (
            Config::embedded_default(),
            PathBuf::from("(built-in defaults)"),
        ),
    };
    if dbc.is_some() {
        config.dbc.path = dbc;
    }
    let table = config.dbc.load().map_err(|e| ConfigError::Invalid {
        file,
        location: String::new(),
        key: "dbc".into(),
        message: e.to_string(),
    })?;
    Ok((config, table))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    vigil_agent::pipeline::runtime().context("cannot start the async runtime")
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

/// Logs to standard error, in the format and at the level `log` asks for (`VIGIL_LOG`, a
/// `tracing` filter, overrides the level).
/// Sets up logging; returns what changes its level later (a config reload), or `None`
/// when `VIGIL_LOG` decides it.
fn init_tracing(log: &LogConfig, quiet_terminal: bool) -> Option<vigil::reload::LogLevel> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    // The live demo view owns the terminal: only errors may interrupt it.
    let default = if quiet_terminal {
        "error,rumqttd=off".to_owned()
    } else {
        log.filter()
    };
    let from_env = EnvFilter::try_from_env("VIGIL_LOG").ok();
    let by_env = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new(default)));
    let registry = tracing_subscriber::registry().with(filter);
    match log.format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init(),
        // One object a line: timestamp, level, target, then the event's own fields
        // (`event`, `message`, ...) at the top level, where log shippers look for them.
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .init(),
    }
    (!by_env).then(|| -> vigil::reload::LogLevel {
        Box::new(move |log: &LogConfig| {
            handle
                .reload(EnvFilter::new(log.filter()))
                .map_err(|e| e.to_string())
        })
    })
}
