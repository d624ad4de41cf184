//! Encryption beside the push runtime's thread: `[push] worker_threads` - 1 OS threads
//! (`coid-push-seal`) that take RFC 8291 encryptions from a short queue while a
//! backlog of Web Push is sent.
//!
//! Why: the push worker runs on one thread (a current-thread runtime,
//! `crate::push::thread`), because pushes that trickle in while mail flows cost the
//! least there: no task moves between threads, so no thread is woken for it. A
//! backlog is bound by encryption (a fresh P-256 ECDH per push, about 65 µs), which
//! one thread does one at a time. So a send in a backlog hands its encryption to
//! these threads when their queue has room ([`Sealers::try_seal`]), and encrypts on
//! its own thread when it has none: the queue never empties while the backlog lasts
//! (no thread waits for a hand-off), and the runtime's thread encrypts what the
//! others cannot take, so every thread stays busy.
//!
//! Bounded: [`QUEUED_PER_THREAD`] jobs per thread wait at most, each one push's
//! plaintext (at most a 4 KB record). The threads end when the last handle is
//! dropped (the worker ended).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::ece::{self, EceError};
use crate::metrics::Recorder;

/// Jobs that may wait per sealing thread: enough that a thread finds the next one
/// when it finishes, few enough that a push waits at most a few encryptions.
const QUEUED_PER_THREAD: usize = 4;
/// The threads' name (`ps -L`, `top -H`).
const NAME: &str = "coid-push-seal";

/// One encryption to do: the user agent's key (uncompressed point) and auth secret,
/// the plaintext, and where the body goes.
struct Job {
    p256dh: Vec<u8>,
    auth: [u8; 16],
    plaintext: Vec<u8>,
    done: oneshot::Sender<Result<Vec<u8>, EceError>>,
}

/// The handle on the sealing threads; cheap to clone.
#[derive(Clone)]
pub struct Sealers {
    jobs: SyncSender<Job>,
}

impl Sealers {
    /// Starts `threads` sealing threads, each at nice value `nice` (0: the process's
    /// priority), counting each encryption in `recorder`.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn start(threads: usize, nice: u8, recorder: &Recorder) -> std::io::Result<Sealers> {
        let (sealers, queue) = Sealers::queue(threads);
        for _ in 0..threads.max(1) {
            let (queue, recorder) = (Arc::clone(&queue), recorder.clone());
            std::thread::Builder::new()
                .name(NAME.to_owned())
                .spawn(move || {
                    crate::push::thread::lower_priority(nice);
                    seal_all(&queue, &recorder);
                })?;
        }
        Ok(sealers)
    }

    /// The handle and the queue its `threads` threads take jobs from.
    fn queue(threads: usize) -> (Sealers, Arc<Mutex<Receiver<Job>>>) {
        let (jobs, queue) = sync_channel(threads.max(1) * QUEUED_PER_THREAD);
        (Sealers { jobs }, Arc::new(Mutex::new(queue)))
    }

    /// Hands the encryption of `plaintext` for (`p256dh`, `auth`) to the sealing
    /// threads; `None` when their queue is full (encrypt here instead). The
    /// receiver gets the body, as [`ece::encrypt`] returns it (an Err if the threads
    /// are gone: dropped sender).
    pub fn try_seal(
        &self,
        p256dh: &[u8],
        auth: &[u8; 16],
        plaintext: &[u8],
    ) -> Option<oneshot::Receiver<Result<Vec<u8>, EceError>>> {
        let (done, body) = oneshot::channel();
        let job = Job {
            p256dh: p256dh.to_vec(),
            auth: *auth,
            plaintext: plaintext.to_vec(),
            done,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Some(body),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => None,
        }
    }
}

/// A sealing thread's loop: until every handle is gone.
fn seal_all(queue: &Mutex<Receiver<Job>>, recorder: &Recorder) {
    loop {
        // The lock is held only while waiting for the next job; a poisoned one
        // (another sealing thread panicked) still holds a sound receiver.
        let next = queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        let Ok(job) = next else { return };
        let body = ece::encrypt(&job.plaintext, &job.p256dh, &job.auth);
        recorder.push_sealed_beside();
        // The send gave up (timed out): nobody wants the body.
        let _ = job.done.send(body);
    }
}

#[cfg(test)]
#[path = "sealers_tests.rs"]
mod tests;
