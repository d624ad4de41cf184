//! The push worker of `coid serve`: takes due pushes from the durable queue, sends
//! them with [`Sender`] (at most `concurrency` at once), and carries out what each
//! answer means ([`super::retry`]). It wakes when something is queued
//! ([`PushQueue::wake`]), when the next retry is due, and at least every
//! [`POLL`] (pushes queued by another process, e.g. `coid deliver`). Every
//! [`SWEEP`] it deletes unvalidated subscriptions past their window and pushes past
//! their deadline.
//!
//! A claimed row is leased (its `not_before` moves past the longest a send may take),
//! so a push whose result was never recorded (coid killed) is sent again later: at
//! least once, never lost. On shutdown, pushes in flight get to finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::outcome::Outcome;
use super::payload::Payload;
use super::queue::PushQueue;
use super::retry::{self, Action, Row, Rules, Severity};
use super::sender::{Options, SendError, Sender, Target, Urgency, folder_topic};
use super::subscription::{decode_auth, decode_p256dh};
use crate::config::PushConfig;
use crate::store::{QueuedPush, StoreError, unix_now_ms};

/// Longest sleep without a wake-up.
pub const POLL: Duration = Duration::from_secs(5);
/// How often expired subscriptions and overdue pushes are deleted.
pub const SWEEP: Duration = Duration::from_secs(60);

/// The push worker.
pub struct Worker {
    queue: PushQueue,
    sender: Sender,
    options: Options,
    rules: Rules,
    concurrency: usize,
    /// Send a `Topic` per folder (`[push] coalesce`).
    coalesce: bool,
    /// Longest one send may take; the lease is a little longer.
    send_limit: Duration,
}

impl Worker {
    /// A worker over `queue`, sending with `sender`, by `[push]`'s rules.
    pub fn new(queue: PushQueue, sender: Sender, config: &PushConfig) -> Worker {
        Worker {
            queue,
            sender,
            options: Options {
                ttl: Duration::from_secs(config.ttl_secs),
                urgency: Urgency::parse(&config.urgency).unwrap_or(Urgency::Normal),
                topic: None,
                validation: false,
            },
            rules: Rules {
                backoff_max: Duration::from_secs(config.backoff_max_secs),
                rate_limit: Duration::from_secs(config.rate_limit_secs),
            },
            coalesce: config.coalesce,
            concurrency: config.concurrency.max(1),
            // The sender's own timeout covers connect and answer; DNS comes on top.
            send_limit: Duration::from_secs(config.timeout_secs.saturating_mul(2)),
        }
    }

    /// Runs until `stop` turns true, then lets pushes in flight finish (at most the
    /// send limit).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let send_limit = self.send_limit;
        let this = Arc::new(self);
        let mut inflight = JoinSet::new();
        let mut last_sweep: Option<tokio::time::Instant> = None;
        tracing::info!("push worker running");
        while !*stop.borrow() {
            if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP) {
                this.sweep().await;
                last_sweep = Some(tokio::time::Instant::now());
            }
            let room = this.concurrency.saturating_sub(inflight.len());
            let mut wait = POLL;
            if room > 0 {
                match this.claim(room).await {
                    Ok(pushes) => {
                        for push in pushes {
                            inflight.spawn(Arc::clone(&this).send_one(push));
                        }
                    }
                    Err(err) => tracing::error!(error = %err, "push queue: cannot claim pushes"),
                }
                if inflight.len() < this.concurrency {
                    wait = this.until_next_due().await;
                }
            }
            tokio::select! {
                () = this.queue.notify().notified() => {}
                () = tokio::time::sleep(wait) => {}
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
                _ = stop.changed() => {}
            }
        }
        let drain = async { while inflight.join_next().await.is_some() {} };
        if tokio::time::timeout(send_limit, drain).await.is_err() {
            tracing::warn!("push worker: pushes still in flight at shutdown are retried later");
        }
        tracing::info!("push worker stopped");
    }

    async fn claim(&self, room: usize) -> Result<Vec<QueuedPush>, StoreError> {
        let store = self.queue.store().clone();
        let lease = i64::try_from(self.send_limit.as_millis()).unwrap_or(i64::MAX) + 5_000;
        blocking(move || {
            let now = unix_now_ms();
            store.claim_due(now, now.saturating_add(lease), room)
        })
        .await
    }

    /// How long until the next row is due, within [`POLL`].
    async fn until_next_due(&self) -> Duration {
        let store = self.queue.store().clone();
        match blocking(move || store.next_due()).await {
            Ok(Some(at)) => {
                let ms = at.saturating_sub(unix_now_ms()).max(0);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(POLL)
            }
            Ok(None) => POLL,
            Err(err) => {
                tracing::error!(error = %err, "push queue: cannot read");
                POLL
            }
        }
    }

    async fn sweep(&self) {
        let store = self.queue.store().clone();
        let window = self.queue.settings().subscription_expire.as_secs();
        let result = blocking(move || {
            let now = unix_now_ms();
            let window = i64::try_from(window).unwrap_or(i64::MAX);
            let expired = store.expire_subscriptions(None, (now / 1000).saturating_sub(window))?;
            let overdue = store.drop_overdue_pushes(now)?;
            Ok((expired, overdue))
        })
        .await;
        match result {
            Ok((0, 0)) => {}
            Ok((expired, overdue)) => {
                tracing::info!(expired, overdue, "push queue swept");
            }
            Err(err) => tracing::error!(error = %err, "push queue: sweep failed"),
        }
    }

    /// Sends one push and records what its answer means.
    async fn send_one(self: Arc<Self>, push: QueuedPush) {
        let Some(target) = target_of(&push) else {
            tracing::warn!(
                user = push.username,
                subscription = push.subscription,
                "push dropped: the stored subscription does not decode"
            );
            return self.apply(&push, Action::Done).await;
        };
        let options = Options {
            validation: push.validation,
            topic: (self.coalesce && !push.validation)
                .then(|| payload_folder(&push.payload))
                .flatten()
                .map(|folder| folder_topic(&folder)),
            ..self.options.clone()
        };
        let sent = tokio::time::timeout(
            self.send_limit,
            self.sender.send(&target, push.payload.as_bytes(), &options),
        )
        .await;
        let (outcome, detail) = match sent {
            Ok(Ok(attempt)) => (attempt.outcome, attempt.detail),
            Ok(Err(SendError::Refused(refused))) => {
                tracing::warn!(user = push.username, subscription = push.subscription, error = %refused, "push dropped: endpoint refused by the endpoint rules");
                return self.apply(&push, Action::Done).await;
            }
            Ok(Err(err)) => {
                tracing::warn!(user = push.username, subscription = push.subscription, error = %err, "push dropped");
                return self.apply(&push, Action::Done).await;
            }
            Err(_) => (Outcome::Temporary, "timed out".to_owned()),
        };
        let row = Row {
            attempts: push.attempts,
            deadline: push.deadline,
            with_content: push.with_content,
        };
        let action = retry::decide(outcome, row, unix_now_ms(), self.rules);
        log(&push, outcome, &detail, action);
        self.apply(&push, action).await;
    }

    /// Carries out `action` on the row (and its subscription or endpoint).
    async fn apply(&self, push: &QueuedPush, action: Action) {
        let store = self.queue.store().clone();
        let push = push.clone();
        let wake = matches!(action, Action::WithoutContent);
        let result = blocking(move || match action {
            Action::Done | Action::Drop { .. } => store.push_done(push.seq),
            Action::DeleteSubscription => {
                store.delete_subscription(
                    &push.username,
                    &push.subscription,
                    Some(&push.endpoint),
                )?;
                store.push_done(push.seq)
            }
            Action::WithoutContent => match Payload::json_without_content(&push.payload) {
                Some(smaller) => {
                    store.push_retry(push.seq, push.attempts, unix_now_ms(), Some(&smaller))
                }
                None => store.push_done(push.seq),
            },
            Action::Retry {
                attempts,
                not_before,
            } => store.push_retry(push.seq, attempts, not_before, None),
            Action::DelayEndpoint { until } => {
                store.push_retry(push.seq, push.attempts, until, None)?;
                store.delay_endpoint(&push.endpoint, until).map(|_| ())
            }
        })
        .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "push queue: cannot record a push's result");
        }
        if wake {
            self.queue.wake();
        }
    }
}

