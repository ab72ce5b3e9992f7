//! Decode: turns what the sources receive (CAN frames, serial-node messages) into
//! [`Reading`]s.
//!
//! Owns the signal layouts and the bad-input counters. Never panics on any input and never
//! turns a J1939 error or not-available code into a number: such values become flagged
//! readings. Streams are keyed by (PGN, source address) through the reading's [`Origin`],
//! so one PGN from two controllers never mixes.

pub mod dbc;
pub mod dm1;
pub mod j1939;
pub mod table;
pub(crate) mod tp;

#[cfg(test)]
mod real_log;

use std::sync::Arc;

use vigil_wire::{Body, FrameError};

use crate::frame::{CanFrame, GpsFix, Input, NodeMessage};
use crate::reading::{Origin, Quality, Reading, Signal, Timestamp};
use crate::signals::{J1939_SIGNALS, J1939Signal, LATITUDE, LONGITUDE, tank_temperature};
use crate::telemetry::Metrics;
use dm1::{DiagnosticEvent, PGN_DM1};
use j1939::J1939Id;
use table::SignalTable;
use tp::Reassembler;
pub use tp::{Refusal, TransportRefusal};

/// Everything one input decodes to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub readings: Vec<Reading>,
    /// DM1 messages, one event per message a controller sent.
    pub diagnostics: Vec<DiagnosticEvent>,
    /// Transport-protocol announcements refused for capacity, for the bus's watcher.
    pub transport: Vec<TransportRefusal>,
}

impl Decoded {
    #[inline]
    pub fn clear(&mut self) {
        self.readings.clear();
        self.diagnostics.clear();
        self.transport.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty() && self.diagnostics.is_empty() && self.transport.is_empty()
    }
}

/// The counters every frame touches, summed locally and published once per decode call:
/// an atomic add per frame would cost as much as decoding it.
#[derive(Default)]
struct Tally {
    frames: u64,
    unknown: u64,
    readings: u64,
}

impl Tally {
    #[inline]
    fn publish(&self, metrics: &Metrics) {
        for (counter, n) in [
            (&metrics.can_frames_total, self.frames),
            (&metrics.can_frames_unknown_total, self.unknown),
            (&metrics.readings_total, self.readings),
        ] {
            if n > 0 {
                Metrics::add(counter, n);
            }
        }
    }
}

/// A decoder for one agent: the signal table it uses and the state sequence checks need.
pub struct Decoder {
    /// The signal layouts by PGN; names are interned once, so readings share the allocation.
    table: SignalTable,
    /// Tank compartment names, interned, indexed by compartment number.
    tanks: Vec<Signal>,
    /// The position's names, interned, for GPS fixes.
    latitude: Signal,
    longitude: Signal,
    /// Last sequence number seen per serial port, to count gaps.
    last_seq: Vec<(Arc<str>, u16)>,
    /// Multi-packet J1939 transfers in progress.
    transport: Reassembler,
    /// Where [`Decoder::decode`], which returns readings only, puts diagnostics.
    discarded: Vec<DiagnosticEvent>,
    metrics: Arc<Metrics>,
}

