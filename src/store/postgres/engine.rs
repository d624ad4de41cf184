//! The PostgreSQL engine behind the store's one interface: each method hands over to
//! the part of `super` that holds its SQL.

use std::collections::HashSet;

use super::Postgres;
use crate::store::engine::{Counter, Engine};
use crate::store::transfer::{Row, TransferError};
use crate::store::{
    Claim, Claimed, CommitError, Depth, DeviceToken, Kinds, NewPush, Op, PushKind, QueuedPush,
    Settle, StoreError, StoredCoi, Subscription, Table, Write,
};

impl Engine for Postgres {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        Postgres::check_writable(self)
    }

    fn counters_are_local(&self) -> bool {
        false
    }

    fn watch_queue(&self, wake: Box<dyn Fn() + Send + Sync>) {
        Postgres::watch_queue(self, wake);
    }

    fn counter(&self, which: Counter) -> Result<i64, StoreError> {
        Postgres::counter(self, which)
    }

    fn lookup(
        &self,
        table: Table,
        username: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Postgres::lookup(self, table, username, key)
    }

    fn scan(
        &self,
        table: Table,
        username: &str,
        prefix: &str,
        depth: Depth,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Postgres::scan(self, table, username, prefix, depth, limit)
    }

    fn apply(&self, username: &str, writes: &[Write]) -> Result<(), StoreError> {
        Postgres::apply(self, username, writes)
    }

    fn stored_coi(&self, username: &str) -> Result<StoredCoi, StoreError> {
        Postgres::stored_coi(self, username)
    }

    fn commit(&self, username: &str, ops: &[Op], now: i64) -> Result<(), CommitError> {
        Postgres::commit(self, username, ops, now)
    }

    fn secret_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> String,
    ) -> Result<String, StoreError> {
        Postgres::secret_or_insert(self, name, make)
    }

    fn enqueue(&self, pushes: &[NewPush], max_queue: usize, now: i64) -> Result<usize, StoreError> {
        Postgres::enqueue(self, pushes, max_queue, now)
    }

    fn queue_len(&self) -> Result<usize, StoreError> {
        Postgres::queue_len(self)
    }

    fn queue_len_of(&self, kind: PushKind) -> Result<usize, StoreError> {
        Postgres::queue_len_of(self, kind)
    }

    fn pending_pushes(
        &self,
        kind: PushKind,
        username: &str,
        id: &str,
    ) -> Result<usize, StoreError> {
        Postgres::pending_pushes(self, kind, username, id)
    }

    fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        kinds: Kinds,
    ) -> Result<Vec<QueuedPush>, StoreError> {
        Postgres::claim_due(self, now, lease_until, limit, kinds)
    }

    fn next_due(&self, kinds: Kinds) -> Result<Option<i64>, StoreError> {
        Postgres::next_due(self, kinds)
    }

    fn push_done(&self, seq: i64) -> Result<(), StoreError> {
        Postgres::push_done(self, seq)
    }

    fn push_retry(
        &self,
        seq: i64,
        attempts: u32,
        not_before: i64,
        payload: Option<&str>,
    ) -> Result<(), StoreError> {
        Postgres::push_retry(self, seq, attempts, not_before, payload)
    }

    fn delay_endpoint(&self, endpoint: &str, until: i64) -> Result<usize, StoreError> {
        Postgres::delay_endpoint(self, endpoint, until)
    }

    fn delay_kind(&self, kind: PushKind, until: i64) -> Result<usize, StoreError> {
        Postgres::delay_kind(self, kind, until)
    }

    fn drop_overdue_pushes(&self, now: i64) -> Result<(usize, usize), StoreError> {
        Postgres::drop_overdue_pushes(self, now)
    }

    fn settle_and_claim(&self, settled: &[Settle], claim: Claim) -> Result<Claimed, StoreError> {
        Postgres::settle_and_claim(self, settled, claim)
    }

    fn subscriptions(&self, username: &str) -> Result<Vec<Subscription>, StoreError> {
        Postgres::subscriptions(self, username)
    }

    fn subscription(&self, username: &str, id: &str) -> Result<Option<Subscription>, StoreError> {
        Postgres::subscription(self, username, id)
    }

    fn delete_subscription(
        &self,
        username: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<bool, StoreError> {
        Postgres::delete_subscription(self, username, id, endpoint)
    }

    fn expire_subscriptions(
        &self,
        username: Option<&str>,
        created_before: i64,
    ) -> Result<usize, StoreError> {
        Postgres::expire_subscriptions(self, username, created_before)
    }

    fn tokens(&self, username: &str, since: i64) -> Result<Vec<DeviceToken>, StoreError> {
        Postgres::tokens(self, username, since)
    }

    fn delete_token(&self, username: &str, id: &str) -> Result<bool, StoreError> {
        Postgres::delete_token(self, username, id)
    }

    fn expire_tokens(&self, updated_before: i64) -> Result<usize, StoreError> {
        Postgres::expire_tokens(self, updated_before)
    }

    fn token_count(&self) -> Result<usize, StoreError> {
        Postgres::token_count(self)
    }

    fn target_users(&self, max: usize) -> Result<Option<HashSet<String>>, StoreError> {
        Postgres::target_users(self, max)
    }

    fn schema_version(&self) -> i64 {
        crate::store::POSTGRES_SCHEMA_VERSION
    }

    fn export(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        Postgres::export(self, sink)
    }

    fn import(
        &self,
        rows: &mut dyn Iterator<Item = Result<Row, TransferError>>,
    ) -> Result<usize, TransferError> {
        Postgres::import(self, rows)
    }
}
