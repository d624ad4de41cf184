//! One dict commit as one store transaction: plain METADATA writes, the WebPush
//! operations and Delta Chat device tokens together, all or nothing. WebPush operations are checked against what
//! is stored (the per-user limit, the validation token and its time window, the queue
//! bound), so they can still be refused here; a refusal rolls the whole commit back,
//! as a refused COI value does (`crate::dict::attributes`).

use super::StoreError;
use super::dict::Write;
use super::queue::NewPush;
use super::subscriptions::Subscription;

/// One change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A plain METADATA or attribute write.
    Put(Write),
    /// Store (or replace) a subscription, pending validation, and queue its
    /// validation push.
    Subscribe(Box<Subscribe>),
    /// Delete a subscription and its pending pushes (IMAP `NIL`).
    Unsubscribe {
        /// The subscription id.
        id: String,
    },
    /// The client echoes the validation token.
    Validate {
        /// The subscription id.
        id: String,
        /// What the client sent.
        token: String,
        /// A pending subscription must have been created at or after this (unix
        /// seconds): the validation window.
        created_since: i64,
    },
    /// Add a Delta Chat device token to the user's set, or refresh it.
    AddToken {
        /// The token's id.
        id: String,
        /// The token (already checked by the dict).
        token: String,
        /// Most tokens of the user; the least recently set beyond it go.
        max: usize,
    },
    /// Remove every Delta Chat device token of the user (IMAP `NIL`).
    RemoveTokens,
}

/// A new subscription (already checked by the dict: JSON, id, endpoint rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// What to store (`validated_at` is ignored: a new subscription is pending).
    pub subscription: Subscription,
    /// The validation token sent in the validation push.
    pub token: String,
    /// Most subscriptions of the user, this one included.
    pub limit: usize,
    /// The validation push.
    pub validation_push: NewPush,
    /// The queue's bound.
    pub max_queue: usize,
}

/// Why a commit was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A WebPush rule refused it; the text goes to Dovecot's log.
    #[error("{0}")]
    Refused(String),
    /// SQLite failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
