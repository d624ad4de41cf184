//! The push worker of `coid serve`: takes due pushes from the durable queue, sends
//! them with [`Sender`] (at most `concurrency` at once), and has what each answer
//! means ([`super::retry`]) carried out on the queue ([`super::record`]). It wakes
//! when something is queued ([`PushQueue::wake`]), when the next retry is due, and at
//! least every [`POLL`] (pushes queued by another process, e.g. `coid deliver`).
//! Every [`SWEEP`] it deletes unvalidated subscriptions past their window and pushes
//! past their deadline.
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
use super::queue::{PushQueue, blocking};
use super::record::{log, record};
use super::retry::{self, Action, Row, Rules};
use super::sender::{Options, SendError, Sender, Target, folder_topic};
use crate::config::PushConfig;
use crate::metrics::{self, PushOutcome};
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
            options: Options::from_config(config),
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
        metrics::watch_push_queue(this.queue.store().clone());
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
        let queue = self.queue.clone();
        let result = blocking(move || {
            let now = unix_now_ms();
            let expired = queue.expire_subscriptions(None, now)?;
            let overdue = queue.store().drop_overdue_pushes(now)?;
            Ok((expired, overdue))
        })
        .await;
        match result {
            Ok((0, 0)) => {}
            Ok((expired, overdue)) => {
                metrics::push_outcomes(PushOutcome::Expired, overdue);
                tracing::info!(expired, overdue, "push queue swept");
            }
            Err(err) => tracing::error!(error = %err, "push queue: sweep failed"),
        }
    }

    /// Sends one push and records what its answer means.
    async fn send_one(self: Arc<Self>, push: QueuedPush) {
        let Some(target) = Target::decode(&push.endpoint, &push.p256dh, &push.auth) else {
            tracing::warn!(
                user = push.username,
                subscription = push.subscription,
                "push dropped: the stored subscription does not decode"
            );
            metrics::push_outcome(PushOutcome::Undecodable);
            return record(&self.queue, push, Action::Done).await;
        };
        let options = Options {
            validation: push.validation,
            topic: (self.coalesce && !push.validation)
                .then(|| Payload::folder_of(&push.payload))
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
                metrics::push_outcome(PushOutcome::EndpointRefused);
                return record(&self.queue, push, Action::Done).await;
            }
            Ok(Err(err)) => {
                tracing::warn!(user = push.username, subscription = push.subscription, error = %err, "push dropped");
                metrics::push_outcome(PushOutcome::BuildFailed);
                return record(&self.queue, push, Action::Done).await;
            }
            Err(_) => (Outcome::Temporary, "timed out".to_owned()),
        };
        let row = Row {
            attempts: push.attempts,
            deadline: push.deadline,
            with_content: push.with_content,
        };
        let action = retry::decide(outcome, row, unix_now_ms(), self.rules);
        metrics::push_outcome(outcome.into());
        log(&push, outcome, &detail, action);
        record(&self.queue, push, action).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_comes_from_the_payload_folder() {
        assert_eq!(
            Payload::folder_of(r#"{"folder":"COI/Chats","subject":"x"}"#).as_deref(),
            Some("COI/Chats")
        );
        assert_eq!(Payload::folder_of(r#"{"validation":"t"}"#), None);
        assert_eq!(Payload::folder_of("not json"), None);
        let chats = folder_topic("COI/Chats");
        assert_eq!(chats.len(), 32);
        assert!(chats.chars().all(|c| c.is_ascii_alphanumeric()), "{chats}");
        assert_eq!(chats, folder_topic("COI/Chats"), "stable");
        assert_ne!(chats, folder_topic("INBOX"));
    }
}
