//! Web Push message encryption: RFC 8291 (Message Encryption for Web Push) over the
//! RFC 8188 `aes128gcm` content coding, one record, sans-IO.
//!
//! For each push: a fresh P-256 key and ECDH with the user agent's `p256dh`
//! (RFC 8291 §3.1), HKDF-SHA-256 with its auth secret and both public keys into the
//! input keying material (§3.3, §3.4), a fresh 16-byte salt, the content-encryption key
//! and nonce from it (RFC 8188 §2.2, §2.3), and AES-128-GCM over the plaintext and its
//! last-record delimiter 0x02 (RFC 8188 §2). The body is the RFC 8188 §2.1 header (salt,
//! `rs`, `idlen` 65, `keyid` = our public key as an uncompressed point, RFC 8291 §4)
//! followed by that record.
//!
//! Why `ring` and not `web-push-native` (which coid used before, and which the tests
//! and `benches/push` still use to decrypt, as an implementation not ours): speed.
//! web-push-native does the key generation and ECDH with the pure-Rust `p256` crate;
//! `benches/push` measured 248 µs of CPU per encrypted push with it. `ring` (already
//! linked for rustls) does P-256 key generation and ECDH several times faster, and
//! HKDF and AES-GCM with it too.

use ring::rand::SecureRandom;
use ring::{aead, agreement, hkdf, rand};

/// An uncompressed P-256 point: 0x04, then x and y (32 bytes each).
pub const KEY_LEN: usize = 65;
/// The RFC 8188 salt.
pub const SALT_LEN: usize = 16;
/// The `aes128gcm` header as RFC 8291 sends it: salt, `rs` (4), `idlen` (1), `keyid`.
pub const HEADER_LEN: usize = SALT_LEN + 4 + 1 + KEY_LEN;
/// The AES-GCM tag after the record.
pub const TAG_LEN: usize = 16;
/// The record size sent for every plaintext that fits one 4096-byte push message
/// (RFC 8291 Appendix A, Python's `http_ece` and the web-push libraries send this).
/// RFC 8291 §4 wants `rs` greater than the record; web-push-native sent exactly its
/// length.
pub const RECORD_SIZE: u32 = 4096;

const KEY_INFO: &[u8] = b"WebPush: info\0";
const CEK_INFO: &[u8] = b"Content-Encoding: aes128gcm\0";
const NONCE_INFO: &[u8] = b"Content-Encoding: nonce\0";
/// RFC 8188 §2: the padding delimiter of the last record.
const LAST_RECORD: u8 = 0x02;

/// Why a push could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EceError {
    /// The user agent's `p256dh` is not a 65-byte uncompressed point on P-256.
    #[error("the subscription's p256dh is not an uncompressed P-256 public key")]
    BadPublicKey,
    /// The system's random generator failed (ephemeral key or salt).
    #[error("the system random generator failed")]
    Random,
    /// The plaintext is too long for the `rs` field (over 4 GiB).
    #[error("a {0}-byte plaintext does not fit one record")]
    TooLong(usize),
    /// A `ring` primitive refused its input; not reachable with the lengths used here.
    #[error("the {0} step failed")]
    Crypto(&'static str),
}

/// Encrypts `plaintext` for the user agent with public key `ua_public` (65-byte
/// uncompressed point, the subscription's `p256dh`) and auth secret `auth`: the whole
/// `aes128gcm` body of one push, [`HEADER_LEN`] + plaintext + 1 + [`TAG_LEN`] bytes.
///
/// Nothing bounds the plaintext here but the `rs` field; coid keeps pushes within
/// [`super::MAX_PLAINTEXT`] when it builds them.
///
/// # Errors
/// [`EceError::BadPublicKey`] for a key of the wrong length or not on the curve; the
/// others should not happen.
pub fn encrypt(plaintext: &[u8], ua_public: &[u8], auth: &[u8; 16]) -> Result<Vec<u8>, EceError> {
    let ua_public: &[u8; KEY_LEN] = ua_public.try_into().map_err(|_| EceError::BadPublicKey)?;
    let rs = record_size(plaintext.len())?;
    let rng = rand::SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| EceError::Random)?;
    let as_public = public_key(&private)?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ua_public);
    let ikm = agreement::agree_ephemeral(private, &peer, |ecdh| {
        input_keying_material(auth, ecdh, ua_public, &as_public)
    })
    .map_err(|_| EceError::BadPublicKey)??;
    let mut salt = [0; SALT_LEN];
    rng.fill(&mut salt).map_err(|_| EceError::Random)?;
    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    push_header(&mut body, &salt, rs, &as_public);
    body.extend_from_slice(plaintext);
    body.push(LAST_RECORD);
    let tag = seal(&salt, &ikm, &mut body[HEADER_LEN..])?;
    body.extend_from_slice(tag.as_ref());
    Ok(body)
}

