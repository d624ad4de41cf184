//! Mail at full speed through the real stack, with push on or off: fresh Dovecot (the
//! shipped `conf.d/dovecot/` setup plus the METADATA snippet, pointed at coid's dict
//! socket), fresh coid (COI on for everyone, message filter `none`, so chats stay in
//! the INBOX with `$Chat`; `[push] enabled` on or off, `allow_private_endpoints`),
//! fresh Postfix delivering to coid's unix socket over 8 LMTP sessions. With push on,
//! alice first subscribes two devices over IMAP SETMETADATA (msgtype `chat` and
//! `all`, endpoints of the bench's receiver) and validates each with the token from
//! its validation push, as a COI client does. Then the e2e bench's 4 SMTP clients
//! submit N chats of about 3 KB (body small enough to be pushed as `content`).
//!
//! A run counts only if Postfix logged exactly N `status=sent`, its queue is empty,
//! the INBOX holds N messages, coid logged N deliveries, and (push on) each message
//! was pushed exactly once to each device, decrypting to its own `msg-id`, with
//! nothing else (push off: nothing at all).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::coid_log;
use crate::common::coid::CoidOpts;
use crate::common::metadata::{set, set_ok, socket_dir};
use crate::common::push_flow::{subscription, subscription_json};
use crate::common::stack::{Stack, dovecot_opts, with_coid_metadata};
use crate::common::{Dovecot, LmtpTarget, MessageBuilder, tail_file};
use crate::delivery::{
    check_sent, coid_opts, filler, inbox_count, inject, poll_sent, postfix_opts, settle_disk,
};
use crate::postfix_log::LogTail;
use crate::receiver::{Endpoint, Receiver, now_us};
use crate::store::postfix_transport;

/// LMTP sessions Postfix opens to coid (as the e2e bench's busy case).
pub const SESSIONS: usize = 8;
/// Bytes per chat message.
pub const CHAT_SIZE: usize = 3 * 1024;
const MAIL_FROM: &str = "bob@example.net";
/// alice's devices: (msgtype); every chat pushes to both.
const DEVICES: [&str; 2] = ["chat", "all"];
const PUSH_WAIT: Duration = Duration::from_secs(60);

