//! The forecaster: a model card, the ONNX file it describes, and the tract plan built from
//! it once, at load, for fixed shapes.
//!
//! A model is only ever used after it matched its card: the file's SHA-256, the input and
//! output shapes, and the golden input/output vectors the training script wrote (tract's
//! output must equal the script's within the card's tolerance). Anything else is a
//! [`ModelError`] that names the file and what to do; the detector's rules run without it.
//!
//! [`ModelHandle`] is the swap point the uplink's jobs handler calls: load and verify first,
//! then replace the current model in one step, keeping the previous one for rollback. The
//! detector reads the current model at each tick, so a swap never tears a step.
//!
//! The features a window becomes ([`ModelCard::features`]) are written once here and once in
//! `models/train.py`; `agent/tests/train_serve_parity.rs` holds the two equal, with the
//! statistics of `score.rs` and the alerts' debounce, on a fixture train.py's own functions
//! wrote (`models/parity.py`). The golden vectors check the network alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

/// The model card, as `models/forecaster.card.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub version: String,
    /// The ONNX file, relative to the card.
    pub onnx: String,
    /// SHA-256 of the ONNX file, lowercase hex.
    pub sha256: String,
    pub input: TensorSpec,
    pub output: TensorSpec,
    /// Resampling rate of the window, Hz.
    pub rate_hz: f64,
    /// Window length in samples (10 s at 1 Hz).
    pub window: usize,
    /// The context signal every window carries beside its own (engine speed).
    pub context: Normaliser,
    /// Width of the one-hot signal-kind block at the end of the input.
    pub kinds: usize,
    /// The signals the model watches, each with its normalisation.
    pub signals: Vec<WatchedSignal>,
    pub thresholds: Thresholds,
    /// The budget the thresholds were calibrated to.
    pub false_alarm_budget_per_hour: f64,
    pub golden: Vec<Golden>,
    /// Largest absolute difference allowed between tract's output and the golden output.
    pub golden_tolerance: f32,
    /// Names of the signal kinds, in one-hot order.
    #[serde(default)]
    pub kind_names: Vec<String>,
    /// Where the training inputs lay, one entry per signal kind: a row outside it is one
    /// the model never saw, and for it the model abstains (the rules keep running). A card
    /// without one (older cards) never abstains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envelope: Vec<Envelope>,
    /// Free-form sections for people: training data, calibration, evaluation.
    #[serde(default)]
    pub training: serde_json::Value,
    #[serde(default)]
    pub evaluation: serde_json::Value,
}

/// The bounds of every input column over one kind's training rows, already widened by the
/// margin the training script states (`training.envelope_margin`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub low: Vec<f32>,
    pub high: Vec<f32>,
}

impl Envelope {
    /// Whether every column of `row` in `columns` lies within the bounds.
    fn holds(&self, row: &[f32], columns: std::ops::Range<usize>) -> bool {
        columns
            .into_iter()
            .all(|i| self.low[i] <= row[i] && row[i] <= self.high[i])
    }
}

/// One model step for one signal: what the model says, or that it abstains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The next tick's forecast; `None` when the inputs lie outside what the model was
    /// trained on (it abstains).
    pub forecast: Option<Forecast>,
    /// The level the signal should have now (the consistency check); `None` without a
    /// companion window or outside the envelope.
    pub level: Option<Forecast>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normaliser {
    pub signal: String,
    pub center: f64,
    pub scale: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchedSignal {
    pub signal: String,
    /// Index of the signal's kind in the one-hot block.
    pub kind: usize,
    /// Units of one normalised step of the window and of the forecast.
    pub scale: f64,
    /// Centre and scale of the level feature (where the signal sits in its range).
    pub center: f64,
    pub level_scale: f64,
    /// Spread added in quadrature to the forecast's (the bus resolution), signal units.
    pub sigma_floor: f64,
    /// Calibrated thresholds of this signal's statistics (see [`Thresholds`]).
    pub score: f64,
    pub cusum_h: f64,
    pub outlier_count: usize,
    /// The consistency check, for a signal whose level a companion tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelCheck>,
    /// Whether the signal's rows carry the engine speed. A cargo tank's do not: its
    /// temperature follows the air and the cargo, not the engine, so its rows hold zeros
    /// there and the model judges it the same on any engine, or with none sending.
    #[serde(default = "carries_context")]
    pub context: bool,
}

/// Cards older than the `context` field fed the engine speed to every signal.
fn carries_context() -> bool {
    true
}

/// What a signal's level should be, from its companion's window (and the engine speed):
/// the model's last two outputs. A coolant that drifts or sticks stops agreeing with the
/// oil long before a 10 s forecast could tell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelCheck {
    /// The companion signal, whose window is the last block of the input.
    pub companion: String,
    pub companion_center: f64,
    pub companion_scale: f64,
    /// Calibrated threshold on |EWMA| of the level residual.
    pub h: f64,
}

