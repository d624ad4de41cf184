//! The server's secrets over SQLite: created once, the first insert wins.

use rusqlite::{OptionalExtension, params};

use super::Sqlite;
use crate::store::{StoreError, unix_now};

impl Sqlite {
    /// The secret `name`, created with `make` if there is none yet. Two processes
    /// creating it at once agree on one value: the first insert wins.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn secret_or_insert(
        &self,
        name: &str,
        make: &mut dyn FnMut() -> String,
    ) -> Result<String, StoreError> {
        let conn = self.lock()?;
        let select = "SELECT value FROM server_secrets WHERE name = ?1";
        if let Some(value) = conn
            .query_row(select, params![name], |r| r.get(0))
            .optional()?
        {
            return Ok(value);
        }
        conn.execute(
            "INSERT OR IGNORE INTO server_secrets (name, value, created) VALUES (?1, ?2, ?3)",
            params![name, make(), unix_now()],
        )?;
        Ok(conn.query_row(select, params![name], |r| r.get(0))?)
    }
}
