//! The push worker's one trip per round over SQLite: the pushes of messages just
//! delivered in its process, the outcomes, then the claim and the next due time, in
//! one transaction (see `crate::store::settle`).

use rusqlite::{Connection, Transaction};

use super::queue::enqueue_in;
use super::queue_rows::{
    claim_in, delay_endpoint_in, delay_kind_in, done_all_in, done_in, next_due_in, retry_in,
};
use super::{Sqlite, subscriptions, tokens};
use crate::store::{Claim, Claimed, NewPush, Settle, StoreError};

impl Sqlite {
    /// Applies `settled` in order, then claims by `claim`, in one transaction: a
    /// round with nothing new to queue.
    ///
    /// # Errors
    /// SQLite failed; nothing was settled or claimed.
    pub(super) fn settle_and_claim(
        &self,
        settled: &[Settle],
        claim: Claim,
    ) -> Result<Claimed, StoreError> {
        let (_, claimed) = self.queue_settle_and_claim(&[], 0, settled, claim)?;
        Ok(claimed)
    }

    /// Queues `new`, applies `settled` and claims by `claim`, all in one
    /// transaction (see [`crate::store::Engine::queue_settle_and_claim`]).
    ///
    /// # Errors
    /// SQLite failed; nothing was queued, settled or claimed.
    pub(super) fn queue_settle_and_claim(
        &self,
        new: &[NewPush],
        max_queue: usize,
        settled: &[Settle],
        claim: Claim,
    ) -> Result<(usize, Claimed), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let taken = enqueue_in(&tx, new, max_queue, claim.now)?;
        let claimed = settle_and_claim_in(&tx, settled, claim)?;
        tx.commit()?;
        Ok((taken, claimed))
    }
}

/// Applies `settled` in order, then claims by `claim`, in the open transaction `tx`.
fn settle_and_claim_in(
    tx: &Transaction<'_>,
    settled: &[Settle],
    claim: Claim,
) -> Result<Claimed, StoreError> {
    let mut done = Vec::new();
    for change in settled {
        apply(tx, change, &mut done)?;
    }
    done_all_in(tx, &done)?;
    let pushes = match claim.limit {
        0 => Vec::new(),
        limit => claim_in(tx, claim.now, claim.lease_until, limit, claim.kinds)?,
    };
    let next_due = next_due_in(tx, claim.kinds)?;
    Ok(Claimed { pushes, next_due })
}

/// Applies one outcome. Rows sent (`Done`) gather in `done`, and each run of them is
/// deleted in one statement before the next other change (the caller deletes the last
/// run), so the order of changes stays the same.
fn apply(conn: &Connection, change: &Settle, done: &mut Vec<i64>) -> Result<(), StoreError> {
    if !matches!(change, Settle::Done { .. }) {
        done_all_in(conn, &std::mem::take(done))?;
    }
    match change {
        Settle::Done { seq } => {
            done.push(*seq);
            Ok(())
        }
        Settle::Retry {
            seq,
            attempts,
            not_before,
            payload,
        } => retry_in(conn, *seq, *attempts, *not_before, payload.as_deref()),
        Settle::DeleteSubscription {
            seq,
            username,
            id,
            endpoint,
        } => {
            subscriptions::delete_if_at(conn, username, id, Some(endpoint))?;
            done_in(conn, *seq)
        }
        Settle::DeleteToken { seq, username, id } => {
            tokens::delete(conn, username, id)?;
            done_in(conn, *seq)
        }
        Settle::DelayEndpoint { endpoint, until } => {
            delay_endpoint_in(conn, endpoint, *until).map(|_| ())
        }
        Settle::DelayKind { kind, until } => delay_kind_in(conn, *kind, *until).map(|_| ()),
    }
}
