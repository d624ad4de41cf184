//! Which users have a push target, and the two counters the caches above the engine
//! read (`settings_version`, schema 5; `targets_version`, schema 6), over SQLite.
//! The counters are read on a read-only connection of their own (`probe`), so a read
//! never waits for the store's connection: microseconds, fit for an async thread.

use std::collections::HashSet;

use rusqlite::params;

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

impl Sqlite {
    /// See [`crate::store::Engine::counter`].
    pub(super) fn counter(&self, which: Counter) -> Result<i64, StoreError> {
        let sql = match which {
            Counter::Settings => "SELECT n FROM settings_version WHERE id = 1",
            Counter::Targets => "SELECT n FROM targets_version WHERE id = 1",
        };
        let probe = self.probe.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(probe.prepare_cached(sql)?.query_row([], |r| r.get(0))?)
    }
}
