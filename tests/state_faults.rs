//! The state database in trouble, with the real binary, real Dovecot and SQLite:
//! - another process holds the write lock on coid's state file (`BEGIN EXCLUSIVE`
//!   and a write, uncommitted): mail to a COI-active user is still filed by its
//!   settings and answered 250, because the store is in WAL mode and a reader never
//!   waits for a writer (the settings cache's probe connection included); and no
//!   other process can take it into `locking_mode=EXCLUSIVE`, which would shut
//!   readers out too, while coid has it open;
//! - the state file or its directory is not writable for coid's user: `coid serve`
//!   refuses to start (exit 75, the reason on stderr) instead of saying it serves and
//!   failing every METADATA write and push later.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::coid::{Coid, CoidOpts, run_cli};
use common::stack::dovecot_opts;
use common::{Dovecot, LmtpTarget, MessageBuilder, process, send_lmtp, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// Sends `message` to `rcpt` straight to coid; returns the reply after DATA and how
/// long the transaction took (printed for the README's table, never asserted).
fn deliver(coid: &Coid, rcpt: &str, message: &MessageBuilder) -> (u16, Duration) {
    let started = Instant::now();
    let outcome = send_lmtp(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "bob@example.net",
        &[rcpt],
        &message.build(),
    );
    let took = started.elapsed();
    let code = outcome.data.first().map_or(0, |r| r.0);
    (code, took)
}

#[test]
fn a_writer_holding_the_state_lock_does_not_defer_mail() {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let coid = Coid::start(CoidOpts::dovecot(&dovecot.lmtp_tcp().to_string()));
    coid.user_set(
        "alice@example.org",
        &["enabled=yes", "message-filter=active"],
    );
    coid.user_set(
        "carol@example.org",
        &["enabled=yes", "message-filter=active"],
    );
    // One message first: alice's settings are then in coid's cache.
    let (code, unlocked) = deliver(&coid, "alice@example.org", &MessageBuilder::chat());
    assert_eq!(code, 250);

    let db = coid.state_dir().join("coid.sqlite");
    let writer = rusqlite::Connection::open(&db).expect("opening coid's state file");
    writer
        .execute_batch("BEGIN EXCLUSIVE; UPDATE settings_version SET n = n + 1 WHERE id = 1;")
        .expect("taking the write lock");

    // alice: settings from the cache (its probe reads the counter under the lock);
    // carol: never read before, so from the database itself.
    for rcpt in ["alice@example.org", "carol@example.org"] {
        let chat = MessageBuilder::chat();
        let (code, locked) = deliver(&coid, rcpt, &chat);
        eprintln!("{rcpt}: {locked:?} with the state locked, {unlocked:?} before");
        assert_eq!(code, 250, "{rcpt} deferred while a writer held the lock");
        let stored = dovecot.wait_for_message(rcpt, &chat.id(), WAIT);
        assert_eq!(stored.mailbox, "COI/Chats", "{rcpt}: settings not applied");
    }
    writer
        .execute_batch("ROLLBACK;")
        .expect("releasing the lock");
    assert!(
        !coid.log().contains("settings cache: counter unreadable"),
        "{}",
        coid.log()
    );
}

/// `locking_mode=EXCLUSIVE` (what the `sqlite3` shell does after that pragma and one
/// write) would shut every other connection out, readers too. While coid runs it
/// cannot be had: in WAL mode coid's open connections keep a shared lock on the file,
/// so the other process gets "database is locked" and mail goes on.
#[test]
fn exclusive_locking_mode_cannot_be_taken_while_coid_runs() {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let coid = Coid::start(CoidOpts::dovecot(&dovecot.lmtp_tcp().to_string()));
    coid.user_set(
        "alice@example.org",
        &["enabled=yes", "message-filter=active"],
    );
    let db = coid.state_dir().join("coid.sqlite");
    let other = rusqlite::Connection::open(&db).expect("opening coid's state file");
    other
        .busy_timeout(Duration::from_millis(200))
        .expect("busy timeout");
    let taken = other.execute_batch(
        "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; \
         UPDATE settings_version SET n = n + 1 WHERE id = 1; COMMIT;",
    );
    let busy = matches!(
        &taken,
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy
    );
    assert!(
        busy,
        "another process took the database exclusively: {taken:?}"
    );
    let chat = MessageBuilder::chat();
    let (code, _) = deliver(&coid, "alice@example.org", &chat);
    assert_eq!(code, 250);
    let stored = dovecot.wait_for_message("alice", &chat.id(), WAIT);
    assert_eq!(stored.mailbox, "COI/Chats");
}

/// `coid serve` as user `coid` on `state` (which holds a database made by root);
/// returns its exit code and stderr. A coid that serves instead is stopped (by its
/// pid) after 20 s and reported as `None`.
fn serve_as_coid(dir: &Path, state: &Path) -> (Option<i32>, String) {
    let config = dir.join("coid.toml");
    process::write_file(
        &config,
        format!(
            "[lmtp]\ntcp = [\"127.0.0.1:0\"]\nunix_socket = \"\"\n[dict]\nsocket = \"\"\n\
             [metrics]\nlisten = \"\"\n[state]\ndir = \"{}\"\n[service]\nuser = \"coid\"\n\
             [deltachat]\npush = false\n",
            state.display()
        ),
    );
    let stderr = dir.join("serve.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coid"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(process::output_file(&stderr))
        .spawn()
        .expect("starting coid serve");
    let code = wait_until(WAIT, || child.try_wait().ok().flatten()).map(|s| s.code());
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    (code.flatten(), err)
}

/// A state directory holding a database that root made (as an admin command run
/// as root with another config would): `dir_owner` owns the directory.
fn root_made_state(dir: &Path, dir_owner: (u32, u32)) -> std::path::PathBuf {
    let state = dir.join("state");
    std::fs::create_dir(&state).expect("state dir");
    let root_config = dir.join("root.toml");
    process::write_file(
        &root_config,
        format!(
            "[state]\ndir = \"{}\"\n[service]\nuser = \"\"\n",
            state.display()
        ),
    );
    let (code, out, err) = run_cli(
        &root_config,
        &["user", "set", "alice@example.org", "enabled=yes"],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    // The VAPID key too, so nothing is left that coid would have to write at start.
    let (code, out, err) = run_cli(&root_config, &["push", "vapid"], None);
    assert_eq!(code, 0, "{out}{err}");
    std::os::unix::fs::chown(&state, Some(dir_owner.0), Some(dir_owner.1)).expect("chown");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let db = state.join("coid.sqlite");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    state
}

#[test]
fn a_state_database_coid_cannot_write_stops_the_start() {
    process::require_root("the read-only state test (coid must run as another user)");
    let coid_user = process::existing_user_ids("coid");
    // The file is root's, the directory coid's; then both root's.
    for (what, owner) in [("file", coid_user), ("file and directory", (0, 0))] {
        let dir = common::make_run_dir("coid-rostate-");
        let state = root_made_state(dir.path(), owner);
        let (code, err) = serve_as_coid(dir.path(), &state);
        assert_eq!(code, Some(75), "read-only {what}: {err}");
        assert!(
            err.contains("not writable") && err.contains("coid.sqlite"),
            "read-only {what}: {err}"
        );
        assert!(!err.contains("coid serving"), "read-only {what}: {err}");
    }
}
