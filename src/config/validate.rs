//! Semantic checks on a parsed [`Config`]: every problem is collected, so an operator
//! fixes them in one round (`coid check-config` exits 78, EX_CONFIG, when any is found).

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::service::check_name;
use super::{Config, DeliveryBackend};

/// All problems found in a config.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<String>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(p)?;
        }
        Ok(())
    }
}

impl Config {
    /// Checks values that parse but cannot work.
    ///
    /// # Errors
    /// Every problem found.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Vec::new();
        self.validate_lmtp(&mut p);
        self.validate_coi(&mut p);
        self.validate_delivery(&mut p);
        self.validate_dict(&mut p);
        self.push.validate(&mut p);
        let endpoints = crate::push::endpoint::EndpointPolicy {
            allow_private: self.push.allow_private_endpoints,
        };
        self.deltachat.validate(endpoints, &mut p);
        self.service.validate(&mut p);
        check_name(
            &mut p,
            "lmtp.unix_socket_owner",
            &self.lmtp.unix_socket_owner,
        );
        check_name(
            &mut p,
            "lmtp.unix_socket_group",
            &self.lmtp.unix_socket_group,
        );
        check_name(&mut p, "dict.socket_owner", &self.dict.socket_owner);
        check_name(&mut p, "dict.socket_group", &self.dict.socket_group);
        self.state.validate(&mut p);
        if self.policy.cpu_limit == 0 {
            p.push("policy.cpu_limit: must be above 0".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Problems(p))
        }
    }

    fn validate_lmtp(&self, p: &mut Vec<String>) {
        let l = &self.lmtp;
        if l.unix_socket.as_os_str().is_empty() && l.tcp.is_empty() {
            p.push("lmtp: set unix_socket or tcp, or coid has nothing to listen on".into());
        }
        check_socket_path(p, "lmtp.unix_socket", &l.unix_socket);
        if l.hostname.is_empty()
            || l.hostname
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            p.push("lmtp.hostname: must be a non-empty name without spaces".into());
        }
        check_range(
            p,
            "lmtp.max_connections",
            l.max_connections as u64,
            1,
            100_000,
        );
        check_range(
            p,
            "lmtp.max_line_length",
            l.max_line_length as u64,
            512,
            1 << 20,
        );
        check_range(
            p,
            "lmtp.max_message_size",
            l.max_message_size,
            1024,
            1 << 40,
        );
        check_range(
            p,
            "lmtp.max_recipients",
            l.max_recipients as u64,
            1,
            100_000,
        );
        check_range(p, "lmtp.idle_timeout_secs", l.idle_timeout_secs, 1, 3600);
        check_range(
            p,
            "lmtp.spool_threshold",
            l.spool_threshold as u64,
            1024,
            1 << 30,
        );
    }

    fn validate_coi(&self, p: &mut Vec<String>) {
        let root = &self.coi.mailbox_root;
        if root.is_empty()
            || root.starts_with('/')
            || root.ends_with('/')
            || root.chars().any(char::is_control)
        {
            p.push(format!(
                "coi.mailbox_root: {root:?} is not a usable folder name"
            ));
        }
    }

    fn validate_delivery(&self, p: &mut Vec<String>) {
        let d = &self.delivery;
        match d.backend {
            DeliveryBackend::Maildir => {
                if d.maildir.path.is_empty() {
                    p.push("delivery.maildir.path: must not be empty".into());
                }
            }
            DeliveryBackend::Dovecot => {
                if d.dovecot.lmtp.is_empty() {
                    p.push("delivery.dovecot.lmtp: must name a socket path or host:port".into());
                }
                check_range(
                    p,
                    "delivery.dovecot.connect_timeout_secs",
                    d.dovecot.connect_timeout_secs,
                    1,
                    300,
                );
                check_range(
                    p,
                    "delivery.dovecot.reply_timeout_secs",
                    d.dovecot.reply_timeout_secs,
                    1,
                    540,
                );
                check_range(
                    p,
                    "delivery.dovecot.transaction_timeout_secs",
                    d.dovecot.transaction_timeout_secs,
                    1,
                    540,
                );
                let dc = &d.dovecot;
                let (open, idle) = (dc.max_connections as u64, dc.max_idle_connections as u64);
                check_range(p, "delivery.dovecot.max_connections", open, 1, 10_000);
                check_range(p, "delivery.dovecot.max_idle_connections", idle, 0, open);
                check_range(p, "delivery.dovecot.idle_secs", dc.idle_secs, 1, 240);
            }
        }
    }

    fn validate_dict(&self, p: &mut Vec<String>) {
        let d = &self.dict;
        check_socket_path(p, "dict.socket", &d.socket);
        check_range(
            p,
            "dict.max_connections",
            d.max_connections as u64,
            1,
            100_000,
        );
        check_range(
            p,
            "dict.max_line_length",
            d.max_line_length as u64,
            1024,
            1 << 24,
        );
        check_range(p, "dict.idle_timeout_secs", d.idle_timeout_secs, 1, 3600);
        check_range(
            p,
            "dict.max_transactions",
            d.max_transactions as u64,
            1,
            1000,
        );
        check_range(p, "dict.max_changes", d.max_changes as u64, 1, 1_000_000);
        check_range(
            p,
            "dict.max_iterate_rows",
            d.max_iterate_rows as u64,
            1,
            1_000_000,
        );
        if d.max_pending_bytes < d.max_line_length || d.max_pending_bytes > 1 << 30 {
            p.push(format!(
                "dict.max_pending_bytes: {} must be between dict.max_line_length and {}",
                d.max_pending_bytes,
                1u64 << 30
            ));
        }
    }
}

