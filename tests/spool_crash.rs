//! What a crash leaves in the spool, with the real binary (issue 12, bug 3): coid
//! killed (SIGKILL) in the middle of a large message leaves a partial spool file; the
//! next start removes it before serving and says so in the log, whether coid binds
//! its sockets or gets them from systemd (`systemd-socket-activate`). Spool files that
//! live transactions own are never removed: not those of another coid with a spool of
//! its own, nor those of a `coid deliver` or of another `coid serve` on the same spool.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::coid::{Coid, CoidOpts};
use common::{LmtpTarget, MessageBuilder, send_lmtp, unique_message_id, wait_until};

const WAIT: Duration = Duration::from_secs(15);

/// A spooled file must reach this size: past `lmtp.spool_threshold` (256 KiB) and
/// several of the spool writer's 64 KiB buffers.
const SPOOLED: u64 = 512 * 1024;

/// coid with the Maildir backend (no Dovecot needed), its own state directory unless
/// `state` names one, started directly or under `wrapper`.
fn maildir_coid(state: Option<&Path>, wrapper: &[&str]) -> Coid {
    let mut opts = CoidOpts::dovecot("/nonexistent");
    opts.backend = "maildir".into();
    opts.state_dir = state.map(Path::to_owned);
    opts.wrapper = wrapper.iter().map(|a| (*a).to_owned()).collect();
    Coid::start(opts)
}

/// A message of about 1 MiB: `head` of it is what goes before the end is sent.
fn large_message() -> Vec<u8> {
    let mut message = format!(
        "Subject: large\r\nMessage-ID: {}\r\n\r\n",
        unique_message_id()
    )
    .into_bytes();
    let line = format!("{}\r\n", "x".repeat(78));
    while message.len() < 1024 * 1024 {
        message.extend_from_slice(line.as_bytes());
    }
    message
}

/// An LMTP transaction to alice, left in the middle of DATA.
struct Transaction {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    rest: Vec<u8>,
}

impl Transaction {
    /// Sends the envelope and all of `message` but its last 1000 bytes.
    fn begin(addr: SocketAddr, message: &[u8]) -> Transaction {
        let stream = TcpStream::connect(addr).expect("connecting to coid");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let writer = stream.try_clone().expect("clone");
        let (head, rest) = message.split_at(message.len() - 1000);
        let mut t = Transaction {
            reader: BufReader::new(stream),
            writer,
            rest: rest.to_vec(),
        };
        assert_eq!(t.reply(), 220);
        for (command, code) in [
            ("LHLO crash.example.net", 250),
            ("MAIL FROM:<bob@example.net>", 250),
            ("RCPT TO:<alice@example.org>", 250),
            ("DATA", 354),
        ] {
            t.send(format!("{command}\r\n").as_bytes());
            assert_eq!(t.reply(), code, "{command}");
        }
        t.send(head);
        t
    }

    /// Sends the rest and the end of DATA; the reply code.
    fn finish(mut self) -> u16 {
        let mut end = std::mem::take(&mut self.rest);
        end.extend_from_slice(b".\r\n");
        self.send(&end);
        self.reply()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("writing to coid");
    }

    /// The code of the next reply (its last line); 0 when the connection ended.
    fn reply(&mut self) -> u16 {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return 0,
                Ok(_) if line.as_bytes().get(3) == Some(&b'-') => {}
                Ok(_) => return line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0),
            }
        }
    }
}

/// The files in `dir` with their sizes, by name (none when it does not exist).
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Waits until `dir` holds `count` files of at least [`SPOOLED`] bytes.
fn wait_for_spooled(dir: &Path, count: usize) -> Vec<(PathBuf, u64)> {
    wait_until(WAIT, || {
        let found = files(dir);
        (found.iter().filter(|(_, len)| *len >= SPOOLED).count() == count).then_some(found)
    })
    .unwrap_or_else(|| {
        panic!(
            "not {count} spooled file(s) in {}: {:?}",
            dir.display(),
            files(dir)
        )
    })
}

/// The log line of the spool sweep of coid's `start`-th start (the log is kept over
/// restarts), once there is one.
fn sweep_line(coid: &Coid, start: usize) -> String {
    wait_until(WAIT, || {
        coid.plain_log()
            .lines()
            .filter(|l| l.contains("spool swept"))
            .nth(start - 1)
            .map(str::to_owned)
    })
    .unwrap_or_else(|| {
        panic!(
            "no \"spool swept\" #{start} in the log:\n{}",
            coid.plain_log()
        )
    })
}

