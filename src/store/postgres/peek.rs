//! A look at a PostgreSQL store without changing it (`coid doctor`): its schema
//! version and the VAPID key, read on one connection of its own; no migration, no
//! pool.

use std::str::FromStr;
use std::time::Duration;

use super::{MIGRATIONS, tls};
use crate::config::PostgresConfig;
use crate::store::{SECRET_VAPID, StoreError};

/// The schema version this coid writes to PostgreSQL.
pub const POSTGRES_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What a look found: `None` when coid never created its tables there; else the
/// schema version and the VAPID private key (PEM), if any.
///
/// # Errors
/// The server cannot be reached or read.
pub fn peek(settings: &PostgresConfig) -> Result<Option<(i64, Option<String>)>, StoreError> {
    let mut config = postgres::Config::from_str(&settings.url)
        .map_err(|err| StoreError::Unavailable(format!("state.postgresql.url: {err}")))?;
    if let Some(file) = &settings.password_file {
        let text = std::fs::read_to_string(file).map_err(|err| {
            StoreError::Unavailable(format!(
                "state.postgresql.password_file {}: {err}",
                file.display()
            ))
        })?;
        config.password(text.trim_end_matches(['\r', '\n']));
    }
    config.connect_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)));
    tls::settle_ssl_mode(&mut config);
    let mut client = config.connect(tls::connector(settings.ca_file.as_deref())?)?;
    let exists: bool = client
        .query_one("SELECT to_regclass('coid_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let version: i64 = client
        .query_one("SELECT version FROM coid_schema WHERE id = 1", &[])?
        .get(0);
    let has_secrets: bool = client
        .query_one("SELECT to_regclass('server_secrets') IS NOT NULL", &[])?
        .get(0);
    let pem = if has_secrets {
        client
            .query_opt(
                "SELECT value FROM server_secrets WHERE name = $1",
                &[&SECRET_VAPID],
            )?
            .map(|r| r.get(0))
    } else {
        None
    };
    Ok(Some((version, pem)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::postgres_store;

    #[test]
    fn looks_without_migrating() {
        let config = super::super::test_server::fresh_database();
        let settings = PostgresConfig {
            url: format!(
                "host=127.0.0.1 port={} user=postgres dbname={}",
                config.get_ports()[0],
                config.get_dbname().expect("dbname")
            ),
            ..PostgresConfig::default()
        };
        assert_eq!(peek(&settings).expect("peek"), None, "nothing created");
        let store = postgres_store(config);
        let pem = store
            .secret_or_insert(SECRET_VAPID, || "pem".into())
            .expect("key");
        assert_eq!(
            peek(&settings).expect("peek"),
            Some((POSTGRES_SCHEMA_VERSION, Some(pem)))
        );
    }
}
