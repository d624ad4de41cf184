//! The PostgreSQL engine: one database that several coid nodes share (issue 11). The
//! same operations and meaning as SQLite's (the store's tests run against both).
//!
//! Crates: `postgres`, the blocking client by the author of `tokio-postgres`, because
//! the store's interface is blocking (called from `spawn_blocking`, the dict proxy's
//! and the worker's blocking threads); with `r2d2` + `r2d2_postgres`, a small, stable
//! blocking pool: bounded (`pool_size`), a connection is checked (`SELECT 1`-like
//! validity test) when taken, so one lost with a restarted server is replaced, not
//! handed out; waiting for a free or new connection is bounded by
//! `connect_timeout_secs`. An async pool (deadpool) would need an async interface.
//! TLS with `sslmode=require` only, certificates verified (`tls`).
//!
//! Several nodes at once:
//! - migrations run at start in one transaction under `pg_advisory_xact_lock`, so
//!   nodes starting together migrate once; a newer schema is refused
//!   ([`StoreError::SchemaTooNew`]);
//! - the VAPID key: `INSERT … ON CONFLICT DO NOTHING`, then read: one key wins;
//! - the push queue: a claim leases rows in one short transaction with
//!   `FOR UPDATE SKIP LOCKED`, so two workers never take the same row, and a dead
//!   node's leased rows come due again when the lease ends (`not_before`), as in
//!   SQLite. No HTTP request runs inside a transaction. Every transaction that may
//!   insert or delete queue rows first locks the queue's length counter (which its
//!   trigger would lock anyway): one lock order, so no deadlocks, and the bound is
//!   exact; such transactions of all nodes take turns (each a few milliseconds);
//! - enqueue sends `NOTIFY coid_queue` with its commit; `listen` wakes the local
//!   worker, which still sweeps on its own timer;
//! - caches: the settings and targets counters live in the shared database and move
//!   by triggers with every node's writes. Reading one is a round trip, so the caches
//!   read it on a blocking thread at every delivery (`counters_are_local` is false):
//!   a write on node A is seen by node B's next delivery, never later.
//!
//! Failure: an unreachable server or a lost connection is a [`StoreError`] (the
//! delivery path answers 4xx, Postfix retries); nothing here panics on it.

mod commit;
mod dict;
mod engine;
mod listen;
mod peek;
mod queue;
mod queue_rows;
mod reads;
mod schema;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;
mod tls;
mod transfer;

use std::str::FromStr;
use std::time::Duration;

use postgres::Client;
use r2d2_postgres::PostgresConnectionManager;
use tls::Tls;

use super::StoreError;
use crate::config::PostgresConfig;
pub use peek::{POSTGRES_SCHEMA_VERSION, peek};
use schema::MIGRATIONS;

/// The pool's type.
type Pool = r2d2::Pool<PostgresConnectionManager<Tls>>;
/// A connection taken from the pool.
type Conn = r2d2::PooledConnection<PostgresConnectionManager<Tls>>;

/// The advisory lock the migrations take ("coid" and a 1).
const MIGRATION_LOCK: i64 = 0x636f_6964_0001;

/// The PostgreSQL engine.
pub struct Postgres {
    /// `None` only while dropping (see the `Drop` impl).
    pool: Option<Pool>,
    /// What the listener connects with.
    config: postgres::Config,
    tls: Tls,
    /// Host and database, for logs (no user, no password).
    describe: String,
    /// Held while the engine lives: the listener thread ends when it is gone.
    alive: std::sync::Arc<()>,
}

impl Postgres {
    /// Connects as `[state.postgresql]` says (reading the password file), and
    /// migrates the schema.
    ///
    /// # Errors
    /// The URL or password file is unusable, the server cannot be reached within the
    /// timeout, a migration failed, or the schema is newer than this coid's.
    pub fn open(settings: &PostgresConfig) -> Result<Postgres, StoreError> {
        let mut config = postgres::Config::from_str(&settings.url)
            .map_err(|err| StoreError::Unavailable(format!("state.postgresql.url: {err}")))?;
        if let Some(file) = &settings.password_file {
            let text = std::fs::read_to_string(file).map_err(|err| {
                StoreError::Unavailable(format!(
                    "state.postgresql.password_file {}: {err}",
                    file.display()
                ))
            })?;
            config.password(text.trim_end_matches(['\r', '\n']));
        }
        let timeout = Duration::from_secs(settings.connect_timeout_secs.max(1));
        let tls = tls::connector(settings.ca_file.as_deref())?;
        Postgres::connect_with(config, tls, settings.pool_size, timeout)
    }

