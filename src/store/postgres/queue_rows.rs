//! The push queue's row operations over PostgreSQL, inside the caller's transaction:
//! claiming due rows with leases (`FOR UPDATE SKIP LOCKED`: workers on several nodes
//! never take the same row, and never wait for each other), the next due time, and
//! what an attempt's outcome does; and the worker's one trip per round
//! ([`Postgres::settle_and_claim`]).

use postgres::{GenericClient, Row};

use super::Postgres;
use super::commit::{delete_subscription_at, delete_token};
use super::queue::locked_len;
use crate::store::{Claim, Claimed, Destination, Kinds, PushKind, QueuedPush, Settle, StoreError};

/// See `crate::store::sqlite::queue_rows::claim_in`.
fn claim_in(
    tx: &mut impl GenericClient,
    now: i64,
    lease_until: i64,
    limit: usize,
    kinds: Kinds,
) -> Result<Vec<QueuedPush>, StoreError> {
    let limit = super::as_limit(limit);
    let rows = tx.query(
        "WITH due AS (
             SELECT seq FROM push_queue
              WHERE not_before <= $1 AND ((kind = 0 AND $3) OR (kind = 1 AND $4))
              ORDER BY not_before, seq LIMIT $2
              FOR UPDATE SKIP LOCKED)
         SELECT q.seq, q.username, q.target, q.payload, q.with_content, q.validation,
                q.attempts, q.deadline, q.kind, s.endpoint, s.p256dh, s.auth, t.token
           FROM push_queue q JOIN due ON due.seq = q.seq
           LEFT JOIN push_subscriptions s
             ON q.kind = 0 AND s.username = q.username AND s.id = q.target
           LEFT JOIN deltachat_tokens t
             ON q.kind = 1 AND t.username = q.username AND t.id = q.target
          ORDER BY q.not_before, q.seq",
        &[&now, &limit, &kinds.webpush, &kinds.deltachat],
    )?;
    let mut claimed = Vec::new();
    let mut dead = Vec::new();
    for row in &rows {
        match claimed_row(row).filter(|p| p.deadline >= now) {
            Some(push) => claimed.push(push),
            None => dead.push(row.get::<_, i64>(0)),
        }
    }
    if !dead.is_empty() {
        tx.execute("DELETE FROM push_queue WHERE seq = ANY($1)", &[&dead])?;
    }
    let leased: Vec<i64> = claimed.iter().map(|p| p.seq).collect();
    if !leased.is_empty() {
        tx.execute(
            "UPDATE push_queue SET not_before = $2 WHERE seq = ANY($1)",
            &[&leased, &lease_until],
        )?;
    }
    Ok(claimed)
}

/// One row of [`claim_in`]'s query, unless its target is gone (or its kind unknown:
/// a newer coid's row).
fn claimed_row(r: &Row) -> Option<QueuedPush> {
    let to = match PushKind::from_code(r.get(8))? {
        PushKind::WebPush => Destination::WebPush {
            endpoint: r.get::<_, Option<String>>(9)?,
            p256dh: r.get::<_, Option<String>>(10)?,
            auth: r.get::<_, Option<String>>(11)?,
        },
        PushKind::DeltaChat => Destination::DeltaChat {
            token: r.get::<_, Option<String>>(12)?,
        },
    };
    Some(QueuedPush {
        seq: r.get(0),
        username: r.get(1),
        target: r.get(2),
        payload: r.get(3),
        with_content: r.get(4),
        validation: r.get(5),
        attempts: u32::try_from(r.get::<_, i64>(6)).unwrap_or(u32::MAX),
        deadline: r.get(7),
        to,
    })
}

fn next_due_in(tx: &mut impl GenericClient, kinds: Kinds) -> Result<Option<i64>, StoreError> {
    let row = tx.query_one(
        "SELECT min(not_before) FROM push_queue WHERE (kind = 0 AND $1) OR (kind = 1 AND $2)",
        &[&kinds.webpush, &kinds.deltachat],
    )?;
    Ok(row.get(0))
}

fn done_in(tx: &mut impl GenericClient, seq: i64) -> Result<(), StoreError> {
    tx.execute("DELETE FROM push_queue WHERE seq = $1", &[&seq])?;
    Ok(())
}

fn retry_in(
    tx: &mut impl GenericClient,
    seq: i64,
    attempts: u32,
    not_before: i64,
    payload: Option<&str>,
) -> Result<(), StoreError> {
    let attempts = i64::from(attempts);
    match payload {
        Some(payload) => tx.execute(
            "UPDATE push_queue SET attempts = $2, not_before = $3, payload = $4,
                    with_content = FALSE WHERE seq = $1",
            &[&seq, &attempts, &not_before, &payload],
        )?,
        None => tx.execute(
            "UPDATE push_queue SET attempts = $2, not_before = $3 WHERE seq = $1",
            &[&seq, &attempts, &not_before],
        )?,
    };
    Ok(())
}

