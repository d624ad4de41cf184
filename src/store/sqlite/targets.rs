//! Which users have a push target, and the two counters the caches above the engine
//! read (`settings_version`, schema 5; `targets_version`, schema 6), over SQLite.
//! The counters are read on a read-only connection of their own (`probe`), so a read
//! never waits for the store's connection: microseconds, fit for an async thread.
//! Both are read in one statement, and the probe keeps the latest read with the
//! instant it began, so that one read serves every caller that only needs a read
//! begun after some moment ([`Sqlite::counter_since`]).

use std::collections::HashSet;
use std::time::Instant;

use rusqlite::{Connection, params};

use super::Sqlite;
use crate::store::StoreError;
use crate::store::engine::Counter;

impl Sqlite {
    /// Every user with a Web Push subscription or a Delta Chat token; `None` if there
    /// are more than `max`.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn target_users(&self, max: usize) -> Result<Option<HashSet<String>>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT username FROM push_subscriptions
             UNION SELECT username FROM deltachat_tokens LIMIT ?1",
        )?;
        let limit = i64::try_from(max.saturating_add(1)).unwrap_or(i64::MAX);
        let users = stmt
            .query_map(params![limit], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok((users.len() <= max).then_some(users))
    }
}

/// Both counters in one read transaction.
const BOTH: &str = "SELECT (SELECT n FROM settings_version WHERE id = 1),
                           (SELECT n FROM targets_version WHERE id = 1)";

/// The counters' own connection and its latest read.
pub(super) struct Probe {
    conn: Connection,
    /// When the latest read began (before its read transaction did) and what it saw.
    last: Option<(Instant, Counters)>,
}

/// Both counters as one read saw them.
#[derive(Clone, Copy)]
struct Counters {
    settings: i64,
    targets: i64,
}

impl Counters {
    fn of(self, which: Counter) -> i64 {
        match which {
            Counter::Settings => self.settings,
            Counter::Targets => self.targets,
        }
    }
}

impl Probe {
    pub(super) fn new(conn: Connection) -> Probe {
        Probe { conn, last: None }
    }

    /// Reads both counters now and keeps the read.
    fn read(&mut self) -> Result<Counters, StoreError> {
        let began = Instant::now();
        let counters = self.conn.prepare_cached(BOTH)?.query_row([], |r| {
            Ok(Counters {
                settings: r.get(0)?,
                targets: r.get(1)?,
            })
        })?;
        self.last = Some((began, counters));
        Ok(counters)
    }
}

impl Sqlite {
    /// See [`crate::store::Engine::counter`].
    pub(super) fn counter(&self, which: Counter) -> Result<i64, StoreError> {
        let mut probe = self.probe.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(probe.read()?.of(which))
    }

    /// See [`crate::store::Engine::counter_since`]: the latest read if it began at or
    /// after `since`, else a new one. A read transaction sees every commit made
    /// before it began, so that read has seen everything committed before `since`.
    pub(super) fn counter_since(&self, which: Counter, since: Instant) -> Result<i64, StoreError> {
        let mut probe = self.probe.lock().map_err(|_| StoreError::Poisoned)?;
        match probe.last {
            Some((began, counters)) if began >= since => Ok(counters.of(which)),
            _ => Ok(probe.read()?.of(which)),
        }
    }
}
