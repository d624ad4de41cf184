//! coid's memory under big messages: a fresh coid delivering to a fresh Dovecot, then
//! N concurrent LMTP sessions straight to coid (no Postfix), each one message of the
//! given size to one user, all released at once. Read from `/proc/<coid>/status`:
//! `VmRSS` when idle (started, nothing sent yet) and after, and `VmHWM` (the kernel's
//! peak resident set of the process's whole life) after the sessions. Bodies past
//! `lmtp.spool_threshold` go to a spool file, so the peak should barely grow with size
//! or sessions. Every session must get `250` for its recipient and the INBOX must hold
//! exactly N messages.

use std::sync::Barrier;
use std::time::Duration;

use crate::common::coid::Coid;
use crate::common::stack::dovecot_opts;
use crate::common::{Dovecot, send_lmtp};
use crate::delivery::{coid_opts, filler, inbox_count, message, settle_disk};

const RCPT: &str = "alice@example.org";

/// What one measurement found, in KiB.
pub struct Rss {
    pub sessions: usize,
    pub size: usize,
    /// `VmRSS` before any session.
    pub idle: u64,
    /// `VmHWM` after the sessions.
    pub peak: u64,
    /// `VmRSS` after the sessions.
    pub after: u64,
}

/// Runs `sessions` parallel LMTP sessions of one `size`-byte message each.
pub fn measure(sessions: usize, size: usize) -> Rss {
    settle_disk();
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let coid = Coid::start(coid_opts(&dovecot));
    let pid = coid.pid().expect("coid is running");
    // Let start-up settle (runtime threads, SQLite) before the idle reading.
    std::thread::sleep(Duration::from_millis(500));
    let idle = status_kib(pid, "VmRSS");

    let message = message(0, &filler(size));
    let start = Barrier::new(sessions);
    std::thread::scope(|scope| {
        for _ in 0..sessions {
            scope.spawn(|| {
                start.wait();
                let outcome = send_lmtp(coid.socket_path(), "bench@example.net", &[RCPT], &message);
                let verdict = outcome.verdicts(&[RCPT]);
                assert_eq!(verdict[0].1.0, 250, "coid did not deliver: {verdict:?}");
            });
        }
    });
    let peak = status_kib(pid, "VmHWM");
    let after = status_kib(pid, "VmRSS");

    assert_eq!(
        inbox_count(&dovecot),
        sessions,
        "every message is in the INBOX"
    );
    Rss {
        sessions,
        size,
        idle,
        peak,
        after,
    }
}

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmHWM`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
