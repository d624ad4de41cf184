//! CPU time of this process's threads from `/proc/self/task/*/stat` (`utime` +
//! `stime`, in clock ticks of 10 ms: Linux's `USER_HZ` is 100), split into the push
//! receiver's thread (named `push-receiver`) and everything else (coid's sender or
//! worker, its tokio and blocking threads). Good to 10 ms per thread, so runs that
//! take seconds give per-push figures within a few per cent. [`process`] reads another
//! process's total the same way (`/proc/<pid>/stat`, all its threads, living and
//! ended), for coid in the stack runs; [`Host::now`] the whole machine's, every CPU
//! busy and idle (`/proc/stat`), to tell whether the mail kept the CPUs busy and what
//! push adds to all the work on them.

use std::collections::BTreeMap;
use std::time::Duration;

const RECEIVER_THREAD: &str = "push-receiver";
const TICK: Duration = Duration::from_millis(10);

/// CPU used so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// The receiver's thread.
    pub receiver: Duration,
    /// Every other thread.
    pub rest: Duration,
}

impl Cpu {
    /// The process's CPU now.
    pub fn now() -> Cpu {
        let mut cpu = Cpu::default();
        for (name, used) in by_thread("/proc/self/task") {
            if name == RECEIVER_THREAD {
                cpu.receiver += used;
            } else {
                cpu.rest += used;
            }
        }
        cpu
    }

    /// What was used since `earlier`. Threads that ended in between are lost, so
    /// measure around work whose threads outlive it.
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            receiver: self.receiver.saturating_sub(earlier.receiver),
            rest: self.rest.saturating_sub(earlier.rest),
        }
    }
}

/// The machine's CPU time so far, all CPUs together (`/proc/stat`'s `cpu` line).
#[derive(Debug, Clone, Copy, Default)]
pub struct Host {
    /// user, nice, system, irq, softirq and steal.
    pub busy: Duration,
    /// idle and iowait.
    pub idle: Duration,
}

impl Host {
    /// Now; zero if `/proc/stat` cannot be read.
    pub fn now() -> Host {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| parse_host(&stat))
            .unwrap_or_default()
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: Host) -> Host {
        Host {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
        }
    }

    /// The idle share of the time, 0 to 1.
    pub fn idle_share(self) -> f64 {
        let all = (self.busy + self.idle).as_secs_f64();
        if all > 0.0 {
            self.idle.as_secs_f64() / all
        } else {
            0.0
        }
    }
}

/// The `cpu` line of `/proc/stat`: `cpu user nice system idle iowait irq softirq
/// steal ...`, in clock ticks.
fn parse_host(stat: &str) -> Option<Host> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let counts: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let field = |i: usize| counts.get(i).copied().unwrap_or(0);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    let idle = field(3) + field(4);
    Some(Host {
        busy: ticks(busy),
        idle: ticks(idle),
    })
}

/// The CPU `pid` has used so far (all its threads); `None` when it is gone.
pub fn process(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, used) = parse_stat(&stat)?;
    Some(ticks(used))
}

/// The CPU each thread of `pid` has used so far, summed by thread name (living
/// threads only: one that ended is lost, so measure threads that outlive the work).
pub fn threads(pid: u32) -> BTreeMap<String, Duration> {
    by_thread(&format!("/proc/{pid}/task"))
}

/// The CPU of each thread listed in `tasks` (a `/proc/<pid>/task` directory), summed
/// by thread name; empty if it cannot be read.
fn by_thread(tasks: &str) -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(tasks) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, used)) = parse_stat(&stat) {
            *by_name.entry(name.to_owned()).or_insert(Duration::ZERO) += ticks(used);
        }
    }
    by_name
}

/// `n` clock ticks as a duration.
fn ticks(n: u64) -> Duration {
    TICK * u32::try_from(n).unwrap_or(u32::MAX)
}

/// (thread name, utime + stime ticks) of a `stat` line: `pid (comm) state ...`, with
/// utime and stime the 14th and 15th fields; `comm` may hold spaces.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After "(comm) ": state is field 3, so utime (14) and stime (15) are at 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}
