//! The [`Detector`]: readings in, alert events out; a pure struct, so replay, evaluation and
//! tests drive it reading by reading exactly as the detect task does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::alert::{AlertEvent, AlertKind, AlertState, Severity, Verdict};
use super::config::BUILT_IN;
use super::incident::Incidents;
use super::model::{Forecast, Model, ModelHandle};
use super::position::PositionTracker;
use super::rules::{self, Bounds, Class, Rules};
use super::score::{self, Residuals};
use super::window::Grid;
use super::{DetectConfig, Limit, Tuning};
use crate::reading::{Origin, Reading, Signal, Timestamp};
use crate::signals::{
    AMBIENT_TEMPERATURE, COOLANT_TEMPERATURE, ENGINE_SPEED, FUEL_TEMPERATURE, OIL_TEMPERATURE,
    tank_compartment, tank_temperature,
};
use crate::vehicle::{CargoClass, VehicleConfig};

/// The name and version alerts of the limit rule carry.
const LIMIT_RULE: &str = "limits/1";

/// Ticks of evidence an alert carries (the model's window).
const EVIDENCE_TICKS: usize = 10;

/// The name and version alerts of the sender check carry.
const SENDERS_RULE: &str = "senders/1";
/// How far two senders of one temperature may differ at a tick (degC): each rounds to 1 degC
/// on the bus, and a 1 s offset between them in a fast warm-up adds about one more. Beyond
/// it, held for [`SENDER_HOLD`], one of them is lying or broken.
const SENDER_TOLERANCE: f64 = 3.0;
/// How long two senders must disagree before it is an alert.
const SENDER_HOLD: Duration = Duration::from_secs(5);

/// A high limit on one signal.
#[derive(Clone, Copy, Debug, PartialEq)]
struct HighLimit {
    limit: Limit,
    hysteresis: f64,
}

impl HighLimit {
    fn judge(&self, value: f64) -> Verdict {
        let Limit { warning, critical } = self.limit;
        let (severity, threshold) = if value >= critical {
            (Some(Severity::Critical), critical)
        } else if value >= warning {
            (Some(Severity::Warning), warning)
        } else {
            (None, warning)
        };
        Verdict {
            severity,
            threshold,
            clear: value < warning - self.hysteresis,
            score: None,
        }
    }
}

/// A signal the detector watches: its rule class and the companion its stuck rule looks at.
#[derive(Clone, Debug)]
struct Spec {
    signal: Signal,
    class: Class,
    companion: Option<Signal>,
}

/// One watched stream: a [`Spec`]'s signal from one origin, with the model's state for it.
/// A signal sent by two controllers is two of these, judged apart.
#[derive(Clone, Debug)]
struct Watched {
    signal: Signal,
    origin: Origin,
    class: Class,
    companion: Option<Signal>,
    residuals: Residuals,
    /// Ticks with a whole window of the signal, where the model could have run...
    model_ticks: u64,
    /// ...of which it abstained (the inputs outside its training envelope)...
    abstained_ticks: u64,
    /// ...or was masked (the engine speed had a gap).
    masked_ticks: u64,
    /// Ticks the model ran on (a forecast or an abstention).
    model_runs: u64,
}

/// Signal-ticks where the model could have run (a whole window of the signal), and of
/// those the ones where it abstained (inputs outside its training envelope) or was masked
/// (the engine speed had a gap). The rules run on all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModelCoverage {
    pub ticks: u64,
    pub abstained: u64,
    pub masked: u64,
    /// The signals the model has run on at least once, in the order they are watched.
    pub signals: Vec<Signal>,
}

/// What the detect stage tells the fleet in the status message: how much of the time the
/// model stood aside, the parameters this truck does not send, and the watched signals
/// more than one controller sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DetectStatus {
    pub model: ModelCoverage,
    pub unsupported: Vec<Signal>,
    pub senders: Vec<Senders>,
    /// Readings dropped because their signal already had the most origins a grid keeps.
    pub origins_refused: u64,
}

/// A watched signal heard from more than one origin, first heard first.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Senders {
    pub signal: Signal,
    pub origins: Vec<String>,
}

/// The newest tick's value of every watched stream (`NaN` for a gap): what the cab display
/// shows beside an alert, so the driver sees the tank still climbing, not the value it was
/// raised at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live(Vec<(Signal, Origin, f64)>);

impl Live {
    #[cfg(test)]
    pub(crate) fn of(values: Vec<(Signal, Origin, f64)>) -> Self {
        Live(values)
    }

    /// The stream's newest value, if it has one.
    pub fn get(&self, signal: &Signal, origin: &Origin) -> Option<f64> {
        self.0
            .iter()
            .find(|(s, o, _)| s == signal && o == origin)
            .map(|(_, _, v)| *v)
            .filter(|v| !v.is_nan())
    }
}

/// What the detector saw at one tick for one signal, for reports.
#[derive(Clone, Debug, PartialEq)]
pub struct TracePoint {
    pub signal: Signal,
    pub at: Timestamp,
    pub value: f64,
    /// The forecast made for this tick, if the model ran.
    pub forecast: Option<Forecast>,
    /// The standardised residual, if scored.
    pub residual: Option<f64>,
}

