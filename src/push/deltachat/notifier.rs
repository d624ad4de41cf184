//! One Delta Chat notification: `POST <notify_url>` with the device token as the
//! body, byte for byte (no JSON, nothing else: the proxy decrypts the token, coid
//! cannot), through the shared push client (`crate::push::client`: no redirects, no
//! proxies, the endpoint rules). What the proxy's answer means ([`classify`]):
//! 200 delivered (or debounced by the proxy), 410 the token is dead or cannot be
//! decrypted, 429 wait, 5xx and 408 retry, anything else dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use url::Url;

use crate::config::DeltaChatConfig;
use crate::push::client;
use crate::push::endpoint::{EndpointPolicy, Refused};
use crate::push::names::CheckedNames;
use crate::push::outcome::{Attempt, Outcome, parse_retry_after};

/// Why a notification was not even attempted.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `notify_url` breaks the endpoint rules.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The URL or the client cannot be used.
    #[error("cannot build the notification request: {0}")]
    Build(String),
}

/// Sends notifications to Delta Chat's notification proxy; cheap to share.
#[derive(Clone)]
pub struct Notifier {
    client: reqwest::Client,
    url: Url,
    policy: EndpointPolicy,
    /// Whether the proxy's name resolved to a public address lately.
    names: Arc<CheckedNames>,
}

impl Notifier {
    /// A notifier by `[deltachat]`, keeping up to `idle` connections to the proxy.
    ///
    /// # Errors
    /// [`NotifyError::Build`]: a bad URL (check-config catches it first) or TLS setup.
    pub fn new(
        config: &DeltaChatConfig,
        policy: EndpointPolicy,
        idle: usize,
    ) -> Result<Notifier, NotifyError> {
        let url = Url::parse(&config.notify_url).map_err(|e| NotifyError::Build(e.to_string()))?;
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = client::build(policy, timeout, idle).map_err(NotifyError::Build)?;
        Ok(Notifier {
            client,
            url,
            policy,
            names: Arc::new(CheckedNames::new()),
        })
    }

    /// POSTs `token`.
    ///
    /// # Errors
    /// [`NotifyError`] when no request could be made; an answer of any kind, or none,
    /// is an [`Attempt`].
    pub async fn notify(&self, token: &str) -> Result<Attempt, NotifyError> {
        self.policy.check_url(&self.url)?;
        client::check_resolved(self.policy, &self.names, &self.url).await?;
        let request = self
            .client
            .post(self.url.clone())
            .body(token.to_owned())
            .build()
            .map_err(|e| NotifyError::Build(e.to_string()))?;
        Ok(client::execute(&self.client, request, classify).await)
    }
}

/// What the notification proxy's answer means.
pub fn classify(status: u16, retry_after: Option<&str>, now: SystemTime) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Gone,
        429 => Outcome::RateLimited {
            wait: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        408 | 500..=599 => Outcome::Temporary,
        300..=399 => Outcome::Redirected(status),
        _ => Outcome::Rejected(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxys_answers() {
        let now = SystemTime::UNIX_EPOCH;
        let c = |s| classify(s, None, now);
        assert_eq!(c(200), Outcome::Delivered);
        assert_eq!(c(410), Outcome::Gone);
        assert_eq!(c(404), Outcome::Rejected(404), "only 410 deletes a token");
        assert_eq!(c(400), Outcome::Rejected(400));
        assert_eq!(c(401), Outcome::Rejected(401));
        assert_eq!(c(500), Outcome::Temporary);
        assert_eq!(c(503), Outcome::Temporary);
        assert_eq!(c(408), Outcome::Temporary);
        assert_eq!(c(302), Outcome::Redirected(302));
        assert_eq!(
            classify(429, Some("7"), now),
            Outcome::RateLimited {
                wait: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(c(429), Outcome::RateLimited { wait: None });
    }
}
