//! J1939 framing: 29-bit identifiers to (priority, PGN, source address), and the raw
//! value conventions (valid, reserved, error, not available) of SAE J1939-71.

use crate::reading::Quality;
use crate::signals::J1939Signal;

/// A 29-bit J1939 identifier taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct J1939Id {
    pub priority: u8,
    pub pgn: u32,
    pub source_address: u8,
    /// The destination for peer-to-peer (PDU1) groups; `None` for broadcast (PDU2).
    pub destination: Option<u8>,
}

impl J1939Id {
    #[inline]
    pub fn from_can_id(id: u32) -> Self {
        let priority = ((id >> 26) & 0x7) as u8;
        let data_pages = (id >> 24) & 0x3;
        let pdu_format = (id >> 16) & 0xFF;
        let pdu_specific = ((id >> 8) & 0xFF) as u8;
        let source_address = (id & 0xFF) as u8;
        // PDU1 (PF < 240) addresses one node: the PS byte is a destination, not part of the PGN.
        let (pgn, destination) = if pdu_format < 240 {
            ((data_pages << 16) | (pdu_format << 8), Some(pdu_specific))
        } else {
            (
                (data_pages << 16) | (pdu_format << 8) | pdu_specific as u32,
                None,
            )
        };
        J1939Id {
            priority,
            pgn,
            source_address,
            destination,
        }
    }

    pub fn to_can_id(&self) -> u32 {
        let pdu_specific = match self.destination {
            Some(da) => da as u32,
            None => self.pgn & 0xFF,
        };
        ((self.priority as u32 & 0x7) << 26)
            | ((self.pgn & 0x3FF00) << 8)
            | (pdu_specific << 8)
            | self.source_address as u32
    }
}

/// Reads one signal's raw value from a frame's data. `None` when the frame is too short.
pub fn raw_value(signal: &J1939Signal, data: &[u8]) -> Option<u32> {
    let bytes = data.get(signal.start_byte..signal.start_byte + signal.len)?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | b as u32),
    )
}

/// Classifies a raw value the J1939 way and scales it when it is data.
///
/// For a 1-byte parameter `0x00..=0xFA` is data, `0xFB..=0xFD` reserved, `0xFE` error and
/// `0xFF` not available; for 2 bytes the same split applies to the high byte.
pub fn physical_value(signal: &J1939Signal, raw: u32) -> Result<f64, Quality> {
    let top = raw >> (8 * (signal.len - 1));
    match top {
        0xFF => Err(Quality::NotAvailable),
        0xFE => Err(Quality::Error),
        0xFB..=0xFD => Err(Quality::OutOfRange),
        _ => Ok(raw as f64 * signal.scale + signal.offset),
    }
}

/// Writes a physical value into a frame's data, the inverse of [`physical_value`].
/// Values outside the signal's range are clamped to it; `None` writes "not available".
pub fn encode_value(signal: &J1939Signal, value: Option<f64>, data: &mut [u8]) {
    let raw = match value {
        Some(v) => {
            let raw = ((v - signal.offset) / signal.scale).round();
            raw.clamp(0.0, signal.max_valid_raw() as f64) as u32
        }
        None => u32::MAX,
    };
    for (i, byte) in data[signal.start_byte..signal.start_byte + signal.len]
        .iter_mut()
        .enumerate()
    {
        *byte = (raw >> (8 * i)) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{COOLANT_TEMPERATURE, OIL_TEMPERATURE, j1939_signal};

    #[test]
    fn splits_ids_from_the_real_truck_log() {
        // ET1 from the engine, PDU2 broadcast.
        let et1 = J1939Id::from_can_id(0x18FEEE00);
        assert_eq!(
            (et1.priority, et1.pgn, et1.source_address),
            (6, 65262, 0x00)
        );
        assert_eq!(et1.destination, None);
        // TP.CM to global (0xFF), PDU1: the destination is not part of the PGN.
        let tp = J1939Id::from_can_id(0x1CECFF00);
        assert_eq!(
            (tp.priority, tp.pgn, tp.destination),
            (7, 0xEC00, Some(0xFF))
        );
        for id in [0x18FEEE00, 0x1CECFF00, 0x0CF00400, 0x18FEF117] {
            assert_eq!(J1939Id::from_can_id(id).to_can_id(), id);
        }
    }

    #[test]
    fn decodes_the_values_the_data_readme_lists() {
        let frame = [0x6F, 0x3F, 0x39, 0x2B, 0xFF, 0xFF, 0xFF, 0xFF];
        let coolant = j1939_signal(COOLANT_TEMPERATURE).unwrap();
        let oil = j1939_signal(OIL_TEMPERATURE).unwrap();
        assert_eq!(
            physical_value(coolant, raw_value(coolant, &frame).unwrap()),
            Ok(71.0)
        );
        let oil_c = physical_value(oil, raw_value(oil, &frame).unwrap()).unwrap();
        assert!((oil_c - 72.78125).abs() < 1e-9);
    }

    #[test]
    fn error_and_not_available_never_become_numbers() {
        let coolant = j1939_signal(COOLANT_TEMPERATURE).unwrap();
        let oil = j1939_signal(OIL_TEMPERATURE).unwrap();
        assert_eq!(physical_value(coolant, 0xFF), Err(Quality::NotAvailable));
        assert_eq!(physical_value(coolant, 0xFE), Err(Quality::Error));
        assert_eq!(physical_value(coolant, 0xFB), Err(Quality::OutOfRange));
        assert_eq!(physical_value(oil, 0xFFFF), Err(Quality::NotAvailable));
        assert_eq!(physical_value(oil, 0xFE12), Err(Quality::Error));
        assert!(physical_value(oil, 0xFAFF).is_ok());
    }

    #[test]
    fn encoding_is_the_inverse_of_decoding() {
        let oil = j1939_signal(OIL_TEMPERATURE).unwrap();
        let mut data = [0xFF; 8];
        encode_value(oil, Some(91.4), &mut data);
        let back = physical_value(oil, raw_value(oil, &data).unwrap()).unwrap();
        assert!((back - 91.4).abs() <= oil.scale / 2.0);
        encode_value(oil, None, &mut data);
        assert_eq!(
            physical_value(oil, raw_value(oil, &data).unwrap()),
            Err(Quality::NotAvailable)
        );
    }
}
