//! Where a message body lives while coid works on it: in memory while small, in a
//! temporary file under the spool directory once it passes the configured threshold,
//! so memory stays flat however large messages get.
//!
//! The spool is scratch space, not a queue: nothing is fsynced and files are removed
//! when the message is done (or coid restarts). Postfix keeps the real copy until
//! coid answers, so a crash loses nothing.

use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

/// Collects a body as it arrives.
pub struct SpoolWriter {
    threshold: usize,
    dir: PathBuf,
    memory: Vec<u8>,
    file: Option<(NamedTempFile, BufWriter<tokio::fs::File>)>,
    len: u64,
}

impl SpoolWriter {
    /// Bodies up to `threshold` bytes stay in memory; larger ones go to `dir`.
    pub fn new(threshold: usize, dir: &Path) -> Self {
        Self {
            threshold,
            dir: dir.to_owned(),
            memory: Vec::new(),
            file: None,
            len: 0,
        }
    }

    /// Appends body bytes.
    ///
    /// # Errors
    /// Creating or writing the spool file failed (disk full, permissions).
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        if let Some((_, writer)) = self.file.as_mut() {
            return writer.write_all(bytes).await;
        }
        if self.memory.len() + bytes.len() <= self.threshold {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        let temp = tempfile::Builder::new()
            .prefix("msg-")
            .tempfile_in(&self.dir)?;
        let mut writer =
            BufWriter::with_capacity(64 * 1024, tokio::fs::File::from_std(temp.reopen()?));
        writer.write_all(&std::mem::take(&mut self.memory)).await?;
        writer.write_all(bytes).await?;
        self.file = Some((temp, writer));
        Ok(())
    }

    /// Finishes the body.
    ///
    /// # Errors
    /// Flushing the spool file failed.
    pub async fn finish(self) -> io::Result<Spooled> {
        match self.file {
            None => Ok(Spooled::Memory(self.memory)),
            Some((temp, mut writer)) => {
                writer.flush().await?;
                Ok(Spooled::File {
                    temp,
                    len: self.len,
                })
            }
        }
    }
}

/// A complete message body.
pub enum Spooled {
    /// Small message held in memory.
    Memory(Vec<u8>),
    /// Large message in a temporary file (removed on drop).
    File {
        /// The file; deleted when dropped.
        temp: NamedTempFile,
        /// Its length in bytes.
        len: u64,
    },
}

impl Spooled {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(bytes) => bytes.len() as u64,
            Spooled::File { len, .. } => *len,
        }
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole message, if it is held in memory.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Spooled::Memory(bytes) => Some(bytes),
            Spooled::File { .. } => None,
        }
    }

    /// The header section (through the blank line), at most `max` bytes of it.
    ///
    /// # Errors
    /// Reading the spool file failed.
    pub async fn header_block(&self, max: usize) -> io::Result<Vec<u8>> {
        match self {
            Spooled::Memory(bytes) => {
                // Cut before copying: the header is usually a small part of `max`.
                let window = bytes.get(..max.min(bytes.len())).unwrap_or_default();
                let end = header_end(window).unwrap_or(window.len());
                Ok(window.get(..end).unwrap_or_default().to_vec())
            }
            Spooled::File { temp, .. } => {
                // In steps, so a short header costs one small read, not `max` bytes.
                let file = tokio::fs::File::open(temp.path()).await?;
                let mut limited = file.take(max as u64);
                let mut head = Vec::with_capacity(HEADER_STEP);
                loop {
                    let before = head.len();
                    (&mut limited)
                        .take(HEADER_STEP as u64)
                        .read_to_end(&mut head)
                        .await?;
                    if let Some(end) = header_end(&head) {
                        head.truncate(end);
                        return Ok(head);
                    }
                    if head.len() == before {
                        return Ok(head);
                    }
                }
            }
        }
    }

    /// A reader over the whole message from its first byte.
    ///
    /// # Errors
    /// Opening the spool file failed.
    pub async fn reader(&self) -> io::Result<Box<dyn AsyncRead + Send + Unpin + '_>> {
        match self {
            Spooled::Memory(bytes) => Ok(Box::new(&bytes[..])),
            Spooled::File { temp, .. } => {
                let mut file = tokio::fs::File::open(temp.path()).await?;
                file.rewind().await?;
                Ok(Box::new(tokio::io::BufReader::with_capacity(
                    64 * 1024,
                    file,
                )))
            }
        }
    }
}

/// Bytes read from a spool file per step while looking for the end of the header.
const HEADER_STEP: usize = 16 * 1024;

/// Offset just past the empty line ending the header section (CRLF CRLF or LF LF),
/// found in one pass that stops there.
pub fn header_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', bytes).find_map(|i| {
        let rest = bytes.get(i + 1..)?;
        let crlf_line = i > 0 && bytes.get(i - 1) == Some(&b'\r');
        if rest.starts_with(b"\n") {
            Some(i + 2)
        } else if crlf_line && rest.starts_with(b"\r\n") {
            Some(i + 3)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_bodies_stay_in_memory_large_ones_spill() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut small = SpoolWriter::new(16, dir.path());
        small.write(b"Subject: a\r\n\r\nhi").await.expect("write");
        let small = small.finish().await.expect("finish");
        assert!(small.as_bytes().is_some());
        assert_eq!(
            small.header_block(1000).await.expect("head"),
            b"Subject: a\r\n\r\n"
        );
        assert_eq!(small.header_block(5).await.expect("head"), b"Subjec"[..5]);

        let mut big = SpoolWriter::new(16, dir.path());
        big.write(b"Subject: a\r\n\r\n").await.expect("write");
        big.write(&[b'x'; 100]).await.expect("write");
        let big = big.finish().await.expect("finish");
        assert!(big.as_bytes().is_none());
        assert_eq!(big.len(), 114);
        assert_eq!(
            big.header_block(1000).await.expect("head"),
            b"Subject: a\r\n\r\n"
        );
        let mut all = Vec::new();
        big.reader()
            .await
            .expect("reader")
            .read_to_end(&mut all)
            .await
            .expect("read");
        assert_eq!(all.len(), 114);
    }

    #[tokio::test]
    async fn a_spooled_header_longer_than_one_read_step_is_found_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = format!("X-Long: {}\r\n", "y".repeat(HEADER_STEP + 100));
        let mut spool = SpoolWriter::new(16, dir.path());
        spool.write(long.as_bytes()).await.expect("write");
        spool.write(b"Subject: s\r\n\r\nbody").await.expect("write");
        let spool = spool.finish().await.expect("finish");
        let head = spool.header_block(256 * 1024).await.expect("head");
        assert_eq!(head.len(), long.len() + 14);
        assert!(head.ends_with(b"Subject: s\r\n\r\n"));
        let capped = spool.header_block(HEADER_STEP + 7).await.expect("head");
        assert_eq!(capped.len(), HEADER_STEP + 7, "never more than max");
    }

    #[test]
    fn the_header_ends_at_the_first_empty_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody\n\n"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody\r\n\r\n"), Some(6));
        assert_eq!(header_end(b"A: b\nC: d\r\n\r\n"), Some(13));
        assert_eq!(header_end(b"\r\n\r\n"), Some(4));
        assert_eq!(
            header_end(b"A: b\n\r\nx"),
            None,
            "LF then CRLF is not CRLF CRLF"
        );
        assert_eq!(header_end(b"A: b\r\n"), None);
    }
}
