//! The monitor on a bus made for each test: a healthy background (the engine's EEC1 every
//! 10 ms, ET1 every second, its DM1 broadcast every second, the transmission's ETC1 every
//! 10 ms, and a cab controller's requests) with one attack from 20 s on. Each attack gives
//! its finding; the background alone gives none. Real logs are judged in
//! `lab/tests/real_logs.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::decode::{Decoded, Decoder};
use crate::detect::alert::Severity;
use crate::frame::{CanFrame, Input};
use crate::reading::Timestamp;

const ENGINE_NAME: u64 = 0x0000_0000_014E_B8F4;

fn frame(ms: u64, id: u32, data: &[u8]) -> CanFrame {
    let mut bytes = [0u8; 8];
    bytes[..data.len()].copy_from_slice(data);
    CanFrame {
        bus: Arc::from("can0"),
        id,
        extended: true,
        data: bytes,
        len: data.len() as u8,
        at: Timestamp {
            wall_us: ms as i64 * 1000,
            mono: Duration::from_millis(ms),
        },
    }
}

/// The healthy bus from `from` to `to` ms. The engine claims its address at the start.
fn background(from: u64, to: u64) -> Vec<CanFrame> {
    let mut frames = Vec::new();
    for ms in from..to {
        if ms == 0 {
            frames.push(frame(0, 0x18EEFF00, &ENGINE_NAME.to_le_bytes()));
        }
        if ms % 10 == 0 {
            frames.push(frame(
                ms,
                0x0CF00400,
                &[0xF0, 0x7D, 0x7D, 0x40, 0x1F, 0, 0, 0],
            ));
            frames.push(frame(
                ms,
                0x18F00503,
                &[0x7D, 0, 0, 0x7D, 0x4E, 0x20, 0x4E, 0x43],
            ));
        }
        if ms % 1000 == 5 {
            frames.push(frame(
                ms,
                0x18FEEE00,
                &[0x6F, 0x3F, 0x39, 0x2B, 0xFF, 0xFF, 0xFF, 0xFF],
            ));
            // The engine's DM1 of the real truck log: a BAM of 18 bytes in 3 packets.
            frames.push(frame(
                ms,
                0x1CECFF00,
                &[0x20, 0x12, 0x00, 0x03, 0xFF, 0xCA, 0xFE, 0x00],
            ));
        }
        for (i, packet) in [
            [0x01, 0x43, 0xFF, 0xD4, 0x03, 0x09, 0x7E, 0x90],
            [0x02, 0x0C, 0x14, 0x02, 0x61, 0x02, 0x09, 0x01],
            [0x03, 0x61, 0x02, 0x0C, 0x03, 0xFF, 0xFF, 0xFF],
        ]
        .iter()
        .enumerate()
        {
            if ms % 1000 == 65 + 60 * i as u64 {
                frames.push(frame(ms, 0x1CEBFF00, packet));
            }
        }
        if ms % 500 == 250 {
            // The cab controller asks everyone for their hours.
            frames.push(frame(ms, 0x18EAFF31, &[0xE5, 0xFE, 0x00]));
        }
    }
    frames
}

/// What the decoder and the monitor make of `frames` (in time order), as the decode
/// stage runs them: events, and the DM1 messages that were reassembled.
fn watch(mut frames: Vec<CanFrame>) -> (Vec<SecurityEvent>, usize) {
    frames.sort_by_key(|f| f.at.mono);
    let mut monitor = Monitor::new(SecurityConfig::default(), Arc::default());
    let mut decoder = Decoder::new(Arc::default());
    let (mut events, mut decoded, mut dm1) = (Vec::new(), Decoded::default(), 0);
    for frame in &frames {
        decoder.decode_full(&Input::Can(frame.clone()), &mut decoded);
        monitor.observe(frame, &mut events);
        for refusal in decoded.transport.drain(..) {
            monitor.refused(&refusal, &mut events);
        }
        dm1 += decoded.diagnostics.len();
        decoded.clear();
    }
    monitor.finish(frames.last().unwrap().at, &mut events);
    (events, dm1)
}

fn kinds(events: &[SecurityEvent]) -> Vec<(SecurityKind, Severity, Vec<u8>)> {
    events
        .iter()
        .map(|e| (e.kind, e.severity, e.sources.clone()))
        .collect()
}

const MINUTE: u64 = 60_000;

#[test]
fn a_healthy_bus_gives_nothing() {
    let (events, dm1) = watch(background(0, 2 * MINUTE));
    assert_eq!(kinds(&events), []);
    assert_eq!(dm1, 120);
}

