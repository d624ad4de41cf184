//! Bounded line framing for the dict proxy: splits input into LF-terminated lines and
//! never holds more than the configured maximum.
//!
//! Sans-IO. Unlike the LMTP framing, an overlong line keeps its first bytes
//! ([`HEAD_LEN`]): the command letter and transaction id in them let the session fail
//! exactly the transaction (or answer exactly the command) the line belonged to,
//! instead of dropping the connection.

/// Bytes of an overlong line that are kept.
pub const HEAD_LEN: usize = 32;

/// What [`LineReceiver::ingest`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its LF.
    Complete(Vec<u8>),
    /// A line over the limit, discarded through its LF; its first bytes.
    TooLong(Vec<u8>),
}

/// Accumulates one line at a time.
#[derive(Debug)]
pub struct LineReceiver {
    buf: Vec<u8>,
    max: usize,
    /// Set while discarding the rest of an overlong line.
    overflow: bool,
}

impl LineReceiver {
    /// `max` counts the whole line including its LF.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(HEAD_LEN + 1),
            overflow: false,
        }
    }

    /// Consumes bytes from `input` up to and including the next LF. Returns how many
    /// bytes were consumed and the line, if one ended.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, Option<Line>) {
        let lf = memchr::memchr(b'\n', input);
        let take = lf.map_or(input.len(), |pos| pos + 1);
        let chunk = input.get(..take).unwrap_or(input);
        if !self.overflow {
            if self.buf.len() + chunk.len() > self.max {
                self.overflow = true;
                self.buf.truncate(HEAD_LEN);
                let room = HEAD_LEN.saturating_sub(self.buf.len());
                self.buf
                    .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            } else {
                self.buf.extend_from_slice(chunk);
            }
        }
        if lf.is_none() {
            return (take, None);
        }
        let mut line = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.overflow) {
            return (take, Some(Line::TooLong(line)));
        }
        line.pop();
        (take, Some(Line::Complete(line)))
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
        assert_eq!(rx.ingest(b"C1"), (2, None));
        assert!(rx.is_partial());
        assert_eq!(
            rx.ingest(b"\nR2\n"),
            (1, Some(Line::Complete(b"C1".to_vec())))
        );
        assert_eq!(
            rx.ingest(b"R2\n"),
            (3, Some(Line::Complete(b"R2".to_vec())))
        );
        assert_eq!(rx.ingest(b"\n"), (1, Some(Line::Complete(Vec::new()))));
        assert!(!rx.is_partial());
    }

    #[test]
    fn overlong_line_keeps_its_head_and_resyncs() {
        let mut rx = LineReceiver::new(40);
        let long = format!("S7\tpriv/g/k\t{}", "x".repeat(100));
        let (used, line) = rx.ingest(long.as_bytes());
        assert_eq!((used, line), (long.len(), None));
        let (used, line) = rx.ingest(b"yyy\nC7\n");
        assert_eq!(used, 4);
        let Some(Line::TooLong(head)) = line else {
            panic!("expected TooLong, got {line:?}")
        };
        assert_eq!(head, long.as_bytes().get(..HEAD_LEN).expect("head"));
        assert_eq!(
            rx.ingest(b"C7\n"),
            (3, Some(Line::Complete(b"C7".to_vec())))
        );
    }

    #[test]
    fn line_at_exact_limit_is_accepted() {
        let line = format!("L{}\n", "k".repeat(38));
        let mut rx = LineReceiver::new(40);
        assert!(matches!(
            rx.ingest(line.as_bytes()),
            (40, Some(Line::Complete(_)))
        ));
        let line = format!("L{}\n", "k".repeat(39));
        assert!(matches!(
            rx.ingest(line.as_bytes()),
            (41, Some(Line::TooLong(_)))
        ));
    }
}
