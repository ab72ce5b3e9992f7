//! Each screen rendered into a frame buffer and compared with the PNG beside this file
//! (`png/<name>.png`). `VIGIL_WRITE_PNG=1 cargo test -p vigil-agent --lib alarm::screen` writes
//! them instead, for review; a mismatch writes the actual frame next to the expected one as
//! `<name>.actual.png` (ignored by git) and fails.

use std::path::PathBuf;
use std::time::Duration;

use super::frame::Frame;
use super::*;
use crate::alarm::tests::alert;
use crate::detect::Live;
use crate::detect::alert::AlertEvent;
use crate::reading::Origin;
use crate::signals::tank_temperature;

fn png_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/alarm/screen/png")
}

/// Renders `screen` and compares it with `png/<name>.png` (or writes that, on request).
fn check(name: &str, screen: &Screen) {
    let frame = Frame::render(screen);
    let path = png_dir().join(format!("{name}.png"));
    let actual_path = png_dir().join(format!("{name}.actual.png"));
    if std::env::var_os("VIGIL_WRITE_PNG").is_some() {
        std::fs::create_dir_all(png_dir()).unwrap();
        std::fs::write(&path, frame.to_png()).unwrap();
        let _ = std::fs::remove_file(&actual_path);
        return;
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with VIGIL_WRITE_PNG=1 to write it, then look at it",
            path.display()
        )
    });
    let expected = Frame::from_png(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != frame {
        std::fs::write(&actual_path, frame.to_png()).unwrap();
        panic!(
            "screen {name} differs from {}; the actual frame is in {} (VIGIL_WRITE_PNG=1 accepts it)\n\
             expected:\n{}\nactual:\n{}",
            path.display(),
            actual_path.display(),
            expected.to_text(),
            frame.to_text()
        );
    }
}

fn alert_screen(
    severity: Severity,
    signal: &str,
    value: f64,
    crossed: &str,
    secs: u64,
) -> AlertScreen {
    AlertScreen {
        severity,
        signal: signal.into(),
        value: Some(value),
        crossed: crossed.into(),
        unit: "°C",
        active_for: Duration::from_secs(secs),
        acknowledged: false,
        others: 0,
    }
}

#[test]
fn critical_alert() {
    let mut screen = alert_screen(
        Severity::Critical,
        "COOLANT",
        112.4,
        "over 110°C limit",
        133,
    );
    screen.others = 1;
    check("critical_alert", &Screen::Alert(screen));
}

#[test]
fn warning_alert() {
    let screen = alert_screen(Severity::Warning, "TANK 2", 41.3, "rising 3.3°C/min", 45);
    check("warning_alert", &Screen::Alert(screen));
}

#[test]
fn acknowledged_alert() {
    let mut screen = alert_screen(
        Severity::Critical,
        "ENGINE OIL",
        137.9,
        "over 135°C limit",
        3 * 3600 + 7 * 60,
    );
    screen.acknowledged = true;
    screen.others = 2;
    check("acknowledged_alert", &Screen::Alert(screen));
}

#[test]
fn a_silent_sensor_shows_no_value() {
    let mut screen = alert_screen(Severity::Warning, "TANK 1", 0.0, "no signal", 8);
    screen.value = None;
    check("silent_sensor", &Screen::Alert(screen));
}

#[test]
fn all_normal_online() {
    let link = LinkStatus {
        online: Some(true),
        spool_depth: Some(0),
        ..LinkStatus::default()
    };
    check("normal_online", &Screen::Normal(link));
}

#[test]
fn all_normal_offline_with_a_backlog() {
    let link = LinkStatus {
        online: Some(false),
        spool_depth: Some(1234),
        ..LinkStatus::default()
    };
    check("normal_offline", &Screen::Normal(link));
}

#[test]
fn all_normal_with_the_spool_in_memory() {
    let link = LinkStatus {
        online: Some(true),
        spool_depth: Some(1234),
        spool_in_memory: true,
    };
    check("normal_spool_in_memory", &Screen::Normal(link));
}

#[test]
fn all_normal_link_unknown() {
    check("normal_unknown", &Screen::Normal(LinkStatus::default()));
}

#[test]
fn stopped() {
    check("stopped", &Screen::Stopped);
}

