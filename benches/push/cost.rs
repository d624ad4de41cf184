//! CPU per push, in a loop without I/O: what coid's `Sender` does for each push before
//! it POSTs (RFC 8291 aes128gcm encryption with `coid::push::webpush::ece`, as
//! `Sender` calls it: a fresh P-256 key, ECDH, HKDF, AES-GCM, all with ring; and the
//! RFC 8292 VAPID JWT, one ECDSA P-256 signature, which `Sender` signs once per push
//! service origin and reuses, `VapidTokens`), and what a push service does to read it
//! (decryption with web-push-native: ECDH, HKDF, AES-GCM). Timed like
//! `benches/classify.rs` ([`crate::timing`]), in µs per operation.

use std::hint::black_box;
use std::time::Duration;

use coid::push::webpush::ece;
use coid::push::webpush::vapid::VapidKey;
use coid::push::webpush::vapid_tokens::VapidTokens;
use p256::elliptic_curve::sec1::ToEncodedPoint;

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
    Cost {
        encrypt: per_op(|| drop(black_box(encrypt()))),
        sign: per_op(|| drop(black_box(sign()))),
        sign_cached: per_op(|| drop(black_box(cached()))),
        encrypt_and_sign: per_op(|| drop(black_box((encrypt(), cached())))),
        decrypt: per_op(|| drop(black_box(endpoint.decrypt(&body).expect("decrypts")))),
        plaintext: payload.len(),
        body: body.len(),
    }
}

/// µs per call of `op`.
fn per_op(op: impl FnMut()) -> f64 {
    micros(per_call(op))
}
