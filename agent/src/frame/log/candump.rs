//! can-utils' `candump` logs, one frame a line, in both of candump's forms: the log file
//! (`candump -l`: `(SECONDS.MICROS) IFACE ID#DATA`, CAN FD as `ID##<flags><DATA>`) and its
//! printed output with timestamps (`candump -ta`/`-td`/`-tz`/`-tA`:
//! `(SECONDS.MICROS)  IFACE  ID   [LEN]  B0 B1 ...`, the form most public truck logs are
//! kept in; CAN FD as a two-digit `[NN]` of up to 64 bytes). This is the one parser and the
//! one writer of them: [`LogReader`](super::LogReader) calls [`parse`], and the simulator's
//! recordings go through [`format_line`], which writes the log-file form.
//!
//! Eight hex digits of ID mean an extended (29-bit) frame, three a standard one; either
//! case of hex. An ID with the error flag (`0x20000000`) is an error frame. Remote frames
//! (`#R`, `remote request`) are not carried by J1939 and are rejected by name.

use std::time::Duration;

use super::{MAX_FD_LEN, Parsed, unix_micros};
use crate::frame::CanFrame;
use crate::reading::Timestamp;

/// Why a candump line is not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CandumpError {
    #[error(
        "expected `(SECONDS.MICROS) IFACE ID#DATA` or `(SECONDS.MICROS) IFACE ID [LEN] BYTES`, found {0:?}"
    )]
    Shape(String),
    #[error("bad timestamp {0:?}: expected `(SECONDS.MICROS)` or `(YYYY-MM-DD HH:MM:SS.MICROS)`")]
    Timestamp(String),
    #[error("bad CAN id {0:?}: expected 3 or 8 hex digits")]
    Id(String),
    #[error("bad data {0:?}: expected 0 to 8 bytes (CAN FD: up to 64) as hex pairs")]
    Data(String),
    #[error("remote frames are not J1939: {0:?}")]
    Unsupported(String),
    #[error("CAN FD frame of {0} bytes: classic J1939 frames carry at most 8")]
    FdTooLong(u8),
    #[error("an error frame (the bus or controller reported an error)")]
    ErrorFrame,
}

/// The two forms candump writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandumpForm {
    /// `candump -l`: `(STAMP) IFACE ID#DATA`.
    LogFile,
    /// candump's printed output: `(STAMP) IFACE ID [LEN] B0 B1 ...`.
    Printed,
}

/// Writes one frame as a `candump -l` line (without the newline).
pub fn format_line(frame: &CanFrame) -> String {
    use std::fmt::Write;
    let secs = frame.at.wall_us.div_euclid(1_000_000);
    let micros = frame.at.wall_us.rem_euclid(1_000_000);
    let mut line = if frame.extended {
        format!("({secs}.{micros:06}) {} {:08X}#", frame.bus, frame.id)
    } else {
        format!("({secs}.{micros:06}) {} {:03X}#", frame.bus, frame.id)
    };
    for byte in frame.payload() {
        let _ = write!(line, "{byte:02X}");
    }
    line
}

/// Parses one line of a candump log, in either form, to a classic frame (a CAN FD frame of
/// at most 8 bytes is one). `first_wall_us` is the log's first timestamp: the monotonic time
/// of a replayed frame is its distance from the start of the log. Tests and benchmarks use
/// this; files go through [`LogReader`](super::LogReader), which also reads the other forms.
pub fn parse_line(line: &str, first_wall_us: Option<i64>) -> Result<CanFrame, CandumpError> {
    let (_, parsed) = parse(line)?;
    if parsed.len > 8 {
        return Err(CandumpError::FdTooLong(parsed.len));
    }
    let mut data = [0u8; 8];
    data.copy_from_slice(&parsed.data[..8]);
    let since_start = parsed.wall_us - first_wall_us.unwrap_or(parsed.wall_us);
    Ok(CanFrame {
        bus: std::sync::Arc::from(parsed.bus.as_ref()),
        id: parsed.id,
        extended: parsed.extended,
        data,
        len: parsed.len,
        at: Timestamp {
            wall_us: parsed.wall_us,
            mono: Duration::from_micros(since_start.max(0) as u64),
        },
    })
}

