//! Pushes per second from one shared queue: a fresh store (an SQLite file, or a fresh
//! PostgreSQL database on the harness's own server, `common::postgres`) is filled in
//! this process through the store API, as the delivery hook fills it: 8 subscriptions
//! of alice subscribed and validated through the dict's WebPush entries (their 8
//! validation pushes are queued too), then M distinct chats queued with
//! `delivered::pushes_for` and `PushQueue::enqueue`, one transaction per message.
//! Then 1 or 3 real `coid serve` nodes are started at once on that store (push on,
//! no mail) and drain it to the bench's receiver, which answers 201.
//!
//! The rate is the message pushes over the time from the first to the last one the
//! receiver logged (its arrival timestamps), so the nodes' start-up is not counted.
//! Every push must decrypt, name one of the queued messages and arrive at its own
//! endpoint; none may be missing. Pushes that arrived more than once are counted
//! (a lease that ran out while its push was in flight would send it twice) and
//! reported, not hidden.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use coid::config::{Config, Database, PostgresConfig, PushConfig, StateConfig};
use coid::dict::webpush::{Entry, WebPush};
use coid::push::delivered::{Delivered, DeliveredMessage, pushes_for};
use coid::push::queue::{PushQueue, vapid_key};
use coid::spool::header_end;
use coid::store::{Op, Store, unix_now_ms};

use crate::common::coid::{Coid, CoidOpts};
use crate::common::postgres::fresh_url;
use crate::common::push_flow::subscription_json;
use crate::delivery::filler;
use crate::flow::{CHAT_SIZE, chat};
use crate::receiver::{Arrival, Endpoint, Receiver};

const USER: &str = "alice@example.org";
/// alice's subscriptions: every message pushes to each.
pub const SUBSCRIPTIONS: usize = 8;
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// Where the queue lives and how many nodes drain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Sqlite1,
    Postgres1,
    Postgres3,
}

impl Setup {
    pub fn name(self) -> &'static str {
        match self {
            Setup::Sqlite1 => "SQLite, 1 node",
            Setup::Postgres1 => "PostgreSQL, 1 node",
            Setup::Postgres3 => "PostgreSQL, 3 nodes",
        }
    }

    fn nodes(self) -> usize {
        if self == Setup::Postgres3 { 3 } else { 1 }
    }
}

/// What one drain measured.
pub struct Drain {
    pub setup: Setup,
    /// Message pushes expected (messages × subscriptions).
    pub pushes: usize,
    /// First → last message push at the receiver.
    pub elapsed: Duration,
    /// Pushes that arrived again after their first arrival.
    pub duplicates: usize,
    /// µs per message that queueing took in this process.
    pub enqueue_us: f64,
    /// CPU of all the nodes, start-up included, and of the PostgreSQL server over
    /// the same time (zero on SQLite).
    pub nodes_cpu: Duration,
    pub postgres_cpu: Duration,
    pub load: String,
}

impl Drain {
    pub fn rate(&self) -> f64 {
        self.pushes.saturating_sub(1) as f64 / self.elapsed.as_secs_f64()
    }

    /// µs of CPU per push: the nodes', and the PostgreSQL server's.
    pub fn cpu_us(&self) -> (f64, f64) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.pushes as f64;
        (per(self.nodes_cpu), per(self.postgres_cpu))
    }
}

