//! The e2e benchmark's tables. Each scenario ran several rounds ([`Figures`]):
//! throughput is the median over the rounds (with the range), latency quantiles are
//! over the messages of all rounds. Scenarios come in (direct, proxied) pairs with the same
//! sessions and size; each pair gets a comparison line: the proxied/direct ratio of
//! throughput and latency, and the latency coid adds (proxied − direct).
//! Latencies are Postfix's own figures (`delays=a/b/c/d`, `delay=`), which it logs
//! with two significant digits. The `smtp-source` runs have no latency of their own;
//! their summary takes the added latency from the Postfix runs of the same store, size
//! and sessions.

use std::time::Duration;

use crate::delivery::{Hop, INJECTORS, Outcome, Scenario};
use crate::rss::Rss;
use crate::stats::{median, quantile, range};

/// The rounds of one scenario.
pub struct Figures {
    pub scenario: Scenario,
    pub runs: Vec<Outcome>,
}

impl Figures {
    /// Delivered messages per second of each round.
    fn rates(&self) -> Vec<f64> {
        self.runs.iter().map(Outcome::rate).collect()
    }

    /// The median of the rounds' messages per second.
    fn rate(&self) -> f64 {
        median(self.rates())
    }

    fn median_secs(&self, of: impl Fn(&Outcome) -> Duration) -> f64 {
        median(self.runs.iter().map(|o| of(o).as_secs_f64()).collect())
    }

    /// `d` (transmission to the next hop) and total delay of every message, in seconds.
    fn latencies(&self) -> (Vec<f64>, Vec<f64>) {
        self.runs
            .iter()
            .flat_map(|o| &o.delays)
            .map(|d| (d.transmission, d.total))
            .unzip()
    }
}

pub const KB: usize = 1024;
pub const MB: usize = 1024 * 1024;

/// Latency without queueing: pairs of one-at-a-time runs.
pub fn latency(outcomes: &[Figures], what: &str, by: &str) {
    if outcomes.is_empty() {
        return;
    }
    println!("\n{what}, one message at a time (ms; d = Postfix → next hop until its reply)");
    println!("store      path     size     msgs   d p50   d p95  delay p50  delay p95");
    for o in outcomes {
        let (d, total) = o.latencies();
        println!(
            "{:<9}  {:<8} {:>5}  {:>6}  {:>6.2}  {:>6.2}  {:>9.2}  {:>9.2}",
            o.scenario.store.name(),
            o.scenario.hop.name(),
            size_name(o.scenario.size),
            messages(o),
            ms(quantile(&d, 0.5)),
            ms(quantile(&d, 0.95)),
            ms(quantile(&total, 0.5)),
            ms(quantile(&total, 0.95)),
        );
    }
    println!("added by {by} (through it − direct, ms; ratio through it/direct)");
    println!(
        "store      size   d p50 added (ratio)  d p95 added  delay p50 added  delay p95 added"
    );
    for [direct, proxied] in pairs(outcomes) {
        let c = Comparison::new(direct, proxied);
        println!(
            "{:<9}  {:>5}  {:>11.2} ({:>5.2})  {:>11.2}  {:>15.2}  {:>15.2}",
            direct.scenario.store.name(),
            size_name(direct.scenario.size),
            c.added_d(0.5),
            c.ratio_d(0.5),
            c.added_d(0.95),
            c.added_total(0.5),
            c.added_total(0.95),
        );
    }
}

/// Throughput under a backlog: pairs of saturated runs.
pub fn throughput(outcomes: &[Figures]) {
    println!(
        "\nthroughput, {INJECTORS} SMTP clients submitting while Postfix delivers \
         (ms; delay includes waiting in the queue)"
    );
    println!(
        "store      path     sessions  size     msgs  submit s  total s   msgs/s  (min–max)    \
         d p50  d p95  delay p50  delay p95"
    );
    for o in outcomes {
        println!("{}", throughput_row(o));
    }
    println!("proxied against direct (ratio proxied/direct; added = proxied − direct, ms)");
    println!("store      sessions  size   msgs/s ratio  d p50 added (ratio)  d p95 added");
    for [direct, proxied] in pairs(outcomes) {
        let c = Comparison::new(direct, proxied);
        println!(
            "{:<9}  {:>8}  {:>5}  {:>12.2}  {:>11.2} ({:>5.2})  {:>11.2}",
            direct.scenario.store.name(),
            direct.scenario.sessions,
            size_name(direct.scenario.size),
            proxied.rate() / direct.rate(),
            c.added_d(0.5),
            c.ratio_d(0.5),
            c.added_d(0.95),
        );
    }
}

/// One line per scenario.
fn throughput_row(o: &Figures) -> String {
    let s = &o.scenario;
    let (d, total) = o.latencies();
    let range = range(&o.rates());
    format!(
        "{:<9}  {:<8} {:>8}  {:>5} {:>8}  {:>8.2}  {:>7.2}  {:>7.1}  {range:<11}  {:>5.2}  \
         {:>5.2}  {:>9.0}  {:>9.0}",
        s.store.name(),
        s.hop.name(),
        s.sessions,
        size_name(s.size),
        messages(o),
        o.median_secs(|o| o.injected),
        o.median_secs(|o| o.elapsed),
        o.rate(),
        ms(quantile(&d, 0.5)),
        ms(quantile(&d, 0.95)),
        ms(quantile(&total, 0.5)),
        ms(quantile(&total, 0.95)),
    )
}

