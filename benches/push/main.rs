//! Push benchmark, Web Push and Delta Chat (see benches/README.md), all on loopback
//! against a fast push service and Delta Chat notification proxy stand-in inside this
//! process ([`receiver`]):
//! 1. CPU per push: encryption and VAPID signing in a loop ([`cost`]);
//! 2. encrypted pushes per second with coid's `Sender`, and through the durable queue
//!    and the real `Worker`; Delta Chat notifications per second with coid's
//!    `Notifier`, and through the queue and the `Worker` ([`send`]);
//! 3. and 4. the real stack (Postfix → coid → Dovecot, `tests/common`) at full speed,
//!    rounds of Web Push on, Delta Chat push on and a control, each between two runs
//!    with push off ([`ORDERS`]): mail throughput with each kind of push on against
//!    the push-off runs either side, and the time
//!    from coid's delivery of each message to its push or notification arriving
//!    ([`flow`], [`coid_log`]);
//! 5. the worker against a push service 50 ms away, at several `[push] concurrency`
//!    values ([`far`]).
//!
//! Needs root (Postfix and Dovecot run as root) and is meant to run through
//! `benches/run.sh --bench push`. `COID_BENCH_QUICK=1` runs a tenth of the work;
//! `COID_BENCH_ONLY=worker` only the in-process queue → worker runs (for profiling);
//! `COID_BENCH_ONLY=rates` only the in-process rates (2.), each path beside the others;
//! `COID_BENCH_ONLY=mail` only the mail rounds through the real stack;
//! `COID_BENCH_ONLY=far` only the runs against a push service far away.

mod coid_log;
#[path = "../../tests/common/mod.rs"]
mod common;
mod cost;
mod cpu;
// Shared with the e2e bench: settings, injection helpers and the maillog reader.
#[allow(dead_code)]
#[path = "../e2e/delivery.rs"]
mod delivery;
mod far;
mod flow;
#[path = "../shared/machine.rs"]
mod machine;
#[allow(dead_code)]
#[path = "../e2e/postfix_log.rs"]
mod postfix_log;
mod rates;
mod receiver;
#[allow(dead_code)]
#[path = "../e2e/relay.rs"]
mod relay;
mod report;
mod send;
#[path = "../shared/stats.rs"]
mod stats;
#[allow(dead_code)]
#[path = "../e2e/store.rs"]
mod store;
#[path = "../shared/timing.rs"]
mod timing;

use std::time::Instant;

use coid::config::PushConfig;

use flow::{Mode, Slot};
use receiver::Receiver;

/// Subscriptions the in-process runs push to, and Delta Chat tokens they notify.
const SUBSCRIPTIONS: usize = 8;
/// Pushes per in-process run, and runs.
const PUSHES: usize = 4000;
const PUSH_RUNS: usize = 3;
/// Delta Chat notifications per in-process run, by `Notifier` alone and through the
/// queue and `Worker` (messages × [`SUBSCRIPTIONS`] tokens): more than pushes, as a
/// notification costs far less, so that a run lasts long enough to time its CPU
/// (10 ms ticks).
const NOTIFICATIONS: usize = 40_000;
const NOTIFIED_MESSAGES: usize = 2_000;
/// Chats per stack run.
const MESSAGES: usize = 2000;
/// The measured runs of each round, in order, each between two push-off runs
/// ([`flow::MailRounds`]): each runs before each other one in half of the rounds.
const ORDERS: [[Slot; 3]; 4] = [
    [
        Slot::Push(Mode::WebPush),
        Slot::Push(Mode::DeltaChat),
        Slot::Control,
    ],
    [
        Slot::Control,
        Slot::Push(Mode::DeltaChat),
        Slot::Push(Mode::WebPush),
    ],
    [
        Slot::Push(Mode::DeltaChat),
        Slot::Control,
        Slot::Push(Mode::WebPush),
    ],
    [
        Slot::Push(Mode::WebPush),
        Slot::Control,
        Slot::Push(Mode::DeltaChat),
    ],
];

