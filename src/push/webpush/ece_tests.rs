//! `encrypt` against an implementation not ours: every body must decrypt with
//! `web_push_native::decrypt` (pure-Rust p256, RustCrypto HKDF and AES-GCM).

use p256::elliptic_curve::sec1::ToEncodedPoint;

use super::*;
use crate::push::webpush::MAX_PLAINTEXT;

pub(crate) const AUTH: [u8; 16] = *b"0123456789abcdef";

/// A user agent: its private key and its `p256dh` as an uncompressed point.
pub(crate) fn user_agent() -> (p256::SecretKey, Vec<u8>) {
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let public = secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    (secret, public)
}

pub(crate) fn decrypt(body: &[u8], secret: &p256::SecretKey) -> Vec<u8> {
    let auth = web_push_native::Auth::clone_from_slice(&AUTH);
    web_push_native::decrypt(body.to_vec(), secret, &auth).expect("web-push-native decrypts it")
}

#[test]
fn decrypts_elsewhere_at_every_size() {
    let (secret, public) = user_agent();
    for len in [
        0,
        1,
        15,
        16,
        17,
        100,
        3000,
        MAX_PLAINTEXT - 1,
        MAX_PLAINTEXT,
    ] {
        let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let body = encrypt(&plaintext, &public, &AUTH).expect("encrypts");
        assert_eq!(body.len(), HEADER_LEN + len + 1 + TAG_LEN, "{len} bytes");
        assert_eq!(decrypt(&body, &secret), plaintext, "{len} bytes");
    }
}

#[test]
fn largest_plaintext_fills_one_push_message() {
    let (_, public) = user_agent();
    let body = encrypt(&[b'x'; MAX_PLAINTEXT], &public, &AUTH).expect("encrypts");
    assert_eq!(body.len(), 4096);
}

#[test]
fn wrong_auth_secret_does_not_decrypt() {
    let (secret, public) = user_agent();
    let body = encrypt(b"hello", &public, &AUTH).expect("encrypts");
    let other = web_push_native::Auth::clone_from_slice(b"fedcba9876543210");
    assert!(web_push_native::decrypt(body, &secret, &other).is_err());
}

#[test]
fn each_encryption_is_fresh() {
    let (secret, public) = user_agent();
    let a = encrypt(b"same words", &public, &AUTH).expect("encrypts");
    let b = encrypt(b"same words", &public, &AUTH).expect("encrypts");
    assert_ne!(a[..SALT_LEN], b[..SALT_LEN], "salt");
    assert_ne!(a[21..HEADER_LEN], b[21..HEADER_LEN], "ephemeral key");
    assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..], "ciphertext");
    assert_eq!(decrypt(&a, &secret), decrypt(&b, &secret));
}

#[test]
fn header_layout() {
    let (_, public) = user_agent();
    for len in [0, 10, MAX_PLAINTEXT] {
        let body = encrypt(&vec![7; len], &public, &AUTH).expect("encrypts");
        let rs = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes"));
        assert_eq!(rs, 4096, "{len} bytes");
        let record = body.len() - HEADER_LEN;
        assert!(
            rs as usize > record,
            "RFC 8291 §4: rs {rs} > record {record}"
        );
        assert_eq!(body[20], 65, "idlen");
        let keyid = &body[21..HEADER_LEN];
        assert_eq!(keyid[0], 0x04, "uncompressed point");
        assert!(
            p256::PublicKey::from_sec1_bytes(keyid).is_ok(),
            "on the curve"
        );
        assert_ne!(keyid, &public[..], "our key, not theirs");
    }
}

#[test]
fn record_size_grows_past_one_push_message() {
    assert_eq!(record_size(0), Ok(4096));
    assert_eq!(record_size(4096), Ok(4096 + 18));
    assert_eq!(record_size(usize::MAX), Err(EceError::TooLong(usize::MAX)));
}

#[test]
fn plaintext_beyond_one_push_message_still_decrypts() {
    let (secret, public) = user_agent();
    let plaintext = vec![b'y'; 5000];
    let body = encrypt(&plaintext, &public, &AUTH).expect("encrypts");
    assert_eq!(decrypt(&body, &secret), plaintext);
}

#[test]
fn bad_p256dh_is_a_typed_error() {
    let (_, public) = user_agent();
    let compressed = {
        let key = p256::PublicKey::from_sec1_bytes(&public).expect("key");
        key.to_encoded_point(true).as_bytes().to_vec()
    };
    let mut off_curve = public.clone();
    off_curve[64] ^= 1;
    let mut not_a_point = public.clone();
    not_a_point[0] = 0x05;
    let bad: [&[u8]; 7] = [
        &[],
        &public[..64],
        &[public.as_slice(), &[0]].concat(),
        &compressed,
        &off_curve,
        &not_a_point,
        &[0; KEY_LEN],
    ];
    for key in bad {
        assert_eq!(
            encrypt(b"hello", key, &AUTH),
            Err(EceError::BadPublicKey),
            "{key:02x?}"
        );
    }
}
