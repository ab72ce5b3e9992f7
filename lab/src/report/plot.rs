//! One signal's panel of the report, as inline SVG: the time since the first reading above,
//! the fault labels and the alerts as spans in lanes of their own, the values on a value
//! axis in the signal's unit with the forecast band behind them, the residual score under
//! them, and UTC clock times below. Every panel of a report shares one time range, so the
//! panels line up.
//!
//! A long drive has more readings than the plot has pixels: each line keeps, per pixel
//! column, the lowest and the highest value it holds (a one-second spike stays visible).

use std::fmt::Write as _;

use vigil_agent::detect::alert::Severity;
use vigil_sim::record::Label;

use super::axis::{self, Tick};
use super::escape;
use crate::replay::AlertLine;

pub(super) const WIDTH: f64 = 1000.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 14.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
/// Pixel columns a line is reduced to.
const COLUMNS: usize = 900;
const SINCE_AXIS: f64 = 22.0;
const LANE: f64 = 16.0;
const PLOT_HEIGHT: f64 = 160.0;
const RESIDUAL_HEIGHT: f64 = 44.0;
const CLOCK_AXIS: f64 = 34.0;
/// The residual strip's scale: |residual| from 0 to this.
const RESIDUAL_CAP: f64 = 20.0;
/// Readings further apart than this (or than two pixel columns) are a gap, not a line.
const GAP_S: f64 = 5.0;
/// At most this many steps on each time axis.
const TIME_STEPS: usize = 10;

/// The colours, one place for the panels and the legend.
pub(super) const READING: &str = "#222";
pub(super) const BAND: &str = "#5b8fd9";
pub(super) const RESIDUAL: &str = "#a3c";
pub(super) const LABEL: &str = "#7b4ea3";
pub(super) fn severity_colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "#d62728",
        Severity::Warning => "#f0a020",
    }
}

/// The time every panel spans: the first reading to the last, Unix seconds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub t0: f64,
    pub t1: f64,
}

impl Span {
    fn x(&self, t: f64) -> f64 {
        LEFT + ((t - self.t0) / (self.t1 - self.t0)).clamp(0.0, 1.0) * PLOT_WIDTH
    }

    fn column(&self, t: f64) -> usize {
        let share = ((t - self.t0) / (self.t1 - self.t0)).clamp(0.0, 1.0);
        ((share * COLUMNS as f64) as usize).min(COLUMNS - 1)
    }

    fn gap(&self) -> f64 {
        GAP_S.max(2.0 * (self.t1 - self.t0) / COLUMNS as f64)
    }
}

/// One tick of a signal: its value (`NaN`: none) and, where the model ran, its forecast
/// band and residual.
#[derive(Clone, Copy, Debug)]
pub(super) struct Point {
    pub t: f64,
    pub value: f64,
    pub band: Option<(f64, f64)>,
    pub residual: Option<f64>,
}

/// What one panel shows.
pub(super) struct Panel<'a> {
    pub signal: &'a str,
    pub unit: Option<&'a str>,
    /// Whether the detect stage watches it (else it is context: speed, engine speed, air).
    pub watched: bool,
    pub points: Vec<Point>,
    pub alerts: Vec<&'a AlertLine>,
    pub labels: Vec<&'a Label>,
}