/// A classic frame as [`parse_log_file_line`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogFileFrame<'a> {
    /// Printable ASCII, so valid UTF-8; bytes, so a known bus is found without checking.
    pub(crate) bus: &'a [u8],
    pub(crate) id: u32,
    pub(crate) extended: bool,
    pub(crate) data: [u8; 8],
    pub(crate) len: u8,
    pub(crate) wall_us: i64,
}

/// The `candump -l` line as candump writes it, `(SECONDS.MICROS) IFACE ID#DATA` with single
/// spaces and at most candump's direction mark (` R`, ` T`) after it, read in one pass over
/// its bytes: the reader's path for a log already known to be in this form, where a busy
/// bus gives tens of thousands of lines a second. `None` for anything else (CAN FD, remote
/// frames, other spacing, seconds of more than 18 digits, every malformed line), which
/// [`parse`] then reads or refuses with its reason: what this accepts, [`parse`] accepts
/// as the same frame (property tests hold them to it).
#[inline]
pub(crate) fn parse_log_file_line(line: &[u8]) -> Option<LogFileFrame<'_>> {
    let mut bytes = Bytes { line, at: 0 };
    bytes.expect(b'(')?;
    // Ten digits of seconds (every time from 2001 to 2286) as two words; others one by one.
    let secs = match line.get(..12) {
        Some([_, ten @ .., b'.']) => {
            let (high, low) = ten.split_at(8);
            let high = eight_digits(high.try_into().expect("eight bytes"))?;
            let low = eight_digits([b'0', b'0', b'0', b'0', b'0', b'0', low[0], low[1]])?;
            bytes.at += 10;
            (high * 100 + low) as i64
        }
        _ => match bytes.decimal(18) {
            (_, 0) => return None,
            (secs, _) => secs,
        },
    };
    bytes.expect(b'.')?;
    let micros = match line.get(bytes.at..bytes.at + 6)? {
        &[a, b, c, d, e, f] => eight_digits([b'0', b'0', a, b, c, d, e, f])? as i64,
        _ => return None,
    };
    bytes.at += 6;
    bytes.expect(b')')?;
    bytes.expect(b' ')?;
    // The bus name: printable ASCII (so its bytes are the `str` the full parser sees, and
    // valid UTF-8).
    let bus_start = bytes.at;
    while bytes.peek().is_some_and(|b| b.is_ascii_graphic()) {
        bytes.at += 1;
    }
    let bus = &line[bus_start..bytes.at];
    if bus.is_empty() {
        return None;
    }
    bytes.expect(b' ')?;
    // Eight hex digits (an extended id) as the full parser reads them; three one by one.
    let (id, digits) = match line.get(bytes.at..bytes.at + 9) {
        Some([eight @ .., b'#']) => {
            let id = hex_number(eight)?;
            bytes.at += 8;
            (id, 8)
        }
        _ => bytes.hex(8),
    };
    let extended = match digits {
        8 if id <= 0x1FFF_FFFF => true,
        3 if id <= 0x7FF => false,
        _ => return None,
    };
    bytes.expect(b'#')?;
    // The data to the end, or to candump's direction mark and then the end: two hex digits
    // a byte, at most eight bytes, each digit read without a branch.
    let hex = match &line[bytes.at..] {
        [hex @ .., b' ', b'R' | b'T'] => hex,
        hex => hex,
    };
    if hex.len() % 2 != 0 || hex.len() > 16 {
        return None;
    }
    let mut data = [0u8; 8];
    // Every digit's value or-ed together: a byte that is not a digit sets the high nibble.
    let mut seen = 0u8;
    for (byte, pair) in data.iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
        seen |= high | low;
        *byte = high << 4 | low;
    }
    if seen > 0xF {
        return None;
    }
    let len = hex.len() / 2;
    Some(LogFileFrame {
        bus,
        id,
        extended,
        data,
        len: len as u8,
        wall_us: secs.checked_mul(1_000_000)?.checked_add(micros)?,
    })
}

