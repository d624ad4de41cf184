//! Sends one Web Push message: RFC 8291 aes128gcm encryption ([`super::ece`], with
//! `ring`), an RFC 8292 VAPID header (signed once per push service origin and lifetime,
//! [`super::vapid_tokens`]), RFC 8030 `TTL`, `Urgency` and `Topic` (and
//! the WebPush spec's `WebPush-Validation` on validation pushes), POSTed with the
//! shared push client (`crate::push::http`: no redirects, no proxies, names resolved
//! through the endpoint rules). The answer becomes an
//! [`Outcome`]; no answer at all (connect failure, timeout) is [`Outcome::Temporary`].

use std::sync::Arc;
use std::time::Duration;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use url::Url;

use super::ece;
use super::sealers::Sealers;
use super::subscription::{decode_auth, decode_p256dh};
use super::vapid::VapidKey;
use super::vapid_tokens::VapidTokens;
use crate::config::PushConfig;
use crate::push::client;
use crate::push::endpoint::{EndpointPolicy, Refused};
use crate::push::names::CheckedNames;
use crate::push::outcome::{Attempt, Outcome};
use crate::store::unix_now_ms;

/// RFC 8030 §5.3 urgency (the `[push] urgency` setting's type).
pub use crate::config::Urgency;

/// Where a push goes: a subscription's resource.
#[derive(Debug, Clone)]
pub struct Target {
    /// Push resource URL.
    pub endpoint: Url,
    /// The user agent's ECDH key.
    pub p256dh: p256::PublicKey,
    /// The user agent's auth secret.
    pub auth: [u8; 16],
}

impl Target {
    /// A stored subscription's endpoint and keys; `None` if any of them does not
    /// decode.
    pub fn decode(endpoint: &str, p256dh: &str, auth: &str) -> Option<Target> {
        Some(Target {
            endpoint: Url::parse(endpoint).ok()?,
            p256dh: decode_p256dh(p256dh)?,
            auth: decode_auth(auth)?,
        })
    }
}

/// RFC 8030 headers for one push.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the push service keeps it (`TTL`; also bounds the JWT's `exp`).
    pub ttl: Duration,
    /// `Urgency`.
    pub urgency: Urgency,
    /// `Topic`: a newer push with the same topic replaces an undelivered one.
    /// At most 32 characters of the URL-safe base64 alphabet (see [`folder_topic`]).
    pub topic: Option<String>,
    /// A subscription's validation push: sent with an empty `WebPush-Validation`
    /// header, as the WebPush spec ("Subscription Validation") asks.
    pub validation: bool,
}

impl Options {
    /// A message push's headers by `[push]` (no topic).
    pub fn from_config(config: &PushConfig) -> Options {
        Options {
            ttl: Duration::from_secs(config.ttl_secs),
            urgency: config.urgency,
            topic: None,
            validation: false,
        }
    }
}

/// Why a push was not even attempted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The endpoint breaks the operator's rules.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Encryption or request building failed (a bad key or URL).
    #[error("cannot build the push request: {0}")]
    Build(String),
}

/// The push client; cheap to share.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    /// Signed tokens, one per push service origin while it lasts (RFC 8292 §2).
    vapid: VapidTokens,
    policy: EndpointPolicy,
    /// Push service names that resolved to a public address lately.
    names: Arc<CheckedNames>,
}

impl Sender {
    /// A sender signing as `subject` (`mailto:` or `https:` URL, RFC 8292 §2.1),
    /// keeping up to `idle_per_host` connections open per push service: set it to the
    /// pushes in flight, or most pushes open a new connection (a TLS handshake each).
    ///
    /// # Errors
    /// The HTTP client cannot be built (TLS setup).
    pub fn new(
        vapid: VapidKey,
        subject: &str,
        policy: EndpointPolicy,
        timeout: Duration,
        idle_per_host: usize,
    ) -> Result<Sender, SendError> {
        let client = client::build(policy, timeout, idle_per_host).map_err(SendError::Build)?;
        Ok(Sender {
            client,
            vapid: VapidTokens::new(vapid, subject),
            policy,
            names: Arc::new(CheckedNames::new()),
        })
    }

