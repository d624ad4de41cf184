//! Pushes for a delivered message, for each recipient the store accepted it for:
//! - Web Push (WebPush spec "Push Notifications"; coi-spec.md §3.6): one per validated
//!   subscription, if the subscription's msgtype wants it: `chat` wants messages
//!   stored with the `$Chat` keyword, `mail`/`email` the others, `all`/`any` both;
//! - Delta Chat: one notification per device token set within the token lifetime,
//!   unless the message's From is the recipient (their own message from another
//!   device, as a chatmail relay skips it), and with `[deltachat] notify = "chat"`
//!   only for chat messages.
//!
//! Read receipts (MDNs) never push; the pipeline does not even ask.
//!
//! Free for users without a push target: [`PushHook::after_delivery`] first asks an
//! in-memory set of the users that have any subscription or token
//! ([`TargetUsers`], kept current by a counter in the store that every write of
//! subscriptions and tokens moves, whoever makes it), and when none of the recipients
//! has one it returns at once, with no task, no blocking hop and no query. When the set
//! is not current it takes the path below, which reads it again.
//!
//! Never on the reply path: [`PushHook::after_delivery`] hands the work to one
//! blocking job and returns; the job waits [`GATHER`] and then queues every message
//! waiting when it looks, all of them in one transaction, until none waits. In
//! `coid serve` the push worker takes that work instead ([`PushHook::hand_to_worker`]):
//! its next round queues the waiting messages' pushes in the transaction that also
//! records its outcomes and claims, and claims them there, so a message's pushes cost
//! no transaction and no thread of their own. Whatever
//! goes wrong there is only logged, so mail never waits for push
//! work and no reply changes because of it. At most [`MAX_PENDING`] messages wait for
//! their pushes to be queued; past that (the state store is that far behind) a
//! message's pushes are dropped with a warning, so memory stays bounded.
//!
//! The payload has the folder the policy chose (in the store's hierarchy separator),
//! the outer headers' fields and, when it fits, the body; no UID/UIDVALIDITY
//! (Dovecot's LMTP reply does not tell them).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::deltachat::DeltaChatRules;
use super::queue::PushQueue;
use super::webpush::MAX_PLAINTEXT;
use super::webpush::payload::{Payload, Stored};
use super::webpush::subscription::MsgType;
use crate::classify::Class;
use crate::config::NotifyFor;
use crate::policy::Target;
use crate::store::{NewPush, PushKind, Store, StoreError, TargetUsers, dedupe_key, unix_now_ms};

/// Most messages whose pushes wait to be queued at once (each holds its header
/// section and at most [`MAX_PLAINTEXT`] bytes of body).
pub const MAX_PENDING: usize = 256;

/// How long a new blocking job waits before its first transaction: with mail
/// flowing, messages are delivered a few milliseconds apart, and each transaction
/// writes about ten pages to SQLite's WAL whatever it holds (`benches/push`), so
/// messages that share one cost far less than one each. A push waits that much
/// longer, and a crash right after a `250` could lose that much more of them (they
/// are queued after the reply in any case; README "Push").
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Waits before queueing a batch again after the state store failed (e.g. another
/// process held its write lock past SQLite's 5 s busy timeout): about 15 s in all,
/// then the batch's pushes are dropped with an error line. Mail never waits for this.
const REQUEUE_WAITS: [std::time::Duration; 3] = [
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(4),
    std::time::Duration::from_secs(8),
];

/// One recipient the message was stored for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The user in the state store.
    pub username: String,
    /// The address as given in RCPT.
    pub address: String,
    /// The mailbox it went to, in the store's hierarchy separator.
    pub folder: String,
    /// Stored with `$Chat`.
    pub chat: bool,
}

impl Delivered {
    /// `username`'s copy for RCPT `address`, stored as `target` (whose folder uses
    /// `/`; the payload has the store's `separator`).
    pub fn stored(
        username: String,
        address: String,
        target: &Target,
        separator: char,
    ) -> Delivered {
        Delivered {
            username,
            address,
            folder: target.store_folder(separator),
            chat: target.flags.iter().any(|f| f.eq_ignore_ascii_case("$Chat")),
        }
    }
}

