//! Lines of a log, read as bytes and bounded: a line longer than [`MAX_LINE`] is never
//! held whole; its first bytes are kept to say what it was, the rest is read past and only
//! counted. Pure: [`LineSplitter::feed`] takes whatever bytes the caller's reader has
//! buffered, so the same splitter serves a blocking reader ([`next_line`]) and the replay
//! source's async one.

use std::io::BufRead;

/// The longest line a log may have, in bytes without its line ending. The longest candump
/// line (CAN FD, 64 bytes, `-x`) is under 300; an ASC CAN FD line with its bit timings about
/// 400.
pub const MAX_LINE: usize = 512;

/// One line of a log, without its line ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Line(&'a [u8]),
    /// A line over [`MAX_LINE`]: its first bytes and its whole length.
    TooLong {
        start: &'a [u8],
        len: u64,
    },
}

/// Gathers one line at a time from chunks of bytes, holding at most [`MAX_LINE`] + 1 bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    line: Vec<u8>,
    /// Bytes of the current line beyond what `line` holds.
    dropped: u64,
    ended: bool,
    /// Bytes [`next_line`] handed out from the reader's own buffer, consumed at its next call.
    lent: usize,
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter {
            line: Vec::with_capacity(MAX_LINE + 1),
            dropped: 0,
            ended: false,
            lent: 0,
        }
    }

    /// A whole line at the start of `chunk`, when no line is part-read: the line, without
    /// its line ending, and the bytes it takes with its `\n`. Read in place, not gathered:
    /// a log read in large chunks has almost every line whole in one. `None` when the line
    /// goes on past `chunk` (or past [`MAX_LINE`]): then [`LineSplitter::feed`] gathers it.
    #[inline]
    pub fn whole_line<'c>(&self, chunk: &'c [u8]) -> Option<(&'c [u8], usize)> {
        if !self.ended && (!self.line.is_empty() || self.dropped > 0) {
            return None;
        }
        let end = find_newline(&chunk[..chunk.len().min(MAX_LINE + 1)])?;
        let line = &chunk[..end];
        Some((line.strip_suffix(b"\r").unwrap_or(line), end + 1))
    }

    /// Takes bytes of `chunk` up to and including the first newline. Returns how many it
    /// took and whether they ended a line (then [`LineSplitter::piece`] gives it).
    #[inline]
    pub fn feed(&mut self, chunk: &[u8]) -> (usize, bool) {
        if self.ended {
            self.line.clear();
            self.dropped = 0;
            self.ended = false;
        }
        let (taken, ended) = match find_newline(chunk) {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        let body = &chunk[..taken - ended as usize];
        let room = (MAX_LINE + 1).saturating_sub(self.line.len());
        let kept = body.len().min(room);
        self.line.extend_from_slice(&body[..kept]);
        self.dropped += (body.len() - kept) as u64;
        self.ended = ended;
        (taken, ended)
    }

    /// Ends the last line of a stream that does not end with a newline; false if there was
    /// none.
    #[inline]
    pub fn end_of_input(&mut self) -> bool {
        if self.ended || (self.line.is_empty() && self.dropped == 0) {
            return false;
        }
        self.ended = true;
        true
    }

    /// The line just ended, without its `\n` or `\r\n`.
    #[inline]
    pub fn piece(&self) -> Piece<'_> {
        let len = self.line.len() as u64 + self.dropped;
        let mut line = &self.line[..];
        if len as usize <= MAX_LINE + 1 && line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.len() > MAX_LINE {
            Piece::TooLong {
                start: &line[..32],
                len,
            }
        } else {
            Piece::Line(line)
        }
    }
}

/// Where the first `\n` in `bytes` is: eight bytes a step, then byte by byte. A log line
/// is about 50 bytes, where `memchr`'s layers (its vector code behind calls a caller
/// cannot inline) cost 113 instructions a line in `vigil decode` (callgrind); with this
/// loop `next_line`, search included, fell from 195 to 148.
#[inline]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_le_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        // A zero byte in `x` is a `\n` in the word. `(x - ONES) & !x & HIGHS` marks the first
        // zero byte exactly (bytes above it may be marked too, by the borrow), and the first
        // byte is the lowest, as the word was read little-endian.
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ NEWLINES;
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + zeros.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| b == b'\n').map(|i| at + i)
}

