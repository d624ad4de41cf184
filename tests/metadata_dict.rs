//! IMAP METADATA (RFC 5464) through coid's dict proxy, against real Dovecot 2.3 set up
//! with the shipped `conf.d/dovecot/91-coid-metadata.conf` (pointed at the test's
//! socket): the COI settings round-trip and land in coid's store, DEPTH 1 lists the
//! COI config with the read-only `mailbox-root`, invalid values are refused and
//! nothing of the command is stored, a value set over IMAP drives delivery through
//! Postfix → coid → Dovecot, other METADATA round-trips verbatim, state survives a
//! coid restart, a hostile dict client cannot hurt coid, and a write lock held by
//! another process refuses writes but not reads.

mod common;

use common::message::chat_message_id;
use common::metadata::{
    COI_CONFIG as CONFIG, COI_ENABLED as ENABLED, COI_FILTER as FILTER, COI_ROOT as ROOT,
    DictClient, coid_user_get, get, metadata, pair, set, set_coi, set_ok, setup, socket_dir,
};
use common::stack::{Stack, dovecot_opts, with_coid_metadata};
use common::{Imap, MessageBuilder};
/// A shared server annotation (stored verbatim in coid).
const SHARED_NOTE: &str = "/shared/vendor/coid-test/note";

#[test]
fn coi_settings_round_trip_into_coids_store() {
    let s = setup();
    let mut imap = s.dovecot.imap("alice");
    assert_eq!(get(&mut imap, "", &[ENABLED]), [pair(ENABLED, None)]);
    set_ok(&mut imap, "", &[(ENABLED, Some("yes"))]);
    set_ok(&mut imap, "", &[(FILTER, Some("active"))]);
    assert_eq!(
        get(&mut imap, "", &[ENABLED, FILTER, ROOT]),
        [
            pair(ENABLED, Some("yes")),
            pair(FILTER, Some("active")),
            pair(ROOT, Some("COI"))
        ]
    );
    let stored = coid_user_get(&s.coid, "alice@example.org");
    assert!(stored.contains("enabled=yes\n"), "{stored}");
    assert!(stored.contains("message-filter=active\n"), "{stored}");
    // Entry names are case-insensitive (Dovecot lowercases them).
    set_ok(
        &mut imap,
        "",
        &[(
            "/private/vendor/vendor.dovecot/coi/config/Message-Filter",
            Some("seen"),
        )],
    );
    assert_eq!(get(&mut imap, "", &[FILTER]), [pair(FILTER, Some("seen"))]);
    // NIL unsets: the server default applies again, and is what the client reads
    // ([coi] enabled = false: NIL; message_filter = "none").
    set_ok(&mut imap, "", &[(ENABLED, None), (FILTER, None)]);
    assert_eq!(
        get(&mut imap, "", &[ENABLED, FILTER]),
        [pair(ENABLED, None), pair(FILTER, Some("none"))]
    );
    let stored = coid_user_get(&s.coid, "alice@example.org");
    assert!(stored.contains("enabled=no (default)"), "{stored}");
    // Another user's settings are their own.
    let mut bob = s.dovecot.imap("bob");
    assert_eq!(get(&mut bob, "", &[FILTER]), [pair(FILTER, Some("none"))]);
}

