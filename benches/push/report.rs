//! The push benchmark's tables: CPU per push, pushes and Delta Chat notifications per
//! second in process (median of the runs, with the range), and the stack runs: mail
//! throughput with push off, Web Push on and Delta Chat push on (median of the runs,
//! and each on-run's ratio to the push-off runs either side of it, by round with their
//! median), and the delivery-to-push latency quantiles over every push (notification)
//! of every round.

use std::time::Duration;

use crate::cost::Cost;
use crate::far::{ANSWER_AFTER, Far};
use crate::flow::{CHAT_SIZE, MailRounds, Mode, Outcome, SESSIONS, Slot, TOKENS};
use crate::send::Rate;
use crate::stats::{median, quantile, range};

/// The worker against a push service [`ANSWER_AFTER`] away, by `[push] concurrency`
/// (`default` marked).
pub fn far(runs: &[Far], default: usize) {
    println!(
        "\nqueue → worker against a push service {} ms away (one run each; bound: \
         concurrency / answer time)",
        ANSWER_AFTER.as_millis()
    );
    println!(
        "concurrency   bound/s   web push/s  (× bound)  delta chat/s  (× bound)  CPU µs/push wp | dc"
    );
    for f in runs {
        let (wp, dc) = (f.webpush.per_second(), f.deltachat.per_second());
        let per_push = |r: &Rate| r.cpu.rest.as_secs_f64() * 1e6 / r.pushes.max(1) as f64;
        let mark = if f.concurrency == default {
            " (default)"
        } else {
            ""
        };
        println!(
            "{:<13} {:>7.0} {:>12.0}  ({:>5.2})  {:>12.0}  ({:>5.2})  {:>8.0} | {:.0}{mark}",
            f.concurrency,
            f.bound(),
            wp,
            wp / f.bound(),
            dc,
            dc / f.bound(),
            per_push(&f.webpush),
            per_push(&f.deltachat),
        );
    }
}

pub fn cost(c: &Cost) {
    println!(
        "\nCPU per push, in process, one thread (µs; payload {} B plaintext, {} B encrypted)",
        c.plaintext, c.body
    );
    println!("step                               µs");
    for (step, us) in [
        ("encrypt (RFC 8291 aes128gcm)", c.encrypt),
        ("sign (RFC 8292 VAPID JWT), fresh", c.sign),
        ("sign, cached per origin (coid)", c.sign_cached),
        ("encrypt + cached sign (per push)", c.encrypt_and_sign),
        ("decrypt (push service side)", c.decrypt),
        ("decode the queued subscription", c.decode),
        ("name check, looked up (localhost)", c.name_lookup),
        ("name check, passed lately (coid)", c.name_remembered),
    ] {
        println!("{step:<33} {us:>6.0}");
    }
}

/// In-process rates: (path, runs) for the bare `Sender`, the queue and `Worker`, and
/// the same for Delta Chat's `Notifier`.
pub fn rates(
    concurrency: usize,
    targets: usize,
    paths: &[(&str, &[Rate])],
    enqueue_us: f64,
    enqueue_deltachat_us: f64,
) {
    println!(
        "\npushes (Web Push) and notifications (Delta Chat) per second to the local receiver \
         ({concurrency} in flight, {targets} subscriptions or tokens of one user; CPU: µs per \
         push or notification, coid's threads and the receiver's thread; connections: TCP \
         connections the receiver accepted per run)"
    );
    println!(
        "path                                 sent  runs    sent/s  (min–max)      coid CPU  \
         receiver CPU  connections"
    );
    for (path, runs) in paths {
        let per_second: Vec<f64> = runs.iter().map(Rate::per_second).collect();
        let cpu = |of: fn(&Rate) -> Duration| {
            median(
                runs.iter()
                    .map(|r| of(r).as_secs_f64() * 1e6 / r.pushes as f64)
                    .collect(),
            )
        };
        println!(
            "{path:<33} {:>7}  {:>4}  {:>8.0}  {:<13}  {:>8.0}  {:>12.0}  {:>11.0}",
            runs.first().map_or(0, |r| r.pushes),
            runs.len(),
            median(per_second.clone()),
            range(&per_second),
            cpu(|r| r.cpu.rest),
            cpu(|r| r.cpu.receiver),
            median(runs.iter().map(|r| r.connections as f64).collect()),
        );
    }
    println!(
        "queueing one delivered message's {targets} pushes (pushes_for + enqueue, \
         SQLite): {enqueue_us:.0} µs; its {targets} notifications (notifications_for + \
         enqueue): {enqueue_deltachat_us:.0} µs"
    );
}

