//! Subscriptions, device tokens and who has either, over PostgreSQL: the reads, the
//! deletions by id and the expiry sweeps (`crate::store::subscriptions`,
//! `crate::store::tokens`).

use std::collections::HashSet;

use postgres::Row;

use super::commit::{delete_subscription_at, delete_token};
use super::queue::locked_len;
use super::{Postgres, as_count, as_limit};
use crate::store::{DeviceToken, StoreError, Subscription, subscriptions, tokens};

const COLUMNS: &str = "id, client, device, msgtype, endpoint, p256dh, auth, created, validated_at";

fn subscription_row(r: &Row) -> Subscription {
    Subscription {
        id: r.get(0),
        client: r.get(1),
        device: r.get(2),
        msgtype: r.get(3),
        endpoint: r.get(4),
        p256dh: r.get(5),
        auth: r.get(6),
        created: r.get(7),
        validated_at: r.get(8),
    }
}

impl Postgres {
    pub(super) fn subscriptions(&self, username: &str) -> Result<Vec<Subscription>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM push_subscriptions WHERE username = $1 ORDER BY id");
        let rows = self.conn()?.query(&sql, &[&username])?;
        Ok(rows.iter().map(subscription_row).collect())
    }

    pub(super) fn subscription(
        &self,
        username: &str,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM push_subscriptions WHERE username = $1 AND id = $2");
        let row = self.conn()?.query_opt(&sql, &[&username, &id])?;
        Ok(row.as_ref().map(subscription_row))
    }

    pub(super) fn delete_subscription(
        &self,
        username: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        let deleted = delete_subscription_at(&mut tx, username, id, endpoint)?;
        tx.commit()?;
        Ok(deleted)
    }

    pub(super) fn expire_subscriptions(
        &self,
        username: Option<&str>,
        created_before: i64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        let expired = tx.query(
            "SELECT username, id FROM push_subscriptions
              WHERE validated_at IS NULL AND created < $1
                AND ($2::TEXT IS NULL OR username = $2::TEXT)
              LIMIT $3 FOR UPDATE SKIP LOCKED",
            &[&created_before, &username, &subscriptions::EXPIRE_BATCH],
        )?;
        for row in &expired {
            let (user, id): (&str, &str) = (row.get(0), row.get(1));
            tracing::info!(
                user,
                subscription = id,
                "unvalidated push subscription expired"
            );
            delete_subscription_at(&mut tx, user, id, None)?;
        }
        tx.commit()?;
        Ok(expired.len())
    }

    pub(super) fn tokens(
        &self,
        username: &str,
        since: i64,
    ) -> Result<Vec<DeviceToken>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT id, token, created, updated FROM deltachat_tokens
              WHERE username = $1 AND updated >= $2 ORDER BY updated, id",
            &[&username, &since],
        )?;
        Ok(rows
            .iter()
            .map(|r| DeviceToken {
                id: r.get(0),
                token: r.get(1),
                created: r.get(2),
                updated: r.get(3),
            })
            .collect())
    }

    pub(super) fn delete_token(&self, username: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        let deleted = delete_token(&mut tx, username, id)?;
        tx.commit()?;
        Ok(deleted)
    }

    pub(super) fn expire_tokens(&self, updated_before: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        locked_len(&mut tx)?;
        let old = tx.query(
            "SELECT username, id FROM deltachat_tokens WHERE updated < $1
              LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&updated_before, &tokens::EXPIRE_BATCH],
        )?;
        for row in &old {
            delete_token(&mut tx, row.get(0), row.get(1))?;
        }
        tx.commit()?;
        Ok(old.len())
    }

    pub(super) fn token_count(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT count(*) FROM deltachat_tokens", &[])?
            .get(0);
        Ok(as_count(n))
    }

    pub(super) fn target_users(&self, max: usize) -> Result<Option<HashSet<String>>, StoreError> {
        let limit = as_limit(max.saturating_add(1));
        let rows = self.conn()?.query(
            "SELECT username FROM push_subscriptions
             UNION SELECT username FROM deltachat_tokens LIMIT $1",
            &[&limit],
        )?;
        let users: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok((users.len() <= max).then_some(users))
    }
}
