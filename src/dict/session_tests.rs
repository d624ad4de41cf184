//! Unit tests of the dict session state machine: Dovecot's real dialogues (2.3 and
//! 2.4), limits, and hostile input (overlong lines, bad escapes, unknown commands,
//! unknown or too many transactions). Every one must end in a reply or a close, never
//! a panic.

use super::*;
use crate::config::{CoiConfig, UsersConfig};
use crate::dict::Attributes;
use crate::store::temp_store;

fn limits() -> Limits {
    Limits {
        max_line: 256,
        max_transactions: 2,
        max_changes: 3,
        max_pending_bytes: 1024,
        max_rows: 50,
    }
}

fn ready() -> Session {
    let mut session = Session::new(limits());
    let mut events = Vec::new();
    session.ingest(b"H3\t2\t0\t\tcoid\n", &mut events);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(session.version(), Some(Version::V3));
    session
}

/// A session after Dovecot 2.4.1's handshake (`dict-client.c`, `client_dict_connect`).
fn ready_v4() -> Session {
    let mut session = Session::new(limits());
    let mut events = Vec::new();
    session.ingest(b"H4\t0\t0\t\tcoid\n", &mut events);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(session.version(), Some(Version::V4));
    session
}

/// Feeds `input` and carries out the events against `attrs` the way `connection.rs`
/// does (without the blocking pool), returning the bytes written back.
fn serve(session: &mut Session, attrs: &Attributes, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in feed(session, input) {
        let replies = match event {
            Event::Reply(reply) => vec![reply],
            Event::Lookup { username, key } => vec![attrs.lookup(&username, &key)],
            Event::Iterate {
                username,
                path,
                flags,
                limit,
            } => attrs.iterate(&username, &path, flags, limit),
            Event::Commit {
                id,
                async_,
                username,
                changes,
            } => vec![attrs.commit(id, async_, &username, &changes)],
            Event::Close => Vec::new(),
        };
        for reply in replies {
            reply.encode(&mut out);
        }
    }
    out
}

fn feed(session: &mut Session, input: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    session.ingest(input, &mut events);
    events
}

fn commit_failed(events: &[Event]) -> Option<(Option<u32>, String)> {
    match events {
        [Event::Reply(Reply::CommitFailed { id, error, .. })] => Some((*id, error.clone())),
        _ => None,
    }
}

const ALICE: &str = "alice@example.org";
const NOT_OPEN_ERROR: &str = "no such transaction (never begun, or refused: too many open)";

#[test]
fn setmetadata_dialogue_commits_all_changes_at_once() {
    let mut s = ready();
    let events = feed(
        &mut s,
        b"B2\talice@example.org\nS2\tpriv/g/a\tactive\nS2\tpriv/g/b\ttab\x01there\nU2\tpriv/g/c\n",
    );
    assert!(
        events.is_empty(),
        "no replies before the commit: {events:?}"
    );
    assert!(s.in_transaction());
    let events = feed(&mut s, b"C2\n");
    assert_eq!(
        events,
        [Event::Commit {
            id: 2,
            async_: false,
            username: ALICE.into(),
            changes: vec![
                Change {
                    key: "priv/g/a".into(),
                    value: Some("active".into())
                },
                Change {
                    key: "priv/g/b".into(),
                    value: Some("tab\there".into())
                },
                Change {
                    key: "priv/g/c".into(),
                    value: None
                },
            ],
        }]
    );
    assert!(!s.in_transaction());
}

/// What Dovecot 2.4.1 sends for `SETMETADATA "" (/private/vendor/vendor.dovecot/coi/
/// config/enabled "yes" .../message-filter "active")`, then for `GETMETADATA` of both
/// and of the folder: the answers come from the store, byte for byte.
#[test]
fn dovecot_2_3_is_read_as_before() {
    let mut s = ready();
    let events = feed(&mut s, b"B1\tu\nS1\tk\tv\nD1\nB2\nC2\n");
    assert_eq!(
        events,
        [
            Event::Commit {
                id: 1,
                async_: true,
                username: "u".into(),
                changes: vec![Change {
                    key: "k".into(),
                    value: Some("v".into())
                }],
            },
            Event::Reply(Reply::CommitFailed {
                id: Some(2),
                async_: false,
                error: "no username given".into()
            }),
        ]
    );
    assert_eq!(s.version(), Some(Version::V3));
}

