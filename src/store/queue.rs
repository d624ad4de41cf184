//! The durable push queue: one row per push still to send, so a restart loses none,
//! for every kind of push ([`PushKind`]): a Web Push to a subscription, or a Delta
//! Chat notification for a device token. Bounded by the caller's `max_queue`. A
//! worker claims due rows by moving their `not_before` past a lease (so a row whose
//! sender died is tried again once the lease ends), then reports the result: done
//! (row deleted), retry later, or payload replaced. Rows go with their target
//! (`super::subscriptions`, `super::tokens`): a row whose target is gone is dropped
//! when claimed.
//!
//! A payload that several rows of one [`crate::store::Engine::enqueue`] carry (a message's pushes to
//! a user's devices) is stored once (`push_payloads`, schema 8) and read back with the
//! row; triggers delete it with the last row.
//!
//! Times here are unix milliseconds.

/// What a queued row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// Web Push to a subscription (`push_subscriptions`).
    WebPush,
    /// A Delta Chat notification for a device token (`deltachat_tokens`).
    DeltaChat,
}

impl PushKind {
    /// The `kind` column's value.
    pub(crate) fn code(self) -> i64 {
        match self {
            PushKind::WebPush => 0,
            PushKind::DeltaChat => 1,
        }
    }

    /// The kind of a `kind` column's value; `None`: a newer coid's row.
    pub(crate) fn from_code(code: i64) -> Option<PushKind> {
        match code {
            0 => Some(PushKind::WebPush),
            1 => Some(PushKind::DeltaChat),
            _ => None,
        }
    }
}

/// Which kinds a worker claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// Web Push rows.
    pub webpush: bool,
    /// Delta Chat rows.
    pub deltachat: bool,
}

impl Kinds {
    /// Every kind.
    pub const ALL: Kinds = Kinds {
        webpush: true,
        deltachat: true,
    };
}

/// Where a claimed row goes, read from its target's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Web Push subscription's resource and keys.
    WebPush {
        /// Push resource URL.
        endpoint: String,
        /// The user agent's `p256dh`.
        p256dh: String,
        /// The user agent's `auth`.
        auth: String,
    },
    /// A Delta Chat device token, opaque, sent as it is.
    DeltaChat {
        /// The token as the client set it.
        token: String,
    },
}

/// A push to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPush {
    /// What it is.
    pub kind: PushKind,
    /// Whose target.
    pub username: String,
    /// The target: a subscription id, or a token id.
    pub target: String,
    /// The plaintext JSON.
    pub payload: String,
    /// The payload carries the message body (`content`): after a 413 it is sent once
    /// more without.
    pub with_content: bool,
    /// A subscription's validation push (WebPush spec "Subscription Validation").
    pub validation: bool,
    /// Not before this time.
    pub not_before: i64,
    /// Dropped when not sent by this time.
    pub deadline: i64,
    /// Identifies this push of this message ([`dedupe_key`]): for [`DEDUPE_KEEP_MS`]
    /// after the message's pushes of this kind to this user were first queued (and at
    /// least until its `deadline`), queueing any of them again does nothing, whether
    /// they are still queued or long sent (Postfix delivers at least once, and
    /// retries a message whose reply it did not get, minutes later; the store keeps
    /// one key per such group, `super::dedupe`). `None`: never deduplicated
    /// (validation pushes).
    pub dedupe: Option<String>,
}

/// How long a dedupe key is kept after its pushes were first queued: a day, longer
/// than Postfix's retries of a delivery whose reply was lost take in practice (its
/// backoff starts at 5 minutes and is at most 4000 s by default), and far shorter than
/// its queue lifetime. The push worker's sweep drops expired ones.
pub const DEDUPE_KEEP_MS: i64 = 24 * 3600 * 1000;

/// The dedupe key of one push of a delivered message: a digest of the message's
/// identity (its Message-ID, or a digest of its header section) and the user, then a
/// digest of the kind and the target; 43 characters however long the inputs are.
///
/// The message's part comes first: it (with the kind) is the key the store's dedupe
/// table keeps for all of the message's pushes to the user's devices
/// (`super::dedupe`); the whole key stays on each queued row. 22 + 21 base64url
/// characters: 132 and 126 bits, far from any collision.
pub fn dedupe_key(message: &str, kind: PushKind, username: &str, target: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest;
    let encode = |digest: &[u8], chars: usize| -> String {
        let mut text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        text.truncate(chars);
        text
    };
    let mut of_message = sha2::Sha256::new();
    for part in [message, username] {
        // Each part with its length first: no two different tuples hash the same input.
        of_message.update((part.len() as u64).to_be_bytes());
        of_message.update(part.as_bytes());
    }
    let mut of_target = sha2::Sha256::new();
    of_target.update(kind.code().to_be_bytes());
    of_target.update((target.len() as u64).to_be_bytes());
    of_target.update(target.as_bytes());
    let mut key = encode(&of_message.finalize(), 22);
    key.push_str(&encode(&of_target.finalize(), 21));
    key
}

/// A claimed push, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPush {
    /// Row id.
    pub seq: i64,
    /// Whose.
    pub username: String,
    /// Subscription id or token id.
    pub target: String,
    /// The plaintext JSON.
    pub payload: String,
    /// See [`NewPush::with_content`].
    pub with_content: bool,
    /// See [`NewPush::validation`].
    pub validation: bool,
    /// Attempts that failed temporarily so far.
    pub attempts: u32,
    /// Dropped when not sent by this time.
    pub deadline: i64,
    /// Where it goes.
    pub to: Destination,
}

impl QueuedPush {
    /// What it is.
    pub fn kind(&self) -> PushKind {
        match self.to {
            Destination::WebPush { .. } => PushKind::WebPush,
            Destination::DeltaChat { .. } => PushKind::DeltaChat,
        }
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