/// How the model's statistics are computed. Each watched signal's thresholds on them
/// (`score` for |residual| held `debounce_ticks` ticks, `cusum_h`, `outlier_count`) were
/// calibrated on normal drives and sit in its [`WatchedSignal`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub debounce_ticks: usize,
    /// CUSUM on the residual clipped to +-`cusum_clip`, less `cusum_k` per tick.
    pub cusum_k: f64,
    pub cusum_clip: f64,
    /// Residuals beyond `outlier` are counted over `outlier_window` ticks.
    pub outlier: f64,
    pub outlier_window: usize,
    /// The consistency statistic: an EWMA with this time constant, in ticks, of the level
    /// residual clipped to +-`level_clip`.
    pub level_tau: f64,
    pub level_clip: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Golden {
    pub input: Vec<f32>,
    pub output: Vec<f32>,
}

/// Why a model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model card {}: {source}; check the path", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model card {}: {source}; it must be the JSON models/train.py writes", path.display())]
    Card {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "model {}: SHA-256 is {found}, the card says {expected}; the file and the card are from different trainings, ship them together",
        path.display()
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("model {}: tract cannot load it: {message}", path.display())]
    Load { path: PathBuf, message: String },
    #[error("model {}: {message}; retrain with models/train.py", path.display())]
    Mismatch { path: PathBuf, message: String },
}

type Plan = Arc<TypedRunnableModel>;

/// The model's outputs: the change's mean and log spread, the level's mean and log spread.
pub const OUTPUTS: usize = 4;

/// A verified model, ready to run.
pub struct Model {
    pub card: ModelCard,
    /// `name/version`, what alerts carry.
    pub id: Arc<str>,
    plan: Plan,
    inputs: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("id", &self.id).finish()
    }
}

/// A one-step forecast, in signal units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    pub mean: f64,
    pub sigma: f64,
}

/// The config value (`[detect] model = "builtin"`) that selects the model built into the
/// agent: the committed `models/forecaster.onnx` and its card, checked like any other.
pub const BUILTIN: &str = "builtin";
/// The config value (`[detect] model = "none"`) that runs the rules without a model.
pub const NONE: &str = "none";
const BUILTIN_CARD: &str = include_str!("../../../models/forecaster.card.json");
const BUILTIN_ONNX: &[u8] = include_bytes!("../../../models/forecaster.onnx");

impl Model {
    /// The model built into the agent, verified against its card like a loaded one.
    pub fn builtin() -> Result<Model, ModelError> {
        let path = Path::new("models/forecaster.card.json (built in)");
        let card: ModelCard =
            serde_json::from_str(BUILTIN_CARD).map_err(|source| ModelError::Card {
                path: path.to_owned(),
                source,
            })?;
        Model::from_parts(card, BUILTIN_ONNX, path)
    }

    /// The model a config names: [`BUILTIN`] or the path of a card.
    pub fn from_config(choice: &Path) -> Result<Model, ModelError> {
        if choice == Path::new(BUILTIN) {
            Model::builtin()
        } else {
            Model::load(choice)
        }
    }