#[test]
fn dovecot_2_4_round_trip_through_the_store() {
    let (_dir, store) = temp_store();
    let attrs = Attributes::new(store, &UsersConfig::default(), &CoiConfig::default());
    let base = "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/coi/config/";
    let mut s = ready_v4();
    let set =
        format!("B1\t{ALICE}\t0\nS1\t{base}enabled\tyes\nS1\t{base}message-filter\tactive\nC1\n");
    assert_eq!(serve(&mut s, &attrs, set.as_bytes()), b"O1\n");
    let get = format!("L{base}enabled\t{ALICE}\nL{base}message-filter\t{ALICE}\n");
    assert_eq!(serve(&mut s, &attrs, get.as_bytes()), b"Oyes\nOactive\n");
    let listed = serve(
        &mut s,
        &attrs,
        format!("I9\t0\t{base}\t{ALICE}\n").as_bytes(),
    );
    let listed = String::from_utf8(listed).expect("UTF-8");
    for entry in ["enabled", "message-filter"] {
        assert!(
            listed.contains(&format!("O{base}{entry}\t\n")),
            "{entry} in {listed:?}"
        );
    }
    assert!(listed.ends_with("\t\n\n"), "rows then the end: {listed:?}");
    assert_eq!(s.version(), Some(Version::V4));
    assert!(!s.is_closed() && !s.in_transaction());
}

#[test]
fn dovecot_2_4_begin_and_commit() {
    let mut s = ready_v4();
    let events = feed(
        &mut s,
        b"B2\talice@example.org\t0\nS2\tpriv/g/a\tv\nV2\tno\nC2\n",
    );
    assert_eq!(
        events,
        [Event::Commit {
            id: 2,
            async_: false,
            username: ALICE.into(),
            changes: vec![Change {
                key: "priv/g/a".into(),
                value: Some("v".into())
            }],
        }]
    );
    // Expiry is refused: the commit fails, nothing is handed to the store.
    feed(&mut s, b"B3\tu\t60\nS3\tk\tv\n");
    assert_eq!(
        commit_failed(&feed(&mut s, b"C3\n")),
        Some((Some(3), "key expiry is not supported".into()))
    );
    // `D` is not a 2.4 command: F, and the connection is closed.
    feed(&mut s, b"B4\tu\t0\n");
    assert_eq!(
        feed(&mut s, b"D4\n"),
        [
            Event::Reply(Reply::Failed("unknown command".into())),
            Event::Close
        ]
    );
    assert!(!s.in_transaction());
}

#[test]
fn malformed_2_4_begin_fails_like_2_3() {
    // Each bad `B` opens nothing; the commit of its id then fails, as in 2.3.
    for line in [
        &b"B1\tu\n"[..],
        b"B1\n",
        b"B1\tu\t0\tx\n",
        b"B1\tu\tsoon\n",
        b"B1\tu\t-5\n",
        b"B1\tu\x01x\t0\n",
    ] {
        let mut s = ready_v4();
        assert!(feed(&mut s, line).is_empty(), "{line:?}");
        assert!(feed(&mut s, b"S1\tk\tv\n").is_empty());
        let (id, _) = commit_failed(&feed(&mut s, b"C1\n")).expect("F");
        assert_eq!(id, Some(1), "{line:?}");
        assert!(!s.is_closed(), "{line:?}");
    }
    // A 2.4 `B` in a 2.3 session is just as malformed.
    let mut s = ready();
    assert!(feed(&mut s, b"B1\tu\t0\nS1\tk\tv\n").is_empty());
    assert!(commit_failed(&feed(&mut s, b"C1\n")).is_some());
    // An unreadable id closes, in both.
    for mut s in [ready(), ready_v4()] {
        assert_eq!(feed(&mut s, b"Bx\tu\t0\n"), [Event::Close]);
    }
    // An overlong 2.4 `B` fails its transaction too.
    let mut s = ready_v4();
    let long = format!("B1\t{}\t0\nC1\n", "u".repeat(400));
    assert_eq!(
        commit_failed(&feed(&mut s, long.as_bytes())),
        Some((Some(1), NOT_OPEN_ERROR.into()))
    );
    // A `B` that names an open transaction fails it, in 2.4 as in 2.3.
    let mut s = ready_v4();
    feed(&mut s, b"B1\tu\t0\nS1\tk\tv\nB1\tu\tlater\n");
    let (_, error) = commit_failed(&feed(&mut s, b"C1\n")).expect("F");
    assert_eq!(error, "bad number");
}

