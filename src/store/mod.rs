//! coid's state store: an embedded SQLite database (WAL) under the state directory.
//!
//! Per-user settings are kept as IMAP METADATA entries (RFC 5464) under their entry
//! names, e.g. `/private/vendor/vendor.dovecot/coi/config/message-filter` (COI server
//! spec): IMAP SETMETADATA writes them through Dovecot's dict proxy (`crate::dict`),
//! the delivery path and `coid user` read and write the same rows. Dovecot's other
//! attributes (mailbox annotations, shared ones, Dovecot-internal keys) are kept
//! verbatim in a second table ([`Table::Attributes`]). Web Push keeps its own tables:
//! the users' subscriptions (`subscriptions`, written by dict commits through
//! `commit`), the durable push queue (`queue`, shared with Delta Chat notifications)
//! and the server's VAPID key (`secrets`); the push worker settles outcomes and
//! claims in one transaction per round (`settle`). Delta Chat device tokens have theirs
//! (`tokens`); `target_users` keeps in memory who has any of either.
//! The schema grows by numbered migrations (`schema`, `PRAGMA user_version`), never
//! losing data.
//! All calls block: async callers use `tokio::task::spawn_blocking`.

mod coi;
mod coi_cache;
mod commit;
mod dict;
mod queue;
mod queue_rows;
mod schema;
mod secrets;
mod settle;
mod subscriptions;
mod target_users;
mod tokens;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use coi::{
    CoiSettings, ENTRY_ENABLED, ENTRY_MAILBOX_ROOT, ENTRY_MESSAGE_FILTER, MessageFilter, StoredCoi,
    check_entry_write,
};
pub use coi_cache::CoiCache;
pub use commit::{CommitError, Op, Subscribe};
pub use dict::{Depth, Table, Write};
pub use queue::{Destination, Kinds, NewPush, PushKind, QueuedPush};
use schema::MIGRATIONS;
pub use secrets::SECRET_VAPID;
pub use settle::{Claim, Claimed, Settle};
pub use subscriptions::Subscription;
pub use target_users::TargetUsers;
pub use tokens::DeviceToken;

/// Errors from the state store. All of them are coid's own trouble: temporary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Creating the state directory failed.
    #[error("state store: cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database cannot be written (file, directory or file system read-only for
    /// coid's user): settings, subscriptions and the push queue could not be kept.
    #[error(
        "state store: {path} is not writable for this user ({cause}); \
         coid needs to write its state: check the owner and mode of the file and its directory"
    )]
    ReadOnly {
        /// The database file.
        path: String,
        /// What SQLite said.
        cause: String,
    },
    /// A thread holding the connection panicked.
    #[error("state store: connection lock poisoned")]
    Poisoned,
    /// The blocking task doing store work failed (panicked or was cancelled).
    #[error("state store: worker task failed: {0}")]
    Worker(String),
}

/// Prepared statements kept per connection (each a few KB).
const STATEMENT_CACHE: usize = 128;

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

/// The schema version this coid writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A handle to the state store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Arc<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode.
    ///
    /// # Errors
    /// The directory or database cannot be created or migrated.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
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
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(named)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(named)?;
        // Every statement coid runs more than once is prepared through the cache;
        // rusqlite keeps 16 by default, fewer than the delivery path, the push hook
        // and the push worker use together, so they evicted each other and SQLite
        // compiled them again (a few per cent of coid's CPU with Web Push on).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        migrate(&mut conn).map_err(|err| match err {
            StoreError::Sqlite(err) => named(err),
            other => other,
        })?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_owned()),
        })
    }

    /// Checks that the database can be written: SQLite opens a file it may not write
    /// read-only without a word, and every write would then fail later, one by one.
    /// A write lock held by another process is not a failure here.
    ///
    /// # Errors
    /// [`StoreError::ReadOnly`] when it cannot be written; other SQLite failures.
    pub fn check_writable(&self) -> Result<(), StoreError> {
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

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// One METADATA entry of a user.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn get(&self, username: &str, entry: &str) -> Result<Option<String>, StoreError> {
        self.lookup(Table::Metadata, username, entry)
    }

    /// All entries of a user, sorted by name (for tests).
    ///
    /// # Errors
    /// SQLite failed.
    #[cfg(test)]
    pub(crate) fn entries(&self, username: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.scan(Table::Metadata, username, "", Depth::All, usize::MAX)
    }

    /// Sets an entry, or removes it with `None` (IMAP `NIL`).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set(&self, username: &str, entry: &str, value: Option<&str>) -> Result<(), StoreError> {
        let write = Write {
            table: Table::Metadata,
            key: entry.to_owned(),
            value: value.map(str::to_owned),
        };
        self.apply(username, &[write])
    }
}

/// Brings the schema up to [`SCHEMA_VERSION`], one migration per transaction. A newer
/// database (written by a later coid) is left alone.
///
/// Another process may migrate the same file at the same time (`coid serve` binds its
/// sockets before it opens the store, so an admin command started as soon as it
/// listens can meet it half way): each step reads the version again inside its write
/// transaction. An up-to-date database takes no write lock at all.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
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

/// Now in unix seconds: the METADATA tables' and subscriptions' clock.
fn unix_now() -> i64 {
    unix_now_ms() / 1000
}

/// Now in unix milliseconds: the push queue's clock.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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

/// A store in a fresh temporary directory, which lives as long as the returned guard.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.sqlite")).expect("open");
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    #[test]
    fn set_get_unset_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/coid.sqlite");
        let store = Store::open(&path).expect("open");
        store
            .set("alice@example.org", ENTRY_MESSAGE_FILTER, Some("active"))
            .expect("set");
        store
            .set("alice@example.org", ENTRY_ENABLED, Some("yes"))
            .expect("set");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store
                .get("alice@example.org", ENTRY_ENABLED)
                .expect("get")
                .as_deref(),
            Some("yes")
        );
        assert_eq!(
            store.entries("alice@example.org").expect("entries").len(),
            2
        );
        store
            .set("alice@example.org", ENTRY_ENABLED, None)
            .expect("unset");
        assert_eq!(
            store.get("alice@example.org", ENTRY_ENABLED).expect("get"),
            None
        );
        assert_eq!(
            store.get("bob@example.org", ENTRY_ENABLED).expect("get"),
            None
        );
    }

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
        let version: i64 = store
            .lock()
            .expect("lock")
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
}