/// Reduces a series to runs of per-column `(time, low, high)`: `None` or a gap in time
/// ends a run.
fn runs(
    span: Span,
    items: impl Iterator<Item = (f64, Option<(f64, f64)>)>,
) -> Vec<Vec<(f64, f64, f64)>> {
    let (mut runs, mut run) = (Vec::new(), Vec::<(f64, f64, f64)>::new());
    let (mut column, mut last_t) = (usize::MAX, f64::NEG_INFINITY);
    for (t, pair) in items {
        let broken = pair.is_none() || t - last_t > span.gap();
        if broken && !run.is_empty() {
            runs.push(std::mem::take(&mut run));
            column = usize::MAX;
        }
        let Some((low, high)) = pair else { continue };
        last_t = t;
        let c = span.column(t);
        match run.last_mut() {
            Some(last) if c == column => {
                last.1 = last.1.min(low);
                last.2 = last.2.max(high);
            }
            _ => {
                run.push((t, low, high));
                column = c;
            }
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// A value axis: the range the panel's values need, padded, and its ticks.
fn value_range(points: &[Point]) -> Option<(f64, f64)> {
    let values = points.iter().map(|p| p.value).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return None;
    }
    let pad = ((hi - lo) * 0.08).max(0.5);
    Some((lo - pad, hi + pad))
}

/// Draws a panel into `out`, after a heading.
pub(super) fn draw(out: &mut String, panel: &Panel, span: Span) {
    let Some((lo, hi)) = value_range(&panel.points) else {
        let _ = write!(
            out,
            "<h2>{}</h2><p>No value in the whole replay.</p>",
            escape(panel.signal)
        );
        return;
    };
    let has_residual = panel.points.iter().any(|p| p.residual.is_some());
    let alert_lanes = stack(span, &panel.alerts);
    let lanes = usize::from(!panel.labels.is_empty())
        + alert_lanes.iter().map(|l| l + 1).max().unwrap_or(0);
    let plot_top = SINCE_AXIS + lanes as f64 * LANE;
    let plot_bottom = plot_top + PLOT_HEIGHT;
    let residual_bottom = plot_bottom + if has_residual { RESIDUAL_HEIGHT } else { 0.0 };
    let height = residual_bottom + CLOCK_AXIS;
    let y = |v: f64| plot_top + (hi - v.clamp(lo, hi)) / (hi - lo) * PLOT_HEIGHT;
    let unit = panel.unit.unwrap_or("no unit");
    let _ = write!(
        out,
        "<h2>{}{} <small>({}{})</small></h2>\
         <svg class=\"panel\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">\
         <rect x=\"{LEFT}\" y=\"{plot_top}\" width=\"{PLOT_WIDTH}\" height=\"{PLOT_HEIGHT}\" fill=\"#fff\" stroke=\"#bbb\"/>",
        escape(panel.signal),
        if panel.watched { "" } else { " — context" },
        escape(unit),
        if panel.watched { "" } else { ", not judged" },
    );
    // The value axis: gridlines and labels, and the unit along it.
    for tick in axis::value_ticks(lo, hi, 5) {
        let ty = y(tick.at);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#eee\"/>\
             <text class=\"tick-y\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT + PLOT_WIDTH,
            LEFT - 4.0,
            ty + 4.0,
            tick.label
        );
    }
    let mid = plot_top + PLOT_HEIGHT / 2.0;
    let _ = write!(
        out,
        "<text class=\"unit\" x=\"14\" y=\"{mid:.1}\" font-size=\"12\" text-anchor=\"middle\" \
         transform=\"rotate(-90 14 {mid:.1})\">{}</text>",
        escape(unit)
    );
    time_axes(out, span, plot_top, residual_bottom);
    // The lanes: labels on top, alerts under them, each span shading the plot too.
    let mut lane_top = SINCE_AXIS;
    if !panel.labels.is_empty() {
        for label in &panel.labels {
            let title = format!(
                "fault label {}: {} to {} UTC ({} to {})",
                label.fault,
                axis::utc_clock(label.start),
                axis::utc_clock(label.end),
                axis::since(label.start - span.t0),
                axis::since(label.end - span.t0)
            );
            let lane = LaneSpan {
                from: label.start,
                to: label.end,
                top: lane_top,
                colour: LABEL,
                class: "label-span",
                text: &label.fault,
                title: &title,
            };
            span_in_lane(out, span, lane);
            for t in [label.start, label.end] {
                let tx = span.x(t);
                let _ = write!(
                    out,
                    "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{plot_top}\" y2=\"{plot_bottom}\" stroke=\"{LABEL}\" stroke-dasharray=\"4 3\"/>"
                );
            }
        }
        lane_top += LANE;
    }
    for (alert, lane) in panel.alerts.iter().zip(alert_lanes) {
        let end = alert.cleared_at.unwrap_or(span.t1);
        let colour = severity_colour(alert.severity);
        let cleared = match alert.cleared_at {
            Some(c) => format!(
                "cleared {} UTC ({})",
                axis::utc_clock(c),
                axis::since(c - span.t0)
            ),
            None => "still active when the log ended".into(),
        };
        let title = format!(
            "alert #{}: {} {}; raised {} UTC ({}), {cleared}; {}",
            alert.id,
            alert.kind,
            alert.severity,
            axis::utc_clock(alert.raised_at),
            axis::since(alert.raised_at - span.t0),
            alert.rule
        );
        let class = format!("alert-span {}", alert.severity);
        let text = format!("#{} {}", alert.id, alert.kind);
        let lane = LaneSpan {
            from: alert.raised_at,
            to: end,
            top: lane_top + lane as f64 * LANE,
            colour,
            class: &class,
            text: &text,
            title: &title,
        };
        span_in_lane(out, span, lane);
        let (x0, x1) = (span.x(alert.raised_at), span.x(end));
        let _ = write!(
            out,
            "<rect x=\"{x0:.1}\" y=\"{plot_top}\" width=\"{:.1}\" height=\"{PLOT_HEIGHT}\" fill=\"{colour}\" opacity=\"0.12\"/>",
            (x1 - x0).max(1.0)
        );
    }
    // The forecast band, one polygon per stretch the model ran: upper edge forward,
    // lower edge back.
    let band = runs(span, panel.points.iter().map(|p| (p.t, p.band)));
    for run in &band {
        let mut poly = String::new();
        for &(t, _, up) in run {
            let _ = write!(poly, "{:.1},{:.1} ", span.x(t), y(up));
        }
        for &(t, down, _) in run.iter().rev() {
            let _ = write!(poly, "{:.1},{:.1} ", span.x(t), y(down));
        }
        let _ = write!(
            out,
            "<polygon class=\"forecast-band\" points=\"{poly}\" fill=\"{BAND}\" opacity=\"0.3\"/>"
        );
    }
    let values = runs(
        span,
        panel
            .points
            .iter()
            .map(|p| (p.t, p.value.is_finite().then_some((p.value, p.value)))),
    );
    polylines(out, span, &values, &y, READING, "reading");
    if has_residual {
        let top = plot_bottom + 6.0;
        let strip = RESIDUAL_HEIGHT - 8.0;
        let ys = |r: f64| top + strip - r.min(RESIDUAL_CAP) / RESIDUAL_CAP * strip;
        let residuals = runs(
            span,
            panel.points.iter().map(|p| {
                (
                    p.t,
                    p.residual
                        .filter(|r| r.is_finite())
                        .map(|r| (r.abs(), r.abs())),
                )
            }),
        );
        let _ = write!(
            out,
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{PLOT_WIDTH}\" height=\"{strip}\" fill=\"#fff\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">|residual|</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">0-{RESIDUAL_CAP}</text>",
            LEFT - 4.0,
            top + 12.0,
            LEFT - 4.0,
            top + 24.0
        );
        polylines(out, span, &residuals, &|r| ys(r), RESIDUAL, "residual");
    }
    out.push_str("</svg>");
}

/// The lane of each alert (0 first): alerts that overlap in time go in lanes of their own,
/// each in the first lane free when it was raised.
fn stack(span: Span, alerts: &[&AlertLine]) -> Vec<usize> {
    let mut ends: Vec<f64> = Vec::new();
    alerts
        .iter()
        .map(|a| {
            let end = a.cleared_at.unwrap_or(span.t1);
            match ends.iter().position(|&e| e <= a.raised_at) {
                Some(lane) => {
                    ends[lane] = end;
                    lane
                }
                None => {
                    ends.push(end);
                    ends.len() - 1
                }
            }
        })
        .collect()
}

/// A span in a lane: a fault label or an alert.
struct LaneSpan<'a> {
    from: f64,
    to: f64,
    top: f64,
    colour: &'a str,
    class: &'a str,
    /// Shown in the span where it fits.
    text: &'a str,
    /// The details, as a tooltip.
    title: &'a str,
}

