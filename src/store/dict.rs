//! The state store as Dovecot's attribute dictionary sees it (through `crate::dict`):
//! point lookups, prefix scans with the dict's depth rules, and a batch of writes
//! applied in one SQLite transaction, so a commit is all or nothing.
//!
//! Two tables answer: [`Table::Metadata`] holds users' METADATA entries by entry name
//! (`/private/...`, the same rows `coid user` and the delivery path use) and
//! [`Table::Attributes`] holds every other dict key verbatim. Which key goes where is
//! decided by `crate::dict::keys`, not here.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, text_pair, unix_now};

/// Which table a key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `user_metadata`: METADATA entry names (`/private/vendor/...`).
    Metadata,
    /// `dict_attributes`: raw dict keys (`priv/<guid>/comment`, `shared/...`).
    Attributes,
}

impl Table {
    /// (SQL table, key column). Constants only: never built from input.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Table::Metadata => ("user_metadata", "entry"),
            Table::Attributes => ("dict_attributes", "key"),
        }
    }
}

/// Which keys below a prefix a scan returns (the dict iteration flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Only the key equal to the prefix.
    Exact,
    /// Keys with no further `/` after the prefix.
    Children,
    /// Every key that starts with the prefix.
    All,
}

impl Depth {
    fn code(self) -> i64 {
        match self {
            Depth::Exact => 0,
            Depth::Children => 1,
            Depth::All => 2,
        }
    }

    /// The same rule in Rust, for keys that do not come from SQLite.
    pub fn matches(self, prefix: &str, key: &str) -> bool {
        let Some(rest) = key.strip_prefix(prefix) else {
            return false;
        };
        match self {
            Depth::Exact => rest.is_empty(),
            Depth::Children => !rest.contains('/'),
            Depth::All => true,
        }
    }
}

/// One change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Where the key lives.
    pub table: Table,
    /// Entry name or raw key.
    pub key: String,
    /// The new value; `None` removes the key.
    pub value: Option<String>,
}

impl Store {
    /// One key of a user.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn lookup(
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
    pub fn scan(
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
    pub fn apply(&self, username: &str, writes: &[Write]) -> Result<(), StoreError> {
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
    fn scan_follows_the_depth_rules() {
        let (_dir, store) = crate::store::temp_store();
        let keys = ["p/a", "p/b/c", "p/b/c/d", "p", "q/a", "p%/x"];
        let writes: Vec<Write> = keys
            .iter()
            .map(|k| write(Table::Attributes, k, Some("v")))
            .collect();
        store.apply("u", &writes).expect("apply");
        store
            .apply("other", &[write(Table::Attributes, "p/z", Some("v"))])
            .expect("apply");
        let scan = |prefix, depth, limit| -> Vec<String> {
            store
                .scan(Table::Attributes, "u", prefix, depth, limit)
                .expect("scan")
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(scan("p/", Depth::All, 10), ["p/a", "p/b/c", "p/b/c/d"]);
        assert_eq!(scan("p/", Depth::Children, 10), ["p/a"]);
        assert_eq!(scan("p/b/c", Depth::Exact, 10), ["p/b/c"]);
        assert_eq!(scan("p/", Depth::All, 2), ["p/a", "p/b/c"]);
        assert_eq!(scan("p%", Depth::All, 10), ["p%/x"]);
        assert!(scan("p//", Depth::All, 10).is_empty());
    }

    #[test]
    fn apply_is_all_or_nothing() {
        let (_dir, store) = crate::store::temp_store();
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
            store.get("u", "/private/a").expect("get").as_deref(),
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
        assert_eq!(store.get("u", "/private/a").expect("get"), None);
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
        assert_eq!(store.get("u", "/private/b").expect("get"), None);
    }
}