/// The next line of `input`, or `None` at its end. Reads at most what `input` buffers
/// beyond the line; never holds more than [`MAX_LINE`] + 1 bytes of it. A line whole in
/// `input`'s buffer is lent from there and consumed at the next call.
pub fn next_line<'s, R: BufRead>(
    input: &'s mut R,
    lines: &'s mut LineSplitter,
) -> std::io::Result<Option<Piece<'s>>> {
    input.consume(std::mem::take(&mut lines.lent));
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(lines.end_of_input().then(|| lines.piece()));
        }
        if let Some((line, taken)) = lines.whole_line(chunk) {
            let len = line.len();
            lines.lent = taken;
            // The buffer again, now only to lend it (fill_buf does not read when it holds bytes).
            return Ok(Some(Piece::Line(&input.fill_buf()?[..len])));
        }
        let (taken, ended) = lines.feed(chunk);
        input.consume(taken);
        if ended {
            return Ok(Some(lines.piece()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The first `\n`, wherever it is and whatever bytes (every value, `\n` among them,
        /// and 0x0A's neighbours, which a borrow could mistake for it) come before.
        #[test]
        fn the_first_newline_is_found(
            bytes in proptest::collection::vec(proptest::sample::select(vec![0u8, 0x09, 0x0A, 0x0B, 0x80, 0x8A, 0xFF, b'1']), 0..40),
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            for bytes in [&bytes, &noise] {
                let expected = bytes.iter().position(|&b| b == b'\n');
                proptest::prop_assert_eq!(find_newline(bytes), expected);
            }
        }
    }

    fn all(bytes: &[u8], chunk: usize) -> Vec<String> {
        let mut input = std::io::BufReader::with_capacity(chunk, bytes);
        let mut lines = LineSplitter::new();
        let mut out = Vec::new();
        while let Some(piece) = next_line(&mut input, &mut lines).unwrap() {
            out.push(match piece {
                Piece::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Piece::TooLong { start, len } => {
                    format!("too long: {len} from {}", String::from_utf8_lossy(start))
                }
            });
        }
        out
    }

    #[test]
    fn lines_end_at_newlines_whatever_the_chunks() {
        let mut text = b"a\r\n\nbb\n".to_vec();
        text.extend(vec![b'x'; 2000]);
        text.extend(b"\nlast");
        for chunk in [1, 3, 64, 8192] {
            assert_eq!(
                all(&text, chunk),
                [
                    "a",
                    "",
                    "bb",
                    &format!("too long: 2000 from {}", "x".repeat(32)),
                    "last"
                ],
                "chunks of {chunk}"
            );
        }
        // Exactly the bound is a line; one more is not; a `\r` is not counted.
        let at_bound = [vec![b'y'; MAX_LINE], b"\r\n".to_vec()].concat();
        assert_eq!(all(&at_bound, 7)[0].len(), MAX_LINE);
        let over = [vec![b'y'; MAX_LINE + 1], b"\n".to_vec()].concat();
        assert!(all(&over, 7)[0].starts_with("too long: 513"));
        assert!(all(b"", 4).is_empty());
        // The same at the bound with the whole text in one buffer, where lines are lent.
        for text in [&at_bound, &over] {
            assert_eq!(all(text, 8192), all(text, 7));
        }
    }

    proptest::proptest! {
        /// Lines lent from a large buffer are the lines gathered from small reads.
        #[test]
        fn lent_lines_are_the_gathered_lines(
            pieces in proptest::collection::vec((0usize..600, proptest::sample::select(vec!["\n", "\r\n", "\r", ""])), 0..20)
        ) {
            let mut text = Vec::new();
            for (i, (len, end)) in pieces.iter().enumerate() {
                text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, *len));
                text.extend(end.as_bytes());
            }
            let gathered = all(&text, 1);
            proptest::prop_assert_eq!(&all(&text, 8192), &gathered);
            proptest::prop_assert_eq!(&all(&text, 700), &gathered);
        }
    }
}
