//! The push worker of `coid serve`: takes due pushes of every kind from the durable
//! queue, sends each with its kind's sender (Web Push: [`Sender`]; Delta Chat:
//! [`Notifier`]), at most `concurrency` at once, and has what each answer means
//! ([`super::retry`], by the kind's rules) carried out on the queue
//! ([`super::record`]). The outcomes of every send that finished since its last trip
//! to the store go there with the next claim and the next-due check, and in `coid
//! serve` so do the pushes of the messages delivered since ([`PushHook::hand_to_worker`]),
//! queued and claimed there: one blocking hop and one transaction per round
//! (`Store::queue_settle_and_claim`), however many pushes finished or came. It wakes
//! when something is queued or handed over ([`PushQueue::wake`]), when a
//! send finishes, when the next retry is due, and at least every [`POLL`] (pushes
//! queued by another process, e.g. `coid deliver`). Every [`SWEEP`] it deletes
//! unvalidated subscriptions past their window, Delta Chat tokens not set again
//! within their lifetime, and pushes past their deadline.
//!
//! It keeps rows claimed ahead of those in flight (up to [`AHEAD`] × `concurrency`
//! in all), so a finished send is replaced at once rather than after the next trip to
//! the store, and goes to the store only when fewer than `concurrency` wait ahead:
//! one trip per batch of pushes, not one per finished push. A trip runs beside the
//! sends (at most one at a time): while it waits for the store, finished sends are
//! replaced from the rows claimed ahead. While pushes trickle in,
//! trips are at least [`LINGER`] apart ([`super::rounds::linger`]), so several
//! messages' pushes and outcomes share a transaction; a 429
//! sends the rows it holds back, of that endpoint or kind, back to the queue.
//!
//! A claimed row is leased (its `not_before` moves past the longest a send may take,
//! and a row claimed ahead waits at most `AHEAD_WAIT` of the lease's slack), so a
//! push whose result was never recorded (coid killed) is sent again later: at least
//! once, never lost. On shutdown, pushes in flight get to finish, and rows claimed
//! ahead are due again at once.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::delivered::{Handed, PushHook};
use super::deltachat::notifier::{Notifier, NotifyError};
use super::outcome::{Attempt, Backoff};
use super::queue::{PushQueue, blocking};
use super::record::{log, settlement};
use super::retry::{self, Action, Row, Rules};
use super::rounds::{
    LastTrip, SendTime, claim_room, count, finished, hold_back, linger, trip_due, until,
};
use super::webpush::payload::Payload;
use super::webpush::sealers::Sealers;
use super::webpush::sender::{Options, SendError, Sender, Target, folder_topic};
use crate::config::{DeltaChatConfig, PushConfig};
use crate::metrics::{DeltaChatOutcome, PushOutcome, Recorder};
use crate::store::{
    Claim, Claimed, Destination, Kinds, PushKind, QueuedPush, Settle, StoreError, unix_now_ms,
};

/// Longest sleep without a wake-up.
pub const POLL: Duration = Duration::from_secs(5);
/// A lease lasts the send limit and this much more.
const LEASE_SLACK: Duration = Duration::from_secs(5);
/// Longest a row claimed ahead may wait for a free slot; then it goes back to the
/// queue (and is claimed again with a fresh lease), so every send starts with at
/// least the send limit and half the slack of its lease left.
pub(super) const AHEAD_WAIT: Duration = Duration::from_millis(2_500);
/// Rows in flight and claimed ahead together: at most this many times `concurrency`.
/// A trip claims when fewer than `concurrency` wait ahead, so under load each trip
/// settles and claims about `(AHEAD - 1) × concurrency` rows at once. Measured
/// (`benches/push`, worker only, 6 runs each, 8 in flight): 4 → 8 took Web Push from
/// 13.5–14.7k to 14.1–15.5k/s and Delta Chat from 30–34k to 38–40k/s, with less CPU
/// per push; 16 gained no more for Web Push and 5% for Delta Chat; claiming earlier
/// (at 4 × `concurrency` ahead, so a trip overlaps the sends) gained nothing over 8.
/// With a slow push service fewer are claimed ([`super::rounds::claim_room`]), so
/// that rows ahead do not wait past [`AHEAD_WAIT`] and go back unsent.
pub(super) const AHEAD: usize = 8;
/// While pushes trickle in, trips to the store are at least this far apart
/// ([`super::rounds::linger`]): a push waits at most this much longer, and the
/// pushes of several messages share one transaction.
pub const LINGER: Duration = Duration::from_millis(10);
/// A Web Push send is encrypted beside the runtime's thread ([`WebPushSide::sealers`])
/// when at least this many claimed rows wait behind it: a backlog. Pushes that
/// trickle in (a few per round) are encrypted on the runtime's thread, where a hop
/// to another thread and back would cost more than the encryption.
const ASIDE_BEHIND: usize = 8;
/// How often expired subscriptions, tokens and overdue pushes are deleted.
pub const SWEEP: Duration = Duration::from_secs(60);

