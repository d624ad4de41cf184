//! A minimal LMTP client (RFC 2033) for the Dovecot backend: greeting, LHLO, one
//! transaction at a time, one reply per accepted recipient after DATA.
//!
//! Every read has a timeout and every reply line a length bound; a server that stalls
//! or talks nonsense gives [`ClientError`], which the backend turns into 4xx.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

use crate::lmtp::Reply;

/// Longest reply line read from the server.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 64;

/// Why talking to the server failed. All are temporary for the message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Read or write failed, or the server closed the connection.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// No reply within the timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// A reply we could not parse, or an unexpected code.
    #[error("protocol: {0}")]
    Protocol(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open LMTP connection.
pub struct Client {
    stream: BufReader<Box<dyn Stream>>,
    timeout: Duration,
    /// The server announced 8BITMIME.
    pub eight_bit: bool,
    /// The server announced SMTPUTF8.
    pub smtputf8: bool,
}

impl Client {
    /// Connects to `addr` (a socket path starting with `/`, else `host:port`), reads the
    /// greeting and sends LHLO.
    ///
    /// # Errors
    /// Connect failure, timeout, or a non-2xx greeting/LHLO reply.
    pub async fn connect(
        addr: &str,
        lhlo: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let connect = async {
            let stream: Box<dyn Stream> = if addr.starts_with('/') {
                Box::new(UnixStream::connect(addr).await?)
            } else {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Box::new(tcp)
            };
            Ok::<_, std::io::Error>(stream)
        };
        let stream = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let mut client = Client {
            stream: BufReader::new(stream),
            timeout,
            eight_bit: false,
            smtputf8: false,
        };
        let greeting = client.read_reply_lines().await?;
        expect_ok(&greeting)?;
        client.send(format!("LHLO {lhlo}\r\n").as_bytes()).await?;
        let lines = client.read_reply_lines().await?;
        expect_ok(&lines)?;
        for line in &lines {
            let ext = line.text.to_ascii_uppercase();
            client.eight_bit |= ext == "8BITMIME";
            client.smtputf8 |= ext == "SMTPUTF8";
        }
        Ok(client)
    }

    /// Writes raw bytes.
    ///
    /// # Errors
    /// Write failure or timeout.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let write = async {
            self.stream.get_mut().write_all(bytes).await?;
            self.stream.get_mut().flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| ClientError::Timeout)??;
        Ok(())
    }

    /// Reads one (possibly multi-line) reply; returns the last line with the text of
    /// the last line.
    ///
    /// # Errors
    /// Timeout, closed connection or garbage.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let lines = self.read_reply_lines().await?;
        lines
            .into_iter()
            .last()
            .ok_or_else(|| ClientError::Protocol("empty reply".into()))
    }

    async fn read_reply_lines(&mut self) -> Result<Vec<Reply>, ClientError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let (reply, more) = parse_reply_line(&line)?;
            lines.push(reply);
            if !more {
                return Ok(lines);
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(ClientError::Protocol("reply has too many lines".into()));
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, ClientError> {
        let mut buf = Vec::new();
        let read = async {
            let mut limited = (&mut self.stream).take(MAX_REPLY_LINE as u64);
            limited.read_until(b'\n', &mut buf).await
        };
        let n = tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| ClientError::Timeout)??;
        if n == 0 {
            return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if buf.last() != Some(&b'\n') {
            return Err(ClientError::Protocol("reply line too long".into()));
        }
        Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
    }
}

use tokio::io::AsyncReadExt as _;

fn expect_ok(lines: &[Reply]) -> Result<(), ClientError> {
    match lines.last() {
        Some(r) if r.is_success() => Ok(()),
        Some(r) => Err(ClientError::Protocol(format!("server said {r}"))),
        None => Err(ClientError::Protocol("empty reply".into())),
    }
}

/// Parses `250-text` / `250 2.1.5 text` into a [`Reply`] and whether more lines follow.
pub fn parse_reply_line(line: &str) -> Result<(Reply, bool), ClientError> {
    let bad = || ClientError::Protocol(format!("bad reply line {line:?}"));
    let code: u16 = line
        .get(..3)
        .and_then(|c| c.parse().ok())
        .filter(|c| (200..600).contains(c))
        .ok_or_else(bad)?;
    let more = match line.as_bytes().get(3) {
        None | Some(b' ') => false,
        Some(b'-') => true,
        Some(_) => return Err(bad()),
    };
    let rest = line.get(4..).unwrap_or_default();
    let (enhanced, text) = split_enhanced(rest, code);
    Ok((Reply::dynamic(code, enhanced, text), more))
}

/// Splits an RFC 3463 enhanced code off the reply text when it matches the class.
fn split_enhanced(rest: &str, code: u16) -> ([u16; 3], &str) {
    let (first, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let parts: Vec<u16> = first.split('.').filter_map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [a, b, c] if first.split('.').count() == 3 && *a == code / 100 => ([*a, *b, *c], text),
        _ => ([0, 0, 0], rest),
    }
}

/// The metrics label of a failure.
impl From<&ClientError> for crate::metrics::BackendError {
    fn from(err: &ClientError) -> crate::metrics::BackendError {
        use crate::metrics::BackendError;
        match err {
            ClientError::Connect { .. } => BackendError::Connect,
            ClientError::Io(_) => BackendError::Io,
            ClientError::Timeout => BackendError::Timeout,
            ClientError::Protocol(_) => BackendError::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        let (r, more) =
            parse_reply_line("550 5.1.1 <dave@example.org> User doesn't exist: dave@example.org")
                .expect("parses");
        assert_eq!((r.code, r.enhanced, more), (550, [5, 1, 1], false));
        assert_eq!(
            r.text,
            "<dave@example.org> User doesn't exist: dave@example.org"
        );
        let (r, more) = parse_reply_line("250-PIPELINING").expect("parses");
        assert_eq!((r.code, r.text.as_ref(), more), (250, "PIPELINING", true));
        let (r, _) = parse_reply_line("451 4.3.0 <x> Temporary internal error").expect("parses");
        assert!(r.is_temporary());
        assert!(parse_reply_line("hello").is_err());
        assert!(parse_reply_line("999 no").is_err());
    }
}
