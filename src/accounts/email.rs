//! Email verification: the mailed link's token confirms the address; a new link can be asked
//! for by the signed-in owner or, signed out, by address.

use super::{Accounts, Caller};
use crate::auth::refresh_token::{TokenHash, looks_valid};
use crate::domain::{Client, Email, EventName, MailKind};
use crate::error::{ApiError, Result};
use crate::store::users::{MailRequest, TokenUse, Trail};

impl Accounts {
    /// Confirms the address a verification token was mailed to.
    pub async fn verify_email(&self, token: &str, client: &Client) -> Result<()> {
        if !looks_valid(token) {
            return Err(ApiError::InvalidVerifyToken);
        }
        let hash = TokenHash::of(token);
        if let TokenUse::Used(user, ()) = self.users.peek_token(MailKind::EmailVerify, hash.as_bytes()).await? {
            self.refuse_if_disabled(user).await?;
        }
        let verified = [self.audit.event(EventName::EmailVerified, client)];
        let trail = Trail {
            events: &verified,
            notice: None,
        };
        match self.users.verify_email(hash.as_bytes(), trail).await? {
            TokenUse::Unknown => Err(ApiError::InvalidVerifyToken),
            TokenUse::Expired => Err(ApiError::ExpiredVerifyToken),
            TokenUse::Used(user, ()) => {
                self.audit.announce(&verified.map(|event| event.user(user)));
                tracing::info!(user_id = %user, "email verified");
                Ok(())
            }
        }
    }

    /// A new link for the caller's own address: `EMAIL_ALREADY_VERIFIED` once it is, 429 over
    /// the per-address limit.
    pub async fn resend_verification(&self, caller: &Caller, client: &Client) -> Result<()> {
        if !self.mail.enabled() {
            return Err(ApiError::MailDisabled);
        }
        let user = &caller.user;
        if user.email_verified {
            return Err(ApiError::EmailAlreadyVerified);
        }
        let request = MailRequest::new(MailKind::EmailVerify, &user.email, Some(user.id), client);
        if !self.mail.queue(&self.users, &request).await? {
            return Err(ApiError::RateLimited { retry_after_secs: 3600 });
        }
        Ok(())
    }

    /// Signed out: a new link for `email`, sent only if it has an unverified account; the
    /// answer is the same either way.
    pub async fn resend_verification_to(&self, email: &str, client: &Client) -> Result<()> {
        if !self.mail.enabled() {
            return Err(ApiError::MailDisabled);
        }
        let email = Email::parse(email)?;
        let request = MailRequest::new(MailKind::EmailVerify, email.as_str(), None, client);
        self.mail.queue(&self.users, &request).await?;
        Ok(())
    }
}
