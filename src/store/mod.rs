//! coid's state store: an embedded SQLite database (WAL) under the state directory.
//!
//! Per-user settings are kept as IMAP METADATA entries (RFC 5464) under their entry
//! names, e.g. `/private/vendor/vendor.dovecot/coi/config/message-filter` (COI server
//! spec). That is the shape Dovecot's dict proxy will write them in (IMAP SETMETADATA),
//! and the shape the delivery path and `coid user` read and write today.
//! All calls block: async callers use `tokio::task::spawn_blocking`.

mod coi;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub use coi::{CoiSettings, ENTRY_ENABLED, ENTRY_MESSAGE_FILTER, MessageFilter};

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
    /// A thread holding the connection panicked.
    #[error("state store: connection lock poisoned")]
    Poisoned,
}

/// The schema, applied when `PRAGMA user_version` is below [`SCHEMA_VERSION`].
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS user_metadata (
    username TEXT NOT NULL,
    entry    TEXT NOT NULL,
    value    TEXT NOT NULL,
    updated  INTEGER NOT NULL,
    PRIMARY KEY (username, entry)
) WITHOUT ROWID;
";
const SCHEMA_VERSION: i64 = 1;

/// A handle to the state store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
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
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// One METADATA entry of a user.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn get(&self, username: &str, entry: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock()?;
        let value = conn
            .query_row(
                "SELECT value FROM user_metadata WHERE username = ?1 AND entry = ?2",
                params![username, entry],
                |r| r.get(0),
            )
            .optional()?;
        Ok(value)
    }

    /// All entries of a user, sorted by name.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn entries(&self, username: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT entry, value FROM user_metadata WHERE username = ?1 ORDER BY entry",
        )?;
        let rows = stmt.query_map(params![username], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets an entry, or removes it with `None` (IMAP `NIL`).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn set(&self, username: &str, entry: &str, value: Option<&str>) -> Result<(), StoreError> {
        let conn = self.lock()?;
        match value {
            Some(value) => conn.execute(
                "INSERT INTO user_metadata (username, entry, value, updated) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (username, entry) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                params![username, entry, value, unix_now()],
            )?,
            None => conn.execute(
                "DELETE FROM user_metadata WHERE username = ?1 AND entry = ?2",
                params![username, entry],
            )?,
        };
        Ok(())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
