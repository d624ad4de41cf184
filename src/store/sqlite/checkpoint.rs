//! WAL checkpoints off the writers' path: a thread of its own, with a connection of
//! its own, copies the write-ahead log back into the database file.
//!
//! Why: by default SQLite checkpoints in the connection that commits the transaction
//! that takes the WAL past 1000 pages. That commit then also copies the log into the
//! database and, with `synchronous = NORMAL`, waits for two `fsync`s: the push hook's
//! transaction or the push worker's trip that happened to cross the line took
//! milliseconds instead of a fraction of one (`benches/push`: about a quarter of the
//! time of queueing a message's pushes, spread over the others). Here the writers'
//! own checkpoint is only a backstop ([`BACKSTOP_PAGES`], in case this thread cannot
//! keep up or cannot run), and this thread runs `PRAGMA wal_checkpoint(PASSIVE)`,
//! which never waits for a lock and never holds one a writer or a reader needs
//! (<https://sqlite.org/wal.html#ckpt>): writers go on appending while it copies, and
//! the next write after a complete checkpoint starts the log from its beginning.
//!
//! It looks every [`BUSY`] while others commit and every [`IDLE`] when they do not
//! (`PRAGMA data_version` tells), so an idle coid wakes once a second to read one
//! number and writes nothing. After a burst the log file is cut back to
//! [`JOURNAL_LIMIT`] (64 MB) at its next restart, so a burst does not leave a larger
//! file, and the next burst writes over the file kept instead of growing it.
//! Durability is unchanged: a commit is in the WAL (in the OS's cache with `NORMAL`)
//! whoever checkpoints it later.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Pages in the WAL past which a committing writer checkpoints itself: only if this
/// thread fell that far behind (64 MB with 4 KB pages), or does not run.
pub(super) const BACKSTOP_PAGES: i64 = 16_384;
/// Bytes the WAL file is cut back to when the log restarts (SQLite's
/// `journal_size_limit`). A log that restarts writes over the file from its start;
/// past the file's end every frame costs the file system new blocks and zeroed pages
/// (a frame is a page and a 24-byte header, so frames straddle pages). Cut back to
/// 4 MB (the 1000 pages a writer's own checkpoints kept it at), every burst of pushes
/// past about 90 messages (12 pages each, 8 devices) grew the file again: queueing a
/// message's 8 pushes in a burst after a first one took 120–158 µs (median 132)
/// against 96–156 µs (median 115) with the file kept (`benches/push`, 9 bursts each,
/// alternating). 64 MB keeps what 100 ms of queueing at full speed writes, so a
/// service grows its log file once, to at most this size.
pub(super) const JOURNAL_LIMIT: i64 = 64 * 1024 * 1024;
/// Between looks while the log grows.
pub(super) const BUSY: Duration = Duration::from_millis(100);
/// Between looks while it does not.
const IDLE: Duration = Duration::from_secs(1);
/// The thread's name (`ps -L`).
const NAME: &str = "coid-checkpoint";

/// What one look found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// No other connection committed since the last look (`PRAGMA data_version`
    /// unchanged): nothing to copy.
    Unchanged,
    /// A passive checkpoint ran and copied this many frames of the log.
    Checkpointed { copied: i64 },
}

/// The running checkpoint thread; dropping it stops the thread and waits for it.
pub(super) struct Checkpointer {
    /// Dropped to stop the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Looks ended so far (tests read it).
    #[cfg_attr(not(test), allow(dead_code))]
    looks: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Opens a connection of its own to the database at `path` (already in WAL mode)
    /// and starts the thread, looking every `busy` while the log grows.
    ///
    /// # Errors
    /// The connection or the thread could not be made: the caller keeps SQLite's own
    /// checkpoints.
    pub(super) fn start(path: &Path, busy: Duration) -> std::io::Result<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel();
        let looks = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&looks);
        let thread = std::thread::Builder::new()
            .name(NAME.to_owned())
            .spawn(move || run(&conn, &stopped, busy, &counted))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            looks,
        })
    }

    /// Looks ended so far, whatever they found.
    #[cfg(test)]
    pub(super) fn looks(&self) -> u64 {
        self.looks.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // It wakes at once (the channel closed); a checkpoint under way ends first.
            let _ = thread.join();
        }
    }
}

/// The thread: a look after each wait, until the channel closes.
fn run(conn: &Connection, stop: &mpsc::Receiver<()>, busy: Duration, looks: &AtomicU64) {
    let mut seen = None;
    let mut failing = false;
    let mut wait = busy;
    loop {
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let looked = look(conn, &mut seen);
        looks.fetch_add(1, Ordering::Relaxed);
        match looked {
            Ok(look) => {
                if failing {
                    tracing::info!("state store: WAL checkpoints work again");
                    failing = false;
                }
                wait = next_wait(look, busy);
            }
            // Once per failing spell: the writers' backstop checkpoints meanwhile.
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "state store: WAL checkpoint failed; writers checkpoint themselves past the backstop");
                    failing = true;
                }
                wait = IDLE;
            }
        }
    }
}

/// How long until the next look: soon after one that had something to copy, at
/// leisure after one that had not.
fn next_wait(look: Look, busy: Duration) -> Duration {
    match look {
        Look::Unchanged => IDLE.max(busy),
        Look::Checkpointed { .. } => busy,
    }
}

/// One look: a passive checkpoint if anything was committed since the version
/// `seen` (which it updates). A checkpoint that finds another one under way (`busy`)
/// is not an error: that one does the work.
fn look(conn: &Connection, seen: &mut Option<i64>) -> rusqlite::Result<Look> {
    let version: i64 = conn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
    if *seen == Some(version) {
        return Ok(Look::Unchanged);
    }
    let copied = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(2))?;
    *seen = Some(version);
    Ok(Look::Checkpointed { copied })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_soon_after_a_checkpoint_and_at_leisure_when_nothing_changed() {
        let busy = Duration::from_millis(100);
        assert_eq!(next_wait(Look::Checkpointed { copied: 30 }, busy), busy);
        assert_eq!(next_wait(Look::Checkpointed { copied: 0 }, busy), busy);
        assert_eq!(next_wait(Look::Unchanged, busy), IDLE);
        let slow = Duration::from_secs(5);
        assert_eq!(next_wait(Look::Unchanged, slow), slow);
    }

    #[test]
    fn a_look_checkpoints_only_what_others_committed_since_the_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
            .expect("setup");
        let own = Connection::open(&path).expect("open");
        let mut seen = None;
        assert!(matches!(
            look(&own, &mut seen),
            Ok(Look::Checkpointed { .. })
        ));
        assert_eq!(look(&own, &mut seen).ok(), Some(Look::Unchanged));
        writer
            .execute("INSERT INTO t VALUES (1)", [])
            .expect("insert");
        assert!(matches!(
            look(&own, &mut seen),
            Ok(Look::Checkpointed { copied }) if copied > 0
        ));
        assert_eq!(look(&own, &mut seen).ok(), Some(Look::Unchanged));
    }
}
