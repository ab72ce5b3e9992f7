//! The decoder's signal table: where each signal sits in its parameter group and how its raw
//! bits scale, whichever source the table came from (the built-in J1939 rows or a DBC file).
//!
//! Layouts are little endian (J1939 is) and bit-addressed, so a DBC signal need not start
//! on a byte. Lookup is by PGN only: the source address is part of the reading's origin, not
//! of the layout, so one DBC row decodes the same group from every controller.
//!
//! # J1939 value ranges
//!
//! An unsigned parameter's raw value is classified before it is scaled (SAE J1939-71):
//! for 8 bits or more, the top byte `0xFF` means not available, `0xFE` error and
//! `0xFB..=0xFD` reserved; for a field of 2 to 7 bits, all ones means not available and all
//! ones but the lowest bit means error. A value outside the layout's `[min, max]` (when
//! the DBC gives one) is out of range. None of these ever becomes a number.

use std::sync::Arc;

use crate::reading::{Quality, Signal};
use crate::signals::J1939Signal;

/// One signal's place in a parameter group.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The name readings carry (a VSS name when the table is mapped).
    pub signal: Signal,
    pub pgn: u32,
    /// The J1939 suspect parameter number, when the source names it.
    pub spn: Option<u32>,
    /// Least significant bit, counted from bit 0 of byte 0 (DBC `@1` convention).
    pub start_bit: u16,
    /// Length in bits, 1 to 64.
    pub bits: u8,
    /// Two's complement (DBC `-`); J1939 parameters are unsigned and get the range checks.
    pub signed: bool,
    pub scale: f64,
    pub offset: f64,
    /// The physical range; values outside it are [`Quality::OutOfRange`].
    pub range: Option<(f64, f64)>,
    pub unit: Arc<str>,
}

impl Layout {
    /// The layout of a built-in table row.
    pub fn from_j1939(row: &J1939Signal) -> Self {
        Layout {
            signal: Signal::new(row.vss),
            pgn: row.pgn,
            spn: Some(row.spn),
            start_bit: (row.start_byte * 8) as u16,
            bits: (row.len * 8) as u8,
            signed: false,
            scale: row.scale,
            offset: row.offset,
            range: Some(row.range()),
            unit: Arc::from(row.unit),
        }
    }

    /// The raw bits of this signal in `data`, or `None` when `data` is too short.
    #[inline]
    pub fn raw(&self, data: &[u8]) -> Option<u64> {
        let first = self.start_bit as usize / 8;
        let last = (self.start_bit as usize + self.bits as usize - 1) / 8;
        let bytes = data.get(first..=last)?;
        // At most 9 bytes for a 64-bit field that does not start on a byte: gather in u128.
        let word = bytes
            .iter()
            .rev()
            .fold(0u128, |acc, &b| (acc << 8) | b as u128);
        let shifted = word >> (self.start_bit % 8);
        let mask = if self.bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        };
        Some(shifted as u64 & mask)
    }

    /// Classifies a raw value the J1939 way and scales it when it is data.
    #[inline]
    pub fn physical(&self, raw: u64) -> Result<f64, Quality> {
        let value = if self.signed {
            let unused = 64 - self.bits as u32;
            (((raw << unused) as i64) >> unused) as f64
        } else {
            if let Some(flag) = self.j1939_flag(raw) {
                return Err(flag);
            }
            raw as f64
        };
        let physical = value * self.scale + self.offset;
        match self.range {
            Some((min, max)) if !(min..=max).contains(&physical) => Err(Quality::OutOfRange),
            _ => Ok(physical),
        }
    }

    fn j1939_flag(&self, raw: u64) -> Option<Quality> {
        match self.bits {
            0 | 1 => None,
            2..=7 => {
                let all = (1u64 << self.bits) - 1;
                if raw == all {
                    Some(Quality::NotAvailable)
                } else if raw == all - 1 {
                    Some(Quality::Error)
                } else {
                    None
                }
            }
            bits => match raw >> (bits - 8) {
                0xFF => Some(Quality::NotAvailable),
                0xFE => Some(Quality::Error),
                0xFB..=0xFD => Some(Quality::OutOfRange),
                _ => None,
            },
        }
    }
}

