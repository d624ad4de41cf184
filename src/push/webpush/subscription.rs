//! WebPush subscriptions as clients store them with
//! `SETMETADATA "" (/private/vendor/vendor.dovecot/webpush/subscriptions/<id> {json})`.
//!
//! Accepted (coi-spec.md §3.3, §3.12): the spec's id form (`[0-9A-Za-z_-]`, 10–36) and
//! Dovecot's looser one (printable ASCII without `/`, up to 256); msgtype in both
//! vocabularies, `chat|mail|all` (spec) and `chat|email|any` (Dovecot), kept as given;
//! `client`/`device` up to 128 bytes, `endpoint` up to 1024 (UnifiedPush allows 1000);
//! `p256dh` a P-256 point and `auth` 16 bytes, base64url with or without padding.
//! Unknown keys are ignored and not saved (spec: SHOULD). The listing form adds
//! `created` (RFC 3339) and `validated`, in Dovecot's key order.

use serde::{Deserialize, Serialize};
use url::Url;

use super::decode_base64_lenient;

/// The longest subscription id accepted.
pub const MAX_ID_LEN: usize = 256;
/// The longest `client` or `device` value, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// The longest endpoint URL, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 1024;
/// The longest SETMETADATA value taken for a subscription, in bytes.
pub const MAX_JSON_LEN: usize = 8 * 1024;

/// Which messages a subscription wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// Messages with `$Chat`.
    Chat,
    /// Messages without `$Chat`.
    Mail,
    /// Both.
    All,
}

impl MsgType {
    /// Either vocabulary, case-sensitive (the spec recommends it).
    pub fn parse(value: &str) -> Option<MsgType> {
        match value {
            "chat" => Some(MsgType::Chat),
            "mail" | "email" => Some(MsgType::Mail),
            "all" | "any" => Some(MsgType::All),
            _ => None,
        }
    }

    /// Whether a delivered message with (or without) `$Chat` is wanted.
    pub fn wants(self, is_chat: bool) -> bool {
        match self {
            MsgType::Chat => is_chat,
            MsgType::Mail => !is_chat,
            MsgType::All => true,
        }
    }
}

/// Why a subscription was refused; the text reaches the IMAP client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Bad id.
    #[error("invalid subscription id")]
    Id,
    /// Over [`MAX_JSON_LEN`].
    #[error("subscription too large")]
    TooLarge,
    /// Not a JSON object of the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A string over its limit.
    #[error("invalid subscription: {0} is too long")]
    TooLong(&'static str),
    /// msgtype outside both vocabularies.
    #[error("invalid subscription: unknown msgtype {0:?}")]
    MsgType(String),
    /// The endpoint is not an absolute http(s) URL.
    #[error("invalid subscription: bad endpoint: {0}")]
    Endpoint(String),
    /// A key that does not decode or is not a P-256 point / 16-byte secret.
    #[error("invalid subscription: bad key {0}")]
    Key(&'static str),
}

/// A validated subscription request, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's id for it.
    pub id: String,
    /// Client name.
    pub client: String,
    /// Device name.
    pub device: String,
    /// The msgtype as given (either vocabulary).
    pub msgtype: String,
    /// Push resource URL, parsed.
    pub endpoint: Url,
    /// The endpoint as given (listed back unchanged).
    pub endpoint_text: String,
    /// `p256dh` as given.
    pub p256dh: String,
    /// `auth` as given.
    pub auth: String,
}

#[derive(Deserialize)]
struct Wire {
    client: String,
    device: String,
    msgtype: String,
    resource: WireResource,
}

#[derive(Deserialize)]
struct WireResource {
    endpoint: String,
    keys: WireKeys,
}

#[derive(Deserialize)]
struct WireKeys {
    p256dh: String,
    auth: String,
}

