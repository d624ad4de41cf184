//! Classification of a message by its outer headers, done once per message before the
//! per-recipient policy runs. Pure: a parsed header block in, a [`Classification`] out.
//!
//! Rules (COI server spec "Configure Message Filtering", COI client spec "Group
//! Messages", RFC 8098 for read receipts), in the order Dovecot's COI plugin applies them:
//! - chat: a `Chat-Version` header, or a `Message-ID` starting with `chat$`, or a first
//!   msg-id in `References` starting with `chat$` (case-sensitive, after `<>`);
//! - group: `chat$group.<id>.` (COI) or Delta Chat's `Gr.<id>.` in the Message-ID or the
//!   first References id, or a `Chat-Group-ID` header;
//! - Delta Chat end-to-end encrypted chat, which carries none of the above outside the
//!   encryption: see [`is_deltachat_encrypted`];
//! - read receipt: `multipart/report; report-type=disposition-notification`;
//! - everything else, and anything unparseable, is plain email.

use mail_parser::{HeaderName, HeaderValue, Message};
use serde::Serialize;

/// The class a message falls in; what `coid explain` prints as `class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// One-to-one chat message.
    Chat,
    /// Group chat message.
    Group,
    /// Read receipt (RFC 8098 MDN).
    Mdn,
    /// Anything else.
    Email,
}

impl Class {
    /// The lowercase name used in Sieve environment items and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Chat => "chat",
            Class::Group => "group",
            Class::Mdn => "mdn",
            Class::Email => "email",
        }
    }
}

/// Which outer signal made a message chat; logged, and documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// `Chat-Version` header present.
    ChatVersion,
    /// `Message-ID` starts with `chat$`.
    MessageId,
    /// First msg-id of `References` starts with `chat$`.
    References,
    /// Delta Chat end-to-end encrypted message shape.
    DeltaChatEncrypted,
    /// No chat signal.
    None,
}

impl Signal {
    /// The kebab-case name used in Sieve environment items and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::ChatVersion => "chat-version",
            Signal::MessageId => "message-id",
            Signal::References => "references",
            Signal::DeltaChatEncrypted => "delta-chat-encrypted",
            Signal::None => "none",
        }
    }
}

/// The result of classifying one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// The class.
    pub class: Class,
    /// True for chat and group messages and for read receipts sent by chat clients:
    /// these get the `$Chat` keyword.
    pub is_chat: bool,
    /// What made it chat.
    pub signal: Signal,
    /// COI or Delta Chat group id, for group messages.
    pub group_id: Option<String>,
}

impl Classification {
    /// Plain email: the answer for anything unparseable too.
    pub const EMAIL: Classification = Classification {
        class: Class::Email,
        is_chat: false,
        signal: Signal::None,
        group_id: None,
    };
}

/// Classifies a raw header block (or a whole message; only the headers are read).
pub fn classify_raw(header_block: &[u8]) -> Classification {
    classify(&crate::parsed::header(header_block))
}

/// Classifies a parsed message by its outer headers. A message without a root part
/// (`Message::default()`), whose header accessors would panic, is email.
pub fn classify(message: &Message<'_>) -> Classification {
    if !crate::parsed::has_root(message) {
        return Classification::EMAIL;
    }
    let message_id = message.message_id();
    let first_reference = first_msg_id(message.references());
    let signal = chat_signal(message, message_id, first_reference);
    let is_chat = signal != Signal::None;
    let group_id = group_id(message, message_id, first_reference);
    let class = if is_mdn(message) {
        Class::Mdn
    } else if is_chat && group_id.is_some() {
        Class::Group
    } else if is_chat {
        Class::Chat
    } else {
        Class::Email
    };
    Classification {
        class,
        is_chat,
        signal,
        group_id: if is_chat { group_id } else { None },
    }
}

fn chat_signal(message: &Message<'_>, message_id: Option<&str>, first_ref: Option<&str>) -> Signal {
    if message.header("Chat-Version").is_some() {
        Signal::ChatVersion
    } else if first_ref.is_some_and(|id| id.starts_with("chat$")) {
        Signal::References
    } else if message_id.is_some_and(|id| id.starts_with("chat$")) {
        Signal::MessageId
    } else if is_deltachat_encrypted(message) {
        Signal::DeltaChatEncrypted
    } else {
        Signal::None
    }
}

