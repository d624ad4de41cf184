//! CPU per push, in a loop without I/O: what coid's `Sender` does for each push before
//! it POSTs (RFC 8291 aes128gcm encryption with web-push-native, as `Sender` calls it:
//! a fresh P-256 key, ECDH, HKDF, AES-GCM; and the RFC 8292 VAPID JWT, one ECDSA
//! P-256 signature), and what a push service does to read it (decryption: ECDH,
//! HKDF, AES-GCM). Like `benches/classify.rs`: a short warm-up, then 7 batches of
//! about 100 ms each; the median batch, in µs per operation.

use std::hint::black_box;
use std::time::{Duration, Instant};

use coid::push::vapid::VapidKey;

use crate::receiver::Endpoint;

const BATCHES: usize = 7;
const BATCH_TARGET: Duration = Duration::from_millis(100);
/// The `TTL` (and JWT lifetime) coid uses by default (`[push] ttl_secs`).
const TTL: Duration = Duration::from_secs(3600);
const SUBJECT: &str = "mailto:postmaster@example.org";

/// µs per operation.
pub struct Cost {
    pub encrypt: f64,
    pub sign: f64,
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
    let uri: http::Uri = endpoint.url.parse().expect("endpoint URI");
    let auth = web_push_native::Auth::clone_from_slice(&target.auth);
    let vapid = VapidKey::generate();
    let encrypt = || {
        web_push_native::WebPushBuilder::new(uri.clone(), target.p256dh, auth)
            .with_valid_duration(TTL)
            .build(payload.to_vec())
            .expect("encrypts")
    };
    let sign = || vapid.authorization(&target.endpoint, SUBJECT, 1_700_000_000, TTL);
    let body = encrypt().into_body();
    Cost {
        encrypt: per_op(|| drop(black_box(encrypt()))),
        sign: per_op(|| drop(black_box(sign()))),
        encrypt_and_sign: per_op(|| drop(black_box((encrypt(), sign())))),
        decrypt: per_op(|| drop(black_box(endpoint.decrypt(&body).expect("decrypts")))),
        plaintext: payload.len(),
        body: body.len(),
    }
}

/// µs per call of `op`: the median of [`BATCHES`] batches after a warm-up.
fn per_op(mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    let mut calls = 0u32;
    while warm.elapsed() < BATCH_TARGET / 2 || calls < 3 {
        op();
        calls += 1;
    }
    let per_batch = (BATCH_TARGET.as_secs_f64() / (warm.elapsed().as_secs_f64() / f64::from(calls)))
        .ceil()
        .max(1.0) as u32;
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let began = Instant::now();
            for _ in 0..per_batch {
                op();
            }
            began.elapsed().as_secs_f64() * 1e6 / f64::from(per_batch)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}
