//! Signed VAPID tokens, reused per audience (RFC 8292 §2: a JWT may serve every
//! request to the same push service origin until its `exp`). Signing is one ECDSA
//! P-256 signature, about a third of the CPU a push costs; with the cache it is paid
//! once per push service and token lifetime instead of once per push.
//!
//! A token is renewed once half its lifetime has gone, so every token sent has at
//! least half its lifetime left (at least 30 s: lifetimes are at least a minute,
//! see `super::sender`), and none is ever sent at or past its `exp`. The clock is
//! the caller's (`now_unix`), so tests control it. A clock that jumps back makes
//! a token look younger than it is, never older than its `exp`: renewal is decided on
//! the time left, `exp − now`, and a token whose time left exceeds the lifetime asked
//! for (the clock went back, or the lifetime shrank) is signed anew.
//!
//! Bounded: at most [`MAX_AUDIENCES`] origins; past that, all entries go (one
//! signature each refills them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use url::Url;

use super::vapid::{MAX_VALIDITY, VapidKey};

/// Most push service origins kept.
pub const MAX_AUDIENCES: usize = 1024;

/// One signed token.
#[derive(Clone)]
struct Signed {
    /// The whole `Authorization` value.
    header: Arc<str>,
    /// Its `exp`, unix seconds.
    exp: u64,
}

/// The server's key and contact, and the tokens signed with them; cheap to clone
/// (clones share the tokens).
#[derive(Clone)]
pub struct VapidTokens {
    key: VapidKey,
    subject: Arc<str>,
    tokens: Arc<Mutex<HashMap<String, Signed>>>,
}

impl std::fmt::Debug for VapidTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidTokens")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl VapidTokens {
    /// Tokens signed by `key` for `subject` (`mailto:` or `https:`, RFC 8292 §2.1).
    pub fn new(key: VapidKey, subject: &str) -> VapidTokens {
        VapidTokens {
            key,
            subject: Arc::from(subject),
            tokens: Arc::default(),
        }
    }

    /// `vapid t=<JWT>, k=<key>` for a push to `endpoint` at `now_unix`, valid for
    /// `validity` (capped at RFC 8292's 24 hours): the cached one for the endpoint's
    /// origin while more than half of `validity` is left, else a freshly signed one.
    pub fn authorization(&self, endpoint: &Url, now_unix: u64, validity: Duration) -> Arc<str> {
        let validity = validity.min(MAX_VALIDITY).as_secs();
        let audience = endpoint.origin().ascii_serialization();
        if let Some(signed) = lock(&self.tokens).get(&audience) {
            let left = signed.exp.saturating_sub(now_unix);
            if left > validity / 2 && left <= validity {
                return Arc::clone(&signed.header);
            }
        }
        // Signed outside the lock: two pushes to the same new origin may both sign,
        // which costs a signature and is otherwise harmless.
        let header: Arc<str> = Arc::from(self.key.authorization(
            endpoint,
            &self.subject,
            now_unix,
            Duration::from_secs(validity),
        ));
        let signed = Signed {
            header: Arc::clone(&header),
            exp: now_unix.saturating_add(validity),
        };
        let mut tokens = lock(&self.tokens);
        if tokens.len() >= MAX_AUDIENCES && !tokens.contains_key(&audience) {
            tokens.clear();
        }
        tokens.insert(audience, signed);
        header
    }
}

/// Locks a mutex whose holder cannot leave it inconsistent (one get or insert).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use base64ct::{Base64UrlUnpadded, Encoding};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn exp_of(header: &str) -> u64 {
        let jwt = header.strip_prefix("vapid t=").expect("scheme");
        let claims = jwt.split('.').nth(1).expect("claims");
        let claims: serde_json::Value =
            serde_json::from_slice(&Base64UrlUnpadded::decode_vec(claims).expect("b64"))
                .expect("json");
        claims["exp"].as_u64().expect("exp")
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    #[test]
    fn one_signature_per_origin_until_half_the_lifetime_is_gone() {
        let tokens = VapidTokens::new(VapidKey::generate(), "mailto:a@b.example");
        let a1 = url("https://push.example/sub/1");
        let a2 = url("https://push.example/sub/2");
        let first = tokens.authorization(&a1, 1000, HOUR);
        assert_eq!(exp_of(&first), 1000 + 3600);
        assert!(Arc::ptr_eq(&first, &tokens.authorization(&a2, 1000, HOUR)));
        // Just before half the lifetime is gone: still the same token.
        let late = tokens.authorization(&a2, 1000 + 1799, HOUR);
        assert!(Arc::ptr_eq(&first, &late), "reused while > half is left");
        // Half gone: renewed, well before exp.
        let renewed = tokens.authorization(&a1, 1000 + 1800, HOUR);
        assert!(!Arc::ptr_eq(&first, &renewed));
        assert_eq!(exp_of(&renewed), 1000 + 1800 + 3600);
        // Another origin (a port is part of it) has its own token.
        let other = tokens.authorization(&url("https://push.example:8443/x"), 2800, HOUR);
        assert!(!Arc::ptr_eq(&renewed, &other));
    }

    #[test]
    fn never_expired_whatever_the_clock_does() {
        let tokens = VapidTokens::new(VapidKey::generate(), "mailto:a@b.example");
        let endpoint = url("https://push.example/sub/1");
        let minute = Duration::from_secs(60);
        let mut now = 5_000u64;
        for step in [0, 1, 29, 30, 31, 59, 60, 61, 3600, 0, 86_400] {
            now += step;
            let header = tokens.authorization(&endpoint, now, minute);
            assert!(exp_of(&header) >= now + 30, "at {now}: {}", exp_of(&header));
        }
        // The clock goes back an hour: no token from "the future" (exp more than the
        // lifetime away) is sent.
        now -= 3600;
        let header = tokens.authorization(&endpoint, now, minute);
        assert_eq!(exp_of(&header), now + 60);
        // A shorter lifetime asked for than the cached token has: signed anew.
        let header = tokens.authorization(&endpoint, now, Duration::from_secs(40));
        assert_eq!(exp_of(&header), now + 40);
    }

    #[test]
    fn bounded() {
        let tokens = VapidTokens::new(VapidKey::generate(), "mailto:a@b.example");
        for i in 0..MAX_AUDIENCES + 5 {
            tokens.authorization(&url(&format!("https://p{i}.example/")), 0, HOUR);
        }
        assert!(lock(&tokens.tokens).len() <= MAX_AUDIENCES);
    }
}
