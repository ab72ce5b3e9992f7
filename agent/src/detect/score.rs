//! Scoring one signal against the forecaster: the standardised residual of each tick
//! against the forecast made one tick earlier, and the two accumulations that catch what a
//! single residual cannot: a CUSUM on the clipped residual (a slow drift leans one way for
//! long) and a count of wild residuals in a sliding window (spikes that come and go). For a
//! signal with a consistency check, also an EWMA of its level residual: how far the value
//! sits from what its companion says, in spreads.
//!
//! Pure state, stepped once per tick; the same arithmetic as `statistics` in
//! `models/train.py`, where the thresholds were calibrated.

use std::collections::VecDeque;

use super::alert::{AlertKind, Severity, Verdict};
use super::model::{Forecast, Thresholds, WatchedSignal};

/// What one tick's residual gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub forecast: Forecast,
    pub residual: f64,
    pub cusum: f64,
    pub outliers: usize,
}

/// The residual state of one signal.
#[derive(Clone, Debug, Default)]
pub struct Residuals {
    /// The forecast for tick `.0`.
    pending: Option<(u64, Forecast)>,
    pos: f64,
    neg: f64,
    /// Ticks whose residual was an outlier, within the window.
    outliers: VecDeque<u64>,
    /// EWMA of the clipped level residual.
    level: f64,
}

impl Residuals {
    /// Scores tick `tick`'s value against the forecast made for it, if there is one.
    pub fn step(&mut self, tick: u64, actual: f64, th: &Thresholds) -> Option<Stats> {
        while self
            .outliers
            .front()
            .is_some_and(|&t| t + th.outlier_window as u64 <= tick)
        {
            self.outliers.pop_front();
        }
        let (due, forecast) = self.pending.take()?;
        if due != tick || actual.is_nan() {
            return None;
        }
        let residual = (actual - forecast.mean) / forecast.sigma;
        let clipped = residual.clamp(-th.cusum_clip, th.cusum_clip);
        self.pos = (self.pos + clipped - th.cusum_k).max(0.0);
        self.neg = (self.neg - clipped - th.cusum_k).max(0.0);
        if residual.abs() > th.outlier {
            self.outliers.push_back(tick);
        }
        Some(Stats {
            forecast,
            residual,
            cusum: self.pos.max(self.neg),
            outliers: self.outliers.len(),
        })
    }

    /// Takes the newest tick's value against the level its companion says it should have;
    /// returns the consistency statistic, |EWMA| of the clipped level residual.
    pub fn level_step(&mut self, actual: f64, level: Forecast, th: &Thresholds) -> f64 {
        let z = ((actual - level.mean) / level.sigma).clamp(-th.level_clip, th.level_clip);
        if z.is_finite() {
            self.level += (z - self.level) / th.level_tau;
        }
        self.level.abs()
    }

    /// The statistics as they stand on a tick without a residual: the CUSUM and the outlier
    /// count carry over (only a residual moves them), as training's statistics do.
    pub fn carried(&self) -> Carried {
        Carried {
            cusum: self.pos.max(self.neg),
            outliers: self.outliers.len(),
        }
    }

    /// The consistency statistic as it stands (it moves only when a level is forecast).
    pub fn level_carried(&self) -> f64 {
        self.level.abs()
    }

    /// Remembers the forecast for tick `tick`.
    pub fn expect(&mut self, tick: u64, forecast: Forecast) {
        self.pending = Some((tick, forecast));
    }
}

/// The statistics that carry over a tick without a residual.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Carried {
    pub cusum: f64,
    pub outliers: usize,
}

/// The model's verdicts on one tick's statistics.
pub fn verdicts(stats: &Stats, th: &WatchedSignal) -> [(AlertKind, Verdict); 3] {
    let score = stats.residual.abs();
    [
        (
            AlertKind::Forecast,
            Verdict {
                severity: over(score, th.score),
                threshold: th.score,
                clear: score < th.score,
                score: Some(score),
            },
        ),
        drift(stats.cusum, th),
        outliers(stats.outliers, th),
    ]
}

/// The verdicts of a tick without a residual (a gap, or no forecast for it), as training
/// holds its statistics (models/train.py, `held`): the score was not computed, so it is
/// not over and does not clear (a pending alert's debounce starts over, an active one
/// stays); the CUSUM and the outlier count are judged as they carry over.
pub fn unscored(carried: Carried, th: &WatchedSignal) -> [(AlertKind, Verdict); 3] {
    [
        (
            AlertKind::Forecast,
            Verdict {
                severity: None,
                threshold: th.score,
                clear: false,
                score: None,
            },
        ),
        drift(carried.cusum, th),
        outliers(carried.outliers, th),
    ]
}

