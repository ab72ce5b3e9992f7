//! NMEA 0183 from a GPS receiver: bytes split into sentences ([`Lines`]), and a sentence
//! read for the position it carries ([`parse_sentence`]). Pure: no I/O, no clock.
//!
//! Only the two sentences every receiver sends are read, from any talker (`GP` GPS, `GN`
//! multi-constellation, `GL`, `GA`, `GB`): `RMC` (status `A` is a fix, `V` is none) and
//! `GGA` (fix quality 0 is none). A sentence without a fix gives no position, never a
//! made-up one. Every sentence's checksum (`*hh`, the XOR of the bytes between `$` and
//! `*`) is required and verified: a serial line that drops or flips a bit must not move the
//! truck. NMEA 0183 caps a sentence at 82 characters with `$` and CR LF; a longer line is
//! refused whole (a receiver never sends one: it is noise, or two sentences run together).

use std::fmt;

/// The longest sentence NMEA 0183 allows, `$` to the checksum, without CR LF (82 with them).
pub const MAX_SENTENCE: usize = 80;

/// A position fix, WGS 84 degrees, north and east positive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fix {
    pub latitude: f64,
    pub longitude: f64,
}

/// What a well-formed sentence says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sentence {
    /// An `RMC` or `GGA` with a fix.
    Fix(Fix),
    /// An `RMC` or `GGA` that says the receiver has no fix (yet).
    NoFix,
    /// Any other sentence (satellites in view, course, ...): checked, not read.
    Other,
}

/// Why a line is not a sentence that can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NmeaError {
    /// Longer than [`MAX_SENTENCE`].
    TooLong,
    /// Does not start with `$`, is not ASCII, or has no `*hh` checksum.
    Framing,
    /// The checksum does not match the sentence.
    Checksum,
    /// A position sentence whose fields cannot be read (a latitude of 95 degrees, a
    /// hemisphere `X`, a field missing).
    Field(&'static str),
}

impl fmt::Display for NmeaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NmeaError::TooLong => write!(f, "longer than {MAX_SENTENCE} characters"),
            NmeaError::Framing => f.write_str("not an NMEA sentence ($...*hh)"),
            NmeaError::Checksum => f.write_str("checksum mismatch"),
            NmeaError::Field(field) => write!(f, "unreadable {field}"),
        }
    }
}

/// Reads one line (without its CR LF) as an NMEA sentence.
pub fn parse_sentence(line: &[u8]) -> Result<Sentence, NmeaError> {
    if line.len() > MAX_SENTENCE {
        return Err(NmeaError::TooLong);
    }
    let line = std::str::from_utf8(line).map_err(|_| NmeaError::Framing)?;
    let body = line.strip_prefix('$').ok_or(NmeaError::Framing)?;
    let (body, checksum) = body.rsplit_once('*').ok_or(NmeaError::Framing)?;
    if checksum.len() != 2 || !body.is_ascii() {
        return Err(NmeaError::Framing);
    }
    let sent = u8::from_str_radix(checksum, 16).map_err(|_| NmeaError::Framing)?;
    if body.bytes().fold(0u8, |x, b| x ^ b) != sent {
        return Err(NmeaError::Checksum);
    }
    let mut fields = body.split(',');
    let address = fields.next().unwrap_or_default();
    // Talker (2 letters) and sentence type (3): `GPRMC`, `GNGGA`.
    let kind = match address.len() {
        5 => &address[2..],
        _ => return Ok(Sentence::Other),
    };
    let fields: Vec<&str> = fields.collect();
    match kind {
        // RMC: time, status, lat, N/S, lon, E/W, ...
        "RMC" => {
            if field(&fields, 1)? != "A" {
                return Ok(Sentence::NoFix);
            }
            position(&fields, 2).map(Sentence::Fix)
        }
        // GGA: time, lat, N/S, lon, E/W, quality, ...
        "GGA" => {
            let quality = field(&fields, 5)?;
            if quality.is_empty() || quality == "0" {
                return Ok(Sentence::NoFix);
            }
            position(&fields, 1).map(Sentence::Fix)
        }
        _ => Ok(Sentence::Other),
    }
}

