//! The notification JSON of the WebPush spec ("Payload Data Format"), built from the
//! delivered message's outer headers, within [`MAX_PLAINTEXT`] bytes.
//!
//! Choices where the spec leaves room (coi-spec.md §3.7): text fields are cut at a
//! character boundary and end in `…` (so neither UTF-8 sequences nor JSON escapes are
//! split: cutting happens before escaping); `from-email` is lower-cased and kept up to
//! 254 bytes (the longest valid address), names and subject up to 100; `msg-id` and
//! `group-id` are identifiers, so they are left out rather than cut when too long;
//! `folder` is left out past 200 bytes. `content` is the raw body when it is UTF-8
//! without NUL and the whole JSON still fits; `content-type` is left out for plain
//! UTF-8/ASCII text and `content-encoding` for 7bit/8bit. Field order is Dovecot's.

use mail_parser::{Addr, HeaderValue, Message};
use serde::{Deserialize, Serialize};

use super::MAX_PLAINTEXT;

const MAX_EMAIL: usize = 254;
const MAX_TEXT: usize = 100;
const MAX_CONTENT_TYPE: usize = 200;
const MAX_MSG_ID: usize = 100;
const MAX_GROUP_ID: usize = 128;
const MAX_FOLDER: usize = 200;

/// Where the message was stored, as far as the store tells.
#[derive(Debug, Clone, Default)]
pub struct Stored<'a> {
    /// The mailbox it was delivered to (in the store's hierarchy separator).
    pub folder: &'a str,
    /// UIDVALIDITY of that mailbox, when known.
    pub uidvalidity: Option<u32>,
    /// The message's UID, when known.
    pub uid: Option<u32>,
}

/// The payload, in the spec's field names and Dovecot's order. Read back from the
/// push queue (`Deserialize`) to drop `content` after a 413.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uidvalidity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    #[serde(rename = "from-email", skip_serializing_if = "Option::is_none")]
    from_email: Option<String>,
    #[serde(rename = "from-name", skip_serializing_if = "Option::is_none")]
    from_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(rename = "msg-id", skip_serializing_if = "Option::is_none")]
    msg_id: Option<String>,
    #[serde(rename = "group-id", skip_serializing_if = "Option::is_none")]
    group_id: Option<String>,
    #[serde(rename = "content-type", skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(rename = "content-encoding", skip_serializing_if = "Option::is_none")]
    content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

impl Payload {
    /// Builds the payload for `message` (parsed at least to its headers), stored as
    /// `stored`, with the raw `body` (after the header block) offered as content.
    pub fn build(message: &Message<'_>, stored: &Stored<'_>, group_id: Option<&str>) -> Payload {
        let from = first_address(message);
        Payload {
            folder: (stored.folder.len() <= MAX_FOLDER).then(|| stored.folder.to_owned()),
            uidvalidity: stored.uidvalidity,
            uid: stored.uid,
            date: message.date().map(|d| d.to_rfc3339()),
            from_email: from
                .and_then(|a| a.address())
                .map(|e| cut(&e.to_lowercase(), MAX_EMAIL)),
            from_name: from
                .and_then(|a| a.name())
                .filter(|n| !n.is_empty())
                .map(|n| cut(n, MAX_TEXT)),
            subject: message
                .subject()
                .filter(|s| !s.is_empty())
                .map(|s| cut(s, MAX_TEXT)),
            msg_id: message
                .message_id()
                .filter(|id| id.is_ascii() && id.len() <= MAX_MSG_ID)
                .map(str::to_owned),
            group_id: group_id
                .filter(|g| g.len() <= MAX_GROUP_ID)
                .map(str::to_owned),
            ..Payload::default()
        }
    }

    /// Adds the body as `content` if it is UTF-8 without NUL and the JSON then fits.
    pub fn offer_content(&mut self, message: &Message<'_>, body: &[u8]) {
        let Ok(text) = std::str::from_utf8(body) else {
            return;
        };
        if text.contains('\0') || body.len() > MAX_PLAINTEXT {
            return;
        }
        let mut with = self.clone();
        with.content = Some(text.to_owned());
        with.content_type = content_type(message);
        with.content_encoding = message
            .header_raw("Content-Transfer-Encoding")
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| v != "7bit" && v != "8bit");
        if with.to_json().len() <= MAX_PLAINTEXT {
            *self = with;
        }
    }

    /// The same payload without `content` (after a 413, RFC 8030 §7.2).
    pub fn without_content(&self) -> Payload {
        Payload {
            content: None,
            content_type: None,
            content_encoding: None,
            ..self.clone()
        }
    }

    /// Whether `content` is included.
    pub fn has_content(&self) -> bool {
        self.content.is_some()
    }

    /// The JSON text to encrypt.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The `folder` of `json` (a queued payload), for its `Topic`.
    pub fn folder_of(json: &str) -> Option<String> {
        let payload: Payload = serde_json::from_str(json).ok()?;
        payload.folder
    }

    /// `json` (a queued payload) without `content`; `None` if it is no payload.
    pub fn json_without_content(json: &str) -> Option<String> {
        let payload: Payload = serde_json::from_str(json).ok()?;
        Some(payload.without_content().to_json())
    }
}

/// The validation push (WebPush spec "Subscription Validation").
pub fn validation_json(validation: &str) -> String {
    serde_json::json!({ "validation": validation }).to_string()
}

fn first_address<'x>(message: &'x Message<'_>) -> Option<&'x Addr<'x>> {
    message.from().and_then(|a| a.first())
}

/// `Content-Type` unless it is plain text in a UTF-8-compatible charset.
fn content_type(message: &Message<'_>) -> Option<String> {
    let raw = message.header_raw("Content-Type")?.trim();
    let plain = match message.header("Content-Type") {
        Some(HeaderValue::ContentType(ct)) => {
            let is_text_plain = ct.ctype().eq_ignore_ascii_case("text")
                && ct.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain"));
            let charset_ok = ct.attribute("charset").is_none_or(|c| {
                ["utf-8", "us-ascii", "utf8"].contains(&c.to_ascii_lowercase().as_str())
            });
            is_text_plain && charset_ok
        }
        _ => false,
    };
    (!plain).then(|| cut(&unfold(raw), MAX_CONTENT_TYPE))
}

fn unfold(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` cut to at most `max` bytes at a character boundary, plus `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