/// Eight ASCII decimal digits, the first the most significant, as their value; `None`
/// unless all eight are digits. A word at a time: the digits' values paired up, then the
/// pairs, then the fours, three multiplies in all.
#[inline(always)]
fn eight_digits(digits: [u8; 8]) -> Option<u64> {
    const fn each(byte: u8) -> u64 {
        u64::from_le_bytes([byte; 8])
    }
    // Little-endian: the first digit is the lowest byte.
    let values = u64::from_le_bytes(digits).wrapping_sub(each(b'0'));
    // A byte over 9 (a byte below '0' wrapped round) reaches its high bit with 0x76 added.
    if (values | values.wrapping_add(each(0x76))) & each(0x80) != 0 {
        return None;
    }
    let pairs = (values * 10 + (values >> 8)) & 0x00FF_00FF_00FF_00FF;
    let fours = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((fours * 10_000 + (fours >> 32)) & 0xFFFF_FFFF)
}

/// A cursor over a line's bytes, for [`parse_log_file_line`].
struct Bytes<'a> {
    line: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Up to `max` (at most 18) decimal digits: their value and how many there were.
    #[inline(always)]
    fn decimal(&mut self, max: usize) -> (i64, usize) {
        let (mut n, start) = (0i64, self.at);
        while self.at - start < max
            && let Some(digit) = self
                .peek()
                .map(|b| b.wrapping_sub(b'0'))
                .filter(|d| *d <= 9)
        {
            n = n * 10 + i64::from(digit);
            self.at += 1;
        }
        (n, self.at - start)
    }

    /// Up to `max` (at most 8) hex digits: their value and how many there were.
    #[inline(always)]
    fn hex(&mut self, max: usize) -> (u32, usize) {
        let (mut n, start) = (0u32, self.at);
        while self.at - start < max
            && let Some(digit) = self.peek().and_then(hex_digit)
        {
            n = n << 4 | u32::from(digit);
            self.at += 1;
        }
        (n, self.at - start)
    }
}

/// Parses one line in either form and says which form it was.
pub(crate) fn parse(line: &str) -> Result<(CandumpForm, Parsed<'_>), CandumpError> {
    let shape = || CandumpError::Shape(short(line.trim()));
    let trimmed = line.trim_start();
    // The stamp may hold a space (`-tA`: `(2021-10-25 19:00:55.020850)`).
    let close = trimmed.find(')').ok_or_else(shape)?;
    let stamp = &trimmed[..=close];
    let wall_us = parse_timestamp(stamp).ok_or_else(|| CandumpError::Timestamp(short(stamp)))?;
    let mut parts = trimmed[close + 1..].split_ascii_whitespace();
    let (bus, mut body) = match (parts.next(), parts.next()) {
        (Some(b), Some(f)) => (b, f),
        _ => return Err(shape()),
    };
    if let Some((id_hex, data_hex)) = body.split_once('#') {
        // The log-file form: `ID#DATA`, then at most candump's direction mark (`R`, `T`).
        if !matches!(parts.next(), None | Some("R" | "T")) || parts.next().is_some() {
            return Err(shape());
        }
        let id = parse_id(id_hex)?;
        let (fd, data_hex) = match data_hex.strip_prefix('#') {
            // `##` then one hex digit of FD flags, then the data.
            Some(rest) => {
                let flags = rest
                    .get(..1)
                    .filter(|f| f.chars().all(|c| c.is_ascii_hexdigit()));
                if flags.is_none() {
                    return Err(CandumpError::Data(short(data_hex)));
                }
                (true, &rest[1..])
            }
            None => (false, data_hex),
        };
        if !fd && data_hex.starts_with('R') {
            return Err(CandumpError::Unsupported(short(body)));
        }
        let (data, len) = packed(data_hex, fd)?;
        let parsed = frame(bus, id, fd, data, len, wall_us);
        return Ok((CandumpForm::LogFile, parsed));
    }
    // The printed form: `ID [LEN] B0 B1 ...`, after `-x`'s direction and flags if present.
    if matches!(body, "RX" | "TX") {
        body = parts
            .by_ref()
            .find(|t| !matches!(*t, "-" | "B" | "E" | "I"))
            .ok_or_else(shape)?;
    }
    let len_field = parts
        .next()
        .and_then(|l| l.strip_prefix('[')?.strip_suffix(']'))
        .ok_or_else(shape)?;
    let id = parse_id(body)?;
    // candump prints a CAN FD length with two digits (`[08]`, `[64]`), a classic one with one.
    let fd = len_field.len() == 2;
    let len: usize = len_field.parse().map_err(|_| shape())?;
    let mut data = [0u8; MAX_FD_LEN];
    let mut count = 0;
    for word in parts {
        if word == "remote" && count == 0 {
            return Err(CandumpError::Unsupported("remote request".to_owned()));
        }
        if count == len && word.starts_with('\'') {
            break; // `-a`'s ASCII rendering of the data
        }
        let byte = hex_byte(word.as_bytes()).filter(|_| count < MAX_FD_LEN && (fd || count < 8));
        match byte {
            Some(b) => data[count] = b,
            None => return Err(CandumpError::Data(short(word))),
        }
        count += 1;
    }
    if count != len {
        return Err(CandumpError::Data(format!(
            "{count} bytes for [{len_field}]"
        )));
    }
    Ok((
        CandumpForm::Printed,
        frame(bus, id, fd, data, count as u8, wall_us),
    ))
}

