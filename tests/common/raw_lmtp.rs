//! A raw LMTP client for tests that stop a transaction where they choose (in the
//! middle of DATA, before the header section is complete), which a whole-message
//! client like `super::smtp::send_lmtp` cannot do.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a reply may take.
const WAIT: Duration = Duration::from_secs(30);

/// A raw LMTP client that stops where the test says.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects to coid and reads its greeting.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connecting to coid");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("read timeout on the client");
        let writer = stream.try_clone().expect("clone");
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
        };
        assert_eq!(client.reply(), 220);
        client
    }

    /// The code of the next reply (multi-line replies read whole).
    pub fn reply(&mut self) -> u16 {
        let line = self.line();
        if line.as_bytes().get(3) == Some(&b'-') {
            return self.reply();
        }
        line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// The next reply line; empty once coid closed the connection.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.reader.read_line(&mut line);
        line
    }

    /// Sends one command line; the code of its reply.
    pub fn command(&mut self, command: &str) -> u16 {
        self.send(format!("{command}\r\n").as_bytes());
        self.reply()
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("writing to coid");
    }

    /// LHLO, MAIL, RCPT alice and DATA, each answered as it must be.
    pub fn start_data(&mut self) {
        assert_eq!(self.command("LHLO client.example.net"), 250);
        assert_eq!(self.command("MAIL FROM:<bob@example.net>"), 250);
        assert_eq!(self.command("RCPT TO:<alice@example.org>"), 250);
        assert_eq!(self.command("DATA"), 354);
    }
}
