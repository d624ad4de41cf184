//! The push worker's one trip to the store per round: the outcomes of every attempt
//! that finished since the last round, the next claim and when the next row is due,
//! all in one store transaction. One hop and one commit for many pushes, instead of
//! one each for every claim, every outcome and every next-due check.
//!
//! Durability is as before: a row is only deleted or moved once its outcome is
//! committed. If the transaction fails, nothing of it happened: the rows whose
//! outcomes it carried stay leased and are sent again when their lease ends (at least
//! once, never lost), exactly as when coid dies between a send and its record.

use super::queue::{Kinds, PushKind, QueuedPush};

/// One change an attempt's outcome makes to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// The row is done (sent, or given up): deleted.
    Done {
        /// Row id.
        seq: i64,
    },
    /// The row is tried again at `not_before`; `payload` replaces its payload (then
    /// without content).
    Retry {
        /// Row id.
        seq: i64,
        /// Temporary failures so far.
        attempts: u32,
        /// When.
        not_before: i64,
        /// A smaller payload.
        payload: Option<String>,
    },
    /// The subscription is gone at its push service: deleted with its pending pushes,
    /// if it still points at `endpoint` (the client may have replaced it meanwhile).
    DeleteSubscription {
        /// Row id.
        seq: i64,
        /// Whose.
        username: String,
        /// Subscription id.
        id: String,
        /// Where it pointed.
        endpoint: String,
    },
    /// The device token is dead: deleted with its pending notifications.
    DeleteToken {
        /// Row id.
        seq: i64,
        /// Whose.
        username: String,
        /// Token id.
        id: String,
    },
    /// Every Web Push row for `endpoint` waits until `until` (429).
    DelayEndpoint {
        /// The push resource.
        endpoint: String,
        /// Unix ms.
        until: i64,
    },
    /// Every row of `kind` waits until `until` (429 from its one service).
    DelayKind {
        /// Which.
        kind: PushKind,
        /// Unix ms.
        until: i64,
    },
}

/// The claim of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Unix ms.
    pub now: i64,
    /// Claimed rows are leased until then.
    pub lease_until: i64,
    /// Most rows (0: claim nothing, only settle and look at the next due time).
    pub limit: usize,
    /// Which kinds.
    pub kinds: Kinds,
}

/// What a round got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Rows to send now.
    pub pushes: Vec<QueuedPush>,
    /// When the earliest row of the claim's kinds is due, after the claim (leased
    /// rows: when their lease ends).
    pub next_due: Option<i64>,
}

#[cfg(test)]
#[path = "settle_tests.rs"]
mod tests;
