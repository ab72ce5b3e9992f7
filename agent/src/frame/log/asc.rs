//! Vector ASC, the text log of CANoe, CANalyzer and python-can:
//!
//! ```text
//! date Mon Oct 25 19:00:55.000 pm 2021
//! base hex  timestamps absolute
//! internal events logged
//! Begin Triggerblock Mon Oct 25 19:00:55.000 pm 2021
//!    0.000000 Start of measurement
//!    0.004000 1  18FEEE00x       Rx   d 8 6F 3F 39 2B FF FF FF FF
//!    0.005000 CANFD   1 Rx        123  1 0 c 12 00 01 02 03 04 05 06 07 08 09 0a 0b ...
//! End TriggerBlock
//! ```
//!
//! The `date` line gives the wall time the offsets count from (taken as UTC: ASC writes local
//! time without a zone); without one, wall times start at the epoch, as a relative candump
//! log's do. `timestamps relative` makes each offset count from the line before. `base dec`
//! reads ids and bytes in decimal. Vector numbers channels from 1: channel 1 is bus `can0`.
//! Error frames are bus errors; remote frames and the other events ASC logs (statistics,
//! chip states, J1939 TP summaries) are unsupported; `Start of measurement` is nothing.

use std::borrow::Cow;

use super::{MAX_FD_LEN, Outcome, Parsed, SkipCause, seconds_to_micros, unix_micros};

/// An ASC log's header, as far as it has been read.
#[derive(Debug, Default)]
pub struct Asc {
    decimal: bool,
    relative: bool,
    start_wall_us: i64,
    /// The last frame's offset, for relative timestamps.
    last_us: i64,
}

impl Asc {
    /// An ASC log's reader if `line` is one of its header lines.
    pub(crate) fn detect(line: &str) -> Option<Asc> {
        let lower = line.get(..24).unwrap_or(line).to_ascii_lowercase();
        let header = ["date ", "base ", "begin triggerblock", "// version"]
            .iter()
            .chain(&["internal events logged", "no internal events logged"])
            .any(|start| lower.starts_with(start));
        header.then(|| {
            let mut asc = Asc::default();
            asc.header(line);
            asc
        })
    }

    /// Reads a header line; false if `line` is none.
    fn header(&mut self, line: &str) -> bool {
        let mut words = line.split_ascii_whitespace();
        let first = words.next().unwrap_or_default().to_ascii_lowercase();
        match first.as_str() {
            "date" => {
                if let Some(wall) = parse_date(words) {
                    self.start_wall_us = wall;
                }
            }
            "base" => {
                let rest: Vec<String> = words.map(|w| w.to_ascii_lowercase()).collect();
                self.decimal = rest.iter().any(|w| w == "dec");
                self.relative = rest.iter().any(|w| w == "relative");
            }
            "begin" | "end" | "internal" | "no" => {}
            _ => return first.starts_with("//"),
        }
        true
    }