/// Rules, the model and alert states for one vehicle.
pub struct Detector {
    limits: HashMap<Signal, HighLimit>,
    rules: Rules,
    grid: Grid,
    specs: Vec<Spec>,
    /// One per (spec, origin heard), in the specs' order; grows as senders are heard.
    watched: Vec<Watched>,
    /// The grid's streams already given a [`Watched`].
    streams_seen: u64,
    /// The engine speed, which the rules read beside a coolant.
    context: Signal,
    /// The running model's context signal (its card's; the engine speed so far).
    model_context: Signal,
    /// The tank compartments, whose limits follow the cargo class.
    compartments: u8,
    model: ModelHandle,
    /// The id of the model the residual states belong to; a swap resets them.
    model_id: Option<Arc<str>>,
    states: HashMap<(Signal, Origin, AlertKind), AlertState>,
    debounce: Duration,
    realert: Duration,
    last_id: u64,
    /// Newest wall time less monotonic time, to stamp ticks on both clocks.
    wall_offset_us: i64,
    scratch: Scratch,
    trace: Option<Vec<TracePoint>>,
    /// Watched signals already reported as not sent by this truck (each is reported once).
    reported_unsupported: HashSet<Signal>,
    /// Findings gathered into incidents; `None` reports the findings themselves.
    incidents: Option<Incidents>,
    /// One step's findings, kept to spare an allocation a step.
    found: Vec<AlertEvent>,
    /// The newest position fix, which every alert event carries; never judged.
    position: PositionTracker,
}

#[derive(Default)]
struct Scratch {
    window: Vec<f64>,
    context: Vec<f64>,
    companion: Vec<f64>,
    features: Vec<f32>,
    judged: Vec<rules::Judged>,
    evidence: Vec<f64>,
}

/// The signals the detect stage judges on a vehicle: the engine's coolant, oil and fuel
/// temperatures, each compartment's tank temperature, then the config's `[[detect.watch]]`
/// (their limits, rules and model). The running model's card may add its own signals
/// (see [`Detector::new`]). `check-config` holds these against what the configured
/// sources can give.
pub fn watched_signals(vehicle: &VehicleConfig, detect: &DetectConfig) -> Vec<Signal> {
    BUILT_IN
        .into_iter()
        .map(Signal::new)
        .chain((1..=vehicle.compartments).map(tank_temperature))
        .chain(detect.watch.iter().map(|w| Signal::new(&w.signal)))
        .collect()
}

/// The high limit of every watched signal that has one, for a cargo class.
fn high_limits(
    detect: &DetectConfig,
    cargo: CargoClass,
    compartments: u8,
) -> HashMap<Signal, HighLimit> {
    let engine = &detect.engine;
    let mut limits = vec![
        (
            Signal::new(COOLANT_TEMPERATURE),
            Limit {
                warning: engine.coolant_warning,
                critical: engine.coolant_critical,
            },
        ),
        (
            Signal::new(OIL_TEMPERATURE),
            Limit {
                warning: engine.oil_warning,
                critical: engine.oil_critical,
            },
        ),
    ];
    // A cargo without limits was refused by the config check; nothing to watch then.
    if let Some(tank) = detect.tank_limit(cargo) {
        limits.extend((1..=compartments).map(|n| (tank_temperature(n), tank)));
    }
    limits.extend(
        detect
            .watch
            .iter()
            .filter_map(|w| Some((Signal::new(&w.signal), w.limit_for(cargo)?))),
    );
    limits
        .into_iter()
        .map(|(signal, limit)| {
            let rule = HighLimit {
                limit,
                hysteresis: detect.hysteresis,
            };
            (signal, rule)
        })
        .collect()
}

impl Detector {
    /// The detect stage for a vehicle with a `[detect]` section and the model in `model`
    /// (a handle whose model may be `None`: the rules and limits then run alone). The
    /// agent, `vigil replay` and `vigil eval` all build it here, so they judge alike.
    pub fn new(vehicle: &VehicleConfig, detect: &DetectConfig, model: ModelHandle) -> Self {
        let (coolant, oil) = (
            Signal::new(COOLANT_TEMPERATURE),
            Signal::new(OIL_TEMPERATURE),
        );
        let engine = |signal: &Signal, class, companion: Option<&Signal>| Spec {
            signal: signal.clone(),
            class,
            companion: companion.cloned(),
        };
        let mut specs = vec![
            engine(&coolant, Class::Coolant, Some(&oil)),
            engine(&oil, Class::Engine, Some(&coolant)),
            // Fuel follows the tank and the air far more than the oil: no companion, so
            // its 1-degC steps are never taken for a stuck sensor.
            engine(&Signal::new(FUEL_TEMPERATURE), Class::Engine, None),
        ];
        // A tank's companion is the air it trades heat with through its insulation.
        let air = Signal::new(AMBIENT_TEMPERATURE);
        specs.extend((1..=vehicle.compartments).map(|n| Spec {
            signal: tank_temperature(n),
            class: Class::Tank,
            companion: Some(air.clone()),
        }));
        specs.extend(detect.watch.iter().map(|w| Spec {
            signal: Signal::new(&w.signal),
            class: Class::Other(Bounds::of(w)),
            companion: None,
        }));
        let context = Signal::new(ENGINE_SPEED);
        let grid = Grid::new(
            specs
                .iter()
                .map(|w| w.signal.clone())
                .chain([context.clone(), air]),
        );
        let mut detector = Detector {
            limits: high_limits(detect, vehicle.cargo, vehicle.compartments),
            rules: Rules::new(&detect.rules),
            grid,
            specs,
            watched: Vec::new(),
            streams_seen: 0,
            model_context: context.clone(),
            context,
            compartments: vehicle.compartments,
            model,
            model_id: None,
            states: HashMap::new(),
            debounce: detect.debounce,
            realert: detect.realert,
            last_id: 0,
            wall_offset_us: 0,
            scratch: Scratch::default(),
            trace: None,
            reported_unsupported: HashSet::new(),
            incidents: Some(Incidents::default()),
            found: Vec::new(),
            position: PositionTracker::default(),
        };
        if let Some(model) = detector.model.current() {
            detector.watch_card(&model);
        }
        detector
    }

