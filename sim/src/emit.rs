//! Emission: what the truck's controllers put on the CAN bus and what the tank sensor
//! node sends down its UART, and when.
//!
//! Owns the broadcast timetable (EEC1 20 Hz, CCVS1 10 Hz, ET1, AMB and the Vehicle Position
//! 1 Hz, one tank reading per compartment per second, a node heartbeat every 10 s), the frame layouts
//! (from the shared signal table, so a simulated frame decodes back exactly) and the node's
//! sequence counter. It must never invent a byte layout of its own: CAN payloads go
//! through [`encode_value`], serial frames through [`Message::encode`].

use std::sync::Arc;

use vigil_wire::{Body, MAX_FRAME, Message};

use super::rng::{Rng, Stream};
use vigil_agent::decode::j1939::encode_value;
use vigil_agent::frame::CanFrame;
use vigil_agent::reading::Timestamp;
use vigil_agent::signals::j1939_signal;

/// Electronic Engine Controller 1 from the engine (priority 3, SA 0x00).
pub const EEC1_ID: u32 = 0x0CF0_0400;
/// Cruise Control / Vehicle Speed 1 (priority 6, SA 0x00).
pub const CCVS1_ID: u32 = 0x18FE_F100;
/// Engine Temperature 1 (priority 6, SA 0x00).
pub const ET1_ID: u32 = 0x18FE_EE00;
/// Ambient Conditions (priority 6, SA 0x00).
pub const AMB_ID: u32 = 0x18FE_F500;
/// Vehicle Position (priority 6, SA 0x00: the simulated truck's engine controller
/// relays its GPS, as many trucks' telematics gateways do).
pub const VP_ID: u32 = 0x18FE_F300;

/// The firmware version the simulated node reports in its heartbeat.
pub const NODE_FIRMWARE: u16 = 0x0100;

/// One periodic message of the truck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    Eec1,
    Ccvs1,
    Et1,
    Amb,
    /// Vehicle Position.
    Vp,
    /// One compartment's reading from the tank node (1-based).
    Tank(u8),
    Heartbeat,
}

#[derive(Clone, Debug)]
struct Entry {
    slot: Slot,
    period_us: u64,
    /// The next nominal send time on the slot's own grid.
    grid_us: u64,
    /// The next actual send time: the grid plus a little jitter.
    due_us: u64,
    jitter: bool,
}

/// The broadcast timetable: which message goes next, and when.
#[derive(Clone, Debug)]
pub(crate) struct Timetable {
    entries: Vec<Entry>,
    rng: Rng,
}

/// CAN frames leave their controller a little early or late; far less than any period,
/// so each stream stays in order.
const JITTER_US: f64 = 300.0;

impl Timetable {
    pub(crate) fn new(seed: u64, compartments: u8) -> Self {
        // Phases spread the messages over the period as separate controllers would.
        let mut entries = vec![
            entry(Slot::Eec1, 50_000, 1_000, true),
            entry(Slot::Ccvs1, 100_000, 7_000, true),
            entry(Slot::Et1, 1_000_000, 313_000, true),
            entry(Slot::Amb, 1_000_000, 571_000, true),
        ];
        // The node converts its channels in turn through the second (a MAX31865 needs
        // about 60 ms per conversion), then sends each result at once.
        let spacing = 800_000 / u64::from(compartments.max(1));
        for n in 1..=compartments {
            let phase = 100_000 + u64::from(n - 1) * spacing;
            entries.push(entry(Slot::Tank(n), 1_000_000, phase, false));
        }
        entries.push(entry(Slot::Heartbeat, 10_000_000, 950_000, false));
        // Last, and without jitter: the position takes no draw from the jitter stream and
        // wins no tie, so every other message keeps the time it had before it existed.
        entries.push(entry(Slot::Vp, 1_000_000, 890_000, false));
        let mut table = Timetable {
            entries,
            rng: Rng::new(seed, Stream::Jitter),
        };
        for i in 0..table.entries.len() {
            table.entries[i].due_us = table.jittered(i);
        }
        table
    }

    fn jittered(&mut self, i: usize) -> u64 {
        let e = &self.entries[i];
        if !e.jitter {
            return e.grid_us;
        }
        let (grid, jitter) = (e.grid_us as f64, self.rng.range(-JITTER_US, JITTER_US));
        (grid + jitter).round() as u64
    }

    /// The next message in time order (ties go to the earlier entry) and its send time
    /// in microseconds since the start.
    pub(crate) fn next(&mut self) -> (Slot, u64) {
        let i = (0..self.entries.len())
            .min_by_key(|&i| (self.entries[i].due_us, i))
            .expect("the timetable always holds the engine messages");
        let (slot, at) = (self.entries[i].slot, self.entries[i].due_us);
        self.entries[i].grid_us += self.entries[i].period_us;
        self.entries[i].due_us = self.jittered(i);
        (slot, at)
    }
}

fn entry(slot: Slot, period_us: u64, phase_us: u64, jitter: bool) -> Entry {
    Entry {
        slot,
        period_us,
        grid_us: phase_us,
        due_us: phase_us,
        jitter,
    }
}

