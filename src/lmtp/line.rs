//! Bounded line framing: splits input into LF-terminated lines without ever holding
//! more than the configured maximum. Used by the LMTP listener and by the dict proxy
//! (`crate::dict::session`).
//!
//! Sans-IO: bytes in, complete lines out. A line longer than the limit is discarded up
//! to its LF and reported once as too long, so the session stays in sync with the
//! client instead of parsing the tail of a long line as a new command. LMTP drops such
//! a line whole ([`Line::TooLong`]); the dict keeps its first bytes
//! ([`LineReceiver::keeping_head`], [`TooLong::head`]) to find the command and
//! transaction id it belonged to.

/// What [`LineReceiver::ingest`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line including its terminating LF (and CR, if the client sent one).
    Complete(Vec<u8>),
    /// A line exceeded the limit; it was discarded through its LF.
    TooLong,
}

/// A line over the limit, discarded through its LF ([`LineReceiver::next_line`]).
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong {
    /// Its first bytes: as many as the receiver keeps (none unless built with
    /// [`LineReceiver::keeping_head`]); never its LF.
    pub head: Vec<u8>,
}

/// Accumulates one line at a time.
#[derive(Debug)]
pub struct LineReceiver {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of an overlong line kept for [`TooLong::head`].
    head: usize,
    /// Set while discarding the rest of an overlong line.
    overflow: bool,
}

impl LineReceiver {
    /// `max` counts the whole line including CRLF.
    pub fn new(max: usize) -> Self {
        Self::keeping_head(max, 0)
    }

    /// Like [`LineReceiver::new`], but an overlong line keeps its first `head` bytes.
    /// `max` is raised above `head` if needed, so a head never holds a whole line.
    pub fn keeping_head(max: usize, head: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(3).max(head.saturating_add(1)),
            head,
            overflow: false,
        }
    }

    /// [`LineReceiver::next_line`] for callers that need no head of an overlong line.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, Option<Line>) {
        let (used, line) = self.next_line(input);
        let line = line.map(|line| match line {
            Ok(line) => Line::Complete(line),
            Err(TooLong { .. }) => Line::TooLong,
        });
        (used, line)
    }

    /// Consumes bytes from `input` up to and including the next LF. Returns how many
    /// bytes were consumed and, if a line ended, the line (LF included) or, for one
    /// over the limit, what was kept of it.
    pub fn next_line(&mut self, input: &[u8]) -> (usize, Option<Result<Vec<u8>, TooLong>>) {
        let lf = memchr::memchr(b'\n', input);
        let take = lf.map_or(input.len(), |pos| pos + 1);
        let chunk = input.get(..take).unwrap_or(input);
        if !self.overflow {
            if self.buf.len() + chunk.len() > self.max {
                self.overflow = true;
                self.buf.truncate(self.head);
                let room = self.head.saturating_sub(self.buf.len());
                self.buf
                    .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            } else {
                self.buf.extend_from_slice(chunk);
            }
        }
        if lf.is_none() {
            return (take, None);
        }
        let line = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.overflow) {
            return (take, Some(Err(TooLong { head: line })));
        }
        (take, Some(Ok(line)))
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

    /// The dict's framing: LF-only lines, empty ones too.
    #[test]
    fn keeping_head_splits_fragments_into_lines() {
        let mut rx = LineReceiver::keeping_head(100, 32);
        assert_eq!(rx.next_line(b"C1"), (2, None));
        assert!(rx.is_partial());
        assert_eq!(rx.next_line(b"\nR2\n"), (1, Some(Ok(b"C1\n".to_vec()))));
        assert_eq!(rx.next_line(b"R2\n"), (3, Some(Ok(b"R2\n".to_vec()))));
        assert_eq!(rx.next_line(b"\n"), (1, Some(Ok(b"\n".to_vec()))));
        assert!(!rx.is_partial());
    }

    #[test]
    fn overlong_line_keeps_its_head_and_resyncs() {
        let mut rx = LineReceiver::keeping_head(40, 32);
        let long = format!("S7\tpriv/g/k\t{}", "x".repeat(100));
        let (used, line) = rx.next_line(long.as_bytes());
        assert_eq!((used, line), (long.len(), None));
        let (used, line) = rx.next_line(b"yyy\nC7\n");
        assert_eq!(used, 4);
        let Some(Err(TooLong { head })) = line else {
            panic!("expected TooLong, got {line:?}")
        };
        assert_eq!(head, long.as_bytes().get(..32).expect("head"));
        assert_eq!(rx.next_line(b"C7\n"), (3, Some(Ok(b"C7\n".to_vec()))));
    }

    #[test]
    fn keeping_head_line_at_exact_limit_is_accepted() {
        let line = format!("L{}\n", "k".repeat(38));
        let mut rx = LineReceiver::keeping_head(40, 32);
        assert!(matches!(rx.next_line(line.as_bytes()), (40, Some(Ok(_)))));
        let line = format!("L{}\n", "k".repeat(39));
        assert!(matches!(rx.next_line(line.as_bytes()), (41, Some(Err(_)))));
    }

    /// A head never reaches past the limit, nor holds the LF.
    #[test]
    fn limit_is_raised_above_the_head() {
        let mut rx = LineReceiver::keeping_head(4, 32);
        let fits = format!("{}\n", "a".repeat(32));
        assert!(matches!(rx.next_line(fits.as_bytes()), (33, Some(Ok(_)))));
        let over = format!("{}\n", "b".repeat(33));
        let (_, line) = rx.next_line(over.as_bytes());
        assert_eq!(
            line,
            Some(Err(TooLong {
                head: vec![b'b'; 32]
            }))
        );
    }
}