/// How Web Push rows are sent.
struct WebPushSide {
    sender: Sender,
    options: Options,
    rules: Rules,
    /// Send a `Topic` per folder (`[push] coalesce`).
    coalesce: bool,
    /// The threads that encrypt beside the runtime's thread in a backlog (`[push]
    /// worker_threads` - 1 of them); `None`: all on it.
    sealers: Option<Sealers>,
}

/// How Delta Chat rows are sent.
struct DeltaChatSide {
    notifier: Notifier,
    rules: Rules,
}

/// Why a row could not even be tried.
enum Unsent {
    /// The kind is off in this process: the row waits (another node, or a restart
    /// with it on, sends it).
    Off,
    /// The stored target does not decode.
    Undecodable,
    /// The endpoint breaks the endpoint rules.
    Refused(String),
    /// The request could not be built.
    Build(String),
}

/// A trip to the store under way ([`Worker::trip`]).
type Trip = Pin<Box<dyn Future<Output = Claimed> + Send>>;

/// What the trip under way claimed, and the room it claimed for; pending while no
/// trip is under way.
async fn back(trip: &mut Option<(Trip, usize)>) -> (Claimed, usize) {
    match trip {
        Some((pending, room)) => (pending.as_mut().await, *room),
        None => std::future::pending().await,
    }
}

/// The push worker.
pub struct Worker {
    queue: PushQueue,
    /// The hook of this process, whose messages' pushes its rounds queue.
    hook: Option<PushHook>,
    webpush: Option<WebPushSide>,
    deltachat: Option<DeltaChatSide>,
    concurrency: usize,
    /// Longest one send may take; the lease is a little longer.
    send_limit: Duration,
    /// Delta Chat tokens not set again within this are deleted by the sweep.
    token_lifetime: Duration,
    /// How long sends took lately, for how many rows to claim ahead.
    send_time: SendTime,
}

impl Worker {
    /// A worker over `queue` with `[push]`'s concurrency and no sender yet; Delta
    /// Chat tokens older than `token_lifetime` are swept.
    pub fn new(queue: PushQueue, config: &PushConfig, token_lifetime: Duration) -> Worker {
        Worker {
            queue,
            hook: None,
            webpush: None,
            deltachat: None,
            concurrency: config.concurrency.max(1),
            send_limit: Duration::from_secs(1),
            token_lifetime,
            send_time: SendTime::default(),
        }
    }

    /// Queues the pushes of the messages `hook` is given with its own rounds, while
    /// it runs ([`PushHook::hand_to_worker`]).
    pub fn with_hook(mut self, hook: PushHook) -> Worker {
        self.hook = Some(hook);
        self
    }

    /// Sends Web Push rows with `sender`, by `[push]`'s rules.
    pub fn with_webpush(mut self, sender: Sender, config: &PushConfig) -> Worker {
        self.webpush = Some(WebPushSide {
            sender,
            options: Options::from_config(config),
            rules: Rules {
                backoff: Backoff::doubling(Duration::from_secs(config.backoff_max_secs)),
                rate_limit: Duration::from_secs(config.rate_limit_secs),
            },
            coalesce: config.coalesce,
            sealers: start_sealers(config, self.queue.recorder()),
        });
        self.widen_send_limit(config.timeout_secs);
        self
    }

    /// Sends Delta Chat rows with `notifier`, by `[deltachat]`'s rules.
    pub fn with_deltachat(mut self, notifier: Notifier, config: &DeltaChatConfig) -> Worker {
        self.deltachat = Some(DeltaChatSide {
            notifier,
            rules: Rules {
                backoff: Backoff {
                    first: Duration::from_secs(config.backoff_first_secs),
                    factor: 8,
                    max: Duration::from_secs(config.backoff_max_secs),
                },
                rate_limit: Duration::from_secs(config.rate_limit_secs),
            },
        });
        self.widen_send_limit(config.timeout_secs);
        self
    }

    /// The sender's own timeout covers connect and answer; DNS comes on top.
    fn widen_send_limit(&mut self, timeout_secs: u64) {
        let limit = Duration::from_secs(timeout_secs.saturating_mul(2));
        self.send_limit = self.send_limit.max(limit);
    }