    /// Encrypts `plaintext` for `target` and POSTs it.
    ///
    /// # Errors
    /// [`SendError`] when no request could be made; an answer of any kind, or none,
    /// is an [`Attempt`].
    pub async fn send(
        &self,
        target: &Target,
        plaintext: &[u8],
        options: &Options,
    ) -> Result<Attempt, SendError> {
        self.send_with(target, plaintext, options, None).await
    }

    /// [`Sender::send`], encrypting on `sealers`' threads if given and their queue
    /// has room, else on this task's thread.
    ///
    /// # Errors
    /// As [`Sender::send`].
    pub async fn send_with(
        &self,
        target: &Target,
        plaintext: &[u8],
        options: &Options,
        sealers: Option<&Sealers>,
    ) -> Result<Attempt, SendError> {
        self.policy.check_url(&target.endpoint)?;
        client::check_resolved(self.policy, &self.names, &target.endpoint).await?;
        let p256dh = target.p256dh.to_encoded_point(false);
        let handed = sealers.and_then(|s| s.try_seal(p256dh.as_bytes(), &target.auth, plaintext));
        // No room on the sealing threads, or the job was lost there: encrypt here.
        let sealed = match handed {
            Some(body) => body.await.ok(),
            None => None,
        };
        let body = sealed
            .unwrap_or_else(|| ece::encrypt(plaintext, p256dh.as_bytes(), &target.auth))
            .map_err(|e| SendError::Build(e.to_string()))?;
        let request = self.build(target, body, options)?;
        Ok(client::execute(&self.client, request, Outcome::from_response).await)
    }

    /// The POST of one push: the RFC 8291 `body` ([`super::ece`]) with the headers
    /// web-push-native's builder set before (`TTL`, `Content-Encoding: aes128gcm`,
    /// `Content-Type`, `Content-Length`), VAPID and the RFC 8030 options.
    fn build(
        &self,
        target: &Target,
        body: Vec<u8>,
        options: &Options,
    ) -> Result<reqwest::Request, SendError> {
        let now = u64::try_from(unix_now_ms() / 1000).unwrap_or(0);
        let vapid = self
            .vapid
            .authorization(&target.endpoint, now, jwt_validity(options.ttl));
        let mut request = reqwest::Request::new(reqwest::Method::POST, target.endpoint.clone());
        let headers = request.headers_mut();
        insert(headers, "ttl", &options.ttl.as_secs().to_string())?;
        insert(headers, "content-encoding", "aes128gcm")?;
        insert(headers, "content-type", "application/octet-stream")?;
        insert(headers, "content-length", &body.len().to_string())?;
        insert(headers, "authorization", &vapid)?;
        insert(headers, "urgency", options.urgency.as_str())?;
        if let Some(topic) = &options.topic {
            insert(headers, "topic", topic)?;
        }
        if options.validation {
            insert(headers, "webpush-validation", "")?;
        }
        *request.body_mut() = Some(body.into());
        Ok(request)
    }
}

/// The VAPID token's lifetime: the push's TTL, but at least a minute (a TTL of 0 is
/// valid in RFC 8030 and must not make a token that is expired on arrival) and at
/// most 12 hours (RFC 8292 §2 allows 24; this leaves room for clock skew).
fn jwt_validity(ttl: Duration) -> Duration {
    ttl.clamp(Duration::from_secs(60), Duration::from_secs(12 * 3600))
}

/// The RFC 8030 §5.4 `Topic` for pushes about `folder`: `f` and 31 hex digits of its
/// SHA-256, so any folder name gives a valid topic (alphanumerics only, which every
/// push service accepts) and a newer push about the same folder replaces an
/// undelivered older one.
pub fn folder_topic(folder: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(folder.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("f{}", hex.get(..31).unwrap_or_default())
}

fn insert(headers: &mut http::HeaderMap, name: &'static str, value: &str) -> Result<(), SendError> {
    let value = http::HeaderValue::from_str(value).map_err(|e| SendError::Build(e.to_string()))?;
    headers.insert(name, value);
    Ok(())
}
