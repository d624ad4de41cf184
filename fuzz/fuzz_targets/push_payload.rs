//! The Web Push payload of a delivered message: the header section cut as the pipeline
//! cuts it (`Spooled::header_block`), classified (`parse_for_policy`, `classify`), then
//! `push::delivered::pushes_for` for a user with one validated subscription, which
//! parses the header, builds the payload (`push::webpush::payload`) and offers the
//! body as `content`.
//!
//! Properties, beyond "no panic":
//! - one push, whose payload is a JSON object with only the spec's fields, in at most
//!   `MAX_PLAINTEXT` bytes (what one RFC 8291 record holds);
//! - text fields are cut where the module says (names and subject 100 bytes, address
//!   254, folder 200, msg-id 100 and ASCII, group-id 128), plus `…` when cut;
//! - `content` is exactly the body after the header section, when it is there;
//! - the queue's readers get back what was written: `folder_of` the folder, and
//!   `json_without_content` a payload without `content` that is no longer.
//!
//! Input: a whole message (in memory, as coid holds one up to the spool threshold).

#![no_main]

use std::sync::OnceLock;

use coid::classify::classify;
use coid::pipeline::{MAX_HEADER, parse_for_policy};
use coid::policy::Target;
use coid::push::delivered::{Delivered, DeliveredMessage, pushes_for};
use coid::push::webpush::MAX_PLAINTEXT;
use coid::push::webpush::payload::Payload;
use coid::spool::Spooled;
use coid::store::unix_now_ms;
use coid_fuzz::{SUBSCRIPTION, Setup, USER, now};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(Setup::new)
}

const FIELDS: [&str; 12] = [
    "folder",
    "uidvalidity",
    "uid",
    "date",
    "from-email",
    "from-name",
    "subject",
    "msg-id",
    "group-id",
    "content-type",
    "content-encoding",
    "content",
];

/// At most `max` bytes, or cut to at most `max` and ending in `…`.
fn within(json: &Value, field: &str, max: usize) {
    if let Some(text) = json.get(field).and_then(Value::as_str) {
        let uncut = text.strip_suffix('…').unwrap_or(text);
        assert!(uncut.len() <= max, "{field} has {} bytes", text.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let body = Spooled::Memory(data.to_vec());
    let header = now(body.header_block(MAX_HEADER)).expect("in memory");
    let parsed = parse_for_policy(&header);
    let classification = classify(&parsed);
    drop(parsed);
    let target = if classification.is_chat {
        Target {
            folder: Some("COI/Chats".into()),
            flags: vec!["$Chat".into()],
            create: true,
        }
    } else {
        Target::inbox()
    };
    let delivered = Delivered::stored(USER.into(), USER.into(), &target, '.');
    let message = DeliveredMessage::new(
        header.clone(),
        body.as_bytes(),
        classification.group_id.clone(),
    )
    .with_class(classification.class);
    let now_ms = unix_now_ms();
    let pushes = pushes_for(
        &setup().store,
        &message,
        std::slice::from_ref(&delivered),
        now_ms,
        now_ms + 60_000,
    )
    .expect("store in memory");
    assert_eq!(pushes.len(), 1, "one push for one validated subscription");
    let push = &pushes[0];
    assert_eq!(push.target, SUBSCRIPTION);
    let json_text = &push.payload;
    assert!(
        json_text.len() <= MAX_PLAINTEXT,
        "payload of {} bytes: {json_text}",
        json_text.len()
    );
    let json: Value = serde_json::from_str(json_text).expect("payload is JSON");
    let object = json.as_object().expect("payload is an object");
    for key in object.keys() {
        assert!(FIELDS.contains(&key.as_str()), "unknown field {key}");
    }
    within(&json, "from-name", 100);
    within(&json, "subject", 100);
    within(&json, "from-email", 254);
    within(&json, "content-type", 200);
    if let Some(id) = json.get("msg-id").and_then(Value::as_str) {
        assert!(id.is_ascii() && id.len() <= 100, "msg-id {id:?}");
    }
    if let Some(id) = json.get("group-id").and_then(Value::as_str) {
        assert!(id.len() <= 128, "group-id {id:?}");
    }
    assert_eq!(push.with_content, json.get("content").is_some());
    if let Some(content) = json.get("content").and_then(Value::as_str) {
        let rest = data.get(header.len()..).unwrap_or_default();
        assert_eq!(content.as_bytes(), rest, "content is not the body");
    }
    assert_eq!(
        Payload::folder_of(json_text).as_deref(),
        Some(delivered.folder.as_str())
    );
    let without = Payload::json_without_content(json_text).expect("reads back");
    assert!(without.len() <= json_text.len());
    let without: Value = serde_json::from_str(&without).expect("JSON");
    assert!(without.get("content").is_none());
    assert_eq!(without.get("subject"), json.get("subject"));
});
