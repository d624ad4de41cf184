//! One dict commit as one SQLite transaction (see `crate::store::commit` for the rules).

use rusqlite::{OptionalExtension, params};

use super::queue;
use super::{Sqlite, count, dict::put, subscriptions, tokens};
use crate::store::{CommitError, Op, Subscribe};

impl From<rusqlite::Error> for CommitError {
    fn from(err: rusqlite::Error) -> Self {
        CommitError::Store(err.into())
    }
}

impl Sqlite {
    /// Applies every op of `username` in one transaction, at `now` (unix ms).
    ///
    /// # Errors
    /// [`CommitError::Refused`] or SQLite trouble; nothing was written.
    pub(super) fn commit(&self, username: &str, ops: &[Op], now: i64) -> Result<(), CommitError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        for op in ops {
            match op {
                Op::Put(write) => put(&tx, username, write, now / 1000)?,
                Op::Subscribe(new) => subscribe(&tx, username, new, now)?,
                Op::Unsubscribe { id } => {
                    subscriptions::delete(&tx, username, id)?;
                }
                Op::Validate {
                    id,
                    token,
                    created_since,
                } => validate(&tx, username, id, token, *created_since, now / 1000)?,
                Op::AddToken { id, token, max } => {
                    tokens::add(&tx, username, id, token, *max, now / 1000)?;
                }
                Op::RemoveTokens => tokens::delete_all(&tx, username)?,
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn subscribe(
    tx: &rusqlite::Transaction<'_>,
    username: &str,
    new: &Subscribe,
    now: i64,
) -> Result<(), CommitError> {
    let s = &new.subscription;
    let others = count(
        tx,
        "SELECT count(*) FROM push_subscriptions WHERE username = ?1 AND id != ?2",
        params![username, s.id],
    )?;
    if others >= new.limit {
        return Err(CommitError::Refused(format!(
            "too many push subscriptions (limit {}), delete old ones first",
            new.limit
        )));
    }
    // A replaced subscription starts over: its old pushes go, validation is new.
    subscriptions::delete(tx, username, &s.id)?;
    tx.prepare_cached(
        "INSERT INTO push_subscriptions (username, id, client, device, msgtype, endpoint,
                                         p256dh, auth, created, validation, validated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL)",
    )?
    .execute(params![
        username, s.id, s.client, s.device, s.msgtype, s.endpoint, s.p256dh, s.auth, s.created,
        new.token
    ])?;
    if !queue::insert(tx, &new.validation_push, new.max_queue, now)? {
        return Err(CommitError::Refused(
            "the push queue is full; cannot send the validation push now".into(),
        ));
    }
    Ok(())
}

fn validate(
    tx: &rusqlite::Transaction<'_>,
    username: &str,
    id: &str,
    token: &str,
    created_since: i64,
    now: i64,
) -> Result<(), CommitError> {
    let stored: Option<(String, i64, Option<i64>)> = tx
        .query_row(
            "SELECT validation, created, validated_at FROM push_subscriptions
              WHERE username = ?1 AND id = ?2",
            params![username, id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let refused = || CommitError::Refused(format!("invalid validation for subscription {id}"));
    let (expected, created, validated_at) = stored.ok_or_else(refused)?;
    // Echoing the token again after success is fine (a client retrying); the window
    // applies to pending subscriptions only.
    if expected != token || (validated_at.is_none() && created < created_since) {
        return Err(refused());
    }
    if validated_at.is_none() {
        tx.execute(
            "UPDATE push_subscriptions SET validated_at = ?3 WHERE username = ?1 AND id = ?2",
            params![username, id, now],
        )?;
    }
    Ok(())
}
