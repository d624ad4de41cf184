//! coid's configuration: one TOML file, `deny_unknown_fields` everywhere, every key with
//! a default that `conf.d/coid.toml` documents. [`Config::load`] parses and then
//! [`Config::validate`] reports every problem at once, before anything is bound.

mod deltachat;
mod push;
mod service;
mod state;
mod validate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use deltachat::{DeltaChatConfig, NotifyFor};
pub use push::PushConfig;
pub use service::{MetricsConfig, ServiceConfig};
pub use state::{Database, PostgresConfig, StateConfig};
pub use validate::Problems;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// LMTP listeners and session limits.
    pub lmtp: LmtpConfig,
    /// Where coid keeps its state (SQLite or PostgreSQL, spool).
    pub state: StateConfig,
    /// The Sieve policy.
    pub policy: PolicyConfig,
    /// Server-wide COI defaults.
    pub coi: CoiConfig,
    /// How recipients map to users.
    pub users: UsersConfig,
    /// Where messages are stored.
    pub delivery: DeliveryConfig,
    /// The dict proxy for Dovecot's IMAP METADATA.
    pub dict: DictConfig,
    /// Web Push to COI clients.
    pub push: PushConfig,
    /// Delta Chat notifications and the server entries Delta Chat reads.
    pub deltachat: DeltaChatConfig,
    /// How coid runs as a host service.
    pub service: ServiceConfig,
    /// Prometheus metrics and the health check.
    pub metrics: MetricsConfig,
}

/// `[lmtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmtpConfig {
    /// Name in the LHLO reply.
    pub hostname: String,
    /// Unix socket path to listen on (empty: none).
    pub unix_socket: String,
    /// Octal mode of the unix socket.
    pub unix_socket_mode: String,
    /// Owner of the unix socket (empty: the user coid runs as); only root can give it
    /// away, so this takes effect when coid starts as root.
    pub unix_socket_owner: String,
    /// Group of the unix socket (empty: coid's group): Postfix's, so its lmtp client
    /// can connect. coid must be in that group unless it starts as root.
    pub unix_socket_group: String,
    /// TCP addresses to listen on.
    pub tcp: Vec<String>,
    /// Concurrent sessions; more wait in the kernel backlog.
    pub max_connections: usize,
    /// Longest command line in bytes, CRLF included (RFC 5321 §4.5.3.1.4: 512 minimum).
    pub max_line_length: usize,
    /// Largest message in bytes; advertised as SIZE (RFC 1870).
    pub max_message_size: u64,
    /// Most recipients per transaction.
    pub max_recipients: usize,
    /// Seconds a session may stay silent before it is closed with 421.
    pub idle_timeout_secs: u64,
    /// Bodies above this many bytes are spooled to a file.
    pub spool_threshold: usize,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            unix_socket: "/var/spool/postfix/coid/lmtp".into(),
            unix_socket_mode: "0660".into(),
            unix_socket_owner: String::new(),
            unix_socket_group: "postfix".into(),
            tcp: Vec::new(),
            max_connections: 64,
            max_line_length: 4096,
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 1000,
            idle_timeout_secs: 300,
            spool_threshold: 256 * 1024,
        }
    }
}

/// `[dict]`: the Dovecot dict proxy server (`mail_attribute_dict = proxy:<socket>:coid`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DictConfig {
    /// Unix socket path to listen on (empty: no dict proxy).
    pub socket: String,
    /// Octal mode of the socket; Dovecot's mail processes (`mail_uid`) must be able to
    /// connect, and nobody else should: whoever can, can write any user's METADATA.
    pub socket_mode: String,
    /// Owner of the socket (empty: the user coid runs as; only root can give it away).
    pub socket_owner: String,
    /// Group of the socket (empty: coid's group).
    pub socket_group: String,
    /// Concurrent connections; more wait in the kernel backlog.
    pub max_connections: usize,
    /// Longest protocol line in bytes (Dovecot's own dict server: 65536).
    pub max_line_length: usize,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Open transactions per connection.
    pub max_transactions: usize,
    /// Changes in one transaction.
    pub max_changes: usize,
    /// Uncommitted bytes (keys and values) per connection.
    pub max_pending_bytes: usize,
    /// Rows one iteration returns at most.
    pub max_iterate_rows: usize,
}

impl Default for DictConfig {
    fn default() -> Self {
        Self {
            socket: "/run/coid/dict".into(),
            socket_mode: "0660".into(),
            socket_owner: String::new(),
            socket_group: String::new(),
            max_connections: 64,
            max_line_length: 65536,
            idle_timeout_secs: 60,
            max_transactions: 16,
            max_changes: 1000,
            max_pending_bytes: 4 * 1024 * 1024,
            max_iterate_rows: 1000,
        }
    }
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The operator's Sieve script; empty means the built-in default (the same text as
    /// `conf.d/policy.sieve`).
    pub script: String,
    /// Sieve instructions one run may execute before it is stopped (then: keep).
    pub cpu_limit: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            script: String::new(),
            cpu_limit: 10_000,
        }
    }
}

