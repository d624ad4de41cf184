//! What an attempt's [`Action`] does to the durable queue (the row, its target, the
//! service's hold-back) and the log line that says so: [`super::retry`] decides,
//! this carries it out, [`super::worker`] sends. Web Push rows name their
//! subscription; Delta Chat rows their token's id, never the token.

use super::outcome::Outcome;
use super::queue::{PushQueue, blocking};
use super::retry::{Action, Severity};
use super::webpush::payload::Payload;
use crate::store::{Destination, PushKind, QueuedPush, Store, StoreError, unix_now_ms};

/// Carries out `action` on the row (and its target or service).
pub async fn record(queue: &PushQueue, push: QueuedPush, action: Action) {
    let store = queue.store().clone();
    let wake = matches!(action, Action::WithoutContent);
    let result = blocking(move || apply(&store, &push, action)).await;
    if let Err(err) = result {
        tracing::error!(error = %err, "push queue: cannot record a push's result");
    }
    if wake {
        queue.wake();
    }
}

fn apply(store: &Store, push: &QueuedPush, action: Action) -> Result<(), StoreError> {
    match action {
        Action::Done | Action::Drop { .. } => store.push_done(push.seq),
        Action::DeleteTarget => {
            match &push.to {
                Destination::WebPush { endpoint, .. } => {
                    store.delete_subscription(&push.username, &push.target, Some(endpoint))?;
                }
                Destination::DeltaChat { .. } => {
                    store.delete_token(&push.username, &push.target)?;
                }
            }
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
        Action::HoldBack { until } => {
            store.push_retry(push.seq, push.attempts, until, None)?;
            match &push.to {
                Destination::WebPush { endpoint, .. } => store.delay_endpoint(endpoint, until),
                Destination::DeltaChat { .. } => store.delay_kind(PushKind::DeltaChat, until),
            }
            .map(|_| ())
        }
    }
}

/// Logs an attempt's outcome and what follows from it.
pub fn log(push: &QueuedPush, outcome: Outcome, detail: &str, action: Action) {
    match push.kind() {
        PushKind::WebPush => log_webpush(push, outcome, detail, action),
        PushKind::DeltaChat => log_deltachat(push, outcome, detail, action),
    }
}

fn log_deltachat(push: &QueuedPush, outcome: Outcome, detail: &str, action: Action) {
    let (user, token) = (push.username.as_str(), push.target.as_str());
    let outcome = outcome.as_str();
    match action {
        Action::Done => {
            tracing::info!(
                user,
                token,
                outcome,
                detail,
                "deltachat notification delivered"
            );
        }
        Action::DeleteTarget => tracing::info!(
            user,
            token,
            outcome,
            detail,
            "deltachat token gone at the notification service; deleted"
        ),
        Action::Retry {
            attempts,
            not_before,
        } => tracing::warn!(
            user,
            token,
            outcome,
            detail,
            attempts,
            in_ms = not_before - unix_now_ms(),
            "deltachat notification failed; will retry"
        ),
        Action::HoldBack { until } => tracing::warn!(
            user,
            token,
            outcome,
            detail,
            in_ms = until - unix_now_ms(),
            "deltachat notification service rate limit; holding back notifications"
        ),
        Action::WithoutContent | Action::Drop { .. } => {
            let reason = match action {
                Action::Drop { reason, .. } => reason,
                _ => "no smaller form",
            };
            tracing::warn!(
                user,
                token,
                outcome,
                detail,
                reason,
                "deltachat notification dropped"
            );
        }
    }
}

fn log_webpush(push: &QueuedPush, outcome: Outcome, detail: &str, action: Action) {
    let (user, subscription) = (push.username.as_str(), push.target.as_str());
    let kind = if push.validation {
        "validation"
    } else {
        "message"
    };
    let endpoint = match &push.to {
        Destination::WebPush { endpoint, .. } => endpoint.as_str(),
        Destination::DeltaChat { .. } => "",
    };
    let outcome = outcome.as_str();
    match action {
        Action::Done => tracing::info!(user, subscription, kind, outcome, detail, "push delivered"),
        Action::DeleteTarget => tracing::info!(
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
        Action::HoldBack { until } => tracing::warn!(
            user,
            subscription,
            endpoint,
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