/// `rs` for a single record of `plaintext_len` bytes: [`RECORD_SIZE`], or more than
/// the record if it is longer (beyond what a push service must take, RFC 8291 §4).
fn record_size(plaintext_len: usize) -> Result<u32, EceError> {
    let record = plaintext_len
        .checked_add(1 + TAG_LEN + 1)
        .and_then(|len| u32::try_from(len).ok())
        .ok_or(EceError::TooLong(plaintext_len))?;
    Ok(record.max(RECORD_SIZE))
}

/// The ephemeral key's public half as an uncompressed point.
fn public_key(private: &agreement::EphemeralPrivateKey) -> Result<[u8; KEY_LEN], EceError> {
    let public = private
        .compute_public_key()
        .map_err(|_| EceError::Crypto("public key"))?;
    public
        .as_ref()
        .try_into()
        .map_err(|_| EceError::Crypto("public key"))
}

/// RFC 8291 §3.3/§3.4: PRK_key = HKDF-Extract(auth, ecdh_secret); IKM =
/// HKDF-Expand(PRK_key, "WebPush: info" || 0x00 || ua_public || as_public, 32).
fn input_keying_material(
    auth: &[u8; 16],
    ecdh_secret: &[u8],
    ua_public: &[u8; KEY_LEN],
    as_public: &[u8; KEY_LEN],
) -> Result<[u8; 32], EceError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, auth).extract(ecdh_secret);
    expand(&prk, &[KEY_INFO, ua_public, as_public], "IKM")
}

/// RFC 8188 §2.2/§2.3: PRK = HKDF-Extract(salt, IKM), the 16-byte content-encryption
/// key and the 12-byte nonce (record 0: no XOR) from it; AES-128-GCM over `record`
/// in place, no associated data. Returns the tag.
fn seal(salt: &[u8; SALT_LEN], ikm: &[u8; 32], record: &mut [u8]) -> Result<aead::Tag, EceError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let cek: [u8; 16] = expand(&prk, &[CEK_INFO], "CEK")?;
    let nonce: [u8; aead::NONCE_LEN] = expand(&prk, &[NONCE_INFO], "nonce")?;
    let key =
        aead::UnboundKey::new(&aead::AES_128_GCM, &cek).map_err(|_| EceError::Crypto("AES key"))?;
    aead::LessSafeKey::new(key)
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            record,
        )
        .map_err(|_| EceError::Crypto("AES-GCM"))
}

/// RFC 8188 §2.1: salt || rs || idlen || keyid.
fn push_header(body: &mut Vec<u8>, salt: &[u8; SALT_LEN], rs: u32, keyid: &[u8; KEY_LEN]) {
    body.extend_from_slice(salt);
    body.extend_from_slice(&rs.to_be_bytes());
    body.push(KEY_LEN as u8);
    body.extend_from_slice(keyid);
}

/// HKDF output length for [`hkdf::Prk::expand`].
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand(`prk`, the concatenation of `info`, `N`).
fn expand<const N: usize>(
    prk: &hkdf::Prk,
    info: &[&[u8]],
    step: &'static str,
) -> Result<[u8; N], EceError> {
    let mut out = [0; N];
    prk.expand(info, Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| EceError::Crypto(step))?;
    Ok(out)
}

#[cfg(test)]
#[path = "ece_tests.rs"]
pub(crate) mod tests;
