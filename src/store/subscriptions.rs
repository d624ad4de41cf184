//! Users' WebPush subscriptions ("IMAP WebPush Extension v1.0"), one row per
//! (user, id), with the validation token coid sent and when the client echoed it.
//! Writes come through a dict commit (`super::commit`); here are the reads, and the
//! deletions that also drop the subscription's pending pushes.
//!
//! Times here are unix seconds.

/// One stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The client's id for it.
    pub id: String,
    /// Client name.
    pub client: String,
    /// Device name.
    pub device: String,
    /// msgtype as the client gave it (either vocabulary).
    pub msgtype: String,
    /// Push resource URL, as given.
    pub endpoint: String,
    /// The user agent's ECDH key, as given.
    pub p256dh: String,
    /// The user agent's auth secret, as given.
    pub auth: String,
    /// When it was stored.
    pub created: i64,
    /// When the client validated it; `None` while pending.
    pub validated_at: Option<i64>,
}

/// Most subscriptions one [`crate::store::Engine::expire_subscriptions`] deletes.
pub const EXPIRE_BATCH: i64 = 1000;