    /// Runs until `stop` turns true, then lets pushes in flight finish (at most the
    /// send limit) and records their outcomes.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let send_limit = self.send_limit;
        let this = Arc::new(self);
        let mut inflight: JoinSet<Vec<Settle>> = JoinSet::new();
        let mut ready = VecDeque::new();
        let mut settled = Vec::new();
        let mut last_sweep: Option<tokio::time::Instant> = None;
        let mut last_trip: Option<LastTrip> = None;
        // The trip to the store under way, if any (at most one), and the room it
        // claims for; sends keep starting from `ready` while it runs.
        let mut trip: Option<(Trip, usize)> = None;
        // Set when a trip just came back and nothing woke the loop while it ran:
        // when its next row is due.
        let mut tripped: Option<Option<i64>> = None;
        // Something woke the loop while a trip ran (a wake-up, a send finished): it
        // is looked at once the trip is back, not slept through.
        let mut stirred = false;
        this.queue
            .recorder()
            .watch_push_queue(this.queue.store().clone());
        this.queue.watch_other_writers();
        if let Some(hook) = &this.hook {
            hook.hand_to_worker(true);
        }
        tracing::info!("push worker running");
        while !*stop.borrow() {
            if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP) {
                this.sweep().await;
                last_sweep = Some(tokio::time::Instant::now());
            }
            while let Some(done) = inflight.try_join_next() {
                finished(done, &mut settled);
            }
            hold_back(&mut ready, &mut settled);
            this.start(&mut inflight, &mut ready, &mut settled);
            let mut wait = POLL;
            if let Some(next_due) = tripped.take() {
                // Right after a trip, if nothing happened while it ran: the next
                // waits for something to happen (a row due, a send finished, a
                // wake-up), as a trip that found little would otherwise be followed
                // by another at once.
                if inflight.len() < this.concurrency {
                    wait = until(next_due);
                }
            } else if trip.is_none() {
                let held = inflight.len() + ready.len();
                let room = claim_room(this.concurrency, held, this.send_time.average());
                let handed = this.hook.as_ref().is_some_and(PushHook::waiting);
                let due = handed
                    || trip_due(this.concurrency, ready.len(), inflight.len(), settled.len());
                if due {
                    match linger(last_trip, this.concurrency, settled.len(), Instant::now()) {
                        Some(left) => wait = left,
                        None => {
                            let outcomes = std::mem::take(&mut settled);
                            trip = Some((Box::pin(Arc::clone(&this).trip(outcomes, room)), room));
                        }
                    }
                }
            }
            let tripping = trip.is_some();
            tokio::select! {
                () = this.queue.notify().notified() => stirred |= tripping,
                () = tokio::time::sleep(wait) => {}
                Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                    finished(done, &mut settled);
                    stirred |= tripping;
                }
                (claimed, room) = back(&mut trip), if tripping => {
                    trip = None;
                    let at = Instant::now();
                    last_trip = Some(LastTrip {
                        at,
                        full: room > 0 && claimed.pushes.len() >= room,
                    });
                    ready.extend(claimed.pushes.into_iter().map(|push| (at, push)));
                    tripped = (!std::mem::take(&mut stirred)).then_some(claimed.next_due);
                }
                _ = stop.changed() => {}
            }
        }
        // From here on the hook queues by itself, what waits included: messages
        // delivered while the sends in flight finish do not wait for them.
        if let Some(hook) = &this.hook {
            hook.hand_to_worker(false);
        }
        // A trip under way finishes; what it claimed goes back below.
        if let Some((pending, _)) = trip.take() {
            let claimed = pending.await;
            ready.extend(
                claimed
                    .pushes
                    .into_iter()
                    .map(|push| (Instant::now(), push)),
            );
        }
        // Claimed but not started: due again at once, for the next start.
        let now = unix_now_ms();
        settled.extend(ready.drain(..).map(|(_, push)| Settle::Retry {
            seq: push.seq,
            attempts: push.attempts,
            not_before: now,
            payload: None,
        }));
        let drain = async {
            while let Some(done) = inflight.join_next().await {
                finished(done, &mut settled);
            }
        };
        if tokio::time::timeout(send_limit, drain).await.is_err() {
            tracing::warn!("push worker: pushes still in flight at shutdown are retried later");
        }
        if !settled.is_empty() {
            Arc::clone(&this).trip(settled, 0).await;
        }
        tracing::info!("push worker stopped");
    }

    /// Starts sends from `ready` while fewer than `concurrency` are in flight; a row
    /// that waited past [`AHEAD_WAIT`] goes back to the queue instead.
    fn start(
        self: &Arc<Self>,
        inflight: &mut JoinSet<Vec<Settle>>,
        ready: &mut VecDeque<(Instant, QueuedPush)>,
        settled: &mut Vec<Settle>,
    ) {
        while inflight.len() < self.concurrency {
            let Some((at, push)) = ready.pop_front() else {
                return;
            };
            if at.elapsed() > AHEAD_WAIT {
                settled.push(Settle::Retry {
                    seq: push.seq,
                    attempts: push.attempts,
                    not_before: unix_now_ms(),
                    payload: None,
                });
                continue;
            }
            let aside = ready.len() >= ASIDE_BEHIND;
            inflight.spawn(Arc::clone(self).send_one(push, aside));
        }
    }

    /// Which kinds this worker sends: it claims only those, so a kind that is off
    /// here waits in the queue (until its deadline) instead of being dropped.
    fn kinds(&self) -> Kinds {
        Kinds {
            webpush: self.webpush.is_some(),
            deltachat: self.deltachat.is_some(),
        }
    }

    /// One trip to the store: the pushes of the messages the hook handed over, the
    /// outcomes since the last one, up to `room` due rows leased (new ones among
    /// them), and when the next row is due, in one blocking hop and one transaction
    /// (SQLite). If it fails, the outcomes' rows stay leased and are sent again after
    /// the lease (as if coid had died before recording them), and the handed
    /// messages go back to the hook, which queues them by itself.
    async fn trip(self: Arc<Self>, settled: Vec<Settle>, room: usize) -> Claimed {
        let queue = self.queue.clone();
        let lease = i64::try_from(self.send_limit.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(LEASE_SLACK.as_millis() as i64);
        let kinds = self.kinds();
        let outcomes = settled.len();
        let hook = self.hook.clone();
        let handed = hook.as_ref().map(PushHook::take).unwrap_or_default();
        let joined = tokio::task::spawn_blocking(move || {
            let now = unix_now_ms();
            let new = match &hook {
                Some(hook) if !handed.is_empty() => hook.pushes_of_handed(&handed, now),
                _ => Vec::new(),
            };
            let claim = Claim {
                now,
                lease_until: now.saturating_add(lease),
                limit: room,
                kinds,
            };
            let store = queue.store();
            let result = store.queue_settle_and_claim(&new, queue.max_queue(), &settled, claim);
            if let Ok((taken, _)) = &result {
                queue.count_dropped(&new, *taken);
            }
            (handed, result)
        })
        .await;
        // A panic in the round (a bug) loses what it held, and says so.
        let (handed, result) = joined
            .unwrap_or_else(|join| (Handed::default(), Err(StoreError::Worker(join.to_string()))));
        match result {
            Ok((_, claimed)) => claimed,
            Err(err) => {
                tracing::error!(
                    error = %err,
                    outcomes,
                    messages = handed.len(),
                    "push queue: cannot queue pushes, record results or claim; results are retried after their lease, pushes queued again"
                );
                if let Some(hook) = &self.hook {
                    hook.requeue(handed);
                }
                Claimed {
                    pushes: Vec::new(),
                    next_due: None,
                }
            }
        }
    }

    async fn sweep(&self) {
        let queue = self.queue.clone();
        let lifetime = i64::try_from(self.token_lifetime.as_secs()).unwrap_or(i64::MAX);
        let result = blocking(move || {
            let now = unix_now_ms();
            let expired = queue.expire_subscriptions(None, now)?;
            let tokens = queue
                .store()
                .expire_tokens((now / 1000).saturating_sub(lifetime))?;
            let overdue = queue.store().drop_overdue_pushes(now)?;
            Ok((expired, tokens, overdue))
        })
        .await;
        match result {
            Ok((0, 0, (0, 0))) => {}
            Ok((expired, tokens, (overdue, overdue_deltachat))) => {
                let recorder = self.queue.recorder();
                recorder.push_outcomes(PushOutcome::Expired, overdue);
                recorder.deltachat_outcomes(DeltaChatOutcome::Expired, overdue_deltachat);
                tracing::info!(
                    expired,
                    tokens,
                    overdue,
                    overdue_deltachat,
                    "push queue swept"
                );
            }
            Err(err) => tracing::error!(error = %err, "push queue: sweep failed"),
        }
    }

    /// Sends one push (encrypted beside the runtime's thread if `aside` and this
    /// worker may); returns what its answer does to the queue.
    async fn send_one(self: Arc<Self>, push: QueuedPush, aside: bool) -> Vec<Settle> {
        let began = std::time::Instant::now();
        let sent = tokio::time::timeout(self.send_limit, self.attempt(&push, aside)).await;
        self.send_time.record(began.elapsed());
        let attempt = match sent {
            Ok(Ok(attempt)) => attempt,
            Ok(Err(unsent)) => return self.unsent(&push, unsent),
            Err(_) => Attempt::unanswered("timed out".to_owned()),
        };
        let Some(rules) = self.rules(push.kind()) else {
            return self.unsent(&push, Unsent::Off);
        };
        let row = Row {
            attempts: push.attempts,
            deadline: push.deadline,
            with_content: push.with_content,
        };
        let action = retry::decide(attempt.outcome, row, unix_now_ms(), rules);
        count(self.queue.recorder(), push.kind(), attempt.outcome);
        log(&push, attempt.outcome, &attempt.detail, action);
        settlement(&push, action)
    }

    fn rules(&self, kind: PushKind) -> Option<Rules> {
        match kind {
            PushKind::WebPush => self.webpush.as_ref().map(|w| w.rules),
            PushKind::DeltaChat => self.deltachat.as_ref().map(|d| d.rules),
        }
    }

    /// One try with the row's kind's sender.
    async fn attempt(&self, push: &QueuedPush, aside: bool) -> Result<Attempt, Unsent> {
        match &push.to {
            Destination::WebPush {
                endpoint,
                p256dh,
                auth,
            } => {
                let side = self.webpush.as_ref().ok_or(Unsent::Off)?;
                let target = Target::decode(endpoint, p256dh, auth).ok_or(Unsent::Undecodable)?;
                let options = Options {
                    validation: push.validation,
                    topic: (side.coalesce && !push.validation)
                        .then(|| Payload::folder_of(&push.payload))
                        .flatten()
                        .map(|folder| folder_topic(&folder)),
                    ..side.options.clone()
                };
                let sealers = side.sealers.as_ref().filter(|_| aside);
                let sent =
                    side.sender
                        .send_with(&target, push.payload.as_bytes(), &options, sealers);
                sent.await.map_err(|err| match err {
                    SendError::Refused(refused) => Unsent::Refused(refused.to_string()),
                    SendError::Build(why) => Unsent::Build(why),
                })
            }
            Destination::DeltaChat { token } => {
                let side = self.deltachat.as_ref().ok_or(Unsent::Off)?;
                side.notifier.notify(token).await.map_err(|err| match err {
                    NotifyError::Refused(refused) => Unsent::Refused(refused.to_string()),
                    NotifyError::Build(why) => Unsent::Build(why),
                })
            }
        }
    }

    /// A row that could not be tried is dropped, and said so.
    fn unsent(&self, push: &QueuedPush, unsent: Unsent) -> Vec<Settle> {
        let (user, target, kind) = (&push.username, &push.target, push.kind());
        let (why, webpush, deltachat) = match &unsent {
            Unsent::Off => (
                "its kind of push is off".to_owned(),
                PushOutcome::BuildFailed,
                DeltaChatOutcome::Rejected,
            ),
            Unsent::Undecodable => (
                "the stored subscription does not decode".to_owned(),
                PushOutcome::Undecodable,
                DeltaChatOutcome::Rejected,
            ),
            Unsent::Refused(refused) => (
                format!("refused by the endpoint rules: {refused}"),
                PushOutcome::EndpointRefused,
                DeltaChatOutcome::EndpointRefused,
            ),
            Unsent::Build(build) => (
                format!("cannot build the request: {build}"),
                PushOutcome::BuildFailed,
                DeltaChatOutcome::Rejected,
            ),
        };
        tracing::warn!(user, target, kind = ?kind, why, "push dropped unsent");
        match kind {
            PushKind::WebPush => self.queue.recorder().push_outcome(webpush),
            PushKind::DeltaChat => self.queue.recorder().deltachat_outcome(deltachat),
        }
        settlement(push, Action::Done)
    }
}

/// `[push] worker_threads` - 1 sealing threads, at `[push] worker_nice`; none if that
/// is 0 or they cannot be started (said so: every push is encrypted on the
/// runtime's thread).
fn start_sealers(config: &PushConfig, recorder: &Recorder) -> Option<Sealers> {
    let threads = config.worker_threads.checked_sub(1).filter(|n| *n > 0)?;
    Sealers::start(threads, config.worker_nice, recorder)
        .inspect_err(|err| {
            tracing::warn!(error = %err, "cannot start the push encryption threads; the push worker's thread encrypts alone");
        })
        .ok()
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "worker_trip_tests.rs"]
mod trip_tests;