#[test]
fn depth_1_lists_the_coi_config() {
    let s = setup();
    let mut imap = s.dovecot.imap("alice");
    let command = format!("GETMETADATA (DEPTH 1) \"\" ({CONFIG})");
    let (status, _, entries) = metadata(&mut imap, &command);
    assert_eq!(
        (status.as_str(), entries),
        (
            "OK",
            vec![pair(ROOT, Some("COI")), pair(FILTER, Some("none"))]
        )
    );
    set_coi(&mut imap, "active");
    let (status, text, entries) = metadata(&mut imap, &command);
    assert_eq!(status, "OK", "{text}");
    assert_eq!(
        entries,
        [
            pair(ENABLED, Some("yes")),
            pair(ROOT, Some("COI")),
            pair(FILTER, Some("active"))
        ]
    );
    // What the OX client sends after login: two prefixes, DEPTH 1, one command.
    let command =
        format!("GETMETADATA (DEPTH 1) \"\" ({CONFIG} /private/vendor/vendor.dovecot/webpush)");
    // The three COI entries and the read-only WebPush VAPID key.
    let (status, _, entries) = metadata(&mut imap, &command);
    assert_eq!((status.as_str(), entries.len()), ("OK", 4), "{entries:?}");
    let vapid = "/private/vendor/vendor.dovecot/webpush/vapid";
    assert!(
        entries.iter().any(|(name, value)| name == vapid
            && value
                .as_deref()
                .is_some_and(|v| v.starts_with("-----BEGIN PUBLIC KEY-----"))),
        "{entries:?}"
    );
    // DEPTH infinity from higher up finds them too.
    let (status, _, entries) = metadata(
        &mut imap,
        "GETMETADATA (DEPTH infinity) \"\" (/private/vendor)",
    );
    assert_eq!(status, "OK");
    assert_eq!(entries.len(), 4, "{entries:?}");
}

/// `[coi]` defaults are what a user who never set their own reads over IMAP, in a
/// lookup and in a DEPTH 1 listing; their own value replaces it, NIL brings it back.
#[test]
fn server_defaults_are_what_a_user_without_settings_reads() {
    let (_dir, socket) = socket_dir();
    let dovecot = common::dovecot::Dovecot::start(with_coid_metadata(dovecot_opts("/"), &socket));
    let mut opts = common::coid::CoidOpts::dovecot(&dovecot.lmtp_socket().display().to_string());
    opts.dict_socket = Some(socket);
    opts.coi_enabled = true;
    opts.message_filter = "active".into();
    let coid = common::coid::Coid::start(opts);
    let mut imap = dovecot.imap("alice");
    assert_eq!(
        get(&mut imap, "", &[ENABLED, FILTER, ROOT]),
        [
            pair(ENABLED, Some("yes")),
            pair(FILTER, Some("active")),
            pair(ROOT, Some("COI"))
        ]
    );
    let command = format!("GETMETADATA (DEPTH 1) \"\" ({CONFIG})");
    let (status, text, entries) = metadata(&mut imap, &command);
    assert_eq!(status, "OK", "{text}");
    assert_eq!(
        entries,
        [
            pair(ENABLED, Some("yes")),
            pair(ROOT, Some("COI")),
            pair(FILTER, Some("active"))
        ]
    );
    // Reading the defaults stored nothing: coid still has no settings of alice's.
    let stored = coid_user_get(&coid, "alice@example.org");
    assert!(
        stored.contains("message-filter=active (default)"),
        "{stored}"
    );
    set_ok(&mut imap, "", &[(FILTER, Some("seen"))]);
    assert_eq!(get(&mut imap, "", &[FILTER]), [pair(FILTER, Some("seen"))]);
    let (_, _, entries) = metadata(&mut imap, &command);
    assert_eq!(
        entries.iter().filter(|(name, _)| name == FILTER).count(),
        1,
        "{entries:?}"
    );
    set_ok(&mut imap, "", &[(FILTER, None)]);
    assert_eq!(
        get(&mut imap, "", &[FILTER]),
        [pair(FILTER, Some("active"))]
    );
}