/// A CAN id: its value and whether it is extended. Error frames are refused here.
#[derive(Clone, Copy)]
struct Id(u32, bool);

fn parse_id(hex: &str) -> Result<Id, CandumpError> {
    let extended = match hex.len() {
        8 => true,
        3 => false,
        _ => return Err(CandumpError::Id(short(hex))),
    };
    let id = hex_number(hex.as_bytes()).ok_or_else(|| CandumpError::Id(short(hex)))?;
    if extended && id & 0xE000_0000 == 0x2000_0000 {
        return Err(CandumpError::ErrorFrame);
    }
    if (extended && id > 0x1FFF_FFFF) || (!extended && id > 0x7FF) {
        return Err(CandumpError::Id(short(hex)));
    }
    Ok(Id(id, extended))
}

fn frame(bus: &str, id: Id, fd: bool, data: [u8; MAX_FD_LEN], len: u8, wall_us: i64) -> Parsed<'_> {
    Parsed {
        bus: bus.into(),
        id: id.0,
        extended: id.1,
        fd,
        data,
        len,
        wall_us,
    }
}

/// Hex pairs run together (`6F3F392B`): up to 8 bytes, or 64 for CAN FD.
fn packed(hex: &str, fd: bool) -> Result<([u8; MAX_FD_LEN], u8), CandumpError> {
    let bad = || CandumpError::Data(short(hex));
    let max = if fd { MAX_FD_LEN } else { 8 };
    if !hex.len().is_multiple_of(2) || hex.len() > 2 * max {
        return Err(bad());
    }
    let mut data = [0u8; MAX_FD_LEN];
    for (slot, pair) in data.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *slot = hex_byte(pair).ok_or_else(bad)?;
    }
    Ok((data, (hex.len() / 2) as u8))
}

/// Two hex digits, either case, as one byte.
#[inline(always)]
fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
        _ => None,
    }
}

/// One to eight hex digits, either case, and nothing else (no sign, unlike
/// `u32::from_str_radix`).
#[inline]
fn hex_number(hex: &[u8]) -> Option<u32> {
    if hex.is_empty() || hex.len() > 8 {
        return None;
    }
    // Without a branch a digit: every digit's value or-ed together, where a byte that is
    // not a digit sets the high nibble.
    let (mut n, mut seen) = (0u32, 0u8);
    for &b in hex {
        let value = HEX_VALUES[b as usize];
        seen |= value;
        n = n << 4 | u32::from(value & 0xF);
    }
    (seen <= 0xF).then_some(n)
}