/// What the payload is built from.
#[derive(Debug, Clone)]
pub struct DeliveredMessage {
    /// The header section.
    pub header: Vec<u8>,
    /// The body (after the header section), when small enough to be `content`.
    pub body: Option<Vec<u8>>,
    /// The COI or Delta Chat group id.
    pub group_id: Option<String>,
    /// The message's class.
    pub class: Class,
    /// When coid began deciding it: the push targets looked up for it count every
    /// change committed before then (a device subscribed before the message came).
    pub began: Instant,
}

impl DeliveredMessage {
    /// From the header section (as `Spooled::header_block` cut it) and, if the whole
    /// message is in memory, its body when that is small enough to be `content`. No
    /// second search: a complete header section ends with its empty line.
    pub fn new(header: Vec<u8>, whole: Option<&[u8]>, group_id: Option<String>) -> Self {
        let complete = header.ends_with(b"\n\n") || header.ends_with(b"\r\n\r\n");
        let body = whole.filter(|_| complete).and_then(|all| {
            let rest = all.get(header.len()..)?;
            (rest.len() <= MAX_PLAINTEXT).then(|| rest.to_vec())
        });
        DeliveredMessage {
            header,
            body,
            group_id,
            class: Class::Email,
            began: Instant::now(),
        }
    }

    /// The same, of class `class`.
    pub fn with_class(mut self, class: Class) -> Self {
        self.class = class;
        self
    }

    /// The same, decided from `began` on (at most now: a later instant would let a
    /// target committed before the message came go unseen).
    pub fn decided_from(mut self, began: Instant) -> Self {
        self.began = began.min(self.began);
        self
    }
}

/// Which kinds of push the hook queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookKinds {
    /// Web Push (`[push] enabled`).
    pub webpush: bool,
    /// Delta Chat notifications (`[deltachat] push`), by these rules.
    pub deltachat: Option<DeltaChatRules>,
}

impl HookKinds {
    /// From `[push]` and `[deltachat]`; `None` when no kind is on.
    pub fn from_config(config: &crate::config::Config) -> Option<HookKinds> {
        let kinds = HookKinds {
            webpush: config.push.enabled,
            deltachat: DeltaChatRules::from_config(&config.deltachat),
        };
        (kinds.webpush || kinds.deltachat.is_some()).then_some(kinds)
    }
}

/// The pushes for `message`, stored for `recipients`, queued at `now` (unix ms) and
/// given up at `deadline`. Blocking (reads subscriptions).
///
/// # Errors
/// The store failed.
pub fn pushes_for(
    store: &Store,
    message: &DeliveredMessage,
    recipients: &[Delivered],
    now: i64,
    deadline: i64,
) -> Result<Vec<NewPush>, StoreError> {
    let parsed = parse_header(message);
    webpush_pushes(store, &parsed, message, recipients, now, deadline)
}

fn parse_header(message: &DeliveredMessage) -> mail_parser::Message<'_> {
    crate::parsed::header(&message.header)
}

/// What identifies a delivered message when Postfix delivers it again (at least once):
/// its Message-ID, or, without one, a digest of its header section (the same queue
/// file, so the same bytes). Part of every push's dedupe key ([`dedupe_key`]).
fn message_identity(parsed: &mail_parser::Message<'_>, message: &DeliveredMessage) -> String {
    use sha2::Digest;
    match parsed.message_id() {
        Some(id) if !id.is_empty() => format!("id:{id}"),
        _ => {
            let digest = sha2::Sha256::digest(&message.header);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("header:{hex}")
        }
    }
}