#[test]
fn invalid_values_are_refused_and_nothing_is_stored() {
    let s = setup();
    let mut imap = s.dovecot.imap("alice");
    set_ok(&mut imap, "", &[(FILTER, Some("none"))]);
    for pairs in [
        vec![(ENABLED, Some("true"))],
        vec![(ENABLED, Some("YES"))],
        vec![(FILTER, Some("inactive"))],
        vec![(ROOT, Some("Chats"))],
        vec![(ROOT, None)],
        // One bad entry fails the whole command: the good ones are not stored either.
        vec![
            ("/private/comment", Some("must not stay")),
            (ENABLED, Some("yes")),
            (FILTER, Some("sometimes")),
        ],
    ] {
        let (status, text) = set(&mut imap, "", &pairs);
        // Dovecot turns a failed dict commit into a generic server error.
        assert_eq!(status, "NO", "{pairs:?} was accepted: {text}");
        assert!(text.contains("[SERVERBUG]"), "{text}");
    }
    assert_eq!(
        get(&mut imap, "", &[ENABLED, FILTER, ROOT, "/private/comment"]),
        [
            pair(ENABLED, None),
            pair(FILTER, Some("none")),
            pair(ROOT, Some("COI")),
            pair("/private/comment", None)
        ]
    );
    let log = s.dovecot.log();
    // The reason reaches Dovecot's log (only), as "Dict private transaction commit
    // failed: dict-server returned failure: <coid's reason>".
    assert!(
        log.contains("dict-server returned failure: invalid value for /private/vendor/vendor.dovecot/coi/config/enabled: \"true\""),
        "Dovecot logs coid's reason:\n{log}"
    );
}

#[test]
fn a_filter_set_over_imap_drives_delivery() {
    let (_dir, socket) = socket_dir();
    let dovecot = with_coid_metadata(dovecot_opts("/"), &socket);
    let stack = Stack::start(dovecot, |_, opts| opts.dict_socket = Some(socket.clone()));
    let mut imap = stack.dovecot.imap("alice");
    set_coi(&mut imap, "active");
    let send_chat = || {
        let chat = MessageBuilder::chat().message_id(&chat_message_id());
        stack.send_and_wait("bob@example.net", "alice@example.org", &chat)
    };
    let stored = send_chat();
    assert_eq!(stored.mailbox, "COI/Chats");
    assert!(stored.has_flag("$Chat"), "{:?}", stored.flags);
    // Back to none over IMAP: the next chat stays in INBOX.
    set_ok(&mut imap, "", &[(FILTER, Some("none"))]);
    let stored = send_chat();
    assert_eq!(stored.mailbox, "INBOX");
    assert!(stored.has_flag("$Chat"));
}

#[test]
fn other_metadata_round_trips_and_survives_a_restart() {
    let mut s = setup();
    let mut imap = s.dovecot.imap("alice");
    let tricky = "line one\r\nline two\twith a tab \u{1} and ünïcödé";
    set_ok(
        &mut imap,
        "",
        &[
            ("/private/comment", Some(tricky)),
            // (Dovecot keeps the server's /shared/comment to itself: read-only.)
            (SHARED_NOTE, Some("server, shared")),
        ],
    );
    set_ok(
        &mut imap,
        "INBOX",
        &[
            ("/private/comment", Some("on inbox")),
            ("/shared/comment", Some("inbox shared")),
        ],
    );
    s.dovecot
        .imap("alice")
        .raw_command("CREATE Projects")
        .expect("CREATE");
    set_ok(
        &mut imap,
        "Projects",
        &[("/private/comment", Some("projects"))],
    );
    set_ok(&mut imap, "", &[(FILTER, Some("active"))]);

    let check = |imap: &mut Imap| {
        assert_eq!(
            get(imap, "", &["/private/comment", SHARED_NOTE]),
            [
                pair("/private/comment", Some(tricky)),
                pair(SHARED_NOTE, Some("server, shared"))
            ]
        );
        assert_eq!(
            get(imap, "INBOX", &["/private/comment", "/shared/comment"]),
            [
                pair("/private/comment", Some("on inbox")),
                pair("/shared/comment", Some("inbox shared"))
            ]
        );
        // A mailbox lists only its own annotations, not the server's.
        let (status, _, entries) = metadata(imap, "GETMETADATA (DEPTH 1) INBOX (/private)");
        assert_eq!(
            (status.as_str(), entries),
            ("OK", vec![pair("/private/comment", Some("on inbox"))])
        );
        assert_eq!(get(imap, "", &[FILTER]), [pair(FILTER, Some("active"))]);
    };
    check(&mut imap);
    s.coid.restart();
    let mut imap = s.dovecot.imap("alice");
    check(&mut imap);
    assert_eq!(
        get(&mut imap, "Projects", &["/private/comment"]),
        [pair("/private/comment", Some("projects"))]
    );
    // Deleting a folder removes its annotations, never the user's server entries.
    imap.raw_command("DELETE Projects").expect("DELETE");
    imap.raw_command("CREATE Projects").expect("CREATE again");
    assert_eq!(
        get(&mut imap, "Projects", &["/private/comment"]),
        [pair("/private/comment", None)]
    );
    check(&mut imap);
    s.dovecot.assert_no_log_errors();
}

