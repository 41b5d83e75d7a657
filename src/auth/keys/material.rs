//! Signing key material: new Ed25519 and P-256 keys as PKCS#8, their public JWK and RFC 7638
//! thumbprint, and the private part sealed with XChaCha20-Poly1305 for storage.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use p256::pkcs8::EncodePrivateKey as _;
use secrecy::{ExposeSecret, SecretBox};

/// The asymmetric algorithms access tokens can be signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EdDsa,
    Es256,
}

impl KeyAlgorithm {
    pub fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

/// A new key pair: the private key as PKCS#8 DER, the public one as a JWK carrying its `kid`.
pub struct NewKey {
    pub kid: String,
    pub public_jwk: String,
    pub private_der: SecretBox<Vec<u8>>,
}

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Draws a key pair from the operating system's random source.
pub fn generate(alg: KeyAlgorithm) -> anyhow::Result<NewKey> {
    let private_der = match alg {
        KeyAlgorithm::EdDsa => {
            let mut der = ED25519_PKCS8_PREFIX.to_vec();
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)?;
            der.extend_from_slice(&seed);
            seed.fill(0);
            der
        }
        KeyAlgorithm::Es256 => {
            // A uniformly random scalar: the rare 32 bytes at or above the group order are drawn again.
            let secret = loop {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)?;
                if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                    break secret;
                }
            };
            secret.to_pkcs8_der()?.as_bytes().to_vec()
        }
    };
    let mut jwk = Jwk::from_encoding_key(&encoding_key(alg, &private_der), alg.jwt())?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(NewKey {
        kid,
        public_jwk: serde_json::to_string(&jwk)?,
        private_der: SecretBox::new(Box::new(private_der)),
    })
}

/// The `jsonwebtoken` signing key of a PKCS#8 private key.
pub fn encoding_key(alg: KeyAlgorithm, private_der: &[u8]) -> EncodingKey {
    match alg {
        KeyAlgorithm::EdDsa => EncodingKey::from_ed_der(private_der),
        KeyAlgorithm::Es256 => EncodingKey::from_ec_der(private_der),
    }
}

/// `KEYS_ENCRYPTION_KEY`: 32 bytes that seal every stored private key.
pub struct SealingKey(SecretBox<[u8; 32]>);

impl SealingKey {
    /// From its base64 form; `None` unless it is exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(SecretBox::new(Box::new(key))))
    }

    /// A new random key, in base64 (for the embedded mode's key file).
    pub fn generate_base64() -> anyhow::Result<String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(STANDARD.encode(key))
    }

    /// A key for `purpose` derived from this one (HMAC-SHA-256), so one setting keys every
    /// secret at rest without using the same key twice.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac as _;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(self.0.expose_secret()).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.expose_secret().into())
    }

    /// `nonce ‖ ciphertext` of `private_der` (or any secret), bound to `kid` so a row's key cannot be moved to
    /// another row.
    pub fn seal(&self, kid: &str, private_der: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce)?;
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: private_der,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing a signing key failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The private key sealed by [`seal`](Self::seal); `None` under another key or when altered.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Option<SecretBox<Vec<u8>>> {
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().ok()?;
        let plain = self
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .ok()?;
        Some(SecretBox::new(Box::new(plain)))
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_public_jwks_and_sealed_private_parts() {
        let sealing = SealingKey::from_base64(&SealingKey::generate_base64().unwrap()).unwrap();
        for alg in [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
            let key = generate(alg).unwrap();
            let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk).unwrap();
            assert_eq!(jwk["kid"], key.kid.as_str());
            assert_eq!(jwk["alg"], alg.as_str());
            assert!(jwk.get("d").is_none(), "no private parameter: {jwk}");
            let sealed = sealing.seal(&key.kid, key.private_der.expose_secret()).unwrap();
            let opened = sealing.open(&key.kid, &sealed).expect("opens");
            assert_eq!(opened.expose_secret(), key.private_der.expose_secret());
            assert!(sealing.open("another-kid", &sealed).is_none(), "bound to its kid");
            let other = SealingKey::from_base64(&SealingKey::generate_base64().unwrap()).unwrap();
            assert!(other.open(&key.kid, &sealed).is_none(), "another KEYS_ENCRYPTION_KEY");
        }
        assert_ne!(
            generate(KeyAlgorithm::EdDsa).unwrap().kid,
            generate(KeyAlgorithm::EdDsa).unwrap().kid
        );
        assert!(SealingKey::from_base64("c2hvcnQ=").is_none(), "not 32 bytes");
    }
}
