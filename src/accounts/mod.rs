//! The account flows, one entry point each: register, log in, refresh, log out, revoke one or
//! all sessions, change, forget and reset the password, verify and resend. Each takes typed
//! input (the parsed body, the presented credential, the [`Client`]) and returns a typed
//! outcome or an [`ApiError`]; the HTTP layer only parses and renders.
//!
//! Outcome metrics and security events are produced here and nowhere else. Time comes from
//! the injected [`Clock`].

mod admin;
mod email;
mod mfa;
mod outcomes;
mod passkeys;
mod password;
mod refresh;
mod sessions;
mod sign_in;

use std::sync::Arc;

use crate::audit::Audit;
use crate::auth::access_token::AccessTokens;
use crate::auth::password::PasswordHasher;
use crate::clock::Clock;
use crate::domain::{Client, Email, MailKind, SecurityEvent, User, UserId};
use crate::error::{ApiError, Result};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::login_throttle::LoginThrottle;
use crate::store::sessions::ClientInfo;
use crate::store::users::{EventCursor, MailRequest};
use crate::store::{SessionStore, UserStore};

pub use admin::{AdminKeys, FactorsReset, MAX_USERS_PAGE, Operator, UserAccount, create_admin_key};
pub use mfa::{RecoveryCodes, SecondFactors, Verification};
pub use passkeys::{CEREMONY_TTL as PASSKEY_CEREMONY_TTL, PasskeyView, Started};
pub use refresh::{Presented, Refreshed};
pub use sessions::Caller;
pub use sign_in::{CreateOrLogin, Login, NewAccount, Registered, SignedIn};

/// What the flows need.
pub struct Accounts {
    pub users: UserStore,
    pub sessions: SessionStore,
    pub hasher: PasswordHasher,
    pub tokens: AccessTokens,
    pub throttle: LoginThrottle,
    pub mail: Mailer,
    pub metrics: Arc<Metrics>,
    pub audit: Audit,
    pub clock: Clock,
    pub factors: SecondFactors,
    /// `None` when passkeys are off (no relying party).
    pub passkeys: Option<Arc<crate::auth::passkey::RelyingParty>>,
    pub admin: AdminKeys,
}

/// Most events one page of `/auth/events` holds.
pub const MAX_EVENTS_PAGE: u32 = 100;

impl Accounts {
    /// The signed-in user's own security events, newest first, after `after`.
    pub async fn events(&self, caller: &Caller, after: Option<EventCursor>, limit: u32) -> Result<Vec<SecurityEvent>> {
        let limit = limit.clamp(1, MAX_EVENTS_PAGE);
        Ok(self.users.events_of(caller.user.id, after, limit).await?)
    }

    /// `ACCOUNT_LOCKED` while `email` is locked. The password is not even checked then: a
    /// locked account answers alike for every guess.
    async fn refuse_if_locked(&self, email: &Email) -> Result<()> {
        match self.throttle.locked_for(email).await? {
            Some(wait) => Err(ApiError::AccountLocked {
                retry_after_secs: wait.as_millis().div_ceil(1000) as u64,
            }),
            None => Ok(()),
        }
    }

    /// Counts a failed password check against `email`; the `login.locked` event when it
    /// started a lock.
    async fn count_failure(
        &self,
        email: &Email,
        user: Option<UserId>,
        reason: &'static str,
        client: &Client,
    ) -> Result<Option<SecurityEvent>> {
        let Some(lock) = self.throttle.failed(email).await? else {
            return Ok(None);
        };
        tracing::warn!(
            lock_secs = lock.as_secs(),
            reason,
            "account locked after repeated failed password checks"
        );
        let event = self
            .audit
            .event(crate::domain::EventName::LoginLocked, client)
            .reason(reason);
        Ok(Some(match user {
            Some(user) => event.user(user),
            None => event,
        }))
    }

    /// The user `id` if it still exists and is not disabled. A user deleted behind the
    /// service's back (an operator's SQL) or disabled keeps no session: the first request that
    /// finds it so ends them all, on whichever instance sees it, so no refresh token of that
    /// user mints another access token (a session opened while it was being disabled included).
    async fn existing_user(&self, id: UserId, client: impl FnOnce() -> Client) -> Result<Option<User>> {
        let user = self.users.find_by_id(id).await?;
        let reason = match &user {
            None => "user_gone",
            Some(user) if user.is_disabled(self.clock.now_ms()) => "disabled",
            Some(_) => return Ok(user),
        };
        let revoked = self.sessions.revoke_all(id, None).await?;
        if revoked > 0 {
            tracing::warn!(user_id = %id, revoked, reason, "sessions of a user that is gone or disabled: revoked");
            self.revoked(reason, revoked, id, None, &client()).await?;
        }
        Ok(None)
    }

    /// `ACCOUNT_DISABLED` when `user` is disabled now (read from the store, not remembered).
    async fn refuse_if_disabled(&self, user: UserId) -> Result<()> {
        let found = self.users.find_credentials_by_id(user).await?;
        match found {
            Some(found) if found.user.is_disabled(self.clock.now_ms()) => Err(ApiError::AccountDisabled),
            _ => Ok(()),
        }
    }

    /// A notice of `kind` (a change to the account) to the account's own address (the store
    /// fills in the address and the user), or `None` when this deployment sends no mail.
    fn notice(&self, kind: MailKind, client: &Client) -> Option<MailRequest> {
        self.mail.enabled().then(|| MailRequest::new(kind, "", None, client))
    }

    /// Counts a queued notice and wakes the sender.
    fn told(&self, notice: &Option<MailRequest>) {
        if let Some(notice) = notice {
            self.mail.count(notice.kind, "queued");
            self.mail.wake();
        }
    }

    /// Counts `count` revoked sessions of `user` by `reason`, and records the event.
    async fn revoked(
        &self,
        reason: &'static str,
        count: u32,
        user: UserId,
        session: Option<uuid::Uuid>,
        client: &Client,
    ) -> Result<()> {
        let event = self
            .audit
            .event(crate::domain::EventName::SessionRevoked, client)
            .user(user);
        self.record_revoked(reason, count, session, event).await
    }

    /// Counts `count` revoked sessions by `reason` and records `event` (`session.revoked`) for
    /// them, naming `session` when one ended alone.
    async fn record_revoked(
        &self,
        reason: &'static str,
        count: u32,
        session: Option<uuid::Uuid>,
        event: SecurityEvent,
    ) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.metrics
            .sessions_revoked
            .with_label_values(&[reason])
            .inc_by(u64::from(count));
        let event = event.reason(reason);
        let event = match session {
            Some(session) => event.session(session),
            None => event,
        };
        Ok(self.audit.record(&[event]).await?)
    }
}

/// What a session keeps of its client: the address and the `User-Agent` (at most 256
/// characters), for its owner's session list.
fn session_client(client: &Client) -> ClientInfo {
    ClientInfo {
        user_agent: client.user_agent.as_ref().map(|ua| ua.chars().take(256).collect()),
        ip: client.ip.clone(),
    }
}
