//! The report's axes: ticks at round UTC clock times, at round offsets from the first
//! reading, and at round values, with the labels they carry. Pure functions of numbers,
//! without a date library (the UTC calendar is `vigil_agent::calendar`).

/// One tick: where it sits, in the axis's unit, and what it says.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub at: f64,
    pub label: String,
    /// A second line: the date, on the first clock tick and where the date changes.
    pub note: Option<String>,
}

/// Round time steps, seconds, up to a day; longer spans step in whole days.
const TIME_STEPS: [f64; 18] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    10800.0, 21600.0, 43200.0, 86400.0,
];
const DAY: f64 = 86400.0;

/// The smallest round step that cuts `span` seconds into at most `max` steps.
fn time_step(span: f64, max: usize) -> f64 {
    let max = max.max(1) as f64;
    TIME_STEPS
        .into_iter()
        .find(|step| span / step <= max)
        .unwrap_or_else(|| DAY * nice_ceil(span / DAY / max))
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `x` (> 0).
fn nice_ceil(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// Ticks at round UTC clock times from `t0` to `t1` (Unix seconds), `max` steps apart at most:
/// `06:10` (`06:10:30` for steps under a minute, the date for steps of days).
pub fn clock_ticks(t0: f64, t1: f64, max: usize) -> Vec<Tick> {
    let step = time_step(t1 - t0, max);
    let mut ticks = Vec::new();
    let mut last_date = None;
    let mut k = (t0 / step).ceil();
    while k * step <= t1 {
        let at = k * step;
        let (date, clock) = (utc_date(at), utc_clock(at));
        let label = if step >= DAY {
            date.clone()
        } else if step < 60.0 {
            clock
        } else {
            clock[..5].to_owned()
        };
        let note = (step < DAY && last_date.as_ref() != Some(&date)).then(|| date.clone());
        last_date = Some(date);
        ticks.push(Tick { at, label, note });
        k += 1.0;
    }
    ticks
}

/// Ticks at round offsets from `t0` to `t1` (Unix seconds), `max` steps apart at most, labelled with
/// the time since `t0` (`0`, `+10m`, `+1h30m`).
pub fn since_ticks(t0: f64, t1: f64, max: usize) -> Vec<Tick> {
    let step = time_step(t1 - t0, max);
    (0..)
        .map(|k| k as f64 * step)
        .take_while(|offset| t0 + offset <= t1)
        .map(|offset| Tick {
            at: t0 + offset,
            label: since(offset),
            note: None,
        })
        .collect()
}

/// Ticks at round values from `lo` to `hi`, `max` steps apart at most, with as many decimals as the
/// step needs.
pub fn value_ticks(lo: f64, hi: f64, max: usize) -> Vec<Tick> {
    let step = nice_ceil((hi - lo) / max.max(1) as f64);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let mut ticks = Vec::new();
    let mut k = (lo / step).ceil();
    while k * step <= hi + step * 1e-9 {
        let at = k * step;
        // `-0` reads as a typo.
        let at = if at == 0.0 { 0.0 } else { at };
        ticks.push(Tick {
            at,
            label: format!("{at:.decimals$}"),
            note: None,
        });
        k += 1.0;
    }
    ticks
}

/// A duration as a reader says it: `0`, `+45s`, `+10m`, `+1h30m`, `+2d3h`.
pub fn since(secs: f64) -> String {
    let total = secs.round() as i64;
    if total == 0 {
        return "0".into();
    }
    let sign = if total < 0 { "-" } else { "+" };
    let total = total.abs();
    let parts = [
        (total / 86400, "d"),
        (total % 86400 / 3600, "h"),
        (total % 3600 / 60, "m"),
        (total % 60, "s"),
    ];
    let mut text = sign.to_owned();
    for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
        text.push_str(&format!("{n}{unit}"));
    }
    text
}

/// The UTC calendar date and time of Unix seconds (floored to the second).
fn utc(t: f64) -> (i64, i64, i64, i64, i64, i64) {
    let secs = t.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = vigil_agent::calendar::civil_from_days(days);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2026-06-15`.
pub fn utc_date(t: f64) -> String {
    let (y, m, d, ..) = utc(t);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `06:10:30`.
pub fn utc_clock(t: f64) -> String {
    let (.., h, mi, s) = utc(t);
    format!("{h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-15 06:00:00 UTC, the simulated truck's default start.
    const START: f64 = 1_781_503_200.0;

    fn labels(ticks: &[Tick]) -> Vec<&str> {
        ticks.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn the_calendar_is_utc_around_leap_days_and_the_epoch() {
        assert_eq!(utc_date(START), "2026-06-15");
        assert_eq!(utc_clock(START + 3723.9), "07:02:03");
        assert_eq!(utc_date(0.0), "1970-01-01");
        assert_eq!(utc_clock(-1.0), "23:59:59");
        assert_eq!(utc_date(-1.0), "1969-12-31");
        // 2024-02-29 12:00 and the day after.
        assert_eq!(utc_date(1_709_208_000.0), "2024-02-29");
        assert_eq!(utc_date(1_709_208_000.0 + 86400.0), "2024-03-01");
        assert_eq!(utc_date(951_825_600.0), "2000-02-29");
    }

    #[test]
    fn clock_ticks_fall_on_round_times_and_carry_the_date_once() {
        // A 4-minute drive from 06:00:07: a tick a minute, at whole minutes.
        let ticks = clock_ticks(START + 7.0, START + 247.0, 5);
        assert_eq!(labels(&ticks), ["06:01", "06:02", "06:03", "06:04"]);
        assert_eq!(ticks[0].note.as_deref(), Some("2026-06-15"));
        assert!(ticks[1..].iter().all(|t| t.note.is_none()));
        // Two hours: every 15 minutes (8 at most).
        let ticks = clock_ticks(START, START + 7200.0, 8);
        assert_eq!(ticks.len(), 8 + 1);
        assert_eq!(ticks[1].label, "06:15");
        // Across midnight the new date is noted where it starts.
        let ticks = clock_ticks(START + 17.0 * 3600.0, START + 20.0 * 3600.0, 6);
        let midnight = ticks.iter().find(|t| t.label == "00:00").unwrap();
        assert_eq!(midnight.note.as_deref(), Some("2026-06-16"));
        // Seconds when the span is short; dates when it is years.
        assert_eq!(clock_ticks(START, START + 20.0, 5)[1].label, "06:00:05");
        let years = clock_ticks(42.0, 1_635_188_475.0, 8);
        assert!(years.len() <= 9, "{}", years.len());
        assert!(years[0].label.starts_with("19"), "{:?}", years[0]);
    }

    #[test]
    fn since_ticks_count_from_the_first_reading() {
        let ticks = since_ticks(START + 7.0, START + 7.0 + 7200.0, 8);
        assert_eq!(
            labels(&ticks)[..4],
            ["0", "+15m", "+30m", "+45m"],
            "{ticks:?}"
        );
        assert_eq!(ticks[1].at, START + 7.0 + 900.0);
        assert_eq!(since(5400.0), "+1h30m");
        assert_eq!(since(45.4), "+45s");
        assert_eq!(since(2.0 * 86400.0 + 3.0 * 3600.0), "+2d3h");
        assert_eq!(since(-61.0), "-1m1s");
    }

    #[test]
    fn value_ticks_are_round_and_as_precise_as_their_step() {
        assert_eq!(
            labels(&value_ticks(12.3, 58.9, 5)),
            ["20", "30", "40", "50"]
        );
        assert_eq!(labels(&value_ticks(-0.7, 0.7, 6)), ["-0.5", "0.0", "0.5"]);
        assert_eq!(labels(&value_ticks(600.0, 1900.0, 5)), ["1000", "1500"]);
        assert_eq!(value_ticks(89.2, 89.6, 4)[0].label, "89.2");
    }
}
