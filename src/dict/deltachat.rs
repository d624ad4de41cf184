//! The METADATA entries Delta Chat uses, for `super::attributes`:
//!
//! - `/private/devicetoken` (`SETMETADATA "INBOX" (/private/devicetoken "<token>")`, or
//!   on the server `""`): each value set adds that token to the user's set or
//!   refreshes it (`crate::store` keeps the set, capped per user, least recently set
//!   first out); `NIL` removes all the user's tokens. A token that is empty, over 4096
//!   bytes or not printable ASCII is refused (the commit fails: `NO`). Reading it
//!   always gives NIL, and it is never listed: a client cannot learn the tokens of
//!   the user's other devices (Delta Chat never reads it back).
//! - The server entries Delta Chat core reads in one GETMETADATA before its inbox
//!   loop (an error there makes core abort that round), answered from `[deltachat]`
//!   and read-only: `/shared/vendor/deltachat/maxsmtprecipients`, `.../irohrelay`,
//!   `.../turn`; any other `/shared/vendor/deltachat/` entry reads as NIL. The other
//!   two entries of that GETMETADATA, `/shared/admin` and `/shared/comment`, Dovecot
//!   answers itself (`mail_server_admin`, `mail_server_comment`; seen with 2.3.19 and
//!   2.4.1): it never asks the dict for them.

use crate::config::Config;
use crate::push::deltachat::token::{self, TokenId};
use crate::store::{Depth, Op};

/// Delta Chat's entries.
#[derive(Debug, Clone)]
pub struct DeltaChatEntries {
    /// The configured server entries: (entry name, value), sorted by name.
    server: Vec<(String, String)>,
    /// Tokens per user.
    max_tokens: usize,
}

impl DeltaChatEntries {
    /// From `[deltachat]`.
    pub fn new(config: &Config) -> DeltaChatEntries {
        let d = &config.deltachat;
        let mut server: Vec<(String, String)> = [
            ("/shared/vendor/deltachat/irohrelay", d.irohrelay.clone()),
            (
                "/shared/vendor/deltachat/maxsmtprecipients",
                d.maxsmtprecipients.to_string(),
            ),
            ("/shared/vendor/deltachat/turn", d.turn.clone()),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(entry, value)| (entry.to_owned(), value))
        .collect();
        server.sort();
        DeltaChatEntries {
            server,
            max_tokens: d.max_tokens,
        }
    }

    /// The value of server entry `entry` (`/shared/...`), if configured.
    pub fn server_entry(&self, entry: &str) -> Option<String> {
        let found = self
            .server
            .iter()
            .find(|(name, _)| name == entry)
            .map(|(_, value)| value.clone());
        tracing::debug!(entry, found = found.is_some(), "server entry read");
        found
    }

    /// The configured server entries below `entry_prefix` at `depth`, as (dict key
    /// under `base`, value).
    pub fn server_rows(
        &self,
        base: &str,
        entry_prefix: &str,
        depth: Depth,
    ) -> Vec<(String, String)> {
        self.server
            .iter()
            .filter(|(entry, _)| depth.matches(entry_prefix, entry))
            .filter_map(|(entry, value)| {
                let name = entry.strip_prefix("/shared/")?;
                Some((format!("{base}{name}"), value.clone()))
            })
            .collect()
    }

    /// A change of `/private/devicetoken` as a store operation, or why it is refused.
    ///
    /// # Errors
    /// The token breaks [`token::check`].
    pub fn plan_token(&self, value: Option<&str>) -> Result<Op, String> {
        let Some(value) = value else {
            return Ok(Op::RemoveTokens);
        };
        token::check(value).map_err(|err| err.to_string())?;
        Ok(Op::AddToken {
            id: TokenId::of(value).into_string(),
            token: value.to_owned(),
            max: self.max_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> DeltaChatEntries {
        let mut config = Config::default();
        config.deltachat.irohrelay = "https://iroh.example.org".into();
        DeltaChatEntries::new(&config)
    }

    #[test]
    fn server_entries_come_from_the_config() {
        let e = entries();
        let get = |entry| e.server_entry(entry);
        assert_eq!(
            get("/shared/vendor/deltachat/maxsmtprecipients").as_deref(),
            Some("1000")
        );
        assert_eq!(
            get("/shared/vendor/deltachat/irohrelay").as_deref(),
            Some("https://iroh.example.org")
        );
        for unset in [
            "/shared/vendor/deltachat/turn",
            "/shared/vendor/deltachat/appversions",
        ] {
            assert_eq!(get(unset), None, "{unset}");
        }
        let rows = e.server_rows("B/", "/shared/vendor/deltachat/", Depth::Children);
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "B/vendor/deltachat/irohrelay",
                "B/vendor/deltachat/maxsmtprecipients"
            ]
        );
        assert!(e.server_rows("B/", "/shared/", Depth::Children).is_empty());
        assert_eq!(e.server_rows("B/", "/shared/", Depth::All).len(), 2);
    }

    #[test]
    fn tokens_are_checked_and_nil_removes_them() {
        let e = entries();
        match e.plan_token(Some("openpgp:abc")) {
            Ok(Op::AddToken { id, token, max }) => {
                assert_eq!(id, TokenId::of("openpgp:abc").into_string());
                assert_eq!((token.as_str(), max), ("openpgp:abc", 16));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.plan_token(None), Ok(Op::RemoveTokens));
        for bad in ["", "a\nb", &"x".repeat(4097)] {
            assert!(e.plan_token(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
