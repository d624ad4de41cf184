//! End-to-end benchmark of coid against real Postfix and Dovecot (see benches/README.md).
//!
//! In one run, on loopback, with the integration tests' harness (`tests/common`), each
//! figure for Postfix → Dovecot (direct) and Postfix → coid → Dovecot (proxied), run
//! back to back on fresh daemons, [`ROUNDS`] times ([`delivery`], [`report`]):
//! 1. latency without queueing, one message at a time, 5 KB and 1 MB;
//! 2. throughput with a backlog, at 1 and 8 parallel LMTP sessions, 5 KB and 1 MB;
//! 3. coid's peak RSS with 1 and 16 concurrent LMTP sessions of one 20 MB message
//!    ([`rss`]).
//!
//! Needs root (Postfix and Dovecot run as root) and is meant to run through
//! `benches/run.sh`. `COID_BENCH_QUICK=1` runs a tenth of the messages (a smoke run;
//! its figures are noisy).

#[path = "../../tests/common/mod.rs"]
mod common;
mod delivery;
#[path = "../shared/machine.rs"]
mod machine;
mod postfix_log;
mod report;
mod rss;
#[path = "../shared/stats.rs"]
mod stats;

use std::time::Instant;

use delivery::{Hop, Load, Scenario};
use machine::{environment, load_average};
use report::{Figures, KB, MB};

/// Each delivery scenario runs this many times, interleaved (see [`measure`]); even,
/// so that each path runs first in half of the rounds.
const ROUNDS: usize = 4;
/// (message size, messages per latency run, messages per throughput run).
const SIZES: [(usize, usize, usize); 2] = [(5 * KB, 100, 2000), (MB, 20, 200)];
const SESSIONS: [usize; 2] = [1, 8];
const RSS_SIZE: usize = 20 * MB;
const RSS_SESSIONS: [usize; 2] = [1, 16];

fn main() {
    let began = Instant::now();
    let scale = machine::scale();
    println!("coid end-to-end benchmark ({})", environment());

    // Warm the page cache and the binaries; not reported.
    delivery::run(scenario(
        Hop::Proxied,
        Load::Saturated,
        1,
        5 * KB,
        100 / scale,
    ));

    let latency: Vec<Scenario> = SIZES
        .iter()
        .flat_map(|&(size, n, _)| pair(Load::OneAtATime, 1, size, n / scale))
        .collect();
    let throughput: Vec<Scenario> = SIZES
        .iter()
        .flat_map(|&(size, _, n)| SESSIONS.map(|sessions| (size, n, sessions)))
        .flat_map(|(size, n, sessions)| pair(Load::Saturated, sessions, size, n / scale))
        .collect();
    let latency = measure(&latency);
    let throughput = measure(&throughput);
    let memory: Vec<rss::Rss> = RSS_SESSIONS
        .iter()
        .map(|&sessions| rss::measure(sessions, RSS_SIZE))
        .collect();

    report::latency(&latency);
    report::throughput(&throughput);
    report::memory(&memory);
    println!(
        "\nbenchmark took {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        load_average()
    );
}

/// Runs every scenario [`ROUNDS`] times. Within a round the runs go in order, except
/// that every other round runs each (direct, proxied) pair the other way round, so
/// neither path always runs first (drift, caches).
fn measure(scenarios: &[Scenario]) -> Vec<Figures> {
    let mut figures: Vec<Figures> = scenarios
        .iter()
        .map(|&scenario| Figures {
            scenario,
            runs: Vec::new(),
        })
        .collect();
    for round in 0..ROUNDS {
        for pair in figures.chunks_mut(2) {
            if round % 2 == 1 {
                pair.reverse();
            }
            for f in pair.iter_mut() {
                let outcome = delivery::run(f.scenario);
                eprintln!("[bench] round {} {}", round + 1, report::progress(&outcome));
                f.runs.push(outcome);
            }
            if round % 2 == 1 {
                pair.reverse();
            }
        }
    }
    figures
}

/// Direct, then proxied.
fn pair(load: Load, sessions: usize, size: usize, messages: usize) -> [Scenario; 2] {
    [Hop::Direct, Hop::Proxied].map(|hop| scenario(hop, load, sessions, size, messages))
}

fn scenario(hop: Hop, load: Load, sessions: usize, size: usize, messages: usize) -> Scenario {
    Scenario {
        hop,
        load,
        sessions,
        size,
        messages,
    }
}
