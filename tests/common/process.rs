//! Process and system helpers for the test daemons.
//!
//! Daemons are only ever stopped by the PID they wrote themselves (never by
//! name). A zombie counts as stopped: a daemonised process is reparented to
//! PID 1, and in containers PID 1 may reap it only much later. Signals are
//! sent with the `kill` command because the crate forbids `unsafe` (libc).
//! Also here: the root check, system user lookup and creation (`vmail`), and
//! running helper commands with their output kept for error messages.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The effective uid of this process, from `/proc/self/status`.
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Panic with a clear message unless running as root. Tests must never skip
/// silently: a missing privilege is a failure.
pub fn require_root(what: &str) {
    let uid = effective_uid();
    assert!(
        uid == Some(0),
        "{what} must be started as root for these integration tests \
         (effective uid is {uid:?}); run `cargo test` as root, e.g. in the CI container"
    );
}

/// State letter and parent PID of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may contain spaces and parentheses.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.to_owned();
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn is_dead_state(state: &str) -> bool {
    matches!(state, "Z" | "X" | "x")
}

/// Whether `pid` exists and is not a zombie (or dead) process.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| !is_dead_state(&state))
}

/// Live (non-zombie) direct children of `pid`.
pub fn live_children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            stat(child).is_some_and(|(state, ppid)| ppid == pid && !is_dead_state(&state))
        })
        .collect()
}

/// A process's command line (arguments joined by spaces; titles set by
/// daemons such as `dovecot-<instance>/log` show here).
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Send `signal` (e.g. "TERM", "KILL") to `pid`; false if that failed (the process
/// is gone). Panics if `kill` itself cannot run (procps missing): never a silent leak.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg("-s")
        .arg(signal)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `kill` (is procps installed?): {e}"))
        .success()
}

/// SIGTERM `pid`, wait up to `grace` for it to go, then SIGKILL it.
/// Returns how long the process took to stop.
pub fn terminate(pid: u32, name: &str, grace: Duration) -> Duration {
    let start = Instant::now();
    if !is_alive(pid) {
        return start.elapsed();
    }
    send_signal(pid, "TERM");
    if wait_for_exit(pid, grace) {
        return start.elapsed();
    }
    eprintln!("[coid-test] {name} (pid {pid}) ignored SIGTERM for {grace:?}, sending SIGKILL");
    send_signal(pid, "KILL");
    if !wait_for_exit(pid, Duration::from_secs(5)) {
        eprintln!("[coid-test] {name} (pid {pid}) is still alive after SIGKILL");
    }
    start.elapsed()
}

/// Poll until `pid` is gone (or a zombie); false on timeout.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    super::wait_until(timeout, || (!is_alive(pid)).then_some(())).is_some()
}

/// Read a PID file (Postfix pads it with spaces).
pub fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `(uid, gid)` of a system user, from `id`.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// `(uid, gid)` of a system user that must already exist (package users).
pub fn existing_user_ids(user: &str) -> (u32, u32) {
    user_ids(user).unwrap_or_else(|| {
        panic!("system user `{user}` does not exist; is the package that creates it installed?")
    })
}

/// `(uid, gid)` of a system user, creating it (no home, no login) if missing.
///
/// Several test threads and binaries may race here; `useradd` fails for all
/// but one of them, so the lookup is retried before reporting an error.
pub fn ensure_system_user(user: &str) -> (u32, u32) {
    static CREATING: Mutex<()> = Mutex::new(());
    let _guard = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..20 {
        if let Some(ids) = user_ids(user) {
            return ids;
        }
        let _ = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
            .arg(user)
            .output();
        if let Some(ids) = user_ids(user) {
            return ids;
        }
        // Another process may hold /etc/passwd.lock right now.
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("could not create the system user `{user}` with useradd");
}

/// Run a command to completion and return its output, or panic with its
/// stderr/stdout. Only for commands that do not leave daemons behind (a
/// daemon inheriting the pipes would make this wait forever).
pub fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed with {}\nstderr:\n{}\nstdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Open (create/append) a file to receive a daemon's stdout/stderr.
pub fn output_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("creating daemon output file {}: {e}", path.display()))
}

/// `chown` with a readable panic message.
pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {}: {e}", path.display()));
}

/// `chmod` with a readable panic message.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// `mkdir -p` with a readable panic message.
pub fn mkdir(path: &Path) {
    std::fs::create_dir_all(path)
        .unwrap_or_else(|e| panic!("creating directory {}: {e}", path.display()));
}

/// Write a file with a readable panic message.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Write a file and date its modification time back by a minute.
///
/// Postfix pauses (in 300 ms steps, up to about 2 s) before it reads a table
/// or main.cf whose mtime is within the last second, to let a writer finish;
/// every Postfix command at start-up would do that on fresh files.
pub fn write_settled_file(path: &Path, contents: impl AsRef<[u8]>) {
    write_file(path, contents);
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(past))
        .unwrap_or_else(|e| panic!("backdating {}: {e}", path.display()));
}
