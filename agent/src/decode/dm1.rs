//! DM1, active diagnostic trouble codes (SAE J1939-73, PGN 65226), into [`DiagnosticEvent`]s.
//!
//! A DM1 is two bytes of lamp status followed by 4 bytes per trouble code. With one code or
//! none it fits one frame (padded with 0xFF); with more it comes through the transport
//! protocol (usually a BAM). "No active code" is sent as one all-zero code, which becomes an
//! event with an empty list: the controller is saying that its faults have cleared.
//!
//! Each DM1 a controller sends (about once a second while a fault is active) is one event;
//! deciding what is new is the alert stage's job, not the decoder's.

use serde::{Deserialize, Serialize};

use crate::reading::{Origin, Timestamp};

/// The parameter group of DM1.
pub const PGN_DM1: u32 = 65226;

/// One diagnostic message from one controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticEvent {
    pub at: Timestamp,
    /// The bus and source address of the controller that reported.
    pub origin: Origin,
    /// The diagnostic message's PGN ([`PGN_DM1`]).
    pub pgn: u32,
    pub lamps: Lamps,
    /// The active trouble codes; empty when the controller reports none.
    pub dtcs: Vec<Dtc>,
}

/// The four J1939 warning lamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lamps {
    /// Malfunction indicator lamp (emissions).
    pub malfunction: Lamp,
    /// Red stop lamp: stop the vehicle.
    pub red_stop: Lamp,
    /// Amber warning lamp: a problem that need not stop the vehicle.
    pub amber_warning: Lamp,
    /// Engine protect lamp.
    pub protect: Lamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lamp {
    pub state: LampState,
    pub flash: LampFlash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LampState {
    Off,
    On,
    Error,
    NotAvailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LampFlash {
    /// About 1 Hz.
    Slow,
    /// About 2 Hz.
    Fast,
    Reserved,
    /// Steady, or the sender does not say.
    None,
}

/// A diagnostic trouble code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dtc {
    /// Suspect parameter number (19 bits): what is wrong.
    pub spn: u32,
    /// Failure mode identifier (5 bits): how it is wrong.
    pub fmi: u8,
    /// How many times the fault became active (7 bits); `None` when not available (0x7F).
    pub occurrence_count: Option<u8>,
    pub conversion: SpnConversion,
}

/// How the sender packed the SPN (the DTC's conversion-method bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpnConversion {
    /// CM = 0: J1939-73 version 4, the only layout in use today; the SPN above is exact.
    Version4,
    /// CM = 1: one of the three earlier layouts, which a receiver cannot tell apart. The
    /// SPN above is read as version 4 and may be wrong.
    Legacy,
}

/// Why a DM1 payload cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("DM1 of {0} bytes: at least 2 bytes of lamp status are needed")]
pub struct Dm1Error(pub usize);

/// Reads a DM1 payload (one frame or a reassembled message).
pub fn decode_dm1(data: &[u8]) -> Result<(Lamps, Vec<Dtc>), Dm1Error> {
    let [status, flash, codes @ ..] = data else {
        return Err(Dm1Error(data.len()));
    };
    let lamp = |shift: u8| Lamp {
        state: match (status >> shift) & 0b11 {
            0 => LampState::Off,
            1 => LampState::On,
            2 => LampState::Error,
            _ => LampState::NotAvailable,
        },
        flash: match (flash >> shift) & 0b11 {
            0 => LampFlash::Slow,
            1 => LampFlash::Fast,
            2 => LampFlash::Reserved,
            _ => LampFlash::None,
        },
    };
    let lamps = Lamps {
        malfunction: lamp(6),
        red_stop: lamp(4),
        amber_warning: lamp(2),
        protect: lamp(0),
    };
    let dtcs = codes
        .chunks_exact(4)
        // All zeros is "no active code"; all ones is frame padding.
        .filter(|c| *c != [0; 4] && *c != [0xFF; 4])
        .map(|c| Dtc {
            spn: c[0] as u32 | (c[1] as u32) << 8 | ((c[2] >> 5) as u32) << 16,
            fmi: c[2] & 0x1F,
            occurrence_count: Some(c[3] & 0x7F).filter(|&n| n != 0x7F),
            conversion: if c[3] & 0x80 == 0 {
                SpnConversion::Version4
            } else {
                SpnConversion::Legacy
            },
        })
        .collect();
    Ok((lamps, dtcs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_logs_dm1_has_four_codes_and_the_malfunction_lamp_on() {
        let data = [
            0x43, 0xFF, 0xD4, 0x03, 0x09, 0x7E, 0x90, 0x0C, 0x14, 0x02, 0x61, 0x02, 0x09, 0x01,
            0x61, 0x02, 0x0C, 0x03,
        ];
        let (lamps, dtcs) = decode_dm1(&data).unwrap();
        assert_eq!(lamps.malfunction.state, LampState::On);
        assert_eq!(lamps.red_stop.state, LampState::Off);
        assert_eq!(lamps.amber_warning.state, LampState::Off);
        assert_eq!(lamps.protect.state, LampState::NotAvailable);
        assert_eq!(lamps.malfunction.flash, LampFlash::None);
        let codes: Vec<_> = dtcs
            .iter()
            .map(|d| (d.spn, d.fmi, d.occurrence_count))
            .collect();
        assert_eq!(
            codes,
            [
                (980, 9, Some(126)),
                (3216, 20, Some(2)),
                (609, 9, Some(1)),
                (609, 12, Some(3))
            ]
        );
        assert!(dtcs.iter().all(|d| d.conversion == SpnConversion::Version4));
    }

    #[test]
    fn single_frame_forms() {
        // No active code: lamps off, the all-zero code, padding.
        let (lamps, dtcs) = decode_dm1(&[0x00, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF]).unwrap();
        assert_eq!(lamps.amber_warning.state, LampState::Off);
        assert!(dtcs.is_empty());
        // One code with the high SPN bits set, legacy conversion, count not available, and
        // the amber lamp flashing fast.
        let (lamps, dtcs) = decode_dm1(&[
            0b0000_0100,
            0b1111_0111,
            0x34,
            0x12,
            0b1110_0011,
            0xFF,
            0xFF,
            0xFF,
        ])
        .unwrap();
        assert_eq!(
            lamps.amber_warning,
            Lamp {
                state: LampState::On,
                flash: LampFlash::Fast
            }
        );
        assert_eq!(
            dtcs,
            [Dtc {
                spn: 0x71234,
                fmi: 3,
                occurrence_count: None,
                conversion: SpnConversion::Legacy
            }]
        );
        assert_eq!(decode_dm1(&[0x00]), Err(Dm1Error(1)));
    }
}
