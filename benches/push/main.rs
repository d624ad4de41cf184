//! Web Push benchmark (see benches/README.md), all on loopback against a fast push
//! service inside this process ([`receiver`]):
//! 1. CPU per push: encryption and VAPID signing in a loop ([`cost`]);
//! 2. encrypted pushes per second with coid's `Sender`, and through the durable queue
//!    and the real `Worker` ([`send`]);
//! 3. and 4. the real stack (Postfix → coid → Dovecot, `tests/common`) at full speed,
//!    [`ROUNDS`] rounds of push on and push off taking turns: mail throughput with push
//!    on against off, and the time from coid's delivery of each message to its push
//!    arriving ([`flow`], [`coid_log`]).
//!
//! Needs root (Postfix and Dovecot run as root) and is meant to run through
//! `benches/run.sh --bench push`. `COID_BENCH_QUICK=1` runs a tenth of the work.

mod coid_log;
#[path = "../../tests/common/mod.rs"]
mod common;
mod cost;
mod cpu;
// Shared with the e2e bench: settings, injection helpers and the maillog reader.
#[allow(dead_code)]
#[path = "../e2e/delivery.rs"]
mod delivery;
mod flow;
#[path = "../shared/machine.rs"]
mod machine;
#[allow(dead_code)]
#[path = "../e2e/postfix_log.rs"]
mod postfix_log;
mod receiver;
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

use receiver::Receiver;

/// Subscriptions the in-process runs push to.
const SUBSCRIPTIONS: usize = 8;
/// Pushes per in-process run, and runs.
const PUSHES: usize = 4000;
const PUSH_RUNS: usize = 3;
/// Chats per stack run; every configuration runs this many rounds (even: each mode
/// goes first in half of them).
const MESSAGES: usize = 2000;
const ROUNDS: usize = 4;

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
    send::sender(&receiver, &endpoints, &payload, pushes / 10); // warm-up
    let sender: Vec<send::Rate> = (0..PUSH_RUNS)
        .map(|_| send::sender(&receiver, &endpoints, &payload, pushes))
        .collect();
    let (worker, enqueue): (Vec<send::Rate>, Vec<f64>) = (0..PUSH_RUNS)
        .map(|_| send::worker(&receiver, &endpoints, &message, pushes / SUBSCRIPTIONS))
        .unzip();
    for (name, runs) in [("sender", &sender), ("worker", &worker)] {
        for r in runs {
            eprintln!(
                "[bench] {name}: {} pushes, {:.0}/s, {} connections, CPU {:?} + receiver {:?}",
                r.pushes,
                r.per_second(),
                r.connections,
                r.cpu.rest,
                r.cpu.receiver
            );
        }
    }

    flow::run(&receiver, true, 100 / scale, "warm"); // page cache, binaries
    let mail = mail_rounds(&receiver, MESSAGES / scale);

    report::cost(&cost);
    let concurrency = PushConfig::default().concurrency;
    report::rates(
        concurrency,
        SUBSCRIPTIONS,
        &sender,
        &worker,
        stats::median(enqueue),
    );
    report::mail(&mail);
    println!(
        "\nbenchmark took {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        machine::load_average()
    );
}

/// [`ROUNDS`] rounds of push on and off; on goes first in the even rounds.
fn mail_rounds(receiver: &Receiver, messages: usize) -> Vec<flow::Outcome> {
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for push in order {
            let tag = format!("r{round}{}", if push { "on" } else { "off" });
            let outcome = flow::run(receiver, push, messages, &tag);
            eprintln!("{}", report::progress(round + 1, &outcome));
            outcomes.push(outcome);
        }
    }
    outcomes
}
