//! Rules beside the model, judged once per tick on a signal's resampled column: rate of
//! rise, stuck sensor, dropout (silent or flagged), out of range, a coolant held above its
//! normal band, a cargo tank that trades heat with the air faster than its insulation
//! lets it, and recurring single-tick spikes. Hard limits stay per
//! reading in the detector, because a limit must not wait for a tick.
//!
//! Pure functions of the columns: no state of their own, so a swap of the model or a gap
//! never leaves a rule half-way.

use std::time::Duration;

use super::RulesConfig;
use super::alert::{AlertKind, Severity, Verdict};
use super::window::{Column, HISTORY};

/// The name and version alerts of these rules carry.
pub const RULES: &str = "rules/1";

/// Which class a signal's rules use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Class {
    /// Engine temperatures other than the coolant (fine oil, 1 degC fuel).
    Engine,
    /// The engine coolant (1 degC). Once warm, the thermostat and fan hold it still for
    /// minutes, so then it must hold longer before it is taken for stuck; and they keep it
    /// below a band it must not stay above.
    Coolant,
    /// Cargo-tank temperatures (PT100, milli-degC).
    Tank,
    /// A signal from `[[detect.watch]]` or the model card, in its own unit: only the
    /// rules its [`Bounds`] set, beside dropout and sensor fault.
    Other(Bounds),
}

/// The rules a watched signal's own settings give (a `[[detect.watch]]` entry); each left
/// out is a rule that does not run. A signal only the model card lists has none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bounds {
    /// What the sensor can read; outside it is out of range.
    pub range: Option<[f64; 2]>,
    pub rise_per_minute: Option<f64>,
    /// Ticks without any change that make it stuck.
    pub stuck_ticks: Option<usize>,
    pub spike_jump: Option<f64>,
}

impl Bounds {
    pub fn of(watch: &super::WatchConfig) -> Self {
        Bounds {
            range: Some(watch.range),
            rise_per_minute: watch.rise_per_minute,
            stuck_ticks: watch.stuck_after.map(ticks),
            spike_jump: watch.spike_jump,
        }
    }
}

/// Whole ticks in a duration, at least one.
fn ticks(d: Duration) -> usize {
    d.as_secs().max(1) as usize
}

/// The rules for one class, resolved from the config.
#[derive(Clone, Debug)]
pub struct Rules {
    rise_per_minute: [f64; 2],
    stuck_ticks: usize,
    companion_move: f64,
    thermostat_opens: f64,
    warm_stuck_ticks: usize,
    stuck_engine_move: f64,
    coolant_cold: f64,
    warmup_ticks: usize,
    warmup_rise: f64,
    loaded_rpm: f64,
    coolant_high_normal: f64,
    coolant_high_ticks: usize,
    dropout_ticks: usize,
    range: [[f64; 2]; 2],
    tank_exchange_per_hour: f64,
    tank_exchange_gap: f64,
    spike_jump: f64,
    spikes_to_raise: usize,
    spike_ticks: usize,
}

/// One rule's verdict on one tick.
pub type Judged = (AlertKind, Verdict);

const RISE_TICKS: usize = 10;

/// Below this the engine is not running (a diesel idles at 550-750 rpm).
const ENGINE_RUNNING_RPM: f64 = 400.0;

impl Rules {
    pub fn new(config: &RulesConfig) -> Self {
        Rules {
            rise_per_minute: [config.engine_rise_per_minute, config.tank_rise_per_minute],
            stuck_ticks: ticks(config.stuck_after),
            companion_move: config.stuck_companion_move,
            thermostat_opens: config.coolant_thermostat_opens,
            warm_stuck_ticks: ticks(config.coolant_warm_stuck_after),
            stuck_engine_move: config.stuck_engine_move,
            coolant_cold: config.coolant_cold,
            warmup_ticks: ticks(config.coolant_warmup_after),
            warmup_rise: config.coolant_warmup_rise,
            loaded_rpm: config.engine_loaded_rpm,
            coolant_high_normal: config.coolant_high_normal,
            coolant_high_ticks: ticks(config.coolant_high_after),
            dropout_ticks: ticks(config.dropout_after),
            range: [config.engine_range, config.tank_range],
            tank_exchange_per_hour: config.tank_exchange_per_hour,
            tank_exchange_gap: config.tank_exchange_gap,
            spike_jump: config.spike_jump,
            spikes_to_raise: config.spikes_to_raise as usize,
            spike_ticks: ticks(config.spike_window),
        }
    }

