//! The demo's view of a running pipeline: a live dashboard when standard output is a
//! terminal, plain lines (one per reading, alert and batch) when it is not.
//!
//! It reads lossy taps and a `watch` of the alarm panel, so however slow the terminal is,
//! it never slows the pipeline down. The dashboard fits 80 columns: signals by their VSS
//! name less its `Vehicle.` root (in words on the alert lines), each field cut to its
//! column; the plain lines keep everything.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use vigil_agent::alarm::{Buzzer, Panel};
use vigil_agent::batch::Batch;
use vigil_agent::detect::alert::AlertEvent;
use vigil_agent::reading::{Quality, Reading, Signal};
use vigil_agent::signals;
use vigil_agent::telemetry::Metrics;
use vigil_agent::uplink::LinkStatus;

use crate::columns::{self, TERMINAL, fit, fit_end, pad, pad_left, short_signal};

/// How often the live view redraws.
const FRAME: Duration = Duration::from_millis(250);
/// Alert lines kept on screen.
const ALERT_LINES: usize = 8;
/// The readings table's columns: the name, the value, the sender; with their gaps, 79.
const NAME_COLUMNS: usize = 53;
const VALUE_COLUMNS: usize = 9;
const SOURCE_COLUMNS: usize = 14;

pub struct View {
    title: String,
    panel: watch::Receiver<Panel>,
    metrics: Arc<Metrics>,
    live: bool,
    latest: BTreeMap<Signal, Reading>,
    /// The newest alert events, as the dashboard lists them.
    alerts: VecDeque<String>,
    batches: u64,
    sim_time: Duration,
    /// The uplink's state, and how to watch the broker.
    link: Option<watch::Receiver<LinkStatus>>,
    hint: Option<String>,
}

impl View {
    /// A view headed by `title`, of the panel and counters of a running pipeline.
    pub fn new(
        title: String,
        panel: watch::Receiver<Panel>,
        metrics: Arc<Metrics>,
        live: bool,
    ) -> Self {
        View {
            title,
            panel,
            metrics,
            live,
            latest: BTreeMap::new(),
            alerts: VecDeque::new(),
            batches: 0,
            sim_time: Duration::ZERO,
            link: None,
            hint: None,
        }
    }

    /// Shows the link and the spool, and how to watch the broker.
    pub fn with_link(mut self, link: watch::Receiver<LinkStatus>, hint: Option<String>) -> Self {
        self.link = Some(link);
        self.hint = hint;
        self
    }

    fn link_line(&self) -> Option<String> {
        let link = *self.link.as_ref()?.borrow();
        let m = self.metrics.snapshot();
        Some(format!(
            "uplink {}  spool {} records{}  published {}  acknowledged {}",
            match link.online {
                Some(true) => "online",
                Some(false) => "offline",
                None => "unknown",
            },
            link.spool_depth.unwrap_or(0),
            if link.spool_in_memory {
                " IN MEMORY (disk full or failing)"
            } else {
                ""
            },
            m.uplink_published_total,
            m.uplink_acked_total
        ))
    }

