//! Several coid nodes, one state: coid next to each Dovecot backend, all on one real
//! PostgreSQL (our own instance on loopback, `common::postgres`), with real Dovecot,
//! Postfix and a Web Push service that decrypts and verifies with another
//! implementation. What one node writes, the others act on; a node that dies mid-push
//! loses nothing; nodes started at once end with one VAPID key.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::coid::{Coid, CoidOpts};
use common::message::chat_message_id;
use common::metadata::{COI_FILTER, DictClient, set};
use common::metrics::{http_get, sample, scrape};
use common::postgres::{TestServer, fresh_url, url_of};
use common::push_flow::{Flow, PUSH_WAIT, bare};
use common::push_receiver::Answer;
use common::{MessageBuilder, tail_file, wait_until};

/// The VAPID key entry as Dovecot asks the dict for it (a server attribute).
const VAPID_DICT_KEY: &str = "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/webpush/vapid";

/// The `msg-id`s of the message pushes `flow` decrypted for endpoint `name`.
fn pushed_ids(flow: &Flow, name: &str) -> Vec<String> {
    flow.message_pushes(name)
        .iter()
        .map(|p| p["msg-id"].as_str().expect("msg-id").to_owned())
        .collect()
}

/// The VAPID public keys (`k`) the push service saw, from every node that sent.
fn vapid_keys(flow: &Flow) -> BTreeSet<String> {
    flow.receiver
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(r["vapid_ok"], true, "{r:#}");
            r["vapid"]["k"].as_str().expect("k").to_owned()
        })
        .collect()
}

/// COI settings written over IMAP METADATA through node A's dict socket decide where
/// node B stores mail, at once: B read the settings before (COI off, the chat went to
/// the INBOX), and its next delivery after the write sees them (its cache is checked
/// against the shared store's version on every delivery).
#[test]
fn settings_written_through_one_node_rule_mail_through_another() {
    let url = fresh_url();
    let flow = Flow::start_nodes(&[("phone", vec![])], "", &url, 1);
    let before = MessageBuilder::chat()
        .from("Bob <bob@example.net>")
        .message_id(&chat_message_id())
        .body("before COI");
    flow.send(&before, "INBOX");

    let _imap = flow.alice();
    let after = flow.send_chat("after COI");

    let b_log = std::fs::read_to_string(flow.others[0].log_path()).expect("node B's log");
    assert!(
        b_log.contains(bare(&after)),
        "node B did not deliver {after}:\n{}",
        tail_file(&flow.others[0].log_path(), 30)
    );
    let a_log = std::fs::read_to_string(flow.stack.coid.log_path()).expect("node A's log");
    assert!(
        !a_log.contains(bare(&after)),
        "node A delivered {after}: the test does not test what it says"
    );
}

/// A subscription made through node A is pushed once per message by whichever of the
/// three nodes claims it: every push arrives, none twice, all signed with the one
/// VAPID key the subscription was made under.
#[test]
fn a_subscription_made_through_one_node_is_pushed_once_by_any() {
    let url = fresh_url();
    let flow = Flow::start_nodes(&[("phone", vec![])], "", &url, 2);
    let mut imap = flow.alice();
    flow.subscribe_validated(&mut imap, "p1", "phone", "chat");

    let sent: Vec<String> = (0..8)
        .map(|i| bare(&flow.send_chat(&format!("chat {i}"))).to_owned())
        .collect();
    flow.wait_message_pushes("phone", sent.len());
    // Every message is delivered and pushed: any duplicate would show up by now or
    // with the next message, whose push is queued behind the others.
    let last = bare(&flow.send_chat("the last")).to_owned();
    wait_until(PUSH_WAIT, || {
        pushed_ids(&flow, "phone").contains(&last).then_some(())
    })
    .expect("the last push");
    let mut pushed = pushed_ids(&flow, "phone");
    pushed.sort();
    let mut expected: Vec<String> = sent.into_iter().chain([last]).collect();
    expected.sort();
    assert_eq!(pushed, expected, "each message pushed exactly once");

    let keys = vapid_keys(&flow);
    assert_eq!(keys.len(), 1, "one VAPID key for the deployment: {keys:?}");
}

