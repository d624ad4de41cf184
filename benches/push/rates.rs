//! Step 2 of the push bench, in process: pushes and notifications per second by
//! `Sender` and `Notifier` alone (on all CPUs and on one thread) and through the
//! durable queue and the real `Worker`, the paths taking turns (see
//! benches/README.md).

use crate::receiver::{self, Receiver};
use crate::{NOTIFICATIONS, NOTIFIED_MESSAGES, PUSH_RUNS, SUBSCRIPTIONS};
use crate::{in_process_chats, machine, report, send, stats};

/// The in-process rates of step 2: every path `PUSH_RUNS` times, the paths taking
/// turns so that a change in the host's load falls on all of them.
#[derive(Default)]
pub struct Rates {
    pub sender: Vec<send::Rate>,
    pub sender_one: Vec<send::Rate>,
    pub worker: Vec<send::Rate>,
    pub notifier: Vec<send::Rate>,
    pub notifier_one: Vec<send::Rate>,
    pub deltachat: Vec<send::Rate>,
    /// µs per message queued, per worker run.
    pub enqueue: Vec<f64>,
    pub enqueue_dc: Vec<f64>,
}

pub fn measure(
    receiver: &Receiver,
    endpoints: &[receiver::Endpoint],
    tokens: &[String],
    payload: &[u8],
    pushes: usize,
    concurrency: usize,
) -> Rates {
    let scale = machine::scale();
    let (all, one) = (send::Threads::All, send::Threads::One);
    send::sender(receiver, endpoints, payload, pushes / 10, all); // warm-up
    let notifications = NOTIFICATIONS / scale;
    send::notifier(receiver, tokens, notifications / 10, all);
    let (pushed, notified) = in_process_chats(pushes / SUBSCRIPTIONS, NOTIFIED_MESSAGES / scale);
    let mut r = Rates::default();
    for _ in 0..PUSH_RUNS {
        r.sender
            .push(send::sender(receiver, endpoints, payload, pushes, all));
        r.sender_one
            .push(send::sender(receiver, endpoints, payload, pushes, one));
        let (worker, enqueue) = send::worker(receiver, endpoints, &pushed, concurrency);
        r.worker.push(worker);
        r.enqueue.push(enqueue);
        r.notifier
            .push(send::notifier(receiver, tokens, notifications, all));
        r.notifier_one
            .push(send::notifier(receiver, tokens, notifications, one));
        let (dc, enqueue_dc) = send::deltachat_worker(receiver, tokens, &notified, concurrency);
        r.deltachat.push(dc);
        r.enqueue_dc.push(enqueue_dc);
    }
    for (name, runs) in r.paths() {
        for r in runs {
            eprintln!(
                "[bench] {name}: {} sent, {:.0}/s, {} connections, CPU {:?} + receiver {:?}",
                r.pushes,
                r.per_second(),
                r.connections,
                r.cpu.rest,
                r.cpu.receiver
            );
        }
    }
    r
}

impl Rates {
    fn paths(&self) -> [(&'static str, &[send::Rate]); 6] {
        [
            ("Sender::send", &self.sender),
            ("Sender::send, one thread", &self.sender_one),
            ("queue → Worker → Sender", &self.worker),
            ("Notifier::notify", &self.notifier),
            ("Notifier::notify, one thread", &self.notifier_one),
            ("queue → Worker → Notifier", &self.deltachat),
        ]
    }

    pub fn report(&self, concurrency: usize) {
        report::rates(
            concurrency,
            SUBSCRIPTIONS,
            &self.paths(),
            stats::median(self.enqueue.clone()),
            stats::median(self.enqueue_dc.clone()),
        );
    }
}
