//! Encrypted pushes and Delta Chat notifications per second, in process, with coid's
//! library:
//! - [`sender`]: one `Sender` (encrypt, sign, POST over its pooled reqwest client)
//!   sends M pushes to N subscriptions of the local receiver, with as many in flight
//!   as the worker allows by default (`[push] concurrency`);
//! - [`worker`]: the durable path of `coid serve`: M pushes made by
//!   `delivered::pushes_for` for validated subscriptions (subscribed and validated
//!   through the dict's WebPush entries, as a COI client's SETMETADATA does), queued
//!   in a fresh state store, then the real `Worker` drains the queue (claim, send,
//!   record each result) until it is empty;
//! - [`notifier`] and [`deltachat_worker`]: the same two for Delta Chat: one
//!   `Notifier` POSTs M tokens round-robin to the receiver's notification proxy
//!   stand-in; and M notifications made by `delivered::notifications_for` for N device
//!   tokens of one user (added through the dict's `/private/devicetoken` plan, as
//!   Delta Chat's SETMETADATA does), queued, then drained by the real `Worker` with
//!   only its Delta Chat side.
//!
//! The tokio runtime is built like `coid serve`'s (multi-thread, one worker per CPU);
//! the receiver has its own thread. Every push must be answered 201 and arrive
//! exactly once, with the VAPID, `TTL` and `Content-Encoding` headers, and every body
//! must decrypt to the payload that was sent. Every notification must be answered
//! 200, and each token must have arrived as a body, byte for byte, exactly as many
//! times as notifications were made for it, and nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coid::classify::Class;
use coid::config::{Config, DeltaChatConfig, PushConfig};
use coid::dict::deltachat::DeltaChatEntries;
use coid::dict::webpush::{Entry, WebPush};
use coid::push::delivered::{Delivered, DeliveredMessage, notifications_for, pushes_for};
use coid::push::deltachat::DeltaChatRules;
use coid::push::deltachat::notifier::Notifier;
use coid::push::endpoint::EndpointPolicy;
use coid::push::outcome::Outcome;
use coid::push::queue::{PushQueue, vapid_key};
use coid::push::thread::PushThread;
use coid::push::webpush::sender::{Options, Sender, Urgency};
use coid::push::worker::Worker;
use coid::spool::header_end;
use coid::store::{Op, Store, unix_now_ms};

use crate::common::push_flow::subscription_json;
use crate::cpu::Cpu;
use crate::receiver::{Arrival, Endpoint, Receiver, notifications_per_token};

const USER: &str = "alice@example.org";
const SUBJECT: &str = "mailto:postmaster@example.org";
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Long enough that no subscription or token expires during a run.
const TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// One measured run.
pub struct Rate {
    /// Pushes, or Delta Chat notifications, sent.
    pub pushes: usize,
    pub elapsed: Duration,
    pub cpu: Cpu,
    /// TCP connections the receiver accepted.
    pub connections: usize,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.pushes as f64 / self.elapsed.as_secs_f64()
    }
}

/// A multi-thread runtime (a thread per CPU), as the sessions' runtime was where the
/// worker ran before it had a thread of its own.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Where the bare sender runs: on every CPU, or on one thread as the push worker does
/// (`coid::push::thread`), the fair baseline for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// A multi-thread runtime.
    All,
    /// A current-thread runtime.
    One,
}

impl Threads {
    fn runtime(self) -> tokio::runtime::Runtime {
        match self {
            Threads::All => runtime(),
            Threads::One => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
        }
    }
}

fn new_sender(vapid: coid::push::webpush::vapid::VapidKey, config: &PushConfig) -> Sender {
    let policy = EndpointPolicy {
        allow_private: true,
    };
    Sender::new(
        vapid,
        SUBJECT,
        policy,
        Duration::from_secs(config.timeout_secs),
        config.concurrency,
    )
    .expect("push sender")
}

