//! coid as a host service, run as the real binary: graceful stop (idle sessions get
//! 421, a transaction in flight finishes, exit 0; a second signal exits at once; the
//! stop is logged once; a stop during start-up is logged and exits 0),
//! reload on SIGHUP (new sessions get the new config and Sieve, sessions in flight
//! keep theirs, a bad config is refused and the old one stays), systemd's notify
//! protocol and watchdog (a real datagram socket in NOTIFY_SOCKET), socket activation
//! (systemd's own `systemd-socket-activate`), and the privilege drop when started as
//! root (owner, group and mode of the sockets; the process's uid/gid in /proc).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::coid::{Coid, CoidOpts};
use common::fault::{Fault, FaultProxy};
use common::stack::dovecot_opts;
use common::{Dovecot, MessageBuilder, process, wait_until};

/// A line-by-line LMTP client that can stop anywhere in a transaction.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    fn open(addr: SocketAddr) -> Session {
        let stream = TcpStream::connect(addr).expect("connecting to coid");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let writer = stream.try_clone().expect("clone");
        let mut session = Session {
            reader: BufReader::new(stream),
            writer,
        };
        assert_eq!(session.reply().0, 220);
        session
    }

    /// One reply (the last line's code, all lines); code 0 when the connection ended.
    fn reply(&mut self) -> (u16, String) {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return (0, all),
                Ok(_) => {}
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return (code, all);
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("writing");
    }

    fn command(&mut self, line: &str) -> (u16, String) {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// LHLO, MAIL, one RCPT: ready for DATA.
    fn envelope(&mut self, rcpt: &str) {
        assert_eq!(self.command("LHLO test.example.net").0, 250);
        assert_eq!(self.command("MAIL FROM:<bob@example.net>").0, 250);
        assert_eq!(self.command(&format!("RCPT TO:<{rcpt}>")).0, 250);
    }

    /// DATA and the message, without reading the final reply.
    fn data(&mut self, message: &[u8]) {
        assert_eq!(self.command("DATA").0, 354);
        self.writer
            .write_all(&common::smtp::data_payload(message))
            .expect("writing the message");
    }
}

fn plain(id: &str) -> Vec<u8> {
    MessageBuilder::new()
        .message_id(id)
        .subject("service test")
        .body("hello\r\n")
        .build()
}

/// coid (Maildir backend under its state directory) with `[policy] script` at
/// `policy`, which first files everything into `folder`.
fn maildir_coid(policy: &Path, folder: &str, tweak: impl FnOnce(&mut CoidOpts)) -> Coid {
    write_policy(policy, folder);
    let mut opts = CoidOpts::dovecot("/nonexistent");
    opts.backend = "maildir".into();
    opts.policy_script = policy.display().to_string();
    tweak(&mut opts);
    Coid::start(opts)
}

fn write_policy(path: &Path, folder: &str) {
    let script = format!("require [\"fileinto\", \"mailbox\"];\nfileinto :create \"{folder}\";\n");
    process::write_file(path, script);
}

