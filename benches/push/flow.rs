//! Mail at full speed through the real stack, with Web Push on, Delta Chat push on, or
//! both off ([`Mode`]): fresh Dovecot (the shipped `conf.d/dovecot/` setup plus the
//! METADATA snippet, pointed at coid's dict socket), fresh coid (COI on for everyone,
//! message filter `none`, so chats stay in the INBOX with `$Chat`; `[push] enabled`
//! and `[deltachat] push` by the mode, `allow_private_endpoints`, `notify_url` the
//! receiver's notification proxy stand-in), fresh Postfix delivering to coid's unix
//! socket over 8 LMTP sessions. In every mode alice first sets two Delta Chat device
//! tokens over IMAP, `SETMETADATA "INBOX" (/private/devicetoken "openpgp:...")` as
//! core 2.58 and later sends it (stored either way; only Delta Chat push on sends
//! them). With Web Push on, she also subscribes two devices over IMAP SETMETADATA
//! (msgtype `chat` and `all`, endpoints of the bench's receiver) and validates each
//! with the token from its validation push, as a COI client does. Then the e2e bench's
//! 4 SMTP clients submit N chats of about 3 KB (body small enough to be pushed as
//! `content`).
//!
//! A run counts only if Postfix logged exactly N `status=sent`, its queue is empty,
//! the INBOX holds N messages, coid logged N deliveries and no push trouble, and:
//! with Web Push on, each message was pushed exactly once to each device, decrypting
//! to its own `msg-id`, with nothing else; with Delta Chat push on, each token was
//! POSTed exactly N times as the body and nothing else, coid logged 2N
//! `deltachat notification delivered` lines (N per token id) and never a whole token;
//! off: nothing at all reached the receiver.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::coid_log;
use crate::common::coid::CoidOpts;
use crate::common::metadata::{metadata, set, set_ok, socket_dir};
use crate::common::metrics::{sample, scrape};
use crate::common::push_flow::{subscription, subscription_json};
use crate::common::stack::{Stack, dovecot_opts, with_coid_metadata};
use crate::common::{Dovecot, LmtpTarget, MessageBuilder, tail_file};
use crate::delivery::{
    check_sent, coid_opts, filler, inbox_count, inject, poll_sent, postfix_opts, settle_disk,
};
use crate::postfix_log::LogTail;
use crate::receiver::{Endpoint, Receiver, device_tokens, notifications_per_token, now_us};
use crate::store::postfix_transport;

/// LMTP sessions Postfix opens to coid (as the e2e bench's busy case).
pub const SESSIONS: usize = 8;
/// Bytes per chat message.
pub const CHAT_SIZE: usize = 3 * 1024;
const MAIL_FROM: &str = "bob@example.net";
/// alice's Web Push devices: (msgtype); every chat pushes to both.
const DEVICES: [&str; 2] = ["chat", "all"];
/// alice's Delta Chat devices (tokens); every message notifies both.
pub const TOKENS: usize = 2;
const PUSH_WAIT: Duration = Duration::from_secs(60);

/// A measured run of the mail rounds: a kind of push on, or the control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Mail with this kind of push on.
    Push(Mode),
    /// Push off once more, measured as a kind of push is: the same code as the
    /// push-off runs either side of it, so its ratio to them is what the rounds' noise
    /// alone gives, to read the on/off ratios against.
    Control,
}

impl Slot {
    /// The mode the stack runs in.
    pub fn mode(self) -> Mode {
        match self {
            Slot::Push(mode) => mode,
            Slot::Control => Mode::Off,
        }
    }

    /// A short name for run tags.
    pub fn tag(self) -> &'static str {
        match self {
            Slot::Push(Mode::WebPush) => "wp",
            Slot::Push(Mode::DeltaChat) => "dc",
            Slot::Push(Mode::Off) => "off",
            Slot::Control => "control",
        }
    }
}

