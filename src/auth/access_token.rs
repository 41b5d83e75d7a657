//! HS256 access tokens: `typ: at+jwt` (RFC 9068), with `iss`, `aud`, `jti` and the session id.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::TokenSettings;
use crate::domain::UserId;

const TYP: &str = "at+jwt";
/// Tokens longer than this are rejected before any parsing: ours are about 400 bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Serialize, Deserialize)]
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
}

/// Issues and verifies access tokens with one key.
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
    ttl: Duration,
    issuer: String,
    audience: String,
}

/// A freshly issued token and its lifetime in seconds.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

impl AccessTokens {
    pub fn new(settings: &TokenSettings) -> Self {
        let drawn;
        let secret = match &settings.secret {
            Some(secret) => secret.expose_secret().as_bytes(),
            None => {
                drawn = super::refresh_token::random_token();
                drawn.as_bytes()
            }
        };
        // Pin HS256: a token that names another algorithm (`none`, RS256 with our secret as a
        // "public key") is rejected rather than verified its way.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = settings.leeway.as_secs();
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TYP.into());
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            header,
            ttl: settings.access_ttl,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        }
    }

    #[tracing::instrument(name = "token.issue", skip_all)]
    pub fn issue(&self, user: UserId, session: Uuid) -> anyhow::Result<IssuedToken> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user,
            sid: session,
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)?;
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
        // `typ` is not covered by `Validation`; `kid`/`jku` are never consulted (one static key).
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.typ.as_deref() != Some(TYP) {
            return Err(TokenError::Invalid);
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
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
    fn round_trip_and_uniqueness() {
        let tokens = AccessTokens::new(&settings());
        let (user, sid) = (UserId::new(), Uuid::new_v4());
        let a = tokens.issue(user, sid).unwrap().token;
        let b = tokens.issue(user, sid).unwrap().token;
        assert_ne!(a, b, "jti makes same-second tokens differ");
        let claims = tokens.verify(&a).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, sid));
    }

    #[test]
    fn other_issuer_is_rejected() {
        let mut other = settings();
        other.issuer = "someone-else".into();
        let foreign = AccessTokens::new(&other)
            .issue(UserId::new(), Uuid::new_v4())
            .unwrap()
            .token;
        assert!(matches!(
            AccessTokens::new(&settings()).verify(&foreign),
            Err(TokenError::Invalid)
        ));
    }
}