    /// Loads the card at `card_path` and the ONNX file it names, and verifies them.
    pub fn load(card_path: &Path) -> Result<Model, ModelError> {
        let text = std::fs::read_to_string(card_path).map_err(|source| ModelError::Read {
            path: card_path.to_owned(),
            source,
        })?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|source| ModelError::Card {
            path: card_path.to_owned(),
            source,
        })?;
        let onnx_path = card_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&card.onnx);
        let bytes = std::fs::read(&onnx_path).map_err(|source| ModelError::Read {
            path: onnx_path.clone(),
            source,
        })?;
        Model::from_parts(card, &bytes, &onnx_path)
    }

    /// Verifies `onnx` against `card` and builds the plan; `path` is for messages.
    pub fn from_parts(card: ModelCard, onnx: &[u8], path: &Path) -> Result<Model, ModelError> {
        let found = hex(&Sha256::digest(onnx));
        if !found.eq_ignore_ascii_case(&card.sha256) {
            return Err(ModelError::Checksum {
                path: path.to_owned(),
                expected: card.sha256.clone(),
                found,
            });
        }
        let mismatch = |message: String| ModelError::Mismatch {
            path: path.to_owned(),
            message,
        };
        let inputs = card.window * 3 + 1 + card.kinds;
        if card.input.shape != [1, inputs] || card.output.shape != [1, OUTPUTS] {
            return Err(mismatch(format!(
                "the card's shapes {:?} -> {:?} do not fit a {}-sample window with {} kinds \
                 (expected [1, {inputs}] -> [1, {OUTPUTS}])",
                card.input.shape, card.output.shape, card.window, card.kinds
            )));
        }
        let bad_envelope = card.envelope.iter().any(|e| {
            e.low.len() != inputs
                || e.high.len() != inputs
                || e.low
                    .iter()
                    .zip(&e.high)
                    .any(|(l, h)| l.partial_cmp(h).is_none_or(|o| o.is_gt()))
        });
        if bad_envelope || !(card.envelope.is_empty() || card.envelope.len() == card.kinds) {
            return Err(mismatch(format!(
                "the card's envelope must hold, for each of its {} kinds, {inputs} low and high                  bounds with low <= high",
                card.kinds
            )));
        }
        if card.rate_hz != 1.0 {
            return Err(mismatch(format!(
                "the card's rate is {} Hz; this agent resamples at 1 Hz",
                card.rate_hz
            )));
        }
        let plan = build_plan(onnx, inputs).map_err(|e| ModelError::Load {
            path: path.to_owned(),
            message: format!("{e:#}"),
        })?;
        let model = Model {
            id: Arc::from(format!("model:{}/{}", card.name, card.version)),
            card,
            plan,
            inputs,
        };
        if model.card.golden.is_empty() {
            return Err(mismatch("the card has no golden vectors".into()));
        }
        for (i, golden) in model.card.golden.iter().enumerate() {
            let out = model
                .run(&golden.input)
                .map_err(|e| mismatch(format!("golden vector {i} does not run: {e:#}")))?;
            let worst = out
                .iter()
                .zip(&golden.output)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let within = worst <= model.card.golden_tolerance; // false for NaN too
            if out.len() != golden.output.len() || !within {
                return Err(mismatch(format!(
                    "golden vector {i}: tract gives {out:?}, the card says {:?}",
                    golden.output
                )));
            }
        }
        Ok(model)
    }

    /// Runs the plan on one input row; returns the raw outputs: the change's normalised
    /// mean and log spread, then the level's.
    pub fn run(&self, input: &[f32]) -> TractResult<[f32; OUTPUTS]> {
        anyhow_ensure(input.len() == self.inputs, "input length")?;
        let tensor = Tensor::from_shape(&[1, self.inputs], input)?;
        let out = self.plan.run(tvec!(tensor.into()))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        let values = view
            .as_slice()
            .ok_or_else(|| TractError::msg("output not contiguous"))?;
        values
            .try_into()
            .map_err(|_| TractError::msg("unexpected output length"))
    }

    /// The watched signal's card entry, if the model watches it.
    pub fn watched(&self, signal: &str) -> Option<&WatchedSignal> {
        self.card.signals.iter().find(|w| w.signal == signal)
    }

    /// Forecasts the tick after `window` (oldest first, no gaps), and for a signal with a
    /// consistency check the level its newest value should have; `context` is the context
    /// signal over the same ticks (unread for a signal without it) and `companion` the
    /// companion's, both without gaps (a missing input is masked by the caller, never
    /// imputed). Where the row lies outside the card's envelope for the signal's kind, the
    /// part it feeds abstains.
    pub fn forecast(
        &self,
        watched: &WatchedSignal,
        window: &[f64],
        context: &[f64],
        companion: Option<&[f64]>,
        scratch: &mut Vec<f32>,
    ) -> TractResult<Step> {
        self.card
            .features(watched, window, context, companion, scratch);
        let (forecast_ok, level_ok) = self.card.within_envelope(watched, scratch);
        let level_ok = level_ok && watched.level.is_some() && companion.is_some();
        if !forecast_ok && !level_ok {
            return Ok(Step {
                forecast: None,
                level: None,
            });
        }
        let [mu, log_sigma, level_mu, level_log_sigma] = self.run(scratch)?;
        Ok(Step {
            forecast: forecast_ok.then(|| self.card.forecast(watched, window, mu, log_sigma)),
            level: level_ok.then(|| self.card.level(watched, level_mu, level_log_sigma)),
        })
    }
}