impl Decoder {
    /// A decoder over the built-in J1939 table.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self::with_table(J1939_SIGNALS, metrics)
    }

    /// A decoder over J1939 rows like the built-in ones.
    pub fn with_table(table: &[J1939Signal], metrics: Arc<Metrics>) -> Self {
        Self::with_signal_table(SignalTable::from_j1939(table), metrics)
    }

    /// A decoder over a table loaded from a DBC file (see [`dbc::DbcConfig::load`]).
    pub fn with_signal_table(table: SignalTable, metrics: Arc<Metrics>) -> Self {
        Decoder {
            table,
            tanks: (0..=u8::MAX).map(tank_temperature).collect(),
            latitude: Signal::new(LATITUDE),
            longitude: Signal::new(LONGITUDE),
            last_seq: Vec::new(),
            transport: Reassembler::new(metrics.clone()),
            discarded: Vec::new(),
            metrics,
        }
    }

    /// Decodes one input, appending its readings and diagnostic events to `out`.
    #[inline]
    pub fn decode_full(&mut self, input: &Input, out: &mut Decoded) {
        self.decode_batch(std::slice::from_ref(input), out);
    }

    /// Decodes several inputs (what one `mpsc::Receiver::recv_many` gives), appending to
    /// `out`. The per-frame counters are published once per call, so on a busy bus this is
    /// about twice as fast as [`Decoder::decode_full`] per input; the counters are exact
    /// either way once the call returns.
    pub fn decode_batch<'a>(
        &mut self,
        inputs: impl IntoIterator<Item = &'a Input>,
        out: &mut Decoded,
    ) {
        let mut tally = Tally::default();
        for input in inputs {
            self.decode_into(input, &mut out.readings, &mut out.diagnostics, &mut tally);
        }
        tally.publish(&self.metrics);
        self.transport.take_refusals(&mut out.transport);
    }

    /// Decodes `inputs` one at a time, as a log is read: `out` is cleared before each,
    /// `each` sees what that input gave, and transport transfers expire on each input's own
    /// clock. The per-frame counters are published once, at the end, as in
    /// [`Decoder::decode_batch`].
    pub fn decode_each(
        &mut self,
        inputs: &[Input],
        out: &mut Decoded,
        mut each: impl FnMut(&Decoded),
    ) {
        let mut tally = Tally::default();
        for input in inputs {
            out.clear();
            self.decode_into(input, &mut out.readings, &mut out.diagnostics, &mut tally);
            self.transport.take_refusals(&mut out.transport);
            if let Some(now) = input.mono() {
                self.expire(now);
            }
            each(out);
        }
        tally.publish(&self.metrics);
    }

    /// Decodes one input, appending its readings to `out`. Diagnostic events are decoded
    /// and counted but not returned: use [`Decoder::decode_full`] where they matter.
    pub fn decode(&mut self, input: &Input, out: &mut Vec<Reading>) {
        let mut discarded = std::mem::take(&mut self.discarded);
        let mut tally = Tally::default();
        self.decode_into(input, out, &mut discarded, &mut tally);
        tally.publish(&self.metrics);
        discarded.clear();
        self.discarded = discarded;
        // Refusals are counted; only a caller that watches the bus takes them.
        let mut refusals = Vec::new();
        self.transport.take_refusals(&mut refusals);
    }

    #[inline]
    fn decode_into(
        &mut self,
        input: &Input,
        readings: &mut Vec<Reading>,
        diagnostics: &mut Vec<DiagnosticEvent>,
        tally: &mut Tally,
    ) {
        let before = readings.len();
        match input {
            Input::Can(frame) => self.decode_can(frame, readings, diagnostics, tally),
            Input::Node(node) => self.decode_node(node, readings),
            Input::NodeError { port, error } => self.count_node_error(port, *error),
            Input::BusError(_) => Metrics::inc(&self.metrics.can_bus_errors_total),
            Input::Gps(gps) => self.decode_gps(gps, readings),
        }
        tally.readings += (readings.len() - before) as u64;
    }

    /// Ends transport transfers that have waited too long by `now` (monotonic). Frames do
    /// this as they arrive; a caller may also call it when a bus goes quiet.
    #[inline]
    pub fn expire(&mut self, now: std::time::Duration) {
        self.transport.expire(now);
    }

    #[inline]
    fn decode_can(
        &mut self,
        frame: &CanFrame,
        readings: &mut Vec<Reading>,
        diagnostics: &mut Vec<DiagnosticEvent>,
        tally: &mut Tally,
    ) {
        tally.frames += 1;
        if !frame.extended {
            tally.unknown += 1;
            return;
        }
        let id = J1939Id::from_can_id(frame.id);
        if id.pgn == tp::PGN_TP_CM || id.pgn == tp::PGN_TP_DT {
            if let Some(message) =
                self.transport
                    .on_frame(&frame.bus, id, frame.payload(), frame.at)
            {
                self.decode_group(
                    message.pgn,
                    &message.data,
                    message.at,
                    (&message.bus, message.source_address),
                    readings,
                    diagnostics,
                );
            }
            return;
        }
        self.transport.note_sender(&frame.bus, id.source_address);
        if !self.decode_group(
            id.pgn,
            frame.payload(),
            frame.at,
            (&frame.bus, id.source_address),
            readings,
            diagnostics,
        ) {
            tally.unknown += 1;
        }
    }

    /// Decodes one parameter group's data (a frame's or a reassembled message's) from a
    /// (bus, source address). Returns whether the decoder knows the group.
    #[inline]
    fn decode_group(
        &mut self,
        pgn: u32,
        data: &[u8],
        at: Timestamp,
        (bus, source_address): (&Arc<str>, u8),
        readings: &mut Vec<Reading>,
        diagnostics: &mut Vec<DiagnosticEvent>,
    ) -> bool {
        // Built only for groups the decoder knows: most frames on a bus are not.
        let origin = || Origin::Can {
            bus: bus.clone(),
            source_address,
        };
        if pgn == PGN_DM1 {
            match dm1::decode_dm1(data) {
                Ok((lamps, dtcs)) => {
                    Metrics::inc(&self.metrics.diagnostics_total);
                    diagnostics.push(DiagnosticEvent {
                        at,
                        origin: origin(),
                        pgn,
                        lamps,
                        dtcs,
                    });
                }
                Err(_) => Metrics::inc(&self.metrics.diagnostics_malformed_total),
            }
            return true;
        }
        let group = self.table.group(pgn);
        if group.is_empty() {
            return false;
        }
        let origin = origin();
        let mut short = false;
        for layout in group {
            let Some(raw) = layout.raw(data) else {
                short = true;
                continue;
            };
            readings.push(match layout.physical(raw) {
                Ok(v) => Reading::good(layout.signal.clone(), at, v, origin.clone()),
                Err(q) => Reading::flagged(layout.signal.clone(), at, q, origin.clone()),
            });
        }
        if short {
            Metrics::inc(&self.metrics.can_frames_bad_length_total);
        }
        true
    }

    fn decode_node(&mut self, node: &NodeMessage, out: &mut Vec<Reading>) {
        Metrics::inc(&self.metrics.serial_messages_total);
        self.check_sequence(&node.port, node.message.seq);
        let Body::TankTemperature {
            channel,
            fault,
            milli_c,
        } = node.message.body
        else {
            return;
        };
        let signal = self.tanks[channel as usize].clone();
        let origin = Origin::Serial {
            port: node.port.clone(),
        };
        out.push(if fault == 0 {
            Reading::good(signal, node.at, milli_c as f64 / 1000.0, origin)
        } else {
            Reading::flagged(signal, node.at, Quality::Error, origin)
        });
    }

    /// A GPS fix is the position's two readings, as a J1939 Vehicle Position frame is.
    fn decode_gps(&mut self, gps: &GpsFix, out: &mut Vec<Reading>) {
        let origin = Origin::Serial {
            port: gps.port.clone(),
        };
        out.push(Reading::good(
            self.latitude.clone(),
            gps.at,
            gps.fix.latitude,
            origin.clone(),
        ));
        out.push(Reading::good(
            self.longitude.clone(),
            gps.at,
            gps.fix.longitude,
            origin,
        ));
    }

    fn check_sequence(&mut self, port: &Arc<str>, seq: u16) {
        match self.last_seq.iter_mut().find(|(p, _)| p == port) {
            Some((_, last)) => {
                let gap = seq.wrapping_sub(last.wrapping_add(1));
                // A gap of more than half the sequence space is a node restart, not loss.
                if gap != 0 && gap < u16::MAX / 2 {
                    Metrics::add(&self.metrics.serial_sequence_gaps_total, gap as u64);
                }
                *last = seq;
            }
            None => self.last_seq.push((port.clone(), seq)),
        }
    }

    fn count_node_error(&self, port: &str, error: FrameError) {
        let counter = match error {
            FrameError::Checksum => &self.metrics.serial_checksum_errors_total,
            FrameError::Version(_) | FrameError::Kind(_) => {
                &self.metrics.serial_protocol_errors_total
            }
            FrameError::TooLong | FrameError::Framing | FrameError::Length => {
                &self.metrics.serial_framing_errors_total
            }
        };
        Metrics::inc(counter);
        tracing::debug!(event = "serial_frame_rejected", port, %error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{COOLANT_TEMPERATURE, FUEL_TEMPERATURE, OIL_TEMPERATURE};
    use std::time::Duration;
    use vigil_wire::Message;

    fn at() -> Timestamp {
        Timestamp {
            wall_us: 1_635_188_455_020_850,
            mono: Duration::ZERO,
        }
    }

    fn frame(id: u32, data: &[u8]) -> CanFrame {
        let mut bytes = [0u8; 8];
        bytes[..data.len()].copy_from_slice(data);
        CanFrame {
            bus: Arc::from("can1"),
            id,
            extended: true,
            data: bytes,
            len: data.len() as u8,
            at: at(),
        }
    }

    fn decode(decoder: &mut Decoder, input: Input) -> Vec<Reading> {
        let mut out = Vec::new();
        decoder.decode(&input, &mut out);
        out
    }

    #[test]
    fn et1_from_the_real_log_decodes_and_flags_what_is_missing() {
        let mut d = Decoder::new(Arc::default());
        let readings = decode(
            &mut d,
            Input::Can(frame(
                0x18FEEE00,
                &[0x6F, 0x3F, 0x39, 0x2B, 0xFF, 0xFF, 0xFF, 0xFF],
            )),
        );
        let value = |name: &str| {
            readings
                .iter()
                .find(|r| r.signal.as_str() == name)
                .unwrap()
                .value()
        };
        assert_eq!(value(COOLANT_TEMPERATURE), Some(71.0));
        assert_eq!(value(FUEL_TEMPERATURE), Some(23.0));
        assert!((value(OIL_TEMPERATURE).unwrap() - 72.78125).abs() < 1e-9);
        let na = decode(
            &mut d,
            Input::Can(frame(0x18FEEE00, &[0xFF, 0xFE, 0xFF, 0xFF])),
        );
        assert_eq!(
            na.iter().map(|r| r.quality).collect::<Vec<_>>(),
            [Quality::NotAvailable, Quality::Error, Quality::NotAvailable]
        );
    }

    #[test]
    fn the_same_pgn_from_two_controllers_is_two_streams() {
        let mut d = Decoder::new(Arc::default());
        let a = decode(&mut d, Input::Can(frame(0x18FEEE00, &[0x6F; 8])));
        let b = decode(&mut d, Input::Can(frame(0x18FEEE17, &[0x6F; 8])));
        assert_ne!(a[0].origin, b[0].origin);
    }

    #[test]
    fn short_and_unknown_frames_are_counted_not_decoded() {
        let metrics = Arc::new(Metrics::default());
        let mut d = Decoder::new(metrics.clone());
        // ET1 cut to 3 bytes: coolant and fuel still decode, oil (bytes 2-3) cannot.
        assert_eq!(
            decode(&mut d, Input::Can(frame(0x18FEEE00, &[0x6F, 0x3F, 0x39]))).len(),
            2
        );
        assert!(decode(&mut d, Input::Can(frame(0x18F00E00, &[0; 8]))).is_empty());
        let s = metrics.snapshot();
        assert_eq!(
            (s.can_frames_bad_length_total, s.can_frames_unknown_total),
            (1, 1)
        );
    }

    #[test]
    fn a_batch_counts_exactly_what_single_calls_count() {
        let inputs: Vec<Input> = [
            frame(0x18FEEE00, &[0x6F, 0x3F, 0x39, 0x2B]),
            frame(0x18F00E00, &[0; 8]),
            frame(0x0CF00400, &[0; 8]),
        ]
        .into_iter()
        .map(Input::Can)
        .collect();
        let (one, batch) = (Arc::new(Metrics::default()), Arc::new(Metrics::default()));
        let mut single = Decoder::new(one.clone());
        let mut batched = Decoder::new(batch.clone());
        let (mut a, mut b) = (Decoded::default(), Decoded::default());
        for input in &inputs {
            single.decode_full(input, &mut a);
        }
        batched.decode_batch(&inputs, &mut b);
        assert_eq!(a, b);
        assert_eq!(one.snapshot(), batch.snapshot());
        let s = batch.snapshot();
        assert_eq!(
            (
                s.can_frames_total,
                s.can_frames_unknown_total,
                s.readings_total
            ),
            (3, 1, 4)
        );
    }

    #[test]
    fn vehicle_position_decodes_to_degrees_and_not_available_stays_a_flag() {
        use crate::signals::{LATITUDE, LONGITUDE};
        let mut d =
            Decoder::with_signal_table(dbc::DbcConfig::default().load().unwrap(), Arc::default());
        // 48.1173 N, 11.5167 E: raw = (deg + 210) * 1e7, little endian.
        let raw = |deg: f64| (((deg + 210.0) * 1e7).round() as u32).to_le_bytes();
        let mut data = raw(48.1173).to_vec();
        data.extend(raw(-11.5167));
        let r = decode(&mut d, Input::Can(frame(0x18FEF300, &data)));
        let value = |name: &str| {
            r.iter()
                .find(|r| r.signal.as_str() == name)
                .unwrap()
                .value()
        };
        assert!((value(LATITUDE).unwrap() - 48.1173).abs() < 1e-7);
        assert!((value(LONGITUDE).unwrap() + 11.5167).abs() < 1e-7);
        // A receiver without a fix sends "not available": flags, never -210 + something.
        let mut na = vec![0xFF; 4];
        na.extend([0xFF, 0xFF, 0xFF, 0xFE]);
        let r = decode(&mut d, Input::Can(frame(0x18FEF300, &na)));
        assert_eq!(
            r.iter().map(|r| (r.quality, r.value())).collect::<Vec<_>>(),
            [(Quality::NotAvailable, None), (Quality::Error, None)]
        );
    }

    #[test]
    fn a_gps_fix_is_the_same_two_readings_from_its_port() {
        use crate::frame::nmea::Fix;
        let mut d = Decoder::new(Arc::default());
        let port: Arc<str> = Arc::from("/dev/ttyACM0");
        let r = decode(
            &mut d,
            Input::Gps(GpsFix {
                port: port.clone(),
                fix: Fix {
                    latitude: -33.5,
                    longitude: 151.25,
                },
                at: at(),
            }),
        );
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.signal.as_str(), r.value(), &r.origin))
            .collect();
        let origin = Origin::Serial { port };
        assert_eq!(
            got,
            [
                (LATITUDE, Some(-33.5), &origin),
                (LONGITUDE, Some(151.25), &origin)
            ]
        );
    }

    #[test]
    fn node_messages_become_tank_readings_and_gaps_are_counted() {
        let metrics = Arc::new(Metrics::default());
        let mut d = Decoder::new(metrics.clone());
        let port: Arc<str> = Arc::from("/dev/ttyUSB0");
        let msg = |seq, fault| {
            Input::Node(NodeMessage {
                port: port.clone(),
                message: Message {
                    seq,
                    node_ms: 10,
                    body: Body::TankTemperature {
                        channel: 3,
                        fault,
                        milli_c: 18_250,
                    },
                },
                at: at(),
            })
        };
        let r = decode(&mut d, msg(u16::MAX, 0));
        assert_eq!(r[0].signal, tank_temperature(3));
        assert_eq!(r[0].value(), Some(18.25));
        assert_eq!(decode(&mut d, msg(0, 0x40))[0].quality, Quality::Error);
        decode(&mut d, msg(4, 0));
        assert_eq!(metrics.snapshot().serial_sequence_gaps_total, 3);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::reading::Quality;

    fn frame() -> impl Strategy<Value = CanFrame> {
        // Ids of the groups the DBC knows (any source address), DM1, TP, and anything.
        let id = prop_oneof![
            (
                prop::sample::select(vec![
                    0x18FEEE00u32,
                    0x18FEF500,
                    0x18FEF300,
                    0x0CFEF100,
                    0x0CF00400,
                    0x18FECA00,
                    0x1CECFF00,
                    0x1CEBFF00
                ]),
                any::<u8>()
            )
                .prop_map(|(id, sa)| id | sa as u32),
            0u32..=0x1FFF_FFFF,
        ];
        (id, any::<bool>(), any::<[u8; 8]>(), 0u8..=8).prop_map(|(id, extended, data, len)| {
            CanFrame {
                bus: Arc::from("can0"),
                id: if extended { id } else { id & 0x7FF },
                extended,
                data,
                len,
                at: Timestamp {
                    wall_us: 0,
                    mono: std::time::Duration::ZERO,
                },
            }
        })
    }

    proptest! {
        #[test]
        fn the_dbc_decoder_never_panics_and_never_scales_error_or_not_available(frames in prop::collection::vec(frame(), 1..50)) {
            let table = dbc::table_from_dbc(dbc::BUILTIN_DBC, "built-in", &dbc::SignalNames::All(&Default::default())).unwrap();
            let mut decoder = Decoder::with_signal_table(table.clone(), Arc::default());
            let mut out = Decoded::default();
            for frame in frames {
                out.clear();
                decoder.decode_full(&Input::Can(frame.clone()), &mut out);
                for reading in &out.readings {
                    let layout = table.layouts().iter().find(|l| l.signal == reading.signal).unwrap();
                    let raw = layout.raw(frame.payload()).unwrap();
                    let top = raw >> (layout.bits - 8);
                    match reading.value() {
                        Some(v) => {
                            prop_assert!(top <= 0xFA, "raw {raw:#X} became {v}");
                            let (min, max) = layout.range.unwrap();
                            prop_assert!((min..=max).contains(&v));
                            prop_assert_eq!(reading.quality, Quality::Good);
                        }
                        None => prop_assert!(top > 0xFA, "raw {raw:#X} was flagged {:?}", reading.quality),
                    }
                }
            }
        }
    }
}
