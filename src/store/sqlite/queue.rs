//! The durable push queue over SQLite (see `crate::store::queue` for the model): the
//! bound kept by a counter (schema 7), payloads shared by several rows stored once
//! (schema 8) with a count of those rows (schema 13), and the `Sqlite` methods around
//! `super::queue_rows`. Deleting a row counts by trigger; queueing counts once per
//! transaction, here, and numbers its rows from the same counter row (schema 14).

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use super::queue_rows::{
    claim_in, delay_endpoint_in, delay_kind_in, done_in, next_due_in, retry_in,
};
use super::{Sqlite, count};
use crate::store::dedupe::Runs;
use crate::store::{DEDUPE_KEEP_MS, Kinds, NewPush, PushKind, QueuedPush, StoreError};

/// Inserts `push` unless the queue holds `max_queue` rows already; true if stored
/// (or a duplicate of a group queued already, which is no error).
pub(super) fn insert(
    tx: &Transaction<'_>,
    push: &NewPush,
    max_queue: usize,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(enqueue_in(tx, std::slice::from_ref(push), max_queue, now)? > 0)
}

/// The queue's length and the number its next row takes (`push_queue_size`,
/// schemas 7 and 14), as a transaction that inserts reads them before its first row.
struct Counter {
    len: usize,
    next_seq: i64,
}

impl Counter {
    /// Also past the highest row's number (the table's last rowid, one descent of
    /// its B-tree): a row inserted behind coid's back (by hand, with `sqlite3`)
    /// would otherwise make every later insert fail on its number.
    fn read(tx: &Transaction<'_>) -> Result<Counter, StoreError> {
        let (len, next_seq): (i64, i64) = tx
            .prepare_cached(
                "SELECT n, max(next_seq, 1 + coalesce((SELECT max(seq) FROM push_queue), 0))
                   FROM push_queue_size WHERE id = 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Counter {
            len: usize::try_from(len).unwrap_or(0),
            next_seq,
        })
    }

    /// Counts the rows numbered since [`Counter::read`], up to `next_seq`: one write
    /// for all of them (schema 14 dropped the per-row trigger).
    fn write(&self, tx: &Transaction<'_>, next_seq: i64) -> Result<(), StoreError> {
        if next_seq == self.next_seq {
            return Ok(());
        }
        let added = next_seq - self.next_seq;
        tx.prepare_cached("UPDATE push_queue_size SET n = n + ?1, next_seq = ?2 WHERE id = 1")?
            .execute(params![added, next_seq])?;
        Ok(())
    }
}

/// The queue's length, one row (`push_queue_size`).
const SIZE: &str = "SELECT n FROM push_queue_size WHERE id = 1";

/// Inserts `push` as row `seq`, its payload in its row, or the shared payload
/// `payload_id`; false if its group was queued already (`crate::store::dedupe`; then
/// nothing was written). `runs` walks the batch `push` is the next of.
fn put_shared(
    tx: &Transaction<'_>,
    push: &NewPush,
    seq: i64,
    payload_id: Option<i64>,
    now: i64,
    runs: &mut Runs,
) -> Result<bool, StoreError> {
    if !runs.admit(push, |group| keep_group(tx, group, push.deadline, now))? {
        return Ok(false);
    }
    let payload = if payload_id.is_some() {
        ""
    } else {
        push.payload.as_str()
    };
    let inserted = tx
        .prepare_cached(
            "INSERT INTO push_queue (seq, username, target, payload, with_content,
                                     validation, attempts, not_before, deadline, created,
                                     kind, payload_id, dedupe)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            seq,
            push.username,
            push.target,
            payload,
            push.with_content,
            push.validation,
            push.not_before,
            push.deadline,
            now,
            push.kind.code(),
            payload_id,
            push.dedupe
        ])?;
    Ok(inserted > 0)
}