/// The mail runs of the bench, in the order they ran: push off, then by turns one
/// measured run and push off again. Each measured run is set against the mean of the
/// push-off runs either side of it (an A-B-A design): a host that speeds up or slows
/// down over the sequence, as this one does (its first runs are the fastest), moves
/// the run and its baseline alike, where a baseline run earlier or later in the
/// round would not.
pub struct MailRounds {
    /// The push-off runs: `offs[i]` and `offs[i + 1]` ran either side of
    /// `measured[i]`.
    pub offs: Vec<Outcome>,
    /// The measured runs in the order they ran, round after round.
    pub measured: Vec<(Slot, Outcome)>,
}

impl MailRounds {
    /// The runs of `slot` in the order they ran (one per round), each with its ratio
    /// to the mean throughput of the push-off runs either side of it.
    pub fn of(&self, slot: Slot) -> Vec<(&Outcome, f64)> {
        self.measured
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| *s == slot)
            .map(|(i, (_, run))| {
                let baseline = (self.offs[i].rate() + self.offs[i + 1].rate()) / 2.0;
                (run, run.rate() / baseline)
            })
            .collect()
    }
}

/// What a stack run pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `[push] enabled = false`, `[deltachat] push = false`.
    Off,
    /// `[push] enabled = true`, `[deltachat] push = false`.
    WebPush,
    /// `[push] enabled = false`, `[deltachat] push = true`.
    DeltaChat,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::WebPush => "web push",
            Mode::DeltaChat => "delta chat",
        }
    }

    /// coid's `[push]` and `[deltachat]` for this mode.
    fn toml(self, notify_url: &str) -> String {
        format!(
            "[push]\nenabled = {}\nallow_private_endpoints = true\n\
             [deltachat]\npush = {}\nnotify_url = \"{notify_url}\"\n",
            self == Mode::WebPush,
            self == Mode::DeltaChat,
        )
    }
}

