//! The push worker's own OS thread and a current-thread tokio runtime on it, at, if
//! configured, a lower CPU priority (`[push] worker_nice`, default 0); in a backlog of
//! Web Push, `[push] worker_threads` - 1 threads beside it encrypt
//! ([`crate::push::webpush::sealers`], started by the worker).
//!
//! Why: Web Push costs about 65 µs of CPU per push (a fresh ECDH key agreement per
//! message, RFC 8291 §3.1, with ring; the ES256 VAPID signature, RFC 8292 §2, is
//! cached per push service), Delta Chat
//! notifications far less but not nothing. On the sessions' runtime that work took
//! turns with mail on the same threads (`[service] worker_threads`: one on a 2-CPU
//! host), so a busy push queue slowed delivery: a session's next step waited behind
//! encryptions. On threads of their own the kernel's scheduler shares the CPUs between
//! the two. At a higher nice value it gives the CPU to mail (coid's sessions, Postfix,
//! Dovecot) first and to pushes in what is left; on an idle host pushes still run at
//! once, on a saturated one they lag. Measured on 2 CPUs saturated by mail
//! (`benches/push`, Web Push): mail throughput push on/off 0.92 at nice 0, 0.91–0.93
//! at 10; push p99 24 ms at 0, 33–51 ms at 10: hence the default 0.
//! Pushes never block mail either way: they wait in the durable queue.
//!
//! Why one thread: the worker's loop, its sends and their connections all run on it,
//! so nothing moves between threads (each move a futex wake-up of a thread that
//! slept). While mail flows, pushes trickle in a few per round, and those hand-offs
//! were what a push cost beyond its encryption and its request. Measured on 2 CPUs
//! (`benches/push`, mail rounds, two runs each, alternating, in one hour): what push
//! adds to coid's CPU per message, Web Push 810–846 µs with a multi-thread runtime
//! of 2 threads against 687–688 on one, Delta Chat 522–590 against 416–425. A
//! backlog is what more threads are for, and there only the encryption needs more
//! than one CPU: the sealing threads take it (worker only, 3 runs each in one hour:
//! Web Push 11.2–12.0k/s with 2 runtime threads, 11.5–12.3k/s with one and a sealing
//! thread; Delta Chat, no encryption, 33.9–34.5k/s and 37.7–40.1k/s).
//!
//! On Linux `setpriority(PRIO_PROCESS, tid)` changes one thread, so the nice value is
//! set in each thread: the `coid-push` thread itself and, through the runtime's
//! `on_thread_start` hook, every thread of its blocking pool (which runs the worker's
//! store trips); the sealing threads set it as they start. It goes through `rustix`
//! (a safe API over the system call; coid forbids `unsafe`). A nice value that cannot
//! be set (a container that refuses it) is logged and that thread runs at the
//! process's priority.
//!
//! Shutdown is unchanged: the worker stops when the service's stop signal turns true,
//! lets pushes in flight finish within its send limit, records them, and
//! [`PushThread::finished`] resolves.

use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::worker::Worker;

/// The thread's name (`ps -L`, `top -H`).
const NAME: &str = "coid-push";

/// How long the runtime may take to end what the worker left on its blocking pool
/// (a name lookup of a send that timed out) after the worker returned.
const RUNTIME_END: Duration = Duration::from_secs(1);

/// The running worker thread.
pub struct PushThread {
    /// Sent when the worker has returned (its outcomes recorded).
    done: oneshot::Receiver<()>,
}

impl PushThread {
    /// Starts `worker` on a thread of its own and a current-thread runtime on it, at
    /// nice value `nice` (0: the process's own priority), until `stop` turns true.
    ///
    /// # Errors
    /// The runtime or the thread could not be made.
    pub fn spawn(worker: Worker, stop: watch::Receiver<bool>, nice: u8) -> std::io::Result<Self> {
        let runtime = runtime(nice)?;
        let (tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(NAME.to_owned())
            .spawn(move || {
                lower_priority(nice);
                // A task, not the future blocked on: the sends' wake-ups then go
                // through the runtime's own run queue. An Err is a panic in the
                // worker, printed to stderr (the journal) by the standard panic
                // hook; the thread then ends as when the worker returns.
                runtime.block_on(async move {
                    let _ = tokio::spawn(worker.run(stop)).await;
                });
                runtime.shutdown_timeout(RUNTIME_END);
                let _ = tx.send(());
            })?;
        Ok(PushThread { done })
    }

    /// Resolves once the worker has stopped (after the stop signal and its drain).
    pub async fn finished(self) {
        // An Err: the thread died without sending (a panic, logged by the hook).
        let _ = self.done.await;
    }
}

/// A current-thread runtime, each thread of its blocking pool at nice value `nice`.
fn runtime(nice: u8) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .thread_name(NAME)
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .build()
}

/// Sets the calling thread's nice value to `nice`, if above 0.
pub(crate) fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(tid), i32::from(nice)) {
        Ok(()) => tracing::debug!(nice, "push worker thread priority lowered"),
        // Once per process: every runtime thread (the blocking pool's come and go)
        // would say the same.
        Err(err) if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) => {
            tracing::warn!(
                nice,
                error = %err,
                "cannot lower the push worker threads' priority; they run at the process's"
            );
        }
        Err(_) => {}
    }
}

/// The warning that the nice value cannot be set was logged.
static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The calling thread's nice value.
#[cfg(test)]
fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("getpriority")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nice_value_applies_to_the_calling_thread_only() {
        let before = current_nice();
        let lowered = std::thread::spawn(|| {
            lower_priority(7);
            current_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, 7);
        assert_eq!(
            current_nice(),
            before,
            "the caller's thread keeps its priority"
        );
    }

    #[test]
    fn one_thread_runs_the_tasks_on_the_thread_that_blocks_on_the_runtime() {
        let runtime = runtime(0).expect("runtime");
        let here = std::thread::current().id();
        let ran_on = runtime.block_on(async {
            tokio::spawn(async { std::thread::current().id() })
                .await
                .expect("task")
        });
        assert_eq!(ran_on, here, "a current-thread runtime");
    }

    #[test]
    fn the_blocking_pool_runs_at_the_nice_value_and_the_caller_keeps_its_own() {
        let before = current_nice();
        let runtime = runtime(7).expect("runtime");
        let (thread, nice) = runtime.block_on(async {
            tokio::task::spawn_blocking(|| (std::thread::current().id(), current_nice()))
                .await
                .expect("blocking task")
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        assert_ne!(thread, std::thread::current().id(), "a thread of the pool");
        assert_eq!(nice, 7, "the pool's thread at nice 7");
        assert_eq!(
            current_nice(),
            before,
            "the caller's thread keeps its priority"
        );
    }
}
