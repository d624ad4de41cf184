//! CPU time of this process's threads from `/proc/self/task/*/stat` (`utime` +
//! `stime`, in clock ticks of 10 ms: Linux's `USER_HZ` is 100), split into the push
//! receiver's thread (named `push-receiver`) and everything else (coid's sender or
//! worker, its tokio and blocking threads). Good to 10 ms per thread, so runs that
//! take seconds give per-push figures within a few per cent. [`process`] reads another
//! process's total the same way (`/proc/<pid>/stat`, all its threads, living and
//! ended), for coid in the stack runs.

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
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return cpu;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let Some((name, ticks)) = parse_stat(&stat) else {
                continue;
            };
            let used = TICK * u32::try_from(ticks).unwrap_or(u32::MAX);
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

/// The CPU `pid` has used so far (all its threads); `None` when it is gone.
pub fn process(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, ticks) = parse_stat(&stat)?;
    Some(TICK * u32::try_from(ticks).ok()?)
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
