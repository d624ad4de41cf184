//! From an envelope recipient to the user whose settings apply: strip the address
//! extension (`alice+tag@x` → `alice@x`, like Postfix's `recipient_delimiter`),
//! lowercase the domain, and keep either the whole address or only the local part, to
//! match the username Dovecot uses for METADATA.

use crate::config::{UsernameForm, UsersConfig};

/// Maps recipients to usernames.
#[derive(Debug, Clone)]
pub struct UserMap {
    delimiters: Vec<char>,
    local_only: bool,
}

/// A recipient split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAddress {
    /// Local part without extension.
    pub local: String,
    /// Lowercased domain (empty when the address has none).
    pub domain: String,
    /// The username for the state store.
    pub username: String,
}

impl UserMap {
    /// From the `[users]` section.
    pub fn new(config: &UsersConfig) -> UserMap {
        UserMap {
            delimiters: config.recipient_delimiter.chars().collect(),
            local_only: config.username == UsernameForm::Localpart,
        }
    }

    /// Splits a recipient address.
    pub fn resolve(&self, address: &str) -> UserAddress {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let local = match local.find(|c| self.delimiters.contains(&c)) {
            Some(pos) if pos > 0 => local.get(..pos).unwrap_or(local),
            _ => local,
        };
        let domain = domain.to_ascii_lowercase();
        let username = if self.local_only || domain.is_empty() {
            local.to_owned()
        } else {
            format!("{local}@{domain}")
        };
        UserAddress {
            local: local.to_owned(),
            domain,
            username,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_extension_and_lowercases_domain() {
        let map = UserMap::new(&UsersConfig::default());
        let u = map.resolve("alice+chats@Example.ORG");
        assert_eq!(
            (u.local.as_str(), u.domain.as_str()),
            ("alice", "example.org")
        );
        assert_eq!(u.username, "alice@example.org");
        assert_eq!(map.resolve("+x@example.org").username, "+x@example.org");
    }

    #[test]
    fn localpart_usernames() {
        let config = UsersConfig {
            recipient_delimiter: "+-".into(),
            username: UsernameForm::Localpart,
        };
        assert_eq!(
            UserMap::new(&config).resolve("bob-list@x.org").username,
            "bob"
        );
    }
}
