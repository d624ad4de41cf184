//! The worker's pure parts: holding back rows claimed ahead, the topic per folder.

use super::*;
use crate::push::rounds::{LastTrip, SendTime, claim_room, linger};

fn queued(seq: i64, to: Destination) -> QueuedPush {
    QueuedPush {
        seq,
        username: "a@x".into(),
        target: format!("t{seq}"),
        payload: "{}".into(),
        with_content: false,
        validation: false,
        attempts: 2,
        deadline: i64::MAX,
        to,
    }
}

fn webpush(endpoint: &str) -> Destination {
    Destination::WebPush {
        endpoint: endpoint.into(),
        p256dh: "k".into(),
        auth: "a".into(),
    }
}

/// A 429 answer also holds back what was claimed ahead for the same endpoint (or,
/// for Delta Chat, the same kind): nothing is sent there before the wait ends.
#[test]
fn a_hold_back_returns_rows_claimed_ahead_for_it() {
    let token = || Destination::DeltaChat { token: "x".into() };
    let at = Instant::now();
    let mut ready: VecDeque<(Instant, QueuedPush)> = [
        (at, queued(1, webpush("https://p/a"))),
        (at, queued(2, webpush("https://p/b"))),
        (at, queued(3, token())),
        (at, queued(4, webpush("https://p/a"))),
    ]
    .into();
    let mut settled = vec![
        Settle::Done { seq: 9 },
        Settle::DelayEndpoint {
            endpoint: "https://p/a".into(),
            until: 50,
        },
    ];
    hold_back(&mut ready, &mut settled);
    let left: Vec<i64> = ready.iter().map(|(_, p)| p.seq).collect();
    assert_eq!(left, [2, 3]);
    let back = |seq| Settle::Retry {
        seq,
        attempts: 2,
        not_before: 50,
        payload: None,
    };
    assert_eq!(settled[2..], [back(1), back(4)]);
    let mut settled = vec![Settle::DelayKind {
        kind: PushKind::DeltaChat,
        until: 50,
    }];
    hold_back(&mut ready, &mut settled);
    assert_eq!(ready.iter().map(|(_, p)| p.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(settled[1..], [back(3)]);
}

#[test]
fn topic_comes_from_the_payload_folder() {
    assert_eq!(
        Payload::folder_of(r#"{"folder":"COI/Chats","subject":"x"}"#).as_deref(),
        Some("COI/Chats")
    );
    assert_eq!(Payload::folder_of(r#"{"validation":"t"}"#), None);
    assert_eq!(Payload::folder_of("not json"), None);
    let chats = folder_topic("COI/Chats");
    assert_eq!(chats.len(), 32);
    assert!(chats.chars().all(|c| c.is_ascii_alphanumeric()), "{chats}");
    assert_eq!(chats, folder_topic("COI/Chats"), "stable");
    assert_ne!(chats, folder_topic("INBOX"));
}

/// Under load the worker goes to the store once per batch, not once per finished
/// send: while a batch waits claimed ahead, a finished send (one outcome, room for
/// one more row) makes no trip; running low on rows ahead, nothing left to send with
/// outcomes waiting, or outcomes piling up each make one.
#[test]
fn the_store_is_visited_per_batch_not_per_finished_push() {
    let c = 8;
    // A send finished: 8 in flight again, 12 claimed ahead, one outcome.
    assert!(!trip_due(c, 12, c, 1));
    assert!(!trip_due(c, c, c, c));
    // Fewer than a batch ahead: claim the next one.
    assert!(trip_due(c, c - 1, c, 0));
    // Idle (nothing claimed, nothing in flight): look at the queue.
    assert!(trip_due(c, 0, 0, 0));
    // The last sends finished: their outcomes go at once.
    assert!(trip_due(c, 0, 0, 3));
    // Outcomes are bounded even with rows ahead.
    assert!(trip_due(c, 3 * c, c, AHEAD * c));
}

/// While pushes trickle in, a due trip waits until [`LINGER`] after the last one, so
/// the pushes of several messages and the outcomes of several sends share one
/// transaction; a backlog, piled-up outcomes or a quiet spell never wait.
#[test]
fn a_trickle_shares_trips_and_a_backlog_does_not_wait() {
    let c = 8;
    let now = Instant::now();
    let ago = |ms| now.checked_sub(Duration::from_millis(ms)).expect("clock");
    let trickle = |ms| {
        Some(LastTrip {
            at: ago(ms),
            full: false,
        })
    };
    assert_eq!(linger(None, c, 0, now), None, "the first trip goes at once");
    assert_eq!(
        linger(trickle(4), c, 1, now),
        Some(LINGER - Duration::from_millis(4))
    );
    assert_eq!(linger(trickle(0), c, 0, now), Some(LINGER));
    let backlog = Some(LastTrip {
        at: ago(1),
        full: true,
    });
    assert_eq!(
        linger(backlog, c, 0, now),
        None,
        "more rows wait: claim at once"
    );
    assert_eq!(
        linger(trickle(1), c, AHEAD * c, now),
        None,
        "outcomes pile up"
    );
    let quiet = LINGER.as_millis() as u64;
    assert_eq!(
        linger(trickle(quiet), c, 0, now),
        None,
        "after a quiet spell"
    );
    assert_eq!(linger(trickle(quiet + 50), c, 2, now), None);
}

/// A trip claims up to [`AHEAD`] × concurrency rows held for a fast push service,
/// fewer for a slow one (no more than are sent within half of [`AHEAD_WAIT`]), and
/// always room for two batches.
#[test]
fn slow_sends_claim_fewer_rows_ahead() {
    let c = 8;
    let ms = Duration::from_millis;
    assert_eq!(
        claim_room(c, 0, Duration::ZERO),
        AHEAD * c,
        "nothing known yet"
    );
    assert_eq!(claim_room(c, 0, ms(1)), AHEAD * c);
    assert_eq!(
        claim_room(c, c + 3, ms(1)),
        AHEAD * c - c - 3,
        "held rows count"
    );
    // 1.25 s at 400 ms a send: 3 rounds of 8.
    assert_eq!(claim_room(c, 0, ms(400)), 3 * c);
    assert_eq!(claim_room(c, 0, ms(2_000)), 2 * c, "two batches at least");
    assert_eq!(claim_room(c, 3 * c, ms(2_000)), 0);
    // Sends slower than AHEAD_WAIT: a batch ahead would wait past it; none is claimed.
    assert_eq!(claim_room(c, 0, ms(5_000)), c, "one batch");
    assert_eq!(claim_room(c, c, ms(5_000)), 0);
}

#[test]
fn the_send_time_follows_recent_sends() {
    let time = SendTime::default();
    assert_eq!(time.average(), Duration::ZERO);
    time.record(Duration::from_millis(80));
    assert_eq!(
        time.average(),
        Duration::from_millis(80),
        "the first counts whole"
    );
    for _ in 0..100 {
        time.record(Duration::from_millis(400));
    }
    let average = time.average();
    assert!(
        average > Duration::from_millis(395) && average <= Duration::from_millis(400),
        "{average:?}"
    );
}
