//! The WAL's checkpoints come from the checkpoint thread, not from the writers, and
//! they keep the log bounded. Seen through the files: a checkpoint copies the log's
//! pages into the database file, so that file grows when, and only when, one ran.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Sqlite;
use super::checkpoint::{BACKSTOP_PAGES, JOURNAL_LIMIT};

/// Pages one [`write_pages`] writes: more than SQLite's default checkpoint threshold
/// (1000), fewer than the writers' backstop.
const PAGES: i64 = 1500;
/// What [`PAGES`] pages of blobs make the database file at least.
const WRITTEN: u64 = 1400 * 4096;

/// Opens the database at `path` with its checkpoint thread looking every `busy`,
/// and adds the table [`write_pages`] fills.
fn open(path: &Path, busy: Duration) -> Sqlite {
    let db = Sqlite::open_with(path, busy).expect("open");
    db.lock()
        .expect("lock")
        .execute_batch("CREATE TABLE filler (x BLOB)")
        .expect("filler table");
    db
}

/// Writes about [`PAGES`] pages of new data in one transaction (one commit).
fn write_pages(db: &Sqlite) {
    let conn = db.lock().expect("lock");
    conn.execute_batch(&format!(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {PAGES})
         INSERT INTO filler SELECT randomblob(3500) FROM c;"
    ))
    .expect("write");
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal(db: &Path) -> PathBuf {
    db.with_extension("sqlite-wal")
}

/// Waits until `done` holds, at most 10 s.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let began = Instant::now();
    while !done() {
        assert!(began.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_writer_past_a_thousand_pages_does_not_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sqlite");
    // The thread's first look is an hour away.
    let db = open(&path, Duration::from_secs(3600));
    let backstop: i64 = db
        .lock()
        .expect("lock")
        .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
        .expect("pragma");
    assert_eq!(backstop, BACKSTOP_PAGES);
    let before = size(&path);
    write_pages(&db);
    assert!(size(&wal(&path)) > WRITTEN, "the pages are in the log");
    assert_eq!(
        size(&path),
        before,
        "the database file is untouched: the writer did not checkpoint"
    );
    assert_eq!(db.checkpoint_looks(), Some(0));
}

#[test]
fn the_thread_checkpoints_and_the_log_stays_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sqlite");
    let db = open(&path, Duration::from_millis(10));
    let mut largest_wal = 0;
    for round in 1..=4 {
        write_pages(&db);
        largest_wal = largest_wal.max(size(&wal(&path)));
        wait_for("the thread copies the round's pages", || {
            size(&path) >= WRITTEN * round
        });
        // A look may still be copying; the one after the next began after it ended.
        let looks = db.checkpoint_looks().expect("a thread");
        wait_for("two more looks", || {
            db.checkpoint_looks() >= Some(looks + 2)
        });
    }
    // Each round's pages went to the start of the log again (4 rounds without a
    // restart would be 4 times as long), and a restart cuts the file back.
    assert!(
        largest_wal < 2 * WRITTEN,
        "the log restarts after each checkpoint: {largest_wal} bytes"
    );
    let conn = db.lock().expect("lock");
    conn.execute_batch("INSERT INTO filler VALUES (1)")
        .expect("a small write restarts the log");
    let limit: i64 = conn
        .pragma_query_value(None, "journal_size_limit", |r| r.get(0))
        .expect("pragma");
    assert_eq!(limit, JOURNAL_LIMIT);
    // Under the limit the restart keeps the file, so the next burst writes over it
    // instead of growing it again (cut back to 4 MB, the file would be smaller than
    // one round's pages).
    let kept = size(&wal(&path));
    assert!(
        (WRITTEN..=JOURNAL_LIMIT as u64).contains(&kept),
        "the log file is kept at its size: {kept} bytes"
    );
}
