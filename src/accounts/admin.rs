//! The operator's side: admin keys (made and revoked by the CLI, checked by the admin
//! listener) and the reads support needs (users found by search, one user's account).
//! A key is 256 random bits; only its SHA-256 is stored, and a presented key is compared with
//! every live key's hash in constant time. The live keys are read again when older than
//! `SESSION_CACHE_MS`, so a revoked key stops working on every instance within it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Accounts, PasskeyView};
use crate::auth::refresh_token::random_token;
use crate::domain::{SecurityEvent, User, UserId};
use crate::error::{ApiError, Result};
use crate::store::UserStore;
use crate::store::sessions::SessionInfo;
use crate::store::users::UserFilter;

/// Most users one page of the admin search holds.
pub const MAX_USERS_PAGE: u32 = 100;
/// Events shown with one user.
const RECENT_EVENTS: u32 = 20;

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
}
