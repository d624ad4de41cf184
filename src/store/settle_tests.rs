//! Outcomes and the next claim in one transaction: all of it, in order, or nothing.

use super::*;
use crate::store::Store;
use crate::store::test_stores::{Guard, Kind, store_of};
use crate::store::{Destination, NewPush, Op, Subscribe, Subscription};
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
            validation_push: push(id),
            max_queue: 100,
        }));
        store.commit(ALICE, &[op], T).expect("subscribe");
    }
    (guard, store)
}

fn push(id: &str) -> NewPush {
    NewPush {
        username: ALICE.into(),
        kind: PushKind::WebPush,
        target: id.into(),
        payload: "{}".into(),
        with_content: true,
        validation: false,
        not_before: T,
        deadline: T + 60_000,
        dedupe: None,
    }
}

fn claim(now: i64, limit: usize) -> Claim {
    Claim {
        now,
        lease_until: now + 1_000,
        limit,
        kinds: Kinds::ALL,
    }
}

fn seq_of(claimed: &Claimed, id: &str) -> i64 {
    claimed
        .pushes
        .iter()
        .find(|p| p.target == id)
        .map(|p| p.seq)
        .expect("claimed")
}

#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn outcomes_then_the_claim_in_one_trip(#[case] kind: Kind) {
    let (_guard, store) = store_with(
        kind,
        &[
            ("a", "https://p/a"),
            ("b", "https://p/b"),
            ("c", "https://p/c"),
        ],
    );
    let first = store.settle_and_claim(&[], claim(T, 10)).expect("claim");
    assert_eq!(first.pushes.len(), 3, "the three validation pushes");
    assert_eq!(first.next_due, Some(T + 1_000), "all leased");
    store.enqueue(&[push("c")], 100, T).expect("enqueue");
    let settled = [
        Settle::Done {
            seq: seq_of(&first, "a"),
        },
        // Due at once with a smaller payload: claimed by the same trip.
        Settle::Retry {
            seq: seq_of(&first, "b"),
            attempts: 0,
            not_before: T,
            payload: Some("{\"small\":1}".into()),
        },
        Settle::DeleteSubscription {
            seq: seq_of(&first, "c"),
            username: ALICE.into(),
            id: "c".into(),
            endpoint: "https://p/c".into(),
        },
    ];
    let second = store
        .settle_and_claim(&settled, claim(T, 10))
        .expect("trip");
    assert_eq!(second.pushes.len(), 1, "c's pending push went with it");
    let b = &second.pushes[0];
    assert_eq!(
        (b.target.as_str(), b.payload.as_str(), b.with_content),
        ("b", "{\"small\":1}", false)
    );
    assert!(matches!(&b.to, Destination::WebPush { endpoint, .. } if endpoint == "https://p/b"));
    assert_eq!(store.subscriptions(ALICE).expect("subs").len(), 2);
    // A 429 holds back the endpoint's rows; limit 0 only settles and looks ahead.
    let held = [
        Settle::Retry {
            seq: b.seq,
            attempts: 0,
            not_before: T + 30_000,
            payload: None,
        },
        Settle::DelayEndpoint {
            endpoint: "https://p/b".into(),
            until: T + 30_000,
        },
    ];
    let third = store.settle_and_claim(&held, claim(T, 0)).expect("trip");
    assert_eq!(
        third,
        Claimed {
            pushes: Vec::new(),
            next_due: Some(T + 30_000)
        }
    );
    assert_eq!(store.queue_len().expect("len"), 1);
}

/// SQLite refuses one change of the batch (a trigger injects the fault): nothing of
/// the trip happened, so the rows stay leased and are sent again after the lease.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_failed_trip_changes_nothing(#[case] kind: Kind) {
    let (guard, store) = store_with(kind, &[("a", "https://p/a"), ("b", "https://p/b")]);
    let first = store.settle_and_claim(&[], claim(T, 10)).expect("claim");
    let (a, b) = (seq_of(&first, "a"), seq_of(&first, "b"));
    guard.raw(
        &format!(
            "CREATE TRIGGER fault BEFORE DELETE ON push_queue WHEN old.seq = {b}
             BEGIN SELECT RAISE(ABORT, 'injected'); END;"
        ),
        &format!(
            "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF old.seq = {b} THEN RAISE EXCEPTION 'injected'; END IF; RETURN old; END $$;
             CREATE TRIGGER fault BEFORE DELETE ON push_queue
                 FOR EACH ROW EXECUTE FUNCTION fault();"
        ),
    );
    let settled = [Settle::Done { seq: a }, Settle::Done { seq: b }];
    assert!(
        store
            .settle_and_claim(&settled, claim(T + 1_000, 10))
            .is_err()
    );
    assert_eq!(
        store.queue_len().expect("len"),
        2,
        "a's outcome rolled back too"
    );
    guard.raw("DROP TRIGGER fault", "DROP TRIGGER fault ON push_queue");
    let again = store
        .settle_and_claim(&[], claim(T + 1_000, 10))
        .expect("claim");
    assert_eq!(again.pushes.len(), 2, "both sent again after the lease");
}

/// The pushes of messages just delivered come with a round: queued within the bound,
/// then claimed by that same round along with the rows already due, after its
/// outcomes; queued again (Postfix delivering the message again), their dedupe keys
/// keep them out.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_round_queues_and_claims_new_pushes(#[case] kind: Kind) {
    let (_guard, store) = store_with(kind, &[("a", "https://p/a"), ("b", "https://p/b")]);
    let validations = store.settle_and_claim(&[], claim(T, 10)).expect("claim");
    assert_eq!(validations.pushes.len(), 2);
    let done: Vec<Settle> = validations
        .pushes
        .iter()
        .map(|p| Settle::Done { seq: p.seq })
        .collect();
    let delivered = |id: &str| NewPush {
        dedupe: Some(format!("message-1-{id}")),
        ..push(id)
    };
    let new = [delivered("a"), delivered("b")];
    let (taken, round) = store
        .queue_settle_and_claim(&new, 100, &done, claim(T + 1, 10))
        .expect("round");
    assert_eq!(taken, 2);
    let mut claimed: Vec<(&str, bool)> = round
        .pushes
        .iter()
        .map(|p| (p.target.as_str(), p.validation))
        .collect();
    claimed.sort_unstable();
    assert_eq!(
        claimed,
        [("a", false), ("b", false)],
        "the new pushes, claimed"
    );
    assert_eq!(
        store.queue_len().expect("count"),
        2,
        "the validations are done"
    );

    let (_, again) = store
        .queue_settle_and_claim(&new, 100, &[], claim(T + 2, 10))
        .expect("round");
    assert!(again.pushes.is_empty(), "leased, and not queued twice");
    assert_eq!(store.queue_len().expect("count"), 2);

    let (taken, full) = store
        .queue_settle_and_claim(&[delivered("c")], 2, &[], claim(T + 3, 10))
        .expect("round");
    assert_eq!((taken, full.pushes.len()), (0, 0), "the bound holds");
}
