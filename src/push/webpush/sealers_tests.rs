//! The sealing threads' queue: bodies decrypt with an implementation not ours
//! (web-push-native), each to its own plaintext; a full queue sends the job back to
//! the caller; the threads end with the last handle. The user agents and the
//! decryption are `ece`'s tests' own.

use super::*;
use crate::push::webpush::ece::tests::{AUTH, decrypt, user_agent};

#[test]
fn a_full_queue_hands_the_job_back_and_the_queued_ones_are_sealed_later() {
    let (secret, public) = user_agent();
    // No thread takes jobs yet: the queue fills up.
    let (sealers, queue) = Sealers::queue(2);
    let mut waiting = Vec::new();
    for i in 0..2 * QUEUED_PER_THREAD {
        let plaintext = format!("push {i}");
        let body = sealers.try_seal(&public, &AUTH, plaintext.as_bytes());
        waiting.push((plaintext, body.expect("room in the queue")));
    }
    assert!(
        sealers.try_seal(&public, &AUTH, b"one too many").is_none(),
        "a full queue: the caller encrypts it"
    );
    drop(sealers);
    // A thread takes what waits, then ends: no handle is left.
    let recorder = Recorder::off();
    std::thread::spawn(move || seal_all(&queue, &recorder))
        .join()
        .expect("the sealing thread ends");
    for (plaintext, mut body) in waiting {
        let body = body.try_recv().expect("sealed").expect("encrypted");
        assert_eq!(decrypt(&body, &secret), plaintext.as_bytes());
    }
}

#[tokio::test]
async fn the_threads_seal_each_body_for_its_own_user_agent_and_count_it() {
    let recorder = Recorder::new();
    let sealers = Sealers::start(2, 0, &recorder).expect("threads");
    let agents: Vec<_> = (0..3).map(|_| user_agent()).collect();
    let mut sealed = 0;
    for round in 0..20 {
        let mut waiting = Vec::new();
        for (i, (_, public)) in agents.iter().enumerate() {
            let plaintext = format!("round {round} agent {i}");
            if let Some(body) = sealers.try_seal(public, &AUTH, plaintext.as_bytes()) {
                waiting.push((i, plaintext, body));
            }
        }
        for (i, plaintext, body) in waiting {
            let body = body.await.expect("sealed").expect("encrypted");
            assert_eq!(decrypt(&body, &agents[i].0), plaintext.as_bytes());
            sealed += 1;
        }
    }
    assert_eq!(sealed, 60, "the queue had room for every round");
    let metrics = recorder.encode().expect("encode");
    assert!(
        metrics
            .lines()
            .any(|l| l == "coid_push_encrypted_beside_total 60"),
        "{metrics}"
    );
}

#[test]
fn a_bad_key_comes_back_as_the_encryption_error() {
    let sealers = Sealers::start(1, 0, &Recorder::off()).expect("thread");
    let body = sealers.try_seal(&[4; 10], &AUTH, b"x").expect("room");
    assert_eq!(
        body.blocking_recv().expect("sealed"),
        Err(EceError::BadPublicKey)
    );
}