    /// Watches what the model's card needs beside the specs: each signal it judges (a
    /// signal no spec has is watched with dropout and sensor-fault rules only, and the
    /// model), its context and its level checks' companions.
    fn watch_card(&mut self, model: &Model) {
        let card = &model.card;
        for watched in &card.signals {
            let signal = Signal::new(&watched.signal);
            // How many compartments the tank has is the vehicle's to say, not the card's.
            let tank = tank_compartment(&watched.signal).is_some();
            if !tank && !self.specs.iter().any(|spec| spec.signal == signal) {
                tracing::info!(
                    event = "watching_model_signal",
                    signal = %signal,
                    model = %model.id,
                    "the model's card lists a signal the config does not watch: watched for the model, dropout and sensor fault"
                );
                self.grid.watch(signal.clone());
                self.specs.push(Spec {
                    signal,
                    class: Class::Other(Bounds::default()),
                    companion: None,
                });
            }
            if let Some(check) = &watched.level {
                self.grid.watch(Signal::new(&check.companion));
            }
        }
        self.model_context = Signal::new(&card.context.signal);
        self.grid.watch(self.model_context.clone());
    }

    /// The handle to swap the model through; clones share it.
    pub fn model_handle(&self) -> ModelHandle {
        self.model.clone()
    }

    /// A detector that reports every finding on its own (each rule's and the model's
    /// alerts, as `vigil eval` scores them per kind) instead of incidents.
    pub fn findings_only(mut self) -> Self {
        self.incidents = None;
        self
    }

    /// Keeps a [`TracePoint`] per signal and tick from now on (for replay reports).
    pub fn keep_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    pub fn take_trace(&mut self) -> Vec<TracePoint> {
        self.trace.take().unwrap_or_default()
    }

    /// Judges one reading; appends the alert events it causes to `out`: incidents, or the
    /// findings themselves for a detector made [`Detector::findings_only`].
    pub fn observe(&mut self, reading: &Reading, out: &mut Vec<AlertEvent>) {
        self.wall_offset_us = reading.at.wall_us - reading.at.mono.as_micros() as i64;
        let mut found = std::mem::take(&mut self.found);
        let restarts = self.grid.restarts();
        let ticks = self.grid.push(reading);
        // The reading is pending in its column until its tick closes; a stream it started
        // is judged from the first tick it has.
        self.judge_ticks(restarts, ticks, &mut found);
        self.add_streams();
        self.judge_limit(reading, &mut found);
        let first = out.len();
        self.report(reading.at.mono, &mut found, out);
        self.found = found;
        // Events this reading caused carry the position known before it came.
        self.position.stamp(&mut out[first..]);
        self.position.observe(reading);
    }

    /// Judges the ticks that have passed by `now` on the readings' monotonic clock when no
    /// reading came to close them (a silent bus): so a dropout is raised on time, stamped
    /// with the tick it was raised at.
    pub fn advance(&mut self, now: Duration, out: &mut Vec<AlertEvent>) {
        let mut found = std::mem::take(&mut self.found);
        let restarts = self.grid.restarts();
        let ticks = self.grid.advance(now);
        self.judge_ticks(restarts, ticks, &mut found);
        let first = out.len();
        self.report(now, &mut found, out);
        self.found = found;
        self.position.stamp(&mut out[first..]);
    }

    /// Judges the ticks the grid just closed, after forgetting what a jump in the readings'
    /// clock (the grid restarted since it counted `restarts`) cut short.
    fn judge_ticks(
        &mut self,
        restarts: u64,
        ticks: std::ops::Range<u64>,
        out: &mut Vec<AlertEvent>,
    ) {
        if self.grid.restarts() != restarts {
            self.restarted();
        }
        for tick in ticks {
            self.tick(tick, out);
        }
    }

    /// One step's findings to `out`: gathered into incidents (and the incidents due to
    /// clear by `now`), or as they are. Leaves `found` empty.
    fn report(&mut self, now: Duration, found: &mut Vec<AlertEvent>, out: &mut Vec<AlertEvent>) {
        let Some(incidents) = &mut self.incidents else {
            out.append(found);
            return;
        };
        incidents.feed(found, out);
        let now = Timestamp {
            wall_us: self.wall_offset_us + now.as_micros() as i64,
            mono: now,
        };
        incidents.advance(now, out);
    }

    /// The hard limit on one reading, judged at once: a limit must not wait for a tick.
    fn judge_limit(&mut self, reading: &Reading, out: &mut Vec<AlertEvent>) {
        let Some(value) = reading.value() else {
            return;
        };
        let Some(rule) = self.limits.get(&reading.signal) else {
            return;
        };
        let verdict = rule.judge(value);
        let evidence = &mut self.scratch.evidence;
        if let Some(column) = self.grid.column_from(&reading.signal, &reading.origin) {
            column.copy_last(EVIDENCE_TICKS.min(column.len()), evidence);
        }
        let state = state_for(
            &mut self.states,
            (&reading.signal, &reading.origin, None),
            AlertKind::HighLimit,
            LIMIT_RULE.into(),
            self.debounce,
            self.realert,
        );
        out.extend(state.observe(reading.at, value, verdict, evidence, &mut self.last_id));
    }