/// The first msg-id of a `References` (or similar) header, without angle brackets.
fn first_msg_id<'a>(value: &'a HeaderValue<'_>) -> Option<&'a str> {
    match value {
        HeaderValue::Text(text) => Some(text.as_ref()),
        HeaderValue::TextList(list) => list.first().map(|t| t.as_ref()),
        _ => None,
    }
}

/// Group id from `Chat-Group-ID`, then `chat$group.<id>.` / `Gr.<id>.` in the Message-ID,
/// then in the first References id (COI client spec "Group Messages"; Delta Chat spec).
fn group_id(
    message: &Message<'_>,
    message_id: Option<&str>,
    first_ref: Option<&str>,
) -> Option<String> {
    if let Some(id) = message
        .header("Chat-Group-ID")
        .and_then(HeaderValue::as_text)
    {
        let id = id.trim();
        if is_group_id(id) {
            return Some(id.to_owned());
        }
    }
    [message_id, first_ref]
        .into_iter()
        .flatten()
        .find_map(group_id_from_msg_id)
}

fn group_id_from_msg_id(id: &str) -> Option<String> {
    let rest = id
        .strip_prefix("chat$group.")
        .or_else(|| id.strip_prefix("Gr."))?;
    let (group, _) = rest.split_once('.')?;
    is_group_id(group).then(|| group.to_owned())
}

/// Group ids are `[0-9A-Za-z_-]+` (COI client spec; Delta Chat spec), at most 128 octets.
fn is_group_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// RFC 8098 §3: `multipart/report` with `report-type=disposition-notification`.
fn is_mdn(message: &Message<'_>) -> bool {
    let Some(ct) = message
        .header(HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
    else {
        return false;
    };
    ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        && ct
            .attribute("report-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("disposition-notification"))
}

/// Delta Chat (core 2.x) end-to-end encrypted messages show no chat header outside the
/// encryption (measured with deltachat-rpc-server 2.65.0, fixtures in
/// `tests/data/eml/deltachat/`). What they do show, all together, is distinctive:
/// - `Chat-Is-Post-Message` (the second part of a large attachment), or else
/// - `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"`,
/// - `Subject: [...]` exactly (the real subject is inside),
/// - `To: "hidden-recipients": ;` and no `Cc`,
/// - a Message-ID at `@localhost` (core 2.x: a UUID).
///
/// Ordinary OpenPGP mail (Thunderbird, K-9, Mutt, Mailvelope) keeps real recipients
/// and a Message-ID at the sender's domain, so it does not match.
pub fn is_deltachat_encrypted(message: &Message<'_>) -> bool {
    if message.header("Chat-Is-Post-Message").is_some() {
        return true;
    }
    is_pgp_encrypted(message)
        && message.subject().is_some_and(|s| s.trim() == "[...]")
        && message.header("Cc").is_none()
        && message.header_raw("To").is_some_and(is_hidden_recipients)
        && message.message_id().is_some_and(is_localhost_id)
}

/// RFC 3156 `multipart/encrypted; protocol="application/pgp-encrypted"`.
fn is_pgp_encrypted(message: &Message<'_>) -> bool {
    message
        .header(HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
        .is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("encrypted"))
                && ct
                    .attribute("protocol")
                    .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-encrypted"))
        })
}

/// `"hidden-recipients": ;`, an empty RFC 5322 group, whitespace-insensitive.
fn is_hidden_recipients(raw: &str) -> bool {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    compact == "\"hidden-recipients\":;"
}

