//! The replay report: one HTML file, no scripts or fonts from anywhere, with an inline SVG
//! per watched signal showing its 1 Hz values, the forecast band (mean +- 3 spreads), the
//! residual score and the alerts raised on it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use vigil_agent::detect::alert::Severity;
use vigil_agent::detect::{DetectStatus, TracePoint};

use crate::replay::AlertLine;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 180.0;
const SCORE_HEIGHT: f64 = 70.0;
/// Plots keep at most this many points per line (the rest are decimated).
const MAX_POINTS: usize = 2000;

/// The report for one replay.
pub fn html(
    input: &Path,
    model: Option<&str>,
    detect: &DetectStatus,
    trace: &[TracePoint],
    alerts: &[AlertLine],
) -> String {
    let mut by_signal: BTreeMap<&str, Vec<&TracePoint>> = BTreeMap::new();
    for p in trace {
        by_signal.entry(p.signal.as_str()).or_default().push(p);
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Vigil replay: {}</title>\
         <style>body{{font:14px sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 6px}}svg{{background:#fafafa;display:block;margin-bottom:4px}}</style>\
         </head><body><h1>Vigil replay</h1><p>Input <code>{}</code>; model <code>{}</code>; {} alerts.</p>",
        escape(&input.display().to_string()),
        escape(&input.display().to_string()),
        escape(model.unwrap_or("none (rules only)")),
        alerts.len()
    );
    let _ = write!(out, "<p>{}</p>", escape(&coverage(detect)));
    out.push_str("<table><tr><th>id</th><th>signal</th><th>kind</th><th>severity</th><th>raised</th><th>cleared</th><th>score</th><th>threshold</th><th>rule</th></tr>");
    for a in alerts {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            a.id,
            escape(a.signal.as_str()),
            a.kind,
            a.severity,
            a.raised_at,
            a.cleared_at.map_or("-".into(), |c| format!("{c:.1}")),
            a.score.map_or("-".into(), |s| format!("{s:.2}")),
            a.threshold,
            escape(&a.rule)
        );
    }
    out.push_str("</table>");
    for (signal, points) in &by_signal {
        let mine: Vec<&AlertLine> = alerts
            .iter()
            .filter(|a| a.signal.as_str() == *signal)
            .collect();
        plot(&mut out, signal, points, &mine);
    }
    out.push_str("</body></html>\n");
    out
}

fn plot(out: &mut String, signal: &str, points: &[&TracePoint], alerts: &[&AlertLine]) {
    let step = points.len().div_ceil(MAX_POINTS).max(1);
    let kept: Vec<&TracePoint> = points.iter().step_by(step).copied().collect();
    let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
        return;
    };
    let (t0, t1) = (
        first.at.wall_secs(),
        last.at.wall_secs().max(first.at.wall_secs() + 1.0),
    );
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for p in &kept {
        if !p.value.is_nan() {
            lo = lo.min(p.value);
            hi = hi.max(p.value);
        }
    }
    if !lo.is_finite() {
        return;
    }
    let pad = ((hi - lo) * 0.1).max(0.5);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |t: f64| (t - t0) / (t1 - t0) * WIDTH;
    let y = |v: f64| HEIGHT - (v.clamp(lo, hi) - lo) / (hi - lo) * HEIGHT;
    let _ = write!(
        out,
        "<h2>{}</h2><svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">",
        escape(signal)
    );
    for a in alerts {
        let end = a.cleared_at.unwrap_or(t1);
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{HEIGHT}\" fill=\"{}\" opacity=\"0.25\"><title>{} {} #{}</title></rect>",
            x(a.raised_at),
            (x(end) - x(a.raised_at)).max(1.0),
            if a.severity == Severity::Critical {
                "#e33"
            } else {
                "#fa3"
            },
            a.kind,
            a.severity,
            a.id
        );
    }
    // The forecast band, as one polygon: upper edge forward, lower edge back.
    let band: Vec<(f64, f64, f64)> = kept
        .iter()
        .filter_map(|p| {
            p.forecast.map(|f| {
                (
                    x(p.at.wall_secs()),
                    f.mean + 3.0 * f.sigma,
                    f.mean - 3.0 * f.sigma,
                )
            })
        })
        .collect();
    if !band.is_empty() {
        let mut poly = String::new();
        for &(px, up, _) in &band {
            let _ = write!(poly, "{px:.1},{:.1} ", y(up));
        }
        for &(px, _, down) in band.iter().rev() {
            let _ = write!(poly, "{px:.1},{:.1} ", y(down));
        }
        let _ = write!(
            out,
            "<polygon points=\"{poly}\" fill=\"#69c\" opacity=\"0.3\"><title>forecast +- 3 spreads</title></polygon>"
        );
    }
    polyline(
        out,
        kept.iter()
            .map(|p| (x(p.at.wall_secs()), p.value, y(p.value))),
        "#222",
    );
    let _ = write!(
        out,
        "<text x=\"4\" y=\"14\" font-size=\"11\">{hi:.1}</text><text x=\"4\" y=\"{:.0}\" font-size=\"11\">{lo:.1}</text></svg>",
        HEIGHT - 4.0
    );
    // The residual score under it, on a log-ish scale capped at 20.
    let _ = write!(
        out,
        "<svg width=\"{WIDTH}\" height=\"{SCORE_HEIGHT}\" viewBox=\"0 0 {WIDTH} {SCORE_HEIGHT}\">"
    );
    let ys = |r: f64| SCORE_HEIGHT - r.abs().min(20.0) / 20.0 * SCORE_HEIGHT;
    polyline(
        out,
        kept.iter().map(|p| {
            let r = p.residual.unwrap_or(f64::NAN);
            (x(p.at.wall_secs()), r, ys(r))
        }),
        "#a3c",
    );
    let _ = write!(
        out,
        "<text x=\"4\" y=\"12\" font-size=\"11\">|residual| (0-20)</text></svg>"
    );
}

