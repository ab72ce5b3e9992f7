//! Train/serve parity: the agent computes what `models/train.py` computes, on the same
//! windows, and runs the model where train.py does.
//!
//! `models/parity/fixture.json` is written by `models/parity.py` from train.py's own
//! functions (`features`, `within`, `masks`, `joined_forward`, `forecast`, `level_forecast`,
//! `residuals` with its `forecast_ok`/`level_ok` masks, `statistics`, `level_statistic`,
//! `held`) on a few cases covering every signal kind of the committed card. This test steps
//! the agent's code through each case tick by tick the way `Detector::tick` does (the value
//! scored against the forecast made a tick earlier, then the last `window` ticks of the
//! signal, the engine speed and, for a signal with a consistency check, its companion) and
//! asserts:
//!
//! - `ModelCard::features` gives train.py's input row, for every window of the signal
//!   without a gap (a gap in the engine speed or the companion becomes 0 in the row on both
//!   sides, a row the model is then never run on);
//! - `ModelCard::within_envelope` gives train.py's `within` on every such row, for the
//!   forecaster's columns and the consistency check's (`ModelCard::groups`, train.py's
//!   `FORECAST_CONDITIONS` and `LEVEL_CONDITIONS`);
//! - the mirror of `Detector::tick` runs the model where train.py's `masks` say, tick by
//!   tick: only on a whole engine-speed window (otherwise both parts are masked, never
//!   imputed), the consistency check only on a whole companion window too; and
//!   `Model::forecast`'s `Step` abstains (no forecast, no level) exactly where train.py's
//!   row lies outside the card's envelope. Each window's gate ("ran", "abstained",
//!   "masked") is compared for the forecaster and for the consistency check;
//! - tract, on the agent's row, gives numpy's outputs within the card's golden tolerance
//!   (the golden vectors, extended to every fixture window), and `Model::forecast` agrees;
//! - from the fixture's outputs, `ModelCard::forecast` and `ModelCard::level` give
//!   train.py's forecasts where they ran, and `score::Residuals` its standardised
//!   residuals, CUSUM, outlier counts and level EWMA, tick by tick;
//! - `AlertState`, fed the agent's verdicts with the card's debounce, raises at the tick
//!   where train.py's `held` statistic (the one thresholds were calibrated on) first passes
//!   the threshold, at the card's threshold and at a lower probe threshold.
//!
//! Tolerances. Features are f32 rows that both sides compute in f64 from the same f64
//! inputs and round once; they can differ only through an input parsed a last bit apart,
//! by at most an f32 ulp (6e-8 relative). 1e-6 relative (absolute below 1) is about 16
//! ulps, and a normalisation constant changed in its 5th significant digit fails it. The
//! envelope's bounds are f32 values compared with the f32 row on both sides; the fixture
//! keeps every row at least 1e-6 (relative) away from each bound that is not a constant
//! column's (the kind's one-hot), so such a last bit cannot move a row across one. The
//! forecasts and statistics are f64 arithmetic on the same f32 outputs: numpy's `exp`
//! (SIMD) and libm's may differ in the last bits, and the CUSUM and the EWMA carry such
//! differences along, so they are not bit-equal, but 1e-9 relative (absolute below 1)
//! leaves them six orders of room and catches a CUSUM `k` changed by one part in a
//! million. Measured when the fixture was written: every feature bit-equal, every forecast
//! and statistic within 5e-15. Thresholds, gates and tick numbers are compared exactly; the
//! fixture keeps every statistic at least 1e-6 away from each threshold it is compared
//! with, so last bits cannot flip a comparison.
//!
//! A tick without a residual (a gap in the signal, no full window, or no forecast made for
//! it because the model was masked or abstained) is judged the same way on both sides: the
//! score's debounce starts over (train.py's `held` counts the missing score as 0;
//! `Detector::tick`, mirrored here, feeds `score::unscored`), and the CUSUM and the outlier
//! count are judged as they carry over (train.py's `statistics` moves them only on a
//! residual; `score::unscored` judges `Residuals::carried`). A tick without a level
//! forecast (masked, abstained, or no window) judges the level EWMA as it carries over on
//! both sides (`level_statistic` holds it; `Residuals::level_carried`). No known difference
//! remains: the fixture has cases where a CUSUM, an outlier count and a level (at its probe
//! threshold; the card's takes hundreds of ticks to reach) are over, pending, into a
//! dropout and raise inside it, at the tick train.py says; windows masked by a gap in the
//! engine speed (both parts) and in the companion (the consistency check alone); and rows
//! outside the envelope where both parts abstain, the forecaster alone, and the
//! consistency check alone.
//!
//! When train.py's arithmetic changes, `python3 models/parity.py --check` (test.sh) fails
//! until the fixture is written again, and then this test fails until the agent follows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vigil_agent::detect::alert::{AlertEvent, AlertKind, AlertState, Verdict};
use vigil_agent::detect::model::{Forecast, Model, Step, Thresholds, WatchedSignal};
use vigil_agent::detect::score::{self, Residuals};
use vigil_agent::reading::{Signal, Timestamp};

