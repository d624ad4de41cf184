//! The whole host picture, as an operator sets it up from what coid ships:
//! - Postfix with the shipped `conf.d/postfix/main.cf` transport line
//!   (`lmtp:unix:coid/lmtp`, relative to Postfix's queue directory);
//! - Dovecot with the shipped one-line include `conf.d/dovecot/coid.conf` and the
//!   files it includes, byte for byte except for paths (`/etc/coid/dovecot`,
//!   `/usr/lib/coid/sieve-execute`, `/run/coid/dict`) and the doveadm config flag;
//! - coid from the shipped `conf.d/coid.toml`, only paths and the metrics port
//!   changed, started with the shipped unit's `ExecStart=` (same arguments) as root,
//!   so it binds its sockets and drops to the unit's `User=`.
//!
//! Mail flows end to end (COI turned on over IMAP METADATA through coid's dict
//! socket, which the shipped Dovecot snippet lets mail processes reach); then coid is
//! stopped, Postfix defers the next message (nothing lost, nothing stored), and
//! delivers it exactly once when coid is back.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::metadata::set_coi;
use common::ports::{PortLease, lease_port};
use common::stack::DELIVERY_WAIT;
use common::{
    Dovecot, DovecotOpts, MessageBuilder, Postfix, PostfixOpts, process, send_smtp, tail_file,
    wait_until,
};

const UNIT: &str = include_str!("../packaging/systemd/coid.service");
const COID_TOML: &str = include_str!("../conf.d/coid.toml");
const POSTFIX_MAIN_CF: &str = include_str!("../conf.d/postfix/main.cf");
/// The Dovecot 2.3 files, under their installed names in /etc/coid/dovecot.
const DOVECOT_FILES: [(&str, &str); 6] = [
    ("coid.conf", include_str!("../conf.d/dovecot/coid.conf")),
    (
        "90-coid.conf",
        include_str!("../conf.d/dovecot/90-coid.conf"),
    ),
    (
        "91-coid-metadata.conf",
        include_str!("../conf.d/dovecot/91-coid-metadata.conf"),
    ),
    (
        "92-coid-seen.conf",
        include_str!("../conf.d/dovecot/92-coid-seen.conf"),
    ),
    ("coid.sieve", include_str!("../conf.d/dovecot/coid.sieve")),
    (
        "coid-seen.sieve",
        include_str!("../conf.d/dovecot/coid-seen.sieve"),
    ),
];
const SEEN_MOVE: &str = include_str!("../conf.d/dovecot/coid-seen-move");

/// `text` with `from` replaced by `to`; the test fails if `from` is not there (the
/// shipped file changed: adapt the test, do not let it silently test less).
fn adapt(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "shipped text lost {from:?}");
    text.replace(from, to)
}

/// The value of `key=` in the unit's [Service] section.
fn unit_value(key: &str) -> String {
    UNIT.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= missing in coid.service"))
        .trim()
        .to_owned()
}

/// The shipped Postfix transport line's value.
fn shipped_transport() -> String {
    POSTFIX_MAIN_CF
        .lines()
        .find_map(|l| l.strip_prefix("virtual_transport = "))
        .expect("virtual_transport line in conf.d/postfix/main.cf")
        .trim()
        .to_owned()
}

/// The shipped Dovecot files, with paths adapted, in `dir` (as /etc/coid/dovecot).
fn install_dovecot_files(dir: &Path, dict: &Path) {
    let etc = format!("{}/", dir.display());
    let bin = dir.join("bin");
    for (name, text) in DOVECOT_FILES {
        let mut text = text.replace("/etc/coid/dovecot/", &etc);
        text = text.replace("/usr/lib/coid/sieve-execute", &bin.display().to_string());
        text = text.replace("/run/coid/dict", &dict.display().to_string());
        process::write_file(&dir.join(name), text);
    }
    process::mkdir(&bin);
    process::write_file(&bin.join("coid-seen-move"), SEEN_MOVE);
    process::chmod(&bin.join("coid-seen-move"), 0o755);
}

/// `coid serve` run as the unit's ExecStart, as root; stopped by PID on drop.
struct UnitCoid {
    argv: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    socket: PathBuf,
}

