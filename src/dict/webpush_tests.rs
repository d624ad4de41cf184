//! The WebPush entries through the attribute dictionary, over a temporary store: the
//! VAPID key, subscribe → validation push queued → validate → listing, the limit, the
//! endpoint rules, unsubscribe, and the entries when push is off.

use super::*;
use crate::config::PushConfig;
use crate::dict::webpush::WebPush;
use crate::push::queue::PushQueue;
use crate::push::webpush::vapid::VapidKey;
use crate::store::{Kinds, temp_store};

const GUID: &str = "0413580b5cf9006b1e38000083ecc375";
const ALICE: &str = "alice@example.org";
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

fn key(name: &str) -> String {
    format!("priv/{GUID}/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/webpush/{name}")
}

fn json(endpoint: &str) -> String {
    format!(
        r#"{{"client":"OX COI","device":"phone","msgtype":"chat","resource":{{"endpoint":"{endpoint}","keys":{{"p256dh":"{P256DH}","auth":"{AUTH}"}}}}}}"#
    )
}

fn setup(config: PushConfig) -> (tempfile::TempDir, Store, Attributes, VapidKey) {
    let (dir, store) = temp_store();
    let vapid = VapidKey::generate();
    let webpush = WebPush::new(PushQueue::new(store.clone(), &config), &vapid);
    let attrs = Attributes::new(
        store.clone(),
        &UsersConfig::default(),
        &CoiConfig::default(),
    )
    .with_webpush(webpush);
    (dir, store, attrs, vapid)
}

fn commit(attrs: &Attributes, key: &str, value: Option<&str>) -> Reply {
    let change = Change {
        key: key.into(),
        value: value.map(str::to_owned),
    };
    attrs.commit(1, false, ALICE, &[change])
}

fn ok(reply: Reply) {
    assert_eq!(
        reply,
        Reply::Committed {
            id: 1,
            async_: false
        }
    );
}

fn refusal(reply: Reply) -> String {
    match reply {
        Reply::CommitFailed { error, .. } => error,
        other => panic!("expected a refusal: {other:?}"),
    }
}

fn listed(attrs: &Attributes, id: &str) -> serde_json::Value {
    match attrs.lookup(ALICE, &key(&format!("subscriptions/{id}"))) {
        Reply::Value(v) => serde_json::from_str(&v).expect("listing JSON"),
        other => panic!("{id}: {other:?}"),
    }
}

fn token(store: &Store) -> String {
    let now = crate::store::unix_now_ms();
    let due = store.claim_due(now, now, 10, Kinds::ALL).expect("claim");
    let push = due.last().expect("a validation push is queued");
    assert!(push.validation);
    let payload: serde_json::Value = serde_json::from_str(&push.payload).expect("json");
    payload["validation"].as_str().expect("token").to_owned()
}

#[test]
fn vapid_is_a_read_only_virtual_entry_listed_under_webpush() {
    let (_dir, _store, attrs, vapid) = setup(PushConfig::default());
    assert_eq!(
        attrs.lookup(ALICE, &key("vapid")),
        Reply::Value(vapid.public_pem())
    );
    let error = refusal(commit(&attrs, &key("vapid"), Some("x")));
    assert!(error.contains("read-only"), "{error}");
    let rows = attrs.iterate(ALICE, &key(""), IterFlags(9), 100);
    assert_eq!(
        rows,
        [
            Reply::Row {
                key: key("vapid"),
                value: None
            },
            Reply::EndOfRows
        ]
    );
}

