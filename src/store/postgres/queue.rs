//! The durable push queue over PostgreSQL (the model: `crate::store::queue`):
//! queueing under the bound, with the dedupe key, and the counts. Queueing sends
//! `NOTIFY coid_queue` with its commit, which wakes every node's worker (`super::listen`).

use postgres::GenericClient;

use super::{Postgres, as_count};
use crate::store::dedupe::Runs;
use crate::store::{DEDUPE_KEEP_MS, NewPush, PushKind, StoreError};

/// The channel enqueue notifies.
pub(super) const CHANNEL: &str = "coid_queue";

/// Notifies [`CHANNEL`] when the transaction commits.
pub(super) fn notify(tx: &mut impl GenericClient) -> Result<(), StoreError> {
    tx.batch_execute("NOTIFY coid_queue")?;
    Ok(())
}

/// The queue's length, locking the counter row until the transaction ends: queueing
/// transactions of every node take turns, so the bound holds exactly.
///
/// Every transaction that may insert or delete queue rows calls this first: the
/// counter's trigger locks the same row anyway, and taking it before any queue row
/// keeps one lock order everywhere, so two of them never deadlock (a commit deleting
/// a row a worker's claim holds, while the claim waits for the counter).
pub(super) fn locked_len(tx: &mut impl GenericClient) -> Result<usize, StoreError> {
    let n: i64 = tx
        .query_one("SELECT n FROM push_queue_size WHERE id = 1 FOR UPDATE", &[])?
        .get(0);
    Ok(as_count(n))
}

/// Inserts `push` unless the queue holds `max_queue` rows already; true if stored (or
/// queued already).
pub(super) fn insert(
    tx: &mut impl GenericClient,
    push: &NewPush,
    max_queue: usize,
    now: i64,
) -> Result<bool, StoreError> {
    if locked_len(tx)? >= max_queue {
        return Ok(false);
    }
    put(tx, push, now, &mut Runs::default())?;
    Ok(true)
}

/// Inserts `push`; false if its group was queued already (`crate::store::dedupe`).
/// `runs` walks the batch `push` is the next of.
fn put(
    tx: &mut impl GenericClient,
    push: &NewPush,
    now: i64,
    runs: &mut Runs,
) -> Result<bool, StoreError> {
    if !runs.admit(push, |group| keep_group(tx, group, push.deadline, now))? {
        return Ok(false);
    }
    let inserted = tx.execute(
        "INSERT INTO push_queue (username, target, payload, with_content, validation,
                                 attempts, not_before, deadline, created, kind, dedupe)
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10)
         ON CONFLICT (dedupe) WHERE dedupe IS NOT NULL DO NOTHING",
        &[
            &push.username,
            &push.target,
            &push.payload,
            &push.with_content,
            &push.validation,
            &push.not_before,
            &push.deadline,
            &now,
            &push.kind.code(),
            &push.dedupe,
        ],
    )?;
    Ok(inserted > 0)
}

/// Keeps `group` in the dedupe table if it is new or its time is up (true), or finds
/// it live (false: the group was queued already). The key lives at least as long as
/// its rows may (`deadline`), as SQLite's does.
fn keep_group(
    tx: &mut impl GenericClient,
    group: &str,
    deadline: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let keep_until = now.saturating_add(DEDUPE_KEEP_MS).max(deadline);
    let kept = tx.execute(
        "INSERT INTO push_dedupe (key, keep_until) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET keep_until = EXCLUDED.keep_until
         WHERE push_dedupe.keep_until < $3",
        &[&group, &keep_until, &now],
    )?;
    Ok(kept > 0)
}

impl Postgres {
    pub(super) fn enqueue(
        &self,
        pushes: &[NewPush],
        max_queue: usize,
        now: i64,
    ) -> Result<usize, StoreError> {
        if pushes.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let mut room = max_queue.saturating_sub(locked_len(&mut tx)?);
        let mut runs = Runs::default();
        let mut taken = 0;
        for push in pushes {
            if room == 0 {
                break;
            }
            if put(&mut tx, push, now, &mut runs)? {
                room -= 1;
            }
            taken += 1;
        }
        if taken > 0 {
            notify(&mut tx)?;
        }
        tx.commit()?;
        Ok(taken)
    }

    pub(super) fn queue_len(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT n FROM push_queue_size WHERE id = 1", &[])?
            .get(0);
        Ok(as_count(n))
    }

    pub(super) fn queue_len_of(&self, kind: PushKind) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT count(*) FROM push_queue WHERE kind = $1",
                &[&kind.code()],
            )?
            .get(0);
        Ok(as_count(n))
    }

    pub(super) fn pending_pushes(
        &self,
        kind: PushKind,
        username: &str,
        id: &str,
    ) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT count(*) FROM push_queue WHERE username = $1 AND target = $2 AND kind = $3",
                &[&username, &id, &kind.code()],
            )?
            .get(0);
        Ok(as_count(n))
    }
}
