//! Encrypted pushes per second, in process, with coid's library:
//! - [`sender`]: one `Sender` (encrypt, sign, POST over its pooled reqwest client)
//!   sends M pushes to N subscriptions of the local receiver, with as many in flight
//!   as the worker allows by default (`[push] concurrency`);
//! - [`worker`]: the durable path of `coid serve`: M pushes made by
//!   `delivered::pushes_for` for validated subscriptions (subscribed and validated
//!   through the dict's WebPush entries, as a COI client's SETMETADATA does), queued
//!   in a fresh state store, then the real `Worker` drains the queue (claim, send,
//!   record each result) until it is empty.
//!
//! The tokio runtime is built like `coid serve`'s (multi-thread, one worker per CPU);
//! the receiver has its own thread. Every push must be answered 201 and arrive
//! exactly once, with the VAPID, `TTL` and `Content-Encoding` headers, and every body
//! must decrypt to the payload that was sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coid::config::PushConfig;
use coid::dict::webpush::{Entry, WebPush};
use coid::push::delivered::{Delivered, DeliveredMessage, pushes_for};
use coid::push::endpoint::EndpointPolicy;
use coid::push::outcome::Outcome;
use coid::push::queue::{PushQueue, vapid_key};
use coid::push::webpush::sender::{Options, Sender, Urgency};
use coid::push::worker::Worker;
use coid::spool::header_end;
use coid::store::{Op, Store, unix_now_ms};

use crate::common::push_flow::subscription_json;
use crate::cpu::Cpu;
use crate::receiver::{Arrival, Endpoint, Receiver};

const USER: &str = "alice@example.org";
const SUBJECT: &str = "mailto:postmaster@example.org";
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// One measured run.
pub struct Rate {
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

/// `coid serve`'s runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
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
pub fn sender(receiver: &Receiver, endpoints: &[Endpoint], payload: &[u8], pushes: usize) -> Rate {
    let config = PushConfig::default();
    let rt = runtime();
    let sender = new_sender(coid::push::webpush::vapid::VapidKey::generate(), &config);
    let targets: Arc<Vec<_>> = Arc::new(endpoints.iter().map(Endpoint::target).collect());
    let payload: Arc<[u8]> = Arc::from(payload);
    let options = Options {
        ttl: Duration::from_secs(config.ttl_secs),
        urgency: Urgency::Normal,
        topic: None,
        validation: false,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let (cpu, began, connections) = (Cpu::now(), Instant::now(), receiver.connections());
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..config.concurrency {
            let (sender, targets, payload) = (sender.clone(), targets.clone(), payload.clone());
            let (next, options) = (Arc::clone(&next), options.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= pushes {
                        break;
                    }
                    let attempt = sender
                        .send(&targets[i % targets.len()], &payload, &options)
                        .await
                        .expect("a push request");
                    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("sending task");
        }
    });
    let rate = Rate {
        pushes,
        elapsed: began.elapsed(),
        cpu: Cpu::now().since(cpu),
        connections: receiver.connections() - connections,
    };
    check(receiver.take(), endpoints, pushes, &payload);
    rate
}

/// `messages` delivered messages (`message`), each pushing to every one of
/// `endpoints` (subscriptions of one user, msgtype `all`), queued, then sent by the
/// real worker; also returns the µs per message that queueing took.
pub fn worker(
    receiver: &Receiver,
    endpoints: &[Endpoint],
    message: &[u8],
    messages: usize,
) -> (Rate, f64) {
    let dir = tempfile::tempdir().expect("state dir");
    let store = Store::open(&dir.path().join("coid.sqlite")).expect("state store");
    let config = PushConfig {
        allow_private_endpoints: true,
        max_queue: 10 * messages * endpoints.len() + 100,
        ..PushConfig::default()
    };
    let queue = PushQueue::new(store.clone(), &config);
    let vapid = vapid_key(&store).expect("VAPID key");
    subscribe(&WebPush::new(queue.clone(), &vapid), &store, endpoints);
    let validations = endpoints.len();

    let enqueue_us = fill(&queue, message, messages, endpoints.len());

    let total = validations + messages * endpoints.len();
    let rt = runtime();
    let worker = Worker::new(queue.clone(), &config, Duration::from_secs(86_400))
        .with_webpush(new_sender(vapid, &config), &config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (cpu, began, connections) = (Cpu::now(), Instant::now(), receiver.connections());
    let running = rt.spawn(worker.run(stopped));
    assert!(
        receiver.wait_for(total, DRAIN_LIMIT),
        "worker: {} of {total} pushes arrived",
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
    rt.block_on(running).expect("worker stops");
    let (validated, pushed): (Vec<Arrival>, Vec<Arrival>) =
        receiver.take().into_iter().partition(|a| a.validation);
    assert_eq!(validated.len(), validations, "validation pushes");
    let expected = messages * endpoints.len();
    check(pushed, endpoints, expected, &payload_of(message));
    (rate, enqueue_us)
}

/// Queues the pushes for `messages` deliveries of `message` to [`USER`], one
/// transaction per message as the delivery hook does; returns µs per message.
fn fill(queue: &PushQueue, message: &[u8], messages: usize, subscriptions: usize) -> f64 {
    let header = message[..header_end(message).expect("a header section")].to_vec();
    let delivered = DeliveredMessage::new(header, Some(message), None);
    let rcpt = [Delivered {
        username: USER.to_owned(),
        address: USER.to_owned(),
        folder: "INBOX".to_owned(),
        chat: true,
    }];
    let began = Instant::now();
    for _ in 0..messages {
        let now = unix_now_ms();
        let pushes = pushes_for(
            queue.store(),
            &delivered,
            &rcpt,
            now,
            queue.deadline_from(now),
        )
        .expect("pushes for a message");
        assert_eq!(pushes.len(), subscriptions);
        queue.enqueue(&pushes, now).expect("queued");
    }
    began.elapsed().as_secs_f64() * 1e6 / messages as f64
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
fn check(arrivals: Vec<Arrival>, endpoints: &[Endpoint], expected: usize, payload: &[u8]) {
    assert_eq!(arrivals.len(), expected, "pushes that arrived");
    let keys: HashMap<&str, &Endpoint> = endpoints.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut per_endpoint: HashMap<&str, usize> = HashMap::new();
    for arrival in &arrivals {
        assert!(arrival.headers_ok, "VAPID, TTL, aes128gcm: {arrival:?}");
        let endpoint = keys
            .get(arrival.endpoint.as_str())
            .unwrap_or_else(|| panic!("unknown endpoint {}", arrival.endpoint));
        let plain = endpoint.decrypt(&arrival.body).expect("the push decrypts");
        assert!(!arrival.validation && plain == payload, "decrypted payload");
        *per_endpoint.entry(endpoint.name.as_str()).or_default() += 1;
    }
    let even = expected / endpoints.len();
    assert!(
        per_endpoint.values().all(|&n| n == even) && per_endpoint.len() == endpoints.len(),
        "pushes per endpoint: {per_endpoint:?}"
    );
}
