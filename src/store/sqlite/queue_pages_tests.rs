//! What queueing writes: pages per message to the WAL (every page a transaction
//! touches is one frame of it at commit), and that the queue's lookups by target use
//! an index rather than a scan. Over a bare connection with coid's schema, so no
//! checkpoint runs in between and the WAL's growth counts the frames.

use rusqlite::Connection;

use super::migrate;
use super::queue::enqueue_in;
use crate::store::{NewPush, PushKind, dedupe_key};

const USER: &str = "alice@example.org";
const DEVICES: usize = 8;
const T: i64 = 1_700_000_000_000;
/// Bytes of one WAL frame: its 24-byte header and a 4096-byte page.
const FRAME: u64 = 24 + 4096;

/// A connection to a fresh database with coid's schema that never checkpoints.
fn bare() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = Connection::open(dir.path().join("q.sqlite")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("no checkpoint");
    migrate(&mut conn).expect("schema");
    (dir, conn)
}

/// Message `n`'s pushes to each of the user's devices: one shared payload of a
/// chat's size, a dedupe key each, as `crate::push::delivered` makes them.
fn message(n: usize) -> Vec<NewPush> {
    let id = format!("<m{n}@example.org>");
    let payload = format!("{{\"id\":\"{id}\",\"text\":\"{}\"}}", "x".repeat(1500));
    (0..DEVICES)
        .map(|d| {
            let target = format!("subscription-{d:02}");
            NewPush {
                kind: PushKind::WebPush,
                username: USER.into(),
                dedupe: Some(dedupe_key(&id, PushKind::WebPush, USER, &target)),
                target,
                payload: payload.clone(),
                with_content: true,
                validation: false,
                not_before: T,
                deadline: T + 60_000,
            }
        })
        .collect()
}

/// Queues messages `from..to`, one transaction each.
fn queue(conn: &mut Connection, from: usize, to: usize) {
    for n in from..to {
        let tx = conn.transaction().expect("begin");
        let taken = enqueue_in(&tx, &message(n), 1_000_000, T).expect("queued");
        assert_eq!(taken, DEVICES);
        tx.commit().expect("commit");
    }
}

fn wal_len(dir: &tempfile::TempDir) -> u64 {
    std::fs::metadata(dir.path().join("q.sqlite-wal"))
        .expect("the WAL")
        .len()
}

/// With hundreds of a user's rows queued already, a message's rows for their 8
/// devices append to one page of each index: indexed by (user, target), as before
/// schema 12, each device's rows had pages of their own and a message wrote about
/// 22 pages; with the index of payload ids before schema 13, about 14; numbered by
/// AUTOINCREMENT before schema 14 (`sqlite_sequence`), about 10; now about 9: the
/// queue's two indexes about 1.8 and 1.5 (an index that fills at its end moves
/// entries among up to three leaves), its rows, the shared payload about 1.5 each,
/// the dedupe group and the counter row one each, the file's header most times.
#[test]
fn a_message_for_many_devices_writes_few_pages() {
    let (dir, mut conn) = bare();
    queue(&mut conn, 0, 300);
    let before = wal_len(&dir);
    let measured = 100;
    queue(&mut conn, 300, 300 + measured);
    let frames = (wal_len(&dir) - before) / FRAME;
    let per_message = frames as f64 / measured as f64;
    assert!(
        per_message <= 9.5,
        "{per_message:.1} pages written per message"
    );
}

/// Removing a subscription or token deletes its rows through the user index, not by
/// reading the whole queue; the rows of a round (sent, claimed) are found by their
/// seq, one lookup each.
#[test]
fn lookups_use_an_index() {
    let (_dir, conn) = bare();
    let by_seq = "USING INTEGER PRIMARY KEY";
    for (sql, index) in [
        (
            "DELETE FROM push_queue WHERE username = 'a' AND target = 'b' AND kind = 0",
            "push_queue_user",
        ),
        (
            "DELETE FROM push_queue WHERE username = 'a' AND kind = 1",
            "push_queue_user",
        ),
        (
            "SELECT count(*) FROM push_queue WHERE username = 'a' AND target = 'b' AND kind = 0",
            "push_queue_user",
        ),
        (
            "DELETE FROM push_queue WHERE seq IN (SELECT value FROM json_each(?1))",
            by_seq,
        ),
        (
            "UPDATE push_queue SET not_before = ?2 WHERE seq IN (SELECT value FROM json_each(?1))",
            by_seq,
        ),
    ] {
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let unbound = vec![rusqlite::types::Null; explain.parameter_count()];
        let plan: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(unbound), |r| {
                r.get::<_, String>(3)
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH push_queue") && step.contains(index)),
            "{sql}: {plan:?}"
        );
    }
}