/// What one valid run measured.
pub struct Outcome {
    pub push: bool,
    pub messages: usize,
    /// First submission → last `status=sent`.
    pub elapsed: Duration,
    /// First submission → last submission accepted.
    pub injected: Duration,
    /// First submission → last push received (push on).
    pub drained: Option<Duration>,
    /// coid's `delivered` → push received, ms, one per push.
    pub latencies: Vec<f64>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// A chat from bob to alice, about [`CHAT_SIZE`] bytes; returns it and its bare
/// Message-ID.
pub fn chat(tag: &str, i: usize, filler: &[u8]) -> (Vec<u8>, String) {
    let id = format!("chat$bench.{tag}.{i}@example.net");
    let mut message = MessageBuilder::chat()
        .from("Bob <bob@example.net>")
        .subject(&format!("coid push benchmark {i}"))
        .message_id(&format!("<{id}>"))
        .body("")
        .build();
    message.extend_from_slice(filler);
    (message, id)
}

/// The stack of one run (Postfix delivering to coid's unix socket), and the directory
/// of coid's dict socket, which outlives it.
fn start_stack(push: bool) -> (Stack, TempDir) {
    settle_disk();
    let (socket_dir, socket) = socket_dir();
    let dovecot = Dovecot::start(with_coid_metadata(dovecot_opts("/"), &socket));
    let coid_tweak = |dovecot: &Dovecot, opts: &mut CoidOpts| {
        *opts = coid_opts(dovecot);
        opts.dict_socket = Some(socket);
        opts.coi_enabled = true;
        opts.message_filter = "none".into();
        opts.extra_toml = format!("[push]\nenabled = {push}\nallow_private_endpoints = true\n");
    };
    let stack = Stack::start_full(dovecot, coid_tweak, |coid, postfix| {
        let next_hop = LmtpTarget::Unix(coid.socket_path());
        *postfix = postfix_opts(&postfix_transport(&next_hop), SESSIONS);
    });
    (stack, socket_dir)
}

/// One run; `tag` names it (Message-IDs, endpoints). Panics if it is not valid.
pub fn run(receiver: &Receiver, push: bool, messages: usize, tag: &str) -> Outcome {
    let (stack, _socket_dir) = start_stack(push);
    assert_eq!(receiver.count(), 0, "{tag}: the receiver starts empty");
    let devices = if push { DEVICES.len() } else { 0 };
    let endpoints = receiver.endpoints(&format!("{tag}-"), devices);
    subscribe(&stack.dovecot, receiver, &endpoints);
    assert_eq!(receiver.take().len(), devices, "{tag}: validation pushes");

    let mut log = LogTail::from_end(stack.postfix.log_path());
    let (began, began_us) = (Instant::now(), now_us());
    let injection = inject_chats(stack.postfix.smtp_port(), tag, messages);
    while poll_sent(&mut log, &stack.postfix, began, messages, tag) < messages {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = began.elapsed();
    let injected = injection.join().expect("every submission was accepted");
    let expected = messages * devices;
    let arrived = receiver.wait_for(expected, PUSH_WAIT);
    let coid_tail = || tail_file(&stack.coid.log_path(), 20);
    assert!(
        arrived,
        "{tag}: {} of {expected} pushes\n{}",
        receiver.count(),
        coid_tail()
    );
    // Late duplicates would show up here.
    std::thread::sleep(Duration::from_millis(500));

    let delivered = check_pushed_run(&stack, &mut log, messages, tag);
    let (latencies, last_us) = match_pushes(receiver, &endpoints, &delivered, tag);
    let drained = Duration::from_micros(u64::try_from(last_us - began_us).unwrap_or(0));
    Outcome {
        push,
        messages,
        elapsed,
        injected,
        drained: push.then_some(drained),
        latencies,
    }
}

/// Exactly `messages` deliveries: Postfix logged that many sent and nothing else,
/// its queue is empty, the INBOX holds them, coid logged each once and no push
/// trouble. Returns coid's delivery time of each (unix µs).
fn check_pushed_run(
    stack: &Stack,
    log: &mut LogTail,
    messages: usize,
    tag: &str,
) -> HashMap<String, i64> {
    check_sent(tag, messages, &stack.postfix, log);
    assert_eq!(
        inbox_count(&stack.dovecot),
        messages,
        "{tag}: the INBOX does not hold exactly the delivered messages"
    );
    let coid_log = stack.coid.log();
    let delivered = coid_log::delivered(&coid_log);
    assert_eq!(delivered.len(), messages, "{tag}: coid's `delivered` lines");
    for bad in ["push failed", "push dropped", "queue full", "cannot queue"] {
        assert!(!coid_log.contains(bad), "{tag}: coid logged {bad:?}");
    }
    delivered
}

/// alice subscribes each endpoint (msgtype from [`DEVICES`]) over IMAP and validates
/// it with the token its validation push carries.
fn subscribe(dovecot: &Dovecot, receiver: &Receiver, endpoints: &[Endpoint]) {
    if endpoints.is_empty() {
        return;
    }
    let mut imap = dovecot.imap("alice");
    for (n, (endpoint, msgtype)) in endpoints.iter().zip(DEVICES).enumerate() {
        let id = format!("bench-{}", endpoint.name);
        let json = subscription_json(&endpoint.keys(), msgtype);
        let (status, text) = set(&mut imap, "", &[(&subscription(&id), Some(&json))]);
        assert_eq!(status, "OK", "subscribe {id}: {text}");
        assert!(
            receiver.wait_for(n + 1, PUSH_WAIT),
            "no validation push for {id}"
        );
        let seen = receiver.last().expect("a push");
        assert!(
            seen.validation && seen.endpoint == endpoint.name,
            "{seen:?}"
        );
        let plain = endpoint
            .decrypt(&seen.body)
            .expect("validation push decrypts");
        let json: serde_json::Value = serde_json::from_slice(&plain).expect("validation JSON");
        let token = json["validation"].as_str().expect("validation token");
        let validate = format!("{}/validate", subscription(&id));
        set_ok(&mut imap, "", &[(&validate, Some(token))]);
    }
}

/// The e2e bench's SMTP clients submit `messages` chats; the handle returns how long
/// that took.
fn inject_chats(port: u16, tag: &str, messages: usize) -> std::thread::JoinHandle<Duration> {
    let tag = tag.to_owned();
    std::thread::spawn(move || {
        let filler = filler(CHAT_SIZE);
        inject(port, MAIL_FROM, messages, |i| chat(&tag, i, &filler).0)
    })
}

/// Each push decrypted and matched to its message's `delivered` time: exactly one per
/// (device, message) and nothing else. Returns the latencies (ms) and the last
/// arrival (unix µs).
fn match_pushes(
    receiver: &Receiver,
    endpoints: &[Endpoint],
    delivered: &HashMap<String, i64>,
    tag: &str,
) -> (Vec<f64>, i64) {
    let arrivals = receiver.take();
    assert_eq!(
        arrivals.len(),
        delivered.len() * endpoints.len(),
        "{tag}: pushes"
    );
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut latencies = Vec::with_capacity(arrivals.len());
    let mut last = 0;
    for arrival in &arrivals {
        assert!(
            arrival.headers_ok && !arrival.validation,
            "{tag}: {arrival:?}"
        );
        let endpoint = endpoints
            .iter()
            .find(|e| e.name == arrival.endpoint)
            .unwrap_or_else(|| panic!("{tag}: push to unknown {}", arrival.endpoint));
        let plain = endpoint.decrypt(&arrival.body).expect("the push decrypts");
        let json: serde_json::Value = serde_json::from_slice(&plain).expect("payload JSON");
        let msg_id = json["msg-id"].as_str().expect("msg-id").to_owned();
        let at = *delivered
            .get(&msg_id)
            .unwrap_or_else(|| panic!("{tag}: push for {msg_id}, which coid did not deliver"));
        latencies.push((arrival.at_us - at) as f64 / 1e3);
        last = last.max(arrival.at_us);
        *seen.entry((endpoint.name.clone(), msg_id)).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "{tag}: pushed more than once: {twice:?}");
    (latencies, last)
}
