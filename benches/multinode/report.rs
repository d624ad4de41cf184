//! The multi-node benchmark's tables: pushes per second from one shared queue by
//! setup (median of the rounds, the range, the ratio of each median to SQLite with
//! 1 node, duplicates over all rounds), and mail throughput with coid's state in
//! SQLite and in PostgreSQL (median, range, the ratio of the medians and the ratio
//! within each round). Every line carries the load average it ran under.

use crate::queue::{Drain, Setup};
use crate::stats::{median, range};

/// One stack run of the mail part.
pub struct MailRun {
    pub rate: f64,
    /// CPU coid used per message (all its threads).
    pub cpu_us: f64,
    /// CPU of the PostgreSQL server per message, over the whole run (its start and
    /// setup included); 0 on SQLite.
    pub postgres_cpu_us: f64,
    pub load: String,
}

pub fn drain_progress(round: usize, d: &Drain) -> String {
    format!(
        "[bench] round {round} {:<20}: {} pushes in {:.2} s, {:.0} pushes/s, {} duplicates, \
         queueing {:.0} µs/msg, CPU µs/push nodes {:.0} PostgreSQL {:.0}, load {}",
        d.setup.name(),
        d.pushes,
        d.elapsed.as_secs_f64(),
        d.rate(),
        d.duplicates,
        d.enqueue_us,
        d.cpu_us().0,
        d.cpu_us().1,
        d.load
    )
}

pub fn mail_progress(round: usize, postgres: bool, r: &MailRun) -> String {
    format!(
        "[bench] round {round} mail, {:<10}: {:.1} msgs/s, coid CPU {:.0} µs/msg, \
         PostgreSQL CPU {:.0} µs/msg, load {}",
        store_name(postgres),
        r.rate,
        r.cpu_us,
        r.postgres_cpu_us,
        r.load
    )
}

fn store_name(postgres: bool) -> &'static str {
    if postgres { "PostgreSQL" } else { "SQLite" }
}

/// Table 1: pushes per second by setup.
pub fn drains(drains: &[Drain], subscriptions: usize) {
    let rates = |setup: Setup| -> Vec<f64> {
        drains
            .iter()
            .filter(|d| d.setup == setup)
            .map(Drain::rate)
            .collect()
    };
    let reference = median(rates(Setup::Sqlite1));
    let pushes = drains.first().map_or(0, |d| d.pushes);
    println!(
        "\nPushes per second from one queue ({pushes} pushes = {} messages × {subscriptions} \
         devices, queued in process, drained by real coid nodes; receiver answers 201; \
         median of {} rounds)",
        pushes / subscriptions.max(1),
        drains.len() / 3
    );
    println!(
        "{:<20} {:>9} {:>16} {:>6} {:>6} {:>13} {:>10} {:>8}  loads (1 min) per round",
        "setup", "pushes/s", "range", "ratio", "dupl.", "queue µs/msg", "nodes CPU", "PG CPU"
    );
    for setup in [Setup::Sqlite1, Setup::Postgres1, Setup::Postgres3] {
        let these: Vec<&Drain> = drains.iter().filter(|d| d.setup == setup).collect();
        let rate = median(rates(setup));
        let loads: Vec<&str> = these
            .iter()
            .map(|d| d.load.split(' ').next().unwrap_or(""))
            .collect();
        println!(
            "{:<20} {:>9.0} {:>16} {:>6.2} {:>6} {:>13.0} {:>10.0} {:>8.0}  {}",
            setup.name(),
            rate,
            range(&rates(setup)),
            rate / reference,
            these.iter().map(|d| d.duplicates).sum::<usize>(),
            median(these.iter().map(|d| d.enqueue_us).collect()),
            median(these.iter().map(|d| d.cpu_us().0).collect()),
            median(these.iter().map(|d| d.cpu_us().1).collect()),
            loads.join(" ")
        );
    }
    let (one, three) = (
        median(rates(Setup::Postgres1)),
        median(rates(Setup::Postgres3)),
    );
    println!("PostgreSQL 3 nodes / 1 node: {:.2}", three / one);
    println!(
        "(CPU: µs per push, median; nodes: all of them, their start-up included; PG: the \
         PostgreSQL server over the same time)"
    );
}

/// Table 2: mail throughput, SQLite against PostgreSQL.
pub fn mail(rounds: &[(MailRun, MailRun)], messages: usize) {
    println!(
        "\nMail throughput, Postfix → coid → Dovecot, {messages} chats per run, COI on, push \
         off (median of {} rounds)",
        rounds.len()
    );
    println!(
        "{:<12} {:>8} {:>16} {:>15} {:>13}  loads (1 min) per round",
        "state", "msgs/s", "range", "coid CPU µs/msg", "PG CPU µs/msg"
    );
    for postgres in [false, true] {
        let runs: Vec<&MailRun> = rounds
            .iter()
            .map(|(s, p)| if postgres { p } else { s })
            .collect();
        let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
        let loads: Vec<&str> = runs
            .iter()
            .map(|r| r.load.split(' ').next().unwrap_or(""))
            .collect();
        println!(
            "{:<12} {:>8.1} {:>16} {:>15.0} {:>13.0}  {}",
            store_name(postgres),
            median(rates.clone()),
            range(&rates),
            median(runs.iter().map(|r| r.cpu_us).collect()),
            median(runs.iter().map(|r| r.postgres_cpu_us).collect()),
            loads.join(" ")
        );
    }
    let median_of =
        |pick: fn(&(MailRun, MailRun)) -> f64| median(rounds.iter().map(pick).collect());
    let ratio = median_of(|(_, p)| p.rate) / median_of(|(s, _)| s.rate);
    let per_round: Vec<String> = rounds
        .iter()
        .map(|(s, p)| format!("{:.2}", p.rate / s.rate))
        .collect();
    println!(
        "ratio PostgreSQL/SQLite: {ratio:.2} (per round {})",
        per_round.join(", ")
    );
    println!(
        "(PG CPU: the PostgreSQL server's over the whole run, coid's start and the IMAP \
         setup included, per message)"
    );
}