#[test]
fn subscribe_validate_list_and_unsubscribe() {
    let (_dir, store, attrs, _) = setup(PushConfig {
        allow_private_endpoints: true,
        ..PushConfig::default()
    });
    let sub = key("subscriptions/31754ee7-d3ee");
    ok(commit(
        &attrs,
        &sub,
        Some(&json("http://127.0.0.1:8080/push/1")),
    ));
    let listing = listed(&attrs, "31754ee7-d3ee");
    assert_eq!(listing["validated"], false);
    assert_eq!(listing["msgtype"], "chat");
    assert!(
        listing["created"]
            .as_str()
            .expect("created")
            .ends_with("+00:00")
    );
    let token = token(&store);
    let validate = format!("{sub}/validate");
    refusal(commit(&attrs, &validate, Some("wrong")));
    refusal(commit(&attrs, &validate, None));
    assert_eq!(
        attrs.lookup(ALICE, &validate),
        Reply::NotFound,
        "write-only"
    );
    ok(commit(&attrs, &validate, Some(&token)));
    assert_eq!(listed(&attrs, "31754ee7-d3ee")["validated"], true);
    // DEPTH 1 below subscriptions lists it; below webpush it is listed too (Dovecot
    // applies the depth itself).
    let rows = attrs.iterate(ALICE, &key("subscriptions/"), IterFlags(9), 100);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let rows = attrs.iterate(ALICE, &key(""), IterFlags(9), 100);
    assert_eq!(rows.len(), 3, "{rows:?}");
    ok(commit(&attrs, &sub, None));
    assert_eq!(attrs.lookup(ALICE, &sub), Reply::NotFound);
    assert_eq!(
        store.queue_len().expect("len"),
        0,
        "its pushes went with it"
    );
}

#[test]
fn limits_endpoint_rules_and_bad_json_are_refused() {
    let (_dir, store, attrs, _) = setup(PushConfig {
        subscription_limit: 1,
        ..PushConfig::default()
    });
    for (value, needle) in [
        (json("http://push.example/x"), "https"),
        (json("https://127.0.0.1/x"), "not public"),
        (json("https://10.0.0.1/x"), "not public"),
        ("{}".to_owned(), "invalid JSON"),
    ] {
        let error = refusal(commit(
            &attrs,
            &key("subscriptions/abcdefghij"),
            Some(&value),
        ));
        assert!(error.contains(needle), "{value}: {error}");
    }
    ok(commit(
        &attrs,
        &key("subscriptions/one"),
        Some(&json("https://push.example/1")),
    ));
    let error = refusal(commit(
        &attrs,
        &key("subscriptions/two"),
        Some(&json("https://push.example/2")),
    ));
    assert!(error.contains("too many"), "{error}");
    refusal(commit(&attrs, &key("other"), Some("x")));
    assert_eq!(store.subscriptions(ALICE).expect("list").len(), 1);
}

#[test]
fn expired_pending_subscriptions_vanish_when_read() {
    let (_dir, store, attrs, _) = setup(PushConfig::default());
    ok(commit(
        &attrs,
        &key("subscriptions/old"),
        Some(&json("https://push.example/1")),
    ));
    // Store it again, created just past the window.
    let old = store
        .subscription(ALICE, "old")
        .expect("read")
        .expect("stored");
    let backdated = old.created - 301;
    let op = crate::store::Op::Unsubscribe { id: "old".into() };
    store.commit(ALICE, &[op], 0).expect("delete");
    let reinsert = |created| {
        let mut sub = old.clone();
        sub.created = created;
        crate::store::Op::Subscribe(Box::new(crate::store::Subscribe {
            subscription: sub,
            token: "t".into(),
            limit: 10,
            validation_push: crate::store::NewPush {
                username: ALICE.into(),
                kind: crate::store::PushKind::WebPush,
                target: "old".into(),
                payload: "{}".into(),
                with_content: false,
                validation: true,
                not_before: 0,
                deadline: i64::MAX,
                dedupe: None,
            },
            max_queue: 10,
        }))
    };
    store
        .commit(ALICE, &[reinsert(backdated)], 0)
        .expect("backdated");
    assert_eq!(
        attrs.lookup(ALICE, &key("subscriptions/old")),
        Reply::NotFound
    );
    assert_eq!(store.subscriptions(ALICE).expect("list"), []);
    assert_eq!(store.queue_len().expect("len"), 0);
}

