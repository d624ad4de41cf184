//! The SQLite engine behind the store's one interface: each method hands over to the
//! part of `super` that holds its SQL.

use std::collections::HashSet;
use std::time::Instant;

use super::Sqlite;
use crate::store::engine::{Counter, Engine};
use crate::store::transfer::{Row, TransferError};
use crate::store::{
    Claim, Claimed, CommitError, Depth, DeviceToken, Kinds, NewPush, Op, PushKind, QueuedPush,
    Settle, StoreError, StoredCoi, Subscription, Table, Write,
};

impl Engine for Sqlite {
    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        Sqlite::check_writable(self)
    }

    fn counters_are_local(&self) -> bool {
        true
    }

    fn counter(&self, which: Counter) -> Result<i64, StoreError> {
        Sqlite::counter(self, which)
    }

    fn counter_since(&self, which: Counter, since: Instant) -> Result<i64, StoreError> {
        Sqlite::counter_since(self, which, since)
    }

    fn lookup(
        &self,
        table: Table,
        username: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Sqlite::lookup(self, table, username, key)
    }

    fn scan(
        &self,
        table: Table,
        username: &str,
        prefix: &str,
        depth: Depth,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Sqlite::scan(self, table, username, prefix, depth, limit)
    }

    fn apply(&self, username: &str, writes: &[Write]) -> Result<(), StoreError> {
        Sqlite::apply(self, username, writes)
    }

    fn stored_coi(&self, username: &str) -> Result<StoredCoi, StoreError> {
        Sqlite::stored_coi(self, username)
    }

    fn commit(&self, username: &str, ops: &[Op], now: i64) -> Result<(), CommitError> {
        Sqlite::commit(self, username, ops, now)
    }

    fn secret_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> String,
    ) -> Result<String, StoreError> {
        Sqlite::secret_or_insert(self, name, make)
    }

    fn enqueue(&self, pushes: &[NewPush], max_queue: usize, now: i64) -> Result<usize, StoreError> {
        Sqlite::enqueue(self, pushes, max_queue, now)
    }

    fn queue_len(&self) -> Result<usize, StoreError> {
        Sqlite::queue_len(self)
    }

    fn queue_len_of(&self, kind: PushKind) -> Result<usize, StoreError> {
        Sqlite::queue_len_of(self, kind)
    }

    fn pending_pushes(
        &self,
        kind: PushKind,
        username: &str,
        id: &str,
    ) -> Result<usize, StoreError> {
        Sqlite::pending_pushes(self, kind, username, id)
    }

    fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        kinds: Kinds,
    ) -> Result<Vec<QueuedPush>, StoreError> {
        Sqlite::claim_due(self, now, lease_until, limit, kinds)
    }

    fn next_due(&self, kinds: Kinds) -> Result<Option<i64>, StoreError> {
        Sqlite::next_due(self, kinds)
    }

    fn push_done(&self, seq: i64) -> Result<(), StoreError> {
        Sqlite::push_done(self, seq)
    }

    fn push_retry(
        &self,
        seq: i64,
        attempts: u32,
        not_before: i64,
        payload: Option<&str>,
    ) -> Result<(), StoreError> {
        Sqlite::push_retry(self, seq, attempts, not_before, payload)
    }

    fn delay_endpoint(&self, endpoint: &str, until: i64) -> Result<usize, StoreError> {
        Sqlite::delay_endpoint(self, endpoint, until)
    }

    fn delay_kind(&self, kind: PushKind, until: i64) -> Result<usize, StoreError> {
        Sqlite::delay_kind(self, kind, until)
    }

    fn drop_overdue_pushes(&self, now: i64) -> Result<(usize, usize), StoreError> {
        Sqlite::drop_overdue_pushes(self, now)
    }

    fn settle_and_claim(&self, settled: &[Settle], claim: Claim) -> Result<Claimed, StoreError> {
        Sqlite::settle_and_claim(self, settled, claim)
    }

    fn queue_settle_and_claim(
        &self,
        new: &[NewPush],
        max_queue: usize,
        settled: &[Settle],
        claim: Claim,
    ) -> Result<(usize, Claimed), StoreError> {
        Sqlite::queue_settle_and_claim(self, new, max_queue, settled, claim)
    }

    fn subscriptions(&self, username: &str) -> Result<Vec<Subscription>, StoreError> {
        Sqlite::subscriptions(self, username)
    }

    fn subscription(&self, username: &str, id: &str) -> Result<Option<Subscription>, StoreError> {
        Sqlite::subscription(self, username, id)
    }

    fn delete_subscription(
        &self,
        username: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<bool, StoreError> {
        Sqlite::delete_subscription(self, username, id, endpoint)
    }

    fn expire_subscriptions(
        &self,
        username: Option<&str>,
        created_before: i64,
    ) -> Result<usize, StoreError> {
        Sqlite::expire_subscriptions(self, username, created_before)
    }

    fn tokens(&self, username: &str, since: i64) -> Result<Vec<DeviceToken>, StoreError> {
        Sqlite::tokens(self, username, since)
    }

    fn delete_token(&self, username: &str, id: &str) -> Result<bool, StoreError> {
        Sqlite::delete_token(self, username, id)
    }

    fn expire_tokens(&self, updated_before: i64) -> Result<usize, StoreError> {
        Sqlite::expire_tokens(self, updated_before)
    }

    fn token_count(&self) -> Result<usize, StoreError> {
        Sqlite::token_count(self)
    }

    fn target_users(&self, max: usize) -> Result<Option<HashSet<String>>, StoreError> {
        Sqlite::target_users(self, max)
    }

    fn schema_version(&self) -> i64 {
        crate::store::SCHEMA_VERSION
    }

    fn export(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        Sqlite::export(self, sink)
    }

    fn import(
        &self,
        rows: &mut dyn Iterator<Item = Result<Row, TransferError>>,
    ) -> Result<usize, TransferError> {
        Sqlite::import(self, rows)
    }
}
