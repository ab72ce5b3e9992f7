//! The one reader of CAN logs every command uses (`vigil replay`, `vigil decode`, the
//! replay source): it detects a file's form from its first meaningful lines, once per file,
//! and reads it line by line as bytes.
//!
//! Forms read: candump's log file (`candump -l`) and its printed output (`-ta`/`-td`/`-tz`/
//! `-tA`), both with CAN FD ([`candump`]); Vector ASC ([`asc`]); the Saleae Logic 2 CAN
//! analyzer's CSV export, one frame assembled from its field rows ([`saleae`]), the form the
//! SystemsCyber/Truck_Sentry J1939 attack captures are published in. BLF, MF4 and PCAN TRC
//! are recognised by their first bytes and refused with the conversion to run: the Rust
//! readers of BLF and MF4 found (ablf, blf_asc, mf4-rs) are young one-author crates, and the
//! truck never writes those forms itself.
//!
//! What the reader guarantees, whatever the input:
//! - A line is at most [`MAX_LINE`] bytes; a longer one is read past, never held whole
//!   ([`lines`]), and counted as too long.
//! - A line that is not UTF-8 is skipped and counted with its line number; the next one is
//!   read as usual.
//! - Once the form is known, a line that does not parse in it is counted as malformed; the
//!   form is never guessed again. Lines before the form is known that match none are
//!   counted as malformed too.
//! - Every skipped line is counted by cause (too long, bad bytes, malformed, unsupported,
//!   bus error) and logged with its line number and at most its first 32 bytes: the first
//!   [`LOUD_SKIPPED_LINES`] of a log at `warn`, the rest at `debug`.
//! - A file with no frame at all is an error naming the forms read ([`LogError::NoFrames`]).
//!
//! CAN FD frames are read and counted; those of at most 8 bytes travel on as a
//! [`CanFrame`], longer ones are counted and skipped as unsupported. `CanFrame` keeps its 8
//! inline bytes because it crosses every channel of the pipeline for every frame of a busy
//! bus, and J1939 over CAN FD (J1939-22) is a different transport Vigil does not decode:
//! widening it to 64 would cost every classic frame for frames nothing would read.

pub mod asc;
pub mod candump;
pub mod lines;
pub mod saleae;
mod time;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use lines::{LineSplitter, MAX_LINE, Piece, next_line};
pub(crate) use time::{seconds_to_micros, unix_micros};

use super::{BusError, CanFrame};
use crate::reading::Timestamp;

/// Lines skipped that are logged at `warn`, per log, before the rest go to `debug`.
pub const LOUD_SKIPPED_LINES: u64 = 10;

/// The longest CAN FD payload.
pub const MAX_FD_LEN: usize = 64;

/// What the reader reads, for messages.
pub const FORMS_READ: &str = "candump -l logs, candump's printed output (-ta, -td, -tz, -tA), \
     CAN FD in both, Vector ASC, and the Saleae Logic 2 CAN analyzer's CSV export";

/// How many bytes of a skipped line its log event shows.
const SHOWN_BYTES: usize = 32;

/// The form of a log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Form {
    CandumpLog,
    CandumpPrinted,
    VectorAsc,
    SaleaeCsv,
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::CandumpLog => "candump -l",
            Form::CandumpPrinted => "candump printed",
            Form::VectorAsc => "Vector ASC",
            Form::SaleaeCsv => "Saleae CSV",
        })
    }
}

/// Why a line gave no frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipCause {
    /// Over [`MAX_LINE`] bytes.
    TooLong,
    /// Not UTF-8.
    BadBytes,
    /// Not a frame of the log's form.
    Malformed,
    /// A frame or event J1939 does not carry: remote frames, CAN FD over 8 bytes, ASC events.
    Unsupported,
    /// An error frame, or a frame the bus broke off with an error.
    BusError,
}