/// Whether `id` is an acceptable subscription id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Validates a SETMETADATA value for subscription `id`.
///
/// # Errors
/// The first problem found, worded for the client.
pub fn parse_request(id: &str, value: &str) -> Result<Request, Invalid> {
    if !valid_id(id) {
        return Err(Invalid::Id);
    }
    if value.len() > MAX_JSON_LEN {
        return Err(Invalid::TooLarge);
    }
    let wire: Wire = serde_json::from_str(value).map_err(|e| Invalid::Json(e.to_string()))?;
    for (name, text, max) in [
        ("client", &wire.client, MAX_NAME_LEN),
        ("device", &wire.device, MAX_NAME_LEN),
        ("endpoint", &wire.resource.endpoint, MAX_ENDPOINT_LEN),
    ] {
        if text.len() > max {
            return Err(Invalid::TooLong(name));
        }
    }
    if MsgType::parse(&wire.msgtype).is_none() {
        return Err(Invalid::MsgType(wire.msgtype));
    }
    let endpoint = parse_endpoint(&wire.resource.endpoint)?;
    let keys = &wire.resource.keys;
    decode_p256dh(&keys.p256dh).ok_or(Invalid::Key("p256dh"))?;
    decode_auth(&keys.auth).ok_or(Invalid::Key("auth"))?;
    Ok(Request {
        id: id.to_owned(),
        client: wire.client,
        device: wire.device,
        msgtype: wire.msgtype,
        endpoint,
        endpoint_text: wire.resource.endpoint.clone(),
        p256dh: keys.p256dh.clone(),
        auth: keys.auth.clone(),
    })
}

fn parse_endpoint(text: &str) -> Result<Url, Invalid> {
    let url = Url::parse(text).map_err(|e| Invalid::Endpoint(e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(Invalid::Endpoint("not an http(s) URL with a host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::Endpoint("credentials in the URL".into()));
    }
    Ok(url)
}

/// The user agent's P-256 public key (RFC 8291 §3.2).
pub fn decode_p256dh(text: &str) -> Option<p256::PublicKey> {
    let bytes = decode_base64_lenient(text)?;
    p256::PublicKey::from_sec1_bytes(&bytes).ok()
}

/// The user agent's 16-byte authentication secret (RFC 8291 §3.2).
pub fn decode_auth(text: &str) -> Option<[u8; 16]> {
    decode_base64_lenient(text)?.try_into().ok()
}

impl Request {
    /// The parsed msgtype (validated in [`parse_request`]).
    pub fn msgtype(&self) -> MsgType {
        MsgType::parse(&self.msgtype).unwrap_or(MsgType::Chat)
    }

    /// The listing form (spec "Listing Subscriptions"): `created` and `validated`
    /// first, then the client's fields, in the order Dovecot lists them.
    pub fn listing_json(&self, created_rfc3339: &str, validated: bool) -> String {
        let listing = Listing {
            created: created_rfc3339,
            validated,
            client: &self.client,
            device: &self.device,
            msgtype: &self.msgtype,
            resource: ListingResource {
                endpoint: &self.endpoint_text,
                keys: ListingKeys {
                    p256dh: &self.p256dh,
                    auth: &self.auth,
                },
            },
        };
        serde_json::to_string(&listing).unwrap_or_default()
    }
}

/// A timestamp (unix seconds) as the listing writes `created`: RFC 3339 in UTC with
/// `+00:00`, as Dovecot writes it (`2019-10-16T16:14:17+00:00`).
pub fn rfc3339(unix_secs: i64) -> String {
    let utc = mail_parser::DateTime::from_timestamp(unix_secs).to_rfc3339();
    match utc.strip_suffix('Z') {
        Some(utc) => format!("{utc}+00:00"),
        None => utc,
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    created: &'a str,
    validated: bool,
    client: &'a str,
    device: &'a str,
    msgtype: &'a str,
    resource: ListingResource<'a>,
}

#[derive(Serialize)]
struct ListingResource<'a> {
    endpoint: &'a str,
    keys: ListingKeys<'a>,
}

#[derive(Serialize)]
struct ListingKeys<'a> {
    p256dh: &'a str,
    auth: &'a str,
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