/// Relative tolerance (absolute below 1) for the f32 input rows.
const FEATURE_TOLERANCE: f64 = 1e-6;
/// Relative tolerance (absolute below 1) for the f64 forecasts and statistics.
const STATISTIC_TOLERANCE: f64 = 1e-9;

#[derive(Deserialize)]
struct Fixture {
    card: CardId,
    window: usize,
    thresholds: Thresholds,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct CardId {
    name: String,
    version: String,
    sha256: String,
}

/// One case; lists are per tick, `null` where train.py has nothing (a gap, no full window,
/// no residual).
#[derive(Deserialize)]
struct Case {
    name: String,
    signal: String,
    values: Vec<Option<f64>>,
    context: Vec<Option<f64>>,
    companion: Option<Vec<Option<f64>>>,
    /// The input row of the window ending at each tick (every window of the signal without
    /// a gap, whether the model ran on it or not).
    features: Vec<Option<Vec<f64>>>,
    /// train.py's `within` on that row: the forecaster's columns, the consistency check's.
    within: Vec<Option<[bool; 2]>>,
    /// What the forecaster did on that window (train.py's `masks`).
    forecaster: Vec<Option<Gate>>,
    /// What the consistency check did; `null` for a case without one.
    consistency: Vec<Option<Gate>>,
    /// numpy's raw outputs on that row: change mean and log spread, level mean and log spread.
    outputs: Vec<Option<[f64; 4]>>,
    /// The forecast made at each tick for the next, in signal units: (mean, sigma); `null`
    /// where the forecaster did not run.
    forecast: Vec<Option<[f64; 2]>>,
    /// The level the consistency check says at each tick: (mean, sigma); `null` where it
    /// did not run.
    level_forecast: Vec<Option<[f64; 2]>>,
    residual: Vec<Option<f64>>,
    level_residual: Vec<Option<f64>>,
    cusum: Vec<f64>,
    outliers: Vec<usize>,
    /// |EWMA| of the clipped level residual; `null` for a case without a consistency check.
    level: Option<Vec<f64>>,
    /// Per statistic (score, cusum, outliers, level): (threshold, tick of the first alert).
    raised: BTreeMap<String, Vec<(f64, Option<u64>)>>,
}

/// What one part of the model did on a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Gate {
    /// It ran.
    Ran,
    /// Its inputs were whole but a column it reads lay outside the card's envelope.
    Abstained,
    /// An input it needs (the engine speed; for the consistency check, the companion) had a
    /// gap in the window.
    Masked,
}

fn fixture() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/parity/fixture.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; python3 models/parity.py --write writes it",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn nan(values: &[Option<f64>]) -> Vec<f64> {
    values.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}