impl fmt::Display for SkipCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipCause::TooLong => "too_long",
            SkipCause::BadBytes => "bad_bytes",
            SkipCause::Malformed => "malformed",
            SkipCause::Unsupported => "unsupported",
            SkipCause::BusError => "bus_error",
        })
    }
}

/// What a log gave: its form, its frames and the lines skipped by cause.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogCounts {
    /// `None` until a line showed the form.
    pub form: Option<Form>,
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Frames handed on.
    pub frames: u64,
    /// CAN FD frames read, handed on or not.
    pub fd_frames: u64,
    pub too_long: u64,
    pub bad_bytes: u64,
    pub malformed: u64,
    pub unsupported: u64,
    pub bus_errors: u64,
}

impl LogCounts {
    /// Lines (or, for the Saleae form, frames) skipped, whatever the cause.
    pub fn skipped(&self) -> u64 {
        self.too_long + self.bad_bytes + self.malformed + self.unsupported + self.bus_errors
    }

    fn add(&mut self, cause: SkipCause) {
        *match cause {
            SkipCause::TooLong => &mut self.too_long,
            SkipCause::BadBytes => &mut self.bad_bytes,
            SkipCause::Malformed => &mut self.malformed,
            SkipCause::Unsupported => &mut self.unsupported,
            SkipCause::BusError => &mut self.bus_errors,
        } += 1;
    }
}

impl LogCounts {
    /// `57849 frames (candump -l)`, with the CAN FD frames read if there were any.
    pub fn frames_text(&self) -> String {
        match self.form {
            Some(form) if self.fd_frames > 0 => format!(
                "{} frames ({form}, {} CAN FD frames read)",
                self.frames, self.fd_frames
            ),
            Some(form) => format!("{} frames ({form})", self.frames),
            None => format!("{} frames (no form recognised)", self.frames),
        }
    }

    /// `lines skipped: 0 too long, 0 bad bytes, 0 malformed, 0 unsupported, 0 bus errors`.
    pub fn skipped_text(&self) -> String {
        format!(
            "lines skipped: {} too long, {} bad bytes, {} malformed, {} unsupported, {} bus errors",
            self.too_long, self.bad_bytes, self.malformed, self.unsupported, self.bus_errors
        )
    }
}

impl fmt::Display for LogCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.frames_text(), self.skipped_text())
    }
}

/// Why a log cannot be read at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("{name} is a {container} file, which Vigil does not read; convert it first: {how}")]
    Container {
        name: String,
        container: &'static str,
        how: &'static str,
    },
    #[error("{name} holds no CAN frame ({lines} lines: {counts}); Vigil reads {FORMS_READ}")]
    NoFrames {
        name: String,
        lines: u64,
        counts: LogCounts,
    },
}

/// A frame as a form's parser reads it, before it becomes a [`CanFrame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) bus: Cow<'a, str>,
    pub(crate) id: u32,
    pub(crate) extended: bool,
    pub(crate) fd: bool,
    pub(crate) data: [u8; MAX_FD_LEN],
    pub(crate) len: u8,
    pub(crate) wall_us: i64,
}