/// `<id@localhost>` with a token-like id (UUID in core 2.x, shorter ids before).
fn is_localhost_id(id: &str) -> bool {
    id.rsplit_once('@').is_some_and(|(local, domain)| {
        domain == "localhost"
            && (8..=80).contains(&local.len())
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_str(raw: &str) -> Classification {
        classify_raw(raw.as_bytes())
    }

    #[test]
    fn chat_version_is_chat() {
        let c = classify_str("From: a@x\r\nChat-Version: 1.0\r\nMessage-ID: <abc@x>\r\n\r\nhi");
        assert_eq!((c.class, c.signal), (Class::Chat, Signal::ChatVersion));
    }

    #[test]
    fn chat_dollar_message_id_is_chat() {
        let c = classify_str("From: a@x\r\nMessage-ID: <chat$KJK2312@x>\r\n\r\nhi");
        assert_eq!((c.class, c.signal), (Class::Chat, Signal::MessageId));
    }

    #[test]
    fn first_reference_decides_not_later_ones() {
        let c = classify_str("Message-ID: <a@x>\r\nReferences: <chat$root@x> <b@x>\r\n\r\n");
        assert_eq!((c.class, c.signal), (Class::Chat, Signal::References));
        let c = classify_str("Message-ID: <a@x>\r\nReferences: <root@x> <chat$b@x>\r\n\r\n");
        assert_eq!(c, Classification::EMAIL);
    }

    #[test]
    fn prefix_is_case_sensitive() {
        assert_eq!(
            classify_str("Message-ID: <Chat$a@x>\r\n\r\n"),
            Classification::EMAIL
        );
    }

    #[test]
    fn coi_group_id_from_message_id() {
        let c = classify_str("Message-ID: <chat$group.4321dcba1234.ABSK@x>\r\n\r\n");
        assert_eq!(c.class, Class::Group);
        assert_eq!(c.group_id.as_deref(), Some("4321dcba1234"));
    }

    #[test]
    fn deltachat_group_header_and_prefix() {
        let c = classify_str(
            "Chat-Version: 1.0\r\nChat-Group-ID: abcDEF_-123\r\nMessage-ID: <x@y>\r\n\r\n",
        );
        assert_eq!(
            (c.class, c.group_id.as_deref()),
            (Class::Group, Some("abcDEF_-123"))
        );
        let c = classify_str("Chat-Version: 1.0\r\nMessage-ID: <Gr.grp123.rand@y>\r\n\r\n");
        assert_eq!(
            (c.class, c.group_id.as_deref()),
            (Class::Group, Some("grp123"))
        );
    }

    #[test]
    fn group_prefix_without_chat_signal_is_email() {
        assert_eq!(
            classify_str("Message-ID: <Gr.grp123.rand@y>\r\n\r\n"),
            Classification::EMAIL
        );
    }

    #[test]
    fn mdn_from_chat_client_is_chat_mdn() {
        let raw = "Chat-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n";
        let c = classify_str(raw);
        assert_eq!((c.class, c.is_chat), (Class::Mdn, true));
        let plain = "Content-Type: multipart/report; report-type=\"disposition-notification\"; boundary=b\r\n\r\n";
        let c = classify_str(plain);
        assert_eq!((c.class, c.is_chat), (Class::Mdn, false));
    }

    #[test]
    fn pgp_mail_from_ordinary_clients_is_email() {
        let thunderbird = "From: a@x.org\r\nTo: b@y.org\r\nSubject: ...\r\nMessage-ID: <0d1c7a2e-4e55-4a7e-9f0e-1c2d3e4f5a6b@x.org>\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n";
        assert_eq!(classify_str(thunderbird), Classification::EMAIL);
        let hidden_but_real_domain = "To: \"hidden-recipients\": ;\r\nSubject: [...]\r\nMessage-ID: <abcdefgh-1234@x.org>\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n";
        assert_eq!(classify_str(hidden_but_real_domain), Classification::EMAIL);
    }

    #[test]
    fn signal_names_match_their_json() {
        for signal in [
            Signal::ChatVersion,
            Signal::MessageId,
            Signal::References,
            Signal::DeltaChatEncrypted,
            Signal::None,
        ] {
            assert_eq!(serde_json::to_value(signal).expect("json"), signal.as_str());
        }
    }

    #[test]
    fn garbage_is_email() {
        assert_eq!(
            classify_raw(b"\xff\xfe\x00 not a message"),
            Classification::EMAIL
        );
        assert_eq!(classify_raw(b""), Classification::EMAIL);
    }

    #[test]
    fn a_message_without_parts_is_email_not_a_panic() {
        assert_eq!(classify(&Message::default()), Classification::EMAIL);
        assert_eq!(classify_raw(b"\r\nno header\r\n"), Classification::EMAIL);
    }
}
