//! Users' WebPush subscriptions over SQLite: reads, and deletions that also drop the
//! subscription's pending pushes.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Sqlite, text_pair};
use crate::store::subscriptions::EXPIRE_BATCH;
use crate::store::{StoreError, Subscription};

const COLUMNS: &str = "id, client, device, msgtype, endpoint, p256dh, auth, created, validated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        id: r.get(0)?,
        client: r.get(1)?,
        device: r.get(2)?,
        msgtype: r.get(3)?,
        endpoint: r.get(4)?,
        p256dh: r.get(5)?,
        auth: r.get(6)?,
        created: r.get(7)?,
        validated_at: r.get(8)?,
    })
}

/// Deletes one subscription and its pending pushes; true if it existed.
pub(super) fn delete(conn: &Connection, username: &str, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("DELETE FROM push_queue WHERE username = ?1 AND target = ?2 AND kind = 0")?
        .execute(params![username, id])?;
    let deleted = conn
        .prepare_cached("DELETE FROM push_subscriptions WHERE username = ?1 AND id = ?2")?
        .execute(params![username, id])?;
    Ok(deleted > 0)
}

/// [`Store::delete_subscription`] inside the caller's transaction.
pub(super) fn delete_if_at(
    conn: &Connection,
    username: &str,
    id: &str,
    endpoint: Option<&str>,
) -> Result<bool, StoreError> {
    if let Some(endpoint) = endpoint {
        let current: Option<String> = conn
            .prepare_cached(
                "SELECT endpoint FROM push_subscriptions WHERE username = ?1 AND id = ?2",
            )?
            .query_row(params![username, id], |r| r.get(0))
            .optional()?;
        if current.as_deref() != Some(endpoint) {
            return Ok(false);
        }
    }
    delete(conn, username, id)
}

impl Sqlite {
    /// A user's subscriptions, by id.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn subscriptions(&self, username: &str) -> Result<Vec<Subscription>, StoreError> {
        let conn = self.lock()?;
        let sql =
            format!("SELECT {COLUMNS} FROM push_subscriptions WHERE username = ?1 ORDER BY id");
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![username], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One subscription.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn subscription(
        &self,
        username: &str,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let conn = self.lock()?;
        let sql =
            format!("SELECT {COLUMNS} FROM push_subscriptions WHERE username = ?1 AND id = ?2");
        Ok(conn
            .prepare_cached(&sql)?
            .query_row(params![username, id], row)
            .optional()?)
    }

    /// Deletes a subscription and its pending pushes; with `endpoint`, only if it still
    /// points there (a push service's 404/410 must not delete a subscription the
    /// client has replaced meanwhile). True if one was deleted.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn delete_subscription(
        &self,
        username: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let deleted = delete_if_at(&tx, username, id, endpoint)?;
        tx.commit()?;
        Ok(deleted)
    }

    /// Deletes subscriptions never validated and created before `created_before`
    /// (of `username`, or of everyone), with their pending pushes; returns how many.
    /// At most [`EXPIRE_BATCH`] per call: the worker's sweep comes back for the rest.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn expire_subscriptions(
        &self,
        username: Option<&str>,
        created_before: i64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let expired: Vec<(String, String)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT username, id FROM push_subscriptions
                  WHERE validated_at IS NULL AND created < ?1
                    AND (?2 IS NULL OR username = ?2)
                  LIMIT ?3",
            )?;
            let rows =
                stmt.query_map(params![created_before, username, EXPIRE_BATCH], text_pair)?;
            rows.collect::<Result<_, _>>()?
        };
        for (user, id) in &expired {
            tracing::info!(
                user,
                subscription = id,
                "unvalidated push subscription expired"
            );
            delete(&tx, user, id)?;
        }
        tx.commit()?;
        Ok(expired.len())
    }
}
