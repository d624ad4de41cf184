//! `coid reload PID`: SIGHUP to the running coid, the unit's `ExecReload=`. systemd
//! passes the main process id as `$MAINPID`; sending the signal ourselves means a
//! reload needs no `kill(1)` (procps), which a minimal Debian host may lack.
//!
//! Only a process that is coid gets the signal (its `/proc/PID/comm` says `coid`):
//! a stale or mistyped id must not hang up some other program.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{exit, logging};

/// What kill(1) exits with when it could not signal the process.
const FAILED: u8 = 1;

/// Sends SIGHUP to `pid`; 0 when sent, 64 for an id that names no single process,
/// 1 when there is no such coid or the signal could not be sent.
pub fn run(pid: i32) -> u8 {
    match target(pid).and_then(|pid| hang_up(pid).map_err(|m| (FAILED, m))) {
        Ok(()) => exit::OK,
        Err((code, message)) => {
            logging::print_error(&message);
            code
        }
    }
}

/// `pid` as the process to signal, or why not: 0 and negative ids name process
/// groups, and 1 is init.
fn target(pid: i32) -> Result<Pid, (u8, String)> {
    if pid <= 1 {
        return Err((
            exit::USAGE,
            format!("reload: {pid} is not the process id of a running coid"),
        ));
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_err(|err| (FAILED, format!("reload: no process {pid}: {err}")))?;
    if comm.trim_end() != "coid" {
        return Err((
            FAILED,
            format!("reload: process {pid} is {:?}, not coid", comm.trim_end()),
        ));
    }
    Ok(Pid::from_raw(pid))
}

fn hang_up(pid: Pid) -> Result<(), String> {
    kill(pid, Signal::SIGHUP).map_err(|err| format!("reload: SIGHUP to {pid}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_name_no_single_process_are_usage_errors() {
        for pid in [i32::MIN, -1, 0, 1] {
            assert_eq!(target(pid).map_err(|e| e.0), Err(exit::USAGE), "{pid}");
        }
    }

    #[test]
    fn only_coid_gets_the_signal() {
        // This test binary is not called coid.
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let err = target(me).expect_err("not coid");
        assert_eq!(err.0, FAILED);
        assert!(err.1.contains("not coid"), "{}", err.1);
    }
}