    /// Gives every stream the grid has started since the last call its [`Watched`], keeping
    /// the specs' order (so alerts of one tick come out in the same order on every run).
    fn add_streams(&mut self) {
        if self.grid.streams_started() == self.streams_seen {
            return;
        }
        self.streams_seen = self.grid.streams_started();
        let mut watched = Vec::with_capacity(self.watched.len() + 1);
        for spec in &self.specs {
            for (origin, _) in self.grid.streams(&spec.signal) {
                let at = self
                    .watched
                    .iter()
                    .position(|w| w.signal == spec.signal && w.origin == *origin);
                watched.push(match at {
                    Some(at) => self.watched.swap_remove(at),
                    None => {
                        if self.grid.streams(&spec.signal).count() > 1 {
                            tracing::warn!(
                                event = "second_sender",
                                signal = %spec.signal,
                                origin = %origin,
                                "another controller sends this signal: judged as a stream of its own"
                            );
                        }
                        Watched {
                            signal: spec.signal.clone(),
                            origin: origin.clone(),
                            class: spec.class,
                            companion: spec.companion.clone(),
                            residuals: Residuals::default(),
                            model_ticks: 0,
                            abstained_ticks: 0,
                            masked_ticks: 0,
                            model_runs: 0,
                        }
                    }
                });
            }
        }
        self.watched = watched;
    }

    /// After a jump in the readings' clock: what was under way is not carried across it.
    /// Pending alerts start over and forecasts are dropped; active alerts stay until their
    /// condition clears.
    fn restarted(&mut self) {
        tracing::warn!(
            event = "detect_clock_jump",
            "the readings' clock jumped beyond the window: the detector restarts its window"
        );
        for w in &mut self.watched {
            w.residuals = Residuals::default();
        }
        for state in self.states.values_mut() {
            state.interrupt();
        }
    }

    /// Judges one closed tick of every watched signal.
    fn tick(&mut self, tick: u64, out: &mut Vec<AlertEvent>) {
        let at = Timestamp {
            wall_us: self.wall_offset_us + tick as i64 * 1_000_000,
            mono: Duration::from_secs(tick),
        };
        let model = self.model.current();
        let model_id = model.as_ref().map(|m| m.id.clone());
        if model_id != self.model_id {
            // A swapped model starts from fresh residuals; its alerts carry its id.
            for w in &mut self.watched {
                w.residuals = Residuals::default();
            }
            self.model_id = model_id;
            if let Some(model) = &model {
                self.watch_card(model);
            }
        }
        let window = model.as_ref().map_or(EVIDENCE_TICKS, |m| m.card.window);
        for i in 0..self.watched.len() {
            let w = &self.watched[i];
            let Some(column) = self.grid.column_from(&w.signal, &w.origin) else {
                continue;
            };
            // The engine speed over the window (the same controller's when it sends one),
            // whole: a gap masks the model, never imputed.
            let context_ok = self
                .grid
                .column_near(&self.model_context, &w.origin)
                .is_some_and(|c| c.copy_last(window, &mut self.scratch.context))
                && self.scratch.context.iter().all(|v| !v.is_nan());
            if column.unsupported() && self.reported_unsupported.insert(w.signal.clone()) {
                tracing::info!(
                    event = "parameter_unsupported",
                    signal = %w.signal,
                    origin = %w.origin,
                    "the truck says this parameter is not available since its first message: not broadcast here, never alarmed"
                );
            }
            let s = &mut self.scratch;
            let value = column.newest();
            column.copy_last(EVIDENCE_TICKS.min(column.len()), &mut s.evidence);
            s.judged.clear();
            let companion = w
                .companion
                .as_ref()
                .and_then(|c| self.grid.column_near(c, &w.origin));
            let engine = self.grid.column_near(&self.context, &w.origin);
            self.rules
                .judge(w.class, column, companion, engine, &mut s.judged);
            let mut point = TracePoint {
                signal: w.signal.clone(),
                at,
                value,
                forecast: None,
                residual: None,
            };
            if let Some(model) = &model
                && let Some(spec) = model.watched(w.signal.as_str())
            {
                let th = &model.card.thresholds;
                let w = &mut self.watched[i];
                match w.residuals.step(tick, value, th) {
                    Some(stats) => {
                        point.forecast = Some(stats.forecast);
                        point.residual = Some(stats.residual);
                        s.judged.extend(score::verdicts(&stats, spec));
                    }
                    // No residual this tick (a gap, or no forecast for it): judged as training
                    // holds its statistics (see `score::unscored`).
                    None => s
                        .judged
                        .extend(score::unscored(w.residuals.carried(), spec)),
                }
                let full = column.copy_last(model.card.window, &mut s.window)
                    && s.window.iter().all(|v| !v.is_nan());
                // The companion's window, whole, or none: the consistency check does not
                // run on a companion it has not seen (a truck without an oil signal).
                let companion = spec.level.as_ref().and_then(|check| {
                    let column = self
                        .grid
                        .column_near(&Signal::new(check.companion.as_str()), &w.origin)?;
                    (column.copy_last(model.card.window, &mut s.companion)
                        && s.companion.iter().all(|v| !v.is_nan()))
                    .then_some(s.companion.as_slice())
                });
                let mut leveled = None;
                if full {
                    w.model_ticks += 1;
                }
                // A signal whose rows carry no engine speed (a tank) needs none whole.
                if full && (context_ok || !spec.context) {
                    match model.forecast(spec, &s.window, &s.context, companion, &mut s.features) {
                        Ok(step) => {
                            w.model_runs += 1;
                            match step.forecast {
                                Some(forecast) => w.residuals.expect(tick + 1, forecast),
                                None => w.abstained_ticks += 1,
                            }
                            leveled = step
                                .level
                                .map(|level| w.residuals.level_step(value, level, th));
                        }
                        Err(e) => tracing::warn!(event = "model_step_failed", error = %e),
                    }
                } else if full {
                    w.masked_ticks += 1;
                }
                // Without a level this tick the consistency statistic carries over, as in
                // training.
                if let Some(check) = &spec.level {
                    let statistic = leveled.unwrap_or_else(|| w.residuals.level_carried());
                    s.judged
                        .push(score::consistency_verdict(statistic, check.h));
                }
            }
            let w = &self.watched[i];
            for &(kind, verdict) in &s.judged {
                let rule: Arc<str> = match (&self.model_id, kind.is_model()) {
                    (Some(id), true) => id.clone(),
                    _ => rules::RULES.into(),
                };
                let state = state_for(
                    &mut self.states,
                    (&w.signal, &w.origin, None),
                    kind,
                    rule.clone(),
                    self.debounce,
                    self.realert,
                );
                if kind.is_model() {
                    state.set_rule(rule);
                }
                let shown = if value.is_nan() { 0.0 } else { value };
                out.extend(state.observe(at, shown, verdict, &s.evidence, &mut self.last_id));
            }
            if let Some(trace) = &mut self.trace {
                trace.push(point);
            }
        }
        self.judge_senders(at, out);
    }

