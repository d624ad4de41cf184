//! Sans-IO byte transforms applied while a message streams to the store:
//! - [`HeaderFilter`] removes coid's trusted `X-Coid-*` fields (folded lines included)
//!   from the header section, however long it is, and a continuation line at the very
//!   top, which would otherwise continue the trusted field coid puts in front;
//! - [`DotStuffer`] encodes DATA for the LMTP client side (RFC 5321 §4.5.2): every line
//!   starting with `.` gets a second dot, a bare LF becomes CRLF so no downstream can
//!   see a line break that coid did not (SMTP smuggling), and the `.` terminator ends it;
//! - [`LfLines`] turns CRLF into LF for Maildir files.

use super::TRUSTED_HEADER_PREFIX;

/// A streaming byte transform.
pub trait Transform {
    /// Transforms `input`, appending to `out`.
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>);
    /// Flushes what is held back at the end of the stream.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// Longest field name looked at; a longer one is decided on its first bytes.
const MAX_NAME: usize = 256;

/// Where [`HeaderFilter`] is within the current line of the header section.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the first byte of a line.
    #[default]
    Start,
    /// After a CR that began the line: the empty line that ends the header section if
    /// an LF follows, else the first byte of a field name.
    StartCr,
    /// Reading a field name, held back until it is known.
    Name,
    /// Passing the rest of the line on.
    Pass,
    /// Dropping the rest of the line.
    Drop,
}

/// Drops header fields whose name starts with [`TRUSTED_HEADER_PREFIX`] (any case),
/// lines with an empty name, with their continuation lines, and continuation lines
/// that continue no field.
///
/// Lines are read the way the store reads them (Dovecot's `message-header-parser.c`),
/// not by RFC 5322 alone, so that nothing the store takes for a field can slip past:
/// a line ends at LF (a CR before it belongs to the line end, a lone CR anywhere else
/// is an ordinary byte); only an empty line (`LF` or `CR LF`) ends the header section,
/// so a line that is just `CR CR LF` does not; a line that starts with a space or a
/// tab continues the field before it (RFC 5322 §2.2.3); the name is what comes before
/// the colon, or the whole line when there is none.
///
/// A continuation line at the very top continues no field; the filter drops it, so the
/// output never starts with one. coid's trusted fields go in front of this output
/// (`super::route`), and nothing after them can continue them.
#[derive(Debug)]
pub struct HeaderFilter {
    body: bool,
    line: Line,
    /// Whether the field that continuation lines would continue is passed on; false
    /// at the top, where there is no such field.
    field_kept: bool,
    name: Vec<u8>,
}

impl Default for HeaderFilter {
    fn default() -> Self {
        Self {
            body: false,
            line: Line::Start,
            field_kept: false,
            name: Vec::new(),
        }
    }
}