    /// Judges the newest tick of `column`; `companion` is the column whose movement shows a
    /// coarse signal should have changed (engine and coolant; an engine signal without one
    /// is never taken for stuck), or for a tank the outside air; `engine` is the engine
    /// speed, which stands in for a coolant's missing companion. Verdicts go to `out`.
    pub fn judge(
        &self,
        class: Class,
        column: &Column,
        companion: Option<&Column>,
        engine: Option<&Column>,
        out: &mut Vec<Judged>,
    ) {
        let bounds = self.bounds(class);
        let newest = column.newest();
        // Dropout: only for a signal that has been seen, so a log without it stays quiet. A
        // sensor fault is a change (a good value, then a flag) or a sender's error report;
        // a parameter "not available" since its stream began is one this truck does not
        // send: never alarmed (the detector reports it once).
        if column.seen() {
            let gaps = column.gap_ticks();
            let flagged = column.flagged_ticks >= self.dropout_ticks;
            let silent = gaps >= self.dropout_ticks && !flagged;
            out.push((AlertKind::Dropout, flag(silent, gaps == 0, gaps as f64)));
            out.push((
                AlertKind::SensorFault,
                flag(
                    flagged && column.flagged_as_fault(),
                    column.flagged_ticks == 0,
                    column.flagged_ticks as f64,
                ),
            ));
        }
        if newest.is_nan() {
            return;
        }
        if let Some([low, high]) = bounds.range {
            let outside = newest < low || newest > high;
            out.push((
                AlertKind::OutOfRange,
                Verdict {
                    severity: outside.then_some(Severity::Critical),
                    threshold: if newest < low { low } else { high },
                    clear: !outside,
                    score: None,
                },
            ));
        }
        if let (Some(limit), Some(mut window)) =
            (bounds.rise_per_minute, column.last(RISE_TICKS + 1))
        {
            let first = window.next().unwrap_or(f64::NAN);
            let rate = (newest - first) * 60.0 / RISE_TICKS as f64;
            if rate.is_finite() {
                out.push((
                    AlertKind::RateOfRise,
                    Verdict {
                        severity: (rate > limit).then_some(if rate > 2.0 * limit {
                            Severity::Critical
                        } else {
                            Severity::Warning
                        }),
                        threshold: limit,
                        clear: rate < 0.5 * limit,
                        score: Some(rate),
                    },
                ));
            }
        }
        if class == Class::Coolant {
            let high = self.coolant_high_normal;
            let held = column
                .last(self.coolant_high_ticks)
                .is_some_and(|mut w| w.all(|v| v > high));
            out.push((
                AlertKind::AboveNormal,
                Verdict {
                    severity: held.then_some(Severity::Warning),
                    threshold: high,
                    clear: newest <= high,
                    score: None,
                },
            ));
        }
        if let (Class::Tank, Some(air)) = (class, companion)
            && let Some((per_hour, gap)) = exchange(column, air)
        {
            let limit = self.tank_exchange_per_hour;
            let leaking = gap.abs() >= self.tank_exchange_gap && per_hour > limit;
            out.push((
                AlertKind::HeatLeak,
                Verdict {
                    severity: leaking.then_some(Severity::Warning),
                    threshold: limit,
                    clear: !leaking,
                    score: Some(per_hour),
                },
            ));
        }
        // Spikes, for every class: the model's outlier count catches them too, but only
        // while it runs (not when it abstains, nor without a model).
        if let Some(jump) = bounds.spike_jump {
            let spikes = spikes(column, self.spike_ticks, jump);
            out.push((
                AlertKind::Spikes,
                Verdict {
                    severity: (spikes >= self.spikes_to_raise).then_some(Severity::Warning),
                    threshold: self.spikes_to_raise as f64,
                    clear: spikes == 0,
                    score: Some(spikes as f64),
                },
            ));
        }
        let unchanged = column.unchanged_ticks();
        if matches!(class, Class::Other(_)) {
            // No companion and no physics: stuck is a value with no change at all.
            if let Some(held_for) = bounds.stuck_ticks {
                let stuck = unchanged >= held_for;
                out.push((
                    AlertKind::StuckSensor,
                    flag(stuck, !stuck && unchanged <= 1, unchanged as f64),
                ));
            }
            return;
        }
        // How far the companion moved over the ticks the signal held still (gaps skipped).
        let companion_move = companion.map_or(0.0, |other| moved(other, unchanged));
        let warm = newest >= self.thermostat_opens;
        let held_for = match class {
            Class::Coolant if warm => self.warm_stuck_ticks,
            _ => self.stuck_ticks,
        };
        let mut stuck = unchanged >= held_for
            && (class == Class::Tank || companion_move >= self.companion_move);
        // A coolant with no companion to watch (the truck sends no oil temperature) is
        // judged against the engine instead.
        if class == Class::Coolant
            && !has_values(companion, unchanged.max(self.warmup_ticks))
            && let Some(engine) = engine
        {
            stuck |= warm
                && unchanged >= self.warm_stuck_ticks
                && moved(engine, unchanged) >= self.stuck_engine_move;
            stuck |= newest < self.coolant_cold && self.not_warming(column, engine);
        }
        out.push((
            AlertKind::StuckSensor,
            flag(stuck, !stuck && unchanged <= 1, unchanged as f64),
        ));
    }