fn main() {
    let began = Instant::now();
    let scale = machine::scale();
    println!("coid push benchmark ({})", machine::environment());

    let receiver = Receiver::start();
    let endpoints = receiver.endpoints("s", SUBSCRIPTIONS);
    let (message, _) = flow::chat("inprocess", 0, &delivery::filler(flow::CHAT_SIZE));
    let payload = send::payload_of(&message);
    let cost = cost::measure(&endpoints[0], &payload);

    let pushes = PUSHES / scale;
    let concurrency = PushConfig::default().concurrency;
    let tokens = receiver::device_tokens(SUBSCRIPTIONS);
    let only = std::env::var("COID_BENCH_ONLY");
    match only.as_deref() {
        Ok("worker") => {
            let chats = in_process_chats(pushes / SUBSCRIPTIONS, NOTIFIED_MESSAGES / scale);
            in_process_only(&receiver, &endpoints, &tokens, &chats, concurrency);
            return;
        }
        Ok("far") => {
            report::far(&far::measure(distinct_chats), concurrency);
            return;
        }
        Ok("mail") => {
            flow::run(&receiver, Mode::DeltaChat, 100 / scale, "warmdc");
            report::mail(&mail_rounds(&receiver, MESSAGES / scale));
            return;
        }
        Ok("rates") | Err(_) => {}
        Ok(other) => {
            panic!("COID_BENCH_ONLY={other}: only `worker`, `rates`, `mail` and `far` are known")
        }
    }
    let rates = rates::measure(
        &receiver,
        &endpoints,
        &tokens,
        &payload,
        pushes,
        concurrency,
    );
    if only.as_deref() == Ok("rates") {
        rates.report(concurrency);
        return;
    }

    // Page cache, binaries; and a failing setup shows before the rounds.
    flow::run(&receiver, Mode::WebPush, 100 / scale, "warm");
    flow::run(&receiver, Mode::DeltaChat, 100 / scale, "warmdc");
    let mail = mail_rounds(&receiver, MESSAGES / scale);
    let far = far::measure(distinct_chats);

    report::cost(&cost);
    rates.report(concurrency);
    report::mail(&mail);
    report::far(&far, concurrency);
    report::summary(&report::Summary {
        cost: &cost,
        sender: &rates.sender,
        sender_one: &rates.sender_one,
        worker: &rates.worker,
        notifier: &rates.notifier,
        notifier_one: &rates.notifier_one,
        deltachat: &rates.deltachat,
        enqueue_us: stats::median(rates.enqueue.clone()),
        enqueue_deltachat_us: stats::median(rates.enqueue_dc.clone()),
        mail: &mail,
    });
    println!(
        "\nbenchmark took {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        machine::load_average()
    );
}

/// `COID_BENCH_ONLY=worker`: only the queue → worker runs, Web Push and Delta Chat
/// (`PUSH_RUNS` of each; the rate and µs per message queued); for profiling them
/// (`perf record`) without the rest.
fn in_process_only(
    receiver: &Receiver,
    endpoints: &[receiver::Endpoint],
    tokens: &[String],
    (pushed, notified): &(Vec<Vec<u8>>, Vec<Vec<u8>>),
    concurrency: usize,
) {
    for _ in 0..PUSH_RUNS {
        let (rate, enqueue) = send::worker(receiver, endpoints, pushed, concurrency);
        let (dc, enqueue_dc) = send::deltachat_worker(receiver, tokens, notified, concurrency);
        println!(
            "worker {:.0}/s (CPU {:?}, {} connections), queued {enqueue:.0} µs/message; \
             deltachat worker {:.0}/s (CPU {:?}, {} connections), queued {enqueue_dc:.0} \
             µs/message",
            rate.per_second(),
            rate.cpu.rest,
            rate.connections,
            dc.per_second(),
            dc.cpu.rest,
            dc.connections
        );
    }
}

/// The chats the in-process worker runs queue, Web Push and Delta Chat: each with
/// its own Message-ID, as real mail has (the queue drops a push of a message it
/// queued already: its dedupe key is made of the Message-ID).
fn in_process_chats(pushed: usize, notified: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (
        distinct_chats("inprocess", pushed),
        distinct_chats("inprocess-dc", notified),
    )
}

/// `n` chats tagged `tag`, each with its own Message-ID.
fn distinct_chats(tag: &str, n: usize) -> Vec<Vec<u8>> {
    let filler = delivery::filler(flow::CHAT_SIZE);
    (0..n).map(|i| flow::chat(tag, i, &filler).0).collect()
}

/// The mail rounds: push off, then each round's measured runs in the [`ORDERS`],
/// each followed by push off again ([`flow::MailRounds`]). A run of full size with push
/// off goes first and is not counted: in every run of this bench the first full-size
/// run was 10–20% faster than any later one, whatever followed.
fn mail_rounds(receiver: &Receiver, messages: usize) -> flow::MailRounds {
    let first = flow::run(receiver, Mode::Off, messages, "warmfull");
    eprintln!("{} (not counted)", report::progress(0, &first));
    let off = |n: usize, round: usize| {
        let outcome = flow::run(receiver, Mode::Off, messages, &format!("off{n}"));
        eprintln!("{} (baseline)", report::progress(round, &outcome));
        outcome
    };
    let mut offs = vec![off(0, 1)];
    let mut measured = Vec::new();
    for (round, order) in ORDERS.iter().enumerate() {
        for &slot in order {
            let tag = format!("r{round}{}", slot.tag());
            let outcome = flow::run(receiver, slot.mode(), messages, &tag);
            let control = if slot == Slot::Control {
                " (control)"
            } else {
                ""
            };
            eprintln!("{}{control}", report::progress(round + 1, &outcome));
            measured.push((slot, outcome));
            offs.push(off(offs.len(), round + 1));
        }
    }
    flow::MailRounds { offs, measured }
}
