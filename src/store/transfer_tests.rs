//! Moving state between stores: every kind of row, SQLite → PostgreSQL and back,
//! kept exactly; an import refused by a store that holds state, or by a bad line,
//! writes nothing.

use rstest::rstest;

use super::*;
use crate::store::test_stores::{Kind, store_of};
use crate::store::{
    Kinds, NewPush, Op, PushKind, SECRET_VAPID, Store, Subscribe, Subscription, Table, Write,
};

/// Text a value may hold: escapes, controls (no NUL: the dict refuses it), non-ASCII.
const AWKWARD: &str = "a\tb\r\nc \"q\" \\ \u{1}\u{7f} ünï 漢 🦀 </x> ${x}";

/// One row of every kind, with awkward text and every optional column set and unset.
fn every_kind() -> Vec<Row> {
    let push = |target: &str, kind: i64, dedupe: Option<&str>| Row::Push {
        kind,
        username: "alice@example.org".into(),
        target: target.into(),
        payload: format!("{{\"m\":\"{target}\"}}"),
        with_content: kind == 0,
        validation: dedupe.is_none(),
        attempts: 3,
        not_before: 1_700_000_000_123,
        deadline: 1_800_000_000_456,
        created: 1_700_000_000_001,
        dedupe: dedupe.map(str::to_owned),
    };
    let subscription = |id: &str, validated_at: Option<i64>| Row::Subscription {
        username: "alice@example.org".into(),
        id: id.into(),
        client: "client".into(),
        device: AWKWARD.into(),
        msgtype: "chat".into(),
        endpoint: format!("https://push.example/{id}"),
        p256dh: "BP256".into(),
        auth: "auth".into(),
        created: 1_700_000_000,
        validation: "token-1".into(),
        validated_at,
    };
    vec![
        Row::Metadata {
            username: "alice@example.org".into(),
            entry: "/private/vendor/vendor.dovecot/coi/config/enabled".into(),
            value: "yes".into(),
            updated: 1_700_000_001,
        },
        Row::Metadata {
            username: "bob@example.org".into(),
            entry: "/private/comment".into(),
            value: AWKWARD.into(),
            updated: 1_700_000_002,
        },
        Row::Attribute {
            username: "alice@example.org".into(),
            key: "priv/0123abcd/comment".into(),
            value: AWKWARD.into(),
            updated: 1_700_000_003,
        },
        Row::Secret {
            name: SECRET_VAPID.into(),
            value: "-----BEGIN PRIVATE KEY-----\nMIG…\n-----END PRIVATE KEY-----\n".into(),
            created: 1_600_000_000,
        },
        subscription("dev-1", Some(1_700_000_005)),
        subscription("dev-2", None),
        Row::Token {
            username: "alice@example.org".into(),
            id: "tok-1".into(),
            token: "openpgp:abc\u{1}def".into(),
            created: 1_700_000_006,
            updated: 1_700_000_007,
        },
        push("dev-1", 0, Some("dedupe-1")),
        push("dev-2", 0, None),
        push("tok-1", 1, Some("dedupe-2")),
    ]
}

fn export_of(store: &Store) -> Vec<Row> {
    let mut rows = Vec::new();
    store
        .export(&mut |row| {
            rows.push(row);
            Ok(())
        })
        .expect("export");
    rows
}

fn import_into(store: &Store, rows: &[Row]) -> Result<usize, TransferError> {
    store.import(&mut rows.iter().cloned().map(Ok))
}