fn field<'a>(fields: &[&'a str], i: usize) -> Result<&'a str, NmeaError> {
    fields
        .get(i)
        .copied()
        .ok_or(NmeaError::Field("field count"))
}

/// Latitude `ddmm.mmmm`, hemisphere, longitude `dddmm.mmmm`, hemisphere, from field `at`.
fn position(fields: &[&str], at: usize) -> Result<Fix, NmeaError> {
    let latitude = angle(field(fields, at)?, 2, 90.0).ok_or(NmeaError::Field("latitude"))?;
    let latitude = match field(fields, at + 1)? {
        "N" => latitude,
        "S" => -latitude,
        _ => return Err(NmeaError::Field("latitude hemisphere")),
    };
    let longitude = angle(field(fields, at + 2)?, 3, 180.0).ok_or(NmeaError::Field("longitude"))?;
    let longitude = match field(fields, at + 3)? {
        "E" => longitude,
        "W" => -longitude,
        _ => return Err(NmeaError::Field("longitude hemisphere")),
    };
    Ok(Fix {
        latitude,
        longitude,
    })
}

/// Degrees from `d..dmm.mmmm` with `degree_digits` digits of degrees, at most `max`.
fn angle(text: &str, degree_digits: usize, max: f64) -> Option<f64> {
    let (whole, _) = text.split_once('.').unwrap_or((text, ""));
    if whole.len() != degree_digits + 2 || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let degrees: f64 = text[..degree_digits].parse().ok()?;
    let minutes: f64 = text[degree_digits..].parse().ok()?;
    let value = degrees + minutes / 60.0;
    (minutes < 60.0 && value <= max).then_some(value)
}

/// Splits a byte stream into lines at LF (a CR before it is dropped), bounding memory: a
/// line longer than [`MAX_SENTENCE`] is cut off, reported once as [`NmeaError::TooLong`],
/// and the rest of it up to the next LF is skipped.
#[derive(Debug, Default)]
pub struct Lines {
    line: Vec<u8>,
    /// The line was handed out: the next byte starts a new one.
    complete: bool,
    /// Skipping the rest of a line that was too long.
    overflowed: bool,
}

impl Lines {
    pub fn new() -> Self {
        Lines::default()
    }

