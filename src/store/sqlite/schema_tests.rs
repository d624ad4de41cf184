//! Migrations that change how the push queue keeps its rows, over databases made
//! by the version before.

use rusqlite::Connection;

use super::sqlite_at;
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

/// Queues one row per target in `targets` with plain SQL, all carrying one shared
/// payload (schema 8 on): as the coid of schema `version` did up to 13, whose
/// triggers count the rows; from 14 on, as a hand with `sqlite3` would.
fn queue_at(conn: &Connection, version: usize, targets: &[&str]) {
    let shared = version >= 8;
    if shared {
        conn.execute(
            "INSERT INTO push_payloads (payload) VALUES (?1)",
            [&"x".repeat(2000)],
        )
        .expect("payload");
    }
    let payload_id = shared.then(|| conn.last_insert_rowid());
    for target in targets {
        let (payload, columns, values) = match payload_id {
            Some(_) => ("", ", payload_id", ", ?4"),
            None => ("{}", "", ""),
        };
        let sql = format!(
            "INSERT INTO push_queue (username, target, payload, with_content, validation,
                                     not_before, deadline, created, kind{columns})
             VALUES (?1, ?2, ?3, 1, 0, {T}, {}, {T}, 0{values})",
            T + 60_000
        );
        let mut stmt = conn.prepare(&sql).expect("insert");
        match payload_id {
            Some(id) => stmt.execute(rusqlite::params![USER, target, payload, id]),
            None => stmt.execute(rusqlite::params![USER, target, payload]),
        }
        .expect("queued");
    }
}

fn seqs(conn: &Connection) -> Vec<i64> {
    conn.prepare("SELECT seq FROM push_queue ORDER BY seq")
        .expect("rows")
        .query_map([], |r| r.get(0))
        .expect("seqs")
        .collect::<Result<_, _>>()
        .expect("seqs")
}

/// Version 12 kept no count: a payload went when no row pointed at it any more, by
/// the queue's index of `payload_id`. Migrated to 13 (and on), each payload counts
/// the rows queued with it, and still goes with the last one.
#[test]
fn a_shared_payload_queued_before_13_goes_with_its_last_row() {
    let (dir, raw) = sqlite_at(12);
    queue_at(&raw, 12, &["a", "b", "c"]);
    assert_eq!(payloads(&raw), 1);

    let db = super::Sqlite::open(&dir.path().join("s.sqlite")).expect("migrated");
    let seqs = seqs(&raw);
    assert_eq!(seqs.len(), 3);
    for (n, seq) in seqs.iter().enumerate() {
        assert_eq!(payloads(&raw), 1, "kept while {} rows carry it", 3 - n);
        db.push_done(*seq).expect("done");
    }
    assert_eq!(payloads(&raw), 0, "gone with the last");
}

/// A version-6 database (the length not yet kept) with rows in its queue: migrated,
/// it counts them.
#[test]
fn a_queue_from_before_7_is_counted() {
    let (dir, raw) = sqlite_at(6);
    queue_at(&raw, 6, &["a", "b"]);
    let db = super::Sqlite::open(&dir.path().join("s.sqlite")).expect("migrated");
    assert_eq!(db.queue_len().expect("len"), 2);
}

/// Version 13 numbered rows by AUTOINCREMENT and counted them by triggers. Migrated
/// to 14, the rows keep their numbers, the length and the payload's count stay
/// right, and a new row is numbered past every number ever given, also one whose
/// row is gone: a push the worker still holds must not settle a newer row.
#[test]
fn a_queue_from_13_keeps_its_rows_counts_and_numbers() {
    let (dir, raw) = sqlite_at(13);
    queue_at(&raw, 13, &["a", "b", "c"]);
    let before = seqs(&raw);
    raw.execute("DELETE FROM push_queue WHERE seq = ?1", [before[2]])
        .expect("the last row sent");

    let db = super::Sqlite::open(&dir.path().join("s.sqlite")).expect("migrated");
    assert_eq!(seqs(&raw), before[..2]);
    assert_eq!(db.queue_len().expect("len"), 2);
    let autoincrement: i64 = raw
        .query_row("SELECT count(*) FROM sqlite_sequence", [], |r| r.get(0))
        .expect("sqlite_sequence");
    assert_eq!(autoincrement, 0, "nothing numbered by AUTOINCREMENT");

    assert_eq!(db.enqueue(&[push("d", "{}")], 100, T).expect("queued"), 1);
    let after = seqs(&raw);
    assert_eq!(after.len(), 3);
    assert!(after[2] > before[2], "{after:?} against {before:?}");
    assert_eq!(db.queue_len().expect("len"), 3);
    for seq in &before[..2] {
        assert_eq!(payloads(&raw), 1, "kept while a row carries it");
        db.push_done(*seq).expect("done");
    }
    assert_eq!(payloads(&raw), 0, "gone with the last of its rows");
    assert_eq!(db.queue_len().expect("len"), 1);
}

/// A row inserted behind coid's back (by hand, numbered by SQLite) does not make
/// queueing fail on its number: the next row is numbered past it.
#[test]
fn a_row_inserted_by_hand_does_not_stop_queueing() {
    let (dir, raw) = sqlite_at(14);
    queue_at(&raw, 14, &["by-hand"]);
    let db = super::Sqlite::open(&dir.path().join("s.sqlite")).expect("open");
    assert_eq!(db.enqueue(&[push("a", "{}")], 100, T).expect("queued"), 1);
    let seqs = seqs(&raw);
    assert_eq!(seqs.len(), 2);
    assert!(seqs[1] > seqs[0], "{seqs:?}");
}