/// A hex digit's value by its byte; [`NOT_HEX`] for every other byte. One load per digit
/// where three range checks were: the gateway's build optimises for size and would not
/// turn them into this.
const HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        values[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        values[b'a' as usize + i] = 10 + i as u8;
        values[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    values
};
const NOT_HEX: u8 = 0xFF;

#[inline(always)]
fn hex_digit(b: u8) -> Option<u8> {
    let value = HEX_VALUES[b as usize];
    (value != NOT_HEX).then_some(value)
}

/// Decimal digits and nothing else (no sign), as long as they fit an `i64`.
#[inline(always)]
fn decimal(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() {
        return None;
    }
    // 18 digits always fit: no overflow check per digit for a timestamp's 10 and 6.
    if digits.len() <= 18 {
        let mut n = 0i64;
        for &b in digits {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            n = n * 10 + i64::from(digit);
        }
        return Some(n);
    }
    digits.iter().try_fold(0i64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(i64::from(digit))
    })
}

/// At most 32 characters of a field, for an error message: a log line is never copied
/// whole into the log.
fn short(field: &str) -> String {
    field.chars().take(32).collect()
}

/// `(SECONDS.MICROS)` (absolute or relative) or `-tA`'s `(YYYY-MM-DD HH:MM:SS.MICROS)`,
/// taken as UTC.
fn parse_timestamp(stamp: &str) -> Option<i64> {
    let inner = stamp.strip_prefix('(')?.strip_suffix(')')?;
    if let Some((date, time)) = inner.split_once(' ') {
        let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
        let (hms, micros) = time.split_once('.')?;
        let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
        let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
        if micros.len() != 6 {
            return None;
        }
        let micros = decimal(micros.as_bytes())?;
        return unix_micros(y, m, d, h, mi, s)?.checked_add(micros);
    }
    let (secs, micros) = inner.split_once('.')?;
    if micros.len() != 6 {
        return None;
    }
    let (secs, micros) = (decimal(secs.as_bytes())?, decimal(micros.as_bytes())?);
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_a_line_of_the_real_log_unchanged() {
        let line = "(1635188455.020850) can1 18F00E00#821639C4FFFFFFFF";
        let frame = parse_line(line, Some(1_635_188_455_000_000)).unwrap();
        assert!(frame.extended);
        assert_eq!(frame.id, 0x18F00E00);
        assert_eq!(
            frame.payload(),
            [0x82, 0x16, 0x39, 0xC4, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(frame.at.mono, Duration::from_micros(20_850));
        assert_eq!(format_line(&frame), line);
    }

    #[test]
    fn reads_candumps_printed_form_as_public_truck_logs_keep_it() {
        // SystemsCyber/Truck_Sentry's datasets/normal.log (MIT), relative timestamps.
        let line = " (000.005001)  can0  18FEDF00   [8]  8A A0 28 7D 7D FF FF F5";
        let frame = parse_line(line, Some(0)).unwrap();
        assert_eq!(
            (frame.id, frame.extended, &*frame.bus),
            (0x18FEDF00, true, "can0")
        );
        assert_eq!(
            frame.payload(),
            [0x8A, 0xA0, 0x28, 0x7D, 0x7D, 0xFF, 0xFF, 0xF5]
        );
        assert_eq!(frame.at.mono, Duration::from_micros(5_001));
        // The same frame in the log-file form parses to the same frame.
        let logged = format_line(&frame);
        assert_eq!(logged, "(0.005001) can0 18FEDF00#8AA0287D7DFFFFF5");
        assert_eq!(parse_line(&logged, Some(0)).unwrap(), frame);
        // Short frames, standard ids, and what is not data.
        let short = parse_line("(1.000000) can1 123 [2] 01 ff", None).unwrap();
        assert_eq!(
            (short.id, short.extended, short.payload()),
            (0x123, false, &[1, 0xFF][..])
        );
        let cases = [
            (
                "(1.000000) can1 123 [3] 01 02",
                CandumpError::Data("2 bytes for [3]".into()),
            ),
            (
                "(1.000000) can1 123 [2] 01 2",
                CandumpError::Data("2".into()),
            ),
            (
                "(1.000000) can1 123 [0] remote request",
                CandumpError::Unsupported("remote request".into()),
            ),
            (
                "(1.000000) can1 123 2 01 02",
                CandumpError::Shape("(1.000000) can1 123 2 01 02".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line, None), Err(expected), "{line}");
        }
    }

    #[test]
    fn every_timestamp_form_and_either_case_of_hex() {
        // -ta (absolute), -td/-tz (relative), -tA (date and time), lower-case hex, -x, -a.
        let lines = [
            "(1635188455.020850) can1 18fee000#6f3f392bffffffff",
            "(000.020850) can1 18FEE000#6F3F392BFFFFFFFF",
            "(2021-10-25 19:00:55.020850) can1 18FEE000 [8] 6F 3F 39 2B FF FF FF FF",
            "(1635188455.020850) can1 18FEE000#6F3F392BFFFFFFFF R",
            " (1635188455.020850)  can1  RX - -  18FEE000   [8]  6F 3F 39 2B FF FF FF FF   'o?9+....'",
        ];
        let frames: Vec<CanFrame> = lines.iter().map(|l| parse_line(l, None).unwrap()).collect();
        for f in &frames {
            assert_eq!((f.id, f.payload()[0], f.len), (0x18FEE000, 0x6F, 8));
        }
        assert_eq!(frames[0].at.wall_us, 1_635_188_455_020_850);
        assert_eq!(frames[1].at.wall_us, 20_850);
        assert_eq!(frames[2].at.wall_us, 1_635_188_455_020_850, "-tA is UTC");
    }

    #[test]
    fn can_fd_in_both_forms() {
        let (form, fd) = parse("(1.000000) can0 18FEEE00##100112233445566778899AABB").unwrap();
        assert_eq!((form, fd.fd, fd.len), (CandumpForm::LogFile, true, 12));
        assert_eq!(fd.data[11], 0xBB);
        let bytes = vec!["AA"; 64].join(" ");
        let line = format!("(1.000000) can0 123 [64] {bytes}");
        let (form, fd) = parse(&line).unwrap();
        assert_eq!(
            (form, fd.fd, fd.len, fd.data[63]),
            (CandumpForm::Printed, true, 64, 0xAA)
        );
        // Eight bytes or fewer in FD travel as a classic frame; more cannot.
        let small = parse_line("(1.000000) can0 123##0AABB", None).unwrap();
        assert_eq!(small.payload(), [0xAA, 0xBB]);
        assert_eq!(
            parse_line(
                "(1.000000) can0 123 [12] 00 01 02 03 04 05 06 07 08 09 0A 0B",
                None
            ),
            Err(CandumpError::FdTooLong(12))
        );
        // A classic frame of more than 8 bytes is malformed, not FD.
        assert!(matches!(
            parse_line("(1.000000) can0 123 [9] 00 01 02 03 04 05 06 07 08", None),
            Err(CandumpError::Data(_))
        ));
    }

    #[test]
    fn rejects_malformed_lines_by_name() {
        let cases = [
            ("garbage", CandumpError::Shape("garbage".into())),
            ("(1.5) can0 123#00", CandumpError::Timestamp("(1.5)".into())),
            ("(1.000000) can0 12345#00", CandumpError::Id("12345".into())),
            ("(1.000000) can0 123#0", CandumpError::Data("0".into())),
            (
                "(1.000000) can0 123#R",
                CandumpError::Unsupported("123#R".into()),
            ),
            (
                "(1.000000) can0 123##X00",
                CandumpError::Data("#X00".into()),
            ),
            (
                "(1.000000) can0 20000080#0000000000000000",
                CandumpError::ErrorFrame,
            ),
            (
                "(1.000000) can0 FFFFFFFF#00",
                CandumpError::Id("FFFFFFFF".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line, None), Err(expected), "{line}");
        }
    }
}

#[cfg(test)]
mod digits {
    use super::*;

    #[test]
    fn the_hex_table_reads_every_byte_as_char_to_digit_does() {
        for b in 0..=u8::MAX {
            let expected = (b as char).to_digit(16).map(|d| d as u8);
            assert_eq!(hex_digit(b), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn decimals_of_every_length_read_as_i64_parses_them() {
        for digits in [
            "0",
            "7",
            "000001",
            "1635188455",
            "999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "99999999999999999999",
            "12a4",
            "",
        ] {
            let expected = digits.parse::<i64>().ok().filter(|_| !digits.is_empty());
            assert_eq!(decimal(digits.as_bytes()), expected, "{digits:?}");
        }
    }

    /// Ids, data and seconds are read byte by byte: a sign, which `from_str_radix` and
    /// `str::parse` would take, is no digit.
    #[test]
    fn signs_and_stray_characters_are_not_digits() {
        let cases = [
            ("(1.000000) can0 +12#00", CandumpError::Id("+12".into())),
            ("(1.000000) can0 123#+1", CandumpError::Data("+1".into())),
            ("(1.000000) can0 123#0G", CandumpError::Data("0G".into())),
            (
                "(1.000000) can0 123 [1] +1",
                CandumpError::Data("+1".into()),
            ),
            (
                "(+1.000000) can0 123#00",
                CandumpError::Timestamp("(+1.000000)".into()),
            ),
            (
                "(1.+00000) can0 123#00",
                CandumpError::Timestamp("(1.+00000)".into()),
            ),
            (
                "(99999999999999999999.000000) can0 123#00",
                CandumpError::Timestamp("(99999999999999999999.000000)".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_line(line, None), Err(expected), "{line}");
        }
        let frame = parse_line("(0.000001) can0 1aB#fF0a", None).unwrap();
        assert_eq!(
            (frame.id, frame.payload(), frame.at.wall_us),
            (0x1AB, &[0xFF, 0x0A][..], 1)
        );
    }
}

#[cfg(test)]
mod properties {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::{
        CandumpForm, LogFileFrame, MAX_FD_LEN, Parsed, eight_digits, format_line, parse,
        parse_line, parse_log_file_line,
    };
    use crate::frame::CanFrame;
    use crate::reading::Timestamp;

    /// The one-pass reader's frame as the full parser gives it.
    fn full(f: LogFileFrame<'_>) -> (CandumpForm, Parsed<'_>) {
        let mut data = [0u8; MAX_FD_LEN];
        data[..8].copy_from_slice(&f.data);
        let parsed = Parsed {
            bus: std::str::from_utf8(f.bus).expect("printable ASCII").into(),
            id: f.id,
            extended: f.extended,
            fd: false,
            data,
            len: f.len,
            wall_us: f.wall_us,
        };
        (CandumpForm::LogFile, parsed)
    }

    fn frame() -> impl Strategy<Value = CanFrame> {
        (
            any::<bool>(),
            0u32..=0x1FFF_FFFF,
            any::<[u8; 8]>(),
            0u8..=8,
            0i64..4_000_000_000_000_000,
            "[a-z][a-z0-9]{0,7}",
        )
            .prop_map(|(extended, id, data, len, wall_us, bus)| {
                let mut data = data;
                data[len as usize..].fill(0);
                CanFrame {
                    bus: Arc::from(bus.as_str()),
                    id: if extended { id } else { id & 0x7FF },
                    extended,
                    data,
                    len,
                    at: Timestamp {
                        wall_us,
                        mono: Duration::ZERO,
                    },
                }
            })
    }

    /// The edges of the one-pass reader: what it takes (the full parser reads the same
    /// frame) and what it leaves to the full parser.
    #[test]
    fn the_one_pass_reader_takes_candumps_own_lines_and_leaves_the_rest() {
        let cases = [
            ("(1635188455.020850) can1 18F00E00#821639C4FFFFFFFF", true),
            ("(1635188455.020850) can1 18F00E00#821639C4FFFFFFFF R", true),
            ("(1.000000) vcan-0.x 7FF#", true),
            ("(0.000001) can0 1FFFFFFF#00 T", true),
            ("(999999999999.000000) can0 123#0011223344556677", true),
            ("(1.000000) can0 800#00", false),
            ("(1.000000) can0 20000000#00", false),
            ("(1.000000) can0 1234#00", false),
            ("(1.000000) can0 123#R", false),
            ("(1.000000) can0 123##100", false),
            ("(1234567890123456789.000000) can0 123#00", false),
            ("(999999999999999999.000000) can0 123#00", false),
            ("(1.00000) can0 123#00", false),
            ("(1.000000)  can0 123#00", false),
            ("(1.000000) can0 123#001", false),
            ("(1.000000) can0 123#001122334455667788", false),
            ("(1.000000) can0 123#00 X", false),
            ("(1.000000) can0 123#00 R ", false),
            ("(1.000000) can\u{1} 123#00", false),
            ("(-1.000000) can0 123#00", false),
            ("(1.000000) can0 +12#00", false),
        ];
        for (line, taken) in cases {
            let fast = parse_log_file_line(line.as_bytes());
            assert_eq!(fast.is_some(), taken, "{line:?}");
            if let Some(fast) = fast {
                assert_eq!(parse(line), Ok(full(fast)), "{line:?}");
            }
        }
    }

    proptest! {
        /// Eight bytes read as a word give the value `u64::from_str` gives the eight
        /// digits, and `None` as soon as one byte is not a digit: bytes next to '0' and '9'
        /// (which a borrow or a carry between bytes could hide) among them.
        #[test]
        fn eight_digits_read_as_from_str_reads_them(
            digits in proptest::array::uniform8(proptest::sample::select(
                b"0123456789/:\x00\x7F\x80\xB0\xB9\xFF".to_vec()
            )),
            number in 0u64..100_000_000,
        ) {
            let text = format!("{number:08}");
            prop_assert_eq!(eight_digits(text.as_bytes().try_into().unwrap()), Some(number));
            let expected = digits
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| std::str::from_utf8(&digits).unwrap().parse::<u64>().unwrap());
            prop_assert_eq!(eight_digits(digits), expected);
        }
    }

    proptest! {
        #[test]
        fn any_line_parses_or_fails_without_panicking(line in any::<String>(), first in any::<Option<i64>>()) {
            let _ = parse_line(&line, first);
        }

        #[test]
        fn line_like_garbage_parses_or_fails_without_panicking(line in r" ?\([0-9 :-]{0,20}\.[0-9]{0,8}\) [a-z0-9]{0,5} [0-9A-Fa-f#R\[\] ]{0,40}", first in any::<Option<i64>>()) {
            let _ = parse_line(&line, first);
        }

        #[test]
        fn every_frame_survives_a_round_trip(frame in frame()) {
            let line = format_line(&frame);
            let back = parse_line(&line, Some(frame.at.wall_us)).unwrap();
            prop_assert_eq!(back, frame);
            // The one-pass reader reads every line candump -l writes, to the same frame.
            let fast = parse_log_file_line(line.as_bytes()).map(full);
            prop_assert_eq!(fast, Some(parse(&line).unwrap()));
        }

        /// A line candump wrote with one byte changed, inserted or removed.
        #[test]
        fn one_byte_off_the_one_pass_reader_agrees_with_the_full_parser(
            frame in frame(),
            at in any::<prop::sample::Index>(),
            edit in 0u8..3,
            byte in prop::sample::select(b"0aAfFgG#.() \t\rRTx-+\x01".to_vec()),
        ) {
            let mut line = format_line(&frame).into_bytes();
            let at = at.index(line.len());
            match edit {
                0 => line[at] = byte,
                1 => line.insert(at, byte),
                _ => { line.remove(at); }
            }
            let line = String::from_utf8(line).unwrap();
            if let Some(fast) = parse_log_file_line(line.as_bytes()) {
                prop_assert_eq!(parse(&line), Ok(full(fast)), "{:?}", line);
            }
        }
    }
}
