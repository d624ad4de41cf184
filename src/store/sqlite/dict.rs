//! Dovecot's attribute dictionary over SQLite: point lookups, prefix scans with the
//! dict's depth rules (`crate::store::Depth`) and a batch of writes in one transaction.

use rusqlite::{OptionalExtension, params};

use super::{Sqlite, text_pair};
use crate::store::{Depth, StoreError, Table, Write, unix_now};

impl Sqlite {
    /// One key of a user.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn lookup(
        &self,
        table: Table,
        username: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (name, column) = table.sql();
        let sql = format!("SELECT value FROM {name} WHERE username = ?1 AND {column} = ?2");
        let conn = self.lock()?;
        let value = conn
            .prepare_cached(&sql)?
            .query_row(params![username, key], |r| r.get(0))
            .optional()?;
        Ok(value)
    }

    /// The user's keys that start with `prefix` (byte-wise, as Dovecot's own dicts
    /// compare) and match `depth`, sorted by key, at most `limit` of them.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn scan(
        &self,
        table: Table,
        username: &str,
        prefix: &str,
        depth: Depth,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (name, column) = table.sql();
        // `>=` lets SQLite start in the primary key; substr() is the exact prefix test
        // (LIKE would treat `%`/`_` and case specially).
        let sql = format!(
            "SELECT {column}, value FROM {name}
             WHERE username = ?1 AND {column} >= ?2 AND substr({column}, 1, length(?2)) = ?2
               AND (?3 = 2
                    OR (?3 = 1 AND instr(substr({column}, length(?2) + 1), '/') = 0)
                    OR (?3 = 0 AND {column} = ?2))
             ORDER BY {column} LIMIT ?4"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![username, prefix, depth.code(), limit], text_pair)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Applies all `writes` of one user in a single SQLite transaction: either every
    /// change is stored or none is.
    ///
    /// # Errors
    /// SQLite failed; nothing was written.
    pub(super) fn apply(&self, username: &str, writes: &[Write]) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let now = unix_now();
        for write in writes {
            put(&tx, username, write, now)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Stores one write inside an open transaction.
pub(super) fn put(
    tx: &rusqlite::Transaction<'_>,
    username: &str,
    write: &Write,
    now: i64,
) -> Result<(), StoreError> {
    let (name, column) = write.table.sql();
    match &write.value {
        Some(value) => {
            let sql = format!(
                "INSERT INTO {name} (username, {column}, value, updated) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (username, {column}) DO UPDATE SET value = excluded.value, updated = excluded.updated"
            );
            tx.prepare_cached(&sql)?
                .execute(params![username, write.key, value, now])?;
        }
        None => {
            let sql = format!("DELETE FROM {name} WHERE username = ?1 AND {column} = ?2");
            tx.prepare_cached(&sql)?
                .execute(params![username, write.key])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(table: Table, key: &str, value: Option<&str>) -> Write {
        Write {
            table,
            key: key.into(),
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn apply_is_all_or_nothing() {
        let (_dir, store) = super::super::temp_sqlite();
        store
            .apply(
                "u",
                &[
                    write(Table::Metadata, "/private/a", Some("1")),
                    write(Table::Attributes, "priv/g/x", Some("2")),
                ],
            )
            .expect("apply");
        assert_eq!(
            store
                .lookup(Table::Metadata, "u", "/private/a")
                .expect("get")
                .as_deref(),
            Some("1")
        );
        store
            .apply(
                "u",
                &[
                    write(Table::Metadata, "/private/a", None),
                    write(Table::Attributes, "priv/g/x", Some("3")),
                ],
            )
            .expect("apply");
        assert_eq!(
            store
                .lookup(Table::Metadata, "u", "/private/a")
                .expect("get"),
            None
        );
        assert_eq!(
            store
                .lookup(Table::Attributes, "u", "priv/g/x")
                .expect("lookup")
                .as_deref(),
            Some("3")
        );
        // A batch whose second statement fails (its table is gone) leaves nothing behind.
        store
            .lock()
            .expect("lock")
            .execute_batch("DROP TABLE dict_attributes")
            .expect("drop");
        let err = store.apply(
            "u",
            &[
                write(Table::Metadata, "/private/b", Some("1")),
                write(Table::Attributes, "priv/g/y", Some("1")),
            ],
        );
        assert!(err.is_err());
        assert_eq!(
            store
                .lookup(Table::Metadata, "u", "/private/b")
                .expect("get"),
            None
        );
    }
}
