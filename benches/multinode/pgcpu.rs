//! CPU of the harness's PostgreSQL server (`common::postgres`), from `/proc`: its
//! postmaster (the pid in the data directory's `postmaster.pid`) with `cutime` and
//! `cstime` (its backends that ended and were reaped), plus `utime` and `stime` of
//! each living child (backends, background workers). 10 ms ticks. A backend that ends
//! inside a window brings all of its CPU, also what it used before, into the
//! postmaster's children figure: the nodes' connections live for a whole run, so the
//! error is small.

use std::time::Duration;

const TICK: Duration = Duration::from_millis(10);

/// The server's CPU so far; zero before it started.
pub fn server() -> Duration {
    let pid_file = crate::common::postgres::server()
        .dir
        .join("data")
        .join("postmaster.pid");
    let Some(postmaster) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok())
    else {
        return Duration::ZERO;
    };
    let mut ticks = stat(postmaster).map_or(0, |f| f.own + f.children);
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for entry in procs.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(f) = stat(pid).filter(|f| f.ppid == postmaster) {
                ticks += f.own;
            }
        }
    }
    TICK * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// A process's parent and CPU ticks: its own (`utime + stime`) and its reaped
/// children's (`cutime + cstime`).
struct Fields {
    ppid: u32,
    own: u64,
    children: u64,
}

fn stat(pid: u32) -> Option<Fields> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    let f: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After "(comm) ": state is field 3, so ppid (4) is at 1, utime..cstime (14-17)
    // at 11..=14.
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Fields {
        ppid: u32::try_from(n(1)?).ok()?,
        own: n(11)? + n(12)?,
        children: n(13)? + n(14)?,
    })
}