/// Three nodes started at the same moment on an empty database: each creates the
/// VAPID key if none exists, and they end with one, which every node serves.
#[test]
fn nodes_started_at_once_end_with_one_vapid_key() {
    let url = fresh_url();
    let nodes: Vec<Coid> = std::thread::scope(|scope| {
        let started: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                scope.spawn(move || {
                    let mut opts = CoidOpts::dovecot("/nonexistent/lmtp");
                    opts.postgres_url = Some(url);
                    opts.extra_toml = "[push]\nallow_private_endpoints = true\n".into();
                    Coid::start(opts)
                })
            })
            .collect();
        started
            .into_iter()
            .map(|s| s.join().expect("a node started"))
            .collect()
    });
    let served: HashSet<String> = nodes
        .iter()
        .map(|node| {
            let mut dict = DictClient::connect(node);
            dict.send(b"H3\t2\t0\t\tcoid\n");
            dict.send(format!("L{VAPID_DICT_KEY}\talice@example.org\n").as_bytes());
            let line = String::from_utf8(dict.line().expect("lookup")).expect("utf-8");
            assert!(line.starts_with("O-----BEGIN"), "{line}");
            line
        })
        .collect();
    assert_eq!(
        served.len(),
        1,
        "the nodes serve different keys: {served:#?}"
    );
}

