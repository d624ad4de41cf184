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
                let mut file = tokio::fs::File::open(temp.path()).await?;
                let mut head = Vec::with_capacity(max.min(64 * 1024));
                (&mut file).take(max as u64).read_to_end(&mut head).await?;
                if let Some(end) = header_end(&head) {
                    head.truncate(end);
                }
                Ok(head)
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

/// Cuts `head` after the blank line that ends the header section, if it has one.
/// Offset just past the empty line ending the header section (CRLF CRLF or LF LF).
pub fn header_end(bytes: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(bytes, b"\r\n\r\n").map(|p| p + 4);
    let lf = memchr::memmem::find(bytes, b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
}