    /// Compares every later sender of a watched signal with the first one heard, tick by
    /// tick: held apart beyond [`SENDER_TOLERANCE`] for [`SENDER_HOLD`] is a
    /// `sender_conflict` that names both. (Each sender's own values are judged on their
    /// own all the while: a second sender can add an alert, never hide one.)
    fn judge_senders(&mut self, at: Timestamp, out: &mut Vec<AlertEvent>) {
        for spec in &self.specs {
            let mut streams = self.grid.streams(&spec.signal);
            let Some((first, first_column)) = streams.next() else {
                continue;
            };
            let reference = first_column.newest();
            for (origin, column) in streams {
                let value = column.newest();
                let apart = (value - reference).abs();
                // A gap on either side compares nothing; their dropout rules speak for it.
                let verdict = Verdict {
                    severity: (apart > SENDER_TOLERANCE).then_some(Severity::Warning),
                    threshold: SENDER_TOLERANCE,
                    clear: apart.is_nan() || apart <= SENDER_TOLERANCE,
                    score: Some(apart).filter(|a| a.is_finite()),
                };
                let evidence = &mut self.scratch.evidence;
                column.copy_last(EVIDENCE_TICKS.min(column.len()), evidence);
                let state = state_for(
                    &mut self.states,
                    (&spec.signal, origin, Some(first)),
                    AlertKind::SenderConflict,
                    SENDERS_RULE.into(),
                    SENDER_HOLD,
                    self.realert,
                );
                let shown = if value.is_nan() { 0.0 } else { value };
                out.extend(state.observe(at, shown, verdict, evidence, &mut self.last_id));
            }
        }
    }

    /// Takes new limits and debounce (from the device shadow) without a restart. Alerts
    /// that are active stay active and clear by the new limits; the debounce applies to
    /// signals that had not been over a limit yet.
    pub fn retune(&mut self, tuning: &Tuning) {
        self.limits = high_limits(&tuning.detect, tuning.cargo, self.compartments);
        // The shadow may change a `[[detect.watch]]` entry's rules, never the list itself
        // (see `Tuning::patched`).
        for watch in &tuning.detect.watch {
            let class = Class::Other(Bounds::of(watch));
            for spec in self
                .specs
                .iter_mut()
                .filter(|s| s.signal.as_str() == watch.signal)
            {
                spec.class = class;
            }
            for w in self
                .watched
                .iter_mut()
                .filter(|w| w.signal.as_str() == watch.signal)
            {
                w.class = class;
            }
        }
        self.debounce = tuning.detect.debounce;
        self.rules = Rules::new(&tuning.detect.rules);
    }

    /// How many alerts are active now.
    pub fn active(&self) -> usize {
        self.states.values().filter(|s| s.is_active()).count()
    }

    /// Samples the window dropped for arriving after their tick closed.
    pub fn late_samples(&self) -> u64 {
        self.grid.late_samples()
    }

    /// How much of the time the model stood aside, over every watched signal since start.
    pub fn model_coverage(&self) -> ModelCoverage {
        let mut coverage = ModelCoverage::default();
        for w in &self.watched {
            coverage.ticks += w.model_ticks;
            coverage.abstained += w.abstained_ticks;
            coverage.masked += w.masked_ticks;
            if w.model_runs > 0 && !coverage.signals.contains(&w.signal) {
                coverage.signals.push(w.signal.clone());
            }
        }
        coverage
    }

