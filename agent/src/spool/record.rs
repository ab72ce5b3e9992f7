//! One spooled record as it lies in the store: the key, the header and the checksum.
//!
//! The spool does not look inside a payload: an alert's JSON or a batch of readings are
//! the same opaque bytes here. What this file owns is the envelope that makes every record
//! checkable on its own (DESIGN.md, spool invariant 2).
//!
//! # On-disk format, version 1
//!
//! Key: the sequence number as 8 bytes big-endian, so the store's key order is append order.
//!
//! Value (integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, `1` |
//! | 1 | 1 | kind: `1` alert, `2` readings |
//! | 2 | 1 | flags: bit 0 set on a record read back from a quarantined store; others `0` |
//! | 3 | 1 | reserved, `0` |
//! | 4 | 4 | CRC-32 (IEEE) over the key, bytes 0..4 and bytes 8.. of the value |
//! | 8 | 8 | boot id of the run that wrote the record |
//! | 16 | 8 | wall-clock time of the append, milliseconds since the Unix epoch |
//! | 24 | n | the payload |
//!
//! The checksum covers the key so a value can never be read back under another sequence
//! number without being caught.

use serde::{Deserialize, Serialize};

/// A record's sequence number: unique in one store, increasing with every append, and never
/// reused across restarts of the same store (see the lease in `store.rs`).
pub type Seq = u64;

/// The version written in byte 0 of every value.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 24;

/// Bytes of a key.
pub const KEY_LEN: usize = 8;

/// The largest payload the spool takes: AWS IoT Core's message limit (128 KB). A larger
/// payload could never be published, so it is refused at the door.
pub const MAX_PAYLOAD: usize = 128 * 1024;

/// What a record carries. Alerts go out before readings and have their own disk cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Alert,
    Readings,
}

impl RecordKind {
    pub const ALL: [RecordKind; 2] = [RecordKind::Alert, RecordKind::Readings];

    pub(crate) fn index(self) -> usize {
        match self {
            RecordKind::Alert => 0,
            RecordKind::Readings => 1,
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            RecordKind::Alert => 1,
            RecordKind::Readings => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Alert),
            2 => Some(RecordKind::Readings),
            _ => None,
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::Alert => "alert",
            RecordKind::Readings => "readings",
        })
    }
}

/// A record as the uplink receives it. `(thing, boot_id, seq)` identifies it for consumers
/// that drop duplicates (QoS 1 delivers at least once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: Seq,
    pub kind: RecordKind,
    /// The boot id of the run that appended the record (not necessarily this run's).
    pub boot_id: u64,
    /// Wall-clock milliseconds since the Unix epoch at append; for the record only.
    pub created_ms: u64,
    /// Read back from a store that was quarantined as damaged (its own checksum held); the
    /// uplink marks it so on the wire.
    pub recovered: bool,
    pub payload: Vec<u8>,
}

/// Why a stored value was not accepted as a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    BadKey,
    TooShort,
    UnknownVersion(u8),
    UnknownKind(u8),
    Checksum,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::BadKey => write!(f, "key is not an 8-byte sequence number"),
            Damage::TooShort => write!(f, "value shorter than the {HEADER_LEN}-byte header"),
            Damage::UnknownVersion(v) => write!(f, "unknown format version {v}"),
            Damage::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            Damage::Checksum => write!(f, "checksum mismatch"),
        }
    }
}

/// The bytes of a stored record: key, header and payload.
pub fn stored_len(payload_len: usize) -> u64 {
    (KEY_LEN + HEADER_LEN + payload_len) as u64
}

/// redb's page: the unit the store's file is allocated in.
const PAGE: u64 = 4096;

/// What a leaf page spends on each entry besides its key and value (offsets), at most.
const ENTRY_OVERHEAD: u64 = 16;

/// The bytes a record takes in the store's file, as the caps count them. redb keeps a
/// record in a leaf page: as many as fit share a 4 KiB page, and a larger one gets a page
/// of a power of two of 4 KiB (a 4,950-byte payload takes 8 KiB). Measured against the
/// file's allocated bytes in `tests::the_file_stays_under_its_cap_whatever_the_record_size`.
pub fn footprint(payload_len: usize) -> u64 {
    let entry = stored_len(payload_len) + ENTRY_OVERHEAD;
    if entry <= PAGE {
        PAGE / (PAGE / entry)
    } else {
        PAGE * entry.div_ceil(PAGE).next_power_of_two()
    }
}

