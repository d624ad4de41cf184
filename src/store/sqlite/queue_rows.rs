//! The push queue's row operations inside the caller's transaction: claiming due
//! rows, the next due time, and what an attempt's outcome does to a row or its
//! service. [`super::queue`]'s `Sqlite` methods wrap each in a transaction of its
//! own; [`super::settle`] runs many of them in one.

use rusqlite::{Connection, params};

use crate::store::{Destination, Kinds, PushKind, QueuedPush, StoreError};

/// The rows [`claim_in`] may take, oldest first, with what sending each needs.
const CLAIM: &str = "SELECT q.seq, q.username, q.target, coalesce(p.payload, q.payload),
        q.with_content, q.validation, q.attempts, q.deadline, q.kind,
        s.endpoint, s.p256dh, s.auth, t.token
   FROM push_queue q
   LEFT JOIN push_payloads p ON p.id = q.payload_id
   LEFT JOIN push_subscriptions s
     ON q.kind = 0 AND s.username = q.username AND s.id = q.target
   LEFT JOIN deltachat_tokens t
     ON q.kind = 1 AND t.username = q.username AND t.id = q.target
  WHERE q.not_before <= ?1 AND ((q.kind = 0 AND ?3) OR (q.kind = 1 AND ?4))
  ORDER BY q.not_before, q.seq LIMIT ?2";

/// Up to `limit` rows due at `now`, oldest first, each leased until `lease_until`;
/// rows past their deadline, or whose target is gone, are deleted instead. Inside the
/// caller's transaction.
pub(super) fn claim_in(
    tx: &Connection,
    now: i64,
    lease_until: i64,
    limit: usize,
    kinds: Kinds,
) -> Result<Vec<QueuedPush>, StoreError> {
    let rows = {
        let mut stmt = tx.prepare_cached(CLAIM)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let args = params![now, limit, kinds.webpush, kinds.deltachat];
        let rows = stmt.query_map(args, claimed_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let mut claimed = Vec::new();
    let mut gone = Vec::new();
    for (seq, push) in rows {
        match push.filter(|p| p.deadline >= now) {
            Some(push) => claimed.push(push),
            None => gone.push(seq),
        }
    }
    done_all_in(tx, &gone)?;
    let seqs: Vec<i64> = claimed.iter().map(|push| push.seq).collect();
    if !seqs.is_empty() {
        tx.prepare_cached(
            "UPDATE push_queue SET not_before = ?2
              WHERE seq IN (SELECT value FROM json_each(?1))",
        )?
        .execute(params![seq_list(&seqs), lease_until])?;
    }
    Ok(claimed)
}

/// Deletes the rows `seqs` (sent, given up, or past saving), in one statement:
/// one row at a time, each statement's own work (binding, its journal, the
/// triggers' setup) cost more than the row.
pub(super) fn done_all_in(conn: &Connection, seqs: &[i64]) -> Result<(), StoreError> {
    if seqs.is_empty() {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM push_queue WHERE seq IN (SELECT value FROM json_each(?1))")?
        .execute(params![seq_list(seqs)])?;
    Ok(())
}

/// `seqs` as a JSON array, for `json_each` (SQLite's JSON functions, built in).
fn seq_list(seqs: &[i64]) -> String {
    let items: Vec<String> = seqs.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// See [`crate::store::Engine::next_due`].
pub(super) fn next_due_in(conn: &Connection, kinds: Kinds) -> Result<Option<i64>, StoreError> {
    let sql = "SELECT min(not_before) FROM push_queue
                WHERE (kind = 0 AND ?1) OR (kind = 1 AND ?2)";
    let next = conn
        .prepare_cached(sql)?
        .query_row(params![kinds.webpush, kinds.deltachat], |r| r.get(0))?;
    Ok(next)
}

/// See [`crate::store::Engine::push_done`].
pub(super) fn done_in(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM push_queue WHERE seq = ?1")?
        .execute(params![seq])?;
    Ok(())
}

/// See [`crate::store::Engine::push_retry`].
pub(super) fn retry_in(
    conn: &Connection,
    seq: i64,
    attempts: u32,
    not_before: i64,
    payload: Option<&str>,
) -> Result<(), StoreError> {
    match payload {
        Some(payload) => conn
            .prepare_cached(
                "UPDATE push_queue SET attempts = ?2, not_before = ?3, payload = ?4,
                        payload_id = NULL, with_content = 0 WHERE seq = ?1",
            )?
            .execute(params![seq, attempts, not_before, payload])?,
        None => conn
            .prepare_cached("UPDATE push_queue SET attempts = ?2, not_before = ?3 WHERE seq = ?1")?
            .execute(params![seq, attempts, not_before])?,
    };
    Ok(())
}

/// See [`crate::store::Engine::delay_endpoint`].
pub(super) fn delay_endpoint_in(
    conn: &Connection,
    endpoint: &str,
    until: i64,
) -> Result<usize, StoreError> {
    let moved = conn
        .prepare_cached(
            "UPDATE push_queue SET not_before = ?2
              WHERE not_before < ?2 AND kind = 0 AND (username, target) IN
                    (SELECT username, id FROM push_subscriptions WHERE endpoint = ?1)",
        )?
        .execute(params![endpoint, until])?;
    Ok(moved)
}

/// See [`crate::store::Engine::delay_kind`].
pub(super) fn delay_kind_in(
    conn: &Connection,
    kind: PushKind,
    until: i64,
) -> Result<usize, StoreError> {
    let moved = conn
        .prepare_cached(
            "UPDATE push_queue SET not_before = ?2 WHERE not_before < ?2 AND kind = ?1",
        )?
        .execute(params![kind.code(), until])?;
    Ok(moved)
}

/// One row of [`claim_in`]'s query: its seq, and the push unless its target
/// is gone (or its kind unknown: a newer coid's row).
fn claimed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Option<QueuedPush>)> {
    let seq = r.get(0)?;
    let to = match PushKind::from_code(r.get(8)?) {
        Some(PushKind::WebPush) => {
            let endpoint: Option<String> = r.get(9)?;
            let p256dh: Option<String> = r.get(10)?;
            let auth: Option<String> = r.get(11)?;
            endpoint
                .zip(p256dh)
                .zip(auth)
                .map(|((endpoint, p256dh), auth)| Destination::WebPush {
                    endpoint,
                    p256dh,
                    auth,
                })
        }
        Some(PushKind::DeltaChat) => r
            .get::<_, Option<String>>(12)?
            .map(|token| Destination::DeltaChat { token }),
        None => None,
    };
    let Some(to) = to else {
        return Ok((seq, None));
    };
    let push = QueuedPush {
        seq,
        username: r.get(1)?,
        target: r.get(2)?,
        payload: r.get(3)?,
        with_content: r.get(4)?,
        validation: r.get(5)?,
        attempts: r.get(6)?,
        deadline: r.get(7)?,
        to,
    };
    Ok((seq, Some(push)))
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// SQLite compiles a statement again when a parameter it bound changes, if the
    /// plan depended on the value (here: whether the partial index on `payload_id`
    /// applies); every claim then paid a parse and plan, a tenth of coid's CPU with
    /// push on. With the query planner stability guarantee the plan is fixed.
    #[test]
    fn the_claim_is_compiled_once() {
        let (_dir, db) = super::super::temp_sqlite();
        let conn = db.lock().expect("lock");
        for now in [1_000, 2_000, 3_000] {
            claim_in(&conn, now, now + 60_000, 8, Kinds::ALL).expect("claims");
        }
        let stmt = conn.prepare_cached(CLAIM).expect("cached");
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }
}
