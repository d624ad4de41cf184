//! Host names of push services whose last lookup found a public address, remembered
//! for [`CHECKED_FOR`], so a push to a known service does not resolve its name again.
//!
//! Why: before a push goes out, [`super::client::check_resolved`] refuses a name that
//! resolves only to non-public addresses (a refusal, not a retry). Done for every push
//! that is a `getaddrinfo` on a blocking thread, and on a host without a caching
//! resolver (Debian's default) a DNS query, per push: at line rate thousands of
//! queries a second to the same few names (FCM, Mozilla's autopush, Delta Chat's
//! notification proxy). The connections themselves still resolve through the checking
//! resolver whenever one is opened, so what this cache decides is only whether a push
//! is refused up front; a name that moved to a private address is stopped at connect
//! time and refused up front once its entry expired.
//!
//! Only passes are remembered: a name found non-public is looked up again each time
//! (the push is refused; that is rare and must not outlive a DNS fix). Bounded: at most
//! [`MAX_NAMES`] entries; when full, expired ones go, and if none has expired the new
//! name is not remembered (it is checked per push, as before). Pure but for the lock:
//! the caller passes the time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a name that resolved to a public address is trusted without a lookup.
pub const CHECKED_FOR: Duration = Duration::from_secs(60);
/// Most names remembered at once.
pub const MAX_NAMES: usize = 4096;

/// Names that passed the check, each with when it passed; cheap to share behind an
/// `Arc`.
#[derive(Debug, Default)]
pub struct CheckedNames {
    passed: Mutex<HashMap<String, Instant>>,
}

impl CheckedNames {
    /// An empty cache.
    pub fn new() -> CheckedNames {
        CheckedNames::default()
    }

    /// Whether `host` passed a lookup less than [`CHECKED_FOR`] before `now`.
    pub fn passed(&self, host: &str, now: Instant) -> bool {
        let passed = self.lock();
        passed
            .get(host)
            .is_some_and(|at| now.saturating_duration_since(*at) < CHECKED_FOR)
    }

    /// Remembers that `host` resolved to a public address at `now`.
    pub fn remember(&self, host: &str, now: Instant) {
        let mut passed = self.lock();
        if passed.len() >= MAX_NAMES && !passed.contains_key(host) {
            passed.retain(|_, at| now.saturating_duration_since(*at) < CHECKED_FOR);
            if passed.len() >= MAX_NAMES {
                return;
            }
        }
        passed.insert(host.to_owned(), now);
    }

    /// How many names are remembered (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no name is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding it can only have left a valid map behind.
        self.passed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_trusted_until_it_expires() {
        let names = CheckedNames::new();
        let t0 = Instant::now();
        assert!(!names.passed("fcm.googleapis.com", t0));
        names.remember("fcm.googleapis.com", t0);
        assert!(names.passed("fcm.googleapis.com", t0));
        let almost = t0 + CHECKED_FOR - Duration::from_millis(1);
        assert!(names.passed("fcm.googleapis.com", almost));
        assert!(!names.passed("fcm.googleapis.com", t0 + CHECKED_FOR));
        assert!(!names.passed("push.example.org", t0), "another name");
    }

    #[test]
    fn a_new_pass_renews_the_entry() {
        let names = CheckedNames::new();
        let t0 = Instant::now();
        names.remember("a.example", t0);
        let later = t0 + CHECKED_FOR;
        assert!(!names.passed("a.example", later));
        names.remember("a.example", later);
        assert!(names.passed("a.example", later + CHECKED_FOR / 2));
    }

    #[test]
    fn the_cache_is_bounded_and_makes_room_from_expired_entries() {
        let names = CheckedNames::new();
        let t0 = Instant::now();
        for i in 0..MAX_NAMES {
            names.remember(&format!("h{i}.example"), t0);
        }
        names.remember("one-too-many.example", t0);
        assert_eq!(names.len(), MAX_NAMES);
        assert!(!names.passed("one-too-many.example", t0), "full: not kept");
        assert!(names.passed("h0.example", t0), "the old ones stay");

        names.remember("h0.example", t0 + CHECKED_FOR / 2);
        let later = t0 + CHECKED_FOR;
        names.remember("fresh.example", later);
        assert!(names.passed("fresh.example", later));
        assert_eq!(
            names.len(),
            2,
            "expired entries went, the renewed one stayed"
        );
        assert!(names.passed("h0.example", later));
    }
}