impl UnitCoid {
    fn start(config: &Path, log: PathBuf, socket: PathBuf) -> UnitCoid {
        let exec = unit_value("ExecStart");
        let mut argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
        assert_eq!(
            argv.first().map(String::as_str),
            Some("/usr/bin/coid"),
            "{exec}"
        );
        assert!(argv.iter().any(|a| a == "/etc/coid/coid.toml"), "{exec}");
        for arg in &mut argv {
            if arg == "/usr/bin/coid" {
                *arg = env!("CARGO_BIN_EXE_coid").to_owned();
            } else if arg == "/etc/coid/coid.toml" {
                *arg = config.display().to_string();
            }
        }
        let mut coid = UnitCoid {
            argv,
            child: None,
            log,
            socket,
        };
        coid.spawn();
        coid
    }

    fn spawn(&mut self) {
        let out = process::output_file(&self.log);
        let err = out.try_clone().expect("log handle");
        let (program, args) = self.argv.split_first().expect("ExecStart has a program");
        let child = Command::new(program)
            .args(args)
            .env("COID_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting coid");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(15), || {
            UnixStream::connect(&self.socket).ok()
        });
        assert!(
            up.is_some(),
            "coid did not listen on {}:\n{}",
            self.socket.display(),
            self.log_tail()
        );
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("coid runs")
    }

    /// SIGTERM; the exit code.
    /// SIGTERM; the exit code, or `None` if coid is still running after 15 s (then it
    /// stays in `self.child`, and Drop stops it for good).
    fn stop(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        process::send_signal(child.id(), "TERM");
        let status = wait_until(Duration::from_secs(15), || child.try_wait().ok().flatten())?;
        self.child = None;
        Some(status.code().unwrap_or(-1))
    }

    fn log_tail(&self) -> String {
        tail_file(&self.log, 60)
    }
}

impl Drop for UnitCoid {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[coid-test] coid log tail:\n{}", self.log_tail());
        }
        if let Some(mut child) = self.child.take() {
            process::terminate(child.id(), "coid", Duration::from_secs(10));
            let _ = child.wait();
        }
    }
}