#[track_caller]
fn assert_close(got: f64, want: f64, tolerance: f64, what: &dyn Fn() -> String) {
    assert!(
        (got - want).abs() <= tolerance * want.abs().max(1.0),
        "{}: the agent gives {got:?}, train.py {want:?} (difference {:e}, tolerance {tolerance:e})",
        what(),
        got - want
    );
}

/// The alert states of one statistic, one per threshold, and the tick each first raised.
struct Debounce {
    states: Vec<(f64, AlertState, Option<u64>)>,
}

impl Debounce {
    fn new(
        signal: &str,
        kind: AlertKind,
        thresholds: &[(f64, Option<u64>)],
        th: &Thresholds,
    ) -> Self {
        // The card's `debounce_ticks` ticks in a row at 1 Hz: the first one starts the
        // debounce, the last one ends it.
        let debounce = Duration::from_secs(th.debounce_ticks as u64 - 1);
        Debounce {
            states: thresholds
                .iter()
                .map(|&(h, _)| {
                    let state =
                        AlertState::new(Signal::new(signal), kind, "parity".into(), debounce);
                    (h, state, None)
                })
                .collect(),
        }
    }

    fn observe(&mut self, tick: u64, verdict: impl Fn(f64) -> Verdict) {
        let at = Timestamp {
            wall_us: 0,
            mono: Duration::from_secs(tick),
        };
        for (h, state, first) in &mut self.states {
            let event = state.observe(at, 0.0, verdict(*h), &[], &mut 0);
            if matches!(event, Some(AlertEvent::Raised(_))) && first.is_none() {
                *first = Some(tick);
            }
        }
    }

    fn raised(&self) -> Vec<(f64, Option<u64>)> {
        self.states
            .iter()
            .map(|(h, _, first)| (*h, *first))
            .collect()
    }
}

/// The agent's verdict of one kind on one tick, with `h` as its threshold: on the tick's
/// statistics, or, on a tick without a residual, `score::unscored`'s on the statistics
/// carried over (as `Detector::tick`).
fn model_verdict(
    stats: Option<&score::Stats>,
    carried: score::Carried,
    spec: &WatchedSignal,
    kind: AlertKind,
    h: f64,
) -> Verdict {
    let mut spec = spec.clone();
    match kind {
        AlertKind::Forecast => spec.score = h,
        AlertKind::Drift => spec.cusum_h = h,
        AlertKind::Outliers => spec.outlier_count = h as usize,
        _ => unreachable!("not a residual statistic: {kind}"),
    }
    let verdicts = match stats {
        Some(stats) => score::verdicts(stats, &spec),
        None => score::unscored(carried, &spec),
    };
    verdicts
        .into_iter()
        .find(|(k, _)| *k == kind)
        .expect("verdicts has every residual kind")
        .1
}

