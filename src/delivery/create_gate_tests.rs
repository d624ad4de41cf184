//! The gate's rules, on its own: who waits for whom, and what is remembered.

use std::time::Duration;

use super::*;
use crate::delivery::{Outcome, Temporary};
use crate::policy::Target;
use crate::users::UserAddress;

const CHATS: &str = "COI/Chats";

fn job(user: &str, create: bool) -> Job {
    Job {
        rcpt: format!("{user}@example.org"),
        user: UserAddress {
            local: user.to_owned(),
            domain: "example.org".to_owned(),
            username: format!("{user}@example.org"),
        },
        target: Target {
            folder: Some(CHATS.to_owned()),
            flags: vec!["$Chat".to_owned()],
            create,
        },
    }
}

fn copy(user: &str, outcome: Outcome) -> Delivery {
    Delivery {
        job: job(user, true),
        outcome,
    }
}

fn keys(users: &[&str]) -> Vec<Key> {
    let jobs: Vec<Job> = users.iter().map(|u| job(u, true)).collect();
    CreateGate::keys(&jobs)
}

/// Whether `enter` got through within a moment.
async fn passes(gate: &CreateGate, users: &[&str]) -> Option<Pass> {
    tokio::time::timeout(Duration::from_millis(50), gate.enter(keys(users)))
        .await
        .ok()
}

#[test]
fn only_targets_that_create_their_folder_are_guarded() {
    let jobs = [
        job("b", true),
        job("a", true),
        job("b", true),
        job("c", false),
    ];
    let found = CreateGate::keys(&jobs);
    let want: Vec<Key> = ["a", "b"]
        .map(|u| (format!("{u}@example.org"), CHATS.to_owned()))
        .to_vec();
    assert_eq!(found, want, "sorted, once each, without c");
    assert!(CreateGate::keys(&[job("c", false)]).is_empty());
}

#[tokio::test]
async fn a_second_first_delivery_waits_for_the_first_answer() {
    let gate = Arc::new(CreateGate::new());
    let first = passes(&gate, &["a"]).await.expect("the first goes at once");
    assert!(passes(&gate, &["a"]).await.is_none(), "the second waits");
    let other = passes(&gate, &["b"])
        .await
        .expect("another user does not wait");
    let waiting = tokio::spawn({
        let gate = Arc::clone(&gate);
        async move { gate.enter(keys(&["a", "b"])).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    gate.leave(first, &[copy("a", Outcome::Delivered)]);
    gate.leave(other, &[copy("b", Outcome::Delivered)]);
    let pass = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("through once both were answered")
        .expect("task");
    // It waited for both, so it holds both until its own answers.
    assert_eq!(pass.guards.len(), 2, "{:?}", pass.keys);
    gate.leave(
        pass,
        &[copy("a", Outcome::Delivered), copy("b", Outcome::Delivered)],
    );
    assert!(gate.lock().busy.is_empty(), "no lock left behind");
}

#[tokio::test]
async fn a_delivered_folder_lets_every_later_delivery_through() {
    let gate = CreateGate::new();
    let first = passes(&gate, &["a"]).await.expect("first");
    gate.leave(first, &[copy("a", Outcome::Delivered)]);
    let one = passes(&gate, &["a"]).await.expect("known");
    let two = passes(&gate, &["a"])
        .await
        .expect("known, at the same time");
    assert!(one.guards.is_empty() && two.guards.is_empty());
    assert!(gate.lock().busy.is_empty(), "no lock left behind");
}

#[tokio::test]
async fn a_copy_not_delivered_does_not_count_as_created() {
    let gate = CreateGate::new();
    let first = passes(&gate, &["a"]).await.expect("first");
    let failed = Outcome::Temporary(Temporary::Broken);
    gate.leave(first, &[copy("a", failed)]);
    let again = passes(&gate, &["a"]).await.expect("nobody holds it");
    assert_eq!(again.guards.len(), 1, "still guarded");
    assert!(passes(&gate, &["a"]).await.is_none());
}

#[tokio::test]
async fn remembered_pairs_are_bounded() {
    let gate = CreateGate::new();
    {
        let mut state = gate.lock();
        for i in 0..MAX_KNOWN {
            state.known.insert((format!("u{i}"), CHATS.to_owned()));
        }
    }
    let pass = passes(&gate, &["a"]).await.expect("first");
    gate.leave(pass, &[copy("a", Outcome::Delivered)]);
    let state = gate.lock();
    assert_eq!(state.known.len(), 1, "forgotten at once when full");
}

#[tokio::test]
async fn a_transaction_that_creates_nothing_leaves_no_trace() {
    let gate = CreateGate::new();
    let pass = gate.enter(CreateGate::keys(&[job("c", false)])).await;
    assert!(pass.keys.is_empty() && pass.guards.is_empty());
    gate.leave(pass, &[copy("c", Outcome::Delivered)]);
    let state = gate.lock();
    assert!(state.known.is_empty() && state.busy.is_empty());
}
