//! What the cab display shows, and how it is drawn on a 128x64 one-colour screen.
//!
//! [`Screen`] is a plain value made from the panel and the link state ([`Screen::of`]), so
//! the display task redraws only when it changes. [`draw`] renders one on any embedded-graphics
//! `DrawTarget<Color = BinaryColor>`: the gateway's SSD1306, or the in-memory frame buffer
//! the tests compare with the PNGs beside them.
//!
//! Layout, for a glance from the driver's seat: the severity in a band across the top
//! (filled for critical), the signal's short name, the value in the largest font with how
//! long the alert has been active beside it, then what was crossed in words ("over 40°C
//! limit", "rising 3.3°C/min", "sensor stuck"). With nothing wrong: "ALL NORMAL" and the
//! link and spool state.

use std::time::Duration;

use embedded_graphics::mono_font::iso_8859_1::{
    FONT_6X10, FONT_7X13_BOLD, FONT_9X15_BOLD, FONT_10X20,
};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

use super::{LinkStatus, Panel};
use crate::detect::Live;
use crate::detect::alert::{Alert, Severity};
use crate::reading::Signal;
use crate::signals::{AMBIENT_TEMPERATURE, COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE};

/// The display's size in pixels.
pub const WIDTH: u32 = 128;
#[cfg(test)]
pub const HEIGHT: u32 = 64;

/// One screenful.
#[derive(Clone, Debug, PartialEq)]
pub enum Screen {
    /// The alert the panel shows.
    Alert(AlertScreen),
    /// Nothing wrong: the link and spool state.
    Normal(LinkStatus),
    /// The alarm is not running: nothing on this screen can be trusted.
    Stopped,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertScreen {
    pub severity: Severity,
    /// The signal's short name, such as `COOLANT` or `TANK 2`.
    pub signal: String,
    /// `None` when the alert is about a sensor that sends no value (silent, flagged).
    pub value: Option<f64>,
    /// What was crossed, in words ([`crate::detect::alert::AlertKind::in_words`]).
    pub crossed: String,
    /// `°C` for a temperature, empty otherwise.
    pub unit: &'static str,
    /// How long the alert has been on the panel, in whole seconds.
    pub active_for: Duration,
    pub acknowledged: bool,
    /// Other alerts active besides this one.
    pub others: usize,
}

impl Screen {
    /// The screen for `panel`, with the shown alert's stream's value from `live` (or the
    /// value it was raised at, before a tick has passed); `age` says how long an alert has
    /// been on the panel.
    pub fn of(
        panel: &Panel,
        link: LinkStatus,
        live: &Live,
        age: impl Fn(&Alert) -> Duration,
    ) -> Screen {
        let Some(alert) = panel.shown() else {
            return Screen::Normal(link);
        };
        Screen::Alert(AlertScreen {
            severity: alert.severity,
            signal: short_name(&alert.signal),
            value: alert.kind.has_value().then(|| {
                alert
                    .origin
                    .as_ref()
                    .and_then(|o| live.get(&alert.signal, o))
                    .unwrap_or(alert.value)
            }),
            crossed: alert.kind.in_words(alert.threshold, alert.score),
            unit: if alert.signal.as_str().ends_with("Temperature") {
                "°C"
            } else {
                ""
            },
            active_for: Duration::from_secs(age(alert).as_secs()),
            acknowledged: panel.is_acknowledged(alert),
            others: panel.active_count() - 1,
        })
    }
}

/// The name a driver knows a signal by, at most 13 characters (the width of the name line).
pub fn short_name(signal: &Signal) -> String {
    let name = signal.as_str();
    let known = [
        (COOLANT_TEMPERATURE, "COOLANT"),
        (OIL_TEMPERATURE, "ENGINE OIL"),
        (FUEL_TEMPERATURE, "FUEL"),
        (AMBIENT_TEMPERATURE, "OUTSIDE AIR"),
    ];
    if let Some((_, short)) = known.iter().find(|(vss, _)| *vss == name) {
        return (*short).to_owned();
    }
    if let Some(n) = name
        .strip_prefix("Vehicle.Cargo.Tank.Compartment")
        .and_then(|rest| rest.strip_suffix(".Temperature"))
    {
        return format!("TANK {n}");
    }
    // Anything else: its last branch that is not the quantity, as in `...Transmission.Temperature`.
    let branch = name
        .rsplit('.')
        .find(|part| *part != "Temperature")
        .unwrap_or(name);
    branch.to_uppercase().chars().take(13).collect()
}

/// An alert's age as the footer shows it: `45s`, `12m05s`, `3h07m`.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..360_000 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => "99h+".into(),
    }
}

