//! The replay report: one HTML file that needs nothing else (no script, font or style from
//! anywhere; the plots are inline SVG drawn here). It opens with what was replayed and when
//! (UTC), a legend, and tables of the alerts, the fault labels of a simulated drive and the
//! bus's security findings; then a panel per signal ([`plot`]) on one shared time range:
//! the time since the first reading and the UTC clock time, the values in the signal's
//! unit, the forecast band where the model ran, the fault labels as spans and the alerts
//! as spans from raised to cleared, coloured by severity.
//!
//! It never reads a file: [`crate::replay`] hands it everything, labels included.

mod axis;
mod plot;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use vigil_agent::decode::table::SignalTable;
use vigil_agent::detect::alert::Severity;
use vigil_agent::detect::{DetectStatus, TracePoint};
use vigil_agent::reading::{Reading, Signal};
use vigil_agent::signals::{LATITUDE, LONGITUDE};
use vigil_sim::record::Label;

use crate::replay::{AlertLine, SecurityLine};
use plot::{Panel, Point, Span};

/// The unit of each signal, from the signal table the log was decoded with; a tank
/// compartment's temperature (from the serial node, in millidegrees) is in degC.
#[derive(Clone, Debug, Default)]
pub struct Units(HashMap<String, Arc<str>>);

impl Units {
    pub fn of_table(table: &SignalTable) -> Self {
        Units(
            table
                .layouts()
                .iter()
                .filter(|l| !l.unit.is_empty())
                .map(|l| (l.signal.as_str().to_owned(), l.unit.clone()))
                .collect(),
        )
    }

    pub fn get(&self, signal: &str) -> Option<&str> {
        let tank = signal.starts_with("Vehicle.Cargo.Tank.") && signal.ends_with(".Temperature");
        self.0.get(signal).map(|u| &**u).or(tank.then_some("degC"))
    }
}

/// The readings of the signals the detect stage does not trace (speed, engine speed, the
/// air), at most one a second each, so the report can show what the truck was doing.
#[derive(Debug, Default)]
pub struct Context {
    series: BTreeMap<Signal, Vec<(f64, f64)>>,
    second: HashMap<Signal, i64>,
}

impl Context {
    /// Keeps the reading if it is the signal's first with a value in its wall-clock second.
    pub fn observe(&mut self, reading: &Reading) {
        let name = reading.signal.as_str();
        let Some(value) = reading.value() else { return };
        if name == LATITUDE || name == LONGITUDE {
            return;
        }
        let second = reading.at.wall_us.div_euclid(1_000_000);
        if self.second.get(&reading.signal) == Some(&second) {
            return;
        }
        self.second.insert(reading.signal.clone(), second);
        self.series
            .entry(reading.signal.clone())
            .or_default()
            .push((reading.at.wall_secs(), value));
    }
}

/// Everything a report shows.
pub struct Report<'a> {
    pub input: &'a Path,
    pub model: Option<&'a str>,
    pub detect: &'a DetectStatus,
    pub trace: &'a [TracePoint],
    pub context: &'a Context,
    pub units: &'a Units,
    pub alerts: &'a [AlertLine],
    pub security: &'a [SecurityLine],
    /// A simulated drive's labels file and its rows, when there was one beside the log.
    pub labels: Option<(&'a Path, &'a [Label])>,
}

