//! The store's tests run against every engine: [`store_of`] gives a fresh, empty
//! store of the engine a test case names (`#[rstest]` cases `sqlite` and
//! `postgresql`), so one test body checks both.

use std::sync::Arc;
use std::time::Duration;

use super::{Postgres, Store};

/// Keeps a test store's files (SQLite) alive, and opens it again.
pub(crate) enum Guard {
    /// The SQLite file's directory.
    Dir(tempfile::TempDir),
    /// A PostgreSQL database on the test server (dropped with the server).
    Database(Box<::postgres::Config>),
}

impl Guard {
    /// The same store opened again, as another process or node would.
    pub(crate) fn reopen(&self) -> Store {
        match self {
            Guard::Dir(dir) => Store::open(&dir.path().join("s.sqlite")).expect("reopen"),
            Guard::Database(config) => postgres_store((**config).clone()),
        }
    }

    /// The SQLite file.
    ///
    /// # Panics
    /// Not an SQLite store.
    pub(crate) fn sqlite_path(&self) -> std::path::PathBuf {
        match self {
            Guard::Dir(dir) => dir.path().join("s.sqlite"),
            Guard::Database(_) => panic!("not an SQLite store"),
        }
    }

    /// Runs SQL on a connection of its own, as a hand-made change would: `sqlite` on
    /// an SQLite store, `postgres` on a PostgreSQL one.
    pub(crate) fn raw(&self, sqlite: &str, postgres: &str) {
        match self {
            Guard::Dir(_) => rusqlite::Connection::open(self.sqlite_path())
                .expect("raw")
                .execute_batch(sqlite)
                .expect("raw SQL"),
            Guard::Database(config) => config
                .connect(::postgres::NoTls)
                .expect("raw")
                .batch_execute(postgres)
                .expect("raw SQL"),
        }
    }

    /// One integer a query returns, read on a connection of its own.
    pub(crate) fn number(&self, sql: &str) -> i64 {
        match self {
            Guard::Dir(_) => rusqlite::Connection::open(self.sqlite_path())
                .expect("raw")
                .query_row(sql, [], |r| r.get(0))
                .expect("raw query"),
            Guard::Database(config) => config
                .connect(::postgres::NoTls)
                .expect("raw")
                .query_one(sql, &[])
                .expect("raw query")
                .get(0),
        }
    }
}

/// The engines, by the name test cases use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgresql,
}

/// A fresh store of `kind`.
pub(crate) fn store_of(kind: Kind) -> (Guard, Store) {
    match kind {
        Kind::Sqlite => {
            let (dir, store) = super::temp_store();
            (Guard::Dir(dir), store)
        }
        Kind::Postgresql => {
            let config = super::postgres::test_server::fresh_database();
            (
                Guard::Database(Box::new(config.clone())),
                postgres_store(config),
            )
        }
    }
}

/// A store over the PostgreSQL database `config` names (migrated on open).
pub(crate) fn postgres_store(config: ::postgres::Config) -> Store {
    let db = Postgres::connect(config, 4, Duration::from_secs(10)).expect("open PostgreSQL");
    Store::with_engine(Arc::new(db))
}
