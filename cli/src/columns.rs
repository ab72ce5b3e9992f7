//! Text for the terminal tables (the demo's view, the fleet watch), which fit 80 columns:
//! how many columns a string takes, fields cut to a width with an ellipsis where the cut
//! loses least, and the short names tables give the signals.
//!
//! Pure functions of strings. Widths count what a terminal draws: a character is one
//! column, a wide East Asian character or an emoji two, a control character none (it is
//! dropped).

use vigil_agent::signals;

/// The width every line of a table fits in.
pub const TERMINAL: usize = 80;

const ELLIPSIS: char = '…';

/// Columns one character takes: 0 for a control character, 2 for the wide ranges of
/// Unicode's East Asian Width (Hangul, CJK, full-width forms, emoji), else 1.
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0..=0x1F | 0x7F..=0x9F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Columns `text` takes on a terminal.
pub fn width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Columns a line takes once its terminal escapes (`ESC [ ... letter`) are drawn: none.
/// The tests measure the screens with it.
#[cfg(test)]
pub fn visible_width(line: &str) -> usize {
    let mut chars = line.chars();
    let mut columns = 0;
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            columns += char_width(c);
        }
    }
    columns
}

/// The first characters of `text` that fit in `columns`, control characters dropped.
fn head(text: &str, columns: usize) -> (String, usize) {
    let (mut out, mut used) = (String::new(), 0);
    for c in text.chars() {
        let w = char_width(c);
        if w == 0 {
            continue;
        }
        if used + w > columns {
            break;
        }
        out.push(c);
        used += w;
    }
    (out, used)
}

/// `text` in at most `columns`, its end cut to `…` if it is longer.
pub fn fit(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return head(text, columns).0;
    }
    let (mut out, _) = head(text, columns.saturating_sub(1));
    if columns > 0 {
        out.push(ELLIPSIS);
    }
    out
}

/// `text` in at most `columns`, keeping its end: a path or a signal name says most at its
/// end (`…Compartment1.Temperature`).
pub fn fit_end(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return head(text, columns).0;
    }
    let reversed: String = text.chars().rev().collect();
    let (tail, _) = head(&reversed, columns.saturating_sub(1));
    let mut out = String::from(if columns > 0 { "…" } else { "" });
    out.extend(tail.chars().rev());
    out
}

/// `text` in at most `columns`, keeping both ends: vehicle ids differ at their ends
/// (`tanker-eu-…-000042`).
pub fn fit_middle(text: &str, columns: usize) -> String {
    if width(text) <= columns || columns < 5 {
        return fit(text, columns);
    }
    let keep = columns - 1;
    let front = head(text, keep.div_ceil(2)).0;
    let mut out = front;
    out.push(ELLIPSIS);
    out.push_str(&fit_end(text, keep / 2 + 1)[ELLIPSIS.len_utf8()..]);
    out
}

/// `text` fitted to `columns` (its end cut) and padded with spaces to exactly that width.
pub fn pad(text: &str, columns: usize) -> String {
    let mut out = fit(text, columns);
    out.push_str(&" ".repeat(columns - width(&out)));
    out
}

/// Padded on the left: for numbers.
pub fn pad_left(text: &str, columns: usize) -> String {
    let text = fit(text, columns);
    format!("{}{text}", " ".repeat(columns - width(&text)))
}

/// A signal's name in a table: the signals Vigil knows in words (`coolant`, `tank 1`,
/// `engine speed`); any other VSS name without its `Vehicle.` root.
pub fn short_signal(vss: &str) -> String {
    let known = match vss {
        signals::COOLANT_TEMPERATURE => Some("coolant"),
        signals::OIL_TEMPERATURE => Some("oil"),
        signals::FUEL_TEMPERATURE => Some("fuel"),
        signals::AMBIENT_TEMPERATURE => Some("air"),
        signals::SPEED => Some("speed"),
        signals::ENGINE_SPEED => Some("engine speed"),
        signals::LATITUDE => Some("latitude"),
        signals::LONGITUDE => Some("longitude"),
        _ => None,
    };
    if let Some(name) = known {
        return name.to_owned();
    }
    let tank = vss
        .strip_prefix("Vehicle.Cargo.Tank.Compartment")
        .and_then(|rest| rest.strip_suffix(".Temperature"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match tank {
        Some(n) => format!("tank {n}"),
        None => vss.strip_prefix("Vehicle.").unwrap_or(vss).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_count_what_a_terminal_draws() {
        assert_eq!(width("41.2°C, over 40°C limit"), 23);
        assert_eq!(width("車両-7"), 6);
        assert_eq!(width("a\tb"), 2);
        assert_eq!(visible_width("\x1b[1;31mCRITICAL\x1b[0m\x1b[K"), 8);
    }

    #[test]
    fn fields_are_cut_where_the_cut_loses_least() {
        assert_eq!(fit("41.2°C, over 40°C limit", 12), "41.2°C, ove…");
        assert_eq!(fit("short", 12), "short");
        assert_eq!(
            fit_end("Vehicle.Cargo.Tank.Compartment1.Temperature", 25),
            "…Compartment1.Temperature"
        );
        let id = "tanker-eu-west-1-fleet-000042";
        let cut = fit_middle(id, 20);
        assert_eq!(cut, "tanker-eu-…et-000042");
        assert_eq!(width(&cut), 20);
        assert_eq!(width(&fit("車両車両車両", 5)), 5);
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad_left("3s", 5), "   3s");
        assert_eq!(width(&pad("車両車両", 5)), 5);
    }

    #[test]
    fn signals_have_short_names() {
        assert_eq!(short_signal(signals::COOLANT_TEMPERATURE), "coolant");
        assert_eq!(
            short_signal("Vehicle.Cargo.Tank.Compartment12.Temperature"),
            "tank 12"
        );
        assert_eq!(
            short_signal("Vehicle.Powertrain.Transmission.Temperature"),
            "Powertrain.Transmission.Temperature"
        );
        assert_eq!(short_signal("oil_pressure"), "oil_pressure");
    }
}