impl ModelCard {
    /// The input columns that say whether each part knows the conditions: for the
    /// forecaster the level, the engine speed and the kind (never the window's own
    /// changes: a tank heating faster than any training window is what it must judge), and
    /// for the consistency check the engine speed, the kind and the companion (it reads no
    /// value of its own signal). `FORECAST_CONDITIONS` and `LEVEL_CONDITIONS` in train.py.
    pub fn conditions(&self) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let forecaster = self.window..2 * self.window + 1 + self.kinds;
        let level = self.window + 1..3 * self.window + 1 + self.kinds;
        (forecaster, level)
    }

    /// Whether `row` lies within the training envelope of `watched`'s kind, for the
    /// forecaster's conditions and for the consistency check's. Without an envelope, always.
    pub fn within_envelope(&self, watched: &WatchedSignal, row: &[f32]) -> (bool, bool) {
        let Some(envelope) = self.envelope.get(watched.kind) else {
            return (true, true);
        };
        let (forecaster, level) = self.conditions();
        (envelope.holds(row, forecaster), envelope.holds(row, level))
    }

    /// The model's input row for one window; the same arithmetic as `models/train.py`.
    pub fn features(
        &self,
        watched: &WatchedSignal,
        window: &[f64],
        context: &[f64],
        companion: Option<&[f64]>,
        out: &mut Vec<f32>,
    ) {
        out.clear();
        let last = window[window.len() - 1];
        out.extend(window.iter().map(|v| ((v - last) / watched.scale) as f32));
        out.push(((last - watched.center) / watched.level_scale) as f32);
        let ctx = &self.context;
        if watched.context {
            out.extend(context.iter().map(|c| {
                if c.is_nan() {
                    0.0
                } else {
                    ((c - ctx.center) / ctx.scale) as f32
                }
            }));
        } else {
            out.extend(std::iter::repeat_n(0.0, self.window));
        }
        out.extend((0..self.kinds).map(|k| if k == watched.kind { 1.0 } else { 0.0 }));
        match (&watched.level, companion) {
            (Some(check), Some(values)) => out.extend(values.iter().map(|c| {
                if c.is_nan() {
                    0.0
                } else {
                    ((c - check.companion_center) / check.companion_scale) as f32
                }
            })),
            _ => out.extend(std::iter::repeat_n(0.0, self.window)),
        }
    }

    /// The level a signal's newest value should have, in signal units, from the model's
    /// last two raw outputs.
    pub fn level(&self, watched: &WatchedSignal, mu: f32, log_sigma: f32) -> Forecast {
        let spread = (log_sigma as f64).clamp(-10.0, 10.0).exp() * watched.level_scale;
        Forecast {
            mean: watched.center + mu as f64 * watched.level_scale,
            sigma: (spread * spread + watched.sigma_floor * watched.sigma_floor).sqrt(),
        }
    }

    /// The forecast in signal units from the model's raw outputs.
    pub fn forecast(
        &self,
        watched: &WatchedSignal,
        window: &[f64],
        mu: f32,
        log_sigma: f32,
    ) -> Forecast {
        let last = window[window.len() - 1];
        let spread = (log_sigma as f64).clamp(-10.0, 10.0).exp() * watched.scale;
        Forecast {
            mean: last + mu as f64 * watched.scale,
            sigma: (spread * spread + watched.sigma_floor * watched.sigma_floor).sqrt(),
        }
    }
}

fn build_plan(onnx: &[u8], inputs: usize) -> TractResult<Plan> {
    tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(onnx))?
        .with_input_fact(0, f32::fact([1, inputs]).into())?
        .into_optimized()?
        .into_runnable()
}