fn delay_endpoint_in(
    tx: &mut impl GenericClient,
    endpoint: &str,
    until: i64,
) -> Result<usize, StoreError> {
    let moved = tx.execute(
        "UPDATE push_queue SET not_before = $2
          WHERE not_before < $2 AND kind = 0 AND (username, target) IN
                (SELECT username, id FROM push_subscriptions WHERE endpoint = $1)",
        &[&endpoint, &until],
    )?;
    Ok(usize::try_from(moved).unwrap_or(usize::MAX))
}

fn delay_kind_in(
    tx: &mut impl GenericClient,
    kind: PushKind,
    until: i64,
) -> Result<usize, StoreError> {
    let moved = tx.execute(
        "UPDATE push_queue SET not_before = $2 WHERE not_before < $2 AND kind = $1",
        &[&kind.code(), &until],
    )?;
    Ok(usize::try_from(moved).unwrap_or(usize::MAX))
}

fn apply(tx: &mut impl GenericClient, change: &Settle) -> Result<(), StoreError> {
    match change {
        Settle::Done { seq } => done_in(tx, *seq),
        Settle::Retry {
            seq,
            attempts,
            not_before,
            payload,
        } => retry_in(tx, *seq, *attempts, *not_before, payload.as_deref()),
        Settle::DeleteSubscription {
            seq,
            username,
            id,
            endpoint,
        } => {
            delete_subscription_at(tx, username, id, Some(endpoint))?;
            done_in(tx, *seq)
        }
        Settle::DeleteToken { seq, username, id } => {
            delete_token(tx, username, id)?;
            done_in(tx, *seq)
        }
        Settle::DelayEndpoint { endpoint, until } => {
            delay_endpoint_in(tx, endpoint, *until).map(|_| ())
        }
        Settle::DelayKind { kind, until } => delay_kind_in(tx, *kind, *until).map(|_| ()),
    }
}

impl Postgres {
    pub(super) fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        kinds: Kinds,
    ) -> Result<Vec<QueuedPush>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        let claimed = claim_in(&mut tx, now, lease_until, limit, kinds)?;
        tx.commit()?;
        Ok(claimed)
    }

    pub(super) fn next_due(&self, kinds: Kinds) -> Result<Option<i64>, StoreError> {
        next_due_in(&mut *self.conn()?, kinds)
    }

    pub(super) fn push_done(&self, seq: i64) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        done_in(&mut tx, seq)?;
        Ok(tx.commit()?)
    }

    pub(super) fn push_retry(
        &self,
        seq: i64,
        attempts: u32,
        not_before: i64,
        payload: Option<&str>,
    ) -> Result<(), StoreError> {
        retry_in(&mut *self.conn()?, seq, attempts, not_before, payload)
    }

    pub(super) fn delay_endpoint(&self, endpoint: &str, until: i64) -> Result<usize, StoreError> {
        delay_endpoint_in(&mut *self.conn()?, endpoint, until)
    }

    pub(super) fn delay_kind(&self, kind: PushKind, until: i64) -> Result<usize, StoreError> {
        delay_kind_in(&mut *self.conn()?, kind, until)
    }

    pub(super) fn drop_overdue_pushes(&self, now: i64) -> Result<(usize, usize), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        let mut dropped = [0; 2];
        for kind in [PushKind::WebPush, PushKind::DeltaChat] {
            let n = tx.execute(
                "DELETE FROM push_queue WHERE deadline < $1 AND kind = $2",
                &[&now, &kind.code()],
            )?;
            dropped[usize::from(kind == PushKind::DeltaChat)] =
                usize::try_from(n).unwrap_or(usize::MAX);
        }
        tx.execute("DELETE FROM push_dedupe WHERE keep_until < $1", &[&now])?;
        tx.commit()?;
        Ok((dropped[0], dropped[1]))
    }

    pub(super) fn settle_and_claim(
        &self,
        settled: &[Settle],
        claim: Claim,
    ) -> Result<Claimed, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        for change in settled {
            apply(&mut tx, change)?;
        }
        let pushes = match claim.limit {
            0 => Vec::new(),
            limit => claim_in(&mut tx, claim.now, claim.lease_until, limit, claim.kinds)?,
        };
        let next_due = next_due_in(&mut tx, claim.kinds)?;
        tx.commit()?;
        Ok(Claimed { pushes, next_due })
    }
}
