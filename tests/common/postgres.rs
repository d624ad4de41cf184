//! PostgreSQL for the integration tests: the same real server the store's unit tests
//! use (`src/store/postgres/test_server.rs`: one per test process, our own
//! `initdb`/`pg_ctl` instance on loopback, a fresh database per use), and which store
//! the suite's coids run on.
//!
//! `COID_TEST_STORE=postgresql` puts every coid a test starts on PostgreSQL (coids
//! given the same state directory share one database, as they would share one
//! SQLite file); unset or `sqlite`, they keep SQLite. `tests/run.sh` runs the tests
//! that touch the store once for each: a matrix, not copies of the tests. Any other
//! value fails the test: a typo must not quietly test SQLite twice.

#[path = "../../src/store/postgres/test_server.rs"]
mod test_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use test_server::{TestServer, fresh_database, server};

/// Whether `COID_TEST_STORE` asks for PostgreSQL.
///
/// # Panics
/// It names neither store.
pub fn suite_on_postgres() -> bool {
    match std::env::var("COID_TEST_STORE").as_deref() {
        Err(_) | Ok("" | "sqlite") => false,
        Ok("postgresql") => true,
        Ok(other) => panic!("COID_TEST_STORE={other:?}: expected sqlite or postgresql"),
    }
}

/// A fresh database as coid's `[state.postgresql] url` (libpq key=value form).
pub fn fresh_url() -> String {
    url_of(&fresh_database())
}

/// The database of the coids that keep their state in `state_dir`: made on first use.
pub fn url_for_state(state_dir: &Path) -> String {
    static BY_DIR: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);
    let mut map = BY_DIR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get_or_insert_with(HashMap::new)
        .entry(state_dir.to_owned())
        .or_insert_with(fresh_url)
        .clone()
}

/// `config` as coid's `[state.postgresql] url`: a libpq key=value string (TCP on
/// loopback, no password: the test server trusts loopback).
pub fn url_of(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the test server's config has no TCP host: {other:?}"),
    };
    let port = config.get_ports().first().copied().expect("a port");
    let user = config.get_user().expect("a user");
    let dbname = config.get_dbname().expect("a database");
    format!("host={host} port={port} user={user} dbname={dbname}")
}
