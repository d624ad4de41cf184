//! Bounded command-line framing for the LMTP listener: splits input into LF-terminated
//! lines without ever holding more than the configured maximum.
//!
//! Sans-IO: bytes in, complete lines out. A line longer than the limit is discarded up
//! to its LF and reported once as [`Line::TooLong`], so the session stays in sync with
//! the client instead of parsing the tail of a long line as a new command.

/// What [`LineReceiver::ingest`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line including its terminating LF (and CR, if the client sent one).
    Complete(Vec<u8>),
    /// A line exceeded the limit; it was discarded through its LF.
    TooLong,
}

/// Accumulates one command line at a time.
#[derive(Debug)]
pub struct LineReceiver {
    buf: Vec<u8>,
    max: usize,
    /// Set while discarding the rest of an overlong line.
    overflow: bool,
}

impl LineReceiver {
    /// `max` counts the whole line including CRLF.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(3),
            overflow: false,
        }
    }

    /// Consumes bytes from `input` up to and including the next LF. Returns how many
    /// bytes were consumed and the line, if one is complete.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, Option<Line>) {
        let lf = memchr::memchr(b'\n', input);
        let take = lf.map_or(input.len(), |pos| pos + 1);
        let chunk = input.get(..take).unwrap_or(input);
        if !self.overflow {
            if self.buf.len() + chunk.len() > self.max {
                self.overflow = true;
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(chunk);
            }
        }
        if lf.is_none() {
            return (take, None);
        }
        if std::mem::take(&mut self.overflow) {
            return (take, Some(Line::TooLong));
        }
        (take, Some(Line::Complete(std::mem::take(&mut self.buf))))
    }

    /// True when part of a line is buffered.
    pub fn is_partial(&self) -> bool {
        !self.buf.is_empty() || self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fragments_into_lines() {
        let mut rx = LineReceiver::new(100);
        assert_eq!(rx.ingest(b"NOOP"), (4, None));
        assert_eq!(
            rx.ingest(b"\r\nQUIT\r\n"),
            (2, Some(Line::Complete(b"NOOP\r\n".to_vec())))
        );
        assert_eq!(
            rx.ingest(b"QUIT\r\n"),
            (6, Some(Line::Complete(b"QUIT\r\n".to_vec())))
        );
    }

    #[test]
    fn overlong_line_is_dropped_through_its_lf() {
        let mut rx = LineReceiver::new(8);
        assert_eq!(rx.ingest(b"0123456789"), (10, None));
        assert!(rx.is_partial());
        assert_eq!(rx.ingest(b"abc\r\nNOOP\r\n"), (5, Some(Line::TooLong)));
        assert_eq!(
            rx.ingest(b"NOOP\r\n"),
            (6, Some(Line::Complete(b"NOOP\r\n".to_vec())))
        );
    }

    #[test]
    fn line_at_exact_limit_is_accepted() {
        let mut rx = LineReceiver::new(6);
        assert_eq!(
            rx.ingest(b"NOOP\r\n"),
            (6, Some(Line::Complete(b"NOOP\r\n".to_vec())))
        );
    }
}
