//! CPU per push, in a loop without I/O: what coid's `Sender` does for each push before
//! it POSTs (RFC 8291 aes128gcm encryption with `coid::push::webpush::ece`, as
//! `Sender` calls it: a fresh P-256 key, ECDH, HKDF, AES-GCM, all with ring; and the
//! RFC 8292 VAPID JWT, one ECDSA P-256 signature, which `Sender` signs once per push
//! service origin and reuses, `VapidTokens`), and what a push service does to read it
//! (decryption with web-push-native: ECDH, HKDF, AES-GCM). Also the check of a push
//! service's name before each push (`coid::push::client::check_resolved`): a lookup of
//! `localhost` (from /etc/hosts, the cheapest lookup there is; a real push service's
//! name is a DNS query on a host without a caching resolver), against a name that
//! passed lately, which coid no longer looks up (`coid::push::names`). Timed like
//! `benches/classify.rs` ([`crate::timing`]), in µs per operation.

use std::hint::black_box;
use std::time::Duration;

use coid::push::client::check_resolved;
use coid::push::endpoint::EndpointPolicy;
use coid::push::names::CheckedNames;
use coid::push::webpush::ece;
use coid::push::webpush::sender::Target;
use coid::push::webpush::vapid::VapidKey;
use coid::push::webpush::vapid_tokens::VapidTokens;
use p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::common::push_receiver::EndpointKeys;
use crate::receiver::Endpoint;
use crate::timing::{micros, per_call};

/// The `TTL` (and JWT lifetime) coid uses by default (`[push] ttl_secs`).
const TTL: Duration = Duration::from_secs(3600);
const SUBJECT: &str = "mailto:postmaster@example.org";

/// µs per operation.
pub struct Cost {
    pub encrypt: f64,
    pub sign: f64,
    /// A token from the per-origin cache, as `Sender` gets it for each push.
    pub sign_cached: f64,
    pub encrypt_and_sign: f64,
    pub decrypt: f64,
    /// Decoding a queued push's subscription (URL, P-256 key, auth secret), as the
    /// worker does for each push.
    pub decode: f64,
    /// The name check before a push: a lookup, and a name that passed lately.
    pub name_lookup: f64,
    pub name_remembered: f64,
    /// Plaintext bytes of the payload measured.
    pub plaintext: usize,
    /// Body bytes on the wire (aes128gcm header, record, tag).
    pub body: usize,
}

/// Measures each step for `payload` sent to `endpoint`.
pub fn measure(endpoint: &Endpoint, payload: &[u8]) -> Cost {
    let target = endpoint.target();
    let vapid = VapidKey::generate();
    let encrypt = || {
        let p256dh = target.p256dh.to_encoded_point(false);
        ece::encrypt(payload, p256dh.as_bytes(), &target.auth).expect("encrypts")
    };
    let sign = || vapid.authorization(&target.endpoint, SUBJECT, 1_700_000_000, TTL);
    let tokens = VapidTokens::new(vapid.clone(), SUBJECT);
    let cached = || tokens.authorization(&target.endpoint, 1_700_000_000, TTL);
    let body = encrypt();
    let stored = endpoint.keys();
    let decode = |k: &EndpointKeys| Target::decode(&k.url, &k.p256dh, &k.auth).expect("decodes");
    Cost {
        encrypt: per_op(|| drop(black_box(encrypt()))),
        sign: per_op(|| drop(black_box(sign()))),
        sign_cached: per_op(|| drop(black_box(cached()))),
        encrypt_and_sign: per_op(|| drop(black_box((encrypt(), cached())))),
        decrypt: per_op(|| drop(black_box(endpoint.decrypt(&body).expect("decrypts")))),
        decode: per_op(|| drop(black_box(decode(&stored)))),
        name_lookup: name_check(false),
        name_remembered: name_check(true),
        plaintext: payload.len(),
        body: body.len(),
    }
}

/// µs per check of `https://localhost/` before a push, on a runtime like the push
/// worker's, with the name remembered as passed or not. Without, every check looks the
/// name up (and refuses it: loopback; the lookup is the cost).
fn name_check(remembered: bool) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = url::Url::parse("https://localhost/push/1").expect("url");
    let names = CheckedNames::new();
    if remembered {
        names.remember("localhost", std::time::Instant::now());
    }
    let policy = EndpointPolicy::default();
    per_op(|| {
        let verdict = rt.block_on(check_resolved(policy, &names, &url));
        assert_eq!(verdict.is_ok(), remembered, "{verdict:?}");
    })
}

/// µs per call of `op`.
fn per_op(op: impl FnMut()) -> f64 {
    micros(per_call(op))
}