#[test]
fn the_fixture_is_of_the_committed_model_and_covers_every_signal_kind() {
    let fixture = fixture();
    let model = Model::builtin().expect("the committed model loads");
    let card = &model.card;
    assert_eq!(
        (
            &fixture.card.name,
            &fixture.card.version,
            &fixture.card.sha256
        ),
        (&card.name, &card.version, &card.sha256),
        "the fixture was written for another model; python3 models/parity.py --write models/parity/fixture.json"
    );
    assert_eq!(fixture.window, card.window);
    assert_eq!(
        fixture.thresholds, card.thresholds,
        "train.py's constants and the card's thresholds differ"
    );
    // The agent's default debounce is the one the thresholds were calibrated with.
    assert_eq!(
        vigil_agent::detect::DetectConfig::default().debounce,
        Duration::from_secs(card.thresholds.debounce_ticks as u64 - 1)
    );
    for (kind, name) in card.kind_names.iter().enumerate() {
        assert!(
            fixture
                .cases
                .iter()
                .any(|c| model.watched(&c.signal).unwrap().kind == kind),
            "no case of kind {name}"
        );
    }
    assert!(
        fixture
            .cases
            .iter()
            .any(|c| c.companion.is_some() && model.watched(&c.signal).unwrap().level.is_some()),
        "no case with a consistency check"
    );
    for what in ["score", "cusum", "outliers", "level"] {
        assert!(
            fixture.cases.iter().any(|c| c
                .raised
                .get(what)
                .is_some_and(|r| r.iter().any(|(_, t)| t.is_some()))),
            "no case raises on {what}"
        );
    }
    // A score over its threshold, pending, on the tick before one without a residual, and
    // raised only after it: the debounce starting over across a gap is exercised.
    assert!(
        fixture.cases.iter().any(|c| {
            c.raised["score"].iter().any(|&(h, first)| {
                (1..c.residual.len()).any(|t| {
                    c.residual[t].is_none()
                        && c.residual[t - 1].is_some_and(|r| r.abs() > h)
                        && first.is_some_and(|first| first > t as u64)
                })
            })
        }),
        "no case with a score over its threshold into a tick without a residual, raised after it"
    );
    // A CUSUM, an outlier count and a level that raise on a tick where they were not computed
    // (no residual, or no level forecast): judged as they carry over.
    let carried_raise = |what: &str, missing: &dyn Fn(&Case, usize) -> bool| {
        fixture.cases.iter().any(|c| {
            c.raised.get(what).is_some_and(|r| {
                r.iter()
                    .any(|&(_, first)| first.is_some_and(|t| missing(c, t as usize)))
            })
        })
    };
    for what in ["cusum", "outliers"] {
        assert!(
            carried_raise(what, &|c, t| c.residual[t].is_none()),
            "no case raises on the {what} on a tick without a residual"
        );
    }
    assert!(
        carried_raise("level", &|c, t| c.level_forecast[t].is_none()),
        "no case raises on the level on a tick without a level forecast"
    );
    // Where the model does not run: a gap in the engine speed masks both parts; a gap in
    // the companion masks the consistency check while the forecast runs; a row outside the
    // envelope makes both parts abstain, or the forecaster alone (its own window), or the
    // consistency check alone (the companion's).
    let window = card.window;
    let gap = |series: &[Option<f64>], t: usize| series[t + 1 - window..=t].contains(&None);
    let any_window = |gates: (Gate, Gate), why: &dyn Fn(&Case, usize) -> bool| {
        fixture.cases.iter().any(|c| {
            (0..c.values.len()).any(|t| {
                (c.forecaster[t], c.consistency[t]) == (Some(gates.0), Some(gates.1)) && why(c, t)
            })
        })
    };
    let companion_gap = |c: &Case, t: usize| c.companion.as_ref().is_some_and(|s| gap(s, t));
    for (gates, why, what) in [
        (
            (Gate::Masked, Gate::Masked),
            &(|c: &Case, t| gap(&c.context, t)) as &dyn Fn(&Case, usize) -> bool,
            "both parts masked by a gap in the engine speed",
        ),
        (
            (Gate::Ran, Gate::Masked),
            &|c: &Case, t| !gap(&c.context, t) && companion_gap(c, t),
            "the consistency check masked by a gap in the companion while the forecast runs",
        ),
        (
            (Gate::Abstained, Gate::Abstained),
            &|c: &Case, t| !gap(&c.context, t) && !companion_gap(c, t),
            "both parts abstaining on a whole row outside the envelope",
        ),
        (
            (Gate::Abstained, Gate::Ran),
            &|_: &Case, _| true,
            "the forecaster abstaining while the consistency check runs",
        ),
        (
            (Gate::Ran, Gate::Abstained),
            &|c: &Case, t| !companion_gap(c, t),
            "the consistency check abstaining on a whole companion while the forecast runs",
        ),
    ] {
        assert!(any_window(gates, why), "no window with {what}");
    }
    // A signal without a consistency check is masked by a gap in the engine speed too,
    // unless its rows carry none (a tank), which runs through the gap.
    let context_of = |c: &Case| {
        card.signals
            .iter()
            .find(|s| s.signal == c.signal)
            .is_some_and(|s| s.context)
    };
    for (carries, gate, what) in [
        (true, Gate::Masked, "masked by a gap in the engine speed"),
        (false, Gate::Ran, "run through a gap in the engine speed"),
    ] {
        assert!(
            fixture.cases.iter().any(|c| context_of(c) == carries
                && (0..c.values.len()).any(|t| c.consistency[t].is_none()
                    && c.forecaster[t] == Some(gate)
                    && gap(&c.context, t))),
            "no window of a signal without a consistency check {what}"
        );
    }
}