/// Every layout the decoder knows, grouped by PGN for lookup.
#[derive(Clone, Debug, Default)]
pub struct SignalTable {
    /// Sorted by PGN (stable, so a group's signals keep their source order).
    layouts: Vec<Layout>,
    /// `(pgn, first, end)` into `layouts`, sorted by PGN.
    groups: Vec<(u32, u32, u32)>,
}

impl SignalTable {
    pub fn new(mut layouts: Vec<Layout>) -> Self {
        layouts.sort_by_key(|l| l.pgn);
        let mut groups: Vec<(u32, u32, u32)> = Vec::new();
        for (i, layout) in layouts.iter().enumerate() {
            match groups.last_mut() {
                Some((pgn, _, end)) if *pgn == layout.pgn => *end = i as u32 + 1,
                _ => groups.push((layout.pgn, i as u32, i as u32 + 1)),
            }
        }
        SignalTable { layouts, groups }
    }

    /// The built-in J1939 rows of [`crate::signals::J1939_SIGNALS`].
    pub fn from_j1939(rows: &[J1939Signal]) -> Self {
        Self::new(rows.iter().map(Layout::from_j1939).collect())
    }

    /// The signals of one parameter group; empty when the table does not know it.
    #[inline]
    pub fn group(&self, pgn: u32) -> &[Layout] {
        match self.groups.binary_search_by_key(&pgn, |g| g.0) {
            Ok(i) => {
                let (_, first, end) = self.groups[i];
                &self.layouts[first as usize..end as usize]
            }
            Err(_) => &[],
        }
    }

    pub fn layouts(&self) -> &[Layout] {
        &self.layouts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::j1939;
    use crate::signals::J1939_SIGNALS;

    #[test]
    fn built_in_rows_decode_as_the_j1939_functions_do() {
        let frame = [0x6F, 0x3F, 0x39, 0x2B, 0xC9, 0x23, 0xFE, 0xFF];
        for row in J1939_SIGNALS {
            let layout = Layout::from_j1939(row);
            let raw = j1939::raw_value(row, &frame).unwrap();
            assert_eq!(layout.raw(&frame), Some(raw as u64), "{}", row.vss);
            assert_eq!(
                layout.physical(raw as u64),
                j1939::physical_value(row, raw),
                "{}",
                row.vss
            );
        }
    }

    fn bits(start_bit: u16, bits: u8, signed: bool) -> Layout {
        Layout {
            signal: Signal::new("x"),
            pgn: 1,
            spn: None,
            start_bit,
            bits,
            signed,
            scale: 1.0,
            offset: 0.0,
            range: None,
            unit: Arc::from(""),
        }
    }

    #[test]
    fn fields_off_byte_boundaries_and_small_fields_follow_j1939() {
        // Bits 4-5 of byte 0 (a J1939 2-bit status): 0b10 is error, 0b11 not available.
        let two = bits(4, 2, false);
        assert_eq!(two.raw(&[0b0001_0000]), Some(1));
        assert_eq!(two.physical(0b10), Err(Quality::Error));
        assert_eq!(two.physical(0b11), Err(Quality::NotAvailable));
        // 12 bits from bit 4: spans two bytes.
        assert_eq!(bits(4, 12, false).raw(&[0xA0, 0x5B]), Some(0x5BA));
        assert_eq!(bits(60, 8, false).raw(&[0xFF; 8]), None);
        assert_eq!(
            bits(0, 64, false).raw(&[0x01; 8]),
            Some(0x0101_0101_0101_0101)
        );
        // Signed fields are not J1939 parameters: 0xFF is -1, not "not available".
        assert_eq!(bits(0, 8, true).physical(0xFF), Ok(-1.0));
    }

    #[test]
    fn a_dbc_range_flags_values_outside_it() {
        let mut l = bits(0, 8, false);
        l.range = Some((0.0, 100.0));
        assert_eq!(l.physical(100), Ok(100.0));
        assert_eq!(l.physical(101), Err(Quality::OutOfRange));
    }

    #[test]
    fn groups_are_found_by_pgn() {
        let table = SignalTable::from_j1939(J1939_SIGNALS);
        assert_eq!(table.group(65262).len(), 3);
        assert_eq!(table.group(61444).len(), 1);
        assert!(table.group(65226).is_empty());
    }
}
