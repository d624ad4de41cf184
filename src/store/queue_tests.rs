//! The push queue over a temporary store: the bound, claiming with leases, retries,
//! payload replacement, per-endpoint delays, deadlines and orphans.

use super::*;
use crate::store::Store;
use crate::store::test_stores::{Guard, Kind, store_of};
use crate::store::{Op, Subscribe, Subscription};
use rstest::rstest;

const ALICE: &str = "alice@example.org";
const T: i64 = 1_700_000_000_000;

fn store_with(kind: Kind, subs: &[(&str, &str)]) -> (Guard, Store) {
    let (guard, store) = store_of(kind);
    for (id, endpoint) in subs {
        let op = Op::Subscribe(Box::new(Subscribe {
            subscription: Subscription {
                id: (*id).into(),
                client: "c".into(),
                device: "d".into(),
                msgtype: "all".into(),
                endpoint: (*endpoint).into(),
                p256dh: "k".into(),
                auth: "a".into(),
                created: T / 1000,
                validated_at: None,
            },
            token: "t".into(),
            limit: 10,
            validation_push: NewPush {
                validation: true,
                ..push(id, T)
            },
            max_queue: 100,
        }));
        store.commit(ALICE, &[op], T).expect("subscribe");
    }
    (guard, store)
}

fn push(id: &str, not_before: i64) -> NewPush {
    NewPush {
        username: ALICE.into(),
        kind: PushKind::WebPush,
        target: id.into(),
        payload: "{}".into(),
        with_content: true,
        validation: false,
        not_before,
        deadline: T + 60_000,
        dedupe: None,
    }
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn enqueue_stops_at_the_bound(#[case] kind: Kind) {
    let (_guard, store) = store_with(kind, &[("a", "https://p/a")]);
    let stored = store
        .enqueue(&[push("a", T), push("a", T), push("a", T)], 3, T)
        .expect("enqueue");
    assert_eq!(stored, 2, "one row was there already");
    assert_eq!(store.queue_len().expect("len"), 3);
}

/// A message delivered again (Postfix delivers at least once) while its pushes are
/// queued queues nothing more; the duplicates take no room and count as taken.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_push_queued_again_with_its_dedupe_key_is_a_no_op(#[case] kind: Kind) {
    let (_guard, store) = store_with(kind, &[("a", "https://p/a"), ("b", "https://p/b")]);
    let keyed = |id: &str| NewPush {
        dedupe: Some(dedupe_key("id:<m@x>", PushKind::WebPush, ALICE, id)),
        payload: "{\"same\":1}".into(),
        ..push(id, T)
    };
    let before = store.queue_len().expect("len");
    let first = [keyed("a"), keyed("b")];
    assert_eq!(store.enqueue(&first, 100, T).expect("first"), 2);
    assert_eq!(store.queue_len().expect("len"), before + 2);
    let again = [keyed("a"), keyed("b"), push("a", T)];
    assert_eq!(
        store.enqueue(&again, before + 3, T).expect("again"),
        3,
        "the duplicates take no room"
    );
    assert_eq!(store.queue_len().expect("len"), before + 3);
    assert_eq!(
        store
            .pending_pushes(PushKind::WebPush, ALICE, "b")
            .expect("b"),
        2
    );
    // Sent (rows gone): Postfix's retry of a lost reply comes later still, and still
    // queues nothing, until the key's day is over.
    let claimed = store.claim_due(T, T + 1, 100, Kinds::ALL).expect("claim");
    for push in &claimed {
        store.push_done(push.seq).expect("done");
    }
    assert_eq!(store.queue_len().expect("len"), 0);
    let retry = T + 3_600_000;
    assert_eq!(store.enqueue(&[keyed("a")], 100, retry).expect("retry"), 1);
    assert_eq!(store.queue_len().expect("len"), 0, "a retry an hour later");
    let next_day = T + DEDUPE_KEEP_MS + 1;
    assert_eq!(store.drop_overdue_pushes(next_day).expect("sweep"), (0, 0));
    assert_eq!(
        store.enqueue(&[keyed("a")], 100, next_day).expect("later"),
        1
    );
    assert_eq!(
        store.queue_len().expect("len"),
        1,
        "a day later the key is free"
    );
    // Other messages, users, kinds or targets make other keys.
    let keys = [
        dedupe_key("id:<m@x>", PushKind::WebPush, ALICE, "a"),
        dedupe_key("id:<n@x>", PushKind::WebPush, ALICE, "a"),
        dedupe_key("id:<m@x>", PushKind::DeltaChat, ALICE, "a"),
        dedupe_key("id:<m@x>", PushKind::WebPush, "bob@x", "a"),
        dedupe_key("id:<m@x>", PushKind::WebPush, ALICE, "b"),
    ];
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len());
    assert!(keys.iter().all(|k| k.len() == 43));
    // One message's keys to one user sort together (one index page per message, not
    // one per push); another message or user sorts elsewhere.
    let prefix = |k: &String| k[..22].to_owned();
    assert_eq!(prefix(&keys[0]), prefix(&keys[2]), "another kind");
    assert_eq!(prefix(&keys[0]), prefix(&keys[4]), "another target");
    assert_ne!(prefix(&keys[0]), prefix(&keys[1]), "another message");
    assert_ne!(prefix(&keys[0]), prefix(&keys[3]), "another user");
}