/// A polyline broken at gaps (`NaN` values).
fn polyline(out: &mut String, points: impl Iterator<Item = (f64, f64, f64)>, colour: &str) {
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if !run.is_empty() {
            let _ = write!(
                out,
                "<polyline points=\"{run}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1\"/>"
            );
            run.clear();
        }
    };
    for (px, v, py) in points {
        if v.is_nan() {
            flush(&mut run, out);
        } else {
            let _ = write!(run, "{px:.1},{py:.1} ");
        }
    }
    flush(&mut run, out);
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One sentence on what the model covered and what the truck does not send.
pub fn coverage(detect: &DetectStatus) -> String {
    let m = detect.model;
    let share = |n: u64| {
        if m.ticks == 0 {
            0.0
        } else {
            100.0 * n as f64 / m.ticks as f64
        }
    };
    let mut text = format!(
        "The model could run on {} signal-ticks: it abstained on {} ({:.1} %, inputs outside its training envelope) and was masked on {} ({:.1} %, a gap in the engine speed); the rules ran on all of them.",
        m.ticks,
        m.abstained,
        share(m.abstained),
        m.masked,
        share(m.masked)
    );
    if !detect.unsupported.is_empty() {
        let names: Vec<&str> = detect.unsupported.iter().map(|s| s.as_str()).collect();
        text.push_str(&format!(
            " Not sent by this truck (not available since the first message): {}.",
            names.join(", ")
        ));
    }
    for senders in &detect.senders {
        text.push_str(&format!(
            " {} is sent by {} controllers ({}), each judged on its own.",
            senders.signal,
            senders.origins.len(),
            senders.origins.join(", ")
        ));
    }
    if detect.origins_refused > 0 {
        text.push_str(&format!(
            " {} readings came from senders past the {} a signal may have, and were dropped.",
            detect.origins_refused,
            vigil_agent::detect::window::MAX_ORIGINS
        ));
    }
    text
}