/// Keeps `group` in the dedupe table if it is new or its time is up (true), or finds
/// it live (false: the group was queued already). The key lives at least as long as
/// its rows may (`deadline`), so it alone keeps a duplicate out of the queue (schema
/// 11 dropped the queue's own index of the keys).
fn keep_group(
    tx: &Transaction<'_>,
    group: &str,
    deadline: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let keep_until = now.saturating_add(DEDUPE_KEEP_MS).max(deadline);
    let kept = tx
        .prepare_cached(
            "INSERT INTO push_dedupe (key, keep_until) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET keep_until = excluded.keep_until
             WHERE push_dedupe.keep_until < ?3",
        )?
        .execute(params![group, keep_until, now])?;
    Ok(kept > 0)
}

/// Payloads that more than one row will carry, each stored once as it is first
/// needed.
struct Shared<'a> {
    /// How many rows carry each payload.
    counts: HashMap<Content<'a>, usize>,
    /// Stored so far: payload → `push_payloads.id` and the rows queued with it.
    ids: HashMap<Content<'a>, (i64, i64)>,
}

impl<'a> Shared<'a> {
    fn of(pushes: &'a [NewPush]) -> Shared<'a> {
        let mut counts = HashMap::new();
        for push in pushes.iter().filter(|p| !p.payload.is_empty()) {
            *counts.entry(Content(push.payload.as_str())).or_insert(0) += 1;
        }
        Shared {
            counts,
            ids: HashMap::new(),
        }
    }

    /// The shared payload id for `payload`; `None`: keep it in the row.
    fn id(&mut self, tx: &Transaction<'_>, payload: &'a str) -> Result<Option<i64>, StoreError> {
        let key = Content(payload);
        if self.counts.get(&key).copied().unwrap_or(0) < 2 {
            return Ok(None);
        }
        if let Some((id, _)) = self.ids.get(&key) {
            return Ok(Some(*id));
        }
        tx.prepare_cached("INSERT INTO push_payloads (payload) VALUES (?1)")?
            .execute(params![payload])?;
        let id = tx.last_insert_rowid();
        self.ids.insert(key, (id, 0));
        Ok(Some(id))
    }

    /// A row was queued with `payload`.
    fn carried(&mut self, payload: &'a str) {
        if let Some((_, rows)) = self.ids.get_mut(&Content(payload)) {
            *rows += 1;
        }
    }

    /// Gives each payload stored its count of rows (schema 14: once, not by a
    /// trigger per row); one that no row carries (every row a duplicate) goes.
    fn count(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        for (id, rows) in self.ids.values() {
            if *rows == 0 {
                tx.prepare_cached("DELETE FROM push_payloads WHERE id = ?1")?
                    .execute(params![id])?;
            } else {
                tx.prepare_cached("UPDATE push_payloads SET refs = refs + ?2 WHERE id = ?1")?
                    .execute(params![id, rows])?;
            }
        }
        Ok(())
    }
}

/// A payload as a map key, compared whole but hashed by its length and its two
/// ends only: payloads are kilobytes of JSON, and hashing each one whole (twice per
/// row) was a tenth of queueing a message's pushes. Payloads of different messages
/// differ in their ends (the message's identity and text); a collision costs only
/// the comparison.
#[derive(PartialEq, Eq)]
struct Content<'a>(&'a str);

/// Bytes of each end of a payload that [`Content`] hashes.
const HASHED_END: usize = 64;

impl std::hash::Hash for Content<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let bytes = self.0.as_bytes();
        let head = &bytes[..bytes.len().min(HASHED_END)];
        let tail = &bytes[bytes.len().saturating_sub(HASHED_END)..];
        state.write_usize(bytes.len());
        state.write(head);
        state.write(tail);
    }
}

impl Sqlite {
    /// See [`crate::store::Engine::enqueue`].
    pub(super) fn enqueue(
        &self,
        pushes: &[NewPush],
        max_queue: usize,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let taken = enqueue_in(&tx, pushes, max_queue, now)?;
        tx.commit()?;
        Ok(taken)
    }

