//! Where a Dovecot attribute-dict key lives in coid's store. Pure string mapping.
//!
//! Dovecot 2.3 (`src/lib-storage/index/index-attribute.c`, `src/lib-imap-storage/
//! imap-metadata.c`) builds its keys as `priv/<mailbox-guid>/<key>` for private and
//! `shared/<mailbox-guid>/<key>` for shared attributes, the key being the METADATA
//! entry name lowercased and without `/private/` or `/shared/`. Server annotations
//! (mailbox `""`, RFC 5464) are attributes of INBOX with the key prefix
//! `vendor/vendor.dovecot/pvt/server/`. Seen on the wire for
//! `SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/Message-Filter active)`:
//! `priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/coi/config/message-filter`.
//! IMAP users cannot reach `vendor/vendor.dovecot/pvt/` keys themselves (Dovecot
//! answers `NO [CANNOT] Internal mailbox attributes cannot be accessed`), so only
//! Dovecot's server-annotation code writes below `pvt/server/`.
//!
//! The mapping:
//! - Delta Chat's device token, the mailbox attribute `priv/<guid>/devicetoken`
//!   (`SETMETADATA "INBOX" (/private/devicetoken ...)`) or the private server
//!   annotation of the same name, is [`Place::DeviceToken`]: a set of tokens per user,
//!   never stored as an attribute (`super::deltachat`).
//! - The server entries coid answers from its config, read-only: shared server
//!   annotations `shared/<guid>/vendor/vendor.dovecot/pvt/server/<name>` for
//!   everything below `vendor/deltachat/` (what Delta Chat core reads), as
//!   [`Place::ServerInfo`] with the entry name `/shared/<name>`. (`/shared/admin` and
//!   `/shared/comment`, RFC 5464 §3.2.1, never reach the dict: Dovecot answers them
//!   from its own settings.)
//! - A private server annotation `priv/<guid>/vendor/vendor.dovecot/pvt/server/<name>`
//!   is the user's METADATA entry `/private/<name>` ([`Place::Entry`]), in the table
//!   the delivery path reads the COI settings from. The INBOX GUID is dropped: server
//!   annotations belong to the user, and survive a recreated INBOX.
//! - Everything else is kept verbatim ([`Place::Raw`]): mailbox annotations, other
//!   shared ones, and Dovecot-internal keys, including internal server ones
//!   (`.../pvt/server/vendor/vendor.dovecot/pvt/...`).
//!
//! Iteration sees the server entries only when its path lies inside the server space
//! ([`ServerScope`]). Dovecot iterates `priv/<guid>/` to list a mailbox's own
//! attributes and, when a mailbox is deleted, unsets everything that iteration
//! returns; keeping the GUID-less server entries out of it means deleting a folder can
//! never remove a user's COI settings.

/// Dovecot's internal attribute prefix (`MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT`).
const INTERNAL: &str = "vendor/vendor.dovecot/pvt/";
/// Server annotations, below a mailbox GUID (`..._PREFIX_DOVECOT_PVT_SERVER`).
const SERVER: &str = "vendor/vendor.dovecot/pvt/server/";
/// Private METADATA entries (RFC 5464 §3.2).
const PRIVATE: &str = "/private/";
/// Delta Chat's device token, a mailbox attribute of INBOX.
pub const DEVICETOKEN: &str = "devicetoken";

/// Where one key is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A private server annotation: this METADATA entry name.
    Entry(String),
    /// Delta Chat's `/private/devicetoken`, on INBOX or on the server.
    DeviceToken,
    /// A shared server entry coid answers from its config: this entry name
    /// (`/shared/vendor/deltachat/maxsmtprecipients`...).
    ServerInfo(String),
    /// Any other key, stored as it is.
    Raw,
}

/// Decides where `key` lives.
pub fn place(key: &str) -> Place {
    if is_device_token(key) {
        return Place::DeviceToken;
    }
    if let Some(name) = shared_server_name(key).filter(|name| is_server_info(name)) {
        return Place::ServerInfo(format!("/shared/{name}"));
    }
    match server_name(key) {
        Some((_, name)) if !name.is_empty() && !name.starts_with(INTERNAL) => {
            Place::Entry(format!("{PRIVATE}{name}"))
        }
        _ => Place::Raw,
    }
}

