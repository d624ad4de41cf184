//! Delta Chat device tokens over SQLite: the set per user, its cap, expiry, and
//! deletions that also drop the token's pending notifications.

use rusqlite::{Connection, params};

use super::{Sqlite, count};
use crate::store::tokens::EXPIRE_BATCH;
use crate::store::{DeviceToken, PushKind, StoreError};

/// Adds `token` (id `id`) to `username`'s set at `now`, or refreshes it; then drops the
/// least recently set ones beyond `max`.
pub(super) fn add(
    conn: &Connection,
    username: &str,
    id: &str,
    token: &str,
    max: usize,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO deltachat_tokens (username, id, token, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (username, id) DO UPDATE SET token = excluded.token, updated = excluded.updated",
    )?
    .execute(params![username, id, token, now])?;
    let stored = count(
        conn,
        "SELECT count(*) FROM deltachat_tokens WHERE username = ?1",
        params![username],
    )?;
    let surplus = i64::try_from(stored.saturating_sub(max)).unwrap_or(i64::MAX);
    if surplus > 0 {
        let oldest: Vec<String> = conn
            .prepare_cached(
                "SELECT id FROM deltachat_tokens WHERE username = ?1
                  ORDER BY updated, created, id LIMIT ?2",
            )?
            .query_map(params![username, surplus], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for old in oldest {
            delete(conn, username, &old)?;
        }
    }
    Ok(())
}

/// Deletes every token of `username` and their pending notifications.
pub(super) fn delete_all(conn: &Connection, username: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM push_queue WHERE username = ?1 AND kind = ?2")?
        .execute(params![username, PushKind::DeltaChat.code()])?;
    conn.prepare_cached("DELETE FROM deltachat_tokens WHERE username = ?1")?
        .execute(params![username])?;
    Ok(())
}

/// Deletes one token and its pending notifications; true if it existed.
pub(super) fn delete(conn: &Connection, username: &str, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "DELETE FROM push_queue WHERE username = ?1 AND target = ?2 AND kind = ?3",
    )?
    .execute(params![username, id, PushKind::DeltaChat.code()])?;
    let deleted = conn
        .prepare_cached("DELETE FROM deltachat_tokens WHERE username = ?1 AND id = ?2")?
        .execute(params![username, id])?;
    Ok(deleted > 0)
}

impl Sqlite {
    /// `username`'s tokens set at or after `since`, least recently set first.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn tokens(
        &self,
        username: &str,
        since: i64,
    ) -> Result<Vec<DeviceToken>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, token, created, updated FROM deltachat_tokens
              WHERE username = ?1 AND updated >= ?2 ORDER BY updated, id",
        )?;
        let rows = stmt.query_map(params![username, since], |r| {
            Ok(DeviceToken {
                id: r.get(0)?,
                token: r.get(1)?,
                created: r.get(2)?,
                updated: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes one token and its pending notifications; true if it existed.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn delete_token(&self, username: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let deleted = delete(&tx, username, id)?;
        tx.commit()?;
        Ok(deleted)
    }

    /// Deletes tokens last set before `updated_before`, with their pending
    /// notifications; returns how many. At most [`EXPIRE_BATCH`] per call: the
    /// worker's sweep comes back for the rest.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn expire_tokens(&self, updated_before: i64) -> Result<usize, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let old: Vec<(String, String)> = tx
            .prepare_cached(
                "SELECT username, id FROM deltachat_tokens WHERE updated < ?1 LIMIT ?2",
            )?
            .query_map(params![updated_before, EXPIRE_BATCH], super::text_pair)?
            .collect::<Result<_, _>>()?;
        for (username, id) in &old {
            delete(&tx, username, id)?;
        }
        tx.commit()?;
        Ok(old.len())
    }

    /// Tokens stored, of every user.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn token_count(&self) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        Ok(count(&conn, "SELECT count(*) FROM deltachat_tokens", [])?)
    }
}