    /// The next tick the detector will judge: it moves once per second of the readings'
    /// time (or jumps with their clock).
    pub fn next_tick(&self) -> u64 {
        self.grid.next_tick()
    }

    /// The model's coverage and the unsupported parameters, for the status message.
    pub fn status(&self) -> DetectStatus {
        DetectStatus {
            model: self.model_coverage(),
            unsupported: self.unsupported(),
            senders: self
                .specs
                .iter()
                .filter(|spec| self.grid.streams(&spec.signal).count() > 1)
                .map(|spec| Senders {
                    signal: spec.signal.clone(),
                    origins: self
                        .grid
                        .streams(&spec.signal)
                        .map(|(o, _)| o.to_string())
                        .collect(),
                })
                .collect(),
            origins_refused: self.grid.origins_refused(),
        }
    }

    /// The newest tick's value of every watched stream.
    pub fn live(&self) -> Live {
        Live(
            self.watched
                .iter()
                .map(|w| {
                    let value = self
                        .grid
                        .column_from(&w.signal, &w.origin)
                        .map_or(f64::NAN, |c| c.newest());
                    (w.signal.clone(), w.origin.clone(), value)
                })
                .collect(),
        )
    }

    /// The watched signals this truck does not send: "not available" since their first
    /// message, and never a value since.
    pub fn unsupported(&self) -> Vec<Signal> {
        let mut signals: Vec<Signal> = self
            .watched
            .iter()
            .filter(|w| {
                self.grid
                    .column_from(&w.signal, &w.origin)
                    .is_some_and(|c| c.unsupported())
            })
            .map(|w| w.signal.clone())
            .collect();
        signals.sort();
        signals.dedup();
        signals
    }
}

