//! The in-memory set of users with push targets follows every writer of the store.

use super::*;
use crate::store::{NewPush, Op, PushKind, Subscribe, Subscription, temp_store};

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
    set.refresh().expect("refresh");
    set.any(std::iter::once(user))
}

#[test]
fn unknown_until_read_then_follows_this_process_and_others() {
    let (dir, store) = temp_store();
    let set = TargetUsers::new(store.clone());
    assert_eq!(set.any(std::iter::once("a@x")), None, "nothing read yet");
    assert_eq!(has(&set, "a@x"), Some(false));

    subscribe(&store, "a@x", "s1");
    assert_eq!(
        set.any(std::iter::once("a@x")),
        None,
        "a subscription moved it"
    );
    assert_eq!(has(&set, "a@x"), Some(true));
    assert_eq!(
        set.any(["b@x", "a@x"].into_iter()),
        Some(true),
        "any of them"
    );
    assert_eq!(set.any(std::iter::once("b@x")), Some(false));

    // Another process (`coid push`, a second coid): a connection of its own.
    let other = Store::open(&dir.path().join("s.sqlite")).expect("open");
    add_token(&other, "b@x", "openpgp:1");
    assert_eq!(
        set.any(std::iter::once("b@x")),
        None,
        "another process wrote"
    );
    assert_eq!(has(&set, "b@x"), Some(true));

    // A token set again at login changes no one's membership: still a hit.
    add_token(&other, "b@x", "openpgp:1");
    assert_eq!(set.any(std::iter::once("b@x")), Some(true));

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
    let conn = rusqlite::Connection::open(dir.path().join("s.sqlite")).expect("raw");
    conn.execute("UPDATE push_subscriptions SET username = 'c@x'", [])
        .expect("update");
    assert_eq!(set.any(std::iter::once("a@x")), None);
    assert_eq!(has(&set, "a@x"), Some(false));
    assert_eq!(has(&set, "c@x"), Some(true));
}

#[test]
fn past_the_bound_the_set_is_not_kept() {
    let (_dir, store) = temp_store();
    add_token(&store, "a@x", "openpgp:1");
    add_token(&store, "b@x", "openpgp:2");
    assert_eq!(
        store.target_users(2).expect("read").map(|u| u.len()),
        Some(2)
    );
    assert_eq!(store.target_users(1).expect("read"), None);
}