/// The stack runs: every run of each mode, then each measured run's ratio to the
/// push-off runs either side of it, by round.
pub fn mail(mail: &MailRounds) {
    let runs_of =
        |slot: Slot| -> Vec<&Outcome> { mail.of(slot).into_iter().map(|(o, _)| o).collect() };
    println!(
        "\nmail throughput, Postfix → coid → Dovecot, {SESSIONS} LMTP sessions, chats of {} KB \
         to one user (web push: 2 devices, each chat pushes to both; delta chat: {TOKENS} \
         device tokens, each chat notifies both; off: the push-off runs between the others)",
        CHAT_SIZE / 1024
    );
    println!(
        "push        msgs    runs  submit s  total s   msgs/s  (min–max)    pushes  push drain s  \
         coid CPU µs/msg  stand-in CPU µs/msg  host CPU µs/msg  host idle"
    );
    let rows = [
        (Mode::Off, mail.offs.iter().collect::<Vec<_>>()),
        (Mode::WebPush, runs_of(Slot::Push(Mode::WebPush))),
        (Mode::DeltaChat, runs_of(Slot::Push(Mode::DeltaChat))),
    ];
    for (mode, runs) in &rows {
        mode_row(*mode, runs);
    }
    for (slot, what) in [
        (Slot::Push(Mode::WebPush), "web push on/off"),
        (Slot::Push(Mode::DeltaChat), "delta chat on/off"),
        (
            Slot::Control,
            "control, push off/off (the same code: the rounds' own noise)",
        ),
    ] {
        let (middle, per_round) = ratios(mail, slot);
        let per_round: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "ratio {what}, each run against the push-off runs either side: median {middle:.2}; \
             per round: {}",
            per_round.join(" ")
        );
    }
    for (mode, runs) in &rows {
        println!(
            "coid CPU by thread, {} (µs/msg, medians): {}",
            mode.name(),
            by_thread(runs)
        );
    }
    let control = runs_of(Slot::Control);
    println!(
        "control runs: {:.1} msgs/s, {:.0} µs/msg coid CPU (medians)",
        median(control.iter().map(|o| o.rate()).collect()),
        median(
            control
                .iter()
                .map(|o| o.coid_cpu.as_secs_f64() * 1e6 / o.messages as f64)
                .collect()
        )
    );

    println!(
        "\ndelivery-to-push latency while mail flows (ms; coid's `delivered` log line → push \
         or notification received; delta chat: the n-th notification of a token against the \
         n-th delivery)"
    );
    println!("push        pushes     p50     p90     p95     p99     max  per round p50/p99");
    for mode in [Mode::WebPush, Mode::DeltaChat] {
        let on = runs_of(Slot::Push(mode));
        let all: Vec<f64> = on
            .iter()
            .flat_map(|o| o.latencies.iter().copied())
            .collect();
        let rounds: Vec<String> = on
            .iter()
            .map(|o| {
                format!(
                    "{:.1}/{:.1}",
                    quantile(&o.latencies, 0.5),
                    quantile(&o.latencies, 0.99)
                )
            })
            .collect();
        println!(
            "{:<10}  {:>6}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.1}  {}",
            mode.name(),
            all.len(),
            quantile(&all, 0.5),
            quantile(&all, 0.9),
            quantile(&all, 0.95),
            quantile(&all, 0.99),
            quantile(&all, 1.0),
            rounds.join("  ")
        );
    }
}