/// The dedupe table keeps one key per group (one message's pushes of one kind to one
/// user, `crate::store::dedupe`): a group queued again is a no-op for every device,
/// one added since included; the same message queued twice in one batch is queued
/// once; another kind of the same message is another group.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_message_is_deduplicated_per_user_and_kind_not_per_device(#[case] kind: Kind) {
    let (_guard, store) = store_with(kind, &[("a", "https://p/a"), ("b", "https://p/b")]);
    let keyed = |message: &str, id: &str| NewPush {
        dedupe: Some(dedupe_key(message, PushKind::WebPush, ALICE, id)),
        ..push(id, T)
    };
    let before = store.queue_len().expect("len");
    assert_eq!(store.enqueue(&[keyed("m", "a")], 100, T).expect("m"), 1);
    assert_eq!(store.queue_len().expect("len"), before + 1);
    // Delivered again after device b came: nothing more, for b either.
    let again = [keyed("m", "a"), keyed("m", "b")];
    assert_eq!(store.enqueue(&again, 100, T).expect("again"), 2, "taken");
    assert_eq!(store.queue_len().expect("len"), before + 1, "a no-op");
    // One batch holding a message twice, back to back: its pushes once.
    let twice = [
        keyed("n", "a"),
        keyed("n", "b"),
        keyed("n", "a"),
        keyed("n", "b"),
    ];
    assert_eq!(store.enqueue(&twice, 100, T).expect("twice"), 4, "taken");
    assert_eq!(store.queue_len().expect("len"), before + 3);
    assert_eq!(
        store
            .pending_pushes(PushKind::WebPush, ALICE, "b")
            .expect("b"),
        2,
        "b's validation push, and n once"
    );
}

