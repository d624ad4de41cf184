//! Collision-free loopback TCP ports for test daemons.
//!
//! Test threads of one binary, and several test binaries, start daemons at the
//! same time, and every daemon needs its own listening ports. A port is handed
//! out only if all of these hold:
//!
//! 1. this process has never handed it out before (a process-wide set);
//! 2. an exclusive `flock` on `$TMPDIR/coid-test-ports/<port>.lock` succeeds.
//!    The lock is held by the returned [`PortLease`] for as long as the stack
//!    lives, so concurrent test *processes* never pick the same port. The
//!    kernel drops the lock when the holder dies, so no stale state remains;
//! 3. `127.0.0.1:<port>` can be bound right now (nobody else listens on it).
//!
//! Candidates are drawn from below the kernel's ephemeral port range. Ports
//! from `bind(127.0.0.1:0)` would come from inside that range, where any
//! outgoing connection (Postfix to LMTP, a test's IMAP client...) may take the
//! port as its local port between our check and the daemon's own `bind`.
//!
//! Someone outside the tests may still take a port before the daemon binds it, so
//! [`start_with_retries`] starts a daemon again, on fresh ports, when that happens.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Lowest candidate port.
const RANGE_START: u16 = 20_000;
/// Used when the ephemeral range cannot be read or starts too low.
const FALLBACK_RANGE_END: u16 = 32_000;
/// How many random candidates to try before giving up.
const MAX_TRIES: usize = 2_000;

/// A port reserved for one test daemon; the reservation ends when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    _lock: Option<File>,
}

impl PortLease {
    /// The reserved port number.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Reserve a free loopback port (see the module docs for the guarantees).
pub fn lease_port() -> PortLease {
    let end = candidate_range_end();
    for _ in 0..MAX_TRIES {
        let port = RANGE_START + (random_u64() % u64::from(end - RANGE_START)) as u16;
        if let Some(lease) = try_lease(port) {
            return lease;
        }
    }
    panic!("no free loopback port in {RANGE_START}..{end} after {MAX_TRIES} random tries");
}

/// Start attempts when a port was taken by someone else in the meantime.
const START_ATTEMPTS: usize = 3;

/// Why one start attempt of a daemon failed.
pub struct LaunchFailure {
    /// What went wrong, with the daemon's log tail.
    pub message: String,
}

impl LaunchFailure {
    /// Whether another process had one of the ports.
    fn port_clash(&self) -> bool {
        self.message.contains("Address already in use")
    }
}

/// Runs `launch` (one start attempt on freshly leased ports) until it succeeds, again
/// after a port clash up to [`START_ATTEMPTS`] times; panics with the last failure.
pub fn start_with_retries<T>(
    what: &str,
    mut launch: impl FnMut() -> Result<T, LaunchFailure>,
) -> T {
    let mut attempt = 1;
    loop {
        match launch() {
            Ok(daemon) => return daemon,
            Err(failure) if failure.port_clash() && attempt < START_ATTEMPTS => {
                eprintln!(
                    "[coid-test] {what} port clash, retrying: {}",
                    failure.message
                );
                attempt += 1;
            }
            Err(failure) => panic!("{what} did not start:\n{}", failure.message),
        }
    }
}

fn try_lease(port: u16) -> Option<PortLease> {
    if !mark_handed_out(port) {
        return None;
    }
    let lock = match lock_file(port) {
        LockResult::Locked(file) => Some(file),
        LockResult::HeldElsewhere => return None,
        // Lock directory not usable (e.g. created by another uid): rely on
        // the process-wide set and the bind check only.
        LockResult::Unavailable => None,
    };
    TcpListener::bind(("127.0.0.1", port)).ok()?;
    Some(PortLease { port, _lock: lock })
}

/// Record `port` as handed out; false if this process already used it.
fn mark_handed_out(port: u16) -> bool {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let used = USED.get_or_init(|| Mutex::new(HashSet::new()));
    // A poisoned lock only means another test panicked while holding it; the
    // set itself is still consistent.
    let mut used = used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    used.insert(port)
}

enum LockResult {
    Locked(File),
    HeldElsewhere,
    Unavailable,
}

fn lock_file(port: u16) -> LockResult {
    let dir = lock_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return LockResult::Unavailable;
    }
    let path = dir.join(format!("{port}.lock"));
    let Ok(file) = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    else {
        return LockResult::Unavailable;
    };
    match file.try_lock() {
        Ok(()) => LockResult::Locked(file),
        Err(std::fs::TryLockError::WouldBlock) => LockResult::HeldElsewhere,
        Err(std::fs::TryLockError::Error(_)) => LockResult::Unavailable,
    }
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("coid-test-ports")
}

/// One past the highest candidate: the start of the ephemeral range, if sane.
fn candidate_range_end() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok());
    match low {
        Some(low) if low > RANGE_START + 1_000 => low,
        _ => FALLBACK_RANGE_END,
    }
}

/// A random number from std's randomly keyed hasher (no extra dependency).
fn random_u64() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}