    /// The range, rise and spike settings of a class: the config's for the built-in ones,
    /// the signal's own for [`Class::Other`].
    fn bounds(&self, class: Class) -> Bounds {
        let of = |i: usize| Bounds {
            range: Some(self.range[i]),
            rise_per_minute: Some(self.rise_per_minute[i]),
            stuck_ticks: Some(self.stuck_ticks),
            spike_jump: Some(self.spike_jump),
        };
        match class {
            Class::Engine | Class::Coolant => of(0),
            Class::Tank => of(1),
            Class::Other(bounds) => bounds,
        }
    }

    /// Whether a cold coolant rose less than it must over the warm-up window while the
    /// engine ran under load all along.
    fn not_warming(&self, coolant: &Column, engine: &Column) -> bool {
        let n = self.warmup_ticks;
        let (Some(rpm), Some(values)) = (engine.last(n), coolant.last(n)) else {
            return false;
        };
        let (mut sum, mut running) = (0.0, true);
        for r in rpm {
            running &= r >= ENGINE_RUNNING_RPM;
            sum += r;
        }
        let (lo, hi) = range(values);
        running && sum / n as f64 >= self.loaded_rpm && hi >= lo && hi - lo < self.warmup_rise
    }
}

/// Whether `column` has a value in at least half of its last `n` ticks.
fn has_values(column: Option<&Column>, n: usize) -> bool {
    column
        .and_then(|c| c.last(n.min(c.len())))
        .is_some_and(|w| 2 * w.filter(|v| !v.is_nan()).count() >= n.min(HISTORY))
}

/// How many spikes the last `n` ticks of `column` hold (all of them when it has fewer), in
/// one pass and without allocating: ticks whose value departs from both neighbours by at
/// least `jump` the same way while the neighbours agree within `jump / 2`, the three of
/// them inside the window. A gap at the tick or beside it is no spike (a gap compares
/// false); nor is a real step (the value stays) or a fast steady rise (each tick lies
/// between its neighbours).
fn spikes(column: &Column, n: usize, jump: f64) -> usize {
    let Some(values) = column.last(n.min(column.len())) else {
        return 0;
    };
    let (mut before, mut at, mut count) = (f64::NAN, f64::NAN, 0);
    for after in values {
        let (rise, fall) = (at - before, at - after);
        let out_and_back = (rise >= jump && fall >= jump) || (rise <= -jump && fall <= -jump);
        if out_and_back && (after - before).abs() <= jump / 2.0 {
            count += 1;
        }
        (before, at) = (at, after);
    }
    count
}

