//! The whole Web Push picture for a test: Postfix → coid → Dovecot with coid's shipped
//! METADATA snippet (dict proxy, `COI WEBPUSH` capability), coid pushing to the local
//! push receiver ([`super::push_receiver`]) with `allow_private_endpoints`, and the COI
//! client's side of the flow over IMAP METADATA: subscribe, read the validation push
//! the receiver decrypted, validate, list.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::coid::{Coid, CoidOpts};
use super::message::chat_message_id;
use super::metadata::{get, metadata, set, set_coi, set_ok, socket_dir};
use super::push_receiver::{Answer, EndpointKeys, PushReceiver};
use super::stack::{Stack, dovecot_opts, with_coid_metadata};
use super::{Dovecot, Imap, MessageBuilder, PostfixOpts, wait_until};

/// The WebPush METADATA parent.
pub const WEBPUSH: &str = "/private/vendor/vendor.dovecot/webpush";
/// The VAPID key entry.
pub const VAPID: &str = "/private/vendor/vendor.dovecot/webpush/vapid";

/// How long a push may take to show up at the receiver.
pub const PUSH_WAIT: Duration = Duration::from_secs(15);

/// The subscription entry of `id`.
pub fn subscription(id: &str) -> String {
    format!("{WEBPUSH}/subscriptions/{id}")
}

/// Stack and receiver.
pub struct Flow {
    pub stack: Stack,
    pub receiver: PushReceiver,
    /// More coid nodes sharing the stack coid's PostgreSQL state
    /// ([`Flow::start_nodes`]); Postfix delivers to the first of them.
    pub others: Vec<Coid>,
    _dir: TempDir,
}

impl Flow {
    /// Starts the receiver with `endpoints`, then the stack; `push_toml` is added to
    /// coid's `[push]` section (after `allow_private_endpoints = true` and 2 s
    /// backoffs).
    pub fn start(endpoints: &[(&str, Vec<Answer>)], push_toml: &str) -> Flow {
        let receiver = PushReceiver::start(endpoints);
        let (dir, socket) = socket_dir();
        let dovecot = with_coid_metadata(dovecot_opts("/"), &socket);
        let stack = Stack::start(dovecot, |_, opts| {
            opts.dict_socket = Some(socket.clone());
            opts.extra_toml = push_section(push_toml);
        });
        Flow {
            stack,
            receiver,
            others: Vec::new(),
            _dir: dir,
        }
    }

    /// Several coid nodes on one PostgreSQL database (`postgres_url`), as on a host
    /// with several Dovecot backends: the stack's coid serves Dovecot's METADATA (its
    /// dict socket), `others` more nodes run beside it with their own sockets, and
    /// Postfix delivers to the first of those (to the stack's coid if `others` is 0).
    pub fn start_nodes(
        endpoints: &[(&str, Vec<Answer>)],
        push_toml: &str,
        postgres_url: &str,
        others: usize,
    ) -> Flow {
        let receiver = PushReceiver::start(endpoints);
        let (dir, socket) = socket_dir();
        let dovecot = Dovecot::start(with_coid_metadata(dovecot_opts("/"), &socket));
        let node = |dict_socket: Option<PathBuf>| {
            let mut opts = CoidOpts::dovecot(&dovecot.lmtp_socket().display().to_string());
            opts.separator = dovecot.separator().to_owned();
            opts.dict_socket = dict_socket;
            opts.extra_toml = push_section(push_toml);
            opts.postgres_url = Some(postgres_url.to_owned());
            opts
        };
        let others: Vec<Coid> = (0..others).map(|_| Coid::start(node(None))).collect();
        let first = node(Some(socket.clone()));
        let stack = Stack::start_full(
            dovecot,
            |_, opts| *opts = first,
            |_, postfix| {
                if let Some(entry) = others.first() {
                    *postfix = PostfixOpts::new(&entry.transport_inet());
                }
            },
        );
        Flow {
            stack,
            receiver,
            others,
            _dir: dir,
        }
    }

    /// alice over IMAP with COI on and `message-filter` active.
    pub fn alice(&self) -> Imap {
        let mut imap = self.stack.dovecot.imap("alice");
        set_coi(&mut imap, "active");
        imap
    }

    /// SETMETADATA of a subscription to endpoint `name`; (status, tagged text).
    pub fn subscribe(
        &self,
        imap: &mut Imap,
        id: &str,
        name: &str,
        msgtype: &str,
    ) -> (String, String) {
        let json = subscription_json(&self.receiver.keys(name), msgtype);
        set(imap, "", &[(&subscription(id), Some(&json))])
    }

