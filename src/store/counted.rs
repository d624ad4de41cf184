//! Counts the store's failures, whatever the engine: [`Counted`] wraps the engine
//! behind every [`super::Store`] and forwards each call, adding one to the store's
//! error count ([`super::Store::errors`]) for each call that failed for the
//! database's sake (a commit refused by a WebPush rule is not a failure). The metrics
//! read the count at scrape time (`coid_state_store_errors_total{engine}`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::engine::{Counter, Engine};
use super::transfer::{Row, TransferError};
use super::{
    Claim, Claimed, CommitError, Depth, DeviceToken, Kinds, NewPush, Op, PushKind, QueuedPush,
    Settle, StoreError, StoredCoi, Subscription, Table, Write,
};

/// An error that may or may not be the database's failure.
trait Failure {
    fn is_failure(&self) -> bool;
}

impl Failure for StoreError {
    fn is_failure(&self) -> bool {
        true
    }
}

impl Failure for TransferError {
    fn is_failure(&self) -> bool {
        matches!(self, TransferError::Store(_))
    }
}

impl Failure for CommitError {
    fn is_failure(&self) -> bool {
        matches!(self, CommitError::Store(_))
    }
}

/// An engine whose failures are counted.
pub(super) struct Counted {
    inner: Arc<dyn Engine>,
    errors: Arc<AtomicU64>,
}

impl Counted {
    /// `inner`, counting into `errors`.
    pub(super) fn new(inner: Arc<dyn Engine>, errors: Arc<AtomicU64>) -> Counted {
        Counted { inner, errors }
    }

    fn count<T, E: Failure>(&self, result: Result<T, E>) -> Result<T, E> {
        if let Err(err) = &result
            && err.is_failure()
        {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl Engine for Counted {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.count(self.inner.check_writable())
    }

    fn counters_are_local(&self) -> bool {
        self.inner.counters_are_local()
    }

    fn watch_queue(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.inner.watch_queue(wake)
    }

    fn counter(&self, which: Counter) -> Result<i64, StoreError> {
        self.count(self.inner.counter(which))
    }

    fn counter_since(&self, which: Counter, since: Instant) -> Result<i64, StoreError> {
        self.count(self.inner.counter_since(which, since))
    }

    fn lookup(
        &self,
        table: Table,
        username: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.count(self.inner.lookup(table, username, key))
    }

    fn scan(
        &self,
        table: Table,
        username: &str,
        prefix: &str,
        depth: Depth,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.count(self.inner.scan(table, username, prefix, depth, limit))
    }

    fn apply(&self, username: &str, writes: &[Write]) -> Result<(), StoreError> {
        self.count(self.inner.apply(username, writes))
    }

    fn stored_coi(&self, username: &str) -> Result<StoredCoi, StoreError> {
        self.count(self.inner.stored_coi(username))
    }

    fn commit(&self, username: &str, ops: &[Op], now: i64) -> Result<(), CommitError> {
        self.count(self.inner.commit(username, ops, now))
    }

    fn secret_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> String,
    ) -> Result<String, StoreError> {
        self.inner.secret_or_insert(name, make)
    }

    fn enqueue(&self, pushes: &[NewPush], max_queue: usize, now: i64) -> Result<usize, StoreError> {
        self.count(self.inner.enqueue(pushes, max_queue, now))
    }

    fn queue_len(&self) -> Result<usize, StoreError> {
        self.count(self.inner.queue_len())
    }

    fn queue_len_of(&self, kind: PushKind) -> Result<usize, StoreError> {
        self.count(self.inner.queue_len_of(kind))
    }

    fn pending_pushes(
        &self,
        kind: PushKind,
        username: &str,
        id: &str,
    ) -> Result<usize, StoreError> {
        self.count(self.inner.pending_pushes(kind, username, id))
    }

    fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        kinds: Kinds,
    ) -> Result<Vec<QueuedPush>, StoreError> {
        self.count(self.inner.claim_due(now, lease_until, limit, kinds))
    }

    fn next_due(&self, kinds: Kinds) -> Result<Option<i64>, StoreError> {
        self.count(self.inner.next_due(kinds))
    }

    fn push_done(&self, seq: i64) -> Result<(), StoreError> {
        self.count(self.inner.push_done(seq))
    }

    fn push_retry(
        &self,
        seq: i64,
        attempts: u32,
        not_before: i64,
        payload: Option<&str>,
    ) -> Result<(), StoreError> {
        self.count(self.inner.push_retry(seq, attempts, not_before, payload))
    }

    fn delay_endpoint(&self, endpoint: &str, until: i64) -> Result<usize, StoreError> {
        self.count(self.inner.delay_endpoint(endpoint, until))
    }

    fn delay_kind(&self, kind: PushKind, until: i64) -> Result<usize, StoreError> {
        self.count(self.inner.delay_kind(kind, until))
    }

    fn drop_overdue_pushes(&self, now: i64) -> Result<(usize, usize), StoreError> {
        self.count(self.inner.drop_overdue_pushes(now))
    }

    fn settle_and_claim(&self, settled: &[Settle], claim: Claim) -> Result<Claimed, StoreError> {
        self.count(self.inner.settle_and_claim(settled, claim))
    }

    fn queue_settle_and_claim(
        &self,
        new: &[NewPush],
        max_queue: usize,
        settled: &[Settle],
        claim: Claim,
    ) -> Result<(usize, Claimed), StoreError> {
        self.count(
            self.inner
                .queue_settle_and_claim(new, max_queue, settled, claim),
        )
    }

    fn subscriptions(&self, username: &str) -> Result<Vec<Subscription>, StoreError> {
        self.count(self.inner.subscriptions(username))
    }

    fn subscription(&self, username: &str, id: &str) -> Result<Option<Subscription>, StoreError> {
        self.count(self.inner.subscription(username, id))
    }

    fn delete_subscription(
        &self,
        username: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.count(self.inner.delete_subscription(username, id, endpoint))
    }

    fn expire_subscriptions(
        &self,
        username: Option<&str>,
        created_before: i64,
    ) -> Result<usize, StoreError> {
        self.count(self.inner.expire_subscriptions(username, created_before))
    }

    fn tokens(&self, username: &str, since: i64) -> Result<Vec<DeviceToken>, StoreError> {
        self.count(self.inner.tokens(username, since))
    }

    fn delete_token(&self, username: &str, id: &str) -> Result<bool, StoreError> {
        self.count(self.inner.delete_token(username, id))
    }

    fn expire_tokens(&self, updated_before: i64) -> Result<usize, StoreError> {
        self.count(self.inner.expire_tokens(updated_before))
    }

    fn token_count(&self) -> Result<usize, StoreError> {
        self.count(self.inner.token_count())
    }

    fn target_users(&self, max: usize) -> Result<Option<HashSet<String>>, StoreError> {
        self.count(self.inner.target_users(max))
    }

    fn schema_version(&self) -> i64 {
        self.inner.schema_version()
    }

    fn export(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        self.count(self.inner.export(sink))
    }

    fn import(
        &self,
        rows: &mut dyn Iterator<Item = Result<Row, TransferError>>,
    ) -> Result<usize, TransferError> {
        self.count(self.inner.import(rows))
    }
}
