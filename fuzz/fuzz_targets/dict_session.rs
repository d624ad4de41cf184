//! The dict proxy (`coid::dict::session` with `dict::protocol` and the line framing it
//! shares with LMTP): bytes from Dovecot in, events out, as `dict::connection` feeds
//! them. The handshake in the input picks the protocol: `H3` (Dovecot 2.3) or `H4`
//! (2.4), so both framings and the `\x01` escaping are reached.
//!
//! Properties, beyond "no panic":
//! - the events are the same whether the input arrives in one read or in pieces;
//! - nothing follows a close, and a closed session has no transaction open;
//! - a commit names a user, holds at most `max_changes` changes and at most
//!   `max_pending_bytes` of keys and values;
//! - every reply (the session's own, and the answers the connection writes for its
//!   lookups, iterations and commits, echoing keys and values from the input) encodes
//!   to exactly one line, and its escaped fields unescape to the text it carried.
//!
//! Input: raw bytes from Dovecot's dict client. The first byte picks the piece size
//! (1 to 16 bytes).

#![no_main]

use coid::dict::protocol::{Reply, unescape};
use coid::dict::session::{Event, Limits, Session};
use libfuzzer_sys::fuzz_target;

fn limits() -> Limits {
    Limits {
        max_line: 256,
        max_transactions: 2,
        max_changes: 3,
        max_pending_bytes: 1024,
        max_rows: 50,
    }
}

fn drive(input: &[u8], piece: usize) -> (Vec<Event>, bool, bool) {
    let mut session = Session::new(limits());
    let mut events = Vec::new();
    for read in input.chunks(piece.max(1)) {
        let before = events.len();
        let was_closed = session.is_closed();
        session.ingest(read, &mut events);
        if was_closed {
            assert_eq!(events.len(), before, "events after the close");
        }
    }
    (events, session.is_closed(), session.in_transaction())
}

/// One reply, encoded: one line, and its text comes back from the escaping.
fn check_reply(reply: &Reply) {
    let mut line = Vec::new();
    reply.encode(&mut line);
    let body = line.strip_suffix(b"\n").expect("ends in LF");
    assert!(!body.contains(&b'\n'), "{reply:?} encodes to {line:?}");
    let fields: Vec<&[u8]> = body.split(|&b| b == b'\t').collect();
    let text = |field: &[u8]| unescape(field).expect("own escaping unescapes");
    match reply {
        Reply::Value(value) => assert_eq!(text(&body[1..]), *value),
        Reply::Failed(error) => assert_eq!(text(&body[1..]), *error),
        Reply::Row { key, value } => {
            assert_eq!(fields.len(), 2, "{line:?}");
            assert_eq!(text(&fields[0][1..]), *key);
            assert_eq!(text(fields[1]), value.clone().unwrap_or_default());
        }
        Reply::CommitFailed { error, .. } => {
            assert_eq!(fields.len(), 2, "{line:?}");
            assert_eq!(text(fields[1]), *error);
        }
        Reply::NotFound | Reply::EndOfRows | Reply::Committed { .. } => {
            assert_eq!(fields.len(), 1)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let piece = usize::from(data.first().copied().unwrap_or(0) % 16) + 1;
    let (events, closed, in_tx) = drive(data, data.len());
    let pieces = drive(data, piece);
    assert_eq!(
        (&events, closed, in_tx),
        (&pieces.0, pieces.1, pieces.2),
        "events depend on how the input was read"
    );
    if closed {
        assert!(!in_tx, "a closed session keeps a transaction");
        assert_eq!(events.last(), Some(&Event::Close));
    }
    let max = limits();
    for event in &events {
        match event {
            Event::Reply(reply) => check_reply(reply),
            Event::Lookup { username, key } => {
                assert!(!username.is_empty());
                check_reply(&Reply::Value(key.clone()));
            }
            Event::Iterate {
                username,
                path,
                limit,
                ..
            } => {
                assert!(!username.is_empty());
                assert!((1..=max.max_rows).contains(limit));
                check_reply(&Reply::Row {
                    key: path.clone(),
                    value: Some(username.clone()),
                });
            }
            Event::Commit {
                id,
                async_,
                username,
                changes,
            } => {
                assert!(!username.is_empty());
                assert!(changes.len() <= max.max_changes);
                let bytes: usize = changes
                    .iter()
                    .map(|c| c.key.len() + c.value.as_ref().map_or(0, String::len))
                    .sum();
                assert!(bytes <= max.max_pending_bytes, "{bytes} pending bytes");
                for change in changes {
                    check_reply(&Reply::Row {
                        key: change.key.clone(),
                        value: change.value.clone(),
                    });
                }
                check_reply(&Reply::Committed {
                    id: *id,
                    async_: *async_,
                });
                check_reply(&Reply::CommitFailed {
                    id: Some(*id),
                    async_: *async_,
                    error: username.clone(),
                });
            }
            Event::Close => {}
        }
    }
});