#[test]
fn lookups_and_iterations_become_requests() {
    let mut s = ready();
    let events = feed(
        &mut s,
        b"Lpriv/g/k\talice@example.org\nI9\t0\tpriv/g/\talice@example.org\nI0\t500\tp/\tu\n",
    );
    assert_eq!(
        events,
        [
            Event::Lookup {
                username: ALICE.into(),
                key: "priv/g/k".into()
            },
            Event::Iterate {
                username: ALICE.into(),
                path: "priv/g/".into(),
                flags: IterFlags(9),
                limit: 50
            },
            Event::Iterate {
                username: "u".into(),
                path: "p/".into(),
                flags: IterFlags(0),
                limit: 50
            },
        ]
    );
    assert_eq!(
        feed(&mut s, b"Lpriv/g/k\n"),
        [Event::Reply(Reply::Failed("no username given".into()))]
    );
}

#[test]
fn rollback_drops_and_interleaved_transactions_stay_apart() {
    let mut s = ready();
    feed(&mut s, b"B4\tu\nS4\tk4\tv\nB5\tu\nS5\tk5\tv\nR4\n");
    assert_eq!(
        commit_failed(&feed(&mut s, b"C4\n")).map(|(id, _)| id),
        Some(Some(4))
    );
    let events = feed(&mut s, b"C5\n");
    assert!(
        matches!(&events[..], [Event::Commit { id: 5, changes, .. }] if changes.len() == 1),
        "{events:?}"
    );
}

#[test]
fn commit_of_unknown_transaction_fails() {
    let mut s = ready();
    let (id, error) = commit_failed(&feed(&mut s, b"C77\n")).expect("F reply");
    assert_eq!(id, Some(77));
    assert!(error.contains("no such transaction"), "{error}");
    assert_eq!(
        feed(&mut s, b"D78\n"),
        [Event::Reply(Reply::CommitFailed {
            id: Some(78),
            async_: true,
            error: NOT_OPEN_ERROR.into()
        })]
    );
}

#[test]
fn too_many_transactions_fail_the_extra_one_only() {
    let mut s = ready();
    feed(&mut s, b"B1\tu\nB2\tu\nB3\tu\nS3\tk\tv\nS1\tk\tv\n");
    assert!(commit_failed(&feed(&mut s, b"C3\n")).is_some());
    assert!(matches!(
        &feed(&mut s, b"C1\n")[..],
        [Event::Commit { id: 1, .. }]
    ));
    assert!(matches!(
        &feed(&mut s, b"C2\n")[..],
        [Event::Commit { id: 2, .. }]
    ));
}

#[test]
fn change_limits_fail_the_transaction() {
    let mut s = ready();
    feed(&mut s, b"B1\tu\nS1\ta\t1\nS1\tb\t2\nS1\tc\t3\nS1\td\t4\n");
    let (_, error) = commit_failed(&feed(&mut s, b"C1\n")).expect("F");
    assert_eq!(error, "too many changes in one transaction");
    // 4 changes of ~300 bytes in two transactions: the connection's 1024 runs out.
    let big = "v".repeat(230);
    let mut input = b"B2\tu\nB3\tu\n".to_vec();
    for (tx, k) in [(2, 0), (2, 1), (3, 0), (3, 1)] {
        input.extend_from_slice(format!("S{tx}\tk{k}\t{big}\n").as_bytes());
    }
    feed(&mut s, &input);
    let (_, error) = commit_failed(&feed(&mut s, b"C3\n")).expect("F");
    assert_eq!(error, "too much uncommitted data on this connection");
    assert!(matches!(
        &feed(&mut s, b"C2\n")[..],
        [Event::Commit { id: 2, changes, .. }] if changes.len() == 2
    ));
    assert!(!s.in_transaction());
}

#[test]
fn atomic_inc_fails_and_timestamp_is_ignored() {
    let mut s = ready();
    let events = feed(&mut s, b"B1\tu\nT1\t1700000000\t0\nS1\tk\tv\nC1\n");
    assert!(
        matches!(&events[..], [Event::Commit { id: 1, changes, .. }] if changes.len() == 1),
        "{events:?}"
    );
    feed(&mut s, b"B2\tu\nA2\tk\t1\n");
    let (_, error) = commit_failed(&feed(&mut s, b"C2\n")).expect("F");
    assert_eq!(error, "atomic increment is not supported");
}