    /// The validation token the receiver decrypted for endpoint `name` (the latest).
    pub fn validation_token(&self, name: &str) -> String {
        let found = wait_until(PUSH_WAIT, || {
            self.receiver
                .requests()
                .into_iter()
                .rev()
                .find(|r| r["endpoint"] == name && r["validation"].is_string())
        })
        .unwrap_or_else(|| {
            panic!(
                "no validation push to {name}: {:#?}",
                self.receiver.requests()
            )
        });
        assert_eq!(found["vapid_ok"], true, "{found:#}");
        let plain: Value = serde_json::from_str(found["plaintext"].as_str().expect("decrypted"))
            .expect("validation JSON");
        plain["validation"].as_str().expect("token").to_owned()
    }

    /// Subscribes `id` to endpoint `name` and validates it with the pushed token.
    pub fn subscribe_validated(&self, imap: &mut Imap, id: &str, name: &str, msgtype: &str) {
        let (status, text) = self.subscribe(imap, id, name, msgtype);
        assert_eq!(status, "OK", "subscribe {id}: {text}");
        let token = self.validation_token(name);
        let validate = format!("{}/validate", subscription(id));
        set_ok(imap, "", &[(&validate, Some(&token))]);
    }

    /// The listing JSON of `id`, or `None`.
    pub fn listing(&self, imap: &mut Imap, id: &str) -> Option<Value> {
        let entries = get(imap, "", &[&subscription(id)]);
        let value = entries.first()?.1.clone()?;
        Some(serde_json::from_str(&value).expect("listing JSON"))
    }

    /// Every subscription listed by DEPTH 1.
    pub fn list(&self, imap: &mut Imap) -> Vec<(String, Value)> {
        let command = format!("GETMETADATA (DEPTH 1) \"\" ({WEBPUSH}/subscriptions)");
        let (status, text, entries) = metadata(imap, &command);
        assert_eq!(status, "OK", "{text}");
        entries
            .into_iter()
            .filter_map(|(name, value)| {
                let value = serde_json::from_str(&value?).expect("listing JSON");
                Some((name, value))
            })
            .collect()
    }

    /// Sends a chat from bob to alice through Postfix; waits until it is stored;
    /// returns its Message-ID (with brackets).
    pub fn send_chat(&self, body: &str) -> String {
        let chat = MessageBuilder::chat()
            .from("Bob <bob@example.net>")
            .subject("push me")
            .message_id(&chat_message_id())
            .body(body);
        self.send(&chat, "COI/Chats")
    }

    /// Sends `message` to alice and waits until it is stored in `mailbox`.
    pub fn send(&self, message: &MessageBuilder, mailbox: &str) -> String {
        let stored = self
            .stack
            .send_and_wait("bob@example.net", "alice@example.org", message);
        let id = message.id();
        assert_eq!(stored.mailbox, mailbox, "{id}");
        id
    }

    /// The decrypted message pushes (not validations) seen so far, as JSON.
    pub fn message_pushes(&self, name: &str) -> Vec<Value> {
        self.receiver
            .requests()
            .into_iter()
            .filter(|r| r["endpoint"] == name && r["validation"].is_null())
            .map(|r| {
                assert_eq!(r["vapid_ok"], true, "{r:#}");
                let plain = r["plaintext"]
                    .as_str()
                    .unwrap_or_else(|| panic!("not decrypted: {r:#}"));
                let mut json: Value = serde_json::from_str(plain).expect("payload JSON");
                json["_status"] = r["status"].clone();
                json["_received"] = r["received"].clone();
                json
            })
            .collect()
    }

    /// Waits for at least `n` message pushes to `name`.
    pub fn wait_message_pushes(&self, name: &str, n: usize) -> Vec<Value> {
        wait_until(PUSH_WAIT, || {
            let seen = self.message_pushes(name);
            (seen.len() >= n).then_some(seen)
        })
        .unwrap_or_else(|| {
            panic!(
                "{name}: fewer than {n} message pushes: {:#?}\n{}",
                self.receiver.requests(),
                super::tail_file(&self.stack.coid.log_path(), 40)
            )
        })
    }
}

/// coid's `[push]` for the flow: private endpoints (the local receiver), 2 s backoffs,
/// and `push_toml`.
fn push_section(push_toml: &str) -> String {
    format!("[push]\nallow_private_endpoints = true\nbackoff_max_secs = 2\n{push_toml}\n")
}

/// A subscription as a COI client sends it.
pub fn subscription_json(keys: &EndpointKeys, msgtype: &str) -> String {
    serde_json::json!({
        "client": "coid tests",
        "device": "test phone",
        "msgtype": msgtype,
        "resource": {
            "endpoint": keys.url,
            "keys": { "p256dh": keys.p256dh, "auth": keys.auth }
        }
    })
    .to_string()
}

/// A message's Message-ID as the payload's `msg-id` carries it (no brackets).
pub fn bare(id: &str) -> &str {
    id.trim_start_matches('<').trim_end_matches('>')
}
