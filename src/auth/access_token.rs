//! HS256 access tokens: `typ: at+jwt` (RFC 9068), with `iss`, `aud`, `jti` and the session id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{KeyRing, TYP};
use crate::clock::Clock;
use crate::config::TokenSettings;
use crate::domain::{Assurance, UserId};

/// Tokens longer than this are rejected before any parsing: ours are about 400 bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    /// The refresh session this token was issued under.
    pub sid: Uuid,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// Unique per token, so two tokens issued in the same second differ.
    pub jti: Uuid,
    /// How the session's user signed in (RFC 8176): `["pwd"]`, or `["pwd", "otp"]`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// The assurance level of that sign-in: `aal1` or `aal2`.
    #[serde(default)]
    pub acr: String,
}

/// Issues and verifies access tokens: with one shared HS256 secret, or with the key ring's
/// asymmetric keys, chosen by `kid`.
pub struct AccessTokens {
    keys: Keys,
    /// Per algorithm, pinned to it: a token is only ever checked the way its key requires.
    validations: HashMap<Algorithm, Validation>,
    ttl: Duration,
    issuer: String,
    audience: String,
    /// Tokens whose signature was verified, and their claims. A signature check is a pure
    /// function of the token and the key, so a token seen before needs only its key still
    /// trusted (a ring key is looked up by `kid` on every call, so a revoked key's tokens are
    /// refused as before) and its expiry checked again. An Ed25519 or P-256 verification
    /// costs tens to hundreds of microseconds, an HMAC a few; the lookup, about one.
    verified: quick_cache::sync::Cache<String, Claims>,
    clock: Clock,
}

/// Most verified tokens remembered (about half a kilobyte each).
const VERIFIED_CAPACITY: usize = 4096;

// One value per process, so the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Keys {
    Shared {
        encoding: EncodingKey,
        decoding: DecodingKey,
        header: Header,
    },
    Ring(Arc<KeyRing>),
}

/// A freshly issued token and its lifetime in seconds.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

impl AccessTokens {
    /// HS256 under `settings.secret` (drawn at random when there is none: embedded mode).
    pub fn shared(settings: &TokenSettings) -> Self {
        let drawn;
        let secret = match &settings.secret {
            Some(secret) => secret.expose_secret().as_bytes(),
            None => {
                drawn = super::refresh_token::random_token();
                drawn.as_bytes()
            }
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TYP.into());
        let keys = Keys::Shared {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header,
        };
        Self::with_keys(settings, keys, &[Algorithm::HS256])
    }

    /// The key ring's asymmetric keys (EdDSA or ES256, whichever each key is).
    pub fn with_ring(settings: &TokenSettings, ring: Arc<KeyRing>) -> Self {
        Self::with_keys(settings, Keys::Ring(ring), &[Algorithm::EdDSA, Algorithm::ES256])
    }

