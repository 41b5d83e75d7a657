//! What every handler shares: the stores, the hashing pool, the token issuer, cookie policy,
//! the mail queue.

use crate::auth::access_token::AccessTokens;
use crate::auth::keys::KeyRing;
use crate::auth::password::PasswordHasher;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::config::{CookieSettings, Settings};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::login_throttle::LoginThrottle;
use crate::store::{SessionStore, UserStore};

pub struct AppState {
    pub users: UserStore,
    pub sessions: SessionStore,
    pub hasher: PasswordHasher,
    pub tokens: AccessTokens,
    pub cookie: CookieSettings,
    /// Max-Age of the refresh cookie, seconds.
    pub refresh_ttl_secs: u64,
    pub metrics: Arc<Metrics>,
    pub throttle: LoginThrottle,
    /// Origins allowed cross-site (CORS and the CSRF check of the cookie routes).
    pub allowed_origins: Vec<String>,
    /// The published signing keys (`None` with HS256), and how long clients may cache them.
    pub signing_keys: Option<Arc<KeyRing>>,
    pub keys_cache_max_age: u64,
    pub mail: Mailer,
    /// Set on SIGTERM/SIGINT: readiness answers 503 while the instance drains.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &Settings,
        users: UserStore,
        sessions: SessionStore,
        hasher: PasswordHasher,
        tokens: AccessTokens,
        metrics: Arc<Metrics>,
        throttle: LoginThrottle,
        signing_keys: Option<Arc<KeyRing>>,
        mail: Mailer,
    ) -> Self {
        Self {
            users,
            sessions,
            hasher,
            tokens,
            cookie: settings.cookie.clone(),
            refresh_ttl_secs: settings.tokens.refresh_ttl.as_secs(),
            metrics,
            throttle,
            allowed_origins: settings.cors_origins.clone(),
            signing_keys,
            keys_cache_max_age: settings.keys.cache_max_age.as_secs(),
            mail,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }
}
