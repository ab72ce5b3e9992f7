//! The fleet's stored readings: `vigil.readings/1` batches as the AWS template's Firehose
//! rule writes them to S3 (one JSON document a line, the truck's `thing` and the broker's
//! `received_at` added; `deploy/schemas/readings.md`), downloaded as files, gzip or not.
//!
//! Lines are gathered per vehicle (`thing`) across every file, because Firehose files
//! cut by arrival time, not by truck or drive. QoS 1 delivers a batch at least once: a
//! batch whose (`thing`, `boot`, `seq`) was already read is counted and dropped. A vehicle's
//! readings are then put in wall-time order (batches arrive out of order after an outage)
//! and given a monotonic clock from their wall time, the only clock a stored batch keeps.
//!
//! Decoded by the agent's own reference decoder ([`readings::decode`]).

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use vigil_agent::reading::{Origin, Quality, Reading, Signal, Timestamp};
use vigil_agent::uplink::readings;

use super::Skipped;

/// One reading as held until its vehicle is complete: 24 bytes, names interned.
#[derive(Clone, Copy, Debug)]
struct Held {
    wall_ms: i64,
    stream: u32,
    /// `NaN` with `flag` set for a flagged reading.
    value: f64,
    flag: Option<Quality>,
}

/// Every vehicle's readings read so far, by thing.
#[derive(Default)]
pub struct Fleet {
    vehicles: BTreeMap<String, Vec<Held>>,
    /// (signal, origin) by stream number.
    streams: Vec<(Signal, Origin)>,
    stream_index: std::collections::HashMap<(String, String), u32>,
    seen: HashSet<(String, i64, i64)>,
    /// Batches read, and duplicates dropped.
    pub batches: u64,
    pub duplicates: u64,
}

/// Why a line is not a batch (the summary's causes).
pub const NOT_JSON: &str = "not_json";
pub const NOT_READINGS: &str = "not_readings";
pub const NO_THING: &str = "no_thing";
pub const BAD_ENCODING: &str = "bad_encoding";

impl Fleet {
    /// Reads every line of one file; a line that is not a readings batch is counted in
    /// `skipped` by cause and logged, and the rest are read.
    pub fn read(
        &mut self,
        name: &str,
        input: impl BufRead,
        skipped: &mut Skipped,
    ) -> std::io::Result<u64> {
        let mut lines = 0;
        for (i, line) in input.split(b'\n').enumerate() {
            let line = line?;
            lines += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Err(cause) = self.line(&line) {
                skipped.count(name, i as u64 + 1, cause);
            }
        }
        Ok(lines)
    }

    fn line(&mut self, line: &[u8]) -> Result<(), &'static str> {
        let body: serde_json::Value = serde_json::from_slice(line).map_err(|_| NOT_JSON)?;
        if body["format"].as_str() != Some(readings::FORMAT) {
            return Err(NOT_READINGS);
        }
        let thing = body["thing"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or(NO_THING)?;
        // A batch without its identity cannot be told from a repeat; it is kept.
        if let (Some(boot), Some(seq)) = (body["boot"].as_i64(), body["seq"].as_i64())
            && !self.seen.insert((thing.to_owned(), boot, seq))
        {
            self.duplicates += 1;
            return Ok(());
        }
        let decoded = readings::decode(&body).map_err(|_| BAD_ENCODING)?;
        self.batches += 1;
        let mut held = Vec::with_capacity(decoded.len());
        for d in decoded {
            let stream = self.stream(&d.signal, &d.origin);
            let (value, flag) = match d.value {
                Ok(v) => (v, None),
                Err(q) => (f64::NAN, Some(quality(&q))),
            };
            held.push(Held {
                wall_ms: d.wall_ms,
                stream,
                value,
                flag,
            });
        }
        self.vehicles
            .entry(thing.to_owned())
            .or_default()
            .extend(held);
        Ok(())
    }

    fn stream(&mut self, signal: &str, origin: &str) -> u32 {
        let key = (signal.to_owned(), origin.to_owned());
        if let Some(&i) = self.stream_index.get(&key) {
            return i;
        }
        self.streams
            .push((Signal::new(signal), parse_origin(origin)));
        let i = (self.streams.len() - 1) as u32;
        self.stream_index.insert(key, i);
        i
    }

    /// The vehicles read, by thing.
    pub fn things(&self) -> impl Iterator<Item = &str> {
        self.vehicles.keys().map(String::as_str)
    }

    /// Every signal the batches named.
    pub fn signals(&self) -> Vec<Signal> {
        let set: HashSet<&Signal> = self.streams.iter().map(|(s, _)| s).collect();
        set.into_iter().cloned().collect()
    }

    /// Hands `thing`'s readings to `each` in wall-time order, monotonic time counted from
    /// the first.
    pub fn replay(&mut self, thing: &str, mut each: impl FnMut(&Reading)) {
        let Some(held) = self.vehicles.get_mut(thing) else {
            return;
        };
        // Stable: readings of one time keep the order they were sent in.
        held.sort_by_key(|h| h.wall_ms);
        let first = held.first().map_or(0, |h| h.wall_ms);
        for h in held.iter() {
            let (signal, origin) = &self.streams[h.stream as usize];
            let at = Timestamp {
                wall_us: h.wall_ms * 1000,
                mono: Duration::from_millis((h.wall_ms - first) as u64),
            };
            let reading = match h.flag {
                None => Reading::good(signal.clone(), at, h.value, origin.clone()),
                Some(q) => Reading::flagged(signal.clone(), at, q, origin.clone()),
            };
            each(&reading);
        }
    }
}

/// A quality flag as the encoding writes it; an unknown word is an error flag (never a number).
fn quality(word: &str) -> Quality {
    match word {
        "not_available" => Quality::NotAvailable,
        "out_of_range" => Quality::OutOfRange,
        _ => Quality::Error,
    }
}

/// An origin as the encoding writes it: `bus/saXX` for a J1939 controller (so it prints
/// back the same), anything else a serial port.
pub fn parse_origin(text: &str) -> Origin {
    if let Some((bus, sa)) = text.rsplit_once("/sa")
        && sa.len() == 2
        && let Ok(source_address) = u8::from_str_radix(sa, 16)
        && !bus.is_empty()
        && !bus.contains('/')
    {
        return Origin::Can {
            bus: Arc::from(bus),
            source_address,
        };
    }
    Origin::Serial {
        port: Arc::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_print_back_as_they_were_written() {
        for text in [
            "can0/sa00",
            "can1/saF9",
            "/dev/ttyACM0",
            "recorded-node",
            "x/sa0",
        ] {
            assert_eq!(parse_origin(text).to_string(), text);
        }
        assert!(matches!(
            parse_origin("can0/sa03"),
            Origin::Can {
                source_address: 3,
                ..
            }
        ));
    }
}
