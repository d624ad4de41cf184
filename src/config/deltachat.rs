//! `[deltachat]`: waking Delta Chat devices the way a chatmail relay does (device tokens
//! set over IMAP METADATA, one POST per token to Delta Chat's notification proxy after
//! each delivery), and the server METADATA entries below `/shared/vendor/deltachat/`
//! that Delta Chat core reads. Checked by [`DeltaChatConfig::validate`].
//! (`/shared/admin` and `/shared/comment`, which core reads too, Dovecot answers
//! itself from `mail_server_admin` and `mail_server_comment`, without asking coid.)

use serde::Deserialize;
use url::Url;

use super::validate::check_range;
use crate::push::endpoint::EndpointPolicy;

/// Which delivered messages wake a user's Delta Chat devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFor {
    /// Every delivered message but read receipts and the user's own (what a chatmail
    /// relay does): Delta Chat may show email too.
    All,
    /// Only messages classified as chat (1:1 or group).
    Chat,
}

/// `[deltachat]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeltaChatConfig {
    /// Send notifications. Tokens are stored either way.
    pub push: bool,
    /// Where notifications go: Delta Chat's notification proxy.
    pub notify_url: String,
    /// Which messages notify.
    pub notify: NotifyFor,
    /// Tokens per user; setting one more drops the least recently set.
    pub max_tokens: usize,
    /// Days a token lives without being set again.
    pub token_expire_days: u64,
    /// Seconds a notification is retried before it is dropped.
    pub deadline_secs: u64,
    /// Seconds one POST may take (connect and answer).
    pub timeout_secs: u64,
    /// First wait after a temporary failure; each next wait is 8 times longer.
    pub backoff_first_secs: u64,
    /// Longest wait between two tries.
    pub backoff_max_secs: u64,
    /// Seconds all notifications wait after a 429 without `Retry-After`.
    pub rate_limit_secs: u64,
    /// `/shared/vendor/deltachat/maxsmtprecipients`: recipients per message Delta Chat
    /// sends at most (its chunk size); match Postfix's `smtpd_recipient_limit`.
    pub maxsmtprecipients: u32,
    /// `/shared/vendor/deltachat/irohrelay`: an iroh relay URL; empty: NIL.
    pub irohrelay: String,
    /// `/shared/vendor/deltachat/turn`: a TURN server (`host:port:credentials`); empty: NIL.
    pub turn: String,
}

impl Default for DeltaChatConfig {
    fn default() -> Self {
        Self {
            push: true,
            notify_url: "https://notifications.delta.chat/notify".into(),
            notify: NotifyFor::All,
            max_tokens: 16,
            token_expire_days: 90,
            deadline_secs: 5 * 3600,
            timeout_secs: 30,
            backoff_first_secs: 8,
            backoff_max_secs: 4096,
            rate_limit_secs: 30,
            maxsmtprecipients: 1000,
            irohrelay: String::new(),
            turn: String::new(),
        }
    }
}

impl DeltaChatConfig {
    /// Adds every problem of this section to `p`; `endpoints` are `[push]`'s rules,
    /// which `notify_url` must keep too.
    pub fn validate(&self, endpoints: EndpointPolicy, p: &mut Vec<String>) {
        match Url::parse(&self.notify_url) {
            Ok(url) => {
                if let Err(refused) = endpoints.check_url(&url) {
                    p.push(format!(
                        "deltachat.notify_url: {refused} (set push.allow_private_endpoints for a local proxy)"
                    ));
                }
            }
            Err(err) => p.push(format!(
                "deltachat.notify_url: {:?} is not a URL: {err}",
                self.notify_url
            )),
        }
        check_range(p, "deltachat.max_tokens", self.max_tokens as u64, 1, 1000);
        check_range(
            p,
            "deltachat.token_expire_days",
            self.token_expire_days,
            1,
            3650,
        );
        check_range(
            p,
            "deltachat.deadline_secs",
            self.deadline_secs,
            1,
            7 * 24 * 3600,
        );
        check_range(p, "deltachat.timeout_secs", self.timeout_secs, 1, 300);
        check_range(
            p,
            "deltachat.backoff_first_secs",
            self.backoff_first_secs,
            1,
            3600,
        );
        check_range(
            p,
            "deltachat.backoff_max_secs",
            self.backoff_max_secs,
            1,
            24 * 3600,
        );
        check_range(
            p,
            "deltachat.rate_limit_secs",
            self.rate_limit_secs,
            1,
            3600,
        );
        check_range(
            p,
            "deltachat.maxsmtprecipients",
            u64::from(self.maxsmtprecipients),
            1,
            1_000_000,
        );
        check_text(p, "deltachat.irohrelay", &self.irohrelay);
        check_text(p, "deltachat.turn", &self.turn);
    }
}

/// A value IMAP clients read: no control characters, at most 1024 bytes.
fn check_text(p: &mut Vec<String>, key: &str, value: &str) {
    if value.len() > 1024 || value.chars().any(char::is_control) {
        p.push(format!(
            "{key}: must be at most 1024 bytes without control characters"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: EndpointPolicy = EndpointPolicy {
        allow_private: false,
    };

    #[test]
    fn defaults_are_valid_and_mistakes_are_reported() {
        let mut p = Vec::new();
        DeltaChatConfig::default().validate(PUBLIC, &mut p);
        assert!(p.is_empty(), "{p:?}");
        let bad = DeltaChatConfig {
            notify_url: "http://127.0.0.1:9/notify".into(),
            max_tokens: 0,
            turn: "a\nb".into(),
            ..DeltaChatConfig::default()
        };
        bad.validate(PUBLIC, &mut p);
        assert_eq!(p.len(), 3, "{p:?}");
        let mut p = Vec::new();
        bad.validate(
            EndpointPolicy {
                allow_private: true,
            },
            &mut p,
        );
        assert_eq!(p.len(), 2, "a local proxy is fine when allowed: {p:?}");
        let mut p = Vec::new();
        DeltaChatConfig {
            irohrelay: "x".repeat(2000),
            ..DeltaChatConfig::default()
        }
        .validate(PUBLIC, &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn notify_parses_from_toml() {
        let c: DeltaChatConfig = toml::from_str("notify = \"chat\"").expect("parses");
        assert_eq!(c.notify, NotifyFor::Chat);
        assert!(toml::from_str::<DeltaChatConfig>("notify = \"some\"").is_err());
    }
}
