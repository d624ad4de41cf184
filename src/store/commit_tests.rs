//! Dict commits with WebPush operations over a temporary store: the per-user limit,
//! replacement, validation within the window, unsubscribe, and all-or-nothing.

use super::*;
use crate::store::test_stores::{Kind, store_of};
use crate::store::{Depth, PushKind, Table};
use rstest::rstest;

const ALICE: &str = "alice@example.org";
const NOW_MS: i64 = 1_700_000_000_000;
const NOW: i64 = NOW_MS / 1000;

fn subscribe(id: &str, endpoint: &str, limit: usize) -> Op {
    Op::Subscribe(Box::new(Subscribe {
        subscription: Subscription {
            id: id.into(),
            client: "c".into(),
            device: "d".into(),
            msgtype: "chat".into(),
            endpoint: endpoint.into(),
            p256dh: "k".into(),
            auth: "a".into(),
            created: NOW,
            validated_at: None,
        },
        token: format!("token-{id}"),
        limit,
        validation_push: NewPush {
            username: ALICE.into(),
            kind: PushKind::WebPush,
            target: id.into(),
            payload: format!("{{\"validation\":\"token-{id}\"}}"),
            with_content: false,
            validation: true,
            not_before: NOW_MS,
            deadline: NOW_MS + 60_000,
            dedupe: None,
        },
        max_queue: 100,
    }))
}

fn validate(id: &str, token: &str, created_since: i64) -> Op {
    Op::Validate {
        id: id.into(),
        token: token.into(),
        created_since,
    }
}

fn refused(result: Result<(), CommitError>) -> String {
    match result {
        Err(CommitError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn subscribe_queues_a_validation_push_and_validate_checks_token_and_window(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    store
        .commit(ALICE, &[subscribe("s1", "https://p/1", 10)], NOW_MS)
        .expect("subscribe");
    assert_eq!(
        store
            .pending_pushes(PushKind::WebPush, ALICE, "s1")
            .expect("count"),
        1
    );
    let sub = store
        .subscription(ALICE, "s1")
        .expect("read")
        .expect("stored");
    assert_eq!(sub.validated_at, None);
    // Wrong token, or the right one too late: refused, still pending.
    refused(store.commit(ALICE, &[validate("s1", "nope", NOW - 300)], NOW_MS));
    refused(store.commit(ALICE, &[validate("s1", "token-s1", NOW + 1)], NOW_MS));
    refused(store.commit(ALICE, &[validate("s9", "token-s1", NOW - 300)], NOW_MS));
    store
        .commit(ALICE, &[validate("s1", "token-s1", NOW - 300)], NOW_MS)
        .expect("validated");
    let sub = store
        .subscription(ALICE, "s1")
        .expect("read")
        .expect("stored");
    assert_eq!(sub.validated_at, Some(NOW));
    // Once validated, the same token again is fine; the window no longer matters.
    store
        .commit(ALICE, &[validate("s1", "token-s1", NOW + 1)], NOW_MS)
        .expect("idempotent");
    // Another user cannot validate it.
    refused(store.commit("bob@example.org", &[validate("s1", "token-s1", 0)], NOW_MS));
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn the_limit_counts_other_subscriptions_and_a_replacement_starts_over(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    store
        .commit(
            ALICE,
            &[
                subscribe("a", "https://p/a", 2),
                subscribe("b", "https://p/b", 2),
            ],
            NOW_MS,
        )
        .expect("two");
    store
        .commit(ALICE, &[validate("a", "token-a", 0)], NOW_MS)
        .expect("validated");
    let reason = refused(store.commit(ALICE, &[subscribe("c", "https://p/c", 2)], NOW_MS));
    assert!(reason.contains("too many"), "{reason}");
    // Replacing "a" is within the limit; it is pending again, with one push queued.
    store
        .commit(ALICE, &[subscribe("a", "https://p/a2", 2)], NOW_MS)
        .expect("replace");
    let a = store.subscription(ALICE, "a").expect("read").expect("a");
    assert_eq!(
        (a.endpoint.as_str(), a.validated_at),
        ("https://p/a2", None)
    );
    assert_eq!(
        store
            .pending_pushes(PushKind::WebPush, ALICE, "a")
            .expect("count"),
        1
    );
    // Unsubscribe drops the subscription and its pushes.
    store
        .commit(ALICE, &[Op::Unsubscribe { id: "a".into() }], NOW_MS)
        .expect("unsubscribe");
    assert_eq!(store.subscription(ALICE, "a").expect("read"), None);
    assert_eq!(
        store
            .pending_pushes(PushKind::WebPush, ALICE, "a")
            .expect("count"),
        0
    );
    assert_eq!(store.queue_len().expect("len"), 1, "b's push stays");
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_refusal_rolls_back_the_whole_commit(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    let put = Op::Put(Write {
        table: Table::Metadata,
        key: "/private/comment".into(),
        value: Some("x".into()),
    });
    refused(store.commit(
        ALICE,
        &[
            put,
            subscribe("s1", "https://p/1", 10),
            validate("s1", "bad", 0),
        ],
        NOW_MS,
    ));
    assert_eq!(store.subscriptions(ALICE).expect("list"), []);
    assert_eq!(store.queue_len().expect("len"), 0);
    let rows = store
        .scan(Table::Metadata, ALICE, "/private/", Depth::All, 10)
        .expect("scan");
    assert!(rows.is_empty(), "{rows:?}");
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_full_queue_refuses_a_subscription(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    let Op::Subscribe(mut new) = subscribe("s1", "https://p/1", 10) else {
        unreachable!("subscribe builds Op::Subscribe")
    };
    new.max_queue = 0;
    let reason = refused(store.commit(ALICE, &[Op::Subscribe(new)], NOW_MS));
    assert!(reason.contains("queue is full"), "{reason}");
    assert_eq!(store.subscriptions(ALICE).expect("list"), []);
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn unvalidated_subscriptions_expire_with_their_pushes(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    store
        .commit(
            ALICE,
            &[
                subscribe("old", "https://p/1", 10),
                subscribe("kept", "https://p/2", 10),
            ],
            NOW_MS,
        )
        .expect("subscribe");
    store
        .commit(ALICE, &[validate("kept", "token-kept", 0)], NOW_MS)
        .expect("validate");
    assert_eq!(
        store
            .expire_subscriptions(Some("bob"), NOW + 1)
            .expect("expire"),
        0
    );
    assert_eq!(store.expire_subscriptions(None, NOW).expect("expire"), 0);
    assert_eq!(
        store.expire_subscriptions(None, NOW + 1).expect("expire"),
        1
    );
    let ids: Vec<String> = store
        .subscriptions(ALICE)
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["kept"]);
    assert_eq!(
        store
            .pending_pushes(PushKind::WebPush, ALICE, "old")
            .expect("count"),
        0
    );
    // A push service's 404 deletes only the subscription still at that endpoint.
    assert!(
        !store
            .delete_subscription(ALICE, "kept", Some("https://elsewhere"))
            .expect("delete")
    );
    assert!(
        store
            .delete_subscription(ALICE, "kept", Some("https://p/2"))
            .expect("delete")
    );
}