/// `pushes` pushes of `payload` round-robin to `endpoints`, `[push] concurrency` at
/// a time, with one `Sender`.
pub fn sender(
    receiver: &Receiver,
    endpoints: &[Endpoint],
    payload: &[u8],
    pushes: usize,
    threads: Threads,
) -> Rate {
    let config = PushConfig::default();
    let rt = threads.runtime();
    let sender = new_sender(coid::push::webpush::vapid::VapidKey::generate(), &config);
    let targets: Arc<Vec<_>> = Arc::new(endpoints.iter().map(Endpoint::target).collect());
    let payload: Arc<[u8]> = Arc::from(payload);
    let options = Options {
        ttl: Duration::from_secs(config.ttl_secs),
        urgency: Urgency::Normal,
        topic: None,
        validation: false,
    };
    let (sent, arrivals) = concurrently(receiver, &rt, config.concurrency, pushes, {
        let payload = Arc::clone(&payload);
        move |i| {
            let (sender, targets, payload) = (sender.clone(), targets.clone(), payload.clone());
            let options = options.clone();
            async move {
                let attempt = sender
                    .send(&targets[i % targets.len()], &payload, &options)
                    .await
                    .expect("a push request");
                assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
            }
        }
    });
    check(arrivals, endpoints, pushes, &[payload.to_vec()].into());
    sent
}

/// `notifications` Delta Chat notifications of `tokens` round-robin, `[push]
/// concurrency` at a time, with one `Notifier` (built as `coid serve` builds it).
pub fn notifier(
    receiver: &Receiver,
    tokens: &[String],
    notifications: usize,
    threads: Threads,
) -> Rate {
    let (config, deltachat) = deltachat_configs(receiver, notifications);
    let rt = threads.runtime();
    let notifier = new_notifier(&deltachat, &config);
    let shared: Arc<Vec<String>> = Arc::new(tokens.to_vec());
    let send = move |i: usize| {
        let (notifier, tokens) = (notifier.clone(), Arc::clone(&shared));
        async move {
            let attempt = notifier
                .notify(&tokens[i % tokens.len()])
                .await
                .expect("a notification request");
            assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
        }
    };
    let (sent, arrivals) = concurrently(receiver, &rt, config.concurrency, notifications, send);
    notifications_per_token(&arrivals, tokens, notifications / tokens.len(), "notifier");
    sent
}

/// Runs `send(i)` for every `i` below `count` on `rt`, `concurrency` at a time; returns
/// the rate and what the receiver recorded.
fn concurrently<F, S>(
    receiver: &Receiver,
    rt: &tokio::runtime::Runtime,
    concurrency: usize,
    count: usize,
    send: S,
) -> (Rate, Vec<Arrival>)
where
    S: Fn(usize) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let next = Arc::new(AtomicUsize::new(0));
    let (cpu, began, connections) = (Cpu::now(), Instant::now(), receiver.connections());
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (send, next) = (Arc::clone(&send), Arc::clone(&next));
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    send(i).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("sending task");
        }
    });
    let rate = Rate {
        pushes: count,
        elapsed: began.elapsed(),
        cpu: Cpu::now().since(cpu),
        connections: receiver.connections() - connections,
    };
    (rate, receiver.take())
}

/// `messages` delivered messages (`message`), each pushing to every one of
/// `endpoints` (subscriptions of one user, msgtype `all`), queued, then sent by the
/// real worker with `concurrency` in flight; also returns the µs per message that
/// queueing took.
pub fn worker(
    receiver: &Receiver,
    endpoints: &[Endpoint],
    chats: &[Vec<u8>],
    concurrency: usize,
) -> (Rate, f64) {
    let messages = chats.len();
    let dir = tempfile::tempdir().expect("state dir");
    let store = Store::open(&dir.path().join("coid.sqlite")).expect("state store");
    let config = PushConfig {
        allow_private_endpoints: true,
        max_queue: 10 * messages * endpoints.len() + 100,
        concurrency,
        ..PushConfig::default()
    };
    let queue = PushQueue::new(store.clone(), &config);
    let vapid = vapid_key(&store).expect("VAPID key");
    subscribe(&WebPush::new(queue.clone(), &vapid), &store, endpoints);
    let validations = endpoints.len();

    let enqueue_us = fill(&queue, chats, endpoints.len());

    let total = validations + messages * endpoints.len();
    let worker = Worker::new(queue.clone(), &config, TOKEN_LIFETIME)
        .with_webpush(new_sender(vapid, &config), &config);
    let (rate, arrivals) = drain(receiver, &store, worker, total);
    let (validated, pushed): (Vec<Arrival>, Vec<Arrival>) =
        arrivals.into_iter().partition(|a| a.validation);
    assert_eq!(validated.len(), validations, "validation pushes");
    let expected = messages * endpoints.len();
    let payloads = chats.iter().map(|chat| payload_of(chat)).collect();
    check(pushed, endpoints, expected, &payloads);
    (rate, enqueue_us)
}

