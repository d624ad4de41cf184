//! Delta Chat device tokens: the opaque tokens Delta Chat clients set with
//! `SETMETADATA "INBOX" (/private/devicetoken "<token>")`, a set per user, one row per
//! (user, token id), with when it was first and last set. Setting a token again
//! refreshes it; a user has at most a given number (the least recently set goes
//! first); tokens not set again for a while expire. Writes come through a dict commit
//! (`super::commit`); here are the reads and the deletions, which also drop the
//! token's pending notifications.
//!
//! Times here are unix seconds. Token ids are computed by the caller
//! (`crate::push::deltachat::token::TokenId`).

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceToken {
    /// Its id (a digest of the token).
    pub id: String,
    /// The token as the client set it.
    pub token: String,
    /// When it was first set.
    pub created: i64,
    /// When it was last set.
    pub updated: i64,
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;

/// Most tokens one [`crate::store::Engine::expire_tokens`] deletes.
pub const EXPIRE_BATCH: i64 = 1000;
