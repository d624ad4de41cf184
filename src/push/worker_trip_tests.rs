//! The worker's trips to the store run beside its sends: while a trip waits for the
//! store (here another connection holds SQLite's write lock), the rows it claimed
//! before keep being sent, and none beyond them. Over a real SQLite file and real
//! HTTP to a notification service stand-in on loopback that answers 200 after a
//! pause (so the test sees where each trip falls).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{AHEAD, Worker};
use crate::config::{DeltaChatConfig, PushConfig};
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

#[test]
fn sends_go_on_while_a_trip_waits_for_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("coid.sqlite");
    let store = Store::open(&path).expect("store");
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
    let now = unix_now_ms();
    store.commit(USER, &[token], now).expect("token");
    let queue = PushQueue::new(store.clone(), &config);
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
    assert_eq!(queue.enqueue(&rows, now).expect("queued"), QUEUED);

    let policy = EndpointPolicy {
        allow_private: true,
    };
    let notifier = Notifier::new(&deltachat, policy, CONCURRENCY).expect("notifier");
    let worker =
        Worker::new(queue, &config, Duration::from_secs(3600)).with_deltachat(notifier, &deltachat);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = runtime.spawn(worker.run(stopped));

    // The first trip claimed AHEAD × CONCURRENCY rows; the next one is due when
    // fewer than CONCURRENCY of them wait, about three pauses later. Before then,
    // the store's write lock goes to another connection.
    assert!(
        reaches(&answered, 1, Duration::from_secs(10)),
        "a first send"
    );
    let lock = rusqlite::Connection::open(&path).expect("another connection");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    assert!(
        answered.load(Ordering::SeqCst) < AHEAD * CONCURRENCY - CONCURRENCY,
        "the lock came before the second trip"
    );
    // Every row claimed before is sent though the second trip waits: with the trip
    // in the worker's loop, the last one waited for it.
    let claimed = AHEAD * CONCURRENCY;
    assert!(
        reaches(&answered, claimed, 20 * PAUSE),
        "{} of the {claimed} claimed rows sent while the store was locked",
        answered.load(Ordering::SeqCst)
    );
    std::thread::sleep(5 * PAUSE);
    assert_eq!(
        answered.load(Ordering::SeqCst),
        claimed,
        "nothing beyond them"
    );

    lock.execute_batch("COMMIT").expect("the lock let go");
    assert!(
        reaches(&answered, QUEUED, Duration::from_secs(30)),
        "{} of {QUEUED} sent after the lock",
        answered.load(Ordering::SeqCst)
    );
    let _ = stop.send(true);
    runtime.block_on(running).expect("the worker stops");
    // The round that waited for the lock recorded its outcomes: nothing is left
    // leased to be sent twice.
    assert_eq!(store.queue_len().expect("queue"), 0);
    assert_eq!(answered.load(Ordering::SeqCst), QUEUED);
}
