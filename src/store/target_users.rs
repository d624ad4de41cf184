//! Which users have a push target at all (a Web Push subscription or a Delta Chat
//! device token), from memory, so the push hook costs a message for a user without
//! any nothing but one counter read: no hop to a blocking thread, no query.
//!
//! How it stays correct: the set is good while a counter in the database
//! (`targets_version`, schema 6) stands still. Triggers move it on every insert and
//! delete of a subscription or token row, and on any update of a row's `username`,
//! whoever writes (this process's dict proxy, `coid push delete`, another coid
//! sharing the store, a hand-made SQL change). Updates that keep the row's user (a
//! validation, a token set again) do not move it: they change no one's membership.
//! The counter is read before the set, so a commit in between makes the next check
//! miss, never a stale hit. A miss, or a counter that cannot be read, means
//! "unknown": the caller takes the slow path, which asks the store as before. The set
//! says only who has *some* target; whether a message pushes to it is still decided
//! by the store (validation, msgtype, token lifetime).
//!
//! With PostgreSQL the counter is a round trip ([`crate::store::Engine::counters_are_local`] is
//! false): [`TargetUsers::any`] then always answers "unknown" and the push hook takes
//! the slow path on a blocking thread, where [`TargetUsers::refresh`] reads the shared
//! counter once for every message waiting; a target added on another node is seen at
//! the next batch of messages.
//!
//! Bounded: past [`MAX_USERS`] users with targets the set is not kept and every
//! message takes the slow path.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::engine::Counter;
use super::{Store, StoreError};

/// Most users with targets kept in memory.
pub const MAX_USERS: usize = 1_000_000;

#[derive(Default)]
struct Loaded {
    users: HashSet<String>,
    /// The counter the set was read at; `None`: nothing usable loaded.
    version: Option<i64>,
}

/// The set; cheap to clone (clones share it).
#[derive(Clone)]
pub struct TargetUsers {
    store: Store,
    loaded: Arc<Mutex<Loaded>>,
}

impl TargetUsers {
    /// Over `store`; empty until [`TargetUsers::refresh`].
    pub fn new(store: Store) -> TargetUsers {
        TargetUsers {
            store,
            loaded: Arc::default(),
        }
    }

    /// Whether any of `usernames` has a push target: `Some` if the set is current as
    /// a counter read begun at or after `since` sees it (every change committed
    /// before `since` counts; [`crate::store::Engine::counter_since`]), `None` if
    /// unknown (then ask the store; always when the counter is not local). Never
    /// waits for the store's connection.
    pub fn any<'a>(
        &self,
        usernames: impl Iterator<Item = &'a str>,
        since: Instant,
    ) -> Option<bool> {
        if !self.store.counters_are_local() {
            return None;
        }
        let version = self.version(Some(since))?;
        self.any_at(version, usernames)
    }

    /// [`TargetUsers::any`] whatever the engine, with a counter read now, which may
    /// be a round trip (PostgreSQL). Blocks.
    #[cfg(test)]
    pub fn any_now<'a>(&self, usernames: impl Iterator<Item = &'a str>) -> Option<bool> {
        self.any_at(self.version(None)?, usernames)
    }

    /// Whether any of `usernames` has a push target, if the set was read at `version`
    /// (what [`TargetUsers::refresh`] returned: a caller that just refreshed asks
    /// without reading the counter again); `None` if it was not.
    pub fn any_at<'a>(
        &self,
        version: i64,
        mut usernames: impl Iterator<Item = &'a str>,
    ) -> Option<bool> {
        let loaded = lock(&self.loaded);
        if loaded.version != Some(version) {
            return None;
        }
        Some(usernames.any(|name| loaded.users.contains(name)))
    }

    /// Reads the set again if the counter moved since it was read. Blocks. Returns
    /// the counter the set is current at, for [`TargetUsers::any_at`]; `None` if the
    /// counter cannot be read or the set is not kept (past [`MAX_USERS`]).
    ///
    /// # Errors
    /// SQLite failed; the set stays as it was (and unknown while the counter differs).
    pub fn refresh(&self) -> Result<Option<i64>, StoreError> {
        // Read before the set: a commit in between makes the next check miss.
        let Some(version) = self.version(None) else {
            return Ok(None);
        };
        if lock(&self.loaded).version == Some(version) {
            return Ok(Some(version));
        }
        let users = self.store.target_users(MAX_USERS)?;
        let mut loaded = lock(&self.loaded);
        match users {
            Some(users) => {
                loaded.users = users;
                loaded.version = Some(version);
            }
            None => {
                loaded.users = HashSet::new();
                loaded.version = None;
            }
        }
        Ok(loaded.version)
    }

    /// The counter as a read begun at or after `since` saw it (`None`: a read now);
    /// `None` if it cannot be read (no caching then).
    fn version(&self, since: Option<Instant>) -> Option<i64> {
        let read = match since {
            Some(since) => self.store.counter_since(Counter::Targets, since),
            None => self.store.counter(Counter::Targets),
        };
        match read {
            Ok(version) => Some(version),
            Err(err) => {
                tracing::debug!(error = %err, "push target set: counter unreadable");
                None
            }
        }
    }
}

/// Locks a mutex whose holder cannot leave it inconsistent (a swap, or one read).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "target_users_tests.rs"]
mod tests;