/// Adds a problem when `path` (empty: no socket) is not an absolute unix socket path
/// that fits `sun_path` (108 bytes including the NUL). A relative one would be bound
/// in whatever directory coid runs in ("/" under systemd).
fn check_socket_path(p: &mut Vec<String>, key: &str, path: &Path) {
    let bytes = path.as_os_str().as_bytes();
    if !bytes.is_empty() && (!path.is_absolute() || bytes.len() > 107 || bytes.ends_with(b"/")) {
        p.push(format!(
            "{key}: {path:?} is not an absolute socket path of at most 107 bytes"
        ));
    }
}

/// Adds a problem when `value` is outside `min..=max`.
pub(super) fn check_range(p: &mut Vec<String>, key: &str, value: u64, min: u64, max: u64) {
    if !(min..=max).contains(&value) {
        p.push(format!("{key}: {value} is outside {min}..={max}"));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ConfigError;

    #[test]
    fn defaults_are_valid() {
        Config::default()
            .validate()
            .expect("defaults must validate");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "[lmtp]\ntcp = [\"nope\"]\nunix_socket = \"coid/lmtp\"\nmax_line_length = 10\n[coi]\nmessage_filter = \"sometimes\"\n[delivery]\nbackend = \"imap\"\n[dict]\nsocket = \"run/dict\"\nsocket_mode = \"999\"\nmax_transactions = 0\n";
        let (_, problems) = Config::check(text, Path::new("t.toml")).expect("parses");
        assert_eq!(problems.len(), 8, "{problems:?}");
    }

    /// Wrong words for several enum settings (and a wrong type) in one file: each is
    /// reported with its key, the word and the accepted ones, next to the semantic
    /// problems. toml alone stops at the first (shown first).
    #[test]
    fn every_wrong_word_is_reported_at_once() {
        let text = "[users]\nusername = \"uid\"\n[coi]\nmessage_filter = \"sometimes\"\n\
                    [delivery]\nbackend = \"imap\"\n[push]\nurgency = \"now\"\n\
                    ttl_secs = \"soon\"\nconcurrency = 0\n";
        let naive = toml::from_str::<Config>(text).expect_err("wrong words");
        let named = ["`uid`", "`sometimes`", "`imap`", "`now`", "\"soon\""]
            .iter()
            .filter(|word| naive.to_string().contains(*word))
            .count();
        assert_eq!(named, 1, "toml stops at the first: {naive}");
        let (_, problems) = Config::check(text, Path::new("t.toml")).expect("parses");
        assert_eq!(problems.len(), 6, "{problems:#?}");
        for expected in [
            "users.username: unknown variant `uid`, expected `address` or `localpart`",
            "coi.message_filter: unknown variant `sometimes`, expected one of `none`, `active`, `seen`",
            "delivery.backend: unknown variant `imap`, expected `maildir` or `dovecot`",
            "push.urgency: unknown variant `now`, expected one of `very-low`, `low`, `normal`, `high`",
            "push.ttl_secs: invalid type: string \"soon\", expected u64",
            "push.concurrency: 0 is outside 1..=1000",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected} in {problems:#?}"
            );
        }
        let err = Config::parse(text, Path::new("t.toml")).expect_err("wrong words");
        assert!(
            matches!(err, ConfigError::Invalid(Problems(ref p)) if p.len() == 5),
            "{err}"
        );
    }

    #[test]
    fn socket_modes_and_the_separator_are_typed() {
        let text = "[lmtp]\nunix_socket_mode = \"0600\"\n[delivery.dovecot]\n\
                    hierarchy_separator = \".\"\n";
        let config = Config::parse(text, Path::new("t.toml")).expect("fits");
        assert_eq!(config.lmtp.unix_socket_mode.bits(), 0o600);
        assert_eq!(config.delivery.dovecot.hierarchy_separator, '.');
        let text = "[lmtp]\nunix_socket_mode = \"0999\"\n[dict]\nsocket_mode = \"1777\"\n\
                    [delivery.dovecot]\nhierarchy_separator = \"::\"\n";
        let (_, problems) = Config::check(text, Path::new("t.toml")).expect("parses");
        assert_eq!(
            problems,
            [
                "delivery.dovecot.hierarchy_separator: invalid value: string \"::\", expected a character",
                "dict.socket_mode: \"1777\" is not an octal mode of at most 0777",
                "lmtp.unix_socket_mode: \"0999\" is not an octal mode of at most 0777",
            ]
        );
    }

    #[test]
    fn the_transaction_deadline_is_bounded() {
        for secs in [0, 541] {
            let text = format!("[delivery.dovecot]\ntransaction_timeout_secs = {secs}\n");
            let config = Config::parse(&text, Path::new("t.toml")).expect("parses");
            let problems = config.validate().expect_err("out of range");
            assert!(
                problems.to_string().contains("transaction_timeout_secs"),
                "{problems}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            Config::parse("[lmtp]\nmax_conections = 3\n", Path::new("t.toml")).expect_err("typo");
        assert!(err.to_string().contains("max_conections"), "{err}");
    }
}

#[cfg(test)]
mod shipped {
    use std::path::Path;

    use super::*;

    /// conf.d/coid.toml documents the defaults: parsing it must give exactly them.
    #[test]
    fn shipped_config_equals_defaults() {
        let text = include_str!("../../conf.d/coid.toml");
        let shipped = Config::parse(text, Path::new("conf.d/coid.toml")).expect("parses");
        assert_eq!(format!("{shipped:?}"), format!("{:?}", Config::default()));
    }
}
