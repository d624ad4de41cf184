//! coid's state store: one storage interface ([`Engine`], `engine`) and its
//! implementations: `sqlite` (the default, an embedded database under the state
//! directory) and, for several coid nodes sharing one state, PostgreSQL.
//!
//! Per-user settings are kept as IMAP METADATA entries (RFC 5464) under their entry
//! names, e.g. `/private/vendor/vendor.dovecot/coi/config/message-filter` (COI server
//! spec): IMAP SETMETADATA writes them through Dovecot's dict proxy (`crate::dict`),
//! the delivery path and `coid user` read and write the same rows. Dovecot's other
//! attributes (mailbox annotations, shared ones, Dovecot-internal keys) are kept
//! verbatim in a second table ([`Table::Attributes`]). Web Push keeps its own tables:
//! the users' subscriptions (written by dict commits through [`Op`]), the durable push
//! queue (shared with Delta Chat notifications) and the server's VAPID key
//! (`secrets`); the push worker settles outcomes and claims in one transaction per
//! round ([`Settle`]). Delta Chat device tokens have theirs; [`TargetUsers`] keeps in
//! memory who has any of either, [`CoiCache`] the users' settings. All of it moves
//! between stores, whatever their engines, through `transfer` (`coid state`).
//!
//! The files at this level hold what does not depend on the engine: the value types,
//! the rules (`coi`), the caches. [`Store`] is the handle everyone holds; it
//! dereferences to the engine, so `store.commit(..)` calls the engine's method.
//! All calls block: async callers use `tokio::task::spawn_blocking`.

mod coi;
mod coi_cache;
mod commit;
mod counted;
mod dedupe;
mod dict;
pub mod engine;
mod postgres;
mod queue;
mod secrets;
mod settle;
mod sqlite;
mod subscriptions;
mod target_users;
#[cfg(test)]
pub(crate) mod test_stores;
mod tokens;
pub mod transfer;

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use coi::{
    CoiSettings, ENTRY_ENABLED, ENTRY_MAILBOX_ROOT, ENTRY_MESSAGE_FILTER, MessageFilter, StoredCoi,
    check_entry_write,
};
pub use coi_cache::CoiCache;
pub use commit::{CommitError, Op, Subscribe};
pub use dict::{Depth, Table, Write};
pub use engine::{Counter, Engine};
pub use postgres::{POSTGRES_SCHEMA_VERSION, Postgres};
pub use queue::{DEDUPE_KEEP_MS, Destination, Kinds, NewPush, PushKind, QueuedPush, dedupe_key};
pub use secrets::SECRET_VAPID;
pub use settle::{Claim, Claimed, Settle};
pub use sqlite::Sqlite;
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
    /// The database was written by a later coid (its schema is newer than any this
    /// coid knows): coid refuses to use it rather than misread it. Upgrade coid, or
    /// restore a backup taken before the upgrade.
    #[error(
        "state store: the database has schema version {found}, newer than the {known} \
         this coid knows: it was written by a later coid; upgrade coid, or restore a backup \
         taken before the upgrade"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest version this coid knows.
        known: i64,
    },
    /// PostgreSQL said no (or the connection was lost mid-way).
    #[error("state store: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// No connection to the database (the server cannot be reached, the pool's wait
    /// timed out, the URL or password file is unusable).
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The blocking task doing store work failed (panicked or was cancelled).
    #[error("state store: worker task failed: {0}")]
    Worker(String),
}

/// The schema version this coid writes (SQLite, `PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = sqlite::schema::MIGRATIONS.len() as i64;

/// A handle to the state store; cheap to clone. Dereferences to its [`Engine`].
#[derive(Clone)]
pub struct Store {
    /// The engine, behind [`counted::Counted`].
    engine: Arc<dyn Engine>,
    /// The SQLite file, for an SQLite store.
    path: Option<Arc<std::path::PathBuf>>,
    /// Calls that failed for the database's sake, since the store was opened.
    errors: Arc<AtomicU64>,
}

impl Deref for Store {
    type Target = dyn Engine;