#[test]
fn with_push_off_the_entries_are_nil_and_refused() {
    let (_dir, store) = temp_store();
    let attrs = Attributes::new(store, &UsersConfig::default(), &CoiConfig::default());
    assert_eq!(attrs.lookup(ALICE, &key("vapid")), Reply::NotFound);
    let error = refusal(commit(
        &attrs,
        &key("subscriptions/abcdefghij"),
        Some(&json("https://p.example/")),
    ));
    assert!(error.contains("not enabled"), "{error}");
    let rows = attrs.iterate(ALICE, &key(""), IterFlags(9), 100);
    assert_eq!(rows, [Reply::EndOfRows]);
}

/// Delta Chat's token (issue 9): on INBOX and on the server alike it joins the user's
/// token set, reads as NIL, is listed nowhere, and a bad one fails the commit.
#[test]
fn devicetoken_joins_the_token_set_and_reads_as_nil() {
    let (_dir, store, attrs, _) = setup(PushConfig::default());
    let server = format!("priv/{GUID}/vendor/vendor.dovecot/pvt/server/devicetoken");
    let inbox = format!("priv/{GUID}/devicetoken");
    ok(commit(&attrs, &server, Some("fcm-token-123")));
    ok(commit(&attrs, &inbox, Some("openpgp:abc")));
    ok(commit(&attrs, &inbox, Some("openpgp:abc")));
    assert_eq!(attrs.lookup(ALICE, &server), Reply::NotFound);
    assert_eq!(attrs.lookup(ALICE, &inbox), Reply::NotFound);
    let tokens: Vec<String> = store
        .tokens(ALICE, 0)
        .expect("tokens")
        .into_iter()
        .map(|t| t.token)
        .collect();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens.contains(&"openpgp:abc".to_owned()));
    assert_eq!(store.get(ALICE, "/private/devicetoken").expect("get"), None);
    let listed = attrs.iterate(ALICE, &format!("priv/{GUID}/"), IterFlags(9), 100);
    assert_eq!(listed, [Reply::EndOfRows], "never listed");
    let bad = commit(&attrs, &inbox, Some("a\tb"));
    assert!(matches!(bad, Reply::CommitFailed { .. }), "{bad:?}");
    ok(commit(&attrs, &inbox, None));
    assert!(
        store.tokens(ALICE, 0).expect("tokens").is_empty(),
        "NIL removes all"
    );
}

/// The server entries Delta Chat reads: answered, listed under their parent, and
/// read-only.
#[test]
fn server_entries_are_answered_and_read_only() {
    let (_dir, _store, attrs, _) = setup(PushConfig::default());
    let shared = format!("shared/{GUID}/vendor/vendor.dovecot/pvt/server/");
    let max = format!("{shared}vendor/deltachat/maxsmtprecipients");
    assert_eq!(attrs.lookup(ALICE, &max), Reply::Value("1000".into()));
    let iroh = format!("{shared}vendor/deltachat/irohrelay");
    assert_eq!(attrs.lookup(ALICE, &iroh), Reply::NotFound);
    assert_eq!(
        attrs.lookup(ALICE, &format!("{shared}admin")),
        Reply::NotFound
    );
    let listed = attrs.iterate(
        ALICE,
        &format!("{shared}vendor/deltachat/"),
        IterFlags(1),
        100,
    );
    assert_eq!(
        listed,
        [
            Reply::Row {
                key: max.clone(),
                value: Some("1000".into())
            },
            Reply::EndOfRows
        ]
    );
    for key in [
        &max,
        &iroh,
        &format!("{shared}vendor/deltachat/appversions"),
    ] {
        let refused = commit(&attrs, key, Some("5"));
        assert!(
            matches!(refused, Reply::CommitFailed { .. }),
            "{key}: {refused:?}"
        );
        let refused = commit(&attrs, key, None);
        assert!(
            matches!(refused, Reply::CommitFailed { .. }),
            "{key}: {refused:?}"
        );
    }
}