#[test]
fn hostile_dict_clients_get_errors_and_coid_keeps_serving() {
    let s = setup();
    let mut c = DictClient::connect(&s.coid);
    c.send(b"H3\t2\t0\t\tcoid\n");
    // An overlong SET fails its transaction, a bad escape its lookup, an unknown
    // transaction its commit; the connection stays in sync.
    let long = "x".repeat(70_000);
    c.send(format!("B1\talice@example.org\nS1\tpriv/g/k\t{long}\nC1\n").as_bytes());
    assert_eq!(c.line().as_deref(), Some(&b"F1\tline too long"[..]));
    c.send(b"Lpriv/g/k\x01\talice@example.org\n");
    assert_eq!(c.line().as_deref(), Some(&b"Fbad escape"[..]));
    c.send(b"C99\n");
    assert!(c.line().is_some_and(|l| l.starts_with(b"F99\t")));
    c.send(b"Lpriv/g/k\talice@example.org\n");
    assert_eq!(
        c.line().as_deref(),
        Some(&b"N"[..]),
        "nothing of transaction 1 was stored"
    );
    // An unknown command is answered and the connection closed.
    c.send(b"Zzz\n");
    assert_eq!(c.line().as_deref(), Some(&b"Funknown command"[..]));
    assert_eq!(c.line(), None);
    // Garbage instead of a handshake: closed without a word.
    let mut c = DictClient::connect(&s.coid);
    c.send(b"\xff\xfe\x00garbage\n");
    assert_eq!(c.line(), None);
    // coid still serves Dovecot.
    let mut imap = s.dovecot.imap("alice");
    set_ok(&mut imap, "", &[(ENABLED, Some("yes"))]);
    assert_eq!(get(&mut imap, "", &[ENABLED]), [pair(ENABLED, Some("yes"))]);
}

/// Another process holds the write lock on coid's state file: GETMETADATA is answered
/// at once (WAL: readers never wait for a writer), SETMETADATA waits out SQLite's busy
/// timeout (5 s) and is refused with Dovecot's `NO [SERVERBUG]`, storing nothing; once
/// the lock is gone the same SETMETADATA succeeds.
#[test]
fn a_held_state_lock_refuses_writes_and_answers_reads() {
    let s = setup();
    let mut imap = s.dovecot.imap("alice");
    set_ok(&mut imap, "", &[(ENABLED, Some("yes"))]);
    let db = s.coid.state_dir().join("coid.sqlite");
    let writer = rusqlite::Connection::open(&db).expect("opening coid's state file");
    writer
        .execute_batch("BEGIN EXCLUSIVE; UPDATE settings_version SET n = n + 1 WHERE id = 1;")
        .expect("taking the write lock");
    assert_eq!(get(&mut imap, "", &[ENABLED]), [pair(ENABLED, Some("yes"))]);
    let (status, text) = set(&mut imap, "", &[(FILTER, Some("active"))]);
    assert_eq!(status, "NO", "a write under the lock: {text}");
    assert!(text.contains("[SERVERBUG]"), "{text}");
    writer
        .execute_batch("ROLLBACK;")
        .expect("releasing the lock");
    // Nothing was stored: alice still reads the server's default.
    assert_eq!(get(&mut imap, "", &[FILTER]), [pair(FILTER, Some("none"))]);
    set_ok(&mut imap, "", &[(FILTER, Some("active"))]);
    assert_eq!(
        get(&mut imap, "", &[FILTER]),
        [pair(FILTER, Some("active"))]
    );
}
