//! coid: the Chat Over IMAP server side for an existing Postfix + Dovecot host.
//!
//! # Layout
//! ```text
//! Postfix ─LMTP─▶ lmtp (session, sans-IO) ─▶ pipeline ─▶ classify ─▶ policy (Sieve, per rcpt)
//!                   ▲ per-rcpt replies          │                          │
//!                   └───────────────────────────┴──── delivery (Dovecot LMTP | Maildir)
//!                                               └─▶ push::delivered (after the replies)
//!    state: store (SQLite: COI settings, WebPush subscriptions, push queue, VAPID key)
//! Dovecot IMAP METADATA ─dict proxy─▶ dict (session, sans-IO) ─▶ store
//! push::worker: the store's push queue ─HTTPS (RFC 8030/8291/8292)─▶ push services
//! ```
//! - [`lmtp`]: the RFC 2033 listener: framing, session state machine, replies, I/O.
//! - [`spool`]: message bodies in memory or, past a threshold, in a temp file.
//! - [`parsed`]: the one way into mail-parser; never a message that panics when read.
//! - [`classify`]: chat / group / read receipt / email from the outer headers.
//! - [`policy`]: the operator's Sieve script, run per recipient.
//! - [`delivery`]: one trait, per-recipient results; Dovecot LMTP and Maildir backends.
//! - [`pipeline`]: one message through classify → policy → delivery.
//! - [`push`]: Web Push: subscriptions, payload, VAPID, endpoint rules, outcomes, the
//!   durable queue and its worker.
//! - [`store`]: the SQLite state store (COI settings as METADATA entries, WebPush
//!   subscriptions, the push queue, the server's VAPID key).
//! - [`dict`]: Dovecot's dict proxy protocol: IMAP METADATA into the store.
//! - [`server`]: listeners, connection limit, graceful shutdown.
//! - [`daemon`]: `coid serve` as a host service: sockets (systemd's or bound), the
//!   privilege drop, sd_notify and the watchdog, signals, reload.
//! - [`metrics`]: the Prometheus registry and the `/metrics` + `/health` listener.
//! - [`config`], [`users`], [`cli`]: configuration, recipient → user, the command line.

pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod dict;
pub mod lmtp;
pub mod metrics;
pub mod parsed;
pub mod pipeline;
pub mod policy;
pub mod push;
pub mod server;
pub mod spool;
pub mod store;
pub mod users;
