//! Rules beside the model, judged once per tick on a signal's resampled column: rate of
//! rise, stuck sensor, dropout (silent or flagged) and out of range. Hard limits stay per
//! reading in the detector, because a limit must not wait for a tick.
//!
//! Pure functions of the columns: no state of their own, so a swap of the model or a gap
//! never leaves a rule half-way.

use std::time::Duration;

use super::alert::{AlertKind, Severity, Verdict};
use super::window::Column;
use crate::config::RulesConfig;

/// The name and version alerts of these rules carry.
pub const RULES: &str = "rules/1";

/// Which class a signal's rules use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Engine temperatures (1 degC coolant and fuel, fine oil).
    Engine,
    /// Cargo-tank temperatures (PT100, milli-degC).
    Tank,
}

/// The rules for one class, resolved from the config.
#[derive(Clone, Debug)]
pub struct Rules {
    rise_per_minute: [f64; 2],
    stuck_ticks: usize,
    companion_move: f64,
    dropout_ticks: usize,
    range: [[f64; 2]; 2],
}

/// One rule's verdict on one tick.
pub type Judged = (AlertKind, Verdict);

const RISE_TICKS: usize = 10;

impl Rules {
    pub fn new(config: &RulesConfig) -> Self {
        let ticks = |d: Duration| d.as_secs().max(1) as usize;
        Rules {
            rise_per_minute: [config.engine_rise_per_minute, config.tank_rise_per_minute],
            stuck_ticks: ticks(config.stuck_after),
            companion_move: config.stuck_companion_move,
            dropout_ticks: ticks(config.dropout_after),
            range: [config.engine_range, config.tank_range],
        }
    }

    /// Judges the newest tick of `column`; `companion` is the column whose movement shows a
    /// coarse signal should have changed (engine only). Verdicts go to `out`.
    pub fn judge(
        &self,
        class: Class,
        column: &Column,
        companion: Option<&Column>,
        out: &mut Vec<Judged>,
    ) {
        let c = class as usize;
        let newest = column.newest();
        // Dropout: only for a signal that has been seen, so a log without it stays quiet.
        if column.seen() {
            let gaps = column.gap_ticks();
            let flagged = column.flagged_ticks >= self.dropout_ticks;
            let silent = gaps >= self.dropout_ticks && !flagged;
            out.push((AlertKind::Dropout, flag(silent, gaps == 0, gaps as f64)));
            out.push((
                AlertKind::SensorFault,
                flag(
                    flagged,
                    column.flagged_ticks == 0,
                    column.flagged_ticks as f64,
                ),
            ));
        }
        if newest.is_nan() {
            return;
        }
        let [low, high] = self.range[c];
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
        if let Some(mut window) = column.last(RISE_TICKS + 1) {
            let first = window.next().unwrap_or(f64::NAN);
            let rate = (newest - first) * 60.0 / RISE_TICKS as f64;
            if rate.is_finite() {
                let limit = self.rise_per_minute[c];
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
        let unchanged = column.unchanged_ticks();
        let moved = match (class, companion) {
            (Class::Tank, _) => true,
            (Class::Engine, None) => false,
            (Class::Engine, Some(other)) => other
                .last(unchanged.min(other.len()))
                .map(|w| {
                    let (lo, hi) = w
                        .filter(|v| !v.is_nan())
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                            (lo.min(v), hi.max(v))
                        });
                    hi - lo >= self.companion_move
                })
                .unwrap_or(false),
        };
        let stuck = unchanged >= self.stuck_ticks && moved;
        out.push((
            AlertKind::StuckSensor,
            flag(stuck, unchanged <= 1, unchanged as f64),
        ));
    }
}

fn flag(on: bool, clear: bool, score: f64) -> Verdict {
    Verdict {
        severity: on.then_some(Severity::Warning),
        threshold: 0.0,
        clear,
        score: Some(score),
    }
}
