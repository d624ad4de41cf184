//! The SQLite engine, coid's default: one embedded database (WAL) under the state
//! directory, one connection behind a mutex, for a single coid host, and a thread
//! that checkpoints the WAL so that no writer waits for it (`checkpoint`). The schema grows
//! by numbered migrations (`schema`, `PRAGMA user_version`), never losing data; a
//! database written by a later coid is refused at open
//! ([`StoreError::SchemaTooNew`]).
//!
//! The files here hold the SQL of each part of the store; the value types they read
//! and write are the store's (`crate::store`), shared with the other engines.

mod checkpoint;
mod coi;
mod commit;
mod dict;
mod engine;
mod queue;
mod queue_rows;
pub(super) mod schema;
mod secrets;
mod settle;
mod subscriptions;
mod targets;
mod tokens;
mod transfer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use schema::MIGRATIONS;

/// Prepared statements kept per connection (each a few KB).
const STATEMENT_CACHE: usize = 128;

/// The SQLite engine.
pub struct Sqlite {
    /// Held for its `Drop`, which comes first: its thread stops before the writer's
    /// connection closes (the last one to close checkpoints what is left, as SQLite
    /// does).
    #[cfg_attr(not(test), allow(dead_code))]
    checkpointer: Option<checkpoint::Checkpointer>,
    conn: Mutex<Connection>,
    /// A read-only connection that only reads the caches' counters, so that read
    /// never waits for `conn`, and its latest read of them.
    probe: Mutex<targets::Probe>,
    path: PathBuf,
}

impl StoreError {
    /// `err` about the database at `path`: [`StoreError::ReadOnly`] when SQLite could
    /// not write or open it for writing, [`StoreError::Sqlite`] otherwise.
    fn from_sqlite(path: &Path, err: rusqlite::Error) -> StoreError {
        match err {
            rusqlite::Error::SqliteFailure(e, msg)
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen
                ) =>
            {
                StoreError::ReadOnly {
                    path: path.display().to_string(),
                    cause: msg.unwrap_or_else(|| e.to_string()),
                }
            }
            other => StoreError::Sqlite(other),
        }
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`, in WAL mode, and migrates it.
    ///
    /// # Errors
    /// The directory or database cannot be created or migrated, or it was written by
    /// a later coid.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        Sqlite::open_with(path, checkpoint::BUSY)
    }

    /// [`Sqlite::open`], its checkpoint thread looking every `busy` while the log
    /// grows.
    fn open_with(path: &Path, busy: std::time::Duration) -> Result<Sqlite, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let named = |err| StoreError::from_sqlite(path, err);
        let mut conn = Connection::open(path).map_err(named)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(named)?;
        // A transaction takes the write lock as it begins, waiting for it (the busy
        // timeout above) if another process holds it. A deferred one that read
        // first and wrote then got SQLITE_BUSY at once instead: SQLite calls no busy
        // handler for a read transaction that turns into a write one, as it could
        // deadlock. A worker round failed that way while `coid deliver` or `coid
        // user` wrote, and the pushes it had sent were sent again after their lease.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(named)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(named)?;
        // Every statement coid runs more than once is prepared through the cache;
        // rusqlite keeps 16 by default, fewer than the delivery path, the push hook
        // and the push worker use together, so they evicted each other and SQLite
        // compiled them again (a few per cent of coid's CPU with Web Push on).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Plans fixed at prepare time (the query planner stability guarantee):
        // otherwise SQLite compiles a cached statement again whenever a parameter
        // its plan looked at is bound to a new value, and the push claim, whose
        // `now` changes every time, was parsed and planned at every trip (a tenth of
        // coid's CPU with push on; `queue_rows::tests`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(named)?;
        migrate(&mut conn).map_err(|err| match err {
            StoreError::Sqlite(err) => named(err),
            other => other,
        })?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let probe = Connection::open_with_flags(path, flags).map_err(named)?;
        let checkpointer = checkpoints_apart(&conn, path, busy).map_err(named)?;
        Ok(Sqlite {
            checkpointer,
            conn: Mutex::new(conn),
            probe: Mutex::new(targets::Probe::new(probe)),
            path: path.to_owned(),
        })
    }

    /// Looks the checkpoint thread ended; `None`: there is no such thread (it could
    /// not start).
    #[cfg(test)]
    fn checkpoint_looks(&self) -> Option<u64> {
        self.checkpointer
            .as_ref()
            .map(checkpoint::Checkpointer::looks)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Checks that the database can be written: SQLite opens a file it may not write
    /// read-only without a word, and every write would then fail later, one by one.
    /// A write lock held by another process is not a failure here.
    fn check_writable(&self) -> Result<(), StoreError> {
        let conn = self.lock()?;
        let read_only = |cause: String| StoreError::ReadOnly {
            path: self.path.display().to_string(),
            cause,
        };
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(read_only("opened read-only".into()));
        }
        // A write transaction that writes nothing: SQLite refuses it on a read-only
        // file, directory (no -wal/-shm) or file system.
        match conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
            Ok(()) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                Ok(())
            }
            Err(err) => Err(StoreError::from_sqlite(&self.path, err)),
        }
    }
}