    /// Rows in the queue.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn queue_len(&self) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        Ok(count(&conn, SIZE, [])?)
    }

    /// Rows of one kind in the queue.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn queue_len_of(&self, kind: PushKind) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        let sql = "SELECT count(*) FROM push_queue WHERE kind = ?1";
        Ok(count(&conn, sql, params![kind.code()])?)
    }

    /// Pending pushes of one target (subscription or token) of a kind.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn pending_pushes(
        &self,
        kind: PushKind,
        username: &str,
        id: &str,
    ) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        let sql =
            "SELECT count(*) FROM push_queue WHERE username = ?1 AND target = ?2 AND kind = ?3";
        Ok(count(&conn, sql, params![username, id, kind.code()])?)
    }

    /// Up to `limit` rows due at `now`, oldest first, each leased until `lease_until`.
    /// Rows past their deadline, or whose target is gone, are deleted instead.
    ///
    /// # Errors
    /// SQLite failed; nothing was claimed.
    pub(super) fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        kinds: Kinds,
    ) -> Result<Vec<QueuedPush>, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let claimed = claim_in(&tx, now, lease_until, limit, kinds)?;
        tx.commit()?;
        Ok(claimed)
    }

    /// When the earliest row of `kinds` is due (leased rows: when their lease ends).
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn next_due(&self, kinds: Kinds) -> Result<Option<i64>, StoreError> {
        next_due_in(&*self.lock()?, kinds)
    }

    /// Removes a row: sent, or given up.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn push_done(&self, seq: i64) -> Result<(), StoreError> {
        done_in(&*self.lock()?, seq)
    }

    /// Tries a row again at `not_before`, after `attempts` temporary failures;
    /// `payload` replaces its payload (then without content).
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn push_retry(
        &self,
        seq: i64,
        attempts: u32,
        not_before: i64,
        payload: Option<&str>,
    ) -> Result<(), StoreError> {
        retry_in(&*self.lock()?, seq, attempts, not_before, payload)
    }

    /// Holds back every Web Push row for `endpoint` until `until` (RFC 8030 §8.4:
    /// 429); rows due later keep their time. Returns the rows moved.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn delay_endpoint(&self, endpoint: &str, until: i64) -> Result<usize, StoreError> {
        delay_endpoint_in(&*self.lock()?, endpoint, until)
    }

    /// Holds back every row of `kind` until `until` (one service asked to wait: Delta
    /// Chat's notification proxy); rows due later keep their time. Returns the rows
    /// moved.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn delay_kind(&self, kind: PushKind, until: i64) -> Result<usize, StoreError> {
        delay_kind_in(&*self.lock()?, kind, until)
    }

    /// Deletes rows past their deadline; returns how many of each kind (Web Push,
    /// Delta Chat).
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn drop_overdue_pushes(&self, now: i64) -> Result<(usize, usize), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let mut dropped = [0; 2];
        for kind in [PushKind::WebPush, PushKind::DeltaChat] {
            dropped[usize::from(kind == PushKind::DeltaChat)] = tx.execute(
                "DELETE FROM push_queue WHERE deadline < ?1 AND kind = ?2",
                params![now, kind.code()],
            )?;
        }
        tx.execute(
            "DELETE FROM push_dedupe WHERE keep_until < ?1",
            params![now],
        )?;
        tx.commit()?;
        Ok((dropped[0], dropped[1]))
    }
}

/// Queues `pushes` within `max_queue` in the open transaction `tx`; returns how
/// many were taken (the rest found the queue full). See [`Sqlite::enqueue`].
pub(super) fn enqueue_in(
    tx: &Transaction<'_>,
    pushes: &[NewPush],
    max_queue: usize,
    now: i64,
) -> Result<usize, StoreError> {
    if pushes.is_empty() {
        // Most worker rounds bring nothing new: no read of the queue's length.
        return Ok(0);
    }
    // Read once: the queue only grows by what this loop puts.
    let counter = Counter::read(tx)?;
    let mut room = max_queue.saturating_sub(counter.len);
    let mut seq = counter.next_seq;
    let mut shared = Shared::of(pushes);
    let mut runs = Runs::default();
    let mut taken = 0;
    for push in pushes {
        if room == 0 {
            break;
        }
        let payload_id = shared.id(tx, &push.payload)?;
        if put_shared(tx, push, seq, payload_id, now, &mut runs)? {
            room -= 1;
            seq += 1;
            shared.carried(&push.payload);
        }
        taken += 1;
    }
    counter.write(tx, seq)?;
    shared.count(tx)?;
    Ok(taken)
}
