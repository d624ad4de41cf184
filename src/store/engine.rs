//! The one storage interface: every operation the state store offers, as a trait that
//! each database implements (`super::sqlite`, and `super::postgres` for several coid
//! nodes sharing one state). [`super::Store`] is a cheap-clone handle over
//! `Arc<dyn Engine>` and dereferences to it, so callers write `store.commit(..)` and
//! never name an engine.
//!
//! The contract every engine keeps (the store's tests run against each of them):
//! - every method is one transaction: all of it or nothing;
//! - calls block (a database round trip): async code calls them through
//!   `tokio::task::spawn_blocking`; only [`Engine::counter`] may be called on an async
//!   thread, and only when [`Engine::counters_are_local`] says it does not block;
//! - the value types (`CoiSettings`, `NewPush`, `Claim`, `Subscription`, …) are the
//!   store's, not an engine's.

use std::collections::HashSet;
use std::time::Instant;

use super::transfer::{Row, TransferError};
use super::{
    Claim, Claimed, CommitError, Depth, DeviceToken, Kinds, NewPush, Op, PushKind, QueuedPush,
    Settle, StoreError, StoredCoi, Subscription, Table, Write,
};

/// A counter that moves with every change of some state, whoever makes it: caches
/// above the engine are good while it stands still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Every change to the users' METADATA entries (`super::CoiCache`).
    Settings,
    /// Every change that may give or take a user's last push target
    /// (`super::TargetUsers`).
    Targets,
}

/// The state store's operations. See the module header for the contract.
pub trait Engine: Send + Sync {
    /// What and where this store is, for logs (never a password).
    fn describe(&self) -> String;

    /// Which engine: `sqlite` or `postgresql` (a metrics label).
    fn kind(&self) -> &'static str;

    /// Checks that the store can be written now.
    ///
    /// # Errors
    /// [`StoreError::ReadOnly`] or the database's own error.
    fn check_writable(&self) -> Result<(), StoreError>;

    /// Whether [`Engine::counter`] is a local read that never waits on the network or
    /// on the store's main connection (then the delivery path may read it on an async
    /// thread).
    fn counters_are_local(&self) -> bool;

    /// Calls `wake` (from a thread of its own) whenever another process or node queues
    /// a push, until the store is dropped; engines whose processes share no database
    /// notifications do nothing (the worker's own timer and wake-ups remain).
    fn watch_queue(&self, wake: Box<dyn Fn() + Send + Sync>) {
        drop(wake);
    }

    /// The counter now.
    ///
    /// # Errors
    /// It cannot be read (then callers cache nothing).
    fn counter(&self, which: Counter) -> Result<i64, StoreError>;

    /// The counter as a read that began at or after `since` saw it: it counts every
    /// change committed before `since`, and may be a read another caller made. The
    /// delivery path asks with the moment it began deciding a message, so that one
    /// read serves both caches for that message (and any other message decided
    /// since it began). Engines that keep no read to share read now.
    ///
    /// # Errors
    /// It cannot be read (then callers cache nothing).
    fn counter_since(&self, which: Counter, since: Instant) -> Result<i64, StoreError> {
        let _ = since;
        self.counter(which)
    }

    /// One key of a user.
    ///
    /// # Errors
    /// The database failed.
    fn lookup(&self, table: Table, username: &str, key: &str)
    -> Result<Option<String>, StoreError>;