    fn with_keys(settings: &TokenSettings, keys: Keys, algorithms: &[Algorithm]) -> Self {
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut validation = Validation::new(alg);
                validation.leeway = settings.leeway.as_secs();
                validation.set_issuer(&[&settings.issuer]);
                validation.set_audience(&[&settings.audience]);
                validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
                validation.validate_nbf = true;
                // Expiry is checked against the service's clock, below, like a remembered token's.
                validation.validate_exp = false;
                (alg, validation)
            })
            .collect();
        Self {
            keys,
            validations,
            ttl: settings.access_ttl,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
            clock: Clock::system(),
        }
    }

    /// The same tokens, dated and checked by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[tracing::instrument(name = "token.issue", skip_all)]
    pub fn issue(&self, user: UserId, session: Uuid, assurance: Assurance) -> anyhow::Result<IssuedToken> {
        let now = self.clock.now_secs();
        let claims = Claims {
            sub: user,
            sid: session,
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
            amr: assurance.amr().iter().map(|m| m.to_string()).collect(),
            acr: assurance.acr().to_string(),
        };
        let token = match &self.keys {
            Keys::Shared { encoding, header, .. } => jsonwebtoken::encode(header, &claims, encoding)?,
            Keys::Ring(ring) => {
                let keys = ring.current().ok_or_else(|| anyhow::anyhow!("no signing key loaded"))?;
                jsonwebtoken::encode(&keys.signer.header, &claims, &keys.signer.key)?
            }
        };
        Ok(IssuedToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// The claims of a valid token.
    #[tracing::instrument(name = "token.verify", skip_all)]
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        // `typ` is not covered by `Validation`. A header naming a key to fetch or embedding
        // one is refused outright: keys come from our own store only.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.typ.as_deref() != Some(TYP)
            || header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(TokenError::Invalid);
        }
        let expired = |e: jsonwebtoken::errors::Error| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        };
        let ring_keys;
        let (key, validation) = match &self.keys {
            // The one validation pins HS256: `none`, or a token "signed" with some public key
            // as an HMAC secret, is refused rather than verified its way.
            Keys::Shared { decoding, .. } => (decoding, &self.validations[&Algorithm::HS256]),
            // The key named by `kid`, with the algorithm of that key and no other.
            Keys::Ring(ring) => {
                ring_keys = ring.current().ok_or(TokenError::Invalid)?;
                let kid = header.kid.as_deref().ok_or(TokenError::Invalid)?;
                let verifier = ring_keys.verifiers.get(kid).ok_or(TokenError::Invalid)?;
                if header.alg != verifier.alg.jwt() {
                    return Err(TokenError::Invalid);
                }
                (&verifier.key, &self.validations[&verifier.alg.jwt()])
            }
        };
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => {
                let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
                    .map(|data| data.claims)
                    .map_err(expired)?;
                self.verified.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        // jsonwebtoken's rule: expired once `exp + leeway` is past.
        if claims.exp.saturating_add(validation.leeway) < self.clock.now_secs() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Why an access token was refused. Expiry is told apart: a client then refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("access token expired")]
    Expired,
    #[error("access token invalid")]
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings() -> TokenSettings {
        TokenSettings {
            secret: Some(SecretString::from("k".repeat(32))),
            algorithm: crate::config::SigningAlgorithm::Hs256,
            access_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(60),
            session_lifetime: Duration::from_secs(60),
            reuse_grace: Duration::from_secs(10),
            issuer: "auth-api".into(),
            audience: "auth-api".into(),
            leeway: Duration::from_secs(0),
        }
    }

    #[test]
    fn a_token_seen_before_is_still_checked_for_expiry() {
        let tokens = AccessTokens::shared(&settings());
        let token = tokens
            .issue(UserId::new(), Uuid::new_v4(), Assurance::Password)
            .unwrap()
            .token;
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(tokens.verify(&token).unwrap().jti, claims.jti, "answered from memory");
        // The remembered claims say it expired long ago (beyond the leeway).
        tokens.verified.insert(token.clone(), Claims { exp: 1, ..claims });
        assert_eq!(tokens.verify(&token).unwrap_err(), TokenError::Expired);
        // Another token, even one differing only in its signature, is verified afresh.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(tokens.verify(&forged).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn round_trip_and_uniqueness() {
        let tokens = AccessTokens::shared(&settings());
        let (user, sid) = (UserId::new(), Uuid::new_v4());
        let a = tokens.issue(user, sid, Assurance::Password).unwrap().token;
        let b = tokens.issue(user, sid, Assurance::Password).unwrap().token;
        assert_ne!(a, b, "jti makes same-second tokens differ");
        let claims = tokens.verify(&a).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, sid));
        assert_eq!((claims.amr, claims.acr.as_str()), (vec!["pwd".to_string()], "aal1"));
        let strong = tokens.issue(user, sid, Assurance::PasswordAndOtp).unwrap().token;
        let claims = tokens.verify(&strong).unwrap();
        assert_eq!(
            (claims.amr, claims.acr.as_str()),
            (vec!["pwd".to_string(), "otp".to_string()], "aal2")
        );
    }

    #[test]
    fn other_issuer_is_rejected() {
        let mut other = settings();
        other.issuer = "someone-else".into();
        let foreign = AccessTokens::shared(&other)
            .issue(UserId::new(), Uuid::new_v4(), Assurance::Password)
            .unwrap()
            .token;
        assert!(matches!(
            AccessTokens::shared(&settings()).verify(&foreign),
            Err(TokenError::Invalid)
        ));
    }
}