/// One line per run, printed on stderr while the bench runs.
pub fn progress(o: &Outcome) -> String {
    let s = &o.scenario;
    let d: Vec<f64> = o.delays.iter().map(|d| d.transmission).collect();
    let mut line = format!(
        "{} {:<8} {:?} sessions={} size={} msgs={}: {:.2} s, {:.1} msgs/s, d p50 {:.2} ms, \
         store connections {}",
        s.store.name(),
        s.hop.name(),
        s.load,
        s.sessions,
        size_name(s.size),
        s.messages,
        o.elapsed.as_secs_f64(),
        o.rate(),
        ms(quantile(&d, 0.5)),
        o.store_connections,
    );
    if let Some(first) = o.coid_problems.first() {
        line.push_str(&format!(
            "\n  coid logged {} warnings or errors, the first: {first}",
            o.coid_problems.len()
        ));
    }
    line
}

/// Throughput without Postfix: pairs of `smtp-source` runs.
pub fn source(outcomes: &[Figures], what: &str) {
    if outcomes.is_empty() {
        return;
    }
    println!(
        "\n{what}: smtp-source -L -d, N messages over 1 or 8 LMTP sessions \
         (connections = LMTP connections the store served, median of the rounds)"
    );
    println!(
        "store      path     sessions  size       msgs  total s    msgs/s  (min–max)      connections  coid warnings"
    );
    for o in outcomes {
        let s = &o.scenario;
        let connections = median(o.runs.iter().map(|r| r.store_connections as f64).collect());
        let problems: usize = o.runs.iter().map(|r| r.coid_problems.len()).sum();
        println!(
            "{:<9}  {:<8} {:>8}  {:>5} {:>10}  {:>7.2}  {:>8.1}  {:<13}  {:>11.0}  {:>13}",
            s.store.name(),
            s.hop.name(),
            s.sessions,
            size_name(s.size),
            messages(o),
            o.median_secs(|o| o.elapsed),
            o.rate(),
            range(&o.rates()),
            connections,
            if s.hop == Hop::Proxied {
                problems.to_string()
            } else {
                "-".into()
            },
        );
    }
}

/// Issue 10's table: for each store, size and sessions, the `smtp-source` rates
/// direct (A) and through coid (B), B/A, the time coid adds per message at that rate
/// (1/B − 1/A, as the issue computed its last column), and the median latency coid
/// adds to each message (`d` p50, proxied − direct) in the Postfix runs of the same
/// store, size and sessions.
pub fn summary(source: &[Figures], postfix: &[Figures], relayed: &[Figures]) {
    println!(
        "\nsummary (issue 10's table): smtp-source -L -d msgs/s; latency added from the Postfix runs; \
         the floor: B/A of a relay that does nothing in coid's place"
    );
    println!(
        "| path | size | sessions | direct msg/s | through coid | B/A | 1/B − 1/A | added d p50 (Postfix) | relay B/A |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for [direct, proxied] in pairs(source) {
        let s = &direct.scenario;
        let (a, b) = (direct.rate(), proxied.rate());
        let added = pairs(postfix)
            .find(|[d, _]| {
                let p = &d.scenario;
                (p.store, p.size, p.sessions) == (s.store, s.size, s.sessions)
            })
            .map_or("-".to_owned(), |[d, p]| {
                format!("{:+.2} ms", Comparison::new(d, p).added_d(0.5))
            });
        let floor = pairs(relayed)
            .find(|[d, _]| {
                let r = &d.scenario;
                (r.store, r.size, r.sessions) == (s.store, s.size, s.sessions)
            })
            .map_or("-".to_owned(), |[d, r]| {
                format!("{:.2}", r.rate() / d.rate())
            });
        println!(
            "| → {} LMTP | {} | {} | {a:.0} | {b:.0} | {:.2} | {:+.2} ms | {added} | {floor} |",
            s.store.name(),
            size_name(s.size),
            s.sessions,
            b / a,
            ms(1.0 / b - 1.0 / a),
        );
    }
}

/// "rounds×messages".
fn messages(o: &Figures) -> String {
    format!("{}×{}", o.runs.len(), o.scenario.messages)
}

/// coid's memory readings.
pub fn memory(readings: &[Rss]) {
    println!("\ncoid memory, LMTP sessions straight to coid (KiB, from /proc/<pid>/status)");
    println!("sessions  message  idle VmRSS  peak VmHWM  VmRSS after");
    for r in readings {
        println!(
            "{:>8}  {:>7}  {:>10}  {:>10}  {:>11}",
            r.sessions,
            size_name(r.size),
            r.idle,
            r.peak,
            r.after
        );
    }
}

/// Consecutive (direct, proxied) scenarios.
fn pairs(outcomes: &[Figures]) -> impl Iterator<Item = [&Figures; 2]> {
    outcomes.chunks_exact(2).map(|pair| [&pair[0], &pair[1]])
}

/// Latency quantiles of a (direct, proxied) pair, in ms.
struct Comparison {
    direct: (Vec<f64>, Vec<f64>),
    proxied: (Vec<f64>, Vec<f64>),
}

impl Comparison {
    fn new(direct: &Figures, proxied: &Figures) -> Comparison {
        Comparison {
            direct: direct.latencies(),
            proxied: proxied.latencies(),
        }
    }

    fn added_d(&self, q: f64) -> f64 {
        ms(quantile(&self.proxied.0, q) - quantile(&self.direct.0, q))
    }

    fn ratio_d(&self, q: f64) -> f64 {
        quantile(&self.proxied.0, q) / quantile(&self.direct.0, q)
    }

    fn added_total(&self, q: f64) -> f64 {
        ms(quantile(&self.proxied.1, q) - quantile(&self.direct.1, q))
    }
}

fn ms(seconds: f64) -> f64 {
    seconds * 1e3
}

pub fn size_name(bytes: usize) -> String {
    if bytes >= MB {
        format!("{} MB", bytes / MB)
    } else {
        format!("{} KB", bytes / KB)
    }
}