/// One mode's row of the mail table: its runs' medians, with the range of their rates.
fn mode_row(mode: Mode, runs: &[&Outcome]) {
    let rates: Vec<f64> = runs.iter().map(|o| o.rate()).collect();
    let secs = |of: fn(&Outcome) -> Option<Duration>| {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|o| of(o))
            .map(|d| d.as_secs_f64())
            .collect();
        if values.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2}", median(values))
        }
    };
    let per_message = |of: fn(&Outcome) -> Duration| {
        median(
            runs.iter()
                .map(|o| of(o).as_secs_f64() * 1e6 / o.messages as f64)
                .collect(),
        )
    };
    let idle = median(runs.iter().map(|o| o.host.idle_share()).collect());
    println!(
        "{:<10}  {:>4}  {:>6}  {:>8}  {:>7}  {:>7.1}  {:<11}  {:>6}  {:>12}  {:>15.0}  {:>19.0}  \
         {:>15.0}  {:>8.0}%",
        mode.name(),
        runs.first().map_or(0, |o| o.messages),
        runs.len(),
        secs(|o| Some(o.injected)),
        secs(|o| Some(o.elapsed)),
        median(rates.clone()),
        range(&rates),
        runs.iter().map(|o| o.latencies.len()).sum::<usize>(),
        secs(|o| o.drained),
        per_message(|o| o.coid_cpu),
        per_message(|o| o.receiver_cpu),
        per_message(|o| o.host.busy),
        idle * 100.0,
    );
}

/// coid's CPU per message by thread name, the median of `runs`, busiest first.
fn by_thread(runs: &[&Outcome]) -> String {
    let mut names: Vec<&String> = runs.iter().flat_map(|o| o.coid_threads.keys()).collect();
    names.sort();
    names.dedup();
    let mut per_name: Vec<(f64, &String)> = names
        .into_iter()
        .map(|name| {
            let per_message = runs.iter().map(|o| {
                let used = o.coid_threads.get(name).copied().unwrap_or_default();
                used.as_secs_f64() * 1e6 / o.messages as f64
            });
            (median(per_message.collect()), name)
        })
        .filter(|(used, _)| *used > 0.0)
        .collect();
    per_name.sort_by(|a, b| b.0.total_cmp(&a.0));
    let parts: Vec<String> = per_name
        .iter()
        .map(|(used, name)| format!("{name} {used:.0}"))
        .collect();
    parts.join(", ")
}

/// The ratios of `slot`'s runs to the push-off runs either side of each: their
/// median, and each round's.
fn ratios(mail: &MailRounds, slot: Slot) -> (f64, Vec<f64>) {
    let per_round: Vec<f64> = mail.of(slot).into_iter().map(|(_, r)| r).collect();
    (median(per_round.clone()), per_round)
}

/// One line per stack run, on stderr while the bench runs.
pub fn progress(round: usize, o: &Outcome) -> String {
    format!(
        "[bench] round {round} push {:<10}: {} msgs in {:.2} s, {:.1} msgs/s, coid CPU {:.0} µs/msg, \
         host CPU {:.0} µs/msg ({:.0}% idle), {} pushes, p50 {:.1} ms",
        o.push.name(),
        o.messages,
        o.elapsed.as_secs_f64(),
        o.rate(),
        o.coid_cpu.as_secs_f64() * 1e6 / o.messages as f64,
        o.host.busy.as_secs_f64() * 1e6 / o.messages as f64,
        o.host.idle_share() * 100.0,
        o.latencies.len(),
        quantile(&o.latencies, 0.5),
    )
}

/// What the summary table is made of (issue 14's table: where push stands against
/// its goals).
pub struct Summary<'a> {
    pub cost: &'a Cost,
    pub sender: &'a [Rate],
    /// The sender on one thread, as the worker runs.
    pub sender_one: &'a [Rate],
    pub worker: &'a [Rate],
    pub notifier: &'a [Rate],
    pub notifier_one: &'a [Rate],
    pub deltachat: &'a [Rate],
    pub enqueue_us: f64,
    pub enqueue_deltachat_us: f64,
    pub mail: &'a MailRounds,
}