/// With the queue's own index of dedupe keys gone (SQLite schema 11), a key outlives
/// its row even when the row's deadline is further away than a key's day: the same
/// push queued again while its row waits is still a no-op.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_dedupe_key_lives_as_long_as_its_row_may(#[case] kind: Kind) {
    let (_guard, store) = store_with(kind, &[("a", "https://p/a")]);
    let late = T + 3 * DEDUPE_KEEP_MS;
    let keyed = NewPush {
        dedupe: Some(dedupe_key("id:<m@x>", PushKind::WebPush, ALICE, "a")),
        not_before: late - 1,
        deadline: late,
        ..push("a", T)
    };
    assert_eq!(
        store
            .enqueue(std::slice::from_ref(&keyed), 100, T)
            .expect("first"),
        1
    );
    let two_days_on = T + 2 * DEDUPE_KEEP_MS;
    // The sweep drops the subscription's overdue validation push and expired keys.
    store.drop_overdue_pushes(two_days_on).expect("sweep");
    let waiting = store.queue_len().expect("len");
    assert_eq!(waiting, 1, "the keyed row waits for its deadline");
    assert_eq!(
        store.enqueue(&[keyed], 100, two_days_on).expect("again"),
        1,
        "taken"
    );
    assert_eq!(
        store.queue_len().expect("len"),
        waiting,
        "its row still waits: no second one"
    );
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn claims_lease_rows_until_they_are_done_or_retried(#[case] kind: Kind) {
    let (_guard, store) = store_with(kind, &[("a", "https://p/a")]);
    store
        .enqueue(&[push("a", T + 5_000)], 10, T)
        .expect("enqueue");
    let claimed = store
        .claim_due(T, T + 1_000, 10, Kinds::ALL)
        .expect("claim");
    assert_eq!(claimed.len(), 1, "only the validation push is due");
    assert!(claimed[0].validation);
    assert!(
        matches!(&claimed[0].to, Destination::WebPush { endpoint, .. } if endpoint == "https://p/a")
    );
    assert!(
        store
            .claim_due(T, T + 1_000, 10, Kinds::ALL)
            .expect("claim")
            .is_empty(),
        "leased"
    );
    assert_eq!(store.next_due(Kinds::ALL).expect("next"), Some(T + 1_000));
    // The lease ends: claimed again (its sender died).
    let again = store
        .claim_due(T + 1_000, T + 2_000, 1, Kinds::ALL)
        .expect("claim");
    assert_eq!(again[0].seq, claimed[0].seq);
    store.push_done(again[0].seq).expect("done");
    let later = store
        .claim_due(T + 5_000, T + 6_000, 10, Kinds::ALL)
        .expect("claim");
    assert_eq!(later.len(), 1);
    store
        .push_retry(later[0].seq, 1, T + 7_000, Some("{\"small\":1}"))
        .expect("retry");
    let retried = store
        .claim_due(T + 7_000, T + 8_000, 10, Kinds::ALL)
        .expect("claim");
    assert_eq!(
        (
            retried[0].attempts,
            retried[0].payload.as_str(),
            retried[0].with_content
        ),
        (1, "{\"small\":1}", false)
    );
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn delays_hold_back_one_endpoint_and_overdue_or_orphaned_rows_go(#[case] kind: Kind) {
    let (_guard, store) = store_with(kind, &[("a", "https://p/a"), ("b", "https://p/b")]);
    assert_eq!(
        store
            .delay_endpoint("https://p/a", T + 30_000)
            .expect("delay"),
        1
    );
    let due: Vec<String> = store
        .claim_due(T, T + 1_000, 10, Kinds::ALL)
        .expect("claim")
        .into_iter()
        .map(|p| p.target)
        .collect();
    assert_eq!(due, ["b"]);
    // Past the deadline: dropped when claimed.
    assert!(
        store
            .claim_due(T + 61_000, T + 62_000, 10, Kinds::ALL)
            .expect("claim")
            .is_empty()
    );
    assert_eq!(store.queue_len().expect("len"), 0);
    // A row whose subscription is gone is dropped when claimed.
    store.enqueue(&[push("zz", T)], 10, T).expect("enqueue");
    assert!(
        store
            .claim_due(T, T + 1_000, 10, Kinds::ALL)
            .expect("claim")
            .is_empty()
    );
    assert_eq!(store.queue_len().expect("len"), 0);
    store.enqueue(&[push("a", T)], 10, T).expect("enqueue");
    assert_eq!(store.drop_overdue_pushes(T + 60_001).expect("drop"), (1, 0));
}

/// The length kept (schema 7) is the row count after every way rows come and go (a
/// database migrated with rows in its queue: `sqlite::schema_tests`).
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn the_kept_length_is_the_row_count(#[case] kind: Kind) {
    let (guard, store) = store_with(kind, &[("a", "https://p/a"), ("b", "https://p/b")]);
    let counted = || -> usize {
        let n = guard.number("SELECT count(*) FROM push_queue");
        usize::try_from(n).expect("not negative")
    };
    let check = |what: &str| assert_eq!(store.queue_len().expect("len"), counted(), "{what}");
    check("validation pushes");
    store
        .enqueue(
            &[push("a", T), push("b", T), push("a", T + 9_000_000)],
            10,
            T,
        )
        .expect("enqueue");
    check("enqueued");
    let claimed = store.claim_due(T, T + 1, 1, Kinds::ALL).expect("claim");
    store.push_done(claimed[0].seq).expect("done");
    check("done");
    store.delete_subscription(ALICE, "b", None).expect("delete");
    check("a subscription and its pushes");
    assert_eq!(store.enqueue(&[push("a", T)], 1, T).expect("bound"), 0);
    check("the bound");
    store.drop_overdue_pushes(T + 61_000).expect("overdue");
    check("overdue");
    store.enqueue(&[push("a", T)], 10, T).expect("enqueue");
    check("enqueued again");
}

/// One message's pushes to several devices store their payload once (schema 8);
/// every row reads it back whole, a row given a smaller payload (413) keeps its own,
/// and the shared one goes with the last row that points at it.
#[test]
fn a_payload_shared_by_rows_is_stored_once_and_goes_with_the_last() {
    // SQLite only: PostgreSQL keeps each row's payload in the row.
    let (guard, store) = store_with(Kind::Sqlite, &[("a", "https://p/a"), ("b", "https://p/b")]);
    let raw = rusqlite::Connection::open(guard.sqlite_path()).expect("raw");
    let shared = || -> i64 {
        raw.query_row("SELECT count(*) FROM push_payloads", [], |r| r.get(0))
            .expect("count")
    };
    // The validation pushes: leased out of the way.
    store
        .claim_due(T, T + 3_600_000, 10, Kinds::ALL)
        .expect("claim");
    let big = "x".repeat(3000);
    let with = |id: &str, payload: &str| NewPush {
        payload: payload.into(),
        ..push(id, T + 1)
    };
    let pushes = [with("a", &big), with("b", &big), with("a", "{\"own\":1}")];
    assert_eq!(store.enqueue(&pushes, 100, T).expect("enqueue"), 3);
    assert_eq!(
        shared(),
        1,
        "the 3000 bytes once; the single payload in its row"
    );
    let claimed = store
        .claim_due(T + 1, T + 2, 10, Kinds::ALL)
        .expect("claim");
    let payloads: Vec<&str> = claimed.iter().map(|p| p.payload.as_str()).collect();
    assert_eq!(payloads, [big.as_str(), big.as_str(), "{\"own\":1}"]);
    // A 413: the row gets a smaller payload of its own; the other row still reads
    // the shared one.
    store
        .push_retry(claimed[0].seq, 0, T + 3, Some("{\"small\":1}"))
        .expect("retry");
    assert_eq!(shared(), 1);
    store.push_done(claimed[2].seq).expect("done");
    // Both leases ended: the other row still reads the shared payload.
    let again = store
        .claim_due(T + 3, T + 4, 10, Kinds::ALL)
        .expect("claim");
    let payloads: Vec<&str> = again.iter().map(|p| p.payload.as_str()).collect();
    assert!(
        payloads == [big.as_str(), "{\"small\":1}"],
        "{:?}",
        payloads.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
    store.push_done(claimed[1].seq).expect("done");
    assert_eq!(shared(), 0, "gone with the last row that pointed at it");
    store.push_done(claimed[0].seq).expect("done");
}