/// How far a column moved over its last `n` ticks (gaps skipped; 0 with no value).
fn moved(column: &Column, n: usize) -> f64 {
    column.last(n.min(column.len())).map_or(0.0, |w| {
        let (lo, hi) = range(w);
        if hi >= lo { hi - lo } else { 0.0 }
    })
}

/// The lowest and highest of the values that are not gaps (`(inf, -inf)` for none; a gap
/// compares false, so it never widens the range).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| !v.is_nan())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// How fast `tank` moves toward `air` over the column's whole history: the fitted slope over
/// the mean gap (air less tank), per hour (the inverse of the time constant), and the gap.
/// `None` until the history is full or when either has fewer than half its ticks.
fn exchange(tank: &Column, air: &Column) -> Option<(f64, f64)> {
    let (tank, air) = (tank.last(HISTORY)?, air.last(HISTORY)?);
    let (mut n, mut st, mut sy, mut stt, mut sty) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut n_air, mut s_air) = (0.0, 0.0);
    for (i, (y, a)) in tank.zip(air).enumerate() {
        let t = i as f64;
        if !y.is_nan() {
            n += 1.0;
            st += t;
            sy += y;
            stt += t * t;
            sty += t * y;
        }
        if !a.is_nan() {
            n_air += 1.0;
            s_air += a;
        }
    }
    let half = HISTORY as f64 / 2.0;
    if n < half || n_air < half {
        return None;
    }
    let slope_per_s = (n * sty - st * sy) / (n * stt - st * st);
    let gap = s_air / n_air - sy / n;
    Some((slope_per_s * 3600.0 / gap, gap))
}