#[test]
fn bad_lines_fail_what_they_name() {
    let mut s = ready();
    feed(&mut s, b"B1\tu\nS1\tk\tbad\x01escape\nS1\tk2\tv\n");
    let (_, error) = commit_failed(&feed(&mut s, b"C1\n")).expect("F");
    assert_eq!(error, "bad escape");
    assert_eq!(
        feed(&mut s, b"Lk\x01\tu\n"),
        [Event::Reply(Reply::Failed("bad escape".into()))]
    );
    assert_eq!(
        feed(&mut s, b"I9\tx\tp\tu\n"),
        [Event::Reply(Reply::Failed("bad number".into()))]
    );
    // A change for a transaction that is not open is ignored.
    assert!(feed(&mut s, b"S9\tk\tv\nU9\tk\nR9\n").is_empty());
    assert!(!s.is_closed());
}

#[test]
fn overlong_lines_fail_their_command_and_resync() {
    let mut s = ready();
    let long_value = "x".repeat(400);
    let input = format!("B1\tu\nS1\tk\t{long_value}\nS1\tk2\tv\nC1\nLk\tu\n");
    let events = feed(&mut s, input.as_bytes());
    assert_eq!(
        events,
        [
            Event::Reply(Reply::CommitFailed {
                id: Some(1),
                async_: false,
                error: "line too long".into()
            }),
            Event::Lookup {
                username: "u".into(),
                key: "k".into()
            },
        ]
    );
    let events = feed(&mut s, format!("L{long_value}\tu\n").as_bytes());
    assert_eq!(
        events,
        [Event::Reply(Reply::Failed("line too long".into()))]
    );
}

#[test]
fn unknown_command_gets_f_and_closes() {
    let mut s = ready();
    let events = feed(&mut s, b"B1\tu\nX\nLk\tu\n");
    assert_eq!(
        events,
        [
            Event::Reply(Reply::Failed("unknown command".into())),
            Event::Close
        ]
    );
    assert!(s.is_closed());
    assert!(!s.in_transaction());
}

#[test]
fn unreadable_transaction_id_closes() {
    let mut s = ready();
    assert_eq!(feed(&mut s, b"Sx\tk\tv\n"), [Event::Close]);
}

#[test]
fn handshake_must_come_first_and_fit() {
    for first in [
        &b"Lk\tu\n"[..],
        b"H2\t0\t0\t\tcoid\n",
        b"H5\t0\t0\t\tcoid\n",
        b"H30\t0\t0\t\tcoid\n",
        b"H3\t2\t1\t\tquota\n",
        b"H4\t0\t1\t\tquota\n",
        b"H4\t0\t0\n",
        b"garbage\n",
        b"\n",
    ] {
        let mut s = Session::new(limits());
        assert_eq!(feed(&mut s, first), [Event::Close], "{first:?}");
        assert_eq!(s.version(), None);
    }
    let mut s = Session::new(limits());
    let long = format!("H3\t2\t0\t\t{}\n", "d".repeat(400));
    assert_eq!(feed(&mut s, long.as_bytes()), [Event::Close]);
    for (mut s, again) in [
        (ready(), &b"H3\t2\t0\t\tcoid\n"[..]),
        (ready_v4(), b"H4\t0\t0\t\tcoid\n"),
        (ready_v4(), b"H3\t2\t0\t\tcoid\n"),
    ] {
        assert_eq!(
            feed(&mut s, again),
            [
                Event::Reply(Reply::Failed("handshake sent twice".into())),
                Event::Close
            ]
        );
    }
}

#[test]
fn fragments_and_arbitrary_bytes_never_panic() {
    for script in [
        &b"H3\t2\t0\t\tcoid\nB1\talice\nS1\tpriv/g/k\tv\x01t\nC1\nI9\t0\tpriv/\talice\n"[..],
        b"H4\t0\t0\t\tcoid\nB1\talice\t0\nS1\tpriv/g/k\tv\x01t\nC1\nI9\t0\tpriv/\talice\n",
    ] {
        let mut s = Session::new(limits());
        let mut events = Vec::new();
        for chunk in script.chunks(3) {
            s.ingest(chunk, &mut events);
        }
        assert_eq!(events.len(), 2, "{events:?}");
    }
    // Pseudo-random junk: any outcome but a panic is fine.
    let mut seed: u32 = 12345;
    for round in 0..400 {
        let mut s = if round % 2 == 0 { ready() } else { ready_v4() };
        let mut junk = Vec::new();
        for _ in 0..300 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let b = (seed >> 16) as u8;
            junk.push(match b % 8 {
                0 => b'\n',
                1 => b'\t',
                2 => 1,
                3 => b"BSUCRLIATDHV"[usize::from(b) % 12],
                _ => b'0' + b % 10,
            });
        }
        let mut events = Vec::new();
        s.ingest(&junk, &mut events);
    }
}
