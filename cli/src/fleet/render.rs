//! How the watcher shows the board: one JSON line per event (for pipes and `--json`), or a
//! table redrawn in place on a terminal, 80 columns wide. Pure: strings out, the time
//! passed in.

use std::fmt::Write as _;

use super::board::{FleetEvent, Row, RowState};
use crate::columns::{TERMINAL, fit, fit_end, fit_middle, pad, pad_left, short_signal};

/// One event as one line of JSON, without the newline.
pub fn json_line(event: &FleetEvent) -> String {
    serde_json::to_string(event).expect("a fleet event always serialises")
}

/// What the header says of the watcher's own link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    /// Waiting to try again, with the reason the last attempt failed.
    Retrying {
        in_secs: u64,
        why: String,
    },
}

/// The table's columns, and their widths: with a space between each, 78 of the 80.
const TRUCK: usize = 20;
const SIGNAL: usize = 16;
const KIND: usize = 16;
const SEVERITY: usize = 8;
const SINCE: usize = 6;

/// The table as plain text (no terminal escapes), `now_ms` for the "since" column. Every
/// line fits 80 columns: a row is a line of short fields (truck, signal, kind, severity,
/// since, state) and, indented under it, a line with the value in words and where the
/// truck was; each field is cut to its column where the cut loses least.
pub fn table(
    rows: &[Row],
    now_ms: i64,
    broker: &str,
    link: &Link,
    counts: (usize, usize),
) -> String {
    let mut s = String::new();
    let link = match link {
        Link::Connecting => "connecting".to_owned(),
        Link::Connected => "connected".to_owned(),
        // Said first: the broker's name, last, is what the 80 columns cut.
        Link::Retrying { in_secs, why } => format!("retrying in {in_secs}s: {why}"),
    };
    let title = format!(
        "vigil fleet watch  trucks {} ({} offline)  {link}  {broker}",
        counts.0, counts.1
    );
    let _ = writeln!(s, "{}", fit(&title, TERMINAL));
    let _ = writeln!(
        s,
        "{} {} {} {} {} state",
        pad("truck", TRUCK),
        pad("signal", SIGNAL),
        pad("kind", KIND),
        pad("severity", SEVERITY),
        pad_left("since", SINCE)
    );
    let _ = writeln!(s, "  value and what was crossed, where the truck was");
    if rows.is_empty() {
        let _ = writeln!(s, "(nothing to show yet)");
    }
    for r in rows {
        let severity = r.severity.map(|s| s.to_string()).unwrap_or_default();
        let since = if r.since_ms == 0 {
            String::new()
        } else {
            age(now_ms - r.since_ms)
        };
        let _ = writeln!(
            s,
            "{} {} {} {} {} {}",
            pad(&fit_middle(&r.truck, TRUCK), TRUCK),
            pad(&fit_end(&short_signal(&r.signal), SIGNAL), SIGNAL),
            pad(&r.kind, KIND),
            pad(&severity, SEVERITY),
            pad_left(&since, SINCE),
            r.state.as_str()
        );
        let position = (!r.position.is_empty()).then(|| format!("at {}", r.position));
        let detail: Vec<&str> = [Some(r.value.as_str()), position.as_deref()]
            .into_iter()
            .flatten()
            .filter(|part| !part.is_empty())
            .collect();
        if !detail.is_empty() {
            let _ = writeln!(s, "  {}", fit(&detail.join("  "), TERMINAL - 2));
        }
    }
    s
}

/// The table for a terminal: cursor home, each line cleared to its end, a row's two lines
/// coloured by its state and severity.
pub fn screen(table: &str) -> String {
    let mut s = String::from("\x1b[H");
    let mut colour = "";
    for (n, line) in table.lines().enumerate() {
        if n < 3 {
            colour = "\x1b[1m";
        } else if !line.starts_with("  ") {
            colour = if line.ends_with(RowState::Offline.as_str()) {
                "\x1b[35m"
            } else if line.ends_with(RowState::Active.as_str()) {
                if line.contains(" critical ") {
                    "\x1b[1;31m"
                } else {
                    "\x1b[33m"
                }
            } else {
                ""
            };
        }
        let _ = writeln!(s, "{colour}{line}\x1b[0m\x1b[K");
    }
    s.push_str("\x1b[J");
    s
}

/// "42s", "3m05s", "2h07m", "3d04h": how long ago, to the precision a glance needs.
pub fn age(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        for (ms, text) in [
            (-5, "0s"),
            (42_900, "42s"),
            (185_000, "3m05s"),
            (7_620_000, "2h07m"),
            (273_600_000, "3d04h"),
        ] {
            assert_eq!(age(ms), text);
        }
    }
}