    fn deref(&self) -> &Self::Target {
        &*self.engine
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`, in WAL mode.
    ///
    /// # Errors
    /// The directory or database cannot be created or migrated.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut store = Store::with_engine(Arc::new(Sqlite::open(path)?));
        store.path = Some(Arc::new(path.to_owned()));
        Ok(store)
    }

    /// A look at the PostgreSQL store `[state.postgresql]` names, changing nothing:
    /// `None` if coid never created its tables there, else its schema version and
    /// VAPID private key (PEM), if any (`coid doctor`).
    ///
    /// # Errors
    /// It cannot be reached or read.
    pub fn peek_postgres(
        settings: &crate::config::PostgresConfig,
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        postgres::peek(settings)
    }

    /// The store `[state]` names: SQLite in the state directory, or PostgreSQL.
    ///
    /// # Errors
    /// It cannot be opened, reached or migrated.
    pub fn from_config(config: &crate::config::Config) -> Result<Store, StoreError> {
        match config.state.database {
            crate::config::Database::Sqlite => Store::open(&config.database_path()),
            crate::config::Database::Postgresql => {
                let db = Postgres::open(&config.state.postgresql)?;
                Ok(Store::with_engine(Arc::new(db)))
            }
        }
    }

    /// A store over `engine`.
    pub fn with_engine(engine: Arc<dyn Engine>) -> Store {
        let errors = Arc::new(AtomicU64::new(0));
        Store {
            engine: Arc::new(counted::Counted::new(engine, Arc::clone(&errors))),
            path: None,
            errors,
        }
    }

    /// Calls that failed for the database's sake since the store was opened (its
    /// clones count together).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The SQLite database file; `None` for another engine.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref().map(|p| p.as_path())
    }

    /// One METADATA entry of a user.
    ///
    /// # Errors
    /// The database failed.
    pub fn get(&self, username: &str, entry: &str) -> Result<Option<String>, StoreError> {
        self.lookup(Table::Metadata, username, entry)
    }

    /// All entries of a user, sorted by name (for tests).
    ///
    /// # Errors
    /// The database failed.
    #[cfg(test)]
    pub(crate) fn entries(&self, username: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.scan(Table::Metadata, username, "", Depth::All, usize::MAX)
    }

    /// Sets an entry, or removes it with `None` (IMAP `NIL`).
    ///
    /// # Errors
    /// The database failed.
    pub fn set(&self, username: &str, entry: &str, value: Option<&str>) -> Result<(), StoreError> {
        let write = Write {
            table: Table::Metadata,
            key: entry.to_owned(),
            value: value.map(str::to_owned),
        };
        self.apply(username, &[write])
    }

    /// The effective COI settings of `username`: stored values over `defaults`.
    ///
    /// # Errors
    /// The database failed.
    pub fn coi_settings(
        &self,
        username: &str,
        defaults: &CoiSettings,
    ) -> Result<CoiSettings, StoreError> {
        Ok(self.stored_coi(username)?.over(defaults))
    }

    /// The secret `name`, created with `make` if there is none yet (called at most
    /// once). Several processes creating it at once agree on one value.
    ///
    /// # Errors
    /// The database failed.
    pub fn secret_or_insert(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        let mut make = Some(make);
        self.engine
            .secret_or_insert(name, &mut || make.take().map(|f| f()).unwrap_or_default())
    }
}

/// Now in unix seconds: the METADATA tables' and subscriptions' clock.
pub(crate) fn unix_now() -> i64 {
    unix_now_ms() / 1000
}

/// Now in unix milliseconds: the push queue's clock.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
    use super::test_stores::{Kind, store_of};
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::sqlite(Kind::Sqlite)]
    #[case::postgresql(Kind::Postgresql)]
    fn set_get_unset_survive_reopen(#[case] kind: Kind) {
        let (guard, store) = store_of(kind);
        store
            .set("alice@example.org", ENTRY_MESSAGE_FILTER, Some("active"))
            .expect("set");
        store
            .set("alice@example.org", ENTRY_ENABLED, Some("yes"))
            .expect("set");
        drop(store);
        let store = guard.reopen();
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

    /// A directory that does not exist yet is created.
    #[test]
    fn sqlite_creates_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/coid.sqlite");
        let store = Store::open(&path).expect("open");
        store.set("a@x", ENTRY_ENABLED, Some("yes")).expect("set");
        assert!(path.is_file());
    }
}