/// `messages` delivered messages (`message`, a chat from bob), each notifying every
/// one of `tokens` (device tokens of [`USER`]), queued, then sent by the real worker
/// with only its Delta Chat side and `concurrency` in flight; also returns the µs per
/// message that queueing took.
pub fn deltachat_worker(
    receiver: &Receiver,
    tokens: &[String],
    chats: &[Vec<u8>],
    concurrency: usize,
) -> (Rate, f64) {
    let messages = chats.len();
    let dir = tempfile::tempdir().expect("state dir");
    let store = Store::open(&dir.path().join("coid.sqlite")).expect("state store");
    let (mut config, deltachat) = deltachat_configs(receiver, messages * tokens.len());
    config.concurrency = concurrency;
    let queue = PushQueue::new(store.clone(), &config);
    add_tokens(&store, &deltachat, tokens);
    let rules = DeltaChatRules::from_config(&deltachat).expect("[deltachat] push is on");
    let enqueue_us = fill_notifications(&queue, &rules, chats, tokens.len());

    let total = messages * tokens.len();
    let worker = Worker::new(queue.clone(), &config, TOKEN_LIFETIME)
        .with_deltachat(new_notifier(&deltachat, &config), &deltachat);
    let (rate, arrivals) = drain(receiver, &store, worker, total);
    notifications_per_token(&arrivals, tokens, messages, "deltachat worker");
    (rate, enqueue_us)
}

/// Runs `worker` on `coid serve`'s runtime until `total` requests arrived and the
/// queue of `store` is empty; returns the rate and the arrivals.
fn drain(receiver: &Receiver, store: &Store, worker: Worker, total: usize) -> (Rate, Vec<Arrival>) {
    let rt = runtime();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (cpu, began, connections) = (Cpu::now(), Instant::now(), receiver.connections());
    // As `coid serve` runs it: threads of its own (`coid::push::thread`).
    let push = PushConfig::default();
    let running = PushThread::spawn(worker, stopped, push.worker_nice).expect("push thread");
    assert!(
        receiver.wait_for(total, DRAIN_LIMIT),
        "worker: {} of {total} requests arrived",
        receiver.count()
    );
    while store.queue_len().expect("queue length") > 0 {
        assert!(began.elapsed() < DRAIN_LIMIT, "the queue did not empty");
        std::thread::sleep(Duration::from_millis(1));
    }
    let rate = Rate {
        pushes: total,
        elapsed: began.elapsed(),
        cpu: Cpu::now().since(cpu),
        connections: receiver.connections() - connections,
    };
    let _ = stop.send(true);
    rt.block_on(running.finished());
    (rate, receiver.take())
}

/// `[push]` (loopback allowed, a queue for `queued` rows) and `[deltachat]` (push on,
/// to the receiver's stand-in) for the Delta Chat runs; the rest at the defaults.
fn deltachat_configs(receiver: &Receiver, queued: usize) -> (PushConfig, DeltaChatConfig) {
    let config = PushConfig {
        allow_private_endpoints: true,
        max_queue: 10 * queued + 100,
        ..PushConfig::default()
    };
    let deltachat = DeltaChatConfig {
        push: true,
        notify_url: receiver.notify_url(),
        ..DeltaChatConfig::default()
    };
    (config, deltachat)
}

/// A notifier as `coid serve` builds one (`[push] concurrency` idle connections).
fn new_notifier(deltachat: &DeltaChatConfig, config: &PushConfig) -> Notifier {
    let policy = EndpointPolicy {
        allow_private: config.allow_private_endpoints,
    };
    Notifier::new(deltachat, policy, config.concurrency).expect("notifier")
}

