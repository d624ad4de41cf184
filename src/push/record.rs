//! What an attempt's [`Action`] does to the durable queue (the row, its target, the
//! service's hold-back) and the log line that says so: [`super::retry`] decides,
//! this turns it into changes to the queue, [`super::worker`] sends and hands those
//! changes to the store in batches. Web Push rows name their
//! subscription; Delta Chat rows their token's id, never the token.

use super::outcome::Outcome;
use super::retry::{Action, Severity};
use super::webpush::payload::Payload;
use crate::store::{Destination, PushKind, QueuedPush, Settle, unix_now_ms};

/// What `action` does to the queue, for the worker's next trip to the store
/// (`crate::store::Settle`: applied in order, in one transaction with other rows'
/// outcomes and the next claim).
pub fn settlement(push: &QueuedPush, action: Action) -> Vec<Settle> {
    let seq = push.seq;
    match action {
        Action::Done | Action::Drop { .. } => vec![Settle::Done { seq }],
        Action::DeleteTarget => vec![match &push.to {
            Destination::WebPush { endpoint, .. } => Settle::DeleteSubscription {
                seq,
                username: push.username.clone(),
                id: push.target.clone(),
                endpoint: endpoint.clone(),
            },
            Destination::DeltaChat { .. } => Settle::DeleteToken {
                seq,
                username: push.username.clone(),
                id: push.target.clone(),
            },
        }],
        Action::WithoutContent => match Payload::json_without_content(&push.payload) {
            Some(smaller) => vec![Settle::Retry {
                seq,
                attempts: push.attempts,
                not_before: unix_now_ms(),
                payload: Some(smaller),
            }],
            None => vec![Settle::Done { seq }],
        },
        Action::Retry {
            attempts,
            not_before,
        } => vec![Settle::Retry {
            seq,
            attempts,
            not_before,
            payload: None,
        }],
        Action::HoldBack { until } => vec![
            Settle::Retry {
                seq,
                attempts: push.attempts,
                not_before: until,
                payload: None,
            },
            match &push.to {
                Destination::WebPush { endpoint, .. } => Settle::DelayEndpoint {
                    endpoint: endpoint.clone(),
                    until,
                },
                Destination::DeltaChat { .. } => Settle::DelayKind {
                    kind: PushKind::DeltaChat,
                    until,
                },
            },
        ],
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
