//! Minimal blocking SMTP and LMTP clients for tests (no TLS, no AUTH).
//!
//! [`send_smtp`] submits a message to Postfix and fails on any unexpected
//! reply code. [`send_lmtp`] talks LMTP to Dovecot or to the proxy and keeps
//! EVERY reply: one per RCPT, the reply to DATA, and after the message one
//! reply per accepted recipient (RFC 2033). Ordinary SMTP libraries read only
//! one reply after DATA, which would hide the per-recipient verdicts the
//! proxy must relay. Reads time out, so a server that sends too few replies
//! makes the test fail instead of hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long to wait for any single reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// A reply: the code and the text after it (lines of a multi-line reply
/// joined with `\n`), e.g. `(250, "2.0.0 <alice@example.org> Saved")`.
pub type Reply = (u16, String);

/// Where an LMTP server listens.
#[derive(Clone, Debug)]
pub enum LmtpTarget {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl From<SocketAddr> for LmtpTarget {
    fn from(addr: SocketAddr) -> Self {
        LmtpTarget::Tcp(addr)
    }
}

impl From<PathBuf> for LmtpTarget {
    fn from(path: PathBuf) -> Self {
        LmtpTarget::Unix(path)
    }
}

impl From<&Path> for LmtpTarget {
    fn from(path: &Path) -> Self {
        LmtpTarget::Unix(path.to_owned())
    }
}

/// Everything an LMTP server answered in one transaction.
#[derive(Clone, Debug, Default)]
pub struct LmtpOutcome {
    /// One reply per RCPT TO, in order.
    pub rcpt: Vec<Reply>,
    /// The reply to the DATA command (`None` if no recipient was accepted).
    pub data_command: Option<Reply>,
    /// One reply per accepted recipient after the message, in RCPT order.
    pub data: Vec<Reply>,
}

impl LmtpOutcome {
    /// The final verdict per recipient: the RCPT reply if it was refused,
    /// otherwise its reply after DATA.
    pub fn verdicts<'a>(&self, rcpts: &[&'a str]) -> Vec<(&'a str, Reply)> {
        let mut after_data = self.data.iter();
        rcpts
            .iter()
            .zip(&self.rcpt)
            .map(|(rcpt, reply)| {
                let verdict = if is_positive(reply.0) {
                    after_data
                        .next()
                        .cloned()
                        .unwrap_or((0, "no reply after DATA".to_owned()))
                } else {
                    reply.clone()
                };
                (*rcpt, verdict)
            })
            .collect()
    }
}