    /// Takes one byte; returns a complete, non-empty line, or the error of one that was
    /// too long (once, when it passes the bound).
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], NmeaError>> {
        if std::mem::take(&mut self.complete) {
            self.line.clear();
        }
        if byte == b'\n' {
            if std::mem::take(&mut self.overflowed) {
                return None;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                return None;
            }
            self.complete = true;
            return Some(Ok(&self.line));
        }
        if self.overflowed {
            return None;
        }
        // Room for the CR after the longest sentence.
        if self.line.len() > MAX_SENTENCE {
            self.overflowed = true;
            self.line.clear();
            return Some(Err(NmeaError::TooLong));
        }
        self.line.push(byte);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sentence with its checksum computed: `sentence("GPRMC,...")`.
    fn sentence(body: &str) -> String {
        let sum = body.bytes().fold(0u8, |x, b| x ^ b);
        format!("${body}*{sum:02X}")
    }

    fn fix(latitude: f64, longitude: f64) -> Result<Sentence, NmeaError> {
        Ok(Sentence::Fix(Fix {
            latitude,
            longitude,
        }))
    }

    fn check(line: &str, expect: Result<Sentence, NmeaError>) {
        let got = parse_sentence(line.as_bytes());
        match (&got, &expect) {
            (Ok(Sentence::Fix(a)), Ok(Sentence::Fix(b))) => assert!(
                (a.latitude - b.latitude).abs() < 1e-9 && (a.longitude - b.longitude).abs() < 1e-9,
                "{line}: {a:?}, expected {b:?}"
            ),
            _ => assert_eq!(got, expect, "{line}"),
        }
    }

    #[test]
    fn sentences_from_receivers_and_what_they_say() {
        let cases = [
            // The NMEA reference's own examples (checksums as published).
            (
                "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A".to_owned(),
                fix(48.0 + 7.038 / 60.0, 11.0 + 31.0 / 60.0),
            ),
            (
                "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47".to_owned(),
                fix(48.0 + 7.038 / 60.0, 11.0 + 31.0 / 60.0),
            ),
            // A multi-constellation receiver (u-blox M8), south and west.
            (
                sentence("GNRMC,083559.00,A,3351.96800,S,15112.59700,W,0.004,77.52,091202,,,A"),
                fix(-(33.0 + 51.968 / 60.0), -(151.0 + 12.597 / 60.0)),
            ),
            (
                sentence("GNGGA,083559.00,3351.96800,S,15112.59700,W,2,12,0.8,10.0,M,20.0,M,,"),
                fix(-(33.0 + 51.968 / 60.0), -(151.0 + 12.597 / 60.0)),
            ),
            // No fix yet: void status, quality 0, empty fields.
            (
                sentence("GPRMC,083559.00,V,,,,,,,091202,,,N"),
                Ok(Sentence::NoFix),
            ),
            (
                sentence("GNGGA,083559.00,,,,,0,00,99.99,,,,,,"),
                Ok(Sentence::NoFix),
            ),
            // Other sentences are checked, not read.
            (
                sentence("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"),
                Ok(Sentence::Other),
            ),
            (sentence("PUBX,00"), Ok(Sentence::Other)),
            // A flipped bit, a missing checksum, garbage, not ASCII, over long.
            (
                "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6B".to_owned(),
                Err(NmeaError::Checksum),
            ),
            (
                "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W".to_owned(),
                Err(NmeaError::Framing),
            ),
            ("\u{1}\u{7f}noise*zz".to_owned(), Err(NmeaError::Framing)),
            ("$GPGGA,1*G1".to_owned(), Err(NmeaError::Framing)),
            ("$GPGGA,é*00".to_owned(), Err(NmeaError::Framing)),
            (sentence(&"GPGSV,".repeat(14)), Err(NmeaError::TooLong)),
            // Checksummed but impossible: a fix must be a place on Earth.
            (
                sentence("GPRMC,123519,A,9507.038,N,01131.000,E,,,230394,,"),
                Err(NmeaError::Field("latitude")),
            ),
            (
                sentence("GPRMC,123519,A,4807.038,X,01131.000,E,,,230394,,"),
                Err(NmeaError::Field("latitude hemisphere")),
            ),
            (
                sentence("GPRMC,123519,A,4807.038,N,1131.000,E,,,230394,,"),
                Err(NmeaError::Field("longitude")),
            ),
            (
                sentence("GPRMC,123519,A,4867.038,N,01131.000,E,,,230394,,"),
                Err(NmeaError::Field("latitude")),
            ),
            (
                sentence("GPGGA,123519,4807.038,N"),
                Err(NmeaError::Field("field count")),
            ),
        ];
        for (line, expect) in cases {
            check(&line, expect);
        }
    }

    #[test]
    fn lines_are_bounded_and_an_over_long_one_costs_one_error() {
        let good = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A";
        // A good line, noise, an empty line, a line without CR, two sentences run together
        // (one line over the bound), a good line.
        let noise = "x".repeat(5000);
        let stream = format!("{good}\r\n{noise}\r\n\r\n{good}\n{good}{good}\r\n{good}\r\n");
        let mut lines = Lines::new();
        let mut out = Vec::new();
        for &b in stream.as_bytes() {
            if let Some(line) = lines.push(b) {
                out.push(line.map(|l| String::from_utf8(l.to_vec()).unwrap()));
            }
        }
        let good = Ok(good.to_owned());
        assert_eq!(
            out,
            [
                good.clone(),
                Err(NmeaError::TooLong),
                good.clone(),
                Err(NmeaError::TooLong),
                good
            ]
        );
        assert!(lines.line.capacity() <= 2 * (MAX_SENTENCE + 2));
    }
}