pub fn key(seq: Seq) -> [u8; KEY_LEN] {
    seq.to_be_bytes()
}

pub fn seq_of_key(key: &[u8]) -> Result<Seq, Damage> {
    let bytes: [u8; KEY_LEN] = key.try_into().map_err(|_| Damage::BadKey)?;
    Ok(Seq::from_be_bytes(bytes))
}

fn checksum(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(&value[0..4]);
    h.update(&value[8..]);
    h.finalize()
}

/// The value stored under `key(record.seq)`.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + record.payload.len());
    v.push(FORMAT_VERSION);
    v.push(record.kind.to_byte());
    v.extend_from_slice(&[u8::from(record.recovered), 0]);
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&record.boot_id.to_le_bytes());
    v.extend_from_slice(&record.created_ms.to_le_bytes());
    v.extend_from_slice(&record.payload);
    let crc = checksum(&key(record.seq), &v);
    v[4..8].copy_from_slice(&crc.to_le_bytes());
    v
}

/// The header fields, checked, without copying the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub seq: Seq,
    pub kind: RecordKind,
    pub boot_id: u64,
    pub created_ms: u64,
    pub payload_len: usize,
}

/// Checks a stored key and value (version, kind, checksum) and returns the header.
pub fn verify(key_bytes: &[u8], value: &[u8]) -> Result<Header, Damage> {
    let seq = seq_of_key(key_bytes)?;
    if value.len() < HEADER_LEN {
        return Err(Damage::TooShort);
    }
    if value[0] != FORMAT_VERSION {
        return Err(Damage::UnknownVersion(value[0]));
    }
    let kind = RecordKind::from_byte(value[1]).ok_or(Damage::UnknownKind(value[1]))?;
    let stored = u32::from_le_bytes(value[4..8].try_into().expect("4 bytes"));
    if stored != checksum(key_bytes, value) {
        return Err(Damage::Checksum);
    }
    Ok(Header {
        seq,
        kind,
        boot_id: u64::from_le_bytes(value[8..16].try_into().expect("8 bytes")),
        created_ms: u64::from_le_bytes(value[16..24].try_into().expect("8 bytes")),
        payload_len: value.len() - HEADER_LEN,
    })
}

/// Checks and decodes a stored record.
pub fn decode(key_bytes: &[u8], value: &[u8]) -> Result<Record, Damage> {
    let h = verify(key_bytes, value)?;
    Ok(Record {
        seq: h.seq,
        kind: h.kind,
        boot_id: h.boot_id,
        created_ms: h.created_ms,
        recovered: value[2] & 1 != 0,
        payload: value[HEADER_LEN..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            seq: 0x0102_0304_0506_0708,
            kind: RecordKind::Readings,
            boot_id: 42,
            created_ms: 1_700_000_000_000,
            recovered: false,
            payload: b"batch".to_vec(),
        }
    }

    #[test]
    fn round_trips_and_is_laid_out_as_documented() {
        let r = sample();
        let v = encode(&r);
        assert_eq!(v.len(), HEADER_LEN + 5);
        assert_eq!(v[0], FORMAT_VERSION);
        assert_eq!(v[1], 2);
        assert_eq!(&v[8..16], &42u64.to_le_bytes());
        assert_eq!(&v[24..], b"batch");
        assert_eq!(decode(&key(r.seq), &v), Ok(r.clone()));
        assert_eq!(stored_len(5), 37);
        let recovered = Record {
            recovered: true,
            ..r
        };
        let v = encode(&recovered);
        assert_eq!(v[2], 1);
        assert_eq!(decode(&key(recovered.seq), &v), Ok(recovered));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let r = sample();
        let v = encode(&r);
        for byte in 0..v.len() {
            for bit in 0..8 {
                let mut bad = v.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode(&key(r.seq), &bad).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn a_value_under_another_key_is_caught() {
        let r = sample();
        let v = encode(&r);
        assert_eq!(decode(&key(r.seq + 1), &v), Err(Damage::Checksum));
        assert_eq!(decode(&[1, 2, 3], &v), Err(Damage::BadKey));
        assert_eq!(decode(&key(r.seq), &v[..10]), Err(Damage::TooShort));
    }
}