#[test]
fn features_forecasts_and_statistics_match_train_py() {
    let fixture = fixture();
    let model = Model::builtin().expect("the committed model loads");
    let card = &model.card;
    let th = &card.thresholds;
    let window = card.window;
    let (mut row, mut scratch) = (Vec::new(), Vec::new());
    for case in &fixture.cases {
        let name = case.name.as_str();
        let spec = model
            .watched(&case.signal)
            .unwrap_or_else(|| panic!("{name}: the card does not watch {}", case.signal));
        let values = nan(&case.values);
        let context = nan(&case.context);
        let companion = case.companion.as_deref().map(nan);
        let n = values.len();
        for (what, len) in [
            ("context", context.len()),
            ("features", case.features.len()),
            ("within", case.within.len()),
            ("forecaster", case.forecaster.len()),
            ("consistency", case.consistency.len()),
            ("outputs", case.outputs.len()),
            ("forecast", case.forecast.len()),
            ("level_forecast", case.level_forecast.len()),
            ("residual", case.residual.len()),
            ("level_residual", case.level_residual.len()),
            ("cusum", case.cusum.len()),
            ("outliers", case.outliers.len()),
        ] {
            assert_eq!(len, n, "{name}: {what} has {len} ticks, values {n}");
        }
        let mut residuals = Residuals::default();
        let mut debounce: BTreeMap<&str, Debounce> = case
            .raised
            .iter()
            .map(|(stat, thresholds)| {
                let kind = match stat.as_str() {
                    "score" => AlertKind::Forecast,
                    "cusum" => AlertKind::Drift,
                    "outliers" => AlertKind::Outliers,
                    "level" => AlertKind::Inconsistent,
                    other => panic!("{name}: unknown statistic {other}"),
                };
                (
                    stat.as_str(),
                    Debounce::new(&case.signal, kind, thresholds, th),
                )
            })
            .collect();
        let mut levels_seen = 0;
        for t in 0..n {
            let tick = t as u64;
            let at = |what: &str| format!("{name}, tick {t}: {what}");
            // The value against the forecast made a tick ago (Detector::tick's order).
            let stats = residuals.step(tick, values[t], th);
            let carried = residuals.carried();
            match (&stats, case.residual[t]) {
                (Some(s), Some(r)) => {
                    let [mean, sigma] = case.forecast[t - 1].expect("a residual has a forecast");
                    assert_close(s.forecast.mean, mean, STATISTIC_TOLERANCE, &|| {
                        at("forecast mean")
                    });
                    assert_close(s.forecast.sigma, sigma, STATISTIC_TOLERANCE, &|| {
                        at("forecast sigma")
                    });
                    assert_close(s.residual, r, STATISTIC_TOLERANCE, &|| at("residual"));
                    assert_close(s.cusum, case.cusum[t], STATISTIC_TOLERANCE, &|| at("CUSUM"));
                    assert_eq!(s.outliers, case.outliers[t], "{}", at("outlier count"));
                }
                (None, None) => {}
                (got, want) => panic!(
                    "{}",
                    at(&format!(
                        "the agent scores {:?}, train.py {want:?}",
                        got.map(|s| s.residual)
                    ))
                ),
            }
            // Every tick is judged, as in Detector::tick: a tick without a residual gives
            // score::unscored's verdicts (the score's debounce starts over, the CUSUM and
            // the outlier count are judged as they carry over).
            for (stat, kind) in [
                ("score", AlertKind::Forecast),
                ("cusum", AlertKind::Drift),
                ("outliers", AlertKind::Outliers),
            ] {
                if let Some(d) = debounce.get_mut(stat) {
                    d.observe(tick, |h| {
                        model_verdict(stats.as_ref(), carried, spec, kind, h)
                    });
                }
            }
            // The forecast for the next tick, from the last `window` ticks.
            let whole = |series: &[f64]| series.iter().all(|v| !v.is_nan());
            let span = (t + 1 >= window).then(|| t + 1 - window..=t);
            let full = span.clone().is_some_and(|span| whole(&values[span]));
            // A tick without a level forecast judges the consistency statistic as it carries
            // over, as Detector::tick does.
            let carried_level = residuals.level_carried();
            let judge_carried_level = |debounce: &mut BTreeMap<&str, Debounce>| {
                if let (Some(_), Some(d)) = (&spec.level, debounce.get_mut("level")) {
                    d.observe(tick, |h| score::consistency_verdict(carried_level, h).1);
                }
            };
            let (Some(expected_row), Some(span)) = (&case.features[t], span) else {
                assert!(
                    !full,
                    "{}",
                    at("the agent has a full window, train.py none")
                );
                assert!(
                    case.forecaster[t].is_none() && case.consistency[t].is_none(),
                    "{}",
                    at("train.py runs the model without a window")
                );
                judge_carried_level(&mut debounce);
                assert!(
                    case.level_residual[t].is_none(),
                    "{}",
                    at("a level residual without a window")
                );
                continue;
            };
            assert!(full, "{}", at("train.py has a full window, the agent none"));
            let own = &values[span.clone()];
            let ctx = &context[span.clone()];
            // The companion's window as recorded, gaps and all, only for a signal with a
            // consistency check.
            let comp = spec
                .level
                .as_ref()
                .and(companion.as_ref())
                .map(|c| &c[span]);
            // train.py's row, on the same inputs (a gap becomes 0 on both sides).
            card.features(spec, own, ctx, comp, &mut row);
            assert_eq!(row.len(), expected_row.len(), "{}", at("row length"));
            for (i, (&got, &want)) in row.iter().zip(expected_row).enumerate() {
                assert_close(got as f64, want as f32 as f64, FEATURE_TOLERANCE, &|| {
                    at(&format!("feature {i}"))
                });
            }
            // The envelope on that row, for each part's columns.
            let within = card.within_envelope(spec, &row);
            let [within_forecaster, within_level] =
                case.within[t].expect("a row has train.py's within");
            assert_eq!(
                within,
                (within_forecaster, within_level),
                "{}",
                at(
                    "within the envelope (forecaster's columns, consistency check's): the agent's ModelCard::within_envelope, then train.py's within"
                )
            );
            let raw = case.outputs[t].expect("a row has outputs");
            let tract = model.run(&row).expect("the model runs");
            for (i, (&got, &want)) in tract.iter().zip(&raw).enumerate() {
                let difference = (got - want as f32).abs();
                assert!(
                    difference <= card.golden_tolerance,
                    "{}",
                    at(&format!(
                        "output {i}: tract {got}, numpy {want} (golden tolerance {})",
                        card.golden_tolerance
                    ))
                );
            }
            // Detector::tick: the model runs only on a whole engine-speed window (a gap
            // masks it, never imputed) for a signal whose rows carry one (a tank's do not),
            // and gets the companion's window only when it is whole; Model::forecast
            // abstains outside the envelope.
            let companion_whole = comp.filter(|c| whole(c));
            let step = (whole(ctx) || !spec.context).then(|| {
                model
                    .forecast(spec, own, ctx, companion_whole, &mut scratch)
                    .expect("the model runs")
            });
            let forecaster = match step {
                None => Gate::Masked,
                Some(Step {
                    forecast: Some(_), ..
                }) => Gate::Ran,
                Some(_) => Gate::Abstained,
            };
            let consistency = comp.map(|_| match (step, companion_whole) {
                (Some(Step { level: Some(_), .. }), _) => Gate::Ran,
                (Some(_), Some(_)) => Gate::Abstained,
                _ => Gate::Masked,
            });
            assert_eq!(
                (Some(forecaster), consistency),
                (case.forecaster[t], case.consistency[t]),
                "{}",
                at("(forecaster, consistency check): the agent's, then train.py's masks")
            );
            let [mu, log_sigma, level_mu, level_log_sigma] = raw.map(|v| v as f32);
            match step.and_then(|step| step.forecast) {
                Some(served) => {
                    let forecast = card.forecast(spec, own, mu, log_sigma);
                    let [mean, sigma] = case.forecast[t].expect("a forecast that ran");
                    assert_close(forecast.mean, mean, STATISTIC_TOLERANCE, &|| {
                        at("forecast mean")
                    });
                    assert_close(forecast.sigma, sigma, STATISTIC_TOLERANCE, &|| {
                        at("forecast sigma")
                    });
                    // Model::forecast (features, tract, forecast) agrees within what tract's
                    // outputs may differ from numpy's.
                    near_forecast(served, forecast, spec.scale, card.golden_tolerance, &|| {
                        at("Model::forecast")
                    });
                    residuals.expect(tick + 1, forecast);
                }
                None => assert!(
                    case.forecast[t].is_none(),
                    "{}",
                    at("train.py forecasts, the agent does not")
                ),
            }
            match step.and_then(|step| step.level) {
                Some(served_level) => {
                    let level = card.level(spec, level_mu, level_log_sigma);
                    let [mean, sigma] = case.level_forecast[t].expect("a level forecast");
                    assert_close(level.mean, mean, STATISTIC_TOLERANCE, &|| at("level mean"));
                    assert_close(level.sigma, sigma, STATISTIC_TOLERANCE, &|| {
                        at("level sigma")
                    });
                    near_forecast(
                        served_level,
                        level,
                        spec.level_scale,
                        card.golden_tolerance,
                        &|| at("Model::forecast's level"),
                    );
                    let z = case.level_residual[t].expect("a level residual");
                    assert_close(
                        (values[t] - level.mean) / level.sigma,
                        z,
                        STATISTIC_TOLERANCE,
                        &|| at("level residual"),
                    );
                    let statistic = residuals.level_step(values[t], level, th);
                    let expected = case.level.as_ref().expect("a level statistic")[t];
                    assert_close(statistic, expected, STATISTIC_TOLERANCE, &|| {
                        at("level EWMA")
                    });
                    if let Some(d) = debounce.get_mut("level") {
                        d.observe(tick, |h| score::consistency_verdict(statistic, h).1);
                    }
                    levels_seen += 1;
                }
                None => {
                    assert!(
                        case.level_forecast[t].is_none(),
                        "{}",
                        at("train.py has a level, the agent none")
                    );
                    assert!(
                        case.level_residual[t].is_none(),
                        "{}",
                        at("train.py has a level residual, the agent none")
                    );
                    judge_carried_level(&mut debounce);
                }
            }
        }
        assert_eq!(
            levels_seen > 0,
            case.level.is_some(),
            "{name}: a level statistic on one side only"
        );
        for (stat, d) in &debounce {
            assert_eq!(
                d.raised(),
                case.raised[*stat],
                "{name}: {stat}: (threshold, tick of the first alert), the agent's AlertState against train.py's held"
            );
        }
    }
}

/// `got` from tract's outputs against `want` from numpy's: the mean within `tolerance`
/// normalised units, the sigma within `tolerance` relative (a log spread `tolerance` apart).
fn near_forecast(
    got: Forecast,
    want: Forecast,
    scale: f64,
    tolerance: f32,
    what: &dyn Fn() -> String,
) {
    let tolerance = tolerance as f64;
    assert!(
        (got.mean - want.mean).abs() <= tolerance * scale * 1.01
            && (got.sigma / want.sigma - 1.0).abs() <= tolerance * 1.01,
        "{}: {got:?} against {want:?}",
        what()
    );
}
