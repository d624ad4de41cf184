//! Delta Chat device tokens over a temporary store: refresh without duplicates, the
//! per-user cap, NIL, expiry, and that their notifications go with them.

use crate::store::test_stores::{Kind, store_of};
use crate::store::{Destination, Kinds, NewPush, Op, PushKind, Store};
use rstest::rstest;

const ALICE: &str = "alice@example.org";
const NOW: i64 = 1_700_000_000;

fn add(store: &Store, user: &str, id: &str, at: i64) {
    let op = Op::AddToken {
        id: id.into(),
        token: format!("token-{id}"),
        max: 3,
    };
    store.commit(user, &[op], at * 1000).expect("add token");
}

fn ids(store: &Store, user: &str) -> Vec<String> {
    let tokens = store.tokens(user, 0).expect("tokens");
    tokens.into_iter().map(|t| t.id).collect()
}

fn notification(user: &str, id: &str) -> NewPush {
    NewPush {
        kind: PushKind::DeltaChat,
        username: user.into(),
        target: id.into(),
        payload: String::new(),
        with_content: false,
        validation: false,
        not_before: 0,
        deadline: i64::MAX,
        dedupe: None,
    }
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn setting_again_refreshes_and_the_cap_drops_the_least_recently_set(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    add(&store, ALICE, "a", NOW);
    add(&store, ALICE, "b", NOW + 1);
    add(&store, ALICE, "a", NOW + 2);
    let tokens = store.tokens(ALICE, 0).expect("tokens");
    assert_eq!(tokens.len(), 2, "no duplicate");
    let a = tokens.iter().find(|t| t.id == "a").expect("a");
    assert_eq!((a.created, a.updated), (NOW, NOW + 2), "refreshed");
    add(&store, ALICE, "c", NOW + 3);
    store
        .enqueue(&[notification(ALICE, "b")], 10, 0)
        .expect("queued");
    add(&store, ALICE, "d", NOW + 4);
    assert_eq!(
        ids(&store, ALICE),
        ["a", "c", "d"],
        "b, set least recently, went"
    );
    assert_eq!(store.queue_len().expect("len"), 0, "with its notification");
    add(&store, "bob@example.org", "a", NOW);
    assert_eq!(store.token_count().expect("count"), 4);
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn nil_removes_a_users_tokens_and_their_notifications(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    add(&store, ALICE, "a", NOW);
    add(&store, ALICE, "b", NOW);
    add(&store, "bob@example.org", "a", NOW);
    let queued = [
        notification(ALICE, "a"),
        notification("bob@example.org", "a"),
    ];
    store.enqueue(&queued, 10, 0).expect("queued");
    store
        .commit(ALICE, &[Op::RemoveTokens], NOW * 1000)
        .expect("nil");
    assert!(ids(&store, ALICE).is_empty());
    assert_eq!(ids(&store, "bob@example.org"), ["a"]);
    assert_eq!(store.queue_len().expect("len"), 1, "bob's stays");
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn old_tokens_expire_and_claims_carry_the_token(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    add(&store, ALICE, "old", NOW - 100);
    add(&store, ALICE, "new", NOW);
    assert_eq!(ids(&store, ALICE).len(), 2);
    assert_eq!(store.tokens(ALICE, NOW - 50).expect("recent").len(), 1);
    let queued = [notification(ALICE, "old"), notification(ALICE, "new")];
    store.enqueue(&queued, 10, 0).expect("queued");
    assert_eq!(store.expire_tokens(NOW - 50).expect("expire"), 1);
    assert_eq!(ids(&store, ALICE), ["new"]);
    let claimed = store.claim_due(1, 2, 10, Kinds::ALL).expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        claimed[0].to,
        Destination::DeltaChat {
            token: "token-new".into()
        }
    );
    assert_eq!(claimed[0].kind(), PushKind::DeltaChat);
    assert!(store.delete_token(ALICE, "new").expect("delete"));
    assert!(!store.delete_token(ALICE, "new").expect("again"));
    assert_eq!(store.queue_len().expect("len"), 0);
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_kind_is_held_back_on_its_own(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    add(&store, ALICE, "a", NOW);
    store
        .enqueue(&[notification(ALICE, "a")], 10, 0)
        .expect("queued");
    assert_eq!(store.delay_kind(PushKind::WebPush, 50).expect("none"), 0);
    assert_eq!(store.delay_kind(PushKind::DeltaChat, 50).expect("one"), 1);
    assert_eq!(store.next_due(Kinds::ALL).expect("due"), Some(50));
    assert_eq!(store.queue_len_of(PushKind::DeltaChat).expect("dc"), 1);
    assert_eq!(store.queue_len_of(PushKind::WebPush).expect("wp"), 0);
}
