//! The in-memory set of users with push targets follows every writer of the store.

use super::*;
use crate::store::test_stores::{Kind, store_of};
use crate::store::{NewPush, Op, PushKind, Subscribe, Subscription};
use rstest::rstest;

fn subscribe(store: &Store, user: &str, id: &str) {
    let sub = Subscription {
        id: id.into(),
        client: "c".into(),
        device: "d".into(),
        msgtype: "all".into(),
        endpoint: format!("https://push.example/{id}"),
        p256dh: "k".into(),
        auth: "a".into(),
        created: 1,
        validated_at: None,
    };
    let push = NewPush {
        kind: PushKind::WebPush,
        username: user.into(),
        target: id.into(),
        payload: "{}".into(),
        with_content: false,
        validation: true,
        not_before: 0,
        deadline: 0,
        dedupe: None,
    };
    let op = Op::Subscribe(Box::new(Subscribe {
        subscription: sub,
        token: "t".into(),
        limit: 10,
        validation_push: push,
        max_queue: 100,
    }));
    store.commit(user, &[op], 1000).expect("subscribe");
}

fn add_token(store: &Store, user: &str, token: &str) {
    let op = Op::AddToken {
        id: format!("id-{token}"),
        token: token.into(),
        max: 4,
    };
    store.commit(user, &[op], 1000).expect("token");
}

/// Refreshes (as the hook's slow path does) and asks about one user.
fn has(set: &TargetUsers, user: &str) -> Option<bool> {
    let version = set.refresh().expect("refresh")?;
    let answer = set.any_at(version, std::iter::once(user));
    assert_eq!(
        answer,
        set.any_now(std::iter::once(user)),
        "the counter moved"
    );
    answer
}

/// Whether any of `users` has a target, as the set answers now. The answer on an
/// async thread ([`TargetUsers::any`]) is the same where the counter is local, and
/// always "unknown" where it is a round trip (PostgreSQL).
fn any(set: &TargetUsers, kind: Kind, users: &[&str]) -> Option<bool> {
    let now = set.any_now(users.iter().copied());
    let fast = set.any(users.iter().copied(), Instant::now());
    match kind {
        Kind::Sqlite => assert_eq!(fast, now, "{users:?}"),
        Kind::Postgresql => assert_eq!(fast, None, "{users:?}"),
    }
    now
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn unknown_until_read_then_follows_this_process_and_others(#[case] kind: Kind) {
    let (guard, store) = store_of(kind);
    let set = TargetUsers::new(store.clone());
    assert_eq!(any(&set, kind, &["a@x"]), None, "nothing read yet");
    assert_eq!(has(&set, "a@x"), Some(false));

    subscribe(&store, "a@x", "s1");
    assert_eq!(any(&set, kind, &["a@x"]), None, "a subscription moved it");
    assert_eq!(has(&set, "a@x"), Some(true));
    assert_eq!(any(&set, kind, &["b@x", "a@x"]), Some(true), "any of them");
    assert_eq!(any(&set, kind, &["b@x"]), Some(false));

    // Another process (`coid push`, a second coid): a connection of its own.
    let other = guard.reopen();
    add_token(&other, "b@x", "openpgp:1");
    assert_eq!(any(&set, kind, &["b@x"]), None, "another process wrote");
    assert_eq!(has(&set, "b@x"), Some(true));

    // A token set again at login changes no one's membership: still a hit.
    add_token(&other, "b@x", "openpgp:1");
    assert_eq!(any(&set, kind, &["b@x"]), Some(true));

    // Removal, by every path that deletes rows.
    other.commit("b@x", &[Op::RemoveTokens], 1000).expect("nil");
    assert_eq!(has(&set, "b@x"), Some(false));
    other
        .delete_subscription("a@x", "s1", None)
        .expect("delete");
    assert_eq!(has(&set, "a@x"), Some(false));

    // A hand-made SQL change that moves a row to another user.
    subscribe(&store, "a@x", "s2");
    assert_eq!(has(&set, "a@x"), Some(true));
    let moved = "UPDATE push_subscriptions SET username = 'c@x'";
    guard.raw(moved, moved);
    assert_eq!(any(&set, kind, &["a@x"]), None);
    assert_eq!(has(&set, "a@x"), Some(false));
    assert_eq!(has(&set, "c@x"), Some(true));
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn past_the_bound_the_set_is_not_kept(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    add_token(&store, "a@x", "openpgp:1");
    add_token(&store, "b@x", "openpgp:2");
    assert_eq!(
        store.target_users(2).expect("read").map(|u| u.len()),
        Some(2)
    );
    assert_eq!(store.target_users(1).expect("read"), None);
}

/// A message begun after a target was added never gets the set as it was before:
/// the counter read that answers it began after the message did (SQLite; PostgreSQL
/// never answers here).
#[test]
fn a_target_added_before_a_message_began_is_seen() {
    let (_guard, store) = store_of(Kind::Sqlite);
    let set = TargetUsers::new(store.clone());
    assert_eq!(has(&set, "a@x"), Some(false));
    let early = Instant::now();
    assert_eq!(set.any(std::iter::once("a@x"), early), Some(false));
    add_token(&store, "a@x", "tok");
    // Begun before the token: the read before it may answer.
    assert_eq!(set.any(std::iter::once("a@x"), early), Some(false));
    // Begun after: unknown until the set is read again, then seen.
    let late = Instant::now();
    assert_eq!(set.any(std::iter::once("a@x"), late), None);
    assert_eq!(has(&set, "a@x"), Some(true));
    assert_eq!(set.any(std::iter::once("a@x"), late), Some(true));
}