/// A node SIGKILLed while its push is in flight (the push service has the request
/// and has not answered) holds that row's lease; once the lease ends another node
/// claims the row and sends it: the push arrives, at least once.
#[test]
fn a_node_killed_holding_a_lease_loses_no_push() {
    let url = fresh_url();
    // The validation push is answered; the first message push stalls for a minute.
    let answers = vec![Answer::Status(201), Answer::Stall(60)];
    let mut flow = Flow::start_nodes(&[("phone", answers)], "timeout_secs = 3\n", &url, 0);
    let mut imap = flow.alice();
    flow.subscribe_validated(&mut imap, "p1", "phone", "chat");

    let id = bare(&flow.send_chat("in flight when the node dies")).to_owned();
    let stalled = wait_until(PUSH_WAIT, || {
        flow.receiver
            .stalls()
            .into_iter()
            .find(|r| r["plaintext"].as_str().is_some_and(|p| p.contains(&id)))
    })
    .expect("the push reached the service and stalls");
    assert_eq!(stalled["endpoint"], "phone");
    flow.stack.coid.signal("KILL");
    assert_eq!(flow.stack.coid.wait_exit(Duration::from_secs(10)), Some(-1));
    let killed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();

    let mut opts = CoidOpts::dovecot(&flow.stack.dovecot.lmtp_socket().display().to_string());
    opts.postgres_url = Some(url);
    opts.extra_toml =
        "[push]\nallow_private_endpoints = true\nbackoff_max_secs = 2\ntimeout_secs = 3\n".into();
    let other = Coid::start(opts);
    let resent = wait_until(Duration::from_secs(30), || {
        flow.receiver.requests().into_iter().find(|r| {
            r["received"].as_f64().is_some_and(|t| t > killed_at)
                && r["plaintext"].as_str().is_some_and(|p| p.contains(&id))
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no node sent the killed node's push again:\n{:#?}\n{}",
            flow.receiver.requests(),
            tail_file(&other.log_path(), 40)
        )
    });
    assert_eq!(resent["status"], 201, "{resent:#}");
    assert_eq!(resent["vapid_ok"], true, "{resent:#}");
}

/// PostgreSQL stopped while mail flows and started again: a SETMETADATA gets NO; what
/// could not be decided (the recipient's settings unreadable) is deferred with a 4xx,
/// never answered 250 on a guess, never refused; `/health` says degraded and the
/// store errors are counted; once the server is back, every node carries on by
/// itself, each message is stored once where its settings say (the refused
/// SETMETADATA changed nothing), and each is pushed.
#[test]
fn postgres_stopped_and_started_under_load_defers_and_loses_nothing() {
    let server = TestServer::start_own();
    let url = url_of(&server.new_database());
    let flow = Flow::start_nodes(&[("phone", vec![])], "", &url, 1);
    let mut imap = flow.alice();
    flow.subscribe_validated(&mut imap, "p1", "phone", "chat");
    let first = bare(&flow.send_chat("before the outage")).to_owned();
    flow.wait_message_pushes("phone", 1);

    server.stop();
    let (status, text) = set(&mut imap, "", &[(COI_FILTER, Some("seen"))]);
    assert_eq!(
        status, "NO",
        "SETMETADATA while the database is down: {text}"
    );
    let during: Vec<String> = (0..3)
        .map(|i| {
            let chat = MessageBuilder::chat()
                .from("Bob <bob@example.net>")
                .message_id(&chat_message_id())
                .body(&format!("during the outage {i}"));
            flow.stack
                .send("bob@example.net", &["alice@example.org"], &chat);
            bare(&chat.id()).to_owned()
        })
        .collect();
    let deferred = wait_until(Duration::from_secs(30), || {
        let listing = flow.stack.postfix.queue_listing();
        (flow.stack.postfix.queue_ids().len() >= during.len()
            && listing.matches("said: 451 4.3.0").count() >= during.len())
        .then_some(listing)
    })
    .unwrap_or_else(|| {
        panic!(
            "Postfix did not hold the outage's mail as deferred (451 4.3.0):\n{}\n{}",
            flow.stack.postfix.queue_listing(),
            tail_file(&flow.others[0].log_path(), 40)
        )
    });
    assert!(
        !deferred.contains("said: 5"),
        "refused during the outage:\n{deferred}"
    );
    // Both nodes say so: /health degraded (its probe runs every 10 s), store errors
    // counted.
    for node in [&flow.stack.coid, &flow.others[0]] {
        let health = wait_until(Duration::from_secs(30), || {
            let (status, body) = http_get(node.metrics_addr(), "/health");
            (status == 503).then_some(body)
        })
        .unwrap_or_else(|| {
            panic!(
                "/health not degraded: {:?}",
                http_get(node.metrics_addr(), "/health")
            )
        });
        assert!(health.contains("degraded"), "{health}");
    }
    let errors = sample(
        &scrape(flow.others[0].metrics_addr()),
        r#"coid_state_store_errors_total{engine="postgresql"}"#,
    );
    assert!(errors.is_some_and(|n| n > 0.0), "store errors: {errors:?}");
    for id in &during {
        assert_eq!(
            imap.count_message(&format!("<{id}>")),
            0,
            "{id} stored on a guess"
        );
    }

    server.start_again();
    flow.stack
        .postfix
        .wait_for_empty_queue(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", tail_file(&flow.others[0].log_path(), 40)));
    let after = bare(&flow.send_chat("after the outage")).to_owned();
    for node in [&flow.stack.coid, &flow.others[0]] {
        wait_until(Duration::from_secs(30), || {
            (http_get(node.metrics_addr(), "/health").0 == 200).then_some(())
        })
        .expect("/health serving again once PostgreSQL is back");
    }
    for id in during.iter().chain([&first, &after]) {
        let stored = imap.find_all(&format!("<{id}>"));
        assert_eq!(stored.len(), 1, "{id}: {stored:?}");
        assert_eq!(stored[0].mailbox, "COI/Chats", "{id}");
    }
    let pushes = flow.wait_message_pushes("phone", during.len() + 2);
    let pushed: HashSet<&str> = pushes.iter().filter_map(|p| p["msg-id"].as_str()).collect();
    for id in during.iter().chain([&first, &after]) {
        assert!(pushed.contains(id.as_str()), "{id} not pushed: {pushed:?}");
    }
}
