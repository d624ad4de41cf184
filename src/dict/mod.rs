//! The Dovecot dict proxy server: IMAP METADATA (RFC 5464) in Dovecot goes through
//! `mail_attribute_dict = proxy:<socket>:coid` into coid's state store, so COI clients
//! set their COI settings with `SETMETADATA` and the delivery path reads them from the
//! same rows (`crate::store`).
//!
//! - [`protocol`]: Dovecot 2.3's and 2.4's dict wire protocol: typed commands,
//!   unescaping, sans-IO; its header is the protocol summary.
//! - [`reply`]: typed replies and their encoding.
//! - [`session`]: the per-connection state machine (handshake, commands), sans-IO;
//!   its lines come from the bounded line framing shared with LMTP
//!   (`crate::lmtp::line`).
//! - [`transactions`]: a connection's open transactions and their limits.
//! - [`keys`]: where a dict key lives in the store (server annotations become METADATA
//!   entries; everything else is kept verbatim).
//! - [`attributes`]: lookups, iterations and commits against the store, with the COI
//!   rules for writes.
//! - [`webpush`]: the WebPush entries (VAPID key, subscriptions, validation).
//! - [`deltachat`]: Delta Chat's device token and the server entries it reads.
//! - [`connection`]: the only socket I/O; served by `crate::server` like LMTP.

pub mod attributes;
pub mod connection;
pub mod deltachat;
pub mod keys;
pub mod protocol;
pub mod reply;
pub mod session;
pub mod transactions;
pub mod webpush;

pub use attributes::Attributes;
pub use connection::DictContext;
pub use session::Limits;
