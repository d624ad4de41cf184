//! The e2e benchmark's tables. Each scenario ran several rounds ([`Figures`]):
//! throughput is the median over the rounds (with the range), latency quantiles are
//! over the messages of all rounds. Scenarios come in (direct, proxied) pairs with the same
//! sessions and size; each pair gets a comparison line: the proxied/direct ratio of
//! throughput and latency, and the latency coid adds (proxied − direct).
//! Latencies are Postfix's own figures (`delays=a/b/c/d`, `delay=`), which it logs
//! with two significant digits.

use std::time::Duration;

use crate::delivery::{INJECTORS, Outcome, Scenario};
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
pub fn latency(outcomes: &[Figures]) {
    println!("\nlatency, one message at a time (ms; d = Postfix → next hop until its reply)");
    println!("path     size     msgs   d p50   d p95  delay p50  delay p95");
    for o in outcomes {
        let (d, total) = o.latencies();
        println!(
            "{:<8} {:>5}  {:>6}  {:>6.1}  {:>6.1}  {:>9.1}  {:>9.1}",
            o.scenario.hop.name(),
            size_name(o.scenario.size),
            messages(o),
            ms(quantile(&d, 0.5)),
            ms(quantile(&d, 0.95)),
            ms(quantile(&total, 0.5)),
            ms(quantile(&total, 0.95)),
        );
    }
    println!("added by coid (proxied − direct, ms; ratio proxied/direct)");
    println!("size   d p50 added (ratio)  d p95 added  delay p50 added  delay p95 added");
    for [direct, proxied] in pairs(outcomes) {
        let c = Comparison::new(direct, proxied);
        println!(
            "{:>5}  {:>11.1} ({:>5.2})  {:>11.1}  {:>15.1}  {:>15.1}",
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
        "path     sessions  size     msgs  submit s  total s   msgs/s  (min–max)    d p50  \
         d p95  delay p50  delay p95"
    );
    for o in outcomes {
        println!("{}", throughput_row(o));
    }
    println!("proxied against direct (ratio proxied/direct; added = proxied − direct, ms)");
    println!("sessions  size   msgs/s ratio  d p50 added (ratio)  d p95 added");
    for [direct, proxied] in pairs(outcomes) {
        let c = Comparison::new(direct, proxied);
        println!(
            "{:>8}  {:>5}  {:>12.2}  {:>11.1} ({:>5.2})  {:>11.1}",
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
        "{:<8} {:>8}  {:>5} {:>8}  {:>8.2}  {:>7.2}  {:>7.1}  {range:<11}  {:>5.1}  {:>5.1}  \
         {:>9.0}  {:>9.0}",
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
    format!(
        "{:<8} {:?} sessions={} size={} msgs={}: {:.2} s, {:.1} msgs/s, d p50 {:.1} ms",
        s.hop.name(),
        s.load,
        s.sessions,
        size_name(s.size),
        s.messages,
        o.elapsed.as_secs_f64(),
        o.rate(),
        ms(quantile(&d, 0.5)),
    )
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
