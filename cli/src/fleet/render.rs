//! How the watcher shows the board: one JSON line per event (for pipes and `--json`), or a
//! table redrawn in place on a terminal. Pure: strings out, the time passed in.

use std::fmt::Write as _;

use super::board::{FleetEvent, Row, RowState};

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

/// The table as plain text (no terminal escapes), `now_ms` for the "since" column.
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
        Link::Retrying { in_secs, why } => format!("disconnected, retrying in {in_secs}s: {why}"),
    };
    let _ = writeln!(
        s,
        "vigil fleet watch  {broker}  {link}  trucks {} ({} offline)",
        counts.0, counts.1
    );
    let _ = writeln!(
        s,
        "{:<16} {:<62} {:<8} {:<28} {:>8}  {:<26} state",
        "truck", "signal", "severity", "value", "since", "where"
    );
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
            "{:<16} {:<62} {:<8} {:<28} {:>8}  {:<26} {}",
            r.truck,
            r.signal,
            severity,
            r.value,
            since,
            r.position,
            r.state.as_str()
        );
    }
    s
}

/// The table for a terminal: cursor home, each line cleared to its end, states coloured.
pub fn screen(table: &str) -> String {
    let mut s = String::from("\x1b[H");
    for (n, line) in table.lines().enumerate() {
        let colour = if n < 2 {
            "\x1b[1m"
        } else if line.ends_with(RowState::Offline.as_str()) {
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