/// Adds `tokens` to [`USER`]'s set as the dict does for `SETMETADATA "INBOX"
/// (/private/devicetoken ...)`: planned by the dict's Delta Chat entries, one commit
/// each.
fn add_tokens(store: &Store, deltachat: &DeltaChatConfig, tokens: &[String]) {
    let config = Config {
        deltachat: deltachat.clone(),
        ..Config::default()
    };
    let entries = DeltaChatEntries::new(&config);
    for token in tokens {
        let op = entries.plan_token(Some(token)).expect("token accepted");
        assert!(matches!(op, Op::AddToken { .. }), "{op:?}");
        store
            .commit(USER, &[op], unix_now_ms())
            .expect("token added");
    }
}

/// Queues the Delta Chat notifications for `messages` deliveries of `message` to
/// [`USER`], one transaction per message as the delivery hook does; returns µs per
/// message in a store in use ([`in_halves`]).
fn fill_notifications(
    queue: &PushQueue,
    rules: &DeltaChatRules,
    chats: &[Vec<u8>],
    tokens: usize,
) -> f64 {
    let delivered: Vec<DeliveredMessage> = chats
        .iter()
        .map(|chat| delivered(chat).with_class(Class::Chat))
        .collect();
    let rcpt = [recipient()];
    in_halves("fill (delta chat)", &delivered, |delivered| {
        let now = unix_now_ms();
        let notifications = notifications_for(queue.store(), delivered, &rcpt, rules, now)
            .expect("notifications for a message");
        assert_eq!(notifications.len(), tokens);
        let at = Instant::now();
        queue.enqueue(&notifications, now).expect("queued");
        at.elapsed()
    })
}

/// How long the bench waits between the two halves of [`in_halves`]: a few of the
/// checkpoint thread's looks (every 100 ms while others write), so that it has
/// copied the log back and the next write starts the log over, as between two
/// bursts of mail in service.
const CHECKPOINTED: Duration = Duration::from_millis(400);

/// Queues each of `delivered` with `queue_one` (which returns its time in `enqueue`),
/// in two halves: the first into the fresh store, whose write-ahead log file grows
/// from nothing (new file blocks, zeroed pages), the second, after [`CHECKPOINTED`],
/// into a store in use, whose log file is there from the first half, as it is in a
/// service that has run a while. Prints both; returns the second's µs per message,
/// the figure of the table.
fn in_halves(
    what: &str,
    delivered: &[DeliveredMessage],
    mut queue_one: impl FnMut(&DeliveredMessage) -> Duration,
) -> f64 {
    let (fresh, in_use) = delivered.split_at(delivered.len() / 2);
    let mut timed = |half: &[DeliveredMessage]| -> (f64, f64, f64) {
        let began = Instant::now();
        let cpu_before = on_cpu_ns();
        let in_enqueue: Duration = half.iter().map(&mut queue_one).sum();
        let on_cpu = on_cpu_ns().saturating_sub(cpu_before);
        let per = |total: f64| total / half.len().max(1) as f64;
        (
            per(began.elapsed().as_secs_f64() * 1e6),
            per(in_enqueue.as_secs_f64() * 1e6),
            per(on_cpu as f64 / 1e3),
        )
    };
    let first = timed(fresh);
    std::thread::sleep(CHECKPOINTED);
    let second = timed(in_use);
    eprintln!(
        "[bench] {what}: µs per message (of it enqueue; the thread on a CPU): fresh store \
         {:.0} ({:.0}; {:.0}), store in use {:.0} ({:.0}; {:.0})",
        first.0, first.1, first.2, second.0, second.1, second.2
    );
    second.0
}

/// The calling thread's time on a CPU (ns, the first field of Linux's schedstat).
fn on_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// A delivered `chat` (its header section and body), as the delivery hook has it.
fn delivered(chat: &[u8]) -> DeliveredMessage {
    let header = chat[..header_end(chat).expect("a header section")].to_vec();
    DeliveredMessage::new(header, Some(chat), None)
}

