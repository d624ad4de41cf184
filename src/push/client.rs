//! The HTTP client every kind of push sends with (Web Push to push services, Delta
//! Chat notifications to the notification proxy), and its rules: redirects are never
//! followed (RFC 8030 §5 gives no reason to, and a redirect could point anywhere),
//! proxy environment variables are ignored (a proxy would resolve names past the
//! address checks), and every name resolves through [`EndpointPolicy`], so DNS cannot
//! point coid at an internal service unless the operator allows private endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::endpoint::{EndpointPolicy, Refused};
use super::outcome::{Attempt, Outcome};

/// How a kind of push reads an answer: status, `Retry-After`, now.
pub type Classify = fn(u16, Option<&str>, SystemTime) -> Outcome;

/// Sends `request` and classifies the answer with `classify`; no answer at all
/// (connect failure, timeout) is a temporary [`Attempt`].
pub async fn execute(
    client: &reqwest::Client,
    request: reqwest::Request,
    classify: Classify,
) -> Attempt {
    match client.execute(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok());
            Attempt::answered(status, classify(status, retry_after, SystemTime::now()))
        }
        Err(err) => Attempt::unanswered(error_chain(&err)),
    }
}

/// A pooled client keeping up to `idle_per_host` connections open per host: set it to
/// the requests in flight, or most requests open a new connection (a TLS handshake
/// each). `timeout` bounds connecting and the whole answer.
///
/// # Errors
/// The client cannot be built (TLS setup), as text.
pub fn build(
    policy: EndpointPolicy,
    timeout: Duration,
    idle_per_host: usize,
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(idle_per_host.max(1))
        .user_agent(concat!("coid/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver { policy }))
        .build()
        .map_err(|e| e.to_string())
}

/// Refuses up front a name that resolves only to non-public addresses, so that is a
/// refusal and not a retry; the resolver enforces it again at connect time.
///
/// # Errors
/// [`Refused::NotPublic`].
pub async fn check_resolved(policy: EndpointPolicy, url: &Url) -> Result<(), Refused> {
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    if policy.allow_private {
        return Ok(());
    }
    let Ok(addrs) = tokio::net::lookup_host((host, 0)).await else {
        return Ok(()); // a resolver failure may pass: retried as temporary
    };
    let addrs: Vec<SocketAddr> = addrs.collect();
    match addrs.first() {
        Some(first) if addrs.iter().all(|a| policy.check_addr(a.ip()).is_err()) => {
            Err(Refused::NotPublic(first.ip()))
        }
        _ => Ok(()),
    }
}

/// An error and its causes on one line, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves names with the system resolver and keeps only addresses the policy allows.
struct CheckedResolver {
    policy: EndpointPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| policy.check_addr(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let first = resolved
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(format!("{host} resolves to no public address ({first})").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