    /// The user's keys that start with `prefix` (byte-wise, as Dovecot's own dicts
    /// compare) and match `depth`, sorted by key (byte-wise), at most `limit` of them.
    ///
    /// # Errors
    /// The database failed.
    fn scan(
        &self,
        table: Table,
        username: &str,
        prefix: &str,
        depth: Depth,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Applies all `writes` of one user: either every change is stored or none is.
    ///
    /// # Errors
    /// The database failed; nothing was written.
    fn apply(&self, username: &str, writes: &[Write]) -> Result<(), StoreError>;

    /// What `username` set of the COI settings (invalid stored values ignored with a
    /// warning).
    ///
    /// # Errors
    /// The database failed.
    fn stored_coi(&self, username: &str) -> Result<StoredCoi, StoreError>;

    /// Applies every op of `username` at `now` (unix ms), all or nothing.
    ///
    /// # Errors
    /// [`CommitError::Refused`] or database trouble; nothing was written.
    fn commit(&self, username: &str, ops: &[Op], now: i64) -> Result<(), CommitError>;

    /// The secret `name`, created with `make` if there is none yet; several processes
    /// (or nodes) creating it at once agree on one value: the first insert wins.
    ///
    /// # Errors
    /// The database failed.
    fn secret_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> String,
    ) -> Result<String, StoreError>;

    /// Queues `pushes` in order, as many as fit under `max_queue`. A push whose
    /// [`NewPush::dedupe`] key was queued in the last [`crate::store::DEDUPE_KEEP_MS`]
    /// is skipped, taking no room (the message was delivered again). Returns how many were taken, stored or skipped
    /// as duplicates: the pushes after them were dropped for the bound.
    ///
    /// # Errors
    /// The database failed; nothing was stored.
    fn enqueue(&self, pushes: &[NewPush], max_queue: usize, now: i64) -> Result<usize, StoreError>;

    /// Rows in the queue.
    ///
    /// # Errors
    /// The database failed.
    fn queue_len(&self) -> Result<usize, StoreError>;

    /// Rows of one kind in the queue.
    ///
    /// # Errors
    /// The database failed.
    fn queue_len_of(&self, kind: PushKind) -> Result<usize, StoreError>;

    /// Pending pushes of one target (subscription or token) of a kind.
    ///
    /// # Errors
    /// The database failed.
    fn pending_pushes(&self, kind: PushKind, username: &str, id: &str)
    -> Result<usize, StoreError>;