/// Issue 14's table: each figure of this run against its goal.
pub fn summary(s: &Summary<'_>) {
    let rate = |runs: &[Rate]| median(runs.iter().map(Rate::per_second).collect());
    let (sender, worker) = (rate(s.sender), rate(s.worker));
    let (notifier, deltachat) = (rate(s.notifier), rate(s.deltachat));
    let (sender_one, notifier_one) = (rate(s.sender_one), rate(s.notifier_one));
    let p99 = |mode: Mode| {
        let all: Vec<f64> = s
            .mail
            .of(Slot::Push(mode))
            .iter()
            .flat_map(|(o, _)| o.latencies.iter().copied())
            .collect();
        quantile(&all, 0.99)
    };
    let rounds = |slot: Slot| {
        let (middle, per_round) = ratios(s.mail, slot);
        let (lowest, highest) = (quantile(&per_round, 0.0), quantile(&per_round, 1.0));
        format!("{middle:.2} ({lowest:.2}–{highest:.2})")
    };
    println!("\nissue 14: where push stands (this run)");
    println!("{:<58} {:>22}  goal", "what", "now");
    let rows = [
        (
            format!(
                "Sender::send alone, {} in flight",
                coid::config::PushConfig::default().concurrency
            ),
            format!("{sender:.0} pushes/s"),
            "≥ 4000/s",
        ),
        (
            "Sender::send alone on one thread (the worker's shape)".to_owned(),
            format!("{sender_one:.0} pushes/s"),
            "",
        ),
        (
            "queue → worker → sender (× alone, all CPUs | one thread)".to_owned(),
            format!(
                "{worker:.0}/s ({:.2}× | {:.2}×)",
                worker / sender,
                worker / sender_one
            ),
            "≥ 0.9× the sender alone",
        ),
        (
            format!(
                "CPU per push (encrypt {:.0} + cached sign {:.1})",
                s.cost.encrypt, s.cost.sign_cached
            ),
            format!("{:.0} µs", s.cost.encrypt_and_sign),
            "≤ 400 µs",
        ),
        (
            "queueing one message's 8 pushes (SQLite)".to_owned(),
            format!("{:.0} µs", s.enqueue_us),
            "≤ 100 µs",
        ),
        (
            "mail throughput web push on/off (rounds)".to_owned(),
            rounds(Slot::Push(Mode::WebPush)),
            "≥ 0.95 in every round",
        ),
        (
            "control: push off/off, the rounds' noise (rounds)".to_owned(),
            rounds(Slot::Control),
            "",
        ),
        (
            "delivery → push p99 while mail flows".to_owned(),
            format!("{:.0} ms", p99(Mode::WebPush)),
            "≤ 50 ms",
        ),
        (
            "Notifier::notify alone".to_owned(),
            format!("{notifier:.0}/s"),
            "several thousand/s",
        ),
        (
            "queue → worker → notifier (× alone, all CPUs | one thread)".to_owned(),
            format!(
                "{deltachat:.0}/s ({:.2}× | {:.2}×)",
                deltachat / notifier,
                deltachat / notifier_one
            ),
            "several thousand/s",
        ),
        (
            "queueing one message's 8 notifications".to_owned(),
            format!("{:.0} µs", s.enqueue_deltachat_us),
            "≤ 100 µs",
        ),
        (
            "mail throughput delta chat on/off (rounds)".to_owned(),
            rounds(Slot::Push(Mode::DeltaChat)),
            "≥ 0.95 in every round",
        ),
        (
            "delivery → notification p99".to_owned(),
            format!("{:.0} ms", p99(Mode::DeltaChat)),
            "≤ 50 ms",
        ),
    ];
    for (what, now, goal) in rows {
        println!("{what:<58} {now:>22}  {goal}");
    }
}
