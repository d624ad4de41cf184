//! Multi-node benchmark (see benches/README.md), issue 11: coid's state in PostgreSQL
//! against SQLite, all on loopback, in one run:
//! 1. pushes per second from one shared queue, drained by 1 coid node and by 3 nodes
//!    on one PostgreSQL database, and by 1 node on SQLite as the reference
//!    ([`queue`]), rounds taking turns ([`QUEUE_ORDERS`]);
//! 2. mail throughput through the real stack (Postfix → coid → Dovecot, the push
//!    bench's stack run with push off: COI on for everyone, so settings are read on
//!    every delivery) with coid's state in SQLite and in PostgreSQL, rounds taking
//!    turns ([`MAIL_ORDERS`]).
//!
//! Needs root (Postfix, Dovecot, and PostgreSQL run as its own user) and is meant to
//! run through `benches/run.sh --bench multinode`. `COID_BENCH_QUICK=1` runs a tenth
//! of the work.

// The push bench's stack run (`flow`) and what it reads and checks with.
#[allow(dead_code)]
#[path = "../push/coid_log.rs"]
mod coid_log;
#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../push/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../e2e/delivery.rs"]
mod delivery;
#[allow(dead_code)]
#[path = "../push/flow.rs"]
mod flow;
#[path = "../shared/machine.rs"]
mod machine;
mod pgcpu;
#[allow(dead_code)]
#[path = "../e2e/postfix_log.rs"]
mod postfix_log;
mod queue;
#[allow(dead_code)]
#[path = "../push/receiver.rs"]
mod receiver;
#[allow(dead_code)]
#[path = "../e2e/relay.rs"]
mod relay;
mod report;
#[path = "../shared/stats.rs"]
mod stats;
#[allow(dead_code)]
#[path = "../e2e/store.rs"]
mod store;

use std::time::Instant;

use common::postgres::fresh_url;
use flow::Mode;
use queue::Setup;
use receiver::Receiver;

/// Messages queued per drain (each pushes to [`queue::SUBSCRIPTIONS`] devices).
const QUEUED_MESSAGES: usize = 500;
/// Each setup runs before each other one in half of the rounds.
const QUEUE_ORDERS: [[Setup; 3]; 4] = [
    [Setup::Sqlite1, Setup::Postgres1, Setup::Postgres3],
    [Setup::Postgres3, Setup::Postgres1, Setup::Sqlite1],
    [Setup::Postgres1, Setup::Sqlite1, Setup::Postgres3],
    [Setup::Postgres3, Setup::Sqlite1, Setup::Postgres1],
];
/// Chats per stack run.
const MESSAGES: usize = 2000;
/// SQLite first, then PostgreSQL first, and so on (false: SQLite, true: PostgreSQL).
const MAIL_ORDERS: [[bool; 2]; 4] = [[false, true], [true, false], [false, true], [true, false]];

fn main() {
    let began = Instant::now();
    let scale = machine::scale();
    println!("coid multi-node benchmark ({})", machine::environment());
    let receiver = Receiver::start();

    // Start PostgreSQL, page cache, binaries; and a failing setup shows at once.
    queue::run(&receiver, Setup::Postgres3, 20, "warmq");
    let queued = QUEUED_MESSAGES / scale;
    let mut drains = Vec::new();
    for (round, order) in QUEUE_ORDERS.iter().enumerate() {
        for &setup in order {
            let drain = queue::run(&receiver, setup, queued, &format!("q{round}{setup:?}"));
            eprintln!("{}", report::drain_progress(round + 1, &drain));
            drains.push(drain);
        }
    }

    flow::run_on(
        &receiver,
        Mode::Off,
        100 / scale,
        "warm",
        Some(&fresh_url()),
    );
    let messages = MESSAGES / scale;
    let mut rounds = Vec::new();
    for (round, order) in MAIL_ORDERS.iter().enumerate() {
        let mut pair: [Option<report::MailRun>; 2] = [None, None];
        for &postgres in order {
            let url = postgres.then(fresh_url);
            let tag = format!("m{round}{}", if postgres { "pg" } else { "sq" });
            let postgres_before = pgcpu::server();
            let outcome = flow::run_on(&receiver, Mode::Off, messages, &tag, url.as_deref());
            let postgres_cpu = pgcpu::server().saturating_sub(postgres_before);
            let per_message = |d: std::time::Duration| d.as_secs_f64() * 1e6 / messages as f64;
            let run = report::MailRun {
                rate: outcome.rate(),
                cpu_us: per_message(outcome.coid_cpu),
                postgres_cpu_us: if postgres {
                    per_message(postgres_cpu)
                } else {
                    0.0
                },
                load: machine::load_average(),
            };
            eprintln!("{}", report::mail_progress(round + 1, postgres, &run));
            pair[usize::from(postgres)] = Some(run);
        }
        let [Some(sqlite), Some(postgres)] = pair else {
            unreachable!("each round runs both stores")
        };
        rounds.push((sqlite, postgres));
    }

    report::drains(&drains, queue::SUBSCRIPTIONS);
    report::mail(&rounds, messages);
    println!(
        "\nbenchmark took {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        machine::load_average()
    );
}