/// Every kind of row goes from one engine to the other and comes out as it went in,
/// and the target's own operations see it (the queue's kept length included).
#[rstest]
#[case::sqlite_to_postgresql(Kind::Sqlite, Kind::Postgresql)]
#[case::postgresql_to_sqlite(Kind::Postgresql, Kind::Sqlite)]
fn every_kind_of_row_moves_exactly(#[case] from: Kind, #[case] to: Kind) {
    let rows = every_kind();
    let (_old_guard, old) = store_of(from);
    assert_eq!(import_into(&old, &rows).expect("import"), rows.len());
    assert_eq!(export_of(&old), rows);

    let (_new_guard, new) = store_of(to);
    assert_eq!(
        import_into(&new, &export_of(&old)).expect("import"),
        rows.len()
    );
    assert_eq!(export_of(&new), rows);
    let vapid = new.secret_or_insert(SECRET_VAPID, || "another key".into());
    assert!(vapid.expect("vapid").starts_with("-----BEGIN PRIVATE KEY"));
    assert_eq!(new.queue_len().expect("len"), 3);
    assert_eq!(
        new.subscriptions("alice@example.org").expect("subs").len(),
        2
    );
    assert_eq!(
        new.lookup(
            Table::Attributes,
            "alice@example.org",
            "priv/0123abcd/comment"
        )
        .expect("lookup")
        .as_deref(),
        Some(AWKWARD)
    );
    // The pushes are due (their old times) and go where they went.
    let claimed = new
        .claim_due(1_700_000_000_123, 1_700_000_060_000, 10, Kinds::ALL)
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    assert_eq!(claimed[0].attempts, 3);
    // A push queued after the import (to its token) is counted and numbered after the
    // imported rows
    // (SQLite counts an import once, at its end: schema 14).
    let after = NewPush {
        kind: PushKind::DeltaChat,
        username: "alice@example.org".into(),
        target: "tok-1".into(),
        payload: String::new(),
        with_content: false,
        validation: false,
        not_before: 1_700_000_000_000,
        deadline: 1_700_000_060_000,
        dedupe: None,
    };
    assert_eq!(
        new.enqueue(&[after], 10, 1_700_000_000_000)
            .expect("queued"),
        1
    );
    assert_eq!(new.queue_len().expect("len"), 4);
    let more = new
        .claim_due(1_700_000_000_123, 1_700_000_060_000, 10, Kinds::ALL)
        .expect("claim");
    assert_eq!(more.len(), 1);
    assert!(claimed.iter().all(|c| c.seq < more[0].seq), "{more:?}");
}

/// State that coid's own operations wrote on SQLite (a payload shared by several rows
/// stored once, a validated subscription, a token) arrives whole in PostgreSQL.
#[test]
fn state_written_by_coid_moves_from_sqlite_to_postgresql() {
    let (_old_guard, old) = store_of(Kind::Sqlite);
    let now = 1_700_000_000_000;
    let push = |target: &str| NewPush {
        kind: PushKind::WebPush,
        username: "a@x".into(),
        target: target.into(),
        payload: "{\"shared\":1}".into(),
        with_content: true,
        validation: false,
        not_before: now,
        deadline: now + 60_000,
        dedupe: Some(format!("d-{target}")),
    };
    let subscribe = |id: &str| {
        Op::Subscribe(Box::new(Subscribe {
            subscription: Subscription {
                id: id.into(),
                client: "c".into(),
                device: "d".into(),
                msgtype: "chat".into(),
                endpoint: format!("https://push.example/{id}"),
                p256dh: "k".into(),
                auth: "a".into(),
                created: now / 1000,
                validated_at: None,
            },
            token: format!("v-{id}"),
            limit: 5,
            validation_push: NewPush {
                validation: true,
                dedupe: None,
                ..push(id)
            },
            max_queue: 100,
        }))
    };
    let ops = [
        subscribe("s1"),
        subscribe("s2"),
        Op::Validate {
            id: "s1".into(),
            token: "v-s1".into(),
            created_since: 0,
        },
        Op::AddToken {
            id: "t1".into(),
            token: "tok".into(),
            max: 3,
        },
        Op::Put(Write {
            table: Table::Metadata,
            key: "/private/x".into(),
            value: Some(AWKWARD.into()),
        }),
    ];
    old.commit("a@x", &ops, now).expect("commit");
    assert_eq!(
        old.enqueue(&[push("s1"), push("s2")], 100, now).expect("q"),
        2
    );
    old.secret_or_insert(SECRET_VAPID, || "pem".into())
        .expect("vapid");
    let rows = export_of(&old);
    assert_eq!(rows.len(), 1 + 1 + 2 + 1 + 4, "{rows:#?}");

    let (_new_guard, new) = store_of(Kind::Postgresql);
    import_into(&new, &rows).expect("import");
    assert_eq!(export_of(&new), rows);
    let subs = new.subscriptions("a@x").expect("subs");
    assert!(subs[0].validated_at.is_some() && subs[1].validated_at.is_none());
    assert_eq!(new.tokens("a@x", 0).expect("tokens")[0].token, "tok");
    assert_eq!(
        new.get("a@x", "/private/x").expect("get").as_deref(),
        Some(AWKWARD)
    );
    let claimed = new.claim_due(now, now + 1, 10, Kinds::ALL).expect("claim");
    let shared = claimed.iter().filter(|p| p.payload == "{\"shared\":1}");
    assert_eq!(shared.count(), 4);
}

