//! The HTTP client every kind of push sends with (Web Push to push services, Delta
//! Chat notifications to the notification proxy), and its rules: redirects are never
//! followed (RFC 8030 §5 gives no reason to, and a redirect could point anywhere),
//! proxy environment variables are ignored (a proxy would resolve names past the
//! address checks), and every name resolves through [`EndpointPolicy`], so DNS cannot
//! point coid at an internal service unless the operator allows private endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::endpoint::{EndpointPolicy, Refused};
use super::names::CheckedNames;
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
/// refusal and not a retry; the resolver enforces it again at connect time. A name
/// that passed less than [`super::names::CHECKED_FOR`] ago is not looked up again.
///
/// # Errors
/// [`Refused::NotPublic`].
pub async fn check_resolved(
    policy: EndpointPolicy,
    names: &CheckedNames,
    url: &Url,
) -> Result<(), Refused> {
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    if policy.allow_private || names.passed(host, Instant::now()) {
        return Ok(());
    }
    let Ok(addrs) = tokio::net::lookup_host((host, 0)).await else {
        return Ok(()); // a resolver failure may pass: retried as temporary
    };
    let addrs: Vec<SocketAddr> = addrs.collect();
    let verdict = resolved_verdict(policy, &addrs);
    if verdict.is_ok() && !addrs.is_empty() {
        names.remember(host, Instant::now());
    }
    verdict
}

/// What the addresses a name resolved to mean: refused when there is at least one and
/// none is allowed.
fn resolved_verdict(policy: EndpointPolicy, addrs: &[SocketAddr]) -> Result<(), Refused> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn a_name_is_refused_only_when_every_address_is_private() {
        let policy = EndpointPolicy::default();
        let private = [addr("127.0.0.1:0"), addr("[::1]:0")];
        let refused = resolved_verdict(policy, &private);
        assert_eq!(refused, Err(Refused::NotPublic(addr("127.0.0.1:0").ip())));
        let mixed = [addr("10.0.0.1:0"), addr("192.0.43.10:0")];
        assert_eq!(resolved_verdict(policy, &mixed), Ok(()));
        assert_eq!(resolved_verdict(policy, &[]), Ok(()), "nothing resolved");
    }

    // `localhost` resolves through /etc/hosts, never DNS, to loopback only.
    #[tokio::test]
    async fn a_refused_name_is_looked_up_again_and_never_remembered() {
        let names = CheckedNames::new();
        let endpoint = url("https://localhost/push/1");
        for _ in 0..2 {
            let verdict = check_resolved(EndpointPolicy::default(), &names, &endpoint).await;
            assert!(matches!(verdict, Err(Refused::NotPublic(_))), "{verdict:?}");
        }
        assert!(names.is_empty());
    }

    #[tokio::test]
    async fn a_name_that_passed_lately_is_not_looked_up() {
        let names = CheckedNames::new();
        names.remember("localhost", Instant::now());
        let endpoint = url("https://localhost/push/1");
        // A lookup would find loopback and refuse it: passing shows there was none.
        let verdict = check_resolved(EndpointPolicy::default(), &names, &endpoint).await;
        assert_eq!(verdict, Ok(()));
    }
}
