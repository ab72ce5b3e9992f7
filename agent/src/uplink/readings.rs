//! The compact readings encoding, `vigil.readings/1` (documented with its JSON Schema in
//! `deploy/schemas/readings.md`).
//!
//! A batch becomes JSON in columns: one series per (signal, origin); times as runs of
//! `[offset_ms, step_ms, count]` from the message's `t0` (a signal sampled at a steady rate is
//! one run); values as integers in steps of `res`, the first absolute and the rest as
//! differences from the previous good value (slowly changing temperatures give 1-2 digits
//! each); flagged readings (not available, error, out of range) as `[index, quality]` pairs
//! with no value. A series whose signal needs a finer step than the message's `res` (the
//! position: 0.1 degree is 11 km) carries its own, `r`. A batch whose encoding is larger than the byte budget is split in time
//! order until every part fits, so a message never grows past the billing unit it targets.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::reading::{Quality, Reading};
use crate::signals::{LATITUDE, LONGITUDE};

/// The value step of a position series: J1939's own resolution for SPN 584/585, about a
/// centimetre, whatever `res` the message has.
pub const POSITION_RESOLUTION: f64 = 1e-7;

/// The step `signal`'s series is written in, and whether it differs from the message's.
fn series_resolution(signal: &str, resolution: f64) -> (f64, bool) {
    if signal == LATITUDE || signal == LONGITUDE {
        (POSITION_RESOLUTION, true)
    } else {
        (resolution, false)
    }
}

/// The format name and version every readings message carries.
pub const FORMAT: &str = "vigil.readings/1";

/// Encodes `readings` into message bodies of at most `budget` bytes each (a single reading
/// that does not fit alone still gets a message of its own).
pub fn encode(readings: &[Reading], resolution: f64, budget: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(readings, resolution, budget, &mut out);
    out
}

fn encode_into(readings: &[Reading], resolution: f64, budget: usize, out: &mut Vec<Vec<u8>>) {
    if readings.is_empty() {
        return;
    }
    let body = encode_one(readings, resolution);
    if body.len() <= budget || readings.len() == 1 {
        out.push(body.into_bytes());
        return;
    }
    // Split where the halves are likely to fit: in proportion to the overshoot, rounded so
    // each part is at most the budget in the common case (one split), halves otherwise.
    let parts = body.len().div_ceil(budget).max(2);
    let chunk = readings.len().div_ceil(parts);
    for part in readings.chunks(chunk) {
        encode_into(part, resolution, budget, out);
    }
}

struct Series<'a> {
    signal: &'a str,
    origin: String,
    /// (wall ms, reading)
    points: Vec<(i64, &'a Reading)>,
}

fn encode_one(readings: &[Reading], resolution: f64) -> String {
    let wall_ms = |r: &Reading| r.at.wall_us.div_euclid(1000);
    let t0 = readings.iter().map(wall_ms).min().unwrap_or(0);
    let mut index: HashMap<(&str, String), usize> = HashMap::new();
    let mut series: Vec<Series> = Vec::new();
    for r in readings {
        let origin = r.origin.to_string();
        let i = *index
            .entry((r.signal.as_str(), origin.clone()))
            .or_insert_with(|| {
                series.push(Series {
                    signal: r.signal.as_str(),
                    origin,
                    points: Vec::new(),
                });
                series.len() - 1
            });
        series[i].points.push((wall_ms(r), r));
    }

    let mut s = String::with_capacity(64 + readings.len() * 4);
    let _ = write!(
        s,
        "{{\"format\":\"{FORMAT}\",\"t0\":{t0},\"res\":{},\"series\":[",
        json_number(resolution)
    );
    for (n, series) in series.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"s\":{},\"o\":{},",
            json_string(series.signal),
            json_string(&series.origin)
        );
        let (resolution, own) = series_resolution(series.signal, resolution);
        if own {
            let _ = write!(s, "\"r\":{},", json_number(resolution));
        }
        s.push_str("\"t\":[");
        write_runs(&mut s, series.points.iter().map(|(t, _)| t - t0));
        s.push_str("],\"v\":[");
        let mut previous: Option<i64> = None;
        let mut first = true;
        for (_, r) in &series.points {
            let Some(value) = r.value() else { continue };
            let steps = (value / resolution).round() as i64;
            if !first {
                s.push(',');
            }
            first = false;
            let _ = write!(s, "{}", steps - previous.unwrap_or(0));
            previous = Some(steps);
        }
        s.push(']');
        let flagged: Vec<(usize, Quality)> = series
            .points
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| r.value().is_none())
            .map(|(i, (_, r))| (i, r.quality))
            .collect();
        if !flagged.is_empty() {
            s.push_str(",\"f\":[");
            for (k, (i, q)) in flagged.iter().enumerate() {
                if k > 0 {
                    s.push(',');
                }
                let _ = write!(s, "[{i},\"{q}\"]");
            }
            s.push(']');
        }
        s.push('}');
    }
    s.push_str("]}");
    s
}