#[test]
fn an_address_claim_that_takes_the_engines_address_is_a_hijack() {
    let mut frames = background(0, MINUTE);
    // A NAME lower than the engine's wins arbitration for address 0x00; the engine, as
    // J1939-81 tells it, answers that it cannot claim.
    frames.push(frame(20_000, 0x18EEFF00, &[0; 8]));
    frames.push(frame(20_015, 0x18EEFFFE, &ENGINE_NAME.to_le_bytes()));
    let (events, _) = watch(frames);
    assert_eq!(
        kinds(&events),
        [
            (SecurityKind::AddressHijack, Severity::Critical, vec![0x00]),
            (SecurityKind::AddressLost, Severity::Critical, vec![0x00]),
        ]
    );
    assert!(
        events[1]
            .detail
            .contains("took address 0x00, which it held"),
        "{}",
        events[1].detail
    );
}

#[test]
fn a_claim_that_loses_arbitration_is_a_conflict_and_an_answered_request_is_not() {
    let mut frames = background(0, MINUTE);
    frames.push(frame(20_000, 0x18EEFF00, &u64::MAX.to_le_bytes()));
    // The engine re-claims its address when asked: nothing to report.
    frames.push(frame(30_000, 0x18EA00F9, &[0x00, 0xEE, 0x00]));
    frames.push(frame(30_010, 0x18EEFF00, &ENGINE_NAME.to_le_bytes()));
    let (events, _) = watch(frames);
    assert_eq!(
        kinds(&events),
        [(SecurityKind::AddressConflict, Severity::Warning, vec![0x00])]
    );
}

#[test]
fn an_id_0_flood_is_a_flood_and_addressed_to_itself() {
    let mut frames = background(0, MINUTE);
    frames.extend((20_000..25_000).map(|ms| frame(ms, 0x0000_0000, &[0; 8])));
    let (events, _) = watch(frames);
    let found = kinds(&events);
    assert_eq!(
        found[0],
        (SecurityKind::SelfAddressed, Severity::Warning, vec![0x00])
    );
    // Both floods: the identifier's own rate and the bus's, each reported once a minute.
    let floods: Vec<_> = events
        .iter()
        .filter(|e| e.kind == SecurityKind::Flood)
        .collect();
    assert_eq!(floods.len(), 2, "{events:#?}");
    assert!(floods.iter().all(|e| e.can_id == Some(0)));
    assert_eq!(found.len(), 3);
}

#[test]
fn a_request_overload_is_reported_with_its_sender() {
    let mut frames = background(0, MINUTE);
    frames.extend(
        (20_000..22_000)
            .step_by(10)
            .map(|ms| frame(ms, 0x1CEA00F9, &[0xEB, 0xFE, 0x00])),
    );
    let (events, _) = watch(frames);
    assert_eq!(
        kinds(&events),
        [(SecurityKind::RequestOverload, Severity::Warning, vec![0xF9])]
    );
    assert!(
        events[0].detail.contains("0xF9 sent 100"),
        "{}",
        events[0].detail
    );
}

#[test]
fn tp_exhaustion_from_one_sender_is_abuse_and_the_engines_dm1_still_arrives() {
    let healthy = watch(background(0, MINUTE)).1;
    let mut frames = background(0, MINUTE);
    // 0xF9 opens a connection to every address, again every 500 ms, for 20 s.
    for ms in (20_000..40_000).step_by(500) {
        for da in (0..=0xFEu32).filter(|&da| da != 0xF9) {
            frames.push(frame(
                ms,
                0x1CEC00F9 | da << 8,
                &[16, 0xF9, 0x06, 0xFF, 0xFF, 0xCA, 0xFE, 0x00],
            ));
        }
    }
    let (events, dm1) = watch(frames);
    assert_eq!(dm1, healthy, "every DM1 of the engine arrived");
    let found = kinds(&events);
    assert!(found.contains(&(SecurityKind::TransportAbuse, Severity::Warning, vec![0xF9])));
    assert!(
        events.iter().any(|e| e.detail.contains("beyond its share")),
        "{events:#?}"
    );
    // The crowd of connections is also new identifiers and a busier bus; no finding has
    // the engine for its suspect.
    assert!(
        found
            .iter()
            .all(|(_, _, sources)| sources.first() != Some(&0x00)),
        "{found:?}"
    );
}