/// What one line of a form gives.
pub(crate) enum Outcome<'a> {
    /// Nothing to hand on: a header, a comment, an event of no interest, a part of a frame.
    Nothing,
    Frame(Parsed<'a>),
    Skip(SkipCause, Cow<'static, str>),
    /// A frame the bus broke off: counted as a skipped line (a bus error) and handed on as
    /// a [`BusError`] for the intrusion monitor.
    BusError {
        bus: Cow<'a, str>,
        id: Option<(u32, bool)>,
        wall_us: i64,
        reason: &'static str,
    },
}

/// The form's state once it is known.
#[derive(Debug)]
enum FormState {
    Candump(candump::CandumpForm),
    Asc(asc::Asc),
    Saleae(saleae::Saleae),
}

/// How many bus names a log reader keeps to share.
const MAX_SHARED_BUSES: usize = 16;

/// Reads a log, one line at a time, as every command does. The caller reads the bytes
/// (through [`next_line`] or its own loop over a [`LineSplitter`]); this judges them.
#[derive(Debug)]
pub struct LogReader {
    /// The log's name in messages (its path).
    name: String,
    state: Option<FormState>,
    container: Option<LogError>,
    counts: LogCounts,
    first_wall_us: Option<i64>,
    /// The bus names seen, each shared by the frames that name it: a log of interleaved
    /// buses allocated a name per frame when only the last one was kept.
    buses: Vec<Arc<str>>,
    /// The bus error the last line gave, until the caller takes it.
    bus_error: Option<BusError>,
}

impl LogReader {
    pub fn new(name: impl Into<String>) -> LogReader {
        LogReader {
            name: name.into(),
            state: None,
            container: None,
            counts: LogCounts::default(),
            first_wall_us: None,
            buses: Vec::new(),
            bus_error: None,
        }
    }

    /// The error frame the last line (or [`LogReader::finish`]) gave, if any.
    #[inline]
    pub fn take_bus_error(&mut self) -> Option<BusError> {
        self.bus_error.take()
    }

    /// The next line: a frame, `None` (a blank line, a header, a skipped line: counted and
    /// logged), or the error that the file cannot be read at all.
    #[inline]
    pub fn piece(&mut self, piece: Piece<'_>) -> Result<Option<CanFrame>, LogError> {
        if let Some(error) = &self.container {
            return Err(error.clone());
        }
        self.counts.lines += 1;
        let bytes = match piece {
            Piece::Line(bytes) => bytes,
            Piece::TooLong { start, len } => {
                self.check_container(start)?;
                let reason = format!("{len} bytes, over the {MAX_LINE}-byte bound");
                self.skip(SkipCause::TooLong, reason.into(), start);
                return Ok(None);
            }
        };
        self.check_container(bytes)?;
        // Windows tools may open a text export with a byte-order mark.
        let bytes = match self.counts.lines {
            1 => bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes),
            _ => bytes,
        };
        // A log known to be candump's log file takes the one-pass reader; what it does not
        // read (a malformed line among them) goes the long way, which says why.
        if let Some(FormState::Candump(candump::CandumpForm::LogFile)) = self.state
            && let Some(f) = candump::parse_log_file_line(bytes)
        {
            self.counts.frames += 1;
            return Ok(Some(self.frame(
                f.bus,
                (f.id, f.extended),
                f.data,
                f.len,
                f.wall_us,
            )));
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let reason = format!("not UTF-8 at byte {}", e.valid_up_to());
                self.skip(SkipCause::BadBytes, reason.into(), bytes);
                return Ok(None);
            }
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        let outcome = match &mut self.state {
            None => self.detect(text),
            Some(FormState::Candump(form)) => match candump::parse(text) {
                Ok((found, parsed)) if found == *form => Outcome::Frame(parsed),
                Ok((found, _)) => Outcome::Skip(
                    SkipCause::Malformed,
                    format!("a line of another candump form ({found:?})").into(),
                ),
                Err(e) => candump_skip(e),
            },
            Some(FormState::Asc(asc)) => asc.line(text),
            Some(FormState::Saleae(saleae)) => saleae.row(text),
        };
        Ok(self.outcome(outcome, bytes))
    }

    /// [`LogReader::piece`] for a line already in hand (at most [`MAX_LINE`] bytes, or it
    /// is counted as too long).
    pub fn line(&mut self, line: &[u8]) -> Result<Option<CanFrame>, LogError> {
        if line.len() > MAX_LINE {
            let start = &line[..SHOWN_BYTES];
            let len = line.len() as u64;
            return self.piece(Piece::TooLong { start, len });
        }
        self.piece(Piece::Line(line))
    }

    /// The end of the log: a frame the form held back (the Saleae form knows a frame is
    /// whole only when the next begins), if any.
    pub fn finish(&mut self) -> Option<CanFrame> {
        let outcome = match &mut self.state {
            Some(FormState::Saleae(saleae)) => saleae.finish(),
            _ => Outcome::Nothing,
        };
        self.outcome(outcome, b"")
    }

    /// The error for a log that gave no frame, once it has been read to its end.
    pub fn no_frames(&self) -> Option<LogError> {
        if let Some(error) = &self.container {
            return Some(error.clone());
        }
        (self.counts.frames == 0).then(|| LogError::NoFrames {
            name: self.name.clone(),
            lines: self.counts.lines,
            counts: self.counts.clone(),
        })
    }

    /// Its form, frames and skipped lines so far.
    pub fn counts(&self) -> &LogCounts {
        &self.counts
    }

    /// Lines read so far, blank ones included.
    pub fn lines(&self) -> u64 {
        self.counts.lines
    }

    /// Lines skipped so far, whatever the cause.
    pub fn skipped(&self) -> u64 {
        self.counts.skipped()
    }

    /// The wall time of the log's first frame: where its monotonic clock starts.
    pub fn first_wall_us(&self) -> Option<i64> {
        self.first_wall_us
    }

    /// Recognises the form from a line, before it is known.
    fn detect<'t>(&mut self, text: &'t str) -> Outcome<'t> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('(') {
            return match candump::parse(text) {
                Ok((form, parsed)) => {
                    self.set_form(FormState::Candump(form));
                    Outcome::Frame(parsed)
                }
                Err(e) => candump_skip(e),
            };
        }
        if let Some(asc) = asc::Asc::detect(trimmed) {
            self.set_form(FormState::Asc(asc));
            return Outcome::Nothing;
        }
        match saleae::Saleae::detect(trimmed) {
            Some(Ok(saleae)) => {
                self.set_form(FormState::Saleae(saleae));
                Outcome::Nothing
            }
            Some(Err(reason)) => Outcome::Skip(SkipCause::Malformed, reason.into()),
            None => Outcome::Skip(
                SkipCause::Malformed,
                "not a line of any form Vigil reads".into(),
            ),
        }
    }

    fn set_form(&mut self, state: FormState) {
        let form = match &state {
            FormState::Candump(candump::CandumpForm::LogFile) => Form::CandumpLog,
            FormState::Candump(candump::CandumpForm::Printed) => Form::CandumpPrinted,
            FormState::Asc(_) => Form::VectorAsc,
            FormState::Saleae(_) => Form::SaleaeCsv,
        };
        self.counts.form = Some(form);
        self.state = Some(state);
        tracing::debug!(event = "log_form_detected", log = self.name, %form, line = self.counts.lines);
    }

    /// Refuses the binary forms by the first bytes of the file (its first line). Inline,
    /// so every later line costs one comparison, not a call.
    #[inline]
    fn check_container(&mut self, start: &[u8]) -> Result<(), LogError> {
        match self.counts.lines {
            1 => self.refuse_container(start),
            _ => Ok(()),
        }
    }

    fn refuse_container(&mut self, start: &[u8]) -> Result<(), LogError> {
        let (container, how) = if start.starts_with(b"LOGG") {
            (
                "Vector BLF",
                "`python -m can.logconvert FILE.blf FILE.asc` (python-can), then read the ASC",
            )
        } else if start.starts_with(b"MDF     ") || start.starts_with(b"UnFinMF ") {
            (
                "ASAM MDF4 (MF4)",
                "`python -m can.logconvert FILE.mf4 FILE.log` (python-can with asammdf) or CSS \
                 Electronics' mdf2csv, to a candump or ASC log",
            )
        } else if start.starts_with(b";$FILEVERSION") {
            (
                "PCAN TRC",
                "`python -m can.logconvert FILE.trc FILE.log` (python-can), then read the candump log",
            )
        } else {
            return Ok(());
        };
        let error = LogError::Container {
            name: self.name.clone(),
            container,
            how,
        };
        self.container = Some(error.clone());
        Err(error)
    }

    fn outcome(&mut self, outcome: Outcome<'_>, bytes: &[u8]) -> Option<CanFrame> {
        match outcome {
            Outcome::Nothing => None,
            Outcome::Skip(cause, reason) => {
                self.skip(cause, reason, bytes);
                None
            }
            Outcome::BusError {
                bus,
                id,
                wall_us,
                reason,
            } => {
                self.skip(SkipCause::BusError, reason.into(), bytes);
                let bus = self.intern(bus.as_bytes());
                let at = self.timestamp(wall_us);
                self.bus_error = Some(BusError { bus, at, id });
                None
            }
            Outcome::Frame(parsed) => {
                self.counts.fd_frames += parsed.fd as u64;
                if parsed.len > 8 {
                    let reason = format!(
                        "a CAN FD frame of {} bytes: J1939 frames carry at most 8",
                        parsed.len
                    );
                    self.skip(SkipCause::Unsupported, reason.into(), bytes);
                    return None;
                }
                self.counts.frames += 1;
                let mut data = [0u8; 8];
                data.copy_from_slice(&parsed.data[..8]);
                let id = (parsed.id, parsed.extended);
                Some(self.frame(parsed.bus.as_bytes(), id, data, parsed.len, parsed.wall_us))
            }
        }
    }

    /// A frame of at most 8 bytes, its bus name shared and its time on the log's clock.
    #[inline]
    fn frame(
        &mut self,
        bus: &[u8],
        (id, extended): (u32, bool),
        data: [u8; 8],
        len: u8,
        wall_us: i64,
    ) -> CanFrame {
        CanFrame {
            bus: self.intern(bus),
            id,
            extended,
            data,
            len,
            at: self.timestamp(wall_us),
        }
    }

    /// The bus name, shared with the frames before that named it. A log names a handful
    /// of buses; past [`MAX_SHARED_BUSES`] names (a hostile log) each frame gets its own.
    #[inline]
    fn intern(&mut self, name: &[u8]) -> Arc<str> {
        if let Some(bus) = self.buses.iter().find(|bus| bus.as_bytes() == name) {
            return bus.clone();
        }
        // Never lossy: both readers give UTF-8 (a `str`, or the one-pass reader's ASCII).
        let bus: Arc<str> = Arc::from(String::from_utf8_lossy(name));
        if self.buses.len() < MAX_SHARED_BUSES {
            self.buses.push(bus.clone());
        }
        bus
    }

    /// A wall time, with its monotonic time since the log's first frame.
    #[inline]
    fn timestamp(&mut self, wall_us: i64) -> Timestamp {
        let first = *self.first_wall_us.get_or_insert(wall_us);
        let since_start = wall_us.saturating_sub(first).max(0);
        Timestamp {
            wall_us,
            mono: Duration::from_micros(since_start as u64),
        }
    }

    fn skip(&mut self, cause: SkipCause, reason: Cow<'static, str>, bytes: &[u8]) {
        self.counts.add(cause);
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN_BYTES)]);
        let (log, line, skipped) = (&self.name, self.counts.lines, self.counts.skipped());
        if skipped <= LOUD_SKIPPED_LINES {
            tracing::warn!(event = "log_line_skipped", log, line, %cause, %reason, start = ?shown);
            if skipped == LOUD_SKIPPED_LINES {
                tracing::warn!(
                    event = "log_line_skipped",
                    log,
                    "further skipped lines of this log are logged at debug and counted"
                );
            }
        } else {
            tracing::debug!(event = "log_line_skipped", log, line, %cause, %reason, start = ?shown);
        }
    }
}

fn candump_skip(error: candump::CandumpError) -> Outcome<'static> {
    use candump::CandumpError as E;
    let cause = match error {
        E::Unsupported(_) | E::FdTooLong(_) => SkipCause::Unsupported,
        E::ErrorFrame => SkipCause::BusError,
        E::Shape(_) | E::Timestamp(_) | E::Id(_) | E::Data(_) => SkipCause::Malformed,
    };
    Outcome::Skip(cause, error.to_string().into())
}

#[cfg(test)]
mod tests;
