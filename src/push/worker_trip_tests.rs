//! The worker's trips to the store run beside its sends: while a trip waits for the
//! store (here another connection holds SQLite's write lock), the rows it claimed
//! before keep being sent, and none beyond them; what happened while it waited is
//! looked at as soon as it is back. Over a real SQLite file and real HTTP to a
//! notification service stand-in on loopback that answers 200 after a pause (so
//! the test sees where each trip falls).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{AHEAD, Worker};
use crate::classify::Class;
use crate::config::{DeltaChatConfig, NotifyFor, PushConfig};
use crate::push::delivered::{Delivered, DeliveredMessage, HookKinds, PushHook};
use crate::push::deltachat::DeltaChatRules;
use crate::push::deltachat::notifier::Notifier;
use crate::push::endpoint::EndpointPolicy;
use crate::push::queue::PushQueue;
use crate::store::{NewPush, Op, PushKind, Store, unix_now_ms};

const USER: &str = "alice@example.org";
const CONCURRENCY: usize = 2;
/// How long the stand-in takes to answer.
const PAUSE: Duration = Duration::from_millis(100);
const QUEUED: usize = 5 * AHEAD * CONCURRENCY;

/// A notification service on 127.0.0.1 that answers every request 200 after
/// [`PAUSE`]; returns its URL and the count of requests answered.
fn stand_in() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/notify", listener.local_addr().expect("addr"));
    let answered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = Arc::clone(&count);
            std::thread::spawn(move || serve(stream, &count));
        }
    });
    (url, answered)
}

