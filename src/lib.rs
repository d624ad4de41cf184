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
//! - [`delivery`]: one trait, a typed outcome per copy; Dovecot LMTP and Maildir backends.
//! - [`pipeline`]: one message through classify → policy → delivery.
//! - [`answer`]: each recipient's fate (delivery outcome, policy verdict, coid's own
//!   failure) and the one function that makes it an LMTP reply.
//! - [`push`]: Web Push: subscriptions, payload, VAPID, endpoint rules, outcomes, the
//!   durable queue and its worker.
//! - [`store`]: the SQLite state store (COI settings as METADATA entries, WebPush
//!   subscriptions, the push queue, the server's VAPID key).
//! - [`dict`]: Dovecot's dict proxy protocol: IMAP METADATA into the store.
//! - [`server`]: listeners, connection limit, graceful shutdown.
//! - [`app`]: the composition root: config → store → pipeline → contexts → push, with
//!   typed start-up errors; `cli` and `daemon` both build through it.
//! - [`daemon`]: `coid serve` as a host service: sockets (systemd's or bound), the
//!   privilege drop, sd_notify and the watchdog, signals, reload.
//! - [`metrics`]: the Prometheus registry and the `/metrics` + `/health` listener.
//! - [`doctor`]: `coid doctor`'s checks of a live host (Postfix, Dovecot, coid), pure
//!   functions of what `postconf`, `doveconf -n` and the files said.
//! - [`config`], [`users`], [`cli`]: configuration, recipient → user, the command line.

// No `unsafe` in coid but one function of `daemon::systemd` (owning the sockets systemd
// passes). Every module forbids it, so no `#[allow]` can bring it back, except
// `daemon`, which forbids it in each of its modules but `systemd`: a crate-wide
// `#![forbid(unsafe_code)]` would forbid it there too. Cargo.toml's `deny` covers
// the rest (`daemon`'s own items, `systemd` outside that function, tests, benches).
#[forbid(unsafe_code)]
pub mod answer;
#[forbid(unsafe_code)]
pub mod app;
#[forbid(unsafe_code)]
pub mod classify;
#[forbid(unsafe_code)]
pub mod cli;
#[forbid(unsafe_code)]
pub mod config;
pub mod daemon;
#[forbid(unsafe_code)]
pub mod delivery;
#[forbid(unsafe_code)]
pub mod dict;
#[forbid(unsafe_code)]
pub mod doctor;
#[forbid(unsafe_code)]
pub mod lmtp;
#[forbid(unsafe_code)]
pub mod metrics;
#[forbid(unsafe_code)]
pub mod parsed;
#[forbid(unsafe_code)]
pub mod pipeline;
#[forbid(unsafe_code)]
pub mod policy;
#[forbid(unsafe_code)]
pub mod push;
#[forbid(unsafe_code)]
pub mod server;
#[forbid(unsafe_code)]
pub mod spool;
#[forbid(unsafe_code)]
pub mod store;
#[forbid(unsafe_code)]
pub mod users;
