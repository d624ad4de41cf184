//! A tiny raw IMAP client for commands the `imap` crate cannot handle.
//!
//! The `imap` crate parses every response line with `imap-proto` and ends the
//! session on anything it cannot parse. Dovecot 2.3 answers GETMETADATA with
//! an unquoted mailbox (`* METADATA INBOX (/private/comment {10}...)`), which
//! `imap-proto` 0.16 rejects, so METADATA (and any raw command a test wants to
//! see verbatim) goes through this client on its own connection instead.
//!
//! It sends one tagged command at a time, reads literals (`{n}`) inside
//! responses, and splits each untagged response into simple tokens.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One token of a response line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// An atom or number (also `NIL`, `OK`, `\Flag`, `/entry/name`...).
    Atom(String),
    /// A quoted string, unescaped.
    Quoted(String),
    /// A literal's bytes.
    Literal(Vec<u8>),
    Open,
    Close,
}

impl Token {
    /// The token as a string value; `None` for `NIL` and parentheses.
    pub fn value(&self) -> Option<String> {
        match self {
            Token::Atom(a) if a.eq_ignore_ascii_case("NIL") => None,
            Token::Atom(a) | Token::Quoted(a) => Some(a.clone()),
            Token::Literal(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Token::Open | Token::Close => None,
        }
    }
}

/// One untagged response: its text (literals inline) and its tokens.
#[derive(Clone, Debug, Default)]
pub struct Untagged {
    pub text: String,
    pub tokens: Vec<Token>,
}

/// The result of one command.
#[derive(Clone, Debug, Default)]
pub struct RawResponse {
    pub untagged: Vec<Untagged>,
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The rest of the tagged line.
    pub text: String,
}

impl RawResponse {
    /// All untagged responses as text, one per line.
    pub fn untagged_text(&self) -> String {
        self.untagged
            .iter()
            .map(|u| u.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A logged-in raw IMAP connection.
pub struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl RawImap {
    /// Connect to 127.0.0.1:`port` and LOGIN.
    pub fn login(port: u16, user: &str, password: &str) -> Result<RawImap, String> {
        let stream = connect(port)?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut imap = RawImap {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        imap.read_logical_line()?; // greeting
        let login = format!("LOGIN {} {}", quoted(user), quoted(password));
        let response = imap.command(&login)?;
        if response.status != "OK" {
            return Err(format!(
                "LOGIN {user}: {} {}",
                response.status, response.text
            ));
        }
        Ok(imap)
    }

    /// Send one command (without tag; may contain `{n+}` literals) and read
    /// everything up to its tagged reply. `Err` only for I/O problems.
    pub fn command(&mut self, command: &str) -> Result<RawResponse, String> {
        self.tag += 1;
        let tag = format!("r{}", self.tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("sending `{command}`: {e}"))?;
        let mut response = RawResponse::default();
        loop {
            let line = self.read_logical_line()?;
            if let Some(rest) = line.text.strip_prefix(&format!("{tag} ")) {
                let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
                response.status = status.to_ascii_uppercase();
                response.text = text.to_owned();
                return Ok(response);
            }
            if line.text.starts_with("* ") {
                response.untagged.push(line);
            }
        }
    }

    /// Read one response line, including any literals it contains.
    fn read_logical_line(&mut self) -> Result<Untagged, String> {
        let mut text = String::new();
        let mut raw: Vec<u8> = Vec::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("reading an IMAP response: {e}"))?;
            if n == 0 {
                return Err("IMAP connection closed".to_owned());
            }
            let trimmed = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            match literal_size(&trimmed) {
                Some(size) => {
                    let mut literal = vec![0u8; size];
                    self.reader
                        .read_exact(&mut literal)
                        .map_err(|e| format!("reading an IMAP literal: {e}"))?;
                    text.push_str(&trimmed);
                    text.push_str("\r\n");
                    text.push_str(&String::from_utf8_lossy(&literal));
                    raw.extend_from_slice(trimmed.as_bytes());
                    raw.push(0); // placeholder: the literal goes here
                    literals.push(literal);
                }
                None => {
                    text.push_str(&trimmed);
                    raw.extend_from_slice(trimmed.as_bytes());
                    let tokens = tokenize(&raw, literals);
                    return Ok(Untagged { text, tokens });
                }
            }
        }
    }
}

/// A connection to IMAP on 127.0.0.1:`port` whose reads time out after 30 s.
pub fn connect(port: u16) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connecting to IMAP 127.0.0.1:{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| format!("setting the IMAP read timeout: {e}"))?;
    Ok(stream)
}

/// `{n}` or `{n+}` at the end of a line: the size of the literal that follows.
fn literal_size(line: &str) -> Option<usize> {
    let open = line.rfind('{')?;
    let inner = line[open + 1..].strip_suffix('}')?;
    inner.trim_end_matches('+').parse().ok()
}

/// Split a response (literals replaced by a NUL placeholder) into tokens.
fn tokenize(raw: &[u8], literals: Vec<Vec<u8>>) -> Vec<Token> {
    let mut literals = literals.into_iter();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b' ' => i += 1,
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            b')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let mut value = Vec::new();
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    if raw[i] == b'\\' && i + 1 < raw.len() {
                        i += 1;
                    }
                    value.push(raw[i]);
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Quoted(String::from_utf8_lossy(&value).into_owned()));
            }
            b'{' if raw[i..].contains(&0) => {
                // "{n}" then the placeholder byte
                while i < raw.len() && raw[i] != 0 {
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Literal(literals.next().unwrap_or_default()));
            }
            _ => {
                let start = i;
                while i < raw.len() && !matches!(raw[i], b' ' | b'(' | b')') {
                    // keep "BODY[...]" together, brackets included
                    if raw[i] == b'[' {
                        while i < raw.len() && raw[i] != b']' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                let end = i.min(raw.len());
                tokens.push(Token::Atom(
                    String::from_utf8_lossy(&raw[start..end]).into_owned(),
                ));
            }
        }
    }
    tokens
}

/// An IMAP quoted string.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A non-synchronising literal (LITERAL+), for values with any characters.
pub fn literal_plus(text: &str) -> String {
    format!("{{{}+}}\r\n{text}", text.len())
}
