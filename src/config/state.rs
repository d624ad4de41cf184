//! `[state]`: where coid keeps its state. The state directory always holds the spool;
//! the store is SQLite in that directory (the default, one coid host) or a PostgreSQL
//! database that several coid nodes share (`[state.postgresql]`). Checked by
//! [`StateConfig::validate`]; the password file is read at start, never logged.

use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use super::validate::check_range;

/// Which database keeps the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    /// `coid.sqlite` in the state directory.
    #[default]
    Sqlite,
    /// `[state.postgresql]`: shared by several coid nodes.
    Postgresql,
}

/// `[state]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// State directory: `spool/` and, with SQLite, `coid.sqlite` live here.
    pub dir: PathBuf,
    /// Which database keeps the state.
    pub database: Database,
    /// The PostgreSQL connection, with `database = "postgresql"`.
    pub postgresql: PostgresConfig,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/coid"),
            database: Database::Sqlite,
            postgresql: PostgresConfig::default(),
        }
    }
}

/// `[state.postgresql]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// A libpq URL (`postgresql://coid@127.0.0.1:5432/coid`) or key=value string
    /// (`host=127.0.0.1 user=coid dbname=coid`). A password in it works, but belongs
    /// in `password_file`.
    pub url: String,
    /// A file holding the password (one line; the trailing newline is dropped).
    pub password_file: Option<PathBuf>,
    /// PEM certificates trusted (besides Mozilla's roots) for a server's certificate,
    /// with `sslmode=require` in the URL (the only mode that uses TLS; the
    /// certificate is then verified, as libpq's `verify-full`).
    pub ca_file: Option<PathBuf>,
    /// Most connections this coid opens (the push worker, the push hook, the dict
    /// proxy and the delivery path share them).
    pub pool_size: u32,
    /// Seconds to wait for a connection (to connect, or for a free one in the pool).
    pub connect_timeout_secs: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgresql://coid@127.0.0.1:5432/coid".into(),
            password_file: None,
            ca_file: None,
            pool_size: 8,
            connect_timeout_secs: 5,
        }
    }
}

impl StateConfig {
    /// Adds every problem of `[state]` to `p`.
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        if self.dir.as_os_str().is_empty() {
            p.push("state.dir: must not be empty".into());
        }
        if self.database == Database::Postgresql {
            self.postgresql.validate(p);
        }
    }
}

impl PostgresConfig {
    fn validate(&self, p: &mut Vec<String>) {
        // The parser's message never repeats the string, so no password is shown.
        if let Err(err) = postgres::Config::from_str(&self.url) {
            p.push(format!(
                "state.postgresql.url: not a PostgreSQL URL or key=value string ({err})"
            ));
        }
        for (key, file) in [
            ("password_file", &self.password_file),
            ("ca_file", &self.ca_file),
        ] {
            if file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
                p.push(format!(
                    "state.postgresql.{key}: must not be empty when set"
                ));
            }
        }
        check_range(
            p,
            "state.postgresql.pool_size",
            u64::from(self.pool_size),
            1,
            1000,
        );
        check_range(
            p,
            "state.postgresql.connect_timeout_secs",
            self.connect_timeout_secs,
            1,
            300,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let config: StateConfig = toml::from_str(text).expect("parses");
        let mut p = Vec::new();
        config.validate(&mut p);
        p
    }

    #[test]
    fn sqlite_by_default_postgresql_checked_when_chosen() {
        let config: StateConfig = toml::from_str("").expect("parses");
        assert_eq!(config.database, Database::Sqlite);
        assert!(problems("").is_empty());
        // Not checked while SQLite is the database.
        assert!(problems("[postgresql]\npool_size = 0").is_empty());
        let ok = "database = \"postgresql\"\n[postgresql]\n\
                  url = \"host=127.0.0.1 user=coid dbname=coid\"";
        assert!(problems(ok).is_empty(), "{:?}", problems(ok));
        let url = "database = \"postgresql\"\n[postgresql]\n\
                   url = \"postgresql://coid@db.example.org:5432/coid?sslmode=require\"";
        assert!(problems(url).is_empty(), "{:?}", problems(url));
        let bad = "database = \"postgresql\"\n[postgresql]\nurl = \"postgresql://a:secret@h:notaport/x\"\n\
                   pool_size = 0\nconnect_timeout_secs = 0\npassword_file = \"\"";
        let found = problems(bad);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.iter().all(|p| !p.contains("secret")), "{found:?}");
        assert!(toml::from_str::<StateConfig>("database = \"mysql\"").is_err());
    }
}
