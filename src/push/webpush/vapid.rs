//! The server's VAPID key (RFC 8292) and the `Authorization: vapid` header.
//!
//! One P-256 key for the whole server, generated once and kept in the state store:
//! clients register its public half with their push service (the OX app pins it), so
//! it must not change. Clients read it as `webpush/vapid`, a PEM SubjectPublicKeyInfo.
//! The JWT is ES256 with `aud` = the endpoint's origin *including* a non-default port
//! (the `web-push` crates drop it, which breaks self-hosted push servers), `exp` at
//! most 24 hours ahead (RFC 8292 §2), and `sub` from the config.

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use url::Url;

/// RFC 8292 §2: `exp` no more than 24 hours ahead.
pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Key trouble: only when the stored key is damaged.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored PKCS#8 PEM does not decode.
    #[error("VAPID key: {0}")]
    Decode(String),
}

/// The server's signing key.
#[derive(Clone)]
pub struct VapidKey {
    key: SigningKey,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VapidKey(..)")
    }
}

impl VapidKey {
    /// A fresh random key (OS randomness).
    pub fn generate() -> VapidKey {
        VapidKey {
            key: SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// The private key as PKCS#8 PEM, for the state store.
    pub fn to_private_pem(&self) -> String {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default()
    }

    /// Loads a key saved by [`VapidKey::to_private_pem`].
    ///
    /// # Errors
    /// [`KeyError::Decode`].
    pub fn from_private_pem(pem: &str) -> Result<VapidKey, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| VapidKey { key })
            .map_err(|e| KeyError::Decode(e.to_string()))
    }

    /// The public key as PEM SubjectPublicKeyInfo: the `webpush/vapid` METADATA value.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// The uncompressed public point, base64url: the header's `k=`.
    pub fn public_raw_b64(&self) -> String {
        let point = self.key.verifying_key().to_encoded_point(false);
        Base64UrlUnpadded::encode_string(point.as_bytes())
    }

    /// `vapid t=<JWT>, k=<key>` for a push to `endpoint` (RFC 8292 §3).
    pub fn authorization(
        &self,
        endpoint: &Url,
        sub: &str,
        now_unix: u64,
        validity: Duration,
    ) -> String {
        let header = Base64UrlUnpadded::encode_string(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": now_unix + validity.min(MAX_VALIDITY).as_secs(),
            "sub": sub,
        });
        let claims = Base64UrlUnpadded::encode_string(claims.to_string().as_bytes());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        let signature = Base64UrlUnpadded::encode_string(&signature.to_bytes());
        format!(
            "vapid t={signing_input}.{signature}, k={}",
            self.public_raw_b64()
        )
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;

    use super::*;

    fn claims_of(header: &str) -> (serde_json::Value, String, String) {
        let rest = header.strip_prefix("vapid t=").expect("vapid scheme");
        let (jwt, k) = rest.split_once(", k=").expect("k= part");
        let mut parts = jwt.split('.');
        let (_, c, _) = (parts.next(), parts.next().expect("claims"), parts.next());
        let claims = Base64UrlUnpadded::decode_vec(c).expect("b64");
        (
            serde_json::from_slice(&claims).expect("json"),
            jwt.to_owned(),
            k.to_owned(),
        )
    }

    #[test]
    fn jwt_keeps_a_non_default_port_caps_exp_and_verifies() {
        let key = VapidKey::generate();
        let url = Url::parse("https://push.example:8443/up/abc").expect("url");
        let header = key.authorization(
            &url,
            "mailto:postmaster@example.org",
            1000,
            Duration::from_secs(10 * 24 * 3600),
        );
        let (claims, jwt, k) = claims_of(&header);
        assert_eq!(claims["aud"], "https://push.example:8443");
        assert_eq!(claims["exp"], 1000 + 24 * 3600);
        assert_eq!(claims["sub"], "mailto:postmaster@example.org");
        assert_eq!(k, key.public_raw_b64());

        let (input, sig) = jwt.rsplit_once('.').expect("signature");
        let sig =
            Signature::from_slice(&Base64UrlUnpadded::decode_vec(sig).expect("b64")).expect("sig");
        let pem = key.public_pem();
        let verifier = VerifyingKey::from_public_key_pem(&pem).expect("pem");
        assert!(verifier.verify(input.as_bytes(), &sig).is_ok());
    }

    #[test]
    fn default_port_is_not_written() {
        let key = VapidKey::generate();
        let url = Url::parse("https://push.example:443/x").expect("url");
        let (claims, _, _) =
            claims_of(&key.authorization(&url, "mailto:a@b.example", 0, Duration::from_secs(60)));
        assert_eq!(claims["aud"], "https://push.example");
    }

    #[test]
    fn private_key_round_trips_and_garbage_is_an_error() {
        let key = VapidKey::generate();
        let again = VapidKey::from_private_pem(&key.to_private_pem()).expect("round trip");
        assert_eq!(again.public_pem(), key.public_pem());
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(VapidKey::from_private_pem("not a key").is_err());
    }
}