#[test]
fn a_known_group_from_a_new_sender_is_reported_once() {
    let mut frames = background(0, MINUTE);
    // Engine temperature 1 from 0x17: the engine's coolant from someone else.
    frames.extend((20_000..40_000).step_by(1000).map(|ms| {
        frame(
            ms,
            0x18FEEE17,
            &[0xB4, 0x3F, 0x39, 0x2B, 0xFF, 0xFF, 0xFF, 0xFF],
        )
    }));
    let (events, _) = watch(frames);
    assert_eq!(
        kinds(&events),
        [(SecurityKind::NewSender, Severity::Warning, vec![0x17, 0x00])]
    );
    assert_eq!(events[0].pgn, Some(65262));
    // A sender heard while the bus is learned is no finding.
    let mut early = background(0, MINUTE);
    early.extend(
        (1000..40_000)
            .step_by(1000)
            .map(|ms| frame(ms, 0x18FEEE17, &[0xB4; 8])),
    );
    assert_eq!(kinds(&watch(early).0), []);
}

#[test]
fn an_identifier_injected_beside_its_sender_drifts_and_repeats_are_held_back() {
    let mut frames = background(0, 3 * MINUTE);
    // ET1 from the engine's address, 50 times a second for two minutes.
    frames.extend(
        (20_000..140_000)
            .step_by(20)
            .map(|ms| frame(ms, 0x18FEEE00, &[0xB4; 8])),
    );
    let (events, _) = watch(frames);
    assert_eq!(
        kinds(&events),
        [
            (SecurityKind::RateDrift, Severity::Warning, vec![0x00]),
            (SecurityKind::RateDrift, Severity::Warning, vec![0x00]),
        ]
    );
    // The second report, a minute on, covers the 60 seconds since the first.
    assert_eq!(events[1].count, 60);
}

#[test]
fn fuzzed_identifiers_are_fuzzing_and_the_state_stays_bounded() {
    let mut frames = background(0, MINUTE);
    let mut x = 0x1234_5678u32;
    for ms in 20_000..40_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        frames.push(frame(ms, x & 0x1FFF_FFFF, &[0; 8]));
    }
    let (events, _) = watch(frames);
    assert!(kinds(&events).contains(&(SecurityKind::Fuzzing, Severity::Warning, vec![])));
    // However many findings the fuzz makes, a kind is reported at most 8 times a minute.
    for kind in [
        SecurityKind::SelfAddressed,
        SecurityKind::NewSender,
        SecurityKind::AddressHijack,
    ] {
        assert!(
            events.iter().filter(|e| e.kind == kind).count() <= 8,
            "{kind}"
        );
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_frames_on_any_buses_never_panic(
            frames in prop::collection::vec(
                (0u64..5000, any::<u32>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..=8), 0u8..12),
                1..300,
            )
        ) {
            let mut monitor = Monitor::new(
                SecurityConfig { learn: Duration::from_millis(500), ..SecurityConfig::default() },
                Arc::default(),
            );
            let (mut out, mut now) = (Vec::new(), 0);
            for (gap, id, extended, data, bus) in frames {
                now += gap;
                let mut f = frame(now, if extended { id & 0x1FFF_FFFF } else { id & 0x7FF }, &data);
                f.extended = extended;
                f.bus = Arc::from(format!("can{bus}"));
                monitor.observe(&f, &mut out);
            }
            monitor.finish(frame(now, 0, &[]).at, &mut out);
            for event in &out {
                prop_assert!(event.count >= 1);
                prop_assert!(!event.detail.is_empty());
            }
        }
    }
}

#[test]
fn a_burst_of_error_frames_names_the_sender_of_the_broken_frames() {
    use crate::frame::BusError;

    let mut monitor = Monitor::new(SecurityConfig::default(), Arc::default());
    let mut events = Vec::new();
    for f in background(0, 20_000) {
        monitor.observe(&f, &mut events);
    }
    // 100 broken frames of 0xF9's a second for 3 s.
    for ms in (20_000..23_000).step_by(10) {
        let at = frame(ms, 0, &[]).at;
        let id = Some((0x18EC00F9, true));
        monitor.bus_error(
            &BusError {
                bus: Arc::from("can0"),
                at,
                id,
            },
            &mut events,
        );
    }
    monitor.finish(frame(23_000, 0, &[]).at, &mut events);
    assert_eq!(
        kinds(&events),
        [(SecurityKind::BusErrors, Severity::Warning, vec![0xF9])]
    );
    assert!(
        events[0].detail.starts_with("100 frames broken off"),
        "{}",
        events[0].detail
    );
    // A few errors a second (a noisy connector) are not a finding.
    let mut quiet = Monitor::new(SecurityConfig::default(), Arc::default());
    let mut none = Vec::new();
    for ms in (20_000..23_000).step_by(100) {
        let error = BusError {
            bus: Arc::from("can0"),
            at: frame(ms, 0, &[]).at,
            id: None,
        };
        quiet.bus_error(&error, &mut none);
    }
    assert!(none.is_empty());
}