/// The state of one (signal, origin, kind), made on first use; `peer` is the other sender
/// of a `sender_conflict`.
fn state_for<'a>(
    states: &'a mut HashMap<(Signal, Origin, AlertKind), AlertState>,
    (signal, origin, peer): (&Signal, &Origin, Option<&Origin>),
    kind: AlertKind,
    rule: Arc<str>,
    debounce: Duration,
    realert: Duration,
) -> &'a mut AlertState {
    states
        .entry((signal.clone(), origin.clone(), kind))
        .or_insert_with(|| {
            AlertState::new(signal.clone(), kind, rule, debounce)
                .with_realert(realert)
                .with_origins(origin.clone(), peer.cloned())
        })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn the_watched_signals_are_the_ones_the_detector_judges() {
        let vehicle = VehicleConfig {
            compartments: 5,
            ..VehicleConfig::default()
        };
        let d = default_detector(&vehicle);
        let judged: Vec<Signal> = d.specs.iter().map(|s| s.signal.clone()).collect();
        assert_eq!(watched_signals(&vehicle, &DetectConfig::default()), judged);
    }
    use crate::reading::{Origin, Timestamp};
    use std::sync::Arc;
    use std::time::Duration;

    /// The detector of the default config: the built-in model beside the rules.
    pub(in crate::detect) fn default_detector(vehicle: &VehicleConfig) -> Detector {
        let model = super::super::Model::builtin().expect("the built-in model checks out");
        Detector::new(
            vehicle,
            &DetectConfig::default(),
            ModelHandle::new(Some(model)),
        )
    }

    pub(in crate::detect) fn observe(d: &mut Detector, r: &Reading) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        d.observe(r, &mut out);
        out
    }

    pub(in crate::detect) fn coolant(secs: u64, wall_us: i64, value: f64) -> Reading {
        Reading::good(
            Signal::new(COOLANT_TEMPERATURE),
            Timestamp {
                wall_us,
                mono: Duration::from_secs(secs),
            },
            value,
            Origin::Can {
                bus: Arc::from("can0"),
                source_address: 0,
            },
        )
    }

    /// The oil each second: a good value while `good(second)`, else the flag `quality`.
    /// `secs` into a test's drive (wall time zero).
    fn second(secs: u64) -> Timestamp {
        Timestamp {
            wall_us: 0,
            mono: Duration::from_secs(secs),
        }
    }

    fn oil(secs: u64, good: bool, quality: crate::reading::Quality) -> Reading {
        let at = second(secs);
        let origin = Origin::Can {
            bus: Arc::from("can0"),
            source_address: 0,
        };
        let signal = Signal::new(OIL_TEMPERATURE);
        if good {
            Reading::good(signal, at, 80.0, origin)
        } else {
            Reading::flagged(signal, at, quality, origin)
        }
    }

    /// The alert kinds a minute of coolant at 85 and oil as `good` says raises on the oil.
    fn oil_alerts(
        good: impl Fn(u64) -> bool,
        quality: crate::reading::Quality,
    ) -> (Vec<AlertKind>, Vec<Signal>) {
        let mut d = default_detector(&VehicleConfig::default());
        let mut kinds = Vec::new();
        for secs in 0..60 {
            for r in [coolant(secs, 0, 85.0), oil(secs, good(secs), quality)] {
                for e in observe(&mut d, &r) {
                    if e.alert().signal.as_str() == OIL_TEMPERATURE {
                        kinds.push(e.alert().kind);
                    }
                }
            }
        }
        (kinds, d.unsupported())
    }

    #[test]
    fn a_parameter_never_sent_is_unsupported_and_a_lost_one_is_a_sensor_fault() {
        use crate::reading::Quality;
        // Not available since the first message: this truck does not send it.
        let (kinds, unsupported) = oil_alerts(|_| false, Quality::NotAvailable);
        assert_eq!(kinds, [], "nothing alarmed");
        assert_eq!(unsupported, [Signal::new(OIL_TEMPERATURE)]);
        // A value, then "not available": the sensor was lost.
        let (kinds, unsupported) = oil_alerts(|s| s < 20, Quality::NotAvailable);
        assert!(kinds.contains(&AlertKind::SensorFault), "{kinds:?}");
        assert_eq!(unsupported, []);
        // The sender reports an error from the start: a fault, not a missing parameter.
        let (kinds, unsupported) = oil_alerts(|_| false, Quality::Error);
        assert!(kinds.contains(&AlertKind::SensorFault), "{kinds:?}");
        assert_eq!(unsupported, []);
    }

    #[test]
    fn an_overheating_engine_raises_a_warning_then_a_critical() {
        let mut d = default_detector(&VehicleConfig::default());
        let (updates, events): (Vec<_>, Vec<_>) = [90.0, 104.0, 106.0, 106.5, 107.0, 111.0, 112.0]
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| observe(&mut d, &coolant(i as u64, 0, v)))
            .filter(|e| e.alert().kind == AlertKind::HighLimit)
            .partition(|e| matches!(e, AlertEvent::Updated(_)));
        // The coolant held above its normal band joins the same incident, unheard.
        assert_eq!(updates.len(), 1, "{updates:?}");
        assert_eq!(
            updates[0].alert().findings,
            [AlertKind::HighLimit, AlertKind::AboveNormal]
        );
        assert!(
            matches!(&events[0], AlertEvent::Raised(a) if a.severity == Severity::Warning && a.threshold == 105.0)
        );
        assert!(matches!(&events[1], AlertEvent::Escalated(a) if a.severity == Severity::Critical));
        assert_eq!(events.len(), 2);
        // The high limit, and the coolant held above its normal band for 3 s.
        assert_eq!(d.active(), 2);
    }

    #[test]
    fn a_wall_clock_jump_does_not_shorten_the_debounce() {
        // The wall clock leaps a day forward between two samples one second apart: the
        // debounce (2 s) runs on monotonic time, so nothing is raised yet.
        let mut d = default_detector(&VehicleConfig::default());
        assert_eq!(observe(&mut d, &coolant(0, 0, 108.0)), []);
        assert_eq!(observe(&mut d, &coolant(1, 86_400_000_000, 108.0)), []);
        assert_eq!(observe(&mut d, &coolant(2, 86_400_000_000, 108.0)).len(), 1);
    }

    #[test]
    fn a_tank_is_forecast_without_an_engine_speed_and_a_coolant_is_not() {
        // A serial node's compartment and an ECU's coolant for a minute, and no engine
        // speed on the bus at all.
        let serial: Origin = Origin::Serial {
            port: Arc::from("/dev/ttyUSB0"),
        };
        let mut d = default_detector(&VehicleConfig::default());
        for secs in 0..60 {
            let at = second(secs);
            let tank = 14.0 + (secs % 3) as f64 * 0.001;
            observe(
                &mut d,
                &Reading::good(tank_temperature(1), at, tank, serial.clone()),
            );
            observe(&mut d, &coolant(secs, 0, 85.0));
        }
        let (mut tank, mut coolant) = (None, None);
        for w in &d.watched {
            let counts = (w.model_ticks, w.masked_ticks, w.abstained_ticks);
            match w.signal.as_str() {
                COOLANT_TEMPERATURE => coolant = Some(counts),
                s if s == tank_temperature(1).as_str() => tank = Some(counts),
                _ => {}
            }
        }
        // The tank's rows carry no engine speed: the model runs on every whole window.
        let (ticks, masked, abstained) = tank.expect("the tank is watched");
        assert!(ticks >= 45, "{ticks} model ticks");
        assert_eq!((masked, abstained), (0, 0));
        // The coolant's need it: without one the model is masked, never imputed.
        let (ticks, masked, _) = coolant.expect("the coolant is watched");
        assert!(
            ticks >= 45 && masked == ticks,
            "{ticks} ticks, {masked} masked"
        );
    }

    /// An LPG tank's pressure from the DBC, watched through `[[detect.watch]]`: kPa, with
    /// its own range, limits per cargo, rise and stuck time.
    fn tank_pressure_config() -> DetectConfig {
        let text = r#"
            [[watch]]
            signal = "Vehicle.Cargo.Tank.Pressure"
            unit = "kPa"
            range = [0, 2500]
            limit = { warning = 1900, critical = 2100 }
            cargo.lpg = { warning = 1500, critical = 1700 }
            rise_per_minute = 300
            stuck_after = "60s"
        "#;
        let detect: DetectConfig = toml::from_str(text).expect("the entry parses");
        detect
            .check(crate::vehicle::CargoClass::Lpg)
            .expect("and checks out");
        detect
    }

    fn pressure(secs: u64, value: f64) -> Reading {
        Reading::good(
            Signal::new("Vehicle.Cargo.Tank.Pressure"),
            Timestamp {
                wall_us: secs as i64 * 1_000_000,
                mono: Duration::from_secs(secs),
            },
            value,
            Origin::Can {
                bus: Arc::from("can0"),
                source_address: 0x30,
            },
        )
    }

    #[test]
    fn a_signal_from_the_config_is_judged_by_its_own_limits_and_rules() {
        let vehicle = VehicleConfig {
            cargo: crate::vehicle::CargoClass::Lpg,
            ..VehicleConfig::default()
        };
        let detect = tank_pressure_config();
        let signal = Signal::new("Vehicle.Cargo.Tank.Pressure");
        assert!(watched_signals(&vehicle, &detect).contains(&signal));
        let mut d = Detector::new(&vehicle, &detect, ModelHandle::new(None)).findings_only();
        let mut raised = Vec::new();
        // 1,000 kPa held still for two minutes: stuck after 60 s (a pressure always moves).
        for secs in 0..120 {
            raised.extend(observe(&mut d, &pressure(secs, 1000.0)));
        }
        let kinds = |events: &[AlertEvent]| -> Vec<AlertKind> {
            events
                .iter()
                .filter_map(|e| match e {
                    AlertEvent::Raised(a) => Some(a.kind),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(kinds(&raised), [AlertKind::StuckSensor]);
        // Then it climbs 100 kPa a second to 1,600: over the LPG warning (1,500, not the
        // 1,900 for other cargo) and far over its rise of 300 kPa a minute.
        let mut climbing = Vec::new();
        for (i, secs) in (120..126).enumerate() {
            climbing.extend(observe(&mut d, &pressure(secs, 1100.0 + 100.0 * i as f64)));
        }
        for secs in 126..130 {
            climbing.extend(observe(&mut d, &pressure(secs, 1600.0)));
        }
        let kinds = kinds(&climbing);
        assert!(kinds.contains(&AlertKind::HighLimit), "{kinds:?}");
        assert!(kinds.contains(&AlertKind::RateOfRise), "{kinds:?}");
        let limit = climbing.iter().find_map(|e| match e {
            AlertEvent::Raised(a) if a.kind == AlertKind::HighLimit => Some(a.threshold),
            _ => None,
        });
        assert_eq!(limit, Some(1500.0));
        // The shadow retunes its limit for the cargo like any other.
        let mut tuning = Tuning::new(&vehicle, &detect, Duration::from_secs(10));
        tuning.detect.watch[0].cargo.clear();
        d.retune(&tuning);
        assert_eq!(d.limits[&signal].limit.warning, 1900.0);
    }

    #[test]
    fn a_signal_only_the_model_card_lists_is_watched_and_the_model_runs_on_it() {
        // The committed model with its fuel row renamed the outside air: a card that
        // judges a signal no built-in rule watches.
        let card_path = crate::detect::model::committed_card_path();
        let mut card: crate::detect::model::ModelCard =
            serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
        let fuel = card
            .signals
            .iter_mut()
            .find(|w| w.signal == FUEL_TEMPERATURE)
            .expect("the card judges the fuel");
        fuel.signal = AMBIENT_TEMPERATURE.into();
        let onnx = std::fs::read(card_path.with_file_name(&card.onnx)).unwrap();
        let model = super::super::Model::from_parts(card, &onnx, &card_path).unwrap();
        let vehicle = VehicleConfig::default();
        let mut d = Detector::new(
            &vehicle,
            &DetectConfig::default(),
            ModelHandle::new(Some(model)),
        );
        // Watched beside the config's signals, once; the card's eight compartments do not
        // add tanks the vehicle does not have.
        let air = Signal::new(AMBIENT_TEMPERATURE);
        let specs: Vec<&Signal> = d.specs.iter().map(|s| &s.signal).collect();
        let mut expected = watched_signals(&vehicle, &DetectConfig::default());
        expected.push(air.clone());
        assert_eq!(specs, expected.iter().collect::<Vec<_>>());
        let ecu = Origin::Can {
            bus: Arc::from("can0"),
            source_address: 0,
        };
        for secs in 0..60 {
            let at = second(secs);
            let air_value = 12.0 + (secs % 4) as f64 * 0.03125;
            observe(
                &mut d,
                &Reading::good(air.clone(), at, air_value, ecu.clone()),
            );
            let rpm = Reading::good(Signal::new(ENGINE_SPEED), at, 1200.0, ecu.clone());
            observe(&mut d, &rpm);
        }
        let coverage = d.model_coverage();
        assert_eq!(coverage.signals, [air]);
        assert!(coverage.ticks >= 45, "{coverage:?}");
    }

    #[test]
    fn tank_limits_follow_the_cargo_class() {
        let vehicle = VehicleConfig {
            cargo: crate::vehicle::CargoClass::Lpg,
            ..VehicleConfig::default()
        };
        let d = default_detector(&vehicle);
        assert_eq!(
            d.limits[&tank_temperature(3)].limit,
            Limit {
                warning: 45.0,
                critical: 50.0
            }
        );
        assert!(!d.limits.contains_key(&tank_temperature(4)));
    }

    #[test]
    fn retuning_changes_the_limits_without_a_restart() {
        let vehicle = VehicleConfig::default();
        let mut d = default_detector(&vehicle);
        let mut tuning = Tuning::new(&vehicle, &DetectConfig::default(), Duration::from_secs(10));
        tuning.cargo = crate::vehicle::CargoClass::Lpg;
        tuning.detect.engine.coolant_warning = 95.0;
        d.retune(&tuning);
        assert_eq!(
            d.limits[&Signal::new(COOLANT_TEMPERATURE)].limit.warning,
            95.0
        );
        assert_eq!(d.limits[&tank_temperature(1)].limit.warning, 45.0);
    }
}
