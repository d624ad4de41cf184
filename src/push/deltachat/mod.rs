//! Delta Chat notifications, the way a chatmail relay sends them: Delta Chat clients
//! set an opaque device token with `SETMETADATA "INBOX" (/private/devicetoken ...)`
//! (`crate::dict::deltachat` keeps the set per user), and after each message stored
//! for a user coid POSTs each of the user's tokens, byte for byte, to Delta Chat's
//! notification proxy, which decrypts it (coid cannot: since core 1.151.4 the token is
//! OpenPGP-encrypted to the proxy) and wakes the device through its platform's push
//! service. The queue, worker and retry rules are the ones every push shares
//! (`super::queue`, `super::worker`, `super::retry`).
//!
//! - [`token`]: what a token may be, its id (the only form logs and metrics show).
//! - [`notifier`]: one POST and what the proxy's answer means.

pub mod notifier;
pub mod token;

use std::time::Duration;

use crate::config::{DeltaChatConfig, NotifyFor};

/// What the delivery path needs to queue Delta Chat notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaChatRules {
    /// Which messages notify.
    pub notify: NotifyFor,
    /// A token not set again for this long is not used (and is swept).
    pub token_lifetime: Duration,
    /// How long a notification is retried.
    pub deadline: Duration,
}

impl DeltaChatRules {
    /// From `[deltachat]`; `None` when notifications are off.
    pub fn from_config(config: &DeltaChatConfig) -> Option<DeltaChatRules> {
        config.push.then(|| DeltaChatRules {
            notify: config.notify,
            token_lifetime: Duration::from_secs(config.token_expire_days.saturating_mul(86_400)),
            deadline: Duration::from_secs(config.deadline_secs),
        })
    }

    /// The oldest `updated` (unix seconds) a token may have at `now` (unix ms).
    pub fn tokens_since(&self, now: i64) -> i64 {
        let lifetime = i64::try_from(self.token_lifetime.as_secs()).unwrap_or(i64::MAX);
        (now / 1000).saturating_sub(lifetime)
    }
}