fn span_in_lane(out: &mut String, span: Span, s: LaneSpan) {
    let (x0, x1) = (span.x(s.from), span.x(s.to));
    let width = (x1 - x0).max(2.0);
    let _ = write!(
        out,
        "<g class=\"{}\"><title>{}</title><rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"{}\" opacity=\"0.85\" rx=\"2\"/>",
        s.class,
        escape(s.title),
        s.top + 1.0,
        LANE - 2.0,
        s.colour
    );
    // About 6.5 px a character at 11 px.
    if width > 6.5 * s.text.len() as f64 + 6.0 {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#fff\">{}</text>",
            x0 + 3.0,
            s.top + LANE - 4.0,
            escape(s.text)
        );
    }
    out.push_str("</g>");
}

/// The time since the first reading above the lanes, UTC clock times below the plot, and
/// a gridline at each clock tick.
fn time_axes(out: &mut String, span: Span, top: f64, bottom: f64) {
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"13\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\">since start</text>",
        LEFT - 10.0
    );
    for tick in axis::since_ticks(span.t0, span.t1, TIME_STEPS) {
        let tx = span.x(tick.at);
        let _ = write!(
            out,
            "<g class=\"tick-since\"><line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{:.1}\" y2=\"{SINCE_AXIS}\" stroke=\"#999\"/>\
             <text class=\"since\" x=\"{tx:.1}\" y=\"13\" font-size=\"10\" fill=\"#666\" text-anchor=\"{}\">{}</text></g>",
            SINCE_AXIS - 5.0,
            anchor(tx),
            tick.label
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">UTC</text>",
        LEFT - 4.0,
        bottom + 14.0
    );
    for Tick { at, label, note } in axis::clock_ticks(span.t0, span.t1, TIME_STEPS) {
        let tx = span.x(at);
        let _ = write!(
            out,
            "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{top}\" y2=\"{bottom}\" stroke=\"#000\" stroke-opacity=\"0.08\"/>\
             <g class=\"tick-x\"><line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{bottom}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text class=\"clock\" x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{}\">{label}</text>",
            bottom + 4.0,
            bottom + 14.0,
            anchor(tx)
        );
        if let Some(date) = note {
            let _ = write!(
                out,
                "<text class=\"date\" x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#666\" text-anchor=\"{}\">{date}</text>",
                bottom + 27.0,
                anchor(tx)
            );
        }
        out.push_str("</g>");
    }
}

