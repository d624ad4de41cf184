//! The COI per-user settings (COI server spec, "COI Configuration" METADATA entries) and
//! how a user's stored values combine with the server-wide defaults from the config.

use serde::Serialize;

use super::{Store, StoreError};
use crate::config::CoiConfig;

/// `enabled`: `yes`, or absent (NIL) for off.
pub const ENTRY_ENABLED: &str = "/private/vendor/vendor.dovecot/coi/config/enabled";
/// `message-filter`: `none`, `active` or `seen`.
pub const ENTRY_MESSAGE_FILTER: &str = "/private/vendor/vendor.dovecot/coi/config/message-filter";

/// Where chat messages go (COI server spec "Configure Message Filtering").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFilter {
    /// Chats stay in INBOX.
    None,
    /// Chats are filed into `<mailbox-root>/Chats` on delivery.
    Active,
    /// Chats stay in INBOX until seen, then move (done on the IMAP side).
    Seen,
}

impl MessageFilter {
    /// Parses the METADATA value.
    pub fn parse(value: &str) -> Option<MessageFilter> {
        match value {
            "none" => Some(MessageFilter::None),
            "active" => Some(MessageFilter::Active),
            "seen" => Some(MessageFilter::Seen),
            _ => None,
        }
    }

    /// The METADATA value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageFilter::None => "none",
            MessageFilter::Active => "active",
            MessageFilter::Seen => "seen",
        }
    }
}

/// A user's effective COI settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoiSettings {
    /// COI on for this user.
    pub enabled: bool,
    /// The user's message filter.
    pub message_filter: MessageFilter,
    /// The mailbox root (server-wide, read-only for users).
    pub mailbox_root: String,
}

impl CoiSettings {
    /// The server-wide defaults.
    pub fn defaults(config: &CoiConfig) -> CoiSettings {
        CoiSettings {
            enabled: config.enabled,
            message_filter: MessageFilter::parse(&config.message_filter)
                .unwrap_or(MessageFilter::None),
            mailbox_root: config.mailbox_root.clone(),
        }
    }

    /// The chats folder, `<mailbox-root>/Chats`, with `/` as separator.
    pub fn chats_folder(&self) -> String {
        format!("{}/Chats", self.mailbox_root)
    }
}

impl Store {
    /// The effective COI settings of `username`: stored values over `defaults`.
    /// A stored value that is not valid (written by hand) is ignored with a warning.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn coi_settings(
        &self,
        username: &str,
        defaults: &CoiSettings,
    ) -> Result<CoiSettings, StoreError> {
        let mut settings = defaults.clone();
        for (entry, value) in self.entries(username)? {
            match entry.as_str() {
                ENTRY_ENABLED => settings.enabled = value == "yes",
                ENTRY_MESSAGE_FILTER => match MessageFilter::parse(&value) {
                    Some(filter) => settings.message_filter = filter,
                    None => tracing::warn!(username, value, "ignoring invalid message-filter"),
                },
                _ => {}
            }
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_override_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let defaults = CoiSettings::defaults(&CoiConfig::default());
        assert_eq!(
            store.coi_settings("a@x", &defaults).expect("read"),
            defaults
        );
        store.set("a@x", ENTRY_ENABLED, Some("yes")).expect("set");
        store
            .set("a@x", ENTRY_MESSAGE_FILTER, Some("active"))
            .expect("set");
        let s = store.coi_settings("a@x", &defaults).expect("read");
        assert!(s.enabled);
        assert_eq!(s.message_filter, MessageFilter::Active);
        assert_eq!(s.chats_folder(), "COI/Chats");
    }
}