    /// Connects with `config`, at most `pool_size` connections, waiting at most
    /// `timeout` for one; migrates the schema.
    ///
    /// # Errors
    /// See [`Postgres::open`].
    pub fn connect(
        config: postgres::Config,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<Postgres, StoreError> {
        Postgres::connect_with(config, tls::connector(None)?, pool_size, timeout)
    }

    /// [`Postgres::connect`] with TLS by `tls` (when the config requires TLS).
    fn connect_with(
        mut config: postgres::Config,
        tls: Tls,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<Postgres, StoreError> {
        config.connect_timeout(timeout);
        tls::settle_ssl_mode(&mut config);
        let describe = describe(&config);
        let manager = PostgresConnectionManager::new(config.clone(), tls.clone());
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(QuietErrors))
            .build(manager)
            .map_err(|err| unavailable(&describe, &err))?;
        let db = Postgres {
            pool: Some(pool),
            config,
            tls,
            describe,
            alive: std::sync::Arc::new(()),
        };
        migrate(&mut *db.conn()?)?;
        Ok(db)
    }

    /// Checks that the database can be written now: a standby (or a server that
    /// defaults to read-only transactions) cannot keep coid's state.
    fn check_writable(&self) -> Result<(), StoreError> {
        let read_only: bool = self
            .conn()?
            .query_one(
                "SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only') = 'on'",
                &[],
            )?
            .get(0);
        if read_only {
            return Err(StoreError::ReadOnly {
                path: self.describe.clone(),
                cause: "the server only allows reading (a standby?)".into(),
            });
        }
        Ok(())
    }

    /// A connection from the pool.
    fn conn(&self) -> Result<Conn, StoreError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::Unavailable(format!(
                "{}: closed",
                self.describe
            )));
        };
        pool.get().map_err(|err| unavailable(&self.describe, &err))
    }
}

/// Closing a `postgres` connection blocks on its own runtime, which panics on an async
/// thread; the last `Store` may well be dropped on one (the end of `coid deliver`, a
/// reload's old pipeline). There the pool, with its connections, is closed on a
/// thread of its own.
impl Drop for Postgres {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return drop(pool);
        }
        let closing = std::thread::Builder::new()
            .name("coid-pg-close".into())
            .spawn(move || drop(pool));
        if let Err(err) = closing {
            // The system is out of threads (the pool went with the failed spawn).
            tracing::warn!(error = %err, "cannot close the PostgreSQL pool on a thread");
        }
    }
}

/// r2d2 logs every failed connection attempt of its own at error level (dozens a
/// minute while the server is down); the caller's [`StoreError::Unavailable`] already
/// says it, with the last cause, where it matters.
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<postgres::Error> for QuietErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::debug!(error = %error, "PostgreSQL pool: connection attempt failed");
    }
}

/// Host(s) and database of `config`, for logs.
fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "PostgreSQL {} database {}",
        hosts.join(","),
        config.get_dbname().unwrap_or("(default)")
    )
}

fn unavailable(describe: &str, err: &r2d2::Error) -> StoreError {
    StoreError::Unavailable(format!("{describe}: {err}"))
}

/// Brings the schema up to date, in one transaction under an advisory lock, so nodes
/// starting at once migrate once; refuses a newer schema.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS coid_schema (
             id INT PRIMARY KEY CHECK (id = 1),
             version BIGINT NOT NULL
         );
         INSERT INTO coid_schema (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;",
    )?;
    let found: i64 = tx
        .query_one("SELECT version FROM coid_schema WHERE id = 1", &[])?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    if found == known {
        return Ok(tx.commit()?);
    }
    let done = usize::try_from(found).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(done) {
        tx.batch_execute(sql)?;
    }
    tx.execute(
        "UPDATE coid_schema SET version = $1 WHERE id = 1",
        &[&known],
    )?;
    Ok(tx.commit()?)
}

/// A count from the database, as usize (never negative; were it so, bounds checked
/// against it would refuse).
fn as_count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A limit for SQL.
fn as_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
