//! A Delta Chat device token as coid sees it: opaque text the client sets with
//! `SETMETADATA "INBOX" (/private/devicetoken "<token>")`. Since core 1.151.4 it is
//! `openpgp:<base64>` (the device token encrypted for the notification proxy, padded to
//! a fixed length, the same ciphertext while the device token stays the same); older
//! clients send plain `fcm-<app>:<token>`, APNS hex or `sandbox:<hex>`. coid accepts any
//! printable ASCII up to [`MAX_TOKEN`] bytes, stores it, and sends it back unchanged.
//!
//! A token is a credential for waking a device, so logs, metrics and the CLI name it
//! by its [`TokenId`] (a digest) or a [`shortened`] form, never whole.

use sha2::Digest;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN: usize = 4096;

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nothing.
    #[error("empty device token")]
    Empty,
    /// Over [`MAX_TOKEN`].
    #[error("device token longer than {MAX_TOKEN} bytes")]
    TooLong,
    /// A control character, or a byte outside printable ASCII.
    #[error("device token with a byte outside printable ASCII")]
    NotPrintable,
}

/// Checks a token as the client sent it.
///
/// # Errors
/// [`TokenError`].
pub fn check(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN {
        return Err(TokenError::TooLong);
    }
    if !token.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(TokenError::NotPrintable);
    }
    Ok(())
}

/// A token's stable name: the first 16 hex digits of its SHA-256. The same token has
/// the same id, so setting it again finds its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenId(String);

impl TokenId {
    /// The id of `token`.
    pub fn of(token: &str) -> TokenId {
        let digest = sha2::Sha256::digest(token.as_bytes());
        TokenId(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Into its text.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The first 16 characters and an ellipsis, for people to tell tokens apart (the
/// `openpgp:` prefix and some ciphertext; nothing that wakes a device).
pub fn shortened(token: &str) -> String {
    match token.char_indices().nth(16) {
        Some((cut, _)) => format!("{}…", &token[..cut]),
        None => token.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_up_to_the_limit() {
        assert_eq!(check("openpgp:wcFMA+abc/=="), Ok(()));
        assert_eq!(check("fcm-chat.delta:abc123"), Ok(()));
        assert_eq!(check(&"a".repeat(MAX_TOKEN)), Ok(()));
        assert_eq!(check(&"a".repeat(MAX_TOKEN + 1)), Err(TokenError::TooLong));
        assert_eq!(check(""), Err(TokenError::Empty));
        for bad in ["a\tb", "a\nb", "a\u{7f}", "a\0", "tökén"] {
            assert_eq!(check(bad), Err(TokenError::NotPrintable), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_stable_digests_and_short_forms_hide_the_rest() {
        let id = TokenId::of("openpgp:abc");
        assert_eq!(id.as_str().len(), 16);
        assert!(id.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, TokenId::of("openpgp:abc"));
        assert_ne!(id, TokenId::of("openpgp:abd"));
        let long = format!("openpgp:{}", "x".repeat(100));
        assert_eq!(shortened(&long), "openpgp:xxxxxxxx…");
        assert_eq!(shortened("short"), "short");
    }
}