/// Answers the requests of one connection (HTTP/1.1, kept alive) until it closes.
fn serve(stream: TcpStream, answered: &AtomicUsize) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(PAUSE);
        answered.fetch_add(1, Ordering::SeqCst);
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Waits until `answered` reaches `count`, at most `limit`; false if it did not.
fn reaches(answered: &AtomicUsize, count: usize, limit: Duration) -> bool {
    let began = Instant::now();
    while answered.load(Ordering::SeqCst) < count {
        if began.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A state store with one Delta Chat token of [`USER`], the stand-in, and a runtime
/// for the worker.
struct Rig {
    dir: tempfile::TempDir,
    store: Store,
    queue: PushQueue,
    answered: Arc<AtomicUsize>,
    config: PushConfig,
    deltachat: DeltaChatConfig,
    runtime: tokio::runtime::Runtime,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("coid.sqlite")).expect("store");
        let (url, answered) = stand_in();
        let config = PushConfig {
            allow_private_endpoints: true,
            concurrency: CONCURRENCY,
            ..PushConfig::default()
        };
        let deltachat = DeltaChatConfig {
            push: true,
            notify_url: url,
            ..DeltaChatConfig::default()
        };
        let token = Op::AddToken {
            id: "t".into(),
            token: "openpgp:x".into(),
            max: 4,
        };
        store.commit(USER, &[token], unix_now_ms()).expect("token");
        let queue = PushQueue::new(store.clone(), &config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Rig {
            dir,
            store,
            queue,
            answered,
            config,
            deltachat,
            runtime,
        }
    }

    /// A worker over the queue that sends Delta Chat notifications to the stand-in.
    fn worker(&self) -> Worker {
        let policy = EndpointPolicy {
            allow_private: true,
        };
        let notifier = Notifier::new(&self.deltachat, policy, CONCURRENCY).expect("notifier");
        Worker::new(self.queue.clone(), &self.config, Duration::from_secs(3600))
            .with_deltachat(notifier, &self.deltachat)
    }

    /// Another connection, holding the store's write lock.
    fn lock(&self) -> rusqlite::Connection {
        let lock = rusqlite::Connection::open(self.dir.path().join("coid.sqlite"))
            .expect("another connection");
        lock.execute_batch("BEGIN IMMEDIATE")
            .expect("the write lock");
        lock
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

#[test]
fn sends_go_on_while_a_trip_waits_for_the_store() {
    let rig = Rig::new();
    let now = unix_now_ms();
    let rows: Vec<NewPush> = (0..QUEUED)
        .map(|_| NewPush {
            kind: PushKind::DeltaChat,
            username: USER.into(),
            target: "t".into(),
            payload: String::new(),
            with_content: false,
            validation: false,
            not_before: now,
            deadline: now + 600_000,
            dedupe: None,
        })
        .collect();
    assert_eq!(rig.queue.enqueue(&rows, now).expect("queued"), QUEUED);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = rig.runtime.spawn(rig.worker().run(stopped));

    // The first trip claimed AHEAD × CONCURRENCY rows; the next one is due when
    // fewer than CONCURRENCY of them wait, about AHEAD - 1 pauses later. Before then,
    // the store's write lock goes to another connection.
    assert!(
        reaches(&rig.answered, 1, Duration::from_secs(10)),
        "a first send"
    );
    let lock = rig.lock();
    assert!(
        rig.answered() < AHEAD * CONCURRENCY - CONCURRENCY,
        "the lock came before the second trip"
    );
    // Every row claimed before is sent though the second trip waits: with the trip
    // in the worker's loop, the last one waited for it.
    let claimed = AHEAD * CONCURRENCY;
    assert!(
        reaches(&rig.answered, claimed, 20 * PAUSE),
        "{} of the {claimed} claimed rows sent while the store was locked",
        rig.answered()
    );
    std::thread::sleep(5 * PAUSE);
    assert_eq!(rig.answered(), claimed, "nothing beyond them");

    lock.execute_batch("COMMIT").expect("the lock let go");
    assert!(
        reaches(&rig.answered, QUEUED, Duration::from_secs(30)),
        "{} of {QUEUED} sent after the lock",
        rig.answered()
    );
    let _ = stop.send(true);
    rig.runtime.block_on(running).expect("the worker stops");
    // The round that waited for the lock recorded its outcomes: nothing is left
    // leased to be sent twice.
    assert_eq!(rig.store.queue_len().expect("queue"), 0);
    assert_eq!(rig.answered(), QUEUED);
}

/// A delivered message of `class` for [`USER`], Message-ID `<id@example.net>`.
fn message(id: &str, class: Class) -> (DeliveredMessage, Vec<Delivered>) {
    let header = format!(
        "From: bob@example.net\r\nMessage-ID: <{id}@example.net>\r\nChat-Version: 1.0\r\n\r\n"
    );
    let message = DeliveredMessage::new(header.into_bytes(), None, None).with_class(class);
    let copy = Delivered {
        username: USER.into(),
        address: USER.into(),
        folder: "INBOX".into(),
        chat: class == Class::Chat,
    };
    (message, vec![copy])
}

/// A message handed over while the worker's round waits for the store is queued by
/// the round right after, not after the worker's longest sleep ([`super::POLL`],
/// 5 s): its wake-up came while the round was under way.
#[test]
fn a_message_handed_while_a_trip_waits_goes_with_the_next_one() {
    let rig = Rig::new();
    let rules = DeltaChatRules {
        notify: NotifyFor::Chat,
        token_lifetime: Duration::from_secs(90 * 86_400),
        deadline: Duration::from_secs(60),
    };
    let kinds = HookKinds {
        webpush: false,
        deltachat: Some(rules),
    };
    let hook = PushHook::new(rig.queue.clone(), kinds);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = rig
        .runtime
        .spawn(rig.worker().with_hook(hook.clone()).run(stopped));
    let _entered = rig.runtime.enter();
    // Its sweep and first round are done: it sleeps.
    std::thread::sleep(3 * PAUSE);
    let lock = rig.lock();
    // An email notifies nobody (notify = chat), but its round waits for the lock.
    let (email, to) = message("email", Class::Email);
    hook.after_delivery(email, to);
    std::thread::sleep(2 * PAUSE);
    let (chat, to) = message("chat", Class::Chat);
    hook.after_delivery(chat, to);
    std::thread::sleep(2 * PAUSE);
    assert!(hook.waiting(), "the chat waits for the next round");

    lock.execute_batch("COMMIT").expect("the lock let go");
    assert!(
        reaches(&rig.answered, 1, Duration::from_secs(2)),
        "the chat's notification, 2 s after the lock went"
    );
    let _ = stop.send(true);
    rig.runtime.block_on(running).expect("the worker stops");
    assert_eq!(rig.answered(), 1, "the chat's, not the email's");
    assert_eq!(rig.store.queue_len().expect("queue"), 0);
}