/// Message files in alice's INBOX under `state`.
fn inbox(state: &Path) -> Vec<(PathBuf, u64)> {
    files(&state.join("mail/example.org/alice/Maildir/new"))
}

fn crash_mid_data_then_restart(wrapper: &[&str]) {
    let mut coid = maildir_coid(None, wrapper);
    let spool = coid.spool_dir();
    let message = large_message();
    let partial = Transaction::begin(coid.lmtp_addr(), &message);
    wait_for_spooled(&spool, 1);
    coid.signal("KILL");
    assert_eq!(coid.wait_exit(WAIT), Some(-1), "killed");
    drop(partial);
    let left = files(&spool);
    assert_eq!(left.len(), 1, "the crash left its spool file: {left:?}");
    let bytes: u64 = left.iter().map(|(_, len)| len).sum();

    coid.restart();
    // Serving, so past the start-up sweep.
    let small = MessageBuilder::new().build();
    let outcome = send_lmtp(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "bob@example.net",
        &["alice@example.org"],
        &small,
    );
    assert_eq!(outcome.data.first().map(|r| r.0), Some(250), "{outcome:?}");
    assert_eq!(files(&spool), [], "the spool after the restart");
    let line = sweep_line(&coid, 2);
    assert!(
        line.contains("removed_files=1") && line.contains(&format!("removed_bytes={bytes}")),
        "{line}"
    );
    // The message the crash interrupted goes through whole when Postfix retries it.
    let again = Transaction::begin(coid.lmtp_addr(), &message);
    assert_eq!(again.finish(), 250);
    assert_eq!(inbox(coid.state_dir()).len(), 2);
}

#[test]
fn a_crash_mid_data_leaves_nothing_after_the_restart() {
    crash_mid_data_then_restart(&[]);
}

#[test]
fn a_crash_mid_data_leaves_nothing_after_a_socket_activated_restart() {
    crash_mid_data_then_restart(&[
        "systemd-socket-activate",
        "--listen=@LMTP_ADDR@",
        "--fdname=lmtp",
    ]);
}

/// `coid deliver` with `config`, the message half written to its standard input.
fn deliver_in_progress(config: &Path, message: &[u8]) -> (Child, Vec<u8>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coid"))
        .arg("deliver")
        .arg("--config")
        .arg(config)
        .args(["--from", "bob@example.net", "--rcpt", "alice@example.org"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running coid deliver");
    let (head, rest) = message.split_at(message.len() - 1000);
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(head)
        .expect("writing to coid deliver");
    (child, rest.to_vec())
}

#[test]
fn live_spool_files_are_never_removed() {
    let a = maildir_coid(None, &[]);
    let spool = a.spool_dir();
    let message = large_message();
    let in_serve = Transaction::begin(a.lmtp_addr(), &message);
    wait_for_spooled(&spool, 1);
    let (mut deliver, rest) = deliver_in_progress(&a.config_path(), &message);
    let live = wait_for_spooled(&spool, 2);

    // Another coid with a spool of its own cleans only that one ...
    let other = maildir_coid(None, &[]);
    assert!(sweep_line(&other, 1).contains(&other.spool_dir().display().to_string()));
    // ... and a second coid on the same spool keeps what live transactions own.
    let same = maildir_coid(Some(a.state_dir()), &[]);
    let line = sweep_line(&same, 1);
    assert!(
        line.contains("removed_files=0") && line.contains("live_files=2"),
        "{line}"
    );
    let names = |found: Vec<(PathBuf, u64)>| found.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
    assert_eq!(
        names(files(&spool)),
        names(live),
        "live spool files were removed"
    );

    // Both transactions finish and deliver the whole message.
    assert_eq!(in_serve.finish(), 250, "{}", a.plain_log());
    let mut stdin = deliver.stdin.take().expect("stdin");
    stdin.write_all(&rest).expect("writing the rest");
    drop(stdin);
    let out = deliver.wait_with_output().expect("coid deliver");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = inbox(a.state_dir());
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|(_, len)| *len + 20_000 > message.len() as u64),
        "{stored:?}"
    );
    assert_eq!(files(&spool), []);
}
