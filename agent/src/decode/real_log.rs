//! Tests against the real truck log in `tests/data/` (CSS Electronics, MIT; see the licence
//! file next to it). The expectations are the ones its README lists, checked by hand.

use std::sync::Arc;

use super::dbc::DbcConfig;
use super::{Decoded, Decoder, dm1};
use crate::frame::candump;
use crate::frame::{CanFrame, Input};
use crate::reading::{Quality, Reading};
use crate::signals::{self, pgn};
use crate::telemetry::Metrics;

pub(crate) const LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/j1939-truck-css.candump.log"
);

/// Every frame of the real log, in order.
pub(crate) fn frames() -> Vec<CanFrame> {
    let text = std::fs::read_to_string(LOG).expect("tests/data/j1939-truck-css.candump.log");
    let mut first = None;
    text.lines()
        .map(|line| {
            let frame = candump::parse_line(line, first).expect(line);
            first.get_or_insert(frame.at.wall_us);
            frame
        })
        .collect()
}

fn pgn_of(frame: &CanFrame) -> u32 {
    super::j1939::J1939Id::from_can_id(frame.id).pgn
}

fn decode_all(decoder: &mut Decoder, frames: &[CanFrame]) -> Decoded {
    let mut out = Decoded::default();
    for frame in frames {
        decoder.decode_full(&Input::Can(frame.clone()), &mut out);
    }
    out
}

fn values<'a>(readings: &'a [Reading], name: &'a str) -> impl Iterator<Item = &'a Reading> + 'a {
    readings.iter().filter(move |r| r.signal.as_str() == name)
}

#[test]
fn the_dbc_decoder_gives_exactly_the_built_in_results_on_every_frame() {
    let frames: Vec<_> = frames()
        .into_iter()
        .filter(|f| f.extended && [pgn::ET1, pgn::AMB, pgn::CCVS1, pgn::EEC1].contains(&pgn_of(f)))
        .collect();
    // 127 ET1 + 127 AMB + 1272 CCVS1 + 12719 EEC1.
    assert_eq!(frames.len(), 127 + 127 + 1272 + 12719);
    let mut by_dbc =
        Decoder::with_signal_table(DbcConfig::default().load().unwrap(), Arc::default());
    let mut built_in = Decoder::new(Arc::default());
    for frame in &frames {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        by_dbc.decode(&Input::Can(frame.clone()), &mut a);
        built_in.decode(&Input::Can(frame.clone()), &mut b);
        a.sort_by(|x, y| x.signal.cmp(&y.signal));
        b.sort_by(|x, y| x.signal.cmp(&y.signal));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{}", candump::format_line(frame));
    }
}

#[test]
fn engine_temperatures_match_the_data_readme() {
    let mut decoder =
        Decoder::with_signal_table(DbcConfig::default().load().unwrap(), Arc::default());
    let out = decode_all(&mut decoder, &frames());
    let coolant: Vec<_> = values(&out.readings, signals::COOLANT_TEMPERATURE).collect();
    assert_eq!(coolant.len(), 127);
    assert!(
        coolant
            .iter()
            .all(|r| matches!(r.value(), Some(v) if (71.0..=72.0).contains(&v)))
    );
    // About 1 Hz: every gap between consecutive ET1 frames is within 0.9-1.1 s.
    for pair in coolant.windows(2) {
        let gap = pair[1].at.mono - pair[0].at.mono;
        assert!((0.9..=1.1).contains(&gap.as_secs_f64()), "{gap:?}");
    }
    // Fuel: 23 degC (111 frames), dipping to 22 degC (16 frames, 0x3E).
    let fuel: Vec<_> = values(&out.readings, signals::FUEL_TEMPERATURE)
        .map(|r| r.value())
        .collect();
    assert_eq!(fuel[0], Some(23.0));
    assert_eq!(fuel.iter().filter(|v| **v == Some(23.0)).count(), 111);
    assert_eq!(fuel.iter().filter(|v| **v == Some(22.0)).count(), 16);
    // Oil: 72.78125 degC (0x2B39) at the start, warming by about a degree over two minutes.
    let oil: Vec<_> = values(&out.readings, signals::OIL_TEMPERATURE).collect();
    assert_eq!(oil.len(), 127);
    assert_eq!(oil[0].value(), Some(72.78125));
    assert!(
        oil.iter()
            .all(|r| matches!(r.value(), Some(v) if (72.5..74.0).contains(&v)))
    );
}

#[test]
fn not_available_bytes_are_flagged_and_carry_no_number() {
    // The DBC's unmapped neighbours in ET1 and AMB are not available on this truck: the
    // log sends 0xFF there in every frame. Decoded with every DBC signal (as `vigil decode`
    // does), each of them is a flagged reading, never 1734.96875 degC or 215 degC.
    let names = Default::default();
    let table = super::dbc::table_from_dbc(
        super::dbc::BUILTIN_DBC,
        "built-in",
        &super::dbc::SignalNames::All(&names),
    )
    .unwrap();
    let mut decoder = Decoder::with_signal_table(table, Arc::default());
    let out = decode_all(&mut decoder, &frames());
    for name in ["EngTurboOilTemp", "EngIntercoolerTemp", "CabInteriorTemp"] {
        let readings: Vec<_> = values(&out.readings, name).collect();
        assert_eq!(readings.len(), 127, "{name}");
        for r in readings {
            assert_eq!(
                (r.quality, r.value()),
                (Quality::NotAvailable, None),
                "{name}"
            );
        }
    }
    // And the data next to them still decodes: the real ambient temperature.
    let ambient = values(&out.readings, "AmbientAirTemp").next().unwrap();
    assert_eq!(ambient.value(), Some(0x23C9 as f64 * 0.03125 - 273.0));
}

#[test]
fn its_bam_transfers_reassemble_into_dm1_events() {
    let metrics = Arc::new(Metrics::default());
    let mut decoder = Decoder::new(metrics.clone());
    let frames = frames();
    let dm1_announcements = frames
        .iter()
        .filter(|f| {
            f.id == 0x1CECFF00 && f.payload() == [0x20, 0x12, 0x00, 0x03, 0xFF, 0xCA, 0xFE, 0x00]
        })
        .count();
    let out = decode_all(&mut decoder, &frames);
    // Every DM1 announced was reassembled and decoded; none was lost to a timeout.
    assert_eq!(out.diagnostics.len(), dm1_announcements);
    assert_eq!(dm1_announcements, 127);
    let s = metrics.snapshot();
    assert_eq!(
        (s.diagnostics_total, s.diagnostics_malformed_total),
        (127, 0)
    );
    // The other BAMs carry PGN 65251 (Engine Configuration 1), reassembled but not decoded.
    assert_eq!(
        (s.tp_messages_total, s.tp_timeouts_total, s.tp_errors_total),
        (152, 0, 0)
    );
    for event in &out.diagnostics {
        assert_eq!(event.pgn, dm1::PGN_DM1);
        assert_eq!(event.origin.to_string(), "can1/sa00");
        assert_eq!(event.lamps.malfunction.state, dm1::LampState::On);
        let codes: Vec<_> = event.dtcs.iter().map(|d| (d.spn, d.fmi)).collect();
        assert_eq!(codes, [(980, 9), (3216, 20), (609, 9), (609, 12)]);
    }
    let counts: Vec<_> = out.diagnostics[0]
        .dtcs
        .iter()
        .map(|d| d.occurrence_count)
        .collect();
    assert_eq!(counts, [Some(126), Some(2), Some(1), Some(3)]);
}
