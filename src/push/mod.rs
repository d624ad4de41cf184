//! Web Push for COI users ("IMAP WebPush Extension v1.0"): what a subscription is, what
//! a push says, how it is encrypted and signed, and what a push service's answer means.
//!
//! - [`subscription`]: the JSON a client stores with SETMETADATA, validated (both msgtype
//!   vocabularies, the spec's and Dovecot's), and the form it is listed in.
//! - [`payload`]: the notification JSON (WebPush spec "Payload Data Format"), within
//!   the 3993-byte plaintext budget of one RFC 8291 record.
//! - [`vapid`]: the server's P-256 key and RFC 8292 `Authorization: vapid` headers.
//! - [`endpoint`]: which push endpoints coid may contact (https, public addresses).
//! - [`outcome`]: a push service's HTTP answer (RFC 8030 §5, §8.4) as a decision.
//! - [`sender`]: encrypt, sign and POST one push (the only network I/O here).
//! - [`queue`]: the durable queue in the state store, shared by everything that makes
//!   pushes, and the server's VAPID key.
//! - [`delivered`]: the pushes for a delivered message, queued off the reply path.
//! - [`retry`]: what an attempt's outcome means for the queued push.
//! - [`record`]: carrying that out on the queue, and logging it.
//! - [`worker`]: the task of `coid serve` that sends queued pushes.
//!
//! [`endpoint`], [`outcome`], [`payload`], [`retry`], [`subscription`] and [`vapid`]
//! are pure.

pub mod delivered;
pub mod endpoint;
pub mod outcome;
pub mod payload;
pub mod queue;
pub mod record;
pub mod retry;
pub mod sender;
pub mod subscription;
pub mod vapid;
pub mod worker;

/// The largest plaintext that fits one aes128gcm record in a 4096-byte push message
/// (RFC 8291 §4: 86-byte header, 1 delimiter byte, 16-byte tag).
pub const MAX_PLAINTEXT: usize = 4096 - 86 - 1 - 16;

/// Decodes base64url with or without padding; standard base64 (`+`, `/`) is accepted
/// too, because the WebPush spec's own example uses it.
pub fn decode_base64_lenient(text: &str) -> Option<Vec<u8>> {
    use base64ct::Encoding;
    let url_safe: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    base64ct::Base64UrlUnpadded::decode_vec(&url_safe).ok()
}

/// A state store in a fresh temporary directory (kept while the `TempDir` lives).
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, crate::store::Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(&dir.path().join("s.sqlite")).expect("open");
    (dir, store)
}
