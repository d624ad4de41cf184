//! Reading Postfix's maillog while a benchmark run delivers: every delivery attempt
//! logs one line per recipient with `status=sent|deferred|bounced` and
//! `delay=T, delays=a/b/c/d` (seconds, two significant digits; the bench sets
//! `delay_logging_resolution_limit = 6` so that values under 10 ms are not logged as
//! 0). `a` is before the queue manager, `b` in it (waiting for a
//! delivery slot), `c` connection setup, `d` transmission to the LMTP next hop until
//! its final reply, so for the proxied path `d` includes coid's hop to Dovecot.
//! The file is read incrementally, so polling it every few ms stays cheap.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Delays of one delivered recipient, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Delays {
    /// `delay=`: from arrival to the final reply.
    pub total: f64,
    /// `d` of `delays=a/b/c/d`: transmission to the next hop.
    pub transmission: f64,
}

/// The maillog read so far.
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Delays of each `status=sent` line.
    pub sent: Vec<Delays>,
    /// Every other delivery status line (deferred, bounced, ...), verbatim.
    pub failed: Vec<String>,
}

impl LogTail {
    /// Starts reading `path` at its current end (earlier lines are not counted).
    pub fn from_end(path: PathBuf) -> LogTail {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogTail {
            path,
            offset,
            partial: Vec::new(),
            sent: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Reads what was appended since the last call; returns the number of sent lines.
    pub fn poll(&mut self) -> usize {
        let mut new = Vec::new();
        if let Ok(mut file) = std::fs::File::open(&self.path)
            && file.seek(SeekFrom::Start(self.offset)).is_ok()
            && let Ok(n) = file.read_to_end(&mut new)
        {
            self.offset += n as u64;
        }
        self.partial.extend_from_slice(&new);
        // Only complete lines; the rest waits for the next poll.
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return self.sent.len();
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        for line in String::from_utf8_lossy(&complete).lines() {
            match parse_status(line) {
                Some(Ok(delays)) => self.sent.push(delays),
                Some(Err(())) => self.failed.push(line.to_owned()),
                None => {}
            }
        }
        self.sent.len()
    }
}

/// `Some(Ok)` for a `status=sent` line with its delays, `Some(Err)` for any other
/// delivery status (or a sent line without readable delays), `None` for other lines.
fn parse_status(line: &str) -> Option<Result<Delays, ()>> {
    let status = line.split(" status=").nth(1)?;
    if !status.starts_with("sent ") {
        return Some(Err(()));
    }
    let field = |name: &str| -> Option<&str> {
        let rest = line.split(&format!(" {name}=")).nth(1)?;
        rest.split(',').next()
    };
    let total = field("delay").and_then(|v| v.parse().ok());
    let transmission = field("delays")
        .and_then(|v| v.split('/').nth(3))
        .and_then(|v| v.parse().ok());
    Some(match (total, transmission) {
        (Some(total), Some(transmission)) => Ok(Delays {
            total,
            transmission,
        }),
        _ => Err(()),
    })
}