fn flag(on: bool, clear: bool, score: f64) -> Verdict {
    Verdict {
        severity: on.then_some(Severity::Warning),
        threshold: 0.0,
        clear,
        score: Some(score),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::RulesConfig;
    use crate::detect::window::Grid;
    use crate::reading::{Origin, Reading, Signal, Timestamp};
    use std::sync::Arc;

    /// A column holding `values` at 1 Hz.
    fn column(values: &[f64]) -> Column {
        let signal = Signal::new("s");
        let mut grid = Grid::new([signal.clone()]);
        let origin = Origin::Serial {
            port: Arc::from("t"),
        };
        for (i, &v) in values.iter().chain([&0.0]).enumerate() {
            let at = Timestamp {
                wall_us: 0,
                mono: Duration::from_secs(i as u64),
            };
            grid.push(&Reading::good(signal.clone(), at, v, origin.clone()));
        }
        grid.column(&signal).unwrap().clone()
    }

    /// The severity each rule gives the newest tick of `values` (with `companion`).
    fn judge(class: Class, values: &[f64], companion: Option<&[f64]>) -> Vec<Judged> {
        let rules = Rules::new(&RulesConfig::default());
        let companion = companion.map(column);
        let mut out = Vec::new();
        rules.judge(class, &column(values), companion.as_ref(), None, &mut out);
        out
    }

    #[test]
    fn a_signal_of_its_own_gets_only_the_rules_its_entry_sets() {
        // Flat at 40 for two minutes: a card-only signal hears nothing but its dropout and
        // fault checks; one with a range, a rise and a stuck time gets those too.
        let flat = vec![40.0; 120];
        let kinds = |class| -> Vec<AlertKind> {
            judge(class, &flat, None).iter().map(|(k, _)| *k).collect()
        };
        assert_eq!(
            kinds(Class::Other(Bounds::default())),
            [AlertKind::Dropout, AlertKind::SensorFault]
        );
        let own = Bounds {
            range: Some([0.0, 30.0]),
            rise_per_minute: Some(5.0),
            stuck_ticks: Some(60),
            spike_jump: None,
        };
        let judged = judge(Class::Other(own), &flat, None);
        assert_eq!(
            judged.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [
                AlertKind::Dropout,
                AlertKind::SensorFault,
                AlertKind::OutOfRange,
                AlertKind::RateOfRise,
                AlertKind::StuckSensor
            ]
        );
        // 40 is above the range's 30, and unchanged for 120 s is past the 60 s stuck time,
        // with no companion asked for.
        assert_eq!(
            raised(&judged, AlertKind::OutOfRange),
            Some(Severity::Critical)
        );
        assert_eq!(
            raised(&judged, AlertKind::StuckSensor),
            Some(Severity::Warning)
        );
        // Its own rise limit, in its own unit: 1 a second is 60 a minute.
        let rising = ramp(0.0, 1.0, 30);
        let judged = judge(
            Class::Other(Bounds {
                range: Some([0.0, 100.0]),
                ..own
            }),
            &rising,
            None,
        );
        assert_eq!(
            raised(&judged, AlertKind::RateOfRise),
            Some(Severity::Critical)
        );
        assert_eq!(raised(&judged, AlertKind::StuckSensor), None);
    }

    fn raised(judged: &[Judged], kind: AlertKind) -> Option<Severity> {
        judged
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, v)| v.severity)
    }

    /// `n` seconds of a value that moves by `step` a second from `from`.
    fn ramp(from: f64, step: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| from + step * i as f64).collect()
    }

    /// Whether the coolant's `values` are judged stuck with no oil at all, beside an
    /// engine speed of `rpm` (one per tick, as long as `values`).
    fn stuck_without_oil(values: &[f64], rpm: &[f64]) -> Option<Severity> {
        let rules = Rules::new(&RulesConfig::default());
        let mut out = Vec::new();
        let engine = column(rpm);
        rules.judge(
            Class::Coolant,
            &column(values),
            None,
            Some(&engine),
            &mut out,
        );
        raised(&out, AlertKind::StuckSensor)
    }

    /// Town driving: the engine between 700 and 1700 rpm, a cycle every two minutes.
    fn town(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 1200.0 + 500.0 * (i as f64 * std::f64::consts::TAU / 120.0).sin())
            .collect()
    }

    #[test]
    fn without_oil_the_coolant_is_judged_against_the_engine() {
        // Warm and held at one reading for 9 minutes while the engine went through town
        // driving: stuck. (A live coolant at 1 degC resolution moves a step within minutes
        // when the load changes like this.)
        assert_eq!(
            stuck_without_oil(&[88.0; 541], &town(541)),
            Some(Severity::Warning)
        );
        // Not yet at 8 minutes; nor through 9 minutes of steady cruising (the engine held
        // 1300 +- 150 rpm: nothing to move a thermostat-held coolant).
        assert_eq!(stuck_without_oil(&[88.0; 481], &town(481)), None);
        let cruise: Vec<f64> = town(541)
            .iter()
            .map(|r| 1300.0 + (r - 1200.0) * 0.3)
            .collect();
        assert_eq!(stuck_without_oil(&[88.0; 541], &cruise), None);
        // Cold and not warming through 10 minutes under load: failed (a heavy diesel at
        // 1000 rpm or more warms its coolant by degrees a minute).
        let cold = |rise: f64| ramp(20.0, rise / 600.0, 601);
        let loaded = vec![1400.0; 601];
        assert_eq!(
            stuck_without_oil(&cold(1.0), &loaded),
            Some(Severity::Warning)
        );
        // Warming as a live coolant does, idling in the yard, or the engine off a while:
        // nothing.
        assert_eq!(stuck_without_oil(&cold(5.0), &loaded), None);
        assert_eq!(stuck_without_oil(&cold(1.0), &[650.0; 601]), None);
        let mut stopped = loaded.clone();
        stopped[300] = 0.0;
        assert_eq!(stuck_without_oil(&cold(1.0), &stopped), None);
        // With an oil signal the oil decides, as before: held 9 minutes warm while the oil
        // barely moved is a thermostat at work.
        let rules = Rules::new(&RulesConfig::default());
        let mut out = Vec::new();
        let oil = column(&ramp(95.0, 0.001, 541));
        let engine = column(&town(541));
        rules.judge(
            Class::Coolant,
            &column(&[88.0; 541]),
            Some(&oil),
            Some(&engine),
            &mut out,
        );
        assert_eq!(raised(&out, AlertKind::StuckSensor), None);
    }

    #[test]
    fn a_still_coolant_is_stuck_when_the_oil_moved_far_and_sooner_while_it_is_cold() {
        let stuck = |class, held: f64, secs, oil: &[f64]| {
            raised(
                &judge(class, &vec![held; secs], Some(&oil[..secs])),
                AlertKind::StuckSensor,
            )
        };
        // 12 degC of oil in 120 s is more than a live coolant lets pass before the
        // thermostat opens (82)...
        let oil = ramp(90.0, 0.1, 121);
        assert_eq!(
            stuck(Class::Coolant, 75.0, 121, &oil),
            Some(Severity::Warning)
        );
        // ...but not in a minute less, nor with 9.6 degC.
        assert_eq!(stuck(Class::Coolant, 75.0, 59, &oil), None);
        assert_eq!(
            stuck(Class::Coolant, 75.0, 121, &ramp(90.0, 0.08, 121)),
            None
        );
        // Once the thermostat opens, it (and above 94 the fan) hold the coolant still for
        // minutes while the oil warms: the same oil is not enough there, nor 8 minutes
        // with 19 degC of oil (normal drives saw 18.6), nor 9 with 9.6 degC...
        for held in [82.0, 86.0, 93.0] {
            assert_eq!(stuck(Class::Coolant, held, 121, &oil), None);
            assert_eq!(
                stuck(Class::Coolant, held, 481, &ramp(70.0, 0.04, 481)),
                None
            );
            assert_eq!(
                stuck(Class::Coolant, held, 541, &ramp(70.0, 0.018, 541)),
                None
            );
        }
        // ...but 9 minutes still while the oil warmed 13 degC is a stuck sensor.
        for held in [82.0, 86.0, 93.0] {
            assert_eq!(
                stuck(Class::Coolant, held, 541, &ramp(70.0, 0.025, 541)),
                Some(Severity::Warning)
            );
        }
        // The oil has no band; the fuel (no companion) is never stuck.
        assert_eq!(
            stuck(Class::Engine, 86.0, 121, &oil),
            Some(Severity::Warning)
        );
        assert_eq!(
            raised(
                &judge(Class::Engine, &vec![86.0; 480], None),
                AlertKind::StuckSensor
            ),
            None
        );
    }

    #[test]
    fn a_coolant_held_above_its_band_raises_a_warning() {
        let mut values = vec![99.0; 60];
        // 99 degC is inside the band (a healthy real truck runs at 96 on a warm day): nothing.
        assert_eq!(
            raised(
                &judge(Class::Coolant, &values, None),
                AlertKind::AboveNormal
            ),
            None
        );
        // 101 for 2 s is not yet held; for 3 s it is.
        values.extend([101.0; 2]);
        assert_eq!(
            raised(
                &judge(Class::Coolant, &values, None),
                AlertKind::AboveNormal
            ),
            None
        );
        values.push(102.0);
        assert_eq!(
            raised(
                &judge(Class::Coolant, &values, None),
                AlertKind::AboveNormal
            ),
            Some(Severity::Warning)
        );
        // The band is the coolant's: oil runs far hotter in health.
        assert!(
            judge(Class::Engine, &values, None)
                .iter()
                .all(|(k, _)| *k != AlertKind::AboveNormal)
        );
    }

    #[test]
    fn a_tank_warming_toward_the_air_faster_than_its_insulation_lets_is_a_heat_leak() {
        let air = vec![30.0; HISTORY];
        // 10 degC under the air: an insulated tank (time constant 10 h) gains 1 degC an
        // hour, a tank without insulation (2 h) 5.
        for (tau_h, expected) in [(10.0, None), (2.0, Some(Severity::Warning))] {
            let tank = ramp(20.0, 10.0 / tau_h / 3600.0, HISTORY);
            assert_eq!(
                raised(&judge(Class::Tank, &tank, Some(&air)), AlertKind::HeatLeak),
                expected,
                "time constant {tau_h} h"
            );
        }
        // 3 degC from the air is too close to tell: healthy tanks moved up to 0.25 of such a
        // gap an hour.
        let tank = ramp(27.0, 3.0 / 2.0 / 3600.0, HISTORY);
        assert_eq!(
            raised(&judge(Class::Tank, &tank, Some(&air)), AlertKind::HeatLeak),
            None
        );
    }

    /// The spike rule's verdict on the newest tick of `values` under `config`.
    fn spike_verdict(config: &RulesConfig, class: Class, values: &[f64]) -> Verdict {
        let mut out = Vec::new();
        Rules::new(config).judge(class, &column(values), None, None, &mut out);
        out.into_iter()
            .find(|(k, _)| *k == AlertKind::Spikes)
            .map(|(_, verdict)| verdict)
            .expect("the spike rule judges every class")
    }

    /// The spike rule's severity and count on the newest tick of `values` (default config
    /// but for `window`, and two spikes to raise).
    fn spikes_in(class: Class, values: &[f64], window: Option<u64>) -> (Option<Severity>, f64) {
        let mut config = RulesConfig {
            spikes_to_raise: 2,
            ..RulesConfig::default()
        };
        if let Some(secs) = window {
            config.spike_window = Duration::from_secs(secs);
        }
        let verdict = spike_verdict(&config, class, values);
        (verdict.severity, verdict.score.unwrap())
    }

    #[test]
    fn two_spikes_on_a_steady_coolant_raise_spikes_and_one_does_not() {
        // A coolant held at 88 by its thermostat; a loose connector throws it 25 degC up
        // for one tick and, later, 25 down.
        let mut values = vec![88.0; 120];
        values[40] = 113.0;
        assert_eq!(spikes_in(Class::Coolant, &values, None), (None, 1.0));
        values[80] = 63.0;
        assert_eq!(
            spikes_in(Class::Coolant, &values, None),
            (Some(Severity::Warning), 2.0)
        );
        // Every class is judged; the verdict's threshold is the count to raise.
        for class in [Class::Engine, Class::Tank] {
            assert_eq!(
                spikes_in(class, &values, None),
                (Some(Severity::Warning), 2.0)
            );
        }
        let verdict = spike_verdict(&RulesConfig::default(), Class::Coolant, &values);
        assert_eq!(verdict.threshold, 1.0);
        assert!(!verdict.clear);
    }

    #[test]
    fn by_default_one_spike_raises_as_the_model_s_outliers_did() {
        let mut values = vec![88.0; 120];
        values[118] = 120.0;
        let judged = |values: &[f64]| {
            spike_verdict(&RulesConfig::default(), Class::Coolant, values).severity
        };
        // The spike is the newest tick: not yet known to come back.
        assert_eq!(judged(&values[..119]), None);
        // Back the next tick: a spike, raised.
        assert_eq!(judged(&values), Some(Severity::Warning));
    }

    #[test]
    fn spikes_leave_the_count_with_the_window_and_then_it_clears() {
        let mut values = vec![88.0; 200];
        values[40] = 113.0;
        values[80] = 113.0;
        // A 60 s window no longer holds either: nothing, and clear.
        assert_eq!(spikes_in(Class::Coolant, &values, Some(60)), (None, 0.0));
        // 130 s holds the one at 80 only; the default 600 s both (longer than the column).
        assert_eq!(spikes_in(Class::Coolant, &values, Some(130)), (None, 1.0));
        assert_eq!(
            spikes_in(Class::Coolant, &values, None),
            (Some(Severity::Warning), 2.0)
        );
        // Columns too short to hold a spike and its neighbours count none.
        assert_eq!(spikes_in(Class::Coolant, &[88.0, 113.0], None), (None, 0.0));
        assert_eq!(
            spikes_in(Class::Coolant, &[88.0, 113.0, 88.0], Some(3)),
            (None, 1.0)
        );
    }

    #[test]
    fn two_degree_coolant_ticks_out_and_back_are_not_spikes() {
        // A real 1 Hz coolant at 2 degC resolution dithers a step out and back, often.
        let values: Vec<f64> = (0..HISTORY)
            .map(|i| if i % 7 == 3 { 90.0 } else { 88.0 })
            .collect();
        assert_eq!(spikes_in(Class::Coolant, &values, None), (None, 0.0));
    }

    #[test]
    fn a_fast_steady_rise_is_not_a_spike() {
        // A tank fire: the cargo heats 1 degC a second for a minute, after a still hour.
        let mut values = vec![20.0; 60];
        values.extend(ramp(21.0, 1.0, 60));
        assert_eq!(spikes_in(Class::Tank, &values, None), (None, 0.0));
        // Even 15 degC a second: each tick is above one neighbour and below the other.
        let mut values = vec![20.0; 60];
        values.extend(ramp(35.0, 15.0, 5));
        values.extend([95.0; 5]);
        assert_eq!(spikes_in(Class::Tank, &values, None), (None, 0.0));
    }

    #[test]
    fn a_real_step_is_not_a_spike() {
        // Jump 30 degC and stay; jump and come back two ticks later; a step down and back
        // up whose ends are far apart.
        let mut values = vec![88.0; 60];
        values.extend([118.0; 60]);
        assert_eq!(spikes_in(Class::Coolant, &values, None), (None, 0.0));
        let mut values = vec![88.0; 60];
        values.extend([118.0, 118.0]);
        values.extend([88.0; 60]);
        assert_eq!(spikes_in(Class::Coolant, &values, None), (None, 0.0));
        let mut values = vec![60.0; 60];
        values.extend([40.0, 80.0, 80.0]);
        assert_eq!(spikes_in(Class::Coolant, &values, None), (None, 0.0));
    }

    #[test]
    fn a_spike_beside_a_gap_does_not_count() {
        // A gap before the first spike and after the second: neither has both neighbours.
        let mut values = vec![88.0; 120];
        values[39] = f64::NAN;
        values[40] = 113.0;
        values[80] = 113.0;
        values[81] = f64::NAN;
        let column = column(&values);
        assert!(column.last(120).unwrap().nth(39).unwrap().is_nan());
        assert_eq!(spikes_in(Class::Coolant, &values, None), (None, 0.0));
        // With the gaps away from them, both count.
        values[39] = 88.0;
        values[81] = 88.0;
        values[60] = f64::NAN;
        assert_eq!(
            spikes_in(Class::Coolant, &values, None),
            (Some(Severity::Warning), 2.0)
        );
    }

    #[test]
    fn a_warming_coolant_is_not_a_rate_of_rise_but_a_faster_one_is() {
        // 6 steps of 1 degC in 10 s (36 degC/min): a warm-up seen through the quantisation.
        let mut values = ramp(30.0, 0.0, 20);
        values.extend([31.0, 31.0, 32.0, 33.0, 33.0, 34.0, 34.0, 35.0, 36.0, 36.0]);
        assert_eq!(
            raised(&judge(Class::Coolant, &values, None), AlertKind::RateOfRise),
            None
        );
        // 8 degC in 10 s (48 degC/min) is not a warm-up.
        values.push(39.0);
        assert_eq!(
            raised(&judge(Class::Coolant, &values, None), AlertKind::RateOfRise),
            Some(Severity::Warning)
        );
    }
}
