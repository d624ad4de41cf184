//! What a push service's answer means for the push and the subscription (RFC 8030
//! §5, §7.2, §8.4; WebPush spec "Push Service Responses"). Pure: status and
//! `Retry-After` in, a decision out; the queue acts on it.

use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured; anything longer is capped so a push is not
/// parked past its useful life.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// One attempt's result, as the worker and `coid push test` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What it means.
    pub outcome: Outcome,
    /// The HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// A short description for logs.
    pub detail: String,
}

impl Attempt {
    /// An HTTP answer, classified by `classify` (each kind of push reads statuses its
    /// own way).
    pub fn answered(status: u16, outcome: Outcome) -> Attempt {
        Attempt {
            outcome,
            status: Some(status),
            detail: format!("HTTP {status}"),
        }
    }

    /// No answer at all (connect failure, timeout): temporary.
    pub fn unanswered(detail: String) -> Attempt {
        Attempt {
            outcome: Outcome::Temporary,
            status: None,
            detail,
        }
    }
}

/// A push attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: accepted by the push service.
    Delivered,
    /// Web Push 404 or 410, Delta Chat 410: the target (subscription, token) is
    /// gone; delete it.
    Gone,
    /// 413: the payload is too large; retry once without content.
    TooLarge,
    /// 429: this endpoint asks to wait (per endpoint, not per subscription).
    RateLimited {
        /// From `Retry-After`, capped at [`MAX_RETRY_AFTER`]; `None` when absent.
        wait: Option<Duration>,
    },
    /// 5xx, 408, or no answer: retry with backoff until the push's deadline.
    Temporary,
    /// 401 or 403: our VAPID credentials were refused. Logged loudly; the
    /// subscription is kept (the fault may be ours).
    Unauthorized(u16),
    /// 3xx: redirects are never followed; the push is dropped.
    Redirected(u16),
    /// Any other answer (400, 415…): this push cannot succeed; it is dropped.
    Rejected(u16),
}

impl Outcome {
    /// Classifies a push service's HTTP answer to a Web Push.
    pub fn from_response(status: u16, retry_after: Option<&str>, now: SystemTime) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            404 | 410 => Outcome::Gone,
            413 => Outcome::TooLarge,
            429 => Outcome::RateLimited {
                wait: retry_after.and_then(|v| parse_retry_after(v, now)),
            },
            408 | 500..=599 => Outcome::Temporary,
            401 | 403 => Outcome::Unauthorized(status),
            300..=399 => Outcome::Redirected(status),
            _ => Outcome::Rejected(status),
        }
    }

    /// A short stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Gone => "gone",
            Outcome::TooLarge => "too-large",
            Outcome::RateLimited { .. } => "rate-limited",
            Outcome::Temporary => "temporary",
            Outcome::Unauthorized(_) => "unauthorized",
            Outcome::Redirected(_) => "redirected",
            Outcome::Rejected(_) => "rejected",
        }
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date; capped.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The waits between tries after temporary failures: `first`, then each `factor`
/// times the one before, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub first: Duration,
    /// How much longer each next wait is.
    pub factor: u32,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// Web Push: 2 s, 4 s, 8 s … capped at `max`.
    pub fn doubling(max: Duration) -> Backoff {
        Backoff {
            first: Duration::from_secs(2),
            factor: 2,
            max,
        }
    }

    /// The wait before retry number `attempt` (1-based).
    pub fn wait(&self, attempt: u32) -> Duration {
        let steps = attempt.saturating_sub(1).min(64);
        let mut wait = self.first;
        for _ in 0..steps {
            if wait >= self.max {
                break;
            }
            wait = wait.saturating_mul(self.factor);
        }
        wait.min(self.max)
    }
}

/// The metrics label of a Web Push attempt's outcome.
impl From<Outcome> for crate::metrics::PushOutcome {
    fn from(outcome: Outcome) -> crate::metrics::PushOutcome {
        use crate::metrics::PushOutcome;
        match outcome {
            Outcome::Delivered => PushOutcome::Delivered,
            Outcome::Gone => PushOutcome::Gone,
            Outcome::TooLarge => PushOutcome::TooLarge,
            Outcome::RateLimited { .. } => PushOutcome::RateLimited,
            Outcome::Temporary => PushOutcome::Temporary,
            Outcome::Unauthorized(_) => PushOutcome::Unauthorized,
            Outcome::Redirected(_) => PushOutcome::Redirected,
            Outcome::Rejected(_) => PushOutcome::Rejected,
        }
    }
}

/// The metrics label of a Delta Chat notification's outcome.
impl From<Outcome> for crate::metrics::DeltaChatOutcome {
    fn from(outcome: Outcome) -> crate::metrics::DeltaChatOutcome {
        use crate::metrics::DeltaChatOutcome;
        match outcome {
            Outcome::Delivered => DeltaChatOutcome::Delivered,
            Outcome::Gone => DeltaChatOutcome::Gone,
            Outcome::RateLimited { .. } => DeltaChatOutcome::RateLimited,
            Outcome::Temporary => DeltaChatOutcome::Temporary,
            Outcome::Redirected(_) => DeltaChatOutcome::Redirected,
            Outcome::TooLarge | Outcome::Unauthorized(_) | Outcome::Rejected(_) => {
                DeltaChatOutcome::Rejected
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn statuses() {
        let o = |s| Outcome::from_response(s, None, NOW);
        assert_eq!(o(201), Outcome::Delivered);
        assert_eq!(o(204), Outcome::Delivered);
        assert_eq!(o(404), Outcome::Gone);
        assert_eq!(o(410), Outcome::Gone);
        assert_eq!(o(413), Outcome::TooLarge);
        assert_eq!(o(429), Outcome::RateLimited { wait: None });
        assert_eq!(o(500), Outcome::Temporary);
        assert_eq!(o(503), Outcome::Temporary);
        assert_eq!(o(408), Outcome::Temporary);
        assert_eq!(o(401), Outcome::Unauthorized(401));
        assert_eq!(o(403), Outcome::Unauthorized(403));
        assert_eq!(o(301), Outcome::Redirected(301));
        assert_eq!(o(400), Outcome::Rejected(400));
    }

    #[test]
    fn retry_after_forms() {
        let later = NOW + Duration::from_secs(90);
        let date = httpdate::fmt_http_date(later);
        assert_eq!(
            Outcome::from_response(429, Some(" 30 "), NOW),
            Outcome::RateLimited {
                wait: Some(Duration::from_secs(30))
            }
        );
        assert_eq!(parse_retry_after(&date, NOW), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after("99999999", NOW), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", NOW), None);
        let past = httpdate::fmt_http_date(NOW);
        assert_eq!(
            parse_retry_after(&past, NOW + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let max = Duration::from_secs(300);
        let b = Backoff::doubling(max);
        assert_eq!(b.wait(1), Duration::from_secs(2));
        assert_eq!(b.wait(2), Duration::from_secs(4));
        assert_eq!(b.wait(8), Duration::from_secs(256));
        assert_eq!(b.wait(9), max);
        assert_eq!(b.wait(u32::MAX), max);
    }

    #[test]
    fn backoff_by_eights_like_a_chatmail_relay() {
        let b = Backoff {
            first: Duration::from_secs(8),
            factor: 8,
            max: Duration::from_secs(4096),
        };
        let waits: Vec<u64> = (1..=6).map(|n| b.wait(n).as_secs()).collect();
        assert_eq!(waits, [8, 64, 512, 4096, 4096, 4096]);
        assert_eq!(b.wait(u32::MAX).as_secs(), 4096);
    }
}
