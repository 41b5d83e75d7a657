//! The operator's side: admin keys (made and revoked by the CLI, checked by the admin
//! listener) and the reads support needs (users found by search, one user's account).
//! A key is 256 random bits; only its SHA-256 is stored, and a presented key is compared with
//! every live key's hash in constant time. The live keys are read again when older than
//! `SESSION_CACHE_MS`, so a revoked key stops working on every instance within it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Accounts, PasskeyView};
use crate::auth::refresh_token::random_token;
use crate::domain::{Client, Disabled, EventName, MailKind, SecurityEvent, User, UserId};
use crate::error::{ApiError, Result};
use crate::store::UserStore;
use crate::store::sessions::SessionInfo;
use crate::store::users::{Erased, MailRequest, Trail, UserFilter};

/// Most users one page of the admin search holds.
pub const MAX_USERS_PAGE: u32 = 100;
/// Events shown with one user.
const RECENT_EVENTS: u32 = 20;
/// Longest reason an operator may give for disabling an account.
const MAX_REASON: usize = 200;

/// Who acts, and from which request: the admin key's name (or `cli:<login>`), and the request's
/// trace. The operator's own address and browser are logged, not written into the user's
/// trail: the user's activity list names the actor instead.
pub struct Operator {
    pub name: String,
    pub client: Client,
}

impl Operator {
    /// The request as the user's trail and verification mail tell of it: its trace only.
    fn on_the_users_side(&self) -> Client {
        Client {
            trace_id: self.client.trace_id.clone(),
            ..Client::default()
        }
    }

    fn event(&self, accounts: &Accounts, name: EventName, user: UserId) -> SecurityEvent {
        accounts
            .audit
            .event(name, &self.on_the_users_side())
            .user(user)
            .actor(&self.name)
    }
}

/// What resetting a user's second factors removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorsReset {
    pub totp: bool,
    pub recovery_codes: u64,
}

/// The live keys as last read, and when (ms).
type LiveKeys = Arc<Vec<(String, [u8; 32])>>;

/// Checks admin keys against the store, reading the live ones at most every `remember`.
pub struct AdminKeys {
    remember: Duration,
    live: Mutex<Option<(i64, LiveKeys)>>,
}

impl AdminKeys {
    pub fn new(remember: Duration) -> Self {
        Self {
            remember,
            live: Mutex::new(None),
        }
    }
}

/// One user as an operator sees it: no secret, no hash.
pub struct UserAccount {
    pub user: User,
    pub sessions: Vec<SessionInfo>,
    pub passkeys: Vec<PasskeyView>,
    pub events: Vec<SecurityEvent>,
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new key named `name` (`auth-api admin-keys create`), returned once: only its hash is
/// stored.
pub async fn create_admin_key(users: &UserStore, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "a key's name is 1 to 64 characters, no control characters",
        ));
    }
    let key = format!("aak_{}", random_token());
    if !users.create_admin_key(name, &hash(&key)).await? {
        return Err(ApiError::validation(
            "name",
            "a key of this name exists (revoked keys keep theirs)",
        ));
    }
    Ok(key)
}

impl Accounts {
    /// The name of the live key `key` is, compared with every live key in constant time.
    pub async fn authenticate_admin(&self, key: &str) -> Result<String> {
        let presented = hash(key);
        let live = self.live_admin_keys().await?;
        let mut found = None;
        for (name, stored) in live.iter() {
            if bool::from(stored.ct_eq(&presented)) {
                found = Some(name.clone());
            }
        }
        found.ok_or(ApiError::InvalidAdminKey)
    }