fn webpush_pushes(
    store: &Store,
    parsed: &mail_parser::Message<'_>,
    message: &DeliveredMessage,
    recipients: &[Delivered],
    now: i64,
    deadline: i64,
) -> Result<Vec<NewPush>, StoreError> {
    let identity = message_identity(parsed, message);
    let mut pushes = Vec::new();
    for rcpt in recipients {
        let wanted: Vec<_> = store
            .subscriptions(&rcpt.username)?
            .into_iter()
            .filter(|s| s.validated_at.is_some())
            .filter(|s| MsgType::parse(&s.msgtype).is_some_and(|m| m.wants(rcpt.chat)))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let stored = Stored {
            folder: &rcpt.folder,
            ..Stored::default()
        };
        let mut payload = Payload::build(parsed, &stored, message.group_id.as_deref());
        if let Some(body) = &message.body {
            payload.offer_content(parsed, body);
        }
        let json = payload.to_json();
        pushes.extend(wanted.into_iter().map(|sub| NewPush {
            kind: PushKind::WebPush,
            username: rcpt.username.clone(),
            dedupe: Some(dedupe_key(
                &identity,
                PushKind::WebPush,
                &rcpt.username,
                &sub.id,
            )),
            target: sub.id,
            payload: json.clone(),
            with_content: payload.has_content(),
            validation: false,
            not_before: now,
            deadline,
        }));
    }
    Ok(pushes)
}

/// The Delta Chat notifications for `message`, stored for `recipients`, queued at
/// `now` (unix ms) by `rules`. Blocking (reads tokens).
///
/// # Errors
/// The store failed.
pub fn notifications_for(
    store: &Store,
    message: &DeliveredMessage,
    recipients: &[Delivered],
    rules: &DeltaChatRules,
    now: i64,
) -> Result<Vec<NewPush>, StoreError> {
    let parsed = parse_header(message);
    notifications(store, &parsed, message, recipients, rules, now)
}

fn notifications(
    store: &Store,
    parsed: &mail_parser::Message<'_>,
    message: &DeliveredMessage,
    recipients: &[Delivered],
    rules: &DeltaChatRules,
    now: i64,
) -> Result<Vec<NewPush>, StoreError> {
    let chat = matches!(message.class, Class::Chat | Class::Group);
    if message.class == Class::Mdn || (rules.notify == NotifyFor::Chat && !chat) {
        return Ok(Vec::new());
    }
    let from = parsed
        .from()
        .and_then(|from| from.first())
        .and_then(|addr| addr.address());
    let deadline =
        now.saturating_add(i64::try_from(rules.deadline.as_millis()).unwrap_or(i64::MAX));
    let identity = message_identity(parsed, message);
    let mut pushes = Vec::new();
    for rcpt in recipients {
        let own = from.is_some_and(|from| {
            from.eq_ignore_ascii_case(&rcpt.address) || from.eq_ignore_ascii_case(&rcpt.username)
        });
        if own {
            continue;
        }
        let tokens = store.tokens(&rcpt.username, rules.tokens_since(now))?;
        pushes.extend(tokens.into_iter().map(|token| NewPush {
            kind: PushKind::DeltaChat,
            username: rcpt.username.clone(),
            dedupe: Some(dedupe_key(
                &identity,
                PushKind::DeltaChat,
                &rcpt.username,
                &token.id,
            )),
            target: token.id,
            payload: String::new(),
            with_content: false,
            validation: false,
            not_before: now,
            deadline,
        }));
    }
    Ok(pushes)
}

/// Queues pushes after delivery, off the reply path. Clones share the tasks.
#[derive(Clone)]
pub struct PushHook {
    queue: PushQueue,
    kinds: HookKinds,
    tasks: TaskTracker,
    /// One permit per message whose pushes are being queued.
    pending: Arc<Semaphore>,
    /// Who has a push target at all.
    targets: TargetUsers,
    /// Messages waiting for the blocking job that queues their pushes.
    batch: Arc<Mutex<Batch>>,
}

/// Messages the push worker took for its round; their places under
/// [`MAX_PENDING`] are given back when this is dropped (after the round).
#[derive(Default)]
pub(crate) struct Handed(Vec<Job>);

impl Handed {
    /// Messages in it.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// None.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One delivered message waiting to have its pushes queued.
struct Job {
    message: DeliveredMessage,
    recipients: Vec<Delivered>,
    /// Its place under [`MAX_PENDING`], given back once it is queued.
    _permit: OwnedSemaphorePermit,
}

/// What waits for the blocking job (or the worker), and whether one runs.
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    running: bool,
    /// The push worker of this process takes the jobs with its rounds
    /// ([`PushHook::hand_to_worker`]); no blocking job of the hook's starts.
    handoff: bool,
    /// Transactions the blocking jobs have made so far (one per round).
    rounds: u64,
}