    /// Up to `limit` rows due at `now`, oldest first, each leased until `lease_until`.
    /// Rows past their deadline, or whose target is gone, are deleted instead.
    ///
    /// # Errors
    /// The database failed; nothing was claimed.
    fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        kinds: Kinds,
    ) -> Result<Vec<QueuedPush>, StoreError>;

    /// When the earliest row of `kinds` is due (leased rows: when their lease ends).
    ///
    /// # Errors
    /// The database failed.
    fn next_due(&self, kinds: Kinds) -> Result<Option<i64>, StoreError>;

    /// Removes a row: sent, or given up.
    ///
    /// # Errors
    /// The database failed.
    fn push_done(&self, seq: i64) -> Result<(), StoreError>;

    /// Tries a row again at `not_before`, after `attempts` temporary failures;
    /// `payload` replaces its payload (then without content).
    ///
    /// # Errors
    /// The database failed.
    fn push_retry(
        &self,
        seq: i64,
        attempts: u32,
        not_before: i64,
        payload: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Holds back every Web Push row for `endpoint` until `until` (RFC 8030 §8.4:
    /// 429); rows due later keep their time. Returns the rows moved.
    ///
    /// # Errors
    /// The database failed.
    fn delay_endpoint(&self, endpoint: &str, until: i64) -> Result<usize, StoreError>;

    /// Holds back every row of `kind` until `until`; rows due later keep their time.
    /// Returns the rows moved.
    ///
    /// # Errors
    /// The database failed.
    fn delay_kind(&self, kind: PushKind, until: i64) -> Result<usize, StoreError>;

    /// Deletes rows past their deadline, and dedupe keys past their day; returns how
    /// many rows of each kind (Web Push, Delta Chat).
    ///
    /// # Errors
    /// The database failed.
    fn drop_overdue_pushes(&self, now: i64) -> Result<(usize, usize), StoreError>;

    /// Applies `settled` in order, then claims by `claim`, in one transaction.
    ///
    /// # Errors
    /// The database failed; nothing was settled or claimed.
    fn settle_and_claim(&self, settled: &[Settle], claim: Claim) -> Result<Claimed, StoreError>;

    /// Queues `new` (as [`Engine::enqueue`], within `max_queue`, at `claim.now`),
    /// then applies `settled` and claims by `claim`: the push worker's round when the
    /// pushes of messages delivered in its own process come with it. Returns how many
    /// of `new` were taken, and the claim (which may hold rows of `new`).
    ///
    /// By default two transactions, the queueing and then the round; SQLite makes it
    /// one.
    ///
    /// # Errors
    /// The database failed: nothing was settled or claimed, and (in one transaction)
    /// nothing queued. By default `new` may be queued all the same; the dedupe keys
    /// of a delivered message's pushes keep a second try from queueing them twice.
    fn queue_settle_and_claim(
        &self,
        new: &[NewPush],
        max_queue: usize,
        settled: &[Settle],
        claim: Claim,
    ) -> Result<(usize, Claimed), StoreError> {
        let taken = match new {
            [] => 0,
            new => self.enqueue(new, max_queue, claim.now)?,
        };
        Ok((taken, self.settle_and_claim(settled, claim)?))
    }

    /// A user's subscriptions, by id.
    ///
    /// # Errors
    /// The database failed.
    fn subscriptions(&self, username: &str) -> Result<Vec<Subscription>, StoreError>;

    /// One subscription.
    ///
    /// # Errors
    /// The database failed.
    fn subscription(&self, username: &str, id: &str) -> Result<Option<Subscription>, StoreError>;

    /// Deletes a subscription and its pending pushes; with `endpoint`, only if it still
    /// points there. True if one was deleted.
    ///
    /// # Errors
    /// The database failed.
    fn delete_subscription(
        &self,
        username: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Deletes subscriptions never validated and created before `created_before` (of
    /// `username`, or of everyone), with their pending pushes; returns how many (at
    /// most a batch per call).
    ///
    /// # Errors
    /// The database failed.
    fn expire_subscriptions(
        &self,
        username: Option<&str>,
        created_before: i64,
    ) -> Result<usize, StoreError>;

    /// `username`'s device tokens set at or after `since`, least recently set first.
    ///
    /// # Errors
    /// The database failed.
    fn tokens(&self, username: &str, since: i64) -> Result<Vec<DeviceToken>, StoreError>;

    /// Deletes one token and its pending notifications; true if it existed.
    ///
    /// # Errors
    /// The database failed.
    fn delete_token(&self, username: &str, id: &str) -> Result<bool, StoreError>;

    /// Deletes tokens last set before `updated_before`, with their pending
    /// notifications; returns how many (at most a batch per call).
    ///
    /// # Errors
    /// The database failed.
    fn expire_tokens(&self, updated_before: i64) -> Result<usize, StoreError>;

    /// Tokens stored, of every user.
    ///
    /// # Errors
    /// The database failed.
    fn token_count(&self) -> Result<usize, StoreError>;

    /// Every user with a Web Push subscription or a Delta Chat token; `None` if there
    /// are more than `max`.
    ///
    /// # Errors
    /// The database failed.
    fn target_users(&self, max: usize) -> Result<Option<HashSet<String>>, StoreError>;

    /// The schema version of the database (each engine numbers its own).
    fn schema_version(&self) -> i64;

    /// Hands every row of state to `sink`, from one consistent snapshot, one row at a
    /// time (`super::transfer`); stops at the first error `sink` returns.
    ///
    /// # Errors
    /// The database failed, or `sink` did.
    fn export(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), TransferError>,
    ) -> Result<(), TransferError>;

    /// Stores `rows` in one transaction, taking them as they come, after checking the
    /// store holds no state at all; returns how many were stored. Any error (a row,
    /// the check, the database) leaves the store as it was.
    ///
    /// # Errors
    /// [`TransferError::NotEmpty`], an error `rows` yields, or the database's.
    fn import(
        &self,
        rows: &mut dyn Iterator<Item = Result<Row, TransferError>>,
    ) -> Result<usize, TransferError>;
}