impl HeaderFilter {
    /// A filter at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    fn push_header_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.line {
            Line::Start => match b {
                b'\n' => self.end_of_header(b"\n", out),
                b'\r' => self.line = Line::StartCr,
                b' ' | b'\t' if self.field_kept => {
                    out.push(b);
                    self.line = Line::Pass;
                }
                b' ' | b'\t' => self.line = Line::Drop,
                _ => self.push_name(b, out),
            },
            Line::StartCr if b == b'\n' => self.end_of_header(b"\r\n", out),
            Line::StartCr => {
                self.name.push(b'\r');
                self.push_name(b, out);
            }
            Line::Name => self.push_name(b, out),
            Line::Pass => {
                out.push(b);
                if b == b'\n' {
                    self.line = Line::Start;
                }
            }
            Line::Drop => {
                if b == b'\n' {
                    self.line = Line::Start;
                }
            }
        }
    }

    fn end_of_header(&mut self, blank_line: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(blank_line);
        self.line = Line::Start;
        self.body = true;
    }

    fn push_name(&mut self, b: u8, out: &mut Vec<u8>) {
        self.name.push(b);
        self.line = Line::Name;
        if b == b':' || b == b'\n' || self.name.len() >= MAX_NAME {
            self.decide(out);
        }
    }

    /// Keeps or drops the field whose name (or first [`MAX_NAME`] bytes) was read.
    /// A line without a colon (or a name longer than [`MAX_NAME`]) is passed on, but
    /// what would continue it is dropped:
    /// readers disagree on whether such a line is a field (Dovecot) or not
    /// (mail-parser, which would read a folded `X-Coid-…` under it as a field).
    fn decide(&mut self, out: &mut Vec<u8>) {
        let kept = !is_trusted(&self.name) && !is_nameless(&self.name) && !has_lone_cr(&self.name);
        if kept {
            out.extend_from_slice(&self.name);
        }
        let whole_line = self.name.last() == Some(&b'\n');
        // Only a name ended by its colon is a field that may be continued (a name
        // cut at MAX_NAME bytes is no sane field either).
        self.field_kept = kept && self.name.last() == Some(&b':');
        self.line = if whole_line {
            Line::Start
        } else if kept {
            Line::Pass
        } else {
            Line::Drop
        };
        self.name.clear();
    }
}

/// A line whose name is empty (it starts with the colon, after any CRs): no field at
/// all, and readers disagree on it: mail-parser skips the colons and reads a name
/// after them (`::X-Coid-Folder: …` is an `X-Coid-Folder` field to it; found by
/// `fuzz/rewrite`). Such a line is dropped, with what would continue it.
fn is_nameless(name: &[u8]) -> bool {
    name.iter().find(|&&b| b != b'\r') == Some(&b':')
}

/// A name with a CR inside it: Dovecot reads one field, mail-parser takes the CR for a
/// line end and reads another field after it (`Foo\r X-Coid-Create: yes`; found by
/// `fuzz/rewrite`). No field name has a CR (RFC 5322 §2.2: printable ASCII), so such a
/// line is dropped, with what would continue it.
///
/// Only a CR before other text counts: CRs before the line's LF are part of its end.
fn has_lone_cr(name: &[u8]) -> bool {
    name.windows(2)
        .any(|w| w[0] == b'\r' && w[1] != b'\r' && w[1] != b'\n')
}

/// A name that is, or may turn out to be, one of coid's trusted fields. The store
/// cuts a name at a NUL and trims blanks before the colon, which only shortens it, so
/// whatever it reads as `X-Coid-…` has the prefix here too.
fn is_trusted(name: &[u8]) -> bool {
    // Anywhere in the name, not only at its start: readers skip different leading
    // bytes (CRs, colons, blanks, control characters such as a form feed, all found
    // by `fuzz/rewrite`), so whatever any of them reads as `X-Coid-…` has the prefix
    // somewhere in what Dovecot calls the name.
    let prefix = TRUSTED_HEADER_PREFIX.as_bytes();
    name.windows(prefix.len())
        .any(|w| w.eq_ignore_ascii_case(prefix))
}

impl Transform for HeaderFilter {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        while let Some((&b, tail)) = rest.split_first() {
            if self.body {
                out.extend_from_slice(rest);
                return;
            }
            self.push_header_byte(b, out);
            rest = tail;
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self.line {
            Line::StartCr => out.push(b'\r'),
            Line::Name => self.decide(out),
            Line::Start | Line::Pass | Line::Drop => {}
        }
    }
}

/// Dot-stuffs and normalises line ends for LMTP DATA.
#[derive(Debug)]
pub struct DotStuffer {
    line_start: bool,
    last_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self {
            line_start: true,
            last_cr: false,
        }
    }
}

