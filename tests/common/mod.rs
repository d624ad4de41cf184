//! Shared support for coid's integration tests.
//!
//! The tests run against REAL daemons: Dovecot 2.3 (LMTP, IMAP, Pigeonhole
//! Sieve, quota, METADATA) and Postfix 3.7, each started as root on loopback
//! high ports inside its own temporary directory, without systemd. Every stack
//! is independent, so tests may run in parallel threads and in parallel test
//! binaries. Daemons are stopped when their handle is dropped (also while a
//! test panics); a failing test prints the tail of the daemon's log.
//!
//! Set `COID_TEST_KEEP_DIRS=1` to keep the temporary directories for a
//! post-mortem look (their paths are printed).
//!
//! Submodules:
//! * [`dovecot`]: configure, start and stop a Dovecot instance.
//! * [`postfix`]: configure, start and stop a Postfix instance, inspect its queue.
//! * [`smtp`]: minimal blocking SMTP and LMTP clients.
//! * [`imap`]: IMAP helpers (mailboxes, messages, flags, METADATA).
//! * [`raw_imap`]: a raw IMAP client for what the `imap` crate cannot parse.
//! * [`message`]: build RFC 5322 test messages.
//! * [`ports`]: collision-free loopback port allocation, and start retries on a clash.
//! * [`process`]: PIDs, signals, system users and helper commands.
//! * [`coid`], [`fault`], [`stack`]: the coid binary, a fault-injecting LMTP
//!   hop, and the whole Postfix -> coid -> Dovecot stack.
//! * [`user_sieve`]: a user's own Pigeonhole script in a test Dovecot.
//! * [`metadata`]: IMAP METADATA through coid's dict proxy; a raw dict client.
//! * [`push_receiver`]: a Web Push service that decrypts with another implementation.
//! * [`push_flow`]: the stack with Web Push to that service, and a COI client's steps.
//! * [`notify_proxy`]: a stand-in for Delta Chat's notification proxy (fault injection).
//! * [`dc_flow`]: the stack notifying that stand-in, and a Delta Chat client's steps.
//! * [`metrics`]: scraping coid's metrics listener.
//! * [`postgres`]: a real PostgreSQL server, and which store the suite runs on.

// Each test binary compiles this module but uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod coid;
pub mod dc_flow;
pub mod dovecot;
pub mod fault;
pub mod imap;
pub mod message;
pub mod metadata;
pub mod metrics;
pub mod notify_proxy;
pub mod ports;
pub mod postfix;
pub mod postgres;
pub mod process;
pub mod push_flow;
pub mod push_receiver;
pub mod raw_imap;
pub mod raw_lmtp;
pub mod smtp;
pub mod stack;
pub mod user_sieve;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use dovecot::{Dovecot, DovecotOpts, DovecotUser, SieveScript};
pub use imap::{Imap, MailboxInfo, StoredMessage};
pub use message::{MessageBuilder, unique_message_id};
pub use postfix::{Postfix, PostfixOpts};
pub use smtp::{
    LmtpOutcome, LmtpTarget, Reply, send_lmtp, send_smtp, send_smtp_with, try_send_lmtp,
    try_send_lmtp_each,
};

/// The mail domain every test user lives in.
pub const DOMAIN: &str = "example.org";

/// The password of every default test user.
pub const PASSWORD: &str = "secret";

/// Environment variable that keeps the per-stack temporary directories.
pub const KEEP_DIRS_ENV: &str = "COID_TEST_KEEP_DIRS";

/// Poll `check` every 20 ms until it returns `Some`, or `None` after `timeout`.
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Create a fresh temporary directory for one daemon instance.
///
/// It is made world-traversable (0755) because the daemons' unprivileged
/// processes (`dovecot`, `vmail`, `postfix`) must reach files inside it.
pub fn make_run_dir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("creating a temporary directory for a test daemon");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("making the test daemon's temporary directory world-traversable");
    dir
}

/// Whether the caller asked to keep temporary directories (see [`KEEP_DIRS_ENV`]).
pub fn keep_dirs() -> bool {
    std::env::var_os(KEEP_DIRS_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Dispose of a daemon's temporary directory, or keep it if asked to.
pub fn release_run_dir(dir: tempfile::TempDir, what: &str) {
    if keep_dirs() {
        let kept: PathBuf = dir.keep();
        eprintln!("[coid-test] kept {what} directory {}", kept.display());
    }
    // Otherwise dropping the TempDir removes it.
}

/// The last `lines` lines of a text file, or a note saying why there are none.
pub fn tail_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
