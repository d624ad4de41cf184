//! One delivery run: a fresh store ([`crate::store`]: Dovecot, or `smtp-sink -L`), for
//! the proxied path a fresh coid in front of it, and a load that delivers to the
//! store (direct) or to coid (proxied). The load is either a fresh Postfix, or
//! Postfix's `smtp-source -L -d` speaking LMTP straight to the next hop ([`Load`]).
//! Postfix may run as many LMTP sessions to the next hop as the scenario says
//! (`lmtp_destination_concurrency_limit`, reached at once). Plain emails to one user
//! are submitted by SMTP either all at once by [`INJECTORS`] clients (throughput) or
//! one at a time (latency without queueing); the run ends when the maillog shows N
//! `status=sent` lines. A Postfix run only counts if every message was delivered
//! exactly once: N sent lines, no other status, an empty queue; an `smtp-source` run
//! only if it exited 0 (it stops at the first reply that is not 2xx). Either way the
//! store must hold N messages: N in the user's INBOX according to `doveadm`, or N on
//! the sink's counter. The push bench drives its runs with the same parts.

use std::time::{Duration, Instant};

use crate::common::coid::{Coid, CoidOpts};
use crate::common::{
    Dovecot, LmtpTarget, MessageBuilder, Postfix, PostfixOpts, send_smtp, tail_file,
};
use crate::postfix_log::{Delays, LogTail};
use crate::relay::Relay;
use crate::store::{Running, Store, postfix_transport, source_addr};

/// Parallel SMTP clients submitting to Postfix; enough to keep a backlog in its queue.
pub const INJECTORS: usize = 4;
const RCPT: &str = "alice@example.org";
const MAIL_FROM: &str = "bench@example.net";

/// Where Postfix delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Postfix → Dovecot LMTP.
    Direct,
    /// Postfix → coid → Dovecot LMTP.
    Proxied,
    /// The client → a relay that does nothing ([`crate::relay`]) → the store.
    Relay,
}

impl Hop {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Hop::Direct => "direct",
            Hop::Proxied => "proxied",
            Hop::Relay => "relay",
        }
    }
}

/// How mail is submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// [`INJECTORS`] clients submit as fast as Postfix takes mail: a backlog builds up
    /// and the next hop is kept busy (throughput).
    Saturated,
    /// One message in flight: submit, wait for delivery, repeat (latency without
    /// queueing).
    OneAtATime,
    /// No Postfix: `smtp-source -L -d -s <sessions>` speaks LMTP straight to the next
    /// hop, each session sending its share back to back on one connection
    /// (throughput of the next hop alone).
    Source,
}

/// What one run does.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub store: Store,
    pub hop: Hop,
    pub load: Load,
    /// Parallel LMTP sessions Postfix opens to the next hop.
    pub sessions: usize,
    /// Bytes per message (headers included, approximately).
    pub size: usize,
    /// Messages to deliver.
    pub messages: usize,
}

/// What one valid run measured.
pub struct Outcome {
    pub scenario: Scenario,
    /// First submission → last `status=sent` seen in the maillog.
    pub elapsed: Duration,
    /// First submission → last submission accepted.
    pub injected: Duration,
    /// Per delivered message (none for [`Load::Source`]).
    pub delays: Vec<Delays>,
    /// LMTP connections the store served (see [`Running::connections_closed`]).
    pub store_connections: usize,
    /// coid's log lines at WARN or ERROR (proxied).
    pub coid_problems: Vec<String>,
}

