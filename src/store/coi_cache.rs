//! The users' COI settings as the delivery path reads them: from memory while the
//! database has not changed, so a message to a known user costs no settings query and
//! no hop to a blocking thread.
//!
//! Correct by construction: before every use the cache reads the settings counter
//! ([`Counter::Settings`]), which triggers in the database move with every change to
//! the users' METADATA entries, whoever makes it (this process's dict proxy, `coid
//! user set`, another coid node sharing a PostgreSQL store, a hand-made SQL update).
//! When it moved, every entry is dropped and read again; correctness never depends on
//! timing. Writes that touch no settings (the push queue) leave the cache alone.
//!
//! Where the counter is read depends on the engine ([`crate::store::Engine::counters_are_local`]):
//! SQLite's is one row on a connection nobody else uses, microseconds, read on the
//! async thread, so a hit costs no hop to a blocking thread. PostgreSQL's lives in
//! the shared database, a round trip: [`CoiCache::cached`] then answers "unknown" and
//! the caller reads on a blocking thread through [`CoiCache::load`], which still
//! answers from memory when the counter has not moved. Either way a write on one node
//! is seen by every node at its next delivery.
//!
//! Bounded: at most [`MAX_ENTRIES`] users; past that, all entries go (one query per
//! user refills them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::coi::StoredCoi;
use super::engine::Counter;
use super::{Store, StoreError};

/// Most users kept.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Entries {
    map: HashMap<String, StoredCoi>,
    /// The settings counter the entries were read at.
    version: Option<i64>,
}

/// The cache; cheap to clone (clones share the entries).
#[derive(Clone)]
pub struct CoiCache {
    store: Store,
    entries: Arc<Mutex<Entries>>,
}

impl CoiCache {
    /// Over `store`.
    pub fn new(store: Store) -> CoiCache {
        CoiCache {
            store,
            entries: Arc::default(),
        }
    }

    /// Every user's stored settings if the database has not changed since they were
    /// read, as a counter read begun at or after `since` sees it (so every change
    /// committed before `since` counts; [`crate::store::Engine::counter_since`]);
    /// `None` otherwise (and always `None` when the counter is not local). Never waits
    /// for the store's connection.
    pub fn cached(&self, usernames: &[String], since: Instant) -> Option<Vec<StoredCoi>> {
        if !self.store.counters_are_local() {
            return None;
        }
        let version = self.version(Some(since))?;
        let mut entries = lock(&self.entries);
        if entries.version != Some(version) {
            entries.map.clear();
            entries.version = Some(version);
            return None;
        }
        usernames
            .iter()
            .map(|name| entries.map.get(name).copied())
            .collect()
    }

    /// Every user's stored settings, read from the store and remembered. Blocks.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn load(&self, usernames: &[String]) -> Result<Vec<StoredCoi>, StoreError> {
        // Read before the settings: a commit in between makes the next check miss,
        // never a stale hit.
        let version = self.version(None);
        if let Some(version) = version {
            let entries = lock(&self.entries);
            if entries.version == Some(version) {
                let hit: Option<Vec<StoredCoi>> = usernames
                    .iter()
                    .map(|name| entries.map.get(name).copied())
                    .collect();
                if let Some(hit) = hit {
                    return Ok(hit);
                }
            }
        }
        let stored = usernames
            .iter()
            .map(|name| self.store.stored_coi(name))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(version) = version else {
            return Ok(stored);
        };
        let mut entries = lock(&self.entries);
        if entries.version != Some(version) || entries.map.len() + usernames.len() > MAX_ENTRIES {
            entries.map.clear();
            entries.version = Some(version);
        }
        for (name, value) in usernames.iter().zip(&stored) {
            entries.map.insert(name.clone(), *value);
        }
        Ok(stored)
    }

    /// The counter as a read begun at or after `since` saw it (`None`: a read now);
    /// `None` if it cannot be read (no caching then).
    fn version(&self, since: Option<Instant>) -> Option<i64> {
        let read = match since {
            Some(since) => self.store.counter_since(Counter::Settings, since),
            None => self.store.counter(Counter::Settings),
        };
        match read {
            Ok(version) => Some(version),
            Err(err) => {
                tracing::debug!(error = %err, "settings cache: counter unreadable");
                None
            }
        }
    }
}