    async fn live_admin_keys(&self) -> Result<LiveKeys> {
        let now = self.clock.now_ms();
        let keys = &self.admin;
        {
            let live = keys.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, live)) = live.as_ref()
                && now - at < keys.remember.as_millis() as i64
            {
                return Ok(live.clone());
            }
        }
        let fresh: LiveKeys = Arc::new(
            self.users
                .active_admin_keys()
                .await?
                .into_iter()
                .filter_map(|(name, stored)| Some((name, <[u8; 32]>::try_from(stored.as_slice()).ok()?)))
                .collect(),
        );
        *keys.live.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, fresh.clone()));
        Ok(fresh)
    }

    /// Users matching `filter`, in creation order after `after`.
    pub async fn find_users(&self, filter: &UserFilter, after: Option<UserId>, limit: u32) -> Result<Vec<User>> {
        let limit = limit.clamp(1, MAX_USERS_PAGE);
        Ok(self.users.search_users(filter, after, limit).await?)
    }

    /// One user's account: profile, sessions, passkeys and recent events.
    pub async fn user_account(&self, id: UserId) -> Result<UserAccount> {
        let user = self.users.find_by_id(id).await?.ok_or(ApiError::NoSuchUser)?;
        let sessions = self.sessions.list(id).await?;
        let passkeys = self.passkeys_of(id).await?;
        let events = self.users.events_of(id, None, RECENT_EVENTS).await?;
        Ok(UserAccount {
            user,
            sessions,
            passkeys,
            events,
        })
    }

    /// Counts an operator's `action` by its result, and logs it with the operator's address.
    fn acted<T>(&self, action: &'static str, operator: &Operator, user: UserId, result: &Result<T>) {
        let outcome = match result {
            Ok(_) => "success",
            Err(ApiError::NoSuchUser | ApiError::SessionNotFound) => "not_found",
            Err(
                ApiError::Validation { .. }
                | ApiError::EmailAlreadyVerified
                | ApiError::MailDisabled
                | ApiError::RateLimited { .. },
            ) => "refused",
            Err(_) => "error",
        };
        self.metrics.admin_actions.with_label_values(&[action, outcome]).inc();
        tracing::info!(
            target: crate::audit::TARGET,
            admin_action = action,
            outcome,
            actor = operator.name.as_str(),
            actor.address = operator.client.ip.as_deref(),
            user.id = %user,
            "admin action"
        );
    }

    /// Disables `user` (until `until`, or until enabled) and ends every session it has; how
    /// many ended. Every instance refuses its access tokens within `SESSION_CACHE_MS` and its
    /// refresh tokens at once; login, second steps, passkeys and links refuse it too.
    pub async fn disable_user(
        &self,
        operator: &Operator,
        user: UserId,
        until: Option<OffsetDateTime>,
        reason: Option<String>,
    ) -> Result<u32> {
        let result = async {
            let now = self.clock.now_ms();
            let until_ms = until.map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
            if until_ms.is_some_and(|until| until <= now) {
                return Err(ApiError::validation("until", "until must be in the future"));
            }
            let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
            if reason
                .as_ref()
                .is_some_and(|r| r.chars().count() > MAX_REASON || r.chars().any(char::is_control))
            {
                return Err(ApiError::validation(
                    "reason",
                    "a reason is at most 200 characters, no control characters",
                ));
            }
            let disabled = Disabled {
                since_ms: now,
                until_ms,
                reason,
            };
            let events = [operator.event(self, EventName::UserDisabled, user)];
            let trail = Trail {
                events: &events,
                notice: None,
            };
            if !self.users.set_disabled(user, Some(&disabled), trail).await? {
                return Err(ApiError::NoSuchUser);
            }
            self.audit.announce(&events);
            // After the row: a login that read the row before it may still open a session
            // here, and the next request of that session finds the account disabled.
            let revoked = self.sessions.revoke_all(user, None).await?;
            self.revoked_by(operator, "disabled", revoked, user, None).await?;
            Ok(revoked)
        }
        .await;
        self.acted("disable", operator, user, &result);
        result
    }

    /// Lets `user` sign in again (idempotent).
    pub async fn enable_user(&self, operator: &Operator, user: UserId) -> Result<()> {
        let result = async {
            let events = [operator.event(self, EventName::UserEnabled, user)];
            let trail = Trail {
                events: &events,
                notice: None,
            };
            if !self.users.set_disabled(user, None, trail).await? {
                return Err(ApiError::NoSuchUser);
            }
            self.audit.announce(&events);
            Ok(())
        }
        .await;
        self.acted("enable", operator, user, &result);
        result
    }

    /// Ends one session of `user`, or all of them; how many ended.
    pub async fn sign_out_user(&self, operator: &Operator, user: UserId, session: Option<Uuid>) -> Result<u32> {
        let result = async {
            if self.users.find_credentials_by_id(user).await?.is_none() {
                return Err(ApiError::NoSuchUser);
            }
            let revoked = match session {
                Some(id) if self.sessions.revoke(user, id).await? => 1,
                Some(_) => return Err(ApiError::SessionNotFound),
                None => self.sessions.revoke_all(user, None).await?,
            };
            self.revoked_by(operator, "admin", revoked, user, session).await?;
            Ok(revoked)
        }
        .await;
        self.acted("sign_out", operator, user, &result);
        result
    }

    /// Erases `user` (GDPR art. 17): sessions, then the row with its factors, passkeys, links
    /// and mails; its events stay without address or browser. What was removed.
    pub async fn erase_user(&self, operator: &Operator, user: UserId) -> Result<(Erased, u32)> {
        let result = async {
            if self.users.find_credentials_by_id(user).await?.is_none() {
                return Err(ApiError::NoSuchUser);
            }
            // Sessions first: a refresh between the two finds the user gone and ends them too.
            let sessions = self.sessions.revoke_all(user, None).await?;
            self.metrics
                .sessions_revoked
                .with_label_values(&["admin"])
                .inc_by(u64::from(sessions));
            let erased = operator.event(self, EventName::UserErased, user);
            let done = self.users.erase(user, &erased).await?.ok_or(ApiError::NoSuchUser)?;
            self.audit.announce(&[erased]);
            Ok((done, sessions))
        }
        .await;
        self.acted("erase", operator, user, &result);
        result
    }

    /// Removes the TOTP factor and recovery codes of `user` (locked out of them), and mails
    /// the owner when there was one. Passkeys stay: each is removed by its owner.
    pub async fn reset_user_factors(&self, operator: &Operator, user: UserId) -> Result<FactorsReset> {
        let result = async {
            let events = [operator.event(self, EventName::MfaDisabled, user).reason("mfa_reset")];
            // The operator's address and browser are none of the owner's business: the
            // outbox row keeps only the trace.
            let notice = self.notice(MailKind::MfaReset, &operator.on_the_users_side());
            let trail = Trail {
                events: &events,
                notice: notice.as_ref(),
            };
            let (totp, codes) = self
                .users
                .reset_factors(user, trail)
                .await?
                .ok_or(ApiError::NoSuchUser)?;
            if totp + codes > 0 {
                self.told(&notice);
                self.audit.announce(&events);
            }
            Ok(FactorsReset {
                totp: totp > 0,
                recovery_codes: codes,
            })
        }
        .await;
        self.acted("reset_mfa", operator, user, &result);
        result
    }

    /// Mails `user` a new verification link, within the per-address limit every mail to it
    /// keeps (its inbox is not flooded by anyone).
    pub async fn send_verification(&self, operator: &Operator, user: UserId) -> Result<()> {
        let result = async {
            if !self.mail.enabled() {
                return Err(ApiError::MailDisabled);
            }
            let found = self
                .users
                .find_credentials_by_id(user)
                .await?
                .ok_or(ApiError::NoSuchUser)?;
            if found.user.email_verified {
                return Err(ApiError::EmailAlreadyVerified);
            }
            let client = operator.on_the_users_side();
            let request = MailRequest::new(MailKind::EmailVerify, &found.user.email, Some(user), &client);
            if !self.mail.queue(&self.users, &request).await? {
                return Err(ApiError::RateLimited { retry_after_secs: 3600 });
            }
            // The mail's delivery records `email.verification_sent`; this records who asked.
            let asked = operator.event(self, EventName::EmailVerificationRequested, user);
            Ok(self.audit.record(&[asked]).await?)
        }
        .await;
        self.acted("send_verification", operator, user, &result);
        result
    }

    /// Confirms the address of `user` on the operator's word.
    pub async fn mark_verified(&self, operator: &Operator, user: UserId) -> Result<()> {
        let result = async {
            let events = [operator.event(self, EventName::EmailVerified, user).reason("admin")];
            let trail = Trail {
                events: &events,
                notice: None,
            };
            match self.users.mark_verified(user, trail).await? {
                None => Err(ApiError::NoSuchUser),
                Some(false) => Err(ApiError::EmailAlreadyVerified),
                Some(true) => {
                    self.audit.announce(&events);
                    Ok(())
                }
            }
        }
        .await;
        self.acted("mark_verified", operator, user, &result);
        result
    }

    /// Counts `count` sessions of `user` an operator ended, and records the event.
    async fn revoked_by(
        &self,
        operator: &Operator,
        reason: &'static str,
        count: u32,
        user: UserId,
        session: Option<Uuid>,
    ) -> Result<()> {
        let event = operator.event(self, EventName::SessionRevoked, user);
        self.record_revoked(reason, count, session, event).await
    }
}