/// Deliver over LMTP and return every reply; panics on connection errors.
pub fn send_lmtp(
    target: impl Into<LmtpTarget>,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> LmtpOutcome {
    let target = target.into();
    try_send_lmtp(target.clone(), from, rcpts, message)
        .unwrap_or_else(|e| panic!("LMTP to {target:?}: {e}"))
}

/// Like [`send_lmtp`] but returns connection and protocol errors.
pub fn try_send_lmtp(
    target: impl Into<LmtpTarget>,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<LmtpOutcome, String> {
    let mut conn = Conn::open(&target.into())?;
    conn.expect("greeting", 220)?;
    conn.command("LHLO coid-test.example.net", 250)?;
    let outcome = transaction(&mut conn, from, rcpts, message)?;
    let _ = conn.exchange("QUIT");
    Ok(outcome)
}

/// Delivers each of `messages` in a transaction of its own, one after the other on
/// one connection, then QUIT, which must be answered 221: the server's session
/// survived every message. Every transaction's replies, in order.
pub fn try_send_lmtp_each(
    target: impl Into<LmtpTarget>,
    from: &str,
    rcpts: &[&str],
    messages: &[&[u8]],
) -> Result<Vec<LmtpOutcome>, String> {
    let mut conn = Conn::open(&target.into())?;
    conn.expect("greeting", 220)?;
    conn.command("LHLO coid-test.example.net", 250)?;
    let mut outcomes = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let outcome = transaction(&mut conn, from, rcpts, message)
            .map_err(|e| format!("transaction {n}: {e} (so far: {outcomes:?})"))?;
        outcomes.push(outcome);
    }
    conn.command("QUIT", 221)?;
    Ok(outcomes)
}

/// MAIL, RCPT per recipient, DATA and the message; every reply.
fn transaction(
    conn: &mut Conn,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<LmtpOutcome, String> {
    conn.command(&format!("MAIL FROM:<{from}>"), 250)?;
    let mut outcome = LmtpOutcome::default();
    for rcpt in rcpts {
        outcome
            .rcpt
            .push(conn.exchange(&format!("RCPT TO:<{rcpt}>"))?);
    }
    let accepted = outcome.rcpt.iter().filter(|r| is_positive(r.0)).count();
    if accepted > 0 {
        let reply = conn.exchange("DATA")?;
        let go_ahead = reply.0 == 354;
        outcome.data_command = Some(reply);
        if go_ahead {
            conn.send(&data_payload(message))?;
            for n in 1..=accepted {
                let reply = conn
                    .read_reply()
                    .map_err(|e| format!("per-recipient reply {n} of {accepted}: {e}"))?;
                outcome.data.push(reply);
            }
        }
    }
    Ok(outcome)
}

/// Submit a message over SMTP to 127.0.0.1:`port`.
/// `Err` describes the first unexpected reply (or I/O error).
pub fn send_smtp(port: u16, from: &str, rcpts: &[&str], message: &[u8]) -> Result<(), String> {
    send_smtp_with(port, from, "", rcpts, message)
}

/// Like [`send_smtp`], with ESMTP parameters on MAIL (e.g. `" BODY=8BITMIME SMTPUTF8"`).
pub fn send_smtp_with(
    port: u16,
    from: &str,
    mail_params: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = Conn::open(&LmtpTarget::Tcp(addr))?;
    conn.expect("greeting", 220)?;
    conn.command("EHLO coid-test.example.net", 250)?;
    conn.command(&format!("MAIL FROM:<{from}>{mail_params}"), 250)?;
    for rcpt in rcpts {
        conn.command(&format!("RCPT TO:<{rcpt}>"), 250)?;
    }
    conn.command("DATA", 354)?;
    conn.send(&data_payload(message))?;
    conn.expect("end of DATA", 250)?;
    conn.command("QUIT", 221)?;
    Ok(())
}

/// The message for the DATA phase: CRLF line ends, dot-stuffed, ending in
/// `CRLF.CRLF`.
pub fn data_payload(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &byte in message {
        if byte == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
        prev = byte;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn is_positive(code: u16) -> bool {
    (200..300).contains(&code)
}

/// A line-oriented connection over TCP or a unix socket.
struct Conn {
    reader: BufReader<Box<dyn Read>>,
    writer: Box<dyn Write>,
}

impl Conn {
    fn open(target: &LmtpTarget) -> Result<Conn, String> {
        let timeout = Some(REPLY_TIMEOUT);
        match target {
            LmtpTarget::Tcp(addr) => {
                let stream =
                    TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
                stream
                    .set_read_timeout(timeout)
                    .map_err(|e| e.to_string())?;
                let writer = stream.try_clone().map_err(|e| e.to_string())?;
                Ok(Conn::new(Box::new(stream), Box::new(writer)))
            }
            LmtpTarget::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .map_err(|e| format!("connecting to {}: {e}", path.display()))?;
                stream
                    .set_read_timeout(timeout)
                    .map_err(|e| e.to_string())?;
                let writer = stream.try_clone().map_err(|e| e.to_string())?;
                Ok(Conn::new(Box::new(stream), Box::new(writer)))
            }
        }
    }

    fn new(reader: Box<dyn Read>, writer: Box<dyn Write>) -> Conn {
        Conn {
            reader: BufReader::new(reader),
            writer,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("sending: {e}"))
    }

    /// Send one command line and read its reply, whatever the code.
    fn exchange(&mut self, line: &str) -> Result<Reply, String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.read_reply()
            .map_err(|e| format!("after `{line}`: {e}"))
    }

    /// Send one command line and require a reply code.
    fn command(&mut self, line: &str, want: u16) -> Result<Reply, String> {
        let reply = self.exchange(line)?;
        check(&reply, want, line)
    }

    /// Read a reply and require a reply code.
    fn expect(&mut self, what: &str, want: u16) -> Result<Reply, String> {
        let reply = self.read_reply().map_err(|e| format!("{what}: {e}"))?;
        check(&reply, want, what)
    }

    /// Read one (possibly multi-line) reply.
    fn read_reply(&mut self) -> Result<Reply, String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("reading a reply: {e}"))?;
            if n == 0 {
                return Err(format!("connection closed; reply so far: {lines:?}"));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| format!("malformed reply line {line:?}"))?;
            lines.push(line.get(4..).unwrap_or_default().to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, lines.join("\n")));
            }
        }
    }
}

fn check(reply: &Reply, want: u16, what: &str) -> Result<Reply, String> {
    if reply.0 == want {
        Ok(reply.clone())
    } else {
        Err(format!(
            "`{what}`: expected {want}, got {} {}",
            reply.0, reply.1
        ))
    }
}