    /// Runs until every tap has closed. Cancels `shutdown` once `duration` of simulated
    /// time has been seen.
    pub async fn run(
        mut self,
        mut readings: mpsc::Receiver<Reading>,
        mut alerts: mpsc::Receiver<AlertEvent>,
        mut batches: mpsc::Receiver<Batch>,
        duration: Option<Duration>,
        shutdown: CancellationToken,
    ) {
        // Not locked across awaits: the guard is not Send, and each write is one call.
        let mut out = std::io::stdout();
        if self.live {
            let _ = write!(out, "\x1b[?1049h\x1b[?25l");
        }
        let mut frame = tokio::time::interval(FRAME);
        let (mut readings_open, mut alerts_open, mut batches_open) = (true, true, true);
        let mut link = self.link.clone();
        let mut was_online = false;
        while readings_open || alerts_open || batches_open {
            let link_changed = async {
                match link.as_mut() {
                    Some(l) => l.changed().await.ok(),
                    None => std::future::pending().await,
                }
            };
            let line = tokio::select! {
                Some(()) = link_changed => {
                    // Plain lines say when the link comes and goes, not every depth change.
                    let online = link.as_ref().is_some_and(|l| l.borrow().online == Some(true));
                    if online != was_online {
                        was_online = online;
                        self.link_line()
                    } else {
                        None
                    }
                }
                r = readings.recv(), if readings_open => match r {
                    Some(r) => {
                        self.sim_time = self.sim_time.max(r.at.mono);
                        if duration.is_some_and(|d| self.sim_time >= d) {
                            shutdown.cancel();
                        }
                        let line = match (r.signal.as_str(), r.value()) {
                            // To J1939's 1e-7 degree: hundredths would be a kilometre.
                            (signals::LATITUDE | signals::LONGITUDE, Some(v)) => {
                                format!("reading {:.3} {} = {v:.7}", r.at.wall_secs(), r.signal)
                            }
                            _ => format!("reading {r}"),
                        };
                        self.latest.insert(r.signal.clone(), r);
                        Some(line)
                    }
                    None => { readings_open = false; None }
                },
                a = alerts.recv(), if alerts_open => match a {
                    Some(a) => {
                        self.alerts.push_back(alert_line(&a));
                        if self.alerts.len() > ALERT_LINES { self.alerts.pop_front(); }
                        Some(format!("{} {a}", clock(a.at().mono)))
                    }
                    None => { alerts_open = false; None }
                },
                b = batches.recv(), if batches_open => match b {
                    Some(b) => {
                        self.batches += 1;
                        let mut line = format!("batch {} sealed with {} readings", self.batches, b.readings.len());
                        if let Some(link) = self.link_line() {
                            let _ = write!(line, "; {link}");
                        }
                        Some(line)
                    }
                    None => { batches_open = false; None }
                },
                _ = frame.tick(), if self.live => {
                    let _ = out.write_all(self.render().as_bytes());
                    let _ = out.flush();
                    None
                }
            };
            if let (false, Some(line)) = (self.live, line) {
                // A closed pipe (`vigil demo | head`) ends the demo like Ctrl-C would.
                if writeln!(out, "{line}").is_err() {
                    shutdown.cancel();
                }
            }
        }
        if self.live {
            let last = self.render();
            let _ = writeln!(out, "\x1b[?25h\x1b[?1049l{last}");
        }
        let _ = out.flush();
    }

