//! Push after delivery, of every kind coid sends: Web Push to COI clients ("IMAP
//! WebPush Extension v1.0", RFC 8030/8291/8292) and Delta Chat notifications (a POST
//! of the device token to Delta Chat's notification proxy, as a chatmail relay does).
//! What every kind shares is here; each kind has a folder of its own.
//!
//! - [`queue`]: the durable queue in the state store, shared by everything that makes
//!   pushes, and the server's VAPID key.
//! - [`delivered`]: the pushes of every kind for a delivered message, queued off the
//!   reply path.
//! - [`worker`]: the task of `coid serve` that sends queued pushes, each with its
//!   kind's sender (`rounds`: its bookkeeping between trips to the store);
//!   [`thread`]: the OS thread (own runtime, optional lower priority) it runs on.
//! - [`outcome`]: an answer as a decision (each kind reads statuses its own way).
//! - [`retry`]: what an attempt's outcome means for the queued push.
//! - [`record`]: carrying that out on the queue, and logging it.
//! - [`client`]: the HTTP client every kind sends with (no redirects, no proxies).
//! - [`endpoint`]: which URLs coid may contact (https, public addresses);
//!   [`names`]: push service names that passed that check lately.
//! - [`webpush`]: subscriptions, payload, VAPID and the RFC 8291 sender.
//! - [`deltachat`]: device tokens and the notification-proxy sender.
//!
//! [`endpoint`], [`outcome`] and [`retry`] are pure.

pub mod client;
pub mod delivered;
pub mod deltachat;
pub mod endpoint;
pub mod names;
pub mod outcome;
pub mod queue;
pub mod record;
pub mod retry;
mod rounds;
pub mod thread;
pub mod webpush;
pub mod worker;

/// A state store in a fresh temporary directory (kept while the `TempDir` lives).
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, crate::store::Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(&dir.path().join("s.sqlite")).expect("open");
    (dir, store)
}
