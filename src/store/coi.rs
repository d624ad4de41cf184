//! The COI per-user settings (COI server spec, "COI Configuration" METADATA entries) and
//! how a user's stored values combine with the server-wide defaults from the config.

use serde::{Deserialize, Serialize};

use crate::config::CoiConfig;

/// `enabled`: `yes`, or absent (NIL) for off.
pub const ENTRY_ENABLED: &str = "/private/vendor/vendor.dovecot/coi/config/enabled";
/// `message-filter`: `none`, `active` or `seen`.
pub const ENTRY_MESSAGE_FILTER: &str = "/private/vendor/vendor.dovecot/coi/config/message-filter";
/// `mailbox-root`: read-only for users; the value is `[coi] mailbox_root`.
pub const ENTRY_MAILBOX_ROOT: &str = "/private/vendor/vendor.dovecot/coi/config/mailbox-root";

/// Whether a user may write `value` (`None`: unset, IMAP `NIL`) to METADATA `entry`
/// (COI server spec; coi-spec.md §2.3, §2.4, §2.6). Entries that are not COI settings
/// are not checked here.
///
/// # Errors
/// The refusal, worded like Dovecot's COI plugin words it.
pub fn check_entry_write(entry: &str, value: Option<&str>) -> Result<(), String> {
    let ok = match entry {
        ENTRY_ENABLED => matches!(value, None | Some("yes")),
        ENTRY_MESSAGE_FILTER => value.is_none_or(|v| MessageFilter::parse(v).is_some()),
        ENTRY_MAILBOX_ROOT => return Err(format!("unable to set {entry}: it is read-only")),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid value for {entry}: {:?}",
            value.unwrap_or_default()
        ))
    }
}

/// Where chat messages go (COI server spec "Configure Message Filtering").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
            message_filter: config.message_filter,
            mailbox_root: config.mailbox_root.clone(),
        }
    }

    /// The chats folder, `<mailbox-root>/Chats`, with `/` as separator.
    pub fn chats_folder(&self) -> String {
        format!("{}/Chats", self.mailbox_root)
    }
}

/// What a user set of the COI settings (`None`: the server default applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredCoi {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `message-filter`.
    pub message_filter: Option<MessageFilter>,
}

impl StoredCoi {
    /// The effective settings: these values over `defaults`.
    pub fn over(self, defaults: &CoiSettings) -> CoiSettings {
        CoiSettings {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            message_filter: self.message_filter.unwrap_or(defaults.message_filter),
            mailbox_root: defaults.mailbox_root.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::{Kind, store_of};
    use rstest::rstest;

    #[rstest]
    #[case::sqlite(Kind::Sqlite)]
    #[case::postgresql(Kind::Postgresql)]
    fn stored_values_override_defaults(#[case] kind: Kind) {
        let (_guard, store) = store_of(kind);
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

    /// Other entries below `coi/config/`, however many, do not hide the settings.
    #[rstest]
    #[case::sqlite(Kind::Sqlite)]
    #[case::postgresql(Kind::Postgresql)]
    fn other_config_entries_do_not_hide_the_settings(#[case] kind: Kind) {
        let (_guard, store) = store_of(kind);
        let defaults = CoiSettings::defaults(&CoiConfig::default());
        for i in 0..40 {
            let entry = format!("/private/vendor/vendor.dovecot/coi/config/a{i:02}");
            store.set("a@x", &entry, Some("x")).expect("set");
        }
        store.set("a@x", ENTRY_ENABLED, Some("yes")).expect("set");
        store
            .set("a@x", ENTRY_MESSAGE_FILTER, Some("seen"))
            .expect("set");
        let s = store.coi_settings("a@x", &defaults).expect("read");
        assert!(s.enabled);
        assert_eq!(s.message_filter, MessageFilter::Seen);
    }

    #[test]
    fn only_spec_values_may_be_written() {
        assert!(check_entry_write(ENTRY_ENABLED, Some("yes")).is_ok());
        assert!(check_entry_write(ENTRY_ENABLED, None).is_ok());
        assert!(check_entry_write(ENTRY_ENABLED, Some("no")).is_err());
        assert!(check_entry_write(ENTRY_ENABLED, Some("YES")).is_err());
        for ok in ["none", "active", "seen"] {
            assert!(check_entry_write(ENTRY_MESSAGE_FILTER, Some(ok)).is_ok());
        }
        assert!(check_entry_write(ENTRY_MESSAGE_FILTER, None).is_ok());
        assert!(check_entry_write(ENTRY_MESSAGE_FILTER, Some("inactive")).is_err());
        assert!(check_entry_write(ENTRY_MAILBOX_ROOT, Some("COI")).is_err());
        assert!(check_entry_write(ENTRY_MAILBOX_ROOT, None).is_err());
        assert!(check_entry_write("/private/comment", Some("anything")).is_ok());
    }
}