#[test]
fn every_screen_differs_and_lights_the_band() {
    let screens = [
        Screen::Alert(alert_screen(
            Severity::Critical,
            "COOLANT",
            112.4,
            "over 110°C limit",
            133,
        )),
        Screen::Alert(alert_screen(
            Severity::Warning,
            "COOLANT",
            112.4,
            "over 110°C limit",
            133,
        )),
        Screen::Normal(LinkStatus::default()),
        Screen::Stopped,
    ];
    let frames: Vec<Frame> = screens.iter().map(Frame::render).collect();
    for (i, a) in frames.iter().enumerate() {
        for b in &frames[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // The critical band is filled: its left edge is lit top to bottom; the warning's is an
    // outline, dark inside.
    assert!((0..BAND_HEIGHT).all(|y| frames[0].is_lit(1, y)));
    assert!(frames[1].is_lit(0, 0) && !frames[1].is_lit(1, 1));
}

#[test]
fn the_longest_texts_stay_on_the_screen_and_apart() {
    // The longest of each: a 13-character name, a value below zero, 21 characters of
    // words, the widest age, and both tags.
    let mut screen = alert_screen(
        Severity::Critical,
        "MMMMMMMMMMMMM",
        -273.1,
        "MMMMMMMMMMMMMMMMMMMMM",
        3599,
    );
    screen.others = 12;
    screen.acknowledged = true;
    let frame = Frame::render(&Screen::Alert(screen));
    assert_eq!(frame.outside, 0, "drawn beyond the edges:\n{frame:?}");
    // The value ends before x = 82 and the age beside it starts after x = 90.
    assert!(
        (82..90).all(|x| (32..52).all(|y| !frame.is_lit(x, y))),
        "{frame:?}"
    );
    let link = LinkStatus {
        online: Some(false),
        spool_depth: Some(u64::MAX),
        spool_in_memory: true,
    };
    for screen in [Screen::Normal(link), Screen::Stopped] {
        let frame = Frame::render(&screen);
        assert_eq!(frame.outside, 0, "drawn beyond the edges:\n{frame:?}");
    }
    // And the check itself sees text cut at the edge.
    let cut = alert_screen(Severity::Critical, "MMMMMMMMMMMMMMM", 0.0, "", 0);
    assert!(Frame::render(&Screen::Alert(cut)).outside > 0);
}

#[test]
fn short_names_are_what_a_driver_calls_the_signal() {
    let cases = [
        (COOLANT_TEMPERATURE, "COOLANT"),
        (OIL_TEMPERATURE, "ENGINE OIL"),
        (FUEL_TEMPERATURE, "FUEL"),
        (AMBIENT_TEMPERATURE, "OUTSIDE AIR"),
        ("Vehicle.Cargo.Tank.Compartment3.Temperature", "TANK 3"),
        (
            "Vehicle.Powertrain.Transmission.Temperature",
            "TRANSMISSION",
        ),
        ("Vehicle.Body.Something.VeryLongBranchName", "VERYLONGBRANC"),
    ];
    for (vss, short) in cases {
        assert_eq!(short_name(&Signal::new(vss)), short, "{vss}");
    }
}

#[test]
fn ages_read_at_a_glance() {
    let cases = [
        (0, "0s"),
        (59, "59s"),
        (60, "1m00s"),
        (725, "12m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (11_220, "3h07m"),
        (360_000, "99h+"),
    ];
    for (secs, text) in cases {
        assert_eq!(age(Duration::from_secs(secs)), text);
    }
}

#[test]
fn counts_fit_their_line() {
    let cases = [
        (0, "0"),
        (99_999, "99999"),
        (100_000, "100k"),
        (123_456_789, "123M"),
        (u64::MAX, "18446P"),
    ];
    for (n, text) in cases {
        assert_eq!(count(n), text);
    }
}

#[test]
fn the_screen_follows_the_panel() {
    let link = LinkStatus {
        online: Some(false),
        spool_depth: Some(7),
        ..LinkStatus::default()
    };
    let mut panel = Panel::default();
    let age = |_: &Alert| Duration::from_millis(61_900);
    assert_eq!(
        Screen::of(&panel, link, &Live::default(), age),
        Screen::Normal(link)
    );

    let mut tank = alert(1, Severity::Warning);
    tank.signal = tank_temperature(2);
    panel.apply(&AlertEvent::Raised(tank));
    let mut coolant = alert(2, Severity::Critical);
    coolant.signal = Signal::new(COOLANT_TEMPERATURE);
    coolant.value = 111.25;
    coolant.threshold = 110.0;
    panel.apply(&AlertEvent::Raised(coolant));
    let Screen::Alert(shown) = Screen::of(&panel, link, &Live::default(), age) else {
        panic!("an alert is active");
    };
    assert_eq!(
        shown,
        AlertScreen {
            severity: Severity::Critical,
            signal: "COOLANT".into(),
            value: Some(111.25),
            crossed: "over 110°C limit".into(),
            unit: "°C",
            active_for: Duration::from_secs(61),
            acknowledged: false,
            others: 1,
        }
    );
    panel.acknowledge();
    let Screen::Alert(shown) = Screen::of(&panel, link, &Live::default(), age) else {
        panic!("acknowledged alerts stay on the display");
    };
    assert!(shown.acknowledged);
    // A tick later the coolant reads 113: the screen shows what it reads now.
    let engine = Origin::Can {
        bus: "can0".into(),
        source_address: 0,
    };
    let live = Live::of(vec![(
        Signal::new(COOLANT_TEMPERATURE),
        engine.clone(),
        113.0,
    )]);
    let mut coolant = alert(2, Severity::Critical);
    coolant.origin = Some(engine);
    coolant.signal = Signal::new(COOLANT_TEMPERATURE);
    let mut panel = Panel::default();
    panel.apply(&AlertEvent::Raised(coolant));
    let Screen::Alert(shown) = Screen::of(&panel, link, &live, age) else {
        panic!("an alert is active");
    };
    assert_eq!(shown.value, Some(113.0));
}