    /// The dashboard: every line at most [`TERMINAL`] columns once its escapes are drawn.
    fn render(&self) -> String {
        let mut s = String::from("\x1b[H");
        let panel = self.panel.borrow();
        let m = self.metrics.snapshot();
        for line in wrap_title(&self.title) {
            let _ = writeln!(s, "\x1b[1m{line}\x1b[0m\x1b[K");
        }
        let _ = writeln!(
            s,
            "simulated time {}   (Ctrl-C to stop)\x1b[K\n\x1b[K",
            clock(self.sim_time)
        );
        let _ = writeln!(
            s,
            "\x1b[1m{} {}  {}\x1b[0m\x1b[K",
            pad("signal (VSS, under Vehicle.)", NAME_COLUMNS),
            pad_left("value", VALUE_COLUMNS),
            pad("source", SOURCE_COLUMNS)
        );
        for r in self.latest.values() {
            let name = r.signal.as_str();
            // A position in hundredths of a degree would be a kilometre off: metres here.
            let decimals = match name {
                signals::LATITUDE | signals::LONGITUDE => 5,
                _ => 2,
            };
            let value = match r.value() {
                Some(v) => format!("{v:.decimals$}"),
                None => format!("[{}]", quality(r.quality)),
            };
            let _ = writeln!(
                s,
                "{} {}  {}\x1b[K",
                pad(
                    &fit_end(name.strip_prefix("Vehicle.").unwrap_or(name), NAME_COLUMNS),
                    NAME_COLUMNS
                ),
                pad_left(&value, VALUE_COLUMNS),
                fit_end(&r.origin.to_string(), SOURCE_COLUMNS)
            );
        }
        let (colour, buzzer) = match panel.buzzer() {
            Buzzer::Silent => ("\x1b[32m", "silent"),
            Buzzer::Warning => ("\x1b[33m", "WARNING beeps"),
            Buzzer::Critical => ("\x1b[1;31m", "CRITICAL continuous"),
        };
        let _ = writeln!(
            s,
            "\x1b[K\n\x1b[1mdriver display\x1b[0m  buzzer: {colour}{buzzer}\x1b[0m\x1b[K"
        );
        match panel.shown() {
            Some(a) => {
                let shown = format!(
                    "{} {}: {}, since {} ({} active)",
                    a.severity.to_string().to_uppercase(),
                    short_signal(a.signal.as_str()),
                    a.kind.describe(a.value, a.threshold, a.score),
                    clock(a.raised_at.mono),
                    panel.active_count()
                );
                let _ = writeln!(s, "  {colour}{}\x1b[0m\x1b[K", fit(&shown, TERMINAL - 2));
            }
            None => {
                let _ = writeln!(s, "  all normal\x1b[K");
            }
        }
        let _ = writeln!(s, "\x1b[K\n\x1b[1malerts\x1b[0m\x1b[K");
        if self.alerts.is_empty() {
            let _ = writeln!(s, "  none yet\x1b[K");
        }
        for line in &self.alerts {
            let _ = writeln!(s, "  {}\x1b[K", fit(line, TERMINAL - 2));
        }
        let serial_errors = m.serial_framing_errors_total
            + m.serial_checksum_errors_total
            + m.serial_protocol_errors_total;
        let counts = format!(
            "frames {}  readings {}  batches {}  shed {}  serial err {}",
            m.can_frames_total,
            m.readings_total,
            m.batches_sealed_total,
            m.readings_shed_total,
            serial_errors
        );
        let _ = writeln!(
            s,
            "\x1b[K\n\x1b[1mpipeline\x1b[0m  {}\x1b[K",
            fit(&counts, TERMINAL - "pipeline  ".len())
        );
        if let Some(line) = self.link_line() {
            let _ = writeln!(s, "{}\x1b[K", fit(&line, TERMINAL));
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(s, "  {}\x1b[K", fit(hint, TERMINAL - 2));
        }
        s.push_str("\x1b[J");
        s
    }
}

/// An alert event as the dashboard lists it: `0:01:04 RAISED #1 warning forecast tank 1:
/// 13.8°C, unexpected change` (the plain lines add the sender, findings and position).
fn alert_line(event: &AlertEvent) -> String {
    let (word, a) = match event {
        AlertEvent::Raised(a) => ("RAISED", a),
        AlertEvent::Escalated(a) => ("ESCALATED", a),
        AlertEvent::Updated(a) => ("UPDATED", a),
        AlertEvent::Cleared { alert, .. } => ("CLEARED", alert),
    };
    format!(
        "{} {word} #{} {} {} {}: {}",
        clock(event.at().mono),
        a.id,
        a.severity,
        a.kind,
        fit_end(&short_signal(a.signal.as_str()), 24),
        a.kind.describe(a.value, a.threshold, a.score)
    )
}

/// A flag in the value column's nine: the plain lines spell it out.
fn quality(q: Quality) -> &'static str {
    match q {
        Quality::Good => "good",
        Quality::NotAvailable => "n/a",
        Quality::Error => "error",
        Quality::OutOfRange => "range",
    }
}

/// The title on as few lines as fit, broken between its ` | ` parts; a part too long for
/// a line of its own (a vehicle id may have 128 characters) is cut where it ends one.
fn wrap_title(title: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in title.split(" | ") {
        let fits = |line: &String| columns::width(line) + 3 + columns::width(part) <= TERMINAL;
        match lines.last_mut() {
            Some(line) if fits(line) || columns::width(part) > TERMINAL => {
                *line = fit(&format!("{line} | {part}"), TERMINAL);
            }
            _ => lines.push(fit(part, TERMINAL)),
        }
    }
    lines
}

/// Simulated time as h:mm:ss.
fn clock(t: Duration) -> String {
    let s = t.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests;
