//! The server's own secrets (today: the VAPID private key), created once on first use
//! and then never changed: clients register the VAPID public key with their push
//! service, which pins it. Nothing here is ever served to a client; the WebPush
//! METADATA entry shows only the public half (`crate::dict::webpush`).

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, unix_now};

/// The name of the VAPID private key (PKCS#8 PEM).
pub const SECRET_VAPID: &str = "vapid";

impl Store {
    /// The secret `name`, created with `make` if there is none yet. Two processes
    /// creating it at once agree on one value: the first insert wins.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn secret_or_insert(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).expect("open");
        let first = store
            .secret_or_insert(SECRET_VAPID, || "one".into())
            .expect("create");
        assert_eq!(first, "one");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let again = store
            .secret_or_insert(SECRET_VAPID, || "two".into())
            .expect("read");
        assert_eq!(again, "one");
    }
}