const STYLE: &str = "body{font:14px sans-serif;margin:1.5em;color:#222}\
    table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
    h2{font-size:15px;margin:1.2em 0 0.2em}h2 small{font-weight:normal;color:#555}\
    svg.panel{display:block}.legend{position:sticky;top:0;background:#fff;padding:4px 0;border-bottom:1px solid #ddd;\
    display:flex;flex-wrap:wrap;gap:4px 18px;max-width:1000px}.legend svg{vertical-align:-2px}\
    code{font-size:13px}";

/// The report's HTML.
pub fn html(report: &Report) -> String {
    let mut by_signal: BTreeMap<&str, Vec<Point>> = BTreeMap::new();
    for p in report.trace {
        by_signal.entry(p.signal.as_str()).or_default().push(Point {
            t: p.at.wall_secs(),
            value: p.value,
            band: p
                .forecast
                .map(|f| (f.mean - 3.0 * f.sigma, f.mean + 3.0 * f.sigma)),
            residual: p.residual,
        });
    }
    let context: Vec<(&str, Vec<Point>)> = report
        .context
        .series
        .iter()
        .filter(|(signal, _)| !by_signal.contains_key(signal.as_str()))
        .map(|(signal, series)| {
            let points = series
                .iter()
                .map(|&(t, value)| Point {
                    t,
                    value,
                    band: None,
                    residual: None,
                })
                .collect();
            (signal.as_str(), points)
        })
        .collect();
    let times = by_signal
        .values()
        .chain(context.iter().map(|(_, points)| points))
        .flat_map(|points| points.first().into_iter().chain(points.last()))
        .map(|p| p.t);
    let (t0, t1) = times.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| {
        (a.min(t), b.max(t))
    });
    let span = t0.is_finite().then_some(Span {
        t0,
        t1: t1.max(t0 + 1.0),
    });
    let labels = report.labels.map_or(&[][..], |(_, rows)| rows);

    let mut out = String::new();
    let input = escape(&report.input.display().to_string());
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Vigil replay: {input}</title><style>{STYLE}</style></head><body>\
         <h1>Vigil replay</h1><p>Input <code>{input}</code>"
    );
    if let Some((path, rows)) = report.labels {
        let _ = write!(
            out,
            ", with its fault labels <code>{}</code> ({} rows)",
            escape(&path.display().to_string()),
            rows.len()
        );
    }
    let _ = write!(
        out,
        "; model <code>{}</code>. ",
        escape(report.model.unwrap_or("none (rules only)"))
    );
    match span {
        Some(s) => {
            let _ = write!(
                out,
                "First reading {} {} UTC, last {} {} UTC ({} of readings). ",
                axis::utc_date(s.t0),
                axis::utc_clock(s.t0),
                axis::utc_date(t1),
                axis::utc_clock(t1),
                axis::since(t1 - s.t0).trim_start_matches('+')
            );
        }
        None => out.push_str("No reading of a signal to plot. "),
    }
    let _ = write!(
        out,
        "{} alerts, {} security findings.</p><p>{}</p>",
        report.alerts.len(),
        report.security.len(),
        escape(&coverage(report.detect))
    );
    legend(&mut out, &by_signal, report.alerts, labels, report.labels);
    let when = |t: f64| match span {
        Some(s) => format!("{} ({})", axis::utc_clock(t), axis::since(t - s.t0)),
        None => format!("{t:.1}"),
    };
    alert_table(&mut out, report.alerts, &when);
    if !labels.is_empty() {
        out.push_str("<h2>Fault labels</h2><table><tr><th>fault</th><th>signal</th><th>from (UTC)</th><th>to (UTC)</th></tr>");
        for l in labels {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&l.fault),
                signal_cell(&l.signal),
                when(l.start),
                when(l.end)
            );
        }
        out.push_str("</table>");
    }
    if !report.security.is_empty() {
        out.push_str("<h2>Security findings</h2><table><tr><th>at (UTC)</th><th>kind</th><th>severity</th><th>senders</th><th>count</th><th>detail</th></tr>");
        for s in report.security {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(s.at),
                s.kind,
                s.severity,
                escape(&s.origins.join(", ")),
                s.count,
                escape(&s.detail)
            );
        }
        out.push_str("</table>");
    }
    if let Some(span) = span {
        let watched = by_signal.iter().map(|(s, points)| (*s, points, true));
        let others = context.iter().map(|(s, points)| (*s, points, false));
        for (signal, points, watched) in watched.chain(others) {
            let panel = Panel {
                signal,
                unit: report.units.get(signal),
                watched,
                points: points.clone(),
                alerts: report
                    .alerts
                    .iter()
                    .filter(|a| a.signal.as_str() == signal)
                    .collect(),
                labels: labels
                    .iter()
                    .filter(|l| l.signal.as_str() == signal)
                    .collect(),
            };
            plot::draw(&mut out, &panel, span);
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// The alerts, times in UTC and since the first reading.
fn alert_table(out: &mut String, alerts: &[AlertLine], when: &dyn Fn(f64) -> String) {
    if alerts.is_empty() {
        out.push_str("<h2>Alerts</h2><p>None.</p>");
        return;
    }
    out.push_str(
        "<h2>Alerts</h2><table><tr><th>id</th><th>signal</th><th>kind</th><th>findings</th>\
         <th>severity</th><th>raised (UTC)</th><th>cleared (UTC)</th><th>score</th>\
         <th>threshold</th><th>rule</th></tr>",
    );
    for a in alerts {
        let findings: Vec<String> = a.findings.iter().map(ToString::to_string).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            a.id,
            signal_cell(&a.signal),
            a.kind,
            findings.join(", "),
            a.severity,
            when(a.raised_at),
            a.cleared_at.map_or("active at the end".into(), when),
            a.score.map_or("-".into(), |s| format!("{s:.2}")),
            a.threshold,
            escape(&a.rule)
        );
    }
    out.push_str("</table>");
}

/// What the panels draw, each with its swatch; kept at the top of the window.
fn legend(
    out: &mut String,
    by_signal: &BTreeMap<&str, Vec<Point>>,
    alerts: &[AlertLine],
    labels: &[Label],
    labels_file: Option<(&Path, &[Label])>,
) {
    let points = || by_signal.values().flatten();
    let file = labels_file
        .and_then(|(path, _)| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut entries: Vec<(String, String)> = vec![(
        "reading".into(),
        format!(
            "<line x1=\"0\" x2=\"18\" y1=\"7\" y2=\"7\" stroke=\"{}\" stroke-width=\"1.5\"/>",
            plot::READING
        ),
    )];
    if points().any(|p| p.band.is_some()) {
        entries.push((
            "forecast ± 3 spreads (where the model ran)".into(),
            format!(
                "<rect width=\"18\" height=\"12\" y=\"1\" fill=\"{}\" opacity=\"0.3\"/>",
                plot::BAND
            ),
        ));
    }
    if points().any(|p| p.residual.is_some()) {
        entries.push((
            "|residual| (0-20)".into(),
            format!(
                "<line x1=\"0\" x2=\"18\" y1=\"7\" y2=\"7\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                plot::RESIDUAL
            ),
        ));
    }
    if !labels.is_empty() {
        entries.push((
            format!("fault label ({file})"),
            format!(
                "<rect width=\"18\" height=\"12\" y=\"1\" fill=\"{}\" opacity=\"0.85\"/>",
                plot::LABEL
            ),
        ));
    }
    if !alerts.is_empty() {
        for severity in [Severity::Warning, Severity::Critical] {
            entries.push((
                format!("{severity} alert, raised to cleared"),
                format!(
                    "<rect width=\"18\" height=\"12\" y=\"1\" fill=\"{}\" opacity=\"0.85\"/>",
                    plot::severity_colour(severity)
                ),
            ));
        }
    }
    out.push_str("<div class=\"legend\">");
    for (text, swatch) in &entries {
        let _ = write!(
            out,
            "<span class=\"legend-entry\"><svg width=\"18\" height=\"14\">{swatch}</svg> {}</span>",
            escape(text)
        );
    }
    out.push_str("</div>");
}

/// A signal's name in a table, free to wrap after each dot.
fn signal_cell(signal: &Signal) -> String {
    escape(signal.as_str()).replace('.', ".<wbr>")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One sentence on what the model covered and what the truck does not send.
pub fn coverage(detect: &DetectStatus) -> String {
    let m = &detect.model;
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
