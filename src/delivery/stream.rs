//! Sans-IO byte transforms applied while a message streams to the store:
//! - [`HeaderFilter`] removes coid's trusted `X-Coid-*` fields (folded lines included)
//!   from the header section, however long it is;
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

/// Longest field name looked at; a longer one is not coid's and passes.
const MAX_NAME: usize = 256;

/// Drops header fields whose name starts with [`TRUSTED_HEADER_PREFIX`].
#[derive(Debug, Default)]
pub struct HeaderFilter {
    body: bool,
    mid_line: bool,
    dropping: bool,
    name: Vec<u8>,
    deciding: bool,
}

impl HeaderFilter {
    /// A filter at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    fn decide(&mut self, out: &mut Vec<u8>) {
        let prefix = TRUSTED_HEADER_PREFIX.as_bytes();
        self.dropping = self.name.len() >= prefix.len()
            && self
                .name
                .get(..prefix.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(prefix));
        if !self.dropping {
            out.extend_from_slice(&self.name);
        }
        self.name.clear();
        self.deciding = false;
    }

    fn push_header_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if !self.mid_line {
            match b {
                b' ' | b'\t' => {}
                b'\r' | b'\n' => {
                    self.dropping = false;
                    out.push(b);
                    if b == b'\n' {
                        self.body = true;
                    }
                    return;
                }
                _ => {
                    self.deciding = true;
                    self.dropping = false;
                }
            }
            self.mid_line = true;
        }
        if self.deciding {
            self.name.push(b);
            if b == b':' || b == b'\n' || self.name.len() >= MAX_NAME {
                self.decide(out);
            }
        } else if !self.dropping {
            out.push(b);
        }
        if b == b'\n' {
            self.mid_line = false;
        }
    }
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
        if self.deciding {
            self.decide(out);
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