/// [`USER`]'s copy in the INBOX, a chat.
fn recipient() -> Delivered {
    Delivered {
        username: USER.to_owned(),
        address: USER.to_owned(),
        folder: "INBOX".to_owned(),
        chat: true,
    }
}

/// Queues the pushes for `messages` deliveries of `message` to [`USER`], one
/// transaction per message as the delivery hook does, each to `subscriptions`
/// devices; returns µs per message in a store in use ([`in_halves`]).
fn fill(queue: &PushQueue, chats: &[Vec<u8>], subscriptions: usize) -> f64 {
    let delivered: Vec<DeliveredMessage> = chats.iter().map(|chat| delivered(chat)).collect();
    let rcpt = [recipient()];
    in_halves("fill (web push)", &delivered, |delivered| {
        let now = unix_now_ms();
        let pushes = pushes_for(
            queue.store(),
            delivered,
            &rcpt,
            now,
            queue.deadline_from(now),
        )
        .expect("pushes for a message");
        assert_eq!(pushes.len(), subscriptions);
        let at = Instant::now();
        queue.enqueue(&pushes, now).expect("queued");
        at.elapsed()
    })
}

/// Subscribes every endpoint (msgtype `all`) and validates it with its token, as the
/// dict does for SETMETADATA.
fn subscribe(webpush: &WebPush, store: &Store, endpoints: &[Endpoint]) {
    for (i, endpoint) in endpoints.iter().enumerate() {
        let id = format!("bench-subscription-{i}");
        let json = subscription_json(&endpoint.keys(), "all");
        let now = unix_now_ms();
        let op = webpush
            .plan(USER, Entry::Subscription(&id), Some(&json), now)
            .expect("subscription accepted");
        let Op::Subscribe(new) = &op else {
            panic!("not a subscription: {op:?}");
        };
        let token = new.token.clone();
        store.commit(USER, &[op], now).expect("subscribed");
        let validate = webpush
            .plan(USER, Entry::Validate(&id), Some(&token), now)
            .expect("validation accepted");
        store.commit(USER, &[validate], now).expect("validated");
    }
}

/// The payload `pushes_for` makes for `message` stored in the INBOX (same steps).
pub fn payload_of(message: &[u8]) -> Vec<u8> {
    let header = message[..header_end(message).expect("a header section")].to_vec();
    let delivered = DeliveredMessage::new(header, Some(message), None);
    let parsed = mail_parser::MessageParser::new()
        .parse_headers(&delivered.header)
        .unwrap_or_default();
    let stored = coid::push::webpush::payload::Stored {
        folder: "INBOX",
        ..Default::default()
    };
    let mut payload = coid::push::webpush::payload::Payload::build(&parsed, &stored, None);
    if let Some(body) = &delivered.body {
        payload.offer_content(&parsed, body);
    }
    payload.to_json().into_bytes()
}

/// Exactly `expected` message pushes, spread evenly over `endpoints`, each with the
/// headers coid must send and a body that decrypts to `payload`.
fn check(
    arrivals: Vec<Arrival>,
    endpoints: &[Endpoint],
    expected: usize,
    payloads: &std::collections::HashSet<Vec<u8>>,
) {
    assert_eq!(arrivals.len(), expected, "pushes that arrived");
    let keys: HashMap<&str, &Endpoint> = endpoints.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut per_endpoint: HashMap<&str, usize> = HashMap::new();
    for arrival in &arrivals {
        assert!(arrival.headers_ok, "VAPID, TTL, aes128gcm: {arrival:?}");
        let endpoint = keys
            .get(arrival.endpoint.as_str())
            .unwrap_or_else(|| panic!("unknown endpoint {}", arrival.endpoint));
        let plain = endpoint.decrypt(&arrival.body).expect("the push decrypts");
        assert!(
            !arrival.validation && payloads.contains(&plain),
            "decrypted payload"
        );
        *per_endpoint.entry(endpoint.name.as_str()).or_default() += 1;
    }
    let even = expected / endpoints.len();
    assert!(
        per_endpoint.values().all(|&n| n == even) && per_endpoint.len() == endpoints.len(),
        "pushes per endpoint: {per_endpoint:?}"
    );
}
