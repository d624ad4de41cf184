//! Web Push for COI users ("IMAP WebPush Extension v1.0"): what a subscription is, what
//! a push says, how it is encrypted and signed.
//!
//! - [`subscription`]: the JSON a client stores with SETMETADATA, validated (both msgtype
//!   vocabularies, the spec's and Dovecot's), and the form it is listed in.
//! - [`payload`]: the notification JSON (WebPush spec "Payload Data Format"), within
//!   the 3993-byte plaintext budget of one RFC 8291 record.
//! - [`vapid`]: the server's P-256 key and RFC 8292 `Authorization: vapid` headers.
//! - [`vapid_tokens`]: signed tokens reused per push service origin until half their
//!   lifetime is gone.
//! - [`ece`]: RFC 8291 encryption of one push (aes128gcm, RFC 8188), with `ring`.
//! - [`sender`]: encrypt, sign and POST one push;
//!   [`sealers`]: threads that encrypt beside the push runtime's thread in a backlog.
//!
//! [`ece`], [`payload`], [`subscription`] and [`vapid`] are pure.

pub mod ece;
pub mod payload;
pub mod sealers;
pub mod sender;
pub mod subscription;
pub mod vapid;
pub mod vapid_tokens;

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
