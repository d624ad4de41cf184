//! Where a message body lives while coid works on it: in memory while small, in a
//! temporary file under the spool directory once it passes the configured threshold,
//! so memory stays flat however large messages get.
//!
//! The spool is scratch space, not a queue: nothing is fsynced and files are removed
//! when the message is done. Postfix keeps the real copy until coid answers, so a
//! crash loses nothing; what a crash leaves in the spool, [`sweep`] removes when coid
//! starts again.
//!
//! Ownership: a spool file is locked (`flock(2)`, exclusive) by the process that
//! writes it, from its creation until it is removed. The kernel drops the lock when
//! that process ends, however it ends, so a file nobody holds a lock on belongs to no
//! live transaction, whichever process (`coid serve`, `coid deliver`, another coid on
//! the same directory) wrote it.

use std::fs::TryLockError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
            .prefix(FILE_PREFIX)
            .tempfile_in(&self.dir)?;
        // Held until the file is removed: tells `sweep` that a live transaction owns it.
        temp.as_file().try_lock().map_err(lock_error)?;
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

/// How every spool file's name starts; [`sweep`] looks at nothing else.
const FILE_PREFIX: &str = "msg-";

fn lock_error(err: TryLockError) -> io::Error {
    match err {
        TryLockError::Error(err) => err,
        TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
    }
}

/// What [`sweep`] found in the spool directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Files removed: no live transaction owned them.
    pub removed_files: u64,
    /// Their size in bytes.
    pub removed_bytes: u64,
    /// Files left alone: a live transaction (of any process) holds their lock, or they
    /// were written after this start began.
    pub live_files: u64,
}

/// Removes the spool files in `dir` that no live transaction owns: those nobody holds
/// a lock on (see the module header) that were last written before `started`. Call it
/// once at start, before serving. Only `msg-*` regular files directly in `dir` are
/// looked at; a file that cannot be checked or removed is logged and left.
///
/// `started` covers the moment between another process creating a file and locking
/// it: such a file is younger than this start and stays. Were it swept all the same
/// (a file created in the very microsecond the sweep starts), its transaction would
/// fail with a 4xx and Postfix would send the message again; nothing is lost.
///
/// # Errors
/// `dir` cannot be listed.
pub fn sweep(dir: &Path, started: SystemTime) -> io::Result<Swept> {
    let mut swept = Swept::default();
    for entry in std::fs::read_dir(dir)? {
        let path = match entry {
            Ok(entry) if is_spool_file(&entry) => entry.path(),
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot read the spool directory");
                continue;
            }
        };
        match sweep_file(&path, started) {
            Ok(Some(bytes)) => {
                swept.removed_files += 1;
                swept.removed_bytes += bytes;
            }
            Ok(None) => swept.live_files += 1,
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "cannot sweep a spool file");
            }
        }
    }
    Ok(swept)
}

fn is_spool_file(entry: &std::fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with(FILE_PREFIX)
        && entry.file_type().is_ok_and(|t| t.is_file())
}

/// Removes `path` if nobody owns it; its size, or `None` for a live file.
fn sweep_file(path: &Path, started: SystemTime) -> io::Result<Option<u64>> {
    let file = std::fs::File::open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(err)) => return Err(err),
    }
    let meta = file.metadata()?;
    if meta.modified()? >= started {
        return Ok(None);
    }
    std::fs::remove_file(path)?;
    Ok(Some(meta.len()))
}

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

    #[tokio::test]
    async fn sweep_removes_only_what_no_live_transaction_owns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("msg-left-by-a-crash"), [b'x'; 100]).expect("write");
        std::fs::write(path("not-a-spool-file"), b"kept").expect("write");
        std::fs::create_dir(path("msg-a-directory")).expect("mkdir");
        let mut live = SpoolWriter::new(16, dir.path());
        live.write(&[b'y'; 64]).await.expect("spill to a file");
        let live = live.finish().await.expect("finish");
        let later = SystemTime::now() + std::time::Duration::from_secs(60);

        // Nothing older than a start that has just begun: every file may be young.
        let young = sweep(dir.path(), SystemTime::UNIX_EPOCH).expect("sweep");
        assert_eq!((young.removed_files, young.live_files), (0, 2));

        let swept = sweep(dir.path(), later).expect("sweep");
        assert_eq!(
            swept,
            Swept {
                removed_files: 1,
                removed_bytes: 100,
                live_files: 1,
            }
        );
        assert!(!path("msg-left-by-a-crash").exists());
        assert!(path("not-a-spool-file").exists() && path("msg-a-directory").exists());
        let Spooled::File { temp, .. } = &live else {
            panic!("spilled to a file");
        };
        assert!(temp.path().exists(), "the live file stays");
        drop(live);
        assert_eq!(sweep(dir.path(), later).expect("sweep"), Swept::default());
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