/// Message files in alice's Maildir folder `folder` under coid's state directory.
fn maildir_count(coid: &Coid, folder: &str) -> usize {
    let state = coid.config_path().with_file_name("state");
    let dir = state.join(format!("mail/example.org/alice/Maildir/.{folder}/new"));
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn sigterm_finishes_the_transaction_in_flight_ends_idle_sessions_and_exits_0() {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let slow = FaultProxy::start(
        dovecot.lmtp_tcp(),
        vec![Fault::SlowData(Duration::from_secs(2))],
    );
    let mut coid = Coid::start(CoidOpts::dovecot(&slow.addr()));
    let mut idle = Session::open(coid.lmtp_addr());
    assert_eq!(idle.command("LHLO idle.example.net").0, 250);
    let mut busy = Session::open(coid.lmtp_addr());
    busy.envelope("alice@example.org");
    busy.data(&plain("<stop-in-flight@example.net>"));
    // The message is on its way to the (slow) store when the stop comes: the hop has
    // its end and holds it back for 2 s.
    assert!(
        slow.wait_data_read(1, Duration::from_secs(10)),
        "the message did not reach the hop"
    );
    coid.signal("TERM");
    let (code, text) = idle.reply();
    assert_eq!(code, 421, "idle session: {text}");
    let (code, text) = busy.reply();
    assert_eq!(code, 250, "the transaction in flight: {text}");
    let (code, text) = busy.command("QUIT");
    assert_eq!(code, 221, "QUIT after the stop: {text}");
    assert_eq!(
        coid.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        coid.log()
    );
    assert!(
        TcpStream::connect(coid.lmtp_addr()).is_err(),
        "still accepting"
    );
    dovecot.wait_for_message(
        "alice@example.org",
        "<stop-in-flight@example.net>",
        Duration::from_secs(10),
    );
    assert_eq!(
        dovecot.count_message("alice@example.org", "<stop-in-flight@example.net>"),
        1
    );
}

/// No clock in the assertions: the grace period is 300 s, so a coid that exits at
/// all within the test's wait did not wait for it; the idle session's 421 shows the
/// first TERM was taken (the second-signal handler is armed before it is sent), and
/// `/health` answering `stopping` after it shows coid did not exit at the first.
#[test]
fn a_second_sigterm_exits_at_once_without_answering() {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let stall = FaultProxy::start(dovecot.lmtp_tcp(), vec![Fault::Stall]);
    let mut opts = CoidOpts::dovecot(&stall.addr());
    opts.reply_timeout_secs = 120;
    opts.shutdown_grace_secs = 300;
    let mut coid = Coid::start(opts);
    let mut idle = Session::open(coid.lmtp_addr());
    assert_eq!(idle.command("LHLO idle.example.net").0, 250);
    let mut busy = Session::open(coid.lmtp_addr());
    busy.envelope("alice@example.org");
    busy.data(&plain("<second-signal@example.net>"));
    wait_until(Duration::from_secs(10), || {
        (stall.connections() == 1).then_some(())
    })
    .expect("coid connected to the store");
    coid.signal("TERM");
    let (code, text) = idle.reply();
    assert_eq!(code, 421, "idle session after the first TERM: {text}");
    // ... coid keeps waiting for the transaction in flight ...
    let health = common::metrics::http_get(coid.metrics_addr(), "/health");
    assert_eq!(
        health,
        (503, "stopping\n".to_owned()),
        "after the first TERM"
    );
    coid.signal("TERM");
    assert_eq!(
        coid.wait_exit(Duration::from_secs(30)),
        Some(1),
        "{}",
        coid.log()
    );
    // ... and the message was never accepted: Postfix would retry it.
    let (code, text) = busy.reply();
    assert_eq!(code, 0, "no reply after the forced exit: {text}");
}

#[test]
fn sighup_reloads_for_new_sessions_and_refuses_a_bad_config() {
    let dir = common::make_run_dir("coid-reload-");
    let policy = dir.path().join("policy.sieve");
    let coid = maildir_coid(&policy, "Before", |_| {});
    // Session 1 starts on the first config and stays open across the reload.
    let mut early = Session::open(coid.lmtp_addr());
    early.envelope("alice@example.org");
    write_policy(&policy, "After");
    coid.signal("HUP");
    wait_for_log(&coid, "reloaded", 1);
    let mut late = Session::open(coid.lmtp_addr());
    late.envelope("alice@example.org");
    late.data(&plain("<late@example.net>"));
    assert_eq!(late.reply().0, 250);
    early.data(&plain("<early@example.net>"));
    assert_eq!(early.reply().0, 250);
    assert_eq!(
        maildir_count(&coid, "Before"),
        1,
        "the session in flight kept its policy"
    );
    assert_eq!(
        maildir_count(&coid, "After"),
        1,
        "a new session got the new policy"
    );

    // A Sieve script that does not compile: refused, the running policy stays.
    process::write_file(&policy, "this is not sieve;\n");
    coid.signal("HUP");
    wait_for_log(&coid, "reload refused", 1);
    assert!(
        coid.log().contains("Expected token"),
        "the Sieve error is logged"
    );
    send_one(&coid, "<after-bad-sieve@example.net>");
    assert_eq!(
        maildir_count(&coid, "After"),
        2,
        "still the last good policy"
    );
    // A config that does not parse (with a good policy, which would file into
    // "Other"): refused too, for the config's own reason.
    write_policy(&policy, "Other");
    let config = coid.config_path();
    let good = std::fs::read_to_string(&config).expect("config");
    process::write_file(&config, format!("{good}\nbogus = 1\n"));
    coid.signal("HUP");
    wait_for_log(&coid, "reload refused", 2);
    assert!(
        coid.log().contains("bogus"),
        "the TOML error is logged:\n{}",
        coid.log()
    );
    send_one(&coid, "<after-bad-config@example.net>");
    assert_eq!(
        maildir_count(&coid, "After"),
        3,
        "still the last good policy"
    );
    assert_eq!(maildir_count(&coid, "Other"), 0);

    // Fixed again: the next reload takes.
    process::write_file(&config, good);
    write_policy(&policy, "Again");
    coid.signal("HUP");
    wait_for_log(&coid, "reloaded", 2);
    send_one(&coid, "<again@example.net>");
    assert_eq!(maildir_count(&coid, "Again"), 1);
    assert!(coid.pid().is_some_and(process::is_alive));
}

fn send_one(coid: &Coid, id: &str) {
    let mut s = Session::open(coid.lmtp_addr());
    s.envelope("alice@example.org");
    s.data(&plain(id));
    assert_eq!(s.reply().0, 250);
}

/// Waits until coid's log has `needle` at least `times` times.
fn wait_for_log(coid: &Coid, needle: &str, times: usize) {
    let seen = wait_until(Duration::from_secs(10), || {
        (coid.log().matches(needle).count() >= times).then_some(())
    });
    assert!(
        seen.is_some(),
        "no {needle:?} x{times} in the log:\n{}",
        coid.log()
    );
}

/// A NOTIFY_SOCKET for coid: every datagram coid sends, in order.
struct Notify {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Notify {
    fn bind() -> Notify {
        let dir = common::make_run_dir("coid-notify-");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("binding NOTIFY_SOCKET");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Notify {
            socket,
            _dir: dir,
            path,
        }
    }

    /// The next datagram that is not a watchdog ping (those are counted).
    fn next_state(&self, pings: &mut usize) -> String {
        loop {
            let mut buf = [0u8; 4096];
            let n = self
                .socket
                .recv(&mut buf)
                .expect("a notification from coid");
            let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
            if text.trim() == "WATCHDOG=1" {
                *pings += 1;
            } else {
                return text;
            }
        }
    }
}

#[test]
fn systemd_hears_ready_reloading_stopping_and_watchdog_pings() {
    let notify = Notify::bind();
    let dir = common::make_run_dir("coid-notify-policy-");
    let policy = dir.path().join("policy.sieve");
    let mut coid = maildir_coid(&policy, "Chats", |opts| {
        opts.env = vec![
            ("NOTIFY_SOCKET".into(), notify.path.display().to_string()),
            ("WATCHDOG_USEC".into(), "200000".into()),
        ];
    });
    let mut pings = 0;
    let ready = notify.next_state(&mut pings);
    assert!(
        ready.contains("READY=1") && ready.contains("STATUS="),
        "{ready:?}"
    );
    coid.signal("HUP");
    let reloading = notify.next_state(&mut pings);
    assert!(
        reloading.contains("RELOADING=1") && reloading.contains("MONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert!(notify.next_state(&mut pings).contains("READY=1"));
    // Pinged every 100 ms (half of WATCHDOG_USEC).
    let began = Instant::now();
    while began.elapsed() < Duration::from_millis(600) {
        let mut buf = [0u8; 64];
        if let Ok(n) = notify.socket.recv(&mut buf)
            && buf
                .get(..n)
                .is_some_and(|b| b.trim_ascii() == b"WATCHDOG=1")
        {
            pings += 1;
        }
    }
    assert!(pings >= 3, "{pings} watchdog pings");
    coid.signal("TERM");
    assert!(notify.next_state(&mut pings).contains("STOPPING=1"));
    assert_eq!(coid.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn socket_activation_serves_the_socket_systemd_passed() {
    let dir = common::make_run_dir("coid-activate-");
    let policy = dir.path().join("policy.sieve");
    // systemd's socket is the config's own TCP listener address: were coid to bind
    // that too, it would fail with "address in use".
    let coid = maildir_coid(&policy, "Activated", |opts| {
        opts.wrapper = vec![
            "systemd-socket-activate".into(),
            "--listen=@LMTP_ADDR@".into(),
            "--fdname=lmtp".into(),
        ];
    });
    // systemd-socket-activate starts coid on the first connection.
    send_one(&coid, "<activated@example.net>");
    assert!(
        coid.log().contains("LMTP sockets from systemd"),
        "{}",
        coid.log()
    );
    assert_eq!(maildir_count(&coid, "Activated"), 1);
    assert!(
        !coid.socket_path().exists(),
        "the configured unix socket is not bound under socket activation"
    );
}

/// `(uid, gid)` fields of /proc/PID/status: real, effective, saved, filesystem.
fn proc_ids(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    (ids("Uid:"), ids("Gid:"))
}

#[test]
fn started_as_root_coid_drops_to_its_user_after_binding() {
    process::require_root("the privilege drop test");
    let (uid, gid) = process::existing_user_ids("coid");
    let (_, postfix_gid) = process::existing_user_ids("postfix");
    let dir = common::make_run_dir("coid-drop-");
    let policy = dir.path().join("policy.sieve");
    let coid = maildir_coid(&policy, "Dropped", |opts| opts.service_user = "coid".into());
    // The sockets listen before the drop: wait until it is done.
    wait_for_log(&coid, "dropped privileges", 1);
    let pid = coid.pid().expect("running");
    let (uids, gids) = proc_ids(pid);
    assert_eq!(uids, vec![uid; 4], "uids of coid");
    assert_eq!(gids, vec![gid; 4], "gids of coid");
    // The LMTP socket: coid's user, Postfix's group ([lmtp] unix_socket_group's
    // default), the configured mode; the dict socket: coid's user and group.
    let lmtp = std::fs::metadata(coid.socket_path()).expect("lmtp socket");
    assert_eq!(
        (lmtp.uid(), lmtp.gid(), lmtp.mode() & 0o777),
        (uid, postfix_gid, 0o666)
    );
    let dict = std::fs::metadata(coid.dict_socket_path()).expect("dict socket");
    assert_eq!((dict.uid(), dict.gid()), (uid, gid));
    // The state directory coid created for itself, and a delivery into it.
    let state = coid.config_path().with_file_name("state");
    let meta = std::fs::metadata(&state).expect("state dir");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700));
    send_one(&coid, "<dropped@example.net>");
    assert_eq!(maildir_count(&coid, "Dropped"), 1);
}

#[test]
fn an_unknown_service_user_is_a_config_error() {
    let dir = common::make_run_dir("coid-nouser-");
    let config = dir.path().join("coid.toml");
    process::write_file(
        &config,
        format!(
            "[lmtp]\ntcp = [\"127.0.0.1:0\"]\nunix_socket = \"\"\n[dict]\nsocket = \"\"\n\
             [metrics]\nlisten = \"\"\n[state]\ndir = \"{}/state\"\n\
             [service]\nuser = \"no-such-coid-user\"\n",
            dir.path().display()
        ),
    );
    let (code, _, err) = common::coid::run_cli(&config, &["serve"], None);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("no-such-coid-user") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn under_systemd_log_lines_carry_their_priority_and_no_timestamp() {
    let dir = common::make_run_dir("coid-journal-");
    let policy = dir.path().join("policy.sieve");
    let mut coid = maildir_coid(&policy, "Journal", |opts| {
        opts.env = vec![("JOURNAL_STREAM".into(), "@LOG_DEVINO@".into())];
        opts.log_level = "info".into();
    });
    send_one(&coid, "<journal@example.net>");
    coid.signal("TERM");
    assert_eq!(coid.wait_exit(Duration::from_secs(10)), Some(0));
    let log = coid.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("running as root")),
        "{log}"
    );
    let delivered = lines
        .iter()
        .find(|l| l.contains("delivered"))
        .unwrap_or_else(|| panic!("no delivery line in {log}"));
    assert!(
        delivered.starts_with("<6>session{proto=\"lmtp\""),
        "{delivered}"
    );
    assert!(delivered.contains("message{size="), "{delivered}");
    for line in lines {
        assert!(
            line.starts_with('<') && !line.contains('\u{1b}'),
            "{line:?}"
        );
        assert!(!has_timestamp(line), "a timestamp: {line:?}");
    }
}

/// Whether `line` holds an RFC 3339 date-time (`dddd-dd-ddTdd:`), as tracing writes.
fn has_timestamp(line: &str) -> bool {
    let shape = b"dddd-dd-ddTdd:";
    line.as_bytes().windows(shape.len()).any(|w| {
        w.iter().zip(shape).all(|(c, s)| {
            if *s == b'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
    })
}

#[test]
fn timestamps_are_recognised() {
    assert!(has_timestamp("2031-01-02T03:04:05.1Z  INFO x"));
    assert!(!has_timestamp("<6> INFO session{id=2031}: x"));
}

#[test]
fn a_journal_stream_that_is_not_stderr_keeps_timestamps() {
    let dir = common::make_run_dir("coid-notjournal-");
    let policy = dir.path().join("policy.sieve");
    let mut coid = maildir_coid(&policy, "NotJournal", |opts| {
        opts.env = vec![("JOURNAL_STREAM".into(), "8:12345".into())];
        opts.log_level = "info".into();
    });
    send_one(&coid, "<not-journal@example.net>");
    coid.signal("TERM");
    assert_eq!(coid.wait_exit(Duration::from_secs(10)), Some(0));
    let log = coid.log();
    assert!(log.lines().all(has_timestamp), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("<6>")), "{log}");
    // Written to a file, not a terminal: plain text (issue 12).
    assert!(log.contains("coid serving"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "ANSI colour codes in a log file:\n{log}"
    );
}

/// The stop is announced once at the default level, not once per listener (issue 12:
/// there were two "shutting down" lines, LMTP's and the dict proxy's).
#[test]
fn a_stop_is_announced_once() {
    let dir = common::make_run_dir("coid-stoplog-");
    let policy = dir.path().join("policy.sieve");
    let mut coid = maildir_coid(&policy, "StopLog", |opts| {
        opts.log_level = "info".into();
    });
    send_one(&coid, "<stop-log@example.net>");
    coid.signal("TERM");
    assert_eq!(coid.wait_exit(Duration::from_secs(10)), Some(0));
    let log = coid.plain_log();
    let announced = log
        .lines()
        .filter(|l| l.contains("stop requested") || l.contains("shutting down"))
        .count();
    assert_eq!(announced, 1, "{log}");
}

/// A stop while coid is still starting (here: waiting out the busy timeout on a
/// state file another process holds locked) is logged, and coid exits 0 without
/// serving, instead of dying of the signal without a word (issue 12).
#[test]
fn a_stop_during_start_up_is_logged_and_exits_0() {
    let dir = common::make_run_dir("coid-startstop-");
    let state = dir.path().join("state");
    let config = dir.path().join("coid.toml");
    process::write_file(
        &config,
        format!(
            "[lmtp]\ntcp = [\"127.0.0.1:0\"]\nunix_socket = \"\"\n[dict]\nsocket = \"\"\n\
             [metrics]\nlisten = \"\"\n[state]\ndir = \"{}\"\n[service]\nuser = \"\"\n\
             [deltachat]\npush = false\n",
            state.display()
        ),
    );
    // The state file exists, with nothing left that coid would have to write at start.
    for args in [
        &["user", "set", "alice@example.org", "enabled=yes"][..],
        &["push", "vapid"],
    ] {
        let (code, out, err) = common::coid::run_cli(&config, args, None);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let writer = rusqlite::Connection::open(state.join("coid.sqlite")).expect("the state file");
    writer
        .execute_batch("BEGIN EXCLUSIVE; UPDATE settings_version SET n = n + 1 WHERE id = 1;")
        .expect("taking the write lock");
    let log_path = dir.path().join("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_coid"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("COID_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(process::output_file(&log_path))
        .spawn()
        .expect("starting coid serve");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until(Duration::from_secs(10), || {
        log().contains("coid starting").then_some(())
    })
    .unwrap_or_else(|| panic!("coid did not start: {}", log()));
    assert!(process::send_signal(child.id(), "TERM"));
    let status = wait_until(Duration::from_secs(20), || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    writer
        .execute_batch("ROLLBACK;")
        .expect("releasing the lock");
    let log = common::coid::strip_ansi(&log());
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    // The signal came seconds before the start-up ended: heard there, not later.
    assert!(log.contains("stop requested during start-up"), "{log}");
    assert!(!log.contains("coid serving"), "{log}");
}
