//! What every handler shares: the account flows, and what the HTTP layer itself decides
//! (cookie policy, origins, the published keys, draining).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::accounts::Accounts;
use crate::auth::keys::KeyRing;
use crate::config::{CookieSettings, Settings};

pub struct AppState {
    pub accounts: Accounts,
    pub cookie: CookieSettings,
    /// Max-Age of the refresh cookie, seconds.
    pub refresh_ttl_secs: u64,
    /// Origins allowed cross-site (CORS and the CSRF check of the cookie routes).
    pub allowed_origins: Vec<String>,
    /// The published signing keys (`None` with HS256), and how long clients may cache them.
    pub signing_keys: Option<Arc<KeyRing>>,
    pub keys_cache_max_age: u64,
    /// Set on SIGTERM/SIGINT: readiness answers 503 while the instance drains.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(settings: &Settings, accounts: Accounts, signing_keys: Option<Arc<KeyRing>>) -> Self {
        Self {
            accounts,
            cookie: settings.cookie.clone(),
            refresh_ttl_secs: settings.tokens.refresh_ttl.as_secs(),
            allowed_origins: settings.cors_origins.clone(),
            signing_keys,
            keys_cache_max_age: settings.keys.cache_max_age.as_secs(),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }
}