/// Where a queued push goes; `None` if its stored keys or URL do not decode.
fn target_of(push: &QueuedPush) -> Option<Target> {
    Some(Target {
        endpoint: url::Url::parse(&push.endpoint).ok()?,
        p256dh: decode_p256dh(&push.p256dh)?,
        auth: decode_auth(&push.auth)?,
    })
}

fn log(push: &QueuedPush, outcome: Outcome, detail: &str, action: Action) {
    let (user, subscription) = (push.username.as_str(), push.subscription.as_str());
    let kind = if push.validation {
        "validation"
    } else {
        "message"
    };
    let outcome = outcome.as_str();
    match action {
        Action::Done => tracing::info!(user, subscription, kind, outcome, detail, "push delivered"),
        Action::DeleteSubscription => tracing::info!(
            user,
            subscription,
            kind,
            outcome,
            detail,
            "push subscription gone at the push service; deleted"
        ),
        Action::WithoutContent => tracing::info!(
            user,
            subscription,
            outcome,
            detail,
            "push too large; sending it again without content"
        ),
        Action::Retry {
            attempts,
            not_before,
        } => tracing::warn!(
            user,
            subscription,
            kind,
            outcome,
            detail,
            attempts,
            in_ms = not_before - unix_now_ms(),
            "push failed; will retry"
        ),
        Action::DelayEndpoint { until } => tracing::warn!(
            user,
            subscription,
            endpoint = push.endpoint,
            outcome,
            detail,
            in_ms = until - unix_now_ms(),
            "push service rate limit; holding back pushes to this endpoint"
        ),
        Action::Drop {
            reason,
            severity: Severity::Error,
        } => tracing::error!(
            user,
            subscription,
            kind,
            outcome,
            detail,
            reason,
            "push dropped: check push.vapid_subject and that coid's VAPID key was not replaced"
        ),
        Action::Drop {
            reason,
            severity: Severity::Warn,
        } => tracing::warn!(
            user,
            subscription,
            kind,
            outcome,
            detail,
            reason,
            "push dropped"
        ),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| Err(StoreError::Worker(join.to_string())))
}

/// The `folder` of a queued payload, for its topic.
fn payload_folder(payload: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    value.get("folder")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_comes_from_the_payload_folder() {
        assert_eq!(
            payload_folder(r#"{"folder":"COI/Chats","subject":"x"}"#).as_deref(),
            Some("COI/Chats")
        );
        assert_eq!(payload_folder(r#"{"validation":"t"}"#), None);
        assert_eq!(payload_folder("not json"), None);
        let chats = folder_topic("COI/Chats");
        assert_eq!(chats.len(), 32);
        assert!(chats.chars().all(|c| c.is_ascii_alphanumeric()), "{chats}");
        assert_eq!(chats, folder_topic("COI/Chats"), "stable");
        assert_ne!(chats, folder_topic("INBOX"));
    }
}