/// Starts the checkpoint thread for the database at `path` (looking every `busy`
/// while the log grows) and leaves the writer `conn` only the backstop of its own
/// checkpoints; if the thread cannot start, the writer keeps SQLite's default ones
/// and this says so.
///
/// # Errors
/// The writer's pragmas could not be set.
fn checkpoints_apart(
    conn: &Connection,
    path: &Path,
    busy: std::time::Duration,
) -> rusqlite::Result<Option<checkpoint::Checkpointer>> {
    match checkpoint::Checkpointer::start(path, busy) {
        Ok(checkpointer) => {
            conn.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
            conn.pragma_update(None, "journal_size_limit", checkpoint::JOURNAL_LIMIT)?;
            Ok(Some(checkpointer))
        }
        Err(err) => {
            tracing::warn!(error = %err, "state store: no checkpoint thread; writers checkpoint the WAL themselves");
            Ok(None)
        }
    }
}

/// Brings the schema up to the version this coid writes, one migration per
/// transaction.
///
/// Another process may migrate the same file at the same time (`coid serve` binds its
/// sockets before it opens the store, so an admin command started as soon as it
/// listens can meet it half way): each step reads the version again inside its write
/// transaction. An up-to-date database takes no write lock at all. A database of a
/// later coid is refused ([`StoreError::SchemaTooNew`]) and left as it is.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known,
        });
    }
    for (done, sql) in MIGRATIONS.iter().enumerate() {
        let next = done as i64 + 1;
        if next <= version {
            continue;
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if next <= now {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", next)?;
        tx.commit()?;
    }
    Ok(())
}

/// Maps a row of two text columns (key and value, user and id).
fn text_pair(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String)> {
    Ok((r.get(0)?, r.get(1)?))
}

/// Runs a `SELECT count(*) ...` query.
fn count(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    let n: i64 = conn.prepare_cached(sql)?.query_row(params, |r| r.get(0))?;
    // Never negative; were it so, bounds checked against it would refuse.
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// An SQLite engine in a fresh temporary directory, which lives as long as the guard.
#[cfg(test)]
fn temp_sqlite() -> (tempfile::TempDir, Sqlite) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Sqlite::open(&dir.path().join("s.sqlite")).expect("open");
    (dir, db)
}

/// A raw connection to a fresh database at schema `version` (the migrations up to
/// it, as the coid of that version made them), for tests of what later ones do.
#[cfg(test)]
fn sqlite_at(version: usize) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::open(dir.path().join("s.sqlite")).expect("open");
    for sql in &MIGRATIONS[..version] {
        conn.execute_batch(sql).expect("an older migration");
    }
    conn.pragma_update(None, "user_version", version as i64)
        .expect("version");
    (dir, conn)
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod checkpoint_tests;

#[cfg(test)]
#[path = "queue_pages_tests.rs"]
mod queue_pages_tests;

#[cfg(test)]
#[path = "schema_tests.rs"]
mod schema_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ENTRY_ENABLED, SCHEMA_VERSION, Store, Table, Write};
    use rusqlite::params;

    /// A version-1 database (before the dict proxy) is migrated in place, data kept.
    #[test]
    fn migrates_version_1_keeping_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.sqlite");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(MIGRATIONS[0]).expect("v1 schema");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            conn.execute(
                "INSERT INTO user_metadata VALUES ('a@x', ?1, 'yes', 1)",
                params![ENTRY_ENABLED],
            )
            .expect("row");
        }
        let store = Store::open(&path).expect("migrate");
        assert_eq!(
            store.get("a@x", ENTRY_ENABLED).expect("get").as_deref(),
            Some("yes")
        );
        let version: i64 = Connection::open(&path)
            .expect("raw")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        store
            .apply(
                "a@x",
                &[Write {
                    table: Table::Attributes,
                    key: "priv/g/comment".into(),
                    value: Some("hi".into()),
                }],
            )
            .expect("new table usable");
    }

    /// A transaction that reads before it writes (queueing reads the queue's length
    /// first) waits for another process's write lock instead of failing at once.
    #[test]
    fn a_write_waits_for_another_processs_lock() {
        let (dir, db) = temp_sqlite();
        let other = Connection::open(dir.path().join("s.sqlite")).expect("other");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("the write lock");
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            other.execute_batch("COMMIT").expect("let go");
        });
        let push = crate::store::NewPush {
            kind: crate::store::PushKind::DeltaChat,
            username: "a@x".into(),
            target: "t".into(),
            payload: String::new(),
            with_content: false,
            validation: false,
            not_before: 0,
            deadline: 1,
            dedupe: None,
        };
        assert_eq!(
            db.enqueue(&[push], 10, 0).expect("queued after the wait"),
            1
        );
        holder.join().expect("holder");
    }

    /// A database written by a later coid is refused at open, and left as it is.
    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new.sqlite");
        drop(Store::open(&path).expect("create"));
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&path)
            .expect("raw")
            .pragma_update(None, "user_version", newer)
            .expect("version");
        match Store::open(&path) {
            Err(StoreError::SchemaTooNew { found, known }) => {
                assert_eq!((found, known), (newer, SCHEMA_VERSION));
            }
            Err(other) => panic!("expected SchemaTooNew, got {other}"),
            Ok(_) => panic!("a newer schema was opened"),
        }
        let version: i64 = Connection::open(&path)
            .expect("raw")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, newer, "left alone");
    }
}
