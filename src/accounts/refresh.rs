//! Refresh-token rotation and logout: the two flows that act on the refresh cookie.

use uuid::Uuid;

use super::{Accounts, outcomes, session_client};
use crate::auth::access_token::IssuedToken;
use crate::auth::refresh_token::{self, TokenHash};
use crate::domain::{Client, EventName, UserId};
use crate::error::{ApiError, Result};
use crate::store::sessions::Rotation;

/// The refresh token a request presented, as the HTTP layer found it.
pub enum Presented {
    /// A cross-site request, refused before the cookie is looked at.
    CrossSite,
    Missing,
    Empty,
    Token(String),
}

/// A rotated session: a new access token, and the refresh token for the cookie.
pub struct Refreshed {
    pub user_id: UserId,
    pub session_id: Uuid,
    pub access: IssuedToken,
    pub refresh_token: String,
}

impl Accounts {
    /// Rotates the presented token. Within `REFRESH_REUSE_GRACE` the token retired last still
    /// answers with the same successor (two tabs); any other retired token revokes the session.
    pub async fn refresh(&self, presented: Presented, client: &Client) -> Result<Refreshed> {
        let result = self.rotate(presented, client).await;
        let outcome = match &result {
            Ok((_, outcome)) => outcome,
            Err(_) => outcomes::refresh_of(&result),
        };
        outcomes::refresh(&self.metrics, outcome);
        result.map(|(refreshed, _)| refreshed)
    }

    async fn rotate(&self, presented: Presented, client: &Client) -> Result<(Refreshed, &'static str)> {
        let presented = match presented {
            Presented::CrossSite => return Err(ApiError::CsrfRejected),
            Presented::Missing => return Err(ApiError::NoRefreshCookie),
            Presented::Empty => return Err(ApiError::NoRefreshToken),
            Presented::Token(token) => token,
        };
        // A token of another shape (one issued before refresh tokens named their user) is
        // unknown: its holder logs in again.
        let Some(user) = refresh_token::user_of(&presented) else {
            return Err(ApiError::InvalidRefreshToken);
        };
        let successor = refresh_token::refresh_token(user);
        let sealed = refresh_token::seal(&successor, &presented);
        let rotation = self
            .sessions
            .rotate(
                user,
                TokenHash::of(&presented),
                TokenHash::of(&successor),
                &sealed,
                &session_client(client),
            )
            .await?;
        let (outcome, user_id, session_id, assurance, token) = match rotation {
            Rotation::Rotated {
                session_id,
                user_id,
                assurance,
            } => ("success", user_id, session_id, assurance, successor),
            Rotation::GraceReplay {
                session_id,
                user_id,
                assurance,
                sealed_successor,
            } => {
                let token = refresh_token::unseal(&sealed_successor, &presented)
                    .ok_or_else(|| anyhow::anyhow!("stored successor of session {session_id} does not unseal"))?;
                ("grace_replay", user_id, session_id, assurance, token)
            }
            Rotation::Reused { session_id, user_id } => {
                tracing::warn!(%session_id, %user_id, "retired refresh token presented again: session revoked");
                let detected = self
                    .audit
                    .event(EventName::RefreshReuseDetected, client)
                    .user(user_id)
                    .session(session_id);
                self.audit.record(&[detected]).await?;
                self.revoked("reuse", 1, user_id, Some(session_id), client).await?;
                return Err(ApiError::RefreshTokenReused);
            }
            Rotation::Expired => return Err(ApiError::ExpiredRefreshToken),
            Rotation::Invalid => return Err(ApiError::InvalidRefreshToken),
        };
        if self.existing_user(user_id, || client.clone()).await?.is_none() {
            return Err(ApiError::InvalidRefreshToken);
        }
        // A session keeps the assurance of its sign-in (or of its second factor's confirmation).
        let access = self.tokens.issue(user_id, session_id, assurance)?;
        let refreshed = Refreshed {
            user_id,
            session_id,
            access,
            refresh_token: token,
        };
        Ok((refreshed, outcome))
    }

    /// Ends the session of the presented token, if there is one; idempotent.
    pub async fn logout(&self, presented: Presented, client: &Client) -> Result<()> {
        let token = match presented {
            Presented::CrossSite => return Err(ApiError::CsrfRejected),
            Presented::Token(token) => token,
            _ => return Ok(()),
        };
        let Some(owner) = refresh_token::user_of(&token) else {
            return Ok(());
        };
        if let Some((session, user)) = self.sessions.revoke_by_token(owner, TokenHash::of(&token)).await? {
            self.revoked("logout", 1, user, Some(session), client).await?;
        }
        Ok(())
    }
}