/// One drain of `messages` × [`SUBSCRIPTIONS`] pushes by `setup`'s nodes.
pub fn run(receiver: &Receiver, setup: Setup, messages: usize, tag: &str) -> Drain {
    assert_eq!(receiver.count(), 0, "{tag}: the receiver starts empty");
    let dir = crate::common::make_run_dir("coid-bench-queue-");
    let url = (setup != Setup::Sqlite1).then(fresh_url);
    let store = open_store(dir.path(), url.as_deref());
    let config = PushConfig {
        allow_private_endpoints: true,
        max_queue: 10 * messages * SUBSCRIPTIONS + 100,
        ..PushConfig::default()
    };
    let queue = PushQueue::new(store.clone(), &config);
    let vapid = vapid_key(&store).expect("VAPID key");
    let endpoints = receiver.endpoints(&format!("{tag}-"), SUBSCRIPTIONS);
    subscribe(&WebPush::new(queue.clone(), &vapid), &store, &endpoints);
    let ids = fill(&queue, tag, messages);
    let enqueue_us = ids.1;
    let total = SUBSCRIPTIONS + messages * SUBSCRIPTIONS;
    assert_eq!(
        store.queue_len().expect("queue length"),
        total,
        "{tag}: queued"
    );

    let (began, postgres_before) = (Instant::now(), crate::pgcpu::server());
    let nodes = start_nodes(setup.nodes(), dir.path(), url.as_deref());
    assert!(
        receiver.wait_for(total, DRAIN_LIMIT),
        "{tag}: {} of {total} pushes arrived\n{}",
        receiver.count(),
        crate::common::tail_file(&nodes[0].log_path(), 20)
    );
    while store.queue_len().expect("queue length") > 0 {
        assert!(
            began.elapsed() < DRAIN_LIMIT,
            "{tag}: the queue did not empty"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Late duplicates would show up here.
    std::thread::sleep(Duration::from_millis(500));
    let load = crate::machine::load_average();
    let postgres_cpu = crate::pgcpu::server().saturating_sub(postgres_before);
    let nodes_cpu = nodes
        .iter()
        .map(|n| n.pid().and_then(crate::cpu::process).expect("a node runs"))
        .sum();
    drop(nodes);
    let (elapsed, duplicates) = check(receiver.take(), &endpoints, &ids.0, tag);
    Drain {
        setup,
        pushes: messages * SUBSCRIPTIONS,
        elapsed,
        duplicates,
        enqueue_us,
        nodes_cpu,
        postgres_cpu: if url.is_some() {
            postgres_cpu
        } else {
            Duration::ZERO
        },
        load,
    }
}

/// The bench's own handle on the store the nodes will use.
fn open_store(dir: &Path, url: Option<&str>) -> Store {
    let mut state = StateConfig {
        dir: dir.join("state"),
        ..StateConfig::default()
    };
    if let Some(url) = url {
        state.database = Database::Postgresql;
        state.postgresql = PostgresConfig {
            url: url.to_owned(),
            ..PostgresConfig::default()
        };
    }
    std::fs::create_dir_all(&state.dir).expect("state dir");
    let config = Config {
        state,
        ..Config::default()
    };
    Store::from_config(&config).expect("state store")
}

/// `count` coid nodes on the store, started at once (push on; no mail reaches them).
fn start_nodes(count: usize, dir: &Path, url: Option<&str>) -> Vec<Coid> {
    std::thread::scope(|scope| {
        let started: Vec<_> = (0..count)
            .map(|_| {
                scope.spawn(move || {
                    let mut opts = CoidOpts::dovecot("/nonexistent/lmtp");
                    opts.log_level = "info".into();
                    opts.state_dir = Some(dir.join("state"));
                    opts.postgres_url = url.map(str::to_owned);
                    opts.extra_toml =
                        "[push]\nenabled = true\nallow_private_endpoints = true\n".into();
                    Coid::start(opts)
                })
            })
            .collect();
        started
            .into_iter()
            .map(|s| s.join().expect("a node started"))
            .collect()
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

/// Queues the pushes of `messages` distinct chats to alice's INBOX, one transaction
/// per message as the delivery hook does; returns their Message-IDs and the µs per
/// message that queueing took.
fn fill(queue: &PushQueue, tag: &str, messages: usize) -> (Vec<String>, f64) {
    let filler = filler(CHAT_SIZE);
    let rcpt = [Delivered {
        username: USER.to_owned(),
        address: USER.to_owned(),
        folder: "INBOX".to_owned(),
        chat: true,
    }];
    let mut ids = Vec::with_capacity(messages);
    let mut spent = Duration::ZERO;
    for i in 0..messages {
        let (message, id) = chat(tag, i, &filler);
        let header = message[..header_end(&message).expect("a header section")].to_vec();
        let delivered = DeliveredMessage::new(header, Some(&message), None);
        let began = Instant::now();
        let now = unix_now_ms();
        let pushes = pushes_for(
            queue.store(),
            &delivered,
            &rcpt,
            now,
            queue.deadline_from(now),
        )
        .expect("pushes for a message");
        assert_eq!(pushes.len(), SUBSCRIPTIONS);
        queue.enqueue(&pushes, now).expect("queued");
        spent += began.elapsed();
        ids.push(id);
    }
    (ids, spent.as_secs_f64() * 1e6 / messages as f64)
}

/// Every (endpoint, message) pushed at least once, each push decrypting to a queued
/// message's `msg-id`, with the VAPID, TTL and encoding headers; the validation
/// pushes once per endpoint. Returns first → last message push, and the duplicates.
fn check(
    arrivals: Vec<Arrival>,
    endpoints: &[Endpoint],
    ids: &[String],
    tag: &str,
) -> (Duration, usize) {
    let by_name: HashMap<&str, &Endpoint> =
        endpoints.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut seen: HashMap<(&str, String), usize> = HashMap::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut validations = 0;
    for arrival in &arrivals {
        assert!(
            arrival.headers_ok,
            "{tag}: VAPID, TTL, aes128gcm: {arrival:?}"
        );
        let endpoint = by_name
            .get(arrival.endpoint.as_str())
            .unwrap_or_else(|| panic!("{tag}: push to unknown {}", arrival.endpoint));
        if arrival.validation {
            validations += 1;
            continue;
        }
        let plain = endpoint.decrypt(&arrival.body).expect("the push decrypts");
        let json: serde_json::Value = serde_json::from_slice(&plain).expect("payload JSON");
        let msg_id = json["msg-id"].as_str().expect("msg-id").to_owned();
        *seen.entry((endpoint.name.as_str(), msg_id)).or_default() += 1;
        first = first.min(arrival.at_us);
        last = last.max(arrival.at_us);
    }
    assert!(
        validations >= endpoints.len(),
        "{tag}: {validations} validation pushes"
    );
    for endpoint in endpoints {
        for id in ids {
            assert!(
                seen.contains_key(&(endpoint.name.as_str(), id.clone())),
                "{tag}: no push of {id} to {}",
                endpoint.name
            );
        }
    }
    assert_eq!(
        seen.len(),
        endpoints.len() * ids.len(),
        "{tag}: unknown pushes"
    );
    let duplicates = seen.values().map(|n| n - 1).sum::<usize>() + validations - endpoints.len();
    let span = u64::try_from(last - first).unwrap_or(0);
    (Duration::from_micros(span), duplicates)
}
