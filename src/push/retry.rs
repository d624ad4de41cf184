//! What the queue does with a push after an attempt (WebPush spec "Push Service
//! Responses", RFC 8030 §5, §7.2, §8.4; for Delta Chat, what a chatmail relay does
//! with the notification proxy's answers). Pure: the attempt's [`Outcome`] and the
//! row's state in, an [`Action`] out; `super::record` carries it out.
//!
//! - delivered: the row goes;
//! - gone (Web Push 404/410, Delta Chat 410): the target (subscription or token) goes,
//!   with all its pushes;
//! - 413: once, the same push without `content` at once; otherwise dropped;
//! - 429: every push to that service waits (`Retry-After`, else `rate_limit`);
//! - 5xx, 408, no answer: retried after the kind's [`Backoff`] (Web Push 2 s, 4 s,
//!   8 s …; Delta Chat 8 s, 64 s, 512 s …), dropped once the next try would be past
//!   the push's deadline;
//! - 401/403: dropped and logged as an error (coid's VAPID credentials were refused;
//!   the subscription is kept, the fault may be ours);
//! - 3xx and other answers: dropped with a warning.

use std::time::Duration;

use super::outcome::{Backoff, Outcome};

/// A kind's retry rules (`[push]`, `[deltachat]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Waits between retries.
    pub backoff: Backoff,
    /// Wait after a 429 without `Retry-After`.
    pub rate_limit: Duration,
}

/// What the queue knows of the push that was tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Temporary failures before this attempt.
    pub attempts: u32,
    /// Dropped when not sent by this time (unix ms).
    pub deadline: i64,
    /// The payload has `content` that can be dropped.
    pub with_content: bool,
}

/// How loudly a dropped push is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Expected now and then.
    Warn,
    /// Needs the operator (VAPID refused).
    Error,
}

/// What to do with the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Sent: delete the row.
    Done,
    /// The target (subscription, token) is gone: delete it and its pushes.
    DeleteTarget,
    /// Send again at once without `content`.
    WithoutContent,
    /// Try again at `not_before` (unix ms), after `attempts` temporary failures.
    Retry {
        /// Temporary failures so far, this one included.
        attempts: u32,
        /// When (unix ms).
        not_before: i64,
    },
    /// Hold back every push to this service (Web Push: this endpoint; Delta Chat:
    /// the notification proxy), this one included, until `until`.
    HoldBack {
        /// When (unix ms).
        until: i64,
    },
    /// Give up on this push.
    Drop {
        /// Why, for the log.
        reason: &'static str,
        /// How loudly.
        severity: Severity,
    },
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The action for `outcome` of an attempt on `row` at `now` (unix ms).
pub fn decide(outcome: Outcome, row: Row, now: i64, rules: Rules) -> Action {
    let drop = |reason, severity| Action::Drop { reason, severity };
    match outcome {
        Outcome::Delivered => Action::Done,
        Outcome::Gone => Action::DeleteTarget,
        Outcome::TooLarge if row.with_content => Action::WithoutContent,
        Outcome::TooLarge => drop(
            "push service: too large even without content",
            Severity::Warn,
        ),
        Outcome::RateLimited { wait } => Action::HoldBack {
            until: now.saturating_add(millis(wait.unwrap_or(rules.rate_limit))),
        },
        Outcome::Temporary => {
            let attempts = row.attempts.saturating_add(1);
            let not_before = now.saturating_add(millis(rules.backoff.wait(attempts)));
            if not_before > row.deadline {
                drop("retried until its deadline", Severity::Warn)
            } else {
                Action::Retry {
                    attempts,
                    not_before,
                }
            }
        }
        Outcome::Unauthorized(_) => drop(
            "push service refused coid's VAPID credentials (401/403)",
            Severity::Error,
        ),
        Outcome::Redirected(_) => drop("push service redirected (not followed)", Severity::Warn),
        Outcome::Rejected(_) => drop("push service rejected the push", Severity::Warn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        backoff: Backoff {
            first: Duration::from_secs(2),
            factor: 2,
            max: Duration::from_secs(300),
        },
        rate_limit: Duration::from_secs(30),
    };
    const ROW: Row = Row {
        attempts: 0,
        deadline: 1_000_000,
        with_content: true,
    };

    #[test]
    fn every_outcome_has_its_action() {
        let d = |o| decide(o, ROW, 0, RULES);
        assert_eq!(d(Outcome::Delivered), Action::Done);
        assert_eq!(d(Outcome::Gone), Action::DeleteTarget);
        assert_eq!(d(Outcome::TooLarge), Action::WithoutContent);
        let without = Row {
            with_content: false,
            ..ROW
        };
        assert!(matches!(
            decide(Outcome::TooLarge, without, 0, RULES),
            Action::Drop { .. }
        ));
        assert_eq!(
            d(Outcome::RateLimited {
                wait: Some(Duration::from_secs(7))
            }),
            Action::HoldBack { until: 7_000 }
        );
        assert_eq!(
            d(Outcome::RateLimited { wait: None }),
            Action::HoldBack { until: 30_000 }
        );
        assert_eq!(
            d(Outcome::Temporary),
            Action::Retry {
                attempts: 1,
                not_before: 2_000
            }
        );
        assert!(matches!(
            d(Outcome::Unauthorized(401)),
            Action::Drop {
                severity: Severity::Error,
                ..
            }
        ));
        for o in [Outcome::Redirected(301), Outcome::Rejected(400)] {
            assert!(matches!(
                d(o),
                Action::Drop {
                    severity: Severity::Warn,
                    ..
                }
            ));
        }
    }

    #[test]
    fn temporary_failures_back_off_until_the_deadline() {
        let row = Row {
            attempts: 3,
            deadline: 20_000,
            with_content: false,
        };
        assert_eq!(
            decide(Outcome::Temporary, row, 1_000, RULES),
            Action::Retry {
                attempts: 4,
                not_before: 17_000
            }
        );
        assert!(matches!(
            decide(Outcome::Temporary, row, 5_000, RULES),
            Action::Drop { .. }
        ));
    }
}
