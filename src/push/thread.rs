//! The push worker's own OS thread and a tokio runtime of its own (`[push]
//! worker_threads`: default 2, a multi-thread runtime; 1, a current-thread runtime on
//! the `coid-push` thread itself), at, if configured, a lower CPU priority (`[push]
//! worker_nice`, default 0).
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
//! Why several threads: the worker's sends run as tasks of this runtime, and each
//! one's encryption is CPU work; with `worker_threads` runtime threads (default 2)
//! the sends' encryption runs in parallel. The worker's own loop is a task of the
//! runtime too, not the future the `coid-push` thread blocks on: a send that ends on
//! a runtime thread wakes the loop through the runtime's own queues, often on the same
//! thread, where a loop outside would need its thread unparked (a futex wake-up and a
//! third thread wanting the CPUs) for every send. Measured (`benches/push` in-process
//! worker, 6 runs each, alternating): Web Push 11.3–13.2k -> 12.2–13.9k/s, Delta Chat
//! 34.7–37.4k -> 37.5–41.1k/s. With 1, the
//! loop, the sends and their connections all run on that one thread: no hand-offs
//! between threads (each a futex wake-up), so while mail flows and pushes trickle in
//! it costs less CPU per message, but a backlog of Web Push encrypts on one CPU.
//! Measured on 2 CPUs (`benches/push`, one run each, alternating): coid's CPU per
//! message with mail flowing, Web Push 875 µs at 1 against 950–955 at 2 (push off:
//! 310–318), Delta Chat 650 against 682–722; a backlog of Web Push, 8.7–9.5k/s at 1
//! against 9.5–11.4k/s at 2 (Delta Chat: the same, 28k/s). The default stays 2: the
//! backlog is what the queue is for, and the mail's share was within the rounds'
//! noise either way.
//!
//! On Linux `setpriority(PRIO_PROCESS, tid)` changes one thread, so the nice value is
//! set in each thread: the `coid-push` thread itself and, through the runtime's
//! `on_thread_start` hook, every runtime thread (its workers and its blocking pool,
//! which runs the worker's store trips). It goes through `rustix` (a safe API over
//! the system call; coid forbids `unsafe`). A nice value that cannot be set (a
//! container that refuses it) is logged and that thread runs at the process's
//! priority.
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
    /// Starts `worker` on a thread of its own and a runtime of `threads` threads, all
    /// at nice value `nice` (0: the process's own priority), until `stop` turns true.
    ///
    /// # Errors
    /// The runtime or the thread could not be made.
    pub fn spawn(
        worker: Worker,
        stop: watch::Receiver<bool>,
        nice: u8,
        threads: usize,
    ) -> std::io::Result<Self> {
        let runtime = runtime(threads, nice)?;
        let (tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(NAME.to_owned())
            .spawn(move || {
                lower_priority(nice);
                // A task, so that the sends' wake-ups stay in the runtime (above). An
                // Err is a panic in the worker, printed to stderr (the journal) by the
                // standard panic hook; the thread then ends as when the worker returns.
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

/// A multi-thread runtime of `threads` worker threads, or with 1 (or 0) a
/// current-thread one, each of its threads (workers and blocking pool) at nice value
/// `nice`.
fn runtime(threads: usize, nice: u8) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder
        .thread_name(NAME)
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .build()
}

/// Sets the calling thread's nice value to `nice`, if above 0.
fn lower_priority(nice: u8) {
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
        let runtime = runtime(1, 0).expect("runtime");
        let here = std::thread::current().id();
        let ran_on = runtime.block_on(async {
            tokio::spawn(async { std::thread::current().id() })
                .await
                .expect("task")
        });
        assert_eq!(ran_on, here, "a current-thread runtime");
    }

    #[test]
    fn the_runtime_runs_tasks_on_two_threads_at_the_nice_value() {
        let before = current_nice();
        let runtime = runtime(2, 7).expect("runtime");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (seen, got) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let (barrier, seen) = (barrier.clone(), seen.clone());
            // Each task holds its thread until the other arrives: on one thread
            // the second never starts and the barrier never opens.
            runtime.spawn(async move {
                barrier.wait();
                let _ = seen.send((std::thread::current().id(), current_nice()));
            });
        }
        let limit = Duration::from_secs(10);
        let (first, second) = (got.recv_timeout(limit), got.recv_timeout(limit));
        // Before asserting: a task stuck at the barrier would hold a plain drop.
        runtime.shutdown_timeout(Duration::from_secs(1));
        let (first, second) = (
            first.expect("two tasks at once"),
            second.expect("two tasks"),
        );
        assert_ne!(first.0, second.0, "two OS threads");
        assert_eq!((first.1, second.1), (7, 7), "each runtime thread at nice 7");
        assert_eq!(
            current_nice(),
            before,
            "the caller's thread keeps its priority"
        );
    }
}
