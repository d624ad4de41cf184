//! Dovecot's attribute dictionary, the COI settings, the server's secrets and the
//! caches' counters, over PostgreSQL: the same SQL as SQLite's in PostgreSQL's words.

use postgres::GenericClient;

use super::Postgres;
use crate::store::coi::{ENTRY_ENABLED, ENTRY_MESSAGE_FILTER, MessageFilter, StoredCoi};
use crate::store::engine::Counter;
use crate::store::{Depth, StoreError, Table, Write, unix_now};

impl Postgres {
    pub(super) fn lookup(
        &self,
        table: Table,
        username: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (name, column) = table.sql();
        let sql = format!("SELECT value FROM {name} WHERE username = $1 AND {column} = $2");
        let row = self.conn()?.query_opt(&sql, &[&username, &key])?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(super) fn scan(
        &self,
        table: Table,
        username: &str,
        prefix: &str,
        depth: Depth,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (name, column) = table.sql();
        // `>=` lets the primary key start the scan; starts_with() is the exact prefix
        // test (LIKE would treat `%`/`_` specially). Keys are COLLATE "C": byte order.
        let sql = format!(
            "SELECT {column}, value FROM {name}
             WHERE username = $1 AND {column} >= $2 AND starts_with({column}, $2)
               AND ($3::BIGINT = 2
                    OR ($3::BIGINT = 1 AND strpos(substr({column}, length($2) + 1), '/') = 0)
                    OR ($3::BIGINT = 0 AND {column} = $2))
             ORDER BY {column} LIMIT $4"
        );
        let limit = super::as_limit(limit);
        let rows = self
            .conn()?
            .query(&sql, &[&username, &prefix, &depth.code(), &limit])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(super) fn apply(&self, username: &str, writes: &[Write]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let now = unix_now();
        for write in writes {
            put(&mut tx, username, write, now)?;
        }
        Ok(tx.commit()?)
    }

    pub(super) fn stored_coi(&self, username: &str) -> Result<StoredCoi, StoreError> {
        let mut stored = StoredCoi::default();
        let rows = self.conn()?.query(
            "SELECT entry, value FROM user_metadata WHERE username = $1 AND entry IN ($2, $3)",
            &[&username, &ENTRY_ENABLED, &ENTRY_MESSAGE_FILTER],
        )?;
        for row in rows {
            let (entry, value): (String, String) = (row.get(0), row.get(1));
            match entry.as_str() {
                ENTRY_ENABLED => stored.enabled = Some(value == "yes"),
                ENTRY_MESSAGE_FILTER => match MessageFilter::parse(&value) {
                    Some(filter) => stored.message_filter = Some(filter),
                    None => tracing::warn!(username, value, "ignoring invalid message-filter"),
                },
                _ => {}
            }
        }
        Ok(stored)
    }

    pub(super) fn secret_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> String,
    ) -> Result<String, StoreError> {
        let mut conn = self.conn()?;
        let select = "SELECT value FROM server_secrets WHERE name = $1";
        if let Some(row) = conn.query_opt(select, &[&name])? {
            return Ok(row.get(0));
        }
        // Nodes starting at once: each inserts its own, one wins, all read the winner.
        conn.execute(
            "INSERT INTO server_secrets (name, value, created) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &make(), &unix_now()],
        )?;
        Ok(conn.query_one(select, &[&name])?.get(0))
    }

    pub(super) fn counter(&self, which: Counter) -> Result<i64, StoreError> {
        let sql = match which {
            Counter::Settings => "SELECT n FROM settings_version WHERE id = 1",
            Counter::Targets => "SELECT n FROM targets_version WHERE id = 1",
        };
        Ok(self.conn()?.query_one(sql, &[])?.get(0))
    }
}

/// Stores one write inside an open transaction.
pub(super) fn put(
    tx: &mut impl GenericClient,
    username: &str,
    write: &Write,
    now: i64,
) -> Result<(), StoreError> {
    let (name, column) = write.table.sql();
    match &write.value {
        Some(value) => {
            let sql = format!(
                "INSERT INTO {name} (username, {column}, value, updated) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (username, {column})
                 DO UPDATE SET value = excluded.value, updated = excluded.updated"
            );
            tx.execute(&sql, &[&username, &write.key, value, &now])?;
        }
        None => {
            let sql = format!("DELETE FROM {name} WHERE username = $1 AND {column} = $2");
            tx.execute(&sql, &[&username, &write.key])?;
        }
    }
    Ok(())
}