impl Outcome {
    /// Delivered messages per second.
    pub fn rate(&self) -> f64 {
        self.scenario.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// coid delivering to Dovecot as the bench runs it (see [`coid_opts_to`]).
pub fn coid_opts(dovecot: &Dovecot) -> CoidOpts {
    let mut opts = coid_opts_to(&dovecot.lmtp_socket().display().to_string());
    opts.separator = dovecot.separator().to_owned();
    opts
}

/// coid as the bench runs it, its Dovecot backend speaking LMTP to `lmtp` (a socket
/// path or `host:port`): production log level, patient with the store.
pub fn coid_opts_to(lmtp: &str) -> CoidOpts {
    let mut opts = CoidOpts::dovecot(lmtp);
    opts.reply_timeout_secs = 300;
    opts.log_level = "info".into();
    opts
}

/// Runs one scenario; panics if the run is not valid.
pub fn run(scenario: Scenario) -> Outcome {
    settle_disk();
    let store = Running::start(scenario.store);
    let coid = (scenario.hop == Hop::Proxied).then(|| Coid::start(store.coid_opts()));
    let relay = (scenario.hop == Hop::Relay).then(|| Relay::start(store.next_hop(None)));
    let next_hop = match &relay {
        Some(relay) => relay.target(),
        None => store.next_hop(coid.as_ref()),
    };
    let what = format!("{scenario:?}");
    let (elapsed, injected, delays) = match scenario.load {
        Load::Source => {
            let elapsed = smtp_source(&next_hop, scenario);
            (elapsed, elapsed, Vec::new())
        }
        Load::Saturated | Load::OneAtATime => via_postfix(&next_hop, scenario),
    };
    let stored = store.stored(scenario.messages);
    assert_eq!(
        stored, scenario.messages,
        "{what}: the store does not hold exactly the delivered messages"
    );
    let coid_problems = coid.as_ref().map(problems).unwrap_or_default();
    // coid closes its pooled connections to the store when it stops, the relay its
    // connections.
    drop(coid);
    drop(relay);
    Outcome {
        scenario,
        elapsed,
        injected,
        delays,
        store_connections: store.connections_closed(),
        coid_problems,
    }
}

/// A fresh Postfix delivers to `next_hop` what the scenario submits: (first
/// submission → last `status=sent`, first → last submission, delays per message).
fn via_postfix(next_hop: &LmtpTarget, scenario: Scenario) -> (Duration, Duration, Vec<Delays>) {
    let transport = postfix_transport(next_hop);
    let postfix = Postfix::start(postfix_opts(&transport, scenario.sessions));
    let mut run = Run {
        scenario,
        postfix: &postfix,
        log: LogTail::from_end(postfix.log_path()),
        began: Instant::now(),
    };
    let injected = match scenario.load {
        Load::OneAtATime => run.one_at_a_time(),
        Load::Saturated | Load::Source => run.saturate(),
    };
    let elapsed = run.began.elapsed();
    let mut log = run.log;
    check_sent(
        &format!("{scenario:?}"),
        scenario.messages,
        &postfix,
        &mut log,
    );
    (elapsed, injected, log.sent)
}

/// `smtp-source -L -d` (Debian's `postfix` package) sends the scenario's messages
/// to `next_hop` over `sessions` LMTP sessions: a payload of `size` bytes after its
/// own few header lines (about 130 bytes), sender and recipient as the Postfix
/// runs use. Returns how long it ran; panics unless it exited 0 without a word on
/// stderr.
fn smtp_source(next_hop: &LmtpTarget, scenario: Scenario) -> Duration {
    let began = Instant::now();
    let out = std::process::Command::new("/usr/sbin/smtp-source")
        .args(["-L", "-d", "-f", MAIL_FROM, "-t", RCPT])
        .args(["-s", &scenario.sessions.to_string()])
        .args(["-m", &scenario.messages.to_string()])
        .args(["-l", &scenario.size.to_string()])
        .arg(source_addr(next_hop))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running smtp-source (Debian's postfix package): {e}"));
    let elapsed = began.elapsed();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{scenario:?}: smtp-source {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// coid's log lines at WARN or ERROR, but for the warning that it runs as root (the
/// harness runs every daemon as root).
fn problems(coid: &Coid) -> Vec<String> {
    coid.plain_log()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !l.contains("coid::daemon::privileges: running as root"))
        .map(str::to_owned)
        .collect()
}

/// Postfix delivering to `next_hop` over `sessions` parallel LMTP sessions, all of
/// them at once, and logging delays under 10 ms too.
pub fn postfix_opts(next_hop: &str, sessions: usize) -> PostfixOpts {
    let mut opts = PostfixOpts::new(next_hop);
    opts.extra_main_cf = format!(
        "lmtp_destination_concurrency_limit = {sessions}\n\
         lmtp_initial_destination_concurrency = {sessions}\n\
         delay_logging_resolution_limit = 6\n"
    );
    opts
}

/// Flushes dirty pages (`sync`), so the writeback of the previous run's mail and the
/// removal of its directories do not land in this run's time.
pub fn settle_disk() {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    assert!(synced, "`sync` failed");
}

/// A run in progress.
struct Run<'a> {
    scenario: Scenario,
    postfix: &'a Postfix,
    log: LogTail,
    began: Instant,
}

impl Run<'_> {
    /// [`INJECTORS`] clients submit everything while Postfix delivers; returns once
    /// all is delivered, with how long the submissions took.
    fn saturate(&mut self) -> Duration {
        let Scenario { size, messages, .. } = self.scenario;
        let port = self.postfix.smtp_port();
        let mut injection = Some(std::thread::spawn(move || {
            let filler = filler(size);
            inject(port, MAIL_FROM, messages, |i| message(i, &filler))
        }));
        let mut injected = None;
        while !self.delivered(messages) {
            // A refused submission ends the run at once rather than at the deadline.
            if injection.as_ref().is_some_and(|i| i.is_finished()) {
                injected = injection.take().map(join_injectors);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        injected
            .or_else(|| injection.map(join_injectors))
            .unwrap_or_default()
    }

    /// One client submits a message and waits until it is delivered, then the next.
    fn one_at_a_time(&mut self) -> Duration {
        let filler = filler(self.scenario.size);
        let port = self.postfix.smtp_port();
        for i in 0..self.scenario.messages {
            send_smtp(port, MAIL_FROM, &[RCPT], &message(i, &filler))
                .unwrap_or_else(|e| panic!("Postfix refused message {i}: {e}"));
            while !self.delivered(i + 1) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.began.elapsed()
    }

    /// Whether `n` messages are delivered; panics on a failed delivery or a timeout.
    fn delivered(&mut self, n: usize) -> bool {
        let what = format!("{:?}", self.scenario);
        let sent = poll_sent(
            &mut self.log,
            self.postfix,
            self.began,
            self.scenario.messages,
            &what,
        );
        sent >= n
    }
}

/// Reads the maillog and returns how many of the run's `messages` (submitted from
/// `began` on) were delivered so far; panics on a failed delivery or when the run
/// takes too long.
pub fn poll_sent(
    log: &mut LogTail,
    postfix: &Postfix,
    began: Instant,
    messages: usize,
    what: &str,
) -> usize {
    let sent = log.poll();
    assert!(
        log.failed.is_empty(),
        "{what}: not every delivery succeeded:\n{}",
        log.failed.join("\n")
    );
    let deadline = Duration::from_secs(120 + messages as u64);
    assert!(
        began.elapsed() < deadline,
        "{what}: {sent} of {messages} delivered after {deadline:?}\n{}",
        tail_file(&postfix.log_path(), 20)
    );
    sent
}

/// Exactly `messages` deliveries in the maillog, nothing else logged, nothing queued.
pub fn check_sent(what: &str, messages: usize, postfix: &Postfix, log: &mut LogTail) {
    postfix
        .wait_for_empty_queue(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    log.poll();
    assert!(
        log.sent.len() == messages && log.failed.is_empty(),
        "{what}: {} sent lines, other statuses: {:?}",
        log.sent.len(),
        log.failed
    );
}

/// Messages in the INBOX of the benchmark's recipient, from `doveadm mailbox status`.
pub fn inbox_count(dovecot: &Dovecot) -> usize {
    let status = dovecot.doveadm(&["mailbox", "status", "-u", RCPT, "messages", "INBOX"]);
    // "INBOX messages=N"
    status
        .split("messages=")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected doveadm mailbox status output {status:?}"))
}

fn join_injectors(handle: std::thread::JoinHandle<Duration>) -> Duration {
    handle
        .join()
        .expect("every submission was accepted by Postfix")
}

/// Submits messages `message(0..messages)` from `from` to the benchmark's recipient
/// with [`INJECTORS`] SMTP clients; returns how long that took.
pub fn inject(
    port: u16,
    from: &str,
    messages: usize,
    message: impl Fn(usize) -> Vec<u8> + Sync,
) -> Duration {
    let began = Instant::now();
    std::thread::scope(|scope| {
        for injector in 0..INJECTORS {
            let message = &message;
            scope.spawn(move || {
                for i in (injector..messages).step_by(INJECTORS) {
                    send_smtp(port, from, &[RCPT], &message(i))
                        .unwrap_or_else(|e| panic!("Postfix refused message {i}: {e}"));
                }
            });
        }
    });
    began.elapsed()
}

/// A plain email: the harness's headers, then `filler` as body.
pub fn message(i: usize, filler: &[u8]) -> Vec<u8> {
    let mut message = MessageBuilder::new()
        .subject(&format!("coid benchmark message {i}"))
        .body("")
        .build();
    message.extend_from_slice(filler);
    message
}

/// A text body (CRLF lines of 78 bytes) that makes a [`message`] about `size` bytes.
pub fn filler(size: usize) -> Vec<u8> {
    const LINE: &[u8] =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod temp\r\n";
    let headers = message(0, b"").len();
    let lines = size.saturating_sub(headers).div_ceil(LINE.len()).max(1);
    LINE.repeat(lines)
}
