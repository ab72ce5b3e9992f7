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
    use crate::columns::{visible_width, width};
    use crate::fleet::board::{Filter, FleetBoard};
    use vigil_agent::detect::alert::AlertKind;

    const TANK: &str = "Vehicle.Cargo.Tank.Compartment1.Temperature";

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

    /// The table at its widest: a 128-character vehicle id, a DBC's long signal name, every
    /// alert kind, DM1s with many codes, security findings with long details, a long broker
    /// name and a long reason to retry. Every line fits 80 columns, on screen too, and each
    /// cut keeps what tells rows apart.
    #[test]
    fn every_line_of_the_table_fits_80_columns() {
        let long_id = format!("tanker-{}-000042", "x".repeat(128 - 14));
        assert_eq!(long_id.len(), 128);
        let long_signal = "Vehicle.Body.Trailer.Axle3.Wheel.Left.Brake.Lining.Rear.Temperature";
        let lat = "Vehicle.CurrentLocation.Latitude";
        let lon = "Vehicle.CurrentLocation.Longitude";
        let mut script = format!(
            "1000 dt/vigil/{long_id}/status {{\"format\":\"vigil.status/1\",\"thing\":\"{long_id}\",\"state\":\"online\",\"agent_version\":\"0.1.0-rc.1+build.20261201.g0123456789abcdef\",\"at_ms\":500}}\n\
             1500 dt/vigil/{long_id}/readings {{\"format\":\"vigil.readings/1\",\"t0\":1000,\"res\":0.1,\"series\":[{{\"s\":\"{lat}\",\"o\":\"can0/sa1C\",\"r\":1e-7,\"t\":[[0,0,1]],\"v\":[-891371543]}},{{\"s\":\"{lon}\",\"o\":\"can0/sa1C\",\"r\":1e-7,\"t\":[[0,0,1]],\"v\":[-1795753821]}}]}}\n"
        );
        for (n, kind) in AlertKind::ALL.into_iter().enumerate() {
            let signal = if n % 2 == 0 { long_signal } else { TANK };
            script.push_str(&format!(
                "{} dt/vigil/{long_id}/alerts {{\"boot\":1,\"seq\":{},\"event\":\"raised\",\"alert_id\":{},\"signal\":\"{signal}\",\"kind\":\"{kind}\",\"severity\":\"critical\",\"value\":-12345.678,\"threshold\":-12345.6,\"score\":123456.7,\"raised_at_ms\":2000,\"position\":{{\"latitude\":-89.1371543,\"longitude\":-179.5753821,\"at_ms\":1500,\"age_s\":273600.0}}}}\n",
                2000 + n,
                n + 1,
                n + 1
            ));
        }
        let dtcs: Vec<String> = (0..40)
            .map(|n| {
                format!(
                    "{{\"spn\":{},\"fmi\":31,\"occurrence_count\":126,\"conversion\":\"version4\"}}",
                    524_000 + n
                )
            })
            .collect();
        let red = r#"{"malfunction":{"state":"on","flash":"none"},"red_stop":{"state":"on","flash":"none"},"amber_warning":{"state":"on","flash":"none"},"protect":{"state":"on","flash":"none"}}"#;
        script.push_str(&format!(
            "3000 dt/vigil/{long_id}/dm1 {{\"boot\":1,\"seq\":100,\"at_ms\":3000,\"origin\":\"vcan-trailer-bus-7/saFE\",\"pgn\":65226,\"lamps\":{red},\"dtcs\":[{}]}}\n",
            dtcs.join(",")
        ));
        script.push_str(&format!(
            "4000 dt/vigil/{long_id}/security {{\"boot\":1,\"seq\":101,\"at_ms\":4000,\"kind\":\"request_overload\",\"severity\":\"warning\",\"bus\":\"vcan-trailer-bus-7\",\"origins\":[\"vcan-trailer-bus-7/saFE\",\"vcan-trailer-bus-7/sa00\"],\"count\":99999,\"detail\":\"{}\"}}\n",
            "requests for PGN 0x00FECA from every address, ".repeat(6)
        ));
        let mut board = FleetBoard::new(Filter::default());
        for line in script.lines() {
            let (received, rest) = line.split_once(' ').unwrap();
            let (topic, payload) = rest.split_once(' ').unwrap();
            board
                .apply(topic, payload.as_bytes(), false, received.parse().unwrap())
                .unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        let rows = board.rows();
        assert_eq!(rows.len(), 1 + AlertKind::ALL.len() + 2, "{rows:#?}");
        let table = table(
            &rows,
            400_000_000,
            "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883",
            &Link::Retrying {
                in_secs: 60,
                why: "TLS handshake failed: invalid peer certificate: certificate expired".into(),
            },
            board.counts(),
        );
        for line in table.lines() {
            assert!(width(line) <= TERMINAL, "{} columns: {line}", width(line));
        }
        for line in screen(&table).lines() {
            assert!(visible_width(line) <= TERMINAL, "{line:?}");
        }
        // The kind column names every kind; the id keeps its start and end; a long signal its end.
        for kind in AlertKind::ALL {
            assert!(
                table.contains(&format!(" {kind} ")),
                "no {kind} in\n{table}"
            );
        }
        assert!(table.contains(" request_overload "), "{table}");
        assert!(table.contains(" dm1 "), "{table}");
        assert!(table.contains("\ntanker-xxx…xx-000042 "), "{table}");
        assert!(table.contains(" …ear.Temperature "), "{table}");
        assert!(table.contains(" tank 1 "), "{table}");
        assert!(
            table.contains("trucks 1 (0 offline)  retrying in 60s: TLS handshake"),
            "{table}"
        );
        assert!(table.contains("at -89.13715,-179.57538 +3d04h"), "{table}");
        assert!(
            table.contains("SPN 524000 FMI 31, SPN 524001 FMI 31"),
            "{table}"
        );
    }
}