/// A count in at most five digits and a unit: `1234`, `12345`, `123k`, `18446P`.
pub fn count(n: u64) -> String {
    let mut n = n;
    for unit in ["", "k", "M", "G", "T", "P"] {
        if n < 100_000 {
            return format!("{n}{unit}");
        }
        n /= 1000;
    }
    format!("{n}E")
}

/// Draws `screen` on `target`, from a cleared background.
pub fn draw<D>(screen: &Screen, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    target.clear(BinaryColor::Off)?;
    match screen {
        Screen::Alert(alert) => draw_alert(alert, target),
        Screen::Normal(link) => draw_normal(link, target),
        Screen::Stopped => draw_stopped(target),
    }
}

const ON: BinaryColor = BinaryColor::On;
const OFF: BinaryColor = BinaryColor::Off;
/// The band across the top.
const BAND_HEIGHT: u32 = 15;

fn draw_alert<D>(alert: &AlertScreen, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let (title, filled) = match alert.severity {
        Severity::Critical => ("CRITICAL", true),
        Severity::Warning => ("WARNING", false),
    };
    let mut tags = vec![];
    if alert.others > 0 {
        tags.push(format!("+{}", alert.others));
    }
    if alert.acknowledged {
        tags.push("ACK".to_owned());
    }
    band(title, &tags.join(" "), filled, target)?;
    text(&alert.signal, &FONT_9X15_BOLD, Point::new(1, 17), target)?;
    let value = match alert.value {
        Some(v) => format!("{v:.1}{}", alert.unit),
        None => "--".to_owned(),
    };
    text(&value, &FONT_10X20, Point::new(1, 32), target)?;
    right(
        &age(alert.active_for),
        &FONT_6X10,
        Point::new(127, 40),
        ON,
        target,
    )?;
    text(&alert.crossed, &FONT_6X10, Point::new(1, 54), target)?;
    Ok(())
}

fn draw_normal<D>(link: &LinkStatus, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    band("VIGIL", "", false, target)?;
    text("ALL NORMAL", &FONT_10X20, Point::new(14, 18), target)?;
    let online = match link.online {
        Some(true) => "online",
        Some(false) => "OFFLINE",
        None => "unknown",
    };
    let spool = match (link.spool_depth, link.spool_in_memory) {
        (Some(n), true) => format!("{} NO DISK", count(n)),
        (Some(0), false) => "empty".to_owned(),
        (Some(n), false) => format!("{} queued", count(n)),
        (None, _) => "unknown".to_owned(),
    };
    text(
        &format!("link   {online}"),
        &FONT_6X10,
        Point::new(1, 42),
        target,
    )?;
    text(
        &format!("spool  {spool}"),
        &FONT_6X10,
        Point::new(1, 53),
        target,
    )?;
    Ok(())
}

fn draw_stopped<D>(target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    band("VIGIL", "", true, target)?;
    text("STOPPED", &FONT_10X20, Point::new(29, 20), target)?;
    text("no alarms are shown", &FONT_6X10, Point::new(7, 44), target)?;
    text("until it restarts", &FONT_6X10, Point::new(13, 54), target)?;
    Ok(())
}

/// The top band: `title` on the left, `tags` on the right; filled (inverted) or outlined.
fn band<D>(title: &str, tags: &str, filled: bool, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let area = Rectangle::new(Point::zero(), Size::new(WIDTH, BAND_HEIGHT));
    let ink = if filled {
        area.into_styled(PrimitiveStyle::with_fill(ON))
            .draw(target)?;
        OFF
    } else {
        area.into_styled(PrimitiveStyle::with_stroke(ON, 1))
            .draw(target)?;
        ON
    };
    let style = MonoTextStyle::new(&FONT_7X13_BOLD, ink);
    Text::with_baseline(title, Point::new(4, 1), style, Baseline::Top).draw(target)?;
    right(tags, &FONT_7X13_BOLD, Point::new(124, 1), ink, target)
}

fn text<D>(s: &str, font: &MonoFont<'static>, at: Point, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let style = MonoTextStyle::new(font, ON);
    Text::with_baseline(s, at, style, Baseline::Top).draw(target)?;
    Ok(())
}

/// Text whose right edge is at `at.x`.
fn right<D>(
    s: &str,
    font: &MonoFont<'static>,
    at: Point,
    ink: BinaryColor,
    target: &mut D,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let style = MonoTextStyle::new(font, ink);
    let layout = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(s, at, style, layout).draw(target)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod frame;
#[cfg(test)]
mod tests;