    pub(crate) fn line<'t>(&mut self, line: &'t str) -> Outcome<'t> {
        let words: Vec<&str> = line.split_ascii_whitespace().take(80).collect();
        let Some(offset) = words.first().and_then(|w| seconds_to_micros(w)) else {
            if self.header(line) {
                return Outcome::Nothing;
            }
            return malformed("neither a timed event nor a header line");
        };
        let (fd, rest) = match words.get(1) {
            Some(w) if w.eq_ignore_ascii_case("canfd") => (true, &words[2..]),
            Some(w) if w.bytes().all(|b| b.is_ascii_digit()) => (false, &words[1..]),
            Some(&"Start") => return Outcome::Nothing, // Start of measurement
            _ => {
                return Outcome::Skip(
                    SkipCause::Unsupported,
                    "an ASC event that is not a CAN frame".into(),
                );
            }
        };
        // rest: channel, then (classic) id dir d|r dlc bytes, or (FD) dir id [name] brs esi
        // dlc len bytes.
        let Some(channel) = rest.first().and_then(|c| c.parse::<u32>().ok()) else {
            return malformed("a channel number");
        };
        if rest
            .iter()
            .take(4)
            .any(|w| w.eq_ignore_ascii_case("errorframe"))
        {
            let Some(wall_us) = self.wall(offset) else {
                return malformed("a time out of range");
            };
            return Outcome::BusError {
                bus: Cow::Owned(format!("can{}", channel.saturating_sub(1))),
                id: None,
                wall_us,
                reason: "an ASC error frame",
            };
        }
        if rest.get(1).is_some_and(|w| w.ends_with(':')) {
            return Outcome::Skip(
                SkipCause::Unsupported,
                "an ASC event that is not a CAN frame".into(),
            );
        }
        let parsed = if fd {
            self.fd_frame(&rest[1..])
        } else {
            self.classic_frame(&rest[1..])
        };
        let (id, extended, data, len) = match parsed {
            Ok(frame) => frame,
            Err(skip) => return skip,
        };
        let Some(wall_us) = self.wall(offset) else {
            return malformed("a time out of range");
        };
        Outcome::Frame(Parsed {
            bus: Cow::Owned(format!("can{}", channel.saturating_sub(1))),
            id,
            extended,
            fd,
            data,
            len,
            wall_us,
        })
    }

    /// `ID[x] Rx|Tx d|r DLC BYTES...`
    fn classic_frame(&self, words: &[&str]) -> Result<Frame, Outcome<'static>> {
        let [id, _dir, kind, dlc, bytes @ ..] = words else {
            return Err(malformed("`ID DIR d DLC BYTES`"));
        };
        if !kind.eq_ignore_ascii_case("d") {
            return Err(Outcome::Skip(
                SkipCause::Unsupported,
                "a remote frame: J1939 has none".into(),
            ));
        }
        let (id, extended) = self.id(id)?;
        let len = self
            .number(dlc)
            .filter(|&n| n <= 8)
            .ok_or_else(|| malformed("a DLC of 0 to 8"))?;
        let (data, len) = self.bytes(bytes, len as usize)?;
        Ok((id, extended, data, len))
    }

    /// `DIR ID [NAME] BRS ESI DLC LEN BYTES...`
    fn fd_frame(&self, words: &[&str]) -> Result<Frame, Outcome<'static>> {
        let [_dir, id, rest @ ..] = words else {
            return Err(malformed("`CANFD CH DIR ID BRS ESI DLC LEN BYTES`"));
        };
        let flag = |w: &&str| matches!(*w, "0" | "1");
        // The symbolic name is optional: skip it when the next word is no BRS flag.
        let rest = match rest.first() {
            Some(w) if !flag(w) => &rest[1..],
            _ => rest,
        };
        let [brs, esi, _dlc, len, bytes @ ..] = rest else {
            return Err(malformed("`BRS ESI DLC LEN BYTES` of a CAN FD frame"));
        };
        if !flag(brs) || !flag(esi) {
            return Err(malformed("BRS and ESI flags of 0 or 1"));
        }
        let (id, extended) = self.id(id)?;
        let len: usize = len
            .parse()
            .ok()
            .filter(|&n| n <= MAX_FD_LEN)
            .ok_or_else(|| malformed("a CAN FD data length of 0 to 64"))?;
        let (data, len) = self.bytes(bytes, len)?;
        Ok((id, extended, data, len))
    }

    fn id(&self, word: &str) -> Result<(u32, bool), Outcome<'static>> {
        let (digits, extended) = match word.strip_suffix(['x', 'X']) {
            Some(digits) => (digits, true),
            None => (word, false),
        };
        let max = if extended { 0x1FFF_FFFF } else { 0x7FF };
        self.number(digits)
            .filter(|&id| id <= max)
            .map(|id| (id, extended))
            .ok_or_else(|| malformed("a CAN id (`x` after an extended one)"))
    }

    fn bytes(
        &self,
        words: &[&str],
        len: usize,
    ) -> Result<([u8; MAX_FD_LEN], u8), Outcome<'static>> {
        let mut data = [0u8; MAX_FD_LEN];
        if words.len() < len {
            return Err(malformed("as many data bytes as the length says"));
        }
        for (slot, word) in data.iter_mut().zip(&words[..len]) {
            *slot = self
                .number(word)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| malformed("data bytes"))?;
        }
        Ok((data, len as u8))
    }

    fn number(&self, word: &str) -> Option<u32> {
        if word.is_empty() || word.len() > 8 {
            return None;
        }
        if self.decimal {
            word.parse().ok()
        } else {
            u32::from_str_radix(word, 16).ok()
        }
    }

    fn wall(&mut self, offset: i64) -> Option<i64> {
        let offset = if self.relative {
            self.last_us.checked_add(offset)?
        } else {
            offset
        };
        self.last_us = offset;
        self.start_wall_us.checked_add(offset)
    }
}

type Frame = (u32, bool, [u8; MAX_FD_LEN], u8);

