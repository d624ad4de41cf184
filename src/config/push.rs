//! `[push]`: Web Push for COI clients ("IMAP WebPush Extension v1.0", RFC 8030/8291/8292):
//! the durable queue's bounds and retry rules, the subscription rules, and which push
//! endpoints coid may contact. Checked by [`PushConfig::validate`] with the rest.

use serde::Deserialize;

use super::validate::check_range;

/// `[push]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Serve the WebPush METADATA entries and send pushes. Off: the entries are
    /// refused (SETMETADATA answers NO) and nothing is sent.
    pub enabled: bool,
    /// The VAPID `sub` claim (RFC 8292 §2.1): a `mailto:` or `https:` contact URL for
    /// push services.
    pub vapid_subject: String,
    /// RFC 8030 `TTL`: seconds a push service keeps an undelivered push (the VAPID
    /// token lives as long, within 1 minute and 12 hours).
    pub ttl_secs: u64,
    /// RFC 8030 `Urgency` of message pushes.
    pub urgency: Urgency,
    /// Send an RFC 8030 `Topic` per folder, so a newer push about a folder replaces
    /// one a device has not fetched yet.
    pub coalesce: bool,
    /// Seconds one push request may take (connect and answer).
    pub timeout_secs: u64,
    /// Pushes in flight at once (default 64). Against a push service that answers
    /// in `t`, at most `concurrency / t` pushes go out a second: 64 against one 50 ms
    /// away sent about 1200 (`benches/push`, "a push service far away").
    pub concurrency: usize,
    /// The nice value of the push worker's threads (0 to 19; 0, the default: the
    /// process's priority). Above 0 the scheduler gives the CPU to mail first and
    /// sends pushes with what is left, so they can lag under load
    /// (`crate::push::thread`).
    pub worker_nice: u8,
    /// Threads that encrypt Web Push in a backlog (1 to 16; default 2): the push
    /// worker's own thread and `worker_threads` - 1 beside it
    /// (`crate::push::webpush::sealers`), so a 2-CPU host encrypts on both CPUs.
    /// Pushes that trickle in are encrypted on the worker's thread; with 1 every
    /// encryption is (`crate::push::thread`).
    pub worker_threads: usize,
    /// Most pushes waiting in the queue; more are dropped with a warning.
    pub max_queue: usize,
    /// Seconds a push is retried before it is dropped.
    pub deadline_secs: u64,
    /// Longest wait between two retries after a temporary failure (the waits double
    /// from 2 s up to this).
    pub backoff_max_secs: u64,
    /// Seconds to leave an endpoint alone after a 429 without `Retry-After`.
    pub rate_limit_secs: u64,
    /// Subscriptions per user; at the limit a new one is refused (NO).
    pub subscription_limit: usize,
    /// Seconds a new subscription has to be validated before it is deleted.
    pub subscription_expire_secs: u64,
    /// Allow http and non-public push endpoints (loopback, private networks): for
    /// tests and private push servers only.
    pub allow_private_endpoints: bool,
}

/// RFC 8030 §5.3 urgency; the config words are its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    /// `very-low`.
    VeryLow,
    /// `low`.
    Low,
    /// `normal`.
    Normal,
    /// `high`.
    High,
}

impl Urgency {
    /// The RFC 8030 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            vapid_subject: "mailto:postmaster@localhost".into(),
            ttl_secs: 3600,
            urgency: Urgency::Normal,
            coalesce: false,
            timeout_secs: 10,
            concurrency: 64,
            worker_nice: 0,
            worker_threads: 2,
            max_queue: 10_000,
            deadline_secs: 3600,
            backoff_max_secs: 300,
            rate_limit_secs: 30,
            subscription_limit: 10,
            subscription_expire_secs: 300,
            allow_private_endpoints: false,
        }
    }
}

impl PushConfig {
    /// Adds every problem of this section to `p`.
    pub fn validate(&self, p: &mut Vec<String>) {
        let subject = &self.vapid_subject;
        let scheme_ok = ["mailto:", "https:"]
            .iter()
            .any(|s| subject.len() > s.len() && subject.starts_with(s));
        if !scheme_ok || subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.push(format!(
                "push.vapid_subject: {subject:?} is not a mailto: or https: URL (RFC 8292 §2.1)"
            ));
        }
        check_range(p, "push.ttl_secs", self.ttl_secs, 0, 24 * 3600);
        check_range(p, "push.timeout_secs", self.timeout_secs, 1, 120);
        check_range(p, "push.concurrency", self.concurrency as u64, 1, 1000);
        check_range(p, "push.worker_nice", u64::from(self.worker_nice), 0, 19);
        check_range(p, "push.worker_threads", self.worker_threads as u64, 1, 16);
        check_range(p, "push.max_queue", self.max_queue as u64, 1, 10_000_000);
        check_range(
            p,
            "push.deadline_secs",
            self.deadline_secs,
            1,
            7 * 24 * 3600,
        );
        check_range(
            p,
            "push.backoff_max_secs",
            self.backoff_max_secs,
            1,
            24 * 3600,
        );
        check_range(p, "push.rate_limit_secs", self.rate_limit_secs, 1, 3600);
        check_range(
            p,
            "push.subscription_limit",
            self.subscription_limit as u64,
            1,
            1000,
        );
        check_range(
            p,
            "push.subscription_expire_secs",
            self.subscription_expire_secs,
            10,
            7 * 24 * 3600,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_urgency_and_ranges_are_checked() {
        let mut p = Vec::new();
        PushConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        // A wrong urgency is a word serde refuses: read as a whole config file.
        let bad = "[push]\nvapid_subject = \"postmaster@example.org\"\nurgency = \"urgent\"\n\
                   concurrency = 0\n";
        let (_, p) =
            crate::config::Config::check(bad, std::path::Path::new("t.toml")).expect("parses");
        assert_eq!(p.len(), 3, "{p:?}");
        for ok in ["https://example.org/contact", "mailto:a@b.example"] {
            let mut p = Vec::new();
            let config = PushConfig {
                vapid_subject: ok.into(),
                ..PushConfig::default()
            };
            config.validate(&mut p);
            assert!(p.is_empty(), "{ok}: {p:?}");
        }
        let mut p = Vec::new();
        let empty = PushConfig {
            vapid_subject: "mailto:".into(),
            ..PushConfig::default()
        };
        empty.validate(&mut p);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn worker_threads_is_read_and_bounded() {
        let (config, p) = crate::config::Config::check(
            "[push]\nworker_threads = 3\n",
            std::path::Path::new("t.toml"),
        )
        .expect("parses");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(config.push.worker_threads, 3);
        for (threads, problems) in [(0, 1), (1, 0), (16, 0), (17, 1)] {
            let mut p = Vec::new();
            let config = PushConfig {
                worker_threads: threads,
                ..PushConfig::default()
            };
            config.validate(&mut p);
            assert_eq!(p.len(), problems, "{threads}: {p:?}");
        }
    }
}