/// A store that holds any state refuses an import, and keeps what it had.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_store_holding_state_refuses_an_import(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    let key = store
        .secret_or_insert(SECRET_VAPID, || "this deployment's key".into())
        .expect("vapid");
    match import_into(&store, &every_kind()) {
        Err(TransferError::NotEmpty(what)) => assert!(what.contains("server_secrets"), "{what}"),
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    let kept = export_of(&store);
    assert!(
        matches!(&kept[..], [Row::Secret { value, .. }] if *value == key),
        "{kept:?}"
    );
}

/// State that would not even conflict with the file's rows (another user's setting)
/// refuses an import too: two deployments are never mixed.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_store_holding_unrelated_state_refuses_an_import(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    store
        .set("carol@example.org", "/private/comment", Some("hers"))
        .expect("set");
    match import_into(&store, &every_kind()) {
        Err(TransferError::NotEmpty(what)) => assert!(what.contains("user_metadata"), "{what}"),
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    assert_eq!(export_of(&store).len(), 1);
}

/// A bad line stops the import, names its line, and nothing is written, not even
/// the rows before it.
#[rstest]
#[case::sqlite(Kind::Sqlite)]
#[case::postgresql(Kind::Postgresql)]
fn a_bad_line_names_its_line_and_writes_nothing(#[case] kind: Kind) {
    let (_guard, store) = store_of(kind);
    let mut file = String::from("{\"coid-state\":1,\"schema\":9,\"engine\":\"sqlite\"}\n");
    for row in every_kind().iter().take(3) {
        file.push_str(&serde_json::to_string(row).expect("json"));
        file.push('\n');
    }
    file.push_str("{\"row\":\"metadata\",\"username\":\"a\"}\n");
    let (_, mut reader) = Reader::new(file.as_bytes()).expect("header");
    match store.import(&mut reader) {
        Err(TransferError::BadLine { line, .. }) => assert_eq!(line, 5),
        other => panic!("expected a bad line 5, got {other:?}"),
    }
    assert_eq!(export_of(&store), Vec::new());
}

/// The header: an unknown format version, or no header at all, is refused; a file
/// written by [`Header`] and rows reads back.
#[test]
fn the_header_is_checked_and_rows_read_back() {
    let unknown = b"{\"coid-state\":2,\"schema\":9,\"engine\":\"sqlite\"}\n" as &[u8];
    assert!(
        matches!(Reader::new(unknown), Err(TransferError::Header(m)) if m.contains("format 2"))
    );
    assert!(matches!(
        Reader::new(&b""[..]),
        Err(TransferError::Header(_))
    ));
    assert!(matches!(
        Reader::new(&b"{\"row\":\"secret\"}\n"[..]),
        Err(TransferError::Header(_))
    ));
    let header = Header {
        format: FORMAT_VERSION,
        schema: 1,
        engine: "postgresql".into(),
    };
    let mut file = serde_json::to_string(&header).expect("json") + "\n";
    for row in every_kind() {
        file += &(serde_json::to_string(&row).expect("json") + "\n");
    }
    let (read, reader) = Reader::new(file.as_bytes()).expect("header");
    assert_eq!(read, header);
    let rows: Vec<Row> = reader.map(|r| r.expect("row")).collect();
    assert_eq!(rows, every_kind());
    let long = format!("{file}{}\n", "x".repeat(MAX_LINE + 1));
    let (_, mut reader) = Reader::new(long.as_bytes()).expect("header");
    let last = reader.nth(10).expect("a line");
    assert!(
        matches!(last, Err(TransferError::BadLine { line: 12, .. })),
        "{last:?}"
    );
}
