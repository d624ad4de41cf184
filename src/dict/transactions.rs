//! The open transactions of one dict connection, by id, and their limits: at most
//! `max_transactions` open, `max_changes` changes each, `max_pending_bytes` of
//! uncommitted keys and values over all of them. Sans-IO bookkeeping for
//! `super::session`; nothing here touches the store.
//!
//! A transaction that breaks a rule (or is told it failed) drops its changes at once
//! and remembers only the first reason; its commit then reports that reason. A `B`
//! beyond the limit opens nothing, so its commit finds no transaction.

use std::collections::BTreeMap;

use super::session::Limits;

/// One change of a transaction, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The dict key.
    pub key: String,
    /// The new value; `None` for `U`.
    pub value: Option<String>,
}

struct Transaction {
    username: String,
    changes: Vec<Change>,
    /// Bytes counted against `max_pending_bytes`.
    bytes: usize,
    /// Set once the transaction cannot succeed; its changes are gone then.
    failure: Option<&'static str>,
}

/// Bookkeeping per change on top of its key and value.
const CHANGE_OVERHEAD: usize = 64;

/// What a commit of an id that is not open reports.
const NOT_OPEN: &str = "no such transaction (never begun, or refused: too many open)";

/// The open transactions of a connection.
pub struct Transactions {
    open: BTreeMap<u32, Transaction>,
    pending_bytes: usize,
    max_transactions: usize,
    max_changes: usize,
    max_pending_bytes: usize,
}

impl Transactions {
    /// None open yet.
    pub fn new(limits: &Limits) -> Transactions {
        Transactions {
            open: BTreeMap::new(),
            pending_bytes: 0,
            max_transactions: limits.max_transactions,
            max_changes: limits.max_changes,
            max_pending_bytes: limits.max_pending_bytes,
        }
    }

    /// True when none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Drops every open transaction.
    pub fn clear(&mut self) {
        self.open.clear();
        self.pending_bytes = 0;
    }

    /// `B`: opens `id` for `username`, already failed if `failure` says so. An id in
    /// use fails that transaction; one past the limit is not opened.
    pub fn begin(&mut self, id: u32, username: String, failure: Option<&'static str>) {
        if self.open.contains_key(&id) {
            return self.fail(id, "transaction id used twice");
        }
        if self.open.len() >= self.max_transactions {
            tracing::warn!(
                id,
                max = self.max_transactions,
                "dict client: too many open transactions; not opening one more"
            );
            return;
        }
        let tx = Transaction {
            username,
            changes: Vec::new(),
            bytes: 0,
            failure,
        };
        self.open.insert(id, tx);
    }

    /// `S` (`Some` value) or `U` (`None`): records the change, within the limits.
    pub fn change(&mut self, id: u32, key: String, value: Option<String>) {
        let size = key.len() + value.as_ref().map_or(0, String::len) + CHANGE_OVERHEAD;
        let over_bytes = self.pending_bytes + size > self.max_pending_bytes;
        let Some(tx) = self.open.get_mut(&id) else {
            tracing::debug!(id, "dict client: change for a transaction that is not open");
            return;
        };
        if tx.failure.is_some() {
            return;
        }
        if tx.changes.len() >= self.max_changes {
            return self.fail(id, "too many changes in one transaction");
        }
        if over_bytes {
            return self.fail(id, "too much uncommitted data on this connection");
        }
        tx.changes.push(Change { key, value });
        tx.bytes += size;
        self.pending_bytes += size;
    }

    /// Marks `id` failed and frees its changes; the first reason stays.
    pub fn fail(&mut self, id: u32, reason: &'static str) {
        let Some(tx) = self.open.get_mut(&id) else {
            tracing::debug!(
                id,
                reason,
                "dict client: error for a transaction that is not open"
            );
            return;
        };
        tracing::debug!(id, reason, "dict transaction failed");
        self.pending_bytes = self.pending_bytes.saturating_sub(tx.bytes);
        tx.bytes = 0;
        tx.changes = Vec::new();
        tx.failure.get_or_insert(reason);
    }

    /// `R`: forgets `id` (nothing if it is not open).
    pub fn rollback(&mut self, id: u32) {
        if let Some(tx) = self.open.remove(&id) {
            self.pending_bytes = self.pending_bytes.saturating_sub(tx.bytes);
        }
    }

    /// `C`: closes `id` and hands out its user and changes.
    ///
    /// # Errors
    /// Why it cannot be committed: not open, or failed earlier.
    pub fn commit(&mut self, id: u32) -> Result<(String, Vec<Change>), &'static str> {
        let tx = self.open.remove(&id).ok_or(NOT_OPEN)?;
        self.pending_bytes = self.pending_bytes.saturating_sub(tx.bytes);
        match tx.failure {
            Some(reason) => Err(reason),
            None => Ok((tx.username, tx.changes)),
        }
    }
}