/// Locks a mutex whose holder cannot leave it inconsistent (plain inserts, clears and
/// one read).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::{Kind, store_of};
    use crate::store::{ENTRY_ENABLED, temp_store};

    #[test]
    fn hits_until_anyone_changes_a_setting() {
        let (dir, store) = temp_store();
        let cache = CoiCache::new(store.clone());
        let names = vec!["a@x".to_owned()];
        assert_eq!(
            cache.cached(&names, Instant::now()),
            None,
            "nothing read yet"
        );
        let first = cache.load(&names).expect("load");
        assert_eq!(first[0].enabled, None);
        assert_eq!(cache.cached(&names, Instant::now()), Some(first), "a hit");
        store.set("a@x", ENTRY_ENABLED, Some("yes")).expect("set");
        assert_eq!(
            cache.cached(&names, Instant::now()),
            None,
            "this process wrote"
        );
        let second = cache.load(&names).expect("load");
        assert_eq!(second[0].enabled, Some(true));
        assert_eq!(cache.cached(&names, Instant::now()), Some(second));
        // Another process: a connection of its own, as `coid user set` has.
        let other = Store::open(&dir.path().join("s.sqlite")).expect("open");
        other.set("a@x", ENTRY_ENABLED, None).expect("unset");
        assert_eq!(
            cache.cached(&names, Instant::now()),
            None,
            "another process wrote"
        );
        let third = cache.load(&names).expect("load");
        assert_eq!(third[0].enabled, None);
        // Writes that are not settings (the push queue, tokens) keep the entries.
        let op = crate::store::Op::AddToken {
            id: "t".into(),
            token: "openpgp:x".into(),
            max: 4,
        };
        other.commit("a@x", &[op], 0).expect("token");
        assert_eq!(
            cache.cached(&names, Instant::now()),
            Some(third),
            "a token is no setting"
        );
    }

    /// One counter read serves every message whose deciding began before it; a
    /// message that began after a change was committed never gets the cache as it was
    /// before that change. SQLite only (PostgreSQL's counter is never read here).
    #[test]
    fn a_read_serves_messages_begun_before_it_not_after_a_change() {
        let (_dir, store) = temp_store();
        let cache = CoiCache::new(store.clone());
        let names = vec!["a@x".to_owned()];
        let early = Instant::now();
        let first = cache.load(&names).expect("load");
        assert_eq!(
            cache.cached(&names, early),
            Some(first.clone()),
            "read after `early`"
        );
        store.set("a@x", ENTRY_ENABLED, Some("yes")).expect("set");
        // A message begun before the change may be answered by the read before it.
        assert_eq!(
            cache.cached(&names, early),
            Some(first),
            "the read serves `early`"
        );
        // One begun after the change must not be.
        let late = Instant::now();
        assert_eq!(
            cache.cached(&names, late),
            None,
            "the change counts for `late`"
        );
        let second = cache.load(&names).expect("load");
        assert_eq!(second[0].enabled, Some(true));
        assert_eq!(cache.cached(&names, late), Some(second.clone()));
        // The newer read now serves `early` too: it began after it as well.
        assert_eq!(cache.cached(&names, early), Some(second));
    }

    /// PostgreSQL: nothing is answered on the async thread; every load reads the
    /// shared counter, so another node's write is seen by the next load.
    #[test]
    fn postgresql_loads_see_another_nodes_write() {
        let (guard, store) = store_of(Kind::Postgresql);
        let cache = CoiCache::new(store);
        let names = vec!["a@x".to_owned()];
        assert_eq!(cache.load(&names).expect("load")[0].enabled, None);
        assert_eq!(
            cache.cached(&names, Instant::now()),
            None,
            "never on the async thread"
        );
        let node_b = guard.reopen();
        node_b.set("a@x", ENTRY_ENABLED, Some("yes")).expect("set");
        assert_eq!(cache.load(&names).expect("load")[0].enabled, Some(true));
        node_b.set("a@x", ENTRY_ENABLED, None).expect("unset");
        assert_eq!(cache.load(&names).expect("load")[0].enabled, None);
    }
}