/// A tick's text is centred on it, but kept inside the plot's edges.
fn anchor(tx: f64) -> &'static str {
    if tx < LEFT + 20.0 {
        "start"
    } else if tx > LEFT + PLOT_WIDTH - 20.0 {
        "end"
    } else {
        "middle"
    }
}

/// Each run as a polyline: per column, its low then its high.
fn polylines(
    out: &mut String,
    span: Span,
    runs: &[Vec<(f64, f64, f64)>],
    y: &dyn Fn(f64) -> f64,
    colour: &str,
    class: &str,
) {
    for run in runs {
        let mut points = String::new();
        for &(t, low, high) in run {
            let tx = span.x(t);
            let _ = write!(points, "{tx:.1},{:.1} ", y(low));
            if high != low {
                let _ = write!(points, "{tx:.1},{:.1} ", y(high));
            }
        }
        let _ = write!(
            out,
            "<polyline class=\"{class}\" points=\"{points}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.2\"/>"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(t: f64, v: f64) -> (f64, Option<(f64, f64)>) {
        (t, Some((v, v)))
    }

    #[test]
    fn a_long_series_keeps_each_columns_extremes_and_breaks_at_gaps() {
        // Two hours at 1 Hz with one spike: 900 columns of 8 s.
        let span = Span {
            t0: 0.0,
            t1: 7200.0,
        };
        let series = (0..7200).map(|s| {
            let t = f64::from(s);
            value(t, if s == 4001 { 90.0 } else { 20.0 })
        });
        let runs = runs(span, series);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].len(), COLUMNS);
        assert!(runs[0].iter().any(|&(_, _, high)| high == 90.0));
        // A missing value and a silence longer than two columns both break the line.
        let broken = [
            value(0.0, 1.0),
            (1.0, None),
            value(2.0, 1.0),
            value(40.0, 1.0),
        ];
        assert_eq!(super::runs(span, broken.into_iter()).len(), 3);
        // Fewer readings than columns: every one kept as it is.
        let short = Span { t0: 0.0, t1: 240.0 };
        let kept = super::runs(short, (0..240).map(|s| value(f64::from(s), f64::from(s))));
        assert_eq!(kept[0].len(), 240);
    }
}