fn malformed(expected: &'static str) -> Outcome<'static> {
    Outcome::Skip(
        SkipCause::Malformed,
        Cow::Owned(format!("not an ASC line: expected {expected}")),
    )
}

/// `Wed Jun 15 10:23:45.123 am 2022` (weekday, month, day, time, optional am/pm, year), as
/// UTC microseconds.
fn parse_date<'a>(words: impl Iterator<Item = &'a str>) -> Option<i64> {
    let words: Vec<&str> = words.take(8).collect();
    let [_weekday, month, day, time, .., year] = words[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = month.get(..3)?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let mut hms = time.splitn(3, ':');
    let (h, mi, s) = (hms.next()?, hms.next()?, hms.next()?);
    let mut hour: i64 = h.parse().ok()?;
    let pm = words.iter().any(|w| w.eq_ignore_ascii_case("pm"));
    let am = words.iter().any(|w| w.eq_ignore_ascii_case("am"));
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    let second_us = seconds_to_micros(s)?;
    let base = unix_micros(
        year.parse().ok()?,
        month,
        day.parse().ok()?,
        hour,
        mi.parse().ok()?,
        0,
    )?;
    base.checked_add(second_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(asc: &mut Asc, line: &str) -> Parsed<'static> {
        match asc.line(line) {
            Outcome::Frame(p) => Parsed {
                bus: Cow::Owned(p.bus.into_owned()),
                ..p
            },
            Outcome::Nothing => panic!("nothing from {line}"),
            Outcome::Skip(cause, reason) => panic!("{cause}: {reason} from {line}"),
            Outcome::BusError { reason, .. } => panic!("{reason} from {line}"),
        }
    }

    #[test]
    fn reads_the_header_and_classic_and_fd_frames() {
        let mut asc = Asc::detect("date Mon Oct 25 07:00:55.000 pm 2021").unwrap();
        assert_eq!(asc.start_wall_us, 1_635_188_455_000_000);
        assert!(matches!(
            asc.line("base hex  timestamps absolute"),
            Outcome::Nothing
        ));
        assert!(matches!(
            asc.line("   0.000000 Start of measurement"),
            Outcome::Nothing
        ));
        let f = frame(
            &mut asc,
            "   0.004000 1  18FEEE00x       Rx   d 8 6F 3F 39 2B FF FF FF FF  Length = 0 BitCount = 0",
        );
        assert_eq!(
            (f.id, f.extended, f.len, f.data[0], &*f.bus),
            (0x18FEEE00, true, 8, 0x6F, "can0")
        );
        assert_eq!(f.wall_us, 1_635_188_455_004_000);
        let f = frame(&mut asc, "   0.005000 2  123 Tx d 2 1 ff");
        assert_eq!(
            (f.id, f.extended, f.len, &f.data[..2], &*f.bus),
            (0x123, false, 2, &[1, 0xFF][..], "can1")
        );
        let f = frame(
            &mut asc,
            "   0.006000 CANFD   1 Rx   18FEEE00x  EngTemp  1 0 9 12 00 01 02 03 04 05 06 07 08 09 0a 0b   0 0 1000 0",
        );
        assert_eq!((f.fd, f.len, f.data[11]), (true, 12, 0x0B));
        let f = frame(
            &mut asc,
            "   0.007000 CANFD   1 Rx   7FF  0 0 8 8 00 01 02 03 04 05 06 07",
        );
        assert_eq!((f.fd, f.len, f.id), (true, 8, 0x7FF));
        for (line, cause) in [
            ("   0.008000 1  ErrorFrame", SkipCause::BusError),
            ("   0.008000 1  123 Rx r 8", SkipCause::Unsupported),
            (
                "   0.008000 1  Statistic: D 0 R 0 XD 0 XR 0 E 0 O 0 B 0.00%",
                SkipCause::Unsupported,
            ),
            (
                "   0.008000 SV: 1 0 1 ::VarName = 1",
                SkipCause::Unsupported,
            ),
            ("   0.008000 1  123 Rx d 3 01 02", SkipCause::Malformed),
            ("   0.008000 1  800 Rx d 1 01", SkipCause::Malformed),
            ("garbage", SkipCause::Malformed),
        ] {
            match asc.line(line) {
                Outcome::Skip(got, _) => assert_eq!(got, cause, "{line}"),
                // An error frame is skipped as a bus error and handed on, on its channel.
                Outcome::BusError { bus, id, .. } => {
                    assert_eq!(
                        (SkipCause::BusError, &*bus, id),
                        (cause, "can0", None),
                        "{line}"
                    )
                }
                _ => panic!("{line} not skipped"),
            }
        }
    }

    #[test]
    fn relative_timestamps_and_decimal_base() {
        let mut asc = Asc::default();
        asc.header("base dec  timestamps relative");
        let a = frame(&mut asc, "1.000000 1 291 Rx d 2 1 255");
        let b = frame(&mut asc, "0.500000 1 291 Rx d 1 16");
        assert_eq!((a.id, a.data[1], a.wall_us), (291, 255, 1_000_000));
        assert_eq!((b.data[0], b.wall_us), (16, 1_500_000));
    }
}
