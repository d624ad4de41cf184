//! One dict commit as one PostgreSQL transaction (the rules: `crate::store::commit`),
//! and the deletions of subscriptions and tokens that take their pending pushes along,
//! which commits, the worker's settlements and the admin commands share.

use postgres::GenericClient;

use super::{Postgres, as_count, as_limit, dict::put, queue};
use crate::store::{CommitError, Op, PushKind, StoreError, Subscribe};

impl From<postgres::Error> for CommitError {
    fn from(err: postgres::Error) -> Self {
        CommitError::Store(err.into())
    }
}

impl Postgres {
    pub(super) fn commit(&self, username: &str, ops: &[Op], now: i64) -> Result<(), CommitError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let touches_queue = ops
            .iter()
            .any(|op| !matches!(op, Op::Put(_) | Op::Validate { .. }));
        if touches_queue {
            queue::locked_len(&mut tx)?;
        }
        let mut queued = false;
        for op in ops {
            match op {
                Op::Put(write) => put(&mut tx, username, write, now / 1000)?,
                Op::Subscribe(new) => {
                    subscribe(&mut tx, username, new, now)?;
                    queued = true;
                }
                Op::Unsubscribe { id } => {
                    delete_subscription(&mut tx, username, id)?;
                }
                Op::Validate {
                    id,
                    token,
                    created_since,
                } => validate(&mut tx, username, id, token, *created_since, now / 1000)?,
                Op::AddToken { id, token, max } => {
                    add_token(&mut tx, username, id, token, *max, now / 1000)?;
                }
                Op::RemoveTokens => delete_tokens(&mut tx, username)?,
            }
        }
        if queued {
            queue::notify(&mut tx)?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn subscribe(
    tx: &mut impl GenericClient,
    username: &str,
    new: &Subscribe,
    now: i64,
) -> Result<(), CommitError> {
    let s = &new.subscription;
    let others: i64 = tx
        .query_one(
            "SELECT count(*) FROM push_subscriptions WHERE username = $1 AND id != $2",
            &[&username, &s.id],
        )?
        .get(0);
    if as_count(others) >= new.limit {
        return Err(CommitError::Refused(format!(
            "too many push subscriptions (limit {}), delete old ones first",
            new.limit
        )));
    }
    // A replaced subscription starts over: its old pushes go, validation is new.
    delete_subscription(tx, username, &s.id)?;
    tx.execute(
        "INSERT INTO push_subscriptions (username, id, client, device, msgtype, endpoint,
                                         p256dh, auth, created, validation, validated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
        &[
            &username,
            &s.id,
            &s.client,
            &s.device,
            &s.msgtype,
            &s.endpoint,
            &s.p256dh,
            &s.auth,
            &s.created,
            &new.token,
        ],
    )?;
    if !queue::insert(tx, &new.validation_push, new.max_queue, now)? {
        return Err(CommitError::Refused(
            "the push queue is full; cannot send the validation push now".into(),
        ));
    }
    Ok(())
}

fn validate(
    tx: &mut impl GenericClient,
    username: &str,
    id: &str,
    token: &str,
    created_since: i64,
    now: i64,
) -> Result<(), CommitError> {
    let stored = tx.query_opt(
        "SELECT validation, created, validated_at FROM push_subscriptions
          WHERE username = $1 AND id = $2 FOR UPDATE",
        &[&username, &id],
    )?;
    let refused = || CommitError::Refused(format!("invalid validation for subscription {id}"));
    let row = stored.ok_or_else(refused)?;
    let (expected, created, validated_at): (String, i64, Option<i64>) =
        (row.get(0), row.get(1), row.get(2));
    // Echoing the token again after success is fine (a client retrying); the window
    // applies to pending subscriptions only.
    if expected != token || (validated_at.is_none() && created < created_since) {
        return Err(refused());
    }
    if validated_at.is_none() {
        tx.execute(
            "UPDATE push_subscriptions SET validated_at = $3 WHERE username = $1 AND id = $2",
            &[&username, &id, &now],
        )?;
    }
    Ok(())
}

/// Deletes one subscription and its pending pushes; true if it existed.
pub(super) fn delete_subscription(
    tx: &mut impl GenericClient,
    username: &str,
    id: &str,
) -> Result<bool, StoreError> {
    tx.execute(
        "DELETE FROM push_queue WHERE username = $1 AND target = $2 AND kind = 0",
        &[&username, &id],
    )?;
    let deleted = tx.execute(
        "DELETE FROM push_subscriptions WHERE username = $1 AND id = $2",
        &[&username, &id],
    )?;
    Ok(deleted > 0)
}

/// [`delete_subscription`] if it still points at `endpoint` (any, with `None`).
pub(super) fn delete_subscription_at(
    tx: &mut impl GenericClient,
    username: &str,
    id: &str,
    endpoint: Option<&str>,
) -> Result<bool, StoreError> {
    if let Some(endpoint) = endpoint {
        let current = tx.query_opt(
            "SELECT endpoint FROM push_subscriptions WHERE username = $1 AND id = $2
             FOR UPDATE",
            &[&username, &id],
        )?;
        if current.map(|r| r.get::<_, String>(0)).as_deref() != Some(endpoint) {
            return Ok(false);
        }
    }
    delete_subscription(tx, username, id)
}

/// Adds `token` (id `id`) to `username`'s set at `now`, or refreshes it; then drops
/// the least recently set ones beyond `max`.
fn add_token(
    tx: &mut impl GenericClient,
    username: &str,
    id: &str,
    token: &str,
    max: usize,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO deltachat_tokens (username, id, token, created, updated)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (username, id) DO UPDATE SET token = excluded.token, updated = excluded.updated",
        &[&username, &id, &token, &now],
    )?;
    let stored: i64 = tx
        .query_one(
            "SELECT count(*) FROM deltachat_tokens WHERE username = $1",
            &[&username],
        )?
        .get(0);
    let surplus = as_limit(as_count(stored).saturating_sub(max));
    if surplus > 0 {
        let oldest = tx.query(
            "SELECT id FROM deltachat_tokens WHERE username = $1
              ORDER BY updated, created, id LIMIT $2",
            &[&username, &surplus],
        )?;
        for row in oldest {
            delete_token(tx, username, row.get(0))?;
        }
    }
    Ok(())
}

/// Deletes every token of `username` and their pending notifications.
fn delete_tokens(tx: &mut impl GenericClient, username: &str) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM push_queue WHERE username = $1 AND kind = $2",
        &[&username, &PushKind::DeltaChat.code()],
    )?;
    tx.execute(
        "DELETE FROM deltachat_tokens WHERE username = $1",
        &[&username],
    )?;
    Ok(())
}

/// Deletes one token and its pending notifications; true if it existed.
pub(super) fn delete_token(
    tx: &mut impl GenericClient,
    username: &str,
    id: &str,
) -> Result<bool, StoreError> {
    tx.execute(
        "DELETE FROM push_queue WHERE username = $1 AND target = $2 AND kind = $3",
        &[&username, &id, &PushKind::DeltaChat.code()],
    )?;
    let deleted = tx.execute(
        "DELETE FROM deltachat_tokens WHERE username = $1 AND id = $2",
        &[&username, &id],
    )?;
    Ok(deleted > 0)
}