/// `[coi]`: defaults for users who never set their own (COI server spec).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoiConfig {
    /// COI on for users who have not set `enabled`.
    pub enabled: bool,
    /// `none`, `active` or `seen` for users who have not set `message-filter`.
    pub message_filter: String,
    /// The COI mailbox root; chats go to `<root>/Chats`.
    pub mailbox_root: String,
}

impl Default for CoiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            message_filter: "none".into(),
            mailbox_root: "COI".into(),
        }
    }
}

/// `[users]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// Characters that start an address extension (`alice+tag@`), like Postfix's
    /// `recipient_delimiter`; empty: none.
    pub recipient_delimiter: String,
    /// `address` (user = `local@domain`, Dovecot's `%u` for virtual users) or
    /// `localpart` (user = `local`, `%n` for system users).
    pub username: String,
}

impl Default for UsersConfig {
    fn default() -> Self {
        Self {
            recipient_delimiter: "+".into(),
            username: "address".into(),
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// `maildir` (embedded) or `dovecot` (LMTP to Dovecot).
    pub backend: String,
    /// `[delivery.dovecot]`
    pub dovecot: DovecotConfig,
    /// `[delivery.maildir]`
    pub maildir: MaildirConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            backend: "dovecot".into(),
            dovecot: DovecotConfig::default(),
            maildir: MaildirConfig::default(),
        }
    }
}

/// `[delivery.dovecot]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DovecotConfig {
    /// Dovecot's LMTP: a unix socket path, or `host:port`.
    pub lmtp: String,
    /// The hierarchy separator of the user namespace (`separator` in Dovecot's
    /// `namespace inbox {}`); policy folder names use `/` and are translated.
    pub hierarchy_separator: String,
    /// Seconds to wait for the connection.
    pub connect_timeout_secs: u64,
    /// Seconds to wait for each reply (well under Postfix's 600 s).
    pub reply_timeout_secs: u64,
    /// Seconds one whole transaction to Dovecot may take (connection, envelope, body,
    /// every reply): recipients not answered by then get 4xx and the connection is
    /// dropped. Well under Postfix's `lmtp_data_done_timeout` (600 s).
    pub transaction_timeout_secs: u64,
    /// Name in our LHLO to Dovecot.
    pub lhlo_name: String,
    /// Most LMTP connections to Dovecot open at once (in use and idle).
    pub max_connections: usize,
    /// Most idle connections kept for reuse; 0: a new connection per message.
    pub max_idle_connections: usize,
    /// Seconds an idle connection is kept (below Dovecot's own idle timeout).
    pub idle_secs: u64,
}

impl DovecotConfig {
    /// [`Self::hierarchy_separator`] as the character it is (validated to be one).
    pub fn separator(&self) -> char {
        self.hierarchy_separator.chars().next().unwrap_or('/')
    }
}

impl Default for DovecotConfig {
    fn default() -> Self {
        Self {
            lmtp: "/run/dovecot/lmtp".into(),
            hierarchy_separator: "/".into(),
            connect_timeout_secs: 10,
            reply_timeout_secs: 120,
            transaction_timeout_secs: 300,
            lhlo_name: "coid".into(),
            max_connections: 64,
            max_idle_connections: 16,
            idle_secs: 30,
        }
    }
}

/// `[delivery.maildir]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaildirConfig {
    /// Maildir of a user; `{domain}`, `{local}` and `{user}` are replaced. Relative
    /// paths are under the state directory.
    pub path: String,
    /// fsync files and directories before answering (off only for tests and benches).
    pub fsync: bool,
}

impl Default for MaildirConfig {
    fn default() -> Self {
        Self {
            path: "mail/{domain}/{local}/Maildir".into(),
            fsync: true,
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said.
        message: String,
    },
    /// Values that parse but cannot work; all of them.
    #[error("{0}")]
    Invalid(Problems),
}

impl Config {
    /// Reads, parses and validates a config file.
    ///
    /// # Errors
    /// Any problem; [`ConfigError::Invalid`] lists them all.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text, path)?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Parses TOML text (no validation).
    ///
    /// # Errors
    /// Syntax errors and unknown keys.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The SQLite file (with `[state] database = "sqlite"`).
    pub fn database_path(&self) -> PathBuf {
        self.state.dir.join("coid.sqlite")
    }

    /// The spool directory for large messages.
    pub fn spool_dir(&self) -> PathBuf {
        self.state.dir.join("spool")
    }
}

/// A socket mode as the config writes it (`"0660"`): octal, at most `0o777`.
pub fn socket_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
}
