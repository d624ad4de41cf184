//! The durable push queue: one row per push still to send, so a restart loses none.
//! Bounded by the caller's `max_queue`. A worker claims due rows by moving their
//! `not_before` past a lease (so a row whose sender died is tried again once the lease
//! ends), then reports the result: done (row deleted), retry later, or payload
//! replaced. Rows go with their subscription (`super::subscriptions`).
//!
//! Times here are unix milliseconds.

use rusqlite::{Transaction, params};

use super::{Store, StoreError, count};

/// A push to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPush {
    /// Whose subscription.
    pub username: String,
    /// The subscription id.
    pub subscription: String,
    /// The plaintext JSON.
    pub payload: String,
    /// The payload carries the message body (`content`): after a 413 it is sent once
    /// more without.
    pub with_content: bool,
    /// A subscription's validation push (WebPush spec "Subscription Validation").
    pub validation: bool,
    /// Not before this time.
    pub not_before: i64,
    /// Dropped when not sent by this time.
    pub deadline: i64,
}

/// A claimed push, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPush {
    /// Row id.
    pub seq: i64,
    /// Whose.
    pub username: String,
    /// Subscription id.
    pub subscription: String,
    /// The plaintext JSON.
    pub payload: String,
    /// See [`NewPush::with_content`].
    pub with_content: bool,
    /// See [`NewPush::validation`].
    pub validation: bool,
    /// Attempts that failed temporarily so far.
    pub attempts: u32,
    /// Dropped when not sent by this time.
    pub deadline: i64,
    /// The subscription's push endpoint.
    pub endpoint: String,
    /// The subscription's `p256dh`.
    pub p256dh: String,
    /// The subscription's `auth`.
    pub auth: String,
}

/// Inserts `push` unless the queue holds `max_queue` rows already; true if stored.
pub(super) fn insert(
    tx: &Transaction<'_>,
    push: &NewPush,
    max_queue: usize,
    now: i64,
) -> Result<bool, StoreError> {
    if queue_len(tx)? >= max_queue {
        return Ok(false);
    }
    put(tx, push, now)?;
    Ok(true)
}

/// Rows in the queue, inside `tx`.
fn queue_len(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    Ok(count(tx, "SELECT count(*) FROM push_queue", [])?)
}

/// Inserts `push`, whatever the queue holds.
fn put(tx: &Transaction<'_>, push: &NewPush, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO push_queue (username, subscription, payload, with_content, validation,
                                 attempts, not_before, deadline, created)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)",
    )?
    .execute(params![
        push.username,
        push.subscription,
        push.payload,
        push.with_content,
        push.validation,
        push.not_before,
        push.deadline,
        now
    ])?;
    Ok(())
}

impl Store {
    /// Queues `pushes` in one transaction, as many as fit under `max_queue`; returns
    /// how many were stored.
    ///
    /// # Errors
    /// SQLite failed; nothing was stored.
    pub fn enqueue(
        &self,
        pushes: &[NewPush],
        max_queue: usize,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        // Counted once: the queue only grows by what this loop puts.
        let room = max_queue.saturating_sub(queue_len(&tx)?);
        let stored = pushes.len().min(room);
        for push in pushes.iter().take(stored) {
            put(&tx, push, now)?;
        }
        tx.commit()?;
        Ok(stored)
    }

    /// Rows in the queue.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn queue_len(&self) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        Ok(count(&conn, "SELECT count(*) FROM push_queue", [])?)
    }

    /// Pending pushes of one subscription.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn pending_pushes(&self, username: &str, id: &str) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        let sql = "SELECT count(*) FROM push_queue WHERE username = ?1 AND subscription = ?2";
        Ok(count(&conn, sql, params![username, id])?)
    }

    /// Up to `limit` rows due at `now`, oldest first, each leased until `lease_until`.
    /// Rows past their deadline, or whose subscription is gone, are deleted instead.
    ///
    /// # Errors
    /// SQLite failed; nothing was claimed.
    pub fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueuedPush>, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let rows = {
            let mut stmt = tx.prepare_cached(
                "SELECT q.seq, q.username, q.subscription, q.payload, q.with_content,
                        q.validation, q.attempts, q.deadline, s.endpoint, s.p256dh, s.auth
                   FROM push_queue q LEFT JOIN push_subscriptions s
                     ON s.username = q.username AND s.id = q.subscription
                  WHERE q.not_before <= ?1
                  ORDER BY q.not_before, q.seq LIMIT ?2",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![now, limit], claimed_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut claimed = Vec::new();
        for (push, has_subscription) in rows {
            if !has_subscription || push.deadline < now {
                if has_subscription {
                    tracing::info!(
                        user = push.username,
                        subscription = push.subscription,
                        "push dropped: past its deadline"
                    );
                }
                tx.execute("DELETE FROM push_queue WHERE seq = ?1", params![push.seq])?;
            } else {
                tx.execute(
                    "UPDATE push_queue SET not_before = ?2 WHERE seq = ?1",
                    params![push.seq, lease_until],
                )?;
                claimed.push(push);
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// When the earliest row is due (leased rows: when their lease ends).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.lock()?;
        Ok(conn.query_row("SELECT min(not_before) FROM push_queue", [], |r| r.get(0))?)
    }

    /// Removes a row: sent, or given up.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn push_done(&self, seq: i64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute("DELETE FROM push_queue WHERE seq = ?1", params![seq])?;
        Ok(())
    }

    /// Tries a row again at `not_before`, after `attempts` temporary failures;
    /// `payload` replaces its payload (then without content).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn push_retry(
        &self,
        seq: i64,
        attempts: u32,
        not_before: i64,
        payload: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.lock()?;
        match payload {
            Some(payload) => conn.execute(
                "UPDATE push_queue SET attempts = ?2, not_before = ?3, payload = ?4,
                        with_content = 0 WHERE seq = ?1",
                params![seq, attempts, not_before, payload],
            )?,
            None => conn.execute(
                "UPDATE push_queue SET attempts = ?2, not_before = ?3 WHERE seq = ?1",
                params![seq, attempts, not_before],
            )?,
        };
        Ok(())
    }

    /// Holds back every row for `endpoint` until `until` (RFC 8030 §8.4: 429); rows
    /// due later keep their time. Returns the rows moved.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn delay_endpoint(&self, endpoint: &str, until: i64) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        let moved = conn.execute(
            "UPDATE push_queue SET not_before = ?2
              WHERE not_before < ?2 AND (username, subscription) IN
                    (SELECT username, id FROM push_subscriptions WHERE endpoint = ?1)",
            params![endpoint, until],
        )?;
        Ok(moved)
    }

    /// Deletes rows past their deadline; returns how many.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn drop_overdue_pushes(&self, now: i64) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        Ok(conn.execute("DELETE FROM push_queue WHERE deadline < ?1", params![now])?)
    }
}

/// One row of [`Store::claim_due`]'s query, and whether its subscription exists.
fn claimed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(QueuedPush, bool)> {
    let endpoint: Option<String> = r.get(8)?;
    let has_subscription = endpoint.is_some();
    let push = QueuedPush {
        seq: r.get(0)?,
        username: r.get(1)?,
        subscription: r.get(2)?,
        payload: r.get(3)?,
        with_content: r.get(4)?,
        validation: r.get(5)?,
        attempts: r.get(6)?,
        deadline: r.get(7)?,
        endpoint: endpoint.unwrap_or_default(),
        p256dh: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        auth: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
    };
    Ok((push, has_subscription))
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
