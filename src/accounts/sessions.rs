//! The signed-in caller: proving an access token, and the caller's own sessions.

use uuid::Uuid;

use super::Accounts;
use crate::domain::{Client, Email, Proof, User};
use crate::error::{ApiError, Result};
use crate::store::sessions::SessionInfo;

/// The caller proven by a valid access token, with a live session, and who still exists.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub session_id: Uuid,
    /// The session was signed in with a passkey (its `amr` says `hwk` or `swk`).
    pub by_passkey: bool,
}

impl Accounts {
    /// The caller an access token proves. A token outlives a logout or revocation by up to its
    /// TTL unless its session is checked; the store may reuse a recent positive answer for
    /// `SESSION_CACHE_MS`. `client` is asked for only when an event is recorded.
    pub async fn authenticate(&self, token: &str, client: impl FnOnce() -> Client) -> Result<Caller> {
        let count = |outcome| self.metrics.token_validations.with_label_values(&[outcome]).inc();
        let claims = match self.tokens.verify(token) {
            Ok(claims) => claims,
            Err(e) => {
                let e = ApiError::from(e);
                count(match e {
                    ApiError::ExpiredAccessToken => "expired",
                    _ => "invalid",
                });
                return Err(e);
            }
        };
        let active = self.sessions.is_active(claims.sub, claims.sid).await?;
        let user = match active {
            true => self.existing_user(claims.sub, client).await?,
            false => None,
        };
        count(if user.is_some() { "valid" } else { "invalid" });
        Ok(Caller {
            user: user.ok_or(ApiError::InvalidAccessToken)?,
            session_id: claims.sid,
            by_passkey: claims.amr.iter().any(|m| m == "hwk" || m == "swk"),
        })
    }

    /// The caller's live sessions, oldest first.
    pub async fn sessions_of(&self, caller: &Caller) -> Result<Vec<SessionInfo>> {
        Ok(self.sessions.list(caller.user.id).await?)
    }

    /// Ends one of the caller's sessions; `SESSION_NOT_FOUND` when it is not one of theirs.
    pub async fn revoke_session(&self, caller: &Caller, id: Uuid, client: &Client) -> Result<()> {
        if !self.sessions.revoke(caller.user.id, id).await? {
            return Err(ApiError::SessionNotFound);
        }
        self.revoked("user", 1, caller.user.id, Some(id), client).await
    }

    /// Ends every session of the caller, theirs included (with a second factor when the user
    /// has one); how many there were.
    pub async fn revoke_all_sessions(&self, caller: &Caller, proof: Option<Proof>, client: &Client) -> Result<u32> {
        let email = Email::parse(&caller.user.email)?;
        self.step_up(caller.user.id, &email, proof, client).await?;
        let revoked = self.sessions.revoke_all(caller.user.id, None).await?;
        self.revoked("user", revoked, caller.user.id, None, client).await?;
        Ok(revoked)
    }
}