/// Writes times as `[start, step, count]` runs.
fn write_runs(s: &mut String, offsets: impl Iterator<Item = i64>) {
    let mut runs: Vec<(i64, i64, u64)> = Vec::new();
    for t in offsets {
        match runs.last_mut() {
            Some((start, step, count)) if *count == 1 => {
                *step = t - *start;
                *count = 2;
            }
            Some((start, step, count)) if *start + *step * (*count as i64) == t => {
                *count += 1;
            }
            _ => runs.push((t, 0, 1)),
        }
    }
    for (n, (start, step, count)) in runs.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        let _ = write!(s, "[{start},{step},{count}]");
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a str always serialises")
}

fn json_number(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

/// The most readings one message can hold: a message is at most a few hundred KB and every
/// reading takes at least two bytes of it. A decoder never expands more (a hostile `count`).
pub const MAX_DECODED: usize = 200_000;

/// Decodes a readings message back to (signal, origin, wall ms, value or quality): what a
/// consumer does (the fleet watch, the round-trip tests). At most [`MAX_DECODED`] readings.
pub fn decode(body: &serde_json::Value) -> Result<Vec<Decoded>, String> {
    let t0 = body["t0"].as_i64().ok_or("t0")?;
    let res = body["res"].as_f64().ok_or("res")?;
    let mut out = Vec::new();
    let mut points = 0usize;
    for series in body["series"].as_array().ok_or("series")? {
        let signal = series["s"].as_str().ok_or("s")?;
        let origin = series["o"].as_str().ok_or("o")?;
        let res = match series.get("r") {
            Some(r) => r.as_f64().filter(|r| *r > 0.0).ok_or("r")?,
            None => res,
        };
        let mut times = Vec::new();
        for run in series["t"].as_array().ok_or("t")? {
            let r = run.as_array().ok_or("run")?;
            let number = |i: usize, what| r.get(i).and_then(|v| v.as_i64()).ok_or(what);
            let (start, step, count) =
                (number(0, "start")?, number(1, "step")?, number(2, "count")?);
            points = usize::try_from(count)
                .ok()
                .and_then(|n| points.checked_add(n))
                .filter(|&n| n <= MAX_DECODED)
                .ok_or("count")?;
            let base = t0.saturating_add(start);
            times.extend((0..count).map(|k| base.saturating_add(step.saturating_mul(k))));
        }
        let flags: HashMap<usize, String> = series["f"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|p| Some((p[0].as_u64()? as usize, p[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let mut values = series["v"].as_array().ok_or("v")?.iter();
        let mut steps = 0i64;
        for (i, t) in times.into_iter().enumerate() {
            let value = match flags.get(&i) {
                Some(q) => Err(q.clone()),
                None => {
                    steps += values.next().and_then(|v| v.as_i64()).ok_or("value")?;
                    Ok(steps as f64 * res)
                }
            };
            out.push(Decoded {
                signal: signal.to_owned(),
                origin: origin.to_owned(),
                wall_ms: t,
                value,
            });
        }
    }
    Ok(out)
}

/// One reading as a consumer decodes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub signal: String,
    pub origin: String,
    pub wall_ms: i64,
    /// The value, or the quality flag when there is none.
    pub value: Result<f64, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Origin, Signal, Timestamp};
    use std::sync::Arc;
    use std::time::Duration;

    fn at(ms: i64) -> Timestamp {
        Timestamp {
            wall_us: 1_700_000_000_000_000 + ms * 1000,
            mono: Duration::from_millis(ms as u64),
        }
    }

    fn can() -> Origin {
        Origin::Can {
            bus: Arc::from("can0"),
            source_address: 0,
        }
    }

    #[test]
    fn a_batch_round_trips_with_flags_and_irregular_times() {
        let coolant = Signal::new("Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature");
        let speed = Signal::new("Vehicle.Speed");
        let readings = vec![
            Reading::good(coolant.clone(), at(0), 90.0, can()),
            Reading::good(speed.clone(), at(0), 50.25, can()),
            Reading::good(coolant.clone(), at(100), 90.1, can()),
            Reading::flagged(coolant.clone(), at(200), Quality::NotAvailable, can()),
            Reading::good(coolant.clone(), at(300), 89.9, can()),
            Reading::good(coolant.clone(), at(450), 90.4, can()),
        ];
        let bodies = encode(&readings, 0.1, 5000);
        assert_eq!(bodies.len(), 1);
        let text = String::from_utf8(bodies[0].clone()).unwrap();
        assert!(text.contains("\"t\":[[0,100,4],[450,0,1]]"), "{text}");
        assert!(text.contains("\"v\":[900,1,-2,5]"), "{text}");
        assert!(text.contains("\"f\":[[2,\"not_available\"]]"), "{text}");
        let decoded = decode(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(decoded.len(), readings.len());
        let coolant_values: Vec<_> = decoded
            .iter()
            .filter(|d| d.signal == coolant.as_str())
            .map(|d| d.value.clone().map(|v| (v * 10.0).round() / 10.0))
            .collect();
        assert_eq!(
            coolant_values,
            vec![
                Ok(90.0),
                Ok(90.1),
                Err("not_available".into()),
                Ok(89.9),
                Ok(90.4)
            ]
        );
        assert_eq!(decoded[4].wall_ms, 1_700_000_000_450);
    }

    #[test]
    fn position_keeps_its_centimetres_beside_tenths_of_a_degree() {
        let (lat, lon) = (Signal::new(LATITUDE), Signal::new(LONGITUDE));
        let coolant = Signal::new("Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature");
        let gps = Origin::Serial {
            port: Arc::from("/dev/ttyACM0"),
        };
        let readings = vec![
            Reading::good(lat.clone(), at(0), 48.137_154_3, gps.clone()),
            Reading::good(lon.clone(), at(0), -11.575_382_1, gps.clone()),
            Reading::good(coolant.clone(), at(0), 90.04, can()),
            Reading::good(lat.clone(), at(1000), 48.137_354_3, gps.clone()),
            Reading::flagged(lon.clone(), at(1000), Quality::NotAvailable, gps.clone()),
        ];
        let body = encode(&readings, 0.1, 5000).remove(0);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("\"res\":0.1"), "{text}");
        assert!(text.contains("\"r\":1e-7"), "{text}");
        assert!(text.contains("\"v\":[481371543,2000]"), "{text}");
        let decoded = decode(&serde_json::from_str(&text).unwrap()).unwrap();
        let value = |signal: &Signal, ms: i64| {
            decoded
                .iter()
                .find(|d| d.signal == signal.as_str() && d.wall_ms == 1_700_000_000_000 + ms)
                .unwrap()
                .value
                .clone()
        };
        assert!((value(&lat, 0).unwrap() - 48.137_154_3).abs() < 1e-9);
        assert!((value(&lat, 1000).unwrap() - 48.137_354_3).abs() < 1e-9);
        assert!((value(&lon, 0).unwrap() + 11.575_382_1).abs() < 1e-9);
        assert_eq!(value(&lon, 1000), Err("not_available".into()));
        assert!((value(&coolant, 0).unwrap() - 90.0).abs() < 1e-9);
    }

    #[test]
    fn a_batch_too_large_for_one_message_is_split_in_time_order() {
        let signal = Signal::new("Vehicle.Speed");
        let readings: Vec<_> = (0..3000)
            .map(|i| Reading::good(signal.clone(), at(i * 100), (i % 97) as f64 * 3.3, can()))
            .collect();
        let bodies = encode(&readings, 0.1, 5000);
        assert!(bodies.len() > 1);
        let mut all = Vec::new();
        for b in &bodies {
            assert!(b.len() <= 5000, "{}", b.len());
            all.extend(decode(&serde_json::from_slice(b).unwrap()).unwrap());
        }
        assert_eq!(all.len(), 3000);
        assert!(all.windows(2).all(|w| w[0].wall_ms < w[1].wall_ms));
    }

    #[test]
    fn a_hostile_message_is_an_error_never_a_panic_or_a_huge_allocation() {
        let series = |t: &str| {
            serde_json::from_str(&format!(
                r#"{{"t0":9223372036854775000,"res":0.1,"series":[{{"s":"x","o":"y","t":{t},"v":[1]}}]}}"#
            ))
            .unwrap()
        };
        assert_eq!(
            decode(&series("[[0,0,1000000000000]]")),
            Err("count".into())
        );
        assert_eq!(decode(&series("[[0,0,-1]]")), Err("count".into()));
        assert_eq!(decode(&series("[[0,0]]")), Err("count".into()));
        assert_eq!(decode(&series("[[]]")), Err("start".into()));
        // Times that would overflow saturate.
        let far = decode(&series("[[9223372036854775000,0,1]]")).unwrap();
        assert_eq!(far[0].wall_ms, i64::MAX);
    }
}
