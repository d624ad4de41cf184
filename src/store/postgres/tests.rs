//! What only PostgreSQL has to show: nodes migrating at once, a newer schema refused,
//! workers on several nodes claiming at once, a lost connection replaced, an
//! unreachable server as a typed error.

use std::collections::HashSet;
use std::time::Duration;

use super::test_server::fresh_database;
use super::{MIGRATIONS, Postgres};
use crate::store::test_stores::postgres_store;
use crate::store::{Kinds, NewPush, PushKind, StoreError};

fn push(n: usize) -> NewPush {
    NewPush {
        kind: PushKind::DeltaChat,
        username: "a@x".into(),
        target: format!("t{n}"),
        payload: String::new(),
        with_content: false,
        validation: false,
        not_before: 0,
        deadline: i64::MAX,
        dedupe: None,
    }
}

/// Nodes starting at once on an empty database migrate it once, and all open.
#[test]
fn nodes_starting_at_once_migrate_once() {
    let config = fresh_database();
    let opened: Vec<Result<Postgres, StoreError>> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..5)
            .map(|_| {
                let config = config.clone();
                s.spawn(move || Postgres::connect(config, 2, Duration::from_secs(10)))
            })
            .collect();
        starting
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    for node in &opened {
        assert!(node.is_ok(), "{:?}", node.as_ref().err());
    }
    let mut raw = config.connect(postgres::NoTls).expect("raw");
    let version: i64 = raw
        .query_one("SELECT version FROM coid_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(version, MIGRATIONS.len() as i64);
}

/// A database of a later coid is refused, and left as it is.
#[test]
fn refuses_a_newer_schema() {
    let config = fresh_database();
    drop(postgres_store(config.clone()));
    let newer = MIGRATIONS.len() as i64 + 1;
    let mut raw = config.connect(postgres::NoTls).expect("raw");
    raw.execute("UPDATE coid_schema SET version = $1", &[&newer])
        .expect("newer");
    match Postgres::connect(config, 2, Duration::from_secs(10)) {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (newer, MIGRATIONS.len() as i64));
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
    let version: i64 = raw
        .query_one("SELECT version FROM coid_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(version, newer, "left alone");
}

/// Workers on several nodes claiming at once never get the same row, and between
/// them get every row.
#[test]
fn nodes_claiming_at_once_never_share_a_row() {
    let config = fresh_database();
    let store = postgres_store(config.clone());
    for user in ["a@x"] {
        for n in 0..60 {
            let op = crate::store::Op::AddToken {
                id: format!("t{n}"),
                token: format!("openpgp:{n}"),
                max: 100,
            };
            store.commit(user, &[op], 1000).expect("token");
        }
    }
    let pushes: Vec<NewPush> = (0..60).map(push).collect();
    assert_eq!(store.enqueue(&pushes, 1000, 0).expect("enqueue"), 60);
    let nodes: Vec<_> = (0..4).map(|_| postgres_store(config.clone())).collect();
    let claimed: Vec<Vec<i64>> = std::thread::scope(|s| {
        let workers: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let got = node.claim_due(10, 1_000_000, 5, Kinds::ALL).expect("claim");
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.iter().map(|p| p.seq));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let all: Vec<i64> = claimed.concat();
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 60, "every row claimed once");
    assert_eq!(distinct.len(), 60, "no row claimed twice");
}

/// A connection the server dropped (restart, failover, idle kill) is replaced when
/// taken from the pool: the next call works.
#[test]
fn a_lost_connection_is_replaced() {
    let config = fresh_database();
    let store = postgres_store(config.clone());
    store.set("a@x", "/private/x", Some("1")).expect("set");
    let mut admin = config.connect(postgres::NoTls).expect("admin");
    let dbname = config.get_dbname().expect("dbname").to_owned();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&dbname],
        )
        .expect("terminate");
    assert_eq!(
        store.get("a@x", "/private/x").expect("after").as_deref(),
        Some("1")
    );
}

/// No server: a typed error within the timeout, no panic.
#[test]
fn an_unreachable_server_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("coid")
        .dbname("coid");
    match Postgres::connect(config, 2, Duration::from_secs(1)) {
        Err(StoreError::Unavailable(text)) => assert!(text.contains("127.0.0.1"), "{text}"),
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// A push queued on another node wakes this node's worker (NOTIFY), without waiting
/// for its timer.
#[test]
fn a_push_queued_on_another_node_wakes_the_worker() {
    let config = fresh_database();
    let node_a = postgres_store(config.clone());
    let (woken, wakes) = std::sync::mpsc::channel();
    node_a.watch_queue(Box::new(move || {
        let _ = woken.send(());
    }));
    // The listener says it is there by waking once (a notification may have been
    // missed before it listened).
    wakes
        .recv_timeout(Duration::from_secs(10))
        .expect("listening");
    let node_b = postgres_store(config);
    assert_eq!(node_b.enqueue(&[push(1)], 10, 0).expect("enqueue"), 1);
    wakes
        .recv_timeout(Duration::from_secs(10))
        .expect("woken by node B's enqueue");
}

/// `sslmode=require`: TLS, the server's certificate verified against `ca_file`;
/// without the CA that issued it, no connection.
#[test]
fn sslmode_require_verifies_the_server() {
    let plain = fresh_database();
    let mut required = plain.clone();
    required.ssl_mode(postgres::config::SslMode::Require);
    let ca = super::test_server::server().ca_file();
    let tls = super::tls::connector(Some(&ca)).expect("connector");
    let db = Postgres::connect_with(required.clone(), tls, 2, Duration::from_secs(10))
        .expect("TLS with the CA");
    let ssl: bool = db
        .conn()
        .expect("conn")
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the connection uses TLS");
    match Postgres::connect(required, 2, Duration::from_secs(5)) {
        Err(StoreError::Unavailable(_)) => {}
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("connected with an unverified certificate"),
    }
    // Without sslmode=require: no TLS, even though the server offers it.
    let db = Postgres::connect(plain, 2, Duration::from_secs(10)).expect("plain");
    let ssl: bool = db
        .conn()
        .expect("conn")
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(!ssl);
}

/// The last handle dropped on an async thread (the end of `coid deliver`, a reload's
/// old pipeline) closes its connections elsewhere: no panic.
#[test]
fn dropping_the_store_on_an_async_thread_is_fine() {
    let store = postgres_store(fresh_database());
    store
        .set("a@x", "/private/x", Some("1"))
        .expect("a connection in the pool");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async move { drop(store) });
}
