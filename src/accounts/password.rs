//! Changing one's password (the current one is checked again, under the login lockout; every
//! other session ends) and resetting a forgotten one through a mailed single-use link (every
//! session ends). Either way the account's address is told, through the outbox.

use secrecy::SecretString;

use super::{Accounts, Caller, outcomes};
use crate::auth::refresh_token::{self, TokenHash};
use crate::domain::{Client, Email, EventName, LoginPassword, MailKind, NewPassword, Proof, ValidationError};
use crate::error::{ApiError, Result};
use crate::store::users::{MailRequest, TokenUse, Trail};

impl Accounts {
    /// Replaces the caller's password after checking the current one (and the second factor,
    /// when the user has one); ends every other session of the user and keeps the caller's.
    /// How many sessions ended.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: SecretString,
        new: SecretString,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<u32> {
        // Both fields are checked before any hashing, the current one first.
        LoginPassword::parse(current.clone()).map_err(|e| rename(e, "current_password"))?;
        let new = NewPassword::parse(new).map_err(|e| rename(e, "new_password"))?;
        let user = caller.user.id;
        let email = self
            .confirm_password(caller, current, "current_password", client)
            .await?;
        self.step_up(user, &email, proof, client).await?;
        self.throttle.succeeded(&email).await?;
        let hash = self.hasher.hash(new.secret()).await?;
        let changed = [self
            .audit
            .event(EventName::PasswordChanged, client)
            .user(user)
            .session(caller.session_id)];
        let notice = self.notice(MailKind::PasswordChanged, client);
        let trail = Trail {
            events: &changed,
            notice: notice.as_ref(),
        };
        if !self.users.set_password_hash(user, &hash, trail).await? {
            return Err(ApiError::InvalidAccessToken);
        }
        self.told(&notice);
        self.audit.announce(&changed);
        // Every other session ends, and with it its access tokens (each request checks its session).
        let revoked = self.sessions.revoke_all(user, Some(caller.session_id)).await?;
        self.revoked("password_change", revoked, user, None, client).await?;
        tracing::info!(revoked, "password changed");
        Ok(revoked)
    }

    /// Checks the caller's password again, under the login lockout (a stolen access token must
    /// not turn into unlimited guesses at it); the account's address.
    pub(super) async fn confirm_password(
        &self,
        caller: &Caller,
        password: SecretString,
        field: &'static str,
        client: &Client,
    ) -> Result<Email> {
        let password = LoginPassword::parse(password).map_err(|e| rename(e, field))?;
        let user = caller.user.id;
        let credentials = self
            .users
            .find_credentials_by_id(user)
            .await?
            .ok_or(ApiError::InvalidAccessToken)?;
        let email = Email::parse(&credentials.user.email)?;
        self.refuse_if_locked(&email).await?;
        if !self
            .hasher
            .verify(password.secret(), Some(credentials.password_hash))
            .await?
        {
            let locked = self
                .count_failure(&email, Some(user), "wrong_current_password", client)
                .await?;
            self.audit.record(locked.as_slice()).await?;
            return Err(ApiError::InvalidCurrentPassword);
        }
        Ok(email)
    }

    /// Queues a reset link for `email` if it has an account; the answer is the same either
    /// way (the sender finds out later whether there is an account to mail, and records
    /// `password.reset_requested` then).
    pub async fn forgot_password(&self, email: &str, client: &Client) -> Result<()> {
        if !self.mail.enabled() {
            return Err(ApiError::MailDisabled);
        }
        let email = Email::parse(email)?;
        let request = MailRequest::new(MailKind::PasswordReset, email.as_str(), None, client);
        let queued = self.mail.queue(&self.users, &request).await?;
        let outcome = if queued { "requested" } else { "throttled" };
        self.metrics.password_resets.with_label_values(&[outcome]).inc();
        Ok(())
    }

    /// Sets a new password with a mailed token. The token works once (of two racing uses, one
    /// wins); every session of the user ends, and so do the account's other reset links. How
    /// many sessions ended.
    pub async fn reset_password(&self, token: &str, password: SecretString, client: &Client) -> Result<u32> {
        let result = self.reset_with(token, password, client).await;
        outcomes::reset(&self.metrics, &result);
        result
    }

    async fn reset_with(&self, token: &str, password: SecretString, client: &Client) -> Result<u32> {
        let password = NewPassword::parse(password)?;
        if !refresh_token::looks_valid(token) {
            return Err(ApiError::InvalidResetToken);
        }
        let hash = TokenHash::of(token);
        // A dead link is refused before any password hashing is spent on it.
        match self.users.peek_token(MailKind::PasswordReset, hash.as_bytes()).await? {
            TokenUse::Unknown => return Err(ApiError::InvalidResetToken),
            TokenUse::Expired => return Err(ApiError::ExpiredResetToken),
            TokenUse::Used(user, ()) => self.refuse_if_disabled(user).await?,
        }
        let password_hash = self.hasher.hash(password.secret()).await?;
        let sessions = &self.sessions;
        let reset = [self.audit.event(EventName::PasswordReset, client)];
        let notice = self.notice(MailKind::PasswordChanged, client);
        let trail = Trail {
            events: &reset,
            notice: notice.as_ref(),
        };
        let used = self
            .users
            .reset_password(
                hash.as_bytes(),
                &password_hash,
                |user| async move { sessions.revoke_all(user, None).await },
                trail,
            )
            .await?;
        let (user, revoked) = match used {
            TokenUse::Unknown => return Err(ApiError::InvalidResetToken),
            TokenUse::Expired => return Err(ApiError::ExpiredResetToken),
            TokenUse::Used(user, revoked) => (user, revoked),
        };
        self.told(&notice);
        self.audit.announce(&reset.map(|event| event.user(user)));
        self.revoked("password_reset", revoked, user, None, client).await?;
        // The mailbox owner chose a new password: earlier failed guesses no longer lock them out.
        if let Some(found) = self.users.find_by_id(user).await? {
            self.throttle.succeeded(&Email::parse(&found.email)?).await?;
        }
        tracing::info!(user_id = %user, revoked, "password reset");
        Ok(revoked)
    }
}

/// The same rule, named after the field the client sent.
fn rename(error: ValidationError, field: &'static str) -> ValidationError {
    ValidationError::new(field, error.message.replacen("password", field, 1))
}