/// Warning over `threshold`, critical over three times it.
fn over(value: f64, threshold: f64) -> Option<Severity> {
    (value > threshold).then_some(if value > 3.0 * threshold {
        Severity::Critical
    } else {
        Severity::Warning
    })
}

fn drift(cusum: f64, th: &WatchedSignal) -> (AlertKind, Verdict) {
    (
        AlertKind::Drift,
        Verdict {
            severity: over(cusum, th.cusum_h),
            threshold: th.cusum_h,
            clear: cusum < 0.5 * th.cusum_h,
            score: Some(cusum),
        },
    )
}

fn outliers(count: usize, th: &WatchedSignal) -> (AlertKind, Verdict) {
    let (count, threshold) = (count as f64, th.outlier_count as f64);
    (
        AlertKind::Outliers,
        Verdict {
            severity: (count >= threshold).then_some(Severity::Warning),
            threshold,
            clear: count < 0.5 * threshold,
            score: Some(count),
        },
    )
}

/// The consistency check's verdict on its statistic against threshold `h`.
pub fn consistency_verdict(statistic: f64, h: f64) -> (AlertKind, Verdict) {
    (
        AlertKind::Inconsistent,
        Verdict {
            severity: over(statistic, h),
            threshold: h,
            clear: statistic < 0.5 * h,
            score: Some(statistic),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds() -> Thresholds {
        Thresholds {
            debounce_ticks: 3,
            cusum_k: 0.5,
            cusum_clip: 3.0,
            outlier: 6.0,
            outlier_window: 5,
            level_tau: 4.0,
            level_clip: 3.0,
        }
    }

    #[test]
    fn the_consistency_statistic_is_an_ewma_of_the_clipped_level_residual() {
        let th = thresholds();
        let mut r = Residuals::default();
        let level = Forecast {
            mean: 90.0,
            sigma: 2.0,
        };
        // z = +1, then +10 clipped to +3, then a gap that holds the EWMA, then -1.
        let got: Vec<f64> = [92.0, 110.0, f64::NAN, 88.0]
            .iter()
            .map(|&v| r.level_step(v, level, &th))
            .collect();
        assert_eq!(got, [0.25, 0.9375, 0.9375, 0.453125]);
        let (kind, verdict) = consistency_verdict(got[1], 0.5);
        assert_eq!(kind, AlertKind::Inconsistent);
        assert_eq!(verdict.severity, Some(Severity::Warning));
        assert!(consistency_verdict(got[1], 2.0).1.severity.is_none());
    }

    /// Steps actual values against a flat forecast of 0 +- 1 and returns each tick's
    /// (residual, cusum, outliers).
    fn check(actual: &[f64], expected: &[(f64, f64, usize)]) {
        let th = thresholds();
        let mut r = Residuals::default();
        let flat = Forecast {
            mean: 0.0,
            sigma: 1.0,
        };
        let mut got = Vec::new();
        for (tick, &a) in actual.iter().enumerate() {
            let tick = tick as u64;
            if let Some(s) = r.step(tick, a, &th) {
                got.push((s.residual, s.cusum, s.outliers));
            }
            r.expect(tick + 1, flat);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn cusum_accumulates_a_lean_and_outliers_age_out_of_their_window() {
        check(
            // Tick 0 has no forecast; then a lean of +2, a spike, and calm.
            &[9.0, 2.0, 2.0, 2.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            &[
                (2.0, 1.5, 0),
                (2.0, 3.0, 0),
                (2.0, 4.5, 0),
                // Clipped to 3 in the CUSUM, counted as an outlier.
                (10.0, 7.0, 1),
                (0.0, 6.5, 1),
                (0.0, 6.0, 1),
                (0.0, 5.5, 1),
                (0.0, 5.0, 1),
                // Tick 4's outlier leaves the 5-tick window at tick 9.
                (0.0, 4.5, 0),
            ],
        );
    }

    #[test]
    fn a_forecast_for_another_tick_or_a_gap_scores_nothing() {
        let th = thresholds();
        let mut r = Residuals::default();
        let f = Forecast {
            mean: 1.0,
            sigma: 1.0,
        };
        r.expect(5, f);
        assert_eq!(r.step(6, 1.0, &th), None);
        r.expect(7, f);
        assert_eq!(r.step(7, f64::NAN, &th), None);
        r.expect(8, f);
        assert!(r.step(8, 4.0, &th).is_some_and(|s| s.residual == 3.0));
    }
}