/// Builds a frame from `(VSS name, value)` pairs; `None` sends "not available" and every
/// byte no signal uses stays `0xFF`, as J1939 asks.
pub(crate) fn can_frame(
    bus: &Arc<str>,
    id: u32,
    at: Timestamp,
    values: &[(&str, Option<f64>)],
) -> CanFrame {
    let mut data = [0xFF; 8];
    for &(vss, value) in values {
        let layout = j1939_signal(vss).expect("the simulator only sends signals of the table");
        encode_value(layout, value, &mut data);
    }
    CanFrame {
        bus: bus.clone(),
        id,
        extended: true,
        data,
        len: 8,
        at,
    }
}

/// The serial tank sensor node: its uptime and its message counter.
#[derive(Clone, Debug)]
pub(crate) struct TankNode {
    seq: u16,
    /// Node uptime at the simulation's start: the node booted with the ignition, a little
    /// before the gateway started listening.
    boot_ms: u32,
    channels: u8,
}

impl TankNode {
    pub(crate) fn new(seed: u64, channels: u8) -> Self {
        let mut rng = Rng::new(seed, Stream::Node);
        TankNode {
            seq: 0,
            boot_ms: rng.range(2_000.0, 30_000.0) as u32,
            channels,
        }
    }

    /// One encoded frame (delimiter included) for a tank reading. `milli_c = None` sends
    /// the MAX31865's open-RTD fault (high-threshold bit) in place of a value.
    pub(crate) fn tank_frame(
        &mut self,
        elapsed_us: u64,
        channel: u8,
        milli_c: Option<i32>,
    ) -> Vec<u8> {
        let body = Body::TankTemperature {
            channel,
            fault: if milli_c.is_some() { 0 } else { 0x80 },
            milli_c: milli_c.unwrap_or(0),
        };
        self.frame(elapsed_us, body)
    }

    pub(crate) fn heartbeat_frame(&mut self, elapsed_us: u64) -> Vec<u8> {
        let body = Body::Heartbeat {
            channels: self.channels,
            firmware: NODE_FIRMWARE,
        };
        self.frame(elapsed_us, body)
    }

    fn frame(&mut self, elapsed_us: u64, body: Body) -> Vec<u8> {
        let message = Message {
            seq: self.seq,
            // The node's millisecond counter wraps after 49 days, as a u32 does.
            node_ms: self.boot_ms.wrapping_add((elapsed_us / 1000) as u32),
            body,
        };
        self.seq = self.seq.wrapping_add(1);
        let mut buf = [0u8; MAX_FRAME];
        let n = message.encode(&mut buf);
        buf[..n].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_agent::decode::j1939::J1939Id;
    use vigil_agent::signals::pgn;

    #[test]
    fn identifiers_are_the_j1939_ones() {
        let id = |priority, pgn| {
            J1939Id {
                priority,
                pgn,
                source_address: 0,
                destination: None,
            }
            .to_can_id()
        };
        assert_eq!(id(3, pgn::EEC1), EEC1_ID);
        assert_eq!(id(6, pgn::CCVS1), CCVS1_ID);
        assert_eq!(id(6, pgn::ET1), ET1_ID);
        assert_eq!(id(6, pgn::AMB), AMB_ID);
        assert_eq!(id(6, pgn::VP), VP_ID);
    }

    #[test]
    fn the_timetable_keeps_every_rate_and_never_goes_back_in_time() {
        let compartments = 3;
        let mut table = Timetable::new(9, compartments);
        let mut last = 0;
        let mut counts = std::collections::HashMap::new();
        loop {
            let (slot, at) = table.next();
            if at >= 60_000_000 {
                break;
            }
            assert!(at >= last, "{slot:?} at {at} after {last}");
            last = at;
            *counts.entry(slot).or_insert(0u32) += 1;
        }
        let expect = [
            (Slot::Eec1, 1200),
            (Slot::Ccvs1, 600),
            (Slot::Et1, 60),
            (Slot::Amb, 60),
            (Slot::Vp, 60),
            (Slot::Tank(1), 60),
            (Slot::Tank(3), 60),
            (Slot::Heartbeat, 6),
        ];
        for (slot, n) in expect {
            assert_eq!(counts.get(&slot), Some(&n), "{slot:?}");
        }
        assert_eq!(counts.len(), 5 + compartments as usize + 1);
    }

    #[test]
    fn unused_bytes_are_ff_and_missing_values_say_not_available() {
        let at = Timestamp {
            wall_us: 0,
            mono: std::time::Duration::ZERO,
        };
        let coolant = vigil_agent::signals::COOLANT_TEMPERATURE;
        let f = can_frame(&Arc::from("sim0"), ET1_ID, at, &[(coolant, Some(90.0))]);
        assert_eq!(f.data, [130, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        let na = can_frame(&Arc::from("sim0"), ET1_ID, at, &[(coolant, None)]);
        assert_eq!(na.data, [0xFF; 8]);
    }
}