/// What one valid run measured.
pub struct Outcome {
    pub push: Mode,
    pub messages: usize,
    /// First submission → last `status=sent`.
    pub elapsed: Duration,
    /// First submission → last submission accepted.
    pub injected: Duration,
    /// First submission → last push or notification received (push on).
    pub drained: Option<Duration>,
    /// CPU coid used from the first submission until every push or notification
    /// arrived.
    pub coid_cpu: Duration,
    /// CPU the stand-in push service used in the same time (its thread in this
    /// process): on the same CPUs as the mail here, on other hosts in production.
    pub receiver_cpu: Duration,
    /// The whole machine's CPU from the first submission to the last `status=sent`
    /// (every process: Postfix, Dovecot, coid, this bench's clients and receiver).
    pub host: crate::cpu::Host,
    /// coid's CPU in the same time as `coid_cpu`, by thread name (living threads).
    pub coid_threads: std::collections::BTreeMap<String, Duration>,
    /// coid's `delivered` → push or notification received, ms, one per push or
    /// notification (Delta Chat: matched by rank, see [`match_notifications`]).
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
fn start_stack(push: Mode, notify_url: &str, postgres_url: Option<&str>) -> (Stack, TempDir) {
    settle_disk();
    let (socket_dir, socket) = socket_dir();
    let dovecot = Dovecot::start(with_coid_metadata(dovecot_opts("/"), &socket));
    let coid_tweak = |dovecot: &Dovecot, opts: &mut CoidOpts| {
        *opts = coid_opts(dovecot);
        opts.dict_socket = Some(socket);
        opts.coi_enabled = true;
        opts.message_filter = "none".into();
        opts.extra_toml = push.toml(notify_url);
        opts.postgres_url = postgres_url.map(str::to_owned);
    };
    let stack = Stack::start_full(dovecot, coid_tweak, |coid, postfix| {
        let next_hop = LmtpTarget::Unix(coid.socket_path());
        *postfix = postfix_opts(&postfix_transport(&next_hop), SESSIONS);
    });
    (stack, socket_dir)
}

/// One run; `tag` names it (Message-IDs, endpoints). Panics if it is not valid.
pub fn run(receiver: &Receiver, push: Mode, messages: usize, tag: &str) -> Outcome {
    run_on(receiver, push, messages, tag, None)
}

/// [`run`] with coid's state in the PostgreSQL database `postgres_url` (`None`: the
/// SQLite file in coid's state directory).
pub fn run_on(
    receiver: &Receiver,
    push: Mode,
    messages: usize,
    tag: &str,
    postgres_url: Option<&str>,
) -> Outcome {
    let (stack, _socket_dir) = start_stack(push, &receiver.notify_url(), postgres_url);
    assert_eq!(receiver.count(), 0, "{tag}: the receiver starts empty");
    let devices = if push == Mode::WebPush {
        DEVICES.len()
    } else {
        0
    };
    let endpoints = receiver.endpoints(&format!("{tag}-"), devices);
    subscribe(&stack.dovecot, receiver, &endpoints);
    assert_eq!(receiver.take().len(), devices, "{tag}: validation pushes");
    let tokens = device_tokens(TOKENS);
    set_tokens(&stack.dovecot, &tokens);

    let mut log = LogTail::from_end(stack.postfix.log_path());
    let coid_cpu = || {
        let pid = stack.coid.pid().expect("coid runs");
        crate::cpu::process(pid).expect("coid's /proc/<pid>/stat")
    };
    let coid_threads = || crate::cpu::threads(stack.coid.pid().expect("coid runs"));
    let threads_before = coid_threads();
    let (cpu_before, receiver_before) = (coid_cpu(), crate::cpu::Cpu::now());
    let host_before = crate::cpu::Host::now();
    let (began, began_us) = (Instant::now(), now_us());
    let injection = inject_chats(stack.postfix.smtp_port(), tag, messages);
    while poll_sent(&mut log, &stack.postfix, began, messages, tag) < messages {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = began.elapsed();
    let host = crate::cpu::Host::now().since(host_before);
    let injected = injection.join().expect("every submission was accepted");
    let expected = match push {
        Mode::Off => 0,
        Mode::WebPush => messages * devices,
        Mode::DeltaChat => messages * tokens.len(),
    };
    let arrived = receiver.wait_for(expected, PUSH_WAIT);
    let cpu_used = coid_cpu().saturating_sub(cpu_before);
    let mut threads_used = coid_threads();
    for (name, used) in &mut threads_used {
        *used = used.saturating_sub(threads_before.get(name).copied().unwrap_or_default());
    }
    let receiver_cpu = crate::cpu::Cpu::now().since(receiver_before).receiver;
    let coid_tail = || tail_file(&stack.coid.log_path(), 20);
    assert!(
        arrived,
        "{tag}: {} of {expected} pushes\n{}",
        receiver.count(),
        coid_tail()
    );
    // Late duplicates would show up here.
    std::thread::sleep(Duration::from_millis(500));

    let coid_log = stack.coid.log();
    let delivered = check_pushed_run(&stack, &coid_log, &mut log, messages, tag);
    check_metrics(&stack, push, messages, tag);
    let (latencies, last_us) = if push == Mode::DeltaChat {
        check_notified_log(&coid_log, &tokens, messages, tag);
        match_notifications(receiver, &tokens, &delivered, tag)
    } else {
        match_pushes(receiver, &endpoints, &delivered, tag)
    };
    let drained = Duration::from_micros(u64::try_from(last_us - began_us).unwrap_or(0));
    Outcome {
        push,
        messages,
        elapsed,
        injected,
        drained: (push != Mode::Off).then_some(drained),
        coid_cpu: cpu_used,
        receiver_cpu,
        host,
        coid_threads: threads_used,
        latencies,
    }
}

/// Exactly `messages` deliveries: Postfix logged that many sent and nothing else,
/// its queue is empty, the INBOX holds them, coid logged each once and no push
/// trouble. Returns coid's delivery time of each (unix µs).
fn check_pushed_run(
    stack: &Stack,
    coid_log: &str,
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
    let delivered = coid_log::delivered(coid_log);
    assert_eq!(delivered.len(), messages, "{tag}: coid's `delivered` lines");
    for bad in [
        "push failed",
        "push dropped",
        "queue full",
        "cannot queue",
        "deltachat notification failed",
        "deltachat notification dropped",
        "deltachat notification service rate limit",
        "deltachat token gone",
    ] {
        assert!(!coid_log.contains(bad), "{tag}: coid logged {bad:?}");
    }
    delivered
}

/// coid logged each notification it delivered, `messages` per token, naming each
/// token by its id only: no whole token anywhere in its log.
fn check_notified_log(coid_log: &str, tokens: &[String], messages: usize, tag: &str) {
    let notified = coid_log::notified(coid_log);
    for token in tokens {
        assert!(
            !coid_log.contains(token.as_str()),
            "{tag}: a whole token in coid's log"
        );
        let id = coid::push::deltachat::token::TokenId::of(token);
        let lines = notified.get(id.as_str()).copied().unwrap_or(0);
        assert_eq!(
            lines,
            messages,
            "{tag}: `deltachat notification delivered` lines for token {}",
            id.as_str()
        );
    }
    assert_eq!(
        notified.len(),
        tokens.len(),
        "{tag}: notified token ids {notified:?}"
    );
}

/// coid's metrics agree: with Delta Chat push on, every notification counted as
/// delivered (none otherwise), and in every mode no notification with another outcome;
/// the 2 tokens counted as stored and nothing waiting in the queue, whenever a push
/// worker runs (with Web Push alone too). With no kind of push on there is no push
/// worker, and coid leaves those gauges out of the scrape.
fn check_metrics(stack: &Stack, push: Mode, messages: usize, tag: &str) {
    let text = scrape(stack.coid.metrics_addr());
    let value = |series: &str| sample(&text, series);
    let notified = |outcome: &str| {
        value(&format!(
            "coid_deltachat_notifications_total{{outcome=\"{outcome}\"}}"
        ))
        .unwrap_or(0.0)
    };
    let delivered = if push == Mode::DeltaChat {
        messages * TOKENS
    } else {
        0
    };
    assert_eq!(
        notified("delivered"),
        delivered as f64,
        "{tag}: notifications"
    );
    for outcome in [
        "gone",
        "rate_limited",
        "temporary",
        "rejected",
        "redirected",
        "endpoint_refused",
        "expired",
        "queue_full",
    ] {
        assert_eq!(notified(outcome), 0.0, "{tag}: notifications {outcome}");
    }
    let gauges = [
        ("coid_deltachat_tokens", TOKENS as f64),
        (r#"coid_push_queue_depth{kind="deltachat"}"#, 0.0),
        (r#"coid_push_queue_depth{kind="webpush"}"#, 0.0),
    ];
    // Counted with every kind of push off too: tokens are stored either way.
    for (series, expected) in gauges {
        assert_eq!(value(series), Some(expected), "{tag}: {series}");
    }
}

/// alice sets each of `tokens` as Delta Chat core 2.58 and later does, a quoted
/// string on INBOX; each must be answered OK.
fn set_tokens(dovecot: &Dovecot, tokens: &[String]) {
    let mut imap = dovecot.imap("alice");
    for token in tokens {
        let command = format!("SETMETADATA \"INBOX\" (/private/devicetoken \"{token}\")");
        let (status, text, _) = metadata(&mut imap, &command);
        assert_eq!(status, "OK", "SETMETADATA /private/devicetoken: {text}");
    }
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

/// The Delta Chat notifications: exactly `delivered.len()` per token, each the token
/// byte for byte, nothing else. A notification's body is only its token, so it does
/// not name its message: the n-th notification of a token is matched to the n-th
/// delivery (by coid's `delivered` time). That is each message's own latency when the
/// queue serves in order, which it does up to the pushes in flight (the sum, and so
/// the mean, is exact either way). Returns the latencies (ms) and the last arrival
/// (unix µs).
fn match_notifications(
    receiver: &Receiver,
    tokens: &[String],
    delivered: &HashMap<String, i64>,
    tag: &str,
) -> (Vec<f64>, i64) {
    let arrivals = receiver.take();
    let per_token = notifications_per_token(&arrivals, tokens, delivered.len(), tag);
    let mut deliveries: Vec<i64> = delivered.values().copied().collect();
    deliveries.sort_unstable();
    let mut latencies = Vec::with_capacity(arrivals.len());
    for times in &per_token {
        latencies.extend(
            times
                .iter()
                .zip(&deliveries)
                .map(|(at, delivered)| (at - delivered) as f64 / 1e3),
        );
    }
    let last = arrivals.iter().map(|a| a.at_us).max().unwrap_or(0);
    (latencies, last)
}