impl Transform for DotStuffer {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 16);
        let mut rest = input;
        while !rest.is_empty() {
            if self.line_start && rest.first() == Some(&b'.') {
                out.push(b'.');
            }
            let (line, tail) = match memchr::memchr(b'\n', rest) {
                Some(pos) => rest.split_at(pos + 1),
                None => (rest, &[][..]),
            };
            let ends_with_lf = line.last() == Some(&b'\n');
            let content = if ends_with_lf {
                line.get(..line.len() - 1).unwrap_or_default()
            } else {
                line
            };
            out.extend_from_slice(content);
            if let Some(&last) = content.last() {
                self.last_cr = last == b'\r';
            }
            if ends_with_lf {
                if !self.last_cr {
                    out.push(b'\r');
                }
                out.push(b'\n');
                self.last_cr = false;
            }
            self.line_start = ends_with_lf;
            rest = tail;
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.line_start {
            if !self.last_cr {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// CRLF → LF.
#[derive(Debug, Default)]
pub struct LfLines {
    held_cr: bool,
}

impl Transform for LfLines {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        let mut rest = input;
        if std::mem::take(&mut self.held_cr) && rest.first() != Some(&b'\n') {
            out.push(b'\r');
        }
        while let Some(pos) = memchr::memchr(b'\r', rest) {
            let (head, tail) = rest.split_at(pos);
            out.extend_from_slice(head);
            match tail.get(1) {
                Some(b'\n') => {}
                Some(_) => out.push(b'\r'),
                None => self.held_cr = true,
            }
            rest = tail.get(1..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.held_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `n` bytes.
    fn run(t: &mut dyn Transform, input: &[u8], n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in input.chunks(n.max(1)) {
            t.push(chunk, &mut out);
        }
        t.finish(&mut out);
        out
    }

    #[test]
    fn header_filter_drops_trusted_fields_with_folds() {
        let input = b"From: a\r\nX-Coid-Folder: evil\r\n\tfolded\r\nx-coid-flags: \\Seen\r\nX-Coidless: ok\r\nSubject: s\r\n\r\nX-Coid-Folder: body stays\r\n";
        let want = b"From: a\r\nX-Coidless: ok\r\nSubject: s\r\n\r\nX-Coid-Folder: body stays\r\n";
        for n in [1, 2, 3, 7, 1000] {
            assert_eq!(run(&mut HeaderFilter::new(), input, n), want, "chunk {n}");
        }
    }

    #[test]
    fn header_filter_passes_headers_without_body() {
        assert_eq!(
            run(&mut HeaderFilter::new(), b"Subject: x", 3),
            b"Subject: x"
        );
    }

    #[test]
    fn dot_stuffer_stuffs_and_normalises() {
        let input = b".lead\r\nmid\n.\nend\r\n..two";
        let want = b"..lead\r\nmid\r\n..\r\nend\r\n...two\r\n.\r\n";
        for n in [1, 2, 5, 1000] {
            assert_eq!(run(&mut DotStuffer::default(), input, n), want, "chunk {n}");
        }
    }

    #[test]
    fn dot_stuffer_smuggling_vectors_cannot_end_data() {
        for vector in [
            &b"a\n.\nMAIL FROM:<x>\n"[..],
            b"a\r.\r\nb",
            b"a\r\n.\rX\r\n",
        ] {
            let out = run(&mut DotStuffer::default(), vector, 1);
            let body = out.get(..out.len() - 3).expect("terminator");
            assert!(
                memchr::memmem::find(body, b"\r\n.\r\n").is_none(),
                "{vector:?} -> {out:?}"
            );
            assert!(out.ends_with(b"\r\n.\r\n"));
        }
    }

    #[test]
    fn lf_lines_converts_crlf_only() {
        let input = b"a\r\nb\rc\r\n\r";
        for n in [1, 2, 1000] {
            assert_eq!(
                run(&mut LfLines::default(), input, n),
                b"a\nb\rc\n\r",
                "chunk {n}"
            );
        }
    }
}

#[cfg(test)]
#[path = "header_filter_tests.rs"]
mod header_filter_tests;