impl PushHook {
    /// Over `queue`, queueing `kinds`.
    pub fn new(queue: PushQueue, kinds: HookKinds) -> PushHook {
        PushHook {
            targets: TargetUsers::new(queue.store().clone()),
            queue,
            kinds,
            tasks: TaskTracker::new(),
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
            batch: Arc::default(),
        }
    }

    /// Starts queueing the pushes for `message` delivered to `recipients` and returns
    /// at once; drops them (with a warning) when [`MAX_PENDING`] messages are still
    /// waiting. Returns at once, doing nothing else, when the set of users with
    /// targets is current and none of `recipients` is in it. Must be called inside the
    /// tokio runtime.
    ///
    /// One blocking job at a time queues what waits: messages delivered while it
    /// works are queued by its next round, all of them in one transaction, so a
    /// burst of deliveries costs one hop to a blocking thread, not one each.
    pub fn after_delivery(&self, message: DeliveredMessage, recipients: Vec<Delivered>) {
        let names = recipients.iter().map(|r| r.username.as_str());
        if recipients.is_empty() || self.targets.any(names, message.began) == Some(false) {
            return;
        }
        let Ok(permit) = Arc::clone(&self.pending).try_acquire_owned() else {
            tracing::warn!(
                recipients = recipients.len(),
                max_pending = MAX_PENDING,
                "cannot queue pushes: the state store is behind; this message's pushes are dropped"
            );
            return;
        };
        let job = Job {
            message,
            recipients,
            _permit: permit,
        };
        let mut batch = lock(&self.batch);
        batch.jobs.push(job);
        if batch.handoff {
            // The first one wakes the worker; its round takes all that came since.
            if batch.jobs.len() == 1 {
                self.queue.wake();
            }
        } else if !batch.running {
            self.start_drain(&mut batch);
        }
    }

    /// Starts the blocking job; `batch` is locked, and no job runs.
    fn start_drain(&self, batch: &mut Batch) {
        batch.running = true;
        let this = self.clone();
        self.tasks.spawn_blocking(move || this.drain());
    }

    /// Whether the push worker of this process takes what waits, with its rounds
    /// (`super::worker`): then a message's pushes are queued in the same transaction
    /// as the worker's outcomes and claim, which claims them too, and no blocking job
    /// of the hook's runs. The worker turns this on as it starts and off as it stops;
    /// turned off, what waits and what comes after is queued the usual way, by a
    /// blocking job started at once. Must be called inside a tokio runtime.
    pub(crate) fn hand_to_worker(&self, on: bool) {
        let mut batch = lock(&self.batch);
        batch.handoff = on;
        if !on && !batch.jobs.is_empty() && !batch.running {
            self.start_drain(&mut batch);
        }
    }

    /// Messages wait for the worker's next round.
    pub(crate) fn waiting(&self) -> bool {
        !lock(&self.batch).jobs.is_empty()
    }

    /// Takes every message waiting, for the worker's round.
    pub(crate) fn take(&self) -> Handed {
        Handed(std::mem::take(&mut lock(&self.batch).jobs))
    }

    /// The pushes of `handed`, for the worker's round. Blocking (reads targets).
    pub(crate) fn pushes_of_handed(&self, handed: &Handed, now: i64) -> Vec<NewPush> {
        self.pushes_of_all(&handed.0, now)
    }

    /// The worker's round failed: `handed` is queued the usual way, by a blocking
    /// job that tries again after each of [`REQUEUE_WAITS`].
    pub(crate) fn requeue(&self, handed: Handed) {
        if handed.0.is_empty() {
            return;
        }
        let this = self.clone();
        self.tasks
            .spawn_blocking(move || this.queue_with_retries(&handed.0));
    }

