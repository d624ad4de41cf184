//! One delivery at a time per (user, folder) while coid has not yet seen the folder
//! created: the first chats of a user that arrive together must not create
//! `COI/Chats` together.
//!
//! Why: Dovecot 2.3 (Maildir, the layout Debian ships) fails a `fileinto :create` of
//! `COI/Chats` with "Mailbox doesn't exist: COI" when another LMTP process is creating
//! the same folder at that moment; Pigeonhole then keeps the message in INBOX without
//! its flags. Found with eight first chats for one user handed to coid at once
//! (`tests/first_chats.rs`): one in INBOX in about one run of three. Delta Chat makes
//! that case common: a new user's first messages (SecureJoin, sync messages) arrive
//! together, and Postfix delivers them over parallel LMTP connections.
//!
//! So a transaction whose target creates its folder enters the gate for each of its
//! users first, and leaves it once Dovecot answered: a second transaction for the same
//! (user, folder) waits for the first one's answers, by which time the folder exists.
//! A user whose copy was delivered is remembered for that folder, and later
//! transactions pass without waiting (a folder deleted later is created again by the
//! next delivery, unguarded: only a burst right after a deletion could race again).
//!
//! A 250 is taken as the folder being there. Dovecot answers 250 for the fallback to
//! INBOX too, so a creation that failed for another reason (another coid process
//! creating it at the same moment) is remembered as done; only that one message is
//! misfiled, as before. A transaction whose deadline passed while Dovecot worked
//! leaves the gate without an answer, and the next one may go in while Dovecot is
//! still creating the folder: that takes a store slower than the deadline.
//!
//! No waiting in a cycle: locks are taken in sorted order, so two transactions sharing
//! several users cannot wait for each other; and a transaction enters the gate only
//! with its store connection in hand (the callers' rule), so one holding the gate
//! never waits for a connection held by one waiting at the gate. A transaction waiting
//! here holds its connection, and Dovecot its LMTP process, meanwhile: only the first
//! deliveries of a user into a folder wait, each for one transaction.
//!
//! Bounds: at most [`MAX_KNOWN`] remembered pairs (when full, forgotten all at once:
//! the next first deliveries wait again, nothing worse); waiting is bounded by the
//! caller's transaction deadline. Per backend, so per coid process and per
//! configuration: coid nodes that deliver to the same Dovecot do not see each other's
//! gates, nor do sessions of the old configuration and the new one during a reload.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::{Delivery, Job};

/// Most (user, folder) pairs remembered as created.
pub const MAX_KNOWN: usize = 100_000;
/// Above this many per-pair locks, unused ones are dropped (left by a wait that was
/// given up).
const MAX_BUSY: usize = 10_000;

/// A user (the state store's username) and a folder (policy name, `/` separated).
pub type Key = (String, String);

/// The gate; one per backend, shared by its transactions.
#[derive(Default)]
pub struct CreateGate {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    known: HashSet<Key>,
    busy: HashMap<Key, Arc<AsyncMutex<()>>>,
}

/// Passage through the gate: held while the transaction runs.
pub struct Pass {
    keys: Vec<Key>,
    guards: Vec<OwnedMutexGuard<()>>,
}

impl CreateGate {
    /// An empty gate.
    pub fn new() -> CreateGate {
        CreateGate::default()
    }

    /// The pairs a transaction for these jobs (all with one target) must guard:
    /// none unless the target creates its folder.
    pub fn keys<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Vec<Key> {
        let mut keys: Vec<Key> = jobs
            .into_iter()
            .filter(|job| job.target.create)
            .filter_map(|job| {
                let folder = job.target.folder.clone()?;
                Some((job.user.username.clone(), folder))
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Waits until no other transaction holds any of `keys` not yet known as
    /// created; returns at once when all are known (or there are none).
    pub async fn enter(&self, keys: Vec<Key>) -> Pass {
        // Most transactions create nothing: they never touch the shared state.
        if keys.is_empty() {
            return Pass {
                keys,
                guards: Vec::new(),
            };
        }
        let waits: Vec<(Key, Arc<AsyncMutex<()>>)> = {
            let mut state = self.lock();
            if state.busy.len() > MAX_BUSY {
                state.busy.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            let State { known, busy } = &mut *state;
            keys.into_iter()
                .filter(|key| !known.contains(key))
                .map(|key| {
                    let lock = busy.entry(key.clone()).or_default();
                    (key, Arc::clone(lock))
                })
                .collect()
        };
        let mut pass = Pass {
            keys: Vec::with_capacity(waits.len()),
            guards: Vec::with_capacity(waits.len()),
        };
        for (key, lock) in waits {
            pass.guards.push(lock.lock_owned().await);
            pass.keys.push(key);
        }
        pass
    }

    /// Ends `pass` once the store answered `copies` (the transaction's): each user
    /// whose copy was delivered is remembered as having the folder.
    pub fn leave<'a>(&self, pass: Pass, copies: impl IntoIterator<Item = &'a Delivery>) {
        let Pass { keys, guards } = pass;
        if keys.is_empty() {
            return;
        }
        let delivered: HashSet<&str> = copies
            .into_iter()
            .filter(|c| c.outcome.is_delivered())
            .map(|c| c.job.user.username.as_str())
            .collect();
        let mut state = self.lock();
        drop(guards);
        for key in keys {
            if delivered.contains(key.0.as_str()) {
                if state.known.len() >= MAX_KNOWN {
                    state.known.clear();
                }
                state.known.insert(key.clone());
            }
            if state
                .busy
                .get(&key)
                .is_some_and(|lock| Arc::strong_count(lock) == 1)
            {
                state.busy.remove(&key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it can only have left valid sets behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[path = "create_gate_tests.rs"]
mod tests;