fn anyhow_ensure(ok: bool, what: &str) -> TractResult<()> {
    if ok {
        Ok(())
    } else {
        Err(TractError::msg(format!("unexpected {what}")))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current model and the one before it, shared by the detector and whoever swaps.
#[derive(Clone, Debug, Default)]
pub struct ModelHandle {
    slots: Arc<Mutex<Slots>>,
}

#[derive(Debug, Default)]
struct Slots {
    current: Option<Arc<Model>>,
    previous: Option<Arc<Model>>,
}

/// What a swap did.
#[derive(Clone, Debug, PartialEq)]
pub struct Swapped {
    pub now: Arc<str>,
    pub before: Option<Arc<str>>,
}

impl ModelHandle {
    pub fn new(model: Option<Model>) -> Self {
        Self::shared(model.map(Arc::new))
    }

    /// A handle whose model is already verified and shared (loaded once and run by many
    /// detectors, as `vigil eval` and `vigil replay` do).
    pub fn shared(model: Option<Arc<Model>>) -> Self {
        ModelHandle {
            slots: Arc::new(Mutex::new(Slots {
                current: model,
                previous: None,
            })),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model in use, if any.
    pub fn current(&self) -> Option<Arc<Model>> {
        self.slots().current.clone()
    }

    /// Loads and verifies the card at `card_path`, then makes it current in one step; the
    /// model it replaces is kept for [`ModelHandle::rollback`]. On any error nothing changes.
    pub fn swap_from(&self, card_path: &Path) -> Result<Swapped, ModelError> {
        let model = Model::load(card_path)?;
        Ok(self.install(model))
    }

    /// As [`ModelHandle::swap_from`] for a card and ONNX bytes that came in a job document.
    pub fn swap_bytes(&self, card_json: &str, onnx: &[u8]) -> Result<Swapped, ModelError> {
        let path = PathBuf::from("(job document)");
        let card = serde_json::from_str(card_json).map_err(|source| ModelError::Card {
            path: path.clone(),
            source,
        })?;
        let model = Model::from_parts(card, onnx, &path)?;
        Ok(self.install(model))
    }

    fn install(&self, model: Model) -> Swapped {
        self.install_shared(Arc::new(model))
    }

    /// Makes an already verified model current (one loaded once and shared, as `vigil
    /// eval` does across drives).
    pub fn install_shared(&self, model: Arc<Model>) -> Swapped {
        let mut slots = self.slots();
        let now = model.id.clone();
        let old = slots.current.replace(model);
        let before = old.as_ref().map(|m| m.id.clone());
        if old.is_some() {
            slots.previous = old;
        }
        tracing::info!(event = "model_swapped", now = %now, before = ?before);
        Swapped { now, before }
    }

    /// Runs no model from now on (the rules alone); the model it replaces is kept as the
    /// previous one.
    pub fn clear(&self) {
        let mut slots = self.slots();
        if let Some(old) = slots.current.take() {
            slots.previous = Some(old);
        }
        tracing::info!(event = "model_cleared", "running the rules without a model");
    }

    /// Puts the previous model back; `None` when there is none.
    pub fn rollback(&self) -> Option<Swapped> {
        let mut slots = self.slots();
        let previous = slots.previous.take()?;
        let now = previous.id.clone();
        let old = slots.current.replace(previous);
        let before = old.as_ref().map(|m| m.id.clone());
        slots.previous = old;
        Some(Swapped { now, before })
    }
}

/// The detect stage's side of a model update. The agent's is the detect stage's
/// [`ModelHandle`]; the uplink's jobs call it, and tests use fakes that record calls.
pub trait ModelUpdater: Send + Sync + 'static {
    /// The running model's version, for the status message.
    fn version(&self) -> Option<String>;
    /// Which model runs, where it came from and why any newer one was passed over, for
    /// the status message and the shadow; `None` when the updater does not know.
    fn running(&self) -> Option<super::store::Running> {
        None
    }
    /// Loads `onnx` (with its model card, when the job carries one) and swaps it in as
    /// `version`. On error the running model is unchanged.
    fn swap(&self, version: &str, onnx: &[u8], card: Option<&str>) -> Result<(), String>;
    /// Puts back the model that ran before the last successful swap.
    fn rollback(&self) -> Result<(), String>;
}

/// Model-update jobs swap the detect stage's model through its handle: the job's card and
/// ONNX bytes are verified like a loaded model (hash, shapes, golden vectors through tract)
/// before anything changes.
impl ModelUpdater for ModelHandle {
    fn version(&self) -> Option<String> {
        self.current().map(|m| m.card.version.clone())
    }

    fn swap(&self, version: &str, onnx: &[u8], card: Option<&str>) -> Result<(), String> {
        let card =
            card.ok_or("the job carries no model card (model.card); the detect stage needs it")?;
        let swapped = self.swap_bytes(card, onnx).map_err(|e| e.to_string())?;
        tracing::info!(event = "model_job_swapped", version, now = %swapped.now);
        Ok(())
    }

    fn rollback(&self) -> Result<(), String> {
        ModelHandle::rollback(self)
            .map(|_| ())
            .ok_or_else(|| "there is no previous model to roll back to".to_owned())
    }
}

/// The committed model's card, for tests and the default.
pub fn committed_card_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/forecaster.card.json")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn committed() -> Arc<Model> {
        Arc::new(Model::load(&committed_card_path()).expect("the committed model matches its card"))
    }

    #[test]
    fn tract_reproduces_the_golden_vectors_of_the_committed_model() {
        let model = committed();
        assert!(model.card.golden.len() >= 4);
        for golden in &model.card.golden {
            let out = model.run(&golden.input).unwrap();
            for (a, b) in out.iter().zip(&golden.output) {
                assert!(
                    (a - b).abs() <= model.card.golden_tolerance,
                    "{out:?} vs {:?}",
                    golden.output
                );
            }
        }
    }

    /// Copies the committed card and model into a temporary folder, changed by `edit`.
    fn tampered(
        edit: impl FnOnce(&mut serde_json::Value, &mut Vec<u8>),
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let card_path = committed_card_path();
        let mut card: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
        let mut onnx = std::fs::read(card_path.with_file_name("forecaster.onnx")).unwrap();
        edit(&mut card, &mut onnx);
        let out = dir.path().join("card.json");
        std::fs::write(&out, card.to_string()).unwrap();
        std::fs::write(dir.path().join("forecaster.onnx"), onnx).unwrap();
        (dir, out)
    }

    #[test]
    fn a_model_that_does_not_match_its_card_is_refused_by_name() {
        type Edit = fn(&mut serde_json::Value, &mut Vec<u8>);
        let cases: [(Edit, &str); 4] = [
            (|_, onnx| *onnx.last_mut().unwrap() ^= 1, "SHA-256"),
            (
                |card, _| card["golden"][0]["output"][0] = serde_json::json!(123.0),
                "golden vector 0",
            ),
            (
                |card, _| card["window"] = serde_json::json!(12),
                "do not fit",
            ),
            (
                |card, _| card["onnx"] = serde_json::json!("missing.onnx"),
                "missing.onnx",
            ),
        ];
        for (edit, expected) in cases {
            let (_dir, path) = tampered(edit);
            let err = Model::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
        }
        let err = Model::load(Path::new("/nonexistent/card.json")).unwrap_err();
        assert!(matches!(err, ModelError::Read { .. }));
    }

    #[test]
    fn a_swap_verifies_first_keeps_the_previous_model_and_rolls_back() {
        let handle = ModelHandle::new(None);
        let (_dir, bad) = tampered(|_, onnx| onnx[10] ^= 0xFF);
        assert!(handle.swap_from(&bad).is_err());
        assert!(handle.current().is_none(), "a failed swap changes nothing");
        let first = handle.swap_from(&committed_card_path()).unwrap();
        assert_eq!(first.before, None);
        let (_dir2, renamed) = tampered(|card, _| card["version"] = serde_json::json!("1.0.1"));
        let second = handle.swap_from(&renamed).unwrap();
        assert_eq!(second.before.as_deref(), Some(&*first.now));
        assert_eq!(&*second.now, "model:vigil-forecaster/1.0.1");
        let back = handle.rollback().unwrap();
        assert_eq!(back.now, first.now);
        assert_eq!(handle.current().unwrap().id, first.now);
        let card = std::fs::read_to_string(committed_card_path()).unwrap();
        let onnx = std::fs::read(committed_card_path().with_file_name("forecaster.onnx")).unwrap();
        assert!(handle.swap_bytes(&card, &onnx[1..]).is_err());
        assert!(handle.swap_bytes(&card, &onnx).is_ok());
    }
}