    /// The blocking job: first waits [`GATHER`], so that messages delivered meanwhile
    /// share its first transaction, then queues what waits, round after round, until
    /// nothing does.
    fn drain(&self) {
        // Should queueing ever panic, the next message starts a new job.
        let _idle = Idle(&self.batch);
        std::thread::sleep(GATHER);
        loop {
            let jobs = {
                let mut batch = lock(&self.batch);
                if batch.jobs.is_empty() {
                    // Under the lock: a message pushed after this starts a new job.
                    batch.running = false;
                    return;
                }
                batch.rounds += 1;
                std::mem::take(&mut batch.jobs)
            };
            self.queue_with_retries(&jobs);
        }
    }

    /// Queues `jobs`, trying again after each of [`REQUEUE_WAITS`] when the store
    /// fails (one transaction, so a try either queued all or nothing).
    fn queue_with_retries(&self, jobs: &[Job]) {
        let mut waits = REQUEUE_WAITS.iter();
        loop {
            match self.queue_all(jobs) {
                Ok(0) => return,
                Ok(queued) => {
                    tracing::debug!(queued, messages = jobs.len(), "pushes queued");
                    return;
                }
                Err(err) => match waits.next() {
                    Some(wait) => {
                        tracing::warn!(error = %err, retry_in_secs = wait.as_secs(), "cannot queue pushes yet");
                        std::thread::sleep(*wait);
                    }
                    None => {
                        tracing::error!(error = %err, messages = jobs.len(), "cannot queue pushes; they are dropped");
                        return;
                    }
                },
            }
        }
    }

    /// The pushes of every job in `jobs`, queued in one transaction. Blocking.
    fn queue_all(&self, jobs: &[Job]) -> Result<usize, StoreError> {
        let now = unix_now_ms();
        let pushes = self.pushes_of_all(jobs, now);
        self.queue.enqueue(&pushes, now)
    }

    /// The pushes of every job in `jobs`; a job whose targets cannot be read has
    /// none, and says so. Blocking.
    fn pushes_of_all(&self, jobs: &[Job], now: i64) -> Vec<NewPush> {
        let targets = self.targets.refresh().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot read which users have push targets");
            None
        });
        let mut pushes = Vec::new();
        for job in jobs {
            match self.pushes_of(job, now, targets) {
                Ok(more) => pushes.extend(more),
                Err(err) => tracing::error!(error = %err, "cannot queue a message's pushes"),
            }
        }
        pushes
    }

    /// One job's pushes of every kind on. Blocking (reads targets). `targets`: the
    /// counter the set of users with targets was just refreshed at, if it was.
    fn pushes_of(
        &self,
        job: &Job,
        now: i64,
        targets: Option<i64>,
    ) -> Result<Vec<NewPush>, StoreError> {
        let (message, recipients) = (&job.message, &job.recipients);
        // Just refreshed: where the async check could not tell (PostgreSQL's counter
        // is a round trip), a message for users without targets stops here, before
        // one query per recipient and kind, and without reading the counter again.
        let names = recipients.iter().map(|r| r.username.as_str());
        if targets.and_then(|version| self.targets.any_at(version, names)) == Some(false) {
            return Ok(Vec::new());
        }
        let parsed = parse_header(message);
        let store = self.queue.store();
        let mut pushes = Vec::new();
        if self.kinds.webpush {
            let deadline = self.queue.deadline_from(now);
            pushes = webpush_pushes(store, &parsed, message, recipients, now, deadline)?;
        }
        if let Some(rules) = &self.kinds.deltachat {
            let more = notifications(store, &parsed, message, recipients, rules, now)?;
            pushes.extend(more);
        }
        Ok(pushes)
    }

    /// The queue it fills.
    pub fn queue(&self) -> &PushQueue {
        &self.queue
    }

    /// Waits until every push started so far is queued (shutdown, `coid deliver`).
    /// Messages left waiting for a worker that is gone are queued here.
    pub async fn flush(&self) {
        self.hand_to_worker(false);
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

/// Marks the blocking job gone if it panics (it ends normally only under the
/// batch's lock, so no message is left waiting without a job).
struct Idle<'a>(&'a Mutex<Batch>);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.0).running = false;
        }
    }
}

/// Locks a mutex whose holder cannot leave it inconsistent (a push, a take, a flag).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "delivered_tests.rs"]
mod tests;
