//! Migrations that change how the push queue keeps its rows, over databases made
//! by the version before.

use rusqlite::Connection;

use super::temp_sqlite;
use crate::store::{NewPush, PushKind};

const USER: &str = "alice@example.org";
const T: i64 = 1_700_000_000_000;

/// A push to `target` carrying `payload`.
fn push(target: &str, payload: &str) -> NewPush {
    NewPush {
        kind: PushKind::WebPush,
        username: USER.into(),
        target: target.into(),
        payload: payload.into(),
        with_content: true,
        validation: false,
        not_before: T,
        deadline: T + 60_000,
        dedupe: None,
    }
}

fn payloads(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM push_payloads", [], |r| r.get(0))
        .expect("count")
}

/// Version 12 kept no count: a payload went when no row pointed at it any more, by
/// the queue's index of `payload_id`. Migrated to 13, each payload counts the rows
/// queued with it, and still goes with the last one.
#[test]
fn a_shared_payload_queued_before_13_goes_with_its_last_row() {
    let (dir, db) = temp_sqlite();
    let shared = "x".repeat(2000);
    let rows = [push("a", &shared), push("b", &shared), push("c", &shared)];
    assert_eq!(db.enqueue(&rows, 100, T).expect("queued"), 3);
    drop(db);
    let raw = Connection::open(dir.path().join("s.sqlite")).expect("raw");
    raw.execute_batch(
        "DROP TRIGGER push_payloads_attach; DROP TRIGGER push_payloads_delete;
         DROP TRIGGER push_payloads_detach; ALTER TABLE push_payloads DROP COLUMN refs;
         CREATE INDEX push_queue_payload ON push_queue (payload_id)
          WHERE payload_id IS NOT NULL;
         PRAGMA user_version = 12;",
    )
    .expect("back to 12");
    assert_eq!(payloads(&raw), 1);

    let db = super::Sqlite::open(&dir.path().join("s.sqlite")).expect("migrated");
    let seqs: Vec<i64> = raw
        .prepare("SELECT seq FROM push_queue ORDER BY seq")
        .expect("rows")
        .query_map([], |r| r.get(0))
        .expect("seqs")
        .collect::<Result<_, _>>()
        .expect("seqs");
    assert_eq!(seqs.len(), 3);
    for (n, seq) in seqs.iter().enumerate() {
        assert_eq!(payloads(&raw), 1, "kept while {} rows carry it", 3 - n);
        db.push_done(*seq).expect("done");
    }
    assert_eq!(payloads(&raw), 0, "gone with the last");
}
