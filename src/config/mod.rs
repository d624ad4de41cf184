//! coid's configuration: one TOML file, `deny_unknown_fields` everywhere, every key with
//! a default that `conf.d/coid.toml` documents. [`Config::load`] parses and then
//! [`Config::validate`] reports every problem at once, before anything is bound.

mod deltachat;
mod push;
mod read;
mod service;
mod state;
mod validate;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use deltachat::{DeltaChatConfig, NotifyFor};
pub use push::{PushConfig, Urgency};
pub use read::Parsed;
pub use service::{MetricsConfig, ServiceConfig};
pub use state::{Database, PostgresConfig, StateConfig};
pub use validate::Problems;
pub use values::{BadSocketMode, SocketMode};

pub use crate::store::MessageFilter;

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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmtpConfig {
    /// Name in the LHLO reply.
    pub hostname: String,
    /// Unix socket path to listen on (empty: none).
    pub unix_socket: PathBuf,
    /// Mode of the unix socket (octal in the file).
    pub unix_socket_mode: SocketMode,
    /// Owner of the unix socket (empty: the user coid runs as); only root can give it
    /// away, so this takes effect when coid starts as root.
    pub unix_socket_owner: String,
    /// Group of the unix socket (empty: coid's group): Postfix's, so its lmtp client
    /// can connect. coid must be in that group unless it starts as root.
    pub unix_socket_group: String,
    /// TCP addresses to listen on.
    #[serde(deserialize_with = "values::addresses")]
    pub tcp: Vec<SocketAddr>,
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
            unix_socket: PathBuf::from("/var/spool/postfix/coid/lmtp"),
            unix_socket_mode: SocketMode::DEFAULT,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DictConfig {
    /// Unix socket path to listen on (empty: no dict proxy).
    pub socket: PathBuf,
    /// Mode of the socket (octal in the file); Dovecot's mail processes (`mail_uid`)
    /// must be able to connect, and nobody else should: whoever can, can write any
    /// user's METADATA.
    pub socket_mode: SocketMode,
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
            socket: PathBuf::from("/run/coid/dict"),
            socket_mode: SocketMode::DEFAULT,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The operator's Sieve script; empty means the built-in default (the same text as
    /// `conf.d/policy.sieve`).
    pub script: PathBuf,
    /// Sieve instructions one run may execute before it is stopped (then: keep).
    pub cpu_limit: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            script: PathBuf::new(),
            cpu_limit: 10_000,
        }
    }
}

/// `[coi]`: defaults for users who never set their own (COI server spec).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoiConfig {
    /// COI on for users who have not set `enabled`.
    pub enabled: bool,
    /// `none`, `active` or `seen` for users who have not set `message-filter`.
    pub message_filter: MessageFilter,
    /// The COI mailbox root; chats go to `<root>/Chats`.
    pub mailbox_root: String,
}

impl Default for CoiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            message_filter: MessageFilter::None,
            mailbox_root: "COI".into(),
        }
    }
}

/// `[users]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// Characters that start an address extension (`alice+tag@`), like Postfix's
    /// `recipient_delimiter`; empty: none.
    pub recipient_delimiter: String,
    /// Which part of a recipient is the username.
    pub username: UsernameForm,
}

/// `[users] username`: which part of a recipient address is the username, to match
/// the one Dovecot uses for METADATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsernameForm {
    /// `address`: user = `local@domain` (Dovecot's `%u`, for virtual users).
    Address,
    /// `localpart`: user = `local` (`%n`, for system users).
    Localpart,
}

impl Default for UsersConfig {
    fn default() -> Self {
        Self {
            recipient_delimiter: "+".into(),
            username: UsernameForm::Address,
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Where messages go.
    pub backend: DeliveryBackend,
    /// `[delivery.dovecot]`
    pub dovecot: DovecotConfig,
    /// `[delivery.maildir]`
    pub maildir: MaildirConfig,
}

/// `[delivery] backend`: where coid stores messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryBackend {
    /// `maildir`: coid writes Maildirs itself (`[delivery.maildir]`).
    Maildir,
    /// `dovecot`: LMTP to Dovecot (`[delivery.dovecot]`).
    Dovecot,
}

impl DeliveryBackend {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryBackend::Maildir => "maildir",
            DeliveryBackend::Dovecot => "dovecot",
        }
    }
}

impl std::fmt::Display for DeliveryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            backend: DeliveryBackend::Dovecot,
            dovecot: DovecotConfig::default(),
            maildir: MaildirConfig::default(),
        }
    }
}

/// `[delivery.dovecot]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DovecotConfig {
    /// Dovecot's LMTP: a unix socket path, or `host:port`.
    pub lmtp: String,
    /// The hierarchy separator of the user namespace (`separator` in Dovecot's
    /// `namespace inbox {}`); policy folder names use `/` and are translated. One
    /// character (serde refuses any other string).
    pub hierarchy_separator: char,
    /// Seconds to wait for the connection.
    pub connect_timeout_secs: u64,
    /// Seconds to wait for each reply (well under Postfix's 600 s).
    pub reply_timeout_secs: u64,
    /// Seconds one whole transaction to Dovecot may take (connection, envelope, body,
    /// every reply; with cut-through also the time the client takes to send DATA while
    /// the transaction is open): recipients not answered by then get 4xx and the
    /// connection is dropped. Well under Postfix's `lmtp_data_done_timeout` (600 s).
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

impl Default for DovecotConfig {
    fn default() -> Self {
        Self {
            lmtp: "/run/dovecot/lmtp".into(),
            hierarchy_separator: '/',
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaildirConfig {
    /// Maildir of a user; `{domain}`, `{local}` and `{user}` are replaced. Relative
    /// paths are under the state directory. (A template, text until it is filled in,
    /// so a `String`.)
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
    /// TOML syntax.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said.
        message: String,
    },
    /// Values that do not fit their keys (unknown keys and words, wrong types) or
    /// cannot work; all of them.
    #[error("{0}")]
    Invalid(Problems),
}

impl Config {
    /// The SQLite file (with `[state] database = "sqlite"`).
    pub fn database_path(&self) -> PathBuf {
        self.state.dir.join("coid.sqlite")
    }

    /// The spool directory for large messages.
    pub fn spool_dir(&self) -> PathBuf {
        self.state.dir.join("spool")
    }
}