/// The shipped coid.toml with only paths and the metrics port changed.
fn coid_config(
    dir: &Path,
    socket: &Path,
    dict: &Path,
    dovecot: &Dovecot,
    metrics: &PortLease,
) -> PathBuf {
    let mut text = adapt(
        COID_TOML,
        "\"/var/spool/postfix/coid/lmtp\"",
        &format!("{socket:?}"),
    );
    text = adapt(
        &text,
        "\"/var/lib/coid\"",
        &format!("{:?}", dir.join("state")),
    );
    text = adapt(
        &text,
        "\"/run/dovecot/lmtp\"",
        &format!("{:?}", dovecot.lmtp_socket()),
    );
    text = adapt(&text, "\"/run/coid/dict\"", &format!("{dict:?}"));
    text = adapt(
        &text,
        "\"127.0.0.1:9466\"",
        &format!("\"127.0.0.1:{}\"", metrics.port()),
    );
    let path = dir.join("coid.toml");
    process::write_file(&path, text);
    path
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics listener");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

#[test]
fn shipped_configs_carry_mail_end_to_end_and_nothing_is_lost_while_coid_is_down() {
    process::require_root("the deployment test");
    let (coid_uid, coid_gid) = process::existing_user_ids(&unit_value("User"));
    let (_, postfix_gid) = process::existing_user_ids("postfix");
    let etc = common::make_run_dir("coid-deploy-");
    let dict = etc.path().join("dict");
    install_dovecot_files(etc.path(), &dict);
    let opts = DovecotOpts {
        extra_conf: format!("!include {}/coid.conf\n", etc.path().display()),
        ..DovecotOpts::default()
    };
    let dovecot = Dovecot::start(opts);
    // What the package's postinst does: precompile the global scripts.
    for script in ["coid.sieve", "coid-seen.sieve"] {
        process::run_checked(
            Command::new("sievec")
                .arg("-c")
                .arg(dovecot.config_path())
                .arg(etc.path().join(script)),
            "sievec",
        );
    }
    let postfix = Postfix::start(PostfixOpts::new(&shipped_transport()));
    assert_eq!(shipped_transport(), "lmtp:unix:coid/lmtp");
    let socket = postfix.dir().join("queue/coid/lmtp");
    let metrics = lease_port();
    let config = coid_config(etc.path(), &socket, &dict, &dovecot, &metrics);
    let mut coid = UnitCoid::start(&config, etc.path().join("coid.log"), socket.clone());
    // The socket listens before the drop: wait until it is done.
    let dropped = wait_until(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&coid.log).unwrap_or_default();
        log.contains("dropped privileges").then_some(())
    });
    assert!(dropped.is_some(), "no privilege drop:\n{}", coid.log_tail());

    // Started as root, running as the unit's user; sockets as the snippets expect.
    let status = std::fs::read_to_string(format!("/proc/{}/status", coid.pid())).expect("status");
    assert!(
        status.contains(&format!(
            "Uid:\t{coid_uid}\t{coid_uid}\t{coid_uid}\t{coid_uid}"
        )),
        "{status}"
    );
    let lmtp = std::fs::metadata(&socket).expect("socket");
    assert_eq!(
        (lmtp.uid(), lmtp.gid(), lmtp.mode() & 0o777),
        (coid_uid, postfix_gid, 0o660)
    );
    let d = std::fs::metadata(&dict).expect("dict socket");
    assert_eq!(
        (d.uid(), d.gid(), d.mode() & 0o777),
        (coid_uid, coid_gid, 0o660)
    );

    // alice turns COI on from her client (SETMETADATA → Dovecot → coid's dict).
    let mut imap = dovecot.imap("alice@example.org");
    set_coi(&mut imap, "active");
    assert!(imap.capabilities().iter().any(|c| c == "COI"));

    let chat = MessageBuilder::chat();
    let plain = MessageBuilder::new();
    for message in [&chat, &plain] {
        send_smtp(
            postfix.smtp_port(),
            "bob@example.net",
            &["alice@example.org"],
            &message.build(),
        )
        .expect("Postfix accepts");
    }
    let stored = dovecot.wait_for_message("alice@example.org", &chat.id(), DELIVERY_WAIT);
    assert!(stored.has_flag("$Chat"), "{:?}", stored.flags);
    assert_eq!(
        imap.find_in("COI/Chats", &chat.id()).len(),
        1,
        "the chat is in COI/Chats"
    );
    dovecot.wait_for_message("alice@example.org", &plain.id(), DELIVERY_WAIT);
    assert_eq!(
        imap.find_in("INBOX", &plain.id()).len(),
        1,
        "plain mail stays in INBOX"
    );
    let health = http_get(metrics.port(), "/health");
    assert!(
        health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"),
        "{health}"
    );

    // coid stops cleanly; Postfix keeps the next message and says why.
    assert_eq!(coid.stop(), Some(0), "{}", coid.log_tail());
    let late = MessageBuilder::chat();
    send_smtp(
        postfix.smtp_port(),
        "bob@example.net",
        &["alice@example.org"],
        &late.build(),
    )
    .expect("Postfix accepts while coid is down");
    let deferred = wait_until(DELIVERY_WAIT, || {
        let listing = postfix.queue_listing();
        (listing.contains("coid/lmtp") || listing.contains("connect to")).then_some(listing)
    });
    let deferred = deferred.unwrap_or_else(|| panic!("no deferral:\n{}", postfix.queue_listing()));
    eprintln!("[coid-test] Postfix while coid is down:\n{deferred}");
    assert_eq!(dovecot.count_message("alice@example.org", &late.id()), 0);

    // coid is back: the deferred message arrives once, and the queue empties.
    coid.spawn();
    dovecot.wait_for_message("alice@example.org", &late.id(), Duration::from_secs(30));
    postfix
        .wait_for_empty_queue(Duration::from_secs(30))
        .expect("Postfix's queue empties");
    assert_eq!(dovecot.count_message("alice@example.org", &late.id()), 1);
    assert_eq!(imap.find_in("COI/Chats", &late.id()).len(), 1);
    dovecot.assert_no_log_errors();
}