/// `priv/<guid>/devicetoken`, or the same as a private server annotation.
fn is_device_token(key: &str) -> bool {
    if let Some((_, name)) = server_name(key) {
        return name == DEVICETOKEN;
    }
    key.strip_prefix("priv/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(guid, name)| !guid.is_empty() && name == DEVICETOKEN)
}

/// `shared/<guid>/vendor/vendor.dovecot/pvt/server/<name>` → `<name>`.
fn shared_server_name(key: &str) -> Option<&str> {
    let (guid, rest) = key.strip_prefix("shared/")?.split_once('/')?;
    (!guid.is_empty()).then_some(())?;
    rest.strip_prefix(SERVER)
}

/// The server entries coid answers (below `/shared/`).
fn is_server_info(name: &str) -> bool {
    name.strip_prefix("vendor/deltachat/")
        .is_some_and(|rest| !rest.is_empty())
}

/// An iteration path inside the shared server space (`shared/<guid>/vendor/
/// vendor.dovecot/pvt/server/...`): the part through `server/`, and the entry-name
/// prefix the path stands for (`/shared/<rest>`).
pub fn shared_server_scope(path: &str) -> Option<(String, String)> {
    let name = shared_server_name(path)?;
    let base = path.get(..path.len() - name.len())?;
    Some((base.to_owned(), format!("/shared/{name}")))
}

/// `priv/<guid>/vendor/vendor.dovecot/pvt/server/<rest>` → (the part through
/// `server/`, `<rest>`).
fn server_name(key: &str) -> Option<(&str, &str)> {
    let after_priv = key.strip_prefix("priv/")?;
    let (guid, after_guid) = after_priv.split_once('/')?;
    if guid.is_empty() {
        return None;
    }
    let rest = after_guid.strip_prefix(SERVER)?;
    let base = key.get(..key.len() - rest.len())?;
    Some((base, rest))
}

/// An iteration path inside the server space of one INBOX GUID: which entries it
/// covers and how to write their keys back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerScope {
    /// `priv/<guid>/vendor/vendor.dovecot/pvt/server/`.
    base: String,
    /// The entry-name prefix the path stands for: `/private/<rest of path>`.
    pub entry_prefix: String,
}

impl ServerScope {
    /// For a path at or below `priv/<guid>/vendor/vendor.dovecot/pvt/server/`.
    pub fn of(path: &str) -> Option<ServerScope> {
        let (base, rest) = server_name(path)?;
        Some(ServerScope {
            base: base.to_owned(),
            entry_prefix: format!("{PRIVATE}{rest}"),
        })
    }

    /// The dict key of a private entry under this scope's GUID; `None` for entry
    /// names that are not `/private/...` (such rows can only come from outside).
    pub fn key_for(&self, entry: &str) -> Option<String> {
        let name = entry.strip_prefix(PRIVATE)?;
        Some(format!("{}{name}", self.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/";

    #[test]
    fn server_annotations_become_entries() {
        let key = format!("{BASE}vendor/vendor.dovecot/coi/config/enabled");
        assert_eq!(
            place(&key),
            Place::Entry("/private/vendor/vendor.dovecot/coi/config/enabled".into())
        );
        assert_eq!(
            place(&format!("{BASE}comment")),
            Place::Entry("/private/comment".into())
        );
    }

    #[test]
    fn the_device_token_and_the_server_entries_delta_chat_reads() {
        let guid = "0413580b5cf9006b1e38000083ecc375";
        assert_eq!(
            place(&format!("priv/{guid}/devicetoken")),
            Place::DeviceToken
        );
        assert_eq!(place(&format!("{BASE}devicetoken")), Place::DeviceToken);
        let shared = format!("shared/{guid}/vendor/vendor.dovecot/pvt/server/");
        for (name, entry) in [
            (
                "vendor/deltachat/maxsmtprecipients",
                "/shared/vendor/deltachat/maxsmtprecipients",
            ),
            (
                "vendor/deltachat/appversions",
                "/shared/vendor/deltachat/appversions",
            ),
        ] {
            assert_eq!(
                place(&format!("{shared}{name}")),
                Place::ServerInfo(entry.into()),
                "{name}"
            );
        }
        for raw in [
            format!("priv/{guid}/devicetoken/x"),
            "priv//devicetoken".to_owned(),
            format!("shared/{guid}/devicetoken"),
            format!("{shared}vendor/deltachat/"),
            format!("{shared}admin"),
            format!("shared/{guid}/admin"),
        ] {
            assert_eq!(place(&raw), Place::Raw, "{raw}");
        }
        assert_eq!(
            shared_server_scope(&format!("{shared}vendor/")),
            Some((shared.clone(), "/shared/vendor/".into()))
        );
        assert_eq!(shared_server_scope(&format!("shared/{guid}/")), None);
    }

    #[test]
    fn everything_else_is_raw() {
        for key in [
            "priv/0413580b5cf9006b1e38000083ecc375/comment",
            "shared/0413580b5cf9006b1e38000083ecc375/comment",
            "shared/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/x",
            "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/pvt/sieve",
            "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/",
            "priv//vendor/vendor.dovecot/pvt/server/comment",
            "priv/guid",
            "",
        ] {
            assert_eq!(place(key), Place::Raw, "{key}");
        }
    }

    #[test]
    fn scopes_map_entries_back_under_the_asked_guid() {
        let scope = ServerScope::of(&format!("{BASE}vendor/vendor.dovecot/coi/config/"))
            .expect("inside the server space");
        assert_eq!(
            scope.entry_prefix,
            "/private/vendor/vendor.dovecot/coi/config/"
        );
        assert_eq!(
            scope
                .key_for("/private/vendor/vendor.dovecot/coi/config/enabled")
                .as_deref(),
            Some(format!("{BASE}vendor/vendor.dovecot/coi/config/enabled").as_str())
        );
        assert_eq!(scope.key_for("/shared/x"), None);
        // Dovecot's "GETMETADATA (DEPTH infinity) "" (/private)" asks for "server//".
        let scope = ServerScope::of(&format!("{BASE}/")).expect("scope");
        assert_eq!(scope.entry_prefix, "/private//");
        // A mailbox's own attributes: no server entries.
        assert_eq!(
            ServerScope::of("priv/0413580b5cf9006b1e38000083ecc375/"),
            None
        );
    }
}
