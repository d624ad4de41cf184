//! What an attempt's [`Action`] does to the durable queue (the row, its subscription,
//! its endpoint's hold-back) and the log line that says so: [`super::retry`] decides,
//! this carries it out, [`super::worker`] sends.

use super::outcome::Outcome;
use super::payload::Payload;
use super::queue::{PushQueue, blocking};
use super::retry::{Action, Severity};
use crate::store::{QueuedPush, unix_now_ms};

/// Carries out `action` on the row (and its subscription or endpoint).
pub async fn record(queue: &PushQueue, push: QueuedPush, action: Action) {
    let store = queue.store().clone();
    let wake = matches!(action, Action::WithoutContent);
    let result = blocking(move || match action {
        Action::Done | Action::Drop { .. } => store.push_done(push.seq),
        Action::DeleteSubscription => {
            store.delete_subscription(&push.username, &push.subscription, Some(&push.endpoint))?;
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
        queue.wake();
    }
}

/// Logs an attempt's outcome and what follows from it.
pub fn log(push: &QueuedPush, outcome: Outcome, detail: &str, action: Action) {
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
